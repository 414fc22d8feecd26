//! Per-thread binding of the current host and driver, and the emulated IRQL.
//!
//! [`bind`] is entered around every call into a driver; its guard restores the previous binding and
//! checks that the callback returned at the IRQL it was entered at without spin locks held
//! (Verifier). Threads that never entered a driver have no host.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;

use crate::host::HostInner;
use crate::verifier::Finding;

/// What is bound to a thread (a guard's saved copy of [`Slots`]).
#[derive(Clone, Copy)]
struct Binding {
    host: *const HostInner,
    driver: usize,
    /// The classifyFn invocation running on this thread (null outside classifyFn); see
    /// [`super::invocation`]. Callbacks entered from inside classifyFn keep it.
    invocation: *const c_void,
    irql: u8,
    /// `LOCKS.len()`, mirrored here for the per-callback balance check.
    locks: usize,
}

/// The thread's binding: one thread-local (one address computation per callback entry and exit),
/// a cell per field, so the return check reads just the IRQL and lock count — field-sized loads of
/// what entry stored, which the CPU forwards from its store buffer (a whole-struct copy would not
/// be forwarded when the callback is short).
struct Slots {
    host: Cell<*const HostInner>,
    driver: Cell<usize>,
    invocation: Cell<*const c_void>,
    irql: Cell<u8>,
    locks: Cell<usize>,
    /// The processor this thread reports while at DISPATCH_LEVEL or above (`u32::MAX`: not
    /// pinned); see [`pin_processor`].
    pinned: Cell<u32>,
}

impl Slots {
    fn get(&self) -> Binding {
        Binding {
            host: self.host.get(),
            driver: self.driver.get(),
            invocation: self.invocation.get(),
            irql: self.irql.get(),
            locks: self.locks.get(),
        }
    }

    fn set(&self, b: Binding) {
        self.host.set(b.host);
        self.driver.set(b.driver);
        self.invocation.set(b.invocation);
        self.irql.set(b.irql);
        self.locks.set(b.locks);
        if b.irql < DISPATCH_LEVEL {
            self.pinned.set(u32::MAX);
        }
    }
}

thread_local! {
    static BINDING: Slots = const {
        Slots {
            host: Cell::new(std::ptr::null()),
            driver: Cell::new(usize::MAX),
            invocation: Cell::new(std::ptr::null()),
            irql: Cell::new(0),
            locks: Cell::new(0),
            pinned: Cell::new(u32::MAX),
        }
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
    enter(host, driver, irql, None, callback)
}

/// [`bind`] for classifyFn: DISPATCH_LEVEL, and `invocation` (the address of the call's
/// [`super::invocation::Invocation`], which the caller keeps alive and unmoved until the guard is
/// dropped) becomes the thread's current invocation — one TLS write for both. Its guard keeps only
/// the caller's binding (the entry IRQL and callback name are constants; the lock count is not
/// rewritten): this runs on every classify through a C callout.
#[inline]
pub(crate) fn bind_classify(
    host: &HostInner,
    driver: usize,
    invocation: *const c_void,
) -> ClassifyBound {
    BINDING.with(|b| ClassifyBound {
        host: b.host.replace(std::ptr::from_ref(host)),
        driver: b.driver.replace(driver),
        invocation: b.invocation.replace(invocation),
        irql: b.irql.replace(DISPATCH_LEVEL),
        locks: b.locks.get(),
    })
}

/// [`bind_classify`]'s guard: the caller's binding, restored when dropped.
pub(crate) struct ClassifyBound {
    host: *const HostInner,
    driver: usize,
    invocation: *const c_void,
    irql: u8,
    locks: usize,
}

impl Drop for ClassifyBound {
    #[inline]
    fn drop(&mut self) {
        BINDING.with(|b| {
            if b.irql.get() == DISPATCH_LEVEL && b.locks.get() == self.locks {
                b.host.set(self.host);
                b.driver.set(self.driver);
                b.invocation.set(self.invocation);
                b.irql.set(self.irql);
                if self.irql < DISPATCH_LEVEL {
                    b.pinned.set(u32::MAX);
                }
            } else {
                self.unbalanced(b.irql.get());
            }
        });
    }
}

impl ClassifyBound {
    /// classifyFn returned at another IRQL or holding spin locks: [`Bound::unbalanced`].
    #[cold]
    #[inline(never)]
    fn unbalanced(&self, exit: u8) {
        let bound = Bound {
            prev: Binding {
                host: self.host,
                driver: self.driver,
                invocation: self.invocation,
                irql: self.irql,
                locks: self.locks,
            },
            irql: DISPATCH_LEVEL,
            locks: self.locks,
            callback: "classifyFn",
        };
        bound.unbalanced(exit);
        // Its work is done (the caller's binding restored): its own drop must not check again.
        std::mem::forget(bound);
    }
}

#[inline]
fn enter(
    host: &HostInner,
    driver: usize,
    irql: u8,
    invocation: Option<*const c_void>,
    callback: &'static str,
) -> Bound {
    let prev = BINDING.with(|b| {
        let prev = b.get();
        b.set(Binding {
            host: std::ptr::from_ref(host),
            driver,
            invocation: invocation.unwrap_or(prev.invocation),
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

/// The address of the classifyFn invocation running on this thread (null outside classifyFn).
pub(crate) fn current_invocation() -> *const c_void {
    BINDING.with(|b| b.invocation.get())
}

impl Drop for Bound {
    #[inline]
    fn drop(&mut self) {
        BINDING.with(|b| {
            let (exit, locks) = (b.irql.get(), b.locks.get());
            if exit == self.irql && locks == self.locks {
                // Balanced (the common case): restore the caller's binding in place.
                b.host.set(self.prev.host);
                b.driver.set(self.prev.driver);
                b.invocation.set(self.prev.invocation);
                b.irql.set(self.prev.irql);
            } else {
                self.unbalanced(exit);
            }
        });
    }
}

impl Bound {
    /// The callback returned at another IRQL or holding spin locks (Verifier): releases what it
    /// left held, reports it, and restores the caller's binding.
    #[cold]
    fn unbalanced(&self, exit: u8) {
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
        // Restore the caller's binding; the held-lock count is the thread's, not the binding's.
        let locks = lock_count();
        BINDING.with(|b| {
            b.set(Binding { locks, ..self.prev });
        });
    }
}

/// Runs `f` with the host bound to this thread, if any.
pub(crate) fn with_host<R>(f: impl FnOnce(&HostInner) -> R) -> Option<R> {
    let p = BINDING.with(|b| b.host.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null binding was set by `bind` from a live `&HostInner`, and the guard that
    // clears it is dropped before that reference's owner can release it.
    Some(f(unsafe { &*p }))
}

/// The driver index bound to this thread.
pub(crate) fn current_driver() -> usize {
    BINDING.with(|b| b.driver.get())
}

pub(crate) fn irql() -> u8 {
    BINDING.with(|b| b.irql.get())
}

/// Reports a call above the IRQL `function` allows (wdk-runtime.md: P = 0, ≤D = 2); the call
/// still proceeds, as a checked build of Windows would have bugchecked here.
pub(crate) fn check_irql(function: &'static str, max: u8) {
    let irql = irql();
    if irql > max {
        with_host(|h| h.finding(Finding::IrqlTooHigh { function, irql }));
    }
}

/// Reports an `Assertion` Verifier finding (a documented rule the driver broke) to the bound
/// host; a thread bound to no host has nowhere to report it.
pub(crate) fn assertion(message: impl Into<String>) {
    let message = message.into();
    with_host(|h| h.finding(Finding::Assertion { message }));
}

pub(crate) fn set_irql(v: u8) -> u8 {
    BINDING.with(|b| {
        if v < DISPATCH_LEVEL {
            b.pinned.set(u32::MAX);
        }
        b.irql.replace(v)
    })
}

/// The processor a thread at DISPATCH_LEVEL or above reports: `cpu` (where it runs now) the first
/// time, the same number after that until its IRQL drops below DISPATCH_LEVEL. On Windows such a
/// thread is not rescheduled, so KeGetCurrentProcessorNumber is stable there and drivers index
/// per-processor state (and queue DPCs to "this" processor) by it; host threads can migrate at any
/// time. Below DISPATCH_LEVEL, `cpu` as it is.
pub(crate) fn pin_processor(cpu: u32) -> u32 {
    BINDING.with(|b| {
        if b.irql.get() < DISPATCH_LEVEL {
            return cpu;
        }
        match b.pinned.get() {
            u32::MAX => {
                b.pinned.set(cpu);
                cpu
            }
            pinned => pinned,
        }
    })
}

pub(crate) fn lock_count() -> usize {
    BINDING.with(|b| b.locks.get())
}

fn set_lock_count(n: usize) {
    BINDING.with(|b| b.locks.set(n));
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

#[cfg(test)]
mod tests {
    use super::{pin_processor, set_irql, DISPATCH_LEVEL, PASSIVE_LEVEL};

    #[test]
    fn the_processor_number_is_kept_at_dispatch_level_until_the_irql_drops() {
        let old = set_irql(PASSIVE_LEVEL);
        assert_eq!(
            pin_processor(1),
            1,
            "PASSIVE_LEVEL: where the thread runs now"
        );
        assert_eq!(pin_processor(0), 0);
        set_irql(DISPATCH_LEVEL);
        assert_eq!(pin_processor(1), 1, "the first answer at DISPATCH_LEVEL");
        assert_eq!(
            pin_processor(0),
            1,
            "kept while the thread stays at DISPATCH_LEVEL"
        );
        set_irql(PASSIVE_LEVEL);
        assert_eq!(pin_processor(0), 0, "released when the IRQL drops");
        set_irql(DISPATCH_LEVEL);
        assert_eq!(pin_processor(0), 0, "pinned afresh at the next raise");
        set_irql(old);
    }
}
