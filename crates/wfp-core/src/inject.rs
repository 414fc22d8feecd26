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

struct Packet {
    data: Arc<[u8]>,
    provenance: Arc<Provenance>,
    owner: Option<CalloutId>,
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
        self.ledger_insert(data.into(), Arc::default(), None)
    }

    /// The bytes of a held packet.
    pub fn packet_data(&self, p: PacketId) -> Option<Arc<[u8]>> {
        self.inject
            .state
            .lock()
            .held
            .get(&p)
            .map(|k| k.data.clone())
    }

    /// Replaces the bytes of a held packet (editing a clone). STATUS_FWP_NOT_FOUND when not held.
    pub fn set_packet_data(&self, p: PacketId, data: impl Into<Arc<[u8]>>) -> Status {
        match self.inject.state.lock().held.get_mut(&p) {
            Some(k) => {
                k.data = data.into();
                Status::SUCCESS
            }
            None => Status::FWP_NOT_FOUND,
        }
    }

    /// `FwpsFreeCloneNetBufferList0` / `FwpsFreeNetBufferList0` /
    /// `FwpsDiscardClonedStreamData0`: a held packet leaves the ledger. STATUS_FWP_NOT_FOUND for a
    /// packet that is not held (a double free, or one handed to an injection).
    pub fn free_packet(&self, p: PacketId) -> Status {
        let mut st = self.inject.state.lock();
        if st.held.remove(&p).is_none() {
            return Status::FWP_NOT_FOUND;
        }
        st.stats.freed += 1;
        Status::SUCCESS
    }

    /// Any `FwpsInject*Async0` / `FwpsStreamInjectAsync0`: queues the request for the data path.
    /// On success the packet is the injection's and the completion will run exactly once. On
    /// failure nothing changed (the caller still holds the packet; no completion):
    /// STATUS_FWP_INJECT_HANDLE_STALE (unknown handle), STATUS_FWP_INJECT_HANDLE_CLOSING
    /// (destroyed with injections pending), STATUS_FWP_INVALID_PARAMETER (the handle lacks the
    /// injection type; a stream injection outside the stream layers or with RECEIVE_DISCONNECT
    /// but not RECEIVE), STATUS_FWP_NOT_FOUND (the packet is not held).
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
        let Some(packet) = st.held.remove(&req.packet) else {
            return Status::FWP_NOT_FOUND;
        };
        let id = InjectionId(st.next_id());
        let mut provenance = (*packet.provenance).clone();
        provenance.hops.push(Hop {
            handle: req.handle,
            context: req.context,
            injection: id,
        });
        let loop_drop = provenance.depth() > max_depth;
        let reentry = req.kind.reentry();
        st.queue.push_back(Queued {
            request: InjectionRequest {
                id,
                handle: req.handle,
                family,
                kind: req.kind,
                packet: req.packet,
                data: packet.data,
                provenance: Arc::new(provenance),
                reentry,
            },
            completion: req.completion,
            loop_drop,
        });
        if let Some(e) = st.handles.get_mut(&req.handle) {
            e.pending += 1;
        }
        st.stats.injected += 1;
        Status::SUCCESS
    }

    /// Takes the next injection request for the data path (it is then in flight until
    /// [`Engine::complete_injection`]). Requests over the depth bound are completed as loop drops
    /// here and never returned.
    pub fn poll_injection(&self) -> Option<InjectionRequest> {
        loop {
            let mut st = self.inject.state.lock();
            let q = st.queue.pop_front()?;
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

    fn ledger_insert(
        &self,
        data: Arc<[u8]>,
        provenance: Arc<Provenance>,
        owner: Option<CalloutId>,
    ) -> PacketId {
        let mut st = self.inject.state.lock();
        let id = PacketId(st.next_id());
        st.held.insert(
            id,
            Packet {
                data,
                provenance,
                owner,
            },
        );
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
    pub fn clone_packet(&self, meta: &Metadata, data: &[u8]) -> Result<PacketId, Status> {
        let batch = self
            .engine
            .registry
            .get(self.callout_id)
            .is_some_and(|r| r.flags.contains(CalloutFlags::ALLOW_L2_BATCH_CLASSIFY));
        if batch {
            return Err(Status::INVALID_PARAMETER);
        }
        let provenance = meta.injection.clone().unwrap_or_default();
        Ok(self
            .engine
            .ledger_insert(data.into(), provenance, Some(self.callout_id)))
    }

    /// `FwpsCloneStreamData0`: the indicated stream bytes as a held ledger packet (free it with
    /// [`Engine::free_packet`] = `FwpsDiscardClonedStreamData0`, or hand it to a stream injection).
    pub fn clone_stream_data(&self, data: &crate::callout::StreamData<'_>) -> PacketId {
        self.engine
            .ledger_insert(data.data.into(), Arc::default(), Some(self.callout_id))
    }
}
