//! Target `wal_scan`: the write-ahead log's record scan as recovery runs it, and redo replay.
//!
//! Two kinds of input, chosen by the first byte:
//! * raw: the rest is a log, scanned as is and also behind a valid file header (so that the
//!   fuzzer's bytes are read as records); each candidate payload is also replayed;
//! * structured: a real log of the input's payloads, built as the engine writes it, then
//!   damaged in one way the input picks (a cut, a flipped bit, zeros).
//!
//! Whatever the bytes, opening returns whole records with consecutive LSNs after the durable
//! state, or `Corrupted`. For a real log: undamaged, it returns exactly its records after
//! `applied`; cut short, the records before the cut; with a bit flipped in the payload,
//! checksum, magic or LSN of a record that whole records follow, `Corrupted` (module docs of
//! `engine/src/wal.rs`: a damaged record followed by whole ones is corruption, not an end).

use arbitrary::{Arbitrary, Unstructured};
use tenantry_engine::Error;
use tenantry_engine::fuzzing::{
    LOG_HEADER_LEN, LogScan, RECORD_HEADER_LEN, build_log, open_log, replay_payload,
};

const ID: u64 = 0x7E57_1D00;

/// Runs the `wal_scan` target on one input.
pub fn wal_scan(data: &[u8]) {
    match data.split_first() {
        Some((&mode, rest)) if mode % 2 == 0 => raw(mode, rest),
        Some((_, rest)) => {
            let _ = structured(&mut Unstructured::new(rest));
        }
        None => {}
    }
}

fn raw(mode: u8, bytes: &[u8]) {
    let applied = u64::from(mode >> 4);
    let fresh = mode & 2 != 0;
    check_any(bytes.to_vec(), applied, fresh);
    let Ok(mut log) = build_log(ID, applied + 1, &[]) else {
        panic!("an empty log could not be built");
    };
    log.extend_from_slice(bytes);
    check_any(log, applied, fresh);
    if bytes.len() <= 1 << 12 {
        let _ = replay_payload(bytes);
    }
}

/// What holds for any bytes; returns the scan when the open succeeded.
fn check_any(bytes: Vec<u8>, applied: u64, fresh: bool) -> Option<LogScan> {
    match open_log(bytes, ID, applied, fresh) {
        Ok(scan) => {
            let mut expected = applied + 1;
            for (lsn, _) in &scan.records {
                assert_eq!(*lsn, expected, "records not consecutive after {applied}");
                expected += 1;
            }
            if scan.afresh {
                assert!(scan.records.is_empty());
                assert_eq!(scan.next_lsn, applied + 1);
            } else {
                assert!(scan.next_lsn >= expected);
            }
            Some(scan)
        }
        Err(Error::Corrupted(_)) => None,
        Err(other) => panic!("opening a log in memory failed with {other:?}"),
    }
}

#[derive(Debug, Arbitrary)]
enum Damage {
    None,
    /// Cut the log at this many bytes past its header.
    Cut(u16),
    /// Flip one bit of record `record`: in its payload, checksum, magic, LSN or length.
    Flip {
        record: u8,
        field: Field,
        offset: u16,
        bit: u8,
    },
    /// Zeros over `len` bytes at this offset past the header.
    Zeros {
        at: u16,
        len: u8,
    },
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Field {
    Payload,
    Checksum,
    Magic,
    Lsn,
    Length,
}

#[derive(Debug, Arbitrary)]
struct Input {
    first_lsn: u8,
    /// Batches the database holds past `first_lsn - 1`, when below the record count.
    applied_past_first: u8,
    payloads: Vec<Vec<u8>>,
    damage: Damage,
    other_id: bool,
    fresh: bool,
}

fn structured(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let input = Input::arbitrary(u)?;
    let payloads: Vec<&[u8]> = input.payloads.iter().take(8).map(Vec::as_slice).collect();
    for payload in &payloads {
        let _ = replay_payload(payload);
    }
    let first = 1 + u64::from(input.first_lsn % 8);
    let n = payloads.len();
    let skip = usize::from(input.applied_past_first) % (n + 1);
    let applied = first - 1 + skip as u64;
    let id = if input.other_id { ID ^ 1 } else { ID };
    let mut log = build_log(id, first, &payloads).unwrap_or_else(|e| panic!("{e}"));
    // Where each record starts and ends.
    let mut spans = Vec::new();
    let mut at = LOG_HEADER_LEN;
    for payload in &payloads {
        let end = at + RECORD_HEADER_LEN + payload.len();
        spans.push((at, end));
        at = end;
    }
    assert_eq!(log.len(), at, "build_log's length");
    let all: Vec<(u64, Vec<u8>)> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (first + i as u64, p.to_vec()))
        .collect();
    let after_applied = |whole: usize| -> Vec<(u64, Vec<u8>)> {
        all[..whole]
            .iter()
            .filter(|(lsn, _)| *lsn > applied)
            .cloned()
            .collect()
    };

    if input.other_id {
        // Another database's log: refused when it holds records, unless this one is new.
        let result = open_log(log, ID, applied, input.fresh);
        match result {
            Ok(scan) => assert!(scan.afresh && (n == 0 || input.fresh), "{scan:?}"),
            Err(Error::Corrupted(_)) => assert!(n > 0 && !input.fresh),
            Err(other) => panic!("{other:?}"),
        }
        return Ok(());
    }

    match input.damage {
        Damage::None => {
            let scan = check_any(log, applied, input.fresh);
            let scan = scan.unwrap_or_else(|| panic!("an undamaged log was refused"));
            assert_eq!(scan.records, after_applied(n));
            assert!(!scan.afresh);
        }
        Damage::Cut(past_header) => {
            let cut = (LOG_HEADER_LEN + usize::from(past_header)).min(log.len());
            log.truncate(cut);
            let whole = spans.iter().filter(|&&(_, end)| end <= cut).count();
            let scan = check_any(log, applied, input.fresh);
            let scan = scan.unwrap_or_else(|| panic!("a log cut at {cut} was refused"));
            assert_eq!(scan.records, after_applied(whole), "cut at {cut}");
        }
        Damage::Flip {
            record,
            field,
            offset,
            bit,
        } => {
            if n == 0 {
                return Ok(());
            }
            let k = usize::from(record) % n;
            let (start, end) = spans[k];
            let payload_len = end - start - RECORD_HEADER_LEN;
            let (field_start, field_len) = match field {
                Field::Magic => (0, 4),
                Field::Length => (4, 4),
                Field::Lsn => (8, 8),
                Field::Checksum => (16, 16),
                Field::Payload if payload_len == 0 => (16, 16),
                Field::Payload => (RECORD_HEADER_LEN, payload_len),
            };
            let at = start + field_start + usize::from(offset) % field_len;
            log[at] ^= 1 << (bit % 8);
            let result = check_any(log, applied, input.fresh);
            let followed = k + 1 < n;
            match (field, followed) {
                // A later record's position depends on this length: only its absence is checked.
                (Field::Length, _) => {
                    if let Some(scan) = result {
                        assert!(scan.records.len() <= after_applied(n).len());
                    }
                }
                // The first record's LSN is not known before it is read: a damaged one reads
                // as a torn record over older ones (see the README's findings).
                (Field::Lsn, true) if k == 0 => {
                    if let Some(scan) = result {
                        assert!(scan.records.is_empty(), "{scan:?}");
                    }
                }
                (_, true) => assert!(
                    result.is_none(),
                    "record {k} of {n} damaged in its {field:?} (byte {at}) and followed by \
                     whole records, yet the log opened: {result:?}"
                ),
                (_, false) => {
                    let scan =
                        result.unwrap_or_else(|| panic!("a damaged last record was refused"));
                    assert_eq!(scan.records, after_applied(k));
                }
            }
        }
        Damage::Zeros { at, len } => {
            let start = (LOG_HEADER_LEN + usize::from(at)).min(log.len());
            let stop = (start + usize::from(len)).min(log.len());
            log[start..stop].fill(0);
            if let Some(scan) = check_any(log, applied, input.fresh) {
                // Never a record that was not written.
                for record in &scan.records {
                    assert!(all.contains(record), "{record:?} was never written");
                }
            }
        }
    }
    Ok(())
}
