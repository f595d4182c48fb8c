//! Errors of the plugin host.

use std::time::Duration;

/// Why installing, listing or removing a plugin, or setting limits, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The plugin name is malformed.
    #[error("invalid plugin name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The module is larger than [`crate::HostConfig::max_module_bytes`].
    #[error("module of {len} bytes exceeds the limit of {limit} bytes")]
    ModuleTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a valid WebAssembly module.
    #[error("invalid wasm module: {0}")]
    InvalidModule(String),
    /// The module imports something the host does not provide (WASI included).
    #[error(
        "module imports `{module}`.`{name}`, which the host does not provide (only `{}` imports are allowed)",
        tenantry_sdk::wire::IMPORT_MODULE
    )]
    RefusedImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// The module does not satisfy the ABI (a missing or mistyped export, a wrong version).
    #[error("module does not follow the tenantry ABI: {0}")]
    Abi(String),
    /// Compiling the module took longer than [`crate::HostConfig::compile_timeout`].
    #[error("compiling the module took longer than {0:?}")]
    CompileTimeout(Duration),
    /// No plugin of that name is installed for the tenant.
    #[error("no plugin named {0:?} is installed")]
    UnknownPlugin(String),
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] tenantry_engine::Error),
    /// Wasmtime could not be set up.
    #[error("could not set up the wasm runtime: {0}")]
    Runtime(String),
}

/// Why an invocation failed. Every variant means nothing the invocation wrote was kept.
///
/// Every failure of an invocation that started is recorded in the tenant's audit log: a
/// `plugin.invoke` entry with the reason, after the first 64 KiB of the entries its calls made,
/// each marked failed (ABI §4.4). Refusals before anything of the tenant's ran are not
/// recorded, so that a flood of them cannot flood the log: [`InvokeError::Busy`],
/// [`InvokeError::UnknownPlugin`] and [`InvokeError::UnknownFunction`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// No plugin of that name is installed for the tenant.
    #[error("no plugin named {0:?} is installed")]
    UnknownPlugin(String),
    /// The plugin has no such function.
    #[error("plugin {plugin:?} has no function {function:?}")]
    UnknownFunction {
        /// The plugin.
        plugin: String,
        /// The function asked for.
        function: String,
    },
    /// The tenant is at its concurrency limit, or every instance slot is taken; retry later.
    /// Refused before any code ran, and not recorded in the audit log.
    #[error("busy: {limit} of {value} reached")]
    Busy {
        /// Which limit: `tenant concurrency` or `instance pool`.
        limit: &'static str,
        /// Its value.
        value: u32,
    },
    /// The input is larger than [`crate::Limits::input_bytes`].
    #[error("input of {len} bytes exceeds the limit of {limit} bytes")]
    InputTooLarge {
        /// Input size.
        len: usize,
        /// The limit.
        limit: u32,
    },
    /// The plugin produced more than [`crate::Limits::output_bytes`].
    #[error("output exceeds the limit of {limit} bytes")]
    OutputTooLarge {
        /// The limit.
        limit: u32,
    },
    /// The plugin used up its CPU budget ([`crate::Limits::fuel`]).
    #[error("CPU budget of {limit} fuel exhausted")]
    OutOfFuel {
        /// The limit.
        limit: u64,
    },
    /// The invocation ran past its wall-clock deadline ([`crate::Limits::wall_time`]).
    #[error("wall-clock deadline of {limit:?} exceeded")]
    Timeout {
        /// The limit.
        limit: Duration,
    },
    /// The plugin tried to grow its memory past [`crate::Limits::memory_bytes`].
    #[error("memory limit of {limit_bytes} bytes reached")]
    MemoryLimit {
        /// The limit.
        limit_bytes: u64,
    },
    /// The plugin made more than [`crate::Limits::host_calls`] host calls.
    #[error("host call limit of {limit} reached")]
    HostCallLimit {
        /// The limit.
        limit: u32,
    },
    /// The plugin read more than [`crate::Limits::bytes_read`].
    #[error("read limit of {limit} bytes reached")]
    ReadLimit {
        /// The limit.
        limit: u64,
    },
    /// The plugin wrote more than [`crate::Limits::bytes_written`].
    #[error("write limit of {limit} bytes reached")]
    WriteLimit {
        /// The limit.
        limit: u64,
    },
    /// The plugin passed a pointer or length outside its memory, or bytes the host could not
    /// decode, to a host function.
    #[error("plugin passed bad arguments to {function}: {reason}")]
    BadArguments {
        /// The host function.
        function: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The plugin broke the ABI (missing allocator, allocation failure, wrong version, …).
    #[error("plugin broke the ABI: {0}")]
    Abi(String),
    /// The plugin trapped (unreachable, stack overflow, out-of-bounds access, …).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin returned an error of its own.
    #[error("plugin returned an error: {0}")]
    Plugin(String),
    /// The engine refused or failed (tenant state, quota, storage). A plugin that fails after
    /// the host refused it a write or an audit entry because the tenant is read-only is
    /// reported as `Engine(TenantReadOnly)`: the tenant's state is why it failed (its own
    /// message is in the audit log).
    #[error(transparent)]
    Engine(#[from] tenantry_engine::Error),
}

impl InvokeError {
    /// Whether retrying the same invocation can succeed without anything else changing.
    pub fn is_retryable(&self) -> bool {
        match self {
            InvokeError::Busy { .. } => true,
            InvokeError::Engine(e) => e.is_retryable(),
            _ => false,
        }
    }
}

impl From<HostError> for InvokeError {
    fn from(err: HostError) -> Self {
        match err {
            HostError::Engine(e) => InvokeError::Engine(e),
            HostError::UnknownPlugin(name) => InvokeError::UnknownPlugin(name),
            other => InvokeError::Abi(other.to_string()),
        }
    }
}
