//! Target B4 baseline: packets/s of 64-byte UDP over loopback in a private network namespace,
//! with no queue at all vs through a bare accept-all NFQUEUE reader, in the same run.
//!
//! Closed loop, so nothing overflows: the sender sends a window of `WINDOW` datagrams, then the
//! same thread receives them (each receive with a timeout; a missing datagram counts as lost).
//! The NFQUEUE cases add one reader thread (an OUTPUT rule `-o lo -p udp --dport PORT -j
//! NFQUEUE`). Each case runs `WFP_BENCH_SECS` seconds (default 2) after a short warm-up.
//!
//! Cases:
//! * `no queue` — the rule is absent.
//! * `reader, per-packet verdicts` — [`wfp_nfqueue::spawn_workers`] with an accept-all handler:
//!   the shape the engine has (the B4 reference). The queue coalesces consecutive identical
//!   verdicts into batch verdict messages (`QueueConfig::coalesce_verdicts`, the default).
//! * `reader, per-packet verdicts, one message each` — the same with coalescing off, for
//!   context: what the coalescing saves.
//! * `reader, batch verdicts` — one `verdict_batch` per received batch: the cheapest possible
//!   reader, for context.
//!
//! Needs root, `ip` and `iptables`; otherwise prints why it skipped. Run with
//! `cargo bench -p wfp-nfqueue --bench nfqueue_loopback`.
//!
//! Extension point for B4 proper: add a case that runs the full engine as the handler and
//! compare it with `reader, per-packet verdicts`.

use std::net::UdpSocket;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use wfp_nfqueue::rules::{ChainHook, HookRule, QueueTarget, RuleSet};
use wfp_nfqueue::{
    spawn_workers, Queue, QueueConfig, QueueStats, QueuedPacket, RecvStatus, TempNetns, Verdict,
};

const PORT: u16 = 40_100;
const QUEUE: u16 = 0;
const PAYLOAD: usize = 64;
const WINDOW: usize = 64;

struct Outcome {
    delivered: u64,
    lost: u64,
    elapsed: Duration,
}

impl Outcome {
    fn pps(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }
}

fn skip_reason() -> Option<String> {
    match std::fs::metadata("/proc/self") {
        Ok(meta) if meta.uid() == 0 => {}
        _ => return Some("not running as root".to_owned()),
    }
    for program in ["ip", "iptables"] {
        match Command::new(program).arg("-V").output() {
            Ok(out) if out.status.success() => {}
            _ => return Some(format!("`{program}` is not available")),
        }
    }
    None
}

/// Sends windows of datagrams and receives them back until `duration` has passed.
fn closed_loop(tx: &UdpSocket, rx: &UdpSocket, duration: Duration) -> Outcome {
    let payload = [0x5au8; PAYLOAD];
    let mut buf = [0u8; 2048];
    let mut delivered = 0u64;
    let mut lost = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        let mut sent = 0;
        for _ in 0..WINDOW {
            if tx.send(&payload).is_ok() {
                sent += 1;
            }
        }
        for _ in 0..sent {
            match rx.recv(&mut buf) {
                Ok(_) => delivered += 1,
                Err(_) => {
                    lost += 1;
                    break;
                }
            }
        }
    }
    Outcome {
        delivered,
        lost,
        elapsed: start.elapsed(),
    }
}

fn measure(tx: &UdpSocket, rx: &UdpSocket, duration: Duration) -> Outcome {
    let _warm_up = closed_loop(tx, rx, Duration::from_millis(200));
    closed_loop(tx, rx, duration)
}

fn report(name: &str, outcome: &Outcome, baseline: Option<f64>) {
    let ratio = baseline
        .map(|b| format!("  ratio to no queue {:.3}", outcome.pps() / b))
        .unwrap_or_default();
    println!(
        "{name:<30} {:>12.0} pkt/s  ({} delivered, {} lost, {:.2} s){ratio}",
        outcome.pps(),
        outcome.delivered,
        outcome.lost,
        outcome.elapsed.as_secs_f64()
    );
}

fn describe(stats: &QueueStats) -> String {
    let per_recv = stats.packets as f64 / (stats.recv_calls.max(1)) as f64;
    let messages = stats.verdicts - stats.coalesced + stats.batch_verdicts;
    let per_send = messages as f64 / (stats.send_calls.max(1)) as f64;
    format!(
        "packets {}, {:.1} per recvmmsg, {:.1} verdict messages per sendto ({} verdicts \
         coalesced), enobufs {}, malformed {}",
        stats.packets, per_recv, per_send, stats.coalesced, stats.enobufs, stats.malformed
    )
}

/// One reader thread giving one batch verdict per received batch.
fn batch_reader(
    config: QueueConfig,
) -> (wfp_nfqueue::StopHandle, std::thread::JoinHandle<QueueStats>) {
    let mut queue = Queue::open(config).expect("open queue");
    let stop = queue.stop_handle();
    let thread = std::thread::spawn(move || {
        let mut batch: Vec<QueuedPacket> = Vec::new();
        loop {
            match queue.recv_batch(&mut batch) {
                Ok(RecvStatus::Packets(_)) => {
                    if let Some(last) = batch.iter().map(|p| p.id).max() {
                        // Safe: every waiting packet gets the same verdict.
                        queue
                            .verdict_batch(last, Verdict::Accept, None)
                            .expect("verdict");
                    }
                }
                Ok(RecvStatus::TimedOut) => {}
                Ok(RecvStatus::Stopped) | Err(_) => break,
            }
        }
        queue.flush().expect("flush");
        queue.stats()
    });
    (stop, thread)
}

fn main() {
    if let Some(reason) = skip_reason() {
        println!("nfqueue_loopback: skipped ({reason})");
        return;
    }
    let secs = std::env::var("WFP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s <= 60.0)
        .unwrap_or(2.0);
    let duration = Duration::from_secs_f64(secs);

    let ns = TempNetns::create("wfpnqb").expect("create netns");
    ns.enter().expect("enter netns");
    let rx = UdpSocket::bind(("127.0.0.1", PORT)).expect("bind receiver");
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    tx.connect(("127.0.0.1", PORT)).expect("connect");

    println!(
        "B4 baseline: {PAYLOAD}-byte UDP payloads over loopback in netns {}, closed loop, \
         window {WINDOW}, {secs} s per case",
        ns.name()
    );

    let none = measure(&tx, &rx, duration);
    report("no queue", &none, None);
    let baseline = none.pps();

    let mut rules = RuleSet::new(QueueTarget::Num(QUEUE));
    rules.netns = Some(ns.name().to_owned());
    rules.hooks = vec![HookRule::new(
        ChainHook::Output,
        &["-o", "lo", "-p", "udp", "--dport", &PORT.to_string()],
    )];
    rules.install().expect("install rule");

    let mut config = QueueConfig::new(QUEUE);
    config.copy_mode = wfp_nfqueue::CopyMode::Packet(0xffff);
    let workers =
        spawn_workers(&config, [QUEUE], |_: &QueuedPacket| Verdict::Accept).expect("spawn reader");
    let per_packet = measure(&tx, &rx, duration);
    let stats = workers.join();
    report("reader, per-packet verdicts", &per_packet, Some(baseline));
    for (_, result) in &stats {
        match result {
            Ok(stats) => println!("{:<30} {}", "", describe(stats)),
            Err(e) => println!("{:<30} worker error: {e}", ""),
        }
    }

    let mut single = config.clone();
    single.coalesce_verdicts = false;
    let workers =
        spawn_workers(&single, [QUEUE], |_: &QueuedPacket| Verdict::Accept).expect("spawn reader");
    let one_each = measure(&tx, &rx, duration);
    let stats = workers.join();
    report("  ... one message each", &one_each, Some(baseline));
    for (_, result) in &stats {
        match result {
            Ok(stats) => println!("{:<30} {}", "", describe(stats)),
            Err(e) => println!("{:<30} worker error: {e}", ""),
        }
    }

    let (stop, thread) = batch_reader(config);
    let batched = measure(&tx, &rx, duration);
    stop.stop();
    let stats = thread.join().expect("reader thread");
    report("reader, batch verdicts", &batched, Some(baseline));
    println!("{:<30} {}", "", describe(&stats));

    println!(
        "B4 reference, bare accept-all reader: {:.0} pkt/s = {:.3} x no queue",
        per_packet.pps(),
        per_packet.pps() / baseline
    );
    rules.remove().expect("remove rule");
}
