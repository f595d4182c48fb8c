//! The only module that touches guest memory.
//!
//! Every `(ptr, len)` from a guest is an untrusted pair of `u32`s: the end is computed with
//! `checked_add`, the range is checked against the memory's current size, and bytes are copied
//! into host buffers before anything else looks at them. A bad range ends the invocation with
//! [`InvokeError::BadArguments`], never a host panic.

use wasmtime::{AsContext, AsContextMut, Memory};

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
