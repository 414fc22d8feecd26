//! NDIS clones, NET_BUFFER pools and copies from C (wdk-runtime.md §6; WDK nblapi.h):
//! `tests/c/drivers/rt_ndisclone.c` checks NdisAllocateCloneNetBufferList (new MDLs or the
//! original's, ParentNetBufferList, ChildRefCount, clones of clones and of Fwps lists),
//! NdisGetPoolFromNetBufferList, NdisAllocateNetBuffer / NdisAllocateNetBufferMdlAndData /
//! NdisFreeNetBuffer, NdisCopyFromNetBufferToNetBuffer and the LSO / checksum info views; run
//! plain, under valgrind memcheck and with AddressSanitizer; built with -DMISUSE it makes the
//! mistakes the Driver Verifier reports.

#[path = "support/asan.rs"]
mod asan;
mod support;

#[path = "support/build.rs"]
mod builder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::{DriverHost, Finding, HostConfig};

fn source() -> PathBuf {
    builder::source("rt_ndisclone.c")
}

fn build_driver(name: &str, defines: &[&str], flags: &[&str]) -> PathBuf {
    builder::driver(name, &[source()], defines, flags)
}

/// Loads the driver, checks every "ok" line and no "FAIL", unloads with no finding.
fn run_clean(so: &Path) {
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    let fails: Vec<&String> = log.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{fails:#?}\n{log:#?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("ok ")).count(),
        30,
        "{log:#?}"
    );
    assert_eq!(log.last().map(String::as_str), Some("done"));
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn ndis_clones_net_buffer_pools_and_copies_from_a_driver() {
    run_clean(&build_driver("rt_ndisclone", &[], &[]));
}

/// The body the memory checkers run in a child process.
#[test]
#[ignore = "run by the valgrind and AddressSanitizer tests in a child process"]
fn ndisclone_inner() {
    let Some(so) = std::env::var_os("WFP_FFI_NDISCLONE_SO") else {
        return;
    };
    run_clean(Path::new(&so));
    println!("ndisclone: done");
}

#[test]
fn ndis_clones_under_valgrind() {
    let so = build_driver("rt_ndisclone_vg", &[], &["-O0", "-g"]);
    support::run_inner_under_valgrind(
        "ndisclone_inner",
        "WFP_FFI_NDISCLONE_SO",
        &so,
        "ndisclone: done",
    );
}

#[test]
fn ndis_clones_with_address_sanitizer() {
    asan::run_inner(
        "ndisclone_inner",
        "WFP_FFI_NDISCLONE_SO",
        "ndisclone: done",
        || {
            build_driver(
                "rt_ndisclone_asan",
                &[],
                &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
            )
        },
    );
}

/// Verifier: a parent freed before its clone (the clone keeps a copy of its data; an NDIS and a
/// FwpsAllocateCloneNetBufferList0 one), a clone freed
/// with other flags and then twice, an unknown pool handle, a NET_BUFFER freed twice, and a clone,
/// a NET_BUFFER pool and a NET_BUFFER left at unload.
#[test]
fn ndis_clone_misuse_is_reported() {
    let so = build_driver("rt_ndisclone_misuse", &["MISUSE"], &[]);
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert!(log.iter().all(|l| !l.starts_with("FAIL")), "{log:#?}");
    let report = driver.unload().unwrap();
    let texts: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    let has = |needle: &str| texts.iter().any(|t| t.contains(needle));
    assert!(
        has("NdisFreeNetBufferList: list") && has("freed while 1 clone(s) of it still exist"),
        "{texts:#?}"
    );
    assert!(
        has("FwpsFreeNetBufferList0: list") && has("freed while 1 clone(s) of it still exist"),
        "{texts:#?}"
    );
    assert!(
        has("NdisFreeCloneNetBufferList: flags 0x2, the clone was allocated with 0x0"),
        "{texts:#?}"
    );
    let f = &report.findings;
    assert!(f.iter().any(|x| matches!(
        x,
        Finding::DoubleFree {
            what: "NdisFreeCloneNetBufferList",
            ..
        }
    )));
    assert!(f.iter().any(|x| matches!(
        x,
        Finding::BadHandle {
            function: "NdisAllocateCloneNetBufferList"
        }
    )));
    assert!(f.iter().any(|x| matches!(
        x,
        Finding::DoubleFree {
            what: "NdisFreeNetBuffer",
            ..
        }
    )));
    for what in [
        "NET_BUFFER pool(s) never freed",
        "NET_BUFFER(s) from NET_BUFFER pools never freed",
        "NBL pool(s) never freed",
    ] {
        assert!(
            f.contains(&Finding::ObjectsLeft { what, count: 1 }),
            "{what}: {texts:#?}"
        );
    }
}
