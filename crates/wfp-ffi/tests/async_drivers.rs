//! The asynchronous example drivers (examples/drivers/{dgramredirect,streamedit,pendinspect}),
//! built with `wfp_ffi::compile::build` (what `wfpctl driver build` runs), loaded into a host over
//! a real engine and replayed through the real packet pipeline (wfp-shim) the way
//! `wfpctl replay --driver` does: every packet, then `handle_async` (completions, reauthorizations,
//! injections). The permitted output is written to a pcap (LINKTYPE_RAW), read back and checked:
//! edited bytes present, addresses rewritten, IP/TCP/UDP checksums valid.
//!
//! The drivers read driver parameters (`DriverOptions`, what `--driver-param` gives) with
//! WdfDriverOpenParametersRegistryKey / WdfRegistryQuery*.

#[path = "support/asan.rs"]
mod asan;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, DriverOptions, HostConfig, ParamValue};
use wfp_pcap::{CaptureReader, CaptureWriter, LinkType, NetworkProtocol};
use wfp_shim::{PacketContext, PacketDirection, Shim, ShimConfig, Timestamp, Verdict};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Builds an example driver with `-D` defines (and extra compiler flags).
fn build_example(driver: &str, tag: &str, defines: &[&str], flags: &[&str]) -> PathBuf {
    let out = tmp(&format!("{driver}-{tag}.so"));
    build(&BuildOptions {
        sources: vec![root().join(format!("examples/drivers/{driver}/{driver}.c"))],
        output: out.clone(),
        defines: defines.iter().map(|d| (*d).to_string()).collect(),
        extra_flags: flags.iter().map(|f| (*f).to_string()).collect(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building {driver}: {e}"));
    out
}

/// One packet to replay: capture time, direction, IP bytes.
struct Input {
    ns: u64,
    dir: PacketDirection,
    bytes: Vec<u8>,
}

/// What a replay produced, in output order (captured packets' verdicts and async outputs).
#[derive(Default)]
struct Replay {
    permitted: Vec<Vec<u8>>,
    blocked: usize,
    absorbed: usize,
    injected: usize,
    released: usize,
}

/// Replays `inputs` through `engine` like `wfpctl replay`: after every packet the data path's
/// asynchronous point. Permitted packets go to `pcap` (LINKTYPE_RAW).
fn replay(engine: &Arc<Engine>, host: &DriverHost, inputs: &[Input], pcap: &Path) -> Replay {
    let mut config = ShimConfig {
        local_networks: vec![
            ("10.77.0.1".parse().unwrap(), 32),
            ("fd77::1".parse().unwrap(), 128),
        ],
        ..ShimConfig::default()
    };
    config.parse.verify_ipv4_checksum = false;
    let mut shim = Shim::new(engine.clone(), config);
    let mut out = Replay::default();
    let mut writer = CaptureWriter::create(pcap, LinkType::RAW).unwrap();
    for p in inputs {
        host.set_time(p.ns);
        let now = Timestamp::from_nanos(p.ns);
        if shim.poll_timeout().is_some_and(|t| t <= now) {
            shim.handle_timeout(now);
        }
        let v = shim.handle_packet(now, p.dir, &p.bytes, &PacketContext::default());
        match v.verdict {
            Verdict::Permit => {
                let b = v.edited.as_ref().map_or(&p.bytes, |e| &e.bytes).clone();
                writer.write_packet(p.ns, b.len() as u32, &b).unwrap();
                out.permitted.push(b);
            }
            Verdict::Block => out.blocked += 1,
            Verdict::Absorb => out.absorbed += 1,
        }
        // The asynchronous point: first what driver threads are deciding (bounded), as
        // `wfpctl replay` does.
        // A driver thread the reauthorization released: its work lands at this point too.
        for _ in 0..8 {
            host.settle(std::time::Duration::from_secs(5));
            shim.handle_async(now);
            if !host.wants_another_pass() {
                break;
            }
        }
        while let Some(o) = shim.poll_output() {
            match o.origin {
                wfp_shim::OutputOrigin::Injected { .. } => out.injected += 1,
                wfp_shim::OutputOrigin::Released { .. } => out.released += 1,
            }
            if o.verdict.verdict == Verdict::Permit {
                let b = o
                    .verdict
                    .edited
                    .as_ref()
                    .map_or(o.bytes.clone(), |e| e.bytes.clone());
                writer.write_packet(p.ns, b.len() as u32, &b).unwrap();
                out.permitted.push(b);
            }
        }
    }
    shim.abort_all();
    host.settle(std::time::Duration::from_secs(5));
    shim.handle_async(Timestamp::from_nanos(inputs.last().map_or(0, |p| p.ns)));
    writer.finish().unwrap();
    out
}

/// The IP packets of a pcap.
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet_ref().unwrap() {
        if let Ok(l3) = p.decode_link() {
            if matches!(l3.protocol, NetworkProtocol::Ipv4 | NetworkProtocol::Ipv6) {
                v.push(l3.network.to_vec());
            }
        }
    }
    v
}

/// The example capture's IP packets with their directions (10.77.0.1 / fd77::1 is this host).
fn example_capture() -> Vec<Input> {
    let mut r = CaptureReader::open(root().join("examples/replay/capture.pcap")).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet_ref().unwrap() {
        let Ok(l3) = p.decode_link() else { continue };
        if matches!(l3.protocol, NetworkProtocol::Ipv4 | NetworkProtocol::Ipv6) {
            v.push(Input {
                ns: p.timestamp_ns,
                dir: PacketDirection::Infer,
                bytes: l3.network.to_vec(),
            });
        }
    }
    v
}

fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn folds_to_zero(mut acc: u32) -> bool {
    while acc >> 16 != 0 {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc == 0xFFFF
}

/// IPv4 header and TCP/UDP checksums of `p` verify (UDP checksum 0 = none).
fn checksums_valid(p: &[u8]) -> bool {
    if p.first().map(|b| b >> 4) != Some(4) {
        return true;
    }
    let ihl = usize::from(p[0] & 0xF) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if !folds_to_zero(sum16(0, &p[..ihl])) || total > p.len() {
        return false;
    }
    let t = &p[ihl..total];
    let proto = p[9];
    if proto == 17 && t.get(6..8) == Some(&[0, 0]) {
        return true;
    }
    if proto != 6 && proto != 17 {
        return true;
    }
    let acc = sum16(0, &p[12..20]) + u32::from(proto) + t.len() as u32;
    folds_to_zero(sum16(acc, t))
}

/// An IPv4/UDP datagram with valid checksums.
fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let ulen = 8 + payload.len();
    let total = 20 + ulen;
    let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = !fold(sum16(0, &p));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(ulen as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let acc = sum16(sum16(0, &src), &dst) + 17 + ulen as u32;
    let c = !fold(sum16(acc, &u));
    u[6..8].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&u);
    p
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc as u16
}

fn load(so: &Path) -> (Arc<Engine>, DriverHost, wfp_ffi::Driver) {
    load_with(so, "")
}

/// Loads with driver parameters `NAME=VALUE,NAME=VALUE` (what `--driver-param` gives; read with
/// WdfRegistryQuery* from the Parameters key).
fn load_with(so: &Path, params: &str) -> (Arc<Engine>, DriverHost, wfp_ffi::Driver) {
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let options = DriverOptions {
        params: params
            .split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), ParamValue::parse(v)))
            .collect(),
    };
    let driver = host.load_with(so, &options).unwrap();
    (engine, host, driver)
}

fn log_of(host: &DriverHost) -> Vec<String> {
    host.drain_log().into_iter().map(|l| l.text).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// dgramredirect: a query to 10.77.0.9:53 goes to 10.77.0.2:5353; the reply from there comes back
/// as from 10.77.0.9:53; a query to another peer is untouched. Every injection completes and the
/// driver frees its lists, MDLs and pool in the completion function (no Verifier finding).
#[test]
fn dgramredirect_redirects_udp_and_rewrites_replies_back() {
    let so = build_example("dgramredirect", "t", &[], &[]);
    let (engine, host, driver) = load_with(&so, "ToPort=5353,ToAddress=sz:10.77.0.2");
    let client = [10, 77, 0, 1];
    let inputs = vec![
        Input {
            ns: 1_000,
            dir: PacketDirection::Outbound,
            bytes: udp4(client, 40000, [10, 77, 0, 9], 53, b"query-one"),
        },
        Input {
            ns: 2_000,
            dir: PacketDirection::Inbound,
            bytes: udp4([10, 77, 0, 2], 5353, client, 40000, b"answer-one"),
        },
        Input {
            ns: 3_000,
            dir: PacketDirection::Outbound,
            bytes: udp4(client, 40001, [10, 77, 0, 2], 53, b"direct"),
        },
    ];
    let pcap = tmp("dgramredirect-out.pcap");
    let r = replay(&engine, &host, &inputs, &pcap);
    assert_eq!(r.absorbed, 2, "the query and the reply were absorbed");
    assert_eq!(r.injected, 2);
    let out = read_pcap(&pcap);
    assert_eq!(out.len(), 3, "two injected packets and the direct query");
    for p in &out {
        assert!(checksums_valid(p), "{p:02x?}");
    }
    let query = out.iter().find(|p| find(p, b"query-one")).unwrap();
    assert_eq!(
        &query[12..20],
        &[10, 77, 0, 1, 10, 77, 0, 2],
        "sent to the target"
    );
    assert_eq!(u16::from_be_bytes([query[22], query[23]]), 5353);
    let answer = out.iter().find(|p| find(p, b"answer-one")).unwrap();
    assert_eq!(
        &answer[12..20],
        &[10, 77, 0, 9, 10, 77, 0, 1],
        "seen from the peer addressed"
    );
    assert_eq!(u16::from_be_bytes([answer[20], answer[21]]), 53);
    let direct = out.iter().find(|p| find(p, b"direct")).unwrap();
    assert_eq!(direct, &inputs[2].bytes);
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let log = log_of(&host);
    assert!(
        log.iter()
            .any(|l| l == "dgramredirect: unloaded, redirected=1 rewritten=1 completed=2 failed=0"),
        "{log:#?}"
    );
    assert!(engine.filters().is_empty());
    assert_eq!(engine.injection_handle_count(), 0);
    assert_eq!(engine.ledger_counts(), Default::default());
}

/// Replays the example capture through streamedit built in `mode` and checks the output pcap:
/// both IPv4 HTTP responses carry the (longer) replacement, no IPv4 packet keeps the pattern, the
/// IPv6 download (no V6 callout) is untouched, every IPv4 checksum verifies.
fn streamedit_replay(tag: &str, params: &str) -> Vec<String> {
    let so = build_example("streamedit", tag, &[], &[]);
    let (engine, host, driver) = load_with(&so, params);
    let pcap = tmp(&format!("streamedit-{tag}-out.pcap"));
    let inputs = example_capture();
    let r = replay(&engine, &host, &inputs, &pcap);
    assert!(r.permitted.len() > 40, "{}", r.permitted.len());
    let out = read_pcap(&pcap);
    let captured: std::collections::HashSet<&[u8]> =
        inputs.iter().map(|p| p.bytes.as_slice()).collect();
    let v4 = |p: &&Vec<u8>| p[0] >> 4 == 4;
    let edited = out
        .iter()
        .filter(v4)
        .filter(|p| find(p, b"HTTP/1.0 200 Edited-by-streamedit"))
        .count();
    assert_eq!(edited, 2, "both IPv4 responses edited");
    assert!(!out.iter().filter(v4).any(|p| find(p, b"HTTP/1.0 200 OK")));
    assert!(
        out.iter()
            .any(|p| p[0] >> 4 == 6 && find(p, b"HTTP/1.0 200 OK")),
        "the IPv6 download is not edited"
    );
    // What the edits produced has valid checksums (captured packets pass as captured: the
    // capture was taken before checksum offload filled some in).
    let produced: Vec<&Vec<u8>> = out
        .iter()
        .filter(v4)
        .filter(|p| !captured.contains(p.as_slice()))
        .collect();
    assert!(produced.len() >= 2, "{}", produced.len());
    for p in produced {
        assert!(checksums_valid(p), "{p:02x?}");
    }
    // The rest of each response is still there: the file body and the HTML page.
    assert!(out
        .iter()
        .filter(v4)
        .any(|p| find(p, b"Content-type: text/plain")));
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(engine.ledger_counts(), Default::default());
    assert_eq!(engine.injection_handle_count(), 0);
    log_of(&host)
}

/// streamedit inline (the WDK worked example: PERMIT n, inject + BLOCK p, PERMIT m).
#[test]
fn streamedit_inline_replaces_the_pattern_with_a_longer_one() {
    let log = streamedit_replay(
        "inline",
        "Pattern=sz:HTTP/1.0 200 OK,Replacement=sz:HTTP/1.0 200 Edited-by-streamedit",
    );
    let last = log
        .iter()
        .find(|l| l.starts_with("streamedit: unloaded"))
        .unwrap();
    assert_eq!(
        last,
        "streamedit: unloaded, mode=inline replaced=2 injected=2 completed=2 failed=0 clones=0"
    );
}

/// streamedit out-of-band (clone everything, block it, inject the clone or an edited copy).
#[test]
fn streamedit_out_of_band_clones_blocks_and_reinjects_edited_data() {
    let log = streamedit_replay("oob", "Oob=1");
    let last = log
        .iter()
        .find(|l| l.starts_with("streamedit: unloaded"))
        .unwrap();
    assert!(
        last.starts_with("streamedit: unloaded, mode=oob replaced=2 "),
        "{last}"
    );
    assert!(last.contains(" failed=0 "), "{last}");
}

/// TCP destination port of an IPv4 packet.
fn tcp4_dport(p: &[u8]) -> Option<u16> {
    if p.first()? >> 4 != 4 || *p.get(9)? != 6 {
        return None;
    }
    let ihl = usize::from(p[0] & 0xF) * 4;
    Some(u16::from_be_bytes([*p.get(ihl + 2)?, *p.get(ihl + 3)?]))
}

/// pendinspect, allow: both IPv4 connections to 8080 are pended at ALE_AUTH_CONNECT, decided and
/// completed by the driver's worker thread (`on_worker=2`: FwpsCompleteOperation0 ran on the
/// thread PsCreateSystemThread made), reauthorized; their outbound packets are cloned, absorbed,
/// queued and re-sent by the worker (FwpsInjectTransportSendAsync0 of the clone, which starts at
/// the transport header, §8.2) — the requests reach the output pcap as injected packets, behind
/// an IP header the data path built.
#[test]
fn pendinspect_pends_completes_and_reinjects_clones() {
    let so = build_example("pendinspect", "allow", &[], &[]);
    let (engine, host, driver) = load(&so);
    let inputs = example_capture();
    let pcap = tmp("pendinspect-allow-out.pcap");
    let r = replay(&engine, &host, &inputs, &pcap);
    assert!(
        r.released > 0,
        "held packets were released after the completion"
    );
    assert!(r.injected >= 10, "clones re-injected: {}", r.injected);
    let out = read_pcap(&pcap);
    assert!(out.iter().any(|p| find(p, b"GET /file.txt HTTP/1.1")));
    assert!(out.iter().any(|p| find(p, b"GET / HTTP/1.1")));
    // Every outbound packet to 8080 is in the output (as the clone): the same addresses and the
    // same TCP header and payload, not a byte stripped or added — but for the TCP checksum, which
    // the new IP header's builder computed (the capture's are partial, offloaded): valid.
    let sent: Vec<&Vec<u8>> = inputs
        .iter()
        .map(|p| &p.bytes)
        .filter(|p| tcp4_dport(p) == Some(8080))
        .collect();
    let same = |o: &Vec<u8>, p: &Vec<u8>| {
        let (io, ip) = (usize::from(o[0] & 0xF) * 4, usize::from(p[0] & 0xF) * 4);
        let t = |x: &[u8], i: usize| [x[i..i + 16].to_vec(), x[i + 18..].to_vec()].concat();
        o[12..20] == p[12..20] && t(o, io) == t(p, ip) && checksums_valid(o)
    };
    for p in &sent {
        assert!(out.iter().any(|o| same(o, p)), "missing {p:02x?}");
    }
    let stats = engine.pend_stats();
    assert_eq!(
        (stats.operations_pended, stats.operations_completed),
        (2, 2)
    );
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let log = log_of(&host);
    let last = log
        .iter()
        .find(|l| l.starts_with("pendinspect: unloaded"))
        .unwrap();
    assert_eq!(
        last,
        &format!(
            "pendinspect: unloaded, pended=2 completed=2 on_worker=2 cloned={n} injected={n} failed=0 dropped=0",
            n = sent.len()
        )
    );
    assert_eq!(engine.ledger_counts(), Default::default());
}

/// pendinspect, block (driver parameter Block=1): the worker decides "block" for both connections
/// and the reauthorization blocks them; no
/// IPv4 packet to 8080 leaves, the IPv6 download (no V6 callouts) and other traffic pass.
#[test]
fn pendinspect_blocks_by_parameter() {
    let so = build_example("pendinspect", "block", &[], &[]);
    let (engine, host, driver) = load_with(&so, "Block=1");
    let pcap = tmp("pendinspect-block-out.pcap");
    let r = replay(&engine, &host, &example_capture(), &pcap);
    assert_eq!(r.injected, 0);
    let out = read_pcap(&pcap);
    assert!(!out.iter().any(|p| tcp4_dport(p) == Some(8080)));
    assert!(out
        .iter()
        .any(|p| p[0] >> 4 == 6 && find(p, b"GET /file.txt")));
    assert!(
        out.iter().any(|p| tcp4_dport(p) == Some(23)),
        "telnet SYN passes"
    );
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let log = log_of(&host);
    assert!(log
        .iter()
        .any(|l| l == "pendinspect: unloaded, pended=2 completed=2 on_worker=2 cloned=0 injected=0 failed=0 dropped=0"));
}

/// The UDP exchange dgramredirect rewrites (a query to 10.77.0.9:53 and the target's reply).
fn dgram_inputs() -> Vec<Input> {
    let client = [10, 77, 0, 1];
    vec![
        Input {
            ns: 1_000,
            dir: PacketDirection::Outbound,
            bytes: udp4(client, 40000, [10, 77, 0, 9], 53, b"query-one"),
        },
        Input {
            ns: 2_000,
            dir: PacketDirection::Inbound,
            bytes: udp4([10, 77, 0, 2], 53, client, 40000, b"answer-one"),
        },
    ]
}

/// Every example driver: (name, -D defines, driver parameters `NAME=VALUE,...`).
const EXAMPLES: &[(&str, &[&str], &str)] = &[
    ("flowmon", &[], ""),
    ("vetonotify", &[], ""),
    ("pendinspect", &[], ""),
    ("pendinspect", &[], "Block=1"),
    ("streamedit", &[], ""),
    ("streamedit", &[], "Oob=1"),
    ("dgramredirect", &[], ""),
];

/// Builds every example driver with `flags`; returns `name=path` entries for the inner test.
fn build_examples(tag: &str, flags: &[&str]) -> String {
    EXAMPLES
        .iter()
        .enumerate()
        .map(|(i, (name, defines, params))| {
            let so = build_example(name, &format!("{tag}{i}"), defines, flags);
            format!("{name}={}|{params}", so.display())
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The body the memory checkers run (in a child process, see below): a full replay of every
/// driver listed in `WFP_FFI_MEMCHECK_DRIVERS`, unload, no Verifier finding.
#[test]
#[ignore = "run by the valgrind and AddressSanitizer tests in a child process"]
fn memcheck_inner_full_replay_of_every_example_driver() {
    let Ok(list) = std::env::var("WFP_FFI_MEMCHECK_DRIVERS") else {
        return;
    };
    for entry in list.split(';') {
        let (name, rest) = entry.split_once('=').unwrap();
        let (path, params) = rest.split_once('|').unwrap_or((rest, ""));
        let (engine, host, driver) = load_with(Path::new(path), params);
        let inputs = if name == "dgramredirect" {
            dgram_inputs()
        } else {
            example_capture()
        };
        let pcap = tmp(&format!("memcheck-{}.pcap", std::process::id()));
        let r = replay(&engine, &host, &inputs, &pcap);
        assert!(!r.permitted.is_empty(), "{name}");
        let report = driver.unload().unwrap();
        assert!(report.findings.is_empty(), "{name}: {:?}", report.findings);
        println!("memcheck: {name} replayed {} packets", inputs.len());
        let _ = std::fs::remove_file(&pcap);
    }
}

/// Every example driver, a full replay each, under valgrind memcheck: 0 errors, 0 bytes
/// definitely lost (skipped with a note when valgrind is absent).
#[test]
fn example_drivers_full_replay_under_valgrind() {
    let drivers = build_examples("vg", &["-O0", "-g"]);
    let Some(text) = support::run_inner_under_valgrind(
        "memcheck_inner_full_replay_of_every_example_driver",
        "WFP_FFI_MEMCHECK_DRIVERS",
        drivers,
        "1 passed",
    ) else {
        return;
    };
    assert_eq!(text.matches("memcheck: ").count(), EXAMPLES.len(), "{text}");
}

/// Every example driver built with -fsanitize=address (the runtime preloaded), a full replay each.
#[test]
fn example_drivers_full_replay_with_address_sanitizer() {
    let Some(text) = asan::run_inner(
        "memcheck_inner_full_replay_of_every_example_driver",
        "WFP_FFI_MEMCHECK_DRIVERS",
        "1 passed",
        || {
            build_examples(
                "asan",
                &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
            )
        },
    ) else {
        return;
    };
    assert_eq!(text.matches("memcheck: ").count(), EXAMPLES.len(), "{text}");
}
