//! The in-memory registry of tenants: ids, names, states, table ids and write locks.
//!
//! It mirrors `tenantry.tenants` so that opening a handle and checking a tenant's state cost no
//! I/O. Only the commit pipeline changes it, after the redb transaction that made the change has
//! committed, so it never shows a state that is not durable (with `Durability::Immediate`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{Error, Result};
use crate::keys::TableId;
use crate::types::{TenantId, TenantState};

/// What every handle of one tenant shares.
#[derive(Debug)]
pub(crate) struct TenantShared {
    pub(crate) id: TenantId,
    state: AtomicU8,
    write_held: Mutex<bool>,
    write_released: Condvar,
    tables: RwLock<HashMap<String, TableId>>,
}

impl TenantShared {
    pub(crate) fn new(id: TenantId, state: TenantState) -> Self {
        TenantShared {
            id,
            state: AtomicU8::new(state.to_u8()),
            write_held: Mutex::new(false),
            write_released: Condvar::new(),
            tables: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn state(&self) -> TenantState {
        // Only `TenantState::to_u8` values are ever stored here (records are decoded, and
        // refused if damaged, before they reach the registry); were another byte to appear,
        // it would read as suspended: no access, and nothing deleted.
        TenantState::from_u8(self.state.load(Ordering::Acquire)).unwrap_or(TenantState::Suspended)
    }

    /// Only [`Registry::set_state`] calls it, which also bumps the state generation that
    /// snapshots rely on.
    fn set_state(&self, state: TenantState) {
        self.state.store(state.to_u8(), Ordering::Release);
    }

    /// Fails unless the tenant may be read.
    pub(crate) fn check_readable(&self) -> Result<()> {
        match self.state() {
            TenantState::Active | TenantState::ReadOnly => Ok(()),
            TenantState::Suspended => Err(Error::TenantSuspended(self.id)),
            TenantState::Deleted => Err(Error::TenantDeleted(self.id)),
        }
    }

    /// Fails unless the tenant may be written.
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_readable()?;
        match self.state() {
            TenantState::ReadOnly => Err(Error::TenantReadOnly(self.id)),
            _ => Ok(()),
        }
    }

    pub(crate) fn cached_table(&self, name: &str) -> Option<TableId> {
        self.tables.read().get(name).copied()
    }

    pub(crate) fn remember_table(&self, name: &str, id: TableId) {
        self.tables.write().insert(name.to_owned(), id);
    }

    /// Takes the tenant's write lock, waiting at most `timeout`.
    pub(crate) fn lock_writes(self: &Arc<Self>, timeout: Duration) -> Result<WriteLockGuard> {
        // A timeout too long to add to the clock waits as long as it takes.
        let deadline = Instant::now().checked_add(timeout);
        let mut held = self.write_held.lock();
        while *held {
            let Some(deadline) = deadline else {
                self.write_released.wait(&mut held);
                continue;
            };
            if self
                .write_released
                .wait_until(&mut held, deadline)
                .timed_out()
                && *held
            {
                return Err(Error::LockTimeout {
                    tenant: self.id,
                    waited: timeout,
                });
            }
        }
        *held = true;
        Ok(WriteLockGuard {
            tenant: Arc::clone(self),
        })
    }
}

/// Holds one tenant's write lock until dropped.
#[derive(Debug)]
pub(crate) struct WriteLockGuard {
    tenant: Arc<TenantShared>,
}

impl Drop for WriteLockGuard {
    fn drop(&mut self) {
        *self.tenant.write_held.lock() = false;
        self.tenant.write_released.notify_one();
    }
}

#[derive(Debug, Default)]
struct RegistryInner {
    by_id: HashMap<TenantId, Arc<TenantShared>>,
    by_name: HashMap<String, TenantId>,
}

/// Every tenant the database has ever had, deleted ones included.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    inner: RwLock<RegistryInner>,
    /// Bumped after every change of a tenant's state: a snapshot that found its tenant readable
    /// at one value knows the state still holds while the value has not moved, which one load
    /// of a value every snapshot shares tells it (see `Snapshot::check_readable`).
    states: Arc<AtomicU64>,
}

impl Registry {
    pub(crate) fn get(&self, id: TenantId) -> Result<Arc<TenantShared>> {
        self.inner
            .read()
            .by_id
            .get(&id)
            .cloned()
            .ok_or(Error::UnknownTenant(id))
    }

    /// The state generation (see [`Registry::states`]).
    pub(crate) fn state_generation(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.states)
    }

    pub(crate) fn id_of(&self, name: &str) -> Option<TenantId> {
        self.inner.read().by_name.get(name).copied()
    }

    /// Adds a tenant; a live tenant's name becomes resolvable.
    pub(crate) fn insert(&self, id: TenantId, name: &str, state: TenantState) {
        let mut inner = self.inner.write();
        inner
            .by_id
            .insert(id, Arc::new(TenantShared::new(id, state)));
        if state != TenantState::Deleted {
            inner.by_name.insert(name.to_owned(), id);
        }
    }

    /// Adds a tenant, or brings a known one's state up to `state`: how a registry that
    /// mirrors a store shared with other engines (PostgreSQL) learns their changes.
    #[cfg(feature = "postgres")]
    pub(crate) fn upsert(&self, id: TenantId, name: &str, state: TenantState) {
        let known = self.inner.read().by_id.get(&id).map(|t| t.state());
        match known {
            None => self.insert(id, name, state),
            Some(old) if old != state => self.set_state(id, state),
            Some(_) => {}
        }
    }

    pub(crate) fn set_state(&self, id: TenantId, state: TenantState) {
        let mut inner = self.inner.write();
        if let Some(t) = inner.by_id.get(&id) {
            t.set_state(state);
        }
        self.states.fetch_add(1, Ordering::Release);
        if state == TenantState::Deleted {
            inner.by_name.retain(|_, v| *v != id);
        }
    }

    pub(crate) fn remember_table(&self, id: TenantId, name: &str, table: TableId) {
        if let Some(t) = self.inner.read().by_id.get(&id) {
            t.remember_table(name, table);
        }
    }
}
