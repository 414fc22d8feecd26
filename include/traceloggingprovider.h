/* wfp-ddk traceloggingprovider.h: TraceLogging (TraceLoggingProvider.h in the Windows SDK) for
 * callout drivers hosted by wfp-engine. Events go to the host's log as one line each:
 *   "<provider name>: <event name> Field=value Field=value ..."
 * Providers are registered with TraceLoggingRegister and written only while registered (as ETW
 * drops events of an unregistered provider). Field macros take (value [, "Name" [, "Description"]]);
 * without a name the value's text is the name, as in the SDK. Levels, keywords, opcodes and other
 * event metadata (TraceLoggingLevel, TraceLoggingKeyword, ...) are accepted and not printed. */
#ifndef WFP_DDK_TRACELOGGINGPROVIDER_H
#define WFP_DDK_TRACELOGGINGPROVIDER_H
#include "wfp/wdkbase.h"
#include "wfp/km.h"

typedef struct _TlgProvider_t {
    const char *Name;
    GUID ProviderId;
    volatile LONG Registered;
} TlgProvider_t;
typedef const TlgProvider_t *TraceLoggingHProvider;

#define TRACELOGGING_DECLARE_PROVIDER(handleVariable) extern TraceLoggingHProvider const handleVariable
#define WFP_TLG_GUID_INIT(l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8) { l, w1, w2, { b1, b2, b3, b4, b5, b6, b7, b8 } }
#define TRACELOGGING_DEFINE_PROVIDER(handleVariable, providerName, providerId, ...) \
    static TlgProvider_t handleVariable##_WfpTlgStorage = { providerName, WFP_TLG_GUID_INIT providerId, 0 }; \
    TraceLoggingHProvider const handleVariable = &handleVariable##_WfpTlgStorage
#define TraceLoggingOptionGroup(...)

FORCEINLINE NTSTATUS TraceLoggingRegister(TraceLoggingHProvider hProvider)
{
    __atomic_store_n(&((TlgProvider_t *)hProvider)->Registered, 1, __ATOMIC_RELEASE);
    return STATUS_SUCCESS;
}
FORCEINLINE void TraceLoggingUnregister(TraceLoggingHProvider hProvider)
{
    __atomic_store_n(&((TlgProvider_t *)hProvider)->Registered, 0, __ATOMIC_RELEASE);
}
FORCEINLINE BOOLEAN TraceLoggingProviderEnabled(TraceLoggingHProvider hProvider, UCHAR level, ULONGLONG keyword)
{
    (void)level; (void)keyword;
    return __atomic_load_n(&hProvider->Registered, __ATOMIC_ACQUIRE) != 0;
}

/* One event field as the writer sees it. */
typedef enum _WFP_TLG_KIND {
    WfpTlgMeta = 0, WfpTlgSigned, WfpTlgUnsigned, WfpTlgHex, WfpTlgPointer, WfpTlgBool,
    WfpTlgString, WfpTlgWideString, WfpTlgCountedString, WfpTlgCountedWideString, WfpTlgGuid
} WFP_TLG_KIND;
typedef struct _WFP_TLG_FIELD {
    WFP_TLG_KIND Kind;
    const char *Name;
    LONGLONG Signed;
    ULONGLONG Unsigned;
    const void *Pointer;
    USHORT Count;
} WFP_TLG_FIELD;

#define WFP_TLG_PICK(_0, a, ...) a
#define WFP_TLG_NAME(v, ...) WFP_TLG_PICK(0, ##__VA_ARGS__, #v)
#define WFP_TLG_S(v, ...) ((WFP_TLG_FIELD){ WfpTlgSigned, WFP_TLG_NAME(v, ##__VA_ARGS__), (LONGLONG)(v), 0, NULL, 0 })
#define WFP_TLG_U(v, ...) ((WFP_TLG_FIELD){ WfpTlgUnsigned, WFP_TLG_NAME(v, ##__VA_ARGS__), 0, (ULONGLONG)(v), NULL, 0 })
#define WFP_TLG_X(v, ...) ((WFP_TLG_FIELD){ WfpTlgHex, WFP_TLG_NAME(v, ##__VA_ARGS__), 0, (ULONGLONG)(v), NULL, 0 })
#define WFP_TLG_P(k, v, ...) ((WFP_TLG_FIELD){ k, WFP_TLG_NAME(v, ##__VA_ARGS__), 0, 0, (const void *)(v), 0 })
#define WFP_TLG_SN(v, name) ((WFP_TLG_FIELD){ WfpTlgSigned, name, (LONGLONG)(v), 0, NULL, 0 })
#define WFP_TLG_UN(v, name) ((WFP_TLG_FIELD){ WfpTlgUnsigned, name, 0, (ULONGLONG)(v), NULL, 0 })
#define WFP_TLG_XN(v, name) ((WFP_TLG_FIELD){ WfpTlgHex, name, 0, (ULONGLONG)(v), NULL, 0 })
#define WFP_TLG_META ((WFP_TLG_FIELD){ WfpTlgMeta, NULL, 0, 0, NULL, 0 })

#define TraceLoggingInt8(v, ...) WFP_TLG_SN((CHAR)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingInt16(v, ...) WFP_TLG_SN((SHORT)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingInt32(v, ...) WFP_TLG_SN((LONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingInt64(v, ...) WFP_TLG_SN((LONGLONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingLong(v, ...) WFP_TLG_SN((LONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingIntPtr(v, ...) WFP_TLG_SN((LONG_PTR)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingNTStatus(v, ...) WFP_TLG_XN((ULONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingHResult(v, ...) WFP_TLG_XN((ULONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingWinError(v, ...) WFP_TLG_UN((ULONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingUInt8(v, ...) WFP_TLG_UN((UCHAR)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingUInt16(v, ...) WFP_TLG_UN((USHORT)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingUInt32(v, ...) WFP_TLG_UN((ULONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingUInt64(v, ...) WFP_TLG_UN((ULONGLONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingULong(v, ...) WFP_TLG_UN((ULONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingUIntPtr(v, ...) WFP_TLG_UN((ULONG_PTR)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingPort(v, ...) WFP_TLG_UN(RtlUshortByteSwap((USHORT)(v)), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingHexInt8(v, ...) WFP_TLG_XN((UCHAR)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingHexUInt8(v, ...) WFP_TLG_XN((UCHAR)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingHexInt16(v, ...) WFP_TLG_XN((USHORT)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingHexUInt16(v, ...) WFP_TLG_XN((USHORT)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingHexInt32(v, ...) WFP_TLG_XN((ULONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingHexUInt32(v, ...) WFP_TLG_XN((ULONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingHexInt64(v, ...) WFP_TLG_XN((ULONGLONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingHexUInt64(v, ...) WFP_TLG_XN((ULONGLONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingHexULong(v, ...) WFP_TLG_XN((ULONG)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingHexUIntPtr(v, ...) WFP_TLG_XN((ULONG_PTR)(v), WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingPointer(v, ...) WFP_TLG_P(WfpTlgPointer, v, ##__VA_ARGS__)
#define TraceLoggingBoolean(v, ...) WFP_TLG_UN((v) != 0, WFP_TLG_NAME(v, ##__VA_ARGS__))
#define TraceLoggingBool(v, ...) ((WFP_TLG_FIELD){ WfpTlgBool, WFP_TLG_NAME(v, ##__VA_ARGS__), 0, (ULONGLONG)((v) != 0), NULL, 0 })
#define TraceLoggingString(v, ...) WFP_TLG_P(WfpTlgString, v, ##__VA_ARGS__)
#define TraceLoggingUtf8String(v, ...) WFP_TLG_P(WfpTlgString, v, ##__VA_ARGS__)
#define TraceLoggingWideString(v, ...) WFP_TLG_P(WfpTlgWideString, v, ##__VA_ARGS__)
#define TraceLoggingGuid(v, ...) ((WFP_TLG_FIELD){ WfpTlgGuid, WFP_TLG_NAME(v, ##__VA_ARGS__), 0, 0, &(v), 0 })
#define TraceLoggingCountedString(p, n, ...) ((WFP_TLG_FIELD){ WfpTlgCountedString, WFP_TLG_NAME(p, ##__VA_ARGS__), 0, 0, (p), (USHORT)(n) })
#define TraceLoggingCountedWideString(p, n, ...) ((WFP_TLG_FIELD){ WfpTlgCountedWideString, WFP_TLG_NAME(p, ##__VA_ARGS__), 0, 0, (p), (USHORT)(n) })
#define TraceLoggingUnicodeString(u, ...) ((WFP_TLG_FIELD){ WfpTlgCountedWideString, WFP_TLG_NAME(u, ##__VA_ARGS__), 0, 0, (u) ? (u)->Buffer : NULL, (u) ? (USHORT)((u)->Length / 2) : 0 })
/* Event metadata: accepted, not printed. */
#define TraceLoggingLevel(l) WFP_TLG_META
#define TraceLoggingKeyword(k) WFP_TLG_META
#define TraceLoggingOpcode(o) WFP_TLG_META
#define TraceLoggingChannel(c) WFP_TLG_META
#define TraceLoggingEventTag(t) WFP_TLG_META
#define TraceLoggingDescription(d) WFP_TLG_META
#define TraceLoggingActivityId(a) WFP_TLG_META
#define TraceLoggingRelatedActivityId(a) WFP_TLG_META

static inline __attribute__((unused)) void WfpTlgWrite(TraceLoggingHProvider p, const char *event, const WFP_TLG_FIELD *f, SIZE_T n)
{
    char text[1024];
    WFP_FMT_SINK s = { text, sizeof(text), 0, 0, 0, NULL, 0 };
    if (!TraceLoggingProviderEnabled(p, 0, 0)) return;
    WfpFmtAscii(&s, p->Name);
    WfpFmtAscii(&s, ": ");
    WfpFmtAscii(&s, event);
    for (SIZE_T i = 0; i < n; i++) {
        if (f[i].Kind == WfpTlgMeta) continue;
        WfpFmtPut(&s, ' ');
        WfpFmtAscii(&s, f[i].Name);
        WfpFmtPut(&s, '=');
        switch (f[i].Kind) {
        case WfpTlgSigned:
            WfpFmtNumber(&s, f[i].Signed < 0 ? 0 - (ULONGLONG)f[i].Signed : (ULONGLONG)f[i].Signed, f[i].Signed < 0, 10, 0, 0, -1, 0, 0, 0, 0, 0);
            break;
        case WfpTlgUnsigned: WfpFmtNumber(&s, f[i].Unsigned, 0, 10, 0, 0, -1, 0, 0, 0, 0, 0); break;
        case WfpTlgHex: WfpFmtNumber(&s, f[i].Unsigned, 0, 16, 0, 0, -1, 0, 0, 0, 0, 1); break;
        case WfpTlgPointer: WfpFmtNumber(&s, (ULONG_PTR)f[i].Pointer, 0, 16, 0, 0, -1, 0, 0, 0, 0, 1); break;
        case WfpTlgBool: WfpFmtAscii(&s, f[i].Unsigned ? "true" : "false"); break;
        case WfpTlgString: WfpFmtText(&s, f[i].Pointer, 0, (SIZE_T)-1, 0, -1, 0); break;
        case WfpTlgWideString: WfpFmtText(&s, f[i].Pointer, 1, (SIZE_T)-1, 0, -1, 0); break;
        case WfpTlgCountedString: WfpFmtText(&s, f[i].Pointer, 0, f[i].Count, 0, -1, 0); break;
        case WfpTlgCountedWideString: WfpFmtText(&s, f[i].Pointer, 1, f[i].Count, 0, -1, 0); break;
        case WfpTlgGuid: {
            const GUID *g = (const GUID *)f[i].Pointer;
            WfpFmtNumber(&s, g->Data1, 0, 16, 0, 8, -1, 0, 1, 0, 0, 0); WfpFmtPut(&s, '-');
            WfpFmtNumber(&s, g->Data2, 0, 16, 0, 4, -1, 0, 1, 0, 0, 0); WfpFmtPut(&s, '-');
            WfpFmtNumber(&s, g->Data3, 0, 16, 0, 4, -1, 0, 1, 0, 0, 0); WfpFmtPut(&s, '-');
            for (int b = 0; b < 8; b++) {
                if (b == 2) WfpFmtPut(&s, '-');
                WfpFmtNumber(&s, g->Data4[b], 0, 16, 0, 2, -1, 0, 1, 0, 0, 0);
            }
            break;
        }
        default: break;
        }
    }
    WfpRtDebugPrint(DPFLTR_IHVNETWORK_ID, DPFLTR_INFO_LEVEL, text, s.len);
}

/* TraceLoggingWrite(hProvider, "EventName", fields...): each argument is evaluated once. */
#define TraceLoggingWrite(hProvider, eventName, ...) do { \
        const WFP_TLG_FIELD WfpTlgFields_[] = { WFP_TLG_META, ##__VA_ARGS__ }; \
        WfpTlgWrite((hProvider), (eventName), WfpTlgFields_, sizeof(WfpTlgFields_) / sizeof(WfpTlgFields_[0])); \
    } while (0)
#define TraceLoggingWriteActivity(hProvider, eventName, pActivityId, pRelatedActivityId, ...) \
    TraceLoggingWrite(hProvider, eventName, ##__VA_ARGS__)

#endif
