/*
 * connredirect: a connection-redirect callout driver (wfp-reference §10.3), written for this
 * project's tests against the WDK-named headers; built with `wfpctl driver build` and replayed by
 * crates/wfpctl/tests/connect_redirect.rs.
 *
 *  ALE_CONNECT_REDIRECT_V4, remote port == Port:
 *      FwpsQueryConnectionRedirectState0(inMetaValues->redirectRecords, our handle):
 *        BY_SELF / PREVIOUSLY_BY_SELF -> PERMIT untouched (the proxy's own leg: no loop)
 *        otherwise -> FwpsAcquireClassifyHandle0, FwpsAcquireWritableLayerDataPointer0,
 *                     remoteAddressAndPort := ToAddress:ToPort, localRedirectHandle := ours,
 *                     FwpsApplyModifiedLayerData0, FwpsReleaseClassifyHandle0, PERMIT
 *      With Pend=1 the redirect is asynchronous (§10.2): FwpsAcquireClassifyHandle0 +
 *      FwpsPendClassify0 in classifyFn, then a work item (IoQueueWorkItem) acquires the writable
 *      data through the handle, redirects, applies, FwpsCompleteClassify0(PERMIT) and releases it.
 *      Pend=2 does the same inside classifyFn, right after the pend (the completion a fast work
 *      item can make before classifyFn returns).
 *  ALE_AUTH_CONNECT_V4 (inspection): logs what the connection looks like after the redirect —
 *      its remote address and port, the ORIGINAL_DESTINATION metadata and the redirect state.
 *
 * Chaining (several redirectors, §10.3): a request another callout modified first arrives with
 *      its previousVersion and modifierFilterId, logged ("chained after filter N"). With Soft=1 the
 *      redirect ends in a soft PERMIT (the write right set again after the apply, which cleared
 *      it), so redirectors in lower-weight sublayers may redirect the connection further.
 *
 * Parameters (`--driver-param NAME=VALUE`, read with WdfRegistryQuery*): Port (REG_DWORD, the
 * remote port to redirect, default 80), ToAddress (REG_SZ dotted IPv4, default 127.0.0.1),
 * ToPort (REG_DWORD, default 3128), Pend (REG_DWORD, 0, 1 or 2, default 0), Soft (REG_DWORD, 0 or 1,
 * default 0), Weight (REG_DWORD, its sublayer's weight, default 0x300).
 *
 * Building it twice with different -DCR_INSTANCE=N (1..15) gives two drivers with their own
 * callout, sublayer and provider keys, logging as "connredirectN".
 */
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>
#include <ip2string.h>
#include <wdf.h>

#ifndef CR_INSTANCE
#define CR_INSTANCE 0
#define CR_NAME "connredirect"
#else
#define CR_STR2(x) #x
#define CR_STR(x) CR_STR2(x)
#define CR_NAME "connredirect" CR_STR(CR_INSTANCE)
#endif

DEFINE_GUID(CR_CONNECT_CALLOUT, 0x5e1ec7ed, 0x13c0, 0x4a11, 0x9d, 0x2e, 0x0b, 0xad, 0xc0, 0xde, CR_INSTANCE, 0x01);
DEFINE_GUID(CR_AUTH_CALLOUT, 0x5e1ec7ed, 0x13c0, 0x4a11, 0x9d, 0x2e, 0x0b, 0xad, 0xc0, 0xde, CR_INSTANCE, 0x02);
DEFINE_GUID(CR_SUBLAYER, 0x5e1ec7ed, 0x13c0, 0x4a11, 0x9d, 0x2e, 0x0b, 0xad, 0xc0, 0xde, CR_INSTANCE, 0x10);
DEFINE_GUID(CR_PROVIDER, 0x5e1ec7ed, 0x13c0, 0x4a11, 0x9d, 0x2e, 0x0b, 0xad, 0xc0, 0xde, CR_INSTANCE, 0x20);

static UINT16 gPort = 80;
static UINT32 gToAddress = 0x7F000001u; /* host order */
static UINT16 gToPort = 3128;
static UINT16 gPend = 0;
static UINT16 gSoft = 0;
static ULONG gWeight = 0x300;

#define CR_TAG 'RdnC'

/* A pended redirect, completed by a work item. */
typedef struct _CR_PENDED {
    PIO_WORKITEM Item;
    UINT64 ClassifyHandle;
    UINT64 FilterId;
} CR_PENDED;

static PDEVICE_OBJECT gDevice;
static HANDLE gEngine, gRedirect;
static UINT32 gConnectId, gAuthId;
static LONG gRedirected, gLeftAlone, gFailed, gPended;

/* Logs a request another redirector modified before us (§10.3 chaining): where it points now,
 * which filter modified it, where it pointed before. */
static void LogChain(const FWPS_CONNECT_REQUEST0 *request)
{
    if (request->previousVersion == NULL) return;
    const SOCKADDR_IN *now = (const SOCKADDR_IN *)&request->remoteAddressAndPort;
    const SOCKADDR_IN *before = (const SOCKADDR_IN *)&request->previousVersion->remoteAddressAndPort;
    const UCHAR *a = (const UCHAR *)&now->sin_addr, *b = (const UCHAR *)&before->sin_addr;
    DbgPrint(CR_NAME ": chained after filter %I64u: remote %u.%u.%u.%u:%u, before %u.%u.%u.%u:%u\n",
             request->modifierFilterId, a[0], a[1], a[2], a[3], RtlUshortByteSwap(now->sin_port), b[0], b[1], b[2],
             b[3], RtlUshortByteSwap(before->sin_port));
}

/* Points the request at ToAddress:ToPort and names us as its redirector. */
static void Redirect(FWPS_CONNECT_REQUEST0 *request)
{
    LogChain(request);
    SOCKADDR_IN *remote = (SOCKADDR_IN *)&request->remoteAddressAndPort;
    remote->sin_addr.S_un.S_addr = RtlUlongByteSwap(gToAddress);
    remote->sin_port = RtlUshortByteSwap(gToPort);
    request->localRedirectHandle = gRedirect;
}

/* The work item of a pended redirect: modify through the classify handle, complete, release. */
static void CompletePended(PDEVICE_OBJECT device, PVOID context)
{
    CR_PENDED *p = (CR_PENDED *)context;
    FWPS_CONNECT_REQUEST0 *request = NULL;
    FWPS_CLASSIFY_OUT0 out = { 0 };
    UNREFERENCED_PARAMETER(device);
    out.rights = FWPS_RIGHT_ACTION_WRITE;
    NTSTATUS status = FwpsAcquireWritableLayerDataPointer0(p->ClassifyHandle, p->FilterId, 0, (PVOID *)&request, &out);
    if (NT_SUCCESS(status)) {
        Redirect(request);
        FwpsApplyModifiedLayerData0(p->ClassifyHandle, request, 0);
        InterlockedIncrement(&gRedirected);
        out.actionType = FWP_ACTION_PERMIT;
    } else {
        InterlockedIncrement(&gFailed);
        DbgPrint(CR_NAME ": pended acquire failed %#x\n", status);
        out.actionType = FWP_ACTION_BLOCK;
    }
    FwpsCompleteClassify0(p->ClassifyHandle, 0, &out);
    FwpsReleaseClassifyHandle0(p->ClassifyHandle);
    IoFreeWorkItem(p->Item);
    ExFreePoolWithTag(p, CR_TAG);
}

/* Pends the classify (§10.2) and queues its completion. */
static void PendRedirect(UINT64 handle, const FWPS_FILTER3 *filter, FWPS_CLASSIFY_OUT0 *classifyOut)
{
    CR_PENDED *p = (CR_PENDED *)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(*p), CR_TAG);
    NTSTATUS status = p != NULL ? STATUS_SUCCESS : STATUS_INSUFFICIENT_RESOURCES;
    if (NT_SUCCESS(status)) {
        p->Item = IoAllocateWorkItem(gDevice);
        p->ClassifyHandle = handle;
        p->FilterId = filter->filterId;
        if (p->Item == NULL) status = STATUS_INSUFFICIENT_RESOURCES;
    }
    if (NT_SUCCESS(status)) status = FwpsPendClassify0(handle, filter->filterId, 0, classifyOut);
    if (!NT_SUCCESS(status)) {
        InterlockedIncrement(&gFailed);
        DbgPrint(CR_NAME ": pend failed %#x\n", status);
        if (p != NULL && p->Item != NULL) IoFreeWorkItem(p->Item);
        if (p != NULL) ExFreePoolWithTag(p, CR_TAG);
        FwpsReleaseClassifyHandle0(handle);
        return;
    }
    InterlockedIncrement(&gPended);
    if (gPend == 2) CompletePended(gDevice, p); /* completed before classifyFn returns */
    else IoQueueWorkItem(p->Item, CompletePended, DelayedWorkQueue, p);
}

static void NTAPI ConnectClassify(const FWPS_INCOMING_VALUES0 *values, const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                  void *layerData, const void *classifyContext, const FWPS_FILTER3 *filter,
                                  UINT64 flowContext, FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UINT64 handle = 0;
    FWPS_CONNECT_REQUEST0 *request = NULL;
    UNREFERENCED_PARAMETER(values);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(flowContext);
    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) return;
    FWPS_CONNECTION_REDIRECT_STATE state = FwpsQueryConnectionRedirectState0(meta->redirectRecords, gRedirect, NULL);
    if (state == FWPS_CONNECTION_REDIRECTED_BY_SELF || state == FWPS_CONNECTION_PREVIOUSLY_REDIRECTED_BY_SELF) {
        InterlockedIncrement(&gLeftAlone);
        DbgPrint(CR_NAME ": left alone (state %d)\n", state);
        classifyOut->actionType = FWP_ACTION_PERMIT;
        return;
    }
    NTSTATUS status = FwpsAcquireClassifyHandle0((void *)classifyContext, 0, &handle);
    if (NT_SUCCESS(status) && gPend) {
        PendRedirect(handle, filter, classifyOut);
        return;
    }
    if (NT_SUCCESS(status))
        status = FwpsAcquireWritableLayerDataPointer0(handle, filter->filterId, 0, (PVOID *)&request, classifyOut);
    if (!NT_SUCCESS(status)) {
        InterlockedIncrement(&gFailed);
        DbgPrint(CR_NAME ": acquire failed %#x\n", status);
        if (handle != 0) FwpsReleaseClassifyHandle0(handle);
        return;
    }
    Redirect(request);
    FwpsApplyModifiedLayerData0(handle, request, 0);
    FwpsReleaseClassifyHandle0(handle);
    InterlockedIncrement(&gRedirected);
    classifyOut->actionType = FWP_ACTION_PERMIT;
    /* The acquire cleared the write right (a hard PERMIT); a soft one lets later redirectors in. */
    if (gSoft) classifyOut->rights |= FWPS_RIGHT_ACTION_WRITE;
}

static void NTAPI AuthClassify(const FWPS_INCOMING_VALUES0 *values, const FWPS_INCOMING_METADATA_VALUES0 *meta,
                               void *layerData, const void *classifyContext, const FWPS_FILTER3 *filter,
                               UINT64 flowContext, FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    UINT32 r = values->incomingValue[FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_REMOTE_ADDRESS].value.uint32;
    UINT16 rp = values->incomingValue[FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_REMOTE_PORT].value.uint16;
    UINT32 flags = values->incomingValue[FWPS_FIELD_ALE_AUTH_CONNECT_V4_FLAGS].value.uint32;
    FWPS_CONNECTION_REDIRECT_STATE state = FwpsQueryConnectionRedirectState0(meta->redirectRecords, gRedirect, NULL);
    if (FWPS_IS_METADATA_FIELD_PRESENT(meta, FWPS_METADATA_FIELD_ORIGINAL_DESTINATION) &&
        meta->originalDestination != NULL && meta->originalDestination->sa_family == AF_INET) {
        const SOCKADDR_IN *o = (const SOCKADDR_IN *)meta->originalDestination;
        const UCHAR *a = (const UCHAR *)&o->sin_addr;
        DbgPrint(CR_NAME ": auth remote %u.%u.%u.%u:%u original %u.%u.%u.%u:%u state %d redirected-flag %d\n",
                 r >> 24, (r >> 16) & 0xff, (r >> 8) & 0xff, r & 0xff, rp, a[0], a[1], a[2], a[3],
                 RtlUshortByteSwap(o->sin_port), state, (flags & FWP_CONDITION_FLAG_IS_CONNECTION_REDIRECTED) != 0);
    } else {
        DbgPrint(CR_NAME ": auth remote %u.%u.%u.%u:%u original none state %d\n", r >> 24, (r >> 16) & 0xff,
                 (r >> 8) & 0xff, r & 0xff, rp, state);
    }
    classifyOut->actionType = FWP_ACTION_CONTINUE;
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
    cond.conditionValue.uint16 = gPort;
    FWPM_FILTER0 f = { 0 };
    f.displayData.name = (wchar_t *)name;
    f.layerKey = *layer;
    f.subLayerKey = CR_SUBLAYER;
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
    status = FwpmTransactionBegin0(gEngine, 0);
    if (!NT_SUCCESS(status)) return status;
    FWPM_SUBLAYER0 sl = { 0 };
    sl.subLayerKey = CR_SUBLAYER;
    sl.displayData.name = L"connredirect sublayer";
    sl.weight = (UINT16)gWeight;
    status = FwpmSubLayerAdd0(gEngine, &sl, NULL);
    if (NT_SUCCESS(status))
        status = AddFilter(&CR_CONNECT_CALLOUT, &FWPM_LAYER_ALE_CONNECT_REDIRECT_V4, FWP_ACTION_CALLOUT_TERMINATING,
                           L"connredirect redirect");
    if (NT_SUCCESS(status))
        status = AddFilter(&CR_AUTH_CALLOUT, &FWPM_LAYER_ALE_AUTH_CONNECT_V4, FWP_ACTION_CALLOUT_INSPECTION,
                           L"connredirect observe");
    if (!NT_SUCCESS(status)) {
        FwpmTransactionAbort0(gEngine);
        return status;
    }
    return FwpmTransactionCommit0(gEngine);
}

DRIVER_UNLOAD DriverUnload;
void DriverUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    if (gEngine) FwpmEngineClose0(gEngine);
    gEngine = NULL;
    if (gConnectId) FwpsCalloutUnregisterById0(gConnectId);
    if (gAuthId) FwpsCalloutUnregisterById0(gAuthId);
    gConnectId = gAuthId = 0;
    if (gRedirect) FwpsRedirectHandleDestroy0(gRedirect);
    gRedirect = NULL;
    DbgPrint(CR_NAME ": unloaded, redirected=%ld left-alone=%ld pended=%ld failed=%ld\n", gRedirected, gLeftAlone,
             gPended, gFailed);
    if (gDevice) IoDeleteDevice(gDevice);
    gDevice = NULL;
}

static void EvtDriverUnload(WDFDRIVER Driver)
{
    DriverUnload(WdfDriverWdmGetDriverObject(Driver));
}

/* A REG_DWORD port into *out; absent keeps the default. */
static NTSTATUS QueryPort(WDFKEY key, PCUNICODE_STRING name, UINT16 *out)
{
    ULONG v = 0;
    NTSTATUS status = WdfRegistryQueryULong(key, name, &v);
    if (status == STATUS_OBJECT_NAME_NOT_FOUND) return STATUS_SUCCESS;
    if (NT_SUCCESS(status) && (v == 0 || v > 65535)) status = STATUS_INVALID_PARAMETER;
    if (NT_SUCCESS(status)) *out = (UINT16)v;
    return status;
}

/* A REG_SZ dotted IPv4 address into *out (host order); absent keeps the default. */
static NTSTATUS QueryAddress(WDFKEY key, PCUNICODE_STRING name, UINT32 *out)
{
    WCHAR buf[32];
    UNICODE_STRING text = { 0, sizeof(buf) - sizeof(WCHAR), buf };
    struct in_addr a;
    PCWSTR end = NULL;
    NTSTATUS status = WdfRegistryQueryUnicodeString(key, name, NULL, &text);
    if (status == STATUS_OBJECT_NAME_NOT_FOUND) return STATUS_SUCCESS;
    if (!NT_SUCCESS(status)) return status;
    buf[text.Length / sizeof(WCHAR)] = L'\0';
    status = RtlIpv4StringToAddressW(buf, TRUE, &end, &a);
    if (NT_SUCCESS(status) && *end != L'\0') status = STATUS_INVALID_PARAMETER;
    if (NT_SUCCESS(status)) *out = RtlUlongByteSwap(a.S_un.S_addr);
    return status;
}

static NTSTATUS ReadParameters(WDFDRIVER Driver)
{
    DECLARE_CONST_UNICODE_STRING(portName, L"Port");
    DECLARE_CONST_UNICODE_STRING(toAddressName, L"ToAddress");
    DECLARE_CONST_UNICODE_STRING(toPortName, L"ToPort");
    DECLARE_CONST_UNICODE_STRING(pendName, L"Pend");
    DECLARE_CONST_UNICODE_STRING(softName, L"Soft");
    DECLARE_CONST_UNICODE_STRING(weightName, L"Weight");
    WDFKEY key = NULL;
    NTSTATUS status = WdfDriverOpenParametersRegistryKey(Driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key);
    if (!NT_SUCCESS(status)) return status;
    status = QueryPort(key, &portName, &gPort);
    if (NT_SUCCESS(status)) status = QueryAddress(key, &toAddressName, &gToAddress);
    if (NT_SUCCESS(status)) status = QueryPort(key, &toPortName, &gToPort);
    ULONG pend = 0;
    if (NT_SUCCESS(status) && NT_SUCCESS(WdfRegistryQueryULong(key, &pendName, &pend))) gPend = (UINT16)(pend > 2 ? 1 : pend);
    ULONG soft = 0;
    if (NT_SUCCESS(status) && NT_SUCCESS(WdfRegistryQueryULong(key, &softName, &soft))) gSoft = soft != 0;
    ULONG weight = 0;
    if (NT_SUCCESS(status) && NT_SUCCESS(WdfRegistryQueryULong(key, &weightName, &weight)) && weight <= 0xFFFF)
        gWeight = weight;
    WdfRegistryClose(key);
    return status;
}

DRIVER_INITIALIZE DriverEntry;
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDFDRIVER driver = NULL;
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = EvtDriverUnload;
    NTSTATUS status = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    if (NT_SUCCESS(status)) status = ReadParameters(driver);
    if (!NT_SUCCESS(status)) {
        DbgPrint(CR_NAME ": parameters failed %#x\n", status);
        return status;
    }
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN, FALSE, &gDevice);
    if (NT_SUCCESS(status)) status = FwpsRedirectHandleCreate0(&CR_PROVIDER, 0, &gRedirect);
    if (NT_SUCCESS(status)) status = Register(&CR_CONNECT_CALLOUT, ConnectClassify, &gConnectId);
    if (NT_SUCCESS(status)) status = Register(&CR_AUTH_CALLOUT, AuthClassify, &gAuthId);
    if (NT_SUCCESS(status)) status = AddPolicy();
    if (!NT_SUCCESS(status)) {
        DbgPrint(CR_NAME ": DriverEntry failed %#x\n", status);
        DriverUnload(DriverObject);
        return status;
    }
    DbgPrint(CR_NAME ": loaded, port %u -> %u.%u.%u.%u:%u\n", gPort, gToAddress >> 24, (gToAddress >> 16) & 0xff,
             (gToAddress >> 8) & 0xff, gToAddress & 0xff, gToPort);
    return STATUS_SUCCESS;
}
