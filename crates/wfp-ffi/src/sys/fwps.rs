//! Run-time callout API (wfp-reference §5, §6, §9): registration, flow contexts, stream copy.

use std::ffi::c_void;
use std::sync::Arc;

use wfp_core::{CalloutFlags, CalloutId, CalloutRegistration, Guid, LayerId, Status};

use super::callout::{CCallout, ClassifyFn, ClassifyFn0, ClassifyFn1, FlowDeleteFn, NotifyFn};
use super::ctx::{self, PASSIVE_LEVEL};
use super::types::{CGuid, DeviceObject, FwpsCallout, FwpsStreamData0};
use super::{boundary, nt, NtStatus, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER};
use crate::host::CalloutRecord;
use crate::verifier::Finding;

/// FWPS_CALLOUTn → engine registration (§5.2).
///
/// # Safety
/// `callout` must be null or point to an FWPS_CALLOUTn whose function pointers have the types of
/// version `version`.
unsafe fn register(
    version: u8,
    device: *mut c_void,
    callout: *const FwpsCallout,
    id_out: *mut u32,
) -> NtStatus {
    let Some(host) = ctx::with_host(|h| h as *const crate::host::HostInner) else {
        return STATUS_INVALID_DEVICE_STATE;
    };
    // SAFETY: the host bound to this thread outlives the call (ctx::bind contract).
    let host = unsafe { &*host };
    if ctx::irql() > PASSIVE_LEVEL {
        host.finding(Finding::IrqlTooHigh {
            function: "FwpsCalloutRegister",
            irql: ctx::irql(),
        });
    }
    // SAFETY: per the contract (checked non-null).
    let Some(c) = (unsafe { callout.as_ref() }) else {
        return STATUS_INVALID_PARAMETER;
    };
    if device.is_null() || c.classify_fn.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: `device` is a DEVICE_OBJECT (IoCreateDevice / WdfDeviceWdmGetDeviceObject).
    let driver_obj = unsafe { (*device.cast::<DeviceObject>()).driver_object };
    let driver = driver_index(driver_obj).unwrap_or_else(ctx::current_driver);
    // SAFETY: the function pointers have the version's types (contract); a null notify or
    // flowDelete becomes None.
    let (classify, notify, flow_delete) = unsafe {
        let classify = if version == 0 {
            ClassifyFn::V0(std::mem::transmute::<*const c_void, ClassifyFn0>(
                c.classify_fn,
            ))
        } else {
            ClassifyFn::V1(std::mem::transmute::<*const c_void, ClassifyFn1>(
                c.classify_fn,
            ))
        };
        let notify = (!c.notify_fn.is_null())
            .then(|| std::mem::transmute::<*const c_void, NotifyFn>(c.notify_fn));
        let flow_delete = (!c.flow_delete_fn.is_null())
            .then(|| std::mem::transmute::<*const c_void, FlowDeleteFn>(c.flow_delete_fn));
        (classify, notify, flow_delete)
    };
    let Some(host_arc) = host.me.upgrade() else {
        return STATUS_INVALID_DEVICE_STATE;
    };
    let adapter = CCallout {
        host: host_arc,
        driver,
        classify,
        notify,
        flow_delete,
    };
    let reg = CalloutRegistration {
        key: Guid::from_windows_bytes(c.callout_key.bytes),
        flags: CalloutFlags(c.flags),
        callout: Arc::new(adapter),
        flow_delete: flow_delete.is_some(),
    };
    match host.engine.register_callout(reg) {
        Ok(id) => {
            host.callouts.lock().insert(id.0, CalloutRecord { driver });
            // SAFETY: optional out-pointer from the caller.
            if let Some(out) = unsafe { id_out.as_mut() } {
                *out = id.0;
            }
            super::STATUS_SUCCESS
        }
        Err(s) => nt(s),
    }
}

/// The driver index the loader stored in `DRIVER_OBJECT.DriverSection`.
fn driver_index(d: *mut super::types::DriverObject) -> Option<usize> {
    // SAFETY: a DRIVER_OBJECT the loader created (checked non-null).
    let d = unsafe { d.as_ref() }?;
    Some(d.driver_section as usize)
        .filter(|i| *i != 0)
        .map(|i| i - 1)
}

macro_rules! register_fn {
    ($name:ident, $v:expr) => {
        /// `FwpsCalloutRegisterN` (§5.1).
        #[no_mangle]
        pub(crate) unsafe extern "C" fn $name(
            device: *mut c_void,
            callout: *const FwpsCallout,
            id: *mut u32,
        ) -> NtStatus {
            // SAFETY: the C caller passes an FWPS_CALLOUT of this version.
            boundary(stringify!($name), STATUS_INVALID_PARAMETER, || unsafe {
                register($v, device, callout, id)
            })
        }
    };
}
register_fn!(FwpsCalloutRegister0, 0);
register_fn!(FwpsCalloutRegister1, 1);
register_fn!(FwpsCalloutRegister2, 2);
register_fn!(FwpsCalloutRegister3, 3);

fn unregister(id: CalloutId) -> NtStatus {
    ctx::with_host(|h| {
        let s = h.engine.unregister_callout(id);
        if s == Status::SUCCESS {
            h.callouts.lock().remove(&id.0);
        }
        nt(s)
    })
    .unwrap_or(STATUS_INVALID_DEVICE_STATE)
}

#[no_mangle]
pub(crate) extern "C" fn FwpsCalloutUnregisterById0(id: u32) -> NtStatus {
    boundary(
        "FwpsCalloutUnregisterById0",
        STATUS_INVALID_PARAMETER,
        || unregister(CalloutId(id)),
    )
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsCalloutUnregisterByKey0(key: *const CGuid) -> NtStatus {
    boundary(
        "FwpsCalloutUnregisterByKey0",
        STATUS_INVALID_PARAMETER,
        || {
            // SAFETY: the caller's GUID (checked non-null).
            let Some(k) = (unsafe { key.as_ref() }) else {
                return STATUS_INVALID_PARAMETER;
            };
            let key = Guid::from_windows_bytes(k.bytes);
            match ctx::with_host(|h| h.engine.callout_id(&key)).flatten() {
                Some(id) => unregister(id),
                None => nt(Status::FWP_CALLOUT_NOT_FOUND),
            }
        },
    )
}

#[no_mangle]
pub(crate) extern "C" fn FwpsFlowAssociateContext0(
    flow: u64,
    layer: u16,
    callout: u32,
    context: u64,
) -> NtStatus {
    boundary(
        "FwpsFlowAssociateContext0",
        STATUS_INVALID_PARAMETER,
        || {
            ctx::with_host(|h| {
                let s = h.engine.flow_associate_context(
                    flow,
                    LayerId(layer),
                    CalloutId(callout),
                    context,
                );
                if s == Status::SUCCESS {
                    h.flows
                        .lock()
                        .entry((layer, callout, context))
                        .or_default()
                        .push(flow);
                }
                nt(s)
            })
            .unwrap_or(STATUS_INVALID_DEVICE_STATE)
        },
    )
}

#[no_mangle]
pub(crate) extern "C" fn FwpsFlowRemoveContext0(flow: u64, layer: u16, callout: u32) -> NtStatus {
    boundary("FwpsFlowRemoveContext0", STATUS_INVALID_PARAMETER, || {
        ctx::with_host(|h| {
            nt(h.engine
                .flow_remove_context(flow, LayerId(layer), CalloutId(callout)))
        })
        .unwrap_or(STATUS_INVALID_DEVICE_STATE)
    })
}

#[no_mangle]
pub(crate) extern "C" fn FwpsFlowAbort0(flow: u64) -> NtStatus {
    boundary("FwpsFlowAbort0", STATUS_INVALID_PARAMETER, || {
        ctx::with_host(|h| {
            if h.engine.flow_abort(flow) == 0 {
                nt(Status::UNSUCCESSFUL)
            } else {
                super::STATUS_SUCCESS
            }
        })
        .unwrap_or(STATUS_INVALID_DEVICE_STATE)
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsCopyStreamDataToBuffer0(
    stream: *const FwpsStreamData0,
    buffer: *mut c_void,
    bytes_to_copy: usize,
    bytes_copied: *mut usize,
) {
    boundary("FwpsCopyStreamDataToBuffer0", (), || {
        // SAFETY: the stream data the engine indicated (checked non-null).
        let Some(s) = (unsafe { stream.as_ref() }) else {
            return;
        };
        let n = bytes_to_copy.min(s.data_length);
        let mut copied = 0;
        if !buffer.is_null() && n > 0 {
            // SAFETY: the caller's buffer holds `bytes_to_copy` bytes.
            let out = unsafe { std::slice::from_raw_parts_mut(buffer.cast::<u8>(), n) };
            copied = copy_stream(s, out);
        }
        // SAFETY: optional out-pointer from the caller.
        if let Some(c) = unsafe { bytes_copied.as_mut() } {
            *c = copied;
        }
    });
}

/// Copies indicated stream bytes from `dataOffset` on, across NBLs, NBs and MDLs.
fn copy_stream(s: &FwpsStreamData0, out: &mut [u8]) -> usize {
    let o = &s.data_offset;
    let mut done = 0;
    let mut nbl = o.net_buffer_list;
    let mut nb = o.net_buffer;
    let mut first = true;
    // SAFETY: the chain the engine (or a driver's clone) built: every NBL, NB and MDL is valid.
    unsafe {
        while !nbl.is_null() && done < out.len() {
            if nb.is_null() {
                nb = (*nbl).first_net_buffer;
            }
            while !nb.is_null() && done < out.len() {
                let d = &(*nb).data;
                let (mdl, off) = if first {
                    (o.mdl.cast_const(), o.mdl_offset as usize)
                } else {
                    (d.current_mdl.cast_const(), d.current_mdl_offset as usize)
                };
                first = false;
                let want =
                    (out.len() - done).min(usize::try_from(d.data_length).unwrap_or(usize::MAX));
                done += super::ndis::copy_from_chain(mdl, off, &mut out[done..done + want]);
                nb = (*nb).data.next;
            }
            nbl = (*nbl).next;
        }
    }
    done
}
