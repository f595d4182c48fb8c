//! The tenant's tamper-evident audit log.
//!
//! An entry is written inside the invocation's transaction and committed with its writes. If
//! the function fails or traps, the writes are discarded but the entries are not: the host
//! keeps a bounded account of the failed invocation (its first entries, each marked failed,
//! and a `plugin.invoke` entry with the reason), so the tenant's log still shows what was
//! attempted. Actions in the engine's and the host's namespaces (`kv.*`, `tenant.*`,
//! `operator.*`, `plugin.*`, `unscoped.*`, `audit.*`, `engine.*`, `system.*`, `tenantry.*`)
//! are refused: they record what the engine itself did.

use crate::{Error, abi, host};

/// Appends an audit entry: an `action` such as `"project.create"` and an optional message.
///
/// ```no_run
/// # fn main() -> Result<(), tenantry_sdk::Error> {
/// let name = String::from("apollo");
/// tenantry_sdk::audit::log("project.create", Some(&name))?;
/// tenantry_sdk::audit::log("project.purge", None)?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Host`] with [`Status::InvalidArgument`](crate::Status::InvalidArgument) for an
/// empty or reserved action, [`Status::LimitExceeded`](crate::Status::LimitExceeded) when the
/// action, the message or the number of entries is over the host's limits,
/// [`Status::ReadOnly`](crate::Status::ReadOnly) on a read-only tenant, or
/// [`Status::TransactionTooLarge`](crate::Status::TransactionTooLarge).
pub fn log(action: &str, message: Option<&str>) -> Result<(), Error> {
    let code = abi::audit_log(action.as_bytes(), message.map(str::as_bytes))?;
    host::check(i64::from(code)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_a_host() {
        let name = alloc::string::String::from("x");
        assert_eq!(log("project.create", Some(&name)), Err(Error::Unavailable));
        assert_eq!(log("project.purge", None), Err(Error::Unavailable));
    }
}
