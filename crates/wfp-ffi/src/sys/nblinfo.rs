//! `NdisCopySendNetBufferListInfo` / `NdisCopyReceiveNetBufferListInfo` (NDIS, nblapi.h): copy the
//! per-list out-of-band information (the `NetBufferListInfo` slots) of one NET_BUFFER_LIST to
//! another — what a driver does when it builds a new list (WFPSampler's KrnlHlprNBLCreateNew) or
//! a clone to carry an indication on.
//!
//! The slots copied are the ones the NDIS reference lists for each direction that `include/ndis.h`
//! numbers (NDIS 6.30, 64-bit): send — TcpIpChecksum, IPsecOffloadV1, TcpLargeSend, Ieee8021Q,
//! MediaSpecificInformation, NetBufferListCancelId, NetBufferListProtocolId, IPsecOffloadV2Tunnel,
//! IPsecOffloadV2Header, NetBufferListFilteringInfo; receive — TcpIpChecksum, IPsecOffloadV1,
//! TcpReceiveNoPush, Ieee8021Q, MediaSpecificInformation, NetBufferListFrameType,
//! NetBufferListHashValue, NetBufferListHashInfo, IPsecOffloadV2Tunnel, IPsecOffloadV2Header,
//! NetBufferListFilteringInfo. Every other slot of the destination (WfpNetBufferListInfo, the
//! classification handle, …) is left as it was. (VirtualSubnetInfo, listed for Windows 8 on AMD64,
//! has no id in `include/ndis.h` and is not copied.)

use super::boundary;
use super::types::NetBufferList;

/// `NDIS_NET_BUFFER_LIST_INFO` ids (include/ndis.h).
mod id {
    pub(super) const TCP_IP_CHECKSUM: usize = 0;
    pub(super) const IPSEC_OFFLOAD_V1: usize = 1;
    /// TcpLargeSendNetBufferListInfo on send, TcpReceiveNoPush on receive.
    pub(super) const TCP_LSO_OR_NO_PUSH: usize = 2;
    pub(super) const IEEE_8021Q: usize = 4;
    pub(super) const CANCEL_ID: usize = 5;
    pub(super) const MEDIA_SPECIFIC: usize = 6;
    /// NetBufferListProtocolId (send) and NetBufferListFrameType (receive) share slot 7.
    pub(super) const PROTOCOL_ID_OR_FRAME_TYPE: usize = 7;
    pub(super) const HASH_VALUE: usize = 8;
    pub(super) const HASH_INFO: usize = 9;
    pub(super) const IPSEC_OFFLOAD_V2_TUNNEL: usize = 12;
    pub(super) const IPSEC_OFFLOAD_V2_HEADER: usize = 13;
    pub(super) const FILTERING_INFO: usize = 15;
}

/// The slots NdisCopySendNetBufferListInfo copies.
const SEND: &[usize] = &[
    id::TCP_IP_CHECKSUM,
    id::IPSEC_OFFLOAD_V1,
    id::TCP_LSO_OR_NO_PUSH,
    id::IEEE_8021Q,
    id::MEDIA_SPECIFIC,
    id::CANCEL_ID,
    id::PROTOCOL_ID_OR_FRAME_TYPE,
    id::IPSEC_OFFLOAD_V2_TUNNEL,
    id::IPSEC_OFFLOAD_V2_HEADER,
    id::FILTERING_INFO,
];

/// The slots NdisCopyReceiveNetBufferListInfo copies.
const RECEIVE: &[usize] = &[
    id::TCP_IP_CHECKSUM,
    id::IPSEC_OFFLOAD_V1,
    id::TCP_LSO_OR_NO_PUSH,
    id::IEEE_8021Q,
    id::MEDIA_SPECIFIC,
    id::PROTOCOL_ID_OR_FRAME_TYPE,
    id::HASH_VALUE,
    id::HASH_INFO,
    id::IPSEC_OFFLOAD_V2_TUNNEL,
    id::IPSEC_OFFLOAD_V2_HEADER,
    id::FILTERING_INFO,
];

/// Copies `slots` of `src`'s NetBufferListInfo into `dst`'s. NULL for either list, or the same
/// list twice, copies nothing (NDIS documents no failure; it would fault on NULL).
fn copy(
    function: &'static str,
    dst: *mut NetBufferList,
    src: *const NetBufferList,
    slots: &[usize],
) {
    super::ctx::check_irql(function, 2);
    if dst.is_null() || src.is_null() || std::ptr::eq(dst, src) {
        if dst.is_null() || src.is_null() {
            super::ctx::assertion(format!("{function}: NULL NET_BUFFER_LIST"));
        }
        return;
    }
    for &i in slots {
        // SAFETY: both are the caller's NET_BUFFER_LISTs (checked non-null, distinct), each with
        // MaxNetBufferListInfo slots (the header's layout); only the info slots are touched, one
        // pointer-sized field at a time.
        unsafe { (*dst).net_buffer_list_info[i] = (*src).net_buffer_list_info[i] };
    }
}

#[no_mangle]
pub(crate) extern "C" fn NdisCopySendNetBufferListInfo(
    dst: *mut NetBufferList,
    src: *const NetBufferList,
) {
    boundary("NdisCopySendNetBufferListInfo", (), || {
        copy("NdisCopySendNetBufferListInfo", dst, src, SEND);
    });
}

#[no_mangle]
pub(crate) extern "C" fn NdisCopyReceiveNetBufferListInfo(
    dst: *mut NetBufferList,
    src: *const NetBufferList,
) {
    boundary("NdisCopyReceiveNetBufferListInfo", (), || {
        copy("NdisCopyReceiveNetBufferListInfo", dst, src, RECEIVE);
    });
}
