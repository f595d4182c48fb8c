//! `tenant create|list|show|set-state|set-quota|delete`.

use std::io::{BufRead, Write};

use indicatif::{HumanBytes, HumanCount};
use serde_json::{Value, json};
use tenantry_engine::{Quota, TenantInfo, TenantState};
use tenantry_host::{Limits, PluginInfo};

use crate::cli::{StateArg, TenantCommand};
use crate::exit::CliError;
use crate::output::{Cell, Style, Table, Ui};
use crate::session::{Session, label};
use crate::text;

pub(super) fn run(session: &Session, command: TenantCommand, ui: &mut Ui) -> Result<(), CliError> {
    match command {
        TenantCommand::Create { names } => create(session, &names, ui),
        TenantCommand::List { all, json } => list(session, all, json.json, ui),
        TenantCommand::Show { tenant, json } => {
            show(session, &session.tenant(&tenant)?, json.json, ui)
        }
        TenantCommand::SetState { tenant, state } => {
            let info = session.tenant(&tenant)?;
            let state = match state {
                StateArg::Active => TenantState::Active,
                StateArg::ReadOnly => TenantState::ReadOnly,
                StateArg::Suspended => TenantState::Suspended,
            };
            session
                .engine()
                .set_tenant_state(session.op(), info.id, state)
                .map_err(|e| {
                    CliError::from(e).context(format!(
                        "cannot change the state of tenant {}",
                        label(&info)
                    ))
                })?;
            ui.line(format!("tenant {} is now {state}", label(&info)))
        }
        TenantCommand::SetQuota {
            tenant,
            max_bytes,
            max_keys,
        } => {
            let info = session.tenant(&tenant)?;
            let quota = Quota {
                max_bytes: max_bytes.map_or(info.quota.max_bytes, |l| l.0),
                max_keys: max_keys.map_or(info.quota.max_keys, |l| l.0),
            };
            session
                .engine()
                .set_quota(session.op(), info.id, quota)
                .map_err(|e| {
                    CliError::from(e)
                        .context(format!("cannot set the quota of tenant {}", label(&info)))
                })?;
            ui.line(format!(
                "tenant {} quota: {}",
                label(&info),
                quota_text(&quota)
            ))
        }
        TenantCommand::Delete { tenant, yes } => {
            delete(session, &session.tenant(&tenant)?, yes, ui)
        }
    }
}

fn create(session: &Session, names: &[String], ui: &mut Ui) -> Result<(), CliError> {
    let ids = session
        .engine()
        .create_tenants(session.op(), names.iter().map(String::as_str))
        .map_err(|e| CliError::from(e).context("cannot create tenants (none was created)"))?;
    if session.created() {
        ui.line(format!("created database {}", session.path().display()))?;
    }
    for (name, id) in names.iter().zip(ids) {
        ui.line(format!("created tenant {name} ({id})"))?;
    }
    Ok(())
}

fn list(session: &Session, all: bool, json: bool, ui: &mut Ui) -> Result<(), CliError> {
    let tenants = if all {
        session.engine().all_tenants()?
    } else {
        session.engine().list_tenants()?
    };
    if json {
        return ui.json(&Value::Array(tenants.iter().map(tenant_json).collect()));
    }
    if tenants.is_empty() {
        return ui.line("no tenants (create one with `tenantry tenant create NAME`)");
    }
    let mut table = Table::new(&["ID", "NAME", "STATE", "KEYS", "DATA", "AUDIT", "CREATED"])
        .right(&[0, 3, 4, 5]);
    for t in &tenants {
        table.push(vec![
            t.id.to_string().into(),
            Cell::styled(t.name.clone(), Style::Cyan),
            state_cell(t.state),
            HumanCount(t.usage.keys).to_string().into(),
            HumanBytes(t.usage.bytes).to_string().into(),
            HumanCount(t.usage.audit_entries).to_string().into(),
            text::time(t.created_micros).into(),
        ]);
    }
    ui.table(&table)
}

fn show(session: &Session, info: &TenantInfo, json: bool, ui: &mut Ui) -> Result<(), CliError> {
    // A suspended or deleted tenant's reserved tables cannot be opened: no plugins or limits.
    let plugins = plugins_and_limits(session, info);
    if json {
        let mut value = tenant_json(info);
        let (plugins, limits) = match &plugins {
            Ok((p, l)) => (
                Value::Array(p.iter().map(super::plugin::plugin_json).collect()),
                limits_json(l),
            ),
            Err(_) => (Value::Null, Value::Null),
        };
        value["plugins"] = plugins;
        value["limits"] = limits;
        return ui.json(&value);
    }
    let mut fields = vec![
        ("tenant", label(info)),
        ("state", info.state.to_string()),
        ("created", text::time(info.created_micros)),
        (
            "data",
            format!(
                "{} keys, {}",
                HumanCount(info.usage.keys),
                HumanBytes(info.usage.bytes)
            ),
        ),
        ("quota", quota_text(&info.quota)),
        (
            "audit log",
            format!(
                "{} entries, {}",
                HumanCount(info.usage.audit_entries),
                HumanBytes(info.usage.audit_bytes)
            ),
        ),
    ];
    match plugins {
        Ok((plugins, limits)) => {
            let names: Vec<String> = plugins
                .iter()
                .map(|p| format!("{} ({})", p.name, short(&p.version)))
                .collect();
            fields.push((
                "plugins",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                },
            ));
            fields.push(("limits", limits_text(&limits)));
        }
        Err(reason) => fields.push(("plugins", format!("unavailable: {reason}"))),
    }
    ui.fields(&fields)
}

fn plugins_and_limits(
    session: &Session,
    info: &TenantInfo,
) -> Result<(Vec<PluginInfo>, Limits), CliError> {
    let host = session.host()?;
    let plugins = host.list_plugins_for(session.op(), info.id)?;
    let limits = host.limits_for(session.op(), info.id)?;
    Ok((plugins, limits))
}

fn delete(session: &Session, info: &TenantInfo, yes: bool, ui: &mut Ui) -> Result<(), CliError> {
    if !yes {
        confirm(info, ui)?;
    }
    let bar = ui.bar(info.usage.keys, format!("purging {}", info.name));
    let mut purged = 0;
    let result = session
        .engine()
        .delete_tenant_with_progress(session.op(), info.id, |n| {
            purged = n;
            bar.set_position(n);
        });
    bar.finish_and_clear();
    result
        .map_err(|e| CliError::from(e).context(format!("cannot delete tenant {}", label(info))))?;
    ui.line(format!(
        "deleted tenant {}: purged {} keys; its audit log stays readable as '{}'",
        label(info),
        HumanCount(purged),
        info.id
    ))
}

/// Asks a person at a terminal to type the tenant's name; refuses without a terminal.
fn confirm(info: &TenantInfo, ui: &mut Ui) -> Result<(), CliError> {
    if !ui.interactive() {
        return Err(CliError::usage(format!(
            "refusing to delete tenant {} without --yes (stdin is not a terminal)",
            label(info)
        )));
    }
    ui.flush()?;
    let mut stderr = std::io::stderr().lock();
    write!(
        stderr,
        "Delete tenant {} and purge its {} keys? Its audit log stays readable.\nType the tenant's name to confirm: ",
        label(info),
        HumanCount(info.usage.keys)
    )?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != info.name {
        return Err(CliError::usage(format!(
            "deletion of tenant {} not confirmed",
            label(info)
        )));
    }
    Ok(())
}

/// The JSON view of a tenant.
pub(crate) fn tenant_json(t: &TenantInfo) -> Value {
    json!({
        "id": t.id.get(),
        "name": t.name,
        "state": t.state.as_str(),
        "created": text::time_precise(t.created_micros),
        "created_micros": t.created_micros,
        "usage": {
            "keys": t.usage.keys,
            "bytes": t.usage.bytes,
            "audit_entries": t.usage.audit_entries,
            "audit_bytes": t.usage.audit_bytes,
        },
        "quota": { "max_bytes": t.quota.max_bytes, "max_keys": t.quota.max_keys },
    })
}

/// The JSON view of plugin limits.
pub(crate) fn limits_json(l: &Limits) -> Value {
    json!({
        "fuel": l.fuel,
        "wall_time_ms": u64::try_from(l.wall_time.as_millis()).unwrap_or(u64::MAX),
        "memory_bytes": l.memory_bytes,
        "host_calls": l.host_calls,
        "bytes_read": l.bytes_read,
        "bytes_written": l.bytes_written,
        "input_bytes": l.input_bytes,
        "output_bytes": l.output_bytes,
        "debug_log_bytes": l.debug_log_bytes,
        "concurrency": l.concurrency,
    })
}

/// A state, coloured by how much it allows.
pub(crate) fn state_cell(state: TenantState) -> Cell {
    let style = match state {
        TenantState::Active => Style::Green,
        TenantState::ReadOnly => Style::Yellow,
        TenantState::Suspended => Style::Red,
        _ => Style::Dim,
    };
    Cell::styled(state.to_string(), style)
}

/// `max 10 MiB, 1,000 keys` or `unlimited`.
pub(crate) fn quota_text(q: &Quota) -> String {
    let bytes = q.max_bytes.map_or("unlimited bytes".to_owned(), |b| {
        format!("max {}", HumanBytes(b))
    });
    let keys = q.max_keys.map_or("unlimited keys".to_owned(), |k| {
        format!("max {} keys", HumanCount(k))
    });
    format!("{bytes}, {keys}")
}

/// The limits an operator looks at first.
pub(crate) fn limits_text(l: &Limits) -> String {
    format!(
        "fuel {}, wall time {:?}, memory {}, {} host calls, {} concurrent",
        HumanCount(l.fuel),
        l.wall_time,
        HumanBytes(l.memory_bytes),
        HumanCount(u64::from(l.host_calls)),
        l.concurrency
    )
}

/// The first 12 hex digits of a plugin version.
pub(crate) fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_read_as_limits() {
        let q = Quota {
            max_bytes: Some(10 << 20),
            max_keys: None,
        };
        assert_eq!(quota_text(&q), "max 10.00 MiB, unlimited keys");
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}
