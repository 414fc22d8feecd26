/* wfp-ddk ndis.h: NET_BUFFER_LIST / NET_BUFFER / MDL as real structures (64-bit, NDIS 6.30+ layout
 * pinned: MaxNetBufferListInfo = 20) with the documented accessor macros, and the NDIS functions
 * the runtime implements (wdk-runtime.md §6). */
#ifndef WFP_DDK_NDIS_H
#define WFP_DDK_NDIS_H
#include "wdm.h"
WFP_BEGIN_DECLS

#define NDIS_STATUS_SUCCESS ((NDIS_STATUS)STATUS_SUCCESS)
#define NDIS_STATUS_PENDING ((NDIS_STATUS)STATUS_PENDING)
#define NDIS_STATUS_FAILURE ((NDIS_STATUS)STATUS_UNSUCCESSFUL)
#define NDIS_STATUS_RESOURCES ((NDIS_STATUS)STATUS_INSUFFICIENT_RESOURCES)
#define NDIS_STATUS_NOT_SUPPORTED ((NDIS_STATUS)STATUS_NOT_SUPPORTED)
#define NDIS_STATUS_INVALID_PARAMETER ((NDIS_STATUS)STATUS_INVALID_PARAMETER)
#define NDIS_STATUS_INVALID_LENGTH ((NDIS_STATUS)0xC0010014L)
#define NDIS_STATUS_BUFFER_TOO_SHORT ((NDIS_STATUS)0xC0010016L)

typedef struct _NDIS_OBJECT_HEADER {
    UCHAR Type;
    UCHAR Revision;
    USHORT Size;
} NDIS_OBJECT_HEADER, *PNDIS_OBJECT_HEADER;
#define NDIS_OBJECT_TYPE_DEFAULT 0x80
#define NDIS_OBJECT_REVISION_1 1

typedef struct _NET_BUFFER_LIST_CONTEXT NET_BUFFER_LIST_CONTEXT, *PNET_BUFFER_LIST_CONTEXT;
typedef struct _NET_BUFFER NET_BUFFER, *PNET_BUFFER;
typedef struct _NET_BUFFER_LIST NET_BUFFER_LIST, *PNET_BUFFER_LIST;

struct _NET_BUFFER {
    union {
        struct {
            PNET_BUFFER Next;
            PMDL CurrentMdl;
            ULONG CurrentMdlOffset;
            union {
                ULONG DataLength;
                SIZE_T stDataLength;
            };
            PMDL MdlChain;
            ULONG DataOffset;
        };
        SLIST_HEADER Link;
    };
    USHORT ChecksumBias;
    USHORT Reserved;
    NDIS_HANDLE NdisPoolHandle;
    DECLSPEC_ALIGN(16) PVOID NdisReserved[2];
    DECLSPEC_ALIGN(16) PVOID ProtocolReserved[6];
    DECLSPEC_ALIGN(16) PVOID MiniportReserved[4];
    PHYSICAL_ADDRESS DataPhysicalAddress;
    union {
        PVOID SharedMemoryInfo;
        PVOID ScatterGatherList;
    };
};

struct _NET_BUFFER_LIST_CONTEXT {
    PNET_BUFFER_LIST_CONTEXT Next;
    USHORT Size;
    USHORT Offset;
    DECLSPEC_ALIGN(16) UCHAR ContextData[];
};

typedef enum _NDIS_NET_BUFFER_LIST_INFO {
    TcpIpChecksumNetBufferListInfo = 0,
    TcpOffloadBytesTransferred = 0,
    IPsecOffloadV1NetBufferListInfo = 1,
    TcpLargeSendNetBufferListInfo = 2,
    TcpReceiveNoPush = 2,
    ClassificationHandleNetBufferListInfo = 3,
    Ieee8021QNetBufferListInfo = 4,
    NetBufferListCancelId = 5,
    MediaSpecificInformation = 6,
    NetBufferListFrameType = 7,
    NetBufferListProtocolId = 7,
    NetBufferListHashValue = 8,
    NetBufferListHashInfo = 9,
    WfpNetBufferListInfo = 10,
    IPsecOffloadV2NetBufferListInfo = 11,
    IPsecOffloadV2TunnelNetBufferListInfo = 12,
    IPsecOffloadV2HeaderNetBufferListInfo = 13,
    NetBufferListCorrelationId = 14,
    NetBufferListFilteringInfo = 15,
    MediaSpecificInformationEx = 16,
    NblOriginalInterfaceIfIndex = 17,
    NblReserved = 17,
    TcpReceiveBytesTransferred = 18,
    NrtNameResolutionId = 19,
    MaxNetBufferListInfo = 20
} NDIS_NET_BUFFER_LIST_INFO;

struct _NET_BUFFER_LIST {
    union {
        struct {
            PNET_BUFFER_LIST Next;
            PNET_BUFFER FirstNetBuffer;
        };
        SLIST_HEADER Link;
    };
    PNET_BUFFER_LIST_CONTEXT Context;
    PNET_BUFFER_LIST ParentNetBufferList;
    NDIS_HANDLE NdisPoolHandle;
    DECLSPEC_ALIGN(16) PVOID NdisReserved[2];
    DECLSPEC_ALIGN(16) PVOID ProtocolReserved[4];
    DECLSPEC_ALIGN(16) PVOID MiniportReserved[2];
    PVOID Scratch;
    NDIS_HANDLE SourceHandle;
    ULONG NblFlags;
    LONG ChildRefCount;
    ULONG Flags;
    union {
        NDIS_STATUS Status;
        ULONG NdisReserved2;
    };
    PVOID NetBufferListInfo[MaxNetBufferListInfo];
};

/* accessors (legacy names; NDIS_INCLUDE_LEGACY_NAMES) */
#define NET_BUFFER_LIST_NEXT_NBL(l) ((l)->Next)
#define NET_BUFFER_LIST_FIRST_NB(l) ((l)->FirstNetBuffer)
#define NET_BUFFER_LIST_FLAGS(l) ((l)->Flags)
#define NET_BUFFER_LIST_NBL_FLAGS(l) ((l)->NblFlags)
#define NET_BUFFER_LIST_STATUS(l) ((l)->Status)
#define NET_BUFFER_LIST_PROTOCOL_RESERVED(l) ((l)->ProtocolReserved)
#define NET_BUFFER_LIST_MINIPORT_RESERVED(l) ((l)->MiniportReserved)
#define NET_BUFFER_LIST_CONTEXT_DATA_START(l) ((PUCHAR)(((l)->Context) + 1) + (l)->Context->Offset)
#define NET_BUFFER_LIST_CONTEXT_DATA_SIZE(l) (((l)->Context)->Size)
#define NET_BUFFER_LIST_INFO(l, id) ((l)->NetBufferListInfo[(id)])
#define NET_BUFFER_NEXT_NB(b) ((b)->Next)
#define NET_BUFFER_FIRST_MDL(b) ((b)->MdlChain)
#define NET_BUFFER_DATA_LENGTH(b) ((b)->DataLength)
#define NET_BUFFER_DATA_OFFSET(b) ((b)->DataOffset)
#define NET_BUFFER_CURRENT_MDL(b) ((b)->CurrentMdl)
#define NET_BUFFER_CURRENT_MDL_OFFSET(b) ((b)->CurrentMdlOffset)
#define NET_BUFFER_CHECKSUM_BIAS(b) ((b)->ChecksumBias)
#define NET_BUFFER_PROTOCOL_RESERVED(b) ((b)->ProtocolReserved)
#define NET_BUFFER_MINIPORT_RESERVED(b) ((b)->MiniportReserved)
#define NBL_TEST_FLAG(l, f) (((l)->Flags & (f)) != 0)
#define NBL_SET_FLAG(l, f) ((l)->Flags |= (f))
#define NBL_CLEAR_FLAG(l, f) ((l)->Flags &= ~(f))
#define NdisTestNblFlag(l, f) (((l)->NblFlags & (f)) != 0)
#define NdisSetNblFlag(l, f) ((l)->NblFlags |= (f))
#define NdisClearNblFlag(l, f) ((l)->NblFlags &= ~(f))
#define NdisSetNetBufferListProtocolId(l, id) \
    (*((PUCHAR)(&((l)->NetBufferListInfo[NetBufferListProtocolId]))) = (UCHAR)(id))
#define NDIS_NBL_FLAGS_SEND_READ_ONLY 0x00000001
#define NDIS_NBL_FLAGS_RECV_READ_ONLY 0x00000002
#define NDIS_NBL_FLAGS_HD_SPLIT 0x00000100
#define NDIS_NBL_FLAGS_IS_IPV4 0x00000200
#define NDIS_NBL_FLAGS_IS_IPV6 0x00000400
#define NDIS_NBL_FLAGS_IS_TCP 0x00000800
#define NDIS_NBL_FLAGS_IS_UDP 0x00001000
#define NDIS_NBL_FLAGS_SPLIT_AT_UPPER_LAYER_PROTOCOL_HEADER 0x00002000
#define NDIS_NBL_FLAGS_SPLIT_AT_UPPER_LAYER_PROTOCOL_PAYLOAD 0x00004000
#define NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET 0x00008000
#define NDIS_NBL_FLAGS_CAPTURE_TIMESTAMP_ON_TRANSMIT 0x00010000
#define NBL_FLAGS_PROTOCOL_RESERVED 0xFFF00003
#define NBL_FLAGS_MINIPORT_RESERVED 0x0000F000
#define NBL_FLAGS_SCRATCH 0x000F0000
#define NBL_FLAGS_NDIS_RESERVED 0x00000FFC

typedef union _NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO {
    struct {
        ULONG IsIPv4 : 1;
        ULONG IsIPv6 : 1;
        ULONG TcpChecksum : 1;
        ULONG UdpChecksum : 1;
        ULONG IpHeaderChecksum : 1;
        ULONG Reserved : 11;
        ULONG TcpHeaderOffset : 10;
    } Transmit;
    struct {
        ULONG TcpChecksumFailed : 1;
        ULONG UdpChecksumFailed : 1;
        ULONG IpChecksumFailed : 1;
        ULONG TcpChecksumSucceeded : 1;
        ULONG UdpChecksumSucceeded : 1;
        ULONG IpChecksumSucceeded : 1;
        ULONG Loopback : 1;
        ULONG TcpChecksumValueInvalid : 1;
        ULONG IpChecksumValueInvalid : 1;
    } Receive;
    PVOID Value;
} NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO, *PNDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO;

typedef struct _NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO {
    union {
        struct {
            ULONG Unused : 30;
            ULONG Type : 1;
            ULONG Reserved2 : 1;
        } Transmit;
        struct {
            ULONG MSS : 20;
            ULONG TcpHeaderOffset : 10;
            ULONG Type : 1;
            ULONG Reserved2 : 1;
        } LsoV1Transmit;
        struct {
            ULONG TcpPayload : 30;
            ULONG Type : 1;
            ULONG Reserved2 : 1;
        } LsoV1TransmitComplete;
        struct {
            ULONG MSS : 20;
            ULONG TcpHeaderOffset : 10;
            ULONG Type : 1;
            ULONG IPVersion : 1;
        } LsoV2Transmit;
        struct {
            ULONG Reserved : 30;
            ULONG Type : 1;
            ULONG Reserved2 : 1;
        } LsoV2TransmitComplete;
        PVOID Value;
    };
} NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO, *PNDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO;
#define NDIS_TCP_LARGE_SEND_OFFLOAD_V1_TYPE 0
#define NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE 1
#define NDIS_TCP_LARGE_SEND_OFFLOAD_IPv4 0
#define NDIS_TCP_LARGE_SEND_OFFLOAD_IPv6 1
_Static_assert(sizeof(NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO) == 8, "LSO info");

typedef MDL *NET_BUFFER_ALLOCATE_MDL(ULONG *BufferSize);
typedef NET_BUFFER_ALLOCATE_MDL *PNET_BUFFER_ALLOCATE_MDL;
typedef void NET_BUFFER_FREE_MDL(MDL *Mdl);
typedef NET_BUFFER_FREE_MDL *PNET_BUFFER_FREE_MDL;

/* Contiguous view of BytesNeeded bytes at the data start (§6). */
PVOID NdisGetDataBuffer(NET_BUFFER *NetBuffer, ULONG BytesNeeded, PVOID Storage, ULONG AlignMultiple, ULONG AlignOffset);
NDIS_STATUS NdisRetreatNetBufferDataStart(NET_BUFFER *NetBuffer, ULONG DataOffsetDelta, ULONG DataBackFill, NET_BUFFER_ALLOCATE_MDL *AllocateMdlHandler);
void NdisAdvanceNetBufferDataStart(NET_BUFFER *NetBuffer, ULONG DataOffsetDelta, BOOLEAN FreeMdl, NET_BUFFER_FREE_MDL *FreeMdlHandler);
FORCEINLINE NDIS_STATUS NdisRetreatNetBufferListDataStart(NET_BUFFER_LIST *l, ULONG Delta, ULONG BackFill, NET_BUFFER_ALLOCATE_MDL *Alloc, NET_BUFFER_FREE_MDL *Free)
{
    for (NET_BUFFER *nb = l->FirstNetBuffer; nb; nb = nb->Next) {
        NDIS_STATUS s = NdisRetreatNetBufferDataStart(nb, Delta, BackFill, Alloc);
        if (s != NDIS_STATUS_SUCCESS) {
            for (NET_BUFFER *undo = l->FirstNetBuffer; undo != nb; undo = undo->Next)
                NdisAdvanceNetBufferDataStart(undo, Delta, TRUE, Free);
            return s;
        }
    }
    return NDIS_STATUS_SUCCESS;
}
FORCEINLINE void NdisAdvanceNetBufferListDataStart(NET_BUFFER_LIST *l, ULONG Delta, BOOLEAN FreeMdl, NET_BUFFER_FREE_MDL *Free)
{
    for (NET_BUFFER *nb = l->FirstNetBuffer; nb; nb = nb->Next) NdisAdvanceNetBufferDataStart(nb, Delta, FreeMdl, Free);
}
/* ---- NBL pools and generic objects (runtime; leaks are Verifier findings) ---- */
#define NDIS_PROTOCOL_ID_DEFAULT 0x00
#define NDIS_PROTOCOL_ID_TCP_IP 0x02
#define NDIS_PROTOCOL_ID_IPX 0x06
#define NDIS_PROTOCOL_ID_NBF 0x07
#define NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1 1
typedef struct _NET_BUFFER_LIST_POOL_PARAMETERS {
    NDIS_OBJECT_HEADER Header;
    UCHAR ProtocolId;
    BOOLEAN fAllocateNetBuffer;
    USHORT ContextSize;
    ULONG PoolTag;
    ULONG DataSize;
} NET_BUFFER_LIST_POOL_PARAMETERS, *PNET_BUFFER_LIST_POOL_PARAMETERS;
#define NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1 \
    RTL_SIZEOF_THROUGH_FIELD(NET_BUFFER_LIST_POOL_PARAMETERS, DataSize)
typedef struct _NDIS_GENERIC_OBJECT {
    NDIS_OBJECT_HEADER Header;
    PVOID Caller;
    PVOID CallersCaller;
    PDRIVER_OBJECT DriverObject;
} NDIS_GENERIC_OBJECT, *PNDIS_GENERIC_OBJECT;
_Static_assert(sizeof(NET_BUFFER_LIST_POOL_PARAMETERS) == 16, "NET_BUFFER_LIST_POOL_PARAMETERS");
_Static_assert(sizeof(NDIS_GENERIC_OBJECT) == 32, "NDIS_GENERIC_OBJECT");
/* NULL on a bad header (Type NDIS_OBJECT_TYPE_DEFAULT, Revision 1, Size), or PoolTag 0. */
NDIS_HANDLE NdisAllocateNetBufferListPool(NDIS_HANDLE NdisHandle, PNET_BUFFER_LIST_POOL_PARAMETERS Parameters);
void NdisFreeNetBufferListPool(NDIS_HANDLE PoolHandle);
/* A NET_BUFFER_LIST_CONTEXT of max(pool ContextSize, ContextSize + ContextBackFill) bytes, the last
 * ContextSize in use (NET_BUFFER_LIST_CONTEXT_DATA_START; DATA_SIZE is the whole block's Size). */
PNET_BUFFER_LIST NdisAllocateNetBufferList(NDIS_HANDLE PoolHandle, USHORT ContextSize, USHORT ContextBackFill);
/* One NET_BUFFER over MdlChain (DataOffset/DataLength); needs a pool with fAllocateNetBuffer. */
PNET_BUFFER_LIST NdisAllocateNetBufferAndNetBufferList(NDIS_HANDLE PoolHandle, USHORT ContextSize, USHORT ContextBackFill,
                                                       PMDL MdlChain, ULONG DataOffset, SIZE_T DataLength);
void NdisFreeNetBufferList(PNET_BUFFER_LIST NetBufferList);
/* NET_BUFFER_LIST_CONTEXT space (sizes multiples of sizeof(void*)): ContextSize more bytes in use,
 * from the unused front (Offset) of the current block or from a new block of ContextSize +
 * ContextBackFill put in front of the chain (NDIS_STATUS_RESOURCES when it cannot be allocated).
 * Free what was allocated, in reverse order, before the list goes (else a Verifier finding). */
NDIS_STATUS NdisAllocateNetBufferListContext(PNET_BUFFER_LIST NetBufferList, USHORT ContextSize,
                                             USHORT ContextBackFill, ULONG PoolTag);
void NdisFreeNetBufferListContext(PNET_BUFFER_LIST NetBufferList, USHORT ContextSize);
PNDIS_GENERIC_OBJECT NdisAllocateGenericObject(PDRIVER_OBJECT DriverObject, ULONG Tag, USHORT Size);
void NdisFreeGenericObject(PNDIS_GENERIC_OBJECT NdisObject);

/* ---- clones, NET_BUFFER pools, copies (runtime; ndisnb.rs) ---- */
#define NDIS_CLONE_FLAGS_RESERVED 0x00000001
#define NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS 0x00000002
/* A list over the original's data (no copy) from each NET_BUFFER's data start: the original's
 * MDLs (USE_ORIGINAL_MDLS) or new MDLs over the same buffers. ParentNetBufferList = the original,
 * whose ChildRefCount grows by one until NdisFreeCloneNetBufferList (same flags). Valid while the
 * original is. NULL for an unknown pool handle (a Verifier finding). */
PNET_BUFFER_LIST NdisAllocateCloneNetBufferList(PNET_BUFFER_LIST OriginalNetBufferList, NDIS_HANDLE NetBufferListPoolHandle,
                                                NDIS_HANDLE NetBufferPoolHandle, ULONG AllocateCloneFlags);
void NdisFreeCloneNetBufferList(PNET_BUFFER_LIST CloneNetBufferList, ULONG FreeCloneFlags);
NDIS_HANDLE NdisGetPoolFromNetBufferList(const NET_BUFFER_LIST *NetBufferList);
#define NET_BUFFER_POOL_PARAMETERS_REVISION_1 1
typedef struct _NET_BUFFER_POOL_PARAMETERS {
    NDIS_OBJECT_HEADER Header;
    ULONG PoolTag;
    ULONG DataSize;
} NET_BUFFER_POOL_PARAMETERS, *PNET_BUFFER_POOL_PARAMETERS;
#define NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1 \
    RTL_SIZEOF_THROUGH_FIELD(NET_BUFFER_POOL_PARAMETERS, DataSize)
_Static_assert(sizeof(NET_BUFFER_POOL_PARAMETERS) == 12, "NET_BUFFER_POOL_PARAMETERS");
NDIS_HANDLE NdisAllocateNetBufferPool(NDIS_HANDLE NdisHandle, const NET_BUFFER_POOL_PARAMETERS *Parameters);
void NdisFreeNetBufferPool(NDIS_HANDLE PoolHandle);
PNET_BUFFER NdisAllocateNetBuffer(NDIS_HANDLE PoolHandle, PMDL MdlChain, ULONG DataOffset, SIZE_T DataLength);
/* A NET_BUFFER with its own MDL over DataSize zeroed bytes of the pool (DataLength = DataSize). */
PNET_BUFFER NdisAllocateNetBufferMdlAndData(NDIS_HANDLE PoolHandle);
void NdisFreeNetBuffer(PNET_BUFFER NetBuffer);
/* Copies up to BytesToCopy bytes from SourceOffset past the source's data start into the
 * destination's MDLs from DestinationOffset past its data start; *BytesCopied is less when the
 * source's DataLength or the destination's MDL chain runs out. The destination is not changed. */
NDIS_STATUS NdisCopyFromNetBufferToNetBuffer(PNET_BUFFER Destination, ULONG DestinationOffset, ULONG BytesToCopy,
                                             const NET_BUFFER *Source, ULONG SourceOffset, PULONG BytesCopied);

#define NdisQueryMdl(m, va, len, prio) \
    do { if ((va) != NULL) *(PVOID *)(va) = MmGetSystemAddressForMdlSafe((m), (prio) | MdlMappingNoExecute); *(len) = (m)->ByteCount; } while (0)
#define NdisQueryMdlOffset(m, off, len) do { *(off) = (m)->ByteOffset; *(len) = (m)->ByteCount; } while (0)
#define NdisGetNextMdl(cur, next) (*(next) = (cur)->Next)
#define NDIS_MDL_LINKAGE(m) ((m)->Next)

WFP_END_DECLS
#endif
