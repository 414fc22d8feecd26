//! Datagram data stage: DATAGRAM_DATA_V4/V6 (wfp-reference §8.2, the DATAGRAM_DATA row), once per
//! datagram of a tracked non-TCP flow (UDP, ICMP queries, other protocols), in both directions,
//! with DIRECTION and the packetDirection metadata; layerData is the transport payload.

use std::ops::ControlFlow::{self, Continue};

use wfp_core::callout::LayerData;
use wfp_core::catalogue::layers;
use wfp_core::constants::{self, MetadataFields};

use super::classify::Step;
use super::packet::Packet;
use super::Shim;
use crate::flow::Direction;
use crate::wire::Transport;

impl Shim {
    /// DATAGRAM_DATA for a packet of a tracked UDP, ICMP or other non-TCP flow.
    pub(super) fn datagram(&mut self, pkt: &mut Packet<'_>) -> ControlFlow<()> {
        let datagram = matches!(
            pkt.parsed.transport,
            Transport::Udp(_) | Transport::Icmp(_) | Transport::Other(_)
        );
        if !datagram || pkt.update.is_none() {
            return Continue(());
        }
        let layer = if pkt.v6() {
            layers::DATAGRAM_DATA_V6
        } else {
            layers::DATAGRAM_DATA_V4
        };
        let direction = match pkt.dir {
            Direction::Inbound => constants::Direction::Inbound,
            Direction::Outbound => constants::Direction::Outbound,
        };
        let mut facts = pkt.transport.clone();
        facts.direction = Some(direction as u32);
        let mut meta = pkt.meta.clone();
        meta.packet_direction = Some(direction);
        meta.present |= MetadataFields::PACKET_DIRECTION;
        // Copied only when a callout filter is at the layer (static filters never see it).
        let callout = self.has_filters(layer) && self.field_mask(layer) == u64::MAX;
        if callout && pkt.dir == Direction::Outbound && meta.header_bytes.is_none() {
            // §8.2: WFP indicates an outbound datagram at its transport header, with the IP
            // header behind it. The payload stays this engine's layerData; the headers go with
            // the metadata (as inbound, `Metadata::header_bytes`) so a C callout's NET_BUFFER_LIST
            // can start at the transport header (wfp-ffi) and clones reach them.
            let start = pkt.parsed.payload().map_or(pkt.bytes.len(), |r| r.start);
            meta.header_bytes = pkt.bytes.get(..start).map(Into::into);
        }
        let step = Step::new(layer, &facts, &meta, LayerData::Packet(pkt.payload()));
        self.classify_flow_step(pkt.flow(), step, pkt.verdict)
    }
}
