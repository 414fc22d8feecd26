//! Runtime pieces WFPSampler's DriverEntry uses (docs/c-abi.md "WFPSampler"): the engine state API
//! (`FwpmBfeStateGet0`, `FwpmBfeStateSubscribeChanges0`, `FwpmBfeStateUnsubscribeChanges0`) and
//! its processor and clock helpers through `tests/c/drivers/rt_bfe.c` — the state is RUNNING, a
//! subscription's callback never runs (the in-process engine never changes state while a driver
//! is loaded), handles are checked, a subscription left at unload is a Verifier finding — and
//! KMDF wait locks through `tests/c/drivers/rt_waitlock.c`, contended from a system thread, and
//! callback objects through `tests/c/drivers/rt_callback.c` (`\Callback\PowerState`, never
//! notified by the host; a driver's own object notified with ExNotifyCallback).

#[path = "support/build.rs"]
mod builder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::{DriverHost, Finding, HostConfig};

fn build_rt_bfe(name: &str, defines: &[&str]) -> PathBuf {
    build_driver("rt_bfe.c", name, defines)
}

fn build_driver(source: &str, name: &str, defines: &[&str]) -> PathBuf {
    builder::driver(name, &[builder::source(source)], defines, &[])
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

#[test]
fn wait_locks_exclude_poll_and_time_out_and_go_with_the_driver() {
    let (log, findings) = run(&build_driver("rt_waitlock.c", "rt_waitlock", &[]));
    assert!(!log.iter().any(|l| l.starts_with("FAIL")), "{log:#?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("ok ")).count(),
        7,
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l == "done"), "{log:#?}");
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn callback_objects_power_state_and_own_notifications() {
    let (log, findings) = run(&build_driver("rt_callback.c", "rt_callback", &[]));
    assert!(!log.iter().any(|l| l.starts_with("FAIL")), "{log:#?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("ok ")).count(),
        9,
        "{log:#?}"
    );
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn a_callback_registration_and_reference_left_at_unload_are_findings() {
    let (log, findings) = run(&build_driver(
        "rt_callback.c",
        "rt_callback_left",
        &["RT_CALLBACK_LEAVE"],
    ));
    assert!(!log.iter().any(|l| l.starts_with("FAIL")), "{log:#?}");
    for what in [
        "callback registration(s) never unregistered",
        "callback object reference(s) never released",
    ] {
        assert!(
            findings
                .iter()
                .any(|f| matches!(f, Finding::ObjectsLeft { what: w, count: 1 } if *w == what)),
            "{what}: {findings:?}"
        );
    }
}
