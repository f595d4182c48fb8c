//! Plain data types shared by the public API: tenant ids, states, quotas and usage.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A tenant's id: assigned by the engine at creation, never reused.
///
/// Holding a `TenantId` grants nothing: data is reachable only through a [`crate::TenantHandle`]
/// (built by the engine's owner from a [`crate::Context`]) or an operator's
/// [`crate::UnscopedHandle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantId(u64);

impl TenantId {
    /// Wraps a raw id, for example one parsed from an operator's command line.
    pub const fn from_raw(raw: u64) -> Self {
        TenantId(raw)
    }

    /// The raw id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The lifecycle state of a tenant, enforced by the engine on every operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TenantState {
    /// Reads and writes are allowed.
    Active,
    /// Reads are allowed; writes fail with [`crate::Error::TenantReadOnly`].
    ReadOnly,
    /// No handle can be opened and every operation on an open one fails.
    Suspended,
    /// The tenant was deleted; only its audit log remains, readable by operators.
    Deleted,
}

impl TenantState {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            TenantState::Active => 0,
            TenantState::ReadOnly => 1,
            TenantState::Suspended => 2,
            TenantState::Deleted => 3,
        }
    }

    /// The state stored as `raw`; `None` for a byte no version of the engine writes (a damaged
    /// or edited record), which must never be read as any state, least of all `Deleted`: the
    /// next open would purge the tenant's data.
    pub(crate) fn from_u8(raw: u8) -> Option<Self> {
        Some(match raw {
            0 => TenantState::Active,
            1 => TenantState::ReadOnly,
            2 => TenantState::Suspended,
            3 => TenantState::Deleted,
            _ => return None,
        })
    }

    /// A lowercase name for the state, as printed in audit entries.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantState::Active => "active",
            TenantState::ReadOnly => "read-only",
            TenantState::Suspended => "suspended",
            TenantState::Deleted => "deleted",
        }
    }
}

impl fmt::Display for TenantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-tenant storage quotas; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Maximum bytes of keys plus values the tenant may store.
    pub max_bytes: Option<u64>,
    /// Maximum number of keys the tenant may store.
    pub max_keys: Option<u64>,
}

/// A tenant's exact usage, updated in the same transaction as every change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Bytes of keys plus values stored (counted against `Quota::max_bytes`).
    pub bytes: u64,
    /// Number of keys stored (counted against `Quota::max_keys`).
    pub keys: u64,
    /// Bytes of audit entries in the tenant's stream (not counted against the data quota).
    pub audit_bytes: u64,
    /// Number of entries in the tenant's audit stream.
    pub audit_entries: u64,
}

/// What the engine knows about a tenant, as listed by [`crate::Engine::list_tenants`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TenantInfo {
    /// The tenant's id.
    pub id: TenantId,
    /// The tenant's name (kept after deletion for the operator's benefit; it is free for reuse).
    pub name: String,
    /// Its lifecycle state.
    pub state: TenantState,
    /// Its current usage.
    pub usage: Usage,
    /// Its quota.
    pub quota: Quota,
    /// When it was created, in microseconds since the Unix epoch.
    pub created_micros: i64,
}
