//! §14.1 Arbitration (T-ARB-1 … T-ARB-16), at the engine. The "shim default maps NONE_NO_MATCH to
//! PERMIT" half of T-ARB-10 and the "not indicated at the discard layer" half of T-ARB-15 belong to
//! the data paths (`wfp-shim`); here the engine's side is checked.

use std::sync::atomic::Ordering;

use wfp_core::{EngineOptions, NetEventKind};
use wfp_testkit::prelude::*;

const IIS: &str = "\\device\\harddiskvolume1\\inetpub\\iis.exe";

fn any_tcp() -> TransportV4 {
    TCP_TEMPL
}

/// The ALE_AUTH_RECV_ACCEPT_V4 values of T-ARB-2: IIS.exe accepting on local port 80.
fn iis_port_80() -> Vec<Value> {
    values(
        layers::ALE_AUTH_RECV_ACCEPT_V4,
        &[
            ("ALE_APP_ID", Value::blob_from_str(IIS)),
            ("IP_LOCAL_PORT", Value::Uint16(80)),
            ("IP_PROTOCOL", Value::Uint8(6)),
        ],
    )
}

/// The T-ARB-2 … T-ARB-4 setup: FW1 (highest) `app == IIS.exe -> PERMIT` (hard when `hard`), FW2
/// `local_port == 80 -> <fw2>`, lowest `* -> CALLOUT_INSPECTION log_callout` (CONTINUE). Returns
/// (FW1 filter, FW2 filter, log callout).
fn figure_setup(
    h: &Harness,
    hard: bool,
    fw2: impl FnOnce(&Harness, Guid) -> FilterId,
) -> (FilterId, FilterId, std::sync::Arc<ScriptedCallout>) {
    let layer = layers::ALE_AUTH_RECV_ACCEPT_V4;
    let fw1 = h.sublayer("FW1", 300);
    let fw2_sl = h.sublayer("FW2", 200);
    let lowest = h.sublayer("lowest", 100);
    let mut b = h
        .build(layer, ActionType::PERMIT)
        .sublayer(fw1)
        .weight(10)
        .when("ALE_APP_ID", Value::blob_from_str(IIS));
    if hard {
        b = b.flags(FilterFlags::CLEAR_ACTION_RIGHT);
    }
    let permit = h.add_ok(b);
    let fw2_filter = fw2(h, fw2_sl);
    let log = ScriptedCallout::behaving(Behaviour::Continue).build();
    h.callout_filter(layer, lowest, 1, ActionType::CALLOUT_INSPECTION, &log);
    (permit, fw2_filter, log)
}

fn static_port_80_block(h: &Harness, sublayer: Guid) -> FilterId {
    h.add_ok(
        h.build(layers::ALE_AUTH_RECV_ACCEPT_V4, ActionType::BLOCK)
            .sublayer(sublayer)
            .weight(10)
            .when("IP_LOCAL_PORT", Value::Uint16(80)),
    )
}

/// §14.1 T-ARB-1 (SDK figure, Inbound Transport layer): an inspection callout continues, the
/// lower-weight PERMIT of the same sublayer decides.
#[test]
fn t_arb_1_inspection_continue_then_permit_in_low_sublayer() {
    let h = Harness::new();
    let layer = layers::INBOUND_TRANSPORT_V4;
    let high = h.sublayer("A", 200);
    let low = h.sublayer("B", 100);
    let a = h.filter(layer, high, 1, ActionType::PERMIT);
    let ids = ScriptedCallout::behaving(Behaviour::Continue).build();
    let (ids_filter, _) = h.callout_filter(layer, low, 20, ActionType::CALLOUT_INSPECTION, &ids);
    let b_permit = h.filter(layer, low, 10, ActionType::PERMIT);

    let (r, t) = classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => Permit(Soft), by b_permit);
    assert_eq!(ids.invocation_count(), 1);
    let inv = &ids.invocations()[0];
    assert_eq!(inv.filter_id, ids_filter);
    assert!(inv.had_write_right(), "soft permit leaves the right set");
    assert_eq!(inv.preset, ActionType::PERMIT);
    let order: Vec<FilterId> = t.steps.iter().map(|s| s.filter_id).collect();
    assert_eq!(order, vec![a, ids_filter, b_permit]);
    assert!(!r.vetoed);
}

/// §14.1 T-ARB-2 (SDK figure, ALE recv/accept): soft PERMIT by FW1, hard static BLOCK by FW2,
/// log callout still invoked — without FWPS_RIGHT_ACTION_WRITE (§7.4).
#[test]
fn t_arb_2_static_block_overrides_soft_permit_and_log_callout_still_runs() {
    let h = Harness::new();
    let (_, block, log) = figure_setup(&h, false, static_port_80_block);
    let (r, _) = h.expect(layers::ALE_AUTH_RECV_ACCEPT_V4, iis_port_80(), Block(Hard));
    assert_eq!(r.deciding_filter, Some(block));
    assert_eq!(log.invocation_count(), 1);
    let inv = &log.invocations()[0];
    assert!(!inv.had_write_right());
    assert_eq!(inv.preset, ActionType::BLOCK);
}

/// §14.1 T-ARB-3: with CLEAR_ACTION_RIGHT the FW1 permit is hard; a static block in a lower
/// sublayer cannot override it (§7.4 [I]: only callouts veto).
#[test]
fn t_arb_3_hard_permit_survives_lower_static_block() {
    let h = Harness::new();
    let (permit, block, log) = figure_setup(&h, true, static_port_80_block);
    let (r, t) = h.expect(layers::ALE_AUTH_RECV_ACCEPT_V4, iis_port_80(), Permit(Hard));
    assert_eq!(r.deciding_filter, Some(permit));
    assert!(!r.vetoed);
    let step = t.steps.iter().find(|s| s.filter_id == block).unwrap();
    assert_eq!(
        step.outcome,
        StepOutcome::Overridden {
            action: ActionType::BLOCK
        }
    );
    assert_eq!(log.invocation_count(), 1);
    assert!(!log.invocations()[0].had_write_right());
    assert_eq!(log.invocations()[0].preset, ActionType::PERMIT);
    assert!(h.engine().drain_net_events().is_empty());
}

/// §14.1 T-ARB-4 (§7.4 veto): FW2's terminating callout, called without the write right, writes
/// BLOCK over the hard permit: final BLOCK, a veto net event and the veto counter.
#[test]
fn t_arb_4_callout_veto_blocks_hard_permit() {
    let h = Harness::new();
    let mut vetoer = None;
    let (permit, fw2_filter, log) = figure_setup(&h, true, |h, sl| {
        let c = ScriptedCallout::behaving(Behaviour::Block).build();
        let (f, _) = h.callout_filter(
            layers::ALE_AUTH_RECV_ACCEPT_V4,
            sl,
            10,
            ActionType::CALLOUT_TERMINATING,
            &c,
        );
        vetoer = Some(c);
        f
    });
    let vetoer = vetoer.unwrap();
    let (r, _) = h.expect(layers::ALE_AUTH_RECV_ACCEPT_V4, iis_port_80(), Block(Hard));
    assert!(r.vetoed);
    assert_eq!(r.deciding_filter, Some(fw2_filter));
    let inv = vetoer.invocations();
    assert_eq!(inv.len(), 1);
    assert!(!inv[0].had_write_right());
    assert_eq!(inv[0].preset, ActionType::PERMIT);
    assert_eq!(inv[0].result, Some(ActionType::BLOCK));
    // Lower sublayers still run after the veto.
    assert_eq!(log.invocation_count(), 1);

    let events = h.engine().drain_net_events();
    let vetoes: Vec<_> = events
        .iter()
        .filter(|e| e.kind == NetEventKind::Veto)
        .collect();
    assert_eq!(vetoes.len(), 1, "{events:?}");
    assert_eq!(vetoes[0].filter_id, Some(fw2_filter));
    assert_eq!(vetoes[0].overridden_filter_id, Some(permit));
    assert_eq!(vetoes[0].layer, layers::ALE_AUTH_RECV_ACCEPT_V4);
    assert_eq!(
        h.engine()
            .stats()
            .vetoes
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// §14.1 T-ARB-5 (§7.3): the first PERMIT ends the sublayer; the weight-5 BLOCK is never evaluated.
#[test]
fn t_arb_5_first_decision_ends_the_sublayer() {
    let h = Harness::new();
    let layer = layers::INBOUND_TRANSPORT_V4;
    let sl = h.sublayer("one", 1);
    let block = h.filter(layer, sl, 5, ActionType::BLOCK);
    let permit = h.filter(layer, sl, 10, ActionType::PERMIT);
    let (_, t) = classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => Permit(Soft), by permit);
    assert_eq!(t.steps.len(), 1);
    assert!(t.steps.iter().all(|s| s.filter_id != block));
}

/// §14.1 T-ARB-6 (§7.3): an inspection callout continues, the lower BLOCK decides.
#[test]
fn t_arb_6_inspection_continue_then_block() {
    let h = Harness::new();
    let layer = layers::INBOUND_TRANSPORT_V4;
    let sl = h.sublayer("one", 1);
    let insp = ScriptedCallout::behaving(Behaviour::Continue).build();
    let (insp_filter, _) = h.callout_filter(layer, sl, 10, ActionType::CALLOUT_INSPECTION, &insp);
    let block = h.filter(layer, sl, 5, ActionType::BLOCK);
    let (_, t) = classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => Block(Hard), by block);
    assert_eq!(insp.invocation_count(), 1);
    assert_eq!(t.steps[0].filter_id, insp_filter);
    assert_eq!(t.steps[0].outcome, StepOutcome::Continue);
}

/// §14.1 T-ARB-7 (§7.4 table): a callout BLOCK that keeps the write right is soft; a PERMIT in a
/// lower sublayer overrides it.
#[test]
fn t_arb_7_soft_callout_block_is_overridden_by_lower_permit() {
    let h = Harness::new();
    let layer = layers::INBOUND_TRANSPORT_V4;
    let high = h.sublayer("high", 2);
    let low = h.sublayer("low", 1);
    let soft = ScriptedCallout::behaving(Behaviour::BlockSoft).build();
    let (soft_filter, _) = h.callout_filter(layer, high, 1, ActionType::CALLOUT_TERMINATING, &soft);
    let permit = h.filter(layer, low, 1, ActionType::PERMIT);
    let (r, t) = classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => Permit(Soft), by permit);
    assert_eq!(
        t.steps[0].outcome,
        StepOutcome::Decided {
            action: ActionType::BLOCK,
            hardness: Hardness::Soft
        }
    );
    assert_eq!(t.steps[0].filter_id, soft_filter);
    assert!(soft.invocations()[0].had_write_right());
    assert!(!r.vetoed);
}

/// §14.1 T-ARB-8: a static (hard) BLOCK cannot be overridden, even by a hard PERMIT below.
#[test]
fn t_arb_8_hard_block_is_final() {
    let h = Harness::new();
    let layer = layers::INBOUND_TRANSPORT_V4;
    let high = h.sublayer("high", 2);
    let low = h.sublayer("low", 1);
    let block = h.filter(layer, high, 1, ActionType::BLOCK);
    h.add_ok(
        h.build(layer, ActionType::PERMIT)
            .sublayer(low)
            .weight(1)
            .flags(FilterFlags::CLEAR_ACTION_RIGHT),
    );
    classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => Block(Hard), by block);
}

/// §14.1 T-ARB-9: "block overrides permit": a soft permit above, a static block below.
#[test]
fn t_arb_9_block_overrides_soft_permit() {
    let h = Harness::new();
    let layer = layers::INBOUND_TRANSPORT_V4;
    let high = h.sublayer("high", 2);
    let low = h.sublayer("low", 1);
    h.filter(layer, high, 1, ActionType::PERMIT);
    let block = h.filter(layer, low, 1, ActionType::BLOCK);
    classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => Block(Hard), by block);
}

/// §14.1 T-ARB-10 (§7.6): no filters, or none matching → FWP_ACTION_NONE_NO_MATCH, no deciding
/// filter.
#[test]
fn t_arb_10_nothing_decides_is_none_no_match() {
    let h = Harness::new();
    let (r, t) = classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => NoMatch);
    assert_eq!(r.action, ActionType::NONE_NO_MATCH);
    assert_eq!(r.deciding_filter, None);
    assert!(t.steps.is_empty());

    let sl = h.sublayer("one", 1);
    h.add_ok(
        h.build(layers::INBOUND_TRANSPORT_V4, ActionType::BLOCK)
            .sublayer(sl)
            .when("IP_REMOTE_PORT", Value::Uint16(22)),
    );
    let (r, t) = classify!(h, at INBOUND_TRANSPORT_V4,
        TransportV4 { remote_port: 23, ..TCP_TEMPL } => NoMatch);
    assert_eq!(r.deciding_filter, None);
    assert_eq!(t.not_matched, 1);
}

/// §14.1 T-ARB-11 (§2.5 table): CONTINUE from a TERMINATING callout is coerced to BLOCK; the
/// weight-5 PERMIT is not evaluated. The callout left the right set, so the block is soft (§7.5).
#[test]
fn t_arb_11_terminating_continue_is_coerced_to_block() {
    let h = Harness::new();
    let layer = layers::INBOUND_TRANSPORT_V4;
    let sl = h.sublayer("one", 1);
    let (term, _) = h.callout_filter(
        layer,
        sl,
        10,
        ActionType::CALLOUT_TERMINATING,
        Behaviour::Continue,
    );
    let permit = h.filter(layer, sl, 5, ActionType::PERMIT);
    let (_, t) = classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => Block(Soft), by term);
    assert_eq!(t.steps.len(), 1);
    assert!(t.steps.iter().all(|s| s.filter_id != permit));
}

/// §14.1 T-ARB-12 (§2.5 table): an INSPECTION callout's BLOCK (rights intact) is coerced to
/// CONTINUE; the next PERMIT decides.
#[test]
fn t_arb_12_inspection_block_is_coerced_to_continue() {
    let h = Harness::new();
    let layer = layers::INBOUND_TRANSPORT_V4;
    let sl = h.sublayer("one", 1);
    let c = ScriptedCallout::behaving(Behaviour::BlockSoft).build();
    h.callout_filter(layer, sl, 10, ActionType::CALLOUT_INSPECTION, &c);
    let permit = h.filter(layer, sl, 5, ActionType::PERMIT);
    classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => Permit(Soft), by permit);
    let inv = c.invocations();
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0].result, Some(ActionType::BLOCK));
    assert_eq!(inv[0].rights_after, Some(Rights::ACTION_WRITE));
}

/// §14.1 T-ARB-13 (§2.5 table): an UNKNOWN callout may continue; the lower BLOCK decides.
#[test]
fn t_arb_13_unknown_callout_may_continue() {
    let h = Harness::new();
    let layer = layers::INBOUND_TRANSPORT_V4;
    let sl = h.sublayer("one", 1);
    let c = ScriptedCallout::behaving(Behaviour::Continue).build();
    h.callout_filter(layer, sl, 10, ActionType::CALLOUT_UNKNOWN, &c);
    let block = h.filter(layer, sl, 5, ActionType::BLOCK);
    classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => Block(Hard), by block);
    assert_eq!(c.invocation_count(), 1);
}

/// §14.1 T-ARB-14 (rule 2.6-2 + §7.4): a TERMINATING callout PERMIT on a CLEAR_ACTION_RIGHT filter
/// clears the right: hard permit; the lower static BLOCK cannot override it.
#[test]
fn t_arb_14_callout_permit_with_clear_action_right_is_hard() {
    let h = Harness::new();
    let layer = layers::INBOUND_TRANSPORT_V4;
    let high = h.sublayer("high", 2);
    let low = h.sublayer("low", 1);
    let c = ScriptedCallout::behaving(Behaviour::Permit).build();
    let (f, _) = h.callout_filter_with(layer, high, 1, ActionType::CALLOUT_TERMINATING, &c, |b| {
        b.flags(FilterFlags::CLEAR_ACTION_RIGHT)
    });
    h.filter(layer, low, 1, ActionType::BLOCK);
    classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => Permit(Hard), by f);
    let inv = c.invocations();
    assert!(inv[0]
        .filter_flags
        .contains(RtFilterFlags::CLEAR_ACTION_RIGHT));
    assert_eq!(inv[0].rights_after, Some(Rights::default()));
}

/// §14.1 T-ARB-15 (§2.5 ABSORB, §11.5): BLOCK + FWPS_CLASSIFY_OUT_FLAG_ABSORB at INBOUND_TRANSPORT:
/// the result is absorbed and no net event is produced — while the same BLOCK without ABSORB does
/// produce a CLASSIFY_DROP (so the silence is the ABSORB's doing), and a vetoing BLOCK + ABSORB
/// produces neither a veto nor a drop event.
#[test]
fn t_arb_15_block_with_absorb_is_silent() {
    for absorb in [false, true] {
        let h = Harness::new();
        let layer = layers::INBOUND_TRANSPORT_V4;
        let (f, _) = crate::s14_9_net_events::block_callout(&h, layer, absorb);
        let (r, _) = classify!(h, at INBOUND_TRANSPORT_V4, any_tcp() => Block(Hard), by f);
        assert_eq!(r.absorbed(), absorb);
        crate::s14_9_net_events::expect_drop_unless_absorbed(&h, absorb, f, layer);
    }

    // A callout veto of a hard permit, with ABSORB: silent as well (no 5153-style veto event).
    let h = Harness::new();
    let (_, vetoer, _) = figure_setup(&h, true, |h, sl| {
        let c = ScriptedCallout::forcing(ActionType::BLOCK, true, ClassifyOutFlags::ABSORB).build();
        h.callout_filter(
            layers::ALE_AUTH_RECV_ACCEPT_V4,
            sl,
            10,
            ActionType::CALLOUT_TERMINATING,
            &c,
        )
        .0
    });
    let (r, _) = h.expect(layers::ALE_AUTH_RECV_ACCEPT_V4, iis_port_80(), Block(Hard));
    assert!(r.vetoed && r.absorbed());
    assert_eq!(r.deciding_filter, Some(vetoer));
    assert_eq!(h.engine().stats().vetoes.load(Ordering::Relaxed), 1);
    let events = h.engine().drain_net_events();
    assert!(events.is_empty(), "{events:?}");
}

/// §14.1 T-ARB-16 (§7.4 "no cross-layer arbitration"): a hard permit at ALE_AUTH_CONNECT does not
/// stop a static block at OUTBOUND_TRANSPORT.
#[test]
fn t_arb_16_no_cross_layer_arbitration() {
    let h = Harness::new();
    let sl = h.sublayer("one", 1);
    let permit = h.add_ok(
        h.build(layers::ALE_AUTH_CONNECT_V4, ActionType::PERMIT)
            .sublayer(sl)
            .flags(FilterFlags::CLEAR_ACTION_RIGHT),
    );
    let block = h.filter(layers::OUTBOUND_TRANSPORT_V4, sl, 1, ActionType::BLOCK);
    let pkt = TransportV4 {
        remote_port: 443,
        ..TCP_TEMPL
    };
    classify!(h, at ALE_AUTH_CONNECT_V4, pkt => Permit(Hard), by permit);
    classify!(h, at OUTBOUND_TRANSPORT_V4, pkt => Block(Hard), by block);
}

/// Brief decision 1 / §13.7: with the engine's static-veto switch on, a *static* BLOCK in a lower
/// sublayer vetoes a hard PERMIT too (off by default: T-ARB-3). An unregistered callout's filter,
/// acting as a static block, still never vetoes (brief decision 4).
#[test]
fn decision_1_static_veto_switch() {
    let h = Harness::with_options(EngineOptions {
        static_veto: true,
        ..EngineOptions::default()
    });
    let (permit, block, _) = figure_setup(&h, true, static_port_80_block);
    let (r, _) = h.expect(layers::ALE_AUTH_RECV_ACCEPT_V4, iis_port_80(), Block(Hard));
    assert!(r.vetoed);
    assert_eq!(r.deciding_filter, Some(block));
    let events = h.engine().drain_net_events();
    // The veto, then the drop it caused (§11.5).
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].kind, NetEventKind::Veto);
    assert_eq!(events[0].overridden_filter_id, Some(permit));
    assert_eq!(events[1].kind, NetEventKind::ClassifyDrop);
    assert_eq!(events[1].filter_id, Some(block));

    let h = Harness::with_options(EngineOptions {
        static_veto: true,
        ..EngineOptions::default()
    });
    let (permit, _, _) = figure_setup(&h, true, |h, sl| {
        h.callout_filter(
            layers::ALE_AUTH_RECV_ACCEPT_V4,
            sl,
            10,
            ActionType::CALLOUT_TERMINATING,
            wfp_testkit::CalloutImpl::Unregistered,
        )
        .0
    });
    let (r, _) = h.expect(layers::ALE_AUTH_RECV_ACCEPT_V4, iis_port_80(), Permit(Hard));
    assert_eq!(r.deciding_filter, Some(permit));
    assert!(!r.vetoed);
}
