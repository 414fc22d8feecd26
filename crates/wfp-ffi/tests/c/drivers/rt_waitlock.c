/* rt_waitlock test driver (ours): KMDF wait locks as WFPSampler's DriverEntry creates one
 * (WdfWaitLockCreate / WdfWaitLockAcquire / WdfWaitLockRelease), contended from a system thread.
 * Prints "ok NAME" / "FAIL NAME". */
#include <ntddk.h>
#include <wdf.h>

#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

DRIVER_INITIALIZE DriverEntry;
EVT_WDF_DRIVER_UNLOAD RtWaitLockUnload;
KSTART_ROUTINE RtWaitLockThread;

static WDFWAITLOCK gLock;
static WDFWAITLOCK gKept;
static volatile NTSTATUS gPolled;
static volatile NTSTATUS gWaited;
static volatile NTSTATUS gOtherRelease;

/* Polls the held lock (timeout 0), then waits up to 5 s for it, holds it, releases it. */
void RtWaitLockThread(PVOID context)
{
   LONGLONG zero = 0;
   LONGLONG fiveSeconds = -10LL * 1000 * 1000 * 5;
   KEVENT* held = (KEVENT*)context;
   gPolled = WdfWaitLockAcquire(gLock, &zero);
   KeSetEvent(held, IO_NO_INCREMENT, FALSE);
   gWaited = WdfWaitLockAcquire(gLock, &fiveSeconds);
   if (gWaited == STATUS_SUCCESS) WdfWaitLockRelease(gLock);
   PsTerminateSystemThread(STATUS_SUCCESS);
}

static NTSTATUS RunContender(void)
{
   KEVENT polled;
   HANDLE thread;
   PVOID object;
   NTSTATUS status;
   KeInitializeEvent(&polled, NotificationEvent, FALSE);
   status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, RtWaitLockThread, &polled);
   if (!NT_SUCCESS(status)) return status;
   status = ObReferenceObjectByHandle(thread, 0, NULL, KernelMode, &object, NULL);
   ZwClose(thread);
   if (!NT_SUCCESS(status)) return status;
   KeWaitForSingleObject(&polled, Executive, KernelMode, FALSE, NULL);
   WdfWaitLockRelease(gLock);
   KeWaitForSingleObject(object, Executive, KernelMode, FALSE, NULL);
   ObDereferenceObject(object);
   return STATUS_SUCCESS;
}

void RtWaitLockUnload(WDFDRIVER Driver)
{
   UNREFERENCED_PARAMETER(Driver);
   /* gKept is not deleted: its parent, the driver, takes it along. */
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
   WDF_DRIVER_CONFIG config;
   WDFDRIVER driver;
   LONGLONG zero = 0;
   NTSTATUS status;
   WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
   config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
   config.EvtDriverUnload = RtWaitLockUnload;
   status = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
   if (!NT_SUCCESS(status)) return status;
   CHECK("WdfWaitLockCreate", WdfWaitLockCreate(WDF_NO_OBJECT_ATTRIBUTES, &gLock) == STATUS_SUCCESS && gLock);
   CHECK("WdfWaitLockAcquire (no timeout)", WdfWaitLockAcquire(gLock, NULL) == STATUS_SUCCESS);
   CHECK("contender thread ran", RunContender() == STATUS_SUCCESS);
   CHECK("a poll of a held lock times out", gPolled == STATUS_TIMEOUT);
   CHECK("a waiter gets the lock once it is released", gWaited == STATUS_SUCCESS);
   CHECK("a poll of a free lock succeeds", WdfWaitLockAcquire(gLock, &zero) == STATUS_SUCCESS);
   WdfWaitLockRelease(gLock);
   WdfObjectDelete(gLock);
   CHECK("a second lock, left to the driver", WdfWaitLockCreate(WDF_NO_OBJECT_ATTRIBUTES, &gKept) == STATUS_SUCCESS);
   DbgPrint("done\n");
   return STATUS_SUCCESS;
}
