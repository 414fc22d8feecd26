//! # wfp-ffi — Windows callout drivers written in C, hosted by the wfp-engine
//!
//! This crate is the C side of the engine: the headers in `include/` (named as in the WDK:
//! `fwpsk.h`, `fwpmk.h`, `ndis.h`, `wdm.h`, `wdf.h`, `ntstrsafe.h`, ...), the kernel-runtime layer
//! those headers declare (pool and lookaside lists, spin locks and per-thread IRQL, events and
//! waits, system threads, work items on host worker threads, time, debug output and WPP, strings
//! and ip2string, MDLs, NET_BUFFERs and NBL pools, the Fwps run-time callout API, Fwpm management
//! on the hosting engine, a KMDF control device with its parameters and device-control queue), the
//! loader (`DriverEntry`, the unload protocol of wfp-reference §5.3) and a user-space Driver
//! Verifier.
//!
//! ```text
//!   driver.so (C, built by `wfpctl driver build`)
//!     │ DriverEntry ──► FwpsCalloutRegister3 ─────► Engine::register_callout(CCallout adapter)
//!     │             ──► FwpmEngineOpen0/FilterAdd0 ► Engine transactions (dynamic session)
//!     ▼
//!   wfp-shim ─► Engine::classify ─► CCallout::classify ─► FWPS_INCOMING_VALUES0, metadata,
//!                                      (per-thread scratch,   NET_BUFFER_LIST / stream packet,
//!                                       host bound, IRQL 2)   FWPS_FILTER3 ─► classifyFn (C)
//!   Driver::ioctl ─► default queue's EvtIoDeviceControl (KMDF) ─► WdfRequestComplete
//!             or ─► IRPs to MajorFunction[CREATE, DEVICE_CONTROL, CLEANUP, CLOSE] (WDM) ─► IoCompleteRequest
//!   Driver::unload ─► DriverUnload ─► wait for the driver's threads / work items (bounded) ─►
//!                     host cleanup (sessions, flow contexts, callouts) ─► Verifier report (leaks
//!                     by tag and call site, objects left, IRQL, locks) ─► dlclose
//! ```
//!
//! What it never does: run driver code without a host bound to the thread, let a panic cross into
//! C (every export has a panic boundary), or declare in a header a function it does not implement.
//! `unsafe` lives only in the `sys` module tree, each block with a `SAFETY:` argument.
//!
//! Exported symbols: the runtime's functions are `#[no_mangle] extern "C"` in this crate; a host
//! binary links it statically and exports them dynamically (`-rdynamic`, see `wfpctl`'s build
//! script), so a driver's undefined references bind to the host at `dlopen` time — the Linux
//! counterpart of linking against `ntoskrnl.lib`/`fwpkclnt.lib`. `docs/c-abi.md` is the porting
//! guide and the table of every supported function.

pub mod compile;
pub mod gen;
mod host;
mod sys;
pub mod verifier;

pub use host::{DriverHost, HostConfig, LogLine, TimeSource};
pub use sys::{
    DeviceHandle, DeviceInfo, Driver, DriverOptions, IoctlError, IoctlOutput, LoadError,
    ParamValue, PoolTypeCounts, UnloadError, UnloadReport,
};
pub use verifier::Finding;

/// The C names of every function the runtime exports, sorted.
pub fn exported_functions() -> Vec<&'static str> {
    sys::exports_names()
}

/// The sizes and member offsets of the ABI structures as this crate lays them out
/// (`("sizeof(T)" | "offsetof(T, m)", value)`); the C layout test asserts the same values.
pub fn abi_layout() -> Vec<(String, usize)> {
    sys::types::layout_table()
}
