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

/* The Ex forms (ntstrsafe.h): end pointer, remaining count, STRSAFE_* flags, Cb forms. */
static void StrsafeEx(void)
{
    char b[8];
    char *end = NULL;
    size_t rem = 0;
    /* Success: end at the NUL, remaining counts it; FILL_BEHIND_NULL fills after it. */
    CHECK(RtlStringCchCopyExA(b, 8, "abc", &end, &rem, 0) == STATUS_SUCCESS && end == b + 3 && rem == 5);
    CHECK(RtlStringCchCopyExA(b, 8, "ab", &end, &rem, STRSAFE_FILL_BEHIND_NULL | 'z') == STATUS_SUCCESS &&
          memcmp(b, "ab\0zzzzz", 8) == 0 && end == b + 2 && rem == 6);
    /* Truncation: STATUS_BUFFER_OVERFLOW, truncated text, end at the last character. */
    CHECK(RtlStringCchCopyExA(b, 4, "abcdef", &end, &rem, 0) == STATUS_BUFFER_OVERFLOW && strcmp(b, "abc") == 0 &&
          end == b + 3 && rem == 1);
    /* Failure flags. */
    CHECK(RtlStringCchCopyExA(b, 4, "abcdef", &end, &rem, STRSAFE_NO_TRUNCATION) == STATUS_BUFFER_OVERFLOW &&
          b[0] == 0 && end == b && rem == 4);
    memcpy(b, "xxxxxxxx", 8);
    CHECK(RtlStringCchCopyExA(b, 4, "abcdef", &end, &rem, STRSAFE_FILL_ON_FAILURE | '#') == STATUS_BUFFER_OVERFLOW &&
          memcmp(b, "###\0xxxx", 8) == 0 && end == b + 3 && rem == 1);
    CHECK(RtlStringCchCopyExA(b, 4, "abcdef", &end, &rem, STRSAFE_FILL_ON_FAILURE) == STATUS_BUFFER_OVERFLOW &&
          memcmp(b, "\0\0\0\0xxxx", 8) == 0 && end == b && rem == 4);
    CHECK(RtlStringCchCopyExA(b, 4, "abcdef", &end, &rem, STRSAFE_NULL_ON_FAILURE) == STATUS_BUFFER_OVERFLOW &&
          b[0] == 0 && end == b && rem == 4);
    /* IGNORE_NULLS: NULL source = "", NULL destination with size 0. */
    CHECK(RtlStringCchCopyExA(b, 8, NULL, &end, &rem, STRSAFE_IGNORE_NULLS) == STATUS_SUCCESS && b[0] == 0 && rem == 8);
    CHECK(RtlStringCchCopyExA(NULL, 0, "", &end, &rem, STRSAFE_IGNORE_NULLS) == STATUS_SUCCESS && end == NULL && rem == 0);
    CHECK(RtlStringCchCopyExA(NULL, 0, "a", &end, &rem, STRSAFE_IGNORE_NULLS) == STATUS_INVALID_PARAMETER);
    CHECK(RtlStringCchCopyExA(b, 0, "a", NULL, NULL, STRSAFE_IGNORE_NULLS) == STATUS_BUFFER_OVERFLOW);
    CHECK(RtlStringCchCopyExA(b, 0, "a", NULL, NULL, 0) == STATUS_INVALID_PARAMETER);
    CHECK(RtlStringCchCopyExA(b, 8, "a", NULL, NULL, 0x10000) == STATUS_INVALID_PARAMETER && b[0] == 0);
    rem = 99;
    CHECK(RtlStringCchCopyExA(b, 8, "a", NULL, &rem, 0x10000) == STATUS_INVALID_PARAMETER && rem == 99);
    /* CopyN. */
    CHECK(RtlStringCchCopyNExA(b, 8, "abcdef", 2, &end, &rem, 0) == STATUS_SUCCESS && strcmp(b, "ab") == 0 && rem == 6);
    /* Cat: NO_TRUNCATION keeps the original text; end/remaining count the whole buffer. */
    RtlStringCchCopyA(b, 8, "ab");
    CHECK(RtlStringCchCatExA(b, 8, "cd", &end, &rem, 0) == STATUS_SUCCESS && strcmp(b, "abcd") == 0 && end == b + 4 &&
          rem == 4);
    CHECK(RtlStringCchCatExA(b, 8, "efghij", &end, &rem, STRSAFE_NO_TRUNCATION) == STATUS_BUFFER_OVERFLOW &&
          strcmp(b, "abcd") == 0 && end == b + 4 && rem == 4);
    CHECK(RtlStringCchCatExA(b, 8, "efghij", &end, &rem, 0) == STATUS_BUFFER_OVERFLOW && strcmp(b, "abcdefg") == 0 &&
          end == b + 7 && rem == 1);
    CHECK(RtlStringCchCatExA(b, 8, "x", &end, &rem, 0) == STATUS_BUFFER_OVERFLOW && strcmp(b, "abcdefg") == 0);
    CHECK(RtlStringCchCatExA(b, 8, "", &end, &rem, 0) == STATUS_SUCCESS && rem == 1);
    CHECK(RtlStringCchCatNExA(b, 8, "xyz", 0, &end, &rem, 0) == STATUS_SUCCESS);
    RtlStringCchCopyA(b, 8, "ab");
    CHECK(RtlStringCchCatNExA(b, 8, "cdef", 1, &end, &rem, STRSAFE_FILL_BEHIND_NULL | '.') == STATUS_SUCCESS &&
          memcmp(b, "abc\0....", 8) == 0 && rem == 5);
    char unterminated[3] = { 'a', 'b', 'c' };
    CHECK(RtlStringCchCatExA(unterminated, 3, "d", &end, &rem, 0) == STATUS_INVALID_PARAMETER);
    /* Printf. */
    CHECK(RtlStringCchPrintfExA(b, 8, &end, &rem, 0, "%lu-%s", 42ul, "x") == STATUS_SUCCESS && strcmp(b, "42-x") == 0 &&
          end == b + 4 && rem == 4);
    CHECK(RtlStringCchPrintfExA(b, 4, &end, &rem, 0, "%d", 123456) == STATUS_BUFFER_OVERFLOW && strcmp(b, "123") == 0 &&
          rem == 1);
    CHECK(RtlStringCchPrintfExA(b, 4, &end, &rem, STRSAFE_NULL_ON_FAILURE, "%d", 123456) == STATUS_BUFFER_OVERFLOW &&
          b[0] == 0 && rem == 4);
    CHECK(RtlStringCchPrintfExA(b, 8, &end, &rem, STRSAFE_IGNORE_NULLS, NULL) == STATUS_SUCCESS && b[0] == 0);
    /* Wide and byte-count forms: remaining in bytes (odd byte counts keep their extra byte). */
    WCHAR w[6];
    WCHAR *wend = NULL;
    CHECK(RtlStringCchCopyExW(w, 6, L"hey", &wend, &rem, 0) == STATUS_SUCCESS && WEq(w, "hey") && wend == w + 3 && rem == 3);
    CHECK(RtlStringCbCopyExW(w, sizeof(w), L"hi", &wend, &rem, 0) == STATUS_SUCCESS && wend == w + 2 && rem == 8);
    CHECK(RtlStringCbCopyExW(w, 7, L"hi", &wend, &rem, 0) == STATUS_SUCCESS && rem == 3);
    CHECK(RtlStringCbCatExW(w, sizeof(w), L"there", &wend, &rem, 0) == STATUS_BUFFER_OVERFLOW && WEq(w, "hithe") &&
          rem == 2);
    CHECK(RtlStringCbCopyNExW(w, sizeof(w), L"abc", 4, &wend, &rem, 0) == STATUS_SUCCESS && WEq(w, "ab") && rem == 8);
    CHECK(RtlStringCbCatNExW(w, sizeof(w), L"cdef", 2, &wend, &rem, 0) == STATUS_SUCCESS && WEq(w, "abc") && rem == 6);
    CHECK(RtlStringCbPrintfExW(w, sizeof(w), &wend, &rem, STRSAFE_FILL_BEHIND_NULL | 0xff, L"%s%d", L"n", 5) ==
              STATUS_SUCCESS && WEq(w, "n5") && rem == 8 && w[3] == 0xffff && w[5] == 0xffff);
    CHECK(RtlStringCchPrintfExW(w, 6, &wend, &rem, STRSAFE_FILL_ON_FAILURE | 'a', L"%S", "toolong") ==
              STATUS_BUFFER_OVERFLOW && w[0] == 0x6161 && w[5] == 0 && wend == w + 5 && rem == 1);
    char c[5];
    CHECK(RtlStringCbPrintfExA(c, sizeof(c), &end, &rem, 0, "%I64u", 7ull) == STATUS_SUCCESS && end == c + 1 && rem == 4);
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
    StrsafeEx();
    if (failures) printf("%s\n", t);
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures);
    return failures != 0;
}
