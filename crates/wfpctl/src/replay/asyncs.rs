//! What callouts did asynchronously, in a replay (wfp-reference §10.1, §10.4, §9.2): after every
//! packet — the deterministic point on the replay clock — the host's worker runs
//! ([`wfp_callouts::Worker::run`]: pend decisions and out-of-band edits of the built-ins), then
//! [`Shim::handle_async`] applies the
//! completions and injections callouts made since (from their own threads too), releases held
//! packets and runs injected ones; each output is written like a captured packet:
//!
//! * to `--permitted` when its verdict is PERMIT (an edited packet with its edited bytes, valid
//!   checksums), else to `--blocked`;
//! * to `--verdicts` as a line with `origin`: `{"kind": "injected" | "released", "function":
//!   "network-send" | ... | "stream" | null, "handle": <injection handle> | null, "depth": n}`.
//!   Captured packets a stream edit rewrote carry `"origin": {"kind": "edited", "handles": [...]}`.
//!   Lines of captured packets that were not edited have no `origin` key.
//!
//! Held packets (a pended authorization) are ABSORB lines with reason `pended` when captured; the
//! replay's `--pend-deadline` (default 5 s of capture time) drops operations still pended after
//! it ([`wfp_shim::ShimStats::pend_expired`]).

use serde::Serialize;
use wfp_pcap::{LinkType, PacketRef};
use wfp_shim::{OutputOrigin, PacketDirection, ShimOutput, Timestamp, Verdict};

use super::{ReplayError, Replayer};

/// The `origin` of a `--verdicts` line.
#[derive(Serialize)]
pub(super) struct OriginLine {
    /// `injected`, `released` or `edited`.
    kind: &'static str,
    /// The injection function (injected packets).
    function: Option<&'static str>,
    /// The injection handles behind the packet.
    handles: Vec<u64>,
    /// Injections behind the packet.
    depth: usize,
}

impl OriginLine {
    /// The origin of a captured packet a stream edit rewrote.
    pub(super) fn edited(handles: &[wfp_core::inject::InjectionHandle]) -> Self {
        Self {
            kind: "edited",
            function: None,
            handles: handles.iter().map(|h| h.0).collect(),
            depth: 0,
        }
    }

    fn of(o: &ShimOutput) -> Self {
        match &o.origin {
            OutputOrigin::Released { .. } => Self {
                kind: "released",
                function: None,
                handles: Vec::new(),
                depth: 0,
            },
            OutputOrigin::Injected {
                handle,
                kind,
                depth,
                ..
            } => Self {
                kind: "injected",
                function: Some(kind.name()),
                handles: vec![handle.0],
                depth: *depth,
            },
        }
    }
}

/// One asynchronous output as a `--verdicts` line.
#[derive(Serialize)]
struct OutputLine<'a> {
    ts_ns: u64,
    direction: &'static str,
    flow: Option<u64>,
    action: &'static str,
    reason: String,
    layer: Option<&'static str>,
    filter_id: Option<u64>,
    origin: OriginLine,
    len: usize,
    #[serde(skip)]
    _p: std::marker::PhantomData<&'a ()>,
}

impl Replayer {
    /// Applies what callouts did since the last packet, at `now`, and writes the outputs.
    pub(super) fn apply_async(&mut self, now: Timestamp) -> Result<(), ReplayError> {
        // The built-ins' worker first (pend decisions, out-of-band stream edits): what it
        // completes and injects is applied by this same `handle_async`.
        self.host.worker.run(self.shim.engine());
        self.shim.handle_async(now);
        while let Some(o) = self.shim.poll_output() {
            self.async_outputs += 1;
            self.write_output(&o)?;
        }
        Ok(())
    }

    fn write_output(&mut self, o: &ShimOutput) -> Result<(), ReplayError> {
        let bytes = o
            .verdict
            .edited
            .as_ref()
            .map_or(&o.bytes[..], |e| &e.bytes[..]);
        let permit = o.verdict.verdict == Verdict::Permit;
        let sink = if permit {
            self.permitted.as_mut()
        } else {
            self.blocked.as_mut()
        };
        if let Some(sink) = sink {
            write_ip(sink, o.now, bytes, o.verdict.direction)?;
        }
        if self.verdicts.is_none() {
            return Ok(());
        }
        let v = &o.verdict;
        let line = OutputLine {
            ts_ns: o.now.as_nanos(),
            direction: super::direction_name(v.direction),
            flow: v.flow.map(wfp_shim::FlowId::get),
            action: match v.verdict {
                Verdict::Permit => "PERMIT",
                Verdict::Block => "BLOCK",
                Verdict::Absorb => "ABSORB",
            },
            reason: super::reason_string(&v.reason),
            layer: super::deciding_layer(v).map(super::layer_name),
            filter_id: v.filter.map(|f| f.0),
            origin: OriginLine::of(o),
            len: bytes.len(),
            _p: std::marker::PhantomData,
        };
        let Some((path, out)) = self.verdicts.as_mut() else {
            return Ok(());
        };
        let mut buf = serde_json::to_vec(&line).unwrap_or_default();
        buf.push(b'\n');
        out.write_all(&buf).map_err(|source| ReplayError::Output {
            path: path.clone(),
            source,
        })?;
        self.verdict_lines += 1;
        Ok(())
    }
}

/// Writes an IP packet (`bytes`) to `sink` as a raw-IP packet at `now`.
pub(super) fn write_ip(
    sink: &mut super::PcapSink,
    now: Timestamp,
    bytes: &[u8],
    direction: PacketDirection,
) -> Result<(), ReplayError> {
    let p = PacketRef {
        index: 0,
        timestamp_ns: now.as_nanos(),
        link_type: LinkType::RAW,
        orig_len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        interface: 0,
        direction: None,
        data: bytes,
    };
    match p.decode_link() {
        Ok(l3) => sink.write(&p, &l3, direction),
        Err(_) => Ok(()),
    }
}

use std::io::Write as _;
