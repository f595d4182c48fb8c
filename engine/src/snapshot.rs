//! A consistent, non-blocking view of one tenant's tables at one point in time.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use redb::{ReadOnlyTable, ReadableDatabase};

use crate::audit;
use crate::error::{Error, Result};
use crate::keys::{self, ByteKey, PhysicalRange, TableId, TablePrefix};
use crate::registry::TenantShared;
use crate::schema;
use crate::types::TenantState;

/// One entry of a scan: a user key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A redb read transaction and its open data table, shared by every snapshot begun between two
/// commits: the state they see is the same, so one redb transaction serves them all, and a
/// snapshot costs a reference count instead of a redb transaction.
pub(crate) struct SharedRead {
    txn: redb::ReadTransaction,
    data: ReadOnlyTable<ByteKey, &'static [u8]>,
}

/// The [`SharedRead`] of the newest committed state, if one was begun since the last commit.
///
/// The commit pipeline calls [`ReadCache::invalidate`] after every redb commit and before it
/// answers anyone, so a snapshot begun after a commit returned always sees that commit. The
/// redb transaction is begun under the lock, so an older one can never be stored after the
/// invalidation.
#[derive(Default)]
pub(crate) struct ReadCache(Mutex<Option<Arc<SharedRead>>>);

impl ReadCache {
    fn get(&self, db: &redb::Database) -> Result<Arc<SharedRead>> {
        let mut slot = self.0.lock();
        if let Some(shared) = &*slot {
            return Ok(Arc::clone(shared));
        }
        let txn = db.begin_read()?;
        let data = txn.open_table(schema::DATA)?;
        let shared = Arc::new(SharedRead { txn, data });
        *slot = Some(Arc::clone(&shared));
        Ok(shared)
    }

    /// Forgets the shared read transaction: the database has changed.
    pub(crate) fn invalidate(&self) {
        let old = self.0.lock().take();
        drop(old); // outside the lock: closing a redb read transaction takes its own lock
    }
}

/// A redb read transaction bound to one tenant: every key it reads goes through
/// [`TablePrefix`], so nothing outside the tenant can be named.
///
/// A point read touches the fields that come first, laid out in order (`repr(C)`) and from the
/// start of a cache line, so that for a table name of up to about 20 bytes they fill one line
/// instead of four scattered ones; with 1,000 tenants' snapshots in use, that line is what
/// stays in the CPU's cache.
#[repr(C, align(64))]
pub(crate) struct Snapshot {
    /// The registry's state generation, and the value at which the tenant was last found
    /// readable (`u64::MAX`: never).
    states: Arc<AtomicU64>,
    checked: AtomicU64,
    view: View,
    /// The first table named and its prefix (`None`: absent in this snapshot), so that
    /// repeated reads of one table validate and resolve its name once, and read the answer
    /// without taking a lock. A snapshot never changes, so neither does the answer.
    first_table: OnceLock<ResolvedTable>,
    pub(crate) tenant: Arc<TenantShared>,
    access: Access,
    /// The same for the last other table named.
    last_table: Mutex<Option<ResolvedTable>>,
}

/// A table a snapshot resolved, with its name held inline: a lookup compares it without
/// following a pointer. The name comes last, so that a short one shares a cache line with the
/// rest.
#[repr(C)]
struct ResolvedTable {
    len: u8,
    prefix: Option<TablePrefix>,
    name: [u8; keys::MAX_TABLE_NAME_LEN],
}

impl ResolvedTable {
    /// `None` for a name too long to be valid (it is never cached).
    fn new(table: &str, prefix: Option<TablePrefix>) -> Option<Self> {
        let len = u8::try_from(table.len())
            .ok()
            .filter(|&len| usize::from(len) <= keys::MAX_TABLE_NAME_LEN)?;
        let mut name = [0; keys::MAX_TABLE_NAME_LEN];
        name[..table.len()].copy_from_slice(table.as_bytes());
        Some(ResolvedTable { len, prefix, name })
    }

    /// The prefix of `table`, if this is `table`.
    fn prefix_of(&self, table: &str) -> Option<Option<TablePrefix>> {
        let name = &self.name[..usize::from(self.len)];
        keys::compare_bytes(name, table.as_bytes())
            .is_eq()
            .then_some(self.prefix)
    }
}

/// What a snapshot reads from: the backend's side of the seam (see [`crate::store`]).
pub(crate) enum View {
    /// The redb read transaction shared by every snapshot since the last commit.
    Redb(Arc<SharedRead>),
    /// A PostgreSQL transaction of this snapshot's own.
    #[cfg(feature = "postgres")]
    Pg(Arc<crate::pg::PgView>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// A tenant's own code: tables starting with `_` are refused.
    Tenant,
    /// A component built on the engine (the plugin host): only the tenant's reserved tables,
    /// those whose name starts with `_`.
    Reserved,
    /// An operator through an unscoped handle: may also read a suspended tenant.
    Operator,
}

impl Snapshot {
    pub(crate) fn begin_redb(
        db: &redb::Database,
        cache: &ReadCache,
        tenant: Arc<TenantShared>,
        states: Arc<AtomicU64>,
        access: Access,
    ) -> Result<Self> {
        Self::begin(View::Redb(cache.get(db)?), tenant, states, access)
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn begin_pg(
        view: Arc<crate::pg::PgView>,
        tenant: Arc<TenantShared>,
        states: Arc<AtomicU64>,
        access: Access,
    ) -> Result<Self> {
        Self::begin(View::Pg(view), tenant, states, access)
    }

    fn begin(
        view: View,
        tenant: Arc<TenantShared>,
        states: Arc<AtomicU64>,
        access: Access,
    ) -> Result<Self> {
        let snapshot = Snapshot {
            states,
            checked: AtomicU64::new(u64::MAX),
            view,
            first_table: OnceLock::new(),
            tenant,
            access,
            last_table: Mutex::new(None),
        };
        snapshot.check_readable()?;
        Ok(snapshot)
    }

    /// Fails unless the tenant may be read by this snapshot's reader.
    ///
    /// The registry bumps its state generation after it changes a tenant's state. So while the
    /// generation is the one at which this snapshot last found its tenant readable, it still
    /// is, and the check costs one load of a value shared by every snapshot instead of a visit
    /// to the tenant's own record. A state change that races with a read orders that read
    /// before the change, as reading the state itself would.
    pub(crate) fn check_readable(&self) -> Result<()> {
        let checked = self.checked.load(Ordering::Relaxed);
        if let Some(generation) = recheck(&self.states, checked, &self.tenant, self.access)? {
            self.checked.store(generation, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Validates a table name for this snapshot's reader.
    pub(crate) fn check_table(&self, table: &str) -> Result<()> {
        keys::validate_table_name(table, self.access != Access::Tenant)?;
        if self.access == Access::Reserved && !table.starts_with('_') {
            return Err(Error::InvalidTableName {
                name: table.to_owned(),
                reason: "this handle reaches only reserved tables (names starting with '_')",
            });
        }
        Ok(())
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn view(&self) -> &View {
        &self.view
    }

    /// The tenant's audit stream, newest first, as of this snapshot.
    pub(crate) fn audit_query(&self, query: &audit::AuditQuery) -> Result<Vec<audit::AuditEntry>> {
        let stream = audit::AuditStream::Tenant(self.tenant.id);
        match &self.view {
            View::Redb(shared) => audit::query(&shared.txn, stream, query),
            #[cfg(feature = "postgres")]
            View::Pg(view) => view.audit_query(stream, query),
        }
    }

    /// The tenant's audit stream, oldest first, as JSON Lines, as of this snapshot.
    pub(crate) fn audit_jsonl(&self, out: &mut dyn std::io::Write) -> Result<u64> {
        let stream = audit::AuditStream::Tenant(self.tenant.id);
        match &self.view {
            View::Redb(shared) => audit::write_jsonl(&shared.txn, stream, out),
            #[cfg(feature = "postgres")]
            View::Pg(view) => view.audit_jsonl(stream, out),
        }
    }

    /// The tenant's audit head `(seq, hash)` as of this snapshot.
    pub(crate) fn audit_head(&self) -> Result<(u64, [u8; 32])> {
        match &self.view {
            View::Redb(shared) => {
                let tails = shared.txn.open_table(schema::TAILS)?;
                let head = schema::Tail::read(&tails, self.tenant.id.get())?.head;
                Ok((head.seq, head.hash))
            }
            #[cfg(feature = "postgres")]
            View::Pg(view) => view.audit_head(),
        }
    }

    /// The id of a table, or `None` if the tenant has never written to it.
    pub(crate) fn table_id(&self, name: &str) -> Result<Option<TableId>> {
        if let Some(id) = self.tenant.cached_table(name) {
            return Ok(Some(id));
        }
        let id = match &self.view {
            View::Redb(shared) => {
                let tables = shared.txn.open_table(schema::TABLES)?;
                let key = keys::table_name_key(self.tenant.id, name);
                tables.get(&key[..])?.map(|v| v.value())
            }
            #[cfg(feature = "postgres")]
            View::Pg(view) => view.table_id(name)?,
        };
        if let Some(id) = id {
            self.tenant.remember_table(name, id);
        }
        Ok(id)
    }

    pub(crate) fn prefix(&self, table: &str) -> Result<Option<TablePrefix>> {
        if let Some(prefix) = self.first_table.get().and_then(|t| t.prefix_of(table)) {
            return Ok(prefix);
        }
        if let Some(prefix) = self
            .last_table
            .lock()
            .as_ref()
            .and_then(|t| t.prefix_of(table))
        {
            return Ok(prefix);
        }
        self.check_table(table)?;
        let prefix = self
            .table_id(table)?
            .map(|id| TablePrefix::new(self.tenant.id, id));
        if let Some(resolved) = ResolvedTable::new(table, prefix) {
            // Another thread may have set the first table meanwhile; then this one is the last.
            if let Err(resolved) = self.first_table.set(resolved) {
                *self.last_table.lock() = Some(resolved);
            }
        }
        Ok(prefix)
    }

    pub(crate) fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(table, key, |value| value.map(<[u8]>::to_vec))
    }

    /// Hands the stored value of `key` to `f`, borrowed from the database page.
    pub(crate) fn get_with<R>(
        &self,
        table: &str,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R> {
        self.check_readable()?;
        keys::check_key(key)?;
        let Some(prefix) = self.prefix(table)? else {
            return Ok(f(None));
        };
        match &self.view {
            View::Redb(shared) => {
                let value = prefix.with_key(key, |k| shared.data.get(k))?;
                Ok(f(value.as_ref().map(|v| v.value())))
            }
            #[cfg(feature = "postgres")]
            View::Pg(view) => Ok(f(view.get(prefix.table(), key)?.as_deref())),
        }
    }

    /// Size (key plus value) of a stored entry, for usage accounting.
    pub(crate) fn stored_size(
        &self,
        prefix: Option<TablePrefix>,
        key: &[u8],
    ) -> Result<Option<u64>> {
        let Some(prefix) = prefix else {
            return Ok(None);
        };
        match &self.view {
            View::Redb(shared) => {
                let value = prefix.with_key(key, |k| shared.data.get(k))?;
                Ok(value.map(|v| (key.len() + v.value().len()) as u64))
            }
            #[cfg(feature = "postgres")]
            View::Pg(view) => view.stored_size(prefix.table(), key),
        }
    }

    /// Scans `table` over a clamped physical range.
    pub(crate) fn scan(
        &self,
        table: &str,
        range: impl FnOnce(TablePrefix) -> Option<PhysicalRange>,
    ) -> Result<Scan> {
        self.check_readable()?;
        let Some(prefix) = self.prefix(table)? else {
            return Ok(Scan::empty());
        };
        let Some((lo, hi)) = range(prefix) else {
            return Ok(Scan::empty());
        };
        let inner = match &self.view {
            View::Redb(shared) => {
                let bounds = (as_slice(&lo), as_slice(&hi));
                ScanInner::Redb(shared.data.range::<&[u8]>(bounds)?)
            }
            #[cfg(feature = "postgres")]
            View::Pg(view) => {
                // Back from physical keys to the table's user keys: a bound outside the table
                // is its end.
                let user = |b: Bound<Vec<u8>>| match b {
                    Bound::Included(k) => prefix
                        .strip(&k)
                        .map_or(Bound::Unbounded, |u| Bound::Included(u.to_vec())),
                    Bound::Excluded(k) => prefix
                        .strip(&k)
                        .map_or(Bound::Unbounded, |u| Bound::Excluded(u.to_vec())),
                    Bound::Unbounded => Bound::Unbounded,
                };
                ScanInner::Pg(crate::pg::PgScan::new(
                    Arc::clone(view),
                    prefix.table(),
                    user(lo),
                    user(hi),
                ))
            }
        };
        Ok(Scan {
            inner: Some(inner),
            prefix: Some(prefix),
            guard: Some(StateGuard {
                tenant: Arc::clone(&self.tenant),
                states: Arc::clone(&self.states),
                access: self.access,
                checked: self.checked.load(Ordering::Relaxed),
            }),
        })
    }
}

/// Fails unless `access` may read `tenant`, which was found readable at state generation
/// `checked`: rereads its state only if the generation has moved since, and then returns the
/// generation to remember.
fn recheck(
    states: &AtomicU64,
    checked: u64,
    tenant: &TenantShared,
    access: Access,
) -> Result<Option<u64>> {
    let generation = states.load(Ordering::Acquire);
    if generation == checked {
        return Ok(None);
    }
    match (access, tenant.state()) {
        (Access::Operator, TenantState::Suspended) => {}
        _ => tenant.check_readable()?,
    }
    Ok(Some(generation))
}

/// What an open scan needs to recheck its tenant's state before each entry, as a snapshot
/// does before each read (see [`Snapshot::check_readable`]): a scan begun before the tenant
/// was suspended or deleted stops there.
struct StateGuard {
    tenant: Arc<TenantShared>,
    states: Arc<AtomicU64>,
    access: Access,
    checked: u64,
}

impl StateGuard {
    fn check(&mut self) -> Result<()> {
        if let Some(generation) = recheck(&self.states, self.checked, &self.tenant, self.access)? {
            self.checked = generation;
        }
        Ok(())
    }
}

fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(&k[..]),
        Bound::Excluded(k) => Bound::Excluded(&k[..]),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// An iterator over one tenant's table, in key order; yields user keys and values.
///
/// It reads the snapshot it was begun on. If the tenant is suspended or deleted meanwhile, the
/// next item is that error ([`Error::TenantSuspended`], [`Error::TenantDeleted`]) and the scan
/// ends, as every other operation of an open handle fails (an operator's scan goes on through a
/// suspension).
pub struct Scan {
    inner: Option<ScanInner>,
    prefix: Option<TablePrefix>,
    guard: Option<StateGuard>,
}

enum ScanInner {
    Redb(redb::Range<'static, ByteKey, &'static [u8]>),
    #[cfg(feature = "postgres")]
    Pg(crate::pg::PgScan),
}

impl Scan {
    fn empty() -> Self {
        Scan {
            inner: None,
            prefix: None,
            guard: None,
        }
    }
}

impl Iterator for Scan {
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        let inner = self.inner.as_mut()?;
        if let Some(Err(e)) = self.guard.as_mut().map(StateGuard::check) {
            self.inner = None;
            return Some(Err(e));
        }
        let item = match inner {
            ScanInner::Redb(range) => range.next()?,
            #[cfg(feature = "postgres")]
            ScanInner::Pg(scan) => {
                let item = scan.next()?;
                if item.is_err() {
                    self.inner = None;
                }
                return Some(item);
            }
        };
        Some(match item {
            Err(e) => Err(e.into()),
            Ok((k, v)) => {
                // The range is clamped to the table; this check is defence in depth.
                match self.prefix.as_ref().and_then(|p| p.strip(k.value())) {
                    Some(user_key) => Ok((user_key.to_vec(), v.value().to_vec())),
                    None => {
                        self.inner = None;
                        return Some(Err(Error::Corrupted("scan left its table".into())));
                    }
                }
            }
        })
    }
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan").finish_non_exhaustive()
    }
}
