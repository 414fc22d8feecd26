//! The base filtering engine's state as a kernel-mode caller sees it (wfp-reference §11: the
//! management API acts on the hosting engine; WDK `fwpmk.h`: FwpmBfeStateGet0,
//! FwpmBfeStateSubscribeChanges0, FwpmBfeStateUnsubscribeChanges0). The engine a driver is loaded
//! into lives in the host process and runs for as long as the host does, so its state is
//! FWPM_SERVICE_RUNNING from before DriverEntry until after the unload routine: it never changes
//! while a driver can observe it, and a subscriber's callback is never called. Subscriptions are
//! still real objects: the handle must be valid to unsubscribe, and one left at unload is a
//! Verifier finding (and dropped).

use std::collections::HashMap;
use std::ffi::c_void;

use super::{
    boundary, ctx, NtStatus, STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use crate::host::HostInner;

/// `FWPM_SERVICE_STATE` (fwpmtypes.h).
const FWPM_SERVICE_RUNNING: i32 = 3;

/// `FWPM_SERVICE_STATE_CHANGE_CALLBACK0`: `void (*)(void *context, FWPM_SERVICE_STATE newState)`.
type StateChangeCallback = unsafe extern "C" fn(*mut c_void, i32);

/// One subscription.
#[derive(Debug)]
struct Subscription {
    driver: usize,
    /// Kept for a state change, which this host never has.
    _callback: StateChangeCallback,
    _context: usize,
}

/// A host's live subscriptions, by handle value.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    next: usize,
    live: HashMap<usize, Subscription>,
}

impl Subscriptions {
    /// Drops the subscriptions `driver` left; how many there were.
    pub(crate) fn take_left(&mut self, driver: usize) -> usize {
        let before = self.live.len();
        self.live.retain(|_, s| s.driver != driver);
        before - self.live.len()
    }
}

/// Subscriptions `driver` left (dropped), for the unload report.
pub(crate) fn take_left(host: &HostInner, driver: usize) -> usize {
    host.rt.bfe.lock().take_left(driver)
}

/// FwpmBfeStateGet0: FWPM_SERVICE_RUNNING (the in-process engine runs while any driver is
/// loaded).
#[no_mangle]
pub(crate) extern "C" fn FwpmBfeStateGet0() -> i32 {
    boundary("FwpmBfeStateGet0", FWPM_SERVICE_RUNNING, || {
        FWPM_SERVICE_RUNNING
    })
}

/// FwpmBfeStateSubscribeChanges0 (PASSIVE_LEVEL): records the subscription and returns its
/// handle. `deviceObject` must be the driver's device object; `callback` is required.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmBfeStateSubscribeChanges0(
    device_object: *mut c_void,
    callback: Option<StateChangeCallback>,
    context: *mut c_void,
    change_handle: *mut *mut c_void,
) -> NtStatus {
    boundary(
        "FwpmBfeStateSubscribeChanges0",
        STATUS_INVALID_PARAMETER,
        || {
            ctx::check_irql("FwpmBfeStateSubscribeChanges0", 0);
            let Some(callback) = callback else {
                return STATUS_INVALID_PARAMETER;
            };
            if device_object.is_null() || change_handle.is_null() {
                return STATUS_INVALID_PARAMETER;
            }
            let handle = ctx::with_host(|h| {
                let mut s = h.rt.bfe.lock();
                s.next += 1;
                // Handle values are odd addresses no allocation has: 0x5b1e0001, 0x5b1e0003, ...
                let handle = 0x5b1e_0000 + 2 * s.next - 1;
                s.live.insert(
                    handle,
                    Subscription {
                        driver: ctx::current_driver(),
                        _callback: callback,
                        _context: context as usize,
                    },
                );
                handle
            });
            let Some(handle) = handle else {
                return super::STATUS_INVALID_DEVICE_STATE;
            };
            // SAFETY: checked non-null above; the caller's HANDLE storage.
            unsafe { change_handle.write(handle as *mut c_void) };
            STATUS_SUCCESS
        },
    )
}

/// FwpmBfeStateUnsubscribeChanges0 (PASSIVE_LEVEL): ends a subscription; a handle this host
/// did not give out (or gave to another driver, or already ended) is STATUS_INVALID_HANDLE.
#[no_mangle]
pub(crate) extern "C" fn FwpmBfeStateUnsubscribeChanges0(change_handle: *mut c_void) -> NtStatus {
    boundary(
        "FwpmBfeStateUnsubscribeChanges0",
        STATUS_INVALID_PARAMETER,
        || {
            ctx::check_irql("FwpmBfeStateUnsubscribeChanges0", 0);
            let driver = ctx::current_driver();
            let removed = ctx::with_host(|h| {
                let mut s = h.rt.bfe.lock();
                let key = change_handle as usize;
                let mine = s.live.get(&key).is_some_and(|sub| sub.driver == driver);
                mine && s.live.remove(&key).is_some()
            });
            match removed {
                Some(true) => STATUS_SUCCESS,
                Some(false) => STATUS_INVALID_HANDLE,
                None => super::STATUS_INVALID_DEVICE_STATE,
            }
        },
    )
}
