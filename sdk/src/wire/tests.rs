//! Tests of the wire encodings: golden bytes (which pin the layouts written in `sdk/ABI.md`),
//! round trips, and decoding of truncated, mutated and random bytes, which must return errors
//! and never panic because the host decodes hostile guest bytes with these functions.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Bound;

use proptest::prelude::*;

use super::*;

/// Little-endian `u32`.
fn le(n: u32) -> [u8; 4] {
    n.to_le_bytes()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn status_codes_are_stable_and_round_trip() {
    let expected: [(Status, i32, &str); 11] = [
        (Status::NotFound, -1, "not_found"),
        (Status::InvalidTableName, -2, "invalid_table_name"),
        (Status::KeyTooLarge, -3, "key_too_large"),
        (Status::ValueTooLarge, -4, "value_too_large"),
        (Status::ReadOnly, -5, "read_only"),
        (Status::TransactionTooLarge, -6, "transaction_too_large"),
        (Status::LimitExceeded, -7, "limit_exceeded"),
        (Status::QuotaExceeded, -8, "quota_exceeded"),
        (Status::InvalidCursor, -9, "invalid_cursor"),
        (Status::InvalidArgument, -10, "invalid_argument"),
        (Status::Internal, -11, "internal"),
    ];
    assert_eq!(Status::ALL.len(), expected.len());
    for (status, code, name) in expected {
        assert_eq!(status.code(), code);
        assert_eq!(status.name(), name);
        assert_eq!(Status::from_code(i64::from(code)), Some(status));
    }
    for code in [0, 1, 2, -12, -100, i64::from(i32::MIN), i64::MIN, i64::MAX] {
        assert_eq!(Status::from_code(code), None, "code {code}");
    }
}

#[test]
fn import_table_has_unique_names_and_the_documented_signatures() {
    let names: Vec<&str> = IMPORTS.iter().map(|s| s.name).collect();
    for (i, name) in names.iter().enumerate() {
        assert!(!names[..i].contains(name), "{name} listed twice");
        assert!(!export::is_reserved(name));
    }
    let kv_get = import_signature(import::KV_GET);
    assert_eq!(kv_get.map(|s| s.params.len()), Some(4));
    assert_eq!(kv_get.map(|s| s.results), Some(&[ValType::I64][..]));
    let get_into = import_signature(import::KV_GET_INTO);
    assert_eq!(get_into.map(|s| s.params), Some(&[ValType::I32; 6][..]));
    assert_eq!(get_into.map(|s| s.results), Some(&[ValType::I64][..]));
    let last_error = import_signature(import::LAST_ERROR);
    assert_eq!(last_error.map(|s| s.params.len()), Some(0));
    assert_eq!(import_signature("kv_nuke"), None);
}

#[test]
fn reserved_export_names() {
    let cases = [
        ("memory", true),
        ("tenantry_alloc", true),
        ("tenantry_abi_version", true),
        ("tenantry_", true),
        ("tenantry_anything", true),
        ("tenantry", false),
        ("create", false),
        ("memory2", false),
        ("", false),
        ("Tenantry_x", false),
    ];
    for (name, reserved) in cases {
        assert_eq!(export::is_reserved(name), reserved, "{name:?}");
    }
}

#[test]
fn table_name_validation() {
    let long_ok = [b'a'; MAX_TABLE_NAME_LEN];
    let too_long = [b'a'; MAX_TABLE_NAME_LEN + 1];
    let cases: [(&[u8], bool); 11] = [
        (b"projects", true),
        (b"meta", true),
        (b"a.b-c_D9", true),
        (&long_ok, true),
        (b"", false),
        (&too_long, false),
        (b"has space", false),
        (b"slash/", false),
        (b"nul\0", false),
        ("caf\u{e9}".as_bytes(), false),
        (b"\xff\xfe", false),
    ];
    for (name, ok) in cases {
        let result = validate_table_name(name);
        assert_eq!(result.is_ok(), ok, "{name:?}");
        if !ok {
            assert_eq!(result, Err(Status::InvalidTableName));
        }
    }
}

/// Requests whose exact bytes are written out by hand, pinning the layout of ABI.md.
fn golden_requests() -> Vec<(ScanRequest<'static>, Vec<u8>)> {
    vec![
        (
            ScanRequest {
                table: b"projects",
                selector: ScanSelector::Prefix(b""),
                limit: 0,
                cursor: b"",
            },
            cat(&[&[0], &le(0), &le(8), b"projects", &le(0), &le(0)]),
        ),
        (
            ScanRequest {
                table: b"t",
                selector: ScanSelector::Prefix(b"ab"),
                limit: 10,
                cursor: b"\x01ab",
            },
            cat(&[
                &[0],
                &le(10),
                &le(1),
                b"t",
                &le(2),
                b"ab",
                &le(3),
                b"\x01ab",
            ]),
        ),
        (
            ScanRequest {
                table: b"t",
                selector: ScanSelector::Range {
                    start: Bound::Included(b"a"),
                    end: Bound::Excluded(b"m"),
                },
                limit: 7,
                cursor: b"",
            },
            cat(&[
                &[1],
                &le(7),
                &le(1),
                b"t",
                &[1],
                &le(1),
                b"a",
                &[2],
                &le(1),
                b"m",
                &le(0),
            ]),
        ),
        (
            ScanRequest {
                table: b"t",
                selector: ScanSelector::Range {
                    start: Bound::Unbounded,
                    end: Bound::Unbounded,
                },
                limit: u32::MAX,
                cursor: b"",
            },
            cat(&[&[1], &le(u32::MAX), &le(1), b"t", &[0], &[0], &le(0)]),
        ),
        (
            ScanRequest {
                table: b"t",
                selector: ScanSelector::Range {
                    start: Bound::Excluded(b""),
                    end: Bound::Included(b"\xff"),
                },
                limit: 1,
                cursor: b"\x01z",
            },
            cat(&[
                &[1],
                &le(1),
                &le(1),
                b"t",
                &[2],
                &le(0),
                &[1],
                &le(1),
                b"\xff",
                &le(2),
                b"\x01z",
            ]),
        ),
    ]
}

#[test]
fn scan_request_golden_bytes_and_round_trip() {
    for (request, bytes) in golden_requests() {
        assert_eq!(request.encode().as_deref(), Ok(&bytes[..]), "{request:?}");
        assert_eq!(ScanRequest::decode(&bytes), Ok(request));
    }
}

#[test]
fn scan_request_rejects_every_truncation_and_trailing_bytes() {
    for (_, bytes) in golden_requests() {
        for len in 0..bytes.len() {
            let result = ScanRequest::decode(&bytes[..len]);
            assert!(
                matches!(result, Err(WireError::Truncated { .. })),
                "prefix of {len} bytes of {bytes:?} gave {result:?}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            ScanRequest::decode(&longer),
            Err(WireError::TrailingBytes {
                offset: bytes.len()
            })
        );
    }
}

#[test]
fn scan_request_rejects_unknown_tags_and_huge_lengths() {
    let bad_selector = cat(&[&[2], &le(0), &le(1), b"t", &le(0), &le(0)]);
    assert_eq!(
        ScanRequest::decode(&bad_selector),
        Err(WireError::UnknownTag {
            field: "selector",
            offset: 0,
            tag: 2
        })
    );
    let bad_bound = cat(&[&[1], &le(0), &le(1), b"t", &[3], &[0], &le(0)]);
    assert_eq!(
        ScanRequest::decode(&bad_bound),
        Err(WireError::UnknownTag {
            field: "start bound",
            offset: 10,
            tag: 3
        })
    );
    let huge_table = cat(&[&[0], &le(0), &le(u32::MAX), b"t"]);
    assert_eq!(
        ScanRequest::decode(&huge_table),
        Err(WireError::Truncated {
            field: "table name",
            offset: 5
        })
    );
}

#[test]
fn start_bound_applies_the_cursor() {
    let range = |start| ScanRequest {
        table: b"t",
        selector: ScanSelector::Range {
            start,
            end: Bound::Unbounded,
        },
        limit: 0,
        cursor: b"",
    };
    let prefix = ScanRequest {
        selector: ScanSelector::Prefix(b"p"),
        ..range(Bound::Unbounded)
    };
    type Case<'a> = (ScanRequest<'a>, Option<&'a [u8]>, Bound<&'a [u8]>);
    let cases: [Case<'_>; 9] = [
        (range(Bound::Unbounded), None, Bound::Unbounded),
        (range(Bound::Unbounded), Some(b"k"), Bound::Excluded(b"k")),
        (
            range(Bound::Included(b"m")),
            Some(b"k"),
            Bound::Included(b"m"),
        ),
        (
            range(Bound::Included(b"k")),
            Some(b"k"),
            Bound::Excluded(b"k"),
        ),
        (
            range(Bound::Included(b"a")),
            Some(b"k"),
            Bound::Excluded(b"k"),
        ),
        (
            range(Bound::Excluded(b"k")),
            Some(b"k"),
            Bound::Excluded(b"k"),
        ),
        (
            range(Bound::Excluded(b"m")),
            Some(b"k"),
            Bound::Excluded(b"m"),
        ),
        (prefix, None, Bound::Included(b"p")),
        (prefix, Some(b"p1"), Bound::Excluded(b"p1")),
    ];
    for (request, after, expected) in cases {
        assert_eq!(
            request.start_bound(after),
            expected,
            "{request:?} after {after:?}"
        );
    }
}

#[test]
fn selector_contains() {
    let range = ScanSelector::Range {
        start: Bound::Included(b"b"),
        end: Bound::Excluded(b"d"),
    };
    let cases: [(ScanSelector<'_>, &[u8], bool); 8] = [
        (ScanSelector::Prefix(b""), b"", true),
        (ScanSelector::Prefix(b"ab"), b"abc", true),
        (ScanSelector::Prefix(b"ab"), b"a", false),
        (range, b"a", false),
        (range, b"b", true),
        (range, b"c\xff", true),
        (range, b"d", false),
        (range, b"", false),
    ];
    for (selector, key, expected) in cases {
        assert_eq!(selector.contains(key), expected, "{selector:?} {key:?}");
    }
}

#[test]
fn scan_response_golden_bytes() -> Result<(), WireError> {
    let mut builder = ScanResponseBuilder::new();
    builder.push(b"k1", b"v")?;
    builder.push(b"", b"")?;
    assert_eq!(builder.len(), 2);
    assert_eq!(
        builder.encoded_len(),
        4 + entry_encoded_len(2, 1) + entry_encoded_len(0, 0)
    );
    let bytes = builder.finish(b"\x01k1")?;
    let expected = cat(&[
        &le(2),
        &le(2),
        b"k1",
        &le(1),
        b"v",
        &le(0),
        &le(0),
        &le(3),
        b"\x01k1",
    ]);
    assert_eq!(bytes, expected);

    let response = ScanResponse::decode(&bytes)?;
    assert_eq!(response.len(), 2);
    assert_eq!(response.cursor(), b"\x01k1");
    let entries: Vec<_> = response.entries().collect();
    assert_eq!(entries, vec![(&b"k1"[..], &b"v"[..]), (&b""[..], &b""[..])]);

    let empty = ScanResponseBuilder::new().finish(b"")?;
    assert_eq!(empty, cat(&[&le(0), &le(0)]));
    let response = ScanResponse::decode(&empty)?;
    assert!(response.is_empty() && response.cursor().is_empty());
    Ok(())
}

#[test]
fn scan_response_rejects_truncation_lies_and_trailing_bytes() -> Result<(), WireError> {
    let mut builder = ScanResponseBuilder::new();
    builder.push(b"key", b"value")?;
    let bytes = builder.finish(b"\x01key")?;
    for len in 0..bytes.len() {
        assert!(ScanResponse::decode(&bytes[..len]).is_err(), "prefix {len}");
    }
    let mut longer = bytes.clone();
    longer.push(9);
    assert!(matches!(
        ScanResponse::decode(&longer),
        Err(WireError::TrailingBytes { .. })
    ));
    // A count far larger than the bytes can hold fails fast instead of looping or allocating.
    let lying = cat(&[&le(u32::MAX), &le(0), &le(0), &le(0)]);
    assert!(ScanResponse::decode(&lying).is_err());
    Ok(())
}

#[test]
fn cursor_round_trip_and_rejection() {
    assert_eq!(decode_cursor(b""), Ok(None));
    assert_eq!(encode_cursor(b"abc"), b"\x01abc");
    assert_eq!(decode_cursor(&encode_cursor(b"abc")), Ok(Some(&b"abc"[..])));
    assert_eq!(decode_cursor(&encode_cursor(b"")), Ok(Some(&b""[..])));
    assert_eq!(
        decode_cursor(b"\x02abc"),
        Err(WireError::UnknownTag {
            field: "cursor version",
            offset: 0,
            tag: 2
        })
    );
}

fn bound_strategy() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (0u8..3, proptest::collection::vec(any::<u8>(), 0..8))
}

fn to_bound(tag: u8, key: &[u8]) -> Bound<&[u8]> {
    match tag {
        0 => Bound::Unbounded,
        1 => Bound::Included(key),
        _ => Bound::Excluded(key),
    }
}

proptest! {
    #[test]
    fn scan_request_round_trips(
        table in proptest::collection::vec(any::<u8>(), 0..80),
        prefix in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        (start_tag, start_key) in bound_strategy(),
        (end_tag, end_key) in bound_strategy(),
        limit in any::<u32>(),
        cursor in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let selector = match &prefix {
            Some(prefix) => ScanSelector::Prefix(prefix),
            None => ScanSelector::Range {
                start: to_bound(start_tag, &start_key),
                end: to_bound(end_tag, &end_key),
            },
        };
        let request = ScanRequest { table: &table, selector, limit, cursor: &cursor };
        let bytes = request.encode().map_err(|e| TestCaseError::fail(alloc::format!("{e}")))?;
        prop_assert_eq!(ScanRequest::decode(&bytes), Ok(request));
    }

    #[test]
    fn scan_response_round_trips(
        entries in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..12), proptest::collection::vec(any::<u8>(), 0..12)),
            0..20,
        ),
        cursor in proptest::collection::vec(any::<u8>(), 0..12),
    ) {
        let mut builder = ScanResponseBuilder::new();
        for (key, value) in &entries {
            builder.push(key, value).map_err(|e| TestCaseError::fail(alloc::format!("{e}")))?;
        }
        let bytes = builder.finish(&cursor).map_err(|e| TestCaseError::fail(alloc::format!("{e}")))?;
        let response = ScanResponse::decode(&bytes).map_err(|e| TestCaseError::fail(alloc::format!("{e}")))?;
        prop_assert_eq!(response.cursor(), &cursor[..]);
        prop_assert_eq!(response.entries().len(), entries.len());
        for ((key, value), (k, v)) in response.entries().zip(&entries) {
            prop_assert_eq!(key, &k[..]);
            prop_assert_eq!(value, &v[..]);
        }
    }

    #[test]
    fn decoders_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = ScanRequest::decode(&bytes);
        let _ = decode_cursor(&bytes);
        if let Ok(response) = ScanResponse::decode(&bytes) {
            prop_assert_eq!(response.entries().count(), response.len());
        }
    }

    #[test]
    fn decoders_never_panic_on_mutated_encodings(
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        which in 0usize..5,
    ) {
        let (_, mut bytes) = golden_requests().swap_remove(which);
        let i = index.index(bytes.len());
        bytes[i] = byte;
        if let Ok(request) = ScanRequest::decode(&bytes) {
            // Whatever decodes must re-encode to the same bytes: the encoding is canonical.
            prop_assert_eq!(request.encode().ok(), Some(bytes.clone()));
        }
    }
}
