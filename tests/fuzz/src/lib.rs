//! Fuzz targets for tenantry: one function per target, each taking arbitrary bytes and
//! panicking only when an invariant of the code under test breaks.
//!
//! * [`wire`]: every decoder the host runs on guest bytes (`sdk/src/wire.rs`, `wire/scan.rs`).
//! * [`wal_scan`]: the write-ahead log's record scan and redo replay (`engine/src/wal.rs`).
//! * [`keys`]: the physical key layout and scan clamping (`engine/src/keys.rs`).
//! * [`engine_model`]: engine operations against a model, on a disk that fails after a
//!   countdown.
//!
//! The same functions are called by the replay test (`tests/replay.rs`, every file of
//! `corpus/<target>/`), by the cargo-fuzz targets (`cargo-fuzz/`, nightly) and by the stable
//! driver (`src/bin/fuzz-driver.rs`). See `README.md`.
// A fuzz target reports a broken invariant by panicking: that is its whole output.
#![allow(clippy::panic)]

mod engine_model;
mod keys;
mod wal;
mod wire;

use std::ops::Bound;

pub use engine_model::engine_model;
pub use keys::keys;
pub use wal::wal_scan;
pub use wire::wire;

/// A fuzz target.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: [(&str, Target); 4] = [
    ("wire", wire),
    ("wal_scan", wal_scan),
    ("keys", keys),
    ("engine_model", engine_model),
];

/// An owned bound on a key, for `arbitrary`.
#[derive(Debug, arbitrary::Arbitrary)]
pub(crate) enum OwnedBound {
    Unbounded,
    Included(Vec<u8>),
    Excluded(Vec<u8>),
}

impl OwnedBound {
    pub(crate) fn as_bound(&self) -> Bound<&[u8]> {
        match self {
            OwnedBound::Unbounded => Bound::Unbounded,
            OwnedBound::Included(k) => Bound::Included(k),
            OwnedBound::Excluded(k) => Bound::Excluded(k),
        }
    }

    /// The key, if the bound has one.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        match self {
            OwnedBound::Unbounded => None,
            OwnedBound::Included(k) | OwnedBound::Excluded(k) => Some(k),
        }
    }
}

/// Whether `key` lies between two bounds, compared bytewise.
pub(crate) fn in_bounds((lower, upper): (Bound<&[u8]>, Bound<&[u8]>), key: &[u8]) -> bool {
    let above = match lower {
        Bound::Unbounded => true,
        Bound::Included(s) => key >= s,
        Bound::Excluded(s) => key > s,
    };
    let below = match upper {
        Bound::Unbounded => true,
        Bound::Included(e) => key <= e,
        Bound::Excluded(e) => key < e,
    };
    above && below
}
