//! Replays of the tunnel captures made in network namespaces (`examples/captures/`, see
//! `make-captures.sh`): every tunnel decodes, the inner packets arrive on their tunnel interface,
//! and a policy that blocks the inner TCP port (on that interface) blocks exactly the frames of the
//! inner connection. Then the inner packets of one capture re-framed in the link-layer
//! encapsulations that have no live capture (PPPoE, MPLS, PBB, QinQ in an MPLS pseudowire, NFLOG,
//! Cisco HDLC) get the same verdicts.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use wfp_pcap::{decapsulate, CaptureReader, LinkType, PcapNgWriter};
use wfpctl::replay::TUNNEL_IFINDEX_BASE;

/// (capture, tunnel kind, key, inner IP version).
const TUNNELS: [(&str, &str, Option<u64>, u8); 4] = [
    ("gre.pcap", "GRE", Some(42), 4),
    ("vxlan.pcap", "VXLAN", Some(100), 4),
    ("ipip.pcap", "IPIP", None, 4),
    ("sit.pcap", "6in4", None, 6),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wfpctl-encap-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("tmp dir");
    dir.join(name)
}

/// A policy blocking TCP port 8000 at both ALE authorization layers, both IP versions, on the
/// interface `ifindex` (none: on any interface).
fn block_8000(ifindex: Option<u32>) -> PathBuf {
    let mut text = String::new();
    for (layer, port) in [
        ("ALE_AUTH_CONNECT", "IP_REMOTE_PORT"),
        ("ALE_AUTH_RECV_ACCEPT", "IP_LOCAL_PORT"),
    ] {
        for v in ["V4", "V6"] {
            let iface = ifindex
                .map(|i| format!(", {{ field = \"INTERFACE_INDEX\", value = {i} }}"))
                .unwrap_or_default();
            text.push_str(&format!(
                "[[filter]]\nname = \"no 8000 {layer}_{v}\"\nlayer = \"{layer}_{v}\"\naction = \"BLOCK\"\n\
                 condition = [ {{ field = \"{port}\", value = 8000 }}{iface} ]\n\n"
            ));
        }
    }
    let path = tmp(&format!("block-8000-{ifindex:?}.toml"));
    fs::write(&path, text).expect("policy");
    path
}

/// Replays `capture` with `policy`: the `--json` summary and the `--verdicts` lines.
fn replay(capture: &Path, policy: &Path) -> (Json, Vec<Json>) {
    let verdicts = tmp(&format!(
        "{}-{}.jsonl",
        capture.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
        policy.file_name().and_then(|n| n.to_str()).unwrap_or("p")
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(["replay", "--json", "--policy"])
        .arg(policy)
        .arg("--verdicts")
        .arg(&verdicts)
        .arg(capture)
        .output()
        .expect("run wfpctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let lines = fs::read_to_string(&verdicts)
        .expect("verdicts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (json, lines)
}

/// The innermost packet's TCP ports of every frame of `capture` (None: not TCP in a tunnel).
fn inner_tcp_ports(capture: &Path) -> Vec<Option<(u16, u16)>> {
    let mut reader = CaptureReader::open(capture).expect("capture");
    let mut ports = Vec::new();
    while let Some(p) = reader.next_packet().expect("reads") {
        let mut cur = p.decode_link().ok();
        let mut tunnelled = false;
        while let Some(t) = cur.as_ref().and_then(|l3| decapsulate(l3).ok().flatten()) {
            tunnelled = true;
            cur = Some(t.inner);
        }
        ports.push(
            cur.filter(|_| tunnelled)
                .and_then(|l3| tcp_ports(l3.network)),
        );
    }
    ports
}

fn tcp_ports(ip: &[u8]) -> Option<(u16, u16)> {
    let (proto, at) = match ip.first()? >> 4 {
        4 => (*ip.get(9)?, usize::from(ip.first()? & 0x0F) * 4),
        6 => (*ip.get(6)?, 40),
        _ => return None,
    };
    let port = |i: usize| Some(u16::from_be_bytes([*ip.get(at + i)?, *ip.get(at + i + 1)?]));
    (proto == 6).then_some((port(0)?, port(2)?))
}

#[test]
fn every_tunnel_capture_decodes_onto_its_tunnel_interface() {
    let policy = block_8000(Some(12345));
    for (file, kind, key, _) in TUNNELS {
        let capture = root().join("examples/captures").join(file);
        let (json, lines) = replay(&capture, &policy);
        let decoded = &json["encapsulations"]["decoded"][kind]["packets"];
        assert!(decoded.as_u64().is_some_and(|n| n >= 10), "{file}: {json}");
        assert_eq!(
            json["encapsulations"]["unsupported"],
            serde_json::json!({}),
            "{file}"
        );
        let ports = inner_tcp_ports(&capture);
        let mut tunnelled = 0;
        for (line, inner) in lines.iter().zip(&ports) {
            let tunnels = line["tunnels"].as_array().expect("tunnels");
            if inner.is_some() {
                assert_eq!(tunnels.len(), 1, "{file}: {line}");
            }
            if let Some(t) = tunnels.first() {
                tunnelled += 1;
                assert_eq!(t["kind"], kind, "{file}");
                assert_eq!(t["ifindex"], TUNNEL_IFINDEX_BASE, "{file}");
                assert_eq!(t["key"].as_u64(), key, "{file}");
            }
        }
        // Tunnel frames carrying ARP count as decoded but have no inner IP packet to classify.
        let decoded = decoded.as_u64().unwrap_or(0);
        let tcp = ports.iter().flatten().count() as u64;
        assert!(
            tcp < tunnelled && tunnelled <= decoded,
            "{file}: {tunnelled} of {decoded}"
        );
    }
}

#[test]
fn blocking_the_inner_port_on_the_tunnel_interface_blocks_the_inner_connection() {
    let on_tunnel = block_8000(Some(TUNNEL_IFINDEX_BASE));
    let elsewhere = block_8000(Some(7));
    for (file, _, _, version) in TUNNELS {
        let capture = root().join("examples/captures").join(file);
        let ports = inner_tcp_ports(&capture);
        let tcp_frames = ports.iter().flatten().count();
        assert!(tcp_frames >= 8, "{file}: {tcp_frames} inner TCP frames");
        let (json, lines) = replay(&capture, &on_tunnel);
        for (line, inner) in lines.iter().zip(&ports) {
            let expected = match inner {
                Some((a, b)) if *a == 8000 || *b == 8000 => "BLOCK",
                _ if line["action"] == "SKIPPED" => "SKIPPED",
                _ => "PERMIT",
            };
            assert_eq!(
                line["action"], expected,
                "{file} (IPv{version} inside): {line}"
            );
        }
        assert_eq!(
            json["verdicts"]["blocked"]["packets"].as_u64(),
            Some(tcp_frames as u64),
            "{file}"
        );
        // The same filter on another interface never matches the inner packets.
        let (json, _) = replay(&capture, &elsewhere);
        assert_eq!(json["verdicts"]["blocked"]["packets"], 0, "{file}");
    }
}

/// The inner IPv4 packets of ipip.pcap re-framed in every link-layer encapsulation.
fn reframed_capture() -> (PathBuf, Vec<Option<(u16, u16)>>) {
    let mut reader =
        CaptureReader::open(root().join("examples/captures/ipip.pcap")).expect("capture");
    let path = tmp("reframed.pcapng");
    let mut w = PcapNgWriter::create(&path).expect("create");
    let mut ports = Vec::new();
    let macs = [2u8, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    let mut n = 0usize;
    while let Some(p) = reader.next_packet().expect("reads") {
        let l3 = p.decode_link().expect("link");
        let Some(t) = decapsulate(&l3).ok().flatten() else {
            continue;
        };
        let ip = t.inner.network;
        let len = u16::try_from(ip.len() + 2).expect("small");
        let nflog_len = u16::try_from(ip.len() + 4).expect("small");
        let (link, frame): (LinkType, Vec<u8>) = match n % 6 {
            0 => (
                LinkType::ETHERNET,
                [
                    &macs[..],
                    &[0x88, 0x64, 0x11, 0, 0, 9],
                    &len.to_be_bytes(),
                    &[0, 0x21],
                    ip,
                ]
                .concat(),
            ),
            1 => (
                LinkType::ETHERNET,
                [
                    &macs[..],
                    &[0x88, 0x47, 0, 0x06, 0x40, 0x40, 0, 0x0C, 0x81, 0x40],
                    ip,
                ]
                .concat(),
            ),
            2 => (
                LinkType::ETHERNET,
                [
                    &macs[..],
                    &[0x88, 0xE7, 0, 0, 0, 5],
                    &macs,
                    &[0x08, 0x00],
                    ip,
                ]
                .concat(),
            ),
            3 => (
                LinkType::ETHERNET,
                [
                    &macs[..],
                    &[0x88, 0x47, 0, 0x01, 0x01, 0x40, 0, 0, 0, 0],
                    &macs,
                    &[0x88, 0xA8, 0, 3, 0x81, 0x00, 0, 4, 0x08, 0x00],
                    ip,
                ]
                .concat(),
            ),
            4 => {
                let mut f = vec![2, 0, 0, 0];
                f.extend_from_slice(&nflog_len.to_le_bytes());
                f.extend_from_slice(&9u16.to_le_bytes());
                f.extend_from_slice(ip);
                f.resize(f.len().next_multiple_of(4), 0);
                (LinkType::NFLOG, f)
            }
            _ => (LinkType::C_HDLC, [&[0x0F, 0, 0x08, 0][..], ip].concat()),
        };
        let frame_len = u32::try_from(frame.len()).expect("small");
        w.write_packet(link, p.timestamp_ns, frame_len, &frame, None)
            .expect("write");
        ports.push(tcp_ports(ip));
        n += 1;
    }
    w.finish().expect("flush");
    (path, ports)
}

#[test]
fn link_layer_encapsulations_carry_the_same_verdicts() {
    let (capture, ports) = reframed_capture();
    let (json, lines) = replay(&capture, &block_8000(None));
    assert_eq!(lines.len(), ports.len());
    for (line, inner) in lines.iter().zip(&ports) {
        let expected = if inner.is_some() { "BLOCK" } else { "PERMIT" };
        assert_eq!(line["action"], expected, "{line}");
    }
    let decoded = &json["encapsulations"]["decoded"];
    for name in ["PPPoE", "MPLS", "PBB", "MPLS pseudowire"] {
        assert!(
            decoded[name]["packets"].as_u64().is_some_and(|n| n >= 2),
            "{name}: {json}"
        );
    }
    assert_eq!(json["verdicts"]["skipped"]["packets"], 0, "{json}");
}
