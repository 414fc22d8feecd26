//! `wfpctl classify`: what-if classification of JSON-lines cases.
//!
//! Input line: `{"layer": "ALE_AUTH_CONNECT_V4", "fields": {"IP_REMOTE_PORT": 80, ...}, "flow": 7,
//! "name": "optional label"}`. Layer and field names are WFP's (FWPM_ prefixes accepted); values
//! follow `wfp_policy::lit`. Output line (with `--json`): the final action, hard/soft, the deciding
//! filter and the full trace. Without `--json`: a readable line per case plus its trace.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{json, Value as Json};
use wfp_core::catalogue::{self, layer_by_name};
use wfp_core::constants::MetadataFields;
use wfp_core::{ActionType, ClassifyResult, Engine, Hardness, LayerData, Metadata, Trace, Value};
use wfp_policy::lit::{incoming_value, Lit};
use wfp_policy::Policy;

use crate::explain;

/// Arguments of `wfpctl classify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy file (TOML).
    #[arg(long)]
    policy: PathBuf,
    /// The cases (JSON lines); `-` reads standard input.
    #[arg(long)]
    input: PathBuf,
    /// One JSON object per output line.
    #[arg(long)]
    json: bool,
}

/// Runs `wfpctl classify`; the exit code is documented on the binary.
pub fn run(args: &Args) -> Result<ExitCode> {
    let policy = Policy::load(&args.policy).map_err(anyhow::Error::new)?;
    let (engine, _) = policy
        .build_engine(&wfp_callouts::Host::new())
        .map_err(anyhow::Error::new)?;
    let reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?,
        ))
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut bad = 0usize;
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("{}:{n}: reading", args.input.display()))?;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        match classify_line(&engine, &line) {
            Ok((case, result, trace)) => {
                if args.json {
                    writeln!(out, "{}", to_json(n, &case, &result, &trace))?;
                } else {
                    write_text(&mut out, n, &case, &result, &trace)?;
                }
            }
            Err(e) => {
                bad += 1;
                eprintln!("{}:{n}: {e}", args.input.display());
                if args.json {
                    writeln!(out, "{}", json!({ "line": n, "error": e }))?;
                }
            }
        }
    }
    Ok(if bad > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

struct Case {
    name: Option<String>,
    layer: &'static catalogue::LayerDef,
}

fn lit(j: &Json) -> Lit {
    match j {
        Json::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .map_or_else(|| Lit::Str(n.to_string()), Lit::Int),
        Json::String(s) => Lit::Str(s.clone()),
        Json::Bool(b) => Lit::Bool(*b),
        Json::Array(a) => Lit::Array(a.iter().map(lit).collect()),
        Json::Object(o) => Lit::Table(o.iter().map(|(k, v)| (k.clone(), lit(v))).collect()),
        Json::Null => Lit::Str("EMPTY".into()),
    }
}

fn classify_line(engine: &Engine, line: &str) -> Result<(Case, ClassifyResult, Trace), String> {
    let j: Json = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let obj = j.as_object().ok_or("a case is a JSON object")?;
    for k in obj.keys() {
        if !["layer", "fields", "values", "flow", "name"].contains(&k.as_str()) {
            return Err(format!("unknown key {k:?} (layer, fields, flow, name)"));
        }
    }
    let layer_name = obj
        .get("layer")
        .and_then(Json::as_str)
        .ok_or("missing \"layer\"")?;
    let layer = layer_by_name(layer_name).ok_or_else(|| format!("unknown layer {layer_name:?}"))?;
    let mut values = vec![Value::Empty; layer.fields.len()];
    // "values" is accepted as another name for "fields".
    if let Some(fields) = obj.get("fields").or_else(|| obj.get("values")) {
        let fields = fields
            .as_object()
            .ok_or("\"fields\" is an object of field name → value")?;
        for (name, v) in fields {
            let idx = layer
                .field_index_by_name(name)
                .ok_or_else(|| format!("fields.{name}: not a field of layer {}", layer.name))?;
            let f = &layer.fields[idx];
            values[idx] = incoming_value(f.name, f.data_type, &lit(v))
                .map_err(|e| format!("fields.{name}: {e}"))?;
        }
    }
    let mut meta = Metadata::default();
    if let Some(flow) = obj.get("flow") {
        meta.flow_handle = flow
            .as_u64()
            .filter(|f| *f != 0)
            .ok_or("\"flow\" is a non-zero integer")?;
        meta.present |= MetadataFields::FLOW_HANDLE;
    }
    let mut trace = Trace::default();
    let result = engine.classify(
        layer.layer_id(),
        &values,
        &meta,
        &mut LayerData::None,
        Some(&mut trace),
    );
    let name = obj.get("name").and_then(Json::as_str).map(str::to_string);
    Ok((Case { name, layer }, result, trace))
}

fn to_json(n: usize, case: &Case, r: &ClassifyResult, t: &Trace) -> Json {
    let deciding = r.deciding_filter.map(|id| id.0);
    let deciding_name = explain::deciding_name(r, t);
    json!({
        "line": n,
        "name": case.name,
        "layer": case.layer.name,
        "action": r.action.name(),
        "decision": explain::hardness(r.action, r.hardness),
        "hard": r.action != ActionType::NONE_NO_MATCH && r.hardness == Hardness::Hard,
        "filter_id": deciding,
        "filter": deciding_name,
        "vetoed": r.vetoed,
        "absorb": r.absorbed(),
        "why": t.explain(r),
        "trace": explain::steps_json(t),
        "not_matched": t.not_matched,
    })
}

fn write_text(
    out: &mut dyn Write,
    n: usize,
    case: &Case,
    r: &ClassifyResult,
    t: &Trace,
) -> std::io::Result<()> {
    let label = case
        .name
        .as_deref()
        .map(|s| format!(" {s:?}"))
        .unwrap_or_default();
    writeln!(
        out,
        "case {n}{label} at {}: {} ({}) — {}",
        case.layer.name,
        r.action.name(),
        explain::hardness(r.action, r.hardness),
        t.explain(r)
    )?;
    explain::write_steps(out, t, "    ")?;
    Ok(())
}
