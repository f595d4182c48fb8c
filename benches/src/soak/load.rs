//! The mixed load: tenant slots, the worker threads (commits, reads, scans, invocations,
//! hostile calls), the operator thread (state changes, deletion and re-creation, checkpoints,
//! audit verification, in the `operator` module) and the governor that paces the workers to a
//! CPU budget.
//!
//! Each slot holds one tenant at a time. The operator thread changes a slot's state or
//! replaces its tenant; before it makes a tenant unavailable it marks the slot, and it bumps
//! the slot's epoch around every change, so a worker can tell whether a refusal it got
//! (suspended, read-only, deleted) was caused by the load or is a bug.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tenantry_engine::{Context, Engine, Error, KeyValue, Operator, Quota, TenantId};
use tenantry_host::PluginHost;
use tenantry_tests::plugins;

mod operator;

use super::hostile::{self, Case, Refused};
use super::tally::{Allowed, Op, Tally};

/// The engine table the workers write.
const TABLE: &str = "kv";
/// Keys per tenant: `k0000` to `k0999`.
const KEYS: u32 = 1000;
/// Quota of the quota-limited tenants beyond what their plugins take (the plugins' code is
/// stored in the tenant's reserved tables and counts against its quota): small enough that
/// their writers hit it within seconds.
const QUOTA_DATA_BYTES: u64 = 96 << 10;
/// Key quota beyond the plugins' keys.
const QUOTA_DATA_KEYS: u64 = 100;

const ACTIVE: u8 = 0;
const READ_ONLY: u8 = 1;
const SUSPENDED: u8 = 2;
const REPLACING: u8 = 3;

/// What a slot's tenants are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Quota,
    Hostile,
}

/// One tenant at a time, replaced by the operator thread.
struct Slot {
    index: usize,
    kind: Kind,
    tenant: AtomicU64,
    generation: AtomicU64,
    state: AtomicU8,
    epoch: AtomicU64,
}

/// A slot's tenant as a worker saw it when it began an operation.
struct Ticket {
    tenant: TenantId,
    epoch: u64,
}

impl Slot {
    fn ticket(&self) -> Ticket {
        let epoch = self.epoch.load(Ordering::SeqCst);
        Ticket {
            tenant: TenantId::from_raw(self.tenant.load(Ordering::SeqCst)),
            epoch,
        }
    }

    /// What an operation begun with `ticket` may be refused for.
    fn allowed(&self, ticket: &Ticket) -> Allowed {
        Allowed {
            state: self.state.load(Ordering::SeqCst) != ACTIVE
                || self.epoch.load(Ordering::SeqCst) != ticket.epoch,
            quota: self.kind == Kind::Quota,
        }
    }

    fn mark(&self, state: u8) {
        self.state.store(state, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// Settings of the load, from [`super::SoakConfig`].
pub(crate) struct LoadOptions {
    pub(crate) tenants: usize,
    pub(crate) workers: usize,
    pub(crate) cpu_cores: f64,
    pub(crate) chaos_every: Duration,
    pub(crate) checkpoint_every: Duration,
    pub(crate) seed: u64,
    pub(crate) remove_plugins_first: bool,
}

/// Everything the threads of a run share.
pub(crate) struct Load<'a> {
    engine: &'a Engine,
    host: &'a PluginHost,
    tally: &'a Tally,
    options: LoadOptions,
    op: Operator,
    slots: Vec<Slot>,
    modules: Vec<(&'static str, Vec<u8>)>,
    cases: Vec<Case>,
    refused: Vec<Refused>,
    stop: AtomicBool,
    pause_micros: AtomicU64,
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

/// A value that starts with its key, so that readers can check what they get.
fn value(key: &[u8], len: usize) -> Vec<u8> {
    let mut v = key.to_vec();
    v.resize(len.max(key.len()), b'v');
    v
}

impl<'a> Load<'a> {
    /// Creates the slots' first tenants, with their quotas, limits and plugins.
    ///
    /// # Errors
    /// Any failure of the set-up.
    pub(crate) fn new(
        engine: &'a Engine,
        host: &'a PluginHost,
        tally: &'a Tally,
        options: LoadOptions,
    ) -> Result<Self, String> {
        let slots = (0..options.tenants.max(3))
            .map(|index| Slot {
                index,
                // Every 8th slot hostile, the one after it quota-limited, the rest plain.
                kind: match index % 8 {
                    0 => Kind::Hostile,
                    1 => Kind::Quota,
                    _ => Kind::Plain,
                },
                tenant: AtomicU64::new(0),
                generation: AtomicU64::new(0),
                state: AtomicU8::new(REPLACING),
                epoch: AtomicU64::new(0),
            })
            .collect();
        let mut load = Load {
            engine,
            host,
            tally,
            options,
            op: Operator::new("ops:soak"),
            slots,
            modules: hostile::modules()?,
            cases: Vec::new(),
            refused: hostile::refused()?,
            stop: AtomicBool::new(false),
            pause_micros: AtomicU64::new(1000),
        };
        for slot in &load.slots {
            load.provision(slot)?;
        }
        let hostile = load
            .slots
            .iter()
            .find(|s| s.kind == Kind::Hostile)
            .ok_or("no hostile slot")?;
        let oob = host
            .list_plugins_for(&load.op, hostile.ticket().tenant)
            .map_err(|e| format!("list plugins: {e}"))?
            .into_iter()
            .find(|p| p.name == "oob")
            .ok_or("the oob module is not installed")?;
        load.cases = hostile::cases(&oob.exports);
        Ok(load)
    }

    /// Creates a new tenant for `slot` and makes it the slot's.
    fn provision(&self, slot: &Slot) -> Result<(), String> {
        let generation = slot.generation.fetch_add(1, Ordering::SeqCst);
        let name = format!("s{}-g{generation}", slot.index);
        let op = &self.op;
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what} {name}: {e}");
        let t = self
            .engine
            .create_tenant(op, &name)
            .map_err(|e| fail("create", &e))?;
        for (plugin, wasm) in [
            ("counter", plugins::COUNTER),
            ("projects", plugins::PROJECTS),
        ] {
            self.host
                .install_for(op, t, plugin, wasm)
                .map_err(|e| fail(&format!("install {plugin} for"), &e))?;
        }
        match slot.kind {
            Kind::Quota => {
                let usage = self
                    .engine
                    .tenant_info(t)
                    .map_err(|e| fail("read usage of", &e))?
                    .usage;
                let quota = Quota {
                    max_bytes: Some(usage.bytes + QUOTA_DATA_BYTES),
                    max_keys: Some(usage.keys + QUOTA_DATA_KEYS),
                };
                self.engine
                    .set_quota(op, t, quota)
                    .map_err(|e| fail("set quota of", &e))?;
            }
            Kind::Hostile => {
                self.host
                    .set_limits(op, t, hostile::limits())
                    .map_err(|e| fail("set limits of", &e))?;
                for (plugin, wasm) in &self.modules {
                    self.host
                        .install_for(op, t, plugin, wasm)
                        .map_err(|e| fail(&format!("install {plugin} for"), &e))?;
                }
            }
            Kind::Plain => {}
        }
        slot.tenant.store(t.get(), Ordering::SeqCst);
        slot.mark(ACTIVE);
        Ok(())
    }

    /// Tells every thread to finish its operation and return.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Workers to start.
    pub(crate) fn workers(&self) -> usize {
        self.options.workers.max(1)
    }

    fn pick<'s>(&'s self, rng: &mut StdRng, kinds: &[Kind]) -> &'s Slot {
        loop {
            let slot = &self.slots[rng.random_range(0..self.slots.len())];
            if kinds.contains(&slot.kind) {
                return slot;
            }
        }
    }

    /// Worker `w`: random operations, paced by the governor, until stopped.
    pub(crate) fn worker(&self, w: usize) {
        let mut rng = StdRng::seed_from_u64(self.options.seed ^ ((w as u64 + 1) * 0x9E37));
        let actor = format!("soak:worker{w}");
        let any = [Kind::Plain, Kind::Quota, Kind::Hostile];
        let benign = [Kind::Plain, Kind::Quota];
        while !self.stopped() {
            let roll = rng.random_range(0..100);
            let slot = match roll {
                0..68 => self.pick(&mut rng, &any),
                68..88 => self.pick(&mut rng, &benign),
                _ => self.pick(&mut rng, &[Kind::Hostile]),
            };
            let ticket = slot.ticket();
            let ctx = Context::tenant(ticket.tenant).actor(actor.as_str());
            match roll {
                // Hostile calls are few: each fills the audit log with the host calls it made
                // (up to the 500 allowed), which is most of the file's growth.
                0..32 => self.commit(&mut rng, slot, &ticket, &ctx),
                32..58 => self.get(&mut rng, slot, &ticket, &ctx),
                58..68 => self.scan(&mut rng, slot, &ticket, &ctx),
                68..88 => self.invoke(&mut rng, slot, &ticket, &ctx),
                88..95 => self.hostile(&mut rng, slot, &ticket, &ctx),
                95..98 => self.rollback_check(slot, &ticket, &ctx),
                _ => self.refused_install(&mut rng, slot, &ticket, &ctx),
            }
            let pause = self.pause_micros.load(Ordering::Relaxed);
            if pause > 0 {
                std::thread::sleep(Duration::from_micros(pause));
            }
        }
    }

    fn commit(&self, rng: &mut StdRng, slot: &Slot, ticket: &Ticket, ctx: &Context) {
        self.tally.op(Op::Commit);
        let result = (|| -> Result<(), Error> {
            let handle = self.engine.tenant(ctx)?;
            let mut tx = handle.begin_write()?;
            for _ in 0..rng.random_range(1..=8) {
                let k = key(rng.random_range(0..KEYS));
                if rng.random_bool(0.2) {
                    tx.delete(TABLE, &k)?;
                } else {
                    tx.put(TABLE, &k, &value(&k, rng.random_range(64..2048)))?;
                }
            }
            tx.audit("soak.write", Some("puts and deletes"))?;
            tx.commit().map(drop)
        })();
        if let Err(e) = result {
            self.tally.engine_error("commit", &e, slot.allowed(ticket));
        }
    }

    fn get(&self, rng: &mut StdRng, slot: &Slot, ticket: &Ticket, ctx: &Context) {
        self.tally.op(Op::Get);
        let k = key(rng.random_range(0..KEYS));
        let result = (|| self.engine.tenant(ctx)?.begin_read()?.get(TABLE, &k))();
        match result {
            Ok(Some(v)) if !v.starts_with(&k) => self.tally.unexpected(format!(
                "get {:?} of {}: a value that does not start with its key",
                String::from_utf8_lossy(&k),
                ticket.tenant
            )),
            Ok(_) => {}
            Err(e) => self.tally.engine_error("get", &e, slot.allowed(ticket)),
        }
    }

    fn scan(&self, rng: &mut StdRng, slot: &Slot, ticket: &Ticket, ctx: &Context) {
        self.tally.op(Op::Scan);
        let from = key(rng.random_range(0..KEYS));
        let limit = rng.random_range(10..=100);
        let result = (|| -> Result<Vec<KeyValue>, Error> {
            let read = self.engine.tenant(ctx)?.begin_read()?;
            read.range(TABLE, (Bound::Included(&from[..]), Bound::Unbounded))?
                .take(limit)
                .collect()
        })();
        match result {
            Ok(entries) => {
                let sorted = entries.windows(2).all(|w| w[0].0 < w[1].0);
                let in_range = entries.first().is_none_or(|(k, _)| *k >= from);
                let intact = entries.iter().all(|(k, v)| v.starts_with(k));
                if !(sorted && in_range && intact) {
                    self.tally.unexpected(format!(
                        "scan of {} from {:?}: sorted {sorted}, in range {in_range}, intact {intact}",
                        ticket.tenant,
                        String::from_utf8_lossy(&from)
                    ));
                }
            }
            Err(e) => self.tally.engine_error("scan", &e, slot.allowed(ticket)),
        }
    }

    fn invoke(&self, rng: &mut StdRng, slot: &Slot, ticket: &Ticket, ctx: &Context) {
        self.tally.op(Op::Invoke);
        let id = rng.random_range(1..50).to_string();
        let (plugin, function, input) = match rng.random_range(0..5) {
            0 => ("counter", "increment", ""),
            1 => ("counter", "get", ""),
            2 => ("projects", "create", r#"{"name":"soak project"}"#),
            3 => ("projects", "list", r#"{"limit":20}"#),
            _ => ("projects", "get", id.as_str()),
        };
        match self.host.invoke(ctx, plugin, function, input.as_bytes()) {
            Ok(out) if out.is_empty() => self.tally.unexpected(format!(
                "{plugin}.{function} of {}: empty output",
                ticket.tenant
            )),
            Ok(_) => {}
            Err(e) => {
                let what = format!("{plugin}.{function}");
                self.tally.invoke_error(&what, &e, slot.allowed(ticket));
            }
        }
    }

    fn hostile(&self, rng: &mut StdRng, slot: &Slot, ticket: &Ticket, ctx: &Context) {
        self.tally.op(Op::Hostile);
        let Some(case) = self.cases.get(rng.random_range(0..self.cases.len().max(1))) else {
            return;
        };
        let what = format!("hostile {}.{}", case.plugin, case.function);
        match self
            .host
            .invoke(ctx, case.plugin, &case.function, &case.input)
        {
            Ok(out) if case.contained(&out) => {
                self.tally.refused(&format!("contained.{}", case.function));
            }
            // The `*_until_refused` functions report a status when their first host call is
            // refused, which a read-only tenant's first write is.
            Ok(out)
                if slot.allowed(ticket).state
                    && String::from_utf8_lossy(&out).contains("\"status\":\"") =>
            {
                self.tally.refused("hostile.status(tenant not active)");
            }
            Ok(out) => self.tally.unexpected(format!(
                "{what} of {} succeeded: {:?}",
                ticket.tenant,
                String::from_utf8_lossy(&out[..out.len().min(200)])
            )),
            Err(e) => self
                .tally
                .hostile_error(&what, &e, case.expect, slot.allowed(ticket)),
        }
    }

    /// Every write of a hostile plugin is rolled back: its table must stay empty.
    fn rollback_check(&self, slot: &Slot, ticket: &Ticket, ctx: &Context) {
        self.tally.op(Op::RollbackCheck);
        let result = (|| -> Result<Option<Vec<u8>>, Error> {
            let read = self.engine.tenant(ctx)?.begin_read()?;
            match read.scan_prefix("hostile", b"")?.next() {
                Some(entry) => entry.map(|(k, _)| Some(k)),
                None => Ok(None),
            }
        })();
        match result {
            Ok(None) => {}
            Ok(Some(k)) => self.tally.unexpected(format!(
                "a hostile plugin's rolled-back write is visible in {}: key {k:?}",
                ticket.tenant
            )),
            Err(e) => self
                .tally
                .engine_error("rollback check", &e, slot.allowed(ticket)),
        }
    }

    fn refused_install(&self, rng: &mut StdRng, slot: &Slot, ticket: &Ticket, ctx: &Context) {
        self.tally.op(Op::RefusedInstall);
        let Some(module) = self
            .refused
            .get(rng.random_range(0..self.refused.len().max(1)))
        else {
            return;
        };
        let what = format!("install {}", module.name);
        match self.host.install(ctx, "refused", &module.wasm) {
            Ok(info) => self
                .tally
                .unexpected(format!("{what} into {} succeeded: {info:?}", ticket.tenant)),
            Err(e) => self
                .tally
                .install_error(&what, &e, module.expect, slot.allowed(ticket)),
        }
    }
}
