//! `wfp.stream-editor` through the real packet pipeline (§9.2): a pattern replaced by bytes of
//! another length, inline (the segment rewritten) and out-of-band (the segment blocked, the
//! edited clone injected by the host's worker), and the connection's later sequence and
//! acknowledgement numbers moved by the length difference.

mod common;
mod net;

use net::{tcp, tcp_fields, Net, CLIENT, PSH_ACK, SERVER};
use wfp_core::catalogue::layers;
use wfp_core::ActionType;
use wfp_shim::{OutputOrigin, Reason, Verdict};

fn editor(mode: &str, port: &str) -> Net {
    let mut n = Net::new();
    n.install(
        "wfp.stream-editor",
        layers::STREAM_V4,
        ActionType::CALLOUT_TERMINATING,
        &[
            ("pattern", "foo"),
            ("replacement", "quux!"),
            ("port", port),
            ("mode", mode),
        ],
    );
    n.handshake();
    n
}

#[test]
fn inline_replacement_of_another_length_rewrites_the_segment_and_moves_the_stream() {
    let mut n = editor("inline", "80");
    let v = n.send(&tcp(CLIENT, SERVER, 1001, 5001, PSH_ACK, b"a foo b foo"));
    assert_eq!(v.verdict, Verdict::Permit);
    let e = v.edited.expect("rewritten");
    assert!(wfp_shim::wire::parse(&e.bytes).is_ok(), "valid checksums");
    assert_eq!(
        tcp_fields(&e.bytes).map(|f| (f.0, f.1, f.3)),
        Some((1001, 5001, b"a quux! b quux!".to_vec()))
    );
    // 4 bytes longer: the next segment moves forward, the server's ACK moves back.
    let next = n.send(&tcp(CLIENT, SERVER, 1012, 5001, PSH_ACK, b"zz"));
    let next = next.edited.expect("renumbered");
    assert_eq!(
        tcp_fields(&next.bytes).map(|f| (f.0, f.3)),
        Some((1016, b"zz".to_vec()))
    );
    // The capture's reply acknowledges the 13 captured bytes (1014); the output renumbers it
    // into the edited stream (the shim's output numbering, consistent for a reader of the
    // output capture), and its own "foo" is edited too.
    let ack = n.recv(&tcp(SERVER, CLIENT, 5001, 1014, PSH_ACK, b"ok foo"));
    let ack = ack
        .edited
        .expect("acknowledgement translated and reply edited");
    assert_eq!(
        tcp_fields(&ack.bytes).map(|f| (f.1, f.3)),
        Some((1018, b"ok quux!".to_vec()))
    );
    assert_eq!(n.engine.ledger_counts(), Default::default());
}

#[test]
fn other_ports_are_not_edited() {
    let mut n = editor("inline", "8080");
    let v = n.send(&tcp(CLIENT, SERVER, 1001, 5001, PSH_ACK, b"foo"));
    assert_eq!(v.verdict, Verdict::Permit);
    assert!(v.edited.is_none());
}

#[test]
fn out_of_band_blocks_the_segment_and_the_worker_injects_the_edited_clone() {
    let mut n = editor("out-of-band", "80");
    let original = tcp(CLIENT, SERVER, 1001, 5001, PSH_ACK, b"x foo y");
    let v = n.send(&original);
    assert_eq!(
        (v.verdict, v.reason),
        (Verdict::Block, Reason::StreamBlocked)
    );
    let out = n.work();
    assert_eq!(out.len(), 1, "{out:?}");
    let o = &out[0];
    assert!(matches!(o.origin, OutputOrigin::Injected { .. }));
    assert_eq!(o.verdict.verdict, Verdict::Permit);
    assert!(wfp_shim::wire::parse(&o.bytes).is_ok(), "valid checksums");
    assert_eq!(
        tcp_fields(&o.bytes).map(|f| (f.0, f.1, f.3)),
        Some((1001, 5001, b"x quux! y".to_vec()))
    );
    // The next segment is blocked and re-sent behind the first edit.
    n.send(&tcp(CLIENT, SERVER, 1008, 5001, PSH_ACK, b"foo"));
    let out = n.work();
    assert_eq!(
        out.first()
            .and_then(|o| tcp_fields(&o.bytes))
            .map(|f| (f.0, f.3)),
        Some((1010, b"quux!".to_vec()))
    );
    let st = n.host.worker.stats();
    assert_eq!((st.edits, st.edits_failed), (2, 0));
    assert_eq!(n.engine.ledger_counts(), Default::default());
}
