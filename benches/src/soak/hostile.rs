//! The hostile part of the load: which hostile plugins a hostile tenant has, under which
//! limits, what each call must end with, and the modules the host must refuse to install.
//!
//! Outcomes follow the host's own tests (`host/tests/all/hostile.rs`, `lifecycle.rs`): most
//! calls must fail with the named [`tenantry_host::InvokeError`] variant; a few are contained
//! without an error by design (`grow_memory` gets fewer pages than the limit, `debug_flood`'s
//! log is truncated, `bad_table_names` gets a status for every name) and are checked for that.

use std::time::Duration;

use tenantry_host::Limits;
use tenantry_tests::plugins::{self, hostile_wat};

/// Limits of every hostile tenant: small, so that each hostile call costs a few milliseconds.
pub(crate) fn limits() -> Limits {
    Limits::default()
        .fuel(20_000_000)
        .wall_time(Duration::from_millis(100))
        .memory_bytes(MEMORY_LIMIT)
        .host_calls(500)
        .bytes_written(64 << 10)
}

/// [`limits`]'s linear memory limit.
const MEMORY_LIMIT: u64 = 8 << 20;

/// How a call that returned `Ok` is judged.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OnSuccess {
    /// Success is a containment failure.
    Never,
    /// `grow_memory`: a JSON page count below the memory limit's.
    FewerPages,
    /// `bad_table_names`: a JSON array with a status (not `null`) for every name.
    StatusForEach,
    /// The debug log is truncated, not an error.
    Contained,
}

/// One hostile call and what it must end with.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// The plugin's installed name.
    pub(crate) plugin: &'static str,
    /// The function called.
    pub(crate) function: String,
    /// Its input.
    pub(crate) input: Vec<u8>,
    /// The `InvokeError` variants it may fail with.
    pub(crate) expect: &'static [&'static str],
    /// How a success is judged.
    pub(crate) on_success: OnSuccess,
}

impl Case {
    fn new(
        plugin: &'static str,
        function: &str,
        input: &[u8],
        expect: &'static [&'static str],
    ) -> Self {
        Case {
            plugin,
            function: function.to_owned(),
            input: input.to_vec(),
            expect,
            on_success: OnSuccess::Never,
        }
    }

    fn or_ok(mut self, on_success: OnSuccess) -> Self {
        self.on_success = on_success;
        self
    }

    /// Whether `output`, returned by a successful call, shows the plugin contained.
    pub(crate) fn contained(&self, output: &[u8]) -> bool {
        let text = String::from_utf8_lossy(output);
        match self.on_success {
            OnSuccess::Never => false,
            OnSuccess::FewerPages => text
                .trim()
                .parse::<u64>()
                .is_ok_and(|pages| pages < MEMORY_LIMIT / 65_536),
            OnSuccess::StatusForEach => {
                text.starts_with('[') && text.ends_with(']') && !text.contains("null")
            }
            OnSuccess::Contained => true,
        }
    }
}

/// Limits that stop a runaway guest.
const RUNAWAY: &[&str] = &["OutOfFuel", "Timeout"];

/// The plugins installed for every hostile tenant: `(name, wasm)`. WAT modules are parsed here.
///
/// # Errors
/// If a WAT module does not parse.
pub(crate) fn modules() -> Result<Vec<(&'static str, Vec<u8>)>, String> {
    let wat = |text: &str| wat::parse_str(text).map_err(|e| format!("parse WAT: {e}"));
    Ok(vec![
        ("hostile", plugins::HOSTILE.to_vec()),
        ("oob", wat(hostile_wat::OOB_POINTERS)?),
        ("scan", wat(hostile_wat::BAD_SCAN_REQUESTS)?),
        ("badstatus", wat(hostile_wat::BAD_STATUS)?),
        ("twice", wat(hostile_wat::OUTPUT_TWICE)?),
        ("allocz", wat(hostile_wat::ALLOC_RETURNS_ZERO)?),
        ("allocoob", wat(hostile_wat::ALLOC_RETURNS_OOB)?),
        ("rec", wat(hostile_wat::DEEP_RECURSION)?),
        ("reserved", wat(hostile_wat::RESERVED_EXPORT)?),
    ])
}

/// Every hostile call, given the exports of the `oob` module (one out-of-bounds case each).
pub(crate) fn cases(oob_exports: &[String]) -> Vec<Case> {
    let big_input = vec![b' '; (1 << 20) + 1];
    let mut cases = vec![
        Case::new("hostile", "spin", b"", RUNAWAY),
        Case::new("hostile", "grow_memory", b"", RUNAWAY).or_ok(OnSuccess::FewerPages),
        Case::new(
            "hostile",
            "alloc_bomb",
            b"",
            &["MemoryLimit", "OutOfFuel", "Timeout"],
        ),
        Case::new("hostile", "recurse", b"null", &["Trap"]),
        Case::new(
            "hostile",
            "huge_output",
            b"2097152",
            &["OutputTooLarge", "MemoryLimit"],
        ),
        Case::new("hostile", "huge_output", &big_input, &["InputTooLarge"]),
        Case::new("hostile", "trap_after_writes", b"", &["Trap"]),
        Case::new("hostile", "error_after_writes", b"", &["Plugin"]),
        Case::new("hostile", "panic", b"", &["Trap"]),
        Case::new(
            "hostile",
            "write_until_refused",
            b"1000",
            &["WriteLimit", "HostCallLimit", "OutOfFuel", "Timeout"],
        ),
        Case::new(
            "hostile",
            "calls_until_refused",
            b"",
            &["HostCallLimit", "OutOfFuel", "Timeout"],
        ),
        Case::new(
            "hostile",
            "audit_until_refused",
            b"",
            &["HostCallLimit", "WriteLimit", "OutOfFuel", "Timeout"],
        ),
        // 1,024 debug calls: the host call limit (500 here) or the CPU budget ends it.
        Case::new(
            "hostile",
            "debug_flood",
            b"",
            &["HostCallLimit", "OutOfFuel", "Timeout"],
        )
        .or_ok(OnSuccess::Contained),
        Case::new("hostile", "bad_table_names", b"", &[]).or_ok(OnSuccess::StatusForEach),
        Case::new("badstatus", "seven", b"", &["Abi"]),
        Case::new("badstatus", "negative", b"", &["Abi"]),
        Case::new("twice", "run", b"", &["Abi"]),
        Case::new("allocz", "run", b"0123456789abcdef", &["Abi"]),
        Case::new("allocoob", "run", b"0123456789abcdef", &["Abi"]),
        Case::new("rec", "recurse", b"", &["Trap"]),
        Case::new("reserved", "tenantry_backdoor", b"", &["UnknownFunction"]),
    ];
    for function in [
        "truncated",
        "unknown_selector",
        "unknown_bound",
        "trailing_byte",
    ] {
        cases.push(Case::new("scan", function, b"", &["BadArguments"]));
    }
    for function in oob_exports {
        cases.push(Case::new("oob", function, b"", &["BadArguments"]));
    }
    cases
}

/// A module the host must refuse to install, and the `HostError` variants it may refuse with.
pub(crate) struct Refused {
    /// The module's file name.
    pub(crate) name: &'static str,
    /// Its wasm.
    pub(crate) wasm: Vec<u8>,
    /// The accepted refusals.
    pub(crate) expect: &'static [&'static str],
}

/// The modules the host must refuse at install.
///
/// # Errors
/// If a WAT module does not parse.
pub(crate) fn refused() -> Result<Vec<Refused>, String> {
    let import: &[&str] = &["RefusedImport"];
    let abi: &[&str] = &["Abi"];
    [
        ("wasi-import", hostile_wat::WASI_IMPORT, import),
        ("unknown-import", hostile_wat::UNKNOWN_IMPORT, import),
        ("env-import", hostile_wat::ENV_IMPORT, import),
        ("memory-import", hostile_wat::MEMORY_IMPORT, import),
        (
            "wrong-import-signature",
            hostile_wat::WRONG_IMPORT_SIGNATURE,
            abi,
        ),
        ("missing-alloc", hostile_wat::MISSING_ALLOC, abi),
        ("missing-abi-version", hostile_wat::MISSING_ABI_VERSION, abi),
        ("wrong-abi-version", hostile_wat::WRONG_ABI_VERSION, abi),
        (
            "wrong-function-signature",
            hostile_wat::WRONG_FUNCTION_SIGNATURE,
            abi,
        ),
        ("start-never-returns", hostile_wat::START_NEVER_RETURNS, abi),
        ("start-calls-host", hostile_wat::START_CALLS_HOST, abi),
        (
            "huge-initial-memory",
            hostile_wat::HUGE_INITIAL_MEMORY,
            &["InvalidModule"],
        ),
        (
            "huge-table",
            hostile_wat::HUGE_TABLE,
            &["Abi", "InvalidModule"],
        ),
    ]
    .into_iter()
    .map(|(name, text, expect)| {
        Ok(Refused {
            name,
            wasm: wat::parse_str(text).map_err(|e| format!("parse {name}.wat: {e}"))?,
            expect,
        })
    })
    .collect()
}
