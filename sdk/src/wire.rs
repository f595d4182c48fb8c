//! ABI definitions shared by the guest SDK and the host: names, signatures, status codes, limits
//! and byte encodings.
//!
//! This module is `no_std + alloc`, contains no `unsafe`, and is compiled on every target, so the
//! host can `use tenantry_sdk::wire::...` and the two sides cannot drift apart. Every decoder here
//! accepts arbitrary bytes from an untrusted peer and returns [`WireError`] instead of panicking;
//! none allocates based on a length it has not checked against the input.
//!
//! The prose specification of the ABI is `sdk/ABI.md`; the constants below are its source of
//! truth. All integers are little-endian; pointers and lengths are `u32` carried in wasm `i32`.

mod scan;
#[cfg(test)]
mod tests;

use core::fmt;

pub use scan::{
    BOUND_EXCLUDED, BOUND_INCLUDED, BOUND_UNBOUNDED, CURSOR_VERSION, SELECTOR_PREFIX,
    SELECTOR_RANGE, ScanEntries, ScanRequest, ScanResponse, ScanResponseBuilder, ScanSelector,
    decode_cursor, encode_cursor, entry_encoded_len,
};

/// The wasm import module every host function lives in. The version is part of the name, so a
/// guest built for another ABI version fails to link instead of misbehaving.
pub const IMPORT_MODULE: &str = "tenantry:v1";

/// The ABI version a guest's `tenantry_abi_version` export must return.
pub const ABI_VERSION: i32 = 1;

/// Status a plugin function returns when it succeeded.
pub const FUNCTION_OK: i32 = 0;

/// Status a plugin function returns when it failed; its output is then a UTF-8 error message.
pub const FUNCTION_ERROR: i32 = 1;

/// Longest table name, in bytes.
pub const MAX_TABLE_NAME_LEN: usize = 64;

/// `message_len` value for `audit_log` meaning "this entry has no message" (`message_ptr` is
/// then ignored). No real message can be this long.
pub const NO_MESSAGE: u32 = u32::MAX;

/// Return value of `last_error` when no host call has failed in this invocation.
pub const NO_ERROR: i64 = -1;

/// Names of the functions the host provides in [`IMPORT_MODULE`].
pub mod import {
    /// `kv_get(table_ptr, table_len, key_ptr, key_len) -> i64`
    pub const KV_GET: &str = "kv_get";
    /// `kv_get_into(table_ptr, table_len, key_ptr, key_len, dst_ptr, dst_cap) -> i64`: `kv_get`
    /// that also copies the value to `dst` when it fits (since ABI 1.1).
    pub const KV_GET_INTO: &str = "kv_get_into";
    /// `kv_put(table_ptr, table_len, key_ptr, key_len, value_ptr, value_len) -> i32`
    pub const KV_PUT: &str = "kv_put";
    /// `kv_delete(table_ptr, table_len, key_ptr, key_len) -> i32`
    pub const KV_DELETE: &str = "kv_delete";
    /// `kv_scan(request_ptr, request_len) -> i64`
    pub const KV_SCAN: &str = "kv_scan";
    /// `audit_log(action_ptr, action_len, message_ptr, message_len) -> i32`
    pub const AUDIT_LOG: &str = "audit_log";
    /// `debug_log(ptr, len) -> i32`
    pub const DEBUG_LOG: &str = "debug_log";
    /// `output(ptr, len) -> i32`
    pub const OUTPUT: &str = "output";
    /// `result_read(dst_ptr, dst_len) -> i32`
    pub const RESULT_READ: &str = "result_read";
    /// `last_error() -> i64`
    pub const LAST_ERROR: &str = "last_error";
}

/// Names of the functions and memory a guest module exports.
pub mod export {
    /// The guest's linear memory; every pointer in the ABI points into it.
    pub const MEMORY: &str = "memory";
    /// `tenantry_abi_version() -> i32`, which must return [`super::ABI_VERSION`].
    pub const ABI_VERSION: &str = "tenantry_abi_version";
    /// `tenantry_alloc(len: i32) -> i32`: a pointer to `len` writable bytes, or 0 on failure.
    pub const ALLOC: &str = "tenantry_alloc";
    /// Export names starting with this prefix belong to the ABI and are never plugin functions.
    pub const RESERVED_PREFIX: &str = "tenantry_";

    /// Whether `name` is reserved by the ABI (`memory` or anything starting with `tenantry_`),
    /// so that it can never name a plugin function.
    #[must_use]
    pub const fn is_reserved(name: &str) -> bool {
        let name = name.as_bytes();
        let prefix = RESERVED_PREFIX.as_bytes();
        if bytes_equal(name, MEMORY.as_bytes()) {
            return true;
        }
        if name.len() < prefix.len() {
            return false;
        }
        let mut i = 0;
        while i < prefix.len() {
            if name[i] != prefix[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    const fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}

/// A wasm value type used in the ABI's function signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValType {
    /// 32-bit integer: pointers, lengths, statuses.
    I32,
    /// 64-bit integer: a length or a negative status.
    I64,
}

/// The wasm signature of one function at the ABI boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// Import or export name.
    pub name: &'static str,
    /// Parameter types, in order.
    pub params: &'static [ValType],
    /// Result types (zero or one).
    pub results: &'static [ValType],
}

use ValType::{I32, I64};

/// Every function the host provides in [`IMPORT_MODULE`], with its exact wasm signature.
/// A guest may import any subset; importing anything else fails instantiation.
pub const IMPORTS: &[Signature] = &[
    sig(import::KV_GET, &[I32, I32, I32, I32], &[I64]),
    sig(import::KV_GET_INTO, &[I32, I32, I32, I32, I32, I32], &[I64]),
    sig(import::KV_PUT, &[I32, I32, I32, I32, I32, I32], &[I32]),
    sig(import::KV_DELETE, &[I32, I32, I32, I32], &[I32]),
    sig(import::KV_SCAN, &[I32, I32], &[I64]),
    sig(import::AUDIT_LOG, &[I32, I32, I32, I32], &[I32]),
    sig(import::DEBUG_LOG, &[I32, I32], &[I32]),
    sig(import::OUTPUT, &[I32, I32], &[I32]),
    sig(import::RESULT_READ, &[I32, I32], &[I32]),
    sig(import::LAST_ERROR, &[], &[I64]),
];

/// Signature of `tenantry_abi_version`.
pub const ABI_VERSION_SIGNATURE: Signature = sig(export::ABI_VERSION, &[], &[I32]);

/// Signature of `tenantry_alloc`.
pub const ALLOC_SIGNATURE: Signature = sig(export::ALLOC, &[I32], &[I32]);

/// Parameter types of every plugin function: `(input_ptr, input_len)`.
pub const FUNCTION_PARAMS: &[ValType] = &[I32, I32];

/// Result types of every plugin function: the status ([`FUNCTION_OK`] or [`FUNCTION_ERROR`]).
pub const FUNCTION_RESULTS: &[ValType] = &[I32];

const fn sig(
    name: &'static str,
    params: &'static [ValType],
    results: &'static [ValType],
) -> Signature {
    Signature {
        name,
        params,
        results,
    }
}

/// The signature of the import called `name`, if the host provides one.
#[must_use]
pub fn import_signature(name: &str) -> Option<&'static Signature> {
    IMPORTS.iter().find(|s| s.name == name)
}

/// A recoverable failure reported by a host function as a negative return value.
///
/// Codes are stable within ABI v1. New codes may be added; a guest must treat an unknown
/// negative code as a generic failure (`from_code` returns `None` for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
#[non_exhaustive]
pub enum Status {
    /// `kv_get`: the key does not exist. Not recorded as an error for `last_error`.
    NotFound = -1,
    /// The table name is empty, longer than [`MAX_TABLE_NAME_LEN`] or has a byte outside
    /// `[A-Za-z0-9_.-]`.
    InvalidTableName = -2,
    /// The key is longer than the host's key size limit.
    KeyTooLarge = -3,
    /// The value is longer than the host's value size limit.
    ValueTooLarge = -4,
    /// The tenant is read-only (or suspended); writes and audit entries are refused.
    ReadOnly = -5,
    /// This invocation's transaction would exceed the host's write count or write bytes limit.
    TransactionTooLarge = -6,
    /// Another per-invocation limit was hit: scan pages, host calls, audit entries, output size.
    LimitExceeded = -7,
    /// The tenant's storage quota would be exceeded.
    QuotaExceeded = -8,
    /// A scan cursor is not one the host produced (wrong version or malformed).
    InvalidCursor = -9,
    /// An argument is well-formed but not acceptable, such as an empty or non-UTF-8 audit action.
    InvalidArgument = -10,
    /// The engine failed (I/O, corruption); retrying within this invocation will not help.
    Internal = -11,
}

impl Status {
    /// Every status, in code order (from -1 downwards).
    pub const ALL: [Status; 11] = [
        Status::NotFound,
        Status::InvalidTableName,
        Status::KeyTooLarge,
        Status::ValueTooLarge,
        Status::ReadOnly,
        Status::TransactionTooLarge,
        Status::LimitExceeded,
        Status::QuotaExceeded,
        Status::InvalidCursor,
        Status::InvalidArgument,
        Status::Internal,
    ];

    /// The negative code the host returns for this status.
    #[must_use]
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The status for a code returned by a host function, or `None` when `code` is not a
    /// known status (non-negative values are results, not statuses).
    #[must_use]
    pub const fn from_code(code: i64) -> Option<Status> {
        let mut i = 0;
        while i < Status::ALL.len() {
            if Status::ALL[i] as i64 == code {
                return Some(Status::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// A stable snake_case name, for logs and metrics.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Status::NotFound => "not_found",
            Status::InvalidTableName => "invalid_table_name",
            Status::KeyTooLarge => "key_too_large",
            Status::ValueTooLarge => "value_too_large",
            Status::ReadOnly => "read_only",
            Status::TransactionTooLarge => "transaction_too_large",
            Status::LimitExceeded => "limit_exceeded",
            Status::QuotaExceeded => "quota_exceeded",
            Status::InvalidCursor => "invalid_cursor",
            Status::InvalidArgument => "invalid_argument",
            Status::Internal => "internal",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Status::NotFound => "the key was not found",
            Status::InvalidTableName => "the table name is invalid",
            Status::KeyTooLarge => "the key is too large",
            Status::ValueTooLarge => "the value is too large",
            Status::ReadOnly => "the tenant is read-only",
            Status::TransactionTooLarge => "the transaction is too large",
            Status::LimitExceeded => "an invocation limit was exceeded",
            Status::QuotaExceeded => "the tenant's storage quota would be exceeded",
            Status::InvalidCursor => "the scan cursor is invalid",
            Status::InvalidArgument => "an argument is invalid",
            Status::Internal => "the storage engine failed",
        };
        f.write_str(text)
    }
}

/// Checks a table name against the ABI's rule (1 to [`MAX_TABLE_NAME_LEN`] bytes, each one of
/// `[A-Za-z0-9_.-]`) and returns it as `&str`.
///
/// # Errors
/// [`Status::InvalidTableName`] when the rule is broken.
pub fn validate_table_name(name: &[u8]) -> Result<&str, Status> {
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if name.is_empty() || name.len() > MAX_TABLE_NAME_LEN || !name.iter().all(allowed) {
        return Err(Status::InvalidTableName);
    }
    core::str::from_utf8(name).map_err(|_| Status::InvalidTableName)
}

/// Why bytes could not be encoded or decoded. A host that gets this from decoding guest bytes
/// traps the invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended inside `field`, which starts at `offset`.
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Byte offset where the field starts.
        offset: usize,
    },
    /// `field` at `offset` holds a tag this ABI version does not define.
    UnknownTag {
        /// The field being read.
        field: &'static str,
        /// Byte offset of the tag.
        offset: usize,
        /// The tag found.
        tag: u8,
    },
    /// Bytes remain after the last field, starting at `offset`.
    TrailingBytes {
        /// Byte offset of the first unread byte.
        offset: usize,
    },
    /// `field` is longer than `u32::MAX` bytes (or holds more than `u32::MAX` entries) and
    /// cannot be encoded.
    TooLong {
        /// The field being written.
        field: &'static str,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { field, offset } => {
                write!(
                    f,
                    "the input ends inside {field} (starting at byte {offset})"
                )
            }
            WireError::UnknownTag { field, offset, tag } => {
                write!(f, "{field} at byte {offset} has unknown tag {tag}")
            }
            WireError::TrailingBytes { offset } => {
                write!(
                    f,
                    "unexpected bytes after the end of the message at byte {offset}"
                )
            }
            WireError::TooLong { field } => {
                write!(f, "{field} is too long to encode (more than u32::MAX)")
            }
        }
    }
}

impl core::error::Error for WireError {}

/// A bounds-checked cursor over untrusted bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, offset: 0 }
    }

    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.offset)
    }

    pub(crate) fn bytes(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let start = self.offset;
        let truncated = WireError::Truncated {
            field,
            offset: start,
        };
        let end = start.checked_add(len).ok_or(truncated)?;
        let slice = self.bytes.get(start..end).ok_or(truncated)?;
        self.offset = end;
        Ok(slice)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array::<4>(field)?))
    }

    /// A `u32` length followed by that many bytes.
    pub(crate) fn len_prefixed(&mut self, field: &'static str) -> Result<&'a [u8], WireError> {
        let start = self.offset;
        let len = self.u32(field)?;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated {
            field,
            offset: start,
        })?;
        self.bytes(len, field).map_err(|_| WireError::Truncated {
            field,
            offset: start,
        })
    }

    pub(crate) fn finish(&self) -> Result<(), WireError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(WireError::TrailingBytes {
                offset: self.offset,
            })
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let start = self.offset;
        let slice = self.bytes(N, field)?;
        <[u8; N]>::try_from(slice).map_err(|_| WireError::Truncated {
            field,
            offset: start,
        })
    }
}

/// Appends a `u32` length prefix and the bytes.
pub(crate) fn put_len_prefixed(
    out: &mut alloc::vec::Vec<u8>,
    bytes: &[u8],
    field: &'static str,
) -> Result<(), WireError> {
    let len = u32::try_from(bytes.len()).map_err(|_| WireError::TooLong { field })?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}
