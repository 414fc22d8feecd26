//! `wfpctl replay`: a capture through the engine — what would this policy have done to this
//! traffic, and why?
//!
//! ```text
//!  CaptureReader ──PacketRef──► Replayer::handle_packet ──────────────────────────────────┐
//!   (pcap/pcapng)                │ 1. capture time → Timestamp; due flow timeouts first   │
//!                                │ 2. decode_link: not IP / unsupported → skipped (counted)│
//!                                │ 3. direction: SLL/SLL2 packet type, else Infer (--local)│
//!                                │ 4. decap: tunnels → one packet per level (decap.rs)     │
//!                                ▼                                                        │
//!                          Shim::handle_packet, per level ──► PacketVerdict per pass      │
//!                                │ the first BLOCK, else the innermost PERMIT            │
//!                                │                                                        │
//!                                ├─► Summary counters (per verdict, per layer, per filter) │
//!                                ├─► --verdicts: one JSON line (file or stdout)           │
//!                                ├─► --permitted / --blocked: the frame (pcap or pcapng)   │
//!                                └─► --trace N: the arbitration trace of packet N          │
//!  end of capture (or a capture error) ──► Shim::abort_all (flowDeleteFn for every context) ┘
//!                                      ──► Report: text table or one JSON object
//! ```
//!
//! Time: every packet's capture timestamp is the engine's `now`, so flow idle timeouts expire as
//! they would have on the wire ([`Shim::handle_timeout`] runs whenever [`Shim::poll_timeout`] is
//! due before the next packet); the built-in callouts' clock (the run's own [`Host`], never shared
//! with another replay in the process) follows it too.
//!
//! Snapshot length: a frame captured shorter than it was on the wire (caplen < orig_len) is handed
//! to the shim with [`PacketContext::truncated`]: length fields pointing past the capture are
//! accepted, the packet is classified from its headers, a TCP segment's missing tail is skipped as
//! missed stream bytes, and [`Anomalies::truncated_classified`] counts it. Only a header the
//! capture cut makes it malformed. IPv4 header checksums are not verified unless
//! `--verify-checksums` ([`ReplayConfig`]); mismatches are counted
//! ([`Anomalies::ipv4_checksum_mismatches`]).
//!
//! Verdicts: PERMIT, BLOCK, ABSORB (a BLOCK with FWPS_CLASSIFY_OUT_FLAG_ABSORB) come from the shim;
//! packets that never reach it — link types this project does not decode, frames that are not
//! IPv4/IPv6 (ARP, LLDP...), link headers cut short — are SKIPPED: counted with their reason,
//! listed in `--verdicts`, and written to neither output capture. Absorbed packets go to the
//! `--blocked` capture. permitted + blocked + absorbed + skipped = packets read.
//!
//! Direction: a Linux cooked capture's packet type decides (OUTGOING → outbound, HOST /
//! BROADCAST / MULTICAST / OTHERHOST → inbound); otherwise the direction a pcapng file recorded
//! (`epb_flags` inbound/outbound); otherwise [`ShimConfig::local_networks`] (`--local`), and
//! failing that the side that sent a flow's first packet is the local side. A packet between two
//! loopback addresses (whatever the capture recorded), or between two `--local` addresses, is
//! loopback: classified on the sender's side, then on the receiver's
//! ([`PacketDirection::Loopback`]; [`ShimConfig::loopback_once`]).
//!
//! Outputs: `--verdicts`, `--permitted` and `--blocked` take a file name or `-` (standard output;
//! the summary then goes to standard error, see [`run`]). Captures are written by [`PcapSink`]:
//! classic pcap, or pcapng for `*.pcapng` names and `--output-format pcapng` (one interface per
//! link type, nanosecond timestamps, the replay's direction in `epb_flags`).
//!
//! Encapsulations (the `decap` module): PPPoE, MPLS, PBB, VLANs and the NFLOG / Cisco HDLC
//! link types are link-layer headers, crossed on the way to the IP packet. Tunnels (GRE, VXLAN,
//! Geneve, IPIP, 6in4, 4in6, 6in6) make one frame several packets: the outer one on the physical
//! interface, each inner one on a tunnel interface of its own (`IF_TYPE_TUNNEL`, interface index
//! [`TUNNEL_IFINDEX_BASE`] + n by first appearance), each through the shim; the frame is blocked
//! if any of them is. What is not decoded is named in [`Report::encapsulations`] with a count.
//!
//! `--verdicts` lines (one JSON object per packet, in capture order):
//!
//! | key | value |
//! |---|---|
//! | `index` | 0-based packet index in the capture |
//! | `ts_ns`, `time` | capture time: ns since the epoch, and `"<seconds>.<9 digits>"` |
//! | `len` | bytes on the wire |
//! | `direction` | `"inbound"` / `"outbound"` / `"loopback"` (null when skipped) |
//! | `flow` | the flow handle (FWPS flow id), or null |
//! | `action` | `"PERMIT"`, `"BLOCK"`, `"ABSORB"` or `"SKIPPED"` |
//! | `reason` | `"filter"`, `"no-match"`, `"malformed: …"`, a stream or refusal reason, or why it was skipped |
//! | `layer` | where the deciding filter decided (else the last layer visited), WFP name |
//! | `filter_id`, `filter` | the deciding filter's id and name, or null |
//! | `layers` | every classify in order (of every pass, in the order they ran): `layer`, `action`, `decision` (`hard`/`soft`/`none`), `filter_id`, `filter`, `vetoed` |
//! | `tunnels` | the tunnels the frame was taken out of, outermost first: `kind` (`GRE`, `VXLAN`...), `ifindex` (the tunnel interface), `key` (GRE key / VNI, or null); empty for a plain frame |
//! | `offload` | only on classified packets: `offload` when no later packet of the flow in this direction could get another answer (the kernel may carry them, `docs/offload.md`), else `keep:` and why (`keep:callout@LAYER`, `keep:not-established`, ...) |
//! | `origin` | only on packets a callout changed or produced: `kind` `edited` (a captured packet a stream edit rewrote; written to `--permitted` with its edited bytes), `injected` or `released` (lines the `asyncs` module writes after the packet that made them due), `function`, `handles`, `depth` |
//! | `redirected_to` | only on packets of a connection a callout redirected at ALE_CONNECT_REDIRECT / ALE_BIND_REDIRECT (§10.3): `remote`, `local` (`"address:port"` after the redirect), `original_remote`, `original_local`, `layer`, `filter_id`, `filter` (the last change), `first` (this packet's classify made the redirect). The packet was classified with the new addresses and, when permitted, is written to `--permitted` rewritten: to the new remote, or for the peer's answers, from it |

mod asyncs;
mod cli;
mod decap;
mod display;
mod output;
mod report;
mod summary;
mod table;
mod trace;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use wfp_callouts::Host;
use wfp_core::{ActionType, Engine, FilterId, LayerId, RtFilter};
use wfp_pcap::{CaptureError, CaptureReader, LinkType, NetworkProtocol, PacketRef, WriteError};
use wfp_policy::PolicyError;
use wfp_shim::{
    PacketContext, PacketDirection, PacketVerdict, Reason, Shim, ShimConfig, ShimEvent, Timestamp,
    Verdict,
};

pub use cli::{parse_cidr, replay_quiet, run, Args};
pub use decap::{
    IF_TYPE_PPP, IF_TYPE_TUNNEL, TUNNEL_IFINDEX_BASE, TUNNEL_TYPE_DIRECT, TUNNEL_TYPE_OTHER,
};
pub use output::{format_for_path, PcapSink, SinkReport};
pub use report::{
    Anomalies, AsyncCounts, Count, EncapsulationCounts, Example, FilterRow, FlowEnds, FlowSummary,
    LayerRow, Report, Verdicts,
};
pub use trace::TracedPacket;

/// Why a replay could not run or could not write its outputs. A damaged capture is not one of
/// these: it ends the replay with [`Report::capture_error`] set, after everything before it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The capture file could not be opened or its header is not a capture.
    #[error("{}: {source}", path.display())]
    CaptureOpen {
        /// The capture given.
        path: PathBuf,
        /// Why.
        #[source]
        source: CaptureError,
    },
    /// A pcap output could not be written.
    #[error("{}: {source}", path.display())]
    CaptureOutput {
        /// The output file.
        path: PathBuf,
        /// Why.
        #[source]
        source: WriteError,
    },
    /// An output file could not be created or written.
    #[error("{}: {source}", path.display())]
    Output {
        /// The output file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The policy file could not be loaded or applied.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// How to replay.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// The packet pipeline's configuration; `local_networks` is what `--local` fills. The default
    /// does not verify IPv4 header checksums (`--verify-checksums` does): hosts that offload
    /// checksums capture their own packets with anything there, and Wireshark does not validate
    /// them by default either. Mismatches are counted either way.
    pub shim: ShimConfig,
    /// Record the full arbitration trace of this packet (0-based index in the capture).
    pub trace_packet: Option<u64>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        let mut shim = ShimConfig::default();
        shim.parse.verify_ipv4_checksum = false;
        // A capture shows each loopback packet once, whatever direction it recorded: both sides.
        shim.loopback_once = true;
        // A pended operation a callout never completes is dropped after 5 s of capture time.
        shim.pend_deadline = Some(Duration::from_secs(5));
        Self {
            shim,
            trace_packet: None,
        }
    }
}

/// The final verdict of one packet in a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Dropped silently (BLOCK with ABSORB).
    Absorb,
    /// Dropped.
    Block,
    /// Let through.
    Permit,
    /// Not classified: not IP, or a link type / link header this project cannot decode.
    Skip,
}

impl Action {
    /// `PERMIT`, `BLOCK`, `ABSORB` or `SKIPPED`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Absorb => "ABSORB",
            Self::Block => "BLOCK",
            Self::Permit => "PERMIT",
            Self::Skip => "SKIPPED",
        }
    }
}

/// One frame being classified: what every pass over its packets shares.
struct Frame {
    now: Timestamp,
    direction: PacketDirection,
    truncated: bool,
    index: u64,
    wire: u64,
}

/// What the replay knows about a filter (from the engine, once at the start): the engine's own
/// filter object, shared rather than copied (no per-filter allocation when a replay starts).
#[derive(Clone, Debug)]
pub(crate) struct FilterInfo(Arc<RtFilter>);

impl FilterInfo {
    pub(crate) fn new(filter: Arc<RtFilter>) -> Self {
        Self(filter)
    }

    pub(crate) fn name(&self) -> &str {
        self.0.name()
    }

    pub(crate) fn layer(&self) -> LayerId {
        self.0.layer()
    }

    pub(crate) fn action(&self) -> ActionType {
        self.0.action()
    }
}

/// Replays packets through a [`Shim`] and accumulates the [`Report`].
///
/// Call order: [`Replayer::new`], optionally the output setters, [`Replayer::handle_packet`] for
/// every packet in capture order, then [`Replayer::finish`] (which ends every flow, so every
/// flowDeleteFn runs). [`replay`] does all of it for a [`CaptureReader`].
pub struct Replayer {
    shim: Shim,
    /// What the engine's built-in callouts read time from and report to.
    host: Host,
    filters: HashMap<FilterId, FilterInfo>,
    summary: summary::Summary,
    trace_packet: Option<u64>,
    traced: Option<TracedPacket>,
    verdicts: Option<(PathBuf, Box<dyn Write>)>,
    verdict_lines: u64,
    permitted: Option<PcapSink>,
    blocked: Option<PcapSink>,
    first_link_type: Option<LinkType>,
    line: Vec<u8>,
    /// One verdict per packet of a frame (outermost first), reused for every frame (their visit
    /// lists keep their capacity).
    passes: Vec<PacketVerdict>,
    /// The passes of the current frame, in the order they ran.
    order: Vec<usize>,
    /// The context handed to the shim, rewritten for each pass (it never carries an owner or an
    /// injection here, so it is never built or dropped per packet).
    ctx: PacketContext,
    /// Tunnel interfaces seen so far.
    tunnels: decap::TunnelInterfaces,
    /// Packets released or injected asynchronously ([`asyncs`]).
    async_outputs: u64,
    /// Runs first at every asynchronous point: waits (bounded) for work C drivers do on their
    /// own threads ([`wfp_ffi::DriverHost::settle`]).
    settle: Option<Box<dyn FnMut() -> bool + Send>>,
    /// The drivers' unload, run at the end of the capture while the data path keeps applying
    /// what they complete and inject (§5.3: the stack runs on during an unload).
    unload: Option<Box<dyn FnOnce() + Send>>,
    /// The capture time of the last frame (the asynchronous points after the capture's end).
    last_now: Timestamp,
}

impl Replayer {
    /// A replayer feeding `engine`, whose built-in callouts were built with `host` (the policy
    /// applied with it): the replay sets its clock to capture time and drains its logs into the
    /// report.
    pub fn new(engine: Arc<Engine>, host: Host, config: ReplayConfig) -> Self {
        let filters: HashMap<FilterId, FilterInfo> = engine
            .filters()
            .into_iter()
            .map(|f| (f.filter_id(), FilterInfo::new(f)))
            .collect();
        // A host used before: drop what an earlier run left behind.
        let _stale = host.flow_log.drain();
        let _stale = host.stream_log.drain();
        let _stale = host.connections.drain();
        let max_id = filters.keys().map(|f| f.0).max().unwrap_or(0);
        Self {
            summary: summary::Summary::new(max_id),
            filters,
            shim: Shim::new(engine, config.shim),
            host,
            trace_packet: config.trace_packet,
            traced: None,
            verdicts: None,
            verdict_lines: 0,
            permitted: None,
            blocked: None,
            first_link_type: None,
            line: Vec::with_capacity(512),
            passes: vec![PacketVerdict::new(PacketDirection::Infer)],
            order: Vec::with_capacity(wfp_pcap::MAX_ENCAP_DEPTH + 1),
            ctx: PacketContext::default(),
            tunnels: decap::TunnelInterfaces::default(),
            async_outputs: 0,
            settle: None,
            unload: None,
            last_now: Timestamp::from_nanos(0),
        }
    }

    /// Runs `settle` at the start of every asynchronous point (after each packet), before the
    /// completions and injections made since are applied.
    /// `settle` answers whether the last pass released a driver thread (another pass is due,
    /// [`wfp_ffi::DriverHost::wants_another_pass`]).
    pub fn settle_with(&mut self, settle: Box<dyn FnMut() -> bool + Send>) {
        self.settle = Some(settle);
    }

    /// Runs `unload` at the end of the capture, after every flow ended, on its own thread while
    /// this replay keeps applying completions and injections (a driver that flushes and injects
    /// from its unload routine, or waits in FwpsInjectionHandleDestroy0, finishes).
    pub fn unload_with(&mut self, unload: Box<dyn FnOnce() + Send>) {
        self.unload = Some(unload);
    }

    /// Writes one JSON line per packet to `out` (`path` names it in errors).
    pub fn write_verdicts(&mut self, path: PathBuf, out: Box<dyn Write>) {
        self.verdicts = Some((path, out));
    }

    /// Writes the permitted packets to `sink`.
    pub fn write_permitted(&mut self, sink: PcapSink) {
        self.permitted = Some(sink);
    }

    /// Writes the blocked and absorbed packets to `sink`.
    pub fn write_blocked(&mut self, sink: PcapSink) {
        self.blocked = Some(sink);
    }

    /// The pipeline (its counters, flows, engine).
    pub fn shim(&self) -> &Shim {
        &self.shim
    }

    /// Replays one captured packet; returns its final verdict. Errors are output errors only.
    pub fn handle_packet(&mut self, p: &PacketRef<'_>) -> Result<Action, ReplayError> {
        let (now, wire) = self.begin_frame(p);
        // Read where decoding wrote it (matching by reference: no move of the link-layer result).
        let decoded = p.decode_link();
        let l3 = match &decoded {
            Ok(l3) => l3,
            Err(e) => {
                if let Some(name) = decap::unsupported_link(e) {
                    self.summary.unsupported(&name, wire);
                }
                let reason = self.summary.link_error(p.index, e);
                return self.skip(p, wire, &reason);
            }
        };
        let mut found = decap::Found::default();
        if !matches!(l3.protocol, NetworkProtocol::Ipv4 | NetworkProtocol::Ipv6) {
            found.link(l3);
            self.summary.encapsulations(&found, wire);
            return self.skip(p, wire, &summary::not_ip_reason(l3.protocol));
        }
        let direction = match l3.direction().or(p.direction) {
            Some(wfp_pcap::Direction::Inbound) => PacketDirection::Inbound,
            Some(wfp_pcap::Direction::Outbound) => PacketDirection::Outbound,
            None => PacketDirection::Infer,
        };
        let levels = decap::levels(l3, &mut self.tunnels, &mut found);
        self.summary.encapsulations(&found, wire);
        let tracing = self.trace_packet == Some(p.index);
        if tracing {
            self.shim.set_trace(true);
        }
        let frame = Frame {
            now,
            direction,
            // The snapshot length cut the frame (the link header survived, so the cut is in the
            // IP packet or after it): classify it from the headers that were captured.
            truncated: p.data.len() < p.orig_len as usize,
            index: p.index,
            wire,
        };
        let chosen = self.run_passes(&frame, &levels);
        if tracing {
            self.shim.set_trace(false);
        }
        // `levels` always holds the outermost packet, so pass `chosen` ran.
        let Some(v) = self.passes.get(chosen) else {
            return self.skip(p, wire, "no packet");
        };
        let action = match v.verdict {
            Verdict::Permit => Action::Permit,
            Verdict::Block => Action::Block,
            Verdict::Absorb => Action::Absorb,
        };
        let verdict_direction = v.direction;
        self.summary.verdict(v, action, wire);
        if self.verdicts.is_some() {
            self.write_verdict_line(p, wire, chosen, action, &levels)?;
        }
        let sink = match action {
            Action::Permit => self.permitted.as_mut(),
            Action::Block | Action::Absorb => self.blocked.as_mut(),
            Action::Skip => None,
        };
        let edited = self
            .passes
            .get(chosen)
            .and_then(|v| v.edited.as_ref())
            .filter(|_| levels.len() == 1)
            .map(|e| e.bytes.clone());
        match (sink, edited) {
            (Some(sink), Some(bytes)) => asyncs::write_ip(sink, now, &bytes, verdict_direction)?,
            (Some(sink), None) => sink.write(p, l3, verdict_direction)?,
            (None, _) => {}
        }
        // The traced packet's verdict is copied only for that packet.
        if let Some(v) = self.passes.get(chosen).filter(|_| tracing).cloned() {
            self.traced = Some(TracedPacket::new(p, wire, v, &self.filters));
        }
        // One drain for the passes and the asynchronous point (the counters do not depend on
        // the order the flow ends are seen in).
        self.apply_async(now)?;
        self.drain_events(false);
        Ok(action)
    }

    /// Capture time becomes the engine's and the callouts' time (due timeouts first); the frame is
    /// counted. Returns the time and the frame's bytes on the wire.
    fn begin_frame(&mut self, p: &PacketRef<'_>) -> (Timestamp, u64) {
        let now = Timestamp::from_nanos(p.timestamp_ns);
        self.last_now = now;
        if self.shim.timeout_due(now) {
            self.shim.handle_timeout(now);
            // Every other shim call is drained after it: only a timeout leaves events here.
            self.drain_events(false);
        }
        self.host.clock.set(Duration::from_nanos(p.timestamp_ns));
        self.first_link_type.get_or_insert(p.link_type);
        let wire = u64::from(p.orig_len).max(p.data.len() as u64);
        self.summary.packet(p, wire);
        (now, wire)
    }

    /// Classifies every packet of a frame, in the order a host would meet them (inner first when
    /// outbound, outer first otherwise), stopping at the first that is not permitted; returns the
    /// index of the pass whose verdict is the frame's (see `decap.rs`).
    fn run_passes(&mut self, frame: &Frame, levels: &decap::Levels<'_>) -> usize {
        let n = levels.len();
        while self.passes.len() < n {
            self.passes.push(PacketVerdict::new(frame.direction));
        }
        self.order.clear();
        let mut chosen = n.saturating_sub(1);
        for step in 0..n {
            let i = if frame.direction == PacketDirection::Outbound {
                n - 1 - step
            } else {
                step
            };
            let (Some(level), Some(v)) = (levels.get(i), self.passes.get_mut(i)) else {
                break;
            };
            self.ctx.ifindex = level.ifindex;
            self.ctx.truncated = frame.truncated;
            self.ctx.interface = level.interface;
            let (ctx, packet) = (&self.ctx, level.network);
            if i + 1 < n {
                // A tunnel's outer packet: the physical interface's IP-packet layer only.
                self.shim
                    .handle_ip_packet_into(frame.now, frame.direction, packet, ctx, v);
            } else {
                self.shim
                    .handle_packet_into(frame.now, frame.direction, packet, ctx, v);
            }
            self.summary.visits(frame.index, v, frame.wire);
            self.order.push(i);
            if v.verdict != Verdict::Permit {
                chosen = i;
                break;
            }
        }
        chosen
    }

    /// Counts and reports a frame that is not classified.
    fn skip(&mut self, p: &PacketRef<'_>, wire: u64, reason: &str) -> Result<Action, ReplayError> {
        self.summary.skip(reason, wire);
        self.write_skip_line(p, wire, reason)?;
        Ok(Action::Skip)
    }

    /// Ends every flow (flowDeleteFn for every context), closes the outputs and returns the
    /// report. `capture_error` is the error that ended reading early, if any.
    pub fn finish(mut self, capture_error: Option<CaptureError>) -> Result<Report, ReplayError> {
        self.drain_events(false);
        self.shim.abort_all();
        self.drain_events(true);
        self.unload_while_applying()?;
        let fallback = self.first_link_type.unwrap_or(LinkType::RAW);
        let mut outputs = Vec::new();
        if let Some(s) = self.permitted.take() {
            outputs.push(("permitted", s.finish(fallback)?));
        }
        if let Some(s) = self.blocked.take() {
            outputs.push(("blocked", s.finish(fallback)?));
        }
        let verdict_file = match self.verdicts.take() {
            Some((path, mut out)) => {
                out.flush().map_err(|source| ReplayError::Output {
                    path: path.clone(),
                    source,
                })?;
                Some((path, self.verdict_lines))
            }
            None => None,
        };
        let engine = self.shim.engine().clone();
        Ok(self.summary.into_report(summary::Finish {
            shim: self.shim.stats(),
            engine: &engine,
            filters: &self.filters,
            traced: self.traced,
            outputs,
            verdict_file,
            flow_log: self.host.flow_log.drain(),
            stream_reports: self.host.stream_log.drain(),
            connections: self.host.connections.drain(),
            capture_error,
        }))
    }

    /// What flowDeleteFn started is applied; then the unload (if any) runs on its own thread
    /// while the completions and injections it causes are applied, until it returned.
    fn unload_while_applying(&mut self) -> Result<(), ReplayError> {
        let now = self.last_now;
        self.apply_async(now)?;
        let Some(unload) = self.unload.take() else {
            return Ok(());
        };
        let t = std::thread::spawn(unload);
        while !t.is_finished() {
            self.apply_async(now)?;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = t.join();
        self.apply_async(now)?;
        self.drain_events(true);
        Ok(())
    }

    fn drain_events(&mut self, at_end: bool) {
        while let Some(ShimEvent::FlowEnded {
            reason, contexts, ..
        }) = self.shim.poll_event()
        {
            self.summary.flow_ended(reason, contexts, at_end);
        }
    }

    fn write_skip_line(
        &mut self,
        p: &PacketRef<'_>,
        wire: u64,
        reason: &str,
    ) -> Result<(), ReplayError> {
        if self.verdicts.is_none() {
            return Ok(());
        }
        let line = VerdictLine {
            index: p.index,
            ts_ns: p.timestamp_ns,
            time: time_string(p.timestamp_ns),
            len: wire,
            captured: p.data.len() as u64,
            direction: None,
            flow: None,
            action: Action::Skip.name(),
            reason: reason.to_string(),
            layer: None,
            filter_id: None,
            filter: None,
            layers: Vec::new(),
            tunnels: Vec::new(),
            offload: None,
            origin: None,
            redirected_to: None,
        };
        emit(
            &mut self.verdicts,
            &mut self.line,
            &mut self.verdict_lines,
            &line,
        )
    }

    fn write_verdict_line(
        &mut self,
        p: &PacketRef<'_>,
        wire: u64,
        chosen: usize,
        action: Action,
        levels: &decap::Levels<'_>,
    ) -> Result<(), ReplayError> {
        let filters = &self.filters;
        let name = |id: Option<FilterId>| id.and_then(|id| filters.get(&id)).map(FilterInfo::name);
        let passes = &self.passes;
        let layers = self
            .order
            .iter()
            .filter_map(|&i| passes.get(i))
            .flat_map(|v| v.visits.iter())
            .map(|visit| LayerLine {
                layer: layer_name(visit.layer),
                action: action_name(visit.action),
                decision: crate::explain::hardness(visit.action, visit.hardness),
                filter_id: visit.filter.map(|f| f.0),
                filter: name(visit.filter),
                vetoed: visit.vetoed,
            })
            .collect();
        let tunnels = levels
            .iter()
            .filter_map(|l| l.tunnel)
            .map(|t| TunnelLine {
                ifindex: t.ifindex,
                key: t.key,
                kind: t.kind.name(),
            })
            .collect();
        let Some(v) = passes.get(chosen) else {
            return Ok(());
        };
        let line = VerdictLine {
            index: p.index,
            ts_ns: p.timestamp_ns,
            time: time_string(p.timestamp_ns),
            len: wire,
            captured: p.data.len() as u64,
            direction: Some(direction_name(v.direction)),
            flow: v.flow.map(wfp_shim::FlowId::get),
            action: action.name(),
            reason: reason_string(&v.reason),
            layer: deciding_layer(v).map(layer_name),
            filter_id: v.filter.map(|f| f.0),
            filter: name(v.filter),
            layers,
            tunnels,
            offload: Some(v.offload.label()),
            origin: v
                .edited
                .as_ref()
                .filter(|e| v.redirected.is_none() || !e.injectors.is_empty())
                .map(|e| asyncs::OriginLine::edited(&e.injectors)),
            redirected_to: v.redirected.as_ref().map(|r| RedirectLine::new(r, filters)),
        };
        emit(
            &mut self.verdicts,
            &mut self.line,
            &mut self.verdict_lines,
            &line,
        )
    }
}

/// Writes one JSON line to the `--verdicts` output, if any.
fn emit(
    verdicts: &mut Option<(PathBuf, Box<dyn Write>)>,
    buf: &mut Vec<u8>,
    lines: &mut u64,
    line: &VerdictLine<'_>,
) -> Result<(), ReplayError> {
    let Some((path, out)) = verdicts.as_mut() else {
        return Ok(());
    };
    buf.clear();
    // Serializing plain strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, line);
    buf.push(b'\n');
    out.write_all(buf).map_err(|source| ReplayError::Output {
        path: path.clone(),
        source,
    })?;
    *lines += 1;
    Ok(())
}

/// One `--verdicts` line.
#[derive(Serialize)]
struct VerdictLine<'a> {
    index: u64,
    ts_ns: u64,
    time: String,
    /// Bytes on the wire (the frame's original length).
    len: u64,
    /// Bytes the capture kept (below `len` when the snaplen cut the frame).
    captured: u64,
    direction: Option<&'static str>,
    flow: Option<u64>,
    action: &'static str,
    reason: String,
    layer: Option<&'static str>,
    filter_id: Option<u64>,
    filter: Option<&'a str>,
    layers: Vec<LayerLine<'a>>,
    tunnels: Vec<TunnelLine>,
    /// The flow offload answer (`docs/offload.md`), for classified packets.
    #[serde(skip_serializing_if = "Option::is_none")]
    offload: Option<String>,
    /// Set for a packet a stream edit rewrote (see `asyncs.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<asyncs::OriginLine>,
    /// Set for a packet of a connection a callout redirected (§10.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    redirected_to: Option<RedirectLine<'a>>,
}

/// A `--verdicts` line's `redirected_to`: where the engine sent a redirected connection.
#[derive(Serialize)]
pub(super) struct RedirectLine<'a> {
    /// `"address:port"` the connection goes to now (`[v6]:port` for IPv6).
    remote: String,
    /// `"address:port"` of the local endpoint (changed by a bind redirect).
    local: String,
    /// The destination the application connected to.
    original_remote: String,
    /// The local endpoint the application used.
    original_local: String,
    /// The redirect layer that made the last change.
    layer: &'static str,
    /// The filter whose callout made the last change, and its name.
    filter_id: Option<u64>,
    filter: Option<&'a str>,
    /// This packet's redirect classify redirected the connection (its first packet).
    first: bool,
}

impl<'a> RedirectLine<'a> {
    /// The line of `r`, filter names from `filters`.
    pub(super) fn new(
        r: &wfp_shim::Redirected,
        filters: &'a HashMap<FilterId, FilterInfo>,
    ) -> Self {
        let c = &r.connection;
        Self {
            remote: c.remote.to_string(),
            local: c.local.to_string(),
            original_remote: c.original_remote.to_string(),
            original_local: c.original_local.to_string(),
            layer: layer_name(c.layer),
            filter_id: c.filter.map(|f| f.0),
            filter: c.filter.and_then(|f| filters.get(&f)).map(FilterInfo::name),
            first: r.first,
        }
    }
}

/// One tunnel a `--verdicts` line's frame was taken out of.
#[derive(Serialize)]
struct TunnelLine {
    ifindex: u32,
    key: Option<u32>,
    kind: &'static str,
}

/// One layer visit in a `--verdicts` line.
#[derive(Serialize)]
struct LayerLine<'a> {
    layer: &'static str,
    action: &'static str,
    decision: &'static str,
    filter_id: Option<u64>,
    filter: Option<&'a str>,
    vetoed: bool,
}

/// Replays every packet `reader` yields. `progress` is called every 4096 packets with the reader
/// (for its byte offset). A capture error ends the loop and is recorded in the report.
pub fn replay<R: Read>(
    reader: &mut CaptureReader<R>,
    mut replayer: Replayer,
    progress: &mut dyn FnMut(&CaptureReader<R>),
) -> Result<Report, ReplayError> {
    let mut capture_error = None;
    loop {
        match reader.next_packet_ref() {
            Ok(Some(p)) => {
                let index = p.index;
                replayer.handle_packet(&p)?;
                if index % 4096 == 4095 {
                    progress(reader);
                }
            }
            Ok(None) => break,
            Err(e) => {
                capture_error = Some(e);
                break;
            }
        }
    }
    let mut report = replayer.finish(capture_error)?;
    report.format = Some(reader.format());
    Ok(report)
}

/// `1700000000.123456789`: seconds since the epoch with nanoseconds.
pub(crate) fn time_string(ts_ns: u64) -> String {
    format!("{}.{:09}", ts_ns / 1_000_000_000, ts_ns % 1_000_000_000)
}

pub(crate) fn layer_name(layer: LayerId) -> &'static str {
    wfp_core::catalogue::layer(layer).map_or("UNKNOWN_LAYER", |l| l.name)
}

pub(crate) fn action_name(a: ActionType) -> &'static str {
    match a {
        ActionType::PERMIT => "PERMIT",
        ActionType::BLOCK => "BLOCK",
        ActionType::NONE_NO_MATCH => "NONE_NO_MATCH",
        ActionType::CONTINUE => "CONTINUE",
        ActionType::NONE => "NONE",
        _ => "OTHER",
    }
}

pub(crate) fn direction_name(d: PacketDirection) -> &'static str {
    match d {
        PacketDirection::Inbound => "inbound",
        PacketDirection::Outbound => "outbound",
        PacketDirection::Forward => "forward",
        PacketDirection::Infer => "unknown",
        PacketDirection::Loopback => "loopback",
    }
}

pub(crate) fn reason_string(r: &Reason) -> String {
    match r {
        Reason::Filter => "filter".into(),
        Reason::NoMatch => "no-match".into(),
        Reason::Malformed(m) => format!("malformed: {m}"),
        Reason::FragmentDropped(m) => format!("fragment dropped: {m}"),
        Reason::FragmentHeld => "fragment held for reassembly".into(),
        Reason::StreamBlocked => "stream bytes blocked".into(),
        Reason::ConnectionDropped => "connection dropped by a stream callout".into(),
        Reason::StreamOverlap => "stream overlap with different bytes".into(),
        Reason::ConnectionRefused => "segment of a connection refused at authorization".into(),
        Reason::Pended => "pended".into(),
        Reason::FlowAborted => "flow aborted by a callout".into(),
        Reason::RedirectFailed => "redirected connection's packet could not be rewritten".into(),
    }
}

/// The layer where the deciding filter decided (the last visit it decided), else the last layer.
pub(crate) fn deciding_layer(v: &PacketVerdict) -> Option<LayerId> {
    v.filter
        .and_then(|f| v.visits.iter().rev().find(|x| x.filter == Some(f)))
        .map(|x| x.layer)
        .or(v.layer)
}
