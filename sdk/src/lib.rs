//! SDK for writing tenantry plugins in Rust.
//!
//! A plugin is a `cdylib` crate compiled for `wasm32-unknown-unknown`. Its functions run inside
//! one tenant's transaction: they read and write that tenant's tables with [`kv`], record
//! actions in the tenant's audit log with [`audit`], and exchange bytes or JSON with the
//! caller. [`export!`] makes them callable by the host.
//!
//! ```
//! use tenantry_sdk::{kv, audit, export, Json, Error};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct NewProject { name: String }
//!
//! fn create(Json(input): Json<NewProject>) -> Result<Json<u64>, Error> {
//!     let id = kv::get_value::<u64>("meta", b"next_id")?.unwrap_or(1);
//!     kv::put_value("projects", &id.to_be_bytes(), &input)?;
//!     kv::put_value("meta", b"next_id", &(id + 1))?;
//!     audit::log("project.create", Some(&input.name))?;
//!     Ok(Json(id))
//! }
//! export!(create);
//! ```
//!
//! Build it with
//! `cargo build --release --target wasm32-unknown-unknown` and a release profile of
//! `opt-level = "s"`, `lto = true`, `panic = "abort"`, `strip = true`, `codegen-units = 1`.
//!
//! A function that returns `Err` (or panics, which aborts and traps) fails its invocation and
//! all of its writes and audit entries are rolled back. Outside a wasm32 plugin every host call
//! returns [`Error::Unavailable`], so plugin logic that does not touch the host can still be
//! unit-tested natively.
//!
//! On wasm32 the SDK installs the plugin's global allocator (cargo feature `allocator`, on by
//! default): dlmalloc, as in Rust's standard library, but starting in the free part of the
//! initial memory, so that an invocation that allocates little never grows its memory, which
//! the tenantry host pays for on every invocation. A plugin with a global allocator of its own
//! turns the SDK's default features off.
//!
//! The ABI itself (imports, exports, status codes, byte layouts) is specified in `sdk/ABI.md`;
//! [`wire`] holds its constants and encodings and is shared with the host.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod abi;
pub mod audit;
mod error;
mod handler;
mod host;
pub mod kv;
pub mod log;
pub mod wire;

#[doc(hidden)]
pub use abi::invoke as __invoke;
pub use error::Error;
pub use handler::{FromInput, Handler, IntoOutput, Json};
pub use wire::Status;
