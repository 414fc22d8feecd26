//! # wfp-testkit — test DSL, scripted callouts and the reference arbiter
//!
//! Test support for the wfp-engine workspace (`publish = false`). It never ships in a product: it
//! panics freely on test-author mistakes (an unknown field name, a filter the engine refuses where a
//! test expected success), because a test that cannot be set up must fail loudly.
//!
//! What it holds:
//! - [`dsl`] — [`Harness`]: an `Arc<Engine>` plus one-line helpers to add sublayers, filters and
//!   callouts and to classify; packet templates ([`TransportV4`], [`TCP_TEMPL`], [`UDP_TEMPL`]) used
//!   with struct-update syntax; [`Verdict`] and the thin [`classify!`] macro.
//! - [`scripted`] — [`ScriptedCallout`]: a callout built from a closure that records every
//!   `classifyFn` invocation (rights, preset `actionType`, flow context, filter), every `notifyFn` and
//!   every `flowDeleteFn` call; [`PanickingCallout`]; [`Gate`] (hold a callout inside classify while
//!   another thread acts); [`quiet_panics`].
//! - [`model`] — the naive reference arbiter: a linear scan over sorted sublayers and filters,
//!   written from the specification (wfp-reference §7.5, §2.5, brief decisions 1, 2, 4, 11) and not
//!   from `wfp-core`'s classifier, used as the oracle of the property tests.
//!
//! ```text
//!   test ──► Harness ──► wfp_core::Engine ◄── ScriptedCallout / TestCallout / PanickingCallout
//!     │         │ classify(layer, values)            (records invocations, notifies, flow deletes)
//!     │         ▼
//!     │   (ClassifyResult, Trace) ──► ModelOutcome::observe ──┐
//!     │                                                       ├─► assert_eq!
//!     └─► ModelPolicy ──► model::arbitrate ──► ModelOutcome ──┘
//! ```
//!
//! The crate does no I/O and reads no clock; the only threads are the ones a test starts.

#![forbid(unsafe_code)]

pub mod dsl;
pub mod model;
pub mod scripted;

pub use dsl::{
    flow_meta, values, CalloutHandle, CalloutImpl, FilterBuilder, Harness, IntoValues, TransportV4,
    Verdict, TCP_TEMPL, UDP_TEMPL,
};
pub use scripted::{
    quiet_panics, Call, FlowDeletion, Gate, Invocation, Notification, PanickingCallout,
    ScriptedCallout, PANIC_MARKER,
};
pub use wfp_callouts::test::Behaviour;
/// Re-exported so the macros can name engine items.
pub use wfp_core;

/// The names most tests want: the harness, verdicts (`Permit(Hard)`, `Block(Soft)`, `NoMatch`) and
/// the engine's everyday types.
pub mod prelude {
    pub use crate::dsl::Verdict::{Block, NoMatch, Permit};
    pub use crate::{
        classify, flow_meta, values, Behaviour, CalloutHandle, CalloutImpl, FilterBuilder, Harness,
        IntoValues, ScriptedCallout, TransportV4, Verdict, TCP_TEMPL, UDP_TEMPL,
    };
    pub use wfp_core::catalogue::layers;
    pub use wfp_core::constants::{MetadataFields, NotifyType, RtFilterFlags};
    pub use wfp_core::Hardness::{Hard, Soft};
    pub use wfp_core::{
        ActionType, CalloutFlags, CalloutId, ClassifyOutFlags, ClassifyResult, ConditionValue,
        Engine, FilterFlags, FilterId, Guid, Hardness, LayerId, MatchType, Rights, Status,
        StepOutcome, Trace, Value,
    };
}
