/* wfp-ddk: the kernel runtime surface (wdk-runtime.md §2, §3, §5, §8) that wdm.h / ntddk.h /
 * ntifs.h expose. Every function declared here is implemented by the wfp-ffi runtime in the host
 * process (or inline below) and works as documented in docs/c-abi.md. */
#ifndef WFP_DDK_KM_H
#define WFP_DDK_KM_H
#include "wdkbase.h"
#include "msfmt.h"
#include "../guiddef.h"

WFP_BEGIN_DECLS

/* ---- IRQL (§3): tracked per thread by the runtime ---- */
#define PASSIVE_LEVEL 0
#define LOW_LEVEL 0
#define APC_LEVEL 1
#define DISPATCH_LEVEL 2
#define CMCI_LEVEL 5
#define CLOCK_LEVEL 13
#define IPI_LEVEL 14
#define POWER_LEVEL 14
#define PROFILE_LEVEL 15
#define HIGH_LEVEL 15
KIRQL KeGetCurrentIrql(void);
KIRQL KfRaiseIrql(KIRQL NewIrql);
void KeLowerIrql(KIRQL NewIrql);
#define KeRaiseIrql(a, b) (*(b) = KfRaiseIrql(a))
#define KeRaiseIrqlToDpcLevel() KfRaiseIrql(DISPATCH_LEVEL)
#define PAGED_CODE() do { if (KeGetCurrentIrql() > APC_LEVEL) WfpRtAssertFailed("PAGED_CODE(): IRQL > APC_LEVEL", __FILE__, __LINE__); } while (0)
#define PAGED_CODE_LOCKED() ((void)0)
/* ProbeForRead / ProbeForWrite: Alignment 1, 2, 4, 8 or 16; a misaligned or wrapping range is a
 * Verifier finding (Windows raises an exception; no handler runs here: see __try in wdkbase.h). */
void ProbeForRead(const volatile void *Address, SIZE_T Length, ULONG Alignment);
void ProbeForWrite(volatile void *Address, SIZE_T Length, ULONG Alignment);

/* ---- debug output and assertions (§5) ---- */
#define DPFLTR_ERROR_LEVEL 0
#define DPFLTR_WARNING_LEVEL 1
#define DPFLTR_TRACE_LEVEL 2
#define DPFLTR_INFO_LEVEL 3
#define DPFLTR_MASK 0x80000000
#define DPFLTR_SYSTEM_ID 0
#define DPFLTR_IHVDRIVER_ID 77
#define DPFLTR_IHVNETWORK_ID 80
#define DPFLTR_DEFAULT_ID 101
/* Hands one formatted line to the host's log (component, level, UTF-8 text). */
void WfpRtDebugPrint(ULONG ComponentId, ULONG Level, const char *Text, SIZE_T Length);
DECLSPEC_NORETURN void WfpRtAssertFailed(const char *Expression, const char *File, int Line);
static inline ULONG vDbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, va_list ap)
{
    char text[1024];
    WFP_FMT_SINK s = { text, sizeof(text), 0, 0, 0, NULL, 0 };
    WfpFmtV(&s, Format, 0, ap);
    WfpRtDebugPrint(ComponentId, Level, text, s.len);
    return STATUS_SUCCESS;
}
/* The driver's WPP session (its WPP_LEVEL / WPP_FLAGS parameters), checked by the generated
 * name.tmh before a message is formatted. */
typedef struct _WFP_WPP_CONTROL {
    ULONG Level;
    ULONG Flags;
} WFP_WPP_CONTROL;
WFP_WPP_CONTROL WfpRtWppControl(void);
/* WPP trace messages (the generated name.tmh): formatted with the call site for %!FUNC! etc. */
static inline __attribute__((unused)) void WfpRtWppPrint(int Level, const char *Func, const char *File, int Line, PCSTR Format, ...)
{
    char text[1024];
    WFP_WPP_SITE site = { Func, File, Line, Level };
    WFP_FMT_SINK s = { text, sizeof(text), 0, 0, 0, &site, 0 };
    va_list ap;
    va_start(ap, Format);
    WfpFmtV(&s, Format, 0, ap);
    va_end(ap);
    WfpRtDebugPrint(DPFLTR_IHVNETWORK_ID, Level <= 2 ? DPFLTR_ERROR_LEVEL : DPFLTR_INFO_LEVEL, text, s.len);
}
static inline __attribute__((unused)) ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...)
{
    va_list ap;
    va_start(ap, Format);
    ULONG r = vDbgPrintEx(ComponentId, Level, Format, ap);
    va_end(ap);
    return r;
}
static inline __attribute__((unused)) ULONG DbgPrint(PCSTR Format, ...)
{
    va_list ap;
    va_start(ap, Format);
    ULONG r = vDbgPrintEx(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL, Format, ap);
    va_end(ap);
    return r;
}
#if DBG
#define KdPrint(_x_) DbgPrint _x_
#define KdPrintEx(_x_) DbgPrintEx _x_
#define NT_ASSERT(e) ((e) ? (void)0 : WfpRtAssertFailed(#e, __FILE__, __LINE__))
#define NT_ASSERTMSG(m, e) ((e) ? (void)0 : WfpRtAssertFailed(m, __FILE__, __LINE__))
#define ASSERT(e) NT_ASSERT(e)
#define ASSERTMSG(m, e) NT_ASSERTMSG(m, e)
#else
#define KdPrint(_x_) ((void)0)
#define KdPrintEx(_x_) ((void)0)
#define NT_ASSERT(e) ((void)0)
#define NT_ASSERTMSG(m, e) ((void)0)
#define ASSERT(e) ((void)0)
#define ASSERTMSG(m, e) ((void)0)
#endif
#define NT_VERIFY(e) ((e) ? TRUE : (WfpRtAssertFailed(#e, __FILE__, __LINE__), FALSE))
#define NT_ANALYSIS_ASSUME(e) ((void)0)

/* ---- pool (§2): heap-backed, tracked by tag and call site for the Verifier ---- */
typedef ULONG64 POOL_FLAGS;
#define POOL_FLAG_USE_QUOTA 0x0000000000000001ULL
#define POOL_FLAG_UNINITIALIZED 0x0000000000000002ULL
#define POOL_FLAG_SESSION 0x0000000000000004ULL
#define POOL_FLAG_CACHE_ALIGNED 0x0000000000000008ULL
#define POOL_FLAG_RESERVED1 0x0000000000000010ULL
#define POOL_FLAG_RAISE_ON_FAILURE 0x0000000000000020ULL
#define POOL_FLAG_NON_PAGED 0x0000000000000040ULL
#define POOL_FLAG_NON_PAGED_EXECUTE 0x0000000000000080ULL
#define POOL_FLAG_PAGED 0x0000000000000100ULL
#define POOL_FLAG_RESERVED2 0x0000000000000200ULL
#define POOL_FLAG_RESERVED3 0x0000000000000400ULL
#define POOL_FLAG_SPECIAL_POOL 0x0000000100000000ULL
typedef enum _POOL_TYPE {
    NonPagedPoolExecute = 0,
    PagedPool = 1,
    NonPagedPoolMustSucceed = 2,
    DontUseThisType = 3,
    NonPagedPoolCacheAligned = 4,
    PagedPoolCacheAligned = 5,
    NonPagedPoolCacheAlignedMustS = 6,
    MaxPoolType = 7,
    NonPagedPoolSession = 32,
    PagedPoolSession = 33,
    NonPagedPoolNx = 512,
    NonPagedPoolNxCacheAligned = 516,
    NonPagedPoolSessionNx = 544
} POOL_TYPE;
#if defined(POOL_NX_OPTIN_AUTO) && POOL_NX_OPTIN_AUTO
#define NonPagedPool NonPagedPoolNx
#define NonPagedPoolCacheAligned NonPagedPoolNxCacheAligned
#elif defined(POOL_NX_OPTIN) && POOL_NX_OPTIN
/* One per driver image (the WDK's selectany variable); ExInitializeDriverRuntime switches it. */
__attribute__((weak)) POOL_TYPE ExDefaultNonPagedPoolType = NonPagedPoolExecute;
#define NonPagedPool ExDefaultNonPagedPoolType
#else
#define NonPagedPool NonPagedPoolExecute
#endif
#define POOL_QUOTA_FAIL_INSTEAD_OF_RAISE 8
#define POOL_RAISE_IF_ALLOCATION_FAILURE 16
#define POOL_COLD_ALLOCATION 256
#define POOL_NX_ALLOCATION 512
#define POOL_ZERO_ALLOCATION 1024
typedef enum _DRIVER_RUNTIME_INIT_FLAGS { DrvRtPoolNxOptIn = 0x1 } DRIVER_RUNTIME_INIT_FLAGS;
/* Records the driver's NX opt-in with the host (which counts executable non-paged requests);
 * under POOL_NX_OPTIN it also switches NonPagedPool to NonPagedPoolNx, as the WDK's does. */
void ExInitializeDriverRuntime(ULONG RuntimeFlags);
#if !(defined(POOL_NX_OPTIN_AUTO) && POOL_NX_OPTIN_AUTO) && defined(POOL_NX_OPTIN) && POOL_NX_OPTIN
FORCEINLINE void WfpRtInitializeDriverRuntime(ULONG RuntimeFlags)
{
    if (RuntimeFlags & DrvRtPoolNxOptIn) ExDefaultNonPagedPoolType = NonPagedPoolNx;
    (ExInitializeDriverRuntime)(RuntimeFlags);
}
#define ExInitializeDriverRuntime WfpRtInitializeDriverRuntime
#endif

PVOID ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag);
PVOID ExAllocatePoolWithTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
void ExFreePoolWithTag(PVOID P, ULONG Tag);
void ExFreePool(PVOID P);
/* Call-site variants: the macros below record __FILE__:__LINE__ for leak reports. */
PVOID WfpRtAllocatePool2At(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag, const char *File, int Line);
PVOID WfpRtAllocatePoolWithTagAt(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag, const char *File, int Line);
FORCEINLINE PVOID ExAllocatePoolZero(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag)
{
    return ExAllocatePoolWithTag((POOL_TYPE)(PoolType | POOL_ZERO_ALLOCATION), NumberOfBytes, Tag);
}
FORCEINLINE PVOID ExAllocatePoolUninitialized(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag)
{
    return ExAllocatePoolWithTag(PoolType, NumberOfBytes, Tag);
}
#define ExAllocatePool2(f, n, t) WfpRtAllocatePool2At((f), (n), (t), __FILE__, __LINE__)
#define ExAllocatePoolWithTag(p, n, t) WfpRtAllocatePoolWithTagAt((p), (n), (t), __FILE__, __LINE__)
#define ExAllocatePoolZero(p, n, t) WfpRtAllocatePoolWithTagAt((POOL_TYPE)((p) | POOL_ZERO_ALLOCATION), (n), (t), __FILE__, __LINE__)
#define ExAllocatePoolUninitialized(p, n, t) WfpRtAllocatePoolWithTagAt((p), (n), (t), __FILE__, __LINE__)

/* ---- spin locks (§3): real mutual exclusion; acquiring raises the thread's IRQL ---- */
typedef struct _KSPIN_LOCK_QUEUE {
    struct _KSPIN_LOCK_QUEUE *volatile Next;
    PKSPIN_LOCK volatile Lock;
} KSPIN_LOCK_QUEUE, *PKSPIN_LOCK_QUEUE;
typedef struct _KLOCK_QUEUE_HANDLE {
    KSPIN_LOCK_QUEUE LockQueue;
    KIRQL OldIrql;
} KLOCK_QUEUE_HANDLE, *PKLOCK_QUEUE_HANDLE;
FORCEINLINE void KeInitializeSpinLock(PKSPIN_LOCK SpinLock) { *SpinLock = 0; }
KIRQL KeAcquireSpinLockRaiseToDpc(PKSPIN_LOCK SpinLock);
void KeReleaseSpinLock(PKSPIN_LOCK SpinLock, KIRQL NewIrql);
void KeAcquireSpinLockAtDpcLevel(PKSPIN_LOCK SpinLock);
void KeReleaseSpinLockFromDpcLevel(PKSPIN_LOCK SpinLock);
void KeAcquireInStackQueuedSpinLock(PKSPIN_LOCK SpinLock, PKLOCK_QUEUE_HANDLE LockHandle);
void KeReleaseInStackQueuedSpinLock(PKLOCK_QUEUE_HANDLE LockHandle);
void KeAcquireInStackQueuedSpinLockAtDpcLevel(PKSPIN_LOCK SpinLock, PKLOCK_QUEUE_HANDLE LockHandle);
void KeReleaseInStackQueuedSpinLockFromDpcLevel(PKLOCK_QUEUE_HANDLE LockHandle);
#define KeAcquireSpinLock(SpinLock, OldIrql) (*(OldIrql) = KeAcquireSpinLockRaiseToDpc(SpinLock))
FORCEINLINE PLIST_ENTRY ExInterlockedInsertHeadList(PLIST_ENTRY Head, PLIST_ENTRY Entry, PKSPIN_LOCK Lock)
{
    KIRQL old = KeAcquireSpinLockRaiseToDpc(Lock);
    PLIST_ENTRY first = IsListEmpty(Head) ? NULL : Head->Flink;
    InsertHeadList(Head, Entry);
    KeReleaseSpinLock(Lock, old);
    return first;
}
FORCEINLINE PLIST_ENTRY ExInterlockedInsertTailList(PLIST_ENTRY Head, PLIST_ENTRY Entry, PKSPIN_LOCK Lock)
{
    KIRQL old = KeAcquireSpinLockRaiseToDpc(Lock);
    PLIST_ENTRY last = IsListEmpty(Head) ? NULL : Head->Blink;
    InsertTailList(Head, Entry);
    KeReleaseSpinLock(Lock, old);
    return last;
}
FORCEINLINE PLIST_ENTRY ExInterlockedRemoveHeadList(PLIST_ENTRY Head, PKSPIN_LOCK Lock)
{
    KIRQL old = KeAcquireSpinLockRaiseToDpc(Lock);
    PLIST_ENTRY e = IsListEmpty(Head) ? NULL : RemoveHeadList(Head);
    KeReleaseSpinLock(Lock, old);
    return e;
}

/* ---- time and processors (§3): the host's clock (capture time during a replay) ---- */
void KeQuerySystemTimePrecise(PLARGE_INTEGER CurrentTime);
#define KeQuerySystemTime(t) KeQuerySystemTimePrecise(t)
ULONGLONG KeQueryInterruptTime(void);
/* The interrupt-time clock in 100-ns ticks; *PerformanceFrequency = 10 MHz. */
LARGE_INTEGER KeQueryPerformanceCounter(PLARGE_INTEGER PerformanceFrequency);
/* A random (version 4) UUID. */
NTSTATUS ExUuidCreate(UUID *Uuid);
ULONG KeGetCurrentProcessorIndex(void);
#define KeGetCurrentProcessorNumber() KeGetCurrentProcessorIndex()
ULONG KeQueryActiveProcessorCount(PKAFFINITY ActiveProcessors);
ULONG KeQueryMaximumProcessorCount(void);
#define ALL_PROCESSOR_GROUPS 0xffff
ULONG KeQueryMaximumProcessorCountEx(USHORT GroupNumber);
ULONG KeQueryActiveProcessorCountEx(USHORT GroupNumber);
/* One processor group (group 0): KeGetCurrentProcessorNumberEx is the index, split as the WDK's
 * PROCESSOR_NUMBER. */
typedef struct _PROCESSOR_NUMBER {
    USHORT Group;
    UCHAR Number;
    UCHAR Reserved;
} PROCESSOR_NUMBER, *PPROCESSOR_NUMBER;
FORCEINLINE ULONG KeGetCurrentProcessorNumberEx(PPROCESSOR_NUMBER ProcNumber)
{
    ULONG index = KeGetCurrentProcessorIndex();
    if (ProcNumber) {
        ProcNumber->Group = 0;
        ProcNumber->Number = (UCHAR)index;
        ProcNumber->Reserved = 0;
    }
    return index;
}
/* 100-ns units the interval clock adds per tick: x64's default clock interval (15.625 ms). */
FORCEINLINE ULONG KeQueryTimeIncrement(void) { return 156250; }

/* ---- DPCs (§4): a queued DPC runs once on a host worker thread at DISPATCH_LEVEL, where
 * KeGetCurrentProcessorNumber() is the processor it was queued on. The runtime owns the
 * contents (the WDK's x64 layout); drivers only provide the storage. ---- */
struct _KDPC;
typedef void KDEFERRED_ROUTINE(struct _KDPC *Dpc, PVOID DeferredContext, PVOID SystemArgument1, PVOID SystemArgument2);
typedef KDEFERRED_ROUTINE *PKDEFERRED_ROUTINE;
typedef struct _KDPC {
    union {
        ULONG TargetInfoAsUlong;
        struct { UCHAR Type; UCHAR Importance; volatile USHORT Number; };
    };
    SINGLE_LIST_ENTRY DpcListEntry;
    KAFFINITY ProcessorHistory;
    PKDEFERRED_ROUTINE DeferredRoutine;
    PVOID DeferredContext;
    PVOID SystemArgument1;
    PVOID SystemArgument2;
    volatile PVOID DpcData;
} KDPC, *PKDPC, *PRKDPC;
_Static_assert(sizeof(KDPC) == 64, "KDPC is 64 bytes on x64");
void KeInitializeDpc(PRKDPC Dpc, PKDEFERRED_ROUTINE DeferredRoutine, PVOID DeferredContext);
void KeInitializeThreadedDpc(PRKDPC Dpc, PKDEFERRED_ROUTINE DeferredRoutine, PVOID DeferredContext);
BOOLEAN KeInsertQueueDpc(PRKDPC Dpc, PVOID SystemArgument1, PVOID SystemArgument2);
BOOLEAN KeRemoveQueueDpc(PRKDPC Dpc);
/* PASSIVE_LEVEL: returns once every DPC queued before the call has run. */
void KeFlushQueuedDpcs(void);

/* ---- Rtl strings (§5) ---- */
FORCEINLINE void RtlInitUnicodeString(PUNICODE_STRING Destination, PCWSTR Source)
{
    if (Source) {
        SIZE_T n = WfpRtWcslen(Source) * sizeof(WCHAR);
        if (n > 0xFFFC) n = 0xFFFC;
        Destination->Length = (USHORT)n;
        Destination->MaximumLength = (USHORT)(n + sizeof(WCHAR));
    } else {
        Destination->Length = Destination->MaximumLength = 0;
    }
    Destination->Buffer = (PWCH)Source;
}
FORCEINLINE void RtlInitAnsiString(PANSI_STRING Destination, PCSTR Source)
{
    if (Source) {
        SIZE_T n = strlen(Source);
        if (n > 0xFFFE) n = 0xFFFE;
        Destination->Length = (USHORT)n;
        Destination->MaximumLength = (USHORT)(n + 1);
    } else {
        Destination->Length = Destination->MaximumLength = 0;
    }
    Destination->Buffer = (PCHAR)Source;
}
FORCEINLINE void RtlCopyUnicodeString(PUNICODE_STRING Dst, PCUNICODE_STRING Src)
{
    if (!Src) { Dst->Length = 0; return; }
    USHORT n = Src->Length < Dst->MaximumLength ? Src->Length : Dst->MaximumLength;
    memcpy(Dst->Buffer, Src->Buffer, n);
    Dst->Length = n;
    if (n + sizeof(WCHAR) <= Dst->MaximumLength) Dst->Buffer[n / sizeof(WCHAR)] = 0;
}
FORCEINLINE WCHAR WfpRtUpcaseW(WCHAR c) { return (c >= 'a' && c <= 'z') ? (WCHAR)(c - 32) : c; }
FORCEINLINE LONG RtlCompareUnicodeString(PCUNICODE_STRING a, PCUNICODE_STRING b, BOOLEAN CaseInSensitive)
{
    USHORT na = a->Length / 2, nb = b->Length / 2, n = na < nb ? na : nb;
    for (USHORT i = 0; i < n; i++) {
        WCHAR x = a->Buffer[i], y = b->Buffer[i];
        if (CaseInSensitive) { x = WfpRtUpcaseW(x); y = WfpRtUpcaseW(y); }
        if (x != y) return (LONG)x - (LONG)y;
    }
    return (LONG)na - (LONG)nb;
}
FORCEINLINE BOOLEAN RtlEqualUnicodeString(PCUNICODE_STRING a, PCUNICODE_STRING b, BOOLEAN CaseInSensitive)
{
    return (BOOLEAN)(a->Length == b->Length && RtlCompareUnicodeString(a, b, CaseInSensitive) == 0);
}
/* Appends (wdk-runtime.md §5, ntifs.h): all or nothing, STATUS_BUFFER_TOO_SMALL when the text does
 * not fit; a NUL follows the text when MaximumLength has room for it (not counted in Length). */
FORCEINLINE NTSTATUS WfpRtAppendW(PUNICODE_STRING d, PCWCH s, SIZE_T bytes)
{
    if (bytes == 0) return STATUS_SUCCESS;
    if (bytes > (SIZE_T)(d->MaximumLength - d->Length) || d->Length > d->MaximumLength) return STATUS_BUFFER_TOO_SMALL;
    memmove((PUCHAR)d->Buffer + d->Length, s, bytes);
    d->Length = (USHORT)(d->Length + bytes);
    if (d->Length + sizeof(WCHAR) <= d->MaximumLength) d->Buffer[d->Length / sizeof(WCHAR)] = 0;
    return STATUS_SUCCESS;
}
FORCEINLINE NTSTATUS RtlAppendUnicodeToString(PUNICODE_STRING Destination, PCWSTR Source)
{
    return Source ? WfpRtAppendW(Destination, Source, WfpRtWcslen(Source) * sizeof(WCHAR)) : STATUS_SUCCESS;
}
FORCEINLINE NTSTATUS RtlAppendUnicodeStringToString(PUNICODE_STRING Destination, PCUNICODE_STRING Source)
{
    return WfpRtAppendW(Destination, Source->Buffer, Source->Length & ~1u);
}
/* UTF-16 to UTF-8 (this emulation's "ANSI" code page). STATUS_BUFFER_OVERFLOW when it did not fit. */
FORCEINLINE NTSTATUS RtlUnicodeToMultiByteN(PCHAR Out, ULONG MaxBytes, PULONG BytesOut, PCWCH In, ULONG BytesIn)
{
    WFP_FMT_SINK s = { Out, (SIZE_T)MaxBytes + 1, 0, 0, 0, NULL, 1 };
    WfpFmtText(&s, In, 1, BytesIn / 2, 0, -1, 0);
    if (BytesOut) *BytesOut = (ULONG)s.len;
    return s.needed > s.len ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
}

/* ---- driver and device objects (§8, WDM entry) ---- */
/* The other IRP_MJ_* codes, IRP and IO_STACK_LOCATION: wfp/irp.h (below). */
#define IRP_MJ_MAXIMUM_FUNCTION 0x1b
#define DO_BUFFERED_IO 0x00000004
#define DO_DIRECT_IO 0x00000010
#define DO_DEVICE_INITIALIZING 0x00000080
#define FILE_DEVICE_NETWORK 0x00000012
#define FILE_DEVICE_TRANSPORT 0x00000021
#define FILE_DEVICE_UNKNOWN 0x00000022
#define FILE_DEVICE_SECURE_OPEN 0x00000100
#define FILE_AUTOGENERATED_DEVICE_NAME 0x00000080
#define KernelMode 0
#define UserMode 1
struct _DRIVER_OBJECT;
struct _DEVICE_OBJECT;
struct _IRP;
typedef NTSTATUS DRIVER_INITIALIZE(struct _DRIVER_OBJECT *DriverObject, PUNICODE_STRING RegistryPath);
typedef DRIVER_INITIALIZE *PDRIVER_INITIALIZE;
/* The loader finds DriverEntry by name: keep it visible under -fvisibility=hidden. */
DECLSPEC_EXPORT DRIVER_INITIALIZE DriverEntry;
typedef void DRIVER_UNLOAD(struct _DRIVER_OBJECT *DriverObject);
typedef DRIVER_UNLOAD *PDRIVER_UNLOAD;
typedef NTSTATUS DRIVER_DISPATCH(struct _DEVICE_OBJECT *DeviceObject, struct _IRP *Irp);
typedef DRIVER_DISPATCH *PDRIVER_DISPATCH;
typedef void DRIVER_STARTIO(struct _DEVICE_OBJECT *DeviceObject, struct _IRP *Irp);
typedef DRIVER_STARTIO *PDRIVER_STARTIO;
typedef struct _DRIVER_EXTENSION {
    struct _DRIVER_OBJECT *DriverObject;
    PVOID AddDevice;
    ULONG Count;
    UNICODE_STRING ServiceKeyName;
} DRIVER_EXTENSION, *PDRIVER_EXTENSION;
/* x64 layout of the WDK's DRIVER_OBJECT (0x150 bytes). */
typedef struct _DRIVER_OBJECT {
    CSHORT Type;
    CSHORT Size;
    struct _DEVICE_OBJECT *DeviceObject;
    ULONG Flags;
    PVOID DriverStart;
    ULONG DriverSize;
    PVOID DriverSection;
    PDRIVER_EXTENSION DriverExtension;
    UNICODE_STRING DriverName;
    PUNICODE_STRING HardwareDatabase;
    PVOID FastIoDispatch;
    PDRIVER_INITIALIZE DriverInit;
    PDRIVER_STARTIO DriverStartIo;
    PDRIVER_UNLOAD DriverUnload;
    PDRIVER_DISPATCH MajorFunction[IRP_MJ_MAXIMUM_FUNCTION + 1];
} DRIVER_OBJECT, *PDRIVER_OBJECT;
/* The members of DEVICE_OBJECT a callout driver touches, at their x64 offsets up to DeviceType. */
typedef struct _DEVICE_OBJECT {
    CSHORT Type;
    USHORT Size;
    LONG ReferenceCount;
    struct _DRIVER_OBJECT *DriverObject;
    struct _DEVICE_OBJECT *NextDevice;
    struct _DEVICE_OBJECT *AttachedDevice;
    struct _IRP *CurrentIrp;
    PVOID Timer;
    ULONG Flags;
    ULONG Characteristics;
    PVOID Vpb;
    PVOID DeviceExtension;
    DEVICE_TYPE DeviceType;
    CCHAR StackSize;
} DEVICE_OBJECT, *PDEVICE_OBJECT;

NTSTATUS IoCreateDevice(PDRIVER_OBJECT DriverObject, ULONG DeviceExtensionSize, PUNICODE_STRING DeviceName,
                        DEVICE_TYPE DeviceType, ULONG DeviceCharacteristics, BOOLEAN Exclusive, PDEVICE_OBJECT *DeviceObject);
void IoDeleteDevice(PDEVICE_OBJECT DeviceObject);

/* ---- MDLs (§6) ---- */
typedef struct _MDL {
    struct _MDL *Next;
    CSHORT Size;
    CSHORT MdlFlags;
    struct _EPROCESS *Process;
    PVOID MappedSystemVa;
    PVOID StartVa;
    ULONG ByteCount;
    ULONG ByteOffset;
} MDL, *PMDL, *PMDLX;
#define MDL_MAPPED_TO_SYSTEM_VA 0x0001
#define MDL_PAGES_LOCKED 0x0002
#define MDL_SOURCE_IS_NONPAGED_POOL 0x0004
#define MDL_ALLOCATED_FIXED_SIZE 0x0008
#define MDL_PARTIAL 0x0010
typedef enum _MM_PAGE_PRIORITY { LowPagePriority = 0, NormalPagePriority = 16, HighPagePriority = 32 } MM_PAGE_PRIORITY;
#define MdlMappingNoWrite 0x80000000
#define MdlMappingNoExecute 0x40000000
#define MdlMappingWithGuardPtes 0x20000000
PMDL IoAllocateMdl(PVOID VirtualAddress, ULONG Length, BOOLEAN SecondaryBuffer, BOOLEAN ChargeQuota, struct _IRP *Irp);
void IoFreeMdl(PMDL Mdl);
void MmBuildMdlForNonPagedPool(PMDL MemoryDescriptorList);
typedef enum _LOCK_OPERATION { IoReadAccess = 0, IoWriteAccess = 1, IoModifyAccess = 2 } LOCK_OPERATION;
/* Every page of the host is resident: locking marks the MDL (MDL_PAGES_LOCKED) and maps it; no
 * exception is raised (see __try in wdkbase.h). Locking twice or unlocking unlocked pages is a
 * Verifier finding. */
void MmProbeAndLockPages(PMDL MemoryDescriptorList, KPROCESSOR_MODE AccessMode, LOCK_OPERATION Operation);
void MmUnlockPages(PMDL MemoryDescriptorList);
#define MmGetMdlByteCount(m) ((m)->ByteCount)
#define MmGetMdlByteOffset(m) ((m)->ByteOffset)
#define MmGetMdlVirtualAddress(m) ((PVOID)((PCHAR)((m)->StartVa) + (m)->ByteOffset))
#define MmGetSystemAddressForMdl(m) MmGetSystemAddressForMdlSafe((m), NormalPagePriority)
FORCEINLINE PVOID MmGetSystemAddressForMdlSafe(PMDL Mdl, ULONG Priority)
{
    (void)Priority;
    /* Everything is mapped in this emulation: the mapping never fails. */
    if (Mdl->MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL)) return Mdl->MappedSystemVa;
    return (PVOID)((PCHAR)Mdl->StartVa + Mdl->ByteOffset);
}

#include "irp.h"

#include "kmrt.h"

WFP_END_DECLS
#endif
