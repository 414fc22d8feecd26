//! `wfpctl driver build` and the `--driver` side of `wfpctl replay`: C callout drivers
//! (wfp-ffi) built against the WDK-named headers and loaded into the replay's engine.
//!
//! ```text
//!   wfpctl driver build SOURCES... -o DRIVER.so [-I DIR] [-D NAME[=V]] [--cflag FLAG]
//!   wfpctl replay CAPTURE [--policy POLICY.toml] --driver DRIVER.so [--driver-param NAME=VALUE]...
//!                 [--driver ...] [--verify]
//! ```
//!
//! `--driver-param` applies to the `--driver` before it on the command line: the driver reads it
//! from its Parameters key (WdfRegistryQuery*).
//!
//! Replay: each driver's DriverEntry runs after the policy is applied (its own filters join the
//! policy's), the capture is replayed (drivers read the capture clock), every flow ends
//! (flowDeleteFn), then each driver is unloaded (wfp-reference §5.3) and the Verifier's findings are
//! printed to standard error; with `--verify` any finding makes the exit code 5.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wfp_callouts::Host;
use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildError, BuildOptions};
use wfp_ffi::{Driver, DriverHost, DriverOptions, HostConfig, ParamValue, TimeSource};

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
    /// Compile WDK-style C and C++ sources into a driver image for `wfpctl replay --driver`.
    Build(BuildArgs),
}

/// Arguments of `wfpctl driver build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// C and C++ sources of the driver (`.cpp`, `.cc`, `.cxx` are compiled as C++ with `$CXX`).
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
    /// Extra compiler flag for every source, C or C++ (for example --cflag=-fsanitize=address).
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

/// One driver's parameters: `(NAME, value)`.
pub type Params = Vec<(String, ParamValue)>;

/// Splits `NAME=VALUE`.
pub fn parse_param(text: &str) -> Result<(String, ParamValue)> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), ParamValue::parse(value))),
        _ => bail!("--driver-param {text:?}: expected NAME=VALUE"),
    }
}

/// Pairs each `--driver-param` with the `--driver` before it, from the command line as typed
/// (`argv`); `drivers` and `params` are what clap parsed, and must agree with it.
pub fn params_per_driver(
    argv: &[String],
    drivers: usize,
    params: &[String],
) -> Result<Vec<Params>> {
    let mut groups: Vec<Params> = Vec::new();
    let mut seen = 0;
    let mut tokens = argv.iter().skip(1);
    while let Some(t) = tokens.next() {
        if t == "--" {
            break;
        }
        if t == "--driver" || t.starts_with("--driver=") {
            if t == "--driver" {
                tokens.next();
            }
            groups.push(Vec::new());
        } else if t == "--driver-param" || t.starts_with("--driver-param=") {
            let value = match t.strip_prefix("--driver-param=") {
                Some(v) => v.to_string(),
                None => tokens.next().cloned().unwrap_or_default(),
            };
            let Some(g) = groups.last_mut() else {
                bail!("--driver-param {value:?} comes before any --driver");
            };
            g.push(parse_param(&value)?);
            seen += 1;
        }
    }
    if groups.len() != drivers || seen != params.len() {
        // Not parsed from this process's command line (a caller built the arguments): the
        // parameters can only be attributed when there is a single driver.
        if drivers == 1 || params.is_empty() {
            let mut all = vec![Vec::new(); drivers];
            if let Some(first) = all.first_mut() {
                for p in params {
                    first.push(parse_param(p)?);
                }
            }
            return Ok(all);
        }
        bail!("cannot tell which --driver each --driver-param belongs to");
    }
    Ok(groups)
}

/// Loads `paths` (with `params[i]` for driver `i`) into `engine`; drivers read time from the
/// replay's clock (`callouts.clock`).
pub fn load(
    paths: &[PathBuf],
    params: &[Params],
    engine: &Arc<Engine>,
    callouts: &Host,
) -> Result<Loaded> {
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
    for (i, p) in paths.iter().enumerate() {
        let options = DriverOptions {
            params: params.get(i).cloned().unwrap_or_default(),
        };
        let d = host
            .load_with(p, &options)
            .with_context(|| format!("loading driver {}", p.display()))?;
        drivers.push(d);
    }
    Ok(Loaded { host, drivers })
}

/// How long a replay's asynchronous point waits for one piece of driver work (a pended
/// operation, a clone) that a driver thread is deciding about.
pub const SETTLE_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

impl Loaded {
    /// What the replay runs at each asynchronous point: [`DriverHost::settle`] with
    /// [`SETTLE_BOUND`]; answers [`DriverHost::wants_another_pass`].
    pub fn settler(&self) -> Box<dyn FnMut() -> bool + Send> {
        let host = self.host.clone();
        Box::new(move || {
            host.settle(SETTLE_BOUND);
            host.wants_another_pass()
        })
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn driver_params_belong_to_the_preceding_driver() {
        let a = argv("wfpctl replay c.pcap --driver a.so --driver-param X=1 --driver=b.so --driver-param=Y=sz:2 --driver-param Z=t");
        let g = params_per_driver(&a, 2, &["X=1".into(), "Y=sz:2".into(), "Z=t".into()]).unwrap();
        assert_eq!(g[0], vec![("X".into(), ParamValue::Dword(1))]);
        assert_eq!(
            g[1],
            vec![
                ("Y".into(), ParamValue::String("2".into())),
                ("Z".into(), ParamValue::String("t".into()))
            ]
        );
        let early = argv("wfpctl replay --driver-param X=1 c.pcap --driver a.so");
        assert!(params_per_driver(&early, 1, &["X=1".into()]).is_err());
        assert!(parse_param("novalue").is_err());
    }
}
