//! The `wfpctl replay --json` object against its documentation (`docs/replay-json.md`) and against
//! the `--verdicts` lines of the same run: every documented key is there and no other, `version`
//! is 1, keys are sorted, and the numbers reconcile as the document's last section says. Runs on
//! the bundled example, on copies of it with every kind of anomaly mixed in, and on a few
//! captures of tcpdump's regression corpus when `../shared/data` is present.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use wfp_pcap::{CaptureReader, LinkType, PcapNgWriter};

const CAPTURE: &str = "examples/replay/capture.pcap";
const POLICY: &str = "examples/replay/policy.toml";
const DOC: &str = "docs/replay-json.md";
/// Captures of `../shared/data/pcaps/tcpdump` with many flows, fragments, malformed packets, link
/// errors, skipped link types, snaplen cuts, flow-log and stream-monitor records.
const CORPUS: &[&str] = &[
    "afs.pcap",
    "babel_update_oobr.pcap",
    "bgp_vpn_rt-oobr.pcap",
    "HDLC.pcap",
    "kday3.pcap",
    "l2tp-avp-overflow.pcap",
    "pim-packet-assortment.pcap",
    "resp_3_malicious.pcap",
    "various_gre.pcap",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wfpctl-replay-json-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("tmp dir");
    dir.join(name)
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// One `--json --verdicts` run: exit code, the summary's text, the summary, the verdict lines.
struct Run {
    code: i32,
    raw: String,
    json: Json,
    lines: Vec<Json>,
}

/// Replays `capture` with the example policy, `--json` and `--verdicts` to a file named `name`.
fn run(name: &str, capture: &Path, extra: &[&str]) -> Run {
    run_policy(name, capture, Path::new(POLICY), extra)
}

/// [`run`] with another policy.
fn run_policy(name: &str, capture: &Path, policy: &Path, extra: &[&str]) -> Run {
    let verdicts = tmp(&format!("{name}.jsonl"));
    let mut args = vec![
        "replay",
        utf8(capture),
        "--policy",
        utf8(policy),
        "--json",
        "--no-progress",
        "--verdicts",
        utf8(&verdicts),
    ];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(&args)
        .current_dir(root())
        .output()
        .expect("run wfpctl");
    let raw = String::from_utf8(out.stdout).expect("utf-8 summary");
    let err = String::from_utf8_lossy(&out.stderr);
    let json = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{name}: {e}: {raw} {err}"));
    let lines = fs::read_to_string(&verdicts)
        .expect("verdicts file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    Run {
        code: out.status.code().unwrap_or(-1),
        raw,
        json,
        lines,
    }
}

/// The example with every kind of anomaly mixed in, as pcapng: every other IP packet re-framed
/// as raw IP, then after packet 10 a cut Ethernet header, a malformed IPv4 packet, a frame of an
/// unsupported link type, a packet from the past and a frame the snapshot length cut.
fn anomalies_capture() -> PathBuf {
    let path = tmp("anomalies.pcapng");
    let mut w = PcapNgWriter::create(&path).expect("create");
    let mut reader = CaptureReader::open(root().join(CAPTURE)).expect("example");
    let mut n = 0u32;
    while let Some(p) = reader.next_packet().expect("reads") {
        let l3 = p.decode_link().expect("decodes");
        let ts = p.timestamp_ns;
        if l3.protocol.ip_version().is_some() && n % 2 == 1 {
            let len = u32::try_from(l3.network.len()).expect("small");
            w.write_packet(LinkType::RAW, ts, len, l3.network, None)
                .expect("write");
        } else {
            w.write_packet(p.link_type, ts, p.orig_len, &p.data, None)
                .expect("write");
        }
        if n == 10 {
            let bad_ip = [0x45u8, 0, 0, 10, 0, 0, 0, 0, 64, 17];
            let cut_ip = [
                0x45u8, 0, 0, 120, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39,
                0, 53, 0, 100, 0, 0,
            ];
            let frames: [(LinkType, u64, u32, &[u8]); 5] = [
                (LinkType::ETHERNET, ts, 5, &[1, 2, 3, 4, 5]),
                (LinkType::RAW, ts, 10, &bad_ip),
                (LinkType::IEEE802_11, ts, 4, &[0x08, 0, 0, 0]),
                (LinkType::RAW, ts - 1_000_000_000, 10, &bad_ip),
                (LinkType::RAW, ts, 120, &cut_ip),
            ];
            for (link, t, orig, data) in frames {
                w.write_packet(link, t, orig, data, None).expect("write");
            }
        }
        n += 1;
    }
    w.finish().expect("flush");
    path
}

/// The example cut inside the record of packet 20.
fn truncated_capture() -> PathBuf {
    let bytes = fs::read(root().join(CAPTURE)).expect("example");
    let mut reader = CaptureReader::new(&bytes[..]).expect("header");
    for _ in 0..20 {
        reader.next_packet().expect("reads").expect("packet");
    }
    let cut = usize::try_from(reader.offset()).expect("offset") + 30;
    let path = tmp("truncated.pcap");
    fs::write(&path, &bytes[..cut]).expect("write");
    path
}

/// The key tables of the document: section (`Top level`, `capture`, `layers[]`...) → keys.
fn documented_keys() -> BTreeMap<String, BTreeSet<String>> {
    let doc = fs::read_to_string(root().join(DOC)).expect("docs/replay-json.md");
    let mut sections = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(h) = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("### "))
        {
            current = Some(h.trim().trim_matches('`').to_string());
        } else if let (Some(s), Some(cell)) = (&current, line.strip_prefix("| `")) {
            if let Some((key, _)) = cell.split_once("` |") {
                sections
                    .entry(s.clone())
                    .or_insert_with(BTreeSet::new)
                    .insert(key.to_string());
            }
        }
    }
    sections
}

fn keys(o: &Json) -> BTreeSet<String> {
    o.as_object()
        .unwrap_or_else(|| panic!("an object: {o}"))
        .keys()
        .cloned()
        .collect()
}

fn elements(a: &Json) -> Vec<&Json> {
    a.as_array()
        .unwrap_or_else(|| panic!("an array: {a}"))
        .iter()
        .collect()
}

/// The objects every documented section describes, from a run with every field filled in (`j`)
/// and one that ended with a capture error (`cut`).
fn described<'a>(
    j: &'a Json,
    cut: &'a Json,
    monitored: &'a Json,
) -> BTreeMap<&'static str, Vec<&'a Json>> {
    let a = &j["anomalies"];
    let mut examples = elements(&a["malformed_examples"]);
    examples.extend(elements(&a["link_error_examples"]));
    let visits = elements(&j["trace"]["layers"]);
    let steps = visits
        .iter()
        .filter(|v| !v["trace"].is_null())
        .flat_map(|v| elements(&v["trace"]))
        .collect();
    BTreeMap::from([
        ("Top level", vec![j, cut]),
        ("capture", vec![&j["capture"]]),
        ("encapsulations", vec![&j["encapsulations"]]),
        ("policy", vec![&j["policy"]]),
        ("verdicts", vec![&j["verdicts"]]),
        ("layers[]", elements(&j["layers"])),
        ("flows", vec![&j["flows"]]),
        ("flows.ended", vec![&j["flows"]["ended"]]),
        ("filters[]", elements(&j["filters"])),
        ("anomalies", vec![a]),
        ("async", vec![&j["async"]]),
        ("anomalies.*_examples[]", examples),
        ("flow_log[]", elements(&j["flow_log"])),
        ("stream_monitor[]", elements(&j["stream_monitor"])),
        (
            "connection_monitor[]",
            elements(&monitored["connection_monitor"]),
        ),
        ("outputs", vec![&j["outputs"]]),
        (
            "outputs.permitted",
            vec![&j["outputs"]["permitted"], &j["outputs"]["blocked"]],
        ),
        ("outputs.verdicts", vec![&j["outputs"]["verdicts"]]),
        ("trace", vec![&j["trace"]]),
        ("trace.layers[]", visits),
        ("trace.layers[].trace[]", steps),
        ("error", vec![&cut["error"]]),
    ])
}

#[test]
fn every_documented_key_is_there_and_no_other() {
    let capture = anomalies_capture();
    let permitted = tmp("keys-permitted.pcapng");
    let blocked = tmp("keys-blocked.pcap");
    let full = run(
        "keys",
        &capture,
        &[
            "--trace",
            // The example's packet 57 (the telnet SYN): five frames were added after packet 10.
            "62",
            "--permitted",
            utf8(&permitted),
            "--blocked",
            utf8(&blocked),
        ],
    );
    assert_eq!(full.code, 0, "{}", full.raw);
    let cut = run("keys-cut", &truncated_capture(), &[]);
    assert_eq!(cut.code, 4, "a capture error");

    let monitored = run_policy(
        "keys-monitor",
        &root().join(CAPTURE),
        &monitor_policy(),
        &[],
    );
    assert_eq!(monitored.code, 0, "{}", monitored.raw);

    let doc = documented_keys();
    let objects = described(&full.json, &cut.json, &monitored.json);
    assert_eq!(
        doc.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        objects.keys().copied().chain(["Count"]).collect(),
        "every key table of {DOC} is checked (Count: below)"
    );
    for (section, found) in &objects {
        let documented = &doc[*section];
        assert!(!found.is_empty(), "{section}: no object to check");
        for o in found {
            assert_eq!(&keys(o), documented, "{section} in {DOC}: {o}");
        }
    }
    for c in full.json["verdicts"]
        .as_object()
        .expect("verdicts")
        .values()
    {
        assert_eq!(keys(c), doc["Count"], "a Count");
    }
}

#[test]
fn the_object_has_version_1_sorted_keys_and_one_line() {
    for (name, capture, code) in [
        ("version", root().join(CAPTURE), 0),
        ("version-cut", truncated_capture(), 4),
    ] {
        let r = run(name, &capture, &["--trace", "57"]);
        assert_eq!(r.code, code, "{name}");
        assert_eq!(r.json["version"], 1, "{name}");
        assert_eq!(r.raw.lines().count(), 1, "{name}: one line");
        // Parsing into a `Value` would sort the keys: read the text itself.
        serde_json::from_str::<SortedKeys>(&r.raw)
            .unwrap_or_else(|e| panic!("{name}: keys out of order: {e}"));
    }
}

/// Any JSON value whose objects all have their keys in ascending (byte) order.
struct SortedKeys;

impl<'de> Deserialize<'de> for SortedKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SortedKeysVisitor)
    }
}

struct SortedKeysVisitor;

impl<'de> Visitor<'de> for SortedKeysVisitor {
    type Value = SortedKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SortedKeys, E> {
        Ok(SortedKeys)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SortedKeys, E> {
        Ok(SortedKeys)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SortedKeys, E> {
        Ok(SortedKeys)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SortedKeys, E> {
        Ok(SortedKeys)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<SortedKeys, E> {
        Ok(SortedKeys)
    }

    fn visit_unit<E: de::Error>(self) -> Result<SortedKeys, E> {
        Ok(SortedKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SortedKeys, A::Error> {
        while seq.next_element::<SortedKeys>()?.is_some() {}
        Ok(SortedKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SortedKeys, A::Error> {
        let mut last: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            if let Some(before) = last.as_ref().filter(|l| **l >= key) {
                return Err(de::Error::custom(format!("{key:?} after {before:?}")));
            }
            map.next_value::<SortedKeys>()?;
            last = Some(key);
        }
        Ok(SortedKeys)
    }
}

#[test]
fn the_key_order_check_sees_unsorted_keys() {
    assert!(serde_json::from_str::<SortedKeys>(r#"{"a":[{"b":1,"c":null}],"d":"x"}"#).is_ok());
    assert!(serde_json::from_str::<SortedKeys>(r#"{"a":[{"c":1,"b":2}]}"#).is_err());
}

#[test]
fn numbers_reconcile_on_the_example_and_damaged_copies() {
    let r = run("example", &root().join(CAPTURE), &[]);
    assert_eq!(r.code, 0);
    reconcile("example", &r);
    let r = run("anomalies", &anomalies_capture(), &[]);
    assert_eq!(r.code, 0);
    let a = &r.json["anomalies"];
    for key in [
        "link_errors",
        "malformed",
        "timestamps_backwards",
        "snaplen_truncated",
    ] {
        assert!(n(&a[key]) > 0, "the anomalies capture has {key}: {a}");
    }
    assert_eq!(
        r.json["capture"]["link_types"].as_object().map(|m| m.len()),
        Some(4)
    );
    reconcile("anomalies", &r);
    let r = run("truncated", &truncated_capture(), &[]);
    assert_eq!(r.code, 4);
    reconcile("truncated", &r);
}

#[test]
fn numbers_reconcile_on_tcpdump_captures() {
    let dir = root().join("../shared/data/pcaps/tcpdump");
    if !dir.is_dir() {
        println!(
            "note: {} is absent; corpus reconciliation skipped",
            dir.display()
        );
        return;
    }
    for name in CORPUS {
        let r = run(name, &dir.join(name), &[]);
        assert!(r.code == 0 || r.code == 4, "{name}: exit {}", r.code);
        reconcile(name, &r);
    }
}

/// The lines of captured packets: no `origin`, or a stream edit's.
fn captured(r: &Run) -> impl Iterator<Item = &Json> {
    r.lines
        .iter()
        .filter(|l| l["origin"].is_null() || l["origin"]["kind"] == "edited")
}

/// The lines of packets callouts produced (injected, or released after a pend).
fn produced(r: &Run) -> impl Iterator<Item = &Json> {
    r.lines
        .iter()
        .filter(|l| !l["origin"].is_null() && l["origin"]["kind"] != "edited")
}

fn n(v: &Json) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("an integer: {v}"))
}

/// (packets, bytes) of a Count.
fn count(c: &Json) -> [u64; 2] {
    [n(&c["packets"]), n(&c["bytes"])]
}

fn add(a: [u64; 2], b: [u64; 2]) -> [u64; 2] {
    [a[0] + b[0], a[1] + b[1]]
}

/// Every rule of "How the numbers reconcile".
fn reconcile(name: &str, r: &Run) {
    let j = &r.json;
    let packets = n(&j["capture"]["packets"]);
    let total = [packets, n(&j["capture"]["bytes"])];
    let v = &j["verdicts"];
    // 1. Verdicts cover every packet (and the --verdicts lines are those packets).
    let verdicts = ["permitted", "blocked", "absorbed", "skipped"]
        .iter()
        .fold([0, 0], |t, k| add(t, count(&v[k])));
    assert_eq!(verdicts, total, "{name}: verdicts add up to the packets");
    let lines = captured(r).fold([0, 0], |t, l| add(t, [1, n(&l["len"])]));
    assert_eq!(lines, total, "{name}: one verdict line per packet");
    for (k, action) in [
        ("permitted", "PERMIT"),
        ("blocked", "BLOCK"),
        ("absorbed", "ABSORB"),
        ("skipped", "SKIPPED"),
    ] {
        let of = captured(r).filter(|l| l["action"] == action);
        let c = of.fold([0, 0], |t, l| add(t, [1, n(&l["len"])]));
        assert_eq!(count(&v[k]), c, "{name}: {k} as in the lines");
    }
    // 2. Skip reasons cover the skipped.
    let mut skipped: BTreeMap<String, [u64; 2]> = BTreeMap::new();
    for l in captured(r).filter(|l| l["action"] == "SKIPPED") {
        let reason = l["reason"].as_str().expect("reason").to_string();
        let c = skipped.entry(reason).or_default();
        *c = add(*c, [1, n(&l["len"])]);
    }
    let reasons: BTreeMap<String, [u64; 2]> = j["skipped"]
        .as_object()
        .expect("skipped")
        .iter()
        .map(|(k, c)| (k.clone(), count(c)))
        .collect();
    assert_eq!(reasons, skipped, "{name}: skip reasons as in the lines");
    let unusable = reasons
        .get("link-layer header unusable")
        .map_or(0, |c| c[0]);
    assert_eq!(n(&j["anomalies"]["link_errors"]), unusable, "{name}");
    // 3. Link types cover every packet.
    let per_link: u64 = j["capture"]["link_types"]
        .as_object()
        .expect("link types")
        .values()
        .map(n)
        .sum();
    assert_eq!(
        per_link, packets,
        "{name}: link types add up to the packets"
    );
    // 4. Every flow ends once.
    let ended: u64 = j["flows"]["ended"]
        .as_object()
        .expect("ended")
        .values()
        .map(n)
        .sum();
    assert_eq!(ended, n(&j["flows"]["total"]), "{name}: flow ends");
    reconcile_layers(name, r);
    reconcile_filters(name, r);
    reconcile_anomalies(name, r);
    reconcile_async(name, r);
    // 9. A damaged capture.
    if !j["error"].is_null() {
        assert_eq!(n(&j["error"]["packet_index"]), packets, "{name}");
    }
}

/// 5. A layer's Counts are the visits to it in the verdict lines.
fn reconcile_layers(name: &str, r: &Run) {
    let mut visits: BTreeMap<String, [[u64; 2]; 4]> = BTreeMap::new();
    for l in captured(r) {
        let layers = elements(&l["layers"]);
        for (i, visit) in layers.iter().enumerate() {
            let column = match visit["action"].as_str() {
                Some("PERMIT") => 0,
                Some("BLOCK") if i + 1 == layers.len() && l["action"] == "ABSORB" => 2,
                Some("BLOCK") => 1,
                _ => 3,
            };
            let layer = visit["layer"].as_str().expect("layer").to_string();
            let row = visits.entry(layer).or_default();
            row[column] = add(row[column], [1, n(&l["len"])]);
        }
    }
    let rows: BTreeMap<String, [[u64; 2]; 4]> = elements(&r.json["layers"])
        .into_iter()
        .map(|row| {
            let c = ["permitted", "blocked", "absorbed", "no_match"].map(|k| count(&row[k]));
            (row["layer"].as_str().expect("layer").to_string(), c)
        })
        .collect();
    assert_eq!(rows, visits, "{name}: layer rows are the lines' visits");
    let absorbed: u64 = rows.values().map(|c| c[2][0]).sum();
    assert!(
        absorbed <= n(&r.json["verdicts"]["absorbed"]["packets"]),
        "{name}"
    );
}

/// 6. A filter's counts are the visits and lines that name it.
fn reconcile_filters(name: &str, r: &Run) {
    // id → [permits, blocks, vetoes, final]
    let mut seen: BTreeMap<u64, [u64; 4]> = BTreeMap::new();
    let mut vetoes = 0;
    for l in captured(r) {
        for visit in elements(&l["layers"]) {
            vetoes += u64::from(visit["vetoed"] == true);
            let Some(id) = visit["filter_id"].as_u64() else {
                continue;
            };
            let f = seen.entry(id).or_default();
            f[0] += u64::from(visit["action"] == "PERMIT");
            f[1] += u64::from(visit["action"] == "BLOCK");
            f[2] += u64::from(visit["vetoed"] == true);
        }
        if let Some(id) = l["filter_id"].as_u64() {
            seen.entry(id).or_default()[3] += 1;
        }
    }
    seen.retain(|_, f| f[0] + f[1] + f[3] > 0);
    let rows: BTreeMap<u64, [u64; 4]> = elements(&r.json["filters"])
        .into_iter()
        .map(|f| {
            let c = ["permits", "blocks", "vetoes", "final"].map(|k| n(&f[k]));
            (n(&f["id"]), c)
        })
        .collect();
    assert_eq!(rows, seen, "{name}: filter rows are the lines' decisions");
    assert!(
        rows.values().all(|f| f[2] <= f[1]),
        "{name}: vetoes ≤ blocks"
    );
    let finals: u64 = rows.values().map(|f| f[3]).sum();
    let classified =
        n(&r.json["capture"]["packets"]) - n(&r.json["verdicts"]["skipped"]["packets"]);
    assert!(finals <= classified, "{name}");
    assert_eq!(
        n(&r.json["anomalies"]["vetoes"]),
        vetoes,
        "{name}: vetoed visits"
    );
}

/// 7 and 8. Anomaly examples and outputs.
fn reconcile_anomalies(name: &str, r: &Run) {
    let a = &r.json["anomalies"];
    let malformed: Vec<&Json> = captured(r)
        .filter(|l| {
            l["reason"]
                .as_str()
                .is_some_and(|s| s.starts_with("malformed:"))
        })
        .collect();
    assert_eq!(n(&a["malformed"]), malformed.len() as u64, "{name}");
    assert!(malformed.iter().all(|l| l["action"] == "BLOCK"), "{name}");
    let examples = elements(&a["malformed_examples"]);
    assert_eq!(examples.len(), malformed.len().min(5), "{name}");
    for (e, l) in examples.iter().zip(&malformed) {
        assert_eq!(
            e["packet"], l["index"],
            "{name}: the first malformed packets"
        );
    }
    let link = elements(&a["link_error_examples"]).len() as u64;
    assert_eq!(link, n(&a["link_errors"]).min(5), "{name}");
    assert!(
        n(&a["truncated_classified"]) <= n(&a["snaplen_truncated"]),
        "{name}"
    );
    let o = &r.json["outputs"];
    assert_eq!(
        n(&o["verdicts"]["lines"]),
        n(&r.json["capture"]["packets"]) + produced(r).count() as u64,
        "{name}: a line per captured packet and per packet callouts produced"
    );
}

/// 10. Asynchronous work: the `async` counters against the lines of packets callouts produced.
fn reconcile_async(name: &str, r: &Run) {
    let a = &r.json["async"];
    let mut injected: BTreeMap<String, u64> = BTreeMap::new();
    let (mut delivered, mut released) = (0, 0);
    for l in produced(r) {
        if l["origin"]["kind"] == "injected" {
            let function = l["origin"]["function"].as_str().expect("function");
            *injected.entry(function.to_string()).or_default() += 1;
            delivered += u64::from(l["action"] == "PERMIT" || l["reason"] == "pended");
        } else {
            assert_eq!(l["origin"]["kind"], "released", "{name}: {l}");
            released += 1;
        }
    }
    let counted: BTreeMap<String, u64> = a["injected"]
        .as_object()
        .expect("injected")
        .iter()
        .map(|(k, v)| (k.clone(), n(v)))
        .collect();
    assert_eq!(counted, injected, "{name}: injected lines by function");
    let total: u64 = injected.values().sum();
    assert_eq!(n(&a["injected_delivered"]), delivered, "{name}");
    assert!(n(&a["injected_dropped"]) >= total - delivered, "{name}");
    assert_eq!(n(&a["held_released"]), released, "{name}: released lines");
    let pended_lines = r.lines.iter().filter(|l| l["reason"] == "pended").count() as u64;
    assert_eq!(
        n(&a["held_released"]) + n(&a["held_dropped"]),
        pended_lines,
        "{name}: every held packet is released or dropped"
    );
    assert!(n(&a["held"]) <= pended_lines, "{name}");
    let edited = captured(r)
        .filter(|l| l["origin"]["kind"] == "edited")
        .count() as u64;
    assert!(n(&a["edited"]) >= edited, "{name}: edited lines");
    assert!(
        n(&a["pend_completed"]) + n(&a["pend_expired"]) <= n(&a["pended"]),
        "{name}: a pended operation ends once"
    );
}

#[test]
fn output_counts_reconcile_with_the_verdicts() {
    let permitted = tmp("outputs-permitted.pcapng");
    let blocked = tmp("outputs-blocked.pcap");
    let r = run(
        "outputs",
        &anomalies_capture(),
        &["--permitted", utf8(&permitted), "--blocked", utf8(&blocked)],
    );
    assert_eq!(r.code, 0);
    let (o, v) = (&r.json["outputs"], &r.json["verdicts"]);
    let written = |k: &str| n(&o[k]["written"]) + n(&o[k]["unwritable"]);
    assert_eq!(written("permitted"), n(&v["permitted"]["packets"]));
    assert_eq!(
        written("blocked"),
        n(&v["blocked"]["packets"]) + n(&v["absorbed"]["packets"])
    );
    assert!(
        n(&o["blocked"]["reencapsulated"]) > 0,
        "raw IP into the pcap's link type"
    );
    reconcile("outputs", &r);
}

/// The example policy with `wfp.connection-monitor` watching every established flow.
fn monitor_policy() -> PathBuf {
    let mut policy = fs::read_to_string(root().join(POLICY)).expect("example policy");
    for layer in [
        "ALE_FLOW_ESTABLISHED_V4",
        "ALE_FLOW_ESTABLISHED_V6",
        "STREAM_V4",
    ] {
        policy.push_str(&format!(
            "\n[[filter]]\nname = \"monitor {layer}\"\nlayer = \"{layer}\"\n\
             action = \"CALLOUT_INSPECTION\"\ncallout = \"wfp.connection-monitor\"\n"
        ));
    }
    let path = tmp("monitor.toml");
    fs::write(&path, policy).expect("write policy");
    path
}

/// The example policy with `wfp.pending-inspector` holding the connections to the lab web server
/// (10.77.0.2:8080) and re-injecting clones of their outbound packets.
fn async_policy() -> PathBuf {
    let mut policy = fs::read_to_string(root().join(POLICY)).expect("example policy");
    policy.push_str(
        r#"
[builtin."wfp.pending-inspector"]
remote = "10.77.0.2"
port = 8080

[[filter]]
name = "inspect lab web connects"
layer = "ALE_AUTH_CONNECT_V4"
weight = 0xffff
action = "CALLOUT_TERMINATING"
callout = "wfp.pending-inspector"

[[filter]]
name = "inspect lab web packets"
layer = "OUTBOUND_TRANSPORT_V4"
action = "CALLOUT_TERMINATING"
callout = "wfp.pending-inspector"
"#,
    );
    let path = tmp("async.toml");
    fs::write(&path, policy).expect("write policy");
    path
}

#[test]
fn async_counters_reconcile_with_the_produced_lines() {
    let permitted = tmp("async-permitted.pcap");
    let r = run_policy(
        "async",
        &root().join(CAPTURE),
        &async_policy(),
        &["--permitted", utf8(&permitted)],
    );
    assert_eq!(r.code, 0, "{}", r.raw);
    let a = &r.json["async"];
    // The two connections to 10.77.0.2:8080: pended, completed, their SYNs held and released;
    // every outbound packet of them re-injected as a clone.
    assert_eq!(n(&a["pended"]), 2, "{a}");
    assert_eq!(n(&a["pend_completed"]), 2, "{a}");
    assert_eq!(n(&a["pend_expired"]), 0, "{a}");
    assert_eq!(n(&a["held_released"]), 2, "{a}");
    assert!(n(&a["injected"]["network-send"]) > 0, "{a}");
    assert!(produced(&r).count() > 0);
    reconcile("async", &r);
    // 8. The permitted capture has the permitted captured packets and the produced ones.
    let (o, v) = (&r.json["outputs"], &r.json["verdicts"]);
    let produced_permits = produced(&r).filter(|l| l["action"] == "PERMIT").count() as u64;
    assert_eq!(
        n(&o["permitted"]["written"]) + n(&o["permitted"]["unwritable"]),
        n(&v["permitted"]["packets"]) + produced_permits
    );
}

#[test]
fn pend_deadline_takes_seconds_and_refuses_anything_else() {
    let capture = root().join(CAPTURE);
    let r = run_policy(
        "deadline",
        &capture,
        &async_policy(),
        &["--pend-deadline", "0.25"],
    );
    assert_eq!(r.code, 0, "{}", r.raw);
    reconcile("deadline", &r);
    for bad in ["soon", "=-1", "=NaN", "=inf"] {
        let (flag, value) = match bad.strip_prefix('=') {
            Some(v) => (format!("--pend-deadline={v}"), None),
            None => ("--pend-deadline".to_string(), Some(bad)),
        };
        let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
            .args(["replay", utf8(&capture), "--policy", POLICY, &flag])
            .args(value)
            .current_dir(root())
            .output()
            .expect("run wfpctl");
        assert_eq!(out.status.code(), Some(2), "{bad}: a usage error");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--pend-deadline"), "{bad}: {err}");
    }
}
