//! The unload protocol for what a driver left asynchronous (wfp-reference §5.3 with §10.1,
//! §10.2, §9.2): a pended operation and a pended classify the driver never completed are
//! completed by the host (reauthorize), and the clone, the allocated list and the referenced
//! indicated list it still holds are reclaimed — each a Driver Verifier finding, nothing left in
//! the engine.

use std::path::Path;
use std::sync::Arc;

use wfp_core::catalogue::layers;
use wfp_core::pend::PendEvent;
use wfp_core::redirect::RedirectRequest;
use wfp_core::{ActionType, CalloutSpec, Engine, FilterSpec, Guid, LayerData, LayerId, Metadata};
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::verifier::Finding;
use wfp_ffi::{DriverHost, HostConfig};

const SOURCE: &str = r#"
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
DEFINE_GUID(K_AUTH, 0xb2b2b2b2, 0x0001, 0x4000, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01);
DEFINE_GUID(K_BIND, 0xb2b2b2b2, 0x0001, 0x4000, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02);
DEFINE_GUID(K_PACKET, 0xb2b2b2b2, 0x0001, 0x4000, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03);
static PDEVICE_OBJECT dev;
static UINT32 ids[3];
static HANDLE operation;
static UCHAR bytes[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static PMDL mdl;

static void NTAPI Auth(const FWPS_INCOMING_VALUES0 *v, const FWPS_INCOMING_METADATA_VALUES0 *m, void *d,
                       const void *cc, const FWPS_FILTER3 *f, UINT64 fc, FWPS_CLASSIFY_OUT0 *out)
{
    DbgPrint("left: pend operation %#x\n", FwpsPendOperation0(m->completionHandle, &operation));
    out->actionType = FWP_ACTION_BLOCK;
    out->flags |= FWPS_CLASSIFY_OUT_FLAG_ABSORB;
    out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static void NTAPI Bind(const FWPS_INCOMING_VALUES0 *v, const FWPS_INCOMING_METADATA_VALUES0 *m, void *d,
                       const void *cc, const FWPS_FILTER3 *f, UINT64 fc, FWPS_CLASSIFY_OUT0 *out)
{
    UINT64 h = 0;
    NTSTATUS s = FwpsAcquireClassifyHandle0((void *)cc, 0, &h);
    if (NT_SUCCESS(s)) s = FwpsPendClassify0(h, f->filterId, 0, out);
    FwpsReleaseClassifyHandle0(h);
    DbgPrint("left: pend classify %#x\n", s);
}

static void NTAPI Packet(const FWPS_INCOMING_VALUES0 *v, const FWPS_INCOMING_METADATA_VALUES0 *m, void *d,
                         const void *cc, const FWPS_FILTER3 *f, UINT64 fc, FWPS_CLASSIFY_OUT0 *out)
{
    NET_BUFFER_LIST *nbl = (NET_BUFFER_LIST *)d, *clone = NULL, *mine = NULL;
    DbgPrint("left: clone %#x\n", FwpsAllocateCloneNetBufferList0(nbl, NULL, NULL, 0, &clone));
    DbgPrint("left: allocate %#x\n", FwpsAllocateNetBufferAndNetBufferList0(NULL, 0, 0, mdl, 0, sizeof(bytes), &mine));
    FwpsReferenceNetBufferList0(nbl, FALSE);
    out->actionType = FWP_ACTION_PERMIT;
}

static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE t, const GUID *k, FWPS_FILTER3 *f) { return STATUS_SUCCESS; }
static NTSTATUS Reg(const GUID *k, FWPS_CALLOUT_CLASSIFY_FN3 fn, UINT32 *id)
{
    FWPS_CALLOUT3 c = { 0 };
    c.calloutKey = *k;
    c.classifyFn = fn;
    c.notifyFn = Notify;
    return FwpsCalloutRegister3(dev, &c, id);
}
/* A careless unload: the callouts go, the MDL goes, the pended work and the lists stay. */
static void Unload(PDRIVER_OBJECT d)
{
    for (int i = 0; i < 3; i++) FwpsCalloutUnregisterById0(ids[i]);
    IoFreeMdl(mdl);
    IoDeleteDevice(dev);
}
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    IoCreateDevice(d, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &dev);
    d->DriverUnload = Unload;
    mdl = IoAllocateMdl(bytes, sizeof(bytes), FALSE, FALSE, NULL);
    MmBuildMdlForNonPagedPool(mdl);
    NTSTATUS s = Reg(&K_AUTH, Auth, &ids[0]);
    if (NT_SUCCESS(s)) s = Reg(&K_BIND, Bind, &ids[1]);
    if (NT_SUCCESS(s)) s = Reg(&K_PACKET, Packet, &ids[2]);
    return s;
}
"#;

fn layer(name: &str) -> LayerId {
    wfp_core::catalogue::layer_by_name(name).unwrap().layer_id()
}

fn add(engine: &Engine, n: u8, layer: LayerId) {
    let key = Guid::from_windows_bytes([
        0xb2, 0xb2, 0xb2, 0xb2, 0x01, 0x00, 0x00, 0x40, 0x80, 0, 0, 0, 0, 0, 0, n,
    ]);
    engine
        .add_callout(CalloutSpec {
            key,
            name: format!("left{n}"),
            description: String::new(),
            flags: 0,
            provider: None,
            applicable_layer: layer,
        })
        .unwrap();
    let mut f = FilterSpec::new("left", layer, ActionType::CALLOUT_TERMINATING);
    f.callout = Some(key);
    engine.add_filter(f).unwrap();
}

fn left(findings: &[Finding], what: &str) -> usize {
    findings
        .iter()
        .find_map(|f| match f {
            Finding::ObjectsLeft { what: w, count } if *w == what => Some(*count),
            _ => None,
        })
        .unwrap_or(0)
}

/// Drives the three classifies that leave work behind.
fn leave_work(engine: &Engine) -> wfp_core::pend::CompletionHandle {
    add(engine, 1, layers::ALE_AUTH_CONNECT_V4);
    add(engine, 2, layer("ALE_BIND_REDIRECT_V4"));
    add(engine, 3, layers::OUTBOUND_TRANSPORT_V4);
    let handle = engine.new_completion_handle();
    let meta = Metadata {
        completion_handle: handle.0,
        present: wfp_core::constants::MetadataFields::COMPLETION_HANDLE,
        ..Metadata::default()
    };
    let auth = engine.classify(
        layers::ALE_AUTH_CONNECT_V4,
        &[],
        &meta,
        &mut LayerData::None,
        None,
    );
    assert_eq!(auth.action, ActionType::BLOCK);
    let bind = engine.classify_redirect(
        layer("ALE_BIND_REDIRECT_V4"),
        &[],
        &Metadata::default(),
        RedirectRequest::bind("10.77.0.1:40000".parse().unwrap()),
    );
    assert!(bind.pended);
    let packet = [
        0x45, 0, 0, 28, 1, 2, 0, 0, 64, 17, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2, 0x9c, 0x40, 0, 53, 0,
        8, 0, 0,
    ];
    let mut data = LayerData::Packet(&packet);
    let r = engine.classify(
        layers::OUTBOUND_TRANSPORT_V4,
        &[],
        &Metadata::default(),
        &mut data,
        None,
    );
    assert_eq!(r.action, ActionType::PERMIT);
    while engine.poll_pend_event().is_some() {}
    handle
}

#[test]
fn unload_completes_pended_work_and_reports_lists_still_held() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("unload_async.c");
    std::fs::write(&src, SOURCE).unwrap();
    let so = dir.join("unload_async.so");
    build(&BuildOptions {
        sources: vec![src],
        output: so.clone(),
        ..BuildOptions::default()
    })
    .unwrap();
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let handle = leave_work(&engine);
    assert_eq!(engine.classify_handle_count(), 1, "the pend's reference");
    assert!(
        engine.ledger_counts() != Default::default(),
        "the clone's packet"
    );

    let report = driver.unload().unwrap();
    let f = &report.findings;
    assert_eq!(
        left(f, "pended operation(s) the driver never completed"),
        1,
        "{f:?}"
    );
    assert_eq!(
        left(f, "pended classify(s) the driver never completed"),
        1,
        "{f:?}"
    );
    assert_eq!(left(f, "cloned net buffer list(s)"), 1, "{f:?}");
    assert_eq!(left(f, "allocated net buffer list(s)"), 1, "{f:?}");
    assert_eq!(
        left(f, "referenced indicated net buffer list(s)"),
        1,
        "{f:?}"
    );
    assert_eq!(left(f, "cloned stream data list(s)"), 0, "{f:?}");
    assert_eq!(f.len(), 5, "{f:?}");
    assert!(f
        .iter()
        .all(|x| x.to_string().contains("still held after the unload")));

    // The host's completions reach the engine: the operation and the classify reauthorize.
    let mut events = Vec::new();
    while let Some(e) = engine.poll_pend_event() {
        events.push(e);
    }
    assert!(
        events.iter().any(|e| matches!(e,
            PendEvent::OperationCompleted { handle: h, packet: None, .. } if *h == handle)),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PendEvent::ClassifyCompleted { decision: None, .. })),
        "{events:?}"
    );
    assert_eq!(engine.classify_handle_count(), 0);
    assert_eq!(engine.ledger_counts(), Default::default());
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(
        log,
        [
            "left: pend operation 0x0",
            "left: pend classify 0x0",
            "left: clone 0x0",
            "left: allocate 0x0",
        ]
    );
}
