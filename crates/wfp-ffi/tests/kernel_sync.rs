//! Dispatcher objects beyond events from C (docs/c-abi.md "Mutexes, semaphores, multi-object
//! waits"): `tests/c/drivers/rt_sync.c` (KMUTEX, KSEMAPHORE, KeWaitForMultipleObjects, FAST_MUTEX,
//! ERESOURCE, contended from a system thread) plain, under valgrind memcheck and with
//! AddressSanitizer, and the Verifier findings for their misuse.

#[path = "support/asan.rs"]
mod asan;
mod support;

#[path = "support/build.rs"]
mod builder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::{DriverHost, Finding, HostConfig};

fn build_c(name: &str, source: PathBuf, flags: &[&str]) -> PathBuf {
    builder::driver(name, &[source], &[], flags)
}

fn rt_sync(name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers/rt_sync.c");
    build_c(name, src, flags)
}

fn host() -> DriverHost {
    DriverHost::new(Arc::new(Engine::default()), HostConfig::default())
}

/// Loads rt_sync, asserts every check passed and the unload reported nothing.
fn run_rt_sync(so: &Path) {
    let host = host();
    let driver = host.load(so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    let fails: Vec<&String> = log.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{fails:#?}\n{log:#?}");
    let oks = log.iter().filter(|l| l.starts_with("ok ")).count();
    assert!(oks >= 40, "{oks} checks ran\n{log:#?}");
    assert!(log.iter().any(|l| l == "done"), "{log:#?}");
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn mutexes_semaphores_multi_waits_fast_mutexes_and_resources_from_a_driver() {
    run_rt_sync(&rt_sync("rt_sync", &[]));
}

/// The body the valgrind and AddressSanitizer tests run in a child process.
#[test]
#[ignore = "run by rt_sync_under_valgrind / rt_sync_with_address_sanitizer in a child process"]
fn rt_sync_inner() {
    let Ok(so) = std::env::var("WFP_FFI_RT_SYNC_SO") else {
        return;
    };
    run_rt_sync(Path::new(&so));
    println!("rt_sync: done");
}

#[test]
fn rt_sync_under_valgrind() {
    let so = rt_sync("rt_sync_vg", &[]);
    support::run_inner_under_valgrind("rt_sync_inner", "WFP_FFI_RT_SYNC_SO", &so, "rt_sync: done");
}

#[test]
fn rt_sync_with_address_sanitizer() {
    asan::run_inner(
        "rt_sync_inner",
        "WFP_FFI_RT_SYNC_SO",
        "rt_sync: done",
        || {
            rt_sync(
                "rt_sync_asan",
                &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
            )
        },
    );
}

const MISUSE: &str = r#"
#include <ntddk.h>
static KMUTEX Kept;
static KSEMAPHORE Sem;
static FAST_MUTEX Fast;
static ERESOURCE Left, Outside;
static void Owner(PVOID p) { UNREFERENCED_PARAMETER(p); KeWaitForSingleObject(&Kept, Executive, KernelMode, FALSE, NULL); }
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE h;
    PVOID thread, four[4];
    KEVENT e;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeMutex(&Kept, 0);
    KeReleaseMutex(&Kept, FALSE);
    PsCreateSystemThread(&h, THREAD_ALL_ACCESS, NULL, NULL, NULL, Owner, NULL);
    ObReferenceObjectByHandle(h, THREAD_ALL_ACCESS, NULL, KernelMode, &thread, NULL);
    ZwClose(h);
    KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, NULL);
    ObDereferenceObject(thread);
    NTSTATUS first = KeWaitForSingleObject(&Kept, Executive, KernelMode, FALSE, NULL);
    NTSTATUS again = KeWaitForSingleObject(&Kept, Executive, KernelMode, FALSE, NULL);
    DbgPrint("abandoned %x then %x\n", first, again);
    KeReleaseMutex(&Kept, FALSE);
    KeReleaseMutex(&Kept, FALSE);
    KeInitializeSemaphore(&Sem, 1, 1);
    DbgPrint("over limit %d state %d\n", KeReleaseSemaphore(&Sem, 0, 1, FALSE), KeReadStateSemaphore(&Sem));
    KeInitializeEvent(&e, NotificationEvent, TRUE);
    four[0] = four[1] = four[2] = four[3] = &e;
    DbgPrint("four %x\n", KeWaitForMultipleObjects(4, four, WaitAny, Executive, KernelMode, FALSE, NULL, NULL));
    ExInitializeFastMutex(&Fast);
    ExAcquireFastMutex(&Fast);
    ExAcquireFastMutex(&Fast);
    ExReleaseFastMutex(&Fast);
    ExReleaseFastMutex(&Fast);
    ExInitializeResourceLite(&Outside);
    ExAcquireResourceExclusiveLite(&Outside, TRUE);
    ExReleaseResourceLite(&Outside);
    ExReleaseResourceLite(&Outside);
    ExDeleteResourceLite(&Outside);
    ExInitializeResourceLite(&Left);
    KeLeaveCriticalRegion();
    return STATUS_SUCCESS;
}
"#;

fn assertion(text: &str) -> Finding {
    Finding::Assertion {
        message: text.to_string(),
    }
}

#[test]
fn mutex_semaphore_wait_and_resource_misuse_are_verifier_findings() {
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sync_misuse.c");
    std::fs::write(&src, MISUSE).unwrap();
    let so = build_c("sync_misuse", src, &[]);
    let host = host();
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(
        log,
        [
            "abandoned 80 then 0",
            "over limit 1 state 1",
            "four c000000d"
        ],
    );
    let report = driver.unload().unwrap();
    let not_owned = "KeReleaseMutex of a KMUTEX this thread does not own (STATUS_MUTANT_NOT_OWNED)";
    assert_eq!(
        report.findings,
        vec![
            assertion(not_owned),
            assertion("a system thread ended owning a KMUTEX (abandoned)"),
            assertion(
                "KeReleaseSemaphore beyond the semaphore's Limit (STATUS_SEMAPHORE_LIMIT_EXCEEDED)"
            ),
            assertion(
                "KeWaitForMultipleObjects: more than THREAD_WAIT_OBJECTS (3) objects and no WaitBlockArray"
            ),
            assertion("ExAcquireFastMutex of a FAST_MUTEX this thread owns (deadlock on Windows)"),
            assertion("ExReleaseFastMutex of a FAST_MUTEX this thread does not own"),
            assertion(
                "ExAcquireResourceExclusiveLite with normal kernel APCs enabled (call KeEnterCriticalRegion first)"
            ),
            assertion("ExReleaseResourceLite of an ERESOURCE this thread does not own"),
            assertion("KeLeaveCriticalRegion without KeEnterCriticalRegion"),
            Finding::ObjectsLeft {
                what: "ERESOURCE(s) not deleted at unload",
                count: 1,
            },
        ]
    );
}

const HELD: &str = r#"
#include <ntddk.h>
static KMUTEX Held, Released;
static void Unload(PDRIVER_OBJECT DriverObject) { UNREFERENCED_PARAMETER(DriverObject); }
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    DriverObject->DriverUnload = Unload;
    KeInitializeMutex(&Held, 0);
    KeInitializeMutex(&Released, 0);
    KeWaitForSingleObject(&Held, Executive, KernelMode, FALSE, NULL);
    KeWaitForSingleObject(&Held, Executive, KernelMode, FALSE, NULL);
    KeReleaseMutex(&Held, FALSE);
    KeWaitForSingleObject(&Released, Executive, KernelMode, FALSE, NULL);
    KeReleaseMutex(&Released, FALSE);
    return STATUS_SUCCESS;
}
"#;

#[test]
fn a_kmutex_still_held_at_unload_is_a_verifier_finding() {
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sync_held.c");
    std::fs::write(&src, HELD).unwrap();
    let so = build_c("sync_held", src, &[]);
    let host = host();
    let driver = host.load(&so).unwrap();
    let report = driver.unload().unwrap();
    assert_eq!(
        report.findings,
        vec![Finding::ObjectsLeft {
            what: "KMUTEX(es) still held",
            count: 1,
        }]
    );
}
