/*
 * rt_tsend: data offsets and transport-send injection (wfp-reference §8.2, §10.4; wdk-runtime.md
 * §7), written for this project's tests (crates/wfp-ffi/tests/inject_depth.rs).
 *
 *  OUTBOUND_TRANSPORT_V4: logs where the list starts (its length, first byte, and the first byte
 *      ipHeaderSize before it, reached with NdisRetreatNetBufferDataStart), clones the list and
 *      sends the clone with FwpsInjectTransportSendAsync0 on the classify's endpoint (the clone
 *      starts at the transport header, as the WDK defines it), absorbs the original. Its own
 *      injection comes back (FwpsQueryPacketInjectionState0: by self) and is permitted.
 *  INBOUND_IPPACKET_V4 (inspection): logs the same offsets, permits.
 */
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>

DEFINE_GUID(TS_OUT_CALLOUT, 0x3c8e51a0, 0x7d21, 0x4b6e, 0x9a, 0x04, 0x11, 0x5e, 0x2f, 0x70, 0x00, 0x01);
DEFINE_GUID(TS_IN_CALLOUT, 0x3c8e51a0, 0x7d21, 0x4b6e, 0x9a, 0x04, 0x11, 0x5e, 0x2f, 0x70, 0x00, 0x02);
DEFINE_GUID(TS_SUBLAYER, 0x3c8e51a0, 0x7d21, 0x4b6e, 0x9a, 0x04, 0x11, 0x5e, 0x2f, 0x70, 0x00, 0x10);

static PDEVICE_OBJECT gDevice;
static HANDLE gEngine, gInjection;
static UINT32 gOutId, gInId;
static LONG gSent, gCompleted, gFailed;

/* Logs `what`: the list's length, its first byte and the byte `behind` bytes before its start. */
static void LogOffsets(const char *what, NET_BUFFER_LIST *nbl, ULONG behind)
{
    NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl);
    UCHAR first = 0, back = 0, storage[1];
    const UCHAR *p = (const UCHAR *)NdisGetDataBuffer(nb, 1, storage, 1, 0);
    if (p != NULL) first = p[0];
    ULONG len = NET_BUFFER_DATA_LENGTH(nb);
    if (NdisRetreatNetBufferDataStart(nb, behind, 0, NULL) == NDIS_STATUS_SUCCESS) {
        p = (const UCHAR *)NdisGetDataBuffer(nb, 1, storage, 1, 0);
        if (p != NULL) back = p[0];
        NdisAdvanceNetBufferDataStart(nb, behind, FALSE, NULL);
    }
    DbgPrint("tsend: %s length %lu first %02x behind %lu %02x\n", what, len, first, behind, back);
}

static void NTAPI SendComplete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    UNREFERENCED_PARAMETER(context);
    UNREFERENCED_PARAMETER(dispatchLevel);
    if (NT_SUCCESS(NET_BUFFER_LIST_STATUS(nbl))) InterlockedIncrement(&gCompleted);
    else InterlockedIncrement(&gFailed);
    FwpsFreeCloneNetBufferList0(nbl, 0);
}

static void NTAPI OutClassify(const FWPS_INCOMING_VALUES0 *values, const FWPS_INCOMING_METADATA_VALUES0 *meta,
                              void *layerData, const void *classifyContext, const FWPS_FILTER3 *filter,
                              UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    NET_BUFFER_LIST *nbl = (NET_BUFFER_LIST *)layerData;
    if (!(out->rights & FWPS_RIGHT_ACTION_WRITE)) return;
    out->actionType = FWP_ACTION_PERMIT;
    if (nbl == NULL || FwpsQueryPacketInjectionState0(gInjection, nbl, NULL) == FWPS_PACKET_INJECTED_BY_SELF) return;
    LogOffsets("out", nbl, meta->ipHeaderSize);
    NET_BUFFER_LIST *clone = NULL;
    NTSTATUS status = FwpsAllocateCloneNetBufferList0(nbl, NULL, NULL, 0, &clone);
    UINT32 remote = RtlUlongByteSwap(values->incomingValue[FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_REMOTE_ADDRESS].value.uint32);
    FWPS_TRANSPORT_SEND_PARAMS0 send = { 0 };
    send.remoteAddress = (UCHAR *)&remote;
    if (NT_SUCCESS(status))
        status = FwpsInjectTransportSendAsync0(gInjection, NULL, meta->transportEndpointHandle, 0, &send, AF_INET,
                                               meta->compartmentId, clone, SendComplete, NULL);
    if (!NT_SUCCESS(status)) {
        DbgPrint("tsend: send failed %#x\n", status);
        if (clone != NULL) FwpsFreeCloneNetBufferList0(clone, 0);
        return;
    }
    InterlockedIncrement(&gSent);
    out->actionType = FWP_ACTION_BLOCK;
    out->flags |= FWPS_CLASSIFY_OUT_FLAG_ABSORB;
    out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static void NTAPI InClassify(const FWPS_INCOMING_VALUES0 *values, const FWPS_INCOMING_METADATA_VALUES0 *meta,
                             void *layerData, const void *classifyContext, const FWPS_FILTER3 *filter,
                             UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    UNREFERENCED_PARAMETER(values);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    if (layerData != NULL) LogOffsets("in", (NET_BUFFER_LIST *)layerData, meta->ipHeaderSize);
    out->actionType = FWP_ACTION_CONTINUE;
}

static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key, FWPS_FILTER3 *filter)
{
    UNREFERENCED_PARAMETER(type);
    UNREFERENCED_PARAMETER(key);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

static NTSTATUS Register(const GUID *key, FWPS_CALLOUT_CLASSIFY_FN3 fn, UINT32 *id)
{
    FWPS_CALLOUT3 c = { 0 };
    c.calloutKey = *key;
    c.classifyFn = fn;
    c.notifyFn = Notify;
    return FwpsCalloutRegister3(gDevice, &c, id);
}

static NTSTATUS AddFilter(const GUID *callout, const GUID *layer, FWP_ACTION_TYPE action, const wchar_t *name)
{
    FWPM_CALLOUT0 mc = { 0 };
    mc.calloutKey = *callout;
    mc.displayData.name = (wchar_t *)name;
    mc.applicableLayer = *layer;
    NTSTATUS status = FwpmCalloutAdd0(gEngine, &mc, NULL, NULL);
    if (!NT_SUCCESS(status)) return status;
    FWPM_FILTER0 f = { 0 };
    f.displayData.name = (wchar_t *)name;
    f.layerKey = *layer;
    f.subLayerKey = TS_SUBLAYER;
    f.weight.type = FWP_EMPTY;
    f.action.type = action;
    f.action.calloutKey = *callout;
    return FwpmFilterAdd0(gEngine, &f, NULL, NULL);
}

static NTSTATUS AddPolicy(void)
{
    FWPM_SESSION0 session = { 0 };
    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    NTSTATUS status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &gEngine);
    if (!NT_SUCCESS(status)) return status;
    FWPM_SUBLAYER0 sl = { 0 };
    sl.subLayerKey = TS_SUBLAYER;
    sl.displayData.name = L"tsend sublayer";
    sl.weight = 0x100;
    status = FwpmSubLayerAdd0(gEngine, &sl, NULL);
    if (NT_SUCCESS(status))
        status = AddFilter(&TS_OUT_CALLOUT, &FWPM_LAYER_OUTBOUND_TRANSPORT_V4, FWP_ACTION_CALLOUT_TERMINATING,
                           L"tsend out");
    if (NT_SUCCESS(status))
        status = AddFilter(&TS_IN_CALLOUT, &FWPM_LAYER_INBOUND_IPPACKET_V4, FWP_ACTION_CALLOUT_INSPECTION,
                           L"tsend in");
    return status;
}

static void Unload(PDRIVER_OBJECT driver)
{
    UNREFERENCED_PARAMETER(driver);
    if (gEngine) FwpmEngineClose0(gEngine);
    if (gOutId) FwpsCalloutUnregisterById0(gOutId);
    if (gInId) FwpsCalloutUnregisterById0(gInId);
    if (gInjection) FwpsInjectionHandleDestroy0(gInjection);
    DbgPrint("tsend: unloaded, sent=%ld completed=%ld failed=%ld\n", gSent, gCompleted, gFailed);
    if (gDevice) IoDeleteDevice(gDevice);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING registryPath)
{
    UNREFERENCED_PARAMETER(registryPath);
    driver->DriverUnload = Unload;
    NTSTATUS status = IoCreateDevice(driver, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN, FALSE, &gDevice);
    if (NT_SUCCESS(status)) status = FwpsInjectionHandleCreate0(AF_INET, FWPS_INJECTION_TYPE_TRANSPORT, &gInjection);
    if (NT_SUCCESS(status)) status = Register(&TS_OUT_CALLOUT, OutClassify, &gOutId);
    if (NT_SUCCESS(status)) status = Register(&TS_IN_CALLOUT, InClassify, &gInId);
    if (NT_SUCCESS(status)) status = AddPolicy();
    return status;
}
