//! `wfpctl` — the wfp-engine command line (a thin layer over the `wfpctl` library).
//!
//! ```text
//!   wfpctl classify --policy POLICY.toml --input CASES.jsonl [--json]
//!   wfpctl replay CAPTURE --policy POLICY.toml [--json] [--verdicts OUT.jsonl|-]
//!                 [--permitted OUT.pcap|OUT.pcapng|-] [--blocked OUT.pcap|OUT.pcapng|-]
//!                 [--output-format pcap|pcapng] [--local CIDR]... [--trace N]
//! ```
//!
//! `replay`: an output named `-` is standard output (at most one); the summary (table or `--json`)
//! then goes to standard error. Captures are pcapng when named `*.pcapng` or with
//! `--output-format pcapng`, classic pcap otherwise.
//!
//! Exit codes:
//! - 0 success;
//! - 1 the policy, an input or capture file, or an output file could not be used;
//! - 2 usage error (clap; `replay`: more than one output named `-`);
//! - 3 `classify`: some input lines were invalid (each reported with its line number; the rest
//!   were classified); `replay`: the packet named by `--trace` is not an IP packet of the capture;
//! - 4 `replay`: the capture is truncated or corrupt — the summary covers every packet before the
//!   damage and the error names its byte offset.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wfpctl::{classify, replay};

/// Windows Filtering Platform semantics on Linux.
#[derive(Parser)]
#[command(name = "wfpctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What-if: classify the cases of a JSON-lines file against a policy and explain each decision.
    Classify(classify::Args),
    /// Replay a capture through a policy: what would it have done to this traffic, and why?
    Replay(replay::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Classify(a) => classify::run(&a),
        Command::Replay(a) => replay::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wfpctl: {e:#}");
            ExitCode::from(1)
        }
    }
}
