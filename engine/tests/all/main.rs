//! Integration tests of the engine's public API, one module per topic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod audit;
mod format;
mod helpers;
mod isolation;
mod lifecycle;
mod quota;
mod txn;
mod unscoped;
mod wal;

use std::path::{Path, PathBuf};

pub use helpers::{ctx, handle, op, put};
use tenantry_engine::{Durability, Engine, EngineOptions};

/// The write-ahead log beside the database file at `path`.
pub fn log_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// An in-memory engine without fsync, for speed.
pub fn engine() -> Engine {
    let mut options = EngineOptions::default();
    options.durability = Durability::None;
    engine_with(options)
}

/// An engine of the backend these tests run on (this binary: redb, in memory) with `options`.
/// The PostgreSQL binary (`tests/pg`) runs the same test modules with its own.
pub fn engine_with(options: EngineOptions) -> Engine {
    Engine::in_memory_with(options).unwrap()
}
