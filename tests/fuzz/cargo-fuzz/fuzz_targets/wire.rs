//! cargo-fuzz target `wire`: see `tenantry_fuzz::wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tenantry_fuzz::wire(data));
