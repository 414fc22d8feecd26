//! Lookaside lists (wdk-runtime.md §2): `LOOKASIDE_LIST_EX` and the legacy
//! `NPAGED_LOOKASIDE_LIST`. The list object is the caller's storage; the runtime keeps the cached
//! free entries per list address, allocates through the driver's routine or tracked pool (so a
//! list never deleted shows up as leaked pool), and maintains the list's counters.

use std::collections::HashMap;
use std::ffi::c_void;

use super::ctx;
use super::kernel::{pool_alloc, pool_free};
use super::{boundary, NtStatus, STATUS_INVALID_PARAMETER, STATUS_SUCCESS};
use crate::verifier::Finding;

/// Entries cached when the driver passes Depth 0 (system-managed).
const DEFAULT_DEPTH: usize = 256;

/// `GENERAL_LOOKASIDE_POOL` (x64, 96 bytes): the body of `LOOKASIDE_LIST_EX`.
#[repr(C, align(16))]
#[derive(Debug)]
pub(crate) struct GeneralLookasidePool {
    list_head: [u64; 2],
    depth: u16,
    maximum_depth: u16,
    total_allocates: u32,
    allocate_misses: u32,
    total_frees: u32,
    free_misses: u32,
    pool_type: i32,
    tag: u32,
    size: u32,
    allocate: usize,
    free: usize,
    list_entry: [usize; 2],
    last_total_allocates: u32,
    last_allocate_misses: u32,
    future: [u32; 2],
}

const _: () = assert!(std::mem::size_of::<GeneralLookasidePool>() == 96);

type AllocateEx = unsafe extern "C" fn(i32, usize, u32, *mut c_void) -> *mut c_void;
type FreeEx = unsafe extern "C" fn(*mut c_void, *mut c_void);
type Allocate = unsafe extern "C" fn(i32, usize, u32) -> *mut c_void;
type Free = unsafe extern "C" fn(*mut c_void);

#[derive(Clone, Copy, Debug)]
enum Routines {
    Pool,
    Ex(Option<AllocateEx>, Option<FreeEx>),
    Legacy(Option<Allocate>, Option<Free>),
}

/// One list's runtime side.
#[derive(Debug)]
pub(crate) struct List {
    driver: usize,
    routines: Routines,
    pool_type: i32,
    size: usize,
    tag: u32,
    depth: usize,
    cached: Vec<usize>,
}

/// Every live list of a host, by address.
pub(crate) type Lists = HashMap<usize, List>;

fn body<'a>(list: *mut c_void) -> Option<&'a mut GeneralLookasidePool> {
    // SAFETY: the caller's LOOKASIDE_LIST_EX / NPAGED_LOOKASIDE_LIST storage, which begins with
    // a GENERAL_LOOKASIDE_POOL-shaped header and is 16-aligned (its SLIST_HEADER).
    unsafe { list.cast::<GeneralLookasidePool>().as_mut() }
}

fn init(
    list: *mut c_void,
    routines: Routines,
    pool_type: i32,
    size: usize,
    tag: u32,
    depth: u16,
) -> NtStatus {
    let Some(b) = body(list) else {
        return STATUS_INVALID_PARAMETER;
    };
    if size == 0 {
        return STATUS_INVALID_PARAMETER;
    }
    super::kernel::note_pool_type(pool_type);
    let depth = if depth == 0 {
        DEFAULT_DEPTH
    } else {
        usize::from(depth)
    };
    *b = GeneralLookasidePool {
        list_head: [0; 2],
        depth: u16::try_from(depth).unwrap_or(u16::MAX),
        maximum_depth: u16::try_from(depth).unwrap_or(u16::MAX),
        total_allocates: 0,
        allocate_misses: 0,
        total_frees: 0,
        free_misses: 0,
        pool_type,
        tag,
        size: u32::try_from(size).unwrap_or(u32::MAX),
        allocate: 0,
        free: 0,
        list_entry: [0; 2],
        last_total_allocates: 0,
        last_allocate_misses: 0,
        future: [0; 2],
    };
    ctx::with_host(|h| {
        h.rt.lookasides.lock().insert(
            list as usize,
            List {
                driver: ctx::current_driver(),
                routines,
                pool_type,
                size,
                tag,
                depth,
                cached: Vec::new(),
            },
        );
    });
    STATUS_SUCCESS
}

/// Allocates an entry through the list's routine (or tracked pool).
fn fresh(s: (Routines, i32, usize, u32), list: *mut c_void) -> *mut c_void {
    let (routines, pool_type, size, tag) = s;
    // SAFETY: the driver's own allocate routines, called with the documented arguments.
    unsafe {
        match routines {
            Routines::Ex(Some(a), _) => a(pool_type, size, tag, list),
            Routines::Legacy(Some(a), _) => a(pool_type, size, tag),
            _ => pool_alloc(size, tag),
        }
    }
}

fn release(routines: Routines, entry: usize, list: *mut c_void) {
    let e = entry as *mut c_void;
    // SAFETY: the driver's own free routines, called with an entry its allocate routine returned.
    unsafe {
        match routines {
            Routines::Ex(_, Some(f)) => f(e, list),
            Routines::Legacy(_, Some(f)) => f(e),
            _ => pool_free(e),
        }
    }
}

/// The list's runtime state without holding the host lock while driver code runs.
fn snapshot(list: *mut c_void) -> Option<(Routines, i32, usize, u32)> {
    ctx::with_host(|h| {
        h.rt.lookasides
            .lock()
            .get(&(list as usize))
            .map(|l| (l.routines, l.pool_type, l.size, l.tag))
    })
    .flatten()
}

fn allocate(list: *mut c_void, function: &'static str) -> *mut c_void {
    let cached = ctx::with_host(|h| {
        h.rt.lookasides
            .lock()
            .get_mut(&(list as usize))
            .map(|l| l.cached.pop())
    })
    .flatten();
    let Some(cached) = cached else {
        ctx::with_host(|h| h.finding(Finding::BadHandle { function }));
        return std::ptr::null_mut();
    };
    let b = body(list);
    if let Some(b) = b {
        b.total_allocates = b.total_allocates.wrapping_add(1);
        if cached.is_none() {
            b.allocate_misses = b.allocate_misses.wrapping_add(1);
        }
    }
    if let Some(e) = cached {
        return e as *mut c_void;
    }
    snapshot(list).map_or(std::ptr::null_mut(), |s| fresh(s, list))
}

fn free_to(list: *mut c_void, entry: *mut c_void, function: &'static str) {
    if entry.is_null() {
        return;
    }
    let kept = ctx::with_host(|h| {
        h.rt.lookasides.lock().get_mut(&(list as usize)).map(|l| {
            if l.cached.len() < l.depth {
                l.cached.push(entry as usize);
                None
            } else {
                Some(l.routines)
            }
        })
    })
    .flatten();
    let Some(overflow) = kept else {
        ctx::with_host(|h| h.finding(Finding::BadHandle { function }));
        return;
    };
    if let Some(b) = body(list) {
        b.total_frees = b.total_frees.wrapping_add(1);
        if overflow.is_some() {
            b.free_misses = b.free_misses.wrapping_add(1);
        }
    }
    if let Some(r) = overflow {
        release(r, entry as usize, list);
    }
}

/// Frees the cached entries; `delete` also forgets the list.
fn flush(list: *mut c_void, delete: bool, function: &'static str) {
    let taken = ctx::with_host(|h| {
        let mut ls = h.rt.lookasides.lock();
        let r = ls
            .get_mut(&(list as usize))
            .map(|l| (l.routines, std::mem::take(&mut l.cached)));
        if delete {
            ls.remove(&(list as usize));
        }
        r
    })
    .flatten();
    let Some((routines, entries)) = taken else {
        ctx::with_host(|h| h.finding(Finding::BadHandle { function }));
        return;
    };
    for e in entries {
        release(routines, e, list);
    }
}

/// Lists a driver never deleted (their cached entries are reported as leaked pool).
pub(crate) fn left_by(lists: &Lists, driver: usize) -> usize {
    lists.values().filter(|l| l.driver == driver).count()
}

#[no_mangle]
pub(crate) unsafe extern "C" fn ExInitializeLookasideListEx(
    list: *mut c_void,
    allocate: Option<AllocateEx>,
    free: Option<FreeEx>,
    pool_type: i32,
    _flags: u32,
    size: usize,
    tag: u32,
    depth: u16,
) -> NtStatus {
    boundary(
        "ExInitializeLookasideListEx",
        STATUS_INVALID_PARAMETER,
        || {
            super::ctx::check_irql("ExInitializeLookasideListEx", 2);
            let routines = if allocate.is_none() && free.is_none() {
                Routines::Pool
            } else {
                Routines::Ex(allocate, free)
            };
            init(list, routines, pool_type, size, tag, depth)
        },
    )
}

#[no_mangle]
pub(crate) extern "C" fn ExAllocateFromLookasideListEx(list: *mut c_void) -> *mut c_void {
    boundary(
        "ExAllocateFromLookasideListEx",
        std::ptr::null_mut(),
        || {
            super::ctx::check_irql("ExAllocateFromLookasideListEx", 2);
            allocate(list, "ExAllocateFromLookasideListEx")
        },
    )
}

#[no_mangle]
pub(crate) extern "C" fn ExFreeToLookasideListEx(list: *mut c_void, entry: *mut c_void) {
    boundary("ExFreeToLookasideListEx", (), || {
        super::ctx::check_irql("ExFreeToLookasideListEx", 2);
        free_to(list, entry, "ExFreeToLookasideListEx");
    });
}

#[no_mangle]
pub(crate) extern "C" fn ExFlushLookasideListEx(list: *mut c_void) {
    boundary("ExFlushLookasideListEx", (), || {
        flush(list, false, "ExFlushLookasideListEx");
    });
}

#[no_mangle]
pub(crate) extern "C" fn ExDeleteLookasideListEx(list: *mut c_void) {
    boundary("ExDeleteLookasideListEx", (), || {
        super::ctx::check_irql("ExDeleteLookasideListEx", 2);
        flush(list, true, "ExDeleteLookasideListEx");
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn ExInitializeNPagedLookasideList(
    list: *mut c_void,
    allocate: Option<Allocate>,
    free: Option<Free>,
    _flags: u32,
    size: usize,
    tag: u32,
    depth: u16,
) {
    boundary("ExInitializeNPagedLookasideList", (), || {
        let routines = if allocate.is_none() && free.is_none() {
            Routines::Pool
        } else {
            Routines::Legacy(allocate, free)
        };
        let _ = init(list, routines, 512, size, tag, depth);
    });
}

#[no_mangle]
pub(crate) extern "C" fn ExAllocateFromNPagedLookasideList(list: *mut c_void) -> *mut c_void {
    boundary(
        "ExAllocateFromNPagedLookasideList",
        std::ptr::null_mut(),
        || allocate(list, "ExAllocateFromNPagedLookasideList"),
    )
}

#[no_mangle]
pub(crate) extern "C" fn ExFreeToNPagedLookasideList(list: *mut c_void, entry: *mut c_void) {
    boundary("ExFreeToNPagedLookasideList", (), || {
        free_to(list, entry, "ExFreeToNPagedLookasideList");
    });
}

#[no_mangle]
pub(crate) extern "C" fn ExDeleteNPagedLookasideList(list: *mut c_void) {
    boundary("ExDeleteNPagedLookasideList", (), || {
        flush(list, true, "ExDeleteNPagedLookasideList");
    });
}
