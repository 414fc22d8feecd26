//! `wfpctl driver load|unload|list|ioctl`: C callout drivers in the **running daemon**, beside
//! the offline `wfpctl driver build` of [`crate::driver`], over wfpd's `/v1/drivers` endpoints
//! (`docs/api.md` "Drivers"; bodies in [`wfp_api::drivers`]):
//!
//! ```text
//!   wfpctl driver load DRIVER.so [--param NAME=VALUE]...   POST   /v1/drivers {"path","params"}
//!   wfpctl driver unload NAME                              DELETE /v1/drivers/{name}
//!   wfpctl driver list [--json]                            GET    /v1/drivers
//!   wfpctl driver ioctl NAME CODE [--in FILE] [--out FILE] [--json]
//!                                  POST /v1/drivers/{name}/ioctl {"code","input_b64"}
//!                                                         → {"status","output_b64"}
//! ```
//!
//! `ioctl` reaches the driver's device-control queue (IRP_MJ_DEVICE_CONTROL /
//! EvtIoDeviceControl with CODE as the IOCTL code); its NTSTATUS is printed and, when it is not a
//! success code, the exit code is 1. The output buffer goes to `--out FILE` (raw) or is shown as a
//! hex dump.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{ArgMatches, FromArgMatches, Subcommand};
use wfp_api::drivers::{b64_decode, b64_encode};
use wfp_api::{DriverView, IoctlAnswer};

use crate::driver;
use crate::mgmt::{print_json, table, Connect};

/// `wfpctl driver ...`: `build` (offline) or one of the daemon's driver commands.
#[derive(Debug)]
pub enum DriverArgs {
    /// `driver build` ([`crate::driver`]).
    Build(driver::Args),
    /// `driver load|unload|list|ioctl`.
    Daemon(DaemonDriver),
}

/// The daemon's driver commands.
#[derive(Subcommand, Debug)]
pub enum DaemonDriver {
    /// Load a C callout driver image into the running daemon (its DriverEntry runs there).
    Load(LoadArgs),
    /// Unload a driver from the running daemon (its unload routine runs; Verifier findings are
    /// the daemon's to report).
    Unload(UnloadArgs),
    /// List the drivers loaded in the running daemon.
    List(ListArgs),
    /// Send a device-control request (IOCTL) to a loaded driver.
    Ioctl(IoctlArgs),
}

/// `wfpctl driver load`.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The driver image (made absolute before it is sent: the daemon resolves paths itself).
    pub path: PathBuf,
    /// A load parameter (the driver's registry path values): NAME=VALUE; repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    #[command(flatten)]
    connect: Connect,
}

/// `wfpctl driver unload`.
#[derive(clap::Args, Debug)]
pub struct UnloadArgs {
    /// The driver's name (as `driver list` shows it).
    pub name: String,
    #[command(flatten)]
    connect: Connect,
}

/// `wfpctl driver list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    connect: Connect,
}

/// `wfpctl driver ioctl`.
#[derive(clap::Args, Debug)]
pub struct IoctlArgs {
    /// The driver's name.
    pub driver: String,
    /// The IOCTL code (decimal or 0x-hex, e.g. 0x222003 = CTL_CODE(0x22, 0x800, 3, 0)).
    #[arg(value_parser = parse_code)]
    pub code: u32,
    /// The input buffer: a file, or `-` for standard input (default: empty).
    #[arg(long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write the output buffer to this file (raw bytes) instead of a hex dump.
    #[arg(long = "out", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the API's answer as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    connect: Connect,
}

impl FromArgMatches for DriverArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        match m.subcommand_name() {
            Some(name) if DaemonDriver::has_subcommand(name) => {
                DaemonDriver::from_arg_matches(m).map(Self::Daemon)
            }
            _ => driver::Args::from_arg_matches(m).map(Self::Build),
        }
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for DriverArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        DaemonDriver::augment_subcommands(<driver::Args as clap::Args>::augment_args(cmd))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

fn parse_code(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not an IOCTL code (a 32-bit number, decimal or 0x-hex)"))
}

fn parse_params(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    list.iter()
        .map(|p| {
            let (n, v) = p
                .split_once('=')
                .with_context(|| format!("--param {p:?} is not NAME=VALUE"))?;
            if n.is_empty() {
                bail!("--param {p:?} has an empty name");
            }
            Ok((n.to_string(), v.to_string()))
        })
        .collect()
}

/// Runs `wfpctl driver ...`.
pub fn run(a: &DriverArgs) -> anyhow::Result<ExitCode> {
    match a {
        DriverArgs::Build(b) => driver::run(b),
        DriverArgs::Daemon(DaemonDriver::Load(l)) => load(l),
        DriverArgs::Daemon(DaemonDriver::Unload(u)) => {
            let report = u.connect.client()?.unload_driver(&u.name)?;
            println!(
                "unloaded {}, {} verifier findings",
                report.name,
                report.findings.len()
            );
            for f in &report.findings {
                println!("  {f}");
            }
            Ok(ExitCode::SUCCESS)
        }
        DriverArgs::Daemon(DaemonDriver::List(l)) => list(l),
        DriverArgs::Daemon(DaemonDriver::Ioctl(i)) => ioctl(i),
    }
}

fn load(l: &LoadArgs) -> anyhow::Result<ExitCode> {
    let params = parse_params(&l.params)?;
    let path =
        std::path::absolute(&l.path).with_context(|| format!("resolving {}", l.path.display()))?;
    let path = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    let loaded: DriverView = l.connect.client()?.load_driver(path, &params)?;
    println!("loaded {} from {}", loaded.name, loaded.path);
    Ok(ExitCode::SUCCESS)
}

fn list(l: &ListArgs) -> anyhow::Result<ExitCode> {
    let mut c = l.connect.client()?;
    if l.json {
        print_json(&c.drivers::<serde_json::Value>()?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = c
        .drivers::<DriverView>()?
        .iter()
        .map(|d| {
            let params: Vec<String> = d.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                d.name.clone(),
                d.path.clone(),
                d.origin.clone(),
                if d.devices.is_empty() {
                    "-".into()
                } else {
                    d.devices.join(" ")
                },
                d.findings.to_string(),
                params.join(" "),
            ]
        })
        .collect();
    table(
        &["NAME", "PATH", "ORIGIN", "DEVICES", "FINDINGS", "PARAMS"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

fn ioctl(i: &IoctlArgs) -> anyhow::Result<ExitCode> {
    let input = match &i.input {
        None => Vec::new(),
        Some(p) if p.as_os_str() == "-" => {
            let mut v = Vec::new();
            std::io::stdin().read_to_end(&mut v)?;
            v
        }
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
    };
    let mut c = i.connect.client()?;
    let raw: serde_json::Value = c.driver_ioctl(&i.driver, i.code, &b64_encode(&input))?;
    if i.json {
        print_json(&raw)?;
    }
    let answer: IoctlAnswer = serde_json::from_value(raw).context("the ioctl answer")?;
    let output = b64_decode(&answer.output_b64).context("the ioctl answer's output_b64")?;
    let success = answer.success();
    eprintln!(
        "{} ioctl {:#010x}: status {:#010x}{}, {} output bytes",
        i.driver,
        i.code,
        answer.status,
        if success { "" } else { " (failure)" },
        output.len()
    );
    match &i.output {
        Some(p) => {
            std::fs::write(p, &output).with_context(|| format!("writing {}", p.display()))?
        }
        None if !i.json => print!("{}", hex_dump(&output)),
        None => {}
    }
    Ok(if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `00000000  de ad be ef ...  |....|` lines, 16 bytes each.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (n, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = chunk
            .iter()
            .map(|b| {
                if b.is_ascii_graphic() || *b == b' ' {
                    char::from(*b)
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(
            "{:08x}  {:<47}  |{text}|\n",
            n * 16,
            hex.join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_params_and_dumps() {
        assert_eq!(parse_code("0x222003"), Ok(0x22_2003));
        assert_eq!(parse_code("16"), Ok(16));
        assert!(parse_code("0x1_0000_0000").is_err());
        assert!(parse_params(&["a=1".into(), "b=x=y".into()]).is_ok_and(|p| p["b"] == "x=y"));
        assert!(parse_params(&["novalue".into()]).is_err());
        assert_eq!(
            hex_dump(b"AB\x00"),
            format!("00000000  {:<47}  |AB.|\n", "41 42 00")
        );
    }
}
