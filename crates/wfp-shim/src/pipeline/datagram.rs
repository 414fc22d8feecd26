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
        // No filters there: the visit without building the classify's inputs.
        if let Some(step) = self.unfiltered(layer, pkt.verdict) {
            return step;
        }
        let direction = match pkt.dir {
            Direction::Inbound => constants::Direction::Inbound,
            Direction::Outbound => constants::Direction::Outbound,
        };
        let mut facts = pkt.transport.clone();
        facts.direction = Some(direction as u32);
        // The transport layers' metadata carries packetDirection already (`meta.rs`).
        debug_assert!(pkt
            .meta
            .get()
            .present
            .contains(MetadataFields::PACKET_DIRECTION));
        let step = Step::new(layer, &facts, &pkt.meta, LayerData::Packet(pkt.payload()));
        self.classify_flow_step(pkt.extra, step, pkt.verdict)
    }
}
