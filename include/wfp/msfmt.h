/* wfp-ddk: printf with Microsoft's rules (wdk-runtime.md §10), used by DbgPrint/KdPrint and the
 * RtlString*Printf functions: %l is 32-bit, %ll/%I64 64-bit, %I pointer-sized, %h narrow; in narrow
 * output %s is char* and %S/%ws/%ls WCHAR* (UTF-16, written as UTF-8); in wide output %s/%ws are
 * WCHAR* and %S/%hs char*; %Z is PANSI_STRING and %wZ PUNICODE_STRING (counted). Unknown conversions
 * are copied through. Header-only: it runs in the driver's own code. */
#ifndef WFP_DDK_MSFMT_H
#define WFP_DDK_MSFMT_H
#include "wdkbase.h"

/* Where a WPP trace message was written (%!FUNC! %!FILE! %!LINE! %!LEVEL!); NULL elsewhere. */
typedef struct _WFP_WPP_SITE {
    const char *func;
    const char *file;
    int line;
    int level;
} WFP_WPP_SITE;

typedef struct _WFP_FMT_SINK {
    void *buf;        /* CHAR* or WCHAR* */
    SIZE_T cap;       /* elements, including the terminator */
    SIZE_T len;       /* elements written (excluding the terminator) */
    SIZE_T needed;    /* elements the whole output needs */
    int wide;
    const WFP_WPP_SITE *site;
    int counted;      /* 1: a counted string (UNICODE_STRING): no terminator is written */
} WFP_FMT_SINK;

static inline void WfpFmtUnit(WFP_FMT_SINK *s, unsigned u)
{
    if (s->len + 1 < s->cap) {
        if (s->wide) ((WCHAR *)s->buf)[s->len] = (WCHAR)u;
        else ((CHAR *)s->buf)[s->len] = (CHAR)u;
        s->len++;
    }
    s->needed++;
}
/* One code point: UTF-16 into wide sinks, UTF-8 into narrow ones. */
static inline void WfpFmtPut(WFP_FMT_SINK *s, unsigned cp)
{
    if (s->wide) {
        if (cp >= 0x10000) {
            cp -= 0x10000;
            WfpFmtUnit(s, 0xD800 + (cp >> 10));
            WfpFmtUnit(s, 0xDC00 + (cp & 0x3FF));
        } else WfpFmtUnit(s, cp);
    } else if (cp < 0x80) WfpFmtUnit(s, cp);
    else if (cp < 0x800) { WfpFmtUnit(s, 0xC0 | (cp >> 6)); WfpFmtUnit(s, 0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
        WfpFmtUnit(s, 0xE0 | (cp >> 12)); WfpFmtUnit(s, 0x80 | ((cp >> 6) & 0x3F)); WfpFmtUnit(s, 0x80 | (cp & 0x3F));
    } else {
        WfpFmtUnit(s, 0xF0 | (cp >> 18)); WfpFmtUnit(s, 0x80 | ((cp >> 12) & 0x3F));
        WfpFmtUnit(s, 0x80 | ((cp >> 6) & 0x3F)); WfpFmtUnit(s, 0x80 | (cp & 0x3F));
    }
}
static inline void WfpFmtPad(WFP_FMT_SINK *s, int n, unsigned c) { while (n-- > 0) WfpFmtPut(s, c); }

/* Counted narrow (bytes, taken as Latin-1/ASCII) or wide (UTF-16) text with width/precision. */
static inline void WfpFmtText(WFP_FMT_SINK *s, const void *p, int wide, SIZE_T count, int width, int prec, int left)
{
    SIZE_T n = 0;
    if (p == NULL) { p = "(null)"; wide = 0; count = 6; }
    if (count == (SIZE_T)-1) {
        if (wide) { while (((const WCHAR *)p)[n] && (prec < 0 || n < (SIZE_T)prec)) n++; }
        else { while (((const CHAR *)p)[n] && (prec < 0 || n < (SIZE_T)prec)) n++; }
    } else n = (prec >= 0 && (SIZE_T)prec < count) ? (SIZE_T)prec : count;
    if (!left) WfpFmtPad(s, width - (int)n, ' ');
    for (SIZE_T i = 0; i < n; i++) {
        unsigned cp = wide ? ((const WCHAR *)p)[i] : (unsigned char)((const CHAR *)p)[i];
        if (wide && cp >= 0xD800 && cp < 0xDC00 && i + 1 < n) {
            unsigned lo = ((const WCHAR *)p)[i + 1];
            if (lo >= 0xDC00 && lo < 0xE000) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); i++; }
        }
        WfpFmtPut(s, cp);
    }
    if (left) WfpFmtPad(s, width - (int)n, ' ');
}

static inline void WfpFmtNumber(WFP_FMT_SINK *s, ULONGLONG v, int neg, unsigned base, int upper,
                                int width, int prec, int left, int zero, int plus, int space, int alt)
{
    char digits[32];
    int n = 0;
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do { digits[n++] = set[v % base]; v /= base; } while (v && n < 32);
    if (prec == 0 && n == 1 && digits[0] == '0') n = 0;
    int zeros = prec > n ? prec - n : 0;
    const char *prefix = neg ? "-" : plus ? "+" : space ? " " : "";
    if (alt && base == 16 && n) prefix = upper ? "0X" : "0x";
    if (alt && base == 8 && zeros == 0) zeros = 1;
    int total = (int)strlen(prefix) + zeros + n;
    if (zero && !left && prec < 0) { zeros += width - total; total = width; }
    if (!left) WfpFmtPad(s, width - total, ' ');
    for (const char *p = prefix; *p; p++) WfpFmtPut(s, (unsigned char)*p);
    WfpFmtPad(s, zeros, '0');
    while (n) WfpFmtPut(s, (unsigned char)digits[--n]);
    if (left) WfpFmtPad(s, width - total, ' ');
}

static inline void WfpFmtAscii(WFP_FMT_SINK *s, const char *t) { while (t && *t) WfpFmtPut(s, (unsigned char)*t++); }
static inline int WfpFmtIs(const char *a, const char *b) { return strcmp(a, b) == 0; }

/* fmt is CHAR* (wide_fmt 0) or WCHAR* (wide_fmt 1); output goes to the sink. WPP's extended
 * %!NAME! conversions (wdk-runtime.md §9) are understood: FUNC FILE LINE LEVEL (from the sink's
 * site), STATUS/HRESULT/WINERROR (32-bit, hex), GUID/CLSID/IID/LIBID (GUID*), IPADDR (32-bit,
 * network order), PORT (16-bit, network order), bool/BOOLEAN, irql, the 64-bit time types, and any
 * other name (a CUSTOM_TYPE enum) as a 32-bit number. */
static inline void WfpFmtV(WFP_FMT_SINK *s, const void *fmt, int wide_fmt, va_list ap)
{
    SIZE_T i = 0;
#define WFP_FC(k) (wide_fmt ? (unsigned)((const WCHAR *)fmt)[k] : (unsigned)(unsigned char)((const CHAR *)fmt)[k])
    for (;;) {
        unsigned c = WFP_FC(i);
        if (c == 0) break;
        if (c != '%') { WfpFmtPut(s, c); i++; continue; }
        SIZE_T start = i++;
        if (WFP_FC(i) == '!') {
            char name[24];
            int n = 0;
            i++;
            while (WFP_FC(i) && WFP_FC(i) != '!' && n < 23) name[n++] = (char)WFP_FC(i++);
            name[n] = 0;
            if (WFP_FC(i) != '!') {
                /* Not a %!NAME! conversion: copy it through, consume nothing. */
                for (SIZE_T k = start; k < i; k++) WfpFmtPut(s, WFP_FC(k));
                continue;
            }
            i++;
            const WFP_WPP_SITE *site = s->site;
            if (WfpFmtIs(name, "FUNC")) WfpFmtAscii(s, site ? site->func : "");
            else if (WfpFmtIs(name, "FILE")) WfpFmtAscii(s, site ? site->file : "");
            else if (WfpFmtIs(name, "LINE")) WfpFmtNumber(s, site ? (ULONGLONG)site->line : 0, 0, 10, 0, 0, -1, 0, 0, 0, 0, 0);
            else if (WfpFmtIs(name, "LEVEL")) WfpFmtNumber(s, site ? (ULONGLONG)site->level : 0, 0, 10, 0, 0, -1, 0, 0, 0, 0, 0);
            else if (WfpFmtIs(name, "SPACE")) WfpFmtPut(s, ' ');
            else if (WfpFmtIs(name, "FLAGS") || WfpFmtIs(name, "COMPNAME") || WfpFmtIs(name, "STDPREFIX")) {}
            else if (WfpFmtIs(name, "STATUS") || WfpFmtIs(name, "HRESULT") || WfpFmtIs(name, "WINERROR")) {
                unsigned v = va_arg(ap, unsigned);
                if (v == 0) WfpFmtAscii(s, name[0] == 'S' ? "STATUS_SUCCESS" : name[0] == 'H' ? "S_OK" : "ERROR_SUCCESS");
                else { WfpFmtAscii(s, "0x"); WfpFmtNumber(s, v, 0, 16, 0, 8, -1, 0, 1, 0, 0, 0); }
            } else if (WfpFmtIs(name, "GUID") || WfpFmtIs(name, "CLSID") || WfpFmtIs(name, "IID") || WfpFmtIs(name, "LIBID")) {
                const UCHAR *g = va_arg(ap, const UCHAR *);
                static const int order[16] = { 3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11 };
                if (!g) { WfpFmtAscii(s, "(null)"); continue; }
                WfpFmtPut(s, '{');
                for (int k = 0; k < 16; k++) {
                    if (order[k] < 0) { WfpFmtPut(s, '-'); continue; }
                    WfpFmtNumber(s, g[order[k]], 0, 16, 0, 2, -1, 0, 1, 0, 0, 0);
                }
                for (int k = 12; k < 16; k++) WfpFmtNumber(s, g[k], 0, 16, 0, 2, -1, 0, 1, 0, 0, 0);
                WfpFmtPut(s, '}');
            } else if (WfpFmtIs(name, "IPADDR")) {
                unsigned v = va_arg(ap, unsigned);
                const UCHAR *b = (const UCHAR *)&v;
                for (int k = 0; k < 4; k++) {
                    if (k) WfpFmtPut(s, '.');
                    WfpFmtNumber(s, b[k], 0, 10, 0, 0, -1, 0, 0, 0, 0, 0);
                }
            } else if (WfpFmtIs(name, "PORT")) {
                unsigned v = (unsigned)va_arg(ap, int) & 0xFFFF;
                WfpFmtNumber(s, ((v & 0xFF) << 8) | (v >> 8), 0, 10, 0, 0, -1, 0, 0, 0, 0, 0);
            } else if (WfpFmtIs(name, "bool") || WfpFmtIs(name, "BOOLEAN")) {
                WfpFmtAscii(s, va_arg(ap, int) ? "TRUE" : "FALSE");
            } else if (WfpFmtIs(name, "TIMESTAMP") || WfpFmtIs(name, "datetime") || WfpFmtIs(name, "TIME")
                       || WfpFmtIs(name, "delta") || WfpFmtIs(name, "WAITTIME") || WfpFmtIs(name, "due")) {
                long long v = va_arg(ap, long long);
                WfpFmtNumber(s, v < 0 ? 0ull - (ULONGLONG)v : (ULONGLONG)v, v < 0, 10, 0, 0, -1, 0, 0, 0, 0, 0);
            } else {
                WfpFmtNumber(s, (unsigned)va_arg(ap, int), 0, 10, 0, 0, -1, 0, 0, 0, 0, 0);
            }
            continue;
        }
        int left = 0, zero = 0, plus = 0, space = 0, alt = 0, width = 0, prec = -1;
        for (;; i++) {
            c = WFP_FC(i);
            if (c == '-') left = 1; else if (c == '0') zero = 1; else if (c == '+') plus = 1;
            else if (c == ' ') space = 1; else if (c == '#') alt = 1; else break;
        }
        if (WFP_FC(i) == '*') { width = va_arg(ap, int); if (width < 0) { left = 1; width = -width; } i++; }
        else while (WFP_FC(i) >= '0' && WFP_FC(i) <= '9') width = width * 10 + (int)(WFP_FC(i++) - '0');
        if (WFP_FC(i) == '.') {
            i++; prec = 0;
            if (WFP_FC(i) == '*') { prec = va_arg(ap, int); i++; }
            else while (WFP_FC(i) >= '0' && WFP_FC(i) <= '9') prec = prec * 10 + (int)(WFP_FC(i++) - '0');
        }
        /* size: 0 int, 1 long long, 2 pointer-sized, -1 short, -2 char; w/h mark wide/narrow text */
        int size = 0, wch = 0, hch = 0;
        for (;;) {
            c = WFP_FC(i);
            if (c == 'l' && WFP_FC(i + 1) == 'l') { size = 1; i += 2; }
            else if (c == 'l') { wch = 1; i++; }                 /* %ld is 32-bit; %ls is wide */
            else if (c == 'I' && WFP_FC(i + 1) == '6' && WFP_FC(i + 2) == '4') { size = 1; i += 3; }
            else if (c == 'I' && WFP_FC(i + 1) == '3' && WFP_FC(i + 2) == '2') { size = 0; i += 3; }
            else if (c == 'I' || c == 'z' || c == 't' || c == 'j') { size = 2; i++; }
            else if (c == 'h' && WFP_FC(i + 1) == 'h') { size = -2; i += 2; }
            else if (c == 'h') { size = -1; hch = 1; i++; }
            else if (c == 'w') { wch = 1; i++; }
            else break;
        }
        c = WFP_FC(i++);
        ULONGLONG u = 0;
        long long sv = 0;
        switch (c) {
        case 'd': case 'i':
            sv = size == 1 ? va_arg(ap, long long) : size == 2 ? (long long)va_arg(ap, ptrdiff_t) : (long long)va_arg(ap, int);
            if (size == -1) sv = (short)sv; else if (size == -2) sv = (signed char)sv;
            WfpFmtNumber(s, sv < 0 ? 0ull - (ULONGLONG)sv : (ULONGLONG)sv, sv < 0, 10, 0, width, prec, left, zero, plus, space, 0);
            break;
        case 'u': case 'x': case 'X': case 'o':
            u = size == 1 ? va_arg(ap, ULONGLONG) : size == 2 ? (ULONGLONG)va_arg(ap, size_t) : (ULONGLONG)va_arg(ap, unsigned);
            if (size == -1) u = (USHORT)u; else if (size == -2) u = (UCHAR)u;
            WfpFmtNumber(s, u, 0, c == 'u' ? 10 : c == 'o' ? 8 : 16, c == 'X', width, prec, left, zero, 0, 0, alt);
            break;
        case 'p':
            WfpFmtNumber(s, (ULONGLONG)(uintptr_t)va_arg(ap, void *), 0, 16, 1, 16, 16, 0, 0, 0, 0, 0);
            break;
        case 'c': case 'C': {
            unsigned ch = (unsigned)va_arg(ap, int);
            int wide_arg = wch || (c == 'c' ? s->wide && !hch : !s->wide && !hch);
            if (!wide_arg) ch &= 0xFF; else ch &= 0xFFFF;
            if (!left) WfpFmtPad(s, width - 1, ' ');
            WfpFmtPut(s, ch);
            if (left) WfpFmtPad(s, width - 1, ' ');
            break;
        }
        case 's': case 'S': {
            const void *p = va_arg(ap, const void *);
            int wide_arg = wch ? 1 : hch ? 0 : (c == 's') == (s->wide != 0);
            WfpFmtText(s, p, wide_arg, (SIZE_T)-1, width, prec, left);
            break;
        }
        case 'Z': {
            const void *p = va_arg(ap, const void *);
            if (p == NULL) { WfpFmtText(s, NULL, 0, 0, width, prec, left); break; }
            if (wch) { const UNICODE_STRING *us = (const UNICODE_STRING *)p; WfpFmtText(s, us->Buffer, 1, us->Buffer ? us->Length / 2u : 0, width, prec, left); }
            else { const ANSI_STRING *as = (const ANSI_STRING *)p; WfpFmtText(s, as->Buffer, 0, as->Buffer ? as->Length : 0, width, prec, left); }
            break;
        }
        case '%': WfpFmtPut(s, '%'); break;
        case 0: i--; /* fall through: a lone '%' at the end */
        default:
            for (SIZE_T k = start; k < i; k++) WfpFmtPut(s, WFP_FC(k));
            break;
        }
    }
#undef WFP_FC
    if (s->cap && !s->counted) {
        if (s->wide) ((WCHAR *)s->buf)[s->len] = 0;
        else ((CHAR *)s->buf)[s->len] = 0;
    }
}
#endif
