//! Helpers of the contract tests that do not depend on the backend (shared by `tests/all`, on
//! redb, and `tests/pg`, on PostgreSQL).

use tenantry_engine::{Context, Engine, Operator, TenantHandle, TenantId};

pub fn op() -> Operator {
    Operator::new("ops:test")
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
