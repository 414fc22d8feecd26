//! Per-thread binding of the current host and driver, and the emulated IRQL.
//!
//! [`bind`] is entered around every call into a driver; its guard restores the previous binding and
//! checks that the callback returned at the IRQL it was entered at without spin locks held
//! (Verifier). Threads that never entered a driver have no host.

use std::cell::{Cell, RefCell};

use crate::host::HostInner;
use crate::verifier::Finding;

/// What is bound to a thread: one cell, so entering and leaving a callback is one TLS access each.
#[derive(Clone, Copy)]
struct Binding {
    host: *const HostInner,
    driver: usize,
    irql: u8,
    /// `LOCKS.len()`, mirrored here for the per-callback balance check.
    locks: usize,
}

thread_local! {
    static BINDING: Cell<Binding> = const {
        Cell::new(Binding {
            host: std::ptr::null(),
            driver: usize::MAX,
            irql: 0,
            locks: 0,
        })
    };
    static LOCKS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

pub(crate) const PASSIVE_LEVEL: u8 = 0;
pub(crate) const DISPATCH_LEVEL: u8 = 2;

/// Restores the previous binding when dropped.
pub(crate) struct Bound {
    prev: Binding,
    irql: u8,
    locks: usize,
    callback: &'static str,
}

/// Binds `host` (and driver index `driver`) to this thread and sets the IRQL for a callback.
///
/// The caller keeps `host` alive until the guard is dropped.
pub(crate) fn bind(host: &HostInner, driver: usize, irql: u8, callback: &'static str) -> Bound {
    let prev = BINDING.with(|b| {
        let prev = b.get();
        b.set(Binding {
            host: std::ptr::from_ref(host),
            driver,
            irql,
            locks: prev.locks,
        });
        prev
    });
    Bound {
        prev,
        irql,
        locks: prev.locks,
        callback,
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let now = BINDING.with(Cell::get);
        let (exit, held) = (now.irql, now.locks);
        let mut locks = held;
        if exit != self.irql || held != self.locks {
            let extra: Vec<usize> = LOCKS.with(|l| {
                let mut l = l.borrow_mut();
                let keep = self.locks.min(l.len());
                let extra = l.split_off(keep);
                set_lock_count(l.len());
                extra
            });
            for lock in &extra {
                super::kernel::force_release(*lock);
            }
            with_host(|h| {
                h.finding(Finding::UnbalancedIrql {
                    callback: self.callback,
                    entry: self.irql,
                    exit,
                    locks_held: extra.len(),
                });
            });
            locks = lock_count();
        }
        // Restore the caller's binding; the held-lock count is the thread's, not the binding's.
        BINDING.with(|b| {
            b.set(Binding { locks, ..self.prev });
        });
    }
}

/// Runs `f` with the host bound to this thread, if any.
pub(crate) fn with_host<R>(f: impl FnOnce(&HostInner) -> R) -> Option<R> {
    let p = BINDING.with(Cell::get).host;
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null binding was set by `bind` from a live `&HostInner`, and the guard that
    // clears it is dropped before that reference's owner can release it.
    Some(f(unsafe { &*p }))
}

/// The driver index bound to this thread.
pub(crate) fn current_driver() -> usize {
    BINDING.with(Cell::get).driver
}

pub(crate) fn irql() -> u8 {
    BINDING.with(Cell::get).irql
}

/// Reports a call above the IRQL `function` allows (wdk-runtime.md: P = 0, ≤D = 2); the call
/// still proceeds, as a checked build of Windows would have bugchecked here.
pub(crate) fn check_irql(function: &'static str, max: u8) {
    let irql = irql();
    if irql > max {
        with_host(|h| h.finding(Finding::IrqlTooHigh { function, irql }));
    }
}

pub(crate) fn set_irql(v: u8) -> u8 {
    BINDING.with(|b| {
        let mut cur = b.get();
        let old = cur.irql;
        cur.irql = v;
        b.set(cur);
        old
    })
}

pub(crate) fn lock_count() -> usize {
    BINDING.with(Cell::get).locks
}

fn set_lock_count(n: usize) {
    BINDING.with(|b| {
        let mut cur = b.get();
        cur.locks = n;
        b.set(cur);
    });
}

pub(crate) fn push_lock(lock: usize) {
    LOCKS.with(|l| {
        let mut l = l.borrow_mut();
        l.push(lock);
        set_lock_count(l.len());
    });
}

/// Forgets a held lock; false when this thread did not hold it.
pub(crate) fn pop_lock(lock: usize) -> bool {
    LOCKS.with(|l| {
        let mut l = l.borrow_mut();
        match l.iter().rposition(|x| *x == lock) {
            Some(i) => {
                l.remove(i);
                set_lock_count(l.len());
                true
            }
            None => false,
        }
    })
}

/// A token unique to this thread (nonzero), written into held spin locks.
pub(crate) fn thread_token() -> usize {
    thread_local! {
        static TOKEN: u8 = const { 0 };
    }
    TOKEN.with(|t| std::ptr::from_ref(t) as usize)
}
