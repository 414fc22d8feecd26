//! # wfp-policy — policy files
//!
//! A policy file is TOML with `[[provider]]`, `[[sublayer]]`, `[[callout]]` and `[[filter]]` tables
//! that use WFP's names for layers, fields, match types, actions and flags, plus `[engine]` options
//! and `[builtin."NAME"]` parameters of built-in callouts. [`Policy::parse`] checks
//! the syntax and names (every error is a [`PolicyError`] naming its kind, `file:line:column`
//! ([`Span`]) and the offending field); [`Policy::apply`] adds the objects to an engine in **one
//! transaction**, registering the built-in callouts they reference, so a bad policy leaves the
//! engine untouched. The built-ins are built with the caller's [`wfp_callouts::Host`] (the clock
//! they read, the logs they report to): this crate keeps no state of its own between calls.
//!
//! ```text
//!   POLICY.toml ─ schema ─► FileT ─ resolve ─► Policy ─ apply(engine, host) ─► Engine
//!                serde types,        WFP names,          registers the built-ins (built
//!                spans               references, keys;   with host), then one transaction
//!                                    built-in params
//!                                    checked by wfp-callouts
//!   a failure at any stage ─► PolicyError { span: file:line:column, field, ... }
//! ```
//!
//! ```toml
//! [[sublayer]]
//! name = "corp-firewall"
//! weight = 0x200
//!
//! [[filter]]
//! name = "block telnet"
//! layer = "ALE_AUTH_CONNECT_V4"          # FWPM_LAYER_ prefix optional
//! sublayer = "corp-firewall"
//! weight = 10                             # UINT64; or { range = 3 } (UINT8); or absent (auto)
//! action = "BLOCK"                        # FWP_ACTION_ prefix optional
//! condition = [ { field = "IP_REMOTE_PORT", match = "EQUAL", value = 23 } ]
//! ```
//!
//! Built-in callouts take parameters (the keys are listed on
//! `wfp_callouts::builtin_with_config`): a `[builtin."NAME"]` table applies to every use of that
//! built-in in the file — the implicit callouts of filters that name it (`callout =
//! "wfp.dns-blocker"`) and `[[callout]]` entries with `builtin = "NAME"` — and a `[[callout]]`'s own
//! `params` table replaces it for that callout (`params = {}` means the defaults). Values are
//! strings, integers, or arrays of them (one parameter per element; `name = []` is an empty
//! list). Each value is checked when the file is parsed, so an error names `file:line:column` and
//! the field (`builtin."wfp.dns-blocker".name[1]`). A derived callout key includes the parameters,
//! so a replace that changes them registers a new instance in the same atomic swap; a `key` given
//! in the file cannot change parameters while registered (the replace is refused).
//!
//! ```toml
//! [builtin."wfp.dns-blocker"]
//! name = ["bad.example", "*.ads.example"]
//! on_malformed = "block"
//!
//! [[callout]]
//! name = "sni"
//! layer = "STREAM_V4"
//! builtin = "wfp.tls-sni-blocker"
//! params = { name = "blocked.example" }
//! ```
//!
//! Filter ids are assigned in file order. A running policy is swapped for a new one atomically with
//! [`Policy::replace`] / [`replace_all`] (one transaction; a bad file leaves the old one in force).

mod apply;
mod error;
pub mod file;
pub mod lit;
mod params;
mod resolve;
mod schema;

pub use file::{replace_all, Applied, Constant, Policy, PolicyError, Span};
