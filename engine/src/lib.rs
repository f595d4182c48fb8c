//! # tenantry-engine
//!
//! An embedded multi-tenant storage engine on [redb](https://docs.rs/redb): one database file
//! serves many tenants, request code reaches exactly one tenant through a [`TenantHandle`], and
//! every change is recorded, in the same transaction, in a tamper-evident audit log.
//!
//! ```
//! use std::ops::Bound;
//! use tenantry_engine::{AuditQuery, Context, Engine, Operator};
//!
//! # fn main() -> Result<(), tenantry_engine::Error> {
//! let engine = Engine::in_memory()?;                  // or Engine::open("app.redb")?
//! let op = Operator::new("ops:alice");
//! let acme = engine.create_tenant(&op, "acme")?;
//!
//! // At the edge of a request: who is asking, for which tenant.
//! let ctx = Context::tenant(acme).actor("user:42").ip("203.0.113.9").request_id("req-7");
//! let t = engine.tenant(&ctx)?;                        // no I/O; one per request
//!
//! let mut tx = t.begin_write()?;
//! tx.put("projects", b"p1", b"apollo")?;
//! tx.audit("project.create", Some("created from the web app"))?;
//! let receipt = tx.commit()?;                          // durable when it returns
//!
//! let r = t.begin_read()?;
//! assert_eq!(r.get("projects", b"p1")?, Some(b"apollo".to_vec()));
//! let from_a: Vec<_> = r.range("projects", (Bound::Included(&b"a"[..]), Bound::Unbounded))?
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(from_a, vec![(b"p1".to_vec(), b"apollo".to_vec())]);
//!
//! // Who did what: newest first, with actor, ip and request id filled in by the engine.
//! let log = t.audit_log(&AuditQuery::default())?;
//! assert_eq!(log[0].action, "project.create");
//! assert_eq!(log[1].action, "kv.put");
//! assert_eq!(log[1].actor.as_deref(), Some("user:42"));
//! engine.verify_audit_against(acme, receipt.audit_seq, &receipt.audit_head)?;
//! # Ok(()) }
//! ```
//!
//! ## Trust model
//!
//! The code that owns the [`Engine`] (the application's set-up and request edge) is trusted to
//! pick the tenant from an authenticated request, as a database server trusts its superuser
//! connection. Code that holds only a [`TenantHandle`], and every plugin, reaches only that
//! tenant: no method of a handle or its transactions takes a tenant id. Operator power is a
//! distinct type, [`Operator`], which a [`Context`] can never stand in for. The one way around
//! isolation is [`Engine::unscoped_unsafe`], which needs an operator and a reason and is audited
//! in every tenant it touches.
//!
//! ## Storage layout
//!
//! All tenants share one redb table whose keys are `tenant id ‖ table id ‖ user key` with fixed
//! width ids (see the `keys` module for the byte table); every read is clamped to the
//! tenant's and table's key range. The other tables are listed in the `schema` module.
//!
//! ## Transactions and the commit pipeline
//!
//! * [`ReadTxn`] is a redb snapshot: it never blocks and is never blocked.
//! * [`WriteTxn`] takes the tenant's write lock (bounded wait, [`Error::LockTimeout`]), reads a
//!   snapshot taken after the lock, and buffers its writes: so transactions of one tenant are
//!   serializable, and an open transaction never holds redb's write lock.
//! * [`WriteTxn::commit`] queues the buffer to one committer thread, which writes every queued
//!   commit (many tenants at once) in one redb transaction, validating each against tenant
//!   state and quota first, and appending its audit entries to the tenant's hash chain in that
//!   same transaction. A refused commit writes nothing but the audit entries recording the
//!   refusal. After a storage failure the pipeline stops: pending and later commits fail with
//!   [`Error::EngineFailed`], and nothing acknowledged is lost.
//! * A batch is made durable by a write-ahead log beside the database file (`<file>-wal`):
//!   its changes are appended to the log as one record and the log is synced (one sequential
//!   write and one fsync), then the redb transaction commits without syncing, then callers are
//!   acknowledged. Every [`EngineOptions::log_checkpoint_bytes`] of log (4 MiB), a batch is
//!   committed to the database file durably instead, and the log starts again (the bytes a
//!   tenant's purge removes count as logged: they change as many pages). Opening a
//!   database replays what the durable file lacks. A durable redb commit would write every page
//!   the batch changed, scattered over the file: two per tenant in the batch. On a custom
//!   backend ([`Engine::open_backend`]) there is no log, and redb syncs each batch itself.
//! * A transaction is capped at 10 MiB (keys, values and audit entries), keys at 4 KiB, values
//!   at 16 MiB, so that no tenant can stall the shared commit.
//! * The callers of a committed batch are woken by a second thread, so the committer can start
//!   the next batch at once; a batch of a few requests is answered directly.
//!
//! ## Audit
//!
//! Each tenant's entries form a hash chain (see [`AuditEntry`] and the `audit` module). They are
//! stored in one append-only log shared by all streams, in commit order, so that a batch of many
//! tenants' commits adds its entries to a page or two rather than one page per tenant; each
//! stream is a linked list through that log, with every 64th entry indexed. Reading a stream
//! checks every link, so an entry removed or moved is reported as tampering, never skipped.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod audit;
mod commit;
mod context;
mod engine;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod keys;
#[cfg(feature = "postgres")]
mod pg;
mod registry;
mod schema;
mod snapshot;
mod store;
mod txn;
mod types;
mod unscoped;
mod wal;

pub use audit::{
    AuditEntry, AuditEvent, AuditQuery, AuditStream, MAX_ACTION_LEN, MAX_MESSAGE_LEN,
    MAX_TARGET_LEN, Outcome, check_request_action, hash_hex, is_reserved_action,
};
pub use commit::CommitReceipt;
pub use context::{Context, MAX_FIELD_LEN, Operator};
pub use engine::{Durability, Engine, EngineOptions, check_identifier};
pub use error::{Error, QuotaLimit, Result, StorageError};
pub use handle::TenantHandle;
pub use keys::{ByteKey, MAX_KEY_LEN, MAX_TABLE_NAME_LEN, MAX_VALUE_LEN, audit_target, successor};
pub use snapshot::{KeyValue, Scan};
pub use txn::{ReadTxn, WriteScan, WriteTxn, decode_value};
pub use types::{Quota, TenantId, TenantInfo, TenantState, Usage};
pub use unscoped::UnscopedHandle;

/// The items that exist only for the embedded redb backend.
pub mod redb {
    /// Implement it to open an engine on custom storage ([`crate::Engine::open_backend`],
    /// [`crate::Engine::open_backend_with_log`]), for example to inject faults in tests.
    pub use ::redb::StorageBackend;

    pub use crate::keys::ByteKey;
}

/// The same as [`redb::StorageBackend`], kept at the crate root for existing code.
pub use ::redb::StorageBackend;

/// The README's code blocks, compiled and run as doctests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
