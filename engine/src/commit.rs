//! The commit pipeline: one thread that writes many tenants' commits in one redb transaction.
//!
//! A [`crate::WriteTxn`] never touches redb's write lock while its caller works: it reads from a
//! snapshot and buffers its writes. `commit()` turns the buffer into a [`Request`] and queues it.
//! The committer thread takes everything queued (up to a batch cap), opens one redb write
//! transaction, applies each request in order (each is validated against the state the batch has
//! built so far, so a refused request writes nothing but its refusal's audit entries), appends
//! the audit entries, makes the batch durable once (one append and fsync of the write-ahead
//! log, see [`crate::wal`], or, without a log, one durable redb commit), and only then replies
//! to every request in the batch and updates the in-memory registry. While it syncs, new
//! requests queue up and form the next batch: that is the group commit.
//!
//! If redb or the log fails (I/O error, full disk, …) every request in the batch and every
//! later one fails with [`Error::EngineFailed`], the pipeline stops before another commit can
//! start, and nothing that was acknowledged is lost, since acknowledgements are only sent after
//! a successful commit. The failed batch is rolled back as far as the storage allows (its log
//! record is taken back); a failure during the final sync leaves its fate to the disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::audit::{AuditEvent, AuditStream, Outcome};
use crate::context::Actor;
use crate::error::{Error, QuotaLimit, Result};
use crate::keys::{TableId, TablePrefix};
use crate::registry::Registry;
use crate::schema::{self, Tail};
use crate::snapshot::ReadCache;
use crate::types::Usage;
use crate::types::{Quota, TenantId, TenantState};
use crate::wal::Wal;

mod batch;
pub(crate) mod redo;

use batch::Batch;

/// What a commit leaves behind for the tenant to keep: the newest `(seq, hash)` of its audit
/// stream, which [`crate::Engine::verify_audit_against`] later checks the log against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitReceipt {
    /// Seq of the newest entry of the tenant's audit stream after this commit.
    pub audit_seq: u64,
    /// Hash of that entry.
    pub audit_head: [u8; 32],
}

/// Change in a tenant's data usage.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UsageDelta {
    pub(crate) bytes: i64,
    pub(crate) keys: i64,
}

/// The buffered writes of one table.
#[derive(Debug)]
pub(crate) struct TableWrites {
    pub(crate) name: String,
    /// The table's id, when the caller already knows it from committed state.
    pub(crate) id: Option<TableId>,
    pub(crate) writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// A tenant's write transaction, ready to commit.
#[derive(Debug)]
pub(crate) struct DataCommit {
    pub(crate) tenant: TenantId,
    pub(crate) actor: Actor,
    pub(crate) tables: Vec<TableWrites>,
    pub(crate) drafts: Vec<AuditEvent>,
    pub(crate) delta: UsageDelta,
    /// `false` records the drafts only: the transaction's data changes were rolled back.
    pub(crate) apply: bool,
}

/// One unit of work for the committer.
#[derive(Debug)]
pub(crate) enum Request {
    Data(DataCommit),
    CreateTenants {
        names: Vec<String>,
        actor: Actor,
    },
    SetState {
        tenant: TenantId,
        state: TenantState,
        actor: Actor,
    },
    SetQuota {
        tenant: TenantId,
        quota: Quota,
        actor: Actor,
    },
    Delete {
        tenant: TenantId,
        actor: Actor,
    },
    Purge {
        tenant: TenantId,
        max_keys: usize,
    },
    Audit {
        streams: Vec<AuditStream>,
        actor: Actor,
        draft: AuditEvent,
    },
    /// Makes its batch a checkpoint (see [`crate::wal`]).
    Checkpoint,
}

impl DataCommit {
    /// Whether the commit changes data (not only the audit log).
    pub(crate) fn writes(&self) -> bool {
        self.apply && self.tables.iter().any(|t| !t.writes.is_empty())
    }
}

impl Request {
    fn approx_size(&self) -> usize {
        match self {
            Request::Data(c) => {
                c.tables
                    .iter()
                    .flat_map(|t| &t.writes)
                    .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                    .sum::<usize>()
                    + c.drafts.len() * 128
            }
            Request::CreateTenants { names, .. } => names.len() * 256,
            _ => 256,
        }
    }
}

/// The committer's answer to a request.
#[derive(Debug)]
pub(crate) enum Reply {
    Receipt(CommitReceipt),
    Tenants(Vec<TenantId>),
    Purged { removed: u64, done: bool },
    Done,
}

/// Settings of the pipeline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PipelineOptions {
    pub(crate) durability: redb::Durability,
    pub(crate) audit: bool,
    pub(crate) max_batch_requests: usize,
    pub(crate) max_batch_bytes: usize,
}

struct Pending {
    request: Request,
    reply: mpsc::Sender<Result<Reply>>,
}

#[derive(Default)]
struct QueueState {
    pending: Vec<Pending>,
    closed: bool,
    failed: Option<String>,
    /// Someone (the committer thread, or a caller committing inline) holds the redb writer.
    busy: bool,
    /// Size of the last batch: more than one means callers are committing concurrently, and
    /// they are better served by the committer's batches than by one inline commit each.
    last_batch: usize,
    /// When the redb writer was last given up: the pipeline is idle since then.
    released: Option<Instant>,
}

/// The queue between callers and the committer, and what committing needs.
pub(crate) struct CommitQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
    db: Arc<redb::Database>,
    registry: Arc<Registry>,
    reads: Arc<ReadCache>,
    opts: PipelineOptions,
    /// Stream tails as of the last committed batch; only the holder of `busy` uses them.
    tails: Mutex<HashMap<u64, Tail>>,
    /// The write-ahead log that makes batches durable, if the engine has one.
    wal: Option<Arc<Wal>>,
}

impl CommitQueue {
    /// Commits `request` and returns its outcome.
    ///
    /// When nothing is queued, no batch is being written and the last batch held one request
    /// (no concurrent committers), the caller commits its request itself, as a batch of one:
    /// an uncontended commit pays for no thread hand-off. Otherwise it queues the request for
    /// the committer thread, which batches it with the others, and waits.
    pub(crate) fn submit(&self, request: Request) -> Result<Reply> {
        let (tx, rx) = mpsc::channel();
        {
            let mut state = self.state.lock();
            if let Some(msg) = &state.failed {
                return Err(Error::EngineFailed(msg.clone()));
            }
            if state.closed {
                return Err(Error::EngineFailed("the engine is shut down".into()));
            }
            if !state.busy && state.pending.is_empty() && state.last_batch <= 1 {
                state.busy = true;
                drop(state);
                return self.commit_inline(request);
            }
            state.pending.push(Pending { request, reply: tx });
        }
        self.wake.notify_one();
        rx.recv()
            .unwrap_or_else(|_| Err(Error::EngineFailed("the committer stopped".into())))
    }

    /// Commits one request on the caller's thread; the caller has set `busy`.
    fn commit_inline(&self, request: Request) -> Result<Reply> {
        match self.write(vec![request]) {
            Ok(results) => results
                .into_iter()
                .next()
                .unwrap_or_else(|| Err(Error::Corrupted("a committed batch gave no reply".into()))),
            Err(message) => Err(Error::EngineFailed(message)),
        }
    }

    /// Writes one batch (the caller holds `busy`, which this gives up): applies the requests
    /// in one redb transaction, and once it is committed, the registry effects. A failure
    /// stops the pipeline before the writer is given up, so that no commit starts after it;
    /// the error is the failure's message.
    fn write(&self, requests: Vec<Request>) -> std::result::Result<Vec<Result<Reply>>, String> {
        let _release = Release(self);
        let mut tails = self.tails.lock();
        let size = requests.len();
        match commit_batch(&self.db, &tails, requests, &self.opts, self.wal.as_deref()) {
            Ok((results, new_tails, effects)) => {
                // Before anyone hears of the commit, so that a snapshot begun after it sees it.
                self.reads.invalidate();
                tails.extend(new_tails);
                apply_effects(&self.registry, effects);
                Ok(results)
            }
            Err(err) => {
                let message = format!("commit of a batch of {size} failed: {err}");
                tracing::error!("{message}");
                self.fail_all(&message);
                Err(message)
            }
        }
    }

    /// Stops the pipeline with `message` and fails every queued request.
    fn fail_all(&self, message: &str) {
        for pending in self.fail(message.to_owned()) {
            let _ = pending
                .reply
                .send(Err(Error::EngineFailed(message.to_owned())));
        }
    }

    /// Takes the next batch, waiting for work; `None` once closed and drained.
    fn next_batch(&self, opts: &PipelineOptions) -> Option<Work> {
        let mut state = self.state.lock();
        while state.pending.is_empty() || state.busy {
            if state.closed && state.pending.is_empty() {
                return None;
            }
            let Some(wal) = &self.wal else {
                self.wake.wait(&mut state);
                continue;
            };
            if state.failed.is_some() {
                self.wake.wait(&mut state);
                continue;
            }
            // With a log, checkpoint once the pipeline has been idle for a while. Commits made
            // on the callers' own threads do not wake this thread, so it looks now and then.
            let quiet = state.released.map_or(IDLE_CHECKPOINT, |at| at.elapsed());
            if quiet >= IDLE_CHECKPOINT
                && !state.busy
                && state.pending.is_empty()
                && wal.logged_bytes() > 0
            {
                state.busy = true;
                return Some(Work::Checkpoint);
            }
            let wait = if wal.logged_bytes() == 0 {
                IDLE_CHECKPOINT
            } else {
                IDLE_CHECKPOINT
                    .saturating_sub(quiet)
                    .max(IDLE_CHECKPOINT / 8)
            };
            self.wake.wait_for(&mut state, wait);
        }
        state.busy = true;
        state.last_batch = state.pending.len();
        // A purge chunk of a deleted tenant waits while anything else is queued, so that no
        // tenant's commit shares a transaction with (and waits for) a chunk of someone's
        // deletion. Purges touch only their deleted tenant's keys, so reordering them is safe.
        let others_waiting = state
            .pending
            .iter()
            .any(|p| !matches!(p.request, Request::Purge { .. }));
        let (mut batch, mut rest) = (Vec::new(), Vec::new());
        let mut bytes = 0;
        for p in state.pending.drain(..) {
            let full = !batch.is_empty()
                && (batch.len() >= opts.max_batch_requests || bytes >= opts.max_batch_bytes);
            if full || (others_waiting && matches!(p.request, Request::Purge { .. })) {
                rest.push(p);
            } else {
                bytes += p.request.approx_size();
                batch.push(p);
            }
        }
        state.pending = rest;
        Some(Work::Batch(batch))
    }

    /// Gives up the redb writer, waking the committer if requests queued up meanwhile.
    fn release(&self) {
        let mut state = self.state.lock();
        state.busy = false;
        state.released = Some(Instant::now());
        if !state.pending.is_empty() || state.closed {
            self.wake.notify_one();
        }
    }

    /// Stops the pipeline (the first failure's message is the one kept) and takes the queue.
    fn fail(&self, message: String) -> Vec<Pending> {
        let mut state = self.state.lock();
        state.failed.get_or_insert(message);
        std::mem::take(&mut state.pending)
    }

    fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_all();
    }

    /// The reason the pipeline stopped, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.state.lock().failed.clone()
    }
}

/// A registry change that becomes visible once its batch has committed.
#[derive(Debug)]
pub(crate) enum Effect {
    Register {
        id: TenantId,
        name: String,
    },
    State {
        id: TenantId,
        state: TenantState,
    },
    Table {
        tenant: TenantId,
        name: String,
        id: TableId,
    },
}

/// The committer thread and its queue; dropping it drains the queue and stops the thread.
pub(crate) struct Committer {
    queue: Arc<CommitQueue>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub(crate) fn start(
        db: Arc<redb::Database>,
        registry: Arc<Registry>,
        reads: Arc<ReadCache>,
        opts: PipelineOptions,
        wal: Option<Arc<Wal>>,
    ) -> Result<Self> {
        let queue = Arc::new(CommitQueue {
            state: Mutex::new(QueueState::default()),
            wake: Condvar::new(),
            db,
            registry,
            reads,
            opts,
            tails: Mutex::new(HashMap::new()),
            wal,
        });
        let worker_queue = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("tenantry-committer".into())
            .spawn(move || run(&worker_queue))?;
        Ok(Committer {
            queue,
            thread: Some(thread),
        })
    }

    pub(crate) fn queue(&self) -> &Arc<CommitQueue> {
        &self.queue
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Gives up the redb writer when dropped, also when its holder unwinds.
struct Release<'a>(&'a CommitQueue);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail_all("a commit panicked");
        }
        self.0.release();
    }
}

/// Stops the pipeline if the committer thread unwinds, so that callers get an error instead of
/// waiting for a thread that is gone.
struct StopOnPanic<'a>(&'a CommitQueue);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail_all("the committer thread panicked");
        }
    }
}

/// What the committer does next.
enum Work {
    Batch(Vec<Pending>),
    /// Nothing was queued for [`IDLE_CHECKPOINT`] and the log holds batches.
    Checkpoint,
}

/// How long the pipeline is idle before it checkpoints the log.
const IDLE_CHECKPOINT: std::time::Duration = std::time::Duration::from_millis(50);

/// Batches of at most this many requests are answered by the committer itself.
const INLINE_REPLIES: usize = 4;

/// The replies of one committed batch, handed to the replier thread.
type Delivery = Vec<(mpsc::Sender<Result<Reply>>, Result<Reply>)>;

fn run(queue: &CommitQueue) {
    let _stop = StopOnPanic(queue);
    // Waking the callers of a batch (one futex wake each) takes the committer about a tenth of
    // its time at 64 writers, so a second thread does it while the committer starts the next
    // batch. Replies still leave only after the batch is durable and its effects are applied.
    std::thread::scope(|scope| {
        let (deliver, deliveries) = mpsc::channel::<Delivery>();
        let replier = std::thread::Builder::new()
            .name("tenantry-replier".into())
            .spawn_scoped(scope, move || {
                for delivery in deliveries {
                    for (reply, result) in delivery {
                        let _ = reply.send(result);
                    }
                }
            });
        let deliver = replier.is_ok().then_some(deliver);
        commit_loop(queue, deliver.as_ref());
    });
}

fn commit_loop(queue: &CommitQueue, deliver: Option<&mpsc::Sender<Delivery>>) {
    while let Some(work) = queue.next_batch(&queue.opts) {
        let batch = match work {
            Work::Batch(batch) => batch,
            Work::Checkpoint => {
                // A batch of nothing but a checkpoint; a failure stops the pipeline.
                let _ = queue.write(vec![Request::Checkpoint]);
                continue;
            }
        };
        let started = Instant::now();
        let size = batch.len();
        let (requests, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.request, p.reply)).unzip();
        match queue.write(requests) {
            Ok(results) => {
                let delivery: Delivery = replies.into_iter().zip(results).collect();
                // A small batch is answered at once: a hand-off would cost its callers more
                // latency than it saves the committer.
                let undelivered = match deliver {
                    Some(deliver) if delivery.len() > INLINE_REPLIES => {
                        deliver.send(delivery).err().map(|e| e.0)
                    }
                    _ => Some(delivery),
                };
                for (reply, result) in undelivered.into_iter().flatten() {
                    let _ = reply.send(result);
                }
                tracing::trace!(size, elapsed = ?started.elapsed(), "committed batch");
            }
            Err(message) => {
                for reply in replies {
                    let _ = reply.send(Err(Error::EngineFailed(message.clone())));
                }
            }
        }
    }
}

type BatchOutcome = (Vec<Result<Reply>>, HashMap<u64, Tail>, Vec<Effect>);

/// Applies `requests` in one redb transaction. The outer error aborts the whole batch.
///
/// With a write-ahead log, the batch's redo record is appended and synced before the redb
/// transaction commits without a sync of its own; every so often a batch is a checkpoint
/// instead, committed to redb durably and not logged (see [`crate::wal`]).
fn commit_batch(
    db: &redb::Database,
    tails: &HashMap<u64, Tail>,
    requests: Vec<Request>,
    opts: &PipelineOptions,
    wal: Option<&Wal>,
) -> Result<BatchOutcome> {
    let mut txn = db.begin_write()?;
    let forced = requests.iter().any(|r| matches!(r, Request::Checkpoint));
    let checkpoint = wal.is_some_and(|wal| forced || wal.wants_checkpoint());
    let logged = wal.filter(|_| !checkpoint);
    txn.set_durability(match logged {
        Some(_) => redb::Durability::None,
        None => opts.durability,
    })?;
    let mut results = Vec::with_capacity(requests.len());
    let finished = {
        let mut batch = Batch::open(&txn, tails, opts.audit, logged.is_some());
        for request in requests {
            results.push(apply(&mut batch, request)?);
        }
        batch.finish()?
    };
    let lsn = match wal {
        Some(wal) => {
            let lsn = wal.next_lsn();
            txn.open_table(schema::META)?
                .insert(schema::META_LOG_APPLIED, lsn)?;
            Some(lsn)
        }
        None => None,
    };
    let unlogged = finished.unlogged;
    if let (Some(wal), Some(lsn), Some(mut redo)) = (logged, lsn, finished.redo) {
        wal.append(lsn, redo.record()?)?;
        wal.add_unlogged(unlogged);
        // Until redb has the batch, a failure (or a panic) takes the durable record back, so
        // that no replay applies a batch whose callers were told it failed.
        let take_back = TakeBack(Some(wal));
        txn.commit()?;
        take_back.disarm();
    } else {
        txn.commit()?;
        if let (Some(wal), Some(lsn)) = (wal, lsn) {
            wal.checkpointed(lsn);
        }
    }
    Ok((results, finished.tails, finished.effects))
}

/// Takes back the log's last record when dropped armed.
struct TakeBack<'w>(Option<&'w Wal>);

impl TakeBack<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TakeBack<'_> {
    fn drop(&mut self) {
        if let Some(wal) = self.0
            && let Err(err) = wal.void_last()
        {
            tracing::error!(%err, "could not take back the log record of a failed batch");
        }
    }
}

fn apply_effects(registry: &Registry, effects: Vec<Effect>) {
    for effect in effects {
        match effect {
            Effect::Register { id, name } => registry.insert(id, &name, TenantState::Active),
            Effect::State { id, state } => registry.set_state(id, state),
            Effect::Table { tenant, name, id } => registry.remember_table(tenant, &name, id),
        }
    }
}

/// Applies one request. `Ok(Err(_))` is the request's own failure; `Err(_)` aborts the batch.
fn apply(batch: &mut Batch<'_>, request: Request) -> Result<Result<Reply>> {
    match request {
        Request::Data(commit) => apply_data(batch, commit),
        Request::CreateTenants { names, actor } => batch.create_tenants(names, &actor),
        Request::SetState {
            tenant,
            state,
            actor,
        } => batch.set_state(tenant, state, &actor),
        Request::SetQuota {
            tenant,
            quota,
            actor,
        } => batch.set_quota(tenant, quota, &actor),
        Request::Delete { tenant, actor } => batch.delete_tenant(tenant, &actor),
        Request::Purge { tenant, max_keys } => batch.purge(tenant, max_keys),
        Request::Checkpoint => Ok(Ok(Reply::Done)),
        Request::Audit {
            streams,
            actor,
            draft,
        } => {
            for stream in &streams {
                if let AuditStream::Tenant(t) = stream
                    && batch.record(t.get())?.is_none()
                {
                    return Ok(Err(Error::UnknownTenant(*t)));
                }
            }
            for stream in streams {
                batch.append(stream.raw(), &actor, draft.clone())?;
            }
            Ok(Ok(Reply::Done))
        }
    }
}

fn apply_data(batch: &mut Batch<'_>, commit: DataCommit) -> Result<Result<Reply>> {
    let tenant = commit.tenant;
    let raw = tenant.get();
    let usage = batch.usage(raw)?;
    let Some(record) = batch.record(raw)? else {
        return Ok(Err(Error::UnknownTenant(tenant)));
    };
    let writes = commit.writes();
    // A damaged state byte refuses this tenant's commit, not the whole batch.
    let state = match record.state() {
        Ok(state) => state,
        Err(err) => return Ok(Err(err)),
    };
    let refused = match refusal(tenant, state, &record.quota, usage, commit.delta, writes) {
        Ok(refused) => refused,
        Err(err) => return Ok(Err(err)),
    };
    if let Some(err) = refused {
        for draft in denied(commit.drafts, &err) {
            batch.append(raw, &commit.actor, draft)?;
        }
        return Ok(Err(err));
    }
    if writes {
        for table in commit.tables {
            let id = batch.table_id(tenant, &table.name, table.id)?;
            let prefix = TablePrefix::new(tenant, id);
            for (key, value) in table.writes {
                batch.write(&prefix.key(&key), value.as_deref())?;
            }
        }
        batch.add_usage(raw, commit.delta)?;
    }
    for draft in commit.drafts {
        batch.append(raw, &commit.actor, draft)?;
    }
    let head = batch.head(raw)?;
    Ok(Ok(Reply::Receipt(CommitReceipt {
        audit_seq: head.seq,
        audit_head: head.hash,
    })))
}

/// Whether a commit of `tenant` in `state`, with `quota` and `usage`, changing usage by
/// `delta` (`writes`: it changes data) is refused, on every backend: `Err` refuses it without a
/// trace (a deleted tenant records nothing more), `Ok(Some)` refuses it with its audit entries
/// recorded as denied ([`denied`]).
pub(crate) fn refusal(
    tenant: TenantId,
    state: TenantState,
    quota: &Quota,
    usage: Usage,
    delta: UsageDelta,
    writes: bool,
) -> Result<Option<Error>> {
    Ok(match state {
        TenantState::Deleted => return Err(Error::TenantDeleted(tenant)),
        TenantState::Suspended => Some(Error::TenantSuspended(tenant)),
        TenantState::ReadOnly if writes => Some(Error::TenantReadOnly(tenant)),
        _ if writes => quota_refusal(tenant, quota, usage, delta),
        _ => None,
    })
}

/// The audit entries of a refused commit: each that claimed success says it was denied.
pub(crate) fn denied(drafts: Vec<AuditEvent>, err: &Error) -> Vec<AuditEvent> {
    let reason = err.to_string();
    drafts
        .into_iter()
        .map(|mut draft| {
            if matches!(draft.outcome, Outcome::Ok | Outcome::NoChange) {
                draft.outcome = Outcome::Denied(reason.clone());
            }
            draft
        })
        .collect()
}

fn quota_refusal(
    tenant: TenantId,
    quota: &Quota,
    usage: Usage,
    delta: UsageDelta,
) -> Option<Error> {
    let check = |limit, max: Option<u64>, usage: u64, delta: i64| {
        let would_be = usage.saturating_add_signed(delta);
        match max {
            Some(max) if delta > 0 && would_be > max => Some(Error::QuotaExceeded {
                tenant,
                limit,
                max,
                would_be,
            }),
            _ => None,
        }
    };
    check(QuotaLimit::Bytes, quota.max_bytes, usage.bytes, delta.bytes)
        .or_else(|| check(QuotaLimit::Keys, quota.max_keys, usage.keys, delta.keys))
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
