//! Drives the real `tenantry` binary through every subcommand, bad input included, and checks
//! what an operator or a script would see: exit codes, one-line errors, tables, JSON, files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod audit;
mod invocations;
mod pg;
mod tenants;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A small plugin written against sdk/ABI.md, quick to compile in a debug build:
/// * `echo`: writes its input to the debug log and returns it unchanged;
/// * `put`: stores the input under table `notes` (key and value), returns it;
/// * `put_then_trap`: the same put, then traps;
/// * `fail`: returns the plugin error "failing on purpose";
/// * `spin`: loops forever.
const TESTKIT_WAT: &str = r#"(module
  (import "tenantry:v1" "kv_put" (func $kv_put (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "tenantry:v1" "debug_log" (func $debug_log (param i32 i32) (result i32)))
  (import "tenantry:v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "notes")
  (data (i32.const 32) "failing on purpose")
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 64512))
      (then (i32.const 1024)) (else (i32.const 0))))
  (func (export "echo") (param $p i32) (param $l i32) (result i32)
    (drop (call $debug_log (local.get $p) (local.get $l)))
    (drop (call $output (local.get $p) (local.get $l)))
    (i32.const 0))
  (func (export "put") (param $p i32) (param $l i32) (result i32)
    (if (i32.lt_s (call $kv_put (i32.const 16) (i32.const 5) (local.get $p) (local.get $l)
                                (local.get $p) (local.get $l)) (i32.const 0))
      (then (return (i32.const 1))))
    (drop (call $output (local.get $p) (local.get $l)))
    (i32.const 0))
  (func (export "put_then_trap") (param $p i32) (param $l i32) (result i32)
    (drop (call $kv_put (i32.const 16) (i32.const 5) (local.get $p) (local.get $l)
                        (local.get $p) (local.get $l)))
    (unreachable))
  (func (export "fail") (param i32 i32) (result i32)
    (drop (call $output (i32.const 32) (i32.const 18)))
    (i32.const 1))
  (func (export "spin") (param i32 i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))"#;

/// A scratch directory with a database path (not created) and the plugin files.
struct Scratch {
    dir: tempfile::TempDir,
    db: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.redb");
        Scratch { dir, db }
    }

    /// Writes `bytes` to a file of the scratch directory and returns its path.
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A database with tenants `acme` and `globex`, the test kit installed for acme as `kit`
    /// (from a `.wat` file).
    fn with_kit() -> Self {
        let s = Scratch::new();
        s.ok(&["tenant", "create", "acme", "globex"]);
        let wat = s.file("kit.wat", TESTKIT_WAT.as_bytes());
        s.ok(&["plugin", "install", "acme", "kit", path(&wat)]);
        s
    }

    fn run_in(&self, args: &[&str], stdin: Stdio) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tenantry"))
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .env_remove("TENANTRY_DB")
            .env("TENANTRY_OPERATOR", "ops:test")
            .env_remove("NO_COLOR")
            .stdin(stdin)
            .output()
            .unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_in(args, Stdio::null())
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tenantry {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command whose stdout is JSON.
    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Runs a command that must fail with `code` and one `error:` line; returns that line.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "tenantry {args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
        assert!(stderr.starts_with("error: "), "{stderr:?}");
        stderr
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The tenant's audit log as JSON, oldest first.
fn audit(s: &Scratch, tenant: &str) -> Vec<Value> {
    let log = s.json(&["audit", "show", tenant, "--reverse", "--json"]);
    log.as_array().unwrap().clone()
}
