//! End-to-end tests of `wfpctl replay` on the bundled example capture (`examples/replay/`), on
//! damaged copies of it, and on tcpdump's regression corpus when `../shared/data` is present.
//!
//! Packet indexes below are positions in `examples/replay/capture.pcap` (see `tcpdump -nn -r`):
//! 6 the DNS query for ads.blocked.example, 13 the HTTP download's SYN, 32 the request carrying
//! X-Block-Me, 41 the IPv6 HTTP SYN, 57/58 the telnet SYN and its RST, 62 the ClientHello for
//! www.blocked.example, 75 the UDP probe to port 9999, 82 the inbound SSH SYN, 93/94 the inbound
//! SYN to port 9000 and its RST.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::Value as Json;
use wfp_pcap::{CaptureReader, CaptureWriter, LinkType};
use wfpctl::replay::{replay_quiet, PcapSink, ReplayConfig, Replayer};

const CAPTURE: &str = "examples/replay/capture.pcap";
const POLICY: &str = "examples/replay/policy.toml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wfpctl-replay-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("tmp dir");
    dir.join(name)
}

fn wfpctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run wfpctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json_summary(args: &[&str]) -> (i32, Json, String) {
    let mut all = vec!["replay", CAPTURE, "--policy", POLICY, "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = wfpctl(&all);
    let j = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, j, err)
}

fn verdict_lines(path: &Path) -> Vec<Json> {
    fs::read_to_string(path)
        .expect("verdicts file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn count(j: &Json, verdict: &str) -> u64 {
    j["verdicts"][verdict]["packets"].as_u64().expect("count")
}

#[test]
fn example_capture_gives_the_documented_verdicts() {
    let verdicts = tmp("example.jsonl");
    let v = verdicts.to_str().expect("utf8");
    let (code, j, err) = json_summary(&["--verdicts", v]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(j["capture"]["packets"], 95);
    assert_eq!(j["capture"]["format"], "pcap");
    assert_eq!(j["capture"]["link_types"]["LINUX_SLL2 (276)"], 95);
    assert_eq!(count(&j, "permitted"), 57);
    assert_eq!(count(&j, "blocked"), 36);
    assert_eq!(count(&j, "absorbed"), 0);
    assert_eq!(count(&j, "skipped"), 2);
    assert_eq!(j["skipped"]["not IP: ARP"]["packets"], 2);
    assert_eq!(j["policy"]["filters"], 19);
    assert!(j["error"].is_null());

    let lines = verdict_lines(&verdicts);
    assert_eq!(lines.len(), 95);
    let at = |i: usize| &lines[i];
    let decided = |i: usize| {
        let l = at(i);
        (
            l["action"].as_str().unwrap_or("").to_string(),
            l["layer"].as_str().unwrap_or("").to_string(),
            l["filter_id"].as_u64().unwrap_or(0),
            l["filter"].as_str().unwrap_or("").to_string(),
        )
    };
    let want = |a: &str, l: &str, id: u64, n: &str| (a.into(), l.into(), id, n.into());
    // The telnet attempt: its SYN is blocked at ALE_AUTH_CONNECT_V4 by the named filter, hard, and
    // the peer's RST belongs to the refused connection.
    assert_eq!(
        decided(57),
        want("BLOCK", "ALE_AUTH_CONNECT_V4", 1, "block telnet")
    );
    assert_eq!(at(57)["reason"], "filter");
    assert_eq!(at(57)["direction"], "outbound");
    assert_eq!(at(57)["layers"][0]["decision"], "hard");
    assert_eq!(
        decided(58),
        want("BLOCK", "ALE_AUTH_CONNECT_V4", 1, "block telnet")
    );
    assert_eq!(
        at(58)["reason"],
        "segment of a connection refused at authorization"
    );
    // Weights inside a sublayer: the heavier permit wins for 8080, the light block catches 9999.
    assert_eq!(
        decided(13),
        want("PERMIT", "ALE_AUTH_CONNECT_V4", 2, "lab web allowed")
    );
    assert_eq!(
        decided(75),
        want("BLOCK", "ALE_AUTH_CONNECT_V4", 3, "lab high ports blocked")
    );
    // A soft permit overridden by a lower sublayer's block.
    assert_eq!(
        decided(41),
        want("BLOCK", "ALE_AUTH_CONNECT_V6", 5, "no IPv6 web to the lab")
    );
    // A hard permit that a lower sublayer's block cannot override, and that block elsewhere.
    assert_eq!(
        decided(82),
        want(
            "PERMIT",
            "ALE_AUTH_RECV_ACCEPT_V4",
            6,
            "admin ssh from the lab server (hard)"
        )
    );
    assert_eq!(at(82)["direction"], "inbound");
    assert_eq!(
        decided(93),
        want(
            "BLOCK",
            "ALE_AUTH_RECV_ACCEPT_V4",
            7,
            "no inbound connections"
        )
    );
    assert_eq!(
        decided(94),
        want(
            "BLOCK",
            "ALE_AUTH_RECV_ACCEPT_V4",
            7,
            "no inbound connections"
        )
    );
    // Built-in callouts.
    assert_eq!(
        decided(6),
        want("BLOCK", "DATAGRAM_DATA_V4", 8, "dns name blocker")
    );
    assert_eq!(
        decided(32),
        want("BLOCK", "STREAM_V4", 10, "http pattern blocker")
    );
    assert_eq!(
        decided(62),
        want("BLOCK", "STREAM_V4", 11, "tls sni blocker")
    );
    // Later segments of a dropped connection are blocked with it, in both directions.
    for i in [33, 35] {
        assert_eq!(
            decided(i),
            want("BLOCK", "STREAM_V4", 10, "http pattern blocker")
        );
        assert_eq!(at(i)["reason"], "connection dropped by a stream callout");
    }
    // The allowed DNS query is permitted after every layer of its path.
    let path: Vec<&str> = at(4)["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["layer"].as_str())
        .collect();
    assert_eq!(
        path,
        [
            "ALE_AUTH_CONNECT_V4",
            "ALE_FLOW_ESTABLISHED_V4",
            "DATAGRAM_DATA_V4",
            "OUTBOUND_TRANSPORT_V4",
            "OUTBOUND_IPPACKET_V4"
        ]
    );
    assert_eq!(at(4)["action"], "PERMIT");

    // Summary tables agree with the lines.
    let filters: BTreeMap<u64, &Json> = j["filters"]
        .as_array()
        .expect("filters")
        .iter()
        .map(|f| (f["id"].as_u64().expect("id"), f))
        .collect();
    assert_eq!(filters[&1]["blocks"], 1);
    assert_eq!(filters[&1]["final"], 2);
    assert_eq!(filters[&6]["permits"], 1);
    assert_eq!(j["anomalies"]["connections_dropped"], 2);
    assert_eq!(j["flows"]["total"], 19);
    let ended = &j["flows"]["ended"];
    let sum: u64 = [
        "fin",
        "rst",
        "idle_timeout",
        "evicted",
        "blocked",
        "capture_end",
    ]
    .iter()
    .map(|k| ended[k].as_u64().expect("count"))
    .sum();
    assert_eq!(sum, 19);
    // The flow logger logged the SSH connection's bytes; the stream monitor saw its banners.
    let ssh = j["flow_log"]
        .as_array()
        .expect("flow log")
        .iter()
        .find(|r| r["local"] == "10.77.0.1:22")
        .expect("ssh flow logged");
    assert_eq!(ssh["outbound_bytes"], 21);
    assert_eq!(ssh["inbound_bytes"], 16);
    let monitor = j["stream_monitor"].as_array().expect("stream monitor");
    assert_eq!(monitor.len(), 1);
    assert!(monitor[0]["outbound_head"]
        .as_str()
        .is_some_and(|h| h.starts_with("SSH-2.0-wfp-example")));
}

#[test]
fn verdict_lines_follow_the_documented_schema() {
    let verdicts = tmp("schema.jsonl");
    let (code, _, err) = wfpctl(&[
        "replay",
        CAPTURE,
        "--policy",
        POLICY,
        "--verdicts",
        verdicts.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let keys = [
        "index",
        "ts_ns",
        "time",
        "len",
        "captured",
        "direction",
        "flow",
        "action",
        "reason",
        "layer",
        "filter_id",
        "filter",
        "layers",
        "tunnels",
    ];
    // Present only where they apply (classified packets; asynchronous outputs).
    let optional = ["offload", "origin"];
    for (i, l) in verdict_lines(&verdicts).iter().enumerate() {
        let o = l.as_object().expect("object");
        let extra: Vec<&String> = o
            .keys()
            .filter(|k| !keys.contains(&k.as_str()) && !optional.contains(&k.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "line {i} has undocumented keys {extra:?}: {l}"
        );
        for k in keys {
            assert!(o.contains_key(k), "line {i} lacks {k}: {l}");
        }
        assert_eq!(l["index"], i);
        assert!(l["ts_ns"].as_u64().is_some());
        assert!(l["time"].as_str().is_some_and(|t| t.contains('.')));
        assert!(l["len"].as_u64().is_some_and(|n| n > 0));
        assert!(l["captured"]
            .as_u64()
            .is_some_and(|n| n > 0 && Some(n) <= l["len"].as_u64()));
        let action = l["action"].as_str().expect("action");
        assert!(["PERMIT", "BLOCK", "ABSORB", "SKIPPED"].contains(&action));
        // Every classified packet says whether its flow could be offloaded (docs/offload.md).
        assert_eq!(action != "SKIPPED", o.contains_key("offload"), "{l}");
        if action == "SKIPPED" {
            assert!(l["direction"].is_null() && l["layers"] == Json::Array(vec![]));
            continue;
        }
        assert!(["inbound", "outbound"].contains(&l["direction"].as_str().expect("dir")));
        assert_eq!(l["filter"].is_null(), l["filter_id"].is_null(), "{l}");
        for v in l["layers"].as_array().expect("layers") {
            let o = v.as_object().expect("visit");
            for k in [
                "layer",
                "action",
                "decision",
                "filter_id",
                "filter",
                "vetoed",
            ] {
                assert!(o.contains_key(k), "{v}");
            }
            assert!(["hard", "soft", "none"].contains(&v["decision"].as_str().expect("decision")));
        }
    }
}

#[test]
fn permitted_and_blocked_captures_hold_every_classified_packet() {
    let permitted = tmp("permitted.pcap");
    let blocked = tmp("blocked.pcap");
    let (code, j, err) = json_summary(&[
        "--permitted",
        permitted.to_str().expect("utf8"),
        "--blocked",
        blocked.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let read = |p: &Path| {
        let mut r = CaptureReader::open(p).expect("output opens");
        let mut packets = Vec::new();
        while let Some(p) = r.next_packet().expect("output reads") {
            assert_eq!(p.link_type, LinkType::LINUX_SLL2);
            packets.push(p);
        }
        packets
    };
    let p = read(&permitted);
    let b = read(&blocked);
    assert_eq!(p.len() as u64, count(&j, "permitted"));
    assert_eq!(b.len() as u64, count(&j, "blocked") + count(&j, "absorbed"));
    assert_eq!(
        (p.len() + b.len()) as u64 + count(&j, "skipped"),
        j["capture"]["packets"].as_u64().expect("packets")
    );
    // Frames are copied unchanged: the first blocked packet is capture packet 6, the DNS query.
    let mut orig = CaptureReader::open(root().join(CAPTURE)).expect("capture");
    let sixth = orig.nth(6).expect("packet 6").expect("reads");
    assert_eq!(b[0].data, sixth.data);
    assert_eq!(b[0].timestamp_ns, sixth.timestamp_ns);
    assert_eq!(j["outputs"]["permitted"]["written"], p.len());
    assert_eq!(j["outputs"]["blocked"]["written"], b.len());
}

#[test]
fn text_summary_and_trace_explain_the_telnet_block() {
    let (code, out, err) = wfpctl(&["replay", CAPTURE, "--policy", POLICY, "--trace", "57"]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "verdict",
        "permitted       57",
        "ALE_AUTH_CONNECT_V4",
        "top deciding filters",
        "block telnet",
        "flow log (wfp.flow-logger)",
        "trace of packet 57",
        "BLOCK at ALE_AUTH_CONNECT_V4 by filter 1 \"block telnet\"",
        "[corp w=512] filter 1 \"block telnet\"",
        "decided BLOCK hard",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    // The hard permit's trace shows the lower sublayer's block being ignored.
    let (code, j, _) = json_summary(&["--trace", "82"]);
    assert_eq!(code, 0);
    let accept = j["trace"]["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .find(|l| l["layer"] == "ALE_AUTH_RECV_ACCEPT_V4")
        .expect("RECV_ACCEPT visited");
    let steps = accept["trace"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1]["filter"], "no inbound connections");
    assert_eq!(steps[1]["outcome"]["ignored"], "a hard decision stands");
    // A packet that is not there (or not IP) is reported with exit code 3.
    let (code, _, err) = wfpctl(&["replay", CAPTURE, "--policy", POLICY, "--trace", "2"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--trace 2"), "{err}");
}

#[test]
fn truncated_capture_reports_what_was_read_then_where_it_stopped() {
    let bytes = fs::read(root().join(CAPTURE)).expect("capture");
    // Cut inside the record of packet 20 (record headers are 16 bytes, then the frame).
    let mut reader = CaptureReader::new(&bytes[..]).expect("header");
    for _ in 0..20 {
        reader.next_packet().expect("reads").expect("packet");
    }
    let record = reader.offset();
    let cut = tmp("truncated.pcap");
    fs::write(
        &cut,
        &bytes[..usize::try_from(record).expect("offset") + 30],
    )
    .expect("write");
    let cut_s = cut.to_str().expect("utf8");

    let (code, out, err) = wfpctl(&["replay", cut_s, "--policy", POLICY, "--json"]);
    assert_eq!(code, 4, "{err}");
    let j: Json = serde_json::from_str(&out).expect("summary still printed");
    assert_eq!(j["capture"]["packets"], 20);
    assert_eq!(j["error"]["offset"], record);
    assert_eq!(j["error"]["packet_index"], 20);
    assert!(err.contains(&format!("byte {record}")), "{err}");
    assert!(err.contains("after 20 packets"), "{err}");

    let (code, out, _) = wfpctl(&["replay", cut_s, "--policy", POLICY]);
    assert_eq!(code, 4);
    assert!(out.contains(&format!(
        "INCOMPLETE: reading stopped at byte {record} after 20 packets"
    )));

    // Not a capture at all: exit 1, nothing replayed.
    let (code, _, err) = wfpctl(&["replay", POLICY, "--policy", POLICY]);
    assert_eq!(code, 1);
    assert!(err.contains("not a pcap or pcapng file"), "{err}");
}

/// The example capture rewritten by `edit` (frame bytes → frame bytes kept), `orig_len` unchanged.
fn rewrite_example(name: &str, mut edit: impl FnMut(u64, &[u8]) -> Vec<u8>) -> PathBuf {
    let path = tmp(name);
    let mut reader = CaptureReader::open(root().join(CAPTURE)).expect("capture");
    let mut w: Option<CaptureWriter<_>> = None;
    while let Some(p) = reader.next_packet().expect("reads") {
        let w = w.get_or_insert_with(|| CaptureWriter::create(&path, p.link_type).expect("create"));
        w.write_packet(p.timestamp_ns, p.orig_len, &edit(p.index, &p.data))
            .expect("write");
    }
    w.expect("packets").finish().expect("flush");
    path
}

/// (action, deciding layer, filter id, reason) of every packet of a replay of `capture`.
fn replay_lines(capture: &Path, extra: &[&str]) -> (Json, Vec<(String, String, u64, String)>) {
    // Tests run in parallel: every call gets its own file.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = capture.file_stem().and_then(|s| s.to_str()).expect("name");
    let verdicts = tmp(&format!("{name}-{n}.jsonl"));
    let mut args = vec![
        "replay",
        capture.to_str().expect("utf8"),
        "--policy",
        POLICY,
        "--json",
        "--verdicts",
        verdicts.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = wfpctl(&args);
    assert_eq!(code, 0, "{err}");
    let j: Json = serde_json::from_str(&out).expect("json");
    let lines = verdict_lines(&verdicts)
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap_or("").to_string(),
                l["layer"].as_str().unwrap_or("").to_string(),
                l["filter_id"].as_u64().unwrap_or(0),
                l["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (j, lines)
}

/// The example capture cut to a 128-byte snapshot length (every header survives; HTTP requests,
/// responses and TLS ClientHellos lose their tails): every packet is classified from its headers
/// and gets the full capture's verdict — except the two connections that only payload inspection
/// blocked (filter 10 "http pattern blocker" matches `X-Block-Me` beyond the 56 payload bytes
/// kept; filter 11 "tls sni blocker" cannot see the SNI, which the capture cut, and fails open),
/// whose packets are then permitted. Cut at 96 bytes, the IPv6 SYN's 40-byte TCP header no longer
/// fits: those two packets are malformed, saying the capture cut them, and nothing else changes.
#[test]
fn snaplen_cut_capture_gives_the_full_captures_verdicts_where_headers_survive() {
    let (full, want) = replay_lines(&root().join(CAPTURE), &[]);
    assert_eq!(full["anomalies"]["snaplen_truncated"], 0);
    let cut = rewrite_example("snap128.pcap", |_, f| f[..f.len().min(128)].to_vec());
    let (j, got) = replay_lines(&cut, &[]);
    let a = &j["anomalies"];
    assert_eq!(a["malformed"], 0, "{a}");
    assert_eq!(a["snaplen_truncated"], 16);
    // The verdict lines show which frames the capture cut: `captured` below `len`.
    let lines = tmp("snap128-lines.jsonl");
    let (code, _, err) = wfpctl(&[
        "replay",
        cut.to_str().expect("utf8"),
        "--policy",
        POLICY,
        "--verdicts",
        lines.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let cut_lines = verdict_lines(&lines)
        .iter()
        .filter(|l| l["captured"].as_u64() < l["len"].as_u64())
        .count();
    assert_eq!(cut_lines, 16);
    assert_eq!(a["truncated_classified"], 16);
    assert!(a["stream_bytes_missed"].as_u64().expect("count") > 15_000);
    assert_eq!(j["flows"]["total"], full["flows"]["total"]);
    let payload_decided = |l: &(String, String, u64, String)| l.2 == 10 || l.2 == 11;
    let mut changed = Vec::new();
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        if payload_decided(w) {
            assert_eq!(g.0, "PERMIT", "packet {i}: {g:?}");
            changed.push(i);
        } else {
            assert_eq!((&w.0, &w.1, w.2), (&g.0, &g.1, g.2), "packet {i}");
        }
    }
    assert_eq!(
        changed,
        [32, 33, 34, 35, 36, 37, 38, 39, 40, 62, 63, 64, 70, 71]
    );
    assert_eq!(got.len(), 95);

    let cut96 = rewrite_example("snap96.pcap", |_, f| f[..f.len().min(96)].to_vec());
    let (j, got) = replay_lines(&cut96, &[]);
    assert_eq!(j["anomalies"]["malformed"], 2);
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        if i == 41 || i == 42 {
            assert_eq!(g.0, "BLOCK");
            assert!(
                g.3.starts_with("malformed: TCP header cut by the capture"),
                "{g:?}"
            );
        } else if !payload_decided(w) {
            assert_eq!((&w.0, &w.1, w.2), (&g.0, &g.1, g.2), "packet {i}");
        }
    }
}

/// IPv4 header checksums are not verified by default (hosts that offload checksums capture their
/// own packets with anything there): the packet keeps its verdict and the mismatch is counted.
/// `--verify-checksums` makes it malformed.
#[test]
fn ipv4_checksums_are_counted_and_verified_only_on_request() {
    // Packet 13, the SYN to the lab web server (permitted by filter 2), with checksum 0x0000.
    let zeroed = rewrite_example("checksum0.pcap", |i, f| {
        let mut f = f.to_vec();
        if i == 13 {
            // Linux SLL2 header: 20 bytes; the IPv4 checksum is at offset 10.
            f[30] = 0;
            f[31] = 0;
        }
        f
    });
    let (full, want) = replay_lines(&root().join(CAPTURE), &[]);
    assert_eq!(full["anomalies"]["ipv4_checksum_mismatches"], 0);
    let (j, got) = replay_lines(&zeroed, &[]);
    assert_eq!(got, want);
    assert_eq!(j["anomalies"]["ipv4_checksum_mismatches"], 1);
    assert_eq!(j["anomalies"]["malformed"], 0);
    let (j, got) = replay_lines(&zeroed, &["--verify-checksums"]);
    assert_eq!(j["anomalies"]["ipv4_checksum_mismatches"], 1);
    assert_eq!(j["anomalies"]["malformed"], 1);
    assert_eq!(got[13].0, "BLOCK");
    assert!(
        got[13]
            .3
            .starts_with("malformed: IPv4 header checksum 0x0000 does not verify"),
        "{:?}",
        got[13]
    );
    // The text summary names both counts.
    let (_, out, _) = wfpctl(&["replay", zeroed.to_str().expect("utf8"), "--policy", POLICY]);
    assert!(out.contains("IPv4 header checksum mismatches"), "{out}");
}

#[test]
fn local_networks_give_the_same_verdicts_as_linux_packet_types() {
    // The example as raw IP: no packet types, so direction comes from --local.
    let raw = tmp("raw.pcap");
    let mut w = CaptureWriter::create(&raw, LinkType::RAW).expect("create");
    let mut reader = CaptureReader::open(root().join(CAPTURE)).expect("capture");
    let mut ip = 0u64;
    while let Some(p) = reader.next_packet().expect("reads") {
        let l3 = p.decode_link().expect("decodes");
        if l3.protocol.ip_version().is_some() {
            w.write_packet(p.timestamp_ns, l3.network.len() as u32, l3.network)
                .expect("write");
            ip += 1;
        }
    }
    w.finish().expect("flush");
    let (code, out, err) = wfpctl(&[
        "replay",
        raw.to_str().expect("utf8"),
        "--policy",
        POLICY,
        "--json",
        "--local",
        "10.77.0.1/32",
        "--local",
        "fd77::1",
    ]);
    assert_eq!(code, 0, "{err}");
    let j: Json = serde_json::from_str(&out).expect("json");
    assert_eq!(j["capture"]["packets"], ip);
    assert_eq!(count(&j, "blocked"), 36);
    assert_eq!(count(&j, "permitted"), ip - 36);
    // A bad prefix is a usage error.
    let (code, _, err) = wfpctl(&[
        "replay",
        CAPTURE,
        "--policy",
        POLICY,
        "--local",
        "10.0.0.0/40",
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn pcapng_recorded_directions_give_the_same_verdicts_as_linux_packet_types() {
    // The example as raw IP in pcapng with each packet's direction in epb_flags, and no --local:
    // the recorded directions must stand in for the packet types.
    let raw = tmp("raw-directions.pcapng");
    let mut w = wfp_pcap::PcapNgWriter::create(&raw).expect("create");
    let mut reader = CaptureReader::open(root().join(CAPTURE)).expect("capture");
    let mut ip = 0u64;
    while let Some(p) = reader.next_packet().expect("reads") {
        let l3 = p.decode_link().expect("decodes");
        if l3.protocol.ip_version().is_some() {
            let len = l3.network.len() as u32;
            w.write_packet(
                LinkType::RAW,
                p.timestamp_ns,
                len,
                l3.network,
                l3.direction(),
            )
            .expect("write");
            ip += 1;
        }
    }
    w.finish().expect("flush");
    let (code, out, err) = wfpctl(&[
        "replay",
        raw.to_str().expect("utf8"),
        "--policy",
        POLICY,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let j: Json = serde_json::from_str(&out).expect("json");
    assert_eq!(j["capture"]["packets"], ip);
    assert_eq!(count(&j, "blocked"), 36);
    assert_eq!(count(&j, "permitted"), ip - 36);
}

#[test]
fn tcpdump_corpus_replays_without_panicking() {
    let dir = root().join("../shared/data/pcaps/tcpdump");
    let Ok(entries) = fs::read_dir(&dir) else {
        println!("note: {} is absent; corpus replay skipped", dir.display());
        return;
    };
    let policy = wfp_policy::Policy::load(&root().join(POLICY)).expect("policy");
    let host = wfp_callouts::Host::new();
    let (engine, _) = policy.build_engine(&host).expect("engine");
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
        })
        .collect();
    files.sort();
    let (mut replayed, mut errors, mut packets, mut skipped) = (0, 0, 0, 0);
    let mut truncated_errors = 0u64;
    let mut classified_cut = 0u64;
    let out_p = tmp("corpus-permitted.pcap");
    let out_b = tmp("corpus-blocked.pcap");
    for (n, file) in files.iter().enumerate() {
        let Ok(mut reader) = CaptureReader::open(file) else {
            errors += 1;
            continue;
        };
        let config = ReplayConfig::default();
        let report = if n % 4 == 0 {
            // Every fourth file also goes through the output writers, half of them pcapng.
            let mut r = Replayer::new(Arc::clone(&engine), host.clone(), config);
            let ng = |p: &Path| {
                if n % 8 == 0 {
                    p.with_extension("pcapng")
                } else {
                    p.to_path_buf()
                }
            };
            r.write_permitted(PcapSink::create(&ng(&out_p)).expect("sink"));
            r.write_blocked(PcapSink::create(&ng(&out_b)).expect("sink"));
            r.write_verdicts(out_p.with_extension("jsonl"), Box::new(std::io::sink()));
            wfpctl::replay::replay(&mut reader, r, &mut |_| {})
        } else {
            replay_quiet(&mut reader, Arc::clone(&engine), host.clone(), config)
        }
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let v = report.verdicts;
        assert_eq!(
            v.permitted.packets + v.blocked.packets + v.absorbed.packets + v.skipped.packets,
            report.packets.packets,
            "{}",
            file.display()
        );
        let mut text = Vec::new();
        report.write_text(&mut text).expect("text");
        let _ = report.to_json();
        replayed += 1;
        classified_cut += report.anomalies.truncated_classified;
        if file.ends_with("quic_handshake_truncated.pcap") {
            // IPv6 payload lengths beyond the snapshot length: classified, not malformed.
            assert_eq!(report.anomalies.malformed, 0, "{}", file.display());
            assert_eq!(report.anomalies.truncated_classified, 4);
        }
        packets += report.packets.packets;
        skipped += v.skipped.packets;
        errors += u64::from(report.capture_error.is_some());
        // The same file cut at two thirds: a capture error after the packets before the cut.
        let bytes = fs::read(file).expect("read");
        if let Ok(mut cut) = CaptureReader::new(&bytes[..bytes.len() * 2 / 3]) {
            let r = replay_quiet(
                &mut cut,
                Arc::clone(&engine),
                host.clone(),
                ReplayConfig::default(),
            )
            .unwrap_or_else(|e| panic!("{} (cut): {e}", file.display()));
            assert!(r.packets.packets <= report.packets.packets);
            truncated_errors += u64::from(r.capture_error.is_some());
        }
    }
    println!(
        "tcpdump corpus: {replayed} files replayed, {packets} packets ({skipped} skipped), \
         {errors} files ended with a capture error; cut at 2/3: {truncated_errors} capture errors; \
         {classified_cut} snaplen-cut packets classified"
    );
    assert!(classified_cut > 100, "snaplen-cut packets are classified");
    assert!(truncated_errors > 400, "cut copies end with an error");
    assert!(replayed > 800, "only {replayed} files replayed");
    assert_eq!(engine.flow_context_count(), 0, "every flow context deleted");
}

fn wfpctl_raw(args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run wfpctl");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn verdicts_to_stdout_move_the_summary_to_stderr() {
    // The reference: the same lines written to a file.
    let file = tmp("stdout-reference.jsonl");
    let (code, j_file, err) = json_summary(&["--verdicts", file.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    let reference = fs::read_to_string(&file).expect("verdicts file");

    // --json: stdout holds exactly the verdict lines, stderr exactly the summary object.
    let (code, out, err) = wfpctl(&[
        "replay",
        CAPTURE,
        "--policy",
        POLICY,
        "--json",
        "--verdicts",
        "-",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, reference, "stdout is the verdict lines, nothing else");
    let j: Json = serde_json::from_str(&err).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(j["verdicts"], j_file["verdicts"]);
    assert_eq!(j["outputs"]["verdicts"]["path"], "<stdout>");
    assert_eq!(j["outputs"]["verdicts"]["lines"], 95);

    // The table goes to stderr as well.
    let (code, out, err) = wfpctl(&["replay", CAPTURE, "--policy", POLICY, "--verdicts", "-"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, reference);
    assert!(err.contains("permitted       57"), "{err}");
    assert!(
        err.contains("verdicts  95 lines written to <stdout>"),
        "{err}"
    );
    // Without `-` the summary stays on stdout and stderr is quiet.
    let (code, out, err) = wfpctl(&["replay", CAPTURE, "--policy", POLICY]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("permitted       57") && err.is_empty(),
        "{err}"
    );

    // Only one output can own stdout: a usage error, before anything runs.
    let (code, out, err) = wfpctl(&[
        "replay",
        CAPTURE,
        "--policy",
        POLICY,
        "--verdicts",
        "-",
        "--blocked",
        "-",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("--verdicts and --blocked"), "{err}");
}

#[test]
fn captures_to_stdout_are_pcap_unless_asked_for_pcapng() {
    let (code, j, _) = json_summary(&[]);
    assert_eq!(code, 0);
    for (format, want) in [(None, "pcap"), (Some("pcapng"), "pcapng")] {
        let mut args = vec!["replay", CAPTURE, "--policy", POLICY, "--blocked", "-"];
        if let Some(f) = format {
            args.extend_from_slice(&["--output-format", f]);
        }
        args.push("--json");
        let (code, out, err) = wfpctl_raw(&args);
        assert_eq!(code, 0, "{err}");
        let summary: Json = serde_json::from_str(&err).unwrap_or_else(|e| panic!("{e}: {err}"));
        assert_eq!(summary["outputs"]["blocked"]["format"], want);
        let mut r = CaptureReader::new(&out[..]).expect("stdout is a capture");
        assert_eq!(r.format().to_string(), want);
        let mut n = 0u64;
        while r.next_packet().expect("reads").is_some() {
            n += 1;
        }
        assert_eq!(n, count(&j, "blocked"));
    }
}

/// Every packet of `path`, owned.
fn read_capture(path: &Path) -> (wfp_pcap::CaptureFormat, Vec<wfp_pcap::CapturedPacket>) {
    let mut r = CaptureReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut packets = Vec::new();
    while let Some(p) = r.next_packet().expect("reads") {
        packets.push(p);
    }
    (r.format(), packets)
}

#[test]
fn pcapng_outputs_keep_frames_timestamps_and_directions() {
    let permitted = tmp("permitted.pcapng");
    let blocked = tmp("blocked.pcapng");
    let verdicts = tmp("pcapng.jsonl");
    let (code, j, err) = json_summary(&[
        "--permitted",
        permitted.to_str().expect("utf8"),
        "--blocked",
        blocked.to_str().expect("utf8"),
        "--verdicts",
        verdicts.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let out = &j["outputs"]["permitted"];
    assert_eq!(out["format"], "pcapng");
    assert_eq!(out["link_types"], serde_json::json!(["LINUX_SLL2 (276)"]));
    assert_eq!(j["outputs"]["blocked"]["format"], "pcapng");

    let lines = verdict_lines(&verdicts);
    let (_, original) = read_capture(&root().join(CAPTURE));
    for (path, actions) in [
        (&permitted, &["PERMIT"][..]),
        (&blocked, &["BLOCK", "ABSORB"][..]),
    ] {
        let (format, got) = read_capture(path);
        assert_eq!(format, wfp_pcap::CaptureFormat::PcapNg);
        // Exactly the packets with these verdicts, in capture order, unchanged.
        let want: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| actions.contains(&l["action"].as_str().unwrap_or("")))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(got.len(), want.len());
        for (p, &i) in got.iter().zip(&want) {
            let o = &original[i];
            assert_eq!(
                (&p.data, p.timestamp_ns, p.orig_len, p.link_type),
                (&o.data, o.timestamp_ns, o.orig_len, o.link_type),
                "packet {i}"
            );
            let dir = p.direction.map(|d| match d {
                wfp_pcap::Direction::Inbound => "inbound",
                wfp_pcap::Direction::Outbound => "outbound",
            });
            assert_eq!(dir, lines[i]["direction"].as_str(), "packet {i}");
        }
    }

    // --output-format wins over the name.
    let forced = tmp("forced.pcap");
    let (code, j, err) = json_summary(&[
        "--blocked",
        forced.to_str().expect("utf8"),
        "--output-format",
        "pcapng",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(j["outputs"]["blocked"]["format"], "pcapng");
    assert_eq!(read_capture(&forced).0, wfp_pcap::CaptureFormat::PcapNg);
    let (code, _, err) = wfpctl(&[
        "replay",
        CAPTURE,
        "--policy",
        POLICY,
        "--output-format",
        "ntar",
    ]);
    assert_eq!(code, 2, "{err}");

    // tcpdump (libpcap) reads them too, when installed.
    match Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&blocked)
        .output()
    {
        Ok(o) => {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let n = String::from_utf8_lossy(&o.stdout).lines().count() as u64;
            assert_eq!(n, count(&j, "blocked"));
        }
        Err(_) => println!("note: tcpdump not installed; libpcap read check skipped"),
    }
}

#[test]
fn mixed_link_types_get_one_pcapng_interface_each() {
    // The example with every other IP packet re-framed as raw IP, in a pcapng file.
    let mixed = tmp("mixed-in.pcapng");
    let mut w = wfp_pcap::PcapNgWriter::create(&mixed).expect("create");
    let mut reader = CaptureReader::open(root().join(CAPTURE)).expect("capture");
    let mut n = 0u32;
    while let Some(p) = reader.next_packet().expect("reads") {
        let l3 = p.decode_link().expect("decodes");
        if l3.protocol.ip_version().is_some() && n % 2 == 1 {
            w.write_packet(
                LinkType::RAW,
                p.timestamp_ns,
                l3.network.len() as u32,
                l3.network,
                None,
            )
            .expect("write");
        } else {
            w.write_packet(p.link_type, p.timestamp_ns, p.orig_len, &p.data, None)
                .expect("write");
        }
        n += 1;
    }
    w.finish().expect("flush");
    let ng = tmp("mixed-out.pcapng");
    let classic = tmp("mixed-out.pcap");
    let (code, out, err) = wfpctl(&[
        "replay",
        mixed.to_str().expect("utf8"),
        "--policy",
        POLICY,
        "--json",
        "--local",
        "10.77.0.1",
        "--local",
        "fd77::1",
        "--permitted",
        ng.to_str().expect("utf8"),
        "--blocked",
        classic.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let j: Json = serde_json::from_str(&out).expect("json");
    assert_eq!(j["capture"]["format"], "pcapng");
    let p = &j["outputs"]["permitted"];
    assert_eq!(
        p["link_types"],
        serde_json::json!(["LINUX_SLL2 (276)", "RAW (101)"])
    );
    assert_eq!(p["reencapsulated"], 0);
    let (_, got) = read_capture(&ng);
    assert_eq!(got.len() as u64, count(&j, "permitted"));
    assert!(got.iter().any(|p| p.link_type == LinkType::RAW));
    assert!(got.iter().any(|p| p.link_type == LinkType::LINUX_SLL2));
    assert!(
        got.iter().all(|p| p.direction.is_some()),
        "every replayed packet has a direction"
    );
    // The classic file has one link type: the raw packets were re-encapsulated.
    let b = &j["outputs"]["blocked"];
    assert_eq!(b["format"], "pcap");
    assert!(b["reencapsulated"].as_u64().is_some_and(|n| n > 0), "{b}");
    let (_, got) = read_capture(&classic);
    assert!(got.iter().all(|p| p.link_type == got[0].link_type));
    assert_eq!(got.len() as u64, count(&j, "blocked"));
}

/// The example policy with `from` replaced by `to`, written to a temporary file.
fn policy_variant(name: &str, from: &str, to: &str) -> PathBuf {
    let text = fs::read_to_string(root().join(POLICY)).expect("policy");
    assert!(text.contains(from), "the example policy has {from:?}");
    let path = tmp(name);
    fs::write(&path, text.replace(from, to)).expect("write policy");
    path
}

/// `(action, filter id)` of every packet, from `--verdicts -`.
fn decisions(policy: &Path) -> (Vec<(String, u64)>, Json) {
    let (code, out, err) = wfpctl(&[
        "replay",
        CAPTURE,
        "--policy",
        policy.to_str().expect("utf8"),
        "--json",
        "--verdicts",
        "-",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines = out
        .lines()
        .map(|l| {
            let j: Json = serde_json::from_str(l).expect("verdict line");
            (
                j["action"].as_str().unwrap_or("").to_string(),
                j["filter_id"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    (
        lines,
        serde_json::from_str(&err).expect("summary on stderr"),
    )
}

#[test]
fn builtin_parameters_from_the_policy_change_the_replay() {
    let (base, j) = decisions(&root().join(POLICY));
    let at = |d: &[(String, u64)], i: usize| (d[i].0.clone(), d[i].1);
    let blocked = |a: &str, f: u64| (a.to_string(), f);
    // The example: ads.blocked.example (6) is listed, www.example.test (4; 10 over IPv6) is not.
    assert_eq!(at(&base, 6), blocked("BLOCK", 8));
    assert_eq!(at(&base, 4).0, "PERMIT");
    assert_eq!(at(&base, 10).0, "PERMIT");
    assert_eq!(count(&j, "blocked"), 36);

    // [builtin."wfp.dns-blocker"] naming www.example.test instead: the other query is blocked,
    // over IPv4 and IPv6 (both implicit callouts take the table), and ads.blocked.example passes.
    let www = policy_variant(
        "dns-www.toml",
        r#"name = ["*.blocked.example", "tracker.example.test"]"#,
        r#"name = ["WWW.example.test"]"#,
    );
    let (d, j) = decisions(&www);
    assert_eq!(at(&d, 4), blocked("BLOCK", 8));
    assert_eq!(at(&d, 10), blocked("BLOCK", 9));
    assert_eq!(at(&d, 6).0, "PERMIT");
    assert_eq!(count(&j, "blocked"), 37);
    // An empty list blocks no name at all.
    let none = policy_variant(
        "dns-none.toml",
        r#"name = ["*.blocked.example", "tracker.example.test"]"#,
        "name = []",
    );
    let (d, j) = decisions(&none);
    assert_eq!(at(&d, 6).0, "PERMIT");
    assert_eq!(count(&j, "blocked"), 35);

    // A [[callout]]'s own params: the SNI blocker drops the other TLS connection instead.
    let sni = policy_variant(
        "sni.toml",
        r#"params = { name = ["blocked.example", "*.blocked.example"], on_malformed = "allow" }"#,
        r#"params = { name = "ok.example.test" }"#,
    );
    let (d, _) = decisions(&sni);
    assert_eq!(at(&d, 62).0, "PERMIT");
    assert_eq!(at(&d, 68), blocked("BLOCK", 11));
    // Without params, the [[callout]] gets the built-in's defaults: the example's verdicts.
    let defaults = policy_variant(
        "sni-defaults.toml",
        r#"params = { name = ["blocked.example", "*.blocked.example"], on_malformed = "allow" }"#,
        "",
    );
    assert_eq!(decisions(&defaults).0, base);

    // The stream monitor's STREAM half with a parameter (so under a key of its own) is still found
    // by its FLOW_ESTABLISHED half, and keeps only the bytes asked for.
    let monitor = policy_variant(
        "monitor.toml",
        "[builtin.\"wfp.dns-blocker\"]",
        "[builtin.\"wfp.stream-monitor.stream\"]\ncapture_bytes = 8\n\n[builtin.\"wfp.dns-blocker\"]",
    );
    let (d, j) = decisions(&monitor);
    assert_eq!(d, base);
    let reports = j["stream_monitor"].as_array().expect("stream monitor");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["outbound_head"], "SSH-2.0-");
}

#[test]
fn bad_builtin_parameters_name_the_file_line_and_field() {
    let bad = policy_variant(
        "dns-bad.toml",
        r#"name = ["*.blocked.example", "tracker.example.test"]"#,
        "name = [\"ok.example\",\n  \"bad..example\"]",
    );
    let (code, out, err) = wfpctl(&["replay", CAPTURE, "--policy", bad.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "nothing replayed: {out}");
    let text = fs::read_to_string(&bad).expect("policy");
    let line = text
        .lines()
        .position(|l| l.contains("bad..example"))
        .expect("line")
        + 1;
    let want = format!(
        "{}:{line}:3: builtin.\"wfp.dns-blocker\".name[1]: invalid name \"bad..example\"",
        bad.display()
    );
    assert!(err.contains(&want), "want {want:?} in {err}");

    let bad = policy_variant(
        "sni-bad.toml",
        r#"on_malformed = "allow" }"#,
        r#"on_malformed = "allow", colour = 1 }"#,
    );
    let (code, _, err) = wfpctl(&["replay", CAPTURE, "--policy", bad.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("callout[0].params.colour: wfp.tls-sni-blocker: unknown parameter \"colour\""),
        "{err}"
    );
}
