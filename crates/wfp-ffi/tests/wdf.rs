//! KMDF from C (`tests/c/drivers/rt_wdf.c`): WdfDriverCreate, a control device, parameters from
//! the host's driver options through WdfRegistryQuery*, and device-control requests the host sends
//! with `Driver::ioctl` to the default queue's EvtIoDeviceControl.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, DriverOptions, HostConfig, IoctlError, ParamValue};

fn build_driver(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/drivers/{name}.c"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.so"));
    build(&BuildOptions {
        sources: vec![src],
        output: out.clone(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building {name}: {e}"));
    out
}

const fn ctl(function: u32, method: u32) -> u32 {
    (0x12 << 16) | (function << 2) | method
}

fn log(host: &DriverHost) -> Vec<String> {
    host.drain_log().into_iter().map(|l| l.text).collect()
}

#[test]
fn kmdf_control_device_parameters_and_device_control_requests() {
    let so = build_driver("rt_wdf");
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let options = DriverOptions {
        params: vec![
            ("MODE".into(), ParamValue::parse("0x2a")),
            ("Rule".into(), ParamValue::parse("block:23")),
        ],
    };
    let driver = host.load_with(&so, &options).unwrap();
    let entry = log(&host);
    assert_eq!(
        entry,
        vec![
            "Mode 0 42",
            "Missing c0000034",
            "Rule as ULONG c0000024",
            "Rule size 0 18",
            "Rule small 80000005",
            "Rule 0 block:23",
            "QueryValue 0 type 4 len 4",
            "initializing 1",
        ]
    );
    let devices = driver.devices();
    assert_eq!(devices.len(), 1);
    let d = &devices[0];
    assert_eq!(d.name.as_deref(), Some("\\Device\\RtWdf"));
    assert_eq!(d.links, vec!["\\DosDevices\\RtWdf".to_string()]);
    assert_eq!((d.device_type, d.characteristics), (0x12, 0x180));
    assert_eq!(
        d.class.map(|c| c[0]),
        Some(0x44),
        "GUID Data1 little-endian"
    );
    assert!(!d.initializing);

    let echo = driver.ioctl(ctl(0x800, 0), b"hello", 16).unwrap();
    assert_eq!((echo.status, echo.information), (0, 5));
    assert_eq!(echo.output, b"hello");
    let rev = driver.ioctl(ctl(0x801, 0), b"abc", 3).unwrap();
    assert_eq!(rev.output, b"cba");
    let small = driver.ioctl(ctl(0x802, 0), &[], 8).unwrap();
    assert_eq!(
        small.status, 0xC000_0023,
        "output below the minimum: BUFFER_TOO_SMALL"
    );
    let params = driver.ioctl(ctl(0x802, 0), &[], 128).unwrap();
    assert_eq!(params.status, 0);
    assert_eq!(&params.output[..4], &42u32.to_le_bytes());
    let rule: Vec<u16> = params.output[4..]
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|c| *c != 0)
        .collect();
    assert_eq!(String::from_utf16_lossy(&rule), "block:23");
    let deferred = driver.ioctl(ctl(0x803, 0), &[1], 0).unwrap();
    assert_eq!(deferred.status, 0, "completed later from a work item");
    let direct = driver.ioctl(ctl(0x804, 2), b"in", 8).unwrap();
    assert_eq!(direct.output, b"DRCT");
    let unknown = driver.ioctl(ctl(0x8ff, 0), &[], 0).unwrap();
    assert_eq!(unknown.status, 0xC000_0010);
    let empty = driver.ioctl(ctl(0x800, 0), &[], 16).unwrap();
    assert_eq!(empty.status, 0xC000_0023, "no input: BUFFER_TOO_SMALL");

    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(log(&host), vec!["EvtDriverUnload 8 requests"]);
}

#[test]
fn without_parameters_the_driver_falls_back_to_its_defaults() {
    let so = build_driver("rt_wdf");
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(&so).unwrap();
    assert_eq!(log(&host)[0], "Mode c0000034 7");
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn a_driver_without_a_queue_rejects_ioctls() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("noqueue.c");
    std::fs::write(
        &src,
        "#include <ntddk.h>\nNTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) { return STATUS_SUCCESS; }\n",
    )
    .unwrap();
    let out = dir.join("noqueue.so");
    build(&BuildOptions {
        sources: vec![src],
        output: out.clone(),
        ..BuildOptions::default()
    })
    .unwrap();
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(&out).unwrap();
    assert!(matches!(
        driver.ioctl(0, &[], 0),
        Err(IoctlError::NoQueue { .. })
    ));
}

#[test]
fn parameter_values_are_typed_by_prefix_or_inferred() {
    assert_eq!(ParamValue::parse("12"), ParamValue::Dword(12));
    assert_eq!(ParamValue::parse("0xFF"), ParamValue::Dword(255));
    assert_eq!(ParamValue::parse("dword:3"), ParamValue::Dword(3));
    assert_eq!(ParamValue::parse("sz:12"), ParamValue::String("12".into()));
    assert_eq!(
        ParamValue::parse("99999999999"),
        ParamValue::String("99999999999".into())
    );
    assert_eq!(ParamValue::parse("a=b"), ParamValue::String("a=b".into()));
}
