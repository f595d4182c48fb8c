//! One module per subcommand family; [`run`] opens the database and dispatches.

pub(crate) mod audit;
mod invoke;
mod plugin;
mod stats;
pub(crate) mod tenant;

use std::path::PathBuf;

use crate::cli::{Cli, Command, TenantCommand};
use crate::exit::CliError;
use crate::output::Ui;
use crate::session::{self, Create, Session};

/// Runs the parsed command line.
///
/// # Errors
/// Whatever the command failed with; see [`crate::exit`] for the codes.
pub(crate) fn run(cli: Cli, ui: &mut Ui) -> Result<(), CliError> {
    let op = session::operator(cli.operator);
    if matches!(cli.command, Command::Demo) {
        #[cfg(feature = "demo")]
        return crate::demo::run(cli.db, op, ui);
        #[cfg(not(feature = "demo"))]
        return Err(CliError::usage(
            "this tenantry was built without its `demo` feature (cargo's --no-default-features)",
        ));
    }
    let command = cli.command;
    let session = match cli.pg {
        Some(url) => Session::open_postgres(&url, &cli.pg_schema, op)?,
        None => {
            let path = cli.db.unwrap_or_else(|| PathBuf::from(session::DEFAULT_DB));
            let create = match command {
                Command::Tenant(TenantCommand::Create { .. }) => Create::IfMissing,
                _ => Create::No,
            };
            Session::open(&path, op, create)?
        }
    };
    let result = dispatch(&session, command, ui);
    let flushed = ui.flush();
    session.close(result.is_err());
    result.and(flushed)
}

fn dispatch(session: &Session, command: Command, ui: &mut Ui) -> Result<(), CliError> {
    match command {
        Command::Tenant(command) => tenant::run(session, command, ui),
        Command::Plugin(command) => plugin::run(session, command, ui),
        Command::Invoke(args) => invoke::run(session, args, ui),
        Command::Audit(command) => audit::run(session, command, ui),
        Command::Stats(json) => stats::run(session, json.json, ui),
        // Needs no database of the user's: handled in `run`.
        Command::Demo => Ok(()),
    }
}
