//! # wfp-callouts — built-in callouts
//!
//! Callouts written only against `wfp-core`'s public callout API ([`wfp_core::Callout`]), so they
//! double as examples of how to write one. Policy files and the CLI find them by name through
//! [`builtin`]:
//!
//! ```text
//!   policy file  callout = "wfp.test.block"  ──► builtin("wfp.test.block") ──► Builtin { key, factory }
//!                                                        │ register_callout(...)
//!                                                        ▼
//!                                                  wfp_core::Engine
//! ```
//!
//! - [`test`] — the fixed-behaviour policy-testing callouts (`wfp.test.permit`, `wfp.test.block`,
//!   `wfp.test.block-soft`, `wfp.test.continue`) that let arbitration with callouts be exercised
//!   from a policy file.

pub mod test;

use std::sync::Arc;

use wfp_core::{Callout, CalloutFlags, Guid};

/// A built-in callout: its name, run-time key, registration flags and a constructor.
#[derive(Debug)]
pub struct Builtin {
    /// The name policy files use (`wfp.test.block`).
    pub name: &'static str,
    /// The callout key (stable, so filters and stored policy can reference it).
    pub key: Guid,
    /// FWP_CALLOUT_FLAG_* the callout registers with.
    pub flags: CalloutFlags,
    /// Whether it has a flowDeleteFn.
    pub flow_delete: bool,
    /// One-line description.
    pub description: &'static str,
    /// Builds a fresh instance.
    pub make: fn() -> Arc<dyn Callout>,
}

/// Every built-in callout.
pub fn all() -> &'static [Builtin] {
    test::BUILTINS
}

/// A built-in callout by name (case-insensitive) or by key.
pub fn builtin(name_or_key: &str) -> Option<&'static Builtin> {
    let key = name_or_key.parse::<Guid>().ok();
    all()
        .iter()
        .find(|b| Some(b.key) == key || b.name.eq_ignore_ascii_case(name_or_key.trim()))
}
