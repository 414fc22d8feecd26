//! Connection redirection by a C driver through `wfpctl replay` (wfp-reference §10.3, issue 13):
//! `crates/wfp-ffi/tests/c/drivers/connredirect.c` redirects TCP connections to port 80 to a
//! parameterised address at ALE_CONNECT_REDIRECT_V4. A raw-IP capture: a client's connection to
//! 192.0.2.7:80 (handshake and data), the proxy's own connection to the same destination while
//! the first lives (loop prevention: left alone), and a connection to port 443 (no match).
//! Checked: the `--permitted` capture (the redirected connection's packets rewritten both ways,
//! checksums valid), the `--verdicts` lines' `redirected_to`, the summary's counters, and what
//! the driver logged at ALE_AUTH_CONNECT (new remote, ORIGINAL_DESTINATION, REDIRECTED_BY_SELF).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use wfp_pcap::{CaptureReader, CaptureWriter, LinkType};
use wfp_shim::wire::build::ip_packet;
use wfp_shim::wire::Transport;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("connect-redirect-{name}"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// A TCP segment `src` → `dst` with `flags` (0x02 SYN, 0x12 SYN-ACK, 0x10 ACK, 0x18 PSH-ACK).
fn tcp(src: SocketAddr, dst: SocketAddr, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut seg = Vec::new();
    seg.extend_from_slice(&src.port().to_be_bytes());
    seg.extend_from_slice(&dst.port().to_be_bytes());
    seg.extend_from_slice(&seq.to_be_bytes());
    seg.extend_from_slice(&ack.to_be_bytes());
    seg.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    seg.extend_from_slice(payload);
    ip_packet(src.ip(), dst.ip(), 6, &seg).expect("ip packet")
}

/// Source, destination and payload of a permitted packet (checksums verified).
fn ends(p: &[u8]) -> (SocketAddr, SocketAddr, Vec<u8>) {
    let parsed = wfp_shim::wire::parse(p).unwrap_or_else(|e| panic!("invalid packet {e:?}"));
    let Transport::Tcp(t) = &parsed.transport else {
        panic!("not TCP");
    };
    let payload = parsed
        .payload()
        .and_then(|r| p.get(r))
        .unwrap_or(&[])
        .to_vec();
    (
        SocketAddr::new(parsed.ip.src, t.src_port),
        SocketAddr::new(parsed.ip.dst, t.dst_port),
        payload,
    )
}

struct Run {
    summary: Json,
    lines: Vec<Json>,
    permitted: Vec<Vec<u8>>,
    stderr: String,
}

fn replay(tag: &str, packets: &[Vec<u8>], params: &[&str]) -> Run {
    let tmp = |n: &str| tmp(&format!("{tag}-{n}"));
    let so = tmp("connredirect.so");
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(["driver", "build"])
        .arg(root().join("crates/wfp-ffi/tests/c/drivers/connredirect.c"))
        .arg("-o")
        .arg(&so)
        .output()
        .expect("run wfpctl driver build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let capture = tmp("capture.pcap");
    let mut w = CaptureWriter::create(&capture, LinkType::RAW).expect("create");
    for (i, p) in packets.iter().enumerate() {
        let ts = 1_000_000_000 + i as u64 * 1_000_000;
        w.write_packet(ts, p.len() as u32, p).expect("write");
    }
    w.finish().expect("flush");
    let permitted = tmp("permitted.pcap");
    let verdicts = tmp("verdicts.jsonl");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wfpctl"));
    cmd.arg("replay").arg(&capture).arg("--driver").arg(&so);
    for p in params {
        cmd.args(["--driver-param", p]);
    }
    let out = cmd
        .args(["--local", "10.0.0.1/32", "--local", "10.0.0.5/32"])
        .arg("--permitted")
        .arg(&permitted)
        .arg("--verdicts")
        .arg(&verdicts)
        .args(["--json", "--verify", "--no-progress"])
        .output()
        .expect("run wfpctl replay");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
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
        stderr,
    }
}

#[test]
fn connections_to_port_80_go_to_the_proxy_and_its_own_leg_is_left_alone() {
    let client = addr("10.0.0.1:40000");
    let server = addr("192.0.2.7:80");
    let proxy = addr("10.0.0.5:3128");
    let leg = addr("10.0.0.5:41000");
    let other = addr("192.0.2.7:443");
    let packets = [
        tcp(client, server, 0x02, 1000, 0, b""),
        tcp(server, client, 0x12, 5000, 1001, b""),
        tcp(client, server, 0x10, 1001, 5001, b""),
        tcp(client, server, 0x18, 1001, 5001, b"GET / HTTP/1.1\r\n\r\n"),
        // The proxy connects to the original destination itself.
        tcp(leg, server, 0x02, 7000, 0, b""),
        tcp(client, other, 0x02, 9000, 0, b""),
    ];
    let r = replay(
        "inline",
        &packets,
        &["ToAddress=10.0.0.5", "ToPort=3128", "Port=80"],
    );
    let got: Vec<_> = r.permitted.iter().map(|p| ends(p)).collect();
    let want = vec![
        (client, proxy, Vec::new()),
        (proxy, client, Vec::new()),
        (client, proxy, Vec::new()),
        (client, proxy, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        (leg, server, Vec::new()),
        (client, other, Vec::new()),
    ];
    assert_eq!(got, want, "{}", r.stderr);

    let redirected: Vec<&Json> = r.lines.iter().map(|l| &l["redirected_to"]).collect();
    for (i, l) in redirected.iter().enumerate().take(4) {
        assert_eq!(l["remote"], "10.0.0.5:3128", "line {i}: {l}");
        assert_eq!(l["original_remote"], "192.0.2.7:80", "line {i}");
        assert_eq!(l["layer"], "ALE_CONNECT_REDIRECT_V4", "line {i}");
        assert_eq!(l["filter"], "connredirect redirect", "line {i}");
        assert_eq!(l["first"], i == 0, "line {i}");
        assert!(
            r.lines[i]["origin"].is_null(),
            "a redirect is not a stream edit"
        );
    }
    assert!(redirected[4].is_null() && redirected[5].is_null());
    assert_eq!(r.lines[0]["layers"][0]["layer"], "ALE_CONNECT_REDIRECT_V4");
    assert_eq!(
        r.summary["async"]["redirected"], 1,
        "{}",
        r.summary["async"]
    );

    assert!(
        r.stderr
            .contains("auth remote 10.0.0.5:3128 original 192.0.2.7:80 state 1 redirected-flag 1"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("connredirect: left alone (state 1)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("connredirect: unloaded, redirected=1 left-alone=1 pended=0 failed=0"),
        "{}",
        r.stderr
    );
}

/// The same redirect pended (`Pend=1`, §10.2): the SYN is held (ABSORB, `pended`), the driver's
/// work item redirects through the classify handle and completes with PERMIT, and the SYN comes
/// out rewritten as a `released` line before the next captured packet.
#[test]
fn a_pended_redirect_completed_on_a_work_item_releases_the_connect_rewritten() {
    let client = addr("10.0.0.1:40000");
    let server = addr("192.0.2.7:80");
    let proxy = addr("10.0.0.5:3128");
    let packets = [
        tcp(client, server, 0x02, 1000, 0, b""),
        tcp(server, client, 0x12, 5000, 1001, b""),
        tcp(client, server, 0x10, 1001, 5001, b""),
    ];
    let r = replay(
        "pended",
        &packets,
        &["ToAddress=10.0.0.5", "ToPort=3128", "Pend=1"],
    );
    let got: Vec<_> = r.permitted.iter().map(|p| ends(p)).collect();
    assert_eq!(
        got,
        vec![
            (client, proxy, Vec::new()),
            (proxy, client, Vec::new()),
            (client, proxy, Vec::new()),
        ],
        "{}",
        r.stderr
    );
    assert_eq!(r.lines[0]["action"], "ABSORB", "{}", r.lines[0]);
    assert_eq!(r.lines[0]["reason"], "pended");
    let released = &r.lines[1];
    assert_eq!(released["origin"]["kind"], "released", "{released}");
    assert_eq!(released["action"], "PERMIT");
    assert_eq!(released["redirected_to"]["remote"], "10.0.0.5:3128");
    let a = &r.summary["async"];
    assert_eq!(
        (a["redirects_pended"].as_u64(), a["redirected"].as_u64()),
        (Some(1), Some(1)),
        "{a}"
    );
    assert_eq!(a["held_released"], 1, "{a}");
    assert!(
        r.stderr
            .contains("connredirect: unloaded, redirected=1 left-alone=0 pended=1 failed=0"),
        "{}",
        r.stderr
    );
}
