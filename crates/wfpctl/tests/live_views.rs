//! `wfpctl show flows|netevents`, `watch` with conditions and `decide` against a canned API on
//! a real Unix socket (`fake_api`): the fixtures are the JSON shapes of docs/api.md (`FlowDto`,
//! `NetEventDto`, `PendingDto`, `DecisionResult`), so rendering is checked on exact shapes; the
//! live daemon's answers are checked in crates/wfpd/tests/mgmt_live.rs (`show flows --json`).

mod fake_api;
mod support;

use std::io::{BufRead, BufReader, Write};

use std::process::{Command, Stdio};
use std::sync::Arc;

use fake_api::{FakeApi, Reply};
use support::{text, wfpctl};

const FLOWS: &str = r#"[
 {"flow":11,"queue":0,"ip_version":4,"protocol":6,"local_addr":"10.0.0.2","local_port":40000,
  "remote_addr":"10.0.0.1","remote_port":443,"direction":"outbound","state":"ESTABLISHED",
  "layer_ids":[LAYER],"app_id":"/usr/bin/curl","bytes_out":517,"bytes_in":3300,
  "packets_out":6,"packets_in":5,"age_ms":1200,"idle_ms":3},
 {"flow":12,"ip_version":6,"protocol":17,"local_addr":"2001:db8::2","local_port":5353,
  "remote_addr":"2001:db8::1","remote_port":53,"direction":"outbound","layer_ids":[],
  "bytes_out":40,"bytes_in":0,"packets_out":1,"packets_in":0,"age_ms":10,"idle_ms":10}
]"#;

const EVENTS: &str = r#"[
 {"seq":41,"kind":"CLASSIFY_DROP","fwpm_type":3,"layer":"ALE_AUTH_CONNECT_V4","layer_id":48,
  "time_ms":1700000000123,"filter_id":9,"header_flags":31,"ip_version":4,"protocol":6,
  "local_addr":"10.0.0.2","local_port":40001,"remote_addr":"10.0.0.1","remote_port":23,
  "direction":"outbound","app_id":"/usr/bin/telnet","hard":true,"filters_considered":3},
 {"seq":42,"kind":"POSTURE","layer":"INBOUND_IPPACKET_V4","layer_id":2,"time_ms":1700000001000,
  "posture":"overload","verdict":"drop","count":17}
]"#;

const PENDING: &str = r#"[
 {"id":5,"layer":"ALE_AUTH_CONNECT_V4","layer_id":48,"flow":21,"direction":"outbound",
  "ip_version":4,"protocol":6,"local_addr":"10.0.0.2","local_port":40100,
  "remote_addr":"10.0.0.1","remote_port":8080,"app_id":"/usr/bin/wget","user_id":1000,
  "created_ms":1700000000000,"deadline_ms":1700000030000,"default":"block"},
 {"id":6,"layer":"ALE_AUTH_RECV_ACCEPT_V4","layer_id":50,"flow":22,"direction":"inbound",
  "ip_version":4,"protocol":17,"local_addr":"10.0.0.2","local_port":53,
  "remote_addr":"10.0.0.9","remote_port":5000,"created_ms":1700000000500,
  "deadline_ms":1700000030500,"default":"block"}
]"#;

fn connect_v4_id() -> u16 {
    wfp_core::catalogue::layer_by_name("ALE_AUTH_CONNECT_V4")
        .unwrap()
        .layer_id()
        .0
}

#[test]
fn show_flows_renders_wfp_names_and_json_passes_through() {
    let d = support::dir("live-flows");
    let api = FakeApi::start(&d);
    let flows = FLOWS.replace("LAYER", &connect_v4_id().to_string());
    api.route("GET /v1/flows", Reply::Body(200, flows));
    let out = wfpctl(api.path(), &["show", "flows"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let lines: Vec<&str> = t.lines().collect();
    assert!(
        lines[0].starts_with("FLOW") && lines[0].contains("BYTES OUT/IN"),
        "{t}"
    );
    assert!(
        lines[1].contains("tcp")
            && lines[1].contains("10.0.0.2:40000")
            && lines[1].contains("10.0.0.1:443")
            && lines[1].contains("ALE_AUTH_CONNECT_V4")
            && lines[1].contains("/usr/bin/curl")
            && lines[1].contains("517/3300"),
        "{t}"
    );
    assert!(
        lines[2].contains("udp") && lines[2].contains("[2001:db8::1]:53"),
        "{t}"
    );

    let out = wfpctl(api.path(), &["show", "flows", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json[0]["idle_ms"], 3,
        "fields wfpctl does not know pass through"
    );
    assert_eq!(json[1]["remote_port"], 53);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn show_netevents_sends_the_query_conditions() {
    let d = support::dir("live-events");
    let api = FakeApi::start(&d);
    api.route("GET /v1/netevents", Reply::Body(200, EVENTS.into()));
    let out = wfpctl(
        api.path(),
        &[
            "show",
            "netevents",
            "--kind",
            "CLASSIFY_DROP",
            "--kind",
            "POSTURE",
            "--layer",
            "ALE_AUTH_CONNECT_V4",
            "--addr",
            "10.0.0.1",
            "--port",
            "23",
            "--protocol",
            "tcp",
            "--start-ms",
            "1700000000000",
            "--limit",
            "10",
        ],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("CLASSIFY_DROP") && t.contains("22:13:20.123"),
        "{t}"
    );
    assert!(
        t.contains("10.0.0.1:23") && t.contains("app=/usr/bin/telnet"),
        "{t}"
    );
    assert!(t.contains("posture=overload verdict=drop count=17"), "{t}");
    let seen = api.seen();
    assert_eq!(
        seen[0].line,
        "GET /v1/netevents?kind=CLASSIFY_DROP%2CPOSTURE&layer=ALE_AUTH_CONNECT_V4&addr=10.0.0.1\
         &port=23&protocol=6&start_ms=1700000000000&limit=10"
    );
    let out = wfpctl(api.path(), &["show", "netevents", "--protocol", "sctp"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = wfpctl(api.path(), &["show", "flows", "--kind", "VETO"]);
    assert!(
        !out.status.success() && text(&out).contains("`show netevents` only"),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn watch_streams_with_conditions() {
    let d = support::dir("live-watch");
    let api = FakeApi::start(&d);
    let events: Vec<serde_json::Value> = serde_json::from_str(EVENTS).unwrap();
    let lines = events.iter().map(|e| e.to_string()).collect();
    api.route("GET /v1/events", Reply::Stream(lines));
    let mut child = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(["watch", "--kind", "CLASSIFY_DROP", "--socket"])
        .arg(api.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let mut second = String::new();
    out.read_line(&mut second).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.starts_with("#41 CLASSIFY_DROP layer=ALE_AUTH_CONNECT_V4 filter=9"),
        "{first}"
    );
    assert!(second.starts_with("#42 POSTURE"), "{second}");
    assert_eq!(api.seen()[0].line, "GET /v1/events?kind=CLASSIFY_DROP");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn decide_prompts_per_request_and_posts_the_answers() {
    let d = support::dir("live-decide");
    let api = FakeApi::start(&d);
    api.route("GET /v1/pending", Reply::Body(200, PENDING.into()));
    api.route(
        "POST /v1/pending/5",
        Reply::Body(200, r#"{"id":5,"decision":"permit","filter_id":77}"#.into()),
    );
    api.route(
        "POST /v1/pending/6",
        Reply::Body(
            404,
            r#"{"error":{"code":2150760456,"name":"FWP_E_NOT_FOUND","message":"already decided"}}"#
                .into(),
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(["decide", "--socket"])
        .arg(api.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // "what?" is asked again; p = permit + persist; n = block.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"what?\np\nn\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(
            "#5 ALE_AUTH_CONNECT_V4 tcp 10.0.0.2:40100 -> 10.0.0.1:8080 app=/usr/bin/wget uid=1000"
        ),
        "{t}"
    );
    assert!(t.contains("\"what?\": answer y, n, p, b, s or q"), "{t}");
    assert!(t.contains("#5 permitted (persistent filter 77)"), "{t}");
    assert!(t.contains("#6: not answered: FWP_E_NOT_FOUND"), "{t}");
    let posts: Vec<_> = api
        .seen()
        .into_iter()
        .filter(|s| s.line.starts_with("POST"))
        .collect();
    assert_eq!(posts.len(), 2);
    let body: serde_json::Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"decision": "permit", "persist": true})
    );
    let body: serde_json::Value = serde_json::from_str(&posts[1].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"decision": "block", "persist": false})
    );

    let out = wfpctl(api.path(), &["decide", "5", "permit", "--persist"]);
    assert!(
        text(&out).contains("#5 permitted (persistent filter 77)"),
        "{}",
        text(&out)
    );
    let out = wfpctl(api.path(), &["decide", "6", "block"]);
    assert!(
        !out.status.success() && text(&out).contains("FWP_E_NOT_FOUND"),
        "{}",
        text(&out)
    );
    let out = wfpctl(api.path(), &["decide", "--list"]);
    assert!(text(&out).contains("ALE_AUTH_RECV_ACCEPT_V4") && text(&out).contains("DEADLINE"));
    let out = wfpctl(api.path(), &["decide", "--list", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[1]["id"], 6);
    let out = wfpctl(api.path(), &["decide", "5", "maybe"]);
    assert_eq!(out.status.code(), Some(2), "usage error: {}", text(&out));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn decide_follow_answers_streamed_requests() {
    let d = support::dir("live-follow");
    let api = FakeApi::start(&d);
    api.route("GET /v1/pending", Reply::Body(200, "[]".into()));
    let pending: Vec<serde_json::Value> = serde_json::from_str(PENDING).unwrap();
    api.route(
        "GET /v1/pending/stream",
        Reply::Stream(vec![pending[1].to_string()]),
    );
    api.route(
        "POST /v1/pending/6",
        Reply::Body(200, r#"{"id":6,"decision":"block"}"#.into()),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(["decide", "--follow", "--socket"])
        .arg(api.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"n\nq\n").unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut all = String::new();
    let mut line = String::new();
    while out.read_line(&mut line).unwrap_or(0) > 0 {
        all.push_str(&line);
        if line.contains("#6 blocked") {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(all.contains("#6 ALE_AUTH_RECV_ACCEPT_V4 udp"), "{all}");
    assert!(all.contains("#6 blocked"), "{all}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn show_flows_against_a_daemon_with_no_data_path_prints_an_empty_table() {
    let d = support::dir("live-real");
    let mut config = wfpd::api::ApiConfig::default();
    config.socket = Some(d.join("wfpd.sock"));
    let engine = Arc::new(wfp_core::Engine::default());
    let server = wfpd::api::Server::start(engine, None, config).unwrap();
    let out = wfpctl(server.path(), &["show", "flows"]);
    let t = text(&out);
    // A server no data path attached to has no flows: the header, no rows, success.
    assert!(out.status.success(), "{t}");
    assert!(t.starts_with("FLOW"), "{t}");
    assert_eq!(t.lines().filter(|l| !l.trim().is_empty()).count(), 1, "{t}");
    drop(server);
    let _ = std::fs::remove_dir_all(&d);
}
