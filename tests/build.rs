//! Builds the plugins workspace (`plugins/`) for `wasm32-unknown-unknown` and generates
//! `$OUT_DIR/plugins.rs`: one `&'static [u8]` per plugin crate (the release `.wasm`) and one
//! `&'static str` per WAT file, for `tenantry_tests::plugins`.
//!
//! The nested cargo gets a target directory of its own (`<target>/wasm-plugins`): sharing the
//! outer one would deadlock on its lock, and one directory per `OUT_DIR` would rebuild the
//! plugins from scratch for every profile and every `cargo check`/`clippy`/`test` flavour.
//! The environment cargo sets for build scripts describes the *host* build (rustflags, cfgs,
//! profile overrides, the clippy wrapper), so it is removed before the nested build.
//!
//! A toolchain that rustup manages may lack the `wasm32-unknown-unknown` standard library even
//! though `rust-toolchain.toml` lists it: rustup adds listed targets only when it installs the
//! toolchain, and not at all with `RUSTUP_AUTO_INSTALL=0`. So before building, this script
//! looks for the target in the sysroot of the rustc in use and, if it is missing and rustup is
//! there, runs `rustup target add wasm32-unknown-unknown` for the active toolchain (saying so on
//! stderr and as a cargo warning). Without rustup, offline (`CARGO_NET_OFFLINE`) or with
//! `TENANTRY_NO_RUSTUP` set, it fails with one line saying what to install.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Folders of `plugins/` whose `.wat` files are exposed as text, with the module they go in.
const WAT_DIRS: [(&str, &str); 2] = [
    ("hostile-wat", "hostile_wat"),
    ("example-wat", "example_wat"),
];

fn main() {
    if let Err(message) = run() {
        // Cargo shows a failed build script's stderr, including the nested cargo's diagnostics.
        eprintln!("\nerror: {message}\n");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(required_env("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .ok_or("tests/ has no parent directory")?
        .to_path_buf();
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(required_env("OUT_DIR")?);

    // Everything in plugins/ except a `target` directory left by a manual build, which would
    // otherwise make every build rerun this script.
    let plugin_entries =
        fs::read_dir(&plugins).map_err(|e| format!("cannot list {}: {e}", plugins.display()))?;
    for entry in plugin_entries.filter_map(Result::ok) {
        if entry.file_name() != "target" {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
    for path in [
        root.join("sdk/src"),
        root.join("sdk/Cargo.toml"),
        root.join("Cargo.toml"),
        root.join("rust-toolchain.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    println!("cargo:rerun-if-env-changed=RUSTUP_TOOLCHAIN");
    println!("cargo:rerun-if-env-changed=TENANTRY_NO_RUSTUP");

    ensure_wasm_target()?;
    let target_dir = wasm_target_dir(&out_dir);
    let mut wasm = build_plugins(&plugins, &target_dir)?;
    wasm.sort();

    let mut code = String::new();
    for (name, path) in &wasm {
        let _ = writeln!(
            code,
            "/// The `{name}` plugin (`plugins/`), built with `--release --target {WASM_TARGET}`.\n\
             pub const {}: &[u8] = include_bytes!({:?});",
            constant_name(name),
            path.display().to_string(),
        );
    }
    code.push_str("/// Every plugin above as `(crate name, wasm bytes)`, sorted by name.\n");
    code.push_str("pub const ALL: &[(&str, &[u8])] = &[\n");
    for (name, _) in &wasm {
        let _ = writeln!(code, "    ({name:?}, {}),", constant_name(name));
    }
    code.push_str("];\n");
    for (dir, module) in WAT_DIRS {
        code.push_str(&wat_module(&plugins.join(dir), dir, module)?);
    }

    let generated = out_dir.join("plugins.rs");
    fs::write(&generated, code).map_err(|e| format!("cannot write {}: {e}", generated.display()))
}

fn required_env(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name} for the build script"))
}

/// Makes sure the rustc in use has the wasm32 standard library, adding it with rustup if not.
fn ensure_wasm_target() -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", rustc.to_string_lossy()))?;
    if !sysroot.status.success() {
        return Err(format!(
            "`{} --print sysroot` failed ({}): {}",
            rustc.to_string_lossy(),
            sysroot.status,
            String::from_utf8_lossy(&sysroot.stderr).trim()
        ));
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let target_lib = sysroot.join("lib/rustlib").join(WASM_TARGET).join("lib");
    if has_std(&target_lib) {
        return Ok(());
    }
    // Offline builds, and builders who manage their toolchain themselves, get the one line.
    let offline = env::var("CARGO_NET_OFFLINE").is_ok_and(|v| v == "true" || v == "1");
    if offline || env::var_os("TENANTRY_NO_RUSTUP").is_some() {
        return Err(format!(
            "the plugins need the {WASM_TARGET} target, which {} lacks; this build may not \
             download it (CARGO_NET_OFFLINE or TENANTRY_NO_RUSTUP): run `rustup target add \
             {WASM_TARGET}` and retry",
            sysroot.display()
        ));
    }
    // The toolchain rustup resolved for this build (from rust-toolchain.toml), if any.
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", WASM_TARGET]);
    if let Some(toolchain) = &toolchain {
        rustup.args(["--toolchain", toolchain]);
    }
    let say = format!(
        "the {WASM_TARGET} target is missing from {}: running `rustup target add {WASM_TARGET}{}`",
        sysroot.display(),
        toolchain
            .as_deref()
            .map(|t| format!(" --toolchain {t}"))
            .unwrap_or_default(),
    );
    eprintln!("tenantry-tests: {say}");
    println!("cargo:warning={say}");
    let status = rustup
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status();
    match status {
        Ok(status) if status.success() && has_std(&target_lib) => Ok(()),
        Ok(status) if status.success() => Err(format!(
            "`rustup target add {WASM_TARGET}` succeeded, but {} still has no standard library \
             for it: is {} a rustup toolchain?",
            target_lib.display(),
            rustc.to_string_lossy()
        )),
        Ok(status) => Err(format!(
            "the plugins need the {WASM_TARGET} target and `rustup target add {WASM_TARGET}` \
             failed ({status}); install it for the toolchain of rust-toolchain.toml and retry"
        )),
        Err(_) => Err(format!(
            "the plugins need the {WASM_TARGET} standard library, which {} lacks, and rustup is \
             not installed to add it: install the target for this toolchain (or use rustup)",
            sysroot.display()
        )),
    }
}

/// Whether `dir` holds a standard library (`libstd-*.rlib`).
fn has_std(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".rlib")
        })
    })
}

/// `<target dir>/wasm-plugins`. The target directory is the nearest ancestor of `OUT_DIR`
/// holding cargo's `CACHEDIR.TAG` (this works with `--target`, custom profiles and
/// `build.build-dir`), else an absolute `CARGO_TARGET_DIR`, else `OUT_DIR` itself.
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    let tagged = out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file());
    let from_env = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute());
    tagged
        .map(Path::to_path_buf)
        .or(from_env)
        .unwrap_or_else(|| out_dir.to_path_buf())
        .join("wasm-plugins")
}

/// Runs the nested cargo and returns `(crate name, .wasm path)` for every cdylib it built.
fn build_plugins(plugins: &Path, target_dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let manifest = plugins.join("Cargo.toml");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(plugins)
        .args(["build", "--release", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    clear_host_build_env(&mut command);

    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo to build the plugins: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building the plugins failed ({}); the compiler output is above.\n\
             Reproduce with: cargo build --release --target {WASM_TARGET} --manifest-path {}\n\
             If the target is missing: rustup target add {WASM_TARGET}",
            output.status,
            manifest.display(),
        ));
    }

    let mut wasm = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        let name = message["target"]["name"].as_str();
        let file = message["filenames"].as_array().and_then(|files| {
            files
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
        });
        if let (true, Some(name), Some(file)) = (is_cdylib, name, file) {
            wasm.push((name.to_owned(), PathBuf::from(file)));
        }
    }
    if wasm.is_empty() {
        return Err(format!(
            "cargo built no .wasm file from {}; are the plugin crates cdylibs?",
            manifest.display()
        ));
    }
    Ok(wasm)
}

/// Removes what cargo (or cargo clippy / cargo fix) passes to build scripts about the *host*
/// build: flags and cfgs for another target, profile overrides that would change the plugins'
/// size, the clippy wrapper (which would also change fingerprints and force rebuilds), and
/// target-dir settings. Kept: CARGO_HOME, the jobserver (CARGO_MAKEFLAGS, so the nested build
/// shares the outer job slots), network, registry and terminal settings, RUSTC and RUSTC_WRAPPER.
fn clear_host_build_env(command: &mut Command) {
    const KEEP_PREFIXES: [&str; 9] = [
        "CARGO_HOME",
        "CARGO_MAKEFLAGS",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_SOURCE_",
        "CARGO_TERM_",
        "CARGO_BUILD_JOBS",
    ];
    const REMOVE: [&str; 13] = [
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "RUSTC_LINKER",
    ];
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let cargo_config =
            key.starts_with("CARGO_") && !KEEP_PREFIXES.iter().any(|keep| key.starts_with(keep));
        if cargo_config || key.starts_with("__CARGO") || REMOVE.contains(&key) {
            command.env_remove(key);
        }
    }
}

/// `counter` → `COUNTER`, `start-never-returns` → `START_NEVER_RETURNS`.
fn constant_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A `pub mod` with one `&str` constant per `.wat` file of `dir`, documented by the file's
/// first `;;` comment line, plus `ALL`.
fn wat_module(dir: &Path, dir_name: &str, module: &str) -> Result<String, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wat"))
        .collect();
    files.sort();

    let mut code =
        format!("/// The `.wat` modules of `plugins/{dir_name}/`, as text.\npub mod {module} {{\n");
    let mut names = Vec::new();
    for path in &files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| format!("{} has no UTF-8 file name", path.display()))?;
        let text =
            fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let doc = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix(";;"))
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .ok_or_else(|| format!("{} must start with a `;; description` line", path.display()))?;
        let name = constant_name(stem);
        let _ = writeln!(
            code,
            "    #[doc = {doc:?}]\n    pub const {name}: &str = include_str!({:?});",
            path.display().to_string()
        );
        names.push((stem.to_owned(), name));
    }
    code.push_str("    /// Every module above as `(file stem, WAT text)`, sorted by file name.\n");
    code.push_str("    pub const ALL: &[(&str, &str)] = &[\n");
    for (stem, name) in &names {
        let _ = writeln!(code, "        ({stem:?}, {name}),");
    }
    code.push_str("    ];\n}\n");
    Ok(code)
}
