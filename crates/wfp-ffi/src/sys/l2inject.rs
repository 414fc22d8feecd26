//! Layer-2 injection (WDK fwpsk.h, Windows 8+): `FwpsInjectMacReceiveAsync0`,
//! `FwpsInjectMacSendAsync0`, `FwpsInjectvSwitchEthernetIngressAsync0`.
//!
//! Each needs an injection handle created with FWPS_INJECTION_TYPE_L2, and here no handle has that
//! type: `FwpsInjectionHandleCreate0` refuses it (the engine's injection ledger carries transport,
//! network, forward and stream injections; the data path classifies no MAC-frame or vSwitch layer,
//! so an injected frame would have nowhere to go). A call is therefore always an injection on a
//! handle that lacks its injection type, which the engine answers with STATUS_FWP_INVALID_PARAMETER
//! for every other injection function ([`wfp_core::Engine::inject`]): the same here. Nothing
//! changes — the driver still owns the NET_BUFFER_LIST and `completionFn` is never called — and
//! success is never pretended.

use std::ffi::c_void;

use wfp_core::Status;

use super::types::NetBufferList;
use super::{boundary, nt, NtStatus, STATUS_INVALID_PARAMETER};

/// The answer every layer-2 injection gets (see the module comment).
fn refuse(function: &'static str) -> NtStatus {
    super::ctx::check_irql(function, 2);
    nt(Status::FWP_INVALID_PARAMETER)
}

#[no_mangle]
pub(crate) extern "C" fn FwpsInjectMacReceiveAsync0(
    _injection_handle: *mut c_void,
    _injection_context: *mut c_void,
    _flags: u32,
    _layer_id: u16,
    _interface_index: u32,
    _ndis_port_number: u32,
    _net_buffer_lists: *mut NetBufferList,
    _completion_fn: *const c_void,
    _completion_context: *mut c_void,
) -> NtStatus {
    boundary(
        "FwpsInjectMacReceiveAsync0",
        STATUS_INVALID_PARAMETER,
        || refuse("FwpsInjectMacReceiveAsync0"),
    )
}

#[no_mangle]
pub(crate) extern "C" fn FwpsInjectMacSendAsync0(
    _injection_handle: *mut c_void,
    _injection_context: *mut c_void,
    _flags: u32,
    _layer_id: u16,
    _interface_index: u32,
    _ndis_port_number: u32,
    _net_buffer_lists: *mut NetBufferList,
    _completion_fn: *const c_void,
    _completion_context: *mut c_void,
) -> NtStatus {
    boundary("FwpsInjectMacSendAsync0", STATUS_INVALID_PARAMETER, || {
        refuse("FwpsInjectMacSendAsync0")
    })
}

#[no_mangle]
pub(crate) extern "C" fn FwpsInjectvSwitchEthernetIngressAsync0(
    _injection_handle: *mut c_void,
    _injection_context: *mut c_void,
    _flags: u32,
    _reserved: *mut c_void,
    _vswitch_id: *const c_void,
    _vswitch_source_port_id: u32,
    _vswitch_source_nic_index: u16,
    _net_buffer_lists: *mut NetBufferList,
    _completion_fn: *const c_void,
    _completion_context: *mut c_void,
) -> NtStatus {
    boundary(
        "FwpsInjectvSwitchEthernetIngressAsync0",
        STATUS_INVALID_PARAMETER,
        || refuse("FwpsInjectvSwitchEthernetIngressAsync0"),
    )
}
