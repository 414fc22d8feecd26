//! `wfp.tls-sni-blocker` driven through a real engine at STREAM_V4 on a hand-built ClientHello.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{install, StreamSim};
use proptest::prelude::*;
use wfp_callouts::tls::{self, Hello};
use wfp_callouts::SniBlocker;
use wfp_core::catalogue::layers;
use wfp_core::constants::StreamFlags;
use wfp_core::{ActionType, CalloutFlags, Engine, StreamAction};

/// The handshake message of a minimal TLS 1.3 ClientHello: server_name (when given),
/// supported_versions, supported_groups, key_share (x25519) and signature_algorithms.
fn hello_message(sni: Option<&str>) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x11; 32]); // random
    body.push(32);
    body.extend_from_slice(&[0x22; 32]); // legacy_session_id
    body.extend_from_slice(&[0x00, 0x06, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03]); // cipher_suites
    body.extend_from_slice(&[0x01, 0x00]); // legacy_compression_methods: null
    let mut exts = Vec::new();
    if let Some(name) = sni {
        let n = name.as_bytes();
        let mut list = vec![0x00]; // host_name
        list.extend_from_slice(&(n.len() as u16).to_be_bytes());
        list.extend_from_slice(n);
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend(list);
        exts.extend_from_slice(&[0x00, 0x00]);
        exts.extend_from_slice(&(data.len() as u16).to_be_bytes());
        exts.extend(data);
    }
    exts.extend_from_slice(&[0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]); // supported_versions
    exts.extend_from_slice(&[0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d]); // supported_groups
    exts.extend_from_slice(&[0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20]);
    exts.extend_from_slice(&[0x33; 32]); // key_share
    exts.extend_from_slice(&[0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]); // signature_algorithms
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    hs
}

/// The handshake message in TLS records of at most `fragment` bytes each.
fn records(hs: &[u8], fragment: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in hs.chunks(fragment) {
        out.extend_from_slice(&[0x16, 0x03, 0x01]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

fn client_hello(sni: Option<&str>) -> Vec<u8> {
    records(&hello_message(sni), 16384)
}

fn setup(action: ActionType) -> (Engine, Arc<SniBlocker>) {
    let engine = Engine::default();
    let blocker = Arc::new(SniBlocker::new(["blocked.example", "*.ads.example"]).unwrap());
    install(
        &engine,
        "sni",
        layers::STREAM_V4,
        blocker.clone(),
        CalloutFlags::default(),
        true,
        action,
    );
    (engine, blocker)
}

#[test]
fn parser_reads_the_server_name() {
    let ch = client_hello(Some("Blocked.Example"));
    let Ok(Hello::Complete(h)) = tls::parse_client_hello(&ch) else {
        panic!("not parsed")
    };
    assert_eq!(
        h.server_name.as_deref(),
        Some(b"Blocked.Example".as_slice())
    );
    assert_eq!(h.legacy_version, 0x0303);
    assert_eq!(h.stream_len, ch.len());
    let Ok(Hello::Complete(h)) = tls::parse_client_hello(&client_hello(None)) else {
        panic!("not parsed")
    };
    assert_eq!(h.server_name, None);
}

#[test]
fn every_prefix_asks_for_a_bounded_total() {
    let ch = records(&hello_message(Some("www.example.com")), 100);
    for n in 0..ch.len() {
        match tls::parse_client_hello(&ch[..n]) {
            Ok(Hello::Incomplete { needed }) => assert!(needed > n && needed <= ch.len(), "{n}"),
            other => panic!("prefix {n}: {other:?}"),
        }
    }
    assert!(matches!(
        tls::parse_client_hello(&ch),
        Ok(Hello::Complete(_))
    ));
}

#[test]
fn listed_name_drops_the_connection() {
    let (engine, blocker) = setup(ActionType::CALLOUT_UNKNOWN);
    let mut s = StreamSim::new(&engine, 1);
    s.send(&client_hello(Some("blocked.example")));
    assert!(s.dropped);
    assert_eq!(s.actions, [StreamAction::DropConnection]);
    let mut s = StreamSim::new(&engine, 2);
    s.send(&client_hello(Some("x.ads.example")));
    assert!(s.dropped);
    assert_eq!(blocker.stats().matched.load(Ordering::Relaxed), 2);
}

#[test]
fn other_names_and_non_tls_streams_are_allowed_for_good() {
    let (engine, _) = setup(ActionType::CALLOUT_UNKNOWN);
    for first in [
        client_hello(Some("example.org")),
        client_hello(None),
        b"GET / HTTP/1.1\r\nHost: blocked.example\r\n\r\n".to_vec(),
    ] {
        let mut s = StreamSim::new(&engine, 3);
        s.send(&first);
        assert!(s.allowed && !s.dropped);
        assert_eq!(s.actions, [StreamAction::AllowConnection]);
        // ALLOW_CONNECTION: the rest of the flow is not classified again.
        s.receive(b"later data");
        s.send(&client_hello(Some("blocked.example")));
        assert_eq!(s.classifies, 1);
    }
}

#[test]
fn hello_split_across_segments_is_reassembled() {
    let (engine, blocker) = setup(ActionType::CALLOUT_UNKNOWN);
    for seg in [1usize, 2, 3, 7, 64, 100] {
        let ch = client_hello(Some("blocked.example"));
        let mut s = StreamSim::new(&engine, 10 + seg as u64);
        for chunk in ch.chunks(seg) {
            assert!(!s.dropped);
            s.send(chunk);
        }
        assert!(s.dropped, "segment size {seg}");
        assert!(
            s.outbound.delivered.is_empty(),
            "nothing reached the server"
        );
        // Header, then the whole record: countBytesRequired totals keep the classifies few.
        assert!(s.classifies <= 3, "{seg}: {} classifies", s.classifies);
    }
    assert!(blocker.stats().need_more.load(Ordering::Relaxed) > 0);
}

#[test]
fn hello_fragmented_over_several_records_is_reassembled() {
    let (engine, _) = setup(ActionType::CALLOUT_UNKNOWN);
    let ch = records(&hello_message(Some("blocked.example")), 40);
    let mut s = StreamSim::new(&engine, 4);
    for chunk in ch.chunks(13) {
        s.send(chunk);
    }
    assert!(s.dropped);
}

#[test]
fn stream_ending_before_the_hello_completes_fails_open() {
    let (engine, blocker) = setup(ActionType::CALLOUT_UNKNOWN);
    let ch = client_hello(Some("blocked.example"));
    let mut s = StreamSim::new(&engine, 5);
    s.send(&ch[..50]);
    assert_eq!(s.actions, [StreamAction::NeedMoreData]);
    s.send_fin();
    assert!(s.allowed && !s.dropped);
    assert_eq!(s.outbound.delivered, &ch[..50]);
    assert_eq!(blocker.stats().malformed.load(Ordering::Relaxed), 1);
}

#[test]
fn terminating_filter_blocks_the_hello_and_the_rest_of_the_flow() {
    let (engine, _) = setup(ActionType::CALLOUT_TERMINATING);
    let mut s = StreamSim::new(&engine, 6);
    let ch = client_hello(Some("blocked.example"));
    s.send(&ch);
    assert!(!s.dropped);
    assert_eq!(s.outbound.blocked, ch.len());
    s.segment(StreamFlags::RECEIVE, b"server bytes");
    assert_eq!(s.inbound.blocked, 12);
    assert_eq!(engine.flow_abort(6), 1);
}

#[test]
fn builtin_default_blocks_blocked_example() {
    let engine = Engine::default();
    let b = wfp_callouts::builtin("wfp.tls-sni-blocker").unwrap();
    install(
        &engine,
        "sni",
        layers::STREAM_V4,
        (b.make)(&wfp_callouts::Host::new()),
        b.flags,
        b.flow_delete,
        ActionType::CALLOUT_UNKNOWN,
    );
    let mut s = StreamSim::new(&engine, 1);
    s.send(&client_hello(Some("blocked.example")));
    assert!(s.dropped);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = tls::parse_client_hello(&bytes);
    }

    #[test]
    fn parser_never_panics_on_random_bytes_behind_a_handshake_header(
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut m = vec![0x16, 0x03, 0x01];
        m.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        m.push(0x01);
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(&body);
        let _ = tls::parse_client_hello(&m);
    }

    #[test]
    fn parser_never_panics_on_mutated_hellos(
        edits in proptest::collection::vec((0usize..220, any::<u8>()), 1..6),
        fragment in 1usize..300,
    ) {
        let mut hs = hello_message(Some("blocked.example"));
        for (i, b) in edits {
            if let Some(x) = hs.get_mut(i) {
                *x = b;
            }
        }
        let _ = tls::parse_client_hello(&records(&hs, fragment));
    }
}
