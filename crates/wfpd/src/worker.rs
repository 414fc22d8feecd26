//! One queue worker: the receive → decide → verdict loop, with per-packet panic containment and
//! the progress counters the watchdog reads.
//!
//! ```text
//!  Queue::recv_batch ──► for each packet: catch_unwind(handler.handle(now, packet))
//!        ▲                      │ Permit → ACCEPT (+ accounting mark)   Block/Absorb → DROP
//!        │                      │ panic  → internal_error posture, handler.recover()
//!        │                      ▼
//!        └──── verdicts go out in one sendto before the next wait (Queue buffers them, and
//!              merges consecutive identical ones into one batch verdict where that is exact)
//!  between batches: handler.handle_timeout(now) when handler.poll_timeout() is due; the receive
//!  timeout is set to wake up for it.
//! ```
//!
//! The worker owns its [`Queue`] and its handler (one `Shim` per queue: flows are per queue,
//! since `--queue-balance` hashes each flow to one queue). It shares only atomics
//! ([`WorkerShared`]) with the rest of the daemon.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wfp_core::Engine;
use wfp_nfqueue::{
    Hook, NfqError, Queue, QueueStats, QueuedPacket, RecvStatus, Verdict as NfVerdict,
};
use wfp_shim::{PacketDirection, PacketVerdict, Shim, ShimConfig, ShimEvent, Timestamp, Verdict};

use crate::config::Posture;
use crate::identity::{Identity, IdentityStats};

/// Monotonic time since the daemon started, as the shim's [`Timestamp`].
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Time since the start.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.start.elapsed())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Decides packets for a worker. Implemented by [`ShimHandler`] (the engine); tests use others.
pub trait PacketHandler {
    /// Called once per received batch, before its packets.
    fn begin_batch(&mut self, _now: Timestamp) {}
    /// The verdict for one packet.
    fn handle(&mut self, now: Timestamp, packet: &QueuedPacket) -> Verdict;
    /// When [`PacketHandler::handle_timeout`] next has work.
    fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }
    /// Expires timers (idle flows, fragments).
    fn handle_timeout(&mut self, _now: Timestamp) {}
    /// Called after `handle` panicked: make the handler usable again.
    fn recover(&mut self) {}
}

/// Counters and liveness of one worker, shared with the watchdog and the statistics.
#[derive(Debug, Default)]
pub struct WorkerShared {
    /// The queue number.
    pub queue: u16,
    /// True while the worker is deciding a batch.
    pub busy: AtomicBool,
    /// Packets decided so far (the watchdog's heartbeat).
    pub progress: AtomicU64,
    /// Verdicts ACCEPT.
    pub permitted: AtomicU64,
    /// Verdicts DROP.
    pub blocked: AtomicU64,
    /// Packets from a hook other than INPUT/OUTPUT/FORWARD.
    pub other_hook: AtomicU64,
    /// Packets longer than NFQUEUE copies (not inspectable whole).
    pub truncated: AtomicU64,
    /// Panics while deciding a packet (contained).
    pub internal_errors: AtomicU64,
    /// Of those, packets accepted under `internal_error = "fail-open"`.
    pub internal_fail_open: AtomicU64,
    /// Flows the shim ended (flowDeleteFn ran for their contexts).
    pub flows_ended: AtomicU64,
    /// Times the watchdog found this worker stuck.
    pub hung_episodes: AtomicU64,
    /// Packets the watchdog accepted while the worker was stuck (fail-open events).
    pub hung_accepted: AtomicU64,
    /// Packets the watchdog dropped while the worker was stuck.
    pub hung_dropped: AtomicU64,
    /// The worker loop ended.
    pub exited: AtomicBool,
    /// The queue's counters after the latest batch.
    pub queue_stats: Mutex<QueueStats>,
    /// Identity lookups.
    pub identity: Arc<IdentityStats>,
}

impl WorkerShared {
    /// Fresh counters for queue `queue`.
    pub fn new(queue: u16) -> Self {
        Self {
            queue,
            ..Self::default()
        }
    }

    /// The latest queue counters.
    pub fn queue_stats(&self) -> QueueStats {
        self.queue_stats.lock().map(|s| *s).unwrap_or_default()
    }
}

/// How a worker applies verdicts.
#[derive(Clone, Copy, Debug)]
pub struct WorkerOptions {
    /// OR-ed into the mark of every accepted packet (the accounting bit), if set.
    pub accept_mark: Option<u32>,
    /// What a panic while deciding a packet becomes.
    pub internal_error: Posture,
    /// Longest wait for a packet before looking at timers again.
    pub max_idle: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            accept_mark: None,
            internal_error: Posture::FailClosed,
            max_idle: Duration::from_millis(500),
        }
    }
}

/// Runs the worker loop until the queue's stop handle is signalled. Returns the queue's final
/// counters; an error means the queue itself failed (the daemon then exits and the `absent`
/// posture applies).
pub fn run_worker<H: PacketHandler>(
    queue: &mut Queue,
    handler: &mut H,
    shared: &WorkerShared,
    clock: &Clock,
    options: &WorkerOptions,
) -> Result<QueueStats, NfqError> {
    let result = worker_loop(queue, handler, shared, clock, options);
    if let Ok(mut stats) = shared.queue_stats.lock() {
        *stats = queue.stats();
    }
    shared.busy.store(false, Ordering::Release);
    shared.exited.store(true, Ordering::Release);
    result
}

fn worker_loop<H: PacketHandler>(
    queue: &mut Queue,
    handler: &mut H,
    shared: &WorkerShared,
    clock: &Clock,
    options: &WorkerOptions,
) -> Result<QueueStats, NfqError> {
    let mut batch: Vec<QueuedPacket> = Vec::new();
    // Only this thread writes `progress`, so it keeps the count and publishes it with a plain
    // store per packet (no read-modify-write on the hot path).
    let mut progress = shared.progress.load(Ordering::Relaxed);
    loop {
        let now = clock.now();
        if handler.poll_timeout().is_some_and(|due| due <= now) {
            handler.handle_timeout(now);
        }
        let wait = handler
            .poll_timeout()
            .map_or(options.max_idle, |due| due.saturating_duration_since(now))
            .clamp(Duration::from_millis(1), options.max_idle);
        queue.set_recv_timeout(Some(wait));
        match queue.recv_batch(&mut batch)? {
            RecvStatus::Packets(_) => {
                let now = clock.now();
                shared.busy.store(true, Ordering::Release);
                handler.begin_batch(now);
                let (mut permitted, mut blocked) = (0u64, 0u64);
                for packet in &batch {
                    let verdict =
                        match catch_unwind(AssertUnwindSafe(|| handler.handle(now, packet))) {
                            Ok(v) => v,
                            Err(_) => {
                                shared.internal_errors.fetch_add(1, Ordering::Relaxed);
                                let _ = catch_unwind(AssertUnwindSafe(|| handler.recover()));
                                tracing::error!(
                                    queue = shared.queue,
                                    packet = packet.id.0,
                                    posture = ?options.internal_error,
                                    "internal error while deciding a packet (contained)"
                                );
                                match options.internal_error {
                                    Posture::FailOpen => {
                                        shared.internal_fail_open.fetch_add(1, Ordering::Relaxed);
                                        Verdict::Permit
                                    }
                                    Posture::FailClosed => Verdict::Block,
                                }
                            }
                        };
                    match verdict {
                        Verdict::Permit => {
                            permitted += 1;
                            let mark = options
                                .accept_mark
                                .map(|bit| packet.mark.unwrap_or(0) | bit);
                            queue.verdict(packet.id, NfVerdict::Accept, mark)?;
                        }
                        Verdict::Block | Verdict::Absorb => {
                            blocked += 1;
                            queue.verdict(packet.id, NfVerdict::Drop, None)?;
                        }
                    }
                    progress += 1;
                    shared.progress.store(progress, Ordering::Release);
                }
                shared.busy.store(false, Ordering::Release);
                shared.permitted.fetch_add(permitted, Ordering::Relaxed);
                shared.blocked.fetch_add(blocked, Ordering::Relaxed);
                if let Ok(mut stats) = shared.queue_stats.try_lock() {
                    *stats = queue.stats();
                }
            }
            RecvStatus::TimedOut => {}
            RecvStatus::Stopped => break,
        }
    }
    queue.flush()?;
    Ok(queue.stats())
}

/// The engine as a [`PacketHandler`]: hook → direction, identity, `Shim::handle_packet`, flow
/// events.
pub struct ShimHandler {
    shim: Shim,
    engine: Arc<Engine>,
    config: ShimConfig,
    identity: Identity,
    other_hook: Verdict,
    truncated: Verdict,
    shared: Arc<WorkerShared>,
    /// Reused for every packet (no allocation per packet).
    outcome: PacketVerdict,
}

impl ShimHandler {
    /// A handler feeding `engine`, with its own shim. `other_hook` is the verdict for packets
    /// queued at a hook other than INPUT/OUTPUT/FORWARD, `truncated` for packets NFQUEUE could
    /// not copy whole.
    pub fn new(
        engine: Arc<Engine>,
        config: ShimConfig,
        identity: Identity,
        (other_hook, truncated): (Verdict, Verdict),
        shared: Arc<WorkerShared>,
    ) -> Self {
        Self {
            shim: Shim::new(Arc::clone(&engine), config.clone()),
            engine,
            config,
            identity,
            other_hook,
            truncated,
            shared,
            outcome: PacketVerdict::new(PacketDirection::Infer),
        }
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
                    self.shared.flows_ended.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        queue = self.shared.queue,
                        flow,
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

impl PacketHandler for ShimHandler {
    fn begin_batch(&mut self, now: Timestamp) {
        // The built-in callouts that time flows read this clock (wfp-callouts reads none).
        wfp_callouts::Clock::global().set(now.as_duration());
    }

    fn handle(&mut self, now: Timestamp, packet: &QueuedPacket) -> Verdict {
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

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.shim.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        wfp_callouts::Clock::global().set(now.as_duration());
        self.shim.handle_timeout(now);
        self.drain_events();
    }

    fn recover(&mut self) {
        // The shim may be half-way through a packet: replace it. Its flows end (flowDeleteFn for
        // their contexts) as far as it can still do that; new packets start new flows.
        let fresh = Shim::new(Arc::clone(&self.engine), self.config.clone());
        let mut old = std::mem::replace(&mut self.shim, fresh);
        let _ = catch_unwind(AssertUnwindSafe(|| old.abort_all()));
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
