//! `audit show|export|verify`: reading audit logs as an operator, deleted tenants' included.

use std::io::{self, Write};

use indicatif::{HumanCount, ProgressBar};
use serde_json::{Value, json};
use tenantry_engine::{AuditEntry, AuditQuery, AuditStream, Error, Outcome, TenantInfo, hash_hex};

use crate::cli::{AuditCommand, AuditShowArgs, ExportFormat, StreamArg};
use crate::exit::{CliError, Code};
use crate::output::{Cell, Style, Table, Ui, write_atomically};
use crate::session::{Session, label};
use crate::text::{self, json_safe};

pub(super) fn run(session: &Session, command: AuditCommand, ui: &mut Ui) -> Result<(), CliError> {
    match command {
        AuditCommand::Show(args) => show(session, args, ui),
        AuditCommand::Export {
            stream,
            format: ExportFormat::Jsonl,
            output,
        } => {
            let (stream, name, total) = resolve(session, &stream)?;
            let bar = match total {
                Some(total) => ui.bar(total, format!("exporting {name}")),
                None => ui.spinner(format!("exporting {name}"), true),
            };
            let export = |out: &mut dyn Write| {
                let mut lines = SafeLines::new(out, bar.clone());
                let count = session
                    .engine()
                    .export_audit_jsonl(session.op(), stream, &mut lines)
                    .map_err(|e| CliError::from(e).context(format!("cannot export {name}")))?;
                lines.flush()?;
                Ok(count)
            };
            let count = match &output {
                Some(path) => write_atomically(path, export)?,
                None => export(ui.raw())?,
            };
            bar.finish_and_clear();
            if let Some(path) = output {
                eprintln!(
                    "exported {} entries of {name} to {}",
                    HumanCount(count),
                    path.display()
                );
            }
            Ok(())
        }
        AuditCommand::Verify {
            tenant,
            all,
            head,
            json,
        } => {
            let targets = match (tenant, all) {
                (Some(tenant), _) => vec![Some(session.tenant(&tenant)?)],
                (None, _) => std::iter::once(None)
                    .chain(session.engine().all_tenants()?.into_iter().map(Some))
                    .collect(),
            };
            verify(session, targets, head, json.json, ui)
        }
    }
}

/// The stream, how to name it in messages, and its number of entries if known.
fn resolve(
    session: &Session,
    stream: &StreamArg,
) -> Result<(AuditStream, String, Option<u64>), CliError> {
    match &stream.tenant {
        Some(tenant) => {
            let info = session.tenant(tenant)?;
            Ok((
                AuditStream::Tenant(info.id),
                format!("the audit log of tenant {}", label(&info)),
                Some(info.usage.audit_entries),
            ))
        }
        None => Ok((AuditStream::System, "the system audit log".to_owned(), None)),
    }
}

fn show(session: &Session, args: AuditShowArgs, ui: &mut Ui) -> Result<(), CliError> {
    let mut query = AuditQuery::default();
    if let Some(since) = args.since {
        query = query.since(since);
    }
    if let Some(until) = args.until {
        query = query.until(until);
    }
    if let Some(prefix) = args.action {
        query = query.action_prefix(prefix);
    }
    if let Some(actor) = args.actor {
        query = query.actor(actor);
    }
    if let Some(limit) = args.limit {
        query = query.limit(limit);
    }
    let (stream, name, _) = resolve(session, &args.stream)?;
    let mut entries = match stream {
        AuditStream::Tenant(id) => session.engine().tenant_audit_log(session.op(), id, &query),
        AuditStream::System => session.engine().system_audit_log(session.op(), &query),
    }
    .map_err(|e| CliError::from(e).context(format!("cannot read {name}")))?;
    if args.reverse {
        entries.reverse();
    }
    if args.json.json {
        return ui.json(&Value::Array(
            entries.iter().map(entry_json).collect::<Result<_, _>>()?,
        ));
    }
    if entries.is_empty() {
        return ui.line(format!("no entries of {name} match"));
    }
    let columns = if args.wide {
        Columns::Wide
    } else {
        Columns::Standard
    };
    ui.table(&entries_table(&entries, columns))
}

/// The JSON view of an entry: the engine's own serialization, as `audit export` writes it.
fn entry_json(entry: &AuditEntry) -> Result<Value, CliError> {
    serde_json::to_value(entry).map_err(|e| CliError::new(Code::Failure, e.to_string()))
}

/// Which columns [`entries_table`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Columns {
    /// Seq, time, by, actor, action, target, outcome, message.
    Standard,
    /// Standard plus ip, request id, origin and hash; no cell is cut.
    Wide,
    /// Standard without the time, outcomes without their reasons, cells cut shorter: for
    /// the demo.
    Compact,
}

/// Audit entries as a table.
pub(crate) fn entries_table(entries: &[AuditEntry], columns: Columns) -> Table {
    let wide = columns == Columns::Wide;
    let compact = columns == Columns::Compact;
    let mut headers = vec![
        "SEQ", "TIME", "BY", "ACTOR", "ACTION", "TARGET", "OUTCOME", "MESSAGE",
    ];
    if wide {
        headers.extend(["IP", "REQUEST", "ORIGIN", "HASH"]);
    }
    if compact {
        headers.remove(1);
    }
    let mut table = Table::new(&headers).right(&[0]).max_cell(match columns {
        Columns::Standard => 60,
        Columns::Wide => usize::MAX,
        Columns::Compact => 28,
    });
    let opt = |s: &Option<String>| Cell::from(s.clone().unwrap_or_default());
    for e in entries {
        let (by, by_style) = if e.by_operator {
            ("operator", Style::Yellow)
        } else {
            ("tenant", Style::Plain)
        };
        let outcome_style = match &e.outcome {
            Outcome::Ok => Style::Green,
            Outcome::NoChange => Style::Dim,
            _ => Style::Red,
        };
        let mut row = vec![
            e.seq.to_string().into(),
            text::time(e.timestamp_micros).into(),
            Cell::styled(by, by_style),
            opt(&e.actor),
            Cell::styled(e.action.clone(), Style::Cyan),
            opt(&e.target),
            Cell::styled(outcome_text(&e.outcome, compact), outcome_style),
            opt(&e.message),
        ];
        if compact {
            row.remove(1);
        }
        if wide {
            row.extend([
                opt(&e.ip),
                opt(&e.request_id),
                opt(&e.origin),
                hash_hex(&e.hash).into(),
            ]);
        }
        table.push(row);
    }
    table
}

/// An outcome, or only its kind (`failed`, without the reason) when `short`.
fn outcome_text(outcome: &Outcome, short: bool) -> String {
    match outcome {
        Outcome::Denied(_) if short => "denied".to_owned(),
        Outcome::Failed(_) if short => "failed".to_owned(),
        other => other.to_string(),
    }
}

/// One verified stream: `None` is the system stream.
struct Verified {
    tenant: Option<TenantInfo>,
    result: Result<u64, Error>,
}

/// Verifies the given streams (`None`: the system stream), prints the results, and fails with
/// [`Code::AuditTampered`] if one was tampered with.
pub(crate) fn verify(
    session: &Session,
    targets: Vec<Option<TenantInfo>>,
    head: Option<(u64, [u8; 32])>,
    json: bool,
    ui: &mut Ui,
) -> Result<(), CliError> {
    let engine = session.engine();
    let progress = if targets.len() == 1 {
        let entries = targets[0].as_ref().map_or(0, |t| t.usage.audit_entries);
        ui.spinner(
            format!("verifying {} audit entries", HumanCount(entries)),
            false,
        )
    } else {
        ui.bar(targets.len() as u64, "verifying audit logs")
    };
    let mut verified = Vec::new();
    for tenant in targets {
        let result = match &tenant {
            Some(t) => match &head {
                Some((seq, hash)) => engine.verify_audit_against(t.id, *seq, hash),
                None => engine.verify_audit(t.id),
            },
            None => engine.verify_stream(AuditStream::System, None),
        };
        progress.inc(1);
        verified.push(Verified { tenant, result });
    }
    progress.finish_and_clear();
    report(&verified, json, ui)?;
    let failures: Vec<(String, &Error)> = verified
        .iter()
        .filter_map(|v| v.result.as_ref().err().map(|e| (stream_name(v), e)))
        .collect();
    let Some((name, first)) = failures.first() else {
        return Ok(());
    };
    let tampered = failures
        .iter()
        .filter(|(_, e)| matches!(e, Error::AuditTampered { .. }))
        .count();
    let what = match first {
        Error::AuditTampered { seq, reason, .. } => {
            format!("{name} was tampered with: verification failed at seq {seq}: {reason}")
        }
        other => format!("cannot verify {name}: {}", CliError::from(*other)),
    };
    let code = if tampered > 0 {
        Code::AuditTampered
    } else {
        Code::Failure
    };
    let message = match failures.len() {
        1 => what,
        n => format!("{n} audit logs failed verification; the first: {what}"),
    };
    Err(CliError::new(code, message))
}

fn stream_name(v: &Verified) -> String {
    match &v.tenant {
        Some(t) => format!("the audit log of tenant {}", label(t)),
        None => "the system audit log".to_owned(),
    }
}

fn report(verified: &[Verified], json: bool, ui: &mut Ui) -> Result<(), CliError> {
    if json {
        let rows = verified
            .iter()
            .map(|v| {
                let (ok, entries, error) = match &v.result {
                    Ok(n) => (true, Some(*n), Value::Null),
                    Err(Error::AuditTampered { seq, reason, .. }) => (false, None, json!({ "tampered": true, "seq": seq, "reason": reason })),
                    Err(e) => (false, None, json!({ "tampered": false, "reason": e.to_string() })),
                };
                let tenant = v.tenant.as_ref().map(|t| json!({ "id": t.id.get(), "name": t.name, "state": t.state.as_str() }));
                json!({ "stream": if v.tenant.is_some() { "tenant" } else { "system" }, "tenant": tenant, "ok": ok, "entries": entries, "error": error })
            })
            .collect();
        return ui.json(&Value::Array(rows));
    }
    let mut table = Table::new(&["STREAM", "STATE", "ENTRIES", "RESULT"])
        .right(&[2])
        .max_cell(100);
    for v in verified {
        let (stream, state) = match &v.tenant {
            Some(t) => (label(t), super::tenant::state_cell(t.state)),
            None => ("system".to_owned(), Cell::from("")),
        };
        let (entries, result) = match &v.result {
            Ok(n) => (
                HumanCount(*n).to_string(),
                Cell::styled("intact", Style::Green),
            ),
            Err(Error::AuditTampered { seq, reason, .. }) => (
                String::new(),
                Cell::styled(format!("TAMPERED at seq {seq}: {reason}"), Style::Red),
            ),
            Err(e) => (
                String::new(),
                Cell::styled(format!("error: {e}"), Style::Red),
            ),
        };
        table.push(vec![stream.into(), state, entries.into(), result]);
    }
    ui.table(&table)
}

/// A writer for JSON Lines that escapes, per line, what serde_json leaves raw (see
/// [`json_safe`]) and advances a progress bar by one per line.
struct SafeLines<'a> {
    out: &'a mut dyn Write,
    line: Vec<u8>,
    bar: ProgressBar,
}

impl<'a> SafeLines<'a> {
    fn new(out: &'a mut dyn Write, bar: ProgressBar) -> Self {
        SafeLines {
            out,
            line: Vec::new(),
            bar,
        }
    }

    fn write_line(&mut self) -> io::Result<()> {
        let text = String::from_utf8_lossy(&self.line);
        self.out.write_all(json_safe(&text).as_bytes())?;
        self.line.clear();
        Ok(())
    }
}

impl Write for SafeLines<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for chunk in buf.split_inclusive(|b| *b == b'\n') {
            self.line.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") {
                self.write_line()?;
                self.bar.inc(1);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            self.write_line()?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn safe_lines_escape_across_split_writes() {
        let mut out = Vec::new();
        let mut lines = SafeLines::new(&mut out, ProgressBar::hidden());
        let line = "{\"m\":\"a\u{9b}b\"}\n".as_bytes();
        // Split inside the two-byte encoding of U+009B.
        let cut = line.iter().position(|b| *b == 0xc2).unwrap() + 1;
        lines.write_all(&line[..cut]).unwrap();
        lines.write_all(&line[cut..]).unwrap();
        lines.write_all(b"{}").unwrap();
        lines.flush().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"m\":\"a\\u009bb\"}\n{}");
    }
}
