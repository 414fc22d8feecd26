//! Packet injection from C (wfp-reference §10.4, wdk-runtime.md §7): injection handles, the
//! `FwpsInject*Async0/1` functions, the injection-state query and the completion functions
//! (FWPS_INJECT_COMPLETE0), over the engine's injection ledger ([`wfp_core::inject`]).
//!
//! An injected list must be one the runtime handed out ([`super::nbl`]) and the driver holds. Its
//! bytes are read through its MDLs when the injection is made (edits made to a clone count) and
//! become the ledger packet the data path re-runs. On success the completion function runs exactly
//! once — when the data path delivered or dropped the packet, with NET_BUFFER_LIST_STATUS set — on
//! the data path's thread with the host bound and `dispatchLevel` TRUE; on failure it never runs
//! and the driver still owns the list.

use std::ffi::c_void;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Weak};

use wfp_core::constants::StreamFlags;
use wfp_core::inject::{
    AddressFamily, Inject, InjectCompletion, InjectionCompleted, InjectionHandle, InjectionKind,
    InjectionTypes, SendParams,
};
use wfp_core::{CalloutId, LayerId, Status};

use super::ctx::{self, DISPATCH_LEVEL};
use super::invocation;
use super::nbl::{list_bytes, NblState};
use super::types::{
    FwpsPacketListInformation0, FwpsTransportSendParams0, FwpsTransportSendParams1, NetBufferList,
};
use super::{boundary, nt, NtStatus, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER};
use crate::host::HostInner;
use crate::verifier::Finding;

/// `FWPS_INJECT_COMPLETE0`.
pub(crate) type InjectCompleteFn = unsafe extern "C" fn(*mut c_void, *mut NetBufferList, u8);

fn family(af: u16) -> Option<AddressFamily> {
    match af {
        0 => Some(AddressFamily::Unspecified),
        2 => Some(AddressFamily::Inet),
        23 => Some(AddressFamily::Inet6),
        _ => None,
    }
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsInjectionHandleCreate0(
    address_family: u16,
    flags: u32,
    handle: *mut *mut c_void,
) -> NtStatus {
    boundary(
        "FwpsInjectionHandleCreate0",
        STATUS_INVALID_PARAMETER,
        || {
            let Some(af) = family(address_family) else {
                return nt(Status::FWP_INVALID_PARAMETER);
            };
            if handle.is_null() {
                return nt(Status::FWP_NULL_POINTER);
            }
            ctx::with_host(
                |h| match h.engine.create_injection_handle(af, InjectionTypes(flags)) {
                    Ok(ih) => {
                        // SAFETY: the caller's out-pointer (checked non-null).
                        unsafe { *handle = ih.0 as *mut c_void };
                        super::STATUS_SUCCESS
                    }
                    Err(s) => nt(s),
                },
            )
            .unwrap_or(STATUS_INVALID_DEVICE_STATE)
        },
    )
}

/// `FwpsInjectionHandleDestroy0` (wdk-runtime.md §7, wfp-reference §10.4): new injections on the
/// handle fail at once with STATUS_FWP_INJECT_HANDLE_CLOSING; the call then waits until every
/// injection already accepted on the handle has had its completion function called (and returned),
/// as the WDK documents, bounded by [`crate::HostConfig::unload_timeout`] (a Verifier finding when
/// the bound expires). Above PASSIVE_LEVEL (a completion function or classifyFn destroying its
/// handle) it cannot wait: the handle goes with its last completion. STATUS_SUCCESS either way;
/// STATUS_FWP_INJECT_HANDLE_STALE for an unknown handle.
#[no_mangle]
pub(crate) extern "C" fn FwpsInjectionHandleDestroy0(handle: *mut c_void) -> NtStatus {
    boundary(
        "FwpsInjectionHandleDestroy0",
        STATUS_INVALID_PARAMETER,
        || {
            ctx::with_host(|h| {
                match h
                    .engine
                    .destroy_injection_handle(InjectionHandle(handle as u64))
                {
                    Status::SUCCESS => super::STATUS_SUCCESS,
                    Status::PENDING => {
                        if ctx::irql() == 0 {
                            wait_for_completions(h, handle as u64);
                        }
                        super::STATUS_SUCCESS
                    }
                    s => nt(s),
                }
            })
            .unwrap_or(STATUS_INVALID_DEVICE_STATE)
        },
    )
}

/// Waits (bounded) until no injection on `handle` is outstanding.
fn wait_for_completions(h: &HostInner, handle: u64) {
    let deadline = std::time::Instant::now() + h.config.unload_timeout;
    let mut pause = std::time::Duration::from_micros(50);
    loop {
        let left = h.asyncs.lock().injecting.get(&handle).copied().unwrap_or(0);
        if left == 0 {
            return;
        }
        if std::time::Instant::now() >= deadline {
            h.finding(crate::verifier::Finding::Assertion {
                message: format!(
                    "FwpsInjectionHandleDestroy0: {left} injection(s) on the handle still not \
                     completed after {:?}",
                    h.config.unload_timeout
                ),
            });
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(2));
    }
}

/// Counts an injection accepted on `handle` (`+1`) or finished or refused (`-1`).
fn count_injection(h: &HostInner, handle: u64, accepted: bool) {
    let mut st = h.asyncs.lock();
    let n = st.injecting.entry(handle).or_insert(0);
    if accepted {
        *n += 1;
    } else {
        *n = n.saturating_sub(1);
        if *n == 0 {
            st.injecting.remove(&handle);
        }
    }
}

/// FWPS_PACKET_INJECTION_STATE of `nbl` relative to `handle`: the indicated list carries the
/// injection tag of the packet being classified; lists the runtime handed out are not injected
/// packets.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsQueryPacketInjectionState0(
    handle: *mut c_void,
    nbl: *const NetBufferList,
    injection_context: *mut *mut c_void,
) -> u32 {
    boundary("FwpsQueryPacketInjectionState0", 0, || {
        let indicated = invocation::with_current(|inv| {
            (inv.nbl.cast_const() == nbl && !nbl.is_null()).then(|| {
                inv.ctx.engine().query_packet_injection_state(
                    InjectionHandle(handle as u64),
                    inv.meta.injection.as_deref(),
                )
            })
        })
        .flatten();
        let Some((state, context)) = indicated else {
            return 0;
        };
        // SAFETY: the optional out-pointer.
        if let Some(out) = unsafe { injection_context.as_mut() } {
            *out = context.unwrap_or(0) as *mut c_void;
        }
        state as u32
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsGetPacketListSecurityInformation0(
    nbl: *mut NetBufferList,
    query_flags: u32,
    info: *mut FwpsPacketListInformation0,
) -> NtStatus {
    boundary(
        "FwpsGetPacketListSecurityInformation0",
        STATUS_INVALID_PARAMETER,
        || {
            // SAFETY: the caller's out-structure (checked non-null).
            let Some(out) = (unsafe { info.as_mut() }) else {
                return STATUS_INVALID_PARAMETER;
            };
            if nbl.is_null() || query_flags & 0x3 == 0x3 {
                return STATUS_INVALID_PARAMETER;
            }
            // No IPsec here: nothing is secure. isReinjected from the injection tag.
            let reinjected = invocation::with_current(|inv| {
                inv.nbl == nbl && inv.meta.injection.as_ref().is_some_and(|p| p.depth() > 0)
            })
            .unwrap_or(false);
            *out = FwpsPacketListInformation0::default();
            if query_flags & 0x8 != 0 && reinjected {
                out.fwp_information = 1;
            }
            super::STATUS_SUCCESS
        },
    )
}

/// One `FwpsInject*` call.
struct Call {
    handle: *mut c_void,
    context: *mut c_void,
    kind: InjectionKind,
    nbl: *mut NetBufferList,
    /// Bytes to take from the list (stream injection's dataLength), all when `None`.
    length: Option<usize>,
    completion: Option<InjectCompleteFn>,
    completion_context: *mut c_void,
}

/// The engine's completion of one injection: runs the driver's completion function (if it gave
/// one) once, with the list's status set, then counts the injection finished on its handle.
fn completion(host: Weak<HostInner>, driver: usize, call: &Call) -> InjectCompletion {
    let context = call.context_for_completion();
    let nbl = call.nbl as usize;
    let f = call.completion;
    let handle = call.handle as u64;
    Box::new(move |done: &InjectionCompleted| {
        let Some(h) = host.upgrade() else { return };
        let exited = {
            let mut st = h.asyncs.lock();
            if let Some((b, r)) = st.nbls.get_mut(&nbl) {
                r.state = NblState::Completed;
                r.packet = None;
                b.nbl.status = done.status.0 as i32;
            }
            st.tags.completed(done.id, done.packet)
        };
        super::nbltag::deliver(&h, exited);
        if let Some(f) = f {
            call_completion(&h, driver, f, (context, nbl));
        }
        count_injection(&h, handle, false);
    })
}

/// Calls the driver's FWPS_INJECT_COMPLETE0 with (context, list), unless its image is gone.
fn call_completion(h: &Arc<HostInner>, driver: usize, f: InjectCompleteFn, args: (usize, usize)) {
    let _bound = ctx::bind(h, driver, DISPATCH_LEVEL, "completionFn");
    if !image_loaded(f) {
        // The driver was unloaded with this injection pending: its code is gone.
        h.finding(crate::verifier::Finding::Assertion {
            message: "an injection completed after its driver was unloaded (completion function not called)".into(),
        });
        return;
    }
    // SAFETY: the driver's FWPS_INJECT_COMPLETE0, in an image still mapped (checked above), with
    // its own context and the list it injected (still recorded; the driver frees it here or
    // later).
    unsafe { f(args.0 as *mut c_void, args.1 as *mut NetBufferList, 1) };
}

/// Whether `f` lies in a mapped image (dladdr finds the object containing it).
fn image_loaded(f: InjectCompleteFn) -> bool {
    // SAFETY: dladdr only reads the loader's tables; `info` is a valid out-structure.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        libc::dladdr(f as *const c_void, &mut info) != 0
    }
}

impl Call {
    fn context_for_completion(&self) -> usize {
        self.completion_context as usize
    }
}

/// The common body of every injection function.
fn inject(call: Call) -> NtStatus {
    ctx::with_host(|h| inject_on(h, call)).unwrap_or(STATUS_INVALID_DEVICE_STATE)
}

fn inject_on(h: &HostInner, call: Call) -> NtStatus {
    let engine = &h.engine;
    let mut entered = Vec::new();
    let (packet, fresh) = if call.nbl.is_null() {
        // Only a stream injection may carry no data (a FIN / disconnect injection).
        if !matches!(call.kind, InjectionKind::Stream { .. }) || call.length.unwrap_or(0) != 0 {
            return STATUS_INVALID_PARAMETER;
        }
        (engine.allocate_packet(Vec::new()), true)
    } else {
        let mut st = h.asyncs.lock();
        let Some((b, r)) = st.nbls.get_mut(&(call.nbl as usize)) else {
            // The indicated list, or one the runtime never handed out: clone it first.
            return STATUS_INVALID_PARAMETER;
        };
        if r.state != NblState::Held {
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: a list this runtime built (its MDLs: our buffer or the caller's chain).
        let bytes = unsafe { list_bytes(&b.nbl, call.length.unwrap_or(usize::MAX)) };
        // Marked before the engine sees it: the completion may run on the data path's thread
        // before this call returns (it sets Completed).
        r.state = NblState::Injected;
        let packet = match r.packet {
            Some(p) if engine.set_packet_data(p, bytes.clone()) == Status::SUCCESS => (p, false),
            _ => {
                let p = engine.allocate_packet(bytes);
                r.packet = Some(p);
                (p, true)
            }
        };
        // DriverHost::settle waits while the engine has not answered (still under the lock
        // that made the list Injected).
        st.inject_calls += 1;
        // Packet tags go with the injection (ENTERED_NETIO once the engine has it).
        let key = (call.handle as u64, call.context as u64);
        entered = st.tags.inject(call.nbl as usize, key, packet.0);
        packet
    };
    let completion = Some(completion(h.me.clone(), ctx::current_driver(), &call));
    // Counted before the engine sees it: the completion may run before this call returns.
    count_injection(h, call.handle as u64, true);
    let s = engine.inject(Inject {
        handle: InjectionHandle(call.handle as u64),
        context: call.context as u64,
        kind: call.kind,
        packet,
        completion,
    });
    if !call.nbl.is_null() {
        let mut st = h.asyncs.lock();
        st.inject_calls = st.inject_calls.saturating_sub(1);
    }
    if s == Status::SUCCESS {
        super::nbltag::deliver(h, entered);
    } else {
        count_injection(h, call.handle as u64, false);
        // Nothing changed: the driver still holds the list (and its tags).
        let mut st = h.asyncs.lock();
        st.tags.refused(packet);
        if let Some((_, r)) = st.nbls.get_mut(&(call.nbl as usize)) {
            r.state = NblState::Held;
            if fresh {
                r.packet = None;
            }
        }
        if fresh {
            let _ = engine.free_packet(packet);
        }
    }
    nt(s)
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsInjectNetworkSendAsync0(
    handle: *mut c_void,
    context: *mut c_void,
    _flags: u32,
    compartment: u32,
    nbl: *mut NetBufferList,
    completion_fn: Option<InjectCompleteFn>,
    completion_context: *mut c_void,
) -> NtStatus {
    boundary(
        "FwpsInjectNetworkSendAsync0",
        STATUS_INVALID_PARAMETER,
        || {
            inject(Call {
                handle,
                context,
                kind: InjectionKind::NetworkSend { compartment },
                nbl,
                length: None,
                completion: completion_fn,
                completion_context,
            })
        },
    )
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsInjectNetworkReceiveAsync0(
    handle: *mut c_void,
    context: *mut c_void,
    _flags: u32,
    compartment: u32,
    interface: u32,
    sub_interface: u32,
    nbl: *mut NetBufferList,
    completion_fn: Option<InjectCompleteFn>,
    completion_context: *mut c_void,
) -> NtStatus {
    boundary(
        "FwpsInjectNetworkReceiveAsync0",
        STATUS_INVALID_PARAMETER,
        || {
            inject(Call {
                handle,
                context,
                kind: InjectionKind::NetworkReceive {
                    compartment,
                    interface,
                    sub_interface,
                },
                nbl,
                length: None,
                completion: completion_fn,
                completion_context,
            })
        },
    )
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsInjectForwardAsync0(
    handle: *mut c_void,
    context: *mut c_void,
    _flags: u32,
    _address_family: u16,
    compartment: u32,
    interface: u32,
    nbl: *mut NetBufferList,
    completion_fn: Option<InjectCompleteFn>,
    completion_context: *mut c_void,
) -> NtStatus {
    boundary("FwpsInjectForwardAsync0", STATUS_INVALID_PARAMETER, || {
        inject(Call {
            handle,
            context,
            kind: InjectionKind::Forward {
                compartment,
                interface,
            },
            nbl,
            length: None,
            completion: completion_fn,
            completion_context,
        })
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsInjectTransportReceiveAsync0(
    handle: *mut c_void,
    context: *mut c_void,
    _reserved: *mut c_void,
    _flags: u32,
    _address_family: u16,
    compartment: u32,
    interface: u32,
    sub_interface: u32,
    nbl: *mut NetBufferList,
    completion_fn: Option<InjectCompleteFn>,
    completion_context: *mut c_void,
) -> NtStatus {
    boundary(
        "FwpsInjectTransportReceiveAsync0",
        STATUS_INVALID_PARAMETER,
        || {
            inject(Call {
                handle,
                context,
                kind: InjectionKind::TransportReceive {
                    compartment,
                    interface,
                    sub_interface,
                },
                nbl,
                length: None,
                completion: completion_fn,
                completion_context,
            })
        },
    )
}

/// FWPS_TRANSPORT_SEND_PARAMS0/1 → engine send parameters (deep copies).
///
/// # Safety
/// `p` must be null or point to a FWPS_TRANSPORT_SEND_PARAMS1 when `v1`, a
/// FWPS_TRANSPORT_SEND_PARAMS0 (its prefix) otherwise; its pointers valid for their lengths.
unsafe fn send_params(p: *const FwpsTransportSendParams1, af: u16, v1: bool) -> Option<SendParams> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the contract; PARAMS0 is the PARAMS1 prefix, so only its members are read
    // through the PARAMS0 view, and the headerInclude members only when `v1`.
    let base = unsafe { &*p.cast::<FwpsTransportSendParams0>() };
    let copy = |ptr: *const u8, len: u32| -> Option<Arc<[u8]>> {
        // SAFETY: per the contract, `ptr` is valid for `len` bytes when non-null.
        (!ptr.is_null() && len > 0)
            .then(|| unsafe { std::slice::from_raw_parts(ptr, len as usize) }.into())
    };
    let remote_address = if base.remote_address.is_null() {
        None
    } else if af == 23 {
        let mut o = [0u8; 16];
        // SAFETY: an IPv6 remote address is 16 bytes.
        o.copy_from_slice(unsafe { std::slice::from_raw_parts(base.remote_address, 16) });
        Some(IpAddr::V6(Ipv6Addr::from(o)))
    } else {
        let mut o = [0u8; 4];
        // SAFETY: an IPv4 remote address is 4 bytes.
        o.copy_from_slice(unsafe { std::slice::from_raw_parts(base.remote_address, 4) });
        Some(IpAddr::V4(Ipv4Addr::from(o)))
    };
    let header_include_header = if v1 {
        // SAFETY: `v1`: the caller passed a whole FWPS_TRANSPORT_SEND_PARAMS1.
        let full = unsafe { &*p };
        copy(
            full.header_include_header,
            full.header_include_header_length,
        )
    } else {
        None
    };
    Some(SendParams {
        remote_address,
        remote_scope_id: base.remote_scope_id,
        control_data: copy(base.control_data, base.control_data_length),
        header_include_header,
    })
}

macro_rules! transport_send {
    ($name:ident, $v1:expr) => {
        /// `FwpsInjectTransportSendAsyncN`: a transport packet (transport header first) sent on the
        /// endpoint (the flow handle of the classify that saw it); the data path builds its IP
        /// header.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn $name(
            handle: *mut c_void,
            context: *mut c_void,
            endpoint: u64,
            _flags: u32,
            send_args: *const FwpsTransportSendParams1,
            address_family: u16,
            compartment: u32,
            nbl: *mut NetBufferList,
            completion_fn: Option<InjectCompleteFn>,
            completion_context: *mut c_void,
        ) -> NtStatus {
            boundary(stringify!($name), STATUS_INVALID_PARAMETER, || {
                // SAFETY: the caller's send parameters of this version.
                let params = unsafe { send_params(send_args, address_family, $v1) };
                inject(Call {
                    handle,
                    context,
                    kind: InjectionKind::TransportSend {
                        endpoint,
                        params,
                        compartment,
                    },
                    nbl,
                    length: None,
                    completion: completion_fn,
                    completion_context,
                })
            })
        }
    };
}
transport_send!(FwpsInjectTransportSendAsync0, false);
transport_send!(FwpsInjectTransportSendAsync1, true);

/// `FwpsStreamInjectAsync0` (§9.2): `dataLength` bytes of `nbl` (NULL with 0 for a bare
/// disconnect) into the flow's stream at the current point.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsStreamInjectAsync0(
    handle: *mut c_void,
    context: *mut c_void,
    _flags: u32,
    flow: u64,
    callout: u32,
    layer: u16,
    stream_flags: u32,
    nbl: *mut NetBufferList,
    data_length: usize,
    completion_fn: Option<InjectCompleteFn>,
    completion_context: *mut c_void,
) -> NtStatus {
    boundary("FwpsStreamInjectAsync0", STATUS_INVALID_PARAMETER, || {
        // Out of band (outside any classifyFn): after the flow's indication in progress, if
        // one runs on the data path now (§9.2; see `streamgate`).
        // A wait that reaches its bound goes ahead and is a Verifier finding.
        if ctx::current_invocation().is_null() {
            ctx::with_host(|h| {
                if let Err(e) = h.rt.stream_gate.wait_clear(flow) {
                    h.finding(Finding::StreamInjectWaitExpired {
                        flow,
                        waited_ms: u64::try_from(e.waited.as_millis()).unwrap_or(u64::MAX),
                    });
                }
            });
        }
        inject(Call {
            handle,
            context,
            kind: InjectionKind::Stream {
                flow,
                callout: CalloutId(callout),
                layer: LayerId(layer),
                flags: StreamFlags(stream_flags),
            },
            nbl,
            length: Some(data_length),
            completion: completion_fn,
            completion_context,
        })
    })
}

/// `FwpsStreamContinue0` (§9.2): resumes a deferred inbound stream.
#[no_mangle]
pub(crate) extern "C" fn FwpsStreamContinue0(
    flow: u64,
    callout: u32,
    layer: u16,
    stream_flags: u32,
) -> NtStatus {
    boundary("FwpsStreamContinue0", STATUS_INVALID_PARAMETER, || {
        ctx::with_host(|h| {
            nt(h.engine.stream_continue(
                flow,
                CalloutId(callout),
                LayerId(layer),
                StreamFlags(stream_flags),
            ))
        })
        .unwrap_or(STATUS_INVALID_DEVICE_STATE)
    })
}
