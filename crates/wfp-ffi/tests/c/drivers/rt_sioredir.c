/*
 * rt_sioredir: FwpsQueryConnectionSioFormatRedirectRecords0 on a redirected connection (§10.3),
 * written for this project's tests (crates/wfp-ffi/tests/sio_redirect.rs).
 *
 *  ALE_CONNECT_REDIRECT_V4: connections to port 80 go to 10.0.0.5:3128, named by our redirect
 *      handle (left alone when already redirected by us).
 *  ALE_AUTH_CONNECT_V4 (inspection): asks the records' size (NULL buffer), fetches them into a
 *      pointer-aligned buffer and logs what it holds; a misaligned buffer, a short one and a NULL
 *      handle are refused; a handle that is not this classify's is a Verifier finding.
 */
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>

DEFINE_GUID(SR_CONNECT_CALLOUT, 0x1a7c44e2, 0x0b3d, 0x4c55, 0x91, 0x2e, 0x5f, 0x60, 0x71, 0x82, 0x00, 0x01);
DEFINE_GUID(SR_AUTH_CALLOUT, 0x1a7c44e2, 0x0b3d, 0x4c55, 0x91, 0x2e, 0x5f, 0x60, 0x71, 0x82, 0x00, 0x02);
DEFINE_GUID(SR_SUBLAYER, 0x1a7c44e2, 0x0b3d, 0x4c55, 0x91, 0x2e, 0x5f, 0x60, 0x71, 0x82, 0x00, 0x10);

static PDEVICE_OBJECT gDevice;
static HANDLE gEngine, gRedirect;
static UINT32 gConnectId, gAuthId;

static void NTAPI ConnectClassify(const FWPS_INCOMING_VALUES0 *values, const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                  void *layerData, const void *classifyContext, const FWPS_FILTER3 *filter,
                                  UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    UINT64 handle = 0;
    FWPS_CONNECT_REQUEST0 *request = NULL;
    UNREFERENCED_PARAMETER(values);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(flowContext);
    if (!(out->rights & FWPS_RIGHT_ACTION_WRITE)) return;
    out->actionType = FWP_ACTION_PERMIT;
    if (FwpsQueryConnectionRedirectState0(meta->redirectRecords, gRedirect, NULL) != FWPS_CONNECTION_NOT_REDIRECTED)
        return;
    if (!NT_SUCCESS(FwpsAcquireClassifyHandle0((void *)classifyContext, 0, &handle))) return;
    if (NT_SUCCESS(FwpsAcquireWritableLayerDataPointer0(handle, filter->filterId, 0, (PVOID *)&request, out))) {
        SOCKADDR_IN *remote = (SOCKADDR_IN *)&request->remoteAddressAndPort;
        remote->sin_addr.S_un.S_addr = RtlUlongByteSwap(0x0a000005);
        remote->sin_port = RtlUshortByteSwap(3128);
        request->localRedirectHandle = gRedirect;
        FwpsApplyModifiedLayerData0(handle, request, 0);
    }
    FwpsReleaseClassifyHandle0(handle);
    out->actionType = FWP_ACTION_PERMIT;
}

static void NTAPI AuthClassify(const FWPS_INCOMING_VALUES0 *values, const FWPS_INCOMING_METADATA_VALUES0 *meta,
                               void *layerData, const void *classifyContext, const FWPS_FILTER3 *filter,
                               UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    UNREFERENCED_PARAMETER(values);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    out->actionType = FWP_ACTION_CONTINUE;
    if (meta->redirectRecords == NULL) {
        DbgPrint("sio: no records\n");
        return;
    }
    UINT64 records[8];
    SIZE_T needed = 0, got = 0;
    NTSTATUS s = FwpsQueryConnectionSioFormatRedirectRecords0(meta->redirectRecords, NULL, 0, &needed);
    DbgPrint("sio: size %#x needed %Iu\n", s, needed);
    s = FwpsQueryConnectionSioFormatRedirectRecords0(meta->redirectRecords, records, needed - 1, &got);
    DbgPrint("sio: short %#x needed %Iu\n", s, got);
    s = FwpsQueryConnectionSioFormatRedirectRecords0(meta->redirectRecords, (UCHAR *)records + 1, 40, &got);
    DbgPrint("sio: misaligned %#x\n", s);
    s = FwpsQueryConnectionSioFormatRedirectRecords0(NULL, records, sizeof(records), &got);
    DbgPrint("sio: null handle %#x\n", s);
    s = FwpsQueryConnectionSioFormatRedirectRecords0((HANDLE)records, records, sizeof(records), &got);
    DbgPrint("sio: foreign handle %#x\n", s);
    RtlZeroMemory(records, sizeof(records));
    s = FwpsQueryConnectionSioFormatRedirectRecords0(meta->redirectRecords, records, sizeof(records), &got);
    const UINT32 *head = (const UINT32 *)records;
    DbgPrint("sio: records %#x bytes %Iu magic %d count %u ours %d context %I64u\n", s, got,
             RtlCompareMemory(head, "WFPR", 4) == 4, head[1], records[1] == (UINT64)(ULONG_PTR)gRedirect, records[2]);
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
    FWPM_FILTER_CONDITION0 cond = { 0 };
    cond.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    cond.matchType = FWP_MATCH_EQUAL;
    cond.conditionValue.type = FWP_UINT16;
    cond.conditionValue.uint16 = 80;
    FWPM_FILTER0 f = { 0 };
    f.displayData.name = (wchar_t *)name;
    f.layerKey = *layer;
    f.subLayerKey = SR_SUBLAYER;
    f.weight.type = FWP_EMPTY;
    f.numFilterConditions = layer == &FWPM_LAYER_ALE_CONNECT_REDIRECT_V4 ? 1 : 0;
    f.filterCondition = &cond;
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
    sl.subLayerKey = SR_SUBLAYER;
    sl.displayData.name = L"sio sublayer";
    sl.weight = 0x100;
    status = FwpmSubLayerAdd0(gEngine, &sl, NULL);
    if (NT_SUCCESS(status))
        status = AddFilter(&SR_CONNECT_CALLOUT, &FWPM_LAYER_ALE_CONNECT_REDIRECT_V4, FWP_ACTION_CALLOUT_TERMINATING,
                           L"sio redirect");
    if (NT_SUCCESS(status))
        status = AddFilter(&SR_AUTH_CALLOUT, &FWPM_LAYER_ALE_AUTH_CONNECT_V4, FWP_ACTION_CALLOUT_INSPECTION,
                           L"sio auth");
    return status;
}

static void Unload(PDRIVER_OBJECT driver)
{
    UNREFERENCED_PARAMETER(driver);
    if (gEngine) FwpmEngineClose0(gEngine);
    if (gConnectId) FwpsCalloutUnregisterById0(gConnectId);
    if (gAuthId) FwpsCalloutUnregisterById0(gAuthId);
    if (gRedirect) FwpsRedirectHandleDestroy0(gRedirect);
    if (gDevice) IoDeleteDevice(gDevice);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING registryPath)
{
    UNREFERENCED_PARAMETER(registryPath);
    driver->DriverUnload = Unload;
    NTSTATUS status = IoCreateDevice(driver, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN, FALSE, &gDevice);
    if (NT_SUCCESS(status)) status = FwpsRedirectHandleCreate0(&SR_SUBLAYER, 0, &gRedirect);
    if (NT_SUCCESS(status)) status = Register(&SR_CONNECT_CALLOUT, ConnectClassify, &gConnectId);
    if (NT_SUCCESS(status)) status = Register(&SR_AUTH_CALLOUT, AuthClassify, &gAuthId);
    if (NT_SUCCESS(status)) status = AddPolicy();
    return status;
}
