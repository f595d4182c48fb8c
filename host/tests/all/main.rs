//! Integration tests of the plugin host with real plugins compiled from `plugins/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod audit;
mod get_into;
mod hardening;
mod hostile;
mod isolation;
mod lifecycle;
mod transactions;

use tenantry_engine::{Context, Durability, Engine, EngineOptions, Operator, TenantId};
use tenantry_host::{HostConfig, PluginHost};

pub use tenantry_tests::plugins;

pub fn op() -> Operator {
    Operator::new("ops:test")
}

pub fn engine() -> Engine {
    let mut options = EngineOptions::default();
    options.durability = Durability::None;
    Engine::in_memory_with(options).unwrap()
}

pub fn host(engine: &Engine) -> PluginHost {
    PluginHost::new(engine.clone(), HostConfig::default()).unwrap()
}

pub fn ctx(t: TenantId) -> Context {
    Context::tenant(t)
        .actor("user:7")
        .ip("198.51.100.7")
        .request_id("req-9")
}

/// An engine, a host and one tenant with `name` installed from `wasm`.
pub fn setup(name: &str, wasm: &[u8]) -> (Engine, PluginHost, TenantId) {
    let engine = engine();
    let host = host(&engine);
    let t = engine.create_tenant(&op(), "acme").unwrap();
    host.install(&ctx(t), name, wasm).unwrap();
    (engine, host, t)
}

pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}
