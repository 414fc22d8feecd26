/*
 * flowmon: a WFP callout driver that monitors IPv4 flows (written for this project against the
 * WDK-named headers; builds unchanged with `wfpctl driver build`).
 *
 *  ALE_FLOW_ESTABLISHED_V4 ──classify──► FLOW_ENTRY (pool 'woFM'): 5-tuple, process path
 *        │ FwpsFlowAssociateContext0 at STREAM_V4 (TCP) or DATAGRAM_DATA_V4 (UDP)
 *        ▼
 *  STREAM_V4 / DATAGRAM_DATA_V4 callouts (CONDITIONAL_ON_FLOW) ──► per-flow byte counts
 *  flowDeleteFn ──► one log line per flow, entry unlinked and freed
 *  DriverUnload ──► FwpsFlowRemoveContext0 for live flows, unregister (retry while busy),
 *                   FwpmEngineClose0 (dynamic session: its filters vanish)
 */
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>

#define FLOWMON_TAG 'MFow'

/* {6f1c2a40-5b0e-4c1a-9a53-3c1e0d7c1a01} .. 03 */
DEFINE_GUID(FLOWMON_ESTABLISHED_CALLOUT, 0x6f1c2a40, 0x5b0e, 0x4c1a, 0x9a, 0x53, 0x3c, 0x1e, 0x0d, 0x7c, 0x1a, 0x01);
DEFINE_GUID(FLOWMON_STREAM_CALLOUT, 0x6f1c2a40, 0x5b0e, 0x4c1a, 0x9a, 0x53, 0x3c, 0x1e, 0x0d, 0x7c, 0x1a, 0x02);
DEFINE_GUID(FLOWMON_DATAGRAM_CALLOUT, 0x6f1c2a40, 0x5b0e, 0x4c1a, 0x9a, 0x53, 0x3c, 0x1e, 0x0d, 0x7c, 0x1a, 0x03);
DEFINE_GUID(FLOWMON_SUBLAYER, 0x6f1c2a40, 0x5b0e, 0x4c1a, 0x9a, 0x53, 0x3c, 0x1e, 0x0d, 0x7c, 0x1a, 0x10);

typedef struct _FLOW_ENTRY {
    LIST_ENTRY Link;
    UINT64 FlowHandle;
    UINT16 LayerId;
    UINT32 CalloutId;
    UINT8 Protocol;
    UINT32 LocalAddress, RemoteAddress;
    UINT16 LocalPort, RemotePort;
    LONG64 BytesIn, BytesOut;
    LONG Removing;
    WCHAR ProcessPath[64];
} FLOW_ENTRY, *PFLOW_ENTRY;

static PDEVICE_OBJECT gDevice;
static HANDLE gEngine;
static UINT32 gEstablishedId, gStreamId, gDatagramId;
static KSPIN_LOCK gLock;
static LIST_ENTRY gFlows;
static LONG gFlowCount;

static void LogFlow(const FLOW_ENTRY *f, const char *why)
{
    DbgPrint("flowmon: %s flow %I64u proto %u %u.%u.%u.%u:%u -> %u.%u.%u.%u:%u in=%I64d out=%I64d path=%ws\n", why,
             f->FlowHandle, f->Protocol, (f->LocalAddress >> 24) & 0xFF, (f->LocalAddress >> 16) & 0xFF,
             (f->LocalAddress >> 8) & 0xFF, f->LocalAddress & 0xFF, f->LocalPort, (f->RemoteAddress >> 24) & 0xFF,
             (f->RemoteAddress >> 16) & 0xFF, (f->RemoteAddress >> 8) & 0xFF, f->RemoteAddress & 0xFF, f->RemotePort,
             f->BytesIn, f->BytesOut, f->ProcessPath[0] ? f->ProcessPath : L"-");
}

static void NTAPI EstablishedClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                      const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                                      const void *classifyContext, const FWPS_FILTER3 *filter, UINT64 flowContext,
                                      FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    classifyOut->actionType = FWP_ACTION_CONTINUE;
    if (!FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_FLOW_HANDLE)) return;
    const FWPS_INCOMING_VALUE0 *v = inFixedValues->incomingValue;
    UINT8 proto = v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_PROTOCOL].value.uint8;
    UINT16 layer;
    UINT32 callout;
    if (proto == IPPROTO_TCP) { layer = FWPS_LAYER_STREAM_V4; callout = gStreamId; }
    else if (proto == IPPROTO_UDP) { layer = FWPS_LAYER_DATAGRAM_DATA_V4; callout = gDatagramId; }
    else return;

    PFLOW_ENTRY f = (PFLOW_ENTRY)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(FLOW_ENTRY), FLOWMON_TAG);
    if (f == NULL) return;
    f->FlowHandle = inMetaValues->flowHandle;
    f->LayerId = layer;
    f->CalloutId = callout;
    f->Protocol = proto;
    f->LocalAddress = v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_ADDRESS].value.uint32;
    f->RemoteAddress = v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_ADDRESS].value.uint32;
    f->LocalPort = v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_PORT].value.uint16;
    f->RemotePort = v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT].value.uint16;
    if (FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_PROCESS_PATH) && inMetaValues->processPath) {
        SIZE_T n = min(inMetaValues->processPath->size, sizeof(f->ProcessPath) - sizeof(WCHAR));
        RtlCopyMemory(f->ProcessPath, inMetaValues->processPath->data, n);
    }
    KLOCK_QUEUE_HANDLE lh;
    KeAcquireInStackQueuedSpinLock(&gLock, &lh);
    InsertTailList(&gFlows, &f->Link);
    InterlockedIncrement(&gFlowCount);
    KeReleaseInStackQueuedSpinLock(&lh);

    NTSTATUS status = FwpsFlowAssociateContext0(f->FlowHandle, layer, callout, (UINT64)(ULONG_PTR)f);
    if (status != STATUS_SUCCESS) {
        DbgPrint("flowmon: FwpsFlowAssociateContext0 failed %#x\n", status);
        KeAcquireInStackQueuedSpinLock(&gLock, &lh);
        RemoveEntryList(&f->Link);
        InterlockedDecrement(&gFlowCount);
        KeReleaseInStackQueuedSpinLock(&lh);
        ExFreePoolWithTag(f, FLOWMON_TAG);
    }
}

static void NTAPI StreamClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                 const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                                 const void *classifyContext, const FWPS_FILTER3 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    PFLOW_ENTRY f = (PFLOW_ENTRY)(ULONG_PTR)flowContext;
    classifyOut->actionType = FWP_ACTION_CONTINUE;
    if (io == NULL || f == NULL) return;
    io->streamAction = FWPS_STREAM_ACTION_NONE;
    FWPS_STREAM_DATA0 *sd = io->streamData;
    if (sd->flags & FWPS_STREAM_FLAG_RECEIVE) InterlockedAdd64(&f->BytesIn, (LONG64)sd->dataLength);
    else InterlockedAdd64(&f->BytesOut, (LONG64)sd->dataLength);
    /* Read the first bytes through the stream API, as an inspecting callout would. */
    UCHAR head[16];
    SIZE_T copied = 0;
    FwpsCopyStreamDataToBuffer0(sd, head, min(sizeof(head), sd->dataLength), &copied);
    NT_ASSERT(copied == min(sizeof(head), sd->dataLength));
}

static void NTAPI DatagramClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                   const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                                   const void *classifyContext, const FWPS_FILTER3 *filter, UINT64 flowContext,
                                   FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    PFLOW_ENTRY f = (PFLOW_ENTRY)(ULONG_PTR)flowContext;
    NET_BUFFER_LIST *nbl = (NET_BUFFER_LIST *)layerData;
    classifyOut->actionType = FWP_ACTION_CONTINUE;
    if (nbl == NULL || f == NULL) return;
    LONG64 bytes = 0;
    for (NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl); nb; nb = NET_BUFFER_NEXT_NB(nb)) {
        bytes += NET_BUFFER_DATA_LENGTH(nb);
        UCHAR storage[8];
        PVOID p = NdisGetDataBuffer(nb, min(NET_BUFFER_DATA_LENGTH(nb), sizeof(storage)), storage, 1, 0);
        NT_ASSERT(p != NULL || NET_BUFFER_DATA_LENGTH(nb) == 0);
        UNREFERENCED_PARAMETER(p);
    }
    if (inFixedValues->incomingValue[FWPS_FIELD_DATAGRAM_DATA_V4_DIRECTION].value.uint32 == FWP_DIRECTION_INBOUND)
        InterlockedAdd64(&f->BytesIn, bytes);
    else
        InterlockedAdd64(&f->BytesOut, bytes);
}

static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE notifyType, const GUID *filterKey, FWPS_FILTER3 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

static void NTAPI FlowDelete(UINT16 layerId, UINT32 calloutId, UINT64 flowContext)
{
    PFLOW_ENTRY f = (PFLOW_ENTRY)(ULONG_PTR)flowContext;
    UNREFERENCED_PARAMETER(layerId);
    UNREFERENCED_PARAMETER(calloutId);
    KLOCK_QUEUE_HANDLE lh;
    KeAcquireInStackQueuedSpinLock(&gLock, &lh);
    RemoveEntryList(&f->Link);
    InterlockedDecrement(&gFlowCount);
    KeReleaseInStackQueuedSpinLock(&lh);
    LogFlow(f, "end");
    ExFreePoolWithTag(f, FLOWMON_TAG);
}

static NTSTATUS RegisterCallout(const GUID *key, FWPS_CALLOUT_CLASSIFY_FN3 fn, UINT32 flags, UINT32 *id)
{
    FWPS_CALLOUT3 c = { 0 };
    c.calloutKey = *key;
    c.flags = flags;
    c.classifyFn = fn;
    c.notifyFn = Notify;
    c.flowDeleteFn = FlowDelete;
    return FwpsCalloutRegister3(gDevice, &c, id);
}

static NTSTATUS AddCalloutAndFilter(const GUID *key, const GUID *layer, const wchar_t *name)
{
    FWPM_CALLOUT0 mc = { 0 };
    mc.calloutKey = *key;
    mc.displayData.name = (wchar_t *)name;
    mc.applicableLayer = *layer;
    NTSTATUS status = FwpmCalloutAdd0(gEngine, &mc, NULL, NULL);
    if (!NT_SUCCESS(status)) return status;
    FWPM_FILTER0 f = { 0 };
    f.displayData.name = (wchar_t *)name;
    f.layerKey = *layer;
    f.subLayerKey = FLOWMON_SUBLAYER;
    f.weight.type = FWP_EMPTY;
    f.action.type = FWP_ACTION_CALLOUT_INSPECTION;
    f.action.calloutKey = *key;
    return FwpmFilterAdd0(gEngine, &f, NULL, NULL);
}

static NTSTATUS AddPolicy(void)
{
    FWPM_SESSION0 session = { 0 };
    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    NTSTATUS status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &gEngine);
    if (!NT_SUCCESS(status)) return status;
    status = FwpmTransactionBegin0(gEngine, 0);
    if (!NT_SUCCESS(status)) return status;
    FWPM_SUBLAYER0 sl = { 0 };
    sl.subLayerKey = FLOWMON_SUBLAYER;
    sl.displayData.name = L"flowmon sublayer";
    sl.weight = 0x100;
    status = FwpmSubLayerAdd0(gEngine, &sl, NULL);
    if (NT_SUCCESS(status)) status = AddCalloutAndFilter(&FLOWMON_ESTABLISHED_CALLOUT, &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, L"flowmon established");
    if (NT_SUCCESS(status)) status = AddCalloutAndFilter(&FLOWMON_STREAM_CALLOUT, &FWPM_LAYER_STREAM_V4, L"flowmon stream");
    if (NT_SUCCESS(status)) status = AddCalloutAndFilter(&FLOWMON_DATAGRAM_CALLOUT, &FWPM_LAYER_DATAGRAM_DATA_V4, L"flowmon datagram");
    if (!NT_SUCCESS(status)) {
        FwpmTransactionAbort0(gEngine);
        return status;
    }
    return FwpmTransactionCommit0(gEngine);
}

static void Unregister(UINT32 *id)
{
    if (*id == 0) return;
    NTSTATUS status;
    while ((status = FwpsCalloutUnregisterById0(*id)) == STATUS_DEVICE_BUSY) { /* contexts draining */ }
    *id = 0;
}

DRIVER_UNLOAD DriverUnload;
void DriverUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    /* Remove the contexts of live flows: flowDeleteFn unlinks and frees each entry. */
    for (;;) {
        KLOCK_QUEUE_HANDLE lh;
        PFLOW_ENTRY f = NULL;
        KeAcquireInStackQueuedSpinLock(&gLock, &lh);
        for (PLIST_ENTRY e = gFlows.Flink; e != &gFlows; e = e->Flink) {
            PFLOW_ENTRY c = CONTAINING_RECORD(e, FLOW_ENTRY, Link);
            if (!c->Removing) { f = c; f->Removing = 1; break; }
        }
        KeReleaseInStackQueuedSpinLock(&lh);
        if (f == NULL) break;
        FwpsFlowRemoveContext0(f->FlowHandle, f->LayerId, f->CalloutId);
    }
    Unregister(&gStreamId);
    Unregister(&gDatagramId);
    Unregister(&gEstablishedId);
    if (gEngine) FwpmEngineClose0(gEngine);
    gEngine = NULL;
    DbgPrint("flowmon: unloaded, %ld flows left\n", gFlowCount);
    IoDeleteDevice(gDevice);
}

DRIVER_INITIALIZE DriverEntry;
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    DbgPrint("flowmon: DriverEntry %wZ\n", RegistryPath);
    KeInitializeSpinLock(&gLock);
    InitializeListHead(&gFlows);
    NTSTATUS status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN, FALSE, &gDevice);
    if (!NT_SUCCESS(status)) return status;
    DriverObject->DriverUnload = DriverUnload;
    status = RegisterCallout(&FLOWMON_ESTABLISHED_CALLOUT, EstablishedClassify, 0, &gEstablishedId);
    if (NT_SUCCESS(status)) status = RegisterCallout(&FLOWMON_STREAM_CALLOUT, StreamClassify, FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW, &gStreamId);
    if (NT_SUCCESS(status)) status = RegisterCallout(&FLOWMON_DATAGRAM_CALLOUT, DatagramClassify, FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW, &gDatagramId);
    if (NT_SUCCESS(status)) status = AddPolicy();
    if (!NT_SUCCESS(status)) {
        DbgPrint("flowmon: DriverEntry failed %#x\n", status);
        DriverUnload(DriverObject);
        return status;
    }
    DbgPrint("flowmon: loaded, callouts %u %u %u\n", gEstablishedId, gStreamId, gDatagramId);
    return STATUS_SUCCESS;
}
