/* wfp-ddk intsafe.h: overflow-checked integer arithmetic and conversions (inline, header-only).
 * The user-mode names (ULongAdd, SizeTMult, ...) return HRESULT S_OK or
 * INTSAFE_E_ARITHMETIC_OVERFLOW; the kernel names of ntintsafe.h (RtlULongAdd, ...) return
 * STATUS_SUCCESS or STATUS_INTEGER_OVERFLOW (wdk-runtime.md §5). On overflow the result is the
 * type's *_ERROR value (all ones). */
#ifndef WFP_DDK_INTSAFE_H
#define WFP_DDK_INTSAFE_H
#include "wfp/wdkbase.h"

#ifndef S_OK
#define S_OK ((HRESULT)0L)
#endif
#define INTSAFE_E_ARITHMETIC_OVERFLOW ((HRESULT)0x80070216L)
#define BYTE_ERROR 0xffu
#define USHORT_ERROR 0xffffu
#define WORD_ERROR USHORT_ERROR
#define UINT_ERROR 0xffffffffu
#define ULONG_ERROR 0xffffffffu
#define DWORD_ERROR ULONG_ERROR
#define ULONGLONG_ERROR 0xffffffffffffffffull
#define SIZE_T_ERROR ((SIZE_T)-1)
#define LONG_ERROR (-1)
#define INT_ERROR (-1)

/* NAME(a, b, *out) for one type and operation, in both flavours. */
#define WFP_INTSAFE_OP(Name, T, Err, Builtin) \
    FORCEINLINE HRESULT Name(T a, T b, T *out) \
    { \
        T r; \
        if (Builtin(a, b, &r)) { *out = (T)(Err); return INTSAFE_E_ARITHMETIC_OVERFLOW; } \
        *out = r; \
        return S_OK; \
    } \
    FORCEINLINE NTSTATUS Rtl##Name(T a, T b, T *out) \
    { \
        return Name(a, b, out) == S_OK ? STATUS_SUCCESS : STATUS_INTEGER_OVERFLOW; \
    }
#define WFP_INTSAFE_OPS(Prefix, T, Err) \
    WFP_INTSAFE_OP(Prefix##Add, T, Err, __builtin_add_overflow) \
    WFP_INTSAFE_OP(Prefix##Sub, T, Err, __builtin_sub_overflow) \
    WFP_INTSAFE_OP(Prefix##Mult, T, Err, __builtin_mul_overflow)
WFP_INTSAFE_OPS(UShort, USHORT, USHORT_ERROR)
WFP_INTSAFE_OPS(Word, WORD, WORD_ERROR)
WFP_INTSAFE_OPS(UInt, UINT, UINT_ERROR)
WFP_INTSAFE_OPS(ULong, ULONG, ULONG_ERROR)
WFP_INTSAFE_OPS(DWord, DWORD, DWORD_ERROR)
WFP_INTSAFE_OPS(ULongLong, ULONGLONG, ULONGLONG_ERROR)
WFP_INTSAFE_OPS(SizeT, SIZE_T, SIZE_T_ERROR)
WFP_INTSAFE_OPS(ULongPtr, ULONG_PTR, SIZE_T_ERROR)
WFP_INTSAFE_OPS(Long, LONG, LONG_ERROR)
WFP_INTSAFE_OPS(Int, INT, INT_ERROR)
#define ULong64Add ULongLongAdd
#define ULong64Sub ULongLongSub
#define ULong64Mult ULongLongMult
#define RtlULong64Add RtlULongLongAdd
#define RtlULong64Sub RtlULongLongSub
#define RtlULong64Mult RtlULongLongMult
#define DWordPtrAdd ULongPtrAdd
#define RtlDWordPtrAdd RtlULongPtrAdd

/* Narrowing conversions: FROMToTO(value, *out). */
#define WFP_INTSAFE_CONV(Name, From, To, Err) \
    FORCEINLINE HRESULT Name(From v, To *out) \
    { \
        To r = (To)v; \
        if ((From)r != v || ((v < 0) != (r < 0))) { *out = (To)(Err); return INTSAFE_E_ARITHMETIC_OVERFLOW; } \
        *out = r; \
        return S_OK; \
    } \
    FORCEINLINE NTSTATUS Rtl##Name(From v, To *out) \
    { \
        return Name(v, out) == S_OK ? STATUS_SUCCESS : STATUS_INTEGER_OVERFLOW; \
    }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wsign-compare"
WFP_INTSAFE_CONV(ULongLongToULong, ULONGLONG, ULONG, ULONG_ERROR)
WFP_INTSAFE_CONV(ULongLongToUInt, ULONGLONG, UINT, UINT_ERROR)
WFP_INTSAFE_CONV(ULongLongToUShort, ULONGLONG, USHORT, USHORT_ERROR)
WFP_INTSAFE_CONV(ULongLongToSizeT, ULONGLONG, SIZE_T, SIZE_T_ERROR)
WFP_INTSAFE_CONV(SizeTToULong, SIZE_T, ULONG, ULONG_ERROR)
WFP_INTSAFE_CONV(SizeTToUShort, SIZE_T, USHORT, USHORT_ERROR)
WFP_INTSAFE_CONV(SizeTToUInt, SIZE_T, UINT, UINT_ERROR)
WFP_INTSAFE_CONV(ULongToUShort, ULONG, USHORT, USHORT_ERROR)
WFP_INTSAFE_CONV(ULongToUChar, ULONG, UCHAR, BYTE_ERROR)
WFP_INTSAFE_CONV(ULongToLong, ULONG, LONG, LONG_ERROR)
WFP_INTSAFE_CONV(LongToULong, LONG, ULONG, ULONG_ERROR)
WFP_INTSAFE_CONV(LongToUShort, LONG, USHORT, USHORT_ERROR)
WFP_INTSAFE_CONV(IntToUShort, INT, USHORT, USHORT_ERROR)
WFP_INTSAFE_CONV(LongLongToULong, LONGLONG, ULONG, ULONG_ERROR)
WFP_INTSAFE_CONV(ULongLongToULongPtr, ULONGLONG, ULONG_PTR, SIZE_T_ERROR)
WFP_INTSAFE_CONV(ULongPtrToULong, ULONG_PTR, ULONG, ULONG_ERROR)
WFP_INTSAFE_CONV(ULongPtrToUShort, ULONG_PTR, USHORT, USHORT_ERROR)
WFP_INTSAFE_CONV(ULongToInt, ULONG, INT, INT_ERROR)
WFP_INTSAFE_CONV(IntToULong, INT, ULONG, ULONG_ERROR)
WFP_INTSAFE_CONV(LongLongToLong, LONGLONG, LONG, LONG_ERROR)
WFP_INTSAFE_CONV(SizeTToInt, SIZE_T, INT, INT_ERROR)
#pragma GCC diagnostic pop
#define ULongLongToDWord ULongLongToULong
#define SizeTToDWord SizeTToULong
#define RtlULongLongToDWord RtlULongLongToULong
#define RtlSizeTToDWord RtlSizeTToULong
#define ULongLongToDWordPtr ULongLongToULongPtr
#define DWordPtrToDWord ULongPtrToULong
#define SizeTToULongPtr(v, out) ((*(out) = (ULONG_PTR)(v)), S_OK)
#endif
