//! The write-ahead log beside a database file (`<file>-wal`), from the outside.

use std::path::Path;
use std::time::{Duration, Instant};

use tenantry_engine::{Engine, EngineOptions, Error};

use super::{handle, log_of, op, put};

/// Whether a copy of the database file alone (no log) holds `key` of tenant "acme".
fn file_alone_has(path: &Path, key: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.redb");
    std::fs::copy(path, &copy).unwrap();
    let engine = Engine::open(&copy).unwrap();
    let Some(t) = engine.tenant_id("acme").unwrap() else {
        return false;
    };
    let got = handle(&engine, t)
        .begin_read()
        .unwrap()
        .get("p", key)
        .unwrap();
    got.is_some()
}

#[test]
fn an_idle_engine_checkpoints_its_log_into_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let engine = Engine::open(&path).unwrap();
    assert!(log_of(&path).exists(), "the log is created beside the file");
    let t = engine.create_tenant(&op(), "acme").unwrap();
    put(&handle(&engine, t), "p", b"k", b"v");
    // The commit is durable in the log at once, and in the file after the pipeline has been
    // idle for a moment.
    let started = Instant::now();
    while !file_alone_has(&path, b"k") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the log was not checkpointed while the engine was idle"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_small_log_is_checkpointed_by_the_commits_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut options = EngineOptions::default();
    options.log_checkpoint_bytes = 1;
    let engine = Engine::open_with(&path, options).unwrap();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let h = handle(&engine, t);
    // Creating the tenant filled the log, so this commit is a checkpoint: it and everything
    // before it are in the file when it returns.
    put(&h, "p", b"first", b"v");
    assert!(file_alone_has(&path, b"first"));
    // The log starts again: the next commit is logged, the one after it a checkpoint.
    put(&h, "p", b"second", b"v");
    put(&h, "p", b"third", b"v");
    assert!(file_alone_has(&path, b"second"));
    assert!(file_alone_has(&path, b"third"));
}

#[test]
fn a_log_of_another_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
    Engine::open(&a)
        .unwrap()
        .create_tenant(&op(), "acme")
        .unwrap();
    drop(Engine::open(&b).unwrap());
    std::fs::copy(log_of(&a), log_of(&b)).unwrap();
    assert!(matches!(Engine::open(&b), Err(Error::Corrupted(_))));
}

#[test]
fn a_database_written_through_its_log_is_not_opened_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let engine = Engine::open(&path).unwrap();
        engine.create_tenant(&op(), "acme").unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let backend = redb::backends::InMemoryBackend::new();
    redb::StorageBackend::set_len(&backend, bytes.len() as u64).unwrap();
    redb::StorageBackend::write(&backend, 0, &bytes).unwrap();
    assert!(matches!(
        Engine::open_backend(backend, EngineOptions::default()),
        Err(Error::Corrupted(_))
    ));
}

#[test]
fn a_log_from_before_a_lost_log_is_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let saved = dir.path().join("saved-wal");
    {
        let engine = Engine::open(&path).unwrap();
        let t = engine.create_tenant(&op(), "acme").unwrap();
        put(&handle(&engine, t), "p", b"k", b"v");
    }
    // The log of this history, kept aside; then the log is lost and the database goes on.
    std::fs::copy(log_of(&path), &saved).unwrap();
    std::fs::remove_file(log_of(&path)).unwrap();
    {
        let engine = Engine::open(&path).unwrap();
        let t = engine.tenant_id("acme").unwrap().unwrap();
        put(&handle(&engine, t), "p", b"later", b"v");
    }
    // Bringing the old log back is refused, not replayed over the newer history.
    std::fs::copy(&saved, log_of(&path)).unwrap();
    assert!(matches!(Engine::open(&path), Err(Error::Corrupted(_))));
}

#[test]
fn a_checkpoint_on_request_puts_every_commit_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let engine = Engine::open(&path).unwrap();
    let t = engine.create_tenant(&op(), "acme").unwrap();
    put(&handle(&engine, t), "p", b"k", b"v");
    engine.checkpoint().unwrap();
    assert!(file_alone_has(&path, b"k"));
    // Without a log there is nothing to do, and nothing fails.
    super::engine().checkpoint().unwrap();
}

/// Keys of `tenant` that a copy of the database file alone (no log) holds, read with redb.
fn keys_in_file_alone(path: &Path, tenant: tenantry_engine::TenantId) -> u64 {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    const DATA: redb::TableDefinition<'_, tenantry_engine::ByteKey, &[u8]> =
        redb::TableDefinition::new("tenantry.data");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.redb");
    std::fs::copy(path, &copy).unwrap();
    let db = redb::Database::open(&copy).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(DATA).unwrap();
    let (start, end) = (tenant.get().to_be_bytes(), (tenant.get() + 1).to_be_bytes());
    let count = table.range(&start[..]..&end[..]).unwrap().count() as u64;
    assert!(table.len().unwrap() >= count);
    count
}

#[test]
fn a_purge_checkpoints_as_it_goes() {
    // A purge chunk's log record is a few bytes, but it changes as many pages as writing its
    // entries did; so the bytes it removes count towards the next checkpoint, and deleting a
    // large tenant does not leave one long checkpoint behind.
    const KEYS: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut options = EngineOptions::default();
    options.log_checkpoint_bytes = 256 << 10;
    options.purge_chunk_keys = 500;
    let engine = Engine::open_with(&path, options).unwrap();
    let t = engine.create_tenant(&op(), "big").unwrap();
    let h = handle(&engine, t);
    for batch in 0..10u64 {
        let mut tx = h.begin_write().unwrap();
        for i in 0..KEYS / 10 {
            tx.put("p", &(batch * 1000 + i).to_be_bytes(), &[7; 200])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    engine.checkpoint().unwrap();
    assert_eq!(keys_in_file_alone(&path, t), KEYS);
    // Halfway through the purge (1.1 MB removed, four times the checkpoint size), the file
    // alone already lacks some of the tenant's keys.
    let mut halfway = None;
    engine
        .delete_tenant_with_progress(&op(), t, |purged| {
            if halfway.is_none() && purged >= KEYS / 2 {
                halfway = Some(keys_in_file_alone(&path, t));
            }
        })
        .unwrap();
    let halfway = halfway.unwrap();
    assert!(
        halfway < KEYS,
        "no checkpoint during the purge: {halfway} keys left in the file"
    );
}
