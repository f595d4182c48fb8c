//! One invocation: a fresh instance, its limits, its transaction, and how it ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tenantry_engine::{AuditEvent, Error as EngineError, Outcome, TenantHandle, WriteTxn};
use tenantry_sdk::wire::{self, Status};
use wasmtime::{
    Extern, Memory, ModuleExport, PoolConcurrencyLimitError, ResourceLimiter, Store, Trap,
};

use crate::catalog::LoadedPlugin;
use crate::config::Limits;
use crate::error::InvokeError;
use crate::memory;

/// Caps linear memory and remembers that it refused a growth, so that the trap which usually
/// follows (a failed allocation) is reported as [`InvokeError::MemoryLimit`].
pub(crate) struct Limiter {
    max_bytes: usize,
    refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 10_000)
    }
}

/// The table name of a host call, copied out of guest memory to be checked, and the last name
/// that passed. Kept between the calls of an invocation, so that naming a table again costs a
/// comparison and no allocation.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) table: Vec<u8>,
    /// The last table name that passed the ABI's naming rule.
    pub(crate) table_name: String,
}

/// Everything one store holds: exactly one tenant's handle, nothing that names another.
pub(crate) struct HostState {
    /// `None` while a module is checked at install: host calls then fail.
    pub(crate) handle: Option<TenantHandle>,
    /// The plugin version running and the invocation's id: the origin of its audit entries.
    plugin: Arc<LoadedPlugin>,
    invocation: u64,
    /// Begun on the first host call that needs it, so pure computations touch no storage.
    pub(crate) txn: Option<WriteTxn>,
    pub(crate) memory: Option<Memory>,
    pub(crate) limits: Limits,
    pub(crate) limiter: Limiter,
    pub(crate) deadline: Instant,
    pub(crate) host_calls: u32,
    pub(crate) bytes_read: u64,
    pub(crate) bytes_written: u64,
    pub(crate) debug_bytes: u32,
    /// The result buffer that `result_read` copies from.
    pub(crate) result: Vec<u8>,
    /// The buffers host calls check table names with, kept for the next call.
    pub(crate) scratch: Scratch,
    pub(crate) last_error: Option<String>,
    pub(crate) output: Option<Vec<u8>>,
    /// Why a host function ended the invocation; takes precedence over the trap it caused.
    pub(crate) failure: Option<InvokeError>,
    pub(crate) audit: bool,
    /// Entries the plugin added with `audit_log`, against [`Limits::audit_entries`].
    pub(crate) audit_entries: u32,
    /// A write or audit entry was refused because the tenant is read-only: if the invocation
    /// then fails, that is why (see [`finish`]).
    pub(crate) refused_read_only: bool,
    /// The host's instance slots, for a `Busy` error.
    pub(crate) pool_instances: u32,
}

impl HostState {
    /// The state of invocation `invocation` of `plugin`, started at `started`; `handle` is
    /// `None` while a module is checked at install.
    pub(crate) fn new(
        handle: Option<TenantHandle>,
        plugin: Arc<LoadedPlugin>,
        invocation: u64,
        limits: Limits,
        audit: bool,
        started: Instant,
    ) -> Self {
        HostState {
            handle,
            plugin,
            invocation,
            txn: None,
            memory: None,
            limiter: Limiter {
                max_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
                refused: false,
            },
            // A wall time too long to add to the clock is as good as none.
            deadline: started
                .checked_add(limits.wall_time)
                .unwrap_or(started + Duration::from_secs(1 << 32)),
            limits,
            host_calls: 0,
            bytes_read: 0,
            bytes_written: 0,
            debug_bytes: 0,
            result: Vec::new(),
            scratch: Scratch::default(),
            last_error: None,
            output: None,
            failure: None,
            audit,
            audit_entries: 0,
            refused_read_only: false,
            pool_instances: 0,
        }
    }

    /// The name of the plugin running.
    pub(crate) fn plugin_name(&self) -> &str {
        &self.plugin.info.name
    }

    /// A handle whose audit entries name the plugin, its version and the invocation as their
    /// origin. Built only when the invocation touches storage or fails, so an invocation that
    /// does neither formats no origin.
    fn origin_handle(&self) -> Option<TenantHandle> {
        let handle = self.handle.as_ref()?;
        let info = &self.plugin.info;
        let short = info.version.get(..16).unwrap_or(&info.version);
        Some(handle.with_origin(format!(
            "plugin {}@{short} invocation {}",
            info.name, self.invocation
        )))
    }

    /// The invocation's transaction, begun on first use. The wait for the tenant's write lock
    /// is bounded by the invocation's deadline, not the engine's lock timeout, and ends with
    /// the invocation's own [`InvokeError::Timeout`].
    pub(crate) fn txn(&mut self) -> Result<&mut WriteTxn, InvokeError> {
        if self.txn.is_none() {
            let handle = self.origin_handle().ok_or_else(|| {
                InvokeError::Abi(
                    "host calls are not available while a module is checked at install".into(),
                )
            })?;
            let timeout = InvokeError::Timeout {
                limit: self.limits.wall_time,
            };
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timeout);
            }
            match handle.begin_write_within(left) {
                Ok(txn) => self.txn = Some(txn),
                Err(EngineError::LockTimeout { .. }) => return Err(timeout),
                Err(err) => return Err(err.into()),
            }
        }
        self.txn
            .as_mut()
            .ok_or_else(|| InvokeError::Abi("no transaction".into()))
    }

    /// Records a host call's audit event in the invocation's transaction. These entries count
    /// toward the transaction's size cap like everything else it commits; one that does not
    /// fit is `Ok(Some(Status::TransactionTooLarge))`, for the host call to return instead of
    /// its result (ABI §9), with the result buffer emptied.
    pub(crate) fn audit(&mut self, event: AuditEvent) -> Result<Option<Status>, InvokeError> {
        if self.audit {
            match self.txn()?.audit_event(event) {
                Ok(()) => {}
                Err(err @ EngineError::TransactionTooLarge { .. }) => {
                    self.last_error = Some(format!("the call's audit entry does not fit: {err}"));
                    self.result.clear();
                    return Ok(Some(Status::TransactionTooLarge));
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(None)
    }

    /// Records a refused call's audit event. One that does not fit the cap is left out: the
    /// call returns its refusal's status all the same, and the error record keeps the
    /// refusal's message.
    pub(crate) fn audit_refusal(&mut self, event: AuditEvent) -> Result<(), InvokeError> {
        if self.audit {
            match self.txn()?.audit_event(event) {
                Ok(()) | Err(EngineError::TransactionTooLarge { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Ends the invocation from inside a host function.
    pub(crate) fn fail(&mut self, err: InvokeError) -> wasmtime::Error {
        let message = err.to_string();
        self.failure = Some(err);
        wasmtime::Error::msg(message)
    }
}

/// Instantiates the plugin of `store` and calls its export `function` (named `name`) with
/// `input`; returns the output.
pub(crate) fn run(
    store: &mut Store<HostState>,
    function: &ModuleExport,
    name: &str,
    input: &[u8],
) -> Result<Vec<u8>, InvokeError> {
    let plugin = Arc::clone(&store.data().plugin);
    let instance = instantiate(store, &plugin)?;
    let memory = instance
        .get_module_export(&mut *store, &plugin.memory)
        .and_then(Extern::into_memory)
        .ok_or_else(|| InvokeError::Abi("the module exports no memory".into()))?;
    store.data_mut().memory = Some(memory);
    let func = instance
        .get_module_export(&mut *store, function)
        .and_then(Extern::into_func)
        .ok_or_else(|| InvokeError::Abi(format!("the module exports no function `{name}`")))?
        .typed::<(i32, i32), i32>(&*store)
        .map_err(|e| InvokeError::Abi(e.to_string()))?;
    let len = u32::try_from(input.len()).map_err(|_| InvokeError::InputTooLarge {
        len: input.len(),
        limit: store.data().limits.input_bytes,
    })?;
    // An empty input is passed as (0, 0) without calling the allocator (ABI §4.1).
    let ptr = if len == 0 {
        0
    } else {
        let alloc = instance
            .get_module_export(&mut *store, &plugin.alloc)
            .and_then(Extern::into_func)
            .ok_or_else(|| InvokeError::Abi("the module exports no allocator".into()))?
            .typed::<i32, i32>(&*store)
            .map_err(|e| InvokeError::Abi(e.to_string()))?;
        let ptr = alloc
            .call(&mut *store, len as i32)
            .map_err(|e| classify(store, e))? as u32;
        if ptr == 0 {
            return Err(InvokeError::Abi(format!(
                "tenantry_alloc({len}) failed to allocate the input"
            )));
        }
        memory::write(&memory, &mut *store, wire::export::ALLOC, ptr, input).map_err(|e| {
            InvokeError::Abi(format!(
                "tenantry_alloc({len}) returned an unusable buffer: {e}"
            ))
        })?;
        ptr
    };
    let status = func
        .call(&mut *store, (ptr as i32, len as i32))
        .map_err(|e| classify(store, e))?;
    let output = store.data_mut().output.take().unwrap_or_default();
    match status {
        wire::FUNCTION_OK => Ok(output),
        wire::FUNCTION_ERROR if output.is_empty() => Err(InvokeError::Plugin(format!(
            "function `{name}` failed without an error message"
        ))),
        wire::FUNCTION_ERROR => Err(InvokeError::Plugin(
            String::from_utf8_lossy(&output[..output.len().min(4096)]).into_owned(),
        )),
        other => Err(InvokeError::Abi(format!(
            "function `{name}` returned status {other}, not 0 or 1"
        ))),
    }
}

/// Instantiates `plugin` in `store`. The host admits at most `pool_instances` invocations
/// and wasmtime's pool has more slots (`runtime::engine`), but a slot another invocation
/// released can still be on its way back (wasmtime decommits freed memories in batches, with
/// no lock held): a full pool is retried until a slot is back, up to the deadline, and only
/// then is the invocation `Busy`. No guest code has run when the pool refuses.
fn instantiate(
    store: &mut Store<HostState>,
    plugin: &LoadedPlugin,
) -> Result<wasmtime::Instance, InvokeError> {
    let mut pause = Duration::from_micros(20);
    loop {
        match plugin.pre.instantiate(&mut *store) {
            Ok(instance) => return Ok(instance),
            Err(err)
                if err.is::<PoolConcurrencyLimitError>()
                    && Instant::now() + pause < store.data().deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(1));
            }
            Err(err) => return Err(classify(store, err)),
        }
    }
}

/// Turns a wasmtime error into the [`InvokeError`] that explains it.
fn classify(store: &mut Store<HostState>, err: wasmtime::Error) -> InvokeError {
    let state = store.data_mut();
    if let Some(failure) = state.failure.take() {
        return failure;
    }
    let limits = state.limits;
    if state.limiter.refused {
        return InvokeError::MemoryLimit {
            limit_bytes: limits.memory_bytes,
        };
    }
    if err.is::<PoolConcurrencyLimitError>() {
        // Retried until the deadline (`instantiate`): no guest code ran, the pool was busy.
        return InvokeError::Busy {
            limit: "instance pool",
            value: state.pool_instances,
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => InvokeError::OutOfFuel { limit: limits.fuel },
        Some(Trap::Interrupt) => InvokeError::Timeout {
            limit: limits.wall_time,
        },
        Some(trap) => InvokeError::Trap(trap.to_string()),
        None => InvokeError::Trap(format!("{err:#}")),
    }
}

/// Most bytes of a failed invocation's audit entries that its failure record keeps (ABI §4.4):
/// the first of the calls it made, then a `plugin.invoke` entry saying how many were left out.
pub(crate) const FAILURE_RECORD_BYTES: usize = 64 << 10;

/// Commits or rolls back the invocation's transaction and records how it ended, as a
/// `plugin.invoke` entry targeting `plugin/function`.
///
/// A failure is always recorded, bounded in size and without waiting for the tenant's write
/// lock: the first [`FAILURE_RECORD_BYTES`] of the entries its calls made, each marked failed,
/// then the `plugin.invoke` entry with the reason (`WriteTxn::rollback_summarised`). So is a
/// successful run whose commit fails, unless the engine recorded the refusal itself.
pub(crate) fn finish(
    mut state: HostState,
    function: &str,
    result: Result<Vec<u8>, InvokeError>,
) -> Result<Vec<u8>, InvokeError> {
    let summary = |state: &HostState| {
        AuditEvent::new("plugin.invoke")
            .target(format!("{}/{function}", state.plugin_name()))
            .message(format!("{} host calls", state.host_calls))
    };
    let err = match result {
        Ok(output) => {
            let Some(txn) = state.txn.take() else {
                return Ok(output); // no host call: nothing touched, nothing to record
            };
            // The summary fits however close to its cap the transaction came.
            let committed = if state.audit {
                txn.commit_with(summary(&state))
            } else {
                txn.commit()
            };
            return match committed {
                Ok(_) => Ok(output),
                // A commit refused by the tenant's quota or state recorded the invocation's
                // entries as denied itself; any other failure of it is recorded here.
                Err(err @ (EngineError::QuotaExceeded { .. } | EngineError::TenantReadOnly(_))) => {
                    Err(err.into())
                }
                Err(err) => {
                    let err = InvokeError::from(err);
                    let event = summary(&state).outcome(Outcome::Failed(err.to_string()));
                    report(state.origin_handle().map(|h| h.record_audit(vec![event])));
                    Err(err)
                }
            };
        }
        Err(err) => err,
    };
    let event = summary(&state).outcome(Outcome::Failed(err.to_string()));
    report(match state.txn.take() {
        Some(txn) => Some(txn.rollback_summarised(ROLLED_BACK, FAILURE_RECORD_BYTES, event)),
        None => state
            .origin_handle()
            .map(|handle| handle.record_audit(vec![event])),
    });
    // A plugin that failed after being refused a write because the tenant is read-only failed
    // because of the tenant's state: say so, as the engine does for a write of its own (the
    // plugin's own message is the reason recorded above).
    match err {
        InvokeError::Plugin(_) if state.refused_read_only => {
            Err(state.handle.as_ref().map_or(err, |h| {
                InvokeError::Engine(EngineError::TenantReadOnly(h.tenant_id()))
            }))
        }
        other => Err(other),
    }
}

/// How each entry of a failed invocation is marked; its `plugin.invoke` entry says why.
const ROLLED_BACK: &str = "rolled back with its invocation";

/// Logs a failure record that could not be made. On a suspended tenant it was made, as denied.
fn report(recorded: Option<Result<tenantry_engine::CommitReceipt, EngineError>>) {
    if let Some(Err(audit_err)) = recorded
        && !matches!(audit_err, EngineError::TenantSuspended(_))
    {
        tracing::error!(%audit_err, "could not record a failed invocation");
    }
}
