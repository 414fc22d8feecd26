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
/* The names the UNICODE_STRING Ex forms document for the same bits. */
#define STRSAFE_FILL_BEHIND STRSAFE_FILL_BEHIND_NULL
#define STRSAFE_ZERO_LENGTH_ON_FAILURE STRSAFE_NULL_ON_FAILURE
typedef CHAR *NTSTRSAFE_PSTR;
typedef const CHAR *NTSTRSAFE_PCSTR;
typedef WCHAR *NTSTRSAFE_PWSTR;
typedef const WCHAR *NTSTRSAFE_PCWSTR;

/* One family per character type: SUF is A or W, CH the character, WIDE 0 or 1. */
#define WFP_STRSAFE_FAMILY(SUF, CH, WIDE) \
    FORCEINLINE NTSTATUS WfpStrCopyCount##SUF(CH *d, size_t cch, const CH *s, size_t max, size_t *copied) \
    { \
        if (cch == 0 || cch > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER; \
        size_t i = 0; \
        while (i + 1 < cch && i < max && s[i]) { d[i] = s[i]; i++; } \
        d[i] = 0; \
        *copied = i; \
        return (i < max && s[i]) ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS; \
    } \
    FORCEINLINE NTSTATUS WfpStrCopy##SUF(CH *d, size_t cch, const CH *s, size_t max) \
    { \
        size_t copied; \
        return WfpStrCopyCount##SUF(d, cch, s, max, &copied); \
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
        WFP_FMT_SINK s = { d, cch, 0, 0, WIDE, NULL, 0 }; \
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

/* The Ex forms (ntstrsafe.h's documented behaviour): ppszDestEnd gets the address of the NUL,
 * pcchRemaining the unused characters including it (both only on success or
 * STATUS_BUFFER_OVERFLOW). dwFlags: low byte = fill byte; STRSAFE_IGNORE_NULLS (NULL source or
 * format = "", NULL destination allowed with size 0), STRSAFE_FILL_BEHIND_NULL (success: fill
 * after the NUL), on failure STRSAFE_FILL_ON_FAILURE (fill the whole buffer; a nonzero fill keeps
 * a NUL in the last character), STRSAFE_NULL_ON_FAILURE (empty string), STRSAFE_NO_TRUNCATION
 * (Copy: empty string; Cat: the original text). Other flag bits: STATUS_INVALID_PARAMETER.
 * A NULL source without STRSAFE_IGNORE_NULLS is STATUS_INVALID_PARAMETER here (undefined in the
 * WDK). Cb forms: sizes in bytes; *pcbRemaining = remaining characters * sizeof + cbDest % sizeof. */
#define STRSAFE_VALID_FLAGS (0x000000FF | STRSAFE_IGNORE_NULLS | STRSAFE_FILL_BEHIND_NULL | \
    STRSAFE_FILL_ON_FAILURE | STRSAFE_NULL_ON_FAILURE | STRSAFE_NO_TRUNCATION)
#define WFP_STRSAFE_FILL(f) ((int)((f) & 0xFF))
#define WFP_STRSAFE_EX_FAMILY(SUF, CH, WIDE) \
    FORCEINLINE NTSTATUS WfpStrExValidate##SUF(const CH *d, size_t cch, DWORD flags) \
    { \
        if (flags & STRSAFE_IGNORE_NULLS) \
            return ((d == NULL && cch != 0) || cch > NTSTRSAFE_MAX_CCH) ? STATUS_INVALID_PARAMETER : STATUS_SUCCESS; \
        return (d == NULL || cch == 0 || cch > NTSTRSAFE_MAX_CCH) ? STATUS_INVALID_PARAMETER : STATUS_SUCCESS; \
    } \
    /* The source / format: NULL is "" with STRSAFE_IGNORE_NULLS, else NULL (refused). */ \
    FORCEINLINE const CH *WfpStrExSource##SUF(const CH *s, DWORD flags, const CH *empty) \
    { \
        return (s == NULL && (flags & STRSAFE_IGNORE_NULLS)) ? empty : s; \
    } \
    /* Failure flags (orig = the length to keep for STRSAFE_NO_TRUNCATION). */ \
    FORCEINLINE void WfpStrExOnFailure##SUF(CH *d, size_t cch, size_t orig, CH **end, size_t *rem, DWORD flags) \
    { \
        if (flags & STRSAFE_NO_TRUNCATION) { *end = d + orig; *rem = cch - orig; d[orig] = 0; } \
        if (flags & STRSAFE_FILL_ON_FAILURE) { \
            memset(d, WFP_STRSAFE_FILL(flags), cch * sizeof(CH)); \
            if (WFP_STRSAFE_FILL(flags) == 0) { *end = d; *rem = cch; } \
            else { *end = d + cch - 1; *rem = 1; d[cch - 1] = 0; } \
        } \
        if (flags & STRSAFE_NULL_ON_FAILURE) { *end = d; *rem = cch; d[0] = 0; } \
    } \
    FORCEINLINE NTSTATUS WfpStrExFinish##SUF(NTSTATUS st, CH *d, size_t cch, size_t orig, CH *end, size_t rem, \
                                             CH **pend, size_t *prem, DWORD flags) \
    { \
        if (NT_SUCCESS(st) && (flags & STRSAFE_FILL_BEHIND_NULL) && rem > 1) \
            memset(end + 1, WFP_STRSAFE_FILL(flags), (rem - 1) * sizeof(CH)); \
        if (!NT_SUCCESS(st) && cch != 0 && \
            (flags & (STRSAFE_NO_TRUNCATION | STRSAFE_FILL_ON_FAILURE | STRSAFE_NULL_ON_FAILURE))) \
            WfpStrExOnFailure##SUF(d, cch, orig, &end, &rem, flags); \
        if (NT_SUCCESS(st) || st == STATUS_BUFFER_OVERFLOW) { \
            if (pend) *pend = end; \
            if (prem) *prem = rem; \
        } \
        return st; \
    } \
    /* Nothing fits (cch or room 0): overflow only when there was something to write. */ \
    FORCEINLINE NTSTATUS WfpStrExNoRoom##SUF(const CH *d, int more) \
    { \
        return !more ? STATUS_SUCCESS : d == NULL ? STATUS_INVALID_PARAMETER : STATUS_BUFFER_OVERFLOW; \
    } \
    FORCEINLINE NTSTATUS RtlStringCchCopyNEx##SUF(CH *d, size_t cch, const CH *src, size_t n, CH **pend, \
                                                  size_t *prem, DWORD flags) \
    { \
        const CH empty[1] = { 0 }; \
        NTSTATUS st = WfpStrExValidate##SUF(d, cch, flags); \
        if (!NT_SUCCESS(st)) return st; \
        CH *end = d; \
        size_t rem = cch, copied = 0; \
        const CH *s = WfpStrExSource##SUF(src, flags, empty); \
        if (s == NULL || (flags & ~STRSAFE_VALID_FLAGS) || n > NTSTRSAFE_MAX_CCH) { \
            st = STATUS_INVALID_PARAMETER; \
            if (cch != 0) d[0] = 0; \
        } else if (cch == 0) { \
            st = WfpStrExNoRoom##SUF(d, n != 0 && s[0] != 0); \
        } else { \
            st = WfpStrCopyCount##SUF(d, cch, s, n, &copied); \
            end = d + copied; \
            rem = cch - copied; \
        } \
        return WfpStrExFinish##SUF(st, d, cch, 0, end, rem, pend, prem, flags); \
    } \
    FORCEINLINE NTSTATUS RtlStringCchCopyEx##SUF(CH *d, size_t cch, const CH *s, CH **pend, size_t *prem, DWORD flags) \
    { \
        return RtlStringCchCopyNEx##SUF(d, cch, s, NTSTRSAFE_MAX_CCH, pend, prem, flags); \
    } \
    FORCEINLINE NTSTATUS RtlStringCchCatNEx##SUF(CH *d, size_t cch, const CH *src, size_t n, CH **pend, \
                                                 size_t *prem, DWORD flags) \
    { \
        const CH empty[1] = { 0 }; \
        size_t used = 0, copied = 0; \
        NTSTATUS st = WfpStrExValidate##SUF(d, cch, flags); \
        if (NT_SUCCESS(st) && cch != 0) st = RtlStringCchLength##SUF(d, cch, &used); \
        if (!NT_SUCCESS(st)) return st; \
        CH *end = d + used; \
        size_t rem = cch - used; \
        const CH *s = WfpStrExSource##SUF(src, flags, empty); \
        if (s == NULL || (flags & ~STRSAFE_VALID_FLAGS) || n > NTSTRSAFE_MAX_CCH) { \
            st = STATUS_INVALID_PARAMETER; \
        } else if (rem <= 1) { \
            st = WfpStrExNoRoom##SUF(d, n != 0 && s[0] != 0); \
        } else { \
            st = WfpStrCopyCount##SUF(end, rem, s, n, &copied); \
            end += copied; \
            rem -= copied; \
        } \
        return WfpStrExFinish##SUF(st, d, cch, used, end, rem, pend, prem, flags); \
    } \
    FORCEINLINE NTSTATUS RtlStringCchCatEx##SUF(CH *d, size_t cch, const CH *s, CH **pend, size_t *prem, DWORD flags) \
    { \
        return RtlStringCchCatNEx##SUF(d, cch, s, NTSTRSAFE_MAX_CCH, pend, prem, flags); \
    } \
    FORCEINLINE NTSTATUS RtlStringCchVPrintfEx##SUF(CH *d, size_t cch, CH **pend, size_t *prem, DWORD flags, \
                                                    const CH *format, va_list ap) \
    { \
        const CH empty[1] = { 0 }; \
        NTSTATUS st = WfpStrExValidate##SUF(d, cch, flags); \
        if (!NT_SUCCESS(st)) return st; \
        CH *end = d; \
        size_t rem = cch; \
        const CH *fmt = WfpStrExSource##SUF(format, flags, empty); \
        if (fmt == NULL || (flags & ~STRSAFE_VALID_FLAGS)) { \
            st = STATUS_INVALID_PARAMETER; \
            if (cch != 0) d[0] = 0; \
        } else if (cch == 0) { \
            st = WfpStrExNoRoom##SUF(d, fmt[0] != 0); \
        } else { \
            WFP_FMT_SINK sink = { d, cch, 0, 0, WIDE, NULL, 0 }; \
            WfpFmtV(&sink, fmt, WIDE, ap); \
            st = sink.needed > sink.len ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS; \
            end = d + sink.len; \
            rem = cch - sink.len; \
        } \
        return WfpStrExFinish##SUF(st, d, cch, 0, end, rem, pend, prem, flags); \
    } \
    static inline __attribute__((unused)) NTSTATUS RtlStringCchPrintfEx##SUF(CH *d, size_t cch, CH **pend, \
        size_t *prem, DWORD flags, const CH *fmt, ...) \
    { \
        va_list ap; \
        va_start(ap, fmt); \
        NTSTATUS st = RtlStringCchVPrintfEx##SUF(d, cch, pend, prem, flags, fmt, ap); \
        va_end(ap); \
        return st; \
    } \
    /* Byte-count forms: the remaining space back in bytes. */ \
    FORCEINLINE NTSTATUS WfpStrCbRemaining##SUF(NTSTATUS st, size_t cb, size_t rem, size_t *prem) \
    { \
        if (prem && (NT_SUCCESS(st) || st == STATUS_BUFFER_OVERFLOW)) *prem = rem * sizeof(CH) + cb % sizeof(CH); \
        return st; \
    } \
    FORCEINLINE NTSTATUS RtlStringCbCopyEx##SUF(CH *d, size_t cb, const CH *s, CH **pend, size_t *prem, DWORD flags) \
    { \
        size_t rem = 0; \
        NTSTATUS st = RtlStringCchCopyEx##SUF(d, cb / sizeof(CH), s, pend, &rem, flags); \
        return WfpStrCbRemaining##SUF(st, cb, rem, prem); \
    } \
    FORCEINLINE NTSTATUS RtlStringCbCopyNEx##SUF(CH *d, size_t cb, const CH *s, size_t cbSrc, CH **pend, \
                                                 size_t *prem, DWORD flags) \
    { \
        size_t rem = 0; \
        NTSTATUS st = RtlStringCchCopyNEx##SUF(d, cb / sizeof(CH), s, cbSrc / sizeof(CH), pend, &rem, flags); \
        return WfpStrCbRemaining##SUF(st, cb, rem, prem); \
    } \
    FORCEINLINE NTSTATUS RtlStringCbCatEx##SUF(CH *d, size_t cb, const CH *s, CH **pend, size_t *prem, DWORD flags) \
    { \
        size_t rem = 0; \
        NTSTATUS st = RtlStringCchCatEx##SUF(d, cb / sizeof(CH), s, pend, &rem, flags); \
        return WfpStrCbRemaining##SUF(st, cb, rem, prem); \
    } \
    FORCEINLINE NTSTATUS RtlStringCbCatNEx##SUF(CH *d, size_t cb, const CH *s, size_t cbSrc, CH **pend, \
                                                size_t *prem, DWORD flags) \
    { \
        size_t rem = 0; \
        NTSTATUS st = RtlStringCchCatNEx##SUF(d, cb / sizeof(CH), s, cbSrc / sizeof(CH), pend, &rem, flags); \
        return WfpStrCbRemaining##SUF(st, cb, rem, prem); \
    } \
    FORCEINLINE NTSTATUS RtlStringCbVPrintfEx##SUF(CH *d, size_t cb, CH **pend, size_t *prem, DWORD flags, \
                                                   const CH *fmt, va_list ap) \
    { \
        size_t rem = 0; \
        NTSTATUS st = RtlStringCchVPrintfEx##SUF(d, cb / sizeof(CH), pend, &rem, flags, fmt, ap); \
        return WfpStrCbRemaining##SUF(st, cb, rem, prem); \
    } \
    static inline __attribute__((unused)) NTSTATUS RtlStringCbPrintfEx##SUF(CH *d, size_t cb, CH **pend, \
        size_t *prem, DWORD flags, const CH *fmt, ...) \
    { \
        va_list ap; \
        va_start(ap, fmt); \
        NTSTATUS st = RtlStringCbVPrintfEx##SUF(d, cb, pend, prem, flags, fmt, ap); \
        va_end(ap); \
        return st; \
    }

WFP_BEGIN_DECLS
WFP_STRSAFE_FAMILY(A, CHAR, 0)
WFP_STRSAFE_FAMILY(W, WCHAR, 1)
WFP_STRSAFE_EX_FAMILY(A, CHAR, 0)
WFP_STRSAFE_EX_FAMILY(W, WCHAR, 1)

/* UNICODE_STRING forms (ntstrsafe.h, wdk-runtime.md §5): counted, never NUL-terminated by these
 * functions; Length/MaximumLength in bytes. A string is valid when both counts are even, Length <=
 * MaximumLength <= NTSTRSAFE_UNICODE_STRING_MAX_CCH characters and Buffer is non-NULL unless
 * MaximumLength is 0; an invalid one is STATUS_INVALID_PARAMETER. Truncation keeps what fits and
 * returns STATUS_BUFFER_OVERFLOW. */
FORCEINLINE BOOLEAN WfpUStrValid(PCUNICODE_STRING u)
{
    return (BOOLEAN)(u != NULL && !(u->Length & 1) && !(u->MaximumLength & 1) && u->Length <= u->MaximumLength &&
                     u->MaximumLength <= NTSTRSAFE_UNICODE_STRING_MAX_CCH * sizeof(WCHAR) &&
                     (u->Buffer != NULL || u->MaximumLength == 0));
}
/* A NUL-terminated source's length, refused above NTSTRSAFE_UNICODE_STRING_MAX_CCH characters. */
FORCEINLINE NTSTATUS WfpUStrSourceLen(NTSTRSAFE_PCWSTR s, size_t *n)
{
    size_t k = 0;
    if (s == NULL) return STATUS_INVALID_PARAMETER;
    while (s[k]) {
        if (++k > NTSTRSAFE_UNICODE_STRING_MAX_CCH) return STATUS_INVALID_PARAMETER;
    }
    *n = k;
    return STATUS_SUCCESS;
}
FORCEINLINE NTSTATUS WfpUStrAppend(PUNICODE_STRING d, const WCHAR *s, size_t n)
{
    size_t room = (d->MaximumLength - d->Length) / sizeof(WCHAR), k = n < room ? n : room;
    if (k) memmove((PUCHAR)d->Buffer + d->Length, s, k * sizeof(WCHAR));
    d->Length = (USHORT)(d->Length + k * sizeof(WCHAR));
    return k < n ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
}
/* Points the string at Source (not copied): Length = its bytes, MaximumLength = Length + the NUL.
 * NULL Source: an empty string. Longer than NTSTRSAFE_UNICODE_STRING_MAX_CCH: invalid (zeroed). */
FORCEINLINE NTSTATUS RtlUnicodeStringInit(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s)
{
    size_t n = 0;
    if (d == NULL) return STATUS_INVALID_PARAMETER;
    d->Length = d->MaximumLength = 0;
    d->Buffer = NULL;
    if (s == NULL) return STATUS_SUCCESS;
    if (!NT_SUCCESS(WfpUStrSourceLen(s, &n))) return STATUS_INVALID_PARAMETER;
    d->Length = (USHORT)(n * sizeof(WCHAR));
    d->MaximumLength = (USHORT)(n < NTSTRSAFE_UNICODE_STRING_MAX_CCH ? d->Length + sizeof(WCHAR) : d->Length);
    d->Buffer = (PWCH)s;
    return STATUS_SUCCESS;
}
FORCEINLINE NTSTATUS RtlUnicodeStringValidate(PCUNICODE_STRING s)
{
    return WfpUStrValid(s) ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
}
FORCEINLINE NTSTATUS RtlUnicodeStringCopy(PUNICODE_STRING d, PCUNICODE_STRING s)
{
    if (!WfpUStrValid(d) || !WfpUStrValid(s)) return STATUS_INVALID_PARAMETER;
    d->Length = 0;
    return WfpUStrAppend(d, s->Buffer, s->Length / sizeof(WCHAR));
}
FORCEINLINE NTSTATUS RtlUnicodeStringCat(PUNICODE_STRING d, PCUNICODE_STRING s)
{
    if (!WfpUStrValid(d) || !WfpUStrValid(s)) return STATUS_INVALID_PARAMETER;
    return WfpUStrAppend(d, s->Buffer, s->Length / sizeof(WCHAR));
}
FORCEINLINE NTSTATUS RtlUnicodeStringCopyString(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s)
{
    size_t n = 0;
    if (!WfpUStrValid(d) || !NT_SUCCESS(WfpUStrSourceLen(s, &n))) return STATUS_INVALID_PARAMETER;
    d->Length = 0;
    return WfpUStrAppend(d, s, n);
}
FORCEINLINE NTSTATUS RtlUnicodeStringCatString(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s)
{
    size_t n = 0;
    if (!WfpUStrValid(d) || !NT_SUCCESS(WfpUStrSourceLen(s, &n))) return STATUS_INVALID_PARAMETER;
    return WfpUStrAppend(d, s, n);
}
/* Formats into the whole of MaximumLength (no terminator); Length = the characters written. */
FORCEINLINE NTSTATUS RtlUnicodeStringVPrintf(PUNICODE_STRING d, NTSTRSAFE_PCWSTR fmt, va_list ap)
{
    if (!WfpUStrValid(d) || fmt == NULL) return STATUS_INVALID_PARAMETER;
    WFP_FMT_SINK s = { d->Buffer, d->MaximumLength / sizeof(WCHAR) + 1, 0, 0, 1, NULL, 1 };
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

/* ---- UNICODE_STRING Ex and N forms (ntstrsafe.h; wdk-runtime.md §5) ----
 * Cch counts in characters, Cb in bytes (an odd byte count loses its last byte). The N forms copy
 * at most that many characters (a NUL-terminated source also stops at its NUL; more than
 * NTSTRSAFE_UNICODE_STRING_MAX_CCH: STATUS_INVALID_PARAMETER). The Ex forms take
 * RemainingString (on success or STATUS_BUFFER_OVERFLOW: Buffer just after the text, Length 0,
 * MaximumLength the unused bytes) and dwFlags: low byte = fill byte; STRSAFE_IGNORE_NULLS (a NULL
 * source, or source Buffer, is ""; a NULL destination is one of no room), STRSAFE_FILL_BEHIND
 * (success: fill the unused bytes), on failure STRSAFE_NO_TRUNCATION (Length stays what it was:
 * 0 for Copy/Printf, the original for Cat; no partial copy), STRSAFE_FILL_ON_FAILURE (fill the
 * whole buffer; Length = MaximumLength, or 0 with fill byte 0), STRSAFE_ZERO_LENGTH_ON_FAILURE
 * (Length 0). Other flag bits: STATUS_INVALID_PARAMETER, nothing changed. */
#define WFP_USTR_NO_LIMIT ((size_t)-1)
/* The flags of a UNICODE_STRING Ex call applied to the outcome: `keep` characters were there
 * before (Cat), `len` are there now, `st` is the outcome so far. */
FORCEINLINE NTSTATUS WfpUStrExFinish(PUNICODE_STRING d, size_t keep, size_t len, NTSTATUS st,
                                     PUNICODE_STRING rem, DWORD flags)
{
    size_t cap = d ? d->MaximumLength / sizeof(WCHAR) : 0;
    int fill = WFP_STRSAFE_FILL(flags);
    if (NT_SUCCESS(st) && (flags & STRSAFE_FILL_BEHIND) && len < cap)
        memset(d->Buffer + len, fill, (cap - len) * sizeof(WCHAR));
    if (!NT_SUCCESS(st) && cap != 0) {
        if (flags & STRSAFE_NO_TRUNCATION) len = keep;
        if (flags & STRSAFE_FILL_ON_FAILURE) {
            memset(d->Buffer, fill, cap * sizeof(WCHAR));
            len = fill ? cap : 0;
        }
        if (flags & STRSAFE_ZERO_LENGTH_ON_FAILURE) len = 0;
    }
    if (NT_SUCCESS(st) || st == STATUS_BUFFER_OVERFLOW) {
        if (d) d->Length = (USHORT)(len * sizeof(WCHAR));
        if (rem) {
            rem->Length = 0;
            rem->MaximumLength = (USHORT)((cap - len) * sizeof(WCHAR));
            rem->Buffer = d ? d->Buffer + len : NULL;
        }
    }
    return st;
}
/* The destination of an Ex call: valid, or NULL with STRSAFE_IGNORE_NULLS; valid flags. */
FORCEINLINE BOOLEAN WfpUStrExDest(PCUNICODE_STRING d, DWORD flags)
{
    if (flags & ~STRSAFE_VALID_FLAGS) return FALSE;
    return (BOOLEAN)(d == NULL ? (flags & STRSAFE_IGNORE_NULLS) != 0 : WfpUStrValid(d));
}
/* Copies (keep 0) or appends (keep = the destination's length) n characters of s. */
FORCEINLINE NTSTATUS WfpUStrExPut(PUNICODE_STRING d, BOOLEAN cat, const WCHAR *s, size_t n,
                                  PUNICODE_STRING rem, DWORD flags)
{
    size_t cap = d ? d->MaximumLength / sizeof(WCHAR) : 0;
    size_t keep = (cat && d) ? d->Length / sizeof(WCHAR) : 0;
    size_t k = n < cap - keep ? n : cap - keep;
    NTSTATUS st = k < n ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
    if (st == STATUS_BUFFER_OVERFLOW && (flags & STRSAFE_NO_TRUNCATION)) k = 0;
    if (k) memmove(d->Buffer + keep, s, k * sizeof(WCHAR));
    return WfpUStrExFinish(d, keep, keep + k, st, rem, flags);
}
/* A counted source, at most max characters: its characters, or NULL when invalid. */
FORCEINLINE const WCHAR *WfpUStrExCounted(PCUNICODE_STRING s, size_t max, DWORD flags, size_t *n)
{
    static const WCHAR empty[1] = { 0 };
    *n = 0;
    if (max != WFP_USTR_NO_LIMIT && max > NTSTRSAFE_UNICODE_STRING_MAX_CCH) return NULL;
    if (s == NULL) return (flags & STRSAFE_IGNORE_NULLS) ? empty : NULL;
    if (s->Buffer == NULL && (flags & STRSAFE_IGNORE_NULLS)) return empty;
    if (!WfpUStrValid(s)) return NULL;
    *n = s->Length / sizeof(WCHAR);
    if (*n > max) *n = max;
    return s->Buffer ? s->Buffer : empty;
}
/* A NUL-terminated source, at most max characters. */
FORCEINLINE const WCHAR *WfpUStrExString(NTSTRSAFE_PCWSTR s, size_t max, DWORD flags, size_t *n)
{
    static const WCHAR empty[1] = { 0 };
    size_t k = 0;
    *n = 0;
    if (max != WFP_USTR_NO_LIMIT && max > NTSTRSAFE_UNICODE_STRING_MAX_CCH) return NULL;
    if (s == NULL) return (flags & STRSAFE_IGNORE_NULLS) ? empty : NULL;
    while (k < max && s[k]) {
        if (++k > NTSTRSAFE_UNICODE_STRING_MAX_CCH) return NULL;
    }
    *n = k;
    return s;
}
FORCEINLINE NTSTATUS WfpUStrExCountedOp(PUNICODE_STRING d, BOOLEAN cat, PCUNICODE_STRING src, size_t max,
                                        PUNICODE_STRING rem, DWORD flags)
{
    size_t n;
    const WCHAR *s;
    if (!WfpUStrExDest(d, flags)) return STATUS_INVALID_PARAMETER;
    s = WfpUStrExCounted(src, max, flags, &n);
    if (s == NULL) return WfpUStrExFinish(d, cat && d ? d->Length / sizeof(WCHAR) : 0, 0, STATUS_INVALID_PARAMETER, rem, flags);
    return WfpUStrExPut(d, cat, s, n, rem, flags);
}
FORCEINLINE NTSTATUS WfpUStrExStringOp(PUNICODE_STRING d, BOOLEAN cat, NTSTRSAFE_PCWSTR src, size_t max,
                                       PUNICODE_STRING rem, DWORD flags)
{
    size_t n;
    const WCHAR *s;
    if (!WfpUStrExDest(d, flags)) return STATUS_INVALID_PARAMETER;
    s = WfpUStrExString(src, max, flags, &n);
    if (s == NULL) return WfpUStrExFinish(d, cat && d ? d->Length / sizeof(WCHAR) : 0, 0, STATUS_INVALID_PARAMETER, rem, flags);
    return WfpUStrExPut(d, cat, s, n, rem, flags);
}
/* Only STRSAFE_IGNORE_NULLS is allowed; Init accepts a NULL source anyway. */
FORCEINLINE NTSTATUS RtlUnicodeStringInitEx(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s, DWORD flags)
{
    if (flags & ~STRSAFE_IGNORE_NULLS) return STATUS_INVALID_PARAMETER;
    return RtlUnicodeStringInit(d, s);
}
FORCEINLINE NTSTATUS RtlUnicodeStringValidateEx(PCUNICODE_STRING s, DWORD flags)
{
    if (flags & ~STRSAFE_IGNORE_NULLS) return STATUS_INVALID_PARAMETER;
    if (s == NULL && (flags & STRSAFE_IGNORE_NULLS)) return STATUS_SUCCESS;
    return RtlUnicodeStringValidate(s);
}
#define WFP_USTR_CB(n) ((n) == WFP_USTR_NO_LIMIT ? (n) : (n) / sizeof(WCHAR))
FORCEINLINE NTSTATUS RtlUnicodeStringCopyEx(PUNICODE_STRING d, PCUNICODE_STRING s, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExCountedOp(d, FALSE, s, WFP_USTR_NO_LIMIT, rem, flags); }
FORCEINLINE NTSTATUS RtlUnicodeStringCatEx(PUNICODE_STRING d, PCUNICODE_STRING s, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExCountedOp(d, TRUE, s, WFP_USTR_NO_LIMIT, rem, flags); }
FORCEINLINE NTSTATUS RtlUnicodeStringCopyStringEx(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExStringOp(d, FALSE, s, WFP_USTR_NO_LIMIT, rem, flags); }
FORCEINLINE NTSTATUS RtlUnicodeStringCatStringEx(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExStringOp(d, TRUE, s, WFP_USTR_NO_LIMIT, rem, flags); }
FORCEINLINE NTSTATUS RtlUnicodeStringCchCopyN(PUNICODE_STRING d, PCUNICODE_STRING s, size_t n)
{ return WfpUStrExCountedOp(d, FALSE, s, n, NULL, 0); }
FORCEINLINE NTSTATUS RtlUnicodeStringCbCopyN(PUNICODE_STRING d, PCUNICODE_STRING s, size_t cb)
{ return WfpUStrExCountedOp(d, FALSE, s, WFP_USTR_CB(cb), NULL, 0); }
FORCEINLINE NTSTATUS RtlUnicodeStringCchCatN(PUNICODE_STRING d, PCUNICODE_STRING s, size_t n)
{ return WfpUStrExCountedOp(d, TRUE, s, n, NULL, 0); }
FORCEINLINE NTSTATUS RtlUnicodeStringCbCatN(PUNICODE_STRING d, PCUNICODE_STRING s, size_t cb)
{ return WfpUStrExCountedOp(d, TRUE, s, WFP_USTR_CB(cb), NULL, 0); }
FORCEINLINE NTSTATUS RtlUnicodeStringCchCopyStringN(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s, size_t n)
{ return WfpUStrExStringOp(d, FALSE, s, n, NULL, 0); }
FORCEINLINE NTSTATUS RtlUnicodeStringCbCopyStringN(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s, size_t cb)
{ return WfpUStrExStringOp(d, FALSE, s, WFP_USTR_CB(cb), NULL, 0); }
FORCEINLINE NTSTATUS RtlUnicodeStringCchCatStringN(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s, size_t n)
{ return WfpUStrExStringOp(d, TRUE, s, n, NULL, 0); }
FORCEINLINE NTSTATUS RtlUnicodeStringCbCatStringN(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s, size_t cb)
{ return WfpUStrExStringOp(d, TRUE, s, WFP_USTR_CB(cb), NULL, 0); }
FORCEINLINE NTSTATUS RtlUnicodeStringCchCopyNEx(PUNICODE_STRING d, PCUNICODE_STRING s, size_t n, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExCountedOp(d, FALSE, s, n, rem, flags); }
FORCEINLINE NTSTATUS RtlUnicodeStringCbCopyNEx(PUNICODE_STRING d, PCUNICODE_STRING s, size_t cb, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExCountedOp(d, FALSE, s, WFP_USTR_CB(cb), rem, flags); }
FORCEINLINE NTSTATUS RtlUnicodeStringCchCatNEx(PUNICODE_STRING d, PCUNICODE_STRING s, size_t n, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExCountedOp(d, TRUE, s, n, rem, flags); }
FORCEINLINE NTSTATUS RtlUnicodeStringCbCatNEx(PUNICODE_STRING d, PCUNICODE_STRING s, size_t cb, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExCountedOp(d, TRUE, s, WFP_USTR_CB(cb), rem, flags); }
FORCEINLINE NTSTATUS RtlUnicodeStringCchCopyStringNEx(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s, size_t n, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExStringOp(d, FALSE, s, n, rem, flags); }
FORCEINLINE NTSTATUS RtlUnicodeStringCbCopyStringNEx(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s, size_t cb, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExStringOp(d, FALSE, s, WFP_USTR_CB(cb), rem, flags); }
FORCEINLINE NTSTATUS RtlUnicodeStringCchCatStringNEx(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s, size_t n, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExStringOp(d, TRUE, s, n, rem, flags); }
FORCEINLINE NTSTATUS RtlUnicodeStringCbCatStringNEx(PUNICODE_STRING d, NTSTRSAFE_PCWSTR s, size_t cb, PUNICODE_STRING rem, DWORD flags)
{ return WfpUStrExStringOp(d, TRUE, s, WFP_USTR_CB(cb), rem, flags); }
/* Formats into the whole of MaximumLength (no terminator), as RtlUnicodeStringVPrintf. */
FORCEINLINE NTSTATUS RtlUnicodeStringVPrintfEx(PUNICODE_STRING d, PUNICODE_STRING rem, DWORD flags,
                                               NTSTRSAFE_PCWSTR fmt, va_list ap)
{
    static const WCHAR empty[1] = { 0 };
    size_t cap;
    if (!WfpUStrExDest(d, flags)) return STATUS_INVALID_PARAMETER;
    if (fmt == NULL && (flags & STRSAFE_IGNORE_NULLS)) fmt = empty;
    if (fmt == NULL) return WfpUStrExFinish(d, 0, 0, STATUS_INVALID_PARAMETER, rem, flags);
    cap = d ? d->MaximumLength / sizeof(WCHAR) : 0;
    WFP_FMT_SINK s = { d ? d->Buffer : NULL, cap + 1, 0, 0, 1, NULL, 1 };
    WfpFmtV(&s, fmt, 1, ap);
    if (s.needed > s.len && (flags & STRSAFE_NO_TRUNCATION)) s.len = 0;
    return WfpUStrExFinish(d, 0, s.len, s.needed > s.len ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS, rem, flags);
}
static inline __attribute__((unused)) NTSTATUS RtlUnicodeStringPrintfEx(PUNICODE_STRING d, PUNICODE_STRING rem,
                                                                        DWORD flags, NTSTRSAFE_PCWSTR fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    NTSTATUS st = RtlUnicodeStringVPrintfEx(d, rem, flags, fmt, ap);
    va_end(ap);
    return st;
}
WFP_END_DECLS
#endif
