//! KMDF from C (`tests/c/drivers/rt_wdf.c`): WdfDriverCreate, a control device, parameters from
//! the host's driver options through WdfRegistryQuery*, and device-control requests the host sends
//! with `Driver::ioctl` to the default queue's EvtIoDeviceControl; `Driver::read` / `write` to its
//! EvtIoRead / EvtIoWrite (`tests/c/drivers/rt_wdfrw.c`).

#[path = "support/build.rs"]
mod builder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, DriverOptions, HostConfig, IoctlError, ParamValue};

/// Builds `tests/c/drivers/{name}.c` into `{image}.so` (one image per test: tests run in parallel).
fn build_driver(name: &str, image: &str) -> PathBuf {
    build_with(name, image, &[])
}

/// [`build_driver`] with extra compiler flags.
fn build_with(name: &str, image: &str, flags: &[&str]) -> PathBuf {
    builder::driver(image, &[builder::source(&format!("{name}.c"))], &[], flags)
}

const fn ctl(function: u32, method: u32) -> u32 {
    (0x12 << 16) | (function << 2) | method
}

fn log(host: &DriverHost) -> Vec<String> {
    host.drain_log().into_iter().map(|l| l.text).collect()
}

#[test]
fn kmdf_control_device_parameters_and_device_control_requests() {
    let so = build_driver("rt_wdf", "rt_wdf");
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

    // Sequential dispatch: the next request waits until the held one is completed (later, from a
    // work item), so it sees the completion.
    let driver = Arc::new(driver);
    let held = {
        let d = driver.clone();
        std::thread::spawn(move || d.ioctl(ctl(0x805, 0), &[], 0))
    };
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !host.drain_log().iter().any(|l| l.text == "held") {
        assert!(
            std::time::Instant::now() < end,
            "the held request was never presented"
        );
        std::thread::yield_now();
    }
    let check = driver.ioctl(ctl(0x806, 0), &[], 4).unwrap();
    assert_eq!(
        check.output,
        1u32.to_le_bytes(),
        "presented only after the held request completed"
    );
    assert_eq!(held.join().unwrap().unwrap().status, 0);

    let driver = Arc::try_unwrap(driver).ok().unwrap();
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(log(&host), vec!["EvtDriverUnload 10 requests"]);
}

#[test]
fn without_parameters_the_driver_falls_back_to_its_defaults() {
    let so = build_driver("rt_wdf", "rt_wdf_defaults");
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

const ZW_REGISTRY: &str = r#"
#include <ntddk.h>
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    OBJECT_ATTRIBUTES oa;
    HANDLE service, params, other;
    UNICODE_STRING name, mode, rule, missing, bogus;
    UCHAR buf[64];
    ULONG got = 0;
    RtlInitUnicodeString(&name, L"Parameters");
    RtlInitUnicodeString(&mode, L"mode");
    RtlInitUnicodeString(&rule, L"Rule");
    RtlInitUnicodeString(&missing, L"Missing");
    RtlInitUnicodeString(&bogus, L"\\REGISTRY\\MACHINE\\SOFTWARE\\Other");
    InitializeObjectAttributes(&oa, RegistryPath, OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE, NULL, NULL);
    DbgPrint("open service %x\n", ZwOpenKey(&service, KEY_READ, &oa));
    InitializeObjectAttributes(&oa, &name, OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE, service, NULL);
    DbgPrint("open parameters %x\n", ZwOpenKey(&params, KEY_READ, &oa));
    InitializeObjectAttributes(&oa, &bogus, OBJ_KERNEL_HANDLE, NULL, NULL);
    DbgPrint("open other %x\n", ZwOpenKey(&other, KEY_READ, &oa));
    NTSTATUS st = ZwQueryValueKey(params, &mode, KeyValuePartialInformation, buf, sizeof(buf), &got);
    PKEY_VALUE_PARTIAL_INFORMATION p = (PKEY_VALUE_PARTIAL_INFORMATION)buf;
    DbgPrint("mode %x type %u len %u value %u got %u\n", st, p->Type, p->DataLength, *(ULONG *)p->Data, got);
    st = ZwQueryValueKey(params, &rule, KeyValuePartialInformation, buf, 14, &got);
    DbgPrint("rule short %x len %u got %u\n", st, p->DataLength, got);
    st = ZwQueryValueKey(params, &rule, KeyValuePartialInformation, buf, 4, &got);
    DbgPrint("rule tiny %x got %u\n", st, got);
    st = ZwQueryValueKey(params, &rule, KeyValueFullInformation, buf, sizeof(buf), &got);
    PKEY_VALUE_FULL_INFORMATION f = (PKEY_VALUE_FULL_INFORMATION)buf;
    DbgPrint("rule full %x type %u name %u data %ws\n", st, f->Type, f->NameLength, (PWCHAR)(buf + f->DataOffset));
    DbgPrint("missing %x\n", ZwQueryValueKey(params, &missing, KeyValuePartialInformation, buf, sizeof(buf), &got));
    DbgPrint("close %x %x\n", ZwClose(params), ZwClose(service));
    return STATUS_SUCCESS;
}
"#;

#[test]
fn zw_registry_calls_read_the_parameters_key() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("zwreg.c");
    std::fs::write(&src, ZW_REGISTRY).unwrap();
    let out = dir.join("zwreg.so");
    build(&BuildOptions {
        sources: vec![src],
        output: out.clone(),
        ..BuildOptions::default()
    })
    .unwrap();
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let options = DriverOptions {
        params: vec![
            ("Mode".into(), ParamValue::Dword(9)),
            ("Rule".into(), ParamValue::String("abc".into())),
        ],
    };
    let driver = host.load_with(&out, &options).unwrap();
    assert_eq!(
        log(&host),
        vec![
            "open service 0",
            "open parameters 0",
            "open other c0000034",
            "mode 0 type 4 len 4 value 9 got 16",
            "rule short 80000005 len 8 got 20",
            "rule tiny c0000023 got 20",
            "rule full 0 type 1 name 8 data abc",
            "missing c0000034",
            "close 0 0",
        ]
    );
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

/// rt_wdfrw: `Driver::write` / `Driver::read` reach a KMDF driver's EvtIoWrite / EvtIoRead
/// (no WDM device: the framework device is the target), buffered and direct.
fn check_read_write(so: &Path) {
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(so).unwrap();
    let w = driver.write(b"kmdf write").unwrap();
    assert_eq!((w.status, w.information), (0, 10));
    let r = driver.read(32).unwrap();
    assert_eq!((r.status, r.output.as_slice()), (0, &b"kmdf write"[..]));
    assert_eq!(driver.read(4).unwrap().output, b"kmdf");
    let mut h = driver.open().unwrap();
    assert_eq!(h.write(b"by handle").unwrap().information, 9);
    assert_eq!(h.read(16).unwrap().output, b"by handle");
    assert!(h.close().unwrap().is_empty());
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn kmdf_read_and_write_requests_reach_evt_io_read_and_write() {
    check_read_write(&build_driver("rt_wdfrw", "rt_wdfrw"));
    check_read_write(&build_with("rt_wdfrw", "rt_wdfrw_direct", &["-DRT_DIRECT"]));
}
