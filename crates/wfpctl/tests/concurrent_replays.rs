//! Two replays in one process at the same time keep their built-in callouts' clocks and logs apart:
//! each run owns its [`Host`], so its flow log and stream reports are exactly those of the same
//! run alone (issue 10: no process-global state).

use std::path::PathBuf;
use std::sync::{Arc, Barrier};

use wfp_callouts::{FlowRecord, Host, StreamReport};
use wfp_pcap::CaptureReader;
use wfp_policy::Policy;
use wfpctl::replay::{replay_quiet, ReplayConfig};

const CAPTURE: &str = "examples/replay/capture.pcap";
const POLICY: &str = "examples/replay/policy.toml";

/// Logs only IPv4 TCP flows (with their bytes): a different flow log from [`POLICY`]'s, which logs
/// every flow and monitors the SSH stream.
const TCP_V4_ONLY: &str = r#"
[[filter]]
name = "flow log (tcp v4)"
layer = "ALE_FLOW_ESTABLISHED_V4"
action = "CALLOUT_INSPECTION"
callout = "wfp.flow-logger"
condition = [ { field = "IP_PROTOCOL", value = "tcp" } ]

[[filter]]
name = "flow log bytes (tcp)"
layer = "STREAM_V4"
action = "CALLOUT_INSPECTION"
callout = "wfp.flow-logger.bytes"
"#;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What a run's built-in callouts reported.
type Logs = (Vec<FlowRecord>, Vec<StreamReport>);

/// One replay of `capture` under `policy`, with its own host, engine and shim.
fn run(policy: &Policy, capture: &[u8]) -> Logs {
    let host = Host::new();
    let (engine, _) = policy.build_engine(&host).unwrap_or_else(|e| panic!("{e}"));
    let mut reader = CaptureReader::new(capture).expect("capture");
    let report = replay_quiet(&mut reader, engine, host, ReplayConfig::default()).expect("replay");
    (report.flow_log, report.stream_reports)
}

#[test]
fn concurrent_replays_keep_their_flow_logs_apart() {
    let capture = std::fs::read(root().join(CAPTURE)).expect("capture");
    let full = Policy::load(&root().join(POLICY)).unwrap_or_else(|e| panic!("{e}"));
    let tcp = Policy::parse(TCP_V4_ONLY, "tcp-v4.toml").unwrap_or_else(|e| panic!("{e}"));
    let policies = [&full, &tcp];

    let solo: Vec<Logs> = policies.iter().map(|p| run(p, &capture)).collect();
    assert!(
        !solo[0].0.is_empty() && !solo[0].1.is_empty(),
        "{:?}",
        solo[0]
    );
    assert!(
        !solo[1].0.is_empty() && solo[1].1.is_empty(),
        "{:?}",
        solo[1]
    );
    assert_ne!(solo[0].0, solo[1].0, "the two policies log different flows");
    assert!(solo[1].0.len() < solo[0].0.len());
    assert_eq!(run(&full, &capture), solo[0], "a solo run is deterministic");

    // Two threads per policy, started together, each replaying several times.
    let threads = 2 * policies.len();
    let start = Arc::new(Barrier::new(threads));
    let results: Vec<(usize, Vec<Logs>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (which, start, capture) = (t % policies.len(), Arc::clone(&start), &capture);
                let policy = policies[which];
                s.spawn(move || {
                    start.wait();
                    (which, (0..3).map(|_| run(policy, capture)).collect())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("replay thread"))
            .collect()
    });
    for (which, runs) in results {
        for logs in runs {
            assert_eq!(
                logs, solo[which],
                "policy {which}: records of another run mixed in"
            );
        }
    }
}
