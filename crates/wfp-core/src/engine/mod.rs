//! The filter engine: management state (the "BFE"), the published classify snapshot, the run-time
//! callout registry and flow contexts.
//!
//! ```text
//!  management calls ──► Transaction (writer mutex, undo log) ──commit──► Snapshot (ArcSwap)
//!                                                                            │ lock-free load
//!  classify(layer, values, meta, layer_data) ◄────────────────────────────────┘
//!        │ invokes callouts through the Registry (in-flight counted) and FlowContexts
//! ```
//!
//! A writer never blocks classify: classify loads the current snapshot with one atomic operation and
//! keeps it for the whole call, so it sees either all of a transaction or none of it.

mod enum_match;
mod enumerate;
mod flows;
mod live;
mod mgmt;
mod netevents;
mod observer;
#[cfg(test)]
mod pctx_tests;
mod registry;
mod session;
mod teardown;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

pub use enum_match::FilterEnumType;
pub use enumerate::{
    FilterEnumTemplate, ObjectEnumTemplate, ProviderContextEnumTemplate, ACTION_MASK_ANY,
    FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH, FILTER_ENUM_FLAG_BOOTTIME_ONLY,
    FILTER_ENUM_FLAG_INCLUDE_BOOTTIME, FILTER_ENUM_FLAG_INCLUDE_DISABLED, FILTER_ENUM_FLAG_SORTED,
};
pub use live::{FlowEvent, FlowStatus, FlowTracking, Reauthorization};
pub use mgmt::{CalloutObject, ProviderObject, SublayerObject, Transaction};
pub use netevents::{
    header_flag, ContractViolation, DecisionSummary, NetEvent, NetEventDetail,
    NetEventEnumTemplate, NetEventHeader, NetEventKind, Posture,
};
pub use observer::{CommitObserver, CommitPhase};
pub use session::{
    ObjectRef, PersistHook, PersistentChange, Session, SessionInfo, SessionOwner, SessionSpec,
    DEFAULT_TXN_WAIT, SESSION_FLAG_DYNAMIC, TXN_READ_ONLY,
};

use crate::callout::CalloutRegistration;
use crate::catalogue::{self, LayerId};
use crate::filter::{CalloutId, RtFilter};
use crate::guid::Guid;
use crate::status::Status;
pub(crate) use flows::FlowContexts;
pub(crate) use registry::{Registered, Registry};

/// Engine-wide behaviour switches (brief decisions 1 and 3).
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Let a *static* BLOCK filter veto a hard PERMIT too (WFP: callouts only). Default off.
    pub static_veto: bool,
    /// Net events kept in the ring before the oldest is dropped.
    pub net_event_capacity: usize,
    /// FWPM_ENGINE_COLLECT_NET_EVENTS (§11.5): record net events at all. Default on.
    pub collect_net_events: bool,
    /// FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS: `FWPM_NET_EVENT_KEYWORD_*` bits
    /// ([`crate::constants::net_event_keyword`]); CLASSIFY_ALLOW (0x10) records allows. Default 0.
    pub net_event_keywords: u32,
    /// Whether the data path announces flows ([`FlowTracking`]).
    pub flow_tracking: FlowTracking,
    /// Injections a packet may go through; a deeper injection is a counted drop
    /// ([`crate::inject`]).
    pub max_injection_depth: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            static_veto: false,
            net_event_capacity: 4096,
            collect_net_events: true,
            net_event_keywords: 0,
            flow_tracking: FlowTracking::Implicit,
            max_injection_depth: 8,
        }
    }
}

/// Counters, readable at any time.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Vetoes.
    pub vetoes: AtomicU64,
    /// Callout classifyFn panics contained.
    pub callout_panics: AtomicU64,
    /// notifyFn / flowDeleteFn panics contained.
    pub callback_panics: AtomicU64,
    /// Callout contract violations (§2.6), each also a CALLOUT_CONTRACT net event.
    pub contract_violations: AtomicU64,
    /// Net events lost: pushed out of the full ring (or refused by a zero-capacity one) before
    /// [`Engine::drain_net_events`] returned them.
    pub net_events_dropped: AtomicU64,
}

/// What [`Engine::policy_summary`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicySummary {
    /// Bit `id` set when run-time layer `id` holds a filter.
    pub nonempty_layers: u128,
    /// Changes whenever a commit changes filters.
    pub epoch: u64,
}

/// One sublayer's filters at one layer, in evaluation order.
#[derive(Debug)]
pub(crate) struct SublayerView {
    pub(crate) key: Guid,
    pub(crate) name: Arc<str>,
    pub(crate) weight: u16,
    /// The sublayer's filters in evaluation order and the index that finds the next matching one
    /// without scanning them all (updated at commit, sharing what did not change).
    pub(crate) index: crate::index::SublayerIndex,
}

/// One layer's policy: the sublayers holding filters, in evaluation order.
#[derive(Debug, Default)]
pub(crate) struct LayerView {
    pub(crate) sublayers: Vec<SublayerView>,
    /// Bit `i` set when some filter's condition reads field `i`; all ones when a callout filter
    /// exists (callouts see every value).
    pub(crate) fields_used: u64,
}

/// The immutable policy classify reads.
///
/// Issue 15 (B2): a commit copies this per-layer table (sharing every untouched layer), so a
/// layer without filters is `None` rather than an `Arc` of an empty view — copying and dropping
/// the table then touches a reference count per *non-empty* layer only, not one per layer of
/// the catalogue.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Per run-time layer id: its policy, `None` while it holds no filter.
    layers: Vec<Option<Arc<LayerView>>>,
    /// Per run-time layer id: the layer's generation ([`Engine::layer_generation`]).
    generations: Vec<u64>,
    /// Bit `i` set when layer `i` holds at least one filter.
    pub(crate) nonempty: u128,
    /// Incremented by every commit that changed filters.
    pub(crate) epoch: u64,
}

impl Snapshot {
    /// The snapshot of `layers` (a view per run-time layer id, with its generation).
    pub(crate) fn new(layers: Vec<(Option<Arc<LayerView>>, u64)>, epoch: u64) -> Self {
        let (layers, generations) = layers.into_iter().unzip();
        let mut s = Self {
            layers,
            generations,
            nonempty: 0,
            epoch,
        };
        for i in 0..s.layers.len() {
            s.set_nonempty(i);
        }
        s
    }

    /// Recomputes bit `i` of `nonempty` (an empty view is stored as `None`).
    fn set_nonempty(&mut self, i: usize) {
        let Some(slot) = self.layers.get_mut(i) else {
            return;
        };
        if slot.as_ref().is_some_and(|v| v.sublayers.is_empty()) {
            *slot = None;
        }
        if i < 128 {
            let bit = 1u128 << i;
            self.nonempty = if slot.is_some() {
                self.nonempty | bit
            } else {
                self.nonempty & !bit
            };
        }
    }

    /// The policy of layer `i` (`None`: no filter, or no such layer).
    #[inline]
    pub(crate) fn layer(&self, i: usize) -> Option<&LayerView> {
        self.layers.get(i)?.as_deref()
    }

    /// The generation of layer `i` (0 for no such layer).
    pub(crate) fn generation(&self, i: usize) -> u64 {
        self.generations.get(i).copied().unwrap_or(0)
    }

    /// The non-empty layers.
    pub(crate) fn views(&self) -> impl Iterator<Item = &LayerView> + '_ {
        self.layers.iter().flatten().map(|l| &**l)
    }

    /// This snapshot with the views of the layers in `changed` (id, new view, new generation)
    /// replaced, every other layer shared; the epoch moves on.
    pub(crate) fn with_layers(
        &self,
        changed: impl IntoIterator<Item = (usize, LayerView, u64)>,
    ) -> Self {
        let mut next = Self {
            layers: self.layers.clone(),
            generations: self.generations.clone(),
            nonempty: self.nonempty,
            epoch: self.epoch + 1,
        };
        for (i, view, generation) in changed {
            if let (Some(slot), Some(g)) = (next.layers.get_mut(i), next.generations.get_mut(i)) {
                *slot = Some(Arc::new(view));
                *g = generation;
            }
            next.set_nonempty(i);
        }
        next
    }
}

/// The WFP filter engine. Cheap to share: wrap it in an `Arc` and call it from any thread.
pub struct Engine {
    pub(crate) options: EngineOptions,
    pub(crate) snapshot: ArcSwap<Snapshot>,
    pub(crate) mgmt: Mutex<mgmt::Mgmt>,
    pub(crate) registry: Registry,
    pub(crate) flows: FlowContexts,
    pub(crate) net_events: netevents::NetEventRing,
    pub(crate) stats: EngineStats,
    pub(crate) pend: crate::pend::PendTable,
    pub(crate) inject: crate::inject::InjectTable,
    pub(crate) redirect: crate::redirect::RedirectTable,
    pub(crate) stream: crate::stream::StreamTable,
    pub(crate) live: live::LiveFlows,
    pub(crate) teardown: teardown::Teardown,
    /// Numbers classifyFn invocations ([`crate::ClassifyContext`] tokens).
    pub(crate) invocation_seq: AtomicU64,
    /// Bumped after anything is queued for a data path ([`Engine::async_generation`]).
    pub(crate) async_generation: AtomicU64,
    /// The epoch of the published snapshot, stored after it ([`Engine::policy_epoch`]).
    pub(crate) published_epoch: AtomicU64,
    /// Open management sessions and the owners of dynamic objects (§11.1).
    pub(crate) sessions: session::Sessions,
    /// The thread holding the writer lock (`mgmt`), so a second begin on it fails (§11.2).
    pub(crate) writer_thread: Mutex<Option<std::thread::ThreadId>>,
    /// Told around every filter-changing commit's publication (`observer.rs`).
    pub(crate) commit_observer: Mutex<Option<CommitObserver>>,
    /// The boot-time filters as of the last commit that changed them (§11.3).
    pub(crate) boottime: Mutex<BoottimeSet>,
}

/// The boot-time filters (§11.3 FWPM_FILTER_FLAG_BOOTTIME) as last committed, in evaluation
/// order (sublayer weight descending, sublayer creation order, filter weight descending, filter
/// id): what a host compiles into the rules it enforces before the engine runs. Published at
/// commit, so reading it never waits for the writer lock.
#[derive(Clone, Debug, Default)]
pub struct BoottimeSet {
    /// Bumped by every commit that added or deleted a boot-time filter.
    pub generation: u64,
    /// The filters.
    pub filters: Arc<[Arc<RtFilter>]>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(EngineOptions::default())
    }
}

impl Engine {
    /// An engine holding only the built-in objects (the layers and the built-in sublayers).
    pub fn new(options: EngineOptions) -> Self {
        let layers = catalogue::all_layers().iter().map(|_| (None, 0)).collect();
        Self {
            options,
            snapshot: ArcSwap::from_pointee(Snapshot::new(layers, 0)),
            mgmt: Mutex::new(mgmt::Mgmt::new()),
            registry: Registry::new(),
            flows: FlowContexts::new(),
            net_events: netevents::NetEventRing::default(),
            stats: EngineStats::default(),
            pend: crate::pend::PendTable::default(),
            inject: crate::inject::InjectTable::default(),
            redirect: crate::redirect::RedirectTable::default(),
            stream: crate::stream::StreamTable::default(),
            live: live::LiveFlows::default(),
            teardown: teardown::Teardown::default(),
            invocation_seq: AtomicU64::new(0),
            async_generation: AtomicU64::new(0),
            published_epoch: AtomicU64::new(0),
            sessions: session::Sessions::default(),
            writer_thread: Mutex::new(None),
            commit_observer: Mutex::new(None),
            boottime: Mutex::new(BoottimeSet::default()),
        }
    }

    /// A counter bumped after every pend event, stream event, flow event or injection request
    /// is queued for a data path (§10.1, §9.2, §10.4). A data path that drained those queues
    /// after reading the counter, and reads it unchanged later, knows they hold nothing new for
    /// it without taking their locks (one atomic load per packet).
    pub fn async_generation(&self) -> u64 {
        self.async_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// [`PolicySummary::epoch`] of the published policy, from one atomic (no snapshot load): a
    /// data path that cached what it needs of a summary per epoch checks it per packet. Stored
    /// after the snapshot is published, so a snapshot loaded after reading an epoch is at least
    /// that new.
    pub fn policy_epoch(&self) -> u64 {
        self.published_epoch
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Publishes `epoch` as the current snapshot's (after storing the snapshot).
    pub(crate) fn note_published(&self, epoch: u64) {
        self.published_epoch
            .store(epoch, std::sync::atomic::Ordering::Release);
    }

    /// The one place asynchronous work is queued for a data path (pend events §10.1, stream
    /// events §9.2, injection requests §10.4, flow events): `items` go on the queue `queue` picks
    /// out of the locked state `st`, the lock is released, then [`Engine::async_generation`] is
    /// bumped (when anything was queued), so a data path that reads it unchanged knows the
    /// queues hold nothing new for it.
    pub(crate) fn queue_async<S, T>(
        &self,
        mut st: parking_lot::MutexGuard<'_, S>,
        queue: impl FnOnce(&mut S) -> &mut std::collections::VecDeque<T>,
        items: impl IntoIterator<Item = T>,
    ) {
        let q = queue(&mut st);
        let before = q.len();
        q.extend(items);
        let queued = q.len() != before;
        drop(st);
        if queued {
            self.async_generation
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
    }

    /// The boot-time filters as last committed (never classified by this engine).
    pub fn boottime(&self) -> BoottimeSet {
        self.boottime.lock().clone()
    }

    /// The options the engine was built with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// True when no filter exists at `layer` (a classify there returns NONE_NO_MATCH without looking
    /// at the values, so a data path may skip building them).
    pub fn layer_is_empty(&self, layer: LayerId) -> bool {
        self.nonempty_layers() & (1u128 << (layer.0 & 127)) == 0
    }

    /// One bit per run-time layer id (bit `id`), set when the layer holds at least one filter — one
    /// atomic load for a data path that wants to skip empty layers for a whole packet.
    pub fn nonempty_layers(&self) -> u128 {
        self.snapshot.load().nonempty
    }

    /// The non-empty layers and the policy epoch (incremented by every commit that changed
    /// filters), read from one snapshot: a data path reads this once per packet, and only asks
    /// [`Engine::layer_generation`] when the epoch moved.
    pub fn policy_summary(&self) -> PolicySummary {
        let s = self.snapshot.load();
        PolicySummary {
            nonempty_layers: s.nonempty,
            epoch: s.epoch,
        }
    }

    /// Filters in the published policy (what classify sees), counted from the snapshot without
    /// the writer lock — a reader that must not wait for an open transaction (metrics).
    pub fn published_filter_count(&self) -> usize {
        self.snapshot
            .load()
            .views()
            .flat_map(|l| l.sublayers.iter())
            .map(|s| s.index.len())
            .sum()
    }

    /// Which incoming values classify at `layer` can read: bit `i` for field `i` (`FWPS_FIELD_*`
    /// order), all ones when a callout filter is present. A data path may leave the other fields
    /// FWP_EMPTY without changing any result.
    pub fn layer_fields_used(&self, layer: LayerId) -> u64 {
        self.snapshot
            .load()
            .layer(usize::from(layer.0))
            .map_or(0, |l| l.fields_used)
    }

    /// A counter that changes whenever the filters at `layer` change (the shims use it to
    /// reauthorize ALE flows after a policy change, §8.2).
    pub fn layer_generation(&self, layer: LayerId) -> u64 {
        self.snapshot.load().generation(usize::from(layer.0))
    }

    // ----- run-time callout API (§5) ---------------------------------------------------------

    /// `FwpsCalloutRegister`: returns the run-time id, or STATUS_FWP_ALREADY_EXISTS when the key is
    /// registered (STATUS_FWP_IN_USE while another thread registers or unregisters it).
    pub fn register_callout(&self, reg: CalloutRegistration) -> Result<CalloutId, Status> {
        self.registry.register(&reg)
    }

    /// `FwpsCalloutUnregisterById0`: stops new invocations at once, waits for in-flight ones, and
    /// answers STATUS_DEVICE_BUSY while flow contexts for the callout exist (call again after
    /// removing them). Never call it from inside a callback of the same callout. Once its
    /// in-flight calls drained, the operations and classifies the callout pended and never
    /// completed are completed on its behalf (reauthorized: its filters then act as §5.4 says)
    /// and its classify handles released (§5.3, [`crate::pend`]).
    pub fn unregister_callout(&self, id: CalloutId) -> Status {
        let status = self.registry.unregister(id);
        if status == Status::SUCCESS || status == Status::DEVICE_BUSY {
            self.complete_pends_of(id);
        }
        status
    }

    /// `FwpsCalloutUnregisterByKey0`.
    pub fn unregister_callout_by_key(&self, key: &Guid) -> Status {
        match self.registry.key_to_id(key) {
            Some(id) => self.unregister_callout(id),
            None => Status::FWP_CALLOUT_NOT_FOUND,
        }
    }

    /// The run-time id of a registered callout.
    pub fn callout_id(&self, key: &Guid) -> Option<CalloutId> {
        self.registry
            .key_to_id(key)
            .filter(|id| self.registry.get(*id).is_some())
    }

    /// True while the callout is registered and not unregistering.
    pub fn is_callout_registered(&self, id: CalloutId) -> bool {
        self.registry.get(id).is_some_and(|r| r.is_active())
    }

    /// How many times a callout's classifyFn panicked.
    pub fn callout_panics(&self, id: CalloutId) -> u64 {
        self.registry
            .get(id)
            .map_or(0, |r| r.panics.load(Ordering::Relaxed))
    }

    // ----- flow contexts (§6) ----------------------------------------------------------------

    /// `FwpsFlowAssociateContext0`. STATUS_INVALID_PARAMETER for a zero context, a layer that does
    /// not exist or carries no flows (§6.2), a flow that is not live (unknown with
    /// [`FlowTracking::Announced`], or aborted), or a callout that is not registered or has no
    /// flowDeleteFn; STATUS_OBJECT_NAME_EXISTS (a success-class code) when a context exists for
    /// the key — the old context stays.
    pub fn flow_associate_context(
        &self,
        flow: u64,
        layer: LayerId,
        callout: CalloutId,
        context: u64,
    ) -> Status {
        let flow_layer = catalogue::layer(layer).is_some_and(|l| l.is_flow_capable());
        if context == 0 || !flow_layer || !self.flow_is_live(flow) {
            return Status::INVALID_PARAMETER;
        }
        let Some(reg) = self.registry.get(callout) else {
            return Status::INVALID_PARAMETER;
        };
        if !reg.flow_delete {
            return Status::INVALID_PARAMETER;
        }
        // Counted as in flight so a concurrent unregister cannot finish between the check and the
        // association (it would orphan the context).
        let Some(_in_flight) = reg.enter() else {
            return Status::INVALID_PARAMETER;
        };
        match self.flows.associate(flow, layer, callout, context) {
            flows::Associate::Done => {
                reg.contexts.fetch_add(1, Ordering::SeqCst);
                Status::SUCCESS
            }
            flows::Associate::Exists => Status::OBJECT_NAME_EXISTS,
        }
    }

    /// `FwpsFlowRemoveContext0`: STATUS_SUCCESS after calling flowDeleteFn synchronously,
    /// STATUS_PENDING when a classify for that flow and callout is running (flowDeleteFn follows when
    /// it returns), STATUS_UNSUCCESSFUL when there is no context.
    pub fn flow_remove_context(&self, flow: u64, layer: LayerId, callout: CalloutId) -> Status {
        match self.flows.remove(flow, layer, callout) {
            flows::Remove::Removed(ctx) => {
                self.call_flow_delete(layer, callout, ctx);
                Status::SUCCESS
            }
            flows::Remove::Pending => Status::PENDING,
            flows::Remove::NotFound => Status::UNSUCCESSFUL,
        }
    }

    /// `FwpsFlowAbort0` (§6.1, T-FLOW-12): flowDeleteFn once for every context of the flow
    /// (deferred for contexts whose classify is running). With [`FlowTracking::Announced`] the flow
    /// is also marked aborted ([`FlowStatus::Aborted`]: no new contexts; the data path drains
    /// [`FlowEvent::Aborted`], blocks the flow's later packets and calls
    /// [`Engine::flow_ended`]); with [`FlowTracking::Implicit`] this is what a data path calls
    /// when a flow ends. Returns how many contexts were (or will be) deleted.
    pub fn flow_abort(&self, flow: u64) -> usize {
        if self.options.flow_tracking == FlowTracking::Announced {
            self.mark_aborted(flow);
        } else {
            self.stream_flow_ended(flow);
        }
        self.delete_flow_contexts(flow)
    }

    /// flowDeleteFn for every context of `flow`.
    pub(crate) fn delete_flow_contexts(&self, flow: u64) -> usize {
        let (deleted, deferred) = self.flows.end_flow(flow);
        let n = deleted.len() + deferred;
        for (layer, callout, ctx) in deleted {
            self.call_flow_delete(layer, callout, ctx);
        }
        n
    }

    /// The context associated for (flow, layer, callout), if any.
    pub fn flow_context(&self, flow: u64, layer: LayerId, callout: CalloutId) -> Option<u64> {
        self.flows.get(flow, layer, callout)
    }

    /// Number of associated flow contexts (all flows).
    pub fn flow_context_count(&self) -> usize {
        self.flows.count()
    }

    pub(crate) fn call_flow_delete(&self, layer: LayerId, callout: CalloutId, ctx: u64) {
        let Some(reg) = self.registry.get(callout) else {
            return;
        };
        {
            let _in_flight = reg.enter_any();
            let r = catch_unwind(AssertUnwindSafe(|| {
                reg.callout.flow_delete(layer, callout, ctx)
            }));
            if r.is_err() {
                self.stats.callback_panics.fetch_add(1, Ordering::Relaxed);
                self.push_event(NetEvent {
                    callout_id: Some(callout),
                    ..NetEvent::new(NetEventKind::CallbackPanic, layer)
                });
            }
        }
        reg.contexts.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{condition_by_name, layer_by_name, layers};
    use crate::condition::ConditionSpec;
    use crate::constants::ActionType;
    use crate::filter::{CalloutSpec, FilterSpec};
    use crate::value::Value;
    use crate::MatchType;

    #[test]
    fn layer_fields_used_names_condition_fields_or_everything_with_a_callout() {
        let e = Engine::default();
        let l = layers::INBOUND_TRANSPORT_V4;
        assert_eq!(e.layer_fields_used(l), 0);
        let mut f = FilterSpec::new("port", l, ActionType::BLOCK);
        f.conditions = vec![ConditionSpec {
            field: condition_by_name("IP_REMOTE_PORT").unwrap(),
            match_type: MatchType::Equal,
            value: Value::Uint16(80).into(),
        }];
        e.add_filter(f).unwrap();
        let port = layer_by_name("INBOUND_TRANSPORT_V4")
            .unwrap()
            .field_index_by_name("IP_REMOTE_PORT")
            .unwrap();
        assert_eq!(e.layer_fields_used(l), 1 << port);
        assert!(!e.layer_is_empty(l) && e.layer_is_empty(layers::STREAM_V4));
        let key = Guid::from_name("t", "c");
        e.add_callout(CalloutSpec {
            key,
            name: "c".into(),
            description: String::new(),
            flags: 0,
            provider: None,
            applicable_layer: l,
        })
        .unwrap();
        let mut c = FilterSpec::new("callout", l, ActionType::CALLOUT_INSPECTION);
        c.callout = Some(key);
        e.add_filter(c).unwrap();
        assert_eq!(e.layer_fields_used(l), u64::MAX);
    }
}
