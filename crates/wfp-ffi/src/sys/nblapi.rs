//! The Fwps NET_BUFFER_LIST functions (wdk-runtime.md §7): allocate / free, clone / free clone,
//! reference / dereference, stream clone / discard, IP header construction, security information
//! is in [`super::inject`]. The lists are [`super::nbl::OwnedNbl`]s recorded in the host.

use std::ffi::c_void;

use wfp_core::callout::StreamData;
use wfp_core::constants::StreamFlags;

use super::ctx;
use super::invocation;
use super::nbl::{bytes_behind, list_bytes, NblKind, NblRecord, NblState, OwnedNbl};
use super::types::{FwpsStreamData0, Mdl, NetBufferList};
use super::{boundary, NtStatus, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER};
use crate::host::HostInner;
use crate::verifier::Finding;

const STATUS_SUCCESS: NtStatus = super::STATUS_SUCCESS;

fn record(kind: NblKind, packet: Option<wfp_core::inject::PacketId>) -> NblRecord {
    NblRecord {
        kind,
        packet,
        state: NblState::Held,
        refs: 0,
        driver: ctx::current_driver(),
        pool: 0,
        parent: 0,
    }
}

/// FwpsAllocateNetBufferAndNetBufferList0 (wfp-reference §9.2): `pool` is NULL or a handle from
/// NdisAllocateNetBufferListPool (WDK); the list then carries it in NdisPoolHandle, takes the
/// pool's protocol id and counts against the pool until FwpsFreeNetBufferList0.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsAllocateNetBufferAndNetBufferList0(
    pool: *mut c_void,
    context_size: u16,
    context_backfill: u16,
    mdl_chain: *mut Mdl,
    data_offset: u32,
    data_length: usize,
    nbl: *mut *mut NetBufferList,
) -> NtStatus {
    boundary(
        "FwpsAllocateNetBufferAndNetBufferList0",
        STATUS_INVALID_PARAMETER,
        || {
            // contextSize / contextBackFill: a preallocated NET_BUFFER_LIST_CONTEXT (multiples
            // of sizeof(void*), as NdisAllocateNetBufferListContext asks).
            if nbl.is_null() || context_size % 8 != 0 || context_backfill % 8 != 0 {
                return STATUS_INVALID_PARAMETER;
            }
            let mut b = if mdl_chain.is_null() {
                if data_length != 0 {
                    return STATUS_INVALID_PARAMETER;
                }
                OwnedNbl::over_copy(&[])
            } else {
                OwnedNbl::over_mdls(mdl_chain, data_offset, data_length as u64)
            };
            if !b.preallocate_context(context_size, context_backfill) {
                return super::STATUS_INSUFFICIENT_RESOURCES;
            }
            ctx::with_host(|h| {
                let mut b = b;
                let mut r = record(NblKind::Allocated, None);
                if !pool.is_null() {
                    let Some(protocol) = h.rt.ndis.lock().lend(pool as usize) else {
                        h.finding(Finding::BadHandle {
                            function: "FwpsAllocateNetBufferAndNetBufferList0",
                        });
                        return STATUS_INVALID_PARAMETER;
                    };
                    r.pool = pool as usize;
                    b.nbl.ndis_pool_handle = pool;
                    b.nb.ndis_pool_handle = pool;
                    // NdisSetNetBufferListProtocolId: the low byte of the ProtocolId info slot.
                    b.nbl.net_buffer_list_info[7] = usize::from(protocol) as *mut c_void;
                }
                let p = h.asyncs.lock().insert(b, r);
                // SAFETY: the caller's out-pointer (checked non-null).
                unsafe { *nbl = p };
                STATUS_SUCCESS
            })
            .unwrap_or(STATUS_INVALID_DEVICE_STATE)
        },
    )
}

/// Frees a list the runtime handed out (any kind: the WDK pairs each allocator with its free, the
/// kinds are recorded and a mismatch is a finding).
fn free_list(h: &HostInner, what: &'static str, nbl: *mut NetBufferList, expect: &[NblKind]) {
    let mut st = h.asyncs.lock();
    let key = nbl as usize;
    match st.nbls.get(&key).map(|(_, r)| (r.state, r.kind)) {
        None if h.rt.ndis.lock().owns(key) => {
            // One owner per list: NdisAllocateNetBufferList* lists go back through
            // NdisFreeNetBufferList; the wrong free is a finding and the right one is done.
            drop(st);
            h.finding(Finding::Assertion {
                message: format!("{what}: list {key:#x} was allocated by NdisAllocateNetBufferList* (free it with NdisFreeNetBufferList)"),
            });
            super::ndispool::free_ndis_list(nbl);
        }
        None => {
            drop(st);
            h.finding(Finding::DoubleFree { what, address: key });
        }
        Some((NblState::Injected, _)) => {
            drop(st);
            h.finding(Finding::Assertion {
                message: format!("{what}: list {key:#x} is still being injected (free it in the completion function)"),
            });
        }
        Some((_, kind)) => {
            let Some((b, r)) = st.nbls.remove(&key) else {
                return;
            };
            let removed = st.tags.list_freed(key);
            drop(st);
            if r.parent != 0 {
                // SAFETY: a counted parent is alive (freeing it first un-counts its clones:
                // `orphan_clones`).
                unsafe { super::ndisnb::add_child(r.parent as *mut NetBufferList, -1) };
            }
            super::nbltag::deliver(h, removed);
            if r.pool != 0 {
                h.rt.ndis.lock().give_back(r.pool);
            }
            if let Some(p) = r.packet {
                let _ = h.engine.free_packet(p);
            }
            // SAFETY: the list is still alive (its box is `b`).
            unsafe { super::ndisnb::check_no_children(&b.nbl, what) };
            if !expect.contains(&kind) {
                h.finding(Finding::Assertion {
                    message: format!("{what}: list {key:#x} was made by {kind:?}"),
                });
            }
            drop(b);
        }
    }
}

#[no_mangle]
pub(crate) extern "C" fn FwpsFreeNetBufferList0(nbl: *mut NetBufferList) {
    boundary("FwpsFreeNetBufferList0", (), || {
        ctx::with_host(|h| free_list(h, "FwpsFreeNetBufferList0", nbl, &[NblKind::Allocated]));
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsAllocateCloneNetBufferList0(
    original: *mut NetBufferList,
    nbl_pool: *mut c_void,
    _nb_pool: *mut c_void,
    _flags: u32,
    clone: *mut *mut NetBufferList,
) -> NtStatus {
    boundary(
        "FwpsAllocateCloneNetBufferList0",
        STATUS_INVALID_PARAMETER,
        || {
            if original.is_null() || clone.is_null() {
                return STATUS_INVALID_PARAMETER;
            }
            ctx::with_host(|h| clone_list(h, original, nbl_pool, clone))
                .unwrap_or(STATUS_INVALID_DEVICE_STATE)
        },
    )
}

fn clone_list(
    h: &HostInner,
    original: *mut NetBufferList,
    pool: *mut c_void,
    out: *mut *mut NetBufferList,
) -> NtStatus {
    // The NBL pool (WDK: NULL or from NdisAllocateNetBufferListPool): the clone carries it and
    // its protocol id and counts against it until freed, as FwpsAllocateNetBufferAndNetBufferList0.
    let protocol = if pool.is_null() {
        None
    } else {
        let Some(p) = h.rt.ndis.lock().lend(pool as usize) else {
            h.finding(Finding::BadHandle {
                function: "FwpsAllocateCloneNetBufferList0",
            });
            return STATUS_INVALID_PARAMETER;
        };
        Some(p)
    };
    let s = clone_list_from(h, original, (pool, protocol), out);
    if s != STATUS_SUCCESS && !pool.is_null() {
        h.rt.ndis.lock().give_back(pool as usize);
    }
    s
}

fn clone_list_from(
    h: &HostInner,
    original: *mut NetBufferList,
    (pool, protocol): (*mut c_void, Option<u8>),
    out: *mut *mut NetBufferList,
) -> NtStatus {
    // The indicated list: a ledger packet with the packet's provenance (§10.4).
    let indicated = invocation::with_current(|inv| {
        (inv.nbl == original).then(|| {
            // SAFETY: the indicated list (scratch) is valid during the invocation.
            let bytes = unsafe { list_bytes(original, usize::MAX) };
            inv.ctx.clone_packet(inv.meta, &bytes).map(|p| (bytes, p))
        })
    })
    .flatten();
    let (bytes, packet) = match indicated {
        Some(Ok((bytes, p))) => (bytes, Some(p)),
        Some(Err(s)) => return super::nt(s),
        None => {
            let st = h.asyncs.lock();
            let known = st.nbls.contains_key(&(original as usize))
                || st.referenced.contains_key(&(original as usize));
            if !known {
                return STATUS_INVALID_PARAMETER;
            }
            // SAFETY: a list this runtime built or keeps referenced.
            (unsafe { list_bytes(original, usize::MAX) }, None)
        }
    };
    // The clone inherits the original's data offset over the same bytes (NDIS clones share the
    // MDLs): what is behind the start stays reachable by NdisRetreatNetBufferDataStart.
    // SAFETY: `original` is the indicated list or one this runtime built or keeps (checked).
    let behind = unsafe { bytes_behind(original) };
    let mut b = OwnedNbl::over_copy_behind(&behind, &bytes);
    b.nbl.parent_net_buffer_list = original;
    let mut rec = record(NblKind::Clone, packet);
    if packet.is_none() {
        // A list the driver holds (or keeps referenced): its ChildRefCount counts the clone
        // until FwpsFreeCloneNetBufferList0 (wdk-runtime.md §7). The indicated list is the
        // engine's, gone after classifyFn: the clone has its own copy and is not counted.
        // SAFETY: a live list this runtime built or keeps (checked above).
        unsafe { super::ndisnb::add_child(original, 1) };
        rec.parent = original as usize;
    }
    if let Some(protocol) = protocol {
        rec.pool = pool as usize;
        b.nbl.ndis_pool_handle = pool;
        b.nb.ndis_pool_handle = pool;
        b.nbl.net_buffer_list_info[7] = usize::from(protocol) as *mut c_void;
    }
    // Packet tags of the original (a list the driver holds, or the indicated injected packet)
    // go with the clone.
    let provenance = invocation::with_current(|inv| {
        (inv.nbl == original)
            .then(|| inv.meta.injection.clone())
            .flatten()
    })
    .flatten();
    let (p, cloned) = {
        let mut st = h.asyncs.lock();
        let p = st.insert(b, rec);
        let ev = st
            .tags
            .cloned(original as usize, provenance.as_deref(), p as usize);
        (p, ev)
    };
    // SAFETY: the caller's out-pointer (checked non-null by the export).
    unsafe { *out = p };
    super::nbltag::deliver(h, cloned);
    STATUS_SUCCESS
}

#[no_mangle]
pub(crate) extern "C" fn FwpsFreeCloneNetBufferList0(clone: *mut NetBufferList, _flags: u32) {
    boundary("FwpsFreeCloneNetBufferList0", (), || {
        ctx::with_host(|h| {
            // A list of a FwpsCloneStreamData0 chain that was injected is freed one list at a
            // time in the injection's completion function (the WDK stmedit sample does so).
            let kinds = [NblKind::Clone, NblKind::StreamClone];
            free_list(h, "FwpsFreeCloneNetBufferList0", clone, &kinds);
        });
    });
}

/// `FwpsReferenceNetBufferList0`: on the indicated list, the runtime keeps that list (and a copy
/// of its bytes) alive after classifyFn returns until the matching dereference.
#[no_mangle]
pub(crate) extern "C" fn FwpsReferenceNetBufferList0(nbl: *mut NetBufferList, _modify: u8) {
    boundary("FwpsReferenceNetBufferList0", (), || {
        let indicated = invocation::with_current(|inv| {
            let is = inv.nbl == nbl && !nbl.is_null();
            if is {
                inv.references.set(inv.references.get() + 1);
            }
            is
        })
        .unwrap_or(false);
        ctx::with_host(|h| {
            let mut st = h.asyncs.lock();
            let key = nbl as usize;
            if indicated {
                *st.inflight.entry(key).or_insert(0) += 1;
            } else if let Some((_, r)) = st.nbls.get_mut(&key) {
                r.refs += 1;
            } else if let Some((_, n, _)) = st.referenced.get_mut(&key) {
                *n += 1;
            } else {
                drop(st);
                h.finding(Finding::Assertion {
                    message: format!("FwpsReferenceNetBufferList0: unknown list {key:#x}"),
                });
            }
        });
    });
}

#[no_mangle]
pub(crate) extern "C" fn FwpsDereferenceNetBufferList0(nbl: *mut NetBufferList, _dispatch: u8) {
    boundary("FwpsDereferenceNetBufferList0", (), || {
        let _ = invocation::with_current(|inv| {
            if inv.nbl == nbl && !nbl.is_null() && inv.references.get() > 0 {
                inv.references.set(inv.references.get() - 1);
            }
        });
        ctx::with_host(|h| {
            let mut st = h.asyncs.lock();
            let key = nbl as usize;
            // A list still being indicated, on this thread or (a driver's worker) another one.
            if let Some(n) = st.inflight.get_mut(&key).filter(|n| **n > 0) {
                *n -= 1;
                if *n == 0 {
                    st.inflight.remove(&key);
                }
            } else if let Some((_, n, _)) = st.referenced.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    let gone = st.referenced.remove(&key);
                    drop(st);
                    // Returning the list to the stack completes it: NDIS completes a parent
                    // only once its clones are freed.
                    // SAFETY: the referenced list is still alive (dropped just below).
                    unsafe {
                        super::ndisnb::check_no_children(nbl, "FwpsDereferenceNetBufferList0");
                    }
                    drop(gone);
                }
            } else if let Some((_, r)) = st.nbls.get_mut(&key).filter(|(_, r)| r.refs > 0) {
                r.refs -= 1;
            } else {
                drop(st);
                h.finding(Finding::DoubleFree {
                    what: "FwpsDereferenceNetBufferList0",
                    address: key,
                });
            }
        });
    });
}

/// `FwpsCloneStreamData0`: the indicated stream bytes as a new list (a ledger packet; discard it
/// with FwpsDiscardClonedStreamData0 or hand it to FwpsStreamInjectAsync0).
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsCloneStreamData0(
    stream_data: *mut FwpsStreamData0,
    _nbl_pool: *mut c_void,
    _nb_pool: *mut c_void,
    _flags: u32,
    chain: *mut *mut NetBufferList,
) -> NtStatus {
    boundary("FwpsCloneStreamData0", STATUS_INVALID_PARAMETER, || {
        if chain.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        let cloned = invocation::with_current(|inv| {
            let stream = inv
                .stream
                .filter(|_| inv.stream_data == stream_data.cast_const())?;
            let data = StreamData {
                flags: StreamFlags(stream.flags.0),
                data: stream.data,
            };
            Some((inv.ctx.clone_stream_data(&data), stream.data.to_vec()))
        })
        .flatten();
        let Some((packet, bytes)) = cloned else {
            return STATUS_INVALID_PARAMETER;
        };
        ctx::with_host(|h| {
            let b = OwnedNbl::over_copy(&bytes);
            let p = h
                .asyncs
                .lock()
                .insert(b, record(NblKind::StreamClone, Some(packet)));
            // SAFETY: the caller's out-pointer (checked non-null).
            unsafe { *chain = p };
            STATUS_SUCCESS
        })
        .unwrap_or(STATUS_INVALID_DEVICE_STATE)
    })
}

#[no_mangle]
pub(crate) extern "C" fn FwpsDiscardClonedStreamData0(
    chain: *mut NetBufferList,
    _flags: u32,
    _dispatch: u8,
) {
    boundary("FwpsDiscardClonedStreamData0", (), || {
        ctx::with_host(|h| {
            free_list(
                h,
                "FwpsDiscardClonedStreamData0",
                chain,
                &[NblKind::StreamClone, NblKind::Clone, NblKind::Allocated],
            );
        });
    });
}

/// `FwpsConstructIpHeaderForTransportPacket0`: a new IP header (IPv4 without options, IPv6
/// without extension headers) in front of the list's transport packet — replacing the
/// `headerIncludeHeaderLength` bytes of an existing one — with full IP and TCP/UDP/ICMP checksums.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsConstructIpHeaderForTransportPacket0(
    nbl: *mut NetBufferList,
    header_include_length: u32,
    address_family: u16,
    source: *const u8,
    remote: *const u8,
    protocol: u32,
    _endpoint: u64,
    _control_data: *const c_void,
    _control_data_length: u32,
    _flags: u32,
    _reserved: *mut c_void,
    _interface: u32,
    _sub_interface: u32,
) -> NtStatus {
    boundary(
        "FwpsConstructIpHeaderForTransportPacket0",
        STATUS_INVALID_PARAMETER,
        || {
            let alen = match address_family {
                2 => 4,
                23 => 16,
                _ => return STATUS_INVALID_PARAMETER,
            };
            if source.is_null() || remote.is_null() {
                return STATUS_INVALID_PARAMETER;
            }
            // SAFETY: the caller's addresses, 4 or 16 bytes by family.
            let (src, dst) = unsafe {
                (
                    std::slice::from_raw_parts(source, alen),
                    std::slice::from_raw_parts(remote, alen),
                )
            };
            let Ok(proto) = u8::try_from(protocol) else {
                return STATUS_INVALID_PARAMETER;
            };
            ctx::with_host(|h| {
                let mut st = h.asyncs.lock();
                let Some((b, r)) = st.nbls.get_mut(&(nbl as usize)) else {
                    return STATUS_INVALID_PARAMETER;
                };
                if r.state != NblState::Held {
                    return STATUS_INVALID_PARAMETER;
                }
                // SAFETY: a list this runtime built.
                let bytes = unsafe { list_bytes(&b.nbl, usize::MAX) };
                let Some(transport) = bytes.get(header_include_length as usize..) else {
                    return STATUS_INVALID_PARAMETER;
                };
                match super::checksum::ip_packet(src, dst, proto, transport) {
                    Some(packet) => {
                        b.buf = packet;
                        b.point_at_buf();
                        STATUS_SUCCESS
                    }
                    None => STATUS_INVALID_PARAMETER,
                }
            })
            .unwrap_or(STATUS_INVALID_DEVICE_STATE)
        },
    )
}
