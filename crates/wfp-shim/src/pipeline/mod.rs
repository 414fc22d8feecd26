//! The WFP layer sequence: [`Shim`] turns one IP packet into the classify calls WFP would make for
//! it, in WFP's order, and returns a verdict (wfp-reference §8.2, brief decisions 3, 8–10).
//!
//! | direction | layers, in order (a BLOCK at any layer stops the packet there) |
//! |---|---|
//! | inbound | INBOUND_IPPACKET → INBOUND_ICMP_ERROR (ICMP errors, then stop) → INBOUND_TRANSPORT → ALE_AUTH_RECV_ACCEPT / ALE_AUTH_CONNECT (new or reauthorized flow) → ALE_FLOW_ESTABLISHED (once) → DATAGRAM_DATA or STREAM |
//! | outbound | ALE_BIND_REDIRECT → ALE_CONNECT_REDIRECT (a connect, when they hold filters; a changed request rewrites the connection, `redirect.rs`) → ALE_AUTH_CONNECT / ALE_AUTH_RECV_ACCEPT (new or reauthorized flow) → ALE_FLOW_ESTABLISHED (once) → DATAGRAM_DATA or STREAM → OUTBOUND_TRANSPORT (OUTBOUND_ICMP_ERROR for ICMP errors) → OUTBOUND_IPPACKET |
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
//!
//! # Code map
//!
//! One packet is one `packet::Packet` (a stack value: time, direction, parsed headers, the data
//! path's context, the flow, the facts and metadata being built, the verdict being filled) that
//! one module per stage reads and extends, in WFP's layer order:
//!
//! ```text
//!  handle_packet_into
//!    ├─ ip: parse                          (malformed: verdict, stop)
//!    ├─ redirect: rewrite a redirected connection's packet; a new connect: BIND_REDIRECT,
//!    │            CONNECT_REDIRECT (held when pended, stop when blocked)
//!    ├─ forwarded ──► icmp: IPFORWARD
//!    ├─ fragment ───► ip: IPPACKET raw, IS_FRAGMENT ──► reassembly ──► whole datagram:
//!    │                    ip: INBOUND_IPPACKET (IS_REASSEMBLED) ──► upper
//!    └─ ip: INBOUND_IPPACKET ──► upper
//!  upper
//!    icmp: ICMP_ERROR (errors stop here) ──► flows: tracking ──► transport: INBOUND_TRANSPORT
//!    ──► ale: AUTH_CONNECT / AUTH_RECV_ACCEPT, FLOW_ESTABLISHED (ALE cache, reauthorization)
//!    ──► stream: STREAM  or  datagram: DATAGRAM_DATA
//!    ──► transport: OUTBOUND_TRANSPORT ──► ip: OUTBOUND_IPPACKET
//!    ──► flows: flow ends ──► ale: ENDPOINT_CLOSURE, stream: NO_MORE_DATA ──► flowDeleteFn, events
//! ```
//!
//! `classify` holds the step every stage uses to classify at one layer (values from facts, the
//! no-filter fast path, per-flow answer reuse, the layer visit applied to the verdict).

mod ale;
mod classify;
mod datagram;
mod flows;
mod icmp;
mod inject;
mod ip;
mod meta;
mod offload;
mod packet;
mod pend;
mod redirect;
mod slab;
mod stream;
mod transport;
mod verdict;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::ops::ControlFlow::{self, Continue};
use std::sync::Arc;

use wfp_core::security::Token;
use wfp_core::{Engine, FilterId, LayerId, Value};

use crate::flow::{Direction, EndReason, FlowConfig, FlowId, FlowKey, FlowTable, Midstream};
use crate::frag::{FragConfig, FragReassembler};
use crate::reasm::ReasmConfig;
use crate::time::Timestamp;
use crate::wire::{ParseConfig, ParseError, ParsedPacket, Transport};
use packet::{Packet, Seen, Way};

pub use flows::FlowRow;
pub use inject::{InjectKind, OutputOrigin, SeqTranslation, ShimOutput};
pub use offload::{CarriedCounts, KeepReason, Offload, OffloadedEnd, Withdrawal};
pub use verdict::{
    EditedPacket, FragmentDrop, LayerVisit, Malformed, PacketVerdict, Reason, Redirected,
    Redirection, Verdict,
};

/// How the data path saw the packet travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketDirection {
    /// Received by this host (NFQUEUE INPUT).
    Inbound,
    /// Sent by this host (NFQUEUE OUTPUT).
    Outbound,
    /// Routed through this host (NFQUEUE FORWARD).
    Forward,
    /// Unknown (captures): inferred from [`ShimConfig::local_networks`] or flow initiators; a
    /// packet between two loopback addresses, or two addresses of the local networks, is
    /// [`PacketDirection::Loopback`].
    Infer,
    /// Between two endpoints of this host, shown once (a capture on `lo`): WFP sees it twice, so
    /// the shim runs the outbound pass for the sender's flow, then the inbound pass for the
    /// receiver's flow, both with FWP_CONDITION_FLAG_IS_LOOPBACK (§8.3 FLAGS). The packet is
    /// delivered only if both passes permit it; the verdict names the layer and filter that
    /// blocked it ([`PacketVerdict::flow`] is the sender's flow, [`PacketVerdict::peer_flow`] the
    /// receiver's). NFQUEUE shows a loopback packet at OUTPUT and again at INPUT: there, give
    /// [`PacketDirection::Outbound`] then [`PacketDirection::Inbound`] instead.
    Loopback,
}

impl From<Direction> for PacketDirection {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Inbound => Self::Inbound,
            Direction::Outbound => Self::Outbound,
        }
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

impl Owner {
    /// No field is known: the owner adds no value or metadata.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.app_id.is_none() && self.user.is_none() && self.process_id.is_none()
    }
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
    /// The interface the packet crossed, when the data path knows more than its index: an inner
    /// packet decapsulated from a tunnel arrives on a tunnel interface (`IF_TYPE_TUNNEL`, 131, with
    /// its `TUNNEL_TYPE_*`). Feeds the INTERFACE_TYPE / TUNNEL_TYPE values and metadata.
    pub interface: Option<InterfaceInfo>,
    /// The packet was injected (a request taken from `Engine::poll_injection`): its provenance
    /// goes into `Metadata::injection` at every layer, for `FwpsQueryPacketInjectionState0`
    /// (§10.4). [`Shim::handle_async`] sets it for the injections it runs; a data path that runs
    /// injections itself sets it too.
    pub injection: Option<Arc<wfp_core::inject::Provenance>>,
}

/// What the data path knows of an interface beyond its index (wfp-reference §8.3 INTERFACE_TYPE,
/// TUNNEL_TYPE; values are IANA `IF_TYPE_*` and Windows `TUNNEL_TYPE_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// `IF_TYPE_*` (6 ethernet, 24 software loopback, 131 tunnel, ...).
    pub if_type: u32,
    /// `TUNNEL_TYPE_*` (ifdef.h: 0 none, 1 other, 2 direct, 11 6to4, 13 ISATAP, 14 Teredo, 15
    /// IP-HTTPS); 0 when not a tunnel.
    pub tunnel_type: u32,
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
    /// The data path shows each packet between two endpoints of this host once, whatever
    /// direction it recorded (a capture on `lo`): a packet whose addresses are both loopback
    /// addresses is then classified as [`PacketDirection::Loopback`] even when the data path
    /// gave it a direction. Default off: NFQUEUE queues a loopback packet at OUTPUT and again at
    /// INPUT, and [`PacketDirection::Infer`] infers loopback either way.
    pub loopback_once: bool,
    /// TCP flows need their handshake (default off): a segment of a connection whose SYN was not
    /// seen starts no flow (classified at the packet layers only, counted in
    /// [`ShimStats::untracked`]), a flow whose other direction is absent is never established,
    /// and data sent before the handshake completed (SYN data) is never indicated. Off, such
    /// connections are picked up: authorized at ALE as a reauthorization (IS_REAUTHORIZE,
    /// REAUTHORIZE_REASON MID_STREAM_INSPECTION), with a stream from the first byte seen.
    pub require_handshake: bool,
    /// The link MTU in bytes (default 1500): a non-loopback TCP packet longer than this is a
    /// super-segment a host with segmentation offload (TSO/GSO/GRO) captured or queued before
    /// splitting it. Accepted as is and counted ([`ShimStats::super_segments`]).
    pub mtu: u32,
    /// How long a pended ALE operation (§10.1) may stay pended: after it the operation is dropped
    /// — its held packets are discarded, the flow ends, [`ShimStats::pend_expired`] counts it.
    /// `None` (the default) waits forever; a replay sets it (`--pend-deadline`).
    pub pend_deadline: Option<std::time::Duration>,
    /// Most packets held per pended flow (default 64); later ones are dropped and counted in
    /// [`ShimStats::held_dropped`].
    pub max_held_packets: usize,
    /// How acknowledgement numbers are translated after a length-changing stream edit
    /// ([`SeqTranslation`]): [`SeqTranslation::Replay`] (the default) for captures, where the
    /// captured peer acknowledged the original bytes; [`SeqTranslation::Inline`] for a live
    /// data path, where the real peer acknowledges the edited bytes.
    pub seq_translation: SeqTranslation,
    /// Fragment grouping at IPFORWARD (§8.2, T-CL-8; Windows' `groupforwardedfragments`,
    /// default off as there): on, a forwarded fragment is indicated as a fragment and, once its
    /// datagram's fragments are all seen, once more inside the group (IS_FRAGMENT_GROUP).
    pub group_forwarded_fragments: bool,
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
            loopback_once: false,
            require_handshake: false,
            mtu: 1500,
            pend_deadline: None,
            max_held_packets: 64,
            seq_translation: SeqTranslation::Replay,
            group_forwarded_fragments: false,
        }
    }
}

/// Something that happened besides a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShimEvent {
    /// A flow ended; flowDeleteFn has been called for its contexts.
    FlowEnded {
        /// Flow handle.
        flow: FlowId,
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
    /// Packets not tracked by the flow table (stray RST, table full, mid-stream segments with
    /// [`ShimConfig::require_handshake`]).
    pub untracked: u64,
    /// Packets between two endpoints of this host classified on both sides
    /// ([`PacketDirection::Loopback`]).
    pub loopback: u64,
    /// IPv4 packets whose total length was 0 (segmentation offload): their length is the bytes
    /// captured, as Wireshark reads them.
    pub ipv4_zero_length: u64,
    /// TCP packets longer than [`ShimConfig::mtu`] (not loopback): offloaded super-segments.
    pub super_segments: u64,
    /// TCP connections picked up without their handshake (mid-stream, or seen from the SYN-ACK
    /// on), authorized as reauthorizations.
    pub midstream_flows: u64,
    /// TCP payload bytes sent before the handshake completed (TCP Fast Open SYN / SYN-ACK data,
    /// early server data): held, then indicated in order once the connection is established.
    pub early_bytes: u64,
    /// Classify calls per layer id (index = run-time layer id): [permit, block, no-match].
    pub per_layer: Vec<[u64; 3]>,
    /// ALE operations a callout pended (§10.1): their flow's packets are held.
    pub pended: u64,
    /// Pended operations completed and applied ([`Shim::handle_async`]).
    pub pend_completed: u64,
    /// Pended operations dropped at [`ShimConfig::pend_deadline`].
    pub pend_expired: u64,
    /// Completions for operations the shim no longer holds (expired, or their flow ended).
    pub late_completions: u64,
    /// Packets held while their flow's operation was pended.
    pub held: u64,
    /// Held packets released (classified again) after completion.
    pub held_released: u64,
    /// Held packets dropped: refused at reauthorization, flushed at RECV_ACCEPT completion
    /// (the callout re-injects its clone, §10.1), expired, over [`ShimConfig::max_held_packets`],
    /// or their flow ended.
    pub held_dropped: u64,
    /// Injections run ([`Shim::handle_async`]), by outcome.
    pub injected_delivered: u64,
    /// Injections whose packet a layer blocked, or that could not be built (counted drops).
    pub injected_dropped: u64,
    /// Packets rewritten by a stream edit (bytes blocked and injected inline) or shifted by an
    /// earlier length-changing edit ([`PacketVerdict::edited`]).
    pub edited: u64,
    /// Flows a callout aborted (`FwpsFlowAbort0`): their later packets are blocked.
    pub flows_aborted: u64,
    /// Connections a callout redirected at ALE_BIND_REDIRECT / ALE_CONNECT_REDIRECT (§10.3):
    /// their packets are rewritten ([`PacketVerdict::redirected`]).
    pub redirected: u64,
    /// Redirect classifies a callout pended (`FwpsPendClassify0`): the connect's packets are
    /// held.
    pub redirects_pended: u64,
    /// Pended redirect classifies completed and applied.
    pub redirects_completed: u64,
}

/// The sans-IO packet pipeline. See the module doc for the layer order and call order.
pub struct Shim {
    engine: Arc<Engine>,
    config: ShimConfig,
    flows: FlowTable,
    frags: FragReassembler,
    /// Every tracked flow's layer state, reached from its flow-table entry (`slab.rs`).
    extra: slab::FlowExtras,
    /// `Engine::nonempty_layers` as of the current packet, as two 64-bit words (low layers
    /// first): one word test per layer asked, instead of a 128-bit shift.
    layer_mask: [u64; 2],
    /// `PolicySummary::epoch` as of the current packet.
    policy_epoch: u64,
    /// `Engine::layer_fields_used` per layer, as of `masks_epoch`.
    field_masks: Vec<u64>,
    masks_epoch: Option<u64>,
    /// The offload answer's later layers under the policy of `layer_mask` and `field_masks`.
    later: offload::LaterLayers,
    /// Per (direction, IPv6): the headers go with the metadata (`transport.rs`), as of the same
    /// policy.
    header_copy: [bool; 4],
    events: VecDeque<ShimEvent>,
    stats: ShimStats,
    /// The value array of the current classify, reused from packet to packet.
    scratch: Vec<Value>,
    /// TCP connections that ended by policy — refused at ALE authorization or dropped by a stream
    /// callout — by key: why, and the deciding layer and filter.
    ended: HashMap<FlowKey, (Reason, LayerId, Option<FilterId>)>,
    /// Pended operations, held packets, injections, outputs ([`Shim::handle_async`]).
    asyncs: pend::AsyncState,
    /// Flows with an offloaded direction (`offload.rs`).
    offload: offload::OffloadTable,
    /// Redirected connections and pended redirect classifies (`redirect.rs`).
    redirects: redirect::RedirectTable,
}

impl Shim {
    /// A fresh pipeline to replace this one (after a contained panic): same engine and
    /// configuration, no flows, and flow ids continuing this one's sequence, so an id already
    /// handed out (to a callout's flow context, `show flows`, an event) is never reissued.
    pub fn successor(&self) -> Self {
        let mut next = Self::new(Arc::clone(&self.engine), self.config.clone());
        next.flows.continue_ids_from(&self.flows);
        next
    }

    /// A pipeline feeding `engine`.
    pub fn new(engine: Arc<Engine>, config: ShimConfig) -> Self {
        let mut flow = config.flow;
        if config.require_handshake {
            flow.midstream = Midstream::Ignore;
        }
        let mut shim = Self {
            flows: FlowTable::new(flow),
            frags: FragReassembler::new(config.frag),
            engine,
            config,
            extra: slab::FlowExtras::default(),
            layer_mask: [u64::MAX; 2],
            policy_epoch: 0,
            field_masks: Vec::new(),
            masks_epoch: None,
            later: [[offload::LaterLayer::Stream; 3]; 8],
            header_copy: [true; 4],
            events: VecDeque::new(),
            ended: HashMap::new(),
            stats: ShimStats {
                per_layer: vec![[0; 3]; wfp_core::catalogue::all_layers().len()],
                ..ShimStats::default()
            },
            scratch: Vec::new(),
            asyncs: pend::AsyncState::default(),
            offload: offload::OffloadTable::default(),
            redirects: redirect::RedirectTable::default(),
        };
        shim.later = shim.later_layer_answers();
        shim.header_copy = shim.header_copy_layers();
        shim
    }

    /// Turns the arbitration trace ([`ShimConfig::trace`]) on or off from the next packet on, so a
    /// data path can trace one packet without paying for traces on the others.
    pub fn set_trace(&mut self, on: bool) {
        self.config.trace = on;
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
        self.start_packet(direction, v);
        // The parsed headers stay where parsing wrote them (no copy of the 168-byte value).
        let mut result = self.parse(bytes, ctx);
        let Some(parsed) = self.start(now, direction, (bytes, &mut result), ctx, v) else {
            return;
        };
        // Connect / bind redirection (§10.3): a redirected connection's packets are rewritten
        // before any layer sees them.
        let rewritten = match self.redirect(now, direction, parsed, (bytes, ctx), v) {
            Continue(redirect::Stage::Unchanged) => None,
            Continue(redirect::Stage::Rewritten(b)) => Some(b),
            ControlFlow::Break(()) => return,
        };
        let parsed: &ParsedPacket = parsed;
        let bytes = rewritten.as_deref().unwrap_or(bytes);
        let (dir, loopback) = match self.direction_of(direction, parsed) {
            Way::One(d) => (d, false),
            Way::Loopback => (Direction::Outbound, true),
        };
        self.count_offload(parsed, ctx, loopback);
        let seen = Seen {
            now,
            dir,
            ctx,
            loopback,
            mtu: self.config.mtu,
        };
        self.through(seen, parsed, bytes, v);
        if loopback {
            self.stats.loopback += 1;
            v.direction = PacketDirection::Loopback;
            // The receiver's side, once the sender's permitted it (a held fragment waits for
            // its datagram, which `ip::reassembled` runs through both sides).
            if v.verdict == Verdict::Permit && parsed.ip.fragment.is_none() {
                let receiver = Seen {
                    dir: Direction::Inbound,
                    ..seen
                };
                self.receiver_side(receiver, (parsed, bytes), false, v);
            }
        } else {
            v.direction = dir.into();
        }
        if let Some(b) = rewritten {
            if v.verdict == Verdict::Permit && v.edited.is_none() {
                v.edited = Some(EditedPacket {
                    bytes: b,
                    injectors: Vec::new(),
                });
            }
        }
    }

    /// A tunnel's outer packet as the physical interface's IP layer sees it (§8.2): classified at
    /// INBOUND_IPPACKET / OUTBOUND_IPPACKET only — no fragment reassembly, no flow, no upper
    /// layers (the tunnel endpoint consumes it). The data path hands the packet the tunnel
    /// delivers to [`Shim::handle_packet_into`] with the tunnel's [`PacketContext::interface`].
    /// A loopback outer packet is seen outbound, then inbound.
    pub fn handle_ip_packet_into(
        &mut self,
        now: Timestamp,
        direction: PacketDirection,
        bytes: &[u8],
        ctx: &PacketContext,
        v: &mut PacketVerdict,
    ) {
        self.start_packet(direction, v);
        let mut result = self.parse(bytes, ctx);
        let Some(parsed) = self.start(now, direction, (bytes, &mut result), ctx, v) else {
            return;
        };
        let (sides, loopback): (&[Direction], bool) = match self.direction_of(direction, parsed) {
            Way::One(Direction::Inbound) => (&[Direction::Inbound], false),
            Way::One(Direction::Outbound) => (&[Direction::Outbound], false),
            Way::Loopback => (&[Direction::Outbound, Direction::Inbound], true),
        };
        for &dir in sides {
            let seen = Seen {
                now,
                dir,
                ctx,
                loopback,
                mtu: self.config.mtu,
            };
            let mut pkt = Packet::new(seen, parsed, bytes, v);
            let step = match dir {
                Direction::Inbound => self.inbound_ip_packet(&mut pkt),
                Direction::Outbound => self.outbound_ip_packet(&mut pkt),
            };
            if step.is_break() {
                break;
            }
        }
        v.direction = match sides {
            [one] => (*one).into(),
            _ => PacketDirection::Loopback,
        };
    }

    /// The start every packet shares after `start_packet` and parsing (`parsed`, from `bytes`):
    /// malformed packets and forwarding. `None` when the packet is decided already (malformed,
    /// or routed through: IPFORWARD).
    #[inline]
    fn start<'p>(
        &mut self,
        now: Timestamp,
        direction: PacketDirection,
        (bytes, parsed): (&[u8], &'p mut Result<ParsedPacket, ParseError>),
        ctx: &PacketContext,
        v: &mut PacketVerdict,
    ) -> Option<&'p mut ParsedPacket> {
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.malformed_packet(bytes, *e, v);
                return None;
            }
        };
        if direction == PacketDirection::Forward {
            self.forward(now, parsed, bytes, ctx, v);
            return None;
        }
        Some(parsed)
    }

    /// One side of a packet: the IP-packet layer and the layers above it, or fragment handling.
    fn through(
        &mut self,
        seen: Seen<'_>,
        parsed: &ParsedPacket,
        bytes: &[u8],
        v: &mut PacketVerdict,
    ) {
        let mut pkt = Packet::new(seen, parsed, bytes, v);
        if parsed.ip.fragment.is_some() {
            // Raw + IS_FRAGMENT at the IP-packet layer, then reassembly; the datagram a fragment
            // completes goes on through `upper`.
            self.fragment(&mut pkt);
        } else if self.inbound_ip_packet(&mut pkt).is_continue() {
            self.upper(&mut pkt);
        }
    }

    /// The receiver's (inbound) side of a loopback packet the sender's side permitted: its own
    /// flow, its verdict combined with the sender's (a BLOCK here blocks the packet).
    /// [`PacketVerdict::flow`] stays the sender's flow; the receiver's is `peer_flow`.
    fn receiver_side(
        &mut self,
        seen: Seen<'_>,
        (parsed, bytes): (&ParsedPacket, &[u8]),
        reassembled: bool,
        v: &mut PacketVerdict,
    ) {
        let sender = v.flow;
        let mut pkt = Packet::new(seen, parsed, bytes, v);
        if reassembled {
            pkt.mark_reassembled();
        }
        if self.inbound_ip_packet(&mut pkt).is_continue() {
            self.upper(&mut pkt);
        }
        v.peer_flow = v.flow;
        v.flow = sender;
    }

    /// The layers above the IP-packet layer (and the outbound IP-packet layer), then the flow ends
    /// they caused.
    fn upper(&mut self, pkt: &mut Packet<'_>) {
        let _ = self.upper_layers(pkt);
        self.decide_offload(pkt);
        self.drain_flow_events();
    }

    /// Transport, ALE, datagram/stream layers in order; `Break` when a layer stopped the packet.
    fn upper_layers(&mut self, pkt: &mut Packet<'_>) -> ControlFlow<()> {
        // ICMP errors: the ICMP_ERROR layer with the embedded packet's fields, no flow.
        self.icmp_error(pkt)?;
        self.track(pkt)?;
        self.resume_offloaded(pkt);
        if !self.asyncs.pended.is_empty() {
            self.hold_if_pending(pkt)?;
        }
        self.inbound_transport(pkt)?;
        // ALE: authorize new flows, reauthorize after a policy change, FLOW_ESTABLISHED once.
        self.ale(pkt)?;
        let parsed = pkt.parsed;
        match &parsed.transport {
            Transport::Tcp(t) => self.stream(pkt, t)?,
            _ => self.datagram(pkt)?,
        }
        self.outbound_transport(pkt)?;
        self.outbound_ip_packet(pkt)?;
        self.translate(pkt);
        Continue(())
    }

    /// Expires idle flows and stale fragments.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.expire_pended(now);
        self.frags.handle_timeout(now);
        self.flows.handle_timeout(now);
        self.drain_flow_events();
    }

    /// Ends every flow (for example at the end of a capture): flowDeleteFn for all contexts.
    pub fn abort_all(&mut self) {
        let ids: Vec<FlowId> = self.extra.keys().copied().collect();
        for id in ids {
            self.end_flow_now(id);
        }
        self.drain_flow_events();
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Counters.
    pub fn stats(&self) -> &ShimStats {
        &self.stats
    }

    /// Flows currently tracked.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Takes the next event.
    pub fn poll_event(&mut self) -> Option<ShimEvent> {
        let event = self.events.pop_front();
        if let Some(ShimEvent::FlowEnded { flow, .. }) = &event {
            self.offload.forget(*flow);
        }
        event
    }

    /// When [`Shim::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        // Called before every packet: the pend deadlines only when an operation is pended.
        let mut next = self.flows.poll_timeout();
        let mut earliest = |t: Option<Timestamp>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        earliest(self.frags.poll_timeout());
        if !self.asyncs.pended.is_empty() {
            earliest(self.pend_timeout());
        }
        next
    }

    /// Whether [`Shim::handle_timeout`] has work at `now` ([`Shim::poll_timeout`] is at or
    /// before it), answered without computing the earliest time: a data path asks before
    /// every packet.
    #[inline]
    pub fn timeout_due(&self, now: Timestamp) -> bool {
        let due = |t: Option<Timestamp>| t.is_some_and(|t| t <= now);
        due(self.flows.poll_timeout())
            || due(self.frags.poll_timeout())
            || (!self.asyncs.pended.is_empty() && due(self.pend_timeout()))
    }

    /// Connections currently redirected (their packets rewritten, §10.3).
    pub fn redirected_connections(&self) -> usize {
        self.redirects.len()
    }

    /// The ids of the flows the shim tracks.
    #[cfg(test)]
    pub(crate) fn flow_ids(&self) -> impl Iterator<Item = FlowId> + '_ {
        self.extra.keys().copied()
    }

    /// The flow table.
    #[cfg(test)]
    pub(crate) fn flow_table(&self) -> &FlowTable {
        &self.flows
    }

    /// How many reusable answers flow `id` holds.
    #[cfg(test)]
    pub(crate) fn stored_decisions(&self, id: FlowId) -> usize {
        self.extra.get(&id).map_or(0, |e| e.decisions.len())
    }
}
