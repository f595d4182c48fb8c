//! `point_get`: a tenant-scoped `ReadTxn::get` against raw redb's `ReadOnlyTable::get` on the
//! same keys (16-byte ids, 100-byte values), both on already-open read transactions, keys drawn
//! at random from a pre-generated list. Target: engine ≤ 1.15× raw.
//!
//! Two diagnostic sides separate the cost of the key layout from the engine's code:
//! `raw_redb_engine_keys` (raw redb, `&[u8]` keys in the engine's layout) and
//! `raw_redb_on_engine_file` (raw redb reading a copy of the engine's own file, with its
//! `ByteKey` key type).
//!
//! Before criterion's groups, every side runs in turn for `TENANTRY_BENCH_PREWARM_MS` (10,000),
//! and the median time of those passes is printed: a third estimate of the ratio, besides
//! criterion's and the paired one.
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

/// One lookup, by its index in the pre-generated list.
type Get<'a> = dyn Fn(usize) -> Option<Vec<u8>> + 'a;

fn point_get(c: &mut Criterion) {
    let keys = env_usize("TENANTRY_BENCH_KEYS", 1_000_000) as u64;
    let tenant_count = env_usize("TENANTRY_BENCH_TENANTS", 1_000);
    let lookups = env_usize("TENANTRY_BENCH_LOOKUPS", 100_000);
    let dir = tempdir();
    let indices = random_indices(lookups, keys, 0x5EED);
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
    // A copy of the engine's file, read with redb directly (diagnostic).
    let copy_path = dir.path().join("engine-copy.redb");
    std::fs::copy(&engine_path, &copy_path).unwrap();
    // The engine is timed first: let the writeback of the three loads finish before.
    settle();
    let copy = redb::Database::open(&copy_path).unwrap();
    let copy_txn = copy.begin_read().unwrap();
    let copy_data = copy_txn.open_table(tenantry_benches::ENGINE_DATA).unwrap();
    let copy_lookups: Vec<Vec<u8>> = {
        let tables = copy_txn
            .open_table(tenantry_benches::ENGINE_TABLES)
            .unwrap();
        let table_ids: Vec<u32> = tenants
            .iter()
            .map(|t| {
                let mut k = t.get().to_be_bytes().to_vec();
                k.extend_from_slice(TABLE.as_bytes());
                tables.get(&k[..]).unwrap().unwrap().value()
            })
            .collect();
        indices
            .iter()
            .map(|&i| {
                let t = (i % tenant_count as u64) as usize;
                engine_layout_key(tenants[t].get(), table_ids[t], &key(i))
            })
            .collect()
    };
    let copy_get = |n: usize| {
        copy_data
            .get(&black_box(&copy_lookups[n])[..])
            .unwrap()
            .map(|v| v.value().to_vec())
    };
    let engine = Engine::open(&engine_path).unwrap();
    let raw = redb::Database::open(&raw_path).unwrap();
    let prefixed = redb::Database::open(&prefixed_path).unwrap();

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
    let sides: [(&str, &Get<'_>); 4] = [
        ("engine", &engine_get),
        ("raw_redb", &raw_get),
        // Diagnostics. Raw redb with the engine's physical keys (a 12-byte tenant and table
        // prefix, built into a new Vec per get) in a file loaded as `raw_redb` is; and raw redb
        // reading a copy of the engine's own file, which leaves only the engine's code (and its
        // key comparison, see `keys::ByteKey`) between it and `engine`.
        ("raw_redb_engine_keys", &engine_keys_get),
        ("raw_redb_on_engine_file", &copy_get),
    ];

    // Every side runs in turn before any is timed: right after the loads this machine speeds up
    // for a while (by 10-20% over the first half minute), which would otherwise land on whichever
    // side criterion times first.
    let prewarm = Duration::from_millis(env_usize("TENANTRY_BENCH_PREWARM_MS", 10_000) as u64);
    let started = std::time::Instant::now();
    let mut passes: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    while started.elapsed() < prewarm {
        for ((_, get), times) in sides.iter().zip(&mut passes) {
            let took = cycling_block(len, get)(len as u64);
            times.push(took.as_nanos() as f64 / len as f64);
        }
    }
    let medians: Vec<String> = sides
        .iter()
        .zip(&mut passes)
        .map(|((name, _), times)| {
            times.sort_by(f64::total_cmp);
            format!("{name} {:.0} ns", times[times.len() / 2])
        })
        .collect();
    eprintln!(
        "point_get: prewarm, {} passes over the lookups, median per get: {}",
        passes[0].len(),
        medians.join(", ")
    );

    let mut group = c.benchmark_group("point_get");
    for (name, get) in &sides {
        group.bench_function(*name, |b| {
            let mut n = 0;
            b.iter(|| {
                n = if n + 1 == len { 0 } else { n + 1 };
                black_box(get(n))
            });
        });
    }
    group.finish();

    if !measuring() {
        return;
    }
    // The same ratios measured in interleaved blocks, which cancels slow drifts of a shared
    // machine's load between criterion's (sequential) measurements.
    let rounds = env_usize("TENANTRY_BENCH_PAIRED_ROUNDS", 31);
    let block_time = Duration::from_millis(50);
    let (engine_name, engine) = sides[0];
    for (name, other) in &sides[1..] {
        let (q1, median, q3) = paired_ratio(
            rounds,
            block_time,
            cycling_block(len, engine),
            cycling_block(len, other),
        );
        eprintln!(
            "point_get: paired {engine_name}/{name} = {median:.3} (IQR {q1:.3}–{q3:.3}, {rounds} rounds)"
        );
    }
}

criterion_group!(benches, point_get);
criterion_main!(benches);
