//! Packet injection, engine side (wfp-reference §10.4, §9.2 stream injection): injection handles,
//! the packet ledger (clones and allocations a callout holds), injection requests the data path
//! drains with [`Engine::poll_injection`], provenance and the injection-state query, and completion
//! callbacks that run exactly once.
//!
//! ```text
//!  callout: h = create_injection_handle(family, types)
//!           p = ctx.clone_packet(meta, bytes)        ledger: Held
//!           inject(h, InjectionKind::…, p, completion) ledger: Queued      → STATUS_SUCCESS
//!  data path: poll_injection() → InjectionRequest      ledger: InFlight
//!             re-enters at `request.reentry` with `Metadata::injection = request.provenance`
//!             complete_injection(id, Delivered | Dropped(status))
//!  engine:    completion(status) runs once; the packet leaves the ledger (delivered / dropped)
//! ```
//!
//! Accounting invariant (checked by the property tests): every packet the ledger ever held is in
//! exactly one of held / queued / in flight / delivered / dropped / freed, and
//! `created == held + queued + in_flight + delivered + dropped + freed`.
//!
//! Beyond WFP: every injected packet carries a [`Provenance`] chain (one hop per injection, the
//! clone of an injected packet inherits its chain). A request whose chain would exceed
//! [`crate::EngineOptions::max_injection_depth`] is not handed to the data path: its completion
//! runs with STATUS_FWP_DROP_NOICMP and `loop_drops` counts it — two callouts re-injecting each
//! other's packets end in a counted drop instead of a loop.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::callout::{ClassifyContext, Metadata};
use crate::catalogue::LayerId;
use crate::constants::{CalloutFlags, StreamFlags};
use crate::engine::Engine;
use crate::filter::{CalloutId, RtFilter};
use crate::status::Status;
use crate::value::Value;

/// An injection handle (`FwpsInjectionHandleCreate0`). Ids are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct InjectionHandle(pub u64);

/// A packet in the engine's ledger (a cloned or allocated NET_BUFFER_LIST).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct PacketId(pub u64);

/// One injection request, from `inject_*` to `complete_injection`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct InjectionId(pub u64);

/// `ADDRESS_FAMILY` of an injection handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum AddressFamily {
    /// AF_UNSPEC: any family (not for network injection).
    Unspecified = 0,
    /// AF_INET.
    Inet = 2,
    /// AF_INET6.
    Inet6 = 23,
}

/// `FWPS_INJECTION_TYPE_*` (verified values: wdk-runtime §7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct InjectionTypes(pub u32);

impl InjectionTypes {
    /// FWPS_INJECTION_TYPE_STREAM.
    pub const STREAM: Self = Self(0x1);
    /// FWPS_INJECTION_TYPE_TRANSPORT.
    pub const TRANSPORT: Self = Self(0x2);
    /// FWPS_INJECTION_TYPE_NETWORK.
    pub const NETWORK: Self = Self(0x4);
    /// FWPS_INJECTION_TYPE_FORWARD.
    pub const FORWARD: Self = Self(0x8);
    /// FWPS_INJECTION_TYPE_L2 (no L2 data path here: refused).
    pub const L2: Self = Self(0x10);
    /// FWPS_INJECTION_TYPE_VSWITCH_TRANSPORT (refused).
    pub const VSWITCH_TRANSPORT: Self = Self(0x20);

    /// True when every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// `FWPS_PACKET_INJECTION_STATE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum InjectionState {
    /// FWPS_PACKET_NOT_INJECTED.
    NotInjected = 0,
    /// FWPS_PACKET_INJECTED_BY_SELF.
    InjectedBySelf = 1,
    /// FWPS_PACKET_INJECTED_BY_OTHER.
    InjectedByOther = 2,
    /// FWPS_PACKET_PREVIOUSLY_INJECTED_BY_SELF.
    PreviouslyInjectedBySelf = 3,
}

/// One injection of a packet: who injected it and the `injectionContext` it passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The injection handle.
    pub handle: InjectionHandle,
    /// `injectionContext`.
    pub context: u64,
    /// The injection.
    pub injection: InjectionId,
}

/// Where an injected packet came from: every injection it went through, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The hops, oldest first (length = injection depth).
    pub hops: Vec<Hop>,
}

impl Provenance {
    /// The number of injections behind the packet.
    pub fn depth(&self) -> usize {
        self.hops.len()
    }
}

/// `FWPS_TRANSPORT_SEND_PARAMS1`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendParams {
    /// `remoteAddress` (for unconnected sends).
    pub remote_address: Option<std::net::IpAddr>,
    /// `remoteScopeId`.
    pub remote_scope_id: u32,
    /// `controlData` (deep copy).
    pub control_data: Option<Arc<[u8]>>,
    /// `headerIncludeHeader`.
    pub header_include_header: Option<Arc<[u8]>>,
}

/// Which injection function, with its own arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InjectionKind {
    /// `FwpsInjectNetworkSendAsync0`: an IP packet, outbound.
    NetworkSend {
        /// `compartmentId`.
        compartment: u32,
    },
    /// `FwpsInjectNetworkReceiveAsync0`: an IP packet, inbound on an interface.
    NetworkReceive {
        /// `compartmentId`.
        compartment: u32,
        /// `interfaceIndex`.
        interface: u32,
        /// `subInterfaceIndex`.
        sub_interface: u32,
    },
    /// `FwpsInjectForwardAsync0`: an IP packet onto the forwarding path.
    Forward {
        /// `compartmentId`.
        compartment: u32,
        /// `interfaceIndex` (outgoing).
        interface: u32,
    },
    /// `FwpsInjectTransportSendAsync0/1`: a transport packet sent from an endpoint.
    TransportSend {
        /// `endpointHandle`.
        endpoint: u64,
        /// `sendArgs`.
        params: Option<SendParams>,
        /// `compartmentId`.
        compartment: u32,
    },
    /// `FwpsInjectTransportReceiveAsync0`: a packet received by the transport (IP header first).
    TransportReceive {
        /// `compartmentId`.
        compartment: u32,
        /// `interfaceIndex`.
        interface: u32,
        /// `subInterfaceIndex`.
        sub_interface: u32,
    },
    /// `FwpsStreamInjectAsync0`: stream bytes inserted at the current point of a flow.
    Stream {
        /// `flowId`.
        flow: u64,
        /// `calloutId` (the injector: the data is not indicated to it again).
        callout: CalloutId,
        /// `layerId` (STREAM_V4/V6).
        layer: LayerId,
        /// `streamFlags`.
        flags: StreamFlags,
    },
}

impl InjectionKind {
    fn required_type(&self) -> InjectionTypes {
        match self {
            Self::NetworkSend { .. } | Self::NetworkReceive { .. } => InjectionTypes::NETWORK,
            Self::Forward { .. } => InjectionTypes::FORWARD,
            Self::TransportSend { .. } | Self::TransportReceive { .. } => InjectionTypes::TRANSPORT,
            Self::Stream { .. } => InjectionTypes::STREAM,
        }
    }

    /// Where the injected data re-enters (§10.4).
    pub fn reentry(&self) -> Reentry {
        match self {
            Self::NetworkSend { .. } | Self::TransportSend { .. } => Reentry::OutboundTop,
            Self::NetworkReceive { .. } | Self::TransportReceive { .. } => Reentry::InboundBottom,
            Self::Forward { .. } => Reentry::ForwardNoLayers,
            Self::Stream { callout, .. } => Reentry::StreamBelow { injector: *callout },
        }
    }
}

/// Where an injected packet re-enters the data path (§10.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reentry {
    /// Outbound: at the top of the stack, traversing every outbound WFP layer again.
    OutboundTop,
    /// Inbound: at the bottom of the stack, traversing every inbound WFP layer again.
    InboundBottom,
    /// Forwarding path: presented to no WFP layer.
    ForwardNoLayers,
    /// Stream: into the flow at the current point; indicated only to stream callouts after the
    /// injector's filters (lower weight) — [`Engine::stream_filters_below`].
    StreamBelow {
        /// The injecting callout.
        injector: CalloutId,
    },
}

/// What the data path takes from [`Engine::poll_injection`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectionRequest {
    /// The injection (argument of [`Engine::complete_injection`]).
    pub id: InjectionId,
    /// The injecting handle.
    pub handle: InjectionHandle,
    /// The handle's address family.
    pub family: AddressFamily,
    /// Function and arguments.
    pub kind: InjectionKind,
    /// The ledger packet.
    pub packet: PacketId,
    /// Its bytes (IP header first for network/forward/transport-receive, transport header first
    /// for transport send, stream bytes for stream).
    pub data: Arc<[u8]>,
    /// The packet's provenance including this injection: put it in `Metadata::injection` when
    /// classifying the packet again.
    pub provenance: Arc<Provenance>,
    /// Where it re-enters.
    pub reentry: Reentry,
    /// The flow the data belongs to: a stream injection's flow, or the flow of the classify
    /// that cloned or referenced the packet (`None` for packets a callout allocated). A data
    /// path of several takes the injections of its own flows
    /// ([`Engine::poll_injection_where`]).
    pub flow: Option<u64>,
}

/// The arguments of `FwpsConstructIpHeaderForTransportPacket0` besides the packet
/// ([`Engine::construct_ip_header_for_transport_packet`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpHeaderArgs {
    /// `headerIncludeHeaderLength`: 0 when the packet's data starts at the transport header;
    /// else the size of the IP header it starts with (`ipHeaderSize` of the classify).
    pub header_include_header_length: u32,
    /// `addressFamily` (AF_INET or AF_INET6).
    pub family: AddressFamily,
    /// `sourceAddress`.
    pub source: std::net::IpAddr,
    /// `remoteAddress`.
    pub remote: std::net::IpAddr,
    /// `nextProtocol` (IPPROTO).
    pub next_protocol: u8,
    /// `endpointHandle` (informational here: no socket options are applied).
    pub endpoint: u64,
    /// `controlData` (informational here: no ancillary data is applied).
    pub control_data: Option<Arc<[u8]>>,
    /// `interfaceIndex`.
    pub interface: u32,
    /// `subInterfaceIndex`.
    pub sub_interface: u32,
}

/// How the data path finished an injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectionOutcome {
    /// The packet went on (sent, received, or appended to the stream).
    Delivered,
    /// The packet was dropped on the way; the status goes to the completion
    /// (NET_BUFFER_LIST_STATUS).
    Dropped(Status),
}

/// What a completion callback (`FWPS_INJECT_COMPLETE0`) receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InjectionCompleted {
    /// The injection.
    pub id: InjectionId,
    /// The handle it used.
    pub handle: InjectionHandle,
    /// The packet (already retired from the ledger).
    pub packet: PacketId,
    /// NET_BUFFER_LIST_STATUS: STATUS_SUCCESS when delivered.
    pub status: Status,
}

/// `FWPS_INJECT_COMPLETE0` as a Rust closure (the C ABI wraps its function pointer and context).
pub type InjectCompletion = Box<dyn FnOnce(&InjectionCompleted) + Send>;

/// Injection and ledger counters (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectionStats {
    /// Packets that entered the ledger (clones + allocations).
    pub created: u64,
    /// Freed by their holder without injection (discarded clones: absorbed originals' copies).
    pub freed: u64,
    /// Injections accepted.
    pub injected: u64,
    /// Completed as delivered.
    pub delivered: u64,
    /// Completed as dropped (by the data path, by a loop drop, …).
    pub dropped: u64,
    /// Of `dropped`: over the provenance depth bound.
    pub loop_drops: u64,
    /// Completion callbacks run.
    pub completions: u64,
    /// Of `created`: indicated packets kept with FwpsReferenceNetBufferList0 (they leave the
    /// ledger through `freed` at their last dereference).
    pub referenced: u64,
}

/// A snapshot of the ledger for accounting checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerCounts {
    /// Held by callouts.
    pub held: usize,
    /// Queued for the data path.
    pub queued: usize,
    /// Taken by the data path, not yet completed.
    pub in_flight: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HandleState {
    Open,
    Closing,
}

struct HandleEntry {
    family: AddressFamily,
    types: InjectionTypes,
    state: HandleState,
    pending: usize,
}

/// A ledger packet: one NET_BUFFER_LIST with one NET_BUFFER.
struct Packet {
    /// The buffer: the bytes before the data start (what a retreat reaches) and the data.
    full: Arc<[u8]>,
    /// The data start in `full` (the NET_BUFFER's DataOffset).
    start: usize,
    provenance: Arc<Provenance>,
    owner: Option<CalloutId>,
    /// The flow of the classify it came from (cloned / referenced / stream data).
    flow: Option<u64>,
    /// `Some(refs)` for an indicated packet kept with FwpsReferenceNetBufferList0: the data path's
    /// packet, valid until the last FwpsDereferenceNetBufferList0 (never injected or freed
    /// itself: a callout clones it). `None` for clones and allocations (the callout's own).
    referenced: Option<Referenced>,
}

#[derive(Clone, Copy)]
struct Referenced {
    refs: u32,
    intend_to_modify: bool,
}

impl Packet {
    /// The bytes from the data start.
    fn data(&self) -> Arc<[u8]> {
        if self.start == 0 {
            return self.full.clone();
        }
        self.full.get(self.start..).unwrap_or_default().into()
    }
}

struct Queued {
    request: InjectionRequest,
    completion: Option<InjectCompletion>,
    loop_drop: bool,
}

#[derive(Default)]
struct State {
    handles: HashMap<InjectionHandle, HandleEntry>,
    held: HashMap<PacketId, Packet>,
    queue: VecDeque<Queued>,
    in_flight: HashMap<InjectionId, Queued>,
    stats: InjectionStats,
    next: u64,
}

impl State {
    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

/// The engine's injection tables.
#[derive(Default)]
pub(crate) struct InjectTable {
    state: Mutex<State>,
}

/// One call of an `inject_*` function.
pub struct Inject {
    /// `injectionHandle`.
    pub handle: InjectionHandle,
    /// `injectionContext` (returned by the state query to the same handle).
    pub context: u64,
    /// Function and arguments.
    pub kind: InjectionKind,
    /// The ledger packet to inject (consumed on success).
    pub packet: PacketId,
    /// `completionFn` + `completionContext`.
    pub completion: Option<InjectCompletion>,
}

impl Engine {
    /// `FwpsInjectionHandleCreate0`: `types` 0 means TRANSPORT | STREAM | FORWARD. Network
    /// injection needs a concrete family; L2 / VSWITCH types are refused
    /// (STATUS_FWP_INVALID_PARAMETER).
    pub fn create_injection_handle(
        &self,
        family: AddressFamily,
        types: InjectionTypes,
    ) -> Result<InjectionHandle, Status> {
        let types = if types.0 == 0 {
            InjectionTypes(0x1 | 0x2 | 0x8)
        } else {
            types
        };
        let known = InjectionTypes(0xF);
        if types.0 & !known.0 != 0
            || (types.contains(InjectionTypes::NETWORK) && family == AddressFamily::Unspecified)
        {
            return Err(Status::FWP_INVALID_PARAMETER);
        }
        let mut st = self.inject.state.lock();
        let h = InjectionHandle(st.next_id());
        st.handles.insert(
            h,
            HandleEntry {
                family,
                types,
                state: HandleState::Open,
                pending: 0,
            },
        );
        Ok(h)
    }

    /// `FwpsInjectionHandleDestroy0`: new injections on it fail with
    /// STATUS_FWP_INJECT_HANDLE_CLOSING; injections already accepted still complete (their
    /// completion runs once, when the data path finishes them). STATUS_SUCCESS when none was
    /// pending (the handle is gone), STATUS_PENDING otherwise (it goes with the last completion);
    /// STATUS_FWP_INJECT_HANDLE_STALE for an unknown or destroyed handle.
    pub fn destroy_injection_handle(&self, h: InjectionHandle) -> Status {
        let mut st = self.inject.state.lock();
        let Some(e) = st.handles.get_mut(&h) else {
            return Status::FWP_INJECT_HANDLE_STALE;
        };
        if e.state == HandleState::Closing {
            return Status::FWP_INJECT_HANDLE_STALE;
        }
        if e.pending == 0 {
            st.handles.remove(&h);
            return Status::SUCCESS;
        }
        e.state = HandleState::Closing;
        Status::PENDING
    }

    /// `FwpsAllocateNetBufferAndNetBufferList0` over `data`: a new ledger packet without provenance.
    pub fn allocate_packet(&self, data: impl Into<Arc<[u8]>>) -> PacketId {
        self.ledger_insert(Packet {
            full: data.into(),
            start: 0,
            provenance: Arc::default(),
            owner: None,
            flow: None,
            referenced: None,
        })
    }

    /// The bytes of a held packet, from its data start.
    pub fn packet_data(&self, p: PacketId) -> Option<Arc<[u8]>> {
        self.inject.state.lock().held.get(&p).map(Packet::data)
    }

    /// Replaces the bytes of a held packet (editing a clone); the data starts at the new bytes and
    /// nothing is behind them. STATUS_FWP_NOT_FOUND when not held; STATUS_INVALID_PARAMETER for a
    /// referenced indicated packet not referenced with `intend_to_modify`.
    pub fn set_packet_data(&self, p: PacketId, data: impl Into<Arc<[u8]>>) -> Status {
        match self.inject.state.lock().held.get_mut(&p) {
            Some(k) if k.referenced.is_some_and(|r| !r.intend_to_modify) => {
                Status::INVALID_PARAMETER
            }
            Some(k) => {
                k.full = data.into();
                k.start = 0;
                Status::SUCCESS
            }
            None => Status::FWP_NOT_FOUND,
        }
    }

    /// `FwpsFreeCloneNetBufferList0` / `FwpsFreeNetBufferList0` /
    /// `FwpsDiscardClonedStreamData0`: a held packet leaves the ledger. STATUS_FWP_NOT_FOUND for a
    /// packet that is not held (a double free, or one handed to an injection);
    /// STATUS_INVALID_PARAMETER for a referenced indicated packet (it is the data path's: end it
    /// with [`Engine::dereference_packet`]).
    pub fn free_packet(&self, p: PacketId) -> Status {
        let mut st = self.inject.state.lock();
        match st.held.get(&p) {
            None => return Status::FWP_NOT_FOUND,
            Some(k) if k.referenced.is_some() => return Status::INVALID_PARAMETER,
            Some(_) => {}
        }
        st.held.remove(&p);
        st.stats.freed += 1;
        Status::SUCCESS
    }

    /// `FwpsReferenceNetBufferList0` again on an indicated packet a callout already referenced
    /// ([`ClassifyContext::reference_packet`]): one more reference, each ended by one
    /// [`Engine::dereference_packet`]. STATUS_FWP_NOT_FOUND when not held;
    /// STATUS_INVALID_PARAMETER for a clone or allocation (the callout owns those outright).
    pub fn reference_packet(&self, p: PacketId) -> Status {
        let mut st = self.inject.state.lock();
        match st.held.get_mut(&p).map(|k| k.referenced.as_mut()) {
            None => Status::FWP_NOT_FOUND,
            Some(None) => Status::INVALID_PARAMETER,
            Some(Some(r)) => {
                r.refs = r.refs.saturating_add(1);
                Status::SUCCESS
            }
        }
    }

    /// `FwpsDereferenceNetBufferList0`: drops one reference of a referenced indicated packet; with
    /// the last one it leaves the ledger (counted in `freed`) and its id is dead.
    /// STATUS_FWP_NOT_FOUND when not held (a dereference too many); STATUS_INVALID_PARAMETER for a
    /// clone or allocation.
    pub fn dereference_packet(&self, p: PacketId) -> Status {
        let mut st = self.inject.state.lock();
        let last = match st.held.get_mut(&p).map(|k| k.referenced.as_mut()) {
            None => return Status::FWP_NOT_FOUND,
            Some(None) => return Status::INVALID_PARAMETER,
            Some(Some(r)) => {
                r.refs -= 1;
                r.refs == 0
            }
        };
        if last {
            st.held.remove(&p);
            st.stats.freed += 1;
        }
        Status::SUCCESS
    }

    /// `FwpsAllocateCloneNetBufferList0` outside classifyFn, of a held packet (typically a
    /// referenced indicated packet whose verdict the callout decided later): a new packet the
    /// callout owns, with the same bytes, data start and provenance. STATUS_FWP_NOT_FOUND when
    /// `p` is not held.
    pub fn clone_held_packet(&self, p: PacketId) -> Result<PacketId, Status> {
        let copy = {
            let st = self.inject.state.lock();
            let k = st.held.get(&p).ok_or(Status::FWP_NOT_FOUND)?;
            Packet {
                full: k.full.clone(),
                start: k.start,
                provenance: k.provenance.clone(),
                owner: k.owner,
                flow: k.flow,
                referenced: None,
            }
        };
        Ok(self.ledger_insert(copy))
    }

    /// `NdisRetreatNetBufferDataStart` on a held packet: the data starts `delta` bytes earlier —
    /// over the bytes the packet carries before its data start (the headers behind an inbound
    /// layer's data offset), and, past them, over `delta` new zeroed bytes (NDIS allocates a new
    /// MDL). STATUS_FWP_NOT_FOUND when not held; STATUS_INVALID_PARAMETER over 64 KiB.
    pub fn retreat_packet(&self, p: PacketId, delta: usize) -> Status {
        let mut st = self.inject.state.lock();
        let Some(k) = st.held.get_mut(&p) else {
            return Status::FWP_NOT_FOUND;
        };
        if delta <= k.start {
            k.start -= delta;
            return Status::SUCCESS;
        }
        let grow = delta - k.start;
        if k.full.len() - k.start + delta > usize::from(u16::MAX) {
            return Status::INVALID_PARAMETER;
        }
        let mut v = vec![0u8; grow];
        v.extend_from_slice(&k.full);
        k.full = v.into();
        k.start = 0;
        Status::SUCCESS
    }

    /// `NdisAdvanceNetBufferDataStart` on a held packet: the data starts `delta` bytes later (the
    /// bytes stay behind it, reachable by a retreat). STATUS_FWP_NOT_FOUND when not held;
    /// STATUS_INVALID_PARAMETER past the end of the data.
    pub fn advance_packet(&self, p: PacketId, delta: usize) -> Status {
        let mut st = self.inject.state.lock();
        let Some(k) = st.held.get_mut(&p) else {
            return Status::FWP_NOT_FOUND;
        };
        if delta > k.full.len() - k.start {
            return Status::INVALID_PARAMETER;
        }
        k.start += delta;
        Status::SUCCESS
    }

    /// `FwpsConstructIpHeaderForTransportPacket0` (§10.4) on a held packet whose data starts at
    /// its transport header (`header_include_header_length` 0: a new IP header is put in front) or
    /// at an existing IP header of that many bytes (rebuilt): the addresses and protocol of
    /// `args`; IPv4 options of an existing header kept, IPv6 extension headers removed; the IP
    /// and TCP / UDP / ICMP checksums computed. The data then starts at the IP header.
    /// STATUS_FWP_NOT_FOUND when not held; STATUS_INVALID_PARAMETER for an unspecified or mixed
    /// family, an existing header that is not an IP header of the family and length given, or a
    /// packet over 64 KiB.
    pub fn construct_ip_header_for_transport_packet(
        &self,
        p: PacketId,
        args: &IpHeaderArgs,
    ) -> Status {
        let mut st = self.inject.state.lock();
        let Some(k) = st.held.get_mut(&p) else {
            return Status::FWP_NOT_FOUND;
        };
        let data = k.data();
        match build_ip_header(&data, args) {
            Ok(bytes) => {
                k.full = bytes.into();
                k.start = 0;
                Status::SUCCESS
            }
            Err(s) => s,
        }
    }

    /// Any `FwpsInject*Async0` / `FwpsStreamInjectAsync0`: queues the request for the data path.
    /// On success the packet is the injection's and the completion will run exactly once. On
    /// failure nothing changed (the caller still holds the packet; no completion):
    /// STATUS_FWP_INJECT_HANDLE_STALE (unknown handle), STATUS_FWP_INJECT_HANDLE_CLOSING
    /// (destroyed with injections pending), STATUS_FWP_INVALID_PARAMETER (the handle lacks the
    /// injection type; a stream injection outside the stream layers or with RECEIVE_DISCONNECT
    /// but not RECEIVE), STATUS_FWP_NOT_FOUND (the packet is not held), STATUS_INVALID_PARAMETER
    /// (a referenced indicated packet: inject a clone of it). The data injected is the packet's
    /// from its data start.
    pub fn inject(&self, req: Inject) -> Status {
        if let InjectionKind::Stream { layer, flags, .. } = &req.kind {
            let bad_flags = flags.contains(StreamFlags::RECEIVE_DISCONNECT)
                && !flags.contains(StreamFlags::RECEIVE);
            if bad_flags || crate::pend::base_name(*layer) != Some("STREAM") {
                return Status::FWP_INVALID_PARAMETER;
            }
        }
        let max_depth = self.options.max_injection_depth;
        let mut st = self.inject.state.lock();
        let family = match st.handles.get(&req.handle) {
            None => return Status::FWP_INJECT_HANDLE_STALE,
            Some(e) if e.state == HandleState::Closing => return Status::FWP_INJECT_HANDLE_CLOSING,
            Some(e) if !e.types.contains(req.kind.required_type()) => {
                return Status::FWP_INVALID_PARAMETER
            }
            Some(e) => e.family,
        };
        match st.held.get(&req.packet) {
            None => return Status::FWP_NOT_FOUND,
            // The data path's own packet: a callout injects a clone of it.
            Some(k) if k.referenced.is_some() => return Status::INVALID_PARAMETER,
            Some(_) => {}
        }
        let Some(packet) = st.held.remove(&req.packet) else {
            return Status::FWP_NOT_FOUND;
        };
        let data = packet.data();
        let id = InjectionId(st.next_id());
        let mut provenance = (*packet.provenance).clone();
        provenance.hops.push(Hop {
            handle: req.handle,
            context: req.context,
            injection: id,
        });
        let loop_drop = provenance.depth() > max_depth;
        let reentry = req.kind.reentry();
        let flow = match &req.kind {
            InjectionKind::Stream { flow, .. } => Some(*flow),
            _ => packet.flow,
        };
        let queued = Queued {
            request: InjectionRequest {
                id,
                handle: req.handle,
                family,
                kind: req.kind,
                packet: req.packet,
                data,
                provenance: Arc::new(provenance),
                reentry,
                flow,
            },
            completion: req.completion,
            loop_drop,
        };
        if let Some(e) = st.handles.get_mut(&req.handle) {
            e.pending += 1;
        }
        st.stats.injected += 1;
        self.queue_async(st, |s| &mut s.queue, [queued]);
        Status::SUCCESS
    }

    /// Takes the next injection request for the data path (it is then in flight until
    /// [`Engine::complete_injection`]). Requests over the depth bound are completed as loop drops
    /// here and never returned.
    pub fn poll_injection(&self) -> Option<InjectionRequest> {
        self.poll_injection_where(|_| true)
    }

    /// [`Engine::poll_injection`] taking only the oldest request `mine` accepts (the others stay
    /// queued, in order): each data path of several takes the injections of its own flows
    /// ([`InjectionRequest::flow`]).
    pub fn poll_injection_where(
        &self,
        mut mine: impl FnMut(&InjectionRequest) -> bool,
    ) -> Option<InjectionRequest> {
        loop {
            let mut st = self.inject.state.lock();
            let i = st.queue.iter().position(|q| mine(&q.request))?;
            let q = st.queue.remove(i)?;
            if q.loop_drop {
                st.stats.loop_drops += 1;
                drop(st);
                self.finish_injection(q, Status::FWP_DROP_NOICMP);
                continue;
            }
            let request = q.request.clone();
            st.in_flight.insert(request.id, q);
            return Some(request);
        }
    }

    /// The data path finished an injection taken from [`Engine::poll_injection`]: the completion
    /// runs now (once) and the packet leaves the ledger. STATUS_FWP_NOT_FOUND for an id that is not
    /// in flight (a double completion).
    pub fn complete_injection(&self, id: InjectionId, outcome: InjectionOutcome) -> Status {
        let Some(q) = self.inject.state.lock().in_flight.remove(&id) else {
            return Status::FWP_NOT_FOUND;
        };
        let status = match outcome {
            InjectionOutcome::Delivered => Status::SUCCESS,
            InjectionOutcome::Dropped(s) => s,
        };
        self.finish_injection(q, status);
        Status::SUCCESS
    }

    /// `FwpsQueryPacketInjectionState0`: relative to `handle`, for a packet whose provenance is
    /// `provenance` (`Metadata::injection`); returns the state and, for the injector's own packets,
    /// the `injectionContext` it passed.
    pub fn query_packet_injection_state(
        &self,
        handle: InjectionHandle,
        provenance: Option<&Provenance>,
    ) -> (InjectionState, Option<u64>) {
        let hops = provenance.map_or(&[][..], |p| p.hops.as_slice());
        match hops.split_last() {
            None => (InjectionState::NotInjected, None),
            Some((last, _)) if last.handle == handle => {
                (InjectionState::InjectedBySelf, Some(last.context))
            }
            Some((_, earlier)) => match earlier.iter().rev().find(|h| h.handle == handle) {
                Some(h) => (InjectionState::PreviouslyInjectedBySelf, Some(h.context)),
                None => (InjectionState::InjectedByOther, None),
            },
        }
    }

    /// Counters.
    pub fn injection_stats(&self) -> InjectionStats {
        self.inject.state.lock().stats
    }

    /// Where the ledger's live packets are.
    pub fn ledger_counts(&self) -> LedgerCounts {
        let st = self.inject.state.lock();
        LedgerCounts {
            held: st.held.len(),
            queued: st.queue.len(),
            in_flight: st.in_flight.len(),
        }
    }

    /// Live injection handles (open or closing).
    pub fn injection_handle_count(&self) -> usize {
        self.inject.state.lock().handles.len()
    }

    /// The matching filters at a stream layer after the last filter of `injector` — the stream
    /// callouts that see data `injector` injected (§9.2, T-ST-2).
    pub fn stream_filters_below(
        &self,
        layer: LayerId,
        values: &[Value],
        injector: CalloutId,
    ) -> Vec<Arc<RtFilter>> {
        let all = self.matching_filters(layer, values);
        let after = all
            .iter()
            .rposition(|f| f.callout_id == Some(injector))
            .map_or(0, |i| i + 1);
        all.into_iter().skip(after).collect()
    }

    fn ledger_insert(&self, packet: Packet) -> PacketId {
        let mut st = self.inject.state.lock();
        let id = PacketId(st.next_id());
        if packet.referenced.is_some() {
            st.stats.referenced += 1;
        }
        st.held.insert(id, packet);
        st.stats.created += 1;
        id
    }

    /// Runs a completion once and retires its packet.
    fn finish_injection(&self, mut q: Queued, status: Status) {
        let done = InjectionCompleted {
            id: q.request.id,
            handle: q.request.handle,
            packet: q.request.packet,
            status,
        };
        {
            let mut st = self.inject.state.lock();
            if status == Status::SUCCESS {
                st.stats.delivered += 1;
            } else {
                st.stats.dropped += 1;
            }
            st.stats.completions += 1;
            let h = q.request.handle;
            if let Some(e) = st.handles.get_mut(&h) {
                e.pending = e.pending.saturating_sub(1);
                if e.pending == 0 && e.state == HandleState::Closing {
                    st.handles.remove(&h);
                }
            }
        }
        if let Some(f) = q.completion.take() {
            // A panicking completion is contained like any callout callback.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&done)));
        }
    }

    /// True while a stream injection of `callout` into `flow` is queued or in flight.
    pub fn stream_injections_pending(&self, flow: u64, callout: CalloutId) -> bool {
        let st = self.inject.state.lock();
        let is = |q: &Queued| matches!(q.request.kind, InjectionKind::Stream { flow: f, callout: c, .. } if f == flow && c == callout);
        st.queue.iter().any(is) || st.in_flight.values().any(is)
    }

    /// Who cloned or allocated a held packet.
    pub fn packet_owner(&self, p: PacketId) -> Option<CalloutId> {
        self.inject.state.lock().held.get(&p).and_then(|k| k.owner)
    }
}

impl ClassifyContext<'_> {
    /// `FwpsAllocateCloneNetBufferList0` of the indicated packet `data` (with its `meta` for the
    /// provenance of an injected original). STATUS_INVALID_PARAMETER for a callout registered with
    /// FWP_CALLOUT_FLAG_ALLOW_L2_BATCH_CLASSIFY (§1.1).
    ///
    /// The clone keeps what is behind the layer's data offset (`Metadata::header_bytes`, the IP
    /// and transport headers at the inbound layers whose data starts at the payload): a callout
    /// reaches the whole packet with [`Engine::retreat_packet`] by `ipHeaderSize +
    /// transportHeaderSize`, as WFP callouts retreat the NET_BUFFER_LIST before cloning.
    pub fn clone_packet(&self, meta: &Metadata, data: &[u8]) -> Result<PacketId, Status> {
        self.refuse_l2_batch()?;
        Ok(self.engine.ledger_insert(self.indicated(meta, data, None)))
    }

    /// `FwpsReferenceNetBufferList0` on the indicated packet `data` (with its `meta`): it stays
    /// valid after classifyFn returns, until [`Engine::dereference_packet`] (once per reference;
    /// [`Engine::reference_packet`] adds more). It is the data path's packet: the callout reads it
    /// ([`Engine::packet_data`]), clones it ([`Engine::clone_held_packet`]) and, with
    /// `intend_to_modify`, may change it ([`Engine::set_packet_data`]; rule 2.6-2(c): it then
    /// clears the write right), but never injects or frees it. Like WFP's, the reference does not
    /// decide the packet's verdict: a callout that keeps it to re-inject a clone later absorbs it.
    /// STATUS_INVALID_PARAMETER for a callout registered with FWP_CALLOUT_FLAG_ALLOW_L2_BATCH_CLASSIFY
    /// (§1.1: such callouts may not reference or clone).
    pub fn reference_packet(
        &self,
        meta: &Metadata,
        data: &[u8],
        intend_to_modify: bool,
    ) -> Result<PacketId, Status> {
        self.refuse_l2_batch()?;
        let r = Referenced {
            refs: 1,
            intend_to_modify,
        };
        Ok(self
            .engine
            .ledger_insert(self.indicated(meta, data, Some(r))))
    }

    /// §1.1: a callout registered with FWP_CALLOUT_FLAG_ALLOW_L2_BATCH_CLASSIFY may not use
    /// FwpsReference/Dereference/AllocateClone/FreeClone NBL: STATUS_INVALID_PARAMETER.
    fn refuse_l2_batch(&self) -> Result<(), Status> {
        let batch = self
            .engine
            .registry
            .get(self.callout_id)
            .is_some_and(|r| r.flags.contains(CalloutFlags::ALLOW_L2_BATCH_CLASSIFY));
        if batch {
            return Err(Status::INVALID_PARAMETER);
        }
        Ok(())
    }

    /// `FwpsCloneStreamData0`: the indicated stream bytes as a held ledger packet (free it with
    /// [`Engine::free_packet`] = `FwpsDiscardClonedStreamData0`, or hand it to a stream injection).
    pub fn clone_stream_data(&self, data: &crate::callout::StreamData<'_>) -> PacketId {
        self.engine.ledger_insert(Packet {
            full: data.data.into(),
            start: 0,
            provenance: Arc::default(),
            owner: Some(self.callout_id),
            flow: self.flow,
            referenced: None,
        })
    }

    /// The indicated packet as a ledger packet: the headers behind the data offset, then `data`.
    fn indicated(&self, meta: &Metadata, data: &[u8], referenced: Option<Referenced>) -> Packet {
        let headers = meta.header_bytes.as_deref().unwrap_or_default();
        let mut full = Vec::with_capacity(headers.len() + data.len());
        full.extend_from_slice(headers);
        full.extend_from_slice(data);
        Packet {
            full: full.into(),
            start: headers.len(),
            provenance: meta.injection.clone().unwrap_or_default(),
            owner: Some(self.callout_id),
            // A data path may leave `flow_handle` set without its flag where WFP has no flow
            // handle (the IP-packet layers): not a metadata value, only the packet's flow for
            // routing its injection back to the data path of that flow.
            flow: meta
                .flow()
                .or(self.flow)
                .or((meta.flow_handle != 0).then_some(meta.flow_handle)),
            referenced,
        }
    }
}

/// Ones'-complement sum of `data` (RFC 1071) added to `acc`.
fn csum_add(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn csum_fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The IP packet [`Engine::construct_ip_header_for_transport_packet`] makes of `data` (§10.4).
fn build_ip_header(data: &[u8], a: &IpHeaderArgs) -> Result<Vec<u8>, Status> {
    use std::net::IpAddr;
    let bad = Status::INVALID_PARAMETER;
    let hil = usize::try_from(a.header_include_header_length).map_err(|_| bad)?;
    let (old, transport) = (data.get(..hil).ok_or(bad)?, data.get(hil..).ok_or(bad)?);
    let mut t = transport.to_vec();
    let (mut ip, proto_sum) = match (a.family, a.source, a.remote) {
        (AddressFamily::Inet, IpAddr::V4(s), IpAddr::V4(d)) => {
            // An existing IPv4 header keeps its options, TOS, identification and TTL.
            let (opts, tos, id, ttl) = match old {
                [] => (&[][..], 0, [0, 0], 64),
                [0x45..=0x4f, tos, _, _, i0, i1, _, _, ttl, ..]
                    if usize::from(old[0] & 0x0f) * 4 == hil =>
                {
                    (&old[20..], *tos, [*i0, *i1], *ttl)
                }
                _ => return Err(bad),
            };
            let hl = 20 + opts.len();
            let total = u16::try_from(hl + t.len()).map_err(|_| bad)?;
            let mut h = vec![0x40 | (hl / 4) as u8, tos];
            h.extend_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&[id[0], id[1], 0x40, 0, ttl, a.next_protocol, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h.extend_from_slice(opts);
            let c = csum_fold(csum_add(&h, 0));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            (h, csum_add(&s.octets(), csum_add(&d.octets(), 0)))
        }
        (AddressFamily::Inet6, IpAddr::V6(s), IpAddr::V6(d)) => {
            // An existing IPv6 header keeps its traffic class, flow label and hop limit; its
            // extension headers (inside `hil`) are removed.
            let (first, hop) = match old {
                [] => ([0x60, 0, 0, 0], 64),
                [v @ 0x60..=0x6f, b1, b2, b3, _, _, _, hop, ..] if hil >= 40 => {
                    ([*v, *b1, *b2, *b3], *hop)
                }
                _ => return Err(bad),
            };
            let len = u16::try_from(t.len()).map_err(|_| bad)?;
            let mut h = first.to_vec();
            h.extend_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&[a.next_protocol, hop]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            (h, csum_add(&s.octets(), csum_add(&d.octets(), 0)))
        }
        _ => return Err(bad),
    };
    // TCP / UDP / ICMPv6 over the pseudo-header; ICMPv4 over its own bytes.
    let at = match a.next_protocol {
        6 => Some(16),
        17 => Some(6),
        1 | 58 => Some(2),
        _ => None,
    };
    if let Some(at) = at.filter(|at| t.len() >= at + 2) {
        t[at] = 0;
        t[at + 1] = 0;
        let pseudo = if a.next_protocol == 1 {
            0
        } else {
            proto_sum + u64::from(a.next_protocol) + t.len() as u64
        };
        let mut c = csum_fold(csum_add(&t, pseudo));
        if a.next_protocol == 17 && c == 0 {
            c = 0xffff;
        }
        t[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    ip.extend_from_slice(&t);
    Ok(ip)
}
