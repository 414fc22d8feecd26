//! C++ callout drivers: `wfp_ffi::compile::build` compiles `.cpp` sources with `$CXX` and the
//! WDK's kernel-mode C++ settings (no exceptions, no RTTI, no thread-safe statics) next to C
//! sources of the same driver, against the same headers. The cxxmon test driver (ours,
//! `tests/c/drivers/cxxmon/`: one C++ and one C translation unit) checks the C++ side of the
//! headers (extern "C", GUID operators, DEFINE_ENUM_FLAG_OPERATORS, RTL_CONSTANT_STRING over
//! L"" literals, pool operator new/delete, RAII spin-lock guards, templates, lambdas, a global
//! constructor, WPP), counts packets per remote port at the IPv4 transport layers of a replay and
//! blocks outbound UDP to port 9000. Also run under valgrind like the C drivers.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions, Language};
use wfp_ffi::{DriverHost, HostConfig};
use wfp_pcap::{CaptureReader, NetworkProtocol};
use wfp_shim::{PacketContext, PacketDirection, Shim, ShimConfig, Timestamp, Verdict};

fn cxxmon_sources() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers/cxxmon");
    vec![dir.join("cxxmon.cpp"), dir.join("cxxmon_c.c")]
}

fn build_cxxmon(name: &str, flags: &[&str]) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.so"));
    build(&BuildOptions {
        sources: cxxmon_sources(),
        output: out.clone(),
        extra_flags: flags.iter().map(|f| (*f).to_string()).collect(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building {name}: {e}"));
    out
}

/// Replays examples/captures/loopback.pcap (TCP 44548 → 8000, UDP 41494 ↔ 9000 on 127.0.0.1);
/// the UDP payloads that were permitted.
fn replay_loopback(engine: &Arc<Engine>, host: &DriverHost) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut reader = CaptureReader::open(root.join("examples/captures/loopback.pcap")).unwrap();
    let mut shim = Shim::new(engine.clone(), ShimConfig::default());
    let mut udp = Vec::new();
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
        if v.verdict == Verdict::Permit && l3.network.get(9) == Some(&17) {
            udp.push(l3.network.to_vec());
        }
    }
    shim.abort_all();
    udp
}

/// Loads cxxmon, checks its language checks, replays, unloads and checks its table.
fn check_cxxmon(so: &Path) {
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    let fails: Vec<&String> = log.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{fails:#?}\n{log:#?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("ok ")).count(),
        9,
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l == "done"), "{log:#?}");
    // DoTraceMessage in a C++ unit, through the generated cxxmon.tmh.
    assert!(
        log.iter().any(|l| l == "cxxmon: language checks done"),
        "{log:#?}"
    );
    assert_eq!(engine.filters().len(), 2);
    let udp = replay_loopback(&engine, &host);
    let dport = |p: &Vec<u8>| u16::from_be_bytes([p[22], p[23]]);
    assert!(
        udp.iter().all(|p| dport(p) != 9000),
        "UDP to 9000 is blocked: {udp:?}"
    );
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(engine.filters().is_empty());
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    // loopback.pcap's packets pass both transport layers (out and in on lo): the table the
    // unload routine printed, in first-seen order.
    let table: Vec<&str> = log
        .iter()
        .filter(|l| l.starts_with("port"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        table,
        [
            "port 8000: 10 packets 221 bytes out in",
            "port 44548: 10 packets 221 bytes out in",
            "port 9000: 2 packets 57 bytes out in blocked",
            "port 41494: 1 packets 35 bytes out",
            "ports 4 largest 63",
        ],
        "{log:#?}"
    );
}

#[test]
fn sources_are_compiled_as_their_extension_says() {
    assert_eq!(Language::of(Path::new("a/driver.cpp")), Language::Cxx);
    assert_eq!(Language::of(Path::new("driver.cc")), Language::Cxx);
    assert_eq!(Language::of(Path::new("driver.cxx")), Language::Cxx);
    assert_eq!(Language::of(Path::new("driver.c")), Language::C);
    let cxx = wfp_ffi::compile::cxx_flags();
    assert!(cxx.contains(&"-fno-exceptions") && cxx.contains(&"-fno-rtti"));
    assert!(
        !cxx.contains(&"-std=gnu11") && !cxx.contains(&"-Werror=implicit-function-declaration")
    );
}

#[test]
fn cxx_driver_with_a_c_unit_builds_loads_classifies_and_unloads_cleanly() {
    check_cxxmon(&build_cxxmon("cxxmon", &[]));
}

/// The body the valgrind test runs in a child process (`WFP_FFI_CXXMON_SO`).
#[test]
#[ignore = "run by the valgrind test in a child process"]
fn cxxmon_inner() {
    let Some(so) = std::env::var_os("WFP_FFI_CXXMON_SO") else {
        return;
    };
    check_cxxmon(Path::new(&so));
    println!("cxxmon: done");
}

#[test]
fn cxx_driver_under_valgrind() {
    let so = build_cxxmon("cxxmon_vg", &["-O0", "-g"]);
    support::run_inner_under_valgrind("cxxmon_inner", "WFP_FFI_CXXMON_SO", &so, "cxxmon: done");
}

/// Every WDK-named header compiles on its own as C++ (g++/clang++ with the C++ driver flags) at
/// two NTDDI versions, with -Wall -Wextra -Werror.
#[test]
fn every_header_compiles_alone_as_cxx() {
    let headers = [
        "ntddk.h",
        "wdm.h",
        "ntifs.h",
        "ndis.h",
        "fwpsk.h",
        "fwpmk.h",
        "fwpmu.h",
        "fwptypes.h",
        "fwpstypes.h",
        "fwpmtypes.h",
        "guiddef.h",
        "initguid.h",
        "ws2ipdef.h",
        "in6addr.h",
        "ntstrsafe.h",
        "intsafe.h",
        "ntintsafe.h",
        "ip2string.h",
        "wdf.h",
        "wdmsec.h",
        "traceloggingprovider.h",
        "netioddk.h",
        "netiodef.h",
    ];
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    for ntddi in ["0x0A00000C", "0x0A000000"] {
        for h in headers {
            let src = dir.join(format!("hdr_{}.cpp", h.replace('.', "_")));
            std::fs::write(&src, format!("#include <{h}>\nint wfp_header_check;\n")).unwrap();
            let status = std::process::Command::new(&cxx)
                .args(wfp_ffi::compile::CXX_ONLY_FLAGS)
                .args([
                    "-fshort-wchar",
                    "-fsyntax-only",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-Wno-unused-parameter",
                    "-Wno-unused-function",
                ])
                .arg(format!("-DNTDDI_VERSION={ntddi}"))
                .arg("-DDBG=1")
                .arg(format!("-I{}", wfp_ffi::compile::include_dir().display()))
                .arg(&src)
                .status()
                .unwrap();
            assert!(status.success(), "{h} as C++ at NTDDI {ntddi}");
        }
    }
}
