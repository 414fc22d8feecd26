//! KMDF work items from C (docs/c-abi.md "KMDF work items"): `tests/c/drivers/rt_wdfwork.c`
//! plain, under valgrind memcheck and with AddressSanitizer, a request completed from a work
//! item, `DriverHost::settle` waiting for a queued item, and the Verifier findings for misuse.

#[path = "support/asan.rs"]
mod asan;
mod support;

#[path = "support/build.rs"]
mod builder;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wfp_core::Engine;
use wfp_ffi::{DriverHost, Finding, HostConfig};

fn build_c(name: &str, source: PathBuf, flags: &[&str]) -> PathBuf {
    builder::driver(name, &[source], &[], flags)
}

fn rt_wdfwork(name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers/rt_wdfwork.c");
    build_c(name, src, flags)
}

const fn ctl(function: u32) -> u32 {
    (0x12 << 16) | (function << 2)
}

fn log(host: &DriverHost) -> Vec<String> {
    host.drain_log().into_iter().map(|l| l.text).collect()
}

/// Loads rt_wdfwork, runs its checks and requests, unloads it with no finding.
fn run_rt_wdfwork(so: &Path) {
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(so).unwrap();
    let entry = log(&host);
    let fails: Vec<&String> = entry.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{fails:#?}\n{entry:#?}");
    assert_eq!(
        entry.iter().filter(|l| l.starts_with("ok ")).count(),
        20,
        "{entry:#?}"
    );
    assert_eq!(entry.last().map(String::as_str), Some("done"), "{entry:#?}");

    let work = driver.ioctl(ctl(0x900), &[], 8).unwrap();
    assert_eq!((work.status, work.output.as_slice()), (0, &b"WORK"[..]));
    let slow = driver.ioctl(ctl(0x901), &[], 0).unwrap();
    assert_eq!(slow.status, 0);
    assert!(
        host.settle(Duration::from_secs(30)),
        "settle waits for the work item"
    );
    let count = driver.ioctl(ctl(0x902), &[], 4).unwrap();
    assert_eq!(
        count.output,
        1i32.to_le_bytes(),
        "the slow item ran before settle returned"
    );

    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let unload = log(&host);
    let fails: Vec<&String> = unload.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{unload:#?}");
    let tail: Vec<&String> = unload.iter().filter(|l| l.starts_with("left")).collect();
    assert_eq!(tail, ["left item ran", "left item cleanup"], "{unload:#?}");
}

#[test]
fn kmdf_work_items_run_flush_delete_and_go_with_their_parent() {
    run_rt_wdfwork(&rt_wdfwork("rt_wdfwork", &[]));
}

/// The body the valgrind and AddressSanitizer tests run in a child process.
#[test]
#[ignore = "run by rt_wdfwork_under_valgrind / rt_wdfwork_with_address_sanitizer in a child process"]
fn rt_wdfwork_inner() {
    let Ok(so) = std::env::var("WFP_FFI_RT_WDFWORK_SO") else {
        return;
    };
    run_rt_wdfwork(Path::new(&so));
    println!("rt_wdfwork: done");
}

#[test]
fn rt_wdfwork_under_valgrind() {
    let so = rt_wdfwork("rt_wdfwork_vg", &[]);
    support::run_inner_under_valgrind(
        "rt_wdfwork_inner",
        "WFP_FFI_RT_WDFWORK_SO",
        &so,
        "rt_wdfwork: done",
    );
}

#[test]
fn rt_wdfwork_with_address_sanitizer() {
    asan::run_inner(
        "rt_wdfwork_inner",
        "WFP_FFI_RT_WDFWORK_SO",
        "rt_wdfwork: done",
        || {
            rt_wdfwork(
                "rt_wdfwork_asan",
                &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
            )
        },
    );
}

const MISUSE: &str = r#"
#include <ntddk.h>
#include <wdf.h>
static KEVENT Done;
static void FlushSelf(WDFWORKITEM item) { WdfWorkItemFlush(item); KeSetEvent(&Done, IO_NO_INCREMENT, FALSE); }
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDFDRIVER driver;
    WDFDEVICE device;
    WDFWORKITEM item;
    WDF_WORKITEM_CONFIG wconfig;
    WDF_OBJECT_ATTRIBUTES attrs;
    KIRQL old;
    KSPIN_LOCK lock;
    PWDFDEVICE_INIT init;
    KeInitializeEvent(&Done, NotificationEvent, FALSE);
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    init = WdfControlDeviceInitAllocate(driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    WdfDeviceCreate(&init, WDF_NO_OBJECT_ATTRIBUTES, &device);
    WDF_WORKITEM_CONFIG_INIT(&wconfig, FlushSelf);
    WDF_OBJECT_ATTRIBUTES_INIT(&attrs);
    attrs.ParentObject = device;
    WdfWorkItemCreate(&wconfig, &attrs, &item);
    WdfWorkItemEnqueue(item);
    KeWaitForSingleObject(&Done, Executive, KernelMode, FALSE, NULL);
    WdfWorkItemEnqueue((WDFWORKITEM)(ULONG_PTR)0x1234);
    KeInitializeSpinLock(&lock);
    KeAcquireSpinLock(&lock, &old);
    WdfWorkItemFlush(item);
    KeReleaseSpinLock(&lock, old);
    WdfControlFinishInitializing(device);
    return STATUS_SUCCESS;
}
"#;

#[test]
fn flushing_from_the_own_callback_a_bad_handle_and_a_raised_flush_are_findings() {
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wdfwork_misuse.c");
    std::fs::write(&src, MISUSE).unwrap();
    let so = build_c("wdfwork_misuse", src, &[]);
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let report = driver.unload().unwrap();
    assert_eq!(
        report.findings,
        vec![
            Finding::Assertion {
                message:
                    "WdfWorkItemFlush from the work item's own EvtWorkItem (deadlock on Windows)"
                        .into()
            },
            Finding::BadHandle {
                function: "WdfWorkItemEnqueue"
            },
            Finding::IrqlTooHigh {
                function: "WdfWorkItemFlush",
                irql: 2
            },
        ]
    );
}
