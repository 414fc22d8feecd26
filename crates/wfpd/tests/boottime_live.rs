//! Boot-time filters live (§11.3, issue 14 "Persistence"): the real `wfpd` binary in a private
//! namespace (name `bootlive-PID-N`, loopback only, deleted by its guard).
//!
//! 1. wfpd runs; a boot-time BLOCK of UDP port 7402 and a persistent BLOCK of 7403 are added
//!    through the API socket; the boot-time ruleset file appears in the state directory.
//! 2. wfpd stops (queue rules kept, `absent = "fail-open"`); the boot unit's command
//!    (`nft -f boottime.nft`) runs: from the first packet 7402 is dropped while 7401 and 7403
//!    follow the absent posture (they pass).
//! 3. The table is deleted and wfpd started over a damaged store: it loads the table itself,
//!    refuses the store with a clear error, and exits; the table stays and 7402 stays blocked.
//! 4. wfpd starts over the good store: the log shows enforce → store loaded → lifted → started,
//!    the table is gone, 7402 passes, and the persistent policy blocks 7403.
//!
//! Every socket has a timeout; each check sends 5 datagrams. Skipped, with a printed reason,
//! unless running as root with `ip`, `iptables`, `nft` and `python3`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use wfp_api::{Client, FilterDto, ValueDto};
use wfp_nfqueue::TempNetns;

mod support;

use support::{
    config, in_ns, serial, skip_reason, udp_drain, udp_receiver, udp_send, wait_exit, Daemon, Fam,
    Guarded, TempDir, WFPD,
};

const OPEN: u16 = 7401;
const BOOT_BLOCKED: u16 = 7402;
const PERSISTENT_BLOCKED: u16 = 7403;

const POLICY: &str = r#"
[[filter]]
name = "allow inbound"
layer = "INBOUND_TRANSPORT_V4"
action = "PERMIT"
"#;

fn extra(dir: &TempDir) -> String {
    format!(
        r#"
[rules]
keep_on_stop = true
hooks = [ {{ hook = "OUTPUT", matches = ["-o", "lo"] }}, {{ hook = "INPUT", matches = ["-i", "lo"] }} ]

[posture]
absent = "fail-open"

[api]
socket = {:?}

[store]
path = {:?}
"#,
        dir.path("wfpd.sock").display().to_string(),
        dir.path("store.redb").display().to_string(),
    )
}

fn block(name: &str, port: u16, flag: &str) -> FilterDto {
    FilterDto {
        key: None,
        name: name.into(),
        description: String::new(),
        flags: vec![flag.into()],
        provider: None,
        layer: "INBOUND_TRANSPORT_V4".into(),
        sublayer: None,
        weight: wfp_api::WeightDto::Auto,
        conditions: vec![wfp_api::ConditionDto {
            field: "IP_LOCAL_PORT".into(),
            match_type: "EQUAL".into(),
            value: ValueDto::Uint16 { value: port },
        }],
        action: "BLOCK".into(),
        callout: None,
        raw_context: 0,
        provider_context: None,
    }
}

/// Which of 5 datagrams to `port` arrive (the first of them is the first packet sent there).
fn delivered(ns: &TempNetns, port: u16) -> BTreeSet<u32> {
    in_ns(ns, || {
        let rx = udp_receiver(Fam::V4, port);
        udp_send(Fam::V4, port, 0..5);
        udp_drain(&rx)
    })
}

fn nft(ns: &TempNetns, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns.name(), "nft"])
        .args(args)
        .output()
        .expect("nft")
}

fn table_present(ns: &TempNetns) -> bool {
    nft(ns, &["list", "table", "inet", "wfp_boottime"])
        .status
        .success()
}

/// wfpd over a store it must refuse: its exit status and log.
fn failing_start(ns: &TempNetns, dir: &TempDir, cfg: &Path) -> (std::process::ExitStatus, String) {
    let log = dir.path("failing.log");
    let child = Command::new("ip")
        .args(["netns", "exec", ns.name(), WFPD, "--config"])
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start wfpd");
    let mut child = Guarded(child);
    let status = wait_exit(&mut child.0);
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

fn nft_missing() -> Option<String> {
    match Command::new("nft").arg("-v").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("`nft` is not available".to_owned()),
    }
}

#[test]
fn boottime_filters_hold_from_the_first_packet_until_the_store_is_loaded() {
    if let Some(reason) = skip_reason().or_else(nft_missing) {
        eprintln!("skipping boottime_live: {reason}");
        return;
    }
    let _serial = serial();
    let ns = TempNetns::create("bootlive").expect("netns");
    let dir = TempDir::new("bootlive");
    let policy = dir.write("policy.toml", POLICY);
    let cfg = config(&dir, &[&policy], &extra(&dir));
    let all: BTreeSet<u32> = (0..5).collect();

    // 1. Policy through the API.
    let daemon = Daemon::start(&ns, &dir, &cfg);
    {
        let mut c = Client::connect(&dir.path("wfpd.sock")).expect("api");
        c.add_filter(&block("boot block", BOOT_BLOCKED, "BOOTTIME"))
            .expect("boot-time filter");
        c.add_filter(&block("persistent block", PERSISTENT_BLOCKED, "PERSISTENT"))
            .expect("persistent filter");
    }
    let rules = std::fs::read_to_string(dir.path("boottime.nft")).expect("ruleset file");
    assert!(rules.contains("th dport 7402 drop"), "{rules}");
    assert_eq!(
        delivered(&ns, BOOT_BLOCKED),
        all,
        "boot-time filters are not run-time"
    );
    assert!(delivered(&ns, PERSISTENT_BLOCKED).is_empty());
    assert!(!table_present(&ns));
    assert!(daemon.stop().success());

    // 2. Boot: the unit's command, then traffic.
    let load = nft(
        &ns,
        &["-f", &dir.path("boottime.nft").display().to_string()],
    );
    assert!(load.status.success(), "{load:?}");
    assert!(
        delivered(&ns, BOOT_BLOCKED).is_empty(),
        "blocked from the first packet"
    );
    assert_eq!(
        delivered(&ns, OPEN),
        all,
        "other traffic follows the absent posture"
    );
    assert_eq!(delivered(&ns, PERSISTENT_BLOCKED), all);

    // 3. A damaged store: wfpd enforces the table itself, then refuses to start.
    assert!(nft(&ns, &["delete", "table", "inet", "wfp_boottime"])
        .status
        .success());
    std::fs::rename(dir.path("store.redb"), dir.path("store.good")).expect("keep the store");
    std::fs::write(dir.path("store.redb"), vec![0x5a; 8192]).expect("damage");
    let (status, log) = failing_start(&ns, &dir, &cfg);
    assert!(!status.success(), "{log}");
    assert!(log.contains("boot-time filters enforced"), "{log}");
    assert!(log.contains("stay enforced"), "{log}");
    assert!(table_present(&ns), "the table stays");
    assert!(delivered(&ns, BOOT_BLOCKED).is_empty());
    assert_eq!(delivered(&ns, OPEN), all);

    // 4. The good store: loaded, then the table is lifted; persistent policy applies.
    std::fs::rename(dir.path("store.good"), dir.path("store.redb")).expect("restore");
    let daemon = Daemon::start(&ns, &dir, &cfg);
    let text = daemon.log_text();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in\n{text}"))
    };
    assert!(at("boot-time filters enforced") < at("persistent objects loaded"));
    assert!(at("persistent objects loaded") < at("boot-time filters lifted"));
    assert!(at("boot-time filters lifted") < at("wfpd started"));
    assert!(!table_present(&ns));
    assert_eq!(delivered(&ns, BOOT_BLOCKED), all);
    assert_eq!(delivered(&ns, OPEN), all);
    assert!(delivered(&ns, PERSISTENT_BLOCKED).is_empty());
    assert!(daemon.stop().success());
}
