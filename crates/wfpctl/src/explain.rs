//! How decisions are shown to people and scripts: the arbitration trace of one classify, as text
//! lines or JSON, shared by `wfpctl classify` and `wfpctl replay --trace`.

use std::io::{self, Write};

use serde_json::{json, Value as Json};
use wfp_core::{ActionType, ClassifyResult, Hardness, StepOutcome, Trace};

/// `hard`, `soft`, or `none` when no filter decided.
pub(crate) fn hardness(action: ActionType, hardness: Hardness) -> &'static str {
    match (action, hardness) {
        (ActionType::NONE_NO_MATCH, _) => "none",
        (_, Hardness::Hard) => "hard",
        (_, Hardness::Soft) => "soft",
    }
}

/// What one trace step did, as a small JSON object.
pub(crate) fn outcome(o: &StepOutcome) -> Json {
    match o {
        StepOutcome::Decided { action, hardness } => {
            json!({ "result": action.name(), "hard": *hardness == Hardness::Hard })
        }
        StepOutcome::Continue => json!({ "result": "CONTINUE" }),
        StepOutcome::Overridden { action } => {
            json!({ "result": action.name(), "ignored": "a hard decision stands" })
        }
        StepOutcome::NoRight { action } => {
            json!({ "result": action.name(), "ignored": "called without the write right" })
        }
        StepOutcome::Veto => json!({ "result": "BLOCK", "veto": true }),
        StepOutcome::SkippedNoFlowContext => {
            json!({ "result": "SKIPPED", "why": "CONDITIONAL_ON_FLOW and no flow context" })
        }
        StepOutcome::SkippedUnregistered => {
            json!({ "result": "SKIPPED", "why": "INSPECTION callout not registered" })
        }
        StepOutcome::Unregistered { action } => {
            json!({ "result": action.name(), "why": "callout not registered" })
        }
        StepOutcome::Panicked => {
            json!({ "result": "BLOCK", "why": "callout panicked; treated as unregistered" })
        }
        StepOutcome::StreamAction(a) => {
            json!({ "result": format!("{a:?}"), "why": "stream action" })
        }
    }
}

/// The name of the filter that decided `r`, as recorded in the trace.
pub(crate) fn deciding_name(r: &ClassifyResult, t: &Trace) -> Option<String> {
    let id = r.deciding_filter?;
    t.steps
        .iter()
        .rev()
        .find(|s| s.filter_id == id)
        .map(|s| s.filter_name.to_string())
}

/// Every step of a trace as JSON objects.
pub(crate) fn steps_json(t: &Trace) -> Json {
    Json::Array(
        t.steps
            .iter()
            .map(|s| {
                json!({
                    "sublayer": s.sublayer_name.to_string(),
                    "sublayer_weight": s.sublayer_weight,
                    "filter_id": s.filter_id.0,
                    "filter": s.filter_name.to_string(),
                    "weight": s.weight,
                    "action_type": s.action_type.name(),
                    "before": s.before.name(),
                    "write_right": s.write_right_before,
                    "outcome": outcome(&s.outcome),
                })
            })
            .collect(),
    )
}

/// Every step of a trace, one line each, indented by `indent`.
pub(crate) fn write_steps(out: &mut dyn Write, t: &Trace, indent: &str) -> io::Result<()> {
    for s in &t.steps {
        writeln!(
            out,
            "{indent}[{} w={}] filter {} {:?} w={:#x} {}: {}",
            s.sublayer_name,
            s.sublayer_weight,
            s.filter_id.0,
            s.filter_name.as_ref(),
            s.weight,
            s.action_type.name(),
            outcome(&s.outcome)
        )?;
    }
    if t.not_matched > 0 {
        writeln!(
            out,
            "{indent}({} filter{} at the layer did not match)",
            t.not_matched,
            if t.not_matched == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}
