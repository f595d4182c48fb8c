//! Counts of what the soak did: operations by kind, typed refusals by kind, and unexpected
//! outcomes (with their messages), shared by every thread of a run.
//!
//! An outcome is a *refusal* when the API said no in a way the load asked for: a tenant the
//! operator thread had suspended, made read-only or deleted during the operation, a quota on a
//! tenant that has one, a hostile plugin stopped by the limit it attacks. Anything else is
//! *unexpected* and fails the run.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tenantry_engine::Error;
use tenantry_host::{HostError, InvokeError};

/// The kinds of operation the soak runs, in the order of [`Op::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A write transaction of puts and deletes with an audit entry.
    Commit,
    /// A point read.
    Get,
    /// A range scan of up to 100 entries.
    Scan,
    /// An invocation of the `counter` or `projects` plugin.
    Invoke,
    /// An invocation of a hostile plugin or hostile WAT module.
    Hostile,
    /// An attempt to install a hostile WAT module the host must refuse.
    RefusedInstall,
    /// A check that a hostile tenant's rolled-back writes are not visible.
    RollbackCheck,
    /// A tenant state change (suspend, read-only, back to active).
    StateChange,
    /// A tenant deletion (with its purge) followed by a new tenant in its slot.
    Recreate,
    /// `Engine::checkpoint`.
    Checkpoint,
    /// `Engine::verify_audit` of one tenant.
    VerifyAudit,
}

impl Op {
    /// Every kind, in column order.
    pub(crate) const ALL: [Op; 11] = [
        Op::Commit,
        Op::Get,
        Op::Scan,
        Op::Invoke,
        Op::Hostile,
        Op::RefusedInstall,
        Op::RollbackCheck,
        Op::StateChange,
        Op::Recreate,
        Op::Checkpoint,
        Op::VerifyAudit,
    ];

    /// The kind's column name.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Op::Commit => "commit",
            Op::Get => "get",
            Op::Scan => "scan",
            Op::Invoke => "invoke",
            Op::Hostile => "hostile",
            Op::RefusedInstall => "refused_install",
            Op::RollbackCheck => "rollback_check",
            Op::StateChange => "state_change",
            Op::Recreate => "recreate",
            Op::Checkpoint => "checkpoint",
            Op::VerifyAudit => "verify_audit",
        }
    }
}

/// What an operation was allowed to be refused for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Allowed {
    /// The tenant was not active at some point of the operation.
    pub(crate) state: bool,
    /// The tenant has a quota.
    pub(crate) quota: bool,
}

/// Most unexpected messages kept (and printed) per run.
const MAX_MESSAGES: usize = 50;

/// The shared counters of a run.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    ops: [AtomicU64; Op::ALL.len()],
    refusals_total: AtomicU64,
    refusals: Mutex<BTreeMap<String, u64>>,
    unexpected: AtomicU64,
    messages: Mutex<Vec<String>>,
}

impl Tally {
    /// Counts one operation of kind `op`, whatever its outcome.
    pub(crate) fn op(&self, op: Op) {
        self.ops[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a typed refusal of kind `kind`.
    pub(crate) fn refused(&self, kind: &str) {
        self.refusals_total.fetch_add(1, Ordering::Relaxed);
        let mut map = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(kind.to_owned()).or_default() += 1;
    }

    /// Records an unexpected outcome: counted, printed (the first [`MAX_MESSAGES`]) and kept.
    pub(crate) fn unexpected(&self, what: String) {
        let n = self.unexpected.fetch_add(1, Ordering::Relaxed);
        if (n as usize) < MAX_MESSAGES {
            eprintln!("soak: UNEXPECTED: {what}");
            self.messages
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(what);
        }
    }

    /// Operations so far, by kind, in [`Op::ALL`] order.
    pub(crate) fn ops(&self) -> [u64; Op::ALL.len()] {
        std::array::from_fn(|i| self.ops[i].load(Ordering::Relaxed))
    }

    /// Typed refusals so far.
    pub(crate) fn refusals_total(&self) -> u64 {
        self.refusals_total.load(Ordering::Relaxed)
    }

    /// Typed refusals so far, by kind.
    pub(crate) fn refusals(&self) -> BTreeMap<String, u64> {
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Unexpected outcomes so far.
    pub(crate) fn unexpected_total(&self) -> u64 {
        self.unexpected.load(Ordering::Relaxed)
    }

    /// The messages of the first unexpected outcomes.
    pub(crate) fn messages(&self) -> Vec<String> {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts an engine error of operation `what` as a refusal or as unexpected.
    pub(crate) fn engine_error(&self, what: &str, err: &Error, allowed: Allowed) {
        match engine_refusal(err, allowed) {
            Some(kind) => self.refused(&format!("engine.{kind}")),
            None => self.unexpected(format!("{what}: {err:?} ({err})")),
        }
    }

    /// Counts an error of a benign plugin's invocation as a refusal or as unexpected.
    pub(crate) fn invoke_error(&self, what: &str, err: &InvokeError, allowed: Allowed) {
        let kind = invoke_refusal(err, allowed).map(|k| format!("invoke.{k}"));
        self.settle(kind, || format!("{what}: {err:?} ({err})"));
    }

    /// Counts a hostile invocation's error: a refusal if its variant is one of `expected` (or an
    /// allowed engine, busy or state refusal), unexpected otherwise.
    pub(crate) fn hostile_error(
        &self,
        what: &str,
        err: &InvokeError,
        expected: &[&str],
        allowed: Allowed,
    ) {
        let variant = variant_name(err);
        let kind = if expected.contains(&variant.as_str()) {
            Some(format!("hostile.{variant}"))
        } else {
            invoke_refusal(err, allowed).map(|k| format!("hostile.{k}"))
        };
        self.settle(kind, || {
            format!("{what}: {err:?} ({err}), expected one of {expected:?}")
        });
    }

    /// Counts a refused install: a refusal if its variant is one of `expected` (or an allowed
    /// engine refusal), unexpected otherwise.
    pub(crate) fn install_error(
        &self,
        what: &str,
        err: &HostError,
        expected: &[&str],
        allowed: Allowed,
    ) {
        let variant = variant_name(err);
        let kind = match err {
            _ if expected.contains(&variant.as_str()) => Some(format!("install.{variant}")),
            HostError::Engine(e) => engine_refusal(e, allowed).map(|k| format!("install.{k}")),
            _ => None,
        };
        self.settle(kind, || {
            format!("{what}: {err:?} ({err}), expected one of {expected:?}")
        });
    }

    /// Counts a refusal of `kind`, or, if there is none, the unexpected outcome `message`.
    fn settle(&self, kind: Option<String>, message: impl FnOnce() -> String) {
        match kind {
            Some(kind) => self.refused(&kind),
            None => self.unexpected(message()),
        }
    }
}

/// The kind of an invocation error that the load may cause, or `None`.
fn invoke_refusal(err: &InvokeError, allowed: Allowed) -> Option<&'static str> {
    match err {
        InvokeError::Engine(e) => engine_refusal(e, allowed),
        InvokeError::Busy { .. } => Some("Busy"),
        // An invocation's first host call begins its write transaction, which waits for the
        // tenant's write lock (held by other writers until their commit is synced) for up to
        // the engine's lock timeout, past the invocation's deadline: under contention on one
        // tenant and a slow disk the deadline ends it. Typed, and caused by the load.
        InvokeError::Timeout { .. } => Some("Timeout(waited for the tenant's write lock)"),
        // With `--remove-plugins-first`, between the removal and the deletion.
        InvokeError::UnknownPlugin(_) if allowed.state => {
            Some("UnknownPlugin(removed before deletion)")
        }
        // The plugin's own error when a host call was refused (read-only, quota): the SDK
        // turns the status into the plugin's error message. A hostile plugin fails so before
        // it can misbehave.
        InvokeError::Plugin(_) if allowed.state || allowed.quota => {
            Some("Plugin(refused host call)")
        }
        _ => None,
    }
}

/// The kind of an engine error that the load may cause, or `None`.
fn engine_refusal(err: &Error, allowed: Allowed) -> Option<&'static str> {
    match err {
        Error::TenantSuspended(_) if allowed.state => Some("TenantSuspended"),
        Error::TenantReadOnly(_) if allowed.state => Some("TenantReadOnly"),
        Error::TenantDeleted(_) if allowed.state => Some("TenantDeleted"),
        Error::UnknownTenant(_) if allowed.state => Some("UnknownTenant"),
        Error::QuotaExceeded { .. } if allowed.quota => Some("QuotaExceeded"),
        // Retryable by contract; the soak holds no write transaction for long, so these are
        // counted (and shown) rather than failing the run.
        Error::LockTimeout { .. } => Some("LockTimeout"),
        _ => None,
    }
}

/// The name of an enum value's variant, from its `Debug` form (`OutOfFuel { limit: 5 }` gives
/// `OutOfFuel`).
pub(crate) fn variant_name(value: &dyn std::fmt::Debug) -> String {
    let text = format!("{value:?}");
    let end = text.find(['(', ' ', '{']).unwrap_or(text.len());
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_and_classification() {
        assert_eq!(
            variant_name(&InvokeError::OutOfFuel { limit: 3 }),
            "OutOfFuel"
        );
        assert_eq!(variant_name(&InvokeError::Trap("x".into())), "Trap");
        let t = Tally::default();
        let suspended = Error::TenantSuspended(tenantry_engine::TenantId::from_raw(1));
        t.engine_error("get", &suspended, Allowed::default());
        assert_eq!(t.unexpected_total(), 1, "a refusal of an active tenant");
        let allowed = Allowed {
            state: true,
            quota: false,
        };
        t.engine_error("get", &suspended, allowed);
        assert_eq!(t.refusals()["engine.TenantSuspended"], 1);
        t.hostile_error(
            "spin",
            &InvokeError::Trap("x".into()),
            &["OutOfFuel"],
            allowed,
        );
        assert_eq!(t.unexpected_total(), 2);
    }
}
