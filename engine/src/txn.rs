//! Read and write transactions on one tenant's tables.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::audit::{AuditEvent, Outcome};
use crate::commit::{CommitReceipt, DataCommit, Reply, Request, TableWrites, UsageDelta};
use crate::error::{Error, Result};
use crate::handle::Scope;
use crate::keys::{self, TablePrefix};
use crate::registry::WriteLockGuard;
use crate::schema;
use crate::snapshot::{KeyValue, Scan, Snapshot};

fn bounds<'a>(range: &impl RangeBounds<&'a [u8]>) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

/// Decodes a value stored with `put_value` (bincode 2, standard configuration, serde mode).
///
/// # Errors
/// [`Error::Decode`] if `bytes` are not exactly one `T`.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    decode_in("", bytes)
}

fn decode_in<T: DeserializeOwned>(table: &str, bytes: &[u8]) -> Result<T> {
    let decoded = bincode::serde::decode_from_slice(bytes, schema::decode_config());
    match decoded {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok(_) => Err(Error::Decode {
            table: table.to_owned(),
            reason: "trailing bytes after the value".into(),
        }),
        Err(e) => Err(Error::Decode {
            table: table.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// A consistent snapshot of one tenant's tables. Reads never block and are never blocked.
pub struct ReadTxn {
    snapshot: Snapshot,
}

impl ReadTxn {
    pub(crate) fn new(snapshot: Snapshot) -> Self {
        ReadTxn { snapshot }
    }

    /// The value of `key` in `table`, if any.
    ///
    /// # Errors
    /// An invalid table name or oversized key, a suspended or deleted tenant, or a storage error.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snapshot.get(table, key)
    }

    /// The value of `key` decoded with bincode (see [`WriteTxn::put_value`]).
    ///
    /// # Errors
    /// As [`ReadTxn::get`], and [`Error::Decode`] if the bytes are not a `T`.
    pub fn get_value<T: DeserializeOwned>(&self, table: &str, key: &[u8]) -> Result<Option<T>> {
        self.get(table, key)?
            .map(|bytes| decode_in(table, &bytes))
            .transpose()
    }

    /// Every entry of `table` whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// As [`ReadTxn::get`].
    pub fn scan_prefix(&self, table: &str, prefix: &[u8]) -> Result<Scan> {
        keys::check_key(prefix)?;
        self.snapshot.scan(table, |p| Some(p.prefix_range(prefix)))
    }

    /// Every entry of `table` whose key lies in `range`, in key order.
    ///
    /// # Errors
    /// As [`ReadTxn::get`].
    pub fn range<'a>(&self, table: &str, range: impl RangeBounds<&'a [u8]>) -> Result<Scan> {
        let (start, end) = bounds(&range);
        self.snapshot.scan(table, |p| p.range(start, end))
    }
}

impl std::fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn")
            .field("tenant", &self.snapshot.tenant.id)
            .finish_non_exhaustive()
    }
}

/// A buffered write with the size the key had in the snapshot (for exact usage accounting).
#[derive(Debug)]
struct PendingWrite {
    value: Option<Vec<u8>>,
    original: Option<u64>,
}

#[derive(Debug, Default)]
struct PendingTable {
    prefix: Option<TablePrefix>,
    writes: BTreeMap<Vec<u8>, PendingWrite>,
}

/// A write transaction on one tenant: reads see its own writes, writes are buffered until
/// [`WriteTxn::commit`], and dropping it aborts it.
///
/// It holds the tenant's write lock (so transactions of one tenant are serializable) but never
/// redb's, so an open transaction never delays another tenant.
pub struct WriteTxn {
    scope: Arc<Scope>,
    snapshot: Snapshot,
    tables: BTreeMap<String, PendingTable>,
    events: Vec<AuditEvent>,
    size: usize,
    _lock: WriteLockGuard,
}

impl WriteTxn {
    pub(crate) fn new(scope: Arc<Scope>, snapshot: Snapshot, lock: WriteLockGuard) -> Self {
        WriteTxn {
            scope,
            snapshot,
            tables: BTreeMap::new(),
            events: Vec::new(),
            size: 0,
            _lock: lock,
        }
    }

    fn grow(&mut self, bytes: usize) -> Result<()> {
        let max = self.scope.engine.options.max_txn_bytes;
        let size = self.size.saturating_add(bytes);
        if size > max {
            return Err(Error::TransactionTooLarge { size, max });
        }
        self.size = size;
        Ok(())
    }

    fn pending(&self, table: &str, key: &[u8]) -> Option<&PendingWrite> {
        self.tables.get(table).and_then(|t| t.writes.get(key))
    }

    /// Records a write of `key` (a put with `Some`, a delete with `None`).
    fn buffer(&mut self, table: &str, key: &[u8], value: Option<Vec<u8>>) -> Result<()> {
        if !self.tables.contains_key(table) {
            let prefix = self.snapshot.prefix(table)?;
            self.tables.insert(
                table.to_owned(),
                PendingTable {
                    prefix,
                    writes: BTreeMap::new(),
                },
            );
        }
        let original = match self.pending(table, key) {
            Some(p) => p.original,
            None => {
                let prefix = self.tables.get(table).and_then(|t| t.prefix);
                self.snapshot.stored_size(prefix, key)?
            }
        };
        if let Some(t) = self.tables.get_mut(table) {
            t.writes
                .insert(key.to_vec(), PendingWrite { value, original });
        }
        Ok(())
    }

    fn check_write(&self, table: &str, key: &[u8]) -> Result<()> {
        self.snapshot.check_readable()?;
        self.scope.tenant.check_writable()?;
        self.snapshot.check_table(table)?;
        keys::check_key(key)?;
        let max = self.scope.engine.store.max_key_len();
        if key.len() > max {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max,
            });
        }
        Ok(())
    }

    /// Sets `key` in `table` to `value`.
    ///
    /// # Errors
    /// An invalid table name, an oversized key or value, a transaction past its size cap, a
    /// read-only, suspended or deleted tenant, or a storage error. The transaction stays usable
    /// after an error.
    pub fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_write(table, key)?;
        keys::check_value(value)?;
        let event = AuditEvent::new("kv.put")
            .target(keys::audit_target(table, key))
            .with_value_digest(value);
        self.grow(key.len() + value.len() + event.approx_size())?;
        self.buffer(table, key, Some(value.to_vec()))?;
        self.events.push(event);
        Ok(())
    }

    /// Sets `key` to `value` encoded with bincode 2 (standard configuration, serde mode).
    ///
    /// # Errors
    /// As [`WriteTxn::put`], and [`Error::Encode`].
    pub fn put_value<T: Serialize + ?Sized>(
        &mut self,
        table: &str,
        key: &[u8],
        value: &T,
    ) -> Result<()> {
        let bytes = schema::encode(value)?;
        self.put(table, key, &bytes)
    }

    /// Deletes `key`; returns whether it existed.
    ///
    /// # Errors
    /// As [`WriteTxn::put`].
    pub fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        self.check_write(table, key)?;
        let existed = self.get(table, key)?.is_some();
        let mut event = AuditEvent::new("kv.delete").target(keys::audit_target(table, key));
        if !existed {
            event = event.outcome(Outcome::NoChange);
        }
        self.grow(key.len() + event.approx_size())?;
        if existed {
            self.buffer(table, key, None)?;
        }
        self.events.push(event);
        Ok(existed)
    }

    /// Records an action of the caller's in the tenant's audit log, committed with the
    /// transaction (for example `tx.audit("project.archive", Some("archived by owner"))`).
    ///
    /// # Errors
    /// An empty or over-long action or message ([`Error::InvalidField`]); an action in a
    /// reserved namespace such as `kv.put` ([`Error::ReservedAction`], see
    /// [`crate::is_reserved_action`]); a transaction past its size cap.
    pub fn audit(&mut self, action: &str, message: Option<&str>) -> Result<()> {
        let mut event = AuditEvent::new(action.to_owned());
        if let Some(message) = message {
            event = event.message(message);
        }
        self.audit_event(event)
    }

    /// Records a fully described audit event (target and outcome included), committed with the
    /// transaction. The plugin host records each host call this way.
    ///
    /// # Errors
    /// As [`WriteTxn::audit`].
    pub fn audit_event(&mut self, event: AuditEvent) -> Result<()> {
        self.snapshot.check_readable()?;
        self.scope.check_event(&event)?;
        self.grow(event.approx_size())?;
        self.events.push(event);
        Ok(())
    }

    /// The value of `key`, including this transaction's own writes.
    ///
    /// # Errors
    /// As [`ReadTxn::get`].
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(p) = self.pending(table, key) {
            self.snapshot.check_readable()?;
            return Ok(p.value.clone());
        }
        self.snapshot.get(table, key)
    }

    /// Hands the value of `key` (including this transaction's own writes) to `f` without
    /// copying it out of the database first: for callers that copy it somewhere themselves, such
    /// as the plugin host writing it into guest memory.
    ///
    /// # Errors
    /// As [`ReadTxn::get`].
    pub fn get_with<R>(
        &self,
        table: &str,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R> {
        if let Some(p) = self.pending(table, key) {
            self.snapshot.check_readable()?;
            return Ok(f(p.value.as_deref()));
        }
        self.snapshot.get_with(table, key, f)
    }

    /// The value of `key` decoded with bincode.
    ///
    /// # Errors
    /// As [`ReadTxn::get_value`].
    pub fn get_value<T: DeserializeOwned>(&self, table: &str, key: &[u8]) -> Result<Option<T>> {
        self.get(table, key)?
            .map(|bytes| decode_in(table, &bytes))
            .transpose()
    }

    /// Entries whose key starts with `prefix`, in key order, including this transaction's writes.
    ///
    /// # Errors
    /// As [`ReadTxn::scan_prefix`].
    pub fn scan_prefix(&self, table: &str, prefix: &[u8]) -> Result<WriteScan<'_>> {
        keys::check_key(prefix)?;
        let base = self
            .snapshot
            .scan(table, |p| Some(p.prefix_range(prefix)))?;
        let end = keys::successor(prefix);
        let start = Bound::Included(prefix);
        let end = end
            .as_ref()
            .map_or(Bound::Unbounded, |e| Bound::Excluded(&e[..]));
        Ok(self.merge(table, base, start, end))
    }

    /// Entries whose key lies in `range`, in key order, including this transaction's writes.
    ///
    /// # Errors
    /// As [`ReadTxn::range`].
    pub fn range<'a>(
        &self,
        table: &str,
        range: impl RangeBounds<&'a [u8]>,
    ) -> Result<WriteScan<'_>> {
        let (start, end) = bounds(&range);
        let base = self.snapshot.scan(table, |p| p.range(start, end))?;
        Ok(self.merge(table, base, start, end))
    }

    fn merge(
        &self,
        table: &str,
        base: Scan,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
    ) -> WriteScan<'_> {
        let empty = TablePrefix::new(self.scope.tenant.id, 0)
            .range(start, end)
            .is_none();
        let overlay = match self.tables.get(table) {
            Some(t) if !empty => Some(t.writes.range::<[u8], _>((start, end))),
            _ => None,
        };
        WriteScan {
            base: base.peekable(),
            overlay: overlay.map(Iterator::peekable),
        }
    }

    /// Commits: durable when it returns (with the default durability).
    ///
    /// # Errors
    /// [`Error::QuotaExceeded`], a tenant that became read-only, suspended or deleted, or a
    /// storage failure ([`Error::EngineFailed`]). A failed commit writes nothing but, where it
    /// was refused, audit entries that say so.
    pub fn commit(self) -> Result<CommitReceipt> {
        self.finish(None)
    }

    /// Commits with one last audit event, `summary`, that is validated (so bounded by the field
    /// limits, [`crate::MAX_MESSAGE_LEN`] and the others) but not counted against the size cap:
    /// a component's account of what the transaction did, which must fit however close to the
    /// cap the transaction came (the plugin host's `plugin.invoke` entry).
    ///
    /// # Errors
    /// An invalid or reserved `summary`; otherwise as [`WriteTxn::commit`].
    pub fn commit_with(mut self, summary: AuditEvent) -> Result<CommitReceipt> {
        let summary = summary.fitted();
        self.scope.check_event(&summary)?;
        self.events.push(summary);
        self.finish(None)
    }

    /// Rolls the transaction's data changes back but commits its audit entries, each marked
    /// [`Outcome::Failed`] with `reason`: how the plugin host records a failed invocation.
    ///
    /// # Errors
    /// As [`WriteTxn::commit`].
    pub fn rollback_audited(self, reason: &str) -> Result<CommitReceipt> {
        self.finish(Some(reason))
    }

    /// Rolls the transaction's data changes back and records a bounded account of it: its
    /// first audit entries, each marked [`Outcome::Failed`] with the short `reason` (the
    /// summary carries the full story), as long as they add up to at most `max_bytes` as
    /// stored (with the actor's fields each entry repeats), then `summary`, cut to the field
    /// limits and with its message extended by how many entries were left out. The lock is
    /// released first and the entries are committed as [`crate::TenantHandle::record_audit`]
    /// commits them, so this never waits for the lock: how the plugin host records a failed
    /// invocation, however much it attempted.
    ///
    /// # Errors
    /// A reserved `summary` on a handle that may not record it (nothing is recorded), a
    /// deleted tenant, or a storage failure.
    pub fn rollback_summarised(
        mut self,
        reason: &str,
        max_bytes: usize,
        summary: AuditEvent,
    ) -> Result<CommitReceipt> {
        let summary = summary.fitted();
        self.scope.check_event(&summary)?;
        let scope = Arc::clone(&self.scope);
        let events = std::mem::take(&mut self.events);
        // Releases the write lock and discards the data changes.
        drop(self);
        let per_entry = scope.actor.stored_len();
        let total = events.len();
        let mut kept = Vec::new();
        let mut bytes = 0usize;
        for mut event in events {
            event.mark_failed(reason);
            bytes = bytes
                .saturating_add(event.approx_size())
                .saturating_add(per_entry);
            if bytes > max_bytes {
                break;
            }
            kept.push(event);
        }
        let mut summary = summary;
        let left_out = total - kept.len();
        if left_out > 0 {
            let note = format!("{left_out} of its {total} audit entries not recorded");
            let message = match summary.message.take() {
                Some(message) => format!("{message}; {note}"),
                None => note,
            };
            summary.message = Some(crate::audit::cut(message, crate::audit::MAX_MESSAGE_LEN));
        }
        kept.push(summary);
        submit_audit(&scope, kept)
    }

    fn finish(mut self, rollback: Option<&str>) -> Result<CommitReceipt> {
        self.snapshot.check_readable()?;
        if self.events.is_empty() && self.tables.values().all(|t| t.writes.is_empty()) {
            // Nothing to write, but after a storage failure no commit succeeds, empty or not.
            if let Some(failure) = self.scope.engine.store.failure() {
                return Err(Error::EngineFailed(failure));
            }
            return self.current_receipt();
        }
        let mut delta = UsageDelta::default();
        let mut tables = Vec::new();
        if rollback.is_none() {
            for (name, table) in std::mem::take(&mut self.tables) {
                let mut writes = Vec::with_capacity(table.writes.len());
                for (key, w) in table.writes {
                    let new = w.value.as_ref().map(|v| (key.len() + v.len()) as u64);
                    delta.bytes += new.unwrap_or(0) as i64 - w.original.unwrap_or(0) as i64;
                    delta.keys += i64::from(new.is_some()) - i64::from(w.original.is_some());
                    writes.push((key, w.value));
                }
                let id = self.scope.tenant.cached_table(&name);
                tables.push(TableWrites { name, id, writes });
            }
        }
        let mut events = std::mem::take(&mut self.events);
        if let Some(reason) = rollback {
            for event in &mut events {
                event.mark_failed(reason);
            }
        }
        let commit = DataCommit {
            tenant: self.scope.tenant.id,
            actor: self.scope.actor.clone(),
            tables,
            drafts: events,
            delta,
            apply: rollback.is_none(),
        };
        self.scope.engine.store.commit_data(commit, &self.snapshot)
    }

    fn current_receipt(&self) -> Result<CommitReceipt> {
        current_receipt(&self.snapshot, &self.scope)
    }
}

/// The receipt of the tenant's audit head as of `snapshot`.
fn current_receipt(snapshot: &Snapshot, scope: &Scope) -> Result<CommitReceipt> {
    let _ = scope;
    let (audit_seq, audit_head) = snapshot.audit_head()?;
    Ok(CommitReceipt {
        audit_seq,
        audit_head,
    })
}

/// Commits `drafts` to the scope's tenant stream without its write lock: a commit of audit
/// entries only, which no transaction of the tenant can conflict with.
pub(crate) fn submit_audit(scope: &Arc<Scope>, drafts: Vec<AuditEvent>) -> Result<CommitReceipt> {
    if drafts.is_empty() {
        return current_receipt(&scope.snapshot()?, scope);
    }
    let request = Request::Data(DataCommit {
        tenant: scope.tenant.id,
        actor: scope.actor.clone(),
        tables: Vec::new(),
        drafts,
        delta: UsageDelta::default(),
        apply: false,
    });
    match scope.engine.store.submit(request)? {
        Reply::Receipt(receipt) => Ok(receipt),
        other => Err(Error::Corrupted(format!(
            "unexpected commit reply {other:?}"
        ))),
    }
}

impl std::fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("tenant", &self.scope.tenant.id)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

type Overlay<'a> = Peekable<std::collections::btree_map::Range<'a, Vec<u8>, PendingWrite>>;

/// A scan inside a [`WriteTxn`]: the snapshot merged with the transaction's own writes.
pub struct WriteScan<'a> {
    base: Peekable<Scan>,
    overlay: Option<Overlay<'a>>,
}

impl Iterator for WriteScan<'_> {
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(overlay) = self.overlay.as_mut() else {
                return self.base.next();
            };
            let order = match (self.base.peek(), overlay.peek()) {
                (_, None) | (Some(Err(_)), _) => return self.base.next(),
                (None, Some(_)) => Ordering::Greater,
                (Some(Ok((base_key, _))), Some((own_key, _))) => {
                    base_key.as_slice().cmp(own_key.as_slice())
                }
            };
            match order {
                Ordering::Less => return self.base.next(),
                // Shadowed by this transaction's own write.
                Ordering::Equal => drop(self.base.next()),
                Ordering::Greater => {}
            }
            let (key, write) = overlay.next()?;
            if let Some(value) = &write.value {
                return Some(Ok((key.clone(), value.clone())));
            }
        }
    }
}

impl std::fmt::Debug for WriteScan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteScan").finish_non_exhaustive()
    }
}
