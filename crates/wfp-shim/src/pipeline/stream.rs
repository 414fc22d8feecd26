//! Stream stage: STREAM_V4/V6 (wfp-reference §9, §8.2 the STREAM row; brief decisions 8–9).
//!
//! A TCP segment's payload goes through the direction's reassembler ([`crate::reasm`]); the
//! in-order bytes it makes available are pushed through the stream callouts' waterfall
//! ([`crate::stream`]) with SEND or RECEIVE. Spans a capture cut are reported as missed bytes;
//! an overlap with different bytes blocks the segment (first copy wins); blocked bytes block the
//! segment; DROP_CONNECTION ends the flow. At flow end, every callout still holding data gets its
//! NO_MORE_DATA indication (ABORT flags after a RST or on a side whose FIN a callout withheld,
//! §9.1; see `inject.rs` `SideEdit::fin_withheld`); `FwpsStreamContinue0` resumes deferred
//! inbound data ([`Shim::stream_continue`]).

use std::borrow::Cow;
use std::cell::RefCell;
use std::net::IpAddr;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;

use wfp_core::callout::Metadata;
use wfp_core::catalogue::layers;
use wfp_core::constants::StreamFlags;
use wfp_core::inject::{InjectionKind, InjectionOutcome, InjectionRequest};
use wfp_core::stream::StreamEvent;
use wfp_core::{ActionType, CalloutId, Engine, Hardness, LayerId, Value};

use super::flows::{connection_direction, flow_facts, flow_meta, EarlySegment, FlowExtra};
use super::packet::Packet;
use super::slab::ExtraRef;
use super::{LayerVisit, Reason, Shim};
use crate::flow::{Direction, EndReason, FlowId, Side};
use crate::reasm::{ReasmConfig, Segment, StreamReassembler};
use crate::stream::{Spliced, StreamCall, StreamDirection, StreamOutcome};
use crate::values::fill;
use crate::wire::TcpInfo;

/// The in-order bytes one segment makes available to the stream layer.
#[derive(Default)]
struct InOrder<'p> {
    /// The bytes the segment delivered (borrowed from the packet when it filled the next gap).
    delivered: Option<Cow<'p, [u8]>>,
    /// After each span the capture cut (its length, skipped as missed bytes), the bytes buffered
    /// behind it. Empty unless a capture cut bytes.
    later: Vec<(u64, Vec<u8>)>,
    /// The direction's FIN was reached.
    fin: bool,
}

impl InOrder<'_> {
    /// Nothing to indicate: no bytes, no cut span, no FIN.
    fn is_empty(&self) -> bool {
        self.delivered.as_ref().is_none_or(|d| d.is_empty()) && self.later.is_empty() && !self.fin
    }
}

/// The segment carried different bytes than the first copy of a stream range.
struct Overlap;

impl Shim {
    /// STREAM for a TCP segment `t` of a tracked flow. `Break` when stream filters blocked bytes,
    /// dropped the connection, or the segment overlapped with different bytes.
    ///
    /// Bytes sent before the connection is established (TCP Fast Open data on a SYN or SYN-ACK,
    /// a server's early data) are held and indicated in order, before this segment's, by the
    /// first segment after ALE_FLOW_ESTABLISHED (so a callout that attaches there sees them). A
    /// connection that never establishes (refused, reset) never indicates them.
    pub(super) fn stream(&mut self, pkt: &mut Packet<'_>, t: &TcpInfo) -> ControlFlow<()> {
        let (Some(u), Some(at)) = (pkt.update, pkt.extra) else {
            return Continue(());
        };
        let payload = pkt.bytes.get(t.payload.clone()).unwrap_or(&[]);
        // Bytes the capture cut (the segment is longer on the wire than its payload here).
        let cut = u32::try_from(t.wire_payload_len.saturating_sub(payload.len())).unwrap_or(0);
        let seg = Segment {
            seq: t.seq,
            payload,
            syn: t.flags.syn(),
            fin: t.flags.fin(),
            rst: t.flags.rst(),
            cut,
        };
        let Some(e) = self.extra.at_mut(at) else {
            return Continue(());
        };
        if !e.established {
            self.stats.early_bytes += hold(e, u.side, seg, self.config.reasm);
            return Continue(());
        }
        if !e.early.is_empty() {
            self.release_early(pkt, at)?;
        }
        self.stream_segment(pkt, at, u.side, seg)
    }

    /// Indicates the segments held before the connection was established, in arrival order.
    fn release_early(&mut self, pkt: &mut Packet<'_>, at: ExtraRef) -> ControlFlow<()> {
        let early = match self.extra.at_mut(at) {
            Some(e) => std::mem::take(&mut e.early),
            None => return Continue(()),
        };
        for s in &early {
            let seg = Segment {
                seq: s.seq,
                payload: &s.payload,
                syn: s.syn,
                fin: s.fin,
                rst: false,
                cut: s.cut,
            };
            self.stream_segment(pkt, at, s.side, seg)?;
        }
        Continue(())
    }

    /// One segment `seg` sent by `side` of the flow at `at` through reassembly and the stream
    /// callouts.
    fn stream_segment(
        &mut self,
        pkt: &mut Packet<'_>,
        at: ExtraRef,
        side: Side,
        seg: Segment<'_>,
    ) -> ControlFlow<()> {
        let layer = if pkt.v6() {
            layers::STREAM_V6
        } else {
            layers::STREAM_V4
        };
        let skip_unfiltered = !self.config.trace && !self.has_filters(layer);
        let id = at.id();
        let Some(e) = self.extra.at_mut(at) else {
            return Continue(());
        };
        let i = side.index();
        let Ok(bytes) = reassemble(e, i, seg, self.config.reasm) else {
            self.stats.stream_overlaps += 1;
            pkt.verdict.block(Reason::StreamOverlap);
            return Break(());
        };
        self.stats.stream_bytes_missed += bytes.later.iter().map(|(m, _)| m).sum::<u64>();
        if bytes.is_empty() {
            return Continue(());
        }
        // No stream filters and nothing held: the bytes pass untouched (no copy).
        if skip_unfiltered && !e.stream[i].holds_data() {
            for (missed, _) in &bytes.later {
                e.stream[i].missed(*missed);
            }
            return Continue(());
        }
        let mut facts = pkt.transport.clone();
        facts.direction = Some(connection_direction(e.initiator));
        let mut values = std::mem::take(&mut self.scratch);
        fill(layer, &facts, &mut values);
        let sending = if side == Side::Initiator {
            e.initiator
        } else {
            e.initiator.reverse()
        };
        let stash = RefCell::new(Vec::new());
        let engine = &self.engine;
        let take = |c: CalloutId| splice(engine, id, c, &stash);
        let call = StreamCall {
            engine,
            layer,
            values: &values,
            meta: pkt.meta.get(),
            flags: match sending {
                Direction::Outbound => StreamFlags::SEND,
                Direction::Inbound => StreamFlags::RECEIVE,
            },
            splice: Some(&take),
        };
        let template = Arc::<[u8]>::from(pkt.bytes);
        e.edit[i].template = Some(template);
        let outcome = indicate(&mut e.stream[i], &call, bytes);
        self.scratch = values;
        self.asyncs.stash.extend(stash.into_inner());
        match outcome {
            Some(outcome) => self.stream_verdict(pkt, (id, side), layer, outcome),
            // Only missed bytes: nothing was indicated (the next indication reports them).
            None => Continue(()),
        }
    }

    /// The STREAM visit of a segment whose bytes were indicated, with what the callouts decided.
    /// A segment into which a callout injected bytes inline is rewritten with the bytes that
    /// went on (the permitted ones and the injected ones, in order): a PERMIT with
    /// [`super::PacketVerdict::edited`].
    fn stream_verdict(
        &mut self,
        pkt: &mut Packet<'_>,
        (id, side): (FlowId, Side),
        layer: LayerId,
        outcome: StreamOutcome,
    ) -> ControlFlow<()> {
        let edited = !outcome.injectors.is_empty() && !outcome.drop_connection;
        let blocked = !edited && (outcome.drop_connection || outcome.blocked > 0);
        let action = if blocked {
            ActionType::BLOCK
        } else {
            ActionType::PERMIT
        };
        let visit = LayerVisit::plain(layer, action, Hardness::Hard, outcome.deciding_filter);
        let _ = self.record(visit, false, pkt.verdict);
        self.stats.stream_bytes_blocked += outcome.blocked;
        if outcome.drop_connection {
            self.stats.connections_dropped += 1;
            pkt.verdict.reason = Reason::ConnectionDropped;
            if let Some(e) = self.extra.get_mut(&id) {
                e.dropped = true;
                let key = e.key;
                let filter = outcome.deciding_filter;
                self.remember_ended(key, Reason::ConnectionDropped, layer, filter);
            }
            self.end_flow_now(id);
            return Break(());
        }
        self.advance_output(pkt, (id, side), &outcome, edited);
        if blocked {
            pkt.verdict.reason = Reason::StreamBlocked;
            return Break(());
        }
        Continue(())
    }

    /// `FwpsStreamContinue0(flow, callout, STREAM, RECEIVE)`: resumes inbound stream data that
    /// `callout` deferred (FWPS_STREAM_ACTION_DEFER) and indicates the held bytes again. Returns
    /// false when the flow is unknown or the callout had not deferred it. Must not be called from
    /// inside a classifyFn (§9.2).
    pub fn stream_continue(&mut self, flow: FlowId, callout: CalloutId) -> bool {
        let Some(e) = self.extra.get_mut(&flow) else {
            return false;
        };
        let side = if e.initiator == Direction::Inbound {
            Side::Initiator
        } else {
            Side::Responder
        };
        if !e.stream[side.index()].resume(callout) {
            return false;
        }
        let (layer, values, meta) = connection_inputs(flow, e);
        let call = StreamCall {
            engine: &self.engine,
            layer,
            values: &values,
            meta: &meta,
            flags: StreamFlags::RECEIVE,
            splice: None,
        };
        let out = e.stream[side.index()].push(&call, &[], false);
        self.stats.stream_bytes_blocked += out.blocked;
        true
    }

    /// Applies the engine's stream events (§9.2, T-ST-7): a callout's `Engine::stream_continue`
    /// resumes the inbound data it deferred ([`Shim::stream_continue`]); a deferral needs nothing
    /// more (the stream already holds the bytes). True when there was an event.
    pub(super) fn apply_stream_events(&mut self) -> bool {
        let mut any = false;
        let ids = self.config.flow.ids;
        let mine = |e: &StreamEvent| match e {
            StreamEvent::Deferred { flow, .. } | StreamEvent::Continued { flow, .. } => {
                ids.contains(*flow)
            }
            _ => ids.is_first(),
        };
        while let Some(e) = self.engine.poll_stream_event_where(mine) {
            any = true;
            if let StreamEvent::Continued { flow, callout, .. } = e {
                if let Some(id) = FlowId::from_handle(flow) {
                    self.withdraw_offload(id);
                    self.stream_continue(id, callout);
                }
            }
        }
        any
    }

    /// Gives every stream callout still holding data its NO_MORE_DATA indication (§9.2) before the
    /// flow's contexts go away.
    pub(super) fn finish_streams(&mut self, id: FlowId, e: &mut FlowExtra, reason: EndReason) {
        if e.key.protocol() != 6 || e.dropped {
            return;
        }
        let (layer, values, meta) = connection_inputs(id, e);
        for side in [Side::Initiator, Side::Responder] {
            let sending = if side == Side::Initiator {
                e.initiator
            } else {
                e.initiator.reverse()
            };
            // A reset connection's last indication carries the ABORT flag (§9.1), and so does
            // that of a side whose FIN a callout withheld for good: the callouts below it never
            // got the disconnect, the side ends without one (docs/semantics.md "Stream end").
            let abort = reason == EndReason::Rst
                || e.edit.get(side.index()).is_some_and(|s| s.fin_withheld);
            let flags = match (sending, abort) {
                (Direction::Outbound, true) => StreamFlags::SEND | StreamFlags::SEND_ABORT,
                (Direction::Inbound, true) => StreamFlags::RECEIVE | StreamFlags::RECEIVE_ABORT,
                (Direction::Outbound, false) => StreamFlags::SEND,
                (Direction::Inbound, false) => StreamFlags::RECEIVE,
            };
            let s = &mut e.stream[side.index()];
            if s.holds_data() {
                let call = StreamCall {
                    engine: &self.engine,
                    layer,
                    values: &values,
                    meta: &meta,
                    flags,
                    splice: None,
                };
                let outcome = s.push(&call, &[], true);
                self.stats.stream_bytes_blocked += outcome.blocked;
            }
        }
    }
}

/// Most bytes held per connection before it is established (TCP Fast Open carries at most one
/// segment each way); bytes beyond are not held and the stream waits behind them as for a lost
/// segment.
const MAX_EARLY_BYTES: usize = 64 << 10;

/// Holds segment `seg` sent by `side` of a connection not established yet (its SYN fixes where
/// the side's stream starts); returns the payload bytes held. A RST's payload is never held.
fn hold(e: &mut FlowExtra, side: Side, seg: Segment<'_>, config: ReasmConfig) -> u64 {
    if seg.syn {
        if let Some(slot) = e.reasm.get_mut(side.index()) {
            slot.get_or_insert_with(|| Box::new(StreamReassembler::after_syn(seg.seq, config)));
        }
    }
    if seg.rst || (seg.payload.is_empty() && !seg.fin && seg.cut == 0) {
        return 0;
    }
    let held: usize = e.early.iter().map(|s| s.payload.len()).sum();
    if held + seg.payload.len() > MAX_EARLY_BYTES {
        return 0;
    }
    e.early.push(EarlySegment {
        side,
        seq: seg.seq,
        syn: seg.syn,
        fin: seg.fin,
        cut: seg.cut,
        payload: seg.payload.to_vec(),
    });
    seg.payload.len() as u64
}

#[inline]
/// Pushes segment `seg` into side `i`'s reassembler of flow `e` (created on the side's first
/// segment), then skips the spans a capture cut that the stream has reached.
fn reassemble<'p>(
    e: &mut FlowExtra,
    i: usize,
    seg: Segment<'p>,
    config: ReasmConfig,
) -> Result<InOrder<'p>, Overlap> {
    let Some(slot) = e.reasm.get_mut(i) else {
        return Ok(InOrder::default());
    };
    let r = slot.get_or_insert_with(|| {
        Box::new(if seg.syn {
            StreamReassembler::after_syn(seg.seq, config)
        } else {
            StreamReassembler::new(seg.seq, config)
        })
    });
    let out = r.push(seg);
    if out.anomaly.is_some() {
        return Err(Overlap);
    }
    let mut bytes = InOrder {
        delivered: out.delivered.map(|d| d.data),
        later: Vec::new(),
        fin: out.finished,
    };
    // Cut spans the stream has reached are skipped as missed bytes (the stream goes on after
    // them), each followed by the bytes buffered behind it. Empty unless a capture cut bytes.
    while let Some(skip) = r.skip_missing() {
        bytes.fin |= skip.finished;
        let data = skip.delivered.map(|d| d.data.into_owned());
        bytes.later.push((skip.missed, data.unwrap_or_default()));
    }
    Ok(bytes)
}

/// Indicates `bytes` to the stream callouts of one direction `s`: the captured bytes, then after
/// each cut span the bytes buffered behind it; a piece with no bytes is indicated only when it
/// carries the FIN. `None` when nothing was indicated (only missed bytes).
fn indicate(
    s: &mut StreamDirection,
    call: &StreamCall<'_>,
    bytes: InOrder<'_>,
) -> Option<StreamOutcome> {
    let InOrder {
        delivered,
        later,
        fin,
    } = bytes;
    let pieces = 1 + later.len();
    let later = later.into_iter().map(|(m, d)| (m, Cow::Owned(d)));
    let mut outcome = StreamOutcome::default();
    let mut pushed = false;
    for (n, (missed, data)) in std::iter::once((0, delivered.unwrap_or_default()))
        .chain(later)
        .enumerate()
    {
        if outcome.drop_connection {
            break;
        }
        if missed > 0 {
            s.missed(missed);
        }
        let last = n + 1 == pieces;
        if data.is_empty() && !(fin && last) {
            continue;
        }
        outcome.append(s.push(call, &data, fin && last));
        pushed = true;
    }
    pushed.then_some(outcome)
}

/// The STREAM layer, its incoming values and metadata for flow `id` (`e`) outside a packet
/// (stream continuation, flow end): oriented by the connection, with the flow handle.
pub(super) fn connection_inputs(id: FlowId, e: &FlowExtra) -> (LayerId, Vec<Value>, Metadata) {
    let layer = if matches!(e.key.local_addr(), IpAddr::V6(_)) {
        layers::STREAM_V6
    } else {
        layers::STREAM_V4
    };
    let mut values = Vec::new();
    fill(
        layer,
        &flow_facts(&e.key, e.initiator, &e.owner),
        &mut values,
    );
    (layer, values, flow_meta(id))
}

/// The stream injections callout `c` made into flow `id` during its classifyFn (inline, §9.2):
/// completed as delivered now (they go into the segment). Other injection requests taken on the
/// way wait in `stash` for [`Shim::handle_async`].
fn splice(
    engine: &Engine,
    id: FlowId,
    c: CalloutId,
    stash: &RefCell<Vec<InjectionRequest>>,
) -> Spliced {
    let mut out = Vec::new();
    // Only this flow's injections by `c`: others (other flows, other shims') stay queued.
    let this = |r: &InjectionRequest| matches!(r.kind, InjectionKind::Stream { flow, callout, .. } if flow == id.get() && callout == c);
    while let Some(req) = engine.poll_injection_where(this) {
        match req.kind {
            InjectionKind::Stream { flow, callout, .. } if flow == id.get() && callout == c => {
                let _ = engine.complete_injection(req.id, InjectionOutcome::Delivered);
                out.push((req.data, req.handle));
            }
            _ => stash.borrow_mut().push(req),
        }
    }
    out
}
