//! The engine's contract tests on the PostgreSQL backend: the same test modules as
//! `tests/all` (isolation, lifecycle, transactions, quotas, the escape hatch, the model-based
//! isolation test), each test on a fresh schema, plus tests of two engines (app nodes) on one
//! database.
//!
//! They need a server: `eval "$(.ci/pg.sh up)"` starts a primary and a synchronous standby and
//! sets `TENANTRY_PG_URL`. Without it the binary prints that it skipped and passes, unless
//! `CI=true` or `TENANTRY_REQUIRE_PG=1`, where a missing server fails it.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../all/helpers.rs"]
mod helpers;
#[path = "../all/isolation.rs"]
mod isolation;
#[path = "../all/lifecycle.rs"]
mod lifecycle;
mod nodes;
#[path = "../all/quota.rs"]
mod quota;
#[path = "../all/txn.rs"]
mod txn;
#[path = "../all/unscoped.rs"]
mod unscoped;

use std::sync::atomic::{AtomicU32, Ordering};

pub use helpers::{ctx, handle, op, put};
use tenantry_engine::{Durability, Engine, EngineOptions};

/// The server's connection string; exits the binary (passing) when there is none, unless a
/// server is required.
pub fn pg_url() -> String {
    if let Ok(url) = std::env::var("TENANTRY_PG_URL") {
        return url;
    }
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("TENANTRY_REQUIRE_PG").is_ok_and(|v| v == "1");
    if required {
        panic!(
            "TENANTRY_PG_URL is not set, and CI=true or TENANTRY_REQUIRE_PG=1 requires PostgreSQL: run eval \"$(.ci/pg.sh up)\""
        );
    }
    println!("skipped: TENANTRY_PG_URL not set (eval \"$(.ci/pg.sh up)\" starts a server)");
    std::process::exit(0);
}

/// A schema no other test uses.
pub fn fresh_schema() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Options for an engine on `schema`.
pub fn options_on(schema: &str) -> EngineOptions {
    let mut options = EngineOptions::default();
    options.postgres_schema = schema.to_owned();
    options
}

pub fn engine() -> Engine {
    let mut options = EngineOptions::default();
    options.durability = Durability::None;
    engine_with(options)
}

/// An engine on a fresh schema with `options`.
pub fn engine_with(mut options: EngineOptions) -> Engine {
    options.postgres_schema = fresh_schema();
    Engine::open_postgres_with(&pg_url(), options).unwrap()
}
