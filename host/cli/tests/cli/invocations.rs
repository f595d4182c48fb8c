//! Plugins and invocations: installs and refusals, the operator acting on a tenant's behalf,
//! failures and their codes, and tenant text reaching the terminal.

use std::process::Stdio;

use serde_json::Value;
use tenantry_tests::plugins;

use super::{Scratch, audit, path};

#[test]
fn plugins_are_installed_listed_and_removed_and_bad_modules_refused() {
    let s = Scratch::new();
    s.ok(&["tenant", "create", "acme", "globex"]);
    let wasm = s.file("projects.wasm", plugins::PROJECTS);
    let installed = s.ok(&["plugin", "install", "acme", "projects", path(&wasm)]);
    assert!(installed.contains("installed plugin projects for tenant acme (#1)"));
    let list = s.json(&["plugin", "list", "acme", "--json"]);
    assert_eq!(list[0]["name"], "projects");
    assert_eq!(list[0]["exports"][0], "batch_update");
    assert_eq!(list[0]["size"], plugins::PROJECTS.len());
    let table = s.ok(&["plugin", "list", "acme"]);
    assert!(table.contains("batch_update, create, get, list"), "{table}");
    assert!(s.ok(&["plugin", "list", "globex"]).contains("no plugins"));

    let garbage = s.file("garbage.wasm", b"\0asm\x01\0\0\0garbage");
    let err = s.fails(&["plugin", "install", "acme", "bad", path(&garbage)], 6);
    assert!(err.contains("invalid wasm"), "{err}");
    let text = s.file("not-wasm.wasm", b"hello");
    s.fails(&["plugin", "install", "acme", "bad", path(&text)], 6);
    let wasi = wat::parse_str(plugins::hostile_wat::WASI_IMPORT).unwrap();
    let wasi = s.file("wasi.wasm", &wasi);
    let err = s.fails(&["plugin", "install", "acme", "wasi", path(&wasi)], 6);
    assert!(err.contains("wasi_snapshot_preview1"), "{err}");
    let wat = s.file("wasi.wat", plugins::hostile_wat::WASI_IMPORT.as_bytes());
    s.fails(&["plugin", "install", "acme", "wasi", path(&wat)], 6);
    let broken = s.file("broken.wat", b"(module (func");
    let err = s.fails(&["plugin", "install", "acme", "w", path(&broken)], 6);
    assert!(err.contains("not a valid WAT module"), "{err}");
    let missing = s.dir.path().join("missing.wasm");
    s.fails(&["plugin", "install", "acme", "x", path(&missing)], 2);
    s.fails(&["plugin", "install", "nobody", "x", path(&wasm)], 5);
    s.fails(&["plugin", "install", "acme", "Bad Name", path(&wasm)], 2);
    let names = s.json(&["plugin", "list", "acme", "--json"]);
    assert_eq!(
        names.as_array().unwrap().len(),
        1,
        "a refused module was installed"
    );

    s.ok(&["plugin", "remove", "acme", "projects"]);
    s.fails(&["plugin", "remove", "acme", "projects"], 5);
    assert_eq!(
        s.json(&["plugin", "list", "acme", "--json"]),
        Value::Array(vec![])
    );
    let log = audit(&s, "acme");
    let installs: Vec<_> = log
        .iter()
        .filter(|e| e["action"] == "plugin.install")
        .collect();
    assert_eq!(installs.len(), 1);
    assert_eq!(installs[0]["by_operator"], true);
    assert_eq!(installs[0]["actor"], "ops:test");
}

#[test]
fn invocations_are_recorded_as_the_operators_never_as_the_tenant() {
    let s = Scratch::with_kit();
    assert_eq!(
        s.ok(&["invoke", "acme", "kit", "put", "--input", "k1"]),
        "k1\n"
    );
    let args = [
        "invoke",
        "acme",
        "kit",
        "put",
        "--input",
        "k2",
        "--actor",
        "user:42",
        "--ip",
        "203.0.113.9",
        "--request-id",
        "ticket-7",
    ];
    s.ok(&args);
    let log = audit(&s, "acme");
    let by = |actor: &str| log.iter().filter(|e| e["actor"] == actor).count();
    assert_eq!(
        by("user:42"),
        0,
        "an entry was attributed to the tenant's own actor"
    );
    assert_eq!(by("operator:ops:test"), 2, "{log:#?}"); // kv.put and plugin.invoke
    let via: Vec<&Value> = log
        .iter()
        .filter(|e| e["actor"] == "user:42 (via operator ops:test)")
        .collect();
    assert_eq!(via.len(), 2, "{log:#?}");
    assert!(via.iter().any(|e| e["action"] == "kv.put"));
    assert!(
        via.iter()
            .all(|e| e["request_id"] == "ticket-7" && e["ip"] == "203.0.113.9")
    );
    assert!(via.iter().all(|e| e["by_operator"] == false));
    let marks: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "operator.invoke")
        .collect();
    assert_eq!(marks.len(), 2);
    assert!(
        marks
            .iter()
            .all(|e| e["by_operator"] == true && e["actor"] == "ops:test")
    );
    assert_eq!(marks[1]["request_id"], "ticket-7");
    assert_eq!(marks[1]["target"], "kit/put");
    assert!(
        marks[1]["message"]
            .as_str()
            .unwrap()
            .contains("user:42 (via operator ops:test)")
    );
    // The invocation's entries follow its operator.invoke entry.
    let mark_seq = marks[1]["seq"].as_u64().unwrap();
    assert!(via.iter().all(|e| e["seq"].as_u64().unwrap() > mark_seq));
    // Without --request-id, one fresh id ties the mark to the invocation.
    let first = log
        .iter()
        .find(|e| e["actor"] == "operator:ops:test")
        .unwrap();
    assert_eq!(first["request_id"], marks[0]["request_id"]);
    assert!(first["request_id"].as_str().unwrap().starts_with("cli-"));

    let input = s.file("in.txt", b"line one\nline two\n");
    let out = s.ok(&[
        "invoke",
        "acme",
        "kit",
        "echo",
        "--input-file",
        path(&input),
    ]);
    assert_eq!(out, "line one\nline two\n");
    let out = s.run_in(
        &["invoke", "acme", "kit", "echo", "--input-file", "-"],
        Stdio::from(std::fs::File::open(&input).unwrap()),
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "line one\nline two\n"
    );
    let file = s.dir.path().join("out.bin");
    let raw = s.file("raw.bin", b"\xff\x1b[2J\0");
    let out = s.ok(&["invoke", "acme", "kit", "echo", "--input-file", path(&raw)]);
    assert_eq!(out, "ff1b5b324a00\n", "not UTF-8: shown as hex");
    let args = [
        "invoke",
        "acme",
        "kit",
        "echo",
        "--input-file",
        path(&raw),
        "--output-file",
    ];
    assert_eq!(s.ok(&[&args[..], &[path(&file)]].concat()), "");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"\xff\x1b[2J\0",
        "exact bytes in the file"
    );
}

#[test]
fn invocation_failures_have_their_codes() {
    let s = Scratch::with_kit();
    s.fails(&["invoke", "acme", "nope", "put"], 5);
    s.fails(&["invoke", "acme", "kit", "nope"], 5);
    s.fails(&["invoke", "nobody", "kit", "put"], 5);
    s.fails(&["invoke", "globex", "kit", "put"], 5);
    let err = s.fails(&["invoke", "acme", "kit", "fail"], 7);
    assert!(
        err.contains("plugin returned an error: failing on purpose"),
        "{err}"
    );
    let err = s.fails(&["invoke", "acme", "kit", "spin"], 7);
    assert!(err.contains("fuel") || err.contains("deadline"), "{err}");
    let keys = |s: &Scratch| s.json(&["tenant", "show", "acme", "--json"])["usage"]["keys"].clone();
    let before = keys(&s);
    let err = s.fails(
        &["invoke", "acme", "kit", "put_then_trap", "--input", "k"],
        7,
    );
    assert!(err.contains("trapped"), "{err}");
    assert_eq!(keys(&s), before, "a trapped invocation left its write");
    s.fails(
        &[
            "invoke",
            "acme",
            "kit",
            "put",
            "--input",
            "x",
            "--input-file",
            "y",
        ],
        2,
    );
    let missing = s.dir.path().join("missing.txt");
    s.fails(
        &[
            "invoke",
            "acme",
            "kit",
            "put",
            "--input-file",
            path(&missing),
        ],
        2,
    );
    s.fails(
        &["invoke", "acme", "kit", "put", "--actor", &"a".repeat(300)],
        2,
    );

    s.ok(&["tenant", "set-quota", "acme", "--max-keys", "0"]);
    let err = s.fails(&["invoke", "acme", "kit", "put", "--input", "q"], 7);
    assert!(err.contains("quota"), "{err}");
    s.ok(&["tenant", "set-quota", "acme", "--max-keys", "unlimited"]);
    // Read-only: the plugin runs, its write is refused, and the invocation fails because of the
    // tenant's state (exit 9, as documented), not as a plugin error (7).
    s.ok(&["tenant", "set-state", "acme", "read-only"]);
    let err = s.fails(&["invoke", "acme", "kit", "put", "--input", "r"], 9);
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(
        s.ok(&["invoke", "acme", "kit", "echo", "--input", "r"]),
        "r\n"
    );
    s.ok(&["tenant", "set-state", "acme", "suspended"]);
    let err = s.fails(&["invoke", "acme", "kit", "echo"], 9);
    assert!(err.contains("suspended"), "{err}");
    s.ok(&["tenant", "set-state", "acme", "active"]);
    s.ok(&["invoke", "acme", "kit", "put", "--input", "k"]);
    assert_ne!(keys(&s), before);
}

#[test]
fn tenant_text_cannot_drive_the_operators_terminal() {
    let s = Scratch::with_kit();
    let evil = "x\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\u{202e}gnp.exe\r";
    s.ok(&[
        "invoke", "acme", "kit", "put", "--input", evil, "--actor", evil,
    ]);
    let out = s.run(&[
        "invoke",
        "acme",
        "kit",
        "echo",
        "--input",
        evil,
        "--debug-log",
    ]);
    assert!(out.status.success());
    let shown = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        shown,
        "x\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{9b}31m\\u{202e}gnp.exe\\r\n"
    );
    let debug = String::from_utf8(out.stderr).unwrap();
    assert!(debug.starts_with("debug [kit] x"), "{debug}");
    let invisible = |text: &str| {
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c))
    };
    assert!(invisible(&debug), "{debug:?}");
    for args in [
        &["audit", "show", "acme"][..],
        &["audit", "show", "acme", "--wide"],
        &["audit", "show", "acme", "--json"],
        &["audit", "export", "acme"],
        &["tenant", "show", "acme"],
    ] {
        let text = s.ok(args);
        assert!(invisible(&text), "tenantry {args:?} printed {text:?}");
    }
    assert!(
        s.ok(&["audit", "show", "acme", "--wide"])
            .contains("x\\u{1b}[2J")
    );
    // The JSON escapes keep the exact value for scripts.
    let log = audit(&s, "acme");
    let actor = format!("{evil} (via operator ops:test)");
    assert!(
        log.iter()
            .any(|e| e["actor"].as_str() == Some(actor.as_str()))
    );
    // So do plugin errors that reach stderr.
    let err = s.fails(&["invoke", "acme", "kit", evil], 5);
    assert!(invisible(&err), "{err:?}");
}
