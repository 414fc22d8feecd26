//! ExInitializeDriverRuntime's documented effect (wdk-runtime.md §2): built with POOL_NX_OPTIN, a
//! driver's `NonPagedPool` is its ExDefaultNonPagedPoolType, NonPagedPoolExecute until
//! `ExInitializeDriverRuntime(DrvRtPoolNxOptIn)` switches it to NonPagedPoolNx (so a lookaside
//! list's allocate routine then sees the NX type); the host records the opt-in and counts the
//! driver's executable non-paged requests.

use std::path::Path;
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, HostConfig, PoolTypeCounts};

const SOURCE: &str = r#"
#undef POOL_NX_OPTIN_AUTO
#define POOL_NX_OPTIN 1
#include <ntddk.h>
#define TAG 'xNlP'
static PVOID NTAPI Alloc(POOL_TYPE t, SIZE_T n, ULONG tag, PLOOKASIDE_LIST_EX l)
{
    DbgPrint("nx: lookaside allocates type %d\n", (int)t);
    return ExAllocatePoolWithTag(t, n, tag);
}
static VOID NTAPI Free(PVOID p, PLOOKASIDE_LIST_EX l) { ExFreePoolWithTag(p, TAG); }
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    PVOID early = ExAllocatePoolWithTag(NonPagedPool, 8, TAG);
    ExFreePoolWithTag(early, TAG);
#ifdef OPT_IN
    ExInitializeDriverRuntime(DrvRtPoolNxOptIn);
#endif
    DbgPrint("nx: NonPagedPool is %d\n", (int)NonPagedPool);
    PVOID a = ExAllocatePoolWithTag(NonPagedPool, 32, TAG);
    PVOID b = ExAllocatePoolWithTag(PagedPool, 32, TAG);
    PVOID c = ExAllocatePoolWithTag(NonPagedPoolNx, 32, TAG);
    DbgPrint("nx: allocated %u\n", a != NULL && b != NULL && c != NULL);
    ExFreePoolWithTag(a, TAG);
    ExFreePoolWithTag(b, TAG);
    ExFreePoolWithTag(c, TAG);
    static LOOKASIDE_LIST_EX list;
    NTSTATUS s = ExInitializeLookasideListEx(&list, Alloc, Free, NonPagedPool, 0, 64, TAG, 0);
    PVOID e = NT_SUCCESS(s) ? ExAllocateFromLookasideListEx(&list) : NULL;
    if (e) ExFreeToLookasideListEx(&list, e);
    ExDeleteLookasideListEx(&list);
    return STATUS_SUCCESS;
}
"#;

fn run(name: &str, defines: Vec<String>) -> (Vec<String>, PoolTypeCounts) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, SOURCE).unwrap();
    let so = dir.join(format!("{name}.so"));
    build(&BuildOptions {
        sources: vec![src],
        output: so.clone(),
        defines,
        ..BuildOptions::default()
    })
    .unwrap();
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let counts = driver.pool_types();
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let log = host.drain_log().into_iter().map(|l| l.text).collect();
    (log, counts)
}

#[test]
fn nx_opt_in_switches_nonpaged_pool_to_nx() {
    let (log, counts) = run("pool_nx_in", vec!["OPT_IN".into()]);
    assert_eq!(
        log,
        [
            "nx: NonPagedPool is 512",
            "nx: allocated 1",
            "nx: lookaside allocates type 512"
        ]
    );
    assert_eq!(
        counts,
        PoolTypeCounts {
            nx_opt_in: true,
            // Only the request made before the opt-in.
            executable: 1,
        }
    );
}

#[test]
fn without_opt_in_executable_requests_are_counted() {
    let (log, counts) = run("pool_nx_out", Vec::new());
    assert_eq!(
        log,
        [
            "nx: NonPagedPool is 0",
            "nx: allocated 1",
            "nx: lookaside allocates type 0"
        ]
    );
    assert_eq!(
        counts,
        PoolTypeCounts {
            nx_opt_in: false,
            // The early and the direct request, the list, and the routine's request.
            executable: 4,
        }
    );
}
