//! `wfpctl decide`: answers pended ALE authorizations from outside the daemon — the basis of
//! interactive "allow this program to connect?" firewalls (wfp-reference §11 / issue 14: a
//! client completes authorizations the `wfp.interactive` callout pended; past the daemon's
//! deadline its configured default applies).
//!
//! ```text
//!   wfpctl decide                       one prompt per pending request, answers read from stdin
//!   wfpctl decide --follow              the same, then for new requests as they are pended
//!   wfpctl decide --list [--json]       list only
//!   wfpctl decide ID permit|block [--persist]
//!
//!   GET /v1/pending ─► prompt ─► y|n|p|b|s|q ─► POST /v1/pending/{id} {"decision","persist"}
//!   GET /v1/pending/stream (--follow) ─┘
//! ```
//!
//! Answers: `y` permit, `n` block, `p` permit and persist (the daemon adds a persistent filter),
//! `b` block and persist, `s` or an empty line skips (the deadline's default will apply), `q`
//! stops. Anything else asks again. End of input stops.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use wfp_api::Client;

use crate::live::time_text;
use crate::mgmt::{print_json, table, Connect};
use crate::views::{endpoint, layer_name, protocol_name, text_or_dash, DecisionResult, PendingDto};

/// `wfpctl decide`.
#[derive(clap::Args, Debug)]
pub struct DecideArgs {
    /// Answer this pending request without a prompt (with DECISION).
    pub id: Option<u64>,
    /// `permit` or `block`.
    #[arg(value_parser = ["permit", "block"], requires = "id")]
    pub decision: Option<String>,
    /// With ID and DECISION: also add a persistent filter carrying the answer.
    #[arg(long, requires = "decision")]
    pub persist: bool,
    /// List the pending requests and answer nothing.
    #[arg(long, conflicts_with = "id")]
    pub list: bool,
    /// With --list: the API's JSON.
    #[arg(long, requires = "list")]
    pub json: bool,
    /// After the pending requests, keep prompting for new ones as they are pended.
    #[arg(long, conflicts_with_all = ["id", "list"])]
    pub follow: bool,
    #[command(flatten)]
    connect: Connect,
}

/// What the person answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Complete with this decision (`permit`: true) and maybe persist it.
    Decide {
        /// Permit (true) or block.
        permit: bool,
        /// Also add a persistent filter.
        persist: bool,
    },
    /// Leave it pending.
    Skip,
    /// Stop asking.
    Quit,
}

/// Reads one answer for `p` from `input`, prompting on `out`; asks again on anything
/// unrecognised; `Quit` at end of input.
pub fn ask(
    p: &PendingDto,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> std::io::Result<Answer> {
    loop {
        write!(
            out,
            "{}\n  permit? [y]es [n]o [p]ermit+persist [b]lock+persist [s]kip [q]uit: ",
            describe(p)
        )?;
        out.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            writeln!(out)?;
            return Ok(Answer::Quit);
        }
        let answer = match line.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "permit" => Answer::Decide {
                permit: true,
                persist: false,
            },
            "n" | "no" | "block" => Answer::Decide {
                permit: false,
                persist: false,
            },
            "p" | "persist" => Answer::Decide {
                permit: true,
                persist: true,
            },
            "b" => Answer::Decide {
                permit: false,
                persist: true,
            },
            "" | "s" | "skip" => Answer::Skip,
            "q" | "quit" => Answer::Quit,
            other => {
                writeln!(out, "  {other:?}: answer y, n, p, b, s or q")?;
                continue;
            }
        };
        return Ok(answer);
    }
}

/// One line for people: `#ID LAYER PROTO LOCAL -> REMOTE app=... uid=... (DEFAULT at TIME UTC)`.
pub fn describe(p: &PendingDto) -> String {
    let mut s = format!(
        "#{} {} {} {} -> {}",
        p.id,
        layer_name(&p.layer, Some(p.layer_id)),
        protocol_name(p.protocol),
        endpoint(p.local_addr, p.local_port),
        endpoint(p.remote_addr, p.remote_port),
    );
    if let Some(app) = &p.app_id {
        s.push_str(&format!(" app={app}"));
    }
    if let Some(uid) = p.user_id {
        s.push_str(&format!(" uid={uid}"));
    }
    if p.deadline_ms != 0 && !p.default.is_empty() {
        s.push_str(&format!(
            " ({} at {} UTC)",
            p.default,
            time_text(Some(p.deadline_ms))
        ));
    }
    s
}

/// Column names of the pending table.
pub const PENDING_HEADER: [&str; 8] = [
    "ID", "LAYER", "PROTO", "LOCAL", "REMOTE", "APP", "DEADLINE", "DEFAULT",
];

fn pending_rows(list: &[PendingDto]) -> Vec<Vec<String>> {
    list.iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                layer_name(&p.layer, Some(p.layer_id)),
                protocol_name(p.protocol),
                endpoint(p.local_addr, p.local_port),
                endpoint(p.remote_addr, p.remote_port),
                p.app_id.clone().unwrap_or_else(|| "-".into()),
                time_text((p.deadline_ms != 0).then_some(p.deadline_ms)),
                text_or_dash(&p.default),
            ]
        })
        .collect()
}

/// Prompts for `p` and sends the answer; `false` when the person quit.
fn answer_one(
    c: &mut Client,
    p: &PendingDto,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    match ask(p, input, out)? {
        Answer::Quit => Ok(false),
        Answer::Skip => Ok(true),
        Answer::Decide { permit, persist } => {
            match c.decide::<DecisionResult>(p.id, permit, persist) {
                Ok(r) => writeln!(out, "  #{} {}", p.id, outcome(&r, permit, persist))?,
                // Too late (the deadline's default applied) or answered by someone else.
                Err(e) => writeln!(out, "  #{}: not answered: {e}", p.id)?,
            }
            Ok(true)
        }
    }
}

/// `permitted`, `blocked (persistent filter 12)`, ...
fn outcome(r: &DecisionResult, permit: bool, persist: bool) -> String {
    let done = if permit { "permitted" } else { "blocked" };
    match (persist, r.filter_id) {
        (true, Some(id)) => format!("{done} (persistent filter {id})"),
        (true, None) => format!("{done} (persisted)"),
        (false, _) => done.to_string(),
    }
}

/// `wfpctl decide`.
pub fn run(a: &DecideArgs) -> anyhow::Result<ExitCode> {
    let mut c = a.connect.client()?;
    if let Some(id) = a.id {
        let Some(decision) = &a.decision else {
            bail!("decide {id} needs a decision: permit or block");
        };
        let permit = decision == "permit";
        let r: DecisionResult = c
            .decide(id, permit, a.persist)
            .with_context(|| format!("answering pending request {id}"))?;
        println!("#{id} {}", outcome(&r, permit, a.persist));
        return Ok(ExitCode::SUCCESS);
    }
    if a.list {
        if a.json {
            print_json(&c.pending::<serde_json::Value>()?)?;
        } else {
            table(&PENDING_HEADER, &pending_rows(&c.pending::<PendingDto>()?));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout().lock();
    let pending: Vec<PendingDto> = c.pending()?;
    if pending.is_empty() && !a.follow {
        writeln!(out, "nothing is pending")?;
    }
    for p in &pending {
        if !answer_one(&mut c, p, &mut input, &mut out)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    if a.follow {
        let stream = a.connect.client()?.pending_stream::<PendingDto>()?;
        for p in stream {
            if !answer_one(&mut c, &p?, &mut input, &mut out)? {
                break;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingDto {
        serde_json::from_str(
            r#"{"id":4,"layer":"ALE_AUTH_CONNECT_V4","protocol":6,"local_addr":"10.0.0.2",
                "local_port":40000,"remote_addr":"10.0.0.1","remote_port":443,
                "app_id":"/usr/bin/curl","user_id":1000,"created_ms":1700000000000,
                "deadline_ms":1700000030000,"default":"block"}"#,
        )
        .unwrap()
    }

    fn answers(input: &str) -> (Vec<Answer>, String) {
        let mut r = std::io::Cursor::new(input.as_bytes().to_vec());
        let mut out = Vec::new();
        let mut got = Vec::new();
        loop {
            let a = ask(&pending(), &mut r, &mut out).unwrap();
            got.push(a);
            if a == Answer::Quit {
                break;
            }
        }
        (got, String::from_utf8(out).unwrap())
    }

    #[test]
    fn prompts_read_y_n_persist_skip_and_quit() {
        let (got, out) = answers("y\nN\nmaybe\np\nb\n\nq\n");
        assert_eq!(
            got,
            vec![
                Answer::Decide {
                    permit: true,
                    persist: false
                },
                Answer::Decide {
                    permit: false,
                    persist: false
                },
                Answer::Decide {
                    permit: true,
                    persist: true
                },
                Answer::Decide {
                    permit: false,
                    persist: true
                },
                Answer::Skip,
                Answer::Quit,
            ]
        );
        assert!(
            out.contains("\"maybe\": answer y, n, p, b, s or q"),
            "{out}"
        );
        assert!(
            out.contains("#4 ALE_AUTH_CONNECT_V4 tcp 10.0.0.2:40000 -> 10.0.0.1:443 app=/usr/bin/curl uid=1000 (block at 22:13:50.000 UTC)"),
            "{out}"
        );
    }

    #[test]
    fn end_of_input_quits() {
        let (got, _) = answers("y\n");
        assert_eq!(got.last(), Some(&Answer::Quit));
        assert_eq!(got.len(), 2);
    }
}
