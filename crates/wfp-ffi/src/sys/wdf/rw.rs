//! KMDF read and write requests (WDK wdfio.h EvtIoRead / EvtIoWrite; wdfdevice.h
//! WdfDeviceInitSetIoType): IRP_MJ_READ / IRP_MJ_WRITE to a framework device become requests on
//! its default queue, with the buffer its I/O type selects (WdfDeviceIoBuffered, the default:
//! DO_BUFFERED_IO and the system buffer; WdfDeviceIoDirect: DO_DIRECT_IO and the IRP's MDL).
//! A read's buffer is the request's output buffer, a write's its input buffer
//! (WdfRequestRetrieveOutputBuffer / InputBuffer and the Memory forms); the other direction is
//! STATUS_INVALID_DEVICE_REQUEST, as KMDF answers. WdfDeviceIoNeither devices get requests whose
//! buffers cannot be retrieved (the unsafe user-buffer functions are not provided).

use std::ffi::c_void;

use super::{finish_now, neither, queue, Object, Request, METHOD_BUFFERED, METHOD_NEITHER};
use crate::host::HostInner;
use crate::sys::ctx;
use crate::sys::types::DeviceObject;
use crate::sys::wdm::Irp;
use crate::sys::{boundary, NtStatus, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER};

pub(super) const IRP_MJ_READ: usize = 0x03;
pub(super) const IRP_MJ_WRITE: usize = 0x04;
const DO_BUFFERED_IO: u32 = 0x4;
const DO_DIRECT_IO: u32 = 0x10;
const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as i32;
/// WDF_DEVICE_IO_TYPE values.
const WDF_DEVICE_IO_NEITHER: i32 = 1;
const WDF_DEVICE_IO_DIRECT: i32 = 3;
/// The direct methods' codes (the request keeps the device-control buffer rules).
const METHOD_IN_DIRECT: u32 = 1;
const METHOD_OUT_DIRECT: u32 = 2;

/// `EVT_WDF_IO_QUEUE_IO_READ` / `_WRITE`: (queue, request, length).
pub(crate) type EvtIoReadWrite = unsafe extern "C" fn(*mut c_void, *mut c_void, usize);

/// The DEVICE_OBJECT flags of a WDF_DEVICE_IO_TYPE (KMDF's default is buffered).
pub(super) fn io_flags(io_type: i32) -> u32 {
    match io_type {
        WDF_DEVICE_IO_NEITHER => 0,
        WDF_DEVICE_IO_DIRECT => DO_DIRECT_IO,
        _ => DO_BUFFERED_IO,
    }
}

pub(super) unsafe extern "C" fn framework_read_write(
    dev: *mut DeviceObject,
    irp: *mut Irp,
) -> NtStatus {
    boundary("KMDF read/write", STATUS_INVALID_PARAMETER, || {
        ctx::with_host(|h| present(h, dev, irp)).unwrap_or(STATUS_INVALID_DEVICE_STATE)
    })
}

/// The queue of the framework device `dev` that takes reads (writes): the one
/// WdfDeviceConfigureRequestDispatching named, else the default queue; (queue, driver index).
fn target(host: &HostInner, dev: *mut DeviceObject, major: usize) -> Option<(usize, usize)> {
    let s = host.rt.wdf.state.lock();
    s.objects.iter().find_map(|(h, o)| match &**o {
        Object::Device(d) if d.object == dev => queue::route(&s, *h, major)
            .filter(|q| queue::accepts(&s, *q, major))
            .map(|q| (q, d.index)),
        _ => None,
    })
}

/// The request's buffers: (method whose rules they follow, system bytes, output bytes).
///
/// # Safety
/// `irp` is the IRP being dispatched to `dev`, its buffers of `len` bytes as its builder made
/// them for the device's flags.
unsafe fn buffers(
    dev: *mut DeviceObject,
    irp: *mut Irp,
    major: usize,
    len: usize,
) -> (u32, Vec<u8>, Vec<u8>) {
    // SAFETY: see the function's contract.
    unsafe {
        let flags = (*dev).flags;
        let read = major == IRP_MJ_READ;
        if flags & DO_BUFFERED_IO != 0 {
            let mut system = vec![0u8; len];
            let sb = (*irp).system_buffer;
            if !read && !sb.is_null() {
                std::ptr::copy_nonoverlapping(sb.cast::<u8>(), system.as_mut_ptr(), len);
            }
            return (METHOD_BUFFERED, system, Vec::new());
        }
        if flags & DO_DIRECT_IO != 0 {
            if read {
                return (METHOD_OUT_DIRECT, Vec::new(), vec![0u8; len]);
            }
            let mut system = vec![0u8; len];
            let mdl = (*irp).mdl_address;
            if !mdl.is_null() {
                let va = (*mdl)
                    .start_va
                    .cast::<u8>()
                    .add((*mdl).byte_offset as usize);
                let n = len.min((*mdl).byte_count as usize);
                std::ptr::copy_nonoverlapping(va, system.as_mut_ptr(), n);
            }
            return (METHOD_IN_DIRECT, system, Vec::new());
        }
        (METHOD_NEITHER, Vec::new(), Vec::new())
    }
}

/// A read or write IRP to a framework device: a request on its default queue (pended; the IRP
/// completes when the driver completes the request, its output copied back).
fn present(host: &HostInner, dev: *mut DeviceObject, irp: *mut Irp) -> NtStatus {
    // SAFETY: the IRP IofCallDriver passed; its current location is this device's.
    let (sp, major) = unsafe {
        let sp = (*irp).tail.current_stack_location;
        (sp, usize::from((*sp).major_function))
    };
    let Some((queue, index)) = target(host, dev, major) else {
        return finish_now(host, irp, STATUS_INVALID_DEVICE_REQUEST);
    };
    // SAFETY: as above: Parameters.Read/Write.Length is the location's first ULONG, ByteOffset
    // its third word.
    let (len, offset) = unsafe {
        let w = (*sp).parameters.words;
        (w[0] & 0xFFFF_FFFF, w[2] as i64)
    };
    // SAFETY: as above; the host's (or a driver's) read/write IRP for this device.
    let (method, system, output) = unsafe { buffers(dev, irp, major, len) };
    let read = major == IRP_MJ_READ;
    // SAFETY: as above: a WdfDeviceIoNeither device's buffer is the IRP's UserBuffer.
    let user = unsafe { (*irp).user_buffer } as usize;
    let request = host.rt.wdf.state.lock().insert(Object::Request(Request {
        queue,
        major,
        irp: irp as usize,
        method,
        system,
        output,
        in_len: if read { 0 } else { len },
        out_len: if read { len } else { 0 },
        information: 0,
        completed: None,
        raw: neither::Raw {
            user_in: if read { 0 } else { user },
            user_out: if read { user } else { 0 },
            ..neither::Raw::default()
        },
        offset,
        held: false,
        presented: false,
    }));
    // SAFETY: as above (IoMarkIrpPending).
    unsafe { (*sp).control |= crate::sys::irp::SL_PENDING_RETURNED };
    neither::deliver(host, index, queue, request);
    crate::sys::wdm::STATUS_PENDING
}
