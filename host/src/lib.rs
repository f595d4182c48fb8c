//! WebAssembly plugin host for tenantry.
//!
//! Placeholder until the plugin-host issue lands: the crate exists so the workspace layout is
//! final and the engine's API is shaped for its one consumer.
#![forbid(unsafe_code)]

pub use tenantry_engine as engine;
