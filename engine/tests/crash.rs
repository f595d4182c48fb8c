//! SIGKILL crash test: a child process commits from six threads and is killed at a random moment;
//! the parent reopens the file and checks that nothing acknowledged was lost.
//!
//! The child is this test binary, re-executed with `--exact crash_child_writer` and
//! `TENANTRY_CRASH_CHILD_DB` naming the database. It looks up (or, the first time, creates) five
//! tenants, runs the shared workload (`support`: four writers on tenants of their own, two on a
//! shared one, each commit putting 1–3 keys plus a counter and an audit event, every value naming
//! its transaction), and prints each commit to stdout only after `commit()` returned `Ok`. The
//! parent kills it with SIGKILL, mostly while it writes and sometimes while it opens the file,
//! reopens the file with [`Engine::open`] (so redb's crash recovery runs) and checks that
//!
//! * every acknowledged tenant and commit is there, with its exact values;
//! * no transaction is partial: each writer's keys equal the state after exactly its first `m`
//!   commits, with `m` the last acknowledged commit or the one after it, and the audit log
//!   holds exactly those commits' entries;
//! * each receipt's `(audit_seq, audit_head)` is in the log, every tenant's stream is gapless and
//!   its chain verifies, and so does the system stream.
//!
//! It does that for 30 kill cycles on the same file (`TENANTRY_CRASH_CYCLES` for more; long runs
//! start a new file every 50 cycles), each child continuing where the durable state left off.
//! `TENANTRY_CRASH_SEED` replays the kill delays of a failed run (thread timing still varies).
//! The first child on a file is killed only once it is ready: a crash while a new file is being
//! created is `power_loss_while_creating_the_database`'s subject, where it is deterministic.
//!
//! What it cannot prove: SIGKILL ends the process but keeps the kernel's page cache, so a write
//! that was never fsynced still reaches the file. A missing or misplaced fsync passes here; the
//! power-loss test (`power_loss.rs`), whose storage backend forgets unsynced writes, catches it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tenantry_engine::{Engine, TenantId, hash_hex};

use support::{Ack, Checker, WRITERS, Watchdog, Writer, env_number};

/// Set in the child's environment to the database path; its absence makes the child test a no-op.
const CHILD_ENV: &str = "TENANTRY_CRASH_CHILD_DB";
/// Name of the test function that is the child.
const CHILD_TEST: &str = "crash_child_writer";
/// Marks the child's protocol lines; libtest prints on the same stdout.
const MARK: &str = "@@tenantry-crash ";
const DEFAULT_CYCLES: usize = 30;
/// Long runs start a new file after this many cycles: each reopen verifies the whole file and
/// audit log, so one ever-growing file would make them quadratic.
const CYCLES_PER_FILE: usize = 50;
/// A cycle (child run, reopen and check) taking longer than this is a hang.
const CYCLE_LIMIT: Duration = Duration::from_secs(180);
/// How long the child may take to open the database before the parent gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The child stops writing after this long, in case no parent is left to kill it.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);

/// The child: writes until it is killed. Does nothing when run as an ordinary test.
#[test]
fn crash_child_writer() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let engine = Engine::open(&path).expect("child: open");
    let tenants = support::ensure_tenants(&engine, |name, id| {
        emit(&format!("tenant {name} {}", id.get()));
    })
    .expect("child: tenants");
    emit("ready");
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (engine, tenants) = (&engine, &tenants);
            s.spawn(move || {
                let mut writer = Writer::open(engine, tenants, w).expect("child: writer");
                while started.elapsed() < CHILD_LIFETIME {
                    let ack = writer.commit_next().expect("child: commit");
                    emit(&format!(
                        "ack {} {} {} {}",
                        ack.writer,
                        ack.n,
                        ack.audit_seq,
                        hash_hex(&ack.audit_head)
                    ));
                }
            });
        }
    });
}

/// Prints one protocol line and flushes it into the pipe before returning.
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK}{line}").expect("child: stdout");
    out.flush().expect("child: stdout");
}

/// What one child acknowledged before it died.
#[derive(Debug, Default)]
struct ChildReport {
    ready: bool,
    created: Vec<(String, TenantId)>,
    acks: Vec<Ack>,
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl ChildReport {
    fn read(&mut self, line: &str) {
        // libtest may print "test crash_child_writer ... " on the same line.
        let Some((_, msg)) = line.split_once(MARK) else {
            return;
        };
        let fields: Vec<&str> = msg.split_whitespace().collect();
        let parsed = match fields.as_slice() {
            ["ready"] => {
                self.ready = true;
                Some(())
            }
            ["tenant", name, id] => id.parse().ok().map(|id| {
                self.created
                    .push(((*name).to_owned(), TenantId::from_raw(id)));
            }),
            ["ack", w, n, seq, head] => (|| {
                self.acks.push(Ack {
                    writer: w.parse().ok()?,
                    n: n.parse().ok()?,
                    audit_seq: seq.parse().ok()?,
                    audit_head: parse_hash(head)?,
                });
                Some(())
            })(),
            _ => None,
        };
        assert!(parsed.is_some(), "unreadable line from the child: {line:?}");
    }
}

/// Runs one child on `path`, kills it after `delay` (counted from its "ready" line, or from its
/// start if `before_ready`), and returns what it acknowledged.
fn run_child(path: &Path, delay: Duration, before_ready: bool, label: &str) -> ChildReport {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let out_reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut report = ChildReport::default();
    let start = Instant::now();
    if !before_ready {
        while !report.ready {
            let left = READY_TIMEOUT.saturating_sub(start.elapsed());
            match lines.recv_timeout(left) {
                Ok(line) => report.read(&line),
                Err(_) => break, // exited early or too slow: reported below
            }
        }
    }
    let kill_at = Instant::now() + delay;
    while let Some(left) = kill_at.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => report.read(&line),
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let early_exit = child.try_wait().unwrap();
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    out_reader.join().unwrap();
    report.read_all(&lines);
    let stderr = err_reader.join().unwrap();
    if let Some(status) = early_exit {
        panic!("{label}: the child exited on its own ({status}) before it was killed:\n{stderr}");
    }
    assert!(
        before_ready || report.ready,
        "{label}: the child was not ready within {READY_TIMEOUT:?} ({status}):\n{stderr}"
    );
    report
}

impl ChildReport {
    fn read_all(&mut self, lines: &mpsc::Receiver<String>) {
        for line in lines.try_iter() {
            self.read(&line);
        }
    }
}

#[test]
fn sigkill_loses_no_acknowledged_commit() {
    let cycles = env_number("TENANTRY_CRASH_CYCLES").map_or(DEFAULT_CYCLES, |n| n as usize);
    let seed = env_number("TENANTRY_CRASH_SEED").unwrap_or_else(rand::random);
    eprintln!("crash test: {cycles} cycles, TENANTRY_CRASH_SEED={seed:#x}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let watchdog = Watchdog::start(CYCLE_LIMIT);
    let started = Instant::now();
    let mut checker = Checker::new();
    let (mut acked, mut durable, mut unacked_durable) = (0, 0, 0);
    let mut killed_before_ready = 0;
    for cycle in 0..cycles {
        let label = format!("TENANTRY_CRASH_SEED={seed:#x} cycle {cycle}");
        watchdog.step(&label);
        let path = dir
            .path()
            .join(format!("crash-{}.redb", cycle / CYCLES_PER_FILE));
        // Mostly kill while writing; one cycle in six kill while the child opens the file.
        let before_ready = cycle % CYCLES_PER_FILE > 0 && rng.random_ratio(1, 6);
        let delay = if before_ready {
            Duration::from_millis(rng.random_range(0..40))
        } else {
            Duration::from_millis(rng.random_range(5..400))
        };
        let report = run_child(&path, delay, before_ready, &label);
        killed_before_ready += u32::from(!report.ready);
        let engine = Engine::open(&path).unwrap_or_else(|e| {
            panic!(
                "{label}: reopening after SIGKILL failed: {}",
                support::chain(&e)
            )
        });
        checker.check(&engine, &report.created, &report.acks, &label);
        if (cycle + 1) % CYCLES_PER_FILE == 0 || cycle + 1 == cycles {
            acked += checker.acked_commits;
            durable += checker.durable_commits();
            unacked_durable += checker.unacked_durable;
            checker = Checker::new();
        }
    }
    eprintln!(
        "crash test: {cycles} kills ({killed_before_ready} before the child was ready), \
         {acked} acknowledged commits checked, {durable} durable in all, {unacked_durable} \
         durable without their acknowledgement, {:.1?}",
        started.elapsed()
    );
    assert!(
        durable > 0,
        "TENANTRY_CRASH_SEED={seed:#x}: no commit survived; the test proved nothing"
    );
}
