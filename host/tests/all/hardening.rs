//! Defects found from outside (hidden contract tests, hostile plugins written from `sdk/ABI.md`
//! alone, a 64-thread benchmark), each with the test that shows it fixed.

use std::time::{Duration, Instant};

use tenantry_engine::{AuditQuery, Outcome, TenantState};
use tenantry_host::{InvokeError, Limits};

use super::{ctx, json, op, plugins, setup, wat};

/// The plugin's entries of one invocation, newest first, by their origin.
fn entries_of_plugin(
    engine: &tenantry_engine::Engine,
    t: tenantry_engine::TenantId,
) -> Vec<tenantry_engine::AuditEntry> {
    engine
        .tenant(&ctx(t))
        .unwrap()
        .audit_log(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.origin
                .as_deref()
                .is_some_and(|o| o.starts_with("plugin "))
        })
        .collect()
}

#[test]
fn a_wait_for_the_write_lock_ends_at_the_invocation_deadline() {
    let (engine, host, t) = setup("counter", plugins::COUNTER);
    host.set_limits(
        &op(),
        t,
        Limits::default().wall_time(Duration::from_millis(200)),
    )
    .unwrap();
    // The application holds the tenant's write lock (for up to the engine's 5 s timeout).
    let app = engine.tenant(&ctx(t)).unwrap();
    let holder = app.begin_write().unwrap();
    let started = Instant::now();
    let err = host
        .invoke(&ctx(t), "counter", "increment", b"")
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, InvokeError::Timeout { limit } if limit == Duration::from_millis(200)),
        "{err:?}"
    );
    assert!(waited < Duration::from_secs(1), "waited {waited:?}");
    // The failure was recorded although the lock was still held.
    drop(holder);
    let log = app
        .audit_log(&AuditQuery::default().action_prefix("plugin.invoke"))
        .unwrap();
    assert!(
        matches!(&log[0].outcome, Outcome::Failed(reason) if reason.contains("deadline")),
        "{:?}",
        log[0]
    );
}

#[test]
fn a_read_only_tenants_plugin_cannot_append_audit_entries() {
    let (engine, host, t) = setup("hostile", plugins::HOSTILE);
    engine
        .set_tenant_state(&op(), t, TenantState::ReadOnly)
        .unwrap();
    let out = host
        .invoke(&ctx(t), "hostile", "audit_action", br#""project.note""#)
        .unwrap();
    assert_eq!(json(&out)["status"], "read_only", "{}", json(&out));
    let log = engine
        .tenant(&ctx(t))
        .unwrap()
        .audit_log(&AuditQuery::default().action_prefix("project."))
        .unwrap();
    assert!(log.is_empty(), "{log:?}");
}

#[test]
fn plugins_cannot_forge_the_engines_or_operators_actions() {
    let (engine, host, t) = setup("hostile", plugins::HOSTILE);
    for action in [
        "kv.put",
        "kv.delete",
        "KV.Put",
        "tenant.delete",
        "operator.suspend",
        "plugin.invoke",
        "plugin.install",
        "unscoped.open",
        // Look-alikes: invisible characters, another script, an escape sequence, a space.
        "\u{200B}kv.put",
        "\u{FEFF}kv.put",
        "\u{43A}v.put",
        "\u{1b}[0mkv.put",
        "kv .put",
    ] {
        let input = serde_json::to_vec(action).unwrap();
        let out = host
            .invoke(&ctx(t), "hostile", "audit_action", &input)
            .unwrap();
        assert_eq!(
            json(&out)["status"],
            "invalid_argument",
            "{action}: {}",
            json(&out)
        );
    }
    // The only entries with the plugin as origin are the host's summaries of the invocations.
    let entries = entries_of_plugin(&engine, t);
    assert_eq!(entries.len(), 13);
    assert!(entries.iter().all(|e| e.action == "plugin.invoke"));
    // An application name passes.
    let out = host
        .invoke(&ctx(t), "hostile", "audit_action", br#""project.note""#)
        .unwrap();
    assert_eq!(json(&out), serde_json::Value::Null);
}

#[test]
fn audit_entries_per_invocation_are_limited() {
    let (engine, host, t) = setup("hostile", plugins::HOSTILE);
    host.set_limits(&op(), t, Limits::default().audit_entries(300))
        .unwrap();
    let out = host
        .invoke(&ctx(t), "hostile", "audit_until_refused", b"")
        .unwrap();
    let out = json(&out);
    assert_eq!(out["status"], "limit_exceeded", "{out}");
    assert_eq!(out["writes"], 300);
    // The invocation went on and committed them.
    let flood = engine
        .tenant(&ctx(t))
        .unwrap()
        .audit_log(&AuditQuery::default().action_prefix("hostile.flood"))
        .unwrap();
    assert_eq!(flood.len(), 300);
}

#[test]
fn the_transaction_cap_is_a_status_and_the_plugin_goes_on() {
    let (engine, host, t) = setup("hostile", plugins::HOSTILE);
    host.set_limits(&op(), t, Limits::default().bytes_written(64 << 20))
        .unwrap();
    let out = host
        .invoke(&ctx(t), "hostile", "write_until_refused", b"65536")
        .unwrap();
    let out = json(&out);
    assert_eq!(out["status"], "transaction_too_large", "{out}");
    // Everything up to the cap committed, with the invocation's summary.
    let writes = out["writes"].as_u64().unwrap();
    assert!(writes > 100, "{out}");
    let handle = engine.tenant(&ctx(t)).unwrap();
    let read = handle.begin_read().unwrap();
    assert_eq!(
        read.scan_prefix("hostile", b"").unwrap().count() as u64,
        writes
    );
    let log = handle
        .audit_log(&AuditQuery::default().action_prefix("plugin.invoke"))
        .unwrap();
    assert_eq!(log[0].outcome, Outcome::Ok);
}

#[test]
fn a_failure_is_always_recorded_and_bounded() {
    let (engine, host, t) = setup("hostile", plugins::HOSTILE);
    let err = host
        .invoke(&ctx(t), "hostile", "trap_after_many_writes", b"9000")
        .unwrap_err();
    assert!(matches!(err, InvokeError::Trap(_)), "{err:?}");
    let entries = entries_of_plugin(&engine, t);
    let summary = &entries[0];
    assert_eq!(summary.action, "plugin.invoke");
    assert!(matches!(summary.outcome, Outcome::Failed(_)), "{summary:?}");
    let message = summary.message.as_deref().unwrap();
    assert!(message.contains("audit entries not recorded"), "{message}");
    // Bounded: far fewer than the 9,000 puts, in a few tens of KiB.
    assert!(entries.len() < 1_000, "{} entries", entries.len());
    // As stored: every field, the outcome's reason and the actor's included.
    let bytes: usize = entries
        .iter()
        .map(|e| {
            let reason = match &e.outcome {
                Outcome::Failed(r) | Outcome::Denied(r) => r.len(),
                _ => 0,
            };
            let fields = [
                &e.target,
                &e.message,
                &e.actor,
                &e.ip,
                &e.request_id,
                &e.origin,
            ];
            64 + e.action.len()
                + reason
                + fields
                    .iter()
                    .map(|f| f.as_ref().map_or(0, String::len))
                    .sum::<usize>()
        })
        .sum();
    assert!(bytes < 80 << 10, "{bytes} bytes");
    assert!(
        entries[1..]
            .iter()
            .all(|e| matches!(e.outcome, Outcome::Failed(_)))
    );
    assert!(
        engine
            .tenant(&ctx(t))
            .unwrap()
            .begin_read()
            .unwrap()
            .get("hostile", &0u64.to_be_bytes())
            .unwrap()
            .is_none()
    );
    engine.verify_audit(t).unwrap();
}

/// A module whose `far` passes an output range outside its memory with a length over the
/// output limit, and whose `quiet` fails without calling `output`.
const OUTPUT_WAT: &str = r#"(module
  (import "tenantry:v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "far") (param i32 i32) (result i32)
    (drop (call $output (i32.const -16) (i32.const 0x7fffffff)))
    (i32.const 0))
  (func (export "quiet") (param i32 i32) (result i32) (i32.const 1))
  (func (export "loud") (param i32 i32) (result i32)
    (memory.fill (i32.const 0) (i32.const 255) (i32.const 4096))
    (drop (call $output (i32.const 0) (i32.const 4096)))
    (i32.const 1)))"#;

#[test]
fn output_checks_its_range_first_and_a_silent_failure_has_a_message() {
    let (_engine, host, t) = setup("out", &wat(OUTPUT_WAT));
    let err = host.invoke(&ctx(t), "out", "far", b"").unwrap_err();
    assert!(
        matches!(
            err,
            InvokeError::BadArguments {
                function: "output",
                ..
            }
        ),
        "{err:?}"
    );
    let err = host.invoke(&ctx(t), "out", "quiet", b"").unwrap_err();
    match err {
        InvokeError::Plugin(message) => {
            assert!(message.contains("without an error message"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A 4 KiB error of invalid UTF-8 (12 KiB once replaced) is still recorded, cut to fit.
    let err = host.invoke(&ctx(t), "out", "loud", b"").unwrap_err();
    assert!(matches!(err, InvokeError::Plugin(_)), "{err:?}");
    let log = _engine
        .tenant(&ctx(t))
        .unwrap()
        .audit_log(&AuditQuery::default().action_prefix("plugin.invoke"))
        .unwrap();
    assert_eq!(log.len(), 3, "every failure is recorded: {log:?}");
    assert!(
        matches!(&log[0].outcome, Outcome::Failed(r) if r.len() <= tenantry_engine::MAX_MESSAGE_LEN),
        "{:?}",
        log[0].outcome
    );
}
