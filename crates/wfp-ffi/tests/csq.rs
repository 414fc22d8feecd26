//! Cancel-safe IRP queues from C (docs/c-abi.md "Cancel-safe queues"):
//! `tests/c/drivers/rt_csq.c` parks requests of one handle, takes some out by tag and by context,
//! and the host cancels the rest when the handle closes; plain, under valgrind memcheck and with
//! AddressSanitizer.

#[path = "support/asan.rs"]
mod asan;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, HostConfig};

const STATUS_CANCELLED: u32 = 0xC000_0120;
const STATUS_INSUFFICIENT_RESOURCES: u32 = 0xC000_009A;

fn rt_csq(name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers/rt_csq.c");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.so"));
    build(&BuildOptions {
        sources: vec![src],
        output: out.clone(),
        extra_flags: flags.iter().map(|f| (*f).to_string()).collect(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building {name}: {e}"));
    out
}

/// CTL_CODE(FILE_DEVICE_UNKNOWN, function, METHOD_BUFFERED, FILE_ANY_ACCESS).
const fn ctl(function: u32) -> u32 {
    (0x22 << 16) | (function << 2)
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

/// (status, information, output as a ULONG when 4 bytes came back).
fn summary(o: &wfp_ffi::IoctlOutput) -> (u32, usize, Option<u32>) {
    let value = (o.output.len() >= 4).then(|| le32(&o.output));
    (o.status, o.information, value)
}

fn run_rt_csq(so: &Path) {
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(so).unwrap();
    let mut h = driver.open().unwrap();
    for (code, tag) in [(0x900, 1u32), (0x900, 2), (0x901, 3)] {
        let started = h.start_ioctl(ctl(code), &tag.to_le_bytes(), 4).unwrap();
        assert!(started.is_none(), "tag {tag} queued (pending)");
    }
    let next = |h: &mut wfp_ffi::DeviceHandle<'_>, input: &[u8]| {
        summary(&h.ioctl(ctl(0x902), input, 4).unwrap())
    };
    assert_eq!(
        next(&mut h, &2u32.to_le_bytes()),
        (0, 4, Some(1)),
        "tag 2 by peek context"
    );
    assert_eq!(
        next(&mut h, &9u32.to_le_bytes()),
        (0, 4, Some(0)),
        "no tag 9"
    );
    let remove_ctx =
        |h: &mut wfp_ffi::DeviceHandle<'_>| summary(&h.ioctl(ctl(0x903), &[], 4).unwrap());
    assert_eq!(remove_ctx(&mut h), (0, 4, Some(1)), "the context's IRP");
    assert_eq!(
        remove_ctx(&mut h),
        (0, 4, Some(0)),
        "the context no longer holds it"
    );
    assert!(h.start_ioctl(ctl(0x904), &[], 4).unwrap().is_none());
    let refused = h
        .start_ioctl(ctl(0x904), &[], 4)
        .unwrap()
        .expect("completed at once");
    assert_eq!(
        refused.status, STATUS_INSUFFICIENT_RESOURCES,
        "CsqInsertIrpEx's error"
    );
    let stats = summary(&h.ioctl(ctl(0x905), &[], 4).unwrap());
    assert_eq!(
        stats.2,
        Some(2),
        "tag 1 and the Ex request queued, none cancelled"
    );

    let results: Vec<_> = h.close().unwrap().iter().map(summary).collect();
    assert_eq!(
        results,
        vec![
            (STATUS_CANCELLED, 0, None),
            (0, 4, Some(2)),
            (0, 4, Some(3)),
            (STATUS_CANCELLED, 0, None),
        ],
        "in the order started: cancelled at close, taken by tag, taken by context, cancelled"
    );
    let stats = summary(&driver.ioctl(ctl(0x905), &[], 4).unwrap());
    assert_eq!(stats.2, Some(2 << 16), "two cancelled, nothing queued");
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn cancel_safe_queues_remove_by_tag_and_context_and_cancel_at_close() {
    run_rt_csq(&rt_csq("rt_csq", &[]));
}

/// The body the valgrind and AddressSanitizer tests run in a child process.
#[test]
#[ignore = "run by rt_csq_under_valgrind / rt_csq_with_address_sanitizer in a child process"]
fn rt_csq_inner() {
    let Ok(so) = std::env::var("WFP_FFI_RT_CSQ_SO") else {
        return;
    };
    run_rt_csq(Path::new(&so));
    println!("rt_csq: done");
}

#[test]
fn rt_csq_under_valgrind() {
    let so = rt_csq("rt_csq_vg", &[]);
    support::run_inner_under_valgrind("rt_csq_inner", "WFP_FFI_RT_CSQ_SO", &so, "rt_csq: done");
}

#[test]
fn rt_csq_with_address_sanitizer() {
    asan::run_inner("rt_csq_inner", "WFP_FFI_RT_CSQ_SO", "rt_csq: done", || {
        rt_csq(
            "rt_csq_asan",
            &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
        )
    });
}
