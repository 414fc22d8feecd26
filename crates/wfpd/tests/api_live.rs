//! The data-path endpoints end to end, in process (no queues): `/v1/netevents` and the filtered
//! `/v1/events` stream, `/v1/pending` driven by real packets through a real shim with the
//! `wfp.interactive` callout, and `/v1/metrics` parsed as Prometheus text on the socket and on
//! TCP.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wfp_api::{Client, DecisionRequest, DecisionResult, NetEventDto, PendingDto};
use wfp_callouts::{builtin, Host};
use wfp_core::catalogue::{self, layers};
use wfp_core::engine::{FlowTracking, NetEventDetail, Posture};
use wfp_core::{
    ActionType, CalloutRegistration, CalloutSpec, Engine, EngineOptions, FilterSpec, Guid,
    NetEvent, NetEventKind, Value,
};
use wfp_shim::wire::build::ip_packet;
use wfp_shim::{OutputOrigin, PacketContext, PacketDirection, Reason, Shim, ShimConfig};
use wfp_shim::{Timestamp, Verdict};
use wfpd::api::{ApiConfig, DataPath, Server};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wfpd-api-live-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(dir: &Path) -> ApiConfig {
    let mut config = ApiConfig::default();
    config.socket = Some(dir.join("wfpd.sock"));
    config.request_timeout_ms = 2000;
    config
}

/// One raw HTTP exchange; (status, body).
fn raw_get(path: &Path, target: &str) -> (u16, String) {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: wfpd\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn drop_values(remote: Ipv4Addr, port: u16) -> Vec<Value> {
    let def = catalogue::layer(layers::INBOUND_TRANSPORT_V4).unwrap();
    let mut values = vec![Value::Empty; def.fields.len()];
    for (name, v) in [
        ("IP_PROTOCOL", Value::Uint8(6)),
        ("IP_LOCAL_ADDRESS", Value::Uint32(0x0a00_0001)),
        ("IP_REMOTE_ADDRESS", Value::Uint32(u32::from(remote))),
        ("IP_LOCAL_PORT", Value::Uint16(port)),
        ("IP_REMOTE_PORT", Value::Uint16(50000)),
    ] {
        values[def.field_index_by_name(name).unwrap()] = v;
    }
    values
}

// §11.5: enumeration with a time window and conditions over the socket; the live stream applies
// the same conditions.
#[test]
fn netevents_are_enumerated_and_streamed_with_conditions() {
    let dir = tempdir();
    let engine = Arc::new(Engine::default());
    let server = Server::start(Arc::clone(&engine), None, config(&dir)).unwrap();
    let mut c = Client::connect(server.path()).unwrap();
    let stream = Client::connect(server.path())
        .unwrap()
        .events_matching::<NetEventDto>(&[("kind", "CLASSIFY_DROP".into()), ("port", "22".into())])
        .unwrap();
    let reader = std::thread::spawn(move || stream.take(1).collect::<Vec<_>>());
    let id = engine
        .add_filter(FilterSpec::new(
            "drop",
            layers::INBOUND_TRANSPORT_V4,
            ActionType::BLOCK,
        ))
        .unwrap();
    let before = wfpd_now_ms();
    let meta = wfp_core::callout::Metadata::default();
    let classify = |remote: Ipv4Addr, port| {
        engine.classify(
            layers::INBOUND_TRANSPORT_V4,
            &drop_values(remote, port),
            &meta,
            &mut wfp_core::callout::LayerData::None,
            None,
        )
    };
    // Wait until the subscription is in place: the stream answers only port 22 drops.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < deadline {
        classify(Ipv4Addr::new(192, 0, 2, 9), 80);
        classify(Ipv4Addr::new(192, 0, 2, 7), 22);
        server.publish(&engine.drain_net_events());
        std::thread::sleep(Duration::from_millis(20));
    }
    let streamed = reader.join().unwrap();
    let first = streamed[0].as_ref().unwrap();
    assert_eq!(
        (first.kind.as_str(), first.local_port),
        ("CLASSIFY_DROP", Some(22))
    );
    engine.report_net_event(NetEvent {
        detail: Some(NetEventDetail::Posture {
            posture: Posture::Hang,
            accepted: true,
            count: 4,
        }),
        ..NetEvent::new(NetEventKind::Posture, layers::INBOUND_IPPACKET_V4)
    });
    let all: Vec<NetEventDto> = c.call::<(), _>("GET", "/v1/netevents", None).unwrap();
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let by_addr: Vec<NetEventDto> = c
        .call::<(), _>(
            "GET",
            "/v1/netevents?addr=192.0.2.7&kind=CLASSIFY_DROP",
            None,
        )
        .unwrap();
    assert!(!by_addr.is_empty());
    for e in &by_addr {
        assert_eq!(e.remote_addr, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))));
        assert_eq!(e.filter_id, Some(id.0));
        assert_eq!(e.fwpm_type, Some(3));
        assert_eq!(e.direction.as_deref(), Some("inbound"));
        assert_eq!(e.hard, Some(true));
        let t = e.time_ms.expect("stamped by wfpd");
        assert!(t + 1000 >= before, "{t} vs {before}");
    }
    let window: Vec<NetEventDto> = c
        .call::<(), _>(
            "GET",
            &format!(
                "/v1/netevents?start_ms={}&kind=POSTURE&limit=1",
                wfpd_now_ms() + 60_000
            ),
            None,
        )
        .unwrap();
    assert!(window.is_empty(), "nothing in a future window");
    let posture: Vec<NetEventDto> = c
        .call::<(), _>(
            "GET",
            "/v1/netevents?kind=POSTURE&layer=INBOUND_IPPACKET_V4",
            None,
        )
        .unwrap();
    assert_eq!(posture.len(), 1);
    assert_eq!(posture[0].posture.as_deref(), Some("hang"));
    assert_eq!(
        (posture[0].verdict.as_deref(), posture[0].count),
        (Some("accept"), Some(4))
    );
    let limited: Vec<NetEventDto> = c
        .call::<(), _>("GET", "/v1/netevents?limit=2", None)
        .unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[1].seq, all.last().unwrap().seq, "the newest ones");
    // A watcher resuming after a seq gets the ring's later events first, then live ones.
    let resume_from = all[all.len() - 2].seq;
    let resumed = Client::connect(server.path())
        .unwrap()
        .events_matching::<NetEventDto>(&[("after_seq", resume_from.to_string())])
        .unwrap();
    let reader = std::thread::spawn(move || resumed.take(3).collect::<Vec<_>>());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < deadline {
        classify(Ipv4Addr::new(192, 0, 2, 8), 25);
        server.publish(&engine.drain_net_events());
        std::thread::sleep(Duration::from_millis(20));
    }
    let seqs: Vec<u64> = reader
        .join()
        .unwrap()
        .into_iter()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(seqs[0], resume_from + 1, "{seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap, no repeat: {seqs:?}"
    );
    let bad = c.call::<(), Vec<NetEventDto>>("GET", "/v1/netevents?kind=NOPE", None);
    assert!(matches!(
        bad,
        Err(wfp_api::ClientError::Api { status: 400, .. })
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn wfpd_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

// ----- /v1/pending with real packets ------------------------------------------------------

const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 443);

fn syn(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut seg = Vec::new();
    seg.extend_from_slice(&src.port().to_be_bytes());
    seg.extend_from_slice(&dst.port().to_be_bytes());
    seg.extend_from_slice(&1000u32.to_be_bytes());
    seg.extend_from_slice(&0u32.to_be_bytes());
    seg.extend_from_slice(&[5 << 4, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    ip_packet(src.ip(), dst.ip(), 6, &seg).unwrap()
}

/// An engine with announced flows, a shim, a host, and `wfp.interactive` at AUTH_CONNECT.
struct Rig {
    engine: Arc<Engine>,
    shim: Shim,
    host: Host,
    now: Timestamp,
}

impl Rig {
    fn new() -> Self {
        let engine = Arc::new(Engine::new(EngineOptions {
            flow_tracking: FlowTracking::Announced,
            ..EngineOptions::default()
        }));
        let host = Host::new();
        let b = builtin("wfp.interactive").unwrap();
        let layer = layers::ALE_AUTH_CONNECT_V4;
        let key = Guid::from_name("api-live", "interactive");
        engine
            .register_callout(CalloutRegistration {
                key,
                flags: b.flags,
                callout: b.make_with(&host, &[]).unwrap(),
                flow_delete: b.flow_delete,
            })
            .unwrap();
        engine
            .add_callout(CalloutSpec {
                key,
                name: "interactive".into(),
                description: String::new(),
                flags: 0,
                provider: None,
                applicable_layer: layer,
            })
            .unwrap();
        let mut f = FilterSpec::new("ask", layer, ActionType::CALLOUT_TERMINATING);
        f.callout = Some(key);
        engine.add_filter(f).unwrap();
        Self {
            shim: Shim::new(Arc::clone(&engine), ShimConfig::default()),
            engine,
            host,
            now: Timestamp::from_secs(1),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> wfp_shim::PacketVerdict {
        self.now = self.now.saturating_add(Duration::from_millis(1));
        self.host.clock.set(self.now.as_duration());
        self.shim.handle_packet(
            self.now,
            PacketDirection::Outbound,
            bytes,
            &PacketContext {
                // The socket owner as the data path's identity resolver gives it (uid 1000).
                owner: Some(wfp_shim::Owner {
                    user: Some(Arc::new(wfp_core::security::Token {
                        uid: 1000,
                        gids: vec![1000],
                    })),
                    ..wfp_shim::Owner::default()
                }),
                ..PacketContext::default()
            },
        )
    }

    fn work(&mut self) -> Vec<wfp_shim::ShimOutput> {
        self.shim.handle_async(self.now);
        std::iter::from_fn(|| self.shim.poll_output()).collect()
    }

    fn data_path(&self) -> DataPath {
        let clock = Arc::clone(&self.host.clock);
        DataPath {
            workers: Vec::new(),
            prompts: Some(Arc::clone(&self.host.prompts)),
            now: Arc::new(move || clock.now()),
            flows: None,
            absent_accepted: 0,
            uninspected: None,
        }
    }
}

#[test]
fn pended_connections_are_listed_streamed_and_decided_through_the_socket() {
    let dir = tempdir();
    let store_path = dir.join("store.redb");
    let store = Arc::new(wfp_store::Store::open(&store_path).unwrap());
    let mut rig = Rig::new();
    let mut cfg = config(&dir);
    cfg.pending_deadline_ms = 5_000;
    let server = Server::start(Arc::clone(&rig.engine), Some(Arc::clone(&store)), cfg).unwrap();
    assert!(server.attach(rig.data_path()));
    // A subscriber of new prompts.
    let mut s = UnixStream::connect(server.path()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /v1/pending/stream HTTP/1.1\r\nHost: wfpd\r\n\r\n").unwrap();
    let mut lines = BufReader::new(s);

    let packet = syn(CLIENT, SERVER);
    let v = rig.send(&packet);
    assert_eq!((v.verdict, v.reason), (Verdict::Absorb, Reason::Pended));
    let mut c = Client::connect(server.path()).unwrap();
    let pending: Vec<PendingDto> = c.call::<(), _>("GET", "/v1/pending", None).unwrap();
    assert_eq!(pending.len(), 1);
    let p = &pending[0];
    assert_eq!(p.layer, "ALE_AUTH_CONNECT_V4");
    assert_eq!(
        (p.remote_addr, p.remote_port),
        (Some(SERVER.ip()), Some(443))
    );
    assert_eq!((p.local_port, p.protocol), (Some(40000), Some(6)));
    assert_eq!(
        (p.direction.as_str(), p.default.as_str()),
        ("outbound", "block")
    );
    assert_eq!(p.deadline_ms - p.created_ms, 5_000);
    // Issue 14: the flow owner's uid (ALE_USER_ID) reaches the prompt.
    assert_eq!(p.user_id, Some(1000));
    // The stream sends it too (after the chunked head, one JSON line in a chunk).
    let streamed = loop {
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        if line.trim_start().starts_with('{') {
            break serde_json::from_str::<PendingDto>(line.trim()).unwrap();
        }
    };
    assert_eq!(streamed.id, p.id);
    // A bad decision, then permit and persist.
    let bad = c.call::<_, DecisionResult>(
        "POST",
        &format!("/v1/pending/{}", p.id),
        Some(&serde_json::json!({"decision": "maybe"})),
    );
    assert!(matches!(
        bad,
        Err(wfp_api::ClientError::Api { status: 400, .. })
    ));
    let r: DecisionResult = c
        .call(
            "POST",
            &format!("/v1/pending/{}", p.id),
            Some(&DecisionRequest {
                decision: "permit".into(),
                persist: true,
            }),
        )
        .unwrap();
    assert_eq!(r.id, p.id);
    let filter = rig
        .engine
        .filter(wfp_core::FilterId(r.filter_id.unwrap()))
        .unwrap();
    assert_eq!(filter.action(), ActionType::PERMIT);
    assert_eq!(
        store.count().unwrap(),
        1,
        "the persisted filter is in the store"
    );
    let again = c.call::<_, DecisionResult>(
        "POST",
        &format!("/v1/pending/{}", p.id),
        Some(&DecisionRequest {
            decision: "block".into(),
            persist: false,
        }),
    );
    assert!(matches!(
        again,
        Err(wfp_api::ClientError::Api { status: 404, .. })
    ));
    // The data path reauthorizes: the held SYN is released, permitted.
    let out = rig.work();
    assert!(
        out.iter()
            .any(|o| matches!(o.origin, OutputOrigin::Released { .. })
                && o.verdict.verdict == Verdict::Permit
                && o.bytes == packet),
        "{out:?}"
    );

    // Another connection nobody answers: past the deadline the default (block) applies and a
    // PEND_TIMEOUT event is recorded.
    let mut other = CLIENT;
    other.set_port(40001);
    let mut dst = SERVER;
    dst.set_port(8443);
    assert_eq!(rig.send(&syn(other, dst)).reason, Reason::Pended);
    let id = c
        .call::<(), Vec<PendingDto>>("GET", "/v1/pending", None)
        .unwrap()[0]
        .id;
    rig.host
        .clock
        .set(rig.now.as_duration() + Duration::from_secs(5));
    server.housekeeping();
    assert!(c
        .call::<(), Vec<PendingDto>>("GET", "/v1/pending", None)
        .unwrap()
        .is_empty());
    let timeouts: Vec<NetEventDto> = c
        .call::<(), _>("GET", "/v1/netevents?kind=PEND_TIMEOUT", None)
        .unwrap();
    assert_eq!(timeouts.len(), 1);
    assert_eq!(timeouts[0].pending_id, Some(id));
    assert_eq!(timeouts[0].verdict.as_deref(), Some("block"));
    assert_eq!(timeouts[0].remote_port, Some(8443));
    assert!(rig.work().is_empty(), "blocked: nothing released");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deciding_an_unknown_pending_id_is_not_found() {
    let dir = tempdir();
    let rig = Rig::new();
    let server = Server::start(Arc::clone(&rig.engine), None, config(&dir)).unwrap();
    server.attach(rig.data_path());
    let mut c = Client::connect(server.path()).unwrap();
    let r = c.call::<_, DecisionResult>(
        "POST",
        "/v1/pending/77",
        Some(&DecisionRequest {
            decision: "permit".into(),
            persist: false,
        }),
    );
    assert!(matches!(
        r,
        Err(wfp_api::ClientError::Api { status: 404, .. })
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- /v1/metrics ------------------------------------------------------------------------

/// Parses the Prometheus text exposition strictly: every family has HELP and TYPE before its
/// samples, every sample line is `name{labels} value`; returns sample → value.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let (key, value) = line.rsplit_once(' ').expect("sample value");
        let name = key.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample before its TYPE: {line}");
        if let Some(labels) = key.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (k, v) = pair.split_once("=\"").expect("label");
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{k}"
                    );
                    assert!(!v.is_empty() || pair.ends_with('"'), "{line}");
                }
            }
        }
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        out.insert(key.to_string(), v);
    }
    out
}

#[test]
fn metrics_are_prometheus_text_on_the_socket_and_on_tcp() {
    let dir = tempdir();
    let mut rig = Rig::new();
    let mut cfg = config(&dir);
    cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = Server::start(Arc::clone(&rig.engine), None, cfg).unwrap();
    server.attach(rig.data_path());
    let m = server.classify_metrics();
    m.observe(
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::BLOCK,
        Duration::from_micros(3),
    );
    m.observe(
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::PERMIT,
        Duration::from_micros(30),
    );
    rig.send(&syn(CLIENT, SERVER));
    server.publish(&rig.engine.drain_net_events());
    let (status, body) = raw_get(server.path(), "/v1/metrics");
    assert_eq!(status, 200);
    let samples = parse_exposition(&body);
    let get = |k: &str| {
        *samples
            .get(k)
            .unwrap_or_else(|| panic!("no {k} in\n{body}"))
    };
    assert_eq!(get("wfp_filters"), 1.0);
    assert_eq!(get("wfp_pending_authorizations"), 1.0);
    assert_eq!(get("wfp_pended_operations"), 1.0);
    assert_eq!(
        get("wfp_packets_total{layer=\"ALE_AUTH_CONNECT_V4\",verdict=\"block\"}"),
        1.0
    );
    assert_eq!(get("wfp_classify_duration_seconds_count"), 2.0);
    assert_eq!(
        get("wfp_classify_duration_seconds_bucket{le=\"5e-6\"}"),
        1.0
    );
    assert_eq!(
        get("wfp_classify_duration_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    assert_eq!(
        get("wfp_posture_events_total{posture=\"hang\",verdict=\"accept\"}"),
        0.0
    );
    assert!(get("wfp_api_connections") >= 1.0);
    assert!(samples.contains_key("wfp_net_events_total{kind=\"CLASSIFY_DROP\"}"));
    // A client's open transaction holds the writer lock: a scrape does not wait for it.
    let mut holder = Client::connect(server.path()).unwrap();
    holder.begin(false).unwrap();
    let t = Instant::now();
    let (status, _) = raw_get(server.path(), "/v1/metrics");
    assert_eq!(status, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    holder.abort().unwrap();
    // The same over TCP.
    let addr = server.metrics_addr().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let mut t = std::net::TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(t, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    t.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("Content-Type: text/plain; version=0.0.4"));
    let tcp = parse_exposition(out.split_once("\r\n\r\n").unwrap().1);
    assert_eq!(tcp.get("wfp_filters"), Some(&1.0));
    drop(server);
    // A non-loopback address is refused unless allowed.
    let mut cfg = config(&dir);
    cfg.metrics_listen = Some("0.0.0.0:0".parse().unwrap());
    assert!(Server::start(Arc::new(Engine::default()), None, cfg).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flows_come_from_the_data_paths_flow_source() {
    let dir = tempdir();
    let rig = Rig::new();
    let server = Server::start(Arc::clone(&rig.engine), None, config(&dir)).unwrap();
    let mut c = Client::connect(server.path()).unwrap();
    let none: Vec<wfp_api::FlowDto> = c.call::<(), _>("GET", "/v1/flows", None).unwrap();
    assert!(none.is_empty(), "no data path attached");
    let board = Arc::new(wfpd::api::FlowBoard::default());
    let mut data = rig.data_path();
    data.flows = Some(Arc::clone(&board) as Arc<dyn wfpd::api::FlowSource>);
    server.attach(data);
    let flow = wfp_api::FlowDto {
        flow: 5,
        queue: 3,
        ip_version: 4,
        protocol: 6,
        local_addr: CLIENT.ip(),
        local_port: CLIENT.port(),
        remote_addr: SERVER.ip(),
        remote_port: SERVER.port(),
        direction: "outbound".into(),
        state: "established".into(),
        layer_ids: vec![layers::ALE_AUTH_CONNECT_V4.0],
        app_id: Some("/usr/bin/curl".into()),
        bytes_out: 100,
        bytes_in: 2000,
        packets_out: 3,
        packets_in: 4,
        age_ms: 1500,
        idle_ms: 10,
    };
    board.publish(3, vec![flow.clone()]);
    let got: Vec<wfp_api::FlowDto> = c.call::<(), _>("GET", "/v1/flows", None).unwrap();
    assert_eq!(got, [flow]);
    let (_, metrics) = raw_get(server.path(), "/v1/metrics");
    assert!(metrics.contains("\nwfp_flows 1\n"), "{metrics}");
    board.publish(3, Vec::new());
    let got: Vec<wfp_api::FlowDto> = c.call::<(), _>("GET", "/v1/flows", None).unwrap();
    assert!(got.is_empty());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
