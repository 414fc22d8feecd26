//! The watchdog: notices a worker stuck on one packet longer than the verdict deadline and applies
//! the `hung` posture.
//!
//! ```text
//!  every deadline/4: for each worker
//!    busy && progress unchanged since last look ──► stuck since T
//!    stuck for ≥ deadline ──► hung posture:
//!       fail-open / fail-closed: read the queue's id_sequence and waiting count from
//!         /proc/net/netfilter/nfnetlink_queue, then one batch verdict ACCEPT / DROP up to
//!         id_sequence on a duplicate of the queue's socket (VerdictSender) — every packet waiting
//!         in that queue, including the one being decided, gets the posture; repeated each tick
//!         while the worker stays stuck; counted per packet
//!       exit: log and exit with status 3 — the kernel unbinds the queues and `absent` applies
//!    progress again ──► "worker resumed"
//! ```
//!
//! Batch verdicts are safe here because every waiting packet is meant to get the same verdict
//! (the posture). When the stuck worker resumes, its own verdicts for packets the watchdog already
//! decided are answered by the kernel with `ENOENT` (counted in the queue's `kernel_errors`).
//!
//! A stopped process (SIGSTOP, a debugger) stops the watchdog too: only the queue's `overloaded`
//! posture (`FAIL_OPEN` and the queue length) acts then.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wfp_nfqueue::{kernel_queue_stats, PacketId, Verdict as NfVerdict, VerdictSender};

use crate::config::HungPosture;
use crate::worker::WorkerShared;

/// Exit status when the `hung` posture is `exit`.
pub const EXIT_HUNG: i32 = 3;

/// One worker under watch.
#[derive(Debug)]
pub struct Watched {
    /// The worker's counters.
    pub shared: Arc<WorkerShared>,
    /// Verdicts for its queue from the watchdog thread.
    pub sender: VerdictSender,
}

/// The running watchdog thread. Dropping it stops it.
#[derive(Debug)]
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching `workers` with the given posture and per-packet deadline.
    pub fn spawn(
        workers: Vec<Watched>,
        posture: HungPosture,
        deadline: Duration,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let tick = (deadline / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
        let thread = std::thread::Builder::new()
            .name("wfpd-watchdog".to_owned())
            .spawn(move || watch(&workers, posture, deadline, tick, &flag))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.halt();
    }
}

#[derive(Clone, Copy, Default)]
struct Seen {
    progress: u64,
    stuck_since: Option<Instant>,
    hung: bool,
}

fn watch(
    workers: &[Watched],
    posture: HungPosture,
    deadline: Duration,
    tick: Duration,
    stop: &AtomicBool,
) {
    let mut seen = vec![Seen::default(); workers.len()];
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(tick);
        let now = Instant::now();
        for (w, s) in workers.iter().zip(seen.iter_mut()) {
            let busy = w.shared.status.busy.load(Ordering::Acquire);
            let progress = w.shared.status.progress.load(Ordering::Acquire);
            if busy && progress == s.progress {
                let since = *s.stuck_since.get_or_insert(now);
                if now.duration_since(since) >= deadline {
                    if !s.hung {
                        s.hung = true;
                        w.shared.hung_episodes.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            queue = w.shared.queue,
                            stuck_ms = now.duration_since(since).as_millis() as u64,
                            ?posture,
                            "worker stuck on one packet past the verdict deadline: applying the hung posture"
                        );
                    }
                    apply(w, posture);
                }
            } else {
                if s.hung {
                    tracing::warn!(queue = w.shared.queue, "worker resumed");
                }
                s.stuck_since = None;
                s.hung = false;
            }
            s.progress = progress;
        }
    }
}

fn apply(w: &Watched, posture: HungPosture) {
    let verdict = match posture {
        HungPosture::Exit => {
            tracing::error!(
                queue = w.shared.queue,
                "hung posture is exit: exiting so that the absent posture applies"
            );
            std::process::exit(EXIT_HUNG);
        }
        HungPosture::FailOpen => NfVerdict::Accept,
        HungPosture::FailClosed => NfVerdict::Drop,
    };
    let queue = w.sender.queue_num();
    let Some(k) = kernel_queue_stats()
        .ok()
        .and_then(|all| all.into_iter().find(|k| k.queue_num == queue))
    else {
        return;
    };
    if k.waiting == 0 {
        return;
    }
    match w
        .sender
        .verdict_batch(PacketId(k.id_sequence), verdict, None)
    {
        Ok(()) => {
            let counter = match verdict {
                NfVerdict::Accept => &w.shared.hung_accepted,
                _ => &w.shared.hung_dropped,
            };
            counter.fetch_add(u64::from(k.waiting), Ordering::Relaxed);
            tracing::warn!(
                queue,
                packets = k.waiting,
                verdict = ?verdict,
                "hung posture applied to the waiting packets"
            );
        }
        Err(e) => tracing::error!(queue, error = %e, "hung posture: batch verdict failed"),
    }
}
