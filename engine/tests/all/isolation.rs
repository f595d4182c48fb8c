//! Tenant isolation: a model-based property test and targeted boundary cases.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use tenantry_engine::TenantId;

use super::{ctx, engine, handle, op, put};

const TENANTS: usize = 50;
const TABLES: [&str; 2] = ["projects", "users"];

/// Keys chosen to probe the boundary: empty, all-0xFF, and bytes that look like an encoded
/// tenant/table prefix of a neighbouring tenant.
fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(vec![0xFF; 4]),
        Just(vec![0xFF; 13]),
        (0u64..=TENANTS as u64 + 1).prop_map(|t| {
            let mut k = t.to_be_bytes().to_vec();
            k.extend_from_slice(&1u32.to_be_bytes());
            k
        }),
        proptest::collection::vec(any::<u8>(), 0..6),
        proptest::collection::vec(prop_oneof![Just(0u8), Just(0xFFu8), Just(b'a')], 0..4),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize, usize, Vec<u8>, Vec<u8>),
    Delete(usize, usize, Vec<u8>),
    Get(usize, usize, Vec<u8>),
    Prefix(usize, usize, Vec<u8>),
    Range(usize, usize, Vec<u8>, Vec<u8>),
    All(usize, usize),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let t = 0..TENANTS;
    let tb = 0..TABLES.len();
    prop_oneof![
        3 => (t.clone(), tb.clone(), key_strategy(), proptest::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(t, tb, k, v)| Op::Put(t, tb, k, v)),
        1 => (t.clone(), tb.clone(), key_strategy()).prop_map(|(t, tb, k)| Op::Delete(t, tb, k)),
        1 => (t.clone(), tb.clone(), key_strategy()).prop_map(|(t, tb, k)| Op::Get(t, tb, k)),
        1 => (t.clone(), tb.clone(), key_strategy()).prop_map(|(t, tb, k)| Op::Prefix(t, tb, k)),
        1 => (t.clone(), tb.clone(), key_strategy(), key_strategy())
            .prop_map(|(t, tb, a, b)| Op::Range(t, tb, a, b)),
        1 => (t, tb).prop_map(|(t, tb)| Op::All(t, tb)),
    ]
}

type Model = Vec<[BTreeMap<Vec<u8>, Vec<u8>>; 2]>;

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Thousands of random operations over 50 tenants agree with a map per tenant: no operation
    /// returns or changes another tenant's data.
    #[test]
    fn random_operations_never_cross_tenants(ops in proptest::collection::vec(op_strategy(), 600)) {
        let engine = engine();
        let names: Vec<String> = (0..TENANTS).map(|i| format!("t{i}")).collect();
        let ids: Vec<TenantId> = engine.create_tenants(&op(), names.iter().map(String::as_str)).unwrap();
        let handles: Vec<_> = ids.iter().map(|&t| handle(&engine, t)).collect();
        let mut model: Model = (0..TENANTS).map(|_| Default::default()).collect();
        for o in ops {
            match o {
                Op::Put(t, tb, k, v) => {
                    put(&handles[t], TABLES[tb], &k, &v);
                    model[t][tb].insert(k, v);
                }
                Op::Delete(t, tb, k) => {
                    let mut tx = handles[t].begin_write().unwrap();
                    let existed = tx.delete(TABLES[tb], &k).unwrap();
                    tx.commit().unwrap();
                    prop_assert_eq!(existed, model[t][tb].remove(&k).is_some());
                }
                Op::Get(t, tb, k) => {
                    let got = handles[t].begin_read().unwrap().get(TABLES[tb], &k).unwrap();
                    prop_assert_eq!(got.as_ref(), model[t][tb].get(&k));
                }
                Op::Prefix(t, tb, p) => {
                    let got: Vec<_> = handles[t].begin_read().unwrap()
                        .scan_prefix(TABLES[tb], &p).unwrap().map(Result::unwrap).collect();
                    let want: Vec<_> = model[t][tb].iter()
                        .filter(|(k, _)| k.starts_with(&p))
                        .map(|(k, v)| (k.clone(), v.clone())).collect();
                    prop_assert_eq!(got, want);
                }
                Op::Range(t, tb, a, b) => {
                    let r = handles[t].begin_read().unwrap();
                    let got: Vec<_> = r
                        .range(TABLES[tb], (Bound::Included(&a[..]), Bound::Excluded(&b[..])))
                        .unwrap().map(Result::unwrap).collect();
                    let want: Vec<_> = model[t][tb].iter()
                        .filter(|(k, _)| k.as_slice() >= a.as_slice() && k.as_slice() < b.as_slice())
                        .map(|(k, v)| (k.clone(), v.clone())).collect();
                    prop_assert_eq!(got, want);
                }
                Op::All(t, tb) => {
                    // The same through a write transaction, which merges its own buffer.
                    let tx = handles[t].begin_write().unwrap();
                    let got: Vec<_> = tx.range(TABLES[tb], ..).unwrap().map(Result::unwrap).collect();
                    let want: Vec<_> = model[t][tb].iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    prop_assert_eq!(got, want);
                }
            }
        }
        // Usage is exact for every tenant.
        for (i, &t) in ids.iter().enumerate() {
            let info = engine.tenant_info(t).unwrap();
            let keys: usize = model[i].iter().map(BTreeMap::len).sum();
            let bytes: usize = model[i].iter().flatten().map(|(k, v)| k.len() + v.len()).sum();
            prop_assert_eq!(info.usage.keys, keys as u64);
            prop_assert_eq!(info.usage.bytes, bytes as u64);
        }
    }
}

#[test]
fn same_table_name_is_a_different_table_per_tenant() {
    let engine = engine();
    let a = engine.create_tenant(&op(), "acme").unwrap();
    let b = engine.create_tenant(&op(), "globex").unwrap();
    put(&handle(&engine, a), "projects", b"p1", b"acme's");
    let hb = handle(&engine, b);
    assert_eq!(
        hb.begin_read().unwrap().get("projects", b"p1").unwrap(),
        None
    );
    assert_eq!(
        hb.begin_read()
            .unwrap()
            .scan_prefix("projects", b"")
            .unwrap()
            .count(),
        0
    );
    let mut tx = hb.begin_write().unwrap();
    assert!(!tx.delete("projects", b"p1").unwrap());
    tx.commit().unwrap();
    assert_eq!(
        handle(&engine, a)
            .begin_read()
            .unwrap()
            .get("projects", b"p1")
            .unwrap(),
        Some(b"acme's".to_vec())
    );
}

#[test]
fn unbounded_and_ff_ranges_stay_in_the_table() {
    let engine = engine();
    let ids = engine.create_tenants(&op(), ["a", "b", "c"]).unwrap();
    for &t in &ids {
        let h = handle(&engine, t);
        put(&h, "t1", &[0xFF; 8], format!("{t}").as_bytes());
        put(&h, "t2", b"", b"x");
    }
    let h = handle(&engine, ids[1]);
    let r = h.begin_read().unwrap();
    let all: Vec<_> = r.range("t1", ..).unwrap().map(Result::unwrap).collect();
    assert_eq!(
        all,
        vec![(vec![0xFF; 8], format!("{}", ids[1]).into_bytes())]
    );
    let ff: Vec<_> = r
        .scan_prefix("t1", &[0xFF])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ff.len(), 1);
    let from: Vec<_> = r
        .range("t1", (Bound::Excluded(&[0xFF; 8][..]), Bound::Unbounded))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(from.is_empty());
    // Inverted ranges are empty, not a panic.
    assert_eq!(
        r.range(
            "t1",
            (Bound::Included(&b"z"[..]), Bound::Excluded(&b"a"[..]))
        )
        .unwrap()
        .count(),
        0
    );
}

#[test]
fn reserved_and_invalid_table_names_are_refused() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    let mut tx = h.begin_write().unwrap();
    for bad in ["", "_plugins", "a/b", &"x".repeat(65)] {
        assert!(matches!(
            tx.put(bad, b"k", b"v"),
            Err(tenantry_engine::Error::InvalidTableName { .. })
        ));
        assert!(h.begin_read().unwrap().get(bad, b"k").is_err());
    }
    // Reserved tables are reached only through the engine (its owner's capability), never
    // from a handle that request code holds: `TenantHandle` has no way there.
    drop(tx);
    let reserved = engine.reserved_tables(&ctx(t)).unwrap();
    put(&reserved, "_plugins", b"k", b"v");
    assert!(h.begin_read().unwrap().get("_plugins", b"k").is_err());
    // ...and nothing else.
    assert!(
        reserved
            .begin_read()
            .unwrap()
            .get("projects", b"k")
            .is_err()
    );
    let op_handle = engine.reserved_handle(&op(), t).unwrap();
    assert_eq!(
        op_handle
            .begin_read()
            .unwrap()
            .get("_plugins", b"k")
            .unwrap(),
        Some(b"v".to_vec())
    );
    assert!(
        op_handle
            .begin_read()
            .unwrap()
            .get("projects", b"k")
            .is_err()
    );
}
