//! Wasmtime's instance pool under load: at 64 and at 256 concurrent invocations over 64
//! tenants, an admitted invocation never fails for a pool reason; a full pool is `Busy` before
//! any code runs. Found by a 64-thread benchmark, where 1.1% of invocations failed with
//! `InvokeError::Trap("maximum concurrent limit of 64 for memory stripe 0 reached")`.
//!
//! A test binary of its own: hundreds of threads invoking at once would starve the compiles of
//! tests running beside it in one binary (and trip their compile timeout).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use tenantry_engine::{Context, Durability, Engine, EngineOptions, Operator};
use tenantry_host::{HostConfig, InvokeError, PluginHost};

fn op() -> Operator {
    Operator::new("ops:pool-test")
}

fn ctx(t: tenantry_engine::TenantId) -> Context {
    Context::tenant(t).actor("user:pool")
}

fn engine() -> Engine {
    let mut options = EngineOptions::default();
    options.durability = Durability::None;
    Engine::in_memory_with(options).unwrap()
}

fn host(engine: &Engine) -> PluginHost {
    PluginHost::new(engine.clone(), HostConfig::default()).unwrap()
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

/// A plugin whose `noop` does nothing: quick to compile 64 times in a debug build.
///
/// It writes one byte past the first 64 KiB of its memory, which the host resets in place
/// (`pool_keep_resident_bytes`): the page beyond goes back to the kernel through wasmtime's
/// batched decommit queue, the path on which a released slot is briefly in no queue (a module
/// that stays within the kept bytes returns its slot at once and would not show the race).
const NOOP_WAT: &str = r#"(module
  (memory (export "memory") 4)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "noop") (param i32 i32) (result i32)
    (i32.store8 (i32.const 200000) (i32.const 1))
    (i32.const 0)))"#;

/// At `threads` concurrent invocations over 64 tenants, every invocation either runs or is
/// refused as `Busy` before any code runs; none fails because wasmtime's pool was full.
fn no_admitted_invocation_fails_for_the_pool(threads: usize, per_thread: usize) {
    let engine = engine();
    let host = host(&engine);
    let noop = wat(NOOP_WAT);
    let tenants: Vec<_> = (0..64)
        .map(|i| {
            let t = engine.create_tenant(&op(), &format!("t{i}")).unwrap();
            host.install(&ctx(t), "bench", &noop).unwrap();
            t
        })
        .collect();
    let (ok, busy) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let barrier = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (host, t) = (host.clone(), tenants[i % tenants.len()]);
            let (ok, busy, barrier) = (ok.clone(), busy.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut other = Vec::new();
                for _ in 0..per_thread {
                    match host.invoke(&ctx(t), "bench", "noop", b"") {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(InvokeError::Busy { .. }) => busy.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            other.push(e.to_string());
                            0
                        }
                    };
                }
                other
            })
        })
        .collect();
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let (ok, busy) = (ok.load(Ordering::Relaxed), busy.load(Ordering::Relaxed));
    eprintln!(
        "{threads} threads: {ok} ran, {busy} busy, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(ok + busy, (threads * per_thread) as u64);
    assert!(ok > 0);
}

/// One test, so that the two loads run one after the other: each keeps every core busy.
#[test]
fn no_admitted_invocation_fails_for_the_pool_at_64_and_256_threads() {
    no_admitted_invocation_fails_for_the_pool(64, 60);
    no_admitted_invocation_fails_for_the_pool(256, 15);
}
