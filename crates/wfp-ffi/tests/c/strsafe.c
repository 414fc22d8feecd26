/* Header-only string helpers run standalone (no runtime): ntstrsafe.h, intsafe.h and the
 * Microsoft-rules formatter with WPP's %!NAME! conversions, at the edges of their buffers. Built
 * and run by tests/c_suite.rs plain, with AddressSanitizer + UBSan, and under valgrind. */
#include <ntddk.h>
#include <ntstrsafe.h>
#include <ntintsafe.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;
#define CHECK(e) do { if (!(e)) { printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #e); failures++; } } while (0)

static int WEq(const WCHAR *a, const char *b)
{
    while (*a && *b && *a == (WCHAR)(unsigned char)*b) { a++; b++; }
    return *a == 0 && *b == 0;
}

static void Fmt(char *out, SIZE_T cap, const WFP_WPP_SITE *site, const char *fmt, ...)
{
    WFP_FMT_SINK s = { out, cap, 0, 0, 0, site };
    va_list ap;
    va_start(ap, fmt);
    WfpFmtV(&s, fmt, 0, ap);
    va_end(ap);
}

int main(void)
{
    /* Exact-fit and one-short buffers: the NUL always lands inside. */
    char *a = malloc(4);
    CHECK(RtlStringCchCopyA(a, 4, "abc") == STATUS_SUCCESS && strcmp(a, "abc") == 0);
    CHECK(RtlStringCchCopyA(a, 4, "abcd") == STATUS_BUFFER_OVERFLOW && strcmp(a, "abc") == 0);
    CHECK(RtlStringCchCatA(a, 4, "x") == STATUS_BUFFER_OVERFLOW && strcmp(a, "abc") == 0);
    CHECK(RtlStringCchPrintfA(a, 4, "%s%d", "ab", 12345) == STATUS_BUFFER_OVERFLOW && strcmp(a, "ab1") == 0);
    CHECK(RtlStringCchPrintfA(a, 4, "%ws", L"\u00e9\u00e9") == STATUS_BUFFER_OVERFLOW);
    free(a);
    WCHAR *w = malloc(3 * sizeof(WCHAR));
    CHECK(RtlStringCchPrintfW(w, 3, L"%d", 7) == STATUS_SUCCESS && WEq(w, "7"));
    CHECK(RtlStringCchPrintfW(w, 3, L"%S", "long") == STATUS_BUFFER_OVERFLOW && WEq(w, "lo"));
    CHECK(RtlStringCchCopyNW(w, 3, L"xyz", 1) == STATUS_SUCCESS && WEq(w, "x"));
    free(w);
    size_t n;
    char unterminated[3] = { 'a', 'b', 'c' };
    CHECK(RtlStringCchLengthA(unterminated, 3, &n) == STATUS_INVALID_PARAMETER && n == 0);
    CHECK(RtlStringCchLengthA(NULL, 3, &n) == STATUS_INVALID_PARAMETER);
    CHECK(RtlStringCchCatA(unterminated, 3, "d") == STATUS_INVALID_PARAMETER);

    ULONG u;
    SIZE_T s;
    CHECK(RtlULongMult(65536, 65535, &u) == STATUS_SUCCESS && u == 0xFFFF0000u);
    CHECK(RtlULongMult(65536, 65536, &u) == STATUS_INTEGER_OVERFLOW && u == ULONG_ERROR);
    CHECK(SizeTSub(1, 2, &s) == INTSAFE_E_ARITHMETIC_OVERFLOW && s == SIZE_T_ERROR);
    CHECK(RtlSizeTToULong((SIZE_T)1 << 32, &u) == STATUS_INTEGER_OVERFLOW);

    char t[128];
    WFP_WPP_SITE site = { "Classify", "callout.c", 42, 4 };
    static const GUID g = { 0xaabbccdd, 0x1122, 0x3344, { 1, 2, 3, 4, 5, 6, 7, 8 } };
    Fmt(t, sizeof(t), &site, "%!FUNC!@%!FILE!:%!LINE! L%!LEVEL! %!STATUS! %!GUID! %!IPADDR!:%!PORT! %!BOOLEAN! %!MyEnum! %d",
        (NTSTATUS)0xC0000001, &g, 0x0101a8c0u, 0xbb01, 0, 3, -1);
    CHECK(strcmp(t, "Classify@callout.c:42 L4 0xc0000001 {aabbccdd-1122-3344-0102-030405060708} 192.168.1.1:443 FALSE 3 -1") == 0);
    Fmt(t, 8, NULL, "%!FUNC!%!TIMESTAMP!x%d", 123456789012LL, 5);
    CHECK(strcmp(t, "1234567") == 0);
    Fmt(t, sizeof(t), NULL, "%!GUID! %!HRESULT! %!unterminated", (const GUID *)NULL, 0);
    CHECK(strcmp(t, "(null) S_OK %!unterminated") == 0);
    if (failures) printf("%s\n", t);
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures);
    return failures != 0;
}
