//! Tenant lifecycle: names, states, deletion.

use tenantry_engine::{AuditQuery, Error, TenantState};

use super::{ctx, engine, handle, op, put};

#[test]
fn names_are_validated_and_unique() {
    let engine = engine();
    for bad in ["", "Acme", "a b", "-x", "é", &"a".repeat(64)] {
        assert!(
            matches!(
                engine.create_tenant(&op(), bad),
                Err(Error::InvalidTenantName { .. })
            ),
            "{bad:?}"
        );
    }
    let a = engine.create_tenant(&op(), "acme").unwrap();
    assert!(matches!(
        engine.create_tenant(&op(), "acme"),
        Err(Error::TenantNameTaken(_))
    ));
    assert_eq!(engine.tenant_id("acme").unwrap(), Some(a));
    assert_eq!(engine.tenant_id("nobody").unwrap(), None);
    // A batch is all or none.
    assert!(engine.create_tenants(&op(), ["b1", "acme"]).is_err());
    assert_eq!(engine.tenant_id("b1").unwrap(), None);
    let list = engine.list_tenants().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].id, list[0].name.as_str(), list[0].state),
        (a, "acme", TenantState::Active)
    );
}

#[test]
fn read_only_refuses_writes_and_allows_reads() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    put(&h, "p", b"k", b"v");
    engine
        .set_tenant_state(&op(), t, TenantState::ReadOnly)
        .unwrap();
    let mut tx = h.begin_write().unwrap();
    assert!(matches!(tx.put("p", b"k2", b"v"), Err(Error::TenantReadOnly(id)) if id == t));
    assert!(matches!(
        tx.delete("p", b"k"),
        Err(Error::TenantReadOnly(_))
    ));
    drop(tx);
    assert_eq!(
        h.begin_read().unwrap().get("p", b"k").unwrap(),
        Some(b"v".to_vec())
    );
    engine
        .set_tenant_state(&op(), t, TenantState::Active)
        .unwrap();
    put(&h, "p", b"k2", b"v");
}

#[test]
fn state_change_between_begin_and_commit_is_enforced_at_commit() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    let mut tx = h.begin_write().unwrap();
    tx.put("p", b"k", b"v").unwrap();
    engine
        .set_tenant_state(&op(), t, TenantState::ReadOnly)
        .unwrap();
    assert!(matches!(tx.commit(), Err(Error::TenantReadOnly(_))));
    assert_eq!(h.begin_read().unwrap().get("p", b"k").unwrap(), None);
    // The refusal is audited, with an outcome that says so.
    let log = h
        .audit_log(&AuditQuery::default().action_prefix("kv."))
        .unwrap();
    assert_eq!(log.len(), 1);
    assert!(!log[0].outcome.is_ok(), "{:?}", log[0].outcome);
    engine.verify_audit(t).unwrap();
}

#[test]
fn suspended_blocks_everything() {
    let engine = engine();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    put(&h, "p", b"k", b"v");
    put(&h, "p", b"k2", b"v");
    let r = h.begin_read().unwrap();
    // A scan begun before the suspension stops at it.
    let mut scan = r.scan_prefix("p", b"").unwrap();
    assert!(scan.next().unwrap().is_ok());
    let w = h.begin_write().unwrap();
    let mut own_scan = w.scan_prefix("p", b"").unwrap();
    assert!(own_scan.next().unwrap().is_ok());
    engine
        .set_tenant_state(&op(), t, TenantState::Suspended)
        .unwrap();
    assert!(matches!(scan.next(), Some(Err(Error::TenantSuspended(_)))));
    assert!(scan.next().is_none());
    assert!(matches!(
        own_scan.next(),
        Some(Err(Error::TenantSuspended(_)))
    ));
    drop(own_scan);
    drop(w);
    assert!(matches!(
        engine.tenant(&ctx(t)),
        Err(Error::TenantSuspended(_))
    ));
    assert!(matches!(h.begin_read(), Err(Error::TenantSuspended(_))));
    assert!(matches!(h.begin_write(), Err(Error::TenantSuspended(_))));
    assert!(matches!(r.get("p", b"k"), Err(Error::TenantSuspended(_))));
    assert!(matches!(
        r.scan_prefix("p", b""),
        Err(Error::TenantSuspended(_))
    ));
    assert!(matches!(
        h.audit_log(&AuditQuery::default()),
        Err(Error::TenantSuspended(_))
    ));
    engine
        .set_tenant_state(&op(), t, TenantState::Active)
        .unwrap();
    assert_eq!(r.get("p", b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn delete_makes_data_unreachable_frees_name_and_keeps_audit() {
    let mut options = tenantry_engine::EngineOptions::default();
    options.durability = tenantry_engine::Durability::None;
    options.purge_chunk_keys = 100;
    let engine = super::engine_with(options);
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let other = engine.create_tenant(&op(), "globex").unwrap();
    let h = handle(&engine, t);
    let mut tx = h.begin_write().unwrap();
    for i in 0..1000u32 {
        tx.put("p", &i.to_be_bytes(), b"v").unwrap();
    }
    tx.commit().unwrap();
    put(&handle(&engine, other), "p", b"k", b"keep");
    let r = h.begin_read().unwrap();
    let mut chunks = 0;
    engine
        .delete_tenant_with_progress(&op(), t, |_| chunks += 1)
        .unwrap();
    assert!(chunks >= 10, "purged in {chunks} chunks");
    assert!(matches!(r.get("p", b"k"), Err(Error::TenantDeleted(_))));
    assert!(matches!(h.begin_write(), Err(Error::TenantDeleted(_))));
    assert!(matches!(
        engine.tenant(&ctx(t)),
        Err(Error::TenantDeleted(_))
    ));
    assert!(matches!(
        engine.delete_tenant(&op(), t),
        Err(Error::TenantDeleted(_))
    ));
    assert_eq!(engine.tenant_id("acme").unwrap(), None);
    assert!(engine.list_tenants().unwrap().iter().all(|i| i.id != t));
    let info = engine.tenant_info(t).unwrap();
    assert_eq!(
        (info.state, info.usage.keys, info.usage.bytes),
        (TenantState::Deleted, 0, 0)
    );
    // The name is free, the id is not reused.
    let again = engine.create_tenant(&op(), "acme").unwrap();
    assert!(again > other);
    assert_eq!(
        handle(&engine, again)
            .begin_read()
            .unwrap()
            .get("p", &0u32.to_be_bytes())
            .unwrap(),
        None
    );
    // Other tenants are untouched; the deleted tenant's audit log is still readable and valid.
    assert_eq!(
        handle(&engine, other)
            .begin_read()
            .unwrap()
            .get("p", b"k")
            .unwrap(),
        Some(b"keep".to_vec())
    );
    let log = engine
        .tenant_audit_log(&op(), t, &AuditQuery::default())
        .unwrap();
    assert_eq!(log[0].action, "tenant.delete");
    assert_eq!(log[0].actor.as_deref(), Some("ops:test"));
    assert!(log[0].by_operator);
    assert_eq!(engine.verify_audit(t).unwrap(), log.len() as u64);
}

#[test]
fn delete_survives_reopen_and_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let first = {
        let engine = tenantry_engine::Engine::open(&path).unwrap();
        let t = engine.create_tenant(&op(), "acme").unwrap();
        put(&handle(&engine, t), "p", b"k", b"v");
        engine.delete_tenant(&op(), t).unwrap();
        t
    };
    let engine = tenantry_engine::Engine::open(&path).unwrap();
    assert_eq!(
        engine.tenant_info(first).unwrap().state,
        TenantState::Deleted
    );
    let second = engine.create_tenant(&op(), "acme").unwrap();
    assert!(second > first);
    engine.verify_audit(first).unwrap();
}

#[test]
fn unknown_tenants_and_second_open_are_typed_errors() {
    let engine = engine();
    let ghost = tenantry_engine::TenantId::from_raw(999);
    assert!(matches!(
        engine.tenant(&ctx(ghost)),
        Err(Error::UnknownTenant(_))
    ));
    assert!(matches!(
        engine.set_quota(&op(), ghost, Default::default()),
        Err(Error::UnknownTenant(_))
    ));
    assert!(matches!(
        engine.verify_audit(ghost),
        Err(Error::UnknownTenant(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let _first = tenantry_engine::Engine::open(&path).unwrap();
    assert!(matches!(
        tenantry_engine::Engine::open(&path),
        Err(Error::DatabaseInUse)
    ));
}

#[test]
fn a_file_whose_creation_was_cut_short_opens_but_a_foreign_file_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    // A crash right after redb extended the new file: nothing but zeros.
    let cut = dir.path().join("cut.redb");
    std::fs::File::create(&cut)
        .unwrap()
        .set_len(73_728)
        .unwrap();
    let engine = tenantry_engine::Engine::open(&cut).unwrap();
    engine.create_tenant(&op(), "acme").unwrap();
    drop(engine);
    assert!(
        tenantry_engine::Engine::open(&cut)
            .unwrap()
            .tenant_id("acme")
            .unwrap()
            .is_some()
    );
    // Anything else is an error, and the file is not touched.
    let foreign = dir.path().join("notes.txt");
    std::fs::write(&foreign, b"my precious notes, not a database").unwrap();
    assert!(matches!(
        tenantry_engine::Engine::open(&foreign),
        Err(Error::Storage(_) | Error::Corrupted(_))
    ));
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        b"my precious notes, not a database"
    );
}

/// A tenant record whose state byte no engine writes (a damaged or edited file) is refused as
/// corruption when the database opens. It is never read as `Deleted`, which would purge the
/// tenant's data on that open: once the byte is repaired, every key is still there.
#[test]
fn an_unknown_state_byte_is_corruption_not_a_deletion() {
    use redb::ReadableTable;
    const TENANTS: redb::TableDefinition<'_, u64, &[u8]> =
        redb::TableDefinition::new("tenantry.tenants");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let t = {
        let engine = tenantry_engine::Engine::open(&path).unwrap();
        let t = engine.create_tenant(&op(), "acme").unwrap();
        let h = engine.tenant(&ctx(t)).unwrap();
        for i in 0..50u32 {
            put(&h, "t", &i.to_be_bytes(), b"v");
        }
        engine.checkpoint().unwrap();
        t
    };
    // The record is bincode: the name's length (one byte) and bytes, then the state byte.
    let set_state_byte = |byte: u8| {
        let db = redb::Database::open(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut table = w.open_table(TENANTS).unwrap();
            let mut record = table.get(t.get()).unwrap().unwrap().value().to_vec();
            assert_eq!(&record[1..5], b"acme");
            record[5] = byte;
            table.insert(t.get(), record.as_slice()).unwrap();
        }
        w.commit().unwrap();
    };
    for byte in [4u8, 7, 0xFF] {
        set_state_byte(byte);
        match tenantry_engine::Engine::open(&path) {
            Err(Error::Corrupted(message)) => {
                assert!(message.contains("unknown state byte"), "{message}")
            }
            Err(other) => panic!("state byte {byte}: {other}"),
            Ok(_) => panic!("state byte {byte} was accepted"),
        }
    }
    set_state_byte(0);
    let engine = tenantry_engine::Engine::open(&path).unwrap();
    assert_eq!(engine.tenant_info(t).unwrap().state, TenantState::Active);
    let read = engine.tenant(&ctx(t)).unwrap().begin_read().unwrap();
    assert_eq!(read.scan_prefix("t", b"").unwrap().count(), 50);
}
