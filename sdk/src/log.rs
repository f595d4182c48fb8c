//! The plugin's debug log: free-form text the host shows to operators, outside any
//! transaction. Best effort: the host may truncate or drop messages beyond its limits.

use crate::abi;

/// Writes `message` to the debug log. Never fails; outside a plugin it does nothing.
///
/// ```
/// tenantry_sdk::log::debug("recomputing totals");
/// ```
pub fn debug(message: &str) {
    // The host never reports a failure the plugin could act on (ABI.md, `debug_log`).
    let _ = abi::debug_log(message.as_bytes());
}
