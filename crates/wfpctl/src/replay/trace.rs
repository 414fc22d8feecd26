//! The packet `--trace N` asked for: its verdict with the arbitration trace of every layer visit,
//! as text lines (after the table) or as the `trace` object of `--json`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::Value as Json;
use wfp_core::{ClassifyOutFlags, ClassifyResult, FilterId};
use wfp_pcap::PacketRef;
use wfp_shim::{LayerVisit, PacketVerdict};

use super::{
    action_name, deciding_layer, direction_name, layer_name, reason_string, time_string, FilterInfo,
};
use crate::explain;

/// The packet `--trace N` asked for, with its full trace. Serialises to the `trace` object of
/// the `--json` output (`docs/replay-json.md`).
#[derive(Clone, Debug)]
pub struct TracedPacket {
    /// Index in the capture.
    pub index: u64,
    /// Capture time, ns since the epoch.
    pub ts_ns: u64,
    /// Bytes on the wire.
    pub len: u64,
    /// The verdict, with a trace on every classify visit.
    pub verdict: PacketVerdict,
    names: HashMap<FilterId, Arc<str>>,
}

impl TracedPacket {
    pub(crate) fn new(
        p: &PacketRef<'_>,
        len: u64,
        verdict: PacketVerdict,
        filters: &HashMap<FilterId, FilterInfo>,
    ) -> Self {
        let names = verdict
            .visits
            .iter()
            .filter_map(|v| v.filter)
            .chain(verdict.filter)
            .filter_map(|id| filters.get(&id).map(|f| (id, Arc::from(f.name()))))
            .collect();
        Self {
            index: p.index,
            ts_ns: p.timestamp_ns,
            len,
            verdict,
            names,
        }
    }

    /// The trace as text: a headline, then every layer visited with its arbitration steps.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "trace of {}", self.headline())?;
        if self.verdict.visits.is_empty() {
            writeln!(out, "  (no layer classified the packet)")?;
        }
        for (i, visit) in self.verdict.visits.iter().enumerate() {
            let r = result_of(visit);
            match &visit.trace {
                Some(t) => {
                    writeln!(
                        out,
                        "  {}. {}: {} ({}) — {}",
                        i + 1,
                        layer_name(visit.layer),
                        action_name(visit.action),
                        explain::hardness(visit.action, visit.hardness),
                        t.explain(&r)
                    )?;
                    explain::write_steps(out, t, "       ")?;
                }
                None => {
                    let by = visit
                        .filter
                        .map(|id| {
                            format!(
                                " — filter {} {:?}",
                                id.0,
                                self.name(Some(id)).unwrap_or("?")
                            )
                        })
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "  {}. {}: {}{by} (stream waterfall: each stream callout decides its bytes; \
                         no arbitration trace)",
                        i + 1,
                        layer_name(visit.layer),
                        action_name(visit.action),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The trace as JSON (the same as serialising it).
    pub fn to_json(&self) -> Json {
        // Cannot fail: strings, numbers, bools, nulls, arrays and string-keyed objects only.
        serde_json::to_value(self).unwrap_or_default()
    }

    fn name(&self, id: Option<FilterId>) -> Option<&str> {
        id.and_then(|id| self.names.get(&id)).map(|n| &**n)
    }

    fn action(&self) -> &'static str {
        match self.verdict.verdict {
            wfp_shim::Verdict::Permit => "PERMIT",
            wfp_shim::Verdict::Block => "BLOCK",
            wfp_shim::Verdict::Absorb => "ABSORB",
        }
    }

    fn headline(&self) -> String {
        let v = &self.verdict;
        let flow = v.flow.map(|f| format!(", flow {f}")).unwrap_or_default();
        let by = match (v.filter, deciding_layer(v)) {
            (Some(id), Some(layer)) => format!(
                " at {} by filter {} {:?}",
                layer_name(layer),
                id.0,
                self.name(Some(id)).unwrap_or("?")
            ),
            (None, Some(layer)) => format!(" at {}", layer_name(layer)),
            _ => String::new(),
        };
        format!(
            "packet {} (time {}, {} bytes, {}{flow}): {}{by} ({})",
            self.index,
            time_string(self.ts_ns),
            self.len,
            direction_name(v.direction),
            self.action(),
            reason_string(&v.reason)
        )
    }

    fn view(&self) -> TraceView<'_> {
        let v = &self.verdict;
        TraceView {
            action: self.action(),
            direction: direction_name(v.direction),
            filter: self.name(v.filter),
            filter_id: v.filter.map(|f| f.0),
            flow: v.flow.map(|f| f.get()),
            index: self.index,
            layers: v.visits.iter().map(|visit| self.visit(visit)).collect(),
            len: self.len,
            reason: reason_string(&v.reason),
            time: time_string(self.ts_ns),
            ts_ns: self.ts_ns,
        }
    }

    fn visit<'a>(&'a self, visit: &LayerVisit) -> VisitView<'a> {
        let r = result_of(visit);
        VisitView {
            action: action_name(visit.action),
            decision: explain::hardness(visit.action, visit.hardness),
            filter: self.name(visit.filter),
            filter_id: visit.filter.map(|f| f.0),
            layer: layer_name(visit.layer),
            not_matched: visit.trace.as_ref().map(|t| t.not_matched),
            trace: visit.trace.as_ref().map(explain::steps_json),
            vetoed: visit.vetoed,
            why: visit.trace.as_ref().map(|t| t.explain(&r)),
        }
    }
}

impl Serialize for TracedPacket {
    /// The `trace` object of `--json`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

/// The traced packet as JSON. Fields in alphabetical order (the JSON keys' order).
#[derive(Serialize)]
struct TraceView<'a> {
    action: &'static str,
    direction: &'static str,
    filter: Option<&'a str>,
    filter_id: Option<u64>,
    flow: Option<u64>,
    index: u64,
    layers: Vec<VisitView<'a>>,
    len: u64,
    reason: String,
    time: String,
    ts_ns: u64,
}

/// One layer visit of the traced packet. Fields in alphabetical order.
#[derive(Serialize)]
struct VisitView<'a> {
    action: &'static str,
    decision: &'static str,
    filter: Option<&'a str>,
    filter_id: Option<u64>,
    layer: &'static str,
    not_matched: Option<usize>,
    /// The arbitration steps (already a JSON value: its keys are sorted).
    trace: Option<Json>,
    vetoed: bool,
    why: Option<String>,
}

fn result_of(visit: &LayerVisit) -> ClassifyResult {
    ClassifyResult {
        action: visit.action,
        hardness: visit.hardness,
        deciding_filter: visit.filter,
        flags: ClassifyOutFlags::default(),
        vetoed: visit.vetoed,
        stream: None,
    }
}
