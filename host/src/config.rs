//! Host configuration and per-invocation limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Hard limits on one invocation. Defaults come from [`HostConfig::limits`]; operators can
/// override them per tenant with [`crate::PluginHost::set_limits`].
///
/// Breaching any of them ends the invocation with an [`crate::InvokeError`] naming the limit and
/// its value; everything the invocation wrote is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// CPU budget in wasmtime fuel units (roughly one per wasm instruction). Default
    /// 1,000,000,000: about 100 ms of guest code on the reference machine.
    pub fuel: u64,
    /// Wall-clock deadline, counting time spent inside host calls. Default 1 s.
    pub wall_time: Duration,
    /// Largest linear memory, in bytes. Default 64 MiB (capped by [`HostConfig::pool_memory_bytes`]).
    pub memory_bytes: u64,
    /// Host calls per invocation. Default 10,000.
    pub host_calls: u32,
    /// Bytes the plugin may read from storage (keys and values returned). Default 16 MiB.
    pub bytes_read: u64,
    /// Bytes the plugin may write to storage (keys and values). Default 8 MiB.
    pub bytes_written: u64,
    /// Largest input. Default 1 MiB.
    pub input_bytes: u32,
    /// Largest output. Default 1 MiB.
    pub output_bytes: u32,
    /// Bytes of debug log per invocation; the rest is dropped (and says so). Default 64 KiB.
    pub debug_log_bytes: u32,
    /// Invocations of one tenant running at once; more fail fast with
    /// [`crate::InvokeError::Busy`]. Default 4.
    pub concurrency: u32,
    /// Entries a plugin may add with `audit_log` in one invocation; more get status
    /// `LimitExceeded` (the invocation goes on). Default 1,000. The host's own records of the
    /// invocation's calls are bounded by [`Limits::host_calls`] instead.
    pub audit_entries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 1_000_000_000,
            wall_time: Duration::from_secs(1),
            memory_bytes: 64 << 20,
            host_calls: 10_000,
            bytes_read: 16 << 20,
            bytes_written: 8 << 20,
            input_bytes: 1 << 20,
            output_bytes: 1 << 20,
            debug_log_bytes: 64 << 10,
            concurrency: 4,
            audit_entries: 1_000,
        }
    }
}

impl Limits {
    /// Sets [`Limits::fuel`].
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }
    /// Sets [`Limits::wall_time`].
    pub fn wall_time(mut self, wall_time: Duration) -> Self {
        self.wall_time = wall_time;
        self
    }
    /// Sets [`Limits::memory_bytes`].
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }
    /// Sets [`Limits::host_calls`].
    pub fn host_calls(mut self, calls: u32) -> Self {
        self.host_calls = calls;
        self
    }
    /// Sets [`Limits::bytes_read`].
    pub fn bytes_read(mut self, bytes: u64) -> Self {
        self.bytes_read = bytes;
        self
    }
    /// Sets [`Limits::bytes_written`].
    pub fn bytes_written(mut self, bytes: u64) -> Self {
        self.bytes_written = bytes;
        self
    }
    /// Sets [`Limits::input_bytes`].
    pub fn input_bytes(mut self, bytes: u32) -> Self {
        self.input_bytes = bytes;
        self
    }
    /// Sets [`Limits::output_bytes`].
    pub fn output_bytes(mut self, bytes: u32) -> Self {
        self.output_bytes = bytes;
        self
    }
    /// Sets [`Limits::concurrency`].
    pub fn concurrency(mut self, invocations: u32) -> Self {
        self.concurrency = invocations;
        self
    }

    /// Sets [`Limits::audit_entries`].
    pub fn audit_entries(mut self, entries: u32) -> Self {
        self.audit_entries = entries;
        self
    }
}

/// Settings of a [`crate::PluginHost`]; start from `HostConfig::default()`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HostConfig {
    /// Default limits of every tenant.
    pub limits: Limits,
    /// Largest module accepted at install, in bytes. Default 8 MiB.
    pub max_module_bytes: usize,
    /// Longest compile accepted at install. Default 10 s.
    pub compile_timeout: Duration,
    /// Instance slots in the pooling allocator: invocations running at once across all
    /// tenants. Default 64.
    pub pool_instances: u32,
    /// Largest linear memory a pool slot can hold; caps [`Limits::memory_bytes`]. Default 64 MiB.
    pub pool_memory_bytes: u64,
    /// Bytes at the start of each pooled linear memory that are reset in place (a `memset`,
    /// and a copy of the module's data) when an invocation's instance is dropped, instead of
    /// being returned to the kernel. Default 64 KiB.
    ///
    /// Every invocation runs in a fresh instance, so this reset is on the path of every
    /// invocation. Pages returned to the kernel cost a system call and then a page fault for
    /// each page the next instance touches; pages kept resident cost a `memset` of this many
    /// bytes whether they were touched or not. Plugins built with a small stack, as the
    /// README's plugin guide suggests (32 KiB), keep their stack, data and heap in the first
    /// 64 KiB, and a no-op invocation then takes about 3.3 µs on the reference machine instead
    /// of 8. Plugins built with rustc's default 1 MiB stack touch memory near 1 MiB only, so
    /// for a host running mostly such plugins `0` is better (6.5 µs instead of 8).
    pub pool_keep_resident_bytes: usize,
    /// Granularity of the wall-clock deadline. Default 5 ms.
    pub epoch_tick: Duration,
    /// Benchmarks only: do not record host calls in the audit log.
    #[doc(hidden)]
    pub audit_host_calls: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            limits: Limits::default(),
            max_module_bytes: 8 << 20,
            compile_timeout: Duration::from_secs(10),
            pool_instances: 64,
            pool_memory_bytes: 64 << 20,
            pool_keep_resident_bytes: 64 << 10,
            epoch_tick: Duration::from_millis(5),
            audit_host_calls: true,
        }
    }
}
