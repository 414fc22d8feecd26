//! Transport stage: INBOUND_TRANSPORT_V4/V6 and OUTBOUND_TRANSPORT_V4/V6 (wfp-reference §8.2, the
//! TRANSPORT rows), and the ports every layer above sees.
//!
//! Inbound, the transport layer runs after flow tracking and before ALE, with
//! FWPS_METADATA_FIELD_ALE_CLASSIFY_REQUIRED for a flow not yet authorized; its layerData is the
//! transport payload. Outbound, it runs after the data layers, with the whole packet. A new flow
//! blocked here, before authorization, leaves nothing behind.

use std::ops::ControlFlow::{self, Break, Continue};

use wfp_core::callout::LayerData;
use wfp_core::catalogue::layers;
use wfp_core::constants::MetadataFields;
use wfp_core::LayerId;

use super::classify::{MetaRef, Step};
use super::packet::Packet;
use super::Shim;
use crate::flow::{Direction, FlowId};
use crate::values::PacketFacts;
use crate::wire::{ParsedPacket, Transport};

impl Shim {
    /// INBOUND_TRANSPORT (inbound packets only), the layerData being the transport payload.
    pub(super) fn inbound_transport(&mut self, pkt: &mut Packet<'_>) -> ControlFlow<()> {
        if pkt.dir != Direction::Inbound {
            self.add_outbound_header_bytes(pkt);
            return Continue(());
        }
        self.add_header_bytes(pkt);
        // A flow not authorized yet: ALE_CLASSIFY_REQUIRED.
        let required;
        let meta = if pkt.needs_auth {
            let mut m = pkt.meta.get().clone();
            m.present |= MetadataFields::ALE_CLASSIFY_REQUIRED;
            required = m;
            MetaRef::from(&required)
        } else {
            MetaRef::from(&pkt.meta)
        };
        let layer = transport_layer(pkt);
        let step = Step::new(
            layer,
            &pkt.transport,
            meta,
            LayerData::Packet(pkt.payload()),
        );
        if self
            .classify_flow_step(pkt.extra, step, pkt.verdict)
            .is_break()
        {
            self.discard_unauthorized(pkt.flow());
            return Break(());
        }
        Continue(())
    }

    /// OUTBOUND_TRANSPORT (outbound packets only), after the data layers, with the whole packet.
    pub(super) fn outbound_transport(&mut self, pkt: &mut Packet<'_>) -> ControlFlow<()> {
        if pkt.dir != Direction::Outbound {
            return Continue(());
        }
        let layer = transport_layer(pkt);
        let step = Step::new(
            layer,
            &pkt.transport,
            &pkt.meta,
            LayerData::Packet(pkt.bytes),
        );
        self.classify_flow_step(pkt.extra, step, pkt.verdict)
    }

    /// §8.2: the inbound layers from INBOUND_TRANSPORT up see the transport payload; the headers
    /// behind it go with the metadata (`Metadata::header_bytes`), so a callout's clone can be
    /// retreated to the whole packet (`Engine::retreat_packet`) and injected with
    /// FwpsInjectTransportReceiveAsync0, as WFP callouts retreat the NET_BUFFER_LIST. Copied only
    /// when one of those layers has a callout filter (no per-packet allocation otherwise).
    fn add_header_bytes(&self, pkt: &mut Packet<'_>) {
        if self.copies_headers(Direction::Inbound, pkt.v6()) {
            copy_header_bytes(pkt);
        }
    }

    /// §8.2: outbound, ALE_AUTH_CONNECT (non-TCP), ALE_FLOW_ESTABLISHED and DATAGRAM_DATA
    /// indicate the packet at its transport header, the IP header behind; this engine's layerData
    /// there is the payload. The headers go with the metadata as inbound (`header_bytes`), so a
    /// C callout's NET_BUFFER_LIST can start at the transport header (wfp-ffi) and a clone can be
    /// sent with FwpsInjectTransportSendAsync0 (the WDK inspect and ddproxy samples). Copied only
    /// when one of those layers has a callout filter.
    fn add_outbound_header_bytes(&self, pkt: &mut Packet<'_>) {
        if self.copies_headers(Direction::Outbound, pkt.v6()) {
            copy_header_bytes(pkt);
        }
    }

    /// Whether packets travelling `dir` carry their headers in the metadata (see
    /// [`Shim::header_copy_layers`]).
    #[inline]
    fn copies_headers(&self, dir: Direction, v6: bool) -> bool {
        let i = header_copy_index(dir, v6);
        self.header_copy.get(i).copied().unwrap_or(true)
    }

    /// Per (direction, IPv6) ([`header_copy_index`]): whether a layer that gets the headers with
    /// the metadata has a callout filter under the current policy. Only a callout reads
    /// metadata: static filters alone never see the copy, so a layer whose filters are all
    /// static (its field mask is not all ones) needs none. Computed once per policy
    /// (`refresh_policy`), not per packet.
    pub(super) fn header_copy_layers(&self) -> [bool; 4] {
        let callout_at = |l: &LayerId| self.has_filters(*l) && self.field_mask(*l) == u64::MAX;
        let mut copy = [true; 4];
        for v6 in [false, true] {
            if let Some(c) = copy.get_mut(header_copy_index(Direction::Inbound, v6)) {
                *c = inbound_header_layers(v6).iter().any(callout_at);
            }
            if let Some(c) = copy.get_mut(header_copy_index(Direction::Outbound, v6)) {
                *c = outbound_header_layers(v6).iter().any(callout_at);
            }
        }
        copy
    }

    /// A packet blocked before its new flow was authorized leaves no flow behind.
    fn discard_unauthorized(&mut self, flow: Option<FlowId>) {
        let Some(id) = flow else { return };
        if self.extra.get(&id).is_some_and(|e| e.auth_layer.is_none()) {
            self.end_flow_now(id);
        }
        self.drain_flow_events();
    }
}

/// The index of (direction, IPv6) in [`Shim::header_copy_layers`].
fn header_copy_index(dir: Direction, v6: bool) -> usize {
    usize::from(dir == Direction::Inbound) << 1 | usize::from(v6)
}

/// The inbound layers from INBOUND_TRANSPORT up that see the transport payload (§8.2).
fn inbound_header_layers(v6: bool) -> [LayerId; 4] {
    if v6 {
        [
            layers::INBOUND_TRANSPORT_V6,
            layers::ALE_AUTH_RECV_ACCEPT_V6,
            layers::ALE_FLOW_ESTABLISHED_V6,
            layers::DATAGRAM_DATA_V6,
        ]
    } else {
        [
            layers::INBOUND_TRANSPORT_V4,
            layers::ALE_AUTH_RECV_ACCEPT_V4,
            layers::ALE_FLOW_ESTABLISHED_V4,
            layers::DATAGRAM_DATA_V4,
        ]
    }
}

/// The outbound layers that indicate the packet at its transport header (§8.2).
fn outbound_header_layers(v6: bool) -> [LayerId; 3] {
    if v6 {
        [
            layers::ALE_AUTH_CONNECT_V6,
            layers::ALE_FLOW_ESTABLISHED_V6,
            layers::DATAGRAM_DATA_V6,
        ]
    } else {
        [
            layers::ALE_AUTH_CONNECT_V4,
            layers::ALE_FLOW_ESTABLISHED_V4,
            layers::DATAGRAM_DATA_V4,
        ]
    }
}

/// The headers before the transport payload into the metadata (`Metadata::header_bytes`), once.
fn copy_header_bytes(pkt: &mut Packet<'_>) {
    let start = pkt.parsed.payload().map_or(pkt.bytes.len(), |r| r.start);
    let bytes = pkt.bytes;
    pkt.meta.modify(|m| {
        if m.header_bytes.is_none() {
            m.header_bytes = bytes.get(..start).map(Into::into);
        }
    });
}

/// The transport facts of `p` travelling `dir`: the IP-packet facts `ip` plus local and remote
/// port (ICMP: type and code).
#[inline]
pub(super) fn transport_facts(ip: PacketFacts, p: &ParsedPacket, dir: Direction) -> PacketFacts {
    let mut tf = ip;
    let ports = match &p.transport {
        Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
        Transport::Udp(u) => Some((u.src_port, u.dst_port)),
        Transport::Icmp(i) => {
            tf.local_port = Some(u16::from(i.icmp_type));
            tf.remote_port = Some(u16::from(i.code));
            None
        }
        _ => None,
    };
    if let Some((src, dst)) = ports {
        let (l, r) = match dir {
            Direction::Inbound => (dst, src),
            Direction::Outbound => (src, dst),
        };
        tf.local_port = Some(l);
        tf.remote_port = Some(r);
    }
    tf
}

/// The transport layer of `pkt`'s direction and IP version.
#[inline]
fn transport_layer(pkt: &Packet<'_>) -> LayerId {
    match (pkt.dir, pkt.v6()) {
        (Direction::Inbound, false) => layers::INBOUND_TRANSPORT_V4,
        (Direction::Inbound, true) => layers::INBOUND_TRANSPORT_V6,
        (Direction::Outbound, false) => layers::OUTBOUND_TRANSPORT_V4,
        (Direction::Outbound, true) => layers::OUTBOUND_TRANSPORT_V6,
    }
}
