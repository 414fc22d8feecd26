//! `wfpctl` — the wfp-engine command line (a thin layer over the `wfpctl` library).
//!
//! ```text
//!   wfpctl classify --policy POLICY.toml --input CASES.jsonl [--json]
//!   wfpctl replay CAPTURE --policy POLICY.toml [--json] [--verdicts OUT.jsonl|-]
//!                 [--permitted OUT.pcap|OUT.pcapng|-] [--blocked OUT.pcap|OUT.pcapng|-]
//!                 [--output-format pcap|pcapng] [--local CIDR]... [--trace N]
//!                 [--driver DRIVER.so]... [--verify]   (--policy optional with --driver)
//!   wfpctl driver build SOURCES... -o DRIVER.so [-I DIR] [-D NAME[=V]] [--cflag FLAG]
//!   wfpctl driver load DRIVER.so [--param NAME=VALUE]... | unload NAME | list [--json]
//!   wfpctl driver ioctl NAME CODE [--in FILE] [--out FILE] [--json]
//!   wfpctl show state|filters|sublayers|providers|callouts|sessions|flows|netevents [--json]
//!               [--socket PATH]
//!   wfpctl add filter --layer L --action A [--condition FIELD=VALUE]... | --json FILE
//!   wfpctl delete filter|sublayer|provider|callout ID|KEY
//!   wfpctl watch [--json]
//!   wfpctl apply POLICY.toml [--dry-run]
//!   wfpctl decide [--follow | --list [--json] | ID permit|block [--persist]]
//!   wfpctl top [--interval-ms MS] [--events N]
//!   wfpctl completions bash|zsh|fish  |  wfpctl man [--dir DIR]
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
//!   damage and the error names its byte offset;
//! - 5 `replay --driver ... --verify`: the Driver Verifier reported findings (printed on stderr).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use wfpctl::{classify, completions, decide, driverctl, mgmt, replay, top};

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
    /// C callout drivers: build WDK-style sources for `replay --driver`; load, unload, list and
    /// send IOCTLs to drivers in the running daemon.
    Driver(driverctl::DriverArgs),
    /// List what the running daemon holds (through its management socket).
    Show(mgmt::ShowArgs),
    /// Add a filter to the running daemon.
    Add(mgmt::AddArgs),
    /// Delete an object from the running daemon.
    Delete(mgmt::DeleteArgs),
    /// Print the daemon's net events as they happen.
    Watch(mgmt::WatchArgs),
    /// Apply a policy file to the running daemon in one transaction (`--dry-run`: the diff).
    Apply(mgmt::ApplyArgs),
    /// Answer pended connection authorizations (interactive prompts, or `decide ID permit|block`).
    Decide(decide::DecideArgs),
    /// A live terminal view of flows, verdict rates and recent net events (q quits).
    Top(top::TopArgs),
    /// Print a shell completion script (bash, zsh, fish).
    Completions(completions::CompletionsArgs),
    /// Print the man page (or write one per subcommand with --dir).
    Man(completions::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Classify(a) => classify::run(&a),
        Command::Replay(a) => replay::run(&a),
        Command::Driver(a) => driverctl::run(&a),
        Command::Show(a) => mgmt::show(&a),
        Command::Add(a) => mgmt::add(&a),
        Command::Delete(a) => mgmt::delete(&a),
        Command::Watch(a) => mgmt::watch(&a),
        Command::Apply(a) => mgmt::apply(&a),
        Command::Decide(a) => decide::run(&a),
        Command::Top(a) => top::run(&a),
        Command::Completions(a) => completions::run_completions(&a, Cli::command()),
        Command::Man(a) => completions::run_man(&a, Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wfpctl: {e:#}");
            ExitCode::from(1)
        }
    }
}
