//! What WFPSampler's syslib and sys/ use that wfp-ddk lacked (docs/c-abi.md "WFPSampler"), through
//! our own C++ driver `tests/c/drivers/wfpsgaps/` (not the sample): the SID family and
//! FWP_TOKEN_INFORMATION, classify and DoS-protection options, netiodef.h headers over real packet
//! bytes, vSwitch layer/field ids and metadata names, DEFAULT_COMPARTMENT_ID, the SAL set and
//! layer-2 injection
//! (refused with STATUS_FWP_INVALID_PARAMETER, no completion); and the MSVC dialect the build
//! rewrites or reproduces — `inline` helpers defined in one unit and called from another, `i64` /
//! `ui64` / `i32` / `i16` / `i8` literal suffixes, a nested anonymous struct repeating a member
//! name in a local header.

#[path = "support/build.rs"]
mod builder;
use std::path::PathBuf;
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::{DriverHost, HostConfig};

fn sources() -> Vec<PathBuf> {
    [
        "wfpsgaps_main.cpp",
        "wfpsgaps_headers.cpp",
        "wfpsgaps_util.cpp",
    ]
    .iter()
    .map(|f| builder::source(&format!("wfpsgaps/{f}")))
    .collect()
}

#[test]
fn wfpsampler_constructs_build_and_behave() {
    let so = builder::driver("wfpsgaps", &sources(), &[], &[]);
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let report = driver.unload().unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert!(!log.iter().any(|l| l.starts_with("FAIL")), "{log:#?}");
    assert!(log.iter().any(|l| l == "done"), "{log:#?}");
    let oks = log.iter().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(oks, 27, "{log:#?}");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}
