//! NDIS and MDL functions (wdk-runtime.md §6): IoAllocateMdl/IoFreeMdl/MmBuildMdlForNonPagedPool,
//! NdisGetDataBuffer, NdisRetreat/AdvanceNetBufferDataStart.

use std::ffi::c_void;

use super::boundary;
use super::ctx;
use super::types::{Mdl, NetBuffer};
use crate::verifier::Finding;

const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x1;
const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x4;
const MDL_ALLOCATED_FIXED_SIZE: i16 = 0x8;
const NDIS_STATUS_SUCCESS: i32 = 0;
const NDIS_STATUS_RESOURCES: i32 = 0xC000_009A_u32 as i32;

/// An MDL describing `len` bytes at `va` (StartVa page-aligned, ByteOffset the rest).
pub(crate) fn mdl_for(va: *mut c_void, len: u32) -> Mdl {
    let addr = va as usize;
    Mdl {
        next: std::ptr::null_mut(),
        size: i16::try_from(std::mem::size_of::<Mdl>()).unwrap_or(0),
        mdl_flags: MDL_ALLOCATED_FIXED_SIZE,
        process: std::ptr::null_mut(),
        mapped_system_va: va,
        start_va: (addr & !0xFFF) as *mut c_void,
        byte_count: len,
        byte_offset: u32::try_from(addr & 0xFFF).unwrap_or(0),
    }
}

/// The first byte an MDL describes.
pub(crate) fn mdl_va(m: &Mdl) -> *mut u8 {
    (m.start_va as usize + m.byte_offset as usize) as *mut u8
}

#[no_mangle]
pub(crate) extern "C" fn IoAllocateMdl(
    va: *mut c_void,
    length: u32,
    _secondary: u8,
    _charge_quota: u8,
    _irp: *mut c_void,
) -> *mut Mdl {
    boundary("IoAllocateMdl", std::ptr::null_mut(), || {
        let m = Box::into_raw(Box::new(mdl_for(va, length)));
        ctx::with_host(|h| {
            h.tracker
                .lock()
                .mdls
                .insert(m as usize, (length, ctx::current_driver()))
        });
        m
    })
}

#[no_mangle]
pub(crate) extern "C" fn IoFreeMdl(m: *mut Mdl) {
    boundary("IoFreeMdl", (), || {
        if m.is_null() {
            return;
        }
        let known = ctx::with_host(|h| h.tracker.lock().mdls.remove(&(m as usize)).is_some());
        match known {
            Some(true) => {
                // SAFETY: `m` came from IoAllocateMdl (Box::into_raw) and was still recorded, so it
                // is freed once.
                drop(unsafe { Box::from_raw(m) });
            }
            _ => {
                ctx::with_host(|h| {
                    h.finding(Finding::DoubleFree {
                        what: "IoFreeMdl",
                        address: m as usize,
                    });
                });
            }
        }
    });
}

const MDL_PAGES_LOCKED: i16 = 0x2;

/// MmProbeAndLockPages (WDK km/wdm.h): makes the pages an MDL describes resident and locks them
/// (MDL_PAGES_LOCKED), so MmGetSystemAddressForMdlSafe may map them. Every page of the host is
/// resident: the MDL is marked and its system address is its buffer. Windows raises
/// STATUS_ACCESS_VIOLATION for a buffer it cannot probe; the host raises no exceptions
/// (wdk-runtime.md §10) and has no unmapped addresses to report. Findings: a NULL MDL, one whose
/// pages are already locked (the WDK forbids locking twice), IRQL above DISPATCH_LEVEL.
#[no_mangle]
pub(crate) unsafe extern "C" fn MmProbeAndLockPages(m: *mut Mdl, _mode: i8, _operation: u32) {
    boundary("MmProbeAndLockPages", (), || {
        ctx::check_irql("MmProbeAndLockPages", ctx::DISPATCH_LEVEL);
        // SAFETY: the caller's MDL (checked non-null), which it keeps while it uses it.
        let problem = match unsafe { m.as_mut() } {
            None => "MmProbeAndLockPages of a NULL MDL",
            Some(m) if m.mdl_flags & MDL_PAGES_LOCKED != 0 => {
                "MmProbeAndLockPages of an MDL whose pages are already locked"
            }
            Some(m) => {
                m.mapped_system_va = mdl_va(m).cast();
                m.mdl_flags |= MDL_PAGES_LOCKED | MDL_MAPPED_TO_SYSTEM_VA;
                return;
            }
        };
        ctx::assertion(problem);
    });
}

/// MmUnlockPages (WDK km/wdm.h): undoes MmProbeAndLockPages (and the system mapping made for
/// it); the MDL can then be freed with IoFreeMdl. Findings: a NULL MDL, one whose pages are not
/// locked (nothing changes), IRQL above DISPATCH_LEVEL.
#[no_mangle]
pub(crate) unsafe extern "C" fn MmUnlockPages(m: *mut Mdl) {
    boundary("MmUnlockPages", (), || {
        ctx::check_irql("MmUnlockPages", ctx::DISPATCH_LEVEL);
        // SAFETY: the caller's MDL (checked non-null).
        let problem = match unsafe { m.as_mut() } {
            None => "MmUnlockPages of a NULL MDL",
            Some(m) if m.mdl_flags & MDL_PAGES_LOCKED == 0 => {
                "MmUnlockPages of an MDL whose pages are not locked"
            }
            Some(m) => {
                m.mdl_flags &= !(MDL_PAGES_LOCKED | MDL_MAPPED_TO_SYSTEM_VA);
                return;
            }
        };
        ctx::assertion(problem);
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn MmBuildMdlForNonPagedPool(m: *mut Mdl) {
    boundary("MmBuildMdlForNonPagedPool", (), || {
        // SAFETY: the caller's MDL (checked non-null).
        if let Some(m) = unsafe { m.as_mut() } {
            m.mapped_system_va = mdl_va(m).cast();
            m.mdl_flags |= MDL_SOURCE_IS_NONPAGED_POOL;
        }
    });
}

/// Copies `len` bytes of an MDL chain starting `offset` bytes into `mdl` to `out`; returns how
/// many were available.
///
/// # Safety
/// `mdl` must be null or the head of a valid MDL chain whose buffers are readable.
pub(crate) unsafe fn copy_from_chain(
    mut mdl: *const Mdl,
    mut offset: usize,
    out: &mut [u8],
) -> usize {
    let mut done = 0;
    // SAFETY: per the contract, every MDL in the chain and the bytes it describes are readable.
    unsafe {
        while let Some(m) = mdl.as_ref() {
            let count = m.byte_count as usize;
            if offset < count && done < out.len() {
                let n = (count - offset).min(out.len() - done);
                std::ptr::copy_nonoverlapping(mdl_va(m).add(offset), out.as_mut_ptr().add(done), n);
                done += n;
                offset = 0;
            } else {
                offset = offset.saturating_sub(count);
            }
            if done == out.len() {
                break;
            }
            mdl = m.next;
        }
    }
    done
}

#[no_mangle]
pub(crate) unsafe extern "C" fn NdisGetDataBuffer(
    nb: *mut NetBuffer,
    needed: u32,
    storage: *mut c_void,
    align_multiple: u32,
    align_offset: u32,
) -> *mut c_void {
    boundary("NdisGetDataBuffer", std::ptr::null_mut(), || {
        // SAFETY: the caller's NET_BUFFER (checked non-null), whose MDLs describe readable memory.
        let Some(nb) = (unsafe { nb.as_ref() }) else {
            return std::ptr::null_mut();
        };
        let d = &nb.data;
        if d.data_length < u64::from(needed) {
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        if let Some(m) = unsafe { d.current_mdl.as_ref() } {
            let start = d.current_mdl_offset as usize;
            if (m.byte_count as usize).saturating_sub(start) >= needed as usize {
                // SAFETY: start < byte_count, inside the MDL's buffer.
                let p = unsafe { mdl_va(m).add(start) };
                let multiple = align_multiple.max(1) as usize;
                if (p as usize) % multiple == align_offset as usize % multiple {
                    return p.cast();
                }
            }
        }
        if storage.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller provides `needed` bytes of storage; the chain is readable.
        let out = unsafe { std::slice::from_raw_parts_mut(storage.cast::<u8>(), needed as usize) };
        // SAFETY: as above.
        let n = unsafe { copy_from_chain(d.current_mdl, d.current_mdl_offset as usize, out) };
        if n < needed as usize {
            return std::ptr::null_mut();
        }
        storage
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn NdisRetreatNetBufferDataStart(
    nb: *mut NetBuffer,
    delta: u32,
    backfill: u32,
    _alloc: *const c_void,
) -> i32 {
    boundary(
        "NdisRetreatNetBufferDataStart",
        NDIS_STATUS_RESOURCES,
        || {
            // SAFETY: the caller's NET_BUFFER (checked non-null).
            let Some(nb) = (unsafe { nb.as_mut() }) else {
                return NDIS_STATUS_RESOURCES;
            };
            let d = &mut nb.data;
            if d.current_mdl_offset >= delta {
                d.current_mdl_offset -= delta;
                d.data_offset -= delta;
                d.data_length += u64::from(delta);
                return NDIS_STATUS_SUCCESS;
            }
            if d.current_mdl_offset != 0 || d.current_mdl != d.mdl_chain {
                // Retreating across a partly used MDL is not emulated (docs/c-abi.md).
                return NDIS_STATUS_RESOURCES;
            }
            let total = delta as usize + backfill as usize;
            // SAFETY: calloc has no preconditions; NULL is handled.
            let buf = unsafe { libc::calloc(1, total.max(1)) };
            if buf.is_null() {
                return NDIS_STATUS_RESOURCES;
            }
            let mut m = mdl_for(buf, u32::try_from(total).unwrap_or(u32::MAX));
            m.mdl_flags |= MDL_MAPPED_TO_SYSTEM_VA;
            m.next = d.mdl_chain;
            let m = Box::into_raw(Box::new(m));
            ctx::with_host(|h| {
                h.tracker
                    .lock()
                    .retreat_mdls
                    .insert(m as usize, buf as usize)
            });
            d.mdl_chain = m;
            d.current_mdl = m;
            d.current_mdl_offset = backfill;
            d.data_offset = backfill;
            d.data_length += u64::from(delta);
            NDIS_STATUS_SUCCESS
        },
    )
}

#[no_mangle]
pub(crate) unsafe extern "C" fn NdisAdvanceNetBufferDataStart(
    nb: *mut NetBuffer,
    delta: u32,
    free_mdl: u8,
    _free: *const c_void,
) {
    boundary("NdisAdvanceNetBufferDataStart", (), || {
        // SAFETY: the caller's NET_BUFFER (checked non-null) with a valid MDL chain.
        let Some(nb) = (unsafe { nb.as_mut() }) else {
            return;
        };
        // SAFETY: as above.
        unsafe { advance(nb, delta, free_mdl != 0) };
    });
}

/// Moves the data start forward by `delta` bytes, freeing retreat-allocated MDLs left behind when
/// `free_mdl`.
///
/// # Safety
/// `nb`'s MDL chain must be valid.
pub(crate) unsafe fn advance(nb: &mut NetBuffer, delta: u32, free_mdl: bool) {
    let d = &mut nb.data;
    let delta = if u64::from(delta) > d.data_length {
        ctx::with_host(|h| {
            h.finding(Finding::Assertion {
                message: "NdisAdvanceNetBufferDataStart past the end of the data".into(),
            });
        });
        u32::try_from(d.data_length).unwrap_or(u32::MAX)
    } else {
        delta
    };
    d.data_offset += delta;
    d.data_length -= u64::from(delta);
    let mut remaining = d.current_mdl_offset as usize + delta as usize;
    // SAFETY: per the contract the chain is valid.
    unsafe {
        while let Some(m) = d.current_mdl.as_ref() {
            if remaining < m.byte_count as usize || m.next.is_null() {
                break;
            }
            remaining -= m.byte_count as usize;
            d.current_mdl = m.next;
        }
    }
    d.current_mdl_offset = u32::try_from(remaining).unwrap_or(u32::MAX);
    if !free_mdl {
        return;
    }
    // Free retreat-allocated MDLs at the head of the chain that no longer hold data.
    while d.mdl_chain != d.current_mdl && !d.mdl_chain.is_null() {
        let head = d.mdl_chain;
        let buf =
            ctx::with_host(|h| h.tracker.lock().retreat_mdls.remove(&(head as usize))).flatten();
        let Some(buf) = buf else { break };
        // SAFETY: `head` and `buf` were allocated by NdisRetreatNetBufferDataStart and are removed
        // from the record above, so they are freed once.
        unsafe {
            let byte_count = (*head).byte_count;
            d.mdl_chain = (*head).next;
            d.data_offset -= byte_count.min(d.data_offset);
            drop(Box::from_raw(head));
            libc::free(buf as *mut c_void);
        }
    }
}
