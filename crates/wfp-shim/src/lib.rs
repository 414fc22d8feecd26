//! # wfp-shim: packets in, classify calls out (sans-IO)
//!
//! wfp-shim is the layer between a data path (a capture reader, NFQUEUE) and the WFP filter
//! engine (`wfp-core`). It turns raw IP packets into what WFP's layers see: parsed headers,
//! reassembled datagrams, flows with a lifetime, and the in-order TCP byte stream.
//!
//! **What it never does**: I/O, reading a clock, spawning threads, or `unsafe`. Time is always a
//! parameter (`now: Timestamp`); randomness (the flow-table hash seed) comes from configuration.
//! Every structure is a deterministic state machine driven by `handle_*` calls and drained by
//! `poll_*` calls, in the style of smoltcp and quinn-proto, so a whole conversation can be
//! simulated in a test with a fake clock. Nothing derived from a packet can panic: malformed
//! input is a typed error, a drop reason or an anomaly, and is counted.
//!
//! ```text
//!   bytes ──► wire::parse ──► ParsedPacket ──┬─ fragment ──► frag::FragReassembler ──► whole packet
//!                                            │                                         (parse again)
//!                                            ▼
//!                        flow::FlowKey::from_packet(direction, …)
//!                                            │
//!                                            ▼
//!                flow::FlowTable::handle_packet(now, key, direction, meta)
//!                   │ FlowUpdate { created → ALE auth, established → FLOW_ESTABLISHED, … }
//!                   │ poll_event() → FlowEvent::Ended → flowDeleteFn
//!                   ▼
//!      TCP payload ──► reasm::StreamReassembler (one per direction) ──► in-order bytes → STREAM
//!                        (first copy wins; overlaps with different bytes → Anomaly;
//!                         tails a capture cut → skipped, missedBytes)
//! ```
//!
//! Captures: a packet the capture's snapshot length cut (`PacketContext::truncated`) is parsed
//! with `ParseConfig::truncated` and classified from its headers; only cut headers are malformed.
//!
//! ## Modules
//!
//! * [`wire`]: packet views (`Ipv4Packet`, `Ipv6Packet`, `TcpPacket`, `UdpPacket`, `IcmpPacket`)
//!   and the validated representation [`wire::ParsedPacket`].
//! * [`frag`]: IPv4/IPv6 fragment reassembly, bounded in memory and time.
//! * [`flow`]: the flow table: 5-tuple keys, TCP state machine, idle timeouts, eviction, flow-end
//!   events.
//! * [`reasm`]: per-direction TCP stream reassembly for the STREAM layer.
//! * [`time`]: the [`Timestamp`] newtype.
//!
//! * [`pipeline`]: the WFP layer sequence on top of these modules — [`Shim::handle_packet`] turns a
//!   packet into `wfp-core` classify calls in WFP's order (IP packet, transport, ALE with its
//!   cache and reauthorization, FLOW_ESTABLISHED, DATAGRAM_DATA, STREAM, ICMP error, endpoint
//!   closure) and returns a verdict; flow ends call flowDeleteFn through the engine. One module
//!   per stage, in layer order, around one per-packet context value.
//! * [`stream`]: the STREAM layer's per-callout waterfall (countBytesEnforced, NEED_MORE_DATA,
//!   stream actions).
//! * [`values`]: incoming-value arrays per layer, filled as WFP fills them.
//! * `decisions` (private): per-flow reuse of static classify answers at a flow's per-packet
//!   layers while the policy epoch is unchanged (`ShimConfig::reuse_decisions`).

#![forbid(unsafe_code)]

mod decisions;
pub mod flow;
pub mod frag;
pub mod pipeline;
pub mod reasm;
pub mod stream;
pub mod time;
pub mod values;
pub mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use flow::{Direction, FlowId, IdShare};
pub use pipeline::{
    EditedPacket, FragmentDrop, InjectKind, InterfaceInfo, LayerVisit, Malformed, OutputOrigin,
    Owner, PacketContext, PacketDirection, PacketVerdict, Reason, Redirected, Redirection, Shim,
    ShimConfig, ShimEvent, ShimOutput, ShimStats, Verdict,
};
pub use time::Timestamp;
