//! Two engines on one database behave as two app nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tenantry_engine::{AuditQuery, Engine, Error, Quota, TenantState};

use super::{ctx, fresh_schema, handle, op, options_on, pg_url, put};

/// Two engines (nodes) on one fresh schema.
fn two_nodes() -> (Engine, Engine) {
    let schema = fresh_schema();
    let url = pg_url();
    let mut options = options_on(&schema);
    options.lock_timeout = Duration::from_millis(500);
    let a = Engine::open_postgres_with(&url, options.clone()).unwrap();
    let b = Engine::open_postgres_with(&url, options).unwrap();
    (a, b)
}

/// Waits until `f` holds, at most the documented staleness with room for a loaded machine.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within 3 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_node_sees_the_other_s_tenants_data_and_audit() {
    let (a, b) = two_nodes();
    let t = a.create_tenant(&op(), "acme").unwrap();
    assert_eq!(b.tenant_id("acme").unwrap(), Some(t));
    put(&handle(&a, t), "projects", b"p1", b"from a");
    let hb = handle(&b, t);
    assert_eq!(
        hb.begin_read().unwrap().get("projects", b"p1").unwrap(),
        Some(b"from a".to_vec())
    );
    put(&hb, "projects", b"p2", b"from b");
    let scanned: Vec<_> = handle(&a, t)
        .begin_read()
        .unwrap()
        .scan_prefix("projects", b"")
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        scanned,
        vec![
            (b"p1".to_vec(), b"from a".to_vec()),
            (b"p2".to_vec(), b"from b".to_vec())
        ]
    );
    // One chain with entries from both nodes, verified by either.
    let log = a
        .tenant_audit_log(&op(), t, &AuditQuery::default())
        .unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["kv.put", "kv.put", "tenant.create"]);
    assert_eq!(a.verify_audit(t).unwrap(), 3);
    assert_eq!(b.verify_audit(t).unwrap(), 3);
    let info = b.tenant_info(t).unwrap();
    assert_eq!(info.usage.keys, 2);
    assert_eq!(a.list_tenants().unwrap().len(), 1);
}

#[test]
fn a_suspension_on_one_node_is_enforced_by_the_other() {
    let (a, b) = two_nodes();
    let t = a.create_tenant(&op(), "acme").unwrap();
    let hb = handle(&b, t);
    let mut tx = hb.begin_write().unwrap();
    tx.put("p", b"k", b"v").unwrap();
    a.set_tenant_state(&op(), t, TenantState::Suspended)
        .unwrap();
    // The next commit, always: the stored state is checked under the head's lock.
    let err = tx.commit().unwrap_err();
    assert!(
        matches!(err, Error::TenantSuspended(x) if x == t),
        "{err:?}"
    );
    // And `tenant()` within the documented staleness.
    eventually("node b sees the suspension", || {
        matches!(b.tenant(&ctx(t)), Err(Error::TenantSuspended(_)))
    });
    a.set_tenant_state(&op(), t, TenantState::Active).unwrap();
    eventually("node b sees the reactivation", || b.tenant(&ctx(t)).is_ok());
    // The refused commit is on record, as denied.
    let log = a
        .tenant_audit_log(&op(), t, &AuditQuery::default())
        .unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == "kv.put" && !e.outcome.is_ok())
    );
    assert_eq!(b.verify_audit(t).unwrap() as usize, log.len());
}

#[test]
fn a_quota_set_on_one_node_binds_the_other_s_next_commit() {
    let (a, b) = two_nodes();
    let t = a.create_tenant(&op(), "acme").unwrap();
    a.set_quota(
        &op(),
        t,
        Quota {
            max_keys: Some(1),
            ..Quota::default()
        },
    )
    .unwrap();
    let hb = handle(&b, t);
    put(&hb, "p", b"one", b"v");
    let mut tx = hb.begin_write().unwrap();
    tx.put("p", b"two", b"v").unwrap();
    assert!(matches!(tx.commit(), Err(Error::QuotaExceeded { .. })));
}

#[test]
fn concurrent_increments_from_two_nodes_end_exact() {
    let (a, b) = two_nodes();
    let t = a.create_tenant(&op(), "acme").unwrap();
    const PER_THREAD: u64 = 25;
    let nodes = [Arc::new(a), Arc::new(b)];
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let engine = Arc::clone(&nodes[i % 2]);
            std::thread::spawn(move || {
                let h = handle(&engine, t);
                for _ in 0..PER_THREAD {
                    let mut tx = h.begin_write().unwrap();
                    let n: u64 = tx.get_value("c", b"n").unwrap().unwrap_or(0);
                    tx.put_value("c", b"n", &(n + 1)).unwrap();
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let n: Option<u64> = handle(&nodes[0], t)
        .begin_read()
        .unwrap()
        .get_value("c", b"n")
        .unwrap();
    assert_eq!(n, Some(4 * PER_THREAD));
    assert_eq!(nodes[1].verify_audit(t).unwrap(), 4 * PER_THREAD + 1);
}

#[test]
fn an_open_transaction_blocks_neither_other_tenants_nor_operators() {
    let (a, b) = two_nodes();
    let t = a.create_tenant(&op(), "acme").unwrap();
    let other = a.create_tenant(&op(), "globex").unwrap();
    let held = handle(&a, t).begin_write().unwrap();
    // Another tenant's commit on the other node goes through.
    put(&handle(&b, other), "p", b"k", b"v");
    // So does an operator's state change of the same tenant.
    b.set_tenant_state(&op(), t, TenantState::ReadOnly).unwrap();
    drop(held);
    // The same tenant's writer on the other node waits, then times out.
    let held = handle(&a, other).begin_write().unwrap();
    let started = Instant::now();
    let err = handle(&b, other).begin_write().unwrap_err();
    assert!(
        matches!(err, Error::LockTimeout { tenant, .. } if tenant == other),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(held);
    handle(&b, other).begin_write().unwrap();
}

#[test]
fn deleted_ids_are_never_reused_and_names_are_freed() {
    let (a, b) = two_nodes();
    let t = a.create_tenant(&op(), "acme").unwrap();
    put(&handle(&a, t), "p", b"k", b"v");
    b.delete_tenant(&op(), t).unwrap();
    let again = a.create_tenant(&op(), "acme").unwrap();
    assert!(again.get() > t.get());
    eventually("node a sees the deletion", || {
        matches!(a.tenant(&ctx(t)), Err(Error::TenantDeleted(_)))
    });
    assert_eq!(b.tenant_id("acme").unwrap(), Some(again));
    assert_eq!(
        handle(&b, again)
            .begin_read()
            .unwrap()
            .get("p", b"k")
            .unwrap(),
        None
    );
    assert_eq!(a.tenant_info(t).unwrap().usage.keys, 0);
    // Operators still read the deleted tenant's log.
    assert!(a.verify_audit(t).unwrap() >= 3);
}

#[test]
fn a_receipt_resolves_on_both_nodes() {
    let (a, b) = two_nodes();
    let t = a.create_tenant(&op(), "acme").unwrap();
    let mut tx = handle(&a, t).begin_write().unwrap();
    tx.put("p", b"k", b"v").unwrap();
    let receipt = tx.commit().unwrap();
    assert!(
        b.resolve_commit(t, receipt.audit_seq, &receipt.audit_head)
            .unwrap()
    );
    assert!(
        !b.resolve_commit(t, receipt.audit_seq + 1, &receipt.audit_head)
            .unwrap()
    );
    assert!(!a.resolve_commit(t, receipt.audit_seq, &[7; 32]).unwrap());
    b.verify_audit_against(t, receipt.audit_seq, &receipt.audit_head)
        .unwrap();
}
