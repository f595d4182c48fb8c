//! Quotas, engine-wide limits and typed values.

use serde::{Deserialize, Serialize};
use tenantry_engine::{AuditQuery, Error, MAX_KEY_LEN, MAX_VALUE_LEN, Outcome, Quota, QuotaLimit};

use super::{engine, handle, op, put};

#[test]
fn quota_refuses_the_whole_commit_and_names_the_limit() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    engine
        .set_quota(
            &op(),
            t,
            Quota {
                max_bytes: Some(100),
                max_keys: Some(3),
            },
        )
        .unwrap();
    let h = handle(&engine, t);
    put(&h, "p", b"a", &[0; 40]);
    let mut tx = h.begin_write().unwrap();
    tx.put("p", b"b", &[0; 40]).unwrap();
    tx.put("p", b"c", &[0; 40]).unwrap();
    match tx.commit() {
        Err(Error::QuotaExceeded {
            tenant,
            limit: QuotaLimit::Bytes,
            max: 100,
            would_be,
        }) => {
            assert_eq!(tenant, t);
            assert_eq!(would_be, 123);
        }
        other => panic!("{other:?}"),
    }
    let r = h.begin_read().unwrap();
    assert_eq!(
        r.get("p", b"b").unwrap(),
        None,
        "nothing of a refused commit is written"
    );
    let info = engine.tenant_info(t).unwrap();
    assert_eq!((info.usage.bytes, info.usage.keys), (41, 1));
    // Refused puts are audited as denied, never as ok.
    let puts = h
        .audit_log(&AuditQuery::default().action_prefix("kv.put"))
        .unwrap();
    assert_eq!(puts.len(), 3);
    assert!(matches!(puts[0].outcome, Outcome::Denied(_)));
    assert!(matches!(puts[1].outcome, Outcome::Denied(_)));
    assert_eq!(puts[2].outcome, Outcome::Ok);
    // Key count quota; shrinking usage is always allowed.
    let mut tx = h.begin_write().unwrap();
    for k in [b"x", b"y", b"z"] {
        tx.put("q", k, b"").unwrap();
    }
    assert!(matches!(
        tx.commit(),
        Err(Error::QuotaExceeded {
            limit: QuotaLimit::Keys,
            ..
        })
    ));
    let mut tx = h.begin_write().unwrap();
    assert!(tx.delete("p", b"a").unwrap());
    tx.commit().unwrap();
    assert_eq!(engine.tenant_info(t).unwrap().usage.keys, 0);
    // Overwrites count the difference, exactly.
    put(&h, "p", b"a", &[1; 99]);
    put(&h, "p", b"a", &[1; 10]);
    assert_eq!(engine.tenant_info(t).unwrap().usage.bytes, 11);
    assert!(engine.tenant_info(t).unwrap().usage.audit_bytes > 0);
}

#[test]
fn engine_limits_are_typed_errors_at_the_call() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    let mut tx = h.begin_write().unwrap();
    assert!(matches!(
        tx.put("p", &vec![0; MAX_KEY_LEN + 1], b""),
        Err(Error::KeyTooLarge {
            max: MAX_KEY_LEN,
            ..
        })
    ));
    // The backend's own limit (2 KiB on PostgreSQL): the longest key commits, one byte more is
    // refused with that limit.
    let max = engine.max_key_len();
    assert!(max <= MAX_KEY_LEN);
    tx.put("p", &vec![1; max], b"longest").unwrap();
    assert!(matches!(
        tx.put("p", &vec![1; max + 1], b""),
        Err(Error::KeyTooLarge { max: m, .. }) if m == max
    ));
    assert!(matches!(
        tx.put("p", b"k", &vec![0; MAX_VALUE_LEN + 1]),
        Err(Error::ValueTooLarge {
            max: MAX_VALUE_LEN,
            ..
        })
    ));
    // The 10 MiB transaction cap.
    let big = vec![7u8; 4 << 20];
    tx.put("p", b"1", &big).unwrap();
    tx.put("p", b"2", &big).unwrap();
    assert!(matches!(
        tx.put("p", b"3", &big),
        Err(Error::TransactionTooLarge { .. })
    ));
    // Still usable after the error, and what was accepted commits.
    tx.commit().unwrap();
    assert_eq!(
        h.begin_read()
            .unwrap()
            .get("p", b"2")
            .unwrap()
            .map(|v| v.len()),
        Some(4 << 20)
    );
    let mut tx = h.begin_write().unwrap();
    assert!(matches!(
        tx.audit("", None),
        Err(Error::InvalidField { .. })
    ));
    assert!(matches!(
        tx.audit(&"a".repeat(500), None),
        Err(Error::InvalidField { .. })
    ));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Project {
    name: String,
    stars: u32,
}

#[test]
fn typed_values_round_trip_and_mismatches_are_errors() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    let p = Project {
        name: "apollo".into(),
        stars: 3,
    };
    let mut tx = h.begin_write().unwrap();
    tx.put_value("projects", b"p1", &p).unwrap();
    tx.put("projects", b"junk", &[0xFF; 3]).unwrap();
    assert_eq!(
        tx.get_value::<Project>("projects", b"p1").unwrap(),
        Some(Project {
            name: "apollo".into(),
            stars: 3
        })
    );
    tx.commit().unwrap();
    let r = h.begin_read().unwrap();
    assert_eq!(r.get_value::<Project>("projects", b"p1").unwrap(), Some(p));
    assert!(matches!(
        r.get_value::<Project>("projects", b"junk"),
        Err(Error::Decode { .. })
    ));
    assert!(matches!(
        r.get_value::<u8>("projects", b"p1"),
        Err(Error::Decode { .. })
    ));
    assert_eq!(r.get_value::<Project>("projects", b"none").unwrap(), None);
}
