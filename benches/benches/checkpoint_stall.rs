//! `checkpoint_stall`: what the write-ahead log's checkpoints cost when commits change pages all
//! over the file. 64 threads each overwrite random keys of their own tenant (20,000 keys of
//! 100 bytes per tenant, 1.28M in all), one put per durable commit, audit on: every commit
//! changes a different leaf, so a checkpoint has many distinct pages to write.
//!
//! Two sides, each on its own file, loaded the same way:
//! * `log`: `Engine::open`, the engine as shipped (a write-ahead log, checkpointed every
//!   `EngineOptions::log_checkpoint_bytes`, or the sizes in `TENANTRY_BENCH_CHECKPOINT_BYTES`);
//! * `no_log`: `Engine::open_backend` on a redb `FileBackend`, where redb syncs every batch itself
//!   (how every batch was made durable before the log).
//!
//! Criterion measures the time per commit (`iter_custom` splits N commits over the threads); the
//! bench also prints p50, p99, p99.9 and max of every commit it timed, where checkpoints show up
//! as the tail. A diagnostic, not a target.
//!
//! Sizes: `TENANTRY_BENCH_STALL_THREADS` (64), `TENANTRY_BENCH_STALL_KEYS` (20,000 per tenant),
//! `TENANTRY_BENCH_CHECKPOINT_BYTES` (comma-separated; the engine's default if unset),
//! `TENANTRY_BENCH_COMMIT_SAMPLES` (20).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use tenantry_benches::{
    LatencySummary, TABLE, bulk_options, create_tenants, env_list, env_usize, key, load_engine,
    measuring, run_split, settle, tempdir, value,
};
use tenantry_engine::{Context, Engine, EngineOptions, TenantHandle};

/// Opens `path` with a log, or (`log` false) on a plain redb file backend without one.
fn open(path: &Path, options: EngineOptions, log: bool) -> Engine {
    if log {
        Engine::open_with(path, options).unwrap()
    } else {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        Engine::open_backend(redb::backends::FileBackend::new(file).unwrap(), options).unwrap()
    }
}

/// A loaded database at `path`, reopened with `options` after the load has settled; returns
/// the engine and one handle per writer thread.
fn loaded(
    path: &Path,
    log: bool,
    options: EngineOptions,
    threads: usize,
    keys: u64,
) -> (Engine, Vec<TenantHandle>) {
    let tenants = {
        let engine = open(path, bulk_options(), log);
        let tenants = create_tenants(&engine, "w", threads);
        load_engine(&engine, &tenants, keys, 4);
        tenants
    };
    settle();
    let engine = open(path, options, log);
    let handles = tenants
        .iter()
        .map(|&t| {
            engine
                .tenant(&Context::tenant(t).actor("bench:writer"))
                .unwrap()
        })
        .collect();
    (engine, handles)
}

fn checkpoint_stall(c: &mut Criterion) {
    let threads = env_usize("TENANTRY_BENCH_STALL_THREADS", 64);
    let per_tenant = env_usize("TENANTRY_BENCH_STALL_KEYS", 20_000) as u64;
    let keys = per_tenant * threads as u64;
    let default_bytes = EngineOptions::default().log_checkpoint_bytes as usize;
    let sizes = env_list("TENANTRY_BENCH_CHECKPOINT_BYTES", &[default_bytes]);
    let dir = tempdir();

    let mut sides: Vec<(String, Engine, Vec<TenantHandle>)> = Vec::new();
    for (i, &bytes) in sizes.iter().enumerate() {
        let mut options = EngineOptions::default();
        options.log_checkpoint_bytes = bytes as u64;
        let (engine, handles) = loaded(
            &dir.path().join(format!("log{i}.redb")),
            true,
            options,
            threads,
            keys,
        );
        sides.push((format!("log/{bytes}"), engine, handles));
    }
    let (engine, handles) = loaded(
        &dir.path().join("no_log.redb"),
        false,
        EngineOptions::default(),
        threads,
        keys,
    );
    sides.push(("no_log".to_owned(), engine, handles));

    let mut group = c.benchmark_group("checkpoint_stall");
    group
        .sample_size(env_usize("TENANTRY_BENCH_COMMIT_SAMPLES", 20))
        .sampling_mode(SamplingMode::Flat);
    let v = value(9);
    let mut summaries = Vec::new();
    for (name, _engine, handles) in &sides {
        // One xorshift state per writer, and every commit's latency.
        let states: Vec<AtomicU64> = (0..threads as u64)
            .map(|t| AtomicU64::new(0x9E37_79B9_7F4A_7C15 ^ (t + 1)))
            .collect();
        let latencies: Vec<Mutex<Vec<Duration>>> =
            (0..threads).map(|_| Mutex::new(Vec::new())).collect();
        let commit = |t: usize| {
            let mut x = states[t].load(Ordering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            states[t].store(x, Ordering::Relaxed);
            // Key i of the load went to writer i % threads.
            let i = (x % per_tenant) * threads as u64 + t as u64;
            let started = Instant::now();
            let mut tx = handles[t].begin_write().unwrap();
            tx.put(TABLE, &key(i), &v).unwrap();
            tx.commit().unwrap();
            latencies[t].lock().unwrap().push(started.elapsed());
        };
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| run_split(threads, iters, commit));
        });
        let mut all: Vec<Duration> = latencies
            .into_iter()
            .flat_map(|l| l.into_inner().unwrap())
            .collect();
        if let Some(summary) = LatencySummary::of(&mut all) {
            summaries.push((name.clone(), summary));
        }
    }
    group.finish();
    if measuring() {
        eprintln!(
            "\ncheckpoint_stall: {threads} writers overwriting random keys ({per_tenant} per tenant), every timed commit"
        );
        for (name, summary) in &summaries {
            eprintln!("  {name:>14}: {summary}");
        }
    }
}

criterion_group!(benches, checkpoint_stall);
criterion_main!(benches);
