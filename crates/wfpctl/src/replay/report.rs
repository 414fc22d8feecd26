//! What a replay found: [`Report`] and its parts, as serde-serialisable values.
//!
//! ```text
//!  Summary (running counters) ──into_report──► Report ──view()──► ReportView<'_>
//!                                                                   ├─ serde ──► --json object
//!                                                                   └─ table.rs ──► text table
//! ```
//!
//! The `--json` object is [`Report`] serialised (schema version [`Report::JSON_VERSION`],
//! documented field by field in `docs/replay-json.md`); the text table ([`Report::write_text`]) is
//! rendered from the very same [`ReportView`], so the two never disagree. Only the formatting
//! differs: the table shows durations with three decimals, the first few flow-log records and
//! filters, and 32 bytes of a stream head where the JSON has all records and 256 bytes.
//!
//! Key order: the fields of every serialised struct are declared in alphabetical order, so every
//! JSON object's keys are sorted (as they were when the object was assembled as a
//! `serde_json::Value`, whose maps are sorted); [`Report::to_json`] and serialising the report
//! directly give the same text.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::Value as Json;
use wfp_callouts::{Connection, FlowRecord, StreamReport};
use wfp_core::{ActionType, FilterId, LayerId};
use wfp_pcap::{CaptureError, CaptureFormat, LinkType};

use super::display::{
    ser_action, ser_display, ser_duration_time, ser_filter_id, ser_layer, ser_link_type_counts,
    ser_link_types, ser_opt_display, ser_opt_path, ser_opt_time, ser_path, ser_secs, Endpoint,
    Head,
};
use super::table;
use super::trace::TracedPacket;
use super::SinkReport;

/// Packets and bytes (bytes on the wire: the original length of each frame).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    /// Bytes.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
}

impl Count {
    /// Counts one more packet of `bytes` bytes.
    pub(crate) fn add(&mut self, bytes: u64) {
        self.packets += 1;
        self.bytes += bytes;
    }
}

/// Final verdicts; the four add up to the packets read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdicts {
    /// BLOCK with ABSORB.
    pub absorbed: Count,
    /// BLOCK (filters, stream callouts, malformed packets).
    pub blocked: Count,
    /// PERMIT (by a filter or by the no-match default).
    pub permitted: Count,
    /// Not classified (see [`Report::skipped_reasons`]).
    pub skipped: Count,
}

impl Verdicts {
    /// All four added up: every packet read.
    pub fn total(&self) -> Count {
        [self.absorbed, self.blocked, self.permitted, self.skipped]
            .into_iter()
            .fold(Count::default(), |t, c| Count {
                bytes: t.bytes + c.bytes,
                packets: t.packets + c.packets,
            })
    }
}

/// One layer: what its classify calls decided, by packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LayerRow {
    /// A filter blocked with ABSORB (the packet stopped here).
    pub absorbed: Count,
    /// A filter blocked (the packet stopped here).
    pub blocked: Count,
    /// The layer (its WFP name in JSON).
    #[serde(serialize_with = "ser_layer")]
    pub layer: LayerId,
    /// No filter decided (FWP_ACTION_NONE_NO_MATCH; the no-match default applied).
    pub no_match: Count,
    /// A filter permitted.
    pub permitted: Count,
}

/// One filter that decided something.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FilterRow {
    /// Its action type (its WFP name in JSON).
    #[serde(serialize_with = "ser_action")]
    pub action: ActionType,
    /// Layer visits it decided BLOCK (vetoes included).
    pub blocks: u64,
    /// Packets whose final verdict names this filter (`final` in JSON).
    #[serde(rename = "final")]
    pub final_packets: u64,
    /// Filter id.
    #[serde(serialize_with = "ser_filter_id")]
    pub id: FilterId,
    /// Its layer (its WFP name in JSON).
    #[serde(serialize_with = "ser_layer")]
    pub layer: LayerId,
    /// Filter name.
    pub name: String,
    /// Layer visits it decided PERMIT.
    pub permits: u64,
    /// Of the blocks, vetoes of a hard PERMIT.
    pub vetoes: u64,
}

/// Flows and how they ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowSummary {
    /// Flow contexts whose flowDeleteFn ran.
    pub contexts_deleted: u64,
    /// How the flows ended; the six add up to [`FlowSummary::total`].
    pub ended: FlowEnds,
    /// Flows created (each ends exactly once).
    pub total: u64,
}

/// How flows ended (each flow once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowEnds {
    /// Ended by a block (before authorization, at reauthorization, a dropped connection).
    pub blocked: u64,
    /// Still open when the capture ended (aborted then).
    pub capture_end: u64,
    /// Evicted from a full flow table.
    pub evicted: u64,
    /// Ended by FIN handshakes.
    pub fin: u64,
    /// Ended by an idle timeout (capture time).
    pub idle_timeout: u64,
    /// Ended by RST.
    pub rst: u64,
}

impl FlowEnds {
    /// All six added up.
    pub fn total(&self) -> u64 {
        self.blocked + self.capture_end + self.evicted + self.fin + self.idle_timeout + self.rst
    }
}

/// One example of an anomaly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Example {
    /// Why.
    pub error: String,
    /// The packet's index in the capture.
    pub packet: u64,
}

/// Things worth a look.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Anomalies {
    /// Callout classifyFn panics contained by the engine.
    pub callout_panics: u64,
    /// Connections dropped by stream callouts.
    pub connections_dropped: u64,
    /// TCP payload bytes sent before their connection's handshake completed (TCP Fast Open SYN
    /// or SYN-ACK data, early server data): held, then indicated in order once established.
    pub early_bytes: u64,
    /// Fragments the reassembler dropped.
    pub fragments_dropped: u64,
    /// IPv4 header checksums that do not verify (malformed only with `--verify-checksums`;
    /// otherwise classified and counted here, informational).
    pub ipv4_checksum_mismatches: u64,
    /// IPv4 packets whose total length was 0 (segmentation offload): their length is the bytes
    /// captured, as Wireshark reads them.
    pub ipv4_zero_length: u64,
    /// The first few link errors.
    pub link_error_examples: Vec<Example>,
    /// Frames whose link-layer header is cut short or unusable (skipped).
    pub link_errors: u64,
    /// Packets between two endpoints of this host (both addresses loopback, or both in `--local`
    /// networks), classified on the sender's side and then on the receiver's.
    pub loopback_packets: u64,
    /// IP packets the shim could not parse (they got the malformed verdict, BLOCK).
    pub malformed: u64,
    /// The first few malformed packets.
    pub malformed_examples: Vec<Example>,
    /// TCP connections picked up without their handshake (the capture starts mid-connection or
    /// at the SYN-ACK), authorized as reauthorizations (MID_STREAM_INSPECTION).
    pub midstream_flows: u64,
    /// ALE reauthorizations: after a policy change, and of connections picked up mid-stream.
    pub reauthorizations: u64,
    /// Frames captured shorter than they were on the wire (snapshot length).
    pub snaplen_truncated: u64,
    /// Stream bytes blocked by stream filters.
    pub stream_bytes_blocked: u64,
    /// TCP payload bytes the snapshot length cut: skipped by stream reassembly (the stream goes
    /// on), reported to stream callouts as missedBytes.
    pub stream_bytes_missed: u64,
    /// TCP retransmissions / overlaps carrying different bytes (the first copy wins).
    pub stream_overlaps: u64,
    /// TCP packets longer than the link MTU (1500; loopback excluded): super-segments captured
    /// on a host with segmentation offload (TSO/GSO/GRO), accepted as they are.
    pub super_segments: u64,
    /// Packets whose timestamp is earlier than the previous packet's.
    pub timestamps_backwards: u64,
    /// IP packets the snapshot length cut that were classified from their headers (their length
    /// fields point past the capture; a packet whose headers were cut is malformed instead).
    pub truncated_classified: u64,
    /// Packets the flow table could not track (stray RST, table full).
    pub untracked: u64,
    /// Callout vetoes of a hard PERMIT.
    pub vetoes: u64,
}

/// Encapsulations met in the capture, by name: frames and their bytes on the wire. A frame
/// counts once under each name it carried (see `decap.rs` for the names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EncapsulationCounts {
    /// Decoded: `PPPoE`, `MPLS`, `MPLS pseudowire`, `PBB`, `GRE`, `VXLAN`, `Geneve`, `IPIP`,
    /// `6in4`, `4in6`, `6in6`.
    pub decoded: BTreeMap<String, Count>,
    /// Not decoded, each named: unsupported link types (`link type ...`), tunnel headers this
    /// project does not take apart (`GRE protocol 0x88be`, ...), nesting past the bound.
    pub unsupported: BTreeMap<String, Count>,
}

/// What callouts did asynchronously (wfp-reference §10.1, §10.2, §10.4, §9.2): the `async`
/// object of `--json`. Every count is zero for a policy without pending, injecting or editing
/// callouts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AsyncCounts {
    /// Captured or injected packets a stream edit rewrote (bytes replaced inline, or shifted by an
    /// earlier length-changing edit of their flow).
    pub edited: u64,
    /// Packets held while their flow's ALE operation was pended (each an ABSORB line with reason
    /// `pended` when it is a captured packet).
    pub held: u64,
    /// Held packets dropped: their operation expired at the pend deadline or was refused at
    /// reauthorization, they were flushed at a RECV_ACCEPT completion (the callout re-injects its
    /// clone), they overflowed the hold queue, or their flow ended.
    pub held_dropped: u64,
    /// Held packets released (classified again) after their operation completed.
    pub held_released: u64,
    /// Injected packets that came out of the replay, by injection function (`network-send`,
    /// `network-receive`, `forward`, `transport-send`, `transport-receive`, `stream`); whatever
    /// their verdict.
    pub injected: BTreeMap<&'static str, u64>,
    /// Injections that re-entered the data path and were let through (or held by a pend).
    pub injected_delivered: u64,
    /// Injections a layer blocked or that could not be built (counted drops, completed with
    /// `STATUS_FWP_DROP_NOICMP`).
    pub injected_dropped: u64,
    /// Completions of operations no longer pended (expired, or their flow ended).
    pub late_completions: u64,
    /// Pended operations completed and applied.
    pub pend_completed: u64,
    /// Pended operations dropped at the pend deadline (`--pend-deadline`), their held packets
    /// with them (counted in `held_dropped`).
    pub pend_expired: u64,
    /// ALE operations a callout pended.
    pub pended: u64,
    /// Connections a callout redirected at ALE_CONNECT_REDIRECT / ALE_BIND_REDIRECT (§10.3).
    pub redirected: u64,
    /// Redirect classifies a callout pended (`FwpsPendClassify0`); their packets are counted in
    /// `held`.
    pub redirects_pended: u64,
}

impl AsyncCounts {
    /// Whether any asynchronous work happened.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }
}

/// Everything a replay found. Serialises to the `--json` object (`docs/replay-json.md`).
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
    /// Asynchronous work of callouts: pends, held packets, injections, edits.
    pub asynchronous: AsyncCounts,
    /// Encapsulations decoded and not decoded.
    pub encapsulations: EncapsulationCounts,
    /// The `--trace` packet.
    pub traced: Option<TracedPacket>,
    /// Records of the built-in `wfp.flow-logger`, when the policy uses it.
    pub flow_log: Vec<FlowRecord>,
    /// Reports of the built-in `wfp.stream-monitor`, when the policy uses it.
    pub stream_reports: Vec<StreamReport>,
    /// Connections of the built-in `wfp.connection-monitor` (process, user, bytes each way), when
    /// the policy uses it: every connection it saw, finished through flowDeleteFn by the end of
    /// the capture.
    pub connections: Vec<Connection>,
    /// The pcap outputs written: ("permitted" | "blocked", what was written).
    pub outputs: Vec<(&'static str, SinkReport)>,
    /// The `--verdicts` file and its line count.
    pub verdict_file: Option<(PathBuf, u64)>,
    /// The error that ended reading early: everything above covers the packets before it.
    pub capture_error: Option<CaptureError>,
}

impl Report {
    /// The `version` of the `--json` object this code writes. It changes only when a field is
    /// removed or changes meaning; added fields keep it.
    pub const JSON_VERSION: u32 = 1;

    /// Capture duration (last minus first timestamp).
    pub fn duration(&self) -> Duration {
        match (self.first_ts_ns, self.last_ts_ns) {
            (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
            _ => Duration::ZERO,
        }
    }

    /// The summary for people: aligned plain-text tables.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        table::write(&self.view(), out)
    }

    /// The summary as one JSON object (`--json`; the same as serialising the report).
    pub fn to_json(&self) -> Json {
        // Cannot fail: every field is a string, a number, a bool, null, an array or an object
        // with string keys.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The report as it is shown: the `--json` object's shape, over this report's values.
    pub(crate) fn view(&self) -> ReportView<'_> {
        let sink = |kind: &str| {
            self.outputs
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, s)| SinkView::new(s))
        };
        ReportView {
            anomalies: &self.anomalies,
            asynchronous: &self.asynchronous,
            capture: CaptureView {
                bytes: self.packets.bytes,
                duration_s: self.duration(),
                first_time: self.first_ts_ns,
                format: self.format,
                last_time: self.last_ts_ns,
                link_types: &self.link_types,
                packets: self.packets.packets,
                path: self.capture.as_deref(),
            },
            connection_monitor: self.connections.iter().map(ConnectionEntry::new).collect(),
            encapsulations: &self.encapsulations,
            error: self.capture_error.as_ref().map(|e| ErrorView {
                message: e.to_string(),
                offset: e.offset(),
                packet_index: e.packet_index(),
            }),
            filters: &self.filters,
            flow_log: self.flow_log.iter().map(FlowLogEntry::new).collect(),
            flows: &self.flows,
            layers: &self.layers,
            outputs: OutputsView {
                blocked: sink("blocked"),
                permitted: sink("permitted"),
                verdicts: self
                    .verdict_file
                    .as_ref()
                    .map(|(path, lines)| VerdictFileView {
                        lines: *lines,
                        path,
                    }),
            },
            policy: PolicyView {
                filters: self.filter_count,
                path: self.policy.as_deref(),
            },
            skipped: &self.skipped_reasons,
            stream_monitor: self.stream_reports.iter().map(StreamEntry::new).collect(),
            trace: self.traced.as_ref(),
            verdicts: &self.verdicts,
            version: Self::JSON_VERSION,
        }
    }
}

impl Serialize for Report {
    /// The `--json` object.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

/// The report as it is shown: serde writes it as the `--json` object, `table.rs` as the text
/// table. Fields in alphabetical order (the JSON keys' order).
#[derive(Debug, Serialize)]
pub(crate) struct ReportView<'a> {
    pub(crate) anomalies: &'a Anomalies,
    #[serde(rename = "async")]
    pub(crate) asynchronous: &'a AsyncCounts,
    pub(crate) capture: CaptureView<'a>,
    pub(crate) connection_monitor: Vec<ConnectionEntry>,
    pub(crate) encapsulations: &'a EncapsulationCounts,
    /// Why reading stopped early, or null.
    pub(crate) error: Option<ErrorView>,
    pub(crate) filters: &'a [FilterRow],
    pub(crate) flow_log: Vec<FlowLogEntry>,
    pub(crate) flows: &'a FlowSummary,
    pub(crate) layers: &'a [LayerRow],
    pub(crate) outputs: OutputsView<'a>,
    pub(crate) policy: PolicyView<'a>,
    /// Skipped packets by reason.
    pub(crate) skipped: &'a BTreeMap<String, Count>,
    pub(crate) stream_monitor: Vec<StreamEntry<'a>>,
    pub(crate) trace: Option<&'a TracedPacket>,
    pub(crate) verdicts: &'a Verdicts,
    /// [`Report::JSON_VERSION`].
    pub(crate) version: u32,
}

/// The capture read.
#[derive(Debug, Serialize)]
pub(crate) struct CaptureView<'a> {
    pub(crate) bytes: u64,
    #[serde(serialize_with = "ser_secs")]
    pub(crate) duration_s: Duration,
    #[serde(serialize_with = "ser_opt_time")]
    pub(crate) first_time: Option<u64>,
    #[serde(serialize_with = "ser_opt_display")]
    pub(crate) format: Option<CaptureFormat>,
    #[serde(serialize_with = "ser_opt_time")]
    pub(crate) last_time: Option<u64>,
    #[serde(serialize_with = "ser_link_type_counts")]
    pub(crate) link_types: &'a BTreeMap<LinkType, u64>,
    pub(crate) packets: u64,
    #[serde(serialize_with = "ser_opt_path")]
    pub(crate) path: Option<&'a Path>,
}

/// The policy replayed.
#[derive(Debug, Serialize)]
pub(crate) struct PolicyView<'a> {
    /// Filters in the engine.
    pub(crate) filters: usize,
    #[serde(serialize_with = "ser_opt_path")]
    pub(crate) path: Option<&'a Path>,
}

/// The capture error that ended reading.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorView {
    pub(crate) message: String,
    pub(crate) offset: u64,
    pub(crate) packet_index: u64,
}

/// One `wfp.flow-logger` record.
#[derive(Debug, Serialize)]
pub(crate) struct FlowLogEntry {
    pub(crate) bytes_counted: bool,
    /// Who initiated the flow (`Inbound` / `Outbound`), if known.
    pub(crate) direction: Option<String>,
    #[serde(serialize_with = "ser_secs")]
    pub(crate) duration_s: Duration,
    pub(crate) flow: u64,
    pub(crate) inbound_bytes: u64,
    #[serde(serialize_with = "ser_layer")]
    pub(crate) layer: LayerId,
    pub(crate) local: Endpoint,
    pub(crate) outbound_bytes: u64,
    pub(crate) protocol: u8,
    pub(crate) remote: Endpoint,
    /// Host time when the flow was established.
    #[serde(serialize_with = "ser_duration_time")]
    pub(crate) start: Duration,
}

impl FlowLogEntry {
    fn new(r: &FlowRecord) -> Self {
        Self {
            bytes_counted: r.bytes_counted,
            direction: r.direction.map(|d| format!("{d:?}")),
            duration_s: r.duration(),
            flow: r.flow_handle,
            inbound_bytes: r.inbound.bytes,
            layer: r.layer,
            local: Endpoint {
                addr: r.tuple.local_addr,
                port: r.tuple.local_port,
            },
            outbound_bytes: r.outbound.bytes,
            protocol: r.tuple.protocol,
            remote: Endpoint {
                addr: r.tuple.remote_addr,
                port: r.tuple.remote_port,
            },
            start: r.start,
        }
    }
}

/// One `wfp.connection-monitor` connection: who owned it (ALE metadata) and the bytes it moved.
#[derive(Debug, Serialize)]
pub(crate) struct ConnectionEntry {
    /// Who initiated it (`Inbound` / `Outbound`), if known.
    pub(crate) direction: Option<String>,
    #[serde(serialize_with = "ser_secs")]
    pub(crate) duration_s: Duration,
    pub(crate) flow: u64,
    /// Stream bytes (TCP) or UDP payload bytes received.
    pub(crate) inbound_bytes: u64,
    #[serde(serialize_with = "ser_layer")]
    pub(crate) layer: LayerId,
    pub(crate) local: Endpoint,
    /// Bytes sent.
    pub(crate) outbound_bytes: u64,
    /// `processId`, when the data path knew the socket owner.
    pub(crate) process_id: Option<u64>,
    /// `processPath`, when known.
    pub(crate) process_path: Option<String>,
    pub(crate) protocol: u8,
    pub(crate) remote: Endpoint,
    /// Host time when it was established.
    #[serde(serialize_with = "ser_duration_time")]
    pub(crate) start: Duration,
    /// The user (`token`: the uid on Linux), when known.
    pub(crate) user: Option<u64>,
}

impl ConnectionEntry {
    fn new(c: &Connection) -> Self {
        Self {
            direction: c.direction.map(|d| format!("{d:?}")),
            duration_s: c.duration(),
            flow: c.flow_handle,
            inbound_bytes: c.inbound.bytes,
            layer: c.layer,
            local: Endpoint {
                addr: c.tuple.local_addr,
                port: c.tuple.local_port,
            },
            outbound_bytes: c.outbound.bytes,
            process_id: c.process_id,
            process_path: c.process_path.as_deref().map(str::to_string),
            protocol: c.tuple.protocol,
            remote: Endpoint {
                addr: c.tuple.remote_addr,
                port: c.tuple.remote_port,
            },
            start: c.start,
            user: c.user,
        }
    }
}

/// One `wfp.stream-monitor` report.
#[derive(Debug, Serialize)]
pub(crate) struct StreamEntry<'a> {
    #[serde(serialize_with = "ser_secs")]
    pub(crate) duration_s: Duration,
    pub(crate) flow: u64,
    pub(crate) inbound_bytes: u64,
    pub(crate) inbound_head: Head<'a>,
    #[serde(serialize_with = "ser_layer")]
    pub(crate) layer: LayerId,
    pub(crate) local: Endpoint,
    pub(crate) outbound_bytes: u64,
    pub(crate) outbound_head: Head<'a>,
    /// Shown in the table only.
    #[serde(skip)]
    pub(crate) protocol: u8,
    pub(crate) remote: Endpoint,
}

impl<'a> StreamEntry<'a> {
    fn new(r: &'a StreamReport) -> Self {
        Self {
            duration_s: r.duration(),
            flow: r.flow_handle,
            inbound_bytes: r.inbound.bytes,
            inbound_head: Head(&r.inbound.head),
            layer: r.layer,
            local: Endpoint {
                addr: r.tuple.local_addr,
                port: r.tuple.local_port,
            },
            outbound_bytes: r.outbound.bytes,
            outbound_head: Head(&r.outbound.head),
            protocol: r.tuple.protocol,
            remote: Endpoint {
                addr: r.tuple.remote_addr,
                port: r.tuple.remote_port,
            },
        }
    }
}

/// The files written; absent keys were not asked for.
#[derive(Debug, Serialize)]
pub(crate) struct OutputsView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) blocked: Option<SinkView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) permitted: Option<SinkView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) verdicts: Option<VerdictFileView<'a>>,
}

/// A `--permitted` / `--blocked` capture written.
#[derive(Debug, Serialize)]
pub(crate) struct SinkView<'a> {
    #[serde(serialize_with = "ser_display")]
    pub(crate) format: CaptureFormat,
    #[serde(serialize_with = "ser_display")]
    pub(crate) link_type: LinkType,
    #[serde(serialize_with = "ser_link_types")]
    pub(crate) link_types: &'a [LinkType],
    #[serde(serialize_with = "ser_path")]
    pub(crate) path: &'a Path,
    pub(crate) reencapsulated: u64,
    pub(crate) unwritable: u64,
    pub(crate) written: u64,
}

impl<'a> SinkView<'a> {
    fn new(s: &'a SinkReport) -> Self {
        Self {
            format: s.format,
            link_type: s.link_type,
            link_types: &s.link_types,
            path: &s.path,
            reencapsulated: s.reencapsulated,
            unwritable: s.unwritable,
            written: s.written,
        }
    }
}

/// The `--verdicts` file written.
#[derive(Debug, Serialize)]
pub(crate) struct VerdictFileView<'a> {
    pub(crate) lines: u64,
    #[serde(serialize_with = "ser_path")]
    pub(crate) path: &'a Path,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_their_parts() {
        let mut v = Verdicts::default();
        v.permitted.add(100);
        v.blocked.add(60);
        v.blocked.add(40);
        v.skipped.add(7);
        assert_eq!(
            v.total(),
            Count {
                bytes: 207,
                packets: 4
            }
        );
        let e = FlowEnds {
            blocked: 1,
            capture_end: 2,
            evicted: 3,
            fin: 4,
            idle_timeout: 5,
            rst: 6,
        };
        assert_eq!(e.total(), 21);
    }

    #[test]
    fn an_empty_report_serialises_with_sorted_keys_and_a_version() {
        let r = Report {
            capture: None,
            format: None,
            policy: None,
            filter_count: 0,
            packets: Count::default(),
            first_ts_ns: None,
            last_ts_ns: None,
            link_types: BTreeMap::new(),
            verdicts: Verdicts::default(),
            skipped_reasons: BTreeMap::new(),
            layers: Vec::new(),
            filters: Vec::new(),
            flows: FlowSummary::default(),
            anomalies: Anomalies::default(),
            asynchronous: AsyncCounts::default(),
            encapsulations: EncapsulationCounts::default(),
            traced: None,
            flow_log: Vec::new(),
            stream_reports: Vec::new(),
            connections: Vec::new(),
            outputs: Vec::new(),
            verdict_file: None,
            capture_error: None,
        };
        let direct = serde_json::to_string(&r).expect("serialises");
        // `Value` sorts keys: the same text means the struct fields are in key order.
        assert_eq!(direct, r.to_json().to_string());
        assert_eq!(r.to_json()["version"], Report::JSON_VERSION);
        assert_eq!(r.to_json()["capture"]["duration_s"], 0.0);
        assert_eq!(r.to_json()["async"]["pend_expired"], 0);
        assert_eq!(r.to_json()["connection_monitor"], serde_json::json!([]));
        assert!(r.to_json()["async"]["injected"]
            .as_object()
            .is_some_and(serde_json::Map::is_empty));
        assert!(r.to_json()["outputs"]
            .as_object()
            .is_some_and(serde_json::Map::is_empty));
    }
}
