//! The replay's running counters ([`Summary`]): updated for every packet and every flow end, then
//! turned into the [`Report`] (`report.rs`) when the capture ends.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use wfp_callouts::{Connection, FlowRecord, StreamReport};
use wfp_core::{ActionType, Engine, FilterId, LayerId};
use wfp_pcap::{CaptureError, LinkError, LinkType, NetworkProtocol, PacketRef};
use wfp_shim::flow::EndReason;
use wfp_shim::{OutputOrigin, PacketVerdict, Reason, ShimOutput, ShimStats, Verdict};

use super::decap::Found;
use super::report::{
    Anomalies, AsyncCounts, Count, EncapsulationCounts, Example, FilterRow, FlowSummary, LayerRow,
    Report, Verdicts,
};
use super::trace::TracedPacket;
use super::{Action, FilterInfo, SinkReport};

/// How many examples of each anomaly the report keeps.
const EXAMPLES: usize = 5;

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
    /// Frames of the latest link type not yet added to `link_types` (a capture's frames nearly
    /// always share one link type: one map update per run of them, not per frame).
    link_run: Option<(LinkType, u64)>,
    verdicts: Verdicts,
    skipped: BTreeMap<String, Count>,
    layers: Vec<LayerCounts>,
    filters: Vec<FilterCounts>,
    sparse_filters: HashMap<FilterId, FilterCounts>,
    flows: FlowSummary,
    anomalies: Anomalies,
    asynchronous: AsyncCounts,
    encapsulations: EncapsulationCounts,
}

/// What the replayer hands over when the capture ends.
pub(crate) struct Finish<'a> {
    pub(crate) shim: &'a ShimStats,
    pub(crate) engine: &'a Engine,
    pub(crate) filters: &'a HashMap<FilterId, FilterInfo>,
    pub(crate) traced: Option<TracedPacket>,
    pub(crate) outputs: Vec<(&'static str, SinkReport)>,
    pub(crate) verdict_file: Option<(PathBuf, u64)>,
    pub(crate) flow_log: Vec<FlowRecord>,
    pub(crate) stream_reports: Vec<StreamReport>,
    pub(crate) connections: Vec<Connection>,
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
            link_run: None,
            verdicts: Verdicts::default(),
            skipped: BTreeMap::new(),
            layers: vec![LayerCounts::default(); wfp_core::catalogue::all_layers().len()],
            filters: vec![FilterCounts::default(); dense],
            sparse_filters: HashMap::new(),
            flows: FlowSummary::default(),
            anomalies: Anomalies::default(),
            asynchronous: AsyncCounts::default(),
            encapsulations: EncapsulationCounts::default(),
        }
    }

    /// Counts the encapsulations one frame carried (each name once per frame).
    pub(crate) fn encapsulations(&mut self, found: &Found, wire: u64) {
        for name in &found.decoded {
            add_count(&mut self.encapsulations.decoded, name, wire);
        }
        if let Some(name) = &found.unsupported {
            add_count(&mut self.encapsulations.unsupported, name, wire);
        }
    }

    /// Counts one frame under an encapsulation or link type that is not decoded.
    pub(crate) fn unsupported(&mut self, name: &str, wire: u64) {
        add_count(&mut self.encapsulations.unsupported, name, wire);
    }

    #[inline]
    pub(crate) fn packet(&mut self, p: &PacketRef<'_>, wire: u64) {
        self.packets.add(wire);
        // `last_ts` is the latest time seen; both are set by the first packet.
        let ts = p.timestamp_ns;
        match self.last_ts {
            Some(t) if ts < t => self.anomalies.timestamps_backwards += 1,
            Some(_) => self.last_ts = Some(ts),
            None => {
                self.first_ts = Some(ts);
                self.last_ts = Some(ts);
            }
        }
        match &mut self.link_run {
            Some((t, n)) if *t == p.link_type => *n += 1,
            run => {
                if let Some((t, n)) = run.replace((p.link_type, 1)) {
                    *self.link_types.entry(t).or_default() += n;
                }
            }
        }
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
                    self.anomalies.link_error_examples.push(Example {
                        error: other.to_string(),
                        packet: index,
                    });
                }
                "link-layer header unusable".to_string()
            }
        };
        reason
    }

    pub(crate) fn skip(&mut self, reason: &str, wire: u64) {
        add_count(&mut self.skipped, reason, wire);
        self.verdicts.skipped.add(wire);
    }

    /// A frame's final verdict: `v` is the pass that decided it (see `decap.rs`).
    #[inline]
    pub(crate) fn verdict(&mut self, v: &PacketVerdict, action: Action, wire: u64) {
        match action {
            Action::Permit => self.verdicts.permitted.add(wire),
            Action::Block => self.verdicts.blocked.add(wire),
            Action::Absorb => self.verdicts.absorbed.add(wire),
            Action::Skip => self.verdicts.skipped.add(wire),
        }
        if let Some(id) = v.filter {
            self.filter_mut(id).final_packets += 1;
        }
    }

    /// One shim pass over a packet of the frame: its layer visits and filter decisions.
    #[inline]
    pub(crate) fn visits(&mut self, index: u64, v: &PacketVerdict, wire: u64) {
        let absorbed = v.verdict == Verdict::Absorb;
        if let Reason::Malformed(m) = &v.reason {
            if self.anomalies.malformed_examples.len() < EXAMPLES {
                self.anomalies.malformed_examples.push(Example {
                    error: m.to_string(),
                    packet: index,
                });
            }
        }
        let last = v.visits.len().saturating_sub(1);
        for (i, visit) in v.visits.iter().enumerate() {
            if let Some(l) = self.layers.get_mut(usize::from(visit.layer.0)) {
                match visit.action {
                    ActionType::PERMIT => l.permitted.add(wire),
                    ActionType::BLOCK if i == last && absorbed => {
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
    }

    /// An output of asynchronous work: injected packets are counted by injection function.
    pub(crate) fn async_output(&mut self, o: &ShimOutput) {
        if let OutputOrigin::Injected { kind, .. } = &o.origin {
            *self.asynchronous.injected.entry(kind.name()).or_default() += 1;
        }
    }

    pub(crate) fn flow_ended(&mut self, reason: EndReason, contexts: usize, at_end: bool) {
        let f = &mut self.flows;
        f.total += 1;
        f.contexts_deleted += contexts as u64;
        let e = &mut f.ended;
        match reason {
            EndReason::Fin => e.fin += 1,
            EndReason::Rst => e.rst += 1,
            EndReason::IdleTimeout => e.idle_timeout += 1,
            EndReason::Evicted => e.evicted += 1,
            EndReason::Aborted if at_end => e.capture_end += 1,
            EndReason::Aborted => e.blocked += 1,
        }
    }

    /// The counters of filter `id`: the dense slot, inline (a packet's deciding filter is
    /// counted twice per packet); growing the slots and the sparse map out of line.
    #[inline]
    fn filter_mut(&mut self, id: FilterId) -> &mut FilterCounts {
        let i = usize::try_from(id.0).unwrap_or(usize::MAX);
        if i < self.filters.len() {
            // In bounds: just checked.
            return &mut self.filters[i];
        }
        self.filter_slow(id)
    }

    /// [`Summary::filter_mut`] for an id beyond the dense slots so far.
    #[cold]
    #[inline(never)]
    fn filter_slow(&mut self, id: FilterId) -> &mut FilterCounts {
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

    /// The report: these counters, the pipeline's and the engine's, and what `fin` hands over.
    pub(crate) fn into_report(mut self, fin: Finish<'_>) -> Report {
        if let Some((t, n)) = self.link_run.take() {
            *self.link_types.entry(t).or_default() += n;
        }
        self.take_pipeline_counts(fin.shim, fin.engine);
        let layers = self.layer_rows();
        let filters = self.filter_rows(fin.filters, fin.engine);
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
            asynchronous: self.asynchronous,
            encapsulations: self.encapsulations,
            traced: fin.traced,
            flow_log: fin.flow_log,
            stream_reports: fin.stream_reports,
            connections: fin.connections,
            outputs: fin.outputs,
            verdict_file: fin.verdict_file,
            capture_error: fin.capture_error,
        }
    }

    /// The anomalies the pipeline and the engine counted.
    fn take_pipeline_counts(&mut self, s: &ShimStats, engine: &Engine) {
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
        a.loopback_packets = s.loopback;
        a.ipv4_zero_length = s.ipv4_zero_length;
        a.super_segments = s.super_segments;
        a.midstream_flows = s.midstream_flows;
        a.early_bytes = s.early_bytes;
        a.callout_panics = engine.stats().callout_panics.load(Ordering::Relaxed);
        let x = &mut self.asynchronous;
        x.pended = s.pended;
        x.pend_completed = s.pend_completed;
        x.pend_expired = s.pend_expired;
        x.late_completions = s.late_completions;
        x.held = s.held;
        x.held_released = s.held_released;
        x.held_dropped = s.held_dropped;
        x.injected_delivered = s.injected_delivered;
        x.injected_dropped = s.injected_dropped;
        x.edited = s.edited;
        x.redirected = s.redirected;
        x.redirects_pended = s.redirects_pended;
    }

    /// Every layer that classified a packet, in run-time layer id order.
    fn layer_rows(&self) -> Vec<LayerRow> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                l.permitted.packets + l.blocked.packets + l.absorbed.packets + l.no_match.packets
                    > 0
            })
            .filter_map(|(i, l)| {
                Some(LayerRow {
                    absorbed: l.absorbed,
                    blocked: l.blocked,
                    layer: LayerId(u16::try_from(i).ok()?),
                    no_match: l.no_match,
                    permitted: l.permitted,
                })
            })
            .collect()
    }

    /// Every filter that decided something, most decisions first (then by id).
    fn filter_rows(
        &self,
        known: &HashMap<FilterId, FilterInfo>,
        engine: &Engine,
    ) -> Vec<FilterRow> {
        let counts = self
            .filters
            .iter()
            .enumerate()
            .map(|(i, c)| (FilterId(i as u64), *c))
            .chain(self.sparse_filters.iter().map(|(k, c)| (*k, *c)));
        let mut filters: Vec<FilterRow> = counts
            .filter(|(_, c)| c.permits + c.blocks + c.final_packets > 0)
            .map(|(id, c)| {
                let info = known
                    .get(&id)
                    .cloned()
                    .or_else(|| engine.filter(id).map(FilterInfo::new));
                FilterRow {
                    action: info.as_ref().map_or(ActionType::NONE, FilterInfo::action),
                    blocks: c.blocks,
                    final_packets: c.final_packets,
                    id,
                    layer: info.as_ref().map_or(LayerId(u16::MAX), FilterInfo::layer),
                    name: info
                        .as_ref()
                        .map_or_else(String::new, |i| i.name().to_owned()),
                    permits: c.permits,
                    vetoes: c.vetoes,
                }
            })
            .collect();
        filters.sort_by(|x, y| {
            (y.permits + y.blocks)
                .cmp(&(x.permits + x.blocks))
                .then(x.id.0.cmp(&y.id.0))
        });
        filters
    }
}

/// Adds one packet of `wire` bytes to `map[key]`.
fn add_count(map: &mut BTreeMap<String, Count>, key: &str, wire: u64) {
    match map.get_mut(key) {
        Some(c) => c.add(wire),
        None => {
            let mut c = Count::default();
            c.add(wire);
            map.insert(key.to_string(), c);
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
        NetworkProtocol::OtherPppProtocol(p) => format!("not IP: PPP protocol {p:#06x}"),
        NetworkProtocol::OtherMplsPayload(n) => format!("not IP: MPLS payload nibble {n}"),
        other => format!("not IP: {other:?}"),
    }
}
