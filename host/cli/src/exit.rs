//! Exit codes, and [`CliError`]: the one error every command returns.
//!
//! Every failure ends the process with one line on stderr, `error: <what was wrong>`, and one
//! of these codes (also listed by `tenantry --help`):
//!
//! | code | meaning                                                                               |
//! |------|---------------------------------------------------------------------------------------|
//! | 0    | success                                                                               |
//! | 1    | any other failure: storage or I/O error, corrupted or foreign database file           |
//! | 2    | usage: a bad command line (unknown option, bad state name, invalid name, unreadable  |
//! |      | input file, a deletion not confirmed)                                                 |
//! | 3    | the database file does not exist (only `tenant create` and `demo` create one)         |
//! | 4    | the database is in use by another process                                             |
//! | 5    | not found: unknown tenant, plugin or plugin function                                  |
//! | 6    | plugin refused at install: invalid wasm, refused import, ABI violation, too large     |
//! | 7    | a limit was breached or the invocation failed (fuel, time, memory, quota, trap, …)    |
//! | 8    | an audit log failed verification: it was tampered with                                |
//! | 9    | refused by the tenant's state (suspended, read-only, deleted) or a name already taken |
//!
//! The codes are part of the CLI's interface for scripts: a variant's number never changes.

use std::fmt;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Why the process stops; each has a fixed exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// 1: storage, I/O, or anything without a more precise code.
    Failure,
    /// 2: the command line is wrong.
    Usage,
    /// 3: the database file does not exist.
    MissingDatabase,
    /// 4: another process has the database open.
    DatabaseInUse,
    /// 5: unknown tenant, plugin or function.
    NotFound,
    /// 6: the plugin module was refused at install.
    PluginRefused,
    /// 7: a limit was breached or the invocation failed.
    InvocationFailed,
    /// 8: an audit log failed verification.
    AuditTampered,
    /// 9: the tenant's state forbids it, or the name is taken.
    Refused,
}

impl Code {
    /// The process exit code.
    pub(crate) fn value(self) -> u8 {
        match self {
            Code::Failure => 1,
            Code::Usage => 2,
            Code::MissingDatabase => 3,
            Code::DatabaseInUse => 4,
            Code::NotFound => 5,
            Code::PluginRefused => 6,
            Code::InvocationFailed => 7,
            Code::AuditTampered => 8,
            Code::Refused => 9,
        }
    }
}

/// The exit codes as shown at the end of `tenantry --help`; keep in step with the table above.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  other failure (storage or I/O error, corrupted or foreign database file)
  2  usage: bad command line (bad option or value, invalid name, unreadable input file)
  3  the database file does not exist (only `tenant create` and `demo` create one)
  4  the database is in use by another process
  5  unknown tenant, plugin or plugin function
  6  plugin refused at install (invalid wasm, refused import, ABI violation, too large)
  7  limit breached or invocation failed (fuel, time, memory, quota, trap, plugin error)
  8  an audit log failed verification (tampered with)
  9  refused by the tenant's state (suspended, read-only, deleted) or a name already taken";

/// A failure: what to print on stderr and which exit code to return.
#[derive(Debug)]
pub(crate) struct CliError {
    code: Code,
    message: String,
    broken_pipe: bool,
}

impl CliError {
    /// A failure with `code` and a message that reads as a sentence naming what was wrong.
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
            broken_pipe: false,
        }
    }

    /// A usage error (exit code 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }

    /// Prefixes the message with what was being done: `"<doing>: <message>"`.
    pub(crate) fn context(mut self, doing: impl fmt::Display) -> Self {
        self.message = format!("{doing}: {}", self.message);
        self
    }

    /// The exit code.
    pub(crate) fn code(&self) -> Code {
        self.code
    }

    /// Whether the reader of stdout went away (`tenantry audit show | head`): not a failure.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        self.broken_pipe
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `err` followed by its sources, `: `-separated (the engine keeps causes in `source()`).
fn with_sources(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl From<tenantry_engine::Error> for CliError {
    fn from(err: tenantry_engine::Error) -> Self {
        CliError::from(&err)
    }
}

impl From<&tenantry_engine::Error> for CliError {
    fn from(err: &tenantry_engine::Error) -> Self {
        use tenantry_engine::Error as E;
        let code = match err {
            E::UnknownTenant(_) => Code::NotFound,
            E::TenantDeleted(_)
            | E::TenantSuspended(_)
            | E::TenantReadOnly(_)
            | E::TenantNameTaken(_) => Code::Refused,
            E::InvalidTenantName { .. }
            | E::InvalidTableName { .. }
            | E::InvalidField { .. }
            | E::MissingReason => Code::Usage,
            E::QuotaExceeded { .. }
            | E::KeyTooLarge { .. }
            | E::ValueTooLarge { .. }
            | E::TransactionTooLarge { .. } => Code::InvocationFailed,
            E::AuditTampered { .. } => Code::AuditTampered,
            E::DatabaseInUse => Code::DatabaseInUse,
            _ => Code::Failure,
        };
        let message = match err {
            E::DatabaseInUse => {
                "the database is in use by another process; the CLI needs a database file no \
                 other process has open (stop the application using it, or work on a copy)"
                    .to_owned()
            }
            _ => with_sources(err),
        };
        let mut cli = CliError::new(code, message);
        cli.broken_pipe = matches!(err, E::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe);
        cli
    }
}

impl From<tenantry_host::HostError> for CliError {
    fn from(err: tenantry_host::HostError) -> Self {
        use tenantry_host::HostError as H;
        let code = match &err {
            H::InvalidName { .. } => Code::Usage,
            H::UnknownPlugin(_) => Code::NotFound,
            H::ModuleTooLarge { .. }
            | H::InvalidModule(_)
            | H::RefusedImport { .. }
            | H::Abi(_)
            | H::CompileTimeout(_) => Code::PluginRefused,
            _ => Code::Failure,
        };
        match err {
            H::Engine(inner) => inner.into(),
            other => CliError::new(code, with_sources(&other)),
        }
    }
}

impl From<tenantry_host::InvokeError> for CliError {
    fn from(err: tenantry_host::InvokeError) -> Self {
        use tenantry_host::InvokeError as I;
        match err {
            I::Engine(inner) => inner.into(),
            I::UnknownPlugin(_) | I::UnknownFunction { .. } => {
                CliError::new(Code::NotFound, with_sources(&err))
            }
            other => CliError::new(Code::InvocationFailed, with_sources(&other)),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        let broken_pipe = err.kind() == std::io::ErrorKind::BrokenPipe;
        CliError {
            code: Code::Failure,
            message: format!("I/O error: {err}"),
            broken_pipe,
        }
    }
}

/// Reports a command line clap rejected: help and version as clap prints them; an error as
/// one line (clap's message with its details, without the usage block), exit code 2.
pub(crate) fn clap_failure(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
    }
    let line = one_line(&err.render().to_string());
    let painter = crate::output::Painter::new(std::io::stderr().is_terminal());
    let line = match line.strip_prefix("error: ") {
        Some(rest) => format!(
            "{} {rest}",
            painter.paint(crate::output::Style::Red, "error:")
        ),
        None => line,
    };
    eprintln!("{}", crate::text::neutralise(&line));
    ExitCode::from(Code::Usage.value())
}

/// clap's rendered error (`error: …`, indented details, a usage block, a hint) as one line.
fn one_line(rendered: &str) -> String {
    let mut parts = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line);
        }
    }
    format!("{} (see --help)", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_engine::{Error as E, TenantId};

    #[test]
    fn engine_errors_map_to_documented_codes() {
        let t = TenantId::from_raw(3);
        let cases: [(E, u8); 6] = [
            (E::UnknownTenant(t), 5),
            (E::TenantSuspended(t), 9),
            (E::DatabaseInUse, 4),
            (
                E::AuditTampered {
                    stream: tenantry_engine::AuditStream::Tenant(t),
                    seq: 2,
                    reason: "x".into(),
                },
                8,
            ),
            (E::TenantNameTaken("a".into()), 9),
            (E::Corrupted("bad".into()), 1),
        ];
        for (err, code) in cases {
            assert_eq!(CliError::from(err).code().value(), code);
        }
    }

    #[test]
    fn host_errors_map_to_documented_codes() {
        use tenantry_host::{HostError as H, InvokeError as I};
        let refused = H::RefusedImport {
            module: "wasi_snapshot_preview1".into(),
            name: "fd_write".into(),
        };
        assert_eq!(CliError::from(refused).code(), Code::PluginRefused);
        let wrapped = H::Engine(E::UnknownTenant(TenantId::from_raw(1)));
        assert_eq!(CliError::from(wrapped).code(), Code::NotFound);
        assert_eq!(
            CliError::from(I::OutOfFuel { limit: 5 }).code(),
            Code::InvocationFailed
        );
        assert_eq!(
            CliError::from(I::UnknownPlugin("p".into())).code(),
            Code::NotFound
        );
    }

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: invalid value 'frozen' for '<STATE>'\n  [possible values: active, \
                        read-only]\n\nUsage: tenantry tenant set-state <TENANT> <STATE>\n\n\
                        For more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: invalid value 'frozen' for '<STATE>' [possible values: active, read-only] \
             (see --help)"
        );
    }

    #[test]
    fn context_prefixes_the_message() {
        let err = CliError::usage("bad").context("cannot create tenant");
        assert_eq!(err.to_string(), "cannot create tenant: bad");
    }
}
