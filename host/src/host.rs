//! [`PluginHost`]: install, list, remove and invoke tenant plugins.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::RwLock;
use tenantry_engine::{AuditEvent, Context, Engine, Operator, TenantHandle, TenantId};
use tenantry_sdk::wire;
use wasmtime::{Linker, Store};

use crate::catalog::{self, Catalog, LoadedPlugin, PluginInfo};
use crate::config::{HostConfig, Limits};
use crate::error::{HostError, InvokeError};
use crate::hostcalls;
use crate::invoke::{self, HostState};
use crate::records;
use crate::runtime;
use crate::validate;

struct Inner {
    engine: Engine,
    wasm: wasmtime::Engine,
    linker: Linker<HostState>,
    config: HostConfig,
    catalog: Catalog,
    limits: RwLock<HashMap<TenantId, Limits>>,
    running: RwLock<HashMap<TenantId, Arc<AtomicU32>>>,
    pool_in_use: AtomicU32,
    next_invocation: AtomicU64,
    /// The engine's state generation when deleted tenants were last forgotten.
    swept_generation: AtomicU64,
    /// Per tenant, the [`Engine::reserved_tables_version`] its cached plugins and limits were
    /// read at (only ever non-zero on a database that other engines write too).
    reserved_versions: RwLock<HashMap<TenantId, u64>>,
}

/// Runs tenants' WebAssembly plugins against the engine. Cloning is cheap; `PluginHost` is
/// `Send + Sync`. Use one host per [`Engine`]: installed plugins are cached in memory.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

/// Holds a concurrency slot until dropped.
struct Slot<'a>(&'a AtomicU32);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn take_slot<'a>(
    counter: &'a AtomicU32,
    max: u32,
    limit: &'static str,
) -> Result<Slot<'a>, InvokeError> {
    if counter.fetch_add(1, Ordering::AcqRel) >= max {
        counter.fetch_sub(1, Ordering::AcqRel);
        return Err(InvokeError::Busy { limit, value: max });
    }
    Ok(Slot(counter))
}

impl PluginHost {
    /// A host for `engine`.
    ///
    /// # Errors
    /// [`HostError::Runtime`] if wasmtime cannot be set up (for example, no virtual memory for
    /// the instance pool).
    pub fn new(engine: Engine, config: HostConfig) -> Result<Self, HostError> {
        let wasm = runtime::engine(&config)?;
        runtime::start_epoch_ticker(&wasm, config.epoch_tick)?;
        let mut linker = Linker::new(&wasm);
        hostcalls::add_to_linker(&mut linker).map_err(|e| HostError::Runtime(e.to_string()))?;
        Ok(PluginHost {
            inner: Arc::new(Inner {
                engine,
                wasm,
                linker,
                config,
                catalog: Catalog::default(),
                limits: RwLock::new(HashMap::new()),
                running: RwLock::new(HashMap::new()),
                pool_in_use: AtomicU32::new(0),
                next_invocation: AtomicU64::new(1),
                swept_generation: AtomicU64::new(0),
                reserved_versions: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// The engine this host runs on. Whoever holds a `PluginHost` holds its `Engine`, and so
    /// the owner's capabilities (reserved tables, component handles): hand request code
    /// [`TenantHandle`]s and a way to call [`PluginHost::invoke`], not the host itself, where
    /// that matters.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Installs (or replaces) plugin `name` for the context's tenant, audited as the context's
    /// actor. Invocations in flight finish on the version they started with.
    ///
    /// # Errors
    /// A bad name, a module that is too large, invalid, imports anything but `tenantry:v1`,
    /// breaks the ABI or takes too long to compile; or an engine error.
    pub fn install(&self, ctx: &Context, name: &str, wasm: &[u8]) -> Result<PluginInfo, HostError> {
        let reserved = self.inner.engine.reserved_tables(ctx)?;
        self.install_with(&reserved, name, wasm)
    }

    /// Installs a plugin on a tenant's behalf, audited as the operator.
    ///
    /// # Errors
    /// As [`PluginHost::install`].
    pub fn install_for(
        &self,
        op: &Operator,
        tenant: TenantId,
        name: &str,
        wasm: &[u8],
    ) -> Result<PluginInfo, HostError> {
        let reserved = self.inner.engine.reserved_handle(op, tenant)?;
        self.install_with(&reserved, name, wasm)
    }

    fn install_with(
        &self,
        reserved: &TenantHandle,
        name: &str,
        wasm: &[u8],
    ) -> Result<PluginInfo, HostError> {
        self.forget_deleted_tenants();
        catalog::validate_name(name)?;
        let tenant = reserved.tenant_id();
        let module = validate::compile(
            &self.inner.wasm,
            wasm,
            self.inner.config.max_module_bytes,
            self.inner.config.compile_timeout,
        )?;
        let exports = validate::check_abi(&module)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&module)
            .map_err(|e| HostError::Abi(format!("{e:#}")))?;
        let version = blake3::hash(wasm).to_hex().to_string();
        let info = PluginInfo {
            name: name.to_owned(),
            version: version.clone(),
            exports,
            size: wasm.len() as u64,
            installed_micros: now_micros(),
        };
        let plugin = Arc::new(LoadedPlugin::new(info, pre).map_err(HostError::Abi)?);
        self.check_version(&plugin, self.limits(reserved)?)?;
        let mut txn = reserved.begin_write()?;
        if txn.get(catalog::CODE, version.as_bytes())?.is_none() {
            txn.put(catalog::CODE, version.as_bytes(), wasm)?;
        }
        let previous = txn
            .get(catalog::PLUGINS, name.as_bytes())?
            .map(|bytes| records::decode_plugin(&bytes))
            .transpose()?;
        txn.put(
            catalog::PLUGINS,
            name.as_bytes(),
            &records::encode_plugin(&plugin.info)?,
        )?;
        let mut event = AuditEvent::new("plugin.install")
            .target(name)
            .message(format!(
                "version {version}, {} bytes, exports {}",
                wasm.len(),
                plugin.info.exports.join(", ")
            ));
        if let Some(previous) = previous {
            event = event.message(format!(
                "version {version} replaces {}, {} bytes, exports {}",
                previous.version,
                wasm.len(),
                plugin.info.exports.join(", ")
            ));
        }
        txn.audit_event(event)?;
        txn.commit()?;
        self.revalidate(tenant)?;
        self.inner.catalog.insert(tenant, Arc::clone(&plugin));
        self.mark_current(tenant)?;
        Ok(plugin.info.clone())
    }

    /// Instantiates a freshly compiled plugin once, outside any tenant, to run its start
    /// function under the limits and check `tenantry_abi_version`.
    fn check_version(&self, plugin: &Arc<LoadedPlugin>, limits: Limits) -> Result<(), HostError> {
        let _slot = take_slot(
            &self.inner.pool_in_use,
            self.inner.config.pool_instances,
            "instance pool",
        )
        .map_err(|e| HostError::Abi(e.to_string()))?;
        let state = HostState::new(
            None,
            Arc::clone(plugin),
            0,
            limits,
            self.inner.config.audit_host_calls,
            Instant::now(),
        );
        let mut store = self.store(state);
        store
            .set_fuel(limits.fuel)
            .map_err(|e| HostError::Runtime(e.to_string()))?;
        let abi = |e: InvokeError| HostError::Abi(format!("checking the module failed: {e}"));
        let instance = plugin
            .pre
            .instantiate(&mut store)
            .map_err(|e| HostError::Abi(format!("instantiating the module failed: {e:#}")))?;
        let version = instance
            .get_typed_func::<(), i32>(&mut store, wire::export::ABI_VERSION)
            .and_then(|f| f.call(&mut store, ()))
            .map_err(|e| abi(InvokeError::Trap(format!("{e:#}"))))?;
        if version != wire::ABI_VERSION {
            return Err(HostError::Abi(format!(
                "the module targets ABI version {version}, this host speaks version {}",
                wire::ABI_VERSION
            )));
        }
        Ok(())
    }

    /// A store for `state`, with its memory limiter and wall-clock deadline; the caller sets
    /// its fuel.
    fn store(&self, state: HostState) -> Store<HostState> {
        let tick = self.inner.config.epoch_tick.as_nanos().max(1);
        let ticks = state.limits.wall_time.as_nanos().div_ceil(tick).max(1);
        let mut store = Store::new(&self.inner.wasm, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        store
    }

    /// The plugins installed for the context's tenant, by name.
    ///
    /// # Errors
    /// An engine error.
    pub fn list_plugins(&self, ctx: &Context) -> Result<Vec<PluginInfo>, HostError> {
        let reserved = self.inner.engine.reserved_tables(ctx)?;
        self.list_with(&reserved)
    }

    /// The plugins installed for a tenant, for an operator.
    ///
    /// # Errors
    /// An engine error.
    pub fn list_plugins_for(
        &self,
        op: &Operator,
        tenant: TenantId,
    ) -> Result<Vec<PluginInfo>, HostError> {
        let reserved = self.inner.engine.reserved_handle(op, tenant)?;
        self.list_with(&reserved)
    }

    fn list_with(&self, reserved: &TenantHandle) -> Result<Vec<PluginInfo>, HostError> {
        let read = reserved.begin_read()?;
        let mut out = Vec::new();
        for item in read.scan_prefix(catalog::PLUGINS, b"")? {
            let (_, bytes) = item?;
            out.push(records::decode_plugin(&bytes)?);
        }
        Ok(out)
    }

    /// Removes plugin `name` of the context's tenant.
    ///
    /// # Errors
    /// [`HostError::UnknownPlugin`] or an engine error.
    pub fn remove(&self, ctx: &Context, name: &str) -> Result<(), HostError> {
        let reserved = self.inner.engine.reserved_tables(ctx)?;
        self.remove_with(&reserved, name)
    }

    /// Removes a tenant's plugin on its behalf, audited as the operator.
    ///
    /// # Errors
    /// As [`PluginHost::remove`].
    pub fn remove_for(&self, op: &Operator, tenant: TenantId, name: &str) -> Result<(), HostError> {
        let reserved = self.inner.engine.reserved_handle(op, tenant)?;
        self.remove_with(&reserved, name)
    }

    fn remove_with(&self, reserved: &TenantHandle, name: &str) -> Result<(), HostError> {
        catalog::validate_name(name)?;
        let mut txn = reserved.begin_write()?;
        let info = txn
            .get(catalog::PLUGINS, name.as_bytes())?
            .map(|bytes| records::decode_plugin(&bytes))
            .transpose()?
            .ok_or_else(|| HostError::UnknownPlugin(name.to_owned()))?;
        txn.delete(catalog::PLUGINS, name.as_bytes())?;
        let still_used = txn
            .scan_prefix(catalog::PLUGINS, b"")?
            .filter_map(Result::ok)
            .any(|(_, v)| records::decode_plugin(&v).is_ok_and(|p| p.version == info.version));
        if !still_used {
            txn.delete(catalog::CODE, info.version.as_bytes())?;
        }
        txn.audit_event(
            AuditEvent::new("plugin.remove")
                .target(name)
                .message(format!("version {}", info.version)),
        )?;
        txn.commit()?;
        self.inner.catalog.remove(reserved.tenant_id(), name);
        Ok(())
    }

    /// Overrides a tenant's limits; audited in its stream as the operator's. Memory is capped
    /// at [`HostConfig::pool_memory_bytes`].
    ///
    /// # Errors
    /// An engine error.
    pub fn set_limits(
        &self,
        op: &Operator,
        tenant: TenantId,
        limits: Limits,
    ) -> Result<(), HostError> {
        let reserved = self.inner.engine.reserved_handle(op, tenant)?;
        let mut txn = reserved.begin_write()?;
        txn.put(
            catalog::HOST,
            catalog::LIMITS_KEY,
            &records::encode_limits(&limits)?,
        )?;
        txn.audit_event(AuditEvent::new("plugin.set_limits").message(format!("{limits:?}")))?;
        txn.commit()?;
        self.inner.limits.write().insert(tenant, self.clamp(limits));
        Ok(())
    }

    fn clamp(&self, mut limits: Limits) -> Limits {
        limits.memory_bytes = limits.memory_bytes.min(self.inner.config.pool_memory_bytes);
        limits
    }

    /// The limits in force for the tenant of `reserved`, a handle on its reserved tables.
    fn limits(&self, reserved: &TenantHandle) -> Result<Limits, HostError> {
        let tenant = reserved.tenant_id();
        if let Some(limits) = self.inner.limits.read().get(&tenant) {
            return Ok(*limits);
        }
        let stored = reserved
            .begin_read()?
            .get(catalog::HOST, catalog::LIMITS_KEY)?
            .map(|bytes| records::decode_limits(&bytes))
            .transpose()?;
        let limits = self.clamp(stored.unwrap_or(self.inner.config.limits));
        self.inner.limits.write().insert(tenant, limits);
        Ok(limits)
    }

    /// The limits in force for a tenant.
    ///
    /// # Errors
    /// An engine error.
    pub fn limits_for(&self, op: &Operator, tenant: TenantId) -> Result<Limits, HostError> {
        self.limits(&self.inner.engine.reserved_handle(op, tenant)?)
    }

    /// The compiled plugin `name` of the tenant of `reserved`, compiling it on first use.
    fn plugin(
        &self,
        reserved: &TenantHandle,
        name: &str,
    ) -> Result<Arc<LoadedPlugin>, InvokeError> {
        let tenant = reserved.tenant_id();
        if let Some(plugin) = self.inner.catalog.get(tenant, name) {
            return Ok(plugin);
        }
        let info = catalog::record(reserved, name)?
            .ok_or_else(|| InvokeError::UnknownPlugin(name.to_owned()))?;
        let code = catalog::code(reserved, &info.version)?;
        // The version is the code's hash: stored code that does not match it was rewritten
        // behind the host's back (install validates and swaps; nothing else writes there).
        if blake3::hash(&code).to_hex().as_str() != info.version {
            return Err(InvokeError::Abi(format!(
                "the stored code of plugin {name:?} does not match its version {}: refusing to run it",
                info.version
            )));
        }
        let module = validate::compile(
            &self.inner.wasm,
            &code,
            usize::MAX,
            self.inner.config.compile_timeout,
        )?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&module)
            .map_err(|e| InvokeError::Abi(format!("{e:#}")))?;
        let plugin = Arc::new(LoadedPlugin::new(info, pre).map_err(InvokeError::Abi)?);
        self.inner.catalog.insert(tenant, Arc::clone(&plugin));
        Ok(plugin)
    }

    /// Compiled plugins the host holds in memory, one per installed plugin of a tenant that has
    /// used it since the host started (each holds its machine code and a memory image).
    /// Deleted tenants' plugins are dropped at the next invocation or install after the
    /// deletion.
    pub fn compiled_plugins(&self) -> usize {
        self.forget_deleted_tenants();
        self.inner.catalog.len()
    }

    /// Forgets what the host keeps in memory for tenants that were deleted (compiled plugins,
    /// each holding a memory image and a file descriptor; limits; counters), once per move of
    /// the engine's state generation: one atomic load when nothing changed. Without it, a
    /// service that deletes tenants grows without bound (found by the soak test: 620 deletions
    /// left 1,800 descriptors and 500 MiB behind).
    fn forget_deleted_tenants(&self) {
        let engine = &self.inner.engine;
        let generation = engine.state_generation();
        // A load first: a read-modify-write on every invocation would bounce this cache line
        // between the cores of concurrent invocations.
        let swept = &self.inner.swept_generation;
        if swept.load(Ordering::Acquire) == generation
            || swept.swap(generation, Ordering::AcqRel) == generation
        {
            return;
        }
        let gone = |tenant: TenantId| {
            !matches!(
                engine.tenant_state(tenant),
                Ok(state) if state != tenantry_engine::TenantState::Deleted
            )
        };
        self.inner.catalog.forget(gone);
        self.inner.limits.write().retain(|tenant, _| !gone(*tenant));
        self.inner
            .running
            .write()
            .retain(|tenant, _| !gone(*tenant));
    }

    /// Forgets the tenant's cached plugins and limits if another engine on the same database
    /// changed its reserved tables (installed or removed a plugin, set limits) since they were
    /// read. Versions only grow, so 0 means nothing was ever written there: on redb it is
    /// always 0, and this costs a match.
    fn revalidate(&self, tenant: TenantId) -> Result<(), tenantry_engine::Error> {
        let version = self.inner.engine.reserved_tables_version(tenant)?;
        if version == 0 || self.inner.reserved_versions.read().get(&tenant) == Some(&version) {
            return Ok(());
        }
        self.inner.catalog.forget(|t| t == tenant);
        self.inner.limits.write().remove(&tenant);
        self.inner.reserved_versions.write().insert(tenant, version);
        Ok(())
    }

    /// After this host wrote the tenant's reserved tables itself, and updated its caches to
    /// match: the new version is the one they were read at.
    fn mark_current(&self, tenant: TenantId) -> Result<(), tenantry_engine::Error> {
        let version = self.inner.engine.reserved_tables_version(tenant)?;
        if version != 0 {
            self.inner.reserved_versions.write().insert(tenant, version);
        }
        Ok(())
    }

    fn tenant_counter(&self, tenant: TenantId) -> Arc<AtomicU32> {
        if let Some(c) = self.inner.running.read().get(&tenant) {
            return Arc::clone(c);
        }
        Arc::clone(self.inner.running.write().entry(tenant).or_default())
    }

    /// Calls `function` of plugin `plugin` for the context's tenant with `input`, in a fresh
    /// instance, in one transaction: everything it wrote commits when it returns success and
    /// is rolled back otherwise. Returns once its audit entries are durable.
    ///
    /// # Errors
    /// An [`InvokeError`] naming what went wrong: unknown plugin or function, a limit (and its
    /// value), a trap, the plugin's own error, or an engine error.
    pub fn invoke(
        &self,
        ctx: &Context,
        plugin: &str,
        function: &str,
        input: &[u8],
    ) -> Result<Vec<u8>, InvokeError> {
        let started = Instant::now();
        self.forget_deleted_tenants();
        // A component's handle: the invocation records its host calls (`kv.get`, ...) and its
        // outcome (`plugin.invoke`), which request code may not.
        let handle = self.inner.engine.component_handle(ctx)?;
        let tenant = handle.tenant_id();
        self.revalidate(tenant)?;
        let cached = (
            self.inner.limits.read().get(&tenant).copied(),
            self.inner.catalog.get(tenant, plugin),
        );
        let (limits, loaded) = match cached {
            (Some(limits), Some(loaded)) => (limits, loaded),
            _ => {
                let reserved = self.inner.engine.reserved_tables(ctx)?;
                (self.limits(&reserved)?, self.plugin(&reserved, plugin)?)
            }
        };
        let Some(&export) = loaded.function(function) else {
            return Err(InvokeError::UnknownFunction {
                plugin: plugin.to_owned(),
                function: function.chars().take(100).collect(),
            });
        };
        let id = self.inner.next_invocation.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "tenantry.invoke",
            tenant = tenant.get(),
            plugin,
            function,
            invocation = id,
            duration_us = tracing::field::Empty,
            fuel = tracing::field::Empty,
            host_calls = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let _entered = span.enter();
        let counter = self.tenant_counter(tenant);
        let audit = self.inner.config.audit_host_calls;
        // The deadline runs from here: compiling the plugin on its first use is not the
        // guest's time (the store's epoch deadline is set from here too).
        let mut state = HostState::new(Some(handle), loaded, id, limits, audit, Instant::now());
        state.pool_instances = self.inner.config.pool_instances;
        let (state, result) = if input.len() > limits.input_bytes as usize {
            let len = input.len();
            (
                state,
                Err(InvokeError::InputTooLarge {
                    len,
                    limit: limits.input_bytes,
                }),
            )
        } else {
            let slots = take_slot(&counter, limits.concurrency, "tenant concurrency").and_then(
                |tenant_slot| {
                    let pool = take_slot(
                        &self.inner.pool_in_use,
                        self.inner.config.pool_instances,
                        "instance pool",
                    )?;
                    Ok((tenant_slot, pool))
                },
            );
            let _slots = match slots {
                Ok(slots) => slots,
                // Refused before it ran: nothing happened, nothing to roll back.
                Err(busy) => return Err(record_outcome(&span, started, busy)),
            };
            let mut store = self.store(state);
            let result = match store.set_fuel(limits.fuel) {
                Ok(()) => invoke::run(&mut store, &export, function, input),
                Err(e) => Err(InvokeError::Abi(format!("fuel could not be set: {e}"))),
            };
            if !span.is_disabled() {
                let fuel = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
                span.record("fuel", fuel);
                span.record("host_calls", store.data().host_calls);
            }
            (store.into_data(), result)
        };
        // wasmtime's pool stayed full until the deadline: refused before any guest code ran,
        // and not recorded, like the host's own `Busy`.
        let result = match result {
            Err(busy @ InvokeError::Busy { .. }) => {
                return Err(record_outcome(&span, started, busy));
            }
            other => other,
        };
        match invoke::finish(state, function, result) {
            Ok(output) => {
                if !span.is_disabled() {
                    span.record("duration_us", started.elapsed().as_micros() as u64);
                    span.record("outcome", "ok");
                }
                tracing::debug!("invocation finished");
                Ok(output)
            }
            Err(err) => Err(record_outcome(&span, started, err)),
        }
    }
}

/// Records a failed invocation's outcome on its span; returns the error.
fn record_outcome(span: &tracing::Span, started: Instant, err: InvokeError) -> InvokeError {
    if !span.is_disabled() {
        span.record("duration_us", started.elapsed().as_micros() as u64);
        span.record("outcome", tracing::field::display(&err));
    }
    tracing::debug!("invocation finished");
    err
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").finish_non_exhaustive()
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
