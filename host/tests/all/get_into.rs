//! `kv_get_into` (ABI §6.10): the value lands in the guest's buffer when it fits, and only then;
//! the SDK's `kv::get` and `kv::get_value` use it, falling back to `result_read`.

use tenantry_engine::{AuditQuery, Outcome};
use tenantry_host::{HostConfig, InvokeError, Limits, PluginHost};
use tenantry_sdk::wire::Status;

use super::{ctx, engine, op, plugins, setup, wat};

const FILL: u8 = 0xAA;

/// Invokes `function` of the get-into WAT plugin: its return value and 16 bytes of its
/// destination buffer.
fn call(host: &PluginHost, t: tenantry_engine::TenantId, function: &str) -> (i64, Vec<u8>) {
    let out = host.invoke(&ctx(t), "get", function, b"").unwrap();
    assert_eq!(out.len(), 24, "{function}");
    let code = i64::from_le_bytes(out[..8].try_into().unwrap());
    (code, out[8..].to_vec())
}

fn filled(prefix: &[u8]) -> Vec<u8> {
    let mut bytes = prefix.to_vec();
    bytes.resize(16, FILL);
    bytes
}

fn get_into_plugin() -> (
    tenantry_engine::Engine,
    PluginHost,
    tenantry_engine::TenantId,
) {
    let (engine, host, t) = setup("get", &wat(plugins::example_wat::GET_INTO));
    host.invoke(&ctx(t), "get", "setup", b"").unwrap();
    (engine, host, t)
}

#[test]
fn the_value_is_copied_when_it_fits_and_only_then() {
    let (_engine, host, t) = get_into_plugin();
    assert_eq!(call(&host, t, "fits"), (5, filled(b"hello")));
    assert_eq!(call(&host, t, "exact"), (5, filled(b"hello")));
    // Too small: the destination is untouched, the value waits in the result buffer.
    let mut expected = vec![FILL; 8];
    expected.extend_from_slice(b"hello");
    assert_eq!(call(&host, t, "too_small"), (5, filled(&expected)));
    assert_eq!(call(&host, t, "zero_capacity"), (5, filled(b"")));
    assert_eq!(call(&host, t, "empty_value"), (0, filled(b"")));
}

#[test]
fn a_miss_empties_the_result_buffer() {
    let (_engine, host, t) = get_into_plugin();
    assert_eq!(call(&host, t, "miss_empties_result"), (0, filled(b"")));
}

#[test]
fn statuses_write_nothing() {
    let (_engine, host, t) = get_into_plugin();
    let cases = [
        ("not_found", Status::NotFound),
        ("bad_table", Status::InvalidTableName),
        ("key_too_large", Status::KeyTooLarge),
    ];
    for (function, status) in cases {
        assert_eq!(
            call(&host, t, function),
            (i64::from(status.code()), filled(b"")),
            "{function}"
        );
    }
}

#[test]
fn bad_destinations_end_the_invocation_before_anything_is_read() {
    let (engine, host, t) = setup("oob", &wat(plugins::hostile_wat::OOB_POINTERS));
    let before = engine.tenant_info(t).unwrap().usage;
    for function in [
        "kv_get_into_dst_oob",
        "kv_get_into_dst_overflow",
        "kv_get_into_dst_empty_past_end",
        "kv_get_into_table_oob",
    ] {
        let err = host.invoke(&ctx(t), "oob", function, b"").unwrap_err();
        assert!(
            matches!(
                &err,
                InvokeError::BadArguments {
                    function: "kv_get_into",
                    ..
                }
            ),
            "{function}: {err:?}"
        );
    }
    assert_eq!(engine.tenant_info(t).unwrap().usage.keys, before.keys);
    engine.verify_audit(t).unwrap();
}

#[test]
fn each_call_counts_toward_the_budgets_and_is_audited() {
    let (engine, host, t) = get_into_plugin();
    // One call per invocation, with its origin.
    call(&host, t, "fits");
    let log = engine
        .tenant(&ctx(t))
        .unwrap()
        .audit_log(&AuditQuery::default().limit(2))
        .unwrap();
    assert_eq!(log[0].action, "plugin.invoke");
    assert_eq!(log[1].action, "kv.get");
    assert_eq!(log[1].target.as_deref(), Some("t/k"));
    assert_eq!(log[1].outcome, Outcome::Ok);
    assert!(
        log[1]
            .origin
            .as_deref()
            .is_some_and(|o| o.starts_with("plugin get@")),
        "{:?}",
        log[1].origin
    );

    // Key and value count against the read budget: 1 + 5 bytes.
    host.set_limits(&op(), t, Limits::default().bytes_read(5))
        .unwrap();
    let err = host.invoke(&ctx(t), "get", "fits", b"").unwrap_err();
    assert!(
        matches!(err, InvokeError::ReadLimit { limit: 5 }),
        "{err:?}"
    );
    host.set_limits(&op(), t, Limits::default().host_calls(0))
        .unwrap();
    let err = host.invoke(&ctx(t), "get", "fits", b"").unwrap_err();
    assert!(
        matches!(err, InvokeError::HostCallLimit { limit: 0 }),
        "{err:?}"
    );
}

#[test]
fn sdk_reads_values_longer_than_its_inline_buffer() {
    let engine = engine();
    let host = PluginHost::new(engine.clone(), HostConfig::default()).unwrap();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    host.install(&ctx(t), "projects", plugins::PROJECTS)
        .unwrap();
    // A project record written natively with a name far longer than the SDK's 256-byte stack
    // buffer: bincode encodes a struct of one `String` like a 1-tuple of it.
    let name = "n".repeat(5000);
    let mut txn = engine.tenant(&ctx(t)).unwrap().begin_write().unwrap();
    txn.put_value("projects", &7u64.to_be_bytes(), &(name.clone(),))
        .unwrap();
    txn.commit().unwrap();
    let got = host.invoke(&ctx(t), "projects", "get", b"7").unwrap();
    let got: serde_json::Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(got["name"].as_str(), Some(name.as_str()));
    // And a short one, read inline.
    let id = host
        .invoke(&ctx(t), "projects", "create", br#"{"name":"apollo"}"#)
        .unwrap();
    let got = host.invoke(&ctx(t), "projects", "get", &id).unwrap();
    let got: serde_json::Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(got["name"].as_str(), Some("apollo"));
}
