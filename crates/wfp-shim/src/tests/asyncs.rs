//! The asynchronous machinery on the data path (wfp-reference §10.1, §10.4, §9.2, §6, §2.3):
//! pended authorizations holding packets, completions from another thread, the pend deadline,
//! injected packets re-entering, inline stream edits of a different length, flow abort, and the
//! metadata of each layer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::layers;
use wfp_core::constants::{
    ClassifyOutFlags, ConditionFlags, MetadataFields, ReauthorizeReason, StreamFlags,
};
use wfp_core::engine::FlowTracking;
use wfp_core::inject::{AddressFamily, Inject, InjectionKind, InjectionState, InjectionTypes};
use wfp_core::pend::CompletionContext;
use wfp_core::{ActionType, Callout, CalloutFlags, Engine, EngineOptions, RtFilter};

use super::pipeline::{handshake, recv, send, tcp, Rec, ACK, H, SYN};
use crate::pipeline::{OutputOrigin, PacketDirection, Reason, ShimConfig, Verdict};
use crate::testutil::{self, TCP, V4};
use crate::wire;

pub(super) type Script = dyn Fn(&ClassifyContext<'_>, &IncomingValues<'_>, &Metadata, &mut LayerData<'_>, &mut ClassifyOut)
    + Send
    + Sync;

/// A callout whose classifyFn sees everything (metadata included).
struct Full(Box<Script>);

impl Callout for Full {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        _filter: &RtFilter,
        _flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        (self.0)(ctx, values, meta, layer_data, out);
    }
}

pub(super) fn announced() -> Arc<Engine> {
    Arc::new(Engine::new(EngineOptions {
        flow_tracking: FlowTracking::Announced,
        ..EngineOptions::default()
    }))
}

fn flags(values: &IncomingValues<'_>) -> u32 {
    values.by_name("FLAGS").as_u64().unwrap_or(0) as u32
}

/// Registers `f` at `layer` through the recording harness (its `Rec` wraps nothing: the
/// harness only needs a registration).
pub(super) fn full(
    h: &mut H,
    layer: wfp_core::LayerId,
    action: ActionType,
    f: Box<Script>,
) -> wfp_core::CalloutId {
    let c: Arc<dyn Callout> = Arc::new(Full(f));
    h.callout_dyn(layer, action, CalloutFlags::default(), c)
}

/// The pending inspector shape: pend the initial AUTH_CONNECT, answer on reauthorization.
pub(super) fn pender(h: &mut H, permit: bool) -> Arc<Mutex<(Vec<CompletionContext>, Vec<u32>)>> {
    let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let s = seen.clone();
    full(
        h,
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |ctx, values, meta, _, out| {
            let mut g = s.lock().unwrap();
            if flags(values) & ConditionFlags::IS_REAUTHORIZE.0 != 0 {
                g.1.push(values.by_name("REAUTHORIZE_REASON").as_u64().unwrap_or(0) as u32);
                out.action_type = if permit {
                    ActionType::PERMIT
                } else {
                    ActionType::BLOCK
                };
                return;
            }
            let c = ctx.pend_operation(meta).unwrap();
            g.0.push(c);
            out.action_type = ActionType::BLOCK;
            out.flags |= ClassifyOutFlags::ABSORB;
            out.clear_write();
        }),
    );
    seen
}

fn syn(h: &mut H) -> crate::pipeline::PacketVerdict {
    h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V4, &tcp(SYN, 1000, 0), b""),
    )
}

#[test]
fn t_pend_1_connect_held_until_completed_from_another_thread_then_released() {
    let mut h = H::new();
    let seen = pender(&mut h, true);
    let v = syn(&mut h);
    assert_eq!(
        (v.verdict, v.reason.clone()),
        (Verdict::Absorb, Reason::Pended)
    );
    let again = syn(&mut h);
    assert_eq!(
        again.reason,
        Reason::Pended,
        "a later packet of the pended flow is held"
    );
    h.shim.handle_async(h.now);
    assert!(
        h.shim.poll_output().is_none(),
        "nothing released before completion"
    );
    let ctx = seen.lock().unwrap().0[0];
    let engine = h.engine.clone();
    std::thread::spawn(move || engine.complete_operation(ctx, None))
        .join()
        .unwrap();
    h.shim.handle_async(h.now);
    let out: Vec<_> = std::iter::from_fn(|| h.shim.poll_output()).collect();
    assert_eq!(out.len(), 2, "both held packets released");
    for o in &out {
        assert_eq!(o.verdict.verdict, Verdict::Permit);
        assert!(matches!(o.origin, OutputOrigin::Released { flow: Some(_) }));
    }
    assert_eq!(
        seen.lock().unwrap().1,
        vec![ReauthorizeReason::CLASSIFY_COMPLETION.0],
        "one reauthorization, reason CLASSIFY_COMPLETION"
    );
    let st = h.shim.stats();
    assert_eq!(
        (st.pended, st.pend_completed, st.held, st.held_released),
        (1, 1, 2, 2)
    );
    // Authorized now: the next packet passes without pend or reauthorization.
    assert_eq!(syn(&mut h).verdict, Verdict::Permit);
}

#[test]
fn t_pend_2_refused_at_completion_drops_held_packets_and_refuses_the_connection() {
    let mut h = H::new();
    let seen = pender(&mut h, false);
    syn(&mut h);
    let ctx = seen.lock().unwrap().0[0];
    assert_eq!(
        h.engine.complete_operation(ctx, None),
        wfp_core::Status::SUCCESS
    );
    h.shim.handle_async(h.now);
    assert!(h.shim.poll_output().is_none());
    assert_eq!(h.shim.stats().held_dropped, 1);
    let late = send(&mut h, &V4, 1001, b"x");
    assert_eq!(late.reason, Reason::ConnectionRefused);
}

#[test]
fn pend_deadline_drops_the_operation_and_counts_a_late_completion() {
    let mut h = H::with(ShimConfig {
        pend_deadline: Some(Duration::from_secs(2)),
        ..ShimConfig::default()
    });
    let seen = pender(&mut h, true);
    syn(&mut h);
    let due = h.shim.poll_timeout().unwrap();
    assert_eq!(due, h.now.saturating_add(Duration::from_secs(2)));
    h.shim.handle_timeout(due);
    assert_eq!(
        (h.shim.stats().pend_expired, h.shim.stats().held_dropped),
        (1, 1)
    );
    let ctx = seen.lock().unwrap().0[0];
    h.engine.complete_operation(ctx, None);
    h.shim.handle_async(due);
    assert!(h.shim.poll_output().is_none());
    assert_eq!(h.shim.stats().late_completions, 1);
}

#[test]
fn injected_packet_reenters_at_the_bottom_with_its_provenance() {
    let mut h = H::new();
    let handle = h
        .engine
        .create_injection_handle(AddressFamily::Inet, InjectionTypes::NETWORK)
        .unwrap();
    let states = Arc::new(Mutex::new(Vec::new()));
    let s = states.clone();
    full(
        &mut h,
        layers::INBOUND_IPPACKET_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |ctx, _, meta, ld, out| {
            let (state, _) = ctx
                .engine()
                .query_packet_injection_state(handle, meta.injection.as_deref());
            s.lock().unwrap().push(state);
            out.action_type = ActionType::PERMIT;
            if state != InjectionState::NotInjected {
                return;
            }
            let LayerData::Packet(p) = ld else { return };
            let clone = ctx.clone_packet(meta, p).unwrap();
            let st = ctx.engine().inject(Inject {
                handle,
                context: 7,
                kind: InjectionKind::NetworkReceive {
                    compartment: 1,
                    interface: 0,
                    sub_interface: 0,
                },
                packet: clone,
                completion: None,
            });
            assert_eq!(st, wfp_core::Status::SUCCESS);
            out.action_type = ActionType::BLOCK;
            out.flags |= ClassifyOutFlags::ABSORB;
        }),
    );
    let pkt = testutil::udp_packet(&V4.reply(), 53, 40000, b"answer");
    let v = h.packet(PacketDirection::Inbound, &pkt);
    assert_eq!(v.verdict, Verdict::Absorb);
    h.shim.handle_async(h.now);
    let out = h.shim.poll_output().expect("the injected clone");
    assert_eq!(out.bytes, pkt);
    assert_eq!(out.verdict.verdict, Verdict::Permit);
    assert!(
        matches!(out.origin, OutputOrigin::Injected { depth: 1, handle: hd, .. } if hd == handle)
    );
    assert_eq!(
        *states.lock().unwrap(),
        vec![InjectionState::NotInjected, InjectionState::InjectedBySelf]
    );
    let st = h.engine.injection_stats();
    assert_eq!(
        (st.created, st.injected, st.delivered, st.completions),
        (1, 1, 1, 1)
    );
    assert_eq!(h.engine.ledger_counts(), Default::default());
    assert_eq!(h.shim.stats().injected_delivered, 1);
}

/// The inline edit of §9.2's worked example with a replacement of another length: "foo" in
/// outbound data becomes "quux!".
fn editor(h: &mut H) -> wfp_core::inject::InjectionHandle {
    let handle = h
        .engine
        .create_injection_handle(AddressFamily::Unspecified, InjectionTypes::STREAM)
        .unwrap();
    full(
        h,
        layers::STREAM_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |ctx, _, meta, ld, out| {
            let LayerData::Stream(io) = ld else { return };
            let data = io.stream_data.data;
            out.action_type = ActionType::PERMIT;
            match data.windows(3).position(|w| w == b"foo") {
                Some(0) => {
                    let p = ctx.engine().allocate_packet(&b"quux!"[..]);
                    let flow = meta.flow().unwrap();
                    ctx.engine().inject(Inject {
                        handle,
                        context: 0,
                        kind: InjectionKind::Stream {
                            flow,
                            callout: ctx.callout_id(),
                            layer: ctx.layer(),
                            flags: if io.stream_data.flags.contains(StreamFlags::SEND) {
                                StreamFlags::SEND
                            } else {
                                StreamFlags::RECEIVE
                            },
                        },
                        packet: p,
                        completion: None,
                    });
                    out.action_type = ActionType::BLOCK;
                    io.count_bytes_enforced = 3;
                }
                Some(i) => io.count_bytes_enforced = i as u64,
                None => io.count_bytes_enforced = data.len() as u64,
            }
        }),
    );
    handle
}

fn tcp_fields(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let p = wire::parse(bytes).unwrap();
    let wire::Transport::Tcp(t) = &p.transport else {
        panic!("not tcp")
    };
    (t.seq, t.ack, bytes[t.payload.clone()].to_vec())
}

#[test]
fn t_st_2_inline_edit_of_another_length_rewrites_the_segment_and_shifts_the_stream() {
    let mut h = H::new();
    let handle = editor(&mut h);
    let below = Rec::passive();
    h.callout(
        layers::STREAM_V4,
        ActionType::CALLOUT_INSPECTION,
        CalloutFlags::default(),
        &below,
        vec![],
    );
    handshake(&mut h, &V4);
    let v = send(&mut h, &V4, 1001, b"abcfoodef");
    assert_eq!(v.verdict, Verdict::Permit);
    let e = v.edited.expect("edited");
    assert_eq!(e.injectors, vec![handle]);
    assert!(
        wire::parse_with(&e.bytes, &wire::ParseConfig::default()).is_ok(),
        "valid checksums"
    );
    assert_eq!(tcp_fields(&e.bytes), (1001, 5001, b"abcquux!def".to_vec()));
    assert_eq!(
        below.stream_bytes(true),
        b"abcquux!def",
        "lower callout sees the injected bytes"
    );
    // The stream is 2 bytes longer: the next segment moves, the server's ACK moves back.
    let next = send(&mut h, &V4, 1010, b"zz").edited.expect("shifted");
    assert_eq!(tcp_fields(&next.bytes), (1012, 5001, b"zz".to_vec()));
    let ack = recv(&mut h, &V4, 5001, b"").edited.expect("ack translated");
    assert_eq!(
        tcp_fields(&ack.bytes).1,
        1001 + 2,
        "acknowledgement moved by the edit"
    );
    assert_eq!(h.engine.ledger_counts(), Default::default());
}

#[test]
fn flow_abort_blocks_later_packets_and_deletes_contexts_once() {
    let mut h = H::with_engine(announced(), ShimConfig::default());
    let n = Arc::new(Mutex::new(0u32));
    let c = n.clone();
    full(
        &mut h,
        layers::DATAGRAM_DATA_V4,
        ActionType::CALLOUT_INSPECTION,
        Box::new(move |ctx, _, meta, _, out| {
            out.action_type = ActionType::CONTINUE;
            let mut k = c.lock().unwrap();
            *k += 1;
            if *k == 2 {
                let fl = meta.flow().unwrap();
                ctx.engine().flow_abort(fl);
            }
        }),
    );
    let p = testutil::udp_packet(&V4, 40000, 53, b"q");
    for _ in 0..2 {
        assert_eq!(
            h.packet(PacketDirection::Outbound, &p).verdict,
            Verdict::Permit
        );
        h.shim.handle_async(h.now);
    }
    let v = h.packet(PacketDirection::Outbound, &p);
    assert_eq!((v.verdict, v.reason), (Verdict::Block, Reason::FlowAborted));
    assert_eq!(h.shim.stats().flows_aborted, 1);
    assert_eq!(h.engine.live_flow_count(), 0, "announced flow ended");
}

#[test]
fn metadata_carries_every_field_the_data_path_knows() {
    let mut h = H::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for layer in [
        layers::ALE_AUTH_CONNECT_V4,
        layers::OUTBOUND_TRANSPORT_V4,
        layers::OUTBOUND_IPPACKET_V4,
        layers::IPFORWARD_V4,
    ] {
        let s = seen.clone();
        full(
            &mut h,
            layer,
            ActionType::CALLOUT_INSPECTION,
            Box::new(move |_, values, meta, ld, out| {
                out.action_type = ActionType::CONTINUE;
                let has_data = !matches!(ld, LayerData::None);
                s.lock()
                    .unwrap()
                    .push((values.layer, meta.present, has_data));
            }),
        );
    }
    let ctx = crate::pipeline::PacketContext {
        ifindex: Some(3),
        ..Default::default()
    };
    let p = testutil::udp_packet(&V4, 40000, 53, b"q");
    h.shim
        .handle_packet(h.now, PacketDirection::Outbound, &p, &ctx);
    h.shim
        .handle_packet(h.now, PacketDirection::Forward, &p, &ctx);
    let got = seen.lock().unwrap().clone();
    let at = |l| {
        got.iter()
            .find(|(x, _, _)| *x == l)
            .map(|(_, m, d)| (*m, *d))
            .unwrap()
    };
    let base = MetadataFields::IP_HEADER_SIZE | MetadataFields::COMPARTMENT_ID;
    let (auth, _) = at(layers::ALE_AUTH_CONNECT_V4);
    for f in [
        base,
        MetadataFields::FLOW_HANDLE,
        MetadataFields::TRANSPORT_ENDPOINT_HANDLE,
        MetadataFields::TRANSPORT_HEADER_SIZE,
        MetadataFields::PACKET_DIRECTION,
        MetadataFields::DESTINATION_INTERFACE_INDEX,
        MetadataFields::PATH_MTU,
        MetadataFields::COMPLETION_HANDLE,
    ] {
        assert!(auth.contains(f), "AUTH_CONNECT lacks {f:?}");
    }
    let (ot, _) = at(layers::OUTBOUND_TRANSPORT_V4);
    assert!(ot.contains(MetadataFields::FLOW_HANDLE | MetadataFields::TRANSPORT_HEADER_SIZE));
    assert!(!ot.contains(MetadataFields::COMPLETION_HANDLE));
    let (ip, _) = at(layers::OUTBOUND_IPPACKET_V4);
    assert!(ip.contains(base | MetadataFields::DESTINATION_INTERFACE_INDEX));
    let (fwd, data) = at(layers::IPFORWARD_V4);
    assert!(fwd.contains(base | MetadataFields::SOURCE_INTERFACE_INDEX));
    assert!(data, "IPFORWARD has layer data");
    let _ = (ACK, TCP);
}

/// T-ST-7 through the shim: a callout DEFERs inbound data at the stream layer; the engine records
/// the deferral (its `stream_continue` finds it), the held bytes are not indicated again until the
/// callout continues the stream from outside its classifyFn, and `handle_async` then indicates
/// them again. A second continue finds nothing.
#[test]
fn t_st_7_defer_then_stream_continue_resumes_through_the_shim() {
    let mut h = H::new();
    let seen = Arc::new(Mutex::new(Vec::<(Vec<u8>, u64)>::new()));
    let s = seen.clone();
    let callout = full(
        &mut h,
        layers::STREAM_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |_, _, meta, ld, out| {
            let LayerData::Stream(io) = ld else { return };
            let mut g = s.lock().unwrap();
            g.push((io.stream_data.data.to_vec(), meta.flow().unwrap_or(0)));
            out.action_type = ActionType::PERMIT;
            if io.stream_data.flags.contains(StreamFlags::RECEIVE) && g.len() == 1 {
                io.stream_action = wfp_core::StreamAction::Defer;
            }
        }),
    );
    handshake(&mut h, &V4);
    recv(&mut h, &V4, 5001, b"hello");
    let flow = seen.lock().unwrap()[0].1;
    assert!(h
        .engine
        .is_stream_deferred(flow, callout, layers::STREAM_V4));
    recv(&mut h, &V4, 5006, b" world");
    assert_eq!(seen.lock().unwrap().len(), 1, "deferred: nothing indicated");
    h.shim.handle_async(h.now);
    assert_eq!(seen.lock().unwrap().len(), 1, "no continue yet");
    assert_eq!(
        h.engine
            .stream_continue(flow, callout, layers::STREAM_V4, StreamFlags::RECEIVE),
        wfp_core::Status::SUCCESS
    );
    h.shim.handle_async(h.now);
    let g = seen.lock().unwrap().clone();
    assert_eq!(g.len(), 2, "indicated again after the continue");
    assert_eq!(g[1].0, b"hello world".to_vec(), "the held bytes, in order");
    assert_eq!(
        h.engine
            .stream_continue(flow, callout, layers::STREAM_V4, StreamFlags::RECEIVE),
        wfp_core::Status::FWP_NOT_FOUND
    );
    let st = h.engine.stream_stats();
    assert_eq!((st.defers, st.continues), (1, 1));
}

/// §8.2 + §10.4: INBOUND_TRANSPORT's layerData is the payload; a clone of it carries the headers
/// behind its data start, so retreating by ipHeaderSize + transportHeaderSize gives the whole
/// packet, which FwpsInjectTransportReceiveAsync0 re-injects at the bottom of the inbound path.
#[test]
fn inbound_transport_clone_retreats_to_the_whole_packet_and_reinjects() {
    let mut h = H::new();
    let handle = h
        .engine
        .create_injection_handle(AddressFamily::Inet, InjectionTypes::TRANSPORT)
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    full(
        &mut h,
        layers::INBOUND_TRANSPORT_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |ctx, _, meta, ld, out| {
            out.action_type = ActionType::PERMIT;
            let e = ctx.engine();
            let (state, _) = e.query_packet_injection_state(handle, meta.injection.as_deref());
            let LayerData::Packet(p) = ld else { return };
            s.lock().unwrap().push((state, p.to_vec()));
            if state != InjectionState::NotInjected {
                return;
            }
            let clone = ctx.clone_packet(meta, p).unwrap();
            let back = (meta.ip_header_size + meta.transport_header_size) as usize;
            assert_eq!(e.retreat_packet(clone, back), wfp_core::Status::SUCCESS);
            let st = e.inject(Inject {
                handle,
                context: 1,
                kind: InjectionKind::TransportReceive {
                    compartment: 1,
                    interface: 0,
                    sub_interface: 0,
                },
                packet: clone,
                completion: None,
            });
            assert_eq!(st, wfp_core::Status::SUCCESS);
            out.action_type = ActionType::BLOCK;
            out.flags |= ClassifyOutFlags::ABSORB;
            out.clear_write();
        }),
    );
    let pkt = testutil::udp_packet(&V4.reply(), 53, 40000, b"answer");
    let v = h.packet(PacketDirection::Inbound, &pkt);
    assert_eq!(v.verdict, Verdict::Absorb);
    h.shim.handle_async(h.now);
    let out = h.shim.poll_output().expect("the re-injected clone");
    assert_eq!(out.bytes, pkt, "the whole packet, headers included");
    assert_eq!(out.verdict.verdict, Verdict::Permit);
    assert!(matches!(
        out.origin,
        OutputOrigin::Injected {
            kind: crate::pipeline::InjectKind::TransportReceive,
            ..
        }
    ));
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        vec![
            (InjectionState::NotInjected, b"answer".to_vec()),
            (InjectionState::InjectedBySelf, b"answer".to_vec()),
        ],
        "the layer shows the payload both times"
    );
    assert_eq!(h.engine.ledger_counts(), Default::default());
}
