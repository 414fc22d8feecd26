/* Synchronous reauthorization (wfp-reference §10.1): a connection to remote port 8000 is pended at
 * ALE_AUTH_CONNECT_V4; a system thread notes its processor, marks "inside the completion" and
 * calls FwpsCompleteOperation0. The reauthorization classify (FWP_CONDITION_FLAG_IS_REAUTHORIZE)
 * permits only when it runs while that thread is still inside FwpsCompleteOperation0 and reports
 * the completer's processor — what the WDK inspect sample relies on. Written for this project. */
#include <ntddk.h>
#include <fwpsk.h>
#include <fwpmk.h>

#define INITGUID
#include <guiddef.h>

DEFINE_GUID(SR_CALLOUT, 0x5e5e0001, 0x1111, 0x4222, 0x83, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66, 0x66);
DEFINE_GUID(SR_SUBLAYER, 0x5e5e0002, 0x1111, 0x4222, 0x83, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66, 0x66);

static HANDLE gEngine;
static UINT32 gCalloutId;
static KEVENT gWork, gDone;
static HANDLE gCompletion;
static volatile LONG gInside, gStop, gReauthInside = -1, gSameProcessor = -1;
static ULONG gProcessor;
static PVOID gThread;
static PDEVICE_OBJECT gDevice;

static void NTAPI Worker(PVOID ctx)
{
    UNREFERENCED_PARAMETER(ctx);
    for (;;) {
        KeWaitForSingleObject(&gWork, Executive, KernelMode, FALSE, NULL);
        if (gStop) break;
        HANDLE c = gCompletion;
        gCompletion = NULL;
        if (c == NULL) continue;
        gProcessor = KeGetCurrentProcessorNumber();
        InterlockedExchange(&gInside, 1);
        FwpsCompleteOperation0(c, NULL);
        InterlockedExchange(&gInside, 0);
        DbgPrint("syncreauth: completed inside=%ld same_processor=%ld\n", gReauthInside, gSameProcessor);
        KeSetEvent(&gDone, IO_NO_INCREMENT, FALSE);
    }
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static void NTAPI Classify(const FWPS_INCOMING_VALUES0 *v, const FWPS_INCOMING_METADATA_VALUES0 *m,
                           void *layerData, const void *classifyContext, const FWPS_FILTER3 *filter,
                           UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    UINT32 flags = v->incomingValue[FWPS_FIELD_ALE_AUTH_CONNECT_V4_FLAGS].value.uint32;
    if (flags & FWP_CONDITION_FLAG_IS_REAUTHORIZE) {
        gReauthInside = gInside;
        gSameProcessor = KeGetCurrentProcessorNumber() == gProcessor;
        out->actionType = (gReauthInside && gSameProcessor) ? FWP_ACTION_PERMIT : FWP_ACTION_BLOCK;
        return;
    }
    if (!FWPS_IS_METADATA_FIELD_PRESENT(m, FWPS_METADATA_FIELD_COMPLETION_HANDLE) ||
        !NT_SUCCESS(FwpsPendOperation0(m->completionHandle, &gCompletion))) {
        out->actionType = FWP_ACTION_BLOCK;
        return;
    }
    KeSetEvent(&gWork, IO_NO_INCREMENT, FALSE);
    out->actionType = FWP_ACTION_BLOCK;
    out->flags |= FWPS_CLASSIFY_OUT_FLAG_ABSORB;
    out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
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
    sl.subLayerKey = SR_SUBLAYER;
    sl.displayData.name = L"syncreauth";
    sl.weight = 0x100;
    s = FwpmSubLayerAdd0(gEngine, &sl, NULL);
    if (!NT_SUCCESS(s)) return s;
    FWPM_CALLOUT0 mc = { 0 };
    mc.calloutKey = SR_CALLOUT;
    mc.displayData.name = L"syncreauth";
    mc.applicableLayer = FWPM_LAYER_ALE_AUTH_CONNECT_V4;
    s = FwpmCalloutAdd0(gEngine, &mc, NULL, NULL);
    if (!NT_SUCCESS(s)) return s;
    FWPM_FILTER_CONDITION0 c = { 0 };
    c.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT16;
    c.conditionValue.uint16 = 8000;
    FWPM_FILTER0 f = { 0 };
    f.displayData.name = L"syncreauth";
    f.layerKey = FWPM_LAYER_ALE_AUTH_CONNECT_V4;
    f.subLayerKey = SR_SUBLAYER;
    f.weight.type = FWP_EMPTY;
    f.numFilterConditions = 1;
    f.filterCondition = &c;
    f.action.type = FWP_ACTION_CALLOUT_TERMINATING;
    f.action.calloutKey = SR_CALLOUT;
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
    if (gDevice) IoDeleteDevice(gDevice);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING path)
{
    UNREFERENCED_PARAMETER(path);
    d->DriverUnload = DriverUnload;
    KeInitializeEvent(&gWork, SynchronizationEvent, FALSE);
    KeInitializeEvent(&gDone, NotificationEvent, FALSE);
    FWPS_CALLOUT3 c = { 0 };
    c.calloutKey = SR_CALLOUT;
    c.classifyFn = Classify;
    c.notifyFn = Notify;
    NTSTATUS s = IoCreateDevice(d, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN, FALSE, &gDevice);
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
