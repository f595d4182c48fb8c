//! The engine's one error type.
//!
//! Every variant reads as a sentence and names the thing involved. [`Error::is_retryable`] tells a
//! caller whether trying the same operation again can succeed without anything else changing.
//! No redb type appears here: storage failures are carried by the opaque [`StorageError`].

use std::fmt;
use std::time::Duration;

use crate::types::TenantId;

/// A `Result` whose error is the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which quota a commit would have exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaLimit {
    /// `Quota::max_bytes`: keys plus values stored by the tenant.
    Bytes,
    /// `Quota::max_keys`: number of keys stored by the tenant.
    Keys,
}

impl fmt::Display for QuotaLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuotaLimit::Bytes => "max_bytes",
            QuotaLimit::Keys => "max_keys",
        })
    }
}

/// Errors returned by the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No tenant has this id.
    #[error("tenant {0} does not exist")]
    UnknownTenant(TenantId),
    /// The tenant has been deleted; its data is gone and its handles no longer work.
    #[error("tenant {0} has been deleted")]
    TenantDeleted(TenantId),
    /// The tenant is suspended: no handle can be opened and no operation succeeds.
    #[error("tenant {0} is suspended")]
    TenantSuspended(TenantId),
    /// The tenant is read-only: writes are refused.
    #[error("tenant {0} is read-only")]
    TenantReadOnly(TenantId),
    /// A tenant name is malformed.
    #[error("invalid tenant name {name:?}: {reason}")]
    InvalidTenantName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Another live tenant already has this name.
    #[error("a tenant named {0:?} already exists")]
    TenantNameTaken(String),
    /// A table name is malformed or reserved.
    #[error("invalid table name {name:?}: {reason}")]
    InvalidTableName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A key is longer than the engine allows.
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// Length of the rejected key.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value is longer than the engine allows.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// Length of the rejected value.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A write transaction grew past the per-transaction size cap.
    #[error("transaction of {size} bytes would exceed the limit of {max} bytes")]
    TransactionTooLarge {
        /// Size the transaction would have reached.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Committing would exceed one of the tenant's quotas; nothing was written.
    #[error("tenant {tenant} would exceed its {limit} quota of {max} (usage would be {would_be})")]
    QuotaExceeded {
        /// The tenant.
        tenant: TenantId,
        /// Which quota.
        limit: QuotaLimit,
        /// The quota's value.
        max: u64,
        /// What usage would have become.
        would_be: u64,
    },
    /// Another write transaction of the same tenant held its write lock for longer than the
    /// engine's lock timeout. Retrying can succeed.
    #[error("timed out after {waited:?} waiting for the write lock of tenant {tenant}")]
    LockTimeout {
        /// The tenant.
        tenant: TenantId,
        /// How long the caller waited.
        waited: Duration,
    },
    /// A text field of a context or operator is too long or contains a NUL byte.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An audit action in a namespace reserved for what the engine, the plugin host and
    /// operators record ([`crate::is_reserved_action`]), recorded through a handle that may not
    /// claim such actions: an `Ok` `kv.put` entry exists only if the put happened.
    #[error(
        "audit action {action:?} is reserved: actions named {} are recorded only by the engine and its components",
        crate::audit::RESERVED_ACTION_NAMESPACES.join("*, ")
    )]
    ReservedAction {
        /// The refused action (at most 128 bytes of it).
        action: String,
    },
    /// `unscoped_unsafe` was called without a reason.
    #[error("an unscoped handle needs a non-empty reason")]
    MissingReason,
    /// An unscoped handle was asked to write without writes being enabled on it.
    #[error("writes are not enabled on this unscoped handle")]
    UnscopedWritesDisabled,
    /// The audit log of a stream failed verification.
    #[error("audit log of {stream} failed verification at seq {seq}: {reason}")]
    AuditTampered {
        /// The stream: a tenant, or the system stream.
        stream: crate::audit::AuditStream,
        /// The first sequence number at which verification failed.
        seq: u64,
        /// What was found wrong.
        reason: String,
    },
    /// A stored value could not be decoded as the requested type.
    #[error("value in table {table:?} does not decode as the requested type: {reason}")]
    Decode {
        /// The table read.
        table: String,
        /// The decoder's explanation.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("value could not be encoded: {0}")]
    Encode(String),
    /// The database file is open in another process (or another `Engine` in this one).
    #[error("the database is already open in another process or engine")]
    DatabaseInUse,
    /// The engine stopped accepting commits after a storage failure; reopen it. No acknowledged
    /// commit was lost. The commits being written when the storage failed are rolled back as
    /// far as the storage still allows; if it failed while syncing them, as with any database,
    /// they may still turn out durable after reopening.
    #[error("the engine stopped after a storage failure and must be reopened: {0}")]
    EngineFailed(String),
    /// Stored engine metadata is inconsistent.
    #[error("the database is corrupted: {0}")]
    Corrupted(String),
    /// The storage layer failed.
    #[error("storage error: {0}")]
    Storage(StorageError),
    /// The database server (PostgreSQL) could not be reached, or the connection to it was lost,
    /// before the operation could have taken effect: nothing was committed. Retryable: after a
    /// failover the next attempt reaches the promoted standby.
    #[error("the database server is unavailable: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
    },
    /// The connection to the database server was lost while a commit was being made durable,
    /// and the engine could not reach the server again within the commit's deadline to find
    /// out whether it happened. It happened if and only if the tenant's audit entry at
    /// `audit_seq` has the hash `audit_head`: ask [`crate::Engine::resolve_commit`] once the
    /// server is back. Never retry the commit blindly.
    #[error(
        "the outcome of a commit of tenant {tenant} is unknown (it happened if audit entry {audit_seq} exists with the expected hash): {reason}"
    )]
    CommitOutcomeUnknown {
        /// The tenant.
        tenant: TenantId,
        /// The seq the commit's last audit entry has if it happened.
        audit_seq: u64,
        /// That entry's hash if it happened.
        audit_head: [u8; 32],
        /// What failed.
        reason: String,
    },
    /// An I/O error outside the storage layer (for example while exporting).
    #[error("I/O error")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// An I/O failure of the database file or backend.
    pub(crate) fn storage_io(io: std::io::Error) -> Self {
        Error::Storage(StorageError {
            message: "I/O error".into(),
            source: Some(Box::new(io)),
        })
    }

    /// A failure of the storage layer, described by `message`.
    #[cfg(feature = "postgres")]
    pub(crate) fn storage(
        message: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Storage(StorageError {
            message: message.into(),
            source,
        })
    }

    /// Whether retrying the same operation can succeed without any other change.
    ///
    /// Lock timeouts and an unavailable database server are retryable. Storage failures are retryable only after the engine has been
    /// reopened, so they return `false` here; everything else is a property of the input or of
    /// the tenant's state and will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::LockTimeout { .. } | Error::Unavailable { .. })
    }
}

/// An opaque failure of the storage layer (redb), kept out of the public API.
#[derive(Debug)]
pub struct StorageError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<redb::Error> for Error {
    fn from(err: redb::Error) -> Self {
        match err {
            redb::Error::DatabaseAlreadyOpen => Error::DatabaseInUse,
            redb::Error::Corrupted(msg) => Error::Corrupted(msg),
            redb::Error::Io(io) => Error::storage_io(io),
            other => Error::Storage(StorageError {
                message: other.to_string(),
                source: None,
            }),
        }
    }
}

macro_rules! from_redb {
    ($($ty:ty),*) => {$(
        impl From<$ty> for Error {
            fn from(err: $ty) -> Self {
                Error::from(redb::Error::from(err))
            }
        }
    )*};
}

from_redb!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError
);
