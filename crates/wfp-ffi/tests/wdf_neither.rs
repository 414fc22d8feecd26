//! KMDF neither I/O in caller context from C (`tests/c/drivers/rt_wdfneither.c`, docs/c-abi.md
//! "KMDF"): EvtIoInCallerContext locks the requester's raw buffers (METHOD_NEITHER IOCTL,
//! WdfDeviceIoNeither read and write) into WDFMEMORY objects and queues the request with
//! WdfDeviceEnqueueRequest; the queue callbacks use those objects. Plain, under valgrind memcheck
//! and with AddressSanitizer; the caller-context-only functions from a queue callback are findings.

#[path = "support/asan.rs"]
mod asan;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, Finding, HostConfig};

fn rt_wdfneither(image: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers/rt_wdfneither.c");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{image}.so"));
    build(&BuildOptions {
        sources: vec![src],
        output: out.clone(),
        extra_flags: flags.iter().map(|f| (*f).to_string()).collect(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building {image}: {e}"));
    out
}

/// CTL_CODE(FILE_DEVICE_UNKNOWN, function, METHOD_NEITHER, FILE_ANY_ACCESS).
fn neither(function: u32) -> u32 {
    (0x22 << 16) | (function << 2) | 3
}

fn run(so: &Path) {
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(so).unwrap();
    let rev = driver.ioctl(neither(0x800), b"neither", 16).unwrap();
    assert_eq!((rev.status, rev.output.as_slice()), (0, &b"rehtien"[..]));
    let w = driver.write(b"raw write").unwrap();
    assert_eq!((w.status, w.information), (0, 9));
    let r = driver.read(32).unwrap();
    assert_eq!((r.status, r.output.as_slice()), (0, &b"raw write"[..]));
    let mut h = driver.open().unwrap();
    assert_eq!(h.write(b"by handle").unwrap().information, 9);
    assert_eq!(h.read(4).unwrap().output, b"by h");
    assert!(h.close().unwrap().is_empty());
    let outside = driver.ioctl(neither(0x801), b"x", 1).unwrap();
    assert_eq!(outside.status, 0);
    let report = driver.unload().unwrap();
    let expected: Vec<Finding> = [
        "WdfRequestRetrieveUnsafeUserInputBuffer",
        "WdfRequestProbeAndLockUserBufferForWrite",
    ]
    .iter()
    .map(|f| Finding::Assertion {
        message: format!("{f} outside EvtIoInCallerContext (STATUS_INVALID_DEVICE_REQUEST)"),
    })
    .collect();
    assert_eq!(report.findings, expected);
}

#[test]
fn kmdf_neither_io_in_caller_context() {
    run(&rt_wdfneither("rt_wdfneither", &[]));
}

/// The body the valgrind and AddressSanitizer tests run in a child process.
#[test]
#[ignore = "run by rt_wdfneither_under_valgrind / _with_address_sanitizer in a child process"]
fn rt_wdfneither_inner() {
    let Ok(so) = std::env::var("WFP_FFI_RT_WDFNEITHER_SO") else {
        return;
    };
    run(Path::new(&so));
    println!("rt_wdfneither: done");
}

#[test]
fn rt_wdfneither_under_valgrind() {
    let so = rt_wdfneither("rt_wdfneither_vg", &[]);
    support::run_inner_under_valgrind(
        "rt_wdfneither_inner",
        "WFP_FFI_RT_WDFNEITHER_SO",
        &so,
        "rt_wdfneither: done",
    );
}

#[test]
fn rt_wdfneither_with_address_sanitizer() {
    asan::run_inner(
        "rt_wdfneither_inner",
        "WFP_FFI_RT_WDFNEITHER_SO",
        "rt_wdfneither: done",
        || {
            rt_wdfneither(
                "rt_wdfneither_asan",
                &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
            )
        },
    );
}

const SENDER: &str = r#"
#include <ntddk.h>
static PFILE_OBJECT gFile;
static void Unload(PDRIVER_OBJECT d) { UNREFERENCED_PARAMETER(d); ObDereferenceObject(gFile); }
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\RtWdfNeither");
    PDEVICE_OBJECT dev = NULL;
    IO_STATUS_BLOCK iosb = {0};
    KEVENT done;
    CHAR in[5] = "wdm->", out[8] = {0}, back[8] = {0};
    LARGE_INTEGER offset = {0};
    NTSTATUS st;
    PIRP irp;
    UNREFERENCED_PARAMETER(r);
    st = IoGetDeviceObjectPointer(&name, FILE_READ_DATA, &gFile, &dev);
    if (!NT_SUCCESS(st)) return st;
    d->DriverUnload = Unload;
    KeInitializeEvent(&done, NotificationEvent, FALSE);
    irp = IoBuildDeviceIoControlRequest(CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_NEITHER, FILE_ANY_ACCESS),
                                        dev, in, sizeof(in), out, sizeof(out), FALSE, &done, &iosb);
    IoGetNextIrpStackLocation(irp)->FileObject = gFile;
    if (IoCallDriver(dev, irp) == STATUS_PENDING) KeWaitForSingleObject(&done, Executive, KernelMode, FALSE, NULL);
    DbgPrint("ioctl %x %d %.5s\n", iosb.Status, (int)iosb.Information, out);
    KeClearEvent(&done);
    irp = IoBuildSynchronousFsdRequest(IRP_MJ_WRITE, dev, in, sizeof(in), &offset, &done, &iosb);
    IoGetNextIrpStackLocation(irp)->FileObject = gFile;
    if (IoCallDriver(dev, irp) == STATUS_PENDING) KeWaitForSingleObject(&done, Executive, KernelMode, FALSE, NULL);
    KeClearEvent(&done);
    irp = IoBuildSynchronousFsdRequest(IRP_MJ_READ, dev, back, sizeof(back), &offset, &done, &iosb);
    IoGetNextIrpStackLocation(irp)->FileObject = gFile;
    if (IoCallDriver(dev, irp) == STATUS_PENDING) KeWaitForSingleObject(&done, Executive, KernelMode, FALSE, NULL);
    DbgPrint("read %x %d %.5s\n", iosb.Status, (int)iosb.Information, back);
    return STATUS_SUCCESS;
}
"#;

/// A WDM driver's METHOD_NEITHER IOCTL and neither read / write IRPs to the KMDF device reach its
/// EvtIoInCallerContext with the IRP's Type3InputBuffer / UserBuffer.
#[test]
fn neither_irps_from_another_driver_reach_evt_io_in_caller_context() {
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let kmdf = host.load(&rt_wdfneither("rt_wdfneither_irp", &[])).unwrap();
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wdfneither_sender.c");
    std::fs::write(&src, SENDER).unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wdfneither_sender.so");
    build(&BuildOptions {
        sources: vec![src],
        output: out.clone(),
        ..BuildOptions::default()
    })
    .unwrap();
    let sender = host.load(&out).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(log, ["ioctl 0 5 >-mdw", "read 0 5 wdm->"]);
    assert!(sender.unload().unwrap().findings.is_empty());
    assert!(kmdf.unload().unwrap().findings.is_empty());
}
