//! WDM from C (`tests/c/drivers/rt_wdm.c`, no KMDF): IoCreateDevice with a name and a device
//! extension, IoCreateSymbolicLink / IoDeleteSymbolicLink, MajorFunction[] dispatch of the IRPs
//! `Driver::ioctl` sends (IRP_MJ_CREATE, DEVICE_CONTROL, CLEANUP, CLOSE) with the buffers of each
//! transfer method, STATUS_PENDING completed from a work item, DriverUnload; the Verifier's IRP
//! checks; the same driver under valgrind memcheck and AddressSanitizer.

#[path = "support/asan.rs"]
mod asan;
mod support;

#[path = "support/build.rs"]
mod builder;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{Driver, DriverHost, Finding, HostConfig, IoctlError};

fn build_driver(image: &str, flags: &[&str]) -> PathBuf {
    build_source("rt_wdm.c", image, flags)
}

/// Builds rt_wdm (`image`) and the filter rt_wdmflt next to it (`image` + `_flt`).
fn build_pair(image: &str, flags: &[&str]) -> PathBuf {
    build_source("rt_wdmflt.c", &format!("{image}_flt"), flags);
    build_source("rt_wdm.c", image, flags)
}

fn filter_of(so: &Path) -> PathBuf {
    let stem = so.file_stem().unwrap().to_string_lossy();
    so.with_file_name(format!("{stem}_flt.so"))
}

fn build_source(source: &str, image: &str, flags: &[&str]) -> PathBuf {
    builder::driver(image, &[builder::source(source)], &[], flags)
}

const fn ctl(function: u32, method: u32, access: u32) -> u32 {
    (0x12 << 16) | (access << 14) | (function << 2) | method
}

fn log(host: &DriverHost) -> Vec<String> {
    host.drain_log().into_iter().map(|l| l.text).collect()
}

fn le32(b: &[u8], i: usize) -> i32 {
    i32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap())
}

/// A host with the default configuration, or with `timeout` as its unload timeout.
fn host_with(timeout: Option<Duration>) -> DriverHost {
    let mut config = HostConfig::default();
    if let Some(t) = timeout {
        config.unload_timeout = t;
    }
    DriverHost::new(Arc::new(Engine::default()), config)
}

/// Writes `text` as `{name}.c` and builds `{name}.so` (the inline test drivers).
fn build_inline(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, text).unwrap();
    let out = dir.join(format!("{name}.so"));
    build(&BuildOptions {
        sources: vec![src],
        output: out.clone(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building {name}: {e}"));
    out
}

fn assert_no_fail(lines: &[String]) {
    assert!(!lines.iter().any(|l| l.starts_with("FAIL")), "{lines:#?}");
}

/// Sends one device-control request (open, request, close): its status and output.
fn call(d: &Driver, code: u32, input: &[u8], output_len: usize) -> (u32, Vec<u8>) {
    let o = d.ioctl(code, input, output_len).unwrap();
    (o.status, o.output)
}

/// rt_wdm's echo, pended and reverse requests; `marked`: through rt_wdmflt, which overwrites
/// the first byte of what completes with '#'.
fn check_echo_pend_reverse(d: &Driver, marked: bool) {
    let (echo, pended): (&[u8], &[u8]) = if marked {
        (b"#ello", b"#")
    } else {
        (b"hello", &[0x5a])
    };
    assert_eq!(call(d, ctl(0x800, 0, 0), b"hello", 16), (0, echo.to_vec()));
    assert_eq!(call(d, ctl(0x804, 0, 0), &[], 1), (0, pended.to_vec()));
    assert_eq!(call(d, ctl(0x802, 2, 0), b"abc", 8), (0, b"cba".to_vec()));
}

/// Unloads `d` expecting no finding; the host's log after it (no FAIL line in it).
fn unload_clean(host: &DriverHost, d: Driver) -> Vec<String> {
    let report = d.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let lines = log(host);
    assert_no_fail(&lines);
    lines
}

/// rt_wdm's "unloaded opens=N cleanups=N closes=N" line: [opens, cleanups, closes].
fn unload_counts(lines: &[String]) -> Vec<u32> {
    let counts = lines
        .iter()
        .find(|l| l.starts_with("unloaded"))
        .unwrap_or_else(|| panic!("rt_wdm's unload line: {lines:#?}"));
    counts
        .split(' ')
        .skip(1)
        .map(|w| w[w.find('=').unwrap() + 1..].parse().unwrap())
        .collect()
}

/// Loads the driver, sends every well-behaved request, unloads; asserts all of it.
fn check_requests(so: &Path) {
    let host = host_with(None);
    let driver = host.load(so).unwrap();
    let entry = log(&host);
    assert_no_fail(&entry);
    assert_eq!(entry.iter().filter(|l| l.starts_with("ok ")).count(), 7);
    let devices = driver.devices();
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0].name.as_deref(), Some("\\Device\\RtWdm"));
    assert_eq!(devices[0].links, vec!["\\DosDevices\\RtWdm".to_string()]);
    assert_eq!(
        (devices[0].device_type, devices[0].characteristics),
        (0x12, 0x100)
    );
    assert!(
        !devices[0].initializing,
        "cleared when DriverEntry returned"
    );

    let echo = driver.ioctl(ctl(0x800, 0, 0), b"hello", 16).unwrap();
    assert_eq!((echo.status, echo.information), (0, 5));
    let short = driver.ioctl(ctl(0x800, 0, 0), b"hello", 2).unwrap();
    assert_eq!((short.status, short.information), (0xC000_0023, 0));
    check_echo_pend_reverse(&driver, false);
    assert_eq!(
        call(&driver, ctl(0x803, 3, 0), b"mixed Case", 10),
        (0, b"MIXED CASE".to_vec())
    );
    assert_eq!(call(&driver, ctl(0x8ff, 0, 0), &[], 0).0, 0xC000_0010);
    // Each request is an open (CREATE), the request, CLEANUP and CLOSE.
    let stats = driver.ioctl(ctl(0x801, 0, 1), &[], 24).unwrap();
    assert_eq!((stats.status, stats.information), (0, 24));
    let s = &stats.output;
    assert_eq!(
        (le32(s, 0), le32(s, 1), le32(s, 2), le32(s, 3)),
        (8, 7, 7, 8),
        "opens, cleanups, closes, requests"
    );
    assert_eq!(
        (le32(s, 4), le32(s, 5)),
        (1, 1),
        "one request per open; UserMode"
    );

    let unload = unload_clean(&host, driver);
    assert_eq!(unload_counts(&unload), [8, 8, 8], "{unload:#?}");
}

const STATUS_CANCELLED: u32 = 0xC000_0120;

/// rt_wdm alone: IRP_MJ_READ / IRP_MJ_WRITE with each buffering the device's Flags select, and
/// a handle whose pending request is cancelled (IoCancelIrp → the driver's cancel routine) when
/// it is closed, before IRP_MJ_CLEANUP.
fn check_read_write_and_cancel(driver: &wfp_ffi::Driver) {
    let set_flags = |f: u32| {
        let r = driver.ioctl(ctl(0x808, 0, 0), &f.to_le_bytes(), 0).unwrap();
        assert_eq!(r.status, 0);
    };
    for (flags, data) in [
        (0x4, &b"buffered"[..]),
        (0x10, &b"direct!"[..]),
        (0, &b"neither"[..]),
    ] {
        set_flags(flags);
        let w = driver.write(data).unwrap();
        assert_eq!((w.status, w.information), (0, data.len()), "{flags:#x}");
        let r = driver.read(32).unwrap();
        assert_eq!((r.status, r.output.as_slice()), (0, data), "{flags:#x}");
        let short = driver.read(2).unwrap();
        assert_eq!(short.output, &data[..2], "{flags:#x}");
    }
    set_flags(0x4);

    let mut h = driver.open().unwrap();
    assert!(h.start_ioctl(ctl(0x809, 0, 0), &[], 1).unwrap().is_none());
    // The handle still works while a request is pending.
    let stats = h.ioctl(ctl(0x801, 0, 1), &[], 32).unwrap();
    assert_eq!((stats.status, stats.information), (0, 32));
    let cancelled = h.close().unwrap();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(
        (cancelled[0].status, cancelled[0].information),
        (STATUS_CANCELLED, 0)
    );
    let stats = driver.ioctl(ctl(0x801, 0, 1), &[], 32).unwrap();
    assert_eq!(
        (le32(&stats.output, 6), le32(&stats.output, 7)),
        (0, 1),
        "nothing queued at IRP_MJ_CLEANUP; one request cancelled"
    );
}

fn le32s(b: &[u8]) -> Vec<i32> {
    (0..b.len() / 4).map(|i| le32(b, i)).collect()
}

/// rt_wdmflt attached on top of rt_wdm: the host's requests to rt_wdm go through the filter
/// (pass-down, completion routine, forward-and-wait); the filter's self-test sends IRPs of its
/// own (IoBuildDeviceIoControlRequest, IoAllocateIrp + IoCancelIrp); unloading the filter
/// detaches it and closes its file object.
fn check_forwarding(wdm_so: &Path, flt_so: &Path) {
    let host = host_with(None);
    let wdm = host.load(wdm_so).unwrap();
    check_read_write_and_cancel(&wdm);
    let flt = host.load(flt_so).unwrap();
    let entry = log(&host);
    assert_no_fail(&entry);
    assert!(entry.contains(&"filter attached".to_string()), "{entry:#?}");

    check_echo_pend_reverse(&wdm, true);
    assert_eq!(wdm.write(b"through").unwrap().information, 7);
    assert_eq!(wdm.read(16).unwrap().output, b"through");
    let selftest = flt.ioctl(ctl(0x900, 0, 0), &[], 0).unwrap();
    assert_eq!(selftest.status, 0);
    let stats = flt.ioctl(ctl(0x901, 0, 0), &[], 12).unwrap();
    let s = le32s(&stats.output);
    assert_eq!(s[1..], [2, 1], "completions, forward-and-wait");
    assert!(s[0] >= 12, "passed down: {s:?}");
    let tested = log(&host);
    assert_no_fail(&tested);
    assert_eq!(
        tested.iter().filter(|l| l.starts_with("ok ")).count(),
        12,
        "{tested:#?}"
    );
    assert!(flt.findings().is_empty(), "{:?}", flt.findings());
    assert!(wdm.findings().is_empty(), "{:?}", wdm.findings());

    unload_clean(&host, flt);
    check_echo_pend_reverse(&wdm, false);
    let n = unload_counts(&unload_clean(&host, wdm));
    assert!(
        n[0] == n[1] && n[1] == n[2],
        "every open cleaned up and closed: {n:?}"
    );
}

#[test]
fn wdm_filter_forwarding_read_write_and_cancel() {
    let so = build_pair("rt_wdm_fwd", &[]);
    check_forwarding(&so, &filter_of(&so));
}

/// IoCallDriver with no stack location left, IoFreeIrp of a built request; at unload an
/// IoAllocateIrp IRP never freed and a built request never completed.
#[test]
fn wdm_forwarding_misuse_is_reported() {
    let so = build_pair("rt_wdm_fwd_misuse", &[]);
    let host = host_with(None);
    let wdm = host.load(&so).unwrap();
    let flt = host.load(&filter_of(&so)).unwrap();
    assert_eq!(flt.ioctl(ctl(0x902, 0, 0), &[], 0).unwrap().status, 0);
    let findings: Vec<String> = flt.findings().iter().map(ToString::to_string).collect();
    for expected in [
        "NO_MORE_IRP_STACK_LOCATIONS",
        "IoFreeIrp of an IRP the driver did not allocate",
    ] {
        assert!(
            findings.iter().any(|f| f.contains(expected)),
            "{findings:#?}"
        );
    }
    let report = flt.unload().unwrap();
    for leaked in ["IoAllocateIrp", "IoBuildDeviceIoControlRequest"] {
        assert!(
            report.findings.iter().any(|f| matches!(
                f,
                Finding::ObjectsLeft { what, count: 1 } if what.contains(leaked)
            )),
            "{:?}",
            report.findings
        );
    }
    assert!(wdm.unload().unwrap().findings.is_empty());
}

/// A synchronous request left pending past the host's timeout is reported, then cancelled
/// (IoCancelIrp → the driver's cancel routine): the open is closed normally afterwards.
#[test]
fn a_request_pending_past_the_timeout_is_cancelled() {
    let so = build_driver("rt_wdm_timeout", &[]);
    let host = host_with(Some(Duration::from_millis(300)));
    let driver = host.load(&so).unwrap();
    assert!(matches!(
        driver.ioctl(ctl(0x809, 0, 0), &[], 1),
        Err(IoctlError::NotCompleted { .. })
    ));
    let findings: Vec<String> = driver.findings().iter().map(ToString::to_string).collect();
    assert!(
        findings
            .iter()
            .any(|f| f.contains("pended IRP not completed")),
        "{findings:#?}"
    );
    let stats = driver.ioctl(ctl(0x801, 0, 1), &[], 32).unwrap();
    let s = le32s(&stats.output);
    assert_eq!((s[0], s[1], s[2]), (2, 1, 1), "opens, cleanups, closes");
    assert_eq!((s[6], s[7]), (0, 1), "nothing queued at cleanup; cancelled");
    let report = driver.unload().unwrap();
    assert!(
        !report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::LeakedPool { .. })),
        "{:?}",
        report.findings
    );
}

#[test]
fn wdm_device_symbolic_link_and_irp_dispatch() {
    check_requests(&build_driver("rt_wdm", &[]));
}

/// Completing twice, returning without completing, and an Information beyond the output buffer
/// are Verifier findings; the request that was never completed is reported and its IRP kept
/// until the driver is unloaded.
#[test]
fn wdm_irp_misuse_is_reported() {
    let so = build_driver("rt_wdm_misuse", &[]);
    let host = host_with(Some(Duration::from_secs(2)));
    let driver = host.load(&so).unwrap();
    let twice = driver.ioctl(ctl(0x805, 0, 0), &[], 0).unwrap();
    assert_eq!(twice.status, 0);
    let over = driver.ioctl(ctl(0x807, 0, 0), &[], 4).unwrap();
    assert_eq!((over.information, over.output.len()), (12, 4));
    assert!(matches!(
        driver.ioctl(ctl(0x806, 0, 0), &[], 0),
        Err(IoctlError::NotCompleted { .. })
    ));
    let findings: Vec<String> = driver.findings().iter().map(ToString::to_string).collect();
    let has = |t: &str| findings.iter().any(|f| f.contains(t));
    assert!(has("MULTIPLE_IRP_COMPLETE_REQUESTS"), "{findings:#?}");
    assert!(has("beyond the 4-byte output buffer"), "{findings:#?}");
    assert!(has("without completing the IRP"), "{findings:#?}");
    let report = driver.unload().unwrap();
    // The open of the forgotten request was never closed: its FsContext stays allocated.
    assert!(
        report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::LeakedPool { tag, .. } if tag == "RWdm")),
        "{:?}",
        report.findings
    );
}

const NO_CREATE: &str = r#"
#include <ntddk.h>
static UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\NoCreate");
static NTSTATUS Control(PDEVICE_OBJECT d, PIRP irp)
{
    UNREFERENCED_PARAMETER(d);
    irp->IoStatus.Status = STATUS_SUCCESS;
    IoCompleteRequest(irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}
static void Unload(PDRIVER_OBJECT drv) { UNREFERENCED_PARAMETER(drv); }
NTSTATUS DriverEntry(PDRIVER_OBJECT drv, PUNICODE_STRING reg)
{
    PDEVICE_OBJECT dev;
    UNICODE_STRING link = RTL_CONSTANT_STRING(L"\\??\\NoCreate");
    UNREFERENCED_PARAMETER(reg);
    NTSTATUS st = IoCreateDevice(drv, 0, &name, FILE_DEVICE_UNKNOWN, 0, FALSE, &dev);
    if (NT_SUCCESS(st)) st = IoCreateSymbolicLink(&link, &name);
    drv->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Control;
    drv->DriverUnload = Unload;
    return st;
}
"#;

/// A device without IRP_MJ_CREATE cannot be opened (the I/O manager's default routine answers
/// STATUS_INVALID_DEVICE_REQUEST); a driver that leaves its link and device is reported.
#[test]
fn wdm_open_without_create_fails_and_leftovers_are_reported() {
    let out = build_inline("nocreate", NO_CREATE);
    let host = host_with(None);
    let driver = host.load(&out).unwrap();
    assert_eq!(
        driver.devices()[0].links,
        vec!["\\??\\NoCreate".to_string()]
    );
    assert!(matches!(
        driver.ioctl(ctl(1, 0, 0), &[], 0),
        Err(IoctlError::OpenFailed {
            status: 0xC000_0010,
            ..
        })
    ));
    let report = driver.unload().unwrap();
    let left: Vec<&'static str> = report
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::ObjectsLeft { what, count: 1 } => Some(*what),
            _ => None,
        })
        .collect();
    assert_eq!(
        left,
        vec![
            "symbolic link(s) never deleted (IoDeleteSymbolicLink)",
            "device object(s) never deleted (IoDeleteDevice)"
        ],
        "{:?}",
        report.findings
    );
}

const CLASSIC: &str = r#"
#include <ntddk.h>
static UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\Classic");
static UNICODE_STRING link = RTL_CONSTANT_STRING(L"\\DosDevices\\Classic");
static PDEVICE_OBJECT gDev;
DRIVER_DISPATCH Other, Control;
DRIVER_UNLOAD Unload;
NTSTATUS Other(IN PDEVICE_OBJECT d, IN PIRP irp)
{
    UNREFERENCED_PARAMETER(d);
    IoCompleteRequest(irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}
NTSTATUS Control(IN PDEVICE_OBJECT d, IN PIRP irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(irp);
    NTSTATUS st = STATUS_SUCCESS;
    UNREFERENCED_PARAMETER(d);
    switch (sp->Parameters.DeviceIoControl.IoControlCode) {
    case CTL_CODE(FILE_DEVICE_NETWORK, 1, METHOD_BUFFERED, FILE_ANY_ACCESS):
        break;
    case CTL_CODE(FILE_DEVICE_NETWORK, 2, METHOD_BUFFERED, FILE_ANY_ACCESS):
        st = STATUS_UNSUCCESSFUL;
        break;
    default:
        irp->IoStatus.Information = 0L;
        irp->IoStatus.Status = STATUS_INVALID_PARAMETER;
        st = irp->IoStatus.Status;
    }
    if (st != STATUS_PENDING) IoCompleteRequest(irp, IO_NO_INCREMENT);
    return st;
}
VOID Unload(IN PDRIVER_OBJECT drv)
{
    UNREFERENCED_PARAMETER(drv);
    IoDeleteDevice(gDev);
    IoDeleteSymbolicLink(&link);
}
NTSTATUS DriverEntry(IN PDRIVER_OBJECT drv, IN PUNICODE_STRING reg)
{
    long l;
    NTSTATUS st;
    UNREFERENCED_PARAMETER(reg);
    for (l = 0; l < IRP_MJ_MAXIMUM_FUNCTION; l++) drv->MajorFunction[l] = Other;
    drv->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Control;
    drv->DriverUnload = Unload;
    st = IoCreateDevice(drv, 0, &name, FILE_DEVICE_NETWORK, 0, FALSE, &gDev);
    if (NT_SUCCESS(st)) st = IoCreateSymbolicLink(&link, &name);
    return st;
}
"#;

/// The classic WDM pattern (one routine in every MajorFunction[] entry completing without
/// setting IoStatus, which the host zeroes; a device-control routine completing synchronously):
/// the request's status is what the routine returned; a return that differs from
/// IoStatus.Status is a finding.
#[test]
fn wdm_classic_dispatch_returns_the_routine_status() {
    let out = build_inline("classic", CLASSIC);
    let host = host_with(None);
    let driver = host.load(&out).unwrap();
    assert_eq!(
        driver.ioctl(ctl(1, 0, 0), &[1, 0, 0, 0], 0).unwrap().status,
        0
    );
    assert_eq!(
        driver.ioctl(ctl(9, 0, 0), &[], 0).unwrap().status,
        0xC000_000D
    );
    assert!(driver.findings().is_empty(), "{:?}", driver.findings());
    assert_eq!(
        driver.ioctl(ctl(2, 0, 0), &[], 0).unwrap().status,
        0xC000_0001
    );
    let report = driver.unload().unwrap();
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert!(report.findings[0]
        .to_string()
        .contains("returned 0xc0000001 but completed the IRP with 0x00000000"));
}

/// The body the memory checkers run in a child process (`WFP_FFI_WDM_SO`).
#[test]
#[ignore = "run by the valgrind and AddressSanitizer tests in a child process"]
fn wdm_inner() {
    let Some(so) = std::env::var_os("WFP_FFI_WDM_SO") else {
        return;
    };
    check_requests(Path::new(&so));
    check_forwarding(Path::new(&so), &filter_of(Path::new(&so)));
    println!("wdm: done");
}

#[test]
fn wdm_under_valgrind() {
    let so = build_pair("rt_wdm_vg", &["-O0", "-g"]);
    support::run_inner_under_valgrind("wdm_inner", "WFP_FFI_WDM_SO", &so, "wdm: done");
}

#[test]
fn wdm_with_address_sanitizer() {
    asan::run_inner("wdm_inner", "WFP_FFI_WDM_SO", "wdm: done", || {
        build_pair(
            "rt_wdm_asan",
            &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
        )
    });
}

const OPENER: &str = r#"
#include <ntddk.h>
#define IOCTL_REVERSE_MEMORY CTL_CODE(FILE_DEVICE_NETWORK, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
static PFILE_OBJECT gFile;
static void Unload(PDRIVER_OBJECT d) { UNREFERENCED_PARAMETER(d); ObDereferenceObject(gFile); }
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    UNICODE_STRING link = RTL_CONSTANT_STRING(L"\\??\\RtWdf");
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\RtWdf");
    PDEVICE_OBJECT dev = NULL, mine = NULL;
    IO_STATUS_BLOCK iosb;
    KEVENT done;
    UCHAR buf[16] = "kmdf";
    PIRP irp;
    NTSTATUS st;
    UNREFERENCED_PARAMETER(r);
    DbgPrint("collision %d\n", IoCreateDevice(d, 0, &name, FILE_DEVICE_NETWORK, 0, FALSE, &mine) ==
                               STATUS_OBJECT_NAME_COLLISION);
    st = IoGetDeviceObjectPointer(&link, FILE_READ_DATA, &gFile, &dev);
    if (!NT_SUCCESS(st)) return st;
    KeInitializeEvent(&done, NotificationEvent, FALSE);
    irp = IoBuildDeviceIoControlRequest(IOCTL_REVERSE_MEMORY, dev, buf, 4, buf, sizeof(buf), FALSE, &done, &iosb);
    IoGetNextIrpStackLocation(irp)->FileObject = gFile;
    st = IoCallDriver(dev, irp);
    if (st == STATUS_PENDING) {
        KeWaitForSingleObject(&done, Executive, KernelMode, FALSE, NULL);
        st = iosb.Status;
    }
    DbgPrint("reverse %x %d %.4s\n", st, (int)iosb.Information, buf);
    d->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
"#;

/// A KMDF control device's name and link are in the same per-host namespace as WDM names: a
/// WDM driver cannot take its name, opens it by its link (IoGetDeviceObjectPointer) and sends
/// it a device-control IRP, which reaches the KMDF driver's EvtIoDeviceControl as a request.
#[test]
fn a_wdm_driver_opens_a_kmdf_device_by_name_and_sends_it_an_irp() {
    let kmdf = build_source("rt_wdf.c", "rt_wdf_for_wdm", &[]);
    let out = build_inline("opener", OPENER);
    let host = host_with(None);
    let wdf = host.load(&kmdf).unwrap();
    drop(log(&host));
    let opener = host
        .load(&out)
        .unwrap_or_else(|e| panic!("{e}: {:#?}", log(&host)));
    let lines = log(&host);
    assert!(lines.contains(&"collision 1".to_string()), "{lines:#?}");
    assert!(
        lines.contains(&"reverse 0 4 fdmk".to_string()),
        "{lines:#?}"
    );
    unload_clean(&host, opener);
    // The host's own requests still reach the queue.
    assert_eq!(call(&wdf, ctl(0x800, 0, 0), b"hi", 8), (0, b"hi".to_vec()));
    unload_clean(&host, wdf);
}

const FSD: &str = r#"
#include <ntddk.h>
static PFILE_OBJECT gFile;
static void Unload(PDRIVER_OBJECT d) { UNREFERENCED_PARAMETER(d); ObDereferenceObject(gFile); }
/* One synchronous FSD request on the opened device, waited for. */
static NTSTATUS Send(PDEVICE_OBJECT dev, ULONG major, PVOID buf, ULONG len, PIO_STATUS_BLOCK iosb)
{
    KEVENT done;
    LARGE_INTEGER offset = {0};
    NTSTATUS st;
    PIRP irp;
    KeInitializeEvent(&done, NotificationEvent, FALSE);
    irp = IoBuildSynchronousFsdRequest(major, dev, buf, len, &offset, &done, iosb);
    if (!irp) return STATUS_INSUFFICIENT_RESOURCES;
    IoGetNextIrpStackLocation(irp)->FileObject = gFile;
    st = IoCallDriver(dev, irp);
    if (st == STATUS_PENDING) {
        KeWaitForSingleObject(&done, Executive, KernelMode, FALSE, NULL);
        st = iosb->Status;
    }
    return st;
}
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    UNICODE_STRING link = RTL_CONSTANT_STRING(L"\\DosDevices\\RtWdm");
    PDEVICE_OBJECT dev = NULL;
    IO_STATUS_BLOCK iosb;
    CHAR data[8] = "fsd data", back[16] = {0};
    NTSTATUS st;
    UNREFERENCED_PARAMETER(r);
    st = IoGetDeviceObjectPointer(&link, FILE_READ_DATA, &gFile, &dev);
    if (!NT_SUCCESS(st)) return st;
    d->DriverUnload = Unload;
    st = Send(dev, IRP_MJ_WRITE, data, sizeof(data), &iosb);
    DbgPrint("write %x %d\n", st, (int)iosb.Information);
    st = Send(dev, IRP_MJ_READ, back, sizeof(back), &iosb);
    DbgPrint("read %x %d %.8s\n", st, (int)iosb.Information, back);
    DbgPrint("other %d\n", IoBuildSynchronousFsdRequest(IRP_MJ_CREATE, dev, NULL, 0, NULL, NULL, &iosb) == NULL);
    return STATUS_SUCCESS;
}
"#;

/// IoBuildSynchronousFsdRequest from another driver: a write then a read of rt_wdm through its
/// file object, for each buffering rt_wdm's device flags select (buffered, direct, neither).
#[test]
fn synchronous_fsd_requests_write_and_read_another_drivers_device() {
    let wdm_so = build_driver("rt_wdm_fsd", &[]);
    let host = host_with(None);
    let wdm = host.load(&wdm_so).unwrap();
    for (flags, image) in [
        (0x4u32, "fsd_buffered"),
        (0x10, "fsd_direct"),
        (0, "fsd_neither"),
    ] {
        assert_eq!(call(&wdm, ctl(0x808, 0, 0), &flags.to_le_bytes(), 0).0, 0);
        drop(log(&host));
        let fsd = host.load(&build_inline(image, FSD)).unwrap();
        let lines = log(&host);
        assert_eq!(
            lines,
            ["write 0 8", "read 0 8 fsd data", "other 1"],
            "{image}"
        );
        unload_clean(&host, fsd);
    }
    unload_clean(&host, wdm);
}

const REUSE: &str = r#"
#include <ntddk.h>
static PFILE_OBJECT gFile;
static void Unload(PDRIVER_OBJECT d) { UNREFERENCED_PARAMETER(d); ObDereferenceObject(gFile); }
static NTSTATUS Done(PDEVICE_OBJECT d, PIRP irp, PVOID ev)
{
    UNREFERENCED_PARAMETER(d);
    UNREFERENCED_PARAMETER(irp);
    KeSetEvent((PKEVENT)ev, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED;
}
/* Sends the caller's IRP (UserBuffer: rt_wdm's flags are "neither") and waits for it. */
static NTSTATUS Send(PDEVICE_OBJECT dev, PIRP irp, UCHAR major, PVOID buf, ULONG len)
{
    KEVENT done;
    PIO_STACK_LOCATION sp = IoGetNextIrpStackLocation(irp);
    KeInitializeEvent(&done, NotificationEvent, FALSE);
    sp->MajorFunction = major;
    sp->FileObject = gFile;
    sp->Parameters.Write.Length = len;
    irp->UserBuffer = buf;
    IoSetCompletionRoutine(irp, Done, &done, TRUE, TRUE, TRUE);
    if (IoCallDriver(dev, irp) == STATUS_PENDING) KeWaitForSingleObject(&done, Executive, KernelMode, FALSE, NULL);
    return irp->IoStatus.Status;
}
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    UNICODE_STRING link = RTL_CONSTANT_STRING(L"\\DosDevices\\RtWdm");
    PDEVICE_OBJECT dev = NULL;
    CHAR data[5] = "reuse", back[8] = {0};
    NTSTATUS st;
    PIRP irp;
    UNREFERENCED_PARAMETER(r);
    st = IoGetDeviceObjectPointer(&link, FILE_READ_DATA, &gFile, &dev);
    if (!NT_SUCCESS(st)) return st;
    d->DriverUnload = Unload;
    irp = IoAllocateIrp(dev->StackSize, FALSE);
    st = Send(dev, irp, IRP_MJ_WRITE, data, sizeof(data));
    DbgPrint("write %x %d\n", st, (int)irp->IoStatus.Information);
    IoReuseIrp(irp, STATUS_NOT_SUPPORTED);
    DbgPrint("reused %x %d %d\n", irp->IoStatus.Status, (int)irp->IoStatus.Information,
             irp->CurrentLocation == irp->StackCount + 1);
    st = Send(dev, irp, IRP_MJ_READ, back, sizeof(back));
    DbgPrint("read %x %d %.5s\n", st, (int)irp->IoStatus.Information, back);
    IoFreeIrp(irp);
    return STATUS_SUCCESS;
}
"#;

/// IoReuseIrp between two requests on one IoAllocateIrp IRP (a write then a read of rt_wdm).
#[test]
fn an_allocated_irp_is_reused_for_a_second_request() {
    let wdm_so = build_driver("rt_wdm_reuse", &[]);
    let host = host_with(None);
    let wdm = host.load(&wdm_so).unwrap();
    assert_eq!(call(&wdm, ctl(0x808, 0, 0), &0u32.to_le_bytes(), 0).0, 0);
    drop(log(&host));
    let reuser = host.load(&build_inline("reuse", REUSE)).unwrap();
    assert_eq!(
        log(&host),
        ["write 0 5", "reused c00000bb 0 1", "read 0 5 reuse"]
    );
    unload_clean(&host, reuser);
    unload_clean(&host, wdm);
}

const ASYNC_FSD: &str = r#"
#include <ntddk.h>
static PFILE_OBJECT gFile;
static void Unload(PDRIVER_OBJECT d) { UNREFERENCED_PARAMETER(d); ObDereferenceObject(gFile); }
typedef struct { KEVENT Done; NTSTATUS Status; ULONG_PTR Information; CHAR Seen[9]; PCHAR Buffer; BOOLEAN Free; } SENT;
static NTSTATUS Completed(PDEVICE_OBJECT d, PIRP irp, PVOID context)
{
    SENT *s = context;
    UNREFERENCED_PARAMETER(d);
    s->Status = irp->IoStatus.Status;
    s->Information = irp->IoStatus.Information;
    RtlCopyMemory(s->Seen, s->Buffer, 8);
    /* The IRP's MDL (a direct device's) is the completion routine's to free, as the WDK
     * samples do: IoFreeIrp frees no MDL. */
    if (s->Free && irp->MdlAddress) {
        if (irp->MdlAddress->MdlFlags & MDL_PAGES_LOCKED) MmUnlockPages(irp->MdlAddress);
        IoFreeMdl(irp->MdlAddress);
        irp->MdlAddress = NULL;
    }
    if (s->Free) IoFreeIrp(irp);
    KeSetEvent(&s->Done, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED;
}
/* Sends `irp` with the completion routine and waits for it. */
static void Send(PDEVICE_OBJECT dev, PIRP irp, SENT *s)
{
    IoGetNextIrpStackLocation(irp)->FileObject = gFile;
    KeInitializeEvent(&s->Done, NotificationEvent, FALSE);
    IoSetCompletionRoutine(irp, Completed, s, TRUE, TRUE, TRUE);
    IoCallDriver(dev, irp);
    KeWaitForSingleObject(&s->Done, Executive, KernelMode, FALSE, NULL);
}
static void Async(PDEVICE_OBJECT dev, ULONG major, PCHAR buf)
{
    IO_STATUS_BLOCK iosb = {0};
    LARGE_INTEGER offset = {0};
    SENT s = {0};
    PIRP irp = IoBuildAsynchronousFsdRequest(major, dev, buf, 8, &offset, &iosb);
    if (!irp) { DbgPrint("FAIL no irp\n"); return; }
    s.Buffer = buf;
    s.Free = TRUE;
    Send(dev, irp, &s);
    DbgPrint("%s %x %d %.8s iosb %x %d\n", major == IRP_MJ_READ ? "read" : "write", s.Status,
             (int)s.Information, s.Seen, iosb.Status, (int)iosb.Information);
}
/* A write on the caller's own IRP memory (buffered and neither devices), reused, then freed. */
static void Initialized(PDEVICE_OBJECT dev)
{
    CHAR data[8] = "own irp!";
    SENT s = {0};
    USHORT size = IoSizeOfIrp(dev->StackSize);
    PIRP irp = ExAllocatePool2(POOL_FLAG_NON_PAGED, size, 'pIsT');
    PIO_STACK_LOCATION sp;
    if (!irp) return;
    IoInitializeIrp(irp, size, dev->StackSize);
    DbgPrint("initialized %d %d %d\n", irp->Size == size, irp->StackCount == dev->StackSize,
             irp->CurrentLocation == dev->StackSize + 1);
    irp->AssociatedIrp.SystemBuffer = data;
    irp->UserBuffer = data;
    sp = IoGetNextIrpStackLocation(irp);
    sp->MajorFunction = IRP_MJ_WRITE;
    sp->Parameters.Write.Length = 8;
    s.Buffer = data;
    Send(dev, irp, &s);
    DbgPrint("own write %x %d\n", s.Status, (int)s.Information);
    IoReuseIrp(irp, STATUS_SUCCESS);
    DbgPrint("reused %d\n", irp->CurrentLocation == dev->StackSize + 1);
    ExFreePoolWithTag(irp, 'pIsT');
}
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    UNICODE_STRING link = RTL_CONSTANT_STRING(L"\\DosDevices\\RtWdm");
    PDEVICE_OBJECT dev = NULL;
    CHAR data[8] = "fsd data", back[8] = {0};
    IO_STATUS_BLOCK iosb;
    NTSTATUS st;
    SENT s = {0};
    PIRP irp;
    UNREFERENCED_PARAMETER(r);
    st = IoGetDeviceObjectPointer(&link, FILE_READ_DATA, &gFile, &dev);
    if (!NT_SUCCESS(st)) return st;
    d->DriverUnload = Unload;
    Async(dev, IRP_MJ_WRITE, data);
    Async(dev, IRP_MJ_READ, back);
    DbgPrint("other %d\n", IoBuildAsynchronousFsdRequest(IRP_MJ_CREATE, dev, NULL, 0, NULL, &iosb) == NULL);
    if (!(dev->Flags & DO_DIRECT_IO)) Initialized(dev);
    irp = IoBuildAsynchronousFsdRequest(IRP_MJ_FLUSH_BUFFERS, dev, NULL, 0, NULL, &iosb);
    s.Buffer = data;
    Send(dev, irp, &s);
    IoFreeIrp(irp);
    DbgPrint("flush freed\n");
    return STATUS_SUCCESS;
}
"#;

/// IoBuildAsynchronousFsdRequest from another driver (write then read of rt_wdm, the IRP and a
/// direct device's MDL freed in the completion routine — MmUnlockPages, IoFreeMdl, MdlAddress
/// NULL, IoFreeIrp, as the WDK samples do, with no finding — the read's bytes there before it
/// runs) for each buffering, and IoInitializeIrp on the driver's own pool (sent, reused, freed
/// with ExFreePoolWithTag).
#[test]
fn asynchronous_fsd_requests_and_caller_initialized_irps() {
    let wdm_so = build_driver("rt_wdm_afsd", &[]);
    let host = host_with(None);
    let wdm = host.load(&wdm_so).unwrap();
    for (flags, image) in [
        (0x4u32, "afsd_buffered"),
        (0x10, "afsd_direct"),
        (0, "afsd_neither"),
    ] {
        assert_eq!(call(&wdm, ctl(0x808, 0, 0), &flags.to_le_bytes(), 0).0, 0);
        drop(log(&host));
        let fsd = host.load(&build_inline(image, ASYNC_FSD)).unwrap();
        let mut expected = vec![
            "write 0 8 fsd data iosb 0 8",
            "read 0 8 fsd data iosb 0 8",
            "other 1",
        ];
        if flags != 0x10 {
            expected.extend(["initialized 1 1 1", "own write 0 8", "reused 1"]);
        }
        expected.push("flush freed");
        assert_eq!(log(&host), expected, "{image}");
        unload_clean(&host, fsd);
    }
    unload_clean(&host, wdm);
}

const STALE_IRP: &str = r#"
#include <ntddk.h>
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    USHORT size = IoSizeOfIrp(2);
    PIRP irp = ExAllocatePool2(POOL_FLAG_NON_PAGED, size, 'lSsT');
    UNREFERENCED_PARAMETER(d);
    UNREFERENCED_PARAMETER(r);
    if (!irp) return STATUS_INSUFFICIENT_RESOURCES;
    IoInitializeIrp(irp, size, 2);
    IoReuseIrp(irp, STATUS_SUCCESS);
    ExFreePoolWithTag(irp, 'lSsT');
    IoReuseIrp(irp, STATUS_SUCCESS); /* a stale pointer: no longer a known IRP */
    return STATUS_SUCCESS;
}
"#;

/// Freeing the pool an IRP was initialized in (IoInitializeIrp) unregisters it: a later use of
/// the stale pointer fails the runtime's known-IRP check (a `BadHandle` finding) instead of
/// touching freed memory.
#[test]
fn an_initialized_irp_is_forgotten_when_its_pool_is_freed() {
    let host = host_with(None);
    let d = host.load(&build_inline("stale_irp", STALE_IRP)).unwrap();
    let report = d.unload().unwrap();
    assert_eq!(
        report.findings,
        vec![Finding::BadHandle {
            function: "IoReuseIrp"
        }]
    );
}

const KEPT_MDL: &str = r#"
#include <ntddk.h>
static KEVENT Done;
static NTSTATUS Completed(PDEVICE_OBJECT d, PIRP irp, PVOID context)
{
    UNREFERENCED_PARAMETER(d);
    UNREFERENCED_PARAMETER(context);
    DbgPrint("mdl %d", irp->MdlAddress != NULL);
    IoFreeIrp(irp); /* the MDL is left attached: IoFreeIrp frees none */
    KeSetEvent(&Done, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED;
}
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    UNICODE_STRING link = RTL_CONSTANT_STRING(L"\\DosDevices\\RtWdm");
    PDEVICE_OBJECT dev = NULL;
    PFILE_OBJECT file;
    CHAR data[8] = "leak mdl";
    IO_STATUS_BLOCK iosb;
    LARGE_INTEGER offset = {0};
    PIRP irp;
    NTSTATUS st = IoGetDeviceObjectPointer(&link, FILE_READ_DATA, &file, &dev);
    UNREFERENCED_PARAMETER(d);
    UNREFERENCED_PARAMETER(r);
    if (!NT_SUCCESS(st)) return st;
    KeInitializeEvent(&Done, NotificationEvent, FALSE);
    irp = IoBuildAsynchronousFsdRequest(IRP_MJ_WRITE, dev, data, 8, &offset, &iosb);
    IoGetNextIrpStackLocation(irp)->FileObject = file;
    IoSetCompletionRoutine(irp, Completed, NULL, TRUE, TRUE, TRUE);
    IoCallDriver(dev, irp);
    KeWaitForSingleObject(&Done, Executive, KernelMode, FALSE, NULL);
    ObDereferenceObject(file);
    return STATUS_SUCCESS;
}
"#;

/// A direct device's IoBuildAsynchronousFsdRequest MDL that the completion routine leaves
/// attached when it frees the IRP is leaked, as on Windows (IoFreeIrp frees no MDL).
#[test]
fn an_asynchronous_fsd_mdl_left_on_a_freed_irp_is_leaked() {
    let wdm_so = build_driver("rt_wdm_kept_mdl", &[]);
    let host = host_with(None);
    let wdm = host.load(&wdm_so).unwrap();
    assert_eq!(call(&wdm, ctl(0x808, 0, 0), &0x10u32.to_le_bytes(), 0).0, 0);
    drop(log(&host));
    let d = host.load(&build_inline("kept_mdl", KEPT_MDL)).unwrap();
    assert_eq!(log(&host), ["mdl 1"]);
    let report = d.unload().unwrap();
    assert_eq!(report.findings, vec![Finding::LeakedMdl { byte_count: 8 }]);
    unload_clean(&host, wdm);
}
