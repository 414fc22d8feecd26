//! Target B4: NFQUEUE end to end in a private network namespace on loopback — packets/s through
//! wfpd versus a bare accept-all NFQUEUE reader and versus no queue, in the same run; 64-byte UDP
//! and bulk TCP; wfpd with a 10-filter and a 10k-filter policy.
//!
//! Cases (each with the same traffic, one after the other in one namespace):
//! * `no queue` — no rule.
//! * `bare reader` — `wfp_nfqueue::spawn_workers` with an accept-all handler and per-packet
//!   verdicts, rules `OUTPUT -o lo` and `INPUT -i lo` to queue 0 (the B4 reference).
//! * `wfpd N filters` — the daemon in-process (`wfpd::Daemon::start`, the same code as the
//!   binary: its own rules — the same two hooks — with the accounting mark, one worker, the shim
//!   and engine, identity lookups for new flows) with a policy of N filters spread over the
//!   layers the traffic crosses (none of them matching it, so every layer is searched in full).
//!
//! Traffic:
//! * UDP: 64-byte datagrams, closed loop (a window of 64 sent, then received), one flow.
//! * TCP: one connection, 64 KiB writes, the receiver counts bytes. Ratios use bytes/s; packets/s
//!   is what the queue saw (both hooks, both directions).
//!
//! Each case runs `WFP_BENCH_SECS` seconds (default 2) per traffic kind after a warm-up;
//! `WFP_BENCH_LOG=1` shows wfpd's debug log on stderr. Needs
//! root, `ip` and `iptables`; otherwise prints why it skipped. Run:
//! `cargo bench -p wfpd --bench b4` (release profile).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wfp_nfqueue::rules::{ChainHook, HookRule, QueueTarget, RuleSet};
use wfp_nfqueue::{spawn_workers, QueueConfig, QueuedPacket, TempNetns, Verdict};
use wfpd::{Config, Daemon};

const UDP_PORT: u16 = 40_200;
const TCP_PORT: u16 = 40_201;
const PAYLOAD: usize = 64;
const WINDOW: usize = 64;

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

/// Datagrams delivered per second, closed loop.
fn udp_pps(tx: &UdpSocket, rx: &UdpSocket, duration: Duration) -> f64 {
    let run = |duration: Duration| {
        let payload = [0x5au8; PAYLOAD];
        let mut buf = [0u8; 2048];
        let mut delivered = 0u64;
        let start = Instant::now();
        while start.elapsed() < duration {
            let mut sent = 0;
            for _ in 0..WINDOW {
                if tx.send(&payload).is_ok() {
                    sent += 1;
                }
            }
            for _ in 0..sent {
                if rx.recv(&mut buf).is_err() {
                    break;
                }
                delivered += 1;
            }
        }
        delivered as f64 / start.elapsed().as_secs_f64()
    };
    let _ = run(Duration::from_millis(200));
    run(duration)
}

/// Bytes per second over one TCP connection.
fn tcp_bps(received: &AtomicU64, duration: Duration) -> f64 {
    let mut stream = TcpStream::connect(("127.0.0.1", TCP_PORT)).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let chunk = vec![0xa5u8; 64 << 10];
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let before = received.load(Ordering::Relaxed);
    let start = Instant::now();
    while start.elapsed() < duration {
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = received.load(Ordering::Relaxed);
    drop(stream);
    after.saturating_sub(before) as f64 / elapsed
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

struct Row {
    name: String,
    udp_pps: f64,
    tcp_bps: f64,
    tcp_pps: Option<f64>,
}

fn main() {
    if let Some(reason) = skip_reason() {
        println!("b4: skipped ({reason})");
        return;
    }
    let secs = std::env::var("WFP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s <= 60.0)
        .unwrap_or(2.0);
    let duration = Duration::from_secs_f64(secs);
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

    let rx = UdpSocket::bind(("127.0.0.1", UDP_PORT)).expect("bind receiver");
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    tx.connect(("127.0.0.1", UDP_PORT)).expect("connect");
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let sink = tcp_sink(Arc::clone(&stop), Arc::clone(&received));

    println!(
        "B4: loopback in netns {}, {secs} s per case and traffic kind; UDP {PAYLOAD}-byte \
         closed loop (window {WINDOW}); TCP one connection, 64 KiB writes",
        ns.name()
    );
    let mut rows = Vec::new();

    rows.push(Row {
        name: "no queue".to_owned(),
        udp_pps: udp_pps(&tx, &rx, duration),
        tcp_bps: tcp_bps(&received, duration),
        tcp_pps: None,
    });

    // The bare accept-all reader on the same hooks.
    let mut rules = RuleSet::new(QueueTarget::Num(0));
    rules.hooks = vec![
        HookRule::new(ChainHook::Output, &["-o", "lo"]),
        HookRule::new(ChainHook::Input, &["-i", "lo"]),
    ];
    rules.clamp_mss = Some(65000); // as wfpd does: every segment fits NFQUEUE's copy
    rules.install().expect("install rules");
    let handled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&handled);
    let workers = spawn_workers(&QueueConfig::new(0), [0], move |_: &QueuedPacket| {
        counter.fetch_add(1, Ordering::Relaxed);
        Verdict::Accept
    })
    .expect("spawn reader");
    let udp = udp_pps(&tx, &rx, duration);
    let before = handled.load(Ordering::Relaxed);
    let start = Instant::now();
    let tcp = tcp_bps(&received, duration);
    let tcp_elapsed = start.elapsed().as_secs_f64();
    let after = handled.load(Ordering::Relaxed);
    drop(workers.join());
    rules.remove().expect("remove rules");
    rows.push(Row {
        name: "bare reader".to_owned(),
        udp_pps: udp,
        tcp_bps: tcp,
        tcp_pps: Some(after.saturating_sub(before) as f64 / tcp_elapsed.max(1e-9)),
    });

    for n in [10usize, 10_000] {
        let policy_path = dir.join(format!("policy-{n}.toml"));
        std::fs::write(&policy_path, policy(n)).expect("policy");
        let config_text = format!(
            "[policy]\nfiles = [{:?}]\n\n[rules]\nhooks = [ {{ hook = \"OUTPUT\", matches = [\"-o\", \"lo\"] }}, {{ hook = \"INPUT\", matches = [\"-i\", \"lo\"] }} ]\n\n[stats]\ninterval_secs = 0\n\n[log]\nflows = false\n",
            policy_path.display().to_string()
        );
        let config = Config::parse(&config_text, "b4.toml").expect("config");
        let loaded = Instant::now();
        let mut daemon = Daemon::start(config).expect("start wfpd");
        let load_ms = loaded.elapsed().as_millis();
        let udp = udp_pps(&tx, &rx, duration);
        let before = daemon.stats().packets();
        let start = Instant::now();
        let tcp = tcp_bps(&received, duration);
        let tcp_elapsed = start.elapsed().as_secs_f64();
        let after = daemon.stats().packets();
        let snapshot = daemon.shutdown().expect("stop wfpd");
        let q = snapshot.queues.first().cloned().unwrap_or_default();
        println!(
            "  wfpd {n} filters: started in {load_ms} ms; {} packets, {} permitted, {} blocked, \
             {} internal errors",
            q.packets, q.permitted, q.blocked, q.internal_errors
        );
        rows.push(Row {
            name: format!("wfpd {n} filters"),
            udp_pps: udp,
            tcp_bps: tcp,
            tcp_pps: Some(after.saturating_sub(before) as f64 / tcp_elapsed.max(1e-9)),
        });
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sink.join();
    let _ = std::fs::remove_dir_all(&dir);

    let base = &rows[0];
    let bare = &rows[1];
    println!();
    println!(
        "{:<20} {:>12} {:>9} {:>9} {:>11} {:>12} {:>9} {:>9}",
        "case", "UDP pkt/s", "/noqueue", "/bare", "TCP MB/s", "TCP pkt/s", "/noqueue", "/bare"
    );
    for row in &rows {
        println!(
            "{:<20} {:>12.0} {:>9.3} {:>9.3} {:>11.1} {:>12} {:>9.3} {:>9.3}",
            row.name,
            row.udp_pps,
            row.udp_pps / base.udp_pps,
            row.udp_pps / bare.udp_pps,
            row.tcp_bps / 1e6,
            row.tcp_pps
                .map_or_else(|| "-".to_owned(), |p| format!("{p:.0}")),
            row.tcp_bps / base.tcp_bps,
            row.tcp_bps / bare.tcp_bps,
        );
    }
    let w10 = &rows[2];
    let w10k = &rows[3];
    println!();
    println!(
        "B4 targets: wfpd/bare >= 0.90 — UDP {:.3} (10 filters), {:.3} (10k); TCP {:.3}, {:.3}",
        w10.udp_pps / bare.udp_pps,
        w10k.udp_pps / bare.udp_pps,
        w10.tcp_bps / bare.tcp_bps,
        w10k.tcp_bps / bare.tcp_bps
    );
    println!(
        "            10k within 5% of 10 — UDP {:.3}, TCP {:.3}",
        w10k.udp_pps / w10.udp_pps,
        w10k.tcp_bps / w10.tcp_bps
    );
}
