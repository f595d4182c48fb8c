//! The wasmtime engine shared by every plugin: pooling allocator, fuel, epoch interruption.

use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, OptLevel,
    PoolingAllocationConfig,
};

use crate::config::HostConfig;
use crate::error::HostError;

/// Bytes of each pooled table reset in place, like [`HostConfig::pool_keep_resident_bytes`] for
/// memories: a plugin's function table fits in one page.
const TABLE_KEEP_RESIDENT: usize = 4 << 10;

/// Slots wasmtime's pool has beyond the host's `pool_instances`, per slot the host admits.
///
/// The host admits at most `pool_instances` invocations at once, and releases an invocation's
/// slot only after its store, and so its instance, is dropped. But wasmtime returns freed
/// memories to its pool in batches ([`DECOMMIT_BATCH`]): a slot can be on its way back, in no
/// queue that an allocation could flush, when the next admitted invocation instantiates. With
/// a pool exactly as large as the admission limit, 1.1% of invocations at 64 threads failed so
/// ("maximum concurrent limit of 64 for memory stripe 0 reached"). Twice the slots cost only
/// address space (each is a reservation, `pool_memory_bytes` plus a guard), and an admitted
/// invocation then always finds one free.
const POOL_HEADROOM: u32 = 2;

/// Freed memories wasmtime returns to the kernel at a time.
const DECOMMIT_BATCH: usize = 8;

/// Builds the wasmtime engine for `config`.
pub(crate) fn engine(config: &HostConfig) -> Result<Engine, HostError> {
    let slots = config.pool_instances.saturating_mul(POOL_HEADROOM);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .max_memory_size(usize::try_from(config.pool_memory_bytes).unwrap_or(usize::MAX))
        .max_core_instance_size(1 << 20)
        // Return slots' memory to the kernel a few at a time, not one madvise per invocation.
        .decommit_batch_size(DECOMMIT_BATCH)
        .linear_memory_keep_resident(config.pool_keep_resident_bytes)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        // Resetting only the pages written (PAGEMAP_SCAN) was measured slower here: its ioctl
        // alone cost about 1.3 µs per instance, more than the memset it saves for small memories.
        .pagemap_scan(Enabled::No);
    let mut cfg = Config::new();
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        .parallel_compilation(true)
        .max_wasm_stack(512 << 10)
        .memory_reservation(config.pool_memory_bytes)
        .memory_guard_size(64 << 10);
    Engine::new(&cfg).map_err(|e| HostError::Runtime(e.to_string()))
}

/// Advances the engine's epoch every `tick` until the engine is dropped: the clock behind every
/// invocation's wall-clock deadline.
pub(crate) fn start_epoch_ticker(engine: &Engine, tick: Duration) -> Result<(), HostError> {
    let weak: EngineWeak = engine.weak();
    std::thread::Builder::new()
        .name("tenantry-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .map(drop)
        .map_err(|e| HostError::Runtime(e.to_string()))
}
