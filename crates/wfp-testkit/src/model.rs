//! The naive reference arbiter: the test oracle for `wfp-core`'s classifier.
//!
//! It is written from the specification, not from `wfp-core/src/classify.rs`: it sorts, scans and
//! *simulates* each callout's `FWPS_CLASSIFY_OUT0` literally, then applies the rules below. It knows
//! nothing about conditions (each filter says whether it [`ModelFilter::matches`] the packet) and
//! nothing about layers, flows or streams — only arbitration.
//!
//! Rules, with their sources:
//! - Order (brief decision 2, §7.1): sublayers by weight descending, ties by creation order
//!   ascending; filters of a sublayer by effective weight descending, ties by filter id ascending.
//!   Only matching filters are considered.
//! - Sublayers (§7.3, brief decision 1): the first PERMIT/BLOCK ends a sublayer — also when a hard
//!   decision makes the engine ignore it; every sublayer is evaluated.
//! - Hardness (§7.4): static BLOCK is hard; static PERMIT is soft unless CLEAR_ACTION_RIGHT; a
//!   callout's result is hard when it cleared FWPS_RIGHT_ACTION_WRITE.
//! - Callouts with the write right (§2.5, brief decision 11): `actionType` is preset to the current
//!   decision (CONTINUE before any), the callout runs, its result is coerced by the filter's action
//!   type — TERMINATING: PERMIT stays, anything else is BLOCK; INSPECTION: always CONTINUE; UNKNOWN:
//!   PERMIT/BLOCK stay, anything else is CONTINUE. CONTINUE means "next filter".
//! - Callouts without the write right (brief decision 11, §7.4): `actionType` is preset to the
//!   current (hard) decision. Writing BLOCK over a hard PERMIT is a veto — unless the filter is an
//!   INSPECTION filter, whose results always coerce to CONTINUE (§2.5). Anything else contributes
//!   nothing and the sublayer goes on.
//! - Static filters never veto (brief decision 1, static veto off).
//! - Unregistered callouts (brief decision 4, §5.4): TERMINATING/UNKNOWN act as a static hard BLOCK,
//!   or as a static PERMIT (soft unless CLEAR_ACTION_RIGHT) with PERMIT_IF_CALLOUT_UNREGISTERED;
//!   INSPECTION filters are skipped. A panicking callout is treated the same way.
//! - The behaviours of the `wfp.test.*` callouts are the brief's table ("Policy-testing callouts").

use std::cmp::Reverse;

use wfp_core::{ActionType, ClassifyResult, Hardness, StepOutcome, Trace};

/// A callout filter's action type (`FWP_ACTION_CALLOUT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CalloutType {
    /// FWP_ACTION_CALLOUT_TERMINATING.
    Terminating,
    /// FWP_ACTION_CALLOUT_INSPECTION.
    Inspection,
    /// FWP_ACTION_CALLOUT_UNKNOWN.
    Unknown,
}

impl CalloutType {
    /// The engine's action type.
    pub fn action_type(self) -> ActionType {
        match self {
            Self::Terminating => ActionType::CALLOUT_TERMINATING,
            Self::Inspection => ActionType::CALLOUT_INSPECTION,
            Self::Unknown => ActionType::CALLOUT_UNKNOWN,
        }
    }
}

/// What stands behind a callout filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CalloutBehaviour {
    /// `wfp.test.permit`.
    Permit,
    /// `wfp.test.block`.
    Block,
    /// `wfp.test.block-soft`.
    BlockSoft,
    /// `wfp.test.continue`.
    Continue,
    /// The management callout exists but nothing is registered.
    Unregistered,
    /// A registered callout whose classifyFn panics.
    Panics,
}

/// A filter's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelAction {
    /// Static FWP_ACTION_PERMIT.
    Permit,
    /// Static FWP_ACTION_BLOCK.
    Block,
    /// A callout filter.
    Callout {
        /// The filter's callout action type.
        kind: CalloutType,
        /// The callout behind it.
        behaviour: CalloutBehaviour,
    },
}

/// One filter as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFilter {
    /// Filter id (ties between equal weights go to the lower id).
    pub id: u64,
    /// Effective weight.
    pub weight: u64,
    /// Whether its conditions match the packet being classified.
    pub matches: bool,
    /// Its action.
    pub action: ModelAction,
    /// FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT.
    pub clear_action_right: bool,
    /// FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED.
    pub permit_if_unregistered: bool,
}

/// One sublayer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSublayer {
    /// Weight (higher first).
    pub weight: u16,
    /// Creation order (ties between equal weights go to the older sublayer).
    pub order: u64,
    /// Its filters, in any order.
    pub filters: Vec<ModelFilter>,
}

/// A layer's policy: the sublayers, in any order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelPolicy {
    /// The sublayers.
    pub sublayers: Vec<ModelSublayer>,
}

/// The final action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelAnswer {
    /// No filter decided (FWP_ACTION_NONE_NO_MATCH).
    NoMatch,
    /// PERMIT.
    Permit {
        /// Write right cleared.
        hard: bool,
    },
    /// BLOCK.
    Block {
        /// Write right cleared.
        hard: bool,
    },
}

/// One matching filter the scan reached, with the write right as it stood before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelStep {
    /// The filter.
    pub filter: u64,
    /// FWPS_RIGHT_ACTION_WRITE before this filter.
    pub write_right_before: bool,
}

/// The model's answer for one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelOutcome {
    /// Final action and hardness.
    pub answer: ModelAnswer,
    /// The filter whose decision stands.
    pub deciding: Option<u64>,
    /// The final decision is a veto of a hard PERMIT.
    pub vetoed: bool,
    /// Every matching filter reached, in evaluation order.
    pub steps: Vec<ModelStep>,
}

impl ModelOutcome {
    /// The same shape read off the engine's result and trace, for `assert_eq!` against the model.
    pub fn observe(result: &ClassifyResult, trace: &Trace) -> Self {
        let hard = result.hardness == Hardness::Hard;
        let answer = match result.action {
            ActionType::PERMIT => ModelAnswer::Permit { hard },
            ActionType::BLOCK => ModelAnswer::Block { hard },
            _ => ModelAnswer::NoMatch,
        };
        Self {
            answer,
            deciding: result.deciding_filter.map(|f| f.0),
            vetoed: result.vetoed,
            steps: trace
                .steps
                .iter()
                .filter(|s| !matches!(s.outcome, StepOutcome::StreamAction(_)))
                .map(|s| ModelStep {
                    filter: s.filter_id.0,
                    write_right_before: s.write_right_before,
                })
                .collect(),
        }
    }
}

/// What the simulated `FWPS_CLASSIFY_OUT0` looks like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Written {
    Permit,
    Block,
    Continue,
}

/// What one filter contributes.
enum Says {
    /// No decision: go to the next filter of the sublayer.
    Pass,
    /// PERMIT (`true`) or BLOCK (`false`), leaving the write right set (`keeps_right`) or not.
    /// Taken only while the right is set; otherwise ignored. Either way the sublayer ends.
    Decides { permit: bool, keeps_right: bool },
    /// A callout BLOCK over a hard PERMIT.
    Vetoes,
}

/// Arbitrates one packet over `policy`.
pub fn arbitrate(policy: &ModelPolicy) -> ModelOutcome {
    let mut sublayers: Vec<&ModelSublayer> = policy.sublayers.iter().collect();
    sublayers.sort_by_key(|s| (Reverse(s.weight), s.order));

    // `None` = no decision yet; `Some(true)` = PERMIT; `Some(false)` = BLOCK.
    let mut current: Option<bool> = None;
    let mut write_right = true;
    let mut deciding = None;
    let mut vetoed = false;
    let mut steps = Vec::new();

    for sublayer in sublayers {
        let mut filters: Vec<&ModelFilter> =
            sublayer.filters.iter().filter(|f| f.matches).collect();
        filters.sort_by_key(|f| (Reverse(f.weight), f.id));
        for f in filters {
            steps.push(ModelStep {
                filter: f.id,
                write_right_before: write_right,
            });
            match what_filter_says(f, current, write_right) {
                Says::Pass => {}
                Says::Decides {
                    permit,
                    keeps_right,
                } => {
                    if write_right {
                        current = Some(permit);
                        write_right = keeps_right;
                        deciding = Some(f.id);
                    }
                    break;
                }
                Says::Vetoes => {
                    current = Some(false);
                    write_right = false;
                    deciding = Some(f.id);
                    vetoed = true;
                    break;
                }
            }
        }
    }

    let answer = match current {
        None => ModelAnswer::NoMatch,
        Some(true) => ModelAnswer::Permit { hard: !write_right },
        Some(false) => ModelAnswer::Block { hard: !write_right },
    };
    ModelOutcome {
        answer,
        deciding,
        vetoed,
        steps,
    }
}

fn what_filter_says(f: &ModelFilter, current: Option<bool>, write_right: bool) -> Says {
    let (kind, behaviour) = match f.action {
        ModelAction::Permit => {
            return Says::Decides {
                permit: true,
                keeps_right: !f.clear_action_right,
            }
        }
        ModelAction::Block => {
            return Says::Decides {
                permit: false,
                keeps_right: false,
            }
        }
        ModelAction::Callout { kind, behaviour } => (kind, behaviour),
    };

    if matches!(
        behaviour,
        CalloutBehaviour::Unregistered | CalloutBehaviour::Panics
    ) {
        return match (kind, f.permit_if_unregistered) {
            (CalloutType::Inspection, _) => Says::Pass,
            (_, true) => Says::Decides {
                permit: true,
                keeps_right: !f.clear_action_right,
            },
            (_, false) => Says::Decides {
                permit: false,
                keeps_right: false,
            },
        };
    }

    // Simulate the callout on a fresh FWPS_CLASSIFY_OUT0.
    let preset = match current {
        None => Written::Continue,
        Some(true) => Written::Permit,
        Some(false) => Written::Block,
    };
    let (written, right_after) = run_test_callout(behaviour, preset, write_right, f);

    if write_right {
        let coerced = match (kind, written) {
            (CalloutType::Inspection, _) => None,
            (CalloutType::Terminating, Written::Permit) => Some(true),
            (CalloutType::Terminating, _) => Some(false),
            (CalloutType::Unknown, Written::Permit) => Some(true),
            (CalloutType::Unknown, Written::Block) => Some(false),
            (CalloutType::Unknown, Written::Continue) => None,
        };
        return match coerced {
            None => Says::Pass,
            Some(permit) => Says::Decides {
                permit,
                keeps_right: right_after,
            },
        };
    }

    // No write right: the current decision is hard. Only a BLOCK written over a PERMIT counts.
    let wrote_block = written == Written::Block;
    let may_block = kind != CalloutType::Inspection;
    if wrote_block && may_block && current == Some(true) {
        Says::Vetoes
    } else {
        Says::Pass
    }
}

/// The `wfp.test.*` table from the brief: returns (`actionType`, write right) after the call.
fn run_test_callout(
    behaviour: CalloutBehaviour,
    preset: Written,
    write_right: bool,
    f: &ModelFilter,
) -> (Written, bool) {
    match (behaviour, write_right) {
        (CalloutBehaviour::Permit, true) => (Written::Permit, !f.clear_action_right),
        (CalloutBehaviour::Block, true) => (Written::Block, false),
        (CalloutBehaviour::Block, false) => (Written::Block, false),
        (CalloutBehaviour::BlockSoft, true) => (Written::Block, true),
        (CalloutBehaviour::Continue, r) => (Written::Continue, r),
        (CalloutBehaviour::Permit | CalloutBehaviour::BlockSoft, r) => (preset, r),
        (CalloutBehaviour::Unregistered | CalloutBehaviour::Panics, r) => (preset, r),
    }
}

/// proptest strategies for the model's enums.
pub mod strategy {
    use proptest::prelude::*;

    use super::{CalloutBehaviour, CalloutType, ModelAction};

    /// Any callout action type.
    pub fn callout_type() -> impl Strategy<Value = CalloutType> {
        prop_oneof![
            Just(CalloutType::Terminating),
            Just(CalloutType::Inspection),
            Just(CalloutType::Unknown),
        ]
    }

    /// Any callout behaviour, the four `wfp.test.*` ones more often.
    pub fn callout_behaviour() -> impl Strategy<Value = CalloutBehaviour> {
        prop_oneof![
            3 => Just(CalloutBehaviour::Permit),
            3 => Just(CalloutBehaviour::Block),
            3 => Just(CalloutBehaviour::BlockSoft),
            3 => Just(CalloutBehaviour::Continue),
            2 => Just(CalloutBehaviour::Unregistered),
            1 => Just(CalloutBehaviour::Panics),
        ]
    }

    /// Any filter action: static PERMIT/BLOCK or a callout.
    pub fn model_action() -> impl Strategy<Value = ModelAction> {
        prop_oneof![
            2 => Just(ModelAction::Permit),
            2 => Just(ModelAction::Block),
            5 => (callout_type(), callout_behaviour())
                .prop_map(|(kind, behaviour)| ModelAction::Callout { kind, behaviour }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: u64, weight: u64, action: ModelAction) -> ModelFilter {
        ModelFilter {
            id,
            weight,
            matches: true,
            action,
            clear_action_right: false,
            permit_if_unregistered: false,
        }
    }

    fn callout(kind: CalloutType, behaviour: CalloutBehaviour) -> ModelAction {
        ModelAction::Callout { kind, behaviour }
    }

    fn sl(weight: u16, order: u64, filters: Vec<ModelFilter>) -> ModelSublayer {
        ModelSublayer {
            weight,
            order,
            filters,
        }
    }

    #[test]
    fn empty_policy_is_no_match() {
        let out = arbitrate(&ModelPolicy::default());
        assert_eq!(out.answer, ModelAnswer::NoMatch);
        assert_eq!(out.deciding, None);
    }

    #[test]
    fn static_block_beats_soft_permit_across_sublayers() {
        let p = ModelPolicy {
            sublayers: vec![
                sl(1, 1, vec![f(2, 0, ModelAction::Block)]),
                sl(2, 0, vec![f(1, 0, ModelAction::Permit)]),
            ],
        };
        let out = arbitrate(&p);
        assert_eq!(out.answer, ModelAnswer::Block { hard: true });
        assert_eq!(out.deciding, Some(2));
    }

    #[test]
    fn callout_block_vetoes_hard_permit() {
        let mut hard_permit = f(1, 0, ModelAction::Permit);
        hard_permit.clear_action_right = true;
        let p = ModelPolicy {
            sublayers: vec![
                sl(2, 0, vec![hard_permit]),
                sl(
                    1,
                    1,
                    vec![f(
                        2,
                        0,
                        callout(CalloutType::Terminating, CalloutBehaviour::Block),
                    )],
                ),
            ],
        };
        let out = arbitrate(&p);
        assert_eq!(out.answer, ModelAnswer::Block { hard: true });
        assert!(out.vetoed);
        assert_eq!(out.deciding, Some(2));
    }

    #[test]
    fn ties_go_to_lower_id_and_older_sublayer() {
        let p = ModelPolicy {
            sublayers: vec![
                sl(1, 5, vec![f(9, 3, ModelAction::Block)]),
                sl(
                    1,
                    2,
                    vec![f(4, 3, ModelAction::Permit), f(3, 3, ModelAction::Block)],
                ),
            ],
        };
        let out = arbitrate(&p);
        assert_eq!(
            out.steps.iter().map(|s| s.filter).collect::<Vec<_>>(),
            vec![3, 9]
        );
        assert_eq!(out.deciding, Some(3));
    }

    #[test]
    fn unregistered_inspection_is_skipped_and_terminating_blocks() {
        let p = ModelPolicy {
            sublayers: vec![sl(
                1,
                0,
                vec![
                    f(
                        1,
                        9,
                        callout(CalloutType::Inspection, CalloutBehaviour::Unregistered),
                    ),
                    f(
                        2,
                        5,
                        callout(CalloutType::Terminating, CalloutBehaviour::Panics),
                    ),
                    f(3, 1, ModelAction::Permit),
                ],
            )],
        };
        let out = arbitrate(&p);
        assert_eq!(out.answer, ModelAnswer::Block { hard: true });
        assert_eq!(out.deciding, Some(2));
        assert_eq!(out.steps.len(), 2);
    }
}
