//! Kernel-mode management (fwpmk.h, wfp-reference §11, wdk-runtime §7) acting on the host's
//! engine. An engine handle is a session; FWPM_SESSION_FLAG_DYNAMIC sessions delete what they
//! added when closed (the host closes a driver's sessions at unload). One explicit transaction per
//! session; calls outside one run in an implicit transaction.

use std::collections::HashMap;
use std::ffi::c_void;

use wfp_core::catalogue;
use wfp_core::condition::ConditionSpec;
use wfp_core::constants::FilterFlags;
use wfp_core::{
    ActionType, CalloutId, CalloutSpec, FilterId, FilterSpec, FwpError, Guid, MatchType,
    ProviderContextId, ProviderSpec, Status, SublayerSpec, Transaction, WeightSpec,
};

use super::convert::{condition_from_c, wide_to_string};
use super::ctx;
use super::pctx::{spec_from_c, ProviderContextImage};
use super::types::{
    CGuid, FwpmCallout0, FwpmDisplayData0, FwpmFilter0, FwpmProvider0, FwpmProviderContext,
    FwpmSession0, FwpmSublayer0,
};
use super::{
    boundary, nt, NtStatus, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_HANDLE,
    STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use crate::host::HostInner;
use crate::verifier::Finding;

const FWPM_SESSION_FLAG_DYNAMIC: u32 = 0x1;
const FWPM_TXN_READ_ONLY: u32 = 0x1;
const RPC_C_AUTHN_WINNT: u32 = 10;
const RPC_C_AUTHN_DEFAULT: u32 = 0xFFFF_FFFF;
const STATUS_FWP_TXN_IN_PROGRESS: NtStatus = 0xC022_000E_u32 as i32;
const STATUS_FWP_NO_TXN_IN_PROGRESS: NtStatus = 0xC022_000D_u32 as i32;
const STATUS_FWP_INCOMPATIBLE_TXN: NtStatus = 0xC022_0011_u32 as i32;
const STATUS_FWP_LAYER_NOT_FOUND: NtStatus = 0xC022_0004_u32 as i32;
const STATUS_FWP_CONDITION_NOT_FOUND: NtStatus = 0xC022_0002_u32 as i32;
const STATUS_FWP_TYPE_MISMATCH: NtStatus = 0xC022_0027_u32 as i32;
const STATUS_FWP_INVALID_ENUMERATOR: NtStatus = 0xC022_001D_u32 as i32;
const STATUS_FWP_NULL_POINTER: NtStatus = 0xC022_001C_u32 as i32;
const STATUS_FWP_IN_USE: NtStatus = 0xC022_000A_u32 as i32;

/// An object a session added (deleted again when a dynamic session closes).
#[derive(Clone, Copy, Debug)]
enum Added {
    Provider(Guid),
    Sublayer(Guid),
    Callout(Guid),
    ProviderContext(Guid),
    Filter(FilterId),
}

struct OpenTxn {
    read_only: bool,
    /// Borrows the host's engine; the host ends every session before dropping the engine
    /// (`HostInner`'s Drop), so the borrow never outlives it.
    txn: Transaction<'static>,
    added: Vec<Added>,
}

/// One engine handle.
pub(crate) struct Session {
    dynamic: bool,
    pub(crate) driver: usize,
    txn: Option<OpenTxn>,
    added: Vec<Added>,
}

/// The open engine handles of a host.
#[derive(Default)]
pub(crate) struct Sessions {
    map: HashMap<usize, Option<Session>>,
    next: usize,
    /// What Fwpm*Get* handed out, by address, until FwpmFreeMemory0.
    allocations: HashMap<usize, Box<ProviderContextImage>>,
}

impl Sessions {
    /// Ends every session (their transactions abort) without deleting dynamic objects.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }

    /// Handles a driver left open.
    pub(crate) fn of_driver(&self, driver: usize) -> Vec<usize> {
        self.map
            .iter()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| s.driver == driver))
            .map(|(h, _)| *h)
            .collect()
    }
}

fn host() -> Option<&'static HostInner> {
    // SAFETY: the bound host outlives every runtime call made on this thread (ctx::bind); the
    // 'static here never escapes the call.
    ctx::with_host(|h| unsafe { &*std::ptr::from_ref(h) })
}

/// Runs `f` on the session behind `handle` (taken out of the table meanwhile, so a callback
/// the engine makes from inside `f` can use other handles).
fn with_session(
    function: &'static str,
    handle: *mut c_void,
    f: impl FnOnce(&HostInner, &mut Session) -> NtStatus,
) -> NtStatus {
    let Some(h) = host() else {
        return STATUS_INVALID_DEVICE_STATE;
    };
    let key = handle as usize;
    let taken = h.sessions.lock().map.get_mut(&key).map(Option::take);
    match taken {
        None => {
            h.finding(Finding::BadHandle { function });
            STATUS_INVALID_HANDLE
        }
        Some(None) => STATUS_FWP_IN_USE,
        Some(Some(mut s)) => {
            let r = f(h, &mut s);
            if let Some(slot) = h.sessions.lock().map.get_mut(&key) {
                *slot = Some(s);
            }
            r
        }
    }
}

/// Runs a management operation in the session's transaction, or in an implicit one.
fn in_txn<T>(
    h: &HostInner,
    s: &mut Session,
    op: impl FnOnce(&mut Transaction<'_>) -> Result<(T, Option<Added>), FwpError>,
) -> Result<T, NtStatus> {
    match &mut s.txn {
        Some(t) if t.read_only => Err(STATUS_FWP_INCOMPATIBLE_TXN),
        Some(t) => {
            let (v, added) = op(&mut t.txn).map_err(|e| nt(e.kernel_status()))?;
            t.added.extend(added);
            Ok(v)
        }
        None => {
            let mut t = h.engine.begin();
            let (v, added) = op(&mut t).map_err(|e| nt(e.kernel_status()))?;
            t.commit();
            s.added.extend(added);
            Ok(v)
        }
    }
}

fn status_of<T>(r: Result<T, NtStatus>) -> NtStatus {
    r.map_or_else(|e| e, |_| STATUS_SUCCESS)
}

/// # Safety
/// The display data's pointers are null or NUL-terminated UTF-16.
unsafe fn names(d: &FwpmDisplayData0) -> (String, String) {
    // SAFETY: per the contract.
    unsafe {
        (
            wide_to_string(d.name).unwrap_or_default(),
            wide_to_string(d.description).unwrap_or_default(),
        )
    }
}

fn guid(g: &CGuid) -> Guid {
    Guid::from_windows_bytes(g.bytes)
}

/// # Safety
/// `p` is null or points to a GUID.
unsafe fn opt_guid(p: *const CGuid) -> Option<Guid> {
    // SAFETY: per the contract.
    unsafe { p.as_ref() }.map(guid)
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmEngineOpen0(
    server: *const u16,
    authn: u32,
    _identity: *const c_void,
    session: *const FwpmSession0,
    out: *mut *mut c_void,
) -> NtStatus {
    boundary("FwpmEngineOpen0", STATUS_INVALID_PARAMETER, || {
        if !server.is_null()
            || out.is_null()
            || (authn != RPC_C_AUTHN_WINNT && authn != RPC_C_AUTHN_DEFAULT)
        {
            return STATUS_INVALID_PARAMETER;
        }
        let Some(h) = host() else {
            return STATUS_INVALID_DEVICE_STATE;
        };
        // SAFETY: optional FWPM_SESSION0 from the caller.
        let dynamic =
            unsafe { session.as_ref() }.is_some_and(|s| s.flags & FWPM_SESSION_FLAG_DYNAMIC != 0);
        let mut sessions = h.sessions.lock();
        sessions.next += 1;
        let handle = sessions.next;
        sessions.map.insert(
            handle,
            Some(Session {
                dynamic,
                driver: ctx::current_driver(),
                txn: None,
                added: Vec::new(),
            }),
        );
        // SAFETY: checked non-null above.
        unsafe { *out = handle as *mut c_void };
        STATUS_SUCCESS
    })
}

/// Closes a session: aborts its transaction, deletes a dynamic session's objects.
pub(crate) fn close(h: &HostInner, handle: usize) -> bool {
    let Some(Some(mut s)) = h.sessions.lock().map.remove(&handle) else {
        return false;
    };
    if let Some(t) = s.txn.take() {
        t.txn.abort();
    }
    if s.dynamic {
        let mut objects = std::mem::take(&mut s.added);
        // Filters first, then what they reference.
        objects.sort_by_key(|a| match a {
            Added::Filter(_) => 0,
            Added::ProviderContext(_) => 1,
            Added::Callout(_) => 2,
            Added::Sublayer(_) => 3,
            Added::Provider(_) => 4,
        });
        for a in objects {
            let _ignored = match a {
                Added::Filter(id) => h.engine.delete_filter(id),
                Added::ProviderContext(k) => h.engine.delete_provider_context(&k),
                Added::Callout(k) => h.engine.delete_callout(&k),
                Added::Sublayer(k) => h.engine.delete_sublayer(&k),
                Added::Provider(k) => h.engine.delete_provider(&k),
            };
        }
    }
    true
}

#[no_mangle]
pub(crate) extern "C" fn FwpmEngineClose0(handle: *mut c_void) -> NtStatus {
    boundary("FwpmEngineClose0", STATUS_INVALID_PARAMETER, || {
        let Some(h) = host() else {
            return STATUS_INVALID_DEVICE_STATE;
        };
        if close(h, handle as usize) {
            STATUS_SUCCESS
        } else {
            h.finding(Finding::BadHandle {
                function: "FwpmEngineClose0",
            });
            STATUS_INVALID_HANDLE
        }
    })
}

#[no_mangle]
pub(crate) extern "C" fn FwpmTransactionBegin0(handle: *mut c_void, flags: u32) -> NtStatus {
    boundary("FwpmTransactionBegin0", STATUS_INVALID_PARAMETER, || {
        with_session("FwpmTransactionBegin0", handle, |h, s| {
            if s.txn.is_some() {
                return STATUS_FWP_TXN_IN_PROGRESS;
            }
            let txn = h.engine.begin();
            // SAFETY: the transaction borrows `h.engine`, which the host keeps until every session
            // (and so this transaction) has ended — HostInner's Drop clears the sessions first.
            let txn: Transaction<'static> = unsafe { std::mem::transmute(txn) };
            s.txn = Some(OpenTxn {
                read_only: flags & FWPM_TXN_READ_ONLY != 0,
                txn,
                added: Vec::new(),
            });
            STATUS_SUCCESS
        })
    })
}

#[no_mangle]
pub(crate) extern "C" fn FwpmTransactionCommit0(handle: *mut c_void) -> NtStatus {
    boundary("FwpmTransactionCommit0", STATUS_INVALID_PARAMETER, || {
        with_session("FwpmTransactionCommit0", handle, |_, s| {
            match s.txn.take() {
                None => STATUS_FWP_NO_TXN_IN_PROGRESS,
                Some(t) => {
                    t.txn.commit();
                    s.added.extend(t.added);
                    STATUS_SUCCESS
                }
            }
        })
    })
}

#[no_mangle]
pub(crate) extern "C" fn FwpmTransactionAbort0(handle: *mut c_void) -> NtStatus {
    boundary("FwpmTransactionAbort0", STATUS_INVALID_PARAMETER, || {
        with_session("FwpmTransactionAbort0", handle, |_, s| match s.txn.take() {
            None => STATUS_FWP_NO_TXN_IN_PROGRESS,
            Some(t) => {
                t.txn.abort();
                STATUS_SUCCESS
            }
        })
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmProviderAdd0(
    handle: *mut c_void,
    p: *const FwpmProvider0,
    _sd: *mut c_void,
) -> NtStatus {
    boundary("FwpmProviderAdd0", STATUS_INVALID_PARAMETER, || {
        // SAFETY: the caller's FWPM_PROVIDER0 (checked non-null) with valid strings.
        let Some(p) = (unsafe { p.as_ref() }) else {
            return STATUS_FWP_NULL_POINTER;
        };
        // SAFETY: as above.
        let (name, description) = unsafe { names(&p.display_data) };
        let spec = ProviderSpec {
            key: guid(&p.provider_key),
            name,
            description,
            flags: p.flags,
            // SAFETY: as above.
            service_name: unsafe { wide_to_string(p.service_name) },
        };
        with_session("FwpmProviderAdd0", handle, |h, s| {
            status_of(in_txn(h, s, |t| {
                t.add_provider(spec).map(|k| ((), Some(Added::Provider(k))))
            }))
        })
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmSubLayerAdd0(
    handle: *mut c_void,
    p: *const FwpmSublayer0,
    _sd: *mut c_void,
) -> NtStatus {
    boundary("FwpmSubLayerAdd0", STATUS_INVALID_PARAMETER, || {
        // SAFETY: the caller's FWPM_SUBLAYER0 (checked non-null).
        let Some(p) = (unsafe { p.as_ref() }) else {
            return STATUS_FWP_NULL_POINTER;
        };
        // SAFETY: as above.
        let (name, description) = unsafe { names(&p.display_data) };
        let spec = SublayerSpec {
            key: guid(&p.sub_layer_key),
            name,
            description,
            flags: p.flags,
            // SAFETY: as above.
            provider: unsafe { opt_guid(p.provider_key) },
            weight: p.weight,
        };
        with_session("FwpmSubLayerAdd0", handle, |h, s| {
            status_of(in_txn(h, s, |t| {
                t.add_sublayer(spec).map(|k| ((), Some(Added::Sublayer(k))))
            }))
        })
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmSubLayerDeleteByKey0(
    handle: *mut c_void,
    key: *const CGuid,
) -> NtStatus {
    boundary("FwpmSubLayerDeleteByKey0", STATUS_INVALID_PARAMETER, || {
        // SAFETY: the caller's GUID.
        let Some(k) = (unsafe { opt_guid(key) }) else {
            return STATUS_FWP_NULL_POINTER;
        };
        with_session("FwpmSubLayerDeleteByKey0", handle, |h, s| {
            status_of(in_txn(h, s, |t| t.delete_sublayer(&k).map(|()| ((), None))))
        })
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmCalloutAdd0(
    handle: *mut c_void,
    c: *const FwpmCallout0,
    _sd: *mut c_void,
    id: *mut u32,
) -> NtStatus {
    boundary("FwpmCalloutAdd0", STATUS_INVALID_PARAMETER, || {
        // SAFETY: the caller's FWPM_CALLOUT0 (checked non-null).
        let Some(c) = (unsafe { c.as_ref() }) else {
            return STATUS_FWP_NULL_POINTER;
        };
        let Some(layer) = catalogue::layer_by_key(&guid(&c.applicable_layer)) else {
            return STATUS_FWP_LAYER_NOT_FOUND;
        };
        // SAFETY: as above.
        let (name, description) = unsafe { names(&c.display_data) };
        let spec = CalloutSpec {
            key: guid(&c.callout_key),
            name,
            description,
            flags: c.flags,
            // SAFETY: as above.
            provider: unsafe { opt_guid(c.provider_key) },
            applicable_layer: layer.layer_id(),
        };
        let key = spec.key;
        with_session("FwpmCalloutAdd0", handle, |h, s| {
            match in_txn(h, s, |t| {
                t.add_callout(spec).map(|i| (i, Some(Added::Callout(key))))
            }) {
                Ok(i) => {
                    // SAFETY: optional out-pointer.
                    if let Some(o) = unsafe { id.as_mut() } {
                        *o = i.0;
                    }
                    STATUS_SUCCESS
                }
                Err(e) => e,
            }
        })
    })
}

fn callout_key_by_id(h: &HostInner, id: u32) -> Option<Guid> {
    h.engine
        .callouts()
        .into_iter()
        .find(|c| c.id == CalloutId(id))
        .map(|c| c.spec.key)
}

#[no_mangle]
pub(crate) extern "C" fn FwpmCalloutDeleteById0(handle: *mut c_void, id: u32) -> NtStatus {
    boundary("FwpmCalloutDeleteById0", STATUS_INVALID_PARAMETER, || {
        with_session("FwpmCalloutDeleteById0", handle, |h, s| {
            // Inside the session's transaction, read through it (the writer lock is held).
            let found = match &s.txn {
                Some(t) => t.txn.callout_key(CalloutId(id)),
                None => callout_key_by_id(h, id),
            };
            let Some(k) = found else {
                return nt(Status::FWP_CALLOUT_NOT_FOUND);
            };
            status_of(in_txn(h, s, |t| t.delete_callout(&k).map(|()| ((), None))))
        })
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmCalloutDeleteByKey0(
    handle: *mut c_void,
    key: *const CGuid,
) -> NtStatus {
    boundary("FwpmCalloutDeleteByKey0", STATUS_INVALID_PARAMETER, || {
        // SAFETY: the caller's GUID.
        let Some(k) = (unsafe { opt_guid(key) }) else {
            return STATUS_FWP_NULL_POINTER;
        };
        with_session("FwpmCalloutDeleteByKey0", handle, |h, s| {
            status_of(in_txn(h, s, |t| t.delete_callout(&k).map(|()| ((), None))))
        })
    })
}

/// FWPM_FILTER0 → FilterSpec.
///
/// # Safety
/// `f`'s pointers (names, conditions, weight) are valid.
unsafe fn filter_spec(f: &FwpmFilter0) -> Result<FilterSpec, NtStatus> {
    let layer = catalogue::layer_by_key(&guid(&f.layer_key)).ok_or(STATUS_FWP_LAYER_NOT_FOUND)?;
    let action = ActionType(f.action.action_type);
    // SAFETY: per the contract.
    let (name, description) = unsafe { names(&f.display_data) };
    let mut spec = FilterSpec::new(name, layer.layer_id(), action);
    spec.description = description;
    spec.key = guid(&f.filter_key);
    spec.flags = FilterFlags(f.flags);
    // SAFETY: per the contract.
    spec.provider = unsafe { opt_guid(f.provider_key) };
    spec.sublayer = guid(&f.sub_layer_key);
    spec.weight = match f.weight.data_type {
        0 => WeightSpec::Auto,
        1 => WeightSpec::Range(f.weight.value as u8),
        // SAFETY: FWP_UINT64 is a pointer to the weight (checked non-null).
        4 => WeightSpec::Exact(
            *unsafe { (f.weight.value as *const u64).as_ref() }.ok_or(STATUS_FWP_NULL_POINTER)?,
        ),
        _ => return Err(STATUS_FWP_TYPE_MISMATCH),
    };
    if action.is_callout() {
        spec.callout = Some(guid(&f.action.key));
    }
    // The union (§11.4): providerContextKey with HAS_PROVIDER_CONTEXT, else rawContext.
    if spec.flags.contains(FilterFlags::HAS_PROVIDER_CONTEXT) {
        spec.provider_context = Some(Guid::from_windows_bytes(f.context.bytes));
    } else {
        spec.raw_context = u64::from_le_bytes(f.context.bytes[..8].try_into().unwrap_or([0; 8]));
    }
    let n = f.num_filter_conditions as usize;
    if n > 0 && f.filter_condition.is_null() {
        return Err(STATUS_FWP_NULL_POINTER);
    }
    let conds = if n == 0 {
        &[][..]
    } else {
        // SAFETY: the caller's array of `n` conditions (checked non-null above).
        unsafe { std::slice::from_raw_parts(f.filter_condition, n) }
    };
    for c in conds {
        let field = catalogue::condition_by_key(&guid(&c.field_key))
            .ok_or(STATUS_FWP_CONDITION_NOT_FOUND)?;
        let match_type = *MatchType::ALL
            .get(c.match_type as usize)
            .ok_or(STATUS_FWP_INVALID_ENUMERATOR)?;
        // SAFETY: the condition value's pointer arm is valid (contract).
        let value =
            unsafe { condition_from_c(&c.condition_value) }.ok_or(STATUS_FWP_TYPE_MISMATCH)?;
        spec.conditions.push(ConditionSpec {
            field,
            match_type,
            value,
        });
    }
    Ok(spec)
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmFilterAdd0(
    handle: *mut c_void,
    f: *const FwpmFilter0,
    _sd: *mut c_void,
    id: *mut u64,
) -> NtStatus {
    boundary("FwpmFilterAdd0", STATUS_INVALID_PARAMETER, || {
        // SAFETY: the caller's FWPM_FILTER0 (checked non-null).
        let Some(f) = (unsafe { f.as_ref() }) else {
            return STATUS_FWP_NULL_POINTER;
        };
        // SAFETY: as above.
        let spec = match unsafe { filter_spec(f) } {
            Ok(s) => s,
            Err(e) => return e,
        };
        with_session("FwpmFilterAdd0", handle, |h, s| {
            match in_txn(h, s, |t| {
                t.add_filter(spec).map(|i| (i, Some(Added::Filter(i))))
            }) {
                Ok(i) => {
                    // SAFETY: optional out-pointer.
                    if let Some(o) = unsafe { id.as_mut() } {
                        *o = i.0;
                    }
                    STATUS_SUCCESS
                }
                Err(e) => e,
            }
        })
    })
}

#[no_mangle]
pub(crate) extern "C" fn FwpmFilterDeleteById0(handle: *mut c_void, id: u64) -> NtStatus {
    boundary("FwpmFilterDeleteById0", STATUS_INVALID_PARAMETER, || {
        with_session("FwpmFilterDeleteById0", handle, |h, s| {
            status_of(in_txn(h, s, |t| {
                t.delete_filter(FilterId(id)).map(|()| ((), None))
            }))
        })
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmFilterDeleteByKey0(
    handle: *mut c_void,
    key: *const CGuid,
) -> NtStatus {
    boundary("FwpmFilterDeleteByKey0", STATUS_INVALID_PARAMETER, || {
        // SAFETY: the caller's GUID.
        let Some(k) = (unsafe { opt_guid(key) }) else {
            return STATUS_FWP_NULL_POINTER;
        };
        with_session("FwpmFilterDeleteByKey0", handle, |h, s| {
            status_of(in_txn(h, s, |t| {
                t.delete_filter_by_key(&k).map(|()| ((), None))
            }))
        })
    })
}

/// `FwpmProviderContextAdd0..3` (§11.4; the four versions share the layout this reads):
/// FWPM_GENERAL_CONTEXT only (others: STATUS_NOT_SUPPORTED, `pctx.rs`); `*id` gets
/// `providerContextId`.
///
/// # Safety
/// `p` is NULL or a valid provider context; `id` is NULL or writable.
unsafe fn provider_context_add(
    function: &'static str,
    handle: *mut c_void,
    p: *const FwpmProviderContext,
    id: *mut u64,
) -> NtStatus {
    boundary(function, STATUS_INVALID_PARAMETER, || {
        // SAFETY: the caller's structure (checked non-null).
        let Some(p) = (unsafe { p.as_ref() }) else {
            return STATUS_FWP_NULL_POINTER;
        };
        // SAFETY: as above.
        let spec = match unsafe { spec_from_c(p) } {
            Ok(s) => s,
            Err(e) => return e,
        };
        let key = spec.key;
        with_session(function, handle, |h, s| {
            let added = in_txn(h, s, |t| {
                let i = t.add_provider_context(spec)?;
                let key = t.provider_context_key(i).unwrap_or(key);
                Ok((i, Some(Added::ProviderContext(key))))
            });
            match added {
                Ok(i) => {
                    // SAFETY: optional out-pointer.
                    if let Some(o) = unsafe { id.as_mut() } {
                        *o = i.0;
                    }
                    STATUS_SUCCESS
                }
                Err(e) => e,
            }
        })
    })
}

macro_rules! provider_context_add {
    ($($name:ident),*) => {$(
        #[no_mangle]
        pub(crate) unsafe extern "C" fn $name(
            handle: *mut c_void,
            p: *const FwpmProviderContext,
            _sd: *mut c_void,
            id: *mut u64,
        ) -> NtStatus {
            // SAFETY: the caller's arguments, forwarded under the same contract.
            unsafe { provider_context_add(stringify!($name), handle, p, id) }
        }
    )*};
}

provider_context_add!(
    FwpmProviderContextAdd0,
    FwpmProviderContextAdd1,
    FwpmProviderContextAdd2,
    FwpmProviderContextAdd3
);

#[no_mangle]
pub(crate) extern "C" fn FwpmProviderContextDeleteById0(handle: *mut c_void, id: u64) -> NtStatus {
    boundary(
        "FwpmProviderContextDeleteById0",
        STATUS_INVALID_PARAMETER,
        || {
            with_session("FwpmProviderContextDeleteById0", handle, |h, s| {
                status_of(in_txn(h, s, |t| {
                    t.delete_provider_context_by_id(ProviderContextId(id))
                        .map(|()| ((), None))
                }))
            })
        },
    )
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmProviderContextDeleteByKey0(
    handle: *mut c_void,
    key: *const CGuid,
) -> NtStatus {
    boundary(
        "FwpmProviderContextDeleteByKey0",
        STATUS_INVALID_PARAMETER,
        || {
            // SAFETY: the caller's GUID.
            let Some(k) = (unsafe { opt_guid(key) }) else {
                return STATUS_FWP_NULL_POINTER;
            };
            with_session("FwpmProviderContextDeleteByKey0", handle, |h, s| {
                status_of(in_txn(h, s, |t| {
                    t.delete_provider_context(&k).map(|()| ((), None))
                }))
            })
        },
    )
}

/// `FwpmProviderContextGetByKey0`: a copy the driver frees with FwpmFreeMemory0.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmProviderContextGetByKey0(
    handle: *mut c_void,
    key: *const CGuid,
    out: *mut *mut FwpmProviderContext,
) -> NtStatus {
    boundary(
        "FwpmProviderContextGetByKey0",
        STATUS_INVALID_PARAMETER,
        || {
            // SAFETY: the caller's GUID.
            let Some(k) = (unsafe { opt_guid(key) }) else {
                return STATUS_FWP_NULL_POINTER;
            };
            if out.is_null() {
                return STATUS_FWP_NULL_POINTER;
            }
            with_session("FwpmProviderContextGetByKey0", handle, |h, s| {
                // Inside the session's transaction, read through it (the writer lock is held).
                let found = match &s.txn {
                    Some(t) => t.txn.provider_context(&k),
                    None => h.engine.provider_context(&k),
                };
                let Some(pc) = found else {
                    return nt(FwpError::ProviderContextNotFound(k.to_string()).kernel_status());
                };
                let mut image = ProviderContextImage::new(&pc);
                let p = image.as_mut_ptr();
                h.sessions.lock().allocations.insert(p as usize, image);
                // SAFETY: checked non-null above.
                unsafe { *out = p };
                STATUS_SUCCESS
            })
        },
    )
}

/// `FwpmFreeMemory0`: frees what a Get function returned; any other non-NULL pointer is a driver
/// bug (reported); `*p` is set to NULL either way.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmFreeMemory0(p: *mut *mut c_void) {
    boundary("FwpmFreeMemory0", (), || {
        // SAFETY: the caller's pointer-to-pointer (checked non-null).
        let Some(slot) = (unsafe { p.as_mut() }) else {
            return;
        };
        if !slot.is_null() {
            ctx::with_host(|h| {
                let freed = h.sessions.lock().allocations.remove(&(*slot as usize));
                if freed.is_none() {
                    h.finding(Finding::BadHandle {
                        function: "FwpmFreeMemory0",
                    });
                }
            });
        }
        *slot = std::ptr::null_mut();
    });
}
