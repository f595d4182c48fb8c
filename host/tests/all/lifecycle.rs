//! Installing, listing, replacing and removing plugins; restarts; refused modules.

use tenantry_engine::Engine;
use tenantry_host::{HostConfig, HostError, InvokeError, PluginHost};

use super::{ctx, engine, host, op, plugins, setup, wat};

#[test]
fn install_list_invoke_remove() {
    let (engine, host, t) = setup("counter", plugins::COUNTER);
    let list = host.list_plugins(&ctx(t)).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "counter");
    assert_eq!(list[0].exports, ["get", "increment"]);
    assert_eq!(
        list[0].version,
        blake3::hash(plugins::COUNTER).to_hex().to_string()
    );
    assert_eq!(
        host.invoke(&ctx(t), "counter", "increment", b"").unwrap(),
        b"1"
    );
    assert_eq!(
        host.invoke(&ctx(t), "counter", "increment", b"").unwrap(),
        b"2"
    );
    assert_eq!(host.invoke(&ctx(t), "counter", "get", b"").unwrap(), b"2");
    assert!(matches!(
        host.invoke(&ctx(t), "counter", "nope", b""),
        Err(InvokeError::UnknownFunction { .. })
    ));
    assert!(matches!(
        host.invoke(&ctx(t), "counter", "tenantry_alloc", b""),
        Err(InvokeError::UnknownFunction { .. })
    ));
    host.remove(&ctx(t), "counter").unwrap();
    assert!(matches!(
        host.remove(&ctx(t), "counter"),
        Err(HostError::UnknownPlugin(_))
    ));
    assert!(matches!(
        host.invoke(&ctx(t), "counter", "get", b""),
        Err(InvokeError::UnknownPlugin(_))
    ));
    assert!(host.list_plugins(&ctx(t)).unwrap().is_empty());
    engine.verify_audit(t).unwrap();
}

#[test]
fn plugins_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let t = {
        let engine = Engine::open(&path).unwrap();
        let t = engine.create_tenant(&op(), "acme").unwrap();
        let host = host(&engine);
        host.install(&ctx(t), "counter", plugins::COUNTER).unwrap();
        host.invoke(&ctx(t), "counter", "increment", b"").unwrap();
        t
    };
    let engine = Engine::open(&path).unwrap();
    let host = PluginHost::new(engine.clone(), HostConfig::default()).unwrap();
    assert_eq!(
        host.invoke(&ctx(t), "counter", "increment", b"").unwrap(),
        b"2"
    );
    engine.verify_audit(t).unwrap();
}

#[test]
fn reinstall_swaps_the_version_and_operators_install_as_themselves() {
    let (engine, host, t) = setup("p", plugins::COUNTER);
    let v1 = host.list_plugins(&ctx(t)).unwrap()[0].version.clone();
    let info = host.install_for(&op(), t, "p", plugins::PROJECTS).unwrap();
    assert_ne!(info.version, v1);
    assert!(info.exports.contains(&"batch_update".to_string()));
    assert!(matches!(
        host.invoke(&ctx(t), "p", "increment", b""),
        Err(InvokeError::UnknownFunction { .. })
    ));
    let log = engine
        .tenant_audit_log(
            &op(),
            t,
            &tenantry_engine::AuditQuery::default().action_prefix("plugin.install"),
        )
        .unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].actor.as_deref(), Some("ops:test"));
    assert!(log[0].by_operator);
    assert_eq!(log[1].actor.as_deref(), Some("user:7"));
    assert!(!log[1].by_operator);
}

#[test]
fn refused_modules_name_the_reason() {
    let engine = engine();
    let host = host(&engine);
    let t = engine.create_tenant(&op(), "acme").unwrap();
    let install = |wasm: &[u8]| host.install(&ctx(t), "bad", wasm);
    match install(&wat(plugins::hostile_wat::WASI_IMPORT)) {
        Err(HostError::RefusedImport { module, name }) => {
            assert_eq!(
                (module.as_str(), name.as_str()),
                ("wasi_snapshot_preview1", "fd_write")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        install(&wat(plugins::hostile_wat::UNKNOWN_IMPORT)),
        Err(HostError::RefusedImport { .. })
    ));
    assert!(matches!(
        install(&wat(plugins::hostile_wat::ENV_IMPORT)),
        Err(HostError::RefusedImport { .. })
    ));
    assert!(matches!(
        install(&wat(plugins::hostile_wat::MEMORY_IMPORT)),
        Err(HostError::RefusedImport { .. })
    ));
    for abi in [
        plugins::hostile_wat::WRONG_IMPORT_SIGNATURE,
        plugins::hostile_wat::MISSING_ALLOC,
        plugins::hostile_wat::MISSING_ABI_VERSION,
        plugins::hostile_wat::WRONG_ABI_VERSION,
        plugins::hostile_wat::WRONG_FUNCTION_SIGNATURE,
        plugins::hostile_wat::START_NEVER_RETURNS,
        plugins::hostile_wat::START_CALLS_HOST,
    ] {
        let err = install(&wat(abi)).unwrap_err();
        assert!(matches!(err, HostError::Abi(_)), "{abi}: {err:?}");
    }
    // The pool's memory limit refuses it at compile time already.
    let err = install(&wat(plugins::hostile_wat::HUGE_INITIAL_MEMORY)).unwrap_err();
    assert!(
        matches!(&err, HostError::InvalidModule(m) if m.contains("exceeds the limit")),
        "{err:?}"
    );
    assert!(matches!(
        install(b"not wasm"),
        Err(HostError::InvalidModule(_))
    ));
    assert!(matches!(
        install(b"\0asm\x01\0\0\0\xff"),
        Err(HostError::InvalidModule(_))
    ));
    assert!(matches!(
        host.install(&ctx(t), "Bad Name", plugins::COUNTER),
        Err(HostError::InvalidName { .. })
    ));
    let mut config = HostConfig::default();
    config.max_module_bytes = 100;
    let small = PluginHost::new(engine.clone(), config).unwrap();
    assert!(matches!(
        small.install(&ctx(t), "counter", plugins::COUNTER),
        Err(HostError::ModuleTooLarge { limit: 100, .. })
    ));
    // Nothing was installed, and nothing half-written.
    assert!(host.list_plugins(&ctx(t)).unwrap().is_empty());
    engine.verify_audit(t).unwrap();
}

#[test]
fn a_hand_written_wat_plugin_follows_the_abi() {
    let (_engine, host, t) = setup(
        "store",
        &wat(include_str!("../../../plugins/example-wat/store.wat")),
    );
    assert_eq!(
        host.invoke(&ctx(t), "store", "store", b"hello").unwrap(),
        b"hello"
    );
}

/// Found by the soak test: the host kept every deleted tenant's compiled plugins (a memory image
/// and a file descriptor each) forever, so a service that deletes tenants grew without bound.
#[test]
fn a_deleted_tenants_compiled_plugins_are_dropped() {
    let engine = engine();
    let host = host(&engine);
    let keep = engine.create_tenant(&op(), "keep").unwrap();
    host.install(&ctx(keep), "counter", plugins::COUNTER)
        .unwrap();
    for round in 0..5 {
        let t = engine
            .create_tenant(&op(), &format!("gone{round}"))
            .unwrap();
        host.install(&ctx(t), "counter", plugins::COUNTER).unwrap();
        host.invoke(&ctx(t), "counter", "increment", b"").unwrap();
        assert_eq!(host.compiled_plugins(), 2);
        engine.delete_tenant(&op(), t).unwrap();
        assert_eq!(host.compiled_plugins(), 1, "round {round}");
    }
    // A suspension moves the same counter and drops nothing.
    engine
        .set_tenant_state(&op(), keep, tenantry_engine::TenantState::Suspended)
        .unwrap();
    assert_eq!(host.compiled_plugins(), 1);
    engine
        .set_tenant_state(&op(), keep, tenantry_engine::TenantState::Active)
        .unwrap();
    host.invoke(&ctx(keep), "counter", "increment", b"")
        .unwrap();
}
