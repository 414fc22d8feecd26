//! The `wfpctl replay` command: arguments, progress bar, output.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wfp_core::Engine;
use wfp_pcap::CaptureReader;
use wfp_policy::Policy;
use wfp_shim::ShimConfig;

use super::{replay, PcapSink, ReplayConfig, ReplayError, Replayer, Report};

/// Exit code: the packet named by `--trace` is not an IP packet of the capture.
const EXIT_TRACE_NOT_FOUND: u8 = 3;
/// Exit code: the capture is truncated or corrupt (the summary covers what was read).
const EXIT_CAPTURE_ERROR: u8 = 4;

/// Arguments of `wfpctl replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The capture: pcap or pcapng; Ethernet (VLAN), Linux cooked (SLL, SLL2), raw IP, BSD
    /// loopback. Other link types are skipped and reported.
    capture: PathBuf,
    /// The policy file (TOML).
    #[arg(long)]
    policy: PathBuf,
    /// Print one JSON object instead of the summary table.
    #[arg(long)]
    json: bool,
    /// Write one JSON line per packet: index, time, direction, flow, layers visited, final
    /// action, deciding filter id and name.
    #[arg(long, value_name = "OUT.jsonl")]
    verdicts: Option<PathBuf>,
    /// Write the permitted packets to a new capture (classic pcap).
    #[arg(long, value_name = "OUT.pcap")]
    permitted: Option<PathBuf>,
    /// Write the blocked (and absorbed) packets to a new capture (classic pcap).
    #[arg(long, value_name = "OUT.pcap")]
    blocked: Option<PathBuf>,
    /// A local network (repeatable): packets from it are outbound, packets to it inbound. Without
    /// it (and without Linux cooked packet types) the side that opened a flow is the local side.
    #[arg(long = "local", value_name = "CIDR", value_parser = parse_cidr)]
    local: Vec<(IpAddr, u8)>,
    /// Print the full arbitration trace of packet N (0-based, as in --verdicts).
    #[arg(long, value_name = "N")]
    trace: Option<u64>,
    /// Never draw the progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    no_progress: bool,
}

/// `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an address or CIDR prefix"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        None => max,
    };
    Ok((addr, len))
}

/// Runs `wfpctl replay`; the exit codes are documented on the binary.
pub fn run(args: &Args) -> Result<ExitCode> {
    let policy = Policy::load(&args.policy).map_err(ReplayError::from)?;
    let (engine, _) = policy.build_engine().map_err(ReplayError::from)?;
    let mut reader =
        CaptureReader::open(&args.capture).map_err(|source| ReplayError::CaptureOpen {
            path: args.capture.clone(),
            source,
        })?;
    let replayer = replayer(args, engine)?;

    let size = std::fs::metadata(&args.capture).map_or(0, |m| m.len());
    let bar = progress_bar(args, size);
    let mut progress = |r: &CaptureReader<_>| {
        if let Some(b) = &bar {
            b.set_message(format!("{} packets", r.packets_read()));
            b.set_position(r.offset());
        }
    };
    let mut report = replay(&mut reader, replayer, &mut progress)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    report.capture = Some(args.capture.clone());
    report.policy = Some(args.policy.clone());
    print(args, &report)?;

    if let Some(e) = &report.capture_error {
        eprintln!(
            "wfpctl: {}: the capture ends with an error after {} packets (the summary covers \
             them): {e}",
            args.capture.display(),
            e.packet_index()
        );
        return Ok(ExitCode::from(EXIT_CAPTURE_ERROR));
    }
    if let (Some(n), None) = (args.trace, &report.traced) {
        eprintln!(
            "wfpctl: --trace {n}: the capture has no IP packet {n} ({} packets read)",
            report.packets.packets
        );
        return Ok(ExitCode::from(EXIT_TRACE_NOT_FOUND));
    }
    Ok(ExitCode::SUCCESS)
}

fn replayer(args: &Args, engine: Arc<Engine>) -> Result<Replayer, ReplayError> {
    let config = ReplayConfig {
        shim: ShimConfig {
            local_networks: args.local.clone(),
            ..ShimConfig::default()
        },
        trace_packet: args.trace,
    };
    let mut replayer = Replayer::new(engine, config);
    if let Some(path) = &args.verdicts {
        let file = File::create(path).map_err(|source| ReplayError::Output {
            path: path.clone(),
            source,
        })?;
        replayer.write_verdicts(
            path.clone(),
            Box::new(BufWriter::with_capacity(256 * 1024, file)),
        );
    }
    if let Some(path) = &args.permitted {
        replayer.write_permitted(PcapSink::create(path)?);
    }
    if let Some(path) = &args.blocked {
        replayer.write_blocked(PcapSink::create(path)?);
    }
    Ok(replayer)
}

fn progress_bar(args: &Args, size: u64) -> Option<ProgressBar> {
    if args.no_progress || size == 0 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("replaying [{bar:30}] {bytes}/{total_bytes} {msg} {eta}")
            .map_or_else(
                |_| ProgressStyle::default_bar(),
                |s| s.progress_chars("=> "),
            );
    bar.set_style(style);
    Some(bar)
}

fn print(args: &Args, report: &Report) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        writeln!(out, "{}", report.to_json())?;
    } else {
        report.write_text(&mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// Replays `reader` with `engine` and no outputs (for tests and benchmarks).
pub fn replay_quiet<R: Read>(
    reader: &mut CaptureReader<R>,
    engine: Arc<Engine>,
    config: ReplayConfig,
) -> Result<Report, ReplayError> {
    replay(reader, Replayer::new(engine, config), &mut |_| {})
}
