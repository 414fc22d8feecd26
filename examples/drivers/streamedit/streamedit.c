/*
 * streamedit: a WFP stream-layer callout driver that replaces a byte pattern in IPv4 TCP streams
 * with a replacement of a different length (written for this project against the WDK-named
 * headers; builds with `wfpctl driver build`). Two modes, chosen at build time:
 *
 *  inline (default) — the WDK's worked example (wfp-reference §9.2): an indication n + p + m is
 *      answered PERMIT for the n bytes before the pattern (countBytesEnforced = n); the engine
 *      indicates p + m again: the replacement is injected (FwpsStreamInjectAsync0 of a list over a
 *      pool buffer) and the p pattern bytes are BLOCKed; then m is permitted.
 *  out-of-band (parameter Oob=1) — every indication is cloned (FwpsCloneStreamData0) and
 *      blocked whole; the clone is injected back unchanged, or, when it holds the pattern, an
 *      edited copy is injected and the clone discarded (FwpsDiscardClonedStreamData0). The
 *      injection happens in classifyFn (allowed for a callout that clones and blocks all data).
 *
 * Patterns split across two indications are not found: NEED_MORE_DATA would not help inline on
 * this data path, which has already forwarded the packet that carried the pattern's first part
 * (wfp-shim's stream module: bytes cannot be held across packets inline).
 * Parameters (the service's Parameters key, read with WdfDriverOpenParametersRegistryKey /
 * WdfRegistryQueryUnicodeString / WdfRegistryQueryULong; `--driver-param NAME=VALUE` here):
 * Pattern and Replacement (REG_SZ, ASCII, 1..127 characters; defaults "HTTP/1.0 200 OK" and
 * "HTTP/1.0 200 Edited-by-streamedit"), Oob (REG_DWORD 0/1, default 0).
 */
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>

#include <wdf.h>

#define SE_TAG 'EStS'

/* {8b3e5d21-1d66-4e1f-9a62-6e3c0f52b001} */
DEFINE_GUID(SE_CALLOUT, 0x8b3e5d21, 0x1d66, 0x4e1f, 0x9a, 0x62, 0x6e, 0x3c, 0x0f, 0x52, 0xb0, 0x01);
DEFINE_GUID(SE_SUBLAYER, 0x8b3e5d21, 0x1d66, 0x4e1f, 0x9a, 0x62, 0x6e, 0x3c, 0x0f, 0x52, 0xb0, 0x10);

/* Parameters (DriverEntry reads them; defaults when absent). */
#define SE_TEXT_MAX 128
static char gPattern[SE_TEXT_MAX] = "HTTP/1.0 200 OK";
static char gReplacement[SE_TEXT_MAX] = "HTTP/1.0 200 Edited-by-streamedit";
static SIZE_T gPatternLength = sizeof("HTTP/1.0 200 OK") - 1;
static SIZE_T gReplacementLength = sizeof("HTTP/1.0 200 Edited-by-streamedit") - 1;
static ULONG gOob = 0;
#define PLEN gPatternLength
#define RLEN gReplacementLength
#define STREAMEDIT_OOB gOob

typedef struct _SE_SEND {
    PMDL Mdl;
    PUCHAR Buffer;
} SE_SEND;

static PDEVICE_OBJECT gDevice;
static HANDLE gEngine, gInjection;
static UINT32 gCalloutId;
static LONG gReplaced, gInjected, gCompleted, gFailed, gClones;

/* Offset of the first pattern in data[0..len), or -1. */
static LONG Find(const UCHAR *data, SIZE_T len)
{
    if (len < PLEN) return -1;
    for (SIZE_T i = 0; i + PLEN <= len; i++)
        if (RtlCompareMemory(data + i, gPattern, PLEN) == PLEN) return (LONG)i;
    return -1;
}

static void NTAPI SendComplete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    SE_SEND *s = (SE_SEND *)context;
    UNREFERENCED_PARAMETER(dispatchLevel);
    if (NT_SUCCESS(NET_BUFFER_LIST_STATUS(nbl))) InterlockedIncrement(&gCompleted);
    else InterlockedIncrement(&gFailed);
    FwpsFreeNetBufferList0(nbl);
    IoFreeMdl(s->Mdl);
    ExFreePoolWithTag(s->Buffer, SE_TAG);
    ExFreePoolWithTag(s, SE_TAG);
}

static void NTAPI CloneComplete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    UNREFERENCED_PARAMETER(context);
    if (NT_SUCCESS(NET_BUFFER_LIST_STATUS(nbl))) InterlockedIncrement(&gCompleted);
    else InterlockedIncrement(&gFailed);
    FwpsDiscardClonedStreamData0(nbl, 0, dispatchLevel);
}

/* Injects `len` bytes (copied into pool memory) into the stream of the classify. */
static NTSTATUS InjectBytes(const UCHAR *bytes, SIZE_T len, const FWPS_INCOMING_VALUES0 *values,
                            const FWPS_INCOMING_METADATA_VALUES0 *meta, const FWPS_FILTER3 *filter, UINT32 streamFlags)
{
    SE_SEND *s = (SE_SEND *)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(SE_SEND), SE_TAG);
    if (s == NULL) return STATUS_INSUFFICIENT_RESOURCES;
    s->Buffer = (PUCHAR)ExAllocatePool2(POOL_FLAG_NON_PAGED, len ? len : 1, SE_TAG);
    if (s->Buffer == NULL) { ExFreePoolWithTag(s, SE_TAG); return STATUS_INSUFFICIENT_RESOURCES; }
    RtlCopyMemory(s->Buffer, bytes, len);
    s->Mdl = IoAllocateMdl(s->Buffer, (ULONG)len, FALSE, FALSE, NULL);
    NET_BUFFER_LIST *nbl = NULL;
    NTSTATUS status = s->Mdl ? STATUS_SUCCESS : STATUS_INSUFFICIENT_RESOURCES;
    if (NT_SUCCESS(status)) {
        MmBuildMdlForNonPagedPool(s->Mdl);
        status = FwpsAllocateNetBufferAndNetBufferList0(NULL, 0, 0, s->Mdl, 0, len, &nbl);
    }
    if (NT_SUCCESS(status))
        status = FwpsStreamInjectAsync0(gInjection, NULL, 0, meta->flowHandle, filter->action.calloutId,
                                        values->layerId, streamFlags, nbl, len, SendComplete, s);
    if (NT_SUCCESS(status)) {
        InterlockedIncrement(&gInjected);
        return status;
    }
    if (nbl) FwpsFreeNetBufferList0(nbl);
    if (s->Mdl) IoFreeMdl(s->Mdl);
    ExFreePoolWithTag(s->Buffer, SE_TAG);
    ExFreePoolWithTag(s, SE_TAG);
    return status;
}

/* Inline: permit up to the pattern, replace the pattern, permit the rest. */
static void Inline(const FWPS_INCOMING_VALUES0 *values, const FWPS_INCOMING_METADATA_VALUES0 *meta,
                   const FWPS_FILTER3 *filter, FWPS_STREAM_CALLOUT_IO_PACKET0 *io, const UCHAR *data,
                   FWPS_CLASSIFY_OUT0 *out)
{
    FWPS_STREAM_DATA0 *sd = io->streamData;
    LONG at = Find(data, sd->dataLength);
    out->actionType = FWP_ACTION_PERMIT;
    if (at < 0) { io->countBytesEnforced = sd->dataLength; return; }
    if (at > 0) { io->countBytesEnforced = (SIZE_T)at; return; }
    /* The pattern starts the indication: the replacement goes in its place. */
    UINT32 flags = sd->flags & (FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_SEND);
    if (!NT_SUCCESS(InjectBytes((const UCHAR *)gReplacement, RLEN, values, meta, filter, flags))) {
        io->countBytesEnforced = sd->dataLength; /* leave the stream as it is */
        return;
    }
    InterlockedIncrement(&gReplaced);
    out->actionType = FWP_ACTION_BLOCK;
    io->countBytesEnforced = PLEN;
}

/* Out-of-band: clone, block everything, inject the clone or an edited copy. */
static void OutOfBand(const FWPS_INCOMING_VALUES0 *values, const FWPS_INCOMING_METADATA_VALUES0 *meta,
                      const FWPS_FILTER3 *filter, FWPS_STREAM_CALLOUT_IO_PACKET0 *io, const UCHAR *data,
                      FWPS_CLASSIFY_OUT0 *out)
{
    FWPS_STREAM_DATA0 *sd = io->streamData;
    NET_BUFFER_LIST *clone = NULL;
    if (!NT_SUCCESS(FwpsCloneStreamData0(sd, NULL, NULL, 0, &clone))) {
        out->actionType = FWP_ACTION_PERMIT;
        return;
    }
    InterlockedIncrement(&gClones);
    UINT32 flags = sd->flags & (FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_SEND);
    LONG at = Find(data, sd->dataLength);
    NTSTATUS status;
    if (at < 0) {
        status = FwpsStreamInjectAsync0(gInjection, NULL, 0, meta->flowHandle, filter->action.calloutId,
                                        values->layerId, flags, clone, sd->dataLength, CloneComplete, NULL);
        if (NT_SUCCESS(status)) InterlockedIncrement(&gInjected);
        else FwpsDiscardClonedStreamData0(clone, 0, FALSE);
    } else {
        SIZE_T len = sd->dataLength - PLEN + RLEN;
        PUCHAR edited = (PUCHAR)ExAllocatePool2(POOL_FLAG_NON_PAGED, len, SE_TAG);
        status = edited ? STATUS_SUCCESS : STATUS_INSUFFICIENT_RESOURCES;
        if (edited) {
            RtlCopyMemory(edited, data, (SIZE_T)at);
            RtlCopyMemory(edited + at, gReplacement, RLEN);
            RtlCopyMemory(edited + at + RLEN, data + at + PLEN, sd->dataLength - (SIZE_T)at - PLEN);
            status = InjectBytes(edited, len, values, meta, filter, flags);
            ExFreePoolWithTag(edited, SE_TAG);
            if (NT_SUCCESS(status)) InterlockedIncrement(&gReplaced);
        }
        FwpsDiscardClonedStreamData0(clone, 0, FALSE);
    }
    out->actionType = NT_SUCCESS(status) ? FWP_ACTION_BLOCK : FWP_ACTION_PERMIT;
    io->countBytesEnforced = sd->dataLength;
}

static void NTAPI StreamClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                 const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                                 const void *classifyContext, const FWPS_FILTER3 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(flowContext);
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    if (io == NULL || !(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) return;
    io->streamAction = FWPS_STREAM_ACTION_NONE;
    FWPS_STREAM_DATA0 *sd = io->streamData;
    if (sd->dataLength == 0 || !FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        classifyOut->actionType = FWP_ACTION_PERMIT;
        return;
    }
    PUCHAR data = (PUCHAR)ExAllocatePool2(POOL_FLAG_NON_PAGED, sd->dataLength, SE_TAG);
    if (data == NULL) { classifyOut->actionType = FWP_ACTION_PERMIT; return; }
    SIZE_T copied = 0;
    FwpsCopyStreamDataToBuffer0(sd, data, sd->dataLength, &copied);
    NT_ASSERT(copied == sd->dataLength);
    if (STREAMEDIT_OOB) OutOfBand(inFixedValues, inMetaValues, filter, io, data, classifyOut);
    else Inline(inFixedValues, inMetaValues, filter, io, data, classifyOut);
    ExFreePoolWithTag(data, SE_TAG);
}

static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE notifyType, const GUID *filterKey, FWPS_FILTER3 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
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
    sl.subLayerKey = SE_SUBLAYER;
    sl.displayData.name = L"streamedit sublayer";
    sl.weight = 0x300;
    status = FwpmSubLayerAdd0(gEngine, &sl, NULL);
    FWPM_CALLOUT0 mc = { 0 };
    mc.calloutKey = SE_CALLOUT;
    mc.displayData.name = L"streamedit";
    mc.applicableLayer = FWPM_LAYER_STREAM_V4;
    if (NT_SUCCESS(status)) status = FwpmCalloutAdd0(gEngine, &mc, NULL, NULL);
    FWPM_FILTER0 f = { 0 };
    f.displayData.name = L"streamedit";
    f.layerKey = FWPM_LAYER_STREAM_V4;
    f.subLayerKey = SE_SUBLAYER;
    f.weight.type = FWP_EMPTY;
    f.action.type = FWP_ACTION_CALLOUT_TERMINATING;
    f.action.calloutKey = SE_CALLOUT;
    if (NT_SUCCESS(status)) status = FwpmFilterAdd0(gEngine, &f, NULL, NULL);
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
    if (gCalloutId) FwpsCalloutUnregisterById0(gCalloutId);
    gCalloutId = 0;
    if (gInjection) FwpsInjectionHandleDestroy0(gInjection);
    gInjection = NULL;
    DbgPrint("streamedit: unloaded, mode=%s replaced=%ld injected=%ld completed=%ld failed=%ld clones=%ld\n",
             STREAMEDIT_OOB ? "oob" : "inline", gReplaced, gInjected, gCompleted, gFailed, gClones);
    IoDeleteDevice(gDevice);
}

static void EvtDriverUnload(WDFDRIVER Driver)
{
    DriverUnload(WdfDriverWdmGetDriverObject(Driver));
}

/* A REG_SZ ASCII text into out/length; absent keeps the default. */
static NTSTATUS QueryText(WDFKEY key, PCUNICODE_STRING name, char *out, SIZE_T *length)
{
    WCHAR buf[SE_TEXT_MAX];
    UNICODE_STRING text = { 0, sizeof(buf), buf };
    NTSTATUS status = WdfRegistryQueryUnicodeString(key, name, NULL, &text);
    if (status == STATUS_OBJECT_NAME_NOT_FOUND) return STATUS_SUCCESS;
    if (!NT_SUCCESS(status)) return status;
    SIZE_T n = text.Length / sizeof(WCHAR);
    if (n == 0 || n >= SE_TEXT_MAX) return STATUS_INVALID_PARAMETER;
    for (SIZE_T i = 0; i < n; i++) {
        if (buf[i] == 0 || buf[i] > 0x7F) return STATUS_INVALID_PARAMETER;
        out[i] = (char)buf[i];
    }
    out[n] = '\0';
    *length = n;
    return STATUS_SUCCESS;
}

static NTSTATUS ReadParameters(WDFDRIVER Driver)
{
    DECLARE_CONST_UNICODE_STRING(patternName, L"Pattern");
    DECLARE_CONST_UNICODE_STRING(replacementName, L"Replacement");
    DECLARE_CONST_UNICODE_STRING(oobName, L"Oob");
    WDFKEY key = NULL;
    ULONG v = 0;
    NTSTATUS status = WdfDriverOpenParametersRegistryKey(Driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key);
    if (!NT_SUCCESS(status)) return status;
    status = QueryText(key, &patternName, gPattern, &gPatternLength);
    if (NT_SUCCESS(status)) status = QueryText(key, &replacementName, gReplacement, &gReplacementLength);
    if (NT_SUCCESS(status) && NT_SUCCESS(WdfRegistryQueryULong(key, &oobName, &v))) gOob = v != 0;
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
        DbgPrint("streamedit: parameters failed %#x\n", status);
        return status;
    }
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN, FALSE, &gDevice);
    if (!NT_SUCCESS(status)) return status;
    status = FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, &gInjection);
    if (NT_SUCCESS(status)) {
        FWPS_CALLOUT3 c = { 0 };
        c.calloutKey = SE_CALLOUT;
        c.classifyFn = StreamClassify;
        c.notifyFn = Notify;
        status = FwpsCalloutRegister3(gDevice, &c, &gCalloutId);
    }
    if (NT_SUCCESS(status)) status = AddPolicy();
    if (!NT_SUCCESS(status)) {
        DbgPrint("streamedit: DriverEntry failed %#x\n", status);
        DriverUnload(DriverObject);
        return status;
    }
    DbgPrint("streamedit: loaded (%s)\n", STREAMEDIT_OOB ? "out-of-band" : "inline");
    return STATUS_SUCCESS;
}
