//! `wfp.datagram-redirector` from a policy file, end to end through `wfpctl replay` (issue 12): a
//! raw-IP capture of UDP exchanges over IPv4 and IPv6 (the client addresses a peer, the target
//! answers), and the `--permitted` capture read back: the query leaves for the target, the answer
//! arrives from the peer the client addressed, both with valid checksums (compared byte for byte
//! with packets built from scratch), and the summary's `async` object counts the injections.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use wfp_pcap::{CaptureReader, CaptureWriter, LinkType};
use wfp_shim::wire::build::ip_packet;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wfpctl-redirect-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("tmp dir");
    dir.join(name)
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

const POLICY: &str = r#"
[builtin."wfp.datagram-redirector"]
address = "ADDRESS"
port = 53
to_address = "TO_ADDRESS"
to_port = 5353

[[filter]]
name = "redirect queries"
layer = "OUTBOUND_TRANSPORT_VX"
action = "CALLOUT_TERMINATING"
callout = "wfp.datagram-redirector"

[[filter]]
name = "rewrite answers"
layer = "INBOUND_IPPACKET_VX"
action = "CALLOUT_TERMINATING"
callout = "wfp.datagram-redirector"
"#;

/// Replays `packets` with the redirector for `peer` → `target`; the summary, the verdict lines
/// and the IP packets of `--permitted`.
fn replay(name: &str, packets: &[Vec<u8>], peer: SocketAddr, target: SocketAddr) -> Run {
    let capture = tmp(&format!("{name}.pcap"));
    let mut w = CaptureWriter::create(&capture, LinkType::RAW).expect("create");
    for (i, p) in packets.iter().enumerate() {
        let ts = 1_000_000_000 + i as u64 * 1_000_000;
        w.write_packet(ts, p.len() as u32, p).expect("write");
    }
    w.finish().expect("flush");
    let family = if peer.is_ipv4() { "V4" } else { "V6" };
    let policy = POLICY
        .replace("TO_ADDRESS", &target.ip().to_string())
        .replace("ADDRESS", &peer.ip().to_string())
        .replace("VX", family);
    let policy_path = tmp(&format!("{name}.toml"));
    fs::write(&policy_path, policy).expect("policy");
    let permitted = tmp(&format!("{name}-permitted.pcap"));
    let verdicts = tmp(&format!("{name}.jsonl"));
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(["replay", &s(&capture), "--policy", &s(&policy_path)])
        .args(["--json", "--no-progress", "--local", "10.0.0.1/32"])
        .args(["--local", "2001:db8::1/128"])
        .args(["--permitted", &s(&permitted), "--verdicts", &s(&verdicts)])
        .output()
        .expect("run wfpctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wfpctl failed: {stderr}");
    let mut reader = CaptureReader::open(&permitted).expect("permitted capture");
    let mut ip = Vec::new();
    while let Some(p) = reader.next_packet().expect("reads") {
        ip.push(p.decode_link().expect("raw ip").network.to_vec());
    }
    Run {
        summary: serde_json::from_slice(&out.stdout).expect("json summary"),
        lines: fs::read_to_string(&verdicts)
            .expect("verdicts")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect(),
        permitted: ip,
    }
}

struct Run {
    summary: Json,
    lines: Vec<Json>,
    permitted: Vec<Vec<u8>>,
}

fn redirects(client: &str, peer: &str, target: &str) {
    let (client, peer, target) = (addr(client), addr(peer), addr(target));
    let other = SocketAddr::new(peer.ip(), 123);
    let packets = [
        udp(client, peer, b"query"),
        udp(target, client, b"answer"),
        udp(client, other, b"untouched"),
    ];
    let r = replay(
        &format!("redirect-{}", client.port()),
        &packets,
        peer,
        target,
    );
    // Out: the untouched datagram as captured, the query to the target, the answer from the peer.
    let mut expected = vec![
        udp(client, target, b"query"),
        udp(peer, client, b"answer"),
        udp(client, other, b"untouched"),
    ];
    let mut got = r.permitted.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "{}", r.summary);
    let a = &r.summary["async"];
    assert_eq!(a["injected"]["network-send"], 1, "{a}");
    assert_eq!(a["injected"]["network-receive"], 1, "{a}");
    assert_eq!(a["injected_delivered"], 2, "{a}");
    let absorbed = r
        .lines
        .iter()
        .filter(|l| l["origin"].is_null() && l["action"] == "ABSORB")
        .count();
    assert_eq!(absorbed, 2, "the query and the answer as captured");
    assert!(r
        .lines
        .iter()
        .filter(|l| l["origin"]["kind"] == "injected")
        .all(|l| l["action"] == "PERMIT"));
}

#[test]
fn ipv4_queries_go_to_the_target_and_answers_come_from_the_peer() {
    redirects("10.0.0.1:40000", "192.0.2.7:53", "192.0.2.9:5353");
}

#[test]
fn ipv6_queries_go_to_the_target_and_answers_come_from_the_peer() {
    redirects(
        "[2001:db8::1]:40001",
        "[2001:db8:7::7]:53",
        "[2001:db8:9::9]:5353",
    );
}
