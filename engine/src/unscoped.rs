//! [`UnscopedHandle`]: the one, audited, way around tenant isolation.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::audit::{AuditEvent, AuditStream};
use crate::context::Operator;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::handle::Scope;
use crate::keys;
use crate::snapshot::KeyValue;
use crate::txn::ReadTxn;
use crate::types::TenantId;

#[derive(Debug, Default, Clone, Copy)]
struct Touched {
    keys_read: u64,
    keys_written: u64,
}

/// An operator's handle that reaches any tenant's tables by id: the escape hatch.
///
/// * Creating one needs an [`Operator`] and a non-empty reason, and is recorded in the system
///   audit stream.
/// * The first access to each tenant is recorded durably in **that tenant's** audit stream,
///   with the operator and the reason, before any of its data is returned: a tenant sees every
///   operator access to its data.
/// * Reads only, unless [`UnscopedHandle::enable_writes`] was called (itself audited); each
///   write is audited in the tenant's stream as the operator's.
/// * When the handle is dropped, a summary (tenants touched, keys read and written) is recorded
///   in the system stream and in each touched tenant's stream.
pub struct UnscopedHandle {
    engine: Engine,
    op: Operator,
    reason: String,
    writes: bool,
    touched: Mutex<BTreeMap<TenantId, Touched>>,
}

impl Engine {
    /// Opens the escape hatch; see [`UnscopedHandle`]. The name says unsafe so that
    /// `grep unsafe` finds every use.
    ///
    /// # Errors
    /// [`Error::MissingReason`], an invalid operator, or a storage error.
    pub fn unscoped_unsafe(&self, op: &Operator, reason: &str) -> Result<UnscopedHandle> {
        op.validate()?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::MissingReason);
        }
        let event = AuditEvent::new("unscoped.open").message(reason);
        event.validate()?;
        self.audit_operator(op, vec![AuditStream::System], event)?;
        Ok(UnscopedHandle {
            engine: self.clone(),
            op: op.clone(),
            reason: reason.to_owned(),
            writes: false,
            touched: Mutex::new(BTreeMap::new()),
        })
    }
}

impl UnscopedHandle {
    /// Allows writes through this handle; recorded in the system stream.
    ///
    /// # Errors
    /// A storage error.
    pub fn enable_writes(&mut self) -> Result<()> {
        let event = AuditEvent::new("unscoped.enable_writes").message(self.reason.clone());
        self.engine
            .audit_operator(&self.op, vec![AuditStream::System], event)?;
        self.writes = true;
        Ok(())
    }

    /// Opens a scope on `tenant`, recording the first access in the tenant's stream.
    fn scope(&self, tenant: TenantId) -> Result<Arc<Scope>> {
        let scope = self.engine.operator_scope(&self.op, tenant)?;
        let first = !self.touched.lock().contains_key(&tenant);
        if first {
            let event = AuditEvent::new("operator.unscoped_access")
                .target(format!("tenant {tenant}"))
                .message(self.reason.clone());
            self.engine
                .audit_operator(&self.op, vec![AuditStream::Tenant(tenant)], event)?;
            self.touched.lock().entry(tenant).or_default();
        }
        Ok(Arc::new(scope))
    }

    fn count(&self, tenant: TenantId, read: u64, written: u64) {
        let mut touched = self.touched.lock();
        let t = touched.entry(tenant).or_default();
        t.keys_read += read;
        t.keys_written += written;
    }

    fn read(&self, tenant: TenantId) -> Result<ReadTxn> {
        let scope = self.scope(tenant)?;
        Ok(ReadTxn::new(scope.snapshot()?))
    }

    /// A tenant's value, read across the isolation boundary.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`], [`Error::TenantDeleted`], invalid names, or a storage error.
    pub fn get(&self, tenant: TenantId, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self.read(tenant)?.get(table, key)?;
        self.count(tenant, 1, 0);
        Ok(value)
    }

    /// A tenant's entries whose key starts with `prefix`, read across the isolation boundary.
    ///
    /// # Errors
    /// As [`UnscopedHandle::get`].
    pub fn scan_prefix(
        &self,
        tenant: TenantId,
        table: &str,
        prefix: &[u8],
    ) -> Result<Vec<KeyValue>> {
        let entries = self
            .read(tenant)?
            .scan_prefix(table, prefix)?
            .collect::<Result<Vec<_>>>()?;
        self.count(tenant, entries.len() as u64, 0);
        Ok(entries)
    }

    /// Writes a tenant's value; needs [`UnscopedHandle::enable_writes`].
    ///
    /// # Errors
    /// [`Error::UnscopedWritesDisabled`], everything [`crate::WriteTxn::put`] and
    /// [`crate::WriteTxn::commit`] return.
    pub fn put(&self, tenant: TenantId, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        if !self.writes {
            return Err(Error::UnscopedWritesDisabled);
        }
        keys::check_key(key)?;
        let scope = self.scope(tenant)?;
        let mut txn = scope.begin_write()?;
        txn.put(table, key, value)?;
        txn.commit()?;
        self.count(tenant, 0, 1);
        Ok(())
    }

    /// Deletes a tenant's key; needs [`UnscopedHandle::enable_writes`]. Returns whether it
    /// existed.
    ///
    /// # Errors
    /// As [`UnscopedHandle::put`].
    pub fn delete(&self, tenant: TenantId, table: &str, key: &[u8]) -> Result<bool> {
        if !self.writes {
            return Err(Error::UnscopedWritesDisabled);
        }
        let scope = self.scope(tenant)?;
        let mut txn = scope.begin_write()?;
        let existed = txn.delete(table, key)?;
        txn.commit()?;
        self.count(tenant, 0, 1);
        Ok(existed)
    }

    /// The reason given when the handle was opened.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Drop for UnscopedHandle {
    fn drop(&mut self) {
        let touched = std::mem::take(&mut *self.touched.lock());
        let (read, written) = touched
            .values()
            .fold((0, 0), |(r, w), t| (r + t.keys_read, w + t.keys_written));
        let summary = AuditEvent::new("unscoped.close").message(format!(
            "{} tenant(s) touched, {read} key(s) read, {written} key(s) written; reason: {}",
            touched.len(),
            self.reason
        ));
        let mut result = self
            .engine
            .audit_operator(&self.op, vec![AuditStream::System], summary);
        for (tenant, t) in touched {
            let event = AuditEvent::new("operator.unscoped_summary")
                .target(format!("tenant {tenant}"))
                .message(format!(
                    "{} key(s) read, {} key(s) written; reason: {}",
                    t.keys_read, t.keys_written, self.reason
                ));
            let stream = vec![AuditStream::Tenant(tenant)];
            result = result.and(self.engine.audit_operator(&self.op, stream, event));
        }
        if let Err(err) = result {
            tracing::error!(%err, operator = %self.op.name(), "could not record the summary of an unscoped handle");
        }
    }
}

impl std::fmt::Debug for UnscopedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnscopedHandle")
            .field("operator", &self.op.name())
            .field("reason", &self.reason)
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}
