//! A disk in memory that fails after a countdown, and remembers what was synced.
//!
//! As in redb's fuzzer, every I/O call (read, write, set_len, sync) counts down a budget shared
//! by the database file and its log; the call that finds it spent fails, and so does every call
//! after it (the disk is gone), the failing write landing half of its bytes (a torn write). A
//! crash is modelled by reopening a copy of either what the last `sync_data` made durable (no
//! unsynced write reached the disk) or of everything written (all of them did).

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use redb::StorageBackend;

/// The shared I/O budget: `None` never fails.
#[derive(Debug, Default)]
pub(crate) struct Countdown {
    state: Mutex<(Option<u32>, bool)>,
}

impl Countdown {
    pub(crate) fn new(budget: Option<u32>) -> Arc<Self> {
        Arc::new(Countdown {
            state: Mutex::new((budget, false)),
        })
    }

    /// Whether a call has failed.
    pub(crate) fn fired(&self) -> bool {
        self.state.lock().1
    }

    /// Spends one call of the budget, or fails: `Err(true)` for the call that found the
    /// budget spent, `Err(false)` for every one after it.
    fn spend(&self) -> Result<(), bool> {
        let mut state = self.state.lock();
        match state.0 {
            _ if state.1 => Err(false),
            Some(0) => {
                state.1 = true;
                Err(true)
            }
            Some(n) => {
                state.0 = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn tick(&self) -> io::Result<()> {
        self.spend().map_err(|_| injected())
    }
}

fn injected() -> io::Error {
    io::Error::other("injected I/O failure")
}

#[derive(Debug, Default, Clone)]
struct Contents {
    written: Vec<u8>,
    synced: Vec<u8>,
}

/// One file of the disk; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct File {
    contents: Arc<Mutex<Contents>>,
    countdown: Arc<Countdown>,
}

impl File {
    pub(crate) fn new(countdown: &Arc<Countdown>) -> Self {
        File {
            contents: Arc::default(),
            countdown: Arc::clone(countdown),
        }
    }

    /// A copy of this file after a crash, on a disk that never fails: its synced bytes only,
    /// or all it was written.
    pub(crate) fn after_crash(&self, synced_only: bool, countdown: &Arc<Countdown>) -> Self {
        let contents = self.contents.lock();
        let bytes = if synced_only {
            contents.synced.clone()
        } else {
            contents.written.clone()
        };
        File {
            contents: Arc::new(Mutex::new(Contents {
                written: bytes.clone(),
                synced: bytes,
            })),
            countdown: Arc::clone(countdown),
        }
    }
}

fn span(offset: u64, len: usize) -> io::Result<(usize, usize)> {
    let start = usize::try_from(offset).map_err(io::Error::other)?;
    let end = start
        .checked_add(len)
        .ok_or_else(|| io::Error::other("offset overflow"))?;
    Ok((start, end))
}

impl StorageBackend for File {
    fn len(&self) -> io::Result<u64> {
        Ok(self.contents.lock().written.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.countdown.tick()?;
        let (start, end) = span(offset, out.len())?;
        let contents = self.contents.lock();
        let bytes = contents
            .written
            .get(start..end)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.countdown.tick()?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.contents.lock().written.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.countdown.tick()?;
        let mut contents = self.contents.lock();
        let Contents { written, synced } = &mut *contents;
        synced.clone_from(written);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let spent = self.countdown.spend();
        // The failing write tears: half of it lands.
        let data = match spent {
            Ok(()) => data,
            Err(true) => &data[..data.len() / 2],
            Err(false) => return Err(injected()),
        };
        let (start, end) = span(offset, data.len())?;
        let mut contents = self.contents.lock();
        if contents.written.len() < end {
            contents.written.resize(end, 0);
        }
        contents.written[start..end].copy_from_slice(data);
        spent.map_err(|_| injected())
    }
}
