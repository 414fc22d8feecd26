/* wfp-ddk fwpmtypes.h: management objects (wfp-reference.md §11.1, §11.4). */
#ifndef WFP_DDK_FWPMTYPES_H
#define WFP_DDK_FWPMTYPES_H
#include "fwptypes.h"

typedef struct FWPM_DISPLAY_DATA0_ {
    WCHAR *name;
    WCHAR *description;
} FWPM_DISPLAY_DATA0;
typedef struct FWPM_SESSION0_ {
    GUID sessionKey;
    FWPM_DISPLAY_DATA0 displayData;
    UINT32 flags;
    UINT32 txnWaitTimeoutInMSec;
    DWORD processId;
    SID *sid;
    WCHAR *username;
    BOOL kernelMode;
} FWPM_SESSION0;
#define FWPM_SESSION_FLAG_DYNAMIC 0x00000001
#define FWPM_SESSION_FLAG_RESERVED 0x10000000
#define FWPM_TXN_READ_ONLY 0x00000001
#define RPC_C_AUTHN_NONE 0
#define RPC_C_AUTHN_WINNT 10
#define RPC_C_AUTHN_DEFAULT 0xFFFFFFFF

typedef struct FWPM_PROVIDER0_ {
    GUID providerKey;
    FWPM_DISPLAY_DATA0 displayData;
    UINT32 flags;
    FWP_BYTE_BLOB providerData;
    WCHAR *serviceName;
} FWPM_PROVIDER0;
#define FWPM_PROVIDER_FLAG_PERSISTENT 0x00000001
#define FWPM_PROVIDER_FLAG_DISABLED 0x00000010

typedef struct FWPM_SUBLAYER0_ {
    GUID subLayerKey;
    FWPM_DISPLAY_DATA0 displayData;
    UINT32 flags;
    GUID *providerKey;
    FWP_BYTE_BLOB providerData;
    UINT16 weight;
} FWPM_SUBLAYER0;
#define FWPM_SUBLAYER_FLAG_PERSISTENT 0x00000001

typedef struct FWPM_CALLOUT0_ {
    GUID calloutKey;
    FWPM_DISPLAY_DATA0 displayData;
    UINT32 flags;
    GUID *providerKey;
    FWP_BYTE_BLOB providerData;
    GUID applicableLayer;
    UINT32 calloutId;
} FWPM_CALLOUT0;
#define FWPM_CALLOUT_FLAG_PERSISTENT 0x00010000
#define FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT 0x00020000
#define FWPM_CALLOUT_FLAG_REGISTERED 0x00040000

typedef struct FWPM_FILTER_CONDITION0_ {
    GUID fieldKey;
    FWP_MATCH_TYPE matchType;
    FWP_CONDITION_VALUE0 conditionValue;
} FWPM_FILTER_CONDITION0;
typedef struct FWPM_ACTION0_ {
    FWP_ACTION_TYPE type;
    union {
        GUID filterType;
        GUID calloutKey;
        UINT8 bitmapIndex;
    };
} FWPM_ACTION0;
typedef struct FWPM_FILTER0_ {
    GUID filterKey;
    FWPM_DISPLAY_DATA0 displayData;
    UINT32 flags;
    GUID *providerKey;
    FWP_BYTE_BLOB providerData;
    GUID layerKey;
    GUID subLayerKey;
    FWP_VALUE0 weight;
    UINT32 numFilterConditions;
    FWPM_FILTER_CONDITION0 *filterCondition;
    FWPM_ACTION0 action;
    union {
        UINT64 rawContext;
        GUID providerContextKey;
    };
    GUID *reserved;
    UINT64 filterId;
    FWP_VALUE0 effectiveWeight;
} FWPM_FILTER0;
#define FWPM_FILTER_FLAG_NONE 0x00000000
#define FWPM_FILTER_FLAG_PERSISTENT 0x00000001
#define FWPM_FILTER_FLAG_BOOTTIME 0x00000002
#define FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT 0x00000004
#define FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT 0x00000008
#define FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED 0x00000010
#define FWPM_FILTER_FLAG_DISABLED 0x00000020
#define FWPM_FILTER_FLAG_INDEXED 0x00000040
#define FWPM_FILTER_FLAG_HAS_SECURITY_REALM_PROVIDER_CONTEXT 0x00000080
#define FWPM_FILTER_FLAG_SYSTEMOS_ONLY 0x00000100
#define FWPM_FILTER_FLAG_GAMEOS_ONLY 0x00000200
#define FWPM_FILTER_FLAG_SILENT_MODE 0x00000400
#define FWPM_FILTER_FLAG_IPSEC_NO_ACQUIRE_INITIATE 0x00000800
#define FWPM_WEIGHT_RANGE_MAX 15

/* Provider contexts (wfp-reference §11.4). FWPM_GENERAL_CONTEXT's dataBuffer is supported; the
 * other types' union members point to structures this project does not define (IPsec/IKE
 * policies, classify options): they are declared so WDK sources compile, and are NULL when the
 * engine hands such a provider context to a driver (docs/c-abi.md). */
/* The base filtering engine's state (FwpmBfeStateGet0). */
typedef enum FWPM_SERVICE_STATE_ {
    FWPM_SERVICE_STOPPED = 0,
    FWPM_SERVICE_START_PENDING = 1,
    FWPM_SERVICE_STOP_PENDING = 2,
    FWPM_SERVICE_RUNNING = 3,
    FWPM_SERVICE_STATE_MAX = 4
} FWPM_SERVICE_STATE;
typedef enum FWPM_PROVIDER_CONTEXT_TYPE_ {
    FWPM_IPSEC_KEYING_CONTEXT = 0,
    FWPM_IPSEC_IKE_QM_TRANSPORT_CONTEXT = 1,
    FWPM_IPSEC_IKE_QM_TUNNEL_CONTEXT = 2,
    FWPM_IPSEC_AUTHIP_QM_TRANSPORT_CONTEXT = 3,
    FWPM_IPSEC_AUTHIP_QM_TUNNEL_CONTEXT = 4,
    FWPM_IPSEC_IKE_MM_CONTEXT = 5,
    FWPM_IPSEC_AUTHIP_MM_CONTEXT = 6,
    FWPM_CLASSIFY_OPTIONS_CONTEXT = 7,
    FWPM_GENERAL_CONTEXT = 8,
    FWPM_IPSEC_IKEV2_QM_TUNNEL_CONTEXT = 9,
    FWPM_IPSEC_IKEV2_MM_CONTEXT = 10,
    FWPM_IPSEC_DOSP_CONTEXT = 11,
    FWPM_IPSEC_IKEV2_QM_TRANSPORT_CONTEXT = 12,
    FWPM_NETWORK_CONNECTION_POLICY_CONTEXT = 13,
    FWPM_PROVIDER_CONTEXT_TYPE_MAX = 14
} FWPM_PROVIDER_CONTEXT_TYPE;
#define FWPM_PROVIDER_CONTEXT_FLAG_PERSISTENT 0x00000001
#define FWPM_PROVIDER_CONTEXT_FLAG_DOWNLEVEL 0x00000002

#define WFP_FWPM_PROVIDER_CONTEXT_HEAD \
    GUID providerContextKey; \
    FWPM_DISPLAY_DATA0 displayData; \
    UINT32 flags; \
    GUID *providerKey; \
    FWP_BYTE_BLOB providerData; \
    FWPM_PROVIDER_CONTEXT_TYPE type;
typedef struct FWPM_PROVIDER_CONTEXT0_ {
    WFP_FWPM_PROVIDER_CONTEXT_HEAD
    union {
        struct IPSEC_KEYING_POLICY0_ *keyingPolicy;
        struct IPSEC_TRANSPORT_POLICY0_ *ikeQmTransportPolicy;
        struct IPSEC_TUNNEL_POLICY0_ *ikeQmTunnelPolicy;
        struct IPSEC_TRANSPORT_POLICY0_ *authipQmTransportPolicy;
        struct IPSEC_TUNNEL_POLICY0_ *authipQmTunnelPolicy;
        struct IKEEXT_POLICY0_ *ikeMmPolicy;
        struct IKEEXT_POLICY0_ *authIpMmPolicy;
        FWP_BYTE_BLOB *dataBuffer;
        struct FWPM_CLASSIFY_OPTIONS0_ *classifyOptions;
    };
    UINT64 providerContextId;
} FWPM_PROVIDER_CONTEXT0;
typedef struct FWPM_PROVIDER_CONTEXT1_ {
    WFP_FWPM_PROVIDER_CONTEXT_HEAD
    union {
        struct IPSEC_KEYING_POLICY0_ *keyingPolicy;
        struct IPSEC_TRANSPORT_POLICY1_ *ikeQmTransportPolicy;
        struct IPSEC_TUNNEL_POLICY1_ *ikeQmTunnelPolicy;
        struct IPSEC_TRANSPORT_POLICY1_ *authipQmTransportPolicy;
        struct IPSEC_TUNNEL_POLICY1_ *authipQmTunnelPolicy;
        struct IKEEXT_POLICY1_ *ikeMmPolicy;
        struct IKEEXT_POLICY1_ *authIpMmPolicy;
        FWP_BYTE_BLOB *dataBuffer;
        struct FWPM_CLASSIFY_OPTIONS0_ *classifyOptions;
        struct IPSEC_TUNNEL_POLICY1_ *ikeV2QmTunnelPolicy;
        struct IKEEXT_POLICY1_ *ikeV2MmPolicy;
        struct IPSEC_DOSP_OPTIONS0_ *idpOptions;
    };
    UINT64 providerContextId;
} FWPM_PROVIDER_CONTEXT1;
typedef struct FWPM_PROVIDER_CONTEXT2_ {
    WFP_FWPM_PROVIDER_CONTEXT_HEAD
    union {
        struct IPSEC_KEYING_POLICY1_ *keyingPolicy;
        struct IPSEC_TRANSPORT_POLICY2_ *ikeQmTransportPolicy;
        struct IPSEC_TUNNEL_POLICY2_ *ikeQmTunnelPolicy;
        struct IPSEC_TRANSPORT_POLICY2_ *authipQmTransportPolicy;
        struct IPSEC_TUNNEL_POLICY2_ *authipQmTunnelPolicy;
        struct IKEEXT_POLICY2_ *ikeMmPolicy;
        struct IKEEXT_POLICY2_ *authIpMmPolicy;
        FWP_BYTE_BLOB *dataBuffer;
        struct FWPM_CLASSIFY_OPTIONS0_ *classifyOptions;
        struct IPSEC_TUNNEL_POLICY2_ *ikeV2QmTunnelPolicy;
        struct IPSEC_TRANSPORT_POLICY2_ *ikeV2QmTransportPolicy;
        struct IKEEXT_POLICY2_ *ikeV2MmPolicy;
        struct IPSEC_DOSP_OPTIONS0_ *idpOptions;
    };
    UINT64 providerContextId;
} FWPM_PROVIDER_CONTEXT2;
typedef struct FWPM_PROVIDER_CONTEXT3_ {
    WFP_FWPM_PROVIDER_CONTEXT_HEAD
    union {
        struct IPSEC_KEYING_POLICY1_ *keyingPolicy;
        struct IPSEC_TRANSPORT_POLICY2_ *ikeQmTransportPolicy;
        struct IPSEC_TUNNEL_POLICY3_ *ikeQmTunnelPolicy;
        struct IPSEC_TRANSPORT_POLICY2_ *authipQmTransportPolicy;
        struct IPSEC_TUNNEL_POLICY3_ *authipQmTunnelPolicy;
        struct IKEEXT_POLICY2_ *ikeMmPolicy;
        struct IKEEXT_POLICY2_ *authIpMmPolicy;
        FWP_BYTE_BLOB *dataBuffer;
        struct FWPM_CLASSIFY_OPTIONS0_ *classifyOptions;
        struct IPSEC_TUNNEL_POLICY3_ *ikeV2QmTunnelPolicy;
        struct IPSEC_TRANSPORT_POLICY2_ *ikeV2QmTransportPolicy;
        struct IKEEXT_POLICY2_ *ikeV2MmPolicy;
        struct IPSEC_DOSP_OPTIONS0_ *idpOptions;
        struct FWPM_NETWORK_CONNECTION_POLICY_SETTINGS0_ *networkConnectionPolicy;
    };
    UINT64 providerContextId;
} FWPM_PROVIDER_CONTEXT3;
#undef WFP_FWPM_PROVIDER_CONTEXT_HEAD
#define FWPM_SESSION FWPM_SESSION0
#define FWPM_PROVIDER FWPM_PROVIDER0
#define FWPM_SUBLAYER FWPM_SUBLAYER0
#define FWPM_CALLOUT FWPM_CALLOUT0
#define FWPM_FILTER FWPM_FILTER0
#define FWPM_FILTER_CONDITION FWPM_FILTER_CONDITION0
#define FWPM_DISPLAY_DATA FWPM_DISPLAY_DATA0
#define FWPM_ACTION FWPM_ACTION0
#define FWPM_PROVIDER_CONTEXT FWPM_PROVIDER_CONTEXT3
/* Classify options and IPsec DoS-protection options (fwptypes.h / fwpmtypes.h of the WDK;
 * WFPSampler's HelperFunctions_FwpObjects.h uses the version-less names). Values pinned by the
 * WDK's enum order. */
typedef enum FWP_CLASSIFY_OPTION_TYPE_ {
    FWP_CLASSIFY_OPTION_MULTICAST_STATE = 0,
    FWP_CLASSIFY_OPTION_LOOSE_SOURCE_MAPPING = 1,
    FWP_CLASSIFY_OPTION_UNICAST_LIFETIME = 2,
    FWP_CLASSIFY_OPTION_MCAST_BCAST_LIFETIME = 3,
    FWP_CLASSIFY_OPTION_SECURE_SOCKET_SECURITY_FLAGS = 4,
    FWP_CLASSIFY_OPTION_SECURE_SOCKET_AUTHIP_MM_POLICY_KEY = 5,
    FWP_CLASSIFY_OPTION_SECURE_SOCKET_AUTHIP_QM_POLICY_KEY = 6,
    FWP_CLASSIFY_OPTION_LOCAL_ONLY_MAPPING = 7,
    FWP_CLASSIFY_OPTION_MAX = 8
} FWP_CLASSIFY_OPTION_TYPE;
#define FWP_OPTION_VALUE_ALLOW_MULTICAST_STATE 0x00000000
#define FWP_OPTION_VALUE_DENY_MULTICAST_STATE 0x00000001
#define FWP_OPTION_VALUE_ALLOW_GLOBAL_MULTICAST_STATE 0x00000002
#define FWP_OPTION_VALUE_DISABLE_LOOSE_SOURCE 0x00000000
#define FWP_OPTION_VALUE_ENABLE_LOOSE_SOURCE 0x00000001
#define FWP_OPTION_VALUE_DISABLE_LOCAL_ONLY_MAPPING 0x00000000
#define FWP_OPTION_VALUE_ENABLE_LOCAL_ONLY_MAPPING 0x00000001
typedef struct FWPM_CLASSIFY_OPTION0_ {
    FWP_CLASSIFY_OPTION_TYPE type;
    FWP_VALUE0 value;
} FWPM_CLASSIFY_OPTION0;
struct FWPM_CLASSIFY_OPTIONS0_ {
    UINT32 numOptions;
    FWPM_CLASSIFY_OPTION0 *options;
};
typedef struct FWPM_CLASSIFY_OPTIONS0_ FWPM_CLASSIFY_OPTIONS0;
struct IPSEC_DOSP_OPTIONS0_ {
    UINT32 stateIdleTimeoutSeconds;
    UINT32 perIPRateLimitQueueIdleTimeoutSeconds;
    UINT8 ipV6IPsecUnauthDscp;
    UINT32 ipV6IPsecUnauthRateLimitBytesPerSec;
    UINT32 ipV6IPsecUnauthPerIPRateLimitBytesPerSec;
    UINT8 ipV6IPsecAuthDscp;
    UINT32 ipV6IPsecAuthRateLimitBytesPerSec;
    UINT8 icmpV6Dscp;
    UINT32 icmpV6RateLimitBytesPerSec;
    UINT8 ipV6FilterExemptDscp;
    UINT32 ipV6FilterExemptRateLimitBytesPerSec;
    UINT8 defBlockExemptDscp;
    UINT32 defBlockExemptRateLimitBytesPerSec;
    UINT32 maxStateEntries;
    UINT32 maxPerIPRateLimitQueues;
    UINT32 numPublicIFLuids;
    UINT64 *publicIFLuids;
    UINT32 numInternalIFLuids;
    UINT64 *internalIFLuids;
};
typedef struct IPSEC_DOSP_OPTIONS0_ IPSEC_DOSP_OPTIONS0;
#define FWPM_CLASSIFY_OPTION FWPM_CLASSIFY_OPTION0
#define FWPM_CLASSIFY_OPTIONS FWPM_CLASSIFY_OPTIONS0
#define IPSEC_DOSP_OPTIONS IPSEC_DOSP_OPTIONS0
#endif
