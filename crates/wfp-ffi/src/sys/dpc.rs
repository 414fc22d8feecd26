//! Deferred procedure calls (wdk-runtime.md §4 "DPCs"): `KeInitializeDpc`,
//! `KeInitializeThreadedDpc`, `KeInsertQueueDpc`, `KeRemoveQueueDpc`, `KeFlushQueuedDpcs`, and
//! the processor numbering they depend on.
//!
//! A queued DPC runs once on one of the host's worker threads at DISPATCH_LEVEL (a threaded DPC
//! too: its routine must be correct at DISPATCH anyway), with `KeGetCurrentProcessorNumber()`
//! reporting the processor the DPC was queued on — drivers keep per-processor queues and the DPC
//! serves the queue of "its" processor. The KDPC is the driver's memory with the WDK's x64 layout
//! (64 bytes); the runtime keeps its routine, context and arguments in it and marks it queued in
//! `DpcData` (a unique token, so `KeRemoveQueueDpc` cancels exactly the pending run). A queued
//! DPC holds the driver like a work item: unload waits for it.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

use super::boundary;
use super::ctx::{self, DISPATCH_LEVEL};

/// `KOBJECTS` values stored in `KDPC.Type`.
const DPC_OBJECT: u8 = 19;
const THREADED_DPC_OBJECT: u8 = 26;

/// `PKDEFERRED_ROUTINE`.
type DeferredRoutine = unsafe extern "C" fn(*mut Kdpc, *mut c_void, *mut c_void, *mut c_void);

/// The WDK's x64 `KDPC` (wdm.h): 64 bytes.
#[repr(C)]
pub(crate) struct Kdpc {
    kind: u8,
    importance: u8,
    number: u16,
    dpc_list_entry: usize,
    processor_history: usize,
    routine: Option<DeferredRoutine>,
    context: *mut c_void,
    arg1: *mut c_void,
    arg2: *mut c_void,
    /// 0 = not queued; else the token of the pending run.
    dpc_data: AtomicUsize,
}

const _: () = assert!(std::mem::size_of::<Kdpc>() == 64);

thread_local! {
    /// The processor a DPC running on this thread was queued on (`u32::MAX`: none).
    static DPC_PROCESSOR: Cell<u32> = const { Cell::new(u32::MAX) };
}

/// The DPC runs a host has submitted and not finished, by submission number
/// (`KeFlushQueuedDpcs` waits for those submitted before it was called).
#[derive(Debug, Default)]
pub(crate) struct Queued {
    state: Mutex<(u64, BTreeSet<u64>)>,
    cv: Condvar,
}

impl Queued {
    fn begin(&self) -> u64 {
        let mut s = self.state.lock();
        s.0 += 1;
        let n = s.0;
        s.1.insert(n);
        n
    }

    fn end(&self, n: u64) {
        self.state.lock().1.remove(&n);
        self.cv.notify_all();
    }

    /// Waits until every run submitted so far has finished (later ones are not waited for).
    fn flush(&self) {
        let mut s = self.state.lock();
        let upto = s.0;
        while s.1.first().is_some_and(|&first| first <= upto) {
            self.cv.wait(&mut s);
        }
    }
}

/// Tokens for queued DPCs (never 0).
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(1);

/// The processor count the runtime reports (`KeQueryActiveProcessorCount`,
/// `KeQueryMaximumProcessorCount`): the host's available parallelism.
pub(crate) fn processors() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
}

/// `KeGetCurrentProcessorIndex`: the DPC's processor inside a DPC, else the CPU this thread runs on
/// (kept while the thread stays at DISPATCH_LEVEL or above: [`ctx::pin_processor`]).
pub(crate) fn current_processor() -> u32 {
    let p = DPC_PROCESSOR.with(Cell::get);
    if p != u32::MAX {
        return p;
    }
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    ctx::pin_processor(u32::try_from(cpu).unwrap_or(0) % processors())
}

/// Runs `f` as if on `processor` (KeGetCurrentProcessorNumber/Index answer it): the
/// reauthorization FwpsCompleteOperation0 runs synchronously for a driver thread, on that
/// thread's processor on Windows (see pend.rs).
pub(crate) fn with_processor<R>(processor: u32, f: impl FnOnce() -> R) -> R {
    let old = DPC_PROCESSOR.with(|p| p.replace(processor));
    let r = f();
    DPC_PROCESSOR.with(|p| p.set(old));
    r
}

fn init(dpc: *mut Kdpc, routine: Option<DeferredRoutine>, context: *mut c_void, kind: u8) {
    // SAFETY: the caller's KDPC storage (64 bytes, the header's type); writing it whole is what
    // KeInitializeDpc does.
    if let Some(d) = unsafe { dpc.as_mut() } {
        *d = Kdpc {
            kind,
            importance: 1,
            number: 0,
            dpc_list_entry: 0,
            processor_history: 0,
            routine,
            context,
            arg1: std::ptr::null_mut(),
            arg2: std::ptr::null_mut(),
            dpc_data: AtomicUsize::new(0),
        };
    }
}

#[no_mangle]
pub(crate) extern "C" fn KeInitializeDpc(
    dpc: *mut Kdpc,
    routine: Option<DeferredRoutine>,
    context: *mut c_void,
) {
    boundary("KeInitializeDpc", (), || {
        init(dpc, routine, context, DPC_OBJECT)
    });
}

#[no_mangle]
pub(crate) extern "C" fn KeInitializeThreadedDpc(
    dpc: *mut Kdpc,
    routine: Option<DeferredRoutine>,
    context: *mut c_void,
) {
    boundary("KeInitializeThreadedDpc", (), || {
        init(dpc, routine, context, THREADED_DPC_OBJECT);
    });
}

/// Runs a queued DPC on this worker thread unless it was removed from the queue meanwhile.
fn run(dpc: usize, token: usize, processor: u32) {
    // SAFETY: the driver keeps a queued KDPC alive until it runs or is removed (a WDK rule; the
    // unload protocol waits for queued DPCs), so the address is a live Kdpc.
    let d = unsafe { &*(dpc as *const Kdpc) };
    if d.dpc_data
        .compare_exchange(token, 0, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return; // removed (KeRemoveQueueDpc) before it ran
    }
    let (routine, context, a1, a2) = (d.routine, d.context, d.arg1, d.arg2);
    if let Some(r) = routine {
        DPC_PROCESSOR.with(|p| p.set(processor));
        // SAFETY: the driver's KDEFERRED_ROUTINE with the arguments it queued; the image stays
        // mapped while the DPC counts as activity.
        unsafe { r(dpc as *mut Kdpc, context, a1, a2) };
        DPC_PROCESSOR.with(|p| p.set(u32::MAX));
    }
}

pub(crate) fn insert(dpc: *mut Kdpc, arg1: *mut c_void, arg2: *mut c_void) -> bool {
    ctx::check_irql("KeInsertQueueDpc", 15);
    // SAFETY: the caller's initialized KDPC.
    let Some(d) = (unsafe { dpc.as_mut() }) else {
        return false;
    };
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed).max(1);
    if d.dpc_data
        .compare_exchange(0, token, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false; // already queued
    }
    d.arg1 = arg1;
    d.arg2 = arg2;
    let Some(host) = ctx::with_host(|h| h.me.upgrade()).flatten() else {
        d.dpc_data.store(0, Ordering::Release);
        return false;
    };
    let driver = ctx::current_driver();
    let processor = current_processor();
    host.rt.activity.enter(driver);
    let seq = host.rt.dpcs.begin();
    let (h, addr) = (host.clone(), dpc as usize);
    let job = Box::new(move || {
        {
            let _bound = ctx::bind(&h, driver, DISPATCH_LEVEL, "KDEFERRED_ROUTINE");
            run(addr, token, processor);
        }
        h.rt.dpcs.end(seq);
        h.rt.activity.leave(driver);
    });
    if !host.rt.workers.submit(job) {
        d.dpc_data.store(0, Ordering::Release);
        host.rt.dpcs.end(seq);
        host.rt.activity.leave(driver);
        return false;
    }
    true
}

/// `KeFlushQueuedDpcs` (PASSIVE_LEVEL): returns once every DPC queued before the call has run or
/// been removed. Above PASSIVE it is a Verifier finding and returns at once (waiting inside a DPC
/// would deadlock the worker it needs).
#[no_mangle]
pub(crate) extern "C" fn KeFlushQueuedDpcs() {
    boundary("KeFlushQueuedDpcs", (), || {
        ctx::check_irql("KeFlushQueuedDpcs", 0);
        if ctx::irql() > 0 {
            return;
        }
        if let Some(host) = ctx::with_host(|h| h.me.upgrade()).flatten() {
            host.rt.dpcs.flush();
        }
    });
}

#[no_mangle]
pub(crate) extern "C" fn KeInsertQueueDpc(
    dpc: *mut Kdpc,
    arg1: *mut c_void,
    arg2: *mut c_void,
) -> u8 {
    boundary("KeInsertQueueDpc", 0, || u8::from(insert(dpc, arg1, arg2)))
}

#[no_mangle]
pub(crate) extern "C" fn KeRemoveQueueDpc(dpc: *mut Kdpc) -> u8 {
    boundary("KeRemoveQueueDpc", 0, || {
        // SAFETY: the caller's initialized KDPC.
        let Some(d) = (unsafe { dpc.as_ref() }) else {
            return 0;
        };
        u8::from(d.dpc_data.swap(0, Ordering::AcqRel) != 0)
    })
}

#[no_mangle]
pub(crate) extern "C" fn KeQueryMaximumProcessorCount() -> u32 {
    processors()
}

#[no_mangle]
pub(crate) extern "C" fn KeQueryMaximumProcessorCountEx(group: u16) -> u32 {
    if group == 0 || group == u16::MAX {
        processors()
    } else {
        0
    }
}

#[no_mangle]
pub(crate) extern "C" fn KeQueryActiveProcessorCountEx(group: u16) -> u32 {
    KeQueryMaximumProcessorCountEx(group)
}
