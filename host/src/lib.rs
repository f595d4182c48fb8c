//! # tenantry-host
//!
//! Runs tenants' WebAssembly plugins on a [`tenantry_engine::Engine`] with wasmtime.
//!
//! * **Isolation.** A store holds exactly one [`tenantry_engine::TenantHandle`], built from the
//!   invocation's context; nothing in the ABI names a tenant, so a plugin reaches its own
//!   tenant's tables only, however it crafts table names and keys.
//! * **One invocation, one transaction.** Everything an invocation writes commits when its
//!   function returns success and is rolled back on a trap, a limit, an error return or a host
//!   failure. Invocations of one tenant are serializable; different tenants run in parallel.
//!   Every invocation gets a fresh instance from a pooling allocator, so no state leaks.
//! * **Limits** ([`Limits`]): fuel, a wall-clock deadline that counts host calls, memory, host
//!   calls, bytes read and written, input and output size, concurrency per tenant and instance
//!   slots, module size and compile time. A breach names the limit and its value.
//! * **Audit.** Every host call that touches data or the log is an audit entry with the
//!   context's actor, ip and request id and the plugin's name, version and invocation id as its
//!   origin; a failed invocation is recorded with its failure and calls, its data changes not.
//!
//! The ABI is documented in `sdk/ABI.md`; plugin authors use the `tenantry-sdk` crate.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod catalog;
mod config;
mod error;
mod host;
mod hostcalls;
mod invoke;
mod memory;
mod records;
mod runtime;
mod validate;

pub use catalog::PluginInfo;
pub use config::{HostConfig, Limits};
pub use error::{HostError, InvokeError};
pub use host::PluginHost;
