//! ICMP error and forwarding stage: INBOUND_ICMP_ERROR_V4/V6, OUTBOUND_ICMP_ERROR_V4/V6 and
//! IPFORWARD_V4/V6 (wfp-reference §8.2, the ICMP_ERROR and IPFORWARD rows).
//!
//! An ICMP error belongs to no flow (it refers to one): it is classified at the ICMP_ERROR layer
//! with the embedded packet's protocol, remote address and ports, and goes no further up —
//! outbound, it then meets the outbound IP-packet layer. A forwarded packet is classified once,
//! at IPFORWARD, with its source and destination (IS_FRAGMENT for a fragment); with fragment
//! grouping on ([`super::ShimConfig::group_forwarded_fragments`]) the fragment completing a
//! datagram is classified a second time, inside its group (IS_FRAGMENT_GROUP).

use std::ops::ControlFlow::{self, Break, Continue};

use wfp_core::callout::LayerData;
use wfp_core::catalogue::layers;
use wfp_core::constants::ConditionFlags;

use super::classify::Step;
use super::ip::ip_layer;
use super::meta::ip_layer_meta;
use super::packet::Packet;
use super::packet::Seen;
use super::{FragmentDrop, PacketContext, PacketVerdict, Reason, Shim};
use crate::flow::Direction;
use crate::frag::{FragOutcome, Fragment};
use crate::time::Timestamp;
use crate::values::PacketFacts;
use crate::wire::{EmbeddedTransport, IcmpKind, IpVersion, ParsedPacket, Transport};

impl Shim {
    /// The ICMP_ERROR layer for an ICMP error (then `Break`: nothing above it); `Continue` for
    /// every other packet.
    pub(super) fn icmp_error(&mut self, pkt: &mut Packet<'_>) -> ControlFlow<()> {
        let Transport::Icmp(icmp) = &pkt.parsed.transport else {
            return Continue(());
        };
        if icmp.kind != IcmpKind::Error {
            return Continue(());
        }
        let ip = pkt.ip_facts();
        let mut f = ip.clone();
        f.icmp_type = Some(u16::from(icmp.icmp_type));
        f.icmp_code = Some(u16::from(icmp.code));
        if let Some(e) = &icmp.embedded {
            let (lp, rp) = match e.transport {
                EmbeddedTransport::Ports { src_port, dst_port } => (src_port, dst_port),
                _ => (0, 0),
            };
            f.embedded = Some((e.protocol, e.dst, lp, rp));
        }
        let layer = match (pkt.dir, pkt.v6()) {
            (Direction::Inbound, false) => layers::INBOUND_ICMP_ERROR_V4,
            (Direction::Inbound, true) => layers::INBOUND_ICMP_ERROR_V6,
            (Direction::Outbound, false) => layers::OUTBOUND_ICMP_ERROR_V4,
            (Direction::Outbound, true) => layers::OUTBOUND_ICMP_ERROR_V6,
        };
        let meta = pkt.ip_meta();
        let data = LayerData::Packet(pkt.bytes);
        if self
            .classify_step(Step::new(layer, &f, &meta, data), pkt.verdict)
            .is_continue()
            && pkt.dir == Direction::Outbound
        {
            let ip = Step::new(
                ip_layer(pkt.dir, pkt.parsed),
                &ip,
                &meta,
                LayerData::Packet(pkt.bytes),
            );
            let _ = self.classify_step(ip, pkt.verdict);
        }
        Break(())
    }

    /// IPFORWARD: a packet routed through this host, classified once (a fragment with grouping
    /// on: see [`Shim::forward_group`]); layerData is the whole packet (NBL at the IP header,
    /// §8.2), the metadata names the arrival interface.
    pub(super) fn forward(
        &mut self,
        now: Timestamp,
        p: &ParsedPacket,
        bytes: &[u8],
        ctx: &PacketContext,
        v: &mut PacketVerdict,
    ) {
        let facts = PacketFacts {
            protocol: p.ip.protocol,
            source: Some(p.ip.src),
            destination: Some(p.ip.dst),
            ifindex: ctx.ifindex,
            flags: if p.ip.fragment.is_some() {
                ConditionFlags::IS_FRAGMENT.0
            } else {
                0
            },
            ..PacketFacts::default()
        };
        let layer = if p.ip.version == IpVersion::V4 {
            layers::IPFORWARD_V4
        } else {
            layers::IPFORWARD_V6
        };
        let seen = Seen {
            now,
            dir: Direction::Inbound,
            ctx,
            loopback: false,
            mtu: self.config.mtu,
        };
        let meta = ip_layer_meta(p, &seen);
        let fragment = Step::new(layer, &facts, &meta, LayerData::Packet(bytes));
        if self.classify_step(fragment, v).is_continue()
            && self.config.group_forwarded_fragments
            && p.ip.fragment.is_some()
        {
            let mut group = facts;
            group.flags = ConditionFlags::IS_FRAGMENT_GROUP.0;
            let step = Step::new(layer, &group, &meta, LayerData::Packet(bytes));
            self.forward_group(now, (p, bytes), step, v);
        }
    }

    /// §14.6 T-CL-8, fragment grouping on: a forwarded fragment its own indication permitted
    /// joins its datagram's group (the shim's reassembler, keyed by source, destination,
    /// protocol and identification; its bounds and timeouts apply); the fragment that completes
    /// the group is indicated a second time, inside the group (`group`: FLAGS
    /// FWP_CONDITION_FLAG_IS_FRAGMENT_GROUP), and that verdict is its verdict. Earlier
    /// fragments pass with their own verdict ([`Reason::FragmentHeld`]): a data path that
    /// forwards fragments as they arrive cannot take them back, and the datagram of a group
    /// that is blocked never completes at its destination. WFP hands the group over as a chain
    /// of its fragments; the layer data here is the completing fragment.
    fn forward_group(
        &mut self,
        now: Timestamp,
        (p, bytes): (&ParsedPacket, &[u8]),
        group: Step<'_>,
        v: &mut PacketVerdict,
    ) {
        let Some((key, frag)) = Fragment::from_parsed(bytes, p) else {
            v.reason = Reason::FragmentDropped(FragmentDrop::UnusableHeader);
            return;
        };
        match self.frags.handle_fragment(now, key, frag) {
            FragOutcome::Incomplete => v.reason = Reason::FragmentHeld,
            FragOutcome::Dropped(d) => {
                self.stats.fragments_dropped += 1;
                v.reason = Reason::FragmentDropped(FragmentDrop::Reassembly(d));
            }
            FragOutcome::Reassembled(_) => {
                let _ = self.classify_step(group, v);
            }
        }
    }
}
