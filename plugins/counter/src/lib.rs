//! Example plugin: one counter per tenant, stored as a `u64` under table `counter`, key `value`.
//!
//! Exports `increment` (adds one, returns the new value) and `get` (returns the current value,
//! 0 if never incremented); both ignore their input and answer with a JSON number.

use tenantry_sdk::{Error, Json, export, kv};

const TABLE: &str = "counter";
const KEY: &[u8] = b"value";

/// Adds one to the tenant's counter and returns the new value.
fn increment() -> Result<Json<u64>, Error> {
    let current = kv::get_value::<u64>(TABLE, KEY)?.unwrap_or(0);
    let next = current
        .checked_add(1)
        .ok_or_else(|| Error::msg("the counter is at u64::MAX and cannot be incremented"))?;
    kv::put_value(TABLE, KEY, &next)?;
    Ok(Json(next))
}

/// Returns the tenant's counter, 0 if it was never incremented.
fn get() -> Result<Json<u64>, Error> {
    Ok(Json(kv::get_value::<u64>(TABLE, KEY)?.unwrap_or(0)))
}

export!(increment, get);
