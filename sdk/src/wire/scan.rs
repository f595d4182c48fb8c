//! Encodings of the `kv_scan` request, its response and the resumable cursor.
//!
//! All integers are little-endian `u32` unless a width is given. A decoder rejects trailing bytes.
//!
//! Request (guest → host, passed to `kv_scan`):
//!
//! ```text
//! +--------+------+---------------------------------------------------------------+
//! | offset | size | field                                                         |
//! +--------+------+---------------------------------------------------------------+
//! | 0      | 1    | selector: 0 = prefix, 1 = range                               |
//! | 1      | 4    | limit: most entries wanted; 0 = the host's default page size  |
//! | 5      | 4    | table_len                                                     |
//! | 9      | n    | table name bytes                                              |
//! |        |      | selector 0: u32 prefix_len, prefix bytes                      |
//! |        |      | selector 1: start bound, then end bound, each:                |
//! |        |      |   u8 tag (0 = unbounded, 1 = included, 2 = excluded),         |
//! |        |      |   and unless unbounded: u32 key_len, key bytes                |
//! |        |      | u32 cursor_len, cursor bytes (length 0 = first page)          |
//! +--------+------+---------------------------------------------------------------+
//! ```
//!
//! Response (host → guest, in the result buffer):
//!
//! ```text
//! +------+------------------------------------------------------------------------+
//! | size | field                                                                  |
//! +------+------------------------------------------------------------------------+
//! | 4    | entry_count                                                            |
//! | ...  | entry_count × (u32 key_len, key bytes, u32 value_len, value bytes),    |
//! |      | in ascending key order                                                 |
//! | 4    | cursor_len: 0 = the scan is complete                                   |
//! | n    | cursor bytes: pass them back unchanged to get the next page            |
//! +------+------------------------------------------------------------------------+
//! ```
//!
//! Cursor (opaque to guests; this layout is for hosts):
//!
//! ```text
//! +--------+------+---------------------------------------------------------------+
//! | offset | size | field                                                         |
//! +--------+------+---------------------------------------------------------------+
//! | 0      | 1    | cursor version, 1                                             |
//! | 1      | rest | the last key returned; the next page starts strictly after it |
//! +--------+------+---------------------------------------------------------------+
//! ```
//!
//! A cursor is not authenticated: a forged one can only move the start of a scan within the
//! requested bounds of the guest's own tenant, which the guest could do with the bounds anyway.

use alloc::vec::Vec;
use core::ops::Bound;

use super::{Reader, WireError, put_len_prefixed};

/// Scan request selector tag: a key prefix follows.
pub const SELECTOR_PREFIX: u8 = 0;
/// Scan request selector tag: a start and an end bound follow.
pub const SELECTOR_RANGE: u8 = 1;
/// Bound tag: no bound on this side.
pub const BOUND_UNBOUNDED: u8 = 0;
/// Bound tag: the key itself is inside the range.
pub const BOUND_INCLUDED: u8 = 1;
/// Bound tag: the key itself is outside the range.
pub const BOUND_EXCLUDED: u8 = 2;
/// First byte of every cursor in ABI v1.
pub const CURSOR_VERSION: u8 = 1;

/// Which keys of a table a scan visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanSelector<'a> {
    /// Keys starting with these bytes (all keys if empty).
    Prefix(&'a [u8]),
    /// Keys between two bounds, compared bytewise.
    Range {
        /// Lower bound.
        start: Bound<&'a [u8]>,
        /// Upper bound.
        end: Bound<&'a [u8]>,
    },
}

impl ScanSelector<'_> {
    /// Whether `key` is selected.
    #[must_use]
    pub fn contains(&self, key: &[u8]) -> bool {
        match *self {
            ScanSelector::Prefix(prefix) => key.starts_with(prefix),
            ScanSelector::Range { start, end } => {
                let after_start = match start {
                    Bound::Unbounded => true,
                    Bound::Included(s) => key >= s,
                    Bound::Excluded(s) => key > s,
                };
                let before_end = match end {
                    Bound::Unbounded => true,
                    Bound::Included(e) => key <= e,
                    Bound::Excluded(e) => key < e,
                };
                after_start && before_end
            }
        }
    }
}

/// A decoded (or to-be-encoded) `kv_scan` request. The table name is raw bytes: the host checks
/// it with [`super::validate_table_name`] and answers `InvalidTableName`, it does not trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanRequest<'a> {
    /// Table name bytes.
    pub table: &'a [u8],
    /// Which keys to visit.
    pub selector: ScanSelector<'a>,
    /// Most entries wanted in this page; 0 asks for the host's default page size. The host may
    /// return fewer (it caps both entries and bytes per page).
    pub limit: u32,
    /// Empty for the first page, else the cursor of the previous response, unchanged.
    pub cursor: &'a [u8],
}

impl<'a> ScanRequest<'a> {
    /// Encodes the request.
    ///
    /// # Errors
    /// [`WireError::TooLong`] if a field is longer than `u32::MAX` bytes.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        let tag = match self.selector {
            ScanSelector::Prefix(_) => SELECTOR_PREFIX,
            ScanSelector::Range { .. } => SELECTOR_RANGE,
        };
        out.push(tag);
        out.extend_from_slice(&self.limit.to_le_bytes());
        put_len_prefixed(&mut out, self.table, "table name")?;
        match self.selector {
            ScanSelector::Prefix(prefix) => put_len_prefixed(&mut out, prefix, "prefix")?,
            ScanSelector::Range { start, end } => {
                put_bound(&mut out, start, "start bound")?;
                put_bound(&mut out, end, "end bound")?;
            }
        }
        put_len_prefixed(&mut out, self.cursor, "cursor")?;
        Ok(out)
    }

    /// Decodes a request, borrowing from `bytes`.
    ///
    /// # Errors
    /// [`WireError`] if `bytes` is truncated, has an unknown tag or has trailing bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut reader = Reader::new(bytes);
        let tag_offset = reader.offset();
        let tag = reader.u8("selector")?;
        let limit = reader.u32("limit")?;
        let table = reader.len_prefixed("table name")?;
        let selector = match tag {
            SELECTOR_PREFIX => ScanSelector::Prefix(reader.len_prefixed("prefix")?),
            SELECTOR_RANGE => ScanSelector::Range {
                start: read_bound(&mut reader, "start bound")?,
                end: read_bound(&mut reader, "end bound")?,
            },
            tag => {
                return Err(WireError::UnknownTag {
                    field: "selector",
                    offset: tag_offset,
                    tag,
                });
            }
        };
        let cursor = reader.len_prefixed("cursor")?;
        reader.finish()?;
        Ok(ScanRequest {
            table,
            selector,
            limit,
            cursor,
        })
    }

    /// The lower bound of this page: the selector's lower bound (`Included(prefix)` for a
    /// prefix) raised to `Excluded(resume_after)` when a cursor says to resume after that key.
    #[must_use]
    pub fn start_bound(&self, resume_after: Option<&'a [u8]>) -> Bound<&'a [u8]> {
        let start = match self.selector {
            ScanSelector::Prefix(prefix) => Bound::Included(prefix),
            ScanSelector::Range { start, .. } => start,
        };
        let Some(after) = resume_after else {
            return start;
        };
        match start {
            Bound::Included(s) if s > after => start,
            Bound::Excluded(s) if s >= after => start,
            _ => Bound::Excluded(after),
        }
    }
}

fn put_bound(out: &mut Vec<u8>, bound: Bound<&[u8]>, field: &'static str) -> Result<(), WireError> {
    match bound {
        Bound::Unbounded => {
            out.push(BOUND_UNBOUNDED);
            Ok(())
        }
        Bound::Included(key) => {
            out.push(BOUND_INCLUDED);
            put_len_prefixed(out, key, field)
        }
        Bound::Excluded(key) => {
            out.push(BOUND_EXCLUDED);
            put_len_prefixed(out, key, field)
        }
    }
}

fn read_bound<'a>(
    reader: &mut Reader<'a>,
    field: &'static str,
) -> Result<Bound<&'a [u8]>, WireError> {
    let offset = reader.offset();
    match reader.u8(field)? {
        BOUND_UNBOUNDED => Ok(Bound::Unbounded),
        BOUND_INCLUDED => Ok(Bound::Included(reader.len_prefixed(field)?)),
        BOUND_EXCLUDED => Ok(Bound::Excluded(reader.len_prefixed(field)?)),
        tag => Err(WireError::UnknownTag { field, offset, tag }),
    }
}

/// Bytes one entry takes in a scan response (saturating), for hosts that cap page sizes.
#[must_use]
pub const fn entry_encoded_len(key_len: usize, value_len: usize) -> usize {
    8usize.saturating_add(key_len).saturating_add(value_len)
}

/// Builds a scan response (host side): push entries in ascending key order, then `finish`.
#[derive(Debug, Clone)]
pub struct ScanResponseBuilder {
    buf: Vec<u8>,
    count: u32,
}

impl Default for ScanResponseBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ScanResponseBuilder {
    /// An empty response.
    #[must_use]
    pub fn new() -> Self {
        ScanResponseBuilder {
            buf: Vec::from(0u32.to_le_bytes()),
            count: 0,
        }
    }

    /// Appends one entry. On error nothing is appended.
    ///
    /// # Errors
    /// [`WireError::TooLong`] if the key or value is longer than `u32::MAX` bytes or the
    /// response already holds `u32::MAX` entries.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), WireError> {
        let count = self
            .count
            .checked_add(1)
            .ok_or(WireError::TooLong { field: "entries" })?;
        let key_len = u32::try_from(key.len()).map_err(|_| WireError::TooLong { field: "key" })?;
        let value_len =
            u32::try_from(value.len()).map_err(|_| WireError::TooLong { field: "value" })?;
        self.buf.reserve(entry_encoded_len(key.len(), value.len()));
        self.buf.extend_from_slice(&key_len.to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(&value_len.to_le_bytes());
        self.buf.extend_from_slice(value);
        self.count = count;
        Ok(())
    }

    /// Number of entries pushed so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no entry has been pushed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes encoded so far (header and entries, not yet the cursor).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Appends the cursor (empty when the scan is complete) and returns the encoded response.
    ///
    /// # Errors
    /// [`WireError::TooLong`] if the cursor is longer than `u32::MAX` bytes.
    pub fn finish(mut self, cursor: &[u8]) -> Result<Vec<u8>, WireError> {
        put_len_prefixed(&mut self.buf, cursor, "cursor")?;
        if let Some(header) = self.buf.get_mut(..4) {
            header.copy_from_slice(&self.count.to_le_bytes());
        }
        Ok(self.buf)
    }
}

/// A validated scan response (guest side), borrowing from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanResponse<'a> {
    count: u32,
    entries: &'a [u8],
    cursor: &'a [u8],
}

impl<'a> ScanResponse<'a> {
    /// Decodes and validates a whole response.
    ///
    /// # Errors
    /// [`WireError`] if `bytes` is truncated, claims more entries than it holds or has trailing
    /// bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut reader = Reader::new(bytes);
        let count = reader.u32("entry count")?;
        let entries_start = reader.offset();
        // Each entry consumes at least 8 bytes, so a lying count fails after bytes.len() / 8
        // iterations at most.
        for _ in 0..count {
            reader.len_prefixed("entry key")?;
            reader.len_prefixed("entry value")?;
        }
        let entries_end = reader.offset();
        let cursor = reader.len_prefixed("cursor")?;
        reader.finish()?;
        let entries = bytes
            .get(entries_start..entries_end)
            .ok_or(WireError::Truncated {
                field: "entries",
                offset: entries_start,
            })?;
        Ok(ScanResponse {
            count,
            entries,
            cursor,
        })
    }

    /// Number of entries in this page.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether this page has no entries (a later page may still have some).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The cursor for the next page; empty when the scan is complete.
    #[must_use]
    pub fn cursor(&self) -> &'a [u8] {
        self.cursor
    }

    /// The `(key, value)` pairs of this page, in ascending key order.
    #[must_use]
    pub fn entries(&self) -> ScanEntries<'a> {
        ScanEntries {
            reader: Reader::new(self.entries),
            remaining: self.count,
        }
    }
}

/// Iterator over the entries of a [`ScanResponse`].
#[derive(Debug, Clone)]
pub struct ScanEntries<'a> {
    reader: Reader<'a>,
    remaining: u32,
}

impl<'a> Iterator for ScanEntries<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.remaining = self.remaining.checked_sub(1)?;
        // Validated by `ScanResponse::decode`, so these reads succeed.
        let key = self.reader.len_prefixed("entry key").ok()?;
        let value = self.reader.len_prefixed("entry value").ok()?;
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.remaining as usize;
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for ScanEntries<'_> {}

/// The cursor meaning "resume strictly after `last_key`" (host side).
#[must_use]
pub fn encode_cursor(last_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(last_key.len().saturating_add(1));
    out.push(CURSOR_VERSION);
    out.extend_from_slice(last_key);
    out
}

/// The key a cursor resumes after, or `None` for the empty cursor (first page).
///
/// # Errors
/// [`WireError::UnknownTag`] if the cursor does not start with [`CURSOR_VERSION`]; a host
/// answers that with `InvalidCursor` rather than trapping, because cursors may travel through
/// a plugin's callers.
pub fn decode_cursor(cursor: &[u8]) -> Result<Option<&[u8]>, WireError> {
    match cursor.split_first() {
        None => Ok(None),
        Some((&CURSOR_VERSION, key)) => Ok(Some(key)),
        Some((&tag, _)) => Err(WireError::UnknownTag {
            field: "cursor version",
            offset: 0,
            tag,
        }),
    }
}
