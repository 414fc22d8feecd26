//! The engine state API WFPSampler's DriverEntry uses (`FwpmBfeStateGet0`,
//! `FwpmBfeStateSubscribeChanges0`, `FwpmBfeStateUnsubscribeChanges0`) and its processor and
//! clock helpers, through `tests/c/drivers/rt_bfe.c`: the state is RUNNING, a subscription's
//! callback never runs (the in-process engine never changes state while a driver is loaded),
//! handles are checked, and a subscription left at unload is a Verifier finding.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, Finding, HostConfig};

fn build_rt_bfe(name: &str, defines: &[&str]) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.so"));
    build(&BuildOptions {
        sources: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers/rt_bfe.c")],
        output: out.clone(),
        defines: defines.iter().map(|d| (*d).to_string()).collect(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building {name}: {e}"));
    out
}

/// Loads and unloads `so`: the log lines and the unload's findings.
fn run(so: &Path) -> (Vec<String>, Vec<Finding>) {
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(so).unwrap();
    let report = driver.unload().unwrap();
    let log = host.drain_log().into_iter().map(|l| l.text).collect();
    (log, report.findings)
}

#[test]
fn bfe_state_is_running_and_subscriptions_are_checked_handles() {
    let (log, findings) = run(&build_rt_bfe("rt_bfe", &[]));
    assert!(!log.iter().any(|l| l.starts_with("FAIL")), "{log:#?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("ok ")).count(),
        9,
        "{log:#?}"
    );
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn a_subscription_left_at_unload_is_a_finding() {
    let (log, findings) = run(&build_rt_bfe("rt_bfe_left", &["RT_BFE_LEAVE_SUBSCRIPTION"]));
    assert!(!log.iter().any(|l| l.starts_with("FAIL")), "{log:#?}");
    assert!(
        findings.iter().any(|f| matches!(
            f,
            Finding::ObjectsLeft {
                what: "BFE state subscription(s) never unsubscribed",
                count: 1
            }
        )),
        "{findings:?}"
    );
}
