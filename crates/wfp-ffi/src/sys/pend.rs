//! Asynchronous classification from C (wfp-reference §10.1–§10.3): FwpsPendOperation0 /
//! FwpsCompleteOperation0, classify handles, FwpsPendClassify0 / FwpsCompleteClassify0, and the
//! writable layer data of the redirect layers (FWPS_CONNECT_REQUEST0 / FWPS_BIND_REQUEST0).
//! Each is the engine's own machinery ([`wfp_core::Engine::pend_operation`] and friends); this
//! module converts handles and structures only.

use std::ffi::c_void;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use wfp_core::pend::{ClassifyHandle, CompletionContext, CompletionHandle};
use wfp_core::redirect::{RedirectContextOwner, RedirectHandle, RedirectRequest, RequestKind};
use wfp_core::{ActionType, ClassifyOut, ClassifyOutFlags, FilterId, Rights, Status};

use super::ctx;
use super::invocation;
use super::nbl::{list_bytes, NblState};
use super::types::{FwpsBindRequest0, FwpsClassifyOut0, FwpsConnectRequest0, SockaddrStorage};
use super::{boundary, nt, NtStatus, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 23;

/// Writable layer data handed out by FwpsAcquireWritableLayerDataPointer0, until applied.
pub(crate) struct Writable {
    handle: ClassifyHandle,
    filter: FilterId,
    original: RedirectRequest,
    /// The C image and its previousVersion chain (heap entries that never move while recorded).
    connect: Vec<FwpsConnectRequest0>,
    bind: Vec<FwpsBindRequest0>,
}

pub(crate) fn out_from_c(c: &FwpsClassifyOut0) -> ClassifyOut {
    ClassifyOut {
        action_type: ActionType(c.action_type),
        out_context: c.out_context,
        filter_id: c.filter_id,
        rights: Rights(c.rights),
        flags: ClassifyOutFlags(c.flags),
    }
}

fn out_to_c(o: &ClassifyOut, c: &mut FwpsClassifyOut0) {
    c.action_type = o.action_type.0;
    c.rights = o.rights.0;
    c.flags = o.flags.0;
}

/// `SOCKADDR_STORAGE` for an address and port (SOCKADDR_IN / SOCKADDR_IN6, port in network order).
pub(crate) fn sockaddr_to_c(a: SocketAddr) -> SockaddrStorage {
    let mut s = SockaddrStorage { bytes: [0; 128] };
    let port = a.port().to_be_bytes();
    match a.ip() {
        IpAddr::V4(v4) => {
            s.bytes[0..2].copy_from_slice(&AF_INET.to_le_bytes());
            s.bytes[2..4].copy_from_slice(&port);
            s.bytes[4..8].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            s.bytes[0..2].copy_from_slice(&AF_INET6.to_le_bytes());
            s.bytes[2..4].copy_from_slice(&port);
            s.bytes[8..24].copy_from_slice(&v6.octets());
        }
    }
    s
}

/// The address in a `SOCKADDR_STORAGE`; `None` for another family.
pub(crate) fn sockaddr_from_c(s: &SockaddrStorage) -> Option<SocketAddr> {
    let b = &s.bytes;
    let family = u16::from_le_bytes([b[0], b[1]]);
    let port = u16::from_be_bytes([b[2], b[3]]);
    match family {
        AF_INET => Some(SocketAddr::new(
            Ipv4Addr::new(b[4], b[5], b[6], b[7]).into(),
            port,
        )),
        AF_INET6 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[8..24]);
            Some(SocketAddr::new(Ipv6Addr::from(o).into(), port))
        }
        _ => None,
    }
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsPendOperation0(
    completion_handle: *mut c_void,
    completion_context: *mut *mut c_void,
) -> NtStatus {
    boundary("FwpsPendOperation0", STATUS_INVALID_PARAMETER, || {
        if completion_context.is_null() {
            return nt(Status::FWP_NULL_POINTER);
        }
        ctx::with_host(|h| {
            match h
                .engine
                .pend_operation(CompletionHandle(completion_handle as u64))
            {
                Ok(c) => {
                    // Remembered so the driver's unload completes it if the driver does not,
                    // with its flow (a completion from a driver thread waits for its
                    // reauthorization).
                    let flow = invocation::with_current(|inv| inv.ctx.flow()).flatten();
                    let mut st = h.asyncs.lock();
                    st.pended_operations.insert(c.0, ctx::current_driver());
                    if let Some(f) = flow {
                        st.pended_flows.insert(c.0, f);
                    }
                    drop(st);
                    // SAFETY: the caller's out-pointer (checked non-null).
                    unsafe { *completion_context = c.0 as *mut c_void };
                    super::STATUS_SUCCESS
                }
                Err(s) => nt(s),
            }
        })
        .unwrap_or(STATUS_INVALID_DEVICE_STATE)
    })
}

#[no_mangle]
pub(crate) extern "C" fn FwpsCompleteOperation0(
    completion_context: *mut c_void,
    nbl: *mut super::types::NetBufferList,
) {
    boundary("FwpsCompleteOperation0", (), || {
        ctx::with_host(|h| {
            // The optional list travels with the completion: the engine owns its bytes from here
            // (the data path frees the ledger packet); the runtime's list goes now.
            let packet = if nbl.is_null() {
                None
            } else {
                let taken = {
                    let mut st = h.asyncs.lock();
                    match st.nbls.get(&(nbl as usize)) {
                        Some((_, r)) if r.state == NblState::Held => {
                            st.nbls.remove(&(nbl as usize))
                        }
                        _ => None,
                    }
                };
                match taken {
                    Some((b, r)) => Some(r.packet.unwrap_or_else(|| {
                        // SAFETY: a list this runtime built (our buffer or the caller's MDLs).
                        h.engine
                            .allocate_packet(unsafe { list_bytes(&b.nbl, usize::MAX) })
                    })),
                    None => {
                        h.finding(crate::verifier::Finding::Assertion {
                            message: "FwpsCompleteOperation0: the list is not one the driver holds"
                                .into(),
                        });
                        None
                    }
                }
            };
            let key = completion_context as u64;
            let recorded = h.asyncs.lock().pended_operations.contains_key(&key);
            let waiter = sync_reauth_waiter(h, key, recorded);
            let s = complete_when_pended(
                h,
                CompletionContext(completion_context as u64),
                packet,
                recorded,
            );
            // Forgotten only now: DriverHost::settle waits while it is recorded — and, once the
            // waiter is armed (the completion queued), no longer: the data path must run the
            // reauthorization this thread waits for.
            {
                let mut st = h.asyncs.lock();
                if let Some(w) = waiter.and_then(|f| st.reauth_waiters.get_mut(&f)) {
                    w.armed = true;
                }
                st.pended_operations.remove(&key);
            }
            if let Some(flow) = waiter {
                wait_for_reauthorization(h, flow, s == Status::SUCCESS);
            }
            if s != Status::SUCCESS {
                h.finding(crate::verifier::Finding::Assertion {
                    message: format!(
                        "FwpsCompleteOperation0: completion context {:#x} is not pended ({:#010x})",
                        completion_context as u64, s.0
                    ),
                });
            }
        });
    });
}

/// §10.1 / §6: on Windows the reauthorization a completed ALE operation causes runs inside
/// FwpsCompleteOperation0, on the calling thread and processor — the WDK inspect sample puts the
/// connection on a per-processor "classified" list, completes, and takes it off right after; its
/// reauthorization classify looks for it there. Here the data path runs that classify on its own
/// thread, so a driver thread (not a classifyFn) completing an operation it pended waits until
/// the flow's reauthorization classify returned (it runs as on the completer's processor, see
/// callout.rs), bounded by `HostConfig::unload_timeout` capped at 2 s. Registers the waiter;
/// returns the flow to wait for.
fn sync_reauth_waiter(h: &crate::host::HostInner, context: u64, recorded: bool) -> Option<u64> {
    let mut st = h.asyncs.lock();
    let flow = st.pended_flows.remove(&context)?;
    if !recorded || !invocation::current_address().is_null() {
        return None;
    }
    let processor = super::dpc::current_processor();
    let waiter = super::nbl::ReauthWaiter {
        processor,
        armed: false,
        done: false,
    };
    if st.reauth_waiters.insert(flow, waiter).is_none() {
        h.reauth_waiting.fetch_add(1, Ordering::SeqCst);
    }
    Some(flow)
}

/// Waits (bounded) until the reauthorization classify of `flow` returned, then forgets the
/// waiter. Not at all when the completion failed.
fn wait_for_reauthorization(h: &crate::host::HostInner, flow: u64, completed: bool) {
    let bound = h
        .config
        .unload_timeout
        .min(std::time::Duration::from_secs(2));
    let deadline = std::time::Instant::now() + bound;
    let mut pause = std::time::Duration::from_micros(20);
    while completed && std::time::Instant::now() < deadline {
        if h.asyncs
            .lock()
            .reauth_waiters
            .get(&flow)
            .is_none_or(|w| w.done)
        {
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(1));
    }
    if h.asyncs.lock().reauth_waiters.remove(&flow).is_some() {
        h.reauth_waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Completes `context`. A driver thread may complete an operation while the classifyFn that
/// pended it is still running on another thread (the WDK "inspect" sample queues the work before
/// returning): the engine knows the operation as pended only once that classify returned, so a
/// completion of an operation this runtime saw pended is retried, bounded by
/// [`crate::HostConfig::unload_timeout`], until it does. Inside a classifyFn (this thread's own
/// classify cannot return meanwhile) it is not retried.
fn complete_when_pended(
    h: &crate::host::HostInner,
    context: CompletionContext,
    packet: Option<wfp_core::inject::PacketId>,
    recorded: bool,
) -> Status {
    let deadline = std::time::Instant::now() + h.config.unload_timeout;
    let retry = recorded && invocation::current_address().is_null();
    let mut pause = std::time::Duration::from_micros(20);
    loop {
        let s = h.engine.complete_operation(context, packet);
        if s != Status::FWP_NOT_FOUND || !retry || std::time::Instant::now() >= deadline {
            return s;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(1));
    }
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsAcquireClassifyHandle0(
    classify_context: *mut c_void,
    _flags: u32,
    classify_handle: *mut u64,
) -> NtStatus {
    boundary(
        "FwpsAcquireClassifyHandle0",
        STATUS_INVALID_PARAMETER,
        || {
            if classify_handle.is_null()
                || classify_context.is_null()
                || classify_context.cast_const() != invocation::current_address()
            {
                return STATUS_INVALID_PARAMETER;
            }
            match invocation::with_current(|inv| inv.ctx.acquire_classify_handle()) {
                Some(h) => {
                    // SAFETY: the caller's out-pointer (checked non-null).
                    unsafe { *classify_handle = h.0 };
                    super::STATUS_SUCCESS
                }
                None => STATUS_INVALID_PARAMETER,
            }
        },
    )
}

#[no_mangle]
pub(crate) extern "C" fn FwpsReleaseClassifyHandle0(classify_handle: u64) {
    boundary("FwpsReleaseClassifyHandle0", (), || {
        ctx::with_host(|h| {
            let s = h
                .engine
                .release_classify_handle(ClassifyHandle(classify_handle));
            if s != Status::SUCCESS {
                h.finding(crate::verifier::Finding::DoubleFree {
                    what: "FwpsReleaseClassifyHandle0",
                    address: classify_handle as usize,
                });
            }
        });
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsPendClassify0(
    classify_handle: u64,
    filter_id: u64,
    _flags: u32,
    classify_out: *mut FwpsClassifyOut0,
) -> NtStatus {
    boundary("FwpsPendClassify0", STATUS_INVALID_PARAMETER, || {
        // SAFETY: the caller's classifyOut (checked non-null).
        let Some(c) = (unsafe { classify_out.as_mut() }) else {
            return nt(Status::FWP_NULL_POINTER);
        };
        ctx::with_host(|h| {
            let mut out = out_from_c(c);
            let s = h.engine.pend_classify(
                ClassifyHandle(classify_handle),
                FilterId(filter_id),
                &mut out,
            );
            out_to_c(&out, c);
            if s == Status::SUCCESS {
                h.asyncs
                    .lock()
                    .pended_classifies
                    .insert(classify_handle, ctx::current_driver());
            }
            nt(s)
        })
        .unwrap_or(STATUS_INVALID_DEVICE_STATE)
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsCompleteClassify0(
    classify_handle: u64,
    _flags: u32,
    classify_out: *const FwpsClassifyOut0,
) {
    boundary("FwpsCompleteClassify0", (), || {
        // SAFETY: the optional classifyOut (NULL = reauthorize).
        let decision = unsafe { classify_out.as_ref() }.map(out_from_c);
        ctx::with_host(|h| {
            h.asyncs.lock().pended_classifies.remove(&classify_handle);
            let s = h
                .engine
                .complete_classify(ClassifyHandle(classify_handle), decision);
            if s != Status::SUCCESS {
                h.finding(crate::verifier::Finding::Assertion {
                    message: format!(
                        "FwpsCompleteClassify0: classify handle {classify_handle} is not pended"
                    ),
                });
            }
        });
    });
}

/// The C image of a connect request and its previous versions; the head is the first box.
fn connect_image(r: &RedirectRequest) -> Vec<FwpsConnectRequest0> {
    let mut chain = Vec::new();
    let mut cur = Some(r);
    while let Some(req) = cur {
        chain.push(FwpsConnectRequest0 {
            local_address_and_port: sockaddr_to_c(req.local),
            remote_address_and_port: req
                .remote
                .map_or(SockaddrStorage { bytes: [0; 128] }, sockaddr_to_c),
            port_reservation_token: req.port_reservation_token,
            local_redirect_target_pid: req.local_redirect_target_pid,
            previous_version: std::ptr::null_mut(),
            modifier_filter_id: req.modifier_filter_id,
            local_redirect_handle: req.redirect_handle.map_or(0, |h| h.0) as *mut c_void,
            local_redirect_context: req.redirect_context as *mut c_void,
            local_redirect_context_size: 0,
        });
        cur = req.previous_version.as_deref();
    }
    link(&mut chain, |b, p| b.previous_version = p);
    chain
}

fn bind_image(r: &RedirectRequest) -> Vec<FwpsBindRequest0> {
    let mut chain = Vec::new();
    let mut cur = Some(r);
    while let Some(req) = cur {
        chain.push(FwpsBindRequest0 {
            local_address_and_port: sockaddr_to_c(req.local),
            port_reservation_token: req.port_reservation_token,
            previous_version: std::ptr::null_mut(),
            modifier_filter_id: req.modifier_filter_id,
        });
        cur = req.previous_version.as_deref();
    }
    link(&mut chain, |b, p| b.previous_version = p);
    chain
}

/// Links each entry to the next one (its previous version). The vector is never grown after
/// this, so the addresses stay valid while it lives.
fn link<T>(chain: &mut [T], set: impl Fn(&mut T, *mut T)) {
    for i in 0..chain.len().saturating_sub(1) {
        let next: *mut T = &mut chain[i + 1];
        set(&mut chain[i], next);
    }
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsAcquireWritableLayerDataPointer0(
    classify_handle: u64,
    filter_id: u64,
    _flags: u32,
    writable: *mut *mut c_void,
    classify_out: *mut FwpsClassifyOut0,
) -> NtStatus {
    boundary(
        "FwpsAcquireWritableLayerDataPointer0",
        STATUS_INVALID_PARAMETER,
        || {
            // SAFETY: the caller's classifyOut (checked non-null).
            let Some(c) = (unsafe { classify_out.as_mut() }) else {
                return nt(Status::FWP_NULL_POINTER);
            };
            if writable.is_null() {
                return nt(Status::FWP_NULL_POINTER);
            }
            ctx::with_host(|h| {
                let handle = ClassifyHandle(classify_handle);
                let filter = FilterId(filter_id);
                let mut out = out_from_c(c);
                let req = match h
                    .engine
                    .acquire_writable_layer_data(handle, filter, &mut out)
                {
                    Ok(r) => r,
                    Err(s) => return nt(s),
                };
                out_to_c(&out, c);
                let mut w = Writable {
                    handle,
                    filter,
                    connect: Vec::new(),
                    bind: Vec::new(),
                    original: req,
                };
                let addr: *mut c_void = match w.original.kind {
                    RequestKind::Connect => {
                        w.connect = connect_image(&w.original);
                        std::ptr::from_mut::<FwpsConnectRequest0>(&mut w.connect[0]).cast()
                    }
                    RequestKind::Bind => {
                        w.bind = bind_image(&w.original);
                        std::ptr::from_mut::<FwpsBindRequest0>(&mut w.bind[0]).cast()
                    }
                };
                h.asyncs.lock().writable.insert(addr as usize, w);
                // SAFETY: the caller's out-pointer (checked non-null).
                unsafe { *writable = addr };
                super::STATUS_SUCCESS
            })
            .unwrap_or(STATUS_INVALID_DEVICE_STATE)
        },
    )
}

/// The request as the driver left it in the C image.
fn modified_request(w: &Writable) -> RedirectRequest {
    let mut req = w.original.clone();
    if let Some(c) = w.connect.first() {
        if let Some(a) = sockaddr_from_c(&c.local_address_and_port) {
            req.local = a;
        }
        req.remote = sockaddr_from_c(&c.remote_address_and_port).or(req.remote);
        req.local_redirect_target_pid = c.local_redirect_target_pid;
        req.redirect_handle = (!c.local_redirect_handle.is_null())
            .then_some(RedirectHandle(c.local_redirect_handle as u64));
        req.redirect_context = c.local_redirect_context as u64;
    }
    if let Some(b) = w.bind.first() {
        if let Some(a) = sockaddr_from_c(&b.local_address_and_port) {
            req.local = a;
        }
    }
    req
}

#[no_mangle]
pub(crate) extern "C" fn FwpsApplyModifiedLayerData0(
    classify_handle: u64,
    modified: *mut c_void,
    flags: u32,
) {
    boundary("FwpsApplyModifiedLayerData0", (), || {
        ctx::with_host(|h| {
            let w = h.asyncs.lock().writable.remove(&(modified as usize));
            let Some(w) = w else {
                h.finding(crate::verifier::Finding::DoubleFree {
                    what: "FwpsApplyModifiedLayerData0",
                    address: modified as usize,
                });
                return;
            };
            if w.handle.0 != classify_handle {
                h.finding(crate::verifier::Finding::Assertion {
                    message: format!(
                        "FwpsApplyModifiedLayerData0: data acquired on classify handle {} applied on {classify_handle}",
                        w.handle.0
                    ),
                });
            }
            let mut req = modified_request(&w);
            if req.redirect_context != 0 && req.redirect_context != w.original.redirect_context {
                req.redirect_context_owner = context_owner(h, req.redirect_context);
            }
            let s = h
                .engine
                .apply_modified_layer_data(w.handle, w.filter, req, flags);
            if s != Status::SUCCESS && s != Status::PENDING {
                h.finding(crate::verifier::Finding::Assertion {
                    message: format!("FwpsApplyModifiedLayerData0 failed: {:#010x}", s.0),
                });
            }
        });
    });
}

/// `localRedirectContext` (wfp-reference §10.3; WDK: "The filter engine frees this memory"): the
/// pool block goes from the driver to the engine — out of the driver's pool accounting (so it is
/// never reported as leaked) — and is freed with ExFreePool semantics when the engine drops it
/// (its redirect record destroyed). A pointer the pool never handed out is a finding and stays
/// the driver's (an opaque value the engine never frees).
fn context_owner(h: &crate::host::HostInner, context: u64) -> Option<Arc<RedirectContextOwner>> {
    if h.tracker.lock().pool.remove(&(context as usize)).is_none() {
        h.finding(crate::verifier::Finding::Assertion {
            message: format!(
                "FwpsApplyModifiedLayerData0: localRedirectContext {context:#x} is not memory from ExAllocatePool*"
            ),
        });
        return None;
    }
    Some(Arc::new(RedirectContextOwner::new(move || {
        // SAFETY: a live pool block (posix_memalign) taken out of the tracker above, so nothing
        // else frees it; the engine runs this once, when it drops the owner.
        unsafe { libc::free(context as usize as *mut c_void) };
    })))
}

/// Unload protocol (wfp-reference §5.3, §10.1–§10.2): the operations and classifies `driver`
/// pended and never completed. The host completes each with "reauthorize" (the engine re-runs the
/// classify; with the callout gone, §5.4 decides) so no connection stays absorbed forever, and
/// returns the counts (operations, classifies) for the Verifier.
pub(crate) fn complete_left(h: &crate::host::HostInner, driver: usize) -> (usize, usize) {
    let (ops, classifies) = {
        let mut st = h.asyncs.lock();
        let ops = take_owned(&mut st.pended_operations, driver);
        let classifies = take_owned(&mut st.pended_classifies, driver);
        (ops, classifies)
    };
    // Every one the driver left counts; the host completes those the engine still holds (the
    // engine may have ended some itself, e.g. a classify whose callout was unregistered).
    for c in &ops {
        let _ = h.engine.complete_operation(CompletionContext(*c), None);
    }
    for c in &classifies {
        let _ = h.engine.complete_classify(ClassifyHandle(*c), None);
    }
    let (ops, classifies) = (ops.len(), classifies.len());
    (ops, classifies)
}

/// Removes and returns the keys recorded for `driver`, in order.
fn take_owned(m: &mut std::collections::HashMap<u64, usize>, driver: usize) -> Vec<u64> {
    let mut keys: Vec<u64> = m
        .iter()
        .filter(|(_, d)| **d == driver)
        .map(|(k, _)| *k)
        .collect();
    keys.sort_unstable();
    for k in &keys {
        m.remove(k);
    }
    keys
}
