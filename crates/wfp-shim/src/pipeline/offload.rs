//! Flow offload: whether any later packet of a flow, in one direction, could get a different
//! answer than this one (issue 16, `docs/offload.md`). When none could, a data path may let the
//! kernel carry that direction's packets without asking (until the policy changes).
//!
//! The answer for a permitted packet of an authorized, established flow, per direction:
//!
//! ```text
//!  layers a later packet of this direction passes (the ALE layers are cached, §8.2 "ALE stateful
//!  model"; FLOW_ESTABLISHED was classified once):
//!    inbound:  INBOUND_IPPACKET → INBOUND_TRANSPORT → STREAM (TCP) | DATAGRAM_DATA (others)
//!    outbound: STREAM | DATAGRAM_DATA → OUTBOUND_TRANSPORT → OUTBOUND_IPPACKET
//!  each must be one of:
//!    * empty (NONE_NO_MATCH whatever the values, with the PERMIT no-match default)
//!    * static filters only, reading no per-packet field (FLAGS, the interface fields) — their
//!      answer is a function of the flow's 5-tuple, owner and direction, the same for every packet
//!    * STREAM: every matching filter a static PERMIT or a callout that returned
//!      FWPS_STREAM_ACTION_ALLOW_CONNECTION for this direction (§9.2: "the callout is not
//!      called again for the flow"), and no callout holding data
//!  and the flow: not pended (§10.1), not injected (§10.4), no stream edit shifting its sequence
//!  numbers, not a fragment, loopback counted once (a capture) excluded.
//! ```
//!
//! A callout at a packet or stream layer that has not allowed the connection wants every packet
//! (that is also how a flow context at such a layer is seen: its callout is invoked through a
//! filter there, §6.2 CONDITIONAL_ON_FLOW). Contexts at the ALE layers do not want packets: their
//! flowDeleteFn still runs once, when the data path reports the flow's end
//! ([`Shim::end_offloaded`]).
//!
//! The answer holds only under the policy it was made with: the data path revokes every offload
//! when a commit could change it, and the next packet of each flow comes back here, where a
//! changed authorizing layer reauthorizes the flow (IS_REAUTHORIZE, POLICY_CHANGE, `ale.rs`).
//! A flow whose bytes the kernel carried comes back with a gap in its TCP sequence space: its
//! stream reassembly restarts at the packet's sequence number, and the stream callouts see the
//! carried bytes as `missedBytes` ([`Shim::resume_offloaded`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use wfp_core::catalogue::{self, layers};
use wfp_core::{ActionType, FilterId, LayerId};

use super::packet::Packet;
use super::{Shim, Verdict};
use crate::flow::{Direction, FlowId, FlowKey, FlowState, Side, TcpState};
use crate::wire::Transport;

/// Whether the data path may carry the later packets of a packet's flow in its direction
/// ([`super::PacketVerdict::offload`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offload {
    /// No later packet of the flow in this direction can get another answer under the current
    /// policy: the data path may let the kernel carry them. `sender` is the side that sent this
    /// packet (the initiator's packets travel the connection's original direction).
    Eligible {
        /// The side of the flow that sent the packet.
        sender: Side,
    },
    /// Later packets must still be classified, for this reason.
    Keep(KeepReason),
}

impl Offload {
    /// True for [`Offload::Eligible`].
    pub fn is_eligible(&self) -> bool {
        matches!(self, Self::Eligible { .. })
    }

    /// A short name for verdict lines: `offload` or the reason it is kept (`keep:callout@…`).
    pub fn label(&self) -> String {
        match self {
            Self::Eligible { .. } => "offload".to_owned(),
            Self::Keep(r) => format!("keep:{}", r.label()),
        }
    }
}

/// Why the later packets of a flow must still be classified ([`Offload::Keep`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeepReason {
    /// The packet was not permitted.
    NotPermitted,
    /// The packet belongs to no tracked flow (ICMP error, untracked segment, IPFORWARD).
    NoFlow,
    /// The flow is not authorized under the current policy, or not established yet.
    NotEstablished,
    /// The TCP connection is closing.
    Closing,
    /// The packet was classified on both sides at once ([`super::PacketDirection::Loopback`]).
    Loopback,
    /// A datagram reassembled from fragments.
    Fragment,
    /// The packet was injected (§10.4).
    Injected,
    /// The flow has a pended operation (§10.1).
    Pended,
    /// A stream edit shifts the flow's sequence numbers (every packet is rewritten).
    Edited,
    /// Layers without a decision do not permit ([`super::ShimConfig::no_match`]).
    NoMatchDefault,
    /// Arbitration traces are recorded ([`super::ShimConfig::trace`]).
    Tracing,
    /// A layer's filters read a field that can differ from packet to packet (FLAGS, interface).
    PacketField {
        /// The layer.
        layer: LayerId,
    },
    /// A callout filter at a packet layer wants the packets.
    Callout {
        /// The layer.
        layer: LayerId,
    },
    /// A stream callout has not allowed the connection (or holds data).
    StreamCallout {
        /// Its filter.
        filter: FilterId,
    },
    /// A static filter at the STREAM layer blocks the connection's bytes.
    StreamBlock {
        /// The filter.
        filter: FilterId,
    },
}

impl KeepReason {
    /// A short name (`callout@44`, `pended`, ...).
    pub fn label(&self) -> String {
        match self {
            Self::NotPermitted => "not-permitted".into(),
            Self::NoFlow => "no-flow".into(),
            Self::NotEstablished => "not-established".into(),
            Self::Closing => "closing".into(),
            Self::Loopback => "loopback-once".into(),
            Self::Fragment => "fragment".into(),
            Self::Injected => "injected".into(),
            Self::Pended => "pended".into(),
            Self::Edited => "edited".into(),
            Self::NoMatchDefault => "no-match-default".into(),
            Self::Tracing => "tracing".into(),
            Self::PacketField { layer } => format!("packet-field@{}", layer_name(*layer)),
            Self::Callout { layer } => format!("callout@{}", layer_name(*layer)),
            Self::StreamCallout { filter } => format!("stream-callout#{}", filter.0),
            Self::StreamBlock { filter } => format!("stream-block#{}", filter.0),
        }
    }
}

fn layer_name(layer: LayerId) -> &'static str {
    catalogue::layer(layer).map_or("?", |l| l.name)
}

/// What a flow's offloaded direction carried in the kernel, reported at its end
/// ([`Shim::end_offloaded`]): the connection's totals as the kernel counted them (conntrack
/// accounting), per side of the flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CarriedCounts {
    /// Packets sent by [`Side::Initiator`] and [`Side::Responder`] (conntrack original, reply).
    pub packets: [u64; 2],
    /// Bytes (IP packet lengths) sent by each side.
    pub bytes: [u64; 2],
}

/// A flow ended by [`Shim::end_offloaded`]: its totals, with what the kernel carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffloadedEnd {
    /// The flow.
    pub flow: FlowId,
    /// Its key.
    pub key: FlowKey,
    /// Packets per side (the larger of what the shim classified and the kernel counted).
    pub packets: [u64; 2],
    /// Bytes per side, likewise.
    pub bytes: [u64; 2],
    /// Of those, packets the kernel carried without the shim (per side).
    pub carried_packets: [u64; 2],
    /// Contexts whose flowDeleteFn ran (or will, after a running classify).
    pub contexts: usize,
}

/// An offloaded flow that an asynchronous action touched (`FwpsFlowAbort0`, a stream
/// continuation or injection from outside classifyFn, any injection into the flow): the data
/// path must withdraw its kernel offload now, so its next packet comes back to the shim
/// ([`Shim::take_withdrawals`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    /// The flow.
    pub flow: FlowId,
    /// Its key.
    pub key: FlowKey,
    /// Who sent its first packet: the connection's original direction is from the local side
    /// when [`Direction::Outbound`].
    pub initiator: Direction,
}

/// What the data path reported of offloaded flows (which sides are offloaded is kept in each
/// flow's `FlowExtra::offloaded`, reached without a lookup on the packet path).
#[derive(Debug, Default)]
pub(super) struct OffloadTable {
    /// What the kernel carried for offloaded flows without the shim, as of the latest
    /// [`Shim::note_carried`].
    kernel: HashMap<FlowId, CarriedCounts>,
    /// Offloads to withdraw ([`Shim::take_withdrawals`]).
    withdrawn: Vec<Withdrawal>,
}

impl OffloadTable {
    /// Forgets an ended flow.
    pub(super) fn forget(&mut self, flow: FlowId) {
        self.kernel.remove(&flow);
    }

    /// What the kernel carried for `flow` without the shim, as of the latest refresh.
    pub(super) fn carried(&self, flow: FlowId) -> Option<CarriedCounts> {
        self.kernel.get(&flow).copied()
    }
}

/// FLAGS (IS_FRAGMENT, IS_REASSEMBLED, ...) and the interface fields (a flow's packets may cross
/// several interfaces) can differ between the packets of one flow in one direction.
fn varies_per_packet(name: &str) -> bool {
    name == "FLAGS" || name.contains("INTERFACE") || name.contains("TUNNEL_TYPE")
}

/// Bit `i` set for each field `i` of each layer whose value can differ between the packets of one
/// flow in one direction ([`varies_per_packet`]; the other fields of the per-packet layers are
/// the flow's addresses, ports, protocol, owner and direction).
fn per_packet_fields(layer: LayerId) -> u64 {
    static MASKS: OnceLock<Vec<u64>> = OnceLock::new();
    let masks = MASKS.get_or_init(|| {
        catalogue::all_layers()
            .iter()
            .map(|l| {
                l.fields
                    .iter()
                    .enumerate()
                    .filter(|(i, f)| *i < 64 && varies_per_packet(f.name))
                    .fold(0u64, |m, (i, _)| m | 1 << i)
            })
            .collect()
    });
    masks.get(usize::from(layer.0)).copied().unwrap_or(u64::MAX)
}

/// The per-packet layers a later packet of a flow passes in direction `dir`, in order; the
/// STREAM / DATAGRAM_DATA layer is the one at index 1 (inbound) or 0 (outbound).
fn later_layers(dir: Direction, v6: bool, tcp: bool) -> [LayerId; 3] {
    let data = match (tcp, v6) {
        (true, false) => layers::STREAM_V4,
        (true, true) => layers::STREAM_V6,
        (false, false) => layers::DATAGRAM_DATA_V4,
        (false, true) => layers::DATAGRAM_DATA_V6,
    };
    match (dir, v6) {
        (Direction::Inbound, false) => [
            layers::INBOUND_IPPACKET_V4,
            layers::INBOUND_TRANSPORT_V4,
            data,
        ],
        (Direction::Inbound, true) => [
            layers::INBOUND_IPPACKET_V6,
            layers::INBOUND_TRANSPORT_V6,
            data,
        ],
        (Direction::Outbound, false) => [
            data,
            layers::OUTBOUND_TRANSPORT_V4,
            layers::OUTBOUND_IPPACKET_V4,
        ],
        (Direction::Outbound, true) => [
            data,
            layers::OUTBOUND_TRANSPORT_V6,
            layers::OUTBOUND_IPPACKET_V6,
        ],
    }
}

/// One later layer's part of the offload answer under the current policy: it depends only on
/// which layers hold filters and which fields they read (both fixed per policy epoch), except at
/// a STREAM layer holding filters, which is asked per flow ([`Shim::stream_is_constant`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LaterLayer {
    /// Every later classify at the layer gives the same answer, or why not.
    Static(Result<(), KeepReason>),
    /// A STREAM layer with filters.
    Stream,
}

/// [`LaterLayer`] for each of [`later_layers`]' layers, per (direction, IPv6, TCP)
/// ([`later_index`]), computed once per policy ([`Shim::later_layer_answers`]) instead of per
/// packet.
pub(super) type LaterLayers = [[LaterLayer; 3]; 8];

/// The index of (direction, IPv6, TCP) in [`LaterLayers`].
#[inline]
fn later_index(dir: Direction, v6: bool, tcp: bool) -> usize {
    usize::from(dir == Direction::Inbound) << 2 | usize::from(v6) << 1 | usize::from(tcp)
}

impl Shim {
    /// The [`LaterLayers`] of the policy the current masks come from (`refresh_policy`).
    pub(super) fn later_layer_answers(&self) -> LaterLayers {
        let mut all = [[LaterLayer::Stream; 3]; 8];
        for dir in [Direction::Inbound, Direction::Outbound] {
            for (v6, tcp) in [(false, false), (false, true), (true, false), (true, true)] {
                let layers = later_layers(dir, v6, tcp);
                if let Some(slot) = all.get_mut(later_index(dir, v6, tcp)) {
                    for (answer, layer) in slot.iter_mut().zip(layers) {
                        *answer = self.layer_answer(layer);
                    }
                }
            }
        }
        all
    }

    /// [`LaterLayer`] of `layer` under the current masks.
    fn layer_answer(&self, layer: LayerId) -> LaterLayer {
        if !self.has_filters(layer) {
            return LaterLayer::Static(Ok(()));
        }
        if layer == layers::STREAM_V4 || layer == layers::STREAM_V6 {
            return LaterLayer::Stream;
        }
        // As of the packet's policy (the masks its classifies used; no snapshot load).
        let used = self.field_mask(layer);
        if used == u64::MAX {
            // A callout filter is present (its callout may read anything, every packet).
            return LaterLayer::Static(Err(KeepReason::Callout { layer }));
        }
        if used & per_packet_fields(layer) != 0 {
            return LaterLayer::Static(Err(KeepReason::PacketField { layer }));
        }
        LaterLayer::Static(Ok(()))
    }

    /// The offload answer for a packet the layers permitted (the hook after the upper layers):
    /// written to `pkt.verdict.offload`, and remembered for [`Shim::resume_offloaded`].
    pub(super) fn decide_offload(&mut self, pkt: &mut Packet<'_>) {
        let answer = self.offload_answer(pkt);
        if let (Offload::Eligible { sender }, Some(e)) =
            (answer, pkt.extra.and_then(|r| self.extra.at_mut(r)))
        {
            if let Some(side) = e.offloaded.get_mut(sender.index()) {
                *side = true;
            }
        }
        pkt.verdict.offload = answer;
    }

    fn offload_answer(&self, pkt: &Packet<'_>) -> Offload {
        use KeepReason as K;
        let keep = Offload::Keep;
        if pkt.verdict.verdict != Verdict::Permit {
            return keep(K::NotPermitted);
        }
        if self.config.no_match != Verdict::Permit {
            return keep(K::NoMatchDefault);
        }
        if self.config.trace {
            return keep(K::Tracing);
        }
        if pkt.loopback {
            return keep(K::Loopback);
        }
        if pkt.reassembled {
            return keep(K::Fragment);
        }
        if pkt.ctx.injection.is_some() {
            return keep(K::Injected);
        }
        // A redirected connection's packets are rewritten by the shim (the kernel would not).
        if pkt.verdict.edited.is_some() || pkt.redirected {
            return keep(K::Edited);
        }
        let (Some(at), Some(u)) = (pkt.extra, pkt.update) else {
            return keep(K::NoFlow);
        };
        let Some(e) = self.extra.at(at) else {
            return keep(K::NoFlow);
        };
        if e.auth_layer.is_none() || !e.established || e.auth_epoch != self.policy_epoch {
            return keep(K::NotEstablished);
        }
        if e.pending.is_some() {
            return keep(K::Pended);
        }
        if e.edit.iter().any(|s| s.active) {
            return keep(K::Edited);
        }
        let tcp = matches!(pkt.parsed.transport, Transport::Tcp(_));
        if tcp && u.state != FlowState::Tcp(TcpState::Established) {
            return keep(K::Closing);
        }
        // Whether every later classify at each later layer for this side gives this answer, in
        // the layers' order (the first that does not is the reason).
        let Some(later) = self.later.get(later_index(pkt.dir, pkt.v6(), tcp)) else {
            return keep(K::NoFlow);
        };
        for answer in later {
            let constant = match *answer {
                LaterLayer::Static(r) => r,
                LaterLayer::Stream => self.stream_is_constant(at.id(), e, u.side),
            };
            if let Err(why) = constant {
                return keep(why);
            }
        }
        Offload::Eligible { sender: u.side }
    }

    /// The STREAM layer for one side of a flow: every filter matching the connection is a static
    /// PERMIT or a callout that allowed the connection (§9.2 ALLOW_CONNECTION), none holds data.
    fn stream_is_constant(
        &self,
        id: FlowId,
        e: &super::flows::FlowExtra,
        side: Side,
    ) -> Result<(), KeepReason> {
        let dir = &e.stream[side.index()];
        let (layer, values, _) = super::stream::connection_inputs(id, e);
        for f in self.engine.matching_filters(layer, &values) {
            let filter = f.filter_id();
            match f.action() {
                ActionType::PERMIT => {}
                ActionType::BLOCK => return Err(KeepReason::StreamBlock { filter }),
                _ if dir.allowed(filter) => {}
                _ => return Err(KeepReason::StreamCallout { filter }),
            }
        }
        if dir.holds_data() {
            return Err(KeepReason::Callout { layer });
        }
        Ok(())
    }

    /// The hook after flow tracking: a packet of a flow whose direction was offloaded is back
    /// (the offload was revoked, or the packet was queued before it took effect). When the kernel
    /// carried bytes in between, the side's stream reassembly restarts at this segment and the
    /// stream callouts are told the carried bytes as missed (§9.2 missedBytes).
    pub(super) fn resume_offloaded(&mut self, pkt: &Packet<'_>) {
        let (Some(at), Some(u)) = (pkt.extra, pkt.update) else {
            return;
        };
        let i = u.side.index();
        let Some(e) = self.extra.at_mut(at) else {
            return;
        };
        if !e.offloaded.get_mut(i).is_some_and(std::mem::take) {
            return;
        }
        let Transport::Tcp(t) = &pkt.parsed.transport else {
            return;
        };
        let Some(r) = e.reasm.get(i).and_then(Option::as_deref) else {
            return;
        };
        let ahead = t.seq.wrapping_sub(r.next_seq()) as i32;
        if ahead > 0 && r.buffered_bytes() == 0 {
            e.reasm[i] = None;
            e.stream[i].missed(u64::from(ahead.unsigned_abs()));
            self.stats.stream_bytes_missed += u64::from(ahead.unsigned_abs());
        }
    }

    /// The data path saw the end of an offloaded connection (conntrack destroy): the flow with
    /// key `key` ends now — ALE_ENDPOINT_CLOSURE, flowDeleteFn once for each context, a
    /// [`super::ShimEvent::FlowEnded`] — and its totals include what the kernel carried
    /// (`kernel`, per side of the flow as the kernel saw the connection). `None` when no such
    /// flow is tracked (it ended here already).
    pub fn end_offloaded(&mut self, key: &FlowKey, kernel: CarriedCounts) -> Option<OffloadedEnd> {
        let handle = self.flows.lookup(key)?;
        let flow = self.flows.flow(handle)?;
        let id = flow.id();
        let seen_packets = [flow.packets(Side::Initiator), flow.packets(Side::Responder)];
        let seen_bytes = [flow.bytes(Side::Initiator), flow.bytes(Side::Responder)];
        self.end_flow_now(id);
        self.drain_flow_events();
        let contexts = self
            .events
            .iter()
            .rev()
            .find_map(|ev| match ev {
                super::ShimEvent::FlowEnded { flow, contexts, .. } if *flow == id => {
                    Some(*contexts)
                }
                _ => None,
            })
            .unwrap_or(0);
        let max = |a: [u64; 2], b: [u64; 2]| [a[0].max(b[0]), a[1].max(b[1])];
        let packets = max(seen_packets, kernel.packets);
        Some(OffloadedEnd {
            flow: id,
            key: *key,
            packets,
            bytes: max(seen_bytes, kernel.bytes),
            carried_packets: [
                packets[0].saturating_sub(seen_packets[0]),
                packets[1].saturating_sub(seen_packets[1]),
            ],
            contexts,
        })
    }

    /// An asynchronous action touched flow `id` (issue 16): when a direction of it is offloaded,
    /// its offload is to be withdrawn ([`Shim::take_withdrawals`]), so the effect of the action
    /// (a block after `FwpsFlowAbort0`, a stream edit, a later pend) reaches its next packet
    /// rather than the next revocation. The offloaded sides stay noted: that packet resumes the
    /// flow ([`Shim::resume_offloaded`]: carried bytes are missed bytes).
    pub(super) fn withdraw_offload(&mut self, id: FlowId) {
        if !self.is_offloaded(id) || self.offload.withdrawn.iter().any(|w| w.flow == id) {
            return;
        }
        let Some(e) = self.extra.get(&id) else {
            return;
        };
        self.offload.withdrawn.push(Withdrawal {
            flow: id,
            key: e.key,
            initiator: e.initiator,
        });
    }

    /// The offloads to withdraw now (see [`Withdrawal`]); call after [`Shim::handle_async`].
    pub fn take_withdrawals(&mut self) -> Vec<Withdrawal> {
        std::mem::take(&mut self.offload.withdrawn)
    }

    /// The kernel's counts for the connection of the flow with key `key` while it is open
    /// (conntrack accounting: everything the connection carried, queued or not; refreshed by
    /// the data path). What exceeds the shim's own counts now is what the kernel carried
    /// without it: listed with the flow ([`super::FlowRow::carried`]) and added to its counts,
    /// which stay right after the offload is revoked and the shim counts again. False when no
    /// such flow has an offloaded direction.
    pub fn note_carried(&mut self, key: &FlowKey, kernel: CarriedCounts) -> bool {
        let Some(flow) = self.flows.lookup(key).and_then(|h| self.flows.flow(h)) else {
            return false;
        };
        let id = flow.id();
        let sides = [Side::Initiator, Side::Responder];
        let beyond = |kernel: [u64; 2], seen: &dyn Fn(Side) -> u64| {
            sides.map(|s| kernel[s.index()].saturating_sub(seen(s)))
        };
        let carried = CarriedCounts {
            packets: beyond(kernel.packets, &|s| flow.packets(s)),
            bytes: beyond(kernel.bytes, &|s| flow.bytes(s)),
        };
        if !self.is_offloaded(id) {
            return false;
        }
        self.offload.kernel.insert(id, carried);
        true
    }

    /// Whether flow `id` has an offloaded direction.
    pub fn is_offloaded(&self, id: FlowId) -> bool {
        self.extra
            .get(&id)
            .is_some_and(|e| e.offloaded.iter().any(|b| *b))
    }
}
