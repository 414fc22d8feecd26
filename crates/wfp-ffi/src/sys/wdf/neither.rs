//! KMDF neither-I/O and in-caller-context processing (WDK wdfdevice.h
//! WdfDeviceInitSetIoInCallerContextCallback, WdfDeviceEnqueueRequest; wdfrequest.h
//! WdfRequestRetrieveUnsafeUserInputBuffer / OutputBuffer, WdfRequestProbeAndLockUserBufferForRead
//! / ForWrite). A device with an EvtIoInCallerContext gets every request there first, on the
//! requester's thread, before any queue: the driver reads the requester's raw buffers
//! (METHOD_NEITHER device controls, WdfDeviceIoNeither reads and writes), locks them into
//! WDFMEMORY objects that stay valid until the request completes, and queues the request with
//! WdfDeviceEnqueueRequest (or completes it). The unsafe and probe functions outside
//! EvtIoInCallerContext fail with STATUS_INVALID_DEVICE_REQUEST and are a finding, as KMDF's
//! verifier reports them.

use std::ffi::c_void;

use super::{bad, rw, Memory, Object, METHOD_NEITHER};
use crate::host::HostInner;
use crate::sys::ctx;
use crate::sys::{boundary, NtStatus, STATUS_INVALID_PARAMETER, STATUS_SUCCESS};
use crate::verifier::Finding;

const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as i32;
const STATUS_BUFFER_TOO_SMALL: NtStatus = 0xC000_0023_u32 as i32;

/// `EVT_WDF_IO_IN_CALLER_CONTEXT`: (device, request).
pub(crate) type EvtIoInCallerContext = unsafe extern "C" fn(*mut c_void, *mut c_void);

/// What a request keeps for neither-I/O and in-caller-context processing.
#[derive(Debug, Default)]
pub(super) struct Raw {
    /// The IOCTL code (device controls).
    pub(super) code: u32,
    /// The requester's input buffer (Type3InputBuffer, a write's UserBuffer) for METHOD_NEITHER.
    pub(super) user_in: usize,
    /// The requester's output buffer (UserBuffer) for METHOD_NEITHER.
    pub(super) user_out: usize,
    /// Set while EvtIoInCallerContext runs for the request.
    pub(super) in_caller: bool,
}

/// How the queue's callback is called for a request.
pub(super) enum Evt {
    DeviceControl(super::EvtIoDeviceControl),
    Internal(super::EvtIoDeviceControl),
    ReadWrite(rw::EvtIoReadWrite),
    Default(super::queue::EvtIoDefault),
}

/// Presents `request` (for `queue`, driver `index`): to the device's EvtIoInCallerContext when it
/// has one, else to the queue.
pub(super) fn deliver(host: &HostInner, index: usize, queue: usize, request: usize) {
    let caller = {
        let s = host.rt.wdf.state.lock();
        let device = match s.objects.get(&queue).map(|b| &**b) {
            Some(Object::Queue(q)) => q.device,
            _ => 0,
        };
        match s.objects.get(&device).map(|b| &**b) {
            Some(Object::Device(d)) => d.in_caller.map(|f| (device, f)),
            _ => None,
        }
    };
    let Some((device, f)) = caller else {
        return super::queue::present(host, queue, request);
    };
    set_in_caller(host, request, true);
    {
        let _bound = ctx::bind(host, index, ctx::irql(), "EvtIoInCallerContext");
        // SAFETY: the driver's EvtIoInCallerContext with its device and a live request.
        unsafe { f(device as *mut c_void, request as *mut c_void) };
    }
    set_in_caller(host, request, false);
}

fn set_in_caller(host: &HostInner, request: usize, on: bool) {
    let mut s = host.rt.wdf.state.lock();
    if let Some(Object::Request(rq)) = s.objects.get_mut(&request).map(|b| &mut **b) {
        rq.raw.in_caller = on;
    }
}

/// Calls the queue's callback `evt` for `request`, the driver bound at `irql`.
pub(super) fn call_queue(
    host: &HostInner,
    index: usize,
    queue: usize,
    request: usize,
    evt: &Evt,
    irql: u8,
) {
    let lens = {
        let s = host.rt.wdf.state.lock();
        match s.objects.get(&request).map(|b| &**b) {
            Some(Object::Request(rq)) => Some((rq.out_len, rq.in_len, rq.raw.code, rq.major)),
            _ => None,
        }
    };
    let Some((out_len, in_len, code, major)) = lens else {
        return;
    };
    let (q, r) = (queue as *mut c_void, request as *mut c_void);
    match evt {
        Evt::DeviceControl(f) | Evt::Internal(f) => {
            let name = if matches!(evt, Evt::Internal(_)) {
                "EvtIoInternalDeviceControl"
            } else {
                "EvtIoDeviceControl"
            };
            let _bound = ctx::bind(host, index, irql, name);
            // SAFETY: the driver's EvtIoDeviceControl with its queue, a live request, the lengths.
            unsafe { f(q, r, out_len, in_len, code) };
        }
        Evt::ReadWrite(f) => {
            let read = major == rw::IRP_MJ_READ;
            let name = if read { "EvtIoRead" } else { "EvtIoWrite" };
            let _bound = ctx::bind(host, index, irql, name);
            // SAFETY: the driver's EvtIoRead / EvtIoWrite with its queue, a live request, the length.
            unsafe { f(q, r, if read { out_len } else { in_len }) };
        }
        Evt::Default(f) => {
            let _bound = ctx::bind(host, index, irql, "EvtIoDefault");
            // SAFETY: the driver's EvtIoDefault with its queue and a live request.
            unsafe { f(q, r) };
        }
    }
}

/// WdfDeviceEnqueueRequest (WDK wdfdevice.h): gives a request the driver received in
/// EvtIoInCallerContext to the device's default queue, whose callback runs now. A request that
/// is not the device's, already completed, or whose queue has no callback for it:
/// STATUS_INVALID_DEVICE_REQUEST (the driver still owns it).
#[no_mangle]
pub(crate) extern "C" fn WdfDeviceEnqueueRequest(
    device: *mut c_void,
    request: *mut c_void,
) -> NtStatus {
    boundary("WdfDeviceEnqueueRequest", STATUS_INVALID_PARAMETER, || {
        ctx::with_host(|h| enqueue(h, device as usize, request as usize))
            .unwrap_or(STATUS_INVALID_PARAMETER)
    })
}

fn enqueue(host: &HostInner, device: usize, request: usize) -> NtStatus {
    let target = {
        let s = host.rt.wdf.state.lock();
        if !matches!(
            s.objects.get(&device).map(|b| &**b),
            Some(Object::Device(_))
        ) {
            None
        } else {
            let (mine, major) = match s.objects.get(&request).map(|b| &**b) {
                Some(Object::Request(rq)) if rq.completed.is_none() && !rq.held => {
                    let owner = match s.objects.get(&rq.queue).map(|b| &**b) {
                        Some(Object::Queue(q)) => q.device,
                        _ => 0,
                    };
                    (owner == device, rq.major)
                }
                _ => (false, 0),
            };
            Some(
                super::queue::route(&s, device, major)
                    .filter(|q| mine && super::queue::accepts(&s, *q, major)),
            )
        }
    };
    let Some(target) = target else {
        bad("WdfDeviceEnqueueRequest (not a WDFDEVICE)");
        return STATUS_INVALID_PARAMETER;
    };
    match target {
        Some(q) => {
            // Queued: out of caller context even though its callback may run on this thread now.
            set_in_caller(host, request, false);
            super::queue::present(host, q, request);
            STATUS_SUCCESS
        }
        None => STATUS_INVALID_DEVICE_REQUEST,
    }
}

/// A finding for `function` called outside EvtIoInCallerContext (KMDF verifier).
fn outside(host: &HostInner, function: &'static str) -> NtStatus {
    host.finding(Finding::Assertion {
        message: format!("{function} outside EvtIoInCallerContext (STATUS_INVALID_DEVICE_REQUEST)"),
    });
    STATUS_INVALID_DEVICE_REQUEST
}

/// The requester's raw buffer of a request in caller context: (address, length).
fn unsafe_buffer(
    host: &HostInner,
    request: usize,
    output: bool,
    function: &'static str,
) -> Result<(usize, usize), NtStatus> {
    let s = host.rt.wdf.state.lock();
    let Some(Object::Request(rq)) = s.objects.get(&request).map(|b| &**b) else {
        drop(s);
        bad(function);
        return Err(STATUS_INVALID_PARAMETER);
    };
    if !rq.raw.in_caller {
        drop(s);
        return Err(outside(host, function));
    }
    let wrong_way =
        (output && rq.major == rw::IRP_MJ_WRITE) || (!output && rq.major == rw::IRP_MJ_READ);
    if rq.method != METHOD_NEITHER || wrong_way {
        return Err(STATUS_INVALID_DEVICE_REQUEST);
    }
    Ok(if output {
        (rq.raw.user_out, rq.out_len)
    } else {
        (rq.raw.user_in, rq.in_len)
    })
}

fn retrieve_unsafe(
    request: *mut c_void,
    output: bool,
    min: usize,
    buf: *mut *mut c_void,
    len: *mut usize,
    function: &'static str,
) -> NtStatus {
    if buf.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let r = ctx::with_host(|h| unsafe_buffer(h, request as usize, output, function));
    let (p, n) = match r {
        Some(Ok(x)) => x,
        Some(Err(e)) => return e,
        None => return STATUS_INVALID_PARAMETER,
    };
    if n == 0 || n < min || p == 0 {
        return STATUS_BUFFER_TOO_SMALL;
    }
    // SAFETY: the caller's out-pointers (buf checked, len optional).
    unsafe {
        *buf = p as *mut c_void;
        if let Some(l) = len.as_mut() {
            *l = n;
        }
    }
    STATUS_SUCCESS
}

/// WdfRequestRetrieveUnsafeUserInputBuffer (WDK wdfrequest.h): the requester's input buffer of a
/// METHOD_NEITHER device control or a WdfDeviceIoNeither write, from EvtIoInCallerContext only.
#[no_mangle]
pub(crate) extern "C" fn WdfRequestRetrieveUnsafeUserInputBuffer(
    request: *mut c_void,
    min: usize,
    buf: *mut *mut c_void,
    len: *mut usize,
) -> NtStatus {
    let f = "WdfRequestRetrieveUnsafeUserInputBuffer";
    boundary(f, STATUS_INVALID_PARAMETER, || {
        retrieve_unsafe(request, false, min, buf, len, f)
    })
}

/// WdfRequestRetrieveUnsafeUserOutputBuffer (WDK wdfrequest.h): the requester's output buffer
/// of a METHOD_NEITHER device control or a WdfDeviceIoNeither read, from EvtIoInCallerContext only.
#[no_mangle]
pub(crate) extern "C" fn WdfRequestRetrieveUnsafeUserOutputBuffer(
    request: *mut c_void,
    min: usize,
    buf: *mut *mut c_void,
    len: *mut usize,
) -> NtStatus {
    let f = "WdfRequestRetrieveUnsafeUserOutputBuffer";
    boundary(f, STATUS_INVALID_PARAMETER, || {
        retrieve_unsafe(request, true, min, buf, len, f)
    })
}

/// Locks `len` bytes at `buffer` of the requester into a WDFMEMORY of the request (deleted with
/// it when it completes). The host's requesters' memory is resident: nothing to probe.
fn probe_and_lock(
    request: *mut c_void,
    buffer: *mut c_void,
    len: usize,
    out: *mut *mut c_void,
    function: &'static str,
) -> NtStatus {
    if out.is_null() || buffer.is_null() || len == 0 {
        return STATUS_INVALID_PARAMETER;
    }
    let r = ctx::with_host(|h| {
        let mut s = h.rt.wdf.state.lock();
        let in_caller = match s.objects.get(&(request as usize)).map(|b| &**b) {
            Some(Object::Request(rq)) => rq.raw.in_caller,
            _ => {
                drop(s);
                bad(function);
                return Err(STATUS_INVALID_PARAMETER);
            }
        };
        if !in_caller {
            drop(s);
            return Err(outside(h, function));
        }
        Ok(s.insert(Object::Memory(Memory {
            request: request as usize,
            ptr: buffer as usize,
            len,
        })))
    });
    match r {
        Some(Ok(m)) => {
            // SAFETY: the caller's out-pointer (checked non-null).
            unsafe { *out = m as *mut c_void };
            STATUS_SUCCESS
        }
        Some(Err(e)) => e,
        None => STATUS_INVALID_PARAMETER,
    }
}

/// WdfRequestProbeAndLockUserBufferForRead (WDK wdfrequest.h), EvtIoInCallerContext only.
#[no_mangle]
pub(crate) extern "C" fn WdfRequestProbeAndLockUserBufferForRead(
    request: *mut c_void,
    buffer: *mut c_void,
    len: usize,
    out: *mut *mut c_void,
) -> NtStatus {
    let f = "WdfRequestProbeAndLockUserBufferForRead";
    boundary(f, STATUS_INVALID_PARAMETER, || {
        probe_and_lock(request, buffer, len, out, f)
    })
}

/// WdfRequestProbeAndLockUserBufferForWrite (WDK wdfrequest.h), EvtIoInCallerContext only.
#[no_mangle]
pub(crate) extern "C" fn WdfRequestProbeAndLockUserBufferForWrite(
    request: *mut c_void,
    buffer: *mut c_void,
    len: usize,
    out: *mut *mut c_void,
) -> NtStatus {
    let f = "WdfRequestProbeAndLockUserBufferForWrite";
    boundary(f, STATUS_INVALID_PARAMETER, || {
        probe_and_lock(request, buffer, len, out, f)
    })
}

/// WdfDeviceInitSetIoInCallerContextCallback (WDK wdfdevice.h).
#[no_mangle]
pub(crate) extern "C" fn WdfDeviceInitSetIoInCallerContextCallback(
    init: *mut c_void,
    f: Option<EvtIoInCallerContext>,
) {
    boundary("WdfDeviceInitSetIoInCallerContextCallback", (), || {
        super::with_init(init, "WdfDeviceInitSetIoInCallerContextCallback", |i| {
            i.in_caller = f;
        });
    });
}
