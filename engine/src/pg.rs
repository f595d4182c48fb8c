//! The PostgreSQL backend (cargo feature `postgres`): the same engine rules on a database that
//! several app nodes share, with a synchronous standby for failover.
//!
//! ## Schema (in the schema [`crate::EngineOptions::postgres_schema`], `tenantry` by default)
//!
//! Every table is keyed by tenant id first, so that Citus can distribute and co-locate them
//! all by `tenant_id` (`tenant_names` is the one exception: a lookup by name, a reference
//! table there).
//!
//! | table | key | holds |
//! |---|---|---|
//! | `tenants` | `tenant_id` | name, creation time; the row is the tenant's **writer lock** |
//! | `heads` | `tenant_id` (0: the system stream) | state, quota, usage, audit head, next table id |
//! | `tenant_names` | `name` | the live tenant of each name |
//! | `tables` | `(tenant_id, name)` | table ids |
//! | `kv` | `(tenant_id, table_id, k)` | the data |
//! | `audit` | `(tenant_id, seq)` | audit entries (the same bytes and hashes as on redb) |
//!
//! ## Lock protocol (row locks only: they stay locks through a pooler and a Citus coordinator)
//!
//! * A [`crate::WriteTxn`] takes the tenant's in-process lock, then on its own connection, in a
//!   READ COMMITTED transaction, `SELECT … FROM tenants … FOR UPDATE` (waiting at most what is
//!   left of the lock timeout, [`crate::Error::LockTimeout`]) and holds it until it commits or
//!   is dropped: so the transactions of one tenant are serializable across nodes, and its reads
//!   see a state no other writer can change. It locks nothing of any other tenant.
//! * Its commit then locks the tenant's `heads` row, validates state and quota there (the
//!   state another node set is enforced at the next commit, always), writes the data, appends
//!   the audit entries to the chain and updates the head, in the same transaction.
//! * An operator's state or quota change locks the system stream's head and the tenant's,
//!   never the writer row: an open transaction does not block it.
//! * A read transaction is a REPEATABLE READ READ ONLY transaction of its own connection,
//!   whose snapshot is taken when it begins (one round trip).
//!
//! ## What other nodes see
//!
//! Data, tables, audit entries and usage are read from the database, so they are as fresh as
//! its last commit. Each engine keeps tenants' states in memory to open handles without I/O:
//! a tenant another node created is loaded at first use, and another node's state change
//! (suspension, deletion, ...) reaches this engine's `tenant()` and open handles within
//! [`STATE_POLL`] (plus the time of one query), when a background thread looks for changes;
//! commits check the stored state in any case.
//!
//! ## Commits whose outcome is unknown
//!
//! If the connection is lost while `COMMIT` runs, the engine reconnects (to the promoted
//! standby, with a multi-host connection string and `target_session_attrs=read-write`),
//! locks the tenant's head row (which waits for the old transaction if it still runs) and
//! reads whether the audit entry the commit would have written is there with its hash: the
//! head is the idempotency record. It tries until the engine's lock timeout; then it gives up
//! with [`crate::Error::CommitOutcomeUnknown`], which [`crate::Engine::resolve_commit`]
//! answers later. The engine never cancels a `COMMIT`'s wait for the standby
//! (`statement_timeout` is 0 on its connections).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Row, Statement};

use crate::audit::{self, AuditEntry, AuditEvent, AuditQuery, AuditStream, StoredEntry};
use crate::commit::{self, CommitReceipt, DataCommit, Reply, Request, UsageDelta};
use crate::context::Actor;
use crate::engine::{Durability, Engine, EngineInner, EngineOptions};
use crate::error::{Error, Result};
use crate::keys::TableId;
use crate::registry::Registry;
use crate::schema::{self, TenantRecord};
use crate::snapshot::{KeyValue, Snapshot, View};
use crate::store::Store;
use crate::types::{Quota, TenantId, TenantInfo, TenantState, Usage};

/// The longest key the PostgreSQL backend stores: a btree index entry must fit in a third of
/// an 8 KiB page (2,704 bytes), and the key shares it with the tenant and table ids and headers.
pub(crate) const MAX_KEY_LEN: usize = 2 * 1024;

/// How often an engine looks for tenant state changes that other nodes made.
pub(crate) const STATE_POLL: Duration = Duration::from_millis(250);

/// Idle connections an engine keeps for reuse.
const MAX_IDLE: usize = 64;

/// Begins a read view's transaction and takes its snapshot.
const READ_VIEW: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1";

/// Rows a scan or an audit read fetches per round trip.
const PAGE: i64 = 256;

/// The system stream's row in `heads`.
const SYSTEM: i64 = 0;

impl Engine {
    /// Opens the tenantry database on the PostgreSQL server that `url` names, creating its
    /// schema if missing. `url` is a libpq connection string (`host=… port=… user=… dbname=…`
    /// or `postgresql://…`); several hosts with `target_session_attrs=read-write` reconnect to
    /// whichever is the primary after a failover. Several engines (app nodes) may open the
    /// same database: see the module `pg` documentation in the README for what each sees.
    ///
    /// # Errors
    /// [`Error::InvalidField`] for a malformed connection string or schema name,
    /// [`Error::Unavailable`] if the server cannot be reached, or a storage error.
    pub fn open_postgres(url: &str) -> Result<Self> {
        Self::open_postgres_with(url, EngineOptions::default())
    }

    /// [`Engine::open_postgres`] with `options` (the schema is
    /// [`EngineOptions::postgres_schema`]; the redb-only options are ignored).
    ///
    /// # Errors
    /// As [`Engine::open_postgres`].
    pub fn open_postgres_with(url: &str, options: EngineOptions) -> Result<Self> {
        let mut config: Config = url.parse().map_err(|_| Error::InvalidField {
            field: "PostgreSQL connection string",
            reason: "not a valid libpq connection string or URL",
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        crate::engine::check_identifier(&options.postgres_schema, 63).map_err(|reason| {
            Error::InvalidField {
                field: "postgres_schema",
                reason,
            }
        })?;
        let registry = Arc::new(Registry::default());
        let shared = Arc::new(Shared {
            pool: Pool {
                config,
                schema: options.postgres_schema.clone(),
                synchronous: options.durability == Durability::Immediate,
                idle: Mutex::new(Vec::new()),
            },
            registry: Arc::clone(&registry),
            lock_timeout: options.lock_timeout,
            audit: options.audit_enabled,
            last_change: AtomicI64::new(0),
        });
        let unpurged = shared.create_schema_and_load()?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let poller = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("tenantry-pg-states".into())
                .spawn(move || poll_states(&shared, &stop))?
        };
        let engine = Engine {
            inner: Arc::new(EngineInner {
                store: Store::Pg(PgStore {
                    shared,
                    stop,
                    poller: Some(poller),
                }),
                registry,
                options,
            }),
        };
        if !unpurged.is_empty() {
            engine.resume_purges(unpurged);
        }
        Ok(engine)
    }
}

/// The PostgreSQL store of one engine; dropping it stops its state poller.
pub(crate) struct PgStore {
    shared: Arc<Shared>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    poller: Option<JoinHandle<()>>,
}

impl PgStore {
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
    }
}

fn poll_states(shared: &Shared, stop: &(Mutex<bool>, Condvar)) {
    loop {
        {
            let mut stopped = stop.0.lock();
            if !*stopped {
                stop.1.wait_for(&mut stopped, STATE_POLL);
            }
            if *stopped {
                return;
            }
        }
        if let Err(err) = shared.refresh_states() {
            tracing::debug!(%err, "could not look for tenant state changes");
        }
    }
}

/// What an engine's PostgreSQL store and its background work share.
pub(crate) struct Shared {
    pool: Pool,
    registry: Arc<Registry>,
    lock_timeout: Duration,
    audit: bool,
    /// The newest `heads.state_change` this engine has applied to its registry.
    last_change: AtomicI64,
}

// ---------------------------------------------------------------------------------------------
// Connections

struct Pool {
    config: Config,
    schema: String,
    synchronous: bool,
    idle: Mutex<Vec<Conn>>,
}

/// A connection and its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// A transaction may be open on it.
    in_txn: bool,
}

impl Pool {
    fn get(&self) -> Result<Conn> {
        while let Some(conn) = self.idle.lock().pop() {
            if !conn.client.is_closed() {
                return Ok(conn);
            }
        }
        self.connect()
    }

    fn connect(&self) -> Result<Conn> {
        let mut client = self.config.connect(NoTls).map_err(unavailable)?;
        let mut setup = format!(
            "SET search_path TO \"{}\"; SET statement_timeout = 0; \
             SET idle_in_transaction_session_timeout = 0; SET application_name = 'tenantry'",
            self.schema
        );
        if !self.synchronous {
            setup.push_str("; SET synchronous_commit = off");
        }
        client.batch_execute(&setup).map_err(pg_error)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
            in_txn: false,
        })
    }

    /// Returns a connection for reuse, after ending any transaction left open on it.
    fn put(&self, mut conn: Conn) {
        if conn.client.is_closed() {
            // The server probably went away (a failover): so did the idle connections to it.
            self.idle.lock().clear();
            return;
        }
        if conn.in_txn {
            if conn.client.batch_execute("ROLLBACK").is_err() {
                return;
            }
            conn.in_txn = false;
        }
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

impl Conn {
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(pg_error)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params).map_err(pg_error)
    }

    fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let statement = self.statement(sql)?;
        self.client.query_opt(&statement, params).map_err(pg_error)
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params).map_err(pg_error)
    }

    fn begin(&mut self, sql: &str) -> Result<()> {
        self.in_txn = true;
        self.client.batch_execute(sql).map_err(pg_error)
    }

    fn commit(&mut self) -> std::result::Result<(), postgres::Error> {
        self.client.batch_execute("COMMIT")?;
        self.in_txn = false;
        Ok(())
    }
}

/// Runs `f` in a transaction begun with `begin` on a pooled connection; commits if `f`
/// returns `Ok(Ok(_))`, rolls back otherwise (the inner error is the request's own).
fn in_txn<T>(
    pool: &Pool,
    begin: &str,
    f: impl FnOnce(&mut Conn) -> Result<Result<T>>,
) -> Result<T> {
    let mut conn = pool.get()?;
    conn.begin(begin)?;
    let outcome = f(&mut conn);
    let result = match outcome {
        Ok(Ok(value)) => conn.commit().map(|()| value).map_err(commit_error),
        Ok(Err(err)) | Err(err) => Err(err),
    };
    pool.put(conn);
    result
}

/// A connection that failed (closed, or no server answer) is [`Error::Unavailable`].
fn unavailable(err: postgres::Error) -> Error {
    Error::Unavailable {
        reason: chain(&err),
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn pg_error(err: postgres::Error) -> Error {
    let Some(db) = err.as_db_error() else {
        return unavailable(err);
    };
    let code = db.code();
    if [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::READ_ONLY_SQL_TRANSACTION,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::CONNECTION_FAILURE,
    ]
    .contains(code)
    {
        return Error::Unavailable {
            reason: db.to_string(),
        };
    }
    let message = format!("PostgreSQL: {db}");
    Error::storage(message, Some(Box::new(err)))
}

/// A failed `COMMIT` that reached the server: nothing was committed.
fn commit_error(err: postgres::Error) -> Error {
    pg_error(err)
}

fn is_lock_timeout(err: &postgres::Error) -> bool {
    err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
}

fn id(tenant: TenantId) -> Result<i64> {
    i64::try_from(tenant.get()).map_err(|_| Error::UnknownTenant(tenant))
}

fn raw_id(stream: u64) -> Result<i64> {
    i64::try_from(stream).map_err(|_| Error::Corrupted(format!("stream id {stream} out of range")))
}

fn to_u64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::Corrupted(format!("negative {what}: {value}")))
}

fn to_hash(bytes: &[u8]) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| Error::Corrupted(format!("audit hash of {} bytes", bytes.len())))
}

fn decode_state(raw: i16) -> Result<TenantState> {
    u8::try_from(raw)
        .ok()
        .and_then(TenantState::from_u8)
        .ok_or_else(|| Error::Corrupted(format!("unknown tenant state {raw} in heads")))
}

fn now_micros() -> i64 {
    commit::now_micros()
}

// ---------------------------------------------------------------------------------------------
// Schema

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id bigint PRIMARY KEY,
    name text NOT NULL,
    created_micros bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS heads (
    tenant_id bigint PRIMARY KEY,
    state smallint NOT NULL,
    max_bytes bigint,
    max_keys bigint,
    used_bytes bigint NOT NULL DEFAULT 0,
    used_keys bigint NOT NULL DEFAULT 0,
    audit_bytes bigint NOT NULL DEFAULT 0,
    audit_entries bigint NOT NULL DEFAULT 0,
    seq bigint NOT NULL DEFAULT 0,
    hash bytea NOT NULL,
    ts bigint NOT NULL DEFAULT 0,
    next_table integer NOT NULL DEFAULT 1,
    purged boolean NOT NULL DEFAULT false,
    state_change bigint NOT NULL DEFAULT 0,
    reserved_version bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);
CREATE INDEX IF NOT EXISTS heads_state_change ON heads (state_change);
CREATE TABLE IF NOT EXISTS tenant_names (
    name text PRIMARY KEY,
    tenant_id bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS tables (
    tenant_id bigint NOT NULL,
    name text NOT NULL,
    table_id integer NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE IF NOT EXISTS kv (
    tenant_id bigint NOT NULL,
    table_id integer NOT NULL,
    k bytea NOT NULL,
    v bytea NOT NULL,
    PRIMARY KEY (tenant_id, table_id, k)
);
CREATE TABLE IF NOT EXISTS audit (
    tenant_id bigint NOT NULL,
    seq bigint NOT NULL,
    ts bigint NOT NULL,
    action text NOT NULL,
    hash bytea NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE SEQUENCE IF NOT EXISTS tenant_ids;
CREATE SEQUENCE IF NOT EXISTS state_changes;
INSERT INTO heads (tenant_id, state, hash)
    VALUES (0, 0, '\\x0000000000000000000000000000000000000000000000000000000000000000')
    ON CONFLICT DO NOTHING;
";

impl Shared {
    /// Creates the schema if missing and loads every tenant; returns deleted tenants whose
    /// purge did not finish.
    fn create_schema_and_load(&self) -> Result<Vec<TenantId>> {
        let schema = self.pool.schema.clone();
        in_txn(&self.pool, "BEGIN", |conn| {
            // Two engines creating the schema at once wait for each other here.
            conn.client
                .execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    &[&format!("tenantry schema {schema}")],
                )
                .map_err(pg_error)?;
            conn.client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .map_err(pg_error)?;
            conn.client.batch_execute(SCHEMA).map_err(pg_error)?;
            Ok(Ok(()))
        })?;
        let rows = in_txn(
            &self.pool,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            |conn| {
                Ok(Ok(conn.query(
                    "SELECT h.tenant_id, t.name, h.state, h.purged, h.state_change \
                     FROM heads h JOIN tenants t ON t.tenant_id = h.tenant_id",
                    &[],
                )?))
            },
        )?;
        let mut unpurged = Vec::new();
        let mut newest = 0i64;
        for row in rows {
            let tenant = TenantId::from_raw(to_u64(row.get(0), "tenant id")?);
            let name: String = row.get(1);
            let state = decode_state(row.get(2))?;
            let purged: bool = row.get(3);
            newest = newest.max(row.get(4));
            self.registry.insert(tenant, &name, state);
            if state == TenantState::Deleted && !purged {
                unpurged.push(tenant);
            }
        }
        self.last_change.store(newest, Ordering::Release);
        Ok(unpurged)
    }

    /// Applies the tenant state changes made since the last look (by any node).
    fn refresh_states(&self) -> Result<()> {
        let since = self.last_change.load(Ordering::Acquire);
        let mut conn = self.pool.get()?;
        let rows = conn.query(
            "SELECT h.tenant_id, t.name, h.state, h.state_change FROM heads h \
             JOIN tenants t ON t.tenant_id = h.tenant_id \
             WHERE h.state_change > $1 ORDER BY h.state_change",
            &[&since],
        );
        self.pool.put(conn);
        let mut newest = since;
        for row in rows? {
            let tenant = TenantId::from_raw(to_u64(row.get(0), "tenant id")?);
            let name: String = row.get(1);
            self.registry
                .upsert(tenant, &name, decode_state(row.get(2))?);
            newest = newest.max(row.get(3));
        }
        self.last_change.fetch_max(newest, Ordering::AcqRel);
        Ok(())
    }

    /// Loads a tenant that the registry does not know (another node created it).
    pub(crate) fn load_tenant(&self, tenant: TenantId) -> Result<bool> {
        let Ok(raw) = id(tenant) else {
            return Ok(false);
        };
        let mut conn = self.pool.get()?;
        let row = conn.query_opt(
            "SELECT t.name, h.state FROM heads h JOIN tenants t ON t.tenant_id = h.tenant_id \
             WHERE h.tenant_id = $1",
            &[&raw],
        );
        self.pool.put(conn);
        let Some(row) = row? else {
            return Ok(false);
        };
        let name: String = row.get(0);
        self.registry
            .upsert(tenant, &name, decode_state(row.get(1))?);
        Ok(true)
    }

    /// See [`crate::Engine::reserved_tables_version`].
    pub(crate) fn reserved_version(&self, tenant: TenantId) -> Result<u64> {
        let raw = id(tenant)?;
        let mut conn = self.pool.get()?;
        let row = conn.query_opt(
            "SELECT reserved_version FROM heads WHERE tenant_id = $1",
            &[&raw],
        );
        self.pool.put(conn);
        let row = row?.ok_or(Error::UnknownTenant(tenant))?;
        to_u64(row.get(0), "reserved version")
    }

    /// The live tenant called `name`, loaded into the registry.
    pub(crate) fn load_tenant_named(&self, name: &str) -> Result<Option<TenantId>> {
        let mut conn = self.pool.get()?;
        let row = conn.query_opt(
            "SELECT tenant_id FROM tenant_names WHERE name = $1",
            &[&name],
        );
        self.pool.put(conn);
        let Some(row) = row? else {
            return Ok(None);
        };
        let tenant = TenantId::from_raw(to_u64(row.get(0), "tenant id")?);
        Ok(self.load_tenant(tenant)?.then_some(tenant))
    }

    // -----------------------------------------------------------------------------------------
    // Reads

    /// A view of `tenant`: with `write`, a READ COMMITTED transaction holding the tenant's
    /// writer row lock, taken within that long; otherwise a REPEATABLE READ READ ONLY one whose
    /// snapshot is taken now.
    pub(crate) fn view(
        self: &Arc<Self>,
        tenant: TenantId,
        write: Option<Duration>,
    ) -> Result<Arc<PgView>> {
        let raw = id(tenant)?;
        let mut conn = self.pool.get()?;
        if let Some(timeout) = write {
            // 0 would mean no limit at all.
            let ms = timeout.as_millis().clamp(1, u128::from(u32::MAX));
            let locked = conn
                .begin(&format!("BEGIN; SET LOCAL lock_timeout = '{ms}ms'"))
                .and_then(|()| {
                    let statement =
                        conn.statement("SELECT 1 FROM tenants WHERE tenant_id = $1 FOR UPDATE")?;
                    match conn.client.query_opt(&statement, &[&raw]) {
                        Ok(Some(_)) => Ok(()),
                        Ok(None) => Err(Error::UnknownTenant(tenant)),
                        Err(e) if is_lock_timeout(&e) => Err(Error::LockTimeout {
                            tenant,
                            waited: timeout,
                        }),
                        Err(e) => Err(pg_error(e)),
                    }
                });
            if let Err(err) = locked {
                self.pool.put(conn);
                return Err(err);
            }
        } else if let Err(err) = conn.begin(READ_VIEW) {
            // The snapshot is taken by the first statement, not by BEGIN: so now, when the
            // transaction begins, as on redb.
            self.pool.put(conn);
            return Err(err);
        }
        Ok(Arc::new(PgView {
            shared: Arc::clone(self),
            tenant,
            write: write.is_some(),
            conn: Mutex::new(Some(conn)),
        }))
    }

    pub(crate) fn all_tenants(&self) -> Result<Vec<TenantInfo>> {
        let rows = in_txn(
            &self.pool,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            |c| {
                Ok(Ok(c.query(
                    &format!("{TENANT_INFO} ORDER BY t.tenant_id"),
                    &[],
                )?))
            },
        )?;
        rows.iter().map(tenant_info).collect()
    }

    pub(crate) fn tenant_info(&self, tenant: TenantId) -> Result<TenantInfo> {
        let raw = id(tenant)?;
        let row = in_txn(
            &self.pool,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            |c| {
                Ok(Ok(c.query_opt(
                    &format!("{TENANT_INFO} WHERE t.tenant_id = $1"),
                    &[&raw],
                )?))
            },
        )?;
        tenant_info(&row.ok_or(Error::UnknownTenant(tenant))?)
    }

    pub(crate) fn audit_query(
        &self,
        stream: AuditStream,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>> {
        in_txn(
            &self.pool,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            |c| Ok(Ok(audit_query(c, stream, query)?)),
        )
    }

    pub(crate) fn audit_verify(
        &self,
        stream: AuditStream,
        anchor: Option<(u64, &[u8; 32])>,
    ) -> Result<u64> {
        in_txn(
            &self.pool,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            |c| Ok(Ok(audit_verify(c, stream, anchor)?)),
        )
    }

    pub(crate) fn audit_jsonl(&self, stream: AuditStream, out: &mut dyn Write) -> Result<u64> {
        in_txn(
            &self.pool,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            |c| Ok(Ok(audit_jsonl(c, stream, out)?)),
        )
    }

    // -----------------------------------------------------------------------------------------
    // Writes

    /// Commits a write transaction on the connection of its view, which holds the tenant's
    /// writer lock.
    pub(crate) fn commit_data(
        &self,
        commit: DataCommit,
        snapshot: &Snapshot,
    ) -> Result<CommitReceipt> {
        let View::Pg(view) = snapshot.view() else {
            return Err(Error::Corrupted(
                "a PostgreSQL commit without its view".into(),
            ));
        };
        if !view.write {
            return Err(Error::Corrupted("a commit through a read view".into()));
        }
        let mut slot = view.conn.lock();
        let Some(conn) = slot.as_mut() else {
            return Err(Error::Corrupted("a view without its connection".into()));
        };
        let tenant = commit.tenant;
        let outcome = self.write_data(conn, commit);
        let (receipt, refusal, effects) = match outcome {
            Ok(done) => done,
            Err(err) => {
                // The transaction is rolled back when the view returns its connection.
                return Err(err);
            }
        };
        match conn.commit() {
            Ok(()) => {}
            Err(err) if err.as_db_error().is_some() && !conn.client.is_closed() => {
                return Err(commit_error(err));
            }
            Err(err) => {
                // The connection was lost during COMMIT: did it happen?
                drop(slot.take());
                let reason = chain(&err);
                if !self.resolve(tenant, &receipt, &reason)? {
                    return Err(Error::Unavailable { reason });
                }
            }
        }
        for (name, table) in effects {
            self.registry.remember_table(tenant, &name, table);
        }
        match refusal {
            Some(err) => Err(err),
            None => Ok(receipt),
        }
    }

    /// Finds out whether the commit that would leave `receipt` happened, until the engine's
    /// lock timeout; then gives up with [`Error::CommitOutcomeUnknown`].
    fn resolve(&self, tenant: TenantId, receipt: &CommitReceipt, reason: &str) -> Result<bool> {
        let unknown = |reason: String| Error::CommitOutcomeUnknown {
            tenant,
            audit_seq: receipt.audit_seq,
            audit_head: receipt.audit_head,
            reason,
        };
        if !self.audit {
            return Err(unknown(format!("{reason} (no audit entry to look for)")));
        }
        let raw = id(tenant)?;
        let seq = i64::try_from(receipt.audit_seq).map_err(|_| unknown(reason.to_owned()))?;
        let deadline = Instant::now() + self.lock_timeout;
        let mut last = reason.to_owned();
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().clamp(1, u128::from(u32::MAX));
            // Rolled back, never committed: a commit of the row lock would wait for the
            // synchronous standby, which after a failover may still be on its way.
            let found = self.pool.get().and_then(|mut c| {
                let found = c
                    .begin(&format!("BEGIN; SET LOCAL lock_timeout = '{ms}ms'"))
                    .and_then(|()| {
                        // Waits for the lost transaction if the server still runs it.
                        c.query_opt(
                            "SELECT seq FROM heads WHERE tenant_id = $1 FOR UPDATE",
                            &[&raw],
                        )?;
                        c.query_opt(
                            "SELECT hash FROM audit WHERE tenant_id = $1 AND seq = $2",
                            &[&raw, &seq],
                        )
                    })
                    .map(|row| row.map(|r| r.get::<_, Vec<u8>>(0)));
                self.pool.put(c);
                found
            });
            match found {
                Ok(hash) => {
                    let happened = hash.as_deref() == Some(&receipt.audit_head[..]);
                    tracing::info!(%tenant, seq, happened, "resolved a commit whose connection was lost");
                    return Ok(happened);
                }
                Err(err) => {
                    last = err.to_string();
                    std::thread::sleep(Duration::from_millis(100).min(left));
                }
            }
        }
        Err(unknown(last))
    }

    /// The statements of a data commit, up to but not including `COMMIT`: the receipt, the
    /// refusal (its denied audit entries are written), and the tables created.
    fn write_data(&self, conn: &mut Conn, commit: DataCommit) -> Result<Written> {
        let tenant = commit.tenant;
        let raw = id(tenant)?;
        let Some(mut head) = Head::lock(conn, raw)? else {
            return Err(Error::UnknownTenant(tenant));
        };
        let writes = commit.writes();
        let refused = commit::refusal(
            tenant,
            head.state()?,
            &head.quota,
            head.usage,
            commit.delta,
            writes,
        )?;
        let mut log = AuditRows::default();
        let mut created = Vec::new();
        let drafts = match &refused {
            Some(err) => commit::denied(commit.drafts, err),
            None => {
                if writes {
                    if commit
                        .tables
                        .iter()
                        .any(|t| t.name.starts_with('_') && !t.writes.is_empty())
                    {
                        head.reserved_version += 1;
                    }
                    self.write_tables(conn, raw, &mut head, commit.tables, &mut created)?;
                    head.add_usage(commit.delta);
                }
                commit.drafts
            }
        };
        let now = now_micros();
        for draft in drafts {
            if self.audit {
                log.append(&mut head, raw, &commit.actor, draft, now)?;
            }
        }
        log.flush(conn)?;
        head.store(conn, raw)?;
        Ok((head.receipt(), refused, created))
    }

    fn write_tables(
        &self,
        conn: &mut Conn,
        raw: i64,
        head: &mut Head,
        tables: Vec<commit::TableWrites>,
        created: &mut Vec<(String, TableId)>,
    ) -> Result<()> {
        let (mut put_tables, mut put_keys, mut put_values) = (Vec::new(), Vec::new(), Vec::new());
        let (mut del_tables, mut del_keys) = (Vec::new(), Vec::new());
        for table in tables {
            let table_id = match table.id {
                Some(known) => known,
                None => {
                    let found = conn.query_opt(
                        "SELECT table_id FROM tables WHERE tenant_id = $1 AND name = $2",
                        &[&raw, &table.name],
                    )?;
                    match found {
                        Some(row) => table_id(row.get(0))?,
                        None => {
                            let next = head.next_table;
                            head.next_table = next
                                .checked_add(1)
                                .ok_or_else(|| Error::Corrupted("table ids exhausted".into()))?;
                            conn.execute(
                                "INSERT INTO tables (tenant_id, name, table_id) VALUES ($1, $2, $3)",
                                &[&raw, &table.name, &next],
                            )?;
                            let id = table_id(next)?;
                            created.push((table.name.clone(), id));
                            id
                        }
                    }
                }
            };
            let signed = i32::try_from(table_id)
                .map_err(|_| Error::Corrupted(format!("table id {table_id} out of range")))?;
            for (key, value) in table.writes {
                match value {
                    Some(value) => {
                        put_tables.push(signed);
                        put_keys.push(key);
                        put_values.push(value);
                    }
                    None => {
                        del_tables.push(signed);
                        del_keys.push(key);
                    }
                }
            }
        }
        if !del_keys.is_empty() {
            conn.execute(
                "DELETE FROM kv WHERE tenant_id = $1 AND (table_id, k) IN \
                 (SELECT * FROM unnest($2::int4[], $3::bytea[]))",
                &[&raw, &del_tables, &del_keys],
            )?;
        }
        if !put_keys.is_empty() {
            conn.execute(
                "INSERT INTO kv (tenant_id, table_id, k, v) \
                 SELECT $1, t, k, v FROM unnest($2::int4[], $3::bytea[], $4::bytea[]) AS u(t, k, v) \
                 ON CONFLICT (tenant_id, table_id, k) DO UPDATE SET v = EXCLUDED.v",
                &[&raw, &put_tables, &put_keys, &put_values],
            )?;
        }
        Ok(())
    }

    /// Carries out an administrative request, or a commit of audit entries only.
    pub(crate) fn submit(&self, request: Request) -> Result<Reply> {
        match request {
            Request::Data(commit) => {
                if commit.writes() {
                    return Err(Error::Corrupted(
                        "a data commit without its write transaction".into(),
                    ));
                }
                let tenant = commit.tenant;
                let (receipt, refused) = in_txn(&self.pool, "BEGIN", |conn| {
                    let (receipt, refused, _) = self.write_data(conn, commit)?;
                    Ok(Ok((receipt, refused)))
                })?;
                let _ = tenant;
                match refused {
                    Some(err) => Err(err),
                    None => Ok(Reply::Receipt(receipt)),
                }
            }
            Request::CreateTenants { names, actor } => self.create_tenants(names, &actor),
            Request::SetState {
                tenant,
                state,
                actor,
            } => self.change(tenant, &actor, |head, name| {
                let old = head.state()?;
                head.state = i16::from(state.to_u8());
                Ok((
                    AuditEvent::new("tenant.set_state")
                        .target(format!("tenant {name} ({tenant})"))
                        .message(format!("{old} -> {state}")),
                    Some(state),
                ))
            }),
            Request::SetQuota {
                tenant,
                quota,
                actor,
            } => self.change(tenant, &actor, |head, name| {
                head.quota = quota;
                let show = |v: Option<u64>| v.map_or("unlimited".to_owned(), |v| v.to_string());
                Ok((
                    AuditEvent::new("tenant.set_quota")
                        .target(format!("tenant {name} ({tenant})"))
                        .message(format!(
                            "max_bytes={}, max_keys={}",
                            show(quota.max_bytes),
                            show(quota.max_keys)
                        )),
                    None,
                ))
            }),
            Request::Delete { tenant, actor } => self.change(tenant, &actor, |head, name| {
                head.state = i16::from(TenantState::Deleted.to_u8());
                Ok((
                    AuditEvent::new("tenant.delete").target(format!("tenant {name} ({tenant})")),
                    Some(TenantState::Deleted),
                ))
            }),
            Request::Purge { tenant, max_keys } => {
                let (removed, done) = self.purge_chunk(tenant, max_keys)?;
                Ok(Reply::Purged { removed, done })
            }
            Request::Audit {
                streams,
                actor,
                draft,
            } => {
                in_txn(&self.pool, "BEGIN", |conn| {
                    let mut log = AuditRows::default();
                    let now = now_micros();
                    // The system stream first: every request that locks two heads locks it
                    // first, so none waits for another in a cycle.
                    let mut raws = Vec::new();
                    for stream in &streams {
                        raws.push(raw_id(stream.raw())?);
                    }
                    raws.sort_unstable();
                    raws.dedup();
                    let mut heads = Vec::new();
                    for raw in raws {
                        match Head::lock(conn, raw)? {
                            Some(head) => heads.push((raw, head)),
                            None => {
                                return Ok(Err(Error::UnknownTenant(TenantId::from_raw(to_u64(
                                    raw,
                                    "tenant id",
                                )?))));
                            }
                        }
                    }
                    for (raw, head) in &mut heads {
                        if self.audit {
                            log.append(head, *raw, &actor, draft.clone(), now)?;
                        }
                    }
                    log.flush(conn)?;
                    for (raw, head) in &heads {
                        head.store(conn, *raw)?;
                    }
                    Ok(Ok(()))
                })?;
                Ok(Reply::Done)
            }
            Request::Checkpoint => Ok(Reply::Done),
        }
    }

    fn create_tenants(&self, names: Vec<String>, actor: &Actor) -> Result<Reply> {
        let created = in_txn(&self.pool, "BEGIN", |conn| {
            let Some(mut system) = Head::lock(conn, SYSTEM)? else {
                return Err(Error::Corrupted(
                    "the system stream's head is missing".into(),
                ));
            };
            let mut seen = std::collections::HashSet::new();
            let mut log = AuditRows::default();
            let now = now_micros();
            let mut created = Vec::new();
            for name in names {
                if !seen.insert(name.clone()) {
                    return Ok(Err(Error::TenantNameTaken(name)));
                }
                let row = conn.query_opt(
                    "INSERT INTO tenant_names (name, tenant_id) VALUES ($1, nextval('tenant_ids')) \
                     ON CONFLICT DO NOTHING RETURNING tenant_id",
                    &[&name],
                )?;
                let Some(row) = row else {
                    return Ok(Err(Error::TenantNameTaken(name)));
                };
                let raw: i64 = row.get(0);
                conn.execute(
                    "INSERT INTO tenants (tenant_id, name, created_micros) VALUES ($1, $2, $3)",
                    &[&raw, &name, &now],
                )?;
                conn.execute(
                    "INSERT INTO heads (tenant_id, state, hash, state_change) \
                     VALUES ($1, $2, $3, nextval('state_changes'))",
                    &[
                        &raw,
                        &i16::from(TenantState::Active.to_u8()),
                        &vec![0u8; 32],
                    ],
                )?;
                let tenant = TenantId::from_raw(to_u64(raw, "tenant id")?);
                let mut head = Head::new_tenant();
                let draft =
                    AuditEvent::new("tenant.create").target(format!("tenant {name} ({tenant})"));
                if self.audit {
                    log.append(&mut system, SYSTEM, actor, draft.clone(), now)?;
                    log.append(&mut head, raw, actor, draft, now)?;
                }
                head.store(conn, raw)?;
                created.push((tenant, name));
            }
            log.flush(conn)?;
            system.store(conn, SYSTEM)?;
            Ok(Ok(created))
        })?;
        let mut ids = Vec::with_capacity(created.len());
        for (tenant, name) in created {
            self.registry.upsert(tenant, &name, TenantState::Active);
            ids.push(tenant);
        }
        Ok(Reply::Tenants(ids))
    }

    /// An operator's change of a live tenant's head: locks the system stream's head and the
    /// tenant's (never its writer row), applies `f`, audits it in both streams.
    fn change(
        &self,
        tenant: TenantId,
        actor: &Actor,
        f: impl FnOnce(&mut Head, &str) -> Result<(AuditEvent, Option<TenantState>)>,
    ) -> Result<Reply> {
        let raw = id(tenant)?;
        let new_state = in_txn(&self.pool, "BEGIN", |conn| {
            let Some(mut system) = Head::lock(conn, SYSTEM)? else {
                return Err(Error::Corrupted(
                    "the system stream's head is missing".into(),
                ));
            };
            let Some(mut head) = Head::lock(conn, raw)? else {
                return Ok(Err(Error::UnknownTenant(tenant)));
            };
            if head.state()? == TenantState::Deleted {
                return Ok(Err(Error::TenantDeleted(tenant)));
            }
            let name: String = conn
                .query_opt("SELECT name FROM tenants WHERE tenant_id = $1", &[&raw])?
                .map(|r| r.get(0))
                .ok_or(Error::UnknownTenant(tenant))?;
            let (draft, new_state) = f(&mut head, &name)?;
            if new_state.is_some() {
                conn.execute(
                    "UPDATE heads SET state_change = nextval('state_changes') WHERE tenant_id = $1",
                    &[&raw],
                )?;
            }
            if new_state == Some(TenantState::Deleted) {
                conn.execute(
                    "DELETE FROM tenant_names WHERE name = $1 AND tenant_id = $2",
                    &[&name, &raw],
                )?;
            }
            let mut log = AuditRows::default();
            let now = now_micros();
            if self.audit {
                log.append(&mut system, SYSTEM, actor, draft.clone(), now)?;
                log.append(&mut head, raw, actor, draft, now)?;
            }
            log.flush(conn)?;
            system.store(conn, SYSTEM)?;
            head.store(conn, raw)?;
            Ok(Ok(new_state))
        })?;
        if let Some(state) = new_state {
            self.registry.set_state(tenant, state);
        }
        Ok(Reply::Done)
    }

    /// Removes up to `max_keys` of a deleted tenant's keys; the last chunk also removes its
    /// table names and marks it purged (once, whichever node gets there).
    pub(crate) fn purge_chunk(&self, tenant: TenantId, max_keys: usize) -> Result<(u64, bool)> {
        let raw = id(tenant)?;
        let max = i64::try_from(max_keys.max(1)).unwrap_or(i64::MAX);
        in_txn(&self.pool, "BEGIN", |conn| {
            let row = conn.query_opt(
                "SELECT state, purged FROM heads WHERE tenant_id = $1",
                &[&raw],
            )?;
            let Some(row) = row else {
                return Ok(Err(Error::UnknownTenant(tenant)));
            };
            if decode_state(row.get(0))? != TenantState::Deleted {
                return Ok(Err(Error::Corrupted(format!(
                    "purge of tenant {tenant}, which is not deleted"
                ))));
            }
            if row.get::<_, bool>(1) {
                return Ok(Ok((0, true)));
            }
            let removed = conn.execute(
                "DELETE FROM kv WHERE (tenant_id, table_id, k) IN \
                 (SELECT tenant_id, table_id, k FROM kv WHERE tenant_id = $1 \
                  ORDER BY table_id, k LIMIT $2)",
                &[&raw, &max],
            )?;
            let done = removed < max_keys.max(1) as u64;
            if done {
                let Some(mut system) = Head::lock(conn, SYSTEM)? else {
                    return Err(Error::Corrupted(
                        "the system stream's head is missing".into(),
                    ));
                };
                let Some(mut head) = Head::lock(conn, raw)? else {
                    return Ok(Err(Error::UnknownTenant(tenant)));
                };
                if !head.purged {
                    conn.execute("DELETE FROM tables WHERE tenant_id = $1", &[&raw])?;
                    head.purged = true;
                    head.usage.bytes = 0;
                    head.usage.keys = 0;
                    let mut log = AuditRows::default();
                    if self.audit {
                        let draft =
                            AuditEvent::new("tenant.purge").target(format!("tenant {tenant}"));
                        log.append(&mut system, SYSTEM, &Actor::default(), draft, now_micros())?;
                    }
                    log.flush(conn)?;
                    system.store(conn, SYSTEM)?;
                    head.store(conn, raw)?;
                }
            }
            Ok(Ok((removed, done)))
        })
    }
}

/// What a commit's statements leave: the receipt, the refusal (whose denied audit entries were
/// written instead of the data), and the tables they created.
type Written = (CommitReceipt, Option<Error>, Vec<(String, TableId)>);

fn table_id(raw: i32) -> Result<TableId> {
    TableId::try_from(raw).map_err(|_| Error::Corrupted(format!("table id {raw} out of range")))
}

const TENANT_INFO: &str = "SELECT t.tenant_id, t.name, t.created_micros, h.state, h.max_bytes, \
    h.max_keys, h.used_bytes, h.used_keys, h.audit_bytes, h.audit_entries, h.purged \
    FROM tenants t JOIN heads h ON h.tenant_id = t.tenant_id";

fn tenant_info(row: &Row) -> Result<TenantInfo> {
    let tenant = TenantId::from_raw(to_u64(row.get(0), "tenant id")?);
    let opt = |i: usize| -> Result<Option<u64>> {
        row.get::<_, Option<i64>>(i)
            .map(|v| to_u64(v, "quota"))
            .transpose()
    };
    let record = TenantRecord {
        name: row.get(1),
        state: u8::try_from(row.get::<_, i16>(3)).unwrap_or(u8::MAX),
        quota: Quota {
            max_bytes: opt(4)?,
            max_keys: opt(5)?,
        },
        created_micros: row.get(2),
        purged: row.get(10),
    };
    let usage = Usage {
        bytes: to_u64(row.get(6), "usage")?,
        keys: to_u64(row.get(7), "usage")?,
        audit_bytes: to_u64(row.get(8), "usage")?,
        audit_entries: to_u64(row.get(9), "usage")?,
    };
    record.info(tenant, usage)
}

// ---------------------------------------------------------------------------------------------
// Heads and audit rows

/// A row of `heads`, locked by this transaction.
struct Head {
    state: i16,
    quota: Quota,
    usage: Usage,
    seq: u64,
    hash: [u8; 32],
    ts: i64,
    next_table: i32,
    purged: bool,
    /// Moves with every commit that writes a reserved table.
    reserved_version: i64,
}

impl Head {
    fn new_tenant() -> Self {
        Head {
            state: i16::from(TenantState::Active.to_u8()),
            quota: Quota::default(),
            usage: Usage::default(),
            seq: 0,
            hash: [0; 32],
            ts: 0,
            next_table: 1,
            purged: false,
            reserved_version: 0,
        }
    }

    fn lock(conn: &mut Conn, raw: i64) -> Result<Option<Head>> {
        let row = conn.query_opt(
            "SELECT state, max_bytes, max_keys, used_bytes, used_keys, audit_bytes, \
             audit_entries, seq, hash, ts, next_table, purged, reserved_version FROM heads \
             WHERE tenant_id = $1 FOR UPDATE",
            &[&raw],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let opt = |i: usize| -> Result<Option<u64>> {
            row.get::<_, Option<i64>>(i)
                .map(|v| to_u64(v, "quota"))
                .transpose()
        };
        Ok(Some(Head {
            state: row.get(0),
            quota: Quota {
                max_bytes: opt(1)?,
                max_keys: opt(2)?,
            },
            usage: Usage {
                bytes: to_u64(row.get(3), "usage")?,
                keys: to_u64(row.get(4), "usage")?,
                audit_bytes: to_u64(row.get(5), "usage")?,
                audit_entries: to_u64(row.get(6), "usage")?,
            },
            seq: to_u64(row.get(7), "seq")?,
            hash: to_hash(&row.get::<_, Vec<u8>>(8))?,
            ts: row.get(9),
            next_table: row.get(10),
            purged: row.get(11),
            reserved_version: row.get(12),
        }))
    }

    fn state(&self) -> Result<TenantState> {
        decode_state(self.state)
    }

    fn add_usage(&mut self, delta: UsageDelta) {
        self.usage.bytes = self.usage.bytes.saturating_add_signed(delta.bytes);
        self.usage.keys = self.usage.keys.saturating_add_signed(delta.keys);
    }

    fn receipt(&self) -> CommitReceipt {
        CommitReceipt {
            audit_seq: self.seq,
            audit_head: self.hash,
        }
    }

    fn store(&self, conn: &mut Conn, raw: i64) -> Result<()> {
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let quota = |v: Option<u64>| v.map(signed);
        conn.execute(
            "UPDATE heads SET state = $2, max_bytes = $3, max_keys = $4, used_bytes = $5, \
             used_keys = $6, audit_bytes = $7, audit_entries = $8, seq = $9, hash = $10, \
             ts = $11, next_table = $12, purged = $13, reserved_version = $14 \
             WHERE tenant_id = $1",
            &[
                &raw,
                &self.state,
                &quota(self.quota.max_bytes),
                &quota(self.quota.max_keys),
                &signed(self.usage.bytes),
                &signed(self.usage.keys),
                &signed(self.usage.audit_bytes),
                &signed(self.usage.audit_entries),
                &signed(self.seq),
                &&self.hash[..],
                &self.ts,
                &self.next_table,
                &self.purged,
                &self.reserved_version,
            ],
        )?;
        Ok(())
    }
}

/// Audit rows to insert in one statement.
#[derive(Default)]
struct AuditRows {
    streams: Vec<i64>,
    seqs: Vec<i64>,
    ts: Vec<i64>,
    actions: Vec<String>,
    hashes: Vec<Vec<u8>>,
    bodies: Vec<Vec<u8>>,
}

impl AuditRows {
    /// Chains `draft` to `head` (which it advances), exactly as the redb backend does.
    fn append(
        &mut self,
        head: &mut Head,
        stream: i64,
        actor: &Actor,
        draft: AuditEvent,
        now: i64,
    ) -> Result<()> {
        let raw = to_u64(stream, "stream id")?;
        let seq = head.seq + 1;
        let ts = now.max(head.ts);
        let entry = audit::chain_entry(raw, seq, &head.hash, ts, actor, draft);
        let body = schema::encode(&entry)?;
        if stream != SYSTEM {
            // As on redb, where an entry is stored with a 24-byte header under an 8-byte key.
            head.usage.audit_bytes += body.len() as u64 + 32;
            head.usage.audit_entries += 1;
        }
        head.seq = seq;
        head.hash = entry.hash;
        head.ts = ts;
        self.streams.push(stream);
        self.seqs
            .push(i64::try_from(seq).map_err(|_| Error::Corrupted("audit seq overflow".into()))?);
        self.ts.push(ts);
        self.actions.push(entry.action.into_owned());
        self.hashes.push(entry.hash.to_vec());
        self.bodies.push(body);
        Ok(())
    }

    fn flush(self, conn: &mut Conn) -> Result<()> {
        if self.seqs.is_empty() {
            return Ok(());
        }
        conn.execute(
            "INSERT INTO audit (tenant_id, seq, ts, action, hash, body) \
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::bytea[], $6::bytea[])",
            &[
                &self.streams,
                &self.seqs,
                &self.ts,
                &self.actions,
                &self.hashes,
                &self.bodies,
            ],
        )?;
        Ok(())
    }
}

fn audit_query(
    conn: &mut Conn,
    stream: AuditStream,
    query: &AuditQuery,
) -> Result<Vec<AuditEntry>> {
    let raw = raw_id(stream.raw())?;
    let limit = query.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let mut below = query
        .before_seq
        .map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX));
    let mut expected: Option<i64> = None;
    loop {
        let rows = conn.query(
            "SELECT seq, body FROM audit WHERE tenant_id = $1 AND seq < $2 \
             ORDER BY seq DESC LIMIT $3",
            &[&raw, &below, &PAGE],
        )?;
        let fetched = rows.len();
        for row in rows {
            let seq: i64 = row.get(0);
            if expected.is_some_and(|e| e != seq) {
                return Err(Error::AuditTampered {
                    stream,
                    seq: to_u64(seq, "seq")?,
                    reason: "an entry is missing before this one".into(),
                });
            }
            expected = Some(seq - 1);
            below = seq;
            let body: &[u8] = row.get(1);
            let entry = StoredEntry::decode(body)?;
            if query.since_micros.is_some_and(|s| entry.ts < s) {
                return Ok(out); // timestamps never decrease within a stream
            }
            if query.matches(&entry) {
                out.push(entry.into_entry(stream.raw(), to_u64(seq, "seq")?));
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        if fetched < PAGE as usize {
            return Ok(out);
        }
    }
}

/// Calls `f` with every entry of `stream`, oldest first, checking that seqs run from 1 without
/// a gap; returns the number of entries.
fn for_each_entry(
    conn: &mut Conn,
    stream: AuditStream,
    mut f: impl FnMut(u64, StoredEntry<'_>) -> Result<()>,
) -> Result<u64> {
    let raw = raw_id(stream.raw())?;
    let mut after = 0i64;
    loop {
        let rows = conn.query(
            "SELECT seq, body FROM audit WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&raw, &after, &PAGE],
        )?;
        let fetched = rows.len();
        for row in rows {
            let seq: i64 = row.get(0);
            if seq != after + 1 {
                return Err(Error::AuditTampered {
                    stream,
                    seq: to_u64(after + 1, "seq")?,
                    reason: "the entry is missing".into(),
                });
            }
            after = seq;
            let body: &[u8] = row.get(1);
            let entry = StoredEntry::decode(body).map_err(|e| Error::AuditTampered {
                stream,
                seq: seq as u64,
                reason: format!("entry does not decode ({e})"),
            })?;
            f(seq as u64, entry)?;
        }
        if fetched < PAGE as usize {
            return to_u64(after, "seq");
        }
    }
}

fn audit_verify(
    conn: &mut Conn,
    stream: AuditStream,
    anchor: Option<(u64, &[u8; 32])>,
) -> Result<u64> {
    let mut chain = audit::ChainCheck::new(stream, anchor);
    for_each_entry(conn, stream, |seq, entry| chain.check(seq, &entry))?;
    let head = conn.query_opt(
        "SELECT seq, hash FROM heads WHERE tenant_id = $1",
        &[&raw_id(stream.raw())?],
    )?;
    let head = match head {
        Some(row) => Some((
            to_u64(row.get(0), "seq")?,
            to_hash(&row.get::<_, Vec<u8>>(1))?,
        )),
        None => None,
    };
    chain.finish(head)
}

fn audit_jsonl(conn: &mut Conn, stream: AuditStream, out: &mut dyn Write) -> Result<u64> {
    let raw = stream.raw();
    let count = for_each_entry(conn, stream, |seq, entry| {
        let entry = entry.into_entry(raw, seq);
        serde_json::to_writer(&mut *out, &entry).map_err(|e| Error::Encode(e.to_string()))?;
        out.write_all(b"\n")?;
        Ok(())
    })?;
    out.flush()?;
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// Views and scans

/// One snapshot's transaction on its own connection (see [`Shared::view`]).
pub(crate) struct PgView {
    shared: Arc<Shared>,
    tenant: TenantId,
    /// Holds the tenant's writer lock (READ COMMITTED); otherwise REPEATABLE READ READ ONLY.
    write: bool,
    conn: Mutex<Option<Conn>>,
}

impl Drop for PgView {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.get_mut().take() {
            // Rolls back what is left open (an uncommitted write transaction, a read).
            self.shared.pool.put(conn);
        }
    }
}

impl PgView {
    fn with<R>(&self, f: impl FnOnce(&mut Conn, i64) -> Result<R>) -> Result<R> {
        let raw = id(self.tenant)?;
        let mut slot = self.conn.lock();
        let Some(conn) = slot.as_mut() else {
            return Err(Error::Unavailable {
                reason: "the transaction's connection was lost".into(),
            });
        };
        if !conn.in_txn {
            // Only after a commit through this (write) view: reads go on in a snapshot.
            conn.begin(READ_VIEW)?;
        }
        f(conn, raw)
    }

    pub(crate) fn get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let table = signed_table(table)?;
        self.with(|conn, raw| {
            Ok(conn
                .query_opt(
                    "SELECT v FROM kv WHERE tenant_id = $1 AND table_id = $2 AND k = $3",
                    &[&raw, &table, &key],
                )?
                .map(|row| row.get(0)))
        })
    }

    pub(crate) fn stored_size(&self, table: TableId, key: &[u8]) -> Result<Option<u64>> {
        let table = signed_table(table)?;
        self.with(|conn, raw| {
            conn.query_opt(
                "SELECT octet_length(v) FROM kv WHERE tenant_id = $1 AND table_id = $2 AND k = $3",
                &[&raw, &table, &key],
            )?
            .map(|row| Ok((key.len() as u64) + to_u64(i64::from(row.get::<_, i32>(0)), "length")?))
            .transpose()
        })
    }

    pub(crate) fn table_id(&self, name: &str) -> Result<Option<TableId>> {
        self.with(|conn, raw| {
            conn.query_opt(
                "SELECT table_id FROM tables WHERE tenant_id = $1 AND name = $2",
                &[&raw, &name],
            )?
            .map(|row| table_id(row.get(0)))
            .transpose()
        })
    }

    pub(crate) fn audit_head(&self) -> Result<(u64, [u8; 32])> {
        self.with(|conn, raw| {
            let row = conn
                .query_opt("SELECT seq, hash FROM heads WHERE tenant_id = $1", &[&raw])?
                .ok_or(Error::UnknownTenant(self.tenant))?;
            Ok((
                to_u64(row.get(0), "seq")?,
                to_hash(&row.get::<_, Vec<u8>>(1))?,
            ))
        })
    }

    pub(crate) fn audit_query(
        &self,
        stream: AuditStream,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>> {
        self.with(|conn, _| audit_query(conn, stream, query))
    }

    pub(crate) fn audit_jsonl(&self, stream: AuditStream, out: &mut dyn Write) -> Result<u64> {
        self.with(|conn, _| audit_jsonl(conn, stream, out))
    }

    fn page(&self, table: i32, lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> Result<Vec<KeyValue>> {
        let mut sql = String::from("SELECT k, v FROM kv WHERE tenant_id = $1 AND table_id = $2");
        let mut bounds: Vec<&[u8]> = Vec::new();
        for (bound, inclusive, exclusive) in [(lo, ">=", ">"), (hi, "<=", "<")] {
            let (op, key) = match bound {
                Bound::Included(k) => (inclusive, k),
                Bound::Excluded(k) => (exclusive, k),
                Bound::Unbounded => continue,
            };
            bounds.push(key);
            sql.push_str(&format!(" AND k {op} ${}", bounds.len() + 2));
        }
        sql.push_str(&format!(" ORDER BY k LIMIT {PAGE}"));
        self.with(|conn, raw| {
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&raw, &table];
            for key in &bounds {
                params.push(key);
            }
            Ok(conn
                .query(&sql, &params)?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        })
    }
}

fn signed_table(table: TableId) -> Result<i32> {
    i32::try_from(table).map_err(|_| Error::Corrupted(format!("table id {table} out of range")))
}

/// A scan of one table, fetched a page at a time within its view's transaction.
pub(crate) struct PgScan {
    view: Arc<PgView>,
    table: TableId,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    page: VecDeque<KeyValue>,
    done: bool,
}

impl PgScan {
    pub(crate) fn new(
        view: Arc<PgView>,
        table: TableId,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
    ) -> Self {
        PgScan {
            view,
            table,
            lo,
            hi,
            page: VecDeque::new(),
            done: false,
        }
    }
}

impl Iterator for PgScan {
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            let fetched = signed_table(self.table)
                .and_then(|table| self.view.page(table, &self.lo, &self.hi));
            match fetched {
                Err(err) => {
                    self.done = true;
                    return Some(Err(err));
                }
                Ok(rows) => {
                    self.done = rows.len() < PAGE as usize;
                    if let Some((last, _)) = rows.last() {
                        self.lo = Bound::Excluded(last.clone());
                    }
                    self.page = rows.into();
                }
            }
        }
        self.page.pop_front().map(Ok)
    }
}
