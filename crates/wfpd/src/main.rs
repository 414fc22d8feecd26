//! `wfpd --config FILE [--check]`: see the crate documentation.
//!
//! Exit status: 0 after a clean stop (SIGTERM/SIGINT) or a successful `--check`; 1 when start-up
//! or a queue worker failed; 2 for a usage or configuration error; 3 when the `hung` posture is
//! `exit` and a worker got stuck.

use std::path::PathBuf;
use std::process::ExitCode;

use wfp_policy::Policy;
use wfpd::Config;

const USAGE: &str = "usage: wfpd --config FILE [--check]\n\
  --config, -c FILE  the configuration (TOML)\n\
  --check            check the configuration and policy files, then exit\n";

fn main() -> ExitCode {
    let mut config_path: Option<PathBuf> = None;
    let mut check = false;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--config" | "-c") => config_path = args.next().map(PathBuf::from),
            Some("--check") => check = true,
            Some("--help" | "-h") => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some("--version" | "-V") => {
                println!("wfpd {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            _ => {
                eprint!("wfpd: unexpected argument {arg:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = config_path else {
        eprint!("wfpd: --config is required\n{USAGE}");
        return ExitCode::from(2);
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("wfpd: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        for file in &config.policy.files {
            let built = Policy::load(file)
                .and_then(|p| p.build_engine(&wfp_callouts::Host::new()).map(|_| p));
            match built {
                Ok(p) => println!("{}: {} filters", file.display(), p.filter_count()),
                Err(e) => {
                    eprintln!("wfpd: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_max_level(config.log_level())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match wfpd::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("wfpd failed: {e:#}");
            ExitCode::from(1)
        }
    }
}
