/* rt_sync test driver (ours): KMUTEX, KSEMAPHORE, KeWaitForMultipleObjects, FAST_MUTEX and
 * ERESOURCE, each also contended from a system thread. Prints "ok NAME" / "FAIL NAME". */
#include <ntddk.h>

#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

DRIVER_INITIALIZE DriverEntry;
KSTART_ROUTINE RtSyncThread;

typedef struct _SYNC_TEST {
    KMUTEX Mutex;
    KSEMAPHORE Semaphore;
    KEVENT Started;
    KEVENT Go;
    FAST_MUTEX Fast;
    ERESOURCE Resource;
    volatile NTSTATUS MutexPoll;
    volatile NTSTATUS MutexWait;
    volatile NTSTATUS SemaphoreWait;
    volatile BOOLEAN FastTry;
    volatile BOOLEAN ExclusiveTry;
    volatile BOOLEAN SharedTry;
} SYNC_TEST;

static SYNC_TEST T;

static NTSTATUS Poll(PVOID object)
{
    LARGE_INTEGER zero = {0};
    return KeWaitForSingleObject(object, Executive, KernelMode, FALSE, &zero);
}

/* The contender: polls what DriverEntry holds, signals Started, then waits for the mutex and the
 * semaphore DriverEntry releases after Started. */
void RtSyncThread(PVOID context)
{
    LARGE_INTEGER fiveSeconds;
    UNREFERENCED_PARAMETER(context);
    fiveSeconds.QuadPart = -10LL * 1000 * 1000 * 5;
    T.MutexPoll = Poll(&T.Mutex);
    T.FastTry = ExTryToAcquireFastMutex(&T.Fast);
    KeEnterCriticalRegion();
    T.ExclusiveTry = ExAcquireResourceExclusiveLite(&T.Resource, FALSE);
    T.SharedTry = ExAcquireResourceSharedLite(&T.Resource, FALSE);
    if (T.SharedTry) ExReleaseResourceLite(&T.Resource);
    KeLeaveCriticalRegion();
    KeSetEvent(&T.Started, IO_NO_INCREMENT, FALSE);
    T.MutexWait = KeWaitForMutexObject(&T.Mutex, Executive, KernelMode, FALSE, &fiveSeconds);
    if (T.MutexWait == STATUS_SUCCESS) KeReleaseMutex(&T.Mutex, FALSE);
    T.SemaphoreWait = KeWaitForSingleObject(&T.Semaphore, Executive, KernelMode, FALSE, &fiveSeconds);
    KeWaitForSingleObject(&T.Go, Executive, KernelMode, FALSE, &fiveSeconds);
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static void MutexAlone(void)
{
    KeInitializeMutex(&T.Mutex, 0);
    CHECK("mutex starts signalled", KeReadStateMutex(&T.Mutex) == 1);
    CHECK("mutex wait", KeWaitForSingleObject(&T.Mutex, Executive, KernelMode, FALSE, NULL) == STATUS_SUCCESS);
    CHECK("mutex owned", KeReadStateMutex(&T.Mutex) == 0);
    CHECK("mutex recursive", Poll(&T.Mutex) == STATUS_SUCCESS && KeReadStateMutex(&T.Mutex) == -1);
    KeReleaseMutex(&T.Mutex, FALSE);
    CHECK("mutex still owned after one release", KeReadStateMutex(&T.Mutex) == 0);
    KeReleaseMutex(&T.Mutex, FALSE);
    CHECK("mutex free", KeReadStateMutex(&T.Mutex) == 1);
}

static void SemaphoreAlone(void)
{
    KeInitializeSemaphore(&T.Semaphore, 2, 3);
    CHECK("semaphore count", KeReadStateSemaphore(&T.Semaphore) == 2);
    CHECK("semaphore take 1", Poll(&T.Semaphore) == STATUS_SUCCESS);
    CHECK("semaphore take 2", Poll(&T.Semaphore) == STATUS_SUCCESS);
    CHECK("semaphore empty", Poll(&T.Semaphore) == STATUS_TIMEOUT);
    CHECK("semaphore release returns the previous count", KeReleaseSemaphore(&T.Semaphore, 0, 3, FALSE) == 0);
    CHECK("semaphore at limit", KeReadStateSemaphore(&T.Semaphore) == 3);
    KeInitializeSemaphore(&T.Semaphore, 0, 1);
}

static void WaitMultiple(void)
{
    KEVENT notification, synchronization;
    KSEMAPHORE semaphore;
    KMUTEX mutex;
    KTIMER timer;
    KWAIT_BLOCK blocks[5];
    LARGE_INTEGER zero = {0}, due, second;
    PVOID any[2], all[4], timed[2];
    second.QuadPart = -10LL * 1000 * 1000;
    KeInitializeEvent(&notification, NotificationEvent, FALSE);
    KeInitializeEvent(&synchronization, SynchronizationEvent, TRUE);
    KeInitializeSemaphore(&semaphore, 1, 1);
    KeInitializeMutex(&mutex, 0);
    any[0] = &notification;
    any[1] = &semaphore;
    CHECK("WaitAny index", KeWaitForMultipleObjects(2, any, WaitAny, Executive, KernelMode, FALSE, &zero, NULL) == STATUS_WAIT_1);
    CHECK("WaitAny consumed the semaphore", KeReadStateSemaphore(&semaphore) == 0);
    CHECK("WaitAny none", KeWaitForMultipleObjects(2, any, WaitAny, Executive, KernelMode, FALSE, &zero, NULL) == STATUS_TIMEOUT);
    all[0] = &notification;
    all[1] = &synchronization;
    all[2] = &semaphore;
    all[3] = &mutex;
    KeReleaseSemaphore(&semaphore, 0, 1, FALSE);
    CHECK("WaitAll not all signalled",
          KeWaitForMultipleObjects(4, all, WaitAll, Executive, KernelMode, FALSE, &zero, blocks) == STATUS_TIMEOUT);
    CHECK("WaitAll took nothing", KeReadStateEvent(&synchronization) == 1 && KeReadStateSemaphore(&semaphore) == 1 &&
          KeReadStateMutex(&mutex) == 1);
    KeSetEvent(&notification, IO_NO_INCREMENT, FALSE);
    CHECK("WaitAll", KeWaitForMultipleObjects(4, all, WaitAll, Executive, KernelMode, FALSE, &zero, blocks) == STATUS_SUCCESS);
    CHECK("WaitAll took each", KeReadStateEvent(&synchronization) == 0 && KeReadStateSemaphore(&semaphore) == 0 &&
          KeReadStateMutex(&mutex) == 0 && KeReadStateEvent(&notification) == 1);
    KeReleaseMutex(&mutex, FALSE);
    KeInitializeTimer(&timer);
    due.QuadPart = -10LL * 1000 * 5; /* 5 ms */
    KeSetTimer(&timer, due, NULL);
    KeClearEvent(&notification);
    timed[0] = &notification;
    timed[1] = &timer;
    CHECK("WaitAny wakes for a timer", KeWaitForMultipleObjects(2, timed, WaitAny, Executive, KernelMode, FALSE, &second, NULL) == STATUS_WAIT_1);
}

static void FastMutexAndResource(void)
{
    ExInitializeFastMutex(&T.Fast);
    ExAcquireFastMutex(&T.Fast);
    CHECK("fast mutex raises to APC_LEVEL", KeGetCurrentIrql() == APC_LEVEL);
    ExReleaseFastMutex(&T.Fast);
    CHECK("fast mutex release restores the IRQL", KeGetCurrentIrql() == PASSIVE_LEVEL);
    CHECK("ExTryToAcquireFastMutex", ExTryToAcquireFastMutex(&T.Fast));
    ExReleaseFastMutex(&T.Fast);
    CHECK("ExInitializeResourceLite", ExInitializeResourceLite(&T.Resource) == STATUS_SUCCESS);
    KeEnterCriticalRegion();
    ExAcquireFastMutexUnsafe(&T.Fast);
    CHECK("resource shared", ExAcquireResourceSharedLite(&T.Resource, TRUE));
    CHECK("resource shared again", ExAcquireResourceSharedLite(&T.Resource, TRUE));
    CHECK("resource shared count", ExIsResourceAcquiredSharedLite(&T.Resource) == 2);
    CHECK("resource not exclusive", !ExIsResourceAcquiredExclusiveLite(&T.Resource));
}

static void AfterContender(void)
{
    CHECK("contender polled the owned mutex", T.MutexPoll == STATUS_TIMEOUT);
    CHECK("contender could not take the fast mutex", !T.FastTry);
    CHECK("contender could not take the resource exclusively", !T.ExclusiveTry);
    CHECK("contender shared the resource", T.SharedTry);
    ExReleaseResourceLite(&T.Resource);
    ExReleaseResourceLite(&T.Resource);
    CHECK("resource exclusive", ExAcquireResourceExclusiveLite(&T.Resource, TRUE));
    CHECK("resource shared by the exclusive owner", ExAcquireResourceSharedLite(&T.Resource, FALSE));
    CHECK("resource exclusive owner", ExIsResourceAcquiredExclusiveLite(&T.Resource) &&
          ExIsResourceAcquiredSharedLite(&T.Resource) == 2);
    ExReleaseResourceLite(&T.Resource);
    ExReleaseResourceLite(&T.Resource);
    CHECK("ExDeleteResourceLite", ExDeleteResourceLite(&T.Resource) == STATUS_SUCCESS);
    ExReleaseFastMutexUnsafe(&T.Fast);
    KeLeaveCriticalRegion();
}

static void Contended(void)
{
    HANDLE handle;
    PVOID thread = NULL;
    KeInitializeEvent(&T.Started, NotificationEvent, FALSE);
    KeInitializeEvent(&T.Go, NotificationEvent, FALSE);
    KeWaitForSingleObject(&T.Mutex, Executive, KernelMode, FALSE, NULL);
    FastMutexAndResource();
    CHECK("PsCreateSystemThread", NT_SUCCESS(PsCreateSystemThread(&handle, THREAD_ALL_ACCESS, NULL, NULL, NULL, RtSyncThread, NULL)));
    ObReferenceObjectByHandle(handle, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &thread, NULL);
    ZwClose(handle);
    KeWaitForSingleObject(&T.Started, Executive, KernelMode, FALSE, NULL);
    AfterContender();
    KeReleaseMutex(&T.Mutex, FALSE);
    KeReleaseSemaphore(&T.Semaphore, IO_NO_INCREMENT, 1, FALSE);
    {
        PVOID objects[2] = {thread, &T.Go};
        LARGE_INTEGER fiveSeconds;
        fiveSeconds.QuadPart = -10LL * 1000 * 1000 * 5;
        KeSetEvent(&T.Go, IO_NO_INCREMENT, FALSE);
        CHECK("WaitAll on a thread and an event",
              KeWaitForMultipleObjects(2, objects, WaitAll, Executive, KernelMode, FALSE, &fiveSeconds, NULL) == STATUS_SUCCESS);
    }
    ObDereferenceObject(thread);
    CHECK("contender waited for the mutex", T.MutexWait == STATUS_SUCCESS);
    CHECK("contender waited for the semaphore", T.SemaphoreWait == STATUS_SUCCESS);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    MutexAlone();
    SemaphoreAlone();
    WaitMultiple();
    Contended();
    DbgPrint("done\n");
    return STATUS_SUCCESS;
}
