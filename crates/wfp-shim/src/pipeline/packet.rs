//! The per-packet context every stage reads and extends ([`Packet`]), and the direction a packet
//! is classified in (§8.2: which of the inbound or outbound layers see it).
//!
//! A `Packet` lives on the stack for one [`super::Shim::handle_packet_into`] call (one more for the
//! datagram a fragment completes); it borrows the bytes, the parsed headers, the data path's
//! context and the verdict, so building it allocates nothing.

use std::net::IpAddr;

use wfp_core::callout::Metadata;
use wfp_core::constants::ConditionFlags;

use super::ip::ip_meta;
use super::transport::transport_facts;
use super::{PacketContext, PacketDirection, PacketVerdict, Shim};
use crate::flow::{Direction, FlowId, FlowKey, FlowUpdate};
use crate::time::Timestamp;
use crate::values::PacketFacts;
use crate::wire::{IpVersion, ParsedPacket};

/// When and how the data path saw a packet: the same for a reassembled datagram as for the
/// fragment that completed it.
#[derive(Clone, Copy)]
pub(super) struct Seen<'a> {
    /// When the packet was seen.
    pub(super) now: Timestamp,
    /// Which way it is classified.
    pub(super) dir: Direction,
    /// What the data path said about it.
    pub(super) ctx: &'a PacketContext,
}

/// One packet on its way up (or down) the layers.
pub(super) struct Packet<'a> {
    /// When the packet was seen.
    pub(super) now: Timestamp,
    /// Which way it is classified.
    pub(super) dir: Direction,
    /// What the data path said about it.
    pub(super) ctx: &'a PacketContext,
    /// Its parsed headers.
    pub(super) parsed: &'a ParsedPacket,
    /// Its bytes, from the IP header.
    pub(super) bytes: &'a [u8],
    /// A datagram reassembled from fragments.
    pub(super) reassembled: bool,
    /// What the IP-packet layers see: addresses oriented local/remote, loopback, interface,
    /// IS_REASSEMBLED.
    pub(super) ip: PacketFacts,
    /// What the transport, ALE and data layers see: `ip` plus ports
    /// ([`super::transport::transport_facts`]), then the socket owner (flow tracking).
    pub(super) transport: PacketFacts,
    /// The transport layers' metadata: ipHeaderSize and fragment data, then flow handle and
    /// process id (flow tracking).
    pub(super) meta: Metadata,
    /// The flow-table update of the packet's flow, once tracked.
    pub(super) update: Option<FlowUpdate>,
    /// The new flow has not been authorized yet (INBOUND_TRANSPORT's ALE_CLASSIFY_REQUIRED).
    pub(super) needs_auth: bool,
    /// The verdict being filled.
    pub(super) verdict: &'a mut PacketVerdict,
}

impl<'a> Packet<'a> {
    /// The context of `parsed` (from `bytes`) seen as `seen` says, filling `verdict`.
    #[inline]
    pub(super) fn new(
        seen: Seen<'a>,
        parsed: &'a ParsedPacket,
        bytes: &'a [u8],
        verdict: &'a mut PacketVerdict,
    ) -> Self {
        let ip = ip_facts(parsed, seen.dir, seen.ctx);
        Self {
            now: seen.now,
            dir: seen.dir,
            ctx: seen.ctx,
            parsed,
            bytes,
            reassembled: false,
            transport: transport_facts(&ip, parsed, seen.dir),
            ip,
            meta: ip_meta(parsed),
            update: None,
            needs_auth: false,
            verdict,
        }
    }

    /// The context of the datagram this packet's fragment completed (`parsed`, from `bytes`): same
    /// time, direction and data-path context, same verdict, IS_REASSEMBLED.
    pub(super) fn reassembled_datagram<'b>(
        &'b mut self,
        parsed: &'b ParsedPacket,
        bytes: &'b [u8],
    ) -> Packet<'b> {
        let seen = Seen {
            now: self.now,
            dir: self.dir,
            ctx: self.ctx,
        };
        let mut whole = Packet::new(seen, parsed, bytes, &mut *self.verdict);
        whole.reassembled = true;
        whole.ip.flags |= ConditionFlags::IS_REASSEMBLED.0;
        whole.transport.flags |= ConditionFlags::IS_REASSEMBLED.0;
        whole
    }

    /// The packet's flow, once tracked.
    #[inline]
    pub(super) fn flow(&self) -> Option<FlowId> {
        self.update.map(|u| u.handle.id())
    }

    /// IPv6.
    #[inline]
    pub(super) fn v6(&self) -> bool {
        self.parsed.ip.version == IpVersion::V6
    }

    /// The transport payload (UDP payload, TCP payload, ICMP body) — what DATAGRAM_DATA and the
    /// inbound transport and ALE layers pass as layerData.
    #[inline]
    pub(super) fn payload(&self) -> &'a [u8] {
        let bytes = self.bytes;
        self.parsed
            .payload()
            .and_then(|r| bytes.get(r))
            .unwrap_or(&[])
    }
}

/// What the IP-packet layers see of `p` travelling `dir`.
#[inline]
pub(super) fn ip_facts(p: &ParsedPacket, dir: Direction, ctx: &PacketContext) -> PacketFacts {
    let (local, remote) = match dir {
        Direction::Inbound => (p.ip.dst, p.ip.src),
        Direction::Outbound => (p.ip.src, p.ip.dst),
    };
    let mut flags = 0;
    if local.is_loopback() || remote.is_loopback() {
        flags |= ConditionFlags::IS_LOOPBACK.0;
    }
    PacketFacts {
        protocol: p.ip.protocol,
        local: Some(local),
        remote: Some(remote),
        flags,
        ifindex: ctx.ifindex,
        loopback: flags != 0,
        ..PacketFacts::default()
    }
}

impl Shim {
    /// The direction `p` is classified in: the data path's, or for [`PacketDirection::Infer`]
    /// the configured local networks, else the flows already seen.
    pub(super) fn direction_of(&self, given: PacketDirection, p: &ParsedPacket) -> Direction {
        match given {
            PacketDirection::Inbound => Direction::Inbound,
            PacketDirection::Outbound | PacketDirection::Forward => Direction::Outbound,
            PacketDirection::Infer => self.infer_direction(p),
        }
    }

    fn infer_direction(&self, p: &ParsedPacket) -> Direction {
        if !self.config.local_networks.is_empty() {
            let local = |a| {
                self.config
                    .local_networks
                    .iter()
                    .any(|(n, l)| in_prefix(a, *n, *l))
            };
            if local(p.ip.src) {
                return Direction::Outbound;
            }
            if local(p.ip.dst) {
                return Direction::Inbound;
            }
        }
        // The initiator of a flow is the local side: a packet matching a flow that was
        // opened the other way is inbound.
        if let Some(k) = FlowKey::from_packet(Direction::Outbound, p) {
            if self.flows.lookup(&k).is_some() {
                return Direction::Outbound;
            }
            if self.flows.lookup(&k.reversed()).is_some() {
                return Direction::Inbound;
            }
        }
        if let Some(k) = FlowKey::from_packet(Direction::Inbound, p) {
            if self.flows.lookup(&k).is_some() {
                return Direction::Inbound;
            }
        }
        Direction::Outbound
    }
}

fn in_prefix(a: IpAddr, net: IpAddr, len: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}
