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
use wfp_core::{ActionType, CalloutId, Status};

use super::asyncs::full;
use super::pipeline::{handshake, send, tcp, ACK, FINACK, H};
use crate::pipeline::{OutputOrigin, PacketDirection, Verdict};
use crate::testutil::{self, Tcp, TCP, V4};
use crate::wire;

/// What the out-of-band editor saw: the flow of its indications and, per indication, the
/// stream flags and whether NO_MORE_DATA was set.
#[derive(Default)]
struct Seen {
    flow: u64,
    indications: Vec<(StreamFlags, bool)>,
}

/// Registers the out-of-band editor: it blocks every indication (FIN included).
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
            out.action_type = ActionType::BLOCK;
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
    // A retransmission of the FIN does not put it on the wire either.
    let again = h.packet(PacketDirection::Outbound, &fin);
    assert_eq!(again.verdict, Verdict::Permit);
    let again = again.edited.expect("FIN removed again").bytes;
    assert!(!fields(&again).2);
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
