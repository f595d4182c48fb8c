//! Shared set-up for the tenantry benchmarks (the `benches/*.rs` targets of this crate): sizes
//! read from the environment, deterministic keys and values, bulk loaders for the engine and for
//! raw redb, a multi-threaded commit driver, and latency summaries.
//!
//! Nothing here is cached between runs: every dataset is built in a fresh temporary directory
//! and removed when the benchmark ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod soak;

use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redb::TableDefinition;
use tenantry_engine::{Context, Durability, Engine, EngineOptions, Operator, TenantId};

/// The engine table every benchmark writes to.
pub const TABLE: &str = "kv";

/// The raw redb table of the baselines.
pub const RAW_TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("kv");

/// Length of every value written by the benchmarks.
pub const VALUE_LEN: usize = 100;

/// Puts per write transaction in bulk loads: about 4.5 MB with audit entries, under the engine's
/// 10 MiB cap.
pub const PUTS_PER_TXN: usize = 20_000;

/// Reads a size from the environment (`1000000` and `1_000_000` both work), or `default`.
///
/// # Panics
/// If the variable is set but is not a number.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Reads a comma-separated list of sizes from the environment, or `default`.
///
/// # Panics
/// If the variable is set but is not a list of numbers.
pub fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|s| {
                s.replace('_', "")
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a list of numbers"))
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The `i`th key of a dataset: a 16-byte id that looks random (a hash of `i`, then `i`), so keys
/// are unique and spread over the key space.
pub fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&splitmix64(i).to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

/// A sequential key for commit benchmarks: `writer`, then `n`, big-endian.
pub fn seq_key(writer: u64, n: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&writer.to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

/// The value stored under the `i`th key.
pub fn value(i: u64) -> [u8; VALUE_LEN] {
    let mut v = [0u8; VALUE_LEN];
    let mut x = i;
    for chunk in v.chunks_mut(8) {
        x = splitmix64(x);
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    v
}

/// The operator of every benchmark.
pub fn operator() -> Operator {
    Operator::new("ops:bench")
}

/// Options for bulk loading: no fsync.
pub fn bulk_options() -> EngineOptions {
    let mut o = EngineOptions::default();
    o.durability = Durability::None;
    o
}

/// Waits for the writeback of a bulk load to finish (`sync`, then `TENANTRY_BENCH_SETTLE_MS`,
/// 3,000 ms, of rest), so that the first side timed does not share the disk and a core with it.
pub fn settle() {
    let _ = std::process::Command::new("sync").status();
    std::thread::sleep(std::time::Duration::from_millis(
        env_usize("TENANTRY_BENCH_SETTLE_MS", 3000) as u64,
    ));
}

/// A fresh temporary directory (removed on drop).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tenantry-bench-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Creates `n` tenants called `{prefix}{i}`, in transactions of up to 50,000 tenants.
pub fn create_tenants(engine: &Engine, prefix: &str, n: usize) -> Vec<TenantId> {
    let op = operator();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(n);
    let mut next = 0;
    while next < n {
        let end = (next + 50_000).min(n);
        let names: Vec<String> = (next..end).map(|i| format!("{prefix}{i}")).collect();
        ids.extend(
            engine
                .create_tenants(&op, names.iter().map(String::as_str))
                .expect("create tenants"),
        );
        next = end;
    }
    if n >= 10_000 {
        eprintln!("setup: created {n} tenants in {:.1?}", started.elapsed());
    }
    ids
}

/// Loads keys `0..keys` into the engine, key `i` going to `tenants[i % tenants.len()]`, each
/// tenant's keys in write transactions of up to [`PUTS_PER_TXN`] puts, with `threads` loader
/// threads working on different tenants (so the committer batches their commits).
pub fn load_engine(engine: &Engine, tenants: &[TenantId], keys: u64, threads: usize) {
    let started = Instant::now();
    let count = tenants.len();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let slot = next.fetch_add(1, Ordering::Relaxed);
                    if slot >= count {
                        break;
                    }
                    let handle = engine
                        .tenant(&Context::tenant(tenants[slot]).actor("bench:loader"))
                        .expect("tenant handle");
                    let mine: Vec<u64> = (slot as u64..keys).step_by(count).collect();
                    for chunk in mine.chunks(PUTS_PER_TXN) {
                        let mut tx = handle.begin_write().expect("begin_write");
                        for &i in chunk {
                            tx.put(TABLE, &key(i), &value(i)).expect("put");
                        }
                        tx.commit().expect("commit");
                    }
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if count >= 10 && d.is_multiple_of(count / 10) {
                        eprintln!(
                            "setup: loaded {d}/{count} tenants ({:.1?})",
                            started.elapsed()
                        );
                    }
                }
            });
        }
    });
    eprintln!(
        "setup: loaded {keys} keys into {count} tenants in {:.1?}",
        started.elapsed()
    );
}

/// The engine's data table, for diagnostics that read a copy of an engine's file with redb.
pub const ENGINE_DATA: TableDefinition<'_, tenantry_engine::ByteKey, &[u8]> =
    TableDefinition::new("tenantry.data");
/// The engine's table-name table (tenant id, big-endian, then name → table id).
pub const ENGINE_TABLES: TableDefinition<'_, tenantry_engine::ByteKey, u32> =
    TableDefinition::new("tenantry.tables");

/// Creates a raw redb database at `path` holding keys `0..keys` in [`RAW_TABLE`].
pub fn load_raw(path: &std::path::Path, keys: u64) -> redb::Database {
    load_raw_with(path, keys, |i| key(i).to_vec())
}

/// The physical key the engine stores for user key `key` of table `table` of tenant `tenant`:
/// tenant id (u64 BE), table id (u32 BE), key. Built as the engine builds it, into a new `Vec`.
pub fn engine_layout_key(tenant: u64, table: u32, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + key.len());
    k.extend_from_slice(&tenant.to_be_bytes());
    k.extend_from_slice(&table.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Creates a raw redb database at `path` holding, in [`RAW_TABLE`], the values `0..keys` under
/// the keys `key_of(i)`.
pub fn load_raw_with(
    path: &std::path::Path,
    keys: u64,
    key_of: impl Fn(u64) -> Vec<u8>,
) -> redb::Database {
    let started = Instant::now();
    let db = redb::Database::create(path).expect("create raw redb");
    let mut i = 0;
    while i < keys {
        let end = (i + 100_000).min(keys);
        let mut tx = db.begin_write().expect("begin_write");
        tx.set_durability(redb::Durability::None)
            .expect("durability");
        {
            let mut t = tx.open_table(RAW_TABLE).expect("open table");
            // Sorted within the transaction, as the engine's buffered writes are.
            let mut batch: Vec<(Vec<u8>, u64)> = (i..end).map(|j| (key_of(j), j)).collect();
            batch.sort_unstable();
            for (k, j) in batch {
                t.insert(&k[..], &value(j)[..]).expect("insert");
            }
        }
        tx.commit().expect("commit");
        i = end;
    }
    // One durable commit at the end, as a real load would do.
    let tx = db.begin_write().expect("begin_write");
    tx.commit().expect("commit");
    eprintln!(
        "setup: loaded {keys} keys into raw redb in {:.1?}",
        started.elapsed()
    );
    db
}

/// Shape of the `&[u8] -> &[u8]` table `table` in the closed redb file at `path`: height, leaf
/// and branch pages, stored and fragmented bytes (to compare the engine's data table with a raw
/// one). The file must not be open elsewhere in this process.
pub fn tree_shape(path: &std::path::Path, table: &str) -> String {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let db = redb::Database::open(path).expect("open for stats");
    let txn = db.begin_read().expect("begin_read");
    // Untyped: the engine's data table has its own key type.
    let t = txn
        .open_untyped_table(TableDefinition::<&[u8], &[u8]>::new(table))
        .expect("open table");
    let s = t.stats().expect("stats");
    format!(
        "{table}: {} entries, height {}, {} leaf + {} branch pages, {:.1} MiB stored, {:.1} MiB fragmented",
        t.len().expect("len"),
        s.tree_height(),
        s.leaf_pages(),
        s.branch_pages(),
        s.stored_bytes() as f64 / (1 << 20) as f64,
        s.fragmented_bytes() as f64 / (1 << 20) as f64,
    )
}

/// `n` key indices drawn uniformly from `0..keys` with a fixed seed.
pub fn random_indices(n: usize, keys: u64, seed: u64) -> Vec<u64> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..keys)).collect()
}

/// Runs `iters` calls of `op(thread)` split as evenly as possible over `threads` threads, and
/// returns the wall time from the moment all threads are ready to the moment the last finishes.
pub fn run_split(threads: usize, iters: u64, op: impl Fn(usize) + Sync) -> Duration {
    let threads = threads.max(1);
    let barrier = Barrier::new(threads + 1);
    let mut started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let share = iters / threads as u64 + u64::from((t as u64) < iters % threads as u64);
            let (barrier, op) = (&barrier, &op);
            s.spawn(move || {
                barrier.wait();
                for _ in 0..share {
                    op(t);
                }
            });
        }
        barrier.wait();
        started = Instant::now();
    });
    started.elapsed()
}

/// Whether this run measures: false under `--test`, `--list` or `--profile-time`, where the
/// extra (non-criterion) measurements are skipped.
pub fn measuring() -> bool {
    !std::env::args().any(|a| matches!(a.as_str(), "--test" | "--list" | "--profile-time"))
}

/// The ratio of the time per operation of `a` to that of `b`, measured in `rounds` interleaved
/// rounds (`a` then `b` in even rounds, `b` then `a` in odd ones) so that both see the same
/// machine load: returns the (lower quartile, median, upper quartile) of the per-round ratios.
/// Each closure runs a block of `n` operations and returns its wall time; `n` is chosen from a
/// pilot block so that a block takes about `block`.
///
/// # Panics
/// If `rounds` is 0.
pub fn paired_ratio(
    rounds: usize,
    block: Duration,
    mut a: impl FnMut(u64) -> Duration,
    mut b: impl FnMut(u64) -> Duration,
) -> (f64, f64, f64) {
    assert!(rounds > 0);
    let size = |f: &mut dyn FnMut(u64) -> Duration| {
        let pilot = 64;
        let per_op = f(pilot).as_secs_f64() / pilot as f64;
        ((block.as_secs_f64() / per_op.max(1e-9)) as u64).max(1)
    };
    let (na, nb) = (size(&mut a), size(&mut b));
    let mut ratios: Vec<f64> = (0..rounds)
        .map(|round| {
            let (ta, tb) = if round % 2 == 0 {
                let ta = a(na);
                (ta, b(nb))
            } else {
                let tb = b(nb);
                (a(na), tb)
            };
            (ta.as_secs_f64() / na as f64) / (tb.as_secs_f64() / nb as f64)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}

/// A block runner for [`paired_ratio`]: each call runs `op` on the next `ops` indices of
/// `0..len` (cycling, continuing where the last call stopped) and returns the wall time.
pub fn cycling_block<T>(len: usize, op: impl Fn(usize) -> T) -> impl FnMut(u64) -> Duration {
    let mut n = 0;
    move |ops| {
        let started = Instant::now();
        for _ in 0..ops {
            n = if n + 1 >= len { 0 } else { n + 1 };
            std::hint::black_box(op(n));
        }
        started.elapsed()
    }
}

/// Percentiles of a set of latencies.
#[derive(Debug, Clone, Copy)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest.
    pub max: Duration,
    /// Mean.
    pub mean: Duration,
}

impl LatencySummary {
    /// Summarises `samples` (sorting them); `None` if there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        let total: Duration = samples.iter().sum();
        Some(LatencySummary {
            count: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[samples.len() - 1],
            mean: total / samples.len() as u32,
        })
    }
}

impl std::fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:.3?} p99={:.3?} p99.9={:.3?} max={:.3?} mean={:.3?}",
            self.count, self.p50, self.p99, self.p999, self.max, self.mean
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_split_is_exact() {
        let keys: std::collections::HashSet<_> = (0..10_000).map(key).collect();
        assert_eq!(keys.len(), 10_000);
        let n = AtomicUsize::new(0);
        run_split(7, 100, |_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn percentiles() {
        let mut v: Vec<_> = (1..=1000).map(Duration::from_micros).collect();
        let s = LatencySummary::of(&mut v).unwrap();
        assert_eq!(s.p50, Duration::from_micros(500));
        assert_eq!(s.p99, Duration::from_micros(990));
        assert_eq!(s.max, Duration::from_micros(1000));
    }
}
