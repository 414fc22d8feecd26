//! The asynchronous example C drivers (examples/drivers/{pendinspect,streamedit,dgramredirect})
//! through the real `wfpctl` binary (issue 13): `wfpctl driver build X.c -o X.so`, then
//! `wfpctl replay CAPTURE --driver X.so --driver-param NAME=VALUE ... --permitted OUT.pcap
//! --verify`. Exit code 0 with `--verify` means the Driver Verifier reported no finding; the
//! `--permitted` capture is read back with wfp-pcap and checked: edited / redirected bytes
//! present, checksums of every packet the drivers produced valid. The same inputs and driver
//! parameters as crates/wfp-ffi/tests/async_drivers.rs (which runs the drivers in-process).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use wfp_pcap::{CaptureReader, CaptureWriter, LinkType};
use wfp_shim::wire::build::ip_packet;
use wfp_shim::wire::Transport;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("c-drivers-{name}"))
}

/// The bundled capture (10.77.0.1 / fd77::1 is this host).
fn example_capture() -> PathBuf {
    root().join("examples/replay/capture.pcap")
}

/// `wfpctl driver build examples/drivers/NAME/NAME.c -o TMP/NAME-TAG.so`.
fn build_driver(name: &str, tag: &str) -> PathBuf {
    let so = tmp(&format!("{name}-{tag}.so"));
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(["driver", "build"])
        .arg(root().join(format!("examples/drivers/{name}/{name}.c")))
        .arg("-o")
        .arg(&so)
        .output()
        .expect("run wfpctl driver build");
    assert!(
        out.status.success(),
        "building {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

/// What a `wfpctl replay --driver ... --verify` run produced.
struct Run {
    /// Standard error: the drivers' DbgPrint lines and the Verifier's findings.
    stderr: String,
    /// The IP packets of the `--permitted` capture, in output order.
    permitted: Vec<Vec<u8>>,
}

/// Builds driver `name`, replays `capture` with it and `params` (`NAME=VALUE` each), asserts
/// exit code 0 (no Verifier finding under `--verify`) and reads the permitted capture back.
fn replay(name: &str, tag: &str, capture: &Path, params: &[&str]) -> Run {
    let so = build_driver(name, tag);
    let permitted = tmp(&format!("{name}-{tag}-permitted.pcap"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wfpctl"));
    cmd.arg("replay").arg(capture).arg("--driver").arg(&so);
    for p in params {
        cmd.args(["--driver-param", p]);
    }
    let out = cmd
        .args(["--local", "10.77.0.1/32", "--local", "fd77::1/128"])
        .arg("--permitted")
        .arg(&permitted)
        .args(["--verify", "--no-progress"])
        .output()
        .expect("run wfpctl replay");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "wfpctl replay {name}: {stderr}");
    assert!(!stderr.contains("--verify:"), "{stderr}");
    Run {
        stderr,
        permitted: read_ip(&permitted),
    }
}

/// The IP packets of a capture.
fn read_ip(path: &Path) -> Vec<Vec<u8>> {
    let mut reader = CaptureReader::open(path).expect("capture");
    let mut ip = Vec::new();
    while let Some(p) = reader.next_packet().expect("reads") {
        if let Ok(l) = p.decode_link() {
            if matches!(l.network.first().map(|b| b >> 4), Some(4 | 6)) {
                ip.push(l.network.to_vec());
            }
        }
    }
    ip
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn is_v4(p: &[u8]) -> bool {
    p.first().map(|b| b >> 4) == Some(4)
}

/// The packet parses with its IPv4 header and TCP/UDP checksums verified.
fn assert_checksums_valid(p: &[u8]) {
    if let Err(e) = wfp_shim::wire::parse(p) {
        panic!("invalid packet ({e:?}): {p:02x?}");
    }
}

/// The driver's unload line (its DbgPrint, on standard error).
fn unload_line<'a>(stderr: &'a str, prefix: &str) -> &'a str {
    stderr
        .lines()
        .find_map(|l| l.find(prefix).map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no {prefix:?} line:\n{stderr}"))
}

/// TCP destination port of an IPv4 packet.
fn tcp4_dport(p: &[u8]) -> Option<u16> {
    if !is_v4(p) || *p.get(9)? != 6 {
        return None;
    }
    let ihl = usize::from(p[0] & 0xF) * 4;
    Some(u16::from_be_bytes([*p.get(ihl + 2)?, *p.get(ihl + 3)?]))
}

/// pendinspect (Port=8080): both IPv4 connections to 8080 of the bundled capture are pended at
/// ALE_AUTH_CONNECT, decided and completed on the driver's worker thread (`on_worker=2`; the
/// replay's asynchronous point waits for it), reauthorized; their outbound packets are cloned,
/// absorbed and re-sent by the worker (FwpsInjectTransportSendAsync0: the clone starts at the
/// transport header, the data path builds the IP header) — every one reaches the permitted
/// capture with its addresses and TCP header and payload unchanged but for the TCP checksum (the
/// capture's are partial), checksums valid.
#[test]
fn pendinspect_via_wfpctl_pends_and_reinjects_clones() {
    let capture = example_capture();
    let input = read_ip(&capture);
    let run = replay("pendinspect", "allow", &capture, &["Port=8080"]);
    let out = &run.permitted;
    assert!(out.iter().any(|p| find(p, b"GET /file.txt HTTP/1.1")));
    assert!(out.iter().any(|p| find(p, b"GET / HTTP/1.1")));
    let sent: Vec<&Vec<u8>> = input
        .iter()
        .filter(|p| tcp4_dport(p) == Some(8080))
        .collect();
    assert!(!sent.is_empty());
    let tcp = |x: &[u8]| {
        let i = usize::from(x[0] & 0xF) * 4;
        [&x[12..20], &x[i..i + 16], &x[i + 18..]].concat()
    };
    for p in &sent {
        let o = out.iter().find(|o| is_v4(o) && tcp(o) == tcp(p));
        let o = o.unwrap_or_else(|| panic!("missing {p:02x?}"));
        assert_checksums_valid(o);
    }
    assert_eq!(
        unload_line(&run.stderr, "pendinspect: unloaded"),
        format!(
            "pendinspect: unloaded, pended=2 completed=2 on_worker=2 cloned={n} injected={n} failed=0 dropped=0",
            n = sent.len()
        )
    );
}

/// pendinspect with Block=1: the worker decides "block", the reauthorization blocks both
/// connections; no IPv4 packet to 8080
/// leaves, the IPv6 download (no V6 callouts) and the telnet SYN pass.
#[test]
fn pendinspect_via_wfpctl_blocks_by_parameter() {
    let run = replay("pendinspect", "block", &example_capture(), &["Block=1"]);
    let out = &run.permitted;
    assert!(!out.iter().any(|p| tcp4_dport(p) == Some(8080)));
    assert!(out.iter().any(|p| !is_v4(p) && find(p, b"GET /file.txt")));
    assert!(out.iter().any(|p| tcp4_dport(p) == Some(23)));
    assert_eq!(
        unload_line(&run.stderr, "pendinspect: unloaded"),
        "pendinspect: unloaded, pended=2 completed=2 on_worker=2 cloned=0 injected=0 failed=0 dropped=0"
    );
}

/// Replays the bundled capture through streamedit with `params`: both IPv4 HTTP responses carry
/// the (longer) replacement, no IPv4 packet keeps the pattern, the IPv6 download (no V6 callout)
/// is untouched, every IPv4 packet the driver produced has valid checksums. The unload line.
fn streamedit_replay(tag: &str, params: &[&str]) -> String {
    let capture = example_capture();
    let input = read_ip(&capture);
    let run = replay("streamedit", tag, &capture, params);
    let out = &run.permitted;
    let edited = out
        .iter()
        .filter(|p| is_v4(p) && find(p, b"HTTP/1.0 200 Edited-by-streamedit"))
        .count();
    assert_eq!(edited, 2, "both IPv4 responses edited");
    assert!(!out.iter().any(|p| is_v4(p) && find(p, b"HTTP/1.0 200 OK")));
    assert!(
        out.iter().any(|p| !is_v4(p) && find(p, b"HTTP/1.0 200 OK")),
        "the IPv6 download is not edited"
    );
    assert!(out
        .iter()
        .any(|p| is_v4(p) && find(p, b"Content-type: text/plain")));
    // Captured packets pass as captured (taken before checksum offload filled some in); what
    // the edits produced must verify.
    let captured: HashSet<&[u8]> = input.iter().map(Vec::as_slice).collect();
    let produced: Vec<&Vec<u8>> = out
        .iter()
        .filter(|p| is_v4(p) && !captured.contains(p.as_slice()))
        .collect();
    assert!(produced.len() >= 2, "{}", produced.len());
    for p in produced {
        assert_checksums_valid(p);
    }
    unload_line(&run.stderr, "streamedit: unloaded").to_string()
}

/// streamedit inline (PERMIT n, inject + BLOCK p, PERMIT m), pattern and replacement by parameter.
#[test]
fn streamedit_via_wfpctl_inline_replaces_the_pattern() {
    let line = streamedit_replay(
        "inline",
        &[
            "Pattern=sz:HTTP/1.0 200 OK",
            "Replacement=sz:HTTP/1.0 200 Edited-by-streamedit",
        ],
    );
    assert_eq!(
        line,
        "streamedit: unloaded, mode=inline replaced=2 injected=2 completed=2 failed=0 clones=0"
    );
}

/// streamedit out-of-band (Oob=1: clone everything, block it, inject the clone or an edited copy).
#[test]
fn streamedit_via_wfpctl_out_of_band_reinjects_edited_data() {
    let line = streamedit_replay("oob", &["Oob=1"]);
    assert!(
        line.starts_with("streamedit: unloaded, mode=oob replaced=2 "),
        "{line}"
    );
    assert!(line.contains(" failed=0 "), "{line}");
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// A UDP datagram, every checksum valid.
fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).expect("small");
    let mut seg = Vec::new();
    seg.extend_from_slice(&src.port().to_be_bytes());
    seg.extend_from_slice(&dst.port().to_be_bytes());
    seg.extend_from_slice(&len.to_be_bytes());
    seg.extend_from_slice(&[0, 0]);
    seg.extend_from_slice(payload);
    ip_packet(src.ip(), dst.ip(), 17, &seg).expect("ip packet")
}

fn write_capture(name: &str, packets: &[Vec<u8>]) -> PathBuf {
    let path = tmp(name);
    let mut w = CaptureWriter::create(&path, LinkType::RAW).expect("create");
    for (i, p) in packets.iter().enumerate() {
        let ts = 1_000_000_000 + i as u64 * 1_000_000;
        w.write_packet(ts, p.len() as u32, p).expect("write");
    }
    w.finish().expect("flush");
    path
}

/// (source, destination, payload) of a UDP packet, its checksums verified.
fn udp_fields(p: &[u8]) -> (SocketAddr, SocketAddr, Vec<u8>) {
    let parsed = wfp_shim::wire::parse(p).expect("valid packet and checksums");
    let Transport::Udp(u) = &parsed.transport else {
        panic!("not UDP: {p:02x?}")
    };
    (
        SocketAddr::new(parsed.ip.src, u.src_port),
        SocketAddr::new(parsed.ip.dst, u.dst_port),
        p[u.payload.clone()].to_vec(),
    )
}

/// dgramredirect with non-default parameters (Address=10.77.0.19 Port=5300 → ToAddress=10.77.0.3
/// ToPort=5353): the query leaves for the target, the target's reply arrives as from the peer
/// addressed; a query to the driver's default peer (10.77.0.9:53) is untouched, which shows the
/// parameters reached the driver.
#[test]
fn dgramredirect_via_wfpctl_redirects_by_parameters() {
    let client = addr("10.77.0.1:40000");
    let peer = addr("10.77.0.19:5300");
    let target = addr("10.77.0.3:5353");
    let default_peer = addr("10.77.0.9:53");
    let input = vec![
        udp(client, peer, b"query-one"),
        udp(target, client, b"answer-one"),
        udp(addr("10.77.0.1:40001"), default_peer, b"direct"),
    ];
    let capture = write_capture("dgramredirect-input.pcap", &input);
    let run = replay(
        "dgramredirect",
        "params",
        &capture,
        &[
            "Address=sz:10.77.0.19",
            "Port=5300",
            "ToAddress=sz:10.77.0.3",
            "ToPort=5353",
        ],
    );
    let fields: Vec<_> = run.permitted.iter().map(|p| udp_fields(p)).collect();
    assert_eq!(fields.len(), 3, "{fields:?}");
    let query = fields.iter().find(|f| f.2 == b"query-one").expect("query");
    assert_eq!((query.0, query.1), (client, target), "sent to the target");
    let answer = fields
        .iter()
        .find(|f| f.2 == b"answer-one")
        .expect("answer");
    assert_eq!((answer.0, answer.1), (peer, client), "seen from the peer");
    assert!(
        run.permitted.contains(&input[2]),
        "the query to the default peer passes unchanged"
    );
    assert_eq!(
        unload_line(&run.stderr, "dgramredirect: unloaded"),
        "dgramredirect: unloaded, redirected=1 rewritten=1 completed=2 failed=0"
    );
}
