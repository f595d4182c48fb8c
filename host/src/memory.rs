//! The only module that touches guest memory.
//!
//! Every `(ptr, len)` from a guest is an untrusted pair of `u32`s: the end is computed with
//! `checked_add`, the range is checked against the memory's current size, and only then are the
//! bytes looked at. A bad range ends the invocation with [`InvokeError::BadArguments`], never a
//! host panic.
//!
//! Most host calls copy what they read into host buffers. The key and value arguments of the
//! `kv_*` calls are instead handed to the engine as slices of guest memory ([`Guest::bytes`]),
//! which saves a copy per call on the hottest path: the guest's memory is its own, not shared
//! (a shared memory is not accepted as `memory`), and the guest is suspended during the host
//! call, so those bytes cannot change while the engine reads them, and the borrow ends with the
//! call.

use wasmtime::{AsContext, AsContextMut, Memory, StoreContextMut};

use crate::error::InvokeError;

/// Why a guest range was refused.
fn bad(function: &'static str, reason: String) -> InvokeError {
    InvokeError::BadArguments { function, reason }
}

/// The guest's byte range `[ptr, ptr + len)`, checked against `memory`.
fn range(
    memory: &Memory,
    store: impl AsContext,
    function: &'static str,
    ptr: u32,
    len: u32,
) -> Result<std::ops::Range<usize>, InvokeError> {
    let start = ptr as usize;
    let end = start
        .checked_add(len as usize)
        .ok_or_else(|| bad(function, format!("range {ptr} + {len} overflows")))?;
    let size = memory.data_size(&store);
    if end > size {
        return Err(bad(
            function,
            format!("range {ptr}..{end} is outside the guest's {size}-byte memory"),
        ));
    }
    Ok(start..end)
}

/// Checks that `[ptr, ptr + len)` lies inside guest memory, without touching it.
pub(crate) fn check(
    memory: &Memory,
    store: impl AsContext,
    function: &'static str,
    ptr: u32,
    len: u32,
) -> Result<(), InvokeError> {
    range(memory, store, function, ptr, len).map(drop)
}

/// Copies `len` guest bytes at `ptr`, refusing more than `max`.
pub(crate) fn read(
    memory: &Memory,
    store: impl AsContext,
    function: &'static str,
    ptr: u32,
    len: u32,
    max: usize,
) -> Result<Vec<u8>, InvokeError> {
    if len as usize > max {
        return Err(bad(
            function,
            format!("length {len} exceeds the largest accepted, {max}"),
        ));
    }
    let range = range(memory, &store, function, ptr, len)?;
    let data = memory.data(&store);
    data.get(range)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| bad(function, "range outside memory".into()))
}

/// Copies `bytes` into guest memory at `ptr`, which must have room for them.
pub(crate) fn write(
    memory: &Memory,
    mut store: impl AsContextMut,
    function: &'static str,
    ptr: u32,
    bytes: &[u8],
) -> Result<(), InvokeError> {
    let len =
        u32::try_from(bytes.len()).map_err(|_| bad(function, "result larger than 4 GiB".into()))?;
    let range = range(memory, &store, function, ptr, len)?;
    let data = memory.data_mut(&mut store);
    data.get_mut(range)
        .ok_or_else(|| bad(function, "range outside memory".into()))?
        .copy_from_slice(bytes);
    Ok(())
}

/// A guest's linear memory, borrowed for the length of one host call beside the host state
/// (see [`split`]), so that host calls copy guest bytes into reusable host buffers and write
/// results straight into guest memory without intermediate copies.
pub(crate) struct Guest<'a> {
    bytes: &'a mut [u8],
}

/// A guest range checked against a [`Guest`]'s memory by [`Guest::range`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuestRange {
    start: usize,
    len: usize,
}

impl GuestRange {
    /// Its length in bytes.
    pub(crate) fn len(self) -> usize {
        self.len
    }
}

/// Borrows `memory`'s bytes and the store's host state at once.
pub(crate) fn split<'a, T: 'static>(
    memory: &Memory,
    store: impl Into<StoreContextMut<'a, T>>,
) -> (Guest<'a>, &'a mut T) {
    let (bytes, state) = memory.data_and_store_mut(store);
    (Guest { bytes }, state)
}

impl Guest<'_> {
    /// Checks that `[ptr, ptr + len)` lies inside guest memory.
    pub(crate) fn range(
        &self,
        function: &'static str,
        ptr: u32,
        len: u32,
    ) -> Result<GuestRange, InvokeError> {
        let start = ptr as usize;
        let end = start
            .checked_add(len as usize)
            .ok_or_else(|| bad(function, format!("range {ptr} + {len} overflows")))?;
        let size = self.bytes.len();
        if end > size {
            return Err(bad(
                function,
                format!("range {ptr}..{end} is outside the guest's {size}-byte memory"),
            ));
        }
        Ok(GuestRange {
            start,
            len: len as usize,
        })
    }

    /// The bytes of `range`, borrowed for as long as this memory is.
    pub(crate) fn bytes(&self, range: GuestRange) -> &[u8] {
        self.bytes
            .get(range.start..range.start.saturating_add(range.len))
            .unwrap_or_default()
    }

    /// Replaces the contents of `into` with the first `max` bytes (at most) of `range`.
    pub(crate) fn copy(&self, range: GuestRange, max: usize, into: &mut Vec<u8>) {
        into.clear();
        let end = range.start.saturating_add(range.len.min(max));
        if let Some(bytes) = self.bytes.get(range.start..end) {
            into.extend_from_slice(bytes);
        }
    }

    /// Whether the bytes of `range` are `bytes`.
    pub(crate) fn equals(&self, range: GuestRange, bytes: &[u8]) -> bool {
        range.len == bytes.len()
            && self
                .bytes
                .get(range.start..range.start.saturating_add(range.len))
                .is_some_and(|guest| guest == bytes)
    }

    /// Copies `bytes` to the start of `range`, which must have room for all of them; nothing is
    /// written otherwise.
    pub(crate) fn write(
        &mut self,
        function: &'static str,
        range: GuestRange,
        bytes: &[u8],
    ) -> Result<(), InvokeError> {
        if bytes.len() > range.len {
            return Err(bad(
                function,
                format!(
                    "{} bytes do not fit a buffer of {} bytes",
                    bytes.len(),
                    range.len
                ),
            ));
        }
        let end = range.start.saturating_add(bytes.len());
        self.bytes
            .get_mut(range.start..end)
            .ok_or_else(|| bad(function, "range outside memory".into()))?
            .copy_from_slice(bytes);
        Ok(())
    }
}
