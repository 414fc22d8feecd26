//! The harness of the live wfpd tests (`live.rs`, `async_live.rs`): namespaces, the real daemon
//! binary with its log and statistics, Python and Rust sockets inside a namespace. Every wait has
//! a deadline, every child a guard.
#![allow(
    dead_code,
    unused_macros,
    unused_imports,
    reason = "each live test crate uses a part of the harness (and of its macro)"
)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use wfp_nfqueue::TempNetns;

pub(crate) mod lab;

pub(crate) const WFPD: &str = env!("CARGO_BIN_EXE_wfpd");
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);
pub(crate) const SOCKET_TIMEOUT: Duration = Duration::from_millis(300);

// ------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------

pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The real path of the Python interpreter (`python3` may be a shim script).
pub(crate) fn python() -> Option<&'static PathBuf> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()?;
        let path = String::from_utf8(out.stdout).ok()?;
        std::fs::canonicalize(path.trim()).ok()
    })
    .as_ref()
}

pub(crate) fn skip_reason() -> Option<String> {
    match std::fs::metadata("/proc/self") {
        Ok(meta) if meta.uid() == 0 => {}
        _ => return Some("not running as root".to_owned()),
    }
    for (program, arg) in [("ip", "-V"), ("iptables", "-V")] {
        match Command::new(program).arg(arg).output() {
            Ok(out) if out.status.success() => {}
            _ => return Some(format!("`{program}` is not available")),
        }
    }
    if python().is_none() {
        return Some("`python3` is not available".to_owned());
    }
    None
}

macro_rules! skip_unless_live {
    ($name:expr) => {
        if let Some(reason) = skip_reason() {
            eprintln!("skipping {}: {reason}", $name);
            return;
        }
    };
    ($name:expr, $fam:expr) => {
        if let Some(reason) = skip_reason().or_else(|| $fam.unavailable()) {
            eprintln!("skipping {} ({:?}): {reason}", $name, $fam);
            return;
        }
    };
}
pub(crate) use skip_unless_live;

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wfpd-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    /// A web root `www/` holding `file` with `len` bytes of a-z; returns (root, body).
    pub(crate) fn web_root(&self, file: &str, len: usize) -> (PathBuf, String) {
        let body: String = (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let www = self.path("www");
        std::fs::create_dir_all(&www).expect("www");
        std::fs::write(www.join(file), &body).expect("body");
        (www, body)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (SIGKILL) and reaped on drop.
pub(crate) struct Guarded(pub(crate) Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -s {sig} {pid}");
    if sig == "STOP" {
        wait_stopped(pid);
    }
}

/// Waits (bounded) until every thread of `pid` is stopped: `kill` returns once the signal is
/// sent, while a worker thread running on the other CPU may still read and decide a packet.
fn wait_stopped(pid: u32) {
    let start = std::time::Instant::now();
    let stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return true;
        };
        tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|st| {
                    st.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('T'))
                })
                .unwrap_or(true)
        })
    };
    while !stopped() && start.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The wfpd binary running inside a namespace, its log in a file.
pub(crate) struct Daemon {
    pub(crate) child: Guarded,
    pub(crate) log: PathBuf,
    pub(crate) stats: PathBuf,
}

impl Daemon {
    pub(crate) fn start(ns: &TempNetns, dir: &TempDir, config: &Path) -> Self {
        let log = dir.path(&format!("wfpd-{}.log", rand_u32()));
        let file = std::fs::File::create(&log).expect("log file");
        // A previous daemon's statistics must not be mistaken for this one's.
        let _ = std::fs::remove_file(dir.path("stats.json"));
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), WFPD, "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start wfpd");
        let daemon = Self {
            child: Guarded(child),
            log,
            stats: dir.path("stats.json"),
        };
        daemon.wait_log("wfpd started");
        daemon
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `count` lines containing `needle`; returns those lines.
    pub(crate) fn wait_log_n(&self, needle: &str, count: usize) -> Vec<String> {
        let end = Instant::now() + DEADLINE;
        loop {
            let lines: Vec<String> = self
                .log_text()
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_owned)
                .collect();
            if lines.len() >= count {
                return lines;
            }
            assert!(
                Instant::now() < end,
                "no {needle:?} in the wfpd log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn wait_log(&self, needle: &str) -> String {
        self.wait_log_n(needle, 1).remove(0)
    }

    /// [`Daemon::stats`] once no packet waits in the kernel's queues, or after a bounded wait:
    /// a packet that reached a queue just before the snapshot (a late datagram, neighbour
    /// discovery) is still being read then; one left unanswered keeps waiting and the caller's
    /// check of `kernel_waiting` fails.
    pub(crate) fn settled_stats(&self) -> serde_json::Value {
        let end = Instant::now() + Duration::from_secs(3);
        loop {
            let stats = self.stats();
            let waiting: u64 = stats["queues"].as_array().map_or(0, |qs| {
                qs.iter().filter_map(|q| q["kernel_waiting"].as_u64()).sum()
            });
            if waiting == 0 || Instant::now() >= end {
                return stats;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGUSR1, then the stats file once it reflects that request.
    pub(crate) fn stats(&self) -> serde_json::Value {
        let before = self
            .read_stats()
            .map_or(0, |s| s["generation"].as_u64().unwrap_or(0));
        signal(self.pid(), "USR1");
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(s) = self.read_stats() {
                if s["generation"].as_u64().unwrap_or(0) > before {
                    return s;
                }
            }
            assert!(Instant::now() < end, "no stats:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn read_stats(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(&self.stats).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// SIGTERM and the exit status.
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        signal(self.pid(), "TERM");
        wait_exit(&mut self.child.0)
    }

    /// SIGKILL (the daemon is absent from now on; its rules stay).
    pub(crate) fn kill(mut self) {
        signal(self.pid(), "KILL");
        let _ = wait_exit(&mut self.child.0);
    }
}

pub(crate) fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < end, "wfpd did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn rand_u32() -> u32 {
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A config for a daemon in `dir` with the given policy files and extra tables.
pub(crate) fn config(dir: &TempDir, policies: &[&Path], extra: &str) -> PathBuf {
    let files: Vec<String> = policies
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let text = format!(
        "[policy]\nfiles = [{}]\n\n[stats]\nfile = {:?}\ninterval_secs = 0\n\n[log]\nlevel = \"debug\"\n\n{extra}",
        files.join(", "),
        dir.path("stats.json").display().to_string(),
    );
    dir.write("wfpd.toml", &text)
}

pub(crate) fn iptables_save(ns: &TempNetns) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "iptables-save"])
        .output()
        .expect("iptables-save");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts a Python server in the namespace and waits for its "ready".
pub(crate) fn py_server(ns: &TempNetns, tool: &Path, fam: Fam, args: &[&str]) -> Guarded {
    let py = python().expect("python");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(py)
        .arg(tool)
        .args(args)
        .env("WFP_HOST", fam.lo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python server");
    let stdout = child.stdout.take().expect("stdout");
    let guard = Guarded(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(DEADLINE).expect("server ready in time");
    assert_eq!(line.trim(), "ready", "server {args:?}");
    guard
}

/// Runs a Python client in the namespace; returns its one line of output.
pub(crate) fn py_client(ns: &TempNetns, tool: &Path, fam: Fam, args: &[&str]) -> String {
    let py = python().expect("python");
    let out = Command::new("timeout")
        .args(["10", "ip", "netns", "exec", ns.name()])
        .arg(py)
        .arg(tool)
        .args(args)
        .env("WFP_HOST", fam.lo())
        .stdin(Stdio::null())
        .output()
        .expect("python client");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `body` on a thread inside the namespace (for Rust sockets).
pub(crate) fn in_ns<T: Send>(ns: &TempNetns, body: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter().expect("enter netns");
                body()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

pub(crate) fn udp_receiver(fam: Fam, port: u16) -> UdpSocket {
    let rx = UdpSocket::bind((fam.lo(), port)).expect("bind receiver");
    rx.set_read_timeout(Some(SOCKET_TIMEOUT)).expect("timeout");
    rx
}

pub(crate) fn udp_send(fam: Fam, port: u16, seqs: impl IntoIterator<Item = u32>) {
    let tx = UdpSocket::bind((fam.lo(), 0)).expect("bind sender");
    tx.set_write_timeout(Some(SOCKET_TIMEOUT)).expect("timeout");
    for seq in seqs {
        let _ = tx.send_to(&seq.to_be_bytes(), (fam.lo(), port));
    }
}

/// The address family of a live test over loopback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fam {
    /// IPv4: `127.0.0.1`, the `_V4` layers, iptables.
    V4,
    /// IPv6: `::1`, the `_V6` layers, ip6tables too (`[rules] ipv6 = true`).
    V6,
}

impl Fam {
    /// Both families.
    pub(crate) const BOTH: [Self; 2] = [Self::V4, Self::V6];

    /// The loopback address.
    pub(crate) fn lo(self) -> &'static str {
        match self {
            Self::V4 => "127.0.0.1",
            Self::V6 => "::1",
        }
    }

    /// The layer-name suffix: `V4` / `V6`.
    pub(crate) fn v(self) -> &'static str {
        match self {
            Self::V4 => "V4",
            Self::V6 => "V6",
        }
    }

    /// `address:port` as wfpd logs it (`[::1]:80` for IPv6).
    pub(crate) fn endpoint(self, port: u16) -> String {
        match self {
            Self::V4 => format!("127.0.0.1:{port}"),
            Self::V6 => format!("[::1]:{port}"),
        }
    }

    /// `[rules]` lines that install the rules for this family (IPv6 needs ip6tables too).
    pub(crate) fn rules_line(self) -> &'static str {
        match self {
            Self::V4 => "",
            Self::V6 => "ipv6 = true\n",
        }
    }

    /// Whether the host can run this family's rules (`ip6tables` for IPv6).
    pub(crate) fn unavailable(self) -> Option<String> {
        if self == Self::V4 {
            return None;
        }
        match Command::new("ip6tables").arg("-V").output() {
            Ok(out) if out.status.success() => None,
            _ => Some("`ip6tables` is not available".to_owned()),
        }
    }
}

/// Receives until a quiet `SOCKET_TIMEOUT` (bounded by `DEADLINE`).
pub(crate) fn udp_drain(rx: &UdpSocket) -> BTreeSet<u32> {
    let mut got = BTreeSet::new();
    let mut buf = [0u8; 64];
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        match rx.recv(&mut buf) {
            Ok(4) => {
                got.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    got
}

/// `key=value` from a log line.
pub(crate) fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let pat = format!(" {key}=");
    let at = line
        .find(&pat)
        .map_or_else(|| panic!("no {key} in {line}"), |i| i + pat.len());
    line[at..].split_whitespace().next().unwrap_or("")
}

pub(crate) fn iptables6_save(ns: &TempNetns) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "ip6tables-save"])
        .output()
        .expect("ip6tables-save");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
