//! `postgres`: the PostgreSQL backend against a plain `postgres` client running the same
//! statements (same schema, same row locks, same audit row, same head update) in the same run,
//! on a primary with a synchronous standby (`eval "$(.ci/pg.sh up)"`, `TENANTRY_PG_URL`).
//!
//! * `commits/engine/{1,16,64}` ⟷ `commits/raw/{1,16,64}`: durable commits per second, each
//!   thread on its own tenant, one 16 B + 100 B put per commit. Target engine ≥ 0.85× raw at
//!   1 and 16 writers.
//! * `one_tenant/engine/4` ⟷ `one_tenant/raw/4`: four writers on one tenant (they queue on its
//!   writer lock). Reported, no target.
//! * `point_get/engine` ⟷ `point_get/raw`: a get in an open read transaction (REPEATABLE READ
//!   READ ONLY on both sides) of 10,000 keys. Target engine ≥ 0.85× raw (in gets per second).
//!
//! Without `TENANTRY_PG_URL` it prints that it skipped. Sizes: `TENANTRY_BENCH_PG_THREADS`
//! (`1,16,64`), `TENANTRY_BENCH_COMMIT_SAMPLES` (20 samples).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use parking_lot::Mutex;
use postgres::{Client, NoTls, Statement};
use tenantry_benches::{
    TABLE, create_tenants, env_list, env_usize, measuring, paired_ratio, run_split, seq_key, value,
};
use tenantry_engine::{Context, Engine, EngineOptions, TenantHandle, TenantId};

const GET_KEYS: u64 = 10_000;

/// The raw client's side: one connection per thread and its prepared statements.
struct Raw {
    client: Client,
    lock_writer: Statement,
    size: Statement,
    lock_head: Statement,
    put: Statement,
    audit: Statement,
    head: Statement,
    get: Statement,
}

impl Raw {
    fn connect(url: &str, schema: &str) -> Raw {
        let mut client = url
            .parse::<postgres::Config>()
            .unwrap()
            .connect(NoTls)
            .unwrap();
        client
            .batch_execute(&format!("SET search_path TO \"{schema}\""))
            .unwrap();
        let mut p = |sql: &str| client.prepare(sql).unwrap();
        let lock_writer = p("SELECT 1 FROM tenants WHERE tenant_id = $1 FOR UPDATE");
        let size =
            p("SELECT octet_length(v) FROM kv WHERE tenant_id = $1 AND table_id = $2 AND k = $3");
        let lock_head = p(
            "SELECT state, max_bytes, max_keys, used_bytes, used_keys, audit_bytes, \
             audit_entries, seq, hash, ts, next_table, purged, reserved_version FROM heads \
             WHERE tenant_id = $1 FOR UPDATE",
        );
        let put = p("INSERT INTO kv (tenant_id, table_id, k, v) \
             SELECT $1, t, k, v FROM unnest($2::int4[], $3::bytea[], $4::bytea[]) AS u(t, k, v) \
             ON CONFLICT (tenant_id, table_id, k) DO UPDATE SET v = EXCLUDED.v");
        let audit = p(
            "INSERT INTO audit (tenant_id, seq, ts, action, hash, body) \
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::bytea[], $6::bytea[])",
        );
        let head = p(
            "UPDATE heads SET state = $2, max_bytes = $3, max_keys = $4, used_bytes = $5, \
             used_keys = $6, audit_bytes = $7, audit_entries = $8, seq = $9, hash = $10, \
             ts = $11, next_table = $12, purged = $13, reserved_version = $14 \
             WHERE tenant_id = $1",
        );
        let get = p("SELECT v FROM kv WHERE tenant_id = $1 AND table_id = $2 AND k = $3");
        Raw {
            client,
            lock_writer,
            size,
            lock_head,
            put,
            audit,
            head,
            get,
        }
    }

    /// One commit of one put, as the engine makes it: writer lock, old size, head lock, data,
    /// one chained audit row, head update.
    fn commit(&mut self, tenant: i64, key: &[u8], v: &[u8]) {
        let c = &mut self.client;
        c.batch_execute("BEGIN; SET LOCAL lock_timeout = '5000ms'")
            .unwrap();
        c.query_one(&self.lock_writer, &[&tenant]).unwrap();
        let old: Option<i32> = c
            .query_opt(&self.size, &[&tenant, &1i32, &key])
            .unwrap()
            .map(|r| r.get(0));
        let h = c.query_one(&self.lock_head, &[&tenant]).unwrap();
        let (seq, prev): (i64, Vec<u8>) = (h.get(7), h.get(8));
        let used_bytes: i64 = h.get(3);
        let used_keys: i64 = h.get(4);
        c.execute(
            &self.put,
            &[&tenant, &vec![1i32], &vec![key.to_vec()], &vec![v.to_vec()]],
        )
        .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        let target = format!("kv/{}", key.len());
        let mut body = Vec::with_capacity(160);
        body.extend_from_slice(b"kv.put bench:writer ");
        body.extend_from_slice(target.as_bytes());
        body.extend_from_slice(blake3::hash(v).as_bytes());
        let hash = blake3::Hasher::new()
            .update(&prev)
            .update(&body)
            .finalize()
            .as_bytes()
            .to_vec();
        c.execute(
            &self.audit,
            &[
                &vec![tenant],
                &vec![seq + 1],
                &vec![now],
                &vec!["kv.put".to_owned()],
                &vec![hash.clone()],
                &vec![body],
            ],
        )
        .unwrap();
        let new_bytes = (key.len() + v.len()) as i64;
        let (bytes, keys) = match old {
            Some(len) => (
                used_bytes + new_bytes - key.len() as i64 - i64::from(len),
                used_keys,
            ),
            None => (used_bytes + new_bytes, used_keys + 1),
        };
        let state: i16 = h.get(0);
        let (max_bytes, max_keys): (Option<i64>, Option<i64>) = (h.get(1), h.get(2));
        let (audit_bytes, audit_entries): (i64, i64) = (h.get(5), h.get(6));
        let (next_table, purged, reserved): (i32, bool, i64) = (h.get(10), h.get(11), h.get(12));
        c.execute(
            &self.head,
            &[
                &tenant,
                &state,
                &max_bytes,
                &max_keys,
                &bytes,
                &keys,
                &(audit_bytes + 200),
                &(audit_entries + 1),
                &(seq + 1),
                &hash,
                &now,
                &next_table,
                &purged,
                &reserved,
            ],
        )
        .unwrap();
        c.batch_execute("COMMIT").unwrap();
    }
}

fn open(url: &str, schema: &str) -> Engine {
    let mut options = EngineOptions::default();
    options.postgres_schema = schema.to_owned();
    Engine::open_postgres_with(url, options).unwrap()
}

fn postgres_bench(c: &mut Criterion) {
    let Ok(url) = std::env::var("TENANTRY_PG_URL") else {
        eprintln!("postgres: skipped: TENANTRY_PG_URL not set (eval \"$(.ci/pg.sh up)\")");
        return;
    };
    let thread_counts = env_list("TENANTRY_BENCH_PG_THREADS", &[1, 16, 64]);
    let max_threads = thread_counts.iter().copied().max().unwrap_or(1).max(4);
    let run = std::process::id();

    // The engine, and for the raw client a schema of the same shape with its own tenants.
    let engine = open(&url, &format!("bench_{run}"));
    let tenants = create_tenants(&engine, "w", max_threads);
    let handles: Vec<TenantHandle> = tenants
        .iter()
        .map(|&t| {
            engine
                .tenant(&Context::tenant(t).actor("bench:writer"))
                .unwrap()
        })
        .collect();
    let raw_schema = format!("bench_raw_{run}");
    let raw_tenants: Vec<i64> = {
        let raw_engine = open(&url, &raw_schema);
        create_tenants(&raw_engine, "w", max_threads)
            .into_iter()
            .map(|t: TenantId| t.get() as i64)
            .collect()
    };
    let raws: Vec<Mutex<Raw>> = (0..max_threads)
        .map(|_| Mutex::new(Raw::connect(&url, &raw_schema)))
        .collect();
    let engine_next: Vec<AtomicU64> = (0..max_threads).map(|_| AtomicU64::new(0)).collect();
    let raw_next: Vec<AtomicU64> = (0..max_threads).map(|_| AtomicU64::new(0)).collect();
    let v = value(7);

    let engine_commit = |t: usize, tenant: usize| {
        let n = engine_next[t].fetch_add(1, Ordering::Relaxed);
        let mut tx = handles[tenant].begin_write().unwrap();
        tx.put(TABLE, &seq_key(t as u64, n), &v).unwrap();
        tx.commit().unwrap();
    };
    let raw_commit = |t: usize, tenant: usize| {
        let n = raw_next[t].fetch_add(1, Ordering::Relaxed);
        raws[t]
            .lock()
            .commit(raw_tenants[tenant], &seq_key(t as u64, n), &v);
    };

    let mut group = c.benchmark_group("postgres_commits");
    group
        .sample_size(env_usize("TENANTRY_BENCH_COMMIT_SAMPLES", 20))
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    for &threads in &thread_counts {
        group.bench_with_input(BenchmarkId::new("engine", threads), &threads, |b, &n| {
            b.iter_custom(|iters| run_split(n, iters, |t| engine_commit(t, t)))
        });
        group.bench_with_input(BenchmarkId::new("raw", threads), &threads, |b, &n| {
            b.iter_custom(|iters| run_split(n, iters, |t| raw_commit(t, t)))
        });
    }
    group.bench_function("one_tenant_4_writers/engine", |b| {
        b.iter_custom(|iters| run_split(4, iters, |t| engine_commit(t, 0)))
    });
    group.bench_function("one_tenant_4_writers/raw", |b| {
        b.iter_custom(|iters| run_split(4, iters, |t| raw_commit(t, 0)))
    });
    group.finish();

    // Point gets: 10,000 keys of one tenant, read by the engine and by the raw client (the
    // same rows, through the engine's schema) in an open snapshot.
    {
        let h = &handles[0];
        let mut tx = h.begin_write().unwrap();
        for i in 0..GET_KEYS {
            tx.put("gets", &tenantry_benches::key(i), &value(i))
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let read = handles[0].begin_read().unwrap();
    let mut raw_reader = Raw::connect(&url, &format!("bench_{run}"));
    let get_table: i32 = raw_reader
        .client
        .query_one(
            "SELECT table_id FROM tables WHERE tenant_id = $1 AND name = 'gets'",
            &[&(tenants[0].get() as i64)],
        )
        .unwrap()
        .get(0);
    raw_reader
        .client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .unwrap();
    let raw_reader = Mutex::new(raw_reader);
    let t0 = tenants[0].get() as i64;
    let picks = tenantry_benches::random_indices(4096, GET_KEYS, 11);
    let engine_get = |i: usize| {
        read.get("gets", &tenantry_benches::key(picks[i % picks.len()]))
            .unwrap()
            .unwrap()
    };
    let raw_get = |i: usize| {
        let mut r = raw_reader.lock();
        let Raw { client, get, .. } = &mut *r;
        let row = client
            .query_one(
                &*get,
                &[
                    &t0,
                    &get_table,
                    &&tenantry_benches::key(picks[i % picks.len()])[..],
                ],
            )
            .unwrap();
        row.get::<_, Vec<u8>>(0)
    };
    let mut group = c.benchmark_group("postgres_point_get");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("engine", |b| {
        b.iter(|| {
            i += 1;
            engine_get(i)
        })
    });
    group.bench_function("raw", |b| {
        b.iter(|| {
            i += 1;
            raw_get(i)
        })
    });
    group.finish();

    if !measuring() {
        return;
    }
    let rounds = env_usize("TENANTRY_BENCH_PAIRED_COMMIT_ROUNDS", 11);
    for &threads in &thread_counts {
        let (q1, median, q3) = paired_ratio(
            rounds,
            Duration::from_millis(400),
            |n| run_split(threads, n, |t| raw_commit(t, t)),
            |n| run_split(threads, n, |t| engine_commit(t, t)),
        );
        eprintln!(
            "postgres: paired engine commits/s ÷ raw client commits/s at {threads} writers = {median:.2} (IQR {q1:.2}–{q3:.2}, {rounds} rounds)"
        );
    }
    let (q1, median, q3) = paired_ratio(
        rounds,
        Duration::from_millis(400),
        |n| run_split(4, n, |t| raw_commit(t, 0)),
        |n| run_split(4, n, |t| engine_commit(t, 0)),
    );
    eprintln!(
        "postgres: paired engine ÷ raw commits/s, one tenant, 4 writers = {median:.2} (IQR {q1:.2}–{q3:.2})"
    );
    let (mut ka, mut kb) = (0usize, 0usize);
    let (q1, median, q3) = paired_ratio(
        31,
        Duration::from_millis(100),
        |n| {
            let s = std::time::Instant::now();
            for _ in 0..n {
                ka += 1;
                std::hint::black_box(raw_get(ka));
            }
            s.elapsed()
        },
        |n| {
            let s = std::time::Instant::now();
            for _ in 0..n {
                kb += 1;
                std::hint::black_box(engine_get(kb));
            }
            s.elapsed()
        },
    );
    eprintln!(
        "postgres: paired engine gets/s ÷ raw client gets/s = {median:.2} (IQR {q1:.2}–{q3:.2}, 31 rounds)"
    );
}

criterion_group!(benches, postgres_bench);
criterion_main!(benches);
