//! NDIS fragment and reassembled lists (WDK nblapi.h; learn.microsoft.com
//! NdisAllocateFragmentNetBufferList, NdisFreeFragmentNetBufferList,
//! NdisAllocateReassembledNetBufferList, NdisFreeReassembledNetBufferList — not in
//! wdk-runtime.md, facts from the public WDK documentation):
//!
//! * a fragment list has, for every NET_BUFFER of the original, NET_BUFFERs of at most
//!   MaximumLength bytes each covering its used data from DataOffset + StartOffset, every one
//!   with a new MDL chain over the original's memory (no data copied), then retreated by
//!   DataOffsetDelta (a new backfill MDL of DataOffsetDelta + DataBackFill bytes);
//! * a reassembled list has one NET_BUFFER whose one MDL chain concatenates the used data of
//!   every NET_BUFFER of the fragment list after StartOffset, retreated the same way;
//! * neither has a NET_BUFFER_LIST_CONTEXT; the free functions take the DataOffsetDelta of the
//!   allocation back (another value is a finding).
//!
//! Choice made here (the documentation does not say): like a clone, the new list's
//! ParentNetBufferList is the source and the source's ChildRefCount counts it until it is freed,
//! so a source freed first is a finding and the new list keeps a private copy of its data.

use std::ffi::c_void;

use super::{add_child, finding, free_derived, mdl_for, mdl_va, Clone, Derived};
use crate::sys::types::{Mdl, NetBuffer, NetBufferList};
use crate::sys::{boundary, ctx};
use crate::verifier::Finding;

/// A fragment or reassembled list's data larger than this is refused (a corrupt length never
/// makes the host allocate without bound).
const MAX_DATA: u64 = 1 << 24;

/// The MDL and offset in it where byte `offset` of the chain from `first` lies (NULL past the
/// chain's end).
///
/// # Safety
/// `first` is null or the head of a valid MDL chain.
unsafe fn locate(first: *mut Mdl, mut offset: u64) -> (*mut Mdl, u32) {
    let mut m = first;
    let mut hops = 0;
    // SAFETY: per the contract.
    unsafe {
        while let Some(x) = m.as_ref() {
            if offset < u64::from(x.byte_count) || hops > super::MAX_CHAIN {
                break;
            }
            offset -= u64::from(x.byte_count);
            m = x.next;
            hops += 1;
        }
    }
    (m, u32::try_from(offset).unwrap_or(u32::MAX))
}

/// New MDLs over `len` bytes of the chain from `first` at `offset` (recorded in `owned`):
/// (head, tail, bytes described).
///
/// # Safety
/// `first` is null or the head of a valid MDL chain.
unsafe fn copy_range(
    first: *mut Mdl,
    offset: u64,
    len: u64,
    owned: &mut Vec<usize>,
) -> (*mut Mdl, *mut Mdl, u64) {
    let (mut head, mut tail): (*mut Mdl, *mut Mdl) = (std::ptr::null_mut(), std::ptr::null_mut());
    let mut left = len;
    // SAFETY: per the contract; every copy is a fresh box linked once.
    unsafe {
        let (mut m, mut skip) = locate(first, offset);
        while let Some(src) = m.as_ref() {
            if left == 0 || owned.len() >= super::MAX_CHAIN {
                break;
            }
            let start = skip.min(src.byte_count);
            let n = u64::from(src.byte_count - start).min(left);
            let mut c = mdl_for(
                mdl_va(src).add(start as usize).cast(),
                u32::try_from(n).unwrap_or(0),
            );
            c.mdl_flags |= src.mdl_flags & 0x5;
            let c = Box::into_raw(Box::new(c));
            owned.push(c as usize);
            if tail.is_null() {
                head = c;
            } else {
                (*tail).next = c;
            }
            tail = c;
            left -= n;
            skip = 0;
            m = src.next;
        }
    }
    (head, tail, len - left)
}

/// A new NET_BUFFER over `chain` (`len` bytes), retreated by `delta` into a backfill MDL of
/// `delta + backfill` bytes when `delta` > 0; recorded in `rec`. NULL when out of memory.
///
/// # Safety
/// `chain` is a valid MDL chain recorded in `rec`.
unsafe fn new_nb(
    chain: *mut Mdl,
    len: u64,
    delta: u32,
    backfill: u32,
    rec: &mut Clone,
) -> *mut NetBuffer {
    // SAFETY: calloc has no preconditions; NULL is handled; the new objects are recorded.
    unsafe {
        let nb = libc::calloc(1, std::mem::size_of::<NetBuffer>()).cast::<NetBuffer>();
        if nb.is_null() {
            return nb;
        }
        rec.nbs.push(nb as usize);
        let d = &mut (*nb).data;
        d.mdl_chain = chain;
        d.current_mdl = chain;
        d.data_length = len;
        if delta > 0 {
            let size = delta.saturating_add(backfill);
            let buf = libc::calloc(1, size as usize).cast::<u8>();
            if buf.is_null() {
                return std::ptr::null_mut();
            }
            rec.bufs.push(buf as usize);
            let mut m = mdl_for(buf.cast(), size);
            m.mdl_flags |= 0x1 | 0x4;
            m.next = chain;
            let m = Box::into_raw(Box::new(m));
            rec.mdls.push(m as usize);
            d.mdl_chain = m;
            d.current_mdl = m;
            d.current_mdl_offset = backfill;
            d.data_offset = backfill;
            d.data_length = len + u64::from(delta);
        }
        nb
    }
}

/// The used data of `nb` after `start`: (first MDL, offset into it, bytes).
///
/// # Safety
/// `nb` is a live NET_BUFFER.
unsafe fn used_after(nb: &NetBuffer, start: u32) -> (*mut Mdl, u64, u64) {
    let d = &nb.data;
    let len = d.data_length.min(MAX_DATA).saturating_sub(u64::from(start));
    (
        d.current_mdl,
        u64::from(d.current_mdl_offset) + u64::from(start),
        len,
    )
}

/// Links `nb` after `last` (or as the first).
///
/// # Safety
/// Both are live NET_BUFFERs (or `last` NULL).
unsafe fn link(first: &mut *mut NetBuffer, last: &mut *mut NetBuffer, nb: *mut NetBuffer) {
    // SAFETY: per the contract.
    unsafe {
        if last.is_null() {
            *first = nb;
        } else {
            (**last).data.next = nb;
        }
    }
    *last = nb;
}

/// What both allocators share: pool checks, the list, its record (counted in `source`).
struct NewList {
    nbl: *mut NetBufferList,
    rec: Clone,
}

fn new_list(
    source: *mut NetBufferList,
    pool: *mut c_void,
    derived: Derived,
    function: &'static str,
) -> Option<NewList> {
    let protocol = if pool.is_null() {
        Some(0)
    } else {
        ctx::with_host(|h| h.rt.ndis.lock().lend(pool as usize)).flatten()
    };
    let Some(protocol) = protocol else {
        finding(Finding::BadHandle { function });
        return None;
    };
    // SAFETY: calloc has no preconditions; NULL is handled.
    let nbl =
        unsafe { libc::calloc(1, std::mem::size_of::<NetBufferList>()) }.cast::<NetBufferList>();
    if nbl.is_null() {
        if !pool.is_null() {
            ctx::with_host(|h| h.rt.ndis.lock().give_back(pool as usize));
        }
        return None;
    }
    // SAFETY: the fresh list; the caller's live source list.
    unsafe {
        (*nbl).parent_net_buffer_list = source;
        (*nbl).ndis_pool_handle = pool;
        (*nbl).source_handle = (*source).source_handle;
        (*nbl).net_buffer_list_info[7] = usize::from(protocol) as *mut c_void;
    }
    Some(NewList {
        nbl,
        rec: Clone {
            derived,
            driver: ctx::current_driver(),
            parent: source as usize,
            flags: 0,
            pool: pool as usize,
            nbs: Vec::new(),
            mdls: Vec::new(),
            bufs: Vec::new(),
            counted: true,
        },
    })
}

/// Records the new list; counts it in its source, or (the indicated list, the engine's) gives
/// it a private copy of its data instead.
fn finish(mut n: NewList, source: *mut NetBufferList) -> *mut NetBufferList {
    let indicated = crate::sys::invocation::with_current(|inv| inv.nbl == source) == Some(true);
    // SAFETY: the source is live (the caller's); the new list's objects are recorded in `rec`.
    unsafe {
        if indicated {
            n.rec.counted = false;
            n.rec.materialize();
        } else {
            add_child(source, 1);
        }
    }
    ctx::with_host(|h| h.rt.ndis.lock().nb.clones.insert(n.nbl as usize, n.rec));
    n.nbl
}

/// Frees a list that could not be completed (its record was never inserted).
fn discard(n: NewList) {
    if n.rec.pool != 0 {
        ctx::with_host(|h| h.rt.ndis.lock().give_back(n.rec.pool));
    }
    // SAFETY: every object was allocated here and is freed once.
    unsafe {
        for m in n.rec.mdls {
            drop(Box::from_raw(m as *mut Mdl));
        }
        for b in n.rec.bufs {
            libc::free(b as *mut c_void);
        }
        for nb in n.rec.nbs {
            libc::free(nb as *mut c_void);
        }
        libc::free(n.nbl.cast());
    }
}

/// NdisAllocateFragmentNetBufferList (WDK nblapi.h): see the module documentation. NULL for a
/// NULL list, MaximumLength 0, nonzero flags, an unknown pool (a finding) or no memory.
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisAllocateFragmentNetBufferList(
    original: *mut NetBufferList,
    nbl_pool: *mut c_void,
    _nb_pool: *mut c_void,
    start: u32,
    max: u32,
    delta: u32,
    backfill: u32,
    flags: u32,
) -> *mut NetBufferList {
    boundary(
        "NdisAllocateFragmentNetBufferList",
        std::ptr::null_mut(),
        || {
            ctx::check_irql("NdisAllocateFragmentNetBufferList", 2);
            if original.is_null() || max == 0 || flags != 0 {
                return std::ptr::null_mut();
            }
            let Some(mut n) = new_list(
                original,
                nbl_pool,
                Derived::Fragment(delta),
                "NdisAllocateFragmentNetBufferList",
            ) else {
                return std::ptr::null_mut();
            };
            let (mut first, mut last) = (std::ptr::null_mut(), std::ptr::null_mut());
            // SAFETY: the caller's live original list (WDK contract): its NBs and MDL chains.
            unsafe {
                let mut src = (*original).first_net_buffer;
                while let Some(s) = src.as_ref() {
                    let (chain, offset, total) = used_after(s, start);
                    let mut done = 0u64;
                    while done < total {
                        let (head, _, got) = copy_range(
                            chain,
                            offset + done,
                            total.min(done + u64::from(max)) - done,
                            &mut n.rec.mdls,
                        );
                        if got == 0 {
                            break;
                        }
                        let nb = new_nb(head, got, delta, backfill, &mut n.rec);
                        if nb.is_null() {
                            discard(n);
                            return std::ptr::null_mut();
                        }
                        link(&mut first, &mut last, nb);
                        done += got;
                    }
                    src = s.data.next;
                }
                (*n.nbl).first_net_buffer = first;
            }
            finish(n, original)
        },
    )
}

/// NdisAllocateReassembledNetBufferList (WDK nblapi.h): see the module documentation. NULL for
/// a NULL list, nonzero flags, an unknown pool (a finding) or no memory.
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisAllocateReassembledNetBufferList(
    fragments: *mut NetBufferList,
    pool: *mut c_void,
    start: u32,
    delta: u32,
    backfill: u32,
    flags: u32,
) -> *mut NetBufferList {
    boundary(
        "NdisAllocateReassembledNetBufferList",
        std::ptr::null_mut(),
        || {
            ctx::check_irql("NdisAllocateReassembledNetBufferList", 2);
            if fragments.is_null() || flags != 0 {
                return std::ptr::null_mut();
            }
            let Some(mut n) = new_list(
                fragments,
                pool,
                Derived::Reassembled(delta),
                "NdisAllocateReassembledNetBufferList",
            ) else {
                return std::ptr::null_mut();
            };
            let (mut head, mut tail): (*mut Mdl, *mut Mdl) =
                (std::ptr::null_mut(), std::ptr::null_mut());
            let mut total = 0u64;
            // SAFETY: the caller's live fragment list (WDK contract); the copies are recorded.
            unsafe {
                let mut src = (*fragments).first_net_buffer;
                while let Some(s) = src.as_ref() {
                    let (chain, offset, len) = used_after(s, start);
                    let (h, t, got) = copy_range(chain, offset, len, &mut n.rec.mdls);
                    if !h.is_null() {
                        if tail.is_null() {
                            head = h;
                        } else {
                            (*tail).next = h;
                        }
                        tail = t;
                        total += got;
                    }
                    src = s.data.next;
                }
                let nb = new_nb(head, total, delta, backfill, &mut n.rec);
                if nb.is_null() {
                    discard(n);
                    return std::ptr::null_mut();
                }
                (*n.nbl).first_net_buffer = nb;
            }
            finish(n, fragments)
        },
    )
}

/// NdisFreeFragmentNetBufferList: frees a NdisAllocateFragmentNetBufferList list (its
/// NET_BUFFERs, MDLs and backfill); DataOffsetDelta must be the allocation's, flags 0.
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisFreeFragmentNetBufferList(
    list: *mut NetBufferList,
    delta: u32,
    flags: u32,
) {
    boundary("NdisFreeFragmentNetBufferList", (), || {
        ctx::check_irql("NdisFreeFragmentNetBufferList", 2);
        free_derived(list, "NdisFreeFragmentNetBufferList", |rec| {
            match rec.derived {
            Derived::Fragment(d) if d == delta && flags == 0 => None,
            Derived::Fragment(d) => Some(format!("DataOffsetDelta {delta} and flags {flags:#x}, the list was allocated with DataOffsetDelta {d} (flags 0)")),
            other => Some(format!("the list was made by {other:?}")),
        }
        });
    });
}

/// NdisFreeReassembledNetBufferList: frees a NdisAllocateReassembledNetBufferList list;
/// DataOffsetDelta must be the allocation's, flags 0.
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisFreeReassembledNetBufferList(
    list: *mut NetBufferList,
    delta: u32,
    flags: u32,
) {
    boundary("NdisFreeReassembledNetBufferList", (), || {
        ctx::check_irql("NdisFreeReassembledNetBufferList", 2);
        free_derived(list, "NdisFreeReassembledNetBufferList", |rec| {
            match rec.derived {
            Derived::Reassembled(d) if d == delta && flags == 0 => None,
            Derived::Reassembled(d) => Some(format!("DataOffsetDelta {delta} and flags {flags:#x}, the list was allocated with DataOffsetDelta {d} (flags 0)")),
            other => Some(format!("the list was made by {other:?}")),
        }
        });
    });
}
