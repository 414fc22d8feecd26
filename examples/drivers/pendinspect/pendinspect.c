/*
 * pendinspect: a WFP callout driver that holds new IPv4 connections to one port until a worker
 * thread has decided about them, and has that thread decide about (and re-inject) their outbound
 * packets too (written for this project against the WDK-named headers, after the WDK "inspect"
 * sample; builds with `wfpctl driver build`).
 *
 *  ALE_AUTH_CONNECT_V4 (remote port PORT): FwpsPendOperation0 → BLOCK + ABSORB; the connection is
 *        queued for the worker
 *  worker (PsCreateSystemThread; a spin-locked LIST_ENTRY queue and a KEVENT): decides (allow, or
 *        block with the Block parameter) and calls FwpsCompleteOperation0
 *  ALE_AUTH_CONNECT_V4 again (FWP_CONDITION_FLAG_IS_REAUTHORIZE): PERMIT or BLOCK as decided
 *  OUTBOUND_TRANSPORT_V4: packets of an allowed connection are cloned
 *        (FwpsAllocateCloneNetBufferList0: the list starts at the transport header, wfp-reference
 *        §8.2), the original absorbed and the clone queued with the endpoint handle and remote
 *        address; the worker sends it (FwpsInjectTransportSendAsync0, which builds the IP header)
 *        and the completion function frees it; the clone comes back injected by self
 *        (FwpsQueryPacketInjectionState0) and is permitted
 *  INBOUND_TRANSPORT_V4: packets of a blocked connection are blocked
 *
 * Unload (wfp-reference §5.3): the dynamic session closes (no new classifies), the worker is told
 * to stop, finishes the queue (pended connections are completed, queued clones are freed: their
 * packets are dropped) and ends; the unload routine waits for it, completes whatever was queued
 * after it stopped, unregisters the callouts and destroys the injection handle (which waits for
 * the outstanding completions).
 *
 * Parameters (the service's Parameters key, read with WdfDriverOpenParametersRegistryKey /
 * WdfRegistryQueryULong; `--driver-param NAME=VALUE` here): Port (REG_DWORD remote port, default
 * 8080), Block (REG_DWORD 0/1, default 0). The unload line reports how many decisions the worker
 * thread took (`on_worker=`).
 */
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>
#include <wdf.h>

#define PI_TAG 'IPdp'
#define PI_MAX 32

/* {9c4f6e32-2e77-4f20-ab73-7f4d1063c001} .. */
DEFINE_GUID(PI_CONNECT_CALLOUT, 0x9c4f6e32, 0x2e77, 0x4f20, 0xab, 0x73, 0x7f, 0x4d, 0x10, 0x63, 0xc0, 0x01);
DEFINE_GUID(PI_OUT_CALLOUT, 0x9c4f6e32, 0x2e77, 0x4f20, 0xab, 0x73, 0x7f, 0x4d, 0x10, 0x63, 0xc0, 0x02);
DEFINE_GUID(PI_IN_CALLOUT, 0x9c4f6e32, 0x2e77, 0x4f20, 0xab, 0x73, 0x7f, 0x4d, 0x10, 0x63, 0xc0, 0x03);
DEFINE_GUID(PI_SUBLAYER, 0x9c4f6e32, 0x2e77, 0x4f20, 0xab, 0x73, 0x7f, 0x4d, 0x10, 0x63, 0xc0, 0x10);

typedef enum { PI_FREE, PI_PENDED, PI_ALLOWED, PI_BLOCKED } PI_STATE;

typedef struct _PI_CONN {
    PI_STATE State;
    UINT16 LocalPort;
    UINT32 RemoteAddress;
    UINT16 RemotePort;
    HANDLE CompletionContext;
} PI_CONN;

/* One entry of the worker's queue: a pended connection or a cloned outbound packet. */
typedef enum { PI_WORK_CONNECT, PI_WORK_PACKET } PI_WORK_KIND;
typedef struct _PI_WORK {
    LIST_ENTRY Link;
    PI_WORK_KIND Kind;
    PI_CONN *Conn;
    NET_BUFFER_LIST *Clone;
    COMPARTMENT_ID Compartment;
    UINT64 Endpoint;      /* transportEndpointHandle of the classify that cloned the packet */
    UINT32 RemoteAddress; /* network order, for FWPS_TRANSPORT_SEND_PARAMS0.remoteAddress */
} PI_WORK;

static PDEVICE_OBJECT gDevice;
static HANDLE gEngine, gInjection;
static UINT32 gIds[3];
static KSPIN_LOCK gLock;
static PI_CONN gConns[PI_MAX];
/* The worker: its queue (gQueueLock), the event that wakes it, the stop flag, its thread. */
static LIST_ENTRY gQueue;
static KSPIN_LOCK gQueueLock;
static KEVENT gWorkEvent;
static LONG gStopping;
static PETHREAD gWorker;
static HANDLE gWorkerId;
/* Parameters (DriverEntry reads them; defaults when absent). */
static ULONG gPort = 8080;
static ULONG gBlock = 0;
static LONG gPended, gCompleted, gOnWorker, gCloned, gInjectedOk, gInjectFailed, gDropped;

static PI_CONN *Lookup(UINT16 localPort, UINT32 remote, UINT16 remotePort)
{
    for (int i = 0; i < PI_MAX; i++) {
        PI_CONN *c = &gConns[i];
        if (c->State != PI_FREE && c->LocalPort == localPort && c->RemoteAddress == remote && c->RemotePort == remotePort)
            return c;
    }
    return NULL;
}

static PI_STATE StateOf(UINT16 localPort, UINT32 remote, UINT16 remotePort)
{
    KLOCK_QUEUE_HANDLE lh;
    KeAcquireInStackQueuedSpinLock(&gLock, &lh);
    PI_CONN *c = Lookup(localPort, remote, remotePort);
    PI_STATE s = c ? c->State : PI_FREE;
    KeReleaseInStackQueuedSpinLock(&lh);
    return s;
}

/* Queues work for the worker; FALSE once it is stopping (the caller decides itself). */
static BOOLEAN Queue(PI_WORK_KIND kind, PI_CONN *conn, NET_BUFFER_LIST *clone,
                     const FWPS_INCOMING_METADATA_VALUES0 *meta, UINT32 remote)
{
    if (InterlockedCompareExchange(&gStopping, 0, 0)) return FALSE;
    PI_WORK *w = ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(PI_WORK), PI_TAG);
    if (w == NULL) return FALSE;
    w->Kind = kind;
    w->Conn = conn;
    w->Clone = clone;
    w->Compartment = meta ? meta->compartmentId : 0;
    w->Endpoint = meta ? meta->transportEndpointHandle : 0;
    w->RemoteAddress = RtlUlongByteSwap(remote);
    ExInterlockedInsertTailList(&gQueue, &w->Link, &gQueueLock);
    KeSetEvent(&gWorkEvent, IO_NO_INCREMENT, FALSE);
    return TRUE;
}

static BOOLEAN OnWorker(void)
{
    return gWorkerId != NULL && PsGetCurrentThreadId() == gWorkerId;
}

/* The decision about a pended connection: record it, then complete the operation (the engine
 * reauthorizes at ALE_AUTH_CONNECT, where ConnectClassify answers with the decision). */
static void DecideConnection(PI_CONN *c)
{
    KLOCK_QUEUE_HANDLE lh;
    KeAcquireInStackQueuedSpinLock(&gLock, &lh);
    HANDLE done = c->CompletionContext;
    c->CompletionContext = NULL;
    if (c->State == PI_PENDED) c->State = gBlock ? PI_BLOCKED : PI_ALLOWED;
    KeReleaseInStackQueuedSpinLock(&lh);
    if (done == NULL) return;
    FwpsCompleteOperation0(done, NULL);
    InterlockedIncrement(&gCompleted);
    if (OnWorker()) InterlockedIncrement(&gOnWorker);
}

static void NTAPI CloneComplete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    UNREFERENCED_PARAMETER(context);
    UNREFERENCED_PARAMETER(dispatchLevel);
    if (NT_SUCCESS(NET_BUFFER_LIST_STATUS(nbl))) InterlockedIncrement(&gInjectedOk);
    else InterlockedIncrement(&gInjectFailed);
    FwpsFreeCloneNetBufferList0(nbl, 0);
}

/* The decision about a cloned outbound packet: re-inject it, or drop it (blocked, stopping). */
static void DecidePacket(PI_WORK *w, BOOLEAN stopping)
{
    NTSTATUS status = STATUS_UNSUCCESSFUL;
    FWPS_TRANSPORT_SEND_PARAMS0 send = { 0 };
    send.remoteAddress = (UCHAR *)&w->RemoteAddress;
    if (!stopping && !gBlock)
        status = FwpsInjectTransportSendAsync0(gInjection, NULL, w->Endpoint, 0, &send, AF_INET, w->Compartment,
                                               w->Clone, CloneComplete, NULL);
    if (!NT_SUCCESS(status)) {
        FwpsFreeCloneNetBufferList0(w->Clone, 0);
        InterlockedIncrement(&gDropped);
    }
}

static void Process(PI_WORK *w, BOOLEAN stopping)
{
    if (w->Kind == PI_WORK_CONNECT) DecideConnection(w->Conn);
    else DecidePacket(w, stopping);
    ExFreePoolWithTag(w, PI_TAG);
}

/* Takes and processes every queued entry. */
static void DrainQueue(BOOLEAN stopping)
{
    PLIST_ENTRY e;
    while ((e = ExInterlockedRemoveHeadList(&gQueue, &gQueueLock)) != NULL)
        Process(CONTAINING_RECORD(e, PI_WORK, Link), stopping);
}

static KSTART_ROUTINE WorkerMain;
static void WorkerMain(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    gWorkerId = PsGetCurrentThreadId();
    for (;;) {
        KeWaitForSingleObject(&gWorkEvent, Executive, KernelMode, FALSE, NULL);
        BOOLEAN stopping = InterlockedCompareExchange(&gStopping, 0, 0) != 0;
        DrainQueue(stopping);
        if (stopping) break;
    }
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static NTSTATUS StartWorker(void)
{
    HANDLE h = NULL;
    InitializeListHead(&gQueue);
    KeInitializeSpinLock(&gQueueLock);
    KeInitializeEvent(&gWorkEvent, SynchronizationEvent, FALSE);
    NTSTATUS status = PsCreateSystemThread(&h, THREAD_ALL_ACCESS, NULL, NULL, NULL, WorkerMain, NULL);
    if (!NT_SUCCESS(status)) return status;
    status = ObReferenceObjectByHandle(h, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, (PVOID *)&gWorker, NULL);
    ZwClose(h);
    return status;
}

/* Stops the worker (it finishes the queue first), waits for it, then completes what was queued
 * after it ended. */
static void StopWorker(void)
{
    InterlockedExchange(&gStopping, 1);
    if (gWorker != NULL) {
        KeSetEvent(&gWorkEvent, IO_NO_INCREMENT, FALSE);
        KeWaitForSingleObject(gWorker, Executive, KernelMode, FALSE, NULL);
        ObDereferenceObject(gWorker);
        gWorker = NULL;
    }
    if (gQueue.Flink != NULL) DrainQueue(TRUE);
}

static void Absorb(FWPS_CLASSIFY_OUT0 *out)
{
    out->actionType = FWP_ACTION_BLOCK;
    out->flags |= FWPS_CLASSIFY_OUT_FLAG_ABSORB;
    out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static void Decide(FWPS_CLASSIFY_OUT0 *out, BOOLEAN block)
{
    out->actionType = block ? FWP_ACTION_BLOCK : FWP_ACTION_PERMIT;
    if (block) out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

/* A free slot, pended for this connection (under gLock); NULL when none or the pend failed. */
static PI_CONN *PendConnection(const FWPS_INCOMING_METADATA_VALUES0 *meta, UINT16 lport, UINT32 raddr, UINT16 rport)
{
    KLOCK_QUEUE_HANDLE lh;
    KeAcquireInStackQueuedSpinLock(&gLock, &lh);
    PI_CONN *c = NULL;
    for (int i = 0; i < PI_MAX && c == NULL; i++)
        if (gConns[i].State == PI_FREE) c = &gConns[i];
    NTSTATUS status = STATUS_INSUFFICIENT_RESOURCES;
    if (c != NULL) {
        status = FwpsPendOperation0(meta->completionHandle, &c->CompletionContext);
        if (NT_SUCCESS(status)) {
            c->State = PI_PENDED;
            c->LocalPort = lport;
            c->RemoteAddress = raddr;
            c->RemotePort = rport;
        }
    }
    KeReleaseInStackQueuedSpinLock(&lh);
    if (!NT_SUCCESS(status)) {
        DbgPrint("pendinspect: cannot pend (%#x): deciding now\n", status);
        return NULL;
    }
    return c;
}

static void NTAPI ConnectClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                  const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                                  const void *classifyContext, const FWPS_FILTER3 *filter, UINT64 flowContext,
                                  FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) return;
    const FWPS_INCOMING_VALUE0 *v = inFixedValues->incomingValue;
    UINT16 lport = v[FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_LOCAL_PORT].value.uint16;
    UINT32 raddr = v[FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_REMOTE_ADDRESS].value.uint32;
    UINT16 rport = v[FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_REMOTE_PORT].value.uint16;
    UINT32 flags = v[FWPS_FIELD_ALE_AUTH_CONNECT_V4_FLAGS].value.uint32;
    PI_STATE s = StateOf(lport, raddr, rport);
    if ((flags & FWP_CONDITION_FLAG_IS_REAUTHORIZE) || s == PI_ALLOWED || s == PI_BLOCKED) {
        /* The reauthorization the completion triggered: the decision. */
        Decide(classifyOut, s == PI_BLOCKED || (s == PI_FREE && gBlock));
        return;
    }
    if (s == PI_PENDED || !FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_COMPLETION_HANDLE)) {
        Decide(classifyOut, gBlock);
        return;
    }
    PI_CONN *c = PendConnection(inMetaValues, lport, raddr, rport);
    if (c == NULL) {
        Decide(classifyOut, gBlock);
        return;
    }
    InterlockedIncrement(&gPended);
    DbgPrint("pendinspect: pended connection to port %u from local port %u\n", rport, lport);
    if (!Queue(PI_WORK_CONNECT, c, NULL, NULL, 0)) DecideConnection(c);
    Absorb(classifyOut);
}

static void NTAPI OutboundClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                   const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                                   const void *classifyContext, const FWPS_FILTER3 *filter, UINT64 flowContext,
                                   FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) return;
    const FWPS_INCOMING_VALUE0 *v = inFixedValues->incomingValue;
    PI_STATE s = StateOf(v[FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_LOCAL_PORT].value.uint16,
                         v[FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_REMOTE_ADDRESS].value.uint32,
                         v[FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_REMOTE_PORT].value.uint16);
    NET_BUFFER_LIST *nbl = (NET_BUFFER_LIST *)layerData;
    if (s == PI_BLOCKED) { Decide(classifyOut, TRUE); return; }
    FWPS_PACKET_INJECTION_STATE inj = nbl ? FwpsQueryPacketInjectionState0(gInjection, nbl, NULL) : FWPS_PACKET_NOT_INJECTED;
    if (s != PI_ALLOWED || nbl == NULL || inj == FWPS_PACKET_INJECTED_BY_SELF || inj == FWPS_PACKET_PREVIOUSLY_INJECTED_BY_SELF) {
        Decide(classifyOut, FALSE);
        return;
    }
    NET_BUFFER_LIST *clone = NULL;
    NTSTATUS status = FwpsAllocateCloneNetBufferList0(nbl, NULL, NULL, 0, &clone);
    if (NT_SUCCESS(status)) {
        InterlockedIncrement(&gCloned);
        if (!Queue(PI_WORK_PACKET, NULL, clone, inMetaValues,
                   v[FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_REMOTE_ADDRESS].value.uint32)) {
            FwpsFreeCloneNetBufferList0(clone, 0);
            status = STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    if (!NT_SUCCESS(status)) {
        DbgPrint("pendinspect: clone/queue failed %#x: permitting the original\n", status);
        Decide(classifyOut, FALSE);
        return;
    }
    Absorb(classifyOut);
}

static void NTAPI InboundClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                  const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                                  const void *classifyContext, const FWPS_FILTER3 *filter, UINT64 flowContext,
                                  FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) return;
    const FWPS_INCOMING_VALUE0 *v = inFixedValues->incomingValue;
    PI_STATE s = StateOf(v[FWPS_FIELD_INBOUND_TRANSPORT_V4_IP_LOCAL_PORT].value.uint16,
                         v[FWPS_FIELD_INBOUND_TRANSPORT_V4_IP_REMOTE_ADDRESS].value.uint32,
                         v[FWPS_FIELD_INBOUND_TRANSPORT_V4_IP_REMOTE_PORT].value.uint16);
    Decide(classifyOut, s == PI_BLOCKED);
}

static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE notifyType, const GUID *filterKey, FWPS_FILTER3 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

static NTSTATUS AddFilter(const GUID *callout, const GUID *layer, const wchar_t *name)
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
    cond.conditionValue.uint16 = (UINT16)gPort;
    FWPM_FILTER0 f = { 0 };
    f.displayData.name = (wchar_t *)name;
    f.layerKey = *layer;
    f.subLayerKey = PI_SUBLAYER;
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
    sl.subLayerKey = PI_SUBLAYER;
    sl.displayData.name = L"pendinspect sublayer";
    sl.weight = 0x400;
    status = FwpmSubLayerAdd0(gEngine, &sl, NULL);
    if (NT_SUCCESS(status))
        status = AddFilter(&PI_CONNECT_CALLOUT, &FWPM_LAYER_ALE_AUTH_CONNECT_V4, L"pendinspect connect");
    if (NT_SUCCESS(status))
        status = AddFilter(&PI_OUT_CALLOUT, &FWPM_LAYER_OUTBOUND_TRANSPORT_V4, L"pendinspect out");
    if (NT_SUCCESS(status))
        status = AddFilter(&PI_IN_CALLOUT, &FWPM_LAYER_INBOUND_TRANSPORT_V4, L"pendinspect in");
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
    /* Pended operations must be completed before the callouts go (wfp-reference §5.3). */
    StopWorker();
    for (int i = 0; i < 3; i++) {
        if (gIds[i]) FwpsCalloutUnregisterById0(gIds[i]);
        gIds[i] = 0;
    }
    /* Returns once every injection made on it has had its completion function called. */
    if (gInjection) FwpsInjectionHandleDestroy0(gInjection);
    gInjection = NULL;
    DbgPrint("pendinspect: unloaded, pended=%ld completed=%ld on_worker=%ld cloned=%ld injected=%ld failed=%ld "
             "dropped=%ld\n",
             gPended, gCompleted, gOnWorker, gCloned, gInjectedOk, gInjectFailed, gDropped);
    IoDeleteDevice(gDevice);
}

static NTSTATUS Register(const GUID *key, FWPS_CALLOUT_CLASSIFY_FN3 fn, UINT32 *id)
{
    FWPS_CALLOUT3 c = { 0 };
    c.calloutKey = *key;
    c.classifyFn = fn;
    c.notifyFn = Notify;
    return FwpsCalloutRegister3(gDevice, &c, id);
}

static void EvtDriverUnload(WDFDRIVER Driver)
{
    DriverUnload(WdfDriverWdmGetDriverObject(Driver));
}

/* Port and Block from the Parameters key; a missing value keeps its default. */
static NTSTATUS ReadParameters(WDFDRIVER Driver)
{
    DECLARE_CONST_UNICODE_STRING(portName, L"Port");
    DECLARE_CONST_UNICODE_STRING(blockName, L"Block");
    WDFKEY key = NULL;
    ULONG v = 0;
    NTSTATUS status = WdfDriverOpenParametersRegistryKey(Driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key);
    if (!NT_SUCCESS(status)) return status;
    if (NT_SUCCESS(WdfRegistryQueryULong(key, &portName, &v))) {
        if (v == 0 || v > 65535) status = STATUS_INVALID_PARAMETER;
        else gPort = v;
    }
    if (NT_SUCCESS(WdfRegistryQueryULong(key, &blockName, &v))) gBlock = v != 0;
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
        DbgPrint("pendinspect: parameters failed %#x\n", status);
        return status;
    }
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN, FALSE, &gDevice);
    if (!NT_SUCCESS(status)) return status;
    status = FwpsInjectionHandleCreate0(AF_INET, FWPS_INJECTION_TYPE_TRANSPORT, &gInjection);
    if (NT_SUCCESS(status)) status = StartWorker();
    if (NT_SUCCESS(status)) status = Register(&PI_CONNECT_CALLOUT, ConnectClassify, &gIds[0]);
    if (NT_SUCCESS(status)) status = Register(&PI_OUT_CALLOUT, OutboundClassify, &gIds[1]);
    if (NT_SUCCESS(status)) status = Register(&PI_IN_CALLOUT, InboundClassify, &gIds[2]);
    if (NT_SUCCESS(status)) status = AddPolicy();
    if (!NT_SUCCESS(status)) {
        DbgPrint("pendinspect: DriverEntry failed %#x\n", status);
        DriverUnload(DriverObject);
        return status;
    }
    DbgPrint("pendinspect: loaded (port %u, %s)\n", gPort, gBlock ? "block" : "allow");
    return STATUS_SUCCESS;
}
