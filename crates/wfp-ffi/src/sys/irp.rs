//! IRP forwarding and completion (WDK km/wdm.h; docs/c-abi.md "WDM drivers"): IRPs with
//! `StackCount` IO_STACK_LOCATIONs laid out after the IRP (location `i`, 1-based, at
//! `(irp + 1) + (i - 1)`, `CurrentLocation` `StackCount + 1` for the originator), IofCallDriver,
//! IofCompleteRequest's walk up the stack calling completion routines, IoAllocateIrp /
//! IoFreeIrp, IoBuildDeviceIoControlRequest, and cancel (IoCancelIrp, the cancel spin lock).
//!
//! Every IRP the runtime hands out is registered in the host's WDM state until it is freed: an
//! IRP it does not know is a Verifier finding (`BadHandle`), never a dereference.

use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::ctx::{self, DISPATCH_LEVEL};
use super::types::{DeviceObject, Mdl};
use super::wdm::{IoStackLocation, IoStatusBlock, Irp, IrpTail, Parameters};
use super::{boundary, NtStatus, STATUS_INVALID_PARAMETER};
use crate::host::HostInner;
use crate::verifier::Finding;

pub(crate) const STATUS_MORE_PROCESSING_REQUIRED: NtStatus = 0xC000_0016_u32 as i32;
pub(crate) const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as i32;
pub(crate) const SL_PENDING_RETURNED: u8 = 0x01;
const SL_INVOKE_ON_CANCEL: u8 = 0x20;
const SL_INVOKE_ON_SUCCESS: u8 = 0x40;
const SL_INVOKE_ON_ERROR: u8 = 0x80;
pub(crate) const IRP_MJ_DEVICE_CONTROL: u8 = 0x0e;
const IRP_MJ_INTERNAL_DEVICE_CONTROL: u8 = 0x0f;
const METHOD_BUFFERED: u32 = 0;
const METHOD_NEITHER: u32 = 3;
const MDL_PAGES_LOCKED: i16 = 0x2;

type Completion = unsafe extern "C" fn(*mut DeviceObject, *mut Irp, *mut c_void) -> NtStatus;
type Cancel = unsafe extern "C" fn(*mut DeviceObject, *mut Irp);

/// Who created an IRP, which decides what happens when its completion reaches the top.
#[derive(Debug)]
pub(crate) enum Origin {
    /// The host (a request, or IoGetDeviceObjectPointer's open / close): completion is recorded
    /// for the waiting thread.
    Host,
    /// IoAllocateIrp: the caller's completion routine takes it back; IoFreeIrp frees it.
    Allocated,
    /// IoBuildDeviceIoControlRequest, IoBuildSynchronousFsdRequest: the runtime finishes and
    /// frees it.
    Built(Box<Built>),
    /// IoBuildAsynchronousFsdRequest: its buffers are handed back when the completion reaches
    /// the originator's level; the caller's completion routine frees it (IoFreeIrp) or, when no
    /// routine stops the walk, the runtime does.
    AsyncFsd(Box<Built>),
    /// IoInitializeIrp on the caller's memory: the caller's completion routine takes it back and
    /// the caller frees the memory as it allocated it (IoFreeIrp of it is a finding).
    Initialized,
}

/// What an IoBuildDeviceIoControlRequest IRP needs at its end.
#[derive(Debug)]
pub(crate) struct Built {
    system: Vec<u8>,
    mdl: Option<Box<Mdl>>,
    output: *mut u8,
    output_len: usize,
    buffered: bool,
    iosb: *mut IoStatusBlock,
    event: *mut c_void,
}

/// How an IRP completed (IoStatus, and `PendingReturned` at the top).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Completed {
    pub(crate) status: NtStatus,
    pub(crate) information: usize,
    pub(crate) pending_returned: bool,
}

/// One registered IRP.
#[derive(Debug)]
pub(crate) struct Record {
    /// The driver that created it (the host's IRPs: the driver they were sent to).
    pub(crate) driver: usize,
    pub(crate) origin: Origin,
    pub(crate) done: Option<Completed>,
}

/// Allocates a zeroed IRP with `stack` locations, `CurrentLocation` at the originator's
/// (`stack + 1`). NULL when out of memory.
pub(crate) fn alloc(stack: u8) -> *mut Irp {
    let n = usize::from(stack.max(1));
    let bytes = std::mem::size_of::<Irp>() + n * std::mem::size_of::<IoStackLocation>();
    // SAFETY: calloc has no preconditions; NULL is handled.
    let irp = unsafe { libc::calloc(1, bytes) }.cast::<Irp>();
    if irp.is_null() {
        return irp;
    }
    // SAFETY: a fresh zeroed block large enough for the IRP and its locations.
    unsafe { irp.write(alloc_layout(irp, n)) };
    // SAFETY: as above.
    unsafe { (*irp).size = u16::try_from(bytes).unwrap_or(u16::MAX) };
    irp
}

/// A fresh IRP value with `n` stack locations behind `irp` (its location pointers computed
/// from `irp`; Size 0: the caller sets it).
fn alloc_layout(irp: *mut Irp, n: usize) -> Irp {
    // SAFETY: only address arithmetic within the IRP's own block (IRP + n locations).
    let current = unsafe { irp.add(1).cast::<IoStackLocation>().add(n) };
    Irp {
        object_type: 6,
        size: 0,
        allocation_processor_number: 0,
        reserved: 0,
        mdl_address: std::ptr::null_mut(),
        flags: 0,
        system_buffer: std::ptr::null_mut(),
        thread_list_entry: [std::ptr::null_mut(); 2],
        io_status: IoStatusBlock::default(),
        requestor_mode: 0,
        pending_returned: 0,
        stack_count: i8::try_from(n).unwrap_or(i8::MAX),
        current_location: i8::try_from(n + 1).unwrap_or(i8::MAX),
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
            current_stack_location: current,
            original_file_object: std::ptr::null_mut(),
            irp_extension: std::ptr::null_mut(),
        },
    }
}

/// Frees an IRP from [`alloc`].
///
/// # Safety
/// `irp` came from [`alloc`], is unregistered and no driver holds it.
pub(crate) unsafe fn free(irp: *mut Irp) {
    // SAFETY: per the contract.
    unsafe { libc::free(irp.cast()) };
}

/// The location the next IofCallDriver uses (`IoGetNextIrpStackLocation`).
///
/// # Safety
/// `irp` is a live IRP from [`alloc`] with a location left below the current one.
pub(crate) unsafe fn next_location(irp: *mut Irp) -> *mut IoStackLocation {
    // SAFETY: per the contract.
    unsafe { (*irp).tail.current_stack_location.sub(1) }
}

/// Registers an IRP.
pub(crate) fn register(host: &HostInner, irp: *mut Irp, driver: usize, origin: Origin) {
    host.rt.wdm.state.lock().irps.insert(
        irp as usize,
        Record {
            driver,
            origin,
            done: None,
        },
    );
}

fn finding(host: &HostInner, message: String) {
    host.finding(Finding::Assertion { message });
}

fn known(host: &HostInner, function: &'static str, irp: *mut Irp) -> bool {
    let ok = host.rt.wdm.state.lock().irps.contains_key(&(irp as usize));
    if !ok {
        host.finding(Finding::BadHandle { function });
    }
    ok
}

#[no_mangle]
pub(crate) unsafe extern "C" fn IofCallDriver(
    device: *mut DeviceObject,
    irp: *mut Irp,
) -> NtStatus {
    boundary("IofCallDriver", STATUS_INVALID_PARAMETER, || {
        ctx::check_irql("IofCallDriver", DISPATCH_LEVEL);
        ctx::with_host(|h| call(h, device, irp)).unwrap_or(super::STATUS_INVALID_DEVICE_STATE)
    })
}

/// IofCallDriver: the next location becomes current, its DeviceObject `device`, and the
/// driver's MajorFunction[] routine runs (bound to that driver, at the caller's IRQL).
pub(crate) fn call(host: &HostInner, device: *mut DeviceObject, irp: *mut Irp) -> NtStatus {
    let Some(driver) = super::wdm::driver_of(host, device) else {
        host.finding(Finding::BadHandle {
            function: "IofCallDriver (unknown device)",
        });
        return STATUS_INVALID_PARAMETER;
    };
    if !known(host, "IofCallDriver", irp) {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: a registered IRP from `alloc` (its locations follow it); `device` is a live
    // device of the namespace.
    let (major, object) = unsafe {
        if (*irp).current_location <= 1 {
            finding(
                host,
                "IoCallDriver with no stack location left \
                 (bugcheck 0x35 NO_MORE_IRP_STACK_LOCATIONS)"
                    .into(),
            );
            return STATUS_INVALID_PARAMETER;
        }
        (*irp).current_location -= 1;
        let sp = (*irp).tail.current_stack_location.sub(1);
        (*irp).tail.current_stack_location = sp;
        (*sp).device_object = device;
        ((*sp).major_function, (*device).driver_object)
    };
    let Some(dispatch) = super::wdm_io::dispatch_of(object, major) else {
        // SAFETY: as above.
        unsafe {
            (*irp).io_status.status = STATUS_INVALID_DEVICE_REQUEST;
            (*irp).io_status.information = 0;
        }
        complete(host, irp);
        return STATUS_INVALID_DEVICE_REQUEST;
    };
    let _bound = ctx::bind(
        host,
        driver,
        ctx::irql(),
        super::wdm_io::callback_name(major),
    );
    // SAFETY: the driver's dispatch routine with its device and a live IRP.
    unsafe { dispatch(device, irp) }
}

/// IofCompleteRequest: the checks, the walk up the stack, the originator's part.
pub(crate) fn complete(host: &HostInner, irp: *mut Irp) {
    if !known(host, "IofCompleteRequest", irp) {
        return;
    }
    // SAFETY: a registered IRP.
    let (location, count, status, cancel) = unsafe {
        (
            (*irp).current_location,
            (*irp).stack_count,
            (*irp).io_status.status,
            std::ptr::read_volatile(&raw const (*irp).cancel_routine),
        )
    };
    if location > count {
        finding(
            host,
            "IoCompleteRequest on an IRP already completed \
             (bugcheck 0x44 MULTIPLE_IRP_COMPLETE_REQUESTS)"
                .into(),
        );
        return;
    }
    if status == super::wdm::STATUS_PENDING {
        finding(
            host,
            "IoCompleteRequest with IoStatus.Status STATUS_PENDING".into(),
        );
    }
    if !cancel.is_null() {
        finding(
            host,
            "IoCompleteRequest on an IRP whose cancel routine is still set \
             (IoSetCancelRoutine(Irp, NULL) first)"
                .into(),
        );
    }
    // SAFETY: a registered IRP with a current location (checked above).
    if unsafe { unwind(host, irp) } {
        finish(host, irp);
    }
}

/// Walks from the current location up (IopfCompleteRequest): false when a completion routine
/// returned STATUS_MORE_PROCESSING_REQUIRED (its owner has the IRP again).
///
/// # Safety
/// `irp` is a registered IRP from [`alloc`] with `CurrentLocation` ≤ `StackCount`.
unsafe fn unwind(host: &HostInner, irp: *mut Irp) -> bool {
    // SAFETY: per the contract; every location pointer stays within the IRP's block.
    unsafe {
        let count = (*irp).stack_count;
        let mut sp = (*irp).tail.current_stack_location;
        (*irp).current_location += 1;
        (*irp).tail.current_stack_location = sp.add(1);
        while (*irp).current_location <= count + 1 {
            if (*irp).current_location == count + 1 {
                at_originator(host, irp);
            }
            let control = (*sp).control;
            (*irp).pending_returned = u8::from(control & SL_PENDING_RETURNED != 0);
            let status = (*irp).io_status.status;
            let invoke = (status >= 0 && control & SL_INVOKE_ON_SUCCESS != 0)
                || (status < 0 && control & SL_INVOKE_ON_ERROR != 0)
                || ((*irp).cancel != 0 && control & SL_INVOKE_ON_CANCEL != 0);
            let (routine, context) = ((*sp).completion_routine, (*sp).context);
            zero_location(sp);
            if invoke && !routine.is_null() {
                let device = if (*irp).current_location == count + 1 {
                    std::ptr::null_mut()
                } else {
                    (*(*irp).tail.current_stack_location).device_object
                };
                if run_completion(host, routine, device, irp, context)
                    == STATUS_MORE_PROCESSING_REQUIRED
                {
                    return false;
                }
            } else if (*irp).pending_returned != 0 && (*irp).current_location <= count {
                (*(*irp).tail.current_stack_location).control |= SL_PENDING_RETURNED;
            }
            sp = sp.add(1);
            (*irp).current_location += 1;
            (*irp).tail.current_stack_location = sp.add(1);
        }
        true
    }
}

/// The I/O manager's part for an IoBuildAsynchronousFsdRequest IRP before its originator's
/// completion routine runs (choice made here: Windows does it in IopCompleteRequest, after that
/// routine, which the routine's IoFreeIrp would skip): a successful buffered read's bytes copied
/// to the caller's Buffer, `*IoStatusBlock` set.
///
/// # Safety
/// `irp` is a registered IRP from [`alloc`].
unsafe fn at_originator(host: &HostInner, irp: *mut Irp) {
    let s = host.rt.wdm.state.lock();
    let Some(Record {
        origin: Origin::AsyncFsd(b),
        ..
    }) = s.irps.get(&(irp as usize))
    else {
        return;
    };
    // SAFETY: per the contract.
    let done = unsafe {
        Completed {
            status: (*irp).io_status.status,
            information: (*irp).io_status.information,
            pending_returned: false,
        }
    };
    // SAFETY: the caller's Buffer and IO_STATUS_BLOCK (IoBuildAsynchronousFsdRequest's
    // contract), the system buffer owned by the record (the lock held while copying).
    unsafe { hand_back(b, done) };
}

/// Copies a buffered request's output to the caller's buffer and stores `*IoStatusBlock`.
///
/// # Safety
/// `b`'s output buffer and IO_STATUS_BLOCK are the caller's, still live.
unsafe fn hand_back(b: &Built, done: Completed) {
    if b.buffered && done.status >= 0 && !b.output.is_null() {
        let n = done.information.min(b.output_len).min(b.system.len());
        // SAFETY: the caller's output buffer of `output_len` bytes (the IRP's contract).
        unsafe { std::ptr::copy_nonoverlapping(b.system.as_ptr(), b.output, n) };
    }
    if !b.iosb.is_null() {
        // SAFETY: per the contract.
        unsafe {
            (*b.iosb).status = done.status;
            (*b.iosb).information = done.information;
        }
    }
}

/// ZeroIrpStackLocation: everything but MajorFunction, DeviceObject, CompletionRoutine, Context.
///
/// # Safety
/// `sp` is a live stack location.
unsafe fn zero_location(sp: *mut IoStackLocation) {
    // SAFETY: per the contract.
    unsafe {
        (*sp).minor_function = 0;
        (*sp).flags = 0;
        (*sp).control = 0;
        (*sp).parameters = Parameters::default();
        (*sp).file_object = std::ptr::null_mut();
    }
}

/// Runs a completion routine bound to the driver of `device` (the current one when NULL).
fn run_completion(
    host: &HostInner,
    routine: *const c_void,
    device: *mut DeviceObject,
    irp: *mut Irp,
    context: *mut c_void,
) -> NtStatus {
    let driver = super::wdm::driver_of(host, device).unwrap_or_else(ctx::current_driver);
    // SAFETY: a completion routine the driver stored with IoSetCompletionRoutine(Ex).
    let f = unsafe { std::mem::transmute::<*const c_void, Completion>(routine) };
    let _bound = ctx::bind(host, driver, ctx::irql(), "IoCompletion");
    // SAFETY: the routine with the documented arguments.
    unsafe { f(device, irp, context) }
}

/// The originator's part once the walk reached the top.
fn finish(host: &HostInner, irp: *mut Irp) {
    let key = irp as usize;
    // SAFETY: a registered IRP.
    let done = unsafe {
        Completed {
            status: (*irp).io_status.status,
            information: (*irp).io_status.information,
            pending_returned: (*irp).pending_returned != 0,
        }
    };
    let mut s = host.rt.wdm.state.lock();
    let Some(rec) = s.irps.get_mut(&key) else {
        return;
    };
    match rec.origin {
        Origin::Host => {
            rec.done = Some(done);
            drop(s);
            host.rt.wdm.completed.notify_all();
        }
        Origin::Allocated | Origin::Initialized => {
            rec.done = Some(done);
            drop(s);
            finding(
                host,
                "an IRP from IoAllocateIrp or IoInitializeIrp was completed past its last stack \
                 location (no completion routine returned STATUS_MORE_PROCESSING_REQUIRED)"
                    .into(),
            );
        }
        Origin::Built(_) => {
            let Some(Record {
                origin: Origin::Built(b),
                ..
            }) = s.irps.remove(&key)
            else {
                return;
            };
            drop(s);
            // SAFETY: unregistered and completed: the IRP and its buffers are the runtime's.
            unsafe { finish_built(&b, done, irp) };
        }
        Origin::AsyncFsd(_) => {
            s.irps.remove(&key);
            drop(s);
            // SAFETY: unregistered and completed (handed back in `at_originator`): the runtime's,
            // with the MDL still attached (the I/O manager frees it when it finishes the IRP).
            unsafe {
                free_attached_mdl(host, irp);
                free(irp);
            }
        }
    }
}

/// Frees the IRP's `MdlAddress` when it is an MDL the runtime recorded (IoBuildAsynchronousFsdRequest's
/// for a direct device, or one the driver attached from IoAllocateMdl), as the I/O manager does
/// when it finishes an IRP.
///
/// # Safety
/// `irp` is a live IRP the runtime is finishing.
unsafe fn free_attached_mdl(host: &HostInner, irp: *mut Irp) {
    // SAFETY: per the contract.
    let m = unsafe { (*irp).mdl_address };
    if m.is_null() || host.tracker.lock().mdls.remove(&(m as usize)).is_none() {
        return;
    }
    // SAFETY: recorded, so from Box::into_raw (IoAllocateMdl or build_fsd), freed once here.
    unsafe {
        (*irp).mdl_address = std::ptr::null_mut();
        drop(Box::from_raw(m));
    }
}

/// Copies a built request's output back, stores IoStatus, signals the event, frees the IRP.
///
/// # Safety
/// `irp` is the unregistered IRP of `b`.
unsafe fn finish_built(b: &Built, done: Completed, irp: *mut Irp) {
    // SAFETY: the caller's buffers, IO_STATUS_BLOCK and KEVENT (IoBuildDeviceIoControlRequest's
    // contract); the IRP is the runtime's.
    unsafe {
        hand_back(b, done);
        if !b.event.is_null() {
            super::sync::KeSetEvent(b.event, 0, 0);
        }
        free(irp);
    }
}

#[no_mangle]
pub(crate) extern "C" fn IoAllocateIrp(stack: i8, _charge_quota: u8) -> *mut Irp {
    boundary("IoAllocateIrp", std::ptr::null_mut(), || {
        ctx::check_irql("IoAllocateIrp", DISPATCH_LEVEL);
        let Ok(n) = u8::try_from(stack) else {
            return std::ptr::null_mut();
        };
        if n == 0 {
            return std::ptr::null_mut();
        }
        let irp = alloc(n);
        if !irp.is_null() {
            ctx::with_host(|h| register(h, irp, ctx::current_driver(), Origin::Allocated));
        }
        irp
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn IoFreeIrp(irp: *mut Irp) {
    boundary("IoFreeIrp", (), || {
        ctx::check_irql("IoFreeIrp", DISPATCH_LEVEL);
        ctx::with_host(|h| {
            let mut s = h.rt.wdm.state.lock();
            let key = irp as usize;
            match s.irps.get(&key).map(|r| &r.origin) {
                Some(Origin::Allocated | Origin::AsyncFsd(_)) => {}
                Some(_) => {
                    drop(s);
                    return finding(
                        h,
                        "IoFreeIrp of an IRP the driver did not allocate with IoAllocateIrp or \
                         IoBuildAsynchronousFsdRequest"
                            .into(),
                    );
                }
                None => {
                    drop(s);
                    return h.finding(Finding::BadHandle {
                        function: "IoFreeIrp",
                    });
                }
            }
            // SAFETY: registered, so live.
            let with_driver = unsafe { (*irp).current_location <= (*irp).stack_count };
            if with_driver {
                drop(s);
                return finding(
                    h,
                    "IoFreeIrp of an IRP a driver still holds (not completed back to its owner)"
                        .into(),
                );
            }
            s.irps.remove(&key);
            drop(s);
            // SAFETY: unregistered, back with its owner.
            unsafe { free(irp) };
        });
    });
}

/// IoReuseIrp (WDK km/wdm.h): an IoAllocateIrp IRP back with its owner starts over — every
/// field and stack location zeroed as IoInitializeIrp leaves them (StackCount, Size and
/// AllocationFlags kept, CurrentLocation at the originator's), then `IoStatus.Status` = Status.
/// Findings: an IRP not from IoAllocateIrp, one a driver still holds, one with a cancel routine
/// still set (each left unchanged).
#[no_mangle]
pub(crate) unsafe extern "C" fn IoReuseIrp(irp: *mut Irp, status: NtStatus) {
    boundary("IoReuseIrp", (), || {
        ctx::with_host(|h| {
            let mut s = h.rt.wdm.state.lock();
            let Some(rec) = s.irps.get_mut(&(irp as usize)) else {
                drop(s);
                return h.finding(Finding::BadHandle {
                    function: "IoReuseIrp",
                });
            };
            let problem = if !matches!(rec.origin, Origin::Allocated | Origin::Initialized) {
                Some("IoReuseIrp of an IRP not from IoAllocateIrp or IoInitializeIrp")
            // SAFETY: registered, so live.
            } else if unsafe { (*irp).current_location <= (*irp).stack_count } {
                Some("IoReuseIrp of an IRP a driver still holds (not completed back to its owner)")
            // SAFETY: as above.
            } else if unsafe { !(*irp).cancel_routine.is_null() } {
                Some("IoReuseIrp of an IRP with its cancel routine still set")
            } else {
                None
            };
            if let Some(p) = problem {
                drop(s);
                return finding(h, p.into());
            }
            rec.done = None;
            drop(s);
            // SAFETY: an IoAllocateIrp IRP back with its owner (checked above): the caller's.
            unsafe { reinitialize(irp, status) };
        });
    });
}

/// Zeroes an IRP from [`alloc`] and its stack locations as [`alloc`] made them.
///
/// # Safety
/// `irp` came from [`alloc`] and no driver holds it.
unsafe fn reinitialize(irp: *mut Irp, status: NtStatus) {
    // SAFETY: per the contract: the block holds the IRP and StackCount locations.
    unsafe {
        let n = usize::try_from((*irp).stack_count).unwrap_or(1).max(1);
        let (size, flags) = ((*irp).size, (*irp).allocation_flags);
        let first = irp.add(1).cast::<IoStackLocation>();
        std::ptr::write_bytes(
            first.cast::<u8>(),
            0,
            n * std::mem::size_of::<IoStackLocation>(),
        );
        let fresh = alloc_layout(irp, n);
        irp.write(fresh);
        (*irp).size = size;
        (*irp).allocation_flags = flags;
        (*irp).io_status.status = status;
    }
}

/// IoBuildDeviceIoControlRequest's arguments.
struct BuildArgs {
    code: u32,
    device: *mut DeviceObject,
    input: *mut u8,
    input_len: u32,
    output: *mut u8,
    output_len: u32,
    internal: bool,
    event: *mut c_void,
    iosb: *mut IoStatusBlock,
}

#[no_mangle]
pub(crate) unsafe extern "C" fn IoBuildDeviceIoControlRequest(
    code: u32,
    device: *mut DeviceObject,
    input: *mut c_void,
    input_len: u32,
    output: *mut c_void,
    output_len: u32,
    internal: u8,
    event: *mut c_void,
    iosb: *mut IoStatusBlock,
) -> *mut Irp {
    boundary(
        "IoBuildDeviceIoControlRequest",
        std::ptr::null_mut(),
        || {
            ctx::check_irql("IoBuildDeviceIoControlRequest", 0);
            let a = BuildArgs {
                code,
                device,
                input: input.cast(),
                input_len,
                output: output.cast(),
                output_len,
                internal: internal != 0,
                event,
                iosb,
            };
            ctx::with_host(|h| build_ioctl(h, &a)).unwrap_or(std::ptr::null_mut())
        },
    )
}

fn build_ioctl(host: &HostInner, a: &BuildArgs) -> *mut Irp {
    if super::wdm::driver_of(host, a.device).is_none() {
        host.finding(Finding::BadHandle {
            function: "IoBuildDeviceIoControlRequest (unknown device)",
        });
        return std::ptr::null_mut();
    }
    // SAFETY: a live device of the namespace.
    let stack = u8::try_from(unsafe { (*a.device).stack_size }).unwrap_or(1);
    let irp = alloc(stack);
    if irp.is_null() {
        return irp;
    }
    let method = a.code & 3;
    let (in_len, out_len) = (a.input_len as usize, a.output_len as usize);
    let input: &[u8] = if a.input.is_null() || in_len == 0 {
        &[]
    } else {
        // SAFETY: the caller's input buffer of InputBufferLength bytes.
        unsafe { std::slice::from_raw_parts(a.input, in_len) }
    };
    let mut system = match method {
        METHOD_BUFFERED => vec![0u8; in_len.max(out_len)],
        METHOD_NEITHER => Vec::new(),
        _ => vec![0u8; input.len()],
    };
    let n = input.len().min(system.len());
    system[..n].copy_from_slice(&input[..n]);
    let mut built = Box::new(Built {
        system,
        mdl: None,
        output: a.output,
        output_len: out_len,
        buffered: method == METHOD_BUFFERED,
        iosb: a.iosb,
        event: a.event,
    });
    // SAFETY: the fresh IRP and its next location; the buffers live in `built`, registered
    // with the IRP until it is freed.
    unsafe {
        let sp = next_location(irp);
        (*sp).major_function = if a.internal {
            IRP_MJ_INTERNAL_DEVICE_CONTROL
        } else {
            IRP_MJ_DEVICE_CONTROL
        };
        (*sp).parameters.words = [out_len, in_len, a.code as usize, 0];
        (*irp).user_iosb = a.iosb;
        (*irp).user_event = a.event;
        (*irp).user_buffer = a.output.cast();
        if !built.system.is_empty() {
            (*irp).system_buffer = built.system.as_mut_ptr().cast();
        }
        match method {
            METHOD_BUFFERED => {}
            METHOD_NEITHER => (*sp).parameters.words[3] = a.input as usize,
            _ if !a.output.is_null() && out_len > 0 => {
                let mut mdl = Box::new(output_mdl(a.output, out_len));
                (*irp).mdl_address = &raw mut *mdl;
                built.mdl = Some(mdl);
            }
            _ => {}
        }
    }
    register(host, irp, ctx::current_driver(), Origin::Built(built));
    irp
}

const IRP_MJ_READ: u32 = 0x03;
const IRP_MJ_WRITE: u32 = 0x04;
const IRP_MJ_FLUSH_BUFFERS: u32 = 0x09;
const IRP_MJ_SHUTDOWN: u32 = 0x10;
const IRP_MJ_PNP: u32 = 0x1b;
const DO_BUFFERED_IO: u32 = 0x4;
const DO_DIRECT_IO: u32 = 0x10;

/// IoBuildSynchronousFsdRequest's arguments.
struct FsdArgs {
    major: u32,
    device: *mut DeviceObject,
    buffer: *mut u8,
    length: u32,
    offset: i64,
    event: *mut c_void,
    iosb: *mut IoStatusBlock,
    /// IoBuildAsynchronousFsdRequest (no event; the caller frees the IRP).
    asynchronous: bool,
    function: &'static str,
}

const FSD_MAJORS: [u32; 5] = [
    IRP_MJ_READ,
    IRP_MJ_WRITE,
    IRP_MJ_FLUSH_BUFFERS,
    IRP_MJ_SHUTDOWN,
    IRP_MJ_PNP,
];

/// IoBuildSynchronousFsdRequest (WDK km/wdm.h): a read, write, flush, shutdown or PnP IRP for
/// `DeviceObject` that the runtime finishes and frees like IoBuildDeviceIoControlRequest's (the
/// read's bytes copied back to Buffer for a buffered device, `*IoStatusBlock` set, the event
/// signalled). Buffers by the device's flags: DO_BUFFERED_IO a system buffer, DO_DIRECT_IO an MDL
/// on Buffer, neither `UserBuffer`. PASSIVE_LEVEL.
#[no_mangle]
pub(crate) unsafe extern "C" fn IoBuildSynchronousFsdRequest(
    major: u32,
    device: *mut DeviceObject,
    buffer: *mut c_void,
    length: u32,
    offset: *const i64,
    event: *mut c_void,
    iosb: *mut IoStatusBlock,
) -> *mut Irp {
    boundary("IoBuildSynchronousFsdRequest", std::ptr::null_mut(), || {
        ctx::check_irql("IoBuildSynchronousFsdRequest", 0);
        if !FSD_MAJORS.contains(&major) {
            return std::ptr::null_mut();
        }
        let a = FsdArgs {
            major,
            device,
            buffer: buffer.cast(),
            length,
            // SAFETY: the caller's optional StartingOffset.
            offset: unsafe { offset.as_ref() }.copied().unwrap_or(0),
            event,
            iosb,
            asynchronous: false,
            function: "IoBuildSynchronousFsdRequest (unknown device)",
        };
        ctx::with_host(|h| build_fsd(h, &a)).unwrap_or(std::ptr::null_mut())
    })
}

/// IoBuildAsynchronousFsdRequest (WDK km/wdm.h): the IRP IoBuildSynchronousFsdRequest builds,
/// without an event, that the caller sends with a completion routine and frees there with
/// IoFreeIrp (returning STATUS_MORE_PROCESSING_REQUIRED). Before that routine runs, a buffered
/// read's bytes are in Buffer and `*IoStatusBlock` is set; the system buffer and the MDL of a
/// direct device are the runtime's, freed with the IRP (MmUnlockPages / IoFreeMdl of them is not
/// the driver's to do here). When no routine stops the walk, the runtime frees the IRP.
/// IRQL <= DISPATCH_LEVEL.
#[no_mangle]
pub(crate) unsafe extern "C" fn IoBuildAsynchronousFsdRequest(
    major: u32,
    device: *mut DeviceObject,
    buffer: *mut c_void,
    length: u32,
    offset: *const i64,
    iosb: *mut IoStatusBlock,
) -> *mut Irp {
    boundary(
        "IoBuildAsynchronousFsdRequest",
        std::ptr::null_mut(),
        || {
            ctx::check_irql("IoBuildAsynchronousFsdRequest", DISPATCH_LEVEL);
            if !FSD_MAJORS.contains(&major) {
                return std::ptr::null_mut();
            }
            let a = FsdArgs {
                major,
                device,
                buffer: buffer.cast(),
                length,
                // SAFETY: the caller's optional StartingOffset.
                offset: unsafe { offset.as_ref() }.copied().unwrap_or(0),
                event: std::ptr::null_mut(),
                iosb,
                asynchronous: true,
                function: "IoBuildAsynchronousFsdRequest (unknown device)",
            };
            ctx::with_host(|h| build_fsd(h, &a)).unwrap_or(std::ptr::null_mut())
        },
    )
}

fn build_fsd(host: &HostInner, a: &FsdArgs) -> *mut Irp {
    if super::wdm::driver_of(host, a.device).is_none() {
        host.finding(Finding::BadHandle {
            function: a.function,
        });
        return std::ptr::null_mut();
    }
    // SAFETY: a live device of the namespace.
    let (stack, flags) = unsafe { ((*a.device).stack_size, (*a.device).flags) };
    let irp = alloc(u8::try_from(stack).unwrap_or(1));
    if irp.is_null() {
        return irp;
    }
    let rw = matches!(a.major, IRP_MJ_READ | IRP_MJ_WRITE) && !a.buffer.is_null();
    let len = if rw { a.length as usize } else { 0 };
    let buffered = rw && flags & DO_BUFFERED_IO != 0;
    let mut system = vec![0u8; if buffered { len } else { 0 }];
    if buffered && a.major == IRP_MJ_WRITE {
        // SAFETY: the caller's Buffer of Length bytes (the function's contract).
        unsafe { std::ptr::copy_nonoverlapping(a.buffer, system.as_mut_ptr(), len) };
    }
    let read = a.major == IRP_MJ_READ;
    let mut built = Box::new(Built {
        system,
        mdl: None,
        output: if read { a.buffer } else { std::ptr::null_mut() },
        output_len: if read { len } else { 0 },
        buffered,
        iosb: a.iosb,
        event: a.event,
    });
    // SAFETY: the fresh IRP and its next location; the buffers live in `built`, registered with
    // the IRP until it is freed.
    unsafe {
        let sp = next_location(irp);
        (*sp).major_function = a.major as u8;
        (*sp).parameters.words = [len, 0, a.offset as usize, 0];
        (*irp).user_iosb = a.iosb;
        (*irp).user_event = a.event;
        if buffered {
            (*irp).system_buffer = built.system.as_mut_ptr().cast();
        } else if rw && flags & DO_DIRECT_IO != 0 && a.asynchronous {
            // The IRP's MDL, as on Windows: the caller's completion routine unlocks and frees it
            // (IoFreeMdl) before IoFreeIrp, which frees no MDL; when the runtime completes the
            // IRP itself it frees what is still attached.
            let mdl = Box::into_raw(Box::new(output_mdl(a.buffer, len)));
            host.tracker.lock().mdls.insert(
                mdl as usize,
                (
                    u32::try_from(len).unwrap_or(u32::MAX),
                    ctx::current_driver(),
                ),
            );
            (*irp).mdl_address = mdl;
        } else if rw && flags & DO_DIRECT_IO != 0 {
            let mut mdl = Box::new(output_mdl(a.buffer, len));
            (*irp).mdl_address = &raw mut *mdl;
            built.mdl = Some(mdl);
        } else if rw {
            (*irp).user_buffer = a.buffer.cast();
        }
    }
    let origin = if a.asynchronous {
        Origin::AsyncFsd(built)
    } else {
        Origin::Built(built)
    };
    register(host, irp, ctx::current_driver(), origin);
    irp
}

/// IoInitializeIrp (WDK km/wdm.h): makes the caller's `PacketSize` bytes an IRP with
/// `StackSize` locations (zeroed, `Size` = PacketSize, CurrentLocation at the originator's) the
/// caller sends like an IoAllocateIrp one, takes back in its completion routine and frees as it
/// allocated the memory. PacketSize below IoSizeOfIrp(StackSize) is a finding (nothing written).
#[no_mangle]
pub(crate) unsafe extern "C" fn IoInitializeIrp(irp: *mut Irp, packet_size: u16, stack_size: i8) {
    boundary("IoInitializeIrp", (), || {
        ctx::with_host(|h| {
            let need = u8::try_from(stack_size).ok().filter(|n| *n > 0).map(|n| {
                std::mem::size_of::<Irp>() + usize::from(n) * std::mem::size_of::<IoStackLocation>()
            });
            match need {
                Some(need) if !irp.is_null() && usize::from(packet_size) >= need => {}
                _ => {
                    return finding(
                        h,
                        "IoInitializeIrp: NULL Irp, StackSize below 1 or PacketSize below \
                         IoSizeOfIrp(StackSize)"
                            .into(),
                    )
                }
            }
            let n = usize::from(stack_size.unsigned_abs());
            // SAFETY: the caller's PacketSize bytes (checked to hold the IRP and n locations).
            unsafe {
                std::ptr::write_bytes(irp.cast::<u8>(), 0, usize::from(packet_size));
                irp.write(alloc_layout(irp, n));
                (*irp).size = packet_size;
            }
            register(h, irp, ctx::current_driver(), Origin::Initialized);
        });
    });
}

/// Unregisters the IoInitializeIrp IRPs inside `[start, start + size)` (pool memory being freed);
/// one a driver still holds (not completed back to its owner) is a finding: freeing it is a use
/// after free waiting to happen on Windows.
pub(crate) fn forget_initialized(host: &HostInner, start: usize, size: usize) {
    let mut s = host.rt.wdm.state.lock();
    let gone: Vec<usize> = s
        .irps
        .iter()
        .filter(|(k, r)| {
            matches!(r.origin, Origin::Initialized) && **k >= start && **k - start < size.max(1)
        })
        .map(|(k, _)| *k)
        .collect();
    let mut held = false;
    for k in gone {
        s.irps.remove(&k);
        let irp = k as *mut Irp;
        // SAFETY: a registered IRP whose memory is still allocated (the caller frees it after).
        held |= unsafe { (*irp).current_location <= (*irp).stack_count };
    }
    drop(s);
    if held {
        finding(
            host,
            "ExFreePool of an IoInitializeIrp IRP a driver still holds (not completed back to its \
             owner)"
                .into(),
        );
    }
}

/// An MDL describing `len` bytes at `va` (locked, mapped: the host's memory is resident).
pub(crate) fn output_mdl(va: *mut u8, len: usize) -> Mdl {
    Mdl {
        next: std::ptr::null_mut(),
        size: i16::try_from(std::mem::size_of::<Mdl>()).unwrap_or(0),
        mdl_flags: MDL_PAGES_LOCKED,
        process: std::ptr::null_mut(),
        mapped_system_va: std::ptr::null_mut(),
        start_va: va.cast(),
        byte_count: u32::try_from(len).unwrap_or(u32::MAX),
        byte_offset: 0,
    }
}

// ---- cancel ---------------------------------------------------------------------------------

fn cancel_lock(host: &HostInner) -> *mut usize {
    host.rt.wdm.cancel_lock.as_ptr()
}

#[no_mangle]
pub(crate) unsafe extern "C" fn IoAcquireCancelSpinLock(irql: *mut u8) {
    boundary("IoAcquireCancelSpinLock", (), || {
        let Some(lock) = ctx::with_host(cancel_lock) else {
            return;
        };
        let old = super::kernel::KeAcquireSpinLockRaiseToDpc(lock);
        // SAFETY: the caller's PKIRQL (NULL tolerated).
        if let Some(out) = unsafe { irql.as_mut() } {
            *out = old;
        }
    });
}

#[no_mangle]
pub(crate) extern "C" fn IoReleaseCancelSpinLock(irql: u8) {
    boundary("IoReleaseCancelSpinLock", (), || {
        if let Some(lock) = ctx::with_host(cancel_lock) {
            super::kernel::KeReleaseSpinLock(lock, irql);
        }
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn IoCancelIrp(irp: *mut Irp) -> u8 {
    boundary("IoCancelIrp", 0, || {
        ctx::check_irql("IoCancelIrp", DISPATCH_LEVEL);
        ctx::with_host(|h| u8::from(cancel(h, irp))).unwrap_or(0)
    })
}

/// IoCancelIrp: TRUE when a cancel routine was called.
pub(crate) fn cancel(host: &HostInner, irp: *mut Irp) -> bool {
    if !known(host, "IoCancelIrp", irp) {
        return false;
    }
    let lock = cancel_lock(host);
    let old = super::kernel::KeAcquireSpinLockRaiseToDpc(lock);
    // SAFETY: a registered IRP; CancelRoutine is exchanged atomically as IoSetCancelRoutine
    // does (InterlockedExchangePointer on the same field).
    let routine = unsafe {
        (*irp).cancel = 1;
        let field = (&raw mut (*irp).cancel_routine).cast::<AtomicPtr<c_void>>();
        (*field).swap(std::ptr::null_mut(), Ordering::AcqRel)
    };
    if routine.is_null() {
        super::kernel::KeReleaseSpinLock(lock, old);
        return false;
    }
    // SAFETY: as above; the current location's DeviceObject is the driver's that set the
    // routine (the IRP is with it).
    let device = unsafe {
        (*irp).cancel_irql = old;
        if (*irp).current_location <= (*irp).stack_count {
            (*(*irp).tail.current_stack_location).device_object
        } else {
            std::ptr::null_mut()
        }
    };
    // SAFETY: a DRIVER_CANCEL routine the driver set with IoSetCancelRoutine; it releases the
    // cancel spin lock with IoReleaseCancelSpinLock(Irp->CancelIrql).
    let f = unsafe { std::mem::transmute::<*mut c_void, Cancel>(routine) };
    // SAFETY: as above.
    unsafe { f(device, irp) };
    true
}

// ---- IoSetCompletionRoutineEx ----------------------------------------------------------------

/// The routine and context IoSetCompletionRoutineEx wraps, and the driver it keeps loaded.
struct ExContext {
    routine: Completion,
    context: *mut c_void,
    driver: usize,
    control: u8,
}

unsafe extern "C" fn ex_completion(
    device: *mut DeviceObject,
    irp: *mut Irp,
    context: *mut c_void,
) -> NtStatus {
    boundary("IoSetCompletionRoutineEx routine", 0, || {
        // SAFETY: the box IoSetCompletionRoutineEx leaked for this one call.
        let ex = unsafe { Box::from_raw(context.cast::<ExContext>()) };
        // SAFETY: the IRP being completed (its current location is the caller's).
        let (status, cancelled) = unsafe { ((*irp).io_status.status, (*irp).cancel != 0) };
        let invoke = (status >= 0 && ex.control & SL_INVOKE_ON_SUCCESS != 0)
            || (status < 0 && ex.control & SL_INVOKE_ON_ERROR != 0)
            || (cancelled && ex.control & SL_INVOKE_ON_CANCEL != 0);
        let r = if invoke {
            // SAFETY: the driver's completion routine with its own context.
            unsafe { (ex.routine)(device, irp, ex.context) }
        } else {
            // Not invoked: what IofCompleteRequest does for a location without a routine.
            // SAFETY: as above.
            unsafe {
                if (*irp).pending_returned != 0 && (*irp).current_location <= (*irp).stack_count {
                    (*(*irp).tail.current_stack_location).control |= SL_PENDING_RETURNED;
                }
            }
            super::STATUS_SUCCESS
        };
        ctx::with_host(|h| h.rt.activity.leave(ex.driver));
        r
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn IoSetCompletionRoutineEx(
    device: *mut DeviceObject,
    irp: *mut Irp,
    routine: *const c_void,
    context: *mut c_void,
    on_success: u8,
    on_error: u8,
    on_cancel: u8,
) -> NtStatus {
    boundary(
        "IoSetCompletionRoutineEx",
        super::STATUS_INSUFFICIENT_RESOURCES,
        || {
            let Some(driver) = ctx::with_host(|h| super::wdm::driver_of(h, device)).flatten()
            else {
                return STATUS_INVALID_PARAMETER;
            };
            if irp.is_null() || routine.is_null() {
                return STATUS_INVALID_PARAMETER;
            }
            let mut control = 0;
            for (on, bit) in [
                (on_success, SL_INVOKE_ON_SUCCESS),
                (on_error, SL_INVOKE_ON_ERROR),
                (on_cancel, SL_INVOKE_ON_CANCEL),
            ] {
                if on != 0 {
                    control |= bit;
                }
            }
            let ex = Box::into_raw(Box::new(ExContext {
                // SAFETY: the driver's IO_COMPLETION_ROUTINE.
                routine: unsafe { std::mem::transmute::<*const c_void, Completion>(routine) },
                context,
                driver,
                control,
            }));
            ctx::with_host(|h| h.rt.activity.enter(driver));
            // SAFETY: the driver's IRP with a next location (IoSetCompletionRoutine's contract).
            unsafe {
                let sp = next_location(irp);
                (*sp).completion_routine = ex_completion as *const c_void;
                (*sp).context = ex.cast();
                // The wrapper always runs (it releases the driver) and applies `control`.
                (*sp).control = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL;
            }
            super::STATUS_SUCCESS
        },
    )
}
