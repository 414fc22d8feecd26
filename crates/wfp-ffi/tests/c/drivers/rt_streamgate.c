/* An out-of-band stream injection whose flow's classifyFn waits for it (wfp-reference §9.2; a
 * driver bug): the first outbound data indication of a connection to remote port 8000 wakes a
 * system thread and waits (bounded) until that thread has called FwpsStreamInjectAsync0 for the
 * same flow. The injection waits for the classifyFn in progress, which waits for the injection:
 * the runtime's wait reaches its bound, the injection goes ahead and the Verifier reports it with
 * the flow. The thread prints the flow it injected into. Written for this project. */
#include <ntddk.h>
#include <fwpsk.h>
#include <fwpmk.h>

#define INITGUID
#include <guiddef.h>

DEFINE_GUID(SG_CALLOUT, 0x5e5e0011, 0x1111, 0x4222, 0x83, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66, 0x77);
DEFINE_GUID(SG_SUBLAYER, 0x5e5e0012, 0x1111, 0x4222, 0x83, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66, 0x77);

static HANDLE gEngine, gInjection;
static UINT32 gCalloutId;
static KEVENT gWork, gInjected;
static volatile LONG gStarted, gStop;
static UINT64 gFlow;
static PVOID gThread;
static PDEVICE_OBJECT gDevice;

static void NTAPI Completed(void *ctx, NET_BUFFER_LIST *nbl, BOOLEAN dispatch)
{
    UNREFERENCED_PARAMETER(ctx);
    UNREFERENCED_PARAMETER(nbl);
    UNREFERENCED_PARAMETER(dispatch);
}

static void NTAPI Worker(PVOID ctx)
{
    UNREFERENCED_PARAMETER(ctx);
    KeWaitForSingleObject(&gWork, Executive, KernelMode, FALSE, NULL);
    if (!gStop) {
        /* An empty injection without DISCONNECT: nothing reaches the wire. */
        NTSTATUS s = FwpsStreamInjectAsync0(gInjection, NULL, 0, gFlow, gCalloutId, FWPS_LAYER_STREAM_V4,
                                            FWPS_STREAM_FLAG_SEND, NULL, 0, Completed, NULL);
        DbgPrint("streamgate: injected flow=%I64u status=0x%08lx\n", gFlow, (ULONG)s);
    }
    KeSetEvent(&gInjected, IO_NO_INCREMENT, FALSE);
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static void NTAPI Classify(const FWPS_INCOMING_VALUES0 *v, const FWPS_INCOMING_METADATA_VALUES0 *m,
                           void *layerData, const void *classifyContext, const FWPS_FILTER3 *filter,
                           UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    UNREFERENCED_PARAMETER(v);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    out->actionType = FWP_ACTION_PERMIT;
    if (io == NULL || io->streamData == NULL || io->streamData->dataLength == 0 ||
        !(io->streamData->flags & FWPS_STREAM_FLAG_SEND) ||
        !FWPS_IS_METADATA_FIELD_PRESENT(m, FWPS_METADATA_FIELD_FLOW_HANDLE) ||
        InterlockedCompareExchange(&gStarted, 1, 0) != 0)
        return;
    gFlow = m->flowHandle;
    KeSetEvent(&gWork, IO_NO_INCREMENT, FALSE);
    /* The bug: waiting here for the thread's injection (longer than the runtime's 2 s bound). */
    LARGE_INTEGER timeout;
    timeout.QuadPart = -100000000LL; /* 10 s */
    KeWaitForSingleObject(&gInjected, Executive, KernelMode, FALSE, &timeout);
}

static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE t, const GUID *k, FWPS_FILTER3 *f)
{
    UNREFERENCED_PARAMETER(t);
    UNREFERENCED_PARAMETER(k);
    UNREFERENCED_PARAMETER(f);
    return STATUS_SUCCESS;
}

static NTSTATUS AddPolicy(void)
{
    FWPM_SESSION0 session = { 0 };
    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    NTSTATUS s = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &gEngine);
    if (!NT_SUCCESS(s)) return s;
    FWPM_SUBLAYER0 sl = { 0 };
    sl.subLayerKey = SG_SUBLAYER;
    sl.displayData.name = L"streamgate";
    sl.weight = 0x100;
    s = FwpmSubLayerAdd0(gEngine, &sl, NULL);
    if (!NT_SUCCESS(s)) return s;
    FWPM_CALLOUT0 mc = { 0 };
    mc.calloutKey = SG_CALLOUT;
    mc.displayData.name = L"streamgate";
    mc.applicableLayer = FWPM_LAYER_STREAM_V4;
    s = FwpmCalloutAdd0(gEngine, &mc, NULL, NULL);
    if (!NT_SUCCESS(s)) return s;
    FWPM_FILTER_CONDITION0 c = { 0 };
    c.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT16;
    c.conditionValue.uint16 = 8000;
    FWPM_FILTER0 f = { 0 };
    f.displayData.name = L"streamgate";
    f.layerKey = FWPM_LAYER_STREAM_V4;
    f.subLayerKey = SG_SUBLAYER;
    f.weight.type = FWP_EMPTY;
    f.numFilterConditions = 1;
    f.filterCondition = &c;
    f.action.type = FWP_ACTION_CALLOUT_TERMINATING;
    f.action.calloutKey = SG_CALLOUT;
    return FwpmFilterAdd0(gEngine, &f, NULL, NULL);
}

DRIVER_UNLOAD DriverUnload;
void DriverUnload(PDRIVER_OBJECT d)
{
    UNREFERENCED_PARAMETER(d);
    if (gEngine) FwpmEngineClose0(gEngine);
    InterlockedExchange(&gStop, 1);
    KeSetEvent(&gWork, IO_NO_INCREMENT, FALSE);
    if (gThread) {
        KeWaitForSingleObject(gThread, Executive, KernelMode, FALSE, NULL);
        ObDereferenceObject(gThread);
    }
    if (gCalloutId) FwpsCalloutUnregisterById0(gCalloutId);
    if (gInjection) FwpsInjectionHandleDestroy0(gInjection);
    if (gDevice) IoDeleteDevice(gDevice);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING path)
{
    UNREFERENCED_PARAMETER(path);
    d->DriverUnload = DriverUnload;
    KeInitializeEvent(&gWork, NotificationEvent, FALSE);
    KeInitializeEvent(&gInjected, NotificationEvent, FALSE);
    FWPS_CALLOUT3 c = { 0 };
    c.calloutKey = SG_CALLOUT;
    c.classifyFn = Classify;
    c.notifyFn = Notify;
    NTSTATUS s = IoCreateDevice(d, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN, FALSE, &gDevice);
    if (NT_SUCCESS(s)) s = FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, &gInjection);
    if (NT_SUCCESS(s)) s = FwpsCalloutRegister3(gDevice, &c, &gCalloutId);
    if (NT_SUCCESS(s)) s = AddPolicy();
    HANDLE h;
    if (NT_SUCCESS(s)) s = PsCreateSystemThread(&h, THREAD_ALL_ACCESS, NULL, NULL, NULL, Worker, NULL);
    if (NT_SUCCESS(s)) {
        s = ObReferenceObjectByHandle(h, 0, NULL, KernelMode, &gThread, NULL);
        ZwClose(h);
    }
    return s;
}
