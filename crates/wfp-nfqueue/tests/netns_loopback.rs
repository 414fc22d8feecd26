//! Real-kernel tests of the NFQUEUE data path.
//!
//! Each test creates its own network namespace (`wfpnq-<pid>-<n>`, deleted on drop even when
//! the test panics), brings up `lo`, installs NFQUEUE rules inside it, and sends a bounded
//! number of UDP packets to 127.0.0.1 inside it. No traffic leaves the namespace. Every socket
//! has a timeout and every loop a deadline.
//!
//! Skipped, with a printed reason, unless running as root with `ip` and `iptables` available.

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wfp_nfqueue::rules::{ChainHook, HookRule, QueueTarget, RuleSet};
use wfp_nfqueue::{
    kernel_queue_stats, spawn_workers, Hook, Queue, QueueConfig, QueuedPacket, RecvStatus,
    TempNetns, Verdict,
};

const SOCKET_TIMEOUT: Duration = Duration::from_millis(200);
const DEADLINE: Duration = Duration::from_secs(5);

/// Why the real-kernel tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    match std::fs::metadata("/proc/self") {
        Ok(meta) if meta.uid() == 0 => {}
        Ok(_) => return Some("not running as root".to_owned()),
        Err(e) => return Some(format!("cannot stat /proc/self: {e}")),
    }
    for (program, arg) in [("ip", "-V"), ("iptables", "-V")] {
        match Command::new(program).arg(arg).output() {
            Ok(out) if out.status.success() => {}
            _ => return Some(format!("`{program}` is not available")),
        }
    }
    None
}

/// Creates a namespace, then runs `body` on a fresh thread that has entered it (so the test
/// harness thread never changes namespace). Panics propagate after the namespace is deleted.
fn in_netns(test: &str, body: impl FnOnce(&TempNetns) + Send) {
    if let Some(reason) = skip_reason() {
        eprintln!("skipping {test}: {reason}");
        return;
    }
    let ns = TempNetns::create("wfpnq").expect("create netns");
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter().expect("enter netns");
                body(&ns);
            })
            .join()
    });
    drop(ns);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// One OUTPUT rule: UDP to `port` on loopback goes to `target`.
fn output_rule(ns: &TempNetns, port: u16, target: QueueTarget) -> RuleSet {
    let mut rules = RuleSet::new(target);
    rules.netns = Some(ns.name().to_owned());
    rules.hooks = vec![HookRule::new(
        ChainHook::Output,
        &["-o", "lo", "-p", "udp", "--dport", &port.to_string()],
    )];
    rules
}

fn iptables_save(ns: &TempNetns) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "iptables", "-w", "5", "-S"])
        .output()
        .expect("iptables -S");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn receiver(port: u16) -> UdpSocket {
    let rx = UdpSocket::bind(("127.0.0.1", port)).expect("bind receiver");
    rx.set_read_timeout(Some(SOCKET_TIMEOUT)).expect("timeout");
    rx
}

fn send_seqs(port: u16, seqs: impl IntoIterator<Item = u32>) {
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    tx.set_write_timeout(Some(SOCKET_TIMEOUT)).expect("timeout");
    for seq in seqs {
        tx.send_to(&seq.to_be_bytes(), ("127.0.0.1", port))
            .expect("send");
    }
}

/// Receives until `SOCKET_TIMEOUT` passes without a datagram (bounded by `DEADLINE`).
fn drain(rx: &UdpSocket) -> BTreeSet<u32> {
    let mut got = BTreeSet::new();
    let mut buf = [0u8; 64];
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        match rx.recv(&mut buf) {
            Ok(4) => {
                got.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
            }
            Ok(_) => panic!("unexpected datagram size"),
            Err(_) => break,
        }
    }
    got
}

/// The sequence number in a queued IPv4/UDP packet's payload.
fn seq_of(packet: &QueuedPacket) -> u32 {
    let ihl = usize::from(packet.payload[0] & 0x0f) * 4;
    let at = ihl + 8;
    u32::from_be_bytes(packet.payload[at..at + 4].try_into().expect("4 bytes"))
}

/// Reads exactly `count` packets (or fails at the deadline).
fn read_packets(queue: &mut Queue, count: usize) -> Vec<QueuedPacket> {
    let mut all = Vec::new();
    let mut batch = Vec::new();
    let end = Instant::now() + DEADLINE;
    while all.len() < count {
        assert!(
            Instant::now() < end,
            "only {} of {count} packets",
            all.len()
        );
        match queue.recv_batch(&mut batch).expect("recv_batch") {
            RecvStatus::Packets(_) => all.append(&mut batch),
            RecvStatus::TimedOut => {}
            RecvStatus::Stopped => panic!("stopped"),
        }
    }
    all
}

/// Binds a queue number this process bound a moment ago. The kernel frees the old binding when
/// the last reference to its socket goes; a command another test spawned at that moment holds a
/// copy of the descriptor between its fork and its exec (close-on-exec closes it only then), and
/// the bind fails with EPERM until the copy is gone: retried for up to a second.
fn reopen(cfg: QueueConfig) -> Result<Queue, wfp_nfqueue::NfqError> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match Queue::open(cfg.clone()) {
            Err(wfp_nfqueue::NfqError::Config { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn config(queue_num: u16) -> QueueConfig {
    let mut config = QueueConfig::new(queue_num);
    config.recv_timeout = Some(SOCKET_TIMEOUT);
    config
}

#[test]
fn accepted_packets_arrive_and_dropped_ones_do_not() {
    in_netns("accepted_packets_arrive_and_dropped_ones_do_not", |ns| {
        const PORT: u16 = 40_001;
        const COUNT: u32 = 50;
        let rules = output_rule(ns, PORT, QueueTarget::Num(7));
        rules.install().expect("install rules");

        let mut cfg = config(7);
        cfg.flags.uid_gid = true;
        cfg.flags.conntrack = true; // dropped silently if this kernel lacks the glue
        let mut queue = Queue::open(cfg).expect("open queue");
        let rx = receiver(PORT);
        send_seqs(PORT, 0..COUNT);

        let packets = read_packets(&mut queue, COUNT as usize);
        let mut expected = BTreeSet::new();
        for packet in &packets {
            let seq = seq_of(packet);
            let verdict = if seq % 3 == 0 {
                Verdict::Drop
            } else {
                expected.insert(seq);
                Verdict::Accept
            };
            queue
                .verdict(packet.id, verdict, Some(0x100 + seq))
                .expect("verdict");
            assert_eq!(packet.hook, Hook::LocalOut);
            assert_eq!(packet.hw_protocol, 0x0800);
            assert_eq!(packet.outdev, Some(1), "lo is ifindex 1 in a fresh netns");
            assert_eq!(packet.uid, Some(0));
            assert_eq!(packet.gid, Some(0));
            assert_eq!(packet.payload.len(), 20 + 8 + 4);
        }
        queue.flush().expect("flush");
        let seqs: BTreeSet<u32> = packets.iter().map(seq_of).collect();
        assert_eq!(seqs, (0..COUNT).collect(), "every packet queued once");

        assert_eq!(drain(&rx), expected);
        let stats = queue.stats();
        assert_eq!(stats.packets, u64::from(COUNT));
        assert_eq!(stats.malformed, 0);
        assert_eq!(stats.id_gaps, 0);
        assert_eq!(stats.kernel_errors, 0);
        eprintln!(
            "flags applied: {:?}; stats: {stats:?}; recv calls for {COUNT} packets: {}",
            queue.flags(),
            stats.recv_calls
        );
        queue.close().expect("close");

        rules.remove().expect("remove rules");
        assert!(!iptables_save(ns).contains("WFP"), "rules removed");
    });
}

#[test]
fn rule_installation_is_idempotent_and_removal_is_complete() {
    in_netns("rule_installation_is_idempotent", |ns| {
        let mut rules = RuleSet::new(QueueTarget::Balance { first: 2, last: 3 });
        rules.netns = Some(ns.name().to_owned());
        rules.bypass = true;
        rules.install().expect("install");
        let first = iptables_save(ns);
        rules.install().expect("install again");
        assert_eq!(iptables_save(ns), first, "second install changes nothing");
        for (builtin, chain) in [
            ("INPUT", "WFP_IN"),
            ("OUTPUT", "WFP_OUT"),
            ("FORWARD", "WFP_FWD"),
        ] {
            let jump = format!("-A {builtin} -j {chain}");
            assert_eq!(first.matches(&jump).count(), 1, "{first}");
            assert!(first.contains(&format!(
                "-A {chain} -j NFQUEUE --queue-balance 2:3 --queue-bypass"
            )));
        }
        assert!(rules.is_installed().expect("query"));
        rules.remove().expect("remove");
        assert!(!iptables_save(ns).contains("WFP"));
        assert!(!rules.is_installed().expect("query"));
        rules.remove().expect("remove again");
    });
}

#[test]
fn fail_open_accepts_the_overflow_of_a_full_queue() {
    in_netns("fail_open_accepts_the_overflow_of_a_full_queue", |ns| {
        const PORT: u16 = 40_002;
        // Deterministic: nothing reads the queue while sending, so exactly MAX_LEN packets are
        // held and the rest overflow, synchronously, inside each send_to.
        const MAX_LEN: u32 = 4;
        const COUNT: u32 = 20;
        output_rule(ns, PORT, QueueTarget::Num(1))
            .install()
            .expect("install");
        let rx = receiver(PORT);

        // Fail-open: the overflow is accepted at once.
        let mut cfg = config(1);
        cfg.max_len = MAX_LEN;
        cfg.flags.fail_open = true;
        let mut queue = Queue::open(cfg).expect("open fail-open queue");
        send_seqs(PORT, 0..COUNT);
        assert_eq!(drain(&rx), (MAX_LEN..COUNT).collect(), "overflow accepted");
        let held = read_packets(&mut queue, MAX_LEN as usize);
        for packet in &held {
            queue
                .verdict(packet.id, Verdict::Accept, None)
                .expect("verdict");
        }
        queue.flush().expect("flush");
        assert_eq!(drain(&rx), (0..MAX_LEN).collect(), "held ones accepted");
        drop(queue);

        // Fail-closed (the default): the overflow is dropped and the kernel counts it.
        let mut cfg = config(1);
        cfg.max_len = MAX_LEN;
        let mut queue = reopen(cfg).expect("open fail-closed queue");
        send_seqs(PORT, 100..100 + COUNT);
        assert!(
            drain(&rx).is_empty(),
            "nothing passes while the queue is full"
        );
        let kstats = kernel_queue_stats().expect("kernel stats");
        let mine = kstats
            .iter()
            .find(|s| s.queue_num == 1)
            .expect("queue 1 listed");
        assert_eq!(mine.queue_dropped, COUNT - MAX_LEN);
        assert_eq!(mine.waiting, MAX_LEN);
        let held = read_packets(&mut queue, MAX_LEN as usize);
        for packet in &held {
            queue
                .verdict(packet.id, Verdict::Accept, None)
                .expect("verdict");
        }
        queue.flush().expect("flush");
        assert_eq!(drain(&rx), (100..100 + MAX_LEN).collect());
    });
}

#[test]
fn socket_overflow_is_counted_and_reading_continues() {
    in_netns("socket_overflow_is_counted_and_reading_continues", |ns| {
        const PORT: u16 = 40_005;
        const BURST: u32 = 40;
        output_rule(ns, PORT, QueueTarget::Num(4))
            .install()
            .expect("install");
        let rx = receiver(PORT);
        let mut cfg = config(4);
        // A socket buffer of a few messages: most of the burst cannot be delivered.
        cfg.recv_buffer_bytes = 4096;
        let mut queue = Queue::open(cfg).expect("open");
        send_seqs(PORT, 0..BURST);
        let dropped = kernel_queue_stats()
            .expect("kernel stats")
            .iter()
            .find(|s| s.queue_num == 4)
            .expect("queue 4 listed")
            .user_dropped;
        assert!(dropped > 0, "the burst overflowed the socket");
        let delivered = BURST - dropped;
        let first = read_packets(&mut queue, delivered as usize);
        for packet in &first {
            queue
                .verdict(packet.id, Verdict::Accept, None)
                .expect("verdict");
        }
        queue.flush().expect("flush");
        assert_eq!(
            drain(&rx),
            first.iter().map(seq_of).collect(),
            "exactly the packets read and accepted arrive"
        );
        // The next packet's id reveals how many ids were assigned but never delivered.
        send_seqs(PORT, [1000]);
        let next = read_packets(&mut queue, 1);
        queue
            .verdict(next[0].id, Verdict::Accept, None)
            .expect("verdict");
        queue.flush().expect("flush");
        assert_eq!(drain(&rx), BTreeSet::from([1000]));
        let stats = queue.stats();
        assert!(stats.enobufs >= 1, "ENOBUFS seen and survived: {stats:?}");
        assert_eq!(stats.id_gaps, u64::from(dropped));
        assert_eq!(stats.packets, u64::from(delivered) + 1);
        // The verdicts above went out as batch verdicts spanning the id gap, and decided only
        // the packets read: the kernel holds no packet whose message it failed to deliver.
        assert!(stats.coalesced >= 1, "coalesced across the gap: {stats:?}");
        assert_eq!(stats.kernel_errors, 0);
    });
}

#[test]
fn coalesced_verdicts_decide_exactly_the_packets_they_name() {
    in_netns(
        "coalesced_verdicts_decide_exactly_the_packets_they_name",
        |ns| {
            const PORT: u16 = 40_009;
            const COUNT: u32 = 60;
            let rules = output_rule(ns, PORT, QueueTarget::Num(9));
            rules.install().expect("install rules");
            let mut queue = Queue::open(config(9)).expect("open queue");
            let rx = receiver(PORT);
            send_seqs(PORT, 0..COUNT);
            let packets = read_packets(&mut queue, COUNT as usize);
            // Runs of accepts and drops, one packet held back and decided last (out of order).
            let held = packets.get(7).map(|p| p.id).expect("enough packets");
            let mut expected = BTreeSet::new();
            for packet in &packets {
                let seq = seq_of(packet);
                if packet.id == held {
                    continue;
                }
                let verdict = if (seq / 5) % 2 == 0 {
                    expected.insert(seq);
                    Verdict::Accept
                } else {
                    Verdict::Drop
                };
                queue.verdict(packet.id, verdict, Some(1)).expect("verdict");
            }
            queue.flush().expect("flush");
            assert_eq!(
                drain(&rx),
                expected,
                "the held packet is still waiting; the others as decided"
            );
            queue.verdict(held, Verdict::Accept, None).expect("verdict");
            queue.flush().expect("flush");
            let held_seq = packets.get(7).map(seq_of).expect("held");
            assert_eq!(drain(&rx), BTreeSet::from([held_seq]));
            let stats = queue.stats();
            assert!(stats.coalesced > 0, "{stats:?}");
            assert_eq!(stats.kernel_errors, 0);
            queue.close().expect("close");
            rules.remove().expect("remove rules");
        },
    );
}

#[test]
fn batch_verdict_covers_every_waiting_packet_up_to_its_id() {
    in_netns("batch_verdict_covers_every_waiting_packet", |ns| {
        const PORT: u16 = 40_003;
        output_rule(ns, PORT, QueueTarget::Num(2))
            .install()
            .expect("install");
        let rx = receiver(PORT);
        let mut queue = Queue::open(config(2)).expect("open");
        send_seqs(PORT, 0..12);
        let packets = read_packets(&mut queue, 12);
        // Decide the first packet on its own, batch-accept everything else up to the 10th:
        // safe because none of packets 2..=10 is undecided or meant for another verdict.
        let first = packets.iter().find(|p| seq_of(p) == 0).expect("seq 0");
        queue
            .verdict(first.id, Verdict::Drop, None)
            .expect("verdict");
        let tenth = packets.iter().find(|p| seq_of(p) == 9).expect("seq 9");
        queue
            .verdict_batch(tenth.id, Verdict::Accept, None)
            .expect("batch");
        queue.flush().expect("flush");
        assert_eq!(drain(&rx), (1..10).collect());
        // The last two are still waiting; decide them individually.
        for packet in packets.iter().filter(|p| seq_of(p) >= 10) {
            queue
                .verdict(packet.id, Verdict::Accept, None)
                .expect("verdict");
        }
        queue.flush().expect("flush");
        assert_eq!(drain(&rx), (10..12).collect());
        assert_eq!(queue.stats().kernel_errors, 0);
    });
}

#[test]
fn workers_on_balanced_queues_decide_everything_and_stop_cleanly() {
    in_netns("workers_on_balanced_queues", |ns| {
        const PORT: u16 = 40_004;
        const SENDERS: u32 = 8;
        const PER_SENDER: u32 = 5;
        let target = QueueTarget::Balance {
            first: 10,
            last: 11,
        };
        output_rule(ns, PORT, target).install().expect("install");
        let rx = receiver(PORT);
        let handled = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&handled);
        let workers = spawn_workers(&config(0), target.queues(), move |p: &QueuedPacket| {
            counter.fetch_add(1, Ordering::Relaxed);
            if seq_of(p) % 2 == 0 {
                Verdict::Accept
            } else {
                Verdict::Drop
            }
        })
        .expect("spawn workers");
        assert_eq!(workers.queues(), vec![10, 11]);
        for sender in 0..SENDERS {
            send_seqs(PORT, (0..PER_SENDER).map(|i| sender * PER_SENDER + i));
        }
        let expected: BTreeSet<u32> = (0..SENDERS * PER_SENDER).filter(|s| s % 2 == 0).collect();
        let mut got = BTreeSet::new();
        let end = Instant::now() + DEADLINE;
        while got.len() < expected.len() && Instant::now() < end {
            got.extend(drain(&rx));
        }
        assert_eq!(got, expected);
        let results = workers.join();
        let mut total = 0;
        for (queue, result) in results {
            let stats = result.unwrap_or_else(|e| panic!("worker {queue}: {e}"));
            total += stats.packets;
        }
        assert_eq!(total, u64::from(SENDERS * PER_SENDER));
        assert_eq!(handled.load(Ordering::Relaxed), total);
    });
}

#[test]
fn socket_owners_are_found_through_sock_diag_and_proc() {
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use wfp_nfqueue::owner::OwnerResolver;

    in_netns("socket_owners_are_found", |_ns| {
        let me = std::process::id();
        let exe = std::fs::canonicalize(std::env::current_exe().expect("exe")).expect("real");
        let mut owners = OwnerResolver::open(16).expect("open resolver");

        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let server: SocketAddr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(server).expect("connect");
        let local = client.local_addr().expect("local");
        let (_accepted, _) = listener.accept().expect("accept");

        // The client's end of the connection (an outbound flow).
        let owner = owners.lookup(6, local, server).expect("client socket");
        assert_eq!(owner.uid, 0);
        let process = owner.process.expect("process found");
        assert_eq!(process.pid, me);
        assert_eq!(process.exe.as_deref(), Some(exe.as_path()));
        // The server's end (an inbound flow), then the cache answers a repeat.
        let server_end = owners.lookup(6, server, local).expect("server socket");
        assert_eq!(server_end.process.map(|p| p.pid), Some(me));
        assert!(owners.lookup(6, local, server).is_some());
        assert!(owners.stats().cache_hits >= 1, "{:?}", owners.stats());

        // UDP: an unconnected socket bound to a port answers for any remote.
        let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
        let udp_local = udp.local_addr().expect("addr");
        let remote: SocketAddr = "127.0.0.1:53".parse().expect("addr");
        let owner = owners.lookup(17, udp_local, remote).expect("udp socket");
        assert_eq!(owner.process.map(|p| p.pid), Some(me));

        // Nothing listens here: no socket, no error.
        let nobody: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        assert!(owners.lookup(6, nobody, server).is_none());
        assert_eq!(owners.stats().errors, 0, "{:?}", owners.stats());
    });
}

#[test]
fn a_verdict_sender_on_another_thread_decides_waiting_packets() {
    in_netns("a_verdict_sender_on_another_thread", |ns| {
        const PORT: u16 = 40_006;
        output_rule(ns, PORT, QueueTarget::Num(5))
            .install()
            .expect("install");
        let rx = receiver(PORT);
        let queue = Queue::open(config(5)).expect("open");
        let sender = queue.verdict_sender().expect("sender");
        send_seqs(PORT, 0..6);
        let id_sequence = kernel_queue_stats()
            .expect("kernel stats")
            .iter()
            .find(|s| s.queue_num == 5)
            .expect("queue 5 listed")
            .id_sequence;
        // Nobody reads the queue; another thread accepts everything waiting in one batch.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                sender
                    .verdict_batch(wfp_nfqueue::PacketId(id_sequence), Verdict::Accept, None)
                    .expect("batch verdict");
            });
        });
        assert_eq!(drain(&rx), (0..6).collect());
        drop(queue);
    });
}
