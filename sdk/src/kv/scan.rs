//! Paged scans: [`Scan`] fetches pages from `kv_scan` with the host's resumable cursor and can
//! be used as an iterator of entries or page by page.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Bound;

use serde::de::DeserializeOwned;

use crate::wire::{ScanRequest, ScanResponse, ScanSelector};
use crate::{Error, abi, host};

/// One key-value pair returned by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, without any tenant prefix.
    pub key: Vec<u8>,
    /// The stored bytes.
    pub value: Vec<u8>,
}

impl Entry {
    /// Decodes the value as written by [`put_value`](super::put_value).
    ///
    /// # Errors
    /// [`Error::Decode`] if the bytes are not a `T`.
    pub fn value_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        super::decode_value(&self.value)
    }
}

/// Where a scan resumes. Opaque bytes made by the host: a plugin may hand them to its caller
/// and resume later with [`Scan::resume_from`], but must not build or edit them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(Vec<u8>);

impl Cursor {
    /// A cursor from bytes previously obtained with [`Cursor::as_bytes`]. A host rejects bytes
    /// it did not produce with `Status::InvalidCursor`.
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Cursor(bytes)
    }

    /// The cursor's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The cursor's bytes, by value.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Entries of this page in key order; may be empty even when more follow.
    pub entries: Vec<Entry>,
    /// Where the next page starts, or `None` when the scan is complete.
    pub cursor: Option<Cursor>,
}

/// Owned form of [`ScanSelector`].
#[derive(Debug, Clone)]
enum Selector {
    Prefix(Vec<u8>),
    Range(Bound<Vec<u8>>, Bound<Vec<u8>>),
}

#[derive(Debug, Clone)]
enum Position {
    Start,
    After(Cursor),
    Done,
}

/// A scan over one table, created by [`scan_prefix`](super::scan_prefix) or
/// [`range`](super::range). Nothing is fetched until it is iterated or [`Scan::next_page`] is
/// called.
///
/// As an iterator it yields `Result<Entry, Error>` and stops after the first error.
#[derive(Debug, Clone)]
#[must_use = "a scan does nothing until iterated or paged"]
pub struct Scan {
    table: String,
    selector: Selector,
    page_size: u32,
    position: Position,
    buffered: VecDeque<Entry>,
}

impl Scan {
    pub(super) fn new(table: &str, selector: ScanSelector<'_>) -> Self {
        let owned = |bound: Bound<&[u8]>| bound.map(<[u8]>::to_vec);
        let selector = match selector {
            ScanSelector::Prefix(prefix) => Selector::Prefix(prefix.to_vec()),
            ScanSelector::Range { start, end } => Selector::Range(owned(start), owned(end)),
        };
        Scan {
            table: table.into(),
            selector,
            page_size: 0,
            position: Position::Start,
            buffered: VecDeque::new(),
        }
    }

    /// Asks for at most `entries` entries per page; 0 (the default) means the host's default.
    /// The host may return fewer, as it also caps the bytes of a page.
    pub fn page_size(mut self, entries: u32) -> Self {
        self.page_size = entries;
        self
    }

    /// Continues a scan where a previous page's cursor left off.
    pub fn resume_from(mut self, cursor: Cursor) -> Self {
        self.position = Position::After(cursor);
        self.buffered.clear();
        self
    }

    /// Fetches the next page, or `None` once the scan is complete. Entries buffered by the
    /// iterator are not returned again.
    ///
    /// # Errors
    /// [`Error::Host`] with [`Status::InvalidTableName`](crate::Status::InvalidTableName),
    /// [`Status::InvalidCursor`](crate::Status::InvalidCursor),
    /// [`Status::LimitExceeded`](crate::Status::LimitExceeded) and so on; [`Error::Decode`] if
    /// the host's response is malformed. After an error the scan is complete.
    pub fn next_page(&mut self) -> Result<Option<Page>, Error> {
        let result = self.fetch();
        match &result {
            Ok(Some(Page {
                cursor: Some(cursor),
                ..
            })) => self.position = Position::After(cursor.clone()),
            _ => self.position = Position::Done,
        }
        result
    }

    fn fetch(&self) -> Result<Option<Page>, Error> {
        let cursor: &[u8] = match &self.position {
            Position::Start => &[],
            Position::After(cursor) => cursor.as_bytes(),
            Position::Done => return Ok(None),
        };
        let selector = match &self.selector {
            Selector::Prefix(prefix) => ScanSelector::Prefix(prefix),
            Selector::Range(start, end) => ScanSelector::Range {
                start: start.as_ref().map(Vec::as_slice),
                end: end.as_ref().map(Vec::as_slice),
            },
        };
        let request = ScanRequest {
            table: self.table.as_bytes(),
            selector,
            limit: self.page_size,
            cursor,
        };
        let request = request.encode().map_err(|e| Error::Encode {
            message: alloc::format!("{e}"),
        })?;
        let len = host::check(abi::kv_scan(&request)?)?;
        let bytes = host::read_result(len)?;
        let response = ScanResponse::decode(&bytes).map_err(|e| Error::Decode {
            message: alloc::format!("the host's scan response is malformed: {e}"),
        })?;
        let entries = response
            .entries()
            .map(|(key, value)| Entry {
                key: key.to_vec(),
                value: value.to_vec(),
            })
            .collect();
        let cursor = Some(response.cursor())
            .filter(|c| !c.is_empty())
            .map(|c| Cursor(c.to_vec()));
        Ok(Some(Page { entries, cursor }))
    }
}

impl Iterator for Scan {
    type Item = Result<Entry, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.buffered.pop_front() {
                return Some(Ok(entry));
            }
            // Pages may be empty while the cursor says more follow, so keep fetching.
            match self.next_page() {
                Ok(Some(page)) => self.buffered.extend(page.entries),
                Ok(None) => return None,
                Err(error) => return Some(Err(error)),
            }
        }
    }
}
