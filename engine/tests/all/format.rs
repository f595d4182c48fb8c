//! Older file formats: upgraded when opened, with every entry kept; unknown ones refused.
//! Formats 2 and 3 keyed `tenantry.data` and `tenantry.tables` by `&[u8]`; the tests rewrite a
//! format-4 file that way to make one.

use std::path::Path;

use tenantry_engine::{Engine, Error, TenantId};

use super::{handle, log_of, op, put};

#[path = "../support/downgrade.rs"]
mod downgrade;

/// Turns a closed, checkpointed format-4 file into what an engine of `version` left.
fn downgrade(path: &Path, version: u64) {
    let db = redb::Database::open(path).unwrap();
    assert!(downgrade::downgrade(&db, version) > 0);
    drop(db);
    if version == 2 {
        std::fs::remove_file(log_of(path)).unwrap();
    }
}

fn format_of(path: &Path) -> u64 {
    downgrade::format_of(&redb::Database::open(path).unwrap())
}

/// Every entry of tables "a" and "b" of each live tenant, by name.
fn contents(engine: &Engine) -> Vec<(String, &'static str, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for info in engine.list_tenants().unwrap() {
        if engine.tenant_id(&info.name).unwrap() != Some(info.id) {
            continue; // deleted
        }
        let r = handle(engine, info.id).begin_read().unwrap();
        for table in ["a", "b"] {
            for item in r.scan_prefix(table, b"").unwrap() {
                let (k, v) = item.unwrap();
                out.push((info.name.clone(), table, k, v));
            }
        }
    }
    out
}

/// A database of a few tenants with edge-case keys, one tenant deleted; returns the live ids.
fn populate(path: &Path) -> Vec<TenantId> {
    let engine = Engine::open(path).unwrap();
    let mut live = Vec::new();
    for i in 0..4u8 {
        let t = engine.create_tenant(&op(), &format!("t{i}")).unwrap();
        let h = handle(&engine, t);
        for key in [&b""[..], b"k", &[0xFF; 9], &[0; 12], &[i; 30]] {
            put(&h, "a", key, &[i, key.len() as u8]);
        }
        put(&h, "b", b"only-in-b", b"v");
        if i == 2 {
            engine.delete_tenant(&op(), t).unwrap();
        } else {
            live.push(t);
        }
    }
    engine.checkpoint().unwrap();
    live
}

fn upgrade_from(version: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let live = populate(&path);
    let before = contents(&Engine::open(&path).unwrap());
    assert_eq!(before.len(), 3 * 6);
    downgrade(&path, version);
    assert_eq!(format_of(&path), version);
    {
        let engine = Engine::open(&path).unwrap();
        assert_eq!(contents(&engine), before);
        for &t in &live {
            engine.verify_audit(t).unwrap();
            // Point reads and writes work on the converted tables.
            let h = handle(&engine, t);
            assert!(h.begin_read().unwrap().get("a", b"k").unwrap().is_some());
            put(&h, "c", b"new", b"v");
        }
        let t = engine.create_tenant(&op(), "after").unwrap();
        put(&handle(&engine, t), "a", b"k", b"v");
    }
    assert_eq!(format_of(&path), 4);
    let engine = Engine::open(&path).unwrap();
    assert_eq!(contents(&engine).len(), before.len() + 1);
}

#[test]
fn a_format_3_file_is_upgraded_to_format_4() {
    upgrade_from(3);
}

#[test]
fn a_format_2_file_is_upgraded_to_format_4() {
    upgrade_from(2);
}

#[test]
fn a_refused_open_leaves_an_older_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    populate(&path);
    downgrade(&path, 3);
    // Written through a log, so opening it without one is refused: before anything is written.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let backend = redb::backends::FileBackend::new(file).unwrap();
    let refused = Engine::open_backend(backend, tenantry_engine::EngineOptions::default());
    assert!(matches!(refused, Err(Error::Corrupted(_))));
    assert_eq!(format_of(&path), 3);
    // A log of another database is refused too, also before the upgrade.
    let other = dir.path().join("other.redb");
    Engine::open(&other)
        .unwrap()
        .create_tenant(&op(), "x")
        .unwrap();
    std::fs::copy(log_of(&other), log_of(&path)).unwrap();
    assert!(matches!(Engine::open(&path), Err(Error::Corrupted(_))));
    assert_eq!(format_of(&path), 3);
}

#[test]
fn unknown_formats_are_refused() {
    for version in [1, 5, u64::MAX] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        drop(Engine::open(&path).unwrap());
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(downgrade::META)
            .unwrap()
            .insert("format_version", version)
            .unwrap();
        txn.commit().unwrap();
        drop(db);
        assert!(
            matches!(Engine::open(&path), Err(Error::Corrupted(m)) if m.contains("format version")),
            "version {version}"
        );
    }
}
