//! Stream stage: STREAM_V4/V6 (wfp-reference §9, §8.2 the STREAM row; brief decisions 8–9).
//!
//! A TCP segment's payload goes through the direction's reassembler ([`crate::reasm`]); the
//! in-order bytes it makes available are pushed through the stream callouts' waterfall
//! ([`crate::stream`]) with SEND or RECEIVE. Spans a capture cut are reported as missed bytes;
//! an overlap with different bytes blocks the segment (first copy wins); blocked bytes block the
//! segment; DROP_CONNECTION ends the flow. At flow end, every callout still holding data gets its
//! NO_MORE_DATA indication (ABORT flags after a RST, §9.1); `FwpsStreamContinue0` resumes deferred
//! inbound data ([`Shim::stream_continue`]).

use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::ControlFlow::{self, Break, Continue};

use wfp_core::callout::Metadata;
use wfp_core::catalogue::layers;
use wfp_core::constants::StreamFlags;
use wfp_core::{ActionType, CalloutId, Hardness, LayerId, Value};

use super::flows::{connection_direction, flow_facts, flow_meta, FlowExtra};
use super::packet::Packet;
use super::{LayerVisit, Reason, Shim};
use crate::flow::{Direction, EndReason, FlowId, Side};
use crate::reasm::{ReasmConfig, Segment, StreamReassembler};
use crate::stream::{StreamCall, StreamDirection, StreamOutcome};
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
    pub(super) fn stream(&mut self, pkt: &mut Packet<'_>, t: &TcpInfo) -> ControlFlow<()> {
        let Some(u) = pkt.update else {
            return Continue(());
        };
        let id = u.handle.id();
        let layer = if pkt.v6() {
            layers::STREAM_V6
        } else {
            layers::STREAM_V4
        };
        let skip_unfiltered = !self.config.trace && !self.has_filters(layer);
        let Some(e) = self.extra.get_mut(&id) else {
            return Continue(());
        };
        let i = u.side.index();
        let payload = pkt.bytes.get(t.payload.clone()).unwrap_or(&[]);
        let Ok(bytes) = reassemble(e, i, t, payload, self.config.reasm) else {
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
        let call = StreamCall {
            engine: &self.engine,
            layer,
            values: &values,
            meta: &pkt.meta,
            flags: match pkt.dir {
                Direction::Outbound => StreamFlags::SEND,
                Direction::Inbound => StreamFlags::RECEIVE,
            },
        };
        let outcome = indicate(&mut e.stream[i], &call, bytes);
        self.scratch = values;
        match outcome {
            Some(outcome) => self.stream_verdict(pkt, id, layer, outcome),
            // Only missed bytes: nothing was indicated (the next indication reports them).
            None => Continue(()),
        }
    }

    /// The STREAM visit of a segment whose bytes were indicated, with what the callouts decided.
    fn stream_verdict(
        &mut self,
        pkt: &mut Packet<'_>,
        id: FlowId,
        layer: LayerId,
        outcome: StreamOutcome,
    ) -> ControlFlow<()> {
        let blocked = outcome.drop_connection || outcome.blocked > 0;
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
        if outcome.blocked > 0 {
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
        };
        let out = e.stream[side.index()].push(&call, &[], false);
        self.stats.stream_bytes_blocked += out.blocked;
        true
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
            // A reset connection's last indication carries the ABORT flag (§9.1).
            let flags = match (sending, reason) {
                (Direction::Outbound, EndReason::Rst) => {
                    StreamFlags::SEND | StreamFlags::SEND_ABORT
                }
                (Direction::Inbound, EndReason::Rst) => {
                    StreamFlags::RECEIVE | StreamFlags::RECEIVE_ABORT
                }
                (Direction::Outbound, _) => StreamFlags::SEND,
                (Direction::Inbound, _) => StreamFlags::RECEIVE,
            };
            let s = &mut e.stream[side.index()];
            if s.holds_data() {
                let call = StreamCall {
                    engine: &self.engine,
                    layer,
                    values: &values,
                    meta: &meta,
                    flags,
                };
                let outcome = s.push(&call, &[], true);
                self.stats.stream_bytes_blocked += outcome.blocked;
            }
        }
    }
}

#[inline]
/// Pushes segment `t` (its captured `payload`) into side `i`'s reassembler of flow `e` (created
/// on the side's first segment), then skips the spans a capture cut that the stream has reached.
fn reassemble<'p>(
    e: &mut FlowExtra,
    i: usize,
    t: &TcpInfo,
    payload: &'p [u8],
    config: ReasmConfig,
) -> Result<InOrder<'p>, Overlap> {
    let Some(slot) = e.reasm.get_mut(i) else {
        return Ok(InOrder::default());
    };
    let r = slot.get_or_insert_with(|| {
        if t.flags.syn() {
            StreamReassembler::after_syn(t.seq, config)
        } else {
            StreamReassembler::new(t.seq, config)
        }
    });
    // Bytes the capture cut (the segment is longer on the wire than its payload here).
    let cut = u32::try_from(t.wire_payload_len.saturating_sub(payload.len())).unwrap_or(0);
    let out = r.push(Segment {
        seq: t.seq,
        payload,
        syn: t.flags.syn(),
        fin: t.flags.fin(),
        rst: t.flags.rst(),
        cut,
    });
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
fn connection_inputs(id: FlowId, e: &FlowExtra) -> (LayerId, Vec<Value>, Metadata) {
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
