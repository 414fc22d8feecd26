//! Net events (§11.5): a bounded ring of what the engine dropped (CLASSIFY_DROP), optionally what it
//! allowed (CLASSIFY_ALLOW), vetoes and contained callout panics; enumeration with a time window and
//! conditions; a drain cursor for a consumer that streams them.
//!
//! The engine has no clock (sans-IO): every event carries an engine-wide monotonic `seq`, plus the
//! last time the data path passed in with [`Engine::set_net_event_time`] (any unit the caller
//! chooses, for example milliseconds since the epoch or a FILETIME).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use crate::catalogue::LayerId;
use crate::classify::Hardness;
use crate::constants::{net_event_keyword, net_event_type};
use crate::filter::{CalloutId, FilterId};

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
}

impl NetEventKind {
    /// The `FWPM_NET_EVENT_TYPE_*` number, for the kinds WFP defines.
    pub fn fwpm_type(self) -> Option<u32> {
        match self {
            Self::ClassifyDrop => Some(net_event_type::CLASSIFY_DROP),
            Self::ClassifyAllow => Some(net_event_type::CLASSIFY_ALLOW),
            Self::Veto | Self::CalloutPanic | Self::CallbackPanic => None,
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

    #[test]
    fn kinds_have_wfp_names_and_numbers() {
        assert_eq!(NetEventKind::ClassifyDrop.fwpm_type(), Some(3));
        assert_eq!(NetEventKind::ClassifyAllow.fwpm_type(), Some(6));
        assert_eq!(NetEventKind::Veto.fwpm_type(), None);
        assert_eq!(NetEventKind::ClassifyDrop.name(), "CLASSIFY_DROP");
    }
}
