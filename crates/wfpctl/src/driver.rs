//! `wfpctl driver build` and the `--driver` side of `wfpctl replay`: C callout drivers
//! (wfp-ffi) built against the WDK-named headers and loaded into the replay's engine.
//!
//! ```text
//!   wfpctl driver build SOURCES... -o DRIVER.so [-I DIR] [-D NAME[=V]] [--cflag FLAG]
//!   wfpctl replay CAPTURE [--policy POLICY.toml] --driver DRIVER.so [--driver ...] [--verify]
//! ```
//!
//! Replay: each driver's DriverEntry runs after the policy is applied (its own filters join the
//! policy's), the capture is replayed (drivers read the capture clock), every flow ends
//! (flowDeleteFn), then each driver is unloaded (wfp-reference §5.3) and the Verifier's findings are
//! printed to standard error; with `--verify` any finding makes the exit code 5.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use wfp_callouts::Host;
use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildError, BuildOptions};
use wfp_ffi::{Driver, DriverHost, HostConfig, TimeSource};

/// Exit code: the Verifier found problems in a driver and `--verify` was given.
pub const EXIT_VERIFIER: u8 = 5;

/// `wfpctl driver ...`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Compile WDK-style C sources into a driver image for `wfpctl replay --driver`.
    Build(BuildArgs),
}

/// Arguments of `wfpctl driver build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// C sources of the driver.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// The driver image to write.
    #[arg(short = 'o', value_name = "DRIVER.so")]
    output: PathBuf,
    /// Extra include directory.
    #[arg(short = 'I', value_name = "DIR")]
    include: Vec<PathBuf>,
    /// Extra definition: NAME or NAME=VALUE.
    #[arg(short = 'D', value_name = "NAME[=V]")]
    define: Vec<String>,
    /// Extra compiler flag (for example --cflag=-fsanitize=address).
    #[arg(long = "cflag", value_name = "FLAG", allow_hyphen_values = true)]
    cflags: Vec<String>,
}

/// Runs `wfpctl driver ...`. Compiler diagnostics are shown as the compiler wrote them.
pub fn run(args: &Args) -> Result<ExitCode> {
    let Command::Build(b) = &args.command;
    let opts = BuildOptions {
        sources: b.sources.clone(),
        output: b.output.clone(),
        include_dirs: b.include.clone(),
        defines: b.define.clone(),
        extra_flags: b.cflags.clone(),
    };
    match build(&opts) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(BuildError::CompileFailed { .. }) => {
            eprintln!(
                "wfpctl: {}: the compiler reported errors (above)",
                b.output.display()
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// Drivers loaded into a replay's engine.
pub struct Loaded {
    host: DriverHost,
    drivers: Vec<Driver>,
}

/// Loads `paths` into `engine`; drivers read time from the replay's clock (`callouts.clock`).
pub fn load(paths: &[PathBuf], engine: &Arc<Engine>, callouts: &Host) -> Result<Loaded> {
    let clock = callouts.clock.clone();
    let config = HostConfig {
        clock: Some(TimeSource(Arc::new(move || {
            u64::try_from(clock.now().as_nanos()).unwrap_or(u64::MAX)
        }))),
        echo_log: true,
        ..HostConfig::default()
    };
    let host = DriverHost::new(engine.clone(), config);
    let mut drivers = Vec::new();
    for p in paths {
        let d = host
            .load(p)
            .with_context(|| format!("loading driver {}", p.display()))?;
        drivers.push(d);
    }
    Ok(Loaded { host, drivers })
}

impl Loaded {
    /// Unloads every driver (last loaded first) and prints the Verifier's findings; returns how
    /// many there were.
    pub fn unload(self) -> Result<usize> {
        let mut findings = 0;
        let _host = self.host;
        for d in self.drivers.into_iter().rev() {
            let name = d.name().to_string();
            let report = d.unload()?;
            for f in &report.findings {
                eprintln!("wfpctl: driver verifier: {name}: {f}");
            }
            findings += report.findings.len();
        }
        Ok(findings)
    }
}
