//! The WFP layer sequence end to end: real packet bytes through [`Shim`] into a real engine, with
//! recording callouts (wfp-reference §14.5, §14.6, §14.7; brief decisions 8–10).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::{self, layers};
use wfp_core::condition::ConditionSpec;
use wfp_core::constants::{ClassifyOutFlags, ConditionFlags, StreamFlags};
use wfp_core::{
    ActionType, Callout, CalloutFlags, CalloutId, CalloutRegistration, CalloutSpec, ConditionValue,
    Engine, FilterSpec, Guid, LayerId, MatchType, RtFilter, StreamAction, Value, WeightSpec,
};

use crate::pipeline::{
    FragmentDrop, Malformed, PacketContext, PacketDirection, Reason, Shim, ShimConfig, ShimEvent,
    Verdict,
};
use crate::testutil::{self, Tcp, TCP, V4, V6};
use crate::time::Timestamp;
use crate::wire::TcpFlags;

/// One classifyFn call as a callout saw it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Call {
    pub(super) layer: LayerId,
    pub(super) flags: u32,
    pub(super) flow: Option<u64>,
    pub(super) flow_context: u64,
    pub(super) data: Vec<u8>,
    pub(super) stream_flags: u32,
    pub(super) out_flags: ClassifyOutFlags,
    pub(super) values: Vec<Value>,
    pub(super) missed: u64,
}

type Script =
    dyn Fn(&Call, &mut ClassifyOut, &mut LayerData<'_>, &ClassifyContext<'_>) + Send + Sync;

/// Records every call; `script` decides.
pub(super) struct Rec {
    calls: Mutex<Vec<Call>>,
    pub(super) deletes: Mutex<Vec<(LayerId, CalloutId, u64)>>,
    script: Box<Script>,
}

impl Rec {
    pub(super) fn new(
        script: impl Fn(&Call, &mut ClassifyOut, &mut LayerData<'_>, &ClassifyContext<'_>)
            + Send
            + Sync
            + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Vec::new()),
            deletes: Mutex::new(Vec::new()),
            script: Box::new(script),
        })
    }
    pub(super) fn passive() -> Arc<Self> {
        Self::new(|_, out, ld, _| {
            out.action_type = ActionType::CONTINUE;
            if let LayerData::Stream(io) = ld {
                out.action_type = ActionType::PERMIT;
                io.count_bytes_enforced = io.stream_data.data.len() as u64;
            }
        })
    }
    pub(super) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    pub(super) fn calls_at(&self, layer: LayerId) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.layer == layer)
            .collect()
    }
    pub(super) fn stream_bytes(&self, send: bool) -> Vec<u8> {
        // Bytes the callout permitted, in order, for one direction.
        self.calls()
            .iter()
            .filter(|c| c.layer == layers::STREAM_V4 || c.layer == layers::STREAM_V6)
            .filter(|c| (c.stream_flags & StreamFlags::SEND.0 != 0) == send)
            .flat_map(|c| c.data.clone())
            .collect()
    }
}

impl Callout for Rec {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        _filter: &RtFilter,
        flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let (data, stream_flags) = match layer_data {
            LayerData::Packet(p) => (p.to_vec(), 0),
            LayerData::Stream(io) => (io.stream_data.data.to_vec(), io.stream_data.flags.0),
            LayerData::None => (Vec::new(), 0),
        };
        let missed = match layer_data {
            LayerData::Stream(io) => io.missed_bytes,
            _ => 0,
        };
        let flags = values.by_name("FLAGS").as_u64().unwrap_or(0) as u32;
        let call = Call {
            layer: values.layer,
            flags,
            flow: meta.flow(),
            flow_context,
            data,
            stream_flags,
            out_flags: out.flags,
            values: values.values.to_vec(),
            missed,
        };
        (self.script)(&call, out, layer_data, ctx);
        self.calls.lock().unwrap().push(call);
    }
    fn flow_delete(&self, layer: LayerId, callout_id: CalloutId, flow_context: u64) {
        self.deletes
            .lock()
            .unwrap()
            .push((layer, callout_id, flow_context));
    }
}

pub(super) struct H {
    pub(super) engine: Arc<Engine>,
    pub(super) shim: Shim,
    pub(super) now: Timestamp,
    n: u32,
}

impl H {
    pub(super) fn new() -> Self {
        Self::with(ShimConfig::default())
    }
    pub(super) fn with(config: ShimConfig) -> Self {
        Self::with_engine(Arc::new(Engine::default()), config)
    }
    pub(super) fn with_engine(engine: Arc<Engine>, config: ShimConfig) -> Self {
        Self {
            shim: Shim::new(engine.clone(), config),
            engine,
            now: Timestamp::from_secs(1000),
            n: 0,
        }
    }
    /// Registers `rec` as a callout and adds a filter for it at `layer`.
    pub(super) fn callout(
        &mut self,
        layer: LayerId,
        action: ActionType,
        flags: CalloutFlags,
        rec: &Arc<Rec>,
        conds: Vec<ConditionSpec>,
    ) -> CalloutId {
        let (id, key) = self.register(layer, flags, rec.clone());
        self.callout_filter(layer, action, key, conds);
        id
    }
    /// Registers any callout `c` and adds a filter for it at `layer`.
    pub(super) fn callout_dyn(
        &mut self,
        layer: LayerId,
        action: ActionType,
        flags: CalloutFlags,
        c: Arc<dyn Callout>,
    ) -> CalloutId {
        let (id, key) = self.register(layer, flags, c);
        self.callout_filter(layer, action, key, Vec::new());
        id
    }
    /// Registers `c` at run time and adds its management callout at `layer`.
    fn register(
        &mut self,
        layer: LayerId,
        flags: CalloutFlags,
        c: Arc<dyn Callout>,
    ) -> (CalloutId, Guid) {
        self.n += 1;
        let key = Guid::from_name("shim-test", &format!("callout{}", self.n));
        let id = self
            .engine
            .register_callout(CalloutRegistration::new(key, flags, c))
            .unwrap();
        self.engine
            .add_callout(CalloutSpec {
                key,
                name: format!("c{}", self.n),
                description: String::new(),
                flags: 0,
                provider: None,
                applicable_layer: layer,
            })
            .unwrap();
        (id, key)
    }
    /// A filter at `layer` whose action calls the callout `key`.
    fn callout_filter(
        &mut self,
        layer: LayerId,
        action: ActionType,
        key: Guid,
        conds: Vec<ConditionSpec>,
    ) {
        let mut f = FilterSpec::new(format!("f{}", self.n), layer, action);
        f.callout = Some(key);
        f.conditions = conds;
        self.engine.add_filter(f).unwrap();
    }
    pub(super) fn filter(&self, layer: LayerId, action: ActionType, conds: Vec<ConditionSpec>) {
        let mut f = FilterSpec::new("static", layer, action);
        f.conditions = conds;
        // Weight 0: after callout filters with automatic weights (ties go to the older filter).
        f.weight = WeightSpec::Exact(0);
        self.engine.add_filter(f).unwrap();
    }
    pub(super) fn packet(
        &mut self,
        dir: PacketDirection,
        bytes: &[u8],
    ) -> crate::pipeline::PacketVerdict {
        self.now = self.now + Duration::from_millis(1);
        self.shim
            .handle_packet(self.now, dir, bytes, &PacketContext::default())
    }
    /// The first `keep` bytes of `bytes`, flagged as cut by a capture's snapshot length.
    fn cut_packet(
        &mut self,
        dir: PacketDirection,
        bytes: &[u8],
        keep: usize,
    ) -> crate::pipeline::PacketVerdict {
        self.now = self.now + Duration::from_millis(1);
        let ctx = PacketContext {
            truncated: true,
            ..PacketContext::default()
        };
        self.shim
            .handle_packet(self.now, dir, &bytes[..keep.min(bytes.len())], &ctx)
    }
    pub(super) fn events(&mut self) -> Vec<ShimEvent> {
        std::iter::from_fn(|| self.shim.poll_event()).collect()
    }
}

pub(super) fn cond(layer: LayerId, field: &str, mt: MatchType, v: ConditionValue) -> ConditionSpec {
    let l = catalogue::layer(layer).unwrap();
    let i = l.field_index_by_name(field).unwrap();
    ConditionSpec {
        field: wfp_core::catalogue::ConditionId(l.fields[i].condition),
        match_type: mt,
        value: v,
    }
}

pub(super) fn tcp(flags: TcpFlags, seq: u32, ack: u32) -> Tcp {
    Tcp {
        flags,
        seq,
        ack,
        ..TCP
    }
}

pub(super) const SYN: TcpFlags = TcpFlags::SYN;
pub(super) const SYNACK: TcpFlags = TcpFlags::SYN.union(TcpFlags::ACK);
pub(super) const ACK: TcpFlags = TcpFlags::ACK;
pub(super) const FINACK: TcpFlags = TcpFlags::FIN.union(TcpFlags::ACK);
pub(super) const RST: TcpFlags = TcpFlags::RST;

/// The client (local, outbound) opens a connection to the server and the handshake completes.
pub(super) fn handshake(h: &mut H, ip: &testutil::Ip) {
    let c = 1000u32;
    let s = 5000u32;
    assert_eq!(
        h.packet(
            PacketDirection::Outbound,
            &testutil::tcp_packet(ip, &tcp(SYN, c, 0), b"")
        )
        .verdict,
        Verdict::Permit
    );
    let back = Tcp {
        sport: TCP.dport,
        dport: TCP.sport,
        ..tcp(SYNACK, s, c + 1)
    };
    assert_eq!(
        h.packet(
            PacketDirection::Inbound,
            &testutil::tcp_packet(&ip.reply(), &back, b"")
        )
        .verdict,
        Verdict::Permit
    );
    assert_eq!(
        h.packet(
            PacketDirection::Outbound,
            &testutil::tcp_packet(ip, &tcp(ACK, c + 1, s + 1), b"")
        )
        .verdict,
        Verdict::Permit
    );
}

pub(super) fn send(
    h: &mut H,
    ip: &testutil::Ip,
    seq: u32,
    data: &[u8],
) -> crate::pipeline::PacketVerdict {
    h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(ip, &tcp(ACK, seq, 5001), data),
    )
}

pub(super) fn recv(
    h: &mut H,
    ip: &testutil::Ip,
    seq: u32,
    data: &[u8],
) -> crate::pipeline::PacketVerdict {
    let back = Tcp {
        sport: TCP.dport,
        dport: TCP.sport,
        ..tcp(ACK, seq, 1001)
    };
    h.packet(
        PacketDirection::Inbound,
        &testutil::tcp_packet(&ip.reply(), &back, data),
    )
}

#[test]
fn tcp_conversation_visits_wfp_layers_in_order() {
    let mut h = H::new();
    let all = Rec::passive();
    for l in [
        layers::ALE_AUTH_CONNECT_V4,
        layers::ALE_FLOW_ESTABLISHED_V4,
        layers::OUTBOUND_TRANSPORT_V4,
        layers::INBOUND_TRANSPORT_V4,
        layers::STREAM_V4,
        layers::OUTBOUND_IPPACKET_V4,
        layers::INBOUND_IPPACKET_V4,
        layers::ALE_ENDPOINT_CLOSURE_V4,
    ] {
        h.callout(
            l,
            ActionType::CALLOUT_INSPECTION,
            CalloutFlags::default(),
            &all,
            vec![],
        );
    }
    handshake(&mut h, &V4);
    let v = send(&mut h, &V4, 1001, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(v.verdict, Verdict::Permit);
    assert_eq!(
        v.visits.iter().map(|x| x.layer).collect::<Vec<_>>(),
        [
            layers::STREAM_V4,
            layers::OUTBOUND_TRANSPORT_V4,
            layers::OUTBOUND_IPPACKET_V4
        ]
    );
    recv(&mut h, &V4, 5001, b"HTTP/1.0 200 OK\r\n\r\nhi");
    // AUTH_CONNECT once (the ALE cache), FLOW_ESTABLISHED once, after the handshake.
    assert_eq!(all.calls_at(layers::ALE_AUTH_CONNECT_V4).len(), 1);
    assert_eq!(
        all.calls_at(layers::ALE_AUTH_CONNECT_V4)[0].data,
        b"",
        "TCP connect has no packet"
    );
    assert_eq!(all.calls_at(layers::ALE_FLOW_ESTABLISHED_V4).len(), 1);
    let order: Vec<LayerId> = all.calls().iter().map(|c| c.layer).collect();
    assert_eq!(
        &order[..3],
        [
            layers::ALE_AUTH_CONNECT_V4,
            layers::OUTBOUND_TRANSPORT_V4,
            layers::OUTBOUND_IPPACKET_V4
        ]
    );
    assert_eq!(all.stream_bytes(true), b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(all.stream_bytes(false), b"HTTP/1.0 200 OK\r\n\r\nhi");
    // Flow handle present at flow-capable layers, same flow everywhere.
    let flow = all.calls_at(layers::STREAM_V4)[0].flow.unwrap();
    assert!(all
        .calls_at(layers::OUTBOUND_TRANSPORT_V4)
        .iter()
        .all(|c| c.flow == Some(flow)));
    assert!(all
        .calls_at(layers::OUTBOUND_IPPACKET_V4)
        .iter()
        .all(|c| c.flow.is_none()));
    // Values are host order: remote port 80, local address 192.0.2.10.
    let l = catalogue::layer(layers::ALE_AUTH_CONNECT_V4).unwrap();
    let c = &all.calls_at(layers::ALE_AUTH_CONNECT_V4)[0];
    assert_eq!(
        c.values[l.field_index_by_name("IP_REMOTE_PORT").unwrap()],
        Value::Uint16(80)
    );
    assert_eq!(
        c.values[l.field_index_by_name("IP_LOCAL_ADDRESS").unwrap()],
        Value::Uint32(0xC000_020A)
    );
    assert_eq!(
        c.values[l.field_index_by_name("IP_PROTOCOL").unwrap()],
        Value::Uint8(6)
    );
    // FIN both ways, acknowledged: the flow ends, ENDPOINT_CLOSURE runs.
    h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V4, &tcp(FINACK, 1019, 5023), b""),
    );
    let back = Tcp {
        sport: TCP.dport,
        dport: TCP.sport,
        ..tcp(FINACK, 5023, 1020)
    };
    h.packet(
        PacketDirection::Inbound,
        &testutil::tcp_packet(&V4.reply(), &back, b""),
    );
    h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V4, &tcp(ACK, 1020, 5024), b""),
    );
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, ShimEvent::FlowEnded { flow: f, .. } if f.get() == flow)));
    assert_eq!(all.calls_at(layers::ALE_ENDPOINT_CLOSURE_V4).len(), 1);
}

#[test]
fn t_flow_1_and_t_flow_6_stream_context_from_flow_established_deleted_on_rst() {
    let mut h = H::new();
    let stream = Rec::passive();
    let s_id = h.callout(
        layers::STREAM_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::CONDITIONAL_ON_FLOW,
        &stream,
        vec![],
    );
    // The FLOW_ESTABLISHED callout associates 0x1234 for the STREAM layer and S, only for port 80.
    let est = Rec::new(move |c, out, _, ctx| {
        out.action_type = ActionType::CONTINUE;
        if let Some(flow) = c.flow {
            ctx.engine()
                .flow_associate_context(flow, layers::STREAM_V4, s_id, 0x1234);
        }
    });
    let port80 = cond(
        layers::ALE_FLOW_ESTABLISHED_V4,
        "IP_REMOTE_PORT",
        MatchType::Equal,
        Value::Uint16(80).into(),
    );
    h.callout(
        layers::ALE_FLOW_ESTABLISHED_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &est,
        vec![port80],
    );
    handshake(&mut h, &V4);
    send(&mut h, &V4, 1001, b"hello");
    // A second connection to port 81 gets no context and is never shown to S.
    let other = Tcp { dport: 81, ..TCP };
    h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(
            &V4,
            &Tcp {
                flags: SYN,
                seq: 1,
                ..other
            },
            b"",
        ),
    );
    let back = Tcp {
        sport: 81,
        dport: TCP.sport,
        flags: SYNACK,
        seq: 9,
        ack: 2,
        ..TCP
    };
    h.packet(
        PacketDirection::Inbound,
        &testutil::tcp_packet(&V4.reply(), &back, b""),
    );
    h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(
            &V4,
            &Tcp {
                flags: ACK,
                seq: 2,
                ack: 10,
                ..other
            },
            b"",
        ),
    );
    h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(
            &V4,
            &Tcp {
                flags: ACK,
                seq: 2,
                ack: 10,
                ..other
            },
            b"not shown",
        ),
    );
    let calls = stream.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].flow_context, 0x1234);
    assert_eq!(calls[0].data, b"hello");
    // RST ends the flow: flowDeleteFn(20, S, 0x1234) exactly once, context gone.
    recv_rst(&mut h);
    assert_eq!(
        *stream.deletes.lock().unwrap(),
        [(layers::STREAM_V4, s_id, 0x1234)]
    );
    assert_eq!(h.engine.flow_context_count(), 0);
}

fn recv_rst(h: &mut H) {
    let back = Tcp {
        sport: TCP.dport,
        dport: TCP.sport,
        ..tcp(RST, 5001, 0)
    };
    h.packet(
        PacketDirection::Inbound,
        &testutil::tcp_packet(&V4.reply(), &back, b""),
    );
}

#[test]
fn block_at_auth_recv_accept_drops_inbound_syn_and_keeps_no_flow() {
    let mut h = H::new();
    let p23 = cond(
        layers::ALE_AUTH_RECV_ACCEPT_V4,
        "IP_LOCAL_PORT",
        MatchType::Equal,
        Value::Uint16(23).into(),
    );
    h.filter(
        layers::ALE_AUTH_RECV_ACCEPT_V4,
        ActionType::BLOCK,
        vec![p23],
    );
    let syn = Tcp {
        sport: 50000,
        dport: 23,
        flags: SYN,
        seq: 7,
        ..TCP
    };
    let v = h.packet(
        PacketDirection::Inbound,
        &testutil::tcp_packet(&V4, &syn, b""),
    );
    assert_eq!(v.verdict, Verdict::Block);
    assert_eq!(v.layer, Some(layers::ALE_AUTH_RECV_ACCEPT_V4));
    assert_eq!(v.reason, Reason::Filter);
    assert!(v.filter.is_some());
    let ok = Tcp { dport: 22, ..syn };
    assert_eq!(
        h.packet(
            PacketDirection::Inbound,
            &testutil::tcp_packet(&V4, &ok, b"")
        )
        .verdict,
        Verdict::Permit
    );
}

/// A capture (or a retransmitting peer) shows packets of a connection whose SYN was blocked at
/// ALE_AUTH_CONNECT: they are blocked as part of the refused connection instead of starting a new
/// flow mid-stream, until a new SYN is authorized again.
#[test]
fn segments_of_a_refused_connection_are_blocked_until_a_new_syn() {
    let mut h = H::new();
    let p80 = cond(
        layers::ALE_AUTH_CONNECT_V4,
        "IP_REMOTE_PORT",
        MatchType::Equal,
        Value::Uint16(TCP.dport).into(),
    );
    h.filter(layers::ALE_AUTH_CONNECT_V4, ActionType::BLOCK, vec![p80]);
    let syn = h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V4, &tcp(SYN, 1000, 0), b""),
    );
    assert_eq!(syn.verdict, Verdict::Block);
    assert_eq!(syn.reason, Reason::Filter);
    let back = Tcp {
        sport: TCP.dport,
        dport: TCP.sport,
        ..tcp(SYNACK, 5000, 1001)
    };
    let synack = h.packet(
        PacketDirection::Inbound,
        &testutil::tcp_packet(&V4.reply(), &back, b""),
    );
    assert_eq!(synack.verdict, Verdict::Block);
    assert_eq!(synack.reason, Reason::ConnectionRefused);
    assert_eq!(synack.layer, Some(layers::ALE_AUTH_CONNECT_V4));
    assert_eq!(synack.filter, syn.filter);
    // The IP-packet layer still sees it; nothing above it does.
    assert!(synack
        .visits
        .iter()
        .all(|v| v.layer == layers::INBOUND_IPPACKET_V4));
    assert_eq!(h.shim.flow_count(), 0);
    // A new SYN is authorized again (and refused again by the same policy).
    let again = h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V4, &tcp(SYN, 1000, 0), b""),
    );
    assert_eq!(again.reason, Reason::Filter);
    assert!(again
        .visits
        .iter()
        .any(|v| v.layer == layers::ALE_AUTH_CONNECT_V4));
}

#[test]
fn t_pend_6_policy_change_reauthorizes_the_next_packet_in_either_direction() {
    let mut h = H::new();
    let auth = Rec::passive();
    h.callout(
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &auth,
        vec![],
    );
    handshake(&mut h, &V4);
    send(&mut h, &V4, 1001, b"a");
    assert_eq!(auth.calls().len(), 1);
    // A filter added at the authorizing layer is a policy change.
    let p80 = cond(
        layers::ALE_AUTH_CONNECT_V4,
        "IP_REMOTE_PORT",
        MatchType::Equal,
        Value::Uint16(80).into(),
    );
    h.filter(layers::ALE_AUTH_CONNECT_V4, ActionType::BLOCK, vec![p80]);
    let v = recv(&mut h, &V4, 5001, b"b");
    assert_eq!(auth.calls().len(), 2);
    let re = &auth.calls()[1];
    assert_eq!(
        re.flags & ConditionFlags::IS_REAUTHORIZE.0,
        ConditionFlags::IS_REAUTHORIZE.0
    );
    let l = catalogue::layer(layers::ALE_AUTH_CONNECT_V4).unwrap();
    assert_eq!(
        re.values[l.field_index_by_name("REAUTHORIZE_REASON").unwrap()],
        Value::Uint32(1)
    );
    // The inbound packet was reauthorized at AUTH_CONNECT, blocked, and the flow torn down.
    assert_eq!(v.verdict, Verdict::Block);
    assert_eq!(v.layer, Some(layers::ALE_AUTH_CONNECT_V4));
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, ShimEvent::FlowEnded { .. })));
    assert_eq!(h.shim.stats().reauthorizations, 1);
}

#[test]
fn t_cl_7_four_fragments_give_nine_ippacket_classifications() {
    for (conds, want) in [(false, 9), (true, 5)] {
        let mut h = H::new();
        let rec = Rec::passive();
        let c = if conds {
            vec![cond(
                layers::INBOUND_IPPACKET_V4,
                "FLAGS",
                MatchType::FlagsNoneSet,
                Value::Uint32(ConditionFlags::IS_FRAGMENT.0).into(),
            )]
        } else {
            vec![]
        };
        h.callout(
            layers::INBOUND_IPPACKET_V4,
            ActionType::CALLOUT_INSPECTION,
            CalloutFlags::default(),
            &rec,
            c,
        );
        let whole = testutil::udp_packet(&V4.reply(), 53, 40000, &[7u8; 100]);
        let frags = testutil::fragment(&whole, &[32, 64, 96], 77, 20);
        assert_eq!(frags.len(), 4);
        let mut verdicts = Vec::new();
        for f in &frags {
            verdicts.push(h.packet(PacketDirection::Inbound, f));
        }
        assert_eq!(rec.calls().len(), want, "conds={conds}");
        assert!(verdicts[..3]
            .iter()
            .all(|v| v.reason == Reason::FragmentHeld));
        assert_eq!(verdicts[3].verdict, Verdict::Permit);
        let last = rec.calls().last().cloned().unwrap();
        assert_eq!(
            last.flags & ConditionFlags::IS_REASSEMBLED.0,
            ConditionFlags::IS_REASSEMBLED.0
        );
    }
}

#[test]
fn udp_flow_auth_established_datagram_then_idle_timeout_deletes_contexts() {
    let mut h = H::new();
    let rec = Rec::new(|c, out, _, ctx| {
        out.action_type = ActionType::CONTINUE;
        if c.layer == layers::ALE_FLOW_ESTABLISHED_V4 {
            if let Some(f) = c.flow {
                ctx.engine().flow_associate_context(
                    f,
                    layers::DATAGRAM_DATA_V4,
                    ctx.callout_id(),
                    0x77,
                );
            }
        }
    });
    let dg = Rec::passive();
    let dg_id = h.callout(
        layers::DATAGRAM_DATA_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &dg,
        vec![],
    );
    let _ = dg_id;
    let est_id = h.callout(
        layers::ALE_FLOW_ESTABLISHED_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    h.callout(
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let q = testutil::udp_packet(&V4, 40000, 53, b"query");
    let v = h.packet(PacketDirection::Outbound, &q);
    assert_eq!(
        v.visits.iter().map(|x| x.layer).collect::<Vec<_>>(),
        [
            layers::ALE_AUTH_CONNECT_V4,
            layers::ALE_FLOW_ESTABLISHED_V4,
            layers::DATAGRAM_DATA_V4,
            layers::OUTBOUND_TRANSPORT_V4,
            layers::OUTBOUND_IPPACKET_V4
        ]
    );
    assert_eq!(
        dg.calls()[0].data,
        b"query",
        "DATAGRAM_DATA gets the UDP payload"
    );
    let a = testutil::udp_packet(&V4.reply(), 53, 40000, b"answer");
    h.packet(PacketDirection::Inbound, &a);
    assert_eq!(rec.calls_at(layers::ALE_AUTH_CONNECT_V4).len(), 1);
    assert_eq!(dg.calls().len(), 2);
    assert_eq!(
        h.engine
            .flow_context(v.flow.unwrap().get(), layers::DATAGRAM_DATA_V4, est_id),
        Some(0x77)
    );
    // 60 s idle (WFP's default) plus slack ends the flow and deletes the context once.
    let t = h.shim.poll_timeout().unwrap();
    assert!(t >= h.now + Duration::from_secs(60));
    h.shim.handle_timeout(t + Duration::from_secs(2));
    assert_eq!(
        *rec.deletes.lock().unwrap(),
        [(layers::DATAGRAM_DATA_V4, est_id, 0x77)]
    );
}

#[test]
fn icmp_error_is_classified_at_icmp_error_with_embedded_fields() {
    let mut h = H::new();
    let rec = Rec::passive();
    h.callout(
        layers::INBOUND_ICMP_ERROR_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let orig = testutil::udp_packet(&V4, 40000, 33434, b"probe");
    let err = testutil::icmp_packet(&V4.reply(), 3, 3, [0; 4], &orig[..28]);
    let v = h.packet(PacketDirection::Inbound, &err);
    assert_eq!(
        v.visits.iter().map(|x| x.layer).collect::<Vec<_>>(),
        [layers::INBOUND_IPPACKET_V4, layers::INBOUND_ICMP_ERROR_V4]
    );
    let l = catalogue::layer(layers::INBOUND_ICMP_ERROR_V4).unwrap();
    let c = &rec.calls()[0];
    let get = |n: &str| c.values[l.field_index_by_name(n).unwrap()].clone();
    assert_eq!(get("ICMP_TYPE"), Value::Uint16(3));
    assert_eq!(get("ICMP_CODE"), Value::Uint16(3));
    assert_eq!(get("EMBEDDED_PROTOCOL"), Value::Uint8(17));
    assert_eq!(get("EMBEDDED_REMOTE_PORT"), Value::Uint16(33434));
    assert_eq!(get("EMBEDDED_LOCAL_PORT"), Value::Uint16(40000));
}

#[test]
fn malformed_packets_get_the_configured_verdict_and_a_counter() {
    let mut h = H::new();
    let v = h.packet(PacketDirection::Inbound, &[0x45, 0, 0]);
    assert_eq!(v.verdict, Verdict::Block);
    assert!(matches!(v.reason, Reason::Malformed(_)));
    assert_eq!(h.shim.stats().malformed, 1);
    let mut h = H::with(ShimConfig {
        malformed: Verdict::Permit,
        ..ShimConfig::default()
    });
    assert_eq!(
        h.packet(PacketDirection::Inbound, &[0x60]).verdict,
        Verdict::Permit
    );
}

/// A stream callout that blocks the connection when `pattern` appears, asking for more data so a
/// pattern split across segments is still found (NEED_MORE_DATA with a total byte count).
fn pattern_blocker(pattern: &'static [u8]) -> Arc<Rec> {
    Rec::new(move |c, out, ld, _| {
        let LayerData::Stream(io) = ld else { return };
        let data = &c.data;
        if data.windows(pattern.len()).any(|w| w == pattern) {
            io.stream_action = StreamAction::DropConnection;
            out.action_type = ActionType::NONE;
            return;
        }
        let keep = pattern.len() - 1;
        if data.len() <= keep && !c.out_flags.contains(ClassifyOutFlags::NO_MORE_DATA) {
            io.stream_action = StreamAction::NeedMoreData;
            io.count_bytes_required = (data.len() + 1) as u32;
            out.action_type = ActionType::NONE;
            return;
        }
        // Permit what cannot start a match; keep the tail.
        out.action_type = ActionType::PERMIT;
        io.count_bytes_enforced = if c.out_flags.contains(ClassifyOutFlags::NO_MORE_DATA) {
            data.len()
        } else {
            data.len() - keep
        } as u64;
    })
}

fn run_stream(segments: &[Vec<u8>]) -> (bool, Vec<u8>, Vec<Verdict>) {
    let mut h = H::new();
    let blocker = pattern_blocker(b"EVIL");
    h.callout(
        layers::STREAM_V4,
        ActionType::CALLOUT_UNKNOWN,
        CalloutFlags::default(),
        &blocker,
        vec![],
    );
    let seen = Rec::passive();
    // A lower-weight inspector sees only what the blocker permitted (the waterfall).
    let mut f = FilterSpec::new(
        "inspector",
        layers::STREAM_V4,
        ActionType::CALLOUT_INSPECTION,
    );
    let key = Guid::from_name("shim-test", "inspector");
    h.engine
        .register_callout(CalloutRegistration::new(
            key,
            CalloutFlags::default(),
            seen.clone(),
        ))
        .unwrap();
    h.engine
        .add_callout(CalloutSpec {
            key,
            name: "i".into(),
            description: String::new(),
            flags: 0,
            provider: None,
            applicable_layer: layers::STREAM_V4,
        })
        .unwrap();
    f.callout = Some(key);
    f.weight = WeightSpec::Exact(0);
    h.engine.add_filter(f).unwrap();
    handshake(&mut h, &V4);
    let mut seq = 1001;
    let mut verdicts = Vec::new();
    for s in segments {
        verdicts.push(send(&mut h, &V4, seq, s).verdict);
        seq += s.len() as u32;
    }
    h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V4, &tcp(FINACK, seq, 5001), b""),
    );
    let dropped = h.shim.stats().connections_dropped > 0;
    (dropped, seen.stream_bytes(true), verdicts)
}

#[test]
fn same_stream_outcome_whether_whole_or_one_byte_per_segment() {
    let msg = b"hello EVIL world".to_vec();
    let (d1, seen1, v1) = run_stream(std::slice::from_ref(&msg));
    let bytes: Vec<Vec<u8>> = msg.iter().map(|b| vec![*b]).collect();
    let (d2, seen2, v2) = run_stream(&bytes);
    // The connection is dropped either way, at the segment that completes the pattern, and every
    // later segment of the connection is dropped too.
    assert!(d1 && d2);
    assert_eq!(v1, [Verdict::Block]);
    let first_block = v2.iter().position(|v| *v == Verdict::Block).unwrap();
    assert_eq!(first_block, 9, "the segment carrying the final 'L'");
    assert!(v2[first_block..].iter().all(|v| *v == Verdict::Block));
    // What the lower callout saw is a prefix of the clean bytes before the pattern, never the pattern.
    for seen in [&seen1, &seen2] {
        assert!(b"hello ".starts_with(seen), "{seen:?}");
    }
    // A clean stream reaches the lower callout byte for byte, however it is segmented.
    let clean = b"hello world, all good".to_vec();
    let (d3, seen3, v3) = run_stream(std::slice::from_ref(&clean));
    let (d4, seen4, v4) = run_stream(&clean.iter().map(|b| vec![*b]).collect::<Vec<_>>());
    assert!(!d3 && !d4);
    assert_eq!(seen3, clean);
    assert_eq!(seen4, clean);
    assert!(v3.iter().chain(&v4).all(|v| *v == Verdict::Permit));
}

#[test]
fn overlap_with_different_bytes_is_dropped_and_counted() {
    let mut h = H::new();
    let rec = Rec::passive();
    h.callout(
        layers::STREAM_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    handshake(&mut h, &V4);
    assert_eq!(send(&mut h, &V4, 1001, b"abcdef").verdict, Verdict::Permit);
    let v = send(&mut h, &V4, 1001, b"abXdef");
    assert_eq!(v.verdict, Verdict::Block);
    assert_eq!(v.reason, Reason::StreamOverlap);
    assert_eq!(
        send(&mut h, &V4, 1001, b"abcdef").verdict,
        Verdict::Permit,
        "an identical retransmission passes"
    );
    assert_eq!(
        rec.stream_bytes(true),
        b"abcdef",
        "the callout saw the first copy once"
    );
    assert_eq!(h.shim.stats().stream_overlaps, 1);
}

#[test]
fn ipv6_tcp_conversation_uses_v6_layers() {
    let mut h = H::new();
    let rec = Rec::passive();
    h.callout(
        layers::ALE_AUTH_CONNECT_V6,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    h.callout(
        layers::STREAM_V6,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    handshake(&mut h, &V6);
    send(&mut h, &V6, 1001, b"six");
    assert_eq!(rec.calls_at(layers::ALE_AUTH_CONNECT_V6).len(), 1);
    let l = catalogue::layer(layers::ALE_AUTH_CONNECT_V6).unwrap();
    let c = &rec.calls_at(layers::ALE_AUTH_CONNECT_V6)[0];
    assert_eq!(
        c.values[l.field_index_by_name("IP_REMOTE_ADDRESS").unwrap()],
        Value::ByteArray16(
            "2001:db8:1::20"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        )
    );
    assert_eq!(rec.stream_bytes(true), b"six");
}

#[test]
fn inferred_direction_makes_the_initiator_local() {
    let mut h = H::new();
    let rec = Rec::passive();
    h.callout(
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let v = h.packet(
        PacketDirection::Infer,
        &testutil::tcp_packet(&V4, &tcp(SYN, 1000, 0), b""),
    );
    assert_eq!(v.direction, PacketDirection::Outbound);
    let back = Tcp {
        sport: TCP.dport,
        dport: TCP.sport,
        ..tcp(SYNACK, 5000, 1001)
    };
    let v = h.packet(
        PacketDirection::Infer,
        &testutil::tcp_packet(&V4.reply(), &back, b""),
    );
    assert_eq!(v.direction, PacketDirection::Inbound);
    let mut h2 = H::with(ShimConfig {
        local_networks: vec![(testutil::SERVER4, 24)],
        ..ShimConfig::default()
    });
    let v = h2.packet(
        PacketDirection::Infer,
        &testutil::tcp_packet(&V4, &tcp(SYN, 1000, 0), b""),
    );
    assert_eq!(
        v.direction,
        PacketDirection::Inbound,
        "the server side is local by configuration"
    );
}

#[test]
fn forwarded_packets_see_only_ipforward() {
    let mut h = H::new();
    h.filter(layers::IPFORWARD_V4, ActionType::BLOCK, vec![]);
    let v = h.packet(
        PacketDirection::Forward,
        &testutil::udp_packet(&V4, 1, 2, b"x"),
    );
    assert_eq!(v.verdict, Verdict::Block);
    assert_eq!(v.visits.len(), 1);
    assert_eq!(v.layer, Some(layers::IPFORWARD_V4));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Random segmentations and reorderings deliver exactly the original bytes to stream callouts.
    #[test]
    fn random_segmentation_delivers_the_original_bytes(
        data in proptest::collection::vec(any::<u8>(), 1..600),
        cuts in proptest::collection::vec(1usize..600, 0..12),
        order_seed in any::<u64>(),
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c < data.len()).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut pieces = Vec::new();
        let mut start = 0;
        for c in cuts.iter().copied().chain([data.len()]) {
            pieces.push((start, data[start..c].to_vec()));
            start = c;
        }
        // Deterministic shuffle from the seed; the last piece goes first sometimes.
        let mut s = order_seed;
        for i in (1..pieces.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            pieces.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut h = H::new();
        let rec = Rec::passive();
        h.callout(layers::STREAM_V4, ActionType::CALLOUT_INSPECTION, CalloutFlags::default(), &rec, vec![]);
        handshake(&mut h, &V4);
        for (off, p) in &pieces {
            send(&mut h, &V4, 1001 + *off as u32, p);
        }
        prop_assert_eq!(rec.stream_bytes(true), data);
    }
}

// ---- packets cut by a capture's snapshot length (PacketContext::truncated) ----

/// A BLOCK on a port blocks the cut packet like the whole one (classified from its headers); the
/// same bytes without the flag are malformed.
#[test]
fn cut_packets_are_classified_by_their_ports() {
    let cases: Vec<(testutil::Ip, Vec<u8>, usize)> = vec![
        // TCP over IPv4: SYN to port 443 with a 500-byte payload (TFO-like), 60 bytes kept.
        (
            V4,
            testutil::tcp_packet(
                &V4,
                &Tcp {
                    dport: 443,
                    ..tcp(SYN, 1000, 0)
                },
                &[1; 500],
            ),
            60,
        ),
        // UDP over IPv4, 1200-byte QUIC-like datagram, 100 bytes kept.
        (V4, testutil::udp_packet(&V4, 50000, 443, &[2; 1200]), 100),
        // UDP over IPv6 (the quic_handshake_truncated case: payload length beyond the capture).
        (V6, testutil::udp_packet(&V6, 50000, 443, &[3; 1200]), 252),
        // TCP over IPv6 with a hop-by-hop header, cut just after the TCP header.
        (
            V6,
            testutil::ipv6_with_ext(
                &V6,
                &[(crate::wire::protocol::HOP_BY_HOP, testutil::ext8())],
                crate::wire::protocol::TCP,
                &testutil::tcp_segment(
                    &V6,
                    &Tcp {
                        dport: 443,
                        ..tcp(SYN, 1000, 0)
                    },
                    &[4; 300],
                ),
            ),
            68,
        ),
    ];
    for (ip, bytes, keep) in cases {
        let auth = if matches!(ip.src, std::net::IpAddr::V4(_)) {
            layers::ALE_AUTH_CONNECT_V4
        } else {
            layers::ALE_AUTH_CONNECT_V6
        };
        let p443 = || {
            vec![cond(
                auth,
                "IP_REMOTE_PORT",
                MatchType::Equal,
                Value::Uint16(443).into(),
            )]
        };
        let mut h = H::new();
        h.filter(auth, ActionType::BLOCK, p443());
        let v = h.cut_packet(PacketDirection::Outbound, &bytes, keep);
        assert_eq!(v.verdict, Verdict::Block, "{v:?}");
        assert_eq!((v.reason.clone(), v.layer), (Reason::Filter, Some(auth)));
        assert_eq!(h.shim.stats().truncated, 1);
        assert_eq!(h.shim.stats().malformed, 0);
        // Without the flag: malformed (BLOCK by default, but for the wrong reason).
        let v = h.packet(PacketDirection::Outbound, &bytes[..keep]);
        assert!(matches!(v.reason, Reason::Malformed(_)), "{v:?}");
        assert_eq!(h.shim.stats().malformed, 1);
        // Another port is permitted, cut or not.
        let mut h = H::new();
        h.filter(auth, ActionType::BLOCK, p443());
        let mut other = bytes.clone();
        // Destination port offset: after the IP header (and the IPv6 extension header).
        let at = match (ip.src, other[6]) {
            (std::net::IpAddr::V4(_), _) => 20 + 2,
            (_, 0) => 48 + 2,
            _ => 40 + 2,
        };
        other[at..at + 2].copy_from_slice(&8443u16.to_be_bytes());
        let v = h.cut_packet(PacketDirection::Outbound, &other, keep);
        assert_eq!(v.verdict, Verdict::Permit, "{v:?}");
        assert!(!matches!(v.reason, Reason::Malformed(_)));
    }
}

/// layerData of a cut packet holds the bytes that exist: the captured UDP payload at
/// DATAGRAM_DATA, the captured packet at the IP-packet layer.
#[test]
fn cut_packets_pass_the_bytes_that_exist_as_layer_data() {
    let mut h = H::new();
    let rec = Rec::passive();
    for l in [layers::DATAGRAM_DATA_V4, layers::OUTBOUND_IPPACKET_V4] {
        h.callout(
            l,
            ActionType::CALLOUT_INSPECTION,
            CalloutFlags::default(),
            &rec,
            vec![],
        );
    }
    let payload: Vec<u8> = (0..200u8).collect();
    let bytes = testutil::udp_packet(&V4, 40000, 53, &payload);
    let v = h.cut_packet(PacketDirection::Outbound, &bytes, 78);
    assert_eq!(v.verdict, Verdict::Permit);
    let dg = rec.calls_at(layers::DATAGRAM_DATA_V4);
    assert_eq!(dg[0].data, &payload[..50]);
    let ip = rec.calls_at(layers::OUTBOUND_IPPACKET_V4);
    assert_eq!(ip[0].data, &bytes[..78]);
}

/// A header the capture cut is still malformed, with an error that says so.
#[test]
fn cut_headers_are_malformed_and_say_the_capture_cut_them() {
    let mut h = H::new();
    let bytes = testutil::tcp_packet(&V4, &TCP, b"data");
    let v = h.cut_packet(PacketDirection::Outbound, &bytes, 30);
    assert_eq!(v.verdict, Verdict::Block);
    let Reason::Malformed(m) = &v.reason else {
        panic!("{v:?}")
    };
    assert!(m.to_string().contains("cut by the capture"), "{m}");
    assert_eq!((h.shim.stats().malformed, h.shim.stats().truncated), (1, 0));
}

/// A cut fragment is classified at the IP-packet layer but cannot be reassembled.
#[test]
fn cut_fragments_are_classified_at_the_ip_layer_then_dropped_from_reassembly() {
    let mut h = H::new();
    let rec = Rec::passive();
    h.callout(
        layers::INBOUND_IPPACKET_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let whole = testutil::udp_packet(&V4.reply(), 53, 40000, &[7u8; 100]);
    let frags = testutil::fragment(&whole, &[64], 77, 20);
    let v = h.cut_packet(PacketDirection::Inbound, &frags[0], 40);
    assert_eq!(v.verdict, Verdict::Permit);
    assert_eq!(v.reason, Reason::FragmentDropped(FragmentDrop::CaptureCut));
    assert_eq!(
        FragmentDrop::CaptureCut.to_string(),
        "cut by the capture: it cannot be reassembled"
    );
    assert_eq!(rec.calls().len(), 2, "raw and IS_FRAGMENT");
    assert_eq!(h.shim.stats().fragments_dropped, 1);
}

/// A TCP segment the capture cut does not stall the stream: the stream callout sees the
/// captured bytes, then the later segments with the cut bytes reported as missedBytes, and the
/// FIN of a cut segment still ends the stream (NO_MORE_DATA).
#[test]
fn a_cut_tcp_segment_keeps_the_stream_flowing() {
    for skip_filters in [false, true] {
        let mut h = H::new();
        let rec = Rec::passive();
        if !skip_filters {
            h.callout(
                layers::STREAM_V4,
                ActionType::CALLOUT_INSPECTION,
                CalloutFlags::default(),
                &rec,
                vec![],
            );
        }
        handshake(&mut h, &V4);
        // 100 bytes on the wire, 10 captured (40 bytes of headers + 10).
        let seg = testutil::tcp_packet(&V4, &tcp(ACK, 1001, 5001), &[b'a'; 100]);
        let v = h.cut_packet(PacketDirection::Outbound, &seg, 50);
        assert_eq!(v.verdict, Verdict::Permit);
        assert_eq!(send(&mut h, &V4, 1101, b"next").verdict, Verdict::Permit);
        assert_eq!(
            send(&mut h, &V4, 1105, b" and more").verdict,
            Verdict::Permit
        );
        // A cut FIN segment: 50 bytes on the wire, 5 captured.
        let fin = testutil::tcp_packet(&V4, &tcp(FINACK, 1114, 5001), &[b'z'; 50]);
        h.cut_packet(PacketDirection::Outbound, &fin, 45);
        assert_eq!(h.shim.stats().stream_bytes_missed, 90 + 45);
        assert_eq!(h.shim.stats().truncated, 2);
        if skip_filters {
            continue;
        }
        let calls: Vec<Call> = rec
            .calls()
            .into_iter()
            .filter(|c| c.layer == layers::STREAM_V4)
            .collect();
        assert_eq!(calls[0].data, [b'a'; 10]);
        assert_eq!(calls[0].missed, 0);
        assert_eq!(calls[1].data, b"next");
        assert_eq!(
            calls[1].missed, 90,
            "the cut bytes are missedBytes of the next indication"
        );
        assert_eq!(calls[2].data, b" and more");
        assert_eq!(calls[2].missed, 0);
        assert_eq!(calls[3].data, [b'z'; 5]);
        let last = calls.last().unwrap();
        assert!(last.out_flags.contains(ClassifyOutFlags::NO_MORE_DATA));
        assert_eq!(last.missed, 45);
        assert_eq!(rec.stream_bytes(true).len(), 10 + 4 + 9 + 5);
    }
}

/// Flow accounting counts the bytes the packet had on the wire (its IP header's length).
#[test]
fn flow_bytes_count_the_wire_length_of_cut_packets() {
    let mut h = H::new();
    let bytes = testutil::udp_packet(&V4, 40000, 53, &[0; 972]);
    let v = h.cut_packet(PacketDirection::Outbound, &bytes, 100);
    let table = h.shim.flow_table();
    let key = crate::flow::FlowKey::from_packet(
        crate::flow::Direction::Outbound,
        &crate::wire::parse(&bytes).unwrap(),
    )
    .unwrap();
    let handle = table.lookup(&key).unwrap();
    assert_eq!(handle.id(), v.flow.unwrap());
    let flow = table.flow(handle).unwrap();
    assert_eq!(flow.bytes(crate::flow::Side::Initiator), 1000);
}

/// IPv4 header checksums: verified by default (a mismatch is malformed); off, the packet is
/// classified and the mismatch only counted.
#[test]
fn ipv4_checksum_mismatches_are_malformed_only_when_verifying() {
    let mut bytes = testutil::udp_packet(&V4, 40000, 53, b"q");
    bytes[10] = 0;
    bytes[11] = 0; // offloaded: the capturing host never filled it in
    let mut h = H::new();
    h.filter(
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::BLOCK,
        vec![cond(
            layers::ALE_AUTH_CONNECT_V4,
            "IP_REMOTE_PORT",
            MatchType::Equal,
            Value::Uint16(53).into(),
        )],
    );
    let v = h.packet(PacketDirection::Outbound, &bytes);
    assert!(matches!(&v.reason, Reason::Malformed(m) if m.to_string().contains("checksum")));
    assert_eq!(
        (
            h.shim.stats().malformed,
            h.shim.stats().ipv4_checksum_mismatches
        ),
        (1, 1)
    );
    let mut h2 = H::with(ShimConfig {
        parse: crate::wire::ParseConfig {
            verify_ipv4_checksum: false,
            ..crate::wire::ParseConfig::default()
        },
        ..ShimConfig::default()
    });
    h2.filter(
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::BLOCK,
        vec![cond(
            layers::ALE_AUTH_CONNECT_V4,
            "IP_REMOTE_PORT",
            MatchType::Equal,
            Value::Uint16(53).into(),
        )],
    );
    let v = h2.packet(PacketDirection::Outbound, &bytes);
    assert_eq!((v.verdict, v.reason), (Verdict::Block, Reason::Filter));
    assert_eq!(
        (
            h2.shim.stats().malformed,
            h2.shim.stats().ipv4_checksum_mismatches
        ),
        (0, 1)
    );
    let good = testutil::udp_packet(&V4, 40001, 53, b"q");
    h2.packet(PacketDirection::Outbound, &good);
    assert_eq!(h2.shim.stats().ipv4_checksum_mismatches, 1);
}

/// A segment whose payload the capture cut entirely: no stream indication for it; the next
/// indication reports its bytes as missed.
#[test]
fn a_segment_cut_to_its_headers_is_all_missed_bytes() {
    let mut h = H::new();
    let rec = Rec::passive();
    h.callout(
        layers::STREAM_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    handshake(&mut h, &V4);
    let seg = testutil::tcp_packet(&V4, &tcp(ACK, 1001, 5001), &[b'a'; 30]);
    let v = h.cut_packet(PacketDirection::Outbound, &seg, 40);
    assert_eq!(v.verdict, Verdict::Permit);
    assert!(v.visits.iter().all(|x| x.layer != layers::STREAM_V4));
    assert!(rec.calls().is_empty());
    send(&mut h, &V4, 1031, b"after");
    let calls = rec.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].data.as_slice(), calls[0].missed),
        (&b"after"[..], 30)
    );
}

/// Reasons print exactly the text their earlier string form held (wfpctl prints it after
/// `malformed: ` / `fragment dropped: `), and each has a stable snake_case name.
#[test]
fn reason_texts_and_names_are_stable() {
    use crate::frag::FragDrop;
    use crate::wire::{Header, ParseError};
    let e = ParseError::Truncated {
        header: Header::Tcp,
        needed: 20,
        available: 8,
    };
    assert_eq!(Malformed::Packet(e).to_string(), e.to_string());
    assert_eq!(
        Malformed::Reassembled(e).to_string(),
        format!("reassembled datagram: {e}")
    );
    assert_eq!(
        FragmentDrop::UnusableHeader.to_string(),
        "unusable fragment header"
    );
    for d in [
        FragDrop::DatagramLimit,
        FragDrop::Inconsistent,
        FragDrop::Malformed,
        FragDrop::MemoryLimit,
        FragDrop::Overlap,
        FragDrop::TooLarge,
    ] {
        assert_eq!(FragmentDrop::Reassembly(d).to_string(), format!("{d:?}"));
    }
    let names: Vec<&str> = [
        Reason::Filter,
        Reason::NoMatch,
        Reason::Malformed(Malformed::Packet(e)),
        Reason::FragmentDropped(FragmentDrop::CaptureCut),
        Reason::FragmentHeld,
        Reason::StreamBlocked,
        Reason::ConnectionDropped,
        Reason::ConnectionRefused,
        Reason::StreamOverlap,
    ]
    .iter()
    .map(Reason::name)
    .collect();
    assert_eq!(
        names,
        [
            "filter",
            "no_match",
            "malformed",
            "fragment_dropped",
            "fragment_held",
            "stream_blocked",
            "connection_dropped",
            "connection_refused",
            "stream_overlap"
        ]
    );
}
