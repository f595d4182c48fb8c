//! The hostile corpus: every plugin here is contained, named by the limit it hit, and rolled
//! back, and the host keeps serving everyone else.

use std::time::Duration;

use tenantry_host::{HostConfig, HostError, InvokeError, Limits, PluginHost};

use super::{ctx, engine, host, op, plugins, setup, wat};

fn hostile() -> (
    tenantry_engine::Engine,
    PluginHost,
    tenantry_engine::TenantId,
) {
    setup("hostile", plugins::HOSTILE)
}

#[test]
fn infinite_loop_runs_out_of_fuel_or_time() {
    let (engine, host, t) = hostile();
    match host.invoke(&ctx(t), "hostile", "spin", b"") {
        Err(InvokeError::OutOfFuel { limit }) => assert_eq!(limit, Limits::default().fuel),
        Err(InvokeError::Timeout { limit }) => assert_eq!(limit, Limits::default().wall_time),
        other => panic!("{other:?}"),
    }
    // A lower override applies, and names its value.
    host.set_limits(&op(), t, Limits::default().fuel(1_000_000))
        .unwrap();
    assert!(matches!(
        host.invoke(&ctx(t), "hostile", "spin", b""),
        Err(InvokeError::OutOfFuel { limit: 1_000_000 })
    ));
    host.set_limits(
        &op(),
        t,
        Limits::default()
            .wall_time(Duration::from_millis(30))
            .fuel(u64::MAX / 2),
    )
    .unwrap();
    assert!(matches!(
        host.invoke(&ctx(t), "hostile", "spin", b""),
        Err(InvokeError::Timeout { .. })
    ));
    engine.verify_audit(t).unwrap();
}

#[test]
fn memory_bombs_hit_the_memory_limit() {
    let (_engine, host, t) = hostile();
    host.set_limits(&op(), t, Limits::default().memory_bytes(4 << 20))
        .unwrap();
    // memory.grow past the limit returns -1 and the plugin goes on: it reports the pages it
    // got, fewer than the limit's 64 (its initial memory counts), and can still answer because
    // the SDK's allocator starts in the initial memory.
    let pages = host.invoke(&ctx(t), "hostile", "grow_memory", b"").unwrap();
    let pages: u64 = serde_json::from_slice(&pages).unwrap();
    assert!((1..64).contains(&pages), "{pages} pages");
    // An allocator that aborts when memory cannot grow is reported as the memory limit.
    assert!(matches!(
        host.invoke(&ctx(t), "hostile", "alloc_bomb", b""),
        Err(InvokeError::MemoryLimit { limit_bytes }) if limit_bytes == 4 << 20
    ));
}

#[test]
fn deep_recursion_traps() {
    let (_engine, host, t) = hostile();
    assert!(matches!(
        host.invoke(&ctx(t), "hostile", "recurse", b"null"),
        Err(InvokeError::Trap(_))
    ));
    assert_eq!(
        host.invoke(&ctx(t), "hostile", "recurse", b"10").unwrap(),
        b"10"
    );
    let (_e, host, t) = setup("rec", &wat(plugins::hostile_wat::DEEP_RECURSION));
    let err = host.invoke(&ctx(t), "rec", "recurse", b"").unwrap_err();
    assert!(
        matches!(&err, InvokeError::Trap(m) if m.contains("stack")),
        "{err:?}"
    );
}

#[test]
fn huge_output_and_input_are_refused() {
    let (_engine, host, t) = hostile();
    assert!(matches!(
        host.invoke(&ctx(t), "hostile", "huge_output", b"2097152"),
        Err(InvokeError::OutputTooLarge { limit }) if limit == 1 << 20
    ));
    assert_eq!(
        host.invoke(&ctx(t), "hostile", "huge_output", b"5")
            .unwrap()
            .len(),
        5
    );
    let big = vec![b' '; (1 << 20) + 1];
    assert!(matches!(
        host.invoke(&ctx(t), "hostile", "huge_output", &big),
        Err(InvokeError::InputTooLarge { .. })
    ));
}

#[test]
fn host_call_and_write_limits_end_the_invocation() {
    let (engine, host, t) = hostile();
    host.set_limits(&op(), t, Limits::default().host_calls(50))
        .unwrap();
    assert!(matches!(
        host.invoke(&ctx(t), "hostile", "calls_until_refused", b""),
        Err(InvokeError::HostCallLimit { limit: 50 })
    ));
    host.set_limits(&op(), t, Limits::default().bytes_written(10_000))
        .unwrap();
    assert!(matches!(
        host.invoke(&ctx(t), "hostile", "write_until_refused", b"1000"),
        Err(InvokeError::WriteLimit { limit: 10_000 })
    ));
    assert_eq!(
        engine.tenant_info(t).unwrap().usage.keys,
        3,
        "plugin records and limits only"
    );
    // The debug log is capped, not an error.
    host.set_limits(&op(), t, Limits::default()).unwrap();
    host.invoke(&ctx(t), "hostile", "debug_flood", b"")
        .unwrap_or_else(|e| match e {
            InvokeError::OutOfFuel { .. } | InvokeError::Timeout { .. } => Vec::new(),
            other => panic!("{other:?}"),
        });
}

#[test]
fn out_of_bounds_pointers_into_every_host_function_trap_cleanly() {
    let (engine, host, t) = setup("oob", &wat(plugins::hostile_wat::OOB_POINTERS));
    let info = host.list_plugins(&ctx(t)).unwrap().remove(0);
    assert!(info.exports.len() >= 10);
    for function in &info.exports {
        let err = host.invoke(&ctx(t), "oob", function, b"").unwrap_err();
        assert!(
            matches!(err, InvokeError::BadArguments { .. }),
            "{function}: {err:?}"
        );
    }
    assert_eq!(engine.tenant_info(t).unwrap().usage.keys, 2);
    engine.verify_audit(t).unwrap();
}

#[test]
fn malformed_scan_requests_trap_and_invalid_ones_return_statuses() {
    let (_engine, host, t) = setup("scan", &wat(plugins::hostile_wat::BAD_SCAN_REQUESTS));
    for function in [
        "truncated",
        "unknown_selector",
        "unknown_bound",
        "trailing_byte",
    ] {
        let err = host.invoke(&ctx(t), "scan", function, b"").unwrap_err();
        assert!(
            matches!(
                err,
                InvokeError::BadArguments {
                    function: "kv_scan",
                    ..
                }
            ),
            "{function}: {err:?}"
        );
    }
    let status = |f| {
        i64::from_le_bytes(
            host.invoke(&ctx(t), "scan", f, b"")
                .unwrap()
                .try_into()
                .unwrap(),
        )
    };
    assert_eq!(status("bad_cursor"), -9);
    assert_eq!(status("empty_table"), -2);
}

#[test]
fn abi_violations_fail_the_invocation() {
    for (module, function) in [
        (plugins::hostile_wat::BAD_STATUS, "seven"),
        (plugins::hostile_wat::BAD_STATUS, "negative"),
        (plugins::hostile_wat::OUTPUT_TWICE, "run"),
    ] {
        let (_engine, host, t) = setup("bad", &wat(module));
        assert!(
            matches!(
                host.invoke(&ctx(t), "bad", function, b""),
                Err(InvokeError::Abi(_))
            ),
            "{function}"
        );
    }
    for module in [
        plugins::hostile_wat::ALLOC_RETURNS_ZERO,
        plugins::hostile_wat::ALLOC_RETURNS_OOB,
    ] {
        let (_engine, host, t) = setup("alloc", &wat(module));
        assert!(matches!(
            host.invoke(&ctx(t), "alloc", "run", b"0123456789abcdef"),
            Err(InvokeError::Abi(_))
        ));
        // With no input the allocator is not called at all.
        host.invoke(&ctx(t), "alloc", "run", b"").unwrap();
    }
    let (_engine, host, t) = setup("reserved", &wat(plugins::hostile_wat::RESERVED_EXPORT));
    assert!(matches!(
        host.invoke(&ctx(t), "reserved", "tenantry_backdoor", b""),
        Err(InvokeError::UnknownFunction { .. })
    ));
    host.invoke(&ctx(t), "reserved", "run", b"").unwrap();
}

#[test]
fn huge_tables_are_refused() {
    let engine = engine();
    let host = host(&engine);
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let err = host
        .install(&ctx(t), "table", &wat(plugins::hostile_wat::HUGE_TABLE))
        .unwrap_err();
    assert!(
        matches!(err, HostError::Abi(_) | HostError::InvalidModule(_)),
        "{err:?}"
    );
}

#[test]
fn a_tenant_at_its_concurrency_cap_gets_busy_and_others_are_served() {
    let engine = engine();
    let mut config = HostConfig::default();
    config.limits = Limits::default().concurrency(1);
    let host = PluginHost::new(engine.clone(), config).unwrap();
    let a = engine.create_tenant(&op(), "a").unwrap();
    let b = engine.create_tenant(&op(), "b").unwrap();
    for t in [a, b] {
        host.install(&ctx(t), "hostile", plugins::HOSTILE).unwrap();
    }
    let spinner = {
        let host = host.clone();
        std::thread::spawn(move || host.invoke(&ctx(a), "hostile", "spin", b""))
    };
    std::thread::sleep(Duration::from_millis(30));
    let err = host
        .invoke(&ctx(a), "hostile", "recurse", b"1")
        .unwrap_err();
    assert!(
        matches!(
            err,
            InvokeError::Busy {
                limit: "tenant concurrency",
                value: 1
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        host.invoke(&ctx(b), "hostile", "recurse", b"1").unwrap(),
        b"1"
    );
    spinner.join().unwrap().unwrap_err();
}
