//! Flow offload in the daemon (`[offload]`, `docs/offload.md`): decided flows are carried by the
//! kernel, a commit revokes them before it returns, and their end still reaches the shim.
//!
//! ```text
//!  worker: shim verdict PERMIT + Offload::Eligible ─► once the batch's verdicts are out: the
//!          connection's field (epoch + slots) set through conntrack netlink; later packets of
//!          that slot: accepted in `filter` before the queue jump
//!  daemon reload:  OffloadControl::begin_commit (rules → next epoch: every offload revoked)
//!                  ─► commit ─► OffloadControl::end_commit (workers mark with the new epoch)
//!  API commits:    OffloadControl::tick sees the policy move ─► revoke (after the commit)
//!  flow end:       conntrack destroy events (counters) ─► each worker ─► Shim::end_offloaded
//!                  (ENDPOINT_CLOSURE, flowDeleteFn once, totals with the kernel's counts)
//!  open flows:     OffloadControl::tick, once a second: a dump of the current epoch's connections
//!                  (counters) ─► each worker ─► Shim::note_carried (`show flows`, /v1/flows)
//!  async actions:  Shim::take_withdrawals after the asynchronous step (FwpsFlowAbort0, stream
//!                  continuation or injection from outside classifyFn) ─► that connection's
//!                  offload bits cleared by tuple (conntrack update), again once the batch's
//!                  verdicts are out ─► its next packet is queued
//! ```
//!
//! A worker offloads a connection only when the engine's policy epoch was the same before and
//! after its decision and the offload epoch it read before deciding is still the rules' epoch
//! (checked again when the update goes out), so a connection mark never carries a decision made
//! under another policy than the epoch it names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use wfp_core::catalogue::layers;
use wfp_core::engine::{CommitObserver, CommitPhase};
use wfp_core::{Engine, LayerId};
use wfp_nfqueue::conntrack::{ConnEnd, ConntrackSocket, CtTuple, MarkOutcome};
use wfp_nfqueue::offload::{
    CtDir, Epoch, Epochs, OffloadMarks, OffloadRules, Slot, SlotHook, DEFAULT_MASK,
};
use wfp_nfqueue::rules::RuleSet;
use wfp_nfqueue::{Hook, QueuedPacket};
use wfp_shim::flow::{Direction, FlowKey, Side};
use wfp_shim::pipeline::{CarriedCounts, Offload, Withdrawal};
use wfp_shim::{PacketVerdict, Shim, ShimConfig, Verdict};

/// `[offload]`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct OffloadConfig {
    /// Let the kernel carry flows whose later packets cannot get another answer. Default false.
    pub enabled: bool,
    /// The packet/connection mark bits reserved for offload (one run of at least 6 bits; bits
    /// outside it are left to other software). Default `0x00ff0000`.
    pub mask: u32,
    /// Follow conntrack destroy events so offloaded flows end in the shim (flowDeleteFn) with
    /// the kernel's counters (set `net.netfilter.nf_conntrack_acct = 1` for byte counts).
    /// Default true.
    pub flow_end: bool,
}

impl Default for OffloadConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            mask: DEFAULT_MASK,
            flow_end: true,
        }
    }
}

/// The layers whose filters decide an offloaded flow's answer: a commit that changes any of
/// them revokes every offload.
const DECIDING_LAYERS: [LayerId; 18] = [
    layers::ALE_AUTH_CONNECT_V4,
    layers::ALE_AUTH_CONNECT_V6,
    layers::ALE_AUTH_RECV_ACCEPT_V4,
    layers::ALE_AUTH_RECV_ACCEPT_V6,
    layers::INBOUND_IPPACKET_V4,
    layers::INBOUND_IPPACKET_V6,
    layers::OUTBOUND_IPPACKET_V4,
    layers::OUTBOUND_IPPACKET_V6,
    layers::INBOUND_TRANSPORT_V4,
    layers::INBOUND_TRANSPORT_V6,
    layers::OUTBOUND_TRANSPORT_V4,
    layers::OUTBOUND_TRANSPORT_V6,
    layers::STREAM_V4,
    layers::STREAM_V6,
    layers::DATAGRAM_DATA_V4,
    layers::DATAGRAM_DATA_V6,
    layers::ALE_FLOW_ESTABLISHED_V4,
    layers::ALE_FLOW_ESTABLISHED_V6,
];

/// A value that changes whenever the filters of a deciding layer change.
fn deciding_generation(engine: &Engine) -> u64 {
    DECIDING_LAYERS
        .iter()
        .map(|l| engine.layer_generation(*l))
        .fold(0u64, |a, g| a.wrapping_mul(31).wrapping_add(g))
}

/// Counters (shared by the workers and the daemon).
#[derive(Debug, Default)]
pub struct OffloadStats {
    /// Packets decided eligible whose connection is offloaded (or already was) for their slot.
    pub marked: AtomicU64,
    /// Connection marks set through conntrack (one per offload decision that changed one).
    pub ct_updates: AtomicU64,
    /// Connection mark updates that failed or found no connection (the slot stays queued).
    pub ct_update_failed: AtomicU64,
    /// Eligible packets not marked because the policy moved during their decision.
    pub raced: AtomicU64,
    /// Revocations (epoch switches).
    pub revocations: AtomicU64,
    /// The last revocation's rule update, in microseconds.
    pub last_revocation_us: AtomicU64,
    /// Offloaded flows ended from conntrack destroy events.
    pub flows_ended: AtomicU64,
    /// Packets the kernel carried for flows ended that way.
    pub carried_packets: AtomicU64,
    /// Bytes (both directions, the kernel's counts) of the flows ended that way.
    pub ended_bytes: AtomicU64,
    /// Offloaded connections whose kernel counts were refreshed (open flows).
    pub counts_refreshed: AtomicU64,
    /// Offloads withdrawn from one connection after an asynchronous action on its flow.
    pub withdrawn: AtomicU64,
    /// Withdrawals that failed (conntrack update errors; the next revocation covers them).
    pub withdraw_failed: AtomicU64,
}

/// What conntrack reports to a worker about an offloaded connection.
#[derive(Clone, Copy, Debug)]
enum CtReport {
    /// It ended (a destroy event).
    Ended(ConnEnd),
    /// It is open; its counters now (a dump).
    Open(ConnEnd),
}

/// What the daemon and its workers share.
#[derive(Debug)]
pub struct OffloadShared {
    marks: OffloadMarks,
    /// The epoch workers mark with (0: offload off).
    epoch: AtomicU32,
    /// Counters.
    pub stats: OffloadStats,
    /// Conntrack reports for each worker.
    ends: Mutex<Vec<(Sender<CtReport>, Arc<AtomicUsize>)>>,
}

impl OffloadShared {
    /// The epoch workers mark with now (`None`: not marking).
    pub fn epoch(&self) -> Option<Epoch> {
        match self.epoch.load(Ordering::Acquire) {
            0 => None,
            e => Some(Epoch(e)),
        }
    }

    /// Hands `reports` to every worker.
    fn broadcast(&self, reports: impl Iterator<Item = CtReport> + Clone) {
        if let Ok(ends) = self.ends.lock() {
            for (tx, pending) in ends.iter() {
                for r in reports.clone() {
                    pending.fetch_add(1, Ordering::AcqRel);
                    let _ = tx.send(r);
                }
            }
        }
    }
}

/// A worker's side of offload (held by [`crate::worker::ShimHandler`]).
#[derive(Debug)]
pub struct WorkerOffload {
    shared: Arc<OffloadShared>,
    ends: Receiver<CtReport>,
    pending: Arc<AtomicUsize>,
    /// For connection mark updates and withdrawals (opened at the first).
    conntrack: Option<ConntrackSocket>,
    /// Connection fields to set once the batch's verdicts are out: (original tuple, epoch,
    /// the whole reserved field).
    updates: Vec<(CtTuple, Epoch, u32)>,
    /// Connections withdrawn at the end of a batch, cleared again once its verdicts are out
    /// ([`WorkerOffload::withdraw_again`]), and when that is due.
    again: (Vec<CtTuple>, Option<Duration>),
}

/// What a worker read before deciding a packet.
#[derive(Clone, Copy, Debug)]
pub struct Before {
    epoch: Option<Epoch>,
    policy: u64,
}

impl WorkerOffload {
    /// A worker's handle on `shared`.
    pub fn new(shared: &Arc<OffloadShared>) -> Self {
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        if let Ok(mut ends) = shared.ends.lock() {
            ends.push((tx, Arc::clone(&pending)));
        }
        Self {
            shared: Arc::clone(shared),
            ends: rx,
            pending,
            conntrack: None,
            updates: Vec::new(),
            again: (Vec::new(), None),
        }
    }

    /// Read before deciding: the offload epoch, then the engine's policy epoch.
    pub fn before(&self, engine: &Engine) -> Before {
        Before {
            epoch: self.shared.epoch(),
            policy: engine.policy_summary().epoch,
        }
    }

    /// Notes `packet`'s connection for offload after the shim's `outcome`, if its flow direction
    /// may be offloaded and nothing moved since `before`: its field (the restored one in the
    /// packet's mark plus this slot, [`OffloadMarks::mark`]) is set through conntrack once the
    /// batch's verdicts are out ([`WorkerOffload::verdicts_sent`]), so no later packet overtakes
    /// this one.
    pub fn note(
        &mut self,
        before: Before,
        engine: &Engine,
        packet: &QueuedPacket,
        outcome: &PacketVerdict,
    ) {
        let Offload::Eligible { sender } = outcome.offload else {
            return;
        };
        if packet.is_truncated() || outcome.verdict != Verdict::Permit {
            // Truncated: not decided by the shim (the outcome is an earlier packet's).
            return;
        }
        let Some(epoch) = before.epoch else {
            return;
        };
        if engine.policy_summary().epoch != before.policy || self.shared.epoch() != Some(epoch) {
            self.shared.stats.raced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let hook = match packet.hook {
            Hook::LocalIn => SlotHook::Input,
            Hook::LocalOut => SlotHook::Output,
            _ => return,
        };
        let dir = match sender {
            Side::Initiator => CtDir::Original,
            Side::Responder => CtDir::Reply,
        };
        let Some(tuple) = connection_of(&packet.payload, dir) else {
            return;
        };
        self.shared.stats.marked.fetch_add(1, Ordering::Relaxed);
        let marks = self.shared.marks;
        let incoming = packet.mark.unwrap_or(0) & marks.mask();
        let pending = self.updates.iter_mut().find(|(t, _, _)| *t == tuple);
        let base = match &pending {
            Some((_, e, field)) if *e == epoch => *field,
            _ => incoming,
        };
        let field = marks.mark(base, epoch, Slot { dir, hook }) & marks.mask();
        match pending {
            Some(p) => *p = (tuple, epoch, field),
            None if field != incoming => self.updates.push((tuple, epoch, field)),
            None => {}
        }
    }

    /// Whether connection marks wait for [`WorkerOffload::verdicts_sent`].
    pub fn has_updates(&self) -> bool {
        !self.updates.is_empty()
    }

    /// After the batch's verdicts went out: sets the noted connections' fields (those noted
    /// under the epoch still current; a revocation in between leaves them queued), all of the
    /// batch's in one conntrack netlink message batch ([`ConntrackSocket::set_marks`]).
    pub fn verdicts_sent(&mut self) {
        let updates = std::mem::take(&mut self.updates);
        let current = self.shared.epoch();
        let mask = self.shared.marks.mask();
        let shared = Arc::clone(&self.shared);
        let stats = &shared.stats;
        let fields: Vec<(CtTuple, u32)> = updates
            .into_iter()
            .filter_map(|(tuple, epoch, field)| {
                if current == Some(epoch) {
                    Some((tuple, field))
                } else {
                    stats.raced.fetch_add(1, Ordering::Relaxed);
                    None
                }
            })
            .collect();
        if fields.is_empty() {
            return;
        }
        let n = fields.len() as u64;
        let Some(socket) = self.socket() else {
            stats.ct_update_failed.fetch_add(n, Ordering::Relaxed);
            return;
        };
        match socket.set_marks(&fields, mask) {
            Ok(outcomes) => {
                for (o, (tuple, _)) in outcomes.iter().zip(&fields) {
                    match o {
                        MarkOutcome::Set => stats.ct_updates.fetch_add(1, Ordering::Relaxed),
                        MarkOutcome::NoSuchConnection => {
                            stats.ct_update_failed.fetch_add(1, Ordering::Relaxed)
                        }
                        MarkOutcome::Failed { errno } => {
                            tracing::debug!(errno, ?tuple, "offload: connection mark not set");
                            stats.ct_update_failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "offload: connection marks not set");
                stats.ct_update_failed.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// The worker's conntrack socket, opened at the first use (`None`: it cannot be opened).
    fn socket(&mut self) -> Option<&mut ConntrackSocket> {
        if self.conntrack.is_none() {
            match ConntrackSocket::open() {
                Ok(s) => self.conntrack = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "offload: no conntrack socket");
                    return None;
                }
            }
        }
        self.conntrack.as_mut()
    }

    /// Whether conntrack reports wait for [`WorkerOffload::end_flows`].
    pub fn due(&self) -> bool {
        self.pending.load(Ordering::Acquire) > 0
    }

    /// When [`WorkerOffload::withdraw_again`] has work.
    pub fn again_due(&self) -> Option<Duration> {
        self.again.1
    }

    /// Withdraws the kernel offload of the flows an asynchronous action touched
    /// ([`Shim::take_withdrawals`]; call after the asynchronous step): the reserved bits of
    /// each one's connection are cleared through conntrack (an update by tuple), so its next
    /// packet is queued and meets the action's effect (a blocked packet after `FwpsFlowAbort0`).
    /// A packet of such a flow decided earlier in this batch may still carry an offload mark
    /// that the kernel saves when its verdict goes out: each is cleared again once the batch's
    /// verdicts are out (2 ms after `now`, at the next batch or timer).
    pub fn withdraw(&mut self, shim: &mut Shim, now: Duration) {
        let tuples: Vec<CtTuple> = shim.take_withdrawals().iter().map(original).collect();
        if tuples.is_empty() {
            return;
        }
        let s = &self.shared.stats;
        s.withdrawn
            .fetch_add(tuples.len() as u64, Ordering::Relaxed);
        // Offloads noted in this batch for those connections are not made.
        self.updates
            .retain(|(t, _, _)| !tuples.iter().any(|w| w == t || w == &reversed(t)));
        self.clear(&tuples);
        self.again.0.extend(tuples);
        self.again.1 = Some(now + AGAIN_AFTER);
    }

    /// The second clear of [`WorkerOffload::withdraw`], when due (`batch`: at the start of a
    /// batch, which comes after the previous verdicts went out).
    pub fn withdraw_again(&mut self, now: Duration, batch: bool) {
        let Some(due) = self.again.1 else {
            return;
        };
        if !batch && now < due {
            return;
        }
        let tuples = std::mem::take(&mut self.again.0);
        self.again.1 = None;
        self.clear(&tuples);
    }

    /// Clears the reserved mark bits of each connection, in one conntrack netlink message batch
    /// (counted; errors logged).
    fn clear(&mut self, tuples: &[CtTuple]) {
        let mask = self.shared.marks.mask();
        let shared = Arc::clone(&self.shared);
        let stats = &shared.stats;
        let Some(socket) = self.socket() else {
            stats
                .withdraw_failed
                .fetch_add(tuples.len() as u64, Ordering::Relaxed);
            return;
        };
        let clears: Vec<(CtTuple, u32)> = tuples.iter().map(|t| (*t, 0)).collect();
        match socket.set_marks(&clears, mask) {
            Ok(outcomes) => {
                for (o, t) in outcomes.iter().zip(tuples) {
                    if let MarkOutcome::Failed { errno } = o {
                        stats.withdraw_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(errno, ?t, "offload withdrawal failed");
                    } else {
                        let found = *o == MarkOutcome::Set;
                        tracing::debug!(?t, found, "offload withdrawn (asynchronous action)");
                    }
                }
            }
            Err(e) => {
                stats
                    .withdraw_failed
                    .fetch_add(tuples.len() as u64, Ordering::Relaxed);
                tracing::warn!(error = %e, "offload withdrawal failed");
            }
        }
    }

    /// Applies conntrack's reports: the shim's flows of the connections the kernel destroyed
    /// end, the kernel's counts of open ones are noted (both orientations: a loopback
    /// connection is two flows, the sender's and the receiver's). Returns how many flows ended.
    pub fn end_flows(&self, shim: &mut Shim) -> usize {
        let mut n = 0;
        while let Ok(report) = self.ends.try_recv() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            let end = match report {
                CtReport::Ended(end) => end,
                CtReport::Open(open) => {
                    let (keys, kernel) = flow_keys(&open);
                    for key in keys {
                        if shim.note_carried(&key, kernel) {
                            let s = &self.shared.stats;
                            s.counts_refreshed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    continue;
                }
            };
            let (keys, kernel) = flow_keys(&end);
            for key in keys {
                if let Some(e) = shim.end_offloaded(&key, kernel) {
                    n += 1;
                    let s = &self.shared.stats;
                    s.flows_ended.fetch_add(1, Ordering::Relaxed);
                    s.carried_packets.fetch_add(
                        e.carried_packets[0] + e.carried_packets[1],
                        Ordering::Relaxed,
                    );
                    s.ended_bytes
                        .fetch_add(e.bytes[0] + e.bytes[1], Ordering::Relaxed);
                    tracing::debug!(
                        flow = e.flow.get(),
                        packets = ?e.packets,
                        bytes = ?e.bytes,
                        carried = ?e.carried_packets,
                        contexts = e.contexts,
                        "offloaded flow ended (conntrack)"
                    );
                }
            }
        }
        n
    }
}

/// How long after a batch's end its verdicts are surely out (the worker loop sends them before
/// it next waits): the second clear of a withdrawal ([`WorkerOffload::withdraw`]).
const AGAIN_AFTER: Duration = Duration::from_millis(2);

/// The connection of a withdrawn flow: its original tuple (from the flow's initiator).
fn original(w: &Withdrawal) -> CtTuple {
    let k = &w.key;
    let (local, remote) = (
        (k.local_addr(), k.local_port()),
        (k.remote_addr(), k.remote_port()),
    );
    let (src, dst) = match w.initiator {
        Direction::Outbound => (local, remote),
        Direction::Inbound => (remote, local),
    };
    CtTuple {
        protocol: k.protocol(),
        src: src.0,
        dst: dst.0,
        sport: src.1,
        dport: dst.1,
    }
}

/// The same connection seen from its other direction.
fn reversed(t: &CtTuple) -> CtTuple {
    CtTuple {
        protocol: t.protocol,
        src: t.dst,
        dst: t.src,
        sport: t.dport,
        dport: t.sport,
    }
}

/// The original tuple of the connection of a TCP or UDP packet (IP header first) sent in
/// conntrack direction `dir`; `None` for other packets (and IPv6 with extension headers).
fn connection_of(ip: &[u8], dir: CtDir) -> Option<CtTuple> {
    let (protocol, src, dst, l4) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff;
            if fragment != 0 || ihl < 20 {
                return None;
            }
            let a = |at: usize| -> Option<IpAddr> {
                let b: [u8; 4] = ip.get(at..at + 4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(b)))
            };
            (*ip.get(9)?, a(12)?, a(16)?, ip.get(ihl..)?)
        }
        6 => {
            let a = |at: usize| -> Option<IpAddr> {
                let b: [u8; 16] = ip.get(at..at + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            };
            (*ip.get(6)?, a(8)?, a(24)?, ip.get(40..)?)
        }
        _ => return None,
    };
    if protocol != 6 && protocol != 17 {
        return None;
    }
    let port =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*l4.get(at)?, *l4.get(at + 1)?])) };
    let sent = CtTuple {
        protocol,
        src,
        dst,
        sport: port(0)?,
        dport: port(2)?,
    };
    Some(match dir {
        CtDir::Original => sent,
        CtDir::Reply => reversed(&sent),
    })
}

/// The shim flow keys of a connection (the local side's, outbound-initiated, then the receiving
/// side's, inbound-initiated) and its counters per side of those flows.
fn flow_keys(c: &ConnEnd) -> ([FlowKey; 2], CarriedCounts) {
    let t = c.tuple;
    let keys = [
        FlowKey::new(t.protocol, t.src, t.sport, t.dst, t.dport),
        FlowKey::new(t.protocol, t.dst, t.dport, t.src, t.sport),
    ];
    let kernel = CarriedCounts {
        packets: [c.original.packets, c.reply.packets],
        bytes: [c.original.bytes, c.reply.bytes],
    };
    (keys, kernel)
}

/// The daemon's side: rules, epochs, revocation, the conntrack event thread. Shared with the
/// engine's commit observer, which revokes on the committing thread (issue 16).
pub struct OffloadControl {
    shared: Arc<OffloadShared>,
    inner: Arc<Mutex<Control>>,
}

impl OffloadControl {
    /// Prepares offload beside `queue`'s rules: old offload rules removed and every
    /// connection's offload marks cleared (nothing offloaded before survives a restart). Workers
    /// take their [`WorkerOffload`] from [`OffloadControl::shared`]; then
    /// [`OffloadControl::install`] once the queue rules are in place.
    pub fn new(config: &OffloadConfig, queue: RuleSet, engine: &Engine) -> anyhow::Result<Self> {
        let control = Control::new(config, queue, engine)?;
        Ok(Self {
            shared: Arc::clone(&control.shared),
            inner: Arc::new(Mutex::new(control)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Control> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Installs the offload rules (after the queue rules: their jumps go first), starts the
    /// conntrack event thread, lets the workers mark, and sets `engine`'s commit observer so a
    /// commit made through the management API revokes before it returns.
    pub fn install(&mut self, engine: &Engine) -> anyhow::Result<()> {
        self.lock().install(engine)?;
        engine.set_commit_observer(Some(commit_observer(Arc::downgrade(&self.inner))));
        Ok(())
    }

    /// What the workers share.
    pub fn shared(&self) -> &Arc<OffloadShared> {
        &self.shared
    }

    /// Before a commit: the rules switch to the next epoch, so every offloaded connection is
    /// queued again from its next packet, while workers still mark with the old one (their
    /// marks match no rule). Returns the rule update's duration.
    pub fn begin_commit(&mut self) -> anyhow::Result<Duration> {
        self.lock().begin_commit()
    }

    /// After the commit (or its failure): workers mark with the new epoch.
    pub fn end_commit(&mut self, engine: &Engine) {
        self.lock().end_commit(engine);
    }

    /// A whole revocation for a deciding-layer change the commit observer missed (its
    /// revocation failed), and the upcoming epoch's stale marks cleared ahead of time; reaps
    /// expired offloaded connections. Call periodically.
    pub fn tick(&mut self, engine: &Engine) {
        self.lock().tick(engine);
    }

    /// Stops: workers stop marking, the rules go (offloaded connections are queued again, or
    /// meet the queue rules' absent posture), the event thread ends.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.lock().stop()
    }

    /// The counters.
    pub fn stats(&self) -> &OffloadStats {
        &self.shared.stats
    }

    /// Revocations (epoch switches) so far.
    pub fn revocations(&self) -> u64 {
        self.shared.stats.revocations.load(Ordering::Relaxed)
    }
}

/// The engine's commit observer: a commit changing a deciding layer switches the rules' epoch
/// before its snapshot is published, and workers mark with the new epoch once it is, so the
/// commit returns to its caller (a management API client) with every offload revoked. A
/// revocation already begun (by [`Daemon::reload`](crate::daemon::Daemon::reload)) is not
/// repeated.
fn commit_observer(control: Weak<Mutex<Control>>) -> CommitObserver {
    Arc::new(move |engine: &Engine, phase: CommitPhase<'_>| {
        let Some(control) = control.upgrade() else {
            return;
        };
        let mut c = control.lock().unwrap_or_else(PoisonError::into_inner);
        if !c.installed {
            return;
        }
        match phase {
            CommitPhase::Publishing { layers } => {
                if !c.begun && layers.iter().any(|l| DECIDING_LAYERS.contains(l)) {
                    match c.begin_commit() {
                        Ok(took) => tracing::info!(?took, "policy commit: offloaded flows revoked"),
                        Err(e) => tracing::error!("offload revocation failed: {e:#}"),
                    }
                }
            }
            CommitPhase::Published => {
                if c.begun {
                    c.end_commit(engine);
                }
            }
        }
    })
}

/// [`OffloadControl`]'s state.
struct Control {
    shared: Arc<OffloadShared>,
    rules: OffloadRules,
    epochs: Epochs,
    conntrack: ConntrackSocket,
    /// [`deciding_generation`] under the current epoch.
    generation: u64,
    /// A revocation begun by [`OffloadControl::begin_commit`].
    begun: bool,
    events: Option<(Arc<std::sync::atomic::AtomicBool>, JoinHandle<()>)>,
    flow_end: bool,
    installed: bool,
    /// When [`OffloadControl::tick`] last dumped the offloaded connections.
    last_scan: std::time::Instant,
}

/// How often [`OffloadControl::tick`] dumps the offloaded connections (reaping expired ones).
const SCAN_INTERVAL: Duration = Duration::from_secs(1);

impl Control {
    /// Prepares offload beside `queue`'s rules: old offload rules removed and every
    /// connection's offload marks cleared (nothing offloaded before survives a restart). Workers
    /// take their [`WorkerOffload`] from [`OffloadControl::shared`]; then
    /// [`OffloadControl::install`] once the queue rules are in place.
    fn new(config: &OffloadConfig, queue: RuleSet, engine: &Engine) -> anyhow::Result<Self> {
        let marks = OffloadMarks::new(config.mask).context("[offload] mask")?;
        let rules = OffloadRules::new(queue, marks);
        rules.remove().context("removing old offload rules")?;
        let mut conntrack = ConntrackSocket::open().context("opening conntrack netlink")?;
        let cleared = conntrack
            .clear_marks(0, 0, marks.mask())
            .context("clearing old offload marks")?;
        let first = Epoch(1);
        let mut epochs = Epochs::new(marks, first);
        // Every mark was cleared: the next value is clean too.
        epochs.cleaned();
        let shared = Arc::new(OffloadShared {
            marks,
            epoch: AtomicU32::new(0),
            stats: OffloadStats::default(),
            ends: Mutex::new(Vec::new()),
        });
        tracing::debug!(cleared, "old offload marks cleared");
        Ok(Self {
            shared,
            rules,
            epochs,
            conntrack,
            generation: deciding_generation(engine),
            begun: false,
            events: None,
            flow_end: config.flow_end,
            installed: false,
            last_scan: std::time::Instant::now(),
        })
    }

    /// Installs the offload rules (after the queue rules: their jumps go first), starts the
    /// conntrack event thread, and lets the workers mark.
    fn install(&mut self, engine: &Engine) -> anyhow::Result<()> {
        let epoch = self.epochs.current();
        self.installed = true;
        self.rules
            .install(epoch)
            .context("installing the offload rules")?;
        if self.flow_end {
            self.events = Some(spawn_events(Arc::clone(&self.shared))?);
        }
        self.generation = deciding_generation(engine);
        self.shared.epoch.store(epoch.0, Ordering::Release);
        tracing::info!(
            mask = format!("{:#x}", self.shared.marks.mask()),
            "flow offload on"
        );
        Ok(())
    }

    /// Before a commit: the rules switch to the next epoch, so every offloaded connection is
    /// queued again from its next packet, while workers still mark with the old one (their
    /// marks match no rule). Returns the rule update's duration.
    fn begin_commit(&mut self) -> anyhow::Result<Duration> {
        if !self.epochs.upcoming_is_clean() {
            self.clean_upcoming();
        }
        let next = self.epochs.upcoming();
        let took = self
            .rules
            .switch_epoch(next)
            .context("switching the offload epoch")?;
        self.epochs.advance();
        self.begun = true;
        let s = &self.shared.stats;
        s.revocations.fetch_add(1, Ordering::Relaxed);
        s.last_revocation_us.store(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        Ok(took)
    }

    /// After the commit (or its failure): workers mark with the new epoch.
    fn end_commit(&mut self, engine: &Engine) {
        if std::mem::take(&mut self.begun) {
            self.shared
                .epoch
                .store(self.epochs.current().0, Ordering::Release);
        }
        self.generation = deciding_generation(engine);
    }

    /// A whole revocation (begin + end) for a commit made elsewhere (the management API), when
    /// the deciding layers changed since the last one; and the upcoming epoch's stale marks
    /// cleared ahead of time. Call periodically.
    fn tick(&mut self, engine: &Engine) {
        if deciding_generation(engine) != self.generation {
            match self.begin_commit() {
                Ok(took) => tracing::info!(?took, "policy changed: offloaded flows revoked"),
                Err(e) => tracing::error!("offload revocation failed: {e:#}"),
            }
            self.end_commit(engine);
        }
        if !self.epochs.upcoming_is_clean() {
            self.clean_upcoming();
        }
        if self.flow_end && self.last_scan.elapsed() >= SCAN_INTERVAL {
            self.last_scan = std::time::Instant::now();
            // Expired offloaded connections are reaped now, their destroy events sent (the
            // kernel's garbage collector may wait up to a minute).
            let m = self.shared.marks;
            // Their counters refresh the open offloaded flows' counts (bounded: one dump of the
            // current epoch's connections, filtered by the kernel).
            let current = m.epoch_bits(self.epochs.current());
            match self.conntrack.dump(current, m.epoch_mask()) {
                Ok(open) => self.shared.broadcast(open.into_iter().map(CtReport::Open)),
                Err(e) => tracing::debug!(error = %e, "conntrack scan failed"),
            }
        }
    }

    /// Clears the connection marks that still carry the upcoming epoch (left from its last use a
    /// whole cycle ago).
    fn clean_upcoming(&mut self) {
        let m = self.shared.marks;
        let value = m.epoch_bits(self.epochs.upcoming());
        match self.conntrack.clear_marks(value, m.epoch_mask(), m.mask()) {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(n, "stale offload marks cleared");
                }
                self.epochs.cleaned();
            }
            Err(e) => tracing::warn!(error = %e, "cannot clear stale offload marks"),
        }
    }

    /// Stops: workers stop marking, the rules go (offloaded connections are queued again, or
    /// meet the queue rules' absent posture), the event thread ends.
    fn stop(&mut self) -> anyhow::Result<()> {
        self.shared.epoch.store(0, Ordering::Release);
        self.stop_events();
        self.installed = false;
        self.rules.remove().context("removing the offload rules")
    }

    fn stop_events(&mut self) {
        if let Some((stop, thread)) = self.events.take() {
            stop.store(true, Ordering::Release);
            let _ = thread.join();
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if self.installed {
            let _ = self.stop();
        }
        self.stop_events();
    }
}

/// The conntrack destroy-event thread: every event goes to every worker.
fn spawn_events(
    shared: Arc<OffloadShared>,
) -> anyhow::Result<(Arc<std::sync::atomic::AtomicBool>, JoinHandle<()>)> {
    let mut socket = ConntrackSocket::subscribe_destroy().context("conntrack events")?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("wfpd-conntrack".into())
        .spawn(move || {
            let mut batch = Vec::new();
            while !thread_stop.load(Ordering::Acquire) {
                batch.clear();
                if let Err(e) = socket.recv_ends(Duration::from_millis(100), &mut batch) {
                    tracing::warn!(error = %e, "conntrack events lost");
                }
                if batch.is_empty() {
                    continue;
                }
                shared.broadcast(batch.iter().copied().map(CtReport::Ended));
            }
        })
        .context("starting the conntrack event thread")?;
    Ok((stop, thread))
}

/// The shim's flow timeouts with offload: at least conntrack's, so the kernel's end of a
/// connection (a destroy event) ends an offloaded flow, not an idle timeout of the shim that
/// saw none of its packets.
pub fn lengthen_timeouts(config: &mut ShimConfig) {
    let read = |name: &str| -> Option<Duration> {
        let path = format!("/proc/sys/net/netfilter/{name}");
        let secs: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
        Some(Duration::from_secs(secs + 5))
    };
    let t = &mut config.flow.timeouts;
    let extend = |slot: &mut Duration, name: &str| {
        if let Some(d) = read(name) {
            *slot = (*slot).max(d);
        }
    };
    extend(
        &mut t.tcp_established,
        "nf_conntrack_tcp_timeout_established",
    );
    extend(&mut t.tcp_closing, "nf_conntrack_tcp_timeout_fin_wait");
    extend(&mut t.tcp_time_wait, "nf_conntrack_tcp_timeout_time_wait");
    extend(&mut t.datagram_idle, "nf_conntrack_udp_timeout_stream");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_parses_with_defaults() {
        let c: OffloadConfig = toml::from_str("enabled = true").expect("parse");
        assert!(c.enabled);
        assert_eq!(c.mask, 0x00ff_0000);
        assert!(c.flow_end);
        assert!(toml::from_str::<OffloadConfig>("bogus = 1").is_err());
    }

    #[test]
    fn a_packet_names_its_connection_in_either_direction() {
        // IPv4 UDP 10.0.0.1:1000 -> 10.0.0.2:53 (DF set).
        let mut v4 = vec![
            0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        v4.extend([0x03, 0xe8, 0, 53, 0, 8, 0, 0]);
        let t = connection_of(&v4, CtDir::Original).expect("v4");
        assert_eq!((t.protocol, t.sport, t.dport), (17, 1000, 53));
        assert_eq!(t.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(t.dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(connection_of(&v4, CtDir::Reply), Some(reversed(&t)));
        // A later fragment carries no ports.
        v4[6] = 0;
        v4[7] = 0x10;
        assert_eq!(connection_of(&v4, CtDir::Original), None);
        // IPv6 TCP [::1]:80 -> [::1]:4000, sent in the reply direction.
        let mut v6 = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        v6.extend(Ipv6Addr::LOCALHOST.octets());
        v6.extend(Ipv6Addr::LOCALHOST.octets());
        v6.extend([0, 80, 0x0f, 0xa0]);
        v6.extend([0u8; 16]);
        let t = connection_of(&v6, CtDir::Reply).expect("v6");
        assert_eq!((t.protocol, t.sport, t.dport), (6, 4000, 80));
        // ICMPv6, truncated or empty packets name no connection.
        v6[6] = 58;
        assert_eq!(connection_of(&v6, CtDir::Original), None);
        assert_eq!(connection_of(&v4[..10], CtDir::Original), None);
        assert_eq!(connection_of(&[], CtDir::Original), None);
    }

    #[test]
    fn any_filter_change_at_a_deciding_layer_moves_the_generation() {
        let engine = Engine::default();
        let before = deciding_generation(&engine);
        engine
            .add_filter(wfp_core::FilterSpec::new(
                "f",
                layers::INBOUND_TRANSPORT_V4,
                wfp_core::ActionType::BLOCK,
            ))
            .expect("add");
        assert_ne!(deciding_generation(&engine), before);
    }
}
