//! §14.5 Flow contexts, CONDITIONAL_ON_FLOW, flowDeleteFn (T-FLOW-1 … T-FLOW-13), at the engine.
//! A "flow" is a flow handle in the classify metadata (FWPS_METADATA_FIELD_FLOW_HANDLE) at a
//! flow-capable layer; the connection reset of T-FLOW-6 is `Engine::flow_abort`, which is what the
//! shims call when a flow ends.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use wfp_testkit::prelude::*;
use wfp_testkit::{FlowDeletion, Gate};

const STREAM: LayerId = layers::STREAM_V4;
const ESTABLISHED: LayerId = layers::ALE_FLOW_ESTABLISHED_V4;

/// An inspection filter at `layer` invoking `c` (fresh callout), in a fresh sublayer of weight
/// `sl_weight`. Returns (filter, callout id).
fn inspect(
    h: &Harness,
    layer: LayerId,
    sl_weight: u16,
    c: &Arc<ScriptedCallout>,
) -> (FilterId, CalloutId) {
    let sl = h.sublayer("flows", sl_weight);
    h.callout_filter(layer, sl, 1, ActionType::CALLOUT_INSPECTION, c)
}

fn assoc(h: &Harness, flow: u64, layer: LayerId, id: CalloutId, ctx: u64) -> Status {
    h.engine().flow_associate_context(flow, layer, id, ctx)
}

/// §14.5 T-FLOW-1 (§6.2, §6.3, msnmntr sample): E at FLOW_ESTABLISHED associates a context keyed to
/// STREAM_V4 and S's id; the CONDITIONAL_ON_FLOW callout S then runs only for that flow, with that
/// context.
#[test]
fn t_flow_1_conditional_stream_callout_runs_only_for_associated_flow() {
    let h = Harness::new();
    let s = ScriptedCallout::behaving(Behaviour::Continue)
        .with_flags(CalloutFlags::CONDITIONAL_ON_FLOW)
        .build();
    let (_, s_id) = inspect(&h, STREAM, 1, &s);
    let target = Arc::new(AtomicU32::new(s_id.0));
    let statuses: Arc<Mutex<Vec<Status>>> = Arc::default();
    let (t2, st2) = (target.clone(), statuses.clone());
    let e = ScriptedCallout::new(move |call, _| {
        if let Some(flow) = call.meta.flow() {
            let st = call.ctx.engine().flow_associate_context(
                flow,
                STREAM,
                CalloutId(t2.load(Ordering::SeqCst)),
                0x1234,
            );
            st2.lock().unwrap().push(st);
        }
    })
    .build();
    inspect(&h, ESTABLISHED, 1, &e);

    h.classify_flow(ESTABLISHED, TCP_TEMPL, 1);
    assert_eq!(*statuses.lock().unwrap(), vec![Status::SUCCESS]);
    assert_eq!(h.engine().flow_context(1, STREAM, s_id), Some(0x1234));

    h.classify_flow(STREAM, TCP_TEMPL, 1);
    h.classify_flow(STREAM, TCP_TEMPL, 2);
    h.classify_flow(STREAM, TCP_TEMPL, 1);
    let inv = s.invocations();
    assert_eq!(inv.len(), 2, "only the associated flow: {inv:?}");
    for i in &inv {
        assert_eq!(i.flow_handle, Some(1));
        assert_eq!(i.flow_context, 0x1234);
        assert_eq!(i.layer, STREAM);
    }
}

/// §14.5 T-FLOW-2 (§6.2): associating again without removing → STATUS_OBJECT_NAME_EXISTS (a
/// success-class code); the first context stays.
#[test]
fn t_flow_2_second_associate_is_object_name_exists() {
    let h = Harness::new();
    let s = ScriptedCallout::passive().build();
    let (_, id) = inspect(&h, STREAM, 1, &s);
    assert_eq!(assoc(&h, 5, STREAM, id, 0x1), Status::SUCCESS);
    let st = assoc(&h, 5, STREAM, id, 0x2);
    assert_eq!(st, Status::OBJECT_NAME_EXISTS);
    assert!(st.is_success());
    assert_eq!(h.engine().flow_context(5, STREAM, id), Some(0x1));
    assert_eq!(h.engine().flow_context_count(), 1);
}

/// §14.5 T-FLOW-3 (§6.2): flowContext 0 → STATUS_INVALID_PARAMETER.
#[test]
fn t_flow_3_zero_context_is_invalid_parameter() {
    let h = Harness::new();
    let s = ScriptedCallout::passive().build();
    let (_, id) = inspect(&h, STREAM, 1, &s);
    assert_eq!(assoc(&h, 5, STREAM, id, 0), Status::INVALID_PARAMETER);
    assert_eq!(h.engine().flow_context_count(), 0);
}

/// §14.5 T-FLOW-4 (§4, §6.2): a callout registered with flowDeleteFn == NULL cannot hold contexts.
#[test]
fn t_flow_4_no_flow_delete_fn_is_invalid_parameter() {
    let h = Harness::new();
    let s = ScriptedCallout::passive().without_flow_delete().build();
    let (_, id) = inspect(&h, STREAM, 1, &s);
    assert_eq!(assoc(&h, 5, STREAM, id, 0x77), Status::INVALID_PARAMETER);
    assert_eq!(h.engine().flow_context_count(), 0);
}

/// §14.5 T-FLOW-5 (§6.2): two callouts on one flow each get their own context.
#[test]
fn t_flow_5_two_callouts_two_contexts() {
    let h = Harness::new();
    let a = ScriptedCallout::passive().build();
    let b = ScriptedCallout::passive().build();
    let (_, a_id) = inspect(&h, STREAM, 2, &a);
    let (_, b_id) = inspect(&h, STREAM, 1, &b);
    assert_eq!(assoc(&h, 9, STREAM, a_id, 0xA), Status::SUCCESS);
    assert_eq!(assoc(&h, 9, STREAM, b_id, 0xB), Status::SUCCESS);
    h.classify_flow(STREAM, TCP_TEMPL, 9);
    assert_eq!(a.invocations()[0].flow_context, 0xA);
    assert_eq!(b.invocations()[0].flow_context, 0xB);
}

/// §14.5 T-FLOW-6 (§4): the flow ends abruptly (RST → `flow_abort`) with no further classify:
/// flowDeleteFn(STREAM_V4, S, 0x1234) exactly once, and the context is gone.
#[test]
fn t_flow_6_flow_end_calls_flow_delete_once() {
    let h = Harness::new();
    let s = ScriptedCallout::passive()
        .with_flags(CalloutFlags::CONDITIONAL_ON_FLOW)
        .build();
    let (_, id) = inspect(&h, STREAM, 1, &s);
    assert_eq!(assoc(&h, 3, STREAM, id, 0x1234), Status::SUCCESS);
    assert_eq!(h.engine().flow_abort(3), 1);
    let expected = vec![FlowDeletion {
        layer: STREAM,
        callout_id: id,
        flow_context: 0x1234,
    }];
    assert_eq!(s.flow_deletions(), expected);
    assert_eq!(h.engine().flow_context(3, STREAM, id), None);
    assert_eq!(h.engine().flow_abort(3), 0);
    h.classify_flow(STREAM, TCP_TEMPL, 3);
    assert_eq!(s.invocation_count(), 0);
    assert_eq!(s.flow_deletions(), expected, "never twice");
}

/// §14.5 T-FLOW-7 (§6.2): removing a context that does not exist → STATUS_UNSUCCESSFUL.
#[test]
fn t_flow_7_remove_without_context_is_unsuccessful() {
    let h = Harness::new();
    let s = ScriptedCallout::passive().build();
    let (_, id) = inspect(&h, STREAM, 1, &s);
    assert_eq!(
        h.engine().flow_remove_context(3, STREAM, id),
        Status::UNSUCCESSFUL
    );
    assert!(s.flow_deletions().is_empty());
}

/// §14.5 T-FLOW-8 (§6.2): removing while no classify runs → STATUS_SUCCESS, flowDeleteFn already
/// called when it returns.
#[test]
fn t_flow_8_remove_idle_context_calls_flow_delete_synchronously() {
    let h = Harness::new();
    let s = ScriptedCallout::passive().build();
    let (_, id) = inspect(&h, STREAM, 1, &s);
    assert_eq!(assoc(&h, 4, STREAM, id, 0x44), Status::SUCCESS);
    assert_eq!(
        h.engine().flow_remove_context(4, STREAM, id),
        Status::SUCCESS
    );
    assert_eq!(
        s.flow_deletions(),
        vec![FlowDeletion {
            layer: STREAM,
            callout_id: id,
            flow_context: 0x44
        }]
    );
    assert_eq!(h.engine().flow_context_count(), 0);
}

/// §14.5 T-FLOW-9 (§6.2, brief decision 5): removing while S's classifyFn runs for that flow on
/// another thread → STATUS_PENDING; flowDeleteFn runs exactly once, after that classify returns.
#[test]
fn t_flow_9_remove_during_classify_is_pending_then_deleted_once() {
    let h = Harness::new();
    let (s, id, gate, classifier) = blocked_classify(&h, 7, 0x99);
    assert_eq!(
        h.engine().flow_remove_context(7, STREAM, id),
        Status::PENDING
    );
    assert_eq!(Status::PENDING.0, 0x103);
    assert!(s.flow_deletions().is_empty(), "not while classify runs");
    assert_eq!(
        h.engine().flow_remove_context(7, STREAM, id),
        Status::UNSUCCESSFUL,
        "removal already pending"
    );
    gate.release();
    classifier.join().unwrap();
    assert_eq!(
        s.flow_deletions(),
        vec![FlowDeletion {
            layer: STREAM,
            callout_id: id,
            flow_context: 0x99
        }]
    );
    assert_eq!(h.engine().flow_context_count(), 0);
    assert_eq!(h.engine().flow_abort(7), 0);
    assert_eq!(s.flow_deletions().len(), 1, "exactly once");
}

/// §14.5 T-FLOW-10 (§5.3, §6.2 unload protocol): unregister with a live context →
/// STATUS_DEVICE_BUSY; after the context is removed (flowDeleteFn), unregister → SUCCESS.
#[test]
fn t_flow_10_unregister_with_context_is_device_busy() {
    let h = Harness::new();
    let s = ScriptedCallout::passive().build();
    let (_, id) = inspect(&h, STREAM, 1, &s);
    assert_eq!(assoc(&h, 8, STREAM, id, 0x88), Status::SUCCESS);
    assert_eq!(h.unregister(id), Status::DEVICE_BUSY);
    assert_eq!(Status::DEVICE_BUSY.0, 0x8000_0011);
    // New invocations stopped at once.
    h.classify_flow(STREAM, TCP_TEMPL, 8);
    assert_eq!(s.invocation_count(), 0);
    assert_eq!(
        h.engine().flow_remove_context(8, STREAM, id),
        Status::SUCCESS
    );
    assert_eq!(s.flow_deletions().len(), 1);
    assert_eq!(h.unregister(id), Status::SUCCESS);
    assert_eq!(h.unregister(id), Status::FWP_CALLOUT_NOT_FOUND);
}

/// §14.5 T-FLOW-11 (§4 [I return code]): a flowDeleteFn that calls FwpsFlowRemoveContext0 itself
/// gets STATUS_UNSUCCESSFUL — the engine already removed the context.
#[test]
fn t_flow_11_remove_from_flow_delete_is_unsuccessful() {
    let h = Harness::new();
    let weak = Arc::downgrade(h.engine());
    let seen: Arc<Mutex<Vec<Status>>> = Arc::default();
    let seen2 = seen.clone();
    let s = ScriptedCallout::passive()
        .on_flow_delete(move |layer, id, _| {
            if let Some(e) = weak.upgrade() {
                seen2
                    .lock()
                    .unwrap()
                    .push(e.flow_remove_context(11, layer, id));
            }
        })
        .build();
    let (_, id) = inspect(&h, STREAM, 1, &s);
    assert_eq!(assoc(&h, 11, STREAM, id, 0x11), Status::SUCCESS);
    assert_eq!(h.engine().flow_abort(11), 1);
    assert_eq!(assoc(&h, 11, STREAM, id, 0x12), Status::SUCCESS);
    assert_eq!(
        h.engine().flow_remove_context(11, STREAM, id),
        Status::SUCCESS
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Status::UNSUCCESSFUL, Status::UNSUCCESSFUL]
    );
    assert_eq!(s.flow_deletions().len(), 2);
}

/// §14.5 T-FLOW-12 (§6.1 FwpsFlowAbort0): aborting a flow calls flowDeleteFn once for each of its
/// contexts, at any layer.
#[test]
fn t_flow_12_flow_abort_deletes_every_context() {
    let h = Harness::new();
    let a = ScriptedCallout::passive().build();
    let b = ScriptedCallout::passive().build();
    let (_, a_id) = inspect(&h, STREAM, 1, &a);
    let (_, b_id) = inspect(&h, ESTABLISHED, 1, &b);
    assert_eq!(assoc(&h, 12, STREAM, a_id, 0xA), Status::SUCCESS);
    assert_eq!(assoc(&h, 12, ESTABLISHED, b_id, 0xB), Status::SUCCESS);
    assert_eq!(assoc(&h, 13, STREAM, a_id, 0xC), Status::SUCCESS);
    assert_eq!(h.engine().flow_abort(12), 2);
    assert_eq!(
        a.flow_deletions(),
        vec![FlowDeletion {
            layer: STREAM,
            callout_id: a_id,
            flow_context: 0xA
        }]
    );
    assert_eq!(
        b.flow_deletions(),
        vec![FlowDeletion {
            layer: ESTABLISHED,
            callout_id: b_id,
            flow_context: 0xB
        }]
    );
    assert_eq!(
        h.engine().flow_context(13, STREAM, a_id),
        Some(0xC),
        "other flows untouched"
    );
}

/// §14.5 T-FLOW-13 (§6.3 [I]): a CONDITIONAL_ON_FLOW callout on a TERMINATING filter, flow without
/// context: skipped, contributes nothing; the lower filter decides. With a context it runs.
#[test]
fn t_flow_13_conditional_callout_without_context_is_skipped() {
    let h = Harness::new();
    let sl = h.sublayer("one", 1);
    let c = ScriptedCallout::behaving(Behaviour::Block)
        .with_flags(CalloutFlags::CONDITIONAL_ON_FLOW)
        .build();
    let (f, id) = h.callout_filter(STREAM, sl, 10, ActionType::CALLOUT_TERMINATING, &c);
    let permit = h.filter(STREAM, sl, 1, ActionType::PERMIT);

    let (r, t) = h.classify_flow(STREAM, TCP_TEMPL, 21);
    assert_eq!(Verdict::of(&r), Permit(Soft));
    assert_eq!(r.deciding_filter, Some(permit));
    assert_eq!(t.steps[0].filter_id, f);
    assert_eq!(t.steps[0].outcome, StepOutcome::SkippedNoFlowContext);
    // No flow handle at all: skipped too.
    classify!(h, at STREAM_V4, TCP_TEMPL => Permit(Soft), by permit);
    assert_eq!(c.invocation_count(), 0);

    assert_eq!(assoc(&h, 21, STREAM, id, 0x2121), Status::SUCCESS);
    let (r, _) = h.classify_flow(STREAM, TCP_TEMPL, 21);
    assert_eq!(Verdict::of(&r), Block(Hard));
    assert_eq!(r.deciding_filter, Some(f));
    assert_eq!(c.invocations()[0].flow_context, 0x2121);
}

/// A callout at STREAM_V4 holding a context `ctx` on `flow`, and a thread whose classify for that
/// flow is held inside the callout (by the returned gate) when this returns.
fn blocked_classify(
    h: &Harness,
    flow: u64,
    ctx: u64,
) -> (
    Arc<ScriptedCallout>,
    CalloutId,
    Arc<Gate>,
    thread::JoinHandle<ClassifyResult>,
) {
    let gate = Gate::new();
    let g2 = gate.clone();
    let s = ScriptedCallout::new(move |call, out| {
        if call.flow_context != 0 {
            g2.pass();
        }
        out.action_type = ActionType::CONTINUE;
    })
    .build();
    let (_, id) = inspect(h, STREAM, 1, &s);
    assert_eq!(assoc(h, flow, STREAM, id, ctx), Status::SUCCESS);
    let classifier = h.spawn_classify(STREAM, TCP_TEMPL, flow_meta(flow), &gate);
    assert!(
        gate.wait_entered(),
        "the callout was never invoked for the flow"
    );
    (s, id, gate, classifier)
}

/// §14.5 T-FLOW-12 with brief decision 5: a flow aborted while a classify for it runs gets its
/// flowDeleteFn exactly once, after that classify returns; the context is invisible meanwhile.
#[test]
fn t_flow_12_flow_abort_during_classify_defers_flow_delete() {
    let h = Harness::new();
    let (s, id, gate, classifier) = blocked_classify(&h, 41, 0x41);
    h.engine().flow_abort(41);
    assert!(s.flow_deletions().is_empty(), "not while classify runs");
    assert_eq!(h.engine().flow_context(41, STREAM, id), None);
    gate.release();
    classifier.join().unwrap();
    assert_eq!(
        s.flow_deletions(),
        vec![FlowDeletion {
            layer: STREAM,
            callout_id: id,
            flow_context: 0x41
        }]
    );
    assert_eq!(h.engine().flow_abort(41), 0);
    assert_eq!(s.flow_deletions().len(), 1);
}

/// `Engine::flow_abort` documents its return value as the number of contexts that "were (or will
/// be) deleted"; a context whose classify is running will be deleted, so it must be counted.
#[test]
fn flow_abort_counts_deferred_contexts() {
    let h = Harness::new();
    let (_s, _id, gate, classifier) = blocked_classify(&h, 42, 0x42);
    let n = h.engine().flow_abort(42);
    gate.release();
    classifier.join().unwrap();
    assert_eq!(n, 1);
}

/// Brief decision 5 / reliability promise: a flowDeleteFn that panics is contained and counted; the
/// context is still gone, so the callout can unregister.
#[test]
fn decision_5_panicking_flow_delete_is_contained() {
    wfp_testkit::quiet_panics();
    let h = Harness::new();
    let s = ScriptedCallout::passive()
        .on_flow_delete(|_, _, _| panic!("{}", wfp_testkit::PANIC_MARKER))
        .build();
    let (_, id) = inspect(&h, STREAM, 1, &s);
    assert_eq!(assoc(&h, 51, STREAM, id, 0x51), Status::SUCCESS);
    assert_eq!(
        h.engine().flow_remove_context(51, STREAM, id),
        Status::SUCCESS
    );
    assert_eq!(s.flow_deletions().len(), 1);
    assert_eq!(h.engine().flow_context_count(), 0);
    assert_eq!(
        h.engine().stats().callback_panics.load(Ordering::Relaxed),
        1
    );
    assert_eq!(h.unregister(id), Status::SUCCESS);
}
