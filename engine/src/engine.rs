//! [`Engine`]: opening a database, administering tenants, and reading audit logs as an operator.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTable};

use crate::audit::{AuditEntry, AuditEvent, AuditQuery, AuditStream};
use crate::commit::{Committer, PipelineOptions, Reply, Request, redo};
use crate::context::{Actor, Context, Operator};
use crate::error::{Error, Result};
use crate::handle::{Scope, TenantHandle};
use crate::registry::{Registry, TenantShared};
use crate::schema::{self, TenantRecord};
use crate::snapshot::{Access, ReadCache};
use crate::store::{Purger, RedbStore, Store, unexpected};
use crate::types::{Quota, TenantId, TenantInfo, TenantState};
use crate::wal::{self, Wal};

/// When a commit is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Durable when `commit()` returns (the default): the batch is synced to the write-ahead
    /// log, or, on a custom backend without a log, redb syncs it.
    #[default]
    Immediate,
    /// Not synced and not logged: a crash may lose recent commits, never corrupt the file. For
    /// bulk loads and tests.
    None,
}

/// Settings of an [`Engine`]; start from `EngineOptions::default()`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineOptions {
    /// When commits are durable.
    pub durability: Durability,
    /// How long `begin_write` waits for the tenant's previous write transaction (5 s).
    pub lock_timeout: Duration,
    /// Largest write transaction, counting keys, values and audit entries (10 MiB).
    pub max_txn_bytes: usize,
    /// Keys removed per commit while purging a deleted tenant (500: about half a millisecond
    /// of work, the longest another tenant's commit usually waits behind a purge).
    pub purge_chunk_keys: usize,
    /// Most requests the committer writes in one redb transaction (1,024).
    pub max_batch_requests: usize,
    /// redb's page cache, in bytes (redb's default if `None`).
    pub cache_size: Option<usize>,
    /// A database file has a write-ahead log beside it (`<file>-wal`); once the log holds this
    /// many bytes, the next batch is a checkpoint, written to the database file durably, and
    /// the log starts again (4 MiB). The bytes a tenant's purge removes count as logged, since
    /// they change as many pages. A checkpoint holds up commits while it writes every page
    /// changed since the last one: bigger means rarer but longer stalls, a longer replay after
    /// a crash, and a bigger log file.
    pub log_checkpoint_bytes: u64,
    /// PostgreSQL backend only ([`Engine::open_postgres_with`]): the schema that holds the
    /// engine's tables, created if missing (`tenantry`; 1–63 bytes of lowercase letters, digits,
    /// `-` and `_`). Engines that share a schema share one tenantry database.
    pub postgres_schema: String,
    /// Benchmarks only: switches audit entries off to measure their cost. Never use it in
    /// production: an engine that does not audit breaks every promise of this crate.
    #[doc(hidden)]
    pub audit_enabled: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            durability: Durability::Immediate,
            lock_timeout: Duration::from_secs(5),
            max_txn_bytes: 10 * 1024 * 1024,
            purge_chunk_keys: 500,
            max_batch_requests: 1024,
            cache_size: None,
            log_checkpoint_bytes: 4 * 1024 * 1024,
            postgres_schema: "tenantry".to_owned(),
            audit_enabled: true,
        }
    }
}

pub(crate) struct EngineInner {
    pub(crate) store: Store,
    /// The tenants as this engine knows them: every tenant on redb (only this engine writes
    /// the file); on PostgreSQL a cache that other nodes' changes reach within a bounded time.
    pub(crate) registry: Arc<Registry>,
    pub(crate) options: EngineOptions,
}

impl EngineInner {
    /// The registry's entry of `tenant`; on a shared store, loaded on a miss (another node
    /// may have created it).
    pub(crate) fn tenant_shared(&self, tenant: TenantId) -> Result<Arc<TenantShared>> {
        match self.registry.get(tenant) {
            Err(Error::UnknownTenant(_)) if self.store.load_tenant(tenant)? => {
                self.registry.get(tenant)
            }
            other => other,
        }
    }
}

/// A tenantry database. Cloning is cheap and every clone shares one database and one commit
/// pipeline; `Engine` is `Send + Sync`.
///
/// The code that owns the `Engine` is trusted to pick the tenant from an authenticated request,
/// as a database server trusts its superuser connection. Everything it hands to request code
/// (a [`TenantHandle`]) reaches one tenant only.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl Engine {
    /// Opens the database at `path`, creating it if missing.
    ///
    /// # Errors
    /// [`Error::DatabaseInUse`] if another process has it open, [`Error::Corrupted`] for a redb
    /// file that is not a tenantry database, or [`Error::Storage`] for a file that is not a redb
    /// database at all.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, EngineOptions::default())
    }

    /// Opens the database at `path` with `options`.
    ///
    /// # Errors
    /// As [`Engine::open`].
    pub fn open_with(path: impl AsRef<Path>, options: EngineOptions) -> Result<Self> {
        let path = path.as_ref();
        discard_unfinished_file(path)?;
        let db = builder(&options).create(path)?;
        // Opened after the database, whose lock keeps a second process out of both files.
        let log = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(log_path(path))
            .map_err(Error::storage_io)?;
        // So that the log's directory entry, not only its contents, survives a power loss.
        sync_parent(path)?;
        let log = redb::backends::FileBackend::new(log)?;
        Self::start(db, options, Some(Box::new(log)))
    }

    /// A database that lives in memory only.
    ///
    /// # Errors
    /// A storage error.
    pub fn in_memory() -> Result<Self> {
        Self::in_memory_with(EngineOptions::default())
    }

    /// An in-memory database with `options`.
    ///
    /// # Errors
    /// A storage error.
    pub fn in_memory_with(options: EngineOptions) -> Result<Self> {
        Self::open_backend(redb::backends::InMemoryBackend::new(), options)
    }

    /// Opens a database on a custom redb storage backend, without a write-ahead log: each
    /// batch is made durable by redb itself. For fault-injection tests.
    ///
    /// # Errors
    /// As [`Engine::open`].
    pub fn open_backend(
        backend: impl redb::StorageBackend,
        options: EngineOptions,
    ) -> Result<Self> {
        discard_unfinished_backend(&backend)?;
        let db = builder(&options).create_with_backend(backend)?;
        Self::start(db, options, None)
    }

    /// Opens a database on custom storage backends for the database and its write-ahead log,
    /// as [`Engine::open`] does with two files. For fault-injection tests.
    ///
    /// # Errors
    /// As [`Engine::open`].
    pub fn open_backend_with_log(
        backend: impl redb::StorageBackend,
        log: impl redb::StorageBackend,
        options: EngineOptions,
    ) -> Result<Self> {
        discard_unfinished_backend(&backend)?;
        let db = builder(&options).create_with_backend(backend)?;
        Self::start(db, options, Some(Box::new(log)))
    }

    fn start(
        db: redb::Database,
        options: EngineOptions,
        log: Option<Box<dyn redb::StorageBackend>>,
    ) -> Result<Self> {
        let db = Arc::new(db);
        let schema = init_schema(&db)?;
        let wal = match log {
            Some(log) => Some(recover(&db, log, &schema, &options)?),
            None if schema.logged => {
                return Err(Error::Corrupted(
                    "the database was written through a write-ahead log: open it with its log \
                     (Engine::open, or Engine::open_backend_with_log), which may hold commits \
                     the database file lacks"
                        .into(),
                ));
            }
            None => {
                upgrade_and_replay(&db, &schema, &[])?;
                None
            }
        };
        // With `Durability::None` nothing is logged: the log was only replayed.
        let wal = wal.filter(|_| options.durability == Durability::Immediate);
        let registry = Arc::new(Registry::default());
        let unpurged = load_registry(&db, &registry)?;
        let pipeline = PipelineOptions {
            durability: match options.durability {
                Durability::Immediate => redb::Durability::Immediate,
                Durability::None => redb::Durability::None,
            },
            audit: options.audit_enabled,
            max_batch_requests: options.max_batch_requests.max(1),
            max_batch_bytes: options.max_txn_bytes.saturating_mul(4).max(1 << 20),
        };
        let reads = Arc::new(ReadCache::default());
        let committer = Committer::start(
            Arc::clone(&db),
            Arc::clone(&registry),
            Arc::clone(&reads),
            pipeline,
            wal,
        )?;
        let engine = Engine {
            inner: Arc::new(EngineInner {
                store: Store::Redb(RedbStore {
                    committer,
                    reads,
                    db,
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

    /// Finishes purging tenants whose deletion was interrupted, in the background.
    pub(crate) fn resume_purges(&self, tenants: Vec<TenantId>) {
        let queue = self.inner.store.purger();
        let chunk = self.inner.options.purge_chunk_keys;
        let spawned = std::thread::Builder::new()
            .name("tenantry-purge".into())
            .spawn(move || {
                for tenant in tenants {
                    if let Err(err) = purge(&queue, tenant, chunk, |_| {}) {
                        tracing::warn!(%tenant, %err, "purge of a deleted tenant did not finish");
                    }
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(%err, "could not start the purge thread; purges resume on next open");
        }
    }

    fn submit(&self, request: Request) -> Result<Reply> {
        self.inner.store.submit(request)
    }

    /// Writes every commit that the write-ahead log holds into the database file durably, and
    /// lets the log start again: afterwards the file alone is complete, for example to copy it
    /// as a backup while no commit runs. The engine also does this by itself, whenever the log
    /// holds [`EngineOptions::log_checkpoint_bytes`] and whenever it has been idle for 50 ms.
    /// Without a log (a custom backend), every commit is already in the file.
    ///
    /// # Errors
    /// [`Error::EngineFailed`] if the storage fails.
    pub fn checkpoint(&self) -> Result<()> {
        match self.submit(Request::Checkpoint)? {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Creates a tenant called `name` (1–63 bytes of lowercase letters, digits, `-` and `_`,
    /// starting with a letter or digit). Audited in the system stream and the tenant's own.
    ///
    /// # Errors
    /// [`Error::InvalidTenantName`], [`Error::TenantNameTaken`], an invalid operator, or a
    /// storage error.
    pub fn create_tenant(&self, op: &Operator, name: &str) -> Result<TenantId> {
        let ids = self.create_tenants(op, [name])?;
        ids.into_iter()
            .next()
            .ok_or_else(|| Error::Corrupted("no tenant id returned".into()))
    }

    /// Creates several tenants in one transaction: all or none.
    ///
    /// # Errors
    /// As [`Engine::create_tenant`].
    pub fn create_tenants<'a>(
        &self,
        op: &Operator,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<TenantId>> {
        op.validate()?;
        let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        for name in &names {
            validate_tenant_name(name)?;
        }
        match self.submit(Request::CreateTenants {
            names,
            actor: Actor::from(op),
        })? {
            Reply::Tenants(ids) => Ok(ids),
            other => Err(unexpected(&other)),
        }
    }

    /// The id of the live tenant called `name`.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for a registry that is not held in memory.
    pub fn tenant_id(&self, name: &str) -> Result<Option<TenantId>> {
        match self.inner.registry.id_of(name) {
            Some(id) => Ok(Some(id)),
            None => self.inner.store.load_tenant_named(name),
        }
    }

    /// Every live (not deleted) tenant, by id.
    ///
    /// # Errors
    /// A storage error.
    pub fn list_tenants(&self) -> Result<Vec<TenantInfo>> {
        Ok(self
            .all_tenants()?
            .into_iter()
            .filter(|t| t.state != TenantState::Deleted)
            .collect())
    }

    /// Every tenant ever created, deleted ones included, by id.
    ///
    /// # Errors
    /// A storage error.
    pub fn all_tenants(&self) -> Result<Vec<TenantInfo>> {
        self.inner.store.all_tenants()
    }

    /// What the engine knows about one tenant (deleted ones included).
    ///
    /// # Errors
    /// [`Error::UnknownTenant`] or a storage error.
    pub fn tenant_info(&self, tenant: TenantId) -> Result<TenantInfo> {
        self.inner.store.tenant_info(tenant)
    }

    /// Changes a tenant's state; `Deleted` is the same as [`Engine::delete_tenant`].
    ///
    /// # Errors
    /// [`Error::UnknownTenant`], [`Error::TenantDeleted`], or a storage error.
    pub fn set_tenant_state(
        &self,
        op: &Operator,
        tenant: TenantId,
        state: TenantState,
    ) -> Result<()> {
        if state == TenantState::Deleted {
            return self.delete_tenant(op, tenant);
        }
        op.validate()?;
        self.submit(Request::SetState {
            tenant,
            state,
            actor: Actor::from(op),
        })
        .map(drop)
    }

    /// Sets a tenant's quota. Usage above a lowered quota is kept, but commits that would grow
    /// it further are refused.
    ///
    /// # Errors
    /// As [`Engine::set_tenant_state`].
    pub fn set_quota(&self, op: &Operator, tenant: TenantId, quota: Quota) -> Result<()> {
        op.validate()?;
        self.submit(Request::SetQuota {
            tenant,
            quota,
            actor: Actor::from(op),
        })
        .map(drop)
    }

    /// Deletes a tenant: in one transaction its data becomes unreachable, its name is freed and
    /// its open handles start failing; then its keys are purged in chunks that interleave with
    /// other tenants' commits. Returns when the purge is complete. The id is never reused and
    /// the audit log stays readable by operators.
    ///
    /// # Errors
    /// As [`Engine::set_tenant_state`].
    pub fn delete_tenant(&self, op: &Operator, tenant: TenantId) -> Result<()> {
        self.delete_tenant_with_progress(op, tenant, |_| {})
    }

    /// [`Engine::delete_tenant`], calling `progress` with the number of keys purged so far
    /// after each chunk.
    ///
    /// # Errors
    /// As [`Engine::delete_tenant`].
    pub fn delete_tenant_with_progress(
        &self,
        op: &Operator,
        tenant: TenantId,
        progress: impl FnMut(u64),
    ) -> Result<()> {
        op.validate()?;
        self.submit(Request::Delete {
            tenant,
            actor: Actor::from(op),
        })?;
        purge(
            &self.inner.store.purger(),
            tenant,
            self.inner.options.purge_chunk_keys,
            progress,
        )
    }

    /// A handle bound to the context's tenant. Costs no I/O.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`], [`Error::TenantSuspended`], [`Error::TenantDeleted`], or an
    /// over-long context field ([`Error::InvalidField`]).
    pub fn tenant(&self, ctx: &Context) -> Result<TenantHandle> {
        self.context_handle(ctx, Access::Tenant, false)
    }

    /// A counter that moves whenever any tenant's state changes (suspension, deletion, ...), read
    /// without a lock: a component that keeps per-tenant state in memory (the plugin host's
    /// compiled plugins) compares it with the value it last saw, and looks at
    /// [`Engine::tenant_state`] only when it moved.
    pub fn state_generation(&self) -> u64 {
        self.inner
            .registry
            .state_generation()
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The longest key this engine's backend stores: [`crate::MAX_KEY_LEN`] (4 KiB) on redb,
    /// 2 KiB on PostgreSQL, whose btree caps an index entry near 2.7 KB. A longer key is
    /// refused by `put` and `delete` with [`Error::KeyTooLarge`] naming this limit (reads of such
    /// a key find nothing, up to [`crate::MAX_KEY_LEN`]).
    pub fn max_key_len(&self) -> usize {
        self.inner.store.max_key_len()
    }

    /// A number that moves whenever a commit writes one of the tenant's reserved tables,
    /// through any engine on the same database: a component that caches what it keeps there
    /// (the plugin host's compiled plugins and limits) compares it with the value it cached at,
    /// so that a plugin installed through another app node runs at the next invocation here.
    /// On redb, where only this engine writes, it is always 0 and costs nothing; on PostgreSQL
    /// it is one single-row read.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`], or a storage error.
    pub fn reserved_tables_version(&self, tenant: TenantId) -> Result<u64> {
        self.inner.store.reserved_version(tenant)
    }

    /// A tenant's state as the engine holds it in memory (no I/O), deleted tenants included.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`].
    pub fn tenant_state(&self, tenant: TenantId) -> Result<TenantState> {
        Ok(self.inner.tenant_shared(tenant)?.state())
    }

    /// A handle like [`Engine::tenant`]'s for a component built on the engine, such as the
    /// plugin host running an invocation: it reaches the same tables, and it may also record
    /// audit events in the engine's reserved namespaces ([`crate::is_reserved_action`]: `kv.get`,
    /// `plugin.invoke`, ...). Such an entry states that something happened, so a component
    /// records one only when it did; never give this handle to tenant-supplied code (a plugin's
    /// own audit calls are checked against [`crate::is_reserved_action`] by the host).
    ///
    /// # Errors
    /// As [`Engine::tenant`].
    pub fn component_handle(&self, ctx: &Context) -> Result<TenantHandle> {
        self.context_handle(ctx, Access::Tenant, true)
    }

    /// A handle on the context's tenant's reserved tables only (names starting with `_`),
    /// acting as the context's actor: how a component built on the engine (the plugin host)
    /// keeps per-tenant metadata on a request's behalf. Reserved tables are reachable only
    /// through the `Engine` (this and [`Engine::reserved_handle`]), never from a
    /// [`TenantHandle`] that request code holds. It may record reserved audit actions, as
    /// [`Engine::component_handle`] may.
    ///
    /// # Errors
    /// As [`Engine::tenant`].
    pub fn reserved_tables(&self, ctx: &Context) -> Result<TenantHandle> {
        self.context_handle(ctx, Access::Reserved, true)
    }

    fn context_handle(
        &self,
        ctx: &Context,
        access: Access,
        component: bool,
    ) -> Result<TenantHandle> {
        ctx.validate()?;
        let tenant = self.inner.tenant_shared(ctx.tenant)?;
        tenant.check_readable()?;
        Ok(TenantHandle::new(Scope {
            engine: Arc::clone(&self.inner),
            tenant,
            actor: Actor::from(ctx),
            access,
            component,
        }))
    }

    /// A handle on a tenant's reserved tables only (names starting with `_`), acting as the
    /// operator: how components built on the engine (the plugin host) keep per-tenant metadata
    /// on an operator's behalf. It cannot reach the tenant's own tables; every write through it
    /// is audited in the tenant's stream as the operator's.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`], a suspended or deleted tenant, or an invalid operator.
    pub fn reserved_handle(&self, op: &Operator, tenant: TenantId) -> Result<TenantHandle> {
        op.validate()?;
        let shared = self.inner.tenant_shared(tenant)?;
        shared.check_readable()?;
        Ok(TenantHandle::new(Scope {
            engine: Arc::clone(&self.inner),
            tenant: shared,
            actor: Actor::from(op),
            access: Access::Reserved,
            component: true,
        }))
    }

    pub(crate) fn operator_scope(&self, op: &Operator, tenant: TenantId) -> Result<Scope> {
        let shared = self.inner.tenant_shared(tenant)?;
        if shared.state() == TenantState::Deleted {
            return Err(Error::TenantDeleted(tenant));
        }
        Ok(Scope {
            engine: Arc::clone(&self.inner),
            tenant: shared,
            actor: Actor::from(op),
            access: Access::Operator,
            component: true,
        })
    }

    /// Records an operator's event in the given streams, durably.
    pub(crate) fn audit_operator(
        &self,
        op: &Operator,
        streams: Vec<AuditStream>,
        event: AuditEvent,
    ) -> Result<()> {
        self.submit(Request::Audit {
            streams,
            actor: Actor::from(op),
            draft: event,
        })
        .map(drop)
    }

    /// A tenant's audit log, newest first, for an operator; works for deleted tenants too.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`] or a storage error.
    pub fn tenant_audit_log(
        &self,
        op: &Operator,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>> {
        op.validate()?;
        self.inner.tenant_shared(tenant)?;
        self.inner
            .store
            .audit_query(AuditStream::Tenant(tenant), query)
    }

    /// The system stream (operator actions), newest first.
    ///
    /// # Errors
    /// A storage error.
    pub fn system_audit_log(&self, op: &Operator, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        op.validate()?;
        self.inner.store.audit_query(AuditStream::System, query)
    }

    /// Writes a stream, oldest first, as JSON Lines; returns the number of entries.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`], a storage error, or an I/O error of `out`.
    pub fn export_audit_jsonl(
        &self,
        op: &Operator,
        stream: AuditStream,
        mut out: impl Write,
    ) -> Result<u64> {
        op.validate()?;
        if let AuditStream::Tenant(t) = stream {
            self.inner.tenant_shared(t)?;
        }
        self.inner.store.audit_jsonl(stream, &mut out)
    }

    /// Recomputes a tenant's audit chain; returns the number of entries verified.
    ///
    /// # Errors
    /// [`Error::AuditTampered`] naming the first bad seq, [`Error::UnknownTenant`], or a storage
    /// error.
    pub fn verify_audit(&self, tenant: TenantId) -> Result<u64> {
        self.inner.tenant_shared(tenant)?;
        self.verify_stream(AuditStream::Tenant(tenant), None)
    }

    /// [`Engine::verify_audit`], and also checks that the entry at `seq` still has the hash
    /// `head` that the tenant kept from a [`crate::CommitReceipt`]: catches a truncated log or
    /// a file rolled back past that point, even if the whole chain was recomputed.
    ///
    /// # Errors
    /// As [`Engine::verify_audit`].
    pub fn verify_audit_against(&self, tenant: TenantId, seq: u64, head: &[u8; 32]) -> Result<u64> {
        self.inner.tenant_shared(tenant)?;
        self.verify_stream(AuditStream::Tenant(tenant), Some((seq, head)))
    }

    /// Recomputes the chain of any stream, the system stream included.
    ///
    /// # Errors
    /// As [`Engine::verify_audit`].
    pub fn verify_stream(
        &self,
        stream: AuditStream,
        anchor: Option<(u64, &[u8; 32])>,
    ) -> Result<u64> {
        self.inner.store.audit_verify(stream, anchor)
    }

    /// Whether the commit that returned (or would have returned) the receipt `(seq, head)` of
    /// `tenant` happened: `true` if the tenant's audit entry at `seq` has the hash `head`,
    /// `false` if the stream has no such entry (the commit did not happen). The answer for a
    /// commit that failed with [`Error::CommitOutcomeUnknown`]; the head is the idempotency
    /// record, so asking twice gives the same answer.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`], or a storage error (on PostgreSQL, [`Error::Unavailable`] while
    /// the primary cannot be reached: ask again).
    pub fn resolve_commit(
        &self,
        tenant: TenantId,
        audit_seq: u64,
        audit_head: &[u8; 32],
    ) -> Result<bool> {
        self.inner.tenant_shared(tenant)?;
        if audit_seq == 0 {
            return Ok(false);
        }
        let query = AuditQuery::default().before_seq(audit_seq + 1).limit(1);
        let newest = self
            .inner
            .store
            .audit_query(AuditStream::Tenant(tenant), &query)?;
        Ok(newest
            .first()
            .is_some_and(|e| e.seq == audit_seq && &e.hash == audit_head))
    }

    /// Why the commit pipeline stopped, if a storage failure stopped it.
    pub fn failure(&self) -> Option<String> {
        self.inner.store.failure()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// redb's magic number, which it writes last when it creates a file.
const REDB_MAGIC_LEN: usize = 9;

/// Whether `head`, the first bytes of a file, is what a creation cut short leaves: no magic
/// number yet, and either nothing else either or a header with a plausible page size. redb
/// writes the magic number only after the rest of the new file is synced, so such a file never
/// held a commit and can be started afresh. Anything else is left alone: a foreign file is
/// never truncated.
fn unfinished_creation(head: &[u8]) -> bool {
    if head.len() < 16 || head[..REDB_MAGIC_LEN].iter().any(|&b| b != 0) {
        return false;
    }
    let page_size = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    let blank = head.iter().all(|&b| b == 0);
    blank || (page_size.is_power_of_two() && (512..=65536).contains(&page_size))
}

/// Starts afresh a database file whose creation was cut short by a crash (see
/// [`unfinished_creation`]); otherwise that file could never be opened again.
fn discard_unfinished_file(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::storage_io(e)),
    };
    // A file locked by another process is in use, not unfinished: leave it to redb to say so.
    if file.try_lock().is_err() {
        return Ok(());
    }
    let mut head = Vec::with_capacity(64);
    (&mut file)
        .take(64)
        .read_to_end(&mut head)
        .map_err(Error::storage_io)?;
    if !head.is_empty() && head.iter().all(|&b| b == 0) && head.len() < 16 {
        head.resize(16, 0);
    }
    if unfinished_creation(&head) {
        tracing::warn!(path = %path.display(), "discarding a database file whose creation was interrupted");
        file.set_len(0).map_err(Error::storage_io)?;
        file.sync_all().map_err(Error::storage_io)?;
    }
    Ok(())
}

/// [`discard_unfinished_file`] for a custom backend.
fn discard_unfinished_backend(backend: &impl redb::StorageBackend) -> Result<()> {
    let len = backend.len().map_err(Error::storage_io)?;
    if len == 0 {
        return Ok(());
    }
    let mut head = vec![0u8; usize::try_from(len.min(64)).unwrap_or(64)];
    backend.read(0, &mut head).map_err(Error::storage_io)?;
    if head.len() < 16 && head.iter().all(|&b| b == 0) {
        head.resize(16, 0);
    }
    if unfinished_creation(&head) {
        tracing::warn!("discarding a database whose creation was interrupted");
        backend.set_len(0).map_err(Error::storage_io)?;
        backend.sync_data().map_err(Error::storage_io)?;
    }
    Ok(())
}

fn builder(options: &EngineOptions) -> redb::Builder {
    let mut builder = redb::Builder::new();
    if let Some(size) = options.cache_size {
        builder.set_cache_size(size);
    }
    builder
}

fn purge(
    purger: &Purger,
    tenant: TenantId,
    chunk: usize,
    mut progress: impl FnMut(u64),
) -> Result<()> {
    let mut total = 0;
    loop {
        let (removed, done) = purger.purge_chunk(tenant, chunk.max(1))?;
        total += removed;
        progress(total);
        if done {
            return Ok(());
        }
    }
}

/// What opening found in `tenantry.meta`.
struct SchemaState {
    /// The database was created by this open.
    fresh: bool,
    log_id: u64,
    /// LSN of the newest batch in the durable state.
    log_applied: u64,
    /// Batches have been written through a log.
    logged: bool,
    /// The file's format, if it is an older one that `upgrade_and_replay` converts.
    upgrade_from: Option<u64>,
}

/// The write-ahead log's file: the database's path with `-wal` appended.
fn log_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// Syncs the directory that holds `path`, so that files created in it survive a power loss.
fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::storage_io)?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Opens the write-ahead log, replays what the durable state lacks, and checkpoints.
fn recover(
    db: &redb::Database,
    log: Box<dyn redb::StorageBackend>,
    schema: &SchemaState,
    options: &EngineOptions,
) -> Result<Arc<Wal>> {
    let wal::Opened {
        mut wal,
        records,
        afresh,
    } = Wal::open(
        log,
        schema.log_id,
        schema.log_applied,
        schema.fresh,
        options.log_checkpoint_bytes,
    )?;
    if afresh {
        let id = if schema.fresh {
            schema.log_id
        } else {
            // The log is gone (or unusable and empty): a new id, recorded durably before the
            // log's header is written, so that no log of this database's earlier history can
            // ever be replayed onto the new one. A crash in between leaves a log that the next
            // open starts afresh again.
            if schema.logged {
                tracing::warn!(
                    "the database's write-ahead log was missing or empty; if the engine did not \
                     shut down cleanly, commits after its last checkpoint are lost"
                );
            }
            let id = wal::new_id();
            let txn = db.begin_write()?;
            txn.open_table(schema::META)?
                .insert(schema::META_LOG_ID, id)?;
            txn.commit()?;
            id
        };
        wal.restart_as(id)?;
    }
    if let Some(last) = upgrade_and_replay(db, schema, &records)? {
        wal.checkpointed(last);
    }
    Ok(Arc::new(wal))
}

/// Converts a file of an older format and replays the log's `records`, in one durable
/// transaction: a crash during either leaves the file as it was, and the next open does both
/// again. Called once the open has passed every check that could refuse it, so that a refused
/// open leaves an older file readable by the version that wrote it. Returns the LSN of the last
/// record replayed.
fn upgrade_and_replay(
    db: &redb::Database,
    schema: &SchemaState,
    records: &[wal::Record],
) -> Result<Option<u64>> {
    let last = records.last().map(|(lsn, _)| *lsn);
    if schema.upgrade_from.is_none() && last.is_none() {
        return Ok(None);
    }
    let txn = db.begin_write()?;
    if let Some(from) = schema.upgrade_from {
        let started = std::time::Instant::now();
        let copied = schema::upgrade_byte_tables(&txn)?;
        txn.open_table(schema::META)?
            .insert(schema::META_FORMAT, schema::FORMAT_VERSION)?;
        tracing::info!(
            from,
            to = schema::FORMAT_VERSION,
            entries = copied,
            elapsed = ?started.elapsed(),
            "upgraded the file's format"
        );
    }
    if let Some(last) = last {
        tracing::info!(
            batches = records.len(),
            last,
            "replaying the write-ahead log"
        );
        for (_, payload) in records {
            redo::replay(&txn, payload)?;
        }
        txn.open_table(schema::META)?
            .insert(schema::META_LOG_APPLIED, last)?;
    }
    txn.commit()?;
    Ok(last)
}

/// Creates every table (but the two an upgrade converts), checks the format version and reads
/// the log's id and position.
fn init_schema(db: &redb::Database) -> Result<SchemaState> {
    let txn = db.begin_write()?;
    let state;
    {
        let version = txn
            .open_table(schema::META)?
            .get(schema::META_FORMAT)?
            .map(|v| v.value());
        let upgrade_from = match version {
            None | Some(schema::FORMAT_VERSION) => {
                txn.open_table(schema::DATA)?;
                txn.open_table(schema::TABLES)?;
                None
            }
            // Formats 2 and 3 differ from 4 in the key type of two tables only; they are
            // converted by `upgrade_and_replay`, once the log has been checked.
            Some(old @ (2 | 3)) => Some(old),
            Some(other) => {
                return Err(Error::Corrupted(format!(
                    "the file has tenantry format version {other}; this version reads formats 2 to {}",
                    schema::FORMAT_VERSION
                )));
            }
        };
        txn.open_table(schema::TENANTS)?;
        txn.open_table(schema::TENANT_NAMES)?;
        txn.open_table(schema::AUDIT)?;
        txn.open_table(schema::AUDIT_INDEX)?;
        txn.open_table(schema::TAILS)?;
        let mut meta = txn.open_table(schema::META)?;
        let known_id = meta.get(schema::META_LOG_ID)?.map(|v| v.value());
        let log_id = match known_id {
            Some(id) => id,
            None => {
                let id = wal::new_id();
                meta.insert(schema::META_LOG_ID, id)?;
                id
            }
        };
        let applied = meta.get(schema::META_LOG_APPLIED)?.map(|v| v.value());
        state = SchemaState {
            fresh: version.is_none(),
            log_id,
            log_applied: applied.unwrap_or(0),
            logged: applied.is_some(),
            upgrade_from,
        };
        if version.is_none() {
            meta.insert(schema::META_FORMAT, schema::FORMAT_VERSION)?;
        }
    }
    txn.commit()?;
    Ok(state)
}

/// Loads every tenant into the registry; returns deleted tenants whose purge did not finish.
fn load_registry(db: &redb::Database, registry: &Registry) -> Result<Vec<TenantId>> {
    let txn = db.begin_read()?;
    let table = txn.open_table(schema::TENANTS)?;
    let mut unpurged = Vec::new();
    for item in table.iter()? {
        let (id, bytes) = item?;
        let id = TenantId::from_raw(id.value());
        let record: TenantRecord = schema::decode_record("tenant record", bytes.value())?;
        let state = record.state()?;
        registry.insert(id, &record.name, state);
        if state == TenantState::Deleted && !record.purged {
            unpurged.push(id);
        }
    }
    Ok(unpurged)
}

/// Tenant names: 1 to 63 bytes of `[a-z0-9_-]`, starting with a letter or digit.
pub(crate) fn validate_tenant_name(name: &str) -> Result<()> {
    check_identifier(name, 63).map_err(|reason| Error::InvalidTenantName {
        name: name.chars().take(80).collect(),
        reason,
    })
}

/// The rule for tenant names (and, in the plugin host, plugin names): 1 to `max_len` bytes of
/// lowercase ASCII letters, digits, `-` and `_`, starting with a letter or digit. Returns why a
/// name breaks it.
///
/// # Errors
/// A short reason, for example `"must not be empty"`.
pub fn check_identifier(name: &str, max_len: usize) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > max_len {
        return Err("too long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err("only lowercase ASCII letters, digits, '-' and '_' are allowed");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("must start with a letter or digit");
    }
    Ok(())
}
