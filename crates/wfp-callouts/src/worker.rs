//! The host's worker: what built-in callouts leave to be done **outside** their classifyFn, the way
//! a WFP driver hands work to a worker thread (§10.1 "decide elsewhere", §9.2 out-of-band
//! injection). Sans-IO like the engine: the callouts queue work here; the host runs it at a point
//! of its choosing ([`Worker::run`]: a replay after every packet, before `Shim::handle_async`; a
//! daemon in its worker loop), or takes the pended inspections and decides them itself
//! ([`Worker::take_inspections`], [`Worker::decide`]).
//!
//! ```text
//!  wfp.pending-inspector ─ pend_operation ─► Inspection ─┐
//!  wfp.stream-editor (out-of-band) ─ clone + BLOCK ─► Edit ┤ queued here
//!  host: worker.run(&engine) ◄────────────────────────────┘
//!        ├─ Inspection: decision recorded for the flow, complete_operation (the engine then
//!        │  reauthorizes AUTH_CONNECT, where the inspector answers the decision)
//!        └─ Edit: the clone's bytes edited, FwpsStreamInjectAsync0 outside classifyFn
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use wfp_core::inject::{Inject, InjectionHandle, InjectionKind, PacketId};
use wfp_core::pend::CompletionContext;
use wfp_core::{CalloutId, Engine, LayerId, Status};

/// What the pending inspector answers for a flow once decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Permit the connection (and re-inject its cloned packets).
    Allow,
    /// Block the connection (and drop its packets).
    Block,
}

/// One connection the pending inspector pended (§10.1), waiting for a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// The completion context `FwpsPendOperation0` returned.
    pub context: CompletionContext,
    /// The flow handle.
    pub flow: u64,
    /// ALE_AUTH_CONNECT_V4/V6 or ALE_AUTH_RECV_ACCEPT_V4/V6.
    pub layer: LayerId,
    /// IP_REMOTE_ADDRESS.
    pub remote: Option<IpAddr>,
    /// IP_REMOTE_PORT.
    pub remote_port: u16,
    /// The inspector's configured decision ([`Worker::run`] applies it).
    pub proposed: Decision,
    /// At ALE_AUTH_RECV_ACCEPT: the clone of the pended packet (retreated to its IP header) and
    /// the injection handle to re-inject it with. §10.1: completing a RECV_ACCEPT pend triggers no
    /// reauthorization — [`Worker::decide`] re-injects the clone (FwpsInjectTransportReceiveAsync0)
    /// when allowing, and its classify authorizes the connection; when blocking it frees it.
    pub packet: Option<(InjectionHandle, PacketId)>,
}

/// One out-of-band stream edit (§9.2): a clone of blocked stream bytes to edit and inject.
pub(crate) struct Edit {
    /// The injection handle of the editor.
    pub(crate) handle: InjectionHandle,
    /// The clone (`FwpsCloneStreamData0`).
    pub(crate) packet: PacketId,
    /// Where it goes (`FwpsStreamInjectAsync0`'s flow, callout, layer, flags).
    pub(crate) kind: InjectionKind,
    /// The pattern and its replacement.
    pub(crate) rule: std::sync::Arc<crate::stream_editor::Rule>,
}

/// Counters of the worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Inspections queued by the pending inspector.
    pub inspections: u64,
    /// Inspections decided Allow.
    pub allowed: u64,
    /// Inspections decided Block.
    pub blocked: u64,
    /// Decisions whose operation was no longer pending (`complete_operation` failed).
    pub late: u64,
    /// Out-of-band edits injected.
    pub edits: u64,
    /// Clones of pended RECV_ACCEPT packets re-injected after an Allow decision.
    pub reinjected: u64,
    /// Out-of-band edits whose injection failed (the clone was freed).
    pub edits_failed: u64,
}

#[derive(Default)]
struct State {
    inspections: VecDeque<Inspection>,
    decided: HashMap<u64, Decision>,
    edits: VecDeque<Edit>,
    stats: WorkerStats,
}

/// The host's worker queue (see the module doc). Owned by the [`crate::Host`].
#[derive(Default)]
pub struct Worker {
    state: Mutex<State>,
    /// Inspections plus edits queued, changed only with `state` locked (so it equals their
    /// count whenever the lock is free): [`Worker::is_idle`] reads it without locking.
    queued: AtomicUsize,
    /// The pending inspector's injection handles (network + transport, one per family), shared
    /// by its instances at every layer.
    pub(crate) inspector_handles: crate::support::NetworkHandles,
}

impl Worker {
    /// An empty worker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs everything queued: each waiting inspection is decided with its proposed decision,
    /// each out-of-band edit is injected. Returns how many items ran.
    pub fn run(&self, engine: &Engine) -> usize {
        // A data path calls this after every packet and nearly always finds nothing queued:
        // then one lock and no allocation.
        if self.is_idle() {
            return 0;
        }
        let inspections = self.take_inspections();
        let mut n = inspections.len();
        for i in inspections {
            let _ = self.decide(engine, &i, i.proposed);
        }
        let edits: Vec<Edit> = {
            let mut st = self.state.lock();
            self.queued.fetch_sub(st.edits.len(), Ordering::Release);
            st.edits.drain(..).collect()
        };
        n += edits.len();
        for e in edits {
            self.run_edit(engine, e);
        }
        n
    }

    /// Nothing queued: no inspection waiting for a decision, no out-of-band edit.
    pub fn is_idle(&self) -> bool {
        // A data path asks after every packet: one atomic load, no lock.
        self.queued.load(Ordering::Acquire) == 0
    }

    /// Takes the inspections waiting for a decision (a host that decides itself). Decide every one
    /// with [`Worker::decide`]: besides completing the pended operation, it re-injects or frees the
    /// inspection's cloned packet ([`Inspection::packet`]), which otherwise stays in the engine's
    /// ledger.
    pub fn take_inspections(&self) -> Vec<Inspection> {
        let mut st = self.state.lock();
        self.queued
            .fetch_sub(st.inspections.len(), Ordering::Release);
        st.inspections.drain(..).collect()
    }

    /// Decides `inspection`: records the decision for its flow and completes the pended operation
    /// (`FwpsCompleteOperation0`). The engine's status: STATUS_FWP_NOT_FOUND when the operation
    /// is no longer pending (decided twice, or dropped by the data path's deadline).
    pub fn decide(&self, engine: &Engine, inspection: &Inspection, decision: Decision) -> Status {
        let status = self.complete(engine, inspection, decision);
        if let Some((handle, packet)) = inspection.packet {
            self.reinject(
                engine,
                handle,
                packet,
                status == Status::SUCCESS && decision == Decision::Allow,
            );
        }
        status
    }

    /// The clone of a RECV_ACCEPT pend after completion: re-injected at the bottom of the inbound
    /// path when `allow`, else freed (a second decision finds it gone and changes nothing).
    fn reinject(&self, engine: &Engine, handle: InjectionHandle, packet: PacketId, allow: bool) {
        if allow {
            let kind = InjectionKind::TransportReceive {
                compartment: 1,
                interface: 0,
                sub_interface: 0,
            };
            let st = engine.inject(Inject {
                handle,
                context: 0,
                kind,
                packet,
                completion: None,
            });
            if st == Status::SUCCESS {
                self.state.lock().stats.reinjected += 1;
                return;
            }
        }
        let _ = engine.free_packet(packet);
    }

    fn complete(&self, engine: &Engine, inspection: &Inspection, decision: Decision) -> Status {
        if !engine.is_operation_pending(inspection.context) {
            self.state.lock().stats.late += 1;
            return Status::FWP_NOT_FOUND;
        }
        // Recorded before completing: the reauthorization the completion triggers reads it.
        let previous = self.state.lock().decided.insert(inspection.flow, decision);
        let status = engine.complete_operation(inspection.context, None);
        let mut st = self.state.lock();
        if status != Status::SUCCESS {
            // Completed by someone else in between: their decision stands.
            match previous {
                Some(p) => st.decided.insert(inspection.flow, p),
                None => st.decided.remove(&inspection.flow),
            };
            st.stats.late += 1;
            return status;
        }
        match decision {
            Decision::Allow => st.stats.allowed += 1,
            Decision::Block => st.stats.blocked += 1,
        }
        status
    }

    /// Inspections waiting for a decision.
    pub fn pending_inspections(&self) -> usize {
        self.state.lock().inspections.len()
    }

    /// Flows with a recorded decision (until their end).
    pub fn decided_flows(&self) -> usize {
        self.state.lock().decided.len()
    }

    /// Counters.
    pub fn stats(&self) -> WorkerStats {
        self.state.lock().stats
    }

    pub(crate) fn queue_inspection(&self, i: Inspection) {
        let mut st = self.state.lock();
        st.stats.inspections += 1;
        st.inspections.push_back(i);
        self.queued.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn queue_edit(&self, e: Edit) {
        let mut st = self.state.lock();
        st.edits.push_back(e);
        self.queued.fetch_add(1, Ordering::Release);
    }

    /// The decision for `flow`, if one was made.
    pub(crate) fn decision(&self, flow: u64) -> Option<Decision> {
        self.state.lock().decided.get(&flow).copied()
    }

    /// Forgets the decision for `flow` (its flow ended, or it was refused).
    pub(crate) fn forget(&self, flow: u64) {
        self.state.lock().decided.remove(&flow);
    }

    fn run_edit(&self, engine: &Engine, e: Edit) {
        let edited = engine
            .packet_data(e.packet)
            .map(|d| e.rule.apply(&d))
            .unwrap_or_default();
        let _ = engine.set_packet_data(e.packet, edited);
        let st = engine.inject(Inject {
            handle: e.handle,
            context: 0,
            kind: e.kind,
            packet: e.packet,
            completion: None,
        });
        let mut s = self.state.lock();
        if st == Status::SUCCESS {
            s.stats.edits += 1;
        } else {
            s.stats.edits_failed += 1;
            drop(s);
            let _ = engine.free_packet(e.packet);
        }
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("Worker")
            .field("inspections", &st.inspections.len())
            .field("edits", &st.edits.len())
            .field("stats", &st.stats)
            .finish()
    }
}

/// Which `FwpsStreamInjectAsync0` a stream callout makes for data it was indicated.
pub(crate) fn stream_kind(
    flow: u64,
    callout: CalloutId,
    layer: LayerId,
    receive: bool,
) -> InjectionKind {
    InjectionKind::Stream {
        flow,
        callout,
        layer,
        flags: if receive {
            wfp_core::constants::StreamFlags::RECEIVE
        } else {
            wfp_core::constants::StreamFlags::SEND
        },
    }
}
