//! NDIS clones, NET_BUFFER pools and copies (wdk-runtime.md §6; WDK nblapi.h):
//! NdisAllocateCloneNetBufferList / NdisFreeCloneNetBufferList (NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS,
//! ParentNetBufferList, the parent's ChildRefCount), NdisGetPoolFromNetBufferList,
//! NdisAllocateNetBufferPool / NdisFreeNetBufferPool, NdisAllocateNetBuffer,
//! NdisAllocateNetBufferMdlAndData, NdisFreeNetBuffer and NdisCopyFromNetBufferToNetBuffer.
//!
//! ```text
//!  original NBL ──NdisAllocateCloneNetBufferList──► clone NBL (ParentNetBufferList = original,
//!     ChildRefCount += 1)                             NB per original NB, from its data start
//!                                                     └─ the original's MDLs, or copies of them
//!                                                        over the same buffers (no data copied)
//! ```
//!
//! A clone describes the original's memory: it is valid while the original is (the indicated
//! list during classifyFn, or while FwpsReferenceNetBufferList0 keeps it), as on Windows. Every
//! clone, NET_BUFFER pool and NET_BUFFER is recorded per driver: unknown frees, mismatched flags,
//! a parent freed before its clones, and what is left at unload are Verifier findings.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, Ordering};

use super::boundary;
use super::ctx;
use super::ndis::{mdl_for, mdl_va};
use super::types::{Mdl, NetBuffer, NetBufferList};
use crate::verifier::Finding;

pub(super) mod frag;

/// `NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS`.
const USE_ORIGINAL_MDLS: u32 = 0x2;
/// `NDIS_CLONE_FLAGS_RESERVED`.
const CLONE_RESERVED: u32 = 0x1;
const NDIS_STATUS_SUCCESS: i32 = 0;
const NDIS_STATUS_RESOURCES: i32 = 0xC000_009A_u32 as i32;
const NDIS_STATUS_INVALID_PARAMETER: i32 = 0xC000_000D_u32 as i32;
/// `NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1`.
const NB_POOL_PARAMETERS_SIZE: u16 = 12;
/// MDLs a clone copies at most (a chain longer than this is cut: a looped chain never hangs).
const MAX_CHAIN: usize = 4096;

/// `NET_BUFFER_POOL_PARAMETERS`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct NbPoolParameters {
    header_type: u8,
    header_revision: u8,
    header_size: u16,
    pool_tag: u32,
    data_size: u32,
}

const _: () = assert!(std::mem::size_of::<NbPoolParameters>() == 12);

/// Which allocator made a recorded list (and so which free function takes it back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Derived {
    /// NdisAllocateCloneNetBufferList.
    Clone,
    /// NdisAllocateFragmentNetBufferList with this DataOffsetDelta.
    Fragment(u32),
    /// NdisAllocateReassembledNetBufferList with this DataOffsetDelta.
    Reassembled(u32),
}

/// A clone (or fragment / reassembled list) the runtime made: its NET_BUFFERs and the MDL
/// copies and buffers it owns.
#[derive(Debug)]
struct Clone {
    derived: Derived,
    driver: usize,
    parent: usize,
    flags: u32,
    pool: usize,
    nbs: Vec<usize>,
    mdls: Vec<usize>,
    /// Private copies of the data (calloc'ed) the clone's NET_BUFFERs were moved onto.
    bufs: Vec<usize>,
    /// The parent's ChildRefCount counts this clone (false once the parent is gone, and for
    /// clones of the indicated list, which belongs to the engine).
    counted: bool,
}

impl Clone {
    /// Moves every NET_BUFFER of the clone onto a private copy of its data (one MDL each): the
    /// memory it described is going away (or is the engine's).
    ///
    /// # Safety
    /// The clone's NET_BUFFERs and the memory their MDLs describe are still valid.
    unsafe fn materialize(&mut self) {
        for &nb in &self.nbs {
            let nb = nb as *mut NetBuffer;
            // SAFETY: per the contract; the new MDL and buffer are recorded and freed once.
            unsafe {
                let d = &mut (*nb).data;
                let len = usize::try_from(d.data_length).unwrap_or(0).min(1 << 20);
                let buf = libc::calloc(1, len.max(1)).cast::<u8>();
                if buf.is_null() {
                    d.data_length = 0;
                    continue;
                }
                let out = std::slice::from_raw_parts_mut(buf, len);
                let got =
                    super::ndis::copy_from_chain(d.current_mdl, d.current_mdl_offset as usize, out);
                let mut m = mdl_for(buf.cast(), u32::try_from(got).unwrap_or(0));
                m.mdl_flags |= 0x1 | 0x4;
                let m = Box::into_raw(Box::new(m));
                self.mdls.push(m as usize);
                self.bufs.push(buf as usize);
                d.mdl_chain = m;
                d.current_mdl = m;
                d.current_mdl_offset = 0;
                d.data_offset = 0;
                d.data_length = got as u64;
            }
        }
    }
}

#[derive(Debug)]
struct NbPool {
    driver: usize,
    data_size: u32,
    outstanding: usize,
}

/// A NET_BUFFER from a NET_BUFFER pool (with its MDL and data for NdisAllocateNetBufferMdlAndData).
#[derive(Debug)]
struct PoolNb {
    driver: usize,
    pool: usize,
    /// (MDL, data) allocated with the NET_BUFFER.
    owned: Option<(usize, usize)>,
}

/// Clones, NET_BUFFER pools and NET_BUFFERs of one host (kept in [`super::ndispool::State`]).
#[derive(Debug, Default)]
pub(crate) struct NbState {
    clones: HashMap<usize, Clone>,
    pools: HashMap<usize, NbPool>,
    nbs: HashMap<usize, PoolNb>,
}

impl NbState {
    /// (what, count) driver `index` still holds.
    pub(crate) fn left_by(&self, index: usize) -> [(&'static str, usize); 3] {
        [
            (
                "NdisAllocateCloneNetBufferList / Fragment / Reassembled list(s) never freed",
                self.clones.values().filter(|c| c.driver == index).count(),
            ),
            (
                "NET_BUFFER pool(s) never freed",
                self.pools.values().filter(|p| p.driver == index).count(),
            ),
            (
                "NET_BUFFER(s) from NET_BUFFER pools never freed",
                self.nbs.values().filter(|n| n.driver == index).count(),
            ),
        ]
    }

    /// A NET_BUFFER of pool `pool` went back (the pool may already be gone).
    pub(crate) fn give_back(&mut self, pool: usize) {
        if let Some(p) = self.pools.get_mut(&pool) {
            p.outstanding = p.outstanding.saturating_sub(1);
        }
    }

    /// `parent` is being freed with clones of it alive: they keep a private copy of their data
    /// and stop counting in it. Returns how many.
    ///
    /// # Safety
    /// `parent` and the memory its clones describe are still valid.
    unsafe fn orphan(&mut self, parent: usize) -> usize {
        let mut n = 0;
        for c in self
            .clones
            .values_mut()
            .filter(|c| c.parent == parent && c.counted)
        {
            c.counted = false;
            // SAFETY: per the contract.
            unsafe { c.materialize() };
            n += 1;
        }
        n
    }

    /// Whether `nbl` is an NdisAllocateCloneNetBufferList clone.
    pub(crate) fn is_clone(&self, nbl: usize) -> bool {
        self.clones.contains_key(&nbl)
    }
}

fn finding(f: Finding) {
    ctx::with_host(|h| h.finding(f));
}

/// `ChildRefCount` of a live list, atomically (`delta` +1 / -1).
///
/// # Safety
/// `nbl` is a live NET_BUFFER_LIST.
pub(crate) unsafe fn add_child(nbl: *mut NetBufferList, delta: i32) -> i32 {
    // SAFETY: per the contract; the LONG is 4-aligned inside the 16-aligned list and NDIS
    // updates it interlocked.
    let a = unsafe { AtomicI32::from_ptr(std::ptr::addr_of_mut!((*nbl).child_ref_count)) };
    a.fetch_add(delta, Ordering::AcqRel) + delta
}

/// Copies of the MDL chain from `first`, the first one trimmed to start `offset` bytes in.
///
/// # Safety
/// `first` is null or the head of a valid MDL chain.
unsafe fn copy_chain(first: *mut Mdl, offset: u32, owned: &mut Vec<usize>) -> *mut Mdl {
    let mut head: *mut Mdl = std::ptr::null_mut();
    let mut tail: *mut Mdl = std::ptr::null_mut();
    let mut m = first;
    let mut skip = offset;
    // SAFETY: per the contract; every copy is a fresh box linked once.
    unsafe {
        while let Some(src) = m.as_ref() {
            if owned.len() >= MAX_CHAIN {
                break;
            }
            let start = skip.min(src.byte_count);
            let mut c = mdl_for(
                mdl_va(src).add(start as usize).cast(),
                src.byte_count - start,
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
            skip = 0;
            m = src.next;
        }
    }
    head
}

/// Builds the clone's NET_BUFFERs (one per original NB, from its data start).
///
/// # Safety
/// `original` is a live list with valid NBs and MDL chains.
unsafe fn clone_nbs(original: *mut NetBufferList, flags: u32, rec: &mut Clone) -> *mut NetBuffer {
    let mut first: *mut NetBuffer = std::ptr::null_mut();
    let mut last: *mut NetBuffer = std::ptr::null_mut();
    // SAFETY: per the contract; each NET_BUFFER is calloc'ed here and linked once.
    unsafe {
        let mut src = (*original).first_net_buffer;
        while let Some(s) = src.as_ref() {
            let nb = libc::calloc(1, std::mem::size_of::<NetBuffer>()).cast::<NetBuffer>();
            if nb.is_null() {
                break;
            }
            rec.nbs.push(nb as usize);
            let d = &mut (*nb).data;
            d.data_length = s.data.data_length;
            if flags & USE_ORIGINAL_MDLS != 0 {
                d.mdl_chain = s.data.current_mdl;
                d.current_mdl = s.data.current_mdl;
                d.current_mdl_offset = s.data.current_mdl_offset;
                d.data_offset = s.data.current_mdl_offset;
            } else {
                let chain =
                    copy_chain(s.data.current_mdl, s.data.current_mdl_offset, &mut rec.mdls);
                d.mdl_chain = chain;
                d.current_mdl = chain;
            }
            if last.is_null() {
                first = nb;
            } else {
                (*last).data.next = nb;
            }
            last = nb;
            src = s.data.next;
        }
    }
    first
}

/// NdisAllocateCloneNetBufferList (WDK nblapi.h): a list describing the same data as
/// `original` (no copy), `ParentNetBufferList` = original, whose ChildRefCount grows by one.
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisAllocateCloneNetBufferList(
    original: *mut NetBufferList,
    nbl_pool: *mut c_void,
    nb_pool: *mut c_void,
    flags: u32,
) -> *mut NetBufferList {
    boundary(
        "NdisAllocateCloneNetBufferList",
        std::ptr::null_mut(),
        || {
            ctx::check_irql("NdisAllocateCloneNetBufferList", 2);
            if original.is_null() {
                return std::ptr::null_mut();
            }
            let protocol = if nbl_pool.is_null() {
                Some(0)
            } else {
                ctx::with_host(|h| h.rt.ndis.lock().lend(nbl_pool as usize)).flatten()
            };
            let nb_pool_known = nb_pool.is_null()
                || ctx::with_host(|h| h.rt.ndis.lock().nb.pools.contains_key(&(nb_pool as usize)))
                    == Some(true);
            let (Some(protocol), true) = (protocol, nb_pool_known) else {
                if protocol.is_some() && !nbl_pool.is_null() {
                    ctx::with_host(|h| h.rt.ndis.lock().give_back(nbl_pool as usize));
                }
                finding(Finding::BadHandle {
                    function: "NdisAllocateCloneNetBufferList",
                });
                return std::ptr::null_mut();
            };
            // SAFETY: calloc has no preconditions; NULL is handled.
            let nbl = unsafe { libc::calloc(1, std::mem::size_of::<NetBufferList>()) }
                .cast::<NetBufferList>();
            if nbl.is_null() {
                return std::ptr::null_mut();
            }
            let mut rec = Clone {
                derived: Derived::Clone,
                driver: ctx::current_driver(),
                parent: original as usize,
                flags,
                pool: nbl_pool as usize,
                nbs: Vec::new(),
                mdls: Vec::new(),
                bufs: Vec::new(),
                counted: true,
            };
            // The indicated list is the engine's: a clone of it keeps a copy of its data and
            // does not count in it (it outlives classifyFn only as a copy, as a reference would
            // keep it).
            let indicated =
                super::invocation::with_current(|inv| inv.nbl == original) == Some(true);
            // SAFETY: the caller's live original list (WDK contract) and the fresh clone.
            unsafe {
                (*nbl).first_net_buffer = clone_nbs(original, flags, &mut rec);
                (*nbl).parent_net_buffer_list = original;
                (*nbl).ndis_pool_handle = nbl_pool;
                (*nbl).source_handle = (*original).source_handle;
                (*nbl).net_buffer_list_info[7] = usize::from(protocol) as *mut c_void;
                if indicated {
                    rec.counted = false;
                    rec.materialize();
                } else {
                    add_child(original, 1);
                }
            }
            ctx::with_host(|h| h.rt.ndis.lock().nb.clones.insert(nbl as usize, rec));
            nbl
        },
    )
}

/// NdisFreeCloneNetBufferList: the clone's NET_BUFFERs, its MDL copies and the list; the
/// parent's ChildRefCount drops by one. Flags must be those of the allocation.
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisFreeCloneNetBufferList(clone: *mut NetBufferList, flags: u32) {
    boundary("NdisFreeCloneNetBufferList", (), || {
        ctx::check_irql("NdisFreeCloneNetBufferList", 2);
        free_derived(clone, "NdisFreeCloneNetBufferList", |rec| {
            if rec.derived != Derived::Clone {
                return Some(format!("the list was made by {:?}", rec.derived));
            }
            ((flags ^ rec.flags) & (USE_ORIGINAL_MDLS | CLONE_RESERVED) != 0).then(|| {
                format!(
                    "flags {flags:#x}, the clone was allocated with {:#x}",
                    rec.flags
                )
            })
        });
    });
}

/// Frees a recorded clone / fragment / reassembled list with `what`: `problem` names a mismatch
/// with its allocation (a finding; the list is freed anyway). An unknown list: `DoubleFree`.
fn free_derived(
    list: *mut NetBufferList,
    what: &'static str,
    problem: impl FnOnce(&Clone) -> Option<String>,
) {
    let rec = ctx::with_host(|h| {
        let mut s = h.rt.ndis.lock();
        let r = s.nb.clones.remove(&(list as usize));
        if let Some(r) = &r {
            if r.pool != 0 {
                s.give_back(r.pool);
            }
        }
        r
    })
    .flatten();
    let Some(rec) = rec else {
        finding(Finding::DoubleFree {
            what,
            address: list as usize,
        });
        return;
    };
    super::nbltag::list_freed(list as usize);
    if let Some(p) = problem(&rec) {
        finding(Finding::Assertion {
            message: format!("{what}: {p}"),
        });
    }
    // SAFETY: the list and everything recorded with it were allocated by its allocator and were
    // still recorded, so each is freed once. The parent is alive (freeing a parent with clones
    // is a finding in its free function, which un-counts them).
    unsafe {
        check_no_children(list, what);
        if rec.counted {
            add_child(rec.parent as *mut NetBufferList, -1);
        }
        for m in rec.mdls {
            drop(Box::from_raw(m as *mut Mdl));
        }
        for b in rec.bufs {
            libc::free(b as *mut c_void);
        }
        for nb in rec.nbs {
            libc::free(nb as *mut c_void);
        }
        super::ndispool::release_added_contexts(list, std::ptr::null_mut(), what);
        libc::free(list.cast());
    }
}

/// The Verifier check every free of a list does: a parent freed while clones of it live.
///
/// # Safety
/// `nbl` is a live NET_BUFFER_LIST.
pub(crate) unsafe fn check_no_children(nbl: *const NetBufferList, what: &'static str) {
    // SAFETY: per the contract.
    let children = unsafe { (*nbl).child_ref_count };
    if children > 0 {
        finding(Finding::Assertion {
            message: format!("{what}: list {:#x} freed while {children} clone(s) of it still exist (ChildRefCount)", nbl as usize),
        });
        // SAFETY: the parent is still alive (its free has not happened yet).
        ctx::with_host(|h| unsafe { h.rt.ndis.lock().nb.orphan(nbl as usize) });
        // FwpsAllocateCloneNetBufferList0 clones own a copy of their data: they only stop
        // counting in the parent.
        ctx::with_host(|h| {
            for (_, r) in h.asyncs.lock().nbls.values_mut() {
                if r.parent == nbl as usize {
                    r.parent = 0;
                }
            }
        });
    }
}

/// NET_BUFFER_LIST_INFO slots NdisCopySendNetBufferListInfo copies (WDK nblapi.h page:
/// TcpIpChecksum, IPsecOffloadV1, TcpLargeSend, Ieee8021Q, MediaSpecificInformation,
/// NetBufferListCancelId, NetBufferListProtocolId, IPsecOffloadV2Tunnel / V2Header,
/// NetBufferListFilteringInfo; VirtualSubnetInfo has no slot in this ndis.h).
const SEND_INFO: [usize; 10] = [0, 1, 2, 4, 6, 5, 7, 12, 13, 15];
/// ... and NdisCopyReceiveNetBufferListInfo: TcpIpChecksum, IPsecOffloadV1, TcpReceiveNoPush,
/// Ieee8021Q, MediaSpecificInformation, NetBufferListFrameType, NetBufferListHashValue /
/// HashInfo, IPsecOffloadV2Tunnel / V2Header, NetBufferListFilteringInfo.
const RECEIVE_INFO: [usize; 11] = [0, 1, 2, 4, 6, 7, 8, 9, 12, 13, 15];

fn copy_info(dst: *mut NetBufferList, src: *const NetBufferList, slots: &[usize], what: &str) {
    ctx::check_irql("NdisCopy*NetBufferListInfo", 2);
    // SAFETY: the caller's live lists (checked non-null); the slots are inside the pinned
    // MaxNetBufferListInfo array.
    match unsafe { (dst.as_mut(), src.as_ref()) } {
        (Some(d), Some(s)) => {
            for &i in slots {
                d.net_buffer_list_info[i] = s.net_buffer_list_info[i];
            }
        }
        _ => finding(Finding::Assertion {
            message: format!("{what} with a NULL list"),
        }),
    }
}

/// NdisCopySendNetBufferListInfo (WDK nblapi.h; WFPSampler's KrnlHlprNBLCreateNew): copies the
/// send-path NET_BUFFER_LIST_INFO slots listed in [`SEND_INFO`] from Src to Dest.
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisCopySendNetBufferListInfo(
    dst: *mut NetBufferList,
    src: *const NetBufferList,
) {
    boundary("NdisCopySendNetBufferListInfo", (), || {
        copy_info(dst, src, &SEND_INFO, "NdisCopySendNetBufferListInfo");
    });
}

/// NdisCopyReceiveNetBufferListInfo (WDK nblapi.h): the receive-path slots of
/// [`RECEIVE_INFO`].
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisCopyReceiveNetBufferListInfo(
    dst: *mut NetBufferList,
    src: *const NetBufferList,
) {
    boundary("NdisCopyReceiveNetBufferListInfo", (), || {
        copy_info(dst, src, &RECEIVE_INFO, "NdisCopyReceiveNetBufferListInfo");
    });
}

/// NdisGetPoolFromNetBufferList: the pool the list was allocated from (NdisPoolHandle).
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisGetPoolFromNetBufferList(
    nbl: *const NetBufferList,
) -> *mut c_void {
    boundary("NdisGetPoolFromNetBufferList", std::ptr::null_mut(), || {
        // SAFETY: the caller's live list (checked non-null).
        unsafe { nbl.as_ref() }.map_or(std::ptr::null_mut(), |l| l.ndis_pool_handle)
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn NdisAllocateNetBufferPool(
    _ndis_handle: *mut c_void,
    params: *const NbPoolParameters,
) -> *mut c_void {
    boundary("NdisAllocateNetBufferPool", std::ptr::null_mut(), || {
        ctx::check_irql("NdisAllocateNetBufferPool", 0);
        // SAFETY: the caller's parameters (checked non-null).
        let Some(p) = (unsafe { params.as_ref() }) else {
            return std::ptr::null_mut();
        };
        if p.header_type != 0x80
            || p.header_revision < 1
            || p.header_size < NB_POOL_PARAMETERS_SIZE
            || p.pool_tag == 0
        {
            return std::ptr::null_mut();
        }
        let handle = Box::into_raw(Box::new(0u64)) as usize;
        let pool = NbPool {
            driver: ctx::current_driver(),
            data_size: p.data_size,
            outstanding: 0,
        };
        ctx::with_host(|h| h.rt.ndis.lock().nb.pools.insert(handle, pool));
        handle as *mut c_void
    })
}

#[no_mangle]
pub(crate) extern "C" fn NdisFreeNetBufferPool(pool: *mut c_void) {
    boundary("NdisFreeNetBufferPool", (), || {
        ctx::check_irql("NdisFreeNetBufferPool", 0);
        let r = ctx::with_host(|h| h.rt.ndis.lock().nb.pools.remove(&(pool as usize))).flatten();
        let Some(p) = r else {
            finding(Finding::BadHandle {
                function: "NdisFreeNetBufferPool",
            });
            return;
        };
        if p.outstanding > 0 {
            finding(Finding::Assertion {
                message: format!(
                    "NdisFreeNetBufferPool with {} NET_BUFFER(s) still allocated from it",
                    p.outstanding
                ),
            });
        }
        // SAFETY: the handle came from Box::into_raw in NdisAllocateNetBufferPool, forgotten now.
        drop(unsafe { Box::from_raw(pool.cast::<u64>()) });
    });
}

/// A NET_BUFFER from `pool` over `chain` (or with its own MDL and `data_size` bytes).
fn allocate_nb(
    pool: *mut c_void,
    chain: Option<(*mut Mdl, u32, u64)>,
    function: &'static str,
) -> *mut NetBuffer {
    let size = ctx::with_host(|h| {
        let mut s = h.rt.ndis.lock();
        let p = s.nb.pools.get_mut(&(pool as usize))?;
        p.outstanding += 1;
        Some(p.data_size)
    })
    .flatten();
    let Some(size) = size else {
        finding(Finding::BadHandle { function });
        return std::ptr::null_mut();
    };
    let undo = || ctx::with_host(|h| h.rt.ndis.lock().give_back_nb(pool as usize));
    // SAFETY: calloc has no preconditions; NULL is handled.
    let nb = unsafe { libc::calloc(1, std::mem::size_of::<NetBuffer>()) }.cast::<NetBuffer>();
    if nb.is_null() || (chain.is_none() && size == 0) {
        // SAFETY: free(NULL) is a no-op; a non-null nb was just calloc'ed.
        unsafe { libc::free(nb.cast()) };
        undo();
        return std::ptr::null_mut();
    }
    let mut owned = None;
    let (chain, offset, length) = match chain {
        Some(c) => c,
        None => {
            // SAFETY: as above.
            let buf = unsafe { libc::calloc(1, size as usize) };
            if buf.is_null() {
                // SAFETY: the NET_BUFFER just calloc'ed.
                unsafe { libc::free(nb.cast()) };
                undo();
                return std::ptr::null_mut();
            }
            let mut m = mdl_for(buf, size);
            m.mdl_flags |= 0x1 | 0x4;
            let m = Box::into_raw(Box::new(m));
            owned = Some((m as usize, buf as usize));
            (m, 0, u64::from(size))
        }
    };
    // SAFETY: the fresh NET_BUFFER; the chain is the caller's (or ours).
    unsafe {
        super::ndispool::set_nb_data(nb, chain, offset, length);
        (*nb).ndis_pool_handle = pool;
    }
    let rec = PoolNb {
        driver: ctx::current_driver(),
        pool: pool as usize,
        owned,
    };
    ctx::with_host(|h| h.rt.ndis.lock().nb.nbs.insert(nb as usize, rec));
    nb
}

#[no_mangle]
pub(crate) unsafe extern "C" fn NdisAllocateNetBuffer(
    pool: *mut c_void,
    chain: *mut Mdl,
    data_offset: u32,
    data_length: usize,
) -> *mut NetBuffer {
    boundary("NdisAllocateNetBuffer", std::ptr::null_mut(), || {
        ctx::check_irql("NdisAllocateNetBuffer", 2);
        let c = Some((chain, data_offset, data_length as u64));
        allocate_nb(pool, c, "NdisAllocateNetBuffer")
    })
}

/// NdisAllocateNetBufferMdlAndData: a NET_BUFFER with its own MDL over the pool's DataSize
/// zeroed bytes (DataLength = DataSize); NULL when the pool's DataSize is 0.
#[no_mangle]
pub(crate) extern "C" fn NdisAllocateNetBufferMdlAndData(pool: *mut c_void) -> *mut NetBuffer {
    boundary(
        "NdisAllocateNetBufferMdlAndData",
        std::ptr::null_mut(),
        || {
            ctx::check_irql("NdisAllocateNetBufferMdlAndData", 2);
            allocate_nb(pool, None, "NdisAllocateNetBufferMdlAndData")
        },
    )
}

#[no_mangle]
pub(crate) extern "C" fn NdisFreeNetBuffer(nb: *mut NetBuffer) {
    boundary("NdisFreeNetBuffer", (), || {
        ctx::check_irql("NdisFreeNetBuffer", 2);
        let r = ctx::with_host(|h| {
            let mut s = h.rt.ndis.lock();
            let r = s.nb.nbs.remove(&(nb as usize))?;
            s.give_back_nb(r.pool);
            Some(r)
        })
        .flatten();
        let Some(r) = r else {
            finding(Finding::DoubleFree {
                what: "NdisFreeNetBuffer",
                address: nb as usize,
            });
            return;
        };
        // SAFETY: the NET_BUFFER (and its own MDL and data) were allocated by allocate_nb and
        // were still recorded, so each is freed once. The caller's MDLs are not ours.
        unsafe {
            if let Some((m, buf)) = r.owned {
                drop(Box::from_raw(m as *mut Mdl));
                libc::free(buf as *mut c_void);
            }
            libc::free(nb.cast());
        }
    });
}

/// Walks to byte `offset` past a NET_BUFFER's data start: (MDL, offset in it, bytes in it from
/// there), or None past the chain.
///
/// # Safety
/// `nb`'s chain is valid.
unsafe fn seek(nb: &NetBuffer, offset: u64) -> Option<(*mut Mdl, usize)> {
    let mut m = nb.data.current_mdl;
    let mut rest = u64::from(nb.data.current_mdl_offset) + offset;
    // SAFETY: per the contract.
    unsafe {
        while let Some(md) = m.as_ref() {
            if rest < u64::from(md.byte_count) {
                return Some((m, rest as usize));
            }
            rest -= u64::from(md.byte_count);
            m = md.next;
        }
    }
    None
}

/// NdisCopyFromNetBufferToNetBuffer: up to `bytes` from `source_offset` past the source's data
/// start (its DataLength bounds it) into the destination's MDLs from `dest_offset` past its data
/// start (the MDL chain bounds it; the destination's members are not changed).
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisCopyFromNetBufferToNetBuffer(
    dest: *mut NetBuffer,
    dest_offset: u32,
    bytes: u32,
    source: *const NetBuffer,
    source_offset: u32,
    copied: *mut u32,
) -> i32 {
    boundary(
        "NdisCopyFromNetBufferToNetBuffer",
        NDIS_STATUS_RESOURCES,
        || {
            ctx::check_irql("NdisCopyFromNetBufferToNetBuffer", 2);
            // SAFETY: the caller's NET_BUFFERs and out-pointer (checked non-null).
            let (Some(d), Some(s), Some(out)) =
                (unsafe { (dest.as_ref(), source.as_ref(), copied.as_mut()) })
            else {
                return NDIS_STATUS_INVALID_PARAMETER;
            };
            *out = 0;
            let available = s.data.data_length.saturating_sub(u64::from(source_offset));
            let want = u64::from(bytes).min(available);
            // SAFETY: both chains are valid (WDK contract); every copy stays inside one source MDL
            // and one destination MDL.
            unsafe {
                let Some((mut sm, mut so)) = seek(s, u64::from(source_offset)) else {
                    return NDIS_STATUS_SUCCESS;
                };
                let Some((mut dm, mut dof)) = seek(d, u64::from(dest_offset)) else {
                    return NDIS_STATUS_SUCCESS;
                };
                let mut done = 0u64;
                while done < want && !sm.is_null() && !dm.is_null() {
                    let (smd, dmd) = (&*sm, &*dm);
                    let n = (smd.byte_count as usize - so)
                        .min(dmd.byte_count as usize - dof)
                        .min((want - done) as usize);
                    std::ptr::copy(mdl_va(smd).add(so), mdl_va(dmd).add(dof), n);
                    done += n as u64;
                    so += n;
                    dof += n;
                    if so == smd.byte_count as usize {
                        sm = smd.next;
                        so = 0;
                    }
                    if dof == dmd.byte_count as usize {
                        dm = dmd.next;
                        dof = 0;
                    }
                }
                *out = u32::try_from(done).unwrap_or(u32::MAX);
            }
            NDIS_STATUS_SUCCESS
        },
    )
}
