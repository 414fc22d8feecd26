/* wdkc test driver, first translation unit: DriverEntry checks the constructs of wdkc.h, a
 * threaded DPC, TraceLogging, and registers a callout and filter with version-less names (the
 * FWPM_* GUIDs resolved without INITGUID, as fwpkclnt.lib resolves them). Prints "ok NAME" /
 * "FAIL NAME" lines. */
#include "wdkc.h"

TRACELOGGING_DEFINE_PROVIDER(
   gWdkcTrace,
   "Wdkc.Test.Provider",
   (0x11111111, 0x2222, 0x3333, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55));

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD WdkcUnload;
KDEFERRED_ROUTINE WdkcDpc;

static KDPC gDpc;
static KEVENT gDpcDone;
static WDKC_COUNTERS gCounters;
static HANDLE gEngine;
static UINT32 gCalloutId;
static const GUID WdkcCalloutKey = { 0x1d2e3f40, 0x1111, 0x2222, { 1, 2, 3, 4, 5, 6, 7, 8 } };

_Use_decl_annotations_
void WdkcDpc(KDPC* Dpc, PVOID Context, PVOID Arg1, PVOID Arg2)
{
   WDKC_COUNTERS* c = Context;
   UNREFERENCED_PARAMETER(Dpc);
   c->dpcProcessor = KeGetCurrentProcessorNumber();
   c->dpcRuns += (Arg1 == (PVOID)1 && Arg2 == (PVOID)2) && KeGetCurrentIrql() == DISPATCH_LEVEL;
   KeSetEvent(&gDpcDone, IO_NO_INCREMENT, FALSE);
}

static void DpcChecks(void)
{
   LARGE_INTEGER timeout;
   KIRQL oldIrql;
   timeout.QuadPart = -10LL * 1000 * 1000 * 5;
   KeInitializeEvent(&gDpcDone, NotificationEvent, FALSE);
   KeInitializeThreadedDpc(&gDpc, WdkcDpc, &gCounters);
   /* At PASSIVE_LEVEL the thread may move to another processor between two calls; at
      DISPATCH_LEVEL it stays where it is, so the number read is the one the DPC is queued on. */
   KeRaiseIrql(DISPATCH_LEVEL, &oldIrql);
   gCounters.queuedProcessor = KeGetCurrentProcessorNumber();
   CHECK("KeInsertQueueDpc queues", KeInsertQueueDpc(&gDpc, (PVOID)1, (PVOID)2));
   CHECK("the processor number is stable at DISPATCH_LEVEL",
         KeGetCurrentProcessorNumber() == gCounters.queuedProcessor);
   KeLowerIrql(oldIrql);
   CHECK("KeWaitForSingleObject on the DPC's event",
         KeWaitForSingleObject(&gDpcDone, Executive, KernelMode, FALSE, &timeout) == STATUS_SUCCESS);
   CHECK("DPC ran once at DISPATCH_LEVEL with its arguments", gCounters.dpcRuns == 1);
   CHECK("DPC runs on the processor it was queued on", gCounters.dpcProcessor == gCounters.queuedProcessor);
   CHECK("processor counts", KeQueryMaximumProcessorCount() >= 1 &&
         KeQueryMaximumProcessorCountEx(ALL_PROCESSOR_GROUPS) == KeQueryMaximumProcessorCount() &&
         KeGetCurrentProcessorNumber() < KeQueryMaximumProcessorCount());
   KeInitializeDpc(&gDpc, WdkcDpc, &gCounters);
   CHECK("KeRemoveQueueDpc of an idle DPC", !KeRemoveQueueDpc(&gDpc));
}

static void ConstructChecks(void)
{
   ULONG count = 0;
   WDKC_ALIGNED a[2];
   WCHAR w[2] = { L'x', UNICODE_NULL };
   CHAR n[2] = { 'y', ANSI_NULL };
   CHECK("__inline from a header in two units", WdkcFamilyFromOtherUnit()(FWPS_LAYER_ALE_AUTH_CONNECT_V4) == 4);
   CHECK("__inline address in this unit", (WdkcLayerFamily)(FWPS_LAYER_OUTBOUND_TRANSPORT_V4) == 4);
   CHECK("static __inline, FORCEINLINE, selectany in the other unit", WdkcOtherUnitChecks(&count) && count == 12);
   CHECK("__declspec(align(16))", sizeof(WDKC_ALIGNED) == 16 && ((ULONG_PTR)&a[1] & 15) == 0);
   CHECK("UNICODE_NULL, ANSI_NULL", w[1] == 0 && n[1] == 0 && sizeof(UNICODE_NULL) == 2);
   CHECK("version-less structs are the current versions",
         sizeof(FWPS_CALLOUT) == sizeof(FWPS_CALLOUT3) && sizeof(FWPS_FILTER) == sizeof(FWPS_FILTER3) &&
         sizeof(FWPM_FILTER) == sizeof(FWPM_FILTER0) &&
         sizeof(FWPS_INCOMING_METADATA_VALUES) == sizeof(FWPS_INCOMING_METADATA_VALUES0) &&
         sizeof(FWPS_STREAM_CALLOUT_IO_PACKET) == sizeof(FWPS_STREAM_CALLOUT_IO_PACKET0) &&
         sizeof(FWPS_CONNECT_REQUEST) == sizeof(FWPS_CONNECT_REQUEST0));
}

static NTSTATUS NTAPI WdkcNotify(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID* key, FWPS_FILTER* filter)
{
   UNREFERENCED_PARAMETER(type);
   UNREFERENCED_PARAMETER(key);
   UNREFERENCED_PARAMETER(filter);
   return STATUS_SUCCESS;
}

static NTSTATUS RegisterWithVersionlessNames(PDEVICE_OBJECT device)
{
   FWPS_CALLOUT sCallout = {0};
   FWPM_CALLOUT mCallout = {0};
   FWPM_FILTER filter = {0};
   FWPM_SESSION session = {0};
   NTSTATUS status;

   session.flags = FWPM_SESSION_FLAG_DYNAMIC;
   status = FwpmEngineOpen(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &gEngine);
   if (!NT_SUCCESS(status)) return status;
   sCallout.calloutKey = WdkcCalloutKey;
   sCallout.classifyFn = WdkcClassify;
   sCallout.notifyFn = WdkcNotify;
   status = FwpsCalloutRegister(device, &sCallout, &gCalloutId);
   if (!NT_SUCCESS(status)) return status;
   mCallout.calloutKey = WdkcCalloutKey;
   mCallout.displayData.name = L"wdkc callout";
   mCallout.applicableLayer = FWPM_LAYER_OUTBOUND_TRANSPORT_V4;
   status = FwpmTransactionBegin(gEngine, 0);
   if (NT_SUCCESS(status)) status = FwpmCalloutAdd(gEngine, &mCallout, NULL, NULL);
   filter.layerKey = FWPM_LAYER_OUTBOUND_TRANSPORT_V4;
   filter.displayData.name = L"wdkc filter";
   filter.action.type = FWP_ACTION_CALLOUT_TERMINATING;
   filter.action.calloutKey = WdkcCalloutKey;
   filter.subLayerKey = FWPM_SUBLAYER_UNIVERSAL;
   filter.weight.type = FWP_EMPTY;
   filter.rawContext = 7;
   if (NT_SUCCESS(status)) status = FwpmFilterAdd(gEngine, &filter, NULL, NULL);
   if (NT_SUCCESS(status)) status = FwpmTransactionCommit(gEngine);
   else FwpmTransactionAbort(gEngine);
   return status;
}

_Use_decl_annotations_
void WdkcUnload(PDRIVER_OBJECT DriverObject)
{
   FwpmEngineClose(gEngine);
   FwpsCalloutUnregisterById(gCalloutId);
   TraceLoggingUnregister(gWdkcTrace);
   IoDeleteDevice(DriverObject->DeviceObject);
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
   PDEVICE_OBJECT device = NULL;
   NTSTATUS status;
   UNREFERENCED_PARAMETER(RegistryPath);
   TraceLoggingWrite(gWdkcTrace, "BeforeRegister", TraceLoggingUInt32(1u, "Dropped"));
   TraceLoggingRegister(gWdkcTrace);
   ConstructChecks();
   DpcChecks();
   TraceLoggingWrite(
      gWdkcTrace,
      "Checked",
      TraceLoggingLevel(4),
      TraceLoggingWideString(L"wide text", "Message"),
      TraceLoggingUInt32((NTSTATUS)STATUS_INVALID_PARAMETER, "Status"),
      TraceLoggingInt32(-5, "Negative"),
      TraceLoggingHexUInt32(0xbeefu, "Hex"),
      TraceLoggingString("narrow", "Narrow"),
      TraceLoggingBool(TRUE, "Flag"),
      TraceLoggingGuid(WdkcCalloutKey, "Key"),
      TraceLoggingUInt16(gCounters.dpcRuns));
   status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &device);
   if (!NT_SUCCESS(status)) return status;
   DriverObject->DriverUnload = WdkcUnload;
   status = RegisterWithVersionlessNames(device);
   CHECK("version-less FwpmEngineOpen/FwpsCalloutRegister/FwpmCalloutAdd/FwpmFilterAdd", NT_SUCCESS(status));
   DbgPrint("done\n");
   return status;
}
