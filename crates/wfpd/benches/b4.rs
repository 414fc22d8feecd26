//! Target B4: NFQUEUE end to end in a private network namespace on loopback — packets/s through
//! wfpd versus a bare accept-all NFQUEUE reader and versus no queue, in the same run; 64-byte UDP
//! and bulk TCP; wfpd with a 10-filter and a 10k-filter policy.
//!
//! Cases:
//! * `no queue` — no rule.
//! * `bare reader` — one thread on a `wfp_nfqueue::Queue` that receives batches and accepts every
//!   packet, nothing else (no worker-loop bookkeeping): the B4 reference. It gets **exactly wfpd's kernel setup**: the queue
//!   configuration wfpd derives from its config file (`Config::queue_config`: copy range, batch
//!   size, queue length, receive buffer, flags `CONNTRACK` and `UID_GID`, verdict coalescing) and
//!   wfpd's rule set (`Config::rule_set`: hooks `OUTPUT -o lo` and `INPUT -i lo`, the MSS clamp,
//!   the accounting-mark rules), and it sets the accounting mark on every accepted packet as wfpd
//!   does. So the only difference between the two is what happens in user space.
//! * `wfpd N filters` — the daemon in-process (`wfpd::Daemon::start`, the same code as the
//!   binary: one queue, one worker thread, its own rules, the shim and engine, identity lookups
//!   for new flows, the watchdog) with a policy of N filters spread over the layers the traffic
//!   crosses (none of them matching it, so a flow's first packet searches every layer in full;
//!   later packets of the flow reuse those static answers, as the shim does by default —
//!   `ShimConfig::reuse_decisions`).
//!
//! Traffic:
//! * UDP: 64-byte datagrams, closed loop (a window of 64 sent, then received), one flow.
//! * TCP: one new connection per sample, 64 KiB writes, the receiver counts bytes. Ratios use
//!   bytes/s; packets/s is what the queue saw (both hooks, both directions).
//!
//! Method: the machine is small and shared, so single runs are noisy. The cases are
//! **interleaved**: each of `WFP_BENCH_ROUNDS` rounds (default 9) sets every case up, measures
//! UDP then TCP for `WFP_BENCH_SECS` seconds each (default 2, after a 0.2 s warm-up), and tears it
//! down again; the case order rotates from round to round. Every sample is printed as it is
//! taken, with the worker thread's CPU time per packet it decided (user + kernel, from
//! `schedstat`), how busy the worker and the sending thread were, and how much of the machine
//! other programs used meanwhile (`/proc/stat` minus this process, kernel threads and
//! interrupts). A sample taken while other programs used more than `WFP_BENCH_MAX_OTHER_LOAD`
//! (default 0.15) of the CPUs is printed, discarded and taken again (at most rounds × cases
//! retakes per run, so a busy machine cannot stall the bench). The summary gives per case the
//! median and the spread (min..max), ratios of medians, and the median of the per-round ratios
//! (each from samples of the same round). Default run time is about 3 minutes.
//!
//! **Flow offload** (issue 16, `docs/offload.md`): the case `wfpd 10 offload` is wfpd with the
//! 10-filter policy and `[offload] enabled = true`. Every case also measures UDP
//! request/response (an echo server, 16 requests in flight, one flow: the flow the shim can
//! establish and offload) and the new-connection rate (TCP connect, close, one at a time); the
//! offload case also times a policy reload per round (the commit with its revocation: one rule
//! update per hook) and the rule switch alone. Offload targets: bulk TCP >= 0.95 of no queue, UDP
//! request/response >= 0.90 of no queue, new connections >= 0.90 of the bare reader, revocation
//! commit <= 10 ms.
//!
//! Other knobs: `WFP_BENCH_CASES` (comma-separated subset of `noqueue,bare,wfpd10,wfpd10k,wfpdoff`, plus
//! the diagnostic cases `noqueuect` — no queue, but conntrack hooked in (one native base chain per
//! hook accepting established packets: the kernel path an offloaded packet keeps;
//! `WFP_BENCH_CT_CHAINS=N` for N such base chains) —, `noqueuent` — no queue, the layout for
//! offloaded UDP flows out of conntrack written by hand (one native base chain per hook, at raw
//! priority where conntrack would come next: the flow's 5-tuple in a set with per-element
//! counters, `notrack`, accept; `noqueuent2` the same without the PREROUTING chain, which
//! loopback packets do not need; `noqueuent0` that without conntrack hooked in at all) —, `bare1` — the bare reader with every verdict in a message of its own —
//! and `loop` — the worker loop with wfpd's options and an accept-all handler instead of the
//! shim), e.g. to profile one case; `WFP_BENCH_COALESCE=0` (verdict coalescing off for the bare
//! reader and wfpd alike); `WFP_BENCH_QUEUES=N` (wfpd on N queues, `--queue-balance`, one worker
//! each) and `WFP_BENCH_GSO=1` (wfpd with `[queues] gso`), for the queued path; the bare reader
//! keeps one queue; `WFP_BENCH_LOG=1` (wfpd's debug log on stderr). Needs root, `ip` and
//! `iptables`; otherwise prints why it skipped. Run: `cargo bench -p wfpd --bench b4`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wfp_nfqueue::rules::RuleSet;
use wfp_nfqueue::{
    run_worker, Decision, NfqError, PacketHandler, Queue, QueueStats, QueuedPacket, RecvStatus,
    StopHandle, TempNetns, Verdict, WorkerClock, WorkerOptions, WorkerStatus,
};
use wfpd::{Config, Daemon};

const UDP_PORT: u16 = 40_200;
const TCP_PORT: u16 = 40_201;
const ECHO_PORT: u16 = 40_202;
const RR_WINDOW: usize = 16;
/// The echo thread's name (its CPU time is read per sample).
const ECHO_THREAD: &str = "b4-echo";
const PAYLOAD: usize = 64;
const WINDOW: usize = 64;
const WARM_UP: Duration = Duration::from_millis(200);

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

/// What one sample measured: a rate, and the worker's CPU time and the packets it decided
/// meanwhile.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    rate: f64,
    lost: u64,
    queued: u64,
    worker_cpu_ns: u64,
    sender_cpu_ns: u64,
    /// CPU time of the UDP echo thread (request/response samples; 0 otherwise).
    echo_cpu_ns: u64,
    elapsed: f64,
    /// CPU time of everything outside this process (other processes, steal), as a share of
    /// all CPUs: interference from the rest of the machine.
    foreign: f64,
}

impl Measured {
    /// Worker CPU time per packet it decided (ns).
    fn ns_per_packet(&self) -> f64 {
        self.worker_cpu_ns as f64 / self.queued.max(1) as f64
    }

    /// Fraction of the sample the worker thread was on a CPU.
    fn worker_busy(&self) -> f64 {
        self.worker_cpu_ns as f64 / (self.elapsed * 1e9)
    }

    /// Fraction of the sample the sending thread was on a CPU.
    fn sender_busy(&self) -> f64 {
        self.sender_cpu_ns as f64 / (self.elapsed * 1e9)
    }

    /// CPU time (ns) of the exchanging threads — the sender and the echo thread, whose system
    /// time includes the kernel path of their packets on loopback — per unit (exchange). Load
    /// from other programs stretches a rate much more than this.
    fn exchange_cpu_ns(&self) -> f64 {
        (self.sender_cpu_ns + self.echo_cpu_ns) as f64 / (self.rate * self.elapsed).max(1.0)
    }
}

/// CPU time (ns, from `schedstat`) of this process's threads whose name starts with `prefix`.
fn threads_cpu_ns(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU accounting of the whole machine, to tell how much of it other programs used.
struct MachineCpu {
    /// user + nice + system + steal jiffies over all CPUs (`/proc/stat`).
    busy: u64,
    /// utime + stime jiffies of this process and of every kernel thread, by pid.
    excluded: HashMap<u32, u64>,
    cpus: u64,
}

impl MachineCpu {
    fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let mut cpus = 0;
        let mut busy = 0;
        for line in stat.lines() {
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("cpu") => {
                    // user nice system idle iowait irq softirq steal ...
                    let v: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
                    busy = [0, 1, 2, 7]
                        .iter()
                        .map(|&i| v.get(i).copied().unwrap_or(0))
                        .sum::<u64>();
                }
                Some(name) if name.starts_with("cpu") => cpus += 1,
                _ => {}
            }
        }
        /// `PF_KTHREAD` in the `flags` field of `/proc/PID/stat`.
        const PF_KTHREAD: u64 = 0x0020_0000;
        let me = std::process::id();
        let mut excluded = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((_, rest)) = text.rsplit_once(')') else {
                continue;
            };
            // After the name: state ppid pgrp session tty tpgid flags ... utime(11) stime(12).
            let v: Vec<u64> = rest
                .split_whitespace()
                .skip(1)
                .take(13)
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            if pid == me || v.get(5).copied().unwrap_or(0) & PF_KTHREAD != 0 {
                let time = v.get(10).copied().unwrap_or(0) + v.get(11).copied().unwrap_or(0);
                excluded.insert(pid, time);
            }
        }
        Self {
            busy,
            excluded,
            cpus: cpus.max(1),
        }
    }

    /// Share of all CPUs used since `earlier` by other processes and steal (not by this process,
    /// kernel threads or interrupts: those mostly do this bench's own packet work).
    fn foreign_since(&self, earlier: &Self, seconds: f64) -> f64 {
        let excluded: u64 = self
            .excluded
            .iter()
            .map(|(pid, t)| t.saturating_sub(earlier.excluded.get(pid).copied().unwrap_or(0)))
            .sum();
        let foreign = self
            .busy
            .saturating_sub(earlier.busy)
            .saturating_sub(excluded);
        // Jiffies are 1/100 s (USER_HZ).
        foreign as f64 / 100.0 / (seconds * self.cpus as f64)
    }
}

/// CPU time (ns) of the calling thread.
fn own_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Counts around a timed section.
struct Probe<'a> {
    running: &'a Running,
    queued: u64,
    worker: u64,
    sender: u64,
    echo: u64,
    machine: MachineCpu,
    start: Instant,
}

impl<'a> Probe<'a> {
    fn start(running: &'a Running) -> Self {
        Self {
            queued: running.queued(),
            worker: threads_cpu_ns(running.worker_thread()),
            sender: own_cpu_ns(),
            echo: threads_cpu_ns(ECHO_THREAD),
            machine: MachineCpu::now(),
            start: Instant::now(),
            running,
        }
    }

    fn finish(self, units: u64, lost: u64) -> Measured {
        let elapsed = self.start.elapsed().as_secs_f64();
        Measured {
            foreign: MachineCpu::now().foreign_since(&self.machine, elapsed),
            rate: units as f64 / elapsed,
            lost,
            queued: self.running.queued().saturating_sub(self.queued),
            worker_cpu_ns: threads_cpu_ns(self.running.worker_thread()).saturating_sub(self.worker),
            sender_cpu_ns: own_cpu_ns().saturating_sub(self.sender),
            echo_cpu_ns: threads_cpu_ns(ECHO_THREAD).saturating_sub(self.echo),
            elapsed,
        }
    }
}

/// Datagrams delivered per second, closed loop; datagrams lost (a receive timed out).
fn udp_pps(tx: &UdpSocket, rx: &UdpSocket, duration: Duration, running: &Running) -> Measured {
    let run = |duration: Duration| {
        let payload = [0x5au8; PAYLOAD];
        let mut buf = [0u8; 2048];
        let (mut delivered, mut lost) = (0u64, 0u64);
        let probe = Probe::start(running);
        while probe.start.elapsed() < duration {
            let mut sent = 0;
            for _ in 0..WINDOW {
                if tx.send(&payload).is_ok() {
                    sent += 1;
                }
            }
            for i in 0..sent {
                if rx.recv(&mut buf).is_err() {
                    lost += sent - i;
                    break;
                }
                delivered += 1;
            }
        }
        probe.finish(delivered, lost)
    };
    let _ = run(WARM_UP);
    run(duration)
}

/// Bytes per second over one new TCP connection.
fn tcp_bps(received: &AtomicU64, duration: Duration, running: &Running) -> Measured {
    let mut stream = TcpStream::connect(("127.0.0.1", TCP_PORT)).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let chunk = vec![0xa5u8; 64 << 10];
    let warm = Instant::now();
    while warm.elapsed() < WARM_UP {
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let before = received.load(Ordering::Relaxed);
    let probe = Probe::start(running);
    while probe.start.elapsed() < duration {
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let after = received.load(Ordering::Relaxed);
    let measured = probe.finish(after.saturating_sub(before), 0);
    drop(stream);
    measured
}

/// Accepts connections and counts the bytes received, until `stop`.
fn tcp_sink(stop: Arc<AtomicBool>, received: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    let listener = TcpListener::bind(("127.0.0.1", TCP_PORT)).expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    conn.set_nonblocking(false).expect("blocking");
                    conn.set_read_timeout(Some(Duration::from_millis(200)))
                        .expect("timeout");
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                received.fetch_add(n as u64, Ordering::Relaxed);
                            }
                            Err(e)
                                if e.kind() == std::io::ErrorKind::WouldBlock
                                    || e.kind() == std::io::ErrorKind::TimedOut =>
                            {
                                if stop.load(Ordering::Relaxed) {
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

/// Answers every datagram on `ECHO_PORT` to its sender, until `stop`.
fn udp_echo(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let sock = UdpSocket::bind(("127.0.0.1", ECHO_PORT)).expect("bind echo");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    std::thread::Builder::new()
        .name(ECHO_THREAD.to_owned())
        .spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        })
        .expect("spawn echo")
}

/// UDP request/response exchanges per second over one flow (`RR_WINDOW` requests in flight).
fn udp_rr(client: &UdpSocket, duration: Duration, running: &Running) -> Measured {
    let run = |duration: Duration| {
        let payload = [0x3cu8; PAYLOAD];
        let mut buf = [0u8; 2048];
        let (mut answered, mut lost) = (0u64, 0u64);
        let probe = Probe::start(running);
        while probe.start.elapsed() < duration {
            let mut sent = 0;
            for _ in 0..RR_WINDOW {
                if client.send(&payload).is_ok() {
                    sent += 1;
                }
            }
            for i in 0..sent {
                if client.recv(&mut buf).is_err() {
                    lost += sent - i;
                    break;
                }
                answered += 1;
            }
        }
        probe.finish(answered, lost)
    };
    let _ = run(WARM_UP);
    run(duration)
}

/// New TCP connections per second: connect, close, one at a time (the sink reads to EOF).
fn tcp_cps(duration: Duration, running: &Running) -> Measured {
    let probe = Probe::start(running);
    let (mut made, mut failed) = (0u64, 0u64);
    while probe.start.elapsed() < duration {
        match TcpStream::connect(("127.0.0.1", TCP_PORT)) {
            Ok(c) => {
                made += 1;
                drop(c);
            }
            Err(_) => failed += 1,
        }
    }
    probe.finish(made, failed)
}

/// A policy of `n` filters that the bench traffic never matches, spread over the layers it
/// crosses.
fn policy(n: usize) -> String {
    const LAYERS: [&str; 8] = [
        "OUTBOUND_IPPACKET_V4",
        "INBOUND_IPPACKET_V4",
        "OUTBOUND_TRANSPORT_V4",
        "INBOUND_TRANSPORT_V4",
        "DATAGRAM_DATA_V4",
        "ALE_AUTH_CONNECT_V4",
        "ALE_AUTH_RECV_ACCEPT_V4",
        "ALE_FLOW_ESTABLISHED_V4",
    ];
    let mut text = String::new();
    for i in 0..n {
        let layer = LAYERS[i % LAYERS.len()];
        let port = 1000 + (i % 30_000);
        let net = format!("10.{}.{}.0/24", (i >> 8) & 0xff, i & 0xff);
        let (port_field, addr_field) = if layer.contains("IPPACKET") {
            ("", "IP_REMOTE_ADDRESS")
        } else {
            ("IP_REMOTE_PORT", "IP_REMOTE_ADDRESS")
        };
        text.push_str(&format!(
            "[[filter]]\nname = \"f{i}\"\nlayer = \"{layer}\"\naction = \"BLOCK\"\ncondition = [ {{ field = \"{addr_field}\", value = \"{net}\" }}"
        ));
        if !port_field.is_empty() {
            text.push_str(&format!(", {{ field = \"{port_field}\", value = {port} }}"));
        }
        text.push_str(" ]\n\n");
    }
    text
}

/// wfpd's configuration for the bench: queue 0, the two loopback hooks, everything else default
/// (accounting mark, MSS clamp, conntrack and uid/gid attributes, identity lookups).
fn wfpd_config(policy_path: &Path) -> Config {
    wfpd_config_with(policy_path, false, false)
}

/// wfpd's configuration; `daemon`: with the queued-path knobs `WFP_BENCH_QUEUES` (number of
/// queues, `--queue-balance`, one worker each; default 1) and `WFP_BENCH_GSO=1` (`[queues] gso`),
/// which the bare reader (one reader on queue 0) does not take.
fn wfpd_config_with(policy_path: &Path, offload: bool, daemon: bool) -> Config {
    // Diagnostic: WFP_BENCH_COALESCE=0 sends every verdict as a message of its own (bare reader
    // and wfpd alike).
    let coalesce = std::env::var("WFP_BENCH_COALESCE").map_or(true, |v| v != "0");
    let mut queues = format!("coalesce_verdicts = {coalesce}\n");
    if daemon {
        let n = env_number("WFP_BENCH_QUEUES", 1.0, 16.0).max(1.0) as u16;
        let gso = std::env::var("WFP_BENCH_GSO").is_ok_and(|v| v == "1");
        queues += &format!("first = 0\nlast = {}\ngso = {gso}\n", n - 1);
    }
    let text = format!(
        "[policy]\nfiles = [{:?}]\n\n[queues]\n{queues}\n[rules]\nhooks = [ {{ hook = \"OUTPUT\", matches = [\"-o\", \"lo\"] }}, {{ hook = \"INPUT\", matches = [\"-i\", \"lo\"] }} ]\n\n[stats]\ninterval_secs = 0\n\n[log]\nflows = false\n\n[offload]\nenabled = {offload}\n",
        policy_path.display().to_string()
    );
    Config::parse(&text, "b4.toml").expect("config")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    NoQueue,
    /// Diagnostic, not in the default set: no queue, but conntrack hooked in (one native
    /// `ct state established accept` base chain at OUTPUT and INPUT) — the kernel path an
    /// offloaded packet cannot avoid here (offload keeps its state in conntrack).
    NoQueueConntrack,
    /// Diagnostic, not in the default set: no queue, the target layout for offloaded UDP flows
    /// out of conntrack (`notrack_set_table`).
    NoQueueNotrack(NtLayout),
    Bare,
    /// Diagnostic, not in the default set: the bare reader with every verdict in a message of
    /// its own (`coalesce_verdicts = false`).
    BareUncoalesced,
    /// Diagnostic, not in the default set: the worker loop with wfpd's options and an
    /// accept-all handler.
    Loop,
    Wfpd(usize),
    /// wfpd with the 10-filter policy and flow offload on.
    Offload,
}

impl Case {
    const ALL: [Self; 5] = [
        Self::NoQueue,
        Self::Bare,
        Self::Wfpd(10),
        Self::Wfpd(10_000),
        Self::Offload,
    ];

    fn name(self) -> String {
        match self {
            Self::NoQueue => "no queue".to_owned(),
            Self::NoQueueConntrack => "no queue, ct".to_owned(),
            Self::NoQueueNotrack(NtLayout::Full) => "no queue, notrack".to_owned(),
            Self::NoQueueNotrack(NtLayout::NoPrerouting) => "no queue, notrack2".to_owned(),
            Self::NoQueueNotrack(NtLayout::NoConntrack) => "no queue, notrack0".to_owned(),
            Self::Bare => "bare reader".to_owned(),
            Self::BareUncoalesced => "bare, uncoalesced".to_owned(),
            Self::Loop => "wfpd loop, no shim".to_owned(),
            Self::Wfpd(n) => format!("wfpd {n} filters"),
            Self::Offload => "wfpd 10 offload".to_owned(),
        }
    }

    fn key(self) -> String {
        match self {
            Self::NoQueue => "noqueue".to_owned(),
            Self::NoQueueConntrack => "noqueuect".to_owned(),
            Self::NoQueueNotrack(NtLayout::Full) => "noqueuent".to_owned(),
            Self::NoQueueNotrack(NtLayout::NoPrerouting) => "noqueuent2".to_owned(),
            Self::NoQueueNotrack(NtLayout::NoConntrack) => "noqueuent0".to_owned(),
            Self::Bare => "bare".to_owned(),
            Self::BareUncoalesced => "bare1".to_owned(),
            Self::Loop => "loop".to_owned(),
            Self::Wfpd(10_000) => "wfpd10k".to_owned(),
            Self::Wfpd(n) => format!("wfpd{n}"),
            Self::Offload => "wfpdoff".to_owned(),
        }
    }

    /// Whether the case queues packets (has a reader).
    fn queued(self) -> bool {
        !matches!(
            self,
            Self::NoQueue | Self::NoQueueConntrack | Self::NoQueueNotrack(_)
        )
    }
}

/// What the cases are set up with.
struct Setup<'a> {
    /// wfpd's configuration without the daemon's queued-path knobs (the bare reader's).
    bare_config: &'a Config,
    /// The policy files, by number of filters.
    policies: &'a [(usize, PathBuf)],
    /// The UDP request/response client's port (the `noqueuent` case's set element).
    rr_port: u16,
}

/// A case set up and carrying traffic.
enum Running {
    NoQueue,
    NoQueueConntrack,
    NoQueueNotrack,
    Bare {
        thread: std::thread::JoinHandle<Result<QueueStats, NfqError>>,
        stop: StopHandle,
        rules: RuleSet,
        handled: Arc<AtomicU64>,
    },
    Loop {
        thread: std::thread::JoinHandle<QueueStats>,
        stop: StopHandle,
        rules: RuleSet,
        status: Arc<WorkerStatus>,
    },
    Wfpd(Box<Daemon>),
}

/// The `noqueuect` case's table: conntrack in the path, every established packet accepted, in
/// `WFP_BENCH_CT_CHAINS` base chains per hook (default 1; more show what each base chain a packet
/// crosses costs).
fn ct_only_table() -> String {
    let chains = env_number("WFP_BENCH_CT_CHAINS", 1.0, 8.0).max(1.0) as usize;
    let mut t = "table inet b4_ct {\n".to_owned();
    for i in 0..chains {
        for hook in ["output", "input"] {
            t += &format!(
                "  chain {hook}{i} {{ type filter hook {hook} priority {i}; ct state established accept; }}\n"
            );
        }
    }
    t + "}\n"
}

/// The `noqueuent` case's table: the target layout for offloaded UDP flows (issue 16,
/// docs/offload.md "Offloaded UDP flows out of conntrack"), rules written by hand, no queue. One
/// native base chain per hook: at OUTPUT and PREROUTING at raw priority (before conntrack), the
/// flow's 5-tuple looked up in a set with per-element counters -> `notrack`, accept; at INPUT the
/// same lookup -> accept. Every chain ends with a `ct mark` test standing for the non-offloaded
/// path (the queue rule and the conntrack-mark test of TCP offload), which also hooks conntrack
/// into the namespace as wfpd does. See [`NtLayout`] for the variants.
fn notrack_set_table(rr_port: u16, layout: NtLayout) -> String {
    let key = "ip saddr . ip daddr . meta l4proto . th sport . th dport";
    let rest = if layout == NtLayout::NoConntrack {
        "meta mark 0x00110000 accept"
    } else {
        "ct mark and 0x00ff0000 == 0x00110000 accept"
    };
    let prerouting = layout == NtLayout::Full;
    let mut t = format!(
        "table inet b4_nt {{\n  set flows4 {{ type ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service; counter; \
         elements = {{ 127.0.0.1 . 127.0.0.1 . udp . {rr_port} . {ECHO_PORT}, 127.0.0.1 . 127.0.0.1 . udp . {ECHO_PORT} . {rr_port} }} }}\n\
         \x20 chain output {{ type filter hook output priority raw; {key} @flows4 notrack accept; {rest}; }}\n\
         \x20 chain input {{ type filter hook input priority filter; {key} @flows4 accept; {rest}; }}\n"
    );
    if prerouting {
        t += &format!(
            "  chain prerouting {{ type filter hook prerouting priority raw; {key} @flows4 notrack accept; {rest}; }}\n"
        );
    }
    t + "}\n"
}

/// Variants of the `noqueuent` layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NtLayout {
    /// OUTPUT, PREROUTING and INPUT chains (`noqueuent`).
    Full,
    /// Without the PREROUTING chain (`noqueuent2`): loopback packets are already untracked at
    /// OUTPUT; other inbound packets would need it.
    NoPrerouting,
    /// As `NoPrerouting`, and no rule refers to conntrack, so it is not hooked into the
    /// namespace at all (`noqueuent0`): what conntrack's hooks cost an untracked packet.
    NoConntrack,
}

/// Runs `nft -f -` with `script` in the calling thread's namespace.
fn nft(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("nft script");
    assert!(child.wait().expect("nft").success(), "nft -f: {script}");
}

/// The B4 reference: the least an NFQUEUE reader does — receive a batch, accept every packet
/// (with wfpd's accounting mark), send the verdicts — on `wfp_nfqueue::Queue` directly, without
/// the worker loop's bookkeeping (heartbeat, timers, panic containment) that wfpd's path adds.
fn bare_reader(
    queue: &mut Queue,
    mark: Option<u32>,
    handled: &AtomicU64,
) -> Result<QueueStats, NfqError> {
    let mut batch = Vec::new();
    loop {
        match queue.recv_batch(&mut batch)? {
            RecvStatus::Packets(_) => {}
            RecvStatus::Stopped => break,
            RecvStatus::TimedOut => continue,
        }
        for p in &batch {
            let mark = mark.map(|bit| p.mark.unwrap_or(0) | bit);
            queue.verdict(p.id, Verdict::Accept, mark)?;
        }
        handled.fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
    queue.flush()?;
    Ok(queue.stats())
}

/// Accepts everything (the `loop` diagnostic case).
struct AcceptAll;

impl PacketHandler for AcceptAll {
    fn handle(&mut self, _now: Duration, _packet: &QueuedPacket) -> Decision {
        Verdict::Accept.into()
    }
}

/// What a case's queue reported when it stopped.
#[derive(Clone, Copy, Debug, Default)]
struct QueueTotals {
    packets: u64,
    recv_calls: u64,
    verdict_sends: u64,
    blocked: u64,
    internal_errors: u64,
    owner_lookups: u64,
}

impl std::ops::AddAssign for QueueTotals {
    fn add_assign(&mut self, o: Self) {
        self.packets += o.packets;
        self.recv_calls += o.recv_calls;
        self.verdict_sends += o.verdict_sends;
        self.blocked += o.blocked;
        self.internal_errors += o.internal_errors;
        self.owner_lookups += o.owner_lookups;
    }
}

impl Running {
    fn start(case: Case, setup: &Setup<'_>) -> Self {
        let (bare_config, policies) = (setup.bare_config, setup.policies);
        match case {
            Case::NoQueue => Self::NoQueue,
            Case::NoQueueConntrack => {
                nft(&ct_only_table());
                Self::NoQueueConntrack
            }
            Case::NoQueueNotrack(layout) => {
                nft(&notrack_set_table(setup.rr_port, layout));
                Self::NoQueueNotrack
            }
            Case::Bare | Case::BareUncoalesced => {
                // wfpd's kernel setup, wfp_nfqueue's accept-all reader.
                let rules = bare_config.rule_set();
                let mut queue = bare_config.queue_config(0);
                if case == Case::BareUncoalesced {
                    queue.coalesce_verdicts = false;
                }
                let mark = rules.accounting_mark;
                let handled = Arc::new(AtomicU64::new(0));
                let counter = Arc::clone(&handled);
                let mut queue = Queue::open(queue).expect("open queue");
                let stop = queue.stop_handle();
                let thread = std::thread::Builder::new()
                    .name("wfp-nfq-0".to_owned())
                    .spawn(move || bare_reader(&mut queue, mark, &counter))
                    .expect("spawn reader");
                rules.install().expect("install rules");
                Self::Bare {
                    thread,
                    stop,
                    rules,
                    handled,
                }
            }
            Case::Loop => {
                let rules = bare_config.rule_set();
                let options = WorkerOptions {
                    accept_mark: rules.accounting_mark,
                    ..WorkerOptions::default()
                };
                let mut queue = Queue::open(bare_config.queue_config(0)).expect("open queue");
                let stop = queue.stop_handle();
                let status = Arc::new(WorkerStatus::default());
                let thread_status = Arc::clone(&status);
                let thread = std::thread::Builder::new()
                    .name("wfpd-queue-0".to_owned())
                    .spawn(move || {
                        run_worker(
                            &mut queue,
                            &mut AcceptAll,
                            &thread_status,
                            &WorkerClock::new(),
                            &options,
                        )
                        .expect("worker")
                    })
                    .expect("spawn");
                rules.install().expect("install rules");
                Self::Loop {
                    thread,
                    stop,
                    rules,
                    status,
                }
            }
            Case::Wfpd(n) => {
                let path = policies
                    .iter()
                    .find(|(count, _)| *count == n)
                    .map(|(_, p)| p)
                    .expect("policy written");
                Self::Wfpd(Box::new(
                    Daemon::start(wfpd_config_with(path, false, true)).expect("start wfpd"),
                ))
            }
            Case::Offload => {
                let path = &policies.first().expect("policy written").1;
                Self::Wfpd(Box::new(
                    Daemon::start(wfpd_config_with(path, true, true)).expect("start wfpd"),
                ))
            }
        }
    }

    /// Packets decided so far.
    fn queued(&self) -> u64 {
        match self {
            Self::NoQueue | Self::NoQueueConntrack | Self::NoQueueNotrack => 0,
            Self::Bare { handled, .. } => handled.load(Ordering::Relaxed),
            Self::Loop { status, .. } => status.progress.load(Ordering::Relaxed),
            Self::Wfpd(daemon) => daemon.packets_decided(),
        }
    }

    /// The name prefix of the worker threads.
    fn worker_thread(&self) -> &'static str {
        match self {
            Self::NoQueue | Self::NoQueueConntrack | Self::NoQueueNotrack => "\u{0}",
            Self::Bare { .. } => "wfp-nfq-",
            Self::Loop { .. } | Self::Wfpd(_) => "wfpd-queue-",
        }
    }

    fn stop(self) -> QueueTotals {
        match self {
            Self::NoQueue => QueueTotals::default(),
            Self::NoQueueConntrack => {
                nft("delete table inet b4_ct\n");
                QueueTotals::default()
            }
            Self::NoQueueNotrack => {
                nft("delete table inet b4_nt\n");
                QueueTotals::default()
            }
            Self::Bare {
                thread,
                stop,
                rules,
                ..
            } => {
                rules.remove().expect("remove rules");
                stop.stop();
                match thread.join().expect("bare reader thread") {
                    Ok(q) => QueueTotals {
                        packets: q.packets,
                        recv_calls: q.recv_calls,
                        verdict_sends: q.send_calls,
                        ..QueueTotals::default()
                    },
                    Err(e) => {
                        println!("  bare reader failed: {e}");
                        QueueTotals::default()
                    }
                }
            }
            Self::Loop {
                thread,
                stop,
                rules,
                ..
            } => {
                rules.remove().expect("remove rules");
                stop.stop();
                let q = thread.join().expect("worker");
                QueueTotals {
                    packets: q.packets,
                    recv_calls: q.recv_calls,
                    verdict_sends: q.send_calls,
                    ..QueueTotals::default()
                }
            }
            Self::Wfpd(daemon) => {
                let snapshot = daemon.shutdown().expect("stop wfpd");
                let mut totals = QueueTotals::default();
                for q in &snapshot.queues {
                    totals += QueueTotals {
                        packets: q.packets,
                        recv_calls: q.recv_calls,
                        verdict_sends: q.verdict_sends,
                        blocked: q.blocked,
                        internal_errors: q.internal_errors,
                        owner_lookups: q.owner_lookups,
                    };
                }
                totals
            }
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    udp: Measured,
    tcp: Measured,
    /// UDP request/response exchanges.
    rr: Measured,
    /// New TCP connections.
    conn: Measured,
    /// Offload case: the reload (commit with revocation) and its rule switch, in ms.
    revoke: Option<(f64, f64)>,
}

/// The offload case's commit: reloads the policy (revoking every offload first) and returns
/// (whole reload, rule switch) in ms.
fn revoke(running: &mut Running) -> Option<(f64, f64)> {
    let Running::Wfpd(daemon) = running else {
        return None;
    };
    let start = Instant::now();
    daemon.reload().expect("reload");
    let whole = start.elapsed().as_secs_f64() * 1e3;
    let switch = daemon
        .offload()?
        .stats()
        .last_revocation_us
        .load(Ordering::Relaxed) as f64
        / 1e3;
    Some((whole, switch))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

fn env_number(name: &str, default: f64, max: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s <= max)
        .unwrap_or(default)
}

/// One sample's line: rate, and for queued cases the worker's CPU per packet and busy share.
fn describe(m: &Measured, queued: bool, tcp: bool) -> String {
    let rate = if tcp {
        format!("{:>7.1} MB/s", m.rate / 1e6)
    } else {
        format!("{:>7.0} pkt/s", m.rate)
    };
    let lost = if m.lost > 0 {
        format!(" ({} lost)", m.lost)
    } else {
        String::new()
    };
    let foreign = format!("other load {:>3.0}%", m.foreign * 100.0);
    if queued {
        format!(
            "{rate}{lost}  worker {:>5.0} ns/pkt, busy {:>3.0}%; sender busy {:>3.0}%; {foreign}",
            m.ns_per_packet(),
            m.worker_busy() * 100.0,
            m.sender_busy() * 100.0
        )
    } else {
        format!(
            "{rate}{lost}  sender busy {:>3.0}%; {foreign}",
            m.sender_busy() * 100.0
        )
    }
}

fn main() {
    if let Some(reason) = skip_reason() {
        println!("b4: skipped ({reason})");
        return;
    }
    let secs = env_number("WFP_BENCH_SECS", 2.0, 60.0);
    let rounds = env_number("WFP_BENCH_ROUNDS", 9.0, 100.0) as usize;
    let duration = Duration::from_secs_f64(secs);
    let cases: Vec<Case> = match std::env::var("WFP_BENCH_CASES") {
        Ok(list) => [
            Case::NoQueueConntrack,
            Case::NoQueueNotrack(NtLayout::Full),
            Case::NoQueueNotrack(NtLayout::NoPrerouting),
            Case::NoQueueNotrack(NtLayout::NoConntrack),
            Case::BareUncoalesced,
            Case::Loop,
        ]
        .into_iter()
        .chain(Case::ALL)
        .filter(|c| list.split(',').any(|k| k.trim() == c.key()))
        .collect(),
        Err(_) => Case::ALL.to_vec(),
    };
    if std::env::var_os("WFP_BENCH_LOG").is_some() {
        // wfpd's own log (e.g. why packets were blocked), on stderr.
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .init();
    }
    let ns = TempNetns::create("wfpdb4").expect("create netns");
    ns.enter().expect("enter netns");
    let dir = std::env::temp_dir().join(format!("wfpd-b4-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let policies: Vec<(usize, PathBuf)> = [10usize, 10_000]
        .into_iter()
        .map(|n| {
            let path = dir.join(format!("policy-{n}.toml"));
            std::fs::write(&path, policy(n)).expect("policy");
            (n, path)
        })
        .collect();
    let bare_config = wfpd_config(&policies[0].1);

    let rx = UdpSocket::bind(("127.0.0.1", UDP_PORT)).expect("bind receiver");
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    tx.connect(("127.0.0.1", UDP_PORT)).expect("connect");
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let sink = tcp_sink(Arc::clone(&stop), Arc::clone(&received));
    let echo = udp_echo(Arc::clone(&stop));
    let rr = UdpSocket::bind("127.0.0.1:0").expect("bind rr client");
    rr.connect(("127.0.0.1", ECHO_PORT)).expect("connect rr");
    rr.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let setup = Setup {
        bare_config: &bare_config,
        policies: &policies,
        rr_port: rr.local_addr().expect("rr client address").port(),
    };
    // The connection-rate samples open many connections: reuse TIME_WAIT ports, and let
    // conntrack forget closed connections after a second (every case alike).
    let _ = std::fs::write("/proc/sys/net/ipv4/tcp_tw_reuse", "1");
    let _ = std::fs::write(
        "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait",
        "1",
    );

    let queue = bare_config.queue_config(0);
    println!(
        "B4: loopback in netns {}; {rounds} rounds, case order rotating; per case and round \
         {secs} s UDP ({PAYLOAD}-byte datagrams, closed loop, window {WINDOW}, one flow) then \
         {secs} s TCP (one new connection, 64 KiB writes)",
        ns.name()
    );
    println!(
        "    queue (bare and wfpd alike): copy {:?}, batch {}, max_len {}, flags {:?}, \
         coalesce verdicts {}; one worker thread; rules: wfpd's (OUTPUT -o lo, INPUT -i lo, MSS \
         clamp {:?}, accounting mark {:?})",
        queue.copy_mode,
        queue.batch_slots,
        queue.max_len,
        queue.flags,
        queue.coalesce_verdicts,
        bare_config.rule_set().clamp_mss,
        bare_config.rule_set().accounting_mark
    );
    let tuned = wfpd_config_with(&policies[0].1, false, true);
    if tuned.queue_numbers().count() > 1 || tuned.queues.gso {
        println!(
            "    wfpd (not the bare reader): queues {:?} (one worker each), gso {}",
            tuned.queue_numbers(),
            tuned.queues.gso
        );
    }
    // A short untimed warm-up of the traffic path itself.
    let _ = udp_pps(&tx, &rx, Duration::from_millis(300), &Running::NoQueue);

    // Samples taken while the rest of the machine used more than this share of the CPUs are
    // retaken (at most `retakes_left` times per run, so a busy machine cannot stall the bench).
    let max_foreign = env_number("WFP_BENCH_MAX_OTHER_LOAD", 0.15, 1.0);
    let mut retakes_left = rounds * cases.len();
    let mut retaken = 0;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); cases.len()];
    let mut totals: Vec<QueueTotals> = vec![QueueTotals::default(); cases.len()];
    let mut start_ms: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        println!("round {}/{rounds}", round + 1);
        for k in 0..cases.len() {
            let index = (k + round) % cases.len();
            let case = cases[index];
            let started = Instant::now();
            let running = Running::start(case, &setup);
            start_ms[index].push(started.elapsed().as_secs_f64() * 1e3);
            let queued = case.queued();
            let mut clean = |kind: &str, tcp: bool, measure: &dyn Fn() -> Measured| {
                let mut m = measure();
                while m.foreign > max_foreign && retakes_left > 0 {
                    retakes_left -= 1;
                    retaken += 1;
                    println!(
                        "  {:<18} {kind} {}  -> discarded (other load above {:.0}%), retaken",
                        case.name(),
                        describe(&m, queued, tcp),
                        max_foreign * 100.0
                    );
                    m = measure();
                }
                println!("  {:<18} {kind} {}", case.name(), describe(&m, queued, tcp));
                m
            };
            let udp = clean("UDP", false, &|| udp_pps(&tx, &rx, duration, &running));
            let tcp = clean("TCP", true, &|| tcp_bps(&received, duration, &running));
            let rr_m = clean("UDP r/r", false, &|| udp_rr(&rr, duration, &running));
            let conn = clean("conn/s", false, &|| tcp_cps(duration, &running));
            let mut running = running;
            let revoked = if case == Case::Offload {
                let r = revoke(&mut running);
                if let Some((whole, switch)) = r {
                    println!(
                        "  {:<18} commit with revocation {whole:.1} ms (rule switch {switch:.1} ms)",
                        case.name()
                    );
                }
                r
            } else {
                None
            };
            totals[index] += running.stop();
            samples[index].push(Sample {
                udp,
                tcp,
                rr: rr_m,
                conn,
                revoke: revoked,
            });
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sink.join();
    let _ = echo.join();
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!(
        "  {retaken} samples retaken because other processes used more than {:.0}% of the CPUs \
         ({} retakes were left)",
        max_foreign * 100.0,
        retakes_left
    );
    for (i, case) in cases.iter().enumerate() {
        let t = totals[i];
        if !case.queued() {
            continue;
        }
        println!(
            "  {:<18} over all rounds: {} packets, {:.1} per receive call, {:.1} per verdict \
             send, {} blocked, {} internal errors, {} identity lookups; set up in {:.0} ms \
             (median)",
            case.name(),
            t.packets,
            t.packets as f64 / t.recv_calls.max(1) as f64,
            t.packets as f64 / t.verdict_sends.max(1) as f64,
            t.blocked,
            t.internal_errors,
            t.owner_lookups,
            median(&mut start_ms[i])
        );
    }

    // Summary: medians and spread.
    let series =
        |i: usize, f: fn(&Sample) -> f64| -> Vec<f64> { samples[i].iter().map(f).collect() };
    let udp = |s: &Sample| s.udp.rate;
    let tcp = |s: &Sample| s.tcp.rate;
    let udp_ns = |s: &Sample| s.udp.ns_per_packet();
    let tcp_pps = |s: &Sample| s.tcp.queued as f64 / s.tcp.elapsed;
    let find = |c: Case| cases.iter().position(|&x| x == c);
    let bare = find(Case::Bare);
    let med = |i: usize, f: fn(&Sample) -> f64| median(&mut series(i, f));
    println!();
    println!(
        "{:<18} {:>9} {:>15} {:>6} {:>8} {:>11} {:>6} {:>9} {:>10}",
        "case (median)",
        "UDP pkt/s",
        "min..max",
        "/bare",
        "TCP MB/s",
        "min..max",
        "/bare",
        "TCP pkt/s",
        "UDP ns/pkt"
    );
    for (i, case) in cases.iter().enumerate() {
        let (ulo, uhi) = min_max(&series(i, udp));
        let (tlo, thi) = min_max(&series(i, tcp));
        let vs_bare = |f: fn(&Sample) -> f64| {
            bare.map_or_else(
                || "-".to_owned(),
                |b| format!("{:.3}", med(i, f) / med(b, f)),
            )
        };
        let queued = case.queued();
        println!(
            "{:<18} {:>9.0} {:>15} {:>6} {:>8.1} {:>11} {:>6} {:>9} {:>10}",
            case.name(),
            med(i, udp),
            format!("{:.0}k..{:.0}k", ulo / 1e3, uhi / 1e3),
            vs_bare(udp),
            med(i, tcp) / 1e6,
            format!("{:.0}..{:.0}", tlo / 1e6, thi / 1e6),
            vs_bare(tcp),
            if queued {
                format!("{:.0}", med(i, tcp_pps))
            } else {
                "-".to_owned()
            },
            if queued {
                format!("{:.0}", med(i, udp_ns))
            } else {
                "-".to_owned()
            },
        );
    }
    println!(
        "(UDP ns/pkt: CPU time of the worker thread, user and kernel — the kernel part includes \
         reinjecting each accepted packet — per packet it decided)"
    );

    // Paired ratios: each round's samples against the same round's reference.
    let paired = |a: usize, b: usize, f: fn(&Sample) -> f64| -> Vec<f64> {
        samples[a]
            .iter()
            .zip(&samples[b])
            .map(|(x, y)| f(x) / f(y))
            .collect()
    };
    let show = |label: &str, values: Vec<f64>| {
        let mut sorted = values.clone();
        let m = median(&mut sorted);
        let list: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
        println!("  {label:<28} median {m:.3}; rounds: {}", list.join(" "));
        m
    };
    let (w10, w10k) = (find(Case::Wfpd(10)), find(Case::Wfpd(10_000)));
    println!();
    println!("per-round ratios (samples of the same round):");
    let mut verdicts = Vec::new();
    if let Some(b) = bare {
        for w in [w10, w10k].into_iter().flatten() {
            let name = cases[w].name();
            let u = show(&format!("UDP {name} / bare"), paired(w, b, udp));
            let t = show(&format!("TCP {name} / bare"), paired(w, b, tcp));
            verdicts.push((
                format!("{name} / bare >= 0.90"),
                med(w, udp) / med(b, udp),
                med(w, tcp) / med(b, tcp),
                u,
                t,
                0.90,
            ));
        }
    }
    if let (Some(a), Some(b)) = (w10k, w10) {
        let u = show("UDP 10k / 10 filters", paired(a, b, udp));
        let t = show("TCP 10k / 10 filters", paired(a, b, tcp));
        verdicts.push((
            "10k within 5% of 10 (>= 0.95)".to_owned(),
            med(a, udp) / med(b, udp),
            med(a, tcp) / med(b, tcp),
            u,
            t,
            0.95,
        ));
    }
    println!();
    println!("B4 targets (ratio of medians; median of per-round ratios in brackets):");
    for (label, u, t, pu, pt, goal) in verdicts {
        let ok = |v: f64| if v >= goal { "ok" } else { "MISSED" };
        println!(
            "  {label:<34} UDP {u:.3} [{pu:.3}] {:<6}  TCP {t:.3} [{pt:.3}] {}",
            ok(u),
            ok(t)
        );
    }

    rr_cpu_summary(&cases, &samples);
    offload_summary(&cases, &samples);
}

/// UDP request/response per exchange, every case: CPU time of the exchanging threads (less
/// disturbed by other programs than the rate) and the medians of the per-round ratios of CPU per
/// exchange and of rate against no queue and, when run, against no queue with conntrack
/// (`noqueuect`: the part of the gap conntrack accounts for).
fn rr_cpu_summary(cases: &[Case], samples: &[Vec<Sample>]) {
    let Some(noq) = cases.iter().position(|&c| c == Case::NoQueue) else {
        return;
    };
    let ct = cases.iter().position(|&c| c == Case::NoQueueConntrack);
    let per_round = |a: usize, b: usize, f: fn(&Measured) -> f64| {
        let mut v: Vec<f64> = samples[a]
            .iter()
            .zip(&samples[b])
            .map(|(x, y)| f(&x.rr) / f(&y.rr))
            .collect();
        median(&mut v)
    };
    println!();
    println!(
        "UDP r/r CPU per exchange (sender + echo threads; medians; per-round ratio medians, CPU \
         and rate):"
    );
    for (i, c) in cases.iter().enumerate() {
        let mut v: Vec<f64> = samples[i].iter().map(|s| s.rr.exchange_cpu_ns()).collect();
        let mut line = format!(
            "  {:<18} {:>7.0} ns   / no queue: CPU {:.3}, rate {:.3}",
            c.name(),
            median(&mut v),
            per_round(i, noq, Measured::exchange_cpu_ns),
            per_round(i, noq, |m| m.rate)
        );
        if let Some(ct) = ct {
            line += &format!(
                "   / no queue, ct: CPU {:.3}, rate {:.3}",
                per_round(i, ct, Measured::exchange_cpu_ns),
                per_round(i, ct, |m| m.rate)
            );
        }
        println!("{line}");
    }
}

/// The offload targets: bulk TCP and UDP request/response against no queue, new connections
/// against the bare reader, the commit with its revocation.
fn offload_summary(cases: &[Case], samples: &[Vec<Sample>]) {
    let find = |c: Case| cases.iter().position(|&x| x == c);
    let (Some(off), Some(noq)) = (find(Case::Offload), find(Case::NoQueue)) else {
        return;
    };
    let med = |i: usize, f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples[i].iter().map(f).collect();
        median(&mut v)
    };
    println!();
    println!("flow offload (medians):");
    for (i, c) in cases.iter().enumerate() {
        println!(
            "  {:<18} UDP r/r {:>8.0}/s   conn {:>6.0}/s   TCP {:>7.1} MB/s",
            c.name(),
            med(i, |s| s.rr.rate),
            med(i, |s| s.conn.rate),
            med(i, |s| s.tcp.rate) / 1e6
        );
    }
    let ok = |v: f64, goal: f64| if v >= goal { "ok" } else { "MISSED" };
    let tcp = med(off, |s| s.tcp.rate) / med(noq, |s| s.tcp.rate);
    let rr = med(off, |s| s.rr.rate) / med(noq, |s| s.rr.rate);
    println!("Offload targets (ratio of medians):");
    println!(
        "  bulk TCP offload / no queue >= 0.95      {tcp:.3} {}",
        ok(tcp, 0.95)
    );
    println!(
        "  UDP r/r offload / no queue >= 0.90       {rr:.3} {}",
        ok(rr, 0.90)
    );
    if let Some(bare) = find(Case::Bare) {
        let conn = med(off, |s| s.conn.rate) / med(bare, |s| s.conn.rate);
        println!(
            "  new connections offload / bare >= 0.90  {conn:.3} {}",
            ok(conn, 0.90)
        );
    }
    let mut whole: Vec<f64> = samples[off]
        .iter()
        .filter_map(|s| s.revoke.map(|r| r.0))
        .collect();
    let mut switch: Vec<f64> = samples[off]
        .iter()
        .filter_map(|s| s.revoke.map(|r| r.1))
        .collect();
    if !whole.is_empty() {
        let (w, sw) = (median(&mut whole), median(&mut switch));
        let verdict = if w <= 10.0 { "ok" } else { "MISSED" };
        println!("  commit with revocation <= 10 ms          {w:.1} ms (rule switch {sw:.1} ms) {verdict}");
    }
}
