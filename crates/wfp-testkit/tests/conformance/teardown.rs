//! Safe teardown and flow lifetimes at the engine (§3.2, §6, §12 (a)): DELETE_FILTER waits for
//! classifies on older snapshots; FlowAssociateContext checks flow and layer; FwpsFlowAbort0 ends
//! an announced flow for real.

use std::thread;

use wfp_core::{EngineOptions, FlowEvent, FlowStatus, FlowTracking};
use wfp_testkit::prelude::*;
use wfp_testkit::Gate;

/// §12 (a): a filter deleted while a classify that sees it is still running gets its DELETE_FILTER
/// notify only after that classify returned.
#[test]
fn delete_filter_notify_waits_for_running_classify() {
    let h = Harness::new();
    let sl = h.sublayer("slow", 1);
    let gate = Gate::new();
    let g2 = gate.clone();
    let c = ScriptedCallout::new(move |_, _| g2.pass()).build();
    let (f, _) = h.callout_filter(
        layers::INBOUND_TRANSPORT_V4,
        sl,
        1,
        ActionType::CALLOUT_INSPECTION,
        &c,
    );
    let t = h.spawn_classify(
        layers::INBOUND_TRANSPORT_V4,
        TCP_TEMPL,
        Default::default(),
        &gate,
    );
    assert!(gate.wait_entered());
    h.delete(f);
    let deletes = |c: &ScriptedCallout| {
        c.notifications()
            .iter()
            .filter(|n| n.kind == NotifyType::DeleteFilter)
            .count()
    };
    assert_eq!(deletes(&c), 0, "the running classify still sees the filter");
    assert_eq!(h.engine().deferred_notification_count(), 1);
    gate.release();
    t.join().unwrap();
    assert_eq!(deletes(&c), 1, "delivered when the classify returned");
    assert_eq!(h.engine().deferred_notification_count(), 0);
    let _ = thread::current();
}

/// §6.2: contexts only for live flows at flow-capable layers; an aborted flow takes no context, its
/// flowDeleteFn ran once, and the data path sees the abort.
#[test]
fn associate_checks_flow_and_layer_and_abort_ends_the_flow() {
    let h = Harness::with_options(EngineOptions {
        flow_tracking: FlowTracking::Announced,
        ..EngineOptions::default()
    });
    let e = h.engine();
    let s = ScriptedCallout::passive().build();
    let sl = h.sublayer("f", 1);
    let (_, id) = h.callout_filter(layers::STREAM_V4, sl, 1, ActionType::CALLOUT_INSPECTION, &s);
    assert_eq!(
        e.flow_associate_context(5, layers::STREAM_V4, id, 1),
        Status::INVALID_PARAMETER,
        "unknown flow"
    );
    assert_eq!(e.flow_created(5), Status::SUCCESS);
    assert_eq!(e.flow_created(5), Status::FWP_ALREADY_EXISTS);
    assert_eq!(
        e.flow_associate_context(5, layers::INBOUND_IPPACKET_V4, id, 1),
        Status::INVALID_PARAMETER,
        "no flows at IPPACKET"
    );
    assert_eq!(
        e.flow_associate_context(5, layers::STREAM_V4, id, 1),
        Status::SUCCESS
    );
    assert_eq!(e.flow_abort(5), 1);
    assert_eq!(e.flow_abort(5), 0);
    assert_eq!(s.flow_deletions().len(), 1);
    assert_eq!(e.flow_status(5), FlowStatus::Aborted);
    assert_eq!(e.poll_flow_event(), Some(FlowEvent::Aborted { flow: 5 }));
    assert_eq!(e.poll_flow_event(), None);
    assert_eq!(
        e.flow_associate_context(5, layers::STREAM_V4, id, 2),
        Status::INVALID_PARAMETER,
        "aborted"
    );
    assert_eq!(e.flow_ended(5), 0);
    assert_eq!(e.flow_status(5), FlowStatus::Unknown);
    assert_eq!(e.flow_context_count(), 0);
}

/// §1.1 ALLOW_MID_STREAM_INSPECTION: a stream filter added after an announced flow began reaches a
/// callout with the flag, not one without it; new flows reach both.
#[test]
fn mid_stream_inspection_needs_the_flag() {
    let h = Harness::with_options(EngineOptions {
        flow_tracking: FlowTracking::Announced,
        ..EngineOptions::default()
    });
    let e = h.engine();
    assert_eq!(e.flow_created(1), Status::SUCCESS);
    let sl = h.sublayer("s", 1);
    let plain = ScriptedCallout::passive().build();
    let mid = ScriptedCallout::passive()
        .with_flags(CalloutFlags::ALLOW_MID_STREAM_INSPECTION)
        .build();
    h.callout_filter(
        layers::STREAM_V4,
        sl,
        2,
        ActionType::CALLOUT_INSPECTION,
        &plain,
    );
    h.callout_filter(
        layers::STREAM_V4,
        sl,
        1,
        ActionType::CALLOUT_INSPECTION,
        &mid,
    );
    h.classify_flow(layers::STREAM_V4, TCP_TEMPL, 1);
    assert_eq!((plain.invocation_count(), mid.invocation_count()), (0, 1));
    assert_eq!(e.flow_created(2), Status::SUCCESS);
    h.classify_flow(layers::STREAM_V4, TCP_TEMPL, 2);
    assert_eq!((plain.invocation_count(), mid.invocation_count()), (1, 2));
}
