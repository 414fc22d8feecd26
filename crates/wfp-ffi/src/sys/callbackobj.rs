//! Callback objects (WDK `wdm.h`: ExCreateCallback, ExRegisterCallback, ExUnregisterCallback,
//! ExNotifyCallback; WFPSampler registers for `\Callback\PowerState`). Each host has its own
//! object namespace: the system's callback objects (`\Callback\PowerState`,
//! `\Callback\SetSystemTime`, `\Callback\ProcessorAdd`) always exist; drivers may create others
//! (named or not). The host itself never notifies the system objects — it has no power
//! transitions, clock changes or processor hot-add — so their callbacks run only when a driver
//! calls ExNotifyCallback. Registrations and references are counted per driver: what a driver
//! left at unload is a Verifier finding and is dropped, so no callback into an unmapped image can
//! happen.

use std::collections::HashMap;
use std::ffi::c_void;

use super::types::UnicodeString;
use super::{boundary, ctx, NtStatus, STATUS_INVALID_PARAMETER, STATUS_SUCCESS};
use crate::host::HostInner;
use crate::verifier::Finding;

const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = 0xC000_0034_u32 as i32;
const SYSTEM_OBJECTS: [&str; 3] = [
    "\\callback\\powerstate",
    "\\callback\\setsystemtime",
    "\\callback\\processoradd",
];

/// `CALLBACK_FUNCTION`: `void (*)(PVOID CallbackContext, PVOID Argument1, PVOID Argument2)`.
type CallbackFunction = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void);

#[derive(Debug)]
struct Object {
    /// Lower-case name; None for an unnamed object.
    name: Option<String>,
    permanent: bool,
    allow_multiple: bool,
    /// References by driver index (each ExCreateCallback, ObReferenceObject).
    refs: HashMap<usize, usize>,
}

#[derive(Debug)]
struct Registration {
    /// Registration order.
    seq: u64,
    object: usize,
    driver: usize,
    function: CallbackFunction,
    context: usize,
}

/// A host's callback objects and registrations, by address.
#[derive(Debug, Default)]
pub(crate) struct Callbacks {
    next_seq: u64,
    objects: HashMap<usize, Box<Object>>,
    registrations: HashMap<usize, Box<Registration>>,
}

impl Callbacks {
    fn find(&self, name: &str) -> Option<usize> {
        self.objects
            .iter()
            .find(|(_, o)| o.name.as_deref() == Some(name))
            .map(|(a, _)| *a)
    }

    fn insert(&mut self, name: Option<String>, permanent: bool, allow_multiple: bool) -> usize {
        let b = Box::new(Object {
            name,
            permanent,
            allow_multiple,
            refs: HashMap::new(),
        });
        let a = std::ptr::from_ref::<Object>(&b) as usize;
        self.objects.insert(a, b);
        a
    }

    fn ensure_system_objects(&mut self) {
        for n in SYSTEM_OBJECTS {
            if self.find(n).is_none() {
                self.insert(Some(n.to_string()), true, true);
            }
        }
    }

    /// Drops one reference `driver` holds on `object`; deletes a non-permanent object left with
    /// no reference and no registration. False if `driver` held none.
    fn deref(&mut self, object: usize, driver: usize) -> bool {
        let registered = self.registrations.values().any(|r| r.object == object);
        let Some(o) = self.objects.get_mut(&object) else {
            return false;
        };
        let Some(n) = o.refs.get_mut(&driver) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            o.refs.remove(&driver);
        }
        if o.refs.is_empty() && !o.permanent && !registered {
            self.objects.remove(&object);
        }
        true
    }

    /// Drops what `driver` left: (registrations, references).
    fn take_left(&mut self, driver: usize) -> (usize, usize) {
        let before = self.registrations.len();
        self.registrations.retain(|_, r| r.driver != driver);
        let registrations = before - self.registrations.len();
        let mut refs = 0;
        for o in self.objects.values_mut() {
            refs += o.refs.remove(&driver).unwrap_or(0);
        }
        let live: Vec<usize> = self.registrations.values().map(|r| r.object).collect();
        self.objects
            .retain(|a, o| o.permanent || !o.refs.is_empty() || live.contains(a));
        (registrations, refs)
    }
}

/// What `driver` left (dropped), for the unload report.
pub(crate) fn take_left(host: &HostInner, driver: usize) -> [(&'static str, usize); 2] {
    let (registrations, refs) = host.rt.callbacks.lock().take_left(driver);
    [
        ("callback registration(s) never unregistered", registrations),
        ("callback object reference(s) never released", refs),
    ]
}

/// ObReferenceObject on a callback object: its new count for this driver, None if `object` is
/// not one.
pub(crate) fn reference(object: usize) -> Option<usize> {
    let driver = ctx::current_driver();
    ctx::with_host(|h| {
        let mut c = h.rt.callbacks.lock();
        let o = c.objects.get_mut(&object)?;
        let n = o.refs.entry(driver).or_insert(0);
        *n += 1;
        Some(*n)
    })
    .flatten()
}

/// ObDereferenceObject on a callback object: Some(true) when this driver held a reference,
/// Some(false) when it held none, None if `object` is not a callback object.
pub(crate) fn dereference(object: usize) -> Option<bool> {
    let driver = ctx::current_driver();
    ctx::with_host(|h| {
        let mut c = h.rt.callbacks.lock();
        c.objects
            .contains_key(&object)
            .then(|| c.deref(object, driver))
    })
    .flatten()
}

/// The lower-cased name in an optional OBJECT_ATTRIBUTES; Err if the attributes are malformed.
fn object_name(attrs: *const c_void) -> Result<Option<String>, ()> {
    #[repr(C)]
    struct ObjectAttributes {
        length: u32,
        root: *mut c_void,
        name: *const UnicodeString,
        attributes: u32,
        sd: *mut c_void,
        qos: *mut c_void,
    }
    // SAFETY: the caller's OBJECT_ATTRIBUTES (x64 layout above), checked non-null.
    let Some(a) = (unsafe { attrs.cast::<ObjectAttributes>().as_ref() }) else {
        return Err(());
    };
    // SAFETY: the optional UNICODE_STRING it points at.
    let Some(s) = (unsafe { a.name.as_ref() }) else {
        return Ok(None);
    };
    if s.buffer.is_null() || s.length % 2 != 0 {
        return Err(());
    }
    // SAFETY: Length bytes of the string's buffer.
    let units = unsafe { std::slice::from_raw_parts(s.buffer, usize::from(s.length) / 2) };
    Ok(Some(String::from_utf16_lossy(units).to_lowercase()))
}

/// ExCreateCallback (≤ APC_LEVEL): opens the named callback object, or creates it (named or not)
/// when `create` is TRUE; the object gets one reference from the caller.
#[no_mangle]
pub(crate) unsafe extern "C" fn ExCreateCallback(
    object: *mut *mut c_void,
    attrs: *const c_void,
    create: u8,
    allow_multiple: u8,
) -> NtStatus {
    boundary("ExCreateCallback", STATUS_INVALID_PARAMETER, || {
        ctx::check_irql("ExCreateCallback", 1);
        if object.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        let Ok(name) = object_name(attrs) else {
            return STATUS_INVALID_PARAMETER;
        };
        let driver = ctx::current_driver();
        let found = ctx::with_host(|h| {
            let mut c = h.rt.callbacks.lock();
            c.ensure_system_objects();
            let a = match name.as_deref().and_then(|n| c.find(n)) {
                Some(a) => a,
                None if create != 0 => c.insert(name.clone(), false, allow_multiple != 0),
                None => return None,
            };
            let o = c.objects.get_mut(&a)?;
            *o.refs.entry(driver).or_insert(0) += 1;
            Some(a)
        });
        match found {
            Some(Some(a)) => {
                // SAFETY: checked non-null; the caller's PCALLBACK_OBJECT storage.
                unsafe { object.write(a as *mut c_void) };
                STATUS_SUCCESS
            }
            Some(None) => STATUS_OBJECT_NAME_NOT_FOUND,
            None => super::STATUS_INVALID_DEVICE_STATE,
        }
    })
}

/// ExRegisterCallback (≤ DISPATCH_LEVEL): the registration, or NULL (an unknown object, or a
/// second registration on an object created without AllowMultipleCallbacks).
#[no_mangle]
pub(crate) unsafe extern "C" fn ExRegisterCallback(
    object: *mut c_void,
    function: Option<CallbackFunction>,
    context: *mut c_void,
) -> *mut c_void {
    boundary("ExRegisterCallback", std::ptr::null_mut(), || {
        ctx::check_irql("ExRegisterCallback", 2);
        let Some(function) = function else {
            return std::ptr::null_mut();
        };
        let driver = ctx::current_driver();
        ctx::with_host(|h| {
            let mut c = h.rt.callbacks.lock();
            let Some(o) = c.objects.get(&(object as usize)) else {
                h.finding(Finding::BadHandle {
                    function: "ExRegisterCallback",
                });
                return std::ptr::null_mut();
            };
            let taken = c
                .registrations
                .values()
                .any(|r| r.object == object as usize);
            if !o.allow_multiple && taken {
                return std::ptr::null_mut();
            }
            c.next_seq += 1;
            let r = Box::new(Registration {
                seq: c.next_seq,
                object: object as usize,
                driver,
                function,
                context: context as usize,
            });
            let a = std::ptr::from_ref::<Registration>(&r) as usize;
            c.registrations.insert(a, r);
            a as *mut c_void
        })
        .unwrap_or(std::ptr::null_mut())
    })
}

/// ExUnregisterCallback (≤ DISPATCH_LEVEL): ends a registration of the calling driver.
#[no_mangle]
pub(crate) extern "C" fn ExUnregisterCallback(registration: *mut c_void) {
    boundary("ExUnregisterCallback", (), || {
        ctx::check_irql("ExUnregisterCallback", 2);
        let driver = ctx::current_driver();
        ctx::with_host(|h| {
            let mut c = h.rt.callbacks.lock();
            let key = registration as usize;
            let mine = c
                .registrations
                .get(&key)
                .is_some_and(|r| r.driver == driver);
            if mine {
                c.registrations.remove(&key);
            } else {
                h.finding(Finding::BadHandle {
                    function: "ExUnregisterCallback",
                });
            }
        });
    });
}

/// ExNotifyCallback (≤ DISPATCH_LEVEL): calls every function registered on the object, in
/// registration order, on the caller's thread and IRQL, with no runtime lock held.
#[no_mangle]
pub(crate) extern "C" fn ExNotifyCallback(
    object: *mut c_void,
    argument1: *mut c_void,
    argument2: *mut c_void,
) {
    boundary("ExNotifyCallback", (), || {
        ctx::check_irql("ExNotifyCallback", 2);
        let calls = ctx::with_host(|h| {
            let c = h.rt.callbacks.lock();
            if !c.objects.contains_key(&(object as usize)) {
                h.finding(Finding::BadHandle {
                    function: "ExNotifyCallback",
                });
                return Vec::new();
            }
            let mut v: Vec<(u64, CallbackFunction, usize)> = c
                .registrations
                .values()
                .filter(|r| r.object == object as usize)
                .map(|r| (r.seq, r.function, r.context))
                .collect();
            v.sort_by_key(|(seq, _, _)| *seq);
            v
        })
        .unwrap_or_default();
        for (_, function, context) in calls {
            // SAFETY: a function a loaded driver registered; registrations of an unloading
            // driver are dropped before its image is unmapped.
            unsafe { function(context as *mut c_void, argument1, argument2) };
        }
    });
}
