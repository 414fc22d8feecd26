//! Queue workers: one thread per queue number, each running [`run_worker`] with a shared
//! packet handler.
//!
//! iptables `--queue-balance A:B` spreads flows over queues A..=B; each queue is one
//! [`Queue`] owned by one thread, so the handler must be `Sync` but the queues never share
//! state. All queues of a [`Workers`] share one [`StopHandle`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::QueueConfig;
use crate::error::NfqError;
use crate::packet::{Decision, QueuedPacket};
use crate::queue::{Queue, QueueStats, RecvStatus, StopHandle};

/// Runs the receive → decide → verdict loop on the current thread until the queue's
/// [`StopHandle`] is signalled, then flushes and returns the queue's counters.
///
/// A panic in `handler` is contained: the packet gets [`QueueConfig::panic_verdict`] and
/// [`QueueStats::handler_panics`] is incremented. [`RecvStatus::TimedOut`] just loops.
pub fn run_worker<F, R>(queue: &mut Queue, handler: &F) -> Result<QueueStats, NfqError>
where
    F: Fn(&QueuedPacket) -> R + ?Sized,
    R: Into<Decision>,
{
    let mut batch = Vec::new();
    loop {
        match queue.recv_batch(&mut batch)? {
            RecvStatus::Packets(_) => {
                for packet in &batch {
                    let decision = match catch_unwind(AssertUnwindSafe(|| handler(packet).into())) {
                        Ok(decision) => decision,
                        Err(_) => {
                            queue.note_handler_panic();
                            Decision::from(queue.config().panic_verdict)
                        }
                    };
                    queue.verdict(packet.id, decision.verdict, decision.mark)?;
                }
            }
            RecvStatus::TimedOut => {}
            RecvStatus::Stopped => break,
        }
    }
    queue.flush()?;
    Ok(queue.stats())
}

/// Opens one queue per number in `queues` (each with `base`, its `queue_num` replaced) on the
/// calling thread, then starts one worker thread per queue running [`run_worker`] with
/// `handler`.
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
    let mut workers = Workers {
        stop,
        threads: Vec::with_capacity(opened.len()),
    };
    for mut queue in opened {
        let num = queue.queue_num();
        let handler = Arc::clone(&handler);
        let spawned = std::thread::Builder::new()
            .name(format!("wfp-nfq-{num}"))
            .spawn(move || run_worker(&mut queue, &*handler));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::packet::{PacketId, Verdict};
    use crate::sys::fake::FakeKernel;
    use crate::wire::tests::PacketMsg;

    #[test]
    fn run_worker_decides_every_packet_and_contains_panics() {
        let fake = FakeKernel::install();
        let mut config = QueueConfig::new(2);
        config.recv_timeout = Some(Duration::ZERO);
        config.copy_mode = crate::CopyMode::Meta;
        let mut queue = Queue::open(config).expect("open");
        for id in 1..=5 {
            fake.push(PacketMsg::new(2, id).bytes());
        }
        let stop = queue.stop_handle();
        let handler = |p: &QueuedPacket| -> Decision {
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
        let stats = run_worker(&mut queue, &handler).expect("worker");
        assert_eq!(stats.packets, 5);
        assert_eq!(stats.verdicts, 5);
        assert_eq!(stats.handler_panics, 1);
    }
}
