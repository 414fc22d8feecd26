//! Flow offload (issue 16, `docs/offload.md`): which packets' flows may be carried by the kernel,
//! and what happens when an offloaded flow comes back or ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::layers;
use wfp_core::constants::ConditionFlags;
use wfp_core::{
    ActionType, Callout, CalloutFlags, CalloutId, ConditionValue, LayerId, MatchType, RtFilter,
    StreamAction, Value,
};

use super::pipeline::{cond, handshake, recv, send, tcp, Rec, H, SYN};
use crate::flow::{FlowKey, Side};
use crate::pipeline::{CarriedCounts, KeepReason, Offload, PacketDirection, Verdict};
use crate::testutil::{self, TCP, V4, V6};

fn eligible(sender: Side) -> Offload {
    Offload::Eligible { sender }
}

#[test]
fn an_established_tcp_flow_without_filters_is_eligible_both_ways_v4_and_v6() {
    for ip in [V4, V6] {
        let mut h = H::new();
        let syn = h.packet(
            PacketDirection::Outbound,
            &testutil::tcp_packet(&ip, &tcp(SYN, 1000, 0), b""),
        );
        assert_eq!(syn.offload, Offload::Keep(KeepReason::NotEstablished));
        let mut h = H::new();
        handshake(&mut h, &ip);
        assert_eq!(
            send(&mut h, &ip, 1001, b"request").offload,
            eligible(Side::Initiator)
        );
        assert_eq!(
            recv(&mut h, &ip, 5001, b"reply").offload,
            eligible(Side::Responder)
        );
        let flow = send(&mut h, &ip, 1008, b"").flow.unwrap();
        assert!(h.shim.is_offloaded(flow));
    }
}

#[test]
fn static_filters_on_flow_fields_allow_offload_but_per_packet_fields_do_not() {
    let mut h = H::new();
    // A static permit on the remote port: the same answer for every packet of the flow.
    h.filter(
        layers::OUTBOUND_TRANSPORT_V4,
        ActionType::PERMIT,
        vec![cond(
            layers::OUTBOUND_TRANSPORT_V4,
            "IP_REMOTE_PORT",
            MatchType::Equal,
            ConditionValue::from(Value::Uint16(80)),
        )],
    );
    // A static block on a FLAGS bit at INBOUND_TRANSPORT: could answer differently per packet.
    h.filter(
        layers::INBOUND_TRANSPORT_V4,
        ActionType::BLOCK,
        vec![cond(
            layers::INBOUND_TRANSPORT_V4,
            "FLAGS",
            MatchType::FlagsAllSet,
            ConditionValue::from(Value::Uint32(ConditionFlags::IS_FRAGMENT.0)),
        )],
    );
    handshake(&mut h, &V4);
    assert_eq!(
        send(&mut h, &V4, 1001, b"x").offload,
        eligible(Side::Initiator)
    );
    assert_eq!(
        recv(&mut h, &V4, 5001, b"y").offload,
        Offload::Keep(KeepReason::PacketField {
            layer: layers::INBOUND_TRANSPORT_V4
        })
    );
}

#[test]
fn a_callout_at_a_packet_layer_keeps_its_direction_queued() {
    let mut h = H::new();
    let rec = Rec::passive();
    h.callout(
        layers::OUTBOUND_IPPACKET_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    handshake(&mut h, &V4);
    let v = send(&mut h, &V4, 1001, b"x");
    assert_eq!(
        v.offload,
        Offload::Keep(KeepReason::Callout {
            layer: layers::OUTBOUND_IPPACKET_V4
        })
    );
    assert!(
        v.offload.label().starts_with("keep:callout@"),
        "{}",
        v.offload.label()
    );
    assert_eq!(
        recv(&mut h, &V4, 5001, b"y").offload,
        eligible(Side::Responder)
    );
}

#[test]
fn a_flow_is_eligible_from_the_point_its_stream_callout_allows_the_connection() {
    let mut h = H::new();
    // Inspects inbound bytes until it has seen "OK", then allows the connection.
    let rec = Rec::new(|c, out, ld, _| {
        out.action_type = ActionType::PERMIT;
        if let LayerData::Stream(io) = ld {
            if c.data.windows(2).any(|w| w == b"OK") {
                io.stream_action = StreamAction::AllowConnection;
                out.action_type = ActionType::NONE;
            }
        }
    });
    h.callout(
        layers::STREAM_V4,
        ActionType::CALLOUT_TERMINATING,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    handshake(&mut h, &V4);
    let first = recv(&mut h, &V4, 5001, b"hello ");
    assert!(matches!(
        first.offload,
        Offload::Keep(KeepReason::StreamCallout { .. })
    ));
    assert_eq!(first.verdict, Verdict::Permit);
    assert_eq!(
        recv(&mut h, &V4, 5007, b"OK go").offload,
        eligible(Side::Responder)
    );
    // The other direction's stream was not allowed: still queued.
    assert!(matches!(
        send(&mut h, &V4, 1001, b"data").offload,
        Offload::Keep(KeepReason::StreamCallout { .. })
    ));
    let calls = rec.calls().len();
    assert_eq!(
        recv(&mut h, &V4, 5012, b"more").offload,
        eligible(Side::Responder)
    );
    assert_eq!(
        rec.calls().len(),
        calls,
        "not called again after ALLOW_CONNECTION"
    );
}

#[test]
fn a_revoked_flow_is_reauthorized_and_blocked_after_a_policy_change() {
    let mut h = H::new();
    let rec = Rec::passive();
    h.callout(
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    handshake(&mut h, &V4);
    assert!(send(&mut h, &V4, 1001, b"0123456789").offload.is_eligible());
    // The kernel carries 100,000 bytes; then a commit blocks the connection at AUTH_CONNECT
    // and revokes the offload: the next packet comes back to the shim.
    h.filter(
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::BLOCK,
        vec![cond(
            layers::ALE_AUTH_CONNECT_V4,
            "IP_REMOTE_PORT",
            MatchType::Equal,
            ConditionValue::from(Value::Uint16(80)),
        )],
    );
    let v = send(&mut h, &V4, 1011 + 100_000, b"later");
    assert_eq!(v.verdict, Verdict::Block);
    assert_eq!(v.offload, Offload::Keep(KeepReason::NotPermitted));
    let auth = rec.calls_at(layers::ALE_AUTH_CONNECT_V4);
    assert_eq!(auth.len(), 2);
    assert_ne!(auth[1].flags & ConditionFlags::IS_REAUTHORIZE.0, 0);
}

#[test]
fn a_resumed_flow_restarts_its_stream_and_reports_the_carried_bytes_as_missed() {
    let mut h = H::new();
    handshake(&mut h, &V4);
    assert!(send(&mut h, &V4, 1001, b"0123456789").offload.is_eligible());
    // A stream callout arrives with a policy change; the kernel had carried 5,000 bytes.
    let rec = Rec::passive();
    h.callout(
        layers::STREAM_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let v = send(&mut h, &V4, 1011 + 5000, b"tail");
    assert_eq!(v.verdict, Verdict::Permit);
    let calls = rec.calls_at(layers::STREAM_V4);
    assert_eq!(
        calls.len(),
        1,
        "the segment after the gap is indicated at once"
    );
    assert_eq!(calls[0].data, b"tail");
    assert_eq!(calls[0].missed, 5000);
    assert!(matches!(
        v.offload,
        Offload::Keep(KeepReason::Callout { .. } | KeepReason::StreamCallout { .. })
    ));
}

#[test]
fn udp_flows_are_eligible_once_established_unless_datagram_data_has_a_callout() {
    for with_callout in [false, true] {
        let mut h = H::new();
        if with_callout {
            h.callout(
                layers::DATAGRAM_DATA_V4,
                ActionType::CALLOUT_INSPECTION,
                CalloutFlags::default(),
                &Rec::passive(),
                vec![],
            );
        }
        let q = h.packet(
            PacketDirection::Outbound,
            &testutil::udp_packet(&V4, 40000, 53, b"query"),
        );
        let a = h.packet(
            PacketDirection::Inbound,
            &testutil::udp_packet(&V4.reply(), 53, 40000, b"answer"),
        );
        if with_callout {
            assert!(matches!(
                q.offload,
                Offload::Keep(KeepReason::Callout { .. })
            ));
            assert!(matches!(
                a.offload,
                Offload::Keep(KeepReason::Callout { .. })
            ));
        } else {
            assert_eq!(q.offload, eligible(Side::Initiator));
            assert_eq!(a.offload, eligible(Side::Responder));
        }
    }
}

/// Associates a context at ALE_FLOW_ESTABLISHED and counts flowDeleteFn calls.
#[derive(Default)]
struct Ctx {
    deletes: AtomicU64,
}

impl Callout for Ctx {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        _values: &IncomingValues<'_>,
        _meta: &Metadata,
        _data: &mut LayerData<'_>,
        _filter: &RtFilter,
        _flow_context: u64,
        _out: &mut ClassifyOut,
    ) {
        if let Some(f) = ctx.flow() {
            ctx.engine()
                .flow_associate_context(f, ctx.layer(), ctx.callout_id(), 0x55);
        }
    }
    fn flow_delete(&self, _layer: LayerId, _callout: CalloutId, context: u64) {
        assert_eq!(context, 0x55);
        self.deletes.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn flow_delete_runs_once_at_the_end_of_an_offloaded_flow_with_the_kernel_counts() {
    let mut h = H::new();
    let ctx = Arc::new(Ctx::default());
    h.callout_dyn(
        layers::ALE_FLOW_ESTABLISHED_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        ctx.clone(),
    );
    handshake(&mut h, &V4);
    let v = send(&mut h, &V4, 1001, b"0123456789");
    assert!(v.offload.is_eligible(), "an ALE context wants no packets");
    let key = FlowKey::new(6, V4.src, TCP.sport, V4.dst, TCP.dport);
    let kernel = CarriedCounts {
        packets: [700, 350],
        bytes: [1_000_000, 18_200],
    };
    let end = h.shim.end_offloaded(&key, kernel).expect("tracked");
    assert_eq!(ctx.deletes.load(Ordering::SeqCst), 1);
    assert_eq!(end.contexts, 1);
    assert_eq!(end.bytes, kernel.bytes);
    assert_eq!(end.packets, kernel.packets);
    // The shim classified 3 packets from the initiator (SYN, ACK, data), 1 from the responder.
    assert_eq!(end.carried_packets, [697, 349]);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, crate::pipeline::ShimEvent::FlowEnded { .. })));
    assert!(h.shim.end_offloaded(&key, kernel).is_none(), "ended once");
    assert_eq!(ctx.deletes.load(Ordering::SeqCst), 1);
}

/// Issue 16: `FwpsFlowAbort0` from outside classifyFn on a flow whose directions are offloaded:
/// the data path is told to withdraw the offload of that one connection (its original direction
/// from the flow's initiator), and the next packet, back in the shim, is blocked.
#[test]
fn an_abort_from_outside_classify_withdraws_the_offload_of_that_flow() {
    use crate::flow::Direction;
    use crate::pipeline::Reason;
    use crate::ShimConfig;
    let mut h = H::with_engine(super::asyncs::announced(), ShimConfig::default());
    handshake(&mut h, &V4);
    let v = send(&mut h, &V4, 1001, b"request");
    assert_eq!(v.offload, eligible(Side::Initiator));
    assert!(h.shim.take_withdrawals().is_empty(), "nothing touched yet");
    let flow = v.flow.expect("flow");
    h.shim.handle_async(h.now);
    assert!(
        h.shim.take_withdrawals().is_empty(),
        "no action, nothing withdrawn"
    );
    assert!(h.engine.flow_abort(flow.get()) <= 1);
    h.shim.handle_async(h.now);
    let w = h.shim.take_withdrawals();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].flow, flow);
    assert_eq!(w[0].initiator, Direction::Outbound);
    assert_eq!(
        w[0].key,
        FlowKey::new(6, V4.src, TCP.sport, V4.dst, TCP.dport)
    );
    assert!(h.shim.take_withdrawals().is_empty(), "taken once");
    let next = send(&mut h, &V4, 1008, b"more");
    assert_eq!(
        (next.verdict, next.reason),
        (Verdict::Block, Reason::FlowAborted)
    );
}

/// Issue 16: an abort of a flow with no offloaded direction withdraws nothing, and no kernel
/// counts are noted for it.
#[test]
fn an_abort_of_a_queued_flow_withdraws_nothing() {
    use crate::ShimConfig;
    // Tracing keeps every flow queued (`keep:tracing`).
    let config = ShimConfig {
        trace: true,
        ..ShimConfig::default()
    };
    let mut h = H::with_engine(super::asyncs::announced(), config);
    handshake(&mut h, &V4);
    assert_eq!(
        send(&mut h, &V4, 1001, b"x").offload,
        Offload::Keep(KeepReason::Tracing)
    );
    let key = FlowKey::new(6, V4.src, TCP.sport, V4.dst, TCP.dport);
    let kernel = CarriedCounts::default();
    assert!(!h.shim.note_carried(&key, kernel), "not offloaded");
    let flow = h
        .shim
        .flow_rows()
        .next()
        .map(|r| r.flow.id())
        .expect("flow");
    assert!(!h.shim.is_offloaded(flow));
    h.engine.flow_abort(flow.get());
    h.shim.handle_async(h.now);
    assert!(h.shim.take_withdrawals().is_empty());
}

/// Issue 16: the kernel's counts for an open offloaded flow are listed with it, and only for
/// flows with an offloaded direction.
#[test]
fn kernel_counts_of_an_open_offloaded_flow_are_listed_with_it() {
    let mut h = H::new();
    handshake(&mut h, &V4);
    let key = FlowKey::new(6, V4.src, TCP.sport, V4.dst, TCP.dport);
    let kernel = CarriedCounts {
        packets: [40, 20],
        bytes: [50_000, 1_040],
    };
    assert!(h.shim.flow_rows().all(|r| r.carried.is_none()));
    assert!(send(&mut h, &V4, 1001, b"x").offload.is_eligible());
    assert!(h.shim.note_carried(&key, kernel));
    let other = FlowKey::new(6, V4.src, 1, V4.dst, TCP.dport);
    assert!(!h.shim.note_carried(&other, kernel), "no such flow");
    let rows: Vec<_> = h.shim.flow_rows().collect();
    assert_eq!(rows.len(), 1);
    let (f, carried) = (rows[0].flow, rows[0].carried.expect("carried"));
    // The shim classified 3 packets from the initiator (SYN, ACK, data), 1 from the responder:
    // the rest the kernel carried; the flow's counts plus those are the kernel's.
    assert_eq!(carried.packets, [37, 19]);
    for side in [Side::Initiator, Side::Responder] {
        let i = side.index();
        assert_eq!(f.packets(side) + carried.packets[i], kernel.packets[i]);
        assert_eq!(f.bytes(side) + carried.bytes[i], kernel.bytes[i]);
    }
}
