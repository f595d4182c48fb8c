//! The redb tables that make up a tenantry database, and the records stored in them.
//!
//! | table                  | key                          | value                          |
//! |------------------------|------------------------------|--------------------------------|
//! | `tenantry.data`        | see [`crate::keys`]          | user value bytes               |
//! | `tenantry.tables`      | tenant u64 BE ++ table name  | table id (u32)                 |
//! | `tenantry.tenants`     | tenant id (u64)              | bincode [`TenantRecord`]       |
//! | `tenantry.tenant_names`| live tenant name             | tenant id (u64)                |
//! | `tenantry.audit_log`   | position (u64, from 1)       | [`EntryHeader`] ++ bincode `StoredEntry` |
//! | `tenantry.audit_index` | (stream u64, seq u64)        | position (u64)                 |
//! | `tenantry.tails`       | stream (u64, 0 = system)     | [`Tail`] (88 bytes)            |
//! | `tenantry.meta`        | counter name                 | u64                            |
//!
//! The audit log is one append-only sequence in commit order, shared by every stream: the
//! entries of one batch of commits are neighbours, so a batch of many tenants' commits adds its
//! entries to a page or two instead of one page per tenant. Each entry's header names its stream
//! and seq and the position of the stream's previous entry, so a stream is a linked list from
//! its head (newest) backwards. `tenantry.audit_index` holds the position of seq 1 and of every
//! [`INDEX_EVERY`]th seq of each stream, so any seq is at most that many steps from a known
//! position, and forward reads go one indexed segment at a time.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::ByteKey;
use crate::types::{Quota, TenantId, TenantInfo, TenantState, Usage};

pub(crate) const DATA: TableDefinition<'_, ByteKey, &[u8]> = TableDefinition::new("tenantry.data");
pub(crate) const TABLES: TableDefinition<'_, ByteKey, u32> =
    TableDefinition::new("tenantry.tables");
pub(crate) const TENANTS: TableDefinition<'_, u64, &[u8]> =
    TableDefinition::new("tenantry.tenants");
pub(crate) const TENANT_NAMES: TableDefinition<'_, &str, u64> =
    TableDefinition::new("tenantry.tenant_names");
pub(crate) const AUDIT: TableDefinition<'_, u64, &[u8]> =
    TableDefinition::new("tenantry.audit_log");
pub(crate) const AUDIT_INDEX: TableDefinition<'_, (u64, u64), u64> =
    TableDefinition::new("tenantry.audit_index");
/// What every commit of a stream changes: its audit head and its tenant's usage. Kept apart
/// from `tenantry.tenants`, which only administration changes, so that a commit rewrites 88
/// fixed bytes per tenant rather than its whole record.
pub(crate) const TAILS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("tenantry.tails");
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("tenantry.meta");

pub(crate) const META_NEXT_TENANT: &str = "next_tenant_id";
pub(crate) const META_NEXT_TABLE: &str = "next_table_id";
pub(crate) const META_FORMAT: &str = "format_version";
/// The id that ties the write-ahead log (`<file>-wal`) to this database.
pub(crate) const META_LOG_ID: &str = "log_id";
/// LSN of the newest batch this state holds (see [`crate::wal`]).
pub(crate) const META_LOG_APPLIED: &str = "log_applied";
/// Format 1 (before the shared audit log) is not read by this version. Format 3 added the
/// write-ahead log (`META_LOG_ID`, `META_LOG_APPLIED`). Format 4 keys `tenantry.data` and
/// `tenantry.tables` by [`ByteKey`] instead of `&[u8]`: the same bytes in the same order, under
/// another redb type name. Files of formats 2 and 3 are upgraded when opened (see
/// [`upgrade_byte_tables`]). Versions that read format 3 refuse format 4, with redb's error for
/// a table of another type: they open the tables before they read the version. This version
/// reads the version first.
pub(crate) const FORMAT_VERSION: u64 = 4;

/// Converts the `&[u8]`-keyed tables of a format 2 or 3 file to [`ByteKey`], within `txn`:
/// each is renamed aside, copied entry by entry into a new table of its name, and deleted.
/// Returns the number of entries copied. The old pages are freed only when `txn` commits, so
/// the file needs room for a second copy of those tables for the while.
pub(crate) fn upgrade_byte_tables(txn: &redb::WriteTransaction) -> Result<u64> {
    fn convert<V: redb::Value + 'static>(
        txn: &redb::WriteTransaction,
        old: TableDefinition<'static, &'static [u8], V>,
        new: TableDefinition<'static, ByteKey, V>,
    ) -> Result<u64> {
        let aside: TableDefinition<'_, &[u8], V> = TableDefinition::new("tenantry.upgrading");
        txn.rename_table(old, aside)?;
        let mut copied = 0;
        {
            let from = txn.open_table(aside)?;
            let mut to = txn.open_table(new)?;
            for item in from.iter()? {
                let (key, value) = item?;
                to.insert(key.value(), value.value())?;
                copied += 1;
            }
        }
        txn.delete_table(aside)?;
        Ok(copied)
    }
    Ok(convert(txn, TableDefinition::new("tenantry.data"), DATA)?
        + convert(txn, TableDefinition::new("tenantry.tables"), TABLES)?)
}

/// Every `INDEX_EVERY`th seq of a stream (and seq 1) has an entry in `tenantry.audit_index`.
pub(crate) const INDEX_EVERY: u64 = 64;

/// Whether `seq` of a stream is recorded in `tenantry.audit_index`.
pub(crate) fn is_indexed(seq: u64) -> bool {
    seq == 1 || seq.is_multiple_of(INDEX_EVERY)
}

/// One tenant's row in `tenantry.tenants` (its usage is in its [`Tail`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TenantRecord {
    pub(crate) name: String,
    pub(crate) state: u8,
    pub(crate) quota: Quota,
    pub(crate) created_micros: i64,
    /// Set once a deleted tenant's data has been purged completely.
    pub(crate) purged: bool,
}

impl TenantRecord {
    /// The stored state.
    ///
    /// # Errors
    /// [`Error::Corrupted`] for a state byte no engine writes.
    pub(crate) fn state(&self) -> Result<TenantState> {
        TenantState::from_u8(self.state).ok_or_else(|| {
            Error::Corrupted(format!(
                "tenant record {:?}: unknown state byte {}",
                self.name.chars().take(80).collect::<String>(),
                self.state
            ))
        })
    }

    pub(crate) fn info(&self, id: TenantId, usage: Usage) -> Result<TenantInfo> {
        Ok(TenantInfo {
            id,
            name: self.name.clone(),
            state: self.state()?,
            usage,
            quota: self.quota,
            created_micros: self.created_micros,
        })
    }
}

pub(crate) fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Most bytes one decode may claim for what it builds: 16 times the largest value (a value of
/// one-byte elements of 16-byte types), 256 MiB.
pub(crate) const DECODE_LIMIT: usize = 16 * crate::keys::MAX_VALUE_LEN;

/// [`bincode_config`] for decoding stored bytes, with an allocation limit: without one,
/// bincode reserves whatever a length prefix claims, and nine bytes claiming 2^37 of them abort
/// the process (found by fuzzing). The encoding is the same.
pub(crate) fn decode_config() -> impl bincode::config::Config {
    bincode_config().with_limit::<DECODE_LIMIT>()
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode_config()).map_err(|e| Error::Encode(e.to_string()))
}

/// Decodes an engine record; a failure means the file was damaged or edited.
pub(crate) fn decode_record<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    match bincode::serde::decode_from_slice(bytes, decode_config()) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok(_) => Err(Error::Corrupted(format!("{what}: trailing bytes"))),
        Err(e) => Err(Error::Corrupted(format!("{what}: {e}"))),
    }
}

/// The fixed header of a `tenantry.audit_log` value: `stream u64 BE ++ seq u64 BE ++ prev u64 BE`,
/// where `prev` is the position of the stream's previous entry (0 before seq 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    pub(crate) stream: u64,
    pub(crate) seq: u64,
    pub(crate) prev: u64,
}

impl EntryHeader {
    pub(crate) const LEN: usize = 24;

    pub(crate) fn encode(&self, body: &[u8]) -> Vec<u8> {
        let mut value = Vec::with_capacity(Self::LEN + body.len());
        value.extend_from_slice(&self.stream.to_be_bytes());
        value.extend_from_slice(&self.seq.to_be_bytes());
        value.extend_from_slice(&self.prev.to_be_bytes());
        value.extend_from_slice(body);
        value
    }

    /// Splits a stored value into its header and its bincode body; `None` if it is too short.
    pub(crate) fn split(value: &[u8]) -> Option<(EntryHeader, &[u8])> {
        let (head, body) = value.split_at_checked(Self::LEN)?;
        let word = |i: usize| {
            head.get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        };
        Some((
            EntryHeader {
                stream: word(0)?,
                seq: word(1)?,
                prev: word(2)?,
            },
            body,
        ))
    }
}

/// The newest entry of an audit stream, the first 56 bytes of its [`Tail`]:
/// `seq u64 BE ++ hash (32 bytes) ++ position u64 BE ++ timestamp i64 BE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AuditHead {
    pub(crate) seq: u64,
    pub(crate) hash: [u8; 32],
    pub(crate) pos: u64,
    pub(crate) ts: i64,
}

impl AuditHead {
    pub(crate) fn encode(&self) -> [u8; 56] {
        let mut value = [0u8; 56];
        value[..8].copy_from_slice(&self.seq.to_be_bytes());
        value[8..40].copy_from_slice(&self.hash);
        value[40..48].copy_from_slice(&self.pos.to_be_bytes());
        value[48..].copy_from_slice(&self.ts.to_be_bytes());
        value
    }

    pub(crate) fn decode(value: &[u8]) -> Result<Self> {
        let corrupted = || Error::Corrupted("malformed audit head".into());
        let value: &[u8; 56] = value.try_into().map_err(|_| corrupted())?;
        let (seq, rest) = value.split_first_chunk::<8>().ok_or_else(corrupted)?;
        let (hash, rest) = rest.split_first_chunk::<32>().ok_or_else(corrupted)?;
        let (pos, ts) = rest.split_first_chunk::<8>().ok_or_else(corrupted)?;
        let ts: [u8; 8] = ts.try_into().map_err(|_| corrupted())?;
        Ok(AuditHead {
            seq: u64::from_be_bytes(*seq),
            hash: *hash,
            pos: u64::from_be_bytes(*pos),
            ts: i64::from_be_bytes(ts),
        })
    }
}

/// A stream's row in `tenantry.tails`: `AuditHead (56 bytes) ++ bytes u64 BE ++ keys u64 BE ++
/// audit_bytes u64 BE ++ audit_entries u64 BE`. The system stream's usage stays zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tail {
    pub(crate) head: AuditHead,
    pub(crate) usage: Usage,
}

impl Tail {
    pub(crate) fn encode(&self) -> [u8; 88] {
        let mut value = [0u8; 88];
        value[..56].copy_from_slice(&self.head.encode());
        let u = &self.usage;
        for (i, n) in [u.bytes, u.keys, u.audit_bytes, u.audit_entries]
            .into_iter()
            .enumerate()
        {
            value[56 + i * 8..64 + i * 8].copy_from_slice(&n.to_be_bytes());
        }
        value
    }

    pub(crate) fn decode(value: &[u8]) -> Result<Self> {
        let corrupted = || Error::Corrupted("malformed stream tail".into());
        if value.len() != 88 {
            return Err(corrupted());
        }
        let (head, rest) = value.split_at_checked(56).ok_or_else(corrupted)?;
        let mut words = rest.chunks_exact(8).map(|w| {
            w.try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| corrupted())
        });
        let mut word = || words.next().ok_or_else(corrupted)?;
        let usage = Usage {
            bytes: word()?,
            keys: word()?,
            audit_bytes: word()?,
            audit_entries: word()?,
        };
        Ok(Tail {
            head: AuditHead::decode(head)?,
            usage,
        })
    }

    /// The tail of `stream` as stored (the default if it has none yet).
    pub(crate) fn read(
        table: &impl ReadableTable<u64, &'static [u8]>,
        stream: u64,
    ) -> Result<Self> {
        match table.get(stream)? {
            Some(value) => Tail::decode(value.value()),
            None => Ok(Tail::default()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn audit_head_round_trips_and_rejects_other_lengths() {
        let head = AuditHead {
            seq: 7,
            hash: [9; 32],
            pos: 1 << 40,
            ts: -5,
        };
        assert_eq!(AuditHead::decode(&head.encode()).unwrap(), head);
        assert!(AuditHead::decode(&head.encode()[..55]).is_err());
        assert!(AuditHead::decode(&[0; 40]).is_err());
    }

    #[test]
    fn tail_round_trips() {
        let tail = Tail {
            head: AuditHead {
                seq: 1,
                hash: [2; 32],
                pos: 3,
                ts: 4,
            },
            usage: Usage {
                bytes: 5,
                keys: 6,
                audit_bytes: 7,
                audit_entries: 8,
            },
        };
        assert_eq!(Tail::decode(&tail.encode()).unwrap(), tail);
        assert!(Tail::decode(&tail.encode()[..87]).is_err());
        assert!(Tail::decode(&[0; 96]).is_err());
    }

    #[test]
    fn entry_header_splits_off_its_24_bytes() {
        let header = EntryHeader {
            stream: 3,
            seq: 4,
            prev: 5,
        };
        let value = header.encode(b"body");
        assert_eq!(EntryHeader::split(&value), Some((header, &b"body"[..])));
        assert_eq!(EntryHeader::split(&value[..23]), None);
        assert!(is_indexed(1) && is_indexed(64) && is_indexed(128));
        assert!(!is_indexed(2) && !is_indexed(63) && !is_indexed(65));
    }
}
