//! Policy-testing callouts with fixed behaviour (brief "Interfaces users rely on"). Each follows the
//! callout contract of wfp-reference §2.6 except `wfp.test.block-soft`, which breaks rule 2.6-2 on
//! purpose so soft blocks can be tested.
//!
//! | name | with FWPS_RIGHT_ACTION_WRITE | without it |
//! |---|---|---|
//! | `wfp.test.permit` | PERMIT; clears the right if the filter has CLEAR_ACTION_RIGHT | returns unchanged |
//! | `wfp.test.block` | BLOCK and clears the right | writes BLOCK (a veto over a hard PERMIT) |
//! | `wfp.test.block-soft` | BLOCK, keeps the right | returns unchanged |
//! | `wfp.test.continue` | CONTINUE | CONTINUE |

use std::sync::Arc;

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::constants::RtFilterFlags;
use wfp_core::{ActionType, Callout, CalloutFlags, Guid, RtFilter};

use crate::{Builtin, Host};

/// Which fixed behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// `wfp.test.permit`.
    Permit,
    /// `wfp.test.block`.
    Block,
    /// `wfp.test.block-soft`.
    BlockSoft,
    /// `wfp.test.continue`.
    Continue,
}

/// A policy-testing callout.
#[derive(Debug)]
pub struct TestCallout(pub Behaviour);

impl Callout for TestCallout {
    fn classify(
        &self,
        _ctx: &ClassifyContext<'_>,
        _values: &IncomingValues<'_>,
        _meta: &Metadata,
        _layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        _flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let write = out.can_write();
        match (self.0, write) {
            (Behaviour::Permit, true) => {
                out.action_type = ActionType::PERMIT;
                if filter.flags().contains(RtFilterFlags::CLEAR_ACTION_RIGHT) {
                    out.clear_write();
                }
            }
            (Behaviour::Block, true) => {
                out.action_type = ActionType::BLOCK;
                out.clear_write();
            }
            (Behaviour::Block, false) => out.action_type = ActionType::BLOCK,
            (Behaviour::BlockSoft, true) => out.action_type = ActionType::BLOCK,
            (Behaviour::Continue, _) => out.action_type = ActionType::CONTINUE,
            (Behaviour::Permit | Behaviour::BlockSoft, false) => {}
        }
    }
}

fn permit(_host: &Host) -> Arc<dyn Callout> {
    Arc::new(TestCallout(Behaviour::Permit))
}
fn block(_host: &Host) -> Arc<dyn Callout> {
    Arc::new(TestCallout(Behaviour::Block))
}
fn block_soft(_host: &Host) -> Arc<dyn Callout> {
    Arc::new(TestCallout(Behaviour::BlockSoft))
}
fn cont(_host: &Host) -> Arc<dyn Callout> {
    Arc::new(TestCallout(Behaviour::Continue))
}

/// `wfp.test.permit`.
pub(crate) const PERMIT: Builtin = Builtin {
    name: "wfp.test.permit",
    key: Guid::from_str_const("57465001-0000-4000-8000-000000000001"),
    flags: CalloutFlags(0),
    flow_delete: false,
    description: "PERMIT with the write right (hard with CLEAR_ACTION_RIGHT); unchanged without it",
    make: permit,
};

/// `wfp.test.block`.
pub(crate) const BLOCK: Builtin = Builtin {
    name: "wfp.test.block",
    key: Guid::from_str_const("57465001-0000-4000-8000-000000000002"),
    flags: CalloutFlags(0),
    flow_delete: false,
    description:
        "BLOCK and clear the right; without the right writes BLOCK (veto over a hard PERMIT)",
    make: block,
};

/// `wfp.test.block-soft`.
pub(crate) const BLOCK_SOFT: Builtin = Builtin {
    name: "wfp.test.block-soft",
    key: Guid::from_str_const("57465001-0000-4000-8000-000000000003"),
    flags: CalloutFlags(0),
    flow_delete: false,
    description:
        "BLOCK keeping the write right (a contract violation, for tests); unchanged without it",
    make: block_soft,
};

/// `wfp.test.continue`.
pub(crate) const CONTINUE: Builtin = Builtin {
    name: "wfp.test.continue",
    key: Guid::from_str_const("57465001-0000-4000-8000-000000000004"),
    flags: CalloutFlags(0),
    flow_delete: false,
    description: "CONTINUE",
    make: cont,
};
