//! `FwpsOpenToken0` (WDK fwpsk.h): a handle to the access token a classify's metadata names
//! (FWPS_METADATA_FIELD_TOKEN), closed with ZwClose or NtClose like any kernel handle; and
//! `NtClose`. The host has no token objects: the handle records the token's id and the access
//! granted; a handle left open at unload is an open-handle finding like any other.

use std::ffi::c_void;

use super::thread::HandleTarget;
use super::{boundary, ctx, NtStatus, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER};
use crate::verifier::Finding;

/// `LUID` (passed by value: 8 bytes in one register, as MSVC and the SysV ABI pass it).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Luid {
    low: u32,
    high: i32,
}

/// TOKEN_ALL_ACCESS (STANDARD_RIGHTS_REQUIRED | 0x1FF), SYNCHRONIZE, ACCESS_SYSTEM_SECURITY,
/// MAXIMUM_ALLOWED and the GENERIC_* bits: what an ACCESS_MASK for a token may ask.
const TOKEN_ACCESS_BITS: u32 = 0x000F_01FF | 0x0010_0000 | 0x0100_0000 | 0x0200_0000 | 0xF000_0000;

/// FwpsOpenToken0 (PASSIVE_LEVEL): `engine` is one of the driver's open FwpmEngineOpen0 sessions,
/// `modified_id` the token's id (the metadata's `token`, nonzero), `access` TOKEN_* rights.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsOpenToken0(
    engine: *mut c_void,
    modified_id: Luid,
    access: u32,
    token: *mut *mut c_void,
) -> NtStatus {
    boundary("FwpsOpenToken0", STATUS_INVALID_PARAMETER, || {
        ctx::check_irql("FwpsOpenToken0", ctx::PASSIVE_LEVEL);
        let id = (u64::from(modified_id.high as u32) << 32) | u64::from(modified_id.low);
        if token.is_null() || id == 0 || access & !TOKEN_ACCESS_BITS != 0 {
            return STATUS_INVALID_PARAMETER;
        }
        let driver = ctx::current_driver();
        ctx::with_host(|h| {
            let open = h
                .sessions
                .lock()
                .of_driver(driver)
                .contains(&(engine as usize));
            if !open {
                h.finding(Finding::BadHandle {
                    function: "FwpsOpenToken0",
                });
                return super::STATUS_INVALID_HANDLE;
            }
            let target = HandleTarget::Token { id, access };
            let handle = h.rt.objects.lock().open_handle(target, driver);
            // SAFETY: the caller's out-pointer (checked non-null).
            unsafe { *token = handle as *mut c_void };
            super::STATUS_SUCCESS
        })
        .unwrap_or(STATUS_INVALID_DEVICE_STATE)
    })
}

/// NtClose: ZwClose for kernel callers (the previous mode is kernel either way here).
#[no_mangle]
pub(crate) extern "C" fn NtClose(handle: *mut c_void) -> NtStatus {
    super::thread::ZwClose(handle)
}
