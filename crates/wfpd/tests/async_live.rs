//! Live tests of the asynchronous data path (issue 12): the built-in callouts that pend, inject
//! and edit, run by the real `wfpd` binary on real sockets, over IPv4 and IPv6.
//!
//! Each test builds a small lab of two private namespaces joined by a veth pair: the *client*
//! side (`10.77.0.1`, `fd77::1`) runs wfpd (its rules queue what crosses the veth) and the client
//! sockets; the *server* side (`10.77.0.2`, `fd77::2`) runs the servers. Namespace names carry
//! `inline` and the process id; the namespaces (and the veth) are deleted by guards. Sockets are
//! Rust std sockets on threads that entered a namespace; every socket has a timeout, every wait a
//! deadline, and each test exchanges a few dozen packets.
//!
//! | callout | what the test shows |
//! |---|---|
//! | `wfp.stream-editor` inline / out-of-band | a TCP client reads the edited text (another length), three exchanges on one connection, and the server retransmits nothing (its acknowledgements were translated back, `SeqTranslation::Inline`) |
//! | `wfp.datagram-redirector` | a UDP client addresses port 6000, the server listens on 6001 only, the replies come from the address and port the client addressed |
//! | `wfp.pending-inspector` | a connection to the inspected port completes only through the worker's decision (held, released, re-injected through the raw socket); a blocked one fails |
//! | `wfp.connection-monitor` | `GET /v1/connections` lists the open flows with process path, user and byte counts; they leave the list when they end |
//! | `wfp.pending-inspector` + `wfp.stream-editor` on two queues | `[queues]` 0..1 (`--queue-balance`): connections to eight server addresses per family spread over both workers; each pend, re-injection and out-of-band edit is completed by the worker whose shim owns the flow |
//!
//! Skipped, with a printed reason, unless running as root with `ip`, `iptables`, `ip6tables`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wfp_nfqueue::TempNetns;

mod support;

use support::lab::{addr, api_section, run_in, spawn_in, Lab, LabSpec};
use support::{serial, skip_reason, TempDir, DEADLINE};

const C4: &str = "10.77.0.1";
const S4: &str = "10.77.0.2";
const C6: &str = "fd77::1";
const S6: &str = "fd77::2";
const IO_TIMEOUT: Duration = Duration::from_secs(3);

macro_rules! skip_unless_lab {
    ($name:expr) => {
        if let Some(reason) = skip_reason().or_else(no_ip6tables) {
            eprintln!("skipping {}: {reason}", $name);
            return;
        }
    };
}

fn no_ip6tables() -> Option<String> {
    match Command::new("ip6tables").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("`ip6tables` is not available".to_owned()),
    }
}

/// Client `10.77.0.1`/`fd77::1` on `vc`, server `10.77.0.2`/`fd77::2` on `vs`.
const LAB: LabSpec = LabSpec {
    client_dev: "vc",
    server_dev: "vs",
    v4: ("10.77.0.1/24", "10.77.0.2/24"),
    v6: Some(("fd77::1/64", "fd77::2/64")),
};

/// Nothing leaked and nothing was answered twice: no packet waits in the kernel's queue and the
/// kernel refused no verdict (a second verdict for an id is answered with ENOENT).
fn every_packet_answered_once(q: &serde_json::Value, stats: &serde_json::Value) {
    assert_eq!(q["kernel_errors"].as_u64(), Some(0), "{stats}");
    assert_eq!(q["kernel_waiting"].as_u64(), Some(0), "{stats}");
}

/// A TCP listener on `at` (in the calling namespace) with a deadline for its accept.
fn listen(at: SocketAddr) -> TcpListener {
    let l = TcpListener::bind(at).expect("bind");
    l.set_nonblocking(true).expect("nonblocking");
    l
}

fn accept(l: &TcpListener) -> Option<TcpStream> {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if let Ok((s, _)) = l.accept() {
            s.set_nonblocking(false).ok()?;
            s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// A line server: for each request line `ping N` it answers `reply N: <text>`; `rounds` times.
fn line_server(l: TcpListener, text: &'static str, rounds: usize) -> usize {
    let Some(s) = accept(&l) else { return 0 };
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    let mut writer = s;
    let mut served = 0;
    for _ in 0..rounds {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let n = line.trim().trim_start_matches("ping ").to_owned();
        if writer
            .write_all(format!("reply {n}: {text}\n").as_bytes())
            .is_err()
        {
            break;
        }
        served += 1;
    }
    // Wait for the client to close (bounded by the read timeout).
    let _ = reader.read_line(&mut String::new());
    served
}

/// Connects to `to`, sends `ping 1..=rounds`, returns the reply lines.
fn line_client(to: SocketAddr, rounds: usize) -> Result<Vec<String>, String> {
    let s = TcpStream::connect_timeout(&to, IO_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut writer = s;
    let mut replies = Vec::new();
    for n in 1..=rounds {
        writer
            .write_all(format!("ping {n}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        replies.push(line);
    }
    Ok(replies)
}

/// One TCP conversation through the lab: a line server on the server side, the client on the
/// client side; the replies the client read.
fn converse(lab: &Lab, (server_ip, port): (&'static str, u16), text: &'static str) -> Vec<String> {
    let rounds = 3;
    let server = spawn_in(&lab.server, move || {
        line_server(listen(addr(server_ip, port)), text, rounds)
    });
    // The listener must exist before the client connects.
    std::thread::sleep(Duration::from_millis(100));
    let replies = run_in(&lab.client, move || {
        line_client(addr(server_ip, port), rounds)
    });
    let served = server.join().expect("server thread");
    let replies = replies.unwrap_or_else(|e| panic!("client to {server_ip}:{port}: {e}"));
    assert_eq!(served, rounds, "every request reached the server");
    replies
}

const TEXT: &str = "hello X-Edit-Me world";

fn editor_policy() -> String {
    let mut p = String::new();
    for (mode, port, replacement) in [
        ("inline", 7000, "X-Edited-by-wfpd-inline"),
        ("out-of-band", 7001, "X-Ed"),
    ] {
        for v in ["V4", "V6"] {
            p.push_str(&format!(
                r#"
[[callout]]
name = "editor {mode} {v}"
layer = "STREAM_{v}"
builtin = "wfp.stream-editor"
params = {{ pattern = "X-Edit-Me", replacement = "{replacement}", port = {port}, mode = "{mode}" }}

[[filter]]
name = "edit {mode} {v}"
layer = "STREAM_{v}"
action = "CALLOUT_TERMINATING"
callout = "editor {mode} {v}"
condition = [ {{ field = "IP_REMOTE_PORT", value = {port} }} ]
"#
            ));
        }
    }
    p
}

/// §9.2 inline and out-of-band editing with replacements of another length, inline: the client
/// reads the edited text in three exchanges on one connection per family and mode, and the
/// server never retransmits (its acknowledgements of the edited bytes were moved back).
#[test]
fn stream_editor_inline_and_out_of_band_edit_live_tcp_over_v4_and_v6() {
    skip_unless_lab!("stream_editor_inline_and_out_of_band_edit_live_tcp_over_v4_and_v6");
    let _serial = serial();
    let lab = Lab::new("inline", LAB);
    let dir = TempDir::new("inline-editor");
    let daemon = lab.daemon(&dir, &editor_policy(), "");
    let before = lab.server_retransmissions();
    for (server_ip, family) in [(S4, "v4"), (S6, "v6")] {
        for (port, edited) in [
            (7000, "hello X-Edited-by-wfpd-inline world"),
            (7001, "hello X-Ed world"),
        ] {
            let replies = converse(&lab, (server_ip, port), TEXT);
            let want: Vec<String> = (1..=3).map(|n| format!("reply {n}: {edited}\n")).collect();
            assert_eq!(
                replies,
                want,
                "{family} port {port}:\n{}",
                daemon.log_text()
            );
        }
    }
    // A retransmission timer would have fired by now if an acknowledgement had been wrong.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        lab.server_retransmissions(),
        before,
        "the server retransmitted: acknowledgements were not translated"
    );
    let stats = daemon.settled_stats();
    let q = &stats["queues"][0];
    every_packet_answered_once(q, &stats);
    assert!(q["edited"].as_u64() >= Some(12), "{stats}");
    assert!(
        q["injected_sent"].as_u64() >= Some(6),
        "out-of-band segments: {stats}"
    );
    assert_eq!(q["injected_failed"].as_u64(), Some(0), "{stats}");
    assert!(daemon.stop().success(), "clean stop");
}

fn redirector_policy() -> String {
    let mut p = String::new();
    for (v, server) in [("V4", S4), ("V6", S6)] {
        for layer in ["OUTBOUND_TRANSPORT", "INBOUND_IPPACKET"] {
            p.push_str(&format!(
                r#"
[[callout]]
name = "redirect {layer} {v}"
layer = "{layer}_{v}"
builtin = "wfp.datagram-redirector"
params = {{ address = "{server}", port = 6000, to_port = 6001 }}

[[filter]]
name = "redirect {layer} {v}"
layer = "{layer}_{v}"
action = "CALLOUT_TERMINATING"
callout = "redirect {layer} {v}"
"#
            ));
        }
    }
    p
}

/// A UDP echo server on `at` answering `echo:` + the datagram, until `count` datagrams or the
/// timeout.
fn udp_echo(at: SocketAddr, count: usize) -> usize {
    let s = UdpSocket::bind(at).expect("bind");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut buf = [0u8; 512];
    let mut n = 0;
    while n < count {
        let Ok((len, peer)) = s.recv_from(&mut buf) else {
            break;
        };
        let mut reply = b"echo:".to_vec();
        reply.extend_from_slice(&buf[..len]);
        let _ = s.send_to(&reply, peer);
        n += 1;
    }
    n
}

/// §10.4 network injection both ways: the client addresses port 6000, the server only listens
/// on 6001, and every reply comes back from the address and port the client addressed.
#[test]
fn datagram_redirector_redirects_live_udp_and_rewrites_the_replies_over_v4_and_v6() {
    skip_unless_lab!("datagram_redirector_redirects_live_udp");
    let _serial = serial();
    let lab = Lab::new("inline", LAB);
    let dir = TempDir::new("inline-redirector");
    let daemon = lab.daemon(&dir, &redirector_policy(), "");
    for (server_ip, client_ip) in [(S4, C4), (S6, C6)] {
        let server = spawn_in(&lab.server, move || udp_echo(addr(server_ip, 6001), 3));
        std::thread::sleep(Duration::from_millis(100));
        let got = run_in(&lab.client, move || {
            let s = UdpSocket::bind(addr(client_ip, 0)).expect("bind client");
            s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
            let mut got = Vec::new();
            for n in 0..3 {
                let _ = s.send_to(format!("ping {n}").as_bytes(), addr(server_ip, 6000));
                let mut buf = [0u8; 512];
                match s.recv_from(&mut buf) {
                    Ok((len, from)) => {
                        got.push((String::from_utf8_lossy(&buf[..len]).into_owned(), from))
                    }
                    Err(e) => got.push((format!("error {e}"), addr(client_ip, 0))),
                }
            }
            got
        });
        assert_eq!(
            server.join().expect("server"),
            3,
            "the server on 6001 got every datagram"
        );
        for (n, (text, from)) in got.iter().enumerate() {
            assert_eq!(text, &format!("echo:ping {n}"), "{}", daemon.log_text());
            assert_eq!(
                *from,
                addr(server_ip, 6000),
                "the reply comes from the addressed peer"
            );
        }
    }
    let stats = daemon.settled_stats();
    let q = &stats["queues"][0];
    every_packet_answered_once(q, &stats);
    assert!(
        q["injected_sent"].as_u64() >= Some(12),
        "6 out, 6 back: {stats}"
    );
    assert_eq!(q["injected_failed"].as_u64(), Some(0), "{stats}");
    assert!(daemon.stop().success(), "clean stop");
}

fn inspector_policy() -> String {
    let mut p = String::new();
    for (decision, port, layers) in [
        (
            "allow",
            7100,
            &["ALE_AUTH_CONNECT", "OUTBOUND_TRANSPORT"][..],
        ),
        ("block", 7101, &["ALE_AUTH_CONNECT"][..]),
    ] {
        for v in ["V4", "V6"] {
            for layer in layers {
                p.push_str(&format!(
                    r#"
[[callout]]
name = "inspect {decision} {layer} {v}"
layer = "{layer}_{v}"
builtin = "wfp.pending-inspector"
params = {{ port = {port}, decision = "{decision}" }}

[[filter]]
name = "inspect {decision} {layer} {v}"
layer = "{layer}_{v}"
action = "CALLOUT_TERMINATING"
callout = "inspect {decision} {layer} {v}"
condition = [ {{ field = "IP_REMOTE_PORT", value = {port} }} ]
"#
                ));
            }
        }
    }
    p
}

/// §10.1 pend/complete inline: the SYN to the inspected port is held (its NFQUEUE verdict
/// kept) until the worker decides; allowed, the connection completes and works (its packets
/// cloned and re-injected through the raw socket); blocked, it fails.
#[test]
fn pending_inspector_holds_live_connections_until_the_worker_decides_over_v4_and_v6() {
    skip_unless_lab!("pending_inspector_holds_live_connections");
    let _serial = serial();
    let lab = Lab::new("inline", LAB);
    let dir = TempDir::new("inline-inspector");
    let daemon = lab.daemon(&dir, &inspector_policy(), "");
    for server_ip in [S4, S6] {
        let replies = converse(&lab, (server_ip, 7100), "inspected and allowed");
        assert_eq!(replies.len(), 3, "{}", daemon.log_text());
        assert_eq!(replies[2], "reply 3: inspected and allowed\n");
        let listener = spawn_in(&lab.server, move || {
            let l = listen(addr(server_ip, 7101));
            std::thread::sleep(Duration::from_millis(2500));
            l.accept().is_ok()
        });
        std::thread::sleep(Duration::from_millis(100));
        let blocked = run_in(&lab.client, move || {
            TcpStream::connect_timeout(&addr(server_ip, 7101), Duration::from_millis(1500)).is_ok()
        });
        assert!(!blocked, "the blocked connection must fail ({server_ip})");
        assert!(
            !listener.join().expect("listener"),
            "nothing reached the server"
        );
    }
    let stats = daemon.settled_stats();
    let q = &stats["queues"][0];
    every_packet_answered_once(q, &stats);
    assert!(
        q["held"].as_u64() >= Some(4),
        "a SYN per connection: {stats}"
    );
    assert!(
        q["released"].as_u64() >= Some(2),
        "the allowed ones: {stats}"
    );
    assert!(
        q["held_dropped"].as_u64() >= Some(2),
        "the blocked ones: {stats}"
    );
    assert!(
        q["injected_sent"].as_u64() >= Some(6),
        "clones re-injected: {stats}"
    );
    assert_eq!(q["held_expired"].as_u64(), Some(0), "{stats}");
    assert!(daemon.stop().success(), "clean stop");
}

const MONITOR: &str = r#"
[[filter]]
name = "monitor v4"
layer = "ALE_FLOW_ESTABLISHED_V4"
action = "CALLOUT_INSPECTION"
callout = "wfp.connection-monitor"

[[filter]]
name = "monitor v6"
layer = "ALE_FLOW_ESTABLISHED_V6"
action = "CALLOUT_INSPECTION"
callout = "wfp.connection-monitor"

[[filter]]
name = "monitor stream v4"
layer = "STREAM_V4"
action = "CALLOUT_INSPECTION"
callout = "wfp.connection-monitor"

[[filter]]
name = "monitor stream v6"
layer = "STREAM_V6"
action = "CALLOUT_INSPECTION"
callout = "wfp.connection-monitor"
"#;

/// `GET /v1/connections` over the daemon's API socket: the JSON list.
fn connections(socket: &Path) -> Vec<serde_json::Value> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("api socket");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.write_all(b"GET /v1/connections HTTP/1.1\r\nHost: wfpd\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str::<Vec<serde_json::Value>>(body)
        .unwrap_or_else(|e| panic!("bad answer {answer:?}: {e}"))
}

/// Polls `GET /v1/connections` until `ok` holds for the list (bounded by `DEADLINE`).
fn wait_connections(
    socket: &Path,
    what: &str,
    ok: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let end = Instant::now() + DEADLINE;
    loop {
        let list = connections(socket);
        if ok(&list) {
            return list;
        }
        assert!(Instant::now() < end, "{what}: {list:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The connection monitor listed live: process path, user and byte counts of open flows over
/// both families, gone once the flows end (flowDeleteFn).
#[test]
fn connection_monitor_lists_live_flows_with_owner_and_bytes_over_v4_and_v6() {
    skip_unless_lab!("connection_monitor_lists_live_flows");
    let _serial = serial();
    let lab = Lab::new("inline", LAB);
    let dir = TempDir::new("inline-monitor");
    let socket = dir.path("wfpd.sock");
    let api = api_section(&socket);
    let daemon = lab.daemon(&dir, MONITOR, &api);
    let exe = std::env::current_exe().expect("exe");
    let exe_name = exe
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_lowercase();
    for (server_ip, port) in [(S4, 7200), (S6, 7201)] {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let server = spawn_in(&lab.server, move || {
            let l = listen(addr(server_ip, port));
            let Some(mut s) = accept(&l) else {
                return false;
            };
            let mut request = [0u8; 100];
            let ok = s.read_exact(&mut request).is_ok() && s.write_all(&[b'r'; 300]).is_ok();
            // Keep the connection open until the test has looked at the list.
            let _ = done_rx.recv_timeout(DEADLINE);
            ok
        });
        std::thread::sleep(Duration::from_millis(100));
        let (client_tx, client_rx) = std::sync::mpsc::channel::<()>();
        let client = spawn_in(&lab.client, move || {
            let mut s = TcpStream::connect_timeout(&addr(server_ip, port), IO_TIMEOUT).ok()?;
            s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
            s.write_all(&[b'q'; 100]).ok()?;
            let mut reply = [0u8; 300];
            s.read_exact(&mut reply).ok()?;
            let _ = client_rx.recv_timeout(DEADLINE);
            Some(())
        });
        let list = wait_connections(&socket, "the open connection with its bytes", |list| {
            list.iter()
                .any(|c| c["remote_port"] == port && c["bytes_out"] == 100 && c["bytes_in"] == 300)
        });
        let c = list
            .iter()
            .find(|c| c["remote_port"] == port)
            .expect("listed");
        assert_eq!(c["remote_address"], server_ip, "{c}");
        assert_eq!(c["protocol"], 6, "{c}");
        assert_eq!(c["direction"], "outbound", "{c}");
        assert_eq!(c["user"], 0, "root runs the client: {c}");
        let path = c["process_path"].as_str().unwrap_or("").to_lowercase();
        assert!(
            path.ends_with(&exe_name),
            "the client executable {exe_name}: {c}"
        );
        let _ = client_tx.send(());
        client.join().expect("client").expect("client exchange");
        let _ = done_tx.send(());
        assert!(server.join().expect("server"), "server exchange");
        wait_connections(&socket, "the ended connection leaves the list", |list| {
            !list.iter().any(|c| c["remote_port"] == port)
        });
    }
    daemon.wait_log_n("connection closed:", 2);
    let stats = daemon.stats();
    assert!(stats["connections_closed"].as_u64() >= Some(2), "{stats}");
    assert!(daemon.stop().success(), "clean stop");
}

// ------------------------------------------------------------------------------------------
// The verdict deadline of held packets, in process (a callout that never completes)
// ------------------------------------------------------------------------------------------

/// Pends every authorization and never completes one (a callout whose worker hangs).
struct NeverDecides;

impl wfp_core::Callout for NeverDecides {
    fn classify(
        &self,
        ctx: &wfp_core::callout::ClassifyContext<'_>,
        _values: &wfp_core::callout::IncomingValues<'_>,
        meta: &wfp_core::callout::Metadata,
        _layer_data: &mut wfp_core::callout::LayerData<'_>,
        _filter: &wfp_core::RtFilter,
        _flow_context: u64,
        out: &mut wfp_core::callout::ClassifyOut,
    ) {
        if ctx.pend_operation(meta).is_ok() {
            out.action_type = wfp_core::ActionType::BLOCK;
            out.flags |= wfp_core::constants::ClassifyOutFlags::ABSORB;
            out.clear_write();
        }
    }
}

/// An engine whose ALE_AUTH_CONNECT_V4/V6 filters call [`NeverDecides`].
fn never_deciding_engine() -> std::sync::Arc<wfp_core::Engine> {
    use wfp_core::catalogue::layers;
    use wfp_core::{ActionType, CalloutFlags, CalloutRegistration, CalloutSpec, FilterSpec, Guid};
    let engine = std::sync::Arc::new(wfp_core::Engine::new(wfp_core::EngineOptions {
        flow_tracking: wfp_core::engine::FlowTracking::Announced,
        ..wfp_core::EngineOptions::default()
    }));
    for (n, layer) in [layers::ALE_AUTH_CONNECT_V4, layers::ALE_AUTH_CONNECT_V6]
        .into_iter()
        .enumerate()
    {
        let key = Guid::from_name("wfpd-async-live", &format!("never{n}"));
        engine
            .register_callout(CalloutRegistration::new(
                key,
                CalloutFlags::default(),
                std::sync::Arc::new(NeverDecides),
            ))
            .expect("register");
        engine
            .add_callout(CalloutSpec {
                key,
                name: format!("never decides {n}"),
                description: String::new(),
                flags: 0,
                provider: None,
                applicable_layer: layer,
            })
            .expect("callout");
        let mut f = FilterSpec::new("pend", layer, ActionType::CALLOUT_TERMINATING);
        f.callout = Some(key);
        engine.add_filter(f).expect("filter");
    }
    engine
}

/// What one in-process run saw: the datagrams delivered and the worker's counters.
struct Expired {
    delivered: Vec<usize>,
    shared: std::sync::Arc<wfpd::worker::WorkerShared>,
    kernel_errors: u64,
}

/// A real queue on `lo` for UDP to `port` (both families), decided by wfpd's `ShimHandler` with
/// an engine whose callout pends and never completes; three datagrams per family are sent.
fn run_never_deciding(port: u16, posture: wfpd::Posture) -> Expired {
    use wfp_nfqueue::rules::{ChainHook, Family, HookRule, QueueTarget, RuleSet};
    use wfp_nfqueue::{run_worker, Queue, QueueConfig, WorkerClock, WorkerOptions};
    let ns = TempNetns::create("inlinex").expect("netns");
    run_in(&ns, move || {
        let mut rules = RuleSet::new(QueueTarget::Num(0));
        rules.families = vec![Family::Ipv4, Family::Ipv6];
        rules.hooks = vec![HookRule::new(
            ChainHook::Output,
            &["-o", "lo", "-p", "udp", "--dport", &port.to_string()],
        )];
        rules.install().expect("rules");
        let mut qc = QueueConfig::new(0);
        qc.recv_timeout = Some(Duration::from_millis(50));
        let mut queue = Queue::open(qc).expect("queue");
        let stop = queue.stop_handle();
        let shared = std::sync::Arc::new(wfpd::worker::WorkerShared::new(0));
        let deadline = Duration::from_millis(300);
        let shim_config = wfp_shim::ShimConfig {
            pend_deadline: Some(deadline),
            seq_translation: wfp_shim::pipeline::SeqTranslation::Inline,
            ..wfp_shim::ShimConfig::default()
        };
        let host = wfp_callouts::Host::new();
        let asyncs = wfpd::asyncs::AsyncPath::new(
            None,
            (deadline, posture),
            std::sync::Arc::clone(&shared.asyncs),
        );
        let identity = wfpd::identity::Identity::new(None, std::sync::Arc::clone(&shared.identity));
        let mut handler = wfpd::worker::ShimHandler::new(
            (never_deciding_engine(), &host),
            shim_config,
            (identity, asyncs),
            (wfp_shim::Verdict::Block, wfp_shim::Verdict::Block),
            std::sync::Arc::clone(&shared),
        );
        let worker_shared = std::sync::Arc::clone(&shared);
        let worker = std::thread::spawn(move || {
            let options = WorkerOptions {
                max_idle: Some(Duration::from_millis(20)),
                ..WorkerOptions::default()
            };
            run_worker(
                &mut queue,
                &mut handler,
                &worker_shared.status,
                &WorkerClock::new(),
                &options,
            )
        });
        let mut delivered = Vec::new();
        for (to, from) in [("127.0.0.1", "127.0.0.1"), ("::1", "::1")] {
            let rx = UdpSocket::bind(addr(to, port)).expect("receiver");
            rx.set_read_timeout(Some(Duration::from_millis(1200)))
                .expect("timeout");
            let tx = UdpSocket::bind(addr(from, 0)).expect("sender");
            for n in 0u8..3 {
                let _ = tx.send_to(&[n], addr(to, port));
            }
            let mut got = 0;
            let mut buf = [0u8; 16];
            while got < 3 && rx.recv(&mut buf).is_ok() {
                got += 1;
            }
            delivered.push(got);
        }
        stop.stop();
        let stats = worker
            .join()
            .expect("worker thread")
            .expect("worker result");
        Expired {
            delivered,
            shared,
            kernel_errors: stats.kernel_errors,
        }
    })
}

fn count(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

/// A pended classify whose completion never comes: its packets stay held (no verdict) until the
/// verdict deadline, then get `posture.pended` — dropped fail-closed, accepted (late) fail-open —
/// and are counted; every queued packet got exactly one verdict (no kernel error answers).
#[test]
fn held_packets_past_the_verdict_deadline_follow_the_pended_posture_over_v4_and_v6() {
    skip_unless_lab!("held_packets_past_the_verdict_deadline");
    let _serial = serial();
    let closed = run_never_deciding(5800, wfpd::Posture::FailClosed);
    assert_eq!(closed.delivered, [0, 0], "fail-closed drops what expired");
    assert_eq!(count(&closed.shared.asyncs.held), 6);
    assert_eq!(count(&closed.shared.asyncs.expired), 6);
    assert_eq!(count(&closed.shared.asyncs.expired_accepted), 0);
    assert_eq!(
        count(&closed.shared.status.released),
        6,
        "one late verdict each"
    );
    assert_eq!(closed.kernel_errors, 0);
    let open = run_never_deciding(5801, wfpd::Posture::FailOpen);
    assert_eq!(open.delivered, [3, 3], "fail-open accepts what expired");
    assert_eq!(count(&open.shared.asyncs.expired), 6);
    assert_eq!(
        count(&open.shared.asyncs.expired_accepted),
        6,
        "every fail-open event is counted"
    );
    assert_eq!(count(&open.shared.status.accepted), 6);
    assert_eq!(open.kernel_errors, 0);
}

// ------------------------------------------------------------------------------------------
// Two queues (issue 12: multi-queue wfpd)
// ------------------------------------------------------------------------------------------

/// The server addresses of the two-queue test: `--queue-balance` hashes a packet's addresses
/// (not its ports), so connections to several addresses are what spreads flows over the queues.
const SPREAD: std::ops::RangeInclusive<u8> = 2..=9;

/// Both families' extra server addresses (10.77.0.2..=9, fd77::2..=9).
fn spread_addresses(lab: &Lab) {
    for n in SPREAD.skip(1) {
        lab.add_server_addr(&format!("10.77.0.{n}/24"));
        lab.add_server_addr(&format!("fd77::{n}/64"));
    }
}

/// §10.1 pend/complete, §10.4 re-injection and §9.2 out-of-band stream injection with
/// `[queues]` spanning two queues: every conversation through either worker works (its
/// completion, clones and injected segments were taken by the worker whose shim owns the
/// flow), both queues carried connections, and every packet got exactly one verdict.
#[test]
fn pend_inject_and_edit_work_on_two_queues_over_v4_and_v6() {
    skip_unless_lab!("pend_inject_and_edit_work_on_two_queues_over_v4_and_v6");
    let _serial = serial();
    let lab = Lab::new("i12fix", LAB);
    spread_addresses(&lab);
    let dir = TempDir::new("i12fix-queues");
    let policy = format!("{}{}", inspector_policy(), editor_policy());
    let daemon = lab.daemon(&dir, &policy, "[queues]\nfirst = 0\nlast = 1\n");
    for n in SPREAD {
        let v4: &'static str = Box::leak(format!("10.77.0.{n}").into_boxed_str());
        let v6: &'static str = Box::leak(format!("fd77::{n}").into_boxed_str());
        for server_ip in [v4, v6] {
            let replies = converse(&lab, (server_ip, 7100), "inspected and allowed");
            let want: Vec<String> = (1..=3)
                .map(|k| format!("reply {k}: inspected and allowed\n"))
                .collect();
            assert_eq!(
                replies,
                want,
                "{server_ip} inspected:\n{}",
                daemon.log_text()
            );
            let replies = converse(&lab, (server_ip, 7001), TEXT);
            let want: Vec<String> = (1..=3)
                .map(|k| format!("reply {k}: hello X-Ed world\n"))
                .collect();
            assert_eq!(replies, want, "{server_ip} edited:\n{}", daemon.log_text());
        }
    }
    let stats = daemon.settled_stats();
    let queues = stats["queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 2, "{stats}");
    let sum = |field: &str| -> u64 { queues.iter().filter_map(|q| q[field].as_u64()).sum() };
    for q in queues {
        every_packet_answered_once(q, &stats);
        assert!(q["held"].as_u64() >= Some(1), "each queue pended: {stats}");
        assert_eq!(q["held_expired"].as_u64(), Some(0), "{stats}");
        assert_eq!(q["injected_failed"].as_u64(), Some(0), "{stats}");
    }
    let conversations = 2 * SPREAD.count() as u64;
    assert!(
        sum("held") >= conversations,
        "a SYN per inspected connection: {stats}"
    );
    assert!(sum("released") >= conversations, "{stats}");
    assert!(
        sum("injected_sent") >= 2 * conversations,
        "clones and out-of-band segments: {stats}"
    );
    assert!(
        !daemon.log_text().contains("more than one queue"),
        "no single-queue warning any more"
    );
    assert!(daemon.stop().success(), "clean stop");
}
