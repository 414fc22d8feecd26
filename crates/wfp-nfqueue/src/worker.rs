//! Queue workers: the receive → decide → verdict loop ([`run_worker`]) with per-packet panic
//! containment and the progress counters a watchdog reads ([`WorkerStatus`]), and one thread per
//! queue number running it ([`spawn_workers`], [`Workers`]).
//!
//! ```text
//!  Queue::recv_batch ──► handler.begin_batch(now); for each packet: catch_unwind(handler.answer(now, packet))
//!        ▲                      │ Accept → ACCEPT (+ WorkerOptions::accept_mark)   Drop → DROP
//!        │                      │ Replace → the verdict with NFQA_PAYLOAD (an edited packet)
//!        │                      │ Hold → no verdict now: the handler keeps the id
//!        │                      │ panic  → QueueConfig::panic_verdict, handler.recover(packet, verdict)
//!        │                      ▼
//!        │              handler.end_batch(now); handler.poll_verdict() → verdicts of held packets
//!        │              [handler.wants_verdicts_sent(): flush now, then handler.verdicts_sent(now)]
//!        └──── verdicts go out in one sendto before the next wait (Queue buffers them, and
//!              merges consecutive identical ones into one batch verdict where that is exact;
//!              never across a held packet: it stays the oldest undecided one)
//!  between batches: handler.handle_timeout(now) + end_batch(now) when handler.poll_timeout() is
//!  due; the receive timeout is set to wake up for it (WorkerOptions::max_idle).
//!  at stop: handler.finish(now), its last held verdicts, flush.
//! ```
//!
//! A worker owns its [`Queue`] and its handler; it shares only atomics ([`WorkerStatus`]) with
//! other threads. iptables `--queue-balance A:B` spreads flows over queues A..=B; each queue is
//! one [`Queue`] owned by one thread, so [`spawn_workers`]' shared handler must be `Sync` but the
//! queues never share state. All queues of a [`Workers`] share one [`StopHandle`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::QueueConfig;
use crate::error::NfqError;
use crate::packet::{Answer, Decision, Deferred, QueuedPacket, Verdict};
use crate::queue::{Queue, QueueStats, RecvStatus, StopHandle};

/// Decides the packets of one worker ([`run_worker`]).
///
/// Time is an input: `now` is the worker's [`WorkerClock`], read once per loop turn and once per
/// batch. One loop turn calls, in this order: `poll_timeout`, `handle_timeout` if that is due,
/// `poll_timeout` again (to size the wait), then after a receive `begin_batch` and `handle` for
/// each packet of the batch (`recover` after a `handle` that panicked).
///
/// Any `FnMut(&QueuedPacket) -> impl Into<Decision>` is a handler without timers.
pub trait PacketHandler {
    /// Called once per received batch, before its packets.
    fn begin_batch(&mut self, _now: Duration) {}
    /// The verdict (and optional new mark) for one packet.
    fn handle(&mut self, now: Duration, packet: &QueuedPacket) -> Decision;
    /// When [`PacketHandler::handle_timeout`] next has work.
    fn poll_timeout(&self) -> Option<Duration> {
        None
    }
    /// Expires timers (e.g. idle flows, fragments).
    fn handle_timeout(&mut self, _now: Duration) {}
    /// Called after `handle` panicked on `packet` (the panic is contained; the packet gets
    /// `verdict`, the queue's [`QueueConfig::panic_verdict`]): make the handler usable again.
    fn recover(&mut self, _packet: &QueuedPacket, _verdict: Verdict) {}
    /// The answer for one packet: a verdict now (the default: [`PacketHandler::handle`]), a
    /// verdict with replacement bytes, or [`Answer::Hold`] — no verdict until the handler gives
    /// one through [`PacketHandler::poll_verdict`].
    fn answer(&mut self, now: Duration, packet: &QueuedPacket) -> Answer {
        Answer::Now(self.handle(now, packet))
    }
    /// Called after every batch (once its verdicts are queued) and after `handle_timeout`:
    /// asynchronous work (completions, injections) that may answer held packets.
    fn end_batch(&mut self, _now: Duration) {}
    /// The next verdict for a held packet, if one is ready (drained after `end_batch`,
    /// `handle_timeout` and `finish`).
    fn poll_verdict(&mut self) -> Option<Deferred> {
        None
    }
    /// The worker is stopping: answer every packet still held (through `poll_verdict`).
    fn finish(&mut self, _now: Duration) {}
    /// Whether [`PacketHandler::verdicts_sent`] has work after this batch: the worker then sends
    /// the batch's verdicts at once (not just before its next wait) and calls it.
    fn wants_verdicts_sent(&self) -> bool {
        false
    }
    /// Called once a batch's verdicts (and those `end_batch` released) went out to the kernel,
    /// when [`PacketHandler::wants_verdicts_sent`] asked for it: work that must follow the
    /// verdicts (flow offload sets a connection's mark only after its decided packet passed).
    fn verdicts_sent(&mut self, _now: Duration) {}
}

impl<F, R> PacketHandler for F
where
    F: FnMut(&QueuedPacket) -> R,
    R: Into<Decision>,
{
    fn handle(&mut self, _now: Duration, packet: &QueuedPacket) -> Decision {
        self(packet).into()
    }
}

/// Monotonic time since the clock was made: the `now` a worker hands its [`PacketHandler`].
#[derive(Clone, Copy, Debug)]
pub struct WorkerClock {
    start: Instant,
}

impl WorkerClock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Time since the start.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

impl Default for WorkerClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Liveness and counters of one worker, written by [`run_worker`] and read by other threads
/// (a watchdog, statistics).
#[derive(Debug, Default)]
pub struct WorkerStatus {
    /// True while the worker is deciding a batch.
    pub busy: AtomicBool,
    /// Packets decided so far (a watchdog's heartbeat).
    pub progress: AtomicU64,
    /// Verdicts ACCEPT.
    pub accepted: AtomicU64,
    /// Verdicts DROP.
    pub dropped: AtomicU64,
    /// Panics of the handler while deciding a packet (contained).
    pub handler_panics: AtomicU64,
    /// Of those, packets accepted ([`QueueConfig::panic_verdict`] ACCEPT): fail-open events.
    pub panics_accepted: AtomicU64,
    /// Packets the handler held ([`Answer::Hold`]) instead of answering at once.
    pub held: AtomicU64,
    /// Verdicts given later for held packets ([`PacketHandler::poll_verdict`]).
    pub released: AtomicU64,
    /// The worker loop ended.
    pub exited: AtomicBool,
    /// The queue's counters after the latest batch.
    pub queue_stats: Mutex<QueueStats>,
}

impl WorkerStatus {
    /// The latest queue counters.
    pub fn queue_stats(&self) -> QueueStats {
        self.queue_stats.lock().map(|s| *s).unwrap_or_default()
    }
}

/// How a worker waits and applies verdicts.
#[derive(Clone, Copy, Debug)]
pub struct WorkerOptions {
    /// OR-ed into the mark of every accepted packet (e.g. an accounting bit), if set: into the
    /// mark of the handler's [`Decision`] if it has one, else into the packet's own mark.
    pub accept_mark: Option<u32>,
    /// Longest wait for a packet before looking at the handler's timers again (at least 1 ms,
    /// less if this is shorter). `None`: the queue's own [`QueueConfig::recv_timeout`] applies,
    /// and the timers are looked at only when a receive returns. Default 500 ms.
    pub max_idle: Option<Duration>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            accept_mark: None,
            max_idle: Some(Duration::from_millis(500)),
        }
    }
}

/// Runs the receive → decide → verdict loop on the current thread until the queue's
/// [`StopHandle`] is signalled, then flushes and returns the queue's final counters; an error
/// means the queue itself failed. `status` is updated as packets are decided, and marked
/// [`WorkerStatus::exited`] when the loop ends, whatever the result.
///
/// A panic in the handler is contained: the packet gets [`QueueConfig::panic_verdict`], the
/// handler is told ([`PacketHandler::recover`]), and [`QueueStats::handler_panics`] and
/// [`WorkerStatus::handler_panics`] are incremented. [`RecvStatus::TimedOut`] just loops.
pub fn run_worker<H: PacketHandler + ?Sized>(
    queue: &mut Queue,
    handler: &mut H,
    status: &WorkerStatus,
    clock: &WorkerClock,
    options: &WorkerOptions,
) -> Result<QueueStats, NfqError> {
    let mut worker = Worker {
        // Only this thread writes `progress`, so it keeps the count and publishes it with a
        // plain store per packet (no read-modify-write on the hot path).
        progress: status.progress.load(Ordering::Relaxed),
        queue,
        handler,
        status,
        clock,
        options,
    };
    let result = worker.run();
    if let Ok(mut stats) = status.queue_stats.lock() {
        *stats = worker.queue.stats();
    }
    status.busy.store(false, Ordering::Release);
    status.exited.store(true, Ordering::Release);
    result
}

/// Opens one queue per number in `queues` (each with `base`, its `queue_num` replaced) on the
/// calling thread, then starts one worker thread per queue running [`run_worker`] with
/// `handler`, no accept mark, and the queue's own [`QueueConfig::recv_timeout`].
///
/// Sockets are created on the calling thread, so they live in the calling thread's network
/// namespace. If any queue fails to open, none is started and the error is returned.
pub fn spawn_workers<F, R>(
    base: &QueueConfig,
    queues: impl IntoIterator<Item = u16>,
    handler: F,
) -> Result<Workers, NfqError>
where
    F: Fn(&QueuedPacket) -> R + Send + Sync + 'static,
    R: Into<Decision>,
{
    let stop = StopHandle::new()?;
    let mut opened = Vec::new();
    for num in queues {
        let mut config = base.clone();
        config.queue_num = num;
        opened.push(Queue::open_with_stop(config, stop.clone())?);
    }
    let handler = Arc::new(handler);
    let options = WorkerOptions {
        accept_mark: None,
        max_idle: None,
    };
    let mut workers = Workers {
        stop,
        threads: Vec::with_capacity(opened.len()),
    };
    for mut queue in opened {
        let num = queue.queue_num();
        let handler = Arc::clone(&handler);
        let spawned = std::thread::Builder::new()
            .name(format!("wfp-nfq-{num}"))
            .spawn(move || {
                let status = WorkerStatus::default();
                run_worker(
                    &mut queue,
                    &mut &*handler,
                    &status,
                    &WorkerClock::new(),
                    &options,
                )
            });
        match spawned {
            Ok(thread) => workers.threads.push((num, thread)),
            // Dropping `workers` stops and joins the threads already started.
            Err(source) => return Err(NfqError::Spawn { queue: num, source }),
        }
    }
    Ok(workers)
}

/// Running queue workers. Dropping it stops and joins them.
#[derive(Debug)]
pub struct Workers {
    stop: StopHandle,
    threads: Vec<(u16, JoinHandle<Result<QueueStats, NfqError>>)>,
}

impl Workers {
    /// Asks every worker to finish its current batch and exit.
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Stops the workers and waits for them: one `(queue number, result)` per queue, in the
    /// order they were opened.
    pub fn join(mut self) -> Vec<(u16, Result<QueueStats, NfqError>)> {
        self.join_all()
    }

    /// The shared stop handle (e.g. for a signal handler thread).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The queue numbers served.
    pub fn queues(&self) -> Vec<u16> {
        self.threads.iter().map(|(num, _)| *num).collect()
    }

    fn join_all(&mut self) -> Vec<(u16, Result<QueueStats, NfqError>)> {
        self.stop.stop();
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|(queue, thread)| {
                let result = thread
                    .join()
                    .unwrap_or(Err(NfqError::WorkerPanicked { queue }));
                (queue, result)
            })
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let _ = self.join_all();
    }
}

/// One running [`run_worker`]: what the loop needs, borrowed.
struct Worker<'a, H: ?Sized> {
    queue: &'a mut Queue,
    handler: &'a mut H,
    status: &'a WorkerStatus,
    clock: &'a WorkerClock,
    options: &'a WorkerOptions,
    /// Packets decided so far (what `status.progress` shows).
    progress: u64,
}

impl<H: PacketHandler + ?Sized> Worker<'_, H> {
    fn run(&mut self) -> Result<QueueStats, NfqError> {
        let mut batch: Vec<QueuedPacket> = Vec::new();
        loop {
            self.prepare_wait();
            self.deferred()?;
            match self.queue.recv_batch(&mut batch)? {
                RecvStatus::Packets(_) => self.decide(&batch)?,
                RecvStatus::TimedOut => {}
                RecvStatus::Stopped => break,
            }
        }
        let now = self.clock.now();
        if catch_unwind(AssertUnwindSafe(|| self.handler.finish(now))).is_err() {
            self.contain_async_panic();
        }
        self.deferred()?;
        self.queue.flush()?;
        Ok(self.queue.stats())
    }

    /// Runs the handler's due timers and sets the receive timeout to wake up for the next one.
    fn prepare_wait(&mut self) {
        let now = self.clock.now();
        if self.handler.poll_timeout().is_some_and(|due| due <= now) {
            let handler = &mut *self.handler;
            let ran = catch_unwind(AssertUnwindSafe(|| {
                handler.handle_timeout(now);
                handler.end_batch(now);
            }));
            if ran.is_err() {
                self.contain_async_panic();
            }
        }
        if let Some(max_idle) = self.options.max_idle {
            let wait = self
                .handler
                .poll_timeout()
                .map_or(max_idle, |due| due.saturating_sub(now))
                .max(Duration::from_millis(1))
                .min(max_idle);
            self.queue.set_recv_timeout(Some(wait));
        }
    }

    /// Decides and verdicts one received batch.
    fn decide(&mut self, batch: &[QueuedPacket]) -> Result<(), NfqError> {
        let now = self.clock.now();
        self.status.busy.store(true, Ordering::Release);
        self.handler.begin_batch(now);
        let (mut accepted, mut dropped) = (0u64, 0u64);
        let mut progress = self.progress;
        for packet in batch {
            let answer = match catch_unwind(AssertUnwindSafe(|| self.handler.answer(now, packet))) {
                Ok(answer) => answer,
                Err(_) => Answer::Now(self.contain_panic(packet)),
            };
            let (decision, payload) = match answer {
                Answer::Now(decision) => (decision, None),
                Answer::Replace { decision, payload } => (decision, Some(payload)),
                Answer::Hold => {
                    // Decided later (poll_verdict): progress all the same, for the watchdog.
                    self.status.held.fetch_add(1, Ordering::Relaxed);
                    progress += 1;
                    self.status.progress.store(progress, Ordering::Release);
                    continue;
                }
            };
            let mark = self.mark_for(&decision, packet.mark);
            match decision.verdict {
                Verdict::Accept => accepted += 1,
                Verdict::Drop => dropped += 1,
                Verdict::Repeat => {}
            }
            match payload {
                Some(p) => {
                    self.queue
                        .verdict_with_payload(packet.id, decision.verdict, mark, &p)?
                }
                None => self.queue.verdict(packet.id, decision.verdict, mark)?,
            }
            progress += 1;
            self.status.progress.store(progress, Ordering::Release);
        }
        self.progress = progress;
        self.status.accepted.fetch_add(accepted, Ordering::Relaxed);
        self.status.dropped.fetch_add(dropped, Ordering::Relaxed);
        let handler = &mut *self.handler;
        if catch_unwind(AssertUnwindSafe(|| handler.end_batch(now))).is_err() {
            self.contain_async_panic();
        }
        self.status.busy.store(false, Ordering::Release);
        self.deferred()?;
        if self.handler.wants_verdicts_sent() {
            self.queue.flush()?;
            let handler = &mut *self.handler;
            if catch_unwind(AssertUnwindSafe(|| handler.verdicts_sent(now))).is_err() {
                self.contain_async_panic();
            }
        }
        if let Ok(mut stats) = self.status.queue_stats.try_lock() {
            *stats = self.queue.stats();
        }
        Ok(())
    }

    /// The mark of a verdict: the decision's, with [`WorkerOptions::accept_mark`] OR-ed in for an
    /// ACCEPT (into the packet's own mark when the decision sets none).
    fn mark_for(&self, decision: &Decision, packet_mark: Option<u32>) -> Option<u32> {
        match (decision.verdict, self.options.accept_mark) {
            (Verdict::Accept, Some(bit)) => Some(decision.mark.or(packet_mark).unwrap_or(0) | bit),
            _ => decision.mark,
        }
    }

    /// Queues the verdicts the handler has ready for packets it held.
    fn deferred(&mut self) -> Result<(), NfqError> {
        loop {
            let handler = &mut *self.handler;
            let next: Option<Deferred> =
                match catch_unwind(AssertUnwindSafe(|| handler.poll_verdict())) {
                    Ok(next) => next,
                    Err(_) => {
                        self.contain_async_panic();
                        None
                    }
                };
            let Some(d) = next else {
                return Ok(());
            };
            let mark = self.mark_for(&d.decision, d.packet_mark);
            match d.decision.verdict {
                Verdict::Accept => self.status.accepted.fetch_add(1, Ordering::Relaxed),
                Verdict::Drop => self.status.dropped.fetch_add(1, Ordering::Relaxed),
                Verdict::Repeat => 0,
            };
            self.status.released.fetch_add(1, Ordering::Relaxed);
            match d.payload {
                Some(p) => self
                    .queue
                    .verdict_with_payload(d.id, d.decision.verdict, mark, &p)?,
                None => self.queue.verdict(d.id, d.decision.verdict, mark)?,
            }
        }
    }

    /// A panic of the handler outside `handle` (its asynchronous work): counted; the handler's
    /// held packets are its own to answer (it is not replaced).
    #[cold]
    fn contain_async_panic(&mut self) {
        self.queue.note_handler_panic();
        self.status.handler_panics.fetch_add(1, Ordering::Relaxed);
    }

    /// After the handler panicked on `packet`: counts it, lets the handler recover, and returns
    /// the queue's panic verdict.
    #[cold]
    fn contain_panic(&mut self, packet: &QueuedPacket) -> Decision {
        self.queue.note_handler_panic();
        self.status.handler_panics.fetch_add(1, Ordering::Relaxed);
        let verdict = self.queue.config().panic_verdict;
        let _ = catch_unwind(AssertUnwindSafe(|| self.handler.recover(packet, verdict)));
        if verdict == Verdict::Accept {
            self.status.panics_accepted.fetch_add(1, Ordering::Relaxed);
        }
        Decision::from(verdict)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::packet::PacketId;
    use crate::queue::tests::verdicts;
    use crate::sys::fake::FakeKernel;
    use crate::wire::tests::PacketMsg;
    use crate::wire::{self, NFQA_MARK, NFQNL_MSG_VERDICT};

    /// Queue 2 on the fake kernel, one verdict message per packet.
    fn fake_config() -> QueueConfig {
        let mut config = QueueConfig::new(2);
        config.recv_timeout = Some(Duration::ZERO);
        config.copy_mode = crate::CopyMode::Meta;
        config.coalesce_verdicts = false;
        config
    }

    /// Opens `config` on the fake kernel, with `packets` waiting.
    fn fake_queue(fake: &FakeKernel, config: QueueConfig, packets: &[PacketMsg]) -> Queue {
        let queue = Queue::open(config).expect("open");
        for packet in packets {
            fake.push(packet.bytes());
        }
        queue
    }

    /// Runs a worker on `queue` until the handler stops it: its result and its status.
    fn run(
        queue: &mut Queue,
        handler: &mut impl PacketHandler,
        options: WorkerOptions,
    ) -> (QueueStats, WorkerStatus) {
        let status = WorkerStatus::default();
        let stats =
            run_worker(queue, handler, &status, &WorkerClock::new(), &options).expect("worker");
        (stats, status)
    }

    /// The verdicts sent, as `(packet id, verdict code, mark)`.
    fn sent(fake: &FakeKernel) -> Vec<(u32, u32, Option<u32>)> {
        verdicts(fake)
            .into_iter()
            .map(|(msg_type, id, code, mark)| {
                assert_eq!(msg_type, NFQNL_MSG_VERDICT, "no coalescing in these tests");
                (id, code, mark)
            })
            .collect()
    }

    fn count(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    #[test]
    fn run_worker_decides_every_packet_and_contains_panics() {
        let fake = FakeKernel::install();
        let packets: Vec<_> = (1..=5).map(|id| PacketMsg::new(2, id)).collect();
        let mut queue = fake_queue(&fake, fake_config(), &packets);
        let stop = queue.stop_handle();
        let mut handler = |p: &QueuedPacket| -> Decision {
            match p.id {
                PacketId(3) => panic!("handler bug on purpose"),
                PacketId(id) if id % 2 == 0 => Decision {
                    verdict: Verdict::Accept,
                    mark: Some(id),
                },
                _ => {
                    if p.id == PacketId(5) {
                        stop.stop();
                    }
                    Verdict::Drop.into()
                }
            }
        };
        let options = WorkerOptions {
            max_idle: None,
            ..WorkerOptions::default()
        };
        let (stats, status) = run(&mut queue, &mut handler, options);
        assert_eq!(stats.packets, 5);
        assert_eq!(stats.verdicts, 5);
        assert_eq!(stats.handler_panics, 1);
        assert_eq!(
            sent(&fake),
            [
                (1, 0, None),
                (2, 1, Some(2)),
                (3, 0, None),
                (4, 1, Some(4)),
                (5, 0, None)
            ]
        );
        assert_eq!(count(&status.progress), 5);
        assert_eq!(count(&status.accepted), 2);
        assert_eq!(count(&status.dropped), 3);
        assert_eq!(count(&status.handler_panics), 1);
        assert_eq!(count(&status.panics_accepted), 0);
        assert!(status.exited.load(Ordering::Acquire));
        assert!(!status.busy.load(Ordering::Acquire));
        assert_eq!(status.queue_stats(), stats);
    }

    /// Records, at each `verdicts_sent`, how many packets it decided and how many verdicts the
    /// kernel had received by then.
    struct AfterVerdicts<'a> {
        fake: &'a FakeKernel,
        stop: StopHandle,
        decided: usize,
        calls: Vec<(usize, usize)>,
    }

    impl PacketHandler for AfterVerdicts<'_> {
        fn handle(&mut self, _now: Duration, p: &QueuedPacket) -> Decision {
            self.decided += 1;
            if p.id == PacketId(3) {
                self.stop.stop();
            }
            Verdict::Accept.into()
        }

        fn wants_verdicts_sent(&self) -> bool {
            self.decided > self.calls.last().map_or(0, |c| c.0)
        }

        fn verdicts_sent(&mut self, _now: Duration) {
            self.calls.push((self.decided, sent(self.fake).len()));
        }
    }

    #[test]
    fn verdicts_sent_runs_once_the_batch_verdicts_reached_the_kernel() {
        let fake = FakeKernel::install();
        let packets: Vec<_> = (1..=3).map(|id| PacketMsg::new(2, id)).collect();
        let mut queue = fake_queue(&fake, fake_config(), &packets);
        let mut handler = AfterVerdicts {
            fake: &fake,
            stop: queue.stop_handle(),
            decided: 0,
            calls: Vec::new(),
        };
        let options = WorkerOptions {
            max_idle: None,
            ..WorkerOptions::default()
        };
        let (stats, _) = run(&mut queue, &mut handler, options);
        assert_eq!(stats.verdicts, 3);
        assert!(!handler.calls.is_empty());
        for (decided, sent) in &handler.calls {
            assert_eq!(
                decided, sent,
                "every decided packet's verdict was out first"
            );
        }
        assert_eq!(handler.calls.last().map(|c| c.0), Some(3));
    }

    /// Holds odd packets, releases the oldest held one at each batch end (accept, payload
    /// `[id]`), edits even ones; stops at `stop_on`; whatever is held at the end is dropped.
    struct Holding {
        held: std::collections::VecDeque<(PacketId, Option<u32>)>,
        ready: std::collections::VecDeque<Deferred>,
        stop_on: PacketId,
        stop: StopHandle,
    }

    impl PacketHandler for Holding {
        fn handle(&mut self, _now: Duration, _packet: &QueuedPacket) -> Decision {
            unreachable!("answer is implemented")
        }

        fn answer(&mut self, _now: Duration, packet: &QueuedPacket) -> Answer {
            if packet.id == self.stop_on {
                self.stop.stop();
            }
            if packet.id.0 % 2 == 1 {
                self.held.push_back((packet.id, packet.mark));
                return Answer::Hold;
            }
            Answer::Replace {
                decision: Verdict::Accept.into(),
                payload: vec![0x45, 9],
            }
        }

        fn end_batch(&mut self, _now: Duration) {
            let before_stop = self.held.front().is_some_and(|(id, _)| *id != self.stop_on);
            if let Some((id, packet_mark)) = before_stop.then(|| self.held.pop_front()).flatten() {
                self.ready.push_back(Deferred {
                    id,
                    decision: Verdict::Accept.into(),
                    packet_mark,
                    payload: Some(vec![0x45, u8::try_from(id.0).unwrap_or(0)]),
                });
            }
        }

        fn poll_verdict(&mut self) -> Option<Deferred> {
            self.ready.pop_front()
        }

        fn finish(&mut self, _now: Duration) {
            while let Some((id, packet_mark)) = self.held.pop_front() {
                self.ready.push_back(Deferred {
                    id,
                    decision: Verdict::Drop.into(),
                    packet_mark,
                    payload: None,
                });
            }
        }
    }

    /// Issue 12 (inline async): held packets keep their verdict until the handler gives it, edited
    /// packets carry NFQA_PAYLOAD, every packet gets exactly one verdict (also at stop).
    #[test]
    fn held_packets_are_answered_later_exactly_once_and_edits_carry_the_payload() {
        let fake = FakeKernel::install();
        let packets: Vec<_> = (1..=5)
            .map(|id| PacketMsg::new(2, id).attr(NFQA_MARK, &7u32.to_be_bytes()))
            .collect();
        let mut config = fake_config();
        config.batch_slots = 2;
        let mut queue = fake_queue(&fake, config, &packets);
        let mut handler = Holding {
            held: Default::default(),
            ready: Default::default(),
            stop_on: PacketId(5),
            stop: queue.stop_handle(),
        };
        let options = WorkerOptions {
            accept_mark: Some(0x100),
            max_idle: None,
        };
        let (stats, status) = run(&mut queue, &mut handler, options);
        assert_eq!(stats.packets, 5);
        let mut ids: Vec<u32> = sent(&fake).iter().map(|v| v.0).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            [1, 2, 3, 4, 5],
            "one verdict per packet: {:?}",
            sent(&fake)
        );
        for (id, code, mark) in sent(&fake) {
            match id {
                5 => assert_eq!((code, mark), (0, None), "dropped at stop"),
                _ => assert_eq!((code, mark), (1, Some(0x107)), "accepted, marks kept"),
            }
        }
        let payloads: Vec<Vec<u8>> = fake
            .sent_messages()
            .into_iter()
            .filter_map(|(_, payload)| {
                wire::AttrIter::new(&payload[4..])
                    .filter_map(Result::ok)
                    .find(|(attr, _)| *attr == wire::NFQA_PAYLOAD)
                    .map(|(_, data)| data.to_vec())
            })
            .collect();
        assert_eq!(payloads.len(), 4, "edits and releases carry their bytes");
        assert!(payloads.contains(&vec![0x45, 3]), "{payloads:?}");
        assert_eq!(count(&status.held), 3);
        assert_eq!(count(&status.released), 3);
        assert_eq!(count(&status.accepted), 4);
        assert_eq!(count(&status.dropped), 1);
        assert!(handler.held.is_empty() && handler.ready.is_empty());
        assert_eq!(count(&status.progress), 5);
    }

    /// Accepts everything; panics on `panic_on`; has one timer, due at `timer`; stops the queue
    /// at `stop_on`. Records what the worker called.
    struct Recording {
        timer: Option<Duration>,
        panic_on: PacketId,
        stop_on: PacketId,
        stop: StopHandle,
        calls: Vec<String>,
    }

    impl PacketHandler for Recording {
        fn begin_batch(&mut self, _now: Duration) {
            self.calls.push("begin_batch".to_owned());
        }

        fn handle(&mut self, _now: Duration, packet: &QueuedPacket) -> Decision {
            self.calls.push(format!("handle {}", packet.id.0));
            if packet.id == self.stop_on {
                self.stop.stop();
            }
            if packet.id == self.panic_on {
                panic!("handler bug on purpose");
            }
            Verdict::Accept.into()
        }

        fn poll_timeout(&self) -> Option<Duration> {
            self.timer
        }

        fn handle_timeout(&mut self, _now: Duration) {
            self.calls.push("handle_timeout".to_owned());
            self.timer = None;
        }

        fn recover(&mut self, packet: &QueuedPacket, verdict: Verdict) {
            self.calls
                .push(format!("recover {} {verdict:?}", packet.id.0));
        }
    }

    #[test]
    fn run_worker_runs_due_timers_marks_accepts_and_lets_the_handler_recover() {
        let fake = FakeKernel::install();
        let packets = [
            PacketMsg::new(2, 1).attr(NFQA_MARK, &0x7u32.to_be_bytes()),
            PacketMsg::new(2, 2),
            PacketMsg::new(2, 3),
        ];
        let mut config = fake_config();
        config.panic_verdict = Verdict::Accept;
        let mut queue = fake_queue(&fake, config, &packets);
        let mut handler = Recording {
            timer: Some(Duration::ZERO),
            panic_on: PacketId(2),
            stop_on: PacketId(3),
            stop: queue.stop_handle(),
            calls: Vec::new(),
        };
        let options = WorkerOptions {
            accept_mark: Some(0x100),
            ..WorkerOptions::default()
        };
        let (stats, status) = run(&mut queue, &mut handler, options);
        assert_eq!(
            handler.calls,
            [
                "handle_timeout",
                "begin_batch",
                "handle 1",
                "handle 2",
                "recover 2 Accept",
                "handle 3"
            ]
        );
        assert_eq!(
            sent(&fake),
            [
                (1, 1, Some(0x107)),
                (2, 1, Some(0x100)),
                (3, 1, Some(0x100))
            ]
        );
        assert_eq!(count(&status.accepted), 3);
        assert_eq!(count(&status.handler_panics), 1);
        assert_eq!(count(&status.panics_accepted), 1, "a fail-open event");
        assert_eq!(stats.handler_panics, 1);
    }
}
