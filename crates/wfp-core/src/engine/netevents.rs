//! Net events (§11.5): a bounded ring of what the engine dropped (CLASSIFY_DROP), optionally what it
//! allowed (CLASSIFY_ALLOW), vetoes and contained callout panics, plus what the host reports
//! ([`Engine::report_net_event`]: failure-posture events, pend timeouts); each carries the
//! FWPM_NET_EVENT_HEADER0 fields the classify's incoming values give (addresses, ports, protocol,
//! direction, app id); enumeration with a time window and conditions; a drain cursor for a
//! consumer that streams them.
//!
//! The engine has no clock (sans-IO): every event carries an engine-wide monotonic `seq`, plus the
//! last time the data path passed in with [`Engine::set_net_event_time`] (any unit the caller
//! chooses, for example milliseconds since the epoch or a FILETIME).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::catalogue::{self, LayerId};
use crate::classify::Hardness;
use crate::constants::{net_event_keyword, net_event_type, ActionType};
use crate::filter::{CalloutId, FilterId};
use crate::value::Value;

use super::Engine;

/// What a net event reports: `FWPM_NET_EVENT_TYPE` CLASSIFY_DROP / CLASSIFY_ALLOW plus engine
/// diagnostics that WFP reports through audit or not at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NetEventKind {
    /// A BLOCK overrode a hard PERMIT (audit 5153 "packet vetoed").
    Veto,
    /// A callout panicked; it was treated as unregistered for that classify.
    CalloutPanic,
    /// A callout's flowDeleteFn or notifyFn panicked.
    CallbackPanic,
    /// FWPM_NET_EVENT_TYPE_CLASSIFY_DROP (3): a classify ended in a BLOCK without ABSORB.
    ClassifyDrop,
    /// FWPM_NET_EVENT_TYPE_CLASSIFY_ALLOW (6): a classify ended in a PERMIT (only with the
    /// CLASSIFY_ALLOW keyword in [`EngineOptions::net_event_keywords`](super::EngineOptions)).
    ClassifyAllow,
    /// The host's failure posture decided packets without inspection ([`NetEventDetail::Posture`];
    /// reported by the host, brief "reliability promises": every fail-open event is counted).
    Posture,
    /// A pended operation reached its deadline and the host applied its default
    /// ([`NetEventDetail::PendTimeout`]).
    PendTimeout,
    /// A callout broke the classify contract of §2.5/§2.6 ([`NetEventDetail::CalloutContract`]);
    /// the engine applied its documented coercion (brief decision 11) and went on.
    CalloutContract,
}

impl NetEventKind {
    /// The `FWPM_NET_EVENT_TYPE_*` number, for the kinds WFP defines.
    pub fn fwpm_type(self) -> Option<u32> {
        match self {
            Self::ClassifyDrop => Some(net_event_type::CLASSIFY_DROP),
            Self::ClassifyAllow => Some(net_event_type::CLASSIFY_ALLOW),
            Self::Veto
            | Self::CalloutPanic
            | Self::CallbackPanic
            | Self::Posture
            | Self::PendTimeout
            | Self::CalloutContract => None,
        }
    }

    /// The name without prefix (`CLASSIFY_DROP`, `VETO`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Veto => "VETO",
            Self::CalloutPanic => "CALLOUT_PANIC",
            Self::CallbackPanic => "CALLBACK_PANIC",
            Self::ClassifyDrop => "CLASSIFY_DROP",
            Self::ClassifyAllow => "CLASSIFY_ALLOW",
            Self::Posture => "POSTURE",
            Self::PendTimeout => "PEND_TIMEOUT",
            Self::CalloutContract => "CALLOUT_CONTRACT",
        }
    }

    /// Every kind, for parsing names and labelling metrics.
    pub const ALL: [Self; 8] = [
        Self::ClassifyDrop,
        Self::ClassifyAllow,
        Self::Veto,
        Self::CalloutPanic,
        Self::CallbackPanic,
        Self::Posture,
        Self::PendTimeout,
        Self::CalloutContract,
    ];

    /// The kind named `name` (as [`NetEventKind::name`] gives it; any case).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// `FWPM_NET_EVENT_FLAG_*` bits of [`NetEventHeader::flags`] (§11.5).
pub mod header_flag {
    /// FWPM_NET_EVENT_FLAG_IP_PROTOCOL_SET.
    pub const IP_PROTOCOL_SET: u32 = 0x1;
    /// FWPM_NET_EVENT_FLAG_LOCAL_ADDR_SET.
    pub const LOCAL_ADDR_SET: u32 = 0x2;
    /// FWPM_NET_EVENT_FLAG_REMOTE_ADDR_SET.
    pub const REMOTE_ADDR_SET: u32 = 0x4;
    /// FWPM_NET_EVENT_FLAG_LOCAL_PORT_SET.
    pub const LOCAL_PORT_SET: u32 = 0x8;
    /// FWPM_NET_EVENT_FLAG_REMOTE_PORT_SET.
    pub const REMOTE_PORT_SET: u32 = 0x10;
    /// FWPM_NET_EVENT_FLAG_APP_ID_SET.
    pub const APP_ID_SET: u32 = 0x20;
    /// FWPM_NET_EVENT_FLAG_IP_VERSION_SET.
    pub const IP_VERSION_SET: u32 = 0x100;
}

/// FWPM_NET_EVENT_HEADER0 (§11.5): what the classify's incoming values said about the packet or
/// connection. Absent fields were not available at the layer (FWP_EMPTY or no such field).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetEventHeader {
    /// `ipProtocol`.
    pub ip_protocol: Option<u8>,
    /// `localAddrV4/V6`.
    pub local_addr: Option<IpAddr>,
    /// `remoteAddrV4/V6`.
    pub remote_addr: Option<IpAddr>,
    /// `localPort`.
    pub local_port: Option<u16>,
    /// `remotePort`.
    pub remote_port: Option<u16>,
    /// FWP_DIRECTION (0 outbound, 1 inbound) from the DIRECTION field, or implied by the layer.
    pub direction: Option<u32>,
    /// `appId` (ALE_APP_ID).
    pub app_id: Option<Arc<[u8]>>,
    /// The owner's uid from ALE_USER_ID (WFP's `userId` is a SID; this engine carries the uid as
    /// an extension and does not set FWPM_NET_EVENT_FLAG_USER_ID_SET for it).
    pub user_id: Option<u32>,
}

/// Field indices of the header fields at one layer.
#[derive(Clone, Copy, Default)]
struct HeaderFields {
    protocol: Option<usize>,
    local_addr: Option<usize>,
    remote_addr: Option<usize>,
    local_port: Option<usize>,
    remote_port: Option<usize>,
    direction: Option<usize>,
    app_id: Option<usize>,
    user_id: Option<usize>,
    /// The FWP_DIRECTION the layer implies (inbound / outbound layers, RECV_ACCEPT / CONNECT).
    implied_direction: Option<u32>,
}

fn header_fields(layer: LayerId) -> HeaderFields {
    static TABLE: OnceLock<Vec<HeaderFields>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        catalogue::all_layers()
            .iter()
            .map(|l| HeaderFields {
                protocol: l.field_index_by_name("IP_PROTOCOL"),
                local_addr: l.field_index_by_name("IP_LOCAL_ADDRESS"),
                remote_addr: l.field_index_by_name("IP_REMOTE_ADDRESS"),
                local_port: l.field_index_by_name("IP_LOCAL_PORT"),
                remote_port: l.field_index_by_name("IP_REMOTE_PORT"),
                direction: l.field_index_by_name("DIRECTION"),
                app_id: l.field_index_by_name("ALE_APP_ID"),
                user_id: l.field_index_by_name("ALE_USER_ID"),
                implied_direction: if l.name.starts_with("INBOUND")
                    || l.name.contains("RECV_ACCEPT")
                {
                    Some(1)
                } else if l.name.starts_with("OUTBOUND") || l.name.contains("AUTH_CONNECT") {
                    Some(0)
                } else {
                    None
                },
            })
            .collect()
    });
    table.get(usize::from(layer.0)).copied().unwrap_or_default()
}

fn ip_of(v: Option<&Value>) -> Option<IpAddr> {
    match v? {
        Value::Uint32(a) => Some(IpAddr::V4(Ipv4Addr::from(*a))),
        Value::ByteArray16(b) => Some(IpAddr::V6(Ipv6Addr::from(*b))),
        _ => None,
    }
}

impl NetEventHeader {
    /// The header from a classify's incoming values at `layer` (FWPS_FIELD order).
    pub fn from_values(layer: LayerId, values: &[Value]) -> Self {
        let f = header_fields(layer);
        let get = |i: Option<usize>| i.and_then(|i| values.get(i));
        let small = |i: Option<usize>| get(i).and_then(Value::as_u64);
        Self {
            ip_protocol: small(f.protocol).and_then(|p| u8::try_from(p).ok()),
            local_addr: ip_of(get(f.local_addr)),
            remote_addr: ip_of(get(f.remote_addr)),
            local_port: small(f.local_port).and_then(|p| u16::try_from(p).ok()),
            remote_port: small(f.remote_port).and_then(|p| u16::try_from(p).ok()),
            direction: small(f.direction)
                .and_then(|d| u32::try_from(d).ok())
                .or(f.implied_direction),
            app_id: match get(f.app_id) {
                Some(Value::ByteBlob(b)) if !b.is_empty() => Some(Arc::clone(b)),
                _ => None,
            },
            user_id: match get(f.user_id) {
                Some(Value::TokenInformation(t)) => Some(t.uid),
                _ => None,
            },
        }
    }

    /// The FWPM_NET_EVENT_FLAG_* bits of the fields present ([`header_flag`]).
    pub fn flags(&self) -> u32 {
        use header_flag as h;
        let addr = self.local_addr.or(self.remote_addr);
        [
            (self.ip_protocol.is_some(), h::IP_PROTOCOL_SET),
            (self.local_addr.is_some(), h::LOCAL_ADDR_SET),
            (self.remote_addr.is_some(), h::REMOTE_ADDR_SET),
            (self.local_port.is_some(), h::LOCAL_PORT_SET),
            (self.remote_port.is_some(), h::REMOTE_PORT_SET),
            (self.app_id.is_some(), h::APP_ID_SET),
            (addr.is_some(), h::IP_VERSION_SET),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .fold(0, |m, (_, bit)| m | bit)
    }

    /// 4 or 6, from the addresses.
    pub fn ip_version(&self) -> Option<u8> {
        self.local_addr
            .or(self.remote_addr)
            .map(|a| if a.is_ipv4() { 4 } else { 6 })
    }
}

/// A failure posture of the host (wfpd's `[posture]`): why packets were decided without the
/// engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Posture {
    /// The host was not running (the queue was bypassed, seen at the next start).
    Absent,
    /// The queue was full.
    Overload,
    /// A worker was stuck past its verdict deadline.
    Hang,
    /// The host failed internally deciding a packet.
    InternalError,
}

impl Posture {
    /// The name (`absent`, `overload`, `hang`, `internal_error`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Overload => "overload",
            Self::Hang => "hang",
            Self::InternalError => "internal_error",
        }
    }
}

/// What the host-reported kinds add to an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetEventDetail {
    /// [`NetEventKind::Posture`]: `count` packets were accepted (fail-open) or dropped
    /// (fail-closed) by `posture` since the previous such event.
    Posture {
        /// The posture.
        posture: Posture,
        /// Fail-open (accepted) or fail-closed (dropped).
        accepted: bool,
        /// Packets.
        count: u64,
    },
    /// [`NetEventKind::PendTimeout`]: pended operation `pending_id` timed out; the default
    /// (`permitted` or blocked) applied.
    PendTimeout {
        /// The host's id of the pended operation.
        pending_id: u64,
        /// The default that applied.
        permitted: bool,
    },
    /// [`NetEventKind::CalloutContract`]: what the callout did wrong.
    CalloutContract(ContractViolation),
}

/// A rule of the callout contract (§2.5, §2.6) a classifyFn broke, and what it returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContractViolation {
    /// §2.6 rule 1: without FWPS_RIGHT_ACTION_WRITE the callout changed `actionType` to
    /// `written` (only a BLOCK veto is allowed); the write was ignored.
    WriteWithoutRight {
        /// The action it wrote.
        written: ActionType,
    },
    /// §2.5: `actionType` is not BLOCK, PERMIT, CONTINUE or NONE (a CALLOUT_* type or an
    /// undefined number); the filter's action type coerced it.
    InvalidActionType {
        /// The action it returned.
        returned: ActionType,
    },
    /// §2.6 rule 3: FWPS_CLASSIFY_OUT_FLAG_ABSORB with an action other than BLOCK.
    AbsorbWithoutBlock {
        /// The action it returned.
        returned: ActionType,
    },
    /// §2.6 rule 2a: BLOCK returned with the write right still set (the block stays soft).
    BlockKeepsRight,
}

impl ContractViolation {
    /// The violation's name (`WRITE_WITHOUT_RIGHT`, `INVALID_ACTION_TYPE`,
    /// `ABSORB_WITHOUT_BLOCK`, `BLOCK_KEEPS_RIGHT`).
    pub fn name(self) -> &'static str {
        match self {
            Self::WriteWithoutRight { .. } => "WRITE_WITHOUT_RIGHT",
            Self::InvalidActionType { .. } => "INVALID_ACTION_TYPE",
            Self::AbsorbWithoutBlock { .. } => "ABSORB_WITHOUT_BLOCK",
            Self::BlockKeepsRight => "BLOCK_KEEPS_RIGHT",
        }
    }

    /// The action the callout returned, when the violation is about it.
    pub fn action(self) -> Option<ActionType> {
        match self {
            Self::WriteWithoutRight { written: a }
            | Self::InvalidActionType { returned: a }
            | Self::AbsorbWithoutBlock { returned: a } => Some(a),
            Self::BlockKeepsRight => None,
        }
    }
}

/// The decision trace in brief, carried by CLASSIFY_DROP / CLASSIFY_ALLOW events (the full trace
/// is only built when a caller asks for it; an event must stay cheap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionSummary {
    /// Hard (write right cleared) or soft.
    pub hardness: Hardness,
    /// The BLOCK was a veto of a hard PERMIT.
    pub vetoed: bool,
    /// Matching filters the classify considered (each one a trace step).
    pub filters_considered: u32,
}

/// A net event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetEvent {
    /// Kind.
    pub kind: NetEventKind,
    /// Layer of the classify.
    pub layer: LayerId,
    /// The filter involved (the blocking filter of a drop, the vetoing filter of a veto).
    pub filter_id: Option<FilterId>,
    /// The filter whose hard permit was vetoed.
    pub overridden_filter_id: Option<FilterId>,
    /// The callout involved.
    pub callout_id: Option<CalloutId>,
    /// The flow handle, when the layer has one.
    pub flow: Option<u64>,
    /// Engine-wide sequence number, from 1, stamped when recorded (0 before).
    pub seq: u64,
    /// The data path's time when recorded ([`Engine::set_net_event_time`]); `None` if never set.
    pub time: Option<u64>,
    /// For CLASSIFY_DROP / CLASSIFY_ALLOW: the decision in brief.
    pub decision: Option<DecisionSummary>,
    /// Addresses, ports, protocol, direction, app id (FWPM_NET_EVENT_HEADER0).
    pub header: NetEventHeader,
    /// What the host-reported kinds add.
    pub detail: Option<NetEventDetail>,
}

impl NetEvent {
    /// An event of `kind` at `layer` with nothing else set (the ring stamps `seq` and `time`).
    pub fn new(kind: NetEventKind, layer: LayerId) -> Self {
        Self {
            kind,
            layer,
            filter_id: None,
            overridden_filter_id: None,
            callout_id: None,
            flow: None,
            seq: 0,
            time: None,
            decision: None,
            header: NetEventHeader::default(),
            detail: None,
        }
    }
}

/// What [`Engine::enum_net_events`] returns: every condition set must hold (like an
/// `FWPM_NET_EVENT_ENUM_TEMPLATE0`: a time window and conditions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetEventEnumTemplate {
    /// Events stamped at or after this time (events without a time never match a window).
    pub start_time: Option<u64>,
    /// Events stamped at or before this time.
    pub end_time: Option<u64>,
    /// Events with a `seq` greater than this (a reader's cursor).
    pub after_seq: Option<u64>,
    /// Events at this layer.
    pub layer: Option<LayerId>,
    /// Events naming this filter (as `filter_id` or `overridden_filter_id`).
    pub filter_id: Option<FilterId>,
    /// Events of these kinds (empty: any kind).
    pub kinds: Vec<NetEventKind>,
    /// Events whose local or remote address is this one.
    pub addr: Option<IpAddr>,
    /// Events whose local or remote port is this one.
    pub port: Option<u16>,
    /// Events with this IP protocol.
    pub ip_protocol: Option<u8>,
}

impl NetEventEnumTemplate {
    /// True when `e` satisfies every condition.
    pub fn matches(&self, e: &NetEvent) -> bool {
        let in_window = match (self.start_time, self.end_time) {
            (None, None) => true,
            (start, end) => e
                .time
                .is_some_and(|t| start.is_none_or(|s| t >= s) && end.is_none_or(|x| t <= x)),
        };
        in_window
            && self.after_seq.is_none_or(|s| e.seq > s)
            && self.layer.is_none_or(|l| e.layer == l)
            && self
                .filter_id
                .is_none_or(|f| e.filter_id == Some(f) || e.overridden_filter_id == Some(f))
            && (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && self
                .addr
                .is_none_or(|a| e.header.local_addr == Some(a) || e.header.remote_addr == Some(a))
            && self
                .port
                .is_none_or(|p| e.header.local_port == Some(p) || e.header.remote_port == Some(p))
            && self
                .ip_protocol
                .is_none_or(|p| e.header.ip_protocol == Some(p))
    }
}

#[derive(Debug, Default)]
struct RingInner {
    events: VecDeque<NetEvent>,
    /// The last `seq` handed out.
    last_seq: u64,
    /// The last `seq` [`Engine::drain_net_events`] returned.
    drained: u64,
    /// The data path's latest time.
    now: Option<u64>,
}

/// The bounded ring (§11.5: "the log is circular").
#[derive(Debug, Default)]
pub(crate) struct NetEventRing {
    inner: Mutex<RingInner>,
}

impl Engine {
    /// Records `e` (stamping `seq` and `time`) unless collection is off; when the ring is full the
    /// oldest event goes, counted in `net_events_dropped` if no drain had returned it yet.
    pub(crate) fn push_event(&self, mut e: NetEvent) {
        if !self.options.collect_net_events {
            return;
        }
        let cap = self.options.net_event_capacity;
        let mut r = self.net_events.inner.lock();
        r.last_seq += 1;
        e.seq = r.last_seq;
        e.time = r.now;
        let drained = r.drained;
        let mut lost = 0;
        while r.events.len() >= cap {
            match r.events.pop_front() {
                Some(old) if old.seq > drained => lost += 1,
                Some(_) => {}
                None => break,
            }
        }
        if cap == 0 {
            lost += 1;
        } else {
            r.events.push_back(e);
        }
        drop(r);
        if lost > 0 {
            self.stats
                .net_events_dropped
                .fetch_add(lost, Ordering::Relaxed);
        }
    }

    /// Records an event the host observed (§11.5 "fail-open/posture events", pend timeouts:
    /// [`NetEventKind::Posture`], [`NetEventKind::PendTimeout`]), stamped and counted like the
    /// engine's own; nothing is recorded while collection is off.
    pub fn report_net_event(&self, e: NetEvent) {
        self.push_event(e);
    }

    /// The `seq` of the newest event recorded so far (0 before any).
    pub fn net_event_seq(&self) -> u64 {
        self.net_events.inner.lock().last_seq
    }

    /// The events recorded since the previous drain, oldest first. They stay in the ring for
    /// [`Engine::enum_net_events`] until newer events push them out.
    pub fn drain_net_events(&self) -> Vec<NetEvent> {
        let mut r = self.net_events.inner.lock();
        let drained = r.drained;
        let from = r.events.partition_point(|e| e.seq <= drained);
        let out: Vec<NetEvent> = r.events.range(from..).cloned().collect();
        r.drained = r.last_seq;
        out
    }

    /// A snapshot of the ring's events matching `template`, oldest first (FwpmNetEventEnum: the
    /// ring is not changed, so several readers may enumerate).
    pub fn enum_net_events(&self, template: &NetEventEnumTemplate) -> Vec<NetEvent> {
        let r = self.net_events.inner.lock();
        r.events
            .iter()
            .filter(|e| template.matches(e))
            .cloned()
            .collect()
    }

    /// Tells the engine the data path's time: events recorded from now on carry it (the engine has
    /// no clock). Any monotonic unit works; a time window in [`NetEventEnumTemplate`] uses the same.
    pub fn set_net_event_time(&self, now: u64) {
        self.net_events.inner.lock().now = Some(now);
    }

    /// True when a classify ending in `action` (not absorbed) records an event: BLOCK always (while
    /// collection is on), PERMIT only with the CLASSIFY_ALLOW keyword. One branch on the hot path.
    pub(crate) fn wants_classify_event(&self, block: bool) -> bool {
        self.options.collect_net_events
            && (block || self.options.net_event_keywords & net_event_keyword::CLASSIFY_ALLOW != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::layers;
    use crate::engine::EngineOptions;

    fn drop_at(layer: LayerId, filter: u64) -> NetEvent {
        NetEvent {
            filter_id: Some(FilterId(filter)),
            ..NetEvent::new(NetEventKind::ClassifyDrop, layer)
        }
    }

    #[test]
    fn capacity_zero_keeps_nothing_and_counts_every_event() {
        let e = Engine::new(EngineOptions {
            net_event_capacity: 0,
            ..EngineOptions::default()
        });
        e.push_event(drop_at(layers::INBOUND_TRANSPORT_V4, 1));
        e.push_event(drop_at(layers::INBOUND_TRANSPORT_V4, 1));
        assert!(e.drain_net_events().is_empty());
        assert_eq!(e.stats.net_events_dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn seq_is_monotonic_and_time_follows_the_data_path() {
        let e = Engine::default();
        e.push_event(drop_at(layers::INBOUND_TRANSPORT_V4, 1));
        e.set_net_event_time(7);
        e.push_event(NetEvent::new(
            NetEventKind::CalloutPanic,
            layers::OUTBOUND_TRANSPORT_V4,
        ));
        let got = e.drain_net_events();
        assert_eq!(
            got.iter().map(|x| (x.seq, x.time)).collect::<Vec<_>>(),
            [(1, None), (2, Some(7))]
        );
        // The overridden filter of a veto matches a filter condition too.
        let veto = NetEvent {
            overridden_filter_id: Some(FilterId(9)),
            ..drop_at(layers::INBOUND_TRANSPORT_V4, 1)
        };
        let t = NetEventEnumTemplate {
            filter_id: Some(FilterId(9)),
            ..NetEventEnumTemplate::default()
        };
        assert!(t.matches(&veto));
        assert!(!t.matches(&drop_at(layers::INBOUND_TRANSPORT_V4, 1)));
    }

    // §11.5 FWPM_NET_EVENT_HEADER0: a CLASSIFY_DROP carries the packet's addresses, ports,
    // protocol and direction from the incoming values; enumeration filters on them.
    #[test]
    fn classify_drop_carries_the_header_and_enumerates_by_address_and_port() {
        use crate::callout::{LayerData, Metadata};
        use crate::constants::ActionType;
        use crate::filter::FilterSpec;
        let e = Engine::default();
        let l = layers::INBOUND_TRANSPORT_V4;
        let id = e
            .add_filter(FilterSpec::new("drop", l, ActionType::BLOCK))
            .unwrap();
        let def = catalogue::layer(l).unwrap();
        let mut values = vec![Value::Empty; def.fields.len()];
        let mut set = |name: &str, v: Value| {
            let i = def.field_index_by_name(name).unwrap();
            values[i] = v;
        };
        set("IP_PROTOCOL", Value::Uint8(17));
        set("IP_LOCAL_ADDRESS", Value::Uint32(0x0a00_0001));
        set("IP_REMOTE_ADDRESS", Value::Uint32(0xc000_0207));
        set("IP_LOCAL_PORT", Value::Uint16(53));
        set("IP_REMOTE_PORT", Value::Uint16(40000));
        e.set_net_event_time(1_700_000_000_000);
        let r = e.classify(l, &values, &Metadata::default(), &mut LayerData::None, None);
        assert_eq!(r.action, ActionType::BLOCK);
        let got = e.drain_net_events();
        assert_eq!(got.len(), 1);
        let h = &got[0].header;
        assert_eq!(got[0].filter_id, Some(id));
        assert_eq!(got[0].time, Some(1_700_000_000_000));
        assert_eq!(h.ip_protocol, Some(17));
        assert_eq!(h.local_addr, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(h.remote_addr, Some("192.0.2.7".parse().unwrap()));
        assert_eq!((h.local_port, h.remote_port), (Some(53), Some(40000)));
        assert_eq!(h.direction, Some(1), "implied by the inbound layer");
        assert_eq!(h.ip_version(), Some(4));
        assert_eq!(h.flags(), 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x100);
        let by = |addr: Option<&str>, port: Option<u16>| {
            e.enum_net_events(&NetEventEnumTemplate {
                addr: addr.map(|a| a.parse().unwrap()),
                port,
                ..NetEventEnumTemplate::default()
            })
            .len()
        };
        assert_eq!(by(Some("192.0.2.7"), None), 1);
        assert_eq!(by(Some("10.0.0.1"), Some(53)), 1);
        assert_eq!(by(Some("192.0.2.8"), None), 0);
        assert_eq!(by(None, Some(80)), 0);
    }

    #[test]
    fn host_reported_posture_and_pend_timeout_events_are_stamped_and_enumerable() {
        let e = Engine::default();
        e.set_net_event_time(5);
        e.report_net_event(NetEvent {
            detail: Some(NetEventDetail::Posture {
                posture: Posture::Hang,
                accepted: true,
                count: 3,
            }),
            ..NetEvent::new(NetEventKind::Posture, layers::INBOUND_IPPACKET_V4)
        });
        e.report_net_event(NetEvent {
            detail: Some(NetEventDetail::PendTimeout {
                pending_id: 9,
                permitted: false,
            }),
            ..NetEvent::new(NetEventKind::PendTimeout, layers::ALE_AUTH_CONNECT_V4)
        });
        assert_eq!(e.net_event_seq(), 2);
        let t = NetEventEnumTemplate {
            kinds: vec![NetEventKind::from_name("posture").unwrap()],
            start_time: Some(5),
            ..NetEventEnumTemplate::default()
        };
        let got = e.enum_net_events(&t);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].seq, 1);
        assert_eq!(NetEventKind::PendTimeout.fwpm_type(), None);
        assert_eq!(NetEventKind::from_name("nope"), None);
        let off = Engine::new(EngineOptions {
            collect_net_events: false,
            ..EngineOptions::default()
        });
        off.report_net_event(NetEvent::new(
            NetEventKind::Posture,
            layers::INBOUND_IPPACKET_V4,
        ));
        assert!(off.drain_net_events().is_empty());
    }

    #[test]
    fn kinds_have_wfp_names_and_numbers() {
        assert_eq!(NetEventKind::ClassifyDrop.fwpm_type(), Some(3));
        assert_eq!(NetEventKind::ClassifyAllow.fwpm_type(), Some(6));
        assert_eq!(NetEventKind::Veto.fwpm_type(), None);
        assert_eq!(NetEventKind::ClassifyDrop.name(), "CLASSIFY_DROP");
    }

    /// Issue 14: the owner's uid from ALE_USER_ID reaches the header (an extension: WFP's userId
    /// is a SID, so FWPM_NET_EVENT_FLAG_USER_ID_SET stays clear).
    #[test]
    fn header_carries_the_owner_uid_from_ale_user_id() {
        let layer = layers::ALE_AUTH_CONNECT_V4;
        let def = catalogue::layer(layer).expect("layer");
        let mut values = vec![Value::Empty; def.fields.len()];
        let i = def.field_index_by_name("ALE_USER_ID").expect("field");
        values[i] = Value::TokenInformation(Arc::new(crate::security::Token {
            uid: 1000,
            gids: vec![1000],
        }));
        let h = NetEventHeader::from_values(layer, &values);
        assert_eq!(h.user_id, Some(1000));
        assert_eq!(h.flags() & 0x40, 0);
        assert_eq!(NetEventHeader::from_values(layer, &[]).user_id, None);
    }
}
