//! The per-packet context every stage reads and extends ([`Packet`]), and the direction a packet
//! is classified in (§8.2: which of the inbound or outbound layers see it).
//!
//! A `Packet` lives on the stack for one [`super::Shim::handle_packet_into`] call (one more for the
//! datagram a fragment completes); it borrows the bytes, the parsed headers, the data path's
//! context and the verdict, so building it allocates nothing.

use std::net::IpAddr;

use wfp_core::callout::Metadata;
use wfp_core::constants::ConditionFlags;

use super::meta::{ip_layer_meta, LazyMeta};
use super::slab::ExtraRef;
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
    /// Between two endpoints of this host ([`PacketDirection::Loopback`]): IS_LOOPBACK on every
    /// layer, and the datagram a fragment completes goes through the receiver's side too.
    pub(super) loopback: bool,
    /// The link MTU (PATH_MTU metadata).
    pub(super) mtu: u32,
}

/// How a packet is classified: on one side, or on both (loopback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Way {
    /// Inbound or outbound.
    One(Direction),
    /// Outbound for the sender's flow, then inbound for the receiver's.
    Loopback,
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
    /// Between two endpoints of this host (see [`Seen::loopback`]).
    pub(super) loopback: bool,
    /// The link MTU.
    pub(super) mtu: u32,
    /// What the transport, ALE and data layers see: what the IP-packet layers see
    /// ([`Packet::ip_facts`]) plus ports ([`super::transport::transport_facts`]), then the socket
    /// owner (flow tracking). The IP-packet layers' facts are built only when one of them
    /// classifies (most packets cross them without filters): one facts value per packet.
    pub(super) transport: PacketFacts,
    /// The transport and upper layers' metadata ([`super::meta`]), then the flow's fields (flow
    /// tracking), built when a classify needs it ([`LazyMeta`]). The IP-packet layers' metadata
    /// is built when one of them classifies ([`Packet::ip_meta`]): most packets cross those
    /// layers without filters.
    pub(super) meta: LazyMeta<'a>,
    /// The flow-table update of the packet's flow, once tracked.
    pub(super) update: Option<FlowUpdate>,
    /// Where the tracked flow's layer state lives (`slab.rs`): every step after flow tracking
    /// reaches it through this, without another lookup.
    pub(super) extra: Option<ExtraRef>,
    /// The new flow has not been authorized yet (INBOUND_TRANSPORT's ALE_CLASSIFY_REQUIRED).
    pub(super) needs_auth: bool,
    /// The packet's flow is a redirected connection (§10.3, `redirect.rs`): flow tracking added
    /// its metadata; AUTH_CONNECT and FLOW_ESTABLISHED add IS_CONNECTION_REDIRECTED.
    pub(super) redirected: bool,
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
        Self {
            now: seen.now,
            dir: seen.dir,
            ctx: seen.ctx,
            parsed,
            bytes,
            reassembled: false,
            loopback: seen.loopback,
            mtu: seen.mtu,
            transport: transport_facts(ip_facts(parsed, &seen), parsed, seen.dir),
            meta: LazyMeta::new(parsed, seen),
            update: None,
            extra: None,
            needs_auth: false,
            redirected: false,
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
        let seen = self.seen();
        let mut whole = Packet::new(seen, parsed, bytes, &mut *self.verdict);
        whole.mark_reassembled();
        whole
    }

    /// When and how this packet was seen.
    pub(super) fn seen(&self) -> Seen<'a> {
        Seen {
            now: self.now,
            dir: self.dir,
            ctx: self.ctx,
            loopback: self.loopback,
            mtu: self.mtu,
        }
    }

    /// Marks a datagram reassembled from fragments (IS_REASSEMBLED).
    pub(super) fn mark_reassembled(&mut self) {
        self.reassembled = true;
        self.transport.flags |= ConditionFlags::IS_REASSEMBLED.0;
    }

    /// What the IP-packet layers see: addresses oriented local/remote, loopback, interface,
    /// IS_REASSEMBLED (built when one of them classifies).
    pub(super) fn ip_facts(&self) -> PacketFacts {
        let mut f = ip_facts(self.parsed, &self.seen());
        if self.reassembled {
            f.flags |= ConditionFlags::IS_REASSEMBLED.0;
        }
        f
    }

    /// The IP-packet layers' metadata ([`super::meta`]). Once the packet's flow is tracked its
    /// id is the FLOW_HANDLE value without the flag (the IP-packet layers have no FLOW_HANDLE,
    /// §8.2): only the engine's hint of which data path a packet cloned there belongs to.
    pub(super) fn ip_meta(&self) -> Metadata {
        ip_meta_of(self.parsed, &self.seen(), self.flow())
    }

    /// [`Packet::ip_meta`] to build later (it borrows none of the packet's mutable parts), for a
    /// classify that may be answered without it.
    pub(super) fn ip_meta_fn(&self) -> impl Fn() -> Metadata + 'a {
        let (parsed, seen, flow) = (self.parsed, self.seen(), self.flow());
        move || ip_meta_of(parsed, &seen, flow)
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

/// The IP-packet layers' metadata of `parsed` seen as `seen` (see [`Packet::ip_meta`]).
fn ip_meta_of(parsed: &ParsedPacket, seen: &Seen<'_>, flow: Option<FlowId>) -> Metadata {
    let mut m = ip_layer_meta(parsed, seen);
    if let Some(id) = flow {
        m.flow_handle = id.get();
    }
    m
}

/// `IF_TYPE_SOFTWARE_LOOPBACK` (IANA ifType 24).
pub(super) const IF_TYPE_SOFTWARE_LOOPBACK: u32 = 24;

/// What the IP-packet layers see of `p` as `seen` says: IS_LOOPBACK (§8.3 FLAGS) for a loopback
/// address, a packet between two endpoints of this host, or one on a software-loopback
/// interface.
#[inline]
pub(super) fn ip_facts(p: &ParsedPacket, seen: &Seen<'_>) -> PacketFacts {
    let (local, remote) = match seen.dir {
        Direction::Inbound => (p.ip.dst, p.ip.src),
        Direction::Outbound => (p.ip.src, p.ip.dst),
    };
    let on_lo = seen
        .ctx
        .interface
        .is_some_and(|i| i.if_type == IF_TYPE_SOFTWARE_LOOPBACK);
    let mut flags = 0;
    if seen.loopback || on_lo || local.is_loopback() || remote.is_loopback() {
        flags |= ConditionFlags::IS_LOOPBACK.0;
    }
    PacketFacts {
        protocol: p.ip.protocol,
        local: Some(local),
        remote: Some(remote),
        flags,
        ifindex: seen.ctx.ifindex,
        loopback: flags != 0,
        ..PacketFacts::default()
    }
}

impl Shim {
    /// How `p` is classified: the data path's direction, or for [`PacketDirection::Infer`] the
    /// configured local networks, else the flows already seen; [`Way::Loopback`] for
    /// [`PacketDirection::Loopback`], for an inferred packet between two loopback addresses or
    /// two addresses of the local networks, and with [`super::ShimConfig::loopback_once`] for
    /// any packet between two loopback addresses.
    pub(super) fn direction_of(&self, given: PacketDirection, p: &ParsedPacket) -> Way {
        let both_loopback = p.ip.src.is_loopback() && p.ip.dst.is_loopback();
        match given {
            PacketDirection::Loopback => Way::Loopback,
            _ if both_loopback && self.config.loopback_once => Way::Loopback,
            PacketDirection::Inbound => Way::One(Direction::Inbound),
            PacketDirection::Outbound | PacketDirection::Forward => Way::One(Direction::Outbound),
            PacketDirection::Infer if both_loopback => Way::Loopback,
            PacketDirection::Infer => self.infer_direction(p),
        }
    }

    /// Whether `a` is in one of the configured local networks.
    fn is_local(&self, a: IpAddr) -> bool {
        self.config
            .local_networks
            .iter()
            .any(|(n, l)| in_prefix(a, *n, *l))
    }

    fn infer_direction(&self, p: &ParsedPacket) -> Way {
        if !self.config.local_networks.is_empty() {
            match (self.is_local(p.ip.src), self.is_local(p.ip.dst)) {
                (true, true) => return Way::Loopback,
                (true, false) => return Way::One(Direction::Outbound),
                (false, true) => return Way::One(Direction::Inbound),
                (false, false) => {}
            }
        }
        // The initiator of a flow is the local side: a packet matching a flow that was
        // opened the other way is inbound.
        if let Some(k) = FlowKey::from_packet(Direction::Outbound, p) {
            if self.flows.lookup(&k).is_some() {
                return Way::One(Direction::Outbound);
            }
            if self.flows.lookup(&k.reversed()).is_some() {
                return Way::One(Direction::Inbound);
            }
        }
        if let Some(k) = FlowKey::from_packet(Direction::Inbound, p) {
            if self.flows.lookup(&k).is_some() {
                return Way::One(Direction::Inbound);
            }
        }
        Way::One(Direction::Outbound)
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
