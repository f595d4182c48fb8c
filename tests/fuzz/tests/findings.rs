//! Reproducers of findings whose fix belongs to files outside the fuzzing work. Finding 1
//! (decoding stored bytes allocated whatever a length prefix claimed, aborting the process) is
//! fixed: every decode of stored bytes has an allocation limit.
// A failed check panics, as in any test.
#![allow(clippy::panic)]

/// Finding 1: a bincode value whose length prefix says 2^37 bytes, in 9 bytes.
const HUGE_STRING: [u8; 9] = [0xFD, 0, 0, 0, 0, 0x22, 0, 0, 0];

#[test]
fn sdk_decode_value_refuses_a_huge_length_prefix() {
    let decoded = tenantry_sdk::kv::decode_value::<String>(&HUGE_STRING);
    assert!(decoded.is_err());
}

#[test]
fn engine_decode_value_refuses_a_huge_length_prefix() {
    let decoded = tenantry_engine::decode_value::<String>(&HUGE_STRING);
    assert!(decoded.is_err());
}
