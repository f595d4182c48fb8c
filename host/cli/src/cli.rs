//! The command line, as clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::EXIT_CODES_HELP;

/// Operate a tenantry database: tenants, plugins, invocations and audit logs.
///
/// Every command works on one database: a file that no other process has open (`--db`), or a
/// live PostgreSQL database that app nodes share (`--pg`). What it changes is recorded in the
/// audit logs as the operator's action (`--operator`).
#[derive(Debug, Parser)]
#[command(name = "tenantry", version, after_help = EXIT_CODES_HELP, arg_required_else_help = true)]
pub(crate) struct Cli {
    /// The database file [default: ./tenantry.redb]
    #[arg(long, global = true, env = "TENANTRY_DB", value_name = "PATH")]
    pub(crate) db: Option<PathBuf>,

    /// A PostgreSQL database instead of a file, as a libpq connection string or URL, for
    /// example 'host=db1,db2 user=tenantry dbname=app target_session_attrs=read-write'
    #[arg(
        long,
        global = true,
        env = "TENANTRY_PG",
        value_name = "URL",
        conflicts_with = "db"
    )]
    pub(crate) pg: Option<String>,

    /// The PostgreSQL schema that holds tenantry's tables (with --pg)
    #[arg(
        long,
        global = true,
        env = "TENANTRY_PG_SCHEMA",
        value_name = "NAME",
        default_value = "tenantry"
    )]
    pub(crate) pg_schema: String,

    /// Who is operating, as recorded in audit logs [default: cli:$USER]
    #[arg(long, global = true, env = "TENANTRY_OPERATOR", value_name = "NAME")]
    pub(crate) operator: Option<String>,

    /// When to colour the output
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub(crate) color: ColorChoice,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// When to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    /// Only on a terminal, and not if NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, list, inspect, suspend, limit and delete tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Install, list and remove a tenant's plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Call a plugin function on a tenant's behalf (recorded as the operator's action).
    Invoke(InvokeArgs),
    /// Read, export and verify audit logs (deleted tenants' included).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Per-tenant usage, quotas, plugin limits and plugin counts.
    Stats(JsonFlag),
    /// See the whole system work: two tenants, a plugin, isolation, audit, a hostile plugin.
    ///
    /// Uses a temporary database that is removed at the end, or a new file given with --db.
    Demo,
}

/// `--json`: machine-readable output.
#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print JSON instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

/// A tenant named on the command line: its name, or `#ID` (quote it: an unquoted `#` starts a
/// shell comment) or `id:ID`, which also reach deleted tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TenantRef {
    /// By name: the live tenant, else the deleted tenant that had this name.
    Name(String),
    /// By id.
    Id(u64),
}

impl std::fmt::Display for TenantRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TenantRef::Name(name) => write!(f, "{name:?}"),
            TenantRef::Id(id) => write!(f, "#{id}"),
        }
    }
}

fn tenant_ref(text: &str) -> Result<TenantRef, String> {
    let id = text.strip_prefix('#').or_else(|| text.strip_prefix("id:"));
    match id {
        Some(digits) => digits
            .parse()
            .map(TenantRef::Id)
            .map_err(|_| format!("{text:?} is not a tenant id (expected #ID, e.g. '#3')")),
        None if text.is_empty() => Err("a tenant name must not be empty".into()),
        None => Ok(TenantRef::Name(text.to_owned())),
    }
}

/// `tenant …`
#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Create tenants (all or none); creates the database file if it is missing.
    Create {
        /// Names: 1-63 of a-z, 0-9, '-' and '_', starting with a letter or digit
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List tenants.
    List {
        /// Include deleted tenants (their audit logs stay readable)
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show one tenant: state, usage, quota, plugins and limits.
    Show {
        /// The tenant: a name, or '#ID'
        #[arg(value_parser = tenant_ref)]
        tenant: TenantRef,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Make a tenant active, read-only or suspended.
    SetState {
        /// The tenant: a name, or '#ID'
        #[arg(value_parser = tenant_ref)]
        tenant: TenantRef,
        /// The new state
        #[arg(value_enum)]
        state: StateArg,
    },
    /// Set a tenant's storage quota; a limit not given is kept.
    #[command(group(clap::ArgGroup::new("limit").required(true).multiple(true)))]
    SetQuota {
        /// The tenant: a name, or '#ID'
        #[arg(value_parser = tenant_ref)]
        tenant: TenantRef,
        /// Bytes of keys and values: a number with an optional K/M/G/T suffix, or 'unlimited'
        #[arg(long, group = "limit", value_name = "SIZE", value_parser = limit)]
        max_bytes: Option<Limit>,
        /// Number of keys, or 'unlimited'
        #[arg(long, group = "limit", value_name = "N", value_parser = limit)]
        max_keys: Option<Limit>,
    },
    /// Delete a tenant and purge its data; its audit log stays readable by '#ID'.
    Delete {
        /// The tenant: a name, or '#ID'
        #[arg(value_parser = tenant_ref)]
        tenant: TenantRef,
        /// Do not ask for confirmation (required when stdin is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// A quota limit from the command line; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(pub(crate) Option<u64>);

fn limit(text: &str) -> Result<Limit, String> {
    crate::text::parse_limit(text).map(Limit)
}

/// The states an operator can set (deleting is `tenant delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StateArg {
    /// Reads and writes allowed.
    Active,
    /// Reads allowed, writes refused.
    #[value(alias = "readonly")]
    ReadOnly,
    /// Nothing allowed.
    Suspended,
}

/// `plugin …`
#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// Install (or replace) a plugin for a tenant from a .wasm file (or a .wat text file).
    Install {
        /// The tenant: a name, or '#ID'
        #[arg(value_parser = tenant_ref)]
        tenant: TenantRef,
        /// The plugin's name: 1-64 of a-z, 0-9, '-' and '_'
        name: String,
        /// The module
        file: PathBuf,
    },
    /// List a tenant's plugins.
    List {
        /// The tenant: a name, or '#ID'
        #[arg(value_parser = tenant_ref)]
        tenant: TenantRef,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove a tenant's plugin.
    Remove {
        /// The tenant: a name, or '#ID'
        #[arg(value_parser = tenant_ref)]
        tenant: TenantRef,
        /// The plugin's name
        name: String,
    },
}

/// `invoke …`
#[derive(Debug, Args)]
pub(crate) struct InvokeArgs {
    /// The tenant: a name, or '#ID'
    #[arg(value_parser = tenant_ref)]
    pub(crate) tenant: TenantRef,
    /// The plugin's name
    pub(crate) plugin: String,
    /// The function to call
    pub(crate) function: String,
    /// The input, as text
    #[arg(long, conflicts_with = "input_file")]
    pub(crate) input: Option<String>,
    /// Read the input from a file ('-' for stdin)
    #[arg(long, value_name = "PATH")]
    pub(crate) input_file: Option<PathBuf>,
    /// The user the operator acts for, recorded as "ACTOR (via operator NAME)"
    /// [default: operator:NAME]
    #[arg(long)]
    pub(crate) actor: Option<String>,
    /// The client IP address to record
    #[arg(long)]
    pub(crate) ip: Option<String>,
    /// The request id to record [default: a new cli-… id]
    #[arg(long)]
    pub(crate) request_id: Option<String>,
    /// Write the exact output bytes to this file instead of printing them
    #[arg(long, value_name = "PATH")]
    pub(crate) output_file: Option<PathBuf>,
    /// Print the plugin's debug log on stderr
    #[arg(long)]
    pub(crate) debug_log: bool,
}

/// Which audit stream a command reads: one tenant's, or the operators' system stream.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct StreamArg {
    /// The tenant: a name, or '#ID' (deleted tenants too)
    #[arg(value_parser = tenant_ref)]
    pub(crate) tenant: Option<TenantRef>,
    /// The system stream (operator actions on the installation) instead
    #[arg(long)]
    pub(crate) system: bool,
}

/// `audit …`
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Show an audit log, newest first.
    Show(AuditShowArgs),
    /// Write a whole audit log, oldest first, as JSON Lines.
    Export {
        #[command(flatten)]
        stream: StreamArg,
        /// The format
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write to this file (atomically) instead of stdout
        #[arg(long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// Recompute audit hash chains; exit code 8 if one was tampered with.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["tenant", "all"])))]
    Verify {
        /// The tenant: a name, or '#ID' (deleted tenants too)
        #[arg(value_parser = tenant_ref)]
        tenant: Option<TenantRef>,
        /// Every tenant's log (deleted ones included) and the system stream
        #[arg(long, conflicts_with = "tenant")]
        all: bool,
        /// Also check that entry SEQ still has this hash (from a commit receipt the tenant
        /// kept): catches a truncated or rolled-back log
        #[arg(long, value_name = "SEQ:HASH", conflicts_with = "all", value_parser = head)]
        head: Option<(u64, [u8; 32])>,
        #[command(flatten)]
        json: JsonFlag,
    },
}

fn head(text: &str) -> Result<(u64, [u8; 32]), String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not SEQ:HASH"))?;
    let seq = seq
        .parse()
        .map_err(|_| format!("{seq:?} is not a sequence number"))?;
    let bytes: Vec<u8> = (0..hash.len())
        .step_by(2)
        .map(|i| {
            hash.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<_>>()
        .ok_or_else(|| format!("{hash:?} is not a hex hash"))?;
    let hash =
        <[u8; 32]>::try_from(bytes).map_err(|_| "a hash is 64 hex digits (32 bytes)".to_owned())?;
    Ok((seq, hash))
}

/// `audit show …`
#[derive(Debug, Args)]
pub(crate) struct AuditShowArgs {
    #[command(flatten)]
    pub(crate) stream: StreamArg,
    /// Only entries at or after this time: RFC 3339, a date, or a duration ago (2h, 7d)
    #[arg(long, value_name = "TIME", value_parser = crate::text::parse_time)]
    pub(crate) since: Option<i64>,
    /// Only entries before this time
    #[arg(long, value_name = "TIME", value_parser = crate::text::parse_time)]
    pub(crate) until: Option<i64>,
    /// Only actions starting with this (e.g. 'kv.', 'operator.')
    #[arg(long, value_name = "PREFIX")]
    pub(crate) action: Option<String>,
    /// Only entries by this actor
    #[arg(long)]
    pub(crate) actor: Option<String>,
    /// At most this many entries (the newest)
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,
    /// Oldest first
    #[arg(long)]
    pub(crate) reverse: bool,
    /// All columns (ip, request id, origin, hash), cells not cut
    #[arg(long)]
    pub(crate) wide: bool,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tenants_are_named_by_name_or_id() {
        assert_eq!(tenant_ref("acme"), Ok(TenantRef::Name("acme".into())));
        assert_eq!(tenant_ref("#12"), Ok(TenantRef::Id(12)));
        assert_eq!(tenant_ref("id:12"), Ok(TenantRef::Id(12)));
        assert!(tenant_ref("#x").is_err());
        assert!(tenant_ref("").is_err());
    }

    #[test]
    fn heads_parse_as_seq_and_hash() {
        let hash = "ab".repeat(32);
        assert_eq!(head(&format!("7:{hash}")), Ok((7, [0xab; 32])));
        assert!(head("7").is_err());
        assert!(head("7:abc").is_err());
        assert!(head(&format!("x:{hash}")).is_err());
    }
}
