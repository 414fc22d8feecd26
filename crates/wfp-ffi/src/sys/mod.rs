//! The C side: every `#[no_mangle] extern "C"` function the headers in `include/` declare, the
//! structures they exchange, the callout adapter and the loader. This module tree is the only place
//! in the crate with `unsafe` code; each block says why it is sound.
//!
//! Every exported function body runs inside [`boundary`]: a panic never unwinds into C; it is
//! reported to the host (a Verifier finding) and the function returns its failure value.
#![allow(
    unsafe_code,
    reason = "the C ABI of a WDK callout driver: raw pointers from C, dlopen, exported functions"
)]

mod bfe;
mod callbackobj;
mod callout;
mod checksum;
mod convert;
mod csq;
mod ctx;
mod dispatcher;
mod dpc;
mod exports;
mod fwpm;
mod fwps;
mod fwpstoken;
mod inject;
mod invocation;
mod ip2string;
mod irp;
mod kernel;
mod l2inject;
mod loader;
mod lookaside;
mod nbl;
mod nblapi;
mod nbltag;
mod ndis;
mod ndisnb;
mod ndispool;
mod pctx;
mod pend;
mod redirect;
mod registry;
mod resource;
mod streamgate;
mod sync;
mod thread;
mod timer;
pub(crate) mod types;
mod wdf;
mod wdm;
mod wdm_io;

pub(crate) use ctx::current_driver;
pub(crate) use exports::{names as exports_names, EXPORTS};
pub(crate) use fwpm::Sessions;
pub use kernel::PoolTypeCounts;
pub use loader::{Driver, DriverOptions, LoadError, UnloadError, UnloadReport};
pub(crate) use nbl::{AsyncState, InProgress};
pub use wdf::{DeviceInfo, IoctlError, IoctlOutput, ParamValue};
pub use wdm_io::DeviceHandle;

/// The kernel-runtime state of one host beyond the engine: handles and thread objects, work
/// items and the worker threads, lookaside lists, and each driver's running activity.
#[derive(Debug, Default)]
pub(crate) struct RtState {
    pub(crate) objects: parking_lot::Mutex<thread::Objects>,
    pub(crate) activity: thread::Activity,
    pub(crate) workers: thread::Workers,
    pub(crate) dpcs: dpc::Queued,
    pub(crate) timers: timer::Timers,
    /// Advanced by every dispatcher-object signal (multi-object waits sleep on it).
    pub(crate) dispatcher: dispatcher::Generation,
    /// KMUTEXes owned right now: address → the driver that acquired them (one held at unload is
    /// a Verifier finding).
    pub(crate) held_mutexes: parking_lot::Mutex<std::collections::HashMap<usize, usize>>,
    /// ERESOURCEs initialised and not yet deleted.
    pub(crate) resources: resource::Resources,
    pub(crate) lookasides: parking_lot::Mutex<lookaside::Lists>,
    pub(crate) wdf: wdf::Wdf,
    pub(crate) wdm: wdm::Wdm,
    pub(crate) ndis: parking_lot::Mutex<ndispool::State>,
    pub(crate) pool_types: parking_lot::Mutex<kernel::PoolTypes>,
    pub(crate) bfe: parking_lot::Mutex<bfe::Subscriptions>,
    pub(crate) callbacks: parking_lot::Mutex<callbackobj::Callbacks>,
    /// Stream classifyFns in progress per flow (out-of-band stream injections wait for them).
    pub(crate) stream_gate: streamgate::StreamGate,
}

/// Runs `body`, turning a panic into `fallback` and a Verifier finding (the panic boundary every
/// exported function has).
pub(crate) fn boundary<R>(function: &'static str, fallback: R, body: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            ctx::with_host(|h| {
                h.finding(crate::verifier::Finding::Assertion {
                    message: format!("{function}: internal panic contained at the C boundary"),
                });
            });
            fallback
        }
    }
}

/// NTSTATUS as C sees it.
pub(crate) type NtStatus = i32;

/// A `wfp_core::Status` as an NTSTATUS.
pub(crate) fn nt(s: wfp_core::Status) -> NtStatus {
    s.0 as i32
}

pub(crate) const STATUS_SUCCESS: NtStatus = 0;
pub(crate) const STATUS_INVALID_PARAMETER: NtStatus = 0xC000_000D_u32 as i32;
pub(crate) const STATUS_INVALID_DEVICE_STATE: NtStatus = 0xC000_0184_u32 as i32;
pub(crate) const STATUS_INSUFFICIENT_RESOURCES: NtStatus = 0xC000_009A_u32 as i32;
pub(crate) const STATUS_INVALID_HANDLE: NtStatus = 0xC000_0008_u32 as i32;
