//! The failover drill: writers on several tenants commit continuously through a multi-host
//! connection string while the primary is SIGKILLed three times; each time the standby is
//! promoted and a new synchronous standby cloned (`.ci/pg.sh kill-primary`, `promote`). Then
//! every acknowledged receipt verifies, the data equals a model of the acknowledged commits,
//! usage equals a recount, every in-doubt commit is resolved and no chain forks.
//!
//! Needs the servers of `eval "$(.ci/pg.sh up)"` (`TENANTRY_PG_URL`, `TENANTRY_PG_BASE`), and
//! changes them: it runs alone, in its own test binary. Skipped with a printed line without
//! them, unless `CI=true` or `TENANTRY_REQUIRE_PG=1`.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tenantry_engine::{
    AuditStream, CommitReceipt, Context, Engine, EngineOptions, Error, Operator, TenantId,
};

const TENANTS: usize = 6;
/// Writers 0..6 have a tenant each; writers 6 and 7 share tenant 0 with writer 0.
const WRITERS: usize = 8;
const CYCLES: usize = 3;

fn tenant_of(writer: usize) -> usize {
    if writer < TENANTS { writer } else { 0 }
}

fn pg() -> Option<(String, String)> {
    match (
        std::env::var("TENANTRY_PG_URL"),
        std::env::var("TENANTRY_PG_BASE"),
    ) {
        (Ok(url), Ok(base)) => Some((url, base)),
        _ => {
            let required = std::env::var("CI").is_ok_and(|v| v == "true")
                || std::env::var("TENANTRY_REQUIRE_PG").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "TENANTRY_PG_URL and TENANTRY_PG_BASE are not set, and CI=true or \
                 TENANTRY_REQUIRE_PG=1 requires PostgreSQL: eval \"$(.ci/pg.sh up)\""
            );
            println!("skipped: TENANTRY_PG_URL not set (eval \"$(.ci/pg.sh up)\" starts a server)");
            None
        }
    }
}

fn pg_sh(base: &str, command: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci/pg.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg(command)
        .env("TENANTRY_PG_BASE", base)
        .status()
        .unwrap();
    assert!(status.success(), ".ci/pg.sh {command} failed");
}

/// What one writer saw.
#[derive(Default)]
struct Outcomes {
    /// Acknowledged commits: (n, receipt).
    acked: Vec<(u64, CommitReceipt)>,
    /// Commits whose outcome the engine could not resolve in time: (n, seq, head).
    unknown: Vec<(u64, u64, [u8; 32])>,
    /// Failed commits (typed, retryable, not committed).
    failed: u64,
    /// Errors that were not retryable.
    unexpected: Vec<String>,
    /// Time of each acknowledgement, to measure downtime.
    ack_times: Vec<Instant>,
}

fn key(writer: usize, n: u64) -> Vec<u8> {
    format!("w{writer}:{}", n % 16).into_bytes()
}

fn value(writer: usize, n: u64) -> Vec<u8> {
    format!("writer {writer} commit {n}").into_bytes()
}

fn write_loop(engine: &Engine, tenant: TenantId, writer: usize, stop: &AtomicBool) -> Outcomes {
    let mut out = Outcomes::default();
    let ctx = Context::tenant(tenant).actor(format!("writer:{writer}"));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let attempt = engine.tenant(&ctx).and_then(|h| {
            let mut tx = h.begin_write()?;
            tx.put("data", &key(writer, n), &value(writer, n))?;
            tx.commit()
        });
        match attempt {
            Ok(receipt) => {
                out.acked.push((n, receipt));
                out.ack_times.push(Instant::now());
            }
            Err(Error::CommitOutcomeUnknown {
                audit_seq,
                audit_head,
                ..
            }) => out.unknown.push((n, audit_seq, audit_head)),
            Err(e) if e.is_retryable() => {
                out.failed += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                out.unexpected.push(e.to_string());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    out
}

#[test]
fn acknowledged_commits_survive_three_failovers() {
    let Some((url, base)) = pg() else { return };
    let started = Instant::now();
    let mut options = EngineOptions::default();
    options.postgres_schema = format!("drill_{}", std::process::id());
    // Long enough to wait out a promotion and a new standby's catch-up.
    options.lock_timeout = Duration::from_secs(20);
    let engine = Arc::new(Engine::open_postgres_with(&url, options).unwrap());
    let op = Operator::new("ops:drill");
    let names: Vec<String> = (0..TENANTS).map(|i| format!("t{i}")).collect();
    let tenants = engine
        .create_tenants(&op, names.iter().map(String::as_str))
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let engine = Arc::clone(&engine);
            let stop = Arc::clone(&stop);
            let tenant = tenants[tenant_of(w)];
            std::thread::spawn(move || write_loop(&engine, tenant, w, &stop))
        })
        .collect();

    let mut kills = Vec::new();
    let mut promoted = Vec::new();
    for cycle in 0..CYCLES {
        std::thread::sleep(Duration::from_millis(1500 + 500 * cycle as u64));
        kills.push(Instant::now());
        pg_sh(&base, "kill-primary");
        pg_sh(&base, "promote");
        promoted.push(Instant::now());
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let load_ended = started.elapsed();
    let outcomes: Vec<Outcomes> = writers.into_iter().map(|w| w.join().unwrap()).collect();

    // Every in-doubt commit is resolved now that the primary is back.
    let mut committed: Vec<Vec<u64>> = vec![Vec::new(); WRITERS];
    let (mut in_doubt, mut in_doubt_committed) = (0, 0);
    for (w, out) in outcomes.iter().enumerate() {
        assert!(
            out.unexpected.is_empty(),
            "writer {w}: {:?}",
            out.unexpected
        );
        committed[w].extend(out.acked.iter().map(|(n, _)| *n));
        for &(n, seq, head) in &out.unknown {
            in_doubt += 1;
            let tenant = tenants[tenant_of(w)];
            if engine.resolve_commit(tenant, seq, &head).unwrap() {
                in_doubt_committed += 1;
                committed[w].push(n);
            }
        }
    }

    // Every acknowledged receipt verifies; no chain forks (a fork would break the chain or
    // leave a receipt whose entry has another hash).
    for (i, &tenant) in tenants.iter().enumerate() {
        let count = engine.verify_audit(tenant).unwrap();
        assert!(count > 1, "tenant {i} has {count} audit entries");
    }
    // The whole chain is verified against each writer's last receipt; every other receipt's
    // entry is looked up (one row each, not one chain walk each).
    let mut acked_total = 0;
    for (w, out) in outcomes.iter().enumerate() {
        let tenant = tenants[tenant_of(w)];
        if let Some((_, last)) = out.acked.last() {
            engine
                .verify_audit_against(tenant, last.audit_seq, &last.audit_head)
                .unwrap();
        }
        for (n, receipt) in &out.acked {
            assert!(
                engine
                    .resolve_commit(tenant, receipt.audit_seq, &receipt.audit_head)
                    .unwrap(),
                "writer {w}: acknowledged commit {n} (seq {}) is not in the chain",
                receipt.audit_seq
            );
            acked_total += 1;
        }
    }
    engine.verify_stream(AuditStream::System, None).unwrap();

    // The data equals the model: per key, the value of the last commit that happened.
    let mut model: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = vec![BTreeMap::new(); TENANTS];
    for (w, ns) in committed.iter_mut().enumerate() {
        ns.sort_unstable();
        for &n in ns.iter() {
            model[tenant_of(w)].insert(key(w, n), value(w, n));
        }
    }
    for (i, &tenant) in tenants.iter().enumerate() {
        let h = engine.tenant(&Context::tenant(tenant)).unwrap();
        let stored: BTreeMap<Vec<u8>, Vec<u8>> = h
            .begin_read()
            .unwrap()
            .scan_prefix("data", b"")
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            stored, model[i],
            "tenant {i}: data differs from the acknowledged commits"
        );
        let usage = engine.tenant_info(tenant).unwrap().usage;
        let bytes: usize = stored.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!(usage.keys as usize, stored.len(), "tenant {i}: key count");
        assert_eq!(usage.bytes as usize, bytes, "tenant {i}: byte count");
    }

    // Each writer committed again after each promotion.
    for (cycle, at) in promoted.iter().enumerate() {
        for (w, out) in outcomes.iter().enumerate() {
            assert!(
                out.ack_times.iter().any(|t| t > at),
                "writer {w} committed nothing after promotion {cycle}"
            );
        }
    }
    // Downtime: the longest time without any acknowledgement after each kill.
    let mut acks: Vec<Instant> = outcomes.iter().flat_map(|o| o.ack_times.clone()).collect();
    acks.sort_unstable();
    let downtime: Vec<String> = kills
        .iter()
        .map(|&kill| {
            let mut last = kill;
            let mut longest = Duration::ZERO;
            for &t in acks.iter().filter(|t| **t > kill) {
                longest = longest.max(t - last);
                last = t;
                if t > kill + Duration::from_secs(30) {
                    break;
                }
            }
            format!("{:.1} s", longest.as_secs_f64())
        })
        .collect();
    let failed: u64 = outcomes.iter().map(|o| o.failed).sum();
    println!(
        "failover drill: {acked_total} acknowledged commits, {failed} failed (retryable), \
         {in_doubt} in doubt ({in_doubt_committed} had committed), longest time without a \
         commit after each kill: {}; load for {:.1} s, {:.1} s in all",
        downtime.join(", "),
        load_ended.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}
