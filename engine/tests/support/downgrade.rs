//! Rewrites a format-4 database as formats 2 and 3 had it, so that tests can open older files:
//! those formats keyed `tenantry.data` and `tenantry.tables` by `&[u8]` (the same bytes in the
//! same order; only redb's type name for the key differs).

use redb::{ReadableTable, TableDefinition};
use tenantry_engine::ByteKey;

pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("tenantry.meta");

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

/// Turns the format-4 database `db` into format `version` (2 or 3), leaving its write-ahead log
/// position alone for format 3 (so records the log holds are still to be replayed) and removing
/// it for format 2, which had no log. Returns the entries of `tenantry.data`.
pub(crate) fn downgrade(db: &redb::Database, version: u64) -> u64 {
    assert!(matches!(version, 2 | 3));
    let txn = db.begin_write().unwrap();
    let data = rekey::<&[u8]>(&txn, "tenantry.data");
    rekey::<u32>(&txn, "tenantry.tables");
    {
        let mut meta = txn.open_table(META).unwrap();
        assert_eq!(meta.get("format_version").unwrap().unwrap().value(), 4);
        meta.insert("format_version", version).unwrap();
        if version == 2 {
            meta.remove("log_id").unwrap();
            meta.remove("log_applied").unwrap();
        }
    }
    txn.commit().unwrap();
    data
}

/// The format version recorded in `db`.
pub(crate) fn format_of(db: &redb::Database) -> u64 {
    use redb::ReadableDatabase;
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    meta.get("format_version").unwrap().unwrap().value()
}
