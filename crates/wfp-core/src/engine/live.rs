//! Live flows (§6, §8.2 "ALE stateful model" and "Reauthorization"): the data path announces flow
//! creation and end, so `FwpsFlowAssociateContext0` can refuse unknown flows, `FwpsFlowAbort0` can
//! end a flow for real (the data path drains [`FlowEvent::Aborted`] and blocks its later packets),
//! and reauthorization on policy change is one epoch comparison per packet.
//!
//! With [`FlowTracking::Implicit`] (the default, for data paths that do not announce flows) any
//! non-zero flow handle is accepted and `flow_abort` is what a data path calls at flow end.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use crate::catalogue::{layers, LayerId};
use crate::constants::ReauthorizeReason;
use crate::filter::FilterId;

/// Whether the engine knows live flows (an [`crate::EngineOptions`] field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowTracking {
    /// Any non-zero flow handle is a flow; `flow_abort` ends it (legacy data paths).
    #[default]
    Implicit,
    /// Only flows announced with `flow_created` exist; `flow_ended` ends them.
    Announced,
}

/// What the engine knows of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowStatus {
    /// Never announced, or ended.
    Unknown,
    /// Announced and alive.
    Live,
    /// `FwpsFlowAbort0` ran: the data path must block the flow's later packets and end it.
    Aborted,
}

/// A flow event, drained with [`crate::Engine::poll_flow_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowEvent {
    /// `FwpsFlowAbort0` ended the flow (its contexts' flowDeleteFn already ran).
    Aborted {
        /// The flow.
        flow: u64,
    },
}

/// What the data path must do before a flow's next packet (§8.2 "Reauthorization").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reauthorization {
    /// The layer that authorized the flow (classify there again, in either direction).
    pub layer: LayerId,
    /// FWP_CONDITION_REAUTHORIZE_REASON_*.
    pub reason: ReauthorizeReason,
}

#[derive(Clone, Copy)]
pub(crate) struct FlowRecord {
    pub(crate) status: FlowStatus,
    /// The authorizing layer and its generation at authorization.
    pub(crate) auth: Option<(LayerId, u64)>,
    /// The highest stream filter id when the flow was created (mid-stream inspection, §1.1).
    pub(crate) stream_mark: FilterId,
}

#[derive(Default)]
pub(crate) struct LiveFlows {
    pub(crate) flows: Mutex<HashMap<u64, FlowRecord>>,
    pub(crate) events: Mutex<VecDeque<FlowEvent>>,
}

/// The ALE layers whose policy changes reauthorize flows.
pub(crate) const AUTH_LAYERS: [LayerId; 4] = [
    layers::ALE_AUTH_CONNECT_V4,
    layers::ALE_AUTH_CONNECT_V6,
    layers::ALE_AUTH_RECV_ACCEPT_V4,
    layers::ALE_AUTH_RECV_ACCEPT_V6,
];

impl crate::Engine {
    /// The data path announces a new flow (with [`FlowTracking::Announced`]).
    /// STATUS_INVALID_PARAMETER for flow 0, STATUS_FWP_ALREADY_EXISTS for a live flow.
    pub fn flow_created(&self, flow: u64) -> crate::Status {
        if flow == 0 {
            return crate::Status::INVALID_PARAMETER;
        }
        let stream_mark = self.max_filter_id_at(&[layers::STREAM_V4, layers::STREAM_V6]);
        let mut flows = self.live.flows.lock();
        if flows.contains_key(&flow) {
            return crate::Status::FWP_ALREADY_EXISTS;
        }
        flows.insert(
            flow,
            FlowRecord {
                status: FlowStatus::Live,
                auth: None,
                stream_mark,
            },
        );
        crate::Status::SUCCESS
    }

    /// The data path says a flow ended (RST, FIN, idle timeout, or after an abort): flowDeleteFn
    /// once for each of its contexts, its deferrals and record forgotten. Returns how many
    /// contexts were (or will be, when their classify returns) deleted.
    pub fn flow_ended(&self, flow: u64) -> usize {
        self.live.flows.lock().remove(&flow);
        self.stream_flow_ended(flow);
        self.delete_flow_contexts(flow)
    }

    /// What the engine knows of `flow`.
    pub fn flow_status(&self, flow: u64) -> FlowStatus {
        self.live
            .flows
            .lock()
            .get(&flow)
            .map_or(FlowStatus::Unknown, |r| r.status)
    }

    /// Number of announced flows (live or aborted, not yet ended).
    pub fn live_flow_count(&self) -> usize {
        self.live.flows.lock().len()
    }

    /// Takes the oldest flow event.
    pub fn poll_flow_event(&self) -> Option<FlowEvent> {
        self.live.events.lock().pop_front()
    }

    /// Takes the oldest flow event `mine` accepts (the others stay queued, in order): each data
    /// path of several takes the events of its own flows.
    pub fn poll_flow_event_where(
        &self,
        mut mine: impl FnMut(&FlowEvent) -> bool,
    ) -> Option<FlowEvent> {
        let mut ev = self.live.events.lock();
        let i = ev.iter().position(&mut mine)?;
        ev.remove(i)
    }

    /// A flow was authorized at `layer` (AUTH_CONNECT / AUTH_RECV_ACCEPT) under the current policy.
    pub fn flow_authorized(&self, flow: u64, layer: LayerId) {
        let generation = self.layer_generation(layer);
        if let Some(r) = self.live.flows.lock().get_mut(&flow) {
            r.auth = Some((layer, generation));
        }
    }

    /// Changes whenever a commit changes filters at an ALE authorization layer (the sum of their
    /// generations: one snapshot load, O(1) per commit and per read). A data path compares it per
    /// packet and asks [`crate::Engine::flow_reauthorization`] only when it moved.
    pub fn reauthorization_epoch(&self) -> u64 {
        AUTH_LAYERS
            .iter()
            .map(|l| self.layer_generation(*l))
            .fold(0u64, u64::wrapping_add)
    }

    /// Whether `flow`'s next packet must be reauthorized (T-PEND-6): the filters at its
    /// authorizing layer changed since [`crate::Engine::flow_authorized`] → reason POLICY_CHANGE.
    pub fn flow_reauthorization(&self, flow: u64) -> Option<Reauthorization> {
        let (layer, generation) = self.live.flows.lock().get(&flow)?.auth?;
        (self.layer_generation(layer) != generation).then_some(Reauthorization {
            layer,
            reason: ReauthorizeReason::POLICY_CHANGE,
        })
    }

    /// True when a flow is usable for a context: Implicit tracking accepts any non-zero handle
    /// except aborted ones; Announced tracking needs a live announced flow.
    pub(crate) fn flow_is_live(&self, flow: u64) -> bool {
        match (self.options.flow_tracking, self.flow_status(flow)) {
            (_, FlowStatus::Aborted) => false,
            (FlowTracking::Implicit, _) => flow != 0,
            (FlowTracking::Announced, s) => s == FlowStatus::Live,
        }
    }

    /// The stream mark of an announced flow (mid-stream inspection).
    pub(crate) fn flow_stream_mark(&self, flow: u64) -> Option<FilterId> {
        if self.options.flow_tracking == FlowTracking::Implicit {
            return None;
        }
        self.live.flows.lock().get(&flow).map(|r| r.stream_mark)
    }

    /// Marks an announced flow aborted and queues the event (Announced tracking only).
    pub(crate) fn mark_aborted(&self, flow: u64) -> bool {
        let mut flows = self.live.flows.lock();
        let Some(r) = flows.get_mut(&flow) else {
            return false;
        };
        if r.status == FlowStatus::Aborted {
            return false;
        }
        r.status = FlowStatus::Aborted;
        self.queue_async(
            self.live.events.lock(),
            |q| q,
            [FlowEvent::Aborted { flow }],
        );
        true
    }
}

impl crate::Engine {
    /// The highest filter id at `layers` in the current snapshot.
    fn max_filter_id_at(&self, at: &[LayerId]) -> FilterId {
        let snap = self.snapshot.load();
        at.iter()
            .filter_map(|l| snap.layer(usize::from(l.0)))
            .flat_map(|v| v.sublayers.iter())
            .flat_map(|s| s.index.filters())
            .map(|f| f.filter_id)
            .max()
            .unwrap_or(FilterId(0))
    }
}
