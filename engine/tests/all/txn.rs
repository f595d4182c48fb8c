//! Transactions: isolation, serializability, the lock timeout, and non-blocking commits.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tenantry_engine::{Durability, Engine, EngineOptions, Error};

use super::{engine, handle, op, put};

#[test]
fn write_txn_reads_its_own_writes_and_drop_aborts() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    put(&h, "p", b"a", b"1");
    put(&h, "p", b"c", b"3");
    let mut tx = h.begin_write().unwrap();
    tx.put("p", b"b", b"2").unwrap();
    tx.put("p", b"c", b"33").unwrap();
    assert!(tx.delete("p", b"a").unwrap());
    assert!(!tx.delete("p", b"zz").unwrap());
    assert_eq!(tx.get("p", b"b").unwrap(), Some(b"2".to_vec()));
    assert_eq!(tx.get("p", b"a").unwrap(), None);
    let merged: Vec<_> = tx
        .scan_prefix("p", b"")
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        merged,
        vec![
            (b"b".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"33".to_vec())
        ]
    );
    // Other readers do not see uncommitted writes.
    assert_eq!(h.begin_read().unwrap().get("p", b"b").unwrap(), None);
    drop(tx);
    let r = h.begin_read().unwrap();
    assert_eq!(r.get("p", b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(r.get("p", b"b").unwrap(), None);
}

#[test]
fn read_txn_is_a_snapshot() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    put(&h, "p", b"k", b"old");
    let r = h.begin_read().unwrap();
    put(&h, "p", b"k", b"new");
    put(&h, "p", b"k2", b"x");
    assert_eq!(r.get("p", b"k").unwrap(), Some(b"old".to_vec()));
    assert_eq!(r.scan_prefix("p", b"").unwrap().count(), 1);
}

#[test]
fn concurrent_increments_are_serializable() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let h = h.clone();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let mut tx = h.begin_write().unwrap();
                    let n = tx.get_value::<u64>("counter", b"n").unwrap().unwrap_or(0);
                    tx.put_value("counter", b"n", &(n + 1)).unwrap();
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let n = h
        .begin_read()
        .unwrap()
        .get_value::<u64>("counter", b"n")
        .unwrap();
    assert_eq!(n, Some(4000));
    assert_eq!(engine.verify_audit(t).unwrap(), 4000 + 1);
}

#[test]
fn lock_wait_is_bounded_and_retryable() {
    let mut options = EngineOptions::default();
    options.durability = Durability::None;
    options.lock_timeout = Duration::from_millis(100);
    let engine = super::engine_with(options);
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    let held = h.begin_write().unwrap();
    let started = Instant::now();
    let err = h.begin_write().unwrap_err();
    assert!(
        matches!(err, Error::LockTimeout { tenant, .. } if tenant == t),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(started.elapsed() >= Duration::from_millis(100));
    drop(held);
    h.begin_write().unwrap();
}

/// A tenant holding a write transaction open for a second does not delay another tenant's
/// durable commit.
#[test]
fn open_transaction_does_not_delay_other_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("db.redb")).unwrap();
    let a = engine.create_tenant(&op(), "slow").unwrap();
    let b = engine.create_tenant(&op(), "fast").unwrap();
    let ha = handle(&engine, a);
    let hb = handle(&engine, b);
    let barrier = Arc::new(Barrier::new(2));
    let holder = {
        let barrier = Arc::clone(&barrier);
        std::thread::spawn(move || {
            let mut tx = ha.begin_write().unwrap();
            tx.put("p", b"k", b"v").unwrap();
            barrier.wait();
            std::thread::sleep(Duration::from_secs(1));
            tx.commit().unwrap();
        })
    };
    barrier.wait();
    let started = Instant::now();
    for i in 0..5u8 {
        put(&hb, "p", &[i], b"v");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(500),
        "5 commits took {elapsed:?}"
    );
    holder.join().unwrap();
}

#[test]
fn empty_commit_returns_the_current_head() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    let r1 = {
        let mut tx = h.begin_write().unwrap();
        tx.put("p", b"k", b"v").unwrap();
        tx.commit().unwrap()
    };
    let r2 = h.begin_write().unwrap().commit().unwrap();
    assert_eq!(r1, r2);
    assert_eq!(r1.audit_seq, 2); // tenant.create, kv.put
}

#[test]
fn rollback_audited_records_failure_without_data() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    // As the plugin host records an invocation: a component's handle, which may record `kv.get`.
    let h = engine
        .component_handle(&super::ctx(t))
        .unwrap()
        .with_origin("plugin:projects@abc/inv-1");
    let mut tx = h.begin_write().unwrap();
    tx.put("p", b"k", b"v").unwrap();
    tx.audit_event(tenantry_engine::AuditEvent::new("kv.get").target("p/x"))
        .unwrap();
    tx.rollback_audited("trap: unreachable").unwrap();
    assert_eq!(h.begin_read().unwrap().get("p", b"k").unwrap(), None);
    let log = h.audit_log(&Default::default()).unwrap();
    assert_eq!(log[0].action, "kv.get");
    assert_eq!(log[1].action, "kv.put");
    for e in &log[..2] {
        assert_eq!(
            e.outcome,
            tenantry_engine::Outcome::Failed("trap: unreachable".into())
        );
        assert_eq!(e.origin.as_deref(), Some("plugin:projects@abc/inv-1"));
    }
    assert_eq!(engine.tenant_info(t).unwrap().usage.keys, 0);
}

/// Snapshots share one redb read transaction until the next commit; a snapshot begun after a
/// commit returned must still see it, from any handle and thread, while other tenants commit.
#[test]
fn a_snapshot_begun_after_a_commit_sees_it() {
    let engine = engine();
    let (a, b) = (
        engine.create_tenant(&op(), "a").unwrap(),
        engine.create_tenant(&op(), "b").unwrap(),
    );
    /// Stops the noise thread however the test ends, so a failure cannot hang the scope.
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let hb = handle(&engine, b);
    std::thread::scope(|s| {
        let _stop = Stop(&stop);
        s.spawn(|| {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                put(&hb, "noise", &i.to_be_bytes(), b"x");
                i += 1;
            }
        });
        let writer = handle(&engine, a);
        for i in 0u32..300 {
            let mut tx = writer.begin_write().unwrap();
            tx.put("t", b"k", &i.to_be_bytes()).unwrap();
            tx.commit().unwrap();
            let seen = std::thread::scope(|inner| {
                inner
                    .spawn(|| {
                        handle(&engine, a)
                            .begin_read()
                            .unwrap()
                            .get("t", b"k")
                            .unwrap()
                    })
                    .join()
                    .unwrap()
            });
            assert_eq!(seen, Some(i.to_be_bytes().to_vec()), "commit {i}");
        }
    });
}
