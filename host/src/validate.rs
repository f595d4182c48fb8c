//! Install-time checks: size, imports, exports and compile time.

use std::sync::mpsc;
use std::time::Duration;

use tenantry_sdk::wire::{self, Signature};
use wasmtime::{Engine, ExternType, FuncType, Module, ValType};

use crate::error::HostError;

/// Compiles `bytes`, refusing modules that are too large or take too long.
pub(crate) fn compile(
    engine: &Engine,
    bytes: &[u8],
    max_bytes: usize,
    timeout: Duration,
) -> Result<Module, HostError> {
    if bytes.len() > max_bytes {
        return Err(HostError::ModuleTooLarge {
            len: bytes.len(),
            limit: max_bytes,
        });
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(HostError::InvalidModule(
            "not a WebAssembly binary (missing the \\0asm header)".into(),
        ));
    }
    let (tx, rx) = mpsc::channel();
    let (engine, bytes) = (engine.clone(), bytes.to_vec());
    // Compilation cannot be interrupted; past the timeout its result is dropped, and the module
    // size limit bounds how long that thread can run.
    std::thread::Builder::new()
        .name("tenantry-compile".into())
        .spawn(move || {
            let _ = tx.send(Module::new(&engine, &bytes));
        })
        .map_err(|e| HostError::Runtime(e.to_string()))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(module)) => Ok(module),
        Ok(Err(e)) => Err(HostError::InvalidModule(format!("{e:#}"))),
        Err(_) => Err(HostError::CompileTimeout(timeout)),
    }
}

fn matches(ty: &FuncType, params: &[wire::ValType], results: &[wire::ValType]) -> bool {
    let same = |a: ValType, b: &wire::ValType| match b {
        wire::ValType::I32 => matches!(a, ValType::I32),
        wire::ValType::I64 => matches!(a, ValType::I64),
    };
    ty.params().len() == params.len()
        && ty.results().len() == results.len()
        && ty.params().zip(params).all(|(a, b)| same(a, b))
        && ty.results().zip(results).all(|(a, b)| same(a, b))
}

fn show(sig: &Signature) -> String {
    format!("{:?} -> {:?}", sig.params, sig.results)
}

/// Longest name of a plugin function.
pub(crate) const MAX_FUNCTION_NAME_LEN: usize = 128;

/// Checks imports and exports against the ABI; returns the plugin functions, sorted.
pub(crate) fn check_abi(module: &Module) -> Result<Vec<String>, HostError> {
    for import in module.imports() {
        let refused = || HostError::RefusedImport {
            module: import.module().chars().take(100).collect(),
            name: import.name().chars().take(100).collect(),
        };
        if import.module() != wire::IMPORT_MODULE {
            return Err(refused());
        }
        let sig = wire::import_signature(import.name()).ok_or_else(refused)?;
        match import.ty() {
            ExternType::Func(ty) if matches(&ty, sig.params, sig.results) => {}
            _ => {
                return Err(HostError::Abi(format!(
                    "import `{}` must be a function {}",
                    sig.name,
                    show(sig)
                )));
            }
        }
    }
    let func = |name: &str| match module.get_export(name) {
        Some(ExternType::Func(ty)) => Some(ty),
        _ => None,
    };
    if !matches!(
        module.get_export(wire::export::MEMORY),
        Some(ExternType::Memory(_))
    ) {
        return Err(HostError::Abi(
            "the module must export its memory as `memory`".into(),
        ));
    }
    for sig in [&wire::ABI_VERSION_SIGNATURE, &wire::ALLOC_SIGNATURE] {
        match func(sig.name) {
            Some(ty) if matches(&ty, sig.params, sig.results) => {}
            _ => {
                return Err(HostError::Abi(format!(
                    "the module must export `{}` as a function {}",
                    sig.name,
                    show(sig)
                )));
            }
        }
    }
    let mut functions = Vec::new();
    for export in module.exports() {
        if wire::export::is_reserved(export.name()) {
            continue;
        }
        if let ExternType::Func(ty) = export.ty() {
            // Callers name it, and the audit log records `plugin/function` as a target.
            if export.name().len() > MAX_FUNCTION_NAME_LEN {
                return Err(HostError::Abi(format!(
                    "exported function `{}…` has a name longer than {MAX_FUNCTION_NAME_LEN} bytes",
                    export.name().chars().take(40).collect::<String>()
                )));
            }
            if !matches(&ty, wire::FUNCTION_PARAMS, wire::FUNCTION_RESULTS) {
                return Err(HostError::Abi(format!(
                    "exported function `{}` must have the signature (i32, i32) -> i32",
                    export.name().chars().take(100).collect::<String>()
                )));
            }
            functions.push(export.name().to_owned());
        }
    }
    functions.sort();
    Ok(functions)
}
