//! [`Session`]: the open database, the operator, and tenants resolved from the command line.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use tenantry_engine::{Engine, Operator, TenantInfo, TenantState};
use tenantry_host::{HostConfig, PluginHost};

use crate::cli::TenantRef;
use crate::exit::{CliError, Code};

/// The database file used when neither `--db` nor `TENANTRY_DB` is given.
pub(crate) const DEFAULT_DB: &str = "tenantry.redb";

/// The operator named by `--operator`/`TENANTRY_OPERATOR`, else `cli:<OS user>`.
pub(crate) fn operator(name: Option<String>) -> Operator {
    let name = name.unwrap_or_else(|| {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        format!("cli:{user}")
    });
    Operator::new(name)
}

/// Whether opening may create the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// Fail with exit code 3 if the file is missing.
    No,
    /// Create it if missing; it is removed again if the command fails.
    IfMissing,
}

/// An open database and who operates on it.
pub(crate) struct Session {
    engine: Engine,
    op: Operator,
    path: PathBuf,
    created: bool,
    /// Whether this session created the write-ahead log beside the file (`<file>-wal`).
    created_log: bool,
    host: OnceCell<PluginHost>,
}

impl Session {
    /// Opens the database at `path` as `op`.
    ///
    /// # Errors
    /// [`Code::MissingDatabase`] for a missing file (unless `create`), [`Code::DatabaseInUse`]
    /// when another process has it open, or a storage error.
    pub(crate) fn open(path: &Path, op: Operator, create: Create) -> Result<Self, CliError> {
        // Checked first so that a read command never leaves an empty database behind. (A file
        // removed between this check and the open is still created: the engine has no
        // open-existing-only call.)
        let exists = path.try_exists().map_err(|e| {
            CliError::new(
                Code::Failure,
                format!("cannot access {}: {e}", path.display()),
            )
        })?;
        if !exists && create == Create::No {
            return Err(CliError::new(
                Code::MissingDatabase,
                format!(
                    "database {} does not exist (create it with `tenantry tenant create NAME`, \
                     or name another with --db or TENANTRY_DB)",
                    path.display()
                ),
            ));
        }
        let log_existed = log_path(path).try_exists().unwrap_or(true);
        if path.is_dir() {
            return Err(CliError::usage(format!(
                "{} is a directory, not a database file",
                path.display()
            )));
        }
        let engine = match Engine::open(path) {
            Ok(engine) => engine,
            // Another process created and holds the files since they were looked for: they are
            // its, not this session's, to remove.
            Err(tenantry_engine::Error::DatabaseInUse) => {
                return Err(CliError::from(tenantry_engine::Error::DatabaseInUse));
            }
            Err(e) => {
                let err =
                    CliError::from(e).context(format!("cannot open database {}", path.display()));
                if !exists {
                    remove_quietly(path);
                }
                if !log_existed {
                    remove_quietly(&log_path(path));
                }
                return Err(err);
            }
        };
        Ok(Session {
            engine,
            op,
            path: path.to_owned(),
            created: !exists,
            created_log: !log_existed,
            host: OnceCell::new(),
        })
    }

    /// Opens the PostgreSQL database at `url` (tenantry's tables in `schema`, created if
    /// missing) as `op`: a live system that app nodes may be using meanwhile.
    ///
    /// # Errors
    /// A malformed connection string, an unreachable server, or a storage error.
    pub(crate) fn open_postgres(url: &str, schema: &str, op: Operator) -> Result<Self, CliError> {
        let mut options = tenantry_engine::EngineOptions::default();
        options.postgres_schema = schema.to_owned();
        let engine = Engine::open_postgres_with(url, options)
            .map_err(|e| CliError::from(e).context("cannot open the PostgreSQL database"))?;
        Ok(Session {
            engine,
            op,
            path: PathBuf::from(format!("postgres (schema {schema})")),
            created: false,
            created_log: false,
            host: OnceCell::new(),
        })
    }

    /// Closes the database; if this session created the file and `failed`, removes it and the
    /// log it created beside it, so a failed `tenant create` leaves nothing behind.
    pub(crate) fn close(self, failed: bool) {
        let Session {
            engine,
            path,
            created,
            created_log,
            host,
            ..
        } = self;
        drop(host);
        drop(engine);
        if failed && created {
            remove_quietly(&path);
            if created_log {
                remove_quietly(&log_path(&path));
            }
        }
    }

    /// The engine.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The operator.
    pub(crate) fn op(&self) -> &Operator {
        &self.op
    }

    /// Whether this session created the database file.
    pub(crate) fn created(&self) -> bool {
        self.created
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin host, set up on first use.
    ///
    /// # Errors
    /// If wasmtime cannot be set up.
    pub(crate) fn host(&self) -> Result<&PluginHost, CliError> {
        if let Some(host) = self.host.get() {
            return Ok(host);
        }
        let host = PluginHost::new(self.engine.clone(), HostConfig::default())?;
        Ok(self.host.get_or_init(|| host))
    }

    /// The tenant named on the command line: by id, else the live tenant with that name, else
    /// the one deleted tenant that had it.
    ///
    /// # Errors
    /// [`Code::NotFound`] if there is none; [`Code::Usage`] if several deleted tenants had the
    /// name.
    pub(crate) fn tenant(&self, tenant: &TenantRef) -> Result<TenantInfo, CliError> {
        let all = self.engine.all_tenants()?;
        let name = match tenant {
            TenantRef::Id(id) => {
                return all.into_iter().find(|t| t.id.get() == *id).ok_or_else(|| {
                    CliError::new(Code::NotFound, format!("no tenant has id #{id}"))
                });
            }
            TenantRef::Name(name) => name,
        };
        if let Some(id) = self.engine.tenant_id(name)? {
            return Ok(self.engine.tenant_info(id)?);
        }
        let mut deleted: Vec<TenantInfo> = all
            .into_iter()
            .filter(|t| &t.name == name && t.state == TenantState::Deleted)
            .collect();
        match deleted.len() {
            0 => Err(CliError::new(
                Code::NotFound,
                format!("no tenant named {name:?} (see `tenantry tenant list --all`)"),
            )),
            1 => Ok(deleted.remove(0)),
            _ => {
                let ids: Vec<String> = deleted.iter().map(|t| t.id.to_string()).collect();
                Err(CliError::usage(format!(
                    "no live tenant is named {name:?}, and several deleted tenants were ({}): \
                     name one by id, e.g. '{}'",
                    ids.join(", "),
                    ids[ids.len() - 1]
                )))
            }
        }
    }
}

/// `acme (#3)`: how the CLI names a tenant in messages.
pub(crate) fn label(info: &TenantInfo) -> String {
    format!("{} ({})", info.name, info.id)
}

/// The engine's write-ahead log beside the database file at `path`: `<path>-wal`.
pub(crate) fn log_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn remove_quietly(path: &Path) {
    if let Err(err) = std::fs::remove_file(path)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!(
            "warning: could not remove {} after the failure: {err}",
            path.display()
        );
    }
}
