//! Replay machinery for tests of third-party WDK samples (`tests/wdk_verbatim.rs`): where the
//! samples are (`$WFP_WDK_SAMPLES`), building one with `wfp_ffi::compile::build`, replaying
//! examples/captures/loopback.pcap or synthesized packets through a shim with the drivers' work
//! applied at every asynchronous point (as `wfpctl replay` does), and unloading while the shim
//! keeps applying what the driver injects.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wfp_core::catalogue::layers;
use wfp_core::{ActionType, CalloutSpec, Engine, FilterSpec, Guid};
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{Driver, DriverHost, DriverOptions, Finding, ParamValue};
use wfp_pcap::{CaptureReader, NetworkProtocol};
use wfp_shim::{PacketContext, PacketDirection, Shim, Timestamp, Verdict};

/// The sample directories: `$WFP_WDK_SAMPLES` (a `:`-separated list searched in order for each
/// sample), else `/tmp/wdk-samples`; None (with a note) when none exists.
pub(crate) fn sample_dirs() -> Option<Vec<PathBuf>> {
    let dirs: Vec<PathBuf> = std::env::var_os("WFP_WDK_SAMPLES")
        .map_or_else(
            || vec![PathBuf::from("/tmp/wdk-samples")],
            |v| std::env::split_paths(&v).collect(),
        )
        .into_iter()
        .filter(|d| d.is_dir())
        .collect();
    if dirs.is_empty() {
        eprintln!("note: no WDK samples (set WFP_WDK_SAMPLES); skipping");
        return None;
    }
    Some(dirs)
}

/// The C and C++ sources of `dir`, sorted.
pub(crate) fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "c" || e == "cpp"));
    v.sort();
    v
}

/// The first directory of `dirs` holding sources of `sample`.
pub(crate) fn find_sample(dirs: &[PathBuf], sample: &str) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| d.join(sample))
        .find(|d| !sources(d).is_empty())
}

/// Whether ddproxy's inbound path (DDProxyCloneModifyReinjectInbound) writes the reply's source
/// port (upstream's later versions) rather than its destination port (the first version, 97cf5197):
/// read from the sample's `DD_proxy.c` in `dir`, so a check follows the version it builds.
pub(crate) fn ddproxy_inbound_rewrites_source(dir: &Path) -> bool {
    let text = std::fs::read(dir.join("DD_proxy.c"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    text.split("DDProxyCloneModifyReinjectInbound(")
        .nth(1)
        .and_then(|body| body.split("DDProxyWorker(").next())
        .is_some_and(|body| body.contains("udpHeader->srcPort"))
}

/// Builds the sources of `dir` into `name.so` in the test's temporary directory.
pub(crate) fn build_dir(name: &str, dir: &Path) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.so"));
    build(&BuildOptions {
        sources: sources(dir),
        output: out.clone(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building {name}: {e}"));
    out
}

/// Driver parameters from `NAME`, `TYPE:VALUE` pairs.
pub(crate) fn params(list: &[(&str, &str)]) -> DriverOptions {
    DriverOptions {
        params: list
            .iter()
            .map(|(n, v)| ((*n).to_string(), ParamValue::parse(v)))
            .collect(),
    }
}

/// What a replay let through: the packets permitted (edited when the data path edited them),
/// released or injected later, and the count of the others.
#[derive(Default)]
pub(crate) struct Replayed {
    pub(crate) permitted: Vec<Vec<u8>>,
    pub(crate) other: usize,
}

/// The IP packets of examples/captures/loopback.pcap (one TCP connection 44548 → 8000 carrying
/// "request over loopback" / "reply to request over loopback", a UDP exchange 41494 ↔ 9000 on
/// 127.0.0.1) with their capture times.
pub(crate) fn loopback_packets() -> Vec<(u64, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut reader = CaptureReader::open(root.join("examples/captures/loopback.pcap")).unwrap();
    let mut packets = Vec::new();
    while let Some(p) = reader.next_packet_ref().unwrap() {
        let Ok(l3) = p.decode_link() else { continue };
        if matches!(l3.protocol, NetworkProtocol::Ipv4 | NetworkProtocol::Ipv6) {
            packets.push((p.timestamp_ns, l3.network.to_vec()));
        }
    }
    packets
}

/// Replays `packets` through `shim` with `ctx` for each, applying the drivers' asynchronous
/// work after every packet and after the flows end.
pub(crate) fn replay(
    shim: &mut Shim,
    host: &DriverHost,
    ctx: &PacketContext,
    packets: &[(u64, Vec<u8>)],
) -> Replayed {
    let mut out = Replayed::default();
    let mut now = Timestamp::from_nanos(0);
    for (ts, bytes) in packets {
        host.set_time(*ts);
        now = Timestamp::from_nanos(*ts);
        let v = shim.handle_packet(now, PacketDirection::Infer, bytes, ctx);
        if matches!(v.verdict, Verdict::Permit) {
            let edited = v.edited.as_ref().map_or(&bytes[..], |e| &e.bytes[..]);
            out.permitted.push(edited.to_vec());
        } else {
            out.other += 1;
        }
        apply_async(shim, host, now, &mut out);
    }
    shim.abort_all();
    apply_async(shim, host, now, &mut out);
    out
}

/// The asynchronous point: what driver threads and DPCs decide (bounded), then the shim's
/// completions and the drivers' injections.
fn apply_async(shim: &mut Shim, host: &DriverHost, now: Timestamp, out: &mut Replayed) {
    for _ in 0..8 {
        host.settle(Duration::from_secs(5));
        shim.handle_async(now);
        if !host.wants_another_pass() {
            break;
        }
    }
    while let Some(o) = shim.poll_output() {
        if o.verdict.verdict == Verdict::Permit {
            let bytes = o.verdict.edited.as_ref().map_or(&o.bytes, |e| &e.bytes);
            out.permitted.push(bytes.clone());
        }
    }
}

/// Unloads `driver` on its own thread while `shim` keeps applying what it completes and
/// injects; its Verifier findings.
pub(crate) fn unload_applying(
    driver: Driver,
    shim: &mut Shim,
    host: &DriverHost,
    out: &mut Replayed,
) -> Vec<Finding> {
    let t = std::thread::spawn(move || driver.unload().unwrap());
    let now = Timestamp::from_nanos(0);
    while !t.is_finished() {
        apply_async(shim, host, now, out);
        std::thread::sleep(Duration::from_millis(1));
    }
    apply_async(shim, host, now, out);
    t.join().unwrap().findings
}

/// IPv4 packets of `protocol` among `packets`.
pub(crate) fn of_protocol(packets: &[Vec<u8>], protocol: u8) -> Vec<&Vec<u8>> {
    packets
        .iter()
        .filter(|p| p.first().is_some_and(|b| b >> 4 == 4) && p.get(9) == Some(&protocol))
        .collect()
}

/// Whether `needle` occurs in `hay`.
pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The (source, destination) ports of an IPv4 packet with a 20-byte header.
pub(crate) fn ports(p: &[u8]) -> (u16, u16) {
    (
        u16::from_be_bytes([p[20], p[21]]),
        u16::from_be_bytes([p[22], p[23]]),
    )
}

/// The TCP payload bytes of `packets` from source port `sport`, in order.
pub(crate) fn tcp_stream(packets: &[&Vec<u8>], sport: u16) -> Vec<u8> {
    packets
        .iter()
        .filter(|p| ports(p).0 == sport)
        .flat_map(|p| p[20 + usize::from(p[32] >> 4) * 4..].to_vec())
        .collect()
}

/// The ones' complement sum of `b` (16-bit big-endian words).
fn ones_sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IPv4/UDP datagram 127.0.0.1:`sport` → 127.0.0.1:`dport` with valid checksums.
pub(crate) fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let ulen = u16::try_from(8 + payload.len()).unwrap();
    let mut udp = [
        sport.to_be_bytes(),
        dport.to_be_bytes(),
        ulen.to_be_bytes(),
        [0, 0],
    ]
    .concat();
    udp.extend_from_slice(payload);
    let pseudo = [[127, 0, 0, 1], [127, 0, 0, 1], [0, 17, 0, 0]].concat();
    let sum = fold(ones_sum(&pseudo) + u32::from(ulen) + ones_sum(&udp));
    udp[6..8].copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
    let total = (20 + ulen).to_be_bytes();
    let mut ip = vec![0x45, 0, total[0], total[1], 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
    let c = fold(ones_sum(&ip)).to_be_bytes();
    ip[10..12].copy_from_slice(&c);
    ip.extend_from_slice(&udp);
    ip
}

/// What msnmntr's monitor.exe does: its callouts and filters (FwpmFilterAdd; here the engine
/// API), then monitoring enabled with its IOCTL.
pub(crate) fn add_monitor_filters(engine: &Engine, driver: &Driver) {
    let guid = |s: &str| s.parse::<Guid>().unwrap();
    for (key, layer) in [
        (
            "3aaccbc0-2c29-455f-bb91-0e801c8994a4",
            layers::ALE_FLOW_ESTABLISHED_V4,
        ),
        ("cea0131a-6ed3-4ed6-b40c-8a8fe8434b0a", layers::STREAM_V4),
    ] {
        engine
            .add_callout(CalloutSpec {
                key: guid(key),
                name: "msnmntr".into(),
                description: String::new(),
                flags: 0,
                provider: None,
                applicable_layer: layer,
            })
            .unwrap();
        let mut f = FilterSpec::new("monitor", layer, ActionType::CALLOUT_INSPECTION);
        f.callout = Some(guid(key));
        engine.add_filter(f).unwrap();
    }
    // MONITOR_IOCTL_ENABLE_MONITOR = CTL_CODE(FILE_DEVICE_NETWORK, 1, METHOD_BUFFERED, ANY).
    let settings = [1u32.to_le_bytes(), 0u32.to_le_bytes()].concat();
    let r = driver.ioctl(0x0012_0004, &settings, 0).unwrap();
    assert_eq!(r.status, 0, "enable monitoring");
}
