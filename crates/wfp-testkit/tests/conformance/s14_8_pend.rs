//! §14.8 Pend / reauthorization / redirect (T-PEND-1 … T-PEND-6), at the engine: the data path's
//! part is played by the test (it mints completion handles, drains `poll_pend_event`, runs the
//! reauthorization classify, announces flows).

use std::sync::{Arc, Mutex};

use wfp_core::callout::Metadata;
use wfp_core::pend::{AfterCompletion, CompletionContext, PendEvent};
use wfp_core::redirect::{RedirectRequest, RedirectState};
use wfp_core::{EngineOptions, FlowTracking};
use wfp_testkit::prelude::*;
use wfp_testkit::values;

const CONNECT: LayerId = layers::ALE_AUTH_CONNECT_V4;

fn layer(name: &str) -> LayerId {
    LayerId(
        wfp_core::catalogue::layer_by_name(name)
            .unwrap_or_else(|| panic!("layer {name}"))
            .id,
    )
}

/// Metadata carrying a fresh completion handle (what the data path does at ALE layers).
fn pend_meta(h: &Harness) -> Metadata {
    Metadata {
        completion_handle: h.engine().new_completion_handle().0,
        present: MetadataFields::COMPLETION_HANDLE,
        ..Metadata::default()
    }
}

fn flags_value(layer: LayerId, flags: u32) -> Vec<Value> {
    values(layer, &[("FLAGS", Value::Uint32(flags))])
}

/// What [`pender`] records: the result of each pend call.
type PendLog = Arc<Mutex<Vec<Result<CompletionContext, Status>>>>;

/// A callout that pends the initial authorization and, in the reauthorization, answers what
/// `verdict` holds; records the statuses of its pend calls.
fn pender(verdict: ActionType) -> (Arc<ScriptedCallout>, PendLog) {
    let log: Arc<Mutex<Vec<_>>> = Arc::default();
    let l2 = log.clone();
    let c = ScriptedCallout::new(move |call, out| {
        if call.ctx.is_reauthorization() {
            // the reauthorization answers the real verdict, and may not pend (T-PEND-2)
            l2.lock().unwrap().push(call.ctx.pend_operation(call.meta));
            out.action_type = verdict;
            out.clear_write();
            return;
        }
        let r = call.ctx.pend_operation(call.meta);
        if r.is_ok() {
            out.action_type = ActionType::BLOCK;
            out.flags |= ClassifyOutFlags::ABSORB;
            out.clear_write();
        }
        l2.lock().unwrap().push(r);
    })
    .build();
    (c, log)
}

/// §14.8 T-PEND-1 (§10.1): pend at ALE_AUTH_CONNECT answers BLOCK+ABSORB; completion asks the data
/// path for a reauthorization at the same layer with reason CLASSIFY_COMPLETION, whose verdict
/// decides; a second completion is refused.
#[test]
fn t_pend_1_completion_triggers_reauthorization_at_auth_connect() {
    let h = Harness::new();
    let sl = h.sublayer("pend", 1);
    let (c, log) = pender(ActionType::PERMIT);
    let (f, _) = h.callout_filter(CONNECT, sl, 1, ActionType::CALLOUT_TERMINATING, &c);
    let meta = pend_meta(&h);
    let (r, _) = h.classify_meta(CONNECT, TCP_TEMPL, &meta);
    assert_eq!(Verdict::of(&r), Block(Hard));
    assert!(r.absorbed());
    let ctx = log.lock().unwrap()[0].expect("pend at AUTH_CONNECT");
    let Some(PendEvent::OperationPended {
        handle,
        context,
        layer,
        ..
    }) = h.engine().poll_pend_event()
    else {
        panic!("no OperationPended event");
    };
    assert_eq!(
        (handle.0, context, layer),
        (meta.completion_handle, ctx, CONNECT)
    );
    assert!(h.engine().is_operation_pending(ctx));

    assert_eq!(h.engine().complete_operation(ctx, None), Status::SUCCESS);
    let Some(PendEvent::OperationCompleted { next, .. }) = h.engine().poll_pend_event() else {
        panic!("no OperationCompleted event");
    };
    let AfterCompletion::Reauthorize { layer, reason } = next else {
        panic!("AUTH_CONNECT completion must reauthorize: {next:?}");
    };
    assert_eq!(layer, CONNECT);
    assert_eq!(
        reason,
        wfp_core::constants::ReauthorizeReason::CLASSIFY_COMPLETION
    );
    // The data path's reauthorization classify: IS_REAUTHORIZE + REAUTHORIZE_REASON.
    let mut v = flags_value(
        CONNECT,
        wfp_core::constants::ConditionFlags::IS_REAUTHORIZE.0,
    );
    let reason_ix = wfp_core::catalogue::layer(CONNECT)
        .and_then(|l| l.field_index_by_name("REAUTHORIZE_REASON"))
        .unwrap();
    v[reason_ix] = Value::Uint32(reason.0);
    let (r2, _) = h.classify_meta(CONNECT, v, &pend_meta(&h));
    assert_eq!(Verdict::of(&r2), Permit(Hard));
    assert_eq!(r2.deciding_filter, Some(f));
    // Double completion: a WFP status, nothing happens.
    assert_eq!(
        h.engine().complete_operation(ctx, None),
        Status::FWP_NOT_FOUND
    );
    assert!(h.engine().poll_pend_event().is_none());
    assert_eq!(h.engine().pend_stats().operations_completed, 1);
}

/// §14.8 T-PEND-2 (§10.1): pending inside a reauthorization is STATUS_FWP_CANNOT_PEND.
#[test]
fn t_pend_2_pend_inside_reauthorization_cannot_pend() {
    let h = Harness::new();
    let sl = h.sublayer("pend", 1);
    let (c, log) = pender(ActionType::BLOCK);
    h.callout_filter(CONNECT, sl, 1, ActionType::CALLOUT_TERMINATING, &c);
    let v = flags_value(
        CONNECT,
        wfp_core::constants::ConditionFlags::IS_REAUTHORIZE.0,
    );
    let (r, _) = h.classify_meta(CONNECT, v, &pend_meta(&h));
    assert_eq!(Verdict::of(&r), Block(Hard));
    assert_eq!(*log.lock().unwrap(), vec![Err(Status::FWP_CANNOT_PEND)]);
    assert!(h.engine().poll_pend_event().is_none());
}

/// §14.8 T-PEND-3 (§10.1, §10.2): pending at a layer that does not allow it — FwpsPendOperation0 at
/// INBOUND_IPPACKET / FLOW_ESTABLISHED and FwpsPendClassify0 at INBOUND_IPPACKET — is
/// STATUS_FWP_CANNOT_PEND; so is FwpsPendClassify0 after the classifyFn returned.
#[test]
fn t_pend_3_pend_at_refusing_layer_cannot_pend() {
    let h = Harness::new();
    let sl = h.sublayer("pend", 1);
    let seen: Arc<Mutex<Vec<Status>>> = Arc::default();
    let s2 = seen.clone();
    let c = ScriptedCallout::new(move |call, out| {
        let op = call
            .ctx
            .pend_operation(call.meta)
            .err()
            .unwrap_or(Status::SUCCESS);
        let ch = call.ctx.acquire_classify_handle();
        let pc = call
            .ctx
            .engine()
            .pend_classify(ch, call.filter.filter_id(), out);
        assert_eq!(
            call.ctx.engine().release_classify_handle(ch),
            Status::SUCCESS
        );
        s2.lock().unwrap().extend([op, pc]);
    })
    .build();
    let ip = layers::INBOUND_IPPACKET_V4;
    h.callout_filter(ip, sl, 1, ActionType::CALLOUT_INSPECTION, &c);
    h.classify_meta(ip, TCP_TEMPL, &pend_meta(&h));
    assert_eq!(*seen.lock().unwrap(), vec![Status::FWP_CANNOT_PEND; 2]);
    // A handle kept past classifyFn cannot pend even at a pendable layer.
    let closure = layers::ALE_ENDPOINT_CLOSURE_V4;
    let kept: Arc<Mutex<Option<ClassifyHandleT>>> = Arc::default();
    let k2 = kept.clone();
    let late = ScriptedCallout::new(move |call, _| {
        *k2.lock().unwrap() = Some(call.ctx.acquire_classify_handle());
    })
    .build();
    let (lf, _) = h.callout_filter(closure, sl, 1, ActionType::CALLOUT_INSPECTION, &late);
    h.classify(closure, TCP_TEMPL);
    let ch = kept.lock().unwrap().expect("acquired");
    let mut out = ClassifyOutT::default_out();
    assert_eq!(
        h.engine().pend_classify(ch, lf, &mut out),
        Status::FWP_CANNOT_PEND
    );
    assert_eq!(h.engine().release_classify_handle(ch), Status::SUCCESS);
    assert_eq!(
        h.engine().release_classify_handle(ch),
        Status::FWP_NOT_FOUND
    );
    assert_eq!(h.engine().classify_handle_count(), 0);
}

type ClassifyHandleT = wfp_core::pend::ClassifyHandle;

/// A zeroed classify-out for calls made outside a classify.
struct ClassifyOutT;
impl ClassifyOutT {
    fn default_out() -> wfp_core::ClassifyOut {
        wfp_core::ClassifyOut {
            action_type: ActionType::CONTINUE,
            out_context: 0,
            filter_id: 0,
            rights: Rights::ACTION_WRITE,
            flags: ClassifyOutFlags::default(),
        }
    }
}

/// §14.8 T-PEND-4 (§10.2): FwpsPendClassify0 at ALE_ENDPOINT_CLOSURE (BLOCK+ABSORB while pending,
/// the pend holds a reference past the local release); FwpsCompleteClassify0 with a decision
/// completes with it; with NULL the indication is reauthorized; a second completion is refused.
#[test]
fn t_pend_4_pend_classify_at_endpoint_closure_completes_with_decision() {
    let h = Harness::new();
    let sl = h.sublayer("pend", 1);
    let closure = layers::ALE_ENDPOINT_CLOSURE_V4;
    let handles: Arc<Mutex<Vec<ClassifyHandleT>>> = Arc::default();
    let h2 = handles.clone();
    let c = ScriptedCallout::new(move |call, out| {
        let ch = call.ctx.acquire_classify_handle();
        assert_eq!(
            call.ctx
                .engine()
                .pend_classify(ch, call.filter.filter_id(), out),
            Status::SUCCESS
        );
        // the pend keeps its own reference: releasing ours now is allowed
        assert_eq!(
            call.ctx.engine().release_classify_handle(ch),
            Status::SUCCESS
        );
        h2.lock().unwrap().push(ch);
    })
    .build();
    let (f, _) = h.callout_filter(closure, sl, 1, ActionType::CALLOUT_TERMINATING, &c);
    let (r, _) = h.classify(closure, TCP_TEMPL);
    assert_eq!(Verdict::of(&r), Block(Hard));
    assert!(r.absorbed());
    let ch = handles.lock().unwrap()[0];
    assert!(matches!(
        h.engine().poll_pend_event(),
        Some(PendEvent::ClassifyPended { handle, filter, .. }) if handle == ch && filter == f
    ));
    assert_eq!(h.engine().classify_handle_count(), 1);
    let mut permit = ClassifyOutT::default_out();
    permit.action_type = ActionType::PERMIT;
    assert_eq!(
        h.engine().complete_classify(ch, Some(permit)),
        Status::SUCCESS
    );
    let Some(PendEvent::ClassifyCompleted { decision, .. }) = h.engine().poll_pend_event() else {
        panic!("no ClassifyCompleted");
    };
    assert_eq!(decision.map(|d| d.action_type), Some(ActionType::PERMIT));
    assert_eq!(h.engine().classify_handle_count(), 0, "last reference gone");
    assert_eq!(
        h.engine().complete_classify(ch, None),
        Status::FWP_NOT_FOUND
    );

    // NULL classifyOut: the indication is reauthorized.
    h.classify(closure, TCP_TEMPL);
    let ch2 = handles.lock().unwrap()[1];
    h.engine().poll_pend_event();
    assert_eq!(h.engine().complete_classify(ch2, None), Status::SUCCESS);
    assert!(matches!(
        h.engine().poll_pend_event(),
        Some(PendEvent::ClassifyCompleted { decision: None, .. })
    ));
    let st = h.engine().pend_stats();
    assert_eq!((st.handles_acquired, st.handles_freed), (2, 2));
}

/// §14.8 T-PEND-5 (§10.3): FwpsAcquireWritableLayerDataPointer0 at ALE_CONNECT_REDIRECT sets BLOCK
/// and clears the write right; exactly one apply (a second one, or one without acquire, is
/// refused); a lower callout sees the modified version; the redirect-state query names the
/// redirector so two redirectors cannot loop.
#[test]
fn t_pend_5_writable_layer_data_acquire_modify_apply_once() {
    let h = Harness::new();
    let redirect = layer("ALE_CONNECT_REDIRECT_V4");
    let high = h.sublayer("proxy", 2);
    let low = h.sublayer("observer", 1);
    let proxy: std::net::SocketAddr = "127.0.0.1:3128".parse().unwrap();
    let mine = h.engine().create_redirect_handle();
    let seen: Arc<Mutex<Vec<(bool, bool)>>> = Arc::default();
    let s2 = seen.clone();
    let c = ScriptedCallout::new(move |call, out| {
        let e = call.ctx.engine();
        let (state, _) =
            e.query_connection_redirect_state(call.meta.redirect_records.as_deref(), mine);
        if state != RedirectState::NotRedirected {
            return; // ours (or another's): never redirect twice
        }
        let ch = call.ctx.acquire_classify_handle();
        let fid = call.filter.filter_id();
        let mut w = e
            .acquire_writable_layer_data(ch, fid, out)
            .expect("acquire");
        s2.lock()
            .unwrap()
            .push((out.action_type == ActionType::BLOCK, out.can_write()));
        w.remote = Some(proxy);
        w.redirect_handle = Some(mine);
        w.redirect_context = 77;
        assert_eq!(
            e.apply_modified_layer_data(ch, fid, w.clone(), 0),
            Status::SUCCESS
        );
        assert_eq!(
            e.apply_modified_layer_data(ch, fid, w, 0),
            Status::FWP_NOT_FOUND
        );
        assert_eq!(e.release_classify_handle(ch), Status::SUCCESS);
    })
    .build();
    let observer_saw: Arc<Mutex<Option<RedirectRequest>>> = Arc::default();
    let o2 = observer_saw.clone();
    let o = ScriptedCallout::new(move |call, out| {
        let e = call.ctx.engine();
        let ch = call.ctx.acquire_classify_handle();
        let w = e
            .acquire_writable_layer_data(ch, call.filter.filter_id(), out)
            .expect("acquire");
        *o2.lock().unwrap() = Some(w.clone());
        assert_eq!(
            e.apply_modified_layer_data(ch, call.filter.filter_id(), w, 0),
            Status::SUCCESS
        );
        e.release_classify_handle(ch);
    })
    .build();
    let (pf, _) = h.callout_filter(redirect, high, 1, ActionType::CALLOUT_INSPECTION, &c);
    h.callout_filter(redirect, low, 1, ActionType::CALLOUT_INSPECTION, &o);
    let original = RedirectRequest::connect(
        "10.0.0.1:40000".parse().unwrap(),
        "192.0.2.7:80".parse().unwrap(),
    );
    let v = values(redirect, &[]);
    let out = h
        .engine()
        .classify_redirect(redirect, &v, &Metadata::default(), original.clone());
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(true, false)],
        "BLOCK, write right cleared"
    );
    assert_eq!(out.request.remote, Some(proxy));
    assert_eq!(out.request.modifier_filter_id, pf.0);
    assert_eq!(out.request.previous_version.as_deref(), Some(&original));
    let observed = observer_saw.lock().unwrap().clone().unwrap();
    assert_eq!(
        observed.remote,
        Some(proxy),
        "the lower callout sees the modified version"
    );
    // The redirected connection comes back through the layer carrying its records: no loop.
    let (state, ctx) = h
        .engine()
        .query_connection_redirect_state(Some(&out.request.records), mine);
    assert_eq!((state, ctx), (RedirectState::RedirectedBySelf, Some(77)));
    let meta = Metadata {
        redirect_records: Some(out.request.records.clone()),
        present: MetadataFields::REDIRECT_RECORD_HANDLE,
        ..Metadata::default()
    };
    let again = RedirectRequest::connect("10.0.0.1:40001".parse().unwrap(), proxy)
        .with_records(Some(out.request.records.clone()));
    let out2 = h.engine().classify_redirect(redirect, &v, &meta, again);
    assert_eq!(out2.request.remote, Some(proxy));
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the proxy callout did not redirect again"
    );
    // Apply without acquire.
    assert_eq!(h.engine().classify_handle_count(), 0);
    assert_eq!(
        h.engine().apply_modified_layer_data(
            wfp_core::pend::ClassifyHandle(999_999),
            pf,
            original,
            0
        ),
        Status::FWP_NOT_FOUND
    );
}

/// §14.8 T-PEND-6 (§8.2 "Reauthorization"): a filter added at ALE_AUTH_RECV_ACCEPT while an
/// inbound-authorized flow exists moves the reauthorization epoch (one load per packet); the flow
/// then needs reauthorization at RECV_ACCEPT with reason POLICY_CHANGE, where the new BLOCK decides;
/// a change at another layer does not move it.
#[test]
fn t_pend_6_policy_change_reauthorizes_live_flows() {
    let h = Harness::with_options(EngineOptions {
        flow_tracking: FlowTracking::Announced,
        ..EngineOptions::default()
    });
    let e = h.engine();
    let accept = layers::ALE_AUTH_RECV_ACCEPT_V4;
    assert_eq!(e.flow_created(41), Status::SUCCESS);
    e.flow_authorized(41, accept);
    let epoch = e.reauthorization_epoch();
    assert_eq!(e.flow_reauthorization(41), None);
    let sl = h.sublayer("fw", 1);
    h.filter(layers::INBOUND_TRANSPORT_V4, sl, 1, ActionType::BLOCK);
    assert_eq!(
        e.reauthorization_epoch(),
        epoch,
        "a transport filter is not an ALE change"
    );
    let block = h.filter(accept, sl, 1, ActionType::BLOCK);
    assert_ne!(e.reauthorization_epoch(), epoch);
    let re = e.flow_reauthorization(41).expect("reauthorization due");
    assert_eq!(re.layer, accept);
    assert_eq!(
        re.reason,
        wfp_core::constants::ReauthorizeReason::POLICY_CHANGE
    );
    // The outbound packet is classified at RECV_ACCEPT with IS_REAUTHORIZE: the BLOCK tears the
    // flow down (the data path aborts it).
    let v = flags_value(
        accept,
        wfp_core::constants::ConditionFlags::IS_REAUTHORIZE.0,
    );
    let (r, _) = h.classify_flow(accept, v, 41);
    assert_eq!(r.deciding_filter, Some(block));
    e.flow_abort(41);
    assert_eq!(e.flow_status(41), wfp_core::FlowStatus::Aborted);
    assert_eq!(
        e.poll_flow_event(),
        Some(wfp_core::FlowEvent::Aborted { flow: 41 })
    );
    e.flow_ended(41);
    assert_eq!(e.live_flow_count(), 0);
}

/// §10.1: at ALE_AUTH_RECV_ACCEPT completion does not reauthorize: the data path awaits the
/// callout's re-injected packet.
#[test]
fn t_pend_1_recv_accept_completion_awaits_reinjection() {
    let h = Harness::new();
    let sl = h.sublayer("pend", 1);
    let accept = layers::ALE_AUTH_RECV_ACCEPT_V4;
    let (c, log) = pender(ActionType::PERMIT);
    h.callout_filter(accept, sl, 1, ActionType::CALLOUT_TERMINATING, &c);
    h.classify_meta(accept, TCP_TEMPL, &pend_meta(&h));
    let ctx = log.lock().unwrap()[0].expect("pend at RECV_ACCEPT");
    h.engine().poll_pend_event();
    assert_eq!(h.engine().complete_operation(ctx, None), Status::SUCCESS);
    assert!(matches!(
        h.engine().poll_pend_event(),
        Some(PendEvent::OperationCompleted {
            next: AfterCompletion::AwaitReinjection,
            ..
        })
    ));
}

/// §5.3 with §10.1/§10.2: unregistering a callout completes what it pended and never completed —
/// its ALE operation (the data path is asked to reauthorize, and with the callout gone its
/// TERMINATING filter blocks, §5.4) and its pended classify (completed with NULL: reauthorized) —
/// and releases the classify handles it still held. Its own late completion is refused.
#[test]
fn unregister_completes_the_callouts_pended_operations_and_classifies() {
    let h = Harness::new();
    let sl = h.sublayer("pend", 1);
    let (c, log) = pender(ActionType::PERMIT);
    let (_, connect_callout) =
        h.callout_filter(CONNECT, sl, 1, ActionType::CALLOUT_TERMINATING, &c);
    h.classify_meta(CONNECT, TCP_TEMPL, &pend_meta(&h));
    let ctx = log.lock().unwrap()[0].expect("pended");
    // A second callout pends a classify at ENDPOINT_CLOSURE and keeps an extra handle reference.
    let closure = layers::ALE_ENDPOINT_CLOSURE_V4;
    let kept: Arc<Mutex<Vec<ClassifyHandleT>>> = Arc::default();
    let k2 = kept.clone();
    let c2 = ScriptedCallout::new(move |call, out| {
        let ch = call.ctx.acquire_classify_handle();
        let _extra = call.ctx.acquire_classify_handle();
        assert_eq!(
            call.ctx
                .engine()
                .pend_classify(ch, call.filter.filter_id(), out),
            Status::SUCCESS
        );
        k2.lock().unwrap().push(ch);
    })
    .build();
    let (_, closure_callout) =
        h.callout_filter(closure, sl, 2, ActionType::CALLOUT_TERMINATING, &c2);
    h.classify(closure, TCP_TEMPL);
    while h.engine().poll_pend_event().is_some() {}
    assert_eq!(h.engine().classify_handle_count(), 2);

    assert_eq!(h.unregister(connect_callout), Status::SUCCESS);
    let Some(PendEvent::OperationCompleted { context, next, .. }) = h.engine().poll_pend_event()
    else {
        panic!("the pended operation is completed by unregister");
    };
    assert_eq!(context, ctx);
    assert!(matches!(next, AfterCompletion::Reauthorize { layer, .. } if layer == CONNECT));
    assert!(!h.engine().is_operation_pending(ctx));
    assert_eq!(
        h.engine().complete_operation(ctx, None),
        Status::FWP_NOT_FOUND
    );
    // The data path's reauthorization: the callout is gone, its TERMINATING filter blocks.
    let v = flags_value(
        CONNECT,
        wfp_core::constants::ConditionFlags::IS_REAUTHORIZE.0,
    );
    let (r, _) = h.classify_meta(CONNECT, v, &Metadata::default());
    assert_eq!(Verdict::of(&r), Block(Hard));

    assert_eq!(h.unregister(closure_callout), Status::SUCCESS);
    let ch = kept.lock().unwrap()[0];
    assert!(matches!(
        h.engine().poll_pend_event(),
        Some(PendEvent::ClassifyCompleted { handle, decision: None, .. }) if handle == ch
    ));
    assert_eq!(
        h.engine().classify_handle_count(),
        0,
        "both references dropped"
    );
    assert_eq!(
        h.engine().complete_classify(ch, None),
        Status::FWP_NOT_FOUND
    );
    assert_eq!(
        h.engine().release_classify_handle(ch),
        Status::FWP_NOT_FOUND
    );
    let st = h.engine().pend_stats();
    assert_eq!((st.operations_completed, st.classifies_completed), (1, 1));
    assert_eq!(st.handles_acquired, st.handles_freed);
    assert!(h.engine().poll_pend_event().is_none());
}
