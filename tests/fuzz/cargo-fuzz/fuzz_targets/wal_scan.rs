//! cargo-fuzz target `wal_scan`: see `tenantry_fuzz::wal_scan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tenantry_fuzz::wal_scan(data));
