//! The plugin host on the PostgreSQL backend: two hosts on two engines (app nodes) that share
//! one database. Needs `TENANTRY_PG_URL` (`eval "$(.ci/pg.sh up)"`); without it, skipped with
//! a printed line unless `CI=true` or `TENANTRY_REQUIRE_PG=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use tenantry_engine::{Context, Engine, EngineOptions, Operator};
use tenantry_host::{HostConfig, InvokeError, PluginHost};
use tenantry_tests::plugins;

fn node(url: &str, schema: &str) -> (Engine, PluginHost) {
    let mut options = EngineOptions::default();
    options.postgres_schema = schema.to_owned();
    let engine = Engine::open_postgres_with(url, options).unwrap();
    let host = PluginHost::new(engine.clone(), HostConfig::default()).unwrap();
    (engine, host)
}

#[test]
fn a_plugin_installed_through_one_node_runs_on_the_other_at_its_next_invocation() {
    let Some(url) = tenantry_tests::pg_url() else {
        return;
    };
    let schema = format!("host_{}", std::process::id());
    let (a, host_a) = node(&url, &schema);
    let (_b, host_b) = node(&url, &schema);
    let op = Operator::new("ops:test");
    let t = a.create_tenant(&op, "acme").unwrap();
    let ctx = Context::tenant(t).actor("user:1");

    host_a.install(&ctx, "counter", plugins::COUNTER).unwrap();
    assert_eq!(
        host_b.invoke(&ctx, "counter", "increment", b"").unwrap(),
        b"1"
    );
    assert_eq!(
        host_a.invoke(&ctx, "counter", "increment", b"").unwrap(),
        b"2"
    );
    assert_eq!(host_b.invoke(&ctx, "counter", "get", b"").unwrap(), b"2");

    // Replaced through node a by a module without `increment`: node b, which has the old
    // version compiled, runs the new one at its next invocation.
    host_a.install(&ctx, "counter", plugins::PROJECTS).unwrap();
    let err = host_b
        .invoke(&ctx, "counter", "increment", b"")
        .unwrap_err();
    assert!(
        matches!(err, InvokeError::UnknownFunction { .. }),
        "{err:?}"
    );

    // Removed through node b: node a, which installed it, no longer runs it.
    host_a.invoke(&ctx, "counter", "list", b"").ok();
    host_b.remove(&ctx, "counter").unwrap();
    let err = host_a.invoke(&ctx, "counter", "list", b"").unwrap_err();
    assert!(matches!(err, InvokeError::UnknownPlugin(_)), "{err:?}");

    assert!(a.verify_audit(t).unwrap() > 10);
}
