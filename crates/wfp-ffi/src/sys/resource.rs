//! Fast mutexes, executive resources and critical regions (wdk-runtime.md §3; WDK km/wdm.h
//! FAST_MUTEX, ERESOURCE, KeEnterCriticalRegion).
//!
//! A FAST_MUTEX is the driver's memory (x64 layout, 56 bytes): `Count` is the futex word (1 free,
//! 0 owned), `Owner` the owner's thread token, `OldIrql` the IRQL ExAcquireFastMutex raised from
//! (to APC_LEVEL). An ERESOURCE (104 bytes) is opaque: its state is the host's, by address, from
//! ExInitializeResourceLite to ExDeleteResourceLite; shared owners are counted per thread, the
//! exclusive owner may re-acquire (shared or exclusive), and an exclusive waiter holds back new
//! shared owners as ERESOURCE does.
//!
//! Verifier findings: acquiring above APC_LEVEL; acquiring a fast mutex the thread owns (a
//! deadlock on Windows: the call returns without waiting) or an ERESOURCE exclusively while owning
//! it shared (the same deadlock: FALSE); ExAcquireResource* at PASSIVE_LEVEL outside a critical
//! region; releasing what the thread does not own; KeLeaveCriticalRegion without an enter;
//! deleting an ERESOURCE still owned or unknown; ERESOURCEs not deleted at unload (`ObjectsLeft`).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::ctx::{self, assertion};
use super::sync::{futex_wait, futex_wake_all};
use super::{boundary, NtStatus, STATUS_INVALID_PARAMETER, STATUS_SUCCESS};
use crate::verifier::Finding;

const APC_LEVEL: u8 = 1;

/// The WDK's x64 `FAST_MUTEX`.
#[repr(C)]
pub(crate) struct FastMutex {
    count: AtomicI32,
    owner: AtomicUsize,
    contention: AtomicU32,
    event: [usize; 3],
    old_irql: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<FastMutex>() == 56);

thread_local! {
    /// KeEnterCriticalRegion depth of this thread.
    static CRITICAL: Cell<u32> = const { Cell::new(0) };
}

#[no_mangle]
pub(crate) extern "C" fn KeEnterCriticalRegion() {
    boundary("KeEnterCriticalRegion", (), || {
        ctx::check_irql("KeEnterCriticalRegion", APC_LEVEL);
        CRITICAL.with(|c| c.set(c.get().saturating_add(1)));
    });
}

#[no_mangle]
pub(crate) extern "C" fn KeLeaveCriticalRegion() {
    boundary("KeLeaveCriticalRegion", (), || {
        ctx::check_irql("KeLeaveCriticalRegion", APC_LEVEL);
        if CRITICAL.with(|c| c.replace(c.get().saturating_sub(1))) == 0 {
            assertion("KeLeaveCriticalRegion without KeEnterCriticalRegion");
        }
    });
}

fn fast<'a>(m: *mut FastMutex) -> Option<&'a FastMutex> {
    // SAFETY: the driver's FAST_MUTEX (ExInitializeFastMutex wrote it), accessed atomically.
    unsafe { m.as_ref() }
}

/// Takes a fast mutex (waiting when `wait`); whether it was taken.
fn take_fast(m: &FastMutex, wait: bool, function: &'static str) -> bool {
    let me = ctx::thread_token();
    if m.owner.load(Ordering::Acquire) == me {
        assertion(format!(
            "{function} of a FAST_MUTEX this thread owns (deadlock on Windows)"
        ));
        return false;
    }
    loop {
        if m.count
            .compare_exchange(1, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            m.owner.store(me, Ordering::Release);
            return true;
        }
        if !wait {
            return false;
        }
        m.contention.fetch_add(1, Ordering::Relaxed);
        futex_wait(&m.count, 0, None);
    }
}

fn give_fast(m: &FastMutex, function: &'static str) -> bool {
    if m.owner.load(Ordering::Acquire) != ctx::thread_token() {
        assertion(format!(
            "{function} of a FAST_MUTEX this thread does not own"
        ));
        return false;
    }
    m.owner.store(0, Ordering::Release);
    m.count.store(1, Ordering::Release);
    futex_wake_all(&m.count);
    true
}

/// ExAcquireFastMutex / ExTryToAcquireFastMutex: ≤ APC_LEVEL, raises to APC_LEVEL.
fn acquire_raising(m: *mut FastMutex, wait: bool, function: &'static str) -> bool {
    ctx::check_irql(function, APC_LEVEL);
    let Some(m) = fast(m) else { return false };
    if !take_fast(m, wait, function) {
        return false;
    }
    let old = ctx::set_irql(ctx::irql().max(APC_LEVEL));
    m.old_irql.store(u32::from(old), Ordering::Relaxed);
    true
}

#[no_mangle]
pub(crate) unsafe extern "C" fn ExAcquireFastMutex(m: *mut FastMutex) {
    boundary("ExAcquireFastMutex", (), || {
        acquire_raising(m, true, "ExAcquireFastMutex");
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn ExTryToAcquireFastMutex(m: *mut FastMutex) -> u8 {
    boundary("ExTryToAcquireFastMutex", 0, || {
        u8::from(acquire_raising(m, false, "ExTryToAcquireFastMutex"))
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn ExReleaseFastMutex(m: *mut FastMutex) {
    boundary("ExReleaseFastMutex", (), || {
        let Some(m) = fast(m) else { return };
        let old = m.old_irql.load(Ordering::Relaxed) as u8;
        if give_fast(m, "ExReleaseFastMutex") {
            ctx::set_irql(old);
        }
    });
}

/// The Unsafe forms: the caller is at APC_LEVEL or in a critical region; no IRQL change.
#[no_mangle]
pub(crate) unsafe extern "C" fn ExAcquireFastMutexUnsafe(m: *mut FastMutex) {
    boundary("ExAcquireFastMutexUnsafe", (), || {
        ctx::check_irql("ExAcquireFastMutexUnsafe", APC_LEVEL);
        check_critical("ExAcquireFastMutexUnsafe");
        if let Some(m) = fast(m) {
            take_fast(m, true, "ExAcquireFastMutexUnsafe");
        }
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn ExReleaseFastMutexUnsafe(m: *mut FastMutex) {
    boundary("ExReleaseFastMutexUnsafe", (), || {
        if let Some(m) = fast(m) {
            give_fast(m, "ExReleaseFastMutexUnsafe");
        }
    });
}

/// Normal kernel APCs must be disabled (critical region or APC_LEVEL) around resource ownership.
fn check_critical(function: &'static str) {
    if ctx::irql() < APC_LEVEL && CRITICAL.with(Cell::get) == 0 {
        assertion(format!(
            "{function} with normal kernel APCs enabled (call KeEnterCriticalRegion first)"
        ));
    }
}

/// One ERESOURCE's owners.
#[derive(Debug, Default)]
struct Owners {
    /// Exclusive owner (thread token) and its depth.
    exclusive: Option<(usize, u32)>,
    /// Shared owners and their depths.
    shared: HashMap<usize, u32>,
    /// Threads waiting for exclusive ownership.
    exclusive_waiters: usize,
}

#[derive(Debug, Default)]
struct Resource {
    driver: usize,
    owners: Mutex<Owners>,
    cv: Condvar,
}

/// The ERESOURCEs of one host, by address.
#[derive(Debug, Default)]
pub(crate) struct Resources(Mutex<HashMap<usize, Arc<Resource>>>);

impl Resources {
    /// Forgets the resources `driver` never deleted; how many.
    pub(crate) fn remove_driver(&self, driver: usize) -> usize {
        let mut all = self.0.lock();
        let before = all.len();
        all.retain(|_, r| r.driver != driver);
        before - all.len()
    }
}

fn resource(r: *mut std::ffi::c_void, function: &'static str) -> Option<Arc<Resource>> {
    let found = ctx::with_host(|h| h.rt.resources.0.lock().get(&(r as usize)).cloned()).flatten();
    if found.is_none() {
        ctx::with_host(|h| h.finding(Finding::BadHandle { function }));
    }
    found
}

#[no_mangle]
pub(crate) extern "C" fn ExInitializeResourceLite(r: *mut std::ffi::c_void) -> NtStatus {
    boundary("ExInitializeResourceLite", STATUS_INVALID_PARAMETER, || {
        if r.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        let driver = ctx::current_driver();
        let res = Arc::new(Resource {
            driver,
            ..Resource::default()
        });
        let old = ctx::with_host(|h| h.rt.resources.0.lock().insert(r as usize, res)).flatten();
        if old.is_some() {
            assertion("ExInitializeResourceLite of an ERESOURCE already initialised");
        }
        STATUS_SUCCESS
    })
}

#[no_mangle]
pub(crate) extern "C" fn ExDeleteResourceLite(r: *mut std::ffi::c_void) -> NtStatus {
    boundary("ExDeleteResourceLite", STATUS_INVALID_PARAMETER, || {
        let Some(res) = resource(r, "ExDeleteResourceLite") else {
            return STATUS_INVALID_PARAMETER;
        };
        let o = res.owners.lock();
        if o.exclusive.is_some() || !o.shared.is_empty() {
            assertion("ExDeleteResourceLite of an ERESOURCE still owned");
        }
        drop(o);
        ctx::with_host(|h| h.rt.resources.0.lock().remove(&(r as usize)));
        STATUS_SUCCESS
    })
}

/// Acquires `res` shared or exclusively for this thread; whether it was acquired.
fn acquire(res: &Resource, exclusive: bool, wait: bool) -> bool {
    let me = ctx::thread_token();
    let mut o = res.owners.lock();
    if let Some((owner, depth)) = o.exclusive.as_mut() {
        if *owner == me {
            *depth += 1;
            return true;
        }
    }
    if exclusive && o.shared.contains_key(&me) {
        assertion(
            "ExAcquireResourceExclusiveLite by a thread that owns it shared (deadlock on Windows)",
        );
        return false;
    }
    if !exclusive {
        if let Some(d) = o.shared.get_mut(&me) {
            *d += 1;
            return true;
        }
    }
    if !free_after_wait(&o, exclusive) {
        if !wait {
            return false;
        }
        o.exclusive_waiters += usize::from(exclusive);
        while !free_after_wait(&o, exclusive) {
            res.cv.wait(&mut o);
        }
        o.exclusive_waiters -= usize::from(exclusive);
    }
    if exclusive {
        o.exclusive = Some((me, 1));
    } else {
        o.shared.insert(me, 1);
    }
    true
}

/// Whether the resource can be granted: exclusive needs no owner at all; shared needs no
/// exclusive owner and no exclusive waiter.
fn free_after_wait(o: &Owners, exclusive: bool) -> bool {
    o.exclusive.is_none()
        && if exclusive {
            o.shared.is_empty()
        } else {
            o.exclusive_waiters == 0
        }
}

fn acquire_entry(
    r: *mut std::ffi::c_void,
    exclusive: bool,
    wait: u8,
    function: &'static str,
) -> u8 {
    ctx::check_irql(function, APC_LEVEL);
    check_critical(function);
    resource(r, function).map_or(0, |res| u8::from(acquire(&res, exclusive, wait != 0)))
}

#[no_mangle]
pub(crate) extern "C" fn ExAcquireResourceSharedLite(r: *mut std::ffi::c_void, wait: u8) -> u8 {
    boundary("ExAcquireResourceSharedLite", 0, || {
        acquire_entry(r, false, wait, "ExAcquireResourceSharedLite")
    })
}

#[no_mangle]
pub(crate) extern "C" fn ExAcquireResourceExclusiveLite(r: *mut std::ffi::c_void, wait: u8) -> u8 {
    boundary("ExAcquireResourceExclusiveLite", 0, || {
        acquire_entry(r, true, wait, "ExAcquireResourceExclusiveLite")
    })
}

#[no_mangle]
pub(crate) extern "C" fn ExReleaseResourceLite(r: *mut std::ffi::c_void) {
    boundary("ExReleaseResourceLite", (), || {
        ctx::check_irql("ExReleaseResourceLite", ctx::DISPATCH_LEVEL);
        let Some(res) = resource(r, "ExReleaseResourceLite") else {
            return;
        };
        let me = ctx::thread_token();
        let mut o = res.owners.lock();
        let o = &mut *o;
        if let Some((_, depth)) = o.exclusive.as_mut().filter(|(owner, _)| *owner == me) {
            *depth -= 1;
            if *depth == 0 {
                o.exclusive = None;
            }
        } else if let Some(depth) = o.shared.get_mut(&me) {
            *depth -= 1;
            if *depth == 0 {
                o.shared.remove(&me);
            }
        } else {
            assertion("ExReleaseResourceLite of an ERESOURCE this thread does not own");
            return;
        }
        res.cv.notify_all();
    });
}

#[no_mangle]
pub(crate) extern "C" fn ExIsResourceAcquiredExclusiveLite(r: *mut std::ffi::c_void) -> u8 {
    boundary("ExIsResourceAcquiredExclusiveLite", 0, || {
        let me = ctx::thread_token();
        resource(r, "ExIsResourceAcquiredExclusiveLite").map_or(0, |res| {
            u8::from(res.owners.lock().exclusive.is_some_and(|(o, _)| o == me))
        })
    })
}

/// How many times this thread owns the resource (shared or exclusively); 0 when it does not.
#[no_mangle]
pub(crate) extern "C" fn ExIsResourceAcquiredSharedLite(r: *mut std::ffi::c_void) -> u32 {
    boundary("ExIsResourceAcquiredSharedLite", 0, || {
        let me = ctx::thread_token();
        resource(r, "ExIsResourceAcquiredSharedLite").map_or(0, |res| {
            let o = res.owners.lock();
            match o.exclusive {
                Some((owner, depth)) if owner == me => depth,
                _ => o.shared.get(&me).copied().unwrap_or(0),
            }
        })
    })
}
