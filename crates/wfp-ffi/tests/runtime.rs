//! The kernel runtime exercised from C: drivers under `tests/c/drivers/` built by
//! `wfp_ffi::compile::build`, loaded into a host, their DriverEntry running checks that print
//! "ok NAME" / "FAIL NAME" lines to the host's log.

mod support;

#[path = "support/build.rs"]
mod builder;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, Finding, HostConfig, UnloadError};

fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers")
}

fn build_driver(name: &str, source: &Path) -> PathBuf {
    builder::driver(name, &[source.to_path_buf()], &[], &[])
}

fn host() -> DriverHost {
    DriverHost::new(Arc::new(Engine::default()), HostConfig::default())
}

/// Asserts every check passed and returns the log.
fn passed(log: &[String], expect_at_least: usize) {
    let fails: Vec<&String> = log.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{fails:#?}\n{log:#?}");
    let oks = log.iter().filter(|l| l.starts_with("ok ")).count();
    assert!(oks >= expect_at_least, "{oks} checks ran\n{log:#?}");
}

#[test]
fn kernel_runtime_pool_lookaside_events_threads_work_items_inline_helpers() {
    let so = build_driver("rt_kernel", &c_dir().join("rt_kernel.c"));
    let host = host();
    // 2026-01-01T00:00:00Z: KeQuerySystemTime reads the host's clock.
    let ns = 1_767_225_600_000_000_000u64;
    host.set_time(ns);
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    passed(&log, 58);
    assert!(log.iter().any(|l| l == "done"), "{log:#?}");
    let systime = format!("systime {}", ns / 100 + 116_444_736_000_000_000);
    assert!(log.contains(&systime), "{log:#?}");
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

const RAISED_WAIT: &str = r#"
#include <ntddk.h>
static KSPIN_LOCK Lock;
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KEVENT ev;
    LARGE_INTEGER zero = {0}, t;
    KIRQL old;
    t.QuadPart = -1;
    KeInitializeEvent(&ev, NotificationEvent, TRUE);
    KeInitializeSpinLock(&Lock);
    KeAcquireSpinLock(&Lock, &old);
    NTSTATUS a = KeWaitForSingleObject(&ev, Executive, KernelMode, FALSE, &zero);
    NTSTATUS b = KeWaitForSingleObject(&ev, Executive, KernelMode, FALSE, &t);
    ZwClose(NULL); /* PASSIVE_LEVEL only */
    KeReleaseSpinLock(&Lock, old);
    DbgPrint("%x %x\n", a, b);
    return STATUS_SUCCESS;
}
"#;

#[test]
fn a_wait_or_a_passive_only_call_at_dispatch_level_is_a_verifier_finding_a_poll_is_not() {
    let so = build_driver(
        "raised_wait",
        &builder::write_source("raised_wait", RAISED_WAIT),
    );
    let host = host();
    let driver = host.load(&so).unwrap();
    assert_eq!(host.drain_log()[0].text, "0 0");
    let report = driver.unload().unwrap();
    assert_eq!(
        report.findings,
        vec![
            Finding::WaitAtRaisedIrql {
                function: "KeWaitForSingleObject",
                irql: 2
            },
            Finding::IrqlTooHigh {
                function: "ZwClose",
                irql: 2
            },
            Finding::BadHandle {
                function: "ZwClose"
            },
        ]
    );
}

const LEFTOVERS: &str = r#"
#include <ntddk.h>
static KEVENT Stop;
static void Loop(PVOID p) { KeWaitForSingleObject(&Stop, Executive, KernelMode, FALSE, NULL); }
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE h, h2;
    PVOID t;
    PDEVICE_OBJECT dev;
    LOOKASIDE_LIST_EX l;
    static LOOKASIDE_LIST_EX kept;
    KeInitializeEvent(&Stop, NotificationEvent, FALSE);
    PsCreateSystemThread(&h, THREAD_ALL_ACCESS, NULL, NULL, NULL, Loop, NULL);
    ObReferenceObjectByHandle(h, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &t, NULL);
    PsCreateSystemThread(&h2, THREAD_ALL_ACCESS, NULL, NULL, NULL, Loop, NULL);
    KeSetEvent(&Stop, 0, FALSE);
    KeWaitForSingleObject(t, Executive, KernelMode, FALSE, NULL);
    IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &dev);
    PIO_WORKITEM w = IoAllocateWorkItem(dev);
    (void)w;
    ExInitializeLookasideListEx(&kept, NULL, NULL, NonPagedPoolNx, 0, 40, 'peeK', 0);
    ExFreeToLookasideListEx(&kept, ExAllocateFromLookasideListEx(&kept));
    DbgPrint("bad close %x\n", ZwClose((HANDLE)0x1234));
    (void)l;
    return STATUS_SUCCESS;
}
"#;

#[test]
fn handles_thread_objects_work_items_and_lookaside_lists_left_behind_are_reported() {
    let so = build_driver("leftovers", &builder::write_source("leftovers", LEFTOVERS));
    let host = host();
    let driver = host.load(&so).unwrap();
    assert_eq!(host.drain_log()[0].text, "bad close c0000008");
    let report = driver.unload().unwrap();
    let f = &report.findings;
    for (what, count) in [
        ("open handle(s)", 2),
        ("referenced thread object(s)", 2),
        ("work item(s) never freed", 1),
        ("lookaside list(s) never deleted", 1),
    ] {
        assert!(
            f.contains(&Finding::ObjectsLeft { what, count }),
            "{what}: {f:#?}"
        );
    }
    assert!(
        f.contains(&Finding::BadHandle {
            function: "ZwClose"
        }),
        "{f:#?}"
    );
    assert!(
        f.iter()
            .any(|x| matches!(x, Finding::LeakedPool { tag, size: 40, .. } if tag == "Keep")),
        "the list's cached entry is leaked pool: {f:#?}"
    );
}

const NEVER_ENDS: &str = r#"
#include <ntddk.h>
static KEVENT Never;
static void Loop(PVOID p) { KeWaitForSingleObject(&Never, Executive, KernelMode, FALSE, NULL); }
static void Unload(PDRIVER_OBJECT d) { DbgPrint("unload routine ran\n"); }
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE h;
    DriverObject->DriverUnload = Unload;
    KeInitializeEvent(&Never, NotificationEvent, FALSE);
    PsCreateSystemThread(&h, THREAD_ALL_ACCESS, NULL, NULL, NULL, Loop, NULL);
    ZwClose(h);
    return STATUS_SUCCESS;
}
"#;

#[test]
fn a_driver_whose_thread_never_ends_is_reported_hung_and_stays_mapped() {
    let so = build_driver(
        "never_ends",
        &builder::write_source("never_ends", NEVER_ENDS),
    );
    let host = DriverHost::new(
        Arc::new(Engine::default()),
        HostConfig {
            unload_timeout: Duration::from_millis(200),
            ..HostConfig::default()
        },
    );
    let driver = host.load(&so).unwrap();
    match driver.unload() {
        Err(UnloadError::Hung { name, .. }) => assert_eq!(name, "never_ends"),
        other => panic!("expected Hung, got {other:?}"),
    }
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(log, vec!["unload routine ran".to_string()]);
}

#[test]
fn ntstrsafe_intsafe_and_ip2string_from_a_driver() {
    let so = build_driver("rt_strings", &c_dir().join("rt_strings.c"));
    let host = host();
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    passed(&log, 45);
    assert_eq!(log.last().map(String::as_str), Some("done"));
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

/// RtlUnicodeString* (ntstrsafe.h) and RtlCopy/Equal/Compare/Append UNICODE_STRING forms.
#[test]
fn unicode_string_helpers_from_a_driver() {
    let so = build_driver("rt_ustrings", &c_dir().join("rt_ustrings.c"));
    let host = host();
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    passed(&log, 33);
    assert_eq!(log.last().map(String::as_str), Some("done"));
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn ndis_pools_nbls_and_generic_objects_from_a_driver() {
    let so = build_driver("rt_ndis", &c_dir().join("rt_ndis.c"));
    let host = host();
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    passed(&log, 22);
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

/// The body the valgrind test runs in a child process: rt_ndis.c (built by the parent) loaded,
/// every check passed, unloaded with no finding.
#[test]
#[ignore = "run by ndis_context_space_under_valgrind in a child process"]
fn rt_ndis_inner() {
    let Ok(so) = std::env::var("WFP_FFI_RT_NDIS_SO") else {
        return;
    };
    let host = host();
    let driver = host.load(Path::new(&so)).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    passed(&log, 22);
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    println!("rt_ndis: done");
}

/// rt_ndis.c (NBL pools, NET_BUFFER_LIST_CONTEXT space grown and shrunk across blocks, Fwps lists
/// with contextSize) under valgrind memcheck: 0 errors, 0 bytes definitely lost. Skipped with a
/// note when valgrind is absent.
#[test]
fn ndis_context_space_under_valgrind() {
    let so = build_driver("rt_ndis_vg", &c_dir().join("rt_ndis.c"));
    support::run_inner_under_valgrind("rt_ndis_inner", "WFP_FFI_RT_NDIS_SO", &so, "rt_ndis: done");
}

#[test]
fn ndis_objects_left_at_unload_are_reported() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rt_ndis_leak.so");
    build(&BuildOptions {
        sources: vec![c_dir().join("rt_ndis.c")],
        output: out.clone(),
        defines: vec!["LEAK".into()],
        ..BuildOptions::default()
    })
    .unwrap();
    let host = host();
    let driver = host.load(&out).unwrap();
    let report = driver.unload().unwrap();
    for what in [
        "NBL pool(s) never freed",
        "NET_BUFFER_LIST(s) from NDIS pools never freed",
        "NDIS generic object(s) never freed",
        "NET_BUFFER_LIST_CONTEXT space from NdisAllocateNetBufferListContext never freed",
    ] {
        assert!(
            report
                .findings
                .contains(&Finding::ObjectsLeft { what, count: 1 }),
            "{what}: {:?}",
            report.findings
        );
    }
}

#[test]
fn wpp_trace_messages_reach_the_host_log_with_extended_conversions() {
    let so = build_driver("rt_wpp", &c_dir().join("rt_wpp.c"));
    let host = host();
    let driver = host.load(&so).unwrap();
    let log = host.drain_log();
    let texts: Vec<&str> = log.iter().map(|l| l.text.as_str()).collect();
    // No WPP_LEVEL / WPP_FLAGS parameter: every message fires.
    assert_eq!(
        texts,
        vec![
            "plain 5 wide",
            "status 0x00000102 in DriverEntry",
            "guid {01020304-0506-0708-090a-0b0c0d0e0f10} ip 127.0.0.1 port 80 TRUE n=9",
            "fixed level ok STATUS_SUCCESS",
            "verbose classify 1",
            "warning classify 2",
            "error classify 3",
            "classify flag 4",
            "evaluated 4",
        ]
    );
    // TRACE_LEVEL_ERROR maps to DPFLTR_ERROR_LEVEL, the others to DPFLTR_INFO_LEVEL.
    let levels: Vec<u32> = log.iter().take(4).map(|l| l.level).collect();
    assert_eq!(
        levels,
        vec![3, 0, 3, 3],
        "TraceInit{{LEVEL=TRACE_LEVEL_VERBOSE}} is informational"
    );
    assert!(log.iter().take(8).all(|l| l.component == 80));
    driver.unload().unwrap();
}

/// WPP level and flag filtering (wdk-runtime.md §9: a message fires when its flag is enabled and
/// its level is at or below the session's): the driver's WPP_LEVEL / WPP_FLAGS parameters are
/// its session. Level WARNING with only TRACE_CLASSIFY (the second flag, 0x2) enabled: the
/// TRACE_INIT messages and the INFORMATION / VERBOSE ones are not emitted, and their arguments are
/// not evaluated.
#[test]
fn wpp_messages_above_the_configured_level_or_flags_are_not_emitted() {
    let so = build_driver("rt_wpp_filtered", &c_dir().join("rt_wpp.c"));
    let host = host();
    let options = wfp_ffi::DriverOptions {
        params: vec![
            ("WPP_LEVEL".into(), wfp_ffi::ParamValue::Dword(3)),
            ("wpp_flags".into(), wfp_ffi::ParamValue::Dword(0x2)),
        ],
    };
    let driver = host.load_with(&so, &options).unwrap();
    let texts: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(
        texts,
        [
            "warning classify 1",
            "error classify 2",
            "classify flag 3",
            "evaluated 3"
        ]
    );
    driver.unload().unwrap();
    // Level NONE: nothing fires (DoTraceMessage checks the flag only).
    let options = wfp_ffi::DriverOptions {
        params: vec![("WPP_LEVEL".into(), wfp_ffi::ParamValue::Dword(0))],
    };
    let driver = host.load_with(&so, &options).unwrap();
    let texts: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(texts, ["plain 5 wide", "classify flag 1", "evaluated 1"]);
    driver.unload().unwrap();
}

const UNLOAD_HANGS: &str = r#"
#include <ntddk.h>
static KEVENT Never;
static void Unload(PDRIVER_OBJECT d) { KeWaitForSingleObject(&Never, Executive, KernelMode, FALSE, NULL); }
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KeInitializeEvent(&Never, NotificationEvent, FALSE);
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
"#;

#[test]
fn an_unload_routine_that_never_returns_is_reported_hung() {
    let so = build_driver(
        "unload_hangs",
        &builder::write_source("unload_hangs", UNLOAD_HANGS),
    );
    let host = DriverHost::new(
        Arc::new(Engine::default()),
        HostConfig {
            unload_timeout: Duration::from_millis(100),
            ..HostConfig::default()
        },
    );
    let driver = host.load(&so).unwrap();
    assert!(matches!(driver.unload(), Err(UnloadError::Hung { .. })));
}

const DELETE_IN_TXN: &str = r#"
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>
DEFINE_GUID(TXN_CALLOUT, 0x7a1d0c4b, 0x1212, 0x3434, 0x56, 0x56, 0x78, 0x78, 0x9a, 0x9a, 0xbc, 0xbc);
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE engine;
    FWPM_SESSION0 session = { 0 };
    FWPM_CALLOUT0 c = { 0 };
    UINT32 id = 0;
    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    NTSTATUS s = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &engine);
    if (!NT_SUCCESS(s)) return s;
    s = FwpmTransactionBegin0(engine, 0);
    c.calloutKey = TXN_CALLOUT;
    c.displayData.name = L"deleted in its transaction";
    c.applicableLayer = FWPM_LAYER_ALE_AUTH_CONNECT_V4;
    if (NT_SUCCESS(s)) s = FwpmCalloutAdd0(engine, &c, NULL, &id);
    /* Inside the session's own transaction: answered from it, never a wait on its own lock. */
    if (NT_SUCCESS(s)) s = FwpmCalloutDeleteById0(engine, id);
    DbgPrint("delete 0x%08x\n", s);
    DbgPrint("again 0x%08x\n", FwpmCalloutDeleteById0(engine, id));
    DbgPrint("commit 0x%08x\n", FwpmTransactionCommit0(engine));
    return FwpmEngineClose0(engine);
}
"#;

/// FwpmCalloutDeleteById0 inside the driver's own transaction finds the callout through that
/// transaction (it used to wait for the writer lock the transaction holds: a self-deadlock).
#[test]
fn callout_delete_by_id_inside_the_drivers_own_transaction() {
    let so = build_driver(
        "delete_in_txn",
        &builder::write_source("delete_in_txn", DELETE_IN_TXN),
    );
    let host = host();
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(
        log,
        vec![
            "delete 0x00000000".to_string(),
            // STATUS_FWP_CALLOUT_NOT_FOUND: the delete is visible to the transaction.
            "again 0xc0220001".to_string(),
            "commit 0x00000000".to_string(),
        ]
    );
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

const PERF_UUID: &str = r#"
#include <ntddk.h>
#define CHECK(name, cond) DbgPrint("%s %s\n", (cond) ? "ok" : "FAIL", name)
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    LARGE_INTEGER f = {0}, a, b;
    UUID u1, u2;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    a = KeQueryPerformanceCounter(&f);
    b = KeQueryPerformanceCounter(NULL);
    CHECK("perf frequency 10MHz", f.QuadPart == 10000000);
    CHECK("perf counter monotonic", b.QuadPart >= a.QuadPart);
    CHECK("perf counter is interrupt time", b.QuadPart <= (LONGLONG)KeQueryInterruptTime());
    CHECK("uuid created", NT_SUCCESS(ExUuidCreate(&u1)) && NT_SUCCESS(ExUuidCreate(&u2)));
    CHECK("uuids differ", !IsEqualGUID(&u1, &u2));
    CHECK("uuid version 4", (u1.Data3 >> 12) == 4 && (u2.Data3 >> 12) == 4);
    CHECK("uuid variant", (u1.Data4[0] & 0xC0) == 0x80);
    CHECK("uuid null", ExUuidCreate(NULL) == STATUS_INVALID_PARAMETER);
    return STATUS_SUCCESS;
}
"#;

/// KeQueryPerformanceCounter (10 MHz, the interrupt-time clock) and ExUuidCreate (version 4).
#[test]
fn perf_counter_and_uuid_create() {
    let so = build_driver(
        "rt_perf_uuid",
        &builder::write_source("rt_perf_uuid", PERF_UUID),
    );
    let host = host();
    host.set_time(1_767_225_600_000_000_000);
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    passed(&log, 8);
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

const FLUSH_DPCS: &str = r#"
#include <ntddk.h>
#define CHECK(name, cond) DbgPrint("%s %s\n", (cond) ? "ok" : "FAIL", name)
static KDPC dpcs[4];
static volatile LONG ran;
static void Slow(PKDPC Dpc, PVOID Context, PVOID A1, PVOID A2)
{
    ULONGLONG until = KeQueryInterruptTime() + 20 * 10000; /* 20 ms of busy work at DISPATCH */
    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(Context);
    UNREFERENCED_PARAMETER(A1);
    UNREFERENCED_PARAMETER(A2);
    while (KeQueryInterruptTime() < until) { }
    InterlockedIncrement(&ran);
}
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    int i, queued = 0;
    BOOLEAN removed;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeFlushQueuedDpcs();
    CHECK("flush with nothing queued returns", ran == 0);
    for (i = 0; i < 4; i++) {
        KeInitializeDpc(&dpcs[i], Slow, NULL);
        queued += KeInsertQueueDpc(&dpcs[i], NULL, NULL);
    }
    CHECK("four queued", queued == 4);
    KeFlushQueuedDpcs();
    CHECK("flush waited for every queued DPC", ran == 4);
    CHECK("queue again after flush", KeInsertQueueDpc(&dpcs[0], NULL, NULL));
    removed = KeRemoveQueueDpc(&dpcs[0]); /* FALSE when a worker already took it */
    KeFlushQueuedDpcs();
    CHECK("a removed DPC does not run, a taken one ran", ran == (removed ? 4 : 5));
    return STATUS_SUCCESS;
}
"#;

/// KeFlushQueuedDpcs waits for every DPC queued before it (each busy for 20 ms), not for none.
#[test]
fn flush_queued_dpcs_waits_for_every_queued_dpc() {
    let so = build_driver(
        "rt_flush_dpcs",
        &builder::write_source("rt_flush_dpcs", FLUSH_DPCS),
    );
    let host = host();
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    passed(&log, 5);
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

const TIMERS: &str = r#"
#include <ntddk.h>
#define CHECK(name, cond) DbgPrint("%s %s\n", (cond) ? "ok" : "FAIL", name)
static KTIMER t1, t2, t3, left;
static KDPC d1, d2;
static volatile LONG fired1, fired2;
static volatile KIRQL dpcIrql = 0xFF;
static void OnTimer(PKDPC Dpc, PVOID Context, PVOID A1, PVOID A2)
{
    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(A1);
    UNREFERENCED_PARAMETER(A2);
    dpcIrql = KeGetCurrentIrql();
    InterlockedIncrement((volatile LONG *)Context);
}
static LARGE_INTEGER Ms(LONGLONG ms) { LARGE_INTEGER d; d.QuadPart = -ms * 10000; return d; }
static void OneShot(void)
{
    LARGE_INTEGER poll = {0}, abs;
    KeInitializeTimer(&t1);
    KeInitializeDpc(&d1, OnTimer, (PVOID)&fired1);
    CHECK("initial state not signalled", !KeReadStateTimer(&t1));
    CHECK("poll unset timer times out", KeWaitForSingleObject(&t1, Executive, KernelMode, FALSE, &poll) == STATUS_TIMEOUT);
    CHECK("set: was not set", !KeSetTimer(&t1, Ms(10), &d1));
    CHECK("wait for the timer", KeWaitForSingleObject(&t1, Executive, KernelMode, FALSE, NULL) == STATUS_SUCCESS);
    CHECK("notification timer stays signalled", KeReadStateTimer(&t1));
    KeFlushQueuedDpcs();
    CHECK("its DPC ran once at DISPATCH", fired1 == 1 && dpcIrql == DISPATCH_LEVEL);
    CHECK("cancel after firing: not set", !KeCancelTimer(&t1));
    CHECK("set again resets the state", !KeSetTimer(&t1, Ms(10000), NULL) && !KeReadStateTimer(&t1));
    CHECK("re-set: was set", KeSetTimerEx(&t1, Ms(10000), 0, NULL));
    CHECK("cancel: was set", KeCancelTimer(&t1));
    CHECK("cancel twice: not set", !KeCancelTimer(&t1));
    KeQuerySystemTime(&abs);
    abs.QuadPart += 10 * 10000;
    KeSetTimer(&t1, abs, NULL);
    CHECK("absolute due time fires", KeWaitForSingleObject(&t1, Executive, KernelMode, FALSE, NULL) == STATUS_SUCCESS);
}
static void Periodic(void)
{
    LARGE_INTEGER twoSeconds = Ms(2000), poll = {0};
    int i, ok = 1;
    KeInitializeTimerEx(&t2, SynchronizationTimer);
    KeInitializeDpc(&d2, OnTimer, (PVOID)&fired2);
    KeSetTimerEx(&t2, Ms(1), 5, &d2);
    for (i = 0; i < 3; i++)
        ok &= KeWaitForSingleObject(&t2, Executive, KernelMode, FALSE, &twoSeconds) == STATUS_SUCCESS;
    CHECK("periodic synchronization timer signals each period", ok);
    CHECK("periodic cancel: was set", KeCancelTimer(&t2));
    KeFlushQueuedDpcs();
    LONG n = fired2;
    KeWaitForSingleObject(&t2, Executive, KernelMode, FALSE, &poll);
    LARGE_INTEGER pause = Ms(30);
    KeDelayExecutionThread(KernelMode, FALSE, &pause);
    KeFlushQueuedDpcs();
    CHECK("periodic DPC ran and stops after cancel", n >= 1 && fired2 == n); /* a DPC still queued is not queued twice */
    CHECK("cancelled timer no longer signals", KeWaitForSingleObject(&t2, Executive, KernelMode, FALSE, &poll) == STATUS_TIMEOUT);
    KeInitializeTimerEx(&t3, SynchronizationTimer);
    KeSetTimer(&t3, Ms(1), NULL);
    KeWaitForSingleObject(&t3, Executive, KernelMode, FALSE, NULL);
    CHECK("a wait consumes a synchronization timer's signal", !KeReadStateTimer(&t3));
}
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    OneShot();
    Periodic();
    KeInitializeTimer(&left);
    KeSetTimerEx(&left, Ms(1), 1000, NULL); /* left set: the host cancels and reports it */
    return STATUS_SUCCESS;
}
"#;

/// KTIMER: one-shot, absolute, periodic and synchronization timers, their DPCs, waits, cancel;
/// a timer left set at unload is cancelled and reported.
#[test]
fn timers_fire_signal_queue_their_dpc_and_are_cancelled_at_unload() {
    let so = build_driver("rt_timers", &builder::write_source("rt_timers", TIMERS));
    let host = host();
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    passed(&log, 17);
    let report = driver.unload().unwrap();
    assert_eq!(
        report.findings,
        vec![Finding::ObjectsLeft {
            what: "timer(s) still set at unload (cancelled)",
            count: 1
        }]
    );
}

const SIZED_LITERALS: &str = r#"
#include <ntddk.h>
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    LARGE_INTEGER interval;
    ULONG ms = 2;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    interval.QuadPart = ms * -10000i64; /* WFPSampler's KrnlHlprWorkItemSleep */
    KeDelayExecutionThread(KernelMode, FALSE, &interval);
    DbgPrint("%I64d %I64u %u %d", interval.QuadPart, 0xFFFFFFFFFFui64, 7ui32, 5i32 + 1i8);
    return STATUS_SUCCESS;
}
"#;

/// MSVC's sized integer-literal suffixes (`i64`, `ui64`, `ui32`, `i32`, `i8`) build: `driver
/// build` rewrites them in a copy of the source (src/compile/msvc.rs), values unchanged.
#[test]
fn msvc_sized_integer_literals_build_with_their_values() {
    let so = build_driver(
        "sized_literals",
        &builder::write_source("sized_literals", SIZED_LITERALS),
    );
    let host = host();
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(log, ["-20000 1099511627775 7 6"]);
    assert!(driver.unload().unwrap().findings.is_empty());
}

const SEH: &str = r#"
#include <ntddk.h>
static int Order[4];
static int Steps;
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    NTSTATUS status = STATUS_SUCCESS;
    UCHAR buffer[16];
    __try {
        Order[Steps++] = 1;
        ProbeForRead(buffer, sizeof(buffer), 1);
        ProbeForWrite(buffer + 1, 4, 4);
        ProbeForRead(buffer + 1, 0, 4);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        Order[Steps++] = 2;
        status = GetExceptionCode();
    }
    __try {
        Order[Steps++] = 3;
    } __finally {
        Order[Steps++] = 4;
    }
    DbgPrint("%d %d %d %d %d %x", Steps, Order[0], Order[1], Order[2], Order[3], status);
    return STATUS_SUCCESS;
}
"#;

/// wdk-runtime.md §10: `__try` / `__except` / `__finally` build (with a warning per `__try`); the
/// guarded block runs, the handler does not (the host raises no exceptions), the `__finally`
/// block runs after its block; ProbeForWrite of a misaligned range is the finding Windows would
/// have raised, a zero length is not checked.
#[test]
fn structured_exception_blocks_build_run_unguarded_and_probes_report_what_windows_raises() {
    let so = build_driver("seh", &builder::write_source("seh", SEH));
    let host = host();
    let driver = host.load(&so).unwrap();
    assert_eq!(host.drain_log()[0].text, "3 1 3 4 0 0");
    let report = driver.unload().unwrap();
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert!(
        matches!(&report.findings[0], Finding::Assertion { message }
            if message.starts_with("ProbeForWrite:") && message.contains("not aligned to 4")),
        "{:#?}",
        report.findings
    );
}

const MDL_LOCK: &str = r#"
#include <ntddk.h>
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    static UCHAR buffer[64] = "locked";
    PMDL mdl = IoAllocateMdl(buffer, sizeof(buffer), FALSE, FALSE, NULL);
    PUCHAR va;
    int locked, unlocked;
    __try {
        MmProbeAndLockPages(mdl, KernelMode, IoReadAccess);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        IoFreeMdl(mdl);
        return GetExceptionCode();
    }
    locked = (mdl->MdlFlags & MDL_PAGES_LOCKED) != 0;
    va = MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority);
    MmProbeAndLockPages(mdl, KernelMode, IoReadAccess); /* twice: a finding */
    MmUnlockPages(mdl);
    unlocked = (mdl->MdlFlags & MDL_PAGES_LOCKED) == 0;
    MmUnlockPages(mdl); /* not locked: a finding */
    DbgPrint("%d %d %s", locked, unlocked, va == buffer ? (char *)va : "elsewhere");
    IoFreeMdl(mdl);
    return STATUS_SUCCESS;
}
"#;

/// MmProbeAndLockPages / MmUnlockPages on an IoAllocateMdl MDL: locked and mapped at its buffer,
/// unlocked again; locking twice and unlocking unlocked pages are findings.
#[test]
fn mdl_pages_lock_and_unlock_and_misuse_is_reported() {
    let so = build_driver("mdl_lock", &builder::write_source("mdl_lock", MDL_LOCK));
    let host = host();
    let driver = host.load(&so).unwrap();
    assert_eq!(host.drain_log()[0].text, "1 1 locked");
    let report = driver.unload().unwrap();
    let messages: Vec<String> = report
        .findings
        .iter()
        .map(|f| match f {
            Finding::Assertion { message } => message.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        messages,
        vec![
            "MmProbeAndLockPages of an MDL whose pages are already locked".to_string(),
            "MmUnlockPages of an MDL whose pages are not locked".to_string(),
        ]
    );
}
