//! Reading one stream out of the shared audit log (layout in [`crate::schema`]).
//!
//! A stream is a linked list through `tenantry.audit_log`, newest first from its head. Every
//! step checks what it finds (the entry names the stream and the seq expected there), so an
//! entry that was removed, moved or pointed elsewhere is reported as tampering, never skipped.
//!
//! Reading forward has two strategies with the same checks:
//! - **dense**: when the stream's entries make up a good part of the positions between its first
//!   entry and its head, one range scan over those positions, skipping other streams' entries
//!   by their 24-byte header;
//! - **sparse**: otherwise, one indexed segment at a time (at most [`schema::INDEX_EVERY`]
//!   entries), walked backwards from the segment's last entry and then replayed forwards.

use redb::{ReadOnlyTable, ReadTransaction, TableError};

use super::{AuditStream, StoredEntry};
use crate::error::{Error, Result};
use crate::schema::{self, AUDIT, AUDIT_INDEX, AuditHead, EntryHeader, TAILS, Tail};

/// A dense scan is chosen when the positions it reads are at most this many per entry.
const DENSE_SPAN_PER_ENTRY: u64 = 4;

/// A table that may not exist yet (a file opened before its first commit).
fn existing<T>(opened: std::result::Result<T, TableError>) -> Result<Option<T>> {
    match opened {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(Error::from(e)),
    }
}

/// One stream of the audit log, as of a read transaction.
pub(crate) struct StreamLog {
    stream: AuditStream,
    log: ReadOnlyTable<u64, &'static [u8]>,
    index: ReadOnlyTable<(u64, u64), u64>,
    head: Option<AuditHead>,
}

/// One entry read from the log: its seq and its stored bytes (header stripped).
pub(crate) struct RawEntry {
    pub(crate) seq: u64,
    body: Vec<u8>,
}

impl RawEntry {
    pub(crate) fn decode(&self) -> Result<StoredEntry<'_>> {
        StoredEntry::decode(&self.body)
    }
}

impl StreamLog {
    /// The stream's log; `None` when the file has no audit tables yet.
    pub(crate) fn open(txn: &ReadTransaction, stream: AuditStream) -> Result<Option<Self>> {
        let (Some(log), Some(index), Some(tails)) = (
            existing(txn.open_table(AUDIT))?,
            existing(txn.open_table(AUDIT_INDEX))?,
            existing(txn.open_table(TAILS))?,
        ) else {
            return Ok(None);
        };
        let head = Some(Tail::read(&tails, stream.raw())?.head).filter(|h| h.seq > 0);
        Ok(Some(StreamLog {
            stream,
            log,
            index,
            head,
        }))
    }

    /// The stream's newest entry, as recorded in `tenantry.tails`.
    pub(crate) fn head(&self) -> Option<AuditHead> {
        self.head
    }

    fn tampered(&self, seq: u64, reason: impl Into<String>) -> Error {
        Error::AuditTampered {
            stream: self.stream,
            seq,
            reason: reason.into(),
        }
    }

    /// The entry at `pos`, which must be `seq` of this stream; returns its header.
    fn read_at(&self, pos: u64, seq: u64, body: &mut Vec<u8>) -> Result<EntryHeader> {
        let Some(value) = self.log.get(pos)? else {
            return Err(self.tampered(seq, format!("entry missing (position {pos})")));
        };
        let (header, bytes) = EntryHeader::split(value.value())
            .ok_or_else(|| self.tampered(seq, "malformed entry header"))?;
        if header.stream != self.stream.raw() || header.seq != seq {
            return Err(self.tampered(
                seq,
                format!(
                    "position {pos} holds seq {} of stream {}, not this entry",
                    header.seq, header.stream
                ),
            ));
        }
        body.clear();
        body.extend_from_slice(bytes);
        Ok(header)
    }

    /// Index entries of this stream, ascending: `(seq, position)`.
    fn checkpoints(&self) -> Result<Vec<(u64, u64)>> {
        let raw = self.stream.raw();
        let mut out = Vec::new();
        for item in self.index.range((raw, 0)..=(raw, u64::MAX))? {
            let (key, pos) = item?;
            out.push((key.value().1, pos.value()));
        }
        Ok(out)
    }

    /// Walks back from the entry `(seq, pos)`, newest first, calling `f` for every entry until
    /// `f` returns `false` or seq 1 has been read.
    pub(crate) fn walk_back(
        &self,
        mut seq: u64,
        mut pos: u64,
        mut f: impl FnMut(&RawEntry) -> Result<bool>,
    ) -> Result<()> {
        let mut entry = RawEntry {
            seq,
            body: Vec::new(),
        };
        while seq > 0 {
            let header = self.read_at(pos, seq, &mut entry.body)?;
            entry.seq = seq;
            if !f(&entry)? {
                return Ok(());
            }
            seq -= 1;
            match (seq, header.prev) {
                (0, 0) => {}
                (0, _) | (_, 0) => {
                    return Err(self.tampered(seq + 1, "link to the previous entry is broken"));
                }
                (_, prev) => pos = prev,
            }
        }
        Ok(())
    }

    /// Where to start walking back to reach the newest entry with a seq below `before` (all
    /// entries if `None`): an indexed or head entry at most [`schema::INDEX_EVERY`] steps above
    /// it. `None` when there is no such entry.
    pub(crate) fn start_below(&self, before: Option<u64>) -> Result<Option<(u64, u64)>> {
        let Some(head) = self.head else {
            return Ok(None);
        };
        let target = before.map_or(head.seq, |b| b.saturating_sub(1).min(head.seq));
        if target == 0 {
            return Ok(None);
        }
        if target == head.seq {
            return Ok(Some((head.seq, head.pos)));
        }
        let raw = self.stream.raw();
        match self.index.range((raw, target)..=(raw, u64::MAX))?.next() {
            Some(item) => {
                let (key, pos) = item?;
                Ok(Some((key.value().1, pos.value())))
            }
            None => Ok(Some((head.seq, head.pos))),
        }
    }

    /// Reads the whole stream oldest first, checking its structure: seqs gapless from 1, each
    /// entry linked to the one before, index entries where they belong, and the last entry
    /// where the head says. Returns the number of entries read.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&RawEntry) -> Result<()>) -> Result<u64> {
        let checkpoints = self.checkpoints()?;
        let Some(head) = self.head else {
            if checkpoints.is_empty() {
                return Ok(0);
            }
            return Err(self.tampered(1, "entries exist but no head is recorded"));
        };
        // The index holds seq 1 and every INDEX_EVERY-th seq up to the head, nothing else.
        let want: Vec<u64> = std::iter::once(1)
            .chain((1..=head.seq / schema::INDEX_EVERY).map(|k| k * schema::INDEX_EVERY))
            .collect();
        let got: Vec<u64> = checkpoints.iter().map(|(seq, _)| *seq).collect();
        if want != got {
            let same = want.iter().zip(&got).take_while(|(a, b)| a == b).count();
            let seq = want.get(same).into_iter().chain(got.get(same)).min();
            return Err(self.tampered(
                seq.map_or(1, |s| (*s).min(head.seq + 1)),
                "the audit index does not match the log",
            ));
        }
        let Some(&(_, first)) = checkpoints.first() else {
            return Err(self.tampered(1, "seq 1 is missing from the audit index"));
        };
        let span = head.pos.checked_sub(first).map(|d| d + 1);
        match span {
            Some(span) if span <= head.seq.saturating_mul(DENSE_SPAN_PER_ENTRY) => {
                self.scan_dense(first, &head, &checkpoints, f)
            }
            _ => {
                let mut low = 0;
                let mut segment = Vec::new();
                let bounds = checkpoints.iter().copied().chain(
                    (checkpoints.last().map(|c| c.0) != Some(head.seq))
                        .then_some((head.seq, head.pos)),
                );
                for (seq, pos) in bounds {
                    segment.clear();
                    self.walk_back(seq, pos, |entry| {
                        segment.push(RawEntry {
                            seq: entry.seq,
                            body: entry.body.clone(),
                        });
                        Ok(entry.seq > low + 1)
                    })?;
                    for entry in segment.iter().rev() {
                        f(entry)?;
                    }
                    low = seq;
                }
                Ok(head.seq)
            }
        }
    }

    fn scan_dense(
        &self,
        first: u64,
        head: &AuditHead,
        checkpoints: &[(u64, u64)],
        mut f: impl FnMut(&RawEntry) -> Result<()>,
    ) -> Result<u64> {
        let raw = self.stream.raw();
        let mut checkpoints = checkpoints.iter().peekable();
        let mut entry = RawEntry {
            seq: 0,
            body: Vec::new(),
        };
        let mut last_pos = 0;
        for item in self.log.range(first..=head.pos)? {
            let (pos, value) = item?;
            let pos = pos.value();
            let expected = entry.seq + 1;
            let (header, body) = EntryHeader::split(value.value())
                .ok_or_else(|| self.tampered(expected, "malformed entry header"))?;
            if header.stream != raw {
                continue;
            }
            if header.seq != expected {
                return Err(self.tampered(
                    expected,
                    format!("expected seq {expected}, found seq {}", header.seq),
                ));
            }
            if header.prev != last_pos {
                return Err(self.tampered(expected, "link to the previous entry is broken"));
            }
            if checkpoints.peek().is_some_and(|(s, _)| *s == expected)
                && checkpoints.next().map(|c| c.1) != Some(pos)
            {
                return Err(self.tampered(expected, "the audit index points elsewhere"));
            }
            entry.seq = expected;
            entry.body.clear();
            entry.body.extend_from_slice(body);
            f(&entry)?;
            last_pos = pos;
        }
        if entry.seq != head.seq || last_pos != head.pos {
            return Err(self.tampered(
                entry.seq.min(head.seq) + 1,
                format!(
                    "log ends at seq {} but its recorded head is seq {}",
                    entry.seq, head.seq
                ),
            ));
        }
        Ok(entry.seq)
    }
}
