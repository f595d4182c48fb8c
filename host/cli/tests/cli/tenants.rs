//! Tenants, the database file, colour and usage errors.

use serde_json::Value;

use super::Scratch;

#[test]
fn read_commands_never_create_a_missing_database() {
    let s = Scratch::new();
    for args in [
        &["tenant", "list"][..],
        &["tenant", "show", "acme"],
        &["stats"],
        &["plugin", "list", "acme"],
        &["audit", "show", "--system"],
        &["audit", "verify", "--all"],
        &["invoke", "acme", "p", "f"],
    ] {
        let err = s.fails(args, 3);
        assert!(err.contains("does not exist"), "{err}");
    }
    assert!(!s.db.exists());
}

#[test]
fn a_failed_create_leaves_no_file_and_conflicts_are_refused() {
    let s = Scratch::new();
    let err = s.fails(&["tenant", "create", "ok", "Not-Valid"], 2);
    assert!(err.contains("invalid tenant name"), "{err}");
    assert!(!s.db.exists(), "a failed create left a database behind");
    let mut log = s.db.as_os_str().to_owned();
    log.push("-wal");
    let log = std::path::PathBuf::from(log);
    assert!(
        !log.exists(),
        "a failed create left a write-ahead log behind"
    );
    assert!(
        s.ok(&["tenant", "create", "acme"])
            .contains("created tenant acme (#1)")
    );
    assert!(log.exists());
    s.fails(&["tenant", "create", "acme"], 9);
    s.fails(&["tenant", "create", "beta", "acme"], 9);
    // A failure on an existing database removes neither of its files.
    assert!(s.db.exists() && log.exists());
    assert_eq!(
        s.json(&["tenant", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn tenants_are_listed_shown_limited_and_deleted() {
    let s = Scratch::new();
    s.ok(&["tenant", "create", "acme", "globex"]);
    let list = s.ok(&["tenant", "list"]);
    assert!(list.starts_with("ID  NAME"), "{list}");
    assert!(list.contains("globex  active"), "{list}");
    let json = s.json(&["tenant", "list", "--json"]);
    assert_eq!(json[1]["name"], "globex");
    assert_eq!(json[1]["state"], "active");

    s.ok(&["tenant", "set-state", "acme", "read-only"]);
    s.fails(&["tenant", "set-state", "acme", "frozen"], 2);
    s.fails(&["tenant", "set-state", "acme", "deleted"], 2);
    s.fails(&["tenant", "set-state", "nobody", "active"], 5);
    s.ok(&["tenant", "set-quota", "acme", "--max-bytes", "10MiB"]);
    s.ok(&["tenant", "set-quota", "acme", "--max-keys", "500"]);
    s.fails(&["tenant", "set-quota", "acme"], 2);
    s.fails(&["tenant", "set-quota", "acme", "--max-keys", "lots"], 2);
    let show = s.json(&["tenant", "show", "acme", "--json"]);
    assert_eq!(show["state"], "read-only");
    assert_eq!(show["quota"]["max_bytes"], 10 << 20);
    assert_eq!(show["quota"]["max_keys"], 500);
    assert_eq!(show["plugins"], Value::Array(vec![]));
    assert_eq!(show["limits"]["fuel"], 1_000_000_000u64);
    assert!(
        s.ok(&["tenant", "show", "acme"])
            .contains("max 10.00 MiB, max 500 keys")
    );

    let err = s.fails(&["tenant", "delete", "acme"], 2);
    assert!(err.contains("--yes"), "{err}");
    assert!(
        s.ok(&["tenant", "delete", "acme", "--yes"])
            .contains("deleted tenant acme (#1)")
    );
    assert_eq!(
        s.json(&["tenant", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let all = s.ok(&["tenant", "list", "--all"]);
    let acme = all.lines().find(|l| l.starts_with("#1 ")).unwrap();
    assert!(acme.contains("acme") && acme.contains("deleted"), "{all}");
    assert_eq!(
        s.json(&["tenant", "show", "#1", "--json"])["state"],
        "deleted"
    );
    s.fails(&["tenant", "delete", "acme", "--yes"], 9);
    s.fails(&["tenant", "show", "#99"], 5);
    s.fails(&["tenant", "show", "#x"], 2);
}

#[test]
fn a_database_open_in_another_process_is_reported_plainly() {
    let s = Scratch::new();
    s.ok(&["tenant", "create", "acme"]);
    let engine = tenantry_engine::Engine::open(&s.db).unwrap();
    for args in [
        &["tenant", "list"][..],
        &["tenant", "create", "b"],
        &["audit", "verify", "--all"],
    ] {
        let err = s.fails(args, 4);
        assert!(err.contains("in use by another process"), "{err}");
    }
    drop(engine);
    assert!(s.ok(&["tenant", "list"]).contains("acme"));
    assert!(!s.ok(&["tenant", "list"]).contains(" b "));
}

#[test]
fn colour_only_on_request_or_a_terminal() {
    let s = Scratch::new();
    s.ok(&["tenant", "create", "acme"]);
    assert!(!s.ok(&["tenant", "list"]).contains('\u{1b}'));
    let coloured = s.ok(&["--color", "always", "tenant", "list"]);
    assert!(coloured.contains("\u{1b}[1mID"), "{coloured:?}");
    assert!(coloured.contains("\u{1b}[32mactive"), "{coloured:?}");
}

#[test]
fn stats_show_usage_limits_and_plugin_counts() {
    let s = Scratch::with_kit();
    s.ok(&["invoke", "acme", "kit", "put", "--input", "k"]);
    s.ok(&["tenant", "set-state", "globex", "suspended"]);
    let stats = s.json(&["stats", "--json"]);
    let acme = &stats["tenants"][0];
    assert_eq!(acme["name"], "acme");
    assert_eq!(acme["plugins"], 1);
    // One key of its own, and the plugin's record and code in its reserved tables.
    assert_eq!(acme["usage"]["keys"], 3);
    assert_eq!(acme["limits"]["wall_time_ms"], 1000);
    assert_eq!(
        stats["tenants"][1]["plugins"],
        Value::Null,
        "suspended: unknown"
    );
    assert_eq!(stats["totals"]["keys"], 3);
    assert_eq!(stats["deleted_tenants"], 0);
    let table = s.ok(&["stats"]);
    assert!(
        table.contains("acme (#1)") && table.contains("2 live tenants"),
        "{table}"
    );
}

#[test]
fn help_lists_the_exit_codes_and_usage_errors_exit_2() {
    let s = Scratch::new();
    let help = s.ok(&["--help"]);
    assert!(
        help.contains("Exit codes:") && help.contains("8  an audit log failed"),
        "{help}"
    );
    s.fails(&[], 2);
    s.fails(&["frobnicate"], 2);
    s.fails(&["tenant", "create"], 2);
    s.fails(&["audit", "verify"], 2);
    assert!(!s.db.exists());
}
