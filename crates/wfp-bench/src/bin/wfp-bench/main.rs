//! `wfp-bench`: loads a ClassBench rule file (or a generated hard set) as WFP filters and measures
//! the engine's classifier on it, every answer checked against a linear scan.
//!
//! ```text
//! wfp-bench classbench RULES [TRACE] [--json] [--updates N] [--no-concurrent] [--no-fallback]
//! wfp-bench generate N [--seed S] [--out RULES] [--trace TRACE]   write a hard set (ClassBench format)
//! wfp-bench hard N [--seed S] [--json] [--updates N] [--no-concurrent] [--no-fallback]   measure a hard set directly
//! ```
//!
//! With `WFP_B1_PROFILE=1` in the environment, `classbench` and `hard` only load, build and run one
//! pass of index lookups (for a profiler; `measure::profile`).
//!
//! Without TRACE, headers are drawn from rule corners (`hard::corner_headers`, ten per rule).
//! What is measured and how: see `measure.rs`. Exit status 1 on bad arguments or unreadable files,
//! 2 when an answer differed from the scan.

mod measure;

use std::process::ExitCode;

use wfp_bench::{classbench, hard};

const USAGE: &str = "usage:
  wfp-bench classbench RULES [TRACE] [--json] [--updates N] [--no-concurrent] [--no-fallback]
  wfp-bench generate N [--seed S] [--out RULES] [--trace TRACE]
  wfp-bench hard N [--seed S] [--json] [--updates N] [--no-concurrent] [--no-fallback]";

/// Parsed command line.
struct Args {
    mode: String,
    positional: Vec<String>,
    json: bool,
    concurrent: bool,
    fallback: bool,
    updates: Option<usize>,
    seed: u64,
    out: Option<String>,
    trace: Option<String>,
}

fn parse_args(raw: &[String]) -> Result<Args, String> {
    let mut it = raw.iter();
    let mode = it.next().ok_or("missing mode")?.clone();
    let mut a = Args {
        mode,
        positional: Vec::new(),
        json: false,
        concurrent: true,
        fallback: true,
        updates: None,
        seed: 1,
        out: None,
        trace: None,
    };
    while let Some(x) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match x.as_str() {
            "--json" => a.json = true,
            "--no-concurrent" => a.concurrent = false,
            "--no-fallback" => a.fallback = false,
            "--updates" => a.updates = Some(number(&value("--updates")?)?),
            "--seed" => a.seed = number(&value("--seed")?)? as u64,
            "--out" => a.out = Some(value("--out")?),
            "--trace" => a.trace = Some(value("--trace")?),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s => a.positional.push(s.to_string()),
        }
    }
    Ok(a)
}

fn number(s: &str) -> Result<usize, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| format!("not a number: {s}"))
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn run(a: &Args) -> Result<bool, String> {
    let input = match (a.mode.as_str(), a.positional.as_slice()) {
        ("classbench", [rules, rest @ ..]) if rest.len() <= 1 => {
            let parsed = classbench::parse_rules(&read(rules)?).map_err(|e| e.to_string())?;
            let headers = match rest.first() {
                Some(t) => classbench::parse_trace(&read(t)?).map_err(|e| e.to_string())?,
                None => hard::corner_headers(&parsed, 10, a.seed),
            };
            let name = std::path::Path::new(rules)
                .file_name()
                .map_or_else(|| rules.clone(), |n| n.to_string_lossy().into_owned());
            measure::Input {
                name,
                rules: parsed,
                headers,
            }
        }
        ("hard", [n]) => {
            let rules = hard::generate(number(n)?, a.seed);
            let headers = hard::corner_headers(&rules, 10, a.seed ^ 0x5555);
            measure::Input {
                name: format!("hard_{n}_seed{}", a.seed),
                rules,
                headers,
            }
        }
        ("generate", [n]) => {
            let rules = hard::generate(number(n)?, a.seed);
            let text = hard::format_rules(&rules);
            match &a.out {
                Some(p) => std::fs::write(p, text).map_err(|e| format!("{p}: {e}"))?,
                None => print!("{text}"),
            }
            if let Some(p) = &a.trace {
                let headers = hard::corner_headers(&rules, 10, a.seed ^ 0x5555);
                std::fs::write(p, hard::format_trace(&headers)).map_err(|e| format!("{p}: {e}"))?;
            }
            eprintln!(
                "{} rules, {} distinct shapes, {} distinct tuples",
                rules.len(),
                hard::shape_count(&rules),
                hard::tuple_count(&rules)
            );
            return Ok(true);
        }
        _ => return Err(USAGE.to_string()),
    };
    if std::env::var_os("WFP_B1_PROFILE").is_some() {
        measure::profile(&input)?;
        return Ok(true);
    }
    let opts = measure::Options {
        updates: a.updates,
        concurrent: a.concurrent,
        fallback: a.fallback,
        progress: !a.json,
    };
    let report = measure::run(&input, &opts)?;
    if a.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        report.print();
    }
    Ok(report.mismatches == 0)
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&raw) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wfp-bench: {e}\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("wfp-bench: {e}");
            ExitCode::from(1)
        }
    }
}
