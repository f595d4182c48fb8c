//! One invocation, one transaction: atomic commit, rollback on failure, serializable.

use tenantry_engine::AuditQuery;
use tenantry_host::InvokeError;

use super::{ctx, engine, host, op, plugins, setup};

#[test]
fn eight_threads_of_increments_end_at_4000() {
    let (engine, host, t) = setup("counter", plugins::COUNTER);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let host = host.clone();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    loop {
                        match host.invoke(&ctx(t), "counter", "increment", b"") {
                            Ok(_) => break,
                            // The per-tenant concurrency cap (4) fails fast; the caller retries.
                            Err(e) if e.is_retryable() => std::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    assert_eq!(
        host.invoke(&ctx(t), "counter", "get", b"").unwrap(),
        b"4000"
    );
    engine.verify_audit(t).unwrap();
}

#[test]
fn different_tenants_run_in_parallel() {
    let engine = engine();
    let host = host(&engine);
    let ids: Vec<_> = (0..4)
        .map(|i| engine.create_tenant(&op(), &format!("t{i}")).unwrap())
        .collect();
    for &t in &ids {
        host.install(&ctx(t), "hostile", plugins::HOSTILE).unwrap();
        host.install(&ctx(t), "counter", plugins::COUNTER).unwrap();
    }
    // While one tenant's invocation spins until its deadline, another tenant's calls complete.
    let spinner = {
        let host = host.clone();
        let t = ids[0];
        std::thread::spawn(move || host.invoke(&ctx(t), "hostile", "spin", b""))
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    let started = std::time::Instant::now();
    for _ in 0..20 {
        host.invoke(&ctx(ids[1]), "counter", "increment", b"")
            .unwrap();
    }
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        spinner.join().unwrap(),
        Err(InvokeError::OutOfFuel { .. } | InvokeError::Timeout { .. })
    ));
}

#[test]
fn failures_roll_back_every_write_and_are_recorded() {
    let (engine, host, t) = setup("hostile", plugins::HOSTILE);
    for function in ["trap_after_writes", "error_after_writes", "panic"] {
        let err = host.invoke(&ctx(t), "hostile", function, b"").unwrap_err();
        match function {
            "error_after_writes" => assert!(matches!(err, InvokeError::Plugin(_)), "{err:?}"),
            _ => assert!(matches!(err, InvokeError::Trap(_)), "{function}: {err:?}"),
        }
    }
    let u = engine.unscoped_unsafe(&op(), "check rollback").unwrap();
    assert!(u.scan_prefix(t, "hostile", b"").unwrap().is_empty());
    drop(u);
    let h = engine.tenant(&ctx(t)).unwrap();
    let invocations = h
        .audit_log(&AuditQuery::default().action_prefix("plugin.invoke"))
        .unwrap();
    assert_eq!(invocations.len(), 3);
    assert!(invocations.iter().all(|e| !e.outcome.is_ok()));
    // The puts they attempted are visible, marked failed, with the plugin as origin.
    let puts: Vec<_> = h
        .audit_log(&AuditQuery::default().action_prefix("kv.put"))
        .unwrap()
        .into_iter()
        .filter(|e| e.origin.is_some())
        .collect();
    assert_eq!(puts.len(), 6);
    for e in &puts {
        assert!(!e.outcome.is_ok());
        assert!(e.origin.as_deref().unwrap().starts_with("plugin hostile@"));
        assert_eq!(e.actor.as_deref(), Some("user:7"));
    }
    assert_eq!(
        engine.tenant_info(t).unwrap().usage.keys,
        2,
        "only the plugin's own records"
    );
    engine.verify_audit(t).unwrap();
}

/// Scans page through the host's 100-entry pages with the resumable cursor.
#[test]
fn scans_page_with_the_cursor() {
    let (_engine, host, t) = setup("projects", plugins::PROJECTS);
    for i in 0..150 {
        let input = format!(r#"{{"name":"p{i}"}}"#);
        host.invoke(&ctx(t), "projects", "create", input.as_bytes())
            .unwrap();
    }
    let all = super::json(
        &host
            .invoke(&ctx(t), "projects", "list", br#"{"limit":150}"#)
            .unwrap(),
    );
    let ids: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=150).collect::<Vec<_>>());
    let after = super::json(
        &host
            .invoke(&ctx(t), "projects", "list", br#"{"after":140}"#)
            .unwrap(),
    );
    assert_eq!(after.as_array().unwrap().len(), 10);
}
