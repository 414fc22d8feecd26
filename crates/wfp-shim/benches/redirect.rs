//! Benchmark: connect redirection on the data path (wfp-reference §10.3), beside its baseline in
//! the same run.
//!
//! * **redirect per connection**: every UDP connection's first packet is classified at
//!   ALE_CONNECT_REDIRECT_V4. Baseline: the callout answers PERMIT. Measured: the callout
//!   acquires the classify handle and the writable `FWPS_CONNECT_REQUEST0`, points it at another
//!   address and port, applies and releases (the shim installs the translation and rewrites the
//!   packet).
//! * **packet of a redirected flow**: packets of an established flow. Baseline: the same callout
//!   and connection, not redirected (only the redirect stage's empty-table check). Measured: the
//!   flow was redirected, so each packet is looked up in the translation table, rewritten
//!   (addresses, ports, checksums) and parsed again.
//!
//! Each figure is the median of several rounds; "added" is measured minus baseline and the ratio
//! is measured / baseline.
//!
//! Run: `cargo bench -p wfp-shim --bench redirect`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::{
    ActionType, Callout, CalloutFlags, CalloutRegistration, CalloutSpec, Engine, FilterSpec, Guid,
    LayerId, RtFilter,
};
use wfp_shim::{PacketContext, PacketDirection, Shim, ShimConfig, Timestamp, Verdict};

const CONNECTIONS: u16 = 20_000;
const PACKETS: usize = 50_000;
const ROUNDS: usize = 7;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
/// FWPS_LAYER_ALE_CONNECT_REDIRECT_V4.
const CONNECT_REDIRECT_V4: LayerId = LayerId(66);

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut t = Vec::with_capacity(usize::from(len));
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&len.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(payload);
    wfp_shim::wire::build::ip_packet(LOCAL, REMOTE, 17, &t).expect("an IPv4 UDP packet")
}

/// ALE_CONNECT_REDIRECT: PERMIT, redirecting to `to` when set.
struct Redirector {
    to: Option<SocketAddr>,
}

impl Callout for Redirector {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        _: &IncomingValues<'_>,
        _: &Metadata,
        _: &mut LayerData<'_>,
        _: &RtFilter,
        _: u64,
        out: &mut ClassifyOut,
    ) {
        if let Some(to) = self.to {
            let e = ctx.engine();
            let h = ctx.acquire_classify_handle();
            if let Ok(mut w) = e.acquire_writable_layer_data(h, ctx.filter_id(), out) {
                w.remote = Some(to);
                e.apply_modified_layer_data(h, ctx.filter_id(), w, 0);
            }
            e.release_classify_handle(h);
        }
        out.action_type = ActionType::PERMIT;
    }
}

fn shim(redirect: bool) -> Shim {
    let engine = Arc::new(Engine::default());
    let key = Guid::from_name("redirect-bench", "connect");
    let to = redirect.then(|| "10.0.0.9:5353".parse().expect("address"));
    let c: Arc<dyn Callout> = Arc::new(Redirector { to });
    engine
        .register_callout(CalloutRegistration::new(key, CalloutFlags::default(), c))
        .expect("register");
    engine
        .add_callout(CalloutSpec {
            key,
            name: "bench".into(),
            description: String::new(),
            flags: 0,
            provider: None,
            applicable_layer: CONNECT_REDIRECT_V4,
        })
        .expect("callout");
    let mut f = FilterSpec::new(
        "bench",
        CONNECT_REDIRECT_V4,
        ActionType::CALLOUT_TERMINATING,
    );
    f.callout = Some(key);
    engine.add_filter(f).expect("filter");
    Shim::new(engine, ShimConfig::default())
}

/// ns per connection: `CONNECTIONS` new UDP connections, each classified at CONNECT_REDIRECT
/// (and, redirecting, redirected).
fn connections(redirect: bool) -> f64 {
    let mut shim = shim(redirect);
    let packets: Vec<Vec<u8>> = (0..CONNECTIONS)
        .map(|i| udp(20_000 + i, 53, b"hello"))
        .collect();
    let ctx = PacketContext::default();
    let mut now = Timestamp::from_secs(1);
    let mut rewritten = 0usize;
    let t = Instant::now();
    for p in &packets {
        now = now + Duration::from_micros(1);
        let v = shim.handle_packet(now, PacketDirection::Outbound, p, &ctx);
        assert_eq!(v.verdict, Verdict::Permit);
        rewritten += usize::from(v.edited.is_some());
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(CONNECTIONS);
    let want = if redirect {
        usize::from(CONNECTIONS)
    } else {
        0
    };
    assert_eq!(rewritten, want);
    black_box(shim.stats());
    ns
}

/// ns per packet: `PACKETS` packets of one established flow, redirected or not.
fn packets(redirect: bool) -> f64 {
    let mut shim = shim(redirect);
    let p = udp(40_000, 53, &[0x5a; 64]);
    let ctx = PacketContext::default();
    let mut now = Timestamp::from_secs(1);
    shim.handle_packet(now, PacketDirection::Outbound, &p, &ctx);
    let mut rewritten = 0usize;
    let t = Instant::now();
    for _ in 0..PACKETS {
        now = now + Duration::from_nanos(100);
        let v = shim.handle_packet(now, PacketDirection::Outbound, &p, &ctx);
        rewritten += usize::from(v.edited.is_some());
    }
    let ns = t.elapsed().as_nanos() as f64 / PACKETS as f64;
    assert_eq!(rewritten, if redirect { PACKETS } else { 0 });
    ns
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn row(what: &str, unit: &str, base: f64, measured: f64) {
    println!(
        "{what:<28} {base:>10.0} {measured:>10.0} {:>10.0} {:>7.2}x   ns/{unit}",
        measured - base,
        measured / base
    );
}

fn main() {
    println!("connect redirect benchmark (median of {ROUNDS} rounds; ratio = measured / baseline)");
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>8}",
        "", "baseline", "measured", "added", "ratio"
    );
    let base = median((0..ROUNDS).map(|_| connections(false)).collect());
    let redir = median((0..ROUNDS).map(|_| connections(true)).collect());
    row("redirect (connection)", "connection", base, redir);
    let base = median((0..ROUNDS).map(|_| packets(false)).collect());
    let redir = median((0..ROUNDS).map(|_| packets(true)).collect());
    row("redirected flow (packet)", "packet", base, redir);
    println!(
        "baseline: the same callout answering PERMIT without redirecting, same shim, same packets"
    );
}
