//! The `wfpctl replay` command: arguments, progress bar, output.
//!
//! Standard output carries the summary (table or `--json` object) unless one output flag is `-`
//! (`--verdicts -`, `--permitted -` or `--blocked -`): then that output owns standard output and
//! the summary goes to standard error, so the two never interleave. At most one flag may be `-`.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wfp_callouts::Host;
use wfp_core::engine::FlowTracking;
use wfp_core::{Engine, EngineOptions};
use wfp_pcap::{CaptureFormat, CaptureReader};
use wfp_policy::Policy;

use super::{format_for_path, replay, PcapSink, ReplayConfig, ReplayError, Replayer, Report};

/// Exit code: usage error (as clap's).
const EXIT_USAGE: u8 = 2;
/// Exit code: the packet named by `--trace` is not an IP packet of the capture.
const EXIT_TRACE_NOT_FOUND: u8 = 3;
/// Exit code: the capture is truncated or corrupt (the summary covers what was read).
const EXIT_CAPTURE_ERROR: u8 = 4;

/// The output name that means standard output.
const STDOUT_ARG: &str = "-";
/// How standard output is named in reports and errors.
const STDOUT_NAME: &str = "<stdout>";

/// Format of the `--permitted` / `--blocked` captures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OutputFormat {
    /// Classic pcap (one link type per file; other link types are re-encapsulated).
    Pcap,
    /// pcapng (one interface per link type, nanosecond timestamps, direction in epb_flags).
    Pcapng,
}

impl From<OutputFormat> for CaptureFormat {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Pcap => Self::Pcap,
            OutputFormat::Pcapng => Self::PcapNg,
        }
    }
}

/// Arguments of `wfpctl replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The capture: pcap or pcapng; Ethernet (VLAN), Linux cooked (SLL, SLL2), raw IP, BSD
    /// loopback. Other link types are skipped and reported.
    capture: PathBuf,
    /// The policy file (TOML). Optional with --driver (the drivers add their own filters).
    #[arg(long, required_unless_present = "drivers")]
    policy: Option<PathBuf>,
    /// A C callout driver built by `wfpctl driver build` (repeatable): DriverEntry runs before
    /// the replay, the unload routine after it; the Verifier's findings go to standard error.
    #[arg(long = "driver", value_name = "DRIVER.so")]
    drivers: Vec<PathBuf>,
    /// A parameter of the preceding --driver (repeatable): NAME=VALUE, what the driver reads from
    /// its Parameters key (WdfRegistryQueryULong / QueryUnicodeString); VALUE is `dword:N`,
    /// `sz:TEXT`, or a number (DWORD) or text (string).
    #[arg(long = "driver-param", value_name = "NAME=VALUE", requires = "drivers")]
    driver_params: Vec<String>,
    /// Make any Driver Verifier finding an error (exit code 5).
    #[arg(long, requires = "drivers")]
    verify: bool,
    /// Print one JSON object instead of the summary table.
    #[arg(long)]
    json: bool,
    /// Write one JSON line per packet: index, time, direction, flow, layers visited, final
    /// action, deciding filter id and name. `-` writes them to standard output (the summary then
    /// goes to standard error).
    #[arg(long, value_name = "OUT.jsonl")]
    verdicts: Option<PathBuf>,
    /// Write the permitted packets to a new capture: pcapng if the name ends in .pcapng, else
    /// classic pcap (see --output-format). `-` writes it to standard output (the summary then goes
    /// to standard error).
    #[arg(long, value_name = "OUT.pcap")]
    permitted: Option<PathBuf>,
    /// Write the blocked (and absorbed) packets to a new capture, as --permitted.
    #[arg(long, value_name = "OUT.pcap")]
    blocked: Option<PathBuf>,
    /// Format of the --permitted / --blocked captures whatever their names (default: pcapng for
    /// names ending in .pcapng, else pcap).
    #[arg(long, value_enum, value_name = "FORMAT")]
    output_format: Option<OutputFormat>,
    /// A local network (repeatable): packets from it are outbound, packets to it inbound. Without
    /// it (and without Linux cooked packet types) the side that opened a flow is the local side.
    #[arg(long = "local", value_name = "CIDR", value_parser = parse_cidr)]
    local: Vec<(IpAddr, u8)>,
    /// Verify IPv4 header checksums: a mismatch makes the packet malformed (blocked). Off by
    /// default, as in Wireshark: hosts that offload checksums capture their own packets with
    /// anything there. Mismatches are counted either way.
    #[arg(long)]
    verify_checksums: bool,
    /// TCP flows need their handshake: segments of connections whose SYN was not captured start
    /// no flow, one-sided connections are never established. By default they are picked up (ALE
    /// reauthorization, a stream from the first byte seen).
    #[arg(long)]
    require_handshake: bool,
    /// Drop an operation a callout pended (§10.1, §10.2) and its held packets when it is still
    /// pended this many seconds of capture time later (decimals allowed). Counted in the
    /// summary's `async.pend_expired`.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pend_deadline: Duration,
    /// Print the full arbitration trace of packet N (0-based, as in --verdicts).
    #[arg(long, value_name = "N")]
    trace: Option<u64>,
    /// Never draw the progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    no_progress: bool,
}

/// A non-negative, finite number of seconds (`5`, `0.25`).
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?}: seconds must be finite and not negative"))
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
///
/// Standard output carries the summary (table or `--json` object) unless an output flag is `-`:
/// that output then owns standard output and the summary goes to standard error, so the two never
/// interleave. Only one output may be `-` (exit code 2 otherwise); a capture is never written to a
/// terminal.
pub fn run(args: &Args) -> Result<ExitCode> {
    let to_stdout: Vec<&str> = [
        ("--verdicts", &args.verdicts),
        ("--permitted", &args.permitted),
        ("--blocked", &args.blocked),
    ]
    .into_iter()
    .filter(|(_, p)| p.as_deref().is_some_and(is_stdout))
    .map(|(flag, _)| flag)
    .collect();
    if to_stdout.len() > 1 {
        eprintln!(
            "wfpctl: {} all name standard output (-); at most one output can write there",
            to_stdout.join(" and ")
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let summary_to_stderr = !to_stdout.is_empty();
    let host = Host::new();
    // The shim announces every flow to the engine (flow_created / flow_ended), so a callout's
    // FwpsFlowAbort0 ends the flow for real: its later packets are blocked (§6).
    let engine = match &args.policy {
        Some(path) => {
            let mut policy = Policy::load(path).map_err(ReplayError::from)?;
            policy.options.flow_tracking = FlowTracking::Announced;
            policy.build_engine(&host).map_err(ReplayError::from)?.0
        }
        None => Arc::new(Engine::new(EngineOptions {
            flow_tracking: FlowTracking::Announced,
            ..EngineOptions::default()
        })),
    };
    let params = crate::driver::params_per_driver(
        &std::env::args().collect::<Vec<_>>(),
        args.drivers.len(),
        &args.driver_params,
    )?;
    let drivers = crate::driver::load(&args.drivers, &params, &engine, &host)?;
    let mut reader =
        CaptureReader::open(&args.capture).map_err(|source| ReplayError::CaptureOpen {
            path: args.capture.clone(),
            source,
        })?;
    let mut replayer = replayer(args, engine, host)?;
    // The drivers unload at the capture's end while the replay still applies what they do.
    let unloaded = Arc::new(std::sync::Mutex::new(None));
    if !args.drivers.is_empty() {
        replayer.settle_with(drivers.settler());
        let slot = unloaded.clone();
        replayer.unload_with(Box::new(move || {
            if let Ok(mut s) = slot.lock() {
                *s = Some(drivers.unload());
            }
        }));
    }

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
    report.policy.clone_from(&args.policy);
    let findings = unloaded
        .lock()
        .map_or(None, |mut s| s.take())
        .transpose()?
        .unwrap_or(0);
    print(args, &report, summary_to_stderr)?;

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
    if args.verify && findings > 0 {
        eprintln!("wfpctl: --verify: the driver verifier reported {findings} finding(s)");
        return Ok(ExitCode::from(crate::driver::EXIT_VERIFIER));
    }
    Ok(ExitCode::SUCCESS)
}

fn replayer(args: &Args, engine: Arc<Engine>, host: Host) -> Result<Replayer, ReplayError> {
    let mut config = ReplayConfig {
        trace_packet: args.trace,
        ..ReplayConfig::default()
    };
    config.shim.local_networks.clone_from(&args.local);
    config.shim.parse.verify_ipv4_checksum = args.verify_checksums;
    config.shim.require_handshake = args.require_handshake;
    config.shim.pend_deadline = Some(args.pend_deadline);
    let mut replayer = Replayer::new(engine, host, config);
    if let Some(path) = &args.verdicts {
        let (name, out): (PathBuf, Box<dyn Write>) = if is_stdout(path) {
            (PathBuf::from(STDOUT_NAME), Box::new(std::io::stdout()))
        } else {
            let file = File::create(path).map_err(|source| ReplayError::Output {
                path: path.clone(),
                source,
            })?;
            (path.clone(), Box::new(file))
        };
        replayer.write_verdicts(name, Box::new(BufWriter::with_capacity(256 * 1024, out)));
    }
    if let Some(path) = &args.permitted {
        replayer.write_permitted(capture_sink(path, args.output_format)?);
    }
    if let Some(path) = &args.blocked {
        replayer.write_blocked(capture_sink(path, args.output_format)?);
    }
    Ok(replayer)
}

/// `-` (standard output).
fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == STDOUT_ARG
}

/// The sink for `--permitted` / `--blocked`: a file (format from `--output-format`, else from the
/// name) or standard output (pcap unless `--output-format pcapng`; never a terminal).
fn capture_sink(path: &Path, forced: Option<OutputFormat>) -> Result<PcapSink, ReplayError> {
    if !is_stdout(path) {
        return match forced {
            Some(f) => PcapSink::create_as(path, f.into()),
            None => PcapSink::create(path),
        };
    }
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        return Err(ReplayError::Output {
            path: PathBuf::from(STDOUT_NAME),
            source: std::io::Error::other(
                "refusing to write a binary capture to a terminal (redirect or pipe it)",
            ),
        });
    }
    let format = forced.map_or_else(|| format_for_path(path), CaptureFormat::from);
    Ok(PcapSink::from_writer(
        PathBuf::from(STDOUT_NAME),
        Box::new(stdout),
        format,
    ))
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

/// Prints the summary (table or `--json`) to standard output, or to standard error when an
/// output flag took standard output.
fn print(args: &Args, report: &Report, to_stderr: bool) -> Result<()> {
    let mut out: Box<dyn Write> = if to_stderr {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    if args.json {
        writeln!(out, "{}", report.to_json())?;
    } else {
        report.write_text(&mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// Replays `reader` with `engine` (its built-in callouts built with `host`) and no outputs (for
/// tests and benchmarks).
pub fn replay_quiet<R: Read>(
    reader: &mut CaptureReader<R>,
    engine: Arc<Engine>,
    host: Host,
    config: ReplayConfig,
) -> Result<Report, ReplayError> {
    replay(reader, Replayer::new(engine, host, config), &mut |_| {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let base = ["wfpctl", "c.pcap", "--policy", "p.toml"];
        Cli::try_parse_from(base.iter().chain(extra)).map(|c| c.args)
    }

    #[test]
    fn pend_deadline_defaults_to_five_seconds_and_takes_decimals() {
        assert_eq!(
            parse(&[]).expect("parses").pend_deadline,
            Duration::from_secs(5)
        );
        let a = parse(&["--pend-deadline", "0.25"]).expect("parses");
        assert_eq!(a.pend_deadline, Duration::from_millis(250));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        for bad in ["-1", "NaN", "inf", "5s", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
