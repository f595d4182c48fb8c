//! cargo-fuzz target `engine_model`: see `tenantry_fuzz::engine_model`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tenantry_fuzz::engine_model(data));
