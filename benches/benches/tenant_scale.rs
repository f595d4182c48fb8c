//! `tenant_scale`: the same tenant-scoped point get as `point_get`, on the same total number of
//! keys spread over few tenants (1,000) and over many (1,000,000, one key each). Target: many ≤
//! 1.3× few.
//!
//! Both databases are loaded with `Durability::None`; tenants are created with
//! `Engine::create_tenants`. A read transaction is opened for every tenant that the
//! pre-generated lookup list touches.
//!
//! Sizes: `TENANTRY_BENCH_KEYS` (1,000,000), `TENANTRY_BENCH_TENANTS` (1,000),
//! `TENANTRY_BENCH_MANY_TENANTS` (1,000,000), `TENANTRY_BENCH_LOOKUPS` (100,000).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tenantry_benches::{
    TABLE, bulk_options, create_tenants, cycling_block, env_usize, key, load_engine, measuring,
    paired_ratio, random_indices, settle, tempdir, tree_shape,
};
use tenantry_engine::{Context, Engine, ReadTxn, TenantHandle};

/// A loaded engine, with a read transaction per tenant the lookups touch.
struct Dataset {
    // Field order is drop order: transactions, then the engine, then its directory.
    txns: Vec<ReadTxn>,
    handles: Vec<TenantHandle>,
    lookups: Vec<(usize, [u8; 16])>,
    _engine: Engine,
    _dir: tempfile::TempDir,
}

fn dataset(tenant_count: usize, keys: u64, indices: &[u64]) -> Dataset {
    let dir = tempdir();
    let path = dir.path().join("engine.redb");
    let tenants = {
        let engine = Engine::open_with(&path, bulk_options()).unwrap();
        let tenants = create_tenants(&engine, "t", tenant_count);
        // Many threads: with one key per tenant, the committer batches their small commits.
        let threads = if keys / (tenant_count as u64) < 100 {
            16
        } else {
            4
        };
        load_engine(&engine, &tenants, keys, threads);
        tenants
    };
    // Closed and reopened, so that both datasets start from a cold redb cache.
    eprintln!(
        "setup: {tenant_count} tenants: {}",
        tree_shape(&path, "tenantry.data")
    );
    let engine = Engine::open(&path).unwrap();

    let mut slots: HashMap<usize, usize> = HashMap::new();
    let mut txns = Vec::new();
    let mut handles = Vec::new();
    let lookups = indices
        .iter()
        .map(|&i| {
            let tenant = (i % tenant_count as u64) as usize;
            let slot = *slots.entry(tenant).or_insert_with(|| {
                let handle = engine
                    .tenant(&Context::tenant(tenants[tenant]).actor("bench"))
                    .unwrap();
                txns.push(handle.begin_read().unwrap());
                handles.push(handle);
                txns.len() - 1
            });
            (slot, key(i))
        })
        .collect::<Vec<_>>();
    for (slot, k) in lookups.iter().take(100) {
        assert!(txns[*slot].get(TABLE, k).unwrap().is_some());
    }
    eprintln!(
        "setup: {tenant_count} tenants, {} open read transactions",
        txns.len()
    );
    Dataset {
        txns,
        handles,
        lookups,
        _engine: engine,
        _dir: dir,
    }
}

fn tenant_scale(c: &mut Criterion) {
    let keys = env_usize("TENANTRY_BENCH_KEYS", 1_000_000) as u64;
    let few = env_usize("TENANTRY_BENCH_TENANTS", 1_000);
    let many = env_usize("TENANTRY_BENCH_MANY_TENANTS", 1_000_000);
    let lookups = env_usize("TENANTRY_BENCH_LOOKUPS", 100_000);
    // The same lookups (same keys, in the same order) in both datasets.
    let indices = random_indices(lookups, keys, 0x5EED);
    let datasets = [
        (few, dataset(few, keys, &indices)),
        (many, dataset(many, keys, &indices)),
    ];
    // The 1,000-tenant side is timed first: let the writeback of both loads finish before.
    settle();

    let mut group = c.benchmark_group("tenant_scale");
    for (tenants, data) in &datasets {
        group.bench_with_input(BenchmarkId::new("tenants", tenants), data, |b, data| {
            let mut n = 0;
            b.iter(|| {
                let (t, k) = &data.lookups[n];
                n = if n + 1 == data.lookups.len() {
                    0
                } else {
                    n + 1
                };
                black_box(data.txns[*t].get(TABLE, black_box(k)).unwrap())
            });
        });
    }
    // Diagnostic: a read transaction per lookup (`begin_read` then `get`), as a request would
    // do, so that no dataset gets an advantage from how many transactions stay open at once.
    for (tenants, data) in &datasets {
        group.bench_with_input(
            BenchmarkId::new("begin_read_and_get", tenants),
            data,
            |b, data| {
                let mut n = 0;
                b.iter(|| {
                    let (t, k) = &data.lookups[n];
                    n = if n + 1 == data.lookups.len() {
                        0
                    } else {
                        n + 1
                    };
                    let txn = data.handles[*t].begin_read().unwrap();
                    black_box(txn.get(TABLE, black_box(k)).unwrap())
                });
            },
        );
    }
    group.finish();

    if !measuring() {
        return;
    }
    // The same ratio measured in interleaved blocks (see `paired_ratio`).
    let rounds = env_usize("TENANTRY_BENCH_PAIRED_ROUNDS", 31);
    let [(few_n, few_data), (many_n, many_data)] = &datasets;
    let few_get = |n: usize| {
        let (t, k) = &few_data.lookups[n];
        few_data.txns[*t].get(TABLE, black_box(k)).unwrap()
    };
    let many_get = |n: usize| {
        let (t, k) = &many_data.lookups[n];
        many_data.txns[*t].get(TABLE, black_box(k)).unwrap()
    };
    let (q1, median, q3) = paired_ratio(
        rounds,
        Duration::from_millis(50),
        cycling_block(many_data.lookups.len(), many_get),
        cycling_block(few_data.lookups.len(), few_get),
    );
    eprintln!(
        "tenant_scale: paired {many_n} tenants / {few_n} tenants = {median:.3} (IQR {q1:.3}–{q3:.3}, {rounds} rounds)"
    );
}

criterion_group!(benches, tenant_scale);
criterion_main!(benches);
