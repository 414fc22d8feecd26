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
//! (C callout drivers: `driver build`, `replay --driver`), [`driverctl`] (`driver
//! load|unload|list|ioctl` in the running daemon), [`mgmt`] (`show`, `add`, `delete`,
//! `apply`, `watch`: the running daemon through its management socket, `wfp-api`), [`live`]
//! (`show flows|netevents`), [`decide`] (answering pended authorizations), [`top`] (the
//! terminal view), [`completions`] (shell completions and man pages), [`views`]
//! (client-side views of the daemon's newer answers and the Prometheus text).

pub mod classify;
pub mod completions;
pub mod decide;
pub mod driver;
pub mod driverctl;
mod explain;
pub mod live;
pub mod mgmt;
pub mod replay;
pub mod top;
pub mod views;
