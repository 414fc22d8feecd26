//! §14.7 Stream layer through the data path's stream waterfall (`wfp_shim::stream`, brief
//! decision 8): T-ST-1, T-ST-3 … T-ST-6, T-ST-8 … T-ST-10 — what the engine's stream verdicts do to
//! the bytes of one direction of a connection (T-ST-2 and T-ST-7 at the engine are in
//! `s14_7_stream`; through packets in `wfp-shim`).

use std::sync::{Arc, Mutex};

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::constants::{StreamAction, StreamFlags};
use wfp_core::{Callout, RtFilter};
use wfp_shim::stream::{StreamCall, StreamDirection, StreamOutcome, STREAM_BUFFER_LIMIT};
use wfp_testkit::prelude::*;
use wfp_testkit::CalloutImpl;

const STREAM: LayerId = layers::STREAM_V4;

/// One indication as the callout saw it.
#[derive(Clone, Debug)]
struct Seen {
    data: Vec<u8>,
    out_flags: ClassifyOutFlags,
    stream_flags: StreamFlags,
    missed: u64,
}

type Answer = dyn Fn(usize, &Seen, &mut ClassifyOut, &mut LayerData<'_>) + Send + Sync;

/// A stream callout: `answer(n, seen, out, io)` decides its `n`th indication; every indication
/// is recorded.
struct Streamer {
    seen: Mutex<Vec<Seen>>,
    answer: Box<Answer>,
}

impl Callout for Streamer {
    fn classify(
        &self,
        _: &ClassifyContext<'_>,
        _: &IncomingValues<'_>,
        _: &Metadata,
        ld: &mut LayerData<'_>,
        _: &RtFilter,
        _: u64,
        out: &mut ClassifyOut,
    ) {
        let LayerData::Stream(io) = ld else { return };
        let s = Seen {
            data: io.stream_data.data.to_vec(),
            out_flags: out.flags,
            stream_flags: io.stream_data.flags,
            missed: io.missed_bytes,
        };
        let n = self.seen.lock().unwrap().len();
        (self.answer)(n, &s, out, ld);
        self.seen.lock().unwrap().push(s);
    }
}

impl Streamer {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Answers `(streamAction, actionType, countBytesEnforced, countBytesRequired)` per indication,
/// the last one repeated.
fn scripted(answers: Vec<(StreamAction, ActionType, u64, u32)>) -> Arc<Streamer> {
    custom(move |n, _, out, ld| {
        let LayerData::Stream(io) = ld else { return };
        let Some(&(sa, at, enforced, required)) = answers.get(n).or(answers.last()) else {
            return;
        };
        io.stream_action = sa;
        out.action_type = at;
        io.count_bytes_enforced = enforced;
        io.count_bytes_required = required;
    })
}

fn custom(
    f: impl Fn(usize, &Seen, &mut ClassifyOut, &mut LayerData<'_>) + Send + Sync + 'static,
) -> Arc<Streamer> {
    Arc::new(Streamer {
        seen: Mutex::default(),
        answer: Box::new(f),
    })
}

/// A stream filter at `weight` in `sublayer` calling `s`, with filter action `action`.
fn install(h: &Harness, sl: Guid, weight: u64, action: ActionType, s: &Arc<Streamer>) -> CalloutId {
    let imp = CalloutImpl::Custom {
        callout: s.clone(),
        flags: CalloutFlags::default(),
        flow_delete: true,
    };
    h.callout_filter(STREAM, sl, weight, action, imp).1
}

/// Pushes `data` (outbound, `fin` = end of the direction) through the stream filters.
fn push(
    h: &Harness,
    s: &mut StreamDirection,
    flags: StreamFlags,
    data: &[u8],
    fin: bool,
) -> StreamOutcome {
    let values = wfp_testkit::values(STREAM, &[]);
    let meta = wfp_testkit::flow_meta(7);
    let call = StreamCall {
        engine: h.engine(),
        layer: STREAM,
        values: &values,
        meta: &meta,
        flags,
        splice: None,
    };
    s.push(&call, data, fin)
}

fn send(h: &Harness, s: &mut StreamDirection, data: &[u8]) -> StreamOutcome {
    push(h, s, StreamFlags::SEND, data, false)
}

/// One terminating stream callout answering `answers`.
fn one(answers: Vec<(StreamAction, ActionType, u64, u32)>) -> (Harness, Arc<Streamer>) {
    let h = Harness::new();
    let sl = h.sublayer("stream", 1);
    let s = scripted(answers);
    install(&h, sl, 1, ActionType::CALLOUT_TERMINATING, &s);
    (h, s)
}

/// §14.7 T-ST-1 (§9.2): PERMIT with countBytesEnforced = n of n+p+m re-indicates the p+m bytes.
#[test]
fn t_st_1_partial_enforcement_reindicates_the_remainder() {
    let (h, s) = one(vec![
        (StreamAction::None, ActionType::PERMIT, 3, 0),
        (StreamAction::None, ActionType::PERMIT, 7, 0),
    ]);
    let mut d = StreamDirection::default();
    let out = send(&h, &mut d, b"nnnppppmmm");
    let seen = s.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].data, b"nnnppppmmm");
    assert_eq!(seen[1].data, b"ppppmmm");
    assert_eq!(out.delivered, b"nnnppppmmm");
}

/// §14.7 T-ST-3 (§9.2, brief decision 8): NEED_MORE_DATA with countBytesRequired = 100 after 40
/// bytes: no re-indication until 100 bytes in total have accumulated.
#[test]
fn t_st_3_need_more_data_counts_total_bytes() {
    let (h, s) = one(vec![
        (StreamAction::NeedMoreData, ActionType::NONE, 0, 100),
        (StreamAction::None, ActionType::PERMIT, 100, 0),
    ]);
    let mut d = StreamDirection::default();
    let out = send(&h, &mut d, &[1; 40]);
    assert_eq!((out.held, out.delivered.len()), (40, 0));
    send(&h, &mut d, &[2; 59]);
    assert_eq!(s.seen().len(), 1, "99 < 100 accumulated: no re-indication");
    let out = send(&h, &mut d, &[3; 1]);
    assert_eq!(s.seen().len(), 2);
    assert_eq!(s.seen()[1].data.len(), 100, "re-indicated with the total");
    assert_eq!(out.delivered.len(), 100);
}

/// §14.7 T-ST-4 (§9.2): repeated NEED_MORE_DATA until 8 MiB are buffered: the next indication
/// carries BUFFER_LIMIT_REACHED and the callout must decide all of it.
#[test]
fn t_st_4_buffer_limit_forces_a_decision() {
    let h = Harness::new();
    let sl = h.sublayer("stream", 1);
    let s = custom(|_, seen, out, ld| {
        let LayerData::Stream(io) = ld else { return };
        if seen
            .out_flags
            .contains(ClassifyOutFlags::BUFFER_LIMIT_REACHED)
        {
            out.action_type = ActionType::BLOCK;
            io.count_bytes_enforced = seen.data.len() as u64;
        } else {
            io.stream_action = StreamAction::NeedMoreData;
            io.count_bytes_required = u32::MAX;
            out.action_type = ActionType::NONE;
        }
    });
    install(&h, sl, 1, ActionType::CALLOUT_TERMINATING, &s);
    let mut d = StreamDirection::default();
    let chunk = vec![0u8; 1 << 20];
    let mut last = None;
    for _ in 0..8 {
        last = Some(send(&h, &mut d, &chunk));
    }
    let out = last.unwrap();
    let seen = s.seen();
    let final_call = seen.last().unwrap();
    assert!(final_call
        .out_flags
        .contains(ClassifyOutFlags::BUFFER_LIMIT_REACHED));
    assert_eq!(final_call.data.len(), STREAM_BUFFER_LIMIT);
    assert!(!seen[..seen.len() - 1]
        .iter()
        .any(|c| c.out_flags.contains(ClassifyOutFlags::BUFFER_LIMIT_REACHED)));
    assert_eq!((out.blocked as usize, out.held), (STREAM_BUFFER_LIMIT, 0));
}

/// §14.7 T-ST-5 (§9.2): the FIN arrives while the callout waits for more data: its last
/// indication has NO_MORE_DATA (and the disconnect stream flag).
#[test]
fn t_st_5_fin_while_waiting_sets_no_more_data() {
    let (h, s) = one(vec![
        (StreamAction::NeedMoreData, ActionType::NONE, 0, 100),
        (StreamAction::None, ActionType::PERMIT, 7, 0),
    ]);
    let mut d = StreamDirection::default();
    send(&h, &mut d, b"partial");
    let out = push(&h, &mut d, StreamFlags::SEND, b"", true);
    let seen = s.seen();
    assert_eq!(seen.len(), 2);
    assert!(!seen[0].out_flags.contains(ClassifyOutFlags::NO_MORE_DATA));
    assert!(seen[1].out_flags.contains(ClassifyOutFlags::NO_MORE_DATA));
    assert!(seen[1].stream_flags.contains(StreamFlags::SEND_DISCONNECT));
    assert_eq!(out.delivered, b"partial");
}

/// §14.7 T-ST-6 (§9.2): DROP_CONNECTION drops the connection from a CALLOUT_UNKNOWN filter and
/// not from a CALLOUT_INSPECTION filter.
#[test]
fn t_st_6_drop_connection_only_from_callout_unknown() {
    for (action, dropped) in [
        (ActionType::CALLOUT_UNKNOWN, true),
        (ActionType::CALLOUT_INSPECTION, false),
    ] {
        let h = Harness::new();
        let sl = h.sublayer("stream", 1);
        let s = scripted(vec![(StreamAction::DropConnection, ActionType::NONE, 0, 0)]);
        install(&h, sl, 1, action, &s);
        let mut d = StreamDirection::default();
        let out = send(&h, &mut d, b"data");
        assert_eq!(out.drop_connection, dropped, "{}", action.name());
        assert_eq!(out.delivered.is_empty(), dropped, "{}", action.name());
    }
}

/// §14.7 T-ST-8 (§9.2): ALLOW_CONNECTION: no further indications to that callout for the flow;
/// its later bytes pass.
#[test]
fn t_st_8_allow_connection_stops_further_calls() {
    let (h, s) = one(vec![(
        StreamAction::AllowConnection,
        ActionType::NONE,
        0,
        0,
    )]);
    let mut d = StreamDirection::default();
    assert_eq!(send(&h, &mut d, b"one").delivered, b"one");
    assert_eq!(send(&h, &mut d, b"two").delivered, b"two");
    assert_eq!(s.seen().len(), 1);
}

/// §14.7 T-ST-9 (§9.2 waterfall): callout A (higher sublayer) blocks a segment: B never sees it,
/// and B's next indication reports it in missedBytes.
#[test]
fn t_st_9_waterfall_blocked_bytes_never_reach_lower_callouts() {
    let h = Harness::new();
    let high = h.sublayer("a", 2);
    let low = h.sublayer("b", 1);
    let a = scripted(vec![
        (StreamAction::None, ActionType::BLOCK, 4, 0),
        (StreamAction::None, ActionType::PERMIT, 4, 0),
    ]);
    let b = custom(|_, seen, out, ld| {
        let LayerData::Stream(io) = ld else { return };
        out.action_type = ActionType::PERMIT;
        io.count_bytes_enforced = seen.data.len() as u64;
    });
    install(&h, high, 1, ActionType::CALLOUT_TERMINATING, &a);
    install(&h, low, 1, ActionType::CALLOUT_TERMINATING, &b);
    let mut d = StreamDirection::default();
    let out = send(&h, &mut d, b"BADXgood");
    assert_eq!(out.blocked, 4);
    assert_eq!(out.delivered, b"good");
    let seen = b.seen();
    let all: Vec<u8> = seen.iter().flat_map(|c| c.data.clone()).collect();
    assert_eq!(all, b"good", "B never sees the blocked bytes");
    assert_eq!(
        seen[0].missed, 4,
        "B's indication reports them in missedBytes"
    );
}

/// §14.7 T-ST-10 (§2.5, §9.2): a stream callout that sets nothing under a TERMINATING filter:
/// the documented coercion (TERMINATING → BLOCK) applies to the indicated bytes.
#[test]
fn t_st_10_stream_callout_that_sets_nothing_is_coerced_to_block() {
    let h = Harness::new();
    let sl = h.sublayer("stream", 1);
    let s = custom(|_, _, _, _| {});
    install(&h, sl, 1, ActionType::CALLOUT_TERMINATING, &s);
    let mut d = StreamDirection::default();
    let out = send(&h, &mut d, b"x");
    assert_eq!(out.blocked, 1);
    assert!(out.delivered.is_empty());
    assert_eq!(s.seen().len(), 1);
}
