//! Per-thread binding of the current host and driver, and the emulated IRQL.
//!
//! [`bind`] is entered around every call into a driver; its guard restores the previous binding and
//! checks that the callback returned at the IRQL it was entered at without spin locks held
//! (Verifier). Threads that never entered a driver have no host.

use std::cell::{Cell, RefCell};

use crate::host::HostInner;
use crate::verifier::Finding;

thread_local! {
    static HOST: Cell<*const HostInner> = const { Cell::new(std::ptr::null()) };
    static DRIVER: Cell<usize> = const { Cell::new(usize::MAX) };
    static IRQL: Cell<u8> = const { Cell::new(0) };
    static LOCKS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

pub(crate) const PASSIVE_LEVEL: u8 = 0;
pub(crate) const DISPATCH_LEVEL: u8 = 2;

/// Restores the previous binding when dropped.
pub(crate) struct Bound {
    prev_host: *const HostInner,
    prev_driver: usize,
    prev_irql: u8,
    irql: u8,
    locks: usize,
    callback: &'static str,
}

/// Binds `host` (and driver index `driver`) to this thread and sets the IRQL for a callback.
///
/// The caller keeps `host` alive until the guard is dropped.
pub(crate) fn bind(host: &HostInner, driver: usize, irql: u8, callback: &'static str) -> Bound {
    let prev_host = HOST.with(|h| h.replace(host));
    let prev_driver = DRIVER.with(|d| d.replace(driver));
    let prev_irql = IRQL.with(|i| i.replace(irql));
    Bound {
        prev_host,
        prev_driver,
        prev_irql,
        irql,
        locks: lock_count(),
        callback,
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let exit = IRQL.with(Cell::get);
        let held = lock_count();
        if exit != self.irql || held != self.locks {
            let extra: Vec<usize> = LOCKS.with(|l| {
                let mut l = l.borrow_mut();
                let keep = self.locks.min(l.len());
                l.split_off(keep)
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
        }
        HOST.with(|h| h.set(self.prev_host));
        DRIVER.with(|d| d.set(self.prev_driver));
        IRQL.with(|i| i.set(self.prev_irql));
    }
}

/// Runs `f` with the host bound to this thread, if any.
pub(crate) fn with_host<R>(f: impl FnOnce(&HostInner) -> R) -> Option<R> {
    let p = HOST.with(Cell::get);
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null binding was set by `bind` from a live `&HostInner`, and the guard that
    // clears it is dropped before that reference's owner can release it.
    Some(f(unsafe { &*p }))
}

/// The driver index bound to this thread.
pub(crate) fn current_driver() -> usize {
    DRIVER.with(Cell::get)
}

pub(crate) fn irql() -> u8 {
    IRQL.with(Cell::get)
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
    IRQL.with(|i| i.replace(v))
}

pub(crate) fn lock_count() -> usize {
    LOCKS.with(|l| l.borrow().len())
}

pub(crate) fn push_lock(lock: usize) {
    LOCKS.with(|l| l.borrow_mut().push(lock));
}

/// Forgets a held lock; false when this thread did not hold it.
pub(crate) fn pop_lock(lock: usize) -> bool {
    LOCKS.with(|l| {
        let mut l = l.borrow_mut();
        match l.iter().rposition(|x| *x == lock) {
            Some(i) => {
                l.remove(i);
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
