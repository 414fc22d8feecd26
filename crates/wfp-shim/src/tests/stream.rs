//! §14.7 stream-layer vectors against the waterfall ([`StreamDirection`]) and a real engine.

use std::sync::Arc;

use wfp_core::callout::{LayerData, Metadata};
use wfp_core::catalogue::{self, layers};
use wfp_core::constants::{ClassifyOutFlags, MetadataFields, StreamFlags};
use wfp_core::{ActionType, CalloutFlags, StreamAction, Value};

use super::pipeline::{Rec, H};
use crate::stream::{StreamCall, StreamDirection, STREAM_BUFFER_LIMIT};

const L: wfp_core::LayerId = layers::STREAM_V4;

fn values() -> Vec<Value> {
    vec![Value::Empty; catalogue::layer(L).map_or(0, |l| l.fields.len())]
}

fn meta() -> Metadata {
    Metadata {
        flow_handle: 7,
        present: MetadataFields::FLOW_HANDLE,
        ..Metadata::default()
    }
}

fn call<'a>(
    h: &'a H,
    values: &'a [Value],
    meta: &'a Metadata,
    flags: StreamFlags,
) -> StreamCall<'a> {
    StreamCall {
        engine: &h.engine,
        layer: L,
        values,
        meta,
        flags,
        splice: None,
    }
}

fn push(h: &H, s: &mut StreamDirection, data: &[u8], fin: bool) -> crate::stream::StreamOutcome {
    s.push(&call(h, &values(), &meta(), StreamFlags::SEND), data, fin)
}

/// A callout whose answers are scripted per call: (stream action, action type, enforced, required).
fn scripted(answers: Vec<(StreamAction, ActionType, u64, u32)>) -> Arc<Rec> {
    let answers = std::sync::Mutex::new(answers.into_iter());
    Rec::new(move |_, out, ld, _| {
        let LayerData::Stream(io) = ld else { return };
        let (sa, at, enforced, required) = answers.lock().unwrap().next().unwrap_or((
            StreamAction::None,
            ActionType::PERMIT,
            0,
            0,
        ));
        io.stream_action = sa;
        out.action_type = at;
        io.count_bytes_enforced = enforced;
        io.count_bytes_required = required;
    })
}

#[test]
fn t_st_1_partial_enforcement_reindicates_the_remainder() {
    let mut h = H::new();
    let rec = scripted(vec![
        (StreamAction::None, ActionType::PERMIT, 3, 0),
        (StreamAction::None, ActionType::PERMIT, 7, 0),
    ]);
    h.callout(
        L,
        ActionType::CALLOUT_TERMINATING,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let mut s = StreamDirection::default();
    let out = push(&h, &mut s, b"nnnppppmmm", false);
    let calls = rec.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].data, b"nnnppppmmm");
    assert_eq!(calls[1].data, b"ppppmmm");
    assert_eq!(out.delivered, b"nnnppppmmm");
}

#[test]
fn t_st_3_need_more_data_counts_total_bytes() {
    let mut h = H::new();
    let rec = scripted(vec![(StreamAction::NeedMoreData, ActionType::NONE, 0, 100)]);
    h.callout(
        L,
        ActionType::CALLOUT_TERMINATING,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let mut s = StreamDirection::default();
    let out = push(&h, &mut s, &[1; 40], false);
    assert_eq!((out.held, out.delivered.len()), (40, 0));
    push(&h, &mut s, &[2; 59], false);
    assert_eq!(
        rec.calls().len(),
        1,
        "99 < 100 accumulated: no re-indication"
    );
    let out = push(&h, &mut s, &[3; 1], false);
    assert_eq!(rec.calls().len(), 2);
    assert_eq!(
        rec.calls()[1].data.len(),
        100,
        "re-indicated with the total (brief decision 8)"
    );
    assert_eq!(out.delivered.len(), 100);
}

#[test]
fn t_st_4_buffer_limit_forces_a_decision() {
    let mut h = H::new();
    let rec = Rec::new(|c, out, ld, _| {
        let LayerData::Stream(io) = ld else { return };
        if c.out_flags.contains(ClassifyOutFlags::BUFFER_LIMIT_REACHED) {
            out.action_type = ActionType::BLOCK;
        } else {
            io.stream_action = StreamAction::NeedMoreData;
            io.count_bytes_required = u32::MAX;
            out.action_type = ActionType::NONE;
        }
    });
    h.callout(
        L,
        ActionType::CALLOUT_TERMINATING,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let mut s = StreamDirection::default();
    let chunk = vec![0u8; 1 << 20];
    let mut last = None;
    for _ in 0..8 {
        last = Some(push(&h, &mut s, &chunk, false));
    }
    let out = last.unwrap();
    let calls = rec.calls();
    assert!(calls
        .last()
        .unwrap()
        .out_flags
        .contains(ClassifyOutFlags::BUFFER_LIMIT_REACHED));
    assert_eq!(calls.last().unwrap().data.len(), STREAM_BUFFER_LIMIT);
    assert_eq!(out.blocked as usize, STREAM_BUFFER_LIMIT);
    assert_eq!(out.held, 0);
}

#[test]
fn t_st_5_fin_while_waiting_sets_no_more_data() {
    let mut h = H::new();
    let rec = scripted(vec![
        (StreamAction::NeedMoreData, ActionType::NONE, 0, 100),
        (StreamAction::None, ActionType::PERMIT, 0, 0),
    ]);
    h.callout(
        L,
        ActionType::CALLOUT_TERMINATING,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let mut s = StreamDirection::default();
    push(&h, &mut s, b"partial", false);
    let out = push(&h, &mut s, b"", true);
    let calls = rec.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls[1].out_flags.contains(ClassifyOutFlags::NO_MORE_DATA));
    assert_ne!(calls[1].stream_flags & StreamFlags::SEND_DISCONNECT.0, 0);
    assert_eq!(out.delivered, b"partial");
}

#[test]
fn t_st_6_drop_connection_only_from_callout_unknown() {
    for (action, dropped) in [
        (ActionType::CALLOUT_UNKNOWN, true),
        (ActionType::CALLOUT_INSPECTION, false),
    ] {
        let mut h = H::new();
        let rec = scripted(vec![(StreamAction::DropConnection, ActionType::NONE, 0, 0)]);
        h.callout(L, action, CalloutFlags::default(), &rec, vec![]);
        let mut s = StreamDirection::default();
        let out = push(&h, &mut s, b"data", false);
        assert_eq!(out.drop_connection, dropped, "{}", action.name());
        assert_eq!(out.delivered.is_empty(), dropped);
    }
}

#[test]
fn t_st_7_defer_on_inbound_holds_data_until_continue() {
    let mut h = H::new();
    let rec = scripted(vec![(StreamAction::Defer, ActionType::NONE, 0, 0)]);
    let id = h.callout(
        L,
        ActionType::CALLOUT_TERMINATING,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let mut s = StreamDirection::default();
    let recv = |h: &H, s: &mut StreamDirection, d: &[u8]| {
        s.push(&call(h, &values(), &meta(), StreamFlags::RECEIVE), d, false)
    };
    let out = recv(&h, &mut s, b"in");
    assert_eq!((out.held, out.delivered.len()), (2, 0));
    recv(&h, &mut s, b"more");
    assert_eq!(rec.calls().len(), 1, "paused: not indicated again");
    // FwpsStreamContinue0: the held bytes are indicated again and permitted.
    assert!(s.resume(id));
    let out = recv(&h, &mut s, b"");
    assert_eq!(rec.calls().len(), 2);
    assert_eq!(rec.calls()[1].data, b"inmore");
    assert_eq!(out.delivered, b"inmore");
    assert!(!s.resume(id), "nothing deferred any more");
}

#[test]
fn t_st_8_allow_connection_stops_further_calls() {
    let mut h = H::new();
    let rec = scripted(vec![(
        StreamAction::AllowConnection,
        ActionType::NONE,
        0,
        0,
    )]);
    h.callout(
        L,
        ActionType::CALLOUT_TERMINATING,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let mut s = StreamDirection::default();
    assert_eq!(push(&h, &mut s, b"one", false).delivered, b"one");
    assert_eq!(push(&h, &mut s, b"two", false).delivered, b"two");
    assert_eq!(rec.calls().len(), 1);
}

#[test]
fn t_st_9_waterfall_blocked_bytes_never_reach_lower_callouts_and_count_as_missed() {
    let mut h = H::new();
    let a = scripted(vec![
        (StreamAction::None, ActionType::BLOCK, 4, 0),
        (StreamAction::None, ActionType::PERMIT, 0, 0),
        (StreamAction::None, ActionType::PERMIT, 0, 0),
    ]);
    h.callout(
        L,
        ActionType::CALLOUT_TERMINATING,
        CalloutFlags::default(),
        &a,
        vec![],
    );
    let b = Rec::new(|c, out, ld, _| {
        out.action_type = ActionType::PERMIT;
        if let LayerData::Stream(io) = ld {
            // Record missedBytes in the call's flags slot for the assertion below.
            let _ = c;
            io.count_bytes_enforced = 0;
        }
    });
    // Lower weight: after A.
    let mut f = wfp_core::FilterSpec::new("b", L, ActionType::CALLOUT_TERMINATING);
    let key = wfp_core::Guid::from_name("st9", "b");
    h.engine
        .register_callout(wfp_core::CalloutRegistration::new(
            key,
            CalloutFlags::default(),
            b.clone(),
        ))
        .unwrap();
    h.engine
        .add_callout(wfp_core::CalloutSpec {
            key,
            name: "b".into(),
            description: String::new(),
            flags: 0,
            provider: None,
            applicable_layer: L,
        })
        .unwrap();
    f.callout = Some(key);
    f.weight = wfp_core::WeightSpec::Exact(0);
    h.engine.add_filter(f).unwrap();
    let mut s = StreamDirection::default();
    let out = push(&h, &mut s, b"BADXgood", false);
    assert_eq!(out.blocked, 4);
    assert_eq!(
        b.calls()
            .iter()
            .flat_map(|c| c.data.clone())
            .collect::<Vec<_>>(),
        b"good"
    );
    assert_eq!(out.delivered, b"good");
    assert_eq!(
        b.calls()[0].missed,
        4,
        "B's indication reports the 4 bytes it missed (missedBytes)"
    );
}

#[test]
fn t_st_10_stream_callout_that_sets_nothing_is_coerced_to_block() {
    let mut h = H::new();
    let rec = Rec::new(|_, _, _, _| {});
    h.callout(
        L,
        ActionType::CALLOUT_TERMINATING,
        CalloutFlags::default(),
        &rec,
        vec![],
    );
    let mut s = StreamDirection::default();
    let out = push(&h, &mut s, b"x", false);
    assert_eq!(out.blocked, 1);
    assert!(out.delivered.is_empty());
}

/// A lower-weight stream callout B below an out-of-band editor A (weight 0 for B).
fn lower_callout(h: &mut H, rec: &Arc<Rec>) {
    let key = wfp_core::Guid::from_name("st-fin", "lower");
    h.engine
        .register_callout(wfp_core::CalloutRegistration::new(
            key,
            CalloutFlags::default(),
            rec.clone(),
        ))
        .unwrap();
    h.engine
        .add_callout(wfp_core::CalloutSpec {
            key,
            name: "lower".into(),
            description: String::new(),
            flags: 0,
            provider: None,
            applicable_layer: L,
        })
        .unwrap();
    let mut f = wfp_core::FilterSpec::new("lower", L, ActionType::CALLOUT_TERMINATING);
    f.callout = Some(key);
    f.weight = wfp_core::WeightSpec::Exact(0);
    h.engine.add_filter(f).unwrap();
}

/// §9.2 / T-ST-2, T-ST-5: an out-of-band editor blocks the FIN's indication, so the callout
/// below it is not told the stream ended and keeps what it holds; the FIN the editor injects
/// later (FwpsStreamInjectAsync0 with the DISCONNECT flag) is its NO_MORE_DATA indication, and
/// what it permits then goes out with the injection.
#[test]
fn t_st_2_injected_fin_ends_the_stream_below_the_injector() {
    let mut h = H::new();
    let a = scripted(vec![
        (StreamAction::None, ActionType::BLOCK, 0, 0),
        (StreamAction::None, ActionType::BLOCK, 0, 0),
    ]);
    let a_id = h.callout(
        L,
        ActionType::CALLOUT_TERMINATING,
        CalloutFlags::default(),
        &a,
        vec![],
    );
    let b = scripted(vec![
        (StreamAction::None, ActionType::PERMIT, 3, 0),
        (StreamAction::NeedMoreData, ActionType::NONE, 0, 8),
        (StreamAction::None, ActionType::PERMIT, 0, 0),
    ]);
    lower_callout(&mut h, &b);
    let mut s = StreamDirection::default();
    // A blocks the original data and FIN; B sees neither.
    assert!(push(&h, &mut s, b"abc\n", false).delivered.is_empty());
    let fin = push(&h, &mut s, b"", true);
    assert!(fin.delivered.is_empty());
    assert!(fin.fin_blocked, "the FIN does not go on");
    assert_eq!(b.calls().len(), 0);
    // A re-injects the data: B permits "abc" and holds "\n" for more.
    let (vals, m) = (values(), meta());
    let c = call(&h, &vals, &m, StreamFlags::SEND);
    let out = s.push_injected(&c, b"abc\n", a_id, false);
    assert_eq!(out.delivered, b"abc");
    assert_eq!(out.held, 1);
    // A blocked the FIN's indication: the stream below it has not ended.
    let calls = b.calls();
    assert!(calls
        .iter()
        .all(|c| !c.out_flags.contains(ClassifyOutFlags::NO_MORE_DATA)));
    // A injects the FIN: B gets NO_MORE_DATA with the held byte and permits it.
    let out = s.push_injected(&c, b"", a_id, true);
    assert_eq!(out.delivered, b"\n");
    assert!(!out.fin_blocked, "the injected FIN goes on");
    let calls = b.calls();
    let last = calls.last().unwrap();
    assert!(last.out_flags.contains(ClassifyOutFlags::NO_MORE_DATA));
    assert_ne!(last.stream_flags & StreamFlags::SEND_DISCONNECT.0, 0);
    assert_eq!(
        a.calls().len(),
        2,
        "injected data is not indicated to its injector"
    );
}
