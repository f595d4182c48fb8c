//! The guest side of the ABI, and the only module of this crate with `unsafe`: the
//! `tenantry:v1` import block, the `tenantry_alloc` and `tenantry_abi_version` exports, the
//! [`export!`](crate::export!) macro and the entry point it calls.
//!
//! Everything else in the crate calls the safe wrappers below, which return raw ABI results
//! (lengths and statuses); `host.rs` turns those into `Result`s. On targets other than wasm32
//! the wrappers are stubs returning [`Unavailable`], so the crate builds and tests on the host.
//!
//! Memory ownership (see `sdk/ABI.md`): the guest owns all of its linear memory. The host writes
//! a function's input into a buffer it got from `tenantry_alloc(len)`, and the function takes
//! ownership of that buffer (it is freed when the input is dropped). Host results are copied
//! into buffers the guest allocated itself, with `result_read`.
#![allow(unsafe_code)]

use alloc::vec::Vec;

use crate::handler::{self, Handler};

/// A host function was called outside a wasm32 plugin, where no host is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable;

/// Runs one invocation of a plugin function: takes ownership of the input buffer, calls
/// `handler` and reports its result to the host. Called by the code [`export!`](crate::export!)
/// generates; returns the function status of the ABI (0 success, 1 error).
///
/// # Safety
/// `input_len` must be 0, or `input_ptr` must be a pointer returned by
/// `tenantry_alloc(input_len)` in this instance that has not been passed to `invoke` before.
#[doc(hidden)]
pub unsafe fn invoke<M, H: Handler<M>>(input_ptr: i32, input_len: i32, handler: H) -> i32 {
    // Pointers and lengths are u32 carried in i32 (ABI.md, "Conventions").
    let len = input_len as u32 as usize;
    let input = if len == 0 {
        Vec::new()
    } else {
        // SAFETY: by this function's contract `input_ptr` came from `tenantry_alloc(len)`,
        // which allocates exactly `len` bytes with the layout of a `Vec<u8>` of capacity `len`,
        // and the host initialized all `len` bytes before calling. Ownership moves here once.
        unsafe { Vec::from_raw_parts(input_ptr as u32 as usize as *mut u8, len, len) }
    };
    handler::run(input, handler)
}

/// Exports plugin functions to the host under their own names.
///
/// Each function takes one input ([`Json<T>`](crate::Json), `Vec<u8>`, `String`, `&[u8]`, or
/// nothing) and returns `Result<O, E>` where `O` is [`Json<T>`](crate::Json), `Vec<u8>`,
/// `String` or `()`, and `E: Into<`[`Error`](crate::Error)`>`. List every function of the
/// plugin in a single `export!` call; the functions must be in scope.
///
/// ```
/// use tenantry_sdk::{export, Error, Json};
///
/// fn echo(input: Vec<u8>) -> Result<Vec<u8>, Error> {
///     Ok(input)
/// }
/// fn answer() -> Result<Json<u32>, Error> {
///     Ok(Json(42))
/// }
/// export!(echo, answer);
/// ```
///
/// `memory` and names starting with `tenantry_` are reserved and rejected at compile time:
///
/// ```compile_fail
/// fn tenantry_alloc(input: Vec<u8>) -> Result<Vec<u8>, tenantry_sdk::Error> {
///     Ok(input)
/// }
/// tenantry_sdk::export!(tenantry_alloc);
/// ```
#[macro_export]
macro_rules! export {
    ($($function:ident),+ $(,)?) => {
        $(
            const _: () = {
                ::core::assert!(
                    !$crate::wire::export::is_reserved(::core::stringify!($function)),
                    ::core::concat!(
                        "`", ::core::stringify!($function), "` cannot be exported: `memory` ",
                        "and names starting with `tenantry_` are reserved by the tenantry ABI",
                    ),
                );
                // Exported only on wasm32: on other targets a global symbol named after the
                // function (`read`, `write`, ...) could replace a libc symbol.
                #[allow(unsafe_code)]
                #[cfg_attr(
                    target_arch = "wasm32",
                    unsafe(export_name = ::core::stringify!($function))
                )]
                #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
                extern "C" fn tenantry_export(input_ptr: i32, input_len: i32) -> i32 {
                    // SAFETY: the host passes a buffer from `tenantry_alloc(input_len)` that it
                    // allocated for this call, or `input_len == 0` (ABI.md, "Invocation").
                    unsafe { $crate::__invoke(input_ptr, input_len, $function) }
                }
            };
        )+
    };
}

#[cfg(target_arch = "wasm32")]
mod exports {
    use core::alloc::Layout;
    use core::ptr::{self, NonNull};

    /// `tenantry_abi_version() -> i32`.
    #[unsafe(export_name = "tenantry_abi_version")]
    extern "C" fn tenantry_abi_version() -> i32 {
        crate::wire::ABI_VERSION
    }

    /// `tenantry_alloc(len: i32) -> i32`: `len` bytes with the layout of a `Vec<u8>` of
    /// capacity `len`, or 0 when the allocator fails (for example when `memory.grow` is
    /// refused). A zero-length request returns a non-zero dangling pointer.
    #[unsafe(export_name = "tenantry_alloc")]
    extern "C" fn tenantry_alloc(len: usize) -> *mut u8 {
        if len == 0 {
            return NonNull::<u8>::dangling().as_ptr();
        }
        let Ok(layout) = Layout::array::<u8>(len) else {
            return ptr::null_mut();
        };
        // SAFETY: `layout` has a non-zero size (`len > 0`); a null result is passed on to the
        // host as the documented failure value.
        unsafe { alloc::alloc::alloc(layout) }
    }
}

/// The global allocator of plugins built with the SDK's default `allocator` feature.
///
/// It is dlmalloc, the allocator Rust's standard library uses on wasm32, with one difference
/// that matters to the tenantry host: the standard library's copy grows memory for its very
/// first allocation, even though the initial memory usually has tens of KiB free after the
/// static data. Every invocation runs in a fresh instance from the host's pool, and a memory
/// that grew costs two `mprotect` calls per invocation there (one with a TLB shootdown), several
/// microseconds. dlmalloc 0.2.14 starts in the free tail of the initial memory
/// (`__heap_base..__heap_end`) when its first request fits, and a 4 KiB granularity makes that
/// request small, so an invocation that allocates little never grows its memory.
#[cfg(all(target_arch = "wasm32", feature = "allocator"))]
mod allocator {
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;

    use dlmalloc::Dlmalloc;

    #[cfg(target_feature = "atomics")]
    compile_error!(
        "the tenantry SDK's allocator is single-threaded; plugins are built without `atomics`"
    );

    /// Bytes dlmalloc asks the system for at least; 4 KiB fits the tail of the initial memory.
    const GRANULARITY: usize = 4 << 10;

    struct Heap(UnsafeCell<Dlmalloc>);

    // SAFETY: wasm32 without the `atomics` target feature (refused above) runs one thread, so
    // the `UnsafeCell` is never reached from two threads.
    unsafe impl Sync for Heap {}

    #[global_allocator]
    static HEAP: Heap = Heap(UnsafeCell::new(
        const {
            let mut heap = Dlmalloc::new();
            assert!(heap.set_granularity(GRANULARITY));
            heap
        },
    ));

    // SAFETY: each method forwards to the matching `Dlmalloc` method, which has the same
    // contract as `GlobalAlloc`'s; the exclusive reference to the `Dlmalloc` is unique because
    // there is one thread and dlmalloc never calls back into the global allocator.
    unsafe impl GlobalAlloc for Heap {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: see the impl; the caller upholds `GlobalAlloc::alloc`'s contract.
            unsafe { (*self.0.get()).malloc(layout.size(), layout.align()) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: see the impl; the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
            unsafe { (*self.0.get()).calloc(layout.size(), layout.align()) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: see the impl; `ptr` was allocated here with `layout` (the caller's
            // contract).
            unsafe { (*self.0.get()).free(ptr, layout.size(), layout.align()) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: see the impl; `ptr` was allocated here with `layout` and `new_size` is
            // valid for it (the caller's contract).
            unsafe { (*self.0.get()).realloc(ptr, layout.size(), layout.align(), new_size) }
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod imports {
    // Must equal `crate::wire::IMPORT_MODULE`; `#[link]` only takes a literal. The
    // tenantry-tests smoke test checks the built plugins import from `wire::IMPORT_MODULE`.
    #[link(wasm_import_module = "tenantry:v1")]
    unsafe extern "C" {
        pub(super) fn kv_get_into(
            table: *const u8,
            table_len: usize,
            key: *const u8,
            key_len: usize,
            dst: *mut u8,
            dst_cap: usize,
        ) -> i64;
        pub(super) fn kv_put(
            table: *const u8,
            table_len: usize,
            key: *const u8,
            key_len: usize,
            value: *const u8,
            value_len: usize,
        ) -> i32;
        pub(super) fn kv_delete(
            table: *const u8,
            table_len: usize,
            key: *const u8,
            key_len: usize,
        ) -> i32;
        pub(super) fn kv_scan(request: *const u8, request_len: usize) -> i64;
        pub(super) fn audit_log(
            action: *const u8,
            action_len: usize,
            message: *const u8,
            message_len: usize,
        ) -> i32;
        pub(super) fn debug_log(message: *const u8, message_len: usize) -> i32;
        pub(super) fn output(bytes: *const u8, len: usize) -> i32;
        pub(super) fn result_read(dst: *mut u8, dst_len: usize) -> i32;
        pub(super) fn last_error() -> i64;
    }
}

/// Safe wrappers over the imports. The host only reads the `(ptr, len)` ranges it is given
/// (writing only through `result_read` and `kv_get_into`, into the buffer given), never keeps them past the call and never calls back
/// into the guest, so passing slices borrowed for the duration of the call is sound.
#[cfg(target_arch = "wasm32")]
mod calls {
    use alloc::vec;
    use alloc::vec::Vec;
    use core::mem::MaybeUninit;

    use super::{Unavailable, imports};

    pub(crate) fn kv_get_into<'d>(
        table: &[u8],
        key: &[u8],
        dst: &'d mut [MaybeUninit<u8>],
    ) -> Result<(i64, Option<&'d [u8]>), Unavailable> {
        let (t, k) = (table, key);
        // SAFETY: `table` and `key` are valid for reads and `dst` for writes of `dst.len()`
        // bytes for the whole call; the host writes at most that many bytes into `dst`, and
        // only when the whole value fits (ABI §6.10).
        let code = unsafe {
            imports::kv_get_into(
                t.as_ptr(),
                t.len(),
                k.as_ptr(),
                k.len(),
                dst.as_mut_ptr().cast::<u8>(),
                dst.len(),
            )
        };
        let value = usize::try_from(code)
            .ok()
            .filter(|&len| len <= dst.len())
            .map(|len| {
                // SAFETY: a length `len <= dst.len()` means the host copied the value's `len`
                // bytes to the start of `dst` (ABI §6.10), so they are initialized; the slice
                // borrows `dst`, which lives for `'d`.
                unsafe { core::slice::from_raw_parts(dst.as_ptr().cast::<u8>(), len) }
            });
        Ok((code, value))
    }

    pub(crate) fn kv_put(table: &[u8], key: &[u8], value: &[u8]) -> Result<i32, Unavailable> {
        let (t, k, v) = (table, key, value);
        // SAFETY: the three slices are valid for reads for the whole call (see module docs).
        Ok(unsafe {
            imports::kv_put(
                t.as_ptr(),
                t.len(),
                k.as_ptr(),
                k.len(),
                v.as_ptr(),
                v.len(),
            )
        })
    }

    pub(crate) fn kv_delete(table: &[u8], key: &[u8]) -> Result<i32, Unavailable> {
        // SAFETY: both slices are valid for reads for the whole call (see module docs).
        Ok(unsafe { imports::kv_delete(table.as_ptr(), table.len(), key.as_ptr(), key.len()) })
    }

    pub(crate) fn kv_scan(request: &[u8]) -> Result<i64, Unavailable> {
        // SAFETY: the slice is valid for reads for the whole call (see module docs).
        Ok(unsafe { imports::kv_scan(request.as_ptr(), request.len()) })
    }

    pub(crate) fn audit_log(action: &[u8], message: Option<&[u8]>) -> Result<i32, Unavailable> {
        let (message_ptr, message_len) = match message {
            Some(m) => (m.as_ptr(), m.len()),
            None => (core::ptr::null(), crate::wire::NO_MESSAGE as usize),
        };
        // SAFETY: `action` and `message` are valid for reads for the whole call; with
        // `NO_MESSAGE` as the length the host ignores the (null) message pointer.
        Ok(unsafe { imports::audit_log(action.as_ptr(), action.len(), message_ptr, message_len) })
    }

    pub(crate) fn debug_log(message: &[u8]) -> Result<i32, Unavailable> {
        // SAFETY: the slice is valid for reads for the whole call (see module docs).
        Ok(unsafe { imports::debug_log(message.as_ptr(), message.len()) })
    }

    pub(crate) fn output(bytes: &[u8]) -> Result<i32, Unavailable> {
        // SAFETY: the slice is valid for reads for the whole call (see module docs).
        Ok(unsafe { imports::output(bytes.as_ptr(), bytes.len()) })
    }

    pub(crate) fn result_read(len: usize) -> Result<Vec<u8>, Unavailable> {
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` is `len` initialized bytes, valid for writes for the whole call; the
        // host writes at most `dst_len` bytes into it.
        let copied = unsafe { imports::result_read(buf.as_mut_ptr(), buf.len()) };
        buf.truncate(usize::try_from(copied).unwrap_or(0));
        Ok(buf)
    }

    pub(crate) fn last_error() -> Result<i64, Unavailable> {
        // SAFETY: takes no pointers; only replaces the host-side result buffer.
        Ok(unsafe { imports::last_error() })
    }
}

/// Stubs for targets without a tenantry host: every call reports [`Unavailable`].
#[cfg(not(target_arch = "wasm32"))]
mod calls {
    use alloc::vec::Vec;
    use core::mem::MaybeUninit;

    use super::Unavailable;

    pub(crate) fn kv_get_into<'d>(
        _table: &[u8],
        _key: &[u8],
        _dst: &'d mut [MaybeUninit<u8>],
    ) -> Result<(i64, Option<&'d [u8]>), Unavailable> {
        Err(Unavailable)
    }

    pub(crate) fn kv_put(_table: &[u8], _key: &[u8], _value: &[u8]) -> Result<i32, Unavailable> {
        Err(Unavailable)
    }

    pub(crate) fn kv_delete(_table: &[u8], _key: &[u8]) -> Result<i32, Unavailable> {
        Err(Unavailable)
    }

    pub(crate) fn kv_scan(_request: &[u8]) -> Result<i64, Unavailable> {
        Err(Unavailable)
    }

    pub(crate) fn audit_log(_action: &[u8], _message: Option<&[u8]>) -> Result<i32, Unavailable> {
        Err(Unavailable)
    }

    pub(crate) fn debug_log(_message: &[u8]) -> Result<i32, Unavailable> {
        Err(Unavailable)
    }

    pub(crate) fn output(_bytes: &[u8]) -> Result<i32, Unavailable> {
        Err(Unavailable)
    }

    pub(crate) fn result_read(_len: usize) -> Result<Vec<u8>, Unavailable> {
        Err(Unavailable)
    }

    pub(crate) fn last_error() -> Result<i64, Unavailable> {
        Err(Unavailable)
    }
}

pub(crate) use calls::{
    audit_log, debug_log, kv_delete, kv_get_into, kv_put, kv_scan, last_error, output, result_read,
};
