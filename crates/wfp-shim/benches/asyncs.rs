//! Benchmark: the added cost of the asynchronous machinery on the data path (wfp-reference §10.1,
//! §10.4), each beside its synchronous baseline in the same run.
//!
//! * **pend + complete per connection**: every UDP connection's first packet is authorized at
//!   ALE_AUTH_CONNECT. Baseline: the callout answers PERMIT. Measured: the callout pends the
//!   operation (BLOCK+ABSORB, the shim holds the packet), the test completes it at once
//!   (`FwpsCompleteOperation0`), and `Shim::handle_async` runs the reauthorization classify and
//!   releases the held packet (taken with `poll_output`).
//! * **injection per packet**: packets of an established flow at OUTBOUND_TRANSPORT. Baseline: the
//!   callout answers PERMIT. Measured: the callout clones the packet, injects the clone
//!   (`FwpsInjectNetworkSendAsync0`) and absorbs the original; `handle_async` re-runs the clone
//!   through the outbound layers (the callout sees it injected by itself and permits it) and
//!   completes the injection; the output is taken with `poll_output`.
//!
//! * **idle asynchronous step**: the same packets with nothing asynchronous going on (the callout
//!   answers PERMIT). Baseline: `handle_packet` only. Measured: `handle_packet`, then
//!   `Shim::handle_async` and `poll_output` after every packet — what an inline data path pays
//!   per batch (here, batches of one packet: the worst case) when no callout pends or injects.
//!
//! Each figure is the median of several rounds, in ns per connection / per packet; "added" is
//! measured minus baseline and the ratio is measured / baseline.
//!
//! Run: `cargo bench -p wfp-shim --bench asyncs`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::layers;
use wfp_core::constants::{ClassifyOutFlags, ConditionFlags};
use wfp_core::inject::{AddressFamily, Inject, InjectionHandle, InjectionKind, InjectionTypes};
use wfp_core::pend::CompletionContext;
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

/// ALE_AUTH_CONNECT: PERMIT, or (pending) pend the initial authorization and permit its
/// reauthorization.
struct Auth {
    pend: bool,
    pended: Mutex<Vec<CompletionContext>>,
}

impl Callout for Auth {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        _: &mut LayerData<'_>,
        _: &RtFilter,
        _: u64,
        out: &mut ClassifyOut,
    ) {
        out.action_type = ActionType::PERMIT;
        let flags = values.by_name("FLAGS").as_u64().unwrap_or(0) as u32;
        if !self.pend || flags & ConditionFlags::IS_REAUTHORIZE.0 != 0 {
            return;
        }
        if let Ok(c) = ctx.pend_operation(meta) {
            self.pended.lock().expect("lock").push(c);
            out.action_type = ActionType::BLOCK;
            out.flags |= ClassifyOutFlags::ABSORB;
            out.clear_write();
        }
    }
}

/// OUTBOUND_TRANSPORT: PERMIT, or (injecting) clone + inject + absorb, permitting its own clones.
struct Reinject {
    handle: Option<InjectionHandle>,
}

impl Callout for Reinject {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        _: &IncomingValues<'_>,
        meta: &Metadata,
        ld: &mut LayerData<'_>,
        _: &RtFilter,
        _: u64,
        out: &mut ClassifyOut,
    ) {
        out.action_type = ActionType::PERMIT;
        let (Some(h), LayerData::Packet(p)) = (self.handle, &*ld) else {
            return;
        };
        if meta.injection.is_some() {
            return;
        }
        let Ok(clone) = ctx.clone_packet(meta, p) else {
            return;
        };
        let st = ctx.engine().inject(Inject {
            handle: h,
            context: 0,
            kind: InjectionKind::NetworkSend { compartment: 1 },
            packet: clone,
            completion: None,
        });
        if st == wfp_core::Status::SUCCESS {
            out.action_type = ActionType::BLOCK;
            out.flags |= ClassifyOutFlags::ABSORB;
            out.clear_write();
        }
    }
}

fn install(engine: &Engine, layer: LayerId, c: Arc<dyn Callout>) {
    let key = Guid::from_name("asyncs-bench", &format!("{layer:?}"));
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
            applicable_layer: layer,
        })
        .expect("callout");
    let mut f = FilterSpec::new("bench", layer, ActionType::CALLOUT_TERMINATING);
    f.callout = Some(key);
    engine.add_filter(f).expect("filter");
}

/// ns per connection: `CONNECTIONS` new UDP connections, each authorized (and, pending, pended,
/// completed and released).
fn connections(pend: bool) -> f64 {
    let engine = Arc::new(Engine::default());
    let auth = Arc::new(Auth {
        pend,
        pended: Mutex::new(Vec::new()),
    });
    install(&engine, layers::ALE_AUTH_CONNECT_V4, auth.clone());
    let mut shim = Shim::new(engine.clone(), ShimConfig::default());
    let packets: Vec<Vec<u8>> = (0..CONNECTIONS)
        .map(|i| udp(20_000 + i, 1000, b"hello"))
        .collect();
    let ctx = PacketContext::default();
    let mut now = Timestamp::from_secs(1);
    let mut delivered = 0usize;
    let t = Instant::now();
    for p in &packets {
        now = now + Duration::from_micros(1);
        let v = shim.handle_packet(now, PacketDirection::Outbound, p, &ctx);
        if v.verdict == Verdict::Permit {
            delivered += 1;
        }
        if pend {
            for c in auth.pended.lock().expect("lock").drain(..) {
                engine.complete_operation(c, None);
            }
            shim.handle_async(now);
            while let Some(o) = shim.poll_output() {
                delivered += usize::from(o.verdict.verdict == Verdict::Permit);
            }
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(CONNECTIONS);
    assert_eq!(
        delivered,
        usize::from(CONNECTIONS),
        "every connection delivered once"
    );
    black_box(shim.stats());
    ns
}

/// ns per packet: `PACKETS` packets of one established flow (and, injecting, each one cloned,
/// injected, run again and completed).
fn packets(inject: bool) -> f64 {
    let engine = Arc::new(Engine::default());
    let handle = inject.then(|| {
        engine
            .create_injection_handle(AddressFamily::Inet, InjectionTypes::NETWORK)
            .expect("handle")
    });
    install(
        &engine,
        layers::OUTBOUND_TRANSPORT_V4,
        Arc::new(Reinject { handle }),
    );
    let mut shim = Shim::new(engine.clone(), ShimConfig::default());
    let p = udp(40_000, 53, &[0x5a; 64]);
    let ctx = PacketContext::default();
    let mut now = Timestamp::from_secs(1);
    // Establish the flow outside the measurement.
    shim.handle_packet(now, PacketDirection::Outbound, &p, &ctx);
    shim.handle_async(now);
    while shim.poll_output().is_some() {}
    let mut delivered = 0usize;
    let t = Instant::now();
    for _ in 0..PACKETS {
        now = now + Duration::from_nanos(100);
        let v = shim.handle_packet(now, PacketDirection::Outbound, &p, &ctx);
        delivered += usize::from(v.verdict == Verdict::Permit);
        if inject {
            shim.handle_async(now);
            while let Some(o) = shim.poll_output() {
                delivered += usize::from(o.verdict.verdict == Verdict::Permit);
            }
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / PACKETS as f64;
    assert_eq!(delivered, PACKETS, "every packet delivered once");
    if inject {
        let st = engine.injection_stats();
        assert_eq!(st.delivered as usize, PACKETS + 1);
        assert_eq!(engine.ledger_counts(), Default::default());
    }
    ns
}

/// ns per packet: `PACKETS` permitted packets of one established flow, with (`step`) or without
/// an asynchronous step after each one while nothing asynchronous is pending.
fn idle(step: bool) -> f64 {
    let engine = Arc::new(Engine::default());
    install(
        &engine,
        layers::OUTBOUND_TRANSPORT_V4,
        Arc::new(Reinject { handle: None }),
    );
    let mut shim = Shim::new(engine.clone(), ShimConfig::default());
    let p = udp(40_000, 53, &[0x5a; 64]);
    let ctx = PacketContext::default();
    let mut now = Timestamp::from_secs(1);
    shim.handle_packet(now, PacketDirection::Outbound, &p, &ctx);
    let mut delivered = 0usize;
    let t = Instant::now();
    for _ in 0..PACKETS {
        now = now + Duration::from_nanos(100);
        let v = shim.handle_packet(now, PacketDirection::Outbound, &p, &ctx);
        delivered += usize::from(v.verdict == Verdict::Permit);
        if step {
            shim.handle_async(now);
            while let Some(o) = shim.poll_output() {
                black_box(o);
            }
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / PACKETS as f64;
    assert_eq!(delivered, PACKETS, "every packet permitted");
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
    println!("async machinery benchmark (median of {ROUNDS} rounds; ratio = measured / baseline)");
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>8}",
        "", "baseline", "measured", "added", "ratio"
    );
    let base = median((0..ROUNDS).map(|_| connections(false)).collect());
    let pend = median((0..ROUNDS).map(|_| connections(true)).collect());
    row("pend+complete (connection)", "connection", base, pend);
    let base = median((0..ROUNDS).map(|_| packets(false)).collect());
    let inj = median((0..ROUNDS).map(|_| packets(true)).collect());
    row("clone+inject (packet)", "packet", base, inj);
    let base = median((0..ROUNDS).map(|_| idle(false)).collect());
    let step = median((0..ROUNDS).map(|_| idle(true)).collect());
    row("idle handle_async (batch)", "packet", base, step);
    println!("baseline: the same callout answering PERMIT synchronously, same shim, same packets");
}
