//! One batch of the commit pipeline: the open redb tables and the state built so far.

use std::borrow::Cow;
use std::collections::HashMap;

use redb::{ReadableTable, Table, WriteTransaction};

use super::{Effect, Head, Reply, UsageDelta, now_micros};
use crate::audit::{AuditEvent, StoredEntry};
use crate::context::Actor;
use crate::error::{Error, Result};
use crate::keys::{self, TableId};
use crate::schema::{self, TenantRecord};
use crate::types::{Quota, TenantId, TenantState, Usage};

/// The system audit stream.
const SYSTEM: u64 = 0;

pub(super) struct Batch<'t> {
    data: Table<'t, &'static [u8], &'static [u8]>,
    tables: Table<'t, &'static [u8], u32>,
    tenants: Table<'t, u64, &'static [u8]>,
    names: Table<'t, &'static str, u64>,
    audit: Table<'t, u64, &'static [u8]>,
    audit_index: Table<'t, (u64, u64), u64>,
    heads: Table<'t, u64, &'static [u8]>,
    /// Position of the next audit entry in `tenantry.audit_log`.
    next_pos: u64,
    meta: Table<'t, &'static str, u64>,
    committed_heads: &'t HashMap<u64, Head>,
    records: HashMap<u64, TenantRecord>,
    new_heads: HashMap<u64, Head>,
    effects: Vec<Effect>,
    audit_enabled: bool,
    now: i64,
}

impl<'t> Batch<'t> {
    pub(super) fn open(
        txn: &'t WriteTransaction,
        committed_heads: &'t HashMap<u64, Head>,
        audit_enabled: bool,
    ) -> Result<Self> {
        let audit = txn.open_table(schema::AUDIT)?;
        let next_pos = match audit.last()? {
            Some((pos, _)) => pos
                .value()
                .checked_add(1)
                .ok_or_else(|| Error::Corrupted("audit log positions exhausted".into()))?,
            None => 1,
        };
        Ok(Batch {
            data: txn.open_table(schema::DATA)?,
            tables: txn.open_table(schema::TABLES)?,
            tenants: txn.open_table(schema::TENANTS)?,
            names: txn.open_table(schema::TENANT_NAMES)?,
            audit,
            audit_index: txn.open_table(schema::AUDIT_INDEX)?,
            heads: txn.open_table(schema::AUDIT_HEADS)?,
            next_pos,
            meta: txn.open_table(schema::META)?,
            committed_heads,
            records: HashMap::new(),
            new_heads: HashMap::new(),
            effects: Vec::new(),
            audit_enabled,
            now: now_micros(),
        })
    }

    /// Writes back what the batch changed; returns the new heads and the registry effects.
    pub(super) fn finish(mut self) -> Result<(HashMap<u64, Head>, Vec<Effect>)> {
        for (id, record) in &self.records {
            self.tenants.insert(id, &schema::encode(record)?[..])?;
        }
        for (stream, head) in &self.new_heads {
            self.heads.insert(stream, &head.encode()[..])?;
        }
        Ok((self.new_heads, self.effects))
    }

    /// The tenant's record as this batch sees it.
    pub(super) fn record(&mut self, id: u64) -> Result<Option<&mut TenantRecord>> {
        if !self.records.contains_key(&id) {
            let Some(bytes) = self.tenants.get(id)? else {
                return Ok(None);
            };
            let record = schema::decode_record("tenant record", bytes.value())?;
            self.records.insert(id, record);
        }
        Ok(self.records.get_mut(&id))
    }

    fn next_counter(&mut self, name: &str) -> Result<u64> {
        let next = self.meta.get(name)?.map_or(1, |v| v.value());
        self.meta.insert(name, next + 1)?;
        Ok(next)
    }

    /// The id of `name` for `tenant`, assigning one on the table's first write.
    pub(super) fn table_id(&mut self, tenant: TenantId, name: &str) -> Result<TableId> {
        let key = keys::table_name_key(tenant, name);
        if let Some(id) = self.tables.get(&key[..])? {
            return Ok(id.value());
        }
        let next = self.next_counter(schema::META_NEXT_TABLE)?;
        let id = TableId::try_from(next)
            .ok()
            .filter(|id| *id < TableId::MAX)
            .ok_or_else(|| Error::Corrupted("table ids exhausted".into()))?;
        self.tables.insert(&key[..], id)?;
        self.effects.push(Effect::Table {
            tenant,
            name: name.to_owned(),
            id,
        });
        Ok(id)
    }

    pub(super) fn write(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        match value {
            Some(v) => self.data.insert(key, v)?,
            None => self.data.remove(key)?,
        };
        Ok(())
    }

    pub(super) fn add_usage(&mut self, tenant: u64, delta: UsageDelta) -> Result<()> {
        if let Some(record) = self.record(tenant)? {
            record.usage.bytes = record.usage.bytes.saturating_add_signed(delta.bytes);
            record.usage.keys = record.usage.keys.saturating_add_signed(delta.keys);
        }
        Ok(())
    }

    /// The newest entry of `stream` as this batch sees it.
    pub(super) fn head(&mut self, stream: u64) -> Result<Head> {
        if let Some(head) = self
            .new_heads
            .get(&stream)
            .or_else(|| self.committed_heads.get(&stream))
        {
            return Ok(*head);
        }
        match self.heads.get(stream)? {
            Some(value) => Head::decode(value.value()),
            None => Ok(Head::default()),
        }
    }

    /// Appends an entry to `stream`, chained to its head.
    pub(super) fn append(&mut self, stream: u64, actor: &Actor, draft: AuditEvent) -> Result<()> {
        if !self.audit_enabled {
            return Ok(());
        }
        let head = self.head(stream)?;
        let seq = head.seq + 1;
        let ts = self.now.max(head.ts);
        let mut entry = StoredEntry {
            ts,
            action: Cow::Owned(draft.action),
            actor: borrow(&actor.actor),
            ip: borrow(&actor.ip),
            request_id: borrow(&actor.request_id),
            target: draft.target.map(Cow::Owned),
            message: draft.message.map(Cow::Owned),
            origin: borrow(&actor.origin),
            outcome: draft.outcome,
            value_digest: draft.value_digest,
            by_operator: actor.by_operator,
            hash: [0; 32],
        };
        entry.hash = entry.compute_hash(stream, seq, &head.hash);
        let body = schema::encode(&entry)?;
        let pos = self.next_pos;
        self.next_pos += 1;
        let header = schema::EntryHeader {
            stream,
            seq,
            prev: head.pos,
        };
        let bytes = header.encode(&body);
        self.audit.insert(pos, &bytes[..])?;
        if schema::is_indexed(seq) {
            self.audit_index.insert((stream, seq), pos)?;
        }
        self.new_heads.insert(
            stream,
            Head {
                seq,
                hash: entry.hash,
                pos,
                ts,
            },
        );
        if stream != SYSTEM
            && let Some(record) = self.record(stream)?
        {
            record.usage.audit_bytes += bytes.len() as u64 + 8;
            record.usage.audit_entries += 1;
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
            if !seen.insert(name.as_str()) || self.names.get(name.as_str())?.is_some() {
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
            self.names.insert(name.as_str(), raw)?;
            self.records.insert(
                raw,
                TenantRecord {
                    name: name.clone(),
                    state: TenantState::Active.to_u8(),
                    quota: Quota::default(),
                    usage: Usage::default(),
                    created_micros: self.now,
                    purged: false,
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
        Ok(match self.record(tenant.get())? {
            None => Err(Error::UnknownTenant(tenant)),
            Some(r) if r.state() == TenantState::Deleted => Err(Error::TenantDeleted(tenant)),
            Some(r) => Ok(r),
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
        let message = format!("{} -> {}", record.state(), state);
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
        self.names.remove(name.as_str())?;
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
            Some(r) if r.state() != TenantState::Deleted => {
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
        let removed = remove_chunk(&mut self.data, &start, &end, max_keys.max(1))?;
        let done = removed < max_keys.max(1) as u64;
        if done {
            remove_chunk(&mut self.tables, &start, &end, usize::MAX)?;
            if let Some(record) = self.record(tenant.get())? {
                record.purged = true;
                record.usage.bytes = 0;
                record.usage.keys = 0;
            }
            let draft = AuditEvent::new("tenant.purge").target(format!("tenant {tenant}"));
            self.append(SYSTEM, &Actor::default(), draft)?;
        }
        Ok(Ok(Reply::Purged { removed, done }))
    }
}

fn borrow(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(Cow::Borrowed)
}

/// Removes the first `max` keys in `[start, end)`; returns how many it removed.
fn remove_chunk<V: redb::Value + 'static>(
    table: &mut Table<'_, &'static [u8], V>,
    start: &[u8],
    end: &[u8],
    max: usize,
) -> Result<u64> {
    let mut count = 0u64;
    let mut last = None;
    for item in table.range(start..end)?.take(max) {
        let (key, _) = item?;
        last = Some(key.value().to_vec());
        count += 1;
    }
    if let Some(last) = last {
        table.retain_in(start..=&last[..], |_, _| false)?;
    }
    Ok(count)
}
