//! # wfpctl — the wfp-engine command line, as a library
//!
//! The `wfpctl` binary is a thin `main` over this crate, so tests and benchmarks run the same code
//! in-process. Two jobs today, both offline and without privileges:
//!
//! ```text
//!   classify: POLICY.toml ─► wfp-policy ─► Engine ◄─ classify(layer, values) ◄─ CASES.jsonl
//!                                                        └─► one decision + trace per case
//!
//!   replay:   POLICY.toml ─► wfp-policy ─► Engine
//!                                            ▲ classify calls in WFP's layer order
//!   CAPTURE ─► wfp-pcap CaptureReader ─► decode_link ─► wfp-shim Shim ─► PacketVerdict
//!   (pcap/pcapng)   capture time = engine time   │ IP only      │ flows, streams, timeouts
//!                                                 ▼              ▼
//!                              skipped (reported)    Summary ─► table or --json (stdout, or
//!                                                             │  stderr when an output is `-`)
//!                                                             ─► --verdicts JSONL, --permitted /
//!                                                                --blocked pcap or pcapng (a
//!                                                                file or `-`), --trace N
//! ```
//!
//! What it never does: talk to a daemon (not yet), read a clock for decisions (replay time is the
//! capture's), or stop on a bad packet: malformed or undecodable packets get a verdict or a
//! "skipped" line and a counter; a corrupt capture ends the replay with an error naming the byte
//! offset, after the summary of what was read.
//!
//! Modules: [`classify`] (what-if cases), [`replay`] (captures through the engine), [`driver`]
//! (C callout drivers: `driver build`, `replay --driver`), [`mgmt`] (`show`, `add`, `delete`,
//! `watch`: the running daemon through its management socket, `wfp-api`).

pub mod classify;
pub mod driver;
mod explain;
pub mod mgmt;
pub mod replay;
