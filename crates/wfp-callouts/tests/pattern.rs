//! `wfp.stream-pattern-blocker` driven through a real engine at STREAM_V4.

mod common;

use std::sync::Arc;

use common::{install, meta, stream_v4, StreamSim};
use proptest::prelude::*;
use wfp_callouts::StreamPatternBlocker;
use wfp_core::callout::{ClassifyOut, IncomingValues, LayerData, StreamIoPacket};
use wfp_core::catalogue::layers;
use wfp_core::classify::Invocation;
use wfp_core::constants::{ClassifyOutFlags, Rights, StreamFlags};
use wfp_core::{ActionType, CalloutFlags, Engine, StreamAction};

fn setup(action: ActionType, patterns: &[&str]) -> (Engine, Arc<StreamPatternBlocker>) {
    let engine = Engine::default();
    let blocker = Arc::new(StreamPatternBlocker::new(patterns).unwrap());
    install(
        &engine,
        "pattern",
        layers::STREAM_V4,
        blocker.clone(),
        CalloutFlags::default(),
        true,
        action,
    );
    (engine, blocker)
}

#[test]
fn pattern_split_across_two_indications_drops_the_connection() {
    let (engine, blocker) = setup(ActionType::CALLOUT_UNKNOWN, &["X-Block-Me"]);
    let mut s = StreamSim::new(&engine, 7);
    s.send(b"GET / HTTP/1.1\r\nX-Blo");
    assert!(!s.dropped);
    // The clean prefix went through; the possible start of the pattern is held.
    assert_eq!(s.outbound.delivered, b"GET / HTTP/1.1\r\n");
    assert_eq!(
        s.actions,
        [StreamAction::None, StreamAction::NeedMoreData],
        "PERMIT of the clean bytes, then NEED_MORE_DATA for the held ones"
    );
    s.send(b"ck-Me: 1\r\n\r\n");
    assert!(s.dropped);
    assert_eq!(s.actions.last(), Some(&StreamAction::DropConnection));
    assert_eq!(s.outbound.delivered, b"GET / HTTP/1.1\r\n");
    assert_eq!(
        blocker
            .stats()
            .matched
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn pattern_across_many_one_byte_indications_is_found() {
    let (engine, _) = setup(ActionType::CALLOUT_UNKNOWN, &["X-Block-Me"]);
    let mut s = StreamSim::new(&engine, 7);
    for b in b"abcX-X-Block-Me and more" {
        s.send(&[*b]);
    }
    assert!(s.dropped);
    assert_eq!(s.outbound.delivered, b"abcX-");
}

#[test]
fn count_bytes_required_is_the_total_to_accumulate() {
    let (engine, _) = setup(ActionType::CALLOUT_UNKNOWN, &["X-Block-Me"]);
    let mut s = StreamSim::new(&engine, 7);
    s.send(b"X-B");
    assert_eq!(s.actions, [StreamAction::NeedMoreData]);
    // Brief decision 8: the engine waits for 10 bytes in total, so 6 more single bytes are held
    // without any classify.
    for b in b"lock-M" {
        s.send(&[*b]);
    }
    assert_eq!(s.classifies, 1);
    s.send(b"X");
    assert_eq!(
        s.classifies, 3,
        "re-indicated at 10 bytes, then the held 'X' again"
    );
    assert_eq!(s.actions.last(), Some(&StreamAction::NeedMoreData));
    assert!(!s.dropped);
    assert_eq!(s.outbound.delivered, b"X-Block-M");
}

#[test]
fn clean_streams_are_delivered_whole_and_held_bytes_are_released_at_fin() {
    let (engine, _) = setup(ActionType::CALLOUT_UNKNOWN, &["X-Block-Me", "evil"]);
    let mut s = StreamSim::new(&engine, 7);
    s.send(b"nothing to see here, X-Block-M");
    s.receive(b"server says ev");
    s.send_fin();
    assert!(!s.dropped);
    assert_eq!(s.outbound.delivered, b"nothing to see here, X-Block-M");
    assert_eq!(
        s.inbound.delivered, b"server says ",
        "inbound still holds 'ev'"
    );
    s.segment(
        StreamFlags::RECEIVE | StreamFlags::RECEIVE_DISCONNECT,
        b"il",
    );
    assert!(s.dropped, "the inbound direction completes a pattern");
}

#[test]
fn terminating_filter_blocks_the_data_and_the_rest_of_the_flow() {
    let (engine, _) = setup(ActionType::CALLOUT_TERMINATING, &["X-Block-Me"]);
    let mut s = StreamSim::new(&engine, 9);
    s.send(b"hello ");
    s.send(b"X-Block-Me!");
    assert!(!s.dropped, "TERMINATING filters cannot drop the connection");
    assert_eq!(s.outbound.delivered, b"hello ");
    assert_eq!(s.outbound.blocked, 11);
    s.send(b"more");
    s.receive(b"reply");
    assert_eq!(s.outbound.blocked, 15);
    assert_eq!(s.inbound.blocked, 5);
    assert!(s.inbound.delivered.is_empty());
    assert_eq!(engine.flow_context_count(), 1);
    assert_eq!(engine.flow_abort(9), 1);
    assert_eq!(engine.flow_context_count(), 0);
}

#[test]
fn inspection_filter_only_counts() {
    let (engine, blocker) = setup(ActionType::CALLOUT_INSPECTION, &["X-Block-Me"]);
    let mut s = StreamSim::new(&engine, 9);
    s.send(b"a X-Block-Me b");
    assert!(!s.dropped);
    assert_eq!(s.outbound.blocked, 0);
    assert_eq!(
        blocker
            .stats()
            .matched
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn no_more_data_and_buffer_limit_force_a_decision() {
    let (engine, _) = setup(ActionType::CALLOUT_UNKNOWN, &["X-Block-Me"]);
    let filter = engine.matching_filters(layers::STREAM_V4, &stream_v4(1, 2))[0].clone();
    for flag in [
        ClassifyOutFlags::NO_MORE_DATA,
        ClassifyOutFlags::BUFFER_LIMIT_REACHED,
    ] {
        let values = stream_v4(1, 2);
        let mut ld = LayerData::Stream(StreamIoPacket::new(StreamFlags::SEND, b"abc X-Blo"));
        let out = ClassifyOut {
            action_type: ActionType::CONTINUE,
            out_context: 0,
            filter_id: 0,
            rights: Rights::ACTION_WRITE,
            flags: flag,
        };
        let inv = engine.invoke_callout(
            &filter,
            &IncomingValues {
                layer: layers::STREAM_V4,
                values: &values,
            },
            &meta(3),
            &mut ld,
            out,
        );
        let Invocation::Ran { out, .. } = inv else {
            panic!("{inv:?}")
        };
        let LayerData::Stream(io) = ld else {
            unreachable!()
        };
        assert_eq!(out.action_type, ActionType::PERMIT, "{flag:?}");
        assert_eq!(io.stream_action, StreamAction::None);
        assert_eq!(io.count_bytes_enforced, 9);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the segmentation, the connection is dropped exactly when the stream contains the
    /// pattern; what was delivered is a prefix without it; a clean stream is delivered whole.
    #[test]
    fn segmentation_never_hides_a_pattern(
        data in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 0..60),
        cuts in proptest::collection::vec(1usize..8, 0..40),
    ) {
        let pattern = b"abcab";
        let (engine, _) = setup(ActionType::CALLOUT_UNKNOWN, &["abcab"]);
        let mut s = StreamSim::new(&engine, 1);
        let mut rest = &data[..];
        for c in cuts {
            let n = c.min(rest.len());
            s.send(&rest[..n]);
            rest = &rest[n..];
        }
        s.send(rest);
        s.send_fin();
        let has = data.windows(pattern.len()).any(|w| w == pattern);
        prop_assert_eq!(s.dropped, has);
        prop_assert!(data.starts_with(&s.outbound.delivered));
        prop_assert!(!s.outbound.delivered.windows(pattern.len()).any(|w| w == pattern));
        if !has {
            prop_assert_eq!(&s.outbound.delivered, &data);
        }
    }
}
