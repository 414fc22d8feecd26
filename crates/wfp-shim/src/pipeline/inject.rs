//! Injected packets on the data path (wfp-reference §10.4, §9.2 stream injection) and the
//! outputs the shim hands back asynchronously ([`ShimOutput`]).
//!
//! [`Shim::handle_async`] drains `Engine::poll_injection` and runs each request where WFP
//! re-enters it, with its provenance in `Metadata::injection`:
//!
//! | request | re-entry |
//! |---|---|
//! | network / transport receive | the inbound layers from the bottom (IP packet as given) |
//! | network send | the outbound layers from the top (IP packet as given) |
//! | transport send | the outbound layers from the top, behind an IP header the shim builds from the endpoint's flow (remote from the send parameters when given) |
//! | forward | no WFP layer: delivered as is |
//! | stream, inside the injector's classifyFn | spliced into the segment at the current point, seen only by the stream filters after the injector's (T-ST-2); the segment is rewritten ([`super::PacketVerdict::edited`]) |
//! | stream, outside classifyFn (out-of-band) | the stream filters after the injector's, then a new TCP segment of the flow at the output stream's position: none when nothing went on and the injection has no DISCONNECT flag; with FIN set (one sequence number) when it has |
//!
//! Every request completes once: delivered when its packet was permitted (or held by a pend),
//! dropped (STATUS_FWP_DROP_NOICMP) when a layer blocked it or it could not be built.
//!
//! Length-changing stream edits move the output stream against the capture's: per flow side the
//! shim keeps the shift and rewrites the sequence numbers of that side's later segments and the
//! acknowledgement numbers of the other side's ([`SideEdit`]), fixing checksums — forward for a
//! replay, backward for a live peer that acknowledges the edited bytes ([`SeqTranslation`]).

use std::sync::Arc;

use wfp_core::constants::StreamFlags;
use wfp_core::inject::{
    InjectionHandle, InjectionId, InjectionKind, InjectionOutcome, InjectionRequest,
};
use wfp_core::{CalloutId, Status};

use super::packet::Packet;
use super::{EditedPacket, PacketContext, PacketDirection, PacketVerdict, Reason, Shim, Verdict};
use crate::flow::{Direction, FlowId, Side};
use crate::stream::{StreamCall, StreamOutcome};
use crate::time::Timestamp;
use crate::wire::build::{self, BuildError, TcpEdit};
use crate::wire::Transport;

/// Which injection function made an injected packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InjectKind {
    /// `FwpsInjectNetworkSendAsync0`.
    NetworkSend,
    /// `FwpsInjectNetworkReceiveAsync0`.
    NetworkReceive,
    /// `FwpsInjectForwardAsync0`.
    Forward,
    /// `FwpsInjectTransportSendAsync0/1`.
    TransportSend,
    /// `FwpsInjectTransportReceiveAsync0`.
    TransportReceive,
    /// `FwpsStreamInjectAsync0` out of band (a new segment).
    Stream,
}

impl InjectKind {
    /// `network-send`, `network-receive`, `forward`, `transport-send`, `transport-receive`,
    /// `stream`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NetworkSend => "network-send",
            Self::NetworkReceive => "network-receive",
            Self::Forward => "forward",
            Self::TransportSend => "transport-send",
            Self::TransportReceive => "transport-receive",
            Self::Stream => "stream",
        }
    }

    fn of(kind: &InjectionKind) -> Self {
        match kind {
            InjectionKind::NetworkSend { .. } => Self::NetworkSend,
            InjectionKind::NetworkReceive { .. } => Self::NetworkReceive,
            InjectionKind::Forward { .. } => Self::Forward,
            InjectionKind::TransportSend { .. } => Self::TransportSend,
            InjectionKind::TransportReceive { .. } => Self::TransportReceive,
            InjectionKind::Stream { .. } => Self::Stream,
        }
    }
}

/// How a flow's acknowledgement numbers follow a length-changing stream edit (§9.2 "inline
/// editing ... replacements of a different length"), as the kernel's NAT sequence adjustment
/// does. Sequence numbers of the edited side always move by the edit's shift `d` (the output
/// stream is `d` bytes longer); what the other side's acknowledgements need depends on what that
/// side received:
///
/// | mode | the other side acknowledged | its acknowledgements toward the edited side |
/// |---|---|---|
/// | `Replay` | the original bytes (a capture recorded the unedited conversation) | `+d` (into the output numbering the output capture shows) |
/// | `Inline` | the edited bytes (a live peer received the output) | `-d` (back into the numbering the edited side's own stack uses) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeqTranslation {
    /// Captures (offline replay): acknowledgements move with the edit, `+d`.
    #[default]
    Replay,
    /// A live data path (NFQUEUE): acknowledgements move back, `-d`.
    Inline,
}

impl SeqTranslation {
    /// The shift of acknowledgement number (or SACK edge) `ack`, of the stream of a side whose
    /// output moved as `s` says. A replay moves every acknowledgement by the current shift.
    /// Inline, bytes before the latest change of the shift keep the shift they had (a late
    /// acknowledgement of them), bytes after it get the current one — as the kernel's NAT
    /// sequence adjustment does with `correction_pos`, `offset_before`, `offset_after`.
    ///
    /// An acknowledgement past a FIN the side's stream callouts withheld (§9.2: the peer never
    /// got it) moves back by one more: the FIN is not in the output stream.
    fn ack_shift(self, s: Option<&SideEdit>, ack: u32) -> i64 {
        let Some(s) = s.filter(|s| s.active) else {
            return 0;
        };
        // The withheld FIN's number, in the numbering `ack` is in.
        let fin = match self {
            Self::Replay => s.orig_next,
            Self::Inline => s.out_next,
        };
        let past_fin = s.fin_withheld && fin.is_some_and(|f| seq_after(ack, f));
        self.edit_ack_shift(s, ack) - i64::from(past_fin)
    }

    /// [`SeqTranslation::ack_shift`] for the side's stream edits alone.
    fn edit_ack_shift(self, s: &SideEdit, ack: u32) -> i64 {
        let after = shift_of(s);
        match (self, s.correction) {
            (Self::Replay, _) => after,
            (Self::Inline, None) => -after,
            // A live acknowledgement is in the output numbering: back to the original one
            // before comparing with the position of the change.
            (Self::Inline, Some((pos, before))) => {
                if seq_after(ack.wrapping_sub(before as u32), pos) {
                    -after
                } else {
                    -before
                }
            }
        }
    }

    /// The sequence shift of a segment of a side starting at `seq` (original numbering). A
    /// replay moves every segment by the current shift; inline, a segment that starts at or
    /// before the latest change (a retransmission of earlier bytes) keeps the shift before it.
    ///
    /// A segment after a FIN the side's stream callouts withheld (the sender's own numbering
    /// counts the FIN: its last ACKs) moves back by one more: the FIN is not in the output stream.
    fn seq_shift(self, s: &SideEdit, seq: u32) -> i64 {
        let edits = match (self, s.correction) {
            (Self::Inline, Some((pos, before))) if !seq_after(seq, pos) => before,
            _ => shift_of(s),
        };
        let past_fin = s.fin_withheld && s.orig_next.is_some_and(|f| seq_after(seq, f));
        edits - i64::from(past_fin)
    }
}

/// `a` is after `b` in sequence space (RFC 1982 serial number arithmetic).
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Where a [`ShimOutput`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputOrigin {
    /// A packet held while its flow's ALE operation was pended, classified again after the
    /// completion (§10.1).
    Released {
        /// Its flow, once classified again.
        flow: Option<FlowId>,
    },
    /// A packet a callout injected (§10.4).
    Injected {
        /// The injection.
        injection: InjectionId,
        /// The injection handle.
        handle: InjectionHandle,
        /// The function.
        kind: InjectKind,
        /// The injecting callout, when the request names it (stream injection).
        callout: Option<CalloutId>,
        /// Injections behind the packet, this one included.
        depth: usize,
    },
}

/// A packet the shim produced outside [`Shim::handle_packet`]: classified (its verdict says
/// whether it goes on), with the bytes to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShimOutput {
    /// When it was produced (the `now` of [`Shim::handle_async`]).
    pub now: Timestamp,
    /// The packet, from the IP header, with valid checksums.
    pub bytes: Vec<u8>,
    /// Its classification (`edited` set when its bytes changed on the way).
    pub verdict: PacketVerdict,
    /// Where it came from.
    pub origin: OutputOrigin,
}

/// The output stream of one side of a TCP flow after edits.
#[derive(Clone, Debug, Default)]
pub(crate) struct SideEdit {
    /// A stream edit or out-of-band injection changed this side's output stream: its later
    /// segments (and the other side's acknowledgements) are renumbered.
    pub(crate) active: bool,
    /// Where the side's stream ends in the capture's numbering (after the last segment seen).
    pub(crate) orig_next: Option<u32>,
    /// Where the side's output stream ends (output numbering).
    pub(crate) out_next: Option<u32>,
    /// The last segment the side sent (its headers are the template of an out-of-band segment).
    pub(crate) template: Option<Arc<[u8]>>,
    /// The side's latest acknowledgement number (capture numbering), from any permitted segment,
    /// pure ACKs included: an out-of-band segment acknowledges at least that much. Meaningful
    /// when `acked` (two plain fields rather than an `Option`: they fit in this record's padding,
    /// which every packet of the flow reads).
    pub(crate) last_ack: u32,
    /// `last_ack` was seen.
    pub(crate) acked: bool,
    /// The latest change of the shift: the original sequence number of the segment where it
    /// changed, and the shift before it (bytes before that segment keep that shift).
    pub(crate) correction: Option<(u32, i64)>,
    /// A stream callout blocked the side's FIN and no injection carrying the disconnect has
    /// replaced it (§9.2): the FIN is not in the output stream. It would take number
    /// `orig_next` (which does not count it); a retransmission of it goes on without FIN too,
    /// the other side's acknowledgements of it move back by one ([`SeqTranslation::ack_shift`]),
    /// and the flow table does not close the side ([`crate::flow::FlowTable::withhold_fin`]).
    pub(crate) fin_withheld: bool,
}

/// The most rounds of [`Shim::handle_async`] (each may make new events: a re-injected packet a
/// callout injects again). The engine's injection depth bound ends loops long before.
const MAX_ROUNDS: usize = 64;

impl Shim {
    /// Applies what callouts did asynchronously, at this deterministic point of the data path's
    /// clock: pended operations completed (reauthorization, held packets released), flows
    /// aborted, and injections (run at their re-entry point). Call it after every packet and
    /// whenever a callout may have completed something; then drain [`Shim::poll_output`].
    pub fn handle_async(&mut self, now: Timestamp) {
        // Nothing queued since the last pass drained everything: no engine queue is locked
        // (`Engine::async_generation` is read before draining, so what is queued during or
        // after a pass bumps it past the value recorded).
        let generation = self.engine.async_generation();
        if self.asyncs.drained_at == Some(generation) && self.asyncs.is_idle() {
            return;
        }
        self.asyncs.drained_at = None;
        let ids = self.config.flow.ids;
        for _ in 0..MAX_ROUNDS {
            let mut any = self.apply_pend_events(now);
            any |= self.apply_stream_events();
            while let Some(req) = self
                .asyncs
                .stash
                .pop_front()
                .or_else(|| self.engine.poll_injection_where(|r| owns_injection(ids, r)))
            {
                any = true;
                self.run_injection(now, req);
            }
            // An injected FIN that replaced a withheld one may have closed its flow.
            self.drain_flow_events();
            if !any {
                self.asyncs.drained_at = Some(generation);
                break;
            }
        }
    }

    /// Takes the next packet produced by [`Shim::handle_async`].
    pub fn poll_output(&mut self) -> Option<ShimOutput> {
        self.asyncs.outputs.pop_front()
    }

    /// Runs one injection request at its re-entry point and completes it.
    fn run_injection(&mut self, now: Timestamp, req: InjectionRequest) {
        let kind = InjectKind::of(&req.kind);
        let ctx = PacketContext {
            injection: Some(Arc::clone(&req.provenance)),
            ifindex: match req.kind {
                InjectionKind::NetworkReceive { interface, .. }
                | InjectionKind::TransportReceive { interface, .. }
                | InjectionKind::Forward { interface, .. } => (interface != 0).then_some(interface),
                _ => None,
            },
            ..PacketContext::default()
        };
        let ran = match &req.kind {
            InjectionKind::NetworkReceive { .. } | InjectionKind::TransportReceive { .. } => {
                Some(self.reenter(now, PacketDirection::Inbound, req.data.to_vec(), &ctx))
            }
            InjectionKind::NetworkSend { .. } => {
                Some(self.reenter(now, PacketDirection::Outbound, req.data.to_vec(), &ctx))
            }
            InjectionKind::TransportSend {
                endpoint, params, ..
            } => {
                let remote = params.as_ref().and_then(|p| p.remote_address);
                self.transport_packet(*endpoint, remote, &req.data)
                    .map(|b| self.reenter(now, PacketDirection::Outbound, b, &ctx))
            }
            InjectionKind::Forward { .. } => Some((
                req.data.to_vec(),
                PacketVerdict::new(PacketDirection::Forward),
            )),
            InjectionKind::Stream {
                flow,
                flags,
                callout,
                ..
            } => match self.stream_out_of_band(*flow, *flags, *callout, &req.data, req.handle) {
                OutOfBand::Segment(bytes, v) => Some((bytes, *v)),
                OutOfBand::Nothing(id) => {
                    // §9.2: the injection went into the stream; nothing reached the wire.
                    self.withdraw_offload(id);
                    self.stats.injected_delivered += 1;
                    let _ = self
                        .engine
                        .complete_injection(req.id, InjectionOutcome::Delivered);
                    return;
                }
                OutOfBand::Failed => None,
            },
        };
        // An injection into an offloaded flow (from outside classifyFn, §10.4): its later packets
        // come back to the shim (a stream injection shifts sequence numbers, for one).
        let touched = match &req.kind {
            InjectionKind::Stream { flow, .. } => FlowId::from_handle(*flow),
            _ => ran.as_ref().and_then(|(_, v)| v.flow),
        };
        if let Some(id) = touched {
            self.withdraw_offload(id);
        }
        let callout = match req.kind {
            InjectionKind::Stream { callout, .. } => Some(callout),
            _ => None,
        };
        let outcome = match ran {
            Some((bytes, verdict)) => {
                let ok = verdict.verdict == Verdict::Permit || verdict.reason == Reason::Pended;
                self.asyncs.outputs.push_back(ShimOutput {
                    now,
                    bytes,
                    verdict,
                    origin: OutputOrigin::Injected {
                        injection: req.id,
                        handle: req.handle,
                        kind,
                        callout,
                        depth: req.provenance.depth(),
                    },
                });
                ok
            }
            None => false,
        };
        let status = if outcome {
            self.stats.injected_delivered += 1;
            InjectionOutcome::Delivered
        } else {
            self.stats.injected_dropped += 1;
            InjectionOutcome::Dropped(Status::FWP_DROP_NOICMP)
        };
        let _ = self.engine.complete_injection(req.id, status);
    }

    /// Classifies an injected packet from its re-entry point.
    fn reenter(
        &mut self,
        now: Timestamp,
        direction: PacketDirection,
        bytes: Vec<u8>,
        ctx: &PacketContext,
    ) -> (Vec<u8>, PacketVerdict) {
        let mut v = PacketVerdict::new(direction);
        self.handle_packet_into(now, direction, &bytes, ctx, &mut v);
        let bytes = v.edited.as_ref().map_or(bytes, |e| e.bytes.clone());
        (bytes, v)
    }

    /// The IP packet a transport send on `endpoint` (a flow handle) carries `transport` in.
    fn transport_packet(
        &self,
        endpoint: u64,
        remote: Option<std::net::IpAddr>,
        transport: &[u8],
    ) -> Option<Vec<u8>> {
        let id = FlowId::from_handle(endpoint)?;
        // The endpoint's flow, or one that ended and is in TIME_WAIT (its tombstone in the flow
        // table, FlowTimeouts::tcp_time_wait): its last segments re-sent late.
        let key = match self.extra.get(&id) {
            Some(e) => &e.key,
            None => self.flows.flow_by_id(id).filter(|f| f.is_ended())?.key(),
        };
        let dst = remote.unwrap_or(key.remote_addr());
        // §10.4 / wdk-runtime.md §7: a transport send's data starts at the transport header
        // (every layer it may come from indicates its list there), taken as it is.
        build::ip_packet(key.local_addr(), dst, key.protocol(), transport).ok()
    }

    /// An out-of-band stream injection into `flow` (§9.2): the stream filters after the
    /// injector's, then a new segment at the output stream's position.
    ///
    /// WFP sends nothing for an injection whose bytes the callouts below all held or blocked,
    /// unless it carries the disconnect: an injection with FWPS_STREAM_FLAG_*_DISCONNECT (an
    /// out-of-band editor re-injecting the FIN it blocked) puts a FIN on the wire, after the
    /// bytes that go with it, and the FIN takes one number of the side's sequence space.
    fn stream_out_of_band(
        &mut self,
        flow: u64,
        flags: StreamFlags,
        injector: CalloutId,
        data: &[u8],
        handle: InjectionHandle,
    ) -> OutOfBand {
        let Some(id) = FlowId::from_handle(flow) else {
            return OutOfBand::Failed;
        };
        let Some(e) = self.extra.get(&id) else {
            return OutOfBand::Failed;
        };
        let sending = if flags.contains(StreamFlags::RECEIVE) {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        let side = if sending == e.initiator {
            Side::Initiator
        } else {
            Side::Responder
        };
        let fin = flags.intersects(StreamFlags::SEND_DISCONNECT | StreamFlags::RECEIVE_DISCONNECT);
        let Some(delivered) = self.stream_below(id, side, injector, data, fin) else {
            return OutOfBand::Failed;
        };
        if delivered.is_empty() && !fin {
            return OutOfBand::Nothing(id);
        }
        match self.out_of_band_segment((id, side), &delivered, fin) {
            Some(bytes) => {
                let mut v = PacketVerdict::new(sending.into());
                v.flow = Some(id);
                v.edited = Some(super::EditedPacket {
                    bytes: bytes.clone(),
                    injectors: vec![handle],
                });
                OutOfBand::Segment(bytes, Box::new(v))
            }
            None => OutOfBand::Failed,
        }
    }

    /// The TCP segment carrying `payload` (and a FIN when `fin`) that flow `id`'s `side` sends
    /// next, built on the side's last segment, at its output position (which it moves on).
    fn out_of_band_segment(
        &mut self,
        (id, side): (FlowId, Side),
        payload: &[u8],
        fin: bool,
    ) -> Option<Vec<u8>> {
        let e = self.extra.get_mut(&id)?;
        let translation = self.config.seq_translation;
        let other = e.edit.get(side.other().index()).cloned();
        let ed = e.edit.get_mut(side.index())?;
        let template = ed.template.clone()?;
        // The segment acknowledges what the side last acknowledged (a pure ACK may have followed
        // the template), moved with the other side's edits as for an inline edit.
        let template_ack = tcp_ack(&template)?;
        let ack = if ed.acked && seq_after(ed.last_ack, template_ack) {
            ed.last_ack
        } else {
            template_ack
        };
        let ack_shift =
            i64::from(ack.wrapping_sub(template_ack)) + translation.ack_shift(other.as_ref(), ack);
        let seq = ed.out_next?;
        let orig_seq = tcp_seq(&template)?;
        let edit = TcpEdit {
            seq_shift: i64::from(seq.wrapping_sub(orig_seq)),
            ack_shift,
            payload: Some(payload),
        };
        let mut bytes = rewrite_tcp(&template, &edit, (other.as_ref(), translation)).ok()?;
        // The template may be the side's original FIN (blocked): the flag is the injection's.
        set_fin(&mut bytes, fin);
        let len = u32::try_from(payload.len()).unwrap_or(0);
        ed.out_next = Some(seq.wrapping_add(len).wrapping_add(u32::from(fin)));
        // The injected FIN takes the place of the one the callout withheld: both streams count
        // it from now on, and the flow table may close the side.
        let replaces = fin && ed.fin_withheld;
        if replaces {
            ed.orig_next = ed.orig_next.map(|n| n.wrapping_add(1));
            ed.fin_withheld = false;
        }
        ed.active = true;
        self.stats.edited += 1;
        if replaces {
            self.flows.withhold_fin(id, side, false);
        }
        Some(bytes)
    }
}

/// What an out-of-band stream injection put on the wire.
enum OutOfBand {
    /// A new segment of the flow.
    Segment(Vec<u8>, Box<PacketVerdict>),
    /// Nothing: the callouts below held or blocked every byte and there was no disconnect.
    Nothing(FlowId),
    /// The flow or its side is unknown, or the segment could not be built.
    Failed,
}

impl Shim {
    /// After the stream callouts decided a segment of flow `id`'s `side`: where the side's
    /// stream stands in the capture and in the output; a segment with inline injections is
    /// rewritten (`edited`).
    pub(super) fn advance_output(
        &mut self,
        pkt: &mut Packet<'_>,
        (id, side): (FlowId, Side),
        outcome: &StreamOutcome,
        edited: bool,
    ) {
        let Transport::Tcp(t) = &pkt.parsed.transport else {
            return;
        };
        let translation = self.config.seq_translation;
        let Some(e) = self.extra.get_mut(&id) else {
            return;
        };
        let other = e.edit.get(side.other().index()).cloned();
        let ack_shift = translation.ack_shift(other.as_ref(), t.ack);
        let Some(ed) = e.edit.get_mut(side.index()) else {
            return;
        };
        let shift = shift_of(ed);
        let len = u32::try_from(t.payload.len()).unwrap_or(0);
        let seq_out = t.seq.wrapping_add(shift as u32);
        let blocked = !edited && outcome.blocked > 0;
        let out_len = match (edited, blocked) {
            (true, _) => u32::try_from(outcome.delivered.len()).unwrap_or(0),
            (false, true) => 0,
            (false, false) => len,
        };
        // §9.2: a FIN takes one sequence number on either stream; one a callout blocked
        // (`fin_blocked`) is not sent: the segment goes on without it, and neither numbering
        // counts it until an injected FIN replaces it (`SideEdit::fin_withheld`).
        let fin_out = t.flags.fin() && !outcome.fin_blocked;
        let withheld = t.flags.fin() && outcome.fin_blocked;
        ed.fin_withheld |= withheld;
        ed.orig_next = Some(t.seq.wrapping_add(len).wrapping_add(u32::from(fin_out)));
        ed.out_next = Some(
            seq_out
                .wrapping_add(out_len)
                .wrapping_add(u32::from(fin_out)),
        );
        if shift_of(ed) != shift {
            ed.correction = Some((t.seq, shift));
        }
        if withheld {
            // The peer never gets this FIN: the flow does not close on its acknowledgement.
            self.flows.withhold_fin(id, side, true);
        } else if !edited {
            return;
        }
        ed.active = true;
        let edit = TcpEdit {
            seq_shift: shift,
            ack_shift,
            payload: edited.then_some(&outcome.delivered[..]),
        };
        if let Ok(mut bytes) = rewrite_tcp(pkt.bytes, &edit, (other.as_ref(), translation)) {
            set_fin(&mut bytes, fin_out);
            self.stats.edited += 1;
            pkt.verdict.edited = Some(EditedPacket {
                bytes,
                injectors: outcome.injectors.clone(),
            });
        }
    }

    /// A permitted TCP packet of a flow whose output stream an edit moved: its sequence number
    /// (its side moved) and acknowledgement number (the other side moved) are renumbered.
    pub(super) fn translate(&mut self, pkt: &mut Packet<'_>) {
        if pkt.verdict.verdict != Verdict::Permit || pkt.verdict.edited.is_some() {
            return;
        }
        let (Some(u), Some(at), Transport::Tcp(t)) = (pkt.update, pkt.extra, &pkt.parsed.transport)
        else {
            return;
        };
        let Some(e) = self.extra.at_mut(at) else {
            return;
        };
        // Only a side with a template (its stream callouts saw a segment) can have out-of-band
        // segments: other flows write nothing here.
        if let Some(s) = e.edit.get_mut(u.side.index()) {
            if t.flags.ack() && s.template.is_some() {
                s.last_ack = t.ack;
                s.acked = true;
            }
        }
        if !e.edit.iter().any(|s| s.active) {
            return;
        }
        let translation = self.config.seq_translation;
        let mine = e
            .edit
            .get(u.side.index())
            .filter(|s| s.active)
            .map_or(0, |s| translation.seq_shift(s, t.seq));
        let theirs = e.edit.get(u.side.other().index());
        let edit = TcpEdit {
            seq_shift: mine,
            ack_shift: translation.ack_shift(theirs, t.ack),
            payload: None,
        };
        // A retransmission of a FIN a callout blocked: still not sent (its number is where the
        // side's stream ends, `orig_next`).
        let len = u32::try_from(t.payload.len()).unwrap_or(0);
        let strip = t.flags.fin()
            && e.edit
                .get(u.side.index())
                .is_some_and(|s| s.fin_withheld && s.orig_next == Some(t.seq.wrapping_add(len)));
        if let Ok(mut bytes) = rewrite_tcp(pkt.bytes, &edit, (theirs, translation)) {
            if strip {
                set_fin(&mut bytes, false);
            }
            self.stats.edited += 1;
            pkt.verdict.edited = Some(EditedPacket {
                bytes,
                injectors: Vec::new(),
            });
        }
    }

    /// The bytes an out-of-band stream injection puts on the wire: the stream filters after the
    /// injector's (flow `id`'s `side`). `None` when the flow has no such side.
    fn stream_below(
        &mut self,
        id: FlowId,
        side: Side,
        injector: CalloutId,
        data: &[u8],
        fin: bool,
    ) -> Option<Vec<u8>> {
        let e = self.extra.get_mut(&id)?;
        let (layer, values, meta) = super::stream::connection_inputs(id, e);
        let sending = if side == Side::Initiator {
            e.initiator
        } else {
            e.initiator.reverse()
        };
        let call = StreamCall {
            engine: &self.engine,
            layer,
            values: &values,
            meta: &meta,
            flags: match sending {
                Direction::Outbound => StreamFlags::SEND,
                Direction::Inbound => StreamFlags::RECEIVE,
            },
            splice: None,
        };
        let out = e
            .stream
            .get_mut(side.index())?
            .push_injected(&call, data, injector, fin);
        self.stats.stream_bytes_blocked += out.blocked;
        Some(out.delivered)
    }
}

/// [`build::rewrite_tcp`], with the SACK blocks (RFC 2018, D-SACK included) moved like the
/// acknowledgement number: they name bytes of the same stream, the other side's (`theirs`).
fn rewrite_tcp(
    packet: &[u8],
    edit: &TcpEdit<'_>,
    (theirs, translation): (Option<&SideEdit>, SeqTranslation),
) -> Result<Vec<u8>, BuildError> {
    let mut out = build::rewrite_tcp(packet, edit)?;
    if theirs.is_some_and(|s| s.active) {
        shift_sack(&mut out, |edge| translation.ack_shift(theirs, edge));
    }
    Ok(out)
}

/// Moves every SACK block edge of a whole IPv4 / IPv6 TCP packet (as [`build::rewrite_tcp`]
/// builds it: no IPv6 extension headers) by `by(edge)`, then fixes the TCP checksum. Malformed
/// options end the walk (nothing after them is touched).
fn shift_sack(p: &mut [u8], by: impl Fn(u32) -> i64) {
    let Some((src, dst, ihl)) = addresses(p) else {
        return;
    };
    let Some(seg) = p.get_mut(ihl..) else {
        return;
    };
    let thl = usize::from(seg.get(12).copied().unwrap_or(0) >> 4) * 4;
    let mut at = 20;
    let mut moved = false;
    while at < thl {
        let kind = seg.get(at).copied().unwrap_or(0);
        match kind {
            0 => break,
            1 => at += 1,
            _ => {
                let len = usize::from(seg.get(at + 1).copied().unwrap_or(0));
                if len < 2 || at + len > thl {
                    break;
                }
                if kind == 5 {
                    for edge in (at + 2..at + len).step_by(4) {
                        if let Some(b) = seg.get_mut(edge..edge + 4) {
                            let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                            // Sequence space is modulo 2^32: truncating the shift is wanted.
                            let d = by(v);
                            b.copy_from_slice(&v.wrapping_add(d as u32).to_be_bytes());
                            moved |= d != 0;
                        }
                    }
                }
                at += len;
            }
        }
    }
    if moved {
        build::fix_transport_checksum(src, dst, 6, seg);
    }
}

/// Source, destination and IP header length of a whole IPv4 / IPv6 packet.
fn addresses(p: &[u8]) -> Option<(std::net::IpAddr, std::net::IpAddr, usize)> {
    match p.first()? >> 4 {
        4 => {
            let s: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            Some((s.into(), d.into(), usize::from(p.first()? & 0x0f) * 4))
        }
        6 => {
            let s: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            Some((s.into(), d.into(), 40))
        }
        _ => None,
    }
}

/// Sets or clears the FIN flag of a whole IPv4 / IPv6 TCP packet (as [`build::rewrite_tcp`]
/// builds it) and fixes the TCP checksum.
fn set_fin(p: &mut [u8], on: bool) {
    let Some((src, dst, ihl)) = addresses(p) else {
        return;
    };
    let Some(seg) = p.get_mut(ihl..) else {
        return;
    };
    let Some(flags) = seg.get_mut(13) else {
        return;
    };
    let was = *flags & 0x01 != 0;
    if was == on {
        return;
    }
    *flags ^= 0x01;
    build::fix_transport_checksum(src, dst, 6, seg);
}

/// Output minus capture numbering of a side (0 until both are known).
fn shift_of(s: &SideEdit) -> i64 {
    match (s.out_next, s.orig_next) {
        // The difference is taken modulo 2^32 and read as signed: edits move a stream by far
        // less than 2^31 bytes.
        (Some(o), Some(g)) => i64::from(o.wrapping_sub(g) as i32),
        _ => 0,
    }
}

/// The acknowledgement number of a whole TCP packet.
fn tcp_ack(p: &[u8]) -> Option<u32> {
    let ihl = match p.first()? >> 4 {
        4 => usize::from(p.first()? & 0x0f) * 4,
        6 => 40,
        _ => return None,
    };
    let s = p.get(ihl + 8..ihl + 12)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

/// The sequence number of a whole TCP packet.
fn tcp_seq(p: &[u8]) -> Option<u32> {
    let ihl = match p.first()? >> 4 {
        4 => usize::from(p.first()? & 0x0f) * 4,
        6 => 40,
        _ => return None,
    };
    let s = p.get(ihl + 4..ihl + 8)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

/// Several shims over one engine (one per queue) each run only the injections of their own
/// flows ([`InjectionRequest::flow`] in their [`IdShare`]); injections of no flow (packets a
/// callout allocated) go to the first shim.
pub(super) fn owns_injection(ids: crate::flow::IdShare, r: &InjectionRequest) -> bool {
    r.flow.map_or(ids.is_first(), |f| ids.contains(f))
}

#[cfg(test)]
mod tests {
    //! [`SeqTranslation::Inline`]: a live peer acknowledges the edited bytes.

    use std::sync::Arc;
    use std::time::Duration;

    use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
    use wfp_core::catalogue::layers;
    use wfp_core::inject::{AddressFamily, Inject, InjectionHandle, InjectionTypes};
    use wfp_core::{
        ActionType, Callout, CalloutFlags, CalloutRegistration, CalloutSpec, Engine, FilterSpec,
        Guid, RtFilter,
    };

    use super::*;
    use crate::pipeline::{PacketVerdict, ShimConfig};
    use crate::testutil::{self, Tcp, TCP, V4, V6};
    use crate::wire::TcpFlags;

    /// §9.2 inline editing: "foo" in the stream becomes "quux!" (2 bytes longer).
    struct Editor(InjectionHandle);

    impl Callout for Editor {
        fn classify(
            &self,
            ctx: &ClassifyContext<'_>,
            _values: &IncomingValues<'_>,
            meta: &Metadata,
            layer_data: &mut LayerData<'_>,
            _filter: &RtFilter,
            _flow_context: u64,
            out: &mut ClassifyOut,
        ) {
            let LayerData::Stream(io) = layer_data else {
                return;
            };
            let data = io.stream_data.data;
            out.action_type = ActionType::PERMIT;
            match data.windows(3).position(|w| w == b"foo") {
                Some(0) => {
                    let p = ctx.engine().allocate_packet(&b"quux!"[..]);
                    let flow = meta.flow().unwrap_or(0);
                    let _ = ctx.engine().inject(Inject {
                        handle: self.0,
                        context: 0,
                        kind: InjectionKind::Stream {
                            flow,
                            callout: ctx.callout_id(),
                            layer: ctx.layer(),
                            flags: io.stream_data.flags,
                        },
                        packet: p,
                        completion: None,
                    });
                    out.action_type = ActionType::BLOCK;
                    io.count_bytes_enforced = 3;
                }
                Some(i) => io.count_bytes_enforced = i as u64,
                None => io.count_bytes_enforced = data.len() as u64,
            }
        }
    }

    /// A shim with the editor at STREAM_V4/V6 translating as `mode`.
    fn shim(mode: SeqTranslation) -> Shim {
        let engine = Arc::new(Engine::default());
        let handle = engine
            .create_injection_handle(AddressFamily::Unspecified, InjectionTypes::STREAM)
            .expect("handle");
        for (n, layer) in [layers::STREAM_V4, layers::STREAM_V6]
            .into_iter()
            .enumerate()
        {
            let key = Guid::from_name("inject-test", &format!("editor{n}"));
            let editor: Arc<dyn Callout> = Arc::new(Editor(handle));
            engine
                .register_callout(CalloutRegistration::new(
                    key,
                    CalloutFlags::default(),
                    editor,
                ))
                .expect("register");
            engine
                .add_callout(CalloutSpec {
                    key,
                    name: format!("editor{n}"),
                    description: String::new(),
                    flags: 0,
                    provider: None,
                    applicable_layer: layer,
                })
                .expect("callout");
            let mut f = FilterSpec::new("edit", layer, ActionType::CALLOUT_TERMINATING);
            f.callout = Some(key);
            engine.add_filter(f).expect("filter");
        }
        Shim::new(
            engine,
            ShimConfig {
                seq_translation: mode,
                ..ShimConfig::default()
            },
        )
    }

    /// Feeds packets with a clock that advances 1 ms per packet.
    struct Conv {
        shim: Shim,
        now: Timestamp,
        ip: testutil::Ip,
    }

    impl Conv {
        fn out(&mut self, flags: TcpFlags, seq: u32, ack: u32, data: &[u8]) -> PacketVerdict {
            let t = Tcp {
                flags,
                seq,
                ack,
                ..TCP
            };
            self.packet(
                PacketDirection::Outbound,
                &testutil::tcp_packet(&self.ip, &t, data),
            )
        }

        fn back(&mut self, flags: TcpFlags, seq: u32, ack: u32, data: &[u8]) -> PacketVerdict {
            let t = Tcp {
                sport: TCP.dport,
                dport: TCP.sport,
                flags,
                seq,
                ack,
                ..TCP
            };
            let ip = self.ip.reply();
            self.packet(
                PacketDirection::Inbound,
                &testutil::tcp_packet(&ip, &t, data),
            )
        }

        fn packet(&mut self, dir: PacketDirection, bytes: &[u8]) -> PacketVerdict {
            self.now = self.now + Duration::from_millis(1);
            self.shim
                .handle_packet(self.now, dir, bytes, &PacketContext::default())
        }
    }

    /// (seq, ack, payload) of a whole TCP packet.
    fn fields(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let p = crate::wire::parse(bytes).expect("valid packet, checksums included");
        let Transport::Tcp(t) = &p.transport else {
            panic!("not TCP")
        };
        (t.seq, t.ack, bytes[t.payload.clone()].to_vec())
    }

    /// Client 1000/1001…, server 5000/5001…: handshake, then "abcfoodef" edited to
    /// "abcquux!def" (+2), then what each side's later packets become.
    fn conversation(mode: SeqTranslation, ip: testutil::Ip) -> [(u32, u32, Vec<u8>); 3] {
        let mut c = Conv {
            shim: shim(mode),
            now: Timestamp::from_secs(1000),
            ip,
        };
        let syn_ack = TcpFlags::SYN.union(TcpFlags::ACK);
        assert_eq!(c.out(TcpFlags::SYN, 1000, 0, b"").verdict, Verdict::Permit);
        assert_eq!(c.back(syn_ack, 5000, 1001, b"").verdict, Verdict::Permit);
        assert_eq!(
            c.out(TcpFlags::ACK, 1001, 5001, b"").verdict,
            Verdict::Permit
        );
        let edited = c.out(TcpFlags::ACK, 1001, 5001, b"abcfoodef");
        let edited = edited.edited.expect("edited segment");
        // The client's next segment moves by +2 in both modes.
        let next = c
            .out(TcpFlags::ACK, 1010, 5001, b"zz")
            .edited
            .expect("moved");
        // The server acknowledges: in a capture the original 11 bytes (1012 = 1001 + 9 + 2 in
        // the capture's numbering of "abcfoodef" + "zz"), live the 13 output bytes (1014).
        let server_ack = match mode {
            SeqTranslation::Replay => 1012,
            SeqTranslation::Inline => 1014,
        };
        let ack = c.back(TcpFlags::ACK, 5001, server_ack, b"ok");
        let ack = ack.edited.expect("ack translated");
        [
            fields(&edited.bytes),
            fields(&next.bytes),
            fields(&ack.bytes),
        ]
    }

    #[test]
    fn inline_mode_moves_the_peers_acknowledgements_back_by_the_edit() {
        for ip in [V4, V6] {
            let [edited, next, ack] = conversation(SeqTranslation::Inline, ip);
            assert_eq!(edited, (1001, 5001, b"abcquux!def".to_vec()), "{ip:?}");
            assert_eq!(next, (1012, 5001, b"zz".to_vec()), "{ip:?}");
            // The live server acknowledged 1014 (output numbering): the client's stack sent up
            // to 1012 in its own numbering, so the acknowledgement it gets is 1014 - 2.
            assert_eq!(ack, (5001, 1012, b"ok".to_vec()), "{ip:?}");
        }
    }

    /// Inline, an acknowledgement of bytes before the edit that arrives after the edited segment
    /// keeps the shift those bytes had (0), as the kernel's `correction_pos` / `offset_before`
    /// do; one past the edit gets the new shift.
    #[test]
    fn acknowledgements_before_the_edit_point_keep_the_earlier_shift() {
        for mode in [SeqTranslation::Inline, SeqTranslation::Replay] {
            let mut c = Conv {
                shim: shim(mode),
                now: Timestamp::from_secs(1000),
                ip: V4,
            };
            let syn_ack = TcpFlags::SYN.union(TcpFlags::ACK);
            c.out(TcpFlags::SYN, 1000, 0, b"");
            c.back(syn_ack, 5000, 1001, b"");
            c.out(TcpFlags::ACK, 1001, 5001, b"");
            assert!(c.out(TcpFlags::ACK, 1001, 5001, b"abc").edited.is_none());
            let e = c
                .out(TcpFlags::ACK, 1004, 5001, b"foodef")
                .edited
                .expect("edited");
            assert_eq!(fields(&e.bytes), (1004, 5001, b"quux!def".to_vec()));
            // The late acknowledgement of "abc" (1004 in both numberings). A replay moves every
            // acknowledgement by the current shift (what the replay's own tests pin).
            let late = c.back(TcpFlags::ACK, 5001, 1004, b"");
            let late = late.edited.map_or(1004, |e| fields(&e.bytes).1);
            let before = match mode {
                SeqTranslation::Inline => 1004,
                SeqTranslation::Replay => 1006,
            };
            assert_eq!(late, before, "{mode:?}: bytes before the edit");
            // The acknowledgement of everything: 1010 originally, 1012 in the output.
            let (sent, want) = match mode {
                SeqTranslation::Inline => (1012, 1010),
                SeqTranslation::Replay => (1010, 1012),
            };
            let all = c
                .back(TcpFlags::ACK, 5001, sent, b"")
                .edited
                .expect("moved");
            assert_eq!(fields(&all.bytes).1, want, "{mode:?}");
        }
    }

    /// RFC 2018 SACK option after two NOPs: one block [1016, 1020).
    const SACK: [u8; 12] = [1, 1, 5, 10, 0, 0, 0x03, 0xf8, 0, 0, 0x03, 0xfc];

    #[test]
    fn inline_mode_moves_sack_blocks_with_the_acknowledgement_and_fixes_the_checksum() {
        for ip in [V4, V6] {
            let mut c = Conv {
                shim: shim(SeqTranslation::Inline),
                now: Timestamp::from_secs(1000),
                ip,
            };
            let syn_ack = TcpFlags::SYN.union(TcpFlags::ACK);
            c.out(TcpFlags::SYN, 1000, 0, b"");
            c.back(syn_ack, 5000, 1001, b"");
            c.out(TcpFlags::ACK, 1001, 5001, b"");
            assert!(c
                .out(TcpFlags::ACK, 1001, 5001, b"abcfoodef")
                .edited
                .is_some());
            // The live server acknowledges 1014 and selectively 1016..1020 (output numbering).
            let t = Tcp {
                sport: TCP.dport,
                dport: TCP.sport,
                flags: TcpFlags::ACK,
                seq: 5001,
                ack: 1014,
                options: &SACK,
                ..TCP
            };
            let packet = testutil::tcp_packet(&ip.reply(), &t, b"");
            let v = c.packet(PacketDirection::Inbound, &packet);
            let out = v.edited.expect("translated").bytes;
            assert_eq!(fields(&out).1, 1012, "{ip:?}");
            let (src, dst, ihl) = addresses(&out).expect("ip");
            let seg = &out[ihl..];
            assert_eq!(&seg[20..24], &[1, 1, 5, 10]);
            let edges: Vec<u32> = seg[24..32]
                .chunks(4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(edges, [1014, 1018], "{ip:?}: SACK edges moved back by 2");
            let mut again = seg.to_vec();
            build::fix_transport_checksum(src, dst, 6, &mut again);
            assert_eq!(again, seg, "{ip:?}: the TCP checksum is valid");
        }
    }

    #[test]
    fn replay_mode_moves_the_captured_acknowledgements_forward() {
        let [edited, next, ack] = conversation(SeqTranslation::Replay, V4);
        assert_eq!(edited.2, b"abcquux!def".to_vec());
        assert_eq!(next.0, 1012);
        assert_eq!(ack.1, 1014, "captured ack 1012 + 2");
    }
}
