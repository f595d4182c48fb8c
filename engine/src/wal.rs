//! The write-ahead log: how a batch of commits becomes durable with one sequential write.
//!
//! Making a redb transaction durable writes every page it changed, wherever the page lives in
//! the file, and then syncs. A batch of tenants' commits changes two pages per tenant (its leaf
//! of the data B-tree and that leaf's parent), so the cost of a durable batch grows with the
//! number of scattered pages the kernel has to write back. The log turns that into one
//! append: the committer writes the batch's changes (its redo record) to the end of the log,
//! syncs the log, and only then commits the redb transaction, without syncing redb. A commit is
//! acknowledged after that, so every acknowledged commit is in the synced log.
//!
//! Every so often (when the log holds [`crate::EngineOptions::log_checkpoint_bytes`], when the
//! pipeline has been idle for 50 ms, or on [`crate::Engine::checkpoint`]) a batch is committed
//! to redb durably instead (a checkpoint): redb then writes each page changed since the last
//! checkpoint once, however many commits changed it, and the log starts again from its
//! beginning. Commits wait while a checkpoint runs. Every redb transaction of the pipeline records the sequence number (LSN) of
//! its batch in `tenantry.meta`, so the durable redb state says which batches it holds.
//!
//! Opening a database replays the records after that LSN, in order, and checkpoints. A record
//! is only replayed if it is whole (its checksum covers the database's log id, its LSN, its
//! length and its bytes) and continues the LSN sequence: the scan stops at the first record
//! that does not, which is where the log ends (a record cut short by a crash was never
//! acknowledged), unless a whole record continues the sequence after it: then a record in the
//! middle was damaged, and opening fails. Records older than the last checkpoint are skipped; a
//! missing record after it is reported as corruption. A log that holds records under another
//! log id (another database, or an earlier history of this one, whose log was lost and got a
//! new id) is refused.
//!
//! ## Layout
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 8 | magic `TNTRYWAL` |
//! | 8 | 4 | log format version (1), little-endian |
//! | 12 | 8 | log id: a random number kept in the database's `tenantry.meta` |
//! | 20 | … | zero up to 4096 |
//! | 4096 | | records, back to back |
//!
//! A record is a 32-byte header followed by its payload:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `0x3152_4C57`, little-endian |
//! | 4 | payload length, little-endian |
//! | 8 | LSN, little-endian |
//! | 16 | the first 16 bytes of BLAKE3 over log id, LSN, length and payload |
//!
//! The payload is a list of table operations (see [`crate::commit`]'s redo module). The file
//! is extended with zeros a megabyte at a time, so that appending does not change its size,
//! and is reused from the start after each checkpoint.

use parking_lot::Mutex;
use redb::StorageBackend;

use crate::error::{Error, Result};

/// Bytes before the first record.
pub(crate) const HEADER_LEN: u64 = 4096;
/// Bytes of a record header; a redo record reserves them at its start.
pub(crate) const RECORD_HEADER: usize = 32;

const FILE_MAGIC: &[u8; 8] = b"TNTRYWAL";
const VERSION: u32 = 1;
const RECORD_MAGIC: u32 = 0x3152_4C57;
/// The log grows by at least this much at a time, with zeros.
const GROW: u64 = 1 << 20;

/// The log, and where its next record goes.
pub(crate) struct Wal {
    storage: Box<dyn StorageBackend>,
    id: u64,
    checkpoint_bytes: u64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Where the next record goes.
    offset: u64,
    /// Length of the file: everything past `offset` is zeros or stale records.
    allocated: u64,
    /// LSN of the next batch.
    next_lsn: u64,
    /// Start of the last record appended, until the next checkpoint.
    last: Option<u64>,
    /// Bytes removed by range since the last checkpoint (see [`Wal::add_unlogged`]).
    unlogged: u64,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("id", &self.id)
            .field("state", &*self.state.lock())
            .finish_non_exhaustive()
    }
}

/// A record found in the log: its LSN and payload.
pub(crate) type Record = (u64, Vec<u8>);

/// What lies at a position of the log.
enum Found {
    /// Zeros, the end of the file, or a record cut short.
    Nothing,
    /// A record whose checksum does not match; `next` is where the record after it would start.
    Damaged {
        lsn: u64,
        next: u64,
    },
    Whole(u64, Vec<u8>),
}

/// Highest LSN the log accepts: far beyond any real count, low enough never to overflow.
const MAX_LSN: u64 = u64::MAX / 2;

/// An opened log.
pub(crate) struct Opened {
    pub(crate) wal: Wal,
    /// The records to replay, oldest first.
    pub(crate) records: Vec<Record>,
    /// The log was empty, or unusable and harmless, and was started afresh.
    pub(crate) afresh: bool,
}

fn not_a_log() -> Error {
    Error::Corrupted(
        "the write-ahead log (the database's `-wal` file) is not a tenantry log".into(),
    )
}

impl Wal {
    /// Opens the log of the database whose log id is `id` and whose durable state holds every
    /// batch up to `applied`, with the records to replay.
    ///
    /// A log that is empty or was cut short before its header was written, or that was written
    /// for another database and holds no record (or any records, when `fresh`: a database
    /// created by this open), is started afresh: the caller then gives it an id with
    /// [`Wal::restart_as`], which writes its header. One written for another database (or
    /// another history of this one) that holds records is refused.
    pub(crate) fn open(
        storage: Box<dyn StorageBackend>,
        id: u64,
        applied: u64,
        fresh: bool,
        checkpoint_bytes: u64,
    ) -> Result<Opened> {
        let len = storage.len().map_err(Error::storage_io)?;
        let mut head = vec![0u8; usize::try_from(len.min(HEADER_LEN)).unwrap_or(0)];
        storage.read(0, &mut head).map_err(Error::storage_io)?;
        let wal = Wal {
            storage,
            id,
            checkpoint_bytes: checkpoint_bytes.max(1),
            state: Mutex::new(State {
                offset: HEADER_LEN,
                allocated: len.max(HEADER_LEN),
                next_lsn: applied.saturating_add(1),
                last: None,
                unlogged: 0,
            }),
        };
        // Started afresh: the caller gives it its id and writes its header (`restart_as`).
        let afresh = |wal: Wal| -> Result<Opened> {
            Ok(Opened {
                wal,
                records: Vec::new(),
                afresh: true,
            })
        };
        if applied >= MAX_LSN {
            return Err(Error::Corrupted(format!(
                "the database says it holds log batches up to {applied}, beyond any real count"
            )));
        }
        if len < HEADER_LEN {
            // Nothing, or a header cut short by a crash as the log was created.
            let start = &head[..head.len().min(FILE_MAGIC.len())];
            if head.iter().all(|&b| b == 0) || FILE_MAGIC.starts_with(start) {
                return afresh(wal);
            }
            return Err(not_a_log());
        }
        if head.iter().all(|&b| b == 0) {
            // No header: a log whose creation was cut short, unless records of this database
            // follow (then only the header was lost, and it is written again).
            if wal.scan(id, len, 1)?.is_empty() {
                return afresh(wal);
            }
            wal.write_header()?;
        } else {
            if &head[..8] != FILE_MAGIC {
                return Err(not_a_log());
            }
            let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
            if version != VERSION {
                return Err(Error::Corrupted(format!(
                    "the write-ahead log has format version {version}; this version reads {VERSION} only"
                )));
            }
            let log_id = u64::from_le_bytes(head[12..20].try_into().unwrap_or([0; 8]));
            if log_id != id {
                // A log without records holds nothing to lose; one with records belongs to
                // another database (or another history of this one), unless this one is new.
                let theirs = !wal.scan(log_id, len, 1)?.is_empty();
                if theirs && !fresh {
                    return Err(Error::Corrupted(
                        "the write-ahead log (the database's `-wal` file) belongs to another \
                         database or to another history of this one; move it away to open the \
                         database as its file stands"
                            .into(),
                    ));
                }
                if theirs {
                    tracing::warn!(
                        "a new database replaces a write-ahead log of another database that \
                         still held records"
                    );
                }
                return afresh(wal);
            }
        }
        let records = wal.scan(id, len, usize::MAX)?;
        let newest = records.last().map_or(0, |(lsn, _)| *lsn);
        if newest >= MAX_LSN {
            return Err(Error::Corrupted(format!(
                "the write-ahead log holds batch {newest}, beyond any real count"
            )));
        }
        let pending: Vec<Record> = records
            .into_iter()
            .filter(|(lsn, _)| *lsn > applied)
            .collect();
        if let Some((first, _)) = pending.first()
            && *first != applied.saturating_add(1)
        {
            return Err(Error::Corrupted(format!(
                "the write-ahead log starts at batch {first}, but the database holds batches up to {applied} only"
            )));
        }
        wal.state.lock().next_lsn = applied.max(newest).saturating_add(1);
        Ok(Opened {
            wal,
            records: pending,
            afresh: false,
        })
    }

    /// Gives the log a new id and starts it afresh (the database now records `id`).
    pub(crate) fn restart_as(&mut self, id: u64) -> Result<()> {
        self.id = id;
        self.write_header()
    }

    fn write_header(&self) -> Result<()> {
        let mut header = vec![0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(FILE_MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..20].copy_from_slice(&self.id.to_le_bytes());
        self.storage.write(0, &header).map_err(Error::storage_io)?;
        self.storage.sync_data().map_err(Error::storage_io)
    }

    /// The whole records (checksummed with log id `id`) from the start of the log, with
    /// consecutive LSNs, read one at a time; at most `limit` of them.
    ///
    /// The log ends at the first record that is not whole. A damaged record (a checksum that
    /// does not match, or a magic that is neither the magic nor zero) followed by a whole one
    /// that continues the LSNs is not an end but corruption: commits after it were
    /// acknowledged, and replaying around the hole would be wrong. A damaged LSN is caught too,
    /// except in the first record, whose LSN only its header says.
    fn scan(&self, id: u64, len: u64, limit: usize) -> Result<Vec<Record>> {
        let mut records: Vec<Record> = Vec::new();
        let mut pos = HEADER_LEN;
        while records.len() < limit {
            let expected = records.last().map(|(lsn, _)| lsn.checked_add(1));
            match self.record_at(id, pos, len)? {
                Found::Whole(lsn, payload) if expected.is_none_or(|e| e == Some(lsn)) => {
                    pos += (RECORD_HEADER + payload.len()) as u64;
                    records.push((lsn, payload));
                }
                Found::Damaged { lsn, next } => {
                    // After the first record the LSN is known: the damage may be in the header.
                    let lsn = expected.flatten().unwrap_or(lsn);
                    if let Found::Whole(after, _) = self.record_at(id, next, len)?
                        && lsn.checked_add(1) == Some(after)
                    {
                        return Err(Error::Corrupted(format!(
                            "the write-ahead log's record of batch {lsn} is damaged, and later \
                             batches follow it"
                        )));
                    }
                    break;
                }
                _ => break,
            }
        }
        Ok(records)
    }

    /// What lies at `pos` of a log of `len` bytes.
    fn record_at(&self, id: u64, pos: u64, len: u64) -> Result<Found> {
        let Some(body) = pos.checked_add(RECORD_HEADER as u64).filter(|&b| b <= len) else {
            return Ok(Found::Nothing);
        };
        let mut head = [0u8; RECORD_HEADER];
        self.storage
            .read(pos, &mut head)
            .map_err(Error::storage_io)?;
        let word =
            |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        // A zero magic is the end (zeros, or a record taken back); any other is damage.
        let magic = word(0);
        if magic == 0 {
            return Ok(Found::Nothing);
        }
        let size = u64::from(word(4));
        let lsn = u64::from_le_bytes(head[8..16].try_into().unwrap_or([0; 8]));
        let Some(end) = body.checked_add(size).filter(|&end| end <= len) else {
            return Ok(Found::Nothing);
        };
        if magic != RECORD_MAGIC {
            return Ok(Found::Damaged { lsn, next: end });
        }
        let mut payload = vec![0u8; size as usize];
        self.storage
            .read(body, &mut payload)
            .map_err(Error::storage_io)?;
        if head[16..32] != checksum(id, lsn, &payload)[..] {
            return Ok(Found::Damaged { lsn, next: end });
        }
        Ok(Found::Whole(lsn, payload))
    }

    /// LSN of the next batch.
    pub(crate) fn next_lsn(&self) -> u64 {
        self.state.lock().next_lsn
    }

    /// Bytes of records appended since the last checkpoint.
    pub(crate) fn logged_bytes(&self) -> u64 {
        self.state.lock().offset - HEADER_LEN
    }

    /// Whether the next batch should be a checkpoint: the log holds `checkpoint_bytes`, counting
    /// the bytes that batches removed by range as if they had been logged.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        let state = self.state.lock();
        (state.offset - HEADER_LEN).saturating_add(state.unlogged) >= self.checkpoint_bytes
    }

    /// Counts `bytes` of entries that a logged batch removed by range. Its record names the
    /// range in a few bytes, but the pages it changed are as many as writing those entries
    /// took, and the next checkpoint writes them all: deleting a large tenant would otherwise
    /// pile up, between two checkpoints, a checkpoint long enough to stall every commit.
    pub(crate) fn add_unlogged(&self, bytes: u64) {
        let mut state = self.state.lock();
        state.unlogged = state.unlogged.saturating_add(bytes);
    }

    /// Appends `record` (its first [`RECORD_HEADER`] bytes reserved for the header) as batch
    /// `lsn` and syncs the log. Only the holder of the commit pipeline calls it.
    pub(crate) fn append(&self, lsn: u64, record: &mut [u8]) -> Result<()> {
        let mut state = self.state.lock();
        state.last = None;
        if lsn != state.next_lsn {
            return Err(Error::Corrupted(format!(
                "write-ahead log: batch {lsn} appended where {} was due",
                state.next_lsn
            )));
        }
        let payload_len = u32::try_from(record.len() - RECORD_HEADER)
            .map_err(|_| Error::Corrupted("a batch's redo record is larger than 4 GiB".into()))?;
        let checksum = checksum(self.id, lsn, &record[RECORD_HEADER..]);
        record[..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        record[4..8].copy_from_slice(&payload_len.to_le_bytes());
        record[8..16].copy_from_slice(&lsn.to_le_bytes());
        record[16..32].copy_from_slice(&checksum);
        let end = state.offset + record.len() as u64;
        if end > state.allocated {
            self.grow(&mut state, end)?;
        }
        let written = self
            .storage
            .write(state.offset, record)
            .and_then(|()| self.storage.sync_data());
        if let Err(err) = written {
            // The record may still reach the disk, and its batch is about to fail: take it
            // back if the disk lets us, so that no replay applies it.
            let _ = self.storage.write(state.offset, &[0u8; 4]);
            let _ = self.storage.sync_data();
            return Err(Error::storage_io(err));
        }
        state.last = Some(state.offset);
        state.offset = end;
        state.next_lsn = lsn + 1;
        Ok(())
    }

    /// Extends the file with zeros to hold at least `end` bytes.
    fn grow(&self, state: &mut State, end: u64) -> Result<()> {
        let target = end.max(state.allocated + GROW).next_multiple_of(GROW);
        let zeros = vec![0u8; GROW as usize];
        let mut at = state.allocated;
        while at < target {
            let n = (target - at).min(GROW);
            self.storage
                .write(at, &zeros[..n as usize])
                .map_err(Error::storage_io)?;
            at += n;
        }
        state.allocated = target;
        Ok(())
    }

    /// Takes back the last record appended, after its batch failed to commit to redb: the
    /// record's magic is zeroed and synced, so no replay finds it.
    pub(crate) fn void_last(&self) -> Result<()> {
        let mut state = self.state.lock();
        let Some(at) = state.last.take() else {
            return Ok(());
        };
        self.storage
            .write(at, &[0u8; 4])
            .map_err(Error::storage_io)?;
        self.storage.sync_data().map_err(Error::storage_io)?;
        state.offset = at;
        state.next_lsn -= 1;
        Ok(())
    }

    /// Records that batch `lsn` was committed to redb durably (a checkpoint): every earlier
    /// batch is in the durable redb state, and the log starts again from its beginning.
    pub(crate) fn checkpointed(&self, lsn: u64) {
        let mut state = self.state.lock();
        state.next_lsn = lsn + 1;
        state.offset = HEADER_LEN;
        state.last = None;
        state.unlogged = 0;
    }
}

/// The checksum of a record: the first 16 bytes of BLAKE3 over log id, LSN, length, payload.
fn checksum(id: u64, lsn: u64, payload: &[u8]) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&id.to_le_bytes());
    hasher.update(&lsn.to_le_bytes());
    hasher.update(&(payload.len() as u64).to_le_bytes());
    hasher.update(payload);
    let mut out = [0u8; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    out
}

/// A new random log id (from the standard library's per-process random hash keys).
pub(crate) fn new_id() -> u64 {
    use std::hash::BuildHasher;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    std::collections::hash_map::RandomState::new()
        .hash_one((now.as_nanos(), std::process::id()))
        .max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A file in memory that outlives the log opened on it.
    #[derive(Debug, Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl StorageBackend for Shared {
        fn len(&self) -> std::io::Result<u64> {
            Ok(self.0.lock().len() as u64)
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            let bytes = self.0.lock();
            let start = offset as usize;
            out.copy_from_slice(&bytes[start..start + out.len()]);
            Ok(())
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.0.lock().resize(len as usize, 0);
            Ok(())
        }
        fn sync_data(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            let mut bytes = self.0.lock();
            let end = offset as usize + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[offset as usize..end].copy_from_slice(data);
            Ok(())
        }
    }

    const ID: u64 = 42;

    fn open(file: &Shared, applied: u64, fresh: bool) -> Result<(Wal, Vec<Record>)> {
        open_as(file, ID, applied, fresh).map(|o| (o.wal, o.records))
    }

    /// Opens as `recover` does: a log started afresh gets its id and header.
    fn open_as(file: &Shared, id: u64, applied: u64, fresh: bool) -> Result<Opened> {
        let mut opened = Wal::open(Box::new(file.clone()), id, applied, fresh, 1 << 20)?;
        if opened.afresh {
            opened.wal.restart_as(id)?;
        }
        Ok(opened)
    }

    fn append(wal: &Wal, payload: &[u8]) -> u64 {
        let lsn = wal.next_lsn();
        let mut record = vec![0u8; RECORD_HEADER];
        record.extend_from_slice(payload);
        wal.append(lsn, &mut record).unwrap();
        lsn
    }

    fn lsns(records: &[Record]) -> Vec<u64> {
        records.iter().map(|(lsn, _)| *lsn).collect()
    }

    #[test]
    fn records_after_the_applied_batch_are_replayed_in_order() {
        let file = Shared::default();
        let (wal, records) = open(&file, 0, true).unwrap();
        assert!(records.is_empty());
        for i in 1..=5u8 {
            assert_eq!(append(&wal, &[i; 100]), u64::from(i));
        }
        drop(wal);
        let (wal, records) = open(&file, 2, false).unwrap();
        assert_eq!(lsns(&records), [3, 4, 5]);
        assert_eq!(records[0].1, vec![3u8; 100]);
        assert_eq!(wal.next_lsn(), 6);
        let (_, records) = open(&file, 5, false).unwrap();
        assert!(records.is_empty());
    }

    #[test]
    fn bytes_removed_by_range_count_towards_a_checkpoint() {
        let file = Shared::default();
        let (wal, _) = open(&file, 0, true).unwrap(); // checkpoints at 1 MiB
        append(&wal, &[1; 100]);
        assert!(!wal.wants_checkpoint());
        wal.add_unlogged(1 << 20);
        assert!(wal.wants_checkpoint());
        wal.checkpointed(1);
        assert!(!wal.wants_checkpoint());
        wal.add_unlogged(u64::MAX);
        assert!(wal.wants_checkpoint());
    }

    #[test]
    fn the_log_ends_at_a_torn_or_changed_record() {
        let file = Shared::default();
        let (wal, _) = open(&file, 0, true).unwrap();
        for _ in 0..3 {
            append(&wal, b"some operations");
        }
        let end = HEADER_LEN as usize + 3 * (RECORD_HEADER + 15);
        // The last record cut short, as by a crash in the middle of its write.
        file.0.lock()[end - 4..end].fill(0);
        let (_, records) = open(&file, 0, false).unwrap();
        assert_eq!(lsns(&records), [1, 2]);
        // A byte of the second record's payload changed.
        file.0.lock()[end - 2 * (RECORD_HEADER + 15) + RECORD_HEADER + 1] ^= 1;
        let (_, records) = open(&file, 0, false).unwrap();
        assert_eq!(lsns(&records), [1]);
    }

    #[test]
    fn a_damaged_record_before_whole_ones_is_corruption_not_an_end() {
        let file = Shared::default();
        let (wal, _) = open(&file, 0, true).unwrap();
        for _ in 0..3 {
            append(&wal, b"some operations");
        }
        // The first record's payload changed: batches 2 and 3 were acknowledged after it.
        file.0.lock()[HEADER_LEN as usize + RECORD_HEADER + 1] ^= 1;
        assert!(matches!(open(&file, 0, false), Err(Error::Corrupted(_))));
    }

    #[test]
    fn a_damaged_magic_or_lsn_before_whole_records_is_corruption() {
        // Found by the wal_scan fuzz target: such a record used to end the log silently.
        let second = HEADER_LEN as usize + RECORD_HEADER + 15;
        for byte in [second, second + 9] {
            let file = Shared::default();
            let (wal, _) = open(&file, 0, true).unwrap();
            for _ in 0..3 {
                append(&wal, b"some operations");
            }
            file.0.lock()[byte] ^= 1;
            assert!(
                matches!(open(&file, 0, false), Err(Error::Corrupted(_))),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn records_after_a_lost_header_are_still_replayed() {
        let file = Shared::default();
        let (wal, _) = open(&file, 0, true).unwrap();
        append(&wal, b"one");
        append(&wal, b"two");
        file.0.lock()[..HEADER_LEN as usize].fill(0);
        let opened = open_as(&file, ID, 0, false).unwrap();
        assert!(!opened.afresh);
        assert_eq!(lsns(&opened.records), [1, 2]);
        // And an LSN beyond any real count is refused rather than wrapped.
        assert!(matches!(
            open(&file, u64::MAX - 1, false),
            Err(Error::Corrupted(_))
        ));
    }

    #[test]
    fn after_a_checkpoint_older_records_are_never_replayed() {
        let file = Shared::default();
        let (wal, _) = open(&file, 0, true).unwrap();
        for _ in 0..4 {
            append(&wal, &[7; 64]);
        }
        // Batch 5 is the checkpoint; 6 overwrites the first old record, and old records 2..4
        // still follow it in the file.
        wal.checkpointed(5);
        assert_eq!(append(&wal, &[9; 64]), 6);
        drop(wal);
        let (_, records) = open(&file, 5, false).unwrap();
        assert_eq!(lsns(&records), [6]);
        // A crash right after the checkpoint: only old records, all in the durable state.
        let file = Shared::default();
        let (wal, _) = open(&file, 0, true).unwrap();
        for _ in 0..4 {
            append(&wal, &[7; 64]);
        }
        wal.checkpointed(5);
        let (wal, records) = open(&file, 5, false).unwrap();
        assert!(records.is_empty());
        assert_eq!(wal.next_lsn(), 6);
    }

    #[test]
    fn a_missing_record_after_the_durable_state_is_corruption() {
        let file = Shared::default();
        let (wal, _) = open(&file, 0, true).unwrap();
        wal.checkpointed(9);
        append(&wal, b"batch 10");
        assert!(matches!(open(&file, 3, false), Err(Error::Corrupted(_))));
    }

    #[test]
    fn a_voided_record_is_not_replayed() {
        let file = Shared::default();
        let (wal, _) = open(&file, 0, true).unwrap();
        append(&wal, b"one");
        append(&wal, b"two");
        wal.void_last().unwrap();
        assert_eq!(wal.next_lsn(), 2);
        let (_, records) = open(&file, 0, false).unwrap();
        assert_eq!(lsns(&records), [1]);
    }

    #[test]
    fn another_databases_log_is_refused_unless_the_database_is_new() {
        let file = Shared::default();
        let (wal, _) = open(&file, 0, true).unwrap();
        append(&wal, b"theirs");
        drop(wal);
        assert!(matches!(
            open_as(&file, ID + 1, 0, false),
            Err(Error::Corrupted(_))
        ));
        let opened = open_as(&file, ID + 1, 0, true).unwrap();
        assert!(opened.afresh, "a new database starts its log afresh");
        assert!(opened.records.is_empty());
        assert_eq!(opened.wal.next_lsn(), 1);
        // The log now belongs to ID + 1 and holds no record: any database may take it over.
        let opened = open_as(&file, ID + 2, 0, false).unwrap();
        assert!(opened.afresh && opened.records.is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_log_is_refused() {
        for bytes in [vec![0xAB; HEADER_LEN as usize], b"#!/bin/sh".to_vec()] {
            let file = Shared(Arc::new(Mutex::new(bytes)));
            assert!(matches!(open(&file, 0, true), Err(Error::Corrupted(_))));
        }
    }

    #[test]
    fn a_log_cut_short_before_its_header_starts_afresh() {
        let file = Shared(Arc::new(Mutex::new(b"TNTR".to_vec())));
        let opened = open_as(&file, ID, 0, false).unwrap();
        assert!(opened.afresh && opened.records.is_empty());
        let wal = opened.wal;
        append(&wal, b"after");
        let (_, records) = open(&file, 0, false).unwrap();
        assert_eq!(lsns(&records), [1]);
    }
}
