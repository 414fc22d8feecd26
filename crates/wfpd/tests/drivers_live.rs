//! A C callout driver in the running daemon: the real `wfpd` binary in its own network namespace
//! (`cabirt-drv-PID-N`, only `lo`), configured with a `[[driver]]` table (the flow-monitor example
//! driver with a parameter). The driver is loaded at start, sees real loopback UDP traffic through
//! NFQUEUE, and is unloaded at stop after the workers ended its flows (flowDeleteFn), with no
//! Verifier findings. A few packets, every wait bounded. Skipped unless root with `ip`, `iptables`
//! and `python3`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wfp_nfqueue::TempNetns;

const WFPD: &str = env!("CARGO_BIN_EXE_wfpd");
const DEADLINE: Duration = Duration::from_secs(20);

fn skip_reason() -> Option<String> {
    match std::fs::metadata("/proc/self") {
        Ok(meta) if meta.uid() == 0 => {}
        _ => return Some("not running as root".to_owned()),
    }
    for (program, arg) in [("ip", "-V"), ("iptables", "-V"), ("python3", "-V")] {
        match Command::new(program).arg(arg).output() {
            Ok(out) if out.status.success() => {}
            _ => return Some(format!("`{program}` is not available")),
        }
    }
    None
}

/// A child killed and reaped on drop.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(log: &Path, needle: &str) -> String {
    let end = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < end, "no {needle:?} in the log:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_configured_driver_is_loaded_at_start_sees_traffic_and_is_unloaded_at_stop() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipping: {reason}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("wfpd-cabirt-drv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let so: PathBuf = dir.join("flowmon.so");
    wfp_ffi::compile::build(&wfp_ffi::compile::BuildOptions {
        sources: vec![root.join("examples/drivers/flowmon/flowmon.c")],
        output: so.clone(),
        ..Default::default()
    })
    .expect("building flowmon");
    std::fs::write(dir.join("policy.toml"), "").unwrap();
    let config = dir.join("wfpd.toml");
    std::fs::write(
        &config,
        "[policy]\nfiles = [\"policy.toml\"]\n\n[log]\nlevel = \"debug\"\n\n\
         [rules]\nhooks = [ { hook = \"OUTPUT\", matches = [\"-o\", \"lo\"] }, { hook = \"INPUT\", matches = [\"-i\", \"lo\"] } ]\n\n\
         [[driver]]\npath = \"flowmon.so\"\nparams = { Verbose = 1 }\n",
    )
    .unwrap();

    let ns = TempNetns::create("cabirt-drv").expect("netns");
    let log = dir.join("wfpd.log");
    let child = Command::new("ip")
        .args(["netns", "exec", ns.name(), WFPD, "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start wfpd");
    let mut daemon = Guarded(child);
    let text = wait_for(&log, "wfpd started");
    assert!(text.contains("driver loaded"), "{text}");
    assert!(text.contains("[flowmon] flowmon: DriverEntry"), "{text}");

    // Three datagrams over loopback inside the namespace (one UDP flow).
    let py = "import socket\n\
              r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1', 0)); r.settimeout(2)\n\
              s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
              for i in range(3):\n    s.sendto(b'cabirt-%d' % i, r.getsockname()); r.recv(100)\n\
              print('sent')\n";
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "python3", "-c", py])
        .output()
        .expect("python");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let status = Command::new("kill")
        .args(["-s", "TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let end = Instant::now() + DEADLINE;
    while daemon.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "wfpd did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = wait_for(&log, "driver unloaded");
    assert!(
        text.lines()
            .any(|l| l.contains("[flowmon] flowmon: end flow") && l.contains("proto 17 ")),
        "{text}"
    );
    assert!(
        text.contains("[flowmon] flowmon: unloaded, 0 flows left"),
        "{text}"
    );
    assert!(!text.contains("driver verifier"), "{text}");
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
}
