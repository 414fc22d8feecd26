//! §2.5 / §2.6 callout contract violations as net events (brief decision 4): the engine applies
//! its documented coercion and records a CALLOUT_CONTRACT event naming the filter, the callout and
//! the broken rule, and counts it.

use std::sync::atomic::Ordering;

use wfp_core::engine::{ContractViolation, NetEventDetail, NetEventKind};
use wfp_testkit::prelude::*;

const T: LayerId = layers::INBOUND_TRANSPORT_V4;

/// The CALLOUT_CONTRACT events recorded so far (other kinds dropped), as (filter, callout, rule).
fn contract_events(h: &Harness) -> Vec<(Option<FilterId>, Option<CalloutId>, ContractViolation)> {
    h.engine()
        .drain_net_events()
        .into_iter()
        .filter(|e| e.kind == NetEventKind::CalloutContract)
        .map(|e| match e.detail {
            Some(NetEventDetail::CalloutContract(v)) => (e.filter_id, e.callout_id, v),
            other => panic!("CALLOUT_CONTRACT without its detail: {other:?}"),
        })
        .collect()
}

/// §2.6 rule 1 (T-CL-2 setting): without the write right the callout writes PERMIT over a hard
/// BLOCK — ignored, and reported as WRITE_WITHOUT_RIGHT.
#[test]
fn contract_write_without_right_is_reported() {
    let h = Harness::new();
    let high = h.sublayer("high", 2);
    let low = h.sublayer("low", 1);
    let block = h.filter(T, high, 1, ActionType::BLOCK);
    let c = ScriptedCallout::forcing(ActionType::PERMIT, true, ClassifyOutFlags::default()).build();
    let (f, id) = h.callout_filter(T, low, 1, ActionType::CALLOUT_TERMINATING, &c);
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Hard), by block);
    assert_eq!(
        contract_events(&h),
        vec![(
            Some(f),
            Some(id),
            ContractViolation::WriteWithoutRight {
                written: ActionType::PERMIT
            }
        )]
    );
    assert_eq!(
        h.engine()
            .stats()
            .contract_violations
            .load(Ordering::Relaxed),
        1
    );
}

/// §2.6 rule 1: the allowed write without the right — a BLOCK veto — is no violation.
#[test]
fn contract_veto_is_not_a_violation() {
    let h = Harness::new();
    let high = h.sublayer("high", 2);
    let low = h.sublayer("low", 1);
    h.add_ok(
        h.build(T, ActionType::PERMIT)
            .sublayer(high)
            .flags(FilterFlags::CLEAR_ACTION_RIGHT),
    );
    let c = ScriptedCallout::forcing(ActionType::BLOCK, false, ClassifyOutFlags::default()).build();
    let (f, _) = h.callout_filter(T, low, 1, ActionType::CALLOUT_TERMINATING, &c);
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Hard), by f);
    assert!(contract_events(&h).is_empty());
}

/// §2.5: a callout returning a CALLOUT_* action type — coerced by its TERMINATING filter to BLOCK,
/// reported as INVALID_ACTION_TYPE.
#[test]
fn contract_callout_action_type_returned_is_reported() {
    let h = Harness::new();
    let sl = h.sublayer("s", 1);
    let c = ScriptedCallout::forcing(
        ActionType::CALLOUT_TERMINATING,
        true,
        ClassifyOutFlags::default(),
    )
    .build();
    let (f, id) = h.callout_filter(T, sl, 1, ActionType::CALLOUT_TERMINATING, &c);
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Hard), by f);
    assert_eq!(
        contract_events(&h),
        vec![(
            Some(f),
            Some(id),
            ContractViolation::InvalidActionType {
                returned: ActionType::CALLOUT_TERMINATING
            }
        )]
    );
}

/// §2.6 rule 3: ABSORB belongs to a BLOCK; with PERMIT it is reported as ABSORB_WITHOUT_BLOCK.
#[test]
fn contract_absorb_without_block_is_reported() {
    let h = Harness::new();
    let sl = h.sublayer("s", 1);
    let c = ScriptedCallout::forcing(ActionType::PERMIT, true, ClassifyOutFlags::ABSORB).build();
    let (f, _) = h.callout_filter(T, sl, 1, ActionType::CALLOUT_TERMINATING, &c);
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Permit(Hard), by f);
    let got = contract_events(&h);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].2,
        ContractViolation::AbsorbWithoutBlock {
            returned: ActionType::PERMIT
        }
    );
}

/// §2.6 rule 2a: `wfp.test.block-soft` (BLOCK keeping the right) is reported as BLOCK_KEEPS_RIGHT;
/// the well-behaved `wfp.test.block` is not.
#[test]
fn contract_block_keeping_the_right_is_reported() {
    let h = Harness::new();
    let sl = h.sublayer("s", 1);
    let soft = ScriptedCallout::behaving(Behaviour::BlockSoft).build();
    let (f, _) = h.callout_filter(T, sl, 1, ActionType::CALLOUT_TERMINATING, &soft);
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Soft), by f);
    let got = contract_events(&h);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, Some(f));
    assert_eq!(got[0].2, ContractViolation::BlockKeepsRight);
    assert_eq!(got[0].2.name(), "BLOCK_KEEPS_RIGHT");

    let h = Harness::new();
    let sl = h.sublayer("s", 1);
    let hard = ScriptedCallout::behaving(Behaviour::Block).build();
    let (f, _) = h.callout_filter(T, sl, 1, ActionType::CALLOUT_TERMINATING, &hard);
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Hard), by f);
    assert!(contract_events(&h).is_empty());
}
