//! microsoft/Windows-driver-samples' network/trans samples, each fetched verbatim at one commit
//! (every `sys/` file of the sample as stored at that commit, msnmntr's `inc/` headers beside
//! them; never committed here), built unchanged with `wfp_ffi::compile::build`, loaded and run
//! over examples/captures/loopback.pcap or synthesized datagrams with the filters the samples add
//! (or, for msnmntr, the filters its user-mode monitor.exe adds). The samples are looked up in
//! `$WFP_WDK_SAMPLES` (a `:`-separated list searched in order per sample), else
//! `/tmp/wdk-samples`; absent samples are skipped with a note. A `COMMIT` file beside a sample's
//! sources names the commit it was fetched at (docs/c-abi.md "WDK samples").
//!
//! The checks follow what each sample's own source does at its commit: ddproxy as first
//! published (97cf5197) rewrites the destination port of the reply it re-injects, where later
//! versions rewrite the source port — both are checked, chosen by the source text.

#[path = "support/samples.rs"]
mod samples;

use std::path::Path;
use std::sync::Arc;

use samples::{
    add_monitor_filters, build_dir, contains, ddproxy_inbound_rewrites_source, find_sample,
    loopback_packets, of_protocol, params, ports, replay, sample_dirs, tcp_stream, udp4,
    unload_applying,
};
use wfp_core::Engine;
use wfp_ffi::{DriverHost, HostConfig};
use wfp_shim::{Owner, PacketContext, Shim, ShimConfig};

fn new_host() -> (Arc<Engine>, DriverHost, Shim) {
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let shim = Shim::new(engine.clone(), ShimConfig::default());
    (engine, host, shim)
}

/// ddproxy: outbound UDP to the intercepted port leaves for the new port (cloned, rewritten and
/// send-injected by its worker thread); the reply from the new port is absorbed at the inbound
/// DATAGRAM_DATA filter, rewritten in a clone and receive-injected.
fn check_ddproxy(dir: &Path, so: &Path) {
    let opts = params(&[
        ("DestinationPortToIntercept", "dword:9000"),
        ("NewDestinationPort", "dword:9001"),
    ]);
    let (engine, host, mut shim) = new_host();
    let driver = host.load_with(so, &opts).unwrap();
    assert_eq!(
        engine.filters().len(),
        8,
        "2 flow-established + 2 datagram filters per family"
    );
    let mut out = replay(
        &mut shim,
        &host,
        &PacketContext::default(),
        &loopback_packets(),
    );
    let findings = unload_applying(driver, &mut shim, &host, &mut out);
    assert!(findings.is_empty(), "{findings:?}");
    let udp = of_protocol(&out.permitted, 17);
    let sent: Vec<_> = udp.iter().filter(|p| ports(p).0 == 41494).collect();
    assert_eq!(sent.len(), 1, "{udp:?}");
    assert_eq!(ports(sent[0]).1, 9001, "re-sent to the new port");
    assert!(contains(sent[0], b"datagram over loopback"));
    assert!(engine.filters().is_empty());

    let (_engine, host, mut shim) = new_host();
    let driver = host.load_with(so, &opts).unwrap();
    let packets = [
        (1_000_000, udp4(41494, 9000, b"ping to the proxied port")),
        (2_000_000, udp4(9001, 41494, b"pong from the new port")),
    ];
    let mut out = replay(&mut shim, &host, &PacketContext::default(), &packets);
    let findings = unload_applying(driver, &mut shim, &host, &mut out);
    assert!(findings.is_empty(), "{findings:?}");
    let udp = of_protocol(&out.permitted, 17);
    let seen: Vec<(u16, u16)> = udp.iter().map(|p| ports(p)).collect();
    let reply = if ddproxy_inbound_rewrites_source(dir) {
        (9000, 41494)
    } else {
        (9001, 9000)
    };
    assert_eq!(seen, vec![(41494, 9001), reply], "{udp:?}");
    assert!(contains(udp[1], b"pong from the new port"));
    assert_eq!(
        &udp[1][26..28],
        &[0, 0],
        "the clone's UDP checksum is cleared"
    );
}

/// stmedit: the out-of-band editor alone (MultipleCallouts=0) replaces StringToFind with StringX
/// in both directions; with both editors chained the inline editor then replaces StringX with
/// StringToReplace.
fn check_stmedit(_dir: &Path, so: &Path) {
    let base = [
        ("InspectionLocalPort", "dword:0"),
        ("InspectionRemotePort", "dword:8000"),
        ("StringToFind", "sz:loopback"),
        ("StringX", "sz:LOOPBACK"),
        ("StringToReplace", "sz:sunny"),
    ];
    // loopback.pcap's payloads end in "\n". stmedit keeps one flow context for both directions:
    // the reply's FIN (first in the capture) marks it terminating, and the out-of-band editor
    // then blocks the request's FIN for good (never re-injected; §9.2: it never reaches the
    // wire). With both editors the inline editor below therefore never gets the request's
    // NO_MORE_DATA and keeps its "\n" (see wdk_sources.rs).
    for (multiple, request, reply) in [
        (
            "dword:0",
            "request over LOOPBACK\n",
            "reply to request over LOOPBACK\n",
        ),
        (
            // The inline editor holds each direction's "\n" (NEED_MORE_DATA) until the FIN the
            // out-of-band editor re-injects reaches it (§9.2): the reply's does, the request's
            // never comes.
            "dword:1",
            "request over sunny",
            "reply to request over sunny\n",
        ),
    ] {
        let mut list = base.to_vec();
        list.push(("MultipleCallouts", multiple));
        let (engine, host, mut shim) = new_host();
        let driver = host.load_with(so, &params(&list)).unwrap();
        let mut out = replay(
            &mut shim,
            &host,
            &PacketContext::default(),
            &loopback_packets(),
        );
        let findings = unload_applying(driver, &mut shim, &host, &mut out);
        assert!(
            findings.is_empty(),
            "MultipleCallouts={multiple}: {findings:?}"
        );
        let tcp = of_protocol(&out.permitted, 6);
        assert_eq!(String::from_utf8_lossy(&tcp_stream(&tcp, 44548)), request);
        assert_eq!(String::from_utf8_lossy(&tcp_stream(&tcp, 8000)), reply);
        let fins = |sport: u16| {
            tcp.iter()
                .filter(|p| u16::from_be_bytes([p[20], p[21]]) == sport && p[33] & 0x01 != 0)
                .count()
        };
        assert_eq!(
            (fins(8000), fins(44548)),
            (1, 0),
            "MultipleCallouts={multiple}"
        );
        assert!(engine.filters().is_empty());
    }
}

/// msnmntr: monitor.exe's filters (added here with the engine API) and its enable IOCTL; the
/// stream callout logs the bytes each way of the flows it associated a context with.
fn check_msnmntr(_dir: &Path, so: &Path) {
    let (engine, host, mut shim) = new_host();
    let driver = host.load(so).unwrap();
    add_monitor_filters(&engine, &driver);
    let path: Vec<u8> = "\\device\\harddiskvolume1\\client.exe\0"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let ctx = PacketContext {
        owner: Some(Owner {
            app_id: Some(path.into()),
            ..Owner::default()
        }),
        ..PacketContext::default()
    };
    let mut out = replay(&mut shim, &host, &ctx, &loopback_packets());
    assert_eq!(out.other, 0, "a monitor permits everything");
    let findings = unload_applying(driver, &mut shim, &host, &mut out);
    assert!(findings.is_empty(), "{findings:?}");
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    for line in [
        "Creating flow for traffic",
        "22 bytes sent. Local Port: 44548 Remote Port: 8000.",
        "31 bytes received. Local Port: 44548 Remote Port: 8000.",
    ] {
        assert!(log.iter().any(|l| l.contains(line)), "{line}: {log:#?}");
    }
}

/// inspect: connections to RemoteAddressToInspect are pended; BlockTraffic=1 refuses them (no
/// packet permitted), BlockTraffic=0 lets them through (segments absorbed and re-injected).
fn check_inspect(_dir: &Path, so: &Path) {
    for (block, through) in [("dword:1", false), ("dword:0", true)] {
        let opts = params(&[
            ("RemoteAddressToInspect", "sz:127.0.0.1"),
            ("BlockTraffic", block),
        ]);
        let (engine, host, mut shim) = new_host();
        let driver = host.load_with(so, &opts).unwrap();
        assert_eq!(engine.filters().len(), 4, "inspect adds 4 IPv4 filters");
        let mut out = replay(
            &mut shim,
            &host,
            &PacketContext::default(),
            &loopback_packets(),
        );
        let findings = unload_applying(driver, &mut shim, &host, &mut out);
        assert!(findings.is_empty(), "BlockTraffic={block}: {findings:?}");
        let tcp = of_protocol(&out.permitted, 6);
        assert_eq!(
            tcp.iter().any(|p| contains(p, b"request over loopback")),
            through,
            "BlockTraffic={block}: {tcp:?}"
        );
        assert!(engine.filters().is_empty());
    }
}

/// A sample's behavioural check, given its directory and built image.
type Check = fn(&Path, &Path);

#[test]
fn verbatim_samples_build_unchanged_and_behave_as_their_source_says() {
    let Some(dirs) = sample_dirs() else { return };
    let checks: [(&str, Check); 4] = [
        ("ddproxy", check_ddproxy),
        ("stmedit", check_stmedit),
        ("msnmntr", check_msnmntr),
        ("inspect", check_inspect),
    ];
    for (sample, check) in checks {
        let Some(dir) = find_sample(&dirs, sample) else {
            eprintln!("note: sample {sample} not in {dirs:?}; skipping");
            continue;
        };
        let commit = std::fs::read_to_string(dir.join("COMMIT")).unwrap_or_default();
        eprintln!("sample {sample}: {} {}", dir.display(), commit.trim());
        let so = build_dir(&format!("verbatim-{sample}"), &dir);
        check(&dir, &so);
    }
}
