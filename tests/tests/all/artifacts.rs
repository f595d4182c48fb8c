//! The built plugins and WAT modules are valid wasm and keep to the ABI's imports and exports
//! (`tenantry_sdk::wire`), so a host can rely on them as test inputs.

use std::collections::BTreeSet;
use std::error::Error;

use tenantry_sdk::wire::{self, Signature};
use tenantry_tests::plugins;
use wasmparser::types::EntityType;
use wasmparser::{FuncType, ValType, Validator};

type TestResult = Result<(), Box<dyn Error>>;

/// What a module imports and exports, with function signatures resolved.
#[derive(Debug)]
struct Interface {
    imports: Vec<(String, String, Option<FuncType>)>,
    exports: Vec<(String, Export)>,
}

#[derive(Debug, PartialEq)]
enum Export {
    Func(FuncType),
    Memory,
    Other,
}

/// Validates `wasm` with wasmparser's default features and reads its interface.
fn interface(wasm: &[u8]) -> Result<Interface, Box<dyn Error>> {
    let types = Validator::new().validate_all(wasm)?;
    let types = types.as_ref();
    let func = |entity: EntityType| match entity {
        EntityType::Func(id) => Some(types[id].unwrap_func().clone()),
        _ => None,
    };
    let imports = types
        .core_imports()
        .ok_or("not a core module")?
        .map(|(module, name, entity)| (module.to_owned(), name.to_owned(), func(entity)))
        .collect();
    let exports = types
        .core_exports()
        .ok_or("not a core module")?
        .map(|(name, entity)| {
            let export = match entity {
                EntityType::Memory(_) => Export::Memory,
                EntityType::Func(_) => func(entity).map_or(Export::Other, Export::Func),
                _ => Export::Other,
            };
            (name.to_owned(), export)
        })
        .collect();
    Ok(Interface { imports, exports })
}

fn func_type(params: &[wire::ValType], results: &[wire::ValType]) -> FuncType {
    let convert = |t: &wire::ValType| match t {
        wire::ValType::I32 => ValType::I32,
        wire::ValType::I64 => ValType::I64,
    };
    FuncType::new(params.iter().map(convert), results.iter().map(convert))
}

fn signature_type(signature: &Signature) -> FuncType {
    func_type(signature.params, signature.results)
}

/// Checks a module against the ABI: imports only from `tenantry:v1` with the documented
/// signatures; exports `memory`, `tenantry_abi_version`, `tenantry_alloc` and exactly the
/// expected plugin functions with the plugin function signature.
fn check_abi(name: &str, wasm: &[u8], functions: &[&str]) -> TestResult {
    let interface = interface(wasm)?;
    for (module, import, ty) in &interface.imports {
        assert_eq!(
            module,
            wire::IMPORT_MODULE,
            "{name} imports {module}.{import}"
        );
        let signature = wire::import_signature(import)
            .ok_or_else(|| format!("{name} imports unknown function {import}"))?;
        assert_eq!(
            ty.as_ref(),
            Some(&signature_type(signature)),
            "{name}: {import}"
        );
    }

    let export = |wanted: &str| {
        interface
            .exports
            .iter()
            .find(|(n, _)| n == wanted)
            .map(|(_, e)| e)
    };
    assert_eq!(
        export(wire::export::MEMORY),
        Some(&Export::Memory),
        "{name}"
    );
    let version = Export::Func(signature_type(&wire::ABI_VERSION_SIGNATURE));
    assert_eq!(export(wire::export::ABI_VERSION), Some(&version), "{name}");
    let alloc = Export::Func(signature_type(&wire::ALLOC_SIGNATURE));
    assert_eq!(export(wire::export::ALLOC), Some(&alloc), "{name}");

    let plugin_function = Export::Func(func_type(wire::FUNCTION_PARAMS, wire::FUNCTION_RESULTS));
    let exported: BTreeSet<&str> = interface
        .exports
        .iter()
        .filter(|(n, e)| matches!(e, Export::Func(_)) && !wire::export::is_reserved(n))
        .map(|(n, _)| n.as_str())
        .collect();
    let expected: BTreeSet<&str> = functions.iter().copied().collect();
    assert_eq!(exported, expected, "{name}: plugin functions");
    for function in functions {
        assert_eq!(
            export(function),
            Some(&plugin_function),
            "{name}: {function}"
        );
    }
    let reserved: Vec<&str> = interface
        .exports
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with(wire::export::RESERVED_PREFIX))
        .filter(|n| *n != wire::export::ABI_VERSION && *n != wire::export::ALLOC)
        .collect();
    assert!(
        reserved.is_empty(),
        "{name} exports reserved names {reserved:?}"
    );
    Ok(())
}

#[test]
fn every_built_plugin_is_listed_and_is_wasm() {
    let names: Vec<&str> = plugins::ALL.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["bench", "counter", "hostile", "projects"]);
    for (name, wasm) in plugins::ALL {
        assert!(
            wasm.starts_with(b"\0asm\x01\0\0\0"),
            "{name} is not a wasm module"
        );
    }
}

#[test]
fn counter_keeps_to_the_abi() -> TestResult {
    check_abi("counter", plugins::COUNTER, &["increment", "get"])
}

#[test]
fn projects_keeps_to_the_abi() -> TestResult {
    check_abi(
        "projects",
        plugins::PROJECTS,
        &["create", "get", "list", "batch_update"],
    )
}

#[test]
fn hostile_keeps_to_the_abi() -> TestResult {
    let functions = [
        "spin",
        "grow_memory",
        "alloc_bomb",
        "recurse",
        "huge_output",
        "trap_after_writes",
        "error_after_writes",
        "panic",
        "write_until_refused",
        "calls_until_refused",
        "audit_until_refused",
        "audit_action",
        "trap_after_many_writes",
        "debug_flood",
        "bad_table_names",
    ];
    check_abi("hostile", plugins::HOSTILE, &functions)
}

#[test]
fn the_counter_plugin_stays_small() {
    // 26 KB when written (mostly dlmalloc and core::fmt). Hosts compile every plugin they load,
    // so a jump here (say, from bincode's Debug-based error messages) is worth noticing.
    let size = plugins::COUNTER.len();
    assert!(size < 40 * 1024, "counter.wasm is {size} bytes");
}

#[test]
fn the_example_wat_plugin_keeps_to_the_abi() -> TestResult {
    let wasm = wat::parse_str(plugins::example_wat::STORE)?;
    check_abi("example-wat/store", &wasm, &["store"])
}

#[test]
fn the_abi_document_shows_the_example_wat_plugin_verbatim() -> TestResult {
    let abi = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/ABI.md"))?;
    let block = abi
        .split("```wat\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or("sdk/ABI.md has no ```wat block")?;
    assert_eq!(block, plugins::example_wat::STORE);
    Ok(())
}

#[test]
fn every_hostile_wat_module_is_valid_wasm() -> TestResult {
    assert!(plugins::hostile_wat::ALL.len() >= 20);
    for (name, text) in plugins::hostile_wat::ALL {
        let wasm = wat::parse_str(text).map_err(|e| format!("{name}.wat: {e}"))?;
        interface(&wasm).map_err(|e| format!("{name}.wat does not validate: {e}"))?;
    }
    Ok(())
}

#[test]
fn hostile_wat_modules_break_the_rules_they_claim_to() -> TestResult {
    let parse =
        |text: &str| -> Result<Interface, Box<dyn Error>> { interface(&wat::parse_str(text)?) };
    let imports_from = |i: &Interface, module: &str| i.imports.iter().any(|(m, _, _)| m == module);

    let wasi = parse(plugins::hostile_wat::WASI_IMPORT)?;
    assert!(imports_from(&wasi, "wasi_snapshot_preview1"));
    let unknown = parse(plugins::hostile_wat::UNKNOWN_IMPORT)?;
    assert!(
        unknown
            .imports
            .iter()
            .all(|(m, n, _)| m == wire::IMPORT_MODULE && wire::import_signature(n).is_none())
    );
    let wrong = parse(plugins::hostile_wat::WRONG_IMPORT_SIGNATURE)?;
    let kv_get = wire::import_signature(wire::import::KV_GET).ok_or("kv_get")?;
    assert!(wrong.imports.iter().any(
        |(_, n, ty)| n == wire::import::KV_GET && ty.as_ref() != Some(&signature_type(kv_get))
    ));
    let oob = parse(plugins::hostile_wat::OOB_POINTERS)?;
    let called: BTreeSet<&str> = oob.imports.iter().map(|(_, n, _)| n.as_str()).collect();
    let all_with_pointers: BTreeSet<&str> = wire::IMPORTS
        .iter()
        .filter(|s| !s.params.is_empty())
        .map(|s| s.name)
        .collect();
    assert_eq!(
        called, all_with_pointers,
        "oob-pointers.wat must cover every pointer-taking import"
    );
    Ok(())
}
