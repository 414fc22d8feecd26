//! ns per classify through a C callout (wfp-ffi adapter: incoming values, metadata, filter,
//! NET_BUFFER_LIST built per call, host bound, IRQL raised) against the same callout written in
//! Rust, in the same run, on the same engine shape: one CALLOUT_TERMINATING filter at
//! OUTBOUND_TRANSPORT_V4 whose callout reads the remote port and permits. Target: ≤ 25 ns added.
//!
//! Also: replay throughput of the flowmon example driver (examples/drivers/flowmon) over the example
//! capture through the real packet pipeline, against the same replay with no driver loaded.
//!
//! Method: both engines run in one process; rounds alternate which side goes first; per-round
//! paired differences (C − Rust) are taken by wall clock and by this thread's CPU time (which
//! leaves out time other processes held the CPU), and their median is the added cost; the verdict
//! uses thread CPU time when the platform exposes it.
//!
//! The verdict uses the values above (5 of the layer's 16 fields set, the rest FWP_EMPTY); the
//! same comparison with every field set is printed after it (no trailing empties to skip).
//!
//! Run: `cargo bench -p wfp-ffi --bench c_classify`. `WFP_BENCH_PROFILE=c` (or `rust`, `c-dense`,
//! `rust-dense`) runs only that side's loop, for `perf stat` / `perf record` / cachegrind.
//! `WFP_BENCH_INSTRUCTIONS=1` prints instructions per classify instead (each side's loop run under
//! `valgrind --tool=cachegrind` at two lengths, the difference divided by the extra iterations):
//! a figure that does not move with the machine's load.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use wfp_core::catalogue::layers;
use wfp_core::{
    ActionType, Callout, CalloutFlags, CalloutRegistration, CalloutSpec, ClassifyContext,
    ClassifyOut, Engine, FilterSpec, Guid, IncomingValues, LayerData, Metadata, RtFilter, Value,
};
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, HostConfig};

const C_SOURCE: &str = r#"
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
#include <fwpmk.h>
DEFINE_GUID(BENCH_CALLOUT, 0x5e1d0c4b, 0x1111, 0x2222, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66, 0x66);
static PDEVICE_OBJECT dev;
static UINT32 id;
static volatile UINT32 seen;
static void NTAPI Classify(const FWPS_INCOMING_VALUES0 *v, const FWPS_INCOMING_METADATA_VALUES0 *m, void *d,
                           const void *c, const FWPS_FILTER3 *f, UINT64 fc, FWPS_CLASSIFY_OUT0 *out)
{
    seen += v->incomingValue[FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_REMOTE_PORT].value.uint16;
    if (out->rights & FWPS_RIGHT_ACTION_WRITE) { out->actionType = FWP_ACTION_PERMIT; }
}
static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE t, const GUID *k, FWPS_FILTER3 *f) { return STATUS_SUCCESS; }
static void Unload(PDRIVER_OBJECT d) { FwpsCalloutUnregisterById0(id); IoDeleteDevice(dev); }
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    IoCreateDevice(d, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &dev);
    d->DriverUnload = Unload;
    FWPS_CALLOUT3 c = { 0 };
    c.calloutKey = BENCH_CALLOUT;
    c.classifyFn = Classify;
    c.notifyFn = Notify;
    return FwpsCalloutRegister3(dev, &c, &id);
}
"#;

/// The same callout in Rust.
struct RustCallout(std::sync::atomic::AtomicU32);

impl Callout for RustCallout {
    fn classify(
        &self,
        _: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        _: &Metadata,
        _: &mut LayerData<'_>,
        _: &RtFilter,
        _: u64,
        out: &mut ClassifyOut,
    ) {
        if let Value::Uint16(p) = values.get(5) {
            self.0
                .fetch_add(u32::from(*p), std::sync::atomic::Ordering::Relaxed);
        }
        if out.can_write() {
            out.action_type = ActionType::PERMIT;
        }
    }
}

fn engine_with_filter(key: Guid) -> Arc<Engine> {
    let e = Arc::new(Engine::default());
    e.add_callout(CalloutSpec {
        key,
        name: "bench".into(),
        description: String::new(),
        flags: 0,
        provider: None,
        applicable_layer: layers::OUTBOUND_TRANSPORT_V4,
    })
    .unwrap();
    let mut f = FilterSpec::new(
        "bench",
        layers::OUTBOUND_TRANSPORT_V4,
        ActionType::CALLOUT_TERMINATING,
    );
    f.callout = Some(key);
    e.add_filter(f).unwrap();
    e
}

/// This thread's CPU time in ns (`/proc/thread-self/schedstat`, first field): unlike wall time it
/// leaves out the time other processes held the CPU (this machine is shared). The kernel brings a
/// running thread's figure up to date only when the scheduler runs (a tick: 4 ms steps at HZ=250,
/// over 10% of a round), so the thread yields first: `sched_yield` enters the scheduler, which
/// accounts the time run so far.
fn thread_cpu_ns() -> Option<u64> {
    std::thread::yield_now();
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One timed loop: ns per classify by wall clock and by this thread's CPU time.
#[derive(Clone, Copy)]
struct Sample {
    wall: f64,
    cpu: Option<f64>,
}

/// What one measurement loop runs: an engine, the incoming values, the packet.
struct Workload<'a> {
    engine: &'a Engine,
    values: &'a [Value],
    packet: &'a [u8],
}

impl Workload<'_> {
    /// Times `iterations` classifies.
    fn measure(&self, iterations: u32) -> Sample {
        let meta = Metadata::default();
        let cpu = thread_cpu_ns();
        let start = Instant::now();
        for _ in 0..iterations {
            let mut data = LayerData::Packet(self.packet);
            let r = self.engine.classify(
                layers::OUTBOUND_TRANSPORT_V4,
                std::hint::black_box(self.values),
                &meta,
                &mut data,
                None,
            );
            std::hint::black_box(r);
        }
        let wall = start.elapsed().as_nanos() as f64 / f64::from(iterations);
        let cpu = cpu
            .zip(thread_cpu_ns())
            .map(|(a, b)| b.saturating_sub(a) as f64 / f64::from(iterations));
        Sample { wall, cpu }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Rounds of C and Rust loops, alternating which goes first so drift hits both equally; the
/// added cost is the median of the per-round (paired) differences.
const ROUNDS: usize = 21;
const ITERATIONS: u32 = 300_000;
const TARGET_NS: f64 = 25.0;

/// One clock's summary over the rounds: medians (Rust, C, added = median of C − Rust per round)
/// and the best round of each side (least disturbed by other processes) with their difference.
struct Summary {
    rust: f64,
    c: f64,
    added: f64,
    best_rust: f64,
    best_c: f64,
}

fn summarise(pairs: &[(f64, f64)]) -> Summary {
    let best = |f: fn(&(f64, f64)) -> f64| pairs.iter().map(f).fold(f64::INFINITY, f64::min);
    Summary {
        rust: median(pairs.iter().map(|p| p.0).collect()),
        c: median(pairs.iter().map(|p| p.1).collect()),
        added: median(pairs.iter().map(|p| p.1 - p.0).collect()),
        best_rust: best(|p| p.0),
        best_c: best(|p| p.1),
    }
}

impl Summary {
    fn print(&self, clock: &str) {
        println!(
            "  {clock}: Rust {:.1} ns, C {:.1} ns, added {:.1} ns (medians; added = median of per-round differences); best rounds: Rust {:.1}, C {:.1}, added {:.1} ns",
            self.rust,
            self.c,
            self.added,
            self.best_rust,
            self.best_c,
            self.best_c - self.best_rust
        );
    }
}

/// Compares the C and Rust workloads and prints the summary under `label`; returns the added cost
/// by the verdict's clock.
fn compare(label: &str, c: &Workload<'_>, rust: &Workload<'_>) -> f64 {
    // Warm up both (caches, branch predictors, the per-thread scratch).
    c.measure(ITERATIONS / 5);
    rust.measure(ITERATIONS / 5);
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (r, cc) = if round % 2 == 0 {
            let r = rust.measure(ITERATIONS);
            (r, c.measure(ITERATIONS))
        } else {
            let cc = c.measure(ITERATIONS);
            (rust.measure(ITERATIONS), cc)
        };
        wall.push((r.wall, cc.wall));
        cpu.extend(r.cpu.zip(cc.cpu));
    }
    println!(
        "classify ({label}), {ROUNDS} rounds x {ITERATIONS} per side (C and Rust alternating):"
    );
    let wall = summarise(&wall);
    wall.print("wall clock");
    if cpu.len() == ROUNDS {
        let cpu = summarise(&cpu);
        cpu.print("thread CPU");
        cpu.added
    } else {
        wall.added
    }
}

fn verdict(verdict: f64) {
    let met = if verdict <= TARGET_NS {
        "met"
    } else {
        "NOT met"
    };
    println!("added by the C ABI: {verdict:.1} ns per classify (target <= {TARGET_NS} ns): {met}");
}

/// `WFP_BENCH_PROFILE=c|rust|c-dense|rust-dense`: only that side's loop (`-dense`: every field
/// set), long (`WFP_BENCH_ITERATIONS`, default 3,000,000), for `perf stat` / `perf record` /
/// `valgrind --tool=cachegrind`.
fn profile_only(w: [&Workload<'_>; 4]) -> bool {
    let w = match std::env::var("WFP_BENCH_PROFILE").as_deref() {
        Ok("c") => w[0],
        Ok("rust") => w[1],
        Ok("c-dense") => w[2],
        Ok("rust-dense") => w[3],
        _ => return false,
    };
    let iterations = std::env::var("WFP_BENCH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ITERATIONS * 10);
    let s = w.measure(iterations);
    println!(
        "profile loop: {:.1} ns wall, {:?} ns CPU per classify",
        s.wall, s.cpu
    );
    true
}

fn main() {
    let c_key = Guid::from_windows_bytes([
        0x4b, 0x0c, 0x1d, 0x5e, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66,
        0x66,
    ]);
    let rust_key = Guid::from_name("bench", "rust");
    let so = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench_callout.so");
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench_callout.c");
    std::fs::write(&src, C_SOURCE).unwrap();
    build(&BuildOptions {
        sources: vec![src],
        output: so.clone(),
        ..BuildOptions::default()
    })
    .unwrap();

    let c_engine = engine_with_filter(c_key);
    let host = DriverHost::new(c_engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let rust_engine = engine_with_filter(rust_key);
    rust_engine
        .register_callout(CalloutRegistration::new(
            rust_key,
            CalloutFlags::default(),
            Arc::new(RustCallout(Default::default())),
        ))
        .unwrap();

    let values: Vec<Value> = (0..16)
        .map(|i| match i {
            0 => Value::Uint8(6),
            1 => Value::Uint32(0x0a4d_0001),
            3 => Value::Uint32(0x0a4d_0002),
            4 => Value::Uint16(40000),
            5 => Value::Uint16(443),
            _ => Value::Empty,
        })
        .collect();
    let packet = [0u8; 60];
    let c = Workload {
        engine: &c_engine,
        values: &values,
        packet: &packet,
    };
    let rust = Workload {
        engine: &rust_engine,
        values: &values,
        packet: &packet,
    };
    // Every field set (no trailing FWP_EMPTY for the adapter to skip): the cost of converting a
    // full incoming-value array, printed beside the verdict.
    let dense: Vec<Value> = (0..16u16)
        .map(|i| match i % 3 {
            0 => Value::Uint8(u8::try_from(i).unwrap_or(0)),
            2 => Value::Uint16(443 + i),
            _ => Value::Uint32(0x0a4d_0000 + u32::from(i)),
        })
        .collect();
    let dense_c = Workload {
        values: &dense,
        ..c
    };
    let dense_rust = Workload {
        values: &dense,
        ..rust
    };
    if profile_only([&c, &rust, &dense_c, &dense_rust]) {
        return;
    }
    if std::env::var_os("WFP_BENCH_INSTRUCTIONS").is_some() {
        instructions::report();
        return;
    }
    verdict(compare("5 of 16 fields set", &c, &rust));
    compare("all 16 fields set", &dense_c, &dense_rust);
    drop(driver);
    flowmon_throughput();
}

/// Instructions per classify under cachegrind (load-independent).
mod instructions {
    use std::process::Command;

    /// The two loop lengths: their difference cancels start-up (building the driver, the engines).
    const SHORT: u64 = 100_000;
    const LONG: u64 = 300_000;

    /// Cachegrind's `I refs` for this executable running `profile`'s loop `iterations` times.
    fn irefs(profile: &str, iterations: u64) -> Option<u64> {
        let exe = std::env::current_exe().ok()?;
        let out = Command::new("valgrind")
            .args([
                "--tool=cachegrind",
                "--cache-sim=no",
                "--cachegrind-out-file=/dev/null",
            ])
            .arg(exe)
            .env("WFP_BENCH_PROFILE", profile)
            .env("WFP_BENCH_ITERATIONS", iterations.to_string())
            .env_remove("WFP_BENCH_INSTRUCTIONS")
            .output()
            .ok()?;
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| l.contains("I   refs:"))?;
        let digits: String = line
            .rsplit(':')
            .next()?
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }

    /// Instructions per classify of `profile`'s loop.
    fn per_classify(profile: &str) -> Option<f64> {
        let short = irefs(profile, SHORT)?;
        let long = irefs(profile, LONG)?;
        Some(long.saturating_sub(short) as f64 / (LONG - SHORT) as f64)
    }

    /// Prints C, Rust and added instructions per classify for both value sets.
    pub(super) fn report() {
        for (label, c, rust) in [
            ("5 of 16 fields set", "c", "rust"),
            ("all 16 fields set", "c-dense", "rust-dense"),
        ] {
            match per_classify(c).zip(per_classify(rust)) {
                Some((c, r)) => println!(
                    "instructions per classify ({label}): Rust {r:.1}, C {c:.1}, added {:.1} (cachegrind, {LONG} - {SHORT} iterations)",
                    c - r
                ),
                None => println!("instructions per classify ({label}): valgrind not available"),
            }
        }
    }
}

/// The example capture's IP packets and timestamps.
fn capture() -> Vec<(u64, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/replay/capture.pcap");
    let mut r = wfp_pcap::CaptureReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet_ref().unwrap() {
        if let Ok(l3) = p.decode_link() {
            if matches!(
                l3.protocol,
                wfp_pcap::NetworkProtocol::Ipv4 | wfp_pcap::NetworkProtocol::Ipv6
            ) {
                v.push((p.timestamp_ns, l3.network.to_vec()));
            }
        }
    }
    v
}

/// Packets per second replaying `packets` `rounds` times (a fresh pipeline each round, every flow
/// ended at its end) through `engine`.
fn replay_rate(
    engine: &Arc<Engine>,
    host: Option<&DriverHost>,
    packets: &[(u64, Vec<u8>)],
    rounds: u32,
) -> f64 {
    use wfp_shim::{PacketContext, PacketDirection, Shim, ShimConfig, Timestamp};
    let start = Instant::now();
    for _ in 0..rounds {
        let mut config = ShimConfig {
            local_networks: vec![
                ("10.77.0.1".parse().unwrap(), 32),
                ("fd77::1".parse().unwrap(), 128),
            ],
            ..ShimConfig::default()
        };
        config.parse.verify_ipv4_checksum = false;
        let mut shim = Shim::new(engine.clone(), config);
        for (ns, bytes) in packets {
            if let Some(h) = host {
                h.set_time(*ns);
            }
            let v = shim.handle_packet(
                Timestamp::from_nanos(*ns),
                PacketDirection::Infer,
                bytes,
                &PacketContext::default(),
            );
            std::hint::black_box(v);
        }
        shim.abort_all();
    }
    f64::from(rounds) * packets.len() as f64 / start.elapsed().as_secs_f64()
}

fn flowmon_throughput() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let so = dir.join("bench_flowmon.so");
    build(&BuildOptions {
        sources: vec![
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/drivers/flowmon/flowmon.c")
        ],
        output: so.clone(),
        extra_flags: vec!["-O2".into()],
        ..BuildOptions::default()
    })
    .unwrap();
    let packets = capture();
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let bare = Arc::new(Engine::default());
    let rounds = 300;
    replay_rate(&engine, Some(&host), &packets, rounds / 10);
    replay_rate(&bare, None, &packets, rounds / 10);
    let mut with = Vec::new();
    let mut without = Vec::new();
    for _ in 0..5 {
        with.push(replay_rate(&engine, Some(&host), &packets, rounds));
        without.push(replay_rate(&bare, None, &packets, rounds));
    }
    with.sort_by(f64::total_cmp);
    without.sort_by(f64::total_cmp);
    let _ = host.drain_log();
    println!(
        "flowmon replay: {:.0} packets/s with the driver, {:.0} packets/s with no driver (ratio {:.2}; median of 5 x {} packets)",
        with[2],
        without[2],
        with[2] / without[2],
        u64::from(rounds) * packets.len() as u64
    );
    drop(driver);
}
