//! `#[repr(C)]` mirrors of the structures the headers in `include/` define, with the Windows x64
//! layout (the C layout test `tests/c/layout.c` asserts the same sizes and offsets from the C side;
//! `tests/layout.rs` regenerates its expected values from these types).

use std::ffi::c_void;

/// `GUID` (4-aligned: its first member is a ULONG).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CGuid {
    pub(crate) bytes: [u8; 16],
}

/// `UNICODE_STRING`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnicodeString {
    pub(crate) length: u16,
    pub(crate) maximum_length: u16,
    pub(crate) buffer: *mut u16,
}

/// `FWP_BYTE_BLOB`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpByteBlob {
    pub(crate) size: u32,
    pub(crate) data: *mut u8,
}

/// `FWP_VALUE0` / `FWP_CONDITION_VALUE0` (same layout: a type and a pointer-sized union).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpValue0 {
    pub(crate) data_type: u32,
    pub(crate) value: u64,
}

/// `FWP_V4_ADDR_AND_MASK`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpV4AddrAndMask {
    pub(crate) addr: u32,
    pub(crate) mask: u32,
}

/// `FWP_V6_ADDR_AND_MASK`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpV6AddrAndMask {
    pub(crate) addr: [u8; 16],
    pub(crate) prefix_length: u8,
}

/// `FWP_RANGE0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpRange0 {
    pub(crate) low: FwpValue0,
    pub(crate) high: FwpValue0,
}

/// `FWPS_FILTER_CONDITION0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsFilterCondition0 {
    pub(crate) field_id: u16,
    pub(crate) reserved: u16,
    pub(crate) match_type: u32,
    pub(crate) condition_value: FwpValue0,
}

/// `FWPS_ACTION0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsAction0 {
    pub(crate) action_type: u32,
    pub(crate) callout_id: u32,
}

/// `FWPS_FILTER0..3` (one layout).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsFilter {
    pub(crate) filter_id: u64,
    pub(crate) weight: FwpValue0,
    pub(crate) sub_layer_weight: u16,
    pub(crate) flags: u16,
    pub(crate) num_filter_conditions: u32,
    pub(crate) filter_condition: *mut FwpsFilterCondition0,
    pub(crate) action: FwpsAction0,
    pub(crate) context: u64,
    pub(crate) provider_context: *mut c_void,
}

/// `FWPS_INCOMING_VALUES0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsIncomingValues0 {
    pub(crate) layer_id: u16,
    pub(crate) value_count: u32,
    pub(crate) incoming_value: *mut FwpValue0,
}

/// `FWPS_CLASSIFY_OUT0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FwpsClassifyOut0 {
    pub(crate) action_type: u32,
    pub(crate) out_context: u64,
    pub(crate) filter_id: u64,
    pub(crate) rights: u32,
    pub(crate) flags: u32,
    pub(crate) reserved: u32,
}

/// `FWPS_DISCARD_METADATA0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FwpsDiscardMetadata0 {
    pub(crate) discard_module: u32,
    pub(crate) discard_reason: u32,
    pub(crate) filter_id: u64,
}

/// `FWPS_INBOUND_FRAGMENT_METADATA0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FwpsInboundFragmentMetadata0 {
    pub(crate) fragment_identification: u32,
    pub(crate) fragment_offset: u16,
    pub(crate) fragment_length: u32,
}

/// `IP_ADDRESS_PREFIX` (SOCKADDR_INET + prefix length).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IpAddressPrefix {
    pub(crate) prefix: [u32; 7],
    pub(crate) prefix_length: u8,
}

/// `FWPS_INCOMING_METADATA_VALUES0` (Windows 10 layout).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsIncomingMetadataValues0 {
    pub(crate) current_metadata_values: u32,
    pub(crate) flags: u32,
    pub(crate) reserved: u64,
    pub(crate) discard_metadata: FwpsDiscardMetadata0,
    pub(crate) flow_handle: u64,
    pub(crate) ip_header_size: u32,
    pub(crate) transport_header_size: u32,
    pub(crate) process_path: *mut FwpByteBlob,
    pub(crate) token: u64,
    pub(crate) process_id: u64,
    pub(crate) source_interface_index: u32,
    pub(crate) destination_interface_index: u32,
    pub(crate) compartment_id: u32,
    pub(crate) fragment_metadata: FwpsInboundFragmentMetadata0,
    pub(crate) path_mtu: u32,
    pub(crate) completion_handle: *mut c_void,
    pub(crate) transport_endpoint_handle: u64,
    pub(crate) remote_scope_id: u32,
    pub(crate) control_data: *mut c_void,
    pub(crate) control_data_length: u32,
    pub(crate) packet_direction: u32,
    pub(crate) header_include_header: *mut c_void,
    pub(crate) header_include_header_length: u32,
    pub(crate) destination_prefix: IpAddressPrefix,
    pub(crate) frame_length: u16,
    pub(crate) parent_endpoint_handle: u64,
    pub(crate) icmp_id_and_sequence: u32,
    pub(crate) local_redirect_target_pid: u32,
    pub(crate) original_destination: *mut c_void,
    pub(crate) redirect_records: *mut c_void,
    pub(crate) current_l2_metadata_values: u32,
    pub(crate) l2_flags: u32,
    pub(crate) ethernet_mac_header_size: u32,
    pub(crate) wifi_operation_mode: u32,
    pub(crate) padding0: u32,
    pub(crate) padding1: u16,
    pub(crate) padding2: u32,
    pub(crate) vswitch_packet_context: *mut c_void,
    pub(crate) sub_process_tag: *mut c_void,
    pub(crate) reserved1: u64,
}

/// `MDL`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mdl {
    pub(crate) next: *mut Self,
    pub(crate) size: i16,
    pub(crate) mdl_flags: i16,
    pub(crate) process: *mut c_void,
    pub(crate) mapped_system_va: *mut c_void,
    pub(crate) start_va: *mut c_void,
    pub(crate) byte_count: u32,
    pub(crate) byte_offset: u32,
}

/// The `NET_BUFFER_DATA` arm of NET_BUFFER's first union.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct NetBufferData {
    pub(crate) next: *mut NetBuffer,
    pub(crate) current_mdl: *mut Mdl,
    pub(crate) current_mdl_offset: u32,
    pub(crate) data_length: u64,
    pub(crate) mdl_chain: *mut Mdl,
    pub(crate) data_offset: u32,
}

/// A 16-aligned pair of pointers (the `DECLSPEC_ALIGN(16) PVOID x[n]` arrays).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Aligned<T: Copy>(pub(crate) T);

/// `NET_BUFFER`.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct NetBuffer {
    pub(crate) data: NetBufferData,
    pub(crate) checksum_bias: u16,
    pub(crate) reserved: u16,
    pub(crate) ndis_pool_handle: *mut c_void,
    pub(crate) ndis_reserved: Aligned<[*mut c_void; 2]>,
    pub(crate) protocol_reserved: Aligned<[*mut c_void; 6]>,
    pub(crate) miniport_reserved: Aligned<[*mut c_void; 4]>,
    pub(crate) data_physical_address: u64,
    pub(crate) shared_memory_info: *mut c_void,
}

/// `MaxNetBufferListInfo` as pinned by `include/ndis.h`.
pub(crate) const MAX_NET_BUFFER_LIST_INFO: usize = 20;

/// `NET_BUFFER_LIST`.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct NetBufferList {
    pub(crate) next: *mut Self,
    pub(crate) first_net_buffer: *mut NetBuffer,
    pub(crate) context: *mut c_void,
    pub(crate) parent_net_buffer_list: *mut Self,
    pub(crate) ndis_pool_handle: *mut c_void,
    pub(crate) ndis_reserved: Aligned<[*mut c_void; 2]>,
    pub(crate) protocol_reserved: Aligned<[*mut c_void; 4]>,
    pub(crate) miniport_reserved: Aligned<[*mut c_void; 2]>,
    pub(crate) scratch: *mut c_void,
    pub(crate) source_handle: *mut c_void,
    pub(crate) nbl_flags: u32,
    pub(crate) child_ref_count: i32,
    pub(crate) flags: u32,
    pub(crate) status: i32,
    pub(crate) net_buffer_list_info: [*mut c_void; MAX_NET_BUFFER_LIST_INFO],
}

/// `FWPS_STREAM_DATA_OFFSET0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsStreamDataOffset0 {
    pub(crate) net_buffer_list: *mut NetBufferList,
    pub(crate) net_buffer: *mut NetBuffer,
    pub(crate) mdl: *mut Mdl,
    pub(crate) mdl_offset: u32,
    pub(crate) net_buffer_offset: u32,
    pub(crate) stream_data_offset: usize,
}

/// `FWPS_STREAM_DATA0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsStreamData0 {
    pub(crate) flags: u32,
    pub(crate) data_offset: FwpsStreamDataOffset0,
    pub(crate) data_length: usize,
    pub(crate) net_buffer_list_chain: *mut NetBufferList,
}

/// `FWPS_STREAM_CALLOUT_IO_PACKET0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsStreamCalloutIoPacket0 {
    pub(crate) stream_data: *mut FwpsStreamData0,
    pub(crate) missed_bytes: usize,
    pub(crate) count_bytes_required: u32,
    pub(crate) count_bytes_enforced: usize,
    pub(crate) stream_action: u32,
}

/// `FWPM_DISPLAY_DATA0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpmDisplayData0 {
    pub(crate) name: *const u16,
    pub(crate) description: *const u16,
}

/// `FWPM_SESSION0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpmSession0 {
    pub(crate) session_key: CGuid,
    pub(crate) display_data: FwpmDisplayData0,
    pub(crate) flags: u32,
    pub(crate) txn_wait_timeout_in_msec: u32,
    pub(crate) process_id: u32,
    pub(crate) sid: *mut c_void,
    pub(crate) username: *mut u16,
    pub(crate) kernel_mode: i32,
}

/// `FWPM_PROVIDER0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpmProvider0 {
    pub(crate) provider_key: CGuid,
    pub(crate) display_data: FwpmDisplayData0,
    pub(crate) flags: u32,
    pub(crate) provider_data: FwpByteBlob,
    pub(crate) service_name: *const u16,
}

/// `FWPM_SUBLAYER0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpmSublayer0 {
    pub(crate) sub_layer_key: CGuid,
    pub(crate) display_data: FwpmDisplayData0,
    pub(crate) flags: u32,
    pub(crate) provider_key: *const CGuid,
    pub(crate) provider_data: FwpByteBlob,
    pub(crate) weight: u16,
}

/// `FWPM_CALLOUT0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpmCallout0 {
    pub(crate) callout_key: CGuid,
    pub(crate) display_data: FwpmDisplayData0,
    pub(crate) flags: u32,
    pub(crate) provider_key: *const CGuid,
    pub(crate) provider_data: FwpByteBlob,
    pub(crate) applicable_layer: CGuid,
    pub(crate) callout_id: u32,
}

/// `FWPM_FILTER_CONDITION0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpmFilterCondition0 {
    pub(crate) field_key: CGuid,
    pub(crate) match_type: u32,
    pub(crate) condition_value: FwpValue0,
}

/// `FWPM_ACTION0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpmAction0 {
    pub(crate) action_type: u32,
    pub(crate) key: CGuid,
}

/// `FWPM_PROVIDER_CONTEXT0..3` (one layout: the type-dependent union is one pointer; for
/// FWPM_GENERAL_CONTEXT it is `FWP_BYTE_BLOB *dataBuffer`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpmProviderContext {
    pub(crate) provider_context_key: CGuid,
    pub(crate) display_data: FwpmDisplayData0,
    pub(crate) flags: u32,
    pub(crate) provider_key: *mut CGuid,
    pub(crate) provider_data: FwpByteBlob,
    pub(crate) context_type: u32,
    pub(crate) data: *mut FwpByteBlob,
    pub(crate) provider_context_id: u64,
}

/// `union { UINT64 rawContext; GUID providerContextKey; }` (8-aligned).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawContext {
    pub(crate) bytes: [u8; 16],
}

/// `FWPM_FILTER0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpmFilter0 {
    pub(crate) filter_key: CGuid,
    pub(crate) display_data: FwpmDisplayData0,
    pub(crate) flags: u32,
    pub(crate) provider_key: *const CGuid,
    pub(crate) provider_data: FwpByteBlob,
    pub(crate) layer_key: CGuid,
    pub(crate) sub_layer_key: CGuid,
    pub(crate) weight: FwpValue0,
    pub(crate) num_filter_conditions: u32,
    pub(crate) filter_condition: *const FwpmFilterCondition0,
    pub(crate) action: FwpmAction0,
    pub(crate) context: RawContext,
    pub(crate) reserved: *const CGuid,
    pub(crate) filter_id: u64,
    pub(crate) effective_weight: FwpValue0,
}

/// `FWPS_CALLOUT0..3` (one layout; the function types differ by version).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsCallout {
    pub(crate) callout_key: CGuid,
    pub(crate) flags: u32,
    pub(crate) classify_fn: *const c_void,
    pub(crate) notify_fn: *const c_void,
    pub(crate) flow_delete_fn: *const c_void,
}

/// `KLOCK_QUEUE_HANDLE`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct KLockQueueHandle {
    pub(crate) next: *mut c_void,
    pub(crate) lock: *mut usize,
    pub(crate) old_irql: u8,
}

/// `DRIVER_OBJECT` (x64, 0x150 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct DriverObject {
    pub(crate) object_type: i16,
    pub(crate) size: i16,
    pub(crate) device_object: *mut DeviceObject,
    pub(crate) flags: u32,
    pub(crate) driver_start: *mut c_void,
    pub(crate) driver_size: u32,
    pub(crate) driver_section: *mut c_void,
    pub(crate) driver_extension: *mut DriverExtension,
    pub(crate) driver_name: UnicodeString,
    pub(crate) hardware_database: *mut UnicodeString,
    pub(crate) fast_io_dispatch: *mut c_void,
    pub(crate) driver_init: *const c_void,
    pub(crate) driver_start_io: *const c_void,
    pub(crate) driver_unload: Option<unsafe extern "C" fn(*mut Self)>,
    pub(crate) major_function: [*const c_void; 28],
}

/// `DRIVER_EXTENSION`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct DriverExtension {
    pub(crate) driver_object: *mut DriverObject,
    pub(crate) add_device: *mut c_void,
    pub(crate) count: u32,
    pub(crate) service_key_name: UnicodeString,
}

/// `DEVICE_OBJECT` (the members `include/wfp/km.h` declares).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceObject {
    pub(crate) object_type: i16,
    pub(crate) size: u16,
    pub(crate) reference_count: i32,
    pub(crate) driver_object: *mut DriverObject,
    pub(crate) next_device: *mut Self,
    pub(crate) attached_device: *mut Self,
    pub(crate) current_irp: *mut c_void,
    pub(crate) timer: *mut c_void,
    pub(crate) flags: u32,
    pub(crate) characteristics: u32,
    pub(crate) vpb: *mut c_void,
    pub(crate) device_extension: *mut c_void,
    pub(crate) device_type: u32,
    pub(crate) stack_size: i8,
}

/// `SOCKADDR_STORAGE` (128 bytes, 8-aligned).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct SockaddrStorage {
    pub(crate) bytes: [u8; 128],
}

/// `FWPS_CONNECT_REQUEST0` (Windows 8+ layout).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsConnectRequest0 {
    pub(crate) local_address_and_port: SockaddrStorage,
    pub(crate) remote_address_and_port: SockaddrStorage,
    pub(crate) port_reservation_token: u64,
    pub(crate) local_redirect_target_pid: u32,
    pub(crate) previous_version: *mut Self,
    pub(crate) modifier_filter_id: u64,
    pub(crate) local_redirect_handle: *mut c_void,
    pub(crate) local_redirect_context: *mut c_void,
    pub(crate) local_redirect_context_size: usize,
}

/// `FWPS_BIND_REQUEST0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsBindRequest0 {
    pub(crate) local_address_and_port: SockaddrStorage,
    pub(crate) port_reservation_token: u64,
    pub(crate) previous_version: *mut Self,
    pub(crate) modifier_filter_id: u64,
}

/// `FWPS_TRANSPORT_SEND_PARAMS0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsTransportSendParams0 {
    pub(crate) remote_address: *mut u8,
    pub(crate) remote_scope_id: u32,
    pub(crate) control_data: *mut u8,
    pub(crate) control_data_length: u32,
}

/// `FWPS_TRANSPORT_SEND_PARAMS1` (PARAMS0 is its prefix).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FwpsTransportSendParams1 {
    pub(crate) remote_address: *mut u8,
    pub(crate) remote_scope_id: u32,
    pub(crate) control_data: *mut u8,
    pub(crate) control_data_length: u32,
    pub(crate) header_include_header: *mut u8,
    pub(crate) header_include_header_length: u32,
}

/// `FWPS_PACKET_LIST_INFORMATION0` (ipsecInformation flags word, fwpInformation flags word).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FwpsPacketListInformation0 {
    pub(crate) ipsec_information: u32,
    pub(crate) fwp_information: u32,
}

/// `WFP_WPP_CONTROL` (include/wfp/km.h): the driver's WPP trace session (wdk-runtime.md §9), what
/// the generated `.tmh` macros check before formatting a message.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WppControl {
    pub(crate) level: u32,
    pub(crate) flags: u32,
}

/// Sizes and offsets checked against the C headers (name, value): generated into
/// `tests/c/layout_expected.h` by `tests/layout.rs`.
pub(crate) fn layout_table() -> Vec<(String, usize)> {
    use std::mem::{offset_of, size_of};
    let mut t = Vec::new();
    macro_rules! size {
        ($c:literal, $t:ty) => {
            t.push((format!("sizeof({})", $c), size_of::<$t>()));
        };
    }
    macro_rules! off {
        ($c:literal, $t:ty, $cf:literal, $f:ident) => {
            t.push((format!("offsetof({}, {})", $c, $cf), offset_of!($t, $f)));
        };
    }
    size!("GUID", CGuid);
    size!("WFP_WPP_CONTROL", WppControl);
    off!("WFP_WPP_CONTROL", WppControl, "Flags", flags);
    size!("UNICODE_STRING", UnicodeString);
    size!("FWP_BYTE_BLOB", FwpByteBlob);
    size!("FWP_VALUE0", FwpValue0);
    size!("FWP_CONDITION_VALUE0", FwpValue0);
    size!("FWP_V4_ADDR_AND_MASK", FwpV4AddrAndMask);
    size!("FWP_V6_ADDR_AND_MASK", FwpV6AddrAndMask);
    size!("FWP_RANGE0", FwpRange0);
    size!("FWPS_FILTER_CONDITION0", FwpsFilterCondition0);
    off!(
        "FWPS_FILTER_CONDITION0",
        FwpsFilterCondition0,
        "matchType",
        match_type
    );
    off!(
        "FWPS_FILTER_CONDITION0",
        FwpsFilterCondition0,
        "conditionValue",
        condition_value
    );
    size!("FWPS_ACTION0", FwpsAction0);
    size!("FWPS_FILTER0", FwpsFilter);
    size!("FWPS_FILTER3", FwpsFilter);
    off!("FWPS_FILTER3", FwpsFilter, "weight", weight);
    off!(
        "FWPS_FILTER3",
        FwpsFilter,
        "subLayerWeight",
        sub_layer_weight
    );
    off!("FWPS_FILTER3", FwpsFilter, "flags", flags);
    off!(
        "FWPS_FILTER3",
        FwpsFilter,
        "numFilterConditions",
        num_filter_conditions
    );
    off!(
        "FWPS_FILTER3",
        FwpsFilter,
        "filterCondition",
        filter_condition
    );
    off!("FWPS_FILTER3", FwpsFilter, "action", action);
    off!("FWPS_FILTER3", FwpsFilter, "context", context);
    off!(
        "FWPS_FILTER3",
        FwpsFilter,
        "providerContext",
        provider_context
    );
    size!("FWPM_PROVIDER_CONTEXT0", FwpmProviderContext);
    size!("FWPM_PROVIDER_CONTEXT3", FwpmProviderContext);
    off!(
        "FWPM_PROVIDER_CONTEXT3",
        FwpmProviderContext,
        "displayData",
        display_data
    );
    off!(
        "FWPM_PROVIDER_CONTEXT3",
        FwpmProviderContext,
        "flags",
        flags
    );
    off!(
        "FWPM_PROVIDER_CONTEXT3",
        FwpmProviderContext,
        "providerKey",
        provider_key
    );
    off!(
        "FWPM_PROVIDER_CONTEXT3",
        FwpmProviderContext,
        "providerData",
        provider_data
    );
    off!(
        "FWPM_PROVIDER_CONTEXT3",
        FwpmProviderContext,
        "type",
        context_type
    );
    off!(
        "FWPM_PROVIDER_CONTEXT3",
        FwpmProviderContext,
        "dataBuffer",
        data
    );
    off!(
        "FWPM_PROVIDER_CONTEXT3",
        FwpmProviderContext,
        "providerContextId",
        provider_context_id
    );
    size!("FWPS_INCOMING_VALUES0", FwpsIncomingValues0);
    off!(
        "FWPS_INCOMING_VALUES0",
        FwpsIncomingValues0,
        "valueCount",
        value_count
    );
    off!(
        "FWPS_INCOMING_VALUES0",
        FwpsIncomingValues0,
        "incomingValue",
        incoming_value
    );
    size!("FWPS_CLASSIFY_OUT0", FwpsClassifyOut0);
    off!(
        "FWPS_CLASSIFY_OUT0",
        FwpsClassifyOut0,
        "outContext",
        out_context
    );
    off!(
        "FWPS_CLASSIFY_OUT0",
        FwpsClassifyOut0,
        "filterId",
        filter_id
    );
    off!("FWPS_CLASSIFY_OUT0", FwpsClassifyOut0, "rights", rights);
    off!("FWPS_CLASSIFY_OUT0", FwpsClassifyOut0, "flags", flags);
    off!("FWPS_CLASSIFY_OUT0", FwpsClassifyOut0, "reserved", reserved);
    size!(
        "FWPS_INCOMING_METADATA_VALUES0",
        FwpsIncomingMetadataValues0
    );
    type M = FwpsIncomingMetadataValues0;
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "discardMetadata",
        discard_metadata
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "flowHandle",
        flow_handle
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "ipHeaderSize",
        ip_header_size
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "processPath",
        process_path
    );
    off!("FWPS_INCOMING_METADATA_VALUES0", M, "processId", process_id);
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "sourceInterfaceIndex",
        source_interface_index
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "compartmentId",
        compartment_id
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "fragmentMetadata",
        fragment_metadata
    );
    off!("FWPS_INCOMING_METADATA_VALUES0", M, "pathMtu", path_mtu);
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "completionHandle",
        completion_handle
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "remoteScopeId",
        remote_scope_id
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "controlData",
        control_data
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "packetDirection",
        packet_direction
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "destinationPrefix",
        destination_prefix
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "frameLength",
        frame_length
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "icmpIdAndSequence",
        icmp_id_and_sequence
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "originalDestination",
        original_destination
    );
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "currentL2MetadataValues",
        current_l2_metadata_values
    );
    off!("FWPS_INCOMING_METADATA_VALUES0", M, "padding1", padding1);
    off!(
        "FWPS_INCOMING_METADATA_VALUES0",
        M,
        "vSwitchPacketContext",
        vswitch_packet_context
    );
    off!("FWPS_INCOMING_METADATA_VALUES0", M, "reserved1", reserved1);
    size!("MDL", Mdl);
    off!("MDL", Mdl, "MappedSystemVa", mapped_system_va);
    off!("MDL", Mdl, "ByteCount", byte_count);
    off!("MDL", Mdl, "ByteOffset", byte_offset);
    size!("NET_BUFFER", NetBuffer);
    off!("NET_BUFFER", NetBuffer, "ChecksumBias", checksum_bias);
    off!("NET_BUFFER", NetBuffer, "NdisPoolHandle", ndis_pool_handle);
    off!(
        "NET_BUFFER",
        NetBuffer,
        "ProtocolReserved",
        protocol_reserved
    );
    off!(
        "NET_BUFFER",
        NetBuffer,
        "DataPhysicalAddress",
        data_physical_address
    );
    size!("NET_BUFFER_LIST", NetBufferList);
    off!("NET_BUFFER_LIST", NetBufferList, "Context", context);
    off!(
        "NET_BUFFER_LIST",
        NetBufferList,
        "NdisReserved",
        ndis_reserved
    );
    off!("NET_BUFFER_LIST", NetBufferList, "Scratch", scratch);
    off!("NET_BUFFER_LIST", NetBufferList, "NblFlags", nbl_flags);
    off!("NET_BUFFER_LIST", NetBufferList, "Status", status);
    off!(
        "NET_BUFFER_LIST",
        NetBufferList,
        "NetBufferListInfo",
        net_buffer_list_info
    );
    size!("FWPS_STREAM_DATA0", FwpsStreamData0);
    off!(
        "FWPS_STREAM_DATA0",
        FwpsStreamData0,
        "dataLength",
        data_length
    );
    off!(
        "FWPS_STREAM_DATA0",
        FwpsStreamData0,
        "netBufferListChain",
        net_buffer_list_chain
    );
    size!("FWPS_STREAM_CALLOUT_IO_PACKET0", FwpsStreamCalloutIoPacket0);
    off!(
        "FWPS_STREAM_CALLOUT_IO_PACKET0",
        FwpsStreamCalloutIoPacket0,
        "countBytesRequired",
        count_bytes_required
    );
    off!(
        "FWPS_STREAM_CALLOUT_IO_PACKET0",
        FwpsStreamCalloutIoPacket0,
        "streamAction",
        stream_action
    );
    size!("FWPM_SESSION0", FwpmSession0);
    off!("FWPM_SESSION0", FwpmSession0, "flags", flags);
    off!("FWPM_SESSION0", FwpmSession0, "kernelMode", kernel_mode);
    size!("FWPM_PROVIDER0", FwpmProvider0);
    off!("FWPM_PROVIDER0", FwpmProvider0, "serviceName", service_name);
    size!("FWPM_SUBLAYER0", FwpmSublayer0);
    off!("FWPM_SUBLAYER0", FwpmSublayer0, "weight", weight);
    size!("FWPM_CALLOUT0", FwpmCallout0);
    off!(
        "FWPM_CALLOUT0",
        FwpmCallout0,
        "applicableLayer",
        applicable_layer
    );
    off!("FWPM_CALLOUT0", FwpmCallout0, "calloutId", callout_id);
    size!("FWPM_FILTER_CONDITION0", FwpmFilterCondition0);
    size!("FWPM_ACTION0", FwpmAction0);
    size!("FWPM_FILTER0", FwpmFilter0);
    off!("FWPM_FILTER0", FwpmFilter0, "layerKey", layer_key);
    off!("FWPM_FILTER0", FwpmFilter0, "weight", weight);
    off!(
        "FWPM_FILTER0",
        FwpmFilter0,
        "filterCondition",
        filter_condition
    );
    off!("FWPM_FILTER0", FwpmFilter0, "action", action);
    off!("FWPM_FILTER0", FwpmFilter0, "rawContext", context);
    off!("FWPM_FILTER0", FwpmFilter0, "filterId", filter_id);
    off!(
        "FWPM_FILTER0",
        FwpmFilter0,
        "effectiveWeight",
        effective_weight
    );
    size!("FWPS_CALLOUT3", FwpsCallout);
    off!("FWPS_CALLOUT3", FwpsCallout, "classifyFn", classify_fn);
    off!("FWPS_CALLOUT3", FwpsCallout, "flowDeleteFn", flow_delete_fn);
    size!("KLOCK_QUEUE_HANDLE", KLockQueueHandle);
    size!("DRIVER_OBJECT", DriverObject);
    off!(
        "DRIVER_OBJECT",
        DriverObject,
        "DriverExtension",
        driver_extension
    );
    off!("DRIVER_OBJECT", DriverObject, "DriverName", driver_name);
    off!("DRIVER_OBJECT", DriverObject, "DriverUnload", driver_unload);
    off!(
        "DRIVER_OBJECT",
        DriverObject,
        "MajorFunction",
        major_function
    );
    off!("DEVICE_OBJECT", DeviceObject, "DriverObject", driver_object);
    off!(
        "DEVICE_OBJECT",
        DeviceObject,
        "DeviceExtension",
        device_extension
    );
    off!("DEVICE_OBJECT", DeviceObject, "DeviceType", device_type);
    super::wdm::layout(&mut t);
    size!("SOCKADDR_STORAGE", SockaddrStorage);
    size!("FWPS_CONNECT_REQUEST0", FwpsConnectRequest0);
    type Cr = FwpsConnectRequest0;
    off!(
        "FWPS_CONNECT_REQUEST0",
        Cr,
        "remoteAddressAndPort",
        remote_address_and_port
    );
    off!(
        "FWPS_CONNECT_REQUEST0",
        Cr,
        "portReservationToken",
        port_reservation_token
    );
    off!(
        "FWPS_CONNECT_REQUEST0",
        Cr,
        "localRedirectTargetPID",
        local_redirect_target_pid
    );
    off!(
        "FWPS_CONNECT_REQUEST0",
        Cr,
        "previousVersion",
        previous_version
    );
    off!(
        "FWPS_CONNECT_REQUEST0",
        Cr,
        "modifierFilterId",
        modifier_filter_id
    );
    off!(
        "FWPS_CONNECT_REQUEST0",
        Cr,
        "localRedirectHandle",
        local_redirect_handle
    );
    off!(
        "FWPS_CONNECT_REQUEST0",
        Cr,
        "localRedirectContext",
        local_redirect_context
    );
    off!(
        "FWPS_CONNECT_REQUEST0",
        Cr,
        "localRedirectContextSize",
        local_redirect_context_size
    );
    size!("FWPS_BIND_REQUEST0", FwpsBindRequest0);
    off!(
        "FWPS_BIND_REQUEST0",
        FwpsBindRequest0,
        "portReservationToken",
        port_reservation_token
    );
    off!(
        "FWPS_BIND_REQUEST0",
        FwpsBindRequest0,
        "previousVersion",
        previous_version
    );
    off!(
        "FWPS_BIND_REQUEST0",
        FwpsBindRequest0,
        "modifierFilterId",
        modifier_filter_id
    );
    size!("FWPS_TRANSPORT_SEND_PARAMS0", FwpsTransportSendParams0);
    size!("FWPS_TRANSPORT_SEND_PARAMS1", FwpsTransportSendParams1);
    type Sp = FwpsTransportSendParams1;
    off!(
        "FWPS_TRANSPORT_SEND_PARAMS1",
        Sp,
        "remoteScopeId",
        remote_scope_id
    );
    off!(
        "FWPS_TRANSPORT_SEND_PARAMS1",
        Sp,
        "controlData",
        control_data
    );
    off!(
        "FWPS_TRANSPORT_SEND_PARAMS1",
        Sp,
        "controlDataLength",
        control_data_length
    );
    off!(
        "FWPS_TRANSPORT_SEND_PARAMS1",
        Sp,
        "headerIncludeHeader",
        header_include_header
    );
    off!(
        "FWPS_TRANSPORT_SEND_PARAMS1",
        Sp,
        "headerIncludeHeaderLength",
        header_include_header_length
    );
    size!("FWPS_PACKET_LIST_INFORMATION0", FwpsPacketListInformation0);
    off!(
        "FWPS_PACKET_LIST_INFORMATION0",
        FwpsPacketListInformation0,
        "fwpInformation",
        fwp_information
    );
    t
}
