//! `point_get`: a tenant-scoped `ReadTxn::get` against raw redb's `ReadOnlyTable::get` on the
//! same keys (16-byte ids, 100-byte values), both on already-open read transactions, keys drawn
//! at random from a pre-generated list. Target: engine ≤ 1.15× raw.
//!
//! Sizes: `TENANTRY_BENCH_KEYS` (1,000,000), `TENANTRY_BENCH_TENANTS` (1,000),
//! `TENANTRY_BENCH_LOOKUPS` (100,000 pre-generated lookups, cycled).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use redb::ReadableDatabase;
use tenantry_benches::{
    RAW_TABLE, TABLE, bulk_options, create_tenants, env_usize, key, load_engine, load_raw,
    random_indices, tempdir,
};
use tenantry_engine::{Context, Engine, ReadTxn};

fn point_get(c: &mut Criterion) {
    let keys = env_usize("TENANTRY_BENCH_KEYS", 1_000_000) as u64;
    let tenant_count = env_usize("TENANTRY_BENCH_TENANTS", 1_000);
    let lookups = env_usize("TENANTRY_BENCH_LOOKUPS", 100_000);
    let dir = tempdir();

    let engine = Engine::open_with(dir.path().join("engine.redb"), bulk_options()).unwrap();
    let tenants = create_tenants(&engine, "t", tenant_count);
    load_engine(&engine, &tenants, keys, 4);
    let raw = load_raw(&dir.path().join("raw.redb"), keys);

    let indices = random_indices(lookups, keys, 0x5EED);
    // One open read transaction per tenant, and each lookup pre-resolved to (its txn, its key).
    let txns: Vec<ReadTxn> = tenants
        .iter()
        .map(|&t| {
            engine
                .tenant(&Context::tenant(t).actor("bench"))
                .unwrap()
                .begin_read()
                .unwrap()
        })
        .collect();
    let engine_lookups: Vec<(usize, [u8; 16])> = indices
        .iter()
        .map(|&i| ((i % tenant_count as u64) as usize, key(i)))
        .collect();
    let raw_lookups: Vec<[u8; 16]> = indices.iter().map(|&i| key(i)).collect();
    let raw_txn = raw.begin_read().unwrap();
    let raw_table = raw_txn.open_table(RAW_TABLE).unwrap();

    // Both sides see the same bytes.
    for ((t, k), rk) in engine_lookups.iter().zip(&raw_lookups).take(100) {
        let e = txns[*t].get(TABLE, k).unwrap().expect("engine key present");
        let r = raw_table.get(&rk[..]).unwrap().expect("raw key present");
        assert_eq!(e, r.value());
    }

    let mut group = c.benchmark_group("point_get");
    group.bench_function("engine", |b| {
        let mut n = 0;
        b.iter(|| {
            let (t, k) = &engine_lookups[n];
            n = if n + 1 == engine_lookups.len() {
                0
            } else {
                n + 1
            };
            black_box(txns[*t].get(TABLE, black_box(k)).unwrap())
        });
    });
    group.bench_function("raw_redb", |b| {
        let mut n = 0;
        b.iter(|| {
            let k = &raw_lookups[n];
            n = if n + 1 == raw_lookups.len() { 0 } else { n + 1 };
            black_box(
                raw_table
                    .get(&black_box(k)[..])
                    .unwrap()
                    .map(|v| v.value().to_vec()),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, point_get);
criterion_main!(benches);
