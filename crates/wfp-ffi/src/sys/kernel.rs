//! Kernel runtime (wdk-runtime.md §2, §3, §5): pool, IRQL, spin locks, time, debug output,
//! assertions, device objects.

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::ctx::{self, DISPATCH_LEVEL};
use super::types::{DeviceObject, DriverObject, KLockQueueHandle};
use super::{
    boundary, NtStatus, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use crate::verifier::{tag_string, Finding, PoolBlock};

const POOL_FLAG_UNINITIALIZED: u64 = 0x2;
const POOL_FLAG_RAISE_ON_FAILURE: u64 = 0x20;
/// POOL_FLAG_* bits 0–31 this runtime knows (unknown required bits fail, §2).
const POOL_FLAGS_KNOWN: u64 = 0x7FF;
const POOL_ZERO_ALLOCATION: i32 = 1024;
const PAGE_SIZE: usize = 0x1000;

/// One allocation: heap memory 16-aligned (page-aligned from a page up), recorded for the Verifier.
fn allocate(size: usize, tag: u32, zero: bool, site: (usize, i32)) -> *mut c_void {
    if size == 0 {
        return std::ptr::null_mut();
    }
    if ctx::irql() > DISPATCH_LEVEL {
        ctx::with_host(|h| {
            h.finding(Finding::IrqlTooHigh {
                function: "ExAllocatePool",
                irql: ctx::irql(),
            });
        });
        return std::ptr::null_mut();
    }
    let align = if size >= PAGE_SIZE { PAGE_SIZE } else { 16 };
    let mut p: *mut c_void = std::ptr::null_mut();
    // SAFETY: `p` is a valid out-pointer; align is a power of two multiple of sizeof(void*).
    if unsafe { libc::posix_memalign(&mut p, align, size) } != 0 || p.is_null() {
        return std::ptr::null_mut();
    }
    if zero {
        // SAFETY: `p` points to `size` writable bytes just allocated.
        unsafe { std::ptr::write_bytes(p.cast::<u8>(), 0, size) };
    }
    ctx::with_host(|h| {
        h.tracker.lock().pool.insert(
            p as usize,
            PoolBlock {
                tag,
                size,
                file: site.0,
                line: site.1,
                driver: ctx::current_driver(),
            },
        );
    });
    p
}

/// Tracked pool for runtime-internal allocations on the driver's behalf (lookaside entries).
pub(crate) fn pool_alloc(size: usize, tag: u32) -> *mut c_void {
    allocate(size, tag, false, (0, 0))
}

/// Frees what [`pool_alloc`] (or any pool function) returned.
pub(crate) fn pool_free(p: *mut c_void) {
    free(p, None);
}

fn pool2(flags: u64, size: usize, tag: u32, site: (usize, i32)) -> *mut c_void {
    if tag == 0 || flags & 0xFFFF_FFFF & !POOL_FLAGS_KNOWN != 0 {
        if flags & POOL_FLAG_RAISE_ON_FAILURE != 0 {
            fatal(
                "ExAllocatePool2 with POOL_FLAG_RAISE_ON_FAILURE failed (tag 0 or unknown flags)",
            );
        }
        return std::ptr::null_mut();
    }
    let p = allocate(size, tag, flags & POOL_FLAG_UNINITIALIZED == 0, site);
    if p.is_null() && flags & POOL_FLAG_RAISE_ON_FAILURE != 0 {
        fatal("ExAllocatePool2 with POOL_FLAG_RAISE_ON_FAILURE failed");
    }
    p
}

fn with_tag(pool_type: i32, size: usize, tag: u32, site: (usize, i32)) -> *mut c_void {
    note_pool_type(pool_type);
    allocate(size, tag, pool_type & POOL_ZERO_ALLOCATION != 0, site)
}

/// `DrvRtPoolNxOptIn` (ExInitializeDriverRuntime).
const DRV_RT_POOL_NX_OPT_IN: u32 = 0x1;
/// The NX bit of POOL_TYPE (NonPagedPoolNx = 512 = POOL_NX_ALLOCATION).
const POOL_NX_ALLOCATION: i32 = 512;

/// A driver's non-executable-pool state (wdk-runtime.md §2, ExInitializeDriverRuntime).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolTypeCounts {
    /// The driver called `ExInitializeDriverRuntime(DrvRtPoolNxOptIn)` (with `POOL_NX_OPTIN`
    /// its `NonPagedPool` then names NonPagedPoolNx, as in the WDK).
    pub nx_opt_in: bool,
    /// Requests for executable non-paged pool (NonPagedPoolExecute and the other non-paged types
    /// without the NX bit, through ExAllocatePoolWithTag or a lookaside list). They are served
    /// from the non-executable heap all the same: this host has no executable pool.
    pub executable: u64,
}

/// Per-driver pool-type state of a host.
pub(crate) type PoolTypes = std::collections::HashMap<usize, PoolTypeCounts>;

/// A non-paged type without the NX bit (NonPagedPoolExecute, ...MustSucceed, ...CacheAligned,
/// ...Session): the executable ones. Paged types are odd.
fn is_executable(pool_type: i32) -> bool {
    pool_type & 1 == 0 && pool_type & POOL_NX_ALLOCATION == 0
}

/// Counts an executable non-paged request of the calling driver.
pub(crate) fn note_pool_type(pool_type: i32) {
    if is_executable(pool_type) {
        ctx::with_host(|h| {
            h.rt.pool_types
                .lock()
                .entry(ctx::current_driver())
                .or_default()
                .executable += 1;
        });
    }
}

/// `ExInitializeDriverRuntime(RuntimeFlags)`: records the driver's NX opt-in (the header switches
/// the driver's `ExDefaultNonPagedPoolType` under POOL_NX_OPTIN); unknown flag bits are a finding
/// (the WDK defines only DrvRtPoolNxOptIn).
#[no_mangle]
pub(crate) extern "C" fn ExInitializeDriverRuntime(flags: u32) {
    boundary("ExInitializeDriverRuntime", (), || {
        ctx::with_host(|h| {
            if flags & !DRV_RT_POOL_NX_OPT_IN != 0 {
                h.finding(Finding::Assertion {
                    message: format!("ExInitializeDriverRuntime: unknown flags {flags:#x}"),
                });
            }
            if flags & DRV_RT_POOL_NX_OPT_IN != 0 {
                h.rt.pool_types
                    .lock()
                    .entry(ctx::current_driver())
                    .or_default()
                    .nx_opt_in = true;
            }
        });
    });
}

/// Prints why and aborts the process: what a bugcheck is to the emulation. Written to the
/// process's standard error directly, not through `eprintln!`, which a test harness captures per
/// thread and loses when the process aborts (a bugcheck under `cargo test` then said nothing).
pub(crate) fn fatal(why: &str) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "wfp-ffi: driver bugcheck: {why}");
    std::process::abort()
}

#[no_mangle]
pub(crate) extern "C" fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut c_void {
    boundary("ExAllocatePool2", std::ptr::null_mut(), || {
        pool2(flags, size, tag, (0, 0))
    })
}

#[no_mangle]
pub(crate) extern "C" fn ExAllocatePoolWithTag(
    pool_type: i32,
    size: usize,
    tag: u32,
) -> *mut c_void {
    boundary("ExAllocatePoolWithTag", std::ptr::null_mut(), || {
        with_tag(pool_type, size, tag, (0, 0))
    })
}

#[no_mangle]
pub(crate) extern "C" fn WfpRtAllocatePool2At(
    flags: u64,
    size: usize,
    tag: u32,
    file: *const c_char,
    line: i32,
) -> *mut c_void {
    boundary("ExAllocatePool2", std::ptr::null_mut(), || {
        pool2(flags, size, tag, (file as usize, line))
    })
}

#[no_mangle]
pub(crate) extern "C" fn WfpRtAllocatePoolWithTagAt(
    pool_type: i32,
    size: usize,
    tag: u32,
    file: *const c_char,
    line: i32,
) -> *mut c_void {
    boundary("ExAllocatePoolWithTag", std::ptr::null_mut(), || {
        with_tag(pool_type, size, tag, (file as usize, line))
    })
}

fn free(p: *mut c_void, tag: Option<u32>) {
    if p.is_null() {
        return;
    }
    let block = ctx::with_host(|h| {
        let mut t = h.tracker.lock();
        let block = t.pool.remove(&(p as usize));
        match (block, tag) {
            (None, _) => t.findings.push((
                ctx::current_driver(),
                Finding::DoubleFree {
                    what: "ExFreePool",
                    address: p as usize,
                },
            )),
            (Some(b), Some(tag)) if b.tag != tag => t.findings.push((
                ctx::current_driver(),
                Finding::TagMismatch {
                    allocated: tag_string(b.tag),
                    freed: tag_string(tag),
                },
            )),
            _ => {}
        }
        block
    })
    .flatten();
    if let Some(b) = &block {
        // An IRP IoInitializeIrp made in this memory is no longer one (a stale pointer to it
        // then fails the runtime's known-IRP check).
        ctx::with_host(|h| super::irp::forget_initialized(h, p as usize, b.size));
    }
    if block.is_some() {
        // SAFETY: the tracker recorded `p` as a live posix_memalign block; it is removed from the
        // record above, so it is freed once.
        unsafe { libc::free(p) };
    }
}

#[no_mangle]
pub(crate) extern "C" fn ExFreePoolWithTag(p: *mut c_void, tag: u32) {
    boundary("ExFreePoolWithTag", (), || free(p, Some(tag)));
}

#[no_mangle]
pub(crate) extern "C" fn ExFreePool(p: *mut c_void) {
    boundary("ExFreePool", (), || free(p, None));
}

/// `__FILE__:__LINE__` of a recorded block (the driver is still loaded when this runs).
pub(crate) fn site_string(b: &PoolBlock) -> String {
    if b.file == 0 {
        return "?".into();
    }
    // SAFETY: `file` is a `__FILE__` literal of the driver image, which stays mapped until the host
    // has reported its leaks (reports are made before dlclose).
    let file = unsafe { CStr::from_ptr(b.file as *const c_char) };
    format!("{}:{}", file.to_string_lossy(), b.line)
}

// ---- IRQL ----------------------------------------------------------------------------------

#[no_mangle]
pub(crate) extern "C" fn KeGetCurrentIrql() -> u8 {
    ctx::irql()
}

#[no_mangle]
pub(crate) extern "C" fn KfRaiseIrql(new: u8) -> u8 {
    boundary("KfRaiseIrql", 0, || {
        let old = ctx::irql();
        if new < old {
            ctx::with_host(|h| {
                h.finding(Finding::Assertion {
                    message: format!("KeRaiseIrql to {new} from the higher IRQL {old}"),
                });
            });
        }
        ctx::set_irql(new);
        old
    })
}

#[no_mangle]
pub(crate) extern "C" fn KeLowerIrql(new: u8) {
    boundary("KeLowerIrql", (), || {
        let old = ctx::irql();
        if new > old {
            ctx::with_host(|h| {
                h.finding(Finding::Assertion {
                    message: format!("KeLowerIrql to {new} from the lower IRQL {old}"),
                });
            });
        }
        ctx::set_irql(new);
    });
}

// ---- spin locks ----------------------------------------------------------------------------

fn lock_word<'a>(lock: *mut usize) -> &'a AtomicUsize {
    // SAFETY: KSPIN_LOCK is a ULONG_PTR the driver owns and keeps alive while it uses the lock;
    // AtomicUsize has the same size and alignment as usize.
    unsafe { AtomicUsize::from_ptr(lock) }
}

fn acquire(lock: *mut usize) {
    if lock.is_null() {
        fatal("spin lock acquire on NULL");
    }
    let me = ctx::thread_token();
    let word = lock_word(lock);
    if word.load(Ordering::Relaxed) == me {
        ctx::with_host(|h| {
            h.finding(Finding::SpinLockMisuse {
                what: "acquired twice by the same thread (a deadlock on Windows)",
            });
        });
        fatal("recursive spin lock acquire");
    }
    let mut spins = 0u32;
    while word
        .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins = spins.wrapping_add(1);
        if spins % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    ctx::push_lock(lock as usize);
}

fn release(lock: *mut usize) {
    if lock.is_null() {
        fatal("spin lock release on NULL");
    }
    let me = ctx::thread_token();
    let word = lock_word(lock);
    if word.load(Ordering::Relaxed) != me || !ctx::pop_lock(lock as usize) {
        ctx::with_host(|h| {
            h.finding(Finding::SpinLockMisuse {
                what: "released by a thread that does not hold it",
            });
        });
        return;
    }
    word.store(0, Ordering::Release);
}

/// Releases a lock a callback returned holding (the Verifier reported it).
pub(crate) fn force_release(lock: usize) {
    lock_word(lock as *mut usize).store(0, Ordering::Release);
}

#[no_mangle]
pub(crate) extern "C" fn KeAcquireSpinLockRaiseToDpc(lock: *mut usize) -> u8 {
    boundary("KeAcquireSpinLockRaiseToDpc", 0, || {
        let old = ctx::set_irql(DISPATCH_LEVEL.max(ctx::irql()));
        acquire(lock);
        old
    })
}

#[no_mangle]
pub(crate) extern "C" fn KeReleaseSpinLock(lock: *mut usize, new_irql: u8) {
    boundary("KeReleaseSpinLock", (), || {
        release(lock);
        ctx::set_irql(new_irql);
    });
}

#[no_mangle]
pub(crate) extern "C" fn KeAcquireSpinLockAtDpcLevel(lock: *mut usize) {
    boundary("KeAcquireSpinLockAtDpcLevel", (), || {
        if ctx::irql() < DISPATCH_LEVEL {
            ctx::with_host(|h| {
                h.finding(Finding::SpinLockMisuse {
                    what: "KeAcquireSpinLockAtDpcLevel below DISPATCH_LEVEL",
                });
            });
        }
        acquire(lock);
    });
}

#[no_mangle]
pub(crate) extern "C" fn KeReleaseSpinLockFromDpcLevel(lock: *mut usize) {
    boundary("KeReleaseSpinLockFromDpcLevel", (), || release(lock));
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeAcquireInStackQueuedSpinLock(
    lock: *mut usize,
    handle: *mut KLockQueueHandle,
) {
    boundary("KeAcquireInStackQueuedSpinLock", (), || {
        let old = ctx::set_irql(DISPATCH_LEVEL.max(ctx::irql()));
        acquire(lock);
        // SAFETY: the caller passes its own KLOCK_QUEUE_HANDLE (checked non-null).
        if let Some(h) = unsafe { handle.as_mut() } {
            h.lock = lock;
            h.next = std::ptr::null_mut();
            h.old_irql = old;
        }
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeReleaseInStackQueuedSpinLock(handle: *mut KLockQueueHandle) {
    boundary("KeReleaseInStackQueuedSpinLock", (), || {
        // SAFETY: the handle the matching acquire filled (checked non-null).
        let Some(h) = (unsafe { handle.as_mut() }) else {
            fatal("KeReleaseInStackQueuedSpinLock with a NULL handle");
        };
        release(h.lock);
        ctx::set_irql(h.old_irql);
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeAcquireInStackQueuedSpinLockAtDpcLevel(
    lock: *mut usize,
    handle: *mut KLockQueueHandle,
) {
    boundary("KeAcquireInStackQueuedSpinLockAtDpcLevel", (), || {
        acquire(lock);
        // SAFETY: the caller's own KLOCK_QUEUE_HANDLE (checked non-null).
        if let Some(h) = unsafe { handle.as_mut() } {
            h.lock = lock;
            h.old_irql = ctx::irql();
        }
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeReleaseInStackQueuedSpinLockFromDpcLevel(
    handle: *mut KLockQueueHandle,
) {
    boundary("KeReleaseInStackQueuedSpinLockFromDpcLevel", (), || {
        // SAFETY: the handle the matching acquire filled (checked non-null).
        if let Some(h) = unsafe { handle.as_mut() } {
            release(h.lock);
        }
    });
}

// ---- time and processors -------------------------------------------------------------------

#[no_mangle]
pub(crate) unsafe extern "C" fn KeQuerySystemTimePrecise(out: *mut i64) {
    boundary("KeQuerySystemTimePrecise", (), || {
        let t = ctx::with_host(|h| h.system_time_100ns()).unwrap_or(0);
        // SAFETY: the caller's LARGE_INTEGER (checked non-null).
        if let Some(o) = unsafe { out.as_mut() } {
            *o = i64::try_from(t).unwrap_or(i64::MAX);
        }
    });
}

#[no_mangle]
pub(crate) extern "C" fn KeQueryInterruptTime() -> u64 {
    boundary("KeQueryInterruptTime", 0, || {
        ctx::with_host(|h| {
            let now = h.now_ns();
            now.saturating_sub(h.boot_ns.load(Ordering::Relaxed)) / 100
        })
        .unwrap_or(0)
    })
}

/// `KeQueryPerformanceCounter` (wdk-runtime.md, time): the interrupt-time clock (the host's
/// clock, capture time in a replay) in 100-ns ticks; `*PerformanceFrequency` (optional) is
/// 10 MHz.
#[no_mangle]
pub(crate) unsafe extern "C" fn KeQueryPerformanceCounter(frequency: *mut i64) -> i64 {
    boundary("KeQueryPerformanceCounter", 0, || {
        // SAFETY: the caller's optional out-pointer (LARGE_INTEGER, 8 bytes).
        if let Some(f) = unsafe { frequency.as_mut() } {
            *f = 10_000_000;
        }
        i64::try_from(KeQueryInterruptTime()).unwrap_or(i64::MAX)
    })
}

/// `ExUuidCreate`: a random (version 4, RFC 4122 variant) UUID in the GUID layout.
#[no_mangle]
pub(crate) unsafe extern "C" fn ExUuidCreate(uuid: *mut u8) -> NtStatus {
    boundary("ExUuidCreate", STATUS_INVALID_PARAMETER, || {
        if uuid.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        let mut b = [0u8; 16];
        // SAFETY: `b` is 16 writable bytes.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        if n != 16 {
            return STATUS_UNSUCCESSFUL;
        }
        // Data3 (bytes 6..8, little-endian): version 4; Data4[0]: variant 10xxxxxx.
        b[7] = (b[7] & 0x0F) | 0x40;
        b[8] = (b[8] & 0x3F) | 0x80;
        // SAFETY: the caller's UUID (16 bytes, checked non-null).
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), uuid, b.len()) };
        STATUS_SUCCESS
    })
}

/// STATUS_UNSUCCESSFUL.
const STATUS_UNSUCCESSFUL: NtStatus = 0xC000_0001_u32 as NtStatus;

use super::dpc::processors;

#[no_mangle]
pub(crate) extern "C" fn KeGetCurrentProcessorIndex() -> u32 {
    super::dpc::current_processor()
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeQueryActiveProcessorCount(affinity: *mut usize) -> u32 {
    let n = processors();
    // SAFETY: optional out-pointer from the caller.
    if let Some(a) = unsafe { affinity.as_mut() } {
        *a = if n >= usize::BITS {
            usize::MAX
        } else {
            (1usize << n) - 1
        };
    }
    n
}

// ---- debug output, assertions --------------------------------------------------------------

#[no_mangle]
pub(crate) unsafe extern "C" fn WfpRtDebugPrint(
    component: u32,
    level: u32,
    text: *const c_char,
    len: usize,
) {
    boundary("DbgPrint", (), || {
        if text.is_null() {
            return;
        }
        // SAFETY: the header's formatter passes its buffer and the length it wrote.
        let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
        let s = String::from_utf8_lossy(bytes);
        let s = s.trim_end_matches(['\n', '\r']).to_string();
        let driver = ctx::current_driver();
        if ctx::with_host(|h| h.push_log(driver, component, level, s.clone())).is_none() {
            eprintln!("[driver] {s}");
        }
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn WfpRtAssertFailed(
    expr: *const c_char,
    file: *const c_char,
    line: i32,
) -> ! {
    let text = |p: *const c_char| {
        if p.is_null() {
            String::from("?")
        } else {
            // SAFETY: string literals from the driver's assertion macros.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    fatal(&format!(
        "assertion failed: {} at {}:{line}",
        text(expr),
        text(file)
    ))
}

#[no_mangle]
pub(crate) extern "C" fn WfpRtFatalListEntryError(entry: *const c_void) -> ! {
    fatal(&format!("corrupt LIST_ENTRY at {entry:p} (bugcheck 0x139)"))
}

// ---- device objects (WDM) ------------------------------------------------------------------

#[no_mangle]
pub(crate) unsafe extern "C" fn IoCreateDevice(
    driver: *mut DriverObject,
    extension_size: u32,
    name: *const super::types::UnicodeString,
    device_type: u32,
    characteristics: u32,
    _exclusive: u8,
    out: *mut *mut DeviceObject,
) -> NtStatus {
    boundary("IoCreateDevice", STATUS_INSUFFICIENT_RESOURCES, || {
        if driver.is_null() || out.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        ctx::check_irql("IoCreateDevice", 0);
        // wdk-runtime.md §8: a named device lives in the host's object namespace.
        let claimed = ctx::with_host(|h| super::wdm::claim_name(h, name, characteristics));
        let name = match claimed {
            Some(Ok(n)) => n,
            Some(Err(st)) => return st,
            None => return super::STATUS_INVALID_DEVICE_STATE,
        };
        let ext = if extension_size == 0 {
            std::ptr::null_mut()
        } else {
            // SAFETY: calloc has no preconditions; NULL is handled.
            let p = unsafe { libc::calloc(1, extension_size as usize) };
            if p.is_null() {
                return STATUS_INSUFFICIENT_RESOURCES;
            }
            p
        };
        // SAFETY: `driver` is the DRIVER_OBJECT the loader passed to DriverEntry (non-null).
        let next = unsafe { (*driver).device_object };
        let dev = Box::into_raw(Box::new(DeviceObject {
            object_type: 3,
            size: u16::try_from(std::mem::size_of::<DeviceObject>()).unwrap_or(0),
            reference_count: 0,
            driver_object: driver,
            next_device: next,
            attached_device: std::ptr::null_mut(),
            current_irp: std::ptr::null_mut(),
            timer: std::ptr::null_mut(),
            flags: 0x80,
            characteristics,
            vpb: std::ptr::null_mut(),
            device_extension: ext,
            device_type,
            stack_size: 1,
        }));
        ctx::with_host(|h| super::wdm::add_device(h, dev, name));
        // SAFETY: as above; `out` is the caller's out-pointer (non-null).
        unsafe {
            (*driver).device_object = dev;
            *out = dev;
        }
        STATUS_SUCCESS
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn IoDeleteDevice(dev: *mut DeviceObject) {
    boundary("IoDeleteDevice", (), || {
        if dev.is_null() {
            return;
        }
        // SAFETY: `dev` came from IoCreateDevice (Box::into_raw) and is unlinked before it is freed.
        unsafe { delete_device(dev) };
    });
}

/// Unlinks and frees a device object.
///
/// # Safety
/// `dev` must come from [`IoCreateDevice`] and not be freed yet.
pub(crate) unsafe fn delete_device(dev: *mut DeviceObject) {
    super::wdm::remove_device(dev);
    // SAFETY: per the contract, `dev` is live and its driver object outlives it.
    unsafe {
        let driver = (*dev).driver_object;
        if !driver.is_null() {
            let mut link: *mut *mut DeviceObject = &mut (*driver).device_object;
            while !(*link).is_null() {
                if *link == dev {
                    *link = (*dev).next_device;
                    break;
                }
                link = &mut (**link).next_device;
            }
        }
        if !(*dev).device_extension.is_null() {
            libc::free((*dev).device_extension);
        }
        drop(Box::from_raw(dev));
    }
}

// ---- user buffer probes ---------------------------------------------------------------------

/// The checks ProbeForRead / ProbeForWrite make (WDK km/wdm.h): `Alignment` is 1, 2, 4, 8 or 16,
/// and a nonzero `Length` at `Address` is aligned to it and does not wrap around the address
/// space. Windows raises STATUS_DATATYPE_MISALIGNMENT or STATUS_ACCESS_VIOLATION for the caller's
/// `__except` handler; this host has no structured exceptions (wdk-runtime.md §10: the guarded
/// block runs, its handler never does), so the fault is a Verifier finding instead and the call
/// returns. Every address the host hands a driver is mapped, so no user/system range check is
/// made. A zero `Length` is never checked (as on Windows).
fn probe(function: &'static str, address: usize, length: usize, alignment: u32) {
    if length == 0 {
        return;
    }
    let problem = if !matches!(alignment, 1 | 2 | 4 | 8 | 16) {
        Some(format!(
            "{function}: Alignment {alignment} is not 1, 2, 4, 8 or 16"
        ))
    } else if address % alignment as usize != 0 {
        Some(format!(
            "{function}: {address:#x} is not aligned to {alignment} (Windows raises \
             STATUS_DATATYPE_MISALIGNMENT, which no __except handler can catch here)"
        ))
    } else if address.checked_add(length).is_none() {
        Some(format!(
            "{function}: {length} bytes at {address:#x} wrap around the address space (Windows \
             raises STATUS_ACCESS_VIOLATION, which no __except handler can catch here)"
        ))
    } else {
        None
    };
    if let Some(message) = problem {
        ctx::assertion(message);
    }
}

#[no_mangle]
pub(crate) extern "C" fn ProbeForRead(address: *const c_void, length: usize, alignment: u32) {
    boundary("ProbeForRead", (), || {
        ctx::check_irql("ProbeForRead", 1); // APC_LEVEL
        probe("ProbeForRead", address as usize, length, alignment);
    });
}

#[no_mangle]
pub(crate) extern "C" fn ProbeForWrite(address: *mut c_void, length: usize, alignment: u32) {
    boundary("ProbeForWrite", (), || {
        ctx::check_irql("ProbeForWrite", 1); // APC_LEVEL
        probe("ProbeForWrite", address as usize, length, alignment);
    });
}
