//! Installed plugins: stored in the tenant's reserved tables, compiled once per version.
//!
//! | reserved table   | key          | value                                                 |
//! |------------------|--------------|-------------------------------------------------------|
//! | `_plugins`       | plugin name  | a versioned [`PluginInfo`] record (`crate::records`)  |
//! | `_plugin_code`   | version      | the wasm bytes                                        |
//! | `_host`          | `limits`     | a versioned [`crate::Limits`] record, the override    |
//!
//! The version is the BLAKE3 hash of the wasm bytes (hex), so the same bytes are stored once
//! per tenant. The in-memory catalog maps `(tenant, name)` to an `Arc<LoadedPlugin>`; installing
//! swaps the `Arc`, so invocations in flight finish on the version they started with.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tenantry_engine::{TenantHandle, TenantId};
use tenantry_sdk::wire;
use wasmtime::{InstancePre, ModuleExport};

use crate::error::HostError;
use crate::invoke::HostState;

pub(crate) const PLUGINS: &str = "_plugins";
pub(crate) const CODE: &str = "_plugin_code";
pub(crate) const HOST: &str = "_host";
pub(crate) const LIMITS_KEY: &[u8] = b"limits";

/// What a tenant has installed, as listed by [`crate::PluginHost::list_plugins`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PluginInfo {
    /// The name it was installed under.
    pub name: String,
    /// Its version: the BLAKE3 hash of the wasm bytes, in hex.
    pub version: String,
    /// The plugin functions it exports, sorted.
    pub exports: Vec<String>,
    /// Size of the module in bytes.
    pub size: u64,
    /// When it was installed, in microseconds since the Unix epoch.
    pub installed_micros: i64,
}

/// A compiled plugin version, ready to instantiate.
pub(crate) struct LoadedPlugin {
    pub(crate) info: PluginInfo,
    pub(crate) pre: InstancePre<HostState>,
    /// The ABI exports, found once per version so that an invocation looks nothing up by name.
    pub(crate) memory: ModuleExport,
    pub(crate) alloc: ModuleExport,
    /// The plugin functions, sorted by name as [`PluginInfo::exports`] is.
    functions: Vec<(String, ModuleExport)>,
}

impl LoadedPlugin {
    /// Indexes the exports of a module that passed [`crate::validate::check_abi`].
    ///
    /// # Errors
    /// A message naming an export the module lacks.
    pub(crate) fn new(info: PluginInfo, pre: InstancePre<HostState>) -> Result<Self, String> {
        let module = pre.module();
        let index = |name: &str| {
            module
                .get_export_index(name)
                .ok_or_else(|| format!("the module exports no `{name}`"))
        };
        let memory = index(wire::export::MEMORY)?;
        let alloc = index(wire::export::ALLOC)?;
        let mut functions = info
            .exports
            .iter()
            .map(|name| Ok((name.clone(), index(name)?)))
            .collect::<Result<Vec<_>, String>>()?;
        functions.sort_by(|(a, _), (b, _)| a.cmp(b));
        Ok(LoadedPlugin {
            info,
            pre,
            memory,
            alloc,
            functions,
        })
    }

    /// The export index of plugin function `name`, if the plugin has one.
    pub(crate) fn function(&self, name: &str) -> Option<&ModuleExport> {
        self.functions
            .binary_search_by(|(f, _)| f.as_str().cmp(name))
            .ok()
            .and_then(|i| self.functions.get(i))
            .map(|(_, export)| export)
    }
}

/// The in-memory view of installed plugins.
#[derive(Default)]
pub(crate) struct Catalog {
    loaded: RwLock<HashMap<TenantId, HashMap<String, Arc<LoadedPlugin>>>>,
}

impl Catalog {
    pub(crate) fn get(&self, tenant: TenantId, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.loaded.read().get(&tenant)?.get(name).cloned()
    }

    pub(crate) fn insert(&self, tenant: TenantId, plugin: Arc<LoadedPlugin>) {
        let name = plugin.info.name.clone();
        self.loaded
            .write()
            .entry(tenant)
            .or_default()
            .insert(name, plugin);
    }

    /// Compiled plugins held.
    pub(crate) fn len(&self) -> usize {
        self.loaded.read().values().map(HashMap::len).sum()
    }

    /// Drops every plugin of the tenants for which `gone` holds.
    pub(crate) fn forget(&self, mut gone: impl FnMut(TenantId) -> bool) {
        self.loaded.write().retain(|tenant, _| !gone(*tenant));
    }

    pub(crate) fn remove(&self, tenant: TenantId, name: &str) {
        if let Some(plugins) = self.loaded.write().get_mut(&tenant) {
            plugins.remove(name);
        }
    }
}

/// The stored record of `name`, if installed.
pub(crate) fn record(reserved: &TenantHandle, name: &str) -> Result<Option<PluginInfo>, HostError> {
    Ok(reserved
        .begin_read()?
        .get(PLUGINS, name.as_bytes())?
        .map(|bytes| crate::records::decode_plugin(&bytes))
        .transpose()?)
}

/// The wasm bytes of `version`.
pub(crate) fn code(reserved: &TenantHandle, version: &str) -> Result<Vec<u8>, HostError> {
    reserved
        .begin_read()?
        .get(CODE, version.as_bytes())?
        .ok_or_else(|| {
            HostError::InvalidModule(format!("the code of version {version} is missing"))
        })
}

/// Plugin names: 1 to 64 bytes of `[a-z0-9_-]`, starting with a letter or digit (the rule of
/// tenant names).
pub(crate) fn validate_name(name: &str) -> Result<(), HostError> {
    tenantry_engine::check_identifier(name, 64).map_err(|reason| HostError::InvalidName {
        name: name.chars().take(80).collect(),
        reason,
    })
}
