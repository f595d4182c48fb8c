//! Integration tests of the engine's public API, one module per topic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod audit;
mod format;
mod isolation;
mod lifecycle;
mod quota;
mod txn;
mod unscoped;
mod wal;

use std::path::{Path, PathBuf};

use tenantry_engine::{
    Context, Durability, Engine, EngineOptions, Operator, TenantHandle, TenantId,
};

/// The write-ahead log beside the database file at `path`.
pub fn log_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

pub fn op() -> Operator {
    Operator::new("ops:test")
}

/// An in-memory engine without fsync, for speed.
pub fn engine() -> Engine {
    let mut options = EngineOptions::default();
    options.durability = Durability::None;
    Engine::in_memory_with(options).unwrap()
}

pub fn ctx(t: TenantId) -> Context {
    Context::tenant(t)
        .actor("user:1")
        .ip("203.0.113.9")
        .request_id("req-1")
}

pub fn handle(engine: &Engine, t: TenantId) -> TenantHandle {
    engine.tenant(&ctx(t)).unwrap()
}

pub fn put(h: &TenantHandle, table: &str, key: &[u8], value: &[u8]) {
    let mut tx = h.begin_write().unwrap();
    tx.put(table, key, value).unwrap();
    tx.commit().unwrap();
}
