//! The asynchronous example C drivers inline, in the running daemon (issue 13): pendinspect,
//! streamedit and dgramredirect are built with the real `wfpctl driver build` (the binary next to
//! this test's; `wfp_ffi::compile::build`, what it runs, when it was not built) and run by the real
//! `wfpd` as `[[driver]]` tables with parameters, each in its own network namespace
//! (`c13-drvinl-PID-N`, only `lo`), on real loopback traffic through NFQUEUE:
//!
//! * pendinspect (Port, Block): a TCP connect to Port is pended at ALE_AUTH_CONNECT and decided on
//!   the driver's worker thread — permitted (an echo round trip works, outbound segments are
//!   cloned and re-injected by the worker) or, with Block=1, blocked (the connect fails);
//! * streamedit (Pattern, Replacement): a pattern in a TCP stream is replaced by a longer text,
//!   as the real receiving socket reads it;
//! * dgramredirect (Address, Port, ToAddress, ToPort): a UDP datagram sent to one local port is
//!   received on another, and the reply comes back from the port the client sent to;
//! * connredirect (the test driver `crates/wfp-ffi/tests/c/drivers/connredirect.c`): a
//!   connection redirected at ALE_CONNECT_REDIRECT is dropped with a warning (§10.3).
//!
//! Each daemon is stopped (SIGTERM): the driver is unloaded with no Verifier finding. A few
//! packets, every wait bounded. Skipped with a note unless root with `ip`, `iptables`, `python3`.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;
use wfp_nfqueue::TempNetns;

const IO_TIMEOUT: Duration = Duration::from_secs(3);
const RULES: &str = "[rules]\nhooks = [ { hook = \"OUTPUT\", matches = [\"-o\", \"lo\"] }, \
                     { hook = \"INPUT\", matches = [\"-i\", \"lo\"] } ]\n\n";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `wfpctl` binary of this build (target/<profile>/wfpctl), when it was built.
fn wfpctl_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("wfpctl");
    bin.is_file().then_some(bin)
}

/// Builds `examples/drivers/NAME/NAME.c` into `dir` with `wfpctl driver build`.
fn build_driver(dir: &TempDir, name: &str) -> PathBuf {
    build_source(
        dir,
        name,
        root().join(format!("examples/drivers/{name}/{name}.c")),
    )
}

/// Builds the C source `src` into `dir/NAME.so` with `wfpctl driver build`.
fn build_source(dir: &TempDir, name: &str, src: PathBuf) -> PathBuf {
    let out = dir.path(&format!("{name}.so"));
    if let Some(wfpctl) = wfpctl_binary() {
        let run = Command::new(&wfpctl)
            .args(["driver", "build"])
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .output()
            .expect("run wfpctl driver build");
        assert!(
            run.status.success(),
            "wfpctl driver build {name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    } else {
        eprintln!("note: no wfpctl binary next to this test; building {name} with wfp_ffi::compile::build (what `wfpctl driver build` runs)");
        wfp_ffi::compile::build(&wfp_ffi::compile::BuildOptions {
            sources: vec![src],
            output: out.clone(),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("building {name}: {e}"));
    }
    out
}

/// A daemon in a fresh namespace running `driver` with `params` (a TOML inline table body).
fn start(tag: &str, driver: &str, params: &str) -> (TempNetns, TempDir, Daemon) {
    let dir = TempDir::new(&format!("c13-{tag}"));
    let so = build_driver(&dir, driver);
    start_with(dir, &so, params)
}

/// [`start`] with the driver image `so` built into `dir` already.
fn start_with(dir: TempDir, so: &Path, params: &str) -> (TempNetns, TempDir, Daemon) {
    let policy = dir.write("policy.toml", "");
    let extra = format!(
        "{RULES}[[driver]]\npath = {:?}\nparams = {{ {params} }}\n",
        so.display().to_string()
    );
    let config = config(&dir, &[&policy], &extra);
    let ns = TempNetns::create("c13-drvinl").expect("netns");
    let daemon = Daemon::start(&ns, &dir, &config);
    assert!(
        daemon.log_text().contains("driver loaded"),
        "{}",
        daemon.log_text()
    );
    (ns, dir, daemon)
}

/// Stops the daemon; returns its log (the driver unloaded, no Verifier finding).
fn stop(daemon: Daemon) -> String {
    let log = daemon.log.clone();
    let status = daemon.stop();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "wfpd exit {status:?}\n{text}");
    assert!(text.contains("driver unloaded"), "{text}");
    assert!(!text.contains("driver verifier"), "{text}");
    text
}

/// The line of `log` containing `needle`.
fn line_with<'a>(log: &'a str, needle: &str) -> &'a str {
    log.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in\n{log}"))
}

/// The value of `key=` in a driver's unload line.
fn counter(line: &str, key: &str) -> u64 {
    let start = line.find(&format!("{key}=")).expect(key) + key.len() + 1;
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect(key)
}

/// A TCP echo exchange inside the namespace: the listener on `port` reads what the client sends
/// until EOF and answers with it; returns (what the server read, what the client read back), or
/// the client's error.
fn tcp_exchange(ns: &TempNetns, port: u16, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    in_ns(ns, || {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("listen");
        let server = std::thread::spawn(move || -> Option<Vec<u8>> {
            let mut s = accept_within(&listener, 2 * IO_TIMEOUT)?;
            s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
            let mut got = Vec::new();
            s.read_to_end(&mut got).ok()?;
            s.write_all(&got).ok()?;
            Some(got)
        });
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let client = (|| -> Result<Vec<u8>, String> {
            let mut c = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.to_string())?;
            c.set_read_timeout(Some(IO_TIMEOUT))
                .map_err(|e| e.to_string())?;
            c.write_all(message).map_err(|e| e.to_string())?;
            c.shutdown(std::net::Shutdown::Write)
                .map_err(|e| e.to_string())?;
            let mut back = Vec::new();
            c.read_to_end(&mut back).map_err(|e| e.to_string())?;
            Ok(back)
        })();
        match client {
            Ok(back) => {
                let got = server.join().ok().flatten().unwrap_or_default();
                Ok((got, back))
            }
            Err(e) => {
                // The accept gives up at its deadline.
                let _ = server.join();
                Err(e)
            }
        }
    })
}

/// The next connection on `listener`, or `None` after `within`.
fn accept_within(listener: &TcpListener, within: Duration) -> Option<TcpStream> {
    listener.set_nonblocking(true).ok()?;
    let end = std::time::Instant::now() + within;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok()?;
                return Some(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= end {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return None,
        }
    }
}

/// pendinspect, Block=0: the connect is pended, decided on the worker thread and permitted; the
/// echo round trip works; the worker re-injected the client's outbound segments.
#[test]
fn pendinspect_inline_permits_after_the_worker_decides() {
    skip_unless_live!("pendinspect_inline_permits_after_the_worker_decides");
    let _serial = serial();
    let (ns, _dir, daemon) = start("pi-allow", "pendinspect", "Port = 18081, Block = 0");
    daemon.wait_log("pendinspect: loaded (port 18081, allow)");
    let (got, back) = tcp_exchange(&ns, 18081, b"hello through pendinspect").expect("exchange");
    assert_eq!(got, b"hello through pendinspect");
    assert_eq!(back, b"hello through pendinspect");
    let log = stop(daemon);
    let line = line_with(&log, "pendinspect: unloaded");
    assert!(counter(line, "pended") >= 1, "{line}");
    assert_eq!(
        counter(line, "completed"),
        counter(line, "pended"),
        "{line}"
    );
    assert_eq!(
        counter(line, "on_worker"),
        counter(line, "pended"),
        "{line}"
    );
    assert!(counter(line, "injected") >= 1, "{line}");
    assert_eq!(counter(line, "failed"), 0, "{line}");
}

/// pendinspect, Block=1: the worker decides "block": the connect fails, the server never sees
/// the message.
#[test]
fn pendinspect_inline_blocks_by_parameter() {
    skip_unless_live!("pendinspect_inline_blocks_by_parameter");
    let _serial = serial();
    let (ns, _dir, daemon) = start("pi-block", "pendinspect", "Port = 18082, Block = 1");
    daemon.wait_log("pendinspect: loaded (port 18082, block)");
    let r = tcp_exchange(&ns, 18082, b"must not arrive");
    assert!(
        !matches!(&r, Ok((got, _)) if got == b"must not arrive"),
        "{r:?}"
    );
    let log = stop(daemon);
    let line = line_with(&log, "pendinspect: unloaded");
    assert!(counter(line, "pended") >= 1, "{line}");
    assert_eq!(
        counter(line, "on_worker"),
        counter(line, "pended"),
        "{line}"
    );
    assert_eq!(counter(line, "injected"), 0, "{line}");
}

/// streamedit: the pattern in the client's stream reaches the server as the (longer)
/// replacement, and the server's echo of it is seen by the client (the replacement has no
/// pattern in it).
#[test]
fn streamedit_inline_rewrites_a_tcp_stream() {
    skip_unless_live!("streamedit_inline_rewrites_a_tcp_stream");
    let _serial = serial();
    let (ns, _dir, daemon) = start(
        "se",
        "streamedit",
        "Pattern = \"sz:secret-word\", Replacement = \"sz:a-much-longer-replacement-text\"",
    );
    let (got, back) = tcp_exchange(&ns, 18083, b"before secret-word after").expect("exchange");
    assert_eq!(got, b"before a-much-longer-replacement-text after");
    assert_eq!(back, got);
    stop(daemon);
}

/// dgramredirect: a datagram to 127.0.0.1:18084 (nobody listens there) is received on 18085;
/// the reply reaches the client from 18084.
#[test]
fn dgramredirect_inline_redirects_to_another_local_port() {
    skip_unless_live!("dgramredirect_inline_redirects_to_another_local_port");
    let _serial = serial();
    let (ns, _dir, daemon) = start(
        "dr",
        "dgramredirect",
        "Address = \"sz:127.0.0.1\", Port = 18084, ToAddress = \"sz:127.0.0.1\", ToPort = 18085",
    );
    let (received, reply) = in_ns(&ns, || {
        let target = UdpSocket::bind((Ipv4Addr::LOCALHOST, 18085)).expect("bind target");
        target.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind client");
        client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        client
            .send_to(b"query-to-18084", (Ipv4Addr::LOCALHOST, 18084))
            .expect("send");
        let mut buf = [0u8; 256];
        let (n, from) = target.recv_from(&mut buf).expect("the redirected datagram");
        let received = (buf[..n].to_vec(), from);
        target.send_to(b"answer", from).expect("reply");
        let (n, from) = client.recv_from(&mut buf).expect("the reply");
        (received, (buf[..n].to_vec(), from))
    });
    assert_eq!(received.0, b"query-to-18084");
    assert_eq!(reply.0, b"answer");
    assert_eq!(reply.1, SocketAddr::from((Ipv4Addr::LOCALHOST, 18084)));
    stop(daemon);
}

/// connredirect (crates/wfp-ffi/tests/c/drivers/connredirect.c; Port, ToAddress, ToPort): a
/// connection a callout redirects at ALE_CONNECT_REDIRECT is dropped by wfpd (NFQUEUE cannot
/// redirect it, docs/semantics.md): the connect fails, neither the original destination nor the
/// redirect target sees it, and the log names the connection, the target, the filter and the
/// callout.
#[test]
fn connredirect_inline_connections_are_dropped_with_a_warning() {
    skip_unless_live!("connredirect_inline_connections_are_dropped_with_a_warning");
    let _serial = serial();
    let dir = TempDir::new("c13-cr");
    let src = root().join("crates/wfp-ffi/tests/c/drivers/connredirect.c");
    let so = build_source(&dir, "connredirect", src);
    let (ns, _dir, daemon) = start_with(
        dir,
        &so,
        "Port = 18086, ToAddress = \"sz:127.0.0.1\", ToPort = 18087",
    );
    daemon.wait_log("connredirect: loaded");
    let (connected, accepted) = in_ns(&ns, || {
        let original = TcpListener::bind((Ipv4Addr::LOCALHOST, 18086)).expect("listen");
        let target = TcpListener::bind((Ipv4Addr::LOCALHOST, 18087)).expect("listen");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 18086));
        let connected = TcpStream::connect_timeout(&addr, Duration::from_millis(1500));
        let quick = Duration::from_millis(100);
        let accepted = [&original, &target].map(|l| accept_within(l, quick).is_some());
        (connected.map(|_| ()).map_err(|e| e.kind()), accepted)
    });
    assert!(connected.is_err(), "the connect must fail: {connected:?}");
    assert_eq!(accepted, [false, false], "no listener saw a connection");
    let log = stop(daemon);
    let warning = line_with(&log, "redirected to 127.0.0.1:18087");
    assert!(warning.contains("127.0.0.1:18086"), "{warning}");
    assert!(warning.contains("connredirect redirect"), "{warning}");
    let line = line_with(&log, "connredirect: unloaded");
    assert!(counter(line, "redirected") >= 1, "{line}");
}
