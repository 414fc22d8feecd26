//! KMDF queues beyond the default one from C (docs/c-abi.md "KMDF queues"): `tests/c/drivers/
//! rt_wdfq.c` — WdfRequestGetParameters, EvtIoInternalDeviceControl reached through
//! WdfDeviceConfigureRequestDispatching (the driver sends an internal device control to its own
//! device), forwarding, a manual queue (WdfIoQueueRetrieveNextRequest), stop / start / purge, and
//! synchronization scopes measured with two threads: a queue-scoped queue never runs two callbacks
//! at once, an unscoped one does; with a device scope every queue of the device is serialised.
//! Plain, under valgrind memcheck and with AddressSanitizer.

#[path = "support/asan.rs"]
mod asan;
mod support;

#[path = "support/build.rs"]
mod builder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::{Driver, DriverHost, Finding, HostConfig};

const STATUS_CANCELLED: u32 = 0xC000_0120;
const STATUS_RETRY: u32 = 0xC000_022D;

fn rt_wdfq(image: &str, defines: &[&str], flags: &[&str]) -> PathBuf {
    builder::driver(image, &[builder::source("rt_wdfq.c")], defines, flags)
}

const fn ctl(function: u32) -> u32 {
    (0x12 << 16) | (function << 2)
}

fn log(host: &DriverHost) -> Vec<String> {
    host.drain_log().into_iter().map(|l| l.text).collect()
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

/// Sends `code` from two threads at once; returns both (status, value) and the most callbacks
/// the driver saw running at once.
fn two_at_once(d: &Driver, a: u32, b: Option<u32>) -> (Vec<(u32, u32)>, u32) {
    let out: Vec<(u32, u32)> = std::thread::scope(|s| {
        let t = s.spawn(|| d.ioctl(a, &[], 4).unwrap());
        let other = match b {
            Some(code) => d.ioctl(code, &[], 4).unwrap(),
            None => {
                let r = d.read(8).unwrap();
                assert_eq!(r.output, b"readq ok");
                wfp_ffi::IoctlOutput {
                    output: vec![0; 4],
                    ..r
                }
            }
        };
        [t.join().unwrap(), other]
            .iter()
            .map(|r| (r.status, le32(&r.output)))
            .collect()
    });
    let max = d.ioctl(ctl(0xA02), &[], 4).unwrap();
    (out, le32(&max.output))
}

/// Loads rt_wdfq (`device_scope`: built with -DRT_DEVICE_SCOPE), runs every check, unloads it
/// with no finding.
fn run_rt_wdfq(so: &Path, device_scope: bool) {
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let d = host.load(so).unwrap();
    let entry = log(&host);
    let fails: Vec<&String> = entry.iter().filter(|l| !l.starts_with("ok ")).collect();
    assert_eq!(fails, ["done"], "{entry:#?}");
    assert_eq!(entry.len(), 12, "{entry:#?}");

    // Queue scope (passive level): one callback at a time, at PASSIVE_LEVEL.
    let (serial, max) = two_at_once(&d, ctl(0xA00), Some(ctl(0xA00)));
    assert_eq!(serial, [(0, 0), (0, 0)]);
    assert_eq!(
        max, 1,
        "a synchronization scope serialises the queue's callbacks"
    );
    // No scope: both at once (with a device scope: serialised by the device's lock).
    let (free, max) = two_at_once(&d, ctl(0xA01), Some(ctl(0xA01)));
    assert_eq!(free, [(0, 0), (0, 0)]);
    assert_eq!(max, if device_scope { 1 } else { 2 });
    // A read (its own queue) next to a serial request: serialised only by a device scope.
    let (mixed, max) = two_at_once(&d, ctl(0xA00), None);
    assert_eq!(mixed[0], (0, 0));
    assert_eq!(max, if device_scope { 1 } else { 2 });

    // Queue scope at the default (dispatch) level: a spin lock, DISPATCH_LEVEL.
    let spin = d.ioctl(ctl(0xA06), &[], 4).unwrap();
    assert_eq!((spin.status, le32(&spin.output)), (0, 2));

    // WdfRequestGetParameters of a device control.
    let params = d.ioctl(ctl(0xA07), &[1, 2, 3], 4).unwrap();
    assert_eq!((params.status, le32(&params.output)), (0, 3));

    // A manual queue: parked until another request retrieves it.
    let (parked, unparked) = std::thread::scope(|s| {
        let t = s.spawn(|| d.ioctl(ctl(0xA03), &[], 4).unwrap());
        let unparked = loop {
            let r = d.ioctl(ctl(0xA04), &[], 4).unwrap();
            if r.status != STATUS_RETRY {
                break r;
            }
            std::thread::yield_now();
        };
        (t.join().unwrap(), unparked)
    });
    assert_eq!((parked.status, le32(&parked.output)), (0, 0x1234));
    assert_eq!((unparked.status, le32(&unparked.output)), (0, 0x5678));

    // Purge: the parked request is cancelled, the purge callback runs, a forward to the purged
    // queue is refused (STATUS_WDF_BUSY); started again afterwards.
    let (parked, purge) = std::thread::scope(|s| {
        let t = s.spawn(|| d.ioctl(ctl(0xA03), &[], 4).unwrap());
        let purge = loop {
            let r = d.ioctl(ctl(0xA05), &[], 4).unwrap();
            if r.status != STATUS_RETRY {
                break r;
            }
            std::thread::yield_now();
        };
        (t.join().unwrap(), purge)
    });
    assert_eq!(parked.status, STATUS_CANCELLED);
    assert_eq!((purge.status, le32(&purge.output)), (0, 1));

    let report = d.unload().unwrap();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    let rest = log(&host);
    assert!(!rest.iter().any(|l| l.starts_with("FAIL")), "{rest:#?}");
}

#[test]
fn kmdf_queues_dispatch_forward_park_purge_and_serialise() {
    run_rt_wdfq(&rt_wdfq("rt_wdfq", &[], &[]), false);
}

#[test]
fn a_device_synchronization_scope_serialises_every_queue_of_the_device() {
    run_rt_wdfq(&rt_wdfq("rt_wdfq_dev", &["RT_DEVICE_SCOPE"], &[]), true);
}

/// The body the valgrind and AddressSanitizer tests run in a child process.
#[test]
#[ignore = "run by rt_wdfq_under_valgrind / rt_wdfq_with_address_sanitizer in a child process"]
fn rt_wdfq_inner() {
    let Ok(so) = std::env::var("WFP_FFI_RT_WDFQ_SO") else {
        return;
    };
    run_rt_wdfq(Path::new(&so), false);
    println!("rt_wdfq: done");
}

#[test]
fn rt_wdfq_under_valgrind() {
    let so = rt_wdfq("rt_wdfq_vg", &[], &[]);
    support::run_inner_under_valgrind("rt_wdfq_inner", "WFP_FFI_RT_WDFQ_SO", &so, "rt_wdfq: done");
}

#[test]
fn rt_wdfq_with_address_sanitizer() {
    asan::run_inner(
        "rt_wdfq_inner",
        "WFP_FFI_RT_WDFQ_SO",
        "rt_wdfq: done",
        || {
            rt_wdfq(
                "rt_wdfq_asan",
                &[],
                &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
            )
        },
    );
}

const MISUSE: &str = r#"
#include <ntddk.h>
#include <wdf.h>
static WDFQUEUE Other;
static void Ioctl(WDFQUEUE queue, WDFREQUEST request, size_t out, size_t in, ULONG code)
{
    WDF_REQUEST_PARAMETERS params;
    UNREFERENCED_PARAMETER(out);
    UNREFERENCED_PARAMETER(in);
    UNREFERENCED_PARAMETER(code);
    RtlZeroMemory(&params, sizeof(params)); /* no WDF_REQUEST_PARAMETERS_INIT: Size 0 */
    WdfRequestGetParameters(request, &params);
    if (WdfRequestForwardToIoQueue(request, queue) != STATUS_INVALID_DEVICE_REQUEST) {
        WdfRequestComplete(request, STATUS_INTERNAL_ERROR);
        return;
    }
    WdfObjectAcquireLock(Other); /* no synchronization scope: no lock */
    WdfRequestComplete(request, STATUS_SUCCESS);
}
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDF_IO_QUEUE_CONFIG qconfig;
    WDFDRIVER driver;
    WDFDEVICE device;
    PWDFDEVICE_INIT init;
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    init = WdfControlDeviceInitAllocate(driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    WdfDeviceCreate(&init, WDF_NO_OBJECT_ATTRIBUTES, &device);
    WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(&qconfig, WdfIoQueueDispatchSequential);
    qconfig.EvtIoDeviceControl = Ioctl;
    WdfIoQueueCreate(device, &qconfig, WDF_NO_OBJECT_ATTRIBUTES, NULL);
    WDF_IO_QUEUE_CONFIG_INIT(&qconfig, WdfIoQueueDispatchManual);
    WdfIoQueueCreate(device, &qconfig, WDF_NO_OBJECT_ATTRIBUTES, &Other);
    WdfControlFinishInitializing(device);
    return STATUS_SUCCESS;
}
"#;

/// Parameters without WDF_REQUEST_PARAMETERS_INIT and WdfObjectAcquireLock on a queue without a
/// synchronization scope are findings; forwarding a request to its own queue is refused.
#[test]
fn queue_misuse_is_reported() {
    let so = builder::driver(
        "wdfq_misuse",
        &[builder::write_source("wdfq_misuse", MISUSE)],
        &[],
        &[],
    );
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let d = host.load(&so).unwrap();
    assert_eq!(d.ioctl(ctl(1), &[], 0).unwrap().status, 0);
    let report = d.unload().unwrap();
    assert_eq!(
        report.findings,
        vec![
            Finding::Assertion {
                message: "WdfRequestGetParameters: Parameters->Size is not \
                          sizeof(WDF_REQUEST_PARAMETERS) (WDF_REQUEST_PARAMETERS_INIT)"
                    .into()
            },
            Finding::Assertion {
                message:
                    "WdfObjectAcquireLock on an object with no synchronization scope (no lock)"
                        .into()
            },
        ]
    );
}

const STOP: &str = r#"
#include <ntddk.h>
#include <wdf.h>
static LONG Done;
static void StopDone(WDFQUEUE queue, WDFCONTEXT context)
{
    UNREFERENCED_PARAMETER(queue);
    if (context == (WDFCONTEXT)&Done) InterlockedIncrement(&Done);
}
static void Ioctl(WDFQUEUE queue, WDFREQUEST request, size_t out, size_t in, ULONG code)
{
    UNREFERENCED_PARAMETER(out);
    UNREFERENCED_PARAMETER(in);
    UNREFERENCED_PARAMETER(code);
    WdfIoQueueStop(queue, StopDone, (WDFCONTEXT)&Done); /* the driver owns this request */
    DbgPrint("before completion %ld", Done);
    WdfIoQueueStopSynchronously(queue); /* would never return on Windows: a finding */
    WdfRequestComplete(request, STATUS_SUCCESS);
    DbgPrint("after completion %ld", Done);
    WdfIoQueueStart(queue);
}
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDF_IO_QUEUE_CONFIG qconfig;
    WDFDRIVER driver;
    WDFDEVICE device;
    PWDFDEVICE_INIT init;
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    init = WdfControlDeviceInitAllocate(driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    WdfDeviceCreate(&init, WDF_NO_OBJECT_ATTRIBUTES, &device);
    WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(&qconfig, WdfIoQueueDispatchSequential);
    qconfig.EvtIoDeviceControl = Ioctl;
    WdfIoQueueCreate(device, &qconfig, WDF_NO_OBJECT_ATTRIBUTES, NULL);
    WdfControlFinishInitializing(device);
    return STATUS_SUCCESS;
}
"#;

/// WdfIoQueueStop's callback waits until the driver owns none of the queue's requests (it runs
/// when the owned one is completed); WdfIoQueueStopSynchronously from the queue's own callback
/// while owning a request is a finding (it would never return on Windows); a restarted queue
/// takes the next request.
#[test]
fn a_stop_completes_once_the_driver_owns_no_request_of_the_queue() {
    let so = builder::driver(
        "wdfq_stop",
        &[builder::write_source("wdfq_stop", STOP)],
        &[],
        &[],
    );
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let d = host.load(&so).unwrap();
    for _ in 0..2 {
        assert_eq!(d.ioctl(ctl(1), &[], 0).unwrap().status, 0);
    }
    assert_eq!(
        log(&host),
        [
            "before completion 0",
            "after completion 1",
            "before completion 1",
            "after completion 2"
        ]
    );
    let report = d.unload().unwrap();
    let deadlock = Finding::Assertion {
        message: "WdfIoQueueStopSynchronously from a callback of the queue while the driver owns \
                  one of its requests (deadlock on Windows)"
            .into(),
    };
    assert_eq!(report.findings, vec![deadlock.clone(), deadlock]);
}
