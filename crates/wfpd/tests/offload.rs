//! Flow offload on a real kernel (issue 16, `docs/offload.md`).
//!
//! Each test creates its own network namespace (`offload-<pid>-<n>`, deleted also when the test
//! panics), enters it on a fresh thread, and runs the daemon in-process there (queues, rules and
//! conntrack are per namespace). Traffic is TCP or UDP over `lo` (IPv4 127.0.0.1 and IPv6 ::1)
//! inside the namespace only. Every socket has a timeout and every loop a deadline; transfers are
//! bounded (tens of MB over loopback, a second or two).
//!
//! Skipped, with a printed reason, unless running as root with `ip` and `iptables`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wfp_nfqueue::conntrack::{ConntrackSocket, CtTuple};
use wfp_nfqueue::offload::{CtDir, Epoch, OffloadMarks, Slot, SlotHook};
use wfp_nfqueue::TempNetns;
use wfpd::{Config, Daemon};

const SOCKET_TIMEOUT: Duration = Duration::from_millis(300);
const DEADLINE: Duration = Duration::from_secs(10);
const MB: usize = 1 << 20;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn skip_reason() -> Option<String> {
    match std::fs::metadata("/proc/self") {
        Ok(meta) if meta.uid() == 0 => {}
        _ => return Some("not running as root".to_owned()),
    }
    for (program, arg) in [("ip", "-V"), ("iptables", "-V"), ("ip6tables", "-V")] {
        match Command::new(program).arg(arg).output() {
            Ok(out) if out.status.success() => {}
            _ => return Some(format!("`{program}` is not available")),
        }
    }
    None
}

/// Runs `body` on a thread inside a fresh namespace (deleted afterwards, also on panic).
fn in_netns(test: &str, body: impl FnOnce(&TempNetns) + Send) {
    if let Some(reason) = skip_reason() {
        eprintln!("skipping {test}: {reason}");
        return;
    }
    let _serial = serial();
    let ns = TempNetns::create("offload").expect("netns");
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

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wfpoff-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a `/proc/sys/net/netfilter` setting of the calling thread's namespace.
fn sysctl(name: &str, value: &str) {
    std::fs::write(format!("/proc/sys/net/netfilter/{name}"), value)
        .unwrap_or_else(|e| panic!("sysctl {name}: {e}"));
}

/// The daemon with `policy`, IPv4+IPv6 loopback hooks and offload on (mask 0x00ff0000).
fn daemon(dir: &TempDir, policy: &str) -> Daemon {
    daemon_with(dir, policy, "")
}

/// [`daemon`], with `extra` appended to its configuration.
fn daemon_with(dir: &TempDir, policy: &str, extra: &str) -> Daemon {
    let policy = dir.write("policy.toml", policy);
    let config = format!(
        r#"
[policy]
files = ["{}"]

[rules]
ipv6 = true
hooks = [ {{ hook = "OUTPUT", matches = ["-o", "lo"] }}, {{ hook = "INPUT", matches = ["-i", "lo"] }} ]

[identity]
resolve = false

[offload]
enabled = true
{extra}
"#,
        policy.display()
    );
    dir.write("config.toml", &config);
    let config = Config::parse(&config, "test").expect("config");
    let d = Daemon::start(config).expect("start");
    // Accounting (byte counts in destroy events) and short TIME_WAIT, per namespace.
    sysctl("nf_conntrack_acct", "1");
    sysctl("nf_conntrack_tcp_timeout_time_wait", "1");
    d
}

const PERMIT_ALL: &str = r#"
[[filter]]
name = "permit connects"
layer = "ALE_AUTH_CONNECT_V4"
action = "PERMIT"
"#;

fn block_port(port: u16) -> String {
    format!(
        r#"
[[filter]]
name = "block v4"
layer = "ALE_AUTH_CONNECT_V4"
action = "BLOCK"
condition = [ {{ field = "IP_REMOTE_PORT", value = {port} }} ]

[[filter]]
name = "block v6"
layer = "ALE_AUTH_CONNECT_V6"
action = "BLOCK"
condition = [ {{ field = "IP_REMOTE_PORT", value = {port} }} ]
"#
    )
}

/// A TCP server that accepts one connection, optionally says `hello` first, and counts what it
/// reads until EOF, an error or three quiet seconds (a daemon restart takes a moment).
struct Sink {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn start(ip: IpAddr, hello: bool) -> Self {
        let listener = TcpListener::bind((ip, 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&received);
        let thread = std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            if hello {
                let _ = s.write_all(b"hello, not TLS\n");
            }
            let mut buf = vec![0u8; 256 * 1024];
            let end = Instant::now() + Duration::from_secs(30);
            while Instant::now() < end {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        count.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        });
        Self {
            addr,
            received,
            thread: Some(thread),
        }
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn client(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT * 3).expect("connect");
    c.set_write_timeout(Some(SOCKET_TIMEOUT)).expect("timeout");
    c.set_read_timeout(Some(SOCKET_TIMEOUT)).expect("timeout");
    c
}

/// Writes `total` bytes (1 MiB writes); the bytes written before a write failed or timed out.
fn send(c: &mut TcpStream, total: usize) -> usize {
    let chunk = vec![b'x'; MB];
    let mut sent = 0;
    while sent < total {
        match c.write(&chunk[..MB.min(total - sent)]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    sent
}

/// A TCP transfer from a client to a [`Sink`], offloaded: its first 2 MiB are queued (the
/// handshake, the authorization), then `bulk` more bytes go through with fewer than 40 packets
/// queued, i.e. the kernel carries them.
struct Transfer {
    sink: Sink,
    client: TcpStream,
    local: SocketAddr,
}

impl Transfer {
    fn offloaded(d: &Daemon, ip: IpAddr, bulk: usize) -> Self {
        let sink = Sink::start(ip, false);
        let mut client = client(sink.addr);
        let local = client.local_addr().expect("local");
        assert_eq!(send(&mut client, 2 * MB), 2 * MB, "{ip}: warm-up");
        let queued = d.packets_decided();
        assert_eq!(send(&mut client, bulk), bulk, "{ip}: bulk");
        let during = d.packets_decided() - queued;
        assert!(
            during < 40,
            "{ip}: {during} packets of an offloaded {bulk}-byte transfer were queued"
        );
        Self {
            sink,
            client,
            local,
        }
    }

    /// After `what` (a blocking commit, an abort): the next 40 MiB cannot be sent, and at most
    /// what was in flight (socket buffers) arrives; then nothing more.
    fn assert_stopped(&mut self, ip: IpAddr, what: &str) {
        let before = self.sink.received();
        let after = send(&mut self.client, 40 * MB);
        assert!(after < 40 * MB, "{ip}: the transfer went on after {what}");
        std::thread::sleep(Duration::from_millis(500));
        let settled = self.sink.received();
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(self.sink.received(), settled, "{ip}: bytes still arrive");
        assert!(
            settled - before < 8 * MB as u64,
            "{ip}: {} bytes arrived after {what}",
            settled - before
        );
    }

    fn finish(self) {
        drop(self.client);
        self.sink.join();
    }
}

/// Waits until `cond` holds (bounded by `DEADLINE`), calling the daemon's tick.
fn wait(d: &mut Daemon, mut cond: impl FnMut(&mut Daemon) -> bool) -> bool {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        let _ = d.tick();
        if cond(d) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

const LOCALHOSTS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

#[test]
fn an_offloaded_tcp_transfer_is_blocked_mid_stream_after_a_policy_change() {
    in_netns("offloaded_transfer_blocked", |_| {
        for ip in LOCALHOSTS {
            let dir = TempDir::new();
            let mut d = daemon(&dir, PERMIT_ALL);
            let mut t = Transfer::offloaded(&d, ip, 40 * MB);
            let shared = Arc::clone(d.offload().expect("offload").shared());
            let stats = &shared.stats;
            assert!(stats.marked.load(Ordering::Relaxed) > 0);
            assert!(
                stats.ct_updates.load(Ordering::Relaxed) > 0,
                "set by the worker"
            );
            assert_one_base_chain_per_hook();

            // A commit that blocks the connection: revoked before reload returns, the next
            // segment is queued, reauthorized (POLICY_CHANGE) and blocked.
            dir.write("policy.toml", &block_port(t.sink.addr.port()));
            d.reload().expect("reload");
            assert_eq!(stats.revocations.load(Ordering::Relaxed), 1);
            t.assert_stopped(ip, "the blocking commit");
            assert!(d.stats().queues.iter().map(|q| q.blocked).sum::<u64>() > 0);
            t.finish();
            d.shutdown().expect("shutdown");
        }
    });
}

const FLOW_LOGGER: &str = r#"
[[filter]]
name = "log flows v4"
layer = "ALE_FLOW_ESTABLISHED_V4"
action = "CALLOUT_INSPECTION"
callout = "wfp.flow-logger"

[[filter]]
name = "log flows v6"
layer = "ALE_FLOW_ESTABLISHED_V6"
action = "CALLOUT_INSPECTION"
callout = "wfp.flow-logger"
"#;

#[test]
fn flow_delete_runs_once_for_an_offloaded_flow_with_the_kernel_byte_count() {
    in_netns("offloaded_flow_delete", |_| {
        for ip in LOCALHOSTS {
            let dir = TempDir::new();
            let mut d = daemon(&dir, FLOW_LOGGER);
            let sink = Sink::start(ip, false);
            let mut c = client(sink.addr);
            const TOTAL: usize = 16 * MB;
            assert_eq!(send(&mut c, TOTAL), TOTAL);
            let _ = c.shutdown(std::net::Shutdown::Both);
            drop(c);
            sink.join();
            let shared = Arc::clone(d.offload().expect("offload").shared());
            let stats = &shared.stats;
            // A loopback connection is two flows (the client's and the server's): each ends
            // once, from the conntrack destroy event after TIME_WAIT (1 s here).
            assert!(
                wait(&mut d, |d| d.offload().is_some_and(|o| o
                    .stats()
                    .flows_ended
                    .load(Ordering::Relaxed)
                    >= 2)),
                "{ip}: the offloaded flows did not end"
            );
            std::thread::sleep(Duration::from_millis(300));
            let _ = d.tick();
            assert_eq!(stats.flows_ended.load(Ordering::Relaxed), 2, "{ip}");
            let bytes = stats.ended_bytes.load(Ordering::Relaxed);
            // Both flows count the connection's bytes: payload plus headers, both directions.
            let payload = 2 * TOTAL as u64;
            assert!(
                bytes >= payload && bytes < payload + payload / 20,
                "{ip}: {bytes} bytes for {payload} payload bytes"
            );
            assert!(stats.carried_packets.load(Ordering::Relaxed) > 100, "{ip}");
            let snapshot = d.shutdown().expect("shutdown");
            // flowDeleteFn of the flow logger: one record per flow, exactly.
            assert_eq!(snapshot.flow_records, 2, "{ip}");
        }
    });
}

fn sni_policy() -> String {
    let mut p = String::new();
    for v in ["V4", "V6"] {
        p += &format!(
            r#"
[[callout]]
name = "sni {v}"
layer = "STREAM_{v}"
builtin = "wfp.tls-sni-blocker"
params = {{ name = "blocked.example" }}

[[filter]]
name = "sni {v}"
layer = "STREAM_{v}"
action = "CALLOUT_UNKNOWN"
callout = "sni {v}"
"#
        );
    }
    p
}

#[test]
fn a_flow_whose_stream_callout_allows_the_connection_is_offloaded_from_that_point() {
    in_netns("stream_allow_offload", |_| {
        for ip in LOCALHOSTS {
            let dir = TempDir::new();
            let d = daemon(&dir, &sni_policy());
            // The server speaks first (not TLS: the callout allows that direction), then the
            // client's first bytes (not TLS either) are allowed too.
            let sink = Sink::start(ip, true);
            let mut c = client(sink.addr);
            let mut hello = [0u8; 15];
            c.read_exact(&mut hello).expect("hello");
            assert_eq!(send(&mut c, 2 * MB), 2 * MB);
            let queued = d.packets_decided();
            assert_eq!(send(&mut c, 40 * MB), 40 * MB);
            let during = d.packets_decided() - queued;
            assert!(
                during < 40,
                "{ip}: {during} packets queued after ALLOW_CONNECTION"
            );
            drop(c);
            sink.join();
            d.shutdown().expect("shutdown");
        }
    });
}

/// Runs an iptables command in the calling thread's namespace.
fn ipt(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(["-w", "5"])
        .args(args)
        .output()
        .expect("iptables");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The offload test sits in iptables' own `filter` chains (one base chain per hook for an
/// offloaded packet, docs/offload.md): the epoch rule of each hook, no table of wfpd's own, no
/// save rule in `security`.
fn assert_rules_in_filter(program: &str) {
    for x in ["IN", "OUT"] {
        let listing = ipt(program, &["-S", &format!("WFP_OEP_{x}")]);
        assert!(
            listing.contains(&format!("-m mark --mark 0x100000/0xf00000 -g WFP_OOK_{x}")),
            "{listing}"
        );
    }
    let security = ipt(program, &["-t", "security", "-S"]);
    assert!(!security.contains("WFP_OSV"), "{security}");
    if let Ok(out) = Command::new("nft").args(["list", "tables"]).output() {
        let tables = String::from_utf8_lossy(&out.stdout);
        assert!(!tables.contains("WFP_OFFLOAD"), "{tables}");
    }
}

/// With the default (fail-closed) postures, an offloaded packet crosses one nf_tables base chain
/// per hook: iptables' `filter` INPUT and OUTPUT, which hold the offload test and the queue jump
/// (docs/offload.md) — no `security` accounting chain, no table of wfpd's own.
fn assert_one_base_chain_per_hook() {
    let Ok(out) = Command::new("nft").args(["list", "ruleset"]).output() else {
        println!("nft not installed: base chains not counted");
        return;
    };
    let ruleset = String::from_utf8_lossy(&out.stdout);
    for hook in ["input", "output"] {
        let chains = ruleset
            .lines()
            .filter(|l| l.contains(&format!("hook {hook} ")))
            .count();
        let families = ["table ip filter", "table ip6 filter"]
            .iter()
            .filter(|t| ruleset.contains(*t))
            .count();
        assert_eq!(
            chains, families,
            "one base chain per family at {hook}:\n{ruleset}"
        );
    }
}

/// The packet counter of the `nth` rule from the end of `chain` in `table` (`-S -v`
/// `-c PACKETS BYTES`; 0: the last).
fn counter_from_end(program: &str, table: &str, chain: &str, nth: usize) -> u64 {
    let listing = ipt(program, &["-t", table, "-S", chain, "-v"]);
    let line = listing
        .lines()
        .filter(|l| l.starts_with("-A "))
        .rev()
        .nth(nth)
        .unwrap_or_else(|| panic!("rule {nth} from the end of {chain}: {listing}"))
        .to_owned();
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().rposition(|w| *w == "-c").expect("counter");
    words[at + 1].parse().expect("number")
}

#[test]
fn marks_of_other_software_outside_the_mask_survive() {
    in_netns("foreign_marks_survive", |_| {
        for (ip, program) in [
            (IpAddr::V4(Ipv4Addr::LOCALHOST), "iptables"),
            (IpAddr::V6(Ipv6Addr::LOCALHOST), "ip6tables"),
        ] {
            let dir = TempDir::new();
            let d = daemon(&dir, PERMIT_ALL);
            assert_rules_in_filter(program);
            // Other software: a packet-mark bit and a connection-mark bit outside 0x00ff0000.
            ipt(
                program,
                &[
                    "-t",
                    "mangle",
                    "-A",
                    "OUTPUT",
                    "-o",
                    "lo",
                    "-p",
                    "tcp",
                    "-j",
                    "MARK",
                    "--set-xmark",
                    "0x100/0x100",
                ],
            );
            ipt(
                program,
                &[
                    "-t",
                    "mangle",
                    "-A",
                    "OUTPUT",
                    "-o",
                    "lo",
                    "-p",
                    "tcp",
                    "-j",
                    "CONNMARK",
                    "--set-xmark",
                    "0x10000000/0x10000000",
                ],
            );
            // Counters in `security` (after `filter`): all TCP packets, and those with both
            // foreign bits and a current offload epoch (the connection's field is set by the
            // worker through conntrack, within the mask).
            ipt(
                program,
                &["-t", "security", "-A", "OUTPUT", "-o", "lo", "-p", "tcp"],
            );
            ipt(
                program,
                &[
                    "-t",
                    "security",
                    "-A",
                    "OUTPUT",
                    "-o",
                    "lo",
                    "-p",
                    "tcp",
                    "-m",
                    "mark",
                    "--mark",
                    "0x100/0x100",
                    "-m",
                    "connmark",
                    "--mark",
                    "0x10100000/0x10f00000",
                ],
            );
            let sink = Sink::start(ip, false);
            let mut c = client(sink.addr);
            assert_eq!(send(&mut c, 2 * MB), 2 * MB);
            let queued = d.packets_decided();
            assert_eq!(send(&mut c, 20 * MB), 20 * MB);
            assert!(d.packets_decided() - queued < 40, "{ip}: offloaded");
            drop(c);
            sink.join();
            // The two counters are the last rules of OUTPUT.
            let all = counter_from_end(program, "security", "OUTPUT", 1);
            let kept = counter_from_end(program, "security", "OUTPUT", 0);
            assert!(all > 100, "{ip}: {all} packets");
            // Every packet after the connection's offload keeps both foreign bits beside the
            // epoch; those before it (the handshake, the packets queued until the first
            // eligible packet's verdict went out) were queued.
            let queued = d.packets_decided();
            assert!(
                kept + queued >= all && kept > 100,
                "{ip}: {kept} of {all}, {queued} queued"
            );
            d.shutdown().expect("shutdown");
        }
    });
}

#[test]
fn revoking_ten_thousand_offloaded_flows_queues_the_first_packet_of_each() {
    in_netns("revoke_10k", |_| {
        const FLOWS: u16 = 10_000;
        const FIRST_PORT: u16 = 20_000;
        const DPORT: u16 = 9;
        let dir = TempDir::new();
        let mut d = daemon(&dir, PERMIT_ALL);
        let sink = UdpSocket::bind(("127.0.0.1", DPORT)).expect("sink");
        sink.set_read_timeout(Some(SOCKET_TIMEOUT))
            .expect("timeout");
        // 10,000 UDP connections, offloaded under epoch 1 in both loopback slots (created with
        // conntrack netlink: the marks a worker would have saved).
        let marks = OffloadMarks::default();
        let out = Slot {
            dir: CtDir::Original,
            hook: SlotHook::Output,
        };
        let inn = Slot {
            dir: CtDir::Original,
            hook: SlotHook::Input,
        };
        let mark = marks.mark(marks.mark(0, Epoch(1), out), Epoch(1), inn);
        let mut ct = ConntrackSocket::open().expect("conntrack");
        for i in 0..FLOWS {
            let t = CtTuple {
                protocol: 17,
                src: IpAddr::V4(Ipv4Addr::LOCALHOST),
                dst: IpAddr::V4(Ipv4Addr::LOCALHOST),
                sport: FIRST_PORT + i,
                dport: DPORT,
            };
            ct.create(&t, mark, Duration::from_secs(120))
                .expect("create");
        }
        let send_all = || {
            for i in 0..FLOWS {
                let s = UdpSocket::bind(("127.0.0.1", FIRST_PORT + i)).expect("bind");
                s.send_to(b"x", ("127.0.0.1", DPORT)).expect("send");
            }
        };
        let drain = || {
            let mut buf = [0u8; 8];
            let mut n = 0u32;
            while sink.recv(&mut buf).is_ok() {
                n += 1;
            }
            n
        };
        let start = d.packets_decided();
        send_all();
        std::thread::sleep(Duration::from_millis(300));
        let _ = drain();
        let offloaded = d.packets_decided() - start;
        assert_eq!(offloaded, 0, "no packet of an offloaded flow was queued");
        // A blocking commit (another port): every offload is revoked by one rule update.
        dir.write("policy.toml", &block_port(1));
        d.reload().expect("reload");
        let took = d
            .offload()
            .expect("offload")
            .stats()
            .last_revocation_us
            .load(Ordering::Relaxed);
        eprintln!("revocation of {FLOWS} offloaded flows: rule switch {took} us");
        let before = d.packets_decided();
        // Paced in batches so that the queue (max_len) never overflows: each datagram is
        // queued twice on loopback (OUTPUT, then INPUT).
        for batch in 0..FLOWS / 250 {
            for i in batch * 250..(batch + 1) * 250 {
                let s = UdpSocket::bind(("127.0.0.1", FIRST_PORT + i)).expect("bind");
                s.send_to(b"x", ("127.0.0.1", DPORT)).expect("send");
            }
            let sent = 2 * u64::from((batch + 1) * 250);
            wait(&mut d, |d| d.packets_decided() - before >= sent);
            let _ = drain();
        }
        let want = 2 * u64::from(FLOWS);
        std::thread::sleep(Duration::from_millis(200));
        let _ = drain();
        let queued = d.packets_decided() - before;
        assert_eq!(queued, want, "the first packet of each was queued");
        d.shutdown().expect("shutdown");
    });
}

#[test]
fn a_restart_under_a_blocking_policy_requeues_and_blocks_offloaded_connections() {
    in_netns("restart_requeues", |_| {
        for ip in LOCALHOSTS {
            let dir = TempDir::new();
            let d = daemon(&dir, PERMIT_ALL);
            let sink = Sink::start(ip, false);
            let mut c = client(sink.addr);
            assert_eq!(send(&mut c, 2 * MB), 2 * MB);
            let queued = d.packets_decided();
            assert_eq!(send(&mut c, 20 * MB), 20 * MB, "{ip}: offloaded");
            assert!(d.packets_decided() - queued < 40, "{ip}: offloaded");
            // Stop (rules removed: the connection goes on without wfpd), then start again under a
            // policy that blocks it: its marks are cleared at start, so its next segment is
            // queued, picked up mid-stream, authorized (MID_STREAM_INSPECTION) and blocked.
            d.shutdown().expect("shutdown");
            // (Segments in flight at the stop were dropped with the queue: TCP retransmits, with
            // exponential backoff — up to 30 s on a loaded machine.)
            let mut sent = 0;
            let deadline = Instant::now() + Duration::from_secs(30);
            while sent < 4 * MB && Instant::now() < deadline {
                sent += send(&mut c, 4 * MB - sent);
            }
            assert_eq!(sent, 4 * MB, "{ip}: no rules while stopped");
            dir.write("policy.toml", &block_port(sink.addr.port()));
            let mut d = Daemon::start(
                Config::parse(
                    &std::fs::read_to_string(dir.0.join("config.toml")).expect("config"),
                    "test",
                )
                .expect("config"),
            )
            .expect("restart");
            let before = d.packets_decided();
            let after = send(&mut c, 40 * MB);
            assert!(
                after < 40 * MB,
                "{ip}: the connection went on after the restart"
            );
            assert!(
                d.packets_decided() > before,
                "{ip}: its packets were queued again"
            );
            let _ = d.tick();
            drop(c);
            sink.join();
            d.shutdown().expect("shutdown");
        }
    });
}

/// A blocking filter at the connect layer of `ip`'s family for remote `port`, as an API client
/// sends it.
fn connect_block(ip: IpAddr, port: u16) -> wfp_api::FilterDto {
    let layer = match ip {
        IpAddr::V4(_) => "ALE_AUTH_CONNECT_V4",
        IpAddr::V6(_) => "ALE_AUTH_CONNECT_V6",
    };
    wfp_api::FilterDto {
        key: None,
        name: "api block".into(),
        description: String::new(),
        flags: Vec::new(),
        provider: None,
        layer: layer.into(),
        sublayer: None,
        weight: wfp_api::WeightDto::Auto,
        conditions: vec![wfp_api::ConditionDto {
            field: "IP_REMOTE_PORT".into(),
            match_type: "EQUAL".into(),
            value: wfp_api::ValueDto::Uint16 { value: port },
        }],
        action: "BLOCK".into(),
        callout: None,
        raw_context: 0,
        provider_context: None,
    }
}

/// Issue 16 (o16b): a commit made through the management API socket (`wfp_api::Client`; no
/// reload, no daemon tick) revokes the offloaded flows before it
/// returns, so the very next segment of the offloaded connection is queued and blocked.
#[test]
fn an_api_commit_revokes_offloaded_flows_before_it_returns_o16b() {
    if let Some(reason) = skip_reason() {
        eprintln!(
            "skipping an_api_commit_revokes_offloaded_flows_before_it_returns_o16b: {reason}"
        );
        return;
    }
    let _serial = serial();
    // The namespace name carries this helper's name and the pid (TempNetns adds pid and counter).
    let ns = TempNetns::create("offload-o16b").expect("netns");
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter().expect("enter netns");
                api_commit_body();
            })
            .join()
    });
    drop(ns);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn api_commit_body() {
    for ip in LOCALHOSTS {
        let dir = TempDir::new();
        let mut d = daemon(&dir, PERMIT_ALL);
        let mut t = Transfer::offloaded(&d, ip, 40 * MB);
        let shared = Arc::clone(d.offload().expect("offload").shared());
        let stats = &shared.stats;
        assert!(
            stats.marked.load(Ordering::Relaxed) > 0,
            "{ip}: nothing marked"
        );
        let revoked = stats.revocations.load(Ordering::Relaxed);

        // The commit through the socket, and no tick after it: the revocation happened inside
        // it, before the reply.
        let mut config = wfpd::api::ApiConfig::default();
        config.socket = Some(dir.0.join("api.sock"));
        config.request_timeout_ms = 2000;
        let server = wfpd::api::Server::start(Arc::clone(d.engine()), None, config).expect("api");
        let mut api = wfp_api::Client::connect(server.path()).expect("api client");
        api.add_filter(&connect_block(ip, t.sink.addr.port()))
            .expect("add filter");
        assert_eq!(
            stats.revocations.load(Ordering::Relaxed),
            revoked + 1,
            "{ip}: the commit returned before revoking"
        );
        t.assert_stopped(ip, "the blocking commit");
        assert!(d.stats().queues.iter().map(|q| q.blocked).sum::<u64>() > 0);
        drop((api, server));
        t.finish();
        d.shutdown().expect("shutdown");
    }
}

/// The client's flow (the outbound-initiated one, from `local` to the sink) in `/v1/flows`.
fn client_flow(
    api: &mut wfp_api::Client,
    local: SocketAddr,
    sink: SocketAddr,
) -> Option<wfp_api::FlowDto> {
    let flows: Vec<wfp_api::FlowDto> = api.flows().ok()?;
    flows.into_iter().find(|f| {
        f.direction == "outbound"
            && f.local_port == local.port()
            && f.remote_port == sink.port()
            && f.remote_addr == sink.ip()
    })
}

/// Issue 16: while an offloaded connection is still open, `/v1/flows` lists the bytes the
/// kernel carried for it (conntrack accounting, refreshed by the daemon's tick), not only the
/// few packets the shim classified.
#[test]
fn an_open_offloaded_flow_lists_the_kernel_bytes_before_it_closes() {
    in_netns("offloaded_counts_open", |_| {
        for ip in LOCALHOSTS {
            let dir = TempDir::new();
            let socket = dir.0.join("api.sock");
            let extra = format!("\n[api]\nsocket = {:?}\n", socket.display().to_string());
            let mut d = daemon_with(&dir, PERMIT_ALL, &extra);
            let sink = Sink::start(ip, false);
            let mut c = client(sink.addr);
            let local = c.local_addr().expect("local");
            const TOTAL: usize = 24 * MB;
            assert_eq!(send(&mut c, TOTAL), TOTAL, "{ip}: transfer");
            let queued = d.packets_decided();
            assert!(queued < 200, "{ip}: {queued} packets queued: not offloaded");
            let mut api = wfp_api::Client::connect(&socket).expect("api client");
            let mut last = None;
            let listed = wait(&mut d, |_| {
                last = client_flow(&mut api, local, sink.addr);
                last.as_ref().is_some_and(|f| f.bytes_out >= TOTAL as u64)
            });
            assert!(listed, "{ip}: the open flow lists {last:?}");
            let f = last.expect("flow");
            assert_eq!(f.state, "established", "{ip}: still open");
            assert!(f.packets_out > queued, "{ip}: {f:?}");
            // Payload plus headers: not more than a few percent above what was sent.
            assert!(
                f.bytes_out < TOTAL as u64 + TOTAL as u64 / 20,
                "{ip}: {f:?}"
            );
            let refreshed = d.offload().expect("offload").stats();
            assert!(refreshed.counts_refreshed.load(Ordering::Relaxed) > 0);
            drop((c, api));
            sink.join();
            d.shutdown().expect("shutdown");
        }
    });
}

/// Issue 16: `FwpsFlowAbort0` from outside classifyFn (here the management side calls
/// `Engine::flow_abort` on the client's flow while its transfer is offloaded) takes effect on
/// the connection's next packet, not at the next revocation: the worker clears that one
/// connection's offload bits through conntrack, the next segment is queued and blocked.
#[test]
fn an_abort_from_outside_classify_stops_an_offloaded_transfer() {
    in_netns("offloaded_abort", |_| {
        for ip in LOCALHOSTS {
            let dir = TempDir::new();
            let socket = dir.0.join("api.sock");
            let extra = format!("\n[api]\nsocket = {:?}\n", socket.display().to_string());
            let mut d = daemon_with(&dir, PERMIT_ALL, &extra);
            let mut t = Transfer::offloaded(&d, ip, 24 * MB);
            let (local, sink_addr) = (t.local, t.sink.addr);
            let mut api = wfp_api::Client::connect(&socket).expect("api client");
            let mut flow = None;
            assert!(
                wait(&mut d, |_| {
                    flow = client_flow(&mut api, local, sink_addr);
                    flow.is_some()
                }),
                "{ip}: the client's flow is not listed"
            );
            let flow = flow.expect("flow").flow;
            let shared = Arc::clone(d.offload().expect("offload").shared());
            let stats = &shared.stats;
            let revocations = stats.revocations.load(Ordering::Relaxed);
            d.engine().flow_abort(flow);
            // The worker applies the abort at its next asynchronous step (a timer or a batch).
            assert!(
                wait(&mut d, |_| stats.withdrawn.load(Ordering::Relaxed) >= 1),
                "{ip}: the offload was not withdrawn"
            );
            assert_eq!(stats.withdraw_failed.load(Ordering::Relaxed), 0, "{ip}");
            t.assert_stopped(ip, "the abort");
            assert_eq!(
                stats.revocations.load(Ordering::Relaxed),
                revocations,
                "{ip}: no revocation was needed"
            );
            assert!(d.stats().queues.iter().map(|q| q.blocked).sum::<u64>() > 0);
            drop(api);
            t.finish();
            d.shutdown().expect("shutdown");
        }
    });
}
