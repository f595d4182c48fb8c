//! # tenantry
//!
//! The operator's command-line tool for a tenantry database, as SQLite has its shell:
//!
//! ```text
//! tenantry demo                                    # see the whole system work
//! tenantry tenant create acme                      # creates ./tenantry.redb if missing
//! tenantry plugin install acme projects projects.wasm
//! tenantry invoke acme projects create --input '{"name":"apollo"}' --actor user:42
//! tenantry audit show acme --action operator.
//! tenantry audit verify --all
//! ```
//!
//! * **One file, one process.** Every command works on the database named by `--db` (or
//!   `TENANTRY_DB`, default `./tenantry.redb`) and fails with exit code 4 if another process
//!   has it open. Only `tenant create` and `demo` create a missing file; a failed
//!   `tenant create` removes the file it created, and exports are written atomically.
//! * **An operator, never a tenant.** Everything is done as `--operator` (or
//!   `TENANTRY_OPERATOR`, default `cli:$USER`) and recorded so in the audit logs; see
//!   `commands/invoke.rs` for how an invocation on a tenant's behalf is recorded.
//! * **Tenant text is neutralised.** Keys, actors, messages, plugin output and debug logs reach
//!   the terminal through one function (`text::neutralise`), so a tenant cannot send escape
//!   sequences to the operator's terminal.
//! * **Scripts** get `--json` on every read command and the exit codes of the `exit` module
//!   (also listed by `tenantry --help`): 0 success, 1 other failure, 2 usage, 3 missing
//!   database, 4 database in use, 5 unknown tenant/plugin/function, 6 plugin refused at
//!   install, 7 limit breached or invocation failed, 8 audit log tampered, 9 refused by the
//!   tenant's state or a name already taken.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cli;
mod commands;
#[cfg(feature = "demo")]
mod demo;
mod exit;
mod output;
mod session;
mod text;

use std::process::ExitCode;

use clap::Parser;

use crate::output::{Style, Ui};

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return exit::clap_failure(&err),
    };
    let mut ui = Ui::new(cli.color);
    match commands::run(cli, &mut ui) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            let _ = ui.flush();
            let label = ui.err_painter().paint(Style::Red, "error:");
            eprintln!("{label} {}", text::neutralise(&err.to_string()));
            ExitCode::from(err.code().value())
        }
    }
}
