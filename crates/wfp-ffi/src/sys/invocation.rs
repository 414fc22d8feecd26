//! The classifyFn invocation running on this thread: what the Fwps functions that only make sense
//! inside classifyFn need (the engine's classify context, the metadata, the indicated packet or
//! stream data, and the indicated NET_BUFFER_LIST's address to recognise it).
//!
//! `classifyContext` (classifyFn1+) is the address of the [`Invocation`]; the runtime accepts it
//! only while that invocation runs on the calling thread, so a stale or forged pointer is refused
//! (STATUS_INVALID_PARAMETER), never dereferenced.

use std::cell::Cell;
use std::ffi::c_void;

use wfp_core::callout::StreamData;
use wfp_core::{ClassifyContext, Metadata};

use super::types::{FwpsStreamData0, NetBufferList};

/// One classifyFn call.
pub(crate) struct Invocation<'c, 'a> {
    pub(crate) ctx: &'c ClassifyContext<'a>,
    pub(crate) meta: &'c Metadata,
    /// The indicated stream data (stream layers).
    pub(crate) stream: Option<StreamData<'c>>,
    /// The indicated NET_BUFFER_LIST (null at layers without one).
    pub(crate) nbl: *mut NetBufferList,
    /// The indicated FWPS_STREAM_DATA0 (null outside the stream layers).
    pub(crate) stream_data: *const FwpsStreamData0,
    /// FwpsReferenceNetBufferList0 calls on the indicated list not yet dereferenced.
    pub(crate) references: Cell<u32>,
}

/// The current invocation's address (the `classifyContext` handed to C); null outside classifyFn.
/// It is set with the thread's host binding ([`super::ctx::bind_classify`]), whose guard restores
/// the previous one.
pub(crate) fn current_address() -> *const c_void {
    super::ctx::current_invocation()
}

/// Runs `f` with the current invocation, if a classifyFn is running on this thread.
pub(crate) fn with_current<R>(f: impl FnOnce(&Invocation<'_, '_>) -> R) -> Option<R> {
    let p = current_address();
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null pointer was set by `ctx::bind_classify` from a live invocation whose
    // guard has not been dropped (the guard lives in the frame that owns the invocation and calls
    // classifyFn).
    Some(f(unsafe { &*p.cast::<Invocation<'_, '_>>() }))
}
