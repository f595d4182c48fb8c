//! The tenant's key-value store: raw bytes ([`get`], [`put`], [`delete`]), typed values
//! ([`get_value`], [`put_value`]) and ordered scans ([`scan_prefix`], [`range`]).
//!
//! Tables are created on first write; a table name is 1 to 64 bytes of `[A-Za-z0-9_.-]`. Keys
//! compare bytewise, so big-endian integers (`id.to_be_bytes()`) sort numerically. Every
//! function runs inside the invocation's transaction: reads see the invocation's own writes,
//! and all writes are discarded if the function fails or traps (its audit entries are kept,
//! marked failed, up to a bound: see [`crate::audit`]).
//!
//! Typed values use bincode 2 in serde mode with `bincode::config::standard()`, the encoding the
//! engine uses for its own `put_value`/`get_value`, so both sides can read each other's values.

mod scan;

use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::ops::{Bound, RangeBounds};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use scan::{Cursor, Entry, Page, Scan};

use crate::wire::{ScanSelector, Status};
use crate::{Error, abi, host};

/// Values up to this many bytes are read in a single host call (`kv_get_into`), through a
/// buffer on the stack; a longer one takes a second call (`result_read`) into a buffer of its
/// exact size.
const INLINE_VALUE: usize = 256;

/// Reads the value stored under `key`, or `None` if there is none.
///
/// # Errors
/// [`Error::Host`] with [`Status::InvalidTableName`] or [`Status::KeyTooLarge`] (or another
/// host status), or [`Error::Unavailable`] outside a plugin.
pub fn get(table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let mut buf = [MaybeUninit::uninit(); INLINE_VALUE];
    Ok(match get_into(table, key, &mut buf)? {
        None => None,
        Some(Value::Inline(value)) => Some(value.to_vec()),
        Some(Value::Owned(value)) => Some(value),
    })
}

/// A value read by [`get_into`].
enum Value<'a> {
    /// It fit the caller's buffer: the first bytes of it.
    Inline(&'a [u8]),
    /// It did not, and was copied out of the host's result buffer.
    Owned(Vec<u8>),
}

/// Reads the value of `key` with one host call into `buf` when it fits, else with a second
/// one into a new buffer.
fn get_into<'b>(
    table: &str,
    key: &[u8],
    buf: &'b mut [MaybeUninit<u8>],
) -> Result<Option<Value<'b>>, Error> {
    let (code, inline) = abi::kv_get_into(table.as_bytes(), key, buf)?;
    if code == i64::from(Status::NotFound.code()) {
        return Ok(None);
    }
    let len = host::check(code)?;
    match inline {
        Some(value) => Ok(Some(Value::Inline(value))),
        // Too long for `buf`: the host kept it in the result buffer.
        None => host::read_result(len).map(|value| Some(Value::Owned(value))),
    }
}

/// Stores `value` under `key`, replacing any previous value.
///
/// # Errors
/// [`Error::Host`] with, among others, [`Status::KeyTooLarge`], [`Status::ValueTooLarge`],
/// [`Status::ReadOnly`], [`Status::TransactionTooLarge`] or [`Status::QuotaExceeded`].
pub fn put(table: &str, key: &[u8], value: &[u8]) -> Result<(), Error> {
    let code = abi::kv_put(table.as_bytes(), key, value)?;
    host::check(i64::from(code)).map(|_| ())
}

/// Deletes `key`; returns whether it existed.
///
/// # Errors
/// [`Error::Host`] with, among others, [`Status::InvalidTableName`], [`Status::ReadOnly`] or
/// [`Status::TransactionTooLarge`].
pub fn delete(table: &str, key: &[u8]) -> Result<bool, Error> {
    let code = abi::kv_delete(table.as_bytes(), key)?;
    host::check(i64::from(code)).map(|existed| existed == 1)
}

/// Reads and decodes the value stored under `key` (see [`decode_value`]).
///
/// ```no_run
/// # fn main() -> Result<(), tenantry_sdk::Error> {
/// let next_id = tenantry_sdk::kv::get_value::<u64>("meta", b"next_id")?.unwrap_or(1);
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`get`], plus [`Error::Decode`] if the stored bytes are not a `T`.
pub fn get_value<T: DeserializeOwned>(table: &str, key: &[u8]) -> Result<Option<T>, Error> {
    let mut buf = [MaybeUninit::uninit(); INLINE_VALUE];
    match get_into(table, key, &mut buf)? {
        None => Ok(None),
        Some(Value::Inline(bytes)) => decode_value(bytes).map(Some),
        Some(Value::Owned(bytes)) => decode_value(&bytes).map(Some),
    }
}

/// Encodes `value` (see [`encode_value`]) and stores it under `key`.
///
/// # Errors
/// As [`put`], plus [`Error::Encode`] if `value` cannot be encoded.
pub fn put_value<T: Serialize + ?Sized>(table: &str, key: &[u8], value: &T) -> Result<(), Error> {
    put(table, key, &encode_value(value)?)
}

/// Encodes a value the way [`put_value`] and the engine store it: bincode 2, serde mode,
/// `bincode::config::standard()`.
///
/// # Errors
/// [`Error::Encode`] if serde cannot serialize `value` (for example a map with non-string
/// keys is fine, but a serializer error from a custom `Serialize` is passed on).
pub fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| Error::Encode {
        message: bincode_encode_reason(&e).into(),
    })
}

/// Decodes bytes written by [`encode_value`] (or by the engine's `put_value`).
///
/// # Errors
/// [`Error::Decode`] if `bytes` is not exactly one encoded `T`.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    // With a limit, so that a length prefix claiming more than a guest's memory can hold is an
    // error, not an allocation failure that traps (the engine decodes with the same limit).
    let config = bincode::config::standard().with_limit::<{ 256 << 20 }>();
    let (value, read) =
        bincode::serde::decode_from_slice(bytes, config).map_err(|e| Error::Decode {
            message: bincode_decode_reason(&e).into(),
        })?;
    if read != bytes.len() {
        return Err(Error::Decode {
            message: alloc::format!(
                "{} bytes left over after the value; the stored value is of another type",
                bytes.len() - read
            ),
        });
    }
    Ok(value)
}

// bincode's error `Display` goes through `Debug` of every variant and adds about 15 KB of
// formatting code to each plugin, so errors are summarized by hand.
fn bincode_decode_reason(error: &bincode::error::DecodeError) -> &'static str {
    use bincode::error::DecodeError;
    match error {
        DecodeError::UnexpectedEnd { .. } => "the stored bytes end too early for the expected type",
        DecodeError::Utf8 { .. } => "the stored bytes hold a string that is not UTF-8",
        DecodeError::InvalidBooleanValue(_) | DecodeError::UnexpectedVariant { .. } => {
            "the stored bytes hold a bool or enum tag the expected type does not have"
        }
        _ => "the stored bytes are not a bincode encoding of the expected type",
    }
}

fn bincode_encode_reason(error: &bincode::error::EncodeError) -> &'static str {
    use bincode::error::EncodeError;
    match error {
        EncodeError::Other(reason) => reason,
        _ => "serde could not serialize the value with bincode",
    }
}

/// All entries of `table` whose key starts with `prefix`, in key order, fetched a page at a time.
///
/// ```no_run
/// # fn main() -> Result<(), tenantry_sdk::Error> {
/// for entry in tenantry_sdk::kv::scan_prefix("projects", b"") {
///     let entry = entry?;
///     let name: String = entry.value_as()?;
/// }
/// # Ok(()) }
/// ```
pub fn scan_prefix(table: &str, prefix: &[u8]) -> Scan {
    Scan::new(table, ScanSelector::Prefix(prefix))
}

/// All entries of `table` whose key lies in `range` (bytewise), in key order, fetched a page at
/// a time.
///
/// ```no_run
/// # fn main() -> Result<(), tenantry_sdk::Error> {
/// let (from, to) = (5u64.to_be_bytes(), 10u64.to_be_bytes());
/// let page = tenantry_sdk::kv::range("projects", &from[..]..&to[..]).page_size(50).next_page()?;
/// # Ok(()) }
/// ```
pub fn range<'a>(table: &str, range: impl RangeBounds<&'a [u8]>) -> Scan {
    let start = bound_of(range.start_bound());
    let end = bound_of(range.end_bound());
    Scan::new(table, ScanSelector::Range { start, end })
}

fn bound_of<'a>(bound: Bound<&&'a [u8]>) -> Bound<&'a [u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(*key),
        Bound::Excluded(key) => Bound::Excluded(*key),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec;

    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct NewProject {
        name: String,
    }

    #[test]
    fn values_use_bincode_standard_config() -> Result<(), Error> {
        // Varint integers: the engine reads these bytes with the same config.
        assert_eq!(encode_value(&1u64)?, vec![1]);
        assert_eq!(encode_value(&300u64)?, vec![251, 44, 1]);
        let project = NewProject { name: "ab".into() };
        assert_eq!(encode_value(&project)?, vec![2, b'a', b'b']);
        assert_eq!(decode_value::<NewProject>(&[2, b'a', b'b'])?, project);
        Ok(())
    }

    #[test]
    fn decoding_the_wrong_type_fails() {
        assert!(matches!(
            decode_value::<u8>(&[1, 2]),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            decode_value::<NewProject>(&[9, b'a']),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            decode_value::<u64>(&[]),
            Err(Error::Decode { .. })
        ));
    }

    #[test]
    fn host_calls_report_unavailable_outside_a_plugin() {
        assert_eq!(get("t", b"k"), Err(Error::Unavailable));
        assert_eq!(put("t", b"k", b"v"), Err(Error::Unavailable));
        assert_eq!(delete("t", b"k"), Err(Error::Unavailable));
        assert_eq!(get_value::<u64>("t", b"k"), Err(Error::Unavailable));
        let first = scan_prefix("t", b"").next();
        assert_eq!(first, Some(Err(Error::Unavailable)));
    }
}
