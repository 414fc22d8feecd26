//! WDK-style sources: the wdkc test driver (ours, `tests/c/drivers/wdkc/`, two translation units
//! exercising version-less names, `__declspec`, header `__inline` functions, SAL, TraceLogging and
//! DPCs), and — when a checkout of microsoft/Windows-driver-samples' network/trans samples is at
//! `$WFP_WDK_SAMPLES` or `/tmp/wdk-samples` (one directory per sample: `inspect/`, `ddproxy/`,
//! `stmedit/`, `msnmntr/`, each holding that sample's `sys/` files) — those samples built
//! unchanged with `wfp_ffi::compile::build` and loaded. Absent samples are skipped with a note.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, DriverOptions, HostConfig, ParamValue};
use wfp_pcap::{CaptureReader, NetworkProtocol};
use wfp_shim::{PacketContext, PacketDirection, Shim, ShimConfig, Timestamp, Verdict};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build_all(name: &str, sources: Vec<PathBuf>) -> PathBuf {
    build_with(name, sources, &[])
}

fn build_with(name: &str, sources: Vec<PathBuf>, flags: &[&str]) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.so"));
    build(&BuildOptions {
        sources,
        output: out.clone(),
        extra_flags: flags.iter().map(|f| (*f).to_string()).collect(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building {name}: {e}"));
    out
}

fn c_sources(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "c"));
    v.sort();
    v
}

fn wdkc_sources() -> Vec<PathBuf> {
    c_sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers/wdkc"))
}

/// Loads the wdkc driver, checks its log, its filter and a clean unload.
fn check_wdkc(so: &Path) {
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    let fails: Vec<&String> = log.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{fails:#?}\n{log:#?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("ok ")).count(),
        13,
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l == "done"), "{log:#?}");
    // Written before TraceLoggingRegister: dropped. After: one line with every field.
    assert!(
        !log.iter().any(|l| l.contains("BeforeRegister")),
        "{log:#?}"
    );
    let expected = "Wdkc.Test.Provider: Checked Message=wide text Status=3221225485 Negative=-5 \
                    Hex=0xbeef Narrow=narrow Flag=true Key=1d2e3f40-1111-2222-0102-030405060708 \
                    gCounters.dpcRuns=1";
    assert!(log.iter().any(|l| l == expected), "{log:#?}");
    assert_eq!(engine.filters().len(), 1);
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(engine.filters().is_empty());
}

#[test]
fn wdkc_two_units_versionless_names_declspec_inline_sal_tracelogging_dpc() {
    check_wdkc(&build_all("wdkc", wdkc_sources()));
}

/// The body the memory checkers run in a child process (`WFP_FFI_WDKC_SO`).
#[test]
#[ignore = "run by the valgrind and AddressSanitizer tests in a child process"]
fn wdkc_inner() {
    let Some(so) = std::env::var_os("WFP_FFI_WDKC_SO") else {
        return;
    };
    check_wdkc(Path::new(&so));
    println!("wdkc: done");
}

#[test]
fn wdkc_under_valgrind() {
    let so = build_with("wdkc_vg", wdkc_sources(), &["-O0", "-g"]);
    support::run_inner_under_valgrind("wdkc_inner", "WFP_FFI_WDKC_SO", &so, "wdkc: done");
}

#[test]
fn wdkc_with_address_sanitizer() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let lib = std::process::Command::new(&cc)
        .arg("-print-file-name=libasan.so")
        .output()
        .unwrap();
    let lib = String::from_utf8_lossy(&lib.stdout).trim().to_string();
    if !Path::new(&lib).is_absolute() {
        eprintln!("note: {cc} has no libasan.so; skipping the AddressSanitizer run");
        return;
    }
    let so = build_with(
        "wdkc_asan",
        wdkc_sources(),
        &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
    );
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "wdkc_inner", "--nocapture"])
        .env("WFP_FFI_WDKC_SO", &so)
        .env("LD_PRELOAD", lib)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=98",
        )
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("wdkc: done"), "{text}");
    assert!(!text.contains("AddressSanitizer"), "{text}");
}

/// The sample checkout, or None (with a note) when absent.
fn samples() -> Option<PathBuf> {
    let dir = std::env::var_os("WFP_WDK_SAMPLES")
        .map_or_else(|| PathBuf::from("/tmp/wdk-samples"), PathBuf::from);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "note: no WDK samples at {} (set WFP_WDK_SAMPLES); skipping",
            dir.display()
        );
        None
    }
}

/// Replays examples/captures/loopback.pcap (one TCP connection and two UDP exchanges on
/// 127.0.0.1); returns (permitted, not permitted).
fn replay_loopback(engine: &Arc<Engine>, host: &DriverHost) -> (usize, usize) {
    let mut shim = Shim::new(engine.clone(), ShimConfig::default());
    let mut reader = CaptureReader::open(root().join("examples/captures/loopback.pcap")).unwrap();
    let (mut permitted, mut other) = (0, 0);
    while let Some(p) = reader.next_packet_ref().unwrap() {
        let Ok(l3) = p.decode_link() else { continue };
        if !matches!(l3.protocol, NetworkProtocol::Ipv4 | NetworkProtocol::Ipv6) {
            continue;
        }
        host.set_time(p.timestamp_ns);
        let now = Timestamp::from_nanos(p.timestamp_ns);
        let v = shim.handle_packet(
            now,
            PacketDirection::Infer,
            l3.network,
            &PacketContext::default(),
        );
        if matches!(v.verdict, Verdict::Permit) {
            permitted += 1;
        } else {
            other += 1;
        }
        // The asynchronous point, as `wfpctl replay` has it: what driver threads and DPCs are
        // deciding (bounded), then the shim's completions and the driver's injections.
        host.settle(std::time::Duration::from_secs(5));
        shim.handle_async(now);
        while let Some(o) = shim.poll_output() {
            if o.verdict.verdict == Verdict::Permit {
                permitted += 1;
            }
        }
    }
    shim.abort_all();
    (permitted, other)
}

#[test]
fn wdk_samples_build_unchanged_and_load() {
    let Some(dir) = samples() else { return };
    for sample in ["inspect", "ddproxy", "stmedit", "msnmntr"] {
        let sources = c_sources(&dir.join(sample));
        if sources.is_empty() {
            eprintln!("note: sample {sample} not in {}; skipping", dir.display());
            continue;
        }
        let so = build_all(sample, sources);
        if sample != "inspect" {
            continue;
        }
        // inspect: the connection to the configured remote address is pended and, with
        // BlockTraffic=1, refused; every packet of it is blocked; the unload is clean.
        let engine = Arc::new(Engine::default());
        let host = DriverHost::new(engine.clone(), HostConfig::default());
        let opts = DriverOptions {
            params: vec![
                (
                    "RemoteAddressToInspect".into(),
                    ParamValue::parse("sz:127.0.0.1"),
                ),
                ("BlockTraffic".into(), ParamValue::parse("dword:1")),
            ],
        };
        let driver = host.load_with(&so, &opts).unwrap();
        assert_eq!(engine.filters().len(), 4, "inspect adds 4 IPv4 filters");
        let (permitted, other) = replay_loopback(&engine, &host);
        assert_eq!(permitted, 0, "{other} not permitted");
        let report = driver.unload().unwrap();
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert!(engine.filters().is_empty());
    }
}
