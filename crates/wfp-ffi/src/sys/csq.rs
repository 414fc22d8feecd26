//! Cancel-safe IRP queues (WDK km/wdm.h IO_CSQ; learn.microsoft.com "Cancel-Safe IRP Queues"):
//! IoCsqInitialize[Ex], IoCsqInsertIrp[Ex], IoCsqRemoveIrp, IoCsqRemoveNextIrp.
//!
//! The queue is the driver's: the runtime calls its callbacks (insert, remove, peek, lock,
//! unlock, complete-canceled) as the I/O manager's csq library does, and owns the IRP's cancel
//! routine while the IRP is queued. `Tail.Overlay.DriverContext[3]` holds the IRP's
//! IO_CSQ_IRP_CONTEXT (or the IO_CSQ when none was given), as on Windows. A queued IRP cancelled
//! by the host (IoCancelIrp: a handle closed, CancelIoEx) is removed through CsqRemoveIrp under
//! the driver's lock and handed to CsqCompleteCanceledIrp; an IRP inserted with `Cancel` already
//! set goes there at once. Removal clears the cancel routine first, so an IRP is either removed
//! by the driver or cancelled, never both.

use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::ctx::{self, assertion, DISPATCH_LEVEL};
use super::types::DeviceObject;
use super::wdm::Irp;
use super::{boundary, NtStatus, STATUS_INVALID_PARAMETER, STATUS_SUCCESS};
use crate::verifier::Finding;

const IO_TYPE_CSQ_IRP_CONTEXT: u32 = 1;
const IO_TYPE_CSQ: u32 = 2;
const IO_TYPE_CSQ_EX: u32 = 3;
const SL_PENDING_RETURNED: u8 = 0x01;
const STATUS_PENDING: NtStatus = 0x103;

type Insert = unsafe extern "C" fn(*mut IoCsq, *mut Irp);
type InsertEx = unsafe extern "C" fn(*mut IoCsq, *mut Irp, *mut c_void) -> NtStatus;
type Remove = unsafe extern "C" fn(*mut IoCsq, *mut Irp);
type Peek = unsafe extern "C" fn(*mut IoCsq, *mut Irp, *mut c_void) -> *mut Irp;
type Acquire = unsafe extern "C" fn(*mut IoCsq, *mut u8);
type Release = unsafe extern "C" fn(*mut IoCsq, u8);
type CompleteCanceled = unsafe extern "C" fn(*mut IoCsq, *mut Irp);

/// `IO_CSQ` (x64: 64 bytes). `insert` is an IO_CSQ_INSERT_IRP, or an IO_CSQ_INSERT_IRP_EX when
/// `kind` is IO_TYPE_CSQ_EX.
#[repr(C)]
pub(crate) struct IoCsq {
    kind: u32,
    insert: *const c_void,
    remove: Option<Remove>,
    peek: Option<Peek>,
    acquire: Option<Acquire>,
    release: Option<Release>,
    complete_canceled: Option<CompleteCanceled>,
    reserve: *mut c_void,
}

const _: () = assert!(std::mem::size_of::<IoCsq>() == 64);

/// `IO_CSQ_IRP_CONTEXT` (x64: 24 bytes).
#[repr(C)]
pub(crate) struct IoCsqIrpContext {
    kind: u32,
    irp: *mut Irp,
    csq: *mut IoCsq,
}

const _: () = assert!(std::mem::size_of::<IoCsqIrpContext>() == 24);

/// The queue's callbacks, all present (checked by IoCsqInitialize).
struct Calls {
    remove: Remove,
    peek: Peek,
    acquire: Acquire,
    release: Release,
    complete_canceled: CompleteCanceled,
}

fn calls(csq: *mut IoCsq, function: &'static str) -> Option<Calls> {
    // SAFETY: the driver's IO_CSQ (checked non-null), initialised by IoCsqInitialize[Ex].
    let q = unsafe { csq.as_ref() }?;
    let kind_ok = q.kind == IO_TYPE_CSQ || q.kind == IO_TYPE_CSQ_EX;
    match (
        kind_ok,
        q.remove,
        q.peek,
        q.acquire,
        q.release,
        q.complete_canceled,
    ) {
        (true, Some(remove), Some(peek), Some(acquire), Some(release), Some(complete_canceled)) => {
            Some(Calls {
                remove,
                peek,
                acquire,
                release,
                complete_canceled,
            })
        }
        _ => {
            ctx::with_host(|h| h.finding(Finding::BadHandle { function }));
            None
        }
    }
}

fn cancel_field<'a>(irp: *mut Irp) -> &'a AtomicPtr<c_void> {
    // SAFETY: the IRP's CancelRoutine, exchanged atomically as IoSetCancelRoutine does.
    unsafe { &*(&raw mut (*irp).cancel_routine).cast::<AtomicPtr<c_void>>() }
}

fn driver_context(irp: *mut Irp) -> *mut *mut c_void {
    // SAFETY: the IRP's Tail.Overlay.DriverContext[3], owned by the csq while the IRP is queued.
    unsafe { &raw mut (*irp).tail.driver_context[3] }
}

/// The cancel routine the csq library sets on queued IRPs (called by IoCancelIrp with the
/// cancel spin lock held).
unsafe extern "C" fn csq_cancel(_device: *mut DeviceObject, irp: *mut Irp) {
    boundary("IoCsq cancel routine", (), || {
        // SAFETY: the IRP being cancelled; CancelIrql is the IRQL to release the lock to.
        let irql = unsafe { (*irp).cancel_irql };
        super::irp::IoReleaseCancelSpinLock(irql);
        // SAFETY: DriverContext[3] was set by the insert that queued this IRP.
        let owner = unsafe { *driver_context(irp) };
        let csq = owner_queue(owner);
        let Some(c) = calls(csq, "IoCsq cancel routine") else {
            return;
        };
        let mut lock_irql = 0u8;
        // SAFETY: the driver's callbacks with its queue and the IRP, as the csq library calls them.
        unsafe {
            (c.acquire)(csq, &raw mut lock_irql);
            (c.remove)(csq, irp);
            *driver_context(irp) = std::ptr::null_mut();
            (c.release)(csq, lock_irql);
            (c.complete_canceled)(csq, irp);
        }
    });
}

/// The IO_CSQ behind DriverContext[3]: the context's queue (its Irp cleared), or the queue.
fn owner_queue(owner: *mut c_void) -> *mut IoCsq {
    let context = owner.cast::<IoCsqIrpContext>();
    // SAFETY: DriverContext[3] holds an IO_CSQ_IRP_CONTEXT or an IO_CSQ, both starting with
    // their Type (IO_TYPE_CSQ_IRP_CONTEXT 1 tells them apart).
    unsafe {
        match context.as_mut() {
            Some(c) if c.kind == IO_TYPE_CSQ_IRP_CONTEXT => {
                c.irp = std::ptr::null_mut();
                c.csq
            }
            _ => owner.cast(),
        }
    }
}

fn initialize(
    csq: *mut IoCsq,
    kind: u32,
    insert: *const c_void,
    rest: [*const c_void; 5],
) -> NtStatus {
    if csq.is_null() || insert.is_null() || rest.iter().any(|f| f.is_null()) {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller's IO_CSQ storage (64 bytes), written whole; the callbacks are the
    // driver's functions of the documented types (checked non-null).
    unsafe {
        csq.write(IoCsq {
            kind,
            insert,
            remove: Some(std::mem::transmute::<*const c_void, Remove>(rest[0])),
            peek: Some(std::mem::transmute::<*const c_void, Peek>(rest[1])),
            acquire: Some(std::mem::transmute::<*const c_void, Acquire>(rest[2])),
            release: Some(std::mem::transmute::<*const c_void, Release>(rest[3])),
            complete_canceled: Some(std::mem::transmute::<*const c_void, CompleteCanceled>(
                rest[4],
            )),
            reserve: std::ptr::null_mut(),
        });
    }
    STATUS_SUCCESS
}

#[no_mangle]
pub(crate) extern "C" fn IoCsqInitialize(
    csq: *mut IoCsq,
    insert: *const c_void,
    remove: *const c_void,
    peek: *const c_void,
    acquire: *const c_void,
    release: *const c_void,
    complete_canceled: *const c_void,
) -> NtStatus {
    boundary("IoCsqInitialize", STATUS_INVALID_PARAMETER, || {
        let rest = [remove, peek, acquire, release, complete_canceled];
        initialize(csq, IO_TYPE_CSQ, insert, rest)
    })
}

#[no_mangle]
pub(crate) extern "C" fn IoCsqInitializeEx(
    csq: *mut IoCsq,
    insert_ex: *const c_void,
    remove: *const c_void,
    peek: *const c_void,
    acquire: *const c_void,
    release: *const c_void,
    complete_canceled: *const c_void,
) -> NtStatus {
    boundary("IoCsqInitializeEx", STATUS_INVALID_PARAMETER, || {
        let rest = [remove, peek, acquire, release, complete_canceled];
        initialize(csq, IO_TYPE_CSQ_EX, insert_ex, rest)
    })
}

/// IoCsqInsertIrpEx's body: the driver's insert under its lock, then the IRP pending with the
/// csq cancel routine (or cancelled at once when `Cancel` is already set).
fn insert(
    csq: *mut IoCsq,
    irp: *mut Irp,
    context: *mut IoCsqIrpContext,
    insert_context: *mut c_void,
) -> NtStatus {
    let Some(c) = calls(csq, "IoCsqInsertIrp") else {
        return STATUS_INVALID_PARAMETER;
    };
    if irp.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let mut irql = 0u8;
    // SAFETY: the driver's callbacks with its queue, as documented; the IRP is the caller's
    // (dispatched to it and not yet completed), its current stack location valid.
    unsafe {
        (c.acquire)(csq, &raw mut irql);
        let q = &*csq;
        if q.kind == IO_TYPE_CSQ_EX {
            let f = std::mem::transmute::<*const c_void, InsertEx>(q.insert);
            let status = f(csq, irp, insert_context);
            if status < 0 {
                (c.release)(csq, irql);
                return status;
            }
        } else {
            std::mem::transmute::<*const c_void, Insert>(q.insert)(csq, irp);
        }
        (*(*irp).tail.current_stack_location).control |= SL_PENDING_RETURNED;
        *driver_context(irp) = match context.as_mut() {
            Some(cx) => {
                cx.kind = IO_TYPE_CSQ_IRP_CONTEXT;
                cx.irp = irp;
                cx.csq = csq;
                std::ptr::from_mut(cx).cast()
            }
            None => csq.cast(),
        };
        cancel_field(irp).store(csq_cancel as *mut c_void, Ordering::Release);
        if (*irp).cancel != 0
            && !cancel_field(irp)
                .swap(std::ptr::null_mut(), Ordering::AcqRel)
                .is_null()
        {
            (c.remove)(csq, irp);
            owner_queue(*driver_context(irp));
            *driver_context(irp) = std::ptr::null_mut();
            (c.release)(csq, irql);
            (c.complete_canceled)(csq, irp);
            return STATUS_PENDING;
        }
        (c.release)(csq, irql);
    }
    STATUS_PENDING
}

#[no_mangle]
pub(crate) extern "C" fn IoCsqInsertIrp(
    csq: *mut IoCsq,
    irp: *mut Irp,
    context: *mut IoCsqIrpContext,
) {
    boundary("IoCsqInsertIrp", (), || {
        ctx::check_irql("IoCsqInsertIrp", DISPATCH_LEVEL);
        insert(csq, irp, context, std::ptr::null_mut());
    });
}

/// STATUS_SUCCESS once queued (the IRP is pending), or the error CsqInsertIrpEx returned.
#[no_mangle]
pub(crate) extern "C" fn IoCsqInsertIrpEx(
    csq: *mut IoCsq,
    irp: *mut Irp,
    context: *mut IoCsqIrpContext,
    insert_context: *mut c_void,
) -> NtStatus {
    boundary("IoCsqInsertIrpEx", STATUS_INVALID_PARAMETER, || {
        ctx::check_irql("IoCsqInsertIrpEx", DISPATCH_LEVEL);
        match insert(csq, irp, context, insert_context) {
            STATUS_PENDING => STATUS_SUCCESS,
            other => other,
        }
    })
}

/// Takes a queued IRP out unless it is being cancelled; null otherwise. Under the driver's lock.
///
/// # Safety
/// `irp` is queued in `csq` (or null) and `c` are `csq`'s callbacks, the lock held.
unsafe fn take(csq: *mut IoCsq, c: &Calls, irp: *mut Irp) -> bool {
    if irp.is_null()
        || cancel_field(irp)
            .swap(std::ptr::null_mut(), Ordering::AcqRel)
            .is_null()
    {
        return false;
    }
    // SAFETY: see the function's contract.
    unsafe {
        (c.remove)(csq, irp);
        owner_queue(*driver_context(irp));
        *driver_context(irp) = std::ptr::null_mut();
    }
    true
}

#[no_mangle]
pub(crate) extern "C" fn IoCsqRemoveIrp(
    csq: *mut IoCsq,
    context: *mut IoCsqIrpContext,
) -> *mut Irp {
    boundary("IoCsqRemoveIrp", std::ptr::null_mut(), || {
        ctx::check_irql("IoCsqRemoveIrp", DISPATCH_LEVEL);
        let Some(c) = calls(csq, "IoCsqRemoveIrp") else {
            return std::ptr::null_mut();
        };
        if context.is_null() {
            assertion("IoCsqRemoveIrp without an IO_CSQ_IRP_CONTEXT");
            return std::ptr::null_mut();
        }
        let mut irql = 0u8;
        // SAFETY: the driver's callbacks and its context (checked non-null), which the insert
        // filled; its Irp is cleared once the IRP left the queue.
        unsafe {
            (c.acquire)(csq, &raw mut irql);
            let irp = (*context).irp;
            let got = take(csq, &c, irp);
            (c.release)(csq, irql);
            if got {
                irp
            } else {
                std::ptr::null_mut()
            }
        }
    })
}

#[no_mangle]
pub(crate) extern "C" fn IoCsqRemoveNextIrp(
    csq: *mut IoCsq,
    peek_context: *mut c_void,
) -> *mut Irp {
    boundary("IoCsqRemoveNextIrp", std::ptr::null_mut(), || {
        ctx::check_irql("IoCsqRemoveNextIrp", DISPATCH_LEVEL);
        let Some(c) = calls(csq, "IoCsqRemoveNextIrp") else {
            return std::ptr::null_mut();
        };
        let mut irql = 0u8;
        // SAFETY: the driver's callbacks under its lock; CsqPeekNextIrp returns IRPs of its queue.
        unsafe {
            (c.acquire)(csq, &raw mut irql);
            let mut irp = (c.peek)(csq, std::ptr::null_mut(), peek_context);
            while !irp.is_null() && !take(csq, &c, irp) {
                irp = (c.peek)(csq, irp, peek_context);
            }
            (c.release)(csq, irql);
            irp
        }
    })
}
