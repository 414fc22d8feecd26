/* wfp-ddk fwpsk.h: the run-time callout API (wfp-reference.md §1–§6, §9). Layer and field ids
 * (FWPS_BUILTIN_LAYERS, FWPS_FIELDS_*) are generated from the engine's catalogue into
 * wfp/fwps_builtin.h. Only functions the runtime implements are declared (docs/c-abi.md), including
 * the asynchronous ones (pend/complete, classify handles, writable layer data, injection, NBL
 * cloning and allocation, stream clone/inject/continue; §9–§10). */
#ifndef WFP_DDK_FWPSK_H
#define WFP_DDK_FWPSK_H
#include "ndis.h"
#include "ws2ipdef.h"
#include "fwpstypes.h"
#include "wfp/fwps_builtin.h"
#include "netiodef.h"
#include "wfp/fwps_l2.h"
WFP_BEGIN_DECLS

/* ---- incoming metadata (§2.3) ---- */
typedef struct FWPS_DISCARD_METADATA0_ {
    FWPS_DISCARD_MODULE0 discardModule;
    UINT32 discardReason;
    UINT64 filterId;
} FWPS_DISCARD_METADATA0;
typedef struct FWPS_INBOUND_FRAGMENT_METADATA0_ {
    UINT32 fragmentIdentification;
    UINT16 fragmentOffset;
    ULONG fragmentLength;
} FWPS_INBOUND_FRAGMENT_METADATA0;
typedef struct FWPS_INCOMING_METADATA_VALUES0_ {
    UINT32 currentMetadataValues;
    UINT32 flags;
    UINT64 reserved;
    FWPS_DISCARD_METADATA0 discardMetadata;
    UINT64 flowHandle;
    UINT32 ipHeaderSize;
    UINT32 transportHeaderSize;
    FWP_BYTE_BLOB *processPath;
    UINT64 token;
    UINT64 processId;
    UINT32 sourceInterfaceIndex;
    UINT32 destinationInterfaceIndex;
    ULONG compartmentId;
    FWPS_INBOUND_FRAGMENT_METADATA0 fragmentMetadata;
    ULONG pathMtu;
    HANDLE completionHandle;
    UINT64 transportEndpointHandle;
    SCOPE_ID remoteScopeId;
    WSACMSGHDR *controlData;
    ULONG controlDataLength;
    FWP_DIRECTION packetDirection;
    PVOID headerIncludeHeader;
    ULONG headerIncludeHeaderLength;
    IP_ADDRESS_PREFIX destinationPrefix;
    UINT16 frameLength;
    UINT64 parentEndpointHandle;
    UINT32 icmpIdAndSequence;
    DWORD localRedirectTargetPID;
    SOCKADDR *originalDestination;
    HANDLE redirectRecords;
    UINT32 currentL2MetadataValues;
    UINT32 l2Flags;
    UINT32 ethernetMacHeaderSize;
    UINT32 wiFiOperationMode;
    /* NDIS 6.30+ names of the three fields (same layout): vSwitch source port / NIC, destination port. */
    union { UINT32 padding0; NDIS_SWITCH_PORT_ID vSwitchSourcePortId; };
    union { USHORT padding1; NDIS_SWITCH_NIC_INDEX vSwitchSourceNicIndex; };
    union { UINT32 padding2; NDIS_SWITCH_PORT_ID vSwitchDestinationPortId; };
    HANDLE vSwitchPacketContext;
    PVOID subProcessTag;
    UINT64 reserved1;
} FWPS_INCOMING_METADATA_VALUES0;
#define FWPS_INCOMING_METADATA_VALUES FWPS_INCOMING_METADATA_VALUES0
#define FWPS_IS_METADATA_FIELD_PRESENT(m, f) ((((m)->currentMetadataValues) & (f)) == (f))
#define FWPS_IS_L2_METADATA_FIELD_PRESENT(m, f) ((((m)->currentL2MetadataValues) & (f)) == (f))
#define FWPS_METADATA_FIELD_DISCARD_REASON 0x00000001
#define FWPS_METADATA_FIELD_FLOW_HANDLE 0x00000002
#define FWPS_METADATA_FIELD_IP_HEADER_SIZE 0x00000004
#define FWPS_METADATA_FIELD_PROCESS_PATH 0x00000008
#define FWPS_METADATA_FIELD_TOKEN 0x00000010
#define FWPS_METADATA_FIELD_PROCESS_ID 0x00000020
#define FWPS_METADATA_FIELD_SYSTEM_FLAGS 0x00000040
#define FWPS_METADATA_FIELD_RESERVED 0x00000080
#define FWPS_METADATA_FIELD_SOURCE_INTERFACE_INDEX 0x00000100
#define FWPS_METADATA_FIELD_DESTINATION_INTERFACE_INDEX 0x00000200
#define FWPS_METADATA_FIELD_TRANSPORT_HEADER_SIZE 0x00000400
#define FWPS_METADATA_FIELD_COMPARTMENT_ID 0x00000800
#define FWPS_METADATA_FIELD_FRAGMENT_DATA 0x00001000
#define FWPS_METADATA_FIELD_PATH_MTU 0x00002000
#define FWPS_METADATA_FIELD_COMPLETION_HANDLE 0x00004000
#define FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE 0x00008000
#define FWPS_METADATA_FIELD_TRANSPORT_CONTROL_DATA 0x00010000
#define FWPS_METADATA_FIELD_REMOTE_SCOPE_ID 0x00020000
#define FWPS_METADATA_FIELD_PACKET_DIRECTION 0x00040000
#define FWPS_METADATA_FIELD_PACKET_SYSTEM_CRITICAL 0x00080000
#define FWPS_METADATA_FIELD_FORWARD_LAYER_OUTBOUND_PASS_THRU 0x00100000
#define FWPS_METADATA_FIELD_FORWARD_LAYER_INBOUND_PASS_THRU 0x00200000
#define FWPS_METADATA_FIELD_ALE_CLASSIFY_REQUIRED 0x00400000
#define FWPS_METADATA_FIELD_TRANSPORT_HEADER_INCLUDE_HEADER 0x00800000
#define FWPS_METADATA_FIELD_DESTINATION_PREFIX 0x01000000
#define FWPS_METADATA_FIELD_ETHER_FRAME_LENGTH 0x02000000
#define FWPS_METADATA_FIELD_PARENT_ENDPOINT_HANDLE 0x04000000
#define FWPS_METADATA_FIELD_ICMP_ID_AND_SEQUENCE 0x08000000
#define FWPS_METADATA_FIELD_LOCAL_REDIRECT_TARGET_PID 0x10000000
#define FWPS_METADATA_FIELD_ORIGINAL_DESTINATION 0x20000000
#define FWPS_METADATA_FIELD_REDIRECT_RECORD_HANDLE 0x40000000
#define FWPS_METADATA_FIELD_SUB_PROCESS_TAG 0x80000000
#define FWPS_L2_METADATA_FIELD_ETHERNET_MAC_HEADER_SIZE 0x00000001
#define FWPS_L2_METADATA_FIELD_WIFI_OPERATION_MODE 0x00000002
#define FWPS_L2_METADATA_FIELD_VSWITCH_SOURCE_PORT_ID 0x00000004
#define FWPS_L2_METADATA_FIELD_VSWITCH_SOURCE_NIC_INDEX 0x00000008
#define FWPS_L2_METADATA_FIELD_VSWITCH_PACKET_CONTEXT 0x00000010
#define FWPS_L2_METADATA_FIELD_VSWITCH_DESTINATION_PORT_ID 0x00000020
#define FWPS_L2_METADATA_FIELD_RESERVED 0x80000000
#define FWPS_INCOMING_FLAG_CACHE_SAFE 0x00000001
#define FWPS_INCOMING_FLAG_ENFORCE_QUERY 0x00000002
#define FWPS_INCOMING_FLAG_ABSORB 0x00000004
#define FWPS_INCOMING_FLAG_CONNECTION_FAILING_INDICATION 0x00000008
#define FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION 0x00000010
#define FWPS_INCOMING_FLAG_RECLASSIFY 0x00000020
#define FWPS_INCOMING_FLAG_IS_LOOSE_SOURCE_FLOW 0x00000040
#define FWPS_INCOMING_FLAG_IS_LOCAL_ONLY_FLOW 0x00000080
#define FWPS_INCOMING_FLAG_RESERVED0 0x00000100

/* ---- stream layer (§9.1) ---- */
typedef struct FWPS_STREAM_DATA_OFFSET0_ {
    NET_BUFFER_LIST *netBufferList;
    NET_BUFFER *netBuffer;
    MDL *mdl;
    UINT32 mdlOffset;
    UINT32 netBufferOffset;
    SIZE_T streamDataOffset;
} FWPS_STREAM_DATA_OFFSET0;
typedef struct FWPS_STREAM_DATA0_ {
    UINT32 flags;
    FWPS_STREAM_DATA_OFFSET0 dataOffset;
    SIZE_T dataLength;
    NET_BUFFER_LIST *netBufferListChain;
} FWPS_STREAM_DATA0;
typedef enum FWPS_STREAM_ACTION_TYPE_ {
    FWPS_STREAM_ACTION_NONE = 0,
    FWPS_STREAM_ACTION_NEED_MORE_DATA = 1,
    FWPS_STREAM_ACTION_DROP_CONNECTION = 2,
    FWPS_STREAM_ACTION_DEFER = 3,
    FWPS_STREAM_ACTION_ALLOW_CONNECTION = 4,
    FWPS_STREAM_ACTION_TYPE_MAX = 5
} FWPS_STREAM_ACTION_TYPE;
typedef struct FWPS_STREAM_CALLOUT_IO_PACKET0_ {
    FWPS_STREAM_DATA0 *streamData;
    SIZE_T missedBytes;
    UINT32 countBytesRequired;
    SIZE_T countBytesEnforced;
    FWPS_STREAM_ACTION_TYPE streamAction;
} FWPS_STREAM_CALLOUT_IO_PACKET0;
#define FWPS_STREAM_DATA FWPS_STREAM_DATA0
#define FWPS_STREAM_CALLOUT_IO_PACKET FWPS_STREAM_CALLOUT_IO_PACKET0
#define FWPS_STREAM_FLAG_RECEIVE 0x00000001
#define FWPS_STREAM_FLAG_RECEIVE_EXPEDITED 0x00000002
#define FWPS_STREAM_FLAG_RECEIVE_DISCONNECT 0x00000004
#define FWPS_STREAM_FLAG_RECEIVE_ABORT 0x00000008
#define FWPS_STREAM_FLAG_RECEIVE_PUSH 0x00000010
#define FWPS_STREAM_FLAG_SEND 0x00010000
#define FWPS_STREAM_FLAG_SEND_EXPEDITED 0x00020000
#define FWPS_STREAM_FLAG_SEND_NODELAY 0x00040000
#define FWPS_STREAM_FLAG_SEND_DISCONNECT 0x00080000
#define FWPS_STREAM_FLAG_SEND_ABORT 0x00100000

/* ---- callouts (§1–§4) ---- */
typedef enum FWPS_CALLOUT_NOTIFY_TYPE_ {
    FWPS_CALLOUT_NOTIFY_ADD_FILTER = 0,
    FWPS_CALLOUT_NOTIFY_DELETE_FILTER = 1,
    FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT = 2,
    FWPS_CALLOUT_NOTIFY_TYPE_MAX = 3
} FWPS_CALLOUT_NOTIFY_TYPE;

typedef void(NTAPI FWPS_CALLOUT_CLASSIFY_FN0_)(const FWPS_INCOMING_VALUES0 *inFixedValues,
    const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData, const FWPS_FILTER0 *filter,
    UINT64 flowContext, FWPS_CLASSIFY_OUT0 *classifyOut);
typedef FWPS_CALLOUT_CLASSIFY_FN0_ *FWPS_CALLOUT_CLASSIFY_FN0;
#define WFP_CLASSIFY_FN(n, F) \
    typedef void(NTAPI FWPS_CALLOUT_CLASSIFY_FN##n##_)(const FWPS_INCOMING_VALUES0 *inFixedValues, \
        const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData, const void *classifyContext, \
        const F *filter, UINT64 flowContext, FWPS_CLASSIFY_OUT0 *classifyOut); \
    typedef FWPS_CALLOUT_CLASSIFY_FN##n##_ *FWPS_CALLOUT_CLASSIFY_FN##n;
WFP_CLASSIFY_FN(1, FWPS_FILTER1)
WFP_CLASSIFY_FN(2, FWPS_FILTER2)
#define WFP_NOTIFY_FN(n, F) \
    typedef NTSTATUS(NTAPI FWPS_CALLOUT_NOTIFY_FN##n##_)(FWPS_CALLOUT_NOTIFY_TYPE notifyType, const GUID *filterKey, F *filter); \
    typedef FWPS_CALLOUT_NOTIFY_FN##n##_ *FWPS_CALLOUT_NOTIFY_FN##n;
WFP_NOTIFY_FN(0, FWPS_FILTER0)
WFP_NOTIFY_FN(1, FWPS_FILTER1)
WFP_NOTIFY_FN(2, FWPS_FILTER2)
typedef void(NTAPI FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0_)(UINT16 layerId, UINT32 calloutId, UINT64 flowContext);
typedef FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0_ *FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0;
#define WFP_CALLOUT_STRUCT(n) \
    typedef struct FWPS_CALLOUT##n##_ { \
        GUID calloutKey; \
        UINT32 flags; \
        FWPS_CALLOUT_CLASSIFY_FN##n classifyFn; \
        FWPS_CALLOUT_NOTIFY_FN##n notifyFn; \
        FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 flowDeleteFn; \
    } FWPS_CALLOUT##n;
WFP_CALLOUT_STRUCT(0)
WFP_CALLOUT_STRUCT(1)
WFP_CALLOUT_STRUCT(2)
#if NTDDI_VERSION >= NTDDI_WIN10_RS3
WFP_CLASSIFY_FN(3, FWPS_FILTER3)
WFP_NOTIFY_FN(3, FWPS_FILTER3)
WFP_CALLOUT_STRUCT(3)
#endif

NTSTATUS FwpsCalloutRegister0(void *deviceObject, const FWPS_CALLOUT0 *callout, UINT32 *calloutId);
NTSTATUS FwpsCalloutRegister1(void *deviceObject, const FWPS_CALLOUT1 *callout, UINT32 *calloutId);
NTSTATUS FwpsCalloutRegister2(void *deviceObject, const FWPS_CALLOUT2 *callout, UINT32 *calloutId);
#if NTDDI_VERSION >= NTDDI_WIN10_RS3
NTSTATUS FwpsCalloutRegister3(void *deviceObject, const FWPS_CALLOUT3 *callout, UINT32 *calloutId);
#endif
NTSTATUS FwpsCalloutUnregisterById0(const UINT32 calloutId);
NTSTATUS FwpsCalloutUnregisterByKey0(const GUID *calloutKey);

/* ---- flow contexts (§6) ---- */
NTSTATUS FwpsFlowAssociateContext0(UINT64 flowId, UINT16 layerId, UINT32 calloutId, UINT64 flowContext);
NTSTATUS FwpsFlowRemoveContext0(UINT64 flowId, UINT16 layerId, UINT32 calloutId);
NTSTATUS FwpsFlowAbort0(UINT64 flowId);

/* ---- stream data (§9) ---- */
void FwpsCopyStreamDataToBuffer0(const FWPS_STREAM_DATA0 *streamData, PVOID buffer, SIZE_T bytesToCopy, SIZE_T *bytesCopied);

/* ---- asynchronous classification (§10.1–§10.2) ---- */
NTSTATUS FwpsPendOperation0(HANDLE completionHandle, HANDLE *completionContext);
void FwpsCompleteOperation0(HANDLE completionContext, PNET_BUFFER_LIST netBufferList);
NTSTATUS FwpsAcquireClassifyHandle0(void *classifyContext, UINT32 flags, UINT64 *classifyHandle);
void FwpsReleaseClassifyHandle0(UINT64 classifyHandle);
NTSTATUS FwpsPendClassify0(UINT64 classifyHandle, UINT64 filterId, UINT32 flags, FWPS_CLASSIFY_OUT0 *classifyOut);
void FwpsCompleteClassify0(UINT64 classifyHandle, UINT32 flags, const FWPS_CLASSIFY_OUT0 *classifyOut);

/* ---- writable layer data at the redirect layers (§10.3) ---- */
typedef struct FWPS_CONNECT_REQUEST0_ {
    SOCKADDR_STORAGE localAddressAndPort;
    SOCKADDR_STORAGE remoteAddressAndPort;
    UINT64 portReservationToken;
    DWORD localRedirectTargetPID;
    struct FWPS_CONNECT_REQUEST0_ *previousVersion;
    UINT64 modifierFilterId;
    HANDLE localRedirectHandle;
    void *localRedirectContext;
    SIZE_T localRedirectContextSize;
} FWPS_CONNECT_REQUEST0;
typedef struct FWPS_BIND_REQUEST0_ {
    SOCKADDR_STORAGE localAddressAndPort;
    UINT64 portReservationToken;
    struct FWPS_BIND_REQUEST0_ *previousVersion;
    UINT64 modifierFilterId;
} FWPS_BIND_REQUEST0;
#define FWPS_CONNECT_REQUEST FWPS_CONNECT_REQUEST0
#define FWPS_BIND_REQUEST FWPS_BIND_REQUEST0
#define FWPS_CLASSIFY_FLAG_REAUTHORIZE_IF_MODIFIED_BY_OTHERS 0x00000001
NTSTATUS FwpsAcquireWritableLayerDataPointer0(UINT64 classifyHandle, UINT64 filterId, UINT32 flags,
    PVOID *writableLayerData, FWPS_CLASSIFY_OUT0 *classifyOut);
void FwpsApplyModifiedLayerData0(UINT64 classifyHandle, PVOID modifiedLayerData, UINT32 flags);

/* ---- redirection loop prevention (§10.3, Win8+): the handle goes in localRedirectHandle; the
 * connection's later classifies carry inMetaValues->redirectRecords (valid during classifyFn) ---- */
typedef enum FWPS_CONNECTION_REDIRECT_STATE_ {
    FWPS_CONNECTION_NOT_REDIRECTED = 0,
    FWPS_CONNECTION_REDIRECTED_BY_SELF = 1,
    FWPS_CONNECTION_REDIRECTED_BY_OTHER = 2,
    FWPS_CONNECTION_PREVIOUSLY_REDIRECTED_BY_SELF = 3,
    FWPS_CONNECTION_REDIRECT_STATE_MAX = 4
} FWPS_CONNECTION_REDIRECT_STATE;
NTSTATUS FwpsRedirectHandleCreate0(const GUID *providerGuid, UINT32 flags, HANDLE *redirectHandle);
void FwpsRedirectHandleDestroy0(HANDLE redirectHandle);
FWPS_CONNECTION_REDIRECT_STATE FwpsQueryConnectionRedirectState0(HANDLE redirectRecords, HANDLE redirectHandle,
    void **redirectContext);

/* Records in the opaque form SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS takes (during classifyFn;
 * the buffer pointer-aligned; STATUS_BUFFER_TOO_SMALL with the size needed in *bytesTransferred). */
NTSTATUS FwpsQueryConnectionSioFormatRedirectRecords0(HANDLE redirectRecords, PVOID outputBuffer,
    SIZE_T outputBufferLength, SIZE_T *bytesTransferred);

/* ---- access tokens (fwpstoken.rs): a handle closed with ZwClose / NtClose ---- */
NTSTATUS FwpsOpenToken0(HANDLE engineHandle, LUID modifiedId, DWORD desiredAccess, HANDLE *accessToken);
NTSTATUS NtClose(HANDLE Handle);
#ifndef TOKEN_QUERY
#define TOKEN_ASSIGN_PRIMARY 0x0001
#define TOKEN_DUPLICATE 0x0002
#define TOKEN_IMPERSONATE 0x0004
#define TOKEN_QUERY 0x0008
#define TOKEN_QUERY_SOURCE 0x0010
#define TOKEN_ADJUST_PRIVILEGES 0x0020
#define TOKEN_ADJUST_GROUPS 0x0040
#define TOKEN_ADJUST_DEFAULT 0x0080
#define TOKEN_ADJUST_SESSIONID 0x0100
#define TOKEN_ALL_ACCESS (0x000F0000L | 0x01FF)
#define TOKEN_READ (0x00020000L | TOKEN_QUERY)
#endif
#ifndef MAXIMUM_ALLOWED
#define MAXIMUM_ALLOWED 0x02000000L
#endif

/* ---- packet tagging (nbltag.rs): contexts on lists the driver holds and on injected packets
 * (the indicated list of a packet nobody injected cannot be tagged: STATUS_INVALID_PARAMETER) ---- */
typedef enum FWPS_NET_BUFFER_LIST_EVENT_TYPE0_ {
    FWPS_NET_BUFFER_LIST_ENTERED_NETIO,
    FWPS_NET_BUFFER_LIST_CLONED_BY_NETIO,
    FWPS_NET_BUFFER_LIST_CLONED_VIA_WFP_API,
    FWPS_NET_BUFFER_LIST_DUPLICATED_BY_NETIO,
    FWPS_NET_BUFFER_LIST_EXIT_NETIO,
    FWPS_NET_BUFFER_LIST_CONTEXT_REMOVED,
    FWPS_NET_BUFFER_LIST_NDIS_SEND_COMPLETE,
    FWPS_NET_BUFFER_LIST_NDIS_RECV_COMPLETE,
    FWPS_NET_BUFFER_LIST_NDIS_ETHERNET_SEND_COMPLETE,
    FWPS_NET_BUFFER_LIST_NDIS_ETHERNET_RECV_COMPLETE,
    FWPS_NET_BUFFER_LIST_NDIS_NATIVE_SEND_COMPLETE,
    FWPS_NET_BUFFER_LIST_NDIS_NATIVE_RECV_COMPLETE,
    FWPS_NET_BUFFER_LIST_NDIS_VSWITCH_INGRESS_COMPLETE,
    FWPS_NET_BUFFER_LIST_NDIS_VSWITCH_EGRESS_COMPLETE,
    FWPS_NET_BUFFER_LIST_CLONED_BY_NDIS,
    FWPS_NET_BUFFER_LIST_REASSEMBLED_FRAGMENT,
    FWPS_NET_BUFFER_LIST_REASSEMBLY_COMPLETE
} FWPS_NET_BUFFER_LIST_EVENT_TYPE0;
typedef void(NTAPI FWPS_NET_BUFFER_LIST_NOTIFY_FN0_)(FWPS_NET_BUFFER_LIST_EVENT_TYPE0 eventType,
    NET_BUFFER_LIST *netBufferList, NET_BUFFER_LIST *newNetBufferList, UINT16 layerId, UINT64 context, UINT64 contextTag);
typedef FWPS_NET_BUFFER_LIST_NOTIFY_FN0_ *FWPS_NET_BUFFER_LIST_NOTIFY_FN0;
typedef NTSTATUS(NTAPI FWPS_NET_BUFFER_LIST_NOTIFY_FN1_)(FWPS_NET_BUFFER_LIST_EVENT_TYPE0 eventType,
    NET_BUFFER_LIST *netBufferList, NET_BUFFER_LIST *newNetBufferList, UINT16 layerId, UINT64 context, UINT64 contextTag);
typedef FWPS_NET_BUFFER_LIST_NOTIFY_FN1_ *FWPS_NET_BUFFER_LIST_NOTIFY_FN1;
NTSTATUS FwpsNetBufferListGetTagForContext0(UINT64 *contextTag);
NTSTATUS FwpsNetBufferListAssociateContext0(NET_BUFFER_LIST *netBufferList, UINT16 layerId, UINT64 context,
    UINT64 contextTag, GUID *providerGuid, void *deviceObject, FWPS_NET_BUFFER_LIST_NOTIFY_FN0 notifyFn, UINT32 flags);
NTSTATUS FwpsNetBufferListAssociateContext1(NET_BUFFER_LIST *netBufferList, UINT16 layerId, UINT64 context,
    UINT64 contextTag, GUID *providerGuid, void *deviceObject, FWPS_NET_BUFFER_LIST_NOTIFY_FN1 notifyFn, UINT32 flags);
NTSTATUS FwpsNetBufferListRetrieveContext0(NET_BUFFER_LIST *netBufferList, UINT64 contextTag, BOOLEAN removeContext,
    UINT32 flags, UINT64 *context);
NTSTATUS FwpsNetBufferListRemoveContext0(NET_BUFFER_LIST *netBufferList, UINT64 contextTag, UINT32 flags);

/* ---- packet injection (§10.4) ---- */
#define FWPS_INJECTION_TYPE_STREAM 0x00000001
#define FWPS_INJECTION_TYPE_TRANSPORT 0x00000002
#define FWPS_INJECTION_TYPE_NETWORK 0x00000004
#define FWPS_INJECTION_TYPE_FORWARD 0x00000008
#define FWPS_INJECTION_TYPE_L2 0x00000010
#define FWPS_INJECTION_TYPE_VSWITCH_TRANSPORT 0x00000020
#define FWPS_SEND_INJECT_PRESERVE_IPID 0x00000001
typedef enum FWPS_PACKET_INJECTION_STATE_ {
    FWPS_PACKET_NOT_INJECTED = 0,
    FWPS_PACKET_INJECTED_BY_SELF = 1,
    FWPS_PACKET_INJECTED_BY_OTHER = 2,
    FWPS_PACKET_PREVIOUSLY_INJECTED_BY_SELF = 3,
    FWPS_PACKET_INJECTION_STATE_MAX = 4
} FWPS_PACKET_INJECTION_STATE;
typedef void(NTAPI FWPS_INJECT_COMPLETE0_)(void *context, NET_BUFFER_LIST *netBufferList, BOOLEAN dispatchLevel);
typedef FWPS_INJECT_COMPLETE0_ *FWPS_INJECT_COMPLETE0;
#define FWPS_INJECT_COMPLETE FWPS_INJECT_COMPLETE0
typedef struct FWPS_TRANSPORT_SEND_PARAMS0_ {
    UCHAR *remoteAddress;
    SCOPE_ID remoteScopeId;
    WSACMSGHDR *controlData;
    ULONG controlDataLength;
} FWPS_TRANSPORT_SEND_PARAMS0;
typedef struct FWPS_TRANSPORT_SEND_PARAMS1_ {
    UCHAR *remoteAddress;
    SCOPE_ID remoteScopeId;
    WSACMSGHDR *controlData;
    ULONG controlDataLength;
    UCHAR *headerIncludeHeader;
    ULONG headerIncludeHeaderLength;
} FWPS_TRANSPORT_SEND_PARAMS1;
NTSTATUS FwpsInjectionHandleCreate0(ADDRESS_FAMILY addressFamily, UINT32 flags, HANDLE *injectionHandle);
NTSTATUS FwpsInjectionHandleDestroy0(HANDLE injectionHandle);
FWPS_PACKET_INJECTION_STATE FwpsQueryPacketInjectionState0(HANDLE injectionHandle, const NET_BUFFER_LIST *netBufferList,
    HANDLE *injectionContext);
NTSTATUS FwpsInjectTransportSendAsync0(HANDLE injectionHandle, HANDLE injectionContext, UINT64 endpointHandle, UINT32 flags,
    FWPS_TRANSPORT_SEND_PARAMS0 *sendArgs, ADDRESS_FAMILY addressFamily, COMPARTMENT_ID compartmentId,
    NET_BUFFER_LIST *netBufferList, FWPS_INJECT_COMPLETE0 completionFn, HANDLE completionContext);
NTSTATUS FwpsInjectTransportSendAsync1(HANDLE injectionHandle, HANDLE injectionContext, UINT64 endpointHandle, UINT32 flags,
    FWPS_TRANSPORT_SEND_PARAMS1 *sendArgs, ADDRESS_FAMILY addressFamily, COMPARTMENT_ID compartmentId,
    NET_BUFFER_LIST *netBufferList, FWPS_INJECT_COMPLETE0 completionFn, HANDLE completionContext);
NTSTATUS FwpsInjectTransportReceiveAsync0(HANDLE injectionHandle, HANDLE injectionContext, PVOID reserved, UINT32 flags,
    ADDRESS_FAMILY addressFamily, COMPARTMENT_ID compartmentId, IF_INDEX interfaceIndex, IF_INDEX subInterfaceIndex,
    NET_BUFFER_LIST *netBufferList, FWPS_INJECT_COMPLETE0 completionFn, HANDLE completionContext);
NTSTATUS FwpsInjectNetworkSendAsync0(HANDLE injectionHandle, HANDLE injectionContext, UINT32 flags,
    COMPARTMENT_ID compartmentId, NET_BUFFER_LIST *netBufferList, FWPS_INJECT_COMPLETE0 completionFn,
    HANDLE completionContext);
NTSTATUS FwpsInjectNetworkReceiveAsync0(HANDLE injectionHandle, HANDLE injectionContext, UINT32 flags,
    COMPARTMENT_ID compartmentId, IF_INDEX interfaceIndex, IF_INDEX subInterfaceIndex, NET_BUFFER_LIST *netBufferList,
    FWPS_INJECT_COMPLETE0 completionFn, HANDLE completionContext);
NTSTATUS FwpsInjectForwardAsync0(HANDLE injectionHandle, HANDLE injectionContext, UINT32 flags,
    ADDRESS_FAMILY addressFamily, COMPARTMENT_ID compartmentId, IF_INDEX interfaceIndex, NET_BUFFER_LIST *netBufferList,
    FWPS_INJECT_COMPLETE0 completionFn, HANDLE completionContext);
/* Layer-2 injection (Win8+; docs/c-abi.md "MAC and vSwitch injection"): declared so drivers build.
 * No injection handle here carries FWPS_INJECTION_TYPE_L2 (FwpsInjectionHandleCreate0 refuses it) and
 * the data path classifies no MAC or vSwitch layer, so each returns STATUS_FWP_INVALID_PARAMETER — an
 * injection on a handle without its injection type — the list stays the driver's and completionFn
 * never runs. */
NTSTATUS FwpsInjectMacReceiveAsync0(HANDLE injectionHandle, HANDLE injectionContext, UINT32 flags, UINT16 layerId,
    IF_INDEX interfaceIndex, NDIS_PORT_NUMBER NdisPortNumber, NET_BUFFER_LIST *netBufferLists,
    FWPS_INJECT_COMPLETE0 completionFn, HANDLE completionContext);
NTSTATUS FwpsInjectMacSendAsync0(HANDLE injectionHandle, HANDLE injectionContext, UINT32 flags, UINT16 layerId,
    IF_INDEX interfaceIndex, NDIS_PORT_NUMBER NdisPortNumber, NET_BUFFER_LIST *netBufferLists,
    FWPS_INJECT_COMPLETE0 completionFn, HANDLE completionContext);
NTSTATUS FwpsInjectvSwitchEthernetIngressAsync0(HANDLE injectionHandle, HANDLE injectionContext, UINT32 flags,
    void *reserved, const FWP_BYTE_BLOB *vSwitchId, NDIS_SWITCH_PORT_ID vSwitchSourcePortId,
    NDIS_SWITCH_NIC_INDEX vSwitchSourceNicIndex, NET_BUFFER_LIST *netBufferLists, FWPS_INJECT_COMPLETE0 completionFn,
    HANDLE completionContext);
#define FwpsInjectMacReceiveAsync FwpsInjectMacReceiveAsync0
#define FwpsInjectMacSendAsync FwpsInjectMacSendAsync0
#define FwpsInjectvSwitchEthernetIngressAsync FwpsInjectvSwitchEthernetIngressAsync0

/* ---- NET_BUFFER_LISTs (wdk-runtime.md §7): pool handles may be NULL here; contextSize /
 * contextBackFill (multiples of sizeof(void*)) preallocate a NET_BUFFER_LIST_CONTEXT ---- */
NTSTATUS FwpsAllocateNetBufferAndNetBufferList0(NDIS_HANDLE poolHandle, USHORT contextSize, USHORT contextBackFill,
    MDL *mdlChain, ULONG dataOffset, SIZE_T dataLength, NET_BUFFER_LIST **netBufferList);
void FwpsFreeNetBufferList0(NET_BUFFER_LIST *netBufferList);
NTSTATUS FwpsAllocateCloneNetBufferList0(NET_BUFFER_LIST *originalNetBufferList, NDIS_HANDLE netBufferListPoolHandle,
    NDIS_HANDLE netBufferPoolHandle, ULONG allocateCloneFlags, NET_BUFFER_LIST **netBufferList);
void FwpsFreeCloneNetBufferList0(NET_BUFFER_LIST *netBufferList, ULONG freeCloneFlags);
void FwpsReferenceNetBufferList0(NET_BUFFER_LIST *netBufferList, BOOLEAN intendToModify);
void FwpsDereferenceNetBufferList0(NET_BUFFER_LIST *netBufferList, BOOLEAN dispatchLevel);
NTSTATUS FwpsConstructIpHeaderForTransportPacket0(NET_BUFFER_LIST *netBufferList, ULONG headerIncludeHeaderLength,
    ADDRESS_FAMILY addressFamily, const UCHAR *sourceAddress, const UCHAR *remoteAddress, IPPROTO nextProtocol,
    UINT64 endpointHandle, const WSACMSGHDR *controlData, ULONG controlDataLength, UINT32 flags, PVOID reserved,
    IF_INDEX interfaceIndex, IF_INDEX subInterfaceIndex);
typedef struct FWPS_PACKET_LIST_INBOUND_IPSEC_INFORMATION0_ {
    UINT32 isSecure : 1;
    UINT32 isTransportMode : 1;
    UINT32 isTunnelMode : 1;
    UINT32 isTransportModeVerified : 1;
    UINT32 isTunnelModeVerified : 1;
    UINT32 isDeTunneled : 1;
    UINT32 reserved : 26;
} FWPS_PACKET_LIST_INBOUND_IPSEC_INFORMATION0;
typedef struct FWPS_PACKET_LIST_OUTBOUND_IPSEC_INFORMATION0_ {
    UINT32 isIPsecPolicyMatch : 1;
    UINT32 isTransportPolicyMatch : 1;
    UINT32 isTunnelPolicyMatch : 1;
    UINT32 isTunnelIPinIP : 1;
    UINT32 reserved : 28;
} FWPS_PACKET_LIST_OUTBOUND_IPSEC_INFORMATION0;
typedef struct FWPS_PACKET_LIST_IPSEC_INFORMATION0_ {
    union {
        FWPS_PACKET_LIST_INBOUND_IPSEC_INFORMATION0 inbound;
        FWPS_PACKET_LIST_OUTBOUND_IPSEC_INFORMATION0 outbound;
        UINT32 flags;
    };
} FWPS_PACKET_LIST_IPSEC_INFORMATION0;
typedef struct FWPS_PACKET_LIST_FWP_INFORMATION0_ {
    UINT32 isReinjected : 1;
    UINT32 reserved : 31;
} FWPS_PACKET_LIST_FWP_INFORMATION0;
typedef struct FWPS_PACKET_LIST_INFORMATION0_ {
    FWPS_PACKET_LIST_IPSEC_INFORMATION0 ipsecInformation;
    FWPS_PACKET_LIST_FWP_INFORMATION0 fwpInformation;
} FWPS_PACKET_LIST_INFORMATION0;
#define FWPS_PACKET_LIST_INFORMATION FWPS_PACKET_LIST_INFORMATION0
#define FWPS_PACKET_LIST_INFORMATION_QUERY_INBOUND 0x00000001
#define FWPS_PACKET_LIST_INFORMATION_QUERY_OUTBOUND 0x00000002
#define FWPS_PACKET_LIST_INFORMATION_QUERY_IPSEC 0x00000004
#define FWPS_PACKET_LIST_INFORMATION_QUERY_FWP 0x00000008
#define FWPS_PACKET_LIST_INFORMATION_QUERY_ALL_INBOUND 0xFFFFFFFD
#define FWPS_PACKET_LIST_INFORMATION_QUERY_ALL_OUTBOUND 0xFFFFFFFE
#define FWPS_PACKET_LIST_INFORMATION_QUERY_INVALID_MASK 0x00000003
NTSTATUS FwpsGetPacketListSecurityInformation0(NET_BUFFER_LIST *packetList, UINT32 queryFlags,
    FWPS_PACKET_LIST_INFORMATION0 *packetInformation);

/* ---- stream cloning, injection, continue (§9.2) ---- */
NTSTATUS FwpsCloneStreamData0(FWPS_STREAM_DATA0 *calloutStreamData, NDIS_HANDLE netBufferListPoolHandle,
    NDIS_HANDLE netBufferPoolHandle, ULONG allocateCloneFlags, NET_BUFFER_LIST **netBufferListChain);
void FwpsDiscardClonedStreamData0(NET_BUFFER_LIST *clonedNetBufferListChain, UINT32 allocateCloneFlags,
    BOOLEAN dispatchLevel);
NTSTATUS FwpsStreamInjectAsync0(HANDLE injectionHandle, HANDLE injectionContext, UINT32 flags, UINT64 flowId,
    UINT32 calloutId, UINT16 layerId, UINT32 streamFlags, NET_BUFFER_LIST *netBufferList, SIZE_T dataLength,
    FWPS_INJECT_COMPLETE0 completionFn, HANDLE completionContext);
NTSTATUS FwpsStreamContinue0(UINT64 flowId, UINT32 calloutId, UINT16 layerId, UINT32 streamFlags);

/* ---- version-independent names (fwpvi.h, wdk-runtime.md §7) ---- */
#if NTDDI_VERSION >= NTDDI_WIN10_RS3
#define FwpsCalloutRegister FwpsCalloutRegister3
#define FWPS_CALLOUT FWPS_CALLOUT3
#define FWPS_CALLOUT_CLASSIFY_FN FWPS_CALLOUT_CLASSIFY_FN3
#define FWPS_CALLOUT_NOTIFY_FN FWPS_CALLOUT_NOTIFY_FN3
#define FWPS_FILTER FWPS_FILTER3
#elif NTDDI_VERSION >= NTDDI_WIN8
#define FwpsCalloutRegister FwpsCalloutRegister2
#define FWPS_CALLOUT FWPS_CALLOUT2
#define FWPS_CALLOUT_CLASSIFY_FN FWPS_CALLOUT_CLASSIFY_FN2
#define FWPS_CALLOUT_NOTIFY_FN FWPS_CALLOUT_NOTIFY_FN2
#define FWPS_FILTER FWPS_FILTER2
#elif NTDDI_VERSION >= NTDDI_WIN7
#define FwpsCalloutRegister FwpsCalloutRegister1
#define FWPS_CALLOUT FWPS_CALLOUT1
#define FWPS_CALLOUT_CLASSIFY_FN FWPS_CALLOUT_CLASSIFY_FN1
#define FWPS_CALLOUT_NOTIFY_FN FWPS_CALLOUT_NOTIFY_FN1
#define FWPS_FILTER FWPS_FILTER1
#else
#define FwpsCalloutRegister FwpsCalloutRegister0
#define FWPS_CALLOUT FWPS_CALLOUT0
#define FWPS_CALLOUT_CLASSIFY_FN FWPS_CALLOUT_CLASSIFY_FN0
#define FWPS_CALLOUT_NOTIFY_FN FWPS_CALLOUT_NOTIFY_FN0
#define FWPS_FILTER FWPS_FILTER0
#endif
#define FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0
#if NTDDI_VERSION >= NTDDI_WIN8
#define FWPS_NET_BUFFER_LIST_NOTIFY_FN FWPS_NET_BUFFER_LIST_NOTIFY_FN1
#define FwpsNetBufferListAssociateContext FwpsNetBufferListAssociateContext1
#else
#define FWPS_NET_BUFFER_LIST_NOTIFY_FN FWPS_NET_BUFFER_LIST_NOTIFY_FN0
#define FwpsNetBufferListAssociateContext FwpsNetBufferListAssociateContext0
#endif
#if NTDDI_VERSION >= NTDDI_WIN7
#define FWPS_TRANSPORT_SEND_PARAMS FWPS_TRANSPORT_SEND_PARAMS1
#define FwpsInjectTransportSendAsync FwpsInjectTransportSendAsync1
#else
#define FWPS_TRANSPORT_SEND_PARAMS FWPS_TRANSPORT_SEND_PARAMS0
#define FwpsInjectTransportSendAsync FwpsInjectTransportSendAsync0
#endif

WFP_END_DECLS
/* Version-less names, mapped as the WDK maps them for Windows 10 (NTDDI_VERSION >= NTDDI_WIN10). */
#define FWPS_ACTION FWPS_ACTION0
#define FWPS_DISCARD_METADATA FWPS_DISCARD_METADATA0
#define FWPS_FILTER_CONDITION FWPS_FILTER_CONDITION0
#define FWPS_INBOUND_FRAGMENT_METADATA FWPS_INBOUND_FRAGMENT_METADATA0
#define FWPS_PACKET_LIST_FWP_INFORMATION FWPS_PACKET_LIST_FWP_INFORMATION0
#define FWPS_PACKET_LIST_INBOUND_IPSEC_INFORMATION FWPS_PACKET_LIST_INBOUND_IPSEC_INFORMATION0
#define FWPS_PACKET_LIST_IPSEC_INFORMATION FWPS_PACKET_LIST_IPSEC_INFORMATION0
#define FWPS_PACKET_LIST_OUTBOUND_IPSEC_INFORMATION FWPS_PACKET_LIST_OUTBOUND_IPSEC_INFORMATION0
#define FWPS_STREAM_DATA_OFFSET FWPS_STREAM_DATA_OFFSET0
#define FWPS_DISCARD_MODULE FWPS_DISCARD_MODULE0
#define FwpsAcquireClassifyHandle FwpsAcquireClassifyHandle0
#define FwpsAcquireWritableLayerDataPointer FwpsAcquireWritableLayerDataPointer0
#define FwpsAllocateCloneNetBufferList FwpsAllocateCloneNetBufferList0
#define FwpsAllocateNetBufferAndNetBufferList FwpsAllocateNetBufferAndNetBufferList0
#define FwpsApplyModifiedLayerData FwpsApplyModifiedLayerData0
#define FwpsCalloutUnregisterById FwpsCalloutUnregisterById0
#define FwpsCalloutUnregisterByKey FwpsCalloutUnregisterByKey0
#define FwpsCloneStreamData FwpsCloneStreamData0
#define FwpsCompleteClassify FwpsCompleteClassify0
#define FwpsCompleteOperation FwpsCompleteOperation0
#define FwpsConstructIpHeaderForTransportPacket FwpsConstructIpHeaderForTransportPacket0
#define FwpsCopyStreamDataToBuffer FwpsCopyStreamDataToBuffer0
#define FwpsDereferenceNetBufferList FwpsDereferenceNetBufferList0
#define FwpsDiscardClonedStreamData FwpsDiscardClonedStreamData0
#define FwpsFlowAbort FwpsFlowAbort0
#define FwpsFlowAssociateContext FwpsFlowAssociateContext0
#define FwpsFlowRemoveContext FwpsFlowRemoveContext0
#define FwpsFreeCloneNetBufferList FwpsFreeCloneNetBufferList0
#define FwpsFreeNetBufferList FwpsFreeNetBufferList0
#define FwpsGetPacketListSecurityInformation FwpsGetPacketListSecurityInformation0
#define FwpsInjectForwardAsync FwpsInjectForwardAsync0
#define FwpsInjectNetworkReceiveAsync FwpsInjectNetworkReceiveAsync0
#define FwpsInjectNetworkSendAsync FwpsInjectNetworkSendAsync0
#define FwpsInjectTransportReceiveAsync FwpsInjectTransportReceiveAsync0
#define FwpsInjectionHandleCreate FwpsInjectionHandleCreate0
#define FwpsInjectionHandleDestroy FwpsInjectionHandleDestroy0
#define FwpsPendClassify FwpsPendClassify0
#define FwpsPendOperation FwpsPendOperation0
#define FwpsQueryConnectionRedirectState FwpsQueryConnectionRedirectState0
#define FwpsQueryPacketInjectionState FwpsQueryPacketInjectionState0
#define FwpsRedirectHandleCreate FwpsRedirectHandleCreate0
#define FwpsRedirectHandleDestroy FwpsRedirectHandleDestroy0
#define FwpsReferenceNetBufferList FwpsReferenceNetBufferList0
#define FwpsReleaseClassifyHandle FwpsReleaseClassifyHandle0
#define FwpsStreamContinue FwpsStreamContinue0
#define FwpsStreamInjectAsync FwpsStreamInjectAsync0
#define FwpsNetBufferListGetTagForContext FwpsNetBufferListGetTagForContext0
#define FwpsNetBufferListRetrieveContext FwpsNetBufferListRetrieveContext0
#define FwpsNetBufferListRemoveContext FwpsNetBufferListRemoveContext0
#define FwpsOpenToken FwpsOpenToken0
#define FwpsQueryConnectionSioFormatRedirectRecords FwpsQueryConnectionSioFormatRedirectRecords0
#define FWPS_NET_BUFFER_LIST_EVENT_TYPE FWPS_NET_BUFFER_LIST_EVENT_TYPE0
#endif
