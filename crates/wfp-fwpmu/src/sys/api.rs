//! The exported functions of `fwpmu.h` (wfp-reference §11: sessions §11.1, transactions §11.2,
//! objects §11.4, net events §11.5). Every body runs inside [`boundary`]; handles are boxes
//! tagged with a magic word so a NULL or closed handle is refused with ERROR_INVALID_HANDLE.
#![allow(
    non_snake_case,
    reason = "the exported names are WFP's (FwpmEngineOpen0, ...)"
)]

use std::ffi::c_void;
use std::path::PathBuf;

use wfp_api::{FilterEnumRequest, SessionRequest};

use super::convert::{
    callout_c, callout_dto, conditions_dto, filter_c, filter_dto, key, key_ptr, provider_c,
    provider_dto, sublayer_c, sublayer_dto, wide,
};
use super::{
    boundary, free_block, into_block, Arena, CGuid, Callout0, CalloutEnumTemplate0, ClassifyDrop0,
    EventAddr, Filter0, FilterEnumTemplate0, NetEvent0, NetEventCallback, NetEventEnumTemplate0,
    NetEventHeader0, NetEventSubscription0, Provider0, Session0, Sublayer0, SublayerEnumTemplate0,
};
use crate::status::{INVALID_ENUMERATOR, INVALID_HANDLE, NULL_POINTER, SUCCESS};
use crate::{default_socket, fwpm_type, Cursor, EventFilter, Session, Subscription};
use wfp_api::NetEventDto;

const ENGINE_MAGIC: u64 = 0x5746_504D_454E_4731;
const ENUM_MAGIC: u64 = 0x5746_504D_454E_554D;
const SUB_MAGIC: u64 = 0x5746_504D_5355_4231;
const FWPM_SESSION_FLAG_DYNAMIC: u32 = 0x1;
const FWPM_TXN_READ_ONLY: u32 = 0x1;
const FWP_FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH: u32 = 0x1;
const FWP_FILTER_ENUM_FLAG_SORTED: u32 = 0x2;
const FWP_FILTER_ENUM_FLAG_BOOTTIME_ONLY: u32 = 0x4;
const FWP_FILTER_ENUM_FLAG_INCLUDE_BOOTTIME: u32 = 0x8;
const FWP_FILTER_ENUM_FLAG_INCLUDE_DISABLED: u32 = 0x10;

/// An engine handle.
struct Engine {
    magic: u64,
    session: Session,
}

/// An enumeration handle (one kind of object each).
enum Listing {
    Providers(Cursor<wfp_api::ProviderDto>),
    Sublayers(Cursor<wfp_api::SublayerView>),
    Callouts(Cursor<wfp_api::CalloutView>),
    Filters(Cursor<wfp_api::FilterView>),
    NetEvents(Cursor<NetEventDto>),
}

struct EnumHandle {
    magic: u64,
    listing: Listing,
}

struct SubHandle {
    magic: u64,
    subscription: Option<Subscription>,
}

/// The engine behind `h`.
///
/// # Safety
/// `h` is NULL or a handle FwpmEngineOpen0 returned and FwpmEngineClose0 has not closed.
unsafe fn engine<'a>(h: *mut c_void) -> Result<&'a mut Engine, u32> {
    // SAFETY: per the contract; the magic check refuses handles of another kind.
    match unsafe { h.cast::<Engine>().as_mut() } {
        Some(e) if e.magic == ENGINE_MAGIC => Ok(e),
        _ => Err(INVALID_HANDLE),
    }
}

fn result(r: Result<(), u32>) -> u32 {
    r.err().unwrap_or(SUCCESS)
}

/// # Safety
/// `server` is NULL or a NUL-terminated UTF-16 string; `session` NULL or a valid
/// `FWPM_SESSION0`; `out` writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmEngineOpen0(
    server: *const u16,
    _authn: u32,
    _identity: *const c_void,
    session: *const Session0,
    out: *mut *mut c_void,
) -> u32 {
    boundary(|| {
        if out.is_null() {
            return NULL_POINTER;
        }
        // SAFETY: per the contract.
        let server = unsafe { wide(server) };
        let socket = if server.is_empty() {
            default_socket()
        } else {
            PathBuf::from(server)
        };
        // SAFETY: per the contract.
        let req = unsafe { session.as_ref() }.map(|s| SessionRequest {
            key: key(s.key),
            // SAFETY: per the contract the display strings are NULL or terminated.
            name: unsafe { wide(s.display.name) },
            dynamic: s.flags & FWPM_SESSION_FLAG_DYNAMIC != 0,
            txn_wait_ms: u64::from(s.txn_wait_ms),
        });
        match Session::open(&socket, req.as_ref()) {
            Ok(session) => {
                let h = Box::into_raw(Box::new(Engine {
                    magic: ENGINE_MAGIC,
                    session,
                }));
                // SAFETY: `out` is writable (checked non-NULL; the contract).
                unsafe { *out = h.cast() };
                SUCCESS
            }
            Err(e) => e,
        }
    })
}

/// # Safety
/// `h` as for [`engine`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmEngineClose0(h: *mut c_void) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        if let Err(e) = unsafe { engine(h) } {
            return e;
        }
        // SAFETY: `h` is a live engine box (checked); clearing the magic first makes a second
        // close of the same pointer fail the check rather than free twice (while the memory is
        // not reused).
        unsafe {
            (*h.cast::<Engine>()).magic = 0;
            drop(Box::from_raw(h.cast::<Engine>()));
        }
        SUCCESS
    })
}

/// # Safety
/// `h` as for [`engine`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmTransactionBegin0(h: *mut c_void, flags: u32) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        let e = unsafe { engine(h) };
        result(e.and_then(|e| e.session.begin(flags & FWPM_TXN_READ_ONLY != 0)))
    })
}

/// # Safety
/// `h` as for [`engine`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmTransactionCommit0(h: *mut c_void) -> u32 {
    // SAFETY: per the contract.
    boundary(|| result(unsafe { engine(h) }.and_then(|e| e.session.commit())))
}

/// # Safety
/// `h` as for [`engine`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmTransactionAbort0(h: *mut c_void) -> u32 {
    // SAFETY: per the contract.
    boundary(|| result(unsafe { engine(h) }.and_then(|e| e.session.abort())))
}

/// # Safety
/// `h` as for [`engine`]; `p` NULL or a valid `FWPM_PROVIDER0`.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmProviderAdd0(
    h: *mut c_void,
    p: *const Provider0,
    _sd: *mut c_void,
) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        let (e, p) = match (unsafe { engine(h) }, unsafe { p.as_ref() }) {
            (Err(e), _) => return e,
            (_, None) => return NULL_POINTER,
            (Ok(e), Some(p)) => (e, p),
        };
        // SAFETY: per the contract.
        result(e.session.add_provider(&unsafe { provider_dto(p) }))
    })
}

/// # Safety
/// `h` as for [`engine`]; `s` NULL or a valid `FWPM_SUBLAYER0`.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmSubLayerAdd0(
    h: *mut c_void,
    s: *const Sublayer0,
    _sd: *mut c_void,
) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        let (e, s) = match (unsafe { engine(h) }, unsafe { s.as_ref() }) {
            (Err(e), _) => return e,
            (_, None) => return NULL_POINTER,
            (Ok(e), Some(s)) => (e, s),
        };
        // SAFETY: per the contract.
        result(e.session.add_sublayer(&unsafe { sublayer_dto(s) }))
    })
}

/// # Safety
/// `h` as for [`engine`]; `c` NULL or a valid `FWPM_CALLOUT0`; `id` NULL or writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmCalloutAdd0(
    h: *mut c_void,
    c: *const Callout0,
    _sd: *mut c_void,
    id: *mut u32,
) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        let (e, c) = match (unsafe { engine(h) }, unsafe { c.as_ref() }) {
            (Err(e), _) => return e,
            (_, None) => return NULL_POINTER,
            (Ok(e), Some(c)) => (e, c),
        };
        // SAFETY: per the contract.
        let dto = match unsafe { callout_dto(c) } {
            Ok(d) => d,
            Err(s) => return s,
        };
        match e.session.add_callout(&dto) {
            Ok(new_id) => {
                // SAFETY: `id` is NULL or writable (the contract).
                if let Some(out) = unsafe { id.as_mut() } {
                    *out = new_id;
                }
                SUCCESS
            }
            Err(s) => s,
        }
    })
}

/// # Safety
/// `h` as for [`engine`]; `f` NULL or a valid `FWPM_FILTER0`; `id` NULL or writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmFilterAdd0(
    h: *mut c_void,
    f: *const Filter0,
    _sd: *mut c_void,
    id: *mut u64,
) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        let (e, f) = match (unsafe { engine(h) }, unsafe { f.as_ref() }) {
            (Err(e), _) => return e,
            (_, None) => return NULL_POINTER,
            (Ok(e), Some(f)) => (e, f),
        };
        // SAFETY: per the contract.
        let dto = match unsafe { filter_dto(f) } {
            Ok(d) => d,
            Err(s) => return s,
        };
        match e.session.add_filter(&dto) {
            Ok(new_id) => {
                // SAFETY: `id` is NULL or writable (the contract).
                if let Some(out) = unsafe { id.as_mut() } {
                    *out = new_id;
                }
                SUCCESS
            }
            Err(s) => s,
        }
    })
}

/// # Safety
/// `h` as for [`engine`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmFilterDeleteById0(h: *mut c_void, id: u64) -> u32 {
    // SAFETY: per the contract.
    boundary(|| result(unsafe { engine(h) }.and_then(|e| e.session.delete_filter(id))))
}

/// # Safety
/// `h` as for [`engine`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmCalloutDeleteById0(h: *mut c_void, id: u32) -> u32 {
    // SAFETY: per the contract.
    boundary(|| result(unsafe { engine(h) }.and_then(|e| e.session.delete_callout_by_id(id))))
}

/// Deletes `kind` by the key at `k`.
///
/// # Safety
/// `h` as for [`engine`]; `k` NULL or a GUID.
unsafe fn delete_by_key(h: *mut c_void, k: *const CGuid, kind: &str) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        let (e, k) = match (unsafe { engine(h) }, unsafe { key_ptr(k) }) {
            (Err(e), _) => return e,
            (_, None) => return NULL_POINTER,
            (Ok(e), Some(k)) => (e, k),
        };
        result(match kind {
            "filters" => e.session.delete_filter_by_key(k),
            kind => e.session.delete_object(kind, k),
        })
    })
}

/// # Safety
/// `h` as for [`engine`]; `k` NULL or a GUID.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmFilterDeleteByKey0(h: *mut c_void, k: *const CGuid) -> u32 {
    // SAFETY: per the contract.
    unsafe { delete_by_key(h, k, "filters") }
}

/// # Safety
/// `h` as for [`engine`]; `k` NULL or a GUID.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmProviderDeleteByKey0(h: *mut c_void, k: *const CGuid) -> u32 {
    // SAFETY: per the contract.
    unsafe { delete_by_key(h, k, "providers") }
}

/// # Safety
/// `h` as for [`engine`]; `k` NULL or a GUID.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmSubLayerDeleteByKey0(h: *mut c_void, k: *const CGuid) -> u32 {
    // SAFETY: per the contract.
    unsafe { delete_by_key(h, k, "sublayers") }
}

/// # Safety
/// `h` as for [`engine`]; `k` NULL or a GUID.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmCalloutDeleteByKey0(h: *mut c_void, k: *const CGuid) -> u32 {
    // SAFETY: per the contract.
    unsafe { delete_by_key(h, k, "callouts") }
}

/// Stores a new enumeration handle in `out`.
///
/// # Safety
/// `out` NULL or writable.
unsafe fn new_enum(out: *mut *mut c_void, listing: Result<Listing, u32>) -> u32 {
    // SAFETY: per the contract.
    let Some(out) = (unsafe { out.as_mut() }) else {
        return NULL_POINTER;
    };
    match listing {
        Ok(listing) => {
            *out = Box::into_raw(Box::new(EnumHandle {
                magic: ENUM_MAGIC,
                listing,
            }))
            .cast();
            SUCCESS
        }
        Err(e) => e,
    }
}

/// The filter template as the API's enumeration request.
///
/// # Safety
/// `t` is a valid `FWPM_FILTER_ENUM_TEMPLATE0`.
unsafe fn filter_template(t: &FilterEnumTemplate0) -> Result<FilterEnumRequest, u32> {
    if !t.provider_context_template.is_null() {
        return Err(crate::status::NOT_IMPLEMENTED);
    }
    let enum_type = match t.enum_type {
        0 => wfp_api::FilterEnumTypeDto::FullyContained,
        1 => wfp_api::FilterEnumTypeDto::Overlapping,
        _ => return Err(INVALID_ENUMERATOR),
    };
    let layer = wfp_core::catalogue::layer_by_key(&t.layer_key.into()).map(|l| l.name.to_string());
    Ok(FilterEnumRequest {
        // SAFETY: per the contract.
        provider: unsafe { key_ptr(t.provider_key) },
        layer,
        action_mask: (t.action_mask != 0xFFFF_FFFF).then_some(t.action_mask),
        // SAFETY: per the contract.
        callout: unsafe { key_ptr(t.callout_key) },
        best_terminating_match: t.flags & FWP_FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH != 0,
        sorted: t.flags & FWP_FILTER_ENUM_FLAG_SORTED != 0,
        boottime_only: t.flags & FWP_FILTER_ENUM_FLAG_BOOTTIME_ONLY != 0,
        include_boottime: t.flags & FWP_FILTER_ENUM_FLAG_INCLUDE_BOOTTIME != 0,
        include_disabled: t.flags & FWP_FILTER_ENUM_FLAG_INCLUDE_DISABLED != 0,
        // SAFETY: per the contract the array holds `num_conditions` entries.
        conditions: unsafe { conditions_dto(t.num_conditions, t.conditions) }?,
        enum_type,
        ..FilterEnumRequest::default()
    })
}

/// # Safety
/// `h` as for [`engine`]; `t` NULL or a valid template; `out` writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmFilterCreateEnumHandle0(
    h: *mut c_void,
    t: *const FilterEnumTemplate0,
    out: *mut *mut c_void,
) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        let listing = unsafe { engine(h) }.and_then(|e| {
            // SAFETY: per the contract.
            let template = match unsafe { t.as_ref() } {
                // SAFETY: per the contract.
                Some(t) => Some(unsafe { filter_template(t) }?),
                None => None,
            };
            e.session
                .enum_filters(template.as_ref())
                .map(Listing::Filters)
        });
        // SAFETY: per the contract.
        unsafe { new_enum(out, listing) }
    })
}

/// # Safety
/// `h` as for [`engine`]; `out` writable (the template is not read: every provider).
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmProviderCreateEnumHandle0(
    h: *mut c_void,
    _t: *const c_void,
    out: *mut *mut c_void,
) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        let listing =
            unsafe { engine(h) }.and_then(|e| e.session.enum_providers().map(Listing::Providers));
        // SAFETY: per the contract.
        unsafe { new_enum(out, listing) }
    })
}

/// # Safety
/// `h` as for [`engine`]; `t` NULL or a valid template; `out` writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmSubLayerCreateEnumHandle0(
    h: *mut c_void,
    t: *const SublayerEnumTemplate0,
    out: *mut *mut c_void,
) -> u32 {
    boundary(|| {
        // SAFETY: per the contract `t` is NULL or a valid template.
        let provider = unsafe { t.as_ref() }.and_then(|t| unsafe { key_ptr(t.provider_key) });
        // SAFETY: per the contract.
        let listing = unsafe { engine(h) }
            .and_then(|e| e.session.enum_sublayers(provider).map(Listing::Sublayers));
        // SAFETY: per the contract.
        unsafe { new_enum(out, listing) }
    })
}

/// # Safety
/// `h` as for [`engine`]; `t` NULL or a valid template; `out` writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmCalloutCreateEnumHandle0(
    h: *mut c_void,
    t: *const CalloutEnumTemplate0,
    out: *mut *mut c_void,
) -> u32 {
    boundary(|| {
        // SAFETY: per the contract `t` is NULL or a valid template.
        let t = unsafe { t.as_ref() };
        // SAFETY: per the contract.
        let provider = t.and_then(|t| unsafe { key_ptr(t.provider_key) });
        let layer = t
            .filter(|t| t.layer_key != CGuid::default())
            .map(|t| {
                wfp_core::catalogue::layer_by_key(&t.layer_key.into())
                    .map(|l| l.name)
                    .ok_or(crate::status::LAYER_NOT_FOUND)
            })
            .transpose();
        let listing = match layer {
            // SAFETY: per the contract.
            Ok(layer) => unsafe { engine(h) }.and_then(|e| {
                e.session
                    .enum_callouts(provider, layer)
                    .map(Listing::Callouts)
            }),
            Err(s) => Err(s),
        };
        // SAFETY: per the contract.
        unsafe { new_enum(out, listing) }
    })
}

/// The enumeration behind `eh`.
///
/// # Safety
/// `eh` NULL or an enumeration handle not yet destroyed.
unsafe fn enum_handle<'a>(eh: *mut c_void) -> Result<&'a mut EnumHandle, u32> {
    // SAFETY: per the contract; the magic check refuses other handles.
    match unsafe { eh.cast::<EnumHandle>().as_mut() } {
        Some(e) if e.magic == ENUM_MAGIC => Ok(e),
        _ => Err(INVALID_ENUMERATOR),
    }
}

/// The next `n` entries of the enumeration as a block of C objects.
fn next_block(listing: &mut Listing, n: usize) -> (*mut *mut c_void, u32) {
    let mut arena = Arena::default();
    let entries: Vec<*mut c_void> = match listing {
        Listing::Providers(c) => c
            .take(n)
            .iter()
            .map(|p| provider_c(p, &mut arena).cast())
            .collect(),
        Listing::Sublayers(c) => c
            .take(n)
            .iter()
            .map(|s| sublayer_c(s, &mut arena).cast())
            .collect(),
        Listing::Callouts(c) => c
            .take(n)
            .iter()
            .map(|v| callout_c(v, &mut arena).cast())
            .collect(),
        Listing::Filters(c) => c
            .take(n)
            .iter()
            .map(|f| filter_c(f, &mut arena).cast())
            .collect(),
        Listing::NetEvents(c) => c
            .take(n)
            .iter()
            .filter_map(|e| net_event_c(e, &mut arena))
            .map(<*mut NetEvent0>::cast)
            .collect(),
    };
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    if entries.is_empty() {
        return (std::ptr::null_mut(), 0);
    }
    (into_block(arena, entries), count)
}

/// FwpmXxxEnum0 for every kind: `entries` gets a block (free it with FwpmFreeMemory0).
///
/// # Safety
/// `h`, `eh` as for [`engine`] / [`enum_handle`]; `entries`, `returned` writable.
unsafe fn enumerate(
    h: *mut c_void,
    eh: *mut c_void,
    n: u32,
    entries: *mut *mut *mut c_void,
    returned: *mut u32,
) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        if let Err(e) = unsafe { engine(h) } {
            return e;
        }
        // SAFETY: per the contract.
        let (eh, entries, returned) = match (
            unsafe { enum_handle(eh) },
            unsafe { entries.as_mut() },
            unsafe { returned.as_mut() },
        ) {
            (Err(e), _, _) => return e,
            (_, None, _) | (_, _, None) => return NULL_POINTER,
            (Ok(eh), Some(en), Some(r)) => (eh, en, r),
        };
        let (block, count) = next_block(&mut eh.listing, usize::try_from(n).unwrap_or(usize::MAX));
        *entries = block;
        *returned = count;
        SUCCESS
    })
}

/// # Safety
/// As for [`enumerate`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmFilterEnum0(
    h: *mut c_void,
    eh: *mut c_void,
    n: u32,
    entries: *mut *mut *mut Filter0,
    returned: *mut u32,
) -> u32 {
    // SAFETY: per the contract.
    unsafe { enumerate(h, eh, n, entries.cast(), returned) }
}

/// # Safety
/// As for [`enumerate`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmProviderEnum0(
    h: *mut c_void,
    eh: *mut c_void,
    n: u32,
    entries: *mut *mut *mut Provider0,
    returned: *mut u32,
) -> u32 {
    // SAFETY: per the contract.
    unsafe { enumerate(h, eh, n, entries.cast(), returned) }
}

/// # Safety
/// As for [`enumerate`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmSubLayerEnum0(
    h: *mut c_void,
    eh: *mut c_void,
    n: u32,
    entries: *mut *mut *mut Sublayer0,
    returned: *mut u32,
) -> u32 {
    // SAFETY: per the contract.
    unsafe { enumerate(h, eh, n, entries.cast(), returned) }
}

/// # Safety
/// As for [`enumerate`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmCalloutEnum0(
    h: *mut c_void,
    eh: *mut c_void,
    n: u32,
    entries: *mut *mut *mut Callout0,
    returned: *mut u32,
) -> u32 {
    // SAFETY: per the contract.
    unsafe { enumerate(h, eh, n, entries.cast(), returned) }
}

/// FwpmXxxDestroyEnumHandle0 for every kind.
///
/// # Safety
/// As for [`enum_handle`].
unsafe fn destroy_enum(h: *mut c_void, eh: *mut c_void) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        if let Err(e) = unsafe { engine(h) } {
            return e;
        }
        // SAFETY: per the contract.
        if let Err(e) = unsafe { enum_handle(eh) } {
            return e;
        }
        // SAFETY: a live enumeration box (checked); magic cleared before it is freed.
        unsafe {
            (*eh.cast::<EnumHandle>()).magic = 0;
            drop(Box::from_raw(eh.cast::<EnumHandle>()));
        }
        SUCCESS
    })
}

/// # Safety
/// As for [`destroy_enum`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmFilterDestroyEnumHandle0(
    h: *mut c_void,
    eh: *mut c_void,
) -> u32 {
    // SAFETY: per the contract.
    unsafe { destroy_enum(h, eh) }
}

/// # Safety
/// As for [`destroy_enum`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmProviderDestroyEnumHandle0(
    h: *mut c_void,
    eh: *mut c_void,
) -> u32 {
    // SAFETY: per the contract.
    unsafe { destroy_enum(h, eh) }
}

/// # Safety
/// As for [`destroy_enum`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmSubLayerDestroyEnumHandle0(
    h: *mut c_void,
    eh: *mut c_void,
) -> u32 {
    // SAFETY: per the contract.
    unsafe { destroy_enum(h, eh) }
}

/// # Safety
/// As for [`destroy_enum`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmCalloutDestroyEnumHandle0(
    h: *mut c_void,
    eh: *mut c_void,
) -> u32 {
    // SAFETY: per the contract.
    unsafe { destroy_enum(h, eh) }
}

/// # Safety
/// `p` NULL or a pointer to a pointer this library returned (or NULL).
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmFreeMemory0(p: *mut *mut c_void) {
    boundary(|| {
        // SAFETY: per the contract.
        if let Some(slot) = unsafe { p.as_mut() } {
            // SAFETY: per the contract `*slot` is NULL or a block of ours.
            if unsafe { free_block(*slot) } {
                *slot = std::ptr::null_mut();
            }
        }
        SUCCESS
    });
}

/// The C callback and its context, moved to the reader thread.
struct Callback {
    f: unsafe extern "C" fn(*mut c_void, *const NetEvent0),
    context: *mut c_void,
}

// SAFETY: the context pointer is the caller's to make thread-safe, as with WFP's own callback
// (which runs on an RPC thread); this library only passes it back.
unsafe impl Send for Callback {}

/// FILETIME (100 ns since 1601) of Unix milliseconds.
fn filetime(ms: u64) -> u64 {
    ms.saturating_add(11_644_473_600_000).saturating_mul(10_000)
}

/// The header address of `a` (flags bit `bit` and the IP version when present).
fn event_addr(
    a: Option<std::net::IpAddr>,
    bit: u32,
    flags: &mut u32,
    ip_version: &mut u32,
) -> EventAddr {
    match a {
        Some(std::net::IpAddr::V4(a)) => {
            *flags |= bit | 0x100;
            *ip_version = 0;
            EventAddr { v4: u32::from(a) }
        }
        Some(std::net::IpAddr::V6(a)) => {
            *flags |= bit | 0x100;
            *ip_version = 1;
            EventAddr { v6: a.octets() }
        }
        None => EventAddr { v6: [0; 16] },
    }
}

/// The event as `FWPM_NET_EVENT0` (+ its classify record and app id) kept in `arena`; `None`
/// for kinds without an FWPM_NET_EVENT_TYPE (§11.5).
fn net_event_c(e: &NetEventDto, arena: &mut Arena) -> Option<*mut NetEvent0> {
    let event_type = fwpm_type(e)?;
    let (mut flags, mut ip_version) = (0u32, 2u32);
    let local = event_addr(e.local_addr, 0x2, &mut flags, &mut ip_version);
    let remote = event_addr(e.remote_addr, 0x4, &mut flags, &mut ip_version);
    let app_id = match e.app_id.as_deref() {
        Some(app) => {
            let bytes: Vec<u8> = app
                .encode_utf16()
                .chain([0])
                .flat_map(u16::to_le_bytes)
                .collect();
            super::ByteBlob {
                size: u32::try_from(bytes.len()).unwrap_or(0),
                data: arena.array(bytes),
            }
        }
        None => super::ByteBlob {
            size: 0,
            data: std::ptr::null_mut(),
        },
    };
    let classify = arena.keep(ClassifyDrop0 {
        filter_id: e.filter_id.unwrap_or(0),
        layer_id: e.layer_id,
    });
    let ft = filetime(e.time_ms.unwrap_or(0));
    let header = NetEventHeader0 {
        time_low: ft as u32,
        time_high: (ft >> 32) as u32,
        flags: flags
            | u32::from(e.protocol.is_some())
            | if e.local_port.is_some() { 0x8 } else { 0 }
            | if e.remote_port.is_some() { 0x10 } else { 0 }
            | if e.app_id.is_some() { 0x20 } else { 0 },
        ip_version,
        ip_protocol: e.protocol.unwrap_or(0),
        local,
        remote,
        local_port: e.local_port.unwrap_or(0),
        remote_port: e.remote_port.unwrap_or(0),
        scope_id: 0,
        app_id,
        user_id: std::ptr::null_mut(),
    };
    Some(arena.keep(NetEvent0 {
        header,
        event_type,
        classify,
    }))
}

/// The event as `FWPM_NET_EVENT0`, handed to `cb` (kinds without a WFP number are skipped).
fn deliver(cb: &Callback, e: &NetEventDto) {
    let mut arena = Arena::default();
    let Some(event) = net_event_c(e, &mut arena) else {
        return;
    };
    // SAFETY: `event` and what it points to live in `arena` until the callback returns (WFP's
    // contract: the callback copies what it keeps).
    unsafe { (cb.f)(cb.context, event) };
}

/// FILETIME (100 ns ticks since 1601) as Unix milliseconds; 0 means "no bound".
fn filetime_ms(low: u32, high: u32) -> Option<u64> {
    const UNIX_EPOCH_MS: u64 = 11_644_473_600_000;
    let ticks = (u64::from(high) << 32) | u64::from(low);
    (ticks != 0).then(|| (ticks / 10_000).saturating_sub(UNIX_EPOCH_MS))
}

/// The events an `FWPM_NET_EVENT_ENUM_TEMPLATE0` asks for (NULL: every event), for
/// enumeration handles and subscriptions alike (§11.5).
///
/// # Safety
/// `t` NULL or a valid template.
unsafe fn template_filter(t: *const NetEventEnumTemplate0) -> Result<EventFilter, u32> {
    // SAFETY: per the contract.
    let Some(t) = (unsafe { t.as_ref() }) else {
        return Ok(EventFilter::default());
    };
    // SAFETY: per the contract the array holds `num_conditions` entries.
    let conditions = unsafe { conditions_dto(t.num_conditions, t.conditions) }?;
    EventFilter::from_conditions(
        filetime_ms(t.start_low, t.start_high),
        filetime_ms(t.end_low, t.end_high),
        &conditions,
    )
}

/// The events a subscription asks for: its `enumTemplate` (NULL: every event).
///
/// # Safety
/// `s` NULL or a valid `FWPM_NET_EVENT_SUBSCRIPTION0` whose template, when non-NULL, is valid.
unsafe fn subscription_filter(s: *const NetEventSubscription0) -> Result<EventFilter, u32> {
    // SAFETY: per the contract.
    let template = unsafe { s.as_ref() }.map_or(std::ptr::null(), |s| s.enum_template.cast_const());
    // SAFETY: per the contract.
    unsafe { template_filter(template) }
}

/// # Safety
/// `h` as for [`engine`]; `t` NULL or a valid template; `out` writable. A snapshot of the
/// daemon's stored CLASSIFY_DROP / CLASSIFY_ALLOW events the template accepts (the rules of
/// [`FwpmNetEventSubscribe0`]'s template).
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmNetEventCreateEnumHandle0(
    h: *mut c_void,
    t: *const NetEventEnumTemplate0,
    out: *mut *mut c_void,
) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        let listing = unsafe { engine(h) }.and_then(|e| {
            // SAFETY: per the contract.
            let filter = unsafe { template_filter(t) }?;
            e.session.enum_net_events(&filter).map(Listing::NetEvents)
        });
        // SAFETY: per the contract.
        unsafe { new_enum(out, listing) }
    })
}

/// # Safety
/// As for [`enumerate`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmNetEventEnum0(
    h: *mut c_void,
    eh: *mut c_void,
    n: u32,
    entries: *mut *mut *mut NetEvent0,
    returned: *mut u32,
) -> u32 {
    // SAFETY: per the contract.
    unsafe { enumerate(h, eh, n, entries.cast(), returned) }
}

/// # Safety
/// As for [`destroy_enum`].
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmNetEventDestroyEnumHandle0(
    h: *mut c_void,
    eh: *mut c_void,
) -> u32 {
    // SAFETY: per the contract.
    unsafe { destroy_enum(h, eh) }
}

/// # Safety
/// `h` as for [`engine`]; `subscription` NULL or valid; `callback` a function callable from
/// another thread with `context`; `out` writable. The subscription's `enumTemplate` (time
/// window; EQUAL conditions on IP_PROTOCOL, IP_LOCAL/REMOTE_ADDRESS, IP_LOCAL/REMOTE_PORT)
/// selects the events delivered.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmNetEventSubscribe0(
    h: *mut c_void,
    subscription: *const NetEventSubscription0,
    callback: NetEventCallback,
    context: *mut c_void,
    out: *mut *mut c_void,
) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        let e = match unsafe { engine(h) } {
            Ok(e) => e,
            Err(s) => return s,
        };
        let (Some(f), false) = (callback, out.is_null()) else {
            return NULL_POINTER;
        };
        // SAFETY: per the contract.
        let filter = match unsafe { subscription_filter(subscription) } {
            Ok(f) => f,
            Err(s) => return s,
        };
        let cb = Callback { f, context };
        let socket = e.session.socket().to_path_buf();
        match Subscription::start_filtered(&socket, filter, move |event| deliver(&cb, &event)) {
            Ok(s) => {
                let sub = Box::new(SubHandle {
                    magic: SUB_MAGIC,
                    subscription: Some(s),
                });
                // SAFETY: `out` is writable (checked non-NULL; the contract).
                unsafe { *out = Box::into_raw(sub).cast() };
                SUCCESS
            }
            Err(s) => s,
        }
    })
}

/// # Safety
/// `h` as for [`engine`]; `sub` NULL or a subscription handle not yet unsubscribed. No callback
/// runs after this returns.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpmNetEventUnsubscribe0(h: *mut c_void, sub: *mut c_void) -> u32 {
    boundary(|| {
        // SAFETY: per the contract.
        if let Err(e) = unsafe { engine(h) } {
            return e;
        }
        // SAFETY: per the contract; the magic check refuses other handles.
        let Some(s) =
            (unsafe { sub.cast::<SubHandle>().as_mut() }).filter(|s| s.magic == SUB_MAGIC)
        else {
            return INVALID_HANDLE;
        };
        s.magic = 0;
        if let Some(running) = s.subscription.take() {
            running.stop();
        }
        // SAFETY: the box FwpmNetEventSubscribe0 made (checked), no longer used.
        drop(unsafe { Box::from_raw(sub.cast::<SubHandle>()) });
        SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetime_counts_from_1601() {
        assert_eq!(filetime(0), 116_444_736_000_000_000);
    }
}
