//! `wfpctl add filter --boottime` and `wfpctl show filters --boottime[-only]` against wfpd's API
//! server in process (§11.3, §11.4 FWP_FILTER_ENUM_FLAG_INCLUDE_BOOTTIME / BOOTTIME_ONLY).

mod support;

use std::path::Path;
use std::process::Output;

use support::{text, wfpctl, InProcessApi};

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
    let api = InProcessApi::start("boottime");
    let (engine, sock) = (&api.engine, api.sock.clone());

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
}
