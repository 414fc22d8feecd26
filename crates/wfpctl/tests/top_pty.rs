//! `wfpctl top` driven in a pseudo-terminal (portable-pty), its output fed to a terminal
//! emulator (vt100) and the rendered screen checked for the expected rows; `q` must end it with
//! exit code 0 and the terminal restored (alternate screen left).
//!
//! Against the canned API (`fake_api`: docs/api.md fixtures for `/v1/flows`, `/v1/metrics`,
//! `/v1/netevents`, which this branch's daemon does not serve yet) and against the real
//! in-process wfpd API server (state counters; the missing endpoints show their error in their
//! pane while the rest keeps refreshing).

mod fake_api;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_api::{FakeApi, Reply};
use portable_pty::{native_pty_system, CommandBuilder, PtySize};

const ROWS: u16 = 40;
const COLS: u16 = 160;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wfpctl-top-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `wfpctl top` on `socket` in a pty until `ready` accepts the screen (or 20 s pass, a
/// failure), presses `q`, and returns the last screen and whether the program exited with 0.
fn drive_top(socket: &Path, ready: impl Fn(&str) -> bool) -> (String, bool) {
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_wfpctl"));
    cmd.args(["top", "--interval-ms", "100", "--socket"]);
    cmd.arg(socket);
    cmd.env("TERM", "xterm-256color");
    let mut child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().unwrap();
    let mut writer = pty.master.take_writer().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let size = |n: u16| std::num::NonZeroU16::new(n).unwrap();
    let mut term = vt100::Parser::new(size(ROWS), size(COLS), 0);
    let give_up = Instant::now() + Duration::from_secs(20);
    let mut screen = String::new();
    while Instant::now() < give_up {
        if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(50)) {
            term.process(&bytes);
            screen = term.screen().contents();
            if ready(&screen) {
                break;
            }
        }
    }
    writer.write_all(b"q").unwrap();
    writer.flush().unwrap();
    let mut status = None;
    while Instant::now() < give_up + Duration::from_secs(10) {
        while let Ok(bytes) = rx.try_recv() {
            term.process(&bytes);
        }
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("top did not quit on q; screen:\n{screen}");
    };
    while let Ok(bytes) = rx.recv_timeout(Duration::from_millis(100)) {
        term.process(&bytes);
    }
    assert!(
        !term.screen().alternate_screen(),
        "top left the terminal in the alternate screen"
    );
    (screen, status.success())
}

const METRICS_1: &str = "# HELP wfp_packets_total Classify results.\n\
# TYPE wfp_packets_total counter\n\
wfp_packets_total{layer=\"INBOUND_TRANSPORT_V4\",verdict=\"block\"} 40\n\
wfp_packets_total{layer=\"ALE_AUTH_CONNECT_V4\",verdict=\"permit\"} 7\n\
wfp_flows 1\n";

#[test]
fn top_shows_flows_verdict_rates_and_events_and_quits_on_q() {
    let d = dir("fake");
    let api = FakeApi::start(&d);
    api.route(
        "GET /v1/state",
        Reply::Body(
            200,
            r#"{"version":"0.1.0","api":"v1","filters":3,"sublayers":5,"providers":0,
                "callouts":1,"sessions":2,"persistent_objects":0,"policy_epoch":9,
                "net_events_dropped":0}"#
                .into(),
        ),
    );
    api.route(
        "GET /v1/flows",
        Reply::Body(
            200,
            r#"[{"flow":77,"protocol":6,"local_addr":"10.0.0.2","local_port":41000,
                 "remote_addr":"10.0.0.1","remote_port":8443,"direction":"outbound",
                 "app_id":"/usr/bin/top-test","packets_out":3,"packets_in":2,
                 "bytes_out":180,"bytes_in":120,"age_ms":5}]"#
                .into(),
        ),
    );
    api.route("GET /v1/metrics", Reply::Body(200, METRICS_1.into()));
    api.route(
        "GET /v1/netevents",
        Reply::Body(
            200,
            r#"[{"seq":501,"kind":"CLASSIFY_DROP","layer":"INBOUND_TRANSPORT_V4","layer_id":12,
                 "time_ms":1700000000000,"filter_id":31,"protocol":17,"local_addr":"10.0.0.2",
                 "local_port":53,"remote_addr":"10.0.0.66","remote_port":6666}]"#
                .into(),
        ),
    );
    let (screen, ok) = drive_top(api.path(), |s| {
        s.contains("10.0.0.1:8443") && s.contains("10.0.0.66:6666") && s.contains("refresh #2")
    });
    assert!(ok, "top exited with an error; screen:\n{screen}");
    assert!(
        screen.contains("filters 3") && screen.contains("epoch 9"),
        "{screen}"
    );
    let flow_line = screen
        .lines()
        .find(|l| l.contains("10.0.0.1:8443"))
        .unwrap_or("");
    assert!(
        flow_line.contains("77")
            && flow_line.contains("tcp")
            && flow_line.contains("/usr/bin/top-test"),
        "{screen}"
    );
    let verdict_line = screen
        .lines()
        .find(|l| l.contains("block") && l.contains("INBOUND_TRANSPORT_V4"))
        .unwrap_or("");
    // Counters did not move between refreshes: 40 packets, 0.0 per second.
    assert!(
        verdict_line.contains("40") && verdict_line.contains("0.0"),
        "{screen}"
    );
    let event_line = screen.lines().find(|l| l.contains("501")).unwrap_or("");
    assert!(
        event_line.contains("CLASSIFY_DROP") && event_line.contains("31"),
        "{screen}"
    );
    let refreshes = api
        .seen()
        .iter()
        .filter(|s| s.line == "GET /v1/netevents?limit=10")
        .count();
    assert!(refreshes >= 2, "refreshed {refreshes} times");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn top_against_the_real_daemon_shows_its_state() {
    let d = dir("real");
    let engine = Arc::new(wfp_core::Engine::default());
    let mut config = wfpd::api::ApiConfig::default();
    config.socket = Some(d.join("wfpd.sock"));
    let server = wfpd::api::Server::start(Arc::clone(&engine), None, config).unwrap();
    // A static session's filter (it outlives wfpctl's connection).
    let add = std::process::Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args([
            "add",
            "filter",
            "--layer",
            "ALE_AUTH_CONNECT_V4",
            "--action",
            "BLOCK",
        ])
        .arg("--socket")
        .arg(server.path())
        .output()
        .unwrap();
    assert!(add.status.success());
    assert_eq!(engine.filters().len(), 1);
    let (screen, ok) = drive_top(server.path(), |s| {
        s.contains("filters 1") && s.contains("Verdicts") && s.contains("Recent net events")
    });
    assert!(ok, "{screen}");
    assert!(
        screen.contains("wfpd ") && screen.contains("filters 1"),
        "{screen}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&d);
}
