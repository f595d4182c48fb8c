//! Target `engine_model`: engine operations checked against a `BTreeMap` model, on a disk that
//! fails after a countdown (the design of redb's fuzzer, `fuzz/fuzz_targets/fuzz_redb.rs`).
//!
//! The input picks the setup (with or without the write-ahead log, the I/O budget, the
//! checkpoint size) and a list of operations on up to three tenants and three tables: puts,
//! deletes, reads and scans inside and outside a write transaction, commit and abort, tenant
//! creation, state changes and deletion, checkpoints and reopening.
//!
//! * Until the first injected failure, every result equals the model's, and every error is the
//!   one the model's tenant state calls for.
//! * After it, an operation may fail with any error, but never panic, and what it returns on
//!   success still equals the model. The first change whose outcome is unknown (an error after
//!   the failure) ends the session: the engine is dropped, and a copy of the disk as a crash
//!   could leave it (the synced bytes only, or everything written) is opened without faults.
//! * After every reopen the tenants' states and data equal the model, where the one unknown
//!   change is either wholly applied or not at all, and every tenant's audit chain verifies.

mod disk;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use tenantry_engine::{
    Context, Durability, Engine, EngineOptions, Error, Operator, TenantId, TenantState, WriteTxn,
};

use crate::in_bounds;
use disk::{Countdown, File};

const TABLES: [&str; 3] = ["t0", "t1", "t2"];
const MAX_TENANTS: usize = 3;
/// Operations run per input at most (each reopen costs an engine start).
const MAX_OPS: usize = 64;

/// A user key from a small alphabet, so that operations meet each other's keys.
#[derive(Debug, Clone, Copy, Arbitrary)]
struct Key(u8, u8);

impl Key {
    fn bytes(self) -> Vec<u8> {
        const ALPHABET: [u8; 4] = [0x00, 0x01, b'a', 0xFF];
        let len = usize::from(self.0 % 4);
        (0..len)
            .map(|i| ALPHABET[usize::from((self.1 >> (2 * i)) & 3)])
            .collect()
    }
}

/// A value: short, or a few KiB so that pages split.
#[derive(Debug, Clone, Copy, Arbitrary)]
struct Val(u8, u8);

impl Val {
    fn bytes(self) -> Vec<u8> {
        let len = if self.1 & 0x80 != 0 {
            usize::from(self.1 & 0x7F) * 64
        } else {
            usize::from(self.1 % 16)
        };
        vec![self.0; len]
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    Put {
        tenant: u8,
        table: u8,
        key: Key,
        value: Val,
    },
    Delete {
        tenant: u8,
        table: u8,
        key: Key,
    },
    Get {
        tenant: u8,
        table: u8,
        key: Key,
        in_txn: bool,
    },
    Range {
        tenant: u8,
        table: u8,
        start: Option<Key>,
        end: Option<Key>,
        end_included: bool,
        in_txn: bool,
    },
    Prefix {
        tenant: u8,
        table: u8,
        prefix: Key,
        in_txn: bool,
    },
    Commit,
    Abort,
    CreateTenant,
    SetState {
        tenant: u8,
        state: u8,
    },
    DeleteTenant {
        tenant: u8,
    },
    Checkpoint,
    Reopen {
        synced_only: bool,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    with_log: bool,
    /// I/O calls before the disk fails; `None`: it never does.
    budget: Option<u16>,
    /// After the failure, reopen the synced bytes only (else everything written).
    crash_synced_only: bool,
    checkpoint_kib: u8,
    ops: Vec<Op>,
}

type Data = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct TenantModel {
    id: TenantId,
    name: String,
    state: TenantState,
    data: Data,
}

/// What the engine holds, as the model sees it.
type Model = Vec<TenantModel>;

/// A change whose outcome is unknown: the model with it applied.
#[derive(Debug)]
enum Unknown {
    Model(Model),
    /// A tenant creation: its id is unknown too.
    Create(String),
}

/// Which keys a scan reads.
#[derive(Debug, Clone, Copy)]
enum Selector<'a> {
    Range((Bound<&'a [u8]>, Bound<&'a [u8]>)),
    Prefix(&'a [u8]),
}

/// The open write transaction, with its buffered changes.
struct Open {
    tenant: usize,
    txn: WriteTxn,
    staged: BTreeMap<(usize, Vec<u8>), Option<Vec<u8>>>,
}

struct World {
    model: Model,
    countdown: Arc<Countdown>,
    db: File,
    log: Option<File>,
    options: EngineOptions,
    engine: Option<Engine>,
    open: Option<Open>,
    crash_synced_only: bool,
}

fn operator() -> Operator {
    Operator::new("ops:fuzz")
}

/// Runs the `engine_model` target on one input.
pub fn engine_model(data: &[u8]) {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    // A session makes a few hundred I/O calls: budgets beyond that would never fire.
    let countdown = Countdown::new(input.budget.map(|n| u32::from(n % 512)));
    let mut options = EngineOptions::default();
    options.durability = Durability::Immediate;
    options.lock_timeout = Duration::from_millis(200);
    options.log_checkpoint_bytes = 1024 * (1 + u64::from(input.checkpoint_kib % 64));
    options.purge_chunk_keys = 3;
    let mut world = World {
        model: Vec::new(),
        db: File::new(&countdown),
        log: input.with_log.then(|| File::new(&countdown)),
        countdown,
        options,
        engine: None,
        open: None,
        crash_synced_only: input.crash_synced_only,
    };
    match world.start() {
        Ok(engine) => world.engine = Some(engine),
        Err(err) => {
            assert!(world.faulted(), "opening a new database failed: {err}");
            world.crash(None);
        }
    }
    for op in input.ops.iter().take(MAX_OPS) {
        if let Some(unknown) = world.apply(op) {
            world.crash(Some(unknown));
        }
    }
    world.open = None;
    world.crash(None);
}

impl World {
    fn faulted(&self) -> bool {
        self.countdown.fired()
    }

    fn start(&self) -> tenantry_engine::Result<Engine> {
        let options = self.options.clone();
        match &self.log {
            Some(log) => Engine::open_backend_with_log(self.db.clone(), log.clone(), options),
            None => Engine::open_backend(self.db.clone(), options),
        }
    }

    fn engine(&self) -> &Engine {
        match &self.engine {
            Some(engine) => engine,
            None => unreachable!("the engine is open between operations"),
        }
    }

    fn tenant(&self, pick: u8) -> Option<usize> {
        (!self.model.is_empty()).then(|| usize::from(pick) % self.model.len())
    }

    /// An error is acceptable: after a fault anything typed is, before it only what the
    /// tenant's state calls for.
    fn allow_error(&self, tenant: Option<usize>, err: &Error, what: &str) {
        if self.faulted() {
            return;
        }
        let state = tenant.map(|t| self.model[t].state);
        let expected = match err {
            Error::TenantReadOnly(_) => state == Some(TenantState::ReadOnly),
            Error::TenantSuspended(_) => state == Some(TenantState::Suspended),
            Error::TenantDeleted(_) | Error::UnknownTenant(_) => {
                state == Some(TenantState::Deleted)
            }
            _ => false,
        };
        assert!(
            expected,
            "{what} failed with {err:?} before any I/O failure (tenant state {state:?})"
        );
    }

    /// Runs one operation; returns the unknown change that ends the session, if any.
    fn apply(&mut self, op: &Op) -> Option<Unknown> {
        match *op {
            Op::Put {
                tenant,
                table,
                key,
                value,
            } => {
                let t = self.tenant(tenant)?;
                let open = self.begin(t)?;
                let (key, value) = (key.bytes(), value.bytes());
                let table = usize::from(table) % TABLES.len();
                match open.txn.put(TABLES[table], &key, &value) {
                    Ok(()) => {
                        open.staged.insert((table, key), Some(value));
                    }
                    Err(err) => self.allow_error(Some(t), &err, "put"),
                }
                None
            }
            Op::Delete { tenant, table, key } => {
                let t = self.tenant(tenant)?;
                let committed = self.model[t].data.clone();
                let open = self.begin(t)?;
                let key = key.bytes();
                let table = usize::from(table) % TABLES.len();
                let existed = match open.staged.get(&(table, key.clone())) {
                    Some(staged) => staged.is_some(),
                    None => committed.contains_key(&(table, key.clone())),
                };
                match open.txn.delete(TABLES[table], &key) {
                    Ok(found) => {
                        assert_eq!(found, existed, "delete of {key:?} in {}", TABLES[table]);
                        if existed {
                            open.staged.insert((table, key), None);
                        }
                    }
                    Err(err) => self.allow_error(Some(t), &err, "delete"),
                }
                None
            }
            Op::Get {
                tenant,
                table,
                key,
                in_txn,
            } => {
                let t = self.tenant(tenant)?;
                let table = usize::from(table) % TABLES.len();
                let key = key.bytes();
                let point = (Bound::Included(&key[..]), Bound::Included(&key[..]));
                self.read(t, in_txn, table, Selector::Range(point));
                None
            }
            Op::Range {
                tenant,
                table,
                start,
                end,
                end_included,
                in_txn,
            } => {
                let t = self.tenant(tenant)?;
                let table = usize::from(table) % TABLES.len();
                let start = start.map(Key::bytes);
                let end = end.map(Key::bytes);
                let lower = start.as_deref().map_or(Bound::Unbounded, Bound::Included);
                let upper = match end.as_deref() {
                    None => Bound::Unbounded,
                    Some(e) if end_included => Bound::Included(e),
                    Some(e) => Bound::Excluded(e),
                };
                self.read(t, in_txn, table, Selector::Range((lower, upper)));
                None
            }
            Op::Prefix {
                tenant,
                table,
                prefix,
                in_txn,
            } => {
                let t = self.tenant(tenant)?;
                let table = usize::from(table) % TABLES.len();
                self.read(t, in_txn, table, Selector::Prefix(&prefix.bytes()));
                None
            }
            Op::Commit => self.commit(),
            Op::Abort => {
                self.open = None;
                None
            }
            Op::CreateTenant => self.create_tenant(),
            Op::SetState { tenant, state } => {
                let t = self.tenant(tenant)?;
                let state = match state % 3 {
                    0 => TenantState::Active,
                    1 => TenantState::ReadOnly,
                    _ => TenantState::Suspended,
                };
                let result = self
                    .engine()
                    .set_tenant_state(&operator(), self.model[t].id, state);
                self.admin_result(t, result, "set_tenant_state", |m| m.state = state)
            }
            Op::DeleteTenant { tenant } => {
                let t = self.tenant(tenant)?;
                if self.open.as_ref().is_some_and(|o| o.tenant == t) {
                    self.open = None;
                }
                let result = self.engine().delete_tenant(&operator(), self.model[t].id);
                self.admin_result(t, result, "delete_tenant", |m| {
                    m.state = TenantState::Deleted;
                    m.data.clear();
                })
            }
            Op::Checkpoint => {
                if let Err(err) = self.engine().checkpoint() {
                    self.allow_error(None, &err, "checkpoint");
                }
                None
            }
            Op::Reopen { synced_only } => {
                if self.faulted() {
                    return Some(Unknown::Model(self.model.clone()));
                }
                self.open = None;
                self.engine = None;
                self.reopen(synced_only, None);
                None
            }
        }
    }

    /// The open transaction on tenant `t`, begun if needed (ending one on another tenant).
    fn begin(&mut self, t: usize) -> Option<&mut Open> {
        if self.open.as_ref().is_some_and(|o| o.tenant != t) {
            self.open = None;
        }
        if self.open.is_none() {
            let ctx = Context::tenant(self.model[t].id).actor("user:fuzz");
            let begun = self.engine().tenant(&ctx).and_then(|h| h.begin_write());
            match begun {
                Ok(txn) => {
                    self.open = Some(Open {
                        tenant: t,
                        txn,
                        staged: BTreeMap::new(),
                    });
                }
                Err(err) => {
                    self.allow_error(Some(t), &err, "begin_write");
                    return None;
                }
            }
        }
        self.open.as_mut()
    }

    /// The model's entries of tenant `t`'s table, with the open transaction's changes if
    /// `with_staged`.
    fn expected(&self, t: usize, table: usize, with_staged: bool) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut out: BTreeMap<Vec<u8>, Vec<u8>> = self.model[t]
            .data
            .iter()
            .filter(|((tab, _), _)| *tab == table)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        if with_staged && let Some(open) = &self.open {
            for ((tab, key), value) in &open.staged {
                if *tab != table {
                    continue;
                }
                match value {
                    Some(v) => out.insert(key.clone(), v.clone()),
                    None => out.remove(key),
                };
            }
        }
        out
    }

    /// Reads a range or a prefix of tenant `t`'s table, in the open transaction or a snapshot,
    /// and compares it with the model.
    fn read(&mut self, t: usize, in_txn: bool, table: usize, selector: Selector<'_>) {
        let in_txn = in_txn && self.open.as_ref().is_some_and(|o| o.tenant == t);
        let want: Vec<(Vec<u8>, Vec<u8>)> = self
            .expected(t, table, in_txn)
            .into_iter()
            .filter(|(k, _)| match selector {
                Selector::Range(range) => in_bounds(range, k),
                Selector::Prefix(prefix) => k.starts_with(prefix),
            })
            .collect();
        let name = TABLES[table];
        let got = if in_txn {
            let Some(open) = &self.open else { return };
            match selector {
                Selector::Range(range) => open.txn.range(name, range),
                Selector::Prefix(prefix) => open.txn.scan_prefix(name, prefix),
            }
            .and_then(|scan| scan.collect::<Result<Vec<_>, _>>())
        } else {
            let ctx = Context::tenant(self.model[t].id);
            self.engine()
                .tenant(&ctx)
                .and_then(|h| h.begin_read())
                .and_then(|r| match selector {
                    Selector::Range(range) => r.range(name, range),
                    Selector::Prefix(prefix) => r.scan_prefix(name, prefix),
                })
                .and_then(|scan| scan.collect::<Result<Vec<_>, _>>())
        };
        // A point read goes through `get` too.
        if let Selector::Range((Bound::Included(k), Bound::Included(e))) = selector
            && k == e
        {
            self.get(t, in_txn, table, k, want.first().map(|(_, v)| v.clone()));
        }
        match got {
            Ok(got) => assert_eq!(got, want, "{selector:?} of {name} (in txn: {in_txn})"),
            Err(err) => self.allow_error(Some(t), &err, "a scan"),
        }
    }

    fn get(&self, t: usize, in_txn: bool, table: usize, key: &[u8], want: Option<Vec<u8>>) {
        let name = TABLES[table];
        let got = match (&self.open, in_txn) {
            (Some(open), true) => open.txn.get(name, key),
            _ => {
                let ctx = Context::tenant(self.model[t].id);
                self.engine()
                    .tenant(&ctx)
                    .and_then(|h| h.begin_read())
                    .and_then(|r| r.get(name, key))
            }
        };
        match got {
            Ok(got) => assert_eq!(got, want, "get {key:?} of {name} (in txn: {in_txn})"),
            Err(err) => self.allow_error(Some(t), &err, "get"),
        }
    }

    fn commit(&mut self) -> Option<Unknown> {
        let open = self.open.take()?;
        let t = open.tenant;
        let mut after = self.model.clone();
        for ((table, key), value) in open.staged.iter() {
            match value {
                Some(v) => after[t].data.insert((*table, key.clone()), v.clone()),
                None => after[t].data.remove(&(*table, key.clone())),
            };
        }
        match open.txn.commit() {
            Ok(_) => {
                let changed = after != self.model;
                assert!(
                    !changed || self.model[t].state == TenantState::Active,
                    "a commit with writes succeeded on a {:?} tenant",
                    self.model[t].state
                );
                self.model = after;
                None
            }
            Err(err) => {
                self.allow_error(Some(t), &err, "commit");
                let refused = matches!(
                    err,
                    Error::TenantReadOnly(_) | Error::TenantSuspended(_) | Error::TenantDeleted(_)
                ) && self.model[t].state != TenantState::Active;
                (self.faulted() && !refused).then_some(Unknown::Model(after))
            }
        }
    }

    fn create_tenant(&mut self) -> Option<Unknown> {
        if self.model.len() >= MAX_TENANTS {
            return None;
        }
        let name = format!("tenant-{}", self.model.len());
        match self.engine().create_tenant(&operator(), &name) {
            Ok(id) => {
                self.model.push(TenantModel {
                    id,
                    name,
                    state: TenantState::Active,
                    data: Data::new(),
                });
                None
            }
            Err(err) => {
                self.allow_error(None, &err, "create_tenant");
                Some(Unknown::Create(name))
            }
        }
    }

    /// The result of an operator's change to tenant `t`: `change` is what success means.
    fn admin_result(
        &mut self,
        t: usize,
        result: tenantry_engine::Result<()>,
        what: &str,
        change: impl FnOnce(&mut TenantModel),
    ) -> Option<Unknown> {
        let deleted = self.model[t].state == TenantState::Deleted;
        match result {
            Ok(()) => {
                assert!(!deleted, "{what} succeeded on a deleted tenant");
                change(&mut self.model[t]);
                None
            }
            Err(Error::TenantDeleted(_) | Error::UnknownTenant(_)) if deleted => None,
            Err(err) => {
                self.allow_error(Some(t), &err, what);
                let mut after = self.model.clone();
                change(&mut after[t]);
                Some(Unknown::Model(after))
            }
        }
    }

    /// Ends the session as a crash would, and checks what a reopen finds.
    fn crash(&mut self, unknown: Option<Unknown>) {
        self.open = None;
        self.engine = None;
        let synced_only = self.crash_synced_only;
        self.reopen(synced_only, unknown);
    }

    /// Reopens a copy of the disk, without faults from now on, and checks it against the
    /// model (or the model with the unknown change).
    fn reopen(&mut self, synced_only: bool, unknown: Option<Unknown>) {
        let countdown = Countdown::new(None);
        self.db = self.db.after_crash(synced_only, &countdown);
        self.log = self
            .log
            .as_ref()
            .map(|l| l.after_crash(synced_only, &countdown));
        self.countdown = countdown;
        let engine = self
            .start()
            .unwrap_or_else(|err| panic!("reopening after a crash failed: {err}"));
        let candidates = match unknown {
            None => vec![self.model.clone()],
            Some(Unknown::Model(after)) => vec![self.model.clone(), after],
            Some(Unknown::Create(name)) => {
                let mut after = self.model.clone();
                if let Ok(Some(id)) = engine.tenant_id(&name) {
                    after.push(TenantModel {
                        id,
                        name,
                        state: TenantState::Active,
                        data: Data::new(),
                    });
                }
                vec![self.model.clone(), after]
            }
        };
        let found = candidates
            .into_iter()
            .find(|candidate| matches_engine(&engine, candidate));
        let Some(model) = found else {
            panic!(
                "after reopening (synced only: {synced_only}), the engine holds neither the \
                 model nor the model with the unknown change; model: {:?}, engine: {:?}",
                self.model,
                observe(&engine, &self.model)
            );
        };
        for tenant in &model {
            match engine.verify_audit(tenant.id) {
                Ok(_) => {}
                Err(Error::TenantDeleted(_) | Error::UnknownTenant(_))
                    if tenant.state == TenantState::Deleted => {}
                Err(err) => panic!("the audit chain of {} fails: {err}", tenant.name),
            }
        }
        self.model = model;
        self.engine = Some(engine);
    }
}

/// What the engine holds for the model's tenants: state and data.
fn observe(engine: &Engine, model: &Model) -> Vec<(TenantState, Data)> {
    let Ok(reader) = engine.unscoped_unsafe(&operator(), "fuzz: compare with the model") else {
        return Vec::new();
    };
    model
        .iter()
        .map(|tenant| {
            let state = match engine.tenant_info(tenant.id) {
                Ok(info) => info.state,
                Err(_) => TenantState::Deleted,
            };
            let mut data = Data::new();
            if state != TenantState::Deleted {
                for (table, name) in TABLES.iter().enumerate() {
                    let entries = reader
                        .scan_prefix(tenant.id, name, b"")
                        .unwrap_or_else(|err| panic!("reading {} failed: {err}", tenant.name));
                    data.extend(entries.into_iter().map(|(k, v)| ((table, k), v)));
                }
            }
            (state, data)
        })
        .collect()
}

fn matches_engine(engine: &Engine, model: &Model) -> bool {
    let want: Vec<(TenantState, Data)> = model.iter().map(|t| (t.state, t.data.clone())).collect();
    observe(engine, model) == want
}
