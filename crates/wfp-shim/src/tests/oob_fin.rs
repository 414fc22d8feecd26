//! §9.2 out-of-band stream injection and the end of a stream: an out-of-band editor blocks every
//! indication (the FIN's too) and re-injects the stream from outside classifyFn. What reaches
//! the wire: nothing for an empty injection, a segment without FIN for the data, a FIN only for
//! the injection carrying the DISCONNECT flag; the blocked original FIN never; and the sequence
//! and acknowledgement numbers count the FIN where it is really sent.

use std::sync::{Arc, Mutex};

use wfp_core::callout::LayerData;
use wfp_core::catalogue::layers;
use wfp_core::constants::{ClassifyOutFlags, StreamFlags};
use wfp_core::inject::{AddressFamily, Inject, InjectionHandle, InjectionKind, InjectionTypes};
use wfp_core::{ActionType, CalloutId, Status, StreamAction};

use super::asyncs::full;
use super::pipeline::{handshake, send, tcp, ACK, FINACK, H, RST};
use crate::flow::EndReason;
use crate::pipeline::{OutputOrigin, PacketDirection, ShimEvent, Verdict};
use crate::testutil::{self, Tcp, TCP, V4};
use crate::wire;

/// What the out-of-band editor saw: the flow of its indications and, per indication, the
/// stream flags and whether NO_MORE_DATA was set.
#[derive(Default)]
struct Seen {
    flow: u64,
    indications: Vec<(StreamFlags, bool)>,
}

/// Registers the out-of-band editor: it blocks every indication of the client's stream (FIN
/// included) and permits the server's.
fn oob_editor(h: &mut H) -> (CalloutId, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let id = full(
        h,
        layers::STREAM_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |_, _, meta, ld, out| {
            let LayerData::Stream(io) = ld else { return };
            let mut g = s.lock().unwrap();
            g.flow = meta.flow().unwrap_or(0);
            let no_more = out.flags.contains(ClassifyOutFlags::NO_MORE_DATA);
            g.indications.push((io.stream_data.flags, no_more));
            out.action_type = if io.stream_data.flags.contains(StreamFlags::RECEIVE) {
                ActionType::PERMIT
            } else {
                ActionType::BLOCK
            };
        }),
    );
    (id, seen)
}

/// `FwpsStreamInjectAsync0` from outside classifyFn (the editor's worker).
fn inject(
    h: &H,
    handle: InjectionHandle,
    (flow, callout): (u64, CalloutId),
    data: &[u8],
    flags: StreamFlags,
) {
    let p = h.engine.allocate_packet(data.to_vec());
    let st = h.engine.inject(Inject {
        handle,
        context: 0,
        kind: InjectionKind::Stream {
            flow,
            callout,
            layer: layers::STREAM_V4,
            flags,
        },
        packet: p,
        completion: None,
    });
    assert_eq!(st, Status::SUCCESS);
}

/// The server's bare ACK of `ack` (capture numbering); the bytes sent on (renumbered or not).
fn server_ack(h: &mut H, ack: u32) -> Vec<u8> {
    let back = Tcp {
        sport: TCP.dport,
        dport: TCP.sport,
        ..tcp(ACK, 5001, ack)
    };
    let bytes = testutil::tcp_packet(&V4.reply(), &back, b"");
    let v = h.packet(PacketDirection::Inbound, &bytes);
    assert_eq!(v.verdict, Verdict::Permit);
    v.edited.map_or(bytes, |e| e.bytes)
}

/// (seq, ack, FIN set, payload) of a TCP packet.
fn fields(bytes: &[u8]) -> (u32, u32, bool, Vec<u8>) {
    let p = wire::parse(bytes).unwrap();
    let wire::Transport::Tcp(t) = &p.transport else {
        panic!("not tcp")
    };
    (
        t.seq,
        t.ack,
        t.flags.fin(),
        bytes[t.payload.clone()].to_vec(),
    )
}

/// The injected segments `handle_async` produced now.
fn outputs(h: &mut H) -> Vec<Vec<u8>> {
    h.shim.handle_async(h.now);
    let mut v = Vec::new();
    while let Some(o) = h.shim.poll_output() {
        assert!(matches!(o.origin, OutputOrigin::Injected { .. }));
        assert_eq!(o.verdict.verdict, Verdict::Permit);
        assert!(
            wire::parse_with(&o.bytes, &wire::ParseConfig::default()).is_ok(),
            "valid checksums"
        );
        v.push(o.bytes);
    }
    v
}

/// T-ST-2 (out-of-band form) with T-ST-5: the FIN the editor blocked leaves the client's
/// segment as a bare ACK; the FIN goes out with the injection that carries SEND_DISCONNECT, one
/// number after the re-injected bytes; the server's acknowledgement of the client's FIN follows
/// where the FIN really is.
#[test]
fn t_st_2_out_of_band_fin_goes_on_the_wire_with_the_disconnect_injection_only() {
    let mut h = H::new();
    let (callout, seen) = oob_editor(&mut h);
    let handle = h
        .engine
        .create_injection_handle(AddressFamily::Unspecified, InjectionTypes::STREAM)
        .unwrap();
    handshake(&mut h, &V4);
    assert_eq!(send(&mut h, &V4, 1001, b"abc").verdict, Verdict::Block);
    let flow = seen.lock().unwrap().flow;
    // An empty injection without DISCONNECT: delivered, nothing on the wire.
    inject(&h, handle, (flow, callout), b"", StreamFlags::SEND);
    assert!(outputs(&mut h).is_empty(), "no empty segment");
    assert_eq!(h.engine.injection_stats().delivered, 1);
    // The data: one segment at the stream's position, no FIN.
    inject(&h, handle, (flow, callout), b"abc", StreamFlags::SEND);
    let out = outputs(&mut h);
    assert_eq!(out.len(), 1);
    assert_eq!(fields(&out[0]), (1001, 5001, false, b"abc".to_vec()));
    // The client's FIN: the editor blocks its indication; the segment goes on without FIN.
    let fin = testutil::tcp_packet(&V4, &tcp(FINACK, 1004, 5001), b"");
    let v = h.packet(PacketDirection::Outbound, &fin);
    assert_eq!(v.verdict, Verdict::Permit);
    let bare = v.edited.expect("FIN removed").bytes;
    assert_eq!(fields(&bare), (1004, 5001, false, Vec::new()));
    let last = *seen.lock().unwrap().indications.last().unwrap();
    assert!(last.0.contains(StreamFlags::SEND_DISCONNECT) && last.1);
    // A retransmission of the FIN does not put it on the wire either; it keeps its number.
    let again = h.packet(PacketDirection::Outbound, &fin);
    assert_eq!(again.verdict, Verdict::Permit);
    let again = again.edited.expect("FIN removed again").bytes;
    assert_eq!(fields(&again), (1004, 5001, false, Vec::new()));
    // The server acknowledges the FIN in the capture (1005): the client's FIN is not out yet.
    assert_eq!(fields(&server_ack(&mut h, 1005)).1, 1004);
    // The editor re-injects the FIN: a FIN at 1004 (taking 1004), and the server's next
    // acknowledgement of 1005 is the FIN's.
    inject(
        &h,
        handle,
        (flow, callout),
        b"",
        StreamFlags::SEND | StreamFlags::SEND_DISCONNECT,
    );
    let out = outputs(&mut h);
    assert_eq!(out.len(), 1);
    assert_eq!(fields(&out[0]), (1004, 5001, true, Vec::new()));
    assert_eq!(fields(&server_ack(&mut h, 1005)).1, 1005);
    assert_eq!(h.engine.injection_stats().delivered, 3);
}

/// What a callout below the editor saw: per indication, the stream flags and NO_MORE_DATA.
type Below = Arc<Mutex<Vec<(StreamFlags, bool)>>>;

/// Registers a stream callout below the editor that holds everything it is shown (NEED_MORE_DATA)
/// until the stream ends, then permits it.
fn holder(h: &mut H) -> Below {
    let seen = Below::default();
    let s = seen.clone();
    full(
        h,
        layers::STREAM_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |_, _, _, ld, out| {
            let LayerData::Stream(io) = ld else { return };
            let no_more = out.flags.contains(ClassifyOutFlags::NO_MORE_DATA);
            s.lock().unwrap().push((io.stream_data.flags, no_more));
            if no_more {
                out.action_type = ActionType::PERMIT;
            } else {
                io.stream_action = StreamAction::NeedMoreData;
                io.count_bytes_required = 1000;
                out.action_type = ActionType::NONE;
            }
        }),
    );
    seen
}

/// The client's data blocked and re-injected out of band (the holder keeps it), its FIN blocked;
/// then the capture closes the connection: the server acknowledges the data and the FIN (1005,
/// moved back to 1001: nothing after the handshake went on), sends its own FIN, and the client
/// acknowledges that. Returns the editor's flow and
/// callout, the injection handle and what the holder below the editor saw.
fn close_with_fin_withheld(h: &mut H) -> ((u64, CalloutId), InjectionHandle, Below) {
    let (callout, seen) = oob_editor(h);
    let below = holder(h);
    let handle = h
        .engine
        .create_injection_handle(AddressFamily::Unspecified, InjectionTypes::STREAM)
        .unwrap();
    handshake(h, &V4);
    assert_eq!(send(h, &V4, 1001, b"abc").verdict, Verdict::Block);
    let flow = seen.lock().unwrap().flow;
    inject(h, handle, (flow, callout), b"abc", StreamFlags::SEND);
    assert!(outputs(h).is_empty(), "the holder keeps the bytes");
    let fin = testutil::tcp_packet(&V4, &tcp(FINACK, 1004, 5001), b"");
    let v = h.packet(PacketDirection::Outbound, &fin);
    assert!(!fields(&v.edited.expect("FIN removed").bytes).2);
    assert_eq!(fields(&server_ack(h, 1005)).1, 1001);
    let back = Tcp {
        sport: TCP.dport,
        dport: TCP.sport,
        ..tcp(FINACK, 5001, 1005)
    };
    let server_fin = testutil::tcp_packet(&V4.reply(), &back, b"");
    let v = h.packet(PacketDirection::Inbound, &server_fin);
    assert_eq!(v.verdict, Verdict::Permit);
    assert_eq!(
        fields(&v.edited.expect("ack moved").bytes),
        (5001, 1001, true, Vec::new())
    );
    // The client's last ACK follows its FIN in the capture (1005); on the wire it is where the
    // client's output stream ends (1001).
    let last = testutil::tcp_packet(&V4, &tcp(ACK, 1005, 5002), b"");
    let v = h.packet(PacketDirection::Outbound, &last);
    assert_eq!(v.verdict, Verdict::Permit);
    assert_eq!(
        fields(&v.edited.expect("moved back").bytes),
        (1001, 5002, false, Vec::new())
    );
    ((flow, callout), handle, below)
}

/// Issue 13 (stream end model): the connection does not close while a stream callout withholds
/// a side's FIN — the peer never got it — and closes (EndReason::Fin, flowDeleteFn) when the
/// injection carrying the disconnect puts the FIN on the wire.
#[test]
fn a_withheld_fin_keeps_the_flow_open_until_the_injected_disconnect() {
    let mut h = H::new();
    let (editor, handle, below) = close_with_fin_withheld(&mut h);
    assert!(
        h.events().is_empty(),
        "the capture's FINs do not end the flow"
    );
    assert_eq!(h.shim.flow_count(), 1);
    // The client's stream has not ended for the holder (the server's has).
    let client =
        |(flags, no_more): &(StreamFlags, bool)| flags.contains(StreamFlags::SEND) && *no_more;
    assert!(!below.lock().unwrap().iter().any(client));
    inject(
        &h,
        handle,
        editor,
        b"",
        StreamFlags::SEND | StreamFlags::SEND_DISCONNECT,
    );
    let out = outputs(&mut h);
    assert_eq!(out.len(), 1);
    // The holder lets the bytes go with the disconnect: one segment, data and FIN, acknowledging
    // what the client last acknowledged (the server's FIN: 5002).
    assert_eq!(fields(&out[0]), (1001, 5002, true, b"abc".to_vec()));
    let last = *below.lock().unwrap().last().unwrap();
    assert!(last.0.contains(StreamFlags::SEND_DISCONNECT) && last.1);
    let ended: Vec<_> = h
        .events()
        .into_iter()
        .map(|ShimEvent::FlowEnded { reason, .. }| reason)
        .collect();
    assert_eq!(ended, vec![EndReason::Fin]);
}

/// Issue 13 (stream end model): a FIN withheld for good leaves the connection open until the
/// capture ends or the flow expires; the callouts below the editor never get the disconnect —
/// their last indication carries ABORT (with NO_MORE_DATA), not DISCONNECT.
#[test]
fn a_fin_withheld_for_good_ends_the_stream_below_with_abort_at_flow_end() {
    for expire in [false, true] {
        let mut h = H::new();
        let (_, _, below) = close_with_fin_withheld(&mut h);
        assert!(h.events().is_empty());
        let want = if expire {
            h.shim
                .handle_timeout(h.now + std::time::Duration::from_secs(3600));
            EndReason::IdleTimeout
        } else {
            h.shim.abort_all();
            EndReason::Aborted
        };
        let ended: Vec<_> = h
            .events()
            .into_iter()
            .map(|ShimEvent::FlowEnded { reason, .. }| reason)
            .collect();
        assert_eq!(ended, vec![want]);
        let last = *below.lock().unwrap().last().unwrap();
        assert!(
            last.0.contains(StreamFlags::SEND_ABORT),
            "{expire}: {last:?}"
        );
        assert!(!last.0.contains(StreamFlags::SEND_DISCONNECT), "{expire}");
        assert!(last.1, "{expire}: NO_MORE_DATA");
    }
}

/// §9.1: the last indication of a reset connection carries ABORT with NO_MORE_DATA, and no
/// DISCONNECT (the RST carries no FIN).
#[test]
fn a_reset_ends_the_held_stream_with_abort_not_disconnect() {
    let mut h = H::new();
    let below = holder(&mut h);
    handshake(&mut h, &V4);
    assert_eq!(send(&mut h, &V4, 1001, b"abc").verdict, Verdict::Permit);
    let rst = testutil::tcp_packet(&V4, &tcp(RST, 1004, 0), b"");
    h.packet(PacketDirection::Outbound, &rst);
    let ended: Vec<_> = h
        .events()
        .into_iter()
        .map(|ShimEvent::FlowEnded { reason, .. }| reason)
        .collect();
    assert_eq!(ended, vec![EndReason::Rst]);
    let last = *below.lock().unwrap().last().unwrap();
    assert!(
        last.0.contains(StreamFlags::SEND_ABORT) && last.1,
        "{last:?}"
    );
    assert!(!last.0.contains(StreamFlags::SEND_DISCONNECT), "{last:?}");
}
