/* wfp-ddk ntstrsafe.h: bounded string copy, concatenation, formatting and length (inline,
 * header-only; wdk-runtime.md §5). Cch = sizes in characters, Cb = in bytes; A = CHAR, W = WCHAR.
 * Truncation keeps the truncated NUL-terminated text and returns STATUS_BUFFER_OVERFLOW; a size of
 * 0 or above NTSTRSAFE_MAX_CCH returns STATUS_INVALID_PARAMETER. Printf follows Microsoft's format
 * rules (wfp/msfmt.h: %ld 32-bit, %I64d, %ws, %wZ; in W functions %s is WCHAR*). */
#ifndef WFP_DDK_NTSTRSAFE_H
#define WFP_DDK_NTSTRSAFE_H
#include "wfp/wdkbase.h"
#include "wfp/msfmt.h"

#define NTSTRSAFE_MAX_CCH 2147483647
#define NTSTRSAFE_UNICODE_STRING_MAX_CCH 32767
#define STRSAFE_IGNORE_NULLS 0x00000100
#define STRSAFE_FILL_BEHIND_NULL 0x00000200
#define STRSAFE_FILL_ON_FAILURE 0x00000400
#define STRSAFE_NULL_ON_FAILURE 0x00000800
#define STRSAFE_NO_TRUNCATION 0x00001000
typedef CHAR *NTSTRSAFE_PSTR;
typedef const CHAR *NTSTRSAFE_PCSTR;
typedef WCHAR *NTSTRSAFE_PWSTR;
typedef const WCHAR *NTSTRSAFE_PCWSTR;

/* One family per character type: SUF is A or W, CH the character, WIDE 0 or 1. */
#define WFP_STRSAFE_FAMILY(SUF, CH, WIDE) \
    FORCEINLINE NTSTATUS WfpStrCopy##SUF(CH *d, size_t cch, const CH *s, size_t max) \
    { \
        if (cch == 0 || cch > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER; \
        size_t i = 0; \
        while (i + 1 < cch && i < max && s[i]) { d[i] = s[i]; i++; } \
        d[i] = 0; \
        return (i < max && s[i]) ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS; \
    } \
    FORCEINLINE NTSTATUS RtlStringCchLength##SUF(const CH *s, size_t max, size_t *len) \
    { \
        size_t n = 0; \
        if (s == NULL || max > NTSTRSAFE_MAX_CCH) { if (len) *len = 0; return STATUS_INVALID_PARAMETER; } \
        while (n < max && s[n]) n++; \
        if (n == max) { if (len) *len = 0; return STATUS_INVALID_PARAMETER; } \
        if (len) *len = n; \
        return STATUS_SUCCESS; \
    } \
    FORCEINLINE NTSTATUS RtlStringCchCopy##SUF(CH *d, size_t cch, const CH *s) \
    { \
        return WfpStrCopy##SUF(d, cch, s, (size_t)-1); \
    } \
    FORCEINLINE NTSTATUS RtlStringCchCopyN##SUF(CH *d, size_t cch, const CH *s, size_t n) \
    { \
        if (n > NTSTRSAFE_MAX_CCH) { if (cch) d[0] = 0; return STATUS_INVALID_PARAMETER; } \
        return WfpStrCopy##SUF(d, cch, s, n); \
    } \
    FORCEINLINE NTSTATUS RtlStringCchCatN##SUF(CH *d, size_t cch, const CH *s, size_t n) \
    { \
        size_t used; \
        if (cch == 0 || cch > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER; \
        if (RtlStringCchLength##SUF(d, cch, &used) != STATUS_SUCCESS) return STATUS_INVALID_PARAMETER; \
        return WfpStrCopy##SUF(d + used, cch - used, s, n); \
    } \
    FORCEINLINE NTSTATUS RtlStringCchCat##SUF(CH *d, size_t cch, const CH *s) \
    { \
        return RtlStringCchCatN##SUF(d, cch, s, (size_t)-1); \
    } \
    FORCEINLINE NTSTATUS RtlStringCchVPrintf##SUF(CH *d, size_t cch, const CH *fmt, va_list ap) \
    { \
        if (cch == 0 || cch > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER; \
        WFP_FMT_SINK s = { d, cch, 0, 0, WIDE, NULL }; \
        WfpFmtV(&s, fmt, WIDE, ap); \
        return s.needed > s.len ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS; \
    } \
    static inline __attribute__((unused)) NTSTATUS RtlStringCchPrintf##SUF(CH *d, size_t cch, const CH *fmt, ...) \
    { \
        va_list ap; \
        va_start(ap, fmt); \
        NTSTATUS st = RtlStringCchVPrintf##SUF(d, cch, fmt, ap); \
        va_end(ap); \
        return st; \
    } \
    FORCEINLINE NTSTATUS RtlStringCbLength##SUF(const CH *s, size_t cb, size_t *len) \
    { \
        size_t n = 0; \
        NTSTATUS st = RtlStringCchLength##SUF(s, cb / sizeof(CH), &n); \
        if (len) *len = n * sizeof(CH); \
        return st; \
    } \
    FORCEINLINE NTSTATUS RtlStringCbCopy##SUF(CH *d, size_t cb, const CH *s) { return RtlStringCchCopy##SUF(d, cb / sizeof(CH), s); } \
    FORCEINLINE NTSTATUS RtlStringCbCopyN##SUF(CH *d, size_t cb, const CH *s, size_t cbSrc) { return RtlStringCchCopyN##SUF(d, cb / sizeof(CH), s, cbSrc / sizeof(CH)); } \
    FORCEINLINE NTSTATUS RtlStringCbCat##SUF(CH *d, size_t cb, const CH *s) { return RtlStringCchCat##SUF(d, cb / sizeof(CH), s); } \
    FORCEINLINE NTSTATUS RtlStringCbCatN##SUF(CH *d, size_t cb, const CH *s, size_t cbSrc) { return RtlStringCchCatN##SUF(d, cb / sizeof(CH), s, cbSrc / sizeof(CH)); } \
    FORCEINLINE NTSTATUS RtlStringCbVPrintf##SUF(CH *d, size_t cb, const CH *fmt, va_list ap) { return RtlStringCchVPrintf##SUF(d, cb / sizeof(CH), fmt, ap); } \
    static inline __attribute__((unused)) NTSTATUS RtlStringCbPrintf##SUF(CH *d, size_t cb, const CH *fmt, ...) \
    { \
        va_list ap; \
        va_start(ap, fmt); \
        NTSTATUS st = RtlStringCchVPrintf##SUF(d, cb / sizeof(CH), fmt, ap); \
        va_end(ap); \
        return st; \
    }

WFP_BEGIN_DECLS
WFP_STRSAFE_FAMILY(A, CHAR, 0)
WFP_STRSAFE_FAMILY(W, WCHAR, 1)

/* UNICODE_STRING forms: counted, never NUL-terminated by these functions. */
FORCEINLINE NTSTATUS WfpUStrAppend(PUNICODE_STRING d, const WCHAR *s, size_t n)
{
    size_t room = (d->MaximumLength - d->Length) / sizeof(WCHAR), k = n < room ? n : room;
    memcpy((PUCHAR)d->Buffer + d->Length, s, k * sizeof(WCHAR));
    d->Length = (USHORT)(d->Length + k * sizeof(WCHAR));
    return k < n ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
}
FORCEINLINE NTSTATUS RtlUnicodeStringCopy(PUNICODE_STRING d, PCUNICODE_STRING s)
{
    if (d == NULL || s == NULL || d->Length > d->MaximumLength) return STATUS_INVALID_PARAMETER;
    d->Length = 0;
    return WfpUStrAppend(d, s->Buffer, s->Length / sizeof(WCHAR));
}
FORCEINLINE NTSTATUS RtlUnicodeStringCat(PUNICODE_STRING d, PCUNICODE_STRING s)
{
    if (d == NULL || s == NULL || d->Length > d->MaximumLength) return STATUS_INVALID_PARAMETER;
    return WfpUStrAppend(d, s->Buffer, s->Length / sizeof(WCHAR));
}
FORCEINLINE NTSTATUS RtlUnicodeStringCopyString(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s)
{
    if (d == NULL || s == NULL) return STATUS_INVALID_PARAMETER;
    d->Length = 0;
    return WfpUStrAppend(d, s, WfpRtWcslen(s));
}
FORCEINLINE NTSTATUS RtlUnicodeStringCatString(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s)
{
    if (d == NULL || s == NULL || d->Length > d->MaximumLength) return STATUS_INVALID_PARAMETER;
    return WfpUStrAppend(d, s, WfpRtWcslen(s));
}
/* Formats into the counted string; one character of MaximumLength stays reserved for the
 * formatter's terminator (never counted in Length). */
FORCEINLINE NTSTATUS RtlUnicodeStringVPrintf(PUNICODE_STRING d, NTSTRSAFE_PCWSTR fmt, va_list ap)
{
    if (d == NULL || d->Buffer == NULL || d->MaximumLength < sizeof(WCHAR)) return STATUS_INVALID_PARAMETER;
    WFP_FMT_SINK s = { d->Buffer, d->MaximumLength / sizeof(WCHAR), 0, 0, 1, NULL };
    WfpFmtV(&s, fmt, 1, ap);
    d->Length = (USHORT)(s.len * sizeof(WCHAR));
    return s.needed > s.len ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
}
static inline __attribute__((unused)) NTSTATUS RtlUnicodeStringPrintf(PUNICODE_STRING d, NTSTRSAFE_PCWSTR fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    NTSTATUS st = RtlUnicodeStringVPrintf(d, fmt, ap);
    va_end(ap);
    return st;
}
WFP_END_DECLS
#endif
