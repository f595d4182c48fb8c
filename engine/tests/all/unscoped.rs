//! The escape hatch: operator-only, with a reason, and audited where the tenant sees it.

use tenantry_engine::{AuditQuery, AuditStream, Error, TenantState};

use super::{engine, handle, op, put};

#[test]
fn unscoped_reads_are_audited_in_the_tenants_stream_first() {
    let engine = engine();
    let a = engine.create_tenant(&op(), "acme").unwrap();
    let b = engine.create_tenant(&op(), "globex").unwrap();
    put(&handle(&engine, a), "projects", b"p1", b"v1");
    put(&handle(&engine, b), "projects", b"p1", b"v2");
    assert!(matches!(
        engine.unscoped_unsafe(&op(), "  "),
        Err(Error::MissingReason)
    ));
    {
        let u = engine
            .unscoped_unsafe(&op(), "nightly billing export")
            .unwrap();
        assert_eq!(u.get(a, "projects", b"p1").unwrap(), Some(b"v1".to_vec()));
        // Before the data was returned, the access was in acme's own log.
        let log = handle(&engine, a)
            .audit_log(&AuditQuery::default())
            .unwrap();
        assert_eq!(log[0].action, "operator.unscoped_access");
        assert_eq!(log[0].actor.as_deref(), Some("ops:test"));
        assert_eq!(log[0].message.as_deref(), Some("nightly billing export"));
        assert!(log[0].by_operator);
        u.get(a, "projects", b"p2").unwrap();
        assert_eq!(u.scan_prefix(b, "projects", b"").unwrap().len(), 1);
        assert!(matches!(
            u.put(a, "projects", b"p1", b"x"),
            Err(Error::UnscopedWritesDisabled)
        ));
        // Globex has not been touched by any write.
        assert_eq!(
            handle(&engine, b)
                .begin_read()
                .unwrap()
                .get("projects", b"p1")
                .unwrap(),
            Some(b"v2".to_vec())
        );
    }
    let acme_log = handle(&engine, a)
        .audit_log(&AuditQuery::default().action_prefix("operator."))
        .unwrap();
    let actions: Vec<_> = acme_log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["operator.unscoped_summary", "operator.unscoped_access"]
    );
    assert!(
        acme_log[0]
            .message
            .as_deref()
            .unwrap()
            .starts_with("2 key(s) read")
    );
    let system = engine
        .system_audit_log(&op(), &AuditQuery::default().action_prefix("unscoped."))
        .unwrap();
    assert_eq!(system.len(), 2);
    assert_eq!(system[1].action, "unscoped.open");
    assert!(
        system[0]
            .message
            .as_deref()
            .unwrap()
            .starts_with("2 tenant(s) touched, 3 key(s) read")
    );
    for t in [a, b] {
        engine.verify_audit(t).unwrap();
    }
    engine.verify_stream(AuditStream::System, None).unwrap();
}

#[test]
fn unscoped_writes_need_enabling_and_are_audited_as_the_operator() {
    let engine = engine();
    let a = engine.create_tenant(&op(), "acme").unwrap();
    let mut u = engine
        .unscoped_unsafe(&op(), "fix customer data, ticket 42")
        .unwrap();
    u.enable_writes().unwrap();
    u.put(a, "projects", b"p1", b"fixed").unwrap();
    assert!(u.delete(a, "projects", b"p1").unwrap());
    engine
        .set_tenant_state(&op(), a, TenantState::ReadOnly)
        .unwrap();
    assert!(matches!(
        u.put(a, "projects", b"p1", b"x"),
        Err(Error::TenantReadOnly(_))
    ));
    drop(u);
    let log = handle(&engine, a)
        .audit_log(&AuditQuery::default().action_prefix("kv."))
        .unwrap();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|e| e.by_operator && e.actor.as_deref() == Some("ops:test"))
    );
}
