/* C side of the ABI checks: every struct's size and member offsets (tests/c/layout_expected.h,
 * generated from the runtime's #[repr(C)] mirrors, plus Windows x64 values checked by hand), then
 * run-time checks of the header-only parts (lists, interlocked, the Microsoft-rules formatter,
 * Rtl string and memory helpers). Built and run by tests/c_suite.rs: plain, with
 * AddressSanitizer, and under valgrind. */
#include <ntddk.h>
#include <initguid.h>
#include <ndis.h>
#include <fwpsk.h>
#include <fwpmk.h>
#include <stdio.h>
#include <stdlib.h>

#define WFP_LAYOUT(expr, value) _Static_assert((expr) == (value), #expr " != " #value);
#include "layout_expected.h"

/* Windows x64 values, independent of the Rust mirrors. */
C_ASSERT(sizeof(GUID) == 16);
C_ASSERT(sizeof(FWP_VALUE0) == 16);
C_ASSERT(sizeof(FWPS_CLASSIFY_OUT0) == 40);
C_ASSERT(sizeof(FWPS_FILTER3) == 64);
C_ASSERT(sizeof(FWPS_INCOMING_VALUES0) == 16);
C_ASSERT(sizeof(FWPM_FILTER0) == 200);
/* FWPM_PROVIDER_CONTEXT0..3 share one x64 layout (the union is one pointer). */
C_ASSERT(sizeof(FWPM_PROVIDER_CONTEXT0) == 88 && sizeof(FWPM_PROVIDER_CONTEXT1) == 88);
C_ASSERT(sizeof(FWPM_PROVIDER_CONTEXT2) == 88 && sizeof(FWPM_PROVIDER_CONTEXT3) == 88);
C_ASSERT(FIELD_OFFSET(FWPM_PROVIDER_CONTEXT3, type) == 64);
C_ASSERT(FIELD_OFFSET(FWPM_PROVIDER_CONTEXT3, dataBuffer) == 72);
C_ASSERT(FIELD_OFFSET(FWPM_PROVIDER_CONTEXT1, dataBuffer) == 72);
C_ASSERT(FIELD_OFFSET(FWPM_PROVIDER_CONTEXT0, providerContextId) == 80);
C_ASSERT(FIELD_OFFSET(FWPM_PROVIDER_CONTEXT2, providerContextId) == 80);
C_ASSERT(FWPM_GENERAL_CONTEXT == 8 && FWPM_PROVIDER_CONTEXT_TYPE_MAX == 14);
C_ASSERT(sizeof(FWPM_PROVIDER_CONTEXT_TYPE) == 4);
C_ASSERT(sizeof(MDL) == 48);
C_ASSERT(sizeof(DRIVER_OBJECT) == 0x150);
/* WDM I/O (Windows x64 values: dt nt!_IRP, nt!_IO_STACK_LOCATION). */
C_ASSERT(sizeof(IRP) == 0xD0 && FIELD_OFFSET(IRP, IoStatus) == 0x30 && FIELD_OFFSET(IRP, UserBuffer) == 0x70);
C_ASSERT(FIELD_OFFSET(IRP, AssociatedIrp.SystemBuffer) == 0x18 && FIELD_OFFSET(IRP, Tail) == 0x78);
C_ASSERT(FIELD_OFFSET(IRP, Tail.Overlay.CurrentStackLocation) == 0xB8 && FIELD_OFFSET(IRP, CancelRoutine) == 0x68);
C_ASSERT(sizeof(IO_STACK_LOCATION) == 0x48 && FIELD_OFFSET(IO_STACK_LOCATION, Parameters) == 8);
C_ASSERT(FIELD_OFFSET(IO_STACK_LOCATION, Parameters.DeviceIoControl.InputBufferLength) == 0x10);
C_ASSERT(FIELD_OFFSET(IO_STACK_LOCATION, Parameters.DeviceIoControl.IoControlCode) == 0x18);
C_ASSERT(FIELD_OFFSET(IO_STACK_LOCATION, Parameters.DeviceIoControl.Type3InputBuffer) == 0x20);
C_ASSERT(FIELD_OFFSET(IO_STACK_LOCATION, Parameters.Create.EaLength) == 0x20);
C_ASSERT(FIELD_OFFSET(IO_STACK_LOCATION, FileObject) == 0x30 && FIELD_OFFSET(FILE_OBJECT, FsContext) == 0x18);
C_ASSERT(sizeof(IO_STATUS_BLOCK) == 16 && IRP_MJ_DEVICE_CONTROL == 0x0e && IRP_MJ_CLEANUP == 0x12);
C_ASSERT(CTL_CODE(FILE_DEVICE_NETWORK, 1, METHOD_BUFFERED, FILE_ANY_ACCESS) == 0x120004);
C_ASSERT(sizeof(UNICODE_STRING) == 16);
C_ASSERT(sizeof(LARGE_INTEGER) == 8);
C_ASSERT(sizeof(LIST_ENTRY) == 16);
C_ASSERT(sizeof(SOCKADDR_STORAGE) == 128);
C_ASSERT(sizeof(SOCKADDR_IN6) == 28);
C_ASSERT(sizeof(WCHAR) == 2 && sizeof(L"ab") == 6);
C_ASSERT(FWP_ACTION_CALLOUT_TERMINATING == 0x5003 && FWP_ACTION_NONE_NO_MATCH == 8);
C_ASSERT(STATUS_FWP_CALLOUT_NOTIFICATION_FAILED == (NTSTATUS)0xC0220037);
C_ASSERT(FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4 == 52 && FWPS_FIELD_ALE_AUTH_CONNECT_V4_MAX > 0);
/* The asynchronous structures (§10.3, §10.4). */
C_ASSERT(sizeof(FWPS_CONNECT_REQUEST0) == 312);
C_ASSERT(FIELD_OFFSET(FWPS_CONNECT_REQUEST0, remoteAddressAndPort) == 128);
C_ASSERT(FIELD_OFFSET(FWPS_CONNECT_REQUEST0, previousVersion) == 272);
C_ASSERT(FIELD_OFFSET(FWPS_CONNECT_REQUEST0, localRedirectHandle) == 288);
C_ASSERT(sizeof(FWPS_BIND_REQUEST0) == 152);
C_ASSERT(sizeof(FWPS_TRANSPORT_SEND_PARAMS0) == 32 && sizeof(FWPS_TRANSPORT_SEND_PARAMS1) == 48);
C_ASSERT(FWPS_INJECTION_TYPE_NETWORK == 4 && FWPS_PACKET_PREVIOUSLY_INJECTED_BY_SELF == 3);
C_ASSERT(FWPS_CLASSIFY_FLAG_REAUTHORIZE_IF_MODIFIED_BY_OTHERS == 1);

static int failures;
#define CHECK(e) do { if (!(e)) { printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #e); failures++; } } while (0)

typedef struct { LIST_ENTRY Link; int v; } ITEM;

static void lists(void)
{
    LIST_ENTRY head;
    ITEM a = { .v = 1 }, b = { .v = 2 }, c = { .v = 3 };
    InitializeListHead(&head);
    CHECK(IsListEmpty(&head));
    CHECK(RemoveHeadList(&head) == &head);
    InsertTailList(&head, &a.Link);
    InsertTailList(&head, &b.Link);
    InsertHeadList(&head, &c.Link);
    CHECK(CONTAINING_RECORD(head.Flink, ITEM, Link)->v == 3);
    CHECK(!RemoveEntryList(&a.Link));
    CHECK(CONTAINING_RECORD(RemoveTailList(&head), ITEM, Link)->v == 2);
    CHECK(RemoveEntryList(&c.Link));
}

static void interlocked(void)
{
    LONG x = 5;
    CHECK(InterlockedIncrement(&x) == 6);
    CHECK(InterlockedExchangeAdd(&x, 4) == 6 && x == 10);
    CHECK(InterlockedCompareExchange(&x, 99, 10) == 10 && x == 99);
    CHECK(InterlockedCompareExchange(&x, 1, 10) == 99 && x == 99);
    LONG64 y = 1;
    CHECK(InterlockedAdd64(&y, 1LL << 40) == (1LL << 40) + 1);
}

static void format(void)
{
    char out[128];
    WFP_FMT_SINK s = { out, sizeof(out), 0, 0, 0 };
    UNICODE_STRING us;
    RtlInitUnicodeString(&us, L"counted");
    va_list none;
    (void)none;
#define FMT(expect, ...) do { \
        s.len = 0; s.needed = 0; \
        char tmp[128]; snprintf(tmp, 1, "%s", ""); \
        WfpTestFormat(&s, __VA_ARGS__); \
        CHECK(strcmp(out, expect) == 0); \
        if (strcmp(out, expect)) printf("  got [%s]\n", out); \
    } while (0)
    extern void WfpTestFormat(WFP_FMT_SINK *s, const char *fmt, ...);
    FMT("4294967295 -1 ffffffff", "%lu %ld %lx", 0xFFFFFFFFu, -1, 0xFFFFFFFFu);
    FMT("18446744073709551615 12345678901", "%I64u %lld", 18446744073709551615ull, 12345678901ll);
    FMT("wide counted narrow", "%ws %wZ %s", L"wide", &us, "narrow");
    FMT("[  7] [7  ] [007] 0x1f", "[%3d] [%-3d] [%03d] %#x", 7, 7, 7, 31);
    FMT("100% %q", "100%% %q");
    FMT("\xc3\xa9", "%ws", L"\u00e9");
    char small[4];
    WFP_FMT_SINK t = { small, sizeof(small), 0, 0, 0 };
    WfpTestFormat(&t, "%s", "truncated");
    CHECK(strcmp(small, "tru") == 0 && t.needed == 9);
}

void WfpTestFormat(WFP_FMT_SINK *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    WfpFmtV(s, fmt, 0, ap);
    va_end(ap);
}

static void rtl(void)
{
    UCHAR a[4] = { 1, 2, 3, 4 }, b[4] = { 1, 2, 9, 4 };
    CHECK(RtlCompareMemory(a, b, 4) == 2);
    CHECK(RtlEqualMemory(a, a, 4));
    UNICODE_STRING x, y;
    RtlInitUnicodeString(&x, L"Abc");
    RtlInitUnicodeString(&y, L"aBC");
    CHECK(x.Length == 6 && x.MaximumLength == 8);
    CHECK(RtlEqualUnicodeString(&x, &y, TRUE) && !RtlEqualUnicodeString(&x, &y, FALSE));
    RtlInitUnicodeString(&x, NULL);
    CHECK(x.Length == 0 && x.Buffer == NULL);
    CHAR mb[8];
    ULONG n = 0;
    CHECK(RtlUnicodeToMultiByteN(mb, sizeof(mb), &n, L"hello", 10) == STATUS_SUCCESS && n == 5 && !memcmp(mb, "hello", 5));
    CHECK(RtlUnicodeToMultiByteN(mb, 3, &n, L"hello", 10) == STATUS_BUFFER_OVERFLOW && n == 3);
    CHECK(NT_SUCCESS(STATUS_OBJECT_NAME_EXISTS) && !NT_SUCCESS(STATUS_DEVICE_BUSY));
    CHECK(IsEqualGUID(&FWPM_LAYER_STREAM_V4, &FWPM_LAYER_STREAM_V4) && !IsEqualGUID(&FWPM_LAYER_STREAM_V4, &FWPM_LAYER_STREAM_V6));
    CHECK(RtlUlongByteSwap(0x01020304u) == 0x04030201u);
}

/* Runtime symbols the inline helpers reference, for this runtime-free program. */
void WfpRtFatalListEntryError(const void *e) { printf("corrupt list %p\n", e); abort(); }
void WfpRtDebugPrint(ULONG c, ULONG l, const char *t, SIZE_T n) { (void)c; (void)l; printf("%.*s", (int)n, t); }
void WfpRtAssertFailed(const char *e, const char *f, int l) { printf("assert %s %s:%d\n", e, f, l); abort(); }

int main(void)
{
    lists();
    interlocked();
    format();
    rtl();
    DbgPrint("DbgPrint %s %lu\n", "works", 42u);
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures);
    return failures != 0;
}
