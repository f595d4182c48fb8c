//! `point_get`: a tenant-scoped `ReadTxn::get` against raw redb's `ReadOnlyTable::get` on the
//! same keys (16-byte ids, 100-byte values), both on already-open read transactions, keys drawn
//! at random from a pre-generated list. Target: engine ≤ 1.15× raw.
//!
//! Sizes: `TENANTRY_BENCH_KEYS` (1,000,000), `TENANTRY_BENCH_TENANTS` (1,000),
//! `TENANTRY_BENCH_LOOKUPS` (100,000 pre-generated lookups, cycled).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use redb::ReadableDatabase;
use tenantry_benches::{
    RAW_TABLE, TABLE, bulk_options, create_tenants, cycling_block, engine_layout_key, env_usize,
    key, load_engine, load_raw, load_raw_with, measuring, paired_ratio, random_indices, settle,
    tempdir, tree_shape,
};
use tenantry_engine::{Context, Engine, ReadTxn};

fn point_get(c: &mut Criterion) {
    let keys = env_usize("TENANTRY_BENCH_KEYS", 1_000_000) as u64;
    let tenant_count = env_usize("TENANTRY_BENCH_TENANTS", 1_000);
    let lookups = env_usize("TENANTRY_BENCH_LOOKUPS", 100_000);
    let dir = tempdir();
    let engine_path = dir.path().join("engine.redb");
    let raw_path = dir.path().join("raw.redb");
    let prefixed_path = dir.path().join("raw-prefixed.redb");
    // Tenant and table ids of the raw copy that uses the engine's key layout.
    let ids = |i: u64| {
        (
            i % tenant_count as u64 + 1,
            (i % tenant_count as u64) as u32 + 1,
        )
    };

    let tenants = {
        let engine = Engine::open_with(&engine_path, bulk_options()).unwrap();
        let tenants = create_tenants(&engine, "t", tenant_count);
        load_engine(&engine, &tenants, keys, 4);
        tenants
    };
    drop(load_raw(&raw_path, keys));
    drop(load_raw_with(&prefixed_path, keys, |i| {
        let (tenant, table) = ids(i);
        engine_layout_key(tenant, table, &key(i))
    }));
    // Closed and reopened, so that both files start from the same (cold) redb cache.
    eprintln!(
        "setup: engine {}",
        tree_shape(&engine_path, "tenantry.data")
    );
    eprintln!("setup: raw    {}", tree_shape(&raw_path, "kv"));
    eprintln!(
        "setup: raw with engine keys {}",
        tree_shape(&prefixed_path, "kv")
    );
    // The engine is timed first: let the writeback of the three loads finish before.
    settle();
    let engine = Engine::open(&engine_path).unwrap();
    let raw = redb::Database::open(&raw_path).unwrap();
    let prefixed = redb::Database::open(&prefixed_path).unwrap();

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
    let prefixed_lookups: Vec<(u64, u32, [u8; 16])> = indices
        .iter()
        .map(|&i| {
            let (tenant, table) = ids(i);
            (tenant, table, key(i))
        })
        .collect();
    let prefixed_txn = prefixed.begin_read().unwrap();
    let prefixed_table = prefixed_txn.open_table(RAW_TABLE).unwrap();

    // Both sides see the same bytes.
    for ((t, k), rk) in engine_lookups.iter().zip(&raw_lookups).take(100) {
        let e = txns[*t].get(TABLE, k).unwrap().expect("engine key present");
        let r = raw_table.get(&rk[..]).unwrap().expect("raw key present");
        assert_eq!(e, r.value());
    }

    // One get of lookup `n`, on each side.
    let engine_get = |n: usize| {
        let (t, k) = &engine_lookups[n];
        txns[*t].get(TABLE, black_box(k)).unwrap()
    };
    let raw_get = |n: usize| {
        let k = &raw_lookups[n];
        raw_table
            .get(&black_box(k)[..])
            .unwrap()
            .map(|v| v.value().to_vec())
    };
    let engine_keys_get = |n: usize| {
        let (tenant, table, k) = &prefixed_lookups[n];
        let physical = engine_layout_key(*tenant, *table, black_box(k));
        prefixed_table
            .get(&physical[..])
            .unwrap()
            .map(|v| v.value().to_vec())
    };
    let len = indices.len();

    let mut group = c.benchmark_group("point_get");
    group.bench_function("engine", |b| {
        let mut n = 0;
        b.iter(|| {
            n = if n + 1 == len { 0 } else { n + 1 };
            black_box(engine_get(n))
        });
    });
    group.bench_function("raw_redb", |b| {
        let mut n = 0;
        b.iter(|| {
            n = if n + 1 == len { 0 } else { n + 1 };
            black_box(raw_get(n))
        });
    });
    // Diagnostic: raw redb with the engine's physical keys (a 12-byte tenant and table prefix,
    // built into a new Vec per get), to separate the cost of the key layout from the engine's
    // own code.
    group.bench_function("raw_redb_engine_keys", |b| {
        let mut n = 0;
        b.iter(|| {
            n = if n + 1 == len { 0 } else { n + 1 };
            black_box(engine_keys_get(n))
        });
    });
    group.finish();

    if !measuring() {
        return;
    }
    // The same ratios measured in interleaved blocks, which cancels slow drifts of a shared
    // machine's load between criterion's (sequential) measurements.
    let rounds = env_usize("TENANTRY_BENCH_PAIRED_ROUNDS", 31);
    let block_time = Duration::from_millis(50);
    let (q1, median, q3) = paired_ratio(
        rounds,
        block_time,
        cycling_block(len, engine_get),
        cycling_block(len, raw_get),
    );
    eprintln!(
        "point_get: paired engine/raw_redb = {median:.3} (IQR {q1:.3}–{q3:.3}, {rounds} rounds)"
    );
    let (q1, median, q3) = paired_ratio(
        rounds,
        block_time,
        cycling_block(len, engine_get),
        cycling_block(len, engine_keys_get),
    );
    eprintln!(
        "point_get: paired engine/raw_redb_engine_keys = {median:.3} (IQR {q1:.3}–{q3:.3}, {rounds} rounds)"
    );
}

criterion_group!(benches, point_get);
criterion_main!(benches);
