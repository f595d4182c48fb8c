//! `audit_cost`: durable commits per second at 64 writer threads (each on its own tenant, one
//! small put per commit) with audit on, against the same pipeline with the bench-only switch
//! `EngineOptions::audit_enabled = false`. Target: audit on ≤ 1.5× audit off (time per commit).
//!
//! `verify_audit`: `Engine::verify_audit` of one tenant whose log holds ≥ 1,000,000 entries
//! (built with large `Durability::None` transactions of small puts; each put is one entry).
//! Target: ≥ 1,000,000 entries/s.
//!
//! Sizes: `TENANTRY_BENCH_AUDIT_THREADS` (64), `TENANTRY_BENCH_AUDIT_ENTRIES` (1,000,000),
//! `TENANTRY_BENCH_COMMIT_SAMPLES` (20 samples).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tenantry_benches::{
    TABLE, bulk_options, create_tenants, env_usize, measuring, paired_ratio, run_split, seq_key,
    tempdir, value,
};
use tenantry_engine::{Context, Engine, EngineOptions, TenantHandle};

struct Writers {
    engine: Engine,
    handles: Vec<TenantHandle>,
    next: Vec<AtomicU64>,
}

fn writers(path: &std::path::Path, audit: bool, threads: usize) -> Writers {
    let mut options = EngineOptions::default();
    options.audit_enabled = audit;
    let engine = Engine::open_with(path, options).unwrap();
    let handles = create_tenants(&engine, "w", threads)
        .into_iter()
        .map(|t| {
            engine
                .tenant(&Context::tenant(t).actor("bench:writer"))
                .unwrap()
        })
        .collect();
    Writers {
        engine,
        handles,
        next: (0..threads).map(|_| AtomicU64::new(0)).collect(),
    }
}

fn audit_cost(c: &mut Criterion) {
    let threads = env_usize("TENANTRY_BENCH_AUDIT_THREADS", 64);
    let dir = tempdir();
    let on = writers(&dir.path().join("audit-on.redb"), true, threads);
    let off = writers(&dir.path().join("audit-off.redb"), false, threads);
    let v = value(7);

    let mut group = c.benchmark_group("audit_cost");
    group
        .sample_size(env_usize("TENANTRY_BENCH_COMMIT_SAMPLES", 20))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(1));
    let commit = |w: &Writers, t: usize| {
        let n = w.next[t].fetch_add(1, Ordering::Relaxed);
        let mut tx = w.handles[t].begin_write().unwrap();
        tx.put(TABLE, &seq_key(t as u64, n), &v).unwrap();
        tx.commit().unwrap();
    };
    for (name, w) in [
        (format!("audit_on/{threads}"), &on),
        (format!("audit_off/{threads}"), &off),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| run_split(threads, iters, |t| commit(w, t)));
        });
    }
    group.finish();
    let total = |w: &Writers| {
        w.next
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    eprintln!(
        "audit_cost: {} commits with audit, {} without",
        total(&on),
        total(&off)
    );
    if measuring() {
        // The same ratio measured in interleaved blocks of ~300 ms (see `paired_ratio`).
        let rounds = env_usize("TENANTRY_BENCH_PAIRED_COMMIT_ROUNDS", 11);
        let (q1, median, q3) = paired_ratio(
            rounds,
            Duration::from_millis(300),
            |n| run_split(threads, n, |t| commit(&on, t)),
            |n| run_split(threads, n, |t| commit(&off, t)),
        );
        eprintln!(
            "audit_cost: paired time per commit, audit on ÷ audit off, at {threads} threads = {median:.2} (IQR {q1:.2}–{q3:.2}, {rounds} rounds)"
        );
    }
    // The switch really is off: only the tenant.create entry is in the log.
    let probe = off.handles[0].tenant_id();
    assert!(off.engine.verify_audit(probe).unwrap() <= 1);
}

fn verify_audit(c: &mut Criterion) {
    let wanted = env_usize("TENANTRY_BENCH_AUDIT_ENTRIES", 1_000_000) as u64;
    let dir = tempdir();
    let engine = Engine::open_with(dir.path().join("audit.redb"), bulk_options()).unwrap();
    let tenant = create_tenants(&engine, "audited", 1)[0];
    let handle = engine
        .tenant(&Context::tenant(tenant).actor("user:1").ip("203.0.113.9"))
        .unwrap();

    // About 100 bytes per put counted against the 10 MiB transaction cap: 80,000 puts each.
    let started = Instant::now();
    let mut written = 0u64;
    while written < wanted {
        let n = (wanted - written).min(80_000);
        let mut tx = handle.begin_write().unwrap();
        for i in written..written + n {
            // 4,096 distinct keys, a distinct value (so a distinct digest) for every put.
            let k = format!("k{:04}", i % 4096);
            tx.put(TABLE, k.as_bytes(), &i.to_le_bytes()).unwrap();
        }
        tx.commit().unwrap();
        written += n;
    }
    let entries = engine.verify_audit(tenant).unwrap();
    assert!(entries >= wanted);
    eprintln!(
        "setup: {entries} audit entries written in {:.1?}",
        started.elapsed()
    );

    let mut group = c.benchmark_group("verify_audit");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(entries));
    group.bench_function(format!("entries/{entries}"), |b| {
        b.iter(|| black_box(engine.verify_audit(tenant).unwrap()));
    });

    // Diagnostic: a sparse stream. `sparse` writes one put for every ten of `busy`, in blocks of
    // 5,000 and 50,000 entries, so its stream spans 11 times its length of the shared log and is
    // read segment by segment (point lookups) instead of by one range scan.
    let sparse = create_tenants(&engine, "sparse", 1)[0];
    let busy = create_tenants(&engine, "busy", 1)[0];
    let (hs, hb) = (
        engine
            .tenant(&Context::tenant(sparse).actor("user:2"))
            .unwrap(),
        engine
            .tenant(&Context::tenant(busy).actor("user:3"))
            .unwrap(),
    );
    let sparse_wanted = (wanted / 10).max(1);
    for chunk in 0..sparse_wanted.div_ceil(5_000) {
        let (mut ts, mut tb) = (hs.begin_write().unwrap(), hb.begin_write().unwrap());
        for i in chunk * 5_000..((chunk + 1) * 5_000).min(sparse_wanted) {
            ts.put(TABLE, &i.to_be_bytes(), b"s").unwrap();
            for j in 0..10u64 {
                tb.put(TABLE, &[i.to_be_bytes(), j.to_be_bytes()].concat(), b"b")
                    .unwrap();
            }
        }
        ts.commit().unwrap();
        tb.commit().unwrap();
    }
    let sparse_entries = engine.verify_audit(sparse).unwrap();
    group.throughput(Throughput::Elements(sparse_entries));
    group.bench_function(format!("sparse_entries/{sparse_entries}"), |b| {
        b.iter(|| black_box(engine.verify_audit(sparse).unwrap()));
    });
    group.finish();
}

criterion_group!(benches, audit_cost, verify_audit);
criterion_main!(benches);
