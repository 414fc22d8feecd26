//! KMDF I/O queues beyond the default one (WDK wdfio.h, wdfdevice.h, wdfrequest.h, wdfsync.h;
//! wdk-runtime.md §8 for the queue configuration): every queue keeps the requests it was given
//! (FIFO) and presents them by its dispatch type — Sequential one at a time, Parallel as they
//! come, Manual never (WdfIoQueueRetrieveNextRequest takes them) — while it is started.
//! WdfDeviceConfigureRequestDispatching sends a request type to a queue (else the default queue
//! gets it); WdfRequestForwardToIoQueue moves a request the driver owns to another queue of its
//! device; WdfIoQueueStart / Stop / Purge (and the Synchronously forms) start and stop
//! presentation, Purge also cancels what the queue holds and refuses new requests.
//!
//! Synchronization scope (WDF_OBJECT_ATTRIBUTES): a queue with WdfSynchronizationScopeQueue has a
//! lock of its own, queues of a device with WdfSynchronizationScopeDevice share the device's; the
//! framework holds it around every queue callback, so the callbacks it covers run one at a time
//! (real locking, across threads). Execution level: WdfExecutionLevelPassive callbacks run at
//! PASSIVE_LEVEL (the lock is then a fast mutex); with a synchronization lock and the default
//! (dispatch) level the lock is a spin lock and callbacks run at DISPATCH_LEVEL; otherwise at the
//! caller's IRQL. WdfObjectAcquireLock / WdfObjectReleaseLock take the same lock. Choice made
//! here: the lock is recursive for its holder, so a callback that forwards a request to another
//! queue under the same device lock presents it on the same thread (KMDF would defer it).

use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{bad, neither, rw, Object, State, IRP_MJ_DEVICE_CONTROL};
use crate::host::HostInner;
use crate::sys::ctx::{self, DISPATCH_LEVEL, PASSIVE_LEVEL};
use crate::sys::{
    boundary, NtStatus, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};

pub(super) const IRP_MJ_INTERNAL_DEVICE_CONTROL: usize = 0x0f;
const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as i32;
const STATUS_NO_MORE_ENTRIES: NtStatus = 0x8000_001A_u32 as i32;
const STATUS_CANCELLED: NtStatus = 0xC000_0120_u32 as i32;
const STATUS_NOT_SUPPORTED: NtStatus = 0xC000_00BB_u32 as i32;
/// wdfstatus.h.
const STATUS_WDF_PAUSED: NtStatus = 0xC020_0203_u32 as i32;
const STATUS_WDF_BUSY: NtStatus = 0xC020_0204_u32 as i32;
/// WDF_SYNCHRONIZATION_SCOPE.
const SCOPE_DEVICE: i32 = 2;
const SCOPE_QUEUE: i32 = 3;
const SCOPE_NONE: i32 = 4;
/// WDF_EXECUTION_LEVEL.
const LEVEL_PASSIVE: i32 = 2;
const LEVEL_DISPATCH: i32 = 3;

/// `EVT_WDF_IO_QUEUE_IO_DEFAULT`: (queue, request).
pub(crate) type EvtIoDefault = unsafe extern "C" fn(*mut c_void, *mut c_void);
/// `EVT_WDF_IO_QUEUE_STATE`: (queue, context) — WdfIoQueueStop / Purge completion.
pub(crate) type EvtQueueState = unsafe extern "C" fn(*mut c_void, *mut c_void);

/// Whether a queue presents requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Run {
    /// Presents (or, for a manual queue, lets the driver retrieve) what it holds.
    #[default]
    Started,
    /// WdfIoQueueStop: keeps accepting, presents nothing.
    Stopped,
    /// WdfIoQueuePurge: cancels what it holds and what arrives.
    Purged,
}

/// A device's or queue's synchronization lock: a mutex recursive for its holder.
pub(crate) struct SyncLock {
    raw: parking_lot::RawMutex,
    /// The holder's thread token, 0 when free.
    owner: AtomicUsize,
    /// How many times the holder took it.
    depth: AtomicUsize,
}

impl std::fmt::Debug for SyncLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncLock").finish_non_exhaustive()
    }
}

impl Default for SyncLock {
    fn default() -> Self {
        Self {
            raw: <parking_lot::RawMutex as parking_lot::lock_api::RawMutex>::INIT,
            owner: AtomicUsize::new(0),
            depth: AtomicUsize::new(0),
        }
    }
}

impl SyncLock {
    fn acquire(&self) {
        use parking_lot::lock_api::RawMutex as _;
        let me = ctx::thread_token();
        if self.owner.load(Ordering::Acquire) != me {
            self.raw.lock();
            self.owner.store(me, Ordering::Release);
        }
        self.depth.fetch_add(1, Ordering::AcqRel);
    }

    /// Releases one acquisition; false when this thread does not hold the lock.
    fn release(&self) -> bool {
        use parking_lot::lock_api::RawMutex as _;
        if self.owner.load(Ordering::Acquire) != ctx::thread_token() {
            return false;
        }
        if self.depth.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.owner.store(0, Ordering::Release);
            // SAFETY: this thread holds the raw mutex (owner was this thread, last depth).
            unsafe { self.raw.unlock() };
        }
        true
    }
}

/// A synchronization scope and execution level as an object's attributes resolve them.
#[derive(Clone, Debug, Default)]
pub(super) struct SyncScope {
    /// The lock the object's callbacks run under.
    pub(super) lock: Option<Arc<SyncLock>>,
    /// WDF_SYNCHRONIZATION_SCOPE after inheritance (for children).
    pub(super) scope: i32,
    /// WdfExecutionLevelPassive after inheritance.
    pub(super) passive: bool,
}

/// The attributes' (scope, level), 0 for none / inherit.
fn attrs_sync(attrs: *const super::ObjectAttributes) -> (i32, i32) {
    // SAFETY: the caller's optional WDF_OBJECT_ATTRIBUTES.
    unsafe { attrs.as_ref() }.map_or((0, 0), |a| (a.synchronization_scope, a.execution_level))
}

/// The driver object's (scope, passive) from its attributes (KMDF: scope None and level
/// Dispatch unless they say otherwise).
pub(super) fn driver_sync(attrs: *const super::ObjectAttributes) -> (i32, bool) {
    let (scope, level) = attrs_sync(attrs);
    let scope = if scope == SCOPE_DEVICE || scope == SCOPE_QUEUE {
        scope
    } else {
        SCOPE_NONE
    };
    (scope, level == LEVEL_PASSIVE)
}

/// A device's synchronization from its attributes and its driver's (KMDF: the driver object's
/// scope is None and its level Dispatch unless its attributes say otherwise).
pub(super) fn device_sync(attrs: *const super::ObjectAttributes, driver: (i32, bool)) -> SyncScope {
    let (scope, level) = attrs_sync(attrs);
    let scope = if (2..=4).contains(&scope) {
        scope
    } else {
        driver.0
    };
    let passive = match level {
        LEVEL_PASSIVE => true,
        LEVEL_DISPATCH => false,
        _ => driver.1,
    };
    SyncScope {
        lock: (scope == SCOPE_DEVICE).then(Arc::default),
        scope,
        passive,
    }
}

/// A queue's synchronization from its attributes and its device's.
pub(super) fn queue_sync(attrs: *const super::ObjectAttributes, device: &SyncScope) -> SyncScope {
    let (scope, level) = attrs_sync(attrs);
    let scope = if (2..=4).contains(&scope) {
        scope
    } else {
        device.scope
    };
    let lock = match scope {
        SCOPE_DEVICE => device.lock.clone(),
        SCOPE_QUEUE => Some(Arc::default()),
        _ => None,
    };
    let passive = match level {
        LEVEL_PASSIVE => true,
        LEVEL_DISPATCH => false,
        _ => device.passive,
    };
    SyncScope {
        lock,
        scope,
        passive,
    }
}

thread_local! {
    /// The queues whose callback runs on this thread (innermost last).
    static INSIDE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn inside(queue: usize) -> bool {
    INSIDE.with(|v| v.borrow().contains(&queue))
}

/// The queue a request of type `major` to device `device` goes to: the one
/// WdfDeviceConfigureRequestDispatching named for the type, else the default queue.
pub(super) fn route(s: &State, device: usize, major: usize) -> Option<usize> {
    let Some(Object::Device(d)) = s.objects.get(&device).map(|b| &**b) else {
        return None;
    };
    d.dispatch
        .iter()
        .find(|(m, _)| *m == major)
        .map(|(_, q)| *q)
        .or(d.queue)
}

/// The callback `queue` presents a request of type `major` to (a manual queue has none).
fn callback(q: &super::Queue, major: usize) -> Option<neither::Evt> {
    let specific = match major {
        IRP_MJ_DEVICE_CONTROL => q.device_control.map(neither::Evt::DeviceControl),
        IRP_MJ_INTERNAL_DEVICE_CONTROL => q.internal.map(neither::Evt::Internal),
        rw::IRP_MJ_READ | rw::IRP_MJ_WRITE => {
            let f = if major == rw::IRP_MJ_READ {
                q.read
            } else {
                q.write
            };
            f.map(neither::Evt::ReadWrite)
        }
        _ => None,
    };
    specific.or(q.default.map(neither::Evt::Default))
}

/// Whether `queue` takes requests of type `major`: a manual queue takes every type routed to
/// it, another queue one it has a callback for (EvtIoDefault included).
pub(super) fn accepts(s: &State, queue: usize, major: usize) -> bool {
    match s.objects.get(&queue).map(|b| &**b) {
        Some(Object::Queue(q)) => q.manual || callback(q, major).is_some(),
        _ => false,
    }
}

/// Gives `request` to `queue` (driver `index`): kept in the queue's FIFO, presented at once when
/// the queue may present it; a purged queue cancels it.
pub(super) fn present(host: &HostInner, queue: usize, request: usize) {
    let purged = {
        let mut s = host.rt.wdf.state.lock();
        let purged = match s.objects.get_mut(&queue).map(|b| &mut **b) {
            Some(Object::Queue(q)) if q.run == Run::Purged => true,
            Some(Object::Queue(q)) => {
                q.held.push_back(request);
                false
            }
            _ => return,
        };
        if let Some(Object::Request(rq)) = s.objects.get_mut(&request).map(|b| &mut **b) {
            rq.queue = queue;
            rq.held = !purged;
            rq.presented = false;
        }
        purged
    };
    if purged {
        super::complete_by_framework(host, request, STATUS_CANCELLED);
        return;
    }
    pump(host, queue);
}

/// Presents what `queue` may present now (not from inside one of its own callbacks: that
/// callback's presenter pumps when it returns).
pub(super) fn pump(host: &HostInner, queue: usize) {
    if inside(queue) {
        return;
    }
    loop {
        let next = {
            let mut s = host.rt.wdf.state.lock();
            let Some(Object::Queue(q)) = s.objects.get_mut(&queue).map(|b| &mut **b) else {
                return;
            };
            if q.manual || q.run != Run::Started || (q.sequential && q.busy) {
                return;
            }
            let Some(r) = q.held.pop_front() else {
                return;
            };
            q.busy = q.sequential;
            q.owned += 1;
            let device = q.device;
            if let Some(Object::Request(rq)) = s.objects.get_mut(&r).map(|b| &mut **b) {
                rq.held = false;
                rq.presented = true;
            }
            let index = match s.objects.get(&device).map(|b| &**b) {
                Some(Object::Device(d)) => d.index,
                _ => ctx::current_driver(),
            };
            (r, index)
        };
        invoke(host, next.1, queue, next.0);
    }
}

/// Calls the queue's callback for `request` under the queue's synchronization lock, at the
/// queue's execution level; a request the queue has no callback for fails with
/// STATUS_INVALID_DEVICE_REQUEST, as KMDF completes it.
fn invoke(host: &HostInner, index: usize, queue: usize, request: usize) {
    let found = {
        let s = host.rt.wdf.state.lock();
        let major = match s.objects.get(&request).map(|b| &**b) {
            Some(Object::Request(rq)) => rq.major,
            _ => return,
        };
        match s.objects.get(&queue).map(|b| &**b) {
            Some(Object::Queue(q)) => callback(q, major).map(|e| (e, q.sync.clone())),
            _ => None,
        }
    };
    let Some((evt, sync)) = found else {
        super::complete_by_framework(host, request, STATUS_INVALID_DEVICE_REQUEST);
        return;
    };
    let irql = if sync.passive {
        PASSIVE_LEVEL
    } else if sync.lock.is_some() {
        DISPATCH_LEVEL
    } else {
        ctx::irql()
    };
    if let Some(l) = &sync.lock {
        l.acquire();
    }
    INSIDE.with(|v| v.borrow_mut().push(queue));
    neither::call_queue(host, index, queue, request, &evt, irql);
    INSIDE.with(|v| v.borrow_mut().pop());
    if let Some(l) = &sync.lock {
        l.release();
    }
    pump(host, queue);
}

/// The driver gave a request of `queue` back (completed or forwarded): a sequential queue may
/// present its next one, and Stop / Purge callbacks waiting for the queue to own nothing run.
pub(super) fn released(host: &HostInner, queue: usize) {
    let idle = {
        let mut s = host.rt.wdf.state.lock();
        let Some(Object::Queue(q)) = s.objects.get_mut(&queue).map(|b| &mut **b) else {
            return;
        };
        q.busy = false;
        q.owned = q.owned.saturating_sub(1);
        if q.owned == 0 {
            std::mem::take(&mut q.idle)
        } else {
            Vec::new()
        }
    };
    host.rt.wdf.completed.notify_all();
    for (f, context) in idle {
        // SAFETY: the driver's EVT_WDF_IO_QUEUE_STATE with its queue and context.
        unsafe { f(queue as *mut c_void, context as *mut c_void) };
    }
    pump(host, queue);
}

// ---- exports --------------------------------------------------------------------------------

/// `WDF_REQUEST_PARAMETERS` (x64: 40 bytes; the union as four pointer-sized words).
#[repr(C)]
pub(crate) struct RequestParameters {
    size: u16,
    minor: u8,
    kind: i32,
    words: [usize; 4],
}

const _: () = assert!(std::mem::size_of::<RequestParameters>() == 40);

/// WdfRequestGetParameters (WDK wdfrequest.h): the request's type (WDF_REQUEST_TYPE, the IRP
/// major code) and parameters — DeviceIoControl {OutputBufferLength, InputBufferLength,
/// IoControlCode, Type3InputBuffer} for device controls and internal device controls, Read /
/// Write {Length, Key 0, DeviceOffset}. A Size other than sizeof(WDF_REQUEST_PARAMETERS) is a
/// finding (KMDF's verifier) and nothing is written.
#[no_mangle]
pub(crate) unsafe extern "C" fn WdfRequestGetParameters(
    request: *mut c_void,
    params: *mut RequestParameters,
) {
    boundary("WdfRequestGetParameters", (), || {
        ctx::check_irql("WdfRequestGetParameters", DISPATCH_LEVEL);
        // SAFETY: the caller's WDF_REQUEST_PARAMETERS (checked non-null).
        let Some(p) = (unsafe { params.as_mut() }) else {
            return ctx::assertion("WdfRequestGetParameters with NULL Parameters");
        };
        if usize::from(p.size) != std::mem::size_of::<RequestParameters>() {
            return ctx::assertion(
                "WdfRequestGetParameters: Parameters->Size is not sizeof(WDF_REQUEST_PARAMETERS) \
                 (WDF_REQUEST_PARAMETERS_INIT)",
            );
        }
        let r = super::with_state(|s| match s.objects.get(&(request as usize)).map(|b| &**b) {
            Some(Object::Request(rq)) => Some(match rq.major {
                rw::IRP_MJ_READ => [rq.out_len, 0, rq.offset as usize, 0],
                rw::IRP_MJ_WRITE => [rq.in_len, 0, rq.offset as usize, 0],
                _ => [rq.out_len, rq.in_len, rq.raw.code as usize, rq.raw.user_in],
            })
            .map(|w| (rq.major, w)),
            _ => None,
        })
        .flatten();
        let Some((major, words)) = r else {
            return bad("WdfRequestGetParameters");
        };
        p.minor = 0;
        p.kind = i32::try_from(major).unwrap_or(0);
        p.words = words;
    });
}

/// WdfDeviceConfigureRequestDispatching (WDK wdfdevice.h): requests of `kind` (Read, Write,
/// DeviceControl, DeviceControlInternal) to the device go to `queue`, one of the device's.
/// Another type: STATUS_INVALID_PARAMETER (WdfRequestTypeCreate: STATUS_NOT_SUPPORTED here —
/// the framework completes creates itself); a type already given a queue: STATUS_WDF_BUSY.
#[no_mangle]
pub(crate) extern "C" fn WdfDeviceConfigureRequestDispatching(
    device: *mut c_void,
    queue: *mut c_void,
    kind: i32,
) -> NtStatus {
    boundary(
        "WdfDeviceConfigureRequestDispatching",
        STATUS_INVALID_PARAMETER,
        || {
            ctx::check_irql("WdfDeviceConfigureRequestDispatching", DISPATCH_LEVEL);
            let major = match usize::try_from(kind) {
                Ok(
                    m @ (rw::IRP_MJ_READ
                    | rw::IRP_MJ_WRITE
                    | IRP_MJ_DEVICE_CONTROL
                    | IRP_MJ_INTERNAL_DEVICE_CONTROL),
                ) => m,
                Ok(0) => return STATUS_NOT_SUPPORTED,
                _ => return STATUS_INVALID_PARAMETER,
            };
            let (device, queue) = (device as usize, queue as usize);
            let r = super::with_state(|s| {
                let owner = match s.objects.get(&queue).map(|b| &**b) {
                    Some(Object::Queue(q)) => q.device,
                    _ => return Err(true),
                };
                let Some(Object::Device(d)) = s.objects.get_mut(&device).map(|b| &mut **b) else {
                    return Err(true);
                };
                if owner != device {
                    return Err(false);
                }
                if d.dispatch.iter().any(|(m, _)| *m == major) {
                    return Ok(STATUS_WDF_BUSY);
                }
                d.dispatch.push((major, queue));
                Ok(STATUS_SUCCESS)
            });
            match r {
                Some(Ok(st)) => st,
                Some(Err(false)) => STATUS_INVALID_PARAMETER,
                _ => {
                    bad("WdfDeviceConfigureRequestDispatching");
                    STATUS_INVALID_PARAMETER
                }
            }
        },
    )
}

/// WdfRequestForwardToIoQueue (WDK wdfrequest.h): a request the driver owns (presented or
/// retrieved, not completed) goes to another queue of the same device, which presents it by its
/// own dispatch type; the source queue may present its next request. Otherwise
/// STATUS_INVALID_DEVICE_REQUEST (the driver keeps the request); a purged destination
/// STATUS_WDF_BUSY.
#[no_mangle]
pub(crate) extern "C" fn WdfRequestForwardToIoQueue(
    request: *mut c_void,
    destination: *mut c_void,
) -> NtStatus {
    boundary(
        "WdfRequestForwardToIoQueue",
        STATUS_INVALID_PARAMETER,
        || {
            ctx::check_irql("WdfRequestForwardToIoQueue", DISPATCH_LEVEL);
            ctx::with_host(|h| forward(h, request as usize, destination as usize))
                .unwrap_or(STATUS_INVALID_DEVICE_STATE)
        },
    )
}

fn forward(host: &HostInner, request: usize, destination: usize) -> NtStatus {
    let found = {
        let s = host.rt.wdf.state.lock();
        let (source, owned) = match s.objects.get(&request).map(|b| &**b) {
            Some(Object::Request(rq)) => (rq.queue, rq.presented && rq.completed.is_none()),
            _ => (0, false),
        };
        let device_of = |q: usize| match s.objects.get(&q).map(|b| &**b) {
            Some(Object::Queue(q)) => Some((q.device, q.run)),
            _ => None,
        };
        match (device_of(source), device_of(destination)) {
            (Some((from, _)), Some((to, run))) => Some((source, owned, from == to, run)),
            _ => None,
        }
    };
    let Some((source, owned, same_device, run)) = found else {
        bad("WdfRequestForwardToIoQueue");
        return STATUS_INVALID_PARAMETER;
    };
    if !owned || source == destination || !same_device {
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    if run == Run::Purged {
        return STATUS_WDF_BUSY;
    }
    present(host, destination, request);
    released(host, source);
    STATUS_SUCCESS
}

/// WdfIoQueueRetrieveNextRequest (WDK wdfio.h): the first request a manual or sequential queue
/// holds, now the driver's. STATUS_NO_MORE_ENTRIES when it holds none, STATUS_WDF_PAUSED when
/// stopped or purged, STATUS_INVALID_DEVICE_STATE for a parallel queue; `*OutRequest` is NULL
/// unless STATUS_SUCCESS.
#[no_mangle]
pub(crate) unsafe extern "C" fn WdfIoQueueRetrieveNextRequest(
    queue: *mut c_void,
    out: *mut *mut c_void,
) -> NtStatus {
    boundary(
        "WdfIoQueueRetrieveNextRequest",
        STATUS_INVALID_PARAMETER,
        || {
            ctx::check_irql("WdfIoQueueRetrieveNextRequest", DISPATCH_LEVEL);
            // SAFETY: the caller's out-pointer (checked non-null).
            let Some(out) = (unsafe { out.as_mut() }) else {
                return STATUS_INVALID_PARAMETER;
            };
            *out = std::ptr::null_mut();
            let r = super::with_state(|s| {
                let Some(Object::Queue(q)) = s.objects.get_mut(&(queue as usize)).map(|b| &mut **b)
                else {
                    return None;
                };
                if !q.manual && !q.sequential {
                    return Some(Err(STATUS_INVALID_DEVICE_STATE));
                }
                if q.run != Run::Started {
                    return Some(Err(STATUS_WDF_PAUSED));
                }
                let Some(r) = q.held.pop_front() else {
                    return Some(Err(STATUS_NO_MORE_ENTRIES));
                };
                q.owned += 1;
                if let Some(Object::Request(rq)) = s.objects.get_mut(&r).map(|b| &mut **b) {
                    rq.held = false;
                    rq.presented = true;
                }
                Some(Ok(r))
            })
            .flatten();
            match r {
                Some(Ok(r)) => {
                    *out = r as *mut c_void;
                    STATUS_SUCCESS
                }
                Some(Err(e)) => e,
                None => {
                    bad("WdfIoQueueRetrieveNextRequest");
                    STATUS_INVALID_PARAMETER
                }
            }
        },
    )
}

/// Sets a queue's run state; the requests a purge cancels. None: not a queue.
fn set_run(host: &HostInner, queue: usize, run: Run) -> Option<Vec<usize>> {
    let mut s = host.rt.wdf.state.lock();
    let Some(Object::Queue(q)) = s.objects.get_mut(&queue).map(|b| &mut **b) else {
        return None;
    };
    q.run = run;
    Some(if run == Run::Purged {
        q.held.drain(..).collect()
    } else {
        Vec::new()
    })
}

/// WdfIoQueueStart (WDK wdfio.h): the queue accepts requests again and presents what it holds.
#[no_mangle]
pub(crate) extern "C" fn WdfIoQueueStart(queue: *mut c_void) {
    boundary("WdfIoQueueStart", (), || {
        ctx::check_irql("WdfIoQueueStart", DISPATCH_LEVEL);
        ctx::with_host(|h| match set_run(h, queue as usize, Run::Started) {
            Some(_) => pump(h, queue as usize),
            None => bad("WdfIoQueueStart"),
        });
    });
}

/// Stop / Purge: the new state, then `done(queue, context)` once the driver owns no request of
/// the queue (at once, on this thread, when it owns none).
fn stop_or_purge(
    queue: *mut c_void,
    run: Run,
    done: Option<EvtQueueState>,
    context: *mut c_void,
    function: &'static str,
) {
    ctx::check_irql(function, DISPATCH_LEVEL);
    ctx::with_host(|h| {
        let Some(cancelled) = set_run(h, queue as usize, run) else {
            return bad(function);
        };
        for r in cancelled {
            super::complete_by_framework(h, r, STATUS_CANCELLED);
        }
        let Some(f) = done else {
            return;
        };
        let now = {
            let mut s = h.rt.wdf.state.lock();
            match s.objects.get_mut(&(queue as usize)).map(|b| &mut **b) {
                Some(Object::Queue(q)) if q.owned > 0 => {
                    q.idle.push((f, context as usize));
                    false
                }
                _ => true,
            }
        };
        if now {
            // SAFETY: the driver's EVT_WDF_IO_QUEUE_STATE with its queue and context.
            unsafe { f(queue, context) };
        }
    });
}

/// Waits (PASSIVE_LEVEL, bounded by the host's unload timeout) until the driver owns no request
/// of the queue. From inside a callback of the queue while owning its request it would never
/// return on Windows: a finding, and no wait.
fn wait_idle(queue: *mut c_void, function: &'static str) {
    ctx::check_irql(function, PASSIVE_LEVEL);
    ctx::with_host(|h| {
        let q = queue as usize;
        let deadline = Instant::now() + h.config.unload_timeout;
        let mut s = h.rt.wdf.state.lock();
        loop {
            let owned = match s.objects.get(&q).map(|b| &**b) {
                Some(Object::Queue(x)) => x.owned,
                _ => 0,
            };
            if owned == 0 {
                return;
            }
            if inside(q) {
                drop(s);
                return ctx::assertion(format!(
                    "{function} from a callback of the queue while the driver owns one of its \
                     requests (deadlock on Windows)"
                ));
            }
            if h.rt.wdf.completed.wait_until(&mut s, deadline).timed_out() {
                drop(s);
                return ctx::assertion(format!(
                    "{function}: the driver did not complete the queue's requests"
                ));
            }
        }
    });
}

/// WdfIoQueueStop (WDK wdfio.h): the queue keeps accepting requests but presents none (manual:
/// WdfIoQueueRetrieveNextRequest answers STATUS_WDF_PAUSED) until WdfIoQueueStart;
/// StopComplete(Queue, Context) runs once the driver owns none of its requests.
#[no_mangle]
pub(crate) extern "C" fn WdfIoQueueStop(
    queue: *mut c_void,
    done: Option<EvtQueueState>,
    context: *mut c_void,
) {
    boundary("WdfIoQueueStop", (), || {
        stop_or_purge(queue, Run::Stopped, done, context, "WdfIoQueueStop");
    });
}

/// WdfIoQueueStopSynchronously: WdfIoQueueStop, returning once the driver owns none of the
/// queue's requests (PASSIVE_LEVEL).
#[no_mangle]
pub(crate) extern "C" fn WdfIoQueueStopSynchronously(queue: *mut c_void) {
    boundary("WdfIoQueueStopSynchronously", (), || {
        stop_or_purge(
            queue,
            Run::Stopped,
            None,
            std::ptr::null_mut(),
            "WdfIoQueueStopSynchronously",
        );
        wait_idle(queue, "WdfIoQueueStopSynchronously");
    });
}

/// WdfIoQueuePurge (WDK wdfio.h): the queue refuses new requests (completed with
/// STATUS_CANCELLED, a forward to it STATUS_WDF_BUSY) and cancels the ones it holds;
/// PurgeComplete(Queue, Context) runs once the driver owns none of its requests. WdfIoQueueStart
/// undoes it.
#[no_mangle]
pub(crate) extern "C" fn WdfIoQueuePurge(
    queue: *mut c_void,
    done: Option<EvtQueueState>,
    context: *mut c_void,
) {
    boundary("WdfIoQueuePurge", (), || {
        stop_or_purge(queue, Run::Purged, done, context, "WdfIoQueuePurge");
    });
}

/// WdfIoQueuePurgeSynchronously: WdfIoQueuePurge, returning once the driver owns none of the
/// queue's requests (PASSIVE_LEVEL).
#[no_mangle]
pub(crate) extern "C" fn WdfIoQueuePurgeSynchronously(queue: *mut c_void) {
    boundary("WdfIoQueuePurgeSynchronously", (), || {
        stop_or_purge(
            queue,
            Run::Purged,
            None,
            std::ptr::null_mut(),
            "WdfIoQueuePurgeSynchronously",
        );
        wait_idle(queue, "WdfIoQueuePurgeSynchronously");
    });
}

/// WdfIoQueueGetDevice (WDK wdfio.h): the device the queue belongs to.
#[no_mangle]
pub(crate) extern "C" fn WdfIoQueueGetDevice(queue: *mut c_void) -> *mut c_void {
    boundary("WdfIoQueueGetDevice", std::ptr::null_mut(), || {
        super::with_state(|s| match s.objects.get(&(queue as usize)).map(|b| &**b) {
            Some(Object::Queue(q)) => Some(q.device as *mut c_void),
            _ => None,
        })
        .flatten()
        .unwrap_or_else(|| {
            bad("WdfIoQueueGetDevice");
            std::ptr::null_mut()
        })
    })
}

/// The synchronization lock of a device or queue handle, and whether it is a fast mutex
/// (passive execution level). None: not a device or queue; Some((None, _)): no lock.
fn object_lock(object: usize) -> Option<(Option<Arc<SyncLock>>, bool)> {
    super::with_state(|s| match s.objects.get(&object).map(|b| &**b) {
        Some(Object::Queue(q)) => Some((q.sync.lock.clone(), q.sync.passive)),
        Some(Object::Device(d)) => Some((d.sync.lock.clone(), d.sync.passive)),
        _ => None,
    })
    .flatten()
}

/// WdfObjectAcquireLock (WDK wdfsync.h): takes a device's or queue's synchronization lock — a
/// spin lock (returns at DISPATCH_LEVEL; call at <= DISPATCH_LEVEL) or, for
/// WdfExecutionLevelPassive, a fast mutex (caller's IRQL; call at <= APC_LEVEL). An object
/// without a synchronization scope has no lock: a finding.
#[no_mangle]
pub(crate) extern "C" fn WdfObjectAcquireLock(object: *mut c_void) {
    boundary("WdfObjectAcquireLock", (), || {
        match object_lock(object as usize) {
            Some((Some(l), passive)) => {
                ctx::check_irql(
                    "WdfObjectAcquireLock",
                    if passive { 1 } else { DISPATCH_LEVEL },
                );
                l.acquire();
                if !passive {
                    let old = ctx::set_irql(DISPATCH_LEVEL);
                    LOCK_IRQL.with(|v| v.borrow_mut().push(old));
                }
            }
            Some((None, _)) => ctx::assertion(
                "WdfObjectAcquireLock on an object with no synchronization scope (no lock)",
            ),
            None => bad("WdfObjectAcquireLock"),
        }
    });
}

thread_local! {
    /// The IRQLs WdfObjectAcquireLock raised from (spin-lock form), innermost last.
    static LOCK_IRQL: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// WdfObjectReleaseLock (WDK wdfsync.h): releases what WdfObjectAcquireLock took (restoring the
/// IRQL for the spin-lock form); a thread that does not hold it: a finding, nothing changes.
#[no_mangle]
pub(crate) extern "C" fn WdfObjectReleaseLock(object: *mut c_void) {
    boundary("WdfObjectReleaseLock", (), || {
        match object_lock(object as usize) {
            Some((Some(l), passive)) => {
                if !l.release() {
                    return ctx::assertion(
                        "WdfObjectReleaseLock of a lock this thread does not hold",
                    );
                }
                if !passive {
                    if let Some(old) = LOCK_IRQL.with(|v| v.borrow_mut().pop()) {
                        ctx::set_irql(old);
                    }
                }
            }
            Some((None, _)) => ctx::assertion(
                "WdfObjectReleaseLock on an object with no synchronization scope (no lock)",
            ),
            None => bad("WdfObjectReleaseLock"),
        }
    });
}
