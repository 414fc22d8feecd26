//! Pended ALE operations (wfp-reference §10.1) and flow aborts (§6) on the data path.
//!
//! ```text
//!  authorize: mint a completion handle ──► classify ──► a callout pended (OperationPended)
//!     │  the flow is "pending": this packet and the flow's later ones are held (copied),
//!     │  verdict ABSORB / Reason::Pended
//!  Shim::handle_async(now)  (the data path's deterministic point)
//!     ├─ OperationCompleted { Reauthorize }  ──► AUTH layer again, IS_REAUTHORIZE +
//!     │     CLASSIFY_COMPLETION ──► PERMIT: held packets classified again (Released outputs)
//!     │                          └► BLOCK: held packets dropped, flow ended (refused)
//!     ├─ OperationCompleted { AwaitReinjection } (RECV_ACCEPT) ──► held packets flushed; the
//!     │     callout's re-injected packet authorizes the flow (classified like a new one)
//!     ├─ FlowEvent::Aborted ──► flow ended, later packets blocked (Reason::FlowAborted)
//!     └─ injections ([`super::inject`])
//!  handle_timeout(now): operations pended longer than ShimConfig::pend_deadline are dropped
//! ```
//!
//! Completions a callout makes from its own thread are queued by the engine and applied only
//! here, so where they take effect on the data path's clock is deterministic: at the first
//! `handle_async` after they were made.

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow::{self, Break, Continue};

use wfp_core::callout::{LayerData, Metadata};
use wfp_core::constants::{ConditionFlags, MetadataFields, ReauthorizeReason};
use wfp_core::engine::FlowEvent as EngineFlowEvent;
use wfp_core::engine::FlowTracking;
use wfp_core::pend::{AfterCompletion, CompletionHandle, PendEvent};
use wfp_core::LayerId;

use super::classify::Step;
use super::flows::flow_facts;
use super::inject::ShimOutput;
use super::packet::Packet;
use super::{PacketContext, PacketDirection, PacketVerdict, Reason, Shim, Verdict};
use crate::flow::{FlowId, FlowKey, IdShare};
use crate::time::Timestamp;

/// A packet held while its flow's operation (or its connect's redirect classify) is pended.
pub(super) struct HeldPacket {
    /// When it was seen.
    now: Timestamp,
    /// How it was classified.
    direction: PacketDirection,
    /// The data path's context.
    ctx: PacketContext,
    /// Its bytes, from the IP header.
    bytes: Vec<u8>,
}

impl HeldPacket {
    /// A copy of `bytes`, seen at `now` travelling `direction` with `ctx`.
    pub(super) fn new(
        now: Timestamp,
        direction: PacketDirection,
        ctx: &PacketContext,
        bytes: &[u8],
    ) -> Self {
        Self {
            now,
            direction,
            ctx: ctx.clone(),
            bytes: bytes.to_vec(),
        }
    }
}

/// A flow whose authorization a callout pended.
pub(super) struct Pending {
    /// The completion handle the shim minted.
    handle: CompletionHandle,
    /// The pended layer.
    layer: LayerId,
    /// When it was pended (for [`super::ShimConfig::pend_deadline`]).
    since: Timestamp,
    /// The held packets, oldest first.
    held: Vec<HeldPacket>,
}

/// The shim's asynchronous state: which flow each pended completion handle belongs to, engine
/// events taken while looking for a pend, and the outputs waiting for the data path.
#[derive(Default)]
pub(super) struct AsyncState {
    /// Completion handle → flow (while pended).
    pub(super) pended: HashMap<CompletionHandle, FlowId>,
    /// Pend events taken from the engine, not applied yet.
    pub(super) events: VecDeque<PendEvent>,
    /// Packets for the data path: released held packets, injected packets.
    pub(super) outputs: VecDeque<ShimOutput>,
    /// Injection requests taken from the engine while splicing stream injections, to run next.
    pub(super) stash: VecDeque<wfp_core::inject::InjectionRequest>,
    /// `Engine::async_generation` read before the last [`Shim::handle_async`] pass that found
    /// nothing left to do: while it is unchanged (and the local queues are empty) the engine
    /// has queued nothing new, so the next pass is skipped without locking its queues.
    pub(super) drained_at: Option<u64>,
}

impl AsyncState {
    /// The shim's own queues hold nothing (events taken from the engine, stashed injections).
    pub(super) fn is_idle(&self) -> bool {
        self.events.is_empty() && self.stash.is_empty()
    }
}

impl Shim {
    /// Nothing for [`Shim::handle_async`] to do and nothing for [`Shim::poll_output`]: the
    /// engine queued nothing since the last pass drained everything (one atomic load), and the
    /// shim's own queues are empty. A data path that asks after every packet skips both calls
    /// then (`handle_async` would return at once, `poll_output` answer `None`).
    #[inline]
    pub fn async_idle(&self) -> bool {
        self.asyncs.drained_at == Some(self.engine.async_generation())
            && self.asyncs.is_idle()
            && self.asyncs.outputs.is_empty()
    }

    /// Whether the engine knows flows only when announced (then the shim announces them).
    pub(super) fn announced(&self) -> bool {
        self.engine.options().flow_tracking == FlowTracking::Announced
    }

    /// A completion handle for an initial authorization at `layer` (`meta` gets it), when the
    /// layer has filters (nothing can pend otherwise).
    pub(super) fn with_completion(
        &self,
        layer: LayerId,
        meta: &Metadata,
    ) -> Option<(Metadata, CompletionHandle)> {
        if !self.has_filters(layer) {
            return None;
        }
        let h = self.engine.new_completion_handle_in(self.config.flow.ids);
        let mut m = meta.clone();
        m.completion_handle = h.0;
        m.present |= MetadataFields::COMPLETION_HANDLE;
        Some((m, h))
    }

    /// After an authorization classify that answered BLOCK: was it pended (the engine queued
    /// `OperationPended` for `handle`)? Other pend events are kept for [`Shim::handle_async`].
    pub(super) fn was_pended(&mut self, handle: CompletionHandle) -> bool {
        let mut found = false;
        let ids = self.config.flow.ids;
        while let Some(e) = self
            .engine
            .poll_pend_event_where(|e| owns_pend_event(ids, e))
        {
            match e {
                PendEvent::OperationPended { handle: h, .. } if h == handle => found = true,
                other => self.asyncs.events.push_back(other),
            }
        }
        found
    }

    /// The flow `id`'s authorization at `layer` was pended: hold `pkt`, remember the handle.
    pub(super) fn start_pending(
        &mut self,
        pkt: &mut Packet<'_>,
        id: FlowId,
        layer: LayerId,
        handle: CompletionHandle,
    ) {
        self.stats.pended += 1;
        self.asyncs.pended.insert(handle, id);
        if let Some(e) = self.extra.get_mut(&id) {
            e.pending = Some(Box::new(Pending {
                handle,
                layer,
                since: pkt.now,
                held: Vec::new(),
            }));
        }
        self.hold(pkt, id);
    }

    /// Holds `pkt` (a packet of pended flow `id`): ABSORB, [`Reason::Pended`].
    pub(super) fn hold(&mut self, pkt: &mut Packet<'_>, id: FlowId) {
        let max = self.config.max_held_packets;
        let direction = if pkt.loopback {
            PacketDirection::Loopback
        } else {
            pkt.dir.into()
        };
        let held = HeldPacket::new(pkt.now, direction, pkt.ctx, pkt.bytes);
        pkt.verdict.verdict = Verdict::Absorb;
        pkt.verdict.reason = Reason::Pended;
        match self.extra.get_mut(&id).and_then(|e| e.pending.as_mut()) {
            Some(p) if p.held.len() < max => {
                p.held.push(held);
                self.stats.held += 1;
            }
            _ => self.stats.held_dropped += 1,
        }
    }

    /// A packet of a flow whose operation is pended is held (`Break`).
    pub(super) fn hold_if_pending(&mut self, pkt: &mut Packet<'_>) -> ControlFlow<()> {
        let Some(id) = pkt.flow() else {
            return Continue(());
        };
        if self.extra.get(&id).is_some_and(|e| e.pending.is_some()) {
            self.hold(pkt, id);
            return Break(());
        }
        Continue(())
    }

    /// When the oldest pended operation expires.
    pub(super) fn pend_timeout(&self) -> Option<Timestamp> {
        let d = self.config.pend_deadline?;
        self.asyncs
            .pended
            .values()
            .filter_map(|id| self.extra.get(id)?.pending.as_ref())
            .map(|p| p.since.saturating_add(d))
            .min()
    }

    /// Drops the operations pended for longer than the deadline at `now`.
    pub(super) fn expire_pended(&mut self, now: Timestamp) {
        let Some(d) = self.config.pend_deadline else {
            return;
        };
        let due: Vec<FlowId> = self
            .asyncs
            .pended
            .values()
            .copied()
            .filter(|id| {
                self.extra
                    .get(id)
                    .and_then(|e| e.pending.as_ref())
                    .is_some_and(|p| p.since.saturating_add(d) <= now)
            })
            .collect();
        for id in due {
            self.stats.pend_expired += 1;
            self.drop_pending(id);
            self.end_flow_now(id);
        }
        self.drain_flow_events();
    }

    /// Forgets flow `id`'s pended operation, dropping its held packets.
    pub(super) fn drop_pending(&mut self, id: FlowId) {
        if let Some(p) = self.extra.get_mut(&id).and_then(|e| e.pending.take()) {
            self.forget_pending(&p);
        }
    }

    /// Forgets a pended operation taken from its flow, dropping its held packets.
    pub(super) fn forget_pending(&mut self, p: &Pending) {
        self.asyncs.pended.remove(&p.handle);
        self.stats.held_dropped += p.held.len() as u64;
    }

    /// Applies the pend events and flow aborts queued so far (see the module doc).
    pub(super) fn apply_pend_events(&mut self, now: Timestamp) -> bool {
        let mut any = false;
        let ids = self.config.flow.ids;
        while let Some(e) = self
            .engine
            .poll_pend_event_where(|e| owns_pend_event(ids, e))
        {
            self.asyncs.events.push_back(e);
        }
        while let Some(e) = self.asyncs.events.pop_front() {
            any = true;
            match e {
                PendEvent::OperationCompleted {
                    handle,
                    next,
                    packet,
                    ..
                } => {
                    if let Some(p) = packet {
                        // The NET_BUFFER_LIST handed to FwpsCompleteOperation0: the engine's now.
                        let _ = self.engine.free_packet(p);
                    }
                    self.completed(now, handle, next);
                }
                // A pended redirect classify (`redirect.rs`); other layers' are not the data
                // path's business.
                PendEvent::ClassifyCompleted {
                    handle,
                    decision,
                    request,
                    ..
                } => self.redirect_completed(now, handle, decision, request),
                _ => {}
            }
        }
        any |= self.apply_flow_aborts();
        any
    }

    /// One completed operation.
    fn completed(&mut self, now: Timestamp, handle: CompletionHandle, next: AfterCompletion) {
        let Some(id) = self.asyncs.pended.get(&handle).copied() else {
            self.stats.late_completions += 1;
            return;
        };
        let Some(e) = self.extra.get_mut(&id) else {
            self.asyncs.pended.remove(&handle);
            self.stats.late_completions += 1;
            return;
        };
        let Some(p) = e.pending.take() else {
            return;
        };
        self.asyncs.pended.remove(&handle);
        self.stats.pend_completed += 1;
        match next {
            AfterCompletion::Reauthorize { layer, reason } => {
                if self.reauthorize_completed(id, layer, reason) {
                    self.release(now, p.held);
                } else {
                    self.stats.held_dropped += p.held.len() as u64;
                }
            }
            // §10.1 RECV_ACCEPT: no reauthorization; the held packets are flushed and the
            // callout's re-injected packet authorizes the flow.
            _ => self.stats.held_dropped += p.held.len() as u64,
        }
        let _ = p.layer;
        self.drain_flow_events();
    }

    /// The reauthorization a completed AUTH_CONNECT triggers (IS_REAUTHORIZE, reason
    /// CLASSIFY_COMPLETION). True when it permitted (the flow is then authorized); a BLOCK
    /// ends the flow as a refused connection.
    fn reauthorize_completed(
        &mut self,
        id: FlowId,
        layer: LayerId,
        reason: ReauthorizeReason,
    ) -> bool {
        let Some(e) = self.extra.get(&id) else {
            return false;
        };
        let key = e.key;
        let mut facts = flow_facts(&key, e.initiator, &e.owner);
        facts.direction = None;
        facts.flags |= ConditionFlags::IS_REAUTHORIZE.0;
        facts.reauth_reason = Some(reason.0);
        // The completion's reauthorization carries the connection's direction and compartment,
        // as WFP's does (callouts assert both to find the connection they pended).
        let mut meta = Metadata {
            compartment_id: super::meta::DEFAULT_COMPARTMENT,
            present: MetadataFields::COMPARTMENT_ID | MetadataFields::PACKET_DIRECTION,
            packet_direction: Some(match e.initiator {
                crate::flow::Direction::Inbound => wfp_core::constants::Direction::Inbound,
                crate::flow::Direction::Outbound => wfp_core::constants::Direction::Outbound,
            }),
            ..Metadata::default()
        };
        super::meta::add_flow(&mut meta, id);
        super::meta::add_owner(&mut meta, &e.owner);
        self.stats.reauthorizations += 1;
        let generation = self.engine.layer_generation(layer);
        let mut v = PacketVerdict::new(PacketDirection::Infer);
        let step = Step::new(layer, &facts, &meta, LayerData::None);
        if self.classify_step(step, &mut v).is_break() {
            self.refused(id, key, layer, v.filter);
            return false;
        }
        self.authorized(id, layer, generation);
        true
    }

    /// Flow `id` (`key`) was refused at `layer` by `filter`: remembered, ended.
    pub(super) fn refused(
        &mut self,
        id: FlowId,
        key: FlowKey,
        layer: LayerId,
        filter: Option<wfp_core::FilterId>,
    ) {
        if key.protocol() == 6 {
            self.remember_ended(key, Reason::ConnectionRefused, layer, filter);
        }
        self.end_flow_now(id);
    }

    /// Flow `id` is authorized at `layer` (whose generation was `generation`).
    pub(super) fn authorized(&mut self, id: FlowId, layer: LayerId, generation: u64) {
        let epoch = self.policy_epoch;
        if let Some(e) = self.extra.get_mut(&id) {
            e.auth_layer = Some(layer);
            e.auth_generation = generation;
            e.auth_epoch = epoch;
        }
        if self.announced() {
            self.engine.flow_authorized(id.get(), layer);
        }
    }

    /// Classifies held packets again, in order, as [`super::OutputOrigin::Released`] outputs.
    pub(super) fn release(&mut self, now: Timestamp, held: Vec<HeldPacket>) {
        for h in held {
            self.stats.held_released += 1;
            let mut v = PacketVerdict::new(h.direction);
            let at = h.now.max(now);
            self.handle_packet_into(at, h.direction, &h.bytes, &h.ctx, &mut v);
            let flow = v.flow;
            self.asyncs.outputs.push_back(ShimOutput {
                now: at,
                bytes: h.bytes,
                verdict: v,
                origin: super::inject::OutputOrigin::Released { flow },
            });
        }
    }

    /// `FwpsFlowAbort0` by a callout (Announced flow tracking): the flow ends now and its later
    /// packets are blocked. True when something was aborted.
    fn apply_flow_aborts(&mut self) -> bool {
        let mut any = false;
        let ids = self.config.flow.ids;
        let mine = |e: &EngineFlowEvent| match e {
            EngineFlowEvent::Aborted { flow } => ids.contains(*flow),
            _ => ids.is_first(),
        };
        while let Some(EngineFlowEvent::Aborted { flow }) = self.engine.poll_flow_event_where(mine)
        {
            any = true;
            let Some(id) = FlowId::from_handle(flow).filter(|id| self.extra.contains_key(id))
            else {
                continue;
            };
            self.stats.flows_aborted += 1;
            // Its later packets are blocked: an offloaded direction must come back to see it.
            self.withdraw_offload(id);
            self.drop_pending(id);
            if let Some(e) = self.extra.get(&id) {
                let layer = e
                    .auth_layer
                    .unwrap_or(wfp_core::catalogue::layers::ALE_FLOW_ESTABLISHED_V4);
                let key = e.key;
                self.remember_ended(key, Reason::FlowAborted, layer, None);
            }
            self.end_flow_now(id);
        }
        self.drain_flow_events();
        any
    }
}

/// Several shims over one engine (one per queue) each take only their own pend events: those
/// naming a completion handle the shim minted, or a flow of its share; events naming neither go
/// to the first shim.
pub(super) fn owns_pend_event(ids: IdShare, e: &PendEvent) -> bool {
    match e {
        PendEvent::OperationPended { handle, .. }
        | PendEvent::OperationCompleted { handle, .. } => ids.contains(handle.0),
        PendEvent::ClassifyPended { flow, .. } | PendEvent::ClassifyCompleted { flow, .. } => {
            flow.map_or(ids.is_first(), |f| ids.contains(f))
        }
        _ => ids.is_first(),
    }
}
