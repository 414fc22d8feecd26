/* Shared header of the wdkc test driver (two translation units): MSVC-isms WDK-style sources
 * use — non-static __inline functions defined in a header included by several .c files,
 * __declspec, SAL and __drv_* annotations, version-less Fwps/Fwpm names, TraceLogging. */
#pragma once
#include <ntddk.h>
#include <wdf.h>
#pragma warning(push)
#pragma warning(disable:4201)
#include <fwpsk.h>
#pragma warning(pop)
#include <fwpmk.h>
#include <traceloggingprovider.h>

TRACELOGGING_DECLARE_PROVIDER(gWdkcTrace);

#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

/* Defined here, included by both .c files, address taken in both: each object emits a copy. */
__inline
UINT32
WdkcLayerFamily(
   _In_ UINT16 layerId
   )
{
   switch (layerId)
   {
   case FWPS_LAYER_ALE_AUTH_CONNECT_V4:
   case FWPS_LAYER_OUTBOUND_TRANSPORT_V4:
      return 4;
   case FWPS_LAYER_ALE_AUTH_CONNECT_V6:
      return 6;
   default:
      return 0;
   }
}

static __inline int WdkcTwice(_In_ int x) { return 2 * x; }
FORCEINLINE int WdkcThrice(_In_ int x) { return 3 * x; }

typedef struct __declspec(align(16)) _WDKC_ALIGNED {
   UCHAR b;
} WDKC_ALIGNED;

typedef struct _WDKC_COUNTERS {
   volatile LONG dpcRuns;
   ULONG dpcProcessor;
   ULONG queuedProcessor;
} WDKC_COUNTERS;

__declspec(selectany) const ULONG WdkcMagic = 0x5eed;

typedef UINT32 (*WDKC_FAMILY_FN)(UINT16);
WDKC_FAMILY_FN WdkcFamilyFromOtherUnit(void);
_IRQL_requires_max_(DISPATCH_LEVEL)
_When_(return != 0, _Post_satisfies_(*Count > 0))
BOOLEAN WdkcOtherUnitChecks(_Out_writes_bytes_(sizeof(ULONG)) ULONG* Count);

_Function_class_(FWPS_CALLOUT_CLASSIFY_FN)
void NTAPI WdkcClassify(
   _In_ const FWPS_INCOMING_VALUES* inFixedValues,
   _In_ const FWPS_INCOMING_METADATA_VALUES* inMetaValues,
   _Inout_opt_ void* layerData,
   _In_opt_ const void* classifyContext,
   _In_ const FWPS_FILTER* filter,
   _In_ UINT64 flowContext,
   _Inout_ FWPS_CLASSIFY_OUT* classifyOut);
