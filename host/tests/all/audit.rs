//! Every host call is audited, with the context and the plugin as origin.

use tenantry_engine::{AuditQuery, Outcome};

use super::{ctx, plugins, setup};

#[test]
fn every_host_call_is_an_entry_with_context_and_origin() {
    let (engine, host, t) = setup("projects", plugins::PROJECTS);
    host.invoke(&ctx(t), "projects", "create", br#"{"name":"apollo"}"#)
        .unwrap();
    let h = engine.tenant(&ctx(t)).unwrap();
    let log = h.audit_log(&AuditQuery::default()).unwrap();
    // Newest first: the invocation summary, the plugin's own entry, its puts and its get.
    let actions: Vec<_> = log.iter().take(5).map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "plugin.invoke",
            "project.create",
            "kv.put",
            "kv.put",
            "kv.get"
        ]
    );
    let origin = log[0].origin.clone().unwrap();
    assert!(origin.starts_with("plugin projects@"), "{origin}");
    for e in &log[..5] {
        assert_eq!(e.origin.as_deref(), Some(origin.as_str()));
        assert_eq!(e.actor.as_deref(), Some("user:7"));
        assert_eq!(e.ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(e.request_id.as_deref(), Some("req-9"));
    }
    assert_eq!(log[4].target.as_deref(), Some("meta/next_id"));
    assert_eq!(log[4].outcome, Outcome::NoChange);
    assert_eq!(log[2].target.as_deref(), Some("meta/next_id"));
    assert!(log[3].target.as_deref().unwrap().starts_with("projects/"));
    engine.verify_audit(t).unwrap();
}

#[test]
fn a_pure_invocation_writes_nothing() {
    let (engine, host, t) = setup("hostile", plugins::HOSTILE);
    let before = engine.tenant_info(t).unwrap().usage.audit_entries;
    host.invoke(&ctx(t), "hostile", "recurse", b"3").unwrap();
    assert_eq!(engine.tenant_info(t).unwrap().usage.audit_entries, before);
    // A failure without host calls is still recorded.
    host.invoke(&ctx(t), "hostile", "panic", b"").unwrap_err();
    let log = engine
        .tenant(&ctx(t))
        .unwrap()
        .audit_log(&AuditQuery::default().limit(1))
        .unwrap();
    assert_eq!(log[0].action, "plugin.invoke");
    assert!(matches!(log[0].outcome, Outcome::Failed(_)));
}
