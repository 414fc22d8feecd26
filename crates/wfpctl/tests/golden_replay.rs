//! Replay output on the bundled example is pinned byte for byte: the summary table, the `--json`
//! object (apart from its `version` field, added with the serde report), the `--verdicts` lines
//! and the `--permitted` / `--blocked` captures in pcap and pcapng. The files under
//! `tests/golden/` were written by `wfpctl` before the issue-10 restructuring (commit 5831fc6);
//! a change to any of them is a change in behaviour and must be deliberate: regenerate them with
//! `WFP_BLESS=1 cargo test -p wfpctl --test golden_replay` and say why in the commit.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value as Json;

const CAPTURE: &str = "examples/replay/capture.pcap";
const POLICY: &str = "examples/replay/policy.toml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn out_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wfpctl-golden-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

/// Runs `wfpctl replay CAPTURE --policy POLICY ARGS...` from the repository root; stdout.
fn replay(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(["replay", CAPTURE, "--policy", POLICY])
        .args(args)
        .current_dir(root())
        .output()
        .expect("run wfpctl");
    assert!(
        out.status.success(),
        "wfpctl replay {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Compares `actual` with the golden file `name` (or rewrites it under `WFP_BLESS=1`).
fn check(name: &str, actual: &[u8]) {
    if std::env::var_os("WFP_BLESS").is_some() {
        fs::write(golden(name), actual).expect("bless");
        return;
    }
    let expected = fs::read(golden(name)).expect("golden file");
    if expected != actual {
        panic!(
            "replay output {name} differs from tests/golden/{name}:\n--- golden\n{}\n--- now\n{}",
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(actual)
        );
    }
}

#[test]
fn table_is_unchanged() {
    check("table.txt", &replay(&[]));
}

#[test]
fn json_is_unchanged_apart_from_version() {
    let mut now: Json = serde_json::from_slice(&replay(&["--json"])).expect("JSON summary");
    let version = now.as_object_mut().and_then(|o| o.remove("version"));
    assert_eq!(version, Some(Json::from(1)), "the report carries version 1");
    let golden: Json =
        serde_json::from_slice(&fs::read(golden("summary.json")).expect("golden")).expect("JSON");
    assert_eq!(
        now, golden,
        "--json summary differs from tests/golden/summary.json"
    );
}

#[test]
fn verdicts_and_captures_are_unchanged() {
    let dir = out_dir();
    let path = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let files = [
        "verdicts.jsonl",
        "permitted.pcap",
        "blocked.pcap",
        "permitted.pcapng",
        "blocked.pcapng",
    ];
    replay(&[
        "--verdicts",
        &path(files[0]),
        "--permitted",
        &path(files[1]),
        "--blocked",
        &path(files[2]),
    ]);
    replay(&["--permitted", &path(files[3]), "--blocked", &path(files[4])]);
    for f in files {
        check(f, &fs::read(dir.join(f)).expect("output file"));
    }
    let _ = fs::remove_dir_all(dir);
}
