//! Audit logs: show, export, deleted tenants, tampering, kept heads; and the demo.

use std::process::Command;

use redb::ReadableTable;
use serde_json::Value;

use super::{Scratch, audit, path};

#[test]
fn audit_logs_are_shown_filtered_and_exported() {
    let s = Scratch::with_kit();
    s.ok(&["invoke", "acme", "kit", "put", "--input", "k"]);
    let table = s.ok(&["audit", "show", "acme"]);
    assert!(table.starts_with("SEQ  TIME"), "{table}");
    assert!(table.contains("operator.invoke"), "{table}");
    let all = audit(&s, "acme");
    assert_eq!(all[0]["action"], "tenant.create");
    assert_eq!(all[0]["seq"], 1);
    let newest = s.json(&["audit", "show", "acme", "--limit", "2", "--json"]);
    assert_eq!(newest.as_array().unwrap().len(), 2);
    assert_eq!(newest[0]["seq"], all.last().unwrap()["seq"]);
    let kv = s.json(&["audit", "show", "acme", "--action", "kv.", "--json"]);
    let kv = kv.as_array().unwrap();
    assert!(!kv.is_empty());
    assert!(
        kv.iter()
            .all(|e| e["action"].as_str().unwrap().starts_with("kv."))
    );
    let ops = s.json(&["audit", "show", "acme", "--actor", "ops:test", "--json"]);
    assert!(
        ops.as_array()
            .unwrap()
            .iter()
            .all(|e| e["by_operator"] == true)
    );
    let future = s.json(&["audit", "show", "acme", "--since", "2999-01-01", "--json"]);
    assert_eq!(future, Value::Array(vec![]));
    let past = s.json(&["audit", "show", "acme", "--until", "1h", "--json"]);
    assert_eq!(past, Value::Array(vec![]));
    let recent = s.json(&["audit", "show", "acme", "--since", "1h", "--json"]);
    assert_eq!(recent.as_array().unwrap().len(), all.len());
    assert!(
        s.ok(&["audit", "show", "acme", "--action", "nothing."])
            .contains("no entries")
    );
    s.fails(&["audit", "show", "acme", "--since", "last tuesday"], 2);
    s.fails(&["audit", "show"], 2);
    s.fails(&["audit", "show", "acme", "--system"], 2);
    s.fails(&["audit", "show", "nobody"], 5);
    let wide = s.ok(&["audit", "show", "acme", "--wide", "--limit", "1"]);
    assert!(wide.contains("HASH") && wide.contains(all.last().unwrap()["hash"].as_str().unwrap()));
    let system = s.json(&["audit", "show", "--system", "--json"]);
    assert!(
        system
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "tenant.create")
    );

    let jsonl = s.ok(&["audit", "export", "acme"]);
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, all, "export and show --json agree");
    let file = s.dir.path().join("system.jsonl");
    s.ok(&[
        "audit",
        "export",
        "--system",
        "--format",
        "jsonl",
        "--output",
        path(&file),
    ]);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("tenant.create")
    );
    s.fails(&["audit", "export", "acme", "--format", "csv"], 2);
    s.fails(&["audit", "export", "nobody"], 5);
    let nowhere = s.dir.path().join("no/such/dir/x.jsonl");
    s.fails(&["audit", "export", "acme", "--output", path(&nowhere)], 1);
}

#[test]
fn deleted_tenants_audit_logs_stay_readable() {
    let s = Scratch::with_kit();
    s.ok(&["invoke", "acme", "kit", "put", "--input", "k"]);
    assert!(
        s.ok(&["tenant", "delete", "acme", "-y"])
            .contains("purged 3 keys")
    );
    let by_name = audit(&s, "acme");
    assert_eq!(by_name.last().unwrap()["action"], "tenant.delete");
    assert_eq!(audit(&s, "#1"), by_name);
    assert_eq!(audit(&s, "id:1"), by_name);
    assert_eq!(
        s.ok(&["audit", "export", "#1"]).lines().count(),
        by_name.len()
    );
    assert!(s.ok(&["audit", "verify", "acme"]).contains("intact"));
    s.fails(&["invoke", "acme", "kit", "put"], 9);
    s.fails(&["plugin", "list", "acme"], 9);
    // A second deleted "acme" makes the name ambiguous; ids still work.
    s.ok(&["tenant", "create", "acme"]);
    s.ok(&["tenant", "delete", "acme", "--yes"]);
    let err = s.fails(&["audit", "show", "acme"], 2);
    assert!(err.contains("#1, #3"), "{err}");
    let second = audit(&s, "#3");
    assert_eq!(second[0]["action"], "tenant.create");
    assert_eq!(second.last().unwrap()["action"], "tenant.delete");
}

#[test]
fn a_tampered_audit_log_fails_verification_with_code_8() {
    let s = Scratch::with_kit();
    s.ok(&["invoke", "acme", "kit", "put", "--input", "k"]);
    let verified = s.json(&["audit", "verify", "--all", "--json"]);
    assert_eq!(verified.as_array().unwrap().len(), 3);
    assert!(verified.as_array().unwrap().iter().all(|v| v["ok"] == true));

    // Edit acme's first entry (stream 1, seq 1) in the shared audit log through redb's own
    // API, so redb's checksums stay valid. Each value starts `stream u64 BE ++ seq u64 BE`.
    let log: redb::TableDefinition<'_, u64, &[u8]> =
        redb::TableDefinition::new("tenantry.audit_log");
    let header = [1u64.to_be_bytes(), 1u64.to_be_bytes()].concat();
    {
        let db = redb::Database::open(&s.db).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(log).unwrap();
            let (pos, mut bytes) = table
                .iter()
                .unwrap()
                .map(|item| item.unwrap())
                .map(|(k, v)| (k.value(), v.value().to_vec()))
                .find(|(_, v)| v.starts_with(&header))
                .unwrap();
            let at = bytes.windows(8).position(|w| w == b"ops:test").unwrap();
            bytes[at] = b'O';
            table.insert(pos, &bytes[..]).unwrap();
        }
        txn.commit().unwrap();
    }

    let err = s.fails(&["audit", "verify", "acme"], 8);
    assert!(err.contains("tampered") && err.contains("seq 1"), "{err}");
    assert!(s.ok(&["audit", "verify", "globex"]).contains("intact"));
    let out = s.run(&["audit", "verify", "--all", "--json"]);
    assert_eq!(out.status.code(), Some(8));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = report.as_array().unwrap();
    let acme = report
        .iter()
        .find(|v| v["tenant"]["name"] == "acme")
        .unwrap();
    assert_eq!(
        (&acme["ok"], &acme["error"]["seq"]),
        (&Value::Bool(false), &Value::from(1))
    );
    assert_eq!(report.iter().filter(|v| v["ok"] == true).count(), 2);
    let out = s.run(&["audit", "verify", "--all"]);
    assert_eq!(out.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TAMPERED at seq 1"));
}

#[test]
fn a_kept_head_catches_a_rewritten_tail() {
    let s = Scratch::with_kit();
    let head = audit(&s, "acme").last().unwrap().clone();
    let anchor = format!("{}:{}", head["seq"], head["hash"].as_str().unwrap());
    assert!(
        s.ok(&["audit", "verify", "acme", "--head", &anchor])
            .contains("intact")
    );
    let wrong = format!("{}:{}", head["seq"], "00".repeat(32));
    s.fails(&["audit", "verify", "acme", "--head", &wrong], 8);
    let beyond = format!("999:{}", "00".repeat(32));
    s.fails(&["audit", "verify", "acme", "--head", &beyond], 8);
    s.fails(&["audit", "verify", "acme", "--head", "3:abc"], 2);
    s.fails(&["audit", "verify", "--all", "--head", &anchor], 2);
}

#[test]
fn the_demo_tells_the_whole_story_and_exits_0() {
    let s = Scratch::new();
    let out = Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .arg("demo")
        .env_remove("TENANTRY_DB")
        .output()
        .unwrap();
    let story = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{story}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "1. Two tenants",
        "\"updated\":[],\"not_found\":[2,3]",
        "operator.unscoped_access",
        "fuel exhausted",
        "wasi_snapshot_preview1",
        "\\u{1b}[2J",
        "intact",
    ] {
        assert!(
            story.contains(expected),
            "the demo did not show {expected:?}:\n{story}"
        );
    }
    assert!(!story.contains('\u{1b}'));
    assert!(!story.contains("TAMPERED"));
    assert_eq!(
        story.matches("  intact").count(),
        3,
        "system, acme and globex verified"
    );

    // With --db it keeps a database the other commands can explore; it never reuses one.
    let db = s.db.clone();
    let out = Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .args(["demo", "--db", path(&db)])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(s.ok(&["audit", "verify", "--all"]).contains("globex (#2)"));
    s.fails(&["demo"], 2);
}
