//! Dispatcher objects and waits (wdk-runtime.md §3): KEVENT, KeWaitForSingleObject with
//! timeouts (over every waitable object: dispatcher.rs), KeDelayExecutionThread.
//!
//! An event is the driver's own `KEVENT` memory: its `DISPATCHER_HEADER.SignalState` is the futex
//! word waiters sleep on, so a wait costs nothing in the host and works across every thread of the
//! process. A system thread object (see `thread.rs`) starts with the same header and is signaled
//! when the thread ends. Waits at raised IRQL (anything but a poll above APC_LEVEL) are Verifier
//! findings; the wait is still performed.

use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use super::ctx::{self, DISPATCH_LEVEL};
use super::{boundary, NtStatus, STATUS_INVALID_PARAMETER, STATUS_SUCCESS};
use crate::verifier::Finding;

pub(crate) const STATUS_TIMEOUT: NtStatus = 0x102;
const APC_LEVEL: u8 = 1;

/// `DISPATCHER_HEADER.Type` values this runtime waits on.
pub(crate) const NOTIFICATION_EVENT: u8 = 0;
pub(crate) const SYNCHRONIZATION_EVENT: u8 = 1;
pub(crate) const THREAD_OBJECT: u8 = 6;

/// `DISPATCHER_HEADER` (x64, 24 bytes): the first member of every waitable object.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct DispatcherHeader {
    pub(crate) kind: u8,
    pub(crate) signalling: u8,
    pub(crate) size: u8,
    pub(crate) reserved: u8,
    pub(crate) signal_state: AtomicI32,
    pub(crate) wait_list: [usize; 2],
}

impl DispatcherHeader {
    pub(crate) fn new(kind: u8, signaled: bool) -> Self {
        Self {
            kind,
            signalling: 0,
            size: 6,
            reserved: 0,
            signal_state: AtomicI32::new(i32::from(signaled)),
            wait_list: [0; 2],
        }
    }
}

/// How long a wait may block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timeout {
    Forever,
    Until(Instant),
}

/// Decodes a `PLARGE_INTEGER Timeout`: NULL = forever, negative = relative in 100-ns units,
/// positive = absolute system time (100 ns since 1601, on the host's clock), zero = poll.
pub(crate) fn decode_timeout(timeout: *const i64) -> Timeout {
    // SAFETY: the caller's optional LARGE_INTEGER.
    let Some(&t) = (unsafe { timeout.as_ref() }) else {
        return Timeout::Forever;
    };
    let now = Instant::now();
    let hundreds = if t < 0 {
        t.unsigned_abs()
    } else {
        let sys = ctx::with_host(|h| h.system_time_100ns()).unwrap_or(0);
        u64::try_from(t).unwrap_or(0).saturating_sub(sys)
    };
    let d = Duration::from_nanos(hundreds.saturating_mul(100));
    Timeout::Until(
        now.checked_add(d)
            .unwrap_or(now + Duration::from_secs(86_400 * 365)),
    )
}

fn is_poll(timeout: *const i64) -> bool {
    // SAFETY: the caller's optional LARGE_INTEGER.
    unsafe { timeout.as_ref() }.is_some_and(|t| *t == 0)
}

/// Sleeps on `word` while it holds `expected`, at most until `until`. Spurious returns are fine:
/// callers re-check.
pub(crate) fn futex_wait(word: &AtomicI32, expected: i32, until: Option<Instant>) {
    let ts = until.map(|u| {
        let d = u.saturating_duration_since(Instant::now());
        libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
        }
    });
    let tsp = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: FUTEX_WAIT on a live, aligned 32-bit word with an optional relative timeout; the
    // kernel only reads the word and the timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            tsp,
            std::ptr::null::<u32>(),
            0,
        );
    }
}

/// Wakes every thread sleeping on `word`.
pub(crate) fn futex_wake_all(word: &AtomicI32) {
    // SAFETY: FUTEX_WAKE on a live, aligned 32-bit word; no memory is accessed.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
            std::ptr::null::<u32>(),
            std::ptr::null::<u32>(),
            0,
        );
    }
}

fn header<'a>(object: *mut c_void) -> Option<&'a DispatcherHeader> {
    // SAFETY: a dispatcher object (KEVENT, thread object) the driver owns and keeps alive while it
    // uses it; the header is its first member, and SignalState is accessed only atomically.
    unsafe { object.cast::<DispatcherHeader>().as_ref() }
}

pub(crate) fn check_wait_irql(function: &'static str, timeout: *const i64) {
    let irql = ctx::irql();
    if irql > APC_LEVEL && !(irql <= DISPATCH_LEVEL && is_poll(timeout)) {
        ctx::with_host(|h| {
            h.finding(Finding::WaitAtRaisedIrql { function, irql });
        });
    }
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeInitializeEvent(event: *mut c_void, kind: i32, state: u8) {
    boundary("KeInitializeEvent", (), || {
        if event.is_null() {
            return;
        }
        let kind = if kind == 1 {
            SYNCHRONIZATION_EVENT
        } else {
            NOTIFICATION_EVENT
        };
        // SAFETY: the caller's KEVENT storage (24 bytes, pointer-aligned).
        unsafe {
            event
                .cast::<DispatcherHeader>()
                .write(DispatcherHeader::new(kind, state != 0));
        }
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeSetEvent(event: *mut c_void, _increment: i32, _wait: u8) -> i32 {
    boundary("KeSetEvent", 0, || {
        super::ctx::check_irql("KeSetEvent", 2);
        let Some(h) = header(event) else { return 0 };
        let old = h.signal_state.swap(1, Ordering::AcqRel);
        super::dispatcher::signalled(h);
        old
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeResetEvent(event: *mut c_void) -> i32 {
    boundary("KeResetEvent", 0, || {
        super::ctx::check_irql("KeResetEvent", 2);
        header(event).map_or(0, |h| h.signal_state.swap(0, Ordering::AcqRel))
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeClearEvent(event: *mut c_void) {
    boundary("KeClearEvent", (), || {
        super::ctx::check_irql("KeClearEvent", 2);
        if let Some(h) = header(event) {
            h.signal_state.store(0, Ordering::Release);
        }
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeReadStateEvent(event: *mut c_void) -> i32 {
    boundary("KeReadStateEvent", 0, || {
        header(event).map_or(0, |h| h.signal_state.load(Ordering::Acquire))
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeWaitForSingleObject(
    object: *mut c_void,
    _reason: i32,
    _mode: i8,
    _alertable: u8,
    timeout: *const i64,
) -> NtStatus {
    boundary("KeWaitForSingleObject", STATUS_INVALID_PARAMETER, || {
        check_wait_irql("KeWaitForSingleObject", timeout);
        super::dispatcher::wait_single(object, timeout)
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeDelayExecutionThread(
    _mode: i8,
    _alertable: u8,
    interval: *const i64,
) -> NtStatus {
    boundary("KeDelayExecutionThread", STATUS_INVALID_PARAMETER, || {
        if interval.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        check_wait_irql("KeDelayExecutionThread", std::ptr::null());
        if let Timeout::Until(t) = decode_timeout(interval) {
            std::thread::sleep(t.saturating_duration_since(Instant::now()));
        }
        STATUS_SUCCESS
    })
}
