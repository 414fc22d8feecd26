//! C drivers built by `wfp_ffi::compile::build`, loaded into a host over a real engine and driven
//! by the real packet pipeline (wfp-shim) over examples/replay/capture.pcap.

#[path = "support/build.rs"]
mod builder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildError, BuildOptions};
use wfp_ffi::{DriverHost, Finding, HostConfig};
use wfp_pcap::{CaptureReader, NetworkProtocol};
use wfp_shim::{PacketContext, PacketDirection, Shim, ShimConfig, Timestamp};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build_driver(name: &str, sources: &[PathBuf]) -> PathBuf {
    builder::driver(name, sources, &[], &[])
}

/// Replays the example capture through `engine` (10.77.0.1 is the local host), ending every flow.
fn replay(engine: &Arc<Engine>, host: &DriverHost) -> usize {
    let mut config = ShimConfig {
        local_networks: vec![("10.77.0.1".parse().unwrap(), 32)],
        ..ShimConfig::default()
    };
    config.parse.verify_ipv4_checksum = false;
    let mut shim = Shim::new(engine.clone(), config);
    let mut reader = CaptureReader::open(root().join("examples/replay/capture.pcap")).unwrap();
    let mut n = 0;
    while let Some(p) = reader.next_packet_ref().unwrap() {
        let Ok(l3) = p.decode_link() else { continue };
        if !matches!(l3.protocol, NetworkProtocol::Ipv4 | NetworkProtocol::Ipv6) {
            continue;
        }
        host.set_time(p.timestamp_ns);
        let now = Timestamp::from_nanos(p.timestamp_ns);
        if shim.poll_timeout().is_some_and(|t| t <= now) {
            shim.handle_timeout(now);
        }
        let _v = shim.handle_packet(
            now,
            PacketDirection::Infer,
            l3.network,
            &PacketContext::default(),
        );
        n += 1;
    }
    shim.abort_all();
    n
}

#[test]
fn flow_monitor_counts_bytes_per_flow_and_cleans_up() {
    let so = build_driver(
        "flowmon",
        &[root().join("examples/drivers/flowmon/flowmon.c")],
    );
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    // DriverEntry added its sublayer, three callouts and three filters in one transaction.
    assert_eq!(engine.filters().len(), 3);
    assert_eq!(engine.callouts().len(), 3);
    let packets = replay(&engine, &host);
    assert!(packets > 10);
    assert_eq!(
        engine.flow_context_count(),
        0,
        "abort_all ran every flowDeleteFn"
    );
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(
        engine.filters().is_empty(),
        "the dynamic session's filters vanish at unload"
    );
    assert!(engine.callouts().is_empty());
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    let ends: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("flowmon: end flow"))
        .collect();
    assert!(!ends.is_empty(), "{log:#?}");
    // At least one TCP flow with payload in both directions, and a UDP flow.
    assert!(
        ends.iter()
            .any(|l| l.contains("proto 6 ") && !l.contains(" in=0 ") && !l.contains(" out=0 ")),
        "{ends:#?}"
    );
    assert!(ends.iter().any(|l| l.contains("proto 17 ")), "{ends:#?}");
    assert!(
        log.iter().any(|l| l == "flowmon: unloaded, 0 flows left"),
        "{log:#?}"
    );
    assert!(log[0].starts_with(
        "flowmon: DriverEntry \\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\flowmon"
    ));
}

#[test]
fn flow_contexts_left_at_unload_are_removed_by_the_driver_unload_routine() {
    // Unload while flows are live: the driver's unload removes their contexts (flowDeleteFn frees).
    let so = build_driver(
        "flowmon_live",
        &[root().join("examples/drivers/flowmon/flowmon.c")],
    );
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let config = ShimConfig {
        local_networks: vec![("10.77.0.1".parse().unwrap(), 32)],
        ..ShimConfig::default()
    };
    let mut shim = Shim::new(engine.clone(), config);
    let mut reader = CaptureReader::open(root().join("examples/replay/capture.pcap")).unwrap();
    while let Some(p) = reader.next_packet_ref().unwrap() {
        if let Ok(l3) = p.decode_link() {
            let _v = shim.handle_packet(
                Timestamp::from_nanos(p.timestamp_ns),
                PacketDirection::Infer,
                l3.network,
                &PacketContext::default(),
            );
        }
    }
    assert!(engine.flow_context_count() > 0);
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(engine.flow_context_count(), 0);
    shim.abort_all();
}

const LEAKY: &str = r#"
#include <ntddk.h>
static KSPIN_LOCK Lock;
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    PVOID kept = ExAllocatePool2(POOL_FLAG_NON_PAGED, 100, 'kaeL');
    PVOID freed = ExAllocatePoolWithTag(NonPagedPool, 32, 'kaeL');
    ExFreePoolWithTag(freed, 'kaeL');
    ExFreePoolWithTag(freed, 'kaeL');
    UNREFERENCED_PARAMETER(kept);
    KIRQL old;
    KeInitializeSpinLock(&Lock);
    KeAcquireSpinLock(&Lock, &old);
    DbgPrint("irql %u tag %s %ws %lu %I64u\n", KeGetCurrentIrql(), "x", L"wide", 4294967295u, 18446744073709551615ull);
    return STATUS_SUCCESS;
}
"#;

#[test]
fn verifier_reports_leaks_by_tag_and_site_double_frees_and_held_locks() {
    let src = builder::write_source("leaky", LEAKY);
    let so = build_driver("leaky", &[src]);
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let log = host.drain_log();
    assert_eq!(
        log[0].text,
        "irql 2 tag x wide 4294967295 18446744073709551615"
    );
    let report = driver.unload().unwrap();
    let f = &report.findings;
    assert!(
        f.iter().any(|x| matches!(x, Finding::DoubleFree { .. })),
        "{f:?}"
    );
    assert!(
        f.iter().any(|x| matches!(
            x,
            Finding::UnbalancedIrql {
                callback: "DriverEntry",
                entry: 0,
                exit: 2,
                locks_held: 1
            }
        )),
        "{f:?}"
    );
    let leak = f.iter().find_map(|x| match x {
        Finding::LeakedPool { tag, size, site } => Some((tag.clone(), *size, site.clone())),
        _ => None,
    });
    let (tag, size, site) = leak.expect("leak reported");
    assert_eq!((tag.as_str(), size), ("Leak", 100));
    assert!(site.ends_with("leaky.c:8"), "{site}");
}

#[test]
fn a_driver_calling_an_api_the_runtime_lacks_fails_to_build() {
    let src = builder::write_source(
        "missing",
        "#include <ntddk.h>\nvoid KeBugCheckEx(ULONG, ULONG_PTR, ULONG_PTR, ULONG_PTR, ULONG_PTR);\nNTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) { KeBugCheckEx(1, 0, 0, 0, 0); return 0; }\n",
    );
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("missing.so");
    let e = build(&BuildOptions {
        sources: vec![src],
        output: out,
        ..BuildOptions::default()
    })
    .unwrap_err();
    match e {
        BuildError::MissingImports { missing } => {
            assert_eq!(missing, vec!["KeBugCheckEx".to_string()])
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_failing_driver_entry_is_reported_and_cleaned_up() {
    let src = builder::write_source(
        "failing",
        "#include <ntddk.h>\nNTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) { PDEVICE_OBJECT dev; IoCreateDevice(d, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &dev); return STATUS_INSUFFICIENT_RESOURCES; }\n",
    );
    let so = build_driver("failing", &[src]);
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    match host.load(&so) {
        Err(wfp_ffi::LoadError::EntryFailed { status, .. }) => assert_eq!(status, 0xC000_009A),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("DriverEntry failed; load must fail"),
    }
}

#[test]
fn notify_vetoes_filters_by_rule_and_owns_per_filter_contexts() {
    let so = build_driver(
        "vetonotify",
        &[root().join("examples/drivers/vetonotify/vetonotify.c")],
    );
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let filters = engine.filters();
    assert_eq!(filters.len(), 1, "the catch-all filter was vetoed");
    assert_eq!(filters[0].name(), "block telnet");
    assert_ne!(
        filters[0].context, 0,
        "notifyFn stored its per-filter context"
    );
    // DELETE_FILTER waits until nothing holds the filter (§12): let go of it.
    drop(filters);
    replay(&engine, &host);
    let report = driver.unload().unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert!(report.findings.is_empty(), "{:?} {log:#?}", report.findings);
    assert!(engine.filters().is_empty());
    assert!(
        log.iter()
            .any(|l| l.starts_with("vetonotify: accept filter 1 field 5 match 0")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l == "vetonotify: FwpmFilterAdd0(block everything) = 0xc0220037 id 0"),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l == "vetonotify: expected a veto"),
        "{log:#?}"
    );
    // The capture's telnet attempt (10.77.0.1 → :23) met the filter: its SYN was blocked.
    assert!(
        log.iter()
            .any(|l| l.starts_with("vetonotify: delete filter 1 after ")
                && !l.ends_with(" 0 blocks")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l == "vetonotify: unloaded, 0 filter contexts live"),
        "{log:#?}"
    );
}
