//! `wfpctl add filter --boottime` and `wfpctl show filters --boottime[-only]` against wfpd's API
//! server in process (§11.3, §11.4 FWP_FILTER_ENUM_FLAG_INCLUDE_BOOTTIME / BOOTTIME_ONLY).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use wfp_core::Engine;
use wfpd::api::{ApiConfig, Server};

fn wfpctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("wfpctl-boottime-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn add(sock: &Path, name: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "add",
        "filter",
        "--layer",
        "INBOUND_TRANSPORT_V4",
        "--action",
        "BLOCK",
        "--name",
        name,
        "--condition",
        "IP_LOCAL_PORT=7000",
    ];
    args.extend_from_slice(extra);
    wfpctl(sock, &args)
}

#[test]
fn boottime_filters_are_added_and_shown_only_when_asked_for() {
    let d = dir();
    let engine = Arc::new(Engine::default());
    let mut config = ApiConfig::default();
    config.socket = Some(d.join("wfpd.sock"));
    let server = Server::start(Arc::clone(&engine), None, config).unwrap();
    let sock = server.path().to_path_buf();

    let out = add(&sock, "at boot", &["--boottime"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = add(&sock, "at run time", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = add(&sock, "both", &["--boottime", "--persistent"]);
    assert!(
        !out.status.success(),
        "clap refuses the pair: {}",
        text(&out)
    );
    assert_eq!(engine.boottime().filters.len(), 1);

    let plain = text(&wfpctl(&sock, &["show", "filters"]));
    assert!(
        plain.contains("at run time") && !plain.contains("at boot"),
        "{plain}"
    );
    let all = text(&wfpctl(&sock, &["show", "filters", "--boottime"]));
    assert!(
        all.contains("at run time") && all.contains("at boot"),
        "{all}"
    );
    assert!(all.contains("BOOTTIME"), "{all}");
    let only = text(&wfpctl(&sock, &["show", "filters", "--boottime-only"]));
    assert!(
        !only.contains("at run time") && only.contains("at boot"),
        "{only}"
    );
    let out = wfpctl(&sock, &["show", "filters", "--boottime-only", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(1));
    assert_eq!(json[0]["filter"]["flags"][0], "BOOTTIME");

    // A condition the kernel table cannot express is refused with its WFP status.
    let out = wfpctl(
        &sock,
        &[
            "add",
            "filter",
            "--layer",
            "ALE_AUTH_CONNECT_V4",
            "--action",
            "BLOCK",
            "--condition",
            "ALE_APP_ID=/usr/bin/curl",
            "--boottime",
        ],
    );
    assert!(
        !out.status.success() && text(&out).contains("FWP_E_CONDITION_NOT_FOUND"),
        "{}",
        text(&out)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&d);
}
