//! The operator thread (state changes and restores, deletion with re-creation, checkpoints,
//! audit verification) and the governor that paces the workers to a CPU budget.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tenantry_engine::{TenantId, TenantState};

use super::{ACTIVE, Load, READ_ONLY, REPLACING, SUSPENDED, Slot};
use crate::soak::tally::{Allowed, Op};

impl Load<'_> {
    /// The operator: state changes and restores, deletions with re-creation, checkpoints and
    /// audit verification, until stopped.
    pub(crate) fn operator(&self) {
        let mut rng = StdRng::seed_from_u64(self.options.seed ^ 0x0BE7_A70F);
        let mut restores: Vec<(Instant, usize)> = Vec::new();
        let started = Instant::now();
        let jitter = |rng: &mut StdRng, every: Duration| every.mul_f64(rng.random_range(0.5..1.5));
        let mut next_chaos = started + jitter(&mut rng, self.options.chaos_every);
        let mut next_checkpoint = started + self.options.checkpoint_every;
        let verify_every = self.options.checkpoint_every * 3;
        let mut next_verify = started + verify_every;
        while !self.stopped() {
            std::thread::sleep(Duration::from_millis(20));
            let now = Instant::now();
            restores.retain(|&(due, index)| {
                if due > now {
                    return true;
                }
                self.restore(&self.slots[index]);
                false
            });
            if now >= next_chaos {
                next_chaos = now + jitter(&mut rng, self.options.chaos_every);
                let slot = &self.slots[rng.random_range(0..self.slots.len())];
                if slot.state.load(Ordering::SeqCst) == ACTIVE {
                    match rng.random_range(0..10) {
                        0..3 => self.change_state(slot, SUSPENDED),
                        3..6 => self.change_state(slot, READ_ONLY),
                        _ => self.replace(slot),
                    }
                    if slot.state.load(Ordering::SeqCst) != ACTIVE {
                        let hold = Duration::from_millis(rng.random_range(200..1500));
                        restores.push((Instant::now() + hold, slot.index));
                    }
                }
            }
            if now >= next_checkpoint {
                next_checkpoint = now + self.options.checkpoint_every;
                self.tally.op(Op::Checkpoint);
                if let Err(e) = self.engine.checkpoint() {
                    self.tally
                        .engine_error("checkpoint", &e, Allowed::default());
                }
            }
            if now >= next_verify {
                next_verify = now + verify_every;
                let slot = &self.slots[rng.random_range(0..self.slots.len())];
                let ticket = slot.ticket();
                self.tally.op(Op::VerifyAudit);
                if let Err(e) = self.engine.verify_audit(ticket.tenant) {
                    self.tally
                        .engine_error("verify audit", &e, slot.allowed(&ticket));
                }
            }
        }
        for (_, index) in restores {
            self.restore(&self.slots[index]);
        }
    }

    fn change_state(&self, slot: &Slot, state: u8) {
        self.tally.op(Op::StateChange);
        // Marked first, so that a worker refused by the new state finds it allowed.
        slot.mark(state);
        let target = if state == SUSPENDED {
            TenantState::Suspended
        } else {
            TenantState::ReadOnly
        };
        let tenant = slot.ticket().tenant;
        if let Err(e) = self.engine.set_tenant_state(&self.op, tenant, target) {
            self.tally.engine_error("set state", &e, Allowed::default());
        }
    }

    fn restore(&self, slot: &Slot) {
        self.tally.op(Op::StateChange);
        let tenant = slot.ticket().tenant;
        if let Err(e) = self
            .engine
            .set_tenant_state(&self.op, tenant, TenantState::Active)
        {
            self.tally
                .engine_error("restore state", &e, Allowed::default());
        }
        slot.mark(ACTIVE);
    }

    /// Deletes the slot's tenant (the purge included) and gives the slot a new one.
    fn replace(&self, slot: &Slot) {
        self.tally.op(Op::Recreate);
        slot.mark(REPLACING);
        let tenant = slot.ticket().tenant;
        if self.options.remove_plugins_first {
            self.remove_plugins(tenant);
        }
        if let Err(e) = self.engine.delete_tenant(&self.op, tenant) {
            self.tally.engine_error("delete", &e, Allowed::default());
        }
        if let Err(e) = self.provision(slot) {
            self.tally
                .unexpected(format!("re-create slot {}: {e}", slot.index));
            // Leave the slot marked, so that workers' refusals on the deleted tenant count
            // as refusals; the unexpected error above already fails the run.
        }
    }

    /// Removes every plugin of `tenant`: the only way to make the host drop the compiled
    /// modules of a tenant about to be deleted (`PluginHost` never learns of a deletion).
    fn remove_plugins(&self, tenant: TenantId) {
        let plugins = match self.host.list_plugins_for(&self.op, tenant) {
            Ok(plugins) => plugins,
            Err(e) => {
                return self
                    .tally
                    .unexpected(format!("list plugins of {tenant}: {e}"));
            }
        };
        for plugin in plugins {
            if let Err(e) = self.host.remove_for(&self.op, tenant, &plugin.name) {
                self.tally
                    .unexpected(format!("remove {} of {tenant}: {e}", plugin.name));
            }
        }
    }

    /// The governor: every 250 ms, lengthens or shortens the workers' pause between operations
    /// so that the process uses about `cpu_cores` cores.
    pub(crate) fn governor(&self) {
        let mut last = (
            Instant::now(),
            crate::soak::sample::cpu_time().unwrap_or_default(),
        );
        while !self.stopped() {
            std::thread::sleep(Duration::from_millis(250));
            let Ok(cpu) = crate::soak::sample::cpu_time() else {
                continue;
            };
            let now = Instant::now();
            let used = cpu.saturating_sub(last.1).as_secs_f64()
                / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, cpu);
            let pause = self.pause_micros.load(Ordering::Relaxed) as f64;
            let next = if used > self.options.cpu_cores * 1.05 {
                pause * 1.2 + 50.0
            } else if used < self.options.cpu_cores * 0.95 {
                pause / 1.2
            } else {
                pause
            };
            self.pause_micros
                .store(next.clamp(0.0, 200_000.0) as u64, Ordering::Relaxed);
        }
    }

    /// The workers' current pause between operations.
    pub(crate) fn pause(&self) -> Duration {
        Duration::from_micros(self.pause_micros.load(Ordering::Relaxed))
    }
}
