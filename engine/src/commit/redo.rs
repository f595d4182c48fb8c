//! Redo records: the changes a batch made to redb's tables, as the write-ahead log keeps them.
//!
//! A record is a list of operations, each `kind u8, table u8, key length u32 LE, key`, then for
//! a put `value length u32 LE, value`, and for a range removal the inclusive end key the same
//! way. Keys and values are the tables' own bytes: integers little-endian, `(u64, u64)` as two
//! of them, names as UTF-8. Replaying a record applies the operations in order, so the redb
//! state after replay is the state the batch committed.

use redb::{Table, WriteTransaction};

use super::batch::Tables;

use crate::error::{Error, Result};
use crate::keys::ByteKey;
use crate::wal::RECORD_HEADER;

/// The tables a batch changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RedoTable {
    Data = 0,
    Tables = 1,
    Tenants = 2,
    Names = 3,
    Audit = 4,
    AuditIndex = 5,
    Tails = 6,
    Meta = 7,
}

impl RedoTable {
    fn from_u8(byte: u8) -> Result<Self> {
        Ok(match byte {
            0 => RedoTable::Data,
            1 => RedoTable::Tables,
            2 => RedoTable::Tenants,
            3 => RedoTable::Names,
            4 => RedoTable::Audit,
            5 => RedoTable::AuditIndex,
            6 => RedoTable::Tails,
            7 => RedoTable::Meta,
            _ => return Err(torn()),
        })
    }
}

const PUT: u8 = 1;
const REMOVE: u8 = 2;
const REMOVE_RANGE: u8 = 3;

/// The operations of one batch, after [`RECORD_HEADER`] bytes the log fills in.
#[derive(Debug)]
pub(crate) struct Redo {
    buf: Vec<u8>,
    /// An operation's key or value did not fit its 32-bit length.
    oversized: bool,
}

impl Redo {
    pub(crate) fn new() -> Self {
        let mut buf = Vec::with_capacity(16 * 1024);
        buf.resize(RECORD_HEADER, 0);
        Redo {
            buf,
            oversized: false,
        }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        // Keys are at most a few KiB and values at most 16 MiB (checked before they get here).
        match u32::try_from(bytes.len()) {
            Ok(len) => {
                self.buf.extend_from_slice(&len.to_le_bytes());
                self.buf.extend_from_slice(bytes);
            }
            Err(_) => self.oversized = true,
        }
    }

    pub(crate) fn put(&mut self, table: RedoTable, key: &[u8], value: &[u8]) {
        self.buf.extend_from_slice(&[PUT, table as u8]);
        self.bytes(key);
        self.bytes(value);
    }

    pub(crate) fn remove(&mut self, table: RedoTable, key: &[u8]) {
        self.buf.extend_from_slice(&[REMOVE, table as u8]);
        self.bytes(key);
    }

    /// Removal of every key in `start..=end`.
    pub(crate) fn remove_range(&mut self, table: RedoTable, start: &[u8], end: &[u8]) {
        self.buf.extend_from_slice(&[REMOVE_RANGE, table as u8]);
        self.bytes(start);
        self.bytes(end);
    }

    /// The record, header space included.
    pub(crate) fn record(&mut self) -> Result<&mut [u8]> {
        if self.oversized {
            return Err(Error::Corrupted(
                "a batch holds a key or value too large for the write-ahead log".into(),
            ));
        }
        Ok(&mut self.buf)
    }
}

/// Reads a record's operations.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(torn());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.take(4)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        self.take(usize::try_from(len).map_err(|_| torn())?)
    }
}

fn torn() -> Error {
    Error::Corrupted("a write-ahead log record has a malformed operation".into())
}

fn u64_of(bytes: &[u8]) -> Result<u64> {
    Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| torn())?))
}

fn u32_of(bytes: &[u8]) -> Result<u32> {
    Ok(u32::from_le_bytes(bytes.try_into().map_err(|_| torn())?))
}

fn str_of(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|_| torn())
}

fn pair_of(bytes: &[u8]) -> Result<(u64, u64)> {
    if bytes.len() != 16 {
        return Err(torn());
    }
    Ok((u64_of(&bytes[..8])?, u64_of(&bytes[8..])?))
}

/// Applies the operations of a record's payload to `txn`.
pub(crate) fn replay(txn: &WriteTransaction, payload: &[u8]) -> Result<()> {
    let mut t = Tables::new();
    let mut reader = Reader { rest: payload };
    while !reader.rest.is_empty() {
        let head = reader.take(2)?;
        let (kind, table) = (head[0], head[1]);
        let key = reader.bytes()?;
        let other = match kind {
            PUT | REMOVE_RANGE => Some(reader.bytes()?),
            REMOVE => None,
            _ => return Err(torn()),
        };
        apply(&mut t, txn, kind, table, key, other)?;
    }
    Ok(())
}

/// Applies one operation.
fn apply<'t>(
    t: &mut Tables<'t>,
    txn: &'t WriteTransaction,
    kind: u8,
    table: u8,
    key: &[u8],
    other: Option<&[u8]>,
) -> Result<()> {
    use RedoTable as T;
    match (T::from_u8(table)?, kind, other) {
        (T::Data, PUT, Some(v)) => {
            t.data.get(txn)?.insert(key, v)?;
            Ok(())
        }
        (T::Data, ..) => remove(t.data.get(txn)?, kind, key, other),
        (T::Tables, PUT, Some(v)) => {
            t.tables.get(txn)?.insert(key, u32_of(v)?)?;
            Ok(())
        }
        (T::Tables, ..) => remove(t.tables.get(txn)?, kind, key, other),
        (T::Tenants, PUT, Some(v)) => {
            t.tenants.get(txn)?.insert(u64_of(key)?, v)?;
            Ok(())
        }
        (T::Names, PUT, Some(v)) => {
            t.names.get(txn)?.insert(str_of(key)?, u64_of(v)?)?;
            Ok(())
        }
        (T::Names, REMOVE, None) => {
            t.names.get(txn)?.remove(str_of(key)?)?;
            Ok(())
        }
        (T::Audit, PUT, Some(v)) => {
            t.audit.get(txn)?.insert(u64_of(key)?, v)?;
            Ok(())
        }
        (T::AuditIndex, PUT, Some(v)) => {
            t.audit_index.get(txn)?.insert(pair_of(key)?, u64_of(v)?)?;
            Ok(())
        }
        (T::Tails, PUT, Some(v)) => {
            t.tails.get(txn)?.insert(u64_of(key)?, v)?;
            Ok(())
        }
        (T::Meta, PUT, Some(v)) => {
            t.meta.get(txn)?.insert(str_of(key)?, u64_of(v)?)?;
            Ok(())
        }
        _ => Err(torn()),
    }
}

/// A removal from a table keyed by bytes: one key, or `key..=end`.
fn remove<V: redb::Value + 'static>(
    table: &mut Table<'_, ByteKey, V>,
    kind: u8,
    key: &[u8],
    end: Option<&[u8]>,
) -> Result<()> {
    match (kind, end) {
        (REMOVE, None) => {
            table.remove(key)?;
        }
        (REMOVE_RANGE, Some(end)) => {
            table.retain_in(key..=end, |_, _| false)?;
        }
        _ => return Err(torn()),
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_record_is_an_error_not_a_panic() {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let txn = db.begin_write().unwrap();
        let mut redo = Redo::new();
        redo.put(RedoTable::Meta, b"counter", &7u64.to_le_bytes());
        let whole = redo.record().unwrap()[RECORD_HEADER..].to_vec();
        replay(&txn, &whole).unwrap();
        for cut in 1..whole.len() {
            assert!(replay(&txn, &whole[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = Redo::new();
        bad.put(RedoTable::Tenants, b"short", b"v");
        assert!(replay(&txn, &bad.record().unwrap()[RECORD_HEADER..]).is_err());
        let mut bad = Redo::new();
        bad.put(RedoTable::Names, &[0xff, 0xfe], &1u64.to_le_bytes());
        assert!(replay(&txn, &bad.record().unwrap()[RECORD_HEADER..]).is_err());
        assert!(replay(&txn, &[9, 0, 0, 0, 0, 0]).is_err());
    }
}
