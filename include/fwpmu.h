/* wfp-ddk fwpmu.h: WFP's user-mode management API (wfp-reference.md §11) for programs that manage
 * a running wfpd through its management socket (docs/api.md). Link with -lwfp_fwpmu (the
 * crates/wfp-fwpmu cdylib or staticlib) and compile with -fshort-wchar (WCHAR and L"" are 16-bit,
 * as the other wfp-ddk headers require).
 *
 * - FwpmEngineOpen0: serverName NULL means the local daemon: $WFPD_SOCKET, else
 *   /run/wfpd/wfpd.sock; a non-NULL serverName is the socket's path. authnService and
 *   authIdentity are ignored: wfpd authenticates the peer with SO_PEERCRED. One engine handle is
 *   one connection and one session: FWPM_SESSION_FLAG_DYNAMIC objects are deleted when it closes.
 * - Results are DWORDs as on Windows: ERROR_SUCCESS, the daemon's FWP_E_* HRESULT, or
 *   ERROR_INVALID_HANDLE, FWP_E_NULL_POINTER, FWP_E_TYPE_MISMATCH, EPT_S_NOT_REGISTERED (daemon
 *   unreachable), RPC_S_CALL_FAILED, E_NOTIMPL, E_FAIL.
 * - Enumerations return blocks freed with FwpmFreeMemory0 (one call frees the whole array).
 *   FWPM_FILTER_ENUM_TEMPLATE0 supports providerKey, layerKey, actionMask, calloutKey, the
 *   BEST_TERMINATING_MATCH / SORTED / BOOTTIME_ONLY / INCLUDE_BOOTTIME / INCLUDE_DISABLED flags
 *   and conditions (they need layerKey) with enumType FULLY_CONTAINED (filters matching all the
 *   traffic the conditions describe) or OVERLAPPING (some of it); docs/api.md gives the exact
 *   rule. A providerContextTemplate answers E_NOTIMPL. Sublayer
 *   templates filter by providerKey, callout templates by providerKey and layerKey (GUID_NULL:
 *   any); FWPM_PROVIDER_ENUM_TEMPLATE0 has only a `reserved` member on Windows as well, so it is
 *   not read (every provider is enumerated).
 * - Net events: the callback receives FWPM_NET_EVENT0 (header + classifyDrop record) on a
 *   library thread, for CLASSIFY_DROP and CLASSIFY_ALLOW events. The subscription's enumTemplate
 *   selects them: startTime / endTime (0: unbounded) and EQUAL conditions on IP_PROTOCOL,
 *   IP_LOCAL_ADDRESS, IP_REMOTE_ADDRESS, IP_LOCAL_PORT, IP_REMOTE_PORT (several on one field are
 *   OR-ed); other conditions answer E_NOTIMPL. No callback runs after FwpmNetEventUnsubscribe0
 *   returns. FwpmNetEventCreateEnumHandle0 takes a snapshot of the daemon's stored net events
 *   (its bounded ring, oldest first) that the same template rules accept (NULL: every
 *   CLASSIFY_DROP / CLASSIFY_ALLOW event); FwpmNetEventEnum0 pages through it, each block freed
 *   with FwpmFreeMemory0. Inside a transaction it answers FWP_E_TXN_IN_PROGRESS, as on Windows. */
#ifndef WFP_DDK_FWPMU_H
#define WFP_DDK_FWPMU_H
#include "fwpmtypes.h"
/* The WDK resolves the FWPM_* GUIDs without INITGUID from fwpkclnt.lib; here each image gets
 * weak (selectany) copies, whether or not the source defines INITGUID. */
#define WFP_DDK_DEFINE_GUIDS
#include "wfp/fwpm_guids.h"
#undef WFP_DDK_DEFINE_GUIDS
#include "guiddef.h"
WFP_BEGIN_DECLS

#define ERROR_SUCCESS 0L
#define ERROR_INVALID_HANDLE 6L
#define ERROR_INVALID_PARAMETER 87L
#define EPT_S_NOT_REGISTERED 1753L
#define RPC_S_CALL_FAILED 1726L
#define FWP_E_ALREADY_EXISTS ((DWORD)0x80320009)
#define FWP_E_FILTER_NOT_FOUND ((DWORD)0x80320003)
#define FWP_E_NOT_FOUND ((DWORD)0x80320008)
#define FWP_E_TXN_IN_PROGRESS ((DWORD)0x8032000E)
#define FWP_E_NO_TXN_IN_PROGRESS ((DWORD)0x8032000D)
#define FWP_E_NULL_POINTER ((DWORD)0x8032001C)
#define FWP_E_INVALID_ENUMERATOR ((DWORD)0x8032001D)

typedef struct FILETIME_ {
    DWORD dwLowDateTime;
    DWORD dwHighDateTime;
} FILETIME;

typedef struct FWPM_PROVIDER_ENUM_TEMPLATE0_ { UINT64 reserved; } FWPM_PROVIDER_ENUM_TEMPLATE0;
typedef struct FWPM_SUBLAYER_ENUM_TEMPLATE0_ { GUID *providerKey; } FWPM_SUBLAYER_ENUM_TEMPLATE0;
typedef struct FWPM_CALLOUT_ENUM_TEMPLATE0_ { GUID *providerKey; GUID layerKey; } FWPM_CALLOUT_ENUM_TEMPLATE0;
typedef struct FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0_ FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0;
typedef enum FWP_FILTER_ENUM_TYPE_ {
    FWP_FILTER_ENUM_FULLY_CONTAINED = 0,
    FWP_FILTER_ENUM_OVERLAPPING = 1,
    FWP_FILTER_ENUM_TYPE_MAX = 2
} FWP_FILTER_ENUM_TYPE;
#define FWP_FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH 0x00000001
#define FWP_FILTER_ENUM_FLAG_SORTED 0x00000002
#define FWP_FILTER_ENUM_FLAG_BOOTTIME_ONLY 0x00000004
#define FWP_FILTER_ENUM_FLAG_INCLUDE_BOOTTIME 0x00000008
#define FWP_FILTER_ENUM_FLAG_INCLUDE_DISABLED 0x00000010
typedef struct FWPM_FILTER_ENUM_TEMPLATE0_ {
    GUID *providerKey;
    GUID layerKey;
    FWP_FILTER_ENUM_TYPE enumType;
    UINT32 flags;
    FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0 *providerContextTemplate;
    UINT32 numFilterConditions;
    FWPM_FILTER_CONDITION0 *filterCondition;
    UINT32 actionMask;
    GUID *calloutKey;
} FWPM_FILTER_ENUM_TEMPLATE0;

typedef enum FWPM_NET_EVENT_TYPE_ {
    FWPM_NET_EVENT_TYPE_IKEEXT_MM_FAILURE = 0,
    FWPM_NET_EVENT_TYPE_IKEEXT_QM_FAILURE = 1,
    FWPM_NET_EVENT_TYPE_IKEEXT_EM_FAILURE = 2,
    FWPM_NET_EVENT_TYPE_CLASSIFY_DROP = 3,
    FWPM_NET_EVENT_TYPE_IPSEC_KERNEL_DROP = 4,
    FWPM_NET_EVENT_TYPE_IPSEC_DOSP_DROP = 5,
    FWPM_NET_EVENT_TYPE_CLASSIFY_ALLOW = 6,
    FWPM_NET_EVENT_TYPE_MAX = 11
} FWPM_NET_EVENT_TYPE;
#define FWPM_NET_EVENT_FLAG_IP_PROTOCOL_SET 0x00000001
#define FWPM_NET_EVENT_FLAG_LOCAL_ADDR_SET 0x00000002
#define FWPM_NET_EVENT_FLAG_REMOTE_ADDR_SET 0x00000004
#define FWPM_NET_EVENT_FLAG_LOCAL_PORT_SET 0x00000008
#define FWPM_NET_EVENT_FLAG_REMOTE_PORT_SET 0x00000010
#define FWPM_NET_EVENT_FLAG_APP_ID_SET 0x00000020
#define FWPM_NET_EVENT_FLAG_USER_ID_SET 0x00000040
#define FWPM_NET_EVENT_FLAG_SCOPE_ID_SET 0x00000080
#define FWPM_NET_EVENT_FLAG_IP_VERSION_SET 0x00000100

typedef struct FWPM_NET_EVENT_HEADER0_ {
    FILETIME timeStamp;
    UINT32 flags;
    FWP_IP_VERSION ipVersion;
    UINT8 ipProtocol;
    union { UINT32 localAddrV4; FWP_BYTE_ARRAY16 localAddrV6; };
    union { UINT32 remoteAddrV4; FWP_BYTE_ARRAY16 remoteAddrV6; };
    UINT16 localPort;
    UINT16 remotePort;
    UINT32 scopeId;
    FWP_BYTE_BLOB appId;
    SID *userId;
} FWPM_NET_EVENT_HEADER0;
typedef struct FWPM_NET_EVENT_CLASSIFY_DROP0_ {
    UINT64 filterId;
    UINT16 layerId;
} FWPM_NET_EVENT_CLASSIFY_DROP0;
typedef struct FWPM_NET_EVENT0_ {
    FWPM_NET_EVENT_HEADER0 header;
    FWPM_NET_EVENT_TYPE type;
    union {
        void *reserved;
        FWPM_NET_EVENT_CLASSIFY_DROP0 *classifyDrop;
    };
} FWPM_NET_EVENT0;
typedef struct FWPM_NET_EVENT_ENUM_TEMPLATE0_ {
    FILETIME startTime;
    FILETIME endTime;
    UINT32 numFilterConditions;
    FWPM_FILTER_CONDITION0 *filterCondition;
} FWPM_NET_EVENT_ENUM_TEMPLATE0;
typedef struct FWPM_NET_EVENT_SUBSCRIPTION0_ {
    FWPM_NET_EVENT_ENUM_TEMPLATE0 *enumTemplate;
    UINT32 flags;
    GUID sessionKey;
} FWPM_NET_EVENT_SUBSCRIPTION0;
typedef void (CALLBACK *FWPM_NET_EVENT_CALLBACK0)(void *context, const FWPM_NET_EVENT0 *event);

DWORD WINAPI FwpmEngineOpen0(const WCHAR *serverName, UINT32 authnService, SEC_WINNT_AUTH_IDENTITY_W *authIdentity,
                             const FWPM_SESSION0 *session, HANDLE *engineHandle);
DWORD WINAPI FwpmEngineClose0(HANDLE engineHandle);

DWORD WINAPI FwpmTransactionBegin0(HANDLE engineHandle, UINT32 flags);
DWORD WINAPI FwpmTransactionCommit0(HANDLE engineHandle);
DWORD WINAPI FwpmTransactionAbort0(HANDLE engineHandle);

DWORD WINAPI FwpmProviderAdd0(HANDLE engineHandle, const FWPM_PROVIDER0 *provider, PSECURITY_DESCRIPTOR sd);
DWORD WINAPI FwpmProviderDeleteByKey0(HANDLE engineHandle, const GUID *key);
DWORD WINAPI FwpmProviderCreateEnumHandle0(HANDLE engineHandle, const FWPM_PROVIDER_ENUM_TEMPLATE0 *enumTemplate,
                                           HANDLE *enumHandle);
DWORD WINAPI FwpmProviderEnum0(HANDLE engineHandle, HANDLE enumHandle, UINT32 numEntriesRequested,
                               FWPM_PROVIDER0 ***entries, UINT32 *numEntriesReturned);
DWORD WINAPI FwpmProviderDestroyEnumHandle0(HANDLE engineHandle, HANDLE enumHandle);

DWORD WINAPI FwpmSubLayerAdd0(HANDLE engineHandle, const FWPM_SUBLAYER0 *subLayer, PSECURITY_DESCRIPTOR sd);
DWORD WINAPI FwpmSubLayerDeleteByKey0(HANDLE engineHandle, const GUID *key);
DWORD WINAPI FwpmSubLayerCreateEnumHandle0(HANDLE engineHandle, const FWPM_SUBLAYER_ENUM_TEMPLATE0 *enumTemplate,
                                           HANDLE *enumHandle);
DWORD WINAPI FwpmSubLayerEnum0(HANDLE engineHandle, HANDLE enumHandle, UINT32 numEntriesRequested,
                               FWPM_SUBLAYER0 ***entries, UINT32 *numEntriesReturned);
DWORD WINAPI FwpmSubLayerDestroyEnumHandle0(HANDLE engineHandle, HANDLE enumHandle);

DWORD WINAPI FwpmCalloutAdd0(HANDLE engineHandle, const FWPM_CALLOUT0 *callout, PSECURITY_DESCRIPTOR sd, UINT32 *id);
DWORD WINAPI FwpmCalloutDeleteById0(HANDLE engineHandle, UINT32 id);
DWORD WINAPI FwpmCalloutDeleteByKey0(HANDLE engineHandle, const GUID *key);
DWORD WINAPI FwpmCalloutCreateEnumHandle0(HANDLE engineHandle, const FWPM_CALLOUT_ENUM_TEMPLATE0 *enumTemplate,
                                          HANDLE *enumHandle);
DWORD WINAPI FwpmCalloutEnum0(HANDLE engineHandle, HANDLE enumHandle, UINT32 numEntriesRequested,
                              FWPM_CALLOUT0 ***entries, UINT32 *numEntriesReturned);
DWORD WINAPI FwpmCalloutDestroyEnumHandle0(HANDLE engineHandle, HANDLE enumHandle);

DWORD WINAPI FwpmFilterAdd0(HANDLE engineHandle, const FWPM_FILTER0 *filter, PSECURITY_DESCRIPTOR sd, UINT64 *id);
DWORD WINAPI FwpmFilterDeleteById0(HANDLE engineHandle, UINT64 id);
DWORD WINAPI FwpmFilterDeleteByKey0(HANDLE engineHandle, const GUID *key);
DWORD WINAPI FwpmFilterCreateEnumHandle0(HANDLE engineHandle, const FWPM_FILTER_ENUM_TEMPLATE0 *enumTemplate,
                                         HANDLE *enumHandle);
DWORD WINAPI FwpmFilterEnum0(HANDLE engineHandle, HANDLE enumHandle, UINT32 numEntriesRequested,
                             FWPM_FILTER0 ***entries, UINT32 *numEntriesReturned);
DWORD WINAPI FwpmFilterDestroyEnumHandle0(HANDLE engineHandle, HANDLE enumHandle);

DWORD WINAPI FwpmNetEventCreateEnumHandle0(HANDLE engineHandle, const FWPM_NET_EVENT_ENUM_TEMPLATE0 *enumTemplate,
                                           HANDLE *enumHandle);
DWORD WINAPI FwpmNetEventEnum0(HANDLE engineHandle, HANDLE enumHandle, UINT32 numEntriesRequested,
                               FWPM_NET_EVENT0 ***entries, UINT32 *numEntriesReturned);
DWORD WINAPI FwpmNetEventDestroyEnumHandle0(HANDLE engineHandle, HANDLE enumHandle);
DWORD WINAPI FwpmNetEventSubscribe0(HANDLE engineHandle, const FWPM_NET_EVENT_SUBSCRIPTION0 *subscription,
                                    FWPM_NET_EVENT_CALLBACK0 callback, void *context, HANDLE *eventsHandle);
DWORD WINAPI FwpmNetEventUnsubscribe0(HANDLE engineHandle, HANDLE eventsHandle);

void WINAPI FwpmFreeMemory0(void **p);

#define FwpmEngineOpen FwpmEngineOpen0
#define FwpmEngineClose FwpmEngineClose0
#define FwpmTransactionBegin FwpmTransactionBegin0
#define FwpmTransactionCommit FwpmTransactionCommit0
#define FwpmTransactionAbort FwpmTransactionAbort0
#define FwpmProviderAdd FwpmProviderAdd0
#define FwpmSubLayerAdd FwpmSubLayerAdd0
#define FwpmCalloutAdd FwpmCalloutAdd0
#define FwpmFilterAdd FwpmFilterAdd0
#define FwpmFilterEnum FwpmFilterEnum0
#define FwpmNetEventCreateEnumHandle FwpmNetEventCreateEnumHandle0
#define FwpmNetEventEnum FwpmNetEventEnum0
#define FwpmNetEventDestroyEnumHandle FwpmNetEventDestroyEnumHandle0
#define FwpmFreeMemory FwpmFreeMemory0
WFP_END_DECLS
#endif
