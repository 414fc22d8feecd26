//! The management API's cost over the in-process engine, in the same run:
//!
//! * **filter add, one per transaction** — `POST /v1/filters` over the Unix socket (an implicit
//!   transaction each, keep-alive) versus `Engine::add_filter`;
//! * **filter add, 1,000 per transaction** — `POST /v1/txn/begin`, 1,000 `POST /v1/filters`,
//!   `POST /v1/txn/commit` versus `Engine::begin` + 1,000 `Transaction::add_filter` + commit;
//! * **event stream** — net events recorded by the engine, drained and published by the server,
//!   received as ndjson lines by a `GET /v1/events` client, versus recording, draining and
//!   encoding the same events in process (events/s).
//!
//! Each case runs `WFP_BENCH_ROUNDS` rounds (default 5) on fresh engines; the median per op is
//! printed with the ratio API / in-process. Run: `cargo bench -p wfpd --bench api`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wfp_api::{Client, ConditionDto, FilterDto, NetEventDto, ValueDto, WeightDto};
use wfp_core::catalogue::{condition_by_name, layers};
use wfp_core::{
    ActionType, ConditionSpec, Engine, FilterSpec, MatchType, NetEvent, NetEventKind, Value,
};
use wfpd::api::{ApiConfig, Server};

fn rounds() -> usize {
    std::env::var("WFP_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn dto(i: u32) -> FilterDto {
    FilterDto {
        key: None,
        name: format!("bench {i}"),
        description: String::new(),
        flags: Vec::new(),
        provider: None,
        layer: "ALE_AUTH_CONNECT_V4".into(),
        sublayer: None,
        weight: WeightDto::Auto,
        conditions: vec![ConditionDto {
            field: "IP_REMOTE_PORT".into(),
            match_type: "EQUAL".into(),
            value: ValueDto::Uint16 {
                value: u16::try_from(i % 65535).unwrap_or(0),
            },
        }],
        action: "BLOCK".into(),
        callout: None,
        raw_context: 0,
        provider_context: None,
    }
}

fn spec(i: u32) -> FilterSpec {
    let mut f = FilterSpec::new(
        format!("bench {i}"),
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::BLOCK,
    );
    f.conditions = vec![ConditionSpec {
        field: condition_by_name("IP_REMOTE_PORT").expect("condition"),
        match_type: MatchType::Equal,
        value: Value::Uint16(u16::try_from(i % 65535).unwrap_or(0)).into(),
    }];
    f
}

struct Rig {
    dir: PathBuf,
    engine: Arc<Engine>,
    server: Server,
}

impl Rig {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("wfpd-bench-api-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let engine = Arc::new(Engine::default());
        let mut config = ApiConfig::default();
        config.socket = Some(dir.join("wfpd.sock"));
        let server = Server::start(Arc::clone(&engine), None, config).expect("server");
        Self {
            dir,
            engine,
            server,
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn per_op_us(elapsed: Duration, ops: u32) -> f64 {
    elapsed.as_secs_f64() * 1e6 / f64::from(ops)
}

/// µs per filter: (API, in process), one filter per transaction.
fn one_per_txn(n: u32) -> (f64, f64) {
    let rig = Rig::new("one");
    let mut c = Client::connect(rig.server.path()).expect("client");
    let t = Instant::now();
    for i in 0..n {
        c.add_filter(&dto(i)).expect("add");
    }
    let api = per_op_us(t.elapsed(), n);
    let engine = Engine::default();
    let t = Instant::now();
    for i in 0..n {
        engine.add_filter(spec(i)).expect("add");
    }
    let direct = per_op_us(t.elapsed(), n);
    assert_eq!(rig.engine.filters().len(), engine.filters().len());
    (api, direct)
}

/// µs per filter: (API, in process), `n` filters in one transaction.
fn many_per_txn(n: u32) -> (f64, f64) {
    let rig = Rig::new("many");
    let mut c = Client::connect(rig.server.path()).expect("client");
    let t = Instant::now();
    c.begin(false).expect("begin");
    for i in 0..n {
        c.add_filter(&dto(i)).expect("add");
    }
    c.commit().expect("commit");
    let api = per_op_us(t.elapsed(), n);
    let engine = Engine::default();
    let t = Instant::now();
    let mut txn = engine.begin();
    for i in 0..n {
        txn.add_filter(spec(i)).expect("add");
    }
    txn.commit();
    let direct = per_op_us(t.elapsed(), n);
    assert_eq!(rig.engine.filters().len(), engine.filters().len());
    (api, direct)
}

fn event(i: u64) -> NetEvent {
    NetEvent {
        filter_id: Some(wfp_core::FilterId(i)),
        ..NetEvent::new(NetEventKind::ClassifyDrop, layers::INBOUND_TRANSPORT_V4)
    }
}

/// Events per second: (through the API to a client, in process).
fn event_stream(n: u64) -> (f64, f64) {
    let rig = Rig::new("events");
    let received = Arc::new(AtomicU64::new(0));
    let mut s = UnixStream::connect(rig.server.path()).expect("connect");
    s.write_all(b"GET /v1/events HTTP/1.1\r\nHost: wfpd\r\n\r\n")
        .expect("request");
    let counter = Arc::clone(&received);
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(s);
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.starts_with('{') {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            line.clear();
        }
    });
    // Wait for the subscription.
    while received.load(Ordering::Relaxed) == 0 {
        rig.engine.report_net_event(event(0));
        rig.server.publish(&rig.engine.drain_net_events());
        std::thread::sleep(Duration::from_millis(5));
    }
    let base = received.load(Ordering::Relaxed);
    let batch = 512;
    let t = Instant::now();
    let mut sent = 0;
    while sent < n {
        for i in 0..batch {
            rig.engine.report_net_event(event(sent + i));
        }
        rig.server.publish(&rig.engine.drain_net_events());
        sent += batch;
        // Stay within the subscriber's queue (1024): no event is lost, none counted twice.
        while received.load(Ordering::Relaxed) - base + 256 < sent {
            std::thread::yield_now();
        }
    }
    while received.load(Ordering::Relaxed) - base < sent {
        std::thread::yield_now();
    }
    let api = sent as f64 / t.elapsed().as_secs_f64();
    drop(rig);
    let _ = reader.join();
    let engine = Engine::default();
    let t = Instant::now();
    let mut bytes = 0usize;
    for start in (0..n).step_by(512) {
        for i in start..(start + 512).min(n) {
            engine.report_net_event(event(i));
        }
        for e in engine.drain_net_events() {
            bytes += serde_json::to_vec(&NetEventDto::from(&e)).map_or(0, |v| v.len());
        }
    }
    let direct = n as f64 / t.elapsed().as_secs_f64();
    assert!(bytes > 0);
    (api, direct)
}

fn main() {
    let rounds = rounds();
    let mut one = (Vec::new(), Vec::new());
    let mut many = (Vec::new(), Vec::new());
    let mut events = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, d) = one_per_txn(2_000);
        println!("round {round}: add 1/txn      api {a:8.2} us/op  in-process {d:8.3} us/op");
        one.0.push(a);
        one.1.push(d);
        let (a, d) = many_per_txn(1_000);
        println!("round {round}: add 1000/txn   api {a:8.2} us/op  in-process {d:8.3} us/op");
        many.0.push(a);
        many.1.push(d);
        let (a, d) = event_stream(100_000);
        println!("round {round}: event stream   api {a:10.0} ev/s  in-process {d:10.0} ev/s");
        events.0.push(a);
        events.1.push(d);
    }
    let report = |name: &str, unit: &str, (api, direct): (Vec<f64>, Vec<f64>), slower_is_more| {
        let (a, d) = (median(api), median(direct));
        let ratio = if slower_is_more { a / d } else { d / a };
        println!("{name:<22} api {a:12.2} {unit}  in-process {d:12.3} {unit}  ratio api/in-process cost {ratio:6.1}x");
    };
    println!("--- medians of {rounds} rounds");
    report("filter add, 1/txn", "us/op", one, true);
    report("filter add, 1000/txn", "us/op", many, true);
    report("event stream", "ev/s ", events, false);
}
