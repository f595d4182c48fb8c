//! Entry points for the fuzz targets in `tests/fuzz`, behind the `fuzzing` feature.
//!
//! Not an API: these wrap crate-private machinery (the write-ahead log's scan, redo replay and
//! the physical key layout) so that a fuzzer can drive it with arbitrary bytes. Nothing here is
//! compiled into a normal build.

use std::ops::Bound;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use redb::StorageBackend;

use crate::error::{Error, Result};
use crate::keys::{self, TablePrefix};
use crate::types::TenantId;
use crate::wal::Wal;

/// Bytes of the log's file header, before the first record.
pub const LOG_HEADER_LEN: usize = crate::wal::HEADER_LEN as usize;
/// Bytes of a record header.
pub const RECORD_HEADER_LEN: usize = crate::wal::RECORD_HEADER;

/// A physical key range: lower and upper bound.
pub type PhysicalRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// What opening a log found, as the database's recovery sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogScan {
    /// The records to replay, oldest first: `(lsn, payload)`.
    pub records: Vec<(u64, Vec<u8>)>,
    /// The log was empty or harmless and is started afresh.
    pub afresh: bool,
    /// LSN the next batch would get.
    pub next_lsn: u64,
}

/// A log file in memory; clones share the bytes.
#[derive(Debug, Clone, Default)]
struct MemoryFile(Arc<Mutex<Vec<u8>>>);

impl StorageBackend for MemoryFile {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.0.lock().len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let bytes = self.0.lock();
        let range = usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(out.len())?));
        match range.and_then(|r| bytes.get(r)) {
            Some(slice) => {
                out.copy_from_slice(slice);
                Ok(())
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the log",
            )),
        }
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        self.0.lock().resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut bytes = self.0.lock();
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let end = start
            .checked_add(data.len())
            .ok_or_else(|| std::io::Error::other("write past usize"))?;
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[start..end].copy_from_slice(data);
        Ok(())
    }
}

/// Opens the log `bytes` as recovery does, for a database whose log id is `id` and whose
/// durable state holds every batch up to `applied` (`fresh`: the database was just created).
///
/// # Errors
/// What [`crate::Engine::open`] would report for this log: [`Error::Corrupted`].
pub fn open_log(bytes: Vec<u8>, id: u64, applied: u64, fresh: bool) -> Result<LogScan> {
    let file = MemoryFile(Arc::new(Mutex::new(bytes)));
    let opened = Wal::open(Box::new(file), id, applied, fresh, u64::MAX)?;
    Ok(LogScan {
        next_lsn: opened.wal.next_lsn(),
        records: opened.records,
        afresh: opened.afresh,
    })
}

/// A log of database `id` holding `payloads` as batches `first_lsn`, `first_lsn + 1`, …, as
/// the engine writes it, cut after its last record (the engine pads it with zeros).
///
/// # Errors
/// [`Error::Corrupted`] if `first_lsn` is 0 or beyond any real count.
pub fn build_log(id: u64, first_lsn: u64, payloads: &[&[u8]]) -> Result<Vec<u8>> {
    let applied = first_lsn
        .checked_sub(1)
        .ok_or_else(|| Error::Corrupted("LSNs start at 1".into()))?;
    // Zeros of the final length up front, so that appending never grows the file by the
    // engine's megabyte (a fuzzer runs this thousands of times a second).
    let records: usize = payloads.iter().map(|p| RECORD_HEADER_LEN + p.len()).sum();
    let file = MemoryFile(Arc::new(Mutex::new(vec![0; LOG_HEADER_LEN + records])));
    let mut opened = Wal::open(Box::new(file.clone()), id, applied, true, u64::MAX)?;
    opened.wal.restart_as(id)?;
    for payload in payloads {
        let mut record = vec![0u8; RECORD_HEADER_LEN];
        record.extend_from_slice(payload);
        opened.wal.append(opened.wal.next_lsn(), &mut record)?;
    }
    let end = LOG_HEADER_LEN as u64 + opened.wal.logged_bytes();
    let mut bytes = std::mem::take(&mut *file.0.lock());
    bytes.truncate(usize::try_from(end).unwrap_or(usize::MAX));
    Ok(bytes)
}

/// Replays a record's payload onto an empty in-memory database, as recovery replays the log
/// (one database per process, each replay in a transaction that is then aborted).
///
/// # Errors
/// [`Error::Corrupted`] for a malformed payload, or a storage error from redb.
pub fn replay_payload(payload: &[u8]) -> Result<()> {
    static DB: OnceLock<redb::Database> = OnceLock::new();
    let db = match DB.get() {
        Some(db) => db,
        None => {
            let backend = redb::backends::InMemoryBackend::new();
            let db = redb::Database::builder().create_with_backend(backend)?;
            DB.get_or_init(|| db)
        }
    };
    let txn = db.begin_write()?;
    let replayed = crate::commit::redo::replay(&txn, payload);
    txn.abort()?;
    replayed
}

/// The physical key of `user_key` in table `table` of tenant `tenant`.
#[must_use]
pub fn table_key(tenant: u64, table: u32, user_key: &[u8]) -> Vec<u8> {
    TablePrefix::new(TenantId::from_raw(tenant), table).key(user_key)
}

/// The physical key of `user_key`, as the point-read path builds it (on the stack if short).
#[must_use]
pub fn table_key_inline(tenant: u64, table: u32, user_key: &[u8]) -> Vec<u8> {
    TablePrefix::new(TenantId::from_raw(tenant), table).with_key(user_key, <[u8]>::to_vec)
}

/// The user key of `physical` in the table, or `None` outside it.
#[must_use]
pub fn strip(tenant: u64, table: u32, physical: &[u8]) -> Option<Vec<u8>> {
    TablePrefix::new(TenantId::from_raw(tenant), table)
        .strip(physical)
        .map(<[u8]>::to_vec)
}

/// The physical range of a prefix scan in the table.
#[must_use]
pub fn prefix_range(tenant: u64, table: u32, prefix: &[u8]) -> PhysicalRange {
    TablePrefix::new(TenantId::from_raw(tenant), table).prefix_range(prefix)
}

/// The user range `(start, end)` clamped to the table, or `None` when it is empty.
#[must_use]
pub fn range(
    tenant: u64,
    table: u32,
    start: Bound<&[u8]>,
    end: Bound<&[u8]>,
) -> Option<PhysicalRange> {
    TablePrefix::new(TenantId::from_raw(tenant), table).range(start, end)
}

/// Every physical key of a tenant: `[start, end)`.
#[must_use]
pub fn tenant_range(tenant: u64) -> (Vec<u8>, Vec<u8>) {
    keys::tenant_range(TenantId::from_raw(tenant))
}

/// The comparison [`crate::ByteKey`] gives redb.
#[must_use]
pub fn compare_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    keys::compare_bytes(a, b)
}
