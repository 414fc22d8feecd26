//! The engine as a queue worker's packet handler ([`ShimHandler`]), and the counters a worker
//! shares with the rest of the daemon ([`WorkerShared`]). The loop itself is
//! [`wfp_nfqueue::run_worker`]:
//!
//! ```text
//!  Queue::recv_batch ──► for each packet: catch_unwind(ShimHandler::handle(now, packet))
//!        ▲                      │ Permit → ACCEPT (+ accounting mark)   Block/Absorb → DROP
//!        │                      │ panic  → internal_error posture (the queue's panic_verdict),
//!        │                      │          ShimHandler::recover (a fresh shim)
//!        │                      ▼
//!        └──── verdicts go out in one sendto before the next wait
//!  between batches: ShimHandler::handle_timeout(now) when the shim's poll_timeout() is due
//!  after each batch and timer: the asynchronous path (crate::asyncs) — the callouts' worker,
//!  Shim::handle_async, held packets answered, injected packets sent
//! ```
//!
//! A pended classify (verdict ABSORB, reason pended) keeps the packet's NFQUEUE verdict held
//! ([`wfp_nfqueue::Answer::Hold`]) until its completion releases it or the verdict deadline
//! passes; an edited packet is accepted with its new bytes ([`wfp_nfqueue::Answer::Replace`]).
//!
//! Each worker owns its `Queue` and its handler (one `Shim` per queue: flows are per queue,
//! since `--queue-balance` hashes each flow to one queue). Each shim numbers its flows and mints
//! its completion handles in its own `wfp_shim::IdShare`, and takes only the engine's events and
//! injections of its own flows (`crate::asyncs`). It shares only atomics ([`WorkerShared`]) with
//! the rest of the daemon.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wfp_core::Engine;
use wfp_nfqueue::{
    Answer, Decision, Deferred, Hook, PacketHandler, QueuedPacket, Verdict as NfVerdict,
    WorkerStatus,
};
use wfp_shim::{
    PacketDirection, PacketVerdict, Reason, Shim, ShimConfig, ShimEvent, Timestamp, Verdict,
};

use crate::asyncs::{AsyncCounters, AsyncPath};
use crate::config::Posture;
use crate::identity::{Identity, IdentityStats};

/// Counters and liveness of one worker, shared with the watchdog and the statistics.
#[derive(Debug, Default)]
pub struct WorkerShared {
    /// The queue number.
    pub queue: u16,
    /// The worker loop's own liveness and verdict counters (busy, progress — the watchdog's
    /// heartbeat —, accepted, dropped, contained panics and those accepted under
    /// `internal_error = "fail-open"`, exited, the queue's counters).
    pub status: WorkerStatus,
    /// Packets from a hook other than INPUT/OUTPUT/FORWARD.
    pub other_hook: AtomicU64,
    /// Packets longer than NFQUEUE copies (not inspectable whole).
    pub truncated: AtomicU64,
    /// Flows the shim ended (flowDeleteFn ran for their contexts).
    pub flows_ended: AtomicU64,
    /// Times the watchdog found this worker stuck.
    pub hung_episodes: AtomicU64,
    /// Packets the watchdog accepted while the worker was stuck (fail-open events).
    pub hung_accepted: AtomicU64,
    /// Packets the watchdog dropped while the worker was stuck.
    pub hung_dropped: AtomicU64,
    /// Identity lookups.
    pub identity: Arc<IdentityStats>,
    /// The asynchronous path: held, released, expired, edited, injected packets.
    pub asyncs: Arc<AsyncCounters>,
    /// The management API's sinks (classify metrics, flow table), once it is up.
    pub feeds: std::sync::OnceLock<crate::api::Feeds>,
}

impl WorkerShared {
    /// Fresh counters for queue `queue`.
    pub fn new(queue: u16) -> Self {
        Self {
            queue,
            ..Self::default()
        }
    }
}

/// The engine as a [`PacketHandler`]: hook → direction, identity, `Shim::handle_packet`, flow
/// events.
pub struct ShimHandler {
    shim: Shim,
    engine: Arc<Engine>,
    /// What the engine's built-in callouts read time from and leave work to (the daemon's).
    host: wfp_callouts::Host,
    /// Held packets, injected packets ([`crate::asyncs`]).
    asyncs: AsyncPath,
    /// When the asynchronous path last ran.
    last_async: Duration,
    identity: Identity,
    other_hook: Verdict,
    truncated: Verdict,
    shared: Arc<WorkerShared>,
    /// Reused for every packet (no allocation per packet).
    outcome: PacketVerdict,
    /// Flow offload (`[offload]`), when on.
    offload: Option<crate::offload::WorkerOffload>,
    /// When the flows were last published to the API (`crate::api::feeds`), and whether
    /// packets or timers changed them since.
    published: (Option<Duration>, bool),
}

impl ShimHandler {
    /// A handler feeding `engine`, with its own shim; `host` is the one the engine's built-in
    /// callouts were built with (the handler sets its clock). `other_hook` is the verdict for
    /// packets queued at a hook other than INPUT/OUTPUT/FORWARD, `truncated` for packets NFQUEUE
    /// could not copy whole.
    pub fn new(
        (engine, host): (Arc<Engine>, &wfp_callouts::Host),
        config: ShimConfig,
        (identity, asyncs): (Identity, AsyncPath),
        (other_hook, truncated): (Verdict, Verdict),
        shared: Arc<WorkerShared>,
    ) -> Self {
        Self {
            shim: Shim::new(Arc::clone(&engine), config),
            engine,
            host: host.clone(),
            asyncs,
            last_async: Duration::ZERO,
            identity,
            other_hook,
            truncated,
            shared,
            outcome: PacketVerdict::new(PacketDirection::Infer),
            offload: None,
            published: (None, false),
        }
    }

    /// The answer for one packet: held while its classify is pended, accepted with new bytes
    /// when edited, else the verdict (an offloaded flow's connection is marked once the verdicts
    /// are out: [`PacketHandler::verdicts_sent`]).
    fn respond(&mut self, now: Duration, packet: &QueuedPacket) -> Answer {
        let before = self.offload.as_ref().map(|o| o.before(&self.engine));
        let started = self.shared.feeds.get().map(|_| std::time::Instant::now());
        let verdict = self.decide(Timestamp::from_duration(now), packet);
        self.observe(started, verdict);
        let nf = match verdict {
            Verdict::Permit => NfVerdict::Accept,
            Verdict::Block | Verdict::Absorb => NfVerdict::Drop,
        };
        let o = &self.outcome;
        // Only the shim answers ABSORB (the hook and truncation verdicts are permit / block).
        if verdict == Verdict::Absorb && o.reason == Reason::Pended {
            let flow = o.flow;
            self.asyncs
                .hold(now, (packet.id, packet.mark, flow), &packet.payload);
            return Answer::Hold;
        }
        let decision = Decision::from(nf);
        if let (Some(off), Some(b)) = (&mut self.offload, before) {
            off.note(b, &self.engine, packet, &self.outcome);
        }
        match (&self.outcome.edited, verdict) {
            (Some(e), Verdict::Permit) => {
                let payload = e.bytes.clone();
                self.asyncs.note_edited();
                Answer::Replace { decision, payload }
            }
            _ => Answer::Now(decision),
        }
    }

    /// Feeds the API's classify metrics (`wfp_packets_total`, the latency histogram): the
    /// deciding layer (the blocking one, else the last visited), the verdict, and how long the
    /// packet's classification took. Packets no layer classified are not counted.
    fn observe(&mut self, started: Option<std::time::Instant>, verdict: Verdict) {
        self.published.1 = true;
        let (Some(feeds), Some(started)) = (self.shared.feeds.get(), started) else {
            return;
        };
        let Some(layer) = self.outcome.layer else {
            return;
        };
        let action = match verdict {
            Verdict::Permit => wfp_core::ActionType::PERMIT,
            Verdict::Block => wfp_core::ActionType::BLOCK,
            // Pended or absorbed: neither (the "none" verdict label).
            Verdict::Absorb => wfp_core::ActionType(0),
        };
        feeds.classify.observe(layer, action, started.elapsed());
    }

    /// Publishes this queue's flows to the API's flow board when they changed and the last
    /// publication is at least [`crate::api::feeds::PUBLISH_EVERY`] old.
    fn publish_flows(&mut self, now: Duration) {
        let Some(feeds) = self.shared.feeds.get() else {
            return;
        };
        let (last, dirty) = self.published;
        let due = last.is_none_or(|l| now.saturating_sub(l) >= crate::api::feeds::PUBLISH_EVERY);
        if !dirty || !due {
            return;
        }
        let stamp = Timestamp::from_duration(now);
        let queue = self.shared.queue;
        let rows = self
            .shim
            .flow_rows()
            .map(|r| crate::api::feeds::flow_dto(queue, stamp, &r))
            .collect();
        feeds.flows.publish(queue, rows);
        self.published = (Some(now), false);
    }

    /// When the next flow publication is due (changes not yet published).
    fn publish_due(&self) -> Option<Duration> {
        match self.published {
            (Some(last), true) if self.shared.feeds.get().is_some() => {
                Some(last + crate::api::feeds::PUBLISH_EVERY)
            }
            _ => None,
        }
    }

    /// Turns flow offload on for this worker (`crate::offload`).
    pub fn set_offload(&mut self, offload: crate::offload::WorkerOffload) {
        self.offload = Some(offload);
    }

    /// The shim's verdict for one packet: hook → direction, identity, `Shim::handle_packet`,
    /// flow events. [`ShimHandler::respond`] reads the rest of `self.outcome`.
    fn decide(&mut self, now: Timestamp, packet: &QueuedPacket) -> Verdict {
        self.outcome.edited = None;
        let direction = match packet.hook {
            Hook::LocalIn => PacketDirection::Inbound,
            Hook::LocalOut => PacketDirection::Outbound,
            Hook::Forward => PacketDirection::Forward,
            _ => {
                self.shared.other_hook.fetch_add(1, Ordering::Relaxed);
                return self.other_hook;
            }
        };
        if packet.is_truncated() {
            self.shared.truncated.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                queue = self.shared.queue,
                packet = packet.id.0,
                length = packet.cap_len,
                "packet longer than NFQUEUE copies: not inspected"
            );
            return self.truncated;
        }
        let ctx = self.identity.context(packet, direction);
        let outcome = &mut self.outcome;
        self.shim
            .handle_packet_into(now, direction, &packet.payload, &ctx, outcome);
        if outcome.verdict == Verdict::Permit {
            if let Some(r) = outcome.redirected.take() {
                // §10.3: NFQUEUE cannot send a connection elsewhere (docs/semantics.md).
                refuse_redirected(&self.engine, self.shared.queue, &r);
                outcome.verdict = Verdict::Block;
                outcome.edited = None;
                outcome.redirected = Some(r);
            }
        }
        if outcome.verdict != Verdict::Permit {
            tracing::debug!(
                queue = self.shared.queue,
                packet = packet.id.0,
                verdict = ?outcome.verdict,
                reason = ?outcome.reason,
                layer = ?outcome.layer,
                filter = ?outcome.filter,
                "packet blocked"
            );
        }
        let verdict = outcome.verdict;
        self.drain_events();
        verdict
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.shim.poll_event() {
            match event {
                ShimEvent::FlowEnded {
                    flow,
                    key,
                    reason,
                    contexts,
                } => {
                    self.identity.forget(&key);
                    self.asyncs.flow_ended(flow);
                    self.shared.flows_ended.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        queue = self.shared.queue,
                        flow = flow.get(),
                        ?reason,
                        contexts,
                        "flow ended: local {}:{} remote {}:{} protocol {}",
                        key.local_addr(),
                        key.local_port(),
                        key.remote_addr(),
                        key.remote_port(),
                        key.protocol()
                    );
                }
            }
        }
    }
}

impl ShimHandler {
    /// The asynchronous step ([`crate::asyncs`]): the callouts' worker, `Shim::handle_async`,
    /// verdicts for held packets, injected packets sent; then the flow ends it caused.
    fn run_async(&mut self, now: Duration) {
        self.last_async = now;
        self.host.clock.set(now);
        self.asyncs.run(now, &mut self.shim, &self.host);
        if let Some(o) = &mut self.offload {
            o.withdraw(&mut self.shim, now);
        }
        self.drain_events();
        self.publish_flows(now);
    }
}

impl PacketHandler for ShimHandler {
    fn begin_batch(&mut self, now: Duration) {
        // The built-in callouts that time flows read this clock (wfp-callouts reads none).
        self.host.clock.set(now);
        if let Some(o) = &mut self.offload {
            o.withdraw_again(now, true);
        }
    }

    fn handle(&mut self, now: Duration, packet: &QueuedPacket) -> Decision {
        match self.respond(now, packet) {
            Answer::Now(d) | Answer::Replace { decision: d, .. } => d,
            // Only through `answer` can a packet stay held (the worker loop uses it); a caller
            // of `handle` needs a verdict now: fail-closed.
            Answer::Hold => Decision::from(NfVerdict::Drop),
        }
    }

    fn answer(&mut self, now: Duration, packet: &QueuedPacket) -> Answer {
        self.respond(now, packet)
    }

    fn end_batch(&mut self, now: Duration) {
        self.run_async(now);
    }

    fn wants_verdicts_sent(&self) -> bool {
        self.offload.as_ref().is_some_and(|o| o.has_updates())
    }

    fn verdicts_sent(&mut self, _now: Duration) {
        if let Some(o) = &mut self.offload {
            o.verdicts_sent();
        }
    }

    fn poll_verdict(&mut self) -> Option<Deferred> {
        self.asyncs.poll_verdict()
    }

    fn finish(&mut self, now: Duration) {
        self.run_async(now);
        self.asyncs.finish();
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if self.offload.as_ref().is_some_and(|o| o.due()) {
            return Some(Duration::ZERO);
        }
        let shim = self.shim.poll_timeout().map(Timestamp::as_duration);
        let asyncs = self.asyncs.poll_timeout(self.last_async);
        let again = self.offload.as_ref().and_then(|o| o.again_due());
        shim.into_iter()
            .chain(asyncs)
            .chain(self.publish_due())
            .chain(again)
            .min()
    }

    fn handle_timeout(&mut self, now: Duration) {
        self.host.clock.set(now);
        if let Some(o) = &mut self.offload {
            o.end_flows(&mut self.shim);
            o.withdraw_again(now, false);
        }
        // Held packets first, with the `pended` posture; the shim drops the same operations.
        self.asyncs.expire(now);
        self.shim.handle_timeout(Timestamp::from_duration(now));
        self.drain_events();
        self.published.1 = true;
        // The worker loop runs end_batch (the asynchronous step) right after.
    }

    fn recover(&mut self, packet: &QueuedPacket, verdict: NfVerdict) {
        let posture = match verdict {
            NfVerdict::Accept => Posture::FailOpen,
            NfVerdict::Drop | NfVerdict::Repeat => Posture::FailClosed,
        };
        tracing::error!(
            queue = self.shared.queue,
            packet = packet.id.0,
            ?posture,
            "internal error while deciding a packet (contained)"
        );
        // The shim may be half-way through a packet: replace it. Its flows end (flowDeleteFn for
        // their contexts) as far as it can still do that; new packets start new flows. The
        // packets it held get the same posture.
        let fresh = self.shim.successor();
        let mut old = std::mem::replace(&mut self.shim, fresh);
        let _ = catch_unwind(AssertUnwindSafe(|| old.abort_all()));
        self.asyncs.abandon(verdict);
        self.identity.forget_all();
    }
}

impl Drop for ShimHandler {
    fn drop(&mut self) {
        // Flows still open when the worker stops end here: flowDeleteFn for every context.
        let _ = catch_unwind(AssertUnwindSafe(|| self.shim.abort_all()));
        self.drain_events();
    }
}

/// A packet of a connection a callout redirected (ALE_CONNECT_REDIRECT / ALE_BIND_REDIRECT,
/// wfp-reference §10.3) is dropped: NFQUEUE can accept, drop or replace a packet, but the
/// kernel's socket and conntrack entry still belong to the original destination, so sending the
/// rewritten packet would leave a connection whose answers the application never matches (and a
/// replaced packet would bypass the kernel's own NAT state). The connection fails as if refused;
/// its first packet logs a warning naming the redirecting filter and its callout.
fn refuse_redirected(engine: &wfp_core::Engine, queue: u16, r: &wfp_shim::Redirected) {
    if !r.first {
        return;
    }
    let c = &r.connection;
    let filter = c.filter.and_then(|f| engine.filter(f));
    let callout = filter.as_ref().and_then(|f| f.callout_key()).and_then(|k| {
        engine
            .callouts()
            .into_iter()
            .find(|o| o.spec.key == k)
            .map(|o| o.spec.name)
    });
    tracing::warn!(
        queue,
        filter_id = c.filter.map(|f| f.0),
        filter = filter.as_ref().map(|f| f.name()),
        callout = callout.as_deref(),
        "connection {} -> {} redirected to {} (local endpoint {}): dropped (wfpd cannot redirect \
         a connection through NFQUEUE)",
        c.original_local,
        c.original_remote,
        c.remote,
        c.local,
    );
}
