/*
 * rt_nbltag: packet tagging across re-injection (FwpsNetBufferListGetTagForContext0,
 * FwpsNetBufferListAssociateContext1, FwpsNetBufferListRetrieveContext0,
 * FwpsNetBufferListRemoveContext0, FWPS_NET_BUFFER_LIST_NOTIFY_FN1), and FwpsOpenToken0 with
 * NtClose / ZwClose; written for this project's tests (crates/wfp-ffi/tests/nbl_tags.rs).
 *
 *  OUTBOUND_TRANSPORT_V4 (terminating): a packet nobody injected cannot be tagged; its clone is
 *      tagged with context 1000 + n and sent with FwpsInjectTransportSendAsync0, the original
 *      absorbed. The injected packet comes back: its indicated list carries the context; a clone
 *      of it (from the driver's NBL pool) carries it too (CLONED_VIA_WFP_API) and loses it when
 *      freed (CONTEXT_REMOVED).
 *  OUTBOUND_IPPACKET_V4 (inspection): the injected packet's context is still there.
 *  The notify function logs every event; the completion frees the clone (CONTEXT_REMOVED), and
 *  an NDIS clone of the first indicated list, kept past its classifyFn (a copy of its data).
 */
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>

DEFINE_GUID(TG_OUT_CALLOUT, 0x6f0d2a31, 0x52c4, 0x4f0e, 0x8d, 0x1a, 0x7e, 0x22, 0x30, 0x41, 0x00, 0x01);
DEFINE_GUID(TG_IP_CALLOUT, 0x6f0d2a31, 0x52c4, 0x4f0e, 0x8d, 0x1a, 0x7e, 0x22, 0x30, 0x41, 0x00, 0x02);
DEFINE_GUID(TG_SUBLAYER, 0x6f0d2a31, 0x52c4, 0x4f0e, 0x8d, 0x1a, 0x7e, 0x22, 0x30, 0x41, 0x00, 0x10);

static PDEVICE_OBJECT gDevice;
static HANDLE gEngine, gInjection;
static UINT32 gOutId, gIpId;
static UINT64 gTag;
static LONG gSent;
static NDIS_HANDLE gGeneric, gPool;
static NET_BUFFER_LIST *gKept; /* an NDIS clone of an indicated list, kept past its classifyFn */

static const char *EventName(FWPS_NET_BUFFER_LIST_EVENT_TYPE0 e)
{
    switch (e) {
    case FWPS_NET_BUFFER_LIST_ENTERED_NETIO: return "entered";
    case FWPS_NET_BUFFER_LIST_CLONED_VIA_WFP_API: return "cloned";
    case FWPS_NET_BUFFER_LIST_EXIT_NETIO: return "exit";
    case FWPS_NET_BUFFER_LIST_CONTEXT_REMOVED: return "removed";
    default: return "other";
    }
}

static NTSTATUS NTAPI TagNotify(FWPS_NET_BUFFER_LIST_EVENT_TYPE0 e, NET_BUFFER_LIST *nbl, NET_BUFFER_LIST *newNbl,
                                UINT16 layerId, UINT64 context, UINT64 tag)
{
    DbgPrint("tag: event %s context %llu layer %u new %d tag-ok %d nbl %d\n", EventName(e), context, layerId,
             newNbl != NULL, tag == gTag, nbl != NULL);
    return STATUS_SUCCESS;
}

static void NTAPI SendComplete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    UNREFERENCED_PARAMETER(context);
    UNREFERENCED_PARAMETER(dispatchLevel);
    UINT64 c = 0;
    NTSTATUS s = FwpsNetBufferListRetrieveContext0(nbl, gTag, FALSE, 0, &c);
    DbgPrint("tag: completed status %#x context %#x %llu\n", NET_BUFFER_LIST_STATUS(nbl), s, c);
    FwpsFreeCloneNetBufferList0(nbl, 0);
    if (gKept != NULL) {
        UCHAR storage[2];
        PUCHAR p = (PUCHAR)NdisGetDataBuffer(NET_BUFFER_LIST_FIRST_NB(gKept), 2, storage, 1, 0);
        DbgPrint("tag: kept ndis clone %02x%02x length %lu\n", p ? p[0] : 0, p ? p[1] : 0,
                 NET_BUFFER_DATA_LENGTH(NET_BUFFER_LIST_FIRST_NB(gKept)));
        NdisFreeCloneNetBufferList(gKept, 0);
        gKept = NULL;
    }
}

/* The injected packet back at OUTBOUND_TRANSPORT: its context, and a clone's. */
static void Reclassified(NET_BUFFER_LIST *nbl)
{
    UINT64 c = 0;
    NTSTATUS s = FwpsNetBufferListRetrieveContext0(nbl, gTag, FALSE, 0, &c);
    DbgPrint("tag: transport again %#x context %llu\n", s, c);
    NET_BUFFER_LIST *clone = NULL;
    if (NT_SUCCESS(FwpsAllocateCloneNetBufferList0(nbl, gPool, NULL, 0, &clone))) {
        c = 0;
        s = FwpsNetBufferListRetrieveContext0(clone, gTag, FALSE, 0, &c);
        DbgPrint("tag: clone of injected %#x context %llu pool %d protocol %u\n", s, c,
                 NdisGetPoolFromNetBufferList(clone) == gPool,
                 *(PUCHAR)&NET_BUFFER_LIST_INFO(clone, NetBufferListProtocolId));
        FwpsFreeCloneNetBufferList0(clone, 0);
    }
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
    if (nbl == NULL) return;
    if (FwpsQueryPacketInjectionState0(gInjection, nbl, NULL) == FWPS_PACKET_INJECTED_BY_SELF) {
        Reclassified(nbl);
        return;
    }
    DbgPrint("tag: untagged indicated %#x\n",
             FwpsNetBufferListAssociateContext1(nbl, FWPS_LAYER_OUTBOUND_TRANSPORT_V4, 1, gTag, NULL, gDevice,
                                                TagNotify, 0));
    gKept = NdisAllocateCloneNetBufferList(nbl, NULL, NULL, 0);
    DbgPrint("tag: ndis clone of indicated %d parent %d children %ld same length %d\n", gKept != NULL,
             gKept && gKept->ParentNetBufferList == nbl, nbl->ChildRefCount,
             gKept && NET_BUFFER_DATA_LENGTH(NET_BUFFER_LIST_FIRST_NB(gKept)) ==
                          NET_BUFFER_DATA_LENGTH(NET_BUFFER_LIST_FIRST_NB(nbl)));
    NET_BUFFER_LIST *clone = NULL;
    NTSTATUS status = FwpsAllocateCloneNetBufferList0(nbl, NULL, NULL, 0, &clone);
    UINT64 mine = 1000 + (UINT64)InterlockedIncrement(&gSent), back = 0;
    if (NT_SUCCESS(status))
        status = FwpsNetBufferListAssociateContext1(clone, FWPS_LAYER_OUTBOUND_TRANSPORT_V4, mine, gTag, NULL, gDevice,
                                                    TagNotify, 0);
    if (NT_SUCCESS(status)) status = FwpsNetBufferListRetrieveContext0(clone, gTag, FALSE, 0, &back);
    DbgPrint("tag: clone tagged %#x context %llu\n", status, back);
    UINT32 remote = RtlUlongByteSwap(values->incomingValue[FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_REMOTE_ADDRESS].value.uint32);
    FWPS_TRANSPORT_SEND_PARAMS0 send = { 0 };
    send.remoteAddress = (UCHAR *)&remote;
    if (NT_SUCCESS(status))
        status = FwpsInjectTransportSendAsync0(gInjection, NULL, meta->transportEndpointHandle, 0, &send, AF_INET,
                                               meta->compartmentId, clone, SendComplete, NULL);
    if (!NT_SUCCESS(status)) {
        DbgPrint("tag: send failed %#x\n", status);
        if (clone != NULL) FwpsFreeCloneNetBufferList0(clone, 0);
        return;
    }
    out->actionType = FWP_ACTION_BLOCK;
    out->flags |= FWPS_CLASSIFY_OUT_FLAG_ABSORB;
    out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static void NTAPI IpClassify(const FWPS_INCOMING_VALUES0 *values, const FWPS_INCOMING_METADATA_VALUES0 *meta,
                             void *layerData, const void *classifyContext, const FWPS_FILTER3 *filter,
                             UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    UNREFERENCED_PARAMETER(values);
    UNREFERENCED_PARAMETER(meta);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    UINT64 c = 0;
    if (layerData != NULL) {
        NTSTATUS s = FwpsNetBufferListRetrieveContext0((NET_BUFFER_LIST *)layerData, gTag, FALSE, 0, &c);
        DbgPrint("tag: ippacket %#x context %llu\n", s, c);
    }
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
    f.subLayerKey = TG_SUBLAYER;
    f.weight.type = FWP_EMPTY;
    f.action.type = action;
    f.action.calloutKey = *callout;
    return FwpmFilterAdd0(gEngine, &f, NULL, NULL);
}

static void NTAPI TagNotify0(FWPS_NET_BUFFER_LIST_EVENT_TYPE0 e, NET_BUFFER_LIST *nbl, NET_BUFFER_LIST *newNbl,
                             UINT16 layerId, UINT64 context, UINT64 tag)
{
    UNREFERENCED_PARAMETER(nbl);
    UNREFERENCED_PARAMETER(newNbl);
    DbgPrint("tag: notify0 %s context %llu layer %u tag-ok %d\n", EventName(e), context, layerId, tag == gTag);
}

/* Tags on a list the driver allocated: the version-0 notify, retrieve with remove, remove from
 * every list (NULL), a second tag, freeing a tagged list. */
static void ListTags(void)
{
    NET_BUFFER_LIST *l = NULL;
    UINT64 other = 0, c = 0;
    NTSTATUS s = FwpsAllocateNetBufferAndNetBufferList0(NULL, 0, 0, NULL, 0, 0, &l);
    if (NT_SUCCESS(s)) s = FwpsNetBufferListGetTagForContext0(&other);
    DbgPrint("tag: second tag %#x distinct %d\n", s, other != gTag && other != 0);
    if (!NT_SUCCESS(s)) return;
    s = FwpsNetBufferListAssociateContext0(l, 7, 55, gTag, NULL, gDevice, TagNotify0, 0);
    NTSTATUS s2 = FwpsNetBufferListRetrieveContext0(l, gTag, TRUE, 0, &c);
    NTSTATUS s3 = FwpsNetBufferListRetrieveContext0(l, gTag, FALSE, 0, &c);
    DbgPrint("tag: list %#x retrieve-remove %#x %llu then %#x\n", s, s2, c, s3);
    FwpsNetBufferListAssociateContext0(l, 7, 56, gTag, NULL, gDevice, TagNotify0, 0);
    FwpsNetBufferListAssociateContext0(l, 7, 57, gTag, NULL, gDevice, TagNotify0, 0); /* replaces 56 */
    FwpsNetBufferListAssociateContext0(l, 8, 77, other, NULL, gDevice, TagNotify0, 0);
    s = FwpsNetBufferListRemoveContext0(NULL, gTag, 0);
    s2 = FwpsNetBufferListRetrieveContext0(l, gTag, FALSE, 0, &c);
    s3 = FwpsNetBufferListRemoveContext0(l, gTag, 0);
    DbgPrint("tag: removed everywhere %#x then %#x %#x\n", s, s2, s3);
    DbgPrint("tag: flags refused %#x\n", FwpsNetBufferListAssociateContext0(l, 7, 1, gTag, NULL, gDevice, TagNotify0, 1));
#ifdef MISUSE
    DbgPrint("tag: unknown tag %#x\n", FwpsNetBufferListAssociateContext0(l, 7, 1, 0x7777, NULL, gDevice, TagNotify0, 0));
#endif
    FwpsFreeNetBufferList0(l); /* the other tag goes with it */
}

/* FwpsOpenToken0 at PASSIVE_LEVEL on the driver's engine session; closed with NtClose and ZwClose. */
static void Tokens(void)
{
    LUID id = { 0x1234, 0 }, none = { 0, 0 };
    HANDLE a = NULL, b = NULL, bad = NULL;
    NTSTATUS s = FwpsOpenToken0(gEngine, id, TOKEN_QUERY, &a);
    DbgPrint("tag: token %#x handle %d\n", s, a != NULL);
    s = FwpsOpenToken0(gEngine, id, TOKEN_READ | MAXIMUM_ALLOWED, &b);
    DbgPrint("tag: token again %#x distinct %d\n", s, a != b);
    DbgPrint("tag: token no id %#x\n", FwpsOpenToken0(gEngine, none, TOKEN_QUERY, &bad));
    DbgPrint("tag: token bad access %#x\n", FwpsOpenToken0(gEngine, id, 0x00800000, &bad));
    NTSTATUS first = NtClose(a), second = ZwClose(b);
    DbgPrint("tag: token closed %#x %#x\n", first, second);
#ifdef MISUSE
    DbgPrint("tag: token closed again %#x\n", NtClose(a));
    DbgPrint("tag: token bad engine %#x\n", FwpsOpenToken0((HANDLE)0x4242, id, TOKEN_QUERY, &bad));
    FwpsOpenToken0(gEngine, id, TOKEN_QUERY, &bad); /* left open at unload */
#endif
}

static NTSTATUS AddPolicy(void)
{
    FWPM_SESSION0 session = { 0 };
    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    NTSTATUS status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &gEngine);
    if (!NT_SUCCESS(status)) return status;
    Tokens();
    ListTags();
    FWPM_SUBLAYER0 sl = { 0 };
    sl.subLayerKey = TG_SUBLAYER;
    sl.displayData.name = L"tag sublayer";
    sl.weight = 0x100;
    status = FwpmSubLayerAdd0(gEngine, &sl, NULL);
    if (NT_SUCCESS(status))
        status = AddFilter(&TG_OUT_CALLOUT, &FWPM_LAYER_OUTBOUND_TRANSPORT_V4, FWP_ACTION_CALLOUT_TERMINATING,
                           L"tag out");
    if (NT_SUCCESS(status))
        status = AddFilter(&TG_IP_CALLOUT, &FWPM_LAYER_OUTBOUND_IPPACKET_V4, FWP_ACTION_CALLOUT_INSPECTION,
                           L"tag ip");
    return status;
}

static void Unload(PDRIVER_OBJECT driver)
{
    UNREFERENCED_PARAMETER(driver);
    if (gEngine) FwpmEngineClose0(gEngine);
    if (gOutId) FwpsCalloutUnregisterById0(gOutId);
    if (gIpId) FwpsCalloutUnregisterById0(gIpId);
    if (gInjection) FwpsInjectionHandleDestroy0(gInjection);
    if (gPool) NdisFreeNetBufferListPool(gPool);
    if (gGeneric) NdisFreeGenericObject(gGeneric);
    DbgPrint("tag: unloaded, sent=%ld\n", gSent);
    if (gDevice) IoDeleteDevice(gDevice);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING registryPath)
{
    UNREFERENCED_PARAMETER(registryPath);
    driver->DriverUnload = Unload;
    NTSTATUS status = IoCreateDevice(driver, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN, FALSE, &gDevice);
    if (NT_SUCCESS(status)) status = FwpsNetBufferListGetTagForContext0(&gTag);
    gGeneric = NdisAllocateGenericObject(driver, 'gaTR', 0);
    NET_BUFFER_LIST_POOL_PARAMETERS p = { 0 };
    p.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    p.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    p.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    p.ProtocolId = NDIS_PROTOCOL_ID_TCP_IP;
    p.fAllocateNetBuffer = TRUE;
    p.PoolTag = 'gaTR';
    gPool = NdisAllocateNetBufferListPool(gGeneric, &p);
    if (NT_SUCCESS(status) && gPool == NULL) status = STATUS_INSUFFICIENT_RESOURCES;
    if (NT_SUCCESS(status)) status = FwpsInjectionHandleCreate0(AF_INET, FWPS_INJECTION_TYPE_TRANSPORT, &gInjection);
    if (NT_SUCCESS(status)) status = Register(&TG_OUT_CALLOUT, OutClassify, &gOutId);
    if (NT_SUCCESS(status)) status = Register(&TG_IP_CALLOUT, IpClassify, &gIpId);
    if (NT_SUCCESS(status)) status = AddPolicy();
    return status;
}
