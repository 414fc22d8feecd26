//! Machinery shared by the built-in callouts (crate-internal): verdict helpers that follow the callout
//! contract (wfp-reference §2.6), the per-flow state table behind flow contexts, the discovery of a
//! companion callout's run-time id (the msnmntr pattern, §6.2), a bounded report queue, and
//! incoming-value lookups.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use wfp_core::callout::{ClassifyOut, IncomingValues, Metadata, StreamIoPacket};
use wfp_core::catalogue::{self, LayerId};
use wfp_core::constants::{ClassifyOutFlags, Direction, RtFilterFlags, StreamFlags};
use wfp_core::inject::{AddressFamily, InjectionHandle, InjectionState, InjectionTypes};
use wfp_core::{ActionType, CalloutId, Engine, Guid, NotifyType, RtFilter, StreamAction, Value};

use crate::builtin_key;

// ----- injection -----------------------------------------------------------------------------

/// Network injection handles of a callout, one per address family, created on first use
/// (`FwpsInjectionHandleCreate0`, wfp-reference §10.4).
#[derive(Default)]
pub(crate) struct NetworkHandles(Mutex<[Option<InjectionHandle>; 2]>);

impl NetworkHandles {
    /// The handle for IP packet `packet`'s family (`None`: not IP, or creation failed).
    pub(crate) fn for_packet(&self, engine: &Engine, packet: &[u8]) -> Option<InjectionHandle> {
        let (i, family) = match packet.first()? >> 4 {
            4 => (0, AddressFamily::Inet),
            6 => (1, AddressFamily::Inet6),
            _ => return None,
        };
        let mut handles = self.0.lock();
        let slot = handles.get_mut(i)?;
        if slot.is_none() {
            // Network and transport injection (§10.4) through one handle per family.
            let types = InjectionTypes(InjectionTypes::NETWORK.0 | InjectionTypes::TRANSPORT.0);
            *slot = engine.create_injection_handle(family, types).ok();
        }
        *slot
    }

    /// The handle for the family of `layer` (a `_V4` / `_V6` layer).
    pub(crate) fn for_family(&self, engine: &Engine, layer: LayerId) -> Option<InjectionHandle> {
        let name = wfp_core::catalogue::layer(layer)?.name;
        let probe: &[u8] = if name.ends_with("_V6") {
            &[0x60]
        } else {
            &[0x45]
        };
        self.for_packet(engine, probe)
    }
}

/// Whether the indicated packet is one `handle` injected (now or before, §10.4
/// `FwpsQueryPacketInjectionState0`).
pub(crate) fn injected_by_self(engine: &Engine, handle: InjectionHandle, meta: &Metadata) -> bool {
    let (state, _) = engine.query_packet_injection_state(handle, meta.injection.as_deref());
    matches!(
        state,
        InjectionState::InjectedBySelf | InjectionState::PreviouslyInjectedBySelf
    )
}

// ----- verdicts ------------------------------------------------------------------------------

/// How a blocking callout enforces a match, chosen by its filter's action type (§2.5 table, §9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// FWP_ACTION_CALLOUT_UNKNOWN: stream callouts drop the connection (DROP_CONNECTION is only
    /// honoured for this filter type); packet callouts BLOCK.
    Drop,
    /// FWP_ACTION_CALLOUT_TERMINATING: BLOCK the data (stream callouts also mark the flow so every
    /// later indication is blocked).
    Block,
    /// FWP_ACTION_CALLOUT_INSPECTION: WFP ignores blocks from inspection filters; count only.
    Detect,
}

impl Mode {
    pub(crate) fn of(filter: &RtFilter) -> Self {
        match filter.action() {
            ActionType::CALLOUT_TERMINATING => Self::Block,
            ActionType::CALLOUT_INSPECTION => Self::Detect,
            _ => Self::Drop,
        }
    }
}

/// PERMIT, clearing the write right when the filter says CLEAR_ACTION_RIGHT (rule 2.6-2b).
pub(crate) fn permit(out: &mut ClassifyOut, filter: &RtFilter) {
    out.action_type = ActionType::PERMIT;
    if filter.flags().contains(RtFilterFlags::CLEAR_ACTION_RIGHT) {
        out.clear_write();
    }
}

/// BLOCK and clear the write right (rule 2.6-2a).
pub(crate) fn block(out: &mut ClassifyOut) {
    out.action_type = ActionType::BLOCK;
    out.clear_write();
}

/// "No opinion" at a packet layer: unchanged without the write right (rule 2.6-1); PERMIT under a
/// CALLOUT_TERMINATING filter (which would turn CONTINUE into BLOCK, §2.5); CONTINUE otherwise.
pub(crate) fn no_opinion(out: &mut ClassifyOut, filter: &RtFilter) {
    if !out.can_write() {
        return;
    }
    if filter.action() == ActionType::CALLOUT_TERMINATING {
        permit(out, filter);
    } else {
        out.action_type = ActionType::CONTINUE;
    }
}

/// True when no more data will follow this indication in its direction: the engine said
/// NO_MORE_DATA or BUFFER_LIMIT_REACHED (§2.5), or the data carries a FIN/RST flag (§9.1) — a
/// stream callout must decide now instead of asking for more.
pub(crate) fn stream_ends(io: &StreamIoPacket<'_>, out: &ClassifyOut) -> bool {
    out.flags
        .intersects(ClassifyOutFlags::NO_MORE_DATA | ClassifyOutFlags::BUFFER_LIMIT_REACHED)
        || io.stream_data.flags.intersects(
            StreamFlags::RECEIVE_DISCONNECT
                | StreamFlags::RECEIVE_ABORT
                | StreamFlags::SEND_DISCONNECT
                | StreamFlags::SEND_ABORT,
        )
}

/// FWPS_STREAM_ACTION_NEED_MORE_DATA with `countBytesRequired` = `total` accumulated bytes (brief
/// decision 8) and actionType NONE (§9.2).
pub(crate) fn need_more(io: &mut StreamIoPacket<'_>, out: &mut ClassifyOut, total: usize) {
    io.stream_action = StreamAction::NeedMoreData;
    io.count_bytes_required = u32::try_from(total).unwrap_or(u32::MAX);
    io.count_bytes_enforced = 0;
    out.action_type = ActionType::NONE;
}

/// Sets `countBytesEnforced`.
pub(crate) fn enforce(io: &mut StreamIoPacket<'_>, bytes: usize) {
    io.count_bytes_enforced = u64::try_from(bytes).unwrap_or(u64::MAX);
}

/// The direction of a stream indication (FWPS_STREAM_FLAG_RECEIVE is set for inbound data).
pub(crate) fn stream_direction(io: &StreamIoPacket<'_>) -> Direction {
    if io.stream_data.flags.contains(StreamFlags::RECEIVE) {
        Direction::Inbound
    } else {
        Direction::Outbound
    }
}

/// The flow context a stream blocker associates with its own (flow, layer, callout) key to remember
/// that the flow is blocked (CALLOUT_TERMINATING filters, where DROP_CONNECTION is not available).
pub(crate) const BLOCKED_FLOW: u64 = 0xB10C;

/// Marks the classify's flow as blocked for this callout at this layer (a no-op without a flow
/// handle; an existing mark is kept).
pub(crate) fn mark_blocked(
    engine: &Engine,
    callout: CalloutId,
    values: &IncomingValues<'_>,
    flow: Option<u64>,
) {
    if let Some(flow) = flow {
        let _already_marked_or_no_flow_delete =
            engine.flow_associate_context(flow, values.layer, callout, BLOCKED_FLOW);
    }
}

// ----- incoming values -----------------------------------------------------------------------

/// The value of the field whose `FWPS_FIELD_<layer>_<name>` suffix is `name` (FWP_EMPTY when the
/// layer has no such field). No allocation: compares against the catalogue's names.
pub(crate) fn field<'a>(values: &IncomingValues<'a>, name: &str) -> &'a Value {
    catalogue::layer(values.layer)
        .and_then(|l| l.fields.iter().position(|f| f.name == name))
        .map_or(&Value::Empty, |i| values.get(i))
}

/// An address value: FWP_UINT32 (IPv4, host order) or FWP_BYTE_ARRAY16 (IPv6).
pub(crate) fn addr(v: &Value) -> Option<IpAddr> {
    match v {
        Value::Uint32(a) => Some(IpAddr::V4(Ipv4Addr::from(*a))),
        Value::ByteArray16(b) => Some(IpAddr::V6(Ipv6Addr::from(*b))),
        _ => None,
    }
}

/// A FWP_UINT16 (ports).
pub(crate) fn port(v: &Value) -> u16 {
    match v {
        Value::Uint16(p) => *p,
        _ => 0,
    }
}

/// The FWP_DIRECTION in a DIRECTION field.
pub(crate) fn direction(v: &Value) -> Option<Direction> {
    match v.as_u64() {
        Some(0) => Some(Direction::Outbound),
        Some(1) => Some(Direction::Inbound),
        _ => None,
    }
}

// ----- per-flow state behind flow contexts ----------------------------------------------------

const SHARDS: usize = 16;

struct Entry<S> {
    refs: u32,
    associated: bool,
    state: S,
}

/// Per-flow states keyed by the flow-context value the callouts associate (a nonzero id). Each
/// state counts the contexts that refer to it; the last flowDeleteFn (brief decision 5: once per
/// context) finishes it, so a flow with several contexts is reported exactly once.
pub(crate) struct FlowTable<S> {
    next: AtomicU64,
    shards: Vec<Mutex<HashMap<u64, Entry<S>>>>,
}

impl<S> FlowTable<S> {
    pub(crate) fn new() -> Self {
        Self {
            next: AtomicU64::new(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, Entry<S>>> {
        let i = usize::try_from(id % SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    /// Inserts a state holding one "setup" reference; returns its context id (never 0).
    pub(crate) fn insert(&self, state: S) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed).max(1);
        self.shard(id).lock().insert(
            id,
            Entry {
                refs: 1,
                associated: false,
                state,
            },
        );
        id
    }

    /// Takes a reference for a context about to be associated.
    pub(crate) fn add_ref(&self, id: u64) {
        if let Some(e) = self.shard(id).lock().get_mut(&id) {
            e.refs += 1;
        }
    }

    /// Records that an association succeeded (the reference taken before it stays).
    pub(crate) fn associated(&self, id: u64) {
        if let Some(e) = self.shard(id).lock().get_mut(&id) {
            e.associated = true;
        }
    }

    /// Drops a reference. Returns the state when it was the last one and a context was associated
    /// (the flow is finished); a state that never got a context is discarded silently.
    pub(crate) fn release(&self, id: u64) -> Option<S> {
        let mut shard = self.shard(id).lock();
        let e = shard.get_mut(&id)?;
        e.refs = e.refs.saturating_sub(1);
        if e.refs > 0 {
            return None;
        }
        let e = shard.remove(&id)?;
        e.associated.then_some(e.state)
    }

    /// Runs `f` on a live state.
    pub(crate) fn with<R>(&self, id: u64, f: impl FnOnce(&mut S) -> R) -> Option<R> {
        self.shard(id).lock().get_mut(&id).map(|e| f(&mut e.state))
    }

    /// Live states.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// Associates `id` for every companion callout registered at `layer` and returns how many contexts
/// were associated. Takes a reference per attempt and gives it back on failure (a context that
/// already exists, STATUS_OBJECT_NAME_EXISTS, counts as a failure: the earlier one stays).
pub(crate) fn associate_all<S>(
    table: &FlowTable<S>,
    engine: &Engine,
    flow: u64,
    layer: LayerId,
    callouts: &[CalloutId],
    id: u64,
) -> usize {
    let mut n = 0;
    for &c in callouts {
        table.add_ref(id);
        if engine.flow_associate_context(flow, layer, c, id) == wfp_core::Status::SUCCESS {
            table.associated(id);
            n += 1;
        } else {
            let _never_last: Option<S> = table.release(id);
        }
    }
    n
}

// ----- companion discovery --------------------------------------------------------------------

struct Link {
    layer: LayerId,
    key: Guid,
    filters: u32,
    pinned: bool,
}

/// Finds the run-time ids of a companion callout (for example the STREAM half of the stream
/// monitor) so a FLOW_ESTABLISHED callout can associate contexts keyed to it (§6.2, msnmntr).
///
/// Keys come from three places: the companion's ADD_FILTER / DELETE_FILTER notifications (every
/// filter that references it, §3.2), keys pinned by the host, and the key [`builtin_key`] derives
/// for the companion's built-in name at that layer (what policy files use). Keys are resolved to ids
/// per engine at classify time, so one table can serve several engines.
pub(crate) struct Companions {
    name: &'static str,
    links: Mutex<Vec<Link>>,
}

impl Companions {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            links: Mutex::new(Vec::new()),
        }
    }

    /// The companion's notifyFn: counts the filters that reference each (layer, key).
    pub(crate) fn notify(&self, notify_type: NotifyType, filter: &RtFilter) {
        let Some(key) = filter.callout_key() else {
            return;
        };
        let layer = filter.layer();
        let mut links = self.links.lock();
        let pos = links.iter().position(|l| l.layer == layer && l.key == key);
        match (notify_type, pos) {
            (NotifyType::AddFilter, Some(i)) => links[i].filters += 1,
            (NotifyType::AddFilter, None) => links.push(Link {
                layer,
                key,
                filters: 1,
                pinned: false,
            }),
            (NotifyType::DeleteFilter, Some(i)) => {
                links[i].filters = links[i].filters.saturating_sub(1);
                if links[i].filters == 0 && !links[i].pinned {
                    links.swap_remove(i);
                }
            }
            _ => {}
        }
    }

    /// Names a companion registration explicitly.
    pub(crate) fn pin(&self, layer: LayerId, key: Guid) {
        let mut links = self.links.lock();
        match links.iter_mut().find(|l| l.layer == layer && l.key == key) {
            Some(l) => l.pinned = true,
            None => links.push(Link {
                layer,
                key,
                filters: 0,
                pinned: true,
            }),
        }
    }

    /// The registered companion ids at `layer` in `engine`.
    pub(crate) fn ids(&self, engine: &Engine, layer: LayerId) -> Vec<CalloutId> {
        let derived = builtin_key(self.name, layer);
        let mut ids: Vec<CalloutId> = Vec::new();
        let keys = {
            let links = self.links.lock();
            links
                .iter()
                .filter(|l| l.layer == layer)
                .map(|l| l.key)
                .chain(derived)
                .collect::<Vec<_>>()
        };
        for key in keys {
            if let Some(id) = engine.callout_id(&key) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    }
}

// ----- bounded report queue -------------------------------------------------------------------

/// A bounded FIFO of finished reports: when full the oldest is dropped and counted.
pub(crate) struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    dropped: AtomicU64,
}

impl<T> Queue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn push(&self, item: T) {
        let mut q = self.items.lock();
        if q.len() >= self.capacity {
            q.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(item);
    }

    pub(crate) fn drain(&self) -> Vec<T> {
        self.items.lock().drain(..).collect()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A relaxed event counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// "No opinion" at the stream layer, set explicitly (rule 2.6-8; the write right is not consulted
/// there): PERMIT of all indicated bytes under CALLOUT_TERMINATING, CONTINUE otherwise.
pub(crate) fn stream_no_opinion(
    io: &mut StreamIoPacket<'_>,
    out: &mut ClassifyOut,
    filter: &RtFilter,
) {
    if filter.action() == ActionType::CALLOUT_TERMINATING {
        permit(out, filter);
        enforce(io, io.stream_data.data.len());
    } else {
        out.action_type = ActionType::CONTINUE;
    }
}

// ----- the state behind a flow-reporting callout pair ----------------------------------------

/// A per-flow report that is completed when its flow ends.
pub(crate) trait Report {
    /// Records the end time.
    fn finish(&mut self, now: std::time::Duration);
}

/// What a FLOW_ESTABLISHED callout and its companion share: the host's clock, the live per-flow
/// reports (keyed by context id), the companion's keys, and the queue of finished reports.
pub(crate) struct Hub<R> {
    pub(crate) clock: std::sync::Arc<crate::Clock>,
    pub(crate) table: FlowTable<R>,
    pub(crate) companions: Companions,
    done: Queue<R>,
}

impl<R: Report> Hub<R> {
    pub(crate) fn new(
        clock: std::sync::Arc<crate::Clock>,
        companion: &'static str,
        capacity: usize,
    ) -> Self {
        Self {
            clock,
            table: FlowTable::new(),
            companions: Companions::new(companion),
            done: Queue::new(capacity),
        }
    }

    /// Gives back one reference (a flowDeleteFn, or the end of setup); queues the report when it
    /// was the last.
    pub(crate) fn release(&self, id: u64) {
        if let Some(mut r) = self.table.release(id) {
            r.finish(self.clock.now());
            self.done.push(r);
        }
    }

    pub(crate) fn drain(&self) -> Vec<R> {
        self.done.drain()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.done.dropped()
    }

    /// `Debug` output for the log `name` that owns this hub: live and dropped counts.
    pub(crate) fn debug(&self, name: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(name)
            .field("active", &self.table.len())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

/// The layer a FLOW_ESTABLISHED callout's data-side companion runs at: STREAM for TCP,
/// DATAGRAM_DATA for other protocols, matching the IP version.
pub(crate) fn data_layer(flow_layer: LayerId, protocol: u8) -> Option<LayerId> {
    use wfp_core::catalogue::layers;
    let tcp = protocol == wfp_core::constants::ip_proto::TCP;
    match (flow_layer, tcp) {
        (layers::ALE_FLOW_ESTABLISHED_V4, true) => Some(layers::STREAM_V4),
        (layers::ALE_FLOW_ESTABLISHED_V4, false) => Some(layers::DATAGRAM_DATA_V4),
        (layers::ALE_FLOW_ESTABLISHED_V6, true) => Some(layers::STREAM_V6),
        (layers::ALE_FLOW_ESTABLISHED_V6, false) => Some(layers::DATAGRAM_DATA_V6),
        _ => None,
    }
}
