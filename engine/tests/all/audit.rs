//! The audit log: contents, queries, export, and tamper evidence against direct redb edits.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tenantry_engine::{AuditQuery, AuditStream, Engine, Error, Outcome, TenantId};

use super::{ctx, op};

const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("tenantry.audit_log");
const TAILS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("tenantry.tails");

/// The position of `(stream, seq)` in the shared log, found by its 24-byte header
/// (`stream u64 BE ++ seq u64 BE ++ prev u64 BE`).
fn position(path: &std::path::Path, stream: u64, seq: u64) -> u64 {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(LOG).unwrap();
    let want = [stream.to_be_bytes(), seq.to_be_bytes()].concat();
    for item in table.iter().unwrap() {
        let (pos, value) = item.unwrap();
        if value.value().starts_with(&want) {
            return pos.value();
        }
    }
    panic!("no entry {stream}/{seq}");
}

/// A file with one tenant and `n` audited puts; returns the path, tenant and last receipt.
fn fixture(
    n: u32,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    tenantry_engine::TenantId,
    tenantry_engine::CommitReceipt,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let engine = Engine::open(&path).unwrap();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = engine.tenant(&ctx(t)).unwrap();
    let mut receipt = None;
    for i in 0..n {
        let mut tx = h.begin_write().unwrap();
        tx.put("p", &i.to_be_bytes(), b"v").unwrap();
        receipt = Some(tx.commit().unwrap());
    }
    (dir, path, t, receipt.unwrap())
}

/// Edits the audit log with redb's own API, so redb's checksums stay valid.
fn tamper(path: &std::path::Path, edit: impl FnOnce(&mut redb::Table<'_, u64, &[u8]>)) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(LOG).unwrap();
        edit(&mut table);
    }
    txn.commit().unwrap();
}

fn read(path: &std::path::Path, pos: u64) -> Vec<u8> {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(LOG).unwrap();
    table.get(pos).unwrap().unwrap().value().to_vec()
}

/// Overwrites a stream's recorded head, the first 56 bytes of its row in `tenantry.tails`:
/// `seq ++ hash ++ position ++ timestamp`.
fn set_head(path: &std::path::Path, stream: u64, seq: u64, hash: &[u8], pos: u64) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut tails = txn.open_table(TAILS).unwrap();
        let mut value = tails.get(stream).unwrap().unwrap().value().to_vec();
        let head = [
            &seq.to_be_bytes()[..],
            hash,
            &pos.to_be_bytes(),
            &0i64.to_be_bytes(),
        ]
        .concat();
        value[..56].copy_from_slice(&head);
        tails.insert(stream, &value[..]).unwrap();
    }
    txn.commit().unwrap();
}

fn verify(path: &std::path::Path, t: tenantry_engine::TenantId) -> Result<u64, Error> {
    Engine::open(path).unwrap().verify_audit(t)
}

#[test]
fn entries_carry_the_context_and_are_newest_first() {
    let (_d, path, t, receipt) = fixture(3);
    let engine = Engine::open(&path).unwrap();
    let h = engine.tenant(&ctx(t)).unwrap();
    let log = h.audit_log(&AuditQuery::default()).unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 3, 2, 1]);
    let e = &log[0];
    assert_eq!(e.action, "kv.put");
    assert_eq!(
        (e.actor.as_deref(), e.ip.as_deref(), e.request_id.as_deref()),
        (Some("user:1"), Some("203.0.113.9"), Some("req-1"))
    );
    assert_eq!(e.target.as_deref(), Some("p/0x00000002"));
    assert_eq!(e.outcome, Outcome::Ok);
    assert!(e.value_digest.is_some());
    assert!(!e.by_operator);
    assert_eq!((receipt.audit_seq, receipt.audit_head), (4, e.hash));
    assert_eq!(log[3].action, "tenant.create");
    assert!(log[3].by_operator);
    assert_eq!(engine.verify_audit(t).unwrap(), 4);
    assert_eq!(
        engine
            .verify_audit_against(t, receipt.audit_seq, &receipt.audit_head)
            .unwrap(),
        4
    );
}

#[test]
fn queries_filter_and_page() {
    let (_d, path, t, _) = fixture(5);
    let engine = Engine::open(&path).unwrap();
    let h = engine.tenant(&ctx(t)).unwrap();
    let mut tx = h.begin_write().unwrap();
    tx.audit("project.archive", Some("archived by owner"))
        .unwrap();
    tx.commit().unwrap();
    let q = |q: AuditQuery| h.audit_log(&q).unwrap();
    assert_eq!(q(AuditQuery::default().action_prefix("project.")).len(), 1);
    assert_eq!(q(AuditQuery::default().action_prefix("kv.")).len(), 5);
    assert_eq!(q(AuditQuery::default().actor("ops:test")).len(), 1);
    assert_eq!(q(AuditQuery::default().actor("user:1")).len(), 6);
    let page1 = q(AuditQuery::default().limit(3));
    let page2 = q(AuditQuery::default().limit(3).before_seq(page1[2].seq));
    assert_eq!(
        page1
            .iter()
            .chain(&page2)
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        [7, 6, 5, 4, 3, 2]
    );
    let newest = page1[0].timestamp_micros;
    assert_eq!(q(AuditQuery::default().since(newest + 1)).len(), 0);
    assert_eq!(q(AuditQuery::default().until(i64::MAX)).len(), 7);
    let mut out = Vec::new();
    assert_eq!(h.export_audit_jsonl(&mut out).unwrap(), 7);
    let text = String::from_utf8(out).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 1);
    assert_eq!(first["action"], "tenant.create");
    assert_eq!(first["hash"].as_str().unwrap().len(), 64);
    let mut sys = Vec::new();
    assert!(
        engine
            .export_audit_jsonl(&op(), AuditStream::System, &mut sys)
            .unwrap()
            >= 1
    );
}

#[test]
fn editing_an_entry_is_detected() {
    let (_d, path, t, _) = fixture(5);
    let k = position(&path, t.get(), 3);
    let mut bytes = read(&path, k);
    // Flip a byte inside the entry (the action text), keep everything else.
    let pos = bytes.windows(6).position(|w| w == b"kv.put").unwrap();
    bytes[pos + 3] = b'P';
    tamper(&path, |table| {
        table.insert(k, &bytes[..]).unwrap();
    });
    assert!(matches!(
        verify(&path, t),
        Err(Error::AuditTampered { seq: 3, .. })
    ));
}

#[test]
fn deleting_an_entry_is_detected() {
    let (_d, path, t, _) = fixture(5);
    let p2 = position(&path, t.get(), 2);
    tamper(&path, |table| {
        table.remove(p2).unwrap();
    });
    assert!(matches!(
        verify(&path, t),
        Err(Error::AuditTampered { seq: 2, .. })
    ));
}

#[test]
fn inserting_an_entry_is_detected() {
    let (_d, path, t, _) = fixture(5);
    // Append a copy of seq 6 as seq 7, linked to seq 6, and make it the head.
    let six = position(&path, t.get(), 6);
    let mut forged = read(&path, six);
    forged[8..16].copy_from_slice(&7u64.to_be_bytes());
    forged[16..24].copy_from_slice(&six.to_be_bytes());
    tamper(&path, |table| {
        table.insert(six + 1, &forged[..]).unwrap();
    });
    set_head(&path, t.get(), 7, &forged[forged.len() - 32..], six + 1);
    assert!(matches!(
        verify(&path, t),
        Err(Error::AuditTampered { seq: 7, .. })
    ));
}

#[test]
fn reordering_entries_is_detected() {
    let (_d, path, t, _) = fixture(5);
    let (p3, p4) = (position(&path, t.get(), 3), position(&path, t.get(), 4));
    let (a, b) = (read(&path, p3), read(&path, p4));
    tamper(&path, |table| {
        table.insert(p3, &b[..]).unwrap();
        table.insert(p4, &a[..]).unwrap();
    });
    assert!(matches!(
        verify(&path, t),
        Err(Error::AuditTampered { seq: 3, .. })
    ));
}

#[test]
fn truncating_the_tail_is_detected_against_a_kept_head() {
    let (_d, path, t, receipt) = fixture(5);
    // Remove the last two entries and rewrite the head so the log looks consistent.
    let p4 = position(&path, t.get(), 4);
    let head4 = read(&path, p4);
    let (p5, p6) = (position(&path, t.get(), 5), position(&path, t.get(), 6));
    tamper(&path, |table| {
        table.remove(p6).unwrap();
        table.remove(p5).unwrap();
    });
    // The hash is the last 32 bytes of the stored entry.
    set_head(&path, t.get(), 4, &head4[head4.len() - 32..], p4);
    let engine = Engine::open(&path).unwrap();
    assert_eq!(
        engine.verify_audit(t).unwrap(),
        4,
        "a consistent truncation fools the plain check"
    );
    assert!(matches!(
        engine.verify_audit_against(t, receipt.audit_seq, &receipt.audit_head),
        Err(Error::AuditTampered { .. })
    ));
}

/// Removes the database's write-ahead log (`<file>-wal`).
fn remove_log(path: &std::path::Path) {
    let mut log = path.as_os_str().to_owned();
    log.push("-wal");
    std::fs::remove_file(log).unwrap();
}

#[test]
fn a_rolled_back_file_is_detected_against_a_kept_head() {
    let (_d, path, t, _) = fixture(2);
    let backup = std::fs::read(&path).unwrap();
    let receipt = {
        let engine = Engine::open(&path).unwrap();
        let h = engine.tenant(&ctx(t)).unwrap();
        let mut tx = h.begin_write().unwrap();
        tx.put("p", b"later", b"v").unwrap();
        tx.commit().unwrap()
    };
    // The whole database rolled back: its file restored from the copy, its write-ahead log
    // (which holds the later commit until the next checkpoint) removed.
    std::fs::write(&path, &backup).unwrap();
    remove_log(&path);
    let engine = Engine::open(&path).unwrap();
    engine.verify_audit(t).unwrap();
    assert!(
        engine
            .verify_audit_against(t, receipt.audit_seq, &receipt.audit_head)
            .is_err()
    );
    // A forked history (rolled back, then new writes) is caught too.
    let h = engine.tenant(&ctx(t)).unwrap();
    let mut tx = h.begin_write().unwrap();
    tx.put("p", b"other", b"v").unwrap();
    let forked = tx.commit().unwrap();
    assert_eq!(forked.audit_seq, receipt.audit_seq);
    assert!(matches!(
        engine.verify_audit_against(t, receipt.audit_seq, &receipt.audit_head),
        Err(Error::AuditTampered { .. })
    ));
}

#[test]
fn operator_actions_reach_both_streams() {
    let (_d, path, t, _) = fixture(1);
    let engine = Engine::open(&path).unwrap();
    engine
        .set_quota(
            &op(),
            t,
            tenantry_engine::Quota {
                max_bytes: Some(10),
                max_keys: None,
            },
        )
        .unwrap();
    let sys = engine
        .system_audit_log(&op(), &AuditQuery::default())
        .unwrap();
    assert_eq!(sys[0].action, "tenant.set_quota");
    assert_eq!(sys[0].stream, AuditStream::System);
    let own = engine
        .tenant_audit_log(&op(), t, &AuditQuery::default())
        .unwrap();
    assert_eq!(own[0].action, "tenant.set_quota");
    assert_eq!(
        own[0].message.as_deref(),
        Some("max_bytes=10, max_keys=unlimited")
    );
    engine.verify_stream(AuditStream::System, None).unwrap();
}

/// Two tenants whose entries interleave in the shared log: `a` commits one put for every ten of
/// `b`'s, so `a`'s stream is sparse (read segment by segment) and `b`'s is dense.
fn interleaved(path: &std::path::Path, rounds: u32) -> (Engine, TenantId, TenantId) {
    let engine = Engine::open(path).unwrap();
    let a = engine.create_tenant(&op(), "a").unwrap();
    let b = engine.create_tenant(&op(), "b").unwrap();
    let (ha, hb) = (
        engine.tenant(&ctx(a)).unwrap(),
        engine.tenant(&ctx(b)).unwrap(),
    );
    for i in 0..rounds {
        let mut tx = ha.begin_write().unwrap();
        tx.put("p", &i.to_be_bytes(), b"a").unwrap();
        tx.commit().unwrap();
        let mut tx = hb.begin_write().unwrap();
        for j in 0..10u32 {
            tx.put("p", &[i.to_be_bytes(), j.to_be_bytes()].concat(), b"b")
                .unwrap();
        }
        tx.commit().unwrap();
    }
    (engine, a, b)
}

#[test]
fn interleaved_streams_read_back_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, a, b) = interleaved(&dir.path().join("db.redb"), 150);
    assert_eq!(engine.verify_audit(a).unwrap(), 151);
    assert_eq!(engine.verify_audit(b).unwrap(), 1501);
    let h = engine.tenant(&ctx(a)).unwrap();
    let all = h.audit_log(&AuditQuery::default()).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=151).rev().collect::<Vec<_>>()
    );
    // Paging backwards crosses the index's segments (every 64 seqs) without gaps.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let mut q = AuditQuery::default().limit(7);
        if let Some(seq) = before {
            q = q.before_seq(seq);
        }
        let page = h.audit_log(&q).unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        paged.extend(page.into_iter().map(|e| e.seq));
    }
    assert_eq!(paged, (1..=151).rev().collect::<Vec<_>>());
    for before in [1, 2, 64, 65, 128, 129, 151, 152, 1000] {
        let page = h
            .audit_log(&AuditQuery::default().before_seq(before).limit(2))
            .unwrap();
        let want: Vec<u64> = (1..before.min(152)).rev().take(2).collect();
        assert_eq!(
            page.iter().map(|e| e.seq).collect::<Vec<_>>(),
            want,
            "before {before}"
        );
    }
    let mut out = Vec::new();
    assert_eq!(h.export_audit_jsonl(&mut out).unwrap(), 151);
    let seqs: Vec<u64> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=151).collect::<Vec<_>>());
}

#[test]
fn tampering_with_a_sparse_stream_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let (engine, a, _) = interleaved(&path, 70);
    drop(engine);
    let p30 = position(&path, a.get(), 30);
    tamper(&path, |table| {
        table.remove(p30).unwrap();
    });
    assert!(matches!(
        verify(&path, a),
        Err(Error::AuditTampered { seq: 30, .. })
    ));
    // Queries refuse to skip over the hole.
    let engine = Engine::open(&path).unwrap();
    let h = engine.tenant(&ctx(a)).unwrap();
    assert!(matches!(
        h.audit_log(&AuditQuery::default()),
        Err(Error::AuditTampered { seq: 30, .. })
    ));
    assert_eq!(
        h.audit_log(&AuditQuery::default().limit(40)).unwrap().len(),
        40
    );
}

#[test]
fn a_misdirected_audit_index_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let (engine, a, b) = interleaved(&path, 70);
    drop(engine);
    let index: TableDefinition<'_, (u64, u64), u64> = TableDefinition::new("tenantry.audit_index");
    let elsewhere = position(&path, a.get(), 63);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(index)
            .unwrap()
            .insert((a.get(), 64), elsewhere)
            .unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(
        verify(&path, a),
        Err(Error::AuditTampered { seq: 64, .. })
    ));
    assert_eq!(verify(&path, b).unwrap(), 701);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 6, ..Default::default() })]

    /// Random commits of five tenants, some concurrent, some audit-only, some refused by a
    /// quota: every stream reads back gapless and in order through every kind of query.
    #[test]
    fn streams_read_back_whole_under_random_interleavings(
        rounds in proptest::collection::vec((0usize..5, 1usize..4, proptest::prelude::any::<bool>()), 1..250),
        pages in proptest::collection::vec((1u64..400, 1usize..90), 8),
    ) {
        let engine = super::engine();
        let tenants: Vec<TenantId> =
            (0..5).map(|i| engine.create_tenant(&op(), &format!("t{i}")).unwrap()).collect();
        engine
            .set_quota(&op(), tenants[4], tenantry_engine::Quota { max_bytes: None, max_keys: Some(3) })
            .unwrap();
        let handles: Vec<_> = tenants.iter().map(|t| engine.tenant(&ctx(*t)).unwrap()).collect();
        let mut expected = [1u64; 5]; // tenant.create
        expected[4] += 1; // tenant.set_quota
        for (n, (who, puts, concurrent)) in rounds.iter().enumerate() {
            let commit = |h: &tenantry_engine::TenantHandle| {
                let mut tx = h.begin_write().unwrap();
                for p in 0..*puts {
                    tx.put("p", format!("{n}-{p}").as_bytes(), b"v").unwrap();
                }
                tx.audit("round", None).unwrap();
                let _ = tx.commit(); // t4's quota refuses some; they are still audited
            };
            if *concurrent {
                let other = (who + 1) % 5;
                std::thread::scope(|s| {
                    s.spawn(|| commit(&handles[*who]));
                    s.spawn(|| commit(&handles[other]));
                });
                expected[other] += *puts as u64 + 1;
            } else {
                commit(&handles[*who]);
            }
            expected[*who] += *puts as u64 + 1;
        }
        for (i, t) in tenants.iter().enumerate() {
            let all = handles[i].audit_log(&AuditQuery::default()).unwrap();
            proptest::prop_assert_eq!(
                all.iter().map(|e| e.seq).collect::<Vec<_>>(),
                (1..=expected[i]).rev().collect::<Vec<_>>()
            );
            proptest::prop_assert_eq!(engine.verify_audit(*t).unwrap(), expected[i]);
            for (before, limit) in &pages {
                let page = handles[i]
                    .audit_log(&AuditQuery::default().before_seq(*before).limit(*limit))
                    .unwrap();
                let want: Vec<u64> =
                    (1..(*before).min(expected[i] + 1)).rev().take(*limit).collect();
                proptest::prop_assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), want);
            }
            let mut out = Vec::new();
            proptest::prop_assert_eq!(handles[i].export_audit_jsonl(&mut out).unwrap(), expected[i]);
        }
    }
}

/// The engine's and the operator's action namespaces cannot be forged: request code (and, in
/// the host, a plugin) cannot record an `Ok` `kv.put` that did not happen.
#[test]
fn reserved_actions_are_refused_for_request_code() {
    let engine = super::engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = engine.tenant(&ctx(t)).unwrap();
    let forged = [
        "kv.put",
        "kv.delete",
        "KV.Put",
        "kv",
        "tenant.delete",
        "operator.suspend",
        "plugin.invoke",
        "unscoped.open",
        "audit.checkpoint",
    ];
    let mut tx = h.begin_write().unwrap();
    for action in forged {
        assert!(
            matches!(tx.audit(action, None), Err(Error::ReservedAction { .. })),
            "{action:?} was accepted"
        );
        assert!(tenantry_engine::is_reserved_action(action), "{action:?}");
    }
    // Look-alikes of reserved names are not printable ASCII without spaces, and refused so.
    for lookalike in [
        " kv.put",
        "\u{200B}kv.put",
        "\u{43A}v.put",
        "kv .put",
        "\u{1b}[0mkv.put",
    ] {
        assert!(
            matches!(tx.audit(lookalike, None), Err(Error::InvalidField { .. })),
            "{lookalike:?} was accepted"
        );
    }
    // Names that merely resemble a namespace are the application's.
    for own in [
        "kvstore.sync",
        "tenants.report",
        "project.create",
        "plugins",
    ] {
        assert!(!tenantry_engine::is_reserved_action(own), "{own:?}");
        tx.audit(own, None).unwrap();
    }
    tx.commit().unwrap();
    assert!(matches!(
        h.record_audit(vec![tenantry_engine::AuditEvent::new("kv.put")]),
        Err(Error::ReservedAction { .. })
    ));
    // The tenant's own entries: the operator's `tenant.create` aside, none is reserved.
    let log = h.audit_log(&AuditQuery::default()).unwrap();
    let own: Vec<_> = log.iter().filter(|e| !e.by_operator).collect();
    assert_eq!(own.len(), 4);
    assert!(
        own.iter()
            .all(|e| !tenantry_engine::is_reserved_action(&e.action))
    );

    // A component's handle (the plugin host's) records them: it states what really happened.
    let component = engine.component_handle(&ctx(t)).unwrap();
    let mut tx = component.begin_write().unwrap();
    tx.audit_event(tenantry_engine::AuditEvent::new("kv.get").target("t/k"))
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(
        h.audit_log(&AuditQuery::default()).unwrap()[0].action,
        "kv.get"
    );
}

/// A rolled-back transaction's account is bounded in bytes, however much it attempted, and is
/// recorded without waiting for the tenant's write lock.
#[test]
fn a_summarised_rollback_is_bounded_and_needs_no_lock() {
    let engine = super::engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = engine.component_handle(&ctx(t)).unwrap();
    let mut tx = h.begin_write().unwrap();
    for i in 0..5_000u32 {
        tx.put("t", &i.to_be_bytes(), b"value").unwrap();
    }
    let summary = tenantry_engine::AuditEvent::new("plugin.invoke")
        .message("5000 host calls")
        .outcome(Outcome::Failed("trap".into()));
    tx.rollback_summarised("trap", 16 << 10, summary).unwrap();
    let log = h.audit_log(&AuditQuery::default()).unwrap();
    assert!(log.len() > 10 && log.len() < 300, "{} entries", log.len());
    let bytes: usize = log
        .iter()
        .map(|e| e.action.len() + e.target.as_ref().map_or(0, String::len) + 64)
        .sum();
    assert!(bytes < 32 << 10, "{bytes} bytes");
    assert_eq!(log[0].action, "plugin.invoke");
    let message = log[0].message.as_deref().unwrap();
    assert!(
        message.contains("of its 5000 audit entries not recorded"),
        "{message}"
    );
    let attempted = &log[1..log.len() - 1]; // the oldest is the operator's tenant.create
    assert!(
        attempted
            .iter()
            .all(|e| e.action == "kv.put" && matches!(e.outcome, Outcome::Failed(_)))
    );
    assert!(
        h.begin_read()
            .unwrap()
            .get("t", &0u32.to_be_bytes())
            .unwrap()
            .is_none()
    );

    // With another transaction holding the lock, the record is still made at once.
    let holder = h.begin_write().unwrap();
    let started = std::time::Instant::now();
    h.record_audit(vec![
        tenantry_engine::AuditEvent::new("plugin.invoke")
            .outcome(Outcome::Failed("timeout".into())),
    ])
    .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // And a bounded wait for the lock ends when it says.
    let started = std::time::Instant::now();
    assert!(matches!(
        h.begin_write_within(std::time::Duration::from_millis(50)),
        Err(Error::LockTimeout { .. })
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    drop(holder);
    engine.verify_audit(t).unwrap();
}
