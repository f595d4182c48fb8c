//! `durable_commits`: commits per second with 1, 8 and 64 writer threads, each thread on its own
//! tenant, one small put per commit (16-byte key, 100-byte value), audit on,
//! `Durability::Immediate`; against raw redb committing one `Durability::Immediate` transaction
//! per put from the same number of threads (which contend on `begin_write`). Real files in a
//! temporary directory. Target: engine at 64 threads ≥ 6× raw redb at 64 threads.
//!
//! One iteration is one commit; `iter_custom` times N commits split over the threads.
//! Sizes: `TENANTRY_BENCH_THREADS` (`1,8,64`), `TENANTRY_BENCH_COMMIT_SAMPLES` (20 samples).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use tenantry_benches::{
    RAW_TABLE, TABLE, create_tenants, env_list, env_usize, measuring, paired_ratio, run_split,
    seq_key, tempdir, value,
};
use tenantry_engine::{Context, Engine, EngineOptions, TenantHandle};

fn durable_commits(c: &mut Criterion) {
    let thread_counts = env_list("TENANTRY_BENCH_THREADS", &[1, 8, 64]);
    let max_threads = thread_counts.iter().copied().max().unwrap_or(1);
    let dir = tempdir();

    // The engine as shipped: Durability::Immediate and audit on are the defaults.
    let engine =
        Engine::open_with(dir.path().join("engine.redb"), EngineOptions::default()).unwrap();
    let handles: Vec<TenantHandle> = create_tenants(&engine, "w", max_threads)
        .into_iter()
        .map(|t| {
            engine
                .tenant(&Context::tenant(t).actor("bench:writer"))
                .unwrap()
        })
        .collect();
    let engine_next: Vec<AtomicU64> = (0..max_threads).map(|_| AtomicU64::new(0)).collect();

    let raw = redb::Database::create(dir.path().join("raw.redb")).unwrap();
    {
        let tx = raw.begin_write().unwrap();
        tx.open_table(RAW_TABLE).unwrap();
        tx.commit().unwrap();
    }
    let raw_next: Vec<AtomicU64> = (0..max_threads).map(|_| AtomicU64::new(0)).collect();
    let v = value(7);

    let mut group = c.benchmark_group("durable_commits");
    group
        .sample_size(env_usize("TENANTRY_BENCH_COMMIT_SAMPLES", 20))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(1));
    let engine_commit = |t: usize| {
        let n = engine_next[t].fetch_add(1, Ordering::Relaxed);
        let mut tx = handles[t].begin_write().unwrap();
        tx.put(TABLE, &seq_key(t as u64, n), &v).unwrap();
        tx.commit().unwrap();
    };
    let raw_commit = |t: usize| {
        let n = raw_next[t].fetch_add(1, Ordering::Relaxed);
        let mut tx = raw.begin_write().unwrap();
        tx.set_durability(redb::Durability::Immediate).unwrap();
        {
            let mut table = tx.open_table(RAW_TABLE).unwrap();
            table.insert(&seq_key(t as u64, n)[..], &v[..]).unwrap();
        }
        tx.commit().unwrap();
    };
    for &threads in &thread_counts {
        group.bench_with_input(
            BenchmarkId::new("engine", threads),
            &threads,
            |b, &threads| b.iter_custom(|iters| run_split(threads, iters, engine_commit)),
        );
        group.bench_with_input(
            BenchmarkId::new("raw_redb", threads),
            &threads,
            |b, &threads| b.iter_custom(|iters| run_split(threads, iters, raw_commit)),
        );
    }
    group.finish();
    let commits: u64 = engine_next.iter().map(|n| n.load(Ordering::Relaxed)).sum();
    let raw_commits: u64 = raw_next.iter().map(|n| n.load(Ordering::Relaxed)).sum();
    eprintln!("durable_commits: {commits} engine commits, {raw_commits} raw redb commits in total");

    if !measuring() {
        return;
    }
    // The same ratios measured in interleaved blocks of ~300 ms (see `paired_ratio`).
    let rounds = env_usize("TENANTRY_BENCH_PAIRED_COMMIT_ROUNDS", 11);
    for &threads in &thread_counts {
        let (q1, median, q3) = paired_ratio(
            rounds,
            Duration::from_millis(300),
            |n| run_split(threads, n, raw_commit),
            |n| run_split(threads, n, engine_commit),
        );
        eprintln!(
            "durable_commits: paired engine commits/s ÷ raw redb commits/s at {threads} threads = {median:.2} (IQR {q1:.2}–{q3:.2}, {rounds} rounds)"
        );
    }
}

criterion_group!(benches, durable_commits);
criterion_main!(benches);
