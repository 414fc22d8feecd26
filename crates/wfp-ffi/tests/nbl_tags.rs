//! Packet tagging across re-injection (WDK fwpsk.h, "Using Packet Tagging"; wfp-reference §10.4)
//! and FwpsOpenToken0, with `tests/c/drivers/rt_nbltag.c` on a real engine and the shim's packet
//! pipeline: a context associated with a clone goes with its transport-send injection
//! (ENTERED_NETIO), is on the indicated list each time the injected packet is classified again
//! (OUTBOUND_TRANSPORT below the injector, OUTBOUND_IPPACKET), on a clone of that list
//! (CLONED_VIA_WFP_API), back on the list in the completion (EXIT_NETIO), and removed with it
//! (CONTEXT_REMOVED). A packet nobody injected cannot be tagged.

#[path = "support/asan.rs"]
mod asan;
#[path = "support/samples.rs"]
#[expect(
    dead_code,
    reason = "the shared replay helpers; this test uses udp4 and replay"
)]
mod samples;
mod support;

#[path = "support/build.rs"]
mod builder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use samples::{replay, udp4};
use wfp_core::Engine;
use wfp_ffi::{DriverHost, Finding, HostConfig};
use wfp_shim::{PacketContext, Shim, ShimConfig};

fn build_driver(name: &str, defines: &[&str], flags: &[&str]) -> PathBuf {
    builder::driver(name, &[builder::source("rt_nbltag.c")], defines, flags)
}

/// Loads the driver, replays one outbound datagram, unloads; the log and the findings.
fn run(so: &Path) -> (Vec<String>, Vec<Finding>) {
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(so).unwrap();
    let mut shim = Shim::new(engine.clone(), ShimConfig::default());
    let packets = [(1_000_000, udp4(41494, 9000, b"tagged datagram"))];
    let out = replay(&mut shim, &host, &PacketContext::default(), &packets);
    let report = driver.unload().unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert!(
        out.permitted.iter().any(|p| p[20..] == packets[0].1[20..]),
        "not re-sent: {:02x?}\n{log:#?}",
        out.permitted
    );
    assert_eq!(engine.ledger_counts(), Default::default());
    (log, report.findings)
}

const EXPECTED: &[&str] = &[
    "tag: token 0x0 handle 1",
    "tag: token again 0x0 distinct 1",
    "tag: token no id 0xc000000d",
    "tag: token bad access 0xc000000d",
    "tag: token closed 0x0 0x0",
    "tag: second tag 0x0 distinct 1",
    "tag: list 0x0 retrieve-remove 0x0 55 then 0xc0000225",
    "tag: notify0 removed context 57 layer 7 tag-ok 1",
    "tag: removed everywhere 0x0 then 0xc0000225 0xc0000225",
    "tag: flags refused 0xc000000d",
    "tag: notify0 removed context 77 layer 8 tag-ok 0",
    "tag: untagged indicated 0xc000000d",
    "tag: ndis clone of indicated 1 parent 1 children 0 same length 1",
    "tag: clone tagged 0x0 context 1001",
    "tag: event entered context 1001 layer 16 new 0 tag-ok 1 nbl 1",
    "tag: transport again 0x0 context 1001",
    "tag: event cloned context 1001 layer 16 new 1 tag-ok 1 nbl 1",
    "tag: clone of injected 0x0 context 1001 pool 1 protocol 2",
    "tag: event removed context 1001 layer 16 new 0 tag-ok 1 nbl 1",
    "tag: ippacket 0x0 context 1001",
    "tag: event exit context 1001 layer 16 new 0 tag-ok 1 nbl 1",
    "tag: completed status 0x0 context 0x0 1001",
    "tag: event removed context 1001 layer 16 new 0 tag-ok 1 nbl 1",
    "tag: kept ndis clone a216 length 23",
    "tag: unloaded, sent=1",
];

#[test]
fn a_tag_on_an_injected_clone_is_seen_at_the_layers_after_the_injection() {
    let (log, findings) = run(&build_driver("rt_nbltag", &[], &[]));
    assert_eq!(log, EXPECTED);
    assert!(findings.is_empty(), "{findings:?}");
}

/// The body the valgrind test runs in a child process.
#[test]
#[ignore = "run by the valgrind and AddressSanitizer tests in a child process"]
fn nbltag_inner() {
    let Some(so) = std::env::var_os("WFP_FFI_NBLTAG_SO") else {
        return;
    };
    let (log, findings) = run(Path::new(&so));
    assert_eq!(log, EXPECTED);
    assert!(findings.is_empty(), "{findings:?}");
    println!("nbltag: done");
}

#[test]
fn nbl_tags_under_valgrind() {
    let so = build_driver("rt_nbltag_vg", &[], &["-O0", "-g"]);
    support::run_inner_under_valgrind("nbltag_inner", "WFP_FFI_NBLTAG_SO", &so, "nbltag: done");
}

#[test]
fn nbl_tags_with_address_sanitizer() {
    asan::run_inner("nbltag_inner", "WFP_FFI_NBLTAG_SO", "nbltag: done", || {
        build_driver(
            "rt_nbltag_asan",
            &[],
            &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
        )
    });
}

/// Verifier: FwpsOpenToken0 on a handle that is not one of the driver's engine sessions, a token
/// handle closed twice, one left open at unload, and a context associated with a tag the driver
/// was never given.
#[test]
fn token_misuse_is_reported() {
    let (log, findings) = run(&build_driver("rt_nbltag_misuse", &["MISUSE"], &[]));
    assert!(
        log.iter().any(|l| l == "tag: token bad engine 0xc0000008"),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l == "tag: token closed again 0xc0000008"),
        "{log:#?}"
    );
    assert!(
        findings.contains(&Finding::BadHandle {
            function: "ZwClose"
        }),
        "{findings:?}"
    );
    assert!(
        findings.contains(&Finding::BadHandle {
            function: "FwpsOpenToken0"
        }),
        "{findings:?}"
    );
    assert!(
        log.iter().any(|l| l == "tag: unknown tag 0xc000000d"),
        "{log:#?}"
    );
    assert!(
        findings.contains(&Finding::BadHandle {
            function: "FwpsNetBufferListAssociateContext"
        }),
        "{findings:?}"
    );
    assert!(
        findings.iter().any(
            |f| matches!(f, Finding::ObjectsLeft { what, count: 1 } if what.contains("handle"))
        ),
        "{findings:?}"
    );
}
