/* wfp-ddk: dispatcher objects, waits, system threads, object references, work items and lookaside
 * lists (wdk-runtime.md §2, §3, §4), included by wfp/km.h. Implemented by the wfp-ffi runtime
 * (docs/c-abi.md): events are the driver's own KEVENT memory (futex-backed), threads are real host
 * threads, work items run on the host's worker threads at PASSIVE_LEVEL. */
#ifndef WFP_DDK_KMRT_H
#define WFP_DDK_KMRT_H

/* ---- access rights, object attributes ---- */
#define DELETE 0x00010000L
#define READ_CONTROL 0x00020000L
#define SYNCHRONIZE 0x00100000L
#define STANDARD_RIGHTS_REQUIRED 0x000F0000L
#define STANDARD_RIGHTS_READ READ_CONTROL
#define STANDARD_RIGHTS_ALL 0x001F0000L
#define GENERIC_READ 0x80000000L
#define GENERIC_WRITE 0x40000000L
#define GENERIC_EXECUTE 0x20000000L
#define GENERIC_ALL 0x10000000L
#define THREAD_ALL_ACCESS (STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0xFFFF)
#define OBJ_INHERIT 0x00000002L
#define OBJ_PERMANENT 0x00000010L
#define OBJ_EXCLUSIVE 0x00000020L
#define OBJ_CASE_INSENSITIVE 0x00000040L
#define OBJ_OPENIF 0x00000080L
#define OBJ_KERNEL_HANDLE 0x00000200L
typedef struct _OBJECT_ATTRIBUTES {
    ULONG Length;
    HANDLE RootDirectory;
    PUNICODE_STRING ObjectName;
    ULONG Attributes;
    PVOID SecurityDescriptor;
    PVOID SecurityQualityOfService;
} OBJECT_ATTRIBUTES, *POBJECT_ATTRIBUTES;
typedef const OBJECT_ATTRIBUTES *PCOBJECT_ATTRIBUTES;
#define InitializeObjectAttributes(p, n, a, r, s) do { \
        (p)->Length = sizeof(OBJECT_ATTRIBUTES); (p)->RootDirectory = (r); (p)->Attributes = (a); \
        (p)->ObjectName = (n); (p)->SecurityDescriptor = (s); (p)->SecurityQualityOfService = NULL; \
    } while (0)
typedef struct _CLIENT_ID {
    HANDLE UniqueProcess;
    HANDLE UniqueThread;
} CLIENT_ID, *PCLIENT_ID;
typedef struct _OBJECT_HANDLE_INFORMATION {
    ULONG HandleAttributes;
    ACCESS_MASK GrantedAccess;
} OBJECT_HANDLE_INFORMATION, *POBJECT_HANDLE_INFORMATION;
typedef struct _OBJECT_TYPE *POBJECT_TYPE;
#define NtCurrentProcess() ((HANDLE)(LONG_PTR)-1)
#define ZwCurrentProcess() NtCurrentProcess()

/* ---- events and waits (§3) ---- */
typedef struct _DISPATCHER_HEADER {
    UCHAR Type;
    UCHAR Signalling;
    UCHAR Size;
    UCHAR Reserved1;
    LONG SignalState;
    LIST_ENTRY WaitListHead;
} DISPATCHER_HEADER;
typedef struct _KEVENT {
    DISPATCHER_HEADER Header;
} KEVENT, *PKEVENT, *PRKEVENT;
typedef enum _EVENT_TYPE { NotificationEvent = 0, SynchronizationEvent = 1 } EVENT_TYPE;
typedef enum _KWAIT_REASON {
    Executive = 0, FreePage = 1, PageIn = 2, PoolAllocation = 3, DelayExecution = 4, Suspended = 5,
    UserRequest = 6, WrExecutive = 7, WrFreePage = 8, WrPageIn = 9, WrPoolAllocation = 10,
    WrDelayExecution = 11, WrSuspended = 12, WrUserRequest = 13
} KWAIT_REASON;
#define IO_NO_INCREMENT 0
#define EVENT_INCREMENT 1
void KeInitializeEvent(PRKEVENT Event, EVENT_TYPE Type, BOOLEAN State);
LONG KeSetEvent(PRKEVENT Event, KPRIORITY Increment, BOOLEAN Wait);
LONG KeResetEvent(PRKEVENT Event);
void KeClearEvent(PRKEVENT Event);
LONG KeReadStateEvent(PRKEVENT Event);
/* Timeout: NULL = forever; negative = relative, 100-ns units; positive = absolute system time;
 * 0 = poll. Returns STATUS_SUCCESS, STATUS_ABANDONED (a mutex) or STATUS_TIMEOUT. Waitable: KEVENT,
 * KMUTEX, KSEMAPHORE, KTIMER, thread objects. */
NTSTATUS KeWaitForSingleObject(PVOID Object, KWAIT_REASON WaitReason, KPROCESSOR_MODE WaitMode,
                               BOOLEAN Alertable, PLARGE_INTEGER Timeout);
NTSTATUS KeDelayExecutionThread(KPROCESSOR_MODE WaitMode, BOOLEAN Alertable, PLARGE_INTEGER Interval);

/* ---- mutexes, semaphores, multi-object waits (KMUTEX, KSEMAPHORE, x64 layouts; docs/c-abi.md) ----
 * KMUTEX: recursive by its owner thread (each wait that takes it needs a KeReleaseMutex); a
 * system thread that ends owning one abandons it (Verifier finding): the next wait that takes it
 * returns STATUS_ABANDONED_WAIT_0 (+ index). Releasing a mutex the thread does not own, or a
 * semaphore beyond its Limit, is a Verifier finding and changes nothing. KeWaitForSingleObject
 * and KeWaitForMultipleObjects wait on events, mutexes, semaphores, timers and thread objects. */
typedef struct _KMUTANT {
    DISPATCHER_HEADER Header;
    LIST_ENTRY MutantListEntry;
    struct _KTHREAD *OwnerThread;
    BOOLEAN Abandoned;
    UCHAR ApcDisable;
} KMUTANT, *PKMUTANT, *PRKMUTANT, KMUTEX, *PKMUTEX, *PRKMUTEX;
_Static_assert(sizeof(KMUTEX) == 56, "KMUTEX is 56 bytes on x64");
typedef struct _KSEMAPHORE {
    DISPATCHER_HEADER Header;
    LONG Limit;
} KSEMAPHORE, *PKSEMAPHORE, *PRKSEMAPHORE;
_Static_assert(sizeof(KSEMAPHORE) == 32, "KSEMAPHORE is 32 bytes on x64");
void KeInitializeMutex(PRKMUTEX Mutex, ULONG Level);
LONG KeReleaseMutex(PRKMUTEX Mutex, BOOLEAN Wait);
LONG KeReadStateMutex(PRKMUTEX Mutex);
#define KeWaitForMutexObject KeWaitForSingleObject
void KeInitializeSemaphore(PRKSEMAPHORE Semaphore, LONG Count, LONG Limit);
LONG KeReleaseSemaphore(PRKSEMAPHORE Semaphore, KPRIORITY Increment, LONG Adjustment, BOOLEAN Wait);
LONG KeReadStateSemaphore(PRKSEMAPHORE Semaphore);
typedef enum _WAIT_TYPE { WaitAll = 0, WaitAny = 1, WaitNotification = 2, WaitDequeue = 3 } WAIT_TYPE;
#define THREAD_WAIT_OBJECTS 3
#define MAXIMUM_WAIT_OBJECTS 64
/* The caller's storage for waits on more than THREAD_WAIT_OBJECTS objects (never read here). */
typedef struct _KWAIT_BLOCK {
    LIST_ENTRY WaitListEntry;
    UCHAR WaitType;
    UCHAR BlockState;
    USHORT WaitKey;
    LONG SpareLong;
    struct _KTHREAD *Thread;
    PVOID Object;
    PVOID SparePtr;
} KWAIT_BLOCK, *PKWAIT_BLOCK, *PRKWAIT_BLOCK;
_Static_assert(sizeof(KWAIT_BLOCK) == 48, "KWAIT_BLOCK is 48 bytes on x64");
#define STATUS_WAIT_1 ((NTSTATUS)0x00000001L)
#define STATUS_WAIT_2 ((NTSTATUS)0x00000002L)
#define STATUS_WAIT_3 ((NTSTATUS)0x00000003L)
#define STATUS_WAIT_63 ((NTSTATUS)0x0000003FL)
#define STATUS_ABANDONED_WAIT_0 ((NTSTATUS)0x00000080L)
#define STATUS_ABANDONED_WAIT_63 ((NTSTATUS)0x000000BFL)
#define STATUS_MUTANT_NOT_OWNED ((NTSTATUS)0xC0000046L)
#define STATUS_SEMAPHORE_LIMIT_EXCEEDED ((NTSTATUS)0xC0000047L)
/* WaitAny: STATUS_WAIT_0 + the index of the object that satisfied the wait; WaitAll:
 * STATUS_SUCCESS; STATUS_ABANDONED_WAIT_0 + index for an abandoned mutex; STATUS_TIMEOUT.
 * More than THREAD_WAIT_OBJECTS objects need WaitBlockArray (MAXIMUM_WAIT_OBJECTS at most). */
NTSTATUS KeWaitForMultipleObjects(ULONG Count, PVOID Object[], WAIT_TYPE WaitType, KWAIT_REASON WaitReason,
                                  KPROCESSOR_MODE WaitMode, BOOLEAN Alertable, PLARGE_INTEGER Timeout,
                                  PKWAIT_BLOCK WaitBlockArray);

/* ---- fast mutexes, executive resources, critical regions ----
 * ExAcquireFastMutex (≤ APC_LEVEL) raises to APC_LEVEL and ExReleaseFastMutex restores; not
 * recursive (a second acquire by the owner is a Verifier finding and returns at once). ERESOURCE
 * is opaque: shared / exclusive, recursive for its owners, an exclusive waiter holds back new
 * shared owners; acquire inside KeEnterCriticalRegion (else a finding), delete before unload
 * (else ObjectsLeft). */
typedef struct _FAST_MUTEX {
    volatile LONG Count;
    PVOID Owner;
    ULONG Contention;
    KEVENT Event;
    ULONG OldIrql;
} FAST_MUTEX, *PFAST_MUTEX;
_Static_assert(sizeof(FAST_MUTEX) == 56, "FAST_MUTEX is 56 bytes on x64");
#define FM_LOCK_BIT 0x1
static inline __attribute__((unused)) void ExInitializeFastMutex(PFAST_MUTEX FastMutex)
{
    FastMutex->Count = FM_LOCK_BIT;
    FastMutex->Owner = NULL;
    FastMutex->Contention = 0;
    KeInitializeEvent(&FastMutex->Event, SynchronizationEvent, FALSE);
}
void ExAcquireFastMutex(PFAST_MUTEX FastMutex);
BOOLEAN ExTryToAcquireFastMutex(PFAST_MUTEX FastMutex);
void ExReleaseFastMutex(PFAST_MUTEX FastMutex);
void ExAcquireFastMutexUnsafe(PFAST_MUTEX FastMutex);
void ExReleaseFastMutexUnsafe(PFAST_MUTEX FastMutex);
void KeEnterCriticalRegion(void);
void KeLeaveCriticalRegion(void);
typedef struct _ERESOURCE {
    ULONGLONG Opaque[13];
} ERESOURCE, *PERESOURCE;
_Static_assert(sizeof(ERESOURCE) == 104, "ERESOURCE is 104 bytes on x64");
NTSTATUS ExInitializeResourceLite(PERESOURCE Resource);
NTSTATUS ExDeleteResourceLite(PERESOURCE Resource);
BOOLEAN ExAcquireResourceSharedLite(PERESOURCE Resource, BOOLEAN Wait);
BOOLEAN ExAcquireResourceExclusiveLite(PERESOURCE Resource, BOOLEAN Wait);
void ExReleaseResourceLite(PERESOURCE Resource);
#define ExReleaseResource ExReleaseResourceLite
BOOLEAN ExIsResourceAcquiredExclusiveLite(PERESOURCE Resource);
ULONG ExIsResourceAcquiredSharedLite(PERESOURCE Resource);

/* ---- timers (KTIMER, x64 layout; docs/c-abi.md) ----
 * DueTime: negative = relative in 100-ns units, positive = absolute system time (the host's
 * clock), 0 = now. Period in ms (0 = one-shot). When it fires the timer is signalled (a
 * synchronization timer's signal is consumed by one wait) and the optional KDPC is queued (it runs
 * at DISPATCH_LEVEL on a host thread). KeSetTimer[Ex] / KeCancelTimer return whether the timer
 * was set. Timers still set after the unload routine are cancelled and reported. */
typedef enum _TIMER_TYPE { NotificationTimer = 0, SynchronizationTimer = 1 } TIMER_TYPE;
typedef struct _KTIMER {
    DISPATCHER_HEADER Header;
    ULARGE_INTEGER DueTime;
    LIST_ENTRY TimerListEntry;
    struct _KDPC *Dpc;
    ULONG Processor;
    ULONG Period;
} KTIMER, *PKTIMER, *PRKTIMER;
_Static_assert(sizeof(KTIMER) == 64, "KTIMER is 64 bytes on x64");
void KeInitializeTimer(PKTIMER Timer);
void KeInitializeTimerEx(PKTIMER Timer, TIMER_TYPE Type);
BOOLEAN KeSetTimer(PKTIMER Timer, LARGE_INTEGER DueTime, PKDPC Dpc);
BOOLEAN KeSetTimerEx(PKTIMER Timer, LARGE_INTEGER DueTime, LONG Period, PKDPC Dpc);
BOOLEAN KeCancelTimer(PKTIMER Timer);
BOOLEAN KeReadStateTimer(PKTIMER Timer);

/* ---- system threads and object references (§3) ---- */
/* Thread objects are opaque (ObReferenceObjectByHandle gives one; KeWaitForSingleObject waits). */
typedef struct _KTHREAD *PKTHREAD, *PRKTHREAD;
typedef struct _ETHREAD *PETHREAD;
typedef void KSTART_ROUTINE(PVOID StartContext);
typedef KSTART_ROUTINE *PKSTART_ROUTINE;
extern POBJECT_TYPE *PsThreadType;
NTSTATUS WfpRtCreateSystemThread(PHANDLE ThreadHandle, ULONG DesiredAccess, POBJECT_ATTRIBUTES ObjectAttributes,
                                 HANDLE ProcessHandle, PCLIENT_ID ClientId,
                                 void (*Trampoline)(PKSTART_ROUTINE, PVOID), PKSTART_ROUTINE StartRoutine,
                                 PVOID StartContext);
void WfpRtThreadSetExit(void **JumpBuffer);
void **WfpRtThreadExit(NTSTATUS ExitStatus);
/* Runs in the new thread: PsTerminateSystemThread unwinds (C frames only) back to here. */
static inline __attribute__((unused)) void WfpRtThreadMain(PKSTART_ROUTINE StartRoutine, PVOID StartContext)
{
    void *jump[5];
    if (__builtin_setjmp(jump) == 0) {
        WfpRtThreadSetExit(jump);
        StartRoutine(StartContext);
    }
}
static inline __attribute__((unused)) NTSTATUS PsCreateSystemThread(
    PHANDLE ThreadHandle, ULONG DesiredAccess, POBJECT_ATTRIBUTES ObjectAttributes, HANDLE ProcessHandle,
    PCLIENT_ID ClientId, PKSTART_ROUTINE StartRoutine, PVOID StartContext)
{
    return WfpRtCreateSystemThread(ThreadHandle, DesiredAccess, ObjectAttributes, ProcessHandle, ClientId,
                                   WfpRtThreadMain, StartRoutine, StartContext);
}
/* Ends the calling system thread; STATUS_INVALID_PARAMETER (and no effect) on any other thread. */
static inline __attribute__((unused)) NTSTATUS PsTerminateSystemThread(NTSTATUS ExitStatus)
{
    void **jump = WfpRtThreadExit(ExitStatus);
    if (jump) __builtin_longjmp(jump, 1);
    return STATUS_INVALID_PARAMETER;
}
NTSTATUS ObReferenceObjectByHandle(HANDLE Handle, ACCESS_MASK DesiredAccess, POBJECT_TYPE ObjectType,
                                   KPROCESSOR_MODE AccessMode, PVOID *Object,
                                   POBJECT_HANDLE_INFORMATION HandleInformation);
LONG_PTR ObfReferenceObject(PVOID Object);
LONG_PTR ObfDereferenceObject(PVOID Object);
#define ObReferenceObject(o) ObfReferenceObject(o)
#define ObDereferenceObject(o) ObfDereferenceObject(o)
/* ---- callback objects (ExCreateCallback ...): the host's own namespace. \Callback\PowerState,
 * \Callback\SetSystemTime and \Callback\ProcessorAdd exist; the host never notifies them (no
 * power transitions, clock changes or hot-added processors), so their callbacks run only through
 * ExNotifyCallback. Registrations and references left at unload are Verifier findings. */
typedef struct _CALLBACK_OBJECT *PCALLBACK_OBJECT;
typedef void CALLBACK_FUNCTION(PVOID CallbackContext, PVOID Argument1, PVOID Argument2);
typedef CALLBACK_FUNCTION *PCALLBACK_FUNCTION;
NTSTATUS ExCreateCallback(PCALLBACK_OBJECT *CallbackObject, POBJECT_ATTRIBUTES ObjectAttributes, BOOLEAN Create,
                          BOOLEAN AllowMultipleCallbacks);
PVOID ExRegisterCallback(PCALLBACK_OBJECT CallbackObject, PCALLBACK_FUNCTION CallbackFunction, PVOID CallbackContext);
void ExUnregisterCallback(PVOID CallbackRegistration);
/* Calls every registered function, in registration order, on the caller's thread and IRQL. */
void ExNotifyCallback(PVOID CallbackObject, PVOID Argument1, PVOID Argument2);
#define PO_CB_SYSTEM_POWER_POLICY 0
#define PO_CB_AC_STATUS 1
#define PO_CB_BUTTON_COLLISION 2
#define PO_CB_SYSTEM_STATE_LOCK 3
#define PO_CB_LID_SWITCH_STATE 4
#define PO_CB_PROCESSOR_POWER_POLICY 5
NTSTATUS ZwClose(HANDLE Handle);
HANDLE PsGetCurrentProcessId(void);
HANDLE PsGetCurrentThreadId(void);

/* ---- work items (§4): host worker threads, PASSIVE_LEVEL ---- */
typedef struct _IO_WORKITEM IO_WORKITEM, *PIO_WORKITEM;
typedef void IO_WORKITEM_ROUTINE(PDEVICE_OBJECT DeviceObject, PVOID Context);
typedef IO_WORKITEM_ROUTINE *PIO_WORKITEM_ROUTINE;
typedef void IO_WORKITEM_ROUTINE_EX(PVOID IoObject, PVOID Context, PIO_WORKITEM IoWorkItem);
typedef IO_WORKITEM_ROUTINE_EX *PIO_WORKITEM_ROUTINE_EX;
typedef enum _WORK_QUEUE_TYPE {
    CriticalWorkQueue = 0, DelayedWorkQueue = 1, HyperCriticalWorkQueue = 2, NormalWorkQueue = 3,
    BackgroundWorkQueue = 4, RealTimeWorkQueue = 5, SuperCriticalWorkQueue = 6, MaximumWorkQueue = 7,
    CustomPriorityWorkQueue = 32
} WORK_QUEUE_TYPE;
PIO_WORKITEM IoAllocateWorkItem(PDEVICE_OBJECT DeviceObject);
void IoFreeWorkItem(PIO_WORKITEM IoWorkItem);
ULONG IoSizeofWorkItem(void);
void IoInitializeWorkItem(PVOID IoObject, PIO_WORKITEM IoWorkItem);
void IoUninitializeWorkItem(PIO_WORKITEM IoWorkItem);
void IoQueueWorkItem(PIO_WORKITEM IoWorkItem, PIO_WORKITEM_ROUTINE WorkerRoutine, WORK_QUEUE_TYPE QueueType, PVOID Context);
void IoQueueWorkItemEx(PIO_WORKITEM IoWorkItem, PIO_WORKITEM_ROUTINE_EX WorkerRoutine, WORK_QUEUE_TYPE QueueType, PVOID Context);

/* ---- lookaside lists (§2) ---- */
typedef struct _LOOKASIDE_LIST_EX LOOKASIDE_LIST_EX, *PLOOKASIDE_LIST_EX;
typedef PVOID ALLOCATE_FUNCTION_EX(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag, PLOOKASIDE_LIST_EX Lookaside);
typedef ALLOCATE_FUNCTION_EX *PALLOCATE_FUNCTION_EX;
typedef void FREE_FUNCTION_EX(PVOID Buffer, PLOOKASIDE_LIST_EX Lookaside);
typedef FREE_FUNCTION_EX *PFREE_FUNCTION_EX;
typedef PVOID ALLOCATE_FUNCTION(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
typedef ALLOCATE_FUNCTION *PALLOCATE_FUNCTION;
typedef void FREE_FUNCTION(PVOID Buffer);
typedef FREE_FUNCTION *PFREE_FUNCTION;
#define WFP_GENERAL_LOOKASIDE_LAYOUT \
    SLIST_HEADER ListHead; \
    USHORT Depth; \
    USHORT MaximumDepth; \
    ULONG TotalAllocates; \
    union { ULONG AllocateMisses; ULONG AllocateHits; }; \
    ULONG TotalFrees; \
    union { ULONG FreeMisses; ULONG FreeHits; }; \
    POOL_TYPE Type; \
    ULONG Tag; \
    ULONG Size; \
    union { PALLOCATE_FUNCTION_EX AllocateEx; PALLOCATE_FUNCTION Allocate; }; \
    union { PFREE_FUNCTION_EX FreeEx; PFREE_FUNCTION Free; }; \
    LIST_ENTRY ListEntry; \
    ULONG LastTotalAllocates; \
    union { ULONG LastAllocateMisses; ULONG LastAllocateHits; }; \
    ULONG Future[2];
typedef struct DECLSPEC_ALIGN(16) _GENERAL_LOOKASIDE_POOL { WFP_GENERAL_LOOKASIDE_LAYOUT } GENERAL_LOOKASIDE_POOL, *PGENERAL_LOOKASIDE_POOL;
typedef struct DECLSPEC_CACHEALIGN _GENERAL_LOOKASIDE { WFP_GENERAL_LOOKASIDE_LAYOUT } GENERAL_LOOKASIDE, *PGENERAL_LOOKASIDE;
struct _LOOKASIDE_LIST_EX { GENERAL_LOOKASIDE_POOL L; };
typedef struct _NPAGED_LOOKASIDE_LIST {
    GENERAL_LOOKASIDE L;
    KSPIN_LOCK Lock__ObsoleteButDoNotDelete;
} NPAGED_LOOKASIDE_LIST, *PNPAGED_LOOKASIDE_LIST;
#define EX_LOOKASIDE_LIST_EX_FLAGS_RAISE_ON_FAIL 0x00000001UL
#define EX_LOOKASIDE_LIST_EX_FLAGS_FAIL_NO_RAISE 0x00000002UL
#define LOOKASIDE_MINIMUM_BLOCK_SIZE (RTL_SIZEOF_THROUGH_FIELD(SLIST_ENTRY, Next))
/* Depth 0: the runtime picks the depth (256 cached entries). Entries are not zeroed. */
NTSTATUS ExInitializeLookasideListEx(PLOOKASIDE_LIST_EX Lookaside, PALLOCATE_FUNCTION_EX Allocate, PFREE_FUNCTION_EX Free,
                                     POOL_TYPE PoolType, ULONG Flags, SIZE_T Size, ULONG Tag, USHORT Depth);
PVOID ExAllocateFromLookasideListEx(PLOOKASIDE_LIST_EX Lookaside);
void ExFreeToLookasideListEx(PLOOKASIDE_LIST_EX Lookaside, PVOID Entry);
void ExFlushLookasideListEx(PLOOKASIDE_LIST_EX Lookaside);
void ExDeleteLookasideListEx(PLOOKASIDE_LIST_EX Lookaside);
void ExInitializeNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside, PALLOCATE_FUNCTION Allocate, PFREE_FUNCTION Free,
                                     ULONG Flags, SIZE_T Size, ULONG Tag, USHORT Depth);
PVOID ExAllocateFromNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside);
void ExFreeToNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside, PVOID Entry);
void ExDeleteNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside);

/* ---- the driver's own service key (§8): ZwOpenKey on RegistryPath or RegistryPath\Parameters,
 * ZwQueryValueKey on Parameters (the driver's configured parameters); other keys do not exist ---- */
#define KEY_QUERY_VALUE 0x0001
#define KEY_SET_VALUE 0x0002
#define KEY_ENUMERATE_SUB_KEYS 0x0008
#define KEY_NOTIFY 0x0010
#define KEY_READ ((READ_CONTROL | KEY_QUERY_VALUE | KEY_ENUMERATE_SUB_KEYS | KEY_NOTIFY) & ~SYNCHRONIZE)
#define REG_NONE 0
#define REG_SZ 1
#define REG_EXPAND_SZ 2
#define REG_BINARY 3
#define REG_DWORD 4
typedef enum _KEY_VALUE_INFORMATION_CLASS {
    KeyValueBasicInformation = 0, KeyValueFullInformation = 1, KeyValuePartialInformation = 2
} KEY_VALUE_INFORMATION_CLASS;
typedef struct _KEY_VALUE_FULL_INFORMATION {
    ULONG TitleIndex;
    ULONG Type;
    ULONG DataOffset;
    ULONG DataLength;
    ULONG NameLength;
    WCHAR Name[1];
} KEY_VALUE_FULL_INFORMATION, *PKEY_VALUE_FULL_INFORMATION;
typedef struct _KEY_VALUE_PARTIAL_INFORMATION {
    ULONG TitleIndex;
    ULONG Type;
    ULONG DataLength;
    UCHAR Data[1];
} KEY_VALUE_PARTIAL_INFORMATION, *PKEY_VALUE_PARTIAL_INFORMATION;
NTSTATUS ZwOpenKey(PHANDLE KeyHandle, ACCESS_MASK DesiredAccess, POBJECT_ATTRIBUTES ObjectAttributes);
/* Full and Partial information (Basic: STATUS_INVALID_PARAMETER). A buffer shorter than the
 * header: STATUS_BUFFER_TOO_SMALL; shorter than the record: STATUS_BUFFER_OVERFLOW (header written);
 * *ResultLength = the record's size either way. */
NTSTATUS ZwQueryValueKey(HANDLE KeyHandle, PUNICODE_STRING ValueName, KEY_VALUE_INFORMATION_CLASS KeyValueInformationClass,
                         PVOID KeyValueInformation, ULONG Length, PULONG ResultLength);

_Static_assert(sizeof(KEVENT) == 24, "KEVENT is 24 bytes on x64");
_Static_assert(sizeof(LOOKASIDE_LIST_EX) == 96, "LOOKASIDE_LIST_EX is 0x60 bytes on x64");
_Static_assert(sizeof(NPAGED_LOOKASIDE_LIST) == 192, "NPAGED_LOOKASIDE_LIST is 0xC0 bytes on x64");
_Static_assert(sizeof(OBJECT_ATTRIBUTES) == 48, "OBJECT_ATTRIBUTES is 0x30 bytes on x64");
#endif
