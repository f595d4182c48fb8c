//! `invoke`: call a plugin function on a tenant's behalf, recorded as the operator's action.
//!
//! A plugin's host calls are audited with the [`Context`]'s actor, and a `Context` cannot mark
//! an entry as an operator's (only an [`tenantry_engine::Operator`] can). So that an operator's
//! invocation is never mistaken for the tenant's own activity, the CLI does two things:
//!
//! 1. Before invoking, it records an `operator.invoke` entry in the tenant's own audit stream
//!    through the operator's reserved handle: `by_operator = true`, the operator as actor, the
//!    plugin and function as target, and the request id shared with the invocation.
//! 2. The invocation's own entries carry the actor `operator:<NAME>`, or, when `--actor` names
//!    the user the operator acts for, `<ACTOR> (via operator <NAME>)`: the operator's name is
//!    part of every entry, so filtering the log by the user's plain actor id never returns
//!    entries an operator caused. All entries share one request id (`--request-id`, or a new
//!    `cli-<pid>-<time>` id), which ties them to the `operator.invoke` entry.

use std::io::Read;
use std::path::Path;

use tenantry_engine::{AuditEvent, Context, MAX_FIELD_LEN};

use crate::cli::InvokeArgs;
use crate::exit::CliError;
use crate::output::{Painter, Style, Ui};
use crate::session::{Session, label};
use crate::text::{hex, neutralise};

pub(super) fn run(session: &Session, args: InvokeArgs, ui: &mut Ui) -> Result<(), CliError> {
    let info = session.tenant(&args.tenant)?;
    let input = read_input(&args)?;
    let op = session.op();
    let actor = on_behalf_actor(op.name(), args.actor.as_deref());
    let request_id = args.request_id.clone().unwrap_or_else(new_request_id);
    check_field("--actor", &actor)?;
    check_field("--request-id", &request_id)?;
    let doing = format!(
        "invocation of {}/{} for tenant {} failed",
        args.plugin,
        args.function,
        label(&info)
    );

    // The operator's own entry first, so that even a crash mid-invocation leaves it.
    let reserved = session
        .engine()
        .reserved_handle(&op.clone().request_id(request_id.clone()), info.id)
        .map_err(|e| CliError::from(e).context(&doing))?;
    let mut txn = reserved.begin_write()?;
    txn.audit_event(
        AuditEvent::new("operator.invoke")
            .target(format!("{}/{}", args.plugin, args.function))
            .message(format!(
                "operator {} invokes the plugin on the tenant's behalf as actor {actor:?}",
                op.name()
            )),
    )?;
    txn.commit()
        .map_err(|e| CliError::from(e).context(&doing))?;

    let mut ctx = Context::tenant(info.id).actor(actor).request_id(request_id);
    if let Some(ip) = &args.ip {
        ctx = ctx.ip(ip.clone());
    }
    let host = session.host()?;
    let call = || host.invoke(&ctx, &args.plugin, &args.function, &input);
    let result = if args.debug_log {
        tracing::subscriber::with_default(DebugLog::new(ui.err_painter()), call)
    } else {
        call()
    };
    let output = result.map_err(|e| CliError::from(e).context(&doing))?;
    print_output(&output, args.output_file.as_deref(), ui)
}

/// Who the invocation's entries name: never the tenant's own actor alone.
pub(crate) fn on_behalf_actor(operator: &str, actor: Option<&str>) -> String {
    match actor {
        None => format!("operator:{operator}"),
        Some(actor) => format!("{actor} (via operator {operator})"),
    }
}

fn check_field(flag: &str, value: &str) -> Result<(), CliError> {
    if value.len() > MAX_FIELD_LEN || value.contains('\0') {
        return Err(CliError::usage(format!(
            "{flag} is too long or contains a NUL byte (audit fields are at most \
             {MAX_FIELD_LEN} bytes, the operator's name included)"
        )));
    }
    Ok(())
}

fn new_request_id() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("cli-{}-{micros:x}", std::process::id())
}

fn read_input(args: &InvokeArgs) -> Result<Vec<u8>, CliError> {
    if let Some(text) = &args.input {
        return Ok(text.as_bytes().to_vec());
    }
    let Some(path) = &args.input_file else {
        return Ok(Vec::new());
    };
    let mut input = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().lock().read_to_end(&mut input).map(drop)
    } else {
        std::fs::read(path).map(|bytes| input = bytes)
    };
    read.map_err(|e| CliError::usage(format!("cannot read input {}: {e}", path.display())))?;
    Ok(input)
}

/// UTF-8 output as neutralised text, anything else as hex; or the exact bytes to a file.
fn print_output(output: &[u8], file: Option<&Path>, ui: &mut Ui) -> Result<(), CliError> {
    if let Some(path) = file {
        crate::output::write_atomically(path, |out| Ok(out.write_all(output)?))?;
        eprintln!(
            "wrote {} bytes of output to {}",
            output.len(),
            path.display()
        );
        return Ok(());
    }
    match std::str::from_utf8(output) {
        Ok(text) => ui.tenant_text(text),
        Err(_) => {
            eprintln!(
                "{}",
                ui.err_painter().paint(
                    Style::Dim,
                    &format!(
                        "(output of {} bytes is not UTF-8: shown as hex)",
                        output.len()
                    )
                )
            );
            ui.line(hex(output))
        }
    }
}

/// A tracing subscriber that prints the plugin's debug log (`tenantry::plugin` events) on
/// stderr, neutralised, and ignores everything else.
struct DebugLog {
    painter: Painter,
}

impl DebugLog {
    fn new(painter: Painter) -> Self {
        DebugLog { painter }
    }
}

#[derive(Default)]
struct DebugFields {
    message: String,
    plugin: String,
    truncated: bool,
}

impl tracing::field::Visit for DebugFields {
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        if field.name() == "truncated" {
            self.truncated = value;
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "plugin" => self.plugin = format!("{value:?}"),
            _ => {}
        }
    }
}

impl tracing::Subscriber for DebugLog {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "tenantry::plugin"
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = DebugFields::default();
        event.record(&mut fields);
        let prefix = self.painter.paint(
            Style::Dim,
            &format!("debug [{}]", neutralise(&fields.plugin)),
        );
        let cut = if fields.truncated { " (truncated)" } else { "" };
        eprintln!("{prefix} {}{cut}", neutralise(&fields.message));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_is_always_named() {
        assert_eq!(on_behalf_actor("cli:ann", None), "operator:cli:ann");
        assert_eq!(
            on_behalf_actor("cli:ann", Some("user:42")),
            "user:42 (via operator cli:ann)"
        );
    }

    #[test]
    fn overlong_fields_are_usage_errors() {
        assert!(check_field("--actor", &"a".repeat(MAX_FIELD_LEN + 1)).is_err());
        assert!(check_field("--actor", "nul\0").is_err());
        assert!(check_field("--actor", "user:42").is_ok());
    }
}
