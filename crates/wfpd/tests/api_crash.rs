//! Robustness of the management plane with the real `wfpd` binary (brief: "committed policy
//! survives kill -9"): the daemon runs in a private network namespace (its queue binds there and
//! sees no traffic; no iptables rules) with the API and the store; a client streams committing
//! transactions while the daemon is killed with SIGKILL over and over; after the last restart
//! every committed transaction is complete and none is partial. Also: a client process killed
//! mid-session leaves no dynamic objects.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wfp_api::{Client, ClientError, FilterDto, SessionRequest, ValueDto, WeightDto};
use wfp_nfqueue::TempNetns;

/// SIGKILLs of the daemon while transactions stream.
const KILLS: u32 = 100;
/// Filters per transaction (a partial transaction would leave 1..FILTERS-1 of them).
const FILTERS: u32 = 3;

static SEQ: AtomicU32 = AtomicU32::new(0);

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wfpd-api-crash-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_config(dir: &Path, queue: u16) -> PathBuf {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "").unwrap();
    let text = format!(
        "[policy]\nfiles = [{policy:?}]\n\n[queues]\nfirst = {queue}\n\n[rules]\nmanage = false\n\n\
         [api]\nsocket = {sock:?}\n\n[store]\npath = {store:?}\n\n[log]\nlevel = \"warn\"\n",
        sock = dir.join("wfpd.sock"),
        store = dir.join("store.redb"),
    );
    let path = dir.join("wfpd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `wfpd --config CONFIG` inside `ns`, its socket accepting.
fn start_daemon(ns: &TempNetns, config: &Path, socket: &Path) -> Child {
    let _ = std::fs::remove_file(socket);
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            env!("CARGO_BIN_EXE_wfpd"),
            "--config",
        ])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wfpd starts");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if Client::connect(socket).is_ok_and(|mut c| c.state().is_ok()) {
            return child;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("wfpd did not come up");
}

fn filter(txn: u64, i: u32) -> FilterDto {
    FilterDto {
        key: None,
        name: format!("txn-{txn}-{i}"),
        description: String::new(),
        flags: vec!["PERSISTENT".into()],
        provider: None,
        layer: "ALE_AUTH_CONNECT_V4".into(),
        sublayer: None,
        weight: WeightDto::Auto,
        conditions: vec![wfp_api::ConditionDto {
            field: "IP_REMOTE_PORT".into(),
            match_type: "EQUAL".into(),
            value: ValueDto::Uint16 {
                value: u16::try_from(1 + txn % 60000).unwrap(),
            },
        }],
        action: "BLOCK".into(),
        callout: None,
        raw_context: 0,
        provider_context: None,
    }
}

/// Streams transactions of FILTERS persistent filters until the daemon goes away; returns the
/// ids of the transactions whose commit was answered OK, and the next id to use.
fn stream_transactions(socket: &Path, mut next: u64, progress: &AtomicU64) -> (Vec<u64>, u64) {
    let mut committed = Vec::new();
    let Ok(mut c) = Client::connect(socket) else {
        return (committed, next);
    };
    let _ = c.set_timeout(Some(Duration::from_secs(5)));
    loop {
        let txn = next;
        next += 1;
        let t0 = Instant::now();
        let ok = (|| -> Result<(), ClientError> {
            c.begin(false)?;
            for i in 0..FILTERS {
                c.add_filter(&filter(txn, i))?;
            }
            c.commit()
        })();
        match ok {
            Ok(()) => {
                if std::env::var_os("API_CRASH_DEBUG").is_some() && txn % 50 == 0 {
                    eprintln!("txn {txn} committed in {:?}", t0.elapsed());
                }
                committed.push(txn);
                progress.fetch_add(1, Ordering::Release);
            }
            Err(e) => {
                if std::env::var_os("API_CRASH_DEBUG").is_some() {
                    eprintln!("txn {txn}: {e} after {:?}", t0.elapsed());
                }
                return (committed, next);
            }
        }
    }
}

#[test]
fn kill_9_in_a_loop_loses_no_committed_transaction_and_leaves_none_partial() {
    let dir = tempdir();
    let ns = TempNetns::create("mgmtd").expect("netns");
    let socket = dir.join("wfpd.sock");
    let config = write_config(&dir, 7);
    let mut committed = BTreeSet::new();
    let mut next = 0;
    for round in 0..KILLS {
        let mut daemon = start_daemon(&ns, &config, &socket);
        let path = socket.clone();
        let progress = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&progress);
        let streamer = std::thread::spawn(move || stream_transactions(&path, next, &seen));
        // Kill only once this round has committed something, so every round tests a kill during
        // a stream of commits however loaded the machine is (bounded).
        let first = Instant::now();
        while progress.load(Ordering::Acquire) == 0 && first.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Then kill at a different point of the stream each round (10..=59 ms later).
        let pause = std::env::var("API_CRASH_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::from(10 + (round * 7) % 50));
        std::thread::sleep(Duration::from_millis(pause));
        daemon.kill().expect("SIGKILL");
        let _ = daemon.wait();
        let (done, after) = streamer.join().unwrap();
        committed.extend(done);
        next = after;
    }
    let mut daemon = start_daemon(&ns, &config, &socket);
    let mut c = Client::connect(&socket).unwrap();
    let filters = c.filters().unwrap();
    let mut per_txn: BTreeMap<u64, u32> = BTreeMap::new();
    for f in &filters {
        let txn: u64 = f
            .filter
            .name
            .strip_prefix("txn-")
            .and_then(|r| r.split('-').next())
            .and_then(|n| n.parse().ok())
            .expect("a streamed filter");
        *per_txn.entry(txn).or_default() += 1;
    }
    let partial: Vec<_> = per_txn.iter().filter(|(_, n)| **n != FILTERS).collect();
    assert!(partial.is_empty(), "partial transactions: {partial:?}");
    let lost: Vec<_> = committed
        .iter()
        .filter(|t| !per_txn.contains_key(t))
        .collect();
    assert!(lost.is_empty(), "committed transactions lost: {lost:?}");
    assert!(
        committed.len() >= 100,
        "the stream committed only {} transactions over {KILLS} kills",
        committed.len()
    );
    // Transactions whose commit answer was lost in the kill may be present, but complete.
    daemon.kill().unwrap();
    let _ = daemon.wait();
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client process (python3 over the socket) that opens a dynamic session, adds a sublayer and a
/// filter, says so, and waits to be killed.
const DYNAMIC_CLIENT: &str = r#"
import socket, sys, json, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rb")
def call(method, path, body):
    data = json.dumps(body).encode()
    s.sendall(("%s %s HTTP/1.1\r\nHost: wfpd\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (method, path, len(data))).encode() + data)
    status = f.readline()
    length = 0
    while True:
        h = f.readline().strip()
        if not h:
            break
        k, v = h.decode().split(":", 1)
        if k.lower() == "content-length":
            length = int(v)
    body = f.read(length)
    assert b" 200 " in status, (status, body)
    return json.loads(body)
call("POST", "/v1/session", {"dynamic": True, "name": "doomed"})
sub = call("POST", "/v1/sublayers", {"name": "doomed sublayer", "weight": 7})
call("POST", "/v1/filters", {"name": "doomed filter", "layer": "ALE_AUTH_CONNECT_V4", "sublayer": sub["key"], "action": "BLOCK"})
print("ready", flush=True)
time.sleep(60)
"#;

#[test]
fn a_client_process_killed_mid_session_leaves_no_dynamic_objects() {
    use std::io::BufRead;
    let dir = tempdir();
    let engine = std::sync::Arc::new(wfp_core::Engine::default());
    let mut config = wfpd::api::ApiConfig::default();
    config.socket = Some(dir.join("wfpd.sock"));
    let server = wfpd::api::Server::start(std::sync::Arc::clone(&engine), None, config).unwrap();
    let sublayers_before = engine.sublayers().len();
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(DYNAMIC_CLIENT)
        .arg(server.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    assert_eq!(engine.filters().len(), 1);
    assert_eq!(engine.sublayers().len(), sublayers_before + 1);
    let mut viewer = Client::connect(server.path()).unwrap();
    let sessions = viewer.sessions().unwrap();
    assert!(sessions.iter().any(|s| s.dynamic && s.dynamic_objects == 2));
    child.kill().unwrap();
    let _ = child.wait();
    let start = Instant::now();
    while (engine.filters().len(), engine.sublayers().len()) != (0, sublayers_before) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "dynamic objects outlived their client"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(viewer.sessions().unwrap().iter().all(|s| !s.dynamic));
    let _ = viewer.open_session(&SessionRequest::default());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
