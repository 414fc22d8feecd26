//! Kernel timers (wdk-runtime.md §4 "DPCs", KTIMER): `KeInitializeTimer[Ex]`, `KeSetTimer[Ex]`,
//! `KeCancelTimer`, `KeReadStateTimer`; `KeWaitForSingleObject` waits on a timer (sync.rs).
//!
//! The KTIMER is the driver's memory with the WDK's x64 layout (64 bytes); its dispatcher header
//! is signalled when the timer fires (a synchronization timer's signal is consumed by one wait).
//! A set timer has a host thread that sleeps until the due time, signals the timer and queues its
//! optional KDPC (which then runs at DISPATCH_LEVEL like any DPC), and repeats every period.
//! Cancelling marks the timer's state under the lock the firing thread holds while it fires, so
//! once `KeCancelTimer` returns the timer fires no more. Timers still set after the unload routine
//! are cancelled by the host and reported (Verifier `ObjectsLeft`).

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::boundary;
use super::ctx::{self, DISPATCH_LEVEL};
use super::dpc::{self, Kdpc};
use super::sync::{decode_timeout, futex_wake_all, DispatcherHeader, Timeout};
use crate::host::HostInner;

/// `DISPATCHER_HEADER.Type` of a notification / synchronization timer.
pub(crate) const TIMER_NOTIFICATION: u8 = 8;
pub(crate) const TIMER_SYNCHRONIZATION: u8 = 9;

/// The WDK's x64 `KTIMER` (wdm.h): 64 bytes.
#[repr(C)]
pub(crate) struct Ktimer {
    header: DispatcherHeader,
    due_time: u64,
    list: [usize; 2],
    dpc: *mut Kdpc,
    processor: u32,
    period: u32,
}

const _: () = assert!(std::mem::size_of::<Ktimer>() == 64);

/// One arming of a timer: set until it fires (one-shot) or is cancelled.
#[derive(Debug)]
struct Arming {
    /// `true` while set; cleared by a one-shot firing or a cancel.
    set: Mutex<bool>,
    cv: Condvar,
}

/// The timers set in one host, by KTIMER address: (driver, arming).
#[derive(Debug, Default)]
pub(crate) struct Timers {
    set: Mutex<HashMap<usize, (usize, Arc<Arming>)>>,
}

impl Timers {
    /// Cancels the timer's current arming; whether it was still set.
    fn cancel(&self, timer: usize) -> bool {
        let Some((_, a)) = self.set.lock().remove(&timer) else {
            return false;
        };
        let was = std::mem::replace(&mut *a.set.lock(), false);
        a.cv.notify_all();
        was
    }

    /// Cancels every timer `driver` left set; how many were still set.
    pub(crate) fn cancel_driver(&self, driver: usize) -> usize {
        let timers: Vec<usize> = (self.set.lock().iter())
            .filter(|(_, (d, _))| *d == driver)
            .map(|(t, _)| *t)
            .collect();
        timers.into_iter().filter(|t| self.cancel(*t)).count()
    }
}

/// What the firing thread needs.
struct Firing {
    host: Arc<HostInner>,
    driver: usize,
    timer: usize,
    dpc: usize,
    due: Instant,
    period: Option<Duration>,
    arming: Arc<Arming>,
}

fn header<'a>(timer: usize) -> &'a DispatcherHeader {
    // SAFETY: the driver keeps a set KTIMER alive until it fired or was cancelled (a WDK rule;
    // the host cancels timers left set before the image is unmapped).
    unsafe { &(*(timer as *const Ktimer)).header }
}

/// Queues the timer's DPC (SystemArgument1/2: the system time's low/high parts), then signals
/// the timer: a waiter that wakes finds the DPC already queued (KeFlushQueuedDpcs waits for it).
fn fire(f: &Firing) {
    if f.dpc != 0 {
        let _bound = ctx::bind(&f.host, f.driver, DISPATCH_LEVEL, "timer DPC");
        let now = f.host.system_time_100ns();
        let (lo, hi) = (now & 0xFFFF_FFFF, now >> 32);
        dpc::insert(f.dpc as *mut Kdpc, lo as *mut c_void, hi as *mut c_void);
    }
    let h = header(f.timer);
    h.signal_state.store(1, Ordering::Release);
    futex_wake_all(&h.signal_state);
    f.host.rt.dispatcher.advance();
}

/// The timer thread: waits for each due time unless cancelled; fires under the arming's lock.
fn run(f: Firing) {
    let mut due = f.due;
    loop {
        let mut set = f.arming.set.lock();
        while *set && !f.arming.cv.wait_until(&mut set, due).timed_out() {}
        if !*set {
            return;
        }
        fire(&f);
        match f.period {
            Some(p) => due += p,
            None => {
                *set = false;
                drop(set);
                let mut all = f.host.rt.timers.set.lock();
                if all
                    .get(&f.timer)
                    .is_some_and(|(_, a)| Arc::ptr_eq(a, &f.arming))
                {
                    all.remove(&f.timer);
                }
                return;
            }
        }
    }
}

fn init(timer: *mut Ktimer, kind: u8) {
    // SAFETY: the caller's KTIMER storage (64 bytes, the header's type); KeInitializeTimerEx
    // writes it whole.
    if let Some(t) = unsafe { timer.as_mut() } {
        *t = Ktimer {
            header: DispatcherHeader::new(kind, false),
            due_time: 0,
            list: [0; 2],
            dpc: std::ptr::null_mut(),
            processor: 0,
            period: 0,
        };
    }
}

#[no_mangle]
pub(crate) extern "C" fn KeInitializeTimer(timer: *mut Ktimer) {
    boundary("KeInitializeTimer", (), || init(timer, TIMER_NOTIFICATION));
}

#[no_mangle]
pub(crate) extern "C" fn KeInitializeTimerEx(timer: *mut Ktimer, kind: i32) {
    boundary("KeInitializeTimerEx", (), || {
        init(
            timer,
            if kind == 1 {
                TIMER_SYNCHRONIZATION
            } else {
                TIMER_NOTIFICATION
            },
        );
    });
}

/// KeSetTimerEx: re-arms the timer (cancelling a pending arming); whether it was already set.
fn set(timer: *mut Ktimer, due: i64, period_ms: i32, dpc: *mut Kdpc) -> bool {
    ctx::check_irql("KeSetTimerEx", DISPATCH_LEVEL);
    let Some(host) = ctx::with_host(|h| h.me.upgrade()).flatten() else {
        return false;
    };
    // SAFETY: the caller's initialized KTIMER.
    let Some(t) = (unsafe { timer.as_mut() }) else {
        return false;
    };
    let was = host.rt.timers.cancel(timer as usize);
    t.header.signal_state.store(0, Ordering::Release);
    t.dpc = dpc;
    t.period = u32::try_from(period_ms).unwrap_or(0);
    t.due_time = due as u64;
    let when = match decode_timeout(&due) {
        Timeout::Until(i) => i,
        Timeout::Forever => Instant::now(),
    };
    let arming = Arc::new(Arming {
        set: Mutex::new(true),
        cv: Condvar::new(),
    });
    let driver = ctx::current_driver();
    host.rt
        .timers
        .set
        .lock()
        .insert(timer as usize, (driver, arming.clone()));
    let f = Firing {
        host: host.clone(),
        driver,
        timer: timer as usize,
        dpc: dpc as usize,
        due: when,
        period: (period_ms > 0).then(|| Duration::from_millis(u64::from(period_ms.unsigned_abs()))),
        arming,
    };
    let spawned = std::thread::Builder::new()
        .name("wfp-timer".into())
        .spawn(move || run(f));
    if spawned.is_err() {
        host.rt.timers.cancel(timer as usize);
    }
    was
}

#[no_mangle]
pub(crate) extern "C" fn KeSetTimer(timer: *mut Ktimer, due: i64, dpc: *mut Kdpc) -> u8 {
    boundary("KeSetTimer", 0, || u8::from(set(timer, due, 0, dpc)))
}

#[no_mangle]
pub(crate) extern "C" fn KeSetTimerEx(
    timer: *mut Ktimer,
    due: i64,
    period: i32,
    dpc: *mut Kdpc,
) -> u8 {
    boundary("KeSetTimerEx", 0, || u8::from(set(timer, due, period, dpc)))
}

#[no_mangle]
pub(crate) extern "C" fn KeCancelTimer(timer: *mut Ktimer) -> u8 {
    boundary("KeCancelTimer", 0, || {
        ctx::check_irql("KeCancelTimer", DISPATCH_LEVEL);
        ctx::with_host(|h| h.rt.timers.cancel(timer as usize)).map_or(0, u8::from)
    })
}

#[no_mangle]
pub(crate) extern "C" fn KeReadStateTimer(timer: *mut Ktimer) -> u8 {
    boundary("KeReadStateTimer", 0, || {
        // SAFETY: the caller's initialized KTIMER.
        unsafe { timer.as_ref() }.map_or(0, |t| {
            u8::from(t.header.signal_state.load(Ordering::Acquire) != 0)
        })
    })
}
