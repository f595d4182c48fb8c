//! A simulated disk for the power-loss and fault-injection tests: two files (the database and
//! its write-ahead log), each with a durable and a volatile image, behind redb's
//! [`StorageBackend`].
//!
//! Writes and `set_len` change the volatile image (what the page cache holds) and are logged;
//! `sync_data` replays the file's log onto its durable image (what the platter holds). Two
//! things can go wrong, both seeded:
//!
//! * the power fails after a countdown of backend calls ([`Disk::new`]): that call and every
//!   later one return an I/O error, and the durable images keep either none of the unsynced
//!   writes or, for a torn loss, a random subset of them (whole writes, in any combination and
//!   of either file: a disk reorders what was not fenced by a sync);
//! * one operation fails ([`Disk::arm`]): the `nth` read, write, `set_len` or `sync_data` of one
//!   file returns EIO or ENOSPC, once, for good (every later operation of that kind on that
//!   file fails too), with every later operation of the disk (which is gone, while the page
//!   cache stays), or followed by a power loss. A failed write may have changed a prefix of
//!   its range first (a short write); a failed `sync_data` leaves the file's unsynced writes
//!   durable, lost or torn, at random, and forgets them, as Linux does since the "fsyncgate"
//!   discussion: a later, successful `sync_data` does not write them again.
//!
//! The file of [`Disk::log`] is the log. Clones share the disk, so a test keeps one to cut the
//! power, read the images and count what happened.
#![allow(dead_code)] // each test that includes this file uses a different part of it

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tenantry_engine::{Engine, EngineOptions, Error, StorageBackend};

/// The database file.
pub(crate) const DB: usize = 0;
/// The write-ahead log.
pub(crate) const LOG: usize = 1;
/// Names of the files, by index.
pub(crate) const FILES: [&str; 2] = ["db", "log"];

/// A kind of backend operation that a fault can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Op {
    Read = 0,
    Write = 1,
    SetLen = 2,
    Sync = 3,
}

/// Every [`Op`], by index.
pub(crate) const OPS: [Op; 4] = [Op::Read, Op::Write, Op::SetLen, Op::Sync];

/// The error a failed operation returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Errno {
    /// EIO (raw OS error 5).
    Eio,
    /// ENOSPC (raw OS error 28, `ErrorKind::StorageFull`).
    Enospc,
}

impl Errno {
    fn error(self) -> io::Error {
        io::Error::from_raw_os_error(match self {
            Errno::Eio => 5,
            Errno::Enospc => 28,
        })
    }
}

/// What follows a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum After {
    /// Later operations succeed (a transient error).
    Once,
    /// Every later operation of the same kind on the same file fails the same way.
    Sticky,
    /// Every later operation, of either file, fails the same way: the disk is gone, but the
    /// power and the page cache stay (the volatile images can still be read).
    Dead,
    /// The power fails as the operation does.
    PowerLoss,
}

/// One planned failure: the `nth` (from 0) operation `op` on `file` after [`Disk::arm`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fault {
    pub(crate) file: usize,
    pub(crate) op: Op,
    pub(crate) nth: u64,
    pub(crate) errno: Errno,
    pub(crate) after: After,
}

/// What became of the unsynced writes of a failed `sync_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SyncFate {
    Kept,
    Dropped,
    Torn,
}

/// How an armed fault went off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fired {
    pub(crate) fault: Fault,
    /// For a failed write, the bytes of it that reached the volatile image anyway.
    pub(crate) short_write: Option<usize>,
    /// For a failed `sync_data`.
    pub(crate) sync_fate: Option<SyncFate>,
}

/// An operation that changed the volatile image but has not been synced.
#[derive(Debug, Clone)]
enum Unsynced {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

impl Unsynced {
    fn apply(&self, image: &mut Vec<u8>) {
        match self {
            Unsynced::Write { offset, data } => {
                let start = usize::try_from(*offset).unwrap();
                let end = start + data.len();
                if image.len() < end {
                    image.resize(end, 0); // a write past the end extends the file
                }
                image[start..end].copy_from_slice(data);
            }
            Unsynced::SetLen(len) => image.resize(usize::try_from(*len).unwrap(), 0),
        }
    }
}

/// The two images of one file.
#[derive(Debug, Default)]
struct Image {
    volatile: Vec<u8>,
    durable: Vec<u8>,
}

/// The files of the disk, and what is planned to go wrong.
#[derive(Debug)]
pub(crate) struct DiskState {
    files: [Image; 2],
    /// Unsynced operations of every file, in order, with their file.
    unsynced: Vec<(usize, Unsynced)>,
    /// Backend calls left before the power fails; `None` never fails.
    pub(crate) countdown: Option<u64>,
    powered: bool,
    /// Whether a power failure keeps a random subset of the unsynced writes.
    tear: bool,
    rng: StdRng,
    pub(crate) calls: u64,
    pub(crate) syncs: u64,
    /// Unsynced operations kept and dropped by the power failure.
    pub(crate) torn_kept: usize,
    pub(crate) torn_dropped: usize,
    /// Operations per file and [`Op`] since the disk was made or last armed.
    pub(crate) ops: [[u64; 4]; 2],
    armed: Option<Fault>,
    pub(crate) fired: Option<Fired>,
    /// Operations failed by a sticky or dead-disk fault after it went off.
    pub(crate) sticky_failures: u64,
}

/// A [`StorageBackend`] for one file of a simulated disk (see the module doc): file 0 is the
/// database, file 1 ([`Disk::log`]) its write-ahead log.
#[derive(Clone)]
pub(crate) struct Disk {
    state: Arc<Mutex<DiskState>>,
    file: usize,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk").finish_non_exhaustive()
    }
}

fn power_off() -> io::Error {
    io::Error::other("simulated power loss: the disk is gone")
}

impl DiskState {
    /// The power fails: the durable image keeps none, or with `tear` a random subset, of the
    /// unsynced operations.
    fn lose_power(&mut self) {
        if !self.powered {
            return;
        }
        self.powered = false;
        for (file, op) in std::mem::take(&mut self.unsynced) {
            if self.tear && self.rng.random_bool(0.5) {
                op.apply(&mut self.files[file].durable);
                self.torn_kept += 1;
            } else {
                self.torn_dropped += 1;
            }
        }
        for file in &mut self.files {
            file.volatile.clear();
        }
    }

    /// Takes `file`'s unsynced operations out of the log, in order.
    fn take_unsynced(&mut self, file: usize) -> Vec<Unsynced> {
        let (mine, others) = std::mem::take(&mut self.unsynced)
            .into_iter()
            .partition(|(f, _)| *f == file);
        self.unsynced = others;
        mine.into_iter().map(|(_, op)| op).collect()
    }

    /// A failed `sync_data` of `file`: its unsynced operations become durable, are lost, or a
    /// random subset of them becomes durable; either way they are no longer unsynced.
    fn fail_sync(&mut self, file: usize) -> SyncFate {
        let fate = [SyncFate::Kept, SyncFate::Dropped, SyncFate::Torn][self.rng.random_range(0..3)];
        for op in self.take_unsynced(file) {
            let keep = match fate {
                SyncFate::Kept => true,
                SyncFate::Dropped => false,
                SyncFate::Torn => self.rng.random_bool(0.5),
            };
            if keep {
                op.apply(&mut self.files[file].durable);
            }
        }
        fate
    }

    fn push(&mut self, file: usize, op: Unsynced) {
        op.apply(&mut self.files[file].volatile);
        self.unsynced.push((file, op));
    }
}

/// The outcome of starting an operation: go ahead, or fail it because of this fault.
enum Start<'a> {
    Go(MutexGuard<'a, DiskState>),
    Fault(MutexGuard<'a, DiskState>, Fault),
}

impl Disk {
    /// A disk holding `images` (database, log), durable and volatile alike, whose power fails
    /// after `countdown` backend calls (never with `None`), tearing the unsynced writes if
    /// `tear`; `seed` drives every random choice the disk makes.
    pub(crate) fn new(images: [Vec<u8>; 2], countdown: Option<u64>, tear: bool, seed: u64) -> Self {
        let files = images.map(|image| Image {
            volatile: image.clone(),
            durable: image,
        });
        let state = Arc::new(Mutex::new(DiskState {
            files,
            unsynced: Vec::new(),
            countdown,
            powered: true,
            tear,
            rng: StdRng::seed_from_u64(seed),
            calls: 0,
            syncs: 0,
            torn_kept: 0,
            torn_dropped: 0,
            ops: [[0; 4]; 2],
            armed: None,
            fired: None,
            sticky_failures: 0,
        }));
        Disk { state, file: DB }
    }

    /// A disk that never fails, holding `images`.
    pub(crate) fn healthy(images: [Vec<u8>; 2]) -> Self {
        Disk::new(images, None, false, 0)
    }

    /// The write-ahead log's file on the same disk.
    pub(crate) fn log(&self) -> Disk {
        Disk {
            state: Arc::clone(&self.state),
            file: LOG,
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Plans `fault` (`None`: no fault, only counting) and restarts the operation counts, from
    /// which `fault.nth` counts.
    pub(crate) fn arm(&self, fault: Option<Fault>) {
        let mut state = self.state();
        state.ops = [[0; 4]; 2];
        state.armed = fault;
    }

    /// How the armed fault went off, if it did.
    pub(crate) fn fired(&self) -> Option<Fired> {
        self.state().fired
    }

    /// Operations per file and [`Op`] since the disk was made or last armed.
    pub(crate) fn op_counts(&self) -> [[u64; 4]; 2] {
        self.state().ops
    }

    /// Counts a call; fails it if the power is off or fails now.
    fn call(&self) -> io::Result<MutexGuard<'_, DiskState>> {
        let mut state = self.state();
        if !state.powered {
            return Err(power_off());
        }
        state.calls += 1;
        match state.countdown {
            Some(0) => {
                state.lose_power();
                Err(power_off())
            }
            Some(n) => {
                state.countdown = Some(n - 1);
                Ok(state)
            }
            None => Ok(state),
        }
    }

    /// Counts operation `op` and says whether a fault fails it.
    fn start(&self, op: Op) -> io::Result<Start<'_>> {
        let mut state = self.call()?;
        let nth = state.ops[self.file][op as usize];
        state.ops[self.file][op as usize] += 1;
        if let Some(fired) = state.fired
            && (fired.fault.after == After::Dead
                || fired.fault.after == After::Sticky
                    && (fired.fault.file, fired.fault.op) == (self.file, op))
        {
            state.sticky_failures += 1;
            return Err(fired.fault.errno.error());
        }
        match state.armed {
            Some(fault) if (fault.file, fault.op, fault.nth) == (self.file, op, nth) => {
                state.armed = None;
                Ok(Start::Fault(state, fault))
            }
            _ => Ok(Start::Go(state)),
        }
    }

    /// Records that `fault` went off, cuts the power if it says so, and returns its error.
    fn fail(
        mut state: MutexGuard<'_, DiskState>,
        fault: Fault,
        short_write: Option<usize>,
        sync_fate: Option<SyncFate>,
    ) -> io::Error {
        state.fired = Some(Fired {
            fault,
            short_write,
            sync_fate,
        });
        if fault.after == After::PowerLoss {
            state.lose_power();
        }
        fault.errno.error()
    }

    /// Cuts the power now (a no-op if it is already off).
    pub(crate) fn cut_power(&self) {
        self.state().lose_power();
    }

    pub(crate) fn powered(&self) -> bool {
        self.state().powered
    }

    /// What survives a power failure: the durable images of the database and of its log.
    pub(crate) fn durable_images(&self) -> [Vec<u8>; 2] {
        let state = self.state();
        [DB, LOG].map(|f| state.files[f].durable.clone())
    }

    /// What a power failure now would leave, without cutting the power: the durable images and,
    /// if `tear`, a random subset of the unsynced operations.
    pub(crate) fn crash_images(&self, tear: bool) -> [Vec<u8>; 2] {
        let mut state = self.state();
        let mut images = [DB, LOG].map(|f| state.files[f].durable.clone());
        if tear {
            for (file, op) in state.unsynced.clone() {
                if state.rng.random_bool(0.5) {
                    op.apply(&mut images[file]);
                }
            }
        }
        images
    }

    /// What the page cache holds: every write, synced or not. The images a process that is
    /// still alive, or was killed without the machine going down, leaves.
    pub(crate) fn volatile_images(&self) -> [Vec<u8>; 2] {
        let state = self.state();
        assert!(state.powered, "the volatile images are gone with the power");
        [DB, LOG].map(|f| state.files[f].volatile.clone())
    }

    /// Opens an engine on the disk, with its write-ahead log (`logged`) or without.
    pub(crate) fn open_with(
        &self,
        options: EngineOptions,
        logged: bool,
    ) -> tenantry_engine::Result<Engine> {
        if logged {
            Engine::open_backend_with_log(self.clone(), self.log(), options)
        } else {
            Engine::open_backend(self.clone(), options)
        }
    }

    /// Opens an engine on the disk, with its write-ahead log checkpointed every `log` bytes,
    /// or (`None`) without a log.
    pub(crate) fn open(&self, log: Option<u64>) -> tenantry_engine::Result<Engine> {
        let mut options = EngineOptions::default();
        options.log_checkpoint_bytes = log.unwrap_or(options.log_checkpoint_bytes);
        self.open_with(options, log.is_some())
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.call()?.files[self.file].volatile.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = match self.start(Op::Read)? {
            Start::Go(state) => state,
            Start::Fault(state, fault) => return Err(Disk::fail(state, fault, None, None)),
        };
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let source = state.files[self.file]
            .volatile
            .get(start..start + out.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = match self.start(Op::SetLen)? {
            Start::Go(state) => state,
            Start::Fault(state, fault) => return Err(Disk::fail(state, fault, None, None)),
        };
        state.push(self.file, Unsynced::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = match self.start(Op::Sync)? {
            Start::Go(state) => state,
            Start::Fault(mut state, fault) => {
                let fate = state.fail_sync(self.file);
                return Err(Disk::fail(state, fault, None, Some(fate)));
            }
        };
        for op in state.take_unsynced(self.file) {
            op.apply(&mut state.files[self.file].durable);
        }
        state.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = match self.start(Op::Write)? {
            Start::Go(state) => state,
            Start::Fault(mut state, fault) => {
                // A short write: a prefix (maybe nothing) reached the page cache.
                let done = match state.rng.random_range(0..3) {
                    0 => 0,
                    _ => state.rng.random_range(0..=data.len()),
                };
                if done > 0 {
                    let partial = Unsynced::Write {
                        offset,
                        data: data[..done].to_vec(),
                    };
                    state.push(self.file, partial);
                }
                return Err(Disk::fail(state, fault, Some(done), None));
            }
        };
        let op = Unsynced::Write {
            offset,
            data: data.to_vec(),
        };
        state.push(self.file, op);
        Ok(())
    }
}

/// Panics unless `err` is what a storage failure may return.
pub(crate) fn assert_storage_failure(err: &Error, what: &str, label: &str) {
    assert!(
        matches!(err, Error::EngineFailed(_) | Error::Storage(_)),
        "{label}: {what} failed with {err:?} ({}), not EngineFailed or a storage error",
        crate::support::chain(err)
    );
}

/// Panics that happen on the engine's own threads, which no `join` reports.
pub(crate) static ENGINE_THREAD_PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts, from now on, the panics of threads named `tenantry-…` (the engine's).
pub(crate) fn count_engine_thread_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let name = std::thread::current().name().unwrap_or("").to_owned();
        if name.starts_with("tenantry-") {
            ENGINE_THREAD_PANICS.fetch_add(1, Ordering::SeqCst);
        }
        default(info);
    }));
}

/// Panics if an engine thread has panicked.
pub(crate) fn assert_no_engine_thread_panicked(label: &str) {
    assert_eq!(
        ENGINE_THREAD_PANICS.load(Ordering::SeqCst),
        0,
        "{label}: an engine thread panicked"
    );
}
