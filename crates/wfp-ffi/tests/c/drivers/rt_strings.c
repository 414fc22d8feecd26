/* ntstrsafe.h, intsafe.h / ntintsafe.h and ip2string.h exercised inside a driver; prints "ok NAME"
 * or "FAIL NAME" lines (tests/runtime.rs). */
#include <ntddk.h>
#include <ntstrsafe.h>
#include <ntintsafe.h>
#include <ip2string.h>

#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

static BOOLEAN WEq(const WCHAR *a, const WCHAR *b)
{
    while (*a && *a == *b) { a++; b++; }
    return *a == *b;
}

static void StrSafe(void)
{
    CHAR a[8];
    WCHAR w[8];
    size_t n = 99;
    CHECK("RtlStringCchCopyA fits", RtlStringCchCopyA(a, 8, "abc") == STATUS_SUCCESS && strcmp(a, "abc") == 0);
    CHECK("RtlStringCchCopyA truncates", RtlStringCchCopyA(a, 4, "abcdef") == STATUS_BUFFER_OVERFLOW && strcmp(a, "abc") == 0);
    CHECK("RtlStringCchCopyA size 0", RtlStringCchCopyA(a, 0, "x") == STATUS_INVALID_PARAMETER);
    CHECK("RtlStringCchCopyW truncates", RtlStringCchCopyW(w, 3, L"wide") == STATUS_BUFFER_OVERFLOW && WEq(w, L"wi"));
    CHECK("RtlStringCchCopyNA", RtlStringCchCopyNA(a, 8, "abcdef", 2) == STATUS_SUCCESS && strcmp(a, "ab") == 0);
    CHECK("RtlStringCchCatA", RtlStringCchCatA(a, 8, "cd") == STATUS_SUCCESS && strcmp(a, "abcd") == 0);
    CHECK("RtlStringCchCatA truncates", RtlStringCchCatA(a, 8, "efghij") == STATUS_BUFFER_OVERFLOW && strcmp(a, "abcdefg") == 0);
    RtlStringCchCopyW(w, 8, L"ab");
    CHECK("RtlStringCchCatW", RtlStringCchCatW(w, 8, L"c") == STATUS_SUCCESS && WEq(w, L"abc"));
    CHECK("RtlStringCchLengthA", RtlStringCchLengthA("hello", 10, &n) == STATUS_SUCCESS && n == 5);
    CHECK("RtlStringCchLengthA no NUL within max", RtlStringCchLengthA("hello", 5, &n) == STATUS_INVALID_PARAMETER && n == 0);
    CHECK("RtlStringCchLengthW", RtlStringCchLengthW(L"hey", NTSTRSAFE_MAX_CCH, &n) == STATUS_SUCCESS && n == 3);
    CHECK("RtlStringCbLengthW in bytes", RtlStringCbLengthW(L"hey", 100, &n) == STATUS_SUCCESS && n == 6);
    CHAR p[32];
    CHECK("RtlStringCchPrintfA MS rules", RtlStringCchPrintfA(p, 32, "%lu-%ws-%I64x", 4000000000u, L"w", 0x1234567890ull) == STATUS_SUCCESS
          && strcmp(p, "4000000000-w-1234567890") == 0);
    CHECK("RtlStringCchPrintfA truncates", RtlStringCchPrintfA(p, 6, "%d%d", 12345, 678) == STATUS_BUFFER_OVERFLOW && strcmp(p, "12345") == 0);
    WCHAR wp[32];
    CHECK("RtlStringCchPrintfW %s is wide", RtlStringCchPrintfW(wp, 32, L"%s=%d", L"k", 7) == STATUS_SUCCESS && WEq(wp, L"k=7"));
    CHECK("RtlStringCbPrintfW", RtlStringCbPrintfW(wp, sizeof(wp), L"%S", "narrow") == STATUS_SUCCESS && WEq(wp, L"narrow"));
    WCHAR ub[4];
    UNICODE_STRING us = { 0, sizeof(ub), ub };
    CHECK("RtlUnicodeStringPrintf truncates", RtlUnicodeStringPrintf(&us, L"%d", 123456) == STATUS_BUFFER_OVERFLOW && us.Length == 8 && ub[3] == L'4');
}

static void IntSafe(void)
{
    ULONG u;
    SIZE_T s;
    ULONGLONG q;
    CHECK("ULongAdd", ULongAdd(1, 2, &u) == S_OK && u == 3);
    CHECK("ULongAdd overflow", ULongAdd(0xFFFFFFFFu, 1, &u) == INTSAFE_E_ARITHMETIC_OVERFLOW && u == ULONG_ERROR);
    CHECK("ULongMult overflow", ULongMult(0x10000u, 0x10000u, &u) == INTSAFE_E_ARITHMETIC_OVERFLOW);
    CHECK("ULongSub underflow", ULongSub(1, 2, &u) == INTSAFE_E_ARITHMETIC_OVERFLOW);
    CHECK("SizeTAdd", SizeTAdd(5, 6, &s) == S_OK && s == 11);
    CHECK("SizeTMult overflow", SizeTMult((SIZE_T)1 << 63, 2, &s) == INTSAFE_E_ARITHMETIC_OVERFLOW && s == SIZE_T_ERROR);
    CHECK("RtlULongAdd overflow", RtlULongAdd(0xFFFFFFFFu, 1, &u) == STATUS_INTEGER_OVERFLOW);
    CHECK("RtlSizeTMult", RtlSizeTMult(3, 4, &s) == STATUS_SUCCESS && s == 12);
    CHECK("RtlULongLongAdd", RtlULongLongAdd(1ull << 40, 1, &q) == STATUS_SUCCESS && q == (1ull << 40) + 1);
    CHECK("ULongLongToULong", ULongLongToULong(1ull << 32, &u) == INTSAFE_E_ARITHMETIC_OVERFLOW && ULongLongToULong(7, &u) == S_OK && u == 7);
    LONG l;
    CHECK("ULongToLong", ULongToLong(0x80000000u, &l) == INTSAFE_E_ARITHMETIC_OVERFLOW);
    CHECK("LongToULong", LongToULong(-1, &u) == INTSAFE_E_ARITHMETIC_OVERFLOW);
}

static void Ip(void)
{
    struct in_addr a4;
    struct in6_addr a6;
    PCSTR end;
    PCWSTR wend;
    CHECK("RtlIpv4StringToAddressA strict", RtlIpv4StringToAddressA("10.1.2.3:80", TRUE, &end, &a4) == STATUS_SUCCESS
          && a4.S_un.S_un_b.s_b1 == 10 && a4.S_un.S_un_b.s_b4 == 3 && *end == ':');
    CHECK("RtlIpv4StringToAddressA strict rejects short form", RtlIpv4StringToAddressA("10.1", TRUE, &end, &a4) == STATUS_INVALID_PARAMETER);
    CHECK("RtlIpv4StringToAddressA loose", RtlIpv4StringToAddressA("0x7f.1", FALSE, &end, &a4) == STATUS_SUCCESS && a4.S_un.S_addr == RtlUlongByteSwap(0x7f000001));
    CHECK("RtlIpv4StringToAddressW", RtlIpv4StringToAddressW(L"192.168.0.1", TRUE, &wend, &a4) == STATUS_SUCCESS && *wend == 0 && a4.S_un.S_un_b.s_b1 == 192);
    CHECK("RtlIpv6StringToAddressA", RtlIpv6StringToAddressA("fe80::1%3", &end, &a6) == STATUS_SUCCESS && a6.u.Byte[0] == 0xfe && a6.u.Byte[15] == 1 && *end == '%');
    CHECK("RtlIpv6StringToAddressW rejects", RtlIpv6StringToAddressW(L"1::2::3", &wend, &a6) == STATUS_INVALID_PARAMETER);
    CHAR s[64];
    WCHAR ws[64];
    RtlIpv4StringToAddressA("10.1.2.3", TRUE, &end, &a4);
    PSTR z = RtlIpv4AddressToStringA(&a4, s);
    CHECK("RtlIpv4AddressToStringA", strcmp(s, "10.1.2.3") == 0 && z == s + 8 && *z == 0);
    CHECK("RtlIpv4AddressToStringW", *RtlIpv4AddressToStringW(&a4, ws) == 0 && WEq(ws, L"10.1.2.3"));
    RtlIpv6StringToAddressA("2001:db8:0:0:1:0:0:1", &end, &a6);
    RtlIpv6AddressToStringA(&a6, s);
    CHECK("RtlIpv6AddressToStringA compresses the first longest zero run", strcmp(s, "2001:db8::1:0:0:1") == 0);
    RtlIpv6StringToAddressA("::ffff:1.2.3.4", &end, &a6);
    RtlIpv6AddressToStringW(&a6, ws);
    CHECK("RtlIpv6AddressToStringW mapped", WEq(ws, L"::ffff:1.2.3.4"));
    ULONG len = 4;
    CHECK("RtlIpv4AddressToStringExA short buffer", RtlIpv4AddressToStringExA(&a4, RtlUshortByteSwap(80), s, &len) == STATUS_INVALID_PARAMETER && len == 12);
    CHECK("RtlIpv4AddressToStringExA", RtlIpv4AddressToStringExA(&a4, RtlUshortByteSwap(80), s, &len) == STATUS_SUCCESS && strcmp(s, "10.1.2.3:80") == 0);
    len = 64;
    RtlIpv6StringToAddressA("fe80::1", &end, &a6);
    CHECK("RtlIpv6AddressToStringExW", RtlIpv6AddressToStringExW(&a6, 4, RtlUshortByteSwap(443), ws, &len) == STATUS_SUCCESS && WEq(ws, L"[fe80::1%4]:443"));
    USHORT port;
    ULONG scope;
    CHECK("RtlIpv4StringToAddressExA", RtlIpv4StringToAddressExA("1.2.3.4:8080", TRUE, &a4, &port) == STATUS_SUCCESS && port == RtlUshortByteSwap(8080));
    CHECK("RtlIpv6StringToAddressExW", RtlIpv6StringToAddressExW(L"[::1%2]:53", &a6, &scope, &port) == STATUS_SUCCESS && scope == 2 && port == RtlUshortByteSwap(53) && a6.u.Byte[15] == 1);
    CHECK("unsuffixed names are W under UNICODE", RtlIpv4AddressToString(&a4, ws) != NULL && WEq(ws, L"1.2.3.4"));
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    StrSafe();
    IntSafe();
    Ip();
    DbgPrint("done\n");
    return STATUS_SUCCESS;
}
