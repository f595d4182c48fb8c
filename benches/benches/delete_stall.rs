//! `delete_stall`: the latency of a small durable commit of tenant B (one put, audit on,
//! `Durability::Immediate`) while another thread deletes tenant A, which holds ~1,000,000 keys
//! (`Engine::delete_tenant`, whose purge runs in chunks through the shared commit pipeline);
//! against the same commit with no deletion running. Besides criterion's estimate of the mean,
//! it prints p50, p99, p99.9 and max of every commit it timed, since the promise is that deleting
//! a tenant of millions of keys never stalls other tenants' commits for long.
//!
//! Several A tenants are loaded before the group runs, so that deletions can run back to back
//! while criterion measures; B's commits are only timed while a deletion is in progress. If the
//! pre-loaded tenants run out, the deleting thread loads another (commits are not timed then).
//!
//! Sizes: `TENANTRY_BENCH_DELETE_KEYS` (1,000,000 keys per deleted tenant),
//! `TENANTRY_BENCH_SETTLE_MS` (3,000 ms of rest after the bulk load, before timing),
//! `TENANTRY_BENCH_DELETE_TENANTS` (4 pre-loaded), `TENANTRY_BENCH_DELETE_SAMPLES` (10),
//! `TENANTRY_BENCH_DELETE_MEASURE_MS` (2,000: criterion's measurement time of the commits during
//! deletion, which overrides `--measurement-time`, because deletions are short and reloads long).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use tenantry_benches::{
    LatencySummary, PUTS_PER_TXN, TABLE, env_usize, key, operator, seq_key, settle, tempdir, value,
};
use tenantry_engine::{Context, Engine, EngineOptions, TenantHandle, TenantId};

/// Loads `keys` keys into a new tenant `name`, in large transactions; `None` if `stop` was set.
fn load_tenant(engine: &Engine, name: &str, keys: u64, stop: &AtomicBool) -> Option<TenantId> {
    let started = Instant::now();
    let id = engine.create_tenant(&operator(), name).unwrap();
    let handle = engine
        .tenant(&Context::tenant(id).actor("bench:loader"))
        .unwrap();
    let mut i = 0;
    while i < keys {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let end = (i + PUTS_PER_TXN as u64).min(keys);
        let mut tx = handle.begin_write().unwrap();
        for j in i..end {
            tx.put(TABLE, &key(j), &value(j)).unwrap();
        }
        tx.commit().unwrap();
        i = end;
    }
    eprintln!(
        "setup: loaded {keys} keys into tenant {name} in {:.1?}",
        started.elapsed()
    );
    Some(id)
}

#[derive(Default)]
struct State {
    deleting: bool,
    in_flight: bool,
    deletions: Vec<(Duration, u64)>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

/// A thread that deletes the pre-loaded tenants one after another, then loads and deletes more.
struct Deleter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Deleter {
    fn start(engine: Engine, mut ready: VecDeque<TenantId>, keys: u64) -> Self {
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let op = operator();
            let mut generation = ready.len();
            while !s.stop.load(Ordering::Relaxed) {
                let tenant = match ready.pop_front() {
                    Some(t) => t,
                    None => {
                        generation += 1;
                        match load_tenant(&engine, &format!("a{generation}"), keys, &s.stop) {
                            Some(t) => t,
                            None => break,
                        }
                    }
                };
                s.state.lock().unwrap().deleting = true;
                s.changed.notify_all();
                let started = Instant::now();
                let mut chunks = 0;
                engine
                    .delete_tenant_with_progress(&op, tenant, |_| chunks += 1)
                    .unwrap();
                let took = started.elapsed();
                let mut state = s.state.lock().unwrap();
                state.deleting = false;
                state.deletions.push((took, chunks));
                // Let a commit that started during the deletion finish before loading more.
                while state.in_flight {
                    state = s.changed.wait(state).unwrap();
                }
            }
        });
        Deleter {
            shared,
            thread: Some(thread),
        }
    }

    /// Runs `commit` once while a deletion is in progress, waiting for one if needed.
    fn during_deletion(&self, commit: impl FnOnce() -> Duration) -> Duration {
        {
            let mut state = self.shared.state.lock().unwrap();
            while !state.deleting {
                state = self.shared.changed.wait(state).unwrap();
            }
            state.in_flight = true;
        }
        let took = commit();
        self.shared.state.lock().unwrap().in_flight = false;
        self.shared.changed.notify_all();
        took
    }

    /// Stops after the current deletion; returns each deletion's duration and chunk count.
    fn stop(mut self) -> Vec<(Duration, u64)> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut self.shared.state.lock().unwrap().deletions)
    }
}

fn delete_stall(c: &mut Criterion) {
    let keys = env_usize("TENANTRY_BENCH_DELETE_KEYS", 1_000_000) as u64;
    let preload = env_usize("TENANTRY_BENCH_DELETE_TENANTS", 4);
    let dir = tempdir();
    // As shipped: Durability::Immediate, audit on, the default purge chunk.
    let options = EngineOptions::default();
    let chunk = options.purge_chunk_keys;
    let engine = Engine::open_with(dir.path().join("engine.redb"), options).unwrap();
    let b_id = engine.create_tenant(&operator(), "b").unwrap();
    let b: TenantHandle = engine
        .tenant(&Context::tenant(b_id).actor("user:b"))
        .unwrap();
    let never = AtomicBool::new(false);
    let ready: VecDeque<TenantId> = (0..preload)
        .map(|i| load_tenant(&engine, &format!("a{i}"), keys, &never).unwrap())
        .collect();
    // Let the writeback of the bulk load settle before timing the baseline.
    settle();

    let next = AtomicU64::new(0);
    let v = value(7);
    let commit_b = || {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut tx = b.begin_write().unwrap();
        tx.put(TABLE, &seq_key(0, n), &v).unwrap();
        tx.commit().unwrap();
        started.elapsed()
    };

    let mut idle = Vec::new();
    let mut during = Vec::new();
    let mut deleter = None;
    let mut ready = Some(ready);

    let mut group = c.benchmark_group("delete_stall");
    group
        .sample_size(env_usize("TENANTRY_BENCH_DELETE_SAMPLES", 10))
        .sampling_mode(SamplingMode::Flat);
    group.bench_function("commit_idle", |bencher| {
        bencher.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let took = commit_b();
                idle.push(took);
                total += took;
            }
            total
        });
    });
    // A short warm-up, within the first pre-loaded deletions: criterion's warm-up counts wall
    // time, which would include waiting for the next tenant to be loaded.
    group.warm_up_time(Duration::from_millis(300));
    // A 1M-key deletion takes well under a second, and loading the next tenant ~20 s: a short
    // measurement keeps the number of deletions (and loads) near the pre-loaded tenants.
    group.measurement_time(Duration::from_millis(
        env_usize("TENANTRY_BENCH_DELETE_MEASURE_MS", 2000) as u64,
    ));
    group.bench_function("commit_during_delete", |bencher| {
        let d: &Deleter = deleter.get_or_insert_with(|| {
            Deleter::start(engine.clone(), ready.take().unwrap_or_default(), keys)
        });
        bencher.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let took = d.during_deletion(commit_b);
                during.push(took);
                total += took;
            }
            total
        });
    });
    group.finish();

    let deletions = deleter.map(Deleter::stop).unwrap_or_default();
    eprintln!("\ndelete_stall: commits of tenant B (one put, audit on, Durability::Immediate)");
    if let Some(s) = LatencySummary::of(&mut idle) {
        eprintln!("  no deletion running:   {s}");
    }
    if let Some(s) = LatencySummary::of(&mut during) {
        eprintln!("  while A is deleted:    {s}");
    }
    for (took, chunks) in &deletions {
        eprintln!(
            "  deletion of a tenant of {keys} keys: {took:.2?} in {chunks} purge commits of ≤ {chunk} keys ({:.1?} per chunk)",
            *took / (*chunks).max(1) as u32
        );
    }
}

criterion_group!(benches, delete_stall);
criterion_main!(benches);
