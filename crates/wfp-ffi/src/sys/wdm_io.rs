//! Sending IRPs to a WDM driver (wdk-runtime.md §8; WDK km/wdm.h): the I/O manager's part of
//! `CreateFile` + `DeviceIoControl` / `ReadFile` / `WriteFile` + `CloseHandle` on a device —
//! IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, IRP_MJ_READ, IRP_MJ_WRITE, IRP_MJ_CLEANUP and
//! IRP_MJ_CLOSE, each sent to the top of the device's stack at PASSIVE_LEVEL on the caller's
//! thread with `RequestorMode` UserMode, and waited for (bounded by the host's unload timeout)
//! until completed — possibly later from another thread when the routine returned
//! STATUS_PENDING after IoMarkIrpPending. Closing a handle cancels its requests still pending
//! (IoCancelIrp) before IRP_MJ_CLEANUP. IoGetDeviceObjectPointer opens a device the same way
//! for a driver; ObDereferenceObject of that file object closes it.
//!
//! Buffers: device control by transfer method (the IOCTL code's low two bits): METHOD_BUFFERED
//! one system buffer (`AssociatedIrp.SystemBuffer`, max(input, output) bytes, the output copied
//! back from it); IN/OUT_DIRECT the input in the system buffer and the output behind
//! `Irp->MdlAddress`; METHOD_NEITHER `Parameters.DeviceIoControl.Type3InputBuffer` and
//! `Irp->UserBuffer`. Read / write by the top device's flags: DO_BUFFERED_IO the system buffer,
//! DO_DIRECT_IO `Irp->MdlAddress`, neither `Irp->UserBuffer`.

use std::ffi::c_void;
use std::sync::Arc;
use std::time::Instant;

use super::ctx::{self, PASSIVE_LEVEL};
use super::irp::{self, Completed, Origin, IRP_MJ_DEVICE_CONTROL, SL_PENDING_RETURNED};
use super::types::{DeviceObject, DriverObject, Mdl, UnicodeString};
use super::wdm::{FileObject, IoSecurityContext, Irp, STATUS_PENDING};
use super::{boundary, IoctlError, IoctlOutput, NtStatus};
use crate::host::HostInner;
use crate::verifier::Finding;

const IRP_MJ_CREATE: u8 = 0x00;
const IRP_MJ_CLOSE: u8 = 0x02;
const IRP_MJ_READ: u8 = 0x03;
const IRP_MJ_WRITE: u8 = 0x04;
const IRP_MJ_CLEANUP: u8 = 0x12;
const DO_BUFFERED_IO: u32 = 0x4;
const DO_DIRECT_IO: u32 = 0x10;
const DO_DEVICE_INITIALIZING: u32 = 0x80;
const METHOD_BUFFERED: u32 = 0;
const METHOD_NEITHER: u32 = 3;
const FILE_OPEN: u32 = 1;
const USER_MODE: i8 = 1;
const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = 0xC000_0034_u32 as i32;

type Dispatch = unsafe extern "C" fn(*mut DeviceObject, *mut Irp) -> NtStatus;

/// The driver the host sends IRPs to.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) host: &'a HostInner,
    pub(crate) index: usize,
    pub(crate) name: &'a str,
    pub(crate) object: *const DriverObject,
}

/// The FILE_OBJECT and security context of one open, shared by every IRP of it (kept alive by
/// IRPs the host stopped waiting for).
struct OpenObjects {
    file: Box<FileObject>,
    security: Box<IoSecurityContext>,
}

// SAFETY: the host only hands out the objects' addresses (drivers use them from any thread, as
// on Windows) and frees them once the last IRP and handle referring to them are gone.
unsafe impl Send for OpenObjects {}
// SAFETY: as above: the host never reads or writes through a shared reference.
unsafe impl Sync for OpenObjects {}

/// One open of a device.
pub(crate) struct Open {
    objects: Arc<OpenObjects>,
    /// The device the open names (FileObject->DeviceObject).
    device: *mut DeviceObject,
    /// A request of the open was abandoned: IRP_MJ_CLOSE is never sent (the file object stays
    /// referenced by it).
    stuck: bool,
}

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Open")
    }
}

/// A file object a driver opened with IoGetDeviceObjectPointer.
#[derive(Debug)]
pub(crate) struct DriverOpen {
    open: Open,
    refs: usize,
    pub(crate) driver: usize,
}

/// An IRP and its buffers, at stable addresses while a driver has it.
struct Block {
    irp: *mut Irp,
    mdl: Mdl,
    system: Vec<u8>,
    input: Vec<u8>,
    output: Vec<u8>,
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: the block owns its IRP (from irp::alloc), unregistered before the block drops.
        unsafe { irp::free(self.irp) };
    }
}

/// An IRP the host stopped waiting for (and the open it belongs to): kept until its driver is
/// unloaded, since the driver may still complete it.
pub(crate) struct Abandoned {
    _block: Box<Block>,
    _objects: Arc<OpenObjects>,
}

impl std::fmt::Debug for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Abandoned IRP")
    }
}

/// What one IRP asks for.
#[derive(Clone, Debug)]
struct Request {
    major: u8,
    code: u32,
    input: Vec<u8>,
    output_len: usize,
}

/// A request sent and not yet taken back.
struct Sent {
    block: Box<Block>,
    request: Request,
    returned: NtStatus,
    /// The top device's flags when it was sent (buffering of reads and writes).
    flags: u32,
}

/// Whether driver `object` dispatches device-control requests itself (WDM).
pub(crate) fn handles_device_control(object: *const DriverObject) -> bool {
    dispatch_of(object, IRP_MJ_DEVICE_CONTROL)
        .is_some_and(|f| !super::wdf::is_framework_dispatch(f as *const c_void))
}

pub(crate) fn dispatch_of(object: *const DriverObject, major: u8) -> Option<Dispatch> {
    if object.is_null() || major > 0x1b {
        return None;
    }
    // SAFETY: a live DRIVER_OBJECT; MajorFunction has 28 entries (major ≤ 0x1b).
    let f =
        unsafe { std::ptr::read_volatile(&raw const (*object).major_function[usize::from(major)]) };
    if f.is_null() {
        return None;
    }
    // SAFETY: a non-null MajorFunction entry is the driver's DRIVER_DISPATCH routine.
    Some(unsafe { std::mem::transmute::<*const c_void, Dispatch>(f) })
}

/// The device requests go to: the first-created WDM device that a symbolic link names, else
/// the first-created WDM device of the driver.
fn target_device(t: &Target<'_>) -> Option<*mut DeviceObject> {
    let framework = super::wdf::device_objects(t.host);
    let mut list = Vec::new();
    // SAFETY: the loader's DRIVER_OBJECT; its device list holds live IoCreateDevice objects.
    let mut d = unsafe { (*t.object).device_object };
    while !d.is_null() {
        if !framework.contains(&(d as usize)) {
            list.push(d);
        }
        // SAFETY: as above.
        d = unsafe { (*d).next_device };
    }
    list.reverse();
    let linked = list.iter().copied().find(|d| {
        super::wdm::device_name(t.host, *d)
            .is_some_and(|n| !super::wdm::links_to(t.host, &n).is_empty())
    });
    // A KMDF-only driver: its first framework device (read / write reach its default queue).
    linked.or_else(|| list.first().copied()).or_else(|| {
        framework
            .iter()
            .map(|d| *d as *mut DeviceObject)
            // SAFETY: live framework devices of the host; only their driver object is read.
            .find(|d| unsafe { (**d).driver_object }.cast_const() == t.object)
    })
}

/// A handle on a WDM driver's device ([`super::Driver::open`]): requests on one FILE_OBJECT,
/// closed (pending requests cancelled, IRP_MJ_CLEANUP, IRP_MJ_CLOSE) by [`DeviceHandle::close`]
/// or when dropped.
pub struct DeviceHandle<'d> {
    target: Target<'d>,
    open: Open,
    pending: Vec<Sent>,
    closed: bool,
}

impl std::fmt::Debug for DeviceHandle<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceHandle")
            .field("driver", &self.target.name)
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// Opens the driver's device (IRP_MJ_CREATE).
pub(crate) fn open(t: Target<'_>) -> Result<DeviceHandle<'_>, IoctlError> {
    let Some(device) = target_device(&t) else {
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
    let created = send_wait(&t, &mut open, request(IRP_MJ_CREATE, 0, &[], 0))?;
    if created.status < 0 {
        return Err(IoctlError::OpenFailed {
            driver: t.name.into(),
            status: created.status as u32,
        });
    }
    Ok(DeviceHandle {
        target: t,
        open,
        pending: Vec::new(),
        closed: false,
    })
}

fn request(major: u8, code: u32, input: &[u8], output_len: usize) -> Request {
    Request {
        major,
        code,
        input: input.to_vec(),
        output_len,
    }
}

impl DeviceHandle<'_> {
    /// DeviceIoControl: waits for the completion (bounded by the host's unload timeout).
    pub fn ioctl(
        &mut self,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> Result<IoctlOutput, IoctlError> {
        let r = request(IRP_MJ_DEVICE_CONTROL, code, input, output_len);
        send_wait(&self.target, &mut self.open, r).map(IoctlOutput::from)
    }

    /// ReadFile of `len` bytes (ByteOffset 0): the output is the bytes read.
    pub fn read(&mut self, len: usize) -> Result<IoctlOutput, IoctlError> {
        let r = request(IRP_MJ_READ, 0, &[], len);
        send_wait(&self.target, &mut self.open, r).map(IoctlOutput::from)
    }

    /// WriteFile of `data` (ByteOffset 0): `information` is the bytes written.
    pub fn write(&mut self, data: &[u8]) -> Result<IoctlOutput, IoctlError> {
        let r = request(IRP_MJ_WRITE, 0, data, 0);
        send_wait(&self.target, &mut self.open, r).map(IoctlOutput::from)
    }

    /// Overlapped DeviceIoControl: the output when the driver completed the request before its
    /// dispatch routine returned, `None` when it is pending (kept by the handle until
    /// [`DeviceHandle::close`]).
    pub fn start_ioctl(
        &mut self,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> Result<Option<IoctlOutput>, IoctlError> {
        let r = request(IRP_MJ_DEVICE_CONTROL, code, input, output_len);
        let sent = send(&self.target, &mut self.open, r);
        if sent.returned == STATUS_PENDING && done_of(&self.target, &sent).is_none() {
            self.pending.push(sent);
            return Ok(None);
        }
        finish(&self.target, &mut self.open, sent).map(|d| Some(IoctlOutput::from(d)))
    }

    /// CloseHandle: each pending request is cancelled (IoCancelIrp) and waited for (bounded),
    /// then IRP_MJ_CLEANUP and IRP_MJ_CLOSE are sent. Returns the pending requests' results in
    /// the order they were started.
    pub fn close(mut self) -> Result<Vec<IoctlOutput>, IoctlError> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<Vec<IoctlOutput>, IoctlError> {
        self.closed = true;
        let mut results = Vec::new();
        let mut first_error = None;
        for sent in std::mem::take(&mut self.pending) {
            if done_of(&self.target, &sent).is_none() {
                let _bound = ctx::bind(
                    self.target.host,
                    self.target.index,
                    PASSIVE_LEVEL,
                    "IoCancelIrp",
                );
                irp::cancel(self.target.host, sent.block.irp);
            }
            match finish(&self.target, &mut self.open, sent) {
                Ok(d) => results.push(IoctlOutput::from(d)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        close_open(&self.target, &mut self.open)?;
        first_error.map_or(Ok(results), Err)
    }
}

impl Drop for DeviceHandle<'_> {
    fn drop(&mut self) {
        if !self.closed {
            drop(self.close_inner());
        }
    }
}

/// IRP_MJ_CLEANUP, then IRP_MJ_CLOSE unless a request of the open is still out; routines the
/// driver does not have are skipped.
fn close_open(t: &Target<'_>, open: &mut Open) -> Result<(), IoctlError> {
    for major in [IRP_MJ_CLEANUP, IRP_MJ_CLOSE] {
        if major == IRP_MJ_CLOSE && open.stuck {
            break;
        }
        let top = top_device(t.host, open.device);
        // SAFETY: a live device of the namespace.
        if dispatch_of(unsafe { (*top).driver_object }, major).is_some() {
            send_wait(t, open, request(major, 0, &[], 0))?;
        }
    }
    Ok(())
}

/// A completed IRP: status, Information, the output bytes.
pub(crate) struct Done {
    status: NtStatus,
    information: usize,
    output: Vec<u8>,
}

impl From<Done> for IoctlOutput {
    fn from(d: Done) -> Self {
        Self {
            status: d.status as u32,
            information: d.information,
            output: d.output,
        }
    }
}

/// `Driver::ioctl` for a WDM driver: open, device control, cleanup, close.
pub(crate) fn ioctl(
    t: &Target<'_>,
    code: u32,
    input: &[u8],
    output_len: usize,
) -> Result<IoctlOutput, IoctlError> {
    let mut h = open(*t)?;
    let out = h.ioctl(code, input, output_len);
    let closed = h.close();
    let out = out?;
    closed?;
    Ok(out)
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
            objects: Arc::new(OpenObjects { file, security }),
            device,
            stuck: false,
        }
    }

    fn file(&self) -> *mut FileObject {
        std::ptr::from_ref(&*self.objects.file).cast_mut()
    }

    fn security(&self) -> *mut IoSecurityContext {
        std::ptr::from_ref(&*self.objects.security).cast_mut()
    }
}

fn top_device(host: &HostInner, device: *mut DeviceObject) -> *mut DeviceObject {
    let _s = host.rt.wdm.state.lock();
    super::wdm::top_of(device)
}

/// Whether the request uses the system buffer, an MDL or the user buffer for its output (and
/// input): 0 buffered, 1 direct, 3 neither — the METHOD_* values.
fn method(r: &Request, flags: u32) -> u32 {
    match r.major {
        IRP_MJ_DEVICE_CONTROL => r.code & 3,
        IRP_MJ_READ | IRP_MJ_WRITE if flags & DO_BUFFERED_IO != 0 => METHOD_BUFFERED,
        IRP_MJ_READ | IRP_MJ_WRITE if flags & DO_DIRECT_IO != 0 => 1,
        IRP_MJ_READ | IRP_MJ_WRITE => METHOD_NEITHER,
        _ => u32::MAX,
    }
}

/// Builds the IRP for `r` (the top device's stack size, the buffers of its transfer method).
fn build(open: &Open, r: &Request, top: *mut DeviceObject, flags: u32) -> Option<Box<Block>> {
    // SAFETY: a live device of the namespace.
    let stack = u8::try_from(unsafe { (*top).stack_size }).unwrap_or(1);
    let irp = irp::alloc(stack);
    if irp.is_null() {
        return None;
    }
    let m = method(r, flags);
    let (rw, dc) = (
        matches!(r.major, IRP_MJ_READ | IRP_MJ_WRITE),
        r.major == IRP_MJ_DEVICE_CONTROL,
    );
    let system_len = match m {
        METHOD_BUFFERED if rw => r.input.len().max(r.output_len),
        METHOD_BUFFERED => r.input.len().max(r.output_len),
        1 | 2 if dc => r.input.len(),
        _ => 0,
    };
    let mut system = vec![0u8; system_len];
    if system_len > 0 {
        system[..r.input.len()].copy_from_slice(&r.input);
    }
    let neither_or_direct_write = (m == METHOD_NEITHER && (dc || rw)) || (m == 1 && rw);
    let mut b = Box::new(Block {
        irp,
        mdl: irp::output_mdl(std::ptr::null_mut(), 0),
        system,
        input: if neither_or_direct_write {
            r.input.clone()
        } else {
            Vec::new()
        },
        output: vec![
            0u8;
            if m != METHOD_BUFFERED {
                r.output_len
            } else {
                0
            }
        ],
    });
    // SAFETY: the fresh IRP (its next location is the top device's) and the block's buffers,
    // which do not move while the block lives.
    unsafe { wire(&mut b, open, r, m) };
    Some(b)
}

/// Fills the next location and points the IRP at the block's buffers.
///
/// # Safety
/// `b.irp` is a fresh IRP from `irp::alloc`.
unsafe fn wire(b: &mut Block, open: &Open, r: &Request, m: u32) {
    // SAFETY: per the contract.
    unsafe {
        let irp = b.irp;
        let sp = irp::next_location(irp);
        (*sp).major_function = r.major;
        (*sp).file_object = open.file();
        (*irp).requestor_mode = USER_MODE;
        (*irp).tail.original_file_object = open.file();
        if !b.system.is_empty() {
            (*irp).system_buffer = b.system.as_mut_ptr().cast();
        }
        let p = &mut (*sp).parameters.words;
        match r.major {
            IRP_MJ_CREATE => {
                p[0] = open.security() as usize;
                p[1] = (FILE_OPEN << 24) as usize;
            }
            IRP_MJ_DEVICE_CONTROL => *p = [r.output_len, r.input.len(), r.code as usize, 0],
            IRP_MJ_READ => p[0] = r.output_len,
            IRP_MJ_WRITE => p[0] = r.input.len(),
            _ => {}
        }
        // The caller's buffer: the data of a write, the output of the rest.
        let (user, user_len) = if r.major == IRP_MJ_WRITE {
            (b.input.as_mut_ptr(), b.input.len())
        } else {
            (b.output.as_mut_ptr(), b.output.len())
        };
        match m {
            METHOD_NEITHER => {
                if r.major == IRP_MJ_DEVICE_CONTROL && !b.input.is_empty() {
                    (*sp).parameters.words[3] = b.input.as_mut_ptr() as usize;
                }
                if user_len > 0 {
                    (*irp).user_buffer = user.cast();
                }
            }
            1 | 2 if user_len > 0 => {
                b.mdl = irp::output_mdl(user, user_len);
                (*irp).mdl_address = &raw mut b.mdl;
            }
            _ => {}
        }
    }
}

pub(crate) fn callback_name(major: u8) -> &'static str {
    match major {
        IRP_MJ_CREATE => "DispatchCreate",
        IRP_MJ_CLOSE => "DispatchClose",
        IRP_MJ_CLEANUP => "DispatchCleanup",
        IRP_MJ_READ => "DispatchRead",
        IRP_MJ_WRITE => "DispatchWrite",
        IRP_MJ_DEVICE_CONTROL => "DispatchDeviceControl",
        _ => "DispatchRoutine",
    }
}

fn finding(t: &Target<'_>, message: String) {
    t.host
        .tracker
        .lock()
        .findings
        .push((t.index, Finding::Assertion { message }));
}

/// Sends one IRP to the top of the open's device stack (IofCallDriver) and returns without
/// waiting. Out of memory completes it with STATUS_INSUFFICIENT_RESOURCES.
fn send(t: &Target<'_>, open: &mut Open, r: Request) -> Sent {
    let top = top_device(t.host, open.device);
    // SAFETY: a live device of the namespace.
    let flags = unsafe { (*top).flags };
    let Some(block) = build(open, &r, top, flags) else {
        let block = Box::new(Block {
            irp: irp::alloc(1),
            mdl: irp::output_mdl(std::ptr::null_mut(), 0),
            system: Vec::new(),
            input: Vec::new(),
            output: Vec::new(),
        });
        return Sent {
            block,
            request: r,
            returned: super::STATUS_INSUFFICIENT_RESOURCES,
            flags,
        };
    };
    let driver = super::wdm::driver_of(t.host, top).unwrap_or(t.index);
    irp::register(t.host, block.irp, driver, Origin::Host);
    let returned = {
        let _bound = ctx::bind(t.host, t.index, PASSIVE_LEVEL, callback_name(r.major));
        irp::call(t.host, top, block.irp)
    };
    Sent {
        block,
        request: r,
        returned,
        flags,
    }
}

/// Sends and waits: [`send`] then [`finish`].
fn send_wait(t: &Target<'_>, open: &mut Open, r: Request) -> Result<Done, IoctlError> {
    let sent = send(t, open, r);
    finish(t, open, sent)
}

/// How the IRP of `sent` completed, if it has.
fn done_of(t: &Target<'_>, sent: &Sent) -> Option<Completed> {
    let s = t.host.rt.wdm.state.lock();
    s.irps.get(&(sent.block.irp as usize)).and_then(|r| r.done)
}

/// Waits (bounded) for the IRP of `sent`, checks what the dispatch routine returned, takes the
/// IRP back; an IRP never completed is abandoned (`IoctlError::NotCompleted`).
fn finish(t: &Target<'_>, open: &mut Open, sent: Sent) -> Result<Done, IoctlError> {
    if sent.returned == super::STATUS_INSUFFICIENT_RESOURCES && done_of(t, &sent).is_none() {
        let registered = t
            .host
            .rt
            .wdm
            .state
            .lock()
            .irps
            .contains_key(&(sent.block.irp as usize));
        if !registered {
            return Ok(Done {
                status: sent.returned,
                information: 0,
                output: Vec::new(),
            });
        }
    }
    let key = sent.block.irp as usize;
    let Some(done) = wait(t, &sent) else {
        if sent.returned == STATUS_PENDING && cancel_late(t, &sent) {
            // Cancelled and completed: the request still failed, its IRP is the host's again.
            t.host.rt.wdm.state.lock().irps.remove(&key);
            return Err(IoctlError::NotCompleted {
                driver: t.name.into(),
                timeout: t.host.config.unload_timeout,
            });
        }
        open.stuck = true;
        let keep = Abandoned {
            _block: sent.block,
            _objects: open.objects.clone(),
        };
        t.host.rt.wdm.state.lock().abandoned.push((t.index, keep));
        return Err(IoctlError::NotCompleted {
            driver: t.name.into(),
            timeout: t.host.config.unload_timeout,
        });
    };
    t.host.rt.wdm.state.lock().irps.remove(&key);
    if sent.returned == STATUS_PENDING && !done.pending_returned {
        finding(
            t,
            format!(
                "{} returned STATUS_PENDING without IoMarkIrpPending",
                callback_name(sent.request.major)
            ),
        );
    }
    // The caller of a request its dispatch routine completed synchronously gets the routine's
    // return value (IoCallDriver's), of a pended one IoStatus.Status.
    let status = if sent.returned == STATUS_PENDING {
        done.status
    } else {
        sent.returned
    };
    Ok(take_output(t, &sent, status, done.information))
}

/// A pended request not completed in time is cancelled (IoCancelIrp, as CancelIoEx or closing
/// the handle does) and waited for once more: whether it completed.
fn cancel_late(t: &Target<'_>, sent: &Sent) -> bool {
    {
        let _bound = ctx::bind(t.host, t.index, PASSIVE_LEVEL, "IoCancelIrp");
        if !irp::cancel(t.host, sent.block.irp) {
            return false;
        }
    }
    let deadline = Instant::now() + t.host.config.unload_timeout;
    let key = sent.block.irp as usize;
    let mut s = t.host.rt.wdm.state.lock();
    loop {
        if s.irps.get(&key).is_some_and(|r| r.done.is_some()) {
            return true;
        }
        if t.host
            .rt
            .wdm
            .completed
            .wait_until(&mut s, deadline)
            .timed_out()
        {
            return false;
        }
    }
}

/// Waits for the IRP's completion, or None at the deadline (and at once when the routine
/// returned something else than STATUS_PENDING without completing it).
fn wait(t: &Target<'_>, sent: &Sent) -> Option<Completed> {
    let key = sent.block.irp as usize;
    let returned = sent.returned;
    let deadline = Instant::now() + t.host.config.unload_timeout;
    let mut s = t.host.rt.wdm.state.lock();
    loop {
        if let Some(done) = s.irps.get(&key).and_then(|x| x.done) {
            drop(s);
            if returned != STATUS_PENDING && returned != done.status {
                finding(
                    t,
                    format!(
                        "dispatch routine returned {returned:#010x} but completed the IRP with \
                         {:#010x}",
                        done.status
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
            report_timeout(t, sent);
            return None;
        }
    }
}

/// The findings for a pended IRP not completed in time.
fn report_timeout(t: &Target<'_>, sent: &Sent) {
    // SAFETY: the IRP is registered and live; its first location the top device's.
    let marked = unsafe {
        let sp = (*sent.block.irp).tail.current_stack_location;
        std::ptr::read_volatile(&raw const (*sp).control) & SL_PENDING_RETURNED != 0
    };
    if !marked {
        finding(
            t,
            format!(
                "{} returned STATUS_PENDING without IoMarkIrpPending",
                callback_name(sent.request.major)
            ),
        );
    }
    finding(
        t,
        format!(
            "pended IRP not completed within {:?}",
            t.host.config.unload_timeout
        ),
    );
}

/// The output bytes of a completed IRP (Information of them, at most the output length).
fn take_output(t: &Target<'_>, sent: &Sent, status: NtStatus, information: usize) -> Done {
    let r = &sent.request;
    let b = &sent.block;
    let mut output = Vec::new();
    if matches!(r.major, IRP_MJ_DEVICE_CONTROL | IRP_MJ_READ) {
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
        let src = if method(r, sent.flags) == METHOD_BUFFERED {
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

// ---- IoGetDeviceObjectPointer, and closing its file object ----------------------------------

#[no_mangle]
pub(crate) unsafe extern "C" fn IoGetDeviceObjectPointer(
    name: *const UnicodeString,
    _access: u32,
    file: *mut *mut FileObject,
    device: *mut *mut DeviceObject,
) -> NtStatus {
    boundary(
        "IoGetDeviceObjectPointer",
        super::STATUS_INVALID_PARAMETER,
        || {
            ctx::check_irql("IoGetDeviceObjectPointer", PASSIVE_LEVEL);
            if file.is_null() || device.is_null() {
                return super::STATUS_INVALID_PARAMETER;
            }
            let Some(name) = super::wdm::read_unicode(name).filter(|n| !n.is_empty()) else {
                return super::STATUS_INVALID_PARAMETER;
            };
            let r = ctx::with_host(|h| driver_open(h, &name));
            match r {
                Some(Ok((f, d))) => {
                    // SAFETY: the caller's out-pointers (checked non-null).
                    unsafe {
                        *file = f;
                        *device = d;
                    }
                    super::STATUS_SUCCESS
                }
                Some(Err(st)) => st,
                None => super::STATUS_INVALID_DEVICE_STATE,
            }
        },
    )
}

/// Opens `name` for the current driver: its file object and the top device of the stack.
fn driver_open(
    host: &HostInner,
    name: &str,
) -> Result<(*mut FileObject, *mut DeviceObject), NtStatus> {
    let opener = ctx::current_driver();
    let device = super::wdm::lookup(host, name).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
    let target = target_of(host, device)?;
    let mut open = Open::new(device);
    let created = send_wait(&target, &mut open, request(IRP_MJ_CREATE, 0, &[], 0))
        .map_err(|_| super::STATUS_INVALID_DEVICE_STATE)?;
    if created.status < 0 {
        return Err(created.status);
    }
    let file = open.file();
    host.rt.wdm.state.lock().files.insert(
        file as usize,
        DriverOpen {
            open,
            refs: 1,
            driver: opener,
        },
    );
    Ok((file, top_device(host, device)))
}

/// The Target of the driver owning `device` (findings go to it).
fn target_of(host: &HostInner, device: *mut DeviceObject) -> Result<Target<'_>, NtStatus> {
    let index = super::wdm::driver_of(host, device).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
    // SAFETY: a live device of the namespace.
    let object = unsafe { (*device).driver_object };
    Ok(Target {
        host,
        index,
        name: "device",
        object,
    })
}

/// ObReferenceObject on a file object from IoGetDeviceObjectPointer: the new count.
pub(crate) fn reference_file(host: &HostInner, file: usize) -> Option<usize> {
    let mut s = host.rt.wdm.state.lock();
    let f = s.files.get_mut(&file)?;
    f.refs += 1;
    Some(f.refs)
}

/// ObDereferenceObject on such a file object: the count left; at zero the open is closed
/// (IRP_MJ_CLEANUP, IRP_MJ_CLOSE, waited for).
pub(crate) fn dereference_file(host: &HostInner, file: usize) -> Option<usize> {
    let mut s = host.rt.wdm.state.lock();
    let f = s.files.get_mut(&file)?;
    f.refs -= 1;
    if f.refs > 0 {
        return Some(f.refs);
    }
    let mut f = s.files.remove(&file)?;
    drop(s);
    if let Ok(t) = target_of(host, f.open.device) {
        drop(close_open(&t, &mut f.open));
    }
    Some(0)
}
