//! Asynchronous classification (wfp-reference §10.1 ALE pend/complete, §10.2 generic pend): the
//! engine's state for pended operations and classify handles, and the events a data path drains.
//!
//! Sans-IO: pending is state, completion is an input. A data path that wants pend support mints a
//! completion handle per ALE authorization ([`Engine::new_completion_handle`]), puts it in the
//! metadata (`FWPS_METADATA_FIELD_COMPLETION_HANDLE`), classifies, and then drains
//! [`Engine::poll_pend_event`]:
//!
//! ```text
//!  data path                     engine                               callout (any thread)
//!  new_completion_handle ─► h
//!  classify(meta{h}) ───────►  callout runs ─────────────────────►  pend_operation(h) → ctx
//!                              BLOCK+ABSORB (hold the connection)    … decides elsewhere …
//!  poll_pend_event ◄──────────  OperationPended{h, ctx}
//!                                                      ◄──────────  complete_operation(ctx)
//!  poll_pend_event ◄──────────  OperationCompleted{next: Reauthorize | AwaitReinjection}
//!  reauthorize at AUTH_CONNECT (IS_REAUTHORIZE, reason CLASSIFY_COMPLETION)
//! ```
//!
//! Every handle is a plain integer (`#[repr(transparent)]` over `u64`), so the C ABI hands them out
//! unchanged; no handle borrows anything. Handle lifecycles are in
//! [`crate::manual::async_handles`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::callout::{ClassifyContext, ClassifyOut, Metadata};
use crate::catalogue::{self, LayerId};
use crate::constants::{ActionType, ClassifyOutFlags, MetadataFields, ReauthorizeReason};
use crate::engine::Engine;
use crate::filter::{CalloutId, FilterId};
use crate::redirect::RedirectRequest;
use crate::status::Status;

/// `inMetaValues->completionHandle`: names one pendable ALE classify (§10.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct CompletionHandle(pub u64);

/// The `completionContext` [`Engine::pend_operation`] returns; the argument of
/// [`Engine::complete_operation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct CompletionContext(pub u64);

/// `classifyHandle` (§10.2): a reference-counted handle on one classify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct ClassifyHandle(pub u64);

/// One data path's share of the id space of an engine that several data paths feed (one shim
/// per NFQUEUE queue): the ids `base`, `base + stride`, `base + 2·stride`, … Every data path of
/// an engine uses the same `stride` (the number of data paths) and its own `base` (1..=stride),
/// so the flow ids and completion handles they mint never collide, and each engine event names
/// the data path it belongs to (the flow or completion handle it carries is in that share).
/// [`IdShare::ALL`] (base 1, stride 1) is the whole space: a single data path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdShare {
    /// The first id (1..=stride).
    pub base: u64,
    /// The step between ids: the number of data paths (at least 1).
    pub stride: u64,
}

impl IdShare {
    /// Every id: one data path.
    pub const ALL: Self = Self { base: 1, stride: 1 };

    /// Data path `index` (0-based) of `count`; `None` unless `index < count`.
    pub fn of(index: u64, count: u64) -> Option<Self> {
        (index < count).then_some(Self {
            base: index + 1,
            stride: count,
        })
    }

    /// True when `id` is in this share.
    pub fn contains(self, id: u64) -> bool {
        let (base, stride) = (self.base.max(1), self.stride.max(1));
        id >= base && (id - base).is_multiple_of(stride)
    }

    /// The `seq`-th id of the share (from 0), saturating; never 0.
    pub fn nth(self, seq: u64) -> u64 {
        seq.saturating_mul(self.stride.max(1))
            .saturating_add(self.base.max(1))
    }

    /// True for the share that takes events naming no flow or handle (the first data path).
    pub fn is_first(self) -> bool {
        self.base <= 1
    }
}

impl Default for IdShare {
    fn default() -> Self {
        Self::ALL
    }
}

/// What the data path does once a pended ALE operation completes (§10.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterCompletion {
    /// Classify the operation again at `layer` with FWP_CONDITION_FLAG_IS_REAUTHORIZE and
    /// REAUTHORIZE_REASON `reason` (CLASSIFY_COMPLETION); that verdict decides (AUTH_CONNECT,
    /// RESOURCE_ASSIGNMENT, AUTH_LISTEN).
    Reauthorize {
        /// The layer that pended.
        layer: LayerId,
        /// FWP_CONDITION_REAUTHORIZE_REASON_CLASSIFY_COMPLETION.
        reason: ReauthorizeReason,
    },
    /// AUTH_RECV_ACCEPT: no reauthorization. The held packet is released (dropped); the callout's
    /// re-injected packet, permitted by the callout, authorizes the connection.
    AwaitReinjection,
}

/// An event of the asynchronous-classify machinery, drained with [`Engine::poll_pend_event`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PendEvent {
    /// A callout pended the ALE classify `handle`: hold the operation (its classify answered
    /// BLOCK+ABSORB) until [`PendEvent::OperationCompleted`].
    OperationPended {
        /// The data path's completion handle.
        handle: CompletionHandle,
        /// The callout's completion context.
        context: CompletionContext,
        /// The pended layer.
        layer: LayerId,
        /// The flow, when the classify had one.
        flow: Option<u64>,
    },
    /// `FwpsCompleteOperation0` ran.
    OperationCompleted {
        /// The data path's completion handle.
        handle: CompletionHandle,
        /// The completion context.
        context: CompletionContext,
        /// The pended layer.
        layer: LayerId,
        /// The flow.
        flow: Option<u64>,
        /// What to do next.
        next: AfterCompletion,
        /// The packet the callout passed to FwpsCompleteOperation0 (a ledger packet).
        packet: Option<crate::inject::PacketId>,
    },
    /// `FwpsPendClassify0`: hold the indication (it answered BLOCK+ABSORB).
    ClassifyPended {
        /// The classify handle.
        handle: ClassifyHandle,
        /// The layer.
        layer: LayerId,
        /// The flow.
        flow: Option<u64>,
        /// The pending filter.
        filter: FilterId,
    },
    /// `FwpsCompleteClassify0`.
    ClassifyCompleted {
        /// The classify handle.
        handle: ClassifyHandle,
        /// The layer.
        layer: LayerId,
        /// The flow.
        flow: Option<u64>,
        /// The final decision, or `None`: reauthorize the indication (§10.2).
        decision: Option<ClassifyOut>,
        /// At a redirect layer: the request after every applied modification.
        request: Option<RedirectRequest>,
    },
}

/// Counters of the pend machinery (all monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendStats {
    /// ALE operations pended.
    pub operations_pended: u64,
    /// ALE operations completed.
    pub operations_completed: u64,
    /// Classifies pended with `pend_classify`.
    pub classifies_pended: u64,
    /// Classifies completed.
    pub classifies_completed: u64,
    /// Classify handles acquired.
    pub handles_acquired: u64,
    /// Classify handles whose last reference went away.
    pub handles_freed: u64,
}

/// One ALE classify in progress that may be pended (registered by classify from the metadata).
#[derive(Clone, Copy)]
struct OpInClassify {
    layer: LayerId,
    flow: Option<u64>,
    reauthorize: bool,
    pended: Option<CompletionContext>,
    /// The callout that pended it (when it pended through its [`ClassifyContext`]).
    by: Option<CalloutId>,
}

struct PendedOp {
    handle: CompletionHandle,
    layer: LayerId,
    flow: Option<u64>,
    by: Option<CalloutId>,
}

pub(crate) struct HandleEntry {
    /// The callout that acquired it.
    callout: CalloutId,
    pub(crate) layer: LayerId,
    pub(crate) flow: Option<u64>,
    pub(crate) token: u64,
    refs: u32,
    pended: Option<FilterId>,
    /// The classifyFn that acquired it has not returned yet.
    pub(crate) running: bool,
    /// The current request at a redirect layer (modifications applied so far).
    pub(crate) request: Option<RedirectRequest>,
    /// Filters holding an acquired, not yet applied, writable pointer.
    pub(crate) writers: Vec<FilterId>,
}

#[derive(Default)]
struct State {
    in_classify: HashMap<CompletionHandle, OpInClassify>,
    pended: HashMap<CompletionContext, PendedOp>,
    handles: HashMap<ClassifyHandle, HandleEntry>,
    /// Requests applied by a running classifyFn (token → request), taken when it returns.
    applied: HashMap<u64, RedirectRequest>,
    /// Running classifyFns (tokens) that pended their classify (§10.2), taken when they return:
    /// pended even when another thread completed it (and released the handle) before.
    pended_in: std::collections::HashSet<u64>,
    events: VecDeque<PendEvent>,
    stats: PendStats,
}

/// The engine's pend tables.
#[derive(Default)]
pub(crate) struct PendTable {
    state: Mutex<State>,
    next: AtomicU64,
    /// Sequence of completion handles (spread over [`IdShare`]s).
    next_completion: AtomicU64,
}

impl PendTable {
    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Runs `f` on a classify handle's entry (redirect uses it).
    pub(crate) fn with_handle<R>(
        &self,
        h: ClassifyHandle,
        f: impl FnOnce(&mut HandleEntry) -> R,
    ) -> Option<R> {
        self.state.lock().handles.get_mut(&h).map(f)
    }

    /// Records the request a running classifyFn (`token`) applied.
    pub(crate) fn record_applied(&self, token: u64, request: RedirectRequest) {
        self.state.lock().applied.insert(token, request);
    }
}

/// §10.1: the layers whose initial authorization `FwpsPendOperation0` may pend.
pub fn can_pend_operation(layer: LayerId) -> bool {
    matches!(
        base_name(layer),
        Some(
            "ALE_RESOURCE_ASSIGNMENT"
                | "ALE_AUTH_LISTEN"
                | "ALE_AUTH_CONNECT"
                | "ALE_AUTH_RECV_ACCEPT"
        )
    )
}

/// §10.2: the layers where `FwpsPendClassify0` is allowed (the documented users).
pub fn can_pend_classify(layer: LayerId) -> bool {
    matches!(
        base_name(layer),
        Some("ALE_ENDPOINT_CLOSURE" | "ALE_CONNECT_REDIRECT" | "ALE_BIND_REDIRECT")
    )
}

/// A layer's name without the `_V4` / `_V6` suffix.
pub(crate) fn base_name(layer: LayerId) -> Option<&'static str> {
    let name = catalogue::layer(layer)?.name;
    Some(
        name.strip_suffix("_V4")
            .or_else(|| name.strip_suffix("_V6"))
            .unwrap_or(name),
    )
}

/// Sets `out` to a hard BLOCK + ABSORB (what a pended classify answers).
fn absorb(out: &mut ClassifyOut) {
    out.action_type = ActionType::BLOCK;
    out.flags |= ClassifyOutFlags::ABSORB;
    out.clear_write();
}

impl Engine {
    /// Mints a fresh completion handle for an ALE classify the data path is about to run; put it
    /// in `Metadata::completion_handle` with `MetadataFields::COMPLETION_HANDLE`.
    pub fn new_completion_handle(&self) -> CompletionHandle {
        self.new_completion_handle_in(IdShare::ALL)
    }

    /// [`Engine::new_completion_handle`] for the data path owning `share`: the handle is in it,
    /// so the pend events naming it go to that data path ([`Engine::poll_pend_event_where`]).
    pub fn new_completion_handle_in(&self, share: IdShare) -> CompletionHandle {
        let seq = self.pend.next_completion.fetch_add(1, Ordering::Relaxed);
        CompletionHandle(share.nth(seq))
    }

    /// `FwpsPendOperation0` (§10.1): pends the ALE classify named by `handle` (it must be running).
    /// The callout then answers BLOCK+ABSORB. Errors: STATUS_FWP_NULL_POINTER for handle 0,
    /// STATUS_FWP_NOT_FOUND when no classify with that handle is running, STATUS_FWP_CANNOT_PEND
    /// in a reauthorization or at a layer that cannot pend, STATUS_FWP_ALREADY_EXISTS when it is
    /// already pended. An operation pended here (rather than through
    /// [`ClassifyContext::pend_operation`]) names no callout, so unregistering the callout does
    /// not complete it ([`Engine::unregister_callout`]).
    pub fn pend_operation(&self, handle: CompletionHandle) -> Result<CompletionContext, Status> {
        self.pend_operation_by(handle, None)
    }

    fn pend_operation_by(
        &self,
        handle: CompletionHandle,
        by: Option<CalloutId>,
    ) -> Result<CompletionContext, Status> {
        if handle.0 == 0 {
            return Err(Status::FWP_NULL_POINTER);
        }
        let mut st = self.pend.state.lock();
        let op = st
            .in_classify
            .get_mut(&handle)
            .ok_or(Status::FWP_NOT_FOUND)?;
        if op.reauthorize || !can_pend_operation(op.layer) {
            return Err(Status::FWP_CANNOT_PEND);
        }
        if op.pended.is_some() {
            return Err(Status::FWP_ALREADY_EXISTS);
        }
        let ctx = CompletionContext(self.pend.next_id());
        op.pended = Some(ctx);
        op.by = by;
        Ok(ctx)
    }

    /// `FwpsCompleteOperation0` (§10.1): ends a pended operation; the data path learns what to do
    /// from [`PendEvent::OperationCompleted`]. `packet` is the optional NET_BUFFER_LIST argument (a
    /// ledger packet that travels with the event). A second completion (or an unknown context)
    /// answers STATUS_FWP_NOT_FOUND and changes nothing.
    pub fn complete_operation(
        &self,
        context: CompletionContext,
        packet: Option<crate::inject::PacketId>,
    ) -> Status {
        let mut st = self.pend.state.lock();
        let Some(event) = complete_op(&mut st, context, packet) else {
            return Status::FWP_NOT_FOUND;
        };
        self.queue_async(st, |s| &mut s.events, [event]);
        Status::SUCCESS
    }

    /// §5.3 (brief decision 6): a callout being unregistered can no longer complete what it
    /// pended, so the engine completes it on its behalf — every ALE operation it pended
    /// (`FwpsCompleteOperation0`: the data path reauthorizes, where the callout is gone and its
    /// filters act as §5.4 says) and every classify it pended (`FwpsCompleteClassify0` with NULL:
    /// reauthorized) — and drops the classify handles it still held. Returns how many pends it
    /// completed. Called by unregister once the callout's in-flight calls drained.
    pub(crate) fn complete_pends_of(&self, callout: CalloutId) -> usize {
        let mut st = self.pend.state.lock();
        let mut ops: Vec<CompletionContext> = st
            .pended
            .iter()
            .filter(|(_, p)| p.by == Some(callout))
            .map(|(c, _)| *c)
            .collect();
        ops.sort();
        let mut events: Vec<PendEvent> = ops
            .into_iter()
            .filter_map(|c| complete_op(&mut st, c, None))
            .collect();
        let mut n = events.len();
        let mut handles: Vec<ClassifyHandle> = st
            .handles
            .iter()
            .filter(|(_, e)| e.callout == callout)
            .map(|(h, _)| *h)
            .collect();
        handles.sort();
        for h in handles {
            let Some(mut e) = st.handles.remove(&h) else {
                continue;
            };
            if e.pended.take().is_some() {
                n += 1;
                st.stats.classifies_completed += 1;
                events.push(PendEvent::ClassifyCompleted {
                    handle: h,
                    layer: e.layer,
                    flow: e.flow,
                    decision: None,
                    request: e.request.take(),
                });
            }
            st.stats.handles_freed += 1;
        }
        self.queue_async(st, |s| &mut s.events, events);
        n
    }
}

/// `FwpsCompleteOperation0` on the locked state.
fn complete_op(
    st: &mut State,
    context: CompletionContext,
    packet: Option<crate::inject::PacketId>,
) -> Option<PendEvent> {
    let op = st.pended.remove(&context)?;
    let next = if base_name(op.layer) == Some("ALE_AUTH_RECV_ACCEPT") {
        AfterCompletion::AwaitReinjection
    } else {
        AfterCompletion::Reauthorize {
            layer: op.layer,
            reason: ReauthorizeReason::CLASSIFY_COMPLETION,
        }
    };
    st.stats.operations_completed += 1;
    Some(PendEvent::OperationCompleted {
        handle: op.handle,
        context,
        layer: op.layer,
        flow: op.flow,
        next,
        packet,
    })
}

impl Engine {
    /// True while `context` names a pended, not yet completed operation.
    pub fn is_operation_pending(&self, context: CompletionContext) -> bool {
        self.pend.state.lock().pended.contains_key(&context)
    }

    /// The pended operations of `flow` (what the data path holds for it).
    pub fn pending_operations_of_flow(&self, flow: u64) -> Vec<CompletionContext> {
        let st = self.pend.state.lock();
        let mut v: Vec<_> = st
            .pended
            .iter()
            .filter(|(_, p)| p.flow == Some(flow))
            .map(|(c, _)| *c)
            .collect();
        v.sort();
        v
    }

    /// `FwpsReleaseClassifyHandle0`: drops one reference; the handle dies with its last one
    /// (a pended classify holds one until completed). STATUS_FWP_NOT_FOUND for an unknown handle
    /// (a double release).
    pub fn release_classify_handle(&self, handle: ClassifyHandle) -> Status {
        let mut st = self.pend.state.lock();
        let Some(e) = st.handles.get_mut(&handle) else {
            return Status::FWP_NOT_FOUND;
        };
        e.refs -= 1;
        if e.refs == 0 {
            st.handles.remove(&handle);
            st.stats.handles_freed += 1;
        }
        Status::SUCCESS
    }

    /// `FwpsPendClassify0` (§10.2): pends the classify of `handle` (acquired during it, while it
    /// still runs, at a layer that allows it) on behalf of `filter`; sets `out` to BLOCK+ABSORB and
    /// clears the write right; adds a reference that [`Engine::complete_classify`] drops.
    /// STATUS_FWP_CANNOT_PEND at other layers or once the classify returned;
    /// STATUS_FWP_ALREADY_EXISTS when already pended; STATUS_FWP_NOT_FOUND for an unknown handle.
    pub fn pend_classify(
        &self,
        handle: ClassifyHandle,
        filter: FilterId,
        out: &mut ClassifyOut,
    ) -> Status {
        let mut st = self.pend.state.lock();
        let Some(e) = st.handles.get_mut(&handle) else {
            return Status::FWP_NOT_FOUND;
        };
        if !can_pend_classify(e.layer) || !e.running {
            return Status::FWP_CANNOT_PEND;
        }
        if e.pended.is_some() {
            return Status::FWP_ALREADY_EXISTS;
        }
        e.pended = Some(filter);
        e.refs += 1;
        let event = PendEvent::ClassifyPended {
            handle,
            layer: e.layer,
            flow: e.flow,
            filter,
        };
        let token = e.token;
        st.pended_in.insert(token);
        st.stats.classifies_pended += 1;
        self.queue_async(st, |s| &mut s.events, [event]);
        absorb(out);
        Status::SUCCESS
    }

    /// `FwpsCompleteClassify0` (§10.2): the final decision of a pended classify (`Some`, same
    /// rules as inline), or `None`: reauthorize the indication. Drops the pend's reference.
    /// STATUS_FWP_NOT_FOUND when the handle is unknown or not pended (a double completion).
    pub fn complete_classify(
        &self,
        handle: ClassifyHandle,
        decision: Option<ClassifyOut>,
    ) -> Status {
        let mut st = self.pend.state.lock();
        let Some(e) = st.handles.get_mut(&handle) else {
            return Status::FWP_NOT_FOUND;
        };
        if e.pended.take().is_none() {
            return Status::FWP_NOT_FOUND;
        }
        let event = PendEvent::ClassifyCompleted {
            handle,
            layer: e.layer,
            flow: e.flow,
            decision,
            request: e.request.clone(),
        };
        e.refs -= 1;
        if e.refs == 0 {
            st.handles.remove(&handle);
            st.stats.handles_freed += 1;
        }
        st.stats.classifies_completed += 1;
        self.queue_async(st, |s| &mut s.events, [event]);
        Status::SUCCESS
    }

    /// Takes the oldest pend event.
    pub fn poll_pend_event(&self) -> Option<PendEvent> {
        self.pend.state.lock().events.pop_front()
    }

    /// Takes the oldest pend event `mine` accepts, leaving the others queued in order: how each
    /// of several data paths takes only its own (by [`IdShare`] of the completion handle or
    /// flow the event names).
    pub fn poll_pend_event_where(
        &self,
        mut mine: impl FnMut(&PendEvent) -> bool,
    ) -> Option<PendEvent> {
        let mut st = self.pend.state.lock();
        let i = st.events.iter().position(&mut mine)?;
        st.events.remove(i)
    }

    /// Counters of the pend machinery.
    pub fn pend_stats(&self) -> PendStats {
        self.pend.state.lock().stats
    }

    /// Live classify handles (acquired and not yet released, or pended).
    pub fn classify_handle_count(&self) -> usize {
        self.pend.state.lock().handles.len()
    }

    /// Called when a classifyFn that acquired handles returned: they no longer name a running
    /// classify (pend_classify refuses them). Returns the request of a redirect-layer classify
    /// after every modification applied during the call.
    pub(crate) fn pend_invocation_returned(&self, token: u64) -> (Option<RedirectRequest>, bool) {
        let mut st = self.pend.state.lock();
        let mut pended = false;
        for e in st.handles.values_mut().filter(|e| e.token == token) {
            e.running = false;
            pended |= e.pended.is_some();
        }
        // A pend some thread already completed before the classifyFn returned is still a pend:
        // its ClassifyPended and ClassifyCompleted events are queued, the data path holds the
        // packet and applies the completion.
        pended |= st.pended_in.remove(&token);
        let request = st.applied.remove(&token);
        (request.filter(|_| !pended), pended)
    }

    /// Called by classify before the callouts run when the metadata carries a completion handle.
    pub(crate) fn pend_enter(
        &self,
        meta: &Metadata,
        layer: LayerId,
        values: &[crate::value::Value],
    ) {
        if !meta.has(MetadataFields::COMPLETION_HANDLE) || meta.completion_handle == 0 {
            return;
        }
        let flow = meta
            .flow()
            .filter(|_| catalogue::layer(layer).is_some_and(|l| l.is_flow_capable()));
        let reauth = crate::classify::is_reauthorize(layer, values);
        self.pend.state.lock().in_classify.insert(
            CompletionHandle(meta.completion_handle),
            OpInClassify {
                layer,
                flow,
                reauthorize: reauth,
                pended: None,
                by: None,
            },
        );
    }

    /// Called by classify after the callouts ran: a pended operation moves to the pended table.
    pub(crate) fn pend_leave(&self, meta: &Metadata) {
        if !meta.has(MetadataFields::COMPLETION_HANDLE) || meta.completion_handle == 0 {
            return;
        }
        let handle = CompletionHandle(meta.completion_handle);
        let mut st = self.pend.state.lock();
        let Some(op) = st.in_classify.remove(&handle) else {
            return;
        };
        if let Some(context) = op.pended {
            st.pended.insert(
                context,
                PendedOp {
                    handle,
                    layer: op.layer,
                    flow: op.flow,
                    by: op.by,
                },
            );
            st.stats.operations_pended += 1;
            let event = PendEvent::OperationPended {
                handle,
                context,
                layer: op.layer,
                flow: op.flow,
            };
            self.queue_async(st, |s| &mut s.events, [event]);
        }
    }
}

impl ClassifyContext<'_> {
    /// `FwpsAcquireClassifyHandle0` (§10.2): a handle on this classify, with one reference (release
    /// it with [`Engine::release_classify_handle`]). At a redirect layer it carries the current
    /// connect/bind request for [`Engine::acquire_writable_layer_data`].
    pub fn acquire_classify_handle(&self) -> ClassifyHandle {
        let h = ClassifyHandle(self.engine.pend.next_id());
        self.acquired.set(true);
        let mut st = self.engine.pend.state.lock();
        st.handles.insert(
            h,
            HandleEntry {
                callout: self.callout_id,
                layer: self.layer,
                flow: self.flow,
                token: self.token,
                refs: 1,
                pended: None,
                running: true,
                request: self.redirect.cloned(),
                writers: Vec::new(),
            },
        );
        st.stats.handles_acquired += 1;
        h
    }

    /// `FwpsPendOperation0` with this classify's completion handle, read from `meta`.
    pub fn pend_operation(&self, meta: &Metadata) -> Result<CompletionContext, Status> {
        if !meta.has(MetadataFields::COMPLETION_HANDLE) {
            return Err(Status::FWP_NULL_POINTER);
        }
        self.engine.pend_operation_by(
            CompletionHandle(meta.completion_handle),
            Some(self.callout_id),
        )
    }
}
