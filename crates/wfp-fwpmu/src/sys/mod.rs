//! The C side of `fwpmu.h`: the `#[repr(C)]` structures of `fwpmtypes.h`/`fwptypes.h`/`fwpmu.h`,
//! their conversion to and from the API's DTOs, the allocation blocks FwpmFreeMemory0 frees, and
//! (in [`api`]) every exported function. This module tree is the only place in the crate with
//! `unsafe` code; each block says why it is sound.
//!
//! Layouts are the x86-64 System V ones of the headers (compiled with `-fshort-wchar`: WCHAR is
//! 16-bit); `tests/c/fwpmu_client.c` `_Static_assert`s the sizes this module assumes.
#![allow(
    unsafe_code,
    reason = "the C ABI of fwpmu.h: raw pointers from C, exported functions, callbacks into C"
)]

mod api;
mod convert;

use std::any::Any;
use std::ffi::c_void;

/// `GUID` (Data1..Data3 little-endian in memory, 4-byte aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CGuid {
    pub(crate) data1: u32,
    pub(crate) data2: u16,
    pub(crate) data3: u16,
    pub(crate) data4: [u8; 8],
}

/// `FWPM_DISPLAY_DATA0`.
#[repr(C)]
pub(crate) struct DisplayData {
    pub(crate) name: *mut u16,
    pub(crate) description: *mut u16,
}

/// `FWP_BYTE_BLOB`.
#[repr(C)]
pub(crate) struct ByteBlob {
    pub(crate) size: u32,
    pub(crate) data: *mut u8,
}

/// `FWPM_SESSION0`.
#[repr(C)]
pub(crate) struct Session0 {
    pub(crate) key: CGuid,
    pub(crate) display: DisplayData,
    pub(crate) flags: u32,
    pub(crate) txn_wait_ms: u32,
    pub(crate) process_id: u32,
    pub(crate) sid: *mut c_void,
    pub(crate) username: *mut u16,
    pub(crate) kernel_mode: i32,
}

/// `FWPM_PROVIDER0`.
#[repr(C)]
pub(crate) struct Provider0 {
    pub(crate) key: CGuid,
    pub(crate) display: DisplayData,
    pub(crate) flags: u32,
    pub(crate) provider_data: ByteBlob,
    pub(crate) service_name: *mut u16,
}

/// `FWPM_SUBLAYER0`.
#[repr(C)]
pub(crate) struct Sublayer0 {
    pub(crate) key: CGuid,
    pub(crate) display: DisplayData,
    pub(crate) flags: u32,
    pub(crate) provider_key: *mut CGuid,
    pub(crate) provider_data: ByteBlob,
    pub(crate) weight: u16,
}

/// `FWPM_CALLOUT0`.
#[repr(C)]
pub(crate) struct Callout0 {
    pub(crate) key: CGuid,
    pub(crate) display: DisplayData,
    pub(crate) flags: u32,
    pub(crate) provider_key: *mut CGuid,
    pub(crate) provider_data: ByteBlob,
    pub(crate) applicable_layer: CGuid,
    pub(crate) callout_id: u32,
}

/// `FWP_VALUE0` / `FWP_CONDITION_VALUE0`: the type and an 8-byte union (small integers in its
/// low bytes, pointers otherwise).
#[repr(C)]
pub(crate) struct Value0 {
    pub(crate) data_type: u32,
    pub(crate) value: u64,
}

/// `FWP_V4_ADDR_AND_MASK`.
#[repr(C)]
pub(crate) struct V4AddrMask {
    pub(crate) addr: u32,
    pub(crate) mask: u32,
}

/// `FWP_V6_ADDR_AND_MASK`.
#[repr(C)]
pub(crate) struct V6AddrMask {
    pub(crate) addr: [u8; 16],
    pub(crate) prefix_length: u8,
}

/// `FWP_RANGE0`.
#[repr(C)]
pub(crate) struct Range0 {
    pub(crate) low: Value0,
    pub(crate) high: Value0,
}

/// `FWPM_FILTER_CONDITION0`.
#[repr(C)]
pub(crate) struct Condition0 {
    pub(crate) field_key: CGuid,
    pub(crate) match_type: u32,
    pub(crate) value: Value0,
}

/// `FWPM_ACTION0` (the union of filterType / calloutKey / bitmapIndex is a GUID's room).
#[repr(C)]
pub(crate) struct Action0 {
    pub(crate) action_type: u32,
    pub(crate) key: CGuid,
}

/// The `rawContext` / `providerContextKey` union of `FWPM_FILTER0`.
#[repr(C)]
pub(crate) union FilterContext {
    pub(crate) raw: u64,
    pub(crate) key: CGuid,
}

/// `FWPM_FILTER0`.
#[repr(C)]
pub(crate) struct Filter0 {
    pub(crate) key: CGuid,
    pub(crate) display: DisplayData,
    pub(crate) flags: u32,
    pub(crate) provider_key: *mut CGuid,
    pub(crate) provider_data: ByteBlob,
    pub(crate) layer_key: CGuid,
    pub(crate) sublayer_key: CGuid,
    pub(crate) weight: Value0,
    pub(crate) num_conditions: u32,
    pub(crate) conditions: *mut Condition0,
    pub(crate) action: Action0,
    pub(crate) context: FilterContext,
    pub(crate) reserved: *mut CGuid,
    pub(crate) filter_id: u64,
    pub(crate) effective_weight: Value0,
}

/// `FWPM_FILTER_ENUM_TEMPLATE0`.
#[repr(C)]
pub(crate) struct FilterEnumTemplate0 {
    pub(crate) provider_key: *mut CGuid,
    pub(crate) layer_key: CGuid,
    pub(crate) enum_type: u32,
    pub(crate) flags: u32,
    pub(crate) provider_context_template: *mut c_void,
    pub(crate) num_conditions: u32,
    pub(crate) conditions: *mut Condition0,
    pub(crate) action_mask: u32,
    pub(crate) callout_key: *mut CGuid,
}

/// `FWPM_NET_EVENT_ENUM_TEMPLATE0`.
#[repr(C)]
pub(crate) struct NetEventEnumTemplate0 {
    pub(crate) start_low: u32,
    pub(crate) start_high: u32,
    pub(crate) end_low: u32,
    pub(crate) end_high: u32,
    pub(crate) num_conditions: u32,
    pub(crate) conditions: *mut Condition0,
}

/// `FWPM_NET_EVENT_SUBSCRIPTION0`.
#[repr(C)]
pub(crate) struct NetEventSubscription0 {
    pub(crate) enum_template: *mut NetEventEnumTemplate0,
    pub(crate) flags: u32,
    pub(crate) session_key: CGuid,
}

/// `FWPM_SUBLAYER_ENUM_TEMPLATE0`.
#[repr(C)]
pub(crate) struct SublayerEnumTemplate0 {
    pub(crate) provider_key: *mut CGuid,
}

/// `FWPM_CALLOUT_ENUM_TEMPLATE0`.
#[repr(C)]
pub(crate) struct CalloutEnumTemplate0 {
    pub(crate) provider_key: *mut CGuid,
    pub(crate) layer_key: CGuid,
}

/// The address unions of `FWPM_NET_EVENT_HEADER0`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union EventAddr {
    pub(crate) v4: u32,
    pub(crate) v6: [u8; 16],
}

/// `FWPM_NET_EVENT_HEADER0`.
#[repr(C)]
pub(crate) struct NetEventHeader0 {
    pub(crate) time_low: u32,
    pub(crate) time_high: u32,
    pub(crate) flags: u32,
    pub(crate) ip_version: u32,
    pub(crate) ip_protocol: u8,
    pub(crate) local: EventAddr,
    pub(crate) remote: EventAddr,
    pub(crate) local_port: u16,
    pub(crate) remote_port: u16,
    pub(crate) scope_id: u32,
    pub(crate) app_id: ByteBlob,
    pub(crate) user_id: *mut c_void,
}

/// `FWPM_NET_EVENT_CLASSIFY_DROP0` (also used for CLASSIFY_ALLOW's filter and layer).
#[repr(C)]
pub(crate) struct ClassifyDrop0 {
    pub(crate) filter_id: u64,
    pub(crate) layer_id: u16,
}

/// `FWPM_NET_EVENT0`.
#[repr(C)]
pub(crate) struct NetEvent0 {
    pub(crate) header: NetEventHeader0,
    pub(crate) event_type: u32,
    pub(crate) classify: *mut ClassifyDrop0,
}

/// `FWPM_NET_EVENT_CALLBACK0`.
pub(crate) type NetEventCallback = Option<unsafe extern "C" fn(*mut c_void, *const NetEvent0)>;

/// Marks the pointer array of a block this library allocated (FwpmFreeMemory0 checks it).
const BLOCK_MAGIC: usize = 0x5746_504D_5542_4C4B;

/// Everything one returned array points into; freed whole by FwpmFreeMemory0.
#[derive(Default)]
pub(crate) struct Arena {
    keep: Vec<Box<dyn Any>>,
}

impl Arena {
    /// Keeps `v` alive as long as the block and returns its address (a box's contents never
    /// move).
    pub(crate) fn keep<T: 'static>(&mut self, v: T) -> *mut T {
        let mut b = Box::new(v);
        let p: *mut T = &mut *b;
        self.keep.push(b);
        p
    }

    /// `s` as a NUL-terminated UTF-16 string kept in the block.
    pub(crate) fn wide(&mut self, s: &str) -> *mut u16 {
        let v: Vec<u16> = s.encode_utf16().chain([0]).collect();
        let p = self.keep(v);
        // SAFETY: `p` points to the boxed Vec just stored; its buffer lives as long as the arena.
        unsafe { (*p).as_mut_ptr() }
    }

    /// `items` as a C array kept in the block (NULL when empty).
    pub(crate) fn array<T: 'static>(&mut self, items: Vec<T>) -> *mut T {
        if items.is_empty() {
            return std::ptr::null_mut();
        }
        let p = self.keep(items);
        // SAFETY: as in `wide`.
        unsafe { (*p).as_mut_ptr() }
    }
}

/// Hands `entries` (objects kept in `arena`) to C as `T**`: a pointer array preceded by the
/// block's magic and owner, so FwpmFreeMemory0 can find and free the whole block.
pub(crate) fn into_block<T>(mut arena: Arena, entries: Vec<*mut T>) -> *mut *mut T {
    let mut slots: Vec<usize> = Vec::with_capacity(entries.len() + 2);
    slots.push(BLOCK_MAGIC);
    slots.push(0);
    slots.extend(entries.iter().map(|p| *p as usize));
    let slots = arena.keep(slots);
    let owner = Box::into_raw(Box::new(arena));
    // SAFETY: `slots` points to the boxed Vec owned by the arena now behind `owner`; index 1
    // exists (pushed above) and the Vec is not touched elsewhere until FwpmFreeMemory0.
    unsafe {
        let base = (*slots).as_mut_ptr();
        *base.add(1) = owner as usize;
        base.add(2).cast::<*mut T>()
    }
}

/// Frees a block made by [`into_block`]; false (nothing freed) for any other pointer.
///
/// # Safety
/// `p` is NULL or a pointer this library returned (or any readable pointer with two readable
/// words before it: foreign memory is recognised by the missing magic and left alone).
pub(crate) unsafe fn free_block(p: *mut c_void) -> bool {
    if p.is_null() {
        return false;
    }
    let slots = p.cast::<usize>();
    // SAFETY: per the contract the two words before `p` are readable; ours hold the magic and
    // the owner, written by `into_block`.
    unsafe {
        if *slots.sub(2) != BLOCK_MAGIC {
            return false;
        }
        *slots.sub(2) = 0;
        let owner = *slots.sub(1) as *mut Arena;
        drop(Box::from_raw(owner));
    }
    true
}

/// Runs `body`, turning a panic into E_FAIL: a panic never unwinds into C.
pub(crate) fn boundary(body: impl FnOnce() -> u32) -> u32 {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(crate::status::FAIL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_headers() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<CGuid>(), 16);
        assert_eq!(size_of::<Value0>(), 16);
        assert_eq!(size_of::<Condition0>(), 40);
        assert_eq!(size_of::<Action0>(), 20);
        assert_eq!(size_of::<Provider0>(), 64);
        assert_eq!(size_of::<Sublayer0>(), 72);
        assert_eq!(size_of::<Callout0>(), 88);
        assert_eq!(offset_of!(Filter0, weight), 96);
        assert_eq!(offset_of!(Filter0, action), 128);
        assert_eq!(offset_of!(Filter0, context), 152);
        assert_eq!(size_of::<Filter0>(), 200);
        assert_eq!(size_of::<NetEventHeader0>(), 88);
        assert_eq!(size_of::<NetEvent0>(), 104);
        assert_eq!(size_of::<Session0>(), 72);
    }

    #[test]
    fn blocks_are_freed_once_and_foreign_pointers_are_left_alone() {
        let mut arena = Arena::default();
        let a = arena.keep(7_u64);
        let b = arena.keep(9_u64);
        let block = into_block(arena, vec![a, b]);
        // SAFETY: `block` is a two-entry array this module built.
        let second = unsafe { **block.add(1) };
        assert_eq!(second, 9);
        // SAFETY: `block` came from into_block.
        assert!(unsafe { free_block(block.cast()) });
        let foreign = [0_usize; 3];
        // SAFETY: two readable words precede foreign[2].
        assert!(!unsafe { free_block(foreign.as_ptr().add(2).cast_mut().cast()) });
    }
}
