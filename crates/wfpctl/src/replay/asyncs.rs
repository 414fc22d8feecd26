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
    /// Set for a packet of a redirected connection (as on a captured packet's line).
    #[serde(skip_serializing_if = "Option::is_none")]
    redirected_to: Option<super::RedirectLine<'a>>,
    #[serde(skip)]
    _p: std::marker::PhantomData<&'a ()>,
}

impl Replayer {
    /// Applies what callouts did since the last packet, at `now`, and writes the outputs. The
    /// check for "nothing queued anywhere" (nearly every packet) is inlined at the caller.
    #[inline]
    pub(super) fn apply_async(&mut self, now: Timestamp) -> Result<(), ReplayError> {
        // The common case, checked with one atomic load: no C driver to settle and nothing queued
        // for the built-ins' worker, and nothing queued in the shim: a flag test, no drain.
        if self.settle.is_none() && self.host.worker.is_idle() && self.shim.async_idle() {
            return Ok(());
        }
        self.apply_async_queued(now)
    }

    /// [`Replayer::apply_async`] when something may be queued.
    #[inline(never)]
    fn apply_async_queued(&mut self, now: Timestamp) -> Result<(), ReplayError> {
        // Another pass while a C driver's thread resumed from FwpsCompleteOperation0 after the
        // reauthorization the last pass ran (bounded).
        for pass in 0..8 {
            // Decisions C drivers take on their own threads (bounded wait), so they land here.
            let again = match self.settle.as_mut() {
                Some(settle) => settle(),
                None => false,
            };
            if pass > 0 && !again {
                break;
            }
            // The built-ins' worker first (pend decisions, out-of-band stream edits): what it
            // completes and injects is applied by this same `handle_async`.
            self.host.worker.run(self.shim.engine());
            self.shim.handle_async(now);
            self.write_outputs()?;
        }
        Ok(())
    }

    /// Counts and writes the packets the last `handle_async` produced.
    #[inline]
    fn write_outputs(&mut self) -> Result<(), ReplayError> {
        while let Some(o) = self.shim.poll_output() {
            self.async_outputs += 1;
            self.summary.async_output(&o);
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
            redirected_to: v
                .redirected
                .as_ref()
                .map(|r| super::RedirectLine::new(r, &self.filters)),
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;
    use std::time::Duration;

    use wfp_callouts::Host;
    use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
    use wfp_core::catalogue::layers;
    use wfp_core::constants::ClassifyOutFlags;
    use wfp_core::engine::FlowTracking;
    use wfp_core::{
        ActionType, Callout, CalloutFlags, CalloutRegistration, CalloutSpec, Engine, EngineOptions,
        FilterSpec, Guid, RtFilter,
    };
    use wfp_pcap::{LinkType, PacketRef};
    use wfp_shim::wire::build::ip_packet;

    use super::super::{ReplayConfig, Replayer};

    /// Pends every connection it sees and never completes one (a callout whose worker hangs).
    struct NeverDecides;

    impl Callout for NeverDecides {
        fn classify(
            &self,
            ctx: &ClassifyContext<'_>,
            _values: &IncomingValues<'_>,
            meta: &Metadata,
            _layer_data: &mut LayerData<'_>,
            _filter: &RtFilter,
            _flow_context: u64,
            out: &mut ClassifyOut,
        ) {
            if ctx.pend_operation(meta).is_ok() {
                out.action_type = ActionType::BLOCK;
                out.flags |= ClassifyOutFlags::ABSORB;
                out.clear_write();
            }
        }
    }

    /// Replays a SYN at 1 s and a retransmission at 1 s + `later` with `deadline`.
    fn replay(deadline: Duration, later: Duration) -> super::super::Report {
        let engine = Arc::new(Engine::new(EngineOptions {
            flow_tracking: FlowTracking::Announced,
            ..EngineOptions::default()
        }));
        let key = Guid::from_name("test-callout", "never-decides");
        let callout = Arc::new(NeverDecides);
        engine
            .register_callout(CalloutRegistration {
                key,
                flags: CalloutFlags(0),
                callout,
                flow_delete: false,
            })
            .expect("register");
        engine
            .add_callout(CalloutSpec {
                key,
                name: "never decides".into(),
                description: String::new(),
                flags: 0,
                provider: None,
                applicable_layer: layers::ALE_AUTH_CONNECT_V4,
            })
            .expect("add callout");
        let mut f = FilterSpec::new(
            "pend",
            layers::ALE_AUTH_CONNECT_V4,
            ActionType::CALLOUT_TERMINATING,
        );
        f.callout = Some(key);
        engine.add_filter(f).expect("add filter");
        let mut config = ReplayConfig::default();
        config.shim.pend_deadline = Some(deadline);
        config.shim.local_networks = vec![(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 32)];
        let mut r = Replayer::new(engine, Host::new(), config);
        let mut syn = vec![0u8; 20];
        syn[0..2].copy_from_slice(&40000u16.to_be_bytes());
        syn[2..4].copy_from_slice(&80u16.to_be_bytes());
        syn[12] = 5 << 4;
        syn[13] = 0x02;
        let src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let dst = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let packet = ip_packet(src, dst, 6, &syn).expect("packet");
        for (index, at) in [
            (0, Duration::from_secs(1)),
            (1, Duration::from_secs(1) + later),
        ] {
            let p = PacketRef {
                index,
                timestamp_ns: u64::try_from(at.as_nanos()).expect("small"),
                link_type: LinkType::RAW,
                orig_len: u32::try_from(packet.len()).expect("small"),
                interface: 0,
                direction: None,
                data: &packet,
            };
            r.handle_packet(&p).expect("replays");
        }
        r.finish(None).expect("finishes")
    }

    #[test]
    fn an_operation_still_pended_at_the_deadline_is_dropped_and_counted() {
        let a = replay(Duration::from_secs(2), Duration::from_secs(3)).asynchronous;
        assert_eq!(
            (a.pended, a.pend_expired, a.pend_completed),
            (2, 1, 0),
            "{a:?}"
        );
        assert_eq!(a.held, 2, "each SYN held while its operation was pended");
        assert_eq!(a.held_dropped, 2, "{a:?}");
        // Within the deadline the retransmission joins the held packets; nothing expires (the
        // capture's end drops the operation with its flow, not the deadline).
        let a = replay(Duration::from_secs(5), Duration::from_secs(3)).asynchronous;
        assert_eq!((a.pended, a.pend_expired), (1, 0), "{a:?}");
        assert_eq!((a.held, a.held_dropped), (2, 2), "{a:?}");
    }
}
