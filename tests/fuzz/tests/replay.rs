//! Replays the committed corpus (`corpus/<target>/`) through every fuzz target: each input
//! once found new coverage or a bug, so this is the regression test of the fuzzers.
// A failed check panics, as in any test.
#![allow(clippy::panic)]

use std::path::{Path, PathBuf};

use tenantry_fuzz::{TARGETS, Target};

fn replay(name: &str) {
    let Some(&(_, target)) = TARGETS.iter().find(|(n, _)| *n == name) else {
        panic!("no target {name}");
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    files.sort();
    assert!(
        files.len() >= 5,
        "corpus/{name} holds {} inputs: a replay of nothing proves nothing",
        files.len()
    );
    // In parallel: an engine_model input spends most of its time waiting on the engine's
    // threads, not computing.
    let failed: Vec<&PathBuf> = std::thread::scope(|scope| {
        let runs: Vec<_> = files
            .iter()
            .map(|path| (path, scope.spawn(move || run(target, path))))
            .collect();
        runs.into_iter()
            .filter_map(|(path, run)| run.join().is_err().then_some(path))
            .collect()
    });
    assert!(
        failed.is_empty(),
        "corpus inputs fail their target: {failed:?}"
    );
}

fn run(target: Target, path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    target(&bytes);
}

#[test]
fn wire_corpus() {
    replay("wire");
}

#[test]
fn wal_scan_corpus() {
    replay("wal_scan");
}

#[test]
fn keys_corpus() {
    replay("keys");
}

#[test]
fn engine_model_corpus() {
    replay("engine_model");
}
