//! The asynchronous built-in callouts from a policy file, end to end through `wfpctl replay`
//! (issue 12): a raw-IP capture written with wfp-pcap's writer, a policy naming the built-in with
//! its parameters, and the `--permitted` capture read back: `wfp.pending-inspector` (connections
//! held until the host's worker decides, packets re-injected as clones) and `wfp.stream-editor`
//! (a pattern replaced by bytes of another length, inline and out-of-band).

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use wfp_pcap::{CaptureReader, CaptureWriter, LinkType};
use wfp_shim::wire::build::ip_packet;
use wfp_shim::wire::TcpFlags;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 80);

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wfpctl-async-callouts-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("tmp dir");
    dir.join(name)
}

fn tcp(src: SocketAddr, dst: SocketAddr, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut seg = Vec::new();
    seg.extend_from_slice(&src.port().to_be_bytes());
    seg.extend_from_slice(&dst.port().to_be_bytes());
    seg.extend_from_slice(&seq.to_be_bytes());
    seg.extend_from_slice(&ack.to_be_bytes());
    seg.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    seg.extend_from_slice(payload);
    ip_packet(src.ip(), dst.ip(), 6, &seg).expect("ipv4")
}

/// An HTTP-like exchange: handshake, a request carrying "foo", the reply.
fn conversation() -> Vec<Vec<u8>> {
    vec![
        tcp(CLIENT, SERVER, 1000, 0, SYN, b""),
        tcp(SERVER, CLIENT, 5000, 1001, SYN | ACK, b""),
        tcp(CLIENT, SERVER, 1001, 5001, ACK, b""),
        tcp(
            CLIENT,
            SERVER,
            1001,
            5001,
            PSH_ACK,
            b"GET /foo HTTP/1.0\r\n\r\n",
        ),
        tcp(
            SERVER,
            CLIENT,
            5001,
            1022,
            PSH_ACK,
            b"HTTP/1.0 200 OK\r\n\r\n",
        ),
    ]
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

/// Runs `wfpctl replay` on `packets` with `policy`; the summary, the verdict lines and the IP
/// packets of `--permitted`.
fn replay(name: &str, packets: &[Vec<u8>], policy: &str) -> (Json, Vec<Json>, Vec<Vec<u8>>) {
    let capture = write_capture(&format!("{name}.pcap"), packets);
    replay_capture(name, &capture, policy, "10.0.0.1/32")
}

/// Runs `wfpctl replay` on the capture file `capture` (local network `local`).
fn replay_capture(
    name: &str,
    capture: &Path,
    policy: &str,
    local: &str,
) -> (Json, Vec<Json>, Vec<Vec<u8>>) {
    let policy_path = tmp(&format!("{name}.toml"));
    fs::write(&policy_path, policy).expect("policy");
    let permitted = tmp(&format!("{name}-permitted.pcap"));
    let verdicts = tmp(&format!("{name}.jsonl"));
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args([
            "replay",
            &s(capture),
            "--policy",
            &s(&policy_path),
            "--json",
        ])
        .args(["--local", local, "--no-progress"])
        .args(["--permitted", &s(&permitted), "--verdicts", &s(&verdicts)])
        .output()
        .expect("run wfpctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wfpctl failed: {stderr}");
    let summary: Json = serde_json::from_slice(&out.stdout).expect("json summary");
    let lines = fs::read_to_string(&verdicts)
        .expect("verdicts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let mut reader = CaptureReader::open(&permitted).expect("permitted capture");
    let mut ip = Vec::new();
    while let Some(p) = reader.next_packet().expect("reads") {
        ip.push(p.decode_link().expect("raw ip").network.to_vec());
    }
    (summary, lines, ip)
}

/// (seq, ack, payload) of an IPv4 TCP packet, checking both checksums.
fn tcp_fields(p: &[u8]) -> (u32, u32, Vec<u8>) {
    let parsed = wfp_shim::wire::parse(p).expect("valid packet and checksums");
    let wfp_shim::wire::Transport::Tcp(t) = &parsed.transport else {
        panic!("not TCP")
    };
    (t.seq, t.ack, p[t.payload.clone()].to_vec())
}

const INSPECTOR: &str = r#"
[builtin."wfp.pending-inspector"]
remote = "192.0.2.7"
port = 80
decision = "DECISION"

[[filter]]
name = "inspect connects"
layer = "ALE_AUTH_CONNECT_V4"
action = "CALLOUT_TERMINATING"
callout = "wfp.pending-inspector"

[[filter]]
name = "inspect packets"
layer = "OUTBOUND_TRANSPORT_V4"
action = "CALLOUT_TERMINATING"
callout = "wfp.pending-inspector"
"#;

#[test]
fn pending_inspector_allow_reinjects_every_outbound_packet() {
    let packets = conversation();
    let (summary, lines, out) = replay(
        "inspect-allow",
        &packets,
        &INSPECTOR.replace("DECISION", "allow"),
    );
    // Outbound packets come out as injected clones (same bytes), inbound ones as captured.
    assert_eq!(out, packets, "{summary}");
    let injected = lines
        .iter()
        .filter(|l| l["origin"]["kind"] == "injected")
        .count();
    assert_eq!(injected, 3);
    assert!(lines
        .iter()
        .any(|l| l["reason"] == "pended" && l["action"] == "ABSORB"));
}

#[test]
fn pending_inspector_block_refuses_the_connection() {
    let (summary, lines, out) = replay(
        "inspect-block",
        &conversation(),
        &INSPECTOR.replace("DECISION", "block"),
    );
    assert!(out.is_empty(), "nothing permitted: {summary}");
    assert!(lines.iter().all(|l| l["action"] != "PERMIT"));
}

const EDITOR: &str = r#"
[builtin."wfp.stream-editor"]
pattern = "foo"
replacement = "quux!"
port = 80
mode = "MODE"

[[filter]]
name = "edit http"
layer = "STREAM_V4"
action = "CALLOUT_TERMINATING"
callout = "wfp.stream-editor"
"#;

fn check_edited(out: &[Vec<u8>]) {
    let fields: Vec<_> = out.iter().map(|p| tcp_fields(p)).collect();
    let request = fields
        .iter()
        .find(|f| f.2.starts_with(b"GET"))
        .expect("the request");
    assert_eq!(request.2, b"GET /quux! HTTP/1.0\r\n\r\n".to_vec());
    assert_eq!(request.0, 1001);
    let reply = fields
        .iter()
        .find(|f| f.2.starts_with(b"HTTP"))
        .expect("the reply");
    assert_eq!(
        reply.1,
        1022 + 2,
        "the reply's acknowledgement follows the edit"
    );
}

#[test]
fn stream_editor_inline_rewrites_the_request() {
    let (summary, lines, out) = replay(
        "edit-inline",
        &conversation(),
        &EDITOR.replace("MODE", "inline"),
    );
    assert_eq!(out.len(), 5, "{summary}");
    check_edited(&out);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["origin"]["kind"] == "edited")
            .count(),
        2,
        "the request and the renumbered reply"
    );
}

#[test]
fn stream_editor_out_of_band_injects_the_edited_request() {
    let (summary, lines, out) = replay(
        "edit-oob",
        &conversation(),
        &EDITOR.replace("MODE", "out-of-band"),
    );
    assert_eq!(out.len(), 5, "{summary}");
    check_edited(&out);
    assert!(lines
        .iter()
        .any(|l| l["origin"]["kind"] == "injected" && l["origin"]["function"] == "stream"));
}

const INBOUND_INSPECTOR: &str = r#"
[builtin."wfp.pending-inspector"]
remote = "10.77.0.2"
decision = "allow"

[[filter]]
name = "inspect inbound connections"
layer = "ALE_AUTH_RECV_ACCEPT_V4"
action = "CALLOUT_TERMINATING"
callout = "wfp.pending-inspector"

[[filter]]
name = "inspect inbound packets"
layer = "INBOUND_TRANSPORT_V4"
action = "CALLOUT_TERMINATING"
callout = "wfp.pending-inspector"
"#;

/// The IP packets of a capture.
fn read_ip(path: &Path) -> Vec<Vec<u8>> {
    let mut reader = CaptureReader::open(path).expect("capture");
    let mut ip = Vec::new();
    while let Some(p) = reader.next_packet().expect("reads") {
        if let Ok(l) = p.decode_link() {
            ip.push(l.network.to_vec());
        }
    }
    ip
}

/// The bundled capture's inbound connections from the lab server (10.77.0.2 → this host
/// 10.77.0.1, TCP): every packet of them, in capture order.
fn inbound_connection_packets(capture: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let lab = IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2));
    let mut ports = Vec::new();
    let mut out = Vec::new();
    for p in capture {
        let Ok(parsed) = wfp_shim::wire::parse(p) else {
            continue;
        };
        let wfp_shim::wire::Transport::Tcp(t) = &parsed.transport else {
            continue;
        };
        if parsed.ip.src != lab {
            continue;
        }
        let syn_only = t.flags.contains(TcpFlags::SYN) && !t.flags.contains(TcpFlags::ACK);
        if syn_only && !ports.contains(&t.src_port) {
            ports.push(t.src_port);
        }
        if ports.contains(&t.src_port) {
            out.push(p.clone());
        }
    }
    out
}

/// §10.1 RECV_ACCEPT + §10.4 with the bundled real capture (examples/replay, packets 82–94: an
/// inbound SSH-like connection and an inbound SYN to a closed port, both from the lab server):
/// the inspector pends each inbound connection, clones its SYN (INBOUND layers give the payload:
/// the clone is retreated to the IP header) and, allowed, re-injects it with
/// FwpsInjectTransportReceiveAsync0; every later inbound packet of those connections is absorbed
/// and re-injected as a retreated clone. The `--permitted` capture holds each of those packets
/// exactly once, byte for byte as captured (headers included), tagged transport-receive.
#[test]
fn pending_inspector_reinjects_inbound_packets_of_the_bundled_capture_whole() {
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/replay/capture.pcap");
    let input = read_ip(&capture);
    let inbound = inbound_connection_packets(&input);
    assert!(inbound.len() >= 6, "the capture's inbound connections");
    let (summary, lines, out) = replay_capture(
        "inspect-inbound",
        &capture,
        INBOUND_INSPECTOR,
        "10.77.0.1/32",
    );
    for p in &inbound {
        let n = out.iter().filter(|o| *o == p).count();
        assert_eq!(
            n,
            1,
            "inbound packet {:?} written {n} times: {summary}",
            tcp_fields(p)
        );
    }
    let reinjected = lines
        .iter()
        .filter(|l| {
            l["origin"]["kind"] == "injected" && l["origin"]["function"] == "transport-receive"
        })
        .count();
    assert_eq!(reinjected, inbound.len(), "{summary}");
    let pended = lines.iter().filter(|l| l["reason"] == "pended").count();
    assert_eq!(pended, 2, "the two inbound SYNs: {summary}");
    // Everything else in the capture is unaffected: the permitted capture is the input's IP
    // packets with the inbound ones moved to where they were re-injected.
    let ip = input
        .iter()
        .filter(|p| matches!(p.first().map(|b| b >> 4), Some(4 | 6)))
        .count();
    assert_eq!(out.len(), ip, "{summary}");
}

const MONITOR: &str = r#"
[[filter]]
name = "monitor connections"
layer = "ALE_FLOW_ESTABLISHED_V4"
action = "CALLOUT_INSPECTION"
callout = "wfp.connection-monitor"

[[filter]]
name = "monitor bytes"
layer = "STREAM_V4"
action = "CALLOUT_INSPECTION"
callout = "wfp.connection-monitor"
"#;

/// `wfp.connection-monitor`: its table (per flow: direction, process, user, bytes each way,
/// finished through flowDeleteFn by the end of the capture) is in the `--json` summary and in
/// the text summary. A capture knows no socket owners, so process and user are empty.
#[test]
fn connection_monitor_table_is_in_the_replay_summary() {
    let (summary, _, _) = replay("monitor", &conversation(), MONITOR);
    let list = summary["connection_monitor"]
        .as_array()
        .expect("connection_monitor list");
    assert_eq!(list.len(), 1, "{summary}");
    let c = &list[0];
    assert_eq!(c["protocol"], 6);
    assert_eq!(c["direction"], "Outbound");
    assert_eq!(c["outbound_bytes"], 21, "the request");
    assert_eq!(c["inbound_bytes"], 19, "the reply");
    assert_eq!(c["layer"], "ALE_FLOW_ESTABLISHED_V4");
    assert!(c["process_path"].is_null() && c["user"].is_null());
    assert_eq!(c["local"], "10.0.0.1:40000");
    assert_eq!(c["remote"], "192.0.2.7:80");

    // The text summary lists it too.
    let capture = write_capture("monitor-text.pcap", &conversation());
    let policy = tmp("monitor-text.toml");
    fs::write(&policy, MONITOR).expect("policy");
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(["replay", capture.to_str().expect("utf8"), "--policy"])
        .arg(&policy)
        .args(["--local", "10.0.0.1/32", "--no-progress"])
        .output()
        .expect("run wfpctl");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text
        .find("connection monitor (wfp.connection-monitor): 1 connections")
        .unwrap_or_else(|| panic!("no connection monitor section:\n{text}"));
    let section: Vec<&str> = text[at..].lines().take(3).collect();
    assert!(
        section[1].contains("process") && section[1].contains("in B"),
        "{section:?}"
    );
    let row = section[2];
    assert!(row.contains("tcp") && row.contains("outbound"), "{row}");
    let last: Vec<&str> = row.split_whitespace().rev().take(2).collect();
    assert_eq!(last, ["19", "21"], "out 21 B, in 19 B: {row}");
}
