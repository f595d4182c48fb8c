//! The host functions of import module `tenantry:v1` (see `sdk/ABI.md`).
//!
//! Each one: counts the call against [`crate::Limits::host_calls`] and checks the wall-clock
//! deadline; checks every guest range before reading any, and reads (or, for `result_read` and
//! `kv_get_into`, writes) guest bytes only through [`crate::memory`]; calls the engine through
//! the invocation's one [`tenantry_engine::WriteTxn`]; records the call in the audit log (a
//! put or delete is recorded once, by the engine, with the plugin as its origin); and returns a
//! value, a negative [`Status`] for what the plugin can handle, or a trap for what it cannot.
//! `output`, `result_read` and `last_error` move bytes of earlier calls and are not audited.

use std::ops::Bound;

use tenantry_engine::{
    AuditEvent, Error as EngineError, MAX_KEY_LEN, MAX_VALUE_LEN, Outcome, audit_target,
};
use tenantry_sdk::wire::{self, ScanRequest, ScanResponseBuilder, ScanSelector, Status};
use wasmtime::{Caller, Linker};

use crate::error::InvokeError;
use crate::invoke::{HostState, Scratch};
use crate::memory::{self, Guest, GuestRange};

type Call<'a> = Caller<'a, HostState>;

/// Largest scan request a guest may pass.
const MAX_SCAN_REQUEST: usize = 64 << 10;
/// Entries a scan page returns when the guest asks for 0, and at most.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;
/// Bytes a scan page holds at most.
const MAX_PAGE_BYTES: usize = 1 << 20;

/// Adds every host function to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let m = wire::IMPORT_MODULE;
    linker.func_wrap(m, wire::import::KV_GET, kv_get)?;
    linker.func_wrap(m, wire::import::KV_GET_INTO, kv_get_into)?;
    linker.func_wrap(m, wire::import::KV_PUT, kv_put)?;
    linker.func_wrap(m, wire::import::KV_DELETE, kv_delete)?;
    linker.func_wrap(m, wire::import::KV_SCAN, kv_scan)?;
    linker.func_wrap(m, wire::import::AUDIT_LOG, audit_log)?;
    linker.func_wrap(m, wire::import::DEBUG_LOG, debug_log)?;
    linker.func_wrap(m, wire::import::OUTPUT, output)?;
    linker.func_wrap(m, wire::import::RESULT_READ, result_read)?;
    linker.func_wrap(m, wire::import::LAST_ERROR, last_error)?;
    Ok(())
}

/// Starts a host call: counts it and checks the deadline.
fn enter(caller: &mut Call<'_>) -> Result<(), InvokeError> {
    let state = caller.data_mut();
    state.host_calls += 1;
    if state.host_calls > state.limits.host_calls {
        return Err(InvokeError::HostCallLimit {
            limit: state.limits.host_calls,
        });
    }
    // Epoch interruption already stops the guest once it is back in wasm past its deadline;
    // reading the clock every 64 calls also stops a guest that spends its time in host calls,
    // without paying for a clock read (slow in some VMs) on every call.
    if state.host_calls.is_multiple_of(64) && std::time::Instant::now() > state.deadline {
        return Err(InvokeError::Timeout {
            limit: state.limits.wall_time,
        });
    }
    Ok(())
}

fn guest_memory(caller: &Call<'_>) -> Result<wasmtime::Memory, InvokeError> {
    caller.data().memory.ok_or_else(|| {
        InvokeError::Abi("host functions cannot be called from a start function".into())
    })
}

/// Copies a guest range.
fn read(
    caller: &mut Call<'_>,
    function: &'static str,
    ptr: i32,
    len: i32,
    max: usize,
) -> Result<Vec<u8>, InvokeError> {
    let memory = guest_memory(caller)?;
    memory::read(&memory, &*caller, function, ptr as u32, len as u32, max)
}

/// Checks a guest range without copying it.
fn check(
    caller: &mut Call<'_>,
    function: &'static str,
    ptr: i32,
    len: i32,
) -> Result<(), InvokeError> {
    let memory = guest_memory(caller)?;
    memory::check(&memory, &*caller, function, ptr as u32, len as u32)
}

/// Runs a host call body; a fatal error becomes a trap carrying the [`InvokeError`].
fn guarded<T>(
    caller: &mut Call<'_>,
    body: impl FnOnce(&mut Call<'_>) -> Result<T, InvokeError>,
) -> wasmtime::Result<T> {
    match enter(caller).and_then(|()| body(caller)) {
        Ok(value) => Ok(value),
        Err(err) => Err(caller.data_mut().fail(err)),
    }
}

/// Maps an engine error to a status the plugin can handle, or `None` if it must end the
/// invocation.
fn status_of(err: &EngineError) -> Option<Status> {
    Some(match err {
        EngineError::InvalidTableName { .. } => Status::InvalidTableName,
        EngineError::KeyTooLarge { .. } => Status::KeyTooLarge,
        EngineError::ValueTooLarge { .. } => Status::ValueTooLarge,
        EngineError::TenantReadOnly(_) => Status::ReadOnly,
        EngineError::TransactionTooLarge { .. } => Status::TransactionTooLarge,
        EngineError::InvalidField { .. } => Status::InvalidArgument,
        EngineError::QuotaExceeded { .. } => Status::QuotaExceeded,
        _ => return None,
    })
}

/// Handles an engine error: a status for the guest (with its message for `last_error`), or a
/// fatal [`InvokeError`].
fn recoverable(state: &mut HostState, err: EngineError) -> Result<Status, InvokeError> {
    match status_of(&err) {
        Some(status) => {
            state.refused_read_only |= matches!(status, Status::ReadOnly);
            state.last_error = Some(err.to_string());
            state.result.clear();
            Ok(status)
        }
        None => Err(InvokeError::Engine(err)),
    }
}

/// Checks a guest range of a host call (ABI §1); a bad one ends the invocation.
fn checked(
    guest: &Guest<'_>,
    function: &'static str,
    (ptr, len): (i32, i32),
) -> Result<GuestRange, InvokeError> {
    guest.range(function, ptr as u32, len as u32)
}

/// Records why a call failed with `status`, for `last_error`, and empties the result buffer.
fn refuse(state: &mut HostState, status: Status, message: String) -> Status {
    state.last_error = Some(message);
    state.result.clear();
    status
}

/// Checks a table name against the ABI's naming rule, through `buf`. `name` holds the last
/// name that passed; a call naming the same table again (the common case) is only compared.
fn copy_table<'b>(
    guest: &Guest<'_>,
    state: &mut HostState,
    range: GuestRange,
    buf: &mut Vec<u8>,
    name: &'b mut String,
) -> Result<&'b str, Status> {
    if !name.is_empty() && guest.equals(range, name.as_bytes()) {
        return Ok(name);
    }
    // One byte more than the longest name is enough to tell that a name is too long.
    guest.copy(range, wire::MAX_TABLE_NAME_LEN + 1, buf);
    match wire::validate_table_name(buf) {
        Ok(valid) => {
            name.clear();
            name.push_str(valid);
            Ok(name)
        }
        Err(status) => Err(refuse(state, status, invalid_table_message(buf))),
    }
}

/// A checked key or value, borrowed from guest memory for the rest of the host call; one longer
/// than `max` is `status` (ABI §9).
fn bytes_arg<'g>(
    guest: &'g Guest<'_>,
    state: &mut HostState,
    range: GuestRange,
    max: usize,
    status: Status,
) -> Result<&'g [u8], Status> {
    if range.len() > max {
        let message = format!("{} bytes exceeds the limit of {max} bytes", range.len());
        return Err(refuse(state, status, message));
    }
    Ok(guest.bytes(range))
}

/// The table name and key of a kv call, checked; a bad one is a status for the guest.
fn table_and_key<'s, 'g>(
    guest: &'g Guest<'_>,
    state: &mut HostState,
    scratch: &'s mut Scratch,
    table: GuestRange,
    key: GuestRange,
) -> Result<(&'s str, &'g [u8]), Status> {
    let table = copy_table(
        guest,
        state,
        table,
        &mut scratch.table,
        &mut scratch.table_name,
    )?;
    let key = bytes_arg(guest, state, key, MAX_KEY_LEN, Status::KeyTooLarge)?;
    Ok((table, key))
}

/// Runs `body` with the state's table-name buffers taken out of it, and puts them back.
fn with_scratch<R>(
    state: &mut HostState,
    body: impl FnOnce(&mut HostState, &mut Scratch) -> R,
) -> R {
    let mut scratch = std::mem::take(&mut state.scratch);
    let result = body(state, &mut scratch);
    state.scratch = scratch;
    result
}

fn table_name(state: &mut HostState, bytes: &[u8]) -> Result<String, Status> {
    wire::validate_table_name(bytes)
        .map(str::to_owned)
        .map_err(|status| refuse(state, status, invalid_table_message(bytes)))
}

fn invalid_table_message(bytes: &[u8]) -> String {
    format!(
        "invalid table name {:?}",
        String::from_utf8_lossy(bytes.get(..80).unwrap_or(bytes))
    )
}

fn count_read(state: &mut HostState, bytes: usize) -> Result<(), InvokeError> {
    state.bytes_read += bytes as u64;
    if state.bytes_read > state.limits.bytes_read {
        return Err(InvokeError::ReadLimit {
            limit: state.limits.bytes_read,
        });
    }
    Ok(())
}

fn count_write(state: &mut HostState, bytes: usize) -> Result<(), InvokeError> {
    state.bytes_written += bytes as u64;
    if state.bytes_written > state.limits.bytes_written {
        return Err(InvokeError::WriteLimit {
            limit: state.limits.bytes_written,
        });
    }
    Ok(())
}

fn kv_get(mut caller: Call<'_>, tp: i32, tl: i32, kp: i32, kl: i32) -> wasmtime::Result<i64> {
    guarded(&mut caller, |caller| {
        get(caller, "kv_get", (tp, tl), (kp, kl), None)
    })
}

fn kv_get_into(
    mut caller: Call<'_>,
    tp: i32,
    tl: i32,
    kp: i32,
    kl: i32,
    dp: i32,
    dc: i32,
) -> wasmtime::Result<i64> {
    guarded(&mut caller, |caller| {
        get(caller, "kv_get_into", (tp, tl), (kp, kl), Some((dp, dc)))
    })
}

/// `kv_get`, and with a destination `kv_get_into`: the value goes to the result buffer and,
/// when it fits, to the destination too.
fn get(
    caller: &mut Call<'_>,
    function: &'static str,
    table: (i32, i32),
    key: (i32, i32),
    dst: Option<(i32, i32)>,
) -> Result<i64, InvokeError> {
    let memory = guest_memory(caller)?;
    let (mut guest, state) = memory::split(&memory, caller);
    // Every range is checked before any byte is read or written (ABI §6).
    let table = checked(&guest, function, table)?;
    let key = checked(&guest, function, key)?;
    let dst = dst.map(|dst| checked(&guest, function, dst)).transpose()?;
    with_scratch(state, |state, scratch| {
        let (table, key) = match table_and_key(&guest, state, scratch, table, key) {
            Ok(args) => args,
            Err(status) => return Ok(i64::from(status.code())),
        };
        // The value is copied once, from the database page into the reused result buffer
        // (and from there into the guest's buffer when it fits): no allocation per get.
        let mut result = std::mem::take(&mut state.result);
        let got = state.txn()?.get_with(table, key, |value| {
            value.map(|value| {
                result.clear();
                result.extend_from_slice(value);
            })
        });
        state.result = result;
        let audit = state.audit;
        let event = || AuditEvent::new("kv.get").target(audit_target(table, key));
        match got {
            Ok(Some(())) => {
                let len = state.result.len();
                count_read(state, key.len() + len)?;
                if audit
                    && let Some(status) =
                        state.audit(event().message(format!("found, {len} bytes")))?
                {
                    return Ok(i64::from(status.code()));
                }
                if let Some(dst) = dst.filter(|dst| len <= dst.len()) {
                    guest.write(function, dst, &state.result)?;
                }
                Ok(len as i64)
            }
            Ok(None) => {
                state.result.clear();
                if audit
                    && let Some(status) =
                        state.audit(event().outcome(Outcome::NoChange).message("not found"))?
                {
                    return Ok(i64::from(status.code()));
                }
                Ok(i64::from(Status::NotFound.code()))
            }
            Err(err) => {
                let reason = err.to_string();
                let status = recoverable(state, err)?;
                state.audit_refusal(event().outcome(Outcome::Denied(reason)))?;
                Ok(i64::from(status.code()))
            }
        }
    })
}

fn kv_put(
    mut caller: Call<'_>,
    tp: i32,
    tl: i32,
    kp: i32,
    kl: i32,
    vp: i32,
    vl: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "kv_put";
    guarded(&mut caller, |caller| {
        let memory = guest_memory(caller)?;
        let (guest, state) = memory::split(&memory, caller);
        let (table, key, value) = (
            checked(&guest, F, (tp, tl))?,
            checked(&guest, F, (kp, kl))?,
            checked(&guest, F, (vp, vl))?,
        );
        with_scratch(state, |state, scratch| {
            let (table, key) = match table_and_key(&guest, state, scratch, table, key) {
                Ok(args) => args,
                Err(status) => return Ok(status.code()),
            };
            let value = match bytes_arg(&guest, state, value, MAX_VALUE_LEN, Status::ValueTooLarge)
            {
                Ok(value) => value,
                Err(status) => return Ok(status.code()),
            };
            count_write(state, key.len() + value.len())?;
            // The engine records the put itself, once, with the plugin as its origin.
            match state.txn()?.put(table, key, value) {
                Ok(()) => Ok(0),
                Err(err) => {
                    let event = AuditEvent::new("kv.put")
                        .target(audit_target(table, key))
                        .outcome(Outcome::Denied(err.to_string()));
                    let status = recoverable(state, err)?;
                    state.audit_refusal(event)?;
                    Ok(status.code())
                }
            }
        })
    })
}

fn kv_delete(mut caller: Call<'_>, tp: i32, tl: i32, kp: i32, kl: i32) -> wasmtime::Result<i32> {
    const F: &str = "kv_delete";
    guarded(&mut caller, |caller| {
        let memory = guest_memory(caller)?;
        let (guest, state) = memory::split(&memory, caller);
        let (table, key) = (checked(&guest, F, (tp, tl))?, checked(&guest, F, (kp, kl))?);
        with_scratch(state, |state, scratch| {
            let (table, key) = match table_and_key(&guest, state, scratch, table, key) {
                Ok(args) => args,
                Err(status) => return Ok(status.code()),
            };
            count_write(state, key.len())?;
            match state.txn()?.delete(table, key) {
                Ok(existed) => Ok(i32::from(existed)),
                Err(err) => {
                    let event = AuditEvent::new("kv.delete")
                        .target(audit_target(table, key))
                        .outcome(Outcome::Denied(err.to_string()));
                    let status = recoverable(state, err)?;
                    state.audit_refusal(event)?;
                    Ok(status.code())
                }
            }
        })
    })
}

fn kv_scan(mut caller: Call<'_>, rp: i32, rl: i32) -> wasmtime::Result<i64> {
    guarded(&mut caller, |caller| {
        let bytes = read(caller, "kv_scan", rp, rl, MAX_SCAN_REQUEST)?;
        let request = ScanRequest::decode(&bytes).map_err(|e| InvokeError::BadArguments {
            function: "kv_scan",
            reason: e.to_string(),
        })?;
        let state = caller.data_mut();
        let table = match table_name(state, request.table) {
            Ok(t) => t,
            Err(status) => return Ok(i64::from(status.code())),
        };
        let resume_after = match wire::decode_cursor(request.cursor) {
            Ok(after) => after,
            Err(e) => {
                state.last_error = Some(format!("invalid cursor: {e}"));
                state.result.clear();
                return Ok(i64::from(Status::InvalidCursor.code()));
            }
        };
        let limit = match request.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let start = request.start_bound(resume_after);
        let prefix_end;
        let (end, what) = match request.selector {
            ScanSelector::Prefix(prefix) => {
                prefix_end = tenantry_engine::successor(prefix);
                let end = prefix_end
                    .as_deref()
                    .map_or(Bound::Unbounded, Bound::Excluded);
                (end, format!("prefix of {} bytes", prefix.len()))
            }
            ScanSelector::Range { end, .. } => (end, "range".to_owned()),
        };
        // The cursor only moves the start; the engine clamps every bound to this tenant's table.
        // Entries are taken one at a time, so a page never holds more than the page caps and
        // the read budget allow, however large the tenant's values are.
        let read_left = state.limits.bytes_read.saturating_sub(state.bytes_read);
        let (mut page, mut page_bytes, mut read, mut more) = (Vec::new(), 0usize, 0u64, false);
        let scan = match state.txn()?.range(&table, (start, end)) {
            Ok(scan) => scan,
            Err(err) => {
                let status = recoverable(state, err)?;
                return Ok(i64::from(status.code()));
            }
        };
        for item in scan {
            let (key, value) = item.map_err(InvokeError::Engine)?;
            let size = wire::entry_encoded_len(key.len(), value.len());
            if page.len() as u32 >= limit
                || (!page.is_empty() && page_bytes + size > MAX_PAGE_BYTES)
            {
                more = true;
                break;
            }
            read += (key.len() + value.len()) as u64;
            if read > read_left {
                break;
            }
            page_bytes += size;
            page.push((key, value));
        }
        count_read(state, usize::try_from(read).unwrap_or(usize::MAX))?;
        let mut builder = ScanResponseBuilder::new();
        for (key, value) in &page {
            builder
                .push(key, value)
                .map_err(|e| InvokeError::BadArguments {
                    function: "kv_scan",
                    reason: e.to_string(),
                })?;
        }
        let last = page.last().map(|(key, _)| key);
        let cursor = match (last, more) {
            (Some(last), true) => wire::encode_cursor(last),
            _ => Vec::new(),
        };
        let count = builder.len();
        let response = builder
            .finish(&cursor)
            .map_err(|e| InvokeError::BadArguments {
                function: "kv_scan",
                reason: e.to_string(),
            })?;
        if state.audit {
            let more = if more { ", more follow" } else { "" };
            let event = AuditEvent::new("kv.scan")
                .target(format!("{table}/({what})"))
                .message(format!("{count} entries{more}"));
            if let Some(status) = state.audit(event)? {
                return Ok(i64::from(status.code()));
            }
        }
        let len = response.len() as i64;
        state.result = response;
        Ok(len)
    })
}

fn audit_log(mut caller: Call<'_>, ap: i32, al: i32, mp: i32, ml: i32) -> wasmtime::Result<i32> {
    guarded(&mut caller, |caller| {
        check(caller, "audit_log", ap, al)?;
        let has_message = ml as u32 != wire::NO_MESSAGE;
        if has_message {
            check(caller, "audit_log", mp, ml)?;
        }
        let too_long = al as u32 as usize > tenantry_engine::MAX_ACTION_LEN
            || (has_message && ml as u32 as usize > tenantry_engine::MAX_MESSAGE_LEN);
        if too_long {
            let state = caller.data_mut();
            state.last_error = Some(format!(
                "audit actions are at most {} bytes and messages at most {} bytes",
                tenantry_engine::MAX_ACTION_LEN,
                tenantry_engine::MAX_MESSAGE_LEN
            ));
            return Ok(Status::LimitExceeded.code());
        }
        let action = read(caller, "audit_log", ap, al, tenantry_engine::MAX_ACTION_LEN)?;
        let message = if has_message {
            Some(read(
                caller,
                "audit_log",
                mp,
                ml,
                tenantry_engine::MAX_MESSAGE_LEN,
            )?)
        } else {
            None
        };
        let state = caller.data_mut();
        let (Ok(action), Ok(message)) = (
            String::from_utf8(action),
            message.map(String::from_utf8).transpose(),
        ) else {
            state.last_error = Some("the action and message must be UTF-8".into());
            return Ok(Status::InvalidArgument.code());
        };
        // The engine's, the host's and operators' actions (`kv.put`, `plugin.invoke`, ...),
        // and anything that looks like one, cannot be claimed by a plugin: an `Ok` `kv.put`
        // entry exists only if the put did. (The invocation's own handle may record them.)
        if let Err(err) = tenantry_engine::check_request_action(&action) {
            return Ok(refuse(state, Status::InvalidArgument, err.to_string()).code());
        }
        // Read-only refuses the plugin's entries as it refuses its writes (ABI §6.5); a
        // suspended tenant ends the invocation at the engine's check below.
        if let Some(handle) = &state.handle
            && handle.state() == tenantry_engine::TenantState::ReadOnly
        {
            state.refused_read_only = true;
            let message = format!("tenant {} is read-only", handle.tenant_id());
            return Ok(refuse(state, Status::ReadOnly, message).code());
        }
        if state.audit_entries >= state.limits.audit_entries {
            let message = format!(
                "the limit of {} audit entries per invocation is reached",
                state.limits.audit_entries
            );
            return Ok(refuse(state, Status::LimitExceeded, message).code());
        }
        // The plugin's own entry is always recorded, audit switch or not: it is its data.
        let mut event = AuditEvent::new(action);
        if let Some(message) = message {
            event = event.message(message);
        }
        match state.txn()?.audit_event(event) {
            Ok(()) => {
                state.audit_entries += 1;
                Ok(0)
            }
            Err(err) => Ok(recoverable(state, err)?.code()),
        }
    })
}

fn debug_log(mut caller: Call<'_>, p: i32, l: i32) -> wasmtime::Result<i32> {
    guarded(&mut caller, |caller| {
        check(caller, "debug_log", p, l)?;
        let state = caller.data();
        let room = state
            .limits
            .debug_log_bytes
            .saturating_sub(state.debug_bytes) as usize;
        let take = (l as u32 as usize).min(room);
        let text = read(caller, "debug_log", p, take as i32, room)?;
        let state = caller.data_mut();
        state.debug_bytes += take as u32;
        let text = String::from_utf8_lossy(&text);
        let truncated = (l as u32 as usize) > take;
        tracing::debug!(target: "tenantry::plugin", plugin = %state.plugin_name(), truncated, "{}", text.escape_debug());
        Ok(0)
    })
}

fn output(mut caller: Call<'_>, p: i32, l: i32) -> wasmtime::Result<i32> {
    guarded(&mut caller, |caller| {
        // The range first, as every import checks it (ABI §6): a bad one is bad arguments,
        // whatever its length.
        check(caller, "output", p, l)?;
        let limit = caller.data().limits.output_bytes;
        if l as u32 > limit {
            return Err(InvokeError::OutputTooLarge { limit });
        }
        if caller.data().output.is_some() {
            return Err(InvokeError::Abi("output was called more than once".into()));
        }
        let bytes = read(caller, "output", p, l, limit as usize)?;
        caller.data_mut().output = Some(bytes);
        Ok(0)
    })
}

fn result_read(mut caller: Call<'_>, p: i32, l: i32) -> wasmtime::Result<i32> {
    guarded(&mut caller, |caller| {
        let memory = guest_memory(caller)?;
        let (mut guest, state) = memory::split(&memory, caller);
        let dst = checked(&guest, "result_read", (p, l))?;
        let take = dst.len().min(state.result.len());
        let bytes = state.result.get(..take).unwrap_or_default();
        guest.write("result_read", dst, bytes)?;
        Ok(take as i32)
    })
}

fn last_error(mut caller: Call<'_>) -> wasmtime::Result<i64> {
    guarded(&mut caller, |caller| {
        let state = caller.data_mut();
        match &state.last_error {
            Some(message) => {
                state.result = message.clone().into_bytes();
                Ok(state.result.len() as i64)
            }
            None => {
                state.result.clear();
                Ok(wire::NO_ERROR)
            }
        }
    })
}
