//! Reusing a flow's answers (`ShimConfig::reuse_decisions`) never changes an outcome: the same
//! random policy and traffic — with policy changes mid-flow, callout filters, hard decisions and
//! static vetoes — give the same verdicts, the same callout calls and the same net events with reuse
//! on and off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::{self, layers, ConditionId};
use wfp_core::condition::ConditionSpec;
use wfp_core::constants::FilterFlags;
use wfp_core::{
    ActionType, Callout, CalloutFlags, CalloutRegistration, CalloutSpec, ConditionValue, Engine,
    EngineOptions, FilterId, FilterSpec, Guid, LayerId, MatchType, RtFilter, SublayerSpec, Value,
    WeightSpec,
};

use crate::pipeline::{PacketContext, PacketDirection, PacketVerdict, Shim, ShimConfig};
use crate::testutil::{self, Tcp, TCP, V4};
use crate::time::Timestamp;
use crate::wire::TcpFlags;

/// A callout that decides from the packet's remote port, and counts its calls.
struct PortCallout {
    calls: AtomicU64,
}

impl Callout for PortCallout {
    fn classify(
        &self,
        _ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        _meta: &Metadata,
        _data: &mut LayerData<'_>,
        _filter: &RtFilter,
        _flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let port = values.by_name("IP_REMOTE_PORT").as_u64().unwrap_or(0);
        out.action_type = match port % 3 {
            0 => ActionType::PERMIT,
            1 => ActionType::BLOCK,
            _ => ActionType::CONTINUE,
        };
    }
}

const LAYERS: [LayerId; 5] = [
    layers::INBOUND_IPPACKET_V4,
    layers::INBOUND_TRANSPORT_V4,
    layers::OUTBOUND_TRANSPORT_V4,
    layers::DATAGRAM_DATA_V4,
    layers::OUTBOUND_IPPACKET_V4,
];

/// One random filter.
#[derive(Clone, Debug)]
struct Rule {
    layer: usize,
    sublayer: bool,
    action: u8,
    hard: bool,
    weight: u8,
    port: Option<u16>,
    protocol: Option<u8>,
    /// INTERFACE_INDEX (varies per packet of one flow).
    ifindex: Option<u32>,
    /// DIRECTION (DATAGRAM_DATA: differs between a flow's two directions).
    direction: Option<u32>,
}

/// One random packet: which flow, which way, TCP flags index.
#[derive(Clone, Debug)]
enum Step {
    Packet {
        flow: u8,
        inbound: bool,
        flags: u8,
        ifindex: u8,
    },
    AddRule(Rule),
    DeleteRule(u8),
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        0..LAYERS.len(),
        any::<bool>(),
        0u8..4,
        any::<bool>(),
        any::<u8>(),
        proptest::option::of(prop_oneof![Just(53u16), Just(80), Just(40_001), 0..4u16]),
        proptest::option::of(prop_oneof![Just(6u8), Just(17)]),
        proptest::option::of(1u32..3),
        proptest::option::of(0u32..2),
    )
        .prop_map(
            |(layer, sublayer, action, hard, weight, port, protocol, ifindex, direction)| Rule {
                layer,
                sublayer,
                action,
                hard,
                weight,
                port,
                protocol,
                ifindex,
                direction,
            },
        )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0u8..6, any::<bool>(), 0u8..4, 0u8..2).prop_map(|(flow, inbound, flags, ifindex)| {
            Step::Packet { flow, inbound, flags, ifindex }
        }),
        1 => rule().prop_map(Step::AddRule),
        1 => any::<u8>().prop_map(Step::DeleteRule),
    ]
}

struct World {
    engine: Arc<Engine>,
    shim: Shim,
    callout: Arc<PortCallout>,
    sublayer: Guid,
    filters: Vec<FilterId>,
    now: Timestamp,
}

impl World {
    fn new(reuse: bool, static_veto: bool) -> Self {
        let engine = Arc::new(Engine::new(EngineOptions {
            static_veto,
            ..EngineOptions::default()
        }));
        let sublayer = engine
            .add_sublayer(SublayerSpec {
                name: "second".into(),
                weight: 10,
                ..SublayerSpec::default()
            })
            .unwrap();
        let callout = Arc::new(PortCallout {
            calls: AtomicU64::new(0),
        });
        // One management callout per layer, each registered at run time with the same classifyFn.
        for layer in LAYERS {
            let key = Guid::from_name("reuse-test", &format!("mgmt{}", layer.0));
            engine
                .register_callout(CalloutRegistration::new(
                    key,
                    CalloutFlags::default(),
                    callout.clone(),
                ))
                .unwrap();
            engine
                .add_callout(CalloutSpec {
                    key,
                    name: "port".into(),
                    description: String::new(),
                    flags: 0,
                    provider: None,
                    applicable_layer: layer,
                })
                .unwrap();
        }
        let config = ShimConfig {
            reuse_decisions: reuse,
            ..ShimConfig::default()
        };
        Self {
            shim: Shim::new(engine.clone(), config),
            engine,
            callout,
            sublayer,
            filters: Vec::new(),
            now: Timestamp::from_secs(100),
        }
    }

    fn add(&mut self, r: &Rule) {
        let layer = LAYERS[r.layer % LAYERS.len()];
        let action = match r.action {
            0 => ActionType::PERMIT,
            1 => ActionType::BLOCK,
            2 => ActionType::CALLOUT_TERMINATING,
            _ => ActionType::CALLOUT_INSPECTION,
        };
        let mut f = FilterSpec::new("rule", layer, action);
        if action.is_callout() {
            f.callout = Some(Guid::from_name("reuse-test", &format!("mgmt{}", layer.0)));
        }
        if r.sublayer {
            f.sublayer = self.sublayer;
        }
        if r.hard {
            f.flags = FilterFlags::CLEAR_ACTION_RIGHT;
        }
        f.weight = WeightSpec::Exact(u64::from(r.weight));
        let def = catalogue::layer(layer).unwrap();
        let cond = |name: &str, v: ConditionValue| {
            def.field_index_by_name(name).map(|i| ConditionSpec {
                field: ConditionId(def.fields[i].condition),
                match_type: MatchType::Equal,
                value: v,
            })
        };
        if let Some(p) = r.port {
            f.conditions.extend(cond(
                "IP_REMOTE_PORT",
                ConditionValue::Value(Value::Uint16(p)),
            ));
        }
        if let Some(p) = r.protocol {
            f.conditions
                .extend(cond("IP_PROTOCOL", ConditionValue::Value(Value::Uint8(p))));
        }
        if let Some(i) = r.ifindex {
            f.conditions.extend(cond(
                "INTERFACE_INDEX",
                ConditionValue::Value(Value::Uint32(i)),
            ));
        }
        if let Some(d) = r.direction {
            f.conditions
                .extend(cond("DIRECTION", ConditionValue::Value(Value::Uint32(d))));
        }
        if let Ok(id) = self.engine.add_filter(f) {
            self.filters.push(id);
        }
    }

    fn delete(&mut self, which: u8) {
        if self.filters.is_empty() {
            return;
        }
        let id = self.filters.remove(usize::from(which) % self.filters.len());
        self.engine.delete_filter(id).unwrap();
    }

    fn packet(&mut self, flow: u8, inbound: bool, flags: u8, ifindex: u8) -> PacketVerdict {
        self.now = self.now + Duration::from_millis(10);
        let ip = V4;
        let udp = flow % 2 == 1;
        let local_port = 40_000 + u16::from(flow);
        let remote_port = [53u16, 80, 1, 2, 3, 40_001][usize::from(flow) % 6];
        let (ip, sport, dport) = if inbound {
            (ip.reply(), remote_port, local_port)
        } else {
            (ip, local_port, remote_port)
        };
        let bytes = if udp {
            testutil::udp_packet(&ip, sport, dport, b"payload")
        } else {
            let flags = [
                TcpFlags::SYN,
                TcpFlags::SYN.union(TcpFlags::ACK),
                TcpFlags::ACK,
                TcpFlags::ACK.union(TcpFlags::PSH),
            ][usize::from(flags) % 4];
            let tcp = Tcp {
                sport,
                dport,
                flags,
                seq: 1000,
                ack: 1,
                ..TCP
            };
            testutil::tcp_packet(&ip, &tcp, b"")
        };
        let dir = if inbound {
            PacketDirection::Inbound
        } else {
            PacketDirection::Outbound
        };
        let ctx = PacketContext {
            ifindex: Some(1 + u32::from(ifindex)),
            owner: None,
            ..PacketContext::default()
        };
        let v = self.shim.handle_packet(self.now, dir, &bytes, &ctx);
        while self.shim.poll_event().is_some() {}
        v
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn reusing_flow_answers_changes_nothing(
        initial in proptest::collection::vec(rule(), 0..10),
        steps in proptest::collection::vec(step(), 1..80),
        static_veto in any::<bool>(),
    ) {
        let mut on = World::new(true, static_veto);
        let mut off = World::new(false, static_veto);
        for r in &initial {
            on.add(r);
            off.add(r);
        }
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Packet { flow, inbound, flags, ifindex } => {
                    let a = on.packet(*flow, *inbound, *flags, *ifindex);
                    let b = off.packet(*flow, *inbound, *flags, *ifindex);
                    prop_assert_eq!(a, b, "step {}", i);
                }
                Step::AddRule(r) => {
                    on.add(r);
                    off.add(r);
                }
                Step::DeleteRule(w) => {
                    on.delete(*w);
                    off.delete(*w);
                }
            }
            prop_assert_eq!(
                on.callout.calls.load(Ordering::Relaxed),
                off.callout.calls.load(Ordering::Relaxed),
                "callout calls after step {}", i
            );
        }
        prop_assert_eq!(on.engine.drain_net_events(), off.engine.drain_net_events());
        prop_assert_eq!(on.shim.stats(), off.shim.stats());
    }
}

/// The reuse does happen: a flow's second packet is answered without the engine (the callout at
/// another layer still runs every time).
#[test]
fn a_flows_later_packets_reuse_the_static_answer() {
    let mut w = World::new(true, false);
    w.add(&Rule {
        layer: 2,
        sublayer: false,
        action: 1,
        hard: false,
        weight: 1,
        port: Some(9),
        protocol: None,
        ifindex: None,
        direction: None,
    });
    for _ in 0..5 {
        assert_eq!(
            w.packet(1, false, 0, 0).verdict,
            crate::pipeline::Verdict::Permit
        );
    }
    let id = w.shim.flow_ids().next().unwrap();
    assert_eq!(w.shim.stored_decisions(id), 1);
}
