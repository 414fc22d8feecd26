/* wfp-ddk guiddef.h: GUID, DEFINE_GUID (a weak definition with INITGUID, else a declaration),
 * IsEqualGUID (wdk-runtime.md §1, §5). */
#include "wfp/wdkbase.h"
#ifndef GUID_DEFINED
#define GUID_DEFINED
typedef struct _GUID {
    ULONG Data1; /* 'unsigned long' in the WDK: 32-bit */
    USHORT Data2;
    USHORT Data3;
    UCHAR Data4[8];
} GUID, *PGUID, *LPGUID, UUID, IID, CLSID;
typedef const GUID *LPCGUID, *PCGUID, *REFGUID;
FORCEINLINE BOOLEAN IsEqualGUID(const GUID *a, const GUID *b) { return (BOOLEAN)!memcmp(a, b, sizeof(GUID)); }
#ifdef __cplusplus
/* C++ (the WDK's guiddef.h): REFGUID is a reference there, and IsEqualGUID/InlineIsEqualGUID
 * take references; == and != compare GUIDs. Here IsEqualGUID keeps taking pointers (so sources
 * written for C compile unchanged) and also accepts references. */
extern "C++" {
FORCEINLINE BOOLEAN IsEqualGUID(const GUID &a, const GUID &b) { return (BOOLEAN)!memcmp(&a, &b, sizeof(GUID)); }
FORCEINLINE bool operator==(const GUID &a, const GUID &b) { return !memcmp(&a, &b, sizeof(GUID)); }
FORCEINLINE bool operator!=(const GUID &a, const GUID &b) { return !(a == b); }
}
#endif
#define InlineIsEqualGUID IsEqualGUID
#define GUID_NULL WfpRtGuidNull
DECLSPEC_SELECTANY const GUID WfpRtGuidNull = { 0, 0, 0, { 0, 0, 0, 0, 0, 0, 0, 0 } };
#endif
#undef DEFINE_GUID
#if defined(INITGUID) || defined(WFP_DDK_DEFINE_GUIDS)
#ifdef __cplusplus
/* C++: `extern` keeps the const object external (and emitted here) as MSVC's selectany does. */
#define DEFINE_GUID(name, l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8) \
    EXTERN_C __attribute__((weak)) const GUID name = { l, w1, w2, { b1, b2, b3, b4, b5, b6, b7, b8 } }
#else
#define DEFINE_GUID(name, l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8) \
    DECLSPEC_SELECTANY const GUID name = { l, w1, w2, { b1, b2, b3, b4, b5, b6, b7, b8 } }
#endif
#else
#define DEFINE_GUID(name, l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8) EXTERN_C const GUID name
#endif
