/* Kernel-runtime checks run inside a real driver: DriverEntry exercises pool, lookaside lists,
 * events and waits, system threads, object references, work items, Interlocked*, LIST_ENTRY and
 * Rtl helpers, and prints "ok NAME" or "FAIL NAME ..." lines that tests/runtime.rs asserts on. */
#include <ntddk.h>

#define TAG 'tRtK'
#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

static LARGE_INTEGER Ms(LONG ms) { LARGE_INTEGER t; t.QuadPart = -10000LL * ms; return t; }

/* ---- pool, lookaside ---- */
static LONG Allocs, Frees;
static PVOID MyAlloc(POOL_TYPE type, SIZE_T size, ULONG tag, PLOOKASIDE_LIST_EX l)
{
    UNREFERENCED_PARAMETER(l);
    InterlockedIncrement(&Allocs);
    return ExAllocatePoolWithTag(type, size, tag);
}
static void MyFree(PVOID p, PLOOKASIDE_LIST_EX l)
{
    UNREFERENCED_PARAMETER(l);
    InterlockedIncrement(&Frees);
    ExFreePoolWithTag(p, TAG);
}

static void PoolChecks(void)
{
    UCHAR *z = ExAllocatePoolZero(NonPagedPoolNx, 300, TAG);
    BOOLEAN zero = z != NULL;
    for (int i = 0; z && i < 300; i++) zero = zero && z[i] == 0;
    CHECK("ExAllocatePoolZero zeroes", zero);
    CHECK("ExAllocatePoolZero 16-aligned", ((ULONG_PTR)z & 15) == 0);
    if (z) ExFreePoolWithTag(z, TAG);

    LOOKASIDE_LIST_EX l;
    CHECK("ExInitializeLookasideListEx", NT_SUCCESS(ExInitializeLookasideListEx(&l, NULL, NULL, NonPagedPoolNx, 0, 64, TAG, 0)));
    PVOID a = ExAllocateFromLookasideListEx(&l), b = ExAllocateFromLookasideListEx(&l), c = ExAllocateFromLookasideListEx(&l);
    CHECK("lookaside entries distinct", a && b && c && a != b && b != c && a != c);
    memset(a, 0xAB, 64);
    ExFreeToLookasideListEx(&l, a);
    PVOID again = ExAllocateFromLookasideListEx(&l);
    CHECK("lookaside reuses a freed entry", again == a);
    CHECK("lookaside counters", l.L.TotalAllocates == 4 && l.L.AllocateMisses == 3 && l.L.TotalFrees == 1 && l.L.Size == 64 && l.L.Tag == TAG);
    ExFreeToLookasideListEx(&l, again);
    ExFreeToLookasideListEx(&l, b);
    ExFreeToLookasideListEx(&l, c);
    ExDeleteLookasideListEx(&l);

    LOOKASIDE_LIST_EX m;
    ExInitializeLookasideListEx(&m, MyAlloc, MyFree, NonPagedPoolNx, 0, 32, TAG, 0);
    PVOID x = ExAllocateFromLookasideListEx(&m);
    PVOID y = ExAllocateFromLookasideListEx(&m);
    ExFreeToLookasideListEx(&m, x);
    CHECK("custom allocate routine called per miss", Allocs == 2 && Frees == 0);
    ExFreeToLookasideListEx(&m, y);
    ExDeleteLookasideListEx(&m);
    CHECK("delete frees cached entries through the free routine", Frees == 2);

    NPAGED_LOOKASIDE_LIST n;
    ExInitializeNPagedLookasideList(&n, NULL, NULL, 0, 48, TAG, 0);
    PVOID e = ExAllocateFromNPagedLookasideList(&n);
    CHECK("legacy lookaside", e != NULL);
    ExFreeToNPagedLookasideList(&n, e);
    ExDeleteNPagedLookasideList(&n);
}

/* ---- events ---- */
static void EventChecks(void)
{
    KEVENT ev;
    LARGE_INTEGER t = Ms(1), zero = {0};
    KeInitializeEvent(&ev, NotificationEvent, FALSE);
    CHECK("new event not signaled", KeReadStateEvent(&ev) == 0);
    CHECK("relative timeout -> STATUS_TIMEOUT", KeWaitForSingleObject(&ev, Executive, KernelMode, FALSE, &t) == STATUS_TIMEOUT);
    CHECK("poll -> STATUS_TIMEOUT", KeWaitForSingleObject(&ev, Executive, KernelMode, FALSE, &zero) == STATUS_TIMEOUT);
    CHECK("KeSetEvent returns previous 0", KeSetEvent(&ev, IO_NO_INCREMENT, FALSE) == 0);
    CHECK("KeSetEvent returns previous 1", KeSetEvent(&ev, IO_NO_INCREMENT, FALSE) != 0);
    CHECK("notification wait succeeds", KeWaitForSingleObject(&ev, Executive, KernelMode, FALSE, NULL) == STATUS_SUCCESS);
    CHECK("notification event stays signaled", KeWaitForSingleObject(&ev, Executive, KernelMode, FALSE, &zero) == STATUS_SUCCESS);
    CHECK("KeResetEvent returns previous", KeResetEvent(&ev) != 0 && KeReadStateEvent(&ev) == 0);
    KeSetEvent(&ev, 0, FALSE);
    KeClearEvent(&ev);
    CHECK("KeClearEvent", KeReadStateEvent(&ev) == 0);

    KEVENT sync;
    KeInitializeEvent(&sync, SynchronizationEvent, TRUE);
    CHECK("sync event initially signaled", KeWaitForSingleObject(&sync, Executive, KernelMode, FALSE, &zero) == STATUS_SUCCESS);
    CHECK("sync event auto-resets", KeWaitForSingleObject(&sync, Executive, KernelMode, FALSE, &zero) == STATUS_TIMEOUT);

    LARGE_INTEGER now, abs;
    KeQuerySystemTime(&now);
    abs.QuadPart = now.QuadPart + 20000; /* 2 ms after now, absolute */
    CHECK("absolute timeout -> STATUS_TIMEOUT", KeWaitForSingleObject(&sync, Executive, KernelMode, FALSE, &abs) == STATUS_TIMEOUT);
    LARGE_INTEGER d = Ms(1);
    CHECK("KeDelayExecutionThread", KeDelayExecutionThread(KernelMode, FALSE, &d) == STATUS_SUCCESS);
}

/* ---- threads ---- */
typedef struct _THREAD_CTX {
    KEVENT Go;
    LONG Ran;
    LONG After;
    KIRQL Irql;
    HANDLE Tid;
} THREAD_CTX;

static void TerminatingThread(PVOID p)
{
    THREAD_CTX *c = p;
    c->Irql = KeGetCurrentIrql();
    c->Tid = PsGetCurrentThreadId();
    KeWaitForSingleObject(&c->Go, Executive, KernelMode, FALSE, NULL);
    InterlockedIncrement(&c->Ran);
    PsTerminateSystemThread(STATUS_SUCCESS);
    c->After = 1; /* never reached */
}

static void ReturningThread(PVOID p)
{
    THREAD_CTX *c = p;
    InterlockedIncrement(&c->Ran);
}

static void ThreadChecks(void)
{
    THREAD_CTX c = {0};
    HANDLE h = NULL;
    PVOID thread = NULL;
    OBJECT_ATTRIBUTES oa;
    InitializeObjectAttributes(&oa, NULL, OBJ_KERNEL_HANDLE, NULL, NULL);
    KeInitializeEvent(&c.Go, NotificationEvent, FALSE);
    CHECK("PsCreateSystemThread", NT_SUCCESS(PsCreateSystemThread(&h, THREAD_ALL_ACCESS, &oa, NULL, NULL, TerminatingThread, &c)));
    CHECK("ObReferenceObjectByHandle", NT_SUCCESS(ObReferenceObjectByHandle(h, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &thread, NULL)));
    CHECK("ZwClose", ZwClose(h) == STATUS_SUCCESS);
    LARGE_INTEGER t = Ms(1);
    CHECK("running thread not signaled", KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, &t) == STATUS_TIMEOUT);
    KeSetEvent(&c.Go, IO_NO_INCREMENT, FALSE);
    CHECK("wait on thread object", KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, NULL) == STATUS_SUCCESS);
    CHECK("thread ran at PASSIVE_LEVEL on another thread", c.Ran == 1 && c.Irql == PASSIVE_LEVEL && c.Tid != PsGetCurrentThreadId());
    CHECK("PsTerminateSystemThread does not return", c.After == 0);
    ObDereferenceObject(thread);
    CHECK("PsTerminateSystemThread outside a system thread", PsTerminateSystemThread(STATUS_SUCCESS) == STATUS_INVALID_PARAMETER);

    THREAD_CTX r = {0};
    CLIENT_ID id;
    CHECK("PsCreateSystemThread (returning)", NT_SUCCESS(PsCreateSystemThread(&h, THREAD_ALL_ACCESS, NULL, NULL, &id, ReturningThread, &r)));
    CHECK("client id", id.UniqueProcess == PsGetCurrentProcessId());
    ObReferenceObjectByHandle(h, THREAD_ALL_ACCESS, NULL, KernelMode, &thread, NULL);
    ZwClose(h);
    CHECK("returning from the start routine ends the thread", KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, NULL) == STATUS_SUCCESS && r.Ran == 1);
    ObDereferenceObject(thread);
}

/* ---- work items ---- */
typedef struct _WORK_CTX {
    KEVENT Done;
    PDEVICE_OBJECT Device;
    KIRQL Irql;
    HANDLE Tid;
    PIO_WORKITEM Self;
} WORK_CTX;

static void Work(PDEVICE_OBJECT dev, PVOID p)
{
    WORK_CTX *w = p;
    w->Device = dev;
    w->Irql = KeGetCurrentIrql();
    w->Tid = PsGetCurrentThreadId();
    KeSetEvent(&w->Done, IO_NO_INCREMENT, FALSE);
}

static void WorkEx(PVOID obj, PVOID p, PIO_WORKITEM item)
{
    WORK_CTX *w = p;
    w->Device = obj;
    w->Self = item;
    IoFreeWorkItem(item); /* freeing inside the routine is allowed */
    KeSetEvent(&w->Done, IO_NO_INCREMENT, FALSE);
}

static void WorkItemChecks(PDRIVER_OBJECT drv)
{
    PDEVICE_OBJECT dev;
    LARGE_INTEGER bound = Ms(10000);
    if (!NT_SUCCESS(IoCreateDevice(drv, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &dev))) { DbgPrint("FAIL IoCreateDevice\n"); return; }
    WORK_CTX w = {0};
    KeInitializeEvent(&w.Done, NotificationEvent, FALSE);
    PIO_WORKITEM item = IoAllocateWorkItem(dev);
    CHECK("IoAllocateWorkItem", item != NULL);
    KIRQL old;
    KeRaiseIrql(DISPATCH_LEVEL, &old); /* queueing at DISPATCH is allowed */
    IoQueueWorkItem(item, Work, DelayedWorkQueue, &w);
    KeLowerIrql(old);
    CHECK("work item ran", KeWaitForSingleObject(&w.Done, Executive, KernelMode, FALSE, &bound) == STATUS_SUCCESS);
    CHECK("work item at PASSIVE on a worker thread", w.Irql == PASSIVE_LEVEL && w.Tid != PsGetCurrentThreadId() && w.Device == dev);
    IoFreeWorkItem(item);

    PIO_WORKITEM own = ExAllocatePool2(POOL_FLAG_NON_PAGED, IoSizeofWorkItem(), TAG);
    IoInitializeWorkItem(dev, own);
    KeClearEvent(&w.Done);
    w.Device = NULL;
    IoQueueWorkItem(own, Work, DelayedWorkQueue, &w);
    CHECK("initialized work item ran", KeWaitForSingleObject(&w.Done, Executive, KernelMode, FALSE, &bound) == STATUS_SUCCESS && w.Device == dev);
    IoUninitializeWorkItem(own);
    ExFreePoolWithTag(own, TAG);

    PIO_WORKITEM ex = IoAllocateWorkItem(dev);
    KeClearEvent(&w.Done);
    IoQueueWorkItemEx(ex, WorkEx, DelayedWorkQueue, &w);
    CHECK("IoQueueWorkItemEx passes the item", KeWaitForSingleObject(&w.Done, Executive, KernelMode, FALSE, &bound) == STATUS_SUCCESS && w.Self == ex);
    IoDeleteDevice(dev);
}

/* ---- Interlocked, lists, Rtl ---- */
typedef struct _NODE { LIST_ENTRY Link; int Value; } NODE;

static void InlineChecks(void)
{
    LONG v = 5;
    CHAR c8 = 3;
    PVOID p = NULL, q = &v;
    CHECK("InterlockedIncrement returns new", InterlockedIncrement(&v) == 6);
    CHECK("InterlockedDecrement returns new", InterlockedDecrement(&v) == 5);
    CHECK("InterlockedAdd returns new", InterlockedAdd(&v, 10) == 15);
    CHECK("InterlockedExchange returns old", InterlockedExchange(&v, 7) == 15 && v == 7);
    CHECK("InterlockedExchange8 returns old", InterlockedExchange8(&c8, 9) == 3 && c8 == 9);
    CHECK("InterlockedCompareExchange (exchange before comperand), match", InterlockedCompareExchange(&v, 100, 7) == 7 && v == 100);
    CHECK("InterlockedCompareExchange, no match", InterlockedCompareExchange(&v, 1, 7) == 100 && v == 100);
    CHECK("InterlockedCompareExchangePointer", InterlockedCompareExchangePointer(&p, q, NULL) == NULL && p == q);
    CHECK("InterlockedExchangePointer returns old", InterlockedExchangePointer(&p, NULL) == q && p == NULL);
    v = 0x0F;
    CHECK("InterlockedOr returns old", InterlockedOr(&v, 0xF0) == 0x0F && v == 0xFF);
    CHECK("InterlockedAnd returns old", InterlockedAnd(&v, 0x3C) == 0xFF && v == 0x3C);

    LIST_ENTRY head;
    NODE n[4];
    InitializeListHead(&head);
    CHECK("IsListEmpty", IsListEmpty(&head));
    for (int i = 0; i < 3; i++) { n[i].Value = i; InsertTailList(&head, &n[i].Link); }
    n[3].Value = 3;
    InsertHeadList(&head, &n[3].Link);
    CHECK("RemoveHeadList + CONTAINING_RECORD", CONTAINING_RECORD(RemoveHeadList(&head), NODE, Link)->Value == 3);
    CHECK("RemoveTailList", CONTAINING_RECORD(RemoveTailList(&head), NODE, Link)->Value == 2);
    CHECK("RemoveEntryList not yet empty", RemoveEntryList(&n[0].Link) == FALSE);
    CHECK("RemoveEntryList now empty", RemoveEntryList(&n[1].Link) == TRUE && IsListEmpty(&head));
    CHECK("RemoveHeadList on empty returns the head", RemoveHeadList(&head) == &head);

    CHECK("RtlCompareMemory counts equal leading bytes", RtlCompareMemory("abcdef", "abcxef", 6) == 3 && RtlCompareMemory("ab", "ab", 2) == 2);
    UNICODE_STRING u;
    RtlInitUnicodeString(&u, L"h\u00e9llo");
    CHECK("RtlInitUnicodeString", u.Length == 10 && u.MaximumLength == 12);
    CHAR mb[16];
    ULONG got = 0;
    CHECK("RtlUnicodeToMultiByteN", RtlUnicodeToMultiByteN(mb, sizeof(mb), &got, u.Buffer, u.Length) == STATUS_SUCCESS && got == 6 && memcmp(mb, "h\xc3\xa9llo", 6) == 0);
    LARGE_INTEGER now;
    KeQuerySystemTime(&now);
    DbgPrint("systime %I64d\n", now.QuadPart);
}

static void Unload(PDRIVER_OBJECT d)
{
    UNREFERENCED_PARAMETER(d);
    DbgPrint("unloaded\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    ExInitializeDriverRuntime(DrvRtPoolNxOptIn);
    DriverObject->DriverUnload = Unload;
    PoolChecks();
    EventChecks();
    ThreadChecks();
    WorkItemChecks(DriverObject);
    InlineChecks();
    DbgPrint("done\n");
    return STATUS_SUCCESS;
}
