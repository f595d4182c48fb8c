//! The audit log: contents, queries, export, and tamper evidence against direct redb edits.

use redb::{ReadableDatabase, TableDefinition};
use tenantry_engine::{AuditQuery, AuditStream, Engine, Error, Outcome};

use super::{ctx, op};

const AUDIT: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("tenantry.audit");

fn key(stream: u64, seq: u64) -> Vec<u8> {
    [stream.to_be_bytes(), seq.to_be_bytes()].concat()
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

/// Edits the audit table with redb's own API, so redb's checksums stay valid.
fn tamper(path: &std::path::Path, edit: impl FnOnce(&mut redb::Table<'_, &[u8], &[u8]>)) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(AUDIT).unwrap();
        edit(&mut table);
    }
    txn.commit().unwrap();
}

fn read(path: &std::path::Path, k: &[u8]) -> Vec<u8> {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(AUDIT).unwrap();
    table.get(k).unwrap().unwrap().value().to_vec()
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
    let k = key(t.get(), 3);
    let mut bytes = read(&path, &k);
    // Flip a byte inside the entry (the action text), keep everything else.
    let pos = bytes.windows(6).position(|w| w == b"kv.put").unwrap();
    bytes[pos + 3] = b'P';
    tamper(&path, |table| {
        table.insert(&k[..], &bytes[..]).unwrap();
    });
    assert!(matches!(
        verify(&path, t),
        Err(Error::AuditTampered { seq: 3, .. })
    ));
}

#[test]
fn deleting_an_entry_is_detected() {
    let (_d, path, t, _) = fixture(5);
    tamper(&path, |table| {
        table.remove(&key(t.get(), 2)[..]).unwrap();
    });
    assert!(matches!(
        verify(&path, t),
        Err(Error::AuditTampered { seq: 2, .. })
    ));
}

#[test]
fn inserting_an_entry_is_detected() {
    let (_d, path, t, _) = fixture(5);
    let copy = read(&path, &key(t.get(), 6));
    tamper(&path, |table| {
        table.insert(&key(t.get(), 7)[..], &copy[..]).unwrap();
    });
    assert!(matches!(verify(&path, t), Err(Error::AuditTampered { .. })));
}

#[test]
fn reordering_entries_is_detected() {
    let (_d, path, t, _) = fixture(5);
    let (a, b) = (read(&path, &key(t.get(), 3)), read(&path, &key(t.get(), 4)));
    tamper(&path, |table| {
        table.insert(&key(t.get(), 3)[..], &b[..]).unwrap();
        table.insert(&key(t.get(), 4)[..], &a[..]).unwrap();
    });
    assert!(matches!(
        verify(&path, t),
        Err(Error::AuditTampered { seq: 3, .. })
    ));
}

#[test]
fn truncating_the_tail_is_detected_against_a_kept_head() {
    let (_d, path, t, receipt) = fixture(5);
    // Remove the last two entries and rewrite the heads table so the log looks consistent.
    let heads: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("tenantry.audit_heads");
    let head4 = read(&path, &key(t.get(), 4));
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut audit = txn.open_table(AUDIT).unwrap();
            audit.remove(&key(t.get(), 6)[..]).unwrap();
            audit.remove(&key(t.get(), 5)[..]).unwrap();
            let mut h = txn.open_table(heads).unwrap();
            // The hash is the last 32 bytes of the stored entry.
            let mut v = 4u64.to_be_bytes().to_vec();
            v.extend_from_slice(&head4[head4.len() - 32..]);
            h.insert(t.get(), &v[..]).unwrap();
        }
        txn.commit().unwrap();
    }
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
    std::fs::write(&path, &backup).unwrap();
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
