//! WDK-style sources: the wdkc test driver (ours, `tests/c/drivers/wdkc/`, two translation units
//! exercising version-less names, `__declspec`, header `__inline` functions, SAL, TraceLogging and
//! DPCs), and — when a checkout of microsoft/Windows-driver-samples' network/trans samples is at
//! `$WFP_WDK_SAMPLES` or `/tmp/wdk-samples` (one directory per sample: `inspect/`, `ddproxy/`,
//! `stmedit/`, `msnmntr/`, each holding that sample's `sys/` files, byte for byte as fetched) —
//! those samples built unchanged with `wfp_ffi::compile::build`, loaded and replayed (stmedit with
//! either editor and with both, ddproxy both ways). Absent samples are skipped with a note.

#[path = "support/asan.rs"]
mod asan;
#[path = "support/samples.rs"]
mod samples;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use samples::{
    add_monitor_filters, build_dir, contains, ddproxy_inbound_rewrites_source, find_sample,
    loopback_packets, of_protocol, params, ports, replay, sample_dirs, tcp_stream, udp4,
    unload_applying, Replayed,
};
use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, Finding, HostConfig};
use wfp_shim::{Owner, PacketContext, Shim, ShimConfig};

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
        14,
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
    asan::run_inner("wdkc_inner", "WFP_FFI_WDKC_SO", "wdkc: done", || {
        build_with(
            "wdkc_asan",
            wdkc_sources(),
            &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
        )
    });
}

/// ddproxy's inbound half: a reply from the new port (9001) is absorbed at DATAGRAM_DATA
/// (inbound filter), rewritten in a clone and receive-injected. Upstream's later versions
/// rewrite its source port back to the intercepted port (9000) — the application sees the reply
/// from the port it sent to; the first version (97cf5197, as in the one-commit copies) rewrites
/// its destination port to 9000 instead. Which one `dir` holds is read from its source.
fn check_ddproxy_inbound(dir: &Path, so: &Path) {
    let packets = [
        (1_000_000, udp4(41494, 9000, b"ping to the proxied port")),
        (2_000_000, udp4(9001, 41494, b"pong from the new port")),
    ];
    let setup = Setup {
        params: DDPROXY_PORTS,
        packets: Some(&packets),
        ..Setup::default()
    };
    let out = run_sample(so, setup, |_, _| {}).out;
    let udp = of_protocol(&out.permitted, 17);
    let seen: Vec<(u16, u16)> = udp.iter().map(|p| ports(p)).collect();
    let reply = if ddproxy_inbound_rewrites_source(dir) {
        (9000, 41494)
    } else {
        (9001, 9000)
    };
    assert_eq!(seen, vec![(41494, 9001), reply], "{udp:?}");
    assert!(contains(udp[1], b"pong from the new port"));
}

/// One run of a sample: its engine and host, and what the replay let through.
struct Run {
    engine: Arc<Engine>,
    host: DriverHost,
    out: Replayed,
}

/// How a sample is run: its parameters, the packets' context, the packets (loopback.pcap when
/// `None`).
#[derive(Default)]
struct Setup<'a> {
    params: &'a [(&'a str, &'a str)],
    ctx: PacketContext,
    packets: Option<&'a [(u64, Vec<u8>)]>,
}

/// Loads `so` on a fresh engine with `setup.params`, runs `before` (what the sample expects
/// from user mode, checks of what its entry point added), replays the packets, unloads while
/// applying what it injects; the unload must leave no findings.
fn run_sample(so: &Path, setup: Setup<'_>, before: impl FnOnce(&Engine, &wfp_ffi::Driver)) -> Run {
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load_with(so, &params(setup.params)).unwrap();
    before(&engine, &driver);
    let mut shim = Shim::new(engine.clone(), ShimConfig::default());
    let mut out = match setup.packets {
        Some(p) => replay(&mut shim, &host, &setup.ctx, p),
        None => replay(&mut shim, &host, &setup.ctx, &loopback_packets()),
    };
    let findings = unload_applying(driver, &mut shim, &host, &mut out);
    assert!(findings.is_empty(), "{findings:?}");
    Run { engine, host, out }
}

/// inspect: the connection to the configured remote address is pended and, with
/// BlockTraffic=1, refused; every packet of it is blocked; the unload is clean. With
/// BlockTraffic=0 it goes through.
fn check_inspect(_dir: &Path, so: &Path) {
    let setup = Setup {
        params: &[
            ("RemoteAddressToInspect", "sz:127.0.0.1"),
            ("BlockTraffic", "dword:1"),
        ],
        ..Setup::default()
    };
    let run = run_sample(so, setup, |engine, _| {
        assert_eq!(engine.filters().len(), 4, "inspect adds 4 IPv4 filters");
    });
    assert!(
        run.out.permitted.is_empty(),
        "{} not permitted",
        run.out.other
    );
    assert!(run.engine.filters().is_empty());

    // BlockTraffic=0: the connect is pended, the DPC completes it and the reauthorization runs
    // inside FwpsCompleteOperation0 as on Windows (on the completer's processor, while the
    // connection is on that processor's "classified" list): permitted. Every segment is then
    // absorbed at the transport layers and re-injected by the DPC.
    let setup = Setup {
        params: &[
            ("RemoteAddressToInspect", "sz:127.0.0.1"),
            ("BlockTraffic", "dword:0"),
        ],
        ..Setup::default()
    };
    let out = run_sample(so, setup, |_, _| {}).out;
    let tcp = of_protocol(&out.permitted, 6);
    assert!(
        tcp.iter().any(|p| contains(p, b"request over loopback")),
        "{tcp:?}"
    );
}

const DDPROXY_PORTS: &[(&str, &str)] = &[
    ("DestinationPortToIntercept", "dword:9000"),
    ("NewDestinationPort", "dword:9001"),
];

/// ddproxy (DatagramData proxy): outbound UDP to the intercepted port is absorbed at
/// DATAGRAM_DATA, cloned by the worker thread, its destination port rewritten in the clone's UDP
/// header and sent with FwpsInjectTransportSendAsync: it leaves for the new port.
fn check_ddproxy(dir: &Path, so: &Path) {
    let setup = Setup {
        params: DDPROXY_PORTS,
        ..Setup::default()
    };
    let run = run_sample(so, setup, |engine, _| {
        assert_eq!(
            engine.filters().len(),
            8,
            "2 flow-established + 2 datagram filters per family"
        );
    });
    let (engine, out) = (run.engine, run.out);
    let udp = of_protocol(&out.permitted, 17);
    let dst = |p: &Vec<u8>| u16::from_be_bytes([p[22], p[23]]);
    let src = |p: &Vec<u8>| u16::from_be_bytes([p[20], p[21]]);
    let redirected: Vec<_> = udp.iter().filter(|p| src(p) == 41494).collect();
    assert_eq!(redirected.len(), 1, "{udp:?}");
    assert_eq!(dst(redirected[0]), 9001, "re-sent to the new port");
    assert!(contains(redirected[0], b"datagram over loopback"));
    // The reply (from 9000, not the proxied port 9001) is not the proxy flow's: untouched.
    assert!(udp.iter().any(|p| src(p) == 9000));
    assert!(engine.filters().is_empty());
    check_ddproxy_inbound(dir, so);
}

/// stmedit, out-of-band editor (MultipleCallouts=0): every TCP segment to/from the inspected
/// remote port is blocked and cloned; the work-item worker re-injects the stream with
/// StringToFind replaced by StringX (FwpsStreamInjectAsync), FIN last.
fn check_stmedit(_dir: &Path, so: &Path) {
    let setup = Setup {
        params: &[
            ("InspectionLocalPort", "dword:0"),
            ("InspectionRemotePort", "dword:8000"),
            ("StringToFind", "sz:loopback"),
            ("StringX", "sz:LOOPBACK"),
            ("MultipleCallouts", "dword:0"),
        ],
        ..Setup::default()
    };
    let Run { engine, out, .. } = run_sample(so, setup, |_, _| {});
    let tcp = of_protocol(&out.permitted, 6);
    let edited = tcp.iter().filter(|p| contains(p, b"LOOPBACK")).count();
    assert_eq!(edited, 2, "one replacement per direction");
    assert!(!tcp.iter().any(|p| contains(p, b"loopback")), "{tcp:?}");
    assert!(tcp.iter().any(|p| contains(p, b"request over ")));
    // UDP is not inspected.
    assert!(of_protocol(&out.permitted, 17)
        .iter()
        .any(|p| contains(p, b"datagram over loopback")));
    assert!(engine.filters().is_empty());
    check_stmedit_both_editors(so);
}

/// stmedit with MultipleCallouts=1 (its default): both editors on every flow — the out-of-band
/// editor replaces StringToFind with StringX, then the inline editor (FwpsStreamInjectAsync
/// inside classifyFn, countBytesEnforced) replaces StringX with StringToReplace; each direction's
/// stream carries the final text.
fn check_stmedit_both_editors(so: &Path) {
    let setup = Setup {
        params: &[
            ("InspectionLocalPort", "dword:0"),
            ("InspectionRemotePort", "dword:8000"),
            ("StringToFind", "sz:loopback"),
            ("StringX", "sz:LOOPBACK"),
            ("StringToReplace", "sz:sunny"),
            ("MultipleCallouts", "dword:1"),
        ],
        ..Setup::default()
    };
    let Run { engine, out, .. } = run_sample(so, setup, |engine, _| {
        assert_eq!(
            engine.filters().len(),
            8,
            "2 flow-established + 2 stream, per editor"
        );
    });
    let tcp = of_protocol(&out.permitted, 6);
    // The reply's last byte ("\n") is held by the inline editor (NEED_MORE_DATA) until the
    // out-of-band editor re-injects the FIN it blocked: that injection gives the inline editor
    // NO_MORE_DATA (§9.2) and it permits the byte into the injected segment.
    assert_eq!(
        String::from_utf8_lossy(&tcp_stream(&tcp, 8000)),
        "reply to request over sunny\n"
    );
    // The request's never ends: stmedit keeps one flow context for both directions, and the
    // reply's FIN (first in the capture) marks it terminating, so the out-of-band editor blocks
    // the request's FIN ("Received data classified after FIN") without queueing it and never
    // re-injects it. The inline editor below is not told the request ended and still holds the
    // "\n" when the replayed connection ends (its held bytes go with the flow, as on Windows).
    assert_eq!(
        String::from_utf8_lossy(&tcp_stream(&tcp, 44548)),
        "request over sunny"
    );
    // §9.2: the reply's FIN goes on the wire once, with the re-injection, after its last byte;
    // the request's FIN, blocked for good, never does (its segment goes on as a bare ACK).
    let reply_fin = syn_seq(&tcp, 8000).wrapping_add(1 + 28);
    assert_eq!(fin_seqs(&tcp, 8000), vec![reply_fin]);
    assert_eq!(fin_seqs(&tcp, 44548), Vec::<u32>::new());
    // The request's output stream ends after its 18 bytes: no segment of it goes further (the
    // bare ACK that replaced its FIN, the ACKs after it), and the server acknowledges no more —
    // it never got the FIN (the capture's numbers count it: moved back by one).
    let syn = syn_seq(&tcp, 44548);
    let be32 =
        |p: &Vec<u8>, at: usize| u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
    let reach = tcp
        .iter()
        .filter(|p| ports(p).0 == 44548)
        .map(|p| {
            let len = p.len() - 20 - usize::from(p[32] >> 4) * 4;
            be32(p, 24).wrapping_sub(syn).wrapping_add(len as u32)
        })
        .max();
    assert_eq!(reach, Some(1 + 18));
    let acked = tcp
        .iter()
        .filter(|p| ports(p).0 == 8000 && p[33] & 0x10 != 0)
        .map(|p| be32(p, 28).wrapping_sub(syn))
        .max();
    assert_eq!(acked, Some(1 + 18));
    assert!(engine.filters().is_empty());
}

/// The sequence numbers of the FINs `sport` sent (a FIN's is the one after its segment's
/// payload), and of its SYN.
fn fin_seqs(packets: &[&Vec<u8>], sport: u16) -> Vec<u32> {
    packets
        .iter()
        .filter(|p| u16::from_be_bytes([p[20], p[21]]) == sport && p[33] & 0x01 != 0)
        .map(|p| {
            let seq = u32::from_be_bytes([p[24], p[25], p[26], p[27]]);
            let len = p.len() - 20 - usize::from(p[32] >> 4) * 4;
            seq.wrapping_add(len as u32)
        })
        .collect()
}

/// The sequence number of `sport`'s SYN.
fn syn_seq(packets: &[&Vec<u8>], sport: u16) -> u32 {
    packets
        .iter()
        .find(|p| u16::from_be_bytes([p[20], p[21]]) == sport && p[33] & 0x02 != 0)
        .map_or(0, |p| u32::from_be_bytes([p[24], p[25], p[26], p[27]]))
}

/// msnmntr: the filters come from user mode (its monitor.exe adds them with FwpmFilterAdd; here
/// the engine API), monitoring is enabled with its IOCTL; flow-established associates a flow
/// context (with the process path) with the stream layer, the stream callout logs the bytes each
/// way, flowDeleteFn frees the context.
fn check_msnmntr(_dir: &Path, so: &Path) {
    let path: Vec<u8> = "\\device\\harddiskvolume1\\client.exe\0"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let setup = Setup {
        ctx: PacketContext {
            owner: Some(Owner {
                app_id: Some(path.into()),
                ..Owner::default()
            }),
            ..PacketContext::default()
        },
        ..Setup::default()
    };
    let Run { host, out, .. } = run_sample(so, setup, add_monitor_filters);
    assert_eq!(out.other, 0, "a monitor permits everything");
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    let has = |t: &str| log.iter().any(|l| l.contains(t));
    assert!(has("Creating flow for traffic"), "{log:#?}");
    assert!(
        has("22 bytes sent. Local Port: 44548 Remote Port: 8000."),
        "{log:#?}"
    );
    assert!(
        has("31 bytes received. Local Port: 44548 Remote Port: 8000."),
        "{log:#?}"
    );
}

/// A sample's behavioural check, given its directory and built image.
type Check = fn(&Path, &Path);

#[test]
fn wdk_samples_build_unchanged_and_behave() {
    let Some(dirs) = sample_dirs() else { return };
    let checks: [(&str, Check); 4] = [
        ("inspect", check_inspect),
        ("ddproxy", check_ddproxy),
        ("stmedit", check_stmedit),
        ("msnmntr", check_msnmntr),
    ];
    for (sample, check) in checks {
        let Some(dir) = find_sample(&dirs, sample) else {
            eprintln!("note: sample {sample} not in {dirs:?}; skipping");
            continue;
        };
        eprintln!("sample {sample}: {}", dir.display());
        check(&dir, &build_dir(sample, &dir));
    }
}

/// §10.1: FwpsCompleteOperation0 from a driver thread returns only after the reauthorization it
/// causes, which runs as on the completer's processor (tests/c/drivers/rt_syncreauth.c).
#[test]
fn completion_from_a_driver_thread_reauthorizes_inside_the_call_on_its_processor() {
    let c = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers/rt_syncreauth.c");
    let so = build_all("rt_syncreauth", vec![c]);
    let Run { host, out, .. } = run_sample(&so, Setup::default(), |_, _| {});
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert!(
        log.iter()
            .any(|l| l.contains("syncreauth: completed inside=1 same_processor=1")),
        "{log:#?}"
    );
    let tcp = of_protocol(&out.permitted, 6);
    assert!(tcp.iter().any(|p| contains(p, b"request over loopback")));
}

/// §9.2: an out-of-band FwpsStreamInjectAsync0 waits for the stream classifyFn of its flow in
/// progress; one whose classifyFn waits for it (tests/c/drivers/rt_streamgate.c) goes ahead at
/// the runtime's bound (2 s) and is a Verifier finding naming the flow.
#[test]
fn an_out_of_band_stream_injection_that_waits_out_its_bound_is_a_finding() {
    let c = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers/rt_streamgate.c");
    let so = build_all("rt_streamgate", vec![c]);
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let mut shim = Shim::new(engine.clone(), ShimConfig::default());
    let packets = loopback_packets();
    let mut out = replay(&mut shim, &host, &PacketContext::default(), &packets);
    let findings = unload_applying(driver, &mut shim, &host, &mut out);
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    let flow: u64 = log
        .iter()
        .find_map(|l| l.strip_prefix("streamgate: injected flow="))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no injection: {log:#?}"));
    assert!(
        findings.contains(&Finding::StreamInjectWaitExpired {
            flow,
            waited_ms: 2000
        }),
        "{findings:#?}"
    );
}

/// WDK sources are often Windows-1252, not UTF-8 (`’`, `“”` in comments as single bytes: the
/// inspect sample's TL_drv.c): they build, also when the lvalue-cast rewrite copies them, and
/// the copy keeps every byte.
#[test]
fn windows_1252_sources_build() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cp1252");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("cp1252.c");
    let mut text: Vec<u8> = b"/* Windows Server 2008".to_vec();
    text.extend_from_slice(b"\x92s IpSec, \x93quoted\x94 */\n");
    text.extend_from_slice(
        b"#include <ntddk.h>\n\
          static struct { ULONG Count; } gCtx;\n\
          NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)\n\
          {\n\
          \x20   UNREFERENCED_PARAMETER(d); UNREFERENCED_PARAMETER(r);\n\
          \x20   InterlockedIncrement(&(LONG)gCtx.Count); /* an MSVC lvalue cast: rewritten copy */\n\
          \x20   DbgPrint(\"count %lu\\n\", gCtx.Count);\n\
          \x20   return STATUS_SUCCESS;\n\
          }\n",
    );
    std::fs::write(&src, &text).unwrap();
    let so = build_all("cp1252", vec![src]);
    let host = DriverHost::new(Arc::new(Engine::default()), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(log, vec!["count 1".to_string()]);
    assert!(driver.unload().unwrap().findings.is_empty());
}
