//! The replay's counters and the [`Report`] built from them: a table for people, one JSON object
//! for scripts.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value as Json};
use wfp_callouts::{FlowRecord, StreamReport};
use wfp_core::{ActionType, ClassifyOutFlags, ClassifyResult, Engine, FilterId, LayerId};
use wfp_pcap::{CaptureError, CaptureFormat, LinkError, LinkType, NetworkProtocol, PacketRef};
use wfp_shim::flow::EndReason;
use wfp_shim::{PacketVerdict, Reason, ShimStats};

use super::{
    action_name, deciding_layer, direction_name, layer_name, reason_string, time_string, Action,
    FilterInfo, SinkReport,
};
use crate::explain;

/// How many examples of each anomaly the report keeps.
const EXAMPLES: usize = 5;
/// Filters listed in the text table.
const TOP_FILTERS: usize = 10;
/// Flow-log records listed in the text output (`--json` lists all).
const LOG_LINES: usize = 20;

/// Packets and bytes (bytes on the wire: the original length of each frame).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: u64) {
        self.packets += 1;
        self.bytes += bytes;
    }

    fn json(self) -> Json {
        json!({ "packets": self.packets, "bytes": self.bytes })
    }
}

/// Final verdicts; the four add up to the packets read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// PERMIT (by a filter or by the no-match default).
    pub permitted: Count,
    /// BLOCK (filters, stream callouts, malformed packets).
    pub blocked: Count,
    /// BLOCK with ABSORB.
    pub absorbed: Count,
    /// Not classified (see [`Report::skipped_reasons`]).
    pub skipped: Count,
}

/// One layer: what its classify calls decided, by packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerRow {
    /// The layer.
    pub layer: LayerId,
    /// A filter permitted.
    pub permitted: Count,
    /// A filter blocked (the packet stopped here).
    pub blocked: Count,
    /// A filter blocked with ABSORB (the packet stopped here).
    pub absorbed: Count,
    /// No filter decided (FWP_ACTION_NONE_NO_MATCH; the no-match default applied).
    pub no_match: Count,
}

/// One filter that decided something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterRow {
    /// Filter id.
    pub id: FilterId,
    /// Filter name.
    pub name: String,
    /// Its layer.
    pub layer: LayerId,
    /// Its action type.
    pub action: ActionType,
    /// Layer visits it decided PERMIT.
    pub permits: u64,
    /// Layer visits it decided BLOCK (vetoes included).
    pub blocks: u64,
    /// Of the blocks, vetoes of a hard PERMIT.
    pub vetoes: u64,
    /// Packets whose final verdict names this filter.
    pub final_packets: u64,
}

/// Flows and how they ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowSummary {
    /// Flows created (each ends exactly once).
    pub flows: u64,
    /// Ended by FIN handshakes.
    pub fin: u64,
    /// Ended by RST.
    pub rst: u64,
    /// Ended by an idle timeout (capture time).
    pub idle_timeout: u64,
    /// Evicted from a full flow table.
    pub evicted: u64,
    /// Ended by a block (before authorization, at reauthorization, a dropped connection).
    pub blocked: u64,
    /// Still open when the capture ended (aborted then).
    pub at_capture_end: u64,
    /// Flow contexts whose flowDeleteFn ran.
    pub contexts_deleted: u64,
}

/// Things worth a look.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// IP packets the shim could not parse (they got the malformed verdict, BLOCK).
    pub malformed: u64,
    /// The first few: (packet index, why).
    pub malformed_examples: Vec<(u64, String)>,
    /// Frames whose link-layer header is cut short or unusable (skipped).
    pub link_errors: u64,
    /// The first few: (packet index, why).
    pub link_error_examples: Vec<(u64, String)>,
    /// TCP retransmissions / overlaps carrying different bytes (the first copy wins).
    pub stream_overlaps: u64,
    /// Fragments the reassembler dropped.
    pub fragments_dropped: u64,
    /// Packets the flow table could not track (stray RST, table full).
    pub untracked: u64,
    /// Connections dropped by stream callouts.
    pub connections_dropped: u64,
    /// Stream bytes blocked by stream filters.
    pub stream_bytes_blocked: u64,
    /// Callout vetoes of a hard PERMIT.
    pub vetoes: u64,
    /// Callout classifyFn panics contained by the engine.
    pub callout_panics: u64,
    /// Flows reauthorized after a policy change.
    pub reauthorizations: u64,
    /// Frames captured shorter than they were on the wire (snapshot length).
    pub snaplen_truncated: u64,
    /// IP packets the snapshot length cut that were classified from their headers (their length
    /// fields point past the capture; a packet whose headers were cut is malformed instead).
    pub truncated_classified: u64,
    /// TCP payload bytes the snapshot length cut: skipped by stream reassembly (the stream goes
    /// on), reported to stream callouts as missedBytes.
    pub stream_bytes_missed: u64,
    /// IPv4 header checksums that do not verify (malformed only with `--verify-checksums`;
    /// otherwise classified and counted here, informational).
    pub ipv4_checksum_mismatches: u64,
    /// Packets whose timestamp is earlier than the previous packet's.
    pub timestamps_backwards: u64,
}

/// The packet `--trace N` asked for, with its full trace.
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
            .filter_map(|id| filters.get(&id).map(|f| (id, f.name.clone())))
            .collect();
        Self {
            index: p.index,
            ts_ns: p.timestamp_ns,
            len,
            verdict,
            names,
        }
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

    /// The trace as JSON.
    pub fn to_json(&self) -> Json {
        let v = &self.verdict;
        json!({
            "index": self.index,
            "ts_ns": self.ts_ns,
            "time": time_string(self.ts_ns),
            "len": self.len,
            "direction": direction_name(v.direction),
            "flow": v.flow,
            "action": self.action(),
            "reason": reason_string(&v.reason),
            "filter_id": v.filter.map(|f| f.0),
            "filter": self.name(v.filter),
            "layers": v.visits.iter().map(|visit| {
                let r = result_of(visit);
                json!({
                    "layer": layer_name(visit.layer),
                    "action": action_name(visit.action),
                    "decision": explain::hardness(visit.action, visit.hardness),
                    "filter_id": visit.filter.map(|f| f.0),
                    "filter": self.name(visit.filter),
                    "vetoed": visit.vetoed,
                    "why": visit.trace.as_ref().map(|t| t.explain(&r)),
                    "trace": visit.trace.as_ref().map(explain::steps_json),
                    "not_matched": visit.trace.as_ref().map(|t| t.not_matched),
                })
            }).collect::<Vec<_>>(),
        })
    }
}

fn result_of(visit: &wfp_shim::LayerVisit) -> ClassifyResult {
    ClassifyResult {
        action: visit.action,
        hardness: visit.hardness,
        deciding_filter: visit.filter,
        flags: ClassifyOutFlags::default(),
        vetoed: visit.vetoed,
        stream: None,
    }
}

/// Everything a replay found.
#[derive(Debug)]
pub struct Report {
    /// The capture's path, as given (set by the caller).
    pub capture: Option<PathBuf>,
    /// Its container format.
    pub format: Option<CaptureFormat>,
    /// The policy's path, as given (set by the caller).
    pub policy: Option<PathBuf>,
    /// Filters in the engine.
    pub filter_count: usize,
    /// Packets read.
    pub packets: Count,
    /// Capture time of the first packet.
    pub first_ts_ns: Option<u64>,
    /// Capture time of the last packet.
    pub last_ts_ns: Option<u64>,
    /// Packets per link type.
    pub link_types: BTreeMap<LinkType, u64>,
    /// Final verdicts.
    pub verdicts: Verdicts,
    /// Why packets were skipped.
    pub skipped_reasons: BTreeMap<String, Count>,
    /// Layers classified, in run-time layer id order.
    pub layers: Vec<LayerRow>,
    /// Filters that decided something, most decisions first.
    pub filters: Vec<FilterRow>,
    /// Flows.
    pub flows: FlowSummary,
    /// Anomalies.
    pub anomalies: Anomalies,
    /// The `--trace` packet.
    pub traced: Option<TracedPacket>,
    /// Records of the built-in `wfp.flow-logger`, when the policy uses it.
    pub flow_log: Vec<FlowRecord>,
    /// Reports of the built-in `wfp.stream-monitor`, when the policy uses it.
    pub stream_reports: Vec<StreamReport>,
    /// The pcap outputs written: ("permitted" | "blocked", what was written).
    pub outputs: Vec<(&'static str, SinkReport)>,
    /// The `--verdicts` file and its line count.
    pub verdict_file: Option<(PathBuf, u64)>,
    /// The error that ended reading early: everything above covers the packets before it.
    pub capture_error: Option<CaptureError>,
}

/// The layer's counters, indexed by run-time layer id.
#[derive(Clone, Copy, Default)]
struct LayerCounts {
    permitted: Count,
    blocked: Count,
    absorbed: Count,
    no_match: Count,
}

#[derive(Clone, Copy, Default)]
struct FilterCounts {
    permits: u64,
    blocks: u64,
    vetoes: u64,
    final_packets: u64,
}

/// Filter counters live in a vector indexed by filter id up to this id, in a map above it.
const DENSE_FILTER_IDS: u64 = 1 << 20;

/// The running counters.
pub(crate) struct Summary {
    packets: Count,
    first_ts: Option<u64>,
    last_ts: Option<u64>,
    link_types: BTreeMap<LinkType, u64>,
    verdicts: Verdicts,
    skipped: BTreeMap<String, Count>,
    layers: Vec<LayerCounts>,
    filters: Vec<FilterCounts>,
    sparse_filters: HashMap<FilterId, FilterCounts>,
    flows: FlowSummary,
    anomalies: Anomalies,
}

pub(crate) struct Finish<'a> {
    pub(crate) shim: &'a ShimStats,
    pub(crate) engine: &'a Engine,
    pub(crate) filters: &'a HashMap<FilterId, FilterInfo>,
    pub(crate) traced: Option<TracedPacket>,
    pub(crate) outputs: Vec<(&'static str, SinkReport)>,
    pub(crate) verdict_file: Option<(PathBuf, u64)>,
    pub(crate) flow_log: Vec<FlowRecord>,
    pub(crate) stream_reports: Vec<StreamReport>,
    pub(crate) capture_error: Option<CaptureError>,
}

impl Summary {
    pub(crate) fn new(max_filter_id: u64) -> Self {
        let dense = usize::try_from(max_filter_id.min(DENSE_FILTER_IDS) + 1).unwrap_or(1);
        Self {
            packets: Count::default(),
            first_ts: None,
            last_ts: None,
            link_types: BTreeMap::new(),
            verdicts: Verdicts::default(),
            skipped: BTreeMap::new(),
            layers: vec![LayerCounts::default(); wfp_core::catalogue::all_layers().len()],
            filters: vec![FilterCounts::default(); dense],
            sparse_filters: HashMap::new(),
            flows: FlowSummary::default(),
            anomalies: Anomalies::default(),
        }
    }

    pub(crate) fn packet(&mut self, p: &PacketRef<'_>, wire: u64) {
        self.packets.add(wire);
        self.first_ts.get_or_insert(p.timestamp_ns);
        if self.last_ts.is_some_and(|t| p.timestamp_ns < t) {
            self.anomalies.timestamps_backwards += 1;
        }
        self.last_ts = Some(
            self.last_ts
                .map_or(p.timestamp_ns, |t| t.max(p.timestamp_ns)),
        );
        *self.link_types.entry(p.link_type).or_default() += 1;
        if (p.data.len() as u64) < u64::from(p.orig_len) {
            self.anomalies.snaplen_truncated += 1;
        }
    }

    /// Records a link-layer failure as an anomaly (unless it is only an unsupported link type);
    /// returns the skip reason to count with [`Summary::skip`].
    pub(crate) fn link_error(&mut self, index: u64, e: &LinkError) -> String {
        let reason = match e {
            LinkError::UnsupportedLinkType(t) => format!("unsupported link type {t}"),
            other => {
                self.anomalies.link_errors += 1;
                if self.anomalies.link_error_examples.len() < EXAMPLES {
                    self.anomalies
                        .link_error_examples
                        .push((index, other.to_string()));
                }
                "link-layer header unusable".to_string()
            }
        };
        reason
    }

    pub(crate) fn skip(&mut self, reason: &str, wire: u64) {
        match self.skipped.get_mut(reason) {
            Some(c) => c.add(wire),
            None => {
                let mut c = Count::default();
                c.add(wire);
                self.skipped.insert(reason.to_string(), c);
            }
        }
        self.verdicts.skipped.add(wire);
    }

    pub(crate) fn verdict(&mut self, index: u64, v: &PacketVerdict, action: Action, wire: u64) {
        match action {
            Action::Permit => self.verdicts.permitted.add(wire),
            Action::Block => self.verdicts.blocked.add(wire),
            Action::Absorb => self.verdicts.absorbed.add(wire),
            Action::Skip => self.verdicts.skipped.add(wire),
        }
        if let Reason::Malformed(m) = &v.reason {
            if self.anomalies.malformed_examples.len() < EXAMPLES {
                self.anomalies.malformed_examples.push((index, m.clone()));
            }
        }
        let last = v.visits.len().saturating_sub(1);
        for (i, visit) in v.visits.iter().enumerate() {
            if let Some(l) = self.layers.get_mut(usize::from(visit.layer.0)) {
                match visit.action {
                    ActionType::PERMIT => l.permitted.add(wire),
                    ActionType::BLOCK if i == last && action == Action::Absorb => {
                        l.absorbed.add(wire);
                    }
                    ActionType::BLOCK => l.blocked.add(wire),
                    _ => l.no_match.add(wire),
                }
            }
            if let Some(id) = visit.filter {
                let f = self.filter_mut(id);
                match visit.action {
                    ActionType::PERMIT => f.permits += 1,
                    ActionType::BLOCK => f.blocks += 1,
                    _ => {}
                }
                if visit.vetoed {
                    f.vetoes += 1;
                }
            }
            if visit.vetoed {
                self.anomalies.vetoes += 1;
            }
        }
        if let Some(id) = v.filter {
            self.filter_mut(id).final_packets += 1;
        }
    }

    pub(crate) fn flow_ended(&mut self, reason: EndReason, contexts: usize, at_end: bool) {
        let f = &mut self.flows;
        f.flows += 1;
        f.contexts_deleted += contexts as u64;
        match reason {
            EndReason::Fin => f.fin += 1,
            EndReason::Rst => f.rst += 1,
            EndReason::IdleTimeout => f.idle_timeout += 1,
            EndReason::Evicted => f.evicted += 1,
            EndReason::Aborted if at_end => f.at_capture_end += 1,
            EndReason::Aborted => f.blocked += 1,
        }
    }

    fn filter_mut(&mut self, id: FilterId) -> &mut FilterCounts {
        let slot = usize::try_from(id.0)
            .ok()
            .filter(|_| id.0 <= DENSE_FILTER_IDS);
        if let Some(i) = slot {
            if i >= self.filters.len() {
                self.filters.resize(i + 1, FilterCounts::default());
            }
            if let Some(f) = self.filters.get_mut(i) {
                return f;
            }
        }
        self.sparse_filters.entry(id).or_default()
    }

    pub(crate) fn into_report(mut self, fin: Finish<'_>) -> Report {
        let s = fin.shim;
        let a = &mut self.anomalies;
        a.malformed = s.malformed;
        a.stream_overlaps = s.stream_overlaps;
        a.fragments_dropped = s.fragments_dropped;
        a.untracked = s.untracked;
        a.connections_dropped = s.connections_dropped;
        a.stream_bytes_blocked = s.stream_bytes_blocked;
        a.reauthorizations = s.reauthorizations;
        a.truncated_classified = s.truncated;
        a.stream_bytes_missed = s.stream_bytes_missed;
        a.ipv4_checksum_mismatches = s.ipv4_checksum_mismatches;
        a.callout_panics = fin.engine.stats().callout_panics.load(Ordering::Relaxed);
        let layers = self
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                l.permitted.packets + l.blocked.packets + l.absorbed.packets + l.no_match.packets
                    > 0
            })
            .filter_map(|(i, l)| {
                Some(LayerRow {
                    layer: LayerId(u16::try_from(i).ok()?),
                    permitted: l.permitted,
                    blocked: l.blocked,
                    absorbed: l.absorbed,
                    no_match: l.no_match,
                })
            })
            .collect();
        let counts = self
            .filters
            .iter()
            .enumerate()
            .map(|(i, c)| (FilterId(i as u64), *c))
            .chain(self.sparse_filters.iter().map(|(k, c)| (*k, *c)));
        let mut filters: Vec<FilterRow> = counts
            .filter(|(_, c)| c.permits + c.blocks + c.final_packets > 0)
            .map(|(id, c)| {
                let info = fin.filters.get(&id).cloned().or_else(|| {
                    fin.engine.filter(id).map(|f| FilterInfo {
                        name: Arc::from(f.name()),
                        layer: f.layer(),
                        action: f.action(),
                    })
                });
                FilterRow {
                    id,
                    name: info
                        .as_ref()
                        .map_or_else(String::new, |i| i.name.to_string()),
                    layer: info.as_ref().map_or(LayerId(u16::MAX), |i| i.layer),
                    action: info.as_ref().map_or(ActionType::NONE, |i| i.action),
                    permits: c.permits,
                    blocks: c.blocks,
                    vetoes: c.vetoes,
                    final_packets: c.final_packets,
                }
            })
            .collect();
        filters.sort_by(|x, y| {
            (y.permits + y.blocks)
                .cmp(&(x.permits + x.blocks))
                .then(x.id.0.cmp(&y.id.0))
        });
        Report {
            capture: None,
            format: None,
            policy: None,
            filter_count: fin.filters.len(),
            packets: self.packets,
            first_ts_ns: self.first_ts,
            last_ts_ns: self.last_ts,
            link_types: self.link_types,
            verdicts: self.verdicts,
            skipped_reasons: self.skipped,
            layers,
            filters,
            flows: self.flows,
            anomalies: self.anomalies,
            traced: fin.traced,
            flow_log: fin.flow_log,
            stream_reports: fin.stream_reports,
            outputs: fin.outputs,
            verdict_file: fin.verdict_file,
            capture_error: fin.capture_error,
        }
    }
}

/// The skip reason of a decoded frame that is not IP.
pub(crate) fn not_ip_reason(p: NetworkProtocol) -> String {
    match p {
        NetworkProtocol::OtherEtherType(0x0806) => "not IP: ARP".into(),
        NetworkProtocol::OtherEtherType(0x88CC) => "not IP: LLDP".into(),
        NetworkProtocol::OtherEtherType(t) => format!("not IP: ethertype {t:#06x}"),
        NetworkProtocol::Llc { dsap, ssap } => {
            format!("not IP: 802.2 LLC (DSAP {dsap:#04x}, SSAP {ssap:#04x})")
        }
        NetworkProtocol::OtherAddressFamily(f) => format!("not IP: address family {f}"),
        NetworkProtocol::OtherIpVersion(v) => format!("not IP: version nibble {v}"),
        other => format!("not IP: {other:?}"),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn since(start: Option<u64>, t: Duration) -> Duration {
    let origin = Duration::from_nanos(start.unwrap_or(0));
    t.saturating_sub(origin)
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        other => format!("proto {other}"),
    }
}

fn endpoint(addr: Option<std::net::IpAddr>, port: u16) -> String {
    match addr {
        Some(std::net::IpAddr::V6(a)) => format!("[{a}]:{port}"),
        Some(a) => format!("{a}:{port}"),
        None => format!("?:{port}"),
    }
}

fn printable(bytes: &[u8], max: usize) -> String {
    bytes
        .iter()
        .take(max)
        .map(|b| match b {
            b'\r' => "\\r".to_string(),
            b'\n' => "\\n".to_string(),
            0x20..=0x7e => char::from(*b).to_string(),
            _ => ".".to_string(),
        })
        .collect()
}

/// Writes rows as left/right aligned columns (`right[i]` aligns column `i` to the right).
fn table(
    out: &mut dyn Write,
    rows: &[Vec<String>],
    right: &[bool],
    indent: &str,
) -> io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::from(indent);
        for (c, cell) in row.iter().enumerate() {
            let w = widths.get(c).copied().unwrap_or(0);
            if c > 0 {
                line.push_str("  ");
            }
            if right.get(c).copied().unwrap_or(false) {
                line.push_str(&format!("{cell:>w$}"));
            } else if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}"));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

impl Report {
    /// Capture duration (last minus first timestamp).
    pub fn duration(&self) -> Duration {
        match (self.first_ts_ns, self.last_ts_ns) {
            (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
            _ => Duration::ZERO,
        }
    }

    /// The summary for people: aligned plain-text tables.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let link_types = self
            .link_types
            .iter()
            .map(|(t, n)| format!("{t}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            out,
            "capture  {} ({}; {link_types}): {} packets, {} bytes, {} s",
            self.capture
                .as_ref()
                .map_or_else(|| "-".into(), |p| p.display().to_string()),
            self.format.map_or_else(|| "?".into(), |f| f.to_string()),
            self.packets.packets,
            self.packets.bytes,
            secs(self.duration()),
        )?;
        if let Some(p) = &self.policy {
            writeln!(
                out,
                "policy   {}: {} filters",
                p.display(),
                self.filter_count
            )?;
        }
        writeln!(out)?;

        let v = &self.verdicts;
        let mut rows = vec![vec!["verdict".into(), "packets".into(), "bytes".into()]];
        for (name, c) in [
            ("permitted", v.permitted),
            ("blocked", v.blocked),
            ("absorbed", v.absorbed),
            ("skipped", v.skipped),
        ] {
            rows.push(vec![
                name.into(),
                c.packets.to_string(),
                c.bytes.to_string(),
            ]);
        }
        table(out, &rows, &[false, true, true], "")?;
        for (reason, c) in &self.skipped_reasons {
            writeln!(out, "  skipped: {reason}: {} packets", c.packets)?;
        }
        writeln!(out)?;

        if !self.layers.is_empty() {
            let mut rows = vec![
                vec![
                    "layer".into(),
                    "permitted".into(),
                    String::new(),
                    "blocked".into(),
                    String::new(),
                    "absorbed".into(),
                    String::new(),
                    "no match".into(),
                    String::new(),
                ],
                vec![
                    String::new(),
                    "pkts".into(),
                    "bytes".into(),
                    "pkts".into(),
                    "bytes".into(),
                    "pkts".into(),
                    "bytes".into(),
                    "pkts".into(),
                    "bytes".into(),
                ],
            ];
            for l in &self.layers {
                let mut row = vec![layer_name(l.layer).to_string()];
                for c in [l.permitted, l.blocked, l.absorbed, l.no_match] {
                    row.push(c.packets.to_string());
                    row.push(c.bytes.to_string());
                }
                rows.push(row);
            }
            let right = [false, true, true, true, true, true, true, true, true];
            table(out, &rows, &right, "")?;
            writeln!(out)?;
        }

        let f = &self.flows;
        writeln!(
            out,
            "flows    {} (ended: {} FIN, {} RST, {} idle timeout, {} evicted, {} by a block, {} open \
             at capture end); flowDeleteFn ran for {} flow contexts",
            f.flows,
            f.fin,
            f.rst,
            f.idle_timeout,
            f.evicted,
            f.blocked,
            f.at_capture_end,
            f.contexts_deleted
        )?;
        writeln!(out)?;

        if !self.filters.is_empty() {
            writeln!(out, "top deciding filters")?;
            let mut rows = vec![vec![
                "id".into(),
                "name".into(),
                "layer".into(),
                "action".into(),
                "permits".into(),
                "blocks".into(),
                "final".into(),
            ]];
            for r in self.filters.iter().take(TOP_FILTERS) {
                rows.push(vec![
                    r.id.0.to_string(),
                    r.name.clone(),
                    layer_name(r.layer).into(),
                    r.action.name(),
                    r.permits.to_string(),
                    if r.vetoes > 0 {
                        format!("{} ({} vetoes)", r.blocks, r.vetoes)
                    } else {
                        r.blocks.to_string()
                    },
                    r.final_packets.to_string(),
                ]);
            }
            table(
                out,
                &rows,
                &[true, false, false, false, true, true, true],
                "  ",
            )?;
            if self.filters.len() > TOP_FILTERS {
                writeln!(
                    out,
                    "  ... {} more (--json lists all)",
                    self.filters.len() - TOP_FILTERS
                )?;
            }
            writeln!(out)?;
        }

        self.write_anomalies(out)?;
        self.write_logs(out)?;
        for (kind, s) in &self.outputs {
            let types = s
                .link_types
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            write!(
                out,
                "{kind:<9} {} packets written to {} ({}: {types})",
                s.written,
                s.path.display(),
                s.format,
            )?;
            if s.reencapsulated > 0 {
                write!(out, "; {} re-encapsulated", s.reencapsulated)?;
            }
            if s.unwritable > 0 {
                write!(out, "; {} could not be written", s.unwritable)?;
            }
            writeln!(out)?;
        }
        if let Some((path, lines)) = &self.verdict_file {
            writeln!(out, "verdicts  {lines} lines written to {}", path.display())?;
        }
        if let Some(t) = &self.traced {
            writeln!(out)?;
            t.write_text(out)?;
        }
        if let Some(e) = &self.capture_error {
            writeln!(out)?;
            writeln!(
                out,
                "INCOMPLETE: reading stopped at byte {} after {} packets: {e}",
                e.offset(),
                e.packet_index()
            )?;
        }
        Ok(())
    }

    fn write_anomalies(&self, out: &mut dyn Write) -> io::Result<()> {
        let a = &self.anomalies;
        let rows: Vec<(&str, u64)> = vec![
            ("malformed IP packets (blocked)", a.malformed),
            ("link-layer headers unusable (skipped)", a.link_errors),
            ("stream overlaps with different bytes", a.stream_overlaps),
            ("fragments dropped", a.fragments_dropped),
            ("packets not tracked by the flow table", a.untracked),
            (
                "connections dropped by stream callouts",
                a.connections_dropped,
            ),
            ("stream bytes blocked", a.stream_bytes_blocked),
            ("callout vetoes", a.vetoes),
            ("callout panics (contained)", a.callout_panics),
            ("flow reauthorizations", a.reauthorizations),
            ("frames cut by the snapshot length", a.snaplen_truncated),
            (
                "  of them classified from their headers",
                a.truncated_classified,
            ),
            (
                "stream bytes cut by the snapshot length (missed)",
                a.stream_bytes_missed,
            ),
            (
                "IPv4 header checksum mismatches",
                a.ipv4_checksum_mismatches,
            ),
            ("timestamps going backwards", a.timestamps_backwards),
        ];
        let nonzero: Vec<Vec<String>> = rows
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| vec![(*k).to_string(), n.to_string()])
            .collect();
        if nonzero.is_empty() {
            writeln!(out, "anomalies: none")?;
        } else {
            writeln!(out, "anomalies")?;
            table(out, &nonzero, &[false, true], "  ")?;
            for (i, m) in &a.malformed_examples {
                writeln!(out, "    malformed: packet {i}: {m}")?;
            }
            for (i, m) in &a.link_error_examples {
                writeln!(out, "    link layer: packet {i}: {m}")?;
            }
        }
        writeln!(out)
    }

    fn write_logs(&self, out: &mut dyn Write) -> io::Result<()> {
        if !self.flow_log.is_empty() {
            writeln!(
                out,
                "flow log (wfp.flow-logger): {} flows",
                self.flow_log.len()
            )?;
            let mut rows = Vec::new();
            for r in self.flow_log.iter().take(LOG_LINES) {
                rows.push(vec![
                    proto_name(r.tuple.protocol),
                    endpoint(r.tuple.local_addr, r.tuple.local_port),
                    "<->".into(),
                    endpoint(r.tuple.remote_addr, r.tuple.remote_port),
                    format!("start {} s", secs(since(self.first_ts_ns, r.start))),
                    format!("{} s", secs(r.duration())),
                    if r.bytes_counted {
                        format!("out {} B in {} B", r.outbound.bytes, r.inbound.bytes)
                    } else {
                        String::new()
                    },
                ]);
            }
            table(
                out,
                &rows,
                &[false, true, false, false, false, true, false],
                "  ",
            )?;
            if self.flow_log.len() > LOG_LINES {
                writeln!(
                    out,
                    "  ... {} more (--json lists all)",
                    self.flow_log.len() - LOG_LINES
                )?;
            }
            writeln!(out)?;
        }
        if !self.stream_reports.is_empty() {
            writeln!(
                out,
                "stream monitor (wfp.stream-monitor): {} connections",
                self.stream_reports.len()
            )?;
            for r in self.stream_reports.iter().take(LOG_LINES) {
                writeln!(
                    out,
                    "  {} {} <-> {}: out {} B \"{}\", in {} B \"{}\"",
                    proto_name(r.tuple.protocol),
                    endpoint(r.tuple.local_addr, r.tuple.local_port),
                    endpoint(r.tuple.remote_addr, r.tuple.remote_port),
                    r.outbound.bytes,
                    printable(&r.outbound.head, 32),
                    r.inbound.bytes,
                    printable(&r.inbound.head, 32),
                )?;
            }
            if self.stream_reports.len() > LOG_LINES {
                writeln!(
                    out,
                    "  ... {} more (--json lists all)",
                    self.stream_reports.len() - LOG_LINES
                )?;
            }
            writeln!(out)?;
        }
        Ok(())
    }

    /// The summary as one JSON object (`--json`).
    pub fn to_json(&self) -> Json {
        let v = &self.verdicts;
        let a = &self.anomalies;
        let f = &self.flows;
        let examples = |e: &[(u64, String)]| -> Json {
            e.iter()
                .map(|(i, m)| json!({ "packet": i, "error": m }))
                .collect()
        };
        json!({
            "capture": {
                "path": self.capture.as_ref().map(|p| p.display().to_string()),
                "format": self.format.map(|f| f.to_string()),
                "packets": self.packets.packets,
                "bytes": self.packets.bytes,
                "first_time": self.first_ts_ns.map(time_string),
                "last_time": self.last_ts_ns.map(time_string),
                "duration_s": self.duration().as_secs_f64(),
                "link_types": self.link_types.iter()
                    .map(|(t, n)| (t.to_string(), json!(n)))
                    .collect::<serde_json::Map<_, _>>(),
            },
            "policy": {
                "path": self.policy.as_ref().map(|p| p.display().to_string()),
                "filters": self.filter_count,
            },
            "verdicts": {
                "permitted": v.permitted.json(),
                "blocked": v.blocked.json(),
                "absorbed": v.absorbed.json(),
                "skipped": v.skipped.json(),
            },
            "skipped": self.skipped_reasons.iter()
                .map(|(r, c)| (r.clone(), c.json()))
                .collect::<serde_json::Map<_, _>>(),
            "layers": self.layers.iter().map(|l| json!({
                "layer": layer_name(l.layer),
                "permitted": l.permitted.json(),
                "blocked": l.blocked.json(),
                "absorbed": l.absorbed.json(),
                "no_match": l.no_match.json(),
            })).collect::<Vec<_>>(),
            "flows": {
                "total": f.flows,
                "ended": {
                    "fin": f.fin,
                    "rst": f.rst,
                    "idle_timeout": f.idle_timeout,
                    "evicted": f.evicted,
                    "blocked": f.blocked,
                    "capture_end": f.at_capture_end,
                },
                "contexts_deleted": f.contexts_deleted,
            },
            "filters": self.filters.iter().map(|r| json!({
                "id": r.id.0,
                "name": r.name,
                "layer": layer_name(r.layer),
                "action": r.action.name(),
                "permits": r.permits,
                "blocks": r.blocks,
                "vetoes": r.vetoes,
                "final": r.final_packets,
            })).collect::<Vec<_>>(),
            "anomalies": {
                "malformed": a.malformed,
                "malformed_examples": examples(&a.malformed_examples),
                "link_errors": a.link_errors,
                "link_error_examples": examples(&a.link_error_examples),
                "stream_overlaps": a.stream_overlaps,
                "fragments_dropped": a.fragments_dropped,
                "untracked": a.untracked,
                "connections_dropped": a.connections_dropped,
                "stream_bytes_blocked": a.stream_bytes_blocked,
                "vetoes": a.vetoes,
                "callout_panics": a.callout_panics,
                "reauthorizations": a.reauthorizations,
                "snaplen_truncated": a.snaplen_truncated,
                "truncated_classified": a.truncated_classified,
                "stream_bytes_missed": a.stream_bytes_missed,
                "ipv4_checksum_mismatches": a.ipv4_checksum_mismatches,
                "timestamps_backwards": a.timestamps_backwards,
            },
            "flow_log": self.flow_log.iter().map(|r| json!({
                "flow": r.flow_handle,
                "layer": layer_name(r.layer),
                "protocol": r.tuple.protocol,
                "local": endpoint(r.tuple.local_addr, r.tuple.local_port),
                "remote": endpoint(r.tuple.remote_addr, r.tuple.remote_port),
                "direction": r.direction.map(|d| format!("{d:?}")),
                "start": time_string(u64::try_from(r.start.as_nanos()).unwrap_or(u64::MAX)),
                "duration_s": r.duration().as_secs_f64(),
                "bytes_counted": r.bytes_counted,
                "outbound_bytes": r.outbound.bytes,
                "inbound_bytes": r.inbound.bytes,
            })).collect::<Vec<_>>(),
            "stream_monitor": self.stream_reports.iter().map(|r| json!({
                "flow": r.flow_handle,
                "layer": layer_name(r.layer),
                "local": endpoint(r.tuple.local_addr, r.tuple.local_port),
                "remote": endpoint(r.tuple.remote_addr, r.tuple.remote_port),
                "duration_s": r.duration().as_secs_f64(),
                "outbound_bytes": r.outbound.bytes,
                "outbound_head": printable(&r.outbound.head, 256),
                "inbound_bytes": r.inbound.bytes,
                "inbound_head": printable(&r.inbound.head, 256),
            })).collect::<Vec<_>>(),
            "outputs": self.outputs.iter().map(|(k, s)| ((*k).to_string(), json!({
                "path": s.path.display().to_string(),
                "format": s.format.to_string(),
                "link_type": s.link_type.to_string(),
                "link_types": s.link_types.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "written": s.written,
                "reencapsulated": s.reencapsulated,
                "unwritable": s.unwritable,
            }))).chain(self.verdict_file.iter().map(|(p, n)| ("verdicts".to_string(), json!({
                "path": p.display().to_string(),
                "lines": n,
            })))).collect::<serde_json::Map<_, _>>(),
            "trace": self.traced.as_ref().map(TracedPacket::to_json),
            "error": self.capture_error.as_ref().map(|e| json!({
                "message": e.to_string(),
                "offset": e.offset(),
                "packet_index": e.packet_index(),
            })),
        })
    }
}
