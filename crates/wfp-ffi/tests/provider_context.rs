//! Provider contexts reach a C callout (wfp-reference §11.4): a driver adds a general provider
//! context, a callout with FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT and a filter with
//! FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT through fwpmk.h; its classifyFn finds the blob in
//! `FWPS_FILTER3.providerContext` and the provider context's LUID in `filter->context`.

use std::path::Path;
use std::sync::Arc;

use wfp_core::callout::LayerData;
use wfp_core::catalogue::{self, layers};
use wfp_core::{ActionType, Engine, Metadata, Value};
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, HostConfig};

const DRIVER: &str = r#"
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>

DEFINE_GUID(PCTX_CALLOUT, 0x3c5e0a11, 0x7d2b, 0x4c90, 0x9e, 0x01, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f);
DEFINE_GUID(PCTX_KEY, 0x3c5e0a12, 0x7d2b, 0x4c90, 0x9e, 0x01, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f);
DEFINE_GUID(PCTX_OPTIONS, 0x3c5e0a13, 0x7d2b, 0x4c90, 0x9e, 0x01, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f);

static PDEVICE_OBJECT gDevice;
static HANDLE gEngine;
static UINT32 gCalloutId;
static UINT8 gBlob[5] = { 0x01, 0x02, 'w', 'f', 'p' };

static int HasBlob(const FWPM_PROVIDER_CONTEXT3 *pc)
{
    return pc && pc->type == FWPM_GENERAL_CONTEXT && pc->dataBuffer &&
           pc->dataBuffer->size == sizeof(gBlob) &&
           RtlCompareMemory(pc->dataBuffer->data, gBlob, sizeof(gBlob)) == sizeof(gBlob) &&
           IsEqualGUID(&pc->providerContextKey, &PCTX_KEY);
}

static void NTAPI Classify(const FWPS_INCOMING_VALUES0 *inFixedValues, const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                           void *layerData, const void *classifyContext, const FWPS_FILTER3 *filter, UINT64 flowContext,
                           FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(flowContext);
    const FWPM_PROVIDER_CONTEXT3 *pc = filter->providerContext;
    if (HasBlob(pc) && filter->context == pc->providerContextId) {
        DbgPrint("pctx: classify saw the blob, context %I64u\n", filter->context);
        classifyOut->actionType = FWP_ACTION_BLOCK;
        classifyOut->rights &= ~FWPS_RIGHT_ACTION_WRITE;
    } else {
        DbgPrint("pctx: classify saw no blob\n");
        classifyOut->actionType = FWP_ACTION_PERMIT;
    }
}

static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE notifyType, const GUID *filterKey, FWPS_FILTER3 *filter)
{
    UNREFERENCED_PARAMETER(filterKey);
    if (notifyType == FWPS_CALLOUT_NOTIFY_ADD_FILTER)
        DbgPrint("pctx: notify add, blob %d\n", HasBlob(filter->providerContext));
    return STATUS_SUCCESS;
}

DRIVER_UNLOAD DriverUnload;
void DriverUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    if (gEngine) FwpmEngineClose0(gEngine);
    if (gCalloutId) FwpsCalloutUnregisterById0(gCalloutId);
    IoDeleteDevice(gDevice);
}

static NTSTATUS AddObjects(void)
{
    FWP_BYTE_BLOB blob = { sizeof(gBlob), gBlob };
    FWPM_PROVIDER_CONTEXT3 pc = { 0 };
    pc.providerContextKey = PCTX_KEY;
    pc.displayData.name = L"pctx blob";
    pc.type = FWPM_GENERAL_CONTEXT;
    pc.dataBuffer = &blob;
    UINT64 pcId = 0;
    NTSTATUS status = FwpmProviderContextAdd3(gEngine, &pc, NULL, &pcId);
    DbgPrint("pctx: FwpmProviderContextAdd3 = %#x id %I64u\n", status, pcId);
    if (!NT_SUCCESS(status)) return status;

    FWPM_PROVIDER_CONTEXT0 options = { 0 };
    options.providerContextKey = PCTX_OPTIONS;
    options.displayData.name = L"options";
    options.type = FWPM_CLASSIFY_OPTIONS_CONTEXT;
    DbgPrint("pctx: classify options context = %#x\n", FwpmProviderContextAdd0(gEngine, &options, NULL, NULL));

    FWPM_CALLOUT0 mc = { 0 };
    mc.calloutKey = PCTX_CALLOUT;
    mc.displayData.name = L"pctx";
    mc.flags = FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT;
    mc.applicableLayer = FWPM_LAYER_OUTBOUND_TRANSPORT_V4;
    status = FwpmCalloutAdd0(gEngine, &mc, NULL, NULL);
    if (!NT_SUCCESS(status)) return status;

    FWPM_FILTER0 f = { 0 };
    f.displayData.name = L"pctx filter";
    f.flags = FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT;
    f.layerKey = FWPM_LAYER_OUTBOUND_TRANSPORT_V4;
    f.action.type = FWP_ACTION_CALLOUT_TERMINATING;
    f.action.calloutKey = PCTX_CALLOUT;
    f.providerContextKey = PCTX_KEY;
    UINT64 filterId = 0;
    status = FwpmFilterAdd0(gEngine, &f, NULL, &filterId);
    DbgPrint("pctx: FwpmFilterAdd0 = %#x\n", status);
    if (!NT_SUCCESS(status)) return status;

    FWPM_PROVIDER_CONTEXT0 *got = NULL;
    status = FwpmProviderContextGetByKey0(gEngine, &PCTX_KEY, &got);
    DbgPrint("pctx: get = %#x id %I64u blob %d\n", status, got ? got->providerContextId : 0,
             HasBlob((const FWPM_PROVIDER_CONTEXT3 *)got));
    FwpmFreeMemory0((void **)&got);
    DbgPrint("pctx: delete while in use = %#x\n", FwpmProviderContextDeleteByKey0(gEngine, &PCTX_KEY));
    return STATUS_SUCCESS;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    NTSTATUS status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &gDevice);
    if (!NT_SUCCESS(status)) return status;
    DriverObject->DriverUnload = DriverUnload;
    FWPS_CALLOUT c = { 0 };
    c.calloutKey = PCTX_CALLOUT;
    c.classifyFn = Classify;
    c.notifyFn = Notify;
    status = FwpsCalloutRegister(gDevice, &c, &gCalloutId);
    if (!NT_SUCCESS(status)) { IoDeleteDevice(gDevice); return status; }
    FWPM_SESSION0 session = { 0 };
    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_DEFAULT, NULL, &session, &gEngine);
    if (NT_SUCCESS(status)) status = AddObjects();
    if (!NT_SUCCESS(status)) DriverUnload(DriverObject);
    return status;
}
"#;

#[test]
fn a_c_callout_sees_its_filters_provider_context() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("pctx_driver.c");
    std::fs::write(&src, DRIVER).unwrap();
    let so = dir.join("pctx_driver.so");
    build(&BuildOptions {
        sources: vec![src],
        output: so.clone(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building the driver: {e}"));
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let pcs = engine.provider_contexts();
    assert_eq!(pcs.len(), 1, "the classify-options context was refused");
    let filter = engine.filters().pop().unwrap();
    assert_eq!(filter.context, pcs[0].id.0);
    drop(filter);

    let l = layers::OUTBOUND_TRANSPORT_V4;
    let values = vec![Value::Empty; catalogue::layer(l).unwrap().fields.len()];
    let r = engine.classify(l, &values, &Metadata::default(), &mut LayerData::None, None);
    assert_eq!(r.action, ActionType::BLOCK, "{:#?}", host.drain_log());
    let r = engine.classify(l, &values, &Metadata::default(), &mut LayerData::None, None);
    assert_eq!(
        r.action,
        ActionType::BLOCK,
        "the cached filter image keeps the pointer"
    );

    let report = driver.unload().unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert!(report.findings.is_empty(), "{:?} {log:#?}", report.findings);
    let has = |s: &str| log.iter().any(|l| l == s);
    assert!(has("pctx: FwpmProviderContextAdd3 = 0x0 id 1"), "{log:#?}");
    assert!(
        has("pctx: classify options context = 0xc00000bb"),
        "{log:#?}"
    );
    assert!(has("pctx: notify add, blob 1"), "{log:#?}");
    assert!(has("pctx: FwpmFilterAdd0 = 0x0"), "{log:#?}");
    assert!(has("pctx: get = 0x0 id 1 blob 1"), "{log:#?}");
    assert!(has("pctx: delete while in use = 0xc022000a"), "{log:#?}");
    assert!(has("pctx: classify saw the blob, context 1"), "{log:#?}");
    // The dynamic session's objects went with the driver.
    assert!(engine.provider_contexts().is_empty());
    assert!(engine.filters().is_empty());
}
