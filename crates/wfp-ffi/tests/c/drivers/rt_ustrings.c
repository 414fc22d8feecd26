/* UNICODE_STRING helpers (ntstrsafe.h RtlUnicodeString*, ntifs.h RtlCopy/Equal/Compare/Append)
 * exercised inside a driver; prints "ok NAME" / "FAIL NAME" lines (tests/runtime.rs). */
#include <ntddk.h>
#include <ntstrsafe.h>

#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

/* The counted text equals the NUL-terminated literal. */
static BOOLEAN Is(PCUNICODE_STRING u, PCWSTR text)
{
    USHORT i, n = u->Length / sizeof(WCHAR);
    for (i = 0; i < n; i++) {
        if (text[i] == 0 || u->Buffer[i] != text[i]) return FALSE;
    }
    return text[n] == 0;
}

static void InitCopyCat(void)
{
    UNICODE_STRING s, d, bad;
    WCHAR buf[6], big[40];
    CHECK("Init", RtlUnicodeStringInit(&s, L"abc") == STATUS_SUCCESS && s.Length == 6 && s.MaximumLength == 8 && Is(&s, L"abc"));
    CHECK("Init NULL", RtlUnicodeStringInit(&s, NULL) == STATUS_SUCCESS && s.Length == 0 && s.MaximumLength == 0 && s.Buffer == NULL);
    RtlUnicodeStringInit(&s, L"hello");
    d.Buffer = buf; d.Length = 0; d.MaximumLength = sizeof(buf);
    CHECK("Copy", RtlUnicodeStringCopy(&d, &s) == STATUS_SUCCESS && Is(&d, L"hello"));
    CHECK("Cat truncates", RtlUnicodeStringCat(&d, &s) == STATUS_BUFFER_OVERFLOW && d.Length == 12 && Is(&d, L"helloh"));
    CHECK("CopyString truncates", RtlUnicodeStringCopyString(&d, L"0123456789") == STATUS_BUFFER_OVERFLOW && Is(&d, L"012345"));
    CHECK("CopyString", RtlUnicodeStringCopyString(&d, L"ab") == STATUS_SUCCESS && Is(&d, L"ab"));
    CHECK("CatString", RtlUnicodeStringCatString(&d, L"cd") == STATUS_SUCCESS && Is(&d, L"abcd"));
    CHECK("CatString truncates", RtlUnicodeStringCatString(&d, L"efg") == STATUS_BUFFER_OVERFLOW && Is(&d, L"abcdef"));
    CHECK("Cat full", RtlUnicodeStringCatString(&d, L"") == STATUS_SUCCESS && d.Length == 12);
    bad.Buffer = big; bad.Length = 3; bad.MaximumLength = sizeof(big);
    CHECK("odd Length", RtlUnicodeStringCopy(&d, &bad) == STATUS_INVALID_PARAMETER && RtlUnicodeStringValidate(&bad) == STATUS_INVALID_PARAMETER);
    bad.Length = 10; bad.MaximumLength = 8;
    CHECK("Length above MaximumLength", RtlUnicodeStringCatString(&bad, L"x") == STATUS_INVALID_PARAMETER);
    bad.Buffer = NULL; bad.Length = 0; bad.MaximumLength = 8;
    CHECK("NULL buffer", RtlUnicodeStringCopyString(&bad, L"x") == STATUS_INVALID_PARAMETER);
    CHECK("NULL source", RtlUnicodeStringCopyString(&d, NULL) == STATUS_INVALID_PARAMETER);
    bad.MaximumLength = 0;
    CHECK("empty destination overflows", RtlUnicodeStringCopyString(&bad, L"x") == STATUS_BUFFER_OVERFLOW && bad.Length == 0);
}

static void Printf(void)
{
    UNICODE_STRING d;
    WCHAR buf[16];
    d.Buffer = buf; d.Length = 0; d.MaximumLength = sizeof(buf);
    CHECK("Printf", RtlUnicodeStringPrintf(&d, L"%s-%d-%ws-%x", L"k", 42, L"w", 255u) == STATUS_SUCCESS && Is(&d, L"k-42-w-ff"));
    UNICODE_STRING arg;
    RtlUnicodeStringInit(&arg, L"zed");
    CHECK("Printf %wZ", RtlUnicodeStringPrintf(&d, L"<%wZ>", &arg) == STATUS_SUCCESS && Is(&d, L"<zed>"));
    d.MaximumLength = 8;
    CHECK("Printf destination Length above MaximumLength", RtlUnicodeStringPrintf(&d, L"x") == STATUS_INVALID_PARAMETER);
    d.Length = 0;
    buf[4] = L'#';
    CHECK("Printf fills MaximumLength", RtlUnicodeStringPrintf(&d, L"%d", 1234) == STATUS_SUCCESS && Is(&d, L"1234") && buf[4] == L'#');
    CHECK("Printf truncates", RtlUnicodeStringPrintf(&d, L"%d", 123456) == STATUS_BUFFER_OVERFLOW && Is(&d, L"1234") && buf[4] == L'#');
    d.MaximumLength = 7;
    CHECK("Printf odd MaximumLength", RtlUnicodeStringPrintf(&d, L"x") == STATUS_INVALID_PARAMETER);
}

static void RtlForms(void)
{
    UNICODE_STRING a, b, d;
    WCHAR buf[8];
    RtlInitUnicodeString(&a, L"Hello");
    RtlInitUnicodeString(&b, L"hELLO");
    CHECK("Equal case-sensitive", !RtlEqualUnicodeString(&a, &b, FALSE));
    CHECK("Equal case-insensitive", RtlEqualUnicodeString(&a, &b, TRUE));
    CHECK("Compare case-sensitive", RtlCompareUnicodeString(&a, &b, FALSE) < 0);
    CHECK("Compare case-insensitive", RtlCompareUnicodeString(&a, &b, TRUE) == 0);
    RtlInitUnicodeString(&b, L"Help");
    CHECK("Compare order", RtlCompareUnicodeString(&a, &b, TRUE) < 0 && RtlCompareUnicodeString(&b, &a, TRUE) > 0);
    RtlInitUnicodeString(&b, L"Hell");
    CHECK("Compare prefix shorter first", RtlCompareUnicodeString(&b, &a, FALSE) < 0);
    d.Buffer = buf; d.Length = 0; d.MaximumLength = sizeof(buf);
    RtlCopyUnicodeString(&d, &a);
    CHECK("RtlCopyUnicodeString NUL-terminates", Is(&d, L"Hello") && buf[5] == 0);
    d.MaximumLength = 6;
    RtlCopyUnicodeString(&d, &a);
    CHECK("RtlCopyUnicodeString truncates", Is(&d, L"Hel"));
    d.MaximumLength = sizeof(buf);
    RtlCopyUnicodeString(&d, NULL);
    CHECK("RtlCopyUnicodeString NULL source", d.Length == 0);
    CHECK("AppendUnicodeToString", RtlAppendUnicodeToString(&d, L"ab") == STATUS_SUCCESS && Is(&d, L"ab") && buf[2] == 0);
    CHECK("AppendUnicodeStringToString", RtlAppendUnicodeStringToString(&d, &b) == STATUS_SUCCESS && Is(&d, L"abHell"));
    CHECK("Append too small leaves it", RtlAppendUnicodeToString(&d, L"xyz") == STATUS_BUFFER_TOO_SMALL && Is(&d, L"abHell"));
    CHECK("Append fills exactly", RtlAppendUnicodeToString(&d, L"xy") == STATUS_SUCCESS && Is(&d, L"abHellxy"));
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    InitCopyCat();
    Printf();
    RtlForms();
    DbgPrint("done\n");
    return STATUS_SUCCESS;
}
