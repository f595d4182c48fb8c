//! One batch of the commit pipeline: the redb tables it touches and the state built so far.
//!
//! Tables are opened on first use: a batch of data commits touches `data`, `audit_log` and
//! `tails` only, and every table a transaction modifies costs redb a root update at commit.

use std::collections::HashMap;

use redb::{Key, ReadableTable, Table, TableDefinition, Value, WriteTransaction};

use super::redo::{Redo, RedoTable};
use super::{Effect, Reply, UsageDelta, now_micros};
use crate::audit::{AuditEvent, chain_entry};
use crate::context::Actor;
use crate::error::{Error, Result};
use crate::keys::{self, ByteKey, TableId};
use crate::schema::{self, AuditHead, Tail, TenantRecord};
use crate::types::{Quota, TenantId, TenantState};

/// The system audit stream.
const SYSTEM: u64 = 0;

/// A table opened on first use (also by the redo replay).
pub(super) struct Lazy<'t, K: Key + 'static, V: Value + 'static> {
    definition: TableDefinition<'static, K, V>,
    table: Option<Table<'t, K, V>>,
}

impl<'t, K: Key + 'static, V: Value + 'static> Lazy<'t, K, V> {
    pub(super) fn new(definition: TableDefinition<'static, K, V>) -> Self {
        Lazy {
            definition,
            table: None,
        }
    }

    pub(super) fn get(&mut self, txn: &'t WriteTransaction) -> Result<&mut Table<'t, K, V>> {
        let table = match self.table.take() {
            Some(table) => table,
            None => txn.open_table(self.definition)?,
        };
        Ok(self.table.insert(table))
    }
}

/// A tenant's record as loaded by the batch, and whether the batch changed it.
struct Loaded {
    record: TenantRecord,
    changed: bool,
}

/// Every table a batch (or the replay of one) may change, each opened on first use.
pub(super) struct Tables<'t> {
    pub(super) data: Lazy<'t, ByteKey, &'static [u8]>,
    pub(super) tables: Lazy<'t, ByteKey, u32>,
    pub(super) tenants: Lazy<'t, u64, &'static [u8]>,
    pub(super) names: Lazy<'t, &'static str, u64>,
    pub(super) audit: Lazy<'t, u64, &'static [u8]>,
    pub(super) audit_index: Lazy<'t, (u64, u64), u64>,
    pub(super) tails: Lazy<'t, u64, &'static [u8]>,
    pub(super) meta: Lazy<'t, &'static str, u64>,
}

impl Tables<'_> {
    pub(super) fn new() -> Self {
        Tables {
            data: Lazy::new(schema::DATA),
            tables: Lazy::new(schema::TABLES),
            tenants: Lazy::new(schema::TENANTS),
            names: Lazy::new(schema::TENANT_NAMES),
            audit: Lazy::new(schema::AUDIT),
            audit_index: Lazy::new(schema::AUDIT_INDEX),
            tails: Lazy::new(schema::TAILS),
            meta: Lazy::new(schema::META),
        }
    }
}

pub(super) struct Batch<'t> {
    txn: &'t WriteTransaction,
    t: Tables<'t>,
    /// Position of the next audit entry in `tenantry.audit_log`, once known.
    next_pos: Option<u64>,
    /// Tails as of the last committed batch (the committer's cache).
    committed: &'t HashMap<u64, Tail>,
    records: HashMap<u64, Loaded>,
    new_tails: HashMap<u64, Tail>,
    effects: Vec<Effect>,
    audit_enabled: bool,
    now: i64,
    /// The batch's changes, for the write-ahead log (`None` when it is not logged).
    redo: Option<Redo>,
    /// See [`Finished::unlogged`].
    unlogged: u64,
}

impl<'t> Batch<'t> {
    pub(super) fn open(
        txn: &'t WriteTransaction,
        committed: &'t HashMap<u64, Tail>,
        audit_enabled: bool,
        logged: bool,
    ) -> Self {
        Batch {
            txn,
            t: Tables::new(),
            next_pos: None,
            committed,
            records: HashMap::new(),
            new_tails: HashMap::new(),
            effects: Vec::new(),
            audit_enabled,
            now: now_micros(),
            redo: logged.then(Redo::new),
            unlogged: 0,
        }
    }

    /// Writes back what the batch changed; returns the new tails, the registry effects and
    /// the redo record.
    pub(super) fn finish(mut self) -> Result<Finished> {
        let txn = self.txn;
        for (id, loaded) in self.records.iter().filter(|(_, loaded)| loaded.changed) {
            let bytes = schema::encode(&loaded.record)?;
            self.t.tenants.get(txn)?.insert(id, &bytes[..])?;
            if let Some(redo) = &mut self.redo {
                redo.put(RedoTable::Tenants, &id.to_le_bytes(), &bytes);
            }
        }
        let tails = self.t.tails.get(txn)?;
        for (stream, tail) in &self.new_tails {
            let bytes = tail.encode();
            tails.insert(stream, &bytes[..])?;
            if let Some(redo) = &mut self.redo {
                redo.put(RedoTable::Tails, &stream.to_le_bytes(), &bytes);
            }
        }
        Ok(Finished {
            tails: self.new_tails,
            effects: self.effects,
            redo: self.redo,
            unlogged: self.unlogged,
        })
    }

    /// The tenant's record as this batch sees it.
    pub(super) fn record(&mut self, id: u64) -> Result<Option<&TenantRecord>> {
        Ok(self.load(id)?.map(|loaded| &loaded.record))
    }

    /// The tenant's record, to change it (written back by [`Batch::finish`]).
    fn record_mut(&mut self, id: u64) -> Result<Option<&mut TenantRecord>> {
        Ok(self.load(id)?.map(|loaded| {
            loaded.changed = true;
            &mut loaded.record
        }))
    }

    fn load(&mut self, id: u64) -> Result<Option<&mut Loaded>> {
        if !self.records.contains_key(&id) {
            let Some(bytes) = self.t.tenants.get(self.txn)?.get(id)? else {
                return Ok(None);
            };
            let record = schema::decode_record("tenant record", bytes.value())?;
            self.records.insert(
                id,
                Loaded {
                    record,
                    changed: false,
                },
            );
        }
        Ok(self.records.get_mut(&id))
    }

    fn next_counter(&mut self, name: &str) -> Result<u64> {
        let meta = self.t.meta.get(self.txn)?;
        let next = meta.get(name)?.map_or(1, |v| v.value());
        meta.insert(name, next + 1)?;
        if let Some(redo) = &mut self.redo {
            redo.put(RedoTable::Meta, name.as_bytes(), &(next + 1).to_le_bytes());
        }
        Ok(next)
    }

    /// The id of `name` for `tenant`, assigning one on the table's first write. `known` is the
    /// id the caller already resolved from committed state (ids never change once assigned).
    pub(super) fn table_id(
        &mut self,
        tenant: TenantId,
        name: &str,
        known: Option<TableId>,
    ) -> Result<TableId> {
        if let Some(id) = known {
            return Ok(id);
        }
        let key = keys::table_name_key(tenant, name);
        if let Some(id) = self.t.tables.get(self.txn)?.get(&key[..])? {
            return Ok(id.value());
        }
        let next = self.next_counter(schema::META_NEXT_TABLE)?;
        let id = TableId::try_from(next)
            .ok()
            .filter(|id| *id < TableId::MAX)
            .ok_or_else(|| Error::Corrupted("table ids exhausted".into()))?;
        self.t.tables.get(self.txn)?.insert(&key[..], id)?;
        if let Some(redo) = &mut self.redo {
            redo.put(RedoTable::Tables, &key, &id.to_le_bytes());
        }
        self.effects.push(Effect::Table {
            tenant,
            name: name.to_owned(),
            id,
        });
        Ok(id)
    }

    pub(super) fn write(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let data = self.t.data.get(self.txn)?;
        match value {
            Some(v) => data.insert(key, v)?,
            None => data.remove(key)?,
        };
        if let Some(redo) = &mut self.redo {
            match value {
                Some(v) => redo.put(RedoTable::Data, key, v),
                None => redo.remove(RedoTable::Data, key),
            }
        }
        Ok(())
    }

    /// The stream's tail as this batch sees it.
    fn tail(&mut self, stream: u64) -> Result<Tail> {
        match self
            .new_tails
            .get(&stream)
            .or_else(|| self.committed.get(&stream))
        {
            Some(tail) => Ok(*tail),
            None => Tail::read(self.t.tails.get(self.txn)?, stream),
        }
    }

    /// The stream's tail, to change it (written back by [`Batch::finish`]).
    fn tail_mut(&mut self, stream: u64) -> Result<&mut Tail> {
        let tail = self.tail(stream)?;
        Ok(self.new_tails.entry(stream).or_insert(tail))
    }

    /// The tenant's usage as this batch sees it.
    pub(super) fn usage(&mut self, tenant: u64) -> Result<crate::types::Usage> {
        Ok(self.tail(tenant)?.usage)
    }

    pub(super) fn add_usage(&mut self, tenant: u64, delta: UsageDelta) -> Result<()> {
        let usage = &mut self.tail_mut(tenant)?.usage;
        usage.bytes = usage.bytes.saturating_add_signed(delta.bytes);
        usage.keys = usage.keys.saturating_add_signed(delta.keys);
        Ok(())
    }

    /// The newest entry of `stream` as this batch sees it.
    pub(super) fn head(&mut self, stream: u64) -> Result<AuditHead> {
        Ok(self.tail(stream)?.head)
    }

    fn next_position(&mut self) -> Result<u64> {
        let pos = match self.next_pos {
            Some(pos) => pos,
            None => match self.t.audit.get(self.txn)?.last()? {
                Some((last, _)) => last
                    .value()
                    .checked_add(1)
                    .ok_or_else(|| Error::Corrupted("audit log positions exhausted".into()))?,
                None => 1,
            },
        };
        self.next_pos = Some(pos + 1);
        Ok(pos)
    }

    /// Appends an entry to `stream`, chained to its head.
    pub(super) fn append(&mut self, stream: u64, actor: &Actor, draft: AuditEvent) -> Result<()> {
        if !self.audit_enabled {
            return Ok(());
        }
        let head = self.head(stream)?;
        let seq = head.seq + 1;
        let ts = self.now.max(head.ts);
        let entry = chain_entry(stream, seq, &head.hash, ts, actor, draft);
        let body = schema::encode(&entry)?;
        let pos = self.next_position()?;
        let header = schema::EntryHeader {
            stream,
            seq,
            prev: head.pos,
        };
        let bytes = header.encode(&body);
        self.t.audit.get(self.txn)?.insert(pos, &bytes[..])?;
        if schema::is_indexed(seq) {
            self.t
                .audit_index
                .get(self.txn)?
                .insert((stream, seq), pos)?;
        }
        if let Some(redo) = &mut self.redo {
            redo.put(RedoTable::Audit, &pos.to_le_bytes(), &bytes);
            if schema::is_indexed(seq) {
                let mut key = [0u8; 16];
                key[..8].copy_from_slice(&stream.to_le_bytes());
                key[8..].copy_from_slice(&seq.to_le_bytes());
                redo.put(RedoTable::AuditIndex, &key, &pos.to_le_bytes());
            }
        }
        let tail = self.tail_mut(stream)?;
        tail.head = AuditHead {
            seq,
            hash: entry.hash,
            pos,
            ts,
        };
        if stream != SYSTEM {
            tail.usage.audit_bytes += bytes.len() as u64 + 8;
            tail.usage.audit_entries += 1;
        }
        Ok(())
    }

    /// Appends to the system stream and to the tenant's own.
    fn append_both(&mut self, tenant: u64, actor: &Actor, draft: AuditEvent) -> Result<()> {
        self.append(SYSTEM, actor, draft.clone())?;
        self.append(tenant, actor, draft)
    }

    pub(super) fn create_tenants(
        &mut self,
        names: Vec<String>,
        actor: &Actor,
    ) -> Result<Result<Reply>> {
        let mut seen = std::collections::HashSet::new();
        for name in &names {
            if !seen.insert(name.as_str())
                || self.t.names.get(self.txn)?.get(name.as_str())?.is_some()
            {
                return Ok(Err(Error::TenantNameTaken(name.clone())));
            }
        }
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            let raw = self.next_counter(schema::META_NEXT_TENANT)?;
            if raw == u64::MAX {
                return Err(Error::Corrupted("tenant ids exhausted".into()));
            }
            let id = TenantId::from_raw(raw);
            self.t.names.get(self.txn)?.insert(name.as_str(), raw)?;
            if let Some(redo) = &mut self.redo {
                redo.put(RedoTable::Names, name.as_bytes(), &raw.to_le_bytes());
            }
            self.records.insert(
                raw,
                Loaded {
                    record: TenantRecord {
                        name: name.clone(),
                        state: TenantState::Active.to_u8(),
                        quota: Quota::default(),
                        created_micros: self.now,
                        purged: false,
                    },
                    changed: true,
                },
            );
            let draft = AuditEvent::new("tenant.create").target(format!("tenant {name} ({id})"));
            self.append_both(raw, actor, draft)?;
            self.effects.push(Effect::Register { id, name });
            ids.push(id);
        }
        Ok(Ok(Reply::Tenants(ids)))
    }

    /// The record of a tenant that is not deleted, or the request's error.
    fn live_record(&mut self, tenant: TenantId) -> Result<Result<&mut TenantRecord>> {
        Ok(match self.record_mut(tenant.get())? {
            None => Err(Error::UnknownTenant(tenant)),
            Some(r) => match r.state() {
                Err(err) => Err(err),
                Ok(TenantState::Deleted) => Err(Error::TenantDeleted(tenant)),
                Ok(_) => Ok(r),
            },
        })
    }

    pub(super) fn set_state(
        &mut self,
        tenant: TenantId,
        state: TenantState,
        actor: &Actor,
    ) -> Result<Result<Reply>> {
        let record = match self.live_record(tenant)? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let message = match record.state() {
            Ok(old) => format!("{old} -> {state}"),
            Err(_) => format!("(damaged state byte {}) -> {state}", record.state),
        };
        record.state = state.to_u8();
        let draft = AuditEvent::new("tenant.set_state")
            .target(format!("tenant {} ({tenant})", record.name))
            .message(message);
        self.append_both(tenant.get(), actor, draft)?;
        self.effects.push(Effect::State { id: tenant, state });
        Ok(Ok(Reply::Done))
    }

    pub(super) fn set_quota(
        &mut self,
        tenant: TenantId,
        quota: Quota,
        actor: &Actor,
    ) -> Result<Result<Reply>> {
        let record = match self.live_record(tenant)? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        record.quota = quota;
        let show = |v: Option<u64>| v.map_or("unlimited".to_owned(), |v| v.to_string());
        let draft = AuditEvent::new("tenant.set_quota")
            .target(format!("tenant {} ({tenant})", record.name))
            .message(format!(
                "max_bytes={}, max_keys={}",
                show(quota.max_bytes),
                show(quota.max_keys)
            ));
        self.append_both(tenant.get(), actor, draft)?;
        Ok(Ok(Reply::Done))
    }

    pub(super) fn delete_tenant(
        &mut self,
        tenant: TenantId,
        actor: &Actor,
    ) -> Result<Result<Reply>> {
        let record = match self.live_record(tenant)? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        record.state = TenantState::Deleted.to_u8();
        let name = record.name.clone();
        self.t.names.get(self.txn)?.remove(name.as_str())?;
        if let Some(redo) = &mut self.redo {
            redo.remove(RedoTable::Names, name.as_bytes());
        }
        let draft = AuditEvent::new("tenant.delete").target(format!("tenant {name} ({tenant})"));
        self.append_both(tenant.get(), actor, draft)?;
        self.effects.push(Effect::State {
            id: tenant,
            state: TenantState::Deleted,
        });
        Ok(Ok(Reply::Done))
    }

    /// Removes up to `max_keys` of a deleted tenant's keys; the last chunk also removes its
    /// table names and marks it purged.
    pub(super) fn purge(&mut self, tenant: TenantId, max_keys: usize) -> Result<Result<Reply>> {
        match self.record(tenant.get())? {
            None => return Ok(Err(Error::UnknownTenant(tenant))),
            Some(r) if !matches!(r.state(), Ok(TenantState::Deleted)) => {
                return Ok(Err(Error::Corrupted(format!(
                    "purge of tenant {tenant}, which is not deleted"
                ))));
            }
            Some(r) if r.purged => {
                return Ok(Ok(Reply::Purged {
                    removed: 0,
                    done: true,
                }));
            }
            Some(_) => {}
        }
        let (start, end) = keys::tenant_range(tenant);
        let data = self.t.data.get(self.txn)?;
        let (removed, bytes) = remove_chunk(
            data,
            &start,
            &end,
            max_keys.max(1),
            self.redo.as_mut().map(|r| (r, RedoTable::Data)),
        )?;
        self.unlogged += bytes;
        let done = removed < max_keys.max(1) as u64;
        if done {
            let tables = self.t.tables.get(self.txn)?;
            let (_, bytes) = remove_chunk(
                tables,
                &start,
                &end,
                usize::MAX,
                self.redo.as_mut().map(|r| (r, RedoTable::Tables)),
            )?;
            self.unlogged += bytes;
            if let Some(record) = self.record_mut(tenant.get())? {
                record.purged = true;
            }
            let usage = &mut self.tail_mut(tenant.get())?.usage;
            usage.bytes = 0;
            usage.keys = 0;
            let draft = AuditEvent::new("tenant.purge").target(format!("tenant {tenant}"));
            self.append(SYSTEM, &Actor::default(), draft)?;
        }
        Ok(Ok(Reply::Purged { removed, done }))
    }
}

/// What a batch leaves: the new tails, the registry effects and the redo record.
pub(super) struct Finished {
    pub(super) tails: HashMap<u64, Tail>,
    pub(super) effects: Vec<Effect>,
    pub(super) redo: Option<Redo>,
    /// Bytes of entries the batch removed by range, which its redo record names in a few
    /// bytes but which change as many pages as writing them did.
    pub(super) unlogged: u64,
}

/// Removes the first `max` keys in `[start, end)` (and logs the removal in `redo`); returns
/// how many it removed, and their bytes (keys and values).
fn remove_chunk<V: redb::Value + 'static>(
    table: &mut Table<'_, ByteKey, V>,
    start: &[u8],
    end: &[u8],
    max: usize,
    redo: Option<(&mut Redo, RedoTable)>,
) -> Result<(u64, u64)> {
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut last = None;
    for item in table.range(start..end)?.take(max) {
        let (key, value) = item?;
        let key = key.value();
        bytes += (key.len() + V::as_bytes(&value.value()).as_ref().len()) as u64;
        last = Some(key.to_vec());
        count += 1;
    }
    if let Some(last) = last {
        table.retain_in(start..=&last[..], |_, _| false)?;
        if let Some((redo, which)) = redo {
            redo.remove_range(which, start, &last);
        }
    }
    Ok((count, bytes))
}
