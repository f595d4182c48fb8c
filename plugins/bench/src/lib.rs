//! Benchmark plugin: measures what the sandbox costs, not what a plugin does.
//!
//! | function | what it does |
//! |---|---|
//! | `noop` | nothing: no input decoding, no host call, empty output |
//! | `get100` | 100 `kv::get` of keys `k00`..`k99` in table `bench`; outputs how many were found |

use tenantry_sdk::{Error, Json, export, kv};

/// Does nothing: the cost of a fresh instance and one call.
fn noop() -> Result<(), Error> {
    Ok(())
}

/// Reads 100 keys, as the native baseline does through a `TenantHandle`.
fn get100() -> Result<Json<u32>, Error> {
    let mut found = 0;
    for i in 0..100u8 {
        let key = [b'k', b'0' + i / 10, b'0' + i % 10];
        if kv::get("bench", &key)?.is_some() {
            found += 1;
        }
    }
    Ok(Json(found))
}

export!(noop, get100);
