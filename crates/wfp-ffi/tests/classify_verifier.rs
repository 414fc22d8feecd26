//! The Verifier's check on return from classifyFn (wdk-runtime.md: a callback returns at the IRQL
//! it was entered at, DISPATCH_LEVEL for classifyFn, with no spin lock it acquired still held):
//! the classify path's lean binding guard reports an unbalanced return, releases the lock left
//! held and restores the caller's binding, so later classifies run normally.

use std::path::Path;
use std::sync::Arc;

use wfp_core::catalogue::layers;
use wfp_core::{ActionType, CalloutSpec, Engine, FilterSpec, Guid, LayerData, Metadata, Value};
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, Finding, HostConfig};

/// classifyFn call 1 returns holding a spin lock; call 2 acquires and releases it (it was
/// force-released, or this would spin) and returns at PASSIVE_LEVEL; call 3 is balanced.
const SOURCE: &str = r#"
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>
DEFINE_GUID(UNBALANCED_CALLOUT, 0x6a7b8c9d, 0x1234, 0x5678, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78);
static PDEVICE_OBJECT dev;
static UINT32 id;
static KSPIN_LOCK lock;
static int calls;
static void NTAPI Classify(const FWPS_INCOMING_VALUES0 *v, const FWPS_INCOMING_METADATA_VALUES0 *m, void *d,
                           const void *c, const FWPS_FILTER3 *f, UINT64 fc, FWPS_CLASSIFY_OUT0 *out)
{
    KIRQL old;
    calls++;
    if (calls == 1) {
        KeAcquireSpinLock(&lock, &old);
    } else if (calls == 2) {
        KeAcquireSpinLock(&lock, &old);
        KeReleaseSpinLock(&lock, old);
        KeLowerIrql(PASSIVE_LEVEL);
    }
    DbgPrint("call %d irql %u\n", calls, KeGetCurrentIrql());
    if (out->rights & FWPS_RIGHT_ACTION_WRITE) { out->actionType = FWP_ACTION_PERMIT; }
}
static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE t, const GUID *k, FWPS_FILTER3 *f) { return STATUS_SUCCESS; }
static void Unload(PDRIVER_OBJECT d) { FwpsCalloutUnregisterById0(id); IoDeleteDevice(dev); }
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    IoCreateDevice(d, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &dev);
    d->DriverUnload = Unload;
    KeInitializeSpinLock(&lock);
    FWPS_CALLOUT3 c = { 0 };
    c.calloutKey = UNBALANCED_CALLOUT;
    c.classifyFn = Classify;
    c.notifyFn = Notify;
    return FwpsCalloutRegister3(dev, &c, &id);
}
"#;

fn engine_with_callout_filter(key: Guid) -> Arc<Engine> {
    let e = Arc::new(Engine::default());
    e.add_callout(CalloutSpec {
        key,
        name: "unbalanced".into(),
        description: String::new(),
        flags: 0,
        provider: None,
        applicable_layer: layers::OUTBOUND_TRANSPORT_V4,
    })
    .unwrap();
    let mut f = FilterSpec::new(
        "unbalanced",
        layers::OUTBOUND_TRANSPORT_V4,
        ActionType::CALLOUT_TERMINATING,
    );
    f.callout = Some(key);
    e.add_filter(f).unwrap();
    e
}

#[test]
fn classify_returning_unbalanced_is_reported_and_the_binding_restored() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("classify_unbalanced.c");
    std::fs::write(&src, SOURCE).unwrap();
    let so = dir.join("classify_unbalanced.so");
    build(&BuildOptions {
        sources: vec![src],
        output: so.clone(),
        ..BuildOptions::default()
    })
    .unwrap();
    let key = Guid::from_windows_bytes([
        0x9d, 0x8c, 0x7b, 0x6a, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56,
        0x78,
    ]);
    let engine = engine_with_callout_filter(key);
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let values = vec![Value::Empty; 16];
    let packet = [0u8; 40];
    for _ in 0..3 {
        let mut data = LayerData::Packet(&packet);
        let out = engine.classify(
            layers::OUTBOUND_TRANSPORT_V4,
            &values,
            &Metadata::default(),
            &mut data,
            None,
        );
        assert_eq!(out.action, ActionType::PERMIT);
    }
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(
        log,
        ["call 1 irql 2", "call 2 irql 0", "call 3 irql 2"],
        "every classifyFn entered at DISPATCH_LEVEL"
    );
    let report = driver.unload().unwrap();
    let unbalanced: Vec<_> = report
        .findings
        .iter()
        .filter(|f| matches!(f, Finding::UnbalancedIrql { .. }))
        .collect();
    assert!(
        matches!(
            unbalanced.as_slice(),
            [
                Finding::UnbalancedIrql {
                    callback: "classifyFn",
                    entry: 2,
                    exit: 2,
                    locks_held: 1
                },
                Finding::UnbalancedIrql {
                    callback: "classifyFn",
                    entry: 2,
                    exit: 0,
                    locks_held: 0
                }
            ]
        ),
        "{:?}",
        report.findings
    );
}
