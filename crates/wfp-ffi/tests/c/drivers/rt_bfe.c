/* rt_bfe test driver (ours): the base filtering engine's state as WFPSampler's DriverEntry uses
 * it (FwpmBfeStateGet0, FwpmBfeStateSubscribeChanges0 / UnsubscribeChanges0), and the processor
 * and clock helpers it calls (KeGetCurrentProcessorNumberEx, KeQueryTimeIncrement). Prints
 * "ok NAME" / "FAIL NAME". Built with -DRT_BFE_LEAVE_SUBSCRIPTION it keeps its subscription at
 * unload (a Verifier finding). */
#include <ntddk.h>
#include <fwpmk.h>

#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD RtBfeUnload;

static HANDLE gSubscription;
static LONG gCallbacks;

static void RtBfeStateChanged(void* context, FWPM_SERVICE_STATE newState)
{
   UNREFERENCED_PARAMETER(newState);
   InterlockedIncrement((LONG*)context);
}

void RtBfeUnload(PDRIVER_OBJECT DriverObject)
{
#ifndef RT_BFE_LEAVE_SUBSCRIPTION
   CHECK("FwpmBfeStateUnsubscribeChanges0", FwpmBfeStateUnsubscribeChanges(gSubscription) == STATUS_SUCCESS);
   CHECK("a second unsubscribe is an invalid handle",
         FwpmBfeStateUnsubscribeChanges(gSubscription) == STATUS_INVALID_HANDLE);
#endif
   CHECK("the state never changed while loaded", gCallbacks == 0 && FwpmBfeStateGet() == FWPM_SERVICE_RUNNING);
   IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
   PDEVICE_OBJECT device = NULL;
   PROCESSOR_NUMBER number;
   ULONG index;
   NTSTATUS status;
   UNREFERENCED_PARAMETER(RegistryPath);
   status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &device);
   if (!NT_SUCCESS(status)) return status;
   DriverObject->DriverUnload = RtBfeUnload;
   CHECK("FwpmBfeStateGet0 is RUNNING", FwpmBfeStateGet() == FWPM_SERVICE_RUNNING);
   CHECK("subscribe without a callback", FwpmBfeStateSubscribeChanges(device, NULL, NULL, &gSubscription) ==
         STATUS_INVALID_PARAMETER);
   CHECK("unsubscribe of a handle never given out", FwpmBfeStateUnsubscribeChanges((HANDLE)0x1234) ==
         STATUS_INVALID_HANDLE);
   status = FwpmBfeStateSubscribeChanges(device, RtBfeStateChanged, &gCallbacks, &gSubscription);
   CHECK("FwpmBfeStateSubscribeChanges0", status == STATUS_SUCCESS && gSubscription != NULL);
   index = KeGetCurrentProcessorNumberEx(&number);
   CHECK("KeGetCurrentProcessorNumberEx", number.Group == 0 && number.Number == index &&
         index < KeQueryMaximumProcessorCount());
   CHECK("KeQueryTimeIncrement", KeQueryTimeIncrement() == 156250);
   DbgPrint("done\n");
   return STATUS_SUCCESS;
}
