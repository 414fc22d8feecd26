//! `wfp.dns-blocker` driven through a real engine at DATAGRAM_DATA_V4/V6, on hand-built DNS
//! messages (the UDP payload).

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{datagram_v4, install, meta, values};
use proptest::prelude::*;
use wfp_callouts::dns::{self, OnMalformed};
use wfp_callouts::DnsBlocker;
use wfp_core::callout::LayerData;
use wfp_core::catalogue::layers;
use wfp_core::classify::StepOutcome;
use wfp_core::constants::{Direction, FilterFlags};
use wfp_core::{
    ActionType, CalloutFlags, Engine, FilterSpec, Guid, Hardness, SublayerSpec, Trace, Value,
    WeightSpec,
};

/// A DNS query: header (ID 0xBEEF, RD), then one question per name (type A, class IN).
fn query(names: &[&str]) -> Vec<u8> {
    let mut m = vec![
        0xBE,
        0xEF,
        0x01,
        0x00,
        0x00,
        names.len() as u8,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    for n in names {
        for label in n.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.extend_from_slice(&[0, 0x00, 0x01, 0x00, 0x01]);
    }
    m
}

/// A real-looking capture of `dig ads.blocked.example AAAA +edns`: header, question, and an OPT
/// record in the additional section (which the parser does not need to read).
const DIG_QUERY: &[u8] = &[
    0x5c, 0x1a, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // header
    0x03, b'a', b'd', b's', 0x07, b'b', b'l', b'o', b'c', b'k', b'e', b'd', 0x07, b'e', b'x', b'a',
    b'm', b'p', b'l', b'e', 0x00, 0x00, 0x1c, 0x00, 0x01, // QNAME, AAAA, IN
    0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // OPT
];

fn setup(blocker: DnsBlocker, action: ActionType) -> (Engine, Arc<DnsBlocker>) {
    let engine = Engine::default();
    let blocker = Arc::new(blocker);
    for layer in [layers::DATAGRAM_DATA_V4, layers::DATAGRAM_DATA_V6] {
        install(
            &engine,
            "dns",
            layer,
            blocker.clone(),
            CalloutFlags::default(),
            false,
            action,
        );
    }
    (engine, blocker)
}

fn classify_v4(engine: &Engine, payload: &[u8]) -> (ActionType, Hardness) {
    let r = engine.classify(
        layers::DATAGRAM_DATA_V4,
        &datagram_v4(53000, 53, Direction::Outbound),
        &meta(5),
        &mut LayerData::Packet(payload),
        None,
    );
    (r.action, r.hardness)
}

fn default_blocker() -> DnsBlocker {
    DnsBlocker::new(["*.blocked.example", "Tracker.Example"]).unwrap()
}

#[test]
fn blocks_listed_names_and_leaves_the_rest() {
    let (engine, blocker) = setup(default_blocker(), ActionType::CALLOUT_UNKNOWN);
    assert_eq!(
        classify_v4(&engine, &query(&["ads.blocked.example"])),
        (ActionType::BLOCK, Hardness::Hard)
    );
    assert_eq!(classify_v4(&engine, DIG_QUERY).0, ActionType::BLOCK);
    assert_eq!(
        classify_v4(&engine, &query(&["TRACKER.example."])).0,
        ActionType::BLOCK
    );
    for other in [
        "example.org",
        "blocked.example",
        "tracker.example.org",
        "xblocked.example",
    ] {
        assert_eq!(
            classify_v4(&engine, &query(&[other])).0,
            ActionType::NONE_NO_MATCH,
            "{other}"
        );
    }
    assert_eq!(blocker.stats().matched.load(Ordering::Relaxed), 3);
    assert_eq!(blocker.stats().malformed.load(Ordering::Relaxed), 0);
}

#[test]
fn any_listed_question_blocks_and_compressed_names_are_followed() {
    let (engine, _) = setup(default_blocker(), ActionType::CALLOUT_UNKNOWN);
    // Two questions: "blocked.example", then "www" + pointer to it (offset 12).
    let mut m = query(&["blocked.example"]);
    m[5] = 2;
    m.extend_from_slice(&[3, b'w', b'w', b'w', 0xC0, 12, 0x00, 0x01, 0x00, 0x01]);
    assert_eq!(classify_v4(&engine, &m).0, ActionType::BLOCK);
}

#[test]
fn responses_are_not_blocked() {
    let (engine, _) = setup(default_blocker(), ActionType::CALLOUT_UNKNOWN);
    let mut m = query(&["ads.blocked.example"]);
    m[2] |= 0x80;
    assert_eq!(classify_v4(&engine, &m).0, ActionType::NONE_NO_MATCH);
}

#[test]
fn malformed_messages_are_counted_and_never_panic() {
    let (engine, blocker) = setup(default_blocker(), ActionType::CALLOUT_UNKNOWN);
    let mut self_loop = query(&[]);
    self_loop[5] = 1;
    self_loop.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    let mut two_hop_loop = query(&[]);
    two_hop_loop[5] = 1;
    // offset 12: "a" + pointer to 17; offset 17: pointer to 12.
    two_hop_loop.extend_from_slice(&[1, b'a', 0xC0, 17, 0, 0xC0, 12]);
    let truncated = &query(&["ads.blocked.example"])[..20];
    let mut long_label = query(&[]);
    long_label[5] = 1;
    long_label.push(64);
    long_label.extend_from_slice(&[b'a'; 64]);
    long_label.extend_from_slice(&[0, 0, 1, 0, 1]);
    let cases: [&[u8]; 6] = [
        &[],
        &[0; 5],
        &self_loop,
        &two_hop_loop,
        truncated,
        &long_label,
    ];
    for m in cases {
        assert_eq!(
            classify_v4(&engine, m).0,
            ActionType::NONE_NO_MATCH,
            "{m:?}"
        );
    }
    assert_eq!(blocker.stats().malformed.load(Ordering::Relaxed), 6);
    assert!(matches!(
        dns::parse(&two_hop_loop),
        Err(dns::DnsError::ForwardPointer { .. })
    ));

    let (strict, _) = setup(
        default_blocker().on_malformed(OnMalformed::Block),
        ActionType::CALLOUT_UNKNOWN,
    );
    assert_eq!(classify_v4(&strict, truncated).0, ActionType::BLOCK);
}

#[test]
fn terminating_filter_permits_what_it_does_not_block() {
    let (engine, _) = setup(default_blocker(), ActionType::CALLOUT_TERMINATING);
    assert_eq!(
        classify_v4(&engine, &query(&["example.org"])),
        (ActionType::PERMIT, Hardness::Soft)
    );
    assert_eq!(
        classify_v4(&engine, &query(&["a.blocked.example"])).0,
        ActionType::BLOCK
    );
}

#[test]
fn without_the_write_right_it_leaves_the_decision_alone() {
    let engine = Engine::default();
    let high = engine
        .add_sublayer(SublayerSpec {
            key: Guid::from_name("t", "high"),
            name: "high".into(),
            weight: 0xF000,
            ..SublayerSpec::default()
        })
        .unwrap();
    let mut permit = FilterSpec::new("hard permit", layers::DATAGRAM_DATA_V4, ActionType::PERMIT);
    permit.sublayer = high;
    permit.flags = FilterFlags::CLEAR_ACTION_RIGHT;
    permit.weight = WeightSpec::Exact(1);
    engine.add_filter(permit).unwrap();
    install(
        &engine,
        "dns",
        layers::DATAGRAM_DATA_V4,
        Arc::new(default_blocker()),
        CalloutFlags::default(),
        false,
        ActionType::CALLOUT_UNKNOWN,
    );
    let mut trace = Trace::default();
    let q = query(&["ads.blocked.example"]);
    let r = engine.classify(
        layers::DATAGRAM_DATA_V4,
        &datagram_v4(53000, 53, Direction::Outbound),
        &meta(5),
        &mut LayerData::Packet(&q),
        Some(&mut trace),
    );
    assert_eq!((r.action, r.vetoed), (ActionType::PERMIT, false));
    assert_eq!(
        trace.steps[1].outcome,
        StepOutcome::NoRight {
            action: ActionType::PERMIT
        }
    );
}

#[test]
fn no_packet_data_means_no_opinion() {
    let (engine, blocker) = setup(default_blocker(), ActionType::CALLOUT_UNKNOWN);
    let r = engine.classify(
        layers::DATAGRAM_DATA_V4,
        &datagram_v4(53000, 53, Direction::Outbound),
        &meta(5),
        &mut LayerData::None,
        None,
    );
    assert_eq!(r.action, ActionType::NONE_NO_MATCH);
    assert_eq!(blocker.stats().no_data.load(Ordering::Relaxed), 1);
}

#[test]
fn ipv6_layer_and_the_builtin_default() {
    let engine = Engine::default();
    let b = wfp_callouts::builtin("wfp.dns-blocker").unwrap();
    install(
        &engine,
        "dns",
        layers::DATAGRAM_DATA_V6,
        (b.make)(&wfp_callouts::Host::new()),
        b.flags,
        b.flow_delete,
        ActionType::CALLOUT_UNKNOWN,
    );
    let v = values(
        layers::DATAGRAM_DATA_V6,
        &[
            ("IP_PROTOCOL", Value::Uint8(17)),
            ("IP_REMOTE_PORT", Value::Uint16(53)),
        ],
    );
    let q = query(&["cdn.blocked.example"]);
    let r = engine.classify(
        layers::DATAGRAM_DATA_V6,
        &v,
        &meta(1),
        &mut LayerData::Packet(&q),
        None,
    );
    assert_eq!(r.action, ActionType::BLOCK);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = dns::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_mutated_queries(
        edits in proptest::collection::vec((0usize..64, any::<u8>()), 1..6),
        cut in 0usize..64,
    ) {
        let mut m = query(&["a.b.blocked.example", "x.example"]);
        m[5] = 2;
        for (i, b) in edits {
            if let Some(x) = m.get_mut(i) {
                *x = b;
            }
        }
        m.truncate(m.len().saturating_sub(cut));
        let _ = dns::parse(&m);
        let blocker = default_blocker();
        if let Ok(msg) = dns::parse(&m) {
            let _ = blocker.is_blocked_query(&msg);
        }
    }
}
