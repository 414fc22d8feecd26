//! Several shims over one engine (one per NFQUEUE queue in wfpd): each numbers its flows and
//! mints its completion handles in its own [`IdShare`], so flow contexts (§6) never collide, and
//! takes only the engine's completions (§10.1), flow aborts (§6) and injections (§10.4) of its
//! own flows.

use std::sync::{Arc, Mutex};

use wfp_core::callout::LayerData;
use wfp_core::catalogue::layers;
use wfp_core::constants::ClassifyOutFlags;
use wfp_core::inject::{AddressFamily, Inject, InjectionKind, InjectionState, InjectionTypes};
use wfp_core::{ActionType, CalloutFlags, Status};

use super::asyncs::{announced, full, pender};
use super::pipeline::{handshake, send, tcp, Rec, H, RST, SYN};
use crate::flow::IdShare;
use crate::pipeline::{OutputOrigin, PacketDirection, Reason, ShimConfig, Verdict};
use crate::testutil::{self, Tcp, TCP, V4};

/// The configuration of shim `index` of two.
fn share(index: u64) -> ShimConfig {
    let mut c = ShimConfig::default();
    c.flow.ids = IdShare::of(index, 2).unwrap();
    c
}

/// Two shims over one engine: `a` (ids 1, 3, 5, …) and `b` (ids 2, 4, 6, …).
fn pair(engine: Option<Arc<wfp_core::Engine>>) -> (H, H) {
    let a = match engine {
        Some(e) => H::with_engine(e, share(0)),
        None => H::with(share(0)),
    };
    let b = H::with_engine(a.engine.clone(), share(1));
    (a, b)
}

fn syn(h: &mut H) -> crate::pipeline::PacketVerdict {
    h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V4, &tcp(SYN, 1000, 0), b""),
    )
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

fn outputs(h: &mut H) -> Vec<crate::pipeline::ShimOutput> {
    h.shim.handle_async(h.now);
    std::iter::from_fn(|| h.shim.poll_output()).collect()
}

#[test]
fn id_share_partitions_the_ids() {
    let a = IdShare::of(0, 3).unwrap();
    let c = IdShare::of(2, 3).unwrap();
    assert_eq!((0..3).map(|n| a.nth(n)).collect::<Vec<_>>(), [1, 4, 7]);
    assert_eq!((0..3).map(|n| c.nth(n)).collect::<Vec<_>>(), [3, 6, 9]);
    assert!(a.contains(4) && !a.contains(3) && !a.contains(0) && c.contains(9));
    assert!(a.is_first() && !c.is_first());
    assert_eq!(IdShare::of(3, 3), None);
    assert!((1..100).all(|n| IdShare::ALL.contains(n)));
}

/// Same 5-tuple on both queues (the worst case): two flows, two contexts, and the flowDeleteFn
/// of the flow that ended only.
#[test]
fn two_shims_keep_their_flow_ids_and_flow_contexts_apart() {
    let (mut a, mut b) = pair(None);
    let stream = Rec::passive();
    let s_id = a.callout(
        layers::STREAM_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::CONDITIONAL_ON_FLOW,
        &stream,
        vec![],
    );
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let st = statuses.clone();
    // The FLOW_ESTABLISHED callout associates the flow's own id as its STREAM context.
    let est = Rec::new(move |c, out, _, ctx| {
        out.action_type = ActionType::CONTINUE;
        if let Some(flow) = c.flow {
            let s = ctx
                .engine()
                .flow_associate_context(flow, layers::STREAM_V4, s_id, flow);
            st.lock().unwrap().push(s);
        }
    });
    a.callout(
        layers::ALE_FLOW_ESTABLISHED_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &est,
        vec![],
    );
    handshake(&mut a, &V4);
    handshake(&mut b, &V4);
    let fa = send(&mut a, &V4, 1001, b"from a").flow.unwrap().get();
    let fb = send(&mut b, &V4, 1001, b"from b").flow.unwrap().get();
    assert_eq!((fa, fb), (1, 2));
    assert_eq!(
        *statuses.lock().unwrap(),
        [Status::SUCCESS, Status::SUCCESS]
    );
    let seen: Vec<(u64, Vec<u8>)> = stream
        .calls()
        .iter()
        .map(|c| (c.flow_context, c.data.clone()))
        .collect();
    assert_eq!(seen, [(1, b"from a".to_vec()), (2, b"from b".to_vec())]);
    recv_rst(&mut a);
    assert_eq!(
        *stream.deletes.lock().unwrap(),
        [(layers::STREAM_V4, s_id, 1)]
    );
    assert_eq!(a.engine.flow_context_count(), 1, "b's context lives on");
    recv_rst(&mut b);
    assert_eq!(a.engine.flow_context_count(), 0);
}

/// §10.1 on two queues: a completion is applied by the shim that pended the operation, whichever
/// shim runs `handle_async` first.
#[test]
fn completions_reach_the_shim_that_pended() {
    let (mut a, mut b) = pair(None);
    let seen = pender(&mut a, true);
    assert_eq!(syn(&mut a).reason, Reason::Pended);
    assert_eq!(syn(&mut b).reason, Reason::Pended);
    let (ca, cb) = {
        let g = seen.lock().unwrap();
        (g.0[0], g.0[1])
    };
    assert_eq!(a.engine.complete_operation(cb, None), Status::SUCCESS);
    assert!(outputs(&mut a).is_empty(), "a does not take b's completion");
    assert_eq!(a.shim.stats().late_completions, 0);
    let out = outputs(&mut b);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].verdict.verdict, Verdict::Permit);
    assert!(matches!(out[0].origin, OutputOrigin::Released { flow: Some(f) } if f.get() == 2));
    assert_eq!(a.engine.complete_operation(ca, None), Status::SUCCESS);
    assert!(outputs(&mut b).is_empty());
    let out = outputs(&mut a);
    assert!(
        matches!(out[..], [ref o] if matches!(o.origin, OutputOrigin::Released { flow: Some(f) } if f.get() == 1))
    );
    let (sa, sb) = (a.shim.stats(), b.shim.stats());
    assert_eq!((sa.pend_completed, sb.pend_completed), (1, 1));
    assert_eq!((sa.late_completions, sb.late_completions), (0, 0));
}

/// §6 `FwpsFlowAbort0` on two queues: the abort ends b's flow, never a's.
#[test]
fn flow_abort_reaches_the_shim_of_the_flow() {
    let (mut a, mut b) = pair(Some(announced()));
    handshake(&mut a, &V4);
    handshake(&mut b, &V4);
    a.engine.flow_abort(2);
    assert!(outputs(&mut a).is_empty());
    assert_eq!(a.shim.stats().flows_aborted, 0);
    assert_eq!(send(&mut a, &V4, 1001, b"a").verdict, Verdict::Permit);
    outputs(&mut b);
    assert_eq!(b.shim.stats().flows_aborted, 1);
    assert_eq!(send(&mut b, &V4, 1001, b"b").reason, Reason::FlowAborted);
}

/// §10.4 on two queues: a clone re-injected from a flow's classify re-enters the shim of that
/// flow.
#[test]
fn injections_run_in_the_shim_of_the_cloned_packets_flow() {
    let (mut a, mut b) = pair(None);
    let handle = a
        .engine
        .create_injection_handle(AddressFamily::Inet, InjectionTypes::NETWORK)
        .unwrap();
    full(
        &mut a,
        layers::OUTBOUND_IPPACKET_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |ctx, _, meta, ld, out| {
            out.action_type = ActionType::PERMIT;
            let (state, _) = ctx
                .engine()
                .query_packet_injection_state(handle, meta.injection.as_deref());
            let LayerData::Packet(p) = ld else { return };
            if state != InjectionState::NotInjected {
                return;
            }
            let clone = ctx.clone_packet(meta, p).unwrap();
            let st = ctx.engine().inject(Inject {
                handle,
                context: 0,
                kind: InjectionKind::NetworkSend { compartment: 1 },
                packet: clone,
                completion: None,
            });
            assert_eq!(st, Status::SUCCESS);
            out.action_type = ActionType::BLOCK;
            out.flags |= ClassifyOutFlags::ABSORB;
        }),
    );
    let pa = testutil::udp_packet(&V4, 40000, 53, b"query from a");
    let pb = testutil::udp_packet(&V4, 40000, 53, b"query from b");
    assert_eq!(
        a.packet(PacketDirection::Outbound, &pa).verdict,
        Verdict::Absorb
    );
    assert_eq!(
        b.packet(PacketDirection::Outbound, &pb).verdict,
        Verdict::Absorb
    );
    let out = outputs(&mut a);
    assert_eq!(out.len(), 1, "a runs its own injection only");
    assert_eq!(out[0].bytes, pa);
    assert_eq!(out[0].verdict.flow.map(|f| f.get()), Some(1));
    let out = outputs(&mut b);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bytes, pb);
    assert_eq!(out[0].verdict.flow.map(|f| f.get()), Some(2));
    assert_eq!(a.engine.ledger_counts(), Default::default());
}

/// A shim replaced after a contained panic (wfpd's `recover`) continues the old one's id sequence
/// within its share: a flow id already handed to a callout's flow context is never reissued.
#[test]
fn a_successor_never_reissues_flow_ids() {
    let (mut a, _b) = pair(None);
    handshake(&mut a, &V4);
    let first = send(&mut a, &V4, 1001, b"x").flow.unwrap().get();
    assert_eq!(first, 1);
    a.shim = a.shim.successor();
    handshake(&mut a, &V4);
    let second = send(&mut a, &V4, 1001, b"y").flow.unwrap().get();
    assert_eq!(second, 3, "the next id of share 0 of 2, not 1 again");
}
