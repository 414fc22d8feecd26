/*
 * dgramredirect: a WFP callout driver that sends IPv4 UDP datagrams for one peer to another and
 * rewrites the replies back (written for this project against the WDK-named headers; builds with
 * `wfpctl driver build`).
 *
 *  client ─► ADDRESS:PORT ── OUTBOUND_IPPACKET_V4: copy, FwpsConstructIpHeaderForTransportPacket0
 *                            (dst := TO_ADDRESS:TO_PORT, checksums), FwpsInjectNetworkSendAsync0,
 *                            original absorbed; (client port → peer) remembered
 *  client ◄─ ADDRESS:PORT ◄─ INBOUND_IPPACKET_V4 from TO_ADDRESS:TO_PORT to a remembered client:
 *                            copy, new IP header (src := ADDRESS:PORT), FwpsInjectNetworkReceiveAsync0
 *
 * Its own injections come back through both layers; FwpsQueryPacketInjectionState0 recognises
 * them and they are permitted. Every injected list is freed in the completion function (NBL, MDL,
 * pool buffer), whatever the data path did with it.
 *
 * Parameters (the service's Parameters key, read with WdfDriverOpenParametersRegistryKey /
 * WdfRegistryQueryUnicodeString / WdfRegistryQueryULong; `--driver-param NAME=VALUE` here):
 * Address (REG_SZ dotted IPv4, default 10.77.0.9), Port (REG_DWORD, 53), ToAddress (REG_SZ,
 * 10.77.0.2), ToPort (REG_DWORD, 53).
 *
 * Data offsets (wfp-reference §8.2): OUTBOUND_IPPACKET indicates the packet from its IP header;
 * INBOUND_IPPACKET from the transport header, the IP header (ipHeaderSize bytes) behind the data
 * start: the inbound classifyFn retreats to it to read the whole datagram and advances back.
 */
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>
#include <ip2string.h>
#include <wdf.h>

/* Parameters (host order; DriverEntry reads them, defaults when absent). */
static UINT32 gAddress = 0x0A4D0009u;   /* 10.77.0.9 */
static UINT16 gPort = 53;
static UINT32 gToAddress = 0x0A4D0002u; /* 10.77.0.2 */
static UINT16 gToPort = 53;
#define DGRAMREDIRECT_ADDRESS gAddress
#define DGRAMREDIRECT_PORT gPort
#define DGRAMREDIRECT_TO_ADDRESS gToAddress
#define DGRAMREDIRECT_TO_PORT gToPort

#define DR_TAG 'RDgd'
#define DR_CLIENTS 64

/* {7a2d4c10-0c55-4d0e-8f51-5d2b9e41a001} .. */
DEFINE_GUID(DR_OUT_CALLOUT, 0x7a2d4c10, 0x0c55, 0x4d0e, 0x8f, 0x51, 0x5d, 0x2b, 0x9e, 0x41, 0xa0, 0x01);
DEFINE_GUID(DR_IN_CALLOUT, 0x7a2d4c10, 0x0c55, 0x4d0e, 0x8f, 0x51, 0x5d, 0x2b, 0x9e, 0x41, 0xa0, 0x02);
DEFINE_GUID(DR_SUBLAYER, 0x7a2d4c10, 0x0c55, 0x4d0e, 0x8f, 0x51, 0x5d, 0x2b, 0x9e, 0x41, 0xa0, 0x10);

typedef struct _DR_SEND {
    PMDL Mdl;
    PUCHAR Buffer;
} DR_SEND;

static PDEVICE_OBJECT gDevice;
static HANDLE gEngine, gInjection;
static UINT32 gOutId, gInId;
static KSPIN_LOCK gLock;
static UINT32 gClientAddr[DR_CLIENTS];
static UINT16 gClientPort[DR_CLIENTS];
static LONG gClients, gRedirected, gRewritten, gCompleted, gFailed;

static UINT16 Get16(const UCHAR *p) { return (UINT16)((p[0] << 8) | p[1]); }
static UINT32 Get32(const UCHAR *p) { return ((UINT32)p[0] << 24) | ((UINT32)p[1] << 16) | ((UINT32)p[2] << 8) | p[3]; }
static void Put16(UCHAR *p, UINT16 v) { p[0] = (UCHAR)(v >> 8); p[1] = (UCHAR)v; }
static void Put32(UCHAR *p, UINT32 v) { p[0] = (UCHAR)(v >> 24); p[1] = (UCHAR)(v >> 16); p[2] = (UCHAR)(v >> 8); p[3] = (UCHAR)v; }

static void NTAPI InjectComplete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    DR_SEND *s = (DR_SEND *)context;
    UNREFERENCED_PARAMETER(dispatchLevel);
    if (NT_SUCCESS(NET_BUFFER_LIST_STATUS(nbl))) InterlockedIncrement(&gCompleted);
    else InterlockedIncrement(&gFailed);
    FwpsFreeNetBufferList0(nbl);
    IoFreeMdl(s->Mdl);
    ExFreePoolWithTag(s->Buffer, DR_TAG);
    ExFreePoolWithTag(s, DR_TAG);
}

/* The indicated IPv4/UDP datagram, copied into `storage` when not contiguous; NULL when it is not
 * one this driver rewrites (fragment, options beyond the buffer, short). */
static const UCHAR *Datagram(NET_BUFFER_LIST *nbl, UCHAR *storage, ULONG size, ULONG *len, ULONG *ihl)
{
    NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl);
    if (nb == NULL) return NULL;
    *len = NET_BUFFER_DATA_LENGTH(nb);
    if (*len < 28 || *len > size) return NULL;
    const UCHAR *p = (const UCHAR *)NdisGetDataBuffer(nb, *len, storage, 1, 0);
    if (p == NULL || (p[0] >> 4) != 4 || p[9] != IPPROTO_UDP) return NULL;
    *ihl = (ULONG)(p[0] & 0xF) * 4;
    if ((Get16(p + 6) & 0x3FFF) != 0 || *len < *ihl + 8) return NULL; /* fragments pass */
    return p;
}

/* Copies the datagram's UDP part behind a new IP header from src to dst (ports set first) and
 * injects it; TRUE when the injection was accepted. */
static BOOLEAN Inject(const UCHAR *p, ULONG len, ULONG ihl, UINT32 src, UINT32 dst, UINT16 sport, UINT16 dport,
                      BOOLEAN inbound, const FWPS_INCOMING_METADATA_VALUES0 *meta, IF_INDEX ifIndex)
{
    DR_SEND *s = (DR_SEND *)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(DR_SEND), DR_TAG);
    if (s == NULL) return FALSE;
    ULONG udpLen = len - ihl;
    s->Buffer = (PUCHAR)ExAllocatePool2(POOL_FLAG_NON_PAGED, len, DR_TAG);
    if (s->Buffer == NULL) { ExFreePoolWithTag(s, DR_TAG); return FALSE; }
    /* The old IP header stays in front: FwpsConstructIpHeaderForTransportPacket0 replaces it. */
    RtlCopyMemory(s->Buffer, p, len);
    Put16(s->Buffer + ihl, sport);
    Put16(s->Buffer + ihl + 2, dport);
    s->Mdl = IoAllocateMdl(s->Buffer, len, FALSE, FALSE, NULL);
    NET_BUFFER_LIST *nbl = NULL;
    NTSTATUS status = s->Mdl ? STATUS_SUCCESS : STATUS_INSUFFICIENT_RESOURCES;
    if (NT_SUCCESS(status)) {
        MmBuildMdlForNonPagedPool(s->Mdl);
        status = FwpsAllocateNetBufferAndNetBufferList0(NULL, 0, 0, s->Mdl, 0, len, &nbl);
    }
    UCHAR srcB[4], dstB[4];
    Put32(srcB, src);
    Put32(dstB, dst);
    if (NT_SUCCESS(status))
        status = FwpsConstructIpHeaderForTransportPacket0(nbl, ihl, AF_INET, srcB, dstB, IPPROTO_UDP, 0, NULL, 0, 0,
                                                          NULL, 0, 0);
    if (NT_SUCCESS(status)) {
        if (inbound)
            status = FwpsInjectNetworkReceiveAsync0(gInjection, NULL, 0, meta->compartmentId, ifIndex, 0, nbl,
                                                    InjectComplete, s);
        else
            status = FwpsInjectNetworkSendAsync0(gInjection, NULL, 0, meta->compartmentId, nbl, InjectComplete, s);
    }
    if (NT_SUCCESS(status)) return TRUE;
    DbgPrint("dgramredirect: injection failed %#x (%lu UDP bytes)\n", status, udpLen);
    if (nbl) FwpsFreeNetBufferList0(nbl);
    if (s->Mdl) IoFreeMdl(s->Mdl);
    ExFreePoolWithTag(s->Buffer, DR_TAG);
    ExFreePoolWithTag(s, DR_TAG);
    return FALSE;
}

static BOOLEAN OwnInjection(NET_BUFFER_LIST *nbl)
{
    FWPS_PACKET_INJECTION_STATE st = FwpsQueryPacketInjectionState0(gInjection, nbl, NULL);
    return st == FWPS_PACKET_INJECTED_BY_SELF || st == FWPS_PACKET_PREVIOUSLY_INJECTED_BY_SELF;
}

static void Absorb(FWPS_CLASSIFY_OUT0 *out)
{
    out->actionType = FWP_ACTION_BLOCK;
    out->flags |= FWPS_CLASSIFY_OUT_FLAG_ABSORB;
    out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static void Permit(FWPS_CLASSIFY_OUT0 *out)
{
    out->actionType = FWP_ACTION_PERMIT;
}

static void NTAPI OutboundClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                   const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                                   const void *classifyContext, const FWPS_FILTER3 *filter, UINT64 flowContext,
                                   FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    NET_BUFFER_LIST *nbl = (NET_BUFFER_LIST *)layerData;
    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) return;
    if (nbl == NULL || OwnInjection(nbl)) { Permit(classifyOut); return; }
    UCHAR storage[1600];
    ULONG len, ihl;
    const UCHAR *p = Datagram(nbl, storage, sizeof(storage), &len, &ihl);
    if (p == NULL || Get32(p + 16) != DGRAMREDIRECT_ADDRESS || Get16(p + ihl + 2) != DGRAMREDIRECT_PORT) {
        Permit(classifyOut);
        return;
    }
    UINT32 client = Get32(p + 12);
    UINT16 clientPort = Get16(p + ihl);
    KLOCK_QUEUE_HANDLE lh;
    KeAcquireInStackQueuedSpinLock(&gLock, &lh);
    LONG slot = gClients % DR_CLIENTS;
    for (LONG i = 0; i < min(gClients, DR_CLIENTS); i++)
        if (gClientAddr[i] == client && gClientPort[i] == clientPort) { slot = -1; break; }
    if (slot >= 0) { gClientAddr[slot] = client; gClientPort[slot] = clientPort; gClients++; }
    KeReleaseInStackQueuedSpinLock(&lh);
    if (Inject(p, len, ihl, client, DGRAMREDIRECT_TO_ADDRESS, clientPort, DGRAMREDIRECT_TO_PORT, FALSE, inMetaValues, 0))
        InterlockedIncrement(&gRedirected);
    /* Absorbed either way: a datagram that could not be redirected never reaches the old peer. */
    Absorb(classifyOut);
}

static void NTAPI InboundClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                  const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                                  const void *classifyContext, const FWPS_FILTER3 *filter, UINT64 flowContext,
                                  FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    NET_BUFFER_LIST *nbl = (NET_BUFFER_LIST *)layerData;
    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) return;
    if (nbl == NULL || OwnInjection(nbl)) { Permit(classifyOut); return; }
    UCHAR storage[1600];
    ULONG len, ihl;
    /* The list starts after the IP header here: retreat to it for the whole datagram, then put the
     * start back (the bytes stay valid for the rest of classifyFn). */
    NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl);
    ULONG behind = inMetaValues->ipHeaderSize;
    if (nb == NULL || NdisRetreatNetBufferDataStart(nb, behind, 0, NULL) != NDIS_STATUS_SUCCESS) {
        Permit(classifyOut);
        return;
    }
    const UCHAR *p = Datagram(nbl, storage, sizeof(storage), &len, &ihl);
    NdisAdvanceNetBufferDataStart(nb, behind, FALSE, NULL);
    if (p == NULL || Get32(p + 12) != DGRAMREDIRECT_TO_ADDRESS || Get16(p + ihl) != DGRAMREDIRECT_TO_PORT) {
        Permit(classifyOut);
        return;
    }
    UINT32 client = Get32(p + 16);
    UINT16 clientPort = Get16(p + ihl + 2);
    BOOLEAN known = FALSE;
    KLOCK_QUEUE_HANDLE lh;
    KeAcquireInStackQueuedSpinLock(&gLock, &lh);
    for (LONG i = 0; i < min(gClients, DR_CLIENTS); i++)
        if (gClientAddr[i] == client && gClientPort[i] == clientPort) known = TRUE;
    KeReleaseInStackQueuedSpinLock(&lh);
    if (!known) { Permit(classifyOut); return; }
    IF_INDEX ifIndex = inFixedValues->incomingValue[FWPS_FIELD_INBOUND_IPPACKET_V4_INTERFACE_INDEX].value.uint32;
    if (Inject(p, len, ihl, DGRAMREDIRECT_ADDRESS, client, DGRAMREDIRECT_PORT, clientPort, TRUE, inMetaValues, ifIndex))
        InterlockedIncrement(&gRewritten);
    Absorb(classifyOut);
}

static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE notifyType, const GUID *filterKey, FWPS_FILTER3 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
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

static NTSTATUS AddFilter(const GUID *callout, const GUID *layer, UINT32 remote, const wchar_t *name)
{
    FWPM_CALLOUT0 mc = { 0 };
    mc.calloutKey = *callout;
    mc.displayData.name = (wchar_t *)name;
    mc.applicableLayer = *layer;
    NTSTATUS status = FwpmCalloutAdd0(gEngine, &mc, NULL, NULL);
    if (!NT_SUCCESS(status)) return status;
    FWPM_FILTER_CONDITION0 cond = { 0 };
    cond.fieldKey = FWPM_CONDITION_IP_REMOTE_ADDRESS;
    cond.matchType = FWP_MATCH_EQUAL;
    cond.conditionValue.type = FWP_UINT32;
    cond.conditionValue.uint32 = remote;
    FWPM_FILTER0 f = { 0 };
    f.displayData.name = (wchar_t *)name;
    f.layerKey = *layer;
    f.subLayerKey = DR_SUBLAYER;
    f.weight.type = FWP_EMPTY;
    f.numFilterConditions = 1;
    f.filterCondition = &cond;
    f.action.type = FWP_ACTION_CALLOUT_TERMINATING;
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
    sl.subLayerKey = DR_SUBLAYER;
    sl.displayData.name = L"dgramredirect sublayer";
    sl.weight = 0x200;
    status = FwpmSubLayerAdd0(gEngine, &sl, NULL);
    if (NT_SUCCESS(status))
        status = AddFilter(&DR_OUT_CALLOUT, &FWPM_LAYER_OUTBOUND_IPPACKET_V4, DGRAMREDIRECT_ADDRESS, L"dgramredirect out");
    if (NT_SUCCESS(status))
        status = AddFilter(&DR_IN_CALLOUT, &FWPM_LAYER_INBOUND_IPPACKET_V4, DGRAMREDIRECT_TO_ADDRESS, L"dgramredirect in");
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
    if (gOutId) FwpsCalloutUnregisterById0(gOutId);
    if (gInId) FwpsCalloutUnregisterById0(gInId);
    gOutId = gInId = 0;
    if (gInjection) FwpsInjectionHandleDestroy0(gInjection);
    gInjection = NULL;
    DbgPrint("dgramredirect: unloaded, redirected=%ld rewritten=%ld completed=%ld failed=%ld\n", gRedirected,
             gRewritten, gCompleted, gFailed);
    IoDeleteDevice(gDevice);
}

static void EvtDriverUnload(WDFDRIVER Driver)
{
    DriverUnload(WdfDriverWdmGetDriverObject(Driver));
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

static NTSTATUS ReadParameters(WDFDRIVER Driver)
{
    DECLARE_CONST_UNICODE_STRING(addressName, L"Address");
    DECLARE_CONST_UNICODE_STRING(portName, L"Port");
    DECLARE_CONST_UNICODE_STRING(toAddressName, L"ToAddress");
    DECLARE_CONST_UNICODE_STRING(toPortName, L"ToPort");
    WDFKEY key = NULL;
    NTSTATUS status = WdfDriverOpenParametersRegistryKey(Driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key);
    if (!NT_SUCCESS(status)) return status;
    status = QueryAddress(key, &addressName, &gAddress);
    if (NT_SUCCESS(status)) status = QueryPort(key, &portName, &gPort);
    if (NT_SUCCESS(status)) status = QueryAddress(key, &toAddressName, &gToAddress);
    if (NT_SUCCESS(status)) status = QueryPort(key, &toPortName, &gToPort);
    WdfRegistryClose(key);
    return status;
}

DRIVER_INITIALIZE DriverEntry;
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDFDRIVER driver = NULL;
    KeInitializeSpinLock(&gLock);
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = EvtDriverUnload;
    NTSTATUS status = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    if (NT_SUCCESS(status)) status = ReadParameters(driver);
    if (!NT_SUCCESS(status)) {
        DbgPrint("dgramredirect: parameters failed %#x\n", status);
        return status;
    }
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN, FALSE, &gDevice);
    if (!NT_SUCCESS(status)) return status;
    status = FwpsInjectionHandleCreate0(AF_INET, FWPS_INJECTION_TYPE_NETWORK, &gInjection);
    if (NT_SUCCESS(status)) status = Register(&DR_OUT_CALLOUT, OutboundClassify, &gOutId);
    if (NT_SUCCESS(status)) status = Register(&DR_IN_CALLOUT, InboundClassify, &gInId);
    if (NT_SUCCESS(status)) status = AddPolicy();
    if (!NT_SUCCESS(status)) {
        DbgPrint("dgramredirect: DriverEntry failed %#x\n", status);
        DriverUnload(DriverObject);
        return status;
    }
    DbgPrint("dgramredirect: loaded\n");
    return STATUS_SUCCESS;
}
