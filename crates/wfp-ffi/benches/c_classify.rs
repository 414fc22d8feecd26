//! ns per classify through a C callout (wfp-ffi adapter: incoming values, metadata, filter,
//! NET_BUFFER_LIST built per call, host bound, IRQL raised) against the same callout written in
//! Rust, in the same run, on the same engine shape: one CALLOUT_TERMINATING filter at
//! OUTBOUND_TRANSPORT_V4 whose callout reads the remote port and permits. Target: ≤ 25 ns added.
//!
//! Run: `cargo bench -p wfp-ffi --bench c_classify`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use wfp_core::catalogue::layers;
use wfp_core::{
    ActionType, Callout, CalloutFlags, CalloutRegistration, CalloutSpec, ClassifyContext,
    ClassifyOut, Engine, FilterSpec, Guid, IncomingValues, LayerData, Metadata, RtFilter, Value,
};
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, HostConfig};

const C_SOURCE: &str = r#"
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>
DEFINE_GUID(BENCH_CALLOUT, 0x5e1d0c4b, 0x1111, 0x2222, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66, 0x66);
static PDEVICE_OBJECT dev;
static UINT32 id;
static volatile UINT32 seen;
static void NTAPI Classify(const FWPS_INCOMING_VALUES0 *v, const FWPS_INCOMING_METADATA_VALUES0 *m, void *d,
                           const void *c, const FWPS_FILTER3 *f, UINT64 fc, FWPS_CLASSIFY_OUT0 *out)
{
    seen += v->incomingValue[FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_REMOTE_PORT].value.uint16;
    if (out->rights & FWPS_RIGHT_ACTION_WRITE) { out->actionType = FWP_ACTION_PERMIT; }
}
static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE t, const GUID *k, FWPS_FILTER3 *f) { return STATUS_SUCCESS; }
static void Unload(PDRIVER_OBJECT d) { FwpsCalloutUnregisterById0(id); IoDeleteDevice(dev); }
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    IoCreateDevice(d, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &dev);
    d->DriverUnload = Unload;
    FWPS_CALLOUT3 c = { 0 };
    c.calloutKey = BENCH_CALLOUT;
    c.classifyFn = Classify;
    c.notifyFn = Notify;
    return FwpsCalloutRegister3(dev, &c, &id);
}
"#;

/// The same callout in Rust.
struct RustCallout(std::sync::atomic::AtomicU32);

impl Callout for RustCallout {
    fn classify(
        &self,
        _: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        _: &Metadata,
        _: &mut LayerData<'_>,
        _: &RtFilter,
        _: u64,
        out: &mut ClassifyOut,
    ) {
        if let Value::Uint16(p) = values.get(5) {
            self.0
                .fetch_add(u32::from(*p), std::sync::atomic::Ordering::Relaxed);
        }
        if out.can_write() {
            out.action_type = ActionType::PERMIT;
        }
    }
}

fn engine_with_filter(key: Guid) -> Arc<Engine> {
    let e = Arc::new(Engine::default());
    e.add_callout(CalloutSpec {
        key,
        name: "bench".into(),
        description: String::new(),
        flags: 0,
        provider: None,
        applicable_layer: layers::OUTBOUND_TRANSPORT_V4,
    })
    .unwrap();
    let mut f = FilterSpec::new(
        "bench",
        layers::OUTBOUND_TRANSPORT_V4,
        ActionType::CALLOUT_TERMINATING,
    );
    f.callout = Some(key);
    e.add_filter(f).unwrap();
    e
}

fn measure(engine: &Engine, values: &[Value], packet: &[u8], iterations: u32) -> f64 {
    let meta = Metadata::default();
    let start = Instant::now();
    for _ in 0..iterations {
        let mut data = LayerData::Packet(packet);
        let r = engine.classify(
            layers::OUTBOUND_TRANSPORT_V4,
            values,
            &meta,
            &mut data,
            None,
        );
        std::hint::black_box(r);
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() {
    let c_key = Guid::from_windows_bytes([
        0x4b, 0x0c, 0x1d, 0x5e, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66,
        0x66,
    ]);
    let rust_key = Guid::from_name("bench", "rust");
    let so = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench_callout.so");
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench_callout.c");
    std::fs::write(&src, C_SOURCE).unwrap();
    build(&BuildOptions {
        sources: vec![src],
        output: so.clone(),
        ..BuildOptions::default()
    })
    .unwrap();

    let c_engine = engine_with_filter(c_key);
    let host = DriverHost::new(c_engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let rust_engine = engine_with_filter(rust_key);
    rust_engine
        .register_callout(CalloutRegistration::new(
            rust_key,
            CalloutFlags::default(),
            Arc::new(RustCallout(Default::default())),
        ))
        .unwrap();

    let values: Vec<Value> = (0..16)
        .map(|i| match i {
            0 => Value::Uint8(6),
            1 => Value::Uint32(0x0a4d_0001),
            3 => Value::Uint32(0x0a4d_0002),
            4 => Value::Uint16(40000),
            5 => Value::Uint16(443),
            _ => Value::Empty,
        })
        .collect();
    let packet = [0u8; 60];
    let n = 2_000_000;
    // Warm up both, then alternate rounds so drift hits both equally.
    measure(&c_engine, &values, &packet, n / 10);
    measure(&rust_engine, &values, &packet, n / 10);
    let mut c = Vec::new();
    let mut r = Vec::new();
    for _ in 0..5 {
        c.push(measure(&c_engine, &values, &packet, n));
        r.push(measure(&rust_engine, &values, &packet, n));
    }
    c.sort_by(f64::total_cmp);
    r.sort_by(f64::total_cmp);
    let (cm, rm) = (c[2], r[2]);
    println!("classify through a Rust callout: {rm:.1} ns (median of 5 x {n})");
    println!("classify through a C callout:    {cm:.1} ns (median of 5 x {n})");
    println!(
        "added by the C ABI: {:.1} ns per classify (target <= 25 ns); ratio {:.2}",
        cm - rm,
        cm / rm
    );
    drop(driver);
}
