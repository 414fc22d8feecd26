/*
 * vetonotify: a callout whose notifyFn vetoes filters by a rule (wfp-reference §3.3).
 *
 * Rule: a filter that invokes this callout must have at least one condition (a catch-all filter
 * would block everything); ADD_FILTER for a filter without conditions fails with
 * STATUS_INVALID_PARAMETER, so FwpmFilterAdd0 returns STATUS_FWP_CALLOUT_NOTIFICATION_FAILED.
 * Accepted filters get a per-filter context (pool 'oteV') in filter->context, freed on DELETE.
 * classifyFn blocks what its filters match (terminating callout, clears the write right).
 */
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>

#define VETO_TAG 'VeTo'
DEFINE_GUID(VETO_CALLOUT, 0x1d0e5b7a, 0x2f3c, 0x4e61, 0x8a, 0x90, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66);

typedef struct _FILTER_CTX {
    UINT64 FilterId;
    LONG64 Blocked;
} FILTER_CTX;

static PDEVICE_OBJECT gDevice;
static HANDLE gEngine;
static UINT32 gCalloutId;
static LONG gLiveContexts;

static void NTAPI Classify(const FWPS_INCOMING_VALUES0 *inFixedValues, const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                           void *layerData, const void *classifyContext, const FWPS_FILTER3 *filter, UINT64 flowContext,
                           FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(flowContext);
    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) return;
    FILTER_CTX *ctx = (FILTER_CTX *)(ULONG_PTR)filter->context;
    if (ctx) InterlockedIncrement64(&ctx->Blocked);
    classifyOut->actionType = FWP_ACTION_BLOCK;
    classifyOut->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE notifyType, const GUID *filterKey, FWPS_FILTER3 *filter)
{
    UNREFERENCED_PARAMETER(filterKey);
    switch (notifyType) {
    case FWPS_CALLOUT_NOTIFY_ADD_FILTER: {
        if (filter->numFilterConditions == 0) {
            DbgPrint("vetonotify: veto filter %I64u: no conditions\n", filter->filterId);
            return STATUS_INVALID_PARAMETER;
        }
        FILTER_CTX *ctx = (FILTER_CTX *)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(FILTER_CTX), VETO_TAG);
        if (!ctx) return STATUS_INSUFFICIENT_RESOURCES;
        ctx->FilterId = filter->filterId;
        filter->context = (UINT64)(ULONG_PTR)ctx;
        InterlockedIncrement(&gLiveContexts);
        DbgPrint("vetonotify: accept filter %I64u field %u match %u\n", filter->filterId,
                 filter->filterCondition[0].fieldId, filter->filterCondition[0].matchType);
        return STATUS_SUCCESS;
    }
    case FWPS_CALLOUT_NOTIFY_DELETE_FILTER: {
        FILTER_CTX *ctx = (FILTER_CTX *)(ULONG_PTR)filter->context;
        if (ctx) {
            DbgPrint("vetonotify: delete filter %I64u after %I64d blocks\n", ctx->FilterId, ctx->Blocked);
            ExFreePoolWithTag(ctx, VETO_TAG);
            InterlockedDecrement(&gLiveContexts);
        }
        return STATUS_SUCCESS;
    }
    default:
        return STATUS_SUCCESS;
    }
}

static NTSTATUS AddFilter(const wchar_t *name, UINT32 numConditions, FWPM_FILTER_CONDITION0 *conditions)
{
    FWPM_FILTER0 f = { 0 };
    f.displayData.name = (wchar_t *)name;
    f.layerKey = FWPM_LAYER_OUTBOUND_TRANSPORT_V4;
    f.action.type = FWP_ACTION_CALLOUT_TERMINATING;
    f.action.calloutKey = VETO_CALLOUT;
    f.numFilterConditions = numConditions;
    f.filterCondition = conditions;
    UINT64 id = 0;
    NTSTATUS status = FwpmFilterAdd0(gEngine, &f, NULL, &id);
    DbgPrint("vetonotify: FwpmFilterAdd0(%ws) = %#x id %I64u\n", name, status, id);
    return status;
}

DRIVER_UNLOAD DriverUnload;
void DriverUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    if (gEngine) FwpmEngineClose0(gEngine); /* dynamic session: DELETE_FILTER frees each context */
    if (gCalloutId) FwpsCalloutUnregisterById0(gCalloutId);
    DbgPrint("vetonotify: unloaded, %ld filter contexts live\n", gLiveContexts);
    IoDeleteDevice(gDevice);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    NTSTATUS status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &gDevice);
    if (!NT_SUCCESS(status)) return status;
    DriverObject->DriverUnload = DriverUnload;
    FWPS_CALLOUT c = { 0 };
    c.calloutKey = VETO_CALLOUT;
    c.classifyFn = Classify;
    c.notifyFn = Notify;
    status = FwpsCalloutRegister(gDevice, &c, &gCalloutId);
    if (!NT_SUCCESS(status)) { IoDeleteDevice(gDevice); return status; }
    FWPM_SESSION0 session = { 0 };
    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_DEFAULT, NULL, &session, &gEngine);
    if (!NT_SUCCESS(status)) { DriverUnload(DriverObject); return status; }
    FWPM_CALLOUT0 mc = { 0 };
    mc.calloutKey = VETO_CALLOUT;
    mc.displayData.name = L"vetonotify";
    mc.applicableLayer = FWPM_LAYER_OUTBOUND_TRANSPORT_V4;
    status = FwpmCalloutAdd0(gEngine, &mc, NULL, NULL);
    if (!NT_SUCCESS(status)) { DriverUnload(DriverObject); return status; }

    FWPM_FILTER_CONDITION0 telnet = { 0 };
    telnet.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    telnet.matchType = FWP_MATCH_EQUAL;
    telnet.conditionValue.type = FWP_UINT16;
    telnet.conditionValue.uint16 = 23;
    AddFilter(L"block telnet", 1, &telnet);
    NTSTATUS vetoed = AddFilter(L"block everything", 0, NULL);
    if (vetoed != STATUS_FWP_CALLOUT_NOTIFICATION_FAILED) DbgPrint("vetonotify: expected a veto\n");
    return STATUS_SUCCESS;
}
