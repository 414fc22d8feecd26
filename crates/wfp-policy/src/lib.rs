//! # wfp-policy — policy files
//!
//! A policy file is TOML with `[[provider]]`, `[[sublayer]]`, `[[callout]]` and `[[filter]]` tables
//! that use WFP's names for layers, fields, match types, actions and flags. [`Policy::parse`] checks
//! the syntax and names (every error carries `file:line:column` and the offending field);
//! [`Policy::apply`] adds the objects to an engine in **one transaction**, registering the built-in
//! callouts they reference, so a bad policy leaves the engine untouched.
//!
//! ```text
//!   POLICY.toml ──parse──► Policy (specs + source spans) ──apply──► Engine (one transaction)
//!                                                  │ registers wfp-callouts built-ins
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
//! Filter ids are assigned in file order. A running policy is swapped for a new one atomically with
//! [`Policy::replace`] / [`replace_all`] (one transaction; a bad file leaves the old one in force).

pub mod file;
pub mod lit;

pub use file::{replace_all, Applied, Policy, PolicyError};
