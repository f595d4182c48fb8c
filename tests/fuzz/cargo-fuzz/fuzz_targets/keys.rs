//! cargo-fuzz target `keys`: see `tenantry_fuzz::keys`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tenantry_fuzz::keys(data));
