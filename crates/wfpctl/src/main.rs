//! `wfpctl` — the wfp-engine command line.
//!
//! ```text
//!   wfpctl classify --policy POLICY.toml --input CASES.jsonl [--json]
//!        │ wfp-policy: parse + apply (one transaction)      │ one case per line
//!        ▼                                                  ▼
//!   wfp_core::Engine ◄──────────── classify(layer, values) ─┘ ──► one result line per case
//! ```
//!
//! Exit codes: 0 success; 1 the policy or an input file could not be used; 2 usage error (clap);
//! 3 some input lines were invalid (each reported with its line number; the rest were classified).

mod classify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Classify(a) => classify::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wfpctl: {e:#}");
            ExitCode::from(1)
        }
    }
}
