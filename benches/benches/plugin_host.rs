//! `plugin_host`: what the sandbox costs, each measurement beside its native baseline.
//!
//! * `noop_invoke`: `PluginHost::invoke` of an export that makes no host call (fresh instance
//!   from the pool, fuel and deadline set, one call, no storage touched) vs a native no-op
//!   closure. Target: median ≤ 5 µs.
//! * `get100`: a plugin making 100 `kv::get` vs the same 100 gets made natively through a
//!   `TenantHandle` in one `WriteTxn` (as an invocation does), both with audit of host calls
//!   switched off (`HostConfig::audit_host_calls = false`, `EngineOptions::audit_enabled =
//!   false`). Target ≤ 2×.
//! * `get100_audit`: the same plugin with host-call audit on vs off (memory-backed engine, so
//!   the difference is the audit work, not fsync), and `get100_durable`: the end-to-end latency
//!   of one audited invocation on a file with `Durability::Immediate` (it returns only after
//!   its 102 audit entries are durable).
//! * `invocations`: invocations per second of the `counter` plugin's `increment` with 1, 8 and
//!   64 threads, each thread its own tenant, audit on, durable file.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use tenantry_benches::{create_tenants, env_list, run_split, tempdir};
use tenantry_engine::{Context, Durability, Engine, EngineOptions, TenantId};
use tenantry_host::{HostConfig, PluginHost};
use tenantry_tests::plugins;

fn memory_engine(audit: bool) -> Engine {
    let mut options = EngineOptions::default();
    options.durability = Durability::None;
    options.audit_enabled = audit;
    Engine::in_memory_with(options).unwrap()
}

fn host(engine: &Engine, audit: bool) -> PluginHost {
    let mut config = HostConfig::default();
    config.audit_host_calls = audit;
    PluginHost::new(engine.clone(), config).unwrap()
}

fn ctx(t: TenantId) -> Context {
    Context::tenant(t).actor("bench:user")
}

/// A tenant with the bench plugin and keys k00..k99 in table `bench`.
fn bench_tenant(engine: &Engine, host: &PluginHost, name: &str) -> TenantId {
    let t = create_tenants(engine, name, 1)[0];
    host.install(&ctx(t), "bench", plugins::BENCH).unwrap();
    let h = engine.tenant(&ctx(t)).unwrap();
    let mut tx = h.begin_write().unwrap();
    for i in 0..100u8 {
        tx.put("bench", &[b'k', b'0' + i / 10, b'0' + i % 10], &[i; 100])
            .unwrap();
    }
    tx.commit().unwrap();
    t
}

fn noop_invoke(c: &mut Criterion) {
    let engine = memory_engine(true);
    let host = host(&engine, true);
    let t = bench_tenant(&engine, &host, "noop");
    let ctx = ctx(t);
    let mut group = c.benchmark_group("noop_invoke");
    group.bench_function("plugin", |b| {
        b.iter(|| black_box(host.invoke(&ctx, "bench", "noop", b"").unwrap()));
    });
    group.bench_function("native", |b| {
        let f = black_box(|input: &[u8]| -> Vec<u8> { input.to_vec() });
        b.iter(|| black_box(f(black_box(b""))));
    });
    group.finish();
}

fn native_get100(engine: &Engine, t: TenantId) -> u32 {
    let h = engine.tenant(&ctx(t)).unwrap();
    let tx = h.begin_write().unwrap();
    let mut found = 0;
    for i in 0..100u8 {
        if tx
            .get("bench", &[b'k', b'0' + i / 10, b'0' + i % 10])
            .unwrap()
            .is_some()
        {
            found += 1;
        }
    }
    tx.commit().unwrap();
    found
}

fn get100(c: &mut Criterion) {
    let mut group = c.benchmark_group("get100");
    // Sandbox cost: audit off on both sides.
    let engine = memory_engine(false);
    let host_off = host(&engine, false);
    let t = bench_tenant(&engine, &host_off, "quiet");
    assert_eq!(
        host_off.invoke(&ctx(t), "bench", "get100", b"").unwrap(),
        b"100"
    );
    assert_eq!(native_get100(&engine, t), 100);
    group.bench_function("plugin", |b| {
        b.iter(|| black_box(host_off.invoke(&ctx(t), "bench", "get100", b"").unwrap()));
    });
    group.bench_function("native", |b| {
        b.iter(|| black_box(native_get100(&engine, t)))
    });
    group.finish();

    // Audit cost: the same plugin with host-call audit on vs off (no fsync either way).
    let mut group = c.benchmark_group("get100_audit");
    let audited = memory_engine(true);
    let host_on = host(&audited, true);
    let t_on = bench_tenant(&audited, &host_on, "loud");
    group.bench_function("audit_on", |b| {
        b.iter(|| black_box(host_on.invoke(&ctx(t_on), "bench", "get100", b"").unwrap()));
    });
    let unaudited = memory_engine(true);
    let host_quiet = host(&unaudited, false);
    let t_quiet = bench_tenant(&unaudited, &host_quiet, "quiet");
    group.bench_function("audit_off", |b| {
        b.iter(|| {
            black_box(
                host_quiet
                    .invoke(&ctx(t_quiet), "bench", "get100", b"")
                    .unwrap(),
            )
        });
    });
    group.finish();

    // End to end: one audited invocation on a file, durable before it returns.
    let mut group = c.benchmark_group("get100_durable");
    group.sample_size(30);
    let dir = tempdir();
    let durable = Engine::open(dir.path().join("host.redb")).unwrap();
    let host_durable = host(&durable, true);
    let td = bench_tenant(&durable, &host_durable, "durable");
    group.bench_function("audit_on", |b| {
        b.iter(|| {
            black_box(
                host_durable
                    .invoke(&ctx(td), "bench", "get100", b"")
                    .unwrap(),
            )
        });
    });
    group.finish();
}

fn invocations(c: &mut Criterion) {
    let thread_counts = env_list("TENANTRY_BENCH_THREADS", &[1, 8, 64]);
    let max_threads = thread_counts.iter().copied().max().unwrap_or(1);
    let dir = tempdir();
    let engine = Engine::open(dir.path().join("invocations.redb")).unwrap();
    let host = host(&engine, true);
    let tenants = create_tenants(&engine, "inv", max_threads);
    for &t in &tenants {
        host.install(&ctx(t), "counter", plugins::COUNTER).unwrap();
    }
    let contexts: Vec<Context> = tenants.iter().map(|&t| ctx(t)).collect();
    let mut group = c.benchmark_group("invocations");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(1));
    for &threads in &thread_counts {
        group.bench_with_input(
            BenchmarkId::new("counter_increment", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    run_split(threads, iters, |i| {
                        host.invoke(&contexts[i], "counter", "increment", b"")
                            .unwrap();
                    })
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, noop_invoke, get100, invocations);
criterion_main!(benches);
