//! Flows: tracking a packet's flow (the flow handle every flow-capable layer sees, §8.2) and ending
//! flows — ALE_ENDPOINT_CLOSURE, the stream callouts' last NO_MORE_DATA, then flowDeleteFn for
//! every context through `Engine::flow_abort` (wfp-reference §4, §6, §14.5 T-FLOW-6) and a
//! [`ShimEvent::FlowEnded`].
//!
//! The flow table ([`crate::flow`]) knows 5-tuples and TCP states; the per-flow state of the
//! layers (authorization, stream reassembly and stream callouts, reusable answers, offloaded
//! sides) is a [`FlowExtra`] in a slab beside it (`slab.rs`), whose slot the flow-table entry
//! names: a packet of a tracked flow costs one flow-table probe. A TCP connection that ended by
//! policy (refused at authorization, dropped by a stream callout) is remembered by key so that
//! its late segments do not start a new flow mid-stream.

use std::hash::Hasher;
use std::ops::ControlFlow::{self, Break, Continue};

use wfp_core::callout::Metadata;
use wfp_core::constants::MetadataFields;
use wfp_core::{FilterId, LayerId};

use super::packet::Packet;
use super::slab::ExtraRef;
use super::{Owner, Reason, Shim, ShimEvent};
use crate::decisions::FlowDecisions;
use crate::flow::{Direction, EndReason, FlowEvent, FlowId, FlowKey, FlowUpdate, PacketMeta, Side};
use crate::reasm::StreamReassembler;
use crate::stream::StreamDirection;
use crate::values::PacketFacts;
use crate::wire::Transport;

/// How many ended connections are remembered (the map is cleared when full).
const MAX_DROPPED: usize = 4096;

/// The most bytes a [`FlowExtra`] may take (a test holds it): every packet of a flow reads its
/// record, so with many flows the records' size is the cache footprint of the packet path.
pub(super) const FLOW_EXTRA_MAX_BYTES: usize = 448;
const _: () = assert!(std::mem::size_of::<FlowExtra>() <= FLOW_EXTRA_MAX_BYTES);

/// What the layers keep per flow, beside the flow table's entry.
pub(super) struct FlowExtra {
    /// The flow's 5-tuple (local/remote oriented).
    pub(super) key: FlowKey,
    /// Which way the flow's first packet went.
    pub(super) initiator: Direction,
    /// The layer that authorized the flow (AUTH_CONNECT or AUTH_RECV_ACCEPT), once it did.
    pub(super) auth_layer: Option<LayerId>,
    /// `Engine::layer_generation` of `auth_layer` at the authorization.
    pub(super) auth_generation: u64,
    /// `PolicySummary::epoch` when the authorization was last known current.
    pub(super) auth_epoch: u64,
    /// ALE_FLOW_ESTABLISHED was classified.
    pub(super) established: bool,
    /// The socket owner.
    pub(super) owner: Owner,
    /// TCP stream reassembly per [`Side`], boxed: a reassembler is large and only TCP flows have
    /// one, so the record every packet touches stays small ([`FLOW_EXTRA_MAX_BYTES`]).
    pub(super) reasm: [Option<Box<StreamReassembler>>; 2],
    /// The stream callouts per [`Side`].
    pub(super) stream: [StreamDirection; 2],
    /// A stream callout dropped the connection.
    pub(super) dropped: bool,
    /// Reusable answers at the flow's per-packet layers.
    pub(super) decisions: FlowDecisions,
    /// A TCP connection picked up without its handshake: its first authorization is a
    /// reauthorization (MID_STREAM_INSPECTION).
    pub(super) midstream: bool,
    /// TCP segments carried before the handshake completed (SYN data), held for the stream
    /// layer until the connection is established. Empty (no allocation) for most flows.
    pub(super) early: Vec<EarlySegment>,
    /// The authorization a callout pended (§10.1): packets are held until it completes.
    pub(super) pending: Option<Box<super::pend::Pending>>,
    /// Per [`Side`]: where the output stream stands after stream edits (see `inject.rs`).
    pub(super) edit: [super::inject::SideEdit; 2],
    /// Per [`Side`]: the data path may carry that side's packets without the shim (`offload.rs`).
    pub(super) offloaded: [bool; 2],
}

/// A TCP segment's payload held until its connection is established (see `stream.rs`).
pub(super) struct EarlySegment {
    /// The side that sent it.
    pub(super) side: Side,
    /// Its sequence number (of the SYN when `syn`).
    pub(super) seq: u32,
    /// SYN flag.
    pub(super) syn: bool,
    /// FIN flag.
    pub(super) fin: bool,
    /// Payload bytes the capture cut after `payload`.
    pub(super) cut: u32,
    /// The captured payload.
    pub(super) payload: Vec<u8>,
}

impl Shim {
    /// Flow tracking: the packet's flow is created or found, its handle goes into the metadata
    /// and the verdict, the socket owner into the facts. `Break` for a late segment of a TCP
    /// connection that ended by policy (blocked, as the connection's end decided).
    pub(super) fn track(&mut self, pkt: &mut Packet<'_>) -> ControlFlow<()> {
        let key = FlowKey::from_packet(pkt.dir, pkt.parsed);
        if let (Some(k), false) = (&key, self.ended.is_empty()) {
            // A connection a stream callout dropped stays dropped until a new SYN (the stack would
            // have reset it); its late segments must not start a new flow mid-stream.
            // The same holds for a connection whose authorization was blocked, and for any flow
            // a callout aborted (FwpsFlowAbort0).
            if let Some((reason, layer, filter)) = self.ended.get(k).cloned() {
                let syn = matches!(&pkt.parsed.transport, Transport::Tcp(t) if t.flags.syn() && !t.flags.ack());
                let tcp = matches!(&pkt.parsed.transport, Transport::Tcp(_));
                if syn {
                    self.ended.remove(k);
                } else if tcp || reason == Reason::FlowAborted {
                    pkt.verdict.block(reason);
                    pkt.verdict.layer = Some(layer);
                    pkt.verdict.filter = filter;
                    return Break(());
                }
            }
        }
        // One probe of the flow table: the update names the slot of the flow's [`FlowExtra`],
        // which every later step reaches through `pkt.extra` (no lookup by id).
        let tracked = key.and_then(|k| self.flow_update(pkt, k));
        pkt.update = tracked.map(|(u, _)| u);
        pkt.extra = tracked.map(|(_, r)| r);
        pkt.verdict.flow = pkt.flow();
        let extra = pkt.extra.and_then(|r| self.extra.at(r));
        let tracked_flow = extra.is_some();
        pkt.needs_auth = extra.is_some_and(|e| e.auth_layer.is_none());
        if let Some(id) = pkt.flow() {
            // (The IP-packet layers' metadata gets the id too, without its flag: `ip_meta`.)
            pkt.meta.set_flow(id);
        }
        // An owner with no field set adds nothing (most flows of a capture): not copied.
        let owner = pkt.ctx.owner.as_ref().or(extra.map(|e| &e.owner));
        if let Some(o) = owner.filter(|o| !o.is_empty()) {
            pkt.transport.app_id = o.app_id.clone();
            pkt.transport.user = o.user.clone();
            pkt.meta.set_owner(o);
        }
        // A redirected connection (§10.3): ORIGINAL_DESTINATION and the redirect records.
        if let Some(c) = key
            .filter(|_| tracked_flow)
            .and_then(|k| self.redirects.of_flow(&k))
        {
            pkt.meta.modify(|m| Self::redirect_meta(c, m));
            pkt.redirected = true;
        }
        Continue(())
    }

    /// The flow table's update for `pkt` (flow `key`) and where the flow's [`FlowExtra`] lives
    /// (created with the flow). The established-flow fast path: one flow-table probe, whose
    /// caller word names the state's slot.
    fn flow_update(&mut self, pkt: &Packet<'_>, key: FlowKey) -> Option<(FlowUpdate, ExtraRef)> {
        let meta = PacketMeta::from_parsed(pkt.parsed);
        let Ok(mut u) = self.flows.handle_packet(pkt.now, &key, pkt.dir, &meta) else {
            self.stats.untracked += 1;
            return None;
        };
        let id = u.handle.id();
        if let Some(r) = ExtraRef::from_user(u.user, id).filter(|r| self.extra.at(*r).is_some()) {
            return Some((u, r));
        }
        let r = match self.extra.ref_of(id) {
            Some(r) => r,
            None => self.new_extra(pkt, key, &u),
        };
        self.flows.set_user(u.handle, r.user());
        u.user = r.user();
        Some((u, r))
    }

    /// The layer state of the flow `u` just created (or a tombstone's, whose state went at its
    /// end): stored, and where.
    #[cold]
    fn new_extra(&mut self, pkt: &Packet<'_>, key: FlowKey, u: &FlowUpdate) -> ExtraRef {
        let initiator = if u.side == Side::Initiator {
            pkt.dir
        } else {
            pkt.dir.reverse()
        };
        // Created already established: a TCP connection picked up without its handshake.
        let midstream = u.created && u.established && key.protocol() == 6;
        if midstream {
            self.stats.midstream_flows += 1;
        }
        if u.created && self.announced() {
            let _ = self.engine.flow_created(u.handle.id().get());
        }
        let extra = FlowExtra {
            key,
            initiator,
            auth_layer: None,
            auth_generation: 0,
            auth_epoch: 0,
            established: false,
            owner: pkt.ctx.owner.clone().unwrap_or_default(),
            reasm: [None, None],
            stream: [StreamDirection::default(), StreamDirection::default()],
            dropped: false,
            decisions: FlowDecisions::default(),
            midstream,
            early: Vec::new(),
            pending: None,
            edit: Default::default(),
            offloaded: [false; 2],
        };
        self.extra.insert(u.handle.id(), extra)
    }

    /// Remembers a TCP connection that ended by policy: its late segments get `reason`, `layer`
    /// and `filter`.
    pub(super) fn remember_ended(
        &mut self,
        key: FlowKey,
        reason: Reason,
        layer: LayerId,
        filter: Option<FilterId>,
    ) {
        if self.ended.len() >= MAX_DROPPED {
            self.ended.clear();
        }
        self.ended.insert(key, (reason, layer, filter));
    }

    /// Ends a flow now (policy block, dropped connection, abort): the flow table queues the end
    /// event, which [`Shim::drain_flow_events`] turns into ENDPOINT_CLOSURE and flowDeleteFn.
    pub(super) fn end_flow_now(&mut self, id: FlowId) {
        if self.extra.contains_key(&id) && self.flows.abort(id) {
            return;
        }
        if let Some(e) = self.extra.remove(&id) {
            self.redirect_flow_ended(None, &e.key);
            let contexts = self.engine_flow_end(id);
            self.events.push_back(ShimEvent::FlowEnded {
                flow: id,
                key: e.key,
                reason: EndReason::Aborted,
                contexts,
            });
        }
    }

    /// The engine learns that flow `id` ended: `flow_ended` when flows are announced, else
    /// `flow_abort` (flowDeleteFn for every context either way).
    fn engine_flow_end(&self, id: FlowId) -> usize {
        if self.announced() {
            self.engine.flow_ended(id.get())
        } else {
            self.engine.flow_abort(id.get())
        }
    }

    /// Turns the flow table's end events into ENDPOINT_CLOSURE, the stream callouts' last
    /// indication, flowDeleteFn and [`ShimEvent::FlowEnded`]. Runs after every packet: the
    /// usual answer (no event) is one inline test.
    #[inline]
    pub(super) fn drain_flow_events(&mut self) {
        if self.flows.has_events() {
            self.drain_flow_events_now();
        }
    }

    /// [`Shim::drain_flow_events`] when the flow table has events.
    #[inline(never)]
    fn drain_flow_events_now(&mut self) {
        while let Some(FlowEvent::Ended {
            flow_id,
            key,
            reason,
            ..
        }) = self.flows.poll_event()
        {
            if let Some(mut e) = self.extra.remove(&flow_id) {
                if let Some(p) = e.pending.take() {
                    self.forget_pending(&p);
                }
                // Held stream data gets its NO_MORE_DATA indication before the flow goes.
                self.finish_streams(flow_id, &mut e, reason);
                if e.auth_layer.is_some() {
                    self.endpoint_closure(&key, &e);
                }
            }
            // A connection closed by FINs keeps its key a while for late transport sends.
            let closed = (reason == EndReason::Fin).then_some(flow_id);
            self.redirect_flow_ended(closed, &key);
            let contexts = self.engine_flow_end(flow_id);
            self.events.push_back(ShimEvent::FlowEnded {
                flow: flow_id,
                key,
                reason,
                contexts,
            });
        }
    }
}

/// The values a flow's connection-level layers see (STREAM, ENDPOINT_CLOSURE, …): oriented by the
/// connection's key, DIRECTION = who initiated it.
pub(super) fn flow_facts(key: &FlowKey, initiator: Direction, owner: &Owner) -> PacketFacts {
    PacketFacts {
        protocol: key.protocol(),
        local: Some(key.local_addr()),
        remote: Some(key.remote_addr()),
        local_port: Some(key.local_port()),
        remote_port: Some(key.remote_port()),
        direction: Some(connection_direction(initiator)),
        app_id: owner.app_id.clone(),
        user: owner.user.clone(),
        ..PacketFacts::default()
    }
}

/// FWP_DIRECTION of a connection: outbound (0) when the local side initiated it.
#[inline]
pub(super) fn connection_direction(initiator: Direction) -> u32 {
    match initiator {
        Direction::Outbound => 0,
        Direction::Inbound => 1,
    }
}

/// The metadata of a classify outside a packet (stream continuation, flow end): the flow handle.
pub(super) fn flow_meta(flow: FlowId) -> Metadata {
    Metadata {
        flow_handle: flow.get(),
        present: MetadataFields::FLOW_HANDLE,
        ..Metadata::default()
    }
}

/// Hashes flow ids (sequential `u64`s) with one multiply: the side table is looked up several
/// times per packet, and SipHash's DoS resistance buys nothing for ids this pipeline assigns itself.
#[derive(Default)]
pub(super) struct FlowIdHasher(u64);

impl Hasher for FlowIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ 0x5851_F42D_4C95_7F2D).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// One tracked flow as a management plane lists it (read-only): the flow table's entry (5-tuple,
/// state, packets and bytes per side, first and last packet) and what the layers know of it.
#[derive(Clone, Copy, Debug)]
pub struct FlowRow<'a> {
    /// The flow table's entry.
    pub flow: &'a crate::flow::Flow,
    /// The layer that authorized the flow (ALE_AUTH_CONNECT or ALE_AUTH_RECV_ACCEPT), once it did.
    pub auth_layer: Option<LayerId>,
    /// ALE_FLOW_ESTABLISHED was classified.
    pub established: bool,
    /// ALE_APP_ID of the socket owner, when known.
    pub app_id: Option<&'a [u8]>,
    /// What the kernel carried for the flow without the shim while a direction of it was
    /// offloaded (as of the latest [`Shim::note_carried`]; per side, like
    /// [`crate::flow::Flow::bytes`]): the flow's totals are its counts plus these.
    pub carried: Option<super::CarriedCounts>,
}

impl Shim {
    /// The flows tracked now (ended TCP connections still held as tombstones included), for a
    /// read-only listing; no flow state changes.
    pub fn flow_rows(&self) -> impl Iterator<Item = FlowRow<'_>> + '_ {
        self.flows.iter().map(move |flow| {
            let extra = self.extra.get(&flow.id());
            FlowRow {
                flow,
                auth_layer: extra.and_then(|e| e.auth_layer),
                established: extra.is_some_and(|e| e.established),
                app_id: extra.and_then(|e| e.owner.app_id.as_deref()),
                carried: self.offload.carried(flow.id()),
            }
        })
    }
}

#[cfg(test)]
mod row_tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use wfp_core::Engine;

    use crate::flow::{Direction, Side};
    use crate::wire::build::ip_packet;
    use crate::{PacketContext, PacketDirection, Shim, ShimConfig, Timestamp};

    fn udp(src: (IpAddr, u16), dst: (IpAddr, u16), payload: usize) -> Vec<u8> {
        let len = u16::try_from(8 + payload).unwrap();
        let mut seg = Vec::new();
        seg.extend_from_slice(&src.1.to_be_bytes());
        seg.extend_from_slice(&dst.1.to_be_bytes());
        seg.extend_from_slice(&len.to_be_bytes());
        seg.extend_from_slice(&[0, 0]);
        seg.resize(usize::from(len), b'u');
        ip_packet(src.0, dst.0, 17, &seg).unwrap()
    }

    #[test]
    fn the_per_flow_record_stays_small() {
        let size = std::mem::size_of::<super::FlowExtra>();
        assert!(
            size <= super::FLOW_EXTRA_MAX_BYTES,
            "FlowExtra is {size} bytes"
        );
    }

    #[test]
    fn flow_rows_list_each_flow_with_its_traffic_each_way() {
        let mut shim = Shim::new(Arc::new(Engine::default()), ShimConfig::default());
        let local = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 4000);
        let remote = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 53);
        let ctx = PacketContext::default();
        let out = udp(local, remote, 10);
        let back = udp(remote, local, 30);
        shim.handle_packet(
            Timestamp::from_secs(1),
            PacketDirection::Outbound,
            &out,
            &ctx,
        );
        shim.handle_packet(
            Timestamp::from_secs(2),
            PacketDirection::Inbound,
            &back,
            &ctx,
        );
        let rows: Vec<_> = shim.flow_rows().collect();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let f = rows[0].flow;
        assert_eq!(f.initiator(), Direction::Outbound);
        assert_eq!((f.key().local_port(), f.key().remote_port()), (4000, 53));
        assert_eq!(
            (f.packets(Side::Initiator), f.bytes(Side::Initiator)),
            (1, 38)
        );
        assert_eq!(
            (f.packets(Side::Responder), f.bytes(Side::Responder)),
            (1, 58)
        );
        assert_eq!(f.first_seen(), Timestamp::from_secs(1));
        assert_eq!(f.last_seen(), Timestamp::from_secs(2));
        assert!(rows[0].auth_layer.is_some(), "authorized: {rows:?}");
        assert_eq!(rows[0].app_id, None);
    }
}
