//! Older file formats: upgraded when opened, with every entry kept; unknown ones refused.
//! Formats 2 and 3 keyed `tenantry.data` and `tenantry.tables` by `&[u8]`; the tests rewrite a
//! format-4 file that way to make one.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tenantry_engine::{ByteKey, Engine, Error, TenantId};

use super::{handle, op, put};

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("tenantry.meta");

fn log_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// Rewrites one byte-keyed table with `&[u8]` keys; returns its entries.
fn rekey<V: redb::Value + 'static>(txn: &redb::WriteTransaction, name: &str) -> u64 {
    let current: TableDefinition<'_, ByteKey, V> = TableDefinition::new(name);
    let aside: TableDefinition<'_, ByteKey, V> = TableDefinition::new("test.aside");
    let old: TableDefinition<'_, &[u8], V> = TableDefinition::new(name);
    txn.rename_table(current, aside).unwrap();
    let mut n = 0;
    {
        let from = txn.open_table(aside).unwrap();
        let mut to = txn.open_table(old).unwrap();
        for item in from.iter().unwrap() {
            let (k, v) = item.unwrap();
            to.insert(k.value(), v.value()).unwrap();
            n += 1;
        }
    }
    txn.delete_table(aside).unwrap();
    n
}

/// Turns a closed, checkpointed format-4 file into what an engine of `version` left.
fn downgrade(path: &Path, version: u64) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    assert!(rekey::<&[u8]>(&txn, "tenantry.data") > 0);
    assert!(rekey::<u32>(&txn, "tenantry.tables") > 0);
    {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("format_version", version).unwrap();
        if version == 2 {
            // Format 2 had no write-ahead log.
            meta.remove("log_id").unwrap();
            meta.remove("log_applied").unwrap();
        }
    }
    txn.commit().unwrap();
    if version == 2 {
        std::fs::remove_file(log_of(path)).unwrap();
    }
}

fn format_of(path: &Path) -> u64 {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    meta.get("format_version").unwrap().unwrap().value()
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
fn unknown_formats_are_refused() {
    for version in [1, 5, u64::MAX] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        drop(Engine::open(&path).unwrap());
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
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
