//! Design notes (documentation only). The full table of semantics decisions is in
//! `docs/semantics.md` at the repository root; the essentials:
//!
//! - **Arbitration** (§7.5): sublayers by weight (ties: creation order), filters by effective weight
//!   (ties: lower filter id). The first PERMIT/BLOCK ends a sublayer — also when a hard decision
//!   ignores it. Static BLOCK is hard; static PERMIT is soft unless CLEAR_ACTION_RIGHT.
//! - **Callouts without the write right** see `actionType` preset to the current decision. Leaving it
//!   unchanged (or writing anything but a veto) contributes nothing and the sublayer continues;
//!   writing BLOCK over a hard PERMIT is a veto (net event, counter) — never from an INSPECTION filter.
//!   With no decision yet, `actionType` is preset to FWP_ACTION_CONTINUE.
//! - **Static veto** is off unless [`crate::EngineOptions::static_veto`] is set.
//! - **Unregistered callouts**: TERMINATING/UNKNOWN act as a static hard BLOCK (or a static PERMIT
//!   with PERMIT_IF_CALLOUT_UNREGISTERED); INSPECTION filters are skipped. A panicking callout is
//!   treated the same way for that classify.
//! - **Stream layer**: the first callout that sets a stream action other than NONE ends the classify;
//!   the result carries it for the stream shim.
//! - **Notifications**: ADD_FILTER at add (refusal = FWP_E_CALLOUT_NOTIFICATION_FAILED); DELETE_FILTER
//!   at commit, and at abort for filters whose ADD was delivered; POST_COMMIT after commit.
//!   notifyFn runs with the management lock held and must not call management functions.
//! - **Auto weights** score how many bits of each field a condition pins down (see
//!   [`crate::filter::auto_weight`]).
//!
//! Asynchronous classification, injection and redirection: [`async_handles`].

pub mod async_handles;
