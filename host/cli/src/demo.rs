//! `tenantry demo`: the whole system in one command, told as a short story.
//!
//! In a fresh temporary database (or a new file given with `--db`): two tenants, the example
//! `projects` plugin installed for both, each tenant's users calling it, a batch update aimed
//! at the other tenant's ids that touches nothing, an operator's unscoped read showing up in
//! the tenant's own audit log, a hostile plugin and a WASI module contained, terminal escapes
//! neutralised, then every audit log and its verification.
//!
//! Here the demo plays the embedding application as well as the operator: the invocations of
//! steps 3 and 4 carry the tenants' own users, as requests from the application would.

use std::path::PathBuf;

use tenantry_engine::{AuditQuery, Context, Operator, TenantInfo};
use tenantry_host::PluginHost;
use tenantry_tests::plugins;

use crate::commands::audit::{Columns, entries_table, verify};
use crate::exit::{CliError, Code};
use crate::output::{Cell, Style, Table, Ui};
use crate::session::{Create, Session, label};
use crate::text::neutralise;

/// Runs the demo on `db` (which must not exist yet) or on a temporary database.
///
/// # Errors
/// A usage error if `db` exists; anything a step failed with.
pub(crate) fn run(db: Option<PathBuf>, op: Operator, ui: &mut Ui) -> Result<(), CliError> {
    // The temporary directory lives until the end of this function: dropping it removes it.
    let (temporary_dir, path) = match db {
        Some(path) => {
            if path.exists() {
                return Err(CliError::usage(format!(
                    "the demo writes a new database, and {} already exists (remove it or pass \
                     another --db)",
                    path.display()
                )));
            }
            (None, path)
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("tenantry-demo-")
                .tempdir()
                .map_err(|e| {
                    CliError::new(
                        Code::Failure,
                        format!("cannot create a temporary directory: {e}"),
                    )
                })?;
            let path = dir.path().join("demo.redb");
            (Some(dir), path)
        }
    };
    let session = Session::open(&path, op, Create::IfMissing)?;
    let result = session.host().and_then(|host| {
        let mut demo = Demo {
            session: &session,
            host,
            ui,
        };
        demo.tell(temporary_dir.is_some())
    });
    let flushed = ui.flush();
    session.close(result.is_err());
    result.and(flushed)
}

struct Demo<'a> {
    session: &'a Session,
    host: &'a PluginHost,
    ui: &'a mut Ui,
}

impl Demo<'_> {
    fn tell(&mut self, temporary: bool) -> Result<(), CliError> {
        let title = self.ui.paint(Style::Bold, "tenantry demo");
        self.ui.line(title)?;
        let where_ = if temporary {
            " (temporary: removed at the end)"
        } else {
            ""
        };
        self.ui.fields(&[
            (
                "database",
                format!("{}{where_}", self.session.path().display()),
            ),
            ("operator", self.session.op().name().to_owned()),
        ])?;

        self.ui.heading("1. Two tenants share one database file")?;
        let engine = self.session.engine();
        let op = self.session.op();
        let ids = engine.create_tenants(op, ["acme", "globex"])?;
        let acme = engine.tenant_info(ids[0])?;
        let globex = engine.tenant_info(ids[1])?;
        for t in [&acme, &globex] {
            self.ui.line(format!("created tenant {}", label(t)))?;
        }

        self.ui
            .heading("2. The operator installs the same plugin for both")?;
        for t in [&acme, &globex] {
            let p = self
                .host
                .install_for(op, t.id, "projects", plugins::PROJECTS)?;
            self.ui.line(format!(
                "{}: plugin projects, version {}, exports {}",
                label(t),
                crate::commands::tenant::short(&p.version),
                p.exports.join(", ")
            ))?;
        }

        self.ui
            .heading("3. Each tenant's users call it (the demo plays the application)")?;
        let mut calls = calls_table();
        for name in ["apollo", "gemini", "mercury"] {
            let input = format!(r#"{{"name":"{name}"}}"#);
            self.call(&mut calls, &acme, "user:alice", "create", &input)?;
        }
        self.call(
            &mut calls,
            &globex,
            "user:bob",
            "create",
            r#"{"name":"zeus"}"#,
        )?;
        self.call(&mut calls, &acme, "user:alice", "list", "")?;
        self.call(&mut calls, &globex, "user:bob", "list", "")?;
        self.ui.table(&calls)?;

        self.ui
            .heading("4. Isolation: globex asks to rename acme's projects 2 and 3")?;
        let mut calls = calls_table();
        let attack = r#"{"ids":[2,3],"changes":{"name":"pwned"}}"#;
        let summary = self.call(&mut calls, &globex, "user:mallory", "batch_update", attack)?;
        self.call(&mut calls, &acme, "user:alice", "list", "")?;
        self.ui.table(&calls)?;
        let untouched = summary.contains(r#""updated":[]"#);
        self.verdict(
            untouched,
            "nothing was updated: globex reaches only its own keys, and acme's projects are as they were",
            "globex's batch update reported updates",
        )?;

        self.ui
            .heading("5. An operator reads across the boundary, and the tenant sees it")?;
        self.unscoped_read(&acme)?;

        self.ui.heading("6. A hostile tenant is contained")?;
        self.hostile(&globex)?;

        self.ui
            .heading("7. Each tenant's audit log, oldest first")?;
        for t in [&acme, &globex] {
            let name = self.ui.paint(Style::Cyan, &label(t));
            self.ui.line(format!("\n{name}"))?;
            let mut log = engine.tenant_audit_log(op, t.id, &AuditQuery::default())?;
            log.reverse();
            self.ui.table(&entries_table(&log, Columns::Compact))?;
        }

        self.ui.heading("8. Every audit chain verifies")?;
        let targets = std::iter::once(None)
            .chain(engine.all_tenants()?.into_iter().map(Some))
            .collect();
        verify(self.session, targets, None, false, self.ui)?;

        self.ui.heading("Done")?;
        if temporary {
            self.ui.line(
                "The database was temporary and is removed now. To keep one and explore it:\n  \
                 tenantry demo --db demo.redb\n  tenantry --db demo.redb audit show acme",
            )
        } else {
            let path = self.session.path().display();
            self.ui.line(format!(
                "Explore it: tenantry --db {path} tenant list, tenantry --db {path} audit show acme"
            ))
        }
    }

    /// Step 5: the escape hatch, and the entries it leaves in the tenant's own log.
    fn unscoped_read(&mut self, tenant: &TenantInfo) -> Result<(), CliError> {
        let engine = self.session.engine();
        let op = self.session.op();
        let reason = "demo: support ticket 1234 about project 1";
        let hatch = engine.unscoped_unsafe(op, reason)?;
        let value = hatch.get(tenant.id, "projects", &1u64.to_be_bytes())?;
        drop(hatch); // Dropping the handle records its summary.
        let shown = match value {
            // The plugin stores `{ name: String }` with bincode, which encodes it as the string.
            Some(v) => match tenantry_engine::decode_value::<String>(&v) {
                Ok(name) => format!("a project named {name:?}"),
                Err(_) => format!("{} bytes", v.len()),
            },
            None => "nothing".to_owned(),
        };
        self.ui.line(format!(
            "{} opened the escape hatch with the reason {reason:?}",
            op.name()
        ))?;
        self.ui.line(format!(
            "and read {}'s project 1: {}",
            tenant.name,
            neutralise(&shown)
        ))?;
        let query = AuditQuery::default().action_prefix("operator.");
        let mut seen = engine.tenant_audit_log(op, tenant.id, &query)?;
        seen.reverse();
        self.ui
            .line(format!("{}'s own audit log records it:", tenant.name))?;
        self.ui.table(&entries_table(&seen, Columns::Compact))
    }

    /// Invokes `projects` as `actor` of `tenant`, adds a row to `table`, returns the output.
    fn call(
        &mut self,
        table: &mut Table,
        tenant: &TenantInfo,
        actor: &str,
        function: &str,
        input: &str,
    ) -> Result<String, CliError> {
        let ctx = Context::tenant(tenant.id).actor(actor).request_id("demo");
        let output = self
            .host
            .invoke(&ctx, "projects", function, input.as_bytes())?;
        let output = String::from_utf8_lossy(&output).into_owned();
        table.push(vec![
            Cell::styled(tenant.name.clone(), Style::Cyan),
            actor.into(),
            function.into(),
            input.into(),
            output.clone().into(),
        ]);
        Ok(output)
    }

    fn verdict(&mut self, ok: bool, good: &str, bad: &str) -> Result<(), CliError> {
        if ok {
            let mark = self.ui.paint(Style::Green, "✓");
            self.ui.line(format!("{mark} {good}"))
        } else {
            Err(CliError::new(
                Code::Failure,
                format!("the demo found a defect: {bad}"),
            ))
        }
    }

    /// Step 6: a plugin that spins, one that writes then traps, a WASI module, escape codes.
    fn hostile(&mut self, tenant: &TenantInfo) -> Result<(), CliError> {
        let engine = self.session.engine();
        let op = self.session.op();
        self.host
            .install_for(op, tenant.id, "hostile", plugins::HOSTILE)?;
        self.ui.line(format!(
            "installed the hostile test plugin for {}",
            label(tenant)
        ))?;
        let ctx = Context::tenant(tenant.id)
            .actor("user:mallory")
            .request_id("demo");
        let keys_before = engine.tenant_info(tenant.id)?.usage.keys;
        let mut table = Table::new(&["ATTEMPT", "RESULT"]).max_cell(100);
        for (function, what) in [
            ("spin", "spin: loop forever"),
            (
                "trap_after_writes",
                "trap_after_writes: write 3 keys, then trap",
            ),
        ] {
            let result = match self.host.invoke(&ctx, "hostile", function, b"") {
                Ok(_) => {
                    return Err(CliError::new(
                        Code::Failure,
                        format!("the demo found a defect: {function} was not stopped"),
                    ));
                }
                Err(e) => format!("stopped: {e}"),
            };
            table.push(vec![what.into(), Cell::styled(result, Style::Yellow)]);
        }
        let wasi = wat::parse_str(plugins::hostile_wat::WASI_IMPORT).map_err(|e| {
            CliError::new(
                Code::Failure,
                format!("the WASI test module does not parse: {e}"),
            )
        })?;
        let refused = match self.host.install_for(op, tenant.id, "wasi", &wasi) {
            Ok(_) => {
                return Err(CliError::new(
                    Code::Failure,
                    "the demo found a defect: a WASI module was installed",
                ));
            }
            Err(e) => format!("refused: {e}"),
        };
        table.push(vec![
            "install a module importing WASI's fd_write".into(),
            Cell::styled(refused, Style::Yellow),
        ]);
        self.ui.table(&table)?;
        let keys_after = engine.tenant_info(tenant.id)?.usage.keys;
        self.verdict(
            keys_after == keys_before,
            &format!(
                "{} still has {keys_after} keys: the trapped invocation's writes were rolled back",
                tenant.name
            ),
            "a trapped invocation left writes behind",
        )?;

        let evil = "\u{1b}[2J\u{1b}[31mPWNED\u{1b}[0m\u{7}";
        let input = serde_json::json!({ "name": evil }).to_string();
        let ctx = Context::tenant(tenant.id)
            .actor("user:mallory")
            .request_id("demo");
        self.host
            .invoke(&ctx, "projects", "create", input.as_bytes())?;
        self.ui.line(format!(
            "a project named with terminal escape codes is stored as given, and shown neutralised: {}",
            neutralise(evil)
        ))
    }
}

fn calls_table() -> Table {
    Table::new(&["TENANT", "ACTOR", "CALL", "INPUT", "OUTPUT"]).max_cell(60)
}
