/* The UNICODE_STRING Ex and N forms of ntstrsafe.h run standalone (header-only): Copy/Cat of
 * counted and NUL-terminated sources, the Cch/Cb N limits, RemainingString, every STRSAFE_* flag,
 * PrintfEx, InitEx / ValidateEx, at the edges of their buffers. Built and run by
 * tests/c_suite.rs plain, with AddressSanitizer + UBSan, and under valgrind. */
#include <ntddk.h>
#include <ntstrsafe.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;
#define CHECK(e) do { if (!(e)) { printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #e); failures++; } } while (0)

/* The string's text equals the ASCII b (counted, no terminator needed). */
static int UEq(PCUNICODE_STRING u, const char *b)
{
    size_t n = u->Length / sizeof(WCHAR), i;
    if (strlen(b) != n) return 0;
    for (i = 0; i < n; i++)
        if (u->Buffer[i] != (WCHAR)(unsigned char)b[i]) return 0;
    return 1;
}

/* A destination over a heap buffer of cap characters (exactly: ASan sees overruns). */
static void Dest(UNICODE_STRING *d, size_t cap)
{
    d->Buffer = (PWCH)malloc(cap ? cap * sizeof(WCHAR) : 1);
    d->Length = 0;
    d->MaximumLength = (USHORT)(cap * sizeof(WCHAR));
}

static void CopyAndCat(void)
{
    UNICODE_STRING d, rem, src;
    DECLARE_CONST_UNICODE_STRING(abc, L"abc");
    DECLARE_CONST_UNICODE_STRING(long_, L"abcdefgh");
    Dest(&d, 5);
    CHECK(RtlUnicodeStringCopyEx(&d, &abc, &rem, 0) == STATUS_SUCCESS && UEq(&d, "abc") &&
          rem.Buffer == d.Buffer + 3 && rem.Length == 0 && rem.MaximumLength == 4);
    CHECK(RtlUnicodeStringCatEx(&d, &abc, &rem, 0) == STATUS_BUFFER_OVERFLOW && UEq(&d, "abcab") &&
          rem.Buffer == d.Buffer + 5 && rem.MaximumLength == 0);
    /* NO_TRUNCATION: Cat keeps the original text, Copy leaves nothing. */
    RtlUnicodeStringCopyStringEx(&d, L"xy", NULL, 0);
    CHECK(RtlUnicodeStringCatEx(&d, &long_, &rem, STRSAFE_NO_TRUNCATION) == STATUS_BUFFER_OVERFLOW && UEq(&d, "xy") &&
          rem.Buffer == d.Buffer + 2 && rem.MaximumLength == 6);
    CHECK(RtlUnicodeStringCopyEx(&d, &long_, NULL, STRSAFE_NO_TRUNCATION) == STATUS_BUFFER_OVERFLOW && d.Length == 0);
    /* FILL_BEHIND on success, FILL_ON_FAILURE / ZERO_LENGTH_ON_FAILURE on failure. */
    CHECK(RtlUnicodeStringCopyStringEx(&d, L"ab", &rem, STRSAFE_FILL_BEHIND | 0x41) == STATUS_SUCCESS && UEq(&d, "ab") &&
          d.Buffer[2] == 0x4141 && d.Buffer[4] == 0x4141 && rem.MaximumLength == 6);
    CHECK(RtlUnicodeStringCopyStringEx(&d, L"abcdefgh", &rem, STRSAFE_FILL_ON_FAILURE | 0x2d) == STATUS_BUFFER_OVERFLOW &&
          d.Length == 10 && d.Buffer[0] == 0x2d2d && d.Buffer[4] == 0x2d2d && rem.MaximumLength == 0);
    CHECK(RtlUnicodeStringCopyStringEx(&d, L"abcdefgh", NULL, STRSAFE_FILL_ON_FAILURE) == STATUS_BUFFER_OVERFLOW &&
          d.Length == 0 && d.Buffer[3] == 0);
    CHECK(RtlUnicodeStringCatStringEx(&d, L"abcdefgh", &rem, STRSAFE_ZERO_LENGTH_ON_FAILURE) == STATUS_BUFFER_OVERFLOW &&
          d.Length == 0 && rem.Buffer == d.Buffer && rem.MaximumLength == 10);
    /* IGNORE_NULLS: NULL source (or Buffer) = "", NULL destination = no room. */
    RtlUnicodeStringCopyStringEx(&d, L"q", NULL, 0);
    CHECK(RtlUnicodeStringCatStringEx(&d, NULL, NULL, STRSAFE_IGNORE_NULLS) == STATUS_SUCCESS && UEq(&d, "q"));
    CHECK(RtlUnicodeStringCopyEx(&d, NULL, NULL, STRSAFE_IGNORE_NULLS) == STATUS_SUCCESS && d.Length == 0);
    src.Buffer = NULL; src.Length = 4; src.MaximumLength = 4;
    CHECK(RtlUnicodeStringCopyEx(&d, &src, NULL, STRSAFE_IGNORE_NULLS) == STATUS_SUCCESS && d.Length == 0);
    CHECK(RtlUnicodeStringCopyEx(&d, &src, NULL, 0) == STATUS_INVALID_PARAMETER);
    CHECK(RtlUnicodeStringCopyStringEx(NULL, L"", &rem, STRSAFE_IGNORE_NULLS) == STATUS_SUCCESS && rem.Buffer == NULL &&
          rem.MaximumLength == 0);
    CHECK(RtlUnicodeStringCopyStringEx(NULL, L"a", NULL, STRSAFE_IGNORE_NULLS) == STATUS_BUFFER_OVERFLOW);
    CHECK(RtlUnicodeStringCopyStringEx(NULL, L"a", NULL, 0) == STATUS_INVALID_PARAMETER);
    CHECK(RtlUnicodeStringCopyStringEx(&d, NULL, NULL, 0) == STATUS_INVALID_PARAMETER);
    /* Invalid flags or destination: nothing changes. */
    RtlUnicodeStringCopyStringEx(&d, L"keep", NULL, 0);
    CHECK(RtlUnicodeStringCopyStringEx(&d, L"x", NULL, 0x10000) == STATUS_INVALID_PARAMETER && UEq(&d, "keep"));
    d.Length = 3;
    CHECK(RtlUnicodeStringCatEx(&d, &abc, NULL, 0) == STATUS_INVALID_PARAMETER);
    d.Length = 8;
    free(d.Buffer);
}

static void NForms(void)
{
    UNICODE_STRING d, rem;
    DECLARE_CONST_UNICODE_STRING(abcdef, L"abcdef");
    Dest(&d, 8);
    CHECK(RtlUnicodeStringCchCopyN(&d, &abcdef, 2) == STATUS_SUCCESS && UEq(&d, "ab"));
    CHECK(RtlUnicodeStringCbCatN(&d, &abcdef, 7) == STATUS_SUCCESS && UEq(&d, "ababc"));
    CHECK(RtlUnicodeStringCchCatN(&d, &abcdef, 100) == STATUS_BUFFER_OVERFLOW && UEq(&d, "ababcabc"));
    CHECK(RtlUnicodeStringCbCopyN(&d, &abcdef, 0) == STATUS_SUCCESS && d.Length == 0);
    CHECK(RtlUnicodeStringCchCopyStringN(&d, L"xyz", 10) == STATUS_SUCCESS && UEq(&d, "xyz"));
    CHECK(RtlUnicodeStringCbCopyStringN(&d, L"xyz", 4) == STATUS_SUCCESS && UEq(&d, "xy"));
    CHECK(RtlUnicodeStringCchCatStringN(&d, L"123456789", 3) == STATUS_SUCCESS && UEq(&d, "xy123"));
    CHECK(RtlUnicodeStringCbCatStringN(&d, L"abcdef", 12) == STATUS_BUFFER_OVERFLOW && UEq(&d, "xy123abc"));
    CHECK(RtlUnicodeStringCchCopyN(&d, &abcdef, NTSTRSAFE_UNICODE_STRING_MAX_CCH + 1) == STATUS_INVALID_PARAMETER);
    CHECK(RtlUnicodeStringCchCopyNEx(&d, &abcdef, 3, &rem, STRSAFE_FILL_BEHIND) == STATUS_SUCCESS && UEq(&d, "abc") &&
          d.Buffer[7] == 0 && rem.MaximumLength == 10);
    CHECK(RtlUnicodeStringCbCopyNEx(&d, &abcdef, 4, &rem, 0) == STATUS_SUCCESS && UEq(&d, "ab"));
    CHECK(RtlUnicodeStringCchCatNEx(&d, &abcdef, 6, &rem, STRSAFE_NO_TRUNCATION) == STATUS_SUCCESS && UEq(&d, "ababcdef") &&
          rem.MaximumLength == 0);
    CHECK(RtlUnicodeStringCbCatNEx(&d, &abcdef, 2, &rem, STRSAFE_NO_TRUNCATION) == STATUS_BUFFER_OVERFLOW &&
          UEq(&d, "ababcdef"));
    CHECK(RtlUnicodeStringCchCopyStringNEx(&d, L"hello", 4, &rem, 0) == STATUS_SUCCESS && UEq(&d, "hell"));
    CHECK(RtlUnicodeStringCbCopyStringNEx(&d, L"hello", 2, &rem, 0) == STATUS_SUCCESS && UEq(&d, "h"));
    CHECK(RtlUnicodeStringCchCatStringNEx(&d, L"ij", 5, &rem, 0) == STATUS_SUCCESS && UEq(&d, "hij") &&
          rem.Buffer == d.Buffer + 3);
    CHECK(RtlUnicodeStringCbCatStringNEx(&d, L"klmnopq", 14, &rem, STRSAFE_ZERO_LENGTH_ON_FAILURE) ==
              STATUS_BUFFER_OVERFLOW && d.Length == 0);
    free(d.Buffer);
}

static void PrintfInitValidate(void)
{
    UNICODE_STRING d, rem, u;
    Dest(&d, 6);
    CHECK(RtlUnicodeStringPrintfEx(&d, &rem, 0, L"%d-%ws", 42, L"x") == STATUS_SUCCESS && UEq(&d, "42-x") &&
          rem.Buffer == d.Buffer + 4 && rem.MaximumLength == 4);
    CHECK(RtlUnicodeStringPrintfEx(&d, &rem, 0, L"%s", L"abcdefgh") == STATUS_BUFFER_OVERFLOW && UEq(&d, "abcdef"));
    CHECK(RtlUnicodeStringPrintfEx(&d, NULL, STRSAFE_NO_TRUNCATION, L"%s", L"abcdefgh") == STATUS_BUFFER_OVERFLOW &&
          d.Length == 0);
    CHECK(RtlUnicodeStringPrintfEx(&d, NULL, STRSAFE_IGNORE_NULLS, NULL) == STATUS_SUCCESS && d.Length == 0);
    CHECK(RtlUnicodeStringPrintfEx(&d, NULL, 0, NULL) == STATUS_INVALID_PARAMETER);
    free(d.Buffer);
    CHECK(RtlUnicodeStringInitEx(&u, L"abc", STRSAFE_IGNORE_NULLS) == STATUS_SUCCESS && UEq(&u, "abc") &&
          u.MaximumLength == 8);
    CHECK(RtlUnicodeStringInitEx(&u, NULL, 0) == STATUS_SUCCESS && u.Length == 0 && u.Buffer == NULL);
    CHECK(RtlUnicodeStringInitEx(&u, L"abc", STRSAFE_FILL_BEHIND) == STATUS_INVALID_PARAMETER);
    CHECK(RtlUnicodeStringValidateEx(NULL, STRSAFE_IGNORE_NULLS) == STATUS_SUCCESS);
    CHECK(RtlUnicodeStringValidateEx(NULL, 0) == STATUS_INVALID_PARAMETER);
    u.Length = 3;
    CHECK(RtlUnicodeStringValidateEx(&u, 0) == STATUS_INVALID_PARAMETER);
    CHECK(RtlUnicodeStringValidateEx(&u, STRSAFE_NO_TRUNCATION) == STATUS_INVALID_PARAMETER);
}

int main(void)
{
    CopyAndCat();
    NForms();
    PrintfInitValidate();
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures);
    return failures != 0;
}
