//! The WFP layer sequence: [`Shim`] turns one IP packet into the classify calls WFP would make for
//! it, in WFP's order, and returns a verdict (wfp-reference §8.2, brief decisions 3, 8–10).
//!
//! | direction | layers, in order (a BLOCK at any layer stops the packet there) |
//! |---|---|
//! | inbound | INBOUND_IPPACKET → INBOUND_ICMP_ERROR (ICMP errors, then stop) → INBOUND_TRANSPORT → ALE_AUTH_RECV_ACCEPT / ALE_AUTH_CONNECT (new or reauthorized flow) → ALE_FLOW_ESTABLISHED (once) → DATAGRAM_DATA or STREAM |
//! | outbound | ALE_AUTH_CONNECT / ALE_AUTH_RECV_ACCEPT (new or reauthorized flow) → ALE_FLOW_ESTABLISHED (once) → DATAGRAM_DATA or STREAM → OUTBOUND_TRANSPORT (OUTBOUND_ICMP_ERROR for ICMP errors) → OUTBOUND_IPPACKET |
//! | forward | IPFORWARD |
//!
//! * **Fragments** (§14.6 T-CL-7): every fragment is classified at the IP-packet layer twice — as the
//!   raw packet and with FWP_CONDITION_FLAG_IS_FRAGMENT — then held for reassembly; the reassembled
//!   datagram is classified once more (FWP_CONDITION_FLAG_IS_REASSEMBLED) and goes on through the
//!   upper layers. The verdict of the fragment that completes a datagram is the datagram's verdict.
//! * **ALE** (brief decision 10): the first packet of a new flow is authorized at AUTH_CONNECT when
//!   outbound, AUTH_RECV_ACCEPT when inbound; later packets skip the AUTH layers (the ALE cache)
//!   until the filters at the authorizing layer change, when the next packet of the flow, in either
//!   direction, is classified again there with IS_REAUTHORIZE and REAUTHORIZE_REASON POLICY_CHANGE.
//!   A BLOCK during reauthorization ends the flow. ALE_FLOW_ESTABLISHED is classified when the TCP
//!   handshake completes, and right after authorization for other protocols.
//! * **Flow end** (FIN, RST, idle timeout, eviction, abort): ALE_ENDPOINT_CLOSURE is classified for
//!   authorized flows and `Engine::flow_abort` calls flowDeleteFn for every context (T-FLOW-6).
//! * **No decision** at a layer (`FWP_ACTION_NONE_NO_MATCH`) applies [`ShimConfig::no_match`]
//!   (PERMIT unless configured, brief decision 3). **Malformed packets** get
//!   [`ShimConfig::malformed`] (BLOCK unless configured) and are counted.
//! * **Packets a capture cut** ([`PacketContext::truncated`], pcap caplen < orig_len): parsed with
//!   [`ParseConfig::truncated`], so length fields pointing past the bytes are accepted and the
//!   packet is classified from its headers like any other; layerData carries the bytes that exist;
//!   flow byte counts use the IP header's length (the wire length); a TCP segment's missing tail
//!   is skipped by stream reassembly as missed bytes (stream callouts see them in `missedBytes`,
//!   [`ShimStats::stream_bytes_missed`]) instead of stalling the stream; a cut fragment is
//!   classified at the IP-packet layer but not reassembled. Counted in [`ShimStats::truncated`].
//!   A header the capture cut is malformed, saying so. Live data paths never set the flag.
//! * **IPv4 header checksums**: verified unless `ShimConfig::parse.verify_ipv4_checksum` is off;
//!   mismatches are counted either way ([`ShimStats::ipv4_checksum_mismatches`]).
//! * **Direction**: given by the data path, or [`PacketDirection::Infer`] for captures: a packet
//!   from a configured local network is outbound, one to it inbound; without configuration the side
//!   that sent a flow's first packet is the local side.
//!
//! Call order: `handle_packet` for every packet; `handle_timeout(now)` when `poll_timeout()` is due;
//! drain `poll_event()` after either.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use wfp_core::callout::{LayerData, Metadata};
use wfp_core::catalogue::layers;
use wfp_core::constants::{ConditionFlags, MetadataFields, ReauthorizeReason, StreamFlags};
use wfp_core::security::Token;
use wfp_core::{ActionType, ClassifyResult, Engine, FilterId, Hardness, LayerId, Trace, Value};

use crate::decisions::FlowDecisions;
use crate::flow::{
    Direction, EndReason, FlowConfig, FlowEvent, FlowId, FlowKey, FlowTable, FlowUpdate,
    PacketMeta, Side,
};
use crate::frag::{FragConfig, FragOutcome, FragReassembler, Fragment};
use crate::reasm::{ReasmConfig, Segment, StreamReassembler};
use crate::stream::{StreamDirection, StreamOutcome};
use crate::time::Timestamp;
use crate::values::{fill, fill_masked, PacketFacts};
use crate::wire::{self, IcmpKind, IpVersion, ParseConfig, ParsedPacket, Transport};

/// What the data path does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let it through.
    Permit,
    /// Drop it.
    Block,
    /// Drop it silently (BLOCK with FWPS_CLASSIFY_OUT_FLAG_ABSORB: no discard layer, no event).
    Absorb,
}

/// How the data path saw the packet travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketDirection {
    /// Received by this host (NFQUEUE INPUT).
    Inbound,
    /// Sent by this host (NFQUEUE OUTPUT).
    Outbound,
    /// Routed through this host (NFQUEUE FORWARD).
    Forward,
    /// Unknown (captures): inferred from [`ShimConfig::local_networks`] or flow initiators.
    Infer,
}

/// Why a packet got its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A filter decided at `layer`.
    Filter,
    /// No filter decided anywhere; every layer applied the no-match default.
    NoMatch,
    /// The packet could not be parsed.
    Malformed(String),
    /// A fragment was dropped by the reassembler (overlap, limits).
    FragmentDropped(String),
    /// A fragment is held until its datagram completes; the raw and fragment indications decided.
    FragmentHeld,
    /// A stream filter blocked bytes of this segment.
    StreamBlocked,
    /// A stream callout dropped the connection (DROP_CONNECTION); for the connection's later
    /// segments, `layer` and `filter` of the verdict name the drop.
    ConnectionDropped,
    /// A later segment of a TCP connection whose authorization (ALE_AUTH_CONNECT /
    /// ALE_AUTH_RECV_ACCEPT) was blocked: the connection does not exist, so the segment must not
    /// start a new flow mid-stream. `layer` and `filter` of the verdict name the refusal.
    ConnectionRefused,
    /// A retransmission or overlap carried different bytes than the first copy (brief decision 9).
    StreamOverlap,
}

/// One layer a packet was classified at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerVisit {
    /// The layer.
    pub layer: LayerId,
    /// PERMIT, BLOCK or NONE_NO_MATCH.
    pub action: ActionType,
    /// Hard or soft.
    pub hardness: Hardness,
    /// The deciding filter.
    pub filter: Option<FilterId>,
    /// The decision was a veto.
    pub vetoed: bool,
    /// The full arbitration trace (when [`ShimConfig::trace`] is on).
    pub trace: Option<Trace>,
}

impl LayerVisit {
    /// The visit a classify at `layer` with result `r` makes.
    fn of(layer: LayerId, r: &ClassifyResult, trace: Option<Trace>) -> Self {
        Self {
            layer,
            action: r.action,
            hardness: r.hardness,
            filter: r.deciding_filter,
            vetoed: r.vetoed,
            trace,
        }
    }
}

/// The outcome of [`Shim::handle_packet`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketVerdict {
    /// What to do with the packet.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// The layer that decided a BLOCK (or the last layer visited).
    pub layer: Option<LayerId>,
    /// The filter that decided, if a filter did.
    pub filter: Option<FilterId>,
    /// The flow's handle (FWPS flow id), when the packet belongs to one.
    pub flow: Option<u64>,
    /// The direction used.
    pub direction: PacketDirection,
    /// Every classify made for the packet, in order.
    pub visits: Vec<LayerVisit>,
}

impl PacketVerdict {
    /// A PERMIT / NO_MATCH verdict with no visits, for a packet travelling `direction`.
    pub fn new(direction: PacketDirection) -> Self {
        Self {
            verdict: Verdict::Permit,
            reason: Reason::NoMatch,
            layer: None,
            filter: None,
            flow: None,
            direction,
            visits: Vec::new(),
        }
    }

    /// Back to [`PacketVerdict::new`], keeping the visit list's capacity.
    fn reset(&mut self, direction: PacketDirection) {
        self.verdict = Verdict::Permit;
        self.reason = Reason::NoMatch;
        self.layer = None;
        self.filter = None;
        self.flow = None;
        self.direction = direction;
        self.visits.clear();
    }
}

/// Identity of the process that owns a packet's socket, for the ALE layers (issue 5 fills it from
/// socket diagnostics; captures leave it empty).
#[derive(Clone, Debug, Default)]
pub struct Owner {
    /// ALE_APP_ID: the lower-case executable path.
    pub app_id: Option<Arc<[u8]>>,
    /// ALE_USER_ID.
    pub user: Option<Arc<Token>>,
    /// processId metadata.
    pub process_id: Option<u64>,
}

/// Per-packet context from the data path. Construct it with `..PacketContext::default()` so that
/// new fields keep their defaults.
#[derive(Clone, Debug, Default)]
pub struct PacketContext {
    /// Interface index.
    pub ifindex: Option<u32>,
    /// The socket owner, when known.
    pub owner: Option<Owner>,
    /// The bytes are only the first bytes of a longer packet: a capture's snapshot length cut it
    /// (pcap caplen < orig_len). Length fields pointing beyond the bytes (IPv4 total length, IPv6
    /// payload length, UDP length) are then accepted and the packet is classified from its
    /// headers; layerData carries the bytes that exist; a TCP segment's missing tail is skipped by
    /// stream reassembly as missed bytes. A header the capture cut is still malformed (with an
    /// error saying so). Off (the default, and always for a live data path), a packet shorter
    /// than its headers say is malformed.
    pub truncated: bool,
}

/// Configuration.
#[derive(Clone, Debug)]
pub struct ShimConfig {
    /// Flow table.
    pub flow: FlowConfig,
    /// Fragment reassembly.
    pub frag: FragConfig,
    /// TCP stream reassembly.
    pub reasm: ReasmConfig,
    /// Packet parsing. `truncated` is turned on per packet by [`PacketContext::truncated`]; on
    /// here, it applies to every packet.
    pub parse: ParseConfig,
    /// Verdict for a layer where no filter decided (brief decision 3). Default PERMIT.
    pub no_match: Verdict,
    /// Verdict for malformed packets. Default BLOCK.
    pub malformed: Verdict,
    /// Local networks, for captures (`PacketDirection::Infer`): (address, prefix length).
    pub local_networks: Vec<(IpAddr, u8)>,
    /// Record the arbitration trace of every classify.
    pub trace: bool,
    /// Reuse a flow's answers at its per-packet layers while the policy is unchanged and only
    /// static filters decided (see `decisions.rs`). Default on; off classifies every packet.
    pub reuse_decisions: bool,
}

impl Default for ShimConfig {
    fn default() -> Self {
        Self {
            flow: FlowConfig::default(),
            frag: FragConfig::default(),
            reasm: ReasmConfig::default(),
            parse: ParseConfig::default(),
            no_match: Verdict::Permit,
            malformed: Verdict::Block,
            local_networks: Vec::new(),
            trace: false,
            reuse_decisions: true,
        }
    }
}

/// Something that happened besides a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShimEvent {
    /// A flow ended; flowDeleteFn has been called for its contexts.
    FlowEnded {
        /// Flow handle.
        flow: u64,
        /// 5-tuple (local/remote oriented).
        key: FlowKey,
        /// Why.
        reason: EndReason,
        /// Contexts whose flowDeleteFn ran (or will, after a running classify).
        contexts: usize,
    },
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShimStats {
    /// Packets handled.
    pub packets: u64,
    /// Packets that failed to parse.
    pub malformed: u64,
    /// Fragments dropped by the reassembler.
    pub fragments_dropped: u64,
    /// Stream overlaps with different bytes (first copy wins).
    pub stream_overlaps: u64,
    /// Stream bytes blocked by stream filters.
    pub stream_bytes_blocked: u64,
    /// TCP payload bytes a capture cut ([`PacketContext::truncated`]), skipped by stream
    /// reassembly so the stream goes on; stream callouts see them in `missedBytes`.
    pub stream_bytes_missed: u64,
    /// Packets shorter than their IP header says, flagged [`PacketContext::truncated`] and
    /// classified from their headers (not malformed).
    pub truncated: u64,
    /// Packets with a whole IPv4 header whose checksum does not verify, malformed or not (with
    /// `ParseConfig::verify_ipv4_checksum` they are malformed; without it they are classified
    /// and only counted here).
    pub ipv4_checksum_mismatches: u64,
    /// Connections dropped by stream callouts.
    pub connections_dropped: u64,
    /// Reauthorizations.
    pub reauthorizations: u64,
    /// Packets not tracked by the flow table (stray RST, table full).
    pub untracked: u64,
    /// Classify calls per layer id (index = run-time layer id): [permit, block, no-match].
    pub per_layer: Vec<[u64; 3]>,
}

struct FlowExtra {
    id: FlowId,
    key: FlowKey,
    initiator: Direction,
    auth_layer: Option<LayerId>,
    auth_generation: u64,
    /// `PolicySummary::epoch` when the authorization was last known current.
    auth_epoch: u64,
    established: bool,
    owner: Owner,
    reasm: [Option<StreamReassembler>; 2],
    stream: [StreamDirection; 2],
    dropped: bool,
    decisions: FlowDecisions,
}

/// The sans-IO packet pipeline. See the module doc for the layer order and call order.
pub struct Shim {
    engine: Arc<Engine>,
    config: ShimConfig,
    flows: FlowTable,
    frags: FragReassembler,
    extra: HashMap<u64, FlowExtra, BuildHasherDefault<FlowIdHasher>>,
    /// `Engine::nonempty_layers` as of the current packet (one atomic load per packet).
    layer_mask: u128,
    /// `PolicySummary::epoch` as of the current packet.
    policy_epoch: u64,
    /// `Engine::layer_fields_used` per layer, as of `masks_epoch`.
    field_masks: Vec<u64>,
    masks_epoch: Option<u64>,
    events: VecDeque<ShimEvent>,
    stats: ShimStats,
    scratch: Vec<Value>,
    /// TCP connections that ended by policy — refused at ALE authorization or dropped by a stream
    /// callout — by key: why, and the deciding layer and filter.
    ended: HashMap<FlowKey, (Reason, LayerId, Option<FilterId>)>,
}

/// How many ended connections are remembered (the map is cleared when full).
const MAX_DROPPED: usize = 4096;

/// Which way a packet goes for classification purposes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    In,
    Out,
}

impl Dir {
    fn flow_dir(self) -> Direction {
        match self {
            Self::In => Direction::Inbound,
            Self::Out => Direction::Outbound,
        }
    }
}

fn in_prefix(a: IpAddr, net: IpAddr, len: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn is_loopback(a: IpAddr) -> bool {
    a.is_loopback()
}

impl Shim {
    /// A pipeline feeding `engine`.
    pub fn new(engine: Arc<Engine>, config: ShimConfig) -> Self {
        Self {
            flows: FlowTable::new(config.flow),
            frags: FragReassembler::new(config.frag),
            engine,
            config,
            extra: HashMap::default(),
            layer_mask: u128::MAX,
            policy_epoch: 0,
            field_masks: Vec::new(),
            masks_epoch: None,
            events: VecDeque::new(),
            ended: HashMap::new(),
            stats: ShimStats {
                per_layer: vec![[0; 3]; wfp_core::catalogue::all_layers().len()],
                ..ShimStats::default()
            },
            scratch: Vec::new(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Counters.
    pub fn stats(&self) -> &ShimStats {
        &self.stats
    }

    /// Turns the arbitration trace ([`ShimConfig::trace`]) on or off from the next packet on, so a
    /// data path can trace one packet without paying for traces on the others.
    pub fn set_trace(&mut self, on: bool) {
        self.config.trace = on;
    }

    /// Flows currently tracked.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Takes the next event.
    pub fn poll_event(&mut self) -> Option<ShimEvent> {
        self.events.pop_front()
    }

    /// When [`Shim::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match (self.flows.poll_timeout(), self.frags.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires idle flows and stale fragments.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.frags.handle_timeout(now);
        self.flows.handle_timeout(now);
        self.drain_flow_events();
    }

    /// `FwpsStreamContinue0(flow, callout, STREAM, RECEIVE)`: resumes inbound stream data that
    /// `callout` deferred (FWPS_STREAM_ACTION_DEFER) and indicates the held bytes again. Returns
    /// false when the flow is unknown or the callout had not deferred it. Must not be called from
    /// inside a classifyFn (§9.2).
    pub fn stream_continue(&mut self, flow: u64, callout: wfp_core::CalloutId) -> bool {
        let Some(e) = self.extra.get_mut(&flow) else {
            return false;
        };
        let side = if e.initiator == Direction::Inbound {
            Side::Initiator
        } else {
            Side::Responder
        };
        if !e.stream[side.index()].resume(callout) {
            return false;
        }
        let layer = stream_layer(&e.key);
        let mut values = Vec::new();
        fill(
            layer,
            &flow_facts(&e.key, e.initiator, &e.owner),
            &mut values,
        );
        let meta = flow_meta(flow);
        let out = e.stream[side.index()].push(
            &self.engine,
            layer,
            &values,
            &meta,
            StreamFlags::RECEIVE,
            &[],
            false,
        );
        self.stats.stream_bytes_blocked += out.blocked;
        true
    }

    /// Ends every flow (for example at the end of a capture): flowDeleteFn for all contexts.
    pub fn abort_all(&mut self) {
        let ids: Vec<u64> = self.extra.keys().copied().collect();
        for id in ids {
            self.end_flow_now(id);
        }
        self.drain_flow_events();
    }

    /// Classifies one IP packet (starting at the IP header) seen at `now` travelling `direction`.
    pub fn handle_packet(
        &mut self,
        now: Timestamp,
        direction: PacketDirection,
        bytes: &[u8],
        ctx: &PacketContext,
    ) -> PacketVerdict {
        let mut v = PacketVerdict::new(direction);
        self.handle_packet_into(now, direction, bytes, ctx, &mut v);
        v
    }

    /// [`Shim::handle_packet`] writing into `v` (every field is overwritten; the capacity of
    /// `v.visits` is kept), so a data path that reuses one verdict allocates nothing per packet.
    pub fn handle_packet_into(
        &mut self,
        now: Timestamp,
        direction: PacketDirection,
        bytes: &[u8],
        ctx: &PacketContext,
        v: &mut PacketVerdict,
    ) {
        let summary = self.engine.policy_summary();
        self.layer_mask = summary.nonempty_layers;
        self.policy_epoch = summary.epoch;
        if self.masks_epoch != Some(summary.epoch) {
            // Policy changed: refresh which fields each layer's filters read.
            let n = wfp_core::catalogue::all_layers().len();
            self.field_masks = (0..n)
                .map(|l| {
                    u16::try_from(l).map_or(u64::MAX, |l| self.engine.layer_fields_used(LayerId(l)))
                })
                .collect();
            self.masks_epoch = Some(summary.epoch);
        }
        self.stats.packets += 1;
        v.reset(direction);
        let cut_config;
        let parse = if ctx.truncated {
            cut_config = ParseConfig {
                truncated: true,
                ..self.config.parse
            };
            &cut_config
        } else {
            &self.config.parse
        };
        let parsed = match wire::parse_with(bytes, parse) {
            Ok(p) => p,
            Err(e) => {
                // A whole IPv4 header whose checksum is wrong is counted whatever else failed.
                if !matches!(e, wire::ParseError::Ipv4Checksum { .. })
                    && ipv4_checksum_mismatch(bytes)
                {
                    self.stats.ipv4_checksum_mismatches += 1;
                }
                self.count_malformed(&e, v);
                return;
            }
        };
        if !parsed.ip.checksum_ok {
            self.stats.ipv4_checksum_mismatches += 1;
        }
        if parsed.is_truncated() {
            self.stats.truncated += 1;
        }
        if direction == PacketDirection::Forward {
            self.forward(&parsed, ctx, v);
            return;
        }
        let dir = self.direction_of(direction, &parsed);
        v.direction = match dir {
            Dir::In => PacketDirection::Inbound,
            Dir::Out => PacketDirection::Outbound,
        };
        // Fragments: raw + IS_FRAGMENT at the IP-packet layer, then reassembly.
        if parsed.ip.fragment.is_some() {
            let base = self.ip_facts(&parsed, dir, ctx);
            let layer = ip_layer(dir, &parsed);
            if !self.classify_step(
                layer,
                &base,
                &Metadata::default(),
                &mut LayerData::Packet(bytes),
                v,
            ) {
                return;
            }
            let mut ff = base.clone();
            ff.flags |= ConditionFlags::IS_FRAGMENT.0;
            if !self.classify_step(
                layer,
                &ff,
                &Metadata::default(),
                &mut LayerData::Packet(bytes),
                v,
            ) {
                return;
            }
            if parsed.is_truncated() {
                // The data a reassembly needs is not in the capture.
                self.stats.fragments_dropped += 1;
                v.reason =
                    Reason::FragmentDropped("cut by the capture: it cannot be reassembled".into());
                return;
            }
            let Some((key, frag)) = Fragment::from_parsed(bytes, &parsed) else {
                v.reason = Reason::FragmentDropped("unusable fragment header".into());
                return;
            };
            match self.frags.handle_fragment(now, key, frag) {
                FragOutcome::Incomplete => {
                    v.reason = Reason::FragmentHeld;
                }
                FragOutcome::Dropped(d) => {
                    self.stats.fragments_dropped += 1;
                    v.reason = Reason::FragmentDropped(format!("{d:?}"));
                }
                FragOutcome::Reassembled(whole) => {
                    match wire::parse_with(&whole, &self.config.parse) {
                        Ok(p2) => {
                            // Inbound, the reassembled datagram is indicated at the IP-packet layer
                            // first; outbound, the upper layers run first and the IP-packet layer last.
                            let mut rf = self.ip_facts(&p2, dir, ctx);
                            rf.flags |= ConditionFlags::IS_REASSEMBLED.0;
                            let ip_ok = dir == Dir::Out
                                || self.classify_step(
                                    layer,
                                    &rf,
                                    &ip_meta(&p2),
                                    &mut LayerData::Packet(&whole),
                                    v,
                                );
                            if ip_ok {
                                self.upper(now, dir, &p2, &whole, ctx, v, true);
                            }
                        }
                        Err(e) => {
                            self.count_malformed(&e, v);
                            v.reason = Reason::Malformed(format!("reassembled datagram: {e}"));
                        }
                    }
                }
            }
            return;
        }
        if dir == Dir::In {
            let f = self.ip_facts(&parsed, dir, ctx);
            let meta = ip_meta(&parsed);
            let layer = ip_layer(dir, &parsed);
            // The IP-packet layer runs before flow tracking; a flow already known for this packet
            // keeps reusable answers for it too (the answers depend on the facts, not the flow).
            let known = self.known_flow(layer, &parsed);
            if !self.classify_flow_step(known, layer, &f, &meta, &mut LayerData::Packet(bytes), v) {
                return;
            }
        }
        self.upper(now, dir, &parsed, bytes, ctx, v, false);
    }

    /// A packet that did not parse: counted, [`ShimConfig::malformed`].
    fn count_malformed(&mut self, e: &wire::ParseError, v: &mut PacketVerdict) {
        self.stats.malformed += 1;
        if matches!(e, wire::ParseError::Ipv4Checksum { .. }) {
            self.stats.ipv4_checksum_mismatches += 1;
        }
        v.verdict = self.config.malformed;
        v.reason = Reason::Malformed(e.to_string());
    }

    fn direction_of(&self, given: PacketDirection, p: &ParsedPacket) -> Dir {
        match given {
            PacketDirection::Inbound => Dir::In,
            PacketDirection::Outbound | PacketDirection::Forward => Dir::Out,
            PacketDirection::Infer => {
                if !self.config.local_networks.is_empty() {
                    let local = |a| {
                        self.config
                            .local_networks
                            .iter()
                            .any(|(n, l)| in_prefix(a, *n, *l))
                    };
                    if local(p.ip.src) {
                        return Dir::Out;
                    }
                    if local(p.ip.dst) {
                        return Dir::In;
                    }
                }
                // The initiator of a flow is the local side: a packet matching a flow that was
                // opened the other way is inbound.
                if let Some(k) = FlowKey::from_packet(Direction::Outbound, p) {
                    if self.flows.lookup(&k).is_some() {
                        return Dir::Out;
                    }
                    if self.flows.lookup(&k.reversed()).is_some() {
                        return Dir::In;
                    }
                }
                if let Some(k) = FlowKey::from_packet(Direction::Inbound, p) {
                    if self.flows.lookup(&k).is_some() {
                        return Dir::In;
                    }
                }
                Dir::Out
            }
        }
    }

    /// Classifies at `layer`, records the visit, applies the no-match default. Returns false when
    /// the packet is blocked (the verdict is then final).
    fn classify_step(
        &mut self,
        layer: LayerId,
        facts: &PacketFacts,
        meta: &Metadata,
        data: &mut LayerData<'_>,
        v: &mut PacketVerdict,
    ) -> bool {
        // Fast path: a layer without filters classifies to NONE_NO_MATCH whatever the values are.
        if !self.config.trace && !self.has_filters(layer) {
            return self.no_filters(layer, v);
        }
        let mut values = std::mem::take(&mut self.scratch);
        let mask = self.field_mask(layer);
        fill_masked(
            layer,
            facts,
            if self.config.trace { u64::MAX } else { mask },
            &mut values,
        );
        let r = self.classify_values(layer, &values, meta, data, v);
        self.scratch = values;
        r
    }

    /// [`Shim::classify_step`] at one of flow `flow`'s per-packet layers: answers from the flow's
    /// stored decisions when the engine said the last answer for these facts is reusable.
    fn classify_flow_step(
        &mut self,
        flow: Option<u64>,
        layer: LayerId,
        facts: &PacketFacts,
        meta: &Metadata,
        data: &mut LayerData<'_>,
        v: &mut PacketVerdict,
    ) -> bool {
        let Some(id) = flow.filter(|_| {
            self.config.reuse_decisions && !self.config.trace && self.has_filters(layer)
        }) else {
            return self.classify_step(layer, facts, meta, data, v);
        };
        let epoch = self.policy_epoch;
        let stored = self
            .extra
            .get(&id)
            .and_then(|e| e.decisions.get(layer, epoch, facts))
            .cloned();
        let r = match stored {
            Some(r) => r,
            None => {
                let mut values = std::mem::take(&mut self.scratch);
                let mask = self.field_mask(layer);
                fill_masked(layer, facts, mask, &mut values);
                let (r, reusable) = self.engine.classify_cacheable(layer, &values, meta, data);
                self.scratch = values;
                // Only an answer from the policy this packet's field masks came from: a commit
                // between the two could have made a field matter that the mask left empty.
                if let (Some(e), true) = (self.extra.get_mut(&id), reusable == Some(epoch)) {
                    e.decisions.put(layer, epoch, facts, &r);
                }
                r
            }
        };
        self.record(LayerVisit::of(layer, &r, None), r.absorbed(), v)
    }

    /// The id of the tracked flow an inbound packet belongs to, when answers at `layer` could be
    /// reused (read-only: the flow table is updated later, in `upper`).
    fn known_flow(&self, layer: LayerId, p: &ParsedPacket) -> Option<u64> {
        if !self.config.reuse_decisions || self.config.trace || !self.has_filters(layer) {
            return None;
        }
        let key = FlowKey::from_packet(Direction::Inbound, p)?;
        self.flows.lookup(&key).map(|h| h.id().get())
    }

    fn field_mask(&self, layer: LayerId) -> u64 {
        self.field_masks
            .get(usize::from(layer.0))
            .copied()
            .unwrap_or(u64::MAX)
    }

    /// The ids of the flows the shim tracks.
    #[cfg(test)]
    pub(crate) fn flow_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.extra.keys().copied()
    }

    /// The flow table.
    #[cfg(test)]
    pub(crate) fn flow_table(&self) -> &FlowTable {
        &self.flows
    }

    /// How many reusable answers flow `id` holds.
    #[cfg(test)]
    pub(crate) fn stored_decisions(&self, id: u64) -> usize {
        self.extra.get(&id).map_or(0, |e| e.decisions.len())
    }

    /// Whether `layer` held filters when the current packet started (`layer_mask`).
    fn has_filters(&self, layer: LayerId) -> bool {
        self.layer_mask & (1u128 << (layer.0 & 127)) != 0
    }

    fn no_filters(&mut self, layer: LayerId, v: &mut PacketVerdict) -> bool {
        let visit = LayerVisit {
            layer,
            action: ActionType::NONE_NO_MATCH,
            hardness: Hardness::Soft,
            filter: None,
            vetoed: false,
            trace: None,
        };
        self.record(visit, false, v)
    }

    /// Records a layer visit (stats, the verdict's visit list) and applies its action to the
    /// verdict: PERMIT goes on, BLOCK (ABSORB with `absorbed`) stops the packet, NONE_NO_MATCH takes
    /// [`ShimConfig::no_match`]. Returns false when the packet is stopped.
    fn record(&mut self, visit: LayerVisit, absorbed: bool, v: &mut PacketVerdict) -> bool {
        let (idx, verdict) = match visit.action {
            ActionType::PERMIT => (0, Verdict::Permit),
            ActionType::BLOCK if absorbed => (1, Verdict::Absorb),
            ActionType::BLOCK => (1, Verdict::Block),
            _ => (2, self.config.no_match),
        };
        if let Some(slot) = self.stats.per_layer.get_mut(usize::from(visit.layer.0)) {
            slot[idx] += 1;
        }
        v.layer = Some(visit.layer);
        if visit.filter.is_some() {
            v.reason = Reason::Filter;
            v.filter = visit.filter;
        }
        v.visits.push(visit);
        if verdict != Verdict::Permit {
            v.verdict = verdict;
            return false;
        }
        true
    }

    fn classify_values(
        &mut self,
        layer: LayerId,
        values: &[Value],
        meta: &Metadata,
        data: &mut LayerData<'_>,
        v: &mut PacketVerdict,
    ) -> bool {
        let mut trace = self.config.trace.then(Trace::default);
        let r: ClassifyResult = self
            .engine
            .classify(layer, values, meta, data, trace.as_mut());
        self.record(LayerVisit::of(layer, &r, trace), r.absorbed(), v)
    }

    fn forward(&mut self, p: &ParsedPacket, ctx: &PacketContext, v: &mut PacketVerdict) {
        let facts = PacketFacts {
            protocol: p.ip.protocol,
            source: Some(p.ip.src),
            destination: Some(p.ip.dst),
            ifindex: ctx.ifindex,
            flags: if p.ip.fragment.is_some() {
                ConditionFlags::IS_FRAGMENT.0
            } else {
                0
            },
            ..PacketFacts::default()
        };
        let layer = if p.ip.version == IpVersion::V4 {
            layers::IPFORWARD_V4
        } else {
            layers::IPFORWARD_V6
        };
        self.classify_step(layer, &facts, &ip_meta(p), &mut LayerData::None, v);
    }

    fn ip_facts(&self, p: &ParsedPacket, dir: Dir, ctx: &PacketContext) -> PacketFacts {
        let (local, remote) = match dir {
            Dir::In => (p.ip.dst, p.ip.src),
            Dir::Out => (p.ip.src, p.ip.dst),
        };
        let mut flags = 0;
        if is_loopback(local) || is_loopback(remote) {
            flags |= ConditionFlags::IS_LOOPBACK.0;
        }
        PacketFacts {
            protocol: p.ip.protocol,
            local: Some(local),
            remote: Some(remote),
            flags,
            ifindex: ctx.ifindex,
            loopback: flags != 0,
            ..PacketFacts::default()
        }
    }

    /// Transport, ALE, datagram/stream layers (and the outbound IP-packet layer).
    #[expect(clippy::too_many_arguments, reason = "one packet's context")]
    fn upper(
        &mut self,
        now: Timestamp,
        dir: Dir,
        p: &ParsedPacket,
        bytes: &[u8],
        ctx: &PacketContext,
        v: &mut PacketVerdict,
        reassembled: bool,
    ) {
        let v6 = p.ip.version == IpVersion::V6;
        let mut ipf = self.ip_facts(p, dir, ctx);
        if reassembled {
            ipf.flags |= ConditionFlags::IS_REASSEMBLED.0;
        }
        // ICMP errors: the ICMP_ERROR layer with the embedded packet's fields, no flow.
        if let Transport::Icmp(icmp) = &p.transport {
            if icmp.kind == IcmpKind::Error {
                let mut f = ipf.clone();
                f.icmp_type = Some(u16::from(icmp.icmp_type));
                f.icmp_code = Some(u16::from(icmp.code));
                if let Some(e) = &icmp.embedded {
                    let (lp, rp) = match e.transport {
                        wire::EmbeddedTransport::Ports { src_port, dst_port } => {
                            (src_port, dst_port)
                        }
                        _ => (0, 0),
                    };
                    f.embedded = Some((e.protocol, e.dst, lp, rp));
                }
                let layer = match (dir, v6) {
                    (Dir::In, false) => layers::INBOUND_ICMP_ERROR_V4,
                    (Dir::In, true) => layers::INBOUND_ICMP_ERROR_V6,
                    (Dir::Out, false) => layers::OUTBOUND_ICMP_ERROR_V4,
                    (Dir::Out, true) => layers::OUTBOUND_ICMP_ERROR_V6,
                };
                if self.classify_step(layer, &f, &ip_meta(p), &mut LayerData::Packet(bytes), v)
                    && dir == Dir::Out
                {
                    self.classify_step(
                        ip_layer(dir, p),
                        &ipf,
                        &ip_meta(p),
                        &mut LayerData::Packet(bytes),
                        v,
                    );
                }
                return;
            }
        }
        let mut tf = ipf.clone();
        match &p.transport {
            Transport::Tcp(t) => {
                let (l, r) = if dir == Dir::In {
                    (t.dst_port, t.src_port)
                } else {
                    (t.src_port, t.dst_port)
                };
                tf.local_port = Some(l);
                tf.remote_port = Some(r);
            }
            Transport::Udp(u) => {
                let (l, r) = if dir == Dir::In {
                    (u.dst_port, u.src_port)
                } else {
                    (u.src_port, u.dst_port)
                };
                tf.local_port = Some(l);
                tf.remote_port = Some(r);
            }
            Transport::Icmp(i) => {
                tf.local_port = Some(u16::from(i.icmp_type));
                tf.remote_port = Some(u16::from(i.code));
            }
            _ => {}
        }
        // Flow tracking.
        let key = FlowKey::from_packet(dir.flow_dir(), p);
        // A connection a stream callout dropped stays dropped until a new SYN (the stack would
        // have reset it); its late segments must not start a new flow mid-stream.
        // The same holds for a connection whose authorization was blocked.
        if let (Some(k), Transport::Tcp(t)) = (&key, &p.transport) {
            if let Some((reason, layer, filter)) = self.ended.get(k).cloned() {
                if t.flags.syn() && !t.flags.ack() {
                    self.ended.remove(k);
                } else {
                    v.verdict = Verdict::Block;
                    v.reason = reason;
                    v.layer = Some(layer);
                    v.filter = filter;
                    return;
                }
            }
        }
        let update = key.as_ref().map(|k| {
            self.flows
                .handle_packet(now, k, dir.flow_dir(), &PacketMeta::from_parsed(p))
        });
        let update: Option<FlowUpdate> = match update {
            Some(Ok(u)) => Some(u),
            Some(Err(_)) => {
                self.stats.untracked += 1;
                None
            }
            None => None,
        };
        let flow_id = update.map(|u| u.handle.id().get());
        v.flow = flow_id;
        if let (Some(u), Some(k)) = (update, key) {
            let initiator = if u.side == Side::Initiator {
                dir.flow_dir()
            } else {
                dir.flow_dir().reverse()
            };
            self.extra
                .entry(u.handle.id().get())
                .or_insert_with(|| FlowExtra {
                    id: u.handle.id(),
                    key: k,
                    initiator,
                    auth_layer: None,
                    auth_generation: 0,
                    auth_epoch: 0,
                    established: false,
                    owner: ctx.owner.clone().unwrap_or_default(),
                    reasm: [None, None],
                    stream: [StreamDirection::default(), StreamDirection::default()],
                    dropped: false,
                    decisions: FlowDecisions::default(),
                });
        }
        let mut meta = ip_meta(p);
        if let Some(id) = flow_id {
            meta.flow_handle = id;
            meta.present |= MetadataFields::FLOW_HANDLE;
        }
        if let Some(o) = ctx
            .owner
            .as_ref()
            .or_else(|| flow_id.and_then(|id| self.extra.get(&id)).map(|e| &e.owner))
        {
            tf.app_id = o.app_id.clone();
            tf.user = o.user.clone();
            if let Some(pid) = o.process_id {
                meta.process_id = pid;
                meta.present |= MetadataFields::PROCESS_ID;
            }
        }
        let transport_layer = match (dir, v6) {
            (Dir::In, false) => layers::INBOUND_TRANSPORT_V4,
            (Dir::In, true) => layers::INBOUND_TRANSPORT_V6,
            (Dir::Out, false) => layers::OUTBOUND_TRANSPORT_V4,
            (Dir::Out, true) => layers::OUTBOUND_TRANSPORT_V6,
        };
        let needs_auth = flow_id
            .and_then(|id| self.extra.get(&id))
            .is_some_and(|e| e.auth_layer.is_none());
        if dir == Dir::In {
            let mut tmeta = meta.clone();
            if needs_auth {
                tmeta.present |= MetadataFields::ALE_CLASSIFY_REQUIRED;
            }
            if !self.classify_flow_step(
                flow_id,
                transport_layer,
                &tf,
                &tmeta,
                &mut LayerData::Packet(payload_of(p, bytes)),
                v,
            ) {
                self.discard_unauthorized(flow_id);
                return;
            }
        }
        // ALE: authorize new flows, reauthorize after a policy change, FLOW_ESTABLISHED once.
        if let (Some(id), Some(u)) = (flow_id, update) {
            if !self.ale(id, u, v6, &tf, &meta, p, bytes, v) {
                self.drain_flow_events();
                return;
            }
        }
        // Data layers.
        let mut data_ok = true;
        match &p.transport {
            Transport::Tcp(t) => {
                if let (Some(id), Some(u)) = (flow_id, update) {
                    data_ok = self.stream(id, u.side, dir, v6, &tf, &meta, t, bytes, v);
                }
            }
            Transport::Udp(_) | Transport::Icmp(_) | Transport::Other(_) if flow_id.is_some() => {
                let layer = if v6 {
                    layers::DATAGRAM_DATA_V6
                } else {
                    layers::DATAGRAM_DATA_V4
                };
                let mut df = tf.clone();
                df.direction = Some(wfp_dir(dir) as u32);
                let mut dmeta = meta.clone();
                dmeta.packet_direction = Some(wfp_dir(dir));
                dmeta.present |= MetadataFields::PACKET_DIRECTION;
                data_ok = self.classify_flow_step(
                    flow_id,
                    layer,
                    &df,
                    &dmeta,
                    &mut LayerData::Packet(payload_of(p, bytes)),
                    v,
                );
            }
            _ => {}
        }
        if data_ok
            && dir == Dir::Out
            && self.classify_flow_step(
                flow_id,
                transport_layer,
                &tf,
                &meta,
                &mut LayerData::Packet(bytes),
                v,
            )
        {
            self.classify_flow_step(
                flow_id,
                ip_layer(dir, p),
                &ipf,
                &ip_meta(p),
                &mut LayerData::Packet(bytes),
                v,
            );
        }
        self.drain_flow_events();
    }

    /// A packet blocked before its new flow was authorized leaves no flow behind.
    fn discard_unauthorized(&mut self, flow: Option<u64>) {
        let Some(id) = flow else { return };
        if self.extra.get(&id).is_some_and(|e| e.auth_layer.is_none()) {
            self.end_flow_now(id);
        }
        self.drain_flow_events();
    }

    #[expect(clippy::too_many_arguments, reason = "one packet's context")]
    fn ale(
        &mut self,
        id: u64,
        u: FlowUpdate,
        v6: bool,
        tf: &PacketFacts,
        meta: &Metadata,
        p: &ParsedPacket,
        bytes: &[u8],
        v: &mut PacketVerdict,
    ) -> bool {
        let epoch = self.policy_epoch;
        let Some(e) = self.extra.get_mut(&id) else {
            return true;
        };
        // The ALE cache: nothing to do for an authorized, established flow unless the policy moved
        // (one epoch comparison per packet; the layer's own generation only when it did).
        if e.auth_layer.is_some() && e.established && e.auth_epoch == epoch {
            return true;
        }
        if let Some(l) = e.auth_layer {
            if e.auth_epoch != epoch && self.engine.layer_generation(l) == e.auth_generation {
                e.auth_epoch = epoch;
                if e.established {
                    return true;
                }
            }
        }
        let e = &*e;
        let initiator = e.initiator;
        let auth_layer = e.auth_layer;
        let conn_dir = connection_direction(initiator);
        let mut af = tf.clone();
        // ALE values are oriented by the connection, not the packet.
        af.local = Some(e.key.local_addr());
        af.remote = Some(e.key.remote_addr());
        if e.key.protocol() == 6 || e.key.protocol() == 17 {
            af.local_port = Some(e.key.local_port());
            af.remote_port = Some(e.key.remote_port());
        }
        let (layer, reauth) = match auth_layer {
            None => {
                let l = match (initiator, v6) {
                    (Direction::Outbound, false) => layers::ALE_AUTH_CONNECT_V4,
                    (Direction::Outbound, true) => layers::ALE_AUTH_CONNECT_V6,
                    (Direction::Inbound, false) => layers::ALE_AUTH_RECV_ACCEPT_V4,
                    (Direction::Inbound, true) => layers::ALE_AUTH_RECV_ACCEPT_V6,
                };
                (Some(l), false)
            }
            Some(l) if self.engine.layer_generation(l) != e.auth_generation => (Some(l), true),
            Some(_) => (None, false),
        };
        if let Some(layer) = layer {
            let mut f = af.clone();
            if reauth {
                f.flags |= ConditionFlags::IS_REAUTHORIZE.0;
                f.reauth_reason = Some(ReauthorizeReason::POLICY_CHANGE.0);
                self.stats.reauthorizations += 1;
            }
            let generation = self.engine.layer_generation(layer);
            // TCP connect has no packet at AUTH_CONNECT; everything else passes it.
            let tcp_connect = p.ip.protocol == 6
                && (layer == layers::ALE_AUTH_CONNECT_V4 || layer == layers::ALE_AUTH_CONNECT_V6);
            let mut data = if tcp_connect && !reauth {
                LayerData::None
            } else {
                LayerData::Packet(payload_of(p, bytes))
            };
            if !self.classify_step(layer, &f, meta, &mut data, v) {
                if p.ip.protocol == 6 {
                    if let Some(key) = self.extra.get(&id).map(|e| e.key) {
                        self.remember_ended(key, Reason::ConnectionRefused, layer, v.filter);
                    }
                }
                self.end_flow_now(id);
                return false;
            }
            if let Some(e) = self.extra.get_mut(&id) {
                e.auth_layer = Some(layer);
                e.auth_generation = generation;
                e.auth_epoch = epoch;
            }
        }
        let established_now = self.extra.get(&id).is_some_and(|e| !e.established)
            && (p.ip.protocol != 6
                || u.established
                || u.state == crate::flow::FlowState::Tcp(crate::flow::TcpState::Established));
        if established_now {
            if let Some(e) = self.extra.get_mut(&id) {
                e.established = true;
            }
            let layer = if v6 {
                layers::ALE_FLOW_ESTABLISHED_V6
            } else {
                layers::ALE_FLOW_ESTABLISHED_V4
            };
            let mut f = af;
            f.direction = Some(conn_dir);
            let mut data = LayerData::Packet(payload_of(p, bytes));
            if !self.classify_step(layer, &f, meta, &mut data, v) {
                self.end_flow_now(id);
                return false;
            }
        }
        true
    }

    #[expect(clippy::too_many_arguments, reason = "one segment's context")]
    fn stream(
        &mut self,
        id: u64,
        side: Side,
        dir: Dir,
        v6: bool,
        tf: &PacketFacts,
        meta: &Metadata,
        t: &wire::TcpInfo,
        bytes: &[u8],
        v: &mut PacketVerdict,
    ) -> bool {
        let reasm_cfg = self.config.reasm;
        let layer = if v6 {
            layers::STREAM_V6
        } else {
            layers::STREAM_V4
        };
        let skip_unfiltered = !self.config.trace && !self.has_filters(layer);
        let Some(e) = self.extra.get_mut(&id) else {
            return true;
        };
        let payload = bytes.get(t.payload.clone()).unwrap_or(&[]);
        let i = side.index();
        if e.reasm[i].is_none() {
            e.reasm[i] = Some(if t.flags.syn() {
                StreamReassembler::after_syn(t.seq, reasm_cfg)
            } else {
                StreamReassembler::new(t.seq, reasm_cfg)
            });
        }
        let Some(r) = e.reasm[i].as_mut() else {
            return true;
        };
        // Bytes the capture cut (the segment is longer on the wire than its payload here).
        let cut = u32::try_from(t.wire_payload_len.saturating_sub(payload.len())).unwrap_or(0);
        let out = r.push(Segment {
            seq: t.seq,
            payload,
            syn: t.flags.syn(),
            fin: t.flags.fin(),
            rst: t.flags.rst(),
            cut,
        });
        if out.anomaly.is_some() {
            self.stats.stream_overlaps += 1;
            v.verdict = Verdict::Block;
            v.reason = Reason::StreamOverlap;
            return false;
        }
        let mut fin = out.finished;
        // Cut spans the stream has reached are skipped as missed bytes (the stream goes on after
        // them), each followed by the bytes buffered behind it. Empty unless a capture cut bytes.
        let mut later: Vec<(u64, Vec<u8>)> = Vec::new();
        while let Some(skip) = r.skip_missing() {
            fin |= skip.finished;
            self.stats.stream_bytes_missed += skip.missed;
            later.push((
                skip.missed,
                skip.delivered
                    .map(|d| d.data.into_owned())
                    .unwrap_or_default(),
            ));
        }
        if out.delivered.as_ref().is_none_or(|d| d.data.is_empty()) && later.is_empty() && !fin {
            return true;
        }
        // No stream filters and nothing held: the bytes pass untouched (no copy).
        if skip_unfiltered && !e.stream[i].holds_data() {
            for (missed, _) in &later {
                e.stream[i].missed(*missed);
            }
            return true;
        }
        let delivered = out
            .delivered
            .map(|d| d.data.into_owned())
            .unwrap_or_default();
        let mut sf = tf.clone();
        sf.direction = Some(connection_direction(e.initiator));
        let mut values = std::mem::take(&mut self.scratch);
        fill(layer, &sf, &mut values);
        let flags = if dir == Dir::Out {
            StreamFlags::SEND
        } else {
            StreamFlags::RECEIVE
        };
        // The captured bytes, then after each cut span the bytes buffered behind it; a piece
        // with no bytes is indicated only when it carries the FIN.
        let pieces = 1 + later.len();
        let mut outcome = StreamOutcome::default();
        let mut pushed = false;
        for (n, (missed, data)) in std::iter::once((0, delivered)).chain(later).enumerate() {
            if outcome.drop_connection {
                break;
            }
            if missed > 0 {
                e.stream[i].missed(missed);
            }
            let last = n + 1 == pieces;
            if data.is_empty() && !(fin && last) {
                continue;
            }
            let more = e.stream[i].push(
                &self.engine,
                layer,
                &values,
                meta,
                flags,
                &data,
                fin && last,
            );
            outcome.append(more);
            pushed = true;
        }
        self.scratch = values;
        if !pushed {
            // Only missed bytes: nothing was indicated (the next indication reports them).
            return true;
        }
        let blocked = outcome.drop_connection || outcome.blocked > 0;
        let visit = LayerVisit {
            layer,
            action: if blocked {
                ActionType::BLOCK
            } else {
                ActionType::PERMIT
            },
            hardness: Hardness::Hard,
            filter: outcome.deciding_filter,
            vetoed: false,
            trace: None,
        };
        self.record(visit, false, v);
        self.stats.stream_bytes_blocked += outcome.blocked;
        if outcome.drop_connection {
            self.stats.connections_dropped += 1;
            v.reason = Reason::ConnectionDropped;
            if let Some(e) = self.extra.get_mut(&id) {
                e.dropped = true;
                let key = e.key;
                self.remember_ended(
                    key,
                    Reason::ConnectionDropped,
                    layer,
                    outcome.deciding_filter,
                );
            }
            self.end_flow_now(id);
            return false;
        }
        if outcome.blocked > 0 {
            v.reason = Reason::StreamBlocked;
            return false;
        }
        true
    }

    fn remember_ended(
        &mut self,
        key: FlowKey,
        reason: Reason,
        layer: LayerId,
        filter: Option<FilterId>,
    ) {
        if self.ended.len() >= MAX_DROPPED {
            self.ended.clear();
        }
        self.ended.insert(key, (reason, layer, filter));
    }

    /// Ends a flow now (policy block, dropped connection, abort): the flow table queues the end
    /// event, which [`Shim::drain_flow_events`] turns into ENDPOINT_CLOSURE and flowDeleteFn.
    fn end_flow_now(&mut self, id: u64) {
        let fid = self.extra.get(&id).map(|e| e.id);
        if fid.is_some_and(|f| self.flows.abort(f)) {
            return;
        }
        if let Some(e) = self.extra.remove(&id) {
            let contexts = self.engine.flow_abort(id);
            self.events.push_back(ShimEvent::FlowEnded {
                flow: id,
                key: e.key,
                reason: EndReason::Aborted,
                contexts,
            });
        }
    }

    fn drain_flow_events(&mut self) {
        while let Some(FlowEvent::Ended {
            flow_id,
            key,
            reason,
            ..
        }) = self.flows.poll_event()
        {
            let id = flow_id.get();
            let extra = self.extra.remove(&id);
            if let Some(mut e) = extra {
                // Held stream data gets its NO_MORE_DATA indication before the flow goes.
                self.finish_streams(id, &mut e, reason);
                if e.auth_layer.is_some() {
                    let v6 = matches!(key.local_addr(), IpAddr::V6(_));
                    let layer = if v6 {
                        layers::ALE_ENDPOINT_CLOSURE_V6
                    } else {
                        layers::ALE_ENDPOINT_CLOSURE_V4
                    };
                    let mut values = Vec::new();
                    fill(layer, &flow_facts(&key, e.initiator, &e.owner), &mut values);
                    let _ = self.engine.classify(
                        layer,
                        &values,
                        &Metadata::default(),
                        &mut LayerData::None,
                        None,
                    );
                }
            }
            let contexts = self.engine.flow_abort(id);
            self.events.push_back(ShimEvent::FlowEnded {
                flow: id,
                key,
                reason,
                contexts,
            });
        }
    }

    /// Gives every stream callout still holding data its NO_MORE_DATA indication (§9.2) before the
    /// flow's contexts go away.
    fn finish_streams(&mut self, id: u64, e: &mut FlowExtra, reason: EndReason) {
        if e.key.protocol() != 6 || e.dropped {
            return;
        }
        let layer = stream_layer(&e.key);
        let mut values = Vec::new();
        fill(
            layer,
            &flow_facts(&e.key, e.initiator, &e.owner),
            &mut values,
        );
        let meta = flow_meta(id);
        for side in [Side::Initiator, Side::Responder] {
            let sending = if side == Side::Initiator {
                e.initiator
            } else {
                e.initiator.reverse()
            };
            // A reset connection's last indication carries the ABORT flag (§9.1).
            let flags = match (sending, reason) {
                (Direction::Outbound, EndReason::Rst) => {
                    StreamFlags::SEND | StreamFlags::SEND_ABORT
                }
                (Direction::Inbound, EndReason::Rst) => {
                    StreamFlags::RECEIVE | StreamFlags::RECEIVE_ABORT
                }
                (Direction::Outbound, _) => StreamFlags::SEND,
                (Direction::Inbound, _) => StreamFlags::RECEIVE,
            };
            let s = &mut e.stream[side.index()];
            if s.holds_data() {
                let outcome = s.push(&self.engine, layer, &values, &meta, flags, &[], true);
                self.stats.stream_bytes_blocked += outcome.blocked;
            }
        }
    }
}

/// The values a flow's connection-level layers see (STREAM, ENDPOINT_CLOSURE, …): oriented by the
/// connection's key, DIRECTION = who initiated it.
fn flow_facts(key: &FlowKey, initiator: Direction, owner: &Owner) -> PacketFacts {
    PacketFacts {
        protocol: key.protocol(),
        local: Some(key.local_addr()),
        remote: Some(key.remote_addr()),
        local_port: Some(key.local_port()),
        remote_port: Some(key.remote_port()),
        direction: Some(connection_direction(initiator)),
        app_id: owner.app_id.clone(),
        user: owner.user.clone(),
        ..PacketFacts::default()
    }
}

/// FWP_DIRECTION of a connection: outbound (0) when the local side initiated it.
fn connection_direction(initiator: Direction) -> u32 {
    match initiator {
        Direction::Outbound => 0,
        Direction::Inbound => 1,
    }
}

fn stream_layer(key: &FlowKey) -> LayerId {
    if matches!(key.local_addr(), IpAddr::V6(_)) {
        layers::STREAM_V6
    } else {
        layers::STREAM_V4
    }
}

fn flow_meta(flow: u64) -> Metadata {
    Metadata {
        flow_handle: flow,
        present: MetadataFields::FLOW_HANDLE,
        ..Metadata::default()
    }
}

fn wfp_dir(d: Dir) -> wfp_core::constants::Direction {
    match d {
        Dir::In => wfp_core::constants::Direction::Inbound,
        Dir::Out => wfp_core::constants::Direction::Outbound,
    }
}

fn ip_layer(dir: Dir, p: &ParsedPacket) -> LayerId {
    match (dir, p.ip.version) {
        (Dir::In, IpVersion::V4) => layers::INBOUND_IPPACKET_V4,
        (Dir::In, IpVersion::V6) => layers::INBOUND_IPPACKET_V6,
        (Dir::Out, IpVersion::V4) => layers::OUTBOUND_IPPACKET_V4,
        (Dir::Out, IpVersion::V6) => layers::OUTBOUND_IPPACKET_V6,
    }
}

fn ip_meta(p: &ParsedPacket) -> Metadata {
    let mut m = Metadata {
        ip_header_size: u32::try_from(p.ip.header_len).unwrap_or(u32::MAX),
        present: MetadataFields::IP_HEADER_SIZE,
        ..Metadata::default()
    };
    if let Some(f) = &p.ip.fragment {
        m.fragment = wfp_core::callout::FragmentMetadata {
            identification: f.id,
            offset: f.offset,
            length: u32::try_from(p.ip.total_len).unwrap_or(0),
        };
        m.present |= MetadataFields::FRAGMENT_DATA;
    }
    m
}

/// `bytes` start with a whole IPv4 header whose checksum does not verify.
fn ipv4_checksum_mismatch(bytes: &[u8]) -> bool {
    let p = wire::Ipv4Packet::new_unchecked(bytes);
    p.version() == 4
        && p.header_len() >= 20
        && bytes.len() >= p.header_len()
        && !p.verify_checksum()
}

/// The transport payload (UDP payload, TCP payload, ICMP body) — what DATAGRAM_DATA and the
/// inbound transport layer pass as layerData.
fn payload_of<'a>(p: &ParsedPacket, bytes: &'a [u8]) -> &'a [u8] {
    p.payload().and_then(|r| bytes.get(r)).unwrap_or(&[])
}

/// Hashes flow ids (sequential `u64`s) with one multiply: the side table is looked up several
/// times per packet, and SipHash's DoS resistance buys nothing for ids this pipeline assigns itself.
#[derive(Default)]
struct FlowIdHasher(u64);

impl Hasher for FlowIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ 0x5851_F42D_4C95_7F2D).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
