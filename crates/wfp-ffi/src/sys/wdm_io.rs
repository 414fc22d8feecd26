//! Sending IRPs to a WDM driver (wdk-runtime.md §8): what `Driver::ioctl` does for a driver
//! that has no KMDF device-control queue but sets `MajorFunction[IRP_MJ_DEVICE_CONTROL]` — the
//! I/O manager's part of `CreateFile` + `DeviceIoControl` + `CloseHandle` on its device:
//! IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, IRP_MJ_CLEANUP and IRP_MJ_CLOSE, each dispatched at
//! PASSIVE_LEVEL on the caller's thread with `RequestorMode` UserMode, and waited for (bounded by
//! the host's unload timeout) until IoCompleteRequest — possibly later from another thread when
//! the routine returned STATUS_PENDING after IoMarkIrpPending.
//!
//! Buffers by transfer method (the IOCTL code's low two bits): METHOD_BUFFERED one system
//! buffer (`AssociatedIrp.SystemBuffer`, max(input, output) bytes, the output copied back from
//! it); IN/OUT_DIRECT the input in the system buffer and the output behind `Irp->MdlAddress`;
//! METHOD_NEITHER `Parameters.DeviceIoControl.Type3InputBuffer` and `Irp->UserBuffer`.

use std::ffi::c_void;
use std::time::Instant;

use super::ctx::{self, PASSIVE_LEVEL};
use super::types::{DeviceObject, DriverObject, Mdl, UnicodeString};
use super::wdm::STATUS_PENDING;
use super::wdm::{FileObject, IoSecurityContext, IoStackLocation, Irp, IrpTail, Parameters, Sent};
use super::{IoctlError, IoctlOutput, NtStatus};
use crate::host::HostInner;
use crate::verifier::Finding;

const IRP_MJ_CREATE: u8 = 0x00;
const IRP_MJ_CLOSE: u8 = 0x02;
const IRP_MJ_DEVICE_CONTROL: u8 = 0x0e;
const IRP_MJ_CLEANUP: u8 = 0x12;
const SL_PENDING_RETURNED: u8 = 0x01;
const DO_DEVICE_INITIALIZING: u32 = 0x80;
const METHOD_BUFFERED: u32 = 0;
const METHOD_NEITHER: u32 = 3;
const FILE_OPEN: u32 = 1;
const MDL_PAGES_LOCKED: i16 = 0x2;
const USER_MODE: i8 = 1;
const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as i32;

type Dispatch = unsafe extern "C" fn(*mut DeviceObject, *mut Irp) -> NtStatus;

/// The driver the host sends IRPs to.
pub(crate) struct Target<'a> {
    pub(crate) host: &'a HostInner,
    pub(crate) index: usize,
    pub(crate) name: &'a str,
    pub(crate) object: *const DriverObject,
}

/// One open of the device (the FILE_OBJECT every IRP of it carries).
struct Open {
    file: Box<FileObject>,
    security: Box<IoSecurityContext>,
    device: *mut DeviceObject,
}

/// An IRP, its stack location and its buffers, at stable addresses while the driver has it.
struct Block {
    irp: Irp,
    stack: IoStackLocation,
    mdl: Mdl,
    system: Vec<u8>,
    input: Vec<u8>,
    output: Vec<u8>,
}

/// An IRP the host stopped waiting for (and the open it belongs to): kept until its driver is
/// unloaded, since the driver may still complete it.
pub(crate) struct Abandoned {
    block: *mut Block,
    _file: Option<Box<FileObject>>,
    _security: Option<Box<IoSecurityContext>>,
}

impl std::fmt::Debug for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Abandoned IRP")
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        // SAFETY: the block came from Box::into_raw in `send` and is dropped once, here.
        drop(unsafe { Box::from_raw(self.block) });
    }
}

/// What one IRP asks for.
struct Request<'a> {
    major: u8,
    code: u32,
    input: &'a [u8],
    output_len: usize,
}

/// A completed IRP: status, Information, the output bytes.
struct Done {
    status: NtStatus,
    information: usize,
    output: Vec<u8>,
}

/// Whether driver `object` dispatches device-control requests itself (WDM).
pub(crate) fn handles_device_control(object: *const DriverObject) -> bool {
    dispatch_of(object, IRP_MJ_DEVICE_CONTROL).is_some()
}

fn dispatch_of(object: *const DriverObject, major: u8) -> Option<Dispatch> {
    // SAFETY: the loader's DRIVER_OBJECT; MajorFunction has 28 entries (major ≤ 0x1b).
    let f =
        unsafe { std::ptr::read_volatile(&raw const (*object).major_function[usize::from(major)]) };
    if f.is_null() {
        return None;
    }
    // SAFETY: a non-null MajorFunction entry is the driver's DRIVER_DISPATCH routine.
    Some(unsafe { std::mem::transmute::<*const c_void, Dispatch>(f) })
}

/// The device requests go to: the first-created device that a symbolic link names, else the
/// first-created device of the driver.
fn target_device(t: &Target<'_>) -> Option<*mut DeviceObject> {
    let mut list = Vec::new();
    // SAFETY: the loader's DRIVER_OBJECT; its device list holds live IoCreateDevice objects.
    let mut d = unsafe { (*t.object).device_object };
    while !d.is_null() {
        list.push(d);
        // SAFETY: as above.
        d = unsafe { (*d).next_device };
    }
    list.reverse();
    let linked = list.iter().copied().find(|d| {
        super::wdm::device_name(t.host, *d)
            .is_some_and(|n| !super::wdm::links_to(t.host, &n).is_empty())
    });
    linked.or_else(|| list.first().copied())
}

/// `Driver::ioctl` for a WDM driver: open, device control, cleanup, close.
pub(crate) fn ioctl(
    t: &Target<'_>,
    code: u32,
    input: &[u8],
    output_len: usize,
) -> Result<IoctlOutput, IoctlError> {
    let Some(device) = target_device(t) else {
        return Err(IoctlError::NoQueue {
            driver: t.name.into(),
        });
    };
    // SAFETY: a live device of the driver.
    if unsafe { (*device).flags } & DO_DEVICE_INITIALIZING != 0 {
        return Err(IoctlError::NotReady {
            driver: t.name.into(),
        });
    }
    let mut open = Open::new(device);
    let req = |major| Request {
        major,
        code: 0,
        input: &[],
        output_len: 0,
    };
    let created = send(t, &mut open, &req(IRP_MJ_CREATE))?;
    if created.status < 0 {
        return Err(IoctlError::OpenFailed {
            driver: t.name.into(),
            status: created.status as u32,
        });
    }
    let done = send(
        t,
        &mut open,
        &Request {
            major: IRP_MJ_DEVICE_CONTROL,
            code,
            input,
            output_len,
        },
    )?;
    // CloseHandle: the handle goes whatever these return.
    for major in [IRP_MJ_CLEANUP, IRP_MJ_CLOSE] {
        if dispatch_of(t.object, major).is_some() {
            send(t, &mut open, &req(major))?;
        }
    }
    Ok(IoctlOutput {
        status: done.status as u32,
        information: done.information,
        output: done.output,
    })
}

impl Open {
    fn new(device: *mut DeviceObject) -> Self {
        let file = Box::new(FileObject {
            object_type: 5,
            size: i16::try_from(std::mem::size_of::<FileObject>()).unwrap_or(0),
            device_object: device,
            vpb: std::ptr::null_mut(),
            fs_context: std::ptr::null_mut(),
            fs_context2: std::ptr::null_mut(),
            section_object_pointer: std::ptr::null_mut(),
            private_cache_map: std::ptr::null_mut(),
            final_status: 0,
            related_file_object: std::ptr::null_mut(),
            access: [0, 0, 1, 1, 0, 0, 0, 0],
            flags: 0,
            file_name: UnicodeString {
                length: 0,
                maximum_length: 0,
                buffer: std::ptr::null_mut(),
            },
        });
        let security = Box::new(IoSecurityContext {
            security_qos: std::ptr::null_mut(),
            access_state: std::ptr::null_mut(),
            // GENERIC_READ | GENERIC_WRITE, as CreateFile(GENERIC_READ | GENERIC_WRITE).
            desired_access: 0xC000_0000,
            full_create_options: 0,
        });
        Self {
            file,
            security,
            device,
        }
    }
}

/// Builds the IRP for `r` (one stack location, the buffers of its transfer method).
fn build(open: &mut Open, r: &Request<'_>) -> Box<Block> {
    let method = r.code & 3;
    let dc = r.major == IRP_MJ_DEVICE_CONTROL;
    let system_len = match (dc, method) {
        (false, _) => 0,
        (true, METHOD_BUFFERED) => r.input.len().max(r.output_len),
        (true, METHOD_NEITHER) => 0,
        (true, _) => r.input.len(),
    };
    let mut system = vec![0u8; system_len];
    if dc && method != METHOD_NEITHER {
        system[..r.input.len()].copy_from_slice(r.input);
    }
    let mut b = Box::new(Block {
        irp: blank_irp(),
        stack: blank_stack(r.major, open),
        mdl: blank_mdl(),
        system,
        input: if dc && method == METHOD_NEITHER {
            r.input.to_vec()
        } else {
            Vec::new()
        },
        output: vec![
            0u8;
            if dc && method != METHOD_BUFFERED {
                r.output_len
            } else {
                0
            }
        ],
    });
    if r.major == IRP_MJ_CREATE {
        b.stack.parameters.words[0] = std::ptr::from_mut(&mut *open.security) as usize;
        b.stack.parameters.words[1] = (FILE_OPEN << 24) as usize;
    }
    if dc {
        let p = &mut b.stack.parameters.words;
        p[0] = r.output_len;
        p[1] = r.input.len();
        p[2] = r.code as usize;
    }
    b
}

fn blank_irp() -> Irp {
    Irp {
        object_type: 6,
        size: u16::try_from(std::mem::size_of::<Irp>() + std::mem::size_of::<IoStackLocation>())
            .unwrap_or(0),
        allocation_processor_number: 0,
        reserved: 0,
        mdl_address: std::ptr::null_mut(),
        flags: 0,
        system_buffer: std::ptr::null_mut(),
        thread_list_entry: [std::ptr::null_mut(); 2],
        io_status: super::wdm::IoStatusBlock::default(),
        requestor_mode: USER_MODE,
        pending_returned: 0,
        stack_count: 1,
        current_location: 1,
        cancel: 0,
        cancel_irql: 0,
        apc_environment: 0,
        allocation_flags: 0,
        user_iosb: std::ptr::null_mut(),
        user_event: std::ptr::null_mut(),
        overlay: [0; 2],
        cancel_routine: std::ptr::null(),
        user_buffer: std::ptr::null_mut(),
        tail: IrpTail {
            driver_context: [std::ptr::null_mut(); 4],
            thread: std::ptr::null_mut(),
            auxiliary_buffer: std::ptr::null_mut(),
            list_entry: [std::ptr::null_mut(); 2],
            current_stack_location: std::ptr::null_mut(),
            original_file_object: std::ptr::null_mut(),
            irp_extension: std::ptr::null_mut(),
        },
    }
}

fn blank_stack(major: u8, open: &mut Open) -> IoStackLocation {
    IoStackLocation {
        major_function: major,
        minor_function: 0,
        flags: 0,
        control: 0,
        parameters: Parameters::default(),
        device_object: open.device,
        file_object: std::ptr::from_mut(&mut *open.file),
        completion_routine: std::ptr::null(),
        context: std::ptr::null_mut(),
    }
}

fn blank_mdl() -> Mdl {
    Mdl {
        next: std::ptr::null_mut(),
        size: i16::try_from(std::mem::size_of::<Mdl>()).unwrap_or(0),
        mdl_flags: MDL_PAGES_LOCKED,
        process: std::ptr::null_mut(),
        mapped_system_va: std::ptr::null_mut(),
        start_va: std::ptr::null_mut(),
        byte_count: 0,
        byte_offset: 0,
    }
}

/// Points the IRP at its own stack location and buffers (after the block has its final address).
///
/// # Safety
/// `b` is the block's stable address (from `Box::into_raw`).
unsafe fn wire(b: *mut Block, r: &Request<'_>, open: &mut Open) {
    // SAFETY: per the contract; the vectors' heap buffers do not move while the block lives.
    unsafe {
        (*b).irp.tail.current_stack_location = &raw mut (*b).stack;
        (*b).irp.tail.original_file_object = std::ptr::from_mut(&mut *open.file);
        if !(*b).system.is_empty() {
            (*b).irp.system_buffer = (*b).system.as_mut_ptr().cast();
        }
        if r.major != IRP_MJ_DEVICE_CONTROL {
            return;
        }
        match r.code & 3 {
            METHOD_BUFFERED => {}
            METHOD_NEITHER => {
                if !(*b).input.is_empty() {
                    (*b).stack.parameters.words[3] = (*b).input.as_mut_ptr() as usize;
                }
                if !(*b).output.is_empty() {
                    (*b).irp.user_buffer = (*b).output.as_mut_ptr().cast();
                }
            }
            _ if !(*b).output.is_empty() => {
                (*b).mdl.start_va = (*b).output.as_mut_ptr().cast();
                (*b).mdl.byte_count = u32::try_from((*b).output.len()).unwrap_or(u32::MAX);
                (*b).irp.mdl_address = &raw mut (*b).mdl;
            }
            _ => {}
        }
    }
}

fn callback_name(major: u8) -> &'static str {
    match major {
        IRP_MJ_CREATE => "DispatchCreate",
        IRP_MJ_CLOSE => "DispatchClose",
        IRP_MJ_CLEANUP => "DispatchCleanup",
        _ => "DispatchDeviceControl",
    }
}

fn finding(t: &Target<'_>, message: String) {
    t.host
        .tracker
        .lock()
        .findings
        .push((t.index, Finding::Assertion { message }));
}

/// Sends one IRP and waits (bounded) for its completion. A major function the driver does not
/// handle completes with STATUS_INVALID_DEVICE_REQUEST (the I/O manager's default routine).
fn send(t: &Target<'_>, open: &mut Open, r: &Request<'_>) -> Result<Done, IoctlError> {
    let Some(dispatch) = dispatch_of(t.object, r.major) else {
        return Ok(Done {
            status: STATUS_INVALID_DEVICE_REQUEST,
            information: 0,
            output: Vec::new(),
        });
    };
    let b = Box::into_raw(build(open, r));
    // SAFETY: `b` is the block's final address.
    unsafe { wire(b, r, open) };
    // SAFETY: `b` is live (from Box::into_raw above).
    let irp = unsafe { &raw mut (*b).irp };
    let key = irp as usize;
    t.host.rt.wdm.state.lock().sent.insert(
        key,
        Sent {
            driver: t.index,
            done: None,
        },
    );
    let returned = {
        let _bound = ctx::bind(t.host, t.index, PASSIVE_LEVEL, callback_name(r.major));
        // SAFETY: the driver's dispatch routine with its device and a live IRP.
        unsafe { dispatch(open.device, irp) }
    };
    // SAFETY: the block stays allocated until taken back below or abandoned.
    let control = unsafe { (*b).stack.control };
    check_returned(t, r, returned, control);
    match wait(t, key, returned) {
        Some((completed, information)) => {
            t.host.rt.wdm.state.lock().sent.remove(&key);
            // SAFETY: completed and unregistered: the block is the host's again.
            let block = unsafe { Box::from_raw(b) };
            // The caller of a request its dispatch routine completed synchronously gets the
            // routine's return value (IoCallDriver's), of a pended one IoStatus.Status.
            let status = if returned == STATUS_PENDING {
                completed
            } else {
                returned
            };
            Ok(take_output(t, r, &block, status, information))
        }
        None => {
            abandon(t, b, open);
            Err(IoctlError::NotCompleted {
                driver: t.name.into(),
                timeout: t.host.config.unload_timeout,
            })
        }
    }
}

/// The Verifier's checks on what a dispatch routine returned.
fn check_returned(t: &Target<'_>, r: &Request<'_>, returned: NtStatus, control: u8) {
    if returned == STATUS_PENDING && control & SL_PENDING_RETURNED == 0 {
        finding(
            t,
            format!(
                "{} returned STATUS_PENDING without IoMarkIrpPending",
                callback_name(r.major)
            ),
        );
    }
}

/// Waits for IRP `key`'s completion: (status, Information), or None at the deadline (and at
/// once when the routine returned something else than STATUS_PENDING without completing it).
fn wait(t: &Target<'_>, key: usize, returned: NtStatus) -> Option<(NtStatus, usize)> {
    let deadline = Instant::now() + t.host.config.unload_timeout;
    let mut s = t.host.rt.wdm.state.lock();
    loop {
        if let Some(done) = s.sent.get(&key).and_then(|x| x.done) {
            drop(s);
            if returned != STATUS_PENDING && returned != done.0 {
                finding(
                    t,
                    format!(
                        "dispatch routine returned {returned:#010x} but completed the IRP with \
                         {:#010x}",
                        done.0
                    ),
                );
            }
            return Some(done);
        }
        if returned != STATUS_PENDING {
            drop(s);
            finding(
                t,
                format!(
                    "dispatch routine returned {returned:#010x} without completing the IRP \
                     (IoCompleteRequest)"
                ),
            );
            return None;
        }
        if t.host
            .rt
            .wdm
            .completed
            .wait_until(&mut s, deadline)
            .timed_out()
        {
            drop(s);
            finding(
                t,
                format!(
                    "pended IRP not completed within {:?}",
                    t.host.config.unload_timeout
                ),
            );
            return None;
        }
    }
}

/// The output bytes of a completed IRP (Information of them, at most the output length).
fn take_output(
    t: &Target<'_>,
    r: &Request<'_>,
    b: &Block,
    status: NtStatus,
    information: usize,
) -> Done {
    let mut output = Vec::new();
    if r.major == IRP_MJ_DEVICE_CONTROL {
        if information > r.output_len && status >= 0 {
            finding(
                t,
                format!(
                    "IRP completed with Information {information} beyond the {}-byte output \
                     buffer",
                    r.output_len
                ),
            );
        }
        let n = information.min(r.output_len);
        let src = if r.code & 3 == METHOD_BUFFERED {
            &b.system
        } else {
            &b.output
        };
        output = src.get(..n).unwrap_or(&[]).to_vec();
    }
    Done {
        status,
        information,
        output,
    }
}

/// Keeps an IRP the host stopped waiting for (with the open's file object) until the driver is
/// unloaded.
fn abandon(t: &Target<'_>, b: *mut Block, open: &mut Open) {
    let keep = Abandoned {
        block: b,
        _file: Some(std::mem::replace(
            &mut open.file,
            Open::new(open.device).file,
        )),
        _security: Some(std::mem::replace(
            &mut open.security,
            Open::new(open.device).security,
        )),
    };
    t.host.rt.wdm.state.lock().abandoned.push((t.index, keep));
}
