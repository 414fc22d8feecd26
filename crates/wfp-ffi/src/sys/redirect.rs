//! Redirection loop prevention from C (wfp-reference §10.3, Win8+): FwpsRedirectHandleCreate0 /
//! FwpsRedirectHandleDestroy0 and FwpsQueryConnectionRedirectState0 over the engine's redirect
//! handles and a connection's redirect records ([`wfp_core::redirect`]). A driver names its
//! handle in `FWPS_CONNECT_REQUEST0.localRedirectHandle` (or the bind request's); the engine
//! records it, and the connection's later classifies carry the records in
//! `inMetaValues->redirectRecords`, which this query reads.

use std::ffi::c_void;
use std::sync::Arc;

use wfp_core::redirect::{RedirectHandle, RedirectRecords, RedirectState};
use wfp_core::Status;

use super::types::CGuid;
use super::{boundary, ctx, invocation, nt, NtStatus, STATUS_INVALID_DEVICE_STATE};
use super::{STATUS_INVALID_PARAMETER, STATUS_SUCCESS};
use crate::verifier::Finding;

/// `FwpsRedirectHandleCreate0(providerGuid, flags /*0*/, &redirectHandle)`: a new handle naming
/// this redirector. STATUS_FWP_NULL_POINTER for a NULL GUID or out-pointer,
/// STATUS_INVALID_PARAMETER for nonzero (reserved) flags.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsRedirectHandleCreate0(
    provider_guid: *const CGuid,
    flags: u32,
    redirect_handle: *mut *mut c_void,
) -> NtStatus {
    boundary(
        "FwpsRedirectHandleCreate0",
        STATUS_INVALID_PARAMETER,
        || {
            if provider_guid.is_null() || redirect_handle.is_null() {
                return nt(Status::FWP_NULL_POINTER);
            }
            if flags != 0 {
                return STATUS_INVALID_PARAMETER;
            }
            ctx::with_host(|h| {
                let rh = h.engine.create_redirect_handle();
                h.asyncs
                    .lock()
                    .redirect_handles
                    .insert(rh.0, ctx::current_driver());
                // SAFETY: the caller's out-pointer (checked non-null).
                unsafe { *redirect_handle = rh.0 as *mut c_void };
                STATUS_SUCCESS
            })
            .unwrap_or(STATUS_INVALID_DEVICE_STATE)
        },
    )
}

/// `FwpsRedirectHandleDestroy0`: a handle the engine does not know (never created, or destroyed
/// already) is a Verifier finding (`BadHandle`).
#[no_mangle]
pub(crate) extern "C" fn FwpsRedirectHandleDestroy0(redirect_handle: *mut c_void) {
    boundary("FwpsRedirectHandleDestroy0", (), || {
        ctx::with_host(|h| {
            h.asyncs
                .lock()
                .redirect_handles
                .remove(&(redirect_handle as u64));
            let s = h
                .engine
                .destroy_redirect_handle(RedirectHandle(redirect_handle as u64));
            if s != Status::SUCCESS {
                h.finding(Finding::BadHandle {
                    function: "FwpsRedirectHandleDestroy0",
                });
            }
        });
    });
}

/// The records `handle` names: NULL is "no records"; otherwise it must be the `redirectRecords`
/// of the classifyFn running on this thread (the only place the runtime hands them out), else
/// `Err(())` — never dereferenced.
fn records_for(handle: *mut c_void) -> Result<Option<Arc<RedirectRecords>>, ()> {
    if handle.is_null() {
        return Ok(None);
    }
    invocation::with_current(|inv| {
        inv.meta
            .redirect_records
            .as_ref()
            .filter(|r| Arc::as_ptr(r).cast::<c_void>() == handle.cast_const())
            .cloned()
    })
    .flatten()
    .map(Some)
    .ok_or(())
}

/// `FwpsQueryConnectionRedirectState0(redirectRecords, redirectHandle, &redirectContext)`
/// (§10.3): NOT_REDIRECTED 0, REDIRECTED_BY_SELF 1, REDIRECTED_BY_OTHER 2,
/// PREVIOUSLY_REDIRECTED_BY_SELF 3; `*redirectContext` (optional) gets the localRedirectContext
/// this redirector attached when the state is BY_SELF / PREVIOUSLY_BY_SELF, else NULL.
/// redirectRecords must come from the running classifyFn's metadata: anything else is a finding
/// (`BadHandle`) and answers NOT_REDIRECTED.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsQueryConnectionRedirectState0(
    redirect_records: *mut c_void,
    redirect_handle: *mut c_void,
    redirect_context: *mut *mut c_void,
) -> u32 {
    boundary(
        "FwpsQueryConnectionRedirectState0",
        RedirectState::NotRedirected as u32,
        || {
            let answer = ctx::with_host(|h| match records_for(redirect_records) {
                Ok(records) => h.engine.query_connection_redirect_state(
                    records.as_deref(),
                    RedirectHandle(redirect_handle as u64),
                ),
                Err(()) => {
                    h.finding(Finding::BadHandle {
                        function: "FwpsQueryConnectionRedirectState0",
                    });
                    (RedirectState::NotRedirected, None)
                }
            });
            let (state, context) = answer.unwrap_or((RedirectState::NotRedirected, None));
            if !redirect_context.is_null() {
                // SAFETY: the caller's optional out-pointer (checked non-null).
                unsafe { *redirect_context = context.unwrap_or(0) as *mut c_void };
            }
            state as u32
        },
    )
}

/// Unload (wfp-reference §5.3): destroys the redirect handles `driver` left and returns how many
/// (a Verifier finding, `ObjectsLeft`).
pub(crate) fn destroy_left(h: &crate::host::HostInner, driver: usize) -> usize {
    let left: Vec<u64> = {
        let mut st = h.asyncs.lock();
        let keys: Vec<u64> = st
            .redirect_handles
            .iter()
            .filter(|(_, d)| **d == driver)
            .map(|(k, _)| *k)
            .collect();
        for k in &keys {
            st.redirect_handles.remove(k);
        }
        keys
    };
    for k in &left {
        let _ = h.engine.destroy_redirect_handle(RedirectHandle(*k));
    }
    left.len()
}

/// `STATUS_BUFFER_TOO_SMALL`.
const STATUS_BUFFER_TOO_SMALL: NtStatus = 0xC000_0023_u32 as i32;
/// `STATUS_DATATYPE_MISALIGNMENT`.
const STATUS_DATATYPE_MISALIGNMENT: NtStatus = 0x8000_0002_u32 as i32;
/// The first four bytes of the records' SIO form ("WFPR").
const SIO_RECORDS_MAGIC: u32 = u32::from_le_bytes(*b"WFPR");

/// The redirect records in the opaque form a proxy hands to
/// SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS (§10.3): "WFPR", the record count (u32), then per
/// redirection, oldest first, its redirect handle and redirect context (u64 each), little-endian.
fn sio_format(records: &RedirectRecords) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 16 * records.chain.len());
    out.extend_from_slice(&SIO_RECORDS_MAGIC.to_le_bytes());
    let count = u32::try_from(records.chain.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for (handle, context) in &records.chain {
        out.extend_from_slice(&handle.0.to_le_bytes());
        out.extend_from_slice(&context.to_le_bytes());
    }
    out
}

/// FwpsQueryConnectionSioFormatRedirectRecords0 (§10.3; WDK fwpsk.h): the connection's redirect
/// records (`inMetaValues->redirectRecords`, during classifyFn) copied to a pointer-aligned
/// buffer; STATUS_BUFFER_TOO_SMALL with the size needed in `bytes_transferred` when it does not
/// fit (a NULL buffer of length 0 asks for the size).
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsQueryConnectionSioFormatRedirectRecords0(
    redirect_records: *mut c_void,
    output: *mut c_void,
    output_length: usize,
    bytes_transferred: *mut usize,
) -> NtStatus {
    boundary(
        "FwpsQueryConnectionSioFormatRedirectRecords0",
        STATUS_INVALID_PARAMETER,
        || {
            if redirect_records.is_null() {
                return STATUS_INVALID_PARAMETER;
            }
            let Ok(Some(records)) = records_for(redirect_records) else {
                ctx::with_host(|h| {
                    h.finding(Finding::BadHandle {
                        function: "FwpsQueryConnectionSioFormatRedirectRecords0",
                    });
                });
                return STATUS_INVALID_PARAMETER;
            };
            let bytes = sio_format(&records);
            // SAFETY: the optional out-pointer.
            if let Some(n) = unsafe { bytes_transferred.as_mut() } {
                *n = bytes.len();
            }
            if output_length < bytes.len() || output.is_null() {
                return STATUS_BUFFER_TOO_SMALL;
            }
            if (output as usize) % std::mem::align_of::<*const c_void>() != 0 {
                return STATUS_DATATYPE_MISALIGNMENT;
            }
            // SAFETY: the caller's buffer of `output_length` ≥ bytes.len() bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), output.cast::<u8>(), bytes.len());
            }
            STATUS_SUCCESS
        },
    )
}
