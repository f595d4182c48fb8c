//! The same plugin installed by two tenants sees only its own tenant's data, and no
//! invocation sees what an earlier one left in its instance.

use serde_json::json;
use tenantry_host::{HostConfig, PluginHost};

use super::{ctx, engine, host, json, op, plugins, wat};

#[test]
fn batch_update_with_another_tenants_ids_touches_nothing() {
    let engine = engine();
    let host = host(&engine);
    let acme = engine.create_tenant(&op(), "acme").unwrap();
    let globex = engine.create_tenant(&op(), "globex").unwrap();
    for t in [acme, globex] {
        host.install(&ctx(t), "projects", plugins::PROJECTS)
            .unwrap();
    }
    for name in ["apollo", "gemini", "mercury"] {
        host.invoke(
            &ctx(acme),
            "projects",
            "create",
            json!({ "name": name }).to_string().as_bytes(),
        )
        .unwrap();
    }
    let id = host
        .invoke(
            &ctx(globex),
            "projects",
            "create",
            br#"{"name":"globex-1"}"#,
        )
        .unwrap();
    assert_eq!(id, b"1");
    // Globex sends acme's ids (2, 3) and one nobody has (99).
    let out = host
        .invoke(
            &ctx(globex),
            "projects",
            "batch_update",
            br#"{"ids":[1,2,3,99],"changes":{"name":"pwned"}}"#,
        )
        .unwrap();
    assert_eq!(
        json(&out),
        json!({ "updated": [1], "not_found": [2, 3, 99] })
    );
    let acme_list = json(&host.invoke(&ctx(acme), "projects", "list", b"").unwrap());
    let names: Vec<_> = acme_list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["apollo", "gemini", "mercury"]);
    let globex_list = json(&host.invoke(&ctx(globex), "projects", "list", b"").unwrap());
    assert_eq!(globex_list, json!([{ "id": 1, "name": "pwned" }]));
    for t in [acme, globex] {
        engine.verify_audit(t).unwrap();
    }
}

/// A WAT plugin that tries every table name and key trick it can still only reach its own
/// tenant: the same module installed by two tenants writes and reads separate data.
#[test]
fn crafted_table_names_and_keys_stay_in_the_tenant() {
    let engine = engine();
    let host = host(&engine);
    let a = engine.create_tenant(&op(), "a").unwrap();
    let b = engine.create_tenant(&op(), "b").unwrap();
    let module = wat(include_str!("../../../plugins/example-wat/store.wat"));
    for t in [a, b] {
        host.install(&ctx(t), "store", &module).unwrap();
    }
    host.invoke(&ctx(a), "store", "store", b"secret of a")
        .unwrap();
    // b's store reads back only what b stored.
    assert_eq!(host.invoke(&ctx(b), "store", "store", b"b").unwrap(), b"b");
    let u = engine.unscoped_unsafe(&op(), "test isolation").unwrap();
    assert_eq!(
        u.get(a, "notes", b"last").unwrap(),
        Some(b"secret of a".to_vec())
    );
    assert_eq!(u.get(b, "notes", b"last").unwrap(), Some(b"b".to_vec()));
    // Reserved tables (where plugins themselves are stored) are refused to plugins.
    let hostile = host.invoke(&ctx(a), "h", "bad_table_names", b"");
    assert!(hostile.is_err(), "the hostile plugin is not installed here");
    host.install(&ctx(a), "hostile", plugins::HOSTILE).unwrap();
    let names = json(
        &host
            .invoke(&ctx(a), "hostile", "bad_table_names", b"")
            .unwrap(),
    );
    assert!(
        names
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s == "invalid_table_name"),
        "{names}"
    );
}

/// A plugin asking for reserved tables (where plugins themselves are stored) or oversized keys
/// gets statuses, never another table's data.
#[test]
fn reserved_tables_and_oversized_keys_are_statuses() {
    let module = r#"(module
      (import "tenantry:v1" "kv_get" (func $get (param i32 i32 i32 i32) (result i64)))
      (import "tenantry:v1" "output" (func $output (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "_plugins")
      (data (i32.const 32) "counter")
      (data (i32.const 48) "notes")
      (func (export "tenantry_abi_version") (result i32) (i32.const 1))
      (func (export "tenantry_alloc") (param i32) (result i32) (i32.const 1024))
      (func $answer (param $code i64) (result i32)
        (i64.store (i32.const 512) (local.get $code))
        (drop (call $output (i32.const 512) (i32.const 8)))
        (i32.const 0))
      (func (export "reserved") (param i32 i32) (result i32)
        (call $answer (call $get (i32.const 16) (i32.const 8) (i32.const 32) (i32.const 7))))
      (func (export "big_key") (param i32 i32) (result i32)
        (call $answer (call $get (i32.const 48) (i32.const 5) (i32.const 0) (i32.const 5000))))
    )"#;
    let (_engine, host, t) = super::setup("probe", &wat(module));
    host.install(&ctx(t), "counter", plugins::COUNTER).unwrap();
    let code = |f| {
        i64::from_le_bytes(
            host.invoke(&ctx(t), "probe", f, b"")
                .unwrap()
                .try_into()
                .unwrap(),
        )
    };
    assert_eq!(code("reserved"), -2);
    assert_eq!(code("big_key"), -3);
}

/// Reads what the previous invocation left: the i32 at 100 (7 in the module's data), the memory
/// size on entry (1 page), and an i32 in a page it grows (0); then changes all three.
const LEFTOVERS: &str = r#"(module
  (import "tenantry:v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "\07\00\00\00")
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "leftovers") (param i32 i32) (result i32)
    (i32.store (i32.const 200) (i32.load (i32.const 100)))
    (i32.store (i32.const 204) (memory.size))
    (drop (memory.grow (i32.const 1)))
    (i32.store (i32.const 208) (i32.load (i32.const 65636)))
    (i32.store (i32.const 100) (i32.const 8))
    (i32.store (i32.const 65636) (i32.const 42))
    (drop (call $output (i32.const 200) (i32.const 12)))
    (i32.const 0)))"#;

#[test]
fn every_invocation_starts_from_the_initial_memory_whatever_the_pool_keeps() {
    for keep_resident in [0, 4 << 10, 64 << 10, 1 << 20] {
        let engine = engine();
        let mut config = HostConfig::default();
        config.pool_keep_resident_bytes = keep_resident;
        let host = PluginHost::new(engine.clone(), config).unwrap();
        let t = engine.create_tenant(&op(), "acme").unwrap();
        host.install(&ctx(t), "left", &wat(LEFTOVERS)).unwrap();
        for _ in 0..3 {
            let out = host.invoke(&ctx(t), "left", "leftovers", b"").unwrap();
            let words: Vec<i32> = out
                .chunks(4)
                .map(|w| i32::from_le_bytes(w.try_into().unwrap()))
                .collect();
            assert_eq!(words, [7, 1, 0], "keep_resident {keep_resident}");
        }
    }
}
