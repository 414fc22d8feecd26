//! NDIS pools and generic objects (wdk-runtime.md §6): NdisAllocateNetBufferListPool with
//! NET_BUFFER_LIST_POOL_PARAMETERS, NdisAllocateNetBufferList / NdisAllocateNetBufferAndNetBufferList
//! (with NET_BUFFER_LIST_CONTEXT space), NdisFreeNetBufferList, NdisFreeNetBufferListPool,
//! NdisAllocateGenericObject / NdisFreeGenericObject. Every pool, NBL and generic object is
//! recorded per driver: frees of unknown ones and what is left at unload are Verifier findings.

use std::collections::HashMap;
use std::ffi::c_void;

use super::boundary;
use super::ctx;
use super::types::{Mdl, NetBuffer, NetBufferList};
use crate::verifier::Finding;

const NDIS_OBJECT_TYPE_DEFAULT: u8 = 0x80;
const NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1`.
const POOL_PARAMETERS_SIZE: u16 = 16;
/// `sizeof(NET_BUFFER_LIST_CONTEXT)` (its data is 16-aligned).
const CONTEXT_HEADER: usize = 16;
/// `sizeof(NDIS_GENERIC_OBJECT)`.
const GENERIC_OBJECT_SIZE: usize = 32;

/// `NET_BUFFER_LIST_POOL_PARAMETERS`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct PoolParameters {
    header_type: u8,
    header_revision: u8,
    header_size: u16,
    protocol_id: u8,
    allocate_net_buffer: u8,
    context_size: u16,
    pool_tag: u32,
    data_size: u32,
}

const _: () = assert!(std::mem::size_of::<PoolParameters>() == 16);

#[derive(Debug)]
struct Pool {
    driver: usize,
    allocate_net_buffer: bool,
    protocol_id: u8,
    /// NET_BUFFER_LIST_POOL_PARAMETERS.ContextSize: context space preallocated with each list.
    context_size: u16,
    outstanding: usize,
}

#[derive(Debug)]
struct Nbl {
    driver: usize,
    pool: usize,
    context: usize,
    net_buffer: usize,
}

/// NDIS objects of one host.
#[derive(Debug, Default)]
pub(crate) struct State {
    pools: HashMap<usize, Pool>,
    nbls: HashMap<usize, Nbl>,
    /// Generic object → driver.
    generic: HashMap<usize, usize>,
    /// NET_BUFFER_LIST_CONTEXT blocks NdisAllocateNetBufferListContext added → driver.
    contexts: HashMap<usize, usize>,
    /// NdisAllocateCloneNetBufferList clones, NET_BUFFER pools and their NET_BUFFERs.
    pub(crate) nb: super::ndisnb::NbState,
}

impl State {
    /// (pools, NBLs, generic objects) driver `index` still holds.
    pub(crate) fn left_by(&self, index: usize) -> Vec<(&'static str, usize)> {
        vec![
            (
                "NBL pool(s) never freed",
                self.pools.values().filter(|p| p.driver == index).count(),
            ),
            (
                "NET_BUFFER_LIST(s) from NDIS pools never freed",
                self.nbls.values().filter(|n| n.driver == index).count(),
            ),
            (
                "NDIS generic object(s) never freed",
                self.generic.values().filter(|d| **d == index).count(),
            ),
            (
                "NET_BUFFER_LIST_CONTEXT space from NdisAllocateNetBufferListContext never freed",
                self.contexts.values().filter(|d| **d == index).count(),
            ),
        ]
        .into_iter()
        .chain(self.nb.left_by(index))
        .collect()
    }
}

impl State {
    /// NBL interop (wdk-runtime.md §6; FwpsAllocateNetBufferAndNetBufferList0 takes a pool from
    /// NdisAllocateNetBufferListPool): a list another allocator made from `pool` counts against
    /// it until freed. The pool's protocol id; `None` for a handle that is not a live pool.
    pub(crate) fn lend(&mut self, pool: usize) -> Option<u8> {
        let p = self.pools.get_mut(&pool)?;
        p.outstanding += 1;
        Some(p.protocol_id)
    }

    /// The matching return of [`State::lend`] (the pool may already be gone).
    pub(crate) fn give_back(&mut self, pool: usize) {
        if let Some(p) = self.pools.get_mut(&pool) {
            p.outstanding = p.outstanding.saturating_sub(1);
        }
    }

    /// The matching return of a NET_BUFFER taken from NET_BUFFER pool `pool`.
    pub(crate) fn give_back_nb(&mut self, pool: usize) {
        self.nb.give_back(pool);
    }

    /// Whether `nbl` came from NdisAllocateNetBufferList / NdisAllocateNetBufferAndNetBufferList.
    pub(crate) fn owns(&self, nbl: usize) -> bool {
        self.nbls.contains_key(&nbl)
    }
}

fn finding(f: Finding) {
    ctx::with_host(|h| h.finding(f));
}

#[no_mangle]
pub(crate) unsafe extern "C" fn NdisAllocateNetBufferListPool(
    _ndis_handle: *mut c_void,
    params: *const PoolParameters,
) -> *mut c_void {
    boundary(
        "NdisAllocateNetBufferListPool",
        std::ptr::null_mut(),
        || {
            super::ctx::check_irql("NdisAllocateNetBufferListPool", 0);
            // SAFETY: the caller's parameters (checked non-null).
            let Some(p) = (unsafe { params.as_ref() }) else {
                return std::ptr::null_mut();
            };
            if p.header_type != NDIS_OBJECT_TYPE_DEFAULT
                || p.header_revision < NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1
                || p.header_size < POOL_PARAMETERS_SIZE
                || p.pool_tag == 0
            {
                return std::ptr::null_mut();
            }
            let handle = Box::into_raw(Box::new(0u64)) as usize;
            ctx::with_host(|h| {
                h.rt.ndis.lock().pools.insert(
                    handle,
                    Pool {
                        driver: ctx::current_driver(),
                        allocate_net_buffer: p.allocate_net_buffer != 0,
                        protocol_id: p.protocol_id,
                        context_size: p.context_size,
                        outstanding: 0,
                    },
                );
            });
            handle as *mut c_void
        },
    )
}

#[no_mangle]
pub(crate) extern "C" fn NdisFreeNetBufferListPool(pool: *mut c_void) {
    boundary("NdisFreeNetBufferListPool", (), || {
        super::ctx::check_irql("NdisFreeNetBufferListPool", 0);
        let r = ctx::with_host(|h| h.rt.ndis.lock().pools.remove(&(pool as usize))).flatten();
        match r {
            Some(p) => {
                if p.outstanding > 0 {
                    finding(Finding::Assertion {
                        message: format!(
                            "NdisFreeNetBufferListPool with {} NET_BUFFER_LIST(s) still allocated from it",
                            p.outstanding
                        ),
                    });
                }
                // SAFETY: the pool handle came from Box::into_raw above and was just forgotten.
                drop(unsafe { Box::from_raw(pool.cast::<u64>()) });
            }
            None => finding(Finding::BadHandle {
                function: "NdisFreeNetBufferListPool",
            }),
        }
    });
}

/// Allocates zeroed, 16-aligned memory for `T` with the system allocator.
fn zeroed<T>() -> *mut T {
    // SAFETY: calloc has no preconditions; NULL is checked by the callers. calloc memory is
    // aligned for any fundamental type (16 on x86-64/aarch64 glibc).
    unsafe { libc::calloc(1, std::mem::size_of::<T>()).cast::<T>() }
}

/// Points a NET_BUFFER at `offset` into an MDL chain (CurrentMdl / CurrentMdlOffset).
///
/// # Safety
/// `nb` is a live NET_BUFFER; `chain` is NULL or a valid MDL chain.
pub(crate) unsafe fn set_nb_data(nb: *mut NetBuffer, chain: *mut Mdl, offset: u32, length: u64) {
    // SAFETY: per the contract.
    unsafe {
        let d = &mut (*nb).data;
        d.mdl_chain = chain;
        d.data_offset = offset;
        d.data_length = length;
        let mut m = chain;
        let mut rest = offset;
        while let Some(mm) = m.as_ref() {
            if rest < mm.byte_count || mm.next.is_null() {
                break;
            }
            rest -= mm.byte_count;
            m = mm.next;
        }
        d.current_mdl = m;
        d.current_mdl_offset = rest;
    }
}

fn allocate_nbl(
    pool: *mut c_void,
    context_size: u16,
    backfill: u16,
    with_nb: Option<(*mut Mdl, u32, u64)>,
    function: &'static str,
) -> *mut NetBufferList {
    let known = ctx::with_host(|h| {
        h.rt.ndis
            .lock()
            .pools
            .get(&(pool as usize))
            .map(|p| (p.allocate_net_buffer, p.protocol_id, p.context_size))
    })
    .flatten();
    let Some((can_nb, protocol, preallocated)) = known else {
        finding(Finding::BadHandle { function });
        return std::ptr::null_mut();
    };
    if with_nb.is_some() && !can_nb {
        return std::ptr::null_mut();
    }
    let nbl = zeroed::<NetBufferList>();
    if nbl.is_null() {
        return std::ptr::null_mut();
    }
    // The pool's preallocated space, or more when this call asks for more (Size: all of it;
    // Offset: the unused part in front of the ContextSize bytes in use).
    let total = (usize::from(context_size) + usize::from(backfill)).max(usize::from(preallocated));
    let context = if total > 0 {
        let c = new_context_block(total, usize::from(context_size));
        if c.is_null() {
            // SAFETY: the NBL calloc'ed above, not yet handed out.
            unsafe { libc::free(nbl.cast()) };
            return std::ptr::null_mut();
        }
        c as usize
    } else {
        0
    };
    let mut nb = std::ptr::null_mut::<NetBuffer>();
    if let Some((chain, offset, length)) = with_nb {
        nb = zeroed::<NetBuffer>();
        if !nb.is_null() {
            // SAFETY: a fresh NET_BUFFER and the caller's MDL chain.
            unsafe {
                set_nb_data(nb, chain, offset, length);
                (*nb).ndis_pool_handle = pool;
            }
        }
    }
    // SAFETY: the fresh, zeroed NET_BUFFER_LIST.
    unsafe {
        (*nbl).first_net_buffer = nb;
        (*nbl).context = context as *mut c_void;
        (*nbl).ndis_pool_handle = pool;
        // NdisSetNetBufferListProtocolId: the low byte of the ProtocolId info slot.
        (*nbl).net_buffer_list_info[7] = usize::from(protocol) as *mut c_void;
    }
    ctx::with_host(|h| {
        let mut s = h.rt.ndis.lock();
        if let Some(p) = s.pools.get_mut(&(pool as usize)) {
            p.outstanding += 1;
        }
        s.nbls.insert(
            nbl as usize,
            Nbl {
                driver: ctx::current_driver(),
                pool: pool as usize,
                context,
                net_buffer: nb as usize,
            },
        );
    });
    nbl
}

#[no_mangle]
pub(crate) extern "C" fn NdisAllocateNetBufferList(
    pool: *mut c_void,
    context_size: u16,
    backfill: u16,
) -> *mut NetBufferList {
    boundary("NdisAllocateNetBufferList", std::ptr::null_mut(), || {
        super::ctx::check_irql("NdisAllocateNetBufferList", 2);
        allocate_nbl(
            pool,
            context_size,
            backfill,
            None,
            "NdisAllocateNetBufferList",
        )
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn NdisAllocateNetBufferAndNetBufferList(
    pool: *mut c_void,
    context_size: u16,
    backfill: u16,
    chain: *mut Mdl,
    data_offset: u32,
    data_length: usize,
) -> *mut NetBufferList {
    boundary(
        "NdisAllocateNetBufferAndNetBufferList",
        std::ptr::null_mut(),
        || {
            super::ctx::check_irql("NdisAllocateNetBufferAndNetBufferList", 2);
            allocate_nbl(
                pool,
                context_size,
                backfill,
                Some((chain, data_offset, data_length as u64)),
                "NdisAllocateNetBufferAndNetBufferList",
            )
        },
    )
}

#[no_mangle]
pub(crate) extern "C" fn NdisFreeNetBufferList(nbl: *mut NetBufferList) {
    boundary("NdisFreeNetBufferList", (), || {
        super::ctx::check_irql("NdisFreeNetBufferList", 2);
        // One owner per list: a list FwpsAllocateNetBufferAndNetBufferList0 made is freed by
        // FwpsFreeNetBufferList0 (WDK); the wrong free is a finding and the right one is done.
        let clone = ctx::with_host(|h| h.rt.ndis.lock().nb.is_clone(nbl as usize));
        if clone == Some(true) {
            finding(Finding::Assertion {
                message: format!("NdisFreeNetBufferList: list {:#x} was allocated by NdisAllocateCloneNetBufferList (free it with NdisFreeCloneNetBufferList)", nbl as usize),
            });
            // SAFETY: a clone this runtime made (recorded); the flags of its allocation are
            // unknown here, so the mismatch finding may follow.
            unsafe { super::ndisnb::NdisFreeCloneNetBufferList(nbl, 0) };
            return;
        }
        let fwps = ctx::with_host(|h| h.asyncs.lock().nbls.contains_key(&(nbl as usize)));
        if fwps == Some(true) {
            finding(Finding::Assertion {
                message: format!("NdisFreeNetBufferList: list {:#x} was allocated by FwpsAllocateNetBufferAndNetBufferList0 (free it with FwpsFreeNetBufferList0)", nbl as usize),
            });
            super::nblapi::FwpsFreeNetBufferList0(nbl);
            return;
        }
        free_ndis_list(nbl);
    });
}

/// Frees a list NdisAllocateNetBufferList* made (an unknown one is a double free).
pub(crate) fn free_ndis_list(nbl: *mut NetBufferList) {
    {
        let r = ctx::with_host(|h| {
            let mut s = h.rt.ndis.lock();
            let n = s.nbls.remove(&(nbl as usize))?;
            if let Some(p) = s.pools.get_mut(&n.pool) {
                p.outstanding = p.outstanding.saturating_sub(1);
            }
            Some(n)
        })
        .flatten();
        let Some(n) = r else {
            finding(Finding::DoubleFree {
                what: "NdisFreeNetBufferList",
                address: nbl as usize,
            });
            return;
        };
        super::nbltag::list_freed(nbl as usize);
        // SAFETY: a live list this runtime made; `n.context` is its preallocated block.
        unsafe {
            super::ndisnb::check_no_children(nbl, "NdisFreeNetBufferList");
            release_added_contexts(nbl, n.context as *mut u8, "NdisFreeNetBufferList");
        }
        // SAFETY: the NBL, its context and its NET_BUFFER were calloc'ed by allocate_nbl and
        // were still recorded, so each is freed once. The caller's MDLs are not ours to free.
        unsafe {
            libc::free(n.context as *mut c_void);
            libc::free(n.net_buffer as *mut c_void);
            libc::free(nbl.cast());
        }
    }
}

#[no_mangle]
pub(crate) extern "C" fn NdisAllocateGenericObject(
    driver_object: *mut c_void,
    _tag: u32,
    size: u16,
) -> *mut c_void {
    boundary("NdisAllocateGenericObject", std::ptr::null_mut(), || {
        super::ctx::check_irql("NdisAllocateGenericObject", 2);
        // SAFETY: calloc has no preconditions; NULL is returned as the failure value.
        let p = unsafe { libc::calloc(1, GENERIC_OBJECT_SIZE + usize::from(size)) }.cast::<u8>();
        if p.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: the NDIS_GENERIC_OBJECT just allocated: Header {Type, Revision, Size}, Caller,
        // CallersCaller, DriverObject.
        unsafe {
            p.write(NDIS_OBJECT_TYPE_DEFAULT);
            p.add(1).write(1);
            p.add(2)
                .cast::<u16>()
                .write(u16::try_from(GENERIC_OBJECT_SIZE).unwrap_or(0));
            p.add(24).cast::<*mut c_void>().write(driver_object);
        }
        ctx::with_host(|h| {
            h.rt.ndis
                .lock()
                .generic
                .insert(p as usize, ctx::current_driver());
        });
        p.cast()
    })
}

#[no_mangle]
pub(crate) extern "C" fn NdisFreeGenericObject(object: *mut c_void) {
    boundary("NdisFreeGenericObject", (), || {
        super::ctx::check_irql("NdisFreeGenericObject", 2);
        let known = ctx::with_host(|h| h.rt.ndis.lock().generic.remove(&(object as usize)))
            .flatten()
            .is_some();
        if known {
            // SAFETY: allocated by NdisAllocateGenericObject (calloc) and just forgotten.
            unsafe { libc::free(object) };
        } else {
            finding(Finding::DoubleFree {
                what: "NdisFreeGenericObject",
                address: object as usize,
            });
        }
    });
}

// ---- NET_BUFFER_LIST_CONTEXT (wdk-runtime.md §6) --------------------------------------------
// A block is {Next (8 bytes), Size (u16), Offset (u16), padding to 16, ContextData[Size]}: Size is
// all of the data space, Offset its unused front part (the used data starts at ContextData +
// Offset, where NET_BUFFER_LIST_CONTEXT_DATA_START points).

/// A zeroed context block with `total` bytes of data space, `used` of them in use (at its end).
pub(crate) fn new_context_block(total: usize, used: usize) -> *mut u8 {
    let (Ok(size), Ok(offset)) = (u16::try_from(total), u16::try_from(total - used.min(total)))
    else {
        return std::ptr::null_mut();
    };
    // SAFETY: calloc has no preconditions; NULL is returned to the caller.
    let c = unsafe { libc::calloc(1, CONTEXT_HEADER + total) }.cast::<u8>();
    if !c.is_null() {
        // SAFETY: the header of the block just allocated: Next (NULL), Size, Offset.
        unsafe {
            c.add(8).cast::<u16>().write(size);
            c.add(10).cast::<u16>().write(offset);
        }
    }
    c
}

/// Frees the blocks NdisAllocateNetBufferListContext put in front of `preallocated` in the list's
/// context chain (a driver that frees a list without NdisFreeNetBufferListContext first: a
/// finding) and leaves the chain at `preallocated`.
///
/// # Safety
/// `nbl` is a live NET_BUFFER_LIST whose context chain ends in `preallocated` (or NULL).
pub(crate) unsafe fn release_added_contexts(
    nbl: *mut NetBufferList,
    preallocated: *mut u8,
    what: &'static str,
) {
    let mut freed = 0;
    // SAFETY: per the contract; every block before `preallocated` was added (calloc'ed) by
    // NdisAllocateNetBufferListContext and is linked once.
    unsafe {
        let mut c = (*nbl).context.cast::<u8>();
        while !c.is_null() && c != preallocated {
            let next = c.cast::<*mut u8>().read();
            ctx::with_host(|h| h.rt.ndis.lock().contexts.remove(&(c as usize)));
            libc::free(c.cast());
            freed += 1;
            c = next;
        }
        (*nbl).context = preallocated.cast();
    }
    if freed > 0 {
        finding(Finding::Assertion {
            message: format!("{what}: {freed} NET_BUFFER_LIST_CONTEXT block(s) from NdisAllocateNetBufferListContext not freed with NdisFreeNetBufferListContext first"),
        });
    }
}

/// `NdisAllocateNetBufferListContext`: `size` more bytes of context in use — taken from the
/// unused front of the current block (Offset decreases) or from a new block of `size + backfill`
/// bytes put in front of the chain. Sizes must be multiples of sizeof(void*).
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisAllocateNetBufferListContext(
    nbl: *mut NetBufferList,
    size: u16,
    backfill: u16,
    _tag: u32,
) -> i32 {
    boundary(
        "NdisAllocateNetBufferListContext",
        super::STATUS_INVALID_PARAMETER,
        || {
            super::ctx::check_irql("NdisAllocateNetBufferListContext", 2);
            if nbl.is_null() || size == 0 || size % 8 != 0 || backfill % 8 != 0 {
                return super::STATUS_INVALID_PARAMETER;
            }
            // SAFETY: the caller's live NET_BUFFER_LIST and its context chain.
            unsafe {
                let c = (*nbl).context.cast::<u8>();
                if !c.is_null() {
                    let offset = c.add(10).cast::<u16>();
                    if offset.read() >= size {
                        offset.write(offset.read() - size);
                        return super::STATUS_SUCCESS;
                    }
                }
                let total = usize::from(size) + usize::from(backfill);
                let n = new_context_block(total, usize::from(size));
                if n.is_null() {
                    return super::STATUS_INSUFFICIENT_RESOURCES;
                }
                n.cast::<*mut u8>().write(c);
                (*nbl).context = n.cast();
                ctx::with_host(|h| {
                    h.rt.ndis
                        .lock()
                        .contexts
                        .insert(n as usize, ctx::current_driver())
                });
            }
            super::STATUS_SUCCESS
        },
    )
}

/// `NdisFreeNetBufferListContext`: `size` bytes of context no longer in use (Offset increases);
/// a block NdisAllocateNetBufferListContext added goes once none of it is in use. Freeing more
/// than is in use is a finding (nothing changes).
#[no_mangle]
pub(crate) unsafe extern "C" fn NdisFreeNetBufferListContext(nbl: *mut NetBufferList, size: u16) {
    boundary("NdisFreeNetBufferListContext", (), || {
        super::ctx::check_irql("NdisFreeNetBufferListContext", 2);
        // SAFETY: the caller's live NET_BUFFER_LIST and its context chain.
        unsafe {
            let c = if nbl.is_null() {
                std::ptr::null_mut()
            } else {
                (*nbl).context.cast::<u8>()
            };
            if c.is_null() {
                finding(Finding::Assertion {
                    message: "NdisFreeNetBufferListContext: the list has no context".into(),
                });
                return;
            }
            let total = c.add(8).cast::<u16>().read();
            let offset = c.add(10).cast::<u16>();
            let used = total - offset.read().min(total);
            if size > used {
                finding(Finding::Assertion {
                    message: format!(
                        "NdisFreeNetBufferListContext: {size} bytes freed, {used} in use"
                    ),
                });
                return;
            }
            offset.write(offset.read() + size);
            if size == used {
                let added = ctx::with_host(|h| h.rt.ndis.lock().contexts.remove(&(c as usize)))
                    .flatten()
                    .is_some();
                if added {
                    (*nbl).context = c.cast::<*mut c_void>().read();
                    libc::free(c.cast());
                }
            }
        }
    });
}
