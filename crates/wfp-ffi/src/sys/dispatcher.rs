//! Mutexes, semaphores and multi-object waits (wdk-runtime.md §3; WDK km/wdm.h KMUTEX,
//! KSEMAPHORE, KeWaitForMultipleObjects).
//!
//! Like events, a KMUTEX / KSEMAPHORE is the driver's own memory with the WDK's x64 layout; its
//! `DISPATCHER_HEADER.SignalState` is the futex word. A mutex's SignalState is 1 when free and
//! `1 - depth` while owned (recursive acquisitions by the owner thread), `OwnerThread` the
//! owner's thread token. A semaphore's SignalState is its count.
//!
//! Waits on several objects sleep on the host's dispatcher generation ([`Generation`]), which
//! every signalling operation advances; a wait whose signaller had no host bound still wakes
//! within [`MULTI_WAIT_POLL`]. WaitAll takes the objects one by one once all look signalled and
//! gives back what it took when one was taken meanwhile, then waits again.
//!
//! Verifier findings: KeReleaseMutex by a thread that does not own the mutex (Windows raises
//! STATUS_MUTANT_NOT_OWNED), KeReleaseSemaphore beyond the limit (STATUS_SEMAPHORE_LIMIT_EXCEEDED),
//! more objects than THREAD_WAIT_OBJECTS without a KWAIT_BLOCK array or more than
//! MAXIMUM_WAIT_OBJECTS (bugchecks on Windows), a system thread ending while it owns a mutex (the
//! mutex is abandoned: the next wait that takes it returns STATUS_ABANDONED_WAIT_0 + index).

use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::ctx::{self, assertion};
use super::sync::{self, futex_wait, futex_wake_all, DispatcherHeader, Timeout, STATUS_TIMEOUT};
use super::timer::{TIMER_NOTIFICATION, TIMER_SYNCHRONIZATION};
use super::{boundary, NtStatus, STATUS_INVALID_PARAMETER};
use crate::host::HostInner;
use crate::verifier::Finding;

/// `DISPATCHER_HEADER.Type` of a mutex (MutantObject) and a semaphore (SemaphoreObject).
pub(crate) const MUTANT_OBJECT: u8 = 2;
pub(crate) const SEMAPHORE_OBJECT: u8 = 5;

const STATUS_ABANDONED_WAIT_0: NtStatus = 0x80;
const THREAD_WAIT_OBJECTS: u32 = 3;
const MAXIMUM_WAIT_OBJECTS: u32 = 64;
const WAIT_ALL: i32 = 0;

/// The longest a multi-object wait sleeps before it looks at its objects again.
const MULTI_WAIT_POLL: Duration = Duration::from_millis(20);

/// The WDK's x64 `KMUTEX` (KMUTANT): 56 bytes.
#[repr(C)]
pub(crate) struct Kmutex {
    header: DispatcherHeader,
    mutant_list: [usize; 2],
    owner: AtomicUsize,
    abandoned: AtomicU8,
    apc_disable: u8,
}

const _: () = assert!(std::mem::size_of::<Kmutex>() == 56);

/// The WDK's x64 `KSEMAPHORE`: 32 bytes.
#[repr(C)]
pub(crate) struct Ksemaphore {
    header: DispatcherHeader,
    limit: i32,
}

const _: () = assert!(std::mem::size_of::<Ksemaphore>() == 32);

/// The host's dispatcher generation: advanced by every signal, which wakes the multi-object
/// waiters sleeping on it (the wake is skipped when none sleeps: a waiter counts itself in
/// `sleepers` before it sleeps on the value it read before looking at its objects, so an
/// advance it did not see makes its sleep return at once).
#[derive(Debug, Default)]
pub(crate) struct Generation {
    word: AtomicI32,
    sleepers: AtomicUsize,
}

impl Generation {
    pub(crate) fn advance(&self) {
        self.word.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            futex_wake_all(&self.word);
        }
    }

    /// Sleeps while the generation is still `seen` (at most until `until`).
    fn sleep(&self, seen: i32, until: Option<Instant>) {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        futex_wait(&self.word, seen, until);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

thread_local! {
    /// The mutexes this thread owns (abandoned if it is a system thread that ends).
    static OWNED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Wakes the object's waiters and the host's multi-object waiters.
pub(crate) fn signalled(h: &DispatcherHeader) {
    futex_wake_all(&h.signal_state);
    ctx::with_host(|host| host.rt.dispatcher.advance());
}

/// The KMUTEXes `driver` still owns at its unload (forgotten: the driver's storage is going
/// away with it). WDK Driver Verifier reports a mutex held past unload.
pub(crate) fn take_held(host: &HostInner, driver: usize) -> usize {
    let mut held = host.rt.held_mutexes.lock();
    let before = held.len();
    held.retain(|_, d| *d != driver);
    before - held.len()
}

fn mutex_of(h: &DispatcherHeader) -> &Kmutex {
    // SAFETY: `h` is the header of an object whose Type is MUTANT_OBJECT, i.e. a KMUTEX the
    // driver initialised with KeInitializeMutex (the header is its first member).
    unsafe { &*std::ptr::from_ref(h).cast::<Kmutex>() }
}

/// How one object was taken by a wait.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Taken {
    No,
    Yes,
    Abandoned,
}

/// Takes the object if it is signalled (consuming what a satisfied wait consumes).
fn try_take(h: &DispatcherHeader, me: usize) -> Taken {
    let s = &h.signal_state;
    let taken = match h.kind {
        sync::SYNCHRONIZATION_EVENT | TIMER_SYNCHRONIZATION => s
            .compare_exchange(1, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok(),
        SEMAPHORE_OBJECT => s
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c > 0).then_some(c - 1)
            })
            .is_ok(),
        MUTANT_OBJECT => return take_mutex(mutex_of(h), me),
        _ => s.load(Ordering::Acquire) != 0,
    };
    if taken {
        Taken::Yes
    } else {
        Taken::No
    }
}

fn take_mutex(m: &Kmutex, me: usize) -> Taken {
    let s = &m.header.signal_state;
    if m.owner.load(Ordering::Acquire) == me && s.load(Ordering::Acquire) <= 0 {
        s.fetch_sub(1, Ordering::AcqRel);
        return Taken::Yes;
    }
    if s.compare_exchange(1, 0, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Taken::No;
    }
    m.owner.store(me, Ordering::Release);
    let at = std::ptr::from_ref(m) as usize;
    OWNED.with(|o| o.borrow_mut().push(at));
    ctx::with_host(|h| h.rt.held_mutexes.lock().insert(at, ctx::current_driver()));
    if m.abandoned.swap(0, Ordering::AcqRel) != 0 {
        Taken::Abandoned
    } else {
        Taken::Yes
    }
}

/// Whether a wait could take the object now (WaitAll looks before it takes).
fn ready(h: &DispatcherHeader, me: usize) -> bool {
    let s = h.signal_state.load(Ordering::Acquire);
    match h.kind {
        MUTANT_OBJECT => s == 1 || mutex_of(h).owner.load(Ordering::Acquire) == me,
        _ => s > 0,
    }
}

/// Gives back what [`try_take`] took.
fn give_back(h: &DispatcherHeader) {
    match h.kind {
        sync::SYNCHRONIZATION_EVENT | TIMER_SYNCHRONIZATION => {
            h.signal_state.store(1, Ordering::Release);
        }
        SEMAPHORE_OBJECT => {
            h.signal_state.fetch_add(1, Ordering::AcqRel);
        }
        MUTANT_OBJECT => {
            release_mutex(mutex_of(h));
        }
        _ => return,
    }
    signalled(h);
}

/// Releases one level of a mutex this thread owns; the previous SignalState.
fn release_mutex(m: &Kmutex) -> i32 {
    let s = &m.header.signal_state;
    let prev = s.load(Ordering::Acquire);
    if prev == 0 {
        m.owner.store(0, Ordering::Release);
        let me = std::ptr::from_ref(m) as usize;
        OWNED.with(|o| o.borrow_mut().retain(|x| *x != me));
        ctx::with_host(|h| h.rt.held_mutexes.lock().remove(&me));
        s.store(1, Ordering::Release);
        signalled(&m.header);
    } else {
        s.fetch_add(1, Ordering::AcqRel);
    }
    prev
}

/// Abandons the mutexes the ending system thread still owns (each a finding).
pub(crate) fn abandon_owned() {
    let owned = OWNED.with(|o| std::mem::take(&mut *o.borrow_mut()));
    for m in owned {
        ctx::with_host(|h| h.rt.held_mutexes.lock().remove(&m));
        // SAFETY: a KMUTEX this thread took and did not release; the driver keeps it alive.
        let m = unsafe { &*(m as *const Kmutex) };
        m.abandoned.store(1, Ordering::Release);
        m.owner.store(0, Ordering::Release);
        m.header.signal_state.store(1, Ordering::Release);
        signalled(&m.header);
        ctx::with_host(|h| {
            h.finding(Finding::Assertion {
                message: "a system thread ended owning a KMUTEX (abandoned)".into(),
            });
        });
    }
}

fn header<'a>(object: *const c_void) -> Option<&'a DispatcherHeader> {
    // SAFETY: a dispatcher object the driver owns and keeps alive while it uses it; the header is
    // its first member, and SignalState is accessed only atomically.
    unsafe { object.cast::<DispatcherHeader>().as_ref() }
}

fn waitable(h: &DispatcherHeader) -> bool {
    [
        sync::NOTIFICATION_EVENT,
        sync::SYNCHRONIZATION_EVENT,
        MUTANT_OBJECT,
        SEMAPHORE_OBJECT,
        sync::THREAD_OBJECT,
        TIMER_NOTIFICATION,
        TIMER_SYNCHRONIZATION,
    ]
    .contains(&h.kind)
}

/// One attempt of WaitAny: the first object taken, as a wait status.
fn attempt_any(objects: &[&DispatcherHeader], me: usize) -> Option<NtStatus> {
    objects
        .iter()
        .enumerate()
        .find_map(|(i, h)| match try_take(h, me) {
            Taken::No => None,
            Taken::Yes => Some(i as NtStatus),
            Taken::Abandoned => Some(STATUS_ABANDONED_WAIT_0 + i as NtStatus),
        })
}

/// One attempt of WaitAll: every object taken, or none.
fn attempt_all(objects: &[&DispatcherHeader], me: usize) -> Option<NtStatus> {
    if !objects.iter().all(|h| ready(h, me)) {
        return None;
    }
    let mut abandoned = None;
    for (i, h) in objects.iter().enumerate() {
        match try_take(h, me) {
            Taken::Yes => {}
            Taken::Abandoned => {
                abandoned.get_or_insert(i);
            }
            Taken::No => {
                objects[..i].iter().for_each(|h| give_back(h));
                return None;
            }
        }
    }
    Some(abandoned.map_or(0, |i| STATUS_ABANDONED_WAIT_0 + i as NtStatus))
}

/// Waits until `attempt` succeeds or the timeout passes.
pub(crate) fn wait_objects(objects: &[&DispatcherHeader], all: bool, timeout: Timeout) -> NtStatus {
    let me = ctx::thread_token();
    let until = match timeout {
        Timeout::Forever => None,
        Timeout::Until(t) => Some(t),
    };
    // The host outlives this call: it is bound to the thread until the driver's callback returns.
    let gen = ctx::with_host(|h| std::ptr::from_ref(&h.rt.dispatcher));
    // SAFETY: the bound host's generation (see above).
    let gen = gen.map(|g| unsafe { &*g }).filter(|_| objects.len() > 1);
    loop {
        let word = gen.map_or(&objects[0].signal_state, |g| &g.word);
        let seen = word.load(Ordering::SeqCst);
        let got = if all {
            attempt_all(objects, me)
        } else {
            attempt_any(objects, me)
        };
        if let Some(status) = got {
            return status;
        }
        let now = Instant::now();
        if until.is_some_and(|u| now >= u) {
            return STATUS_TIMEOUT;
        }
        let sleep = if objects.len() == 1 {
            until
        } else {
            Some(until.map_or(now + MULTI_WAIT_POLL, |u| u.min(now + MULTI_WAIT_POLL)))
        };
        match gen {
            Some(g) => g.sleep(seen, sleep),
            None => futex_wait(word, seen, sleep),
        }
    }
}

/// KeWaitForSingleObject's body (sync.rs): any waitable object.
pub(crate) fn wait_single(object: *mut c_void, timeout: *const i64) -> NtStatus {
    let Some(h) = header(object).filter(|h| waitable(h)) else {
        bad("KeWaitForSingleObject (not a waitable object)");
        return STATUS_INVALID_PARAMETER;
    };
    wait_objects(&[h], false, sync::decode_timeout(timeout))
}

fn bad(function: &'static str) {
    ctx::with_host(|h| h.finding(Finding::BadHandle { function }));
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeWaitForMultipleObjects(
    count: u32,
    objects: *const *mut c_void,
    wait_type: i32,
    _reason: i32,
    _mode: i8,
    _alertable: u8,
    timeout: *const i64,
    wait_blocks: *mut c_void,
) -> NtStatus {
    boundary("KeWaitForMultipleObjects", STATUS_INVALID_PARAMETER, || {
        sync::check_wait_irql("KeWaitForMultipleObjects", timeout);
        if count > MAXIMUM_WAIT_OBJECTS || objects.is_null() || count == 0 {
            assertion("KeWaitForMultipleObjects: Count is 0 or above MAXIMUM_WAIT_OBJECTS (64)");
            return STATUS_INVALID_PARAMETER;
        }
        if count > THREAD_WAIT_OBJECTS && wait_blocks.is_null() {
            assertion(
                "KeWaitForMultipleObjects: more than THREAD_WAIT_OBJECTS (3) objects and no WaitBlockArray",
            );
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: the caller's array of `count` object pointers.
        let list = unsafe { std::slice::from_raw_parts(objects, count as usize) };
        let Some(headers) = list
            .iter()
            .map(|o| header(*o).filter(|h| waitable(h)))
            .collect::<Option<Vec<_>>>()
        else {
            bad("KeWaitForMultipleObjects (not a waitable object)");
            return STATUS_INVALID_PARAMETER;
        };
        let all = wait_type == WAIT_ALL;
        wait_objects(&headers, all, sync::decode_timeout(timeout))
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeInitializeMutex(mutex: *mut Kmutex, _level: u32) {
    boundary("KeInitializeMutex", (), || {
        if mutex.is_null() {
            return;
        }
        // SAFETY: the caller's KMUTEX storage (56 bytes), written whole.
        unsafe {
            mutex.write(Kmutex {
                header: DispatcherHeader::new(MUTANT_OBJECT, true),
                mutant_list: [0; 2],
                owner: AtomicUsize::new(0),
                abandoned: AtomicU8::new(0),
                apc_disable: 1,
            });
        }
    });
}

fn mutex<'a>(m: *mut Kmutex, function: &'static str) -> Option<&'a Kmutex> {
    // SAFETY: the driver's KMUTEX, accessed atomically.
    let m = unsafe { m.as_ref() }?;
    if m.header.kind != MUTANT_OBJECT {
        bad(function);
        return None;
    }
    Some(m)
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeReleaseMutex(m: *mut Kmutex, _wait: u8) -> i32 {
    boundary("KeReleaseMutex", 0, || {
        ctx::check_irql("KeReleaseMutex", ctx::DISPATCH_LEVEL);
        let Some(m) = mutex(m, "KeReleaseMutex") else {
            return 0;
        };
        let owned = m.owner.load(Ordering::Acquire) == ctx::thread_token()
            && m.header.signal_state.load(Ordering::Acquire) <= 0;
        if !owned {
            assertion(
                "KeReleaseMutex of a KMUTEX this thread does not own (STATUS_MUTANT_NOT_OWNED)",
            );
            return m.header.signal_state.load(Ordering::Acquire);
        }
        release_mutex(m)
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeReadStateMutex(m: *mut Kmutex) -> i32 {
    boundary("KeReadStateMutex", 0, || {
        mutex(m, "KeReadStateMutex").map_or(0, |m| m.header.signal_state.load(Ordering::Acquire))
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeInitializeSemaphore(s: *mut Ksemaphore, count: i32, limit: i32) {
    boundary("KeInitializeSemaphore", (), || {
        if s.is_null() {
            return;
        }
        if count < 0 || limit <= 0 || count > limit {
            assertion("KeInitializeSemaphore: Count must be 0..=Limit and Limit positive");
        }
        let mut header = DispatcherHeader::new(SEMAPHORE_OBJECT, false);
        header.signal_state = AtomicI32::new(count.max(0));
        // SAFETY: the caller's KSEMAPHORE storage (32 bytes), written whole.
        unsafe { s.write(Ksemaphore { header, limit }) };
    });
}

fn semaphore<'a>(s: *mut Ksemaphore, function: &'static str) -> Option<&'a Ksemaphore> {
    // SAFETY: the driver's KSEMAPHORE, its count accessed atomically.
    let s = unsafe { s.as_ref() }?;
    if s.header.kind != SEMAPHORE_OBJECT {
        bad(function);
        return None;
    }
    Some(s)
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeReleaseSemaphore(
    s: *mut Ksemaphore,
    _increment: i32,
    adjustment: i32,
    _wait: u8,
) -> i32 {
    boundary("KeReleaseSemaphore", 0, || {
        ctx::check_irql("KeReleaseSemaphore", ctx::DISPATCH_LEVEL);
        let Some(sem) = semaphore(s, "KeReleaseSemaphore") else {
            return 0;
        };
        let limit = sem.limit;
        let r = sem
            .header
            .signal_state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                c.checked_add(adjustment)
                    .filter(|n| adjustment > 0 && *n <= limit)
            });
        match r {
            Ok(prev) => {
                signalled(&sem.header);
                prev
            }
            Err(prev) => {
                assertion(
                    "KeReleaseSemaphore beyond the semaphore's Limit (STATUS_SEMAPHORE_LIMIT_EXCEEDED)",
                );
                prev
            }
        }
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn KeReadStateSemaphore(s: *mut Ksemaphore) -> i32 {
    boundary("KeReadStateSemaphore", 0, || {
        semaphore(s, "KeReadStateSemaphore")
            .map_or(0, |s| s.header.signal_state.load(Ordering::Acquire))
    })
}
