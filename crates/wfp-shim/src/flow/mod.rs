//! The flow table: connection tracking keyed by 5-tuple, with a TCP state machine, idle timeouts,
//! bounded size and flow-end events.
//!
//! ```text
//!  (now, FlowKey, Direction, PacketMeta) ──handle_packet──► FlowUpdate { handle, side, state,
//!                                                                        created, established,
//!  now ──handle_timeout──► expire idle flows                               ended, user }
//!  poll_timeout() ──► next expiry          poll_event() ──► FlowEvent::Ended { flow_id, reason }
//! ```
//!
//! # Contract
//!
//! * **Keys** are [`FlowKey`]s oriented local/remote, so both directions of a conversation hit
//!   the same flow. ICMP query/informational exchanges are flows keyed by type/code/identifier
//!   (a reply shares its request's flow); ICMP errors are not flows (they refer to one, see
//!   [`FlowKey::from_icmp_error`]).
//! * **Flow ids** ([`FlowId`]) are the table's [`IdShare`] in order (default 1, 2, 3, …), never
//!   reused or 0.
//! * **Initiator**: the direction of a flow's first packet — except a SYN-ACK seen first (a
//!   flow picked up from the responder's side), whose sender is the responder. Counters are kept
//!   per [`Side`].
//! * **Creation**: any packet creates a flow except a TCP RST (never) and, with
//!   [`Midstream::Ignore`], a TCP segment other than a bare SYN. A TCP flow created by a bare SYN
//!   starts in `SynSent`; one picked up mid-stream ([`Midstream::Pickup`], the default) starts
//!   `Established` and its first update reports `created` and `established` together.
//! * **TCP states** (an observer's simplification of RFC 9293, modelled on Linux conntrack):
//!   `SynSent` → `SynReceived` (the responder's SYN seen; simultaneous open included) →
//!   `Established` (both SYNs seen and acknowledged) → `FinWait` (a FIN seen, not acknowledged) →
//!   `CloseWait` (one FIN acknowledged) → `LastAck` (both FINs seen) → `TimeWait` (both FINs
//!   acknowledged; a FIN the shim withholds, [`FlowTable::withhold_fin`], is not acknowledged
//!   until released). A RST (no sequence check) moves any state to `Closed`. With
//!   [`Midstream::Pickup`], a one-sided flow (the responder's direction never seen: asymmetric
//!   routing, a capture of one direction) is established by the initiator's first ACK without
//!   SYN: it acknowledges a SYN the responder must have sent.
//! * **Flow end**: entering `TimeWait` ends the flow with [`EndReason::Fin`], `Closed` with
//!   [`EndReason::Rst`]. An ended TCP flow stays in the table as a *tombstone* (same id, state
//!   `TimeWait`/`Closed`) for [`FlowTimeouts::tcp_time_wait`] / [`FlowTimeouts::tcp_closed`] so that
//!   late retransmissions are attributed to it instead of creating a new flow; a bare SYN hitting a
//!   tombstone removes it and creates a new flow (new id). Every flow ends exactly once:
//!   [`FlowEvent::Ended`] is queued once per id, at FIN/RST, idle timeout, eviction or
//!   [`FlowTable::abort`]; removing a tombstone queues nothing.
//! * **Idle timeouts** ([`FlowTimeouts`], from the flow's last packet): datagram flows (UDP, ICMP,
//!   other protocols) 60 s (WFP's default); TCP handshake 30 s, established 2 h, closing 2 min,
//!   time-wait 2 min, closed 10 s. A flow expires no earlier than its timeout after its last
//!   packet and no later than [`FlowTimeouts::slack`] (default 1 s; zero = exact) after that.
//!   The slack lets a busy flow skip LRU maintenance: a flow's position in its LRU list is
//!   refreshed only when it was last refreshed at least `slack` ago. Expiry happens in
//!   [`FlowTable::handle_timeout`]; [`FlowTable::poll_timeout`] says when it next has work.
//! * **Bounded size and eviction**: at most [`FlowConfig::max_flows`] flows (tombstones included).
//!   Creating a flow in a full table first evicts one victim: the least-recently-used tombstone if
//!   any; else the least-recently-used *non-established* flow (TCP handshake or closing, or a
//!   datagram flow that has not seen a reply); else the least-recently-used flow ("recently"
//!   within the slack above). Evicting a live flow ends it with [`EndReason::Evicted`].
//! * **Time** is monotonic per table: a `now` earlier than the latest seen is treated as the
//!   latest seen.
//! * **Cost**: a hit is one hash of the 40-byte key (seeded folded multiply,
//!   [`FlowHashBuilder`]), one probe of a `HashMap<FlowKey, u32>`, and at most once per slack an
//!   O(1) list move; the per-flow state is [`Flow`] (144 bytes, measured by a test). Expiry and
//!   eviction are O(1) per flow: flows live in one intrusive LRU list per timeout class, ordered
//!   by the time they were last refreshed, so the heads are the oldest.
//!
//! # Call order
//!
//! For every packet: [`FlowTable::handle_packet`], then drain [`FlowTable::poll_event`] (an
//! eviction or a FIN/RST may have ended a flow). When [`FlowTable::poll_timeout`] is due:
//! [`FlowTable::handle_timeout`], then drain [`FlowTable::poll_event`].

mod key;
mod tcp;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::num::NonZeroU64;
use std::time::Duration;

pub use wfp_core::pend::IdShare;

pub use key::{FlowHashBuilder, FlowHasher, FlowKey};

use crate::time::Timestamp;
use crate::wire::{ParsedPacket, TcpFlags, Transport};
use tcp::TcpTrack;

/// Which way a packet travels relative to the local host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received by the local host.
    Inbound,
    /// Sent by the local host.
    Outbound,
}

impl Direction {
    /// The opposite direction.
    #[must_use]
    pub const fn reverse(self) -> Self {
        match self {
            Self::Inbound => Self::Outbound,
            Self::Outbound => Self::Inbound,
        }
    }
}

/// Which end of a flow sent a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The end that sent the flow's first packet.
    Initiator,
    /// The other end.
    Responder,
}

impl Side {
    /// 0 for the initiator, 1 for the responder.
    pub const fn index(self) -> usize {
        match self {
            Self::Initiator => 0,
            Self::Responder => 1,
        }
    }

    /// The other side.
    #[must_use]
    pub const fn other(self) -> Self {
        match self {
            Self::Initiator => Self::Responder,
            Self::Responder => Self::Initiator,
        }
    }
}

/// A flow's identifier, which is also its WFP flow handle (the `flowHandle` metadata the pipeline
/// passes to callouts, the handle of `Engine::flow_abort`): starts at 1, never reused, never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(NonZeroU64);

impl FlowId {
    /// The flow id a flow handle names (`None` for 0).
    pub const fn from_handle(handle: u64) -> Option<Self> {
        match NonZeroU64::new(handle) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// The id as a number (WFP's `flowHandle`).
    pub const fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for FlowId {
    /// The number ([`FlowId::get`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A quick reference to a flow: its slot in the table plus its id, checked on use, so a handle
/// kept after the flow ended simply finds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowHandle {
    slot: u32,
    id: FlowId,
}

impl FlowHandle {
    /// The flow's id.
    pub const fn id(self) -> FlowId {
        self.id
    }

    /// The flow's slot: below the table's high-water mark, reused after the flow is removed.
    /// Suitable to index a caller's side table (check the id).
    pub const fn index(self) -> usize {
        self.slot as usize
    }
}

/// What to do with a TCP segment that is not a bare SYN and matches no flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Midstream {
    /// Ignore it: the segment is not tracked ([`NotTracked::Midstream`]); a flow is established
    /// only by a handshake seen in both directions.
    Ignore,
    /// Create an `Established` flow (captures that start mid-connection), and establish a flow
    /// whose responder is never seen by its initiator's first ACK.
    #[default]
    Pickup,
}

/// Idle timeouts per flow class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// UDP, ICMP and other non-TCP flows (default 60 s, WFP's ALE UDP idle timeout).
    pub datagram_idle: Duration,
    /// TCP `SynSent` / `SynReceived` (default 30 s).
    pub tcp_handshake: Duration,
    /// TCP `Established` (default 2 h).
    pub tcp_established: Duration,
    /// TCP `FinWait` / `CloseWait` / `LastAck` (default 2 min).
    pub tcp_closing: Duration,
    /// Tombstone after both FINs were acknowledged (default 2 min).
    pub tcp_time_wait: Duration,
    /// Tombstone after a RST (default 10 s).
    pub tcp_closed: Duration,
    /// How late expiry may be (default 1 s): see the module doc. Zero makes expiry and LRU order
    /// exact, at the cost of a list move on every packet.
    pub slack: Duration,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        Self {
            datagram_idle: Duration::from_secs(60),
            tcp_handshake: Duration::from_secs(30),
            tcp_established: Duration::from_secs(2 * 60 * 60),
            tcp_closing: Duration::from_secs(120),
            tcp_time_wait: Duration::from_secs(120),
            tcp_closed: Duration::from_secs(10),
            slack: Duration::from_secs(1),
        }
    }
}

/// Configuration of a [`FlowTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// Most flows held, tombstones included (default 65,536; at most `u32::MAX - 1`).
    pub max_flows: usize,
    /// Seed of the key hash. Pass randomness here (the default 0 is for tests).
    pub hash_seed: u64,
    /// Idle timeouts.
    pub timeouts: FlowTimeouts,
    /// Treatment of TCP segments that match no flow and are not a bare SYN.
    pub midstream: Midstream,
    /// The flow ids this table hands out (default [`IdShare::ALL`]: 1, 2, 3, …). Several tables
    /// over one engine (one per queue) each take their own share, so their flow handles never
    /// collide in the engine (flow contexts, §6).
    pub ids: IdShare,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            max_flows: 65_536,
            hash_seed: 0,
            timeouts: FlowTimeouts::default(),
            midstream: Midstream::default(),
            ids: IdShare::ALL,
        }
    }
}

/// What the flow table needs to know about a packet besides its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Bytes of the IP packet on the wire (its header's length, also when a capture cut it).
    pub len: u32,
    /// TCP fields, for TCP segments.
    pub tcp: Option<TcpMeta>,
}

/// TCP fields of a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpMeta {
    /// Control flags.
    pub flags: TcpFlags,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Payload bytes on the wire (the sequence space the segment covers).
    pub payload_len: u32,
}

impl PacketMeta {
    /// The metadata of a parsed packet.
    pub fn from_parsed(parsed: &ParsedPacket) -> Self {
        let tcp = match &parsed.transport {
            Transport::Tcp(t) => Some(TcpMeta {
                flags: t.flags,
                seq: t.seq,
                ack: t.ack,
                // The sequence space the segment covers, also when a capture cut it.
                payload_len: u32::try_from(t.wire_payload_len).unwrap_or(u32::MAX),
            }),
            _ => None,
        };
        Self {
            len: u32::try_from(parsed.ip.total_len).unwrap_or(u32::MAX),
            tcp,
        }
    }

    /// A bare SYN (SYN without ACK or RST): the only segment that replaces a tombstone.
    fn opens_connection(&self) -> bool {
        self.tcp
            .is_some_and(|t| t.flags.syn() && !t.flags.ack() && !t.flags.rst())
    }
}

/// State of a TCP flow. See the module doc for the transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// Ended by RST (tombstone).
    Closed,
    /// One FIN seen and acknowledged.
    CloseWait,
    /// Handshake complete.
    Established,
    /// One FIN seen, not acknowledged.
    FinWait,
    /// Both FINs seen, not both acknowledged.
    LastAck,
    /// The responder's SYN seen, handshake not complete.
    SynReceived,
    /// Only the initiator's SYN seen.
    SynSent,
    /// Both FINs acknowledged (tombstone).
    TimeWait,
}

/// State of a non-TCP flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatagramState {
    /// The responder has sent at least one packet.
    Replied,
    /// Only the initiator has sent packets.
    Unreplied,
}

/// State of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowState {
    /// UDP, ICMP or another non-TCP protocol.
    Datagram(DatagramState),
    /// TCP.
    Tcp(TcpState),
}

impl FlowState {
    /// Whether the flow has ended (a TCP tombstone).
    pub const fn is_ended(self) -> bool {
        matches!(self, Self::Tcp(TcpState::Closed | TcpState::TimeWait))
    }
}

/// Why a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Removed by [`FlowTable::abort`].
    Aborted,
    /// Evicted to make room for a new flow.
    Evicted,
    /// Both FINs acknowledged.
    Fin,
    /// No packet for the idle timeout of its class.
    IdleTimeout,
    /// RST.
    Rst,
}

/// Events drained with [`FlowTable::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowEvent {
    /// A flow ended (exactly once per flow id). This is where flow contexts are deleted.
    Ended {
        /// The flow.
        flow_id: FlowId,
        /// Its key.
        key: FlowKey,
        /// Why it ended.
        reason: EndReason,
        /// The flow's caller slot at the time it ended.
        user: u64,
    },
}

/// What [`FlowTable::handle_packet`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowUpdate {
    /// The flow the packet belongs to.
    pub handle: FlowHandle,
    /// Which end sent the packet.
    pub side: Side,
    /// The flow's state after the packet.
    pub state: FlowState,
    /// The packet created the flow (WFP: the ALE authorization point).
    pub created: bool,
    /// The packet established the flow: it completed the TCP handshake (or the flow was picked up
    /// mid-stream), or it is the first reply of a datagram flow.
    pub established: bool,
    /// The packet ended the flow (FIN or RST); a [`FlowEvent::Ended`] is queued too.
    pub ended: Option<EndReason>,
    /// The flow's caller slot.
    pub user: u64,
}

/// Why a packet is not tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotTracked {
    /// [`FlowConfig::max_flows`] is 0.
    #[error("the flow table holds no flows (max_flows = 0)")]
    Full,
    /// A TCP segment that matches no flow and is not a bare SYN, with [`Midstream::Ignore`].
    #[error("TCP segment matches no flow and is not a SYN")]
    Midstream,
    /// A TCP RST that matches no flow.
    #[error("TCP RST matches no flow")]
    StrayRst,
}

/// Counters of a [`FlowTable`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Flows created.
    pub created: u64,
    /// Flows ended by FIN.
    pub ended_fin: u64,
    /// Flows ended by RST.
    pub ended_rst: u64,
    /// Live flows ended by idle timeout.
    pub ended_idle: u64,
    /// Live flows evicted.
    pub evicted: u64,
    /// Live flows aborted.
    pub aborted: u64,
    /// Tombstones removed (expired, evicted, replaced by a new SYN or aborted).
    pub tombstones_removed: u64,
    /// Packets not tracked: [`NotTracked::StrayRst`].
    pub stray_rst: u64,
    /// Packets not tracked: [`NotTracked::Midstream`].
    pub midstream_ignored: u64,
}

/// Per-flow state (144 bytes; see the `flow_state_size` test).
#[derive(Clone, Debug)]
pub struct Flow {
    key: FlowKey,
    /// 0 marks a free slot.
    id: u64,
    first_seen: Timestamp,
    last_seen: Timestamp,
    /// When the flow was last moved to the tail of its class list (<= last_seen, and
    /// last_seen - queued < slack unless both are equal).
    queued: Timestamp,
    packets: [u64; 2],
    bytes: [u64; 2],
    user: u64,
    tcp: TcpTrack,
    state: FlowState,
    initiator: Direction,
    class: Class,
    prev: u32,
    next: u32,
}

impl Flow {
    /// The flow's id.
    pub fn id(&self) -> FlowId {
        FlowId(NonZeroU64::new(self.id).unwrap_or(NonZeroU64::MIN))
    }

    /// The flow's key.
    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// Direction of the first packet.
    pub fn initiator(&self) -> Direction {
        self.initiator
    }

    /// Time of the first packet.
    pub fn first_seen(&self) -> Timestamp {
        self.first_seen
    }

    /// Time of the latest packet.
    pub fn last_seen(&self) -> Timestamp {
        self.last_seen
    }

    /// Packets sent by `side`.
    pub fn packets(&self, side: Side) -> u64 {
        self.packets.get(side.index()).copied().unwrap_or(0)
    }

    /// Bytes (IP packet lengths) sent by `side`.
    pub fn bytes(&self, side: Side) -> u64 {
        self.bytes.get(side.index()).copied().unwrap_or(0)
    }

    /// Current state.
    pub fn state(&self) -> FlowState {
        self.state
    }

    /// Whether the flow has ended (a tombstone).
    pub fn is_ended(&self) -> bool {
        self.state.is_ended()
    }

    /// The caller's slot (0 until set).
    pub fn user(&self) -> u64 {
        self.user
    }
}

/// Timeout classes; also the eviction groups. Each class has one LRU list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
enum Class {
    Closed = 0,
    TimeWait = 1,
    TcpHandshake = 2,
    Unreplied = 3,
    TcpClosing = 4,
    Replied = 5,
    TcpEstablished = 6,
}

const CLASSES: [Class; 7] = [
    Class::Closed,
    Class::TimeWait,
    Class::TcpHandshake,
    Class::Unreplied,
    Class::TcpClosing,
    Class::Replied,
    Class::TcpEstablished,
];

/// Eviction order: tombstones, then non-established, then established; LRU within a group.
const EVICTION_GROUPS: [&[Class]; 3] = [
    &[Class::Closed, Class::TimeWait],
    &[Class::TcpHandshake, Class::Unreplied, Class::TcpClosing],
    &[Class::Replied, Class::TcpEstablished],
];

impl Class {
    fn of(state: FlowState) -> Self {
        match state {
            FlowState::Datagram(DatagramState::Unreplied) => Self::Unreplied,
            FlowState::Datagram(DatagramState::Replied) => Self::Replied,
            FlowState::Tcp(TcpState::SynSent | TcpState::SynReceived) => Self::TcpHandshake,
            FlowState::Tcp(TcpState::Established) => Self::TcpEstablished,
            FlowState::Tcp(TcpState::FinWait | TcpState::CloseWait | TcpState::LastAck) => {
                Self::TcpClosing
            }
            FlowState::Tcp(TcpState::TimeWait) => Self::TimeWait,
            FlowState::Tcp(TcpState::Closed) => Self::Closed,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY_LIST: List = List {
    head: NIL,
    tail: NIL,
};

/// The flow table. See the module doc for the contract and the call order.
///
/// Invariant: every slot number stored in `index`, `by_id`, the lists and the flows' links is
/// below `slab.len()` and names a used slot (id != 0); indexing `slab` with them cannot fail.
#[derive(Debug)]
pub struct FlowTable {
    config: FlowConfig,
    index: HashMap<FlowKey, u32, FlowHashBuilder>,
    by_id: HashMap<u64, u32, FlowHashBuilder>,
    slab: Vec<Flow>,
    free: Vec<u32>,
    lists: [List; 7],
    events: VecDeque<FlowEvent>,
    /// The sequence number of the next id in `config.ids`.
    next_id: u64,
    last_now: Timestamp,
    counters: FlowCounters,
    /// Per class (by `Class::index`): its idle timeout plus the slack, in nanoseconds.
    waits: [u64; 7],
    /// [`FlowTable::poll_timeout`]'s answer, kept while no list head changes (`None`: to be
    /// computed again).
    due: Option<Option<Timestamp>>,
}

impl FlowTable {
    /// An empty table.
    pub fn new(config: FlowConfig) -> Self {
        let hasher = FlowHashBuilder::new(config.hash_seed);
        let mut config = config;
        config.max_flows = config.max_flows.min(NIL as usize - 1);
        let mut table = Self {
            config,
            index: HashMap::with_hasher(hasher),
            by_id: HashMap::with_hasher(FlowHashBuilder::new(config.hash_seed ^ 0x5bd1_e995)),
            slab: Vec::new(),
            free: Vec::new(),
            lists: [EMPTY_LIST; 7],
            events: VecDeque::new(),
            next_id: 0,
            last_now: Timestamp::ZERO,
            counters: FlowCounters::default(),
            waits: [0; 7],
            due: Some(None),
        };
        for class in CLASSES {
            let wait = table.timeout(class).saturating_add(config.timeouts.slack);
            if let Some(w) = table.waits.get_mut(class.index()) {
                *w = Timestamp::from_duration(wait).as_nanos();
            }
        }
        table
    }

    /// Continues `prev`'s id sequence: a table replacing another never reissues its ids.
    pub fn continue_ids_from(&mut self, prev: &Self) {
        self.next_id = self.next_id.max(prev.next_id);
    }

    /// Account one packet of `key` travelling in `direction`: find or create its flow, update the
    /// TCP state machine and counters.
    pub fn handle_packet(
        &mut self,
        now: Timestamp,
        key: &FlowKey,
        direction: Direction,
        meta: &PacketMeta,
    ) -> Result<FlowUpdate, NotTracked> {
        let now = self.clamp(now);
        let r = match self.index.get(key) {
            Some(&slot) if !(self.slab[slot as usize].is_ended() && meta.opens_connection()) => {
                Ok(self.update(slot, now, direction, meta, false))
            }
            Some(&slot) => {
                self.remove_slot(slot, EndReason::Aborted);
                self.create(now, key, direction, meta)
            }
            None => self.create(now, key, direction, meta),
        };
        self.settle_due();
        r
    }

    /// The miss path of [`FlowTable::handle_packet`].
    fn create(
        &mut self,
        now: Timestamp,
        key: &FlowKey,
        direction: Direction,
        meta: &PacketMeta,
    ) -> Result<FlowUpdate, NotTracked> {
        let (tcp, state) = match &meta.tcp {
            Some(t) if t.flags.rst() => {
                self.counters.stray_rst += 1;
                return Err(NotTracked::StrayRst);
            }
            Some(_) if meta.opens_connection() => (
                TcpTrack::opened(self.config.midstream == Midstream::Pickup),
                FlowState::Tcp(TcpState::SynSent),
            ),
            Some(_) => match self.config.midstream {
                Midstream::Pickup => (TcpTrack::picked_up(), FlowState::Tcp(TcpState::Established)),
                Midstream::Ignore => {
                    self.counters.midstream_ignored += 1;
                    return Err(NotTracked::Midstream);
                }
            },
            None => (
                TcpTrack::default(),
                FlowState::Datagram(DatagramState::Unreplied),
            ),
        };
        if self.config.max_flows == 0 {
            return Err(NotTracked::Full);
        }
        while self.index.len() >= self.config.max_flows {
            if !self.evict_one() {
                return Err(NotTracked::Full);
            }
        }
        let id = self.config.ids.nth(self.next_id);
        self.next_id += 1;
        let flow = Flow {
            key: *key,
            id,
            first_seen: now,
            last_seen: now,
            queued: now,
            packets: [0; 2],
            bytes: [0; 2],
            user: 0,
            tcp,
            state,
            // A SYN-ACK seen first was sent by the connection's responder.
            initiator: if meta.tcp.is_some_and(|t| t.flags.syn() && t.flags.ack()) {
                direction.reverse()
            } else {
                direction
            },
            class: Class::of(state),
            prev: NIL,
            next: NIL,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = flow;
                slot
            }
            None => {
                self.slab.push(flow);
                (self.slab.len() - 1) as u32
            }
        };
        self.index.insert(*key, slot);
        self.by_id.insert(id, slot);
        self.link_tail(slot, Class::of(state), now);
        self.counters.created += 1;
        Ok(self.update(slot, now, direction, meta, true))
    }

    /// End the flow `id` now ([`EndReason::Aborted`], WFP's `FwpsFlowAbort0`). A tombstone is
    /// removed without an event. Returns whether the flow existed.
    pub fn abort(&mut self, id: FlowId) -> bool {
        match self.by_id.remove(&id.get()) {
            Some(slot) => {
                self.remove_slot(slot, EndReason::Aborted);
                self.settle_due();
                true
            }
            None => false,
        }
    }

    /// A stream callout blocked the FIN `side` of TCP flow `id` sent (`withheld`), or an injected
    /// FIN replaced it (wfp-reference §9.2): while withheld, the peer's acknowledgement of it does
    /// not close the connection. Lifting it ends the flow ([`EndReason::Fin`]) when both FINs
    /// were acknowledged meanwhile.
    pub fn withhold_fin(&mut self, id: FlowId, side: Side, withheld: bool) {
        let Some(&slot) = self.by_id.get(&id.get()) else {
            return;
        };
        let flow = &mut self.slab[slot as usize];
        let (FlowState::Tcp(_), false) = (flow.state, flow.is_ended()) else {
            return;
        };
        let ended = flow.tcp.withhold_fin(side, withheld);
        flow.state = FlowState::Tcp(flow.tcp.state());
        let (key, user, class, now) = (flow.key, flow.user, Class::of(flow.state), flow.last_seen);
        if class != flow.class {
            self.unlink(slot);
            self.link_tail(slot, class, now);
        }
        if let Some(reason) = ended {
            self.counters.ended_fin += 1;
            self.events.push_back(FlowEvent::Ended {
                flow_id: id,
                key,
                reason,
                user,
            });
        }
    }

    /// Expire every flow whose idle timeout has passed at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.clamp(now);
        for class in CLASSES {
            let wait = self
                .timeout(class)
                .saturating_add(self.config.timeouts.slack);
            loop {
                let head = self.lists[class.index()].head;
                if head == NIL || self.slab[head as usize].queued.saturating_add(wait) > now {
                    break;
                }
                self.remove_slot(head, EndReason::IdleTimeout);
            }
        }
        self.settle_due();
    }

    /// Whether [`FlowTable::poll_event`] has an event.
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event, if any. Drain after every `handle_*` call.
    pub fn poll_event(&mut self) -> Option<FlowEvent> {
        self.events.pop_front()
    }

    /// Set the caller's slot of the flow `handle` refers to. Returns false when it has gone.
    pub fn set_user(&mut self, handle: FlowHandle, user: u64) -> bool {
        match self.slab.get_mut(handle.index()) {
            Some(flow) if flow.id == handle.id.get() => {
                flow.user = user;
                true
            }
            _ => false,
        }
    }

    /// When [`FlowTable::handle_timeout`] next has work, if any flow is held. (A data path asks
    /// before every packet: the waits per class are computed once, at construction.)
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        // Asked before every packet: the answer kept since the list heads last changed.
        match self.due {
            Some(due) => due,
            None => self.next_due(),
        }
    }

    /// Computes [`FlowTable::poll_timeout`]'s answer again when a list head changed.
    fn settle_due(&mut self) {
        if self.due.is_none() {
            self.due = Some(self.next_due());
        }
    }

    /// The earliest expiry of the seven list heads.
    fn next_due(&self) -> Option<Timestamp> {
        // A plain loop over the seven list heads (no iterator adapters, no copy of `waits`).
        let mut next = u64::MAX;
        let mut any = false;
        for (list, wait) in self.lists.iter().zip(&self.waits) {
            if list.head == NIL {
                continue;
            }
            if let Some(flow) = self.slab.get(list.head as usize) {
                next = next.min(flow.queued.as_nanos().saturating_add(*wait));
                any = true;
            }
        }
        any.then(|| Timestamp::from_nanos(next))
    }

    /// The flow of `key`, without touching it.
    pub fn lookup(&self, key: &FlowKey) -> Option<FlowHandle> {
        let &slot = self.index.get(key)?;
        let id = self.slab[slot as usize].id();
        Some(FlowHandle { slot, id })
    }

    /// The flow `handle` refers to, if it still exists.
    pub fn flow(&self, handle: FlowHandle) -> Option<&Flow> {
        self.slab
            .get(handle.index())
            .filter(|f| f.id == handle.id.get())
    }

    /// The flow with id `id`, if it still exists.
    pub fn flow_by_id(&self, id: FlowId) -> Option<&Flow> {
        let &slot = self.by_id.get(&id.get())?;
        self.slab.get(slot as usize)
    }

    /// The handle of flow `id`, if it still exists.
    pub fn handle_of(&self, id: FlowId) -> Option<FlowHandle> {
        let &slot = self.by_id.get(&id.get())?;
        Some(FlowHandle { slot, id })
    }

    /// All flows held (tombstones included), in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &Flow> + '_ {
        self.slab.iter().filter(|f| f.id != 0)
    }

    /// Flows held, tombstones included.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no flow is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Counters since creation.
    pub fn counters(&self) -> &FlowCounters {
        &self.counters
    }

    /// The configuration (with `max_flows` capped).
    pub fn config(&self) -> &FlowConfig {
        &self.config
    }

    fn clamp(&mut self, now: Timestamp) -> Timestamp {
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    fn timeout(&self, class: Class) -> Duration {
        let t = &self.config.timeouts;
        match class {
            Class::Closed => t.tcp_closed,
            Class::TimeWait => t.tcp_time_wait,
            Class::TcpHandshake => t.tcp_handshake,
            Class::Unreplied | Class::Replied => t.datagram_idle,
            Class::TcpClosing => t.tcp_closing,
            Class::TcpEstablished => t.tcp_established,
        }
    }

    #[inline]
    fn update(
        &mut self,
        slot: u32,
        now: Timestamp,
        direction: Direction,
        meta: &PacketMeta,
        created: bool,
    ) -> FlowUpdate {
        let flow = &mut self.slab[slot as usize];
        let side = if direction == flow.initiator {
            Side::Initiator
        } else {
            Side::Responder
        };
        let i = side.index();
        if let (Some(p), Some(b)) = (flow.packets.get_mut(i), flow.bytes.get_mut(i)) {
            *p += 1;
            *b += u64::from(meta.len);
        }
        flow.last_seen = now;
        let mut established = false;
        let mut ended = None;
        const CONTROL: TcpFlags = TcpFlags::SYN.union(TcpFlags::FIN).union(TcpFlags::RST);
        match (flow.state, &meta.tcp) {
            // Fast path: data or ACK on an established connection changes no TCP state.
            (FlowState::Tcp(TcpState::Established), Some(t))
                if t.flags.bits() & CONTROL.bits() == 0 => {}
            (FlowState::Tcp(_), Some(t)) => {
                let step = flow.tcp.on_segment(side, t);
                flow.state = FlowState::Tcp(step.state);
                established = step.established;
                ended = step.ended;
            }
            (FlowState::Datagram(DatagramState::Unreplied), _) if side == Side::Responder => {
                flow.state = FlowState::Datagram(DatagramState::Replied);
                established = true;
            }
            _ => {}
        }
        if created && flow.state == FlowState::Tcp(TcpState::Established) {
            established = true;
        }
        let update = FlowUpdate {
            handle: FlowHandle {
                slot,
                id: flow.id(),
            },
            side,
            state: flow.state,
            created,
            established,
            ended,
            user: flow.user,
        };
        let class = Class::of(flow.state);
        if class != flow.class {
            self.unlink(slot);
            self.link_tail(slot, class, now);
        } else if now > flow.queued
            && now.saturating_duration_since(flow.queued) >= self.config.timeouts.slack
        {
            if self.lists[class.index()].tail == slot {
                flow.queued = now;
                // The tail may be the head too: its expiry moved.
                self.due = None;
            } else {
                self.unlink(slot);
                self.link_tail(slot, class, now);
            }
        }
        if let Some(reason) = ended {
            match reason {
                EndReason::Fin => self.counters.ended_fin += 1,
                _ => self.counters.ended_rst += 1,
            }
            // The key is copied only for the end event (not on every packet).
            let key = self.slab[slot as usize].key;
            self.events.push_back(FlowEvent::Ended {
                flow_id: update.handle.id,
                key,
                reason,
                user: update.user,
            });
        }
        update
    }

    /// Evict one victim (see the module doc). Returns false when the table is empty.
    fn evict_one(&mut self) -> bool {
        for group in EVICTION_GROUPS {
            let victim = group
                .iter()
                .map(|class| self.lists[class.index()].head)
                .filter(|&head| head != NIL)
                .min_by_key(|&head| self.slab[head as usize].queued);
            if let Some(slot) = victim {
                self.remove_slot(slot, EndReason::Evicted);
                return true;
            }
        }
        false
    }

    /// Remove a flow; a live flow ends with `reason`.
    fn remove_slot(&mut self, slot: u32, reason: EndReason) {
        self.unlink(slot);
        let flow = &mut self.slab[slot as usize];
        let (key, id, user, ended) = (flow.key, flow.id(), flow.user, flow.is_ended());
        flow.id = 0;
        self.index.remove(&key);
        self.by_id.remove(&id.get());
        self.free.push(slot);
        if ended {
            self.counters.tombstones_removed += 1;
            return;
        }
        match reason {
            EndReason::Aborted => self.counters.aborted += 1,
            EndReason::Evicted => self.counters.evicted += 1,
            EndReason::IdleTimeout => self.counters.ended_idle += 1,
            EndReason::Fin => self.counters.ended_fin += 1,
            EndReason::Rst => self.counters.ended_rst += 1,
        }
        self.events.push_back(FlowEvent::Ended {
            flow_id: id,
            key,
            reason,
            user,
        });
    }

    fn unlink(&mut self, slot: u32) {
        self.due = None;
        let flow = &self.slab[slot as usize];
        let (prev, next, class) = (flow.prev, flow.next, flow.class);
        if prev == NIL {
            self.lists[class.index()].head = next;
        } else {
            self.slab[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[class.index()].tail = prev;
        } else {
            self.slab[next as usize].prev = prev;
        }
    }

    fn link_tail(&mut self, slot: u32, class: Class, now: Timestamp) {
        self.due = None;
        let tail = self.lists[class.index()].tail;
        let flow = &mut self.slab[slot as usize];
        flow.queued = now;
        flow.prev = tail;
        flow.next = NIL;
        flow.class = class;
        if tail == NIL {
            self.lists[class.index()].head = slot;
        } else {
            self.slab[tail as usize].next = slot;
        }
        self.lists[class.index()].tail = slot;
    }
}

impl Default for FlowTable {
    fn default() -> Self {
        Self::new(FlowConfig::default())
    }
}
