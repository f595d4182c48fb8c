//! A plugin that misbehaves on purpose, one way per function, for the host's tests. Every
//! function is valid against the ABI; what each does is what a host must survive. The
//! `*_until_refused` functions output how they were refused when the host answers with a
//! status; a host that enforces the budget by ending the invocation never lets them output.
//!
//! | function              | input (JSON)       | what it does                                          |
//! |-----------------------|--------------------|-------------------------------------------------------|
//! | `spin`                | -                  | loops forever (fuel or epoch deadline must stop it)   |
//! | `grow_memory`         | -                  | `memory.grow` by one page until refused; outputs the  |
//! |                       |                    | number of pages it got                                |
//! | `alloc_bomb`          | -                  | allocates 1 MiB blocks until the allocator fails,     |
//! |                       |                    | which aborts (traps)                                  |
//! | `recurse`             | depth, default max | non-tail recursion until the stack overflows (trap)   |
//! | `huge_output`         | bytes, default 64M | returns that many bytes as output                     |
//! | `trap_after_writes`   | -                  | writes 3 keys to table `hostile`, then traps          |
//! | `error_after_writes`  | -                  | writes 3 keys to table `hostile`, then returns Err    |
//! | `panic`               | -                  | panics (aborts, which traps)                          |
//! | `write_until_refused` | value size, def 1K | puts values until the host refuses; outputs           |
//! |                       |                    | `{"writes": n, "error": "...", "status": "..."}`     |
//! | `calls_until_refused` | -                  | calls `kv_get` until the host refuses; outputs the    |
//! |                       |                    | same shape (no limit: runs until fuel runs out)       |
//! | `audit_until_refused` | -                  | appends audit entries until refused; same shape       |
//! | `debug_flood`         | -                  | writes 1 MiB debug messages 1024 times, returns 0     |
//! | `bad_table_names`     | -                  | tries invalid table names; outputs the statuses       |

use core::hint::black_box;

use serde::Serialize;
use tenantry_sdk::{Error, Json, audit, export, kv, log};

const TABLE: &str = "hostile";

/// How a flood of host calls ended.
#[derive(Debug, Serialize)]
struct Refusal {
    /// Calls that succeeded before the first failure.
    writes: u64,
    /// The failure, as text.
    error: String,
    /// The failure's status name (`Status::name`), if the host reported one.
    status: Option<&'static str>,
}

impl Refusal {
    fn new(writes: u64, error: Error) -> Self {
        let status = error.status().map(|s| s.name());
        Refusal {
            writes,
            error: error.to_string(),
            status,
        }
    }
}

/// Loops forever without calling the host.
fn spin() -> Result<(), Error> {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Grows memory one page at a time until `memory.grow` fails, then reports the pages gained.
fn grow_memory() -> Result<Json<usize>, Error> {
    let mut pages = 0usize;
    while core::arch::wasm32::memory_grow(0, 1) != usize::MAX {
        pages += 1;
    }
    Ok(Json(pages))
}

/// Allocates and touches 1 MiB blocks until the allocator fails, which aborts the guest.
fn alloc_bomb() -> Result<(), Error> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(vec![1u8; 1 << 20]);
        black_box(&blocks);
    }
}

fn depth(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        black_box(depth(black_box(n - 1))).wrapping_add(1)
    }
}

/// Recurses `depth` levels (default: until the stack overflows).
fn recurse(Json(levels): Json<Option<u64>>) -> Result<Json<u64>, Error> {
    Ok(Json(depth(levels.unwrap_or(u64::MAX))))
}

/// Returns an output of the requested size (default 64 MiB).
fn huge_output(Json(bytes): Json<Option<usize>>) -> Result<Vec<u8>, Error> {
    Ok(vec![b'x'; bytes.unwrap_or(64 << 20)])
}

fn write_three() -> Result<(), Error> {
    for i in 0u8..3 {
        kv::put(TABLE, &[b'k', i], b"must be rolled back")?;
    }
    audit::log("hostile.write", Some("must be rolled back"))
}

/// Writes, then traps: none of the writes may survive.
fn trap_after_writes() -> Result<(), Error> {
    write_three()?;
    core::arch::wasm32::unreachable()
}

/// Writes, then fails: none of the writes may survive.
fn error_after_writes() -> Result<(), Error> {
    write_three()?;
    Err(Error::msg("failing on purpose after three writes"))
}

/// Panics; with `panic = "abort"` this traps.
fn panic() -> Result<(), Error> {
    #[allow(clippy::panic)]
    {
        panic!("hostile plugin panicking on purpose")
    }
}

/// Puts values of the given size (default 1 KiB) under new keys until the host refuses one.
fn write_until_refused(Json(size): Json<Option<usize>>) -> Result<Json<Refusal>, Error> {
    let value = vec![0xAB; size.unwrap_or(1024)];
    let mut writes = 0u64;
    loop {
        if let Err(error) = kv::put(TABLE, &writes.to_be_bytes(), &value) {
            return Ok(Json(Refusal::new(writes, error)));
        }
        writes += 1;
    }
}

/// Calls `kv_get` until the host refuses a call.
fn calls_until_refused() -> Result<Json<Refusal>, Error> {
    let mut calls = 0u64;
    loop {
        if let Err(error) = kv::get(TABLE, b"absent") {
            return Ok(Json(Refusal::new(calls, error)));
        }
        calls += 1;
    }
}

/// Appends audit entries until the host refuses one.
fn audit_until_refused() -> Result<Json<Refusal>, Error> {
    let mut entries = 0u64;
    loop {
        if let Err(error) = audit::log("hostile.flood", Some("entry")) {
            return Ok(Json(Refusal::new(entries, error)));
        }
        entries += 1;
    }
}

/// Appends one audit entry named `action` (such as a forged `kv.put`); outputs the refusal,
/// or `null` if the host took it.
fn audit_action(Json(action): Json<String>) -> Result<Json<Option<Refusal>>, Error> {
    Ok(Json(
        audit::log(&action, None).err().map(|e| Refusal::new(0, e)),
    ))
}

/// Puts `n` small values under new keys, then traps: a failure after a lot of work.
fn trap_after_many_writes(Json(n): Json<u64>) -> Result<(), Error> {
    for i in 0..n {
        kv::put(TABLE, &i.to_be_bytes(), b"v")?;
    }
    #[allow(clippy::panic)]
    {
        panic!("hostile plugin trapping after {n} writes")
    }
}

/// Writes 1 GiB of debug log in 1 MiB messages.
fn debug_flood() -> Result<(), Error> {
    let message = "d".repeat(1 << 20);
    for _ in 0..1024 {
        log::debug(&message);
    }
    Ok(())
}

/// Tries table names the ABI forbids; outputs the status name of each attempt, in order.
fn bad_table_names() -> Result<Json<Vec<Option<&'static str>>>, Error> {
    let too_long = "t".repeat(65);
    let names = [
        "",
        too_long.as_str(),
        "has space",
        "slash/",
        "caf\u{e9}",
        "nul\0",
    ];
    let statuses = names
        .iter()
        .map(|name| {
            kv::put(name, b"k", b"v")
                .err()
                .and_then(|e| e.status())
                .map(|s| s.name())
        })
        .collect();
    Ok(Json(statuses))
}

export!(
    spin,
    grow_memory,
    alloc_bomb,
    recurse,
    huge_output,
    trap_after_writes,
    error_after_writes,
    panic,
    write_until_refused,
    calls_until_refused,
    audit_until_refused,
    audit_action,
    trap_after_many_writes,
    debug_flood,
    bad_table_names,
);
