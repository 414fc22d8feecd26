/* wfp-ddk: Windows data model, base types, status codes and base macros for WDK-style sources
 * compiled with GCC on Linux (wdk-runtime.md §1, §5, §10). Every header named as in the WDK
 * includes this one first. Build with the flags of `wfpctl driver build` (include/wfp-ddk.pc):
 * -fshort-wchar (WCHAR and L"" are 16-bit), -fno-strict-aliasing, -fwrapv. */
#ifndef WFP_DDK_WDKBASE_H
#define WFP_DDK_WDKBASE_H

#if !defined(__GNUC__)
#error "wfp-ddk headers need GCC or Clang"
#endif
#if !defined(__LP64__)
#error "wfp-ddk headers target 64-bit Linux (LP64): the Windows x64 layouts are pinned for it"
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include "sal.h"

/* The ASCII case-insensitive comparisons ntoskrnl exports (the C library's, in the C locale). */
#define _stricmp strcasecmp
#define _strnicmp strncasecmp

#ifndef NTDDI_VERSION
#define NTDDI_VERSION 0x0A00000C /* NTDDI_WIN10_NI, the WDK's default */
#endif
#define NTDDI_WIN7 0x06010000
#define NTDDI_WIN8 0x06020000
#define NTDDI_WINBLUE 0x06030000
#define NTDDI_WIN10 0x0A000000
#define NTDDI_WIN10_RS1 0x0A000002
#define NTDDI_WIN10_RS2 0x0A000003
#define NTDDI_WIN10_RS3 0x0A000004
#define NTDDI_WIN10_19H1 0x0A000007
#define NTDDI_WIN10_VB 0x0A000008
#define NTDDI_WIN10_CO 0x0A00000B
#define NTDDI_WIN10_NI 0x0A00000C

#ifdef __cplusplus
#define EXTERN_C extern "C"
#define WFP_BEGIN_DECLS extern "C" {
#define WFP_END_DECLS }
#define EXTERN_C_START extern "C" {
#define EXTERN_C_END }
/* Before a weak `const` definition in a header: C++ gives a namespace-scope const internal
 * linkage, which a weak symbol cannot have; `extern` keeps it external (C needs nothing). */
#define WFP_CXX_EXTERN extern
/* C++ (docs/c-abi.md "C++ drivers"): C11's _Static_assert is C++'s static_assert. */
#ifndef _Static_assert
#define _Static_assert static_assert
#endif
#else
#define EXTERN_C extern
#define WFP_BEGIN_DECLS
#define WFP_END_DECLS
#define EXTERN_C_START
#define EXTERN_C_END
#define WFP_CXX_EXTERN
#endif

/* Calling-convention and linkage decorations: empty on Linux (SysV ABI on both sides). */
#define NTAPI
#define NTAPI_INLINE
#define WINAPI
#define FASTCALL
#define __fastcall
#define __stdcall
#define __cdecl
#define NTKERNELAPI
#define NTSYSAPI
#define NTSYSCALLAPI
#define NDIS_EXPORTED_ROUTINE
#define WDFAPI
#define EXPORT
#define CALLBACK
#define DECLSPEC_IMPORT
#define DECLSPEC_EXPORT __attribute__((visibility("default")))
#define DECLSPEC_NORETURN __attribute__((noreturn))
#define DECLSPEC_NOINLINE __attribute__((noinline))
#define DECLSPEC_ALIGN(n) __attribute__((aligned(n)))
#ifdef __cplusplus
/* C++: a namespace-scope `const` has internal linkage, which a weak symbol cannot have; an inline
 * variable (C++17) has external linkage and COMDAT semantics, which is what selectany means. */
#define DECLSPEC_SELECTANY inline
#else
#define DECLSPEC_SELECTANY __attribute__((weak))
#endif
#define DECLSPEC_RESTRICT
#define DECLSPEC_NOTHROW
#define DECLSPEC_CACHEALIGN __attribute__((aligned(64)))
#define FORCEINLINE static inline __attribute__((always_inline))
#define __forceinline static inline __attribute__((always_inline))

/* Structured exception handling (wdk-runtime.md §10): GCC and Clang have none. A __try block runs
 * as ordinary code and the host raises no exceptions (a fault in a driver ends the host process;
 * ProbeForRead/ProbeForWrite report what Windows would raise as Verifier findings), so an __except
 * handler never runs and a __finally block runs after its __try block. Every __try warns at build
 * time so a driver that counts on catching a fault is noticed. `__leave` jumps to the end of the
 * innermost __try block (then, as with MSVC, its __finally block runs; an __except handler does
 * not): each __try opens a scope declaring a GNU local label (`__label__`) that its __except /
 * __finally places after the block, so `break` and `continue` inside the block keep meaning the
 * enclosing loop or switch, and nested __try blocks each have their own label. */
#ifdef __try
#undef __try
#endif
#define __try \
    _Pragma("GCC warning \"__try: no structured exception handling here; the block runs unguarded and its __except handler never runs\"") \
    if (1) { __label__ __wfp_seh_leave;
#define __WFP_SEH_END __wfp_seh_leave: __attribute__((unused)); }
#define __except(filter) __WFP_SEH_END else if (0)
#define __finally __WFP_SEH_END if (1)
#define __leave goto __wfp_seh_leave
#define GetExceptionCode() ((NTSTATUS)0)
#define GetExceptionInformation() ((void *)0)
#define EXCEPTION_EXECUTE_HANDLER 1
#define EXCEPTION_CONTINUE_SEARCH 0
#define EXCEPTION_CONTINUE_EXECUTION (-1)
/* MSVC emits an `__inline` function that is not inlined as a COMDAT: one copy per image even when
 * a header defining it is included by several .c files. Here: GNU89 inline semantics (each
 * translation unit emits the definition) and `wfpctl driver build` weakens the duplicates when it
 * links, so they merge like COMDATs; `static __inline` stays file-local. */
#ifdef __cplusplus
#define __inline inline /* C++ inline functions are COMDATs already */
#else
#define __inline inline __attribute__((__gnu_inline__))
#endif
/* `__declspec(x)` (wdk-runtime.md §10): selectany → weak, align(n) → aligned(n), noinline,
 * noreturn, thread → __thread; dllimport/dllexport, restrict, nothrow, novtable and others are
 * no-ops. An unknown specifier is a compile error naming __WFP_DECLSPEC_<x>. */
#define __declspec(x) __WFP_DECLSPEC_##x
#define __WFP_DECLSPEC_selectany DECLSPEC_SELECTANY
#define __WFP_DECLSPEC_align(n) __attribute__((aligned(n)))
#define __WFP_DECLSPEC_noinline __attribute__((noinline))
#define __WFP_DECLSPEC_noreturn __attribute__((noreturn))
#define __WFP_DECLSPEC_thread __thread
#define __WFP_DECLSPEC_deprecated __attribute__((deprecated))
#define __WFP_DECLSPEC_noalias
#define __WFP_DECLSPEC_dllimport
#define __WFP_DECLSPEC_dllexport
#define __WFP_DECLSPEC_restrict
#define __WFP_DECLSPEC_nothrow
#define __WFP_DECLSPEC_novtable
#define __WFP_DECLSPEC_allocator
#define __WFP_DECLSPEC_safebuffers
#define __WFP_DECLSPEC_code_seg(s)
#define __WFP_DECLSPEC_allocate(s)
#define CONST const
#define VOID void
#define UNICODE_NULL ((WCHAR)0)
#define ANSI_NULL ((CHAR)0)
#define UNICODE_STRING_MAX_BYTES ((USHORT)65534)
#define UNICODE_STRING_MAX_CHARS (32767)
#define DUMMYSTRUCTNAME
#define DUMMYSTRUCTNAME2
#define DUMMYUNIONNAME
#define DUMMYUNIONNAME2
#define MEMORY_ALLOCATION_ALIGNMENT 16
#define PAGE_SIZE 0x1000
#define ANYSIZE_ARRAY 1

/* ---- integer types: Windows LLP64 re-based on int (§1) ---- */
typedef char CHAR, CCHAR, *PCHAR, *PSTR, *LPSTR;
typedef const char *PCSTR, *LPCSTR, *PCSZ;
typedef unsigned char UCHAR, *PUCHAR, BYTE, *PBYTE;
typedef UCHAR BOOLEAN, *PBOOLEAN;
typedef short SHORT, CSHORT, *PSHORT;
typedef unsigned short USHORT, *PUSHORT, WORD;
#ifdef __cplusplus
/* C++: L"..." is const wchar_t[] (16-bit with -fshort-wchar), a type of its own, as on MSVC. */
typedef wchar_t WCHAR, *PWCHAR, *PWCH, *PWSTR, *LPWSTR, *NWPSTR;
typedef const wchar_t *PCWSTR, *LPCWSTR, *PCWCH;
#else
typedef unsigned short WCHAR, *PWCHAR, *PWCH, *PWSTR, *LPWSTR, *NWPSTR;
typedef const unsigned short *PCWSTR, *LPCWSTR, *PCWCH;
#endif
typedef int INT, *PINT, BOOL, LONG, *PLONG, NTSTATUS, *PNTSTATUS, KPRIORITY, NDIS_STATUS, *PNDIS_STATUS;
typedef unsigned int UINT, *PUINT, ULONG, *PULONG, DWORD, *PDWORD, ACCESS_MASK, DEVICE_TYPE;
typedef long long LONGLONG, *PLONGLONG, LONG64, *PLONG64, __int64;
typedef unsigned long long ULONGLONG, *PULONGLONG, ULONG64, *PULONG64, DWORD64;
typedef int __int32;
typedef short __int16;
typedef char __int8;
typedef signed char INT8, *PINT8;
typedef short INT16, *PINT16;
typedef int INT32, *PINT32;
typedef long long INT64, *PINT64;
typedef unsigned char UINT8, *PUINT8;
typedef unsigned short UINT16, *PUINT16;
typedef unsigned int UINT32, *PUINT32;
typedef unsigned long long UINT64, *PUINT64;
typedef size_t SIZE_T, *PSIZE_T;
typedef ptrdiff_t SSIZE_T;
typedef uintptr_t ULONG_PTR, *PULONG_PTR, UINT_PTR, DWORD_PTR, KAFFINITY, *PKAFFINITY;
typedef intptr_t LONG_PTR, *PLONG_PTR, INT_PTR;
typedef void *PVOID, *LPVOID, *HANDLE, **PHANDLE, *NDIS_HANDLE, **PNDIS_HANDLE;
typedef const void *PCVOID, *LPCVOID;
typedef ULONG_PTR KSPIN_LOCK, *PKSPIN_LOCK;
typedef UCHAR KIRQL, *PKIRQL;
typedef CCHAR KPROCESSOR_MODE;
typedef ULONG LOGICAL;
typedef USHORT ADDRESS_FAMILY;
typedef ULONG IF_INDEX, NET_IFINDEX;
typedef ULONG COMPARTMENT_ID, *PCOMPARTMENT_ID;
typedef LONG HRESULT;
typedef ULONG POOL_TAG;

_Static_assert(sizeof(ULONG) == 4, "ULONG must be 32-bit");
_Static_assert(sizeof(LONG) == 4, "LONG must be 32-bit");
_Static_assert(sizeof(BOOLEAN) == 1, "BOOLEAN must be 8-bit");
_Static_assert(sizeof(PVOID) == 8, "pointers must be 64-bit");
#if defined(__cplusplus)
static_assert(sizeof(wchar_t) == 2, "compile with -fshort-wchar: WCHAR and L\"\" must be 16-bit");
#else
_Static_assert(sizeof(L'x') == 2 || sizeof(L'x') == 4, "");
_Static_assert(sizeof(__WCHAR_TYPE__) == 2, "compile with -fshort-wchar: WCHAR and L\"\" must be 16-bit");
#endif

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif
#ifndef NULL
#define NULL ((void *)0)
#endif
#define MAXULONG 0xFFFFFFFFu
#define MAXUSHORT 0xFFFFu
#define MAXLONG 0x7FFFFFFF
#define MAXULONG64 0xFFFFFFFFFFFFFFFFull
#define MAXSIZE_T ((SIZE_T)~(SIZE_T)0)

/* ---- status codes (§1) ---- */
#define NT_SUCCESS(Status) (((NTSTATUS)(Status)) >= 0)
#define NT_INFORMATION(Status) ((((ULONG)(Status)) >> 30) == 1)
#define NT_WARNING(Status) ((((ULONG)(Status)) >> 30) == 2)
#define NT_ERROR(Status) ((((ULONG)(Status)) >> 30) == 3)
#define STATUS_SUCCESS ((NTSTATUS)0x00000000L)
#define STATUS_WAIT_0 ((NTSTATUS)0x00000000L)
#define STATUS_ABANDONED ((NTSTATUS)0x00000080L)
#define STATUS_USER_APC ((NTSTATUS)0x000000C0L)
#define STATUS_ALERTED ((NTSTATUS)0x00000101L)
#define STATUS_TIMEOUT ((NTSTATUS)0x00000102L)
#define STATUS_PENDING ((NTSTATUS)0x00000103L)
#define STATUS_OBJECT_NAME_EXISTS ((NTSTATUS)0x40000000L)
#define STATUS_BUFFER_OVERFLOW ((NTSTATUS)0x80000005L)
#define STATUS_DEVICE_BUSY ((NTSTATUS)0x80000011L)
#define STATUS_NO_MORE_ENTRIES ((NTSTATUS)0x8000001AL)
#define STATUS_UNSUCCESSFUL ((NTSTATUS)0xC0000001L)
#define STATUS_NOT_IMPLEMENTED ((NTSTATUS)0xC0000002L)
#define STATUS_INVALID_INFO_CLASS ((NTSTATUS)0xC0000003L)
#define STATUS_INFO_LENGTH_MISMATCH ((NTSTATUS)0xC0000004L)
#define STATUS_INVALID_HANDLE ((NTSTATUS)0xC0000008L)
#define STATUS_INVALID_PARAMETER ((NTSTATUS)0xC000000DL)
#define STATUS_NO_SUCH_DEVICE ((NTSTATUS)0xC000000EL)
#define STATUS_INVALID_DEVICE_REQUEST ((NTSTATUS)0xC0000010L)
#define STATUS_MORE_PROCESSING_REQUIRED ((NTSTATUS)0xC0000016L)
#define STATUS_NO_MEMORY ((NTSTATUS)0xC0000017L)
#define STATUS_ACCESS_DENIED ((NTSTATUS)0xC0000022L)
#define STATUS_BUFFER_TOO_SMALL ((NTSTATUS)0xC0000023L)
#define STATUS_OBJECT_TYPE_MISMATCH ((NTSTATUS)0xC0000024L)
#define STATUS_INVALID_PARAMETER_MIX ((NTSTATUS)0xC0000030L)
#define STATUS_OBJECT_NAME_NOT_FOUND ((NTSTATUS)0xC0000034L)
#define STATUS_OBJECT_NAME_COLLISION ((NTSTATUS)0xC0000035L)
#define STATUS_OBJECT_PATH_NOT_FOUND ((NTSTATUS)0xC000003AL)
#define STATUS_DELETE_PENDING ((NTSTATUS)0xC0000056L)
#define STATUS_INTEGER_OVERFLOW ((NTSTATUS)0xC0000095L)
#define STATUS_INSUFFICIENT_RESOURCES ((NTSTATUS)0xC000009AL)
#define STATUS_DEVICE_NOT_READY ((NTSTATUS)0xC00000A3L)
#define STATUS_IO_TIMEOUT ((NTSTATUS)0xC00000B5L)
#define STATUS_NOT_SUPPORTED ((NTSTATUS)0xC00000BBL)
#define STATUS_INTERNAL_ERROR ((NTSTATUS)0xC00000E5L)
#define STATUS_INVALID_USER_BUFFER ((NTSTATUS)0xC00000E8L)
#define STATUS_INVALID_PARAMETER_1 ((NTSTATUS)0xC00000EFL)
#define STATUS_INVALID_PARAMETER_2 ((NTSTATUS)0xC00000F0L)
#define STATUS_INVALID_PARAMETER_3 ((NTSTATUS)0xC00000F1L)
#define STATUS_INVALID_PARAMETER_4 ((NTSTATUS)0xC00000F2L)
#define STATUS_CANCELLED ((NTSTATUS)0xC0000120L)
#define STATUS_INVALID_ADDRESS ((NTSTATUS)0xC0000141L)
#define STATUS_DEVICE_CONFIGURATION_ERROR ((NTSTATUS)0xC0000182L)
#define STATUS_INVALID_DEVICE_STATE ((NTSTATUS)0xC0000184L)
#define STATUS_INVALID_BUFFER_SIZE ((NTSTATUS)0xC0000206L)
#define STATUS_CONNECTION_RESET ((NTSTATUS)0xC000020DL)
#define STATUS_DATA_NOT_ACCEPTED ((NTSTATUS)0xC000021BL)
#define STATUS_NOT_FOUND ((NTSTATUS)0xC0000225L)
#define STATUS_RETRY ((NTSTATUS)0xC000022DL)
#define STATUS_CONNECTION_REFUSED ((NTSTATUS)0xC0000236L)
#define STATUS_NETWORK_UNREACHABLE ((NTSTATUS)0xC000023CL)
#define STATUS_HOST_UNREACHABLE ((NTSTATUS)0xC000023DL)
#define STATUS_PROTOCOL_UNREACHABLE ((NTSTATUS)0xC000023EL)
#define STATUS_PORT_UNREACHABLE ((NTSTATUS)0xC000023FL)
#define STATUS_REQUEST_ABORTED ((NTSTATUS)0xC0000240L)
#define STATUS_CONNECTION_ABORTED ((NTSTATUS)0xC0000241L)
#define STATUS_SHUTDOWN_IN_PROGRESS ((NTSTATUS)0xC00002FEL)
#define STATUS_ALREADY_REGISTERED ((NTSTATUS)0xC0000718L)

/* ---- base macros (§5) ---- */
#define UNREFERENCED_PARAMETER(P) ((void)(P))
#define DBG_UNREFERENCED_PARAMETER(P) ((void)(P))
#define DBG_UNREFERENCED_LOCAL_VARIABLE(V) ((void)(V))
#define UNREFERENCED_LOCAL_VARIABLE(V) ((void)(V))
#define C_ASSERT(e) _Static_assert((e), #e)
/* DEFINE_ENUM_FLAG_OPERATORS(T) (ntdef.h): in C the bitwise operators work on enums already; in
 * C++ it defines | & ^ ~ |= &= ^= for the enum T on its underlying integer type. */
#ifdef __cplusplus
#define DEFINE_ENUM_FLAG_OPERATORS(T) \
    extern "C++" { \
    inline constexpr T operator|(T a, T b) noexcept { return T((__underlying_type(T))a | (__underlying_type(T))b); } \
    inline constexpr T operator&(T a, T b) noexcept { return T((__underlying_type(T))a & (__underlying_type(T))b); } \
    inline constexpr T operator^(T a, T b) noexcept { return T((__underlying_type(T))a ^ (__underlying_type(T))b); } \
    inline constexpr T operator~(T a) noexcept { return T(~(__underlying_type(T))a); } \
    inline T &operator|=(T &a, T b) noexcept { return a = a | b; } \
    inline T &operator&=(T &a, T b) noexcept { return a = a & b; } \
    inline T &operator^=(T &a, T b) noexcept { return a = a ^ b; } \
    }
#else
#define DEFINE_ENUM_FLAG_OPERATORS(T)
#endif
#define ARGUMENT_PRESENT(p) ((p) != NULL)
#define FIELD_OFFSET(type, field) ((LONG)offsetof(type, field))
#define RTL_FIELD_SIZE(type, field) (sizeof(((type *)0)->field))
#define RTL_SIZEOF_THROUGH_FIELD(type, field) (FIELD_OFFSET(type, field) + RTL_FIELD_SIZE(type, field))
#define RTL_NUMBER_OF(a) (sizeof(a) / sizeof((a)[0]))
#define ARRAYSIZE(a) RTL_NUMBER_OF(a)
#define CONTAINING_RECORD(address, type, field) ((type *)((PCHAR)(address) - (ULONG_PTR)(&((type *)0)->field)))
#define ALIGN_DOWN_BY(length, alignment) ((ULONG_PTR)(length) & ~((ULONG_PTR)(alignment) - 1))
#define ALIGN_UP_BY(length, alignment) (ALIGN_DOWN_BY(((ULONG_PTR)(length) + (alignment) - 1), alignment))
#define min(a, b) (((a) < (b)) ? (a) : (b))
#define max(a, b) (((a) > (b)) ? (a) : (b))
#define __noop(...) ((void)0)
#define __assume(e) do { if (!(e)) __builtin_unreachable(); } while (0)
#define __debugbreak() __builtin_trap()
#define _ReturnAddress() __builtin_return_address(0)
#define _byteswap_ushort(x) __builtin_bswap16(x)
#define _byteswap_ulong(x) __builtin_bswap32(x)
#define _byteswap_uint64(x) __builtin_bswap64(x)
#define RtlUshortByteSwap(x) ((USHORT)__builtin_bswap16((USHORT)(x)))
#define RtlUlongByteSwap(x) ((ULONG)__builtin_bswap32((ULONG)(x)))
#define RtlUlonglongByteSwap(x) ((ULONGLONG)__builtin_bswap64((ULONGLONG)(x)))

/* ---- LARGE_INTEGER, LUID, strings ---- */
typedef union _LARGE_INTEGER {
    struct { ULONG LowPart; LONG HighPart; };
    struct { ULONG LowPart; LONG HighPart; } u;
    LONGLONG QuadPart;
} LARGE_INTEGER, *PLARGE_INTEGER;
typedef union _ULARGE_INTEGER {
    struct { ULONG LowPart; ULONG HighPart; };
    struct { ULONG LowPart; ULONG HighPart; } u;
    ULONGLONG QuadPart;
} ULARGE_INTEGER, *PULARGE_INTEGER;
typedef LARGE_INTEGER PHYSICAL_ADDRESS, *PPHYSICAL_ADDRESS;
typedef struct _LUID { ULONG LowPart; LONG HighPart; } LUID, *PLUID;

typedef struct _UNICODE_STRING {
    USHORT Length;        /* bytes, without a terminator */
    USHORT MaximumLength; /* bytes */
    PWCH Buffer;
} UNICODE_STRING, *PUNICODE_STRING;
typedef const UNICODE_STRING *PCUNICODE_STRING;
typedef struct _STRING {
    USHORT Length;
    USHORT MaximumLength;
    PCHAR Buffer;
} STRING, *PSTRING, ANSI_STRING, *PANSI_STRING, OEM_STRING, *POEM_STRING;
typedef const STRING *PCANSI_STRING, *PCSTRING;

#ifdef __cplusplus
/* C++: no implicit conversion from void *; the buffer keeps its character type (as the WDK's
 * _RTL_CONSTANT_STRING_remove_const_macro does). */
extern "C++" {
inline char *WfpRtConstStringBuffer(const char *s) { return const_cast<char *>(s); }
inline WCHAR *WfpRtConstStringBuffer(const WCHAR *s) { return const_cast<WCHAR *>(s); }
}
#define RTL_CONSTANT_STRING(s) { sizeof(s) - sizeof((s)[0]), sizeof(s), WfpRtConstStringBuffer(s) }
#else
#define RTL_CONSTANT_STRING(s) { sizeof(s) - sizeof((s)[0]), sizeof(s), (void *)(s) }
#endif
#define DECLARE_CONST_UNICODE_STRING(_var, _string) \
    const WCHAR _var##_buffer[] = _string; \
    const UNICODE_STRING _var = { sizeof(_string) - sizeof(WCHAR), sizeof(_string), (PWCH)_var##_buffer }
#define DECLARE_UNICODE_STRING_SIZE(_var, _size) \
    WCHAR _var##_buffer[_size]; \
    UNICODE_STRING _var = { 0, (_size) * sizeof(WCHAR), _var##_buffer }

/* ---- lists (§5): inline, with link validation (a corrupt list aborts like bugcheck 0x139) ---- */
typedef struct _LIST_ENTRY {
    struct _LIST_ENTRY *Flink;
    struct _LIST_ENTRY *Blink;
} LIST_ENTRY, *PLIST_ENTRY, *PRLIST_ENTRY;
typedef struct _SINGLE_LIST_ENTRY {
    struct _SINGLE_LIST_ENTRY *Next;
} SINGLE_LIST_ENTRY, *PSINGLE_LIST_ENTRY, SLIST_ENTRY, *PSLIST_ENTRY;
typedef union DECLSPEC_ALIGN(16) _SLIST_HEADER {
    struct { ULONGLONG Alignment; ULONGLONG Region; };
} SLIST_HEADER, *PSLIST_HEADER;

WFP_BEGIN_DECLS
DECLSPEC_NORETURN void WfpRtFatalListEntryError(const void *entry);
WFP_END_DECLS

FORCEINLINE void InitializeListHead(PLIST_ENTRY ListHead) { ListHead->Flink = ListHead->Blink = ListHead; }
FORCEINLINE BOOLEAN IsListEmpty(const LIST_ENTRY *ListHead) { return (BOOLEAN)(ListHead->Flink == ListHead); }
FORCEINLINE void WfpRtCheckListEntry(PLIST_ENTRY Entry)
{
    if (Entry->Flink->Blink != Entry || Entry->Blink->Flink != Entry) WfpRtFatalListEntryError(Entry);
}
FORCEINLINE BOOLEAN RemoveEntryList(PLIST_ENTRY Entry)
{
    PLIST_ENTRY Flink = Entry->Flink, Blink = Entry->Blink;
    WfpRtCheckListEntry(Entry);
    Blink->Flink = Flink;
    Flink->Blink = Blink;
    return (BOOLEAN)(Flink == Blink);
}
FORCEINLINE PLIST_ENTRY RemoveHeadList(PLIST_ENTRY ListHead)
{
    PLIST_ENTRY Entry = ListHead->Flink;
    if (Entry == ListHead) return ListHead;
    RemoveEntryList(Entry);
    return Entry;
}
FORCEINLINE PLIST_ENTRY RemoveTailList(PLIST_ENTRY ListHead)
{
    PLIST_ENTRY Entry = ListHead->Blink;
    if (Entry == ListHead) return ListHead;
    RemoveEntryList(Entry);
    return Entry;
}
FORCEINLINE void InsertTailList(PLIST_ENTRY ListHead, PLIST_ENTRY Entry)
{
    PLIST_ENTRY Blink = ListHead->Blink;
    if (Blink->Flink != ListHead) WfpRtFatalListEntryError(ListHead);
    Entry->Flink = ListHead;
    Entry->Blink = Blink;
    Blink->Flink = Entry;
    ListHead->Blink = Entry;
}
FORCEINLINE void InsertHeadList(PLIST_ENTRY ListHead, PLIST_ENTRY Entry)
{
    PLIST_ENTRY Flink = ListHead->Flink;
    if (Flink->Blink != ListHead) WfpRtFatalListEntryError(ListHead);
    Entry->Flink = Flink;
    Entry->Blink = ListHead;
    Flink->Blink = Entry;
    ListHead->Flink = Entry;
}
FORCEINLINE void AppendTailList(PLIST_ENTRY ListHead, PLIST_ENTRY ListToAppend)
{
    PLIST_ENTRY ListEnd = ListHead->Blink;
    ListHead->Blink->Flink = ListToAppend;
    ListHead->Blink = ListToAppend->Blink;
    ListToAppend->Blink->Flink = ListHead;
    ListToAppend->Blink = ListEnd;
}
FORCEINLINE PSINGLE_LIST_ENTRY PopEntryList(PSINGLE_LIST_ENTRY ListHead)
{
    PSINGLE_LIST_ENTRY First = ListHead->Next;
    if (First != NULL) ListHead->Next = First->Next;
    return First;
}
FORCEINLINE void PushEntryList(PSINGLE_LIST_ENTRY ListHead, PSINGLE_LIST_ENTRY Entry)
{
    Entry->Next = ListHead->Next;
    ListHead->Next = Entry;
}

/* ---- Interlocked (§3): full barriers; Exchange precedes Comperand ---- */
#define WFP_SEQ __ATOMIC_SEQ_CST
FORCEINLINE LONG InterlockedIncrement(LONG volatile *a) { return __atomic_add_fetch(a, 1, WFP_SEQ); }
FORCEINLINE LONG InterlockedDecrement(LONG volatile *a) { return __atomic_sub_fetch(a, 1, WFP_SEQ); }
FORCEINLINE LONG InterlockedAdd(LONG volatile *a, LONG v) { return __atomic_add_fetch(a, v, WFP_SEQ); }
FORCEINLINE LONG InterlockedExchangeAdd(LONG volatile *a, LONG v) { return __atomic_fetch_add(a, v, WFP_SEQ); }
FORCEINLINE LONG InterlockedExchange(LONG volatile *a, LONG v) { return __atomic_exchange_n(a, v, WFP_SEQ); }
FORCEINLINE CHAR InterlockedExchange8(CHAR volatile *a, CHAR v) { return __atomic_exchange_n(a, v, WFP_SEQ); }
FORCEINLINE SHORT InterlockedIncrement16(SHORT volatile *a) { return __atomic_add_fetch(a, 1, WFP_SEQ); }
FORCEINLINE SHORT InterlockedDecrement16(SHORT volatile *a) { return __atomic_sub_fetch(a, 1, WFP_SEQ); }
FORCEINLINE LONG InterlockedOr(LONG volatile *a, LONG v) { return __atomic_fetch_or(a, v, WFP_SEQ); }
FORCEINLINE LONG InterlockedAnd(LONG volatile *a, LONG v) { return __atomic_fetch_and(a, v, WFP_SEQ); }
FORCEINLINE LONG InterlockedXor(LONG volatile *a, LONG v) { return __atomic_fetch_xor(a, v, WFP_SEQ); }
FORCEINLINE CHAR InterlockedOr8(CHAR volatile *a, CHAR v) { return __atomic_fetch_or(a, v, WFP_SEQ); }
FORCEINLINE CHAR InterlockedAnd8(CHAR volatile *a, CHAR v) { return __atomic_fetch_and(a, v, WFP_SEQ); }
FORCEINLINE SHORT InterlockedOr16(SHORT volatile *a, SHORT v) { return __atomic_fetch_or(a, v, WFP_SEQ); }
FORCEINLINE SHORT InterlockedAnd16(SHORT volatile *a, SHORT v) { return __atomic_fetch_and(a, v, WFP_SEQ); }
FORCEINLINE LONG64 InterlockedIncrement64(LONG64 volatile *a) { return __atomic_add_fetch(a, 1, WFP_SEQ); }
FORCEINLINE LONG64 InterlockedDecrement64(LONG64 volatile *a) { return __atomic_sub_fetch(a, 1, WFP_SEQ); }
FORCEINLINE LONG64 InterlockedAdd64(LONG64 volatile *a, LONG64 v) { return __atomic_add_fetch(a, v, WFP_SEQ); }
FORCEINLINE LONG64 InterlockedExchangeAdd64(LONG64 volatile *a, LONG64 v) { return __atomic_fetch_add(a, v, WFP_SEQ); }
FORCEINLINE LONG64 InterlockedExchange64(LONG64 volatile *a, LONG64 v) { return __atomic_exchange_n(a, v, WFP_SEQ); }
FORCEINLINE LONG64 InterlockedOr64(LONG64 volatile *a, LONG64 v) { return __atomic_fetch_or(a, v, WFP_SEQ); }
FORCEINLINE LONG64 InterlockedAnd64(LONG64 volatile *a, LONG64 v) { return __atomic_fetch_and(a, v, WFP_SEQ); }
FORCEINLINE LONG64 InterlockedXor64(LONG64 volatile *a, LONG64 v) { return __atomic_fetch_xor(a, v, WFP_SEQ); }
FORCEINLINE LONG InterlockedCompareExchange(LONG volatile *d, LONG exchange, LONG comperand)
{
    __atomic_compare_exchange_n(d, &comperand, exchange, 0, WFP_SEQ, WFP_SEQ);
    return comperand;
}
FORCEINLINE LONG64 InterlockedCompareExchange64(LONG64 volatile *d, LONG64 exchange, LONG64 comperand)
{
    __atomic_compare_exchange_n(d, &comperand, exchange, 0, WFP_SEQ, WFP_SEQ);
    return comperand;
}
FORCEINLINE PVOID InterlockedExchangePointer(PVOID volatile *d, PVOID v) { return __atomic_exchange_n(d, v, WFP_SEQ); }
FORCEINLINE PVOID InterlockedCompareExchangePointer(PVOID volatile *d, PVOID exchange, PVOID comperand)
{
    __atomic_compare_exchange_n(d, &comperand, exchange, 0, WFP_SEQ, WFP_SEQ);
    return comperand;
}
#define InterlockedIncrementNoFence InterlockedIncrement
#define InterlockedDecrementNoFence InterlockedDecrement
#define InterlockedIncrementAcquire InterlockedIncrement
#define InterlockedDecrementRelease InterlockedDecrement
#define _InterlockedIncrement InterlockedIncrement
#define _InterlockedDecrement InterlockedDecrement
#define _InterlockedExchange InterlockedExchange
#define _InterlockedCompareExchange InterlockedCompareExchange
#define ReadNoFence(p) (*(volatile LONG *)(p))
#define ReadAcquire(p) __atomic_load_n((LONG *)(p), __ATOMIC_ACQUIRE)
#define WriteRelease(p, v) __atomic_store_n((LONG *)(p), (v), __ATOMIC_RELEASE)
#define KeMemoryBarrier() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define MemoryBarrier() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define YieldProcessor() __builtin_ia32_pause()

/* ---- Rtl memory (§5) ---- */
#define RtlZeroMemory(d, n) memset((d), 0, (n))
#define RtlSecureZeroMemory(d, n) memset((d), 0, (n))
#define RtlCopyMemory(d, s, n) memcpy((d), (s), (n))
#define RtlMoveMemory(d, s, n) memmove((d), (s), (n))
#define RtlFillMemory(d, n, f) memset((d), (f), (n))
#define RtlEqualMemory(a, b, n) (!memcmp((a), (b), (n)))
#define NdisMoveMemory(d, s, n) memcpy((d), (s), (n))
#define NdisZeroMemory(d, n) memset((d), 0, (n))
#define NdisEqualMemory(a, b, n) (!memcmp((a), (b), (n)))
FORCEINLINE SIZE_T RtlCompareMemory(const VOID *a, const VOID *b, SIZE_T n)
{
    const UCHAR *x = (const UCHAR *)a, *y = (const UCHAR *)b;
    SIZE_T i = 0;
    while (i < n && x[i] == y[i]) i++;
    return i;
}

/* 16-bit wide-string helpers (never glibc's 32-bit wcs* functions). */
FORCEINLINE SIZE_T WfpRtWcslen(PCWSTR s) { SIZE_T n = 0; while (s[n]) n++; return n; }
#define wcslen WfpRtWcslen

/* ---- annotations-only typedef helpers used by fwpsk/wdm prototypes ---- */
#define DRIVER_INITIALIZE_DECL
#endif
