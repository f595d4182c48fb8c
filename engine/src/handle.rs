//! [`TenantHandle`]: the only way request code reaches data.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditEntry, AuditEvent, AuditQuery};
use crate::commit::CommitReceipt;
use crate::context::Actor;
use crate::engine::EngineInner;
use crate::error::Result;
use crate::registry::TenantShared;
use crate::snapshot::{Access, Snapshot};
use crate::txn::{ReadTxn, WriteTxn};
use crate::types::TenantId;

/// What a handle is bound to: one engine, one tenant, one actor.
pub(crate) struct Scope {
    pub(crate) engine: Arc<EngineInner>,
    pub(crate) tenant: Arc<TenantShared>,
    pub(crate) actor: Actor,
    pub(crate) access: Access,
    /// May record audit events in the reserved namespaces ([`crate::is_reserved_action`]):
    /// only handles that the engine's owner made for a component (the plugin host) or for an
    /// operator.
    pub(crate) component: bool,
}

impl Scope {
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        self.engine.store.snapshot(
            Arc::clone(&self.tenant),
            self.engine.registry.state_generation(),
            self.access,
            None,
        )
    }

    /// Validates an audit event recorded through this scope, reserved namespaces included.
    pub(crate) fn check_event(&self, event: &AuditEvent) -> Result<()> {
        event.validate()?;
        event.check_reserved(self.component)
    }

    pub(crate) fn begin_write(self: &Arc<Self>) -> Result<WriteTxn> {
        self.begin_write_within(self.engine.options.lock_timeout)
    }

    pub(crate) fn begin_write_within(self: &Arc<Self>, timeout: Duration) -> Result<WriteTxn> {
        self.tenant.check_readable()?;
        let started = std::time::Instant::now();
        let lock = self.tenant.lock_writes(timeout)?;
        // Taken after the lock: no other commit of this tenant can land after this snapshot.
        // On a shared store (PostgreSQL) the snapshot also takes the tenant's writer lock
        // there, which other app nodes' transactions hold, within what is left of `timeout`.
        let snapshot = self.engine.store.snapshot(
            Arc::clone(&self.tenant),
            self.engine.registry.state_generation(),
            self.access,
            Some(timeout.saturating_sub(started.elapsed())),
        )?;
        Ok(WriteTxn::new(Arc::clone(self), snapshot, lock))
    }
}

/// A handle bound to one tenant and one request context.
///
/// Everything it reaches belongs to its tenant: there is no method that takes a tenant id, so a
/// query that "forgot the tenant filter" cannot be written. Opening one costs no I/O; make one
/// per request with [`crate::Engine::tenant`]. Cloning is cheap.
#[derive(Clone)]
pub struct TenantHandle {
    scope: Arc<Scope>,
}

impl TenantHandle {
    pub(crate) fn new(scope: Scope) -> Self {
        TenantHandle {
            scope: Arc::new(scope),
        }
    }

    /// The tenant this handle is bound to.
    pub fn tenant_id(&self) -> TenantId {
        self.scope.tenant.id
    }

    /// The tenant's lifecycle state now (no I/O: the engine's in-memory copy, which every
    /// operation checks).
    pub fn state(&self) -> crate::TenantState {
        self.scope.tenant.state()
    }

    /// A consistent snapshot of the tenant's tables.
    ///
    /// # Errors
    /// A suspended or deleted tenant, or a storage error.
    pub fn begin_read(&self) -> Result<ReadTxn> {
        Ok(ReadTxn::new(self.scope.snapshot()?))
    }

    /// A write transaction. Waits for the tenant's previous write transaction to finish, at
    /// most the engine's lock timeout.
    ///
    /// # Errors
    /// [`crate::Error::LockTimeout`] (retryable), a suspended or deleted tenant, or a storage
    /// error.
    pub fn begin_write(&self) -> Result<WriteTxn> {
        self.scope.begin_write()
    }

    /// [`TenantHandle::begin_write`] waiting at most `timeout` for the tenant's write lock
    /// instead of the engine's lock timeout: for callers with a deadline of their own, such as
    /// a plugin invocation.
    ///
    /// # Errors
    /// As [`TenantHandle::begin_write`]; [`crate::Error::LockTimeout`] after `timeout`.
    pub fn begin_write_within(&self, timeout: Duration) -> Result<WriteTxn> {
        self.scope.begin_write_within(timeout)
    }

    /// Commits `events` to the tenant's audit log now, in one durable commit, without taking
    /// the tenant's write lock (so it never waits behind an open [`WriteTxn`]): for recording
    /// what happened when a transaction could not be used, as the plugin host records an
    /// invocation that failed. Each event is validated as [`WriteTxn::audit_event`] validates
    /// it, reserved actions included, and together they may not exceed the engine's
    /// transaction size cap.
    ///
    /// A component's handle ([`crate::Engine::component_handle`]) has its events' target,
    /// message and outcome reason cut to the field limits rather than refused, and may also
    /// record on a suspended tenant: the entries are then stored with outcome denied (an `Ok` or
    /// `NoChange` one becomes `Denied`), and the call fails with
    /// [`crate::Error::TenantSuspended`], as a refused commit is recorded.
    ///
    /// # Errors
    /// An invalid or reserved event or too many bytes of them (nothing is recorded), a
    /// suspended (for request code) or deleted tenant, or a storage failure.
    pub fn record_audit(&self, events: Vec<AuditEvent>) -> Result<CommitReceipt> {
        let events = if self.scope.component {
            // A component's account of what happened is cut to fit, never refused for length.
            events.into_iter().map(AuditEvent::fitted).collect()
        } else {
            self.scope.tenant.check_readable()?;
            events
        };
        let max = self.scope.engine.options.max_txn_bytes;
        let mut size = 0usize;
        for event in &events {
            self.scope.check_event(event)?;
            size = size.saturating_add(event.approx_size());
            if size > max {
                return Err(crate::Error::TransactionTooLarge { size, max });
            }
        }
        crate::txn::submit_audit(&self.scope, events)
    }

    /// The tenant's audit log, newest first.
    ///
    /// # Errors
    /// A suspended or deleted tenant, or a storage error.
    pub fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.scope.snapshot()?.audit_query(query)
    }

    /// Writes the tenant's whole audit log, oldest first, as JSON Lines.
    ///
    /// # Errors
    /// As [`TenantHandle::audit_log`], or an I/O error of `out`.
    pub fn export_audit_jsonl(&self, mut out: impl Write) -> Result<u64> {
        self.scope.snapshot()?.audit_jsonl(&mut out)
    }

    /// A handle whose audit entries name `origin` (for example a plugin, its version and an
    /// invocation id), as the plugin host does for each invocation.
    /// The origin is cut to [`crate::MAX_FIELD_LEN`] bytes.
    pub fn with_origin(&self, origin: impl Into<String>) -> TenantHandle {
        let mut origin = origin.into();
        if origin.len() > crate::MAX_FIELD_LEN {
            let mut cut = crate::MAX_FIELD_LEN;
            while !origin.is_char_boundary(cut) {
                cut -= 1;
            }
            origin.truncate(cut);
        }
        let actor = self.scope.actor.with_origin(origin);
        self.rescope(self.scope.access, actor)
    }

    fn rescope(&self, access: Access, actor: Actor) -> TenantHandle {
        TenantHandle::new(Scope {
            engine: Arc::clone(&self.scope.engine),
            tenant: Arc::clone(&self.scope.tenant),
            actor,
            access,
            component: self.scope.component,
        })
    }
}

impl std::fmt::Debug for TenantHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantHandle")
            .field("tenant", &self.scope.tenant.id)
            .field("actor", &self.scope.actor.actor)
            .finish_non_exhaustive()
    }
}
