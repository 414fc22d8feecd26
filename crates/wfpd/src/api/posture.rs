//! Failure-posture net events (§11.5 "fail-open/posture events", the brief's reliability
//! promises): the data path's posture counters are read periodically and every increase becomes a
//! POSTURE net event (posture, accept or drop, packets since the previous event), recorded in the
//! engine's ring like its own events and counted for `/v1/metrics`.
//!
//! | posture | verdict | read from |
//! |---|---|---|
//! | `internal_error` | accept / drop | the worker's contained handler panics (`internal_error` posture) |
//! | `hang` | accept / drop | the watchdog's verdicts for a stuck worker (`hung` posture) |
//! | `overload` | drop | the kernel queue's `queue_dropped` (queue full, fail-closed) |
//! | `overload` | accept | with `overloaded = "fail-open"`: growth of the accounting rules' count of packets accepted without wfpd's mark since attach (a full FAIL_OPEN queue accepts them; the kernel counts them nowhere), less the watchdog's fail-open verdicts (they carry no mark either, and are `hang` events) |
//! | `absent` | accept | at attach: packets the accounting rules saw pass without wfpd's mark (the queue bypassed while wfpd was down) |

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use wfp_core::engine::{NetEventDetail, Posture};
use wfp_core::{Engine, LayerId, NetEvent, NetEventKind};

use super::metrics::Exposition;
use crate::worker::WorkerShared;

/// The (posture, accepted) pairs reported, in metric order.
const PAIRS: [(Posture, bool); 7] = [
    (Posture::Absent, true),
    (Posture::Overload, false),
    (Posture::Overload, true),
    (Posture::Hang, true),
    (Posture::Hang, false),
    (Posture::InternalError, true),
    (Posture::InternalError, false),
];

/// Cumulative packet counts, in this order: absent/accept, overload/drop, overload/accept,
/// hang/accept, hang/drop, internal_error/accept, internal_error/drop.
pub type Readings = [u64; PAIRS.len()];

/// The last readings and the totals reported.
#[derive(Default)]
pub struct PostureWatch {
    state: Mutex<(Readings, Readings)>,
}

/// The layer POSTURE events name: the IP packet layer of the direction is unknown, so the
/// inbound IPv4 packet layer stands for "the data path".
fn posture_layer() -> LayerId {
    wfp_core::layers::INBOUND_IPPACKET_V4
}

/// Reads the counters of `workers` (and the kernel's queue-full drops); `uninspected` is the
/// accounting rules' cumulative count now (fail-open overload: its growth beyond `absent` and
/// the watchdog's accepts, which the accounting rules count too: its batch verdict sets no mark).
pub fn read(
    workers: &[std::sync::Arc<WorkerShared>],
    absent: u64,
    uninspected: Option<u64>,
) -> Readings {
    let sum = |f: &dyn Fn(&WorkerShared) -> u64| workers.iter().map(|w| f(w)).sum::<u64>();
    let kernel = if workers.is_empty() {
        Vec::new()
    } else {
        wfp_nfqueue::kernel_queue_stats().unwrap_or_default()
    };
    let overload = workers
        .iter()
        .filter_map(|w| kernel.iter().find(|k| k.queue_num == w.queue))
        .map(|k| u64::from(k.queue_dropped))
        .sum();
    let panics = sum(&|w| w.status.handler_panics.load(Ordering::Relaxed));
    let accepted = sum(&|w| w.status.panics_accepted.load(Ordering::Relaxed));
    let hung_accepted = sum(&|w| w.hung_accepted.load(Ordering::Relaxed));
    [
        absent,
        overload,
        uninspected.map_or(0, |n| {
            n.saturating_sub(absent).saturating_sub(hung_accepted)
        }),
        hung_accepted,
        sum(&|w| w.hung_dropped.load(Ordering::Relaxed)),
        accepted,
        panics.saturating_sub(accepted),
    ]
}

impl PostureWatch {
    /// Compares `now` with the previous readings: one POSTURE event per counter that grew.
    /// Returns how many events were recorded.
    pub fn observe(&self, engine: &Engine, now: &Readings) -> usize {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, totals) = &mut *st;
        let mut n = 0;
        for (i, (posture, accepted)) in PAIRS.iter().enumerate() {
            let (Some(cur), Some(prev), Some(total)) =
                (now.get(i), last.get_mut(i), totals.get_mut(i))
            else {
                continue;
            };
            // Counters only grow, except across a restart of their source (a new kernel queue).
            let delta = cur.saturating_sub(*prev);
            *prev = *cur;
            if delta == 0 {
                continue;
            }
            *total += delta;
            n += 1;
            engine.report_net_event(NetEvent {
                detail: Some(NetEventDetail::Posture {
                    posture: *posture,
                    accepted: *accepted,
                    count: delta,
                }),
                ..NetEvent::new(NetEventKind::Posture, posture_layer())
            });
        }
        n
    }

    /// `wfp_posture_events_total{posture, verdict}`: packets decided by each posture.
    pub fn write_metrics(&self, e: &mut Exposition) {
        let totals = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1;
        let name = "wfp_posture_events_total";
        e.family(
            name,
            "counter",
            "Packets a failure posture decided without inspection.",
        );
        for ((posture, accepted), n) in PAIRS.iter().zip(totals) {
            let verdict = if *accepted { "accept" } else { "drop" };
            #[allow(clippy::cast_precision_loss, reason = "Prometheus samples are f64")]
            e.sample(
                name,
                &[("posture", posture.name()), ("verdict", verdict)],
                n as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_increase_is_one_event_with_the_delta() {
        let engine = Engine::default();
        let w = PostureWatch::default();
        assert_eq!(w.observe(&engine, &[0; 7]), 0);
        assert_eq!(w.observe(&engine, &[5, 0, 0, 2, 0, 0, 0]), 2);
        assert_eq!(w.observe(&engine, &[5, 0, 0, 3, 0, 0, 1]), 2);
        let events = engine.drain_net_events();
        let details: Vec<_> = events.iter().filter_map(|e| e.detail).collect();
        assert_eq!(
            details,
            [
                NetEventDetail::Posture {
                    posture: Posture::Absent,
                    accepted: true,
                    count: 5
                },
                NetEventDetail::Posture {
                    posture: Posture::Hang,
                    accepted: true,
                    count: 2
                },
                NetEventDetail::Posture {
                    posture: Posture::Hang,
                    accepted: true,
                    count: 1
                },
                NetEventDetail::Posture {
                    posture: Posture::InternalError,
                    accepted: false,
                    count: 1
                },
            ]
        );
        let mut e = Exposition::default();
        w.write_metrics(&mut e);
        let text = e.finish();
        assert!(text.contains("wfp_posture_events_total{posture=\"hang\",verdict=\"accept\"} 3\n"));
        assert!(
            text.contains("wfp_posture_events_total{posture=\"absent\",verdict=\"accept\"} 5\n")
        );
    }

    /// Issue 14: with fail-open overload, packets the accounting rules count beyond those of the
    /// absent period become POSTURE overload/accept events, each with the increase.
    #[test]
    fn fail_open_overload_is_counted_from_the_accounting_rules() {
        let engine = Engine::default();
        let w = PostureWatch::default();
        let r = read(&[], 4, Some(4));
        assert_eq!(r, [4, 0, 0, 0, 0, 0, 0]);
        assert_eq!(w.observe(&engine, &r), 1);
        let r = read(&[], 4, Some(10));
        assert_eq!(r[2], 6);
        assert_eq!(w.observe(&engine, &r), 1);
        assert_eq!(read(&[], 4, None)[2], 0);
        // The watchdog's fail-open verdicts carry no mark: the accounting rules count them, but
        // they are hang events, not overload ones.
        let worker = std::sync::Arc::new(WorkerShared::new(0));
        worker.hung_accepted.store(3, Ordering::Relaxed);
        let r = read(&[worker], 4, Some(13));
        assert_eq!((r[2], r[3]), (6, 3));
        let last = engine.drain_net_events().pop().and_then(|e| e.detail);
        assert_eq!(
            last,
            Some(NetEventDetail::Posture {
                posture: Posture::Overload,
                accepted: true,
                count: 6
            })
        );
        let mut e = Exposition::default();
        w.write_metrics(&mut e);
        assert!(e
            .finish()
            .contains("wfp_posture_events_total{posture=\"overload\",verdict=\"accept\"} 6\n"));
    }
}
