//! Target `wire`: every byte decoder the host runs on guest bytes, and the SDK's decoder of the
//! host's scan responses.
//!
//! The input is used twice: as raw bytes for each decoder (none may panic; whatever decodes
//! must re-encode to exactly the same bytes, since the encodings have one form per value), and
//! through `arbitrary` as a well-formed request, response and cursor (decode ∘ encode = id).
//! Guest pointer ranges are checked by `host/src/memory.rs` with wasmtime and are not modelled.

use std::ops::Bound;

use crate::{OwnedBound, in_bounds};
use arbitrary::{Arbitrary, Unstructured};
use tenantry_sdk::wire::{
    self, ScanRequest, ScanResponse, ScanResponseBuilder, ScanSelector, Status, decode_cursor,
    encode_cursor, validate_table_name,
};

/// Runs the `wire` target on one input.
pub fn wire(data: &[u8]) {
    raw_request(data);
    raw_response(data);
    raw_cursor(data);
    raw_table_name(data);
    raw_scalars(data);
    for split in [1, data.len() / 2] {
        if let Some((head, tail)) = data.split_at_checked(split) {
            raw_request(tail);
            raw_response(tail);
            raw_table_name(head);
        }
    }
    // Any leftover structure error only means the input ran out; nothing to check then.
    let _ = structured(&mut Unstructured::new(data));
}

fn raw_request(data: &[u8]) {
    let Ok(request) = ScanRequest::decode(data) else {
        return;
    };
    let encoded = request
        .encode()
        .unwrap_or_else(|e| panic!("re-encoding failed: {e}"));
    assert_eq!(encoded, data, "a decoded request re-encodes to other bytes");
    assert_eq!(ScanRequest::decode(&encoded), Ok(request));
    check_request_semantics(&request);
}

/// What the host does with a decoded request, minus the engine: table name check, cursor,
/// page start, and the end of a prefix scan.
fn check_request_semantics(request: &ScanRequest<'_>) {
    let _ = validate_table_name(request.table);
    let resume_after = decode_cursor(request.cursor).ok().flatten();
    let start = request.start_bound(resume_after);
    let samples = sample_keys(request, resume_after);
    for key in &samples {
        let selector_start = match request.selector {
            ScanSelector::Prefix(prefix) => key.as_slice() >= prefix,
            ScanSelector::Range { start, .. } => bound_admits_from_below(start, key),
        };
        let after_cursor = resume_after.is_none_or(|after| key.as_slice() > after);
        assert_eq!(
            bound_admits_from_below(start, key),
            selector_start && after_cursor,
            "start_bound {start:?} of {request:?} disagrees with the cursor for key {key:?}"
        );
        if let ScanSelector::Prefix(prefix) = request.selector {
            // The host scans `[prefix, successor(prefix))` for a prefix.
            let end = tenantry_engine::successor(prefix);
            let in_scan =
                key.as_slice() >= prefix && end.as_deref().is_none_or(|end| key.as_slice() < end);
            assert_eq!(
                in_scan,
                key.starts_with(prefix),
                "prefix scan of {prefix:?} and key {key:?}"
            );
            assert_eq!(request.selector.contains(key), key.starts_with(prefix));
        }
    }
}

fn bound_admits_from_below(bound: Bound<&[u8]>, key: &[u8]) -> bool {
    in_bounds((bound, Bound::Unbounded), key)
}

/// Keys around every key the request names: each key, with a byte more, a byte less, and its
/// successor, so that bound checks meet their edges.
fn sample_keys(request: &ScanRequest<'_>, resume_after: Option<&[u8]>) -> Vec<Vec<u8>> {
    let mut named: Vec<&[u8]> = vec![b"", request.table];
    named.extend(resume_after);
    match request.selector {
        ScanSelector::Prefix(prefix) => named.push(prefix),
        ScanSelector::Range { start, end } => {
            for bound in [start, end] {
                if let Bound::Included(k) | Bound::Excluded(k) = bound {
                    named.push(k);
                }
            }
        }
    }
    let mut out = Vec::new();
    for key in named {
        out.push(key.to_vec());
        out.push([key, &[0]].concat());
        out.push([key, &[0xFF]].concat());
        if let Some((_, shorter)) = key.split_last() {
            out.push(shorter.to_vec());
        }
        out.extend(tenantry_engine::successor(key));
    }
    out
}

fn raw_response(data: &[u8]) {
    let Ok(response) = ScanResponse::decode(data) else {
        return;
    };
    let entries: Vec<_> = response.entries().collect();
    assert_eq!(entries.len(), response.len(), "entries() lost entries");
    assert_eq!(response.entries().len(), response.len());
    assert_eq!(response.is_empty(), entries.is_empty());
    let mut builder = ScanResponseBuilder::new();
    for (key, value) in &entries {
        builder.push(key, value).unwrap_or_else(|e| panic!("{e}"));
    }
    let rebuilt = builder
        .finish(response.cursor())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rebuilt, data, "a decoded response rebuilds to other bytes");
}

fn raw_cursor(data: &[u8]) {
    match decode_cursor(data) {
        Ok(None) => assert!(data.is_empty()),
        Ok(Some(key)) => assert_eq!(encode_cursor(key), data),
        Err(_) => assert!(data.first().is_some_and(|&v| v != wire::CURSOR_VERSION)),
    }
}

fn raw_table_name(data: &[u8]) {
    let rule = !data.is_empty()
        && data.len() <= wire::MAX_TABLE_NAME_LEN
        && data
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b));
    match validate_table_name(data) {
        Ok(name) => {
            assert!(rule, "accepted table name {data:?}");
            assert_eq!(name.as_bytes(), data);
        }
        Err(status) => {
            assert!(!rule, "refused table name {data:?}");
            assert_eq!(status, Status::InvalidTableName);
        }
    }
}

/// Status codes, export names and the audit call's text arguments.
fn raw_scalars(data: &[u8]) {
    let mut word = [0u8; 8];
    for (w, b) in word.iter_mut().zip(data) {
        *w = *b;
    }
    let code = i64::from_le_bytes(word);
    if let Some(status) = Status::from_code(code) {
        assert_eq!(i64::from(status.code()), code);
        assert!(!status.name().is_empty() && !status.to_string().is_empty());
    }
    let small = i64::from(i8::from_le_bytes([word[0]]));
    let known = Status::from_code(small);
    assert_eq!(known.is_some(), (-11..=-1).contains(&small), "code {small}");
    if let Ok(name) = std::str::from_utf8(data) {
        let reserved = name == wire::export::MEMORY || name.starts_with("tenantry_");
        assert_eq!(wire::export::is_reserved(name), reserved, "{name:?}");
        if let Some(sig) = wire::import_signature(name) {
            assert_eq!(sig.name, name);
        }
        let _ = tenantry_engine::check_identifier(name, 63);
    }
    let _ = tenantry_engine::audit_target("t", data);
    // Stored values a plugin or the application reads back: any bytes are an error or a value,
    // never an abort (finding 1: no allocation of what a length prefix claims).
    let _ = tenantry_sdk::kv::decode_value::<Vec<String>>(data);
    let _ = tenantry_engine::decode_value::<(String, Vec<u64>)>(data);
}

#[derive(Debug, Arbitrary)]
struct Structured {
    table: Vec<u8>,
    prefix: Option<Vec<u8>>,
    start: OwnedBound,
    end: OwnedBound,
    limit: u32,
    cursor_key: Option<Vec<u8>>,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

fn structured(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let s = Structured::arbitrary(u)?;
    let cursor = s
        .cursor_key
        .as_deref()
        .map(encode_cursor)
        .unwrap_or_default();
    assert_eq!(decode_cursor(&cursor), Ok(s.cursor_key.as_deref()));
    let selector = match &s.prefix {
        Some(prefix) => ScanSelector::Prefix(prefix),
        None => ScanSelector::Range {
            start: s.start.as_bound(),
            end: s.end.as_bound(),
        },
    };
    let request = ScanRequest {
        table: &s.table,
        selector,
        limit: s.limit,
        cursor: &cursor,
    };
    let bytes = request.encode().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ScanRequest::decode(&bytes), Ok(request));
    check_request_semantics(&request);
    // Every proper prefix of an encoding is truncated, never something else.
    for cut in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
        if cut < bytes.len() {
            assert!(ScanRequest::decode(&bytes[..cut]).is_err());
        }
    }
    let mut with_trailer = bytes.clone();
    with_trailer.push(0);
    assert!(ScanRequest::decode(&with_trailer).is_err());

    let mut builder = ScanResponseBuilder::new();
    for (key, value) in &s.entries {
        builder.push(key, value).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(builder.len(), s.entries.len());
    let response = builder.finish(&cursor).unwrap_or_else(|e| panic!("{e}"));
    let decoded = ScanResponse::decode(&response).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded.cursor(), &cursor[..]);
    let entries: Vec<_> = decoded.entries().collect();
    let expected: Vec<_> = s
        .entries
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    assert_eq!(entries, expected);
    Ok(())
}
