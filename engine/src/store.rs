//! The storage seam: what the engine's rules (context, handles, transaction buffering, the
//! hash chain, quotas, lifecycle, the escape hatch) ask of a backend, and the backends.
//!
//! Everything above this module is the same on every backend; everything a backend does is
//! reached through [`Store`]: opening a [`Snapshot`] (a read view, or for a write transaction a
//! view that also holds the tenant's writer lock), committing a transaction's buffer, the
//! administrative requests ([`Request`]), and the operator's reads of tenants and audit streams.
//! It is an enum, not a trait object: the embedded redb backend, on the hot path of every read,
//! pays for no indirection, and with the `postgres` feature off the match has one arm.
//!
//! Both backends build each audit entry with [`crate::audit::chain_entry`] and validate each
//! commit with [`crate::commit::refusal`], so their streams are identical and cross-verifiable.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTable};

use crate::audit::{self, AuditEntry, AuditQuery, AuditStream};
use crate::commit::{CommitQueue, CommitReceipt, Committer, DataCommit, Reply, Request};
use crate::error::{Error, Result};
use crate::registry::TenantShared;
use crate::schema::{self, TenantRecord};
use crate::snapshot::{Access, ReadCache, Snapshot};
use crate::types::{TenantId, TenantInfo};

/// The embedded backend: one redb file (or custom backend) and its commit pipeline.
pub(crate) struct RedbStore {
    // Field order is drop order: the committer finishes before the database closes.
    pub(crate) committer: Committer,
    /// The read transaction shared by snapshots until the next commit.
    pub(crate) reads: Arc<ReadCache>,
    pub(crate) db: Arc<redb::Database>,
}

/// One engine's storage.
pub(crate) enum Store {
    Redb(RedbStore),
    #[cfg(feature = "postgres")]
    Pg(crate::pg::PgStore),
}

/// What a background purge needs: a handle on the storage that outlives no engine (a purge of
/// an engine that was closed fails and resumes at the next open).
pub(crate) enum Purger {
    Redb(Arc<CommitQueue>),
    #[cfg(feature = "postgres")]
    Pg(Arc<crate::pg::Shared>),
}

impl Purger {
    /// Removes up to `max_keys` of a deleted tenant's keys: `(removed, done)`.
    pub(crate) fn purge_chunk(&self, tenant: TenantId, max_keys: usize) -> Result<(u64, bool)> {
        match self {
            Purger::Redb(queue) => match queue.submit(Request::Purge { tenant, max_keys })? {
                Reply::Purged { removed, done } => Ok((removed, done)),
                other => Err(unexpected(&other)),
            },
            #[cfg(feature = "postgres")]
            Purger::Pg(shared) => shared.purge_chunk(tenant, max_keys),
        }
    }
}

impl Store {
    /// The longest key this backend stores (see [`crate::Engine::max_key_len`]).
    pub(crate) fn max_key_len(&self) -> usize {
        match self {
            Store::Redb(_) => crate::keys::MAX_KEY_LEN,
            #[cfg(feature = "postgres")]
            Store::Pg(_) => crate::pg::MAX_KEY_LEN,
        }
    }

    /// Carries out an administrative request (or a commit of audit entries only).
    pub(crate) fn submit(&self, request: Request) -> Result<Reply> {
        match self {
            Store::Redb(r) => r.committer.queue().submit(request),
            #[cfg(feature = "postgres")]
            Store::Pg(p) => p.shared().submit(request),
        }
    }

    /// Commits a write transaction's buffer, read and locked through `snapshot`.
    pub(crate) fn commit_data(
        &self,
        commit: DataCommit,
        snapshot: &Snapshot,
    ) -> Result<CommitReceipt> {
        match self {
            Store::Redb(r) => {
                // The snapshot's tenant lock is the in-process one, held by the transaction.
                let _ = snapshot;
                match r.committer.queue().submit(Request::Data(commit))? {
                    Reply::Receipt(receipt) => Ok(receipt),
                    other => Err(unexpected(&other)),
                }
            }
            #[cfg(feature = "postgres")]
            Store::Pg(p) => p.shared().commit_data(commit, snapshot),
        }
    }

    /// Why the store refuses every commit, if it does (the redb pipeline after a storage
    /// failure; PostgreSQL fails commits one by one instead).
    pub(crate) fn failure(&self) -> Option<String> {
        match self {
            Store::Redb(r) => r.committer.queue().failure(),
            #[cfg(feature = "postgres")]
            Store::Pg(_) => None,
        }
    }

    pub(crate) fn purger(&self) -> Purger {
        match self {
            Store::Redb(r) => Purger::Redb(Arc::clone(r.committer.queue())),
            #[cfg(feature = "postgres")]
            Store::Pg(p) => Purger::Pg(Arc::clone(p.shared())),
        }
    }

    /// A view of `tenant` for `access`. With `write`, the view also holds the tenant's
    /// writer lock in storage (waiting at most that long), for a write transaction.
    pub(crate) fn snapshot(
        &self,
        tenant: Arc<TenantShared>,
        states: Arc<AtomicU64>,
        access: Access,
        write: Option<Duration>,
    ) -> Result<Snapshot> {
        match self {
            Store::Redb(r) => {
                let _ = write; // the in-process write lock is the redb writer lock
                Snapshot::begin_redb(&r.db, &r.reads, tenant, states, access)
            }
            #[cfg(feature = "postgres")]
            Store::Pg(p) => {
                let view = p.shared().view(tenant.id, write)?;
                Snapshot::begin_pg(view, tenant, states, access)
            }
        }
    }

    /// Every tenant ever created, by id.
    pub(crate) fn all_tenants(&self) -> Result<Vec<TenantInfo>> {
        match self {
            Store::Redb(r) => {
                let txn = r.db.begin_read()?;
                let table = txn.open_table(schema::TENANTS)?;
                let tails = txn.open_table(schema::TAILS)?;
                let mut out = Vec::new();
                for item in table.iter()? {
                    let (id, bytes) = item?;
                    let record: TenantRecord =
                        schema::decode_record("tenant record", bytes.value())?;
                    let usage = schema::Tail::read(&tails, id.value())?.usage;
                    out.push(record.info(TenantId::from_raw(id.value()), usage)?);
                }
                Ok(out)
            }
            #[cfg(feature = "postgres")]
            Store::Pg(p) => p.shared().all_tenants(),
        }
    }

    /// One tenant, deleted ones included.
    pub(crate) fn tenant_info(&self, tenant: TenantId) -> Result<TenantInfo> {
        match self {
            Store::Redb(r) => {
                let txn = r.db.begin_read()?;
                let table = txn.open_table(schema::TENANTS)?;
                let bytes = table
                    .get(tenant.get())?
                    .ok_or(Error::UnknownTenant(tenant))?;
                let record: TenantRecord = schema::decode_record("tenant record", bytes.value())?;
                let usage =
                    schema::Tail::read(&txn.open_table(schema::TAILS)?, tenant.get())?.usage;
                record.info(tenant, usage)
            }
            #[cfg(feature = "postgres")]
            Store::Pg(p) => p.shared().tenant_info(tenant),
        }
    }

    /// `stream`, newest first, as of now.
    pub(crate) fn audit_query(
        &self,
        stream: AuditStream,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>> {
        match self {
            Store::Redb(r) => audit::query(&r.db.begin_read()?, stream, query),
            #[cfg(feature = "postgres")]
            Store::Pg(p) => p.shared().audit_query(stream, query),
        }
    }

    /// Recomputes `stream`'s chain as of now (see [`audit::verify`]).
    pub(crate) fn audit_verify(
        &self,
        stream: AuditStream,
        anchor: Option<(u64, &[u8; 32])>,
    ) -> Result<u64> {
        match self {
            Store::Redb(r) => audit::verify(&r.db.begin_read()?, stream, anchor),
            #[cfg(feature = "postgres")]
            Store::Pg(p) => p.shared().audit_verify(stream, anchor),
        }
    }

    /// Writes `stream`, oldest first, as JSON Lines.
    pub(crate) fn audit_jsonl(&self, stream: AuditStream, out: &mut dyn Write) -> Result<u64> {
        match self {
            Store::Redb(r) => audit::write_jsonl(&r.db.begin_read()?, stream, out),
            #[cfg(feature = "postgres")]
            Store::Pg(p) => p.shared().audit_jsonl(stream, out),
        }
    }

    /// Looks a tenant up in storage, for a registry that does not hold it: on PostgreSQL
    /// another node may have created it. `None` on redb, whose registry holds every tenant.
    pub(crate) fn load_tenant(&self, tenant: TenantId) -> Result<bool> {
        match self {
            Store::Redb(_) => {
                let _ = tenant;
                Ok(false)
            }
            #[cfg(feature = "postgres")]
            Store::Pg(p) => p.shared().load_tenant(tenant),
        }
    }

    /// See [`crate::Engine::reserved_tables_version`]: always 0 on redb, where only this
    /// engine writes.
    pub(crate) fn reserved_version(&self, tenant: TenantId) -> Result<u64> {
        match self {
            Store::Redb(_) => {
                let _ = tenant;
                Ok(0)
            }
            #[cfg(feature = "postgres")]
            Store::Pg(p) => p.shared().reserved_version(tenant),
        }
    }

    /// [`Store::load_tenant`] by name.
    pub(crate) fn load_tenant_named(&self, name: &str) -> Result<Option<TenantId>> {
        match self {
            Store::Redb(_) => {
                let _ = name;
                Ok(None)
            }
            #[cfg(feature = "postgres")]
            Store::Pg(p) => p.shared().load_tenant_named(name),
        }
    }
}

pub(crate) fn unexpected(reply: &Reply) -> Error {
    Error::Corrupted(format!("unexpected reply from the committer: {reply:?}"))
}
