//! The workload and the checker shared by the crash, power-loss and fault tests.
//!
//! Six writers commit numbered transactions: writers 0–3 each on a tenant of their own, writers
//! 4 and 5 on one shared tenant. Commit `n` of writer `w` puts 1–3 of the writer's eight data
//! keys, each value naming the transaction (`w{w}-n{n}`), sets the writer's counter key to `n`,
//! and records a `workload.commit` audit event whose message names the transaction. Everything a
//! commit writes is a pure function of `(w, n)`, so after any crash the [`Checker`] can recompute
//! exactly what a writer's keys must hold once its first `m` commits are in, and prove that the
//! database holds exactly that for one `m` no smaller than the last acknowledged commit. It also
//! recounts each tenant's keys, bytes and audit entries against the usage the engine keeps.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tenantry_engine::{
    AuditEntry, AuditQuery, AuditStream, Context, Engine, Operator, Outcome, Result, TenantHandle,
    TenantId,
};

/// Tenant names; writer `w` uses tenant `TENANTS[tenant_of(w)]`.
pub(crate) const TENANTS: [&str; 5] = ["alpha", "bravo", "charlie", "delta", "shared"];
/// Number of writers.
pub(crate) const WRITERS: usize = 6;
/// The table every writer writes.
pub(crate) const TABLE: &str = "data";
/// Data keys per writer; commits overwrite them, so reads check the latest values.
const KEYS_PER_WRITER: u64 = 8;
/// The audit action each commit records, with the transaction id as message.
const COMMIT_ACTION: &str = "workload.commit";

/// Index into [`TENANTS`] of writer `w`'s tenant.
pub(crate) fn tenant_of(writer: usize) -> usize {
    writer.min(TENANTS.len() - 1)
}

/// The operator that creates the tenants and reads audit logs.
pub(crate) fn operator() -> Operator {
    Operator::new("ops:durability-test")
}

/// The number in environment variable `name` (decimal or `0x` hex), if set.
pub(crate) fn env_number(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    let parsed = match raw.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => raw.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={raw:?} is not a number")))
}

/// `err` and its sources, as one line: the engine puts storage details in `source()`.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(&format!(": {e}"));
        source = e.source();
    }
    out
}

/// Ends the test process if it makes no progress for too long, naming the step that hangs (the
/// label carries the seed), since a hung test otherwise never says which seed hung it.
pub(crate) struct Watchdog {
    step: Arc<Mutex<(String, Instant)>>,
}

impl Watchdog {
    /// Starts watching; stops when dropped.
    pub(crate) fn start(limit: Duration) -> Watchdog {
        let step = Arc::new(Mutex::new((String::from("start"), Instant::now())));
        let watched = Arc::downgrade(&step);
        std::thread::spawn(move || {
            while let Some(step) = watched.upgrade() {
                let (label, since) = step.lock().unwrap_or_else(PoisonError::into_inner).clone();
                drop(step);
                if since.elapsed() > limit {
                    eprintln!("watchdog: no progress for {limit:?} in {label}: a hang");
                    std::process::exit(3);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Watchdog { step }
    }

    /// Records that a new step, described by `label`, begins.
    pub(crate) fn step(&self, label: &str) {
        *self.step.lock().unwrap_or_else(PoisonError::into_inner) =
            (label.to_owned(), Instant::now());
    }
}

/// A commit whose `commit()` returned `Ok`, with its receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    /// The writer.
    pub(crate) writer: usize,
    /// The writer's commit number, from 1.
    pub(crate) n: u64,
    /// `CommitReceipt::audit_seq`.
    pub(crate) audit_seq: u64,
    /// `CommitReceipt::audit_head`.
    pub(crate) audit_head: [u8; 32],
}

/// Looks up or creates every tenant of [`TENANTS`]; calls `created` after each acknowledged
/// creation. Returns the ids in the order of [`TENANTS`].
pub(crate) fn ensure_tenants(
    engine: &Engine,
    mut created: impl FnMut(&str, TenantId),
) -> Result<Vec<TenantId>> {
    let op = operator();
    let mut ids = Vec::with_capacity(TENANTS.len());
    for name in TENANTS {
        let id = match engine.tenant_id(name)? {
            Some(id) => id,
            None => {
                let id = engine.create_tenant(&op, name)?;
                created(name, id);
                id
            }
        };
        ids.push(id);
    }
    Ok(ids)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn commit_hash(writer: usize, n: u64) -> u64 {
    splitmix64((writer as u64) << 48 ^ n)
}

/// The data keys (indices below [`KEYS_PER_WRITER`]) that commit `n` of `writer` puts, in
/// put order: one to three distinct ones.
fn commit_keys(writer: usize, n: u64) -> Vec<u64> {
    let h = commit_hash(writer, n);
    let count = 1 + (h % 3) as usize;
    let mut keys = Vec::with_capacity(count);
    let mut bits = h >> 8;
    while keys.len() < count {
        let k = bits % KEYS_PER_WRITER;
        bits = splitmix64(bits);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

fn data_key(writer: usize, k: u64) -> Vec<u8> {
    format!("w{writer}/k{k}").into_bytes()
}

fn counter_key(writer: usize) -> Vec<u8> {
    format!("w{writer}/n").into_bytes()
}

fn txn_id(writer: usize, n: u64) -> String {
    format!("w{writer}-n{n}")
}

/// The value commit `n` of `writer` puts at key `k`: names the transaction, 20 B to 1.5 KiB.
fn value(writer: usize, n: u64, k: u64) -> Vec<u8> {
    let mut v = format!("{};k{k};", txn_id(writer, n)).into_bytes();
    let len = 20 + (splitmix64(commit_hash(writer, n) ^ k) % 1500) as usize;
    let fill = b'a' + (n % 26) as u8;
    v.resize(len.max(v.len()), fill);
    v
}

/// What writer `w`'s keys hold once its commits `1..=m` are in: the counter and, for each data
/// key, the value of the newest commit that put it.
fn expected_state(writer: usize, m: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = BTreeMap::new();
    if m == 0 {
        return state;
    }
    state.insert(counter_key(writer), m.to_string().into_bytes());
    let mut n = m;
    while n >= 1 && state.len() <= KEYS_PER_WRITER as usize {
        for k in commit_keys(writer, n) {
            state
                .entry(data_key(writer, k))
                .or_insert_with(|| value(writer, n, k));
        }
        n -= 1;
    }
    state
}

fn parse_counter(bytes: &[u8], what: &str) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: counter value {bytes:?} is not a number"))
}

/// One writer: commits the writer's transactions in order, from the first one not yet durable.
pub(crate) struct Writer {
    index: usize,
    handle: TenantHandle,
    next: u64,
}

impl Writer {
    /// Opens writer `index` on its tenant (`tenants` as [`ensure_tenants`] returns them) and
    /// reads how far it got.
    pub(crate) fn open(engine: &Engine, tenants: &[TenantId], index: usize) -> Result<Writer> {
        let ctx = Context::tenant(tenants[tenant_of(index)]).actor(format!("writer-{index}"));
        let handle = engine.tenant(&ctx)?;
        let done = match handle.begin_read()?.get(TABLE, &counter_key(index))? {
            Some(v) => parse_counter(&v, "Writer::open"),
            None => 0,
        };
        Ok(Writer {
            index,
            handle,
            next: done + 1,
        })
    }

    /// Commits the writer's next transaction. Panics if the transaction sees a counter other
    /// than its predecessor's: a lost or reordered commit.
    pub(crate) fn commit_next(&mut self) -> Result<Ack> {
        let (w, n) = (self.index, self.next);
        // A lock timeout (the shared tenant's other writer, on a loaded machine) is retryable.
        let mut tx = loop {
            match self.handle.begin_write() {
                Err(e) if e.is_retryable() => continue,
                other => break other?,
            }
        };
        let seen = tx
            .get(TABLE, &counter_key(w))?
            .map_or(0, |v| parse_counter(&v, "commit_next"));
        assert_eq!(
            seen,
            n - 1,
            "writer {w} before commit {n}: counter is {seen}"
        );
        for k in commit_keys(w, n) {
            tx.put(TABLE, &data_key(w, k), &value(w, n, k))?;
        }
        tx.put(TABLE, &counter_key(w), n.to_string().as_bytes())?;
        tx.audit(COMMIT_ACTION, Some(&txn_id(w, n)))?;
        let receipt = tx.commit()?;
        self.next += 1;
        Ok(Ack {
            writer: w,
            n,
            audit_seq: receipt.audit_seq,
            audit_head: receipt.audit_head,
        })
    }
}

/// Checks a reopened database against everything acknowledged so far. It carries what earlier
/// checks found durable, so one `Checker` follows one database through many crashes.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    /// Tenants known to exist: acknowledged, or found by an earlier check.
    tenants: BTreeMap<String, TenantId>,
    /// Per writer, the number of its commits found durable by the last check.
    durable: [u64; WRITERS],
    /// Per tenant, the length of its audit stream at the last check.
    audit_len: HashMap<TenantId, u64>,
    /// Checks run.
    pub(crate) checks: u64,
    /// Acknowledged commits checked.
    pub(crate) acked_commits: u64,
    /// Commits found durable although their acknowledgement was never seen.
    pub(crate) unacked_durable: u64,
}

impl Checker {
    /// A checker for a new database.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Total commits found durable so far, all writers.
    pub(crate) fn durable_commits(&self) -> u64 {
        self.durable.iter().sum()
    }

    /// Checks `engine` (just reopened after a crash) against the tenants whose creation was
    /// acknowledged (`created`) and the commits acknowledged (`acks`) since the last check.
    /// Panics, naming `label`, on the first violation.
    pub(crate) fn check(
        &mut self,
        engine: &Engine,
        created: &[(String, TenantId)],
        acks: &[Ack],
        label: &str,
    ) {
        self.checks += 1;
        self.acked_commits += acks.len() as u64;
        self.check_tenants(engine, created, label);
        let before = self.durable;
        for w in 0..WRITERS {
            self.check_writer_data(engine, w, acks, label);
        }
        self.unacked_durable += (0..WRITERS)
            .map(|w| {
                let acked = acks.iter().filter(|a| a.writer == w).map(|a| a.n).max();
                self.durable[w] - acked.unwrap_or(before[w]).max(before[w])
            })
            .sum::<u64>();
        let tenants: Vec<(usize, TenantId)> = TENANTS
            .iter()
            .enumerate()
            .filter_map(|(i, name)| self.tenants.get(*name).map(|id| (i, *id)))
            .collect();
        for (index, tenant) in tenants {
            self.check_tenant_audit(engine, index, tenant, &before, acks, label);
            check_usage(engine, index, tenant, label);
        }
        if let Err(e) = engine.verify_stream(AuditStream::System, None) {
            panic!(
                "{label}: system audit stream fails verification: {}",
                chain(&e)
            );
        }
    }

    fn check_tenants(&mut self, engine: &Engine, created: &[(String, TenantId)], label: &str) {
        for (name, id) in created {
            if let Some(known) = self.tenants.get(name) {
                assert_eq!(
                    known, id,
                    "{label}: tenant {name} acknowledged with two ids"
                );
            }
            self.tenants.insert(name.clone(), *id);
        }
        for name in TENANTS {
            let found = engine.tenant_id(name).unwrap();
            match (self.tenants.get(name), found) {
                (Some(known), found) => assert_eq!(
                    found,
                    Some(*known),
                    "{label}: tenant {name} (created and acknowledged as {known}) is missing"
                ),
                (None, Some(id)) => {
                    self.tenants.insert(name.to_owned(), id);
                }
                (None, None) => {}
            }
        }
    }

    fn check_writer_data(&mut self, engine: &Engine, w: usize, acks: &[Ack], label: &str) {
        let acked = acks.iter().filter(|a| a.writer == w).map(|a| a.n).max();
        let Some(&tenant) = self.tenants.get(TENANTS[tenant_of(w)]) else {
            assert!(
                acked.is_none(),
                "{label}: writer {w} has acknowledged commits but no tenant"
            );
            return;
        };
        let handle = engine
            .tenant(&Context::tenant(tenant).actor("checker"))
            .unwrap();
        let read = handle.begin_read().unwrap();
        let m = read
            .get(TABLE, &counter_key(w))
            .unwrap()
            .map_or(0, |v| parse_counter(&v, label));
        // Commits of one writer are sequential: at most the one after the last acknowledged
        // commit can be durable without our having seen its acknowledgement.
        let floor = acked.unwrap_or(0).max(self.durable[w]);
        assert!(
            m == floor || m == floor + 1,
            "{label}: writer {w} has {m} durable commits, but {floor} were acknowledged or found \
             durable before (acknowledged this run: {acked:?}); an acknowledged commit was lost"
        );
        let prefix = format!("w{w}/").into_bytes();
        let found: Vec<(Vec<u8>, Vec<u8>)> = read
            .scan_prefix(TABLE, &prefix)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = expected_state(w, m).into_iter().collect();
        if found != expected {
            panic!(
                "{label}: writer {w}'s keys do not match its first {m} commits (a lost, partial or \
                 foreign transaction):\n{}",
                describe_difference(&found, &expected)
            );
        }
        self.durable[w] = m;
    }

    fn check_tenant_audit(
        &mut self,
        engine: &Engine,
        index: usize,
        tenant: TenantId,
        before: &[u64; WRITERS],
        acks: &[Ack],
        label: &str,
    ) {
        let name = TENANTS[index];
        let verified = match engine.verify_audit(tenant) {
            Ok(n) => n,
            Err(e) => panic!(
                "{label}: audit of tenant {name} fails verification: {}",
                chain(&e)
            ),
        };
        let seen = self.audit_len.get(&tenant).copied().unwrap_or(0);
        assert!(
            verified >= seen,
            "{label}: audit of tenant {name} shrank from {seen} to {verified} entries"
        );
        let fresh = audit_after(engine, tenant, seen);
        for (i, e) in fresh.iter().enumerate() {
            assert_eq!(
                e.seq,
                seen + 1 + i as u64,
                "{label}: audit of tenant {name} has a gap"
            );
        }
        assert_eq!(
            seen + fresh.len() as u64,
            verified,
            "{label}: audit of tenant {name}: verify_audit and the log disagree on its length"
        );
        if seen == 0 {
            assert!(
                fresh.first().is_some_and(|e| e.action == "tenant.create"),
                "{label}: audit of tenant {name} does not start with tenant.create"
            );
        }
        // Every entry is a tenant.create or part of one writer commit, whose entries are
        // contiguous and end with its workload.commit entry.
        let mut commits: Vec<Vec<u64>> = vec![Vec::new(); WRITERS];
        let mut i = 0;
        let skip = usize::from(seen == 0);
        i += skip;
        while i < fresh.len() {
            let (w, n, len) = match parse_commit(&fresh, i) {
                Some(found) => found,
                None => panic!(
                    "{label}: audit of tenant {name}: unexpected entries from seq {}: {:#?}",
                    fresh[i].seq,
                    &fresh[i..fresh.len().min(i + 5)]
                ),
            };
            assert_eq!(
                tenant_of(w),
                index,
                "{label}: tenant {name} holds the audit of writer {w}"
            );
            commits[w].push(n);
            i += len;
        }
        for (w, ns) in commits.iter().enumerate() {
            if tenant_of(w) != index {
                continue;
            }
            let want: Vec<u64> = (before[w] + 1..=self.durable[w]).collect();
            assert_eq!(
                ns, &want,
                "{label}: audit of tenant {name} does not record exactly writer {w}'s durable \
                 commits since the last check"
            );
        }
        let by_seq: HashMap<u64, &AuditEntry> = fresh.iter().map(|e| (e.seq, e)).collect();
        let mut newest: Option<&Ack> = None;
        for ack in acks.iter().filter(|a| tenant_of(a.writer) == index) {
            let entry = by_seq.get(&ack.audit_seq).unwrap_or_else(|| {
                panic!("{label}: the audit entry of acknowledged commit {ack:?} is missing")
            });
            assert!(
                entry.action == COMMIT_ACTION
                    && entry.message.as_deref() == Some(txn_id(ack.writer, ack.n).as_str())
                    && entry.hash == ack.audit_head,
                "{label}: audit seq {} is not the receipt of acknowledged commit {ack:?}: {entry:#?}",
                ack.audit_seq
            );
            if newest.is_none_or(|n| n.audit_seq < ack.audit_seq) {
                newest = Some(ack);
            }
        }
        if let Some(ack) = newest
            && let Err(e) = engine.verify_audit_against(tenant, ack.audit_seq, &ack.audit_head)
        {
            panic!(
                "{label}: audit of tenant {name} fails against the receipt of {ack:?}: {}",
                chain(&e)
            );
        }
        self.audit_len.insert(tenant, verified);
    }
}

/// Checks that the usage the engine keeps for workload tenant `TENANTS[index]` equals a
/// recount of its keys (the workload writes [`TABLE`] only) and of its audit stream.
fn check_usage(engine: &Engine, index: usize, tenant: TenantId, label: &str) {
    let name = TENANTS[index];
    let usage = engine.tenant_info(tenant).unwrap().usage;
    let handle = engine
        .tenant(&Context::tenant(tenant).actor("checker"))
        .unwrap();
    let (mut keys, mut bytes) = (0, 0);
    for item in handle
        .begin_read()
        .unwrap()
        .scan_prefix(TABLE, b"")
        .unwrap()
    {
        let (k, v) = item.unwrap();
        keys += 1;
        bytes += (k.len() + v.len()) as u64;
    }
    assert_eq!(
        (usage.keys, usage.bytes),
        (keys, bytes),
        "{label}: tenant {name}'s usage (keys, bytes) differs from a recount"
    );
    let entries = engine.verify_audit(tenant).unwrap();
    assert_eq!(
        usage.audit_entries, entries,
        "{label}: tenant {name}'s usage counts {} audit entries, its stream holds {entries}",
        usage.audit_entries
    );
}

/// Entries of `tenant`'s stream with seq above `seen`, oldest first.
fn audit_after(engine: &Engine, tenant: TenantId, seen: u64) -> Vec<AuditEntry> {
    const PAGE: usize = 1000;
    let op = operator();
    let mut out = Vec::new();
    let mut before = u64::MAX;
    'pages: loop {
        let query = AuditQuery::default().before_seq(before).limit(PAGE);
        let page = engine.tenant_audit_log(&op, tenant, &query).unwrap();
        let full = page.len() == PAGE;
        for entry in page {
            if entry.seq <= seen {
                break 'pages;
            }
            before = entry.seq;
            out.push(entry);
        }
        if !full {
            break;
        }
    }
    out.reverse();
    out
}

/// If `entries[i..]` starts with one whole writer commit, its writer, number and entry count.
fn parse_commit(entries: &[AuditEntry], i: usize) -> Option<(usize, u64, usize)> {
    let first = &entries[i];
    let actor = first.actor.as_deref()?;
    let w: usize = actor.strip_prefix("writer-")?.parse().ok()?;
    let target = first.target.as_deref()?;
    let key: u64 = target
        .strip_prefix(&format!("{TABLE}/w{w}/k"))?
        .parse()
        .ok()?;
    // Find the commit from the counter's put, which follows the data keys' puts.
    let keys_len = (1..=3).find(|&len| {
        entries.get(i + len).and_then(|e| e.target.as_deref())
            == Some(format!("{TABLE}/w{w}/n").as_str())
    })?;
    let commit = entries.get(i + keys_len + 1)?;
    let txn = commit.message.as_deref()?;
    let n: u64 = txn.strip_prefix(&format!("w{w}-n"))?.parse().ok()?;
    let keys = commit_keys(w, n);
    if keys.first() != Some(&key) || keys.len() != keys_len || commit.action != COMMIT_ACTION {
        return None;
    }
    let mut targets: Vec<String> = keys
        .iter()
        .map(|k| format!("{TABLE}/{}", String::from_utf8_lossy(&data_key(w, *k))))
        .collect();
    targets.push(format!("{TABLE}/w{w}/n"));
    let puts = &entries[i..i + keys_len + 1];
    let all_ok = puts.iter().zip(&targets).all(|(e, t)| {
        e.action == "kv.put" && e.target.as_deref() == Some(t.as_str()) && e.value_digest.is_some()
    }) && entries[i..=i + keys_len + 1]
        .iter()
        .all(|e| e.actor.as_deref() == Some(actor) && e.outcome == Outcome::Ok && !e.by_operator);
    all_ok.then_some((w, n, keys_len + 2))
}

fn describe_difference(found: &[(Vec<u8>, Vec<u8>)], expected: &[(Vec<u8>, Vec<u8>)]) -> String {
    let show = |kv: Option<&(Vec<u8>, Vec<u8>)>| match kv {
        None => "nothing".to_owned(),
        Some((k, v)) => {
            let v = String::from_utf8_lossy(&v[..v.len().min(24)]);
            format!("{} = {v}…", String::from_utf8_lossy(k))
        }
    };
    let mut out = String::new();
    for i in 0..found.len().max(expected.len()) {
        if found.get(i) != expected.get(i) {
            out.push_str(&format!(
                "  found {}\n  want  {}\n",
                show(found.get(i)),
                show(expected.get(i))
            ));
        }
    }
    out
}
