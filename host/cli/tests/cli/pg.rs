//! `tenantry --pg URL`: the CLI operating on a live PostgreSQL database while an app node
//! (an engine in this process) keeps using it.

use std::process::{Command, Output, Stdio};

use tenantry_engine::{Context, Engine, EngineOptions, Error, Operator};

use crate::TESTKIT_WAT;

fn cli(url: &str, schema: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .args(["--pg", url, "--pg-schema", schema])
        .args(args)
        .env_remove("TENANTRY_DB")
        .env("TENANTRY_OPERATOR", "ops:cli")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(url: &str, schema: &str, args: &[&str]) -> String {
    let out = cli(url, schema, args);
    assert!(
        out.status.success(),
        "tenantry {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_cli_operates_a_live_postgres_database_beside_an_app_node() {
    let Some(url) = tenantry_tests::pg_url() else {
        return;
    };
    let schema = format!("cli_{}", std::process::id());
    let mut options = EngineOptions::default();
    options.postgres_schema = schema.clone();
    let app = Engine::open_postgres_with(&url, options).unwrap();
    let t = app
        .create_tenant(&Operator::new("ops:app"), "acme")
        .unwrap();
    let h = app.tenant(&Context::tenant(t).actor("user:1")).unwrap();
    let mut tx = h.begin_write().unwrap();
    tx.put("notes", b"k", b"v").unwrap();
    tx.commit().unwrap();

    let list: serde_json::Value =
        serde_json::from_str(&ok(&url, &schema, &["tenant", "list", "--json"])).unwrap();
    assert_eq!(list[0]["name"], "acme");
    assert_eq!(list[0]["usage"]["keys"], 1);
    ok(&url, &schema, &["audit", "verify", "acme"]);

    let dir = tempfile::tempdir().unwrap();
    let wat = dir.path().join("kit.wat");
    std::fs::write(&wat, TESTKIT_WAT).unwrap();
    ok(
        &url,
        &schema,
        &["plugin", "install", "acme", "kit", wat.to_str().unwrap()],
    );
    assert_eq!(
        ok(
            &url,
            &schema,
            &["invoke", "acme", "kit", "echo", "--input", "hi"]
        )
        .trim(),
        "hi"
    );

    // Suspended through the CLI: the app node's next commit is refused.
    ok(&url, &schema, &["tenant", "set-state", "acme", "suspended"]);
    // (Or at once, if this node has seen the change by then.)
    let suspended = |e: Error| assert!(matches!(e, Error::TenantSuspended(_)), "{e:?}");
    match h.begin_write() {
        Err(e) => suspended(e),
        Ok(mut tx) => match tx.put("notes", b"k2", b"v") {
            Err(e) => suspended(e),
            Ok(()) => suspended(tx.commit().unwrap_err()),
        },
    }
    let log: serde_json::Value = serde_json::from_str(&ok(
        &url,
        &schema,
        &["audit", "show", "acme", "--reverse", "--json"],
    ))
    .unwrap();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"plugin.install"), "{actions:?}");
    assert!(actions.contains(&"tenant.set_state"), "{actions:?}");
    ok(&url, &schema, &["audit", "verify", "--all"]);
}
