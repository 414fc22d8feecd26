//! §14.6 Classify contract and rights: T-CL-1, T-CL-2, T-CL-3, T-CL-5 at the engine. T-CL-4
//! (injection state), T-CL-6 (ALE_CLASSIFY_REQUIRED), T-CL-7/8 (fragments) need the data paths and
//! are `wfp-shim` tests.

use wfp_testkit::prelude::*;

const T: LayerId = layers::INBOUND_TRANSPORT_V4;

/// §14.6 T-CL-1 (= T-ARB-4, §2.6-1): invoked without WRITE over a hard PERMIT, the callout writes
/// BLOCK: a veto.
#[test]
fn t_cl_1_block_without_right_over_hard_permit_is_veto() {
    let h = Harness::new();
    let high = h.sublayer("high", 2);
    let low = h.sublayer("low", 1);
    let permit = h.add_ok(
        h.build(T, ActionType::PERMIT)
            .sublayer(high)
            .flags(FilterFlags::CLEAR_ACTION_RIGHT),
    );
    let c = ScriptedCallout::forcing(ActionType::BLOCK, false, ClassifyOutFlags::default()).build();
    let (f, _) = h.callout_filter(T, low, 1, ActionType::CALLOUT_TERMINATING, &c);
    let (r, t) = classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Hard), by f);
    assert!(r.vetoed);
    assert_eq!(t.steps[0].filter_id, permit);
    assert_eq!(t.steps[1].outcome, StepOutcome::Veto);
    let inv = c.invocations();
    assert_eq!(inv.len(), 1);
    assert!(!inv[0].had_write_right());
    assert_eq!(inv[0].preset, ActionType::PERMIT);
}

/// §14.6 T-CL-2 (§7.4 [SDK]): invoked without WRITE over a hard BLOCK, the callout writes PERMIT:
/// ignored, the block stands (and its filter stays the deciding one).
#[test]
fn t_cl_2_permit_without_right_over_block_is_ignored() {
    let h = Harness::new();
    let high = h.sublayer("high", 2);
    let low = h.sublayer("low", 1);
    let block = h.filter(T, high, 1, ActionType::BLOCK);
    let c = ScriptedCallout::forcing(ActionType::PERMIT, true, ClassifyOutFlags::default()).build();
    let (f, _) = h.callout_filter(T, low, 1, ActionType::CALLOUT_TERMINATING, &c);
    let (r, t) = classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Hard), by block);
    assert!(!r.vetoed);
    assert_eq!(t.steps[1].filter_id, f);
    assert_eq!(
        t.steps[1].outcome,
        StepOutcome::NoRight {
            action: ActionType::PERMIT
        }
    );
    let inv = c.invocations();
    assert!(!inv[0].had_write_right());
    assert_eq!(inv[0].preset, ActionType::BLOCK);
}

/// §14.6 T-CL-3 (§7.4): a callout BLOCK that clears the right is hard; a lower static PERMIT with
/// CLEAR_ACTION_RIGHT cannot override it.
#[test]
fn t_cl_3_hard_callout_block_beats_lower_hard_permit() {
    let h = Harness::new();
    let high = h.sublayer("high", 2);
    let low = h.sublayer("low", 1);
    let c = ScriptedCallout::behaving(Behaviour::Block).build();
    let (f, _) = h.callout_filter(T, high, 1, ActionType::CALLOUT_TERMINATING, &c);
    let permit = h.add_ok(
        h.build(T, ActionType::PERMIT)
            .sublayer(low)
            .flags(FilterFlags::CLEAR_ACTION_RIGHT),
    );
    let (r, t) = classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Hard), by f);
    assert!(!r.vetoed);
    assert_eq!(t.steps[1].filter_id, permit);
    assert_eq!(
        t.steps[1].outcome,
        StepOutcome::Overridden {
            action: ActionType::PERMIT
        }
    );
    assert!(c.invocations()[0].had_write_right());
    assert_eq!(c.invocations()[0].rights_after, Some(Rights::default()));
}

/// §14.6 T-CL-5 (§2.5, §2.6-6, §11.5): BLOCK + ABSORB at ALE_FLOW_ESTABLISHED is allowed
/// (discouraged): the engine returns an absorbed hard BLOCK and records no net event (tearing the
/// connection down is the shim's part); without ABSORB the same BLOCK records a CLASSIFY_DROP for
/// the flow.
#[test]
fn t_cl_5_block_absorb_at_flow_established_is_allowed() {
    for absorb in [true, false] {
        let h = Harness::new();
        let layer = layers::ALE_FLOW_ESTABLISHED_V4;
        let (f, c) = crate::s14_9_net_events::block_callout(&h, layer, absorb);
        let (r, _) = h.classify_flow(layer, TCP_TEMPL, 31);
        assert_eq!(Verdict::of(&r), Block(Hard));
        assert_eq!(r.deciding_filter, Some(f));
        assert_eq!(r.absorbed(), absorb);
        assert_eq!(c.invocations()[0].flow_handle, Some(31));
        let events = crate::s14_9_net_events::expect_drop_unless_absorbed(&h, absorb, f, layer);
        if !absorb {
            assert_eq!(events[0].flow, Some(31));
        }
    }
}
