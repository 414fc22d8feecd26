//! Net-event cost on the classify path (§11.5): ns per classify with collection on vs off (the
//! in-process baseline, same build), for a packet a static BLOCK drops (an event recorded per
//! packet) and one a PERMIT allows (no event: only the one branch that decides not to record).
//!
//! Run: `cargo bench -p wfp-core --bench net_events`. Each case runs several rounds of `OPS`
//! classifies and keeps the best round (the machine is shared); the ring is drained every 1,024
//! classifies, as the daemon's event pump would.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::Instant;

use wfp_core::catalogue::{condition_by_name, layer, layers};
use wfp_core::{
    ActionType, ConditionSpec, Engine, EngineOptions, FilterSpec, LayerData, MatchType, Metadata,
    Value,
};

const OPS: u32 = 200_000;
const ROUNDS: u32 = 11;

fn engine(collect: bool) -> Engine {
    let e = Engine::new(EngineOptions {
        collect_net_events: collect,
        ..EngineOptions::default()
    });
    let port = condition_by_name("IP_LOCAL_PORT").expect("IP_LOCAL_PORT exists");
    let mut block = FilterSpec::new("block 23", layers::INBOUND_TRANSPORT_V4, ActionType::BLOCK);
    block.conditions.push(ConditionSpec {
        field: port,
        match_type: MatchType::Equal,
        value: Value::Uint16(23).into(),
    });
    let permit = FilterSpec::new("permit", layers::INBOUND_TRANSPORT_V4, ActionType::PERMIT);
    let mut tx = e.begin();
    tx.add_filter(block).expect("block filter");
    tx.add_filter(permit).expect("permit filter");
    tx.commit();
    e
}

fn values(local_port: u16) -> Vec<Value> {
    let def = layer(layers::INBOUND_TRANSPORT_V4).expect("layer exists");
    let mut v = vec![Value::Empty; def.fields.len()];
    let mut set = |name: &str, value: Value| {
        if let Some(slot) = def.field_index_by_name(name).and_then(|i| v.get_mut(i)) {
            *slot = value;
        }
    };
    set("IP_PROTOCOL", Value::Uint8(6));
    set("IP_LOCAL_PORT", Value::Uint16(local_port));
    set("IP_REMOTE_PORT", Value::Uint16(49152));
    v
}

/// ns per classify for one round.
fn round(e: &Engine, values: &[Value]) -> f64 {
    let meta = Metadata::default();
    let start = Instant::now();
    for i in 0..OPS {
        let mut data = LayerData::None;
        let r = e.classify(
            layers::INBOUND_TRANSPORT_V4,
            black_box(values),
            &meta,
            &mut data,
            None,
        );
        black_box(r);
        if i % 1024 == 1023 {
            black_box(e.drain_net_events());
        }
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(OPS)
}

fn main() {
    println!(
        "net events: ns per classify at INBOUND_TRANSPORT_V4 (2 filters), best of {ROUNDS} x {OPS}, \
         off/on rounds interleaved"
    );
    println!(
        "{:<8} {:>12} {:>12} {:>7}",
        "packet", "off (base)", "on", "ratio"
    );
    for (name, port) in [("dropped", 23), ("allowed", 80)] {
        let v = values(port);
        let (off_engine, on_engine) = (engine(false), engine(true));
        let (mut off, mut on) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..ROUNDS {
            off = off.min(round(&off_engine, &v));
            on = on.min(round(&on_engine, &v));
        }
        println!("{name:<8} {off:>12.1} {on:>12.1} {:>7.2}", on / off);
        let lost = on_engine.stats().net_events_dropped.load(Ordering::Relaxed);
        assert_eq!(lost, 0, "drained every 1,024: nothing may be lost");
        assert_eq!(off_engine.drain_net_events().len(), 0);
    }
}
