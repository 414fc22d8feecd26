//! Tunnels in a replay: one captured frame becomes the packets a host with the matching tunnel
//! interfaces would classify.
//!
//! ```text
//!  frame ──decode_link──► L3Packet (PPPoE / MPLS / PBB / VLANs already crossed)
//!          └─ decapsulate, at most MAX_ENCAP_DEPTH times ──► Levels: outer, [middle...], inner
//!                                                               │ each one Shim pass
//!  inbound / unknown direction: outer first ──► ... ──► inner    │ (stop at the first BLOCK)
//!  outbound:                    inner first ──► ... ──► outer    ▼
//!                                                     frame verdict = the first BLOCK, else the
//!                                                     innermost pass's PERMIT
//! ```
//!
//! * **Interfaces.** The outermost packet is the physical interface's (the capture's interface
//!   index, when the link type records one). Every decapsulated packet arrives on a tunnel
//!   interface: `IF_TYPE_TUNNEL` (131) with `TUNNEL_TYPE_DIRECT` (2) for IPIP / 6in4 / 4in6 /
//!   6in6 and `TUNNEL_TYPE_OTHER` (1) for GRE / VXLAN / Geneve, and an interface index of its own:
//!   [`TUNNEL_IFINDEX_BASE`] + n, where n counts the distinct tunnels in order of first appearance
//!   in the capture. A tunnel is its kind, its two endpoint addresses (unordered: both directions
//!   are one interface) and its GRE key / VNI. The same capture always gives the same indexes.
//! * **Which layers.** A host classifies an outer packet at the IP-packet layers of the physical
//!   interface only, and the inner packet through every layer: replay hands the outer levels to
//!   `Shim::handle_ip_packet_into` (INBOUND_/OUTBOUND_IPPACKET, no flow) and the innermost to
//!   `Shim::handle_packet_into`. A frame whose tunnel was not decoded has one level, its outer
//!   packet, which then goes through every layer like any other packet.
//! * **Combining.** A host drops a packet at the first layer that blocks it: inbound the outer
//!   packet is classified before it is decapsulated, outbound the inner packet before it is
//!   encapsulated. The passes run in that order and stop at the first BLOCK (or ABSORB), which is
//!   the frame's verdict; when every pass permits, the innermost pass's verdict (its flow, its
//!   deciding filter) stands for the frame. So the frame is blocked if either side is, and a
//!   blocked outer packet's inner packet is never classified. Captures without a direction run
//!   outer first.
//! * **Not decoded** (named in the report's `encapsulations.unsupported` with a count): link types
//!   this project does not decode, link-layer encapsulations nested too deep, MPLS payloads that
//!   are neither IP nor a pseudowire, tunnel headers [`wfp_pcap::tunnel`] does not decode (GRE
//!   version 1, GRE source routing, ERSPAN and other GRE / Geneve protocol types), fragmented or
//!   cut-short tunnel packets, and tunnels nested deeper than [`MAX_ENCAP_DEPTH`]. Their frames are
//!   classified as far as they were decoded (the outer packet), or skipped when no IP packet was
//!   reached.

use std::collections::HashMap;
use std::net::IpAddr;

use wfp_pcap::{
    decapsulate, Encapsulation, L3Packet, LinkError, NetworkProtocol, Tunnel, TunnelError,
    TunnelKind, MAX_ENCAP_DEPTH,
};
use wfp_shim::InterfaceInfo;

/// Interface index of the first tunnel interface; the next distinct tunnel gets the next index.
pub const TUNNEL_IFINDEX_BASE: u32 = 0x1000_0000;
/// IANA `IF_TYPE_TUNNEL`.
pub const IF_TYPE_TUNNEL: u32 = 131;
/// IANA `IF_TYPE_PPP`: the interface of a PPPoE session.
pub const IF_TYPE_PPP: u32 = 23;
/// Windows `TUNNEL_TYPE_OTHER`.
pub const TUNNEL_TYPE_OTHER: u32 = 1;
/// Windows `TUNNEL_TYPE_DIRECT`: IP directly inside IP, no tunnel header.
pub const TUNNEL_TYPE_DIRECT: u32 = 2;

/// The packets of one frame: the outermost (index 0) to the innermost. The outermost is held
/// inline and the packets inside tunnels in a vector, so the common frame (no tunnel) is built
/// without allocating and without initialising room for MAX_ENCAP_DEPTH levels.
pub(crate) struct Levels<'a> {
    outer: Level<'a>,
    /// The packets inside tunnels, outermost first (at most MAX_ENCAP_DEPTH).
    inner: Vec<Level<'a>>,
}

/// One packet of a frame and the interface it arrives on: only what a pass reads, not the whole
/// link-layer result (a small value, built and moved for every frame).
#[derive(Clone, Copy)]
pub(crate) struct Level<'a> {
    /// The IP packet.
    pub(crate) network: &'a [u8],
    /// The interface index: the tunnel interface's, else the one the link type records.
    pub(crate) ifindex: Option<u32>,
    /// The interface type: the tunnel's, else PPP for a PPPoE session.
    pub(crate) interface: Option<InterfaceInfo>,
    /// The tunnel it came out of (`None` for the outermost packet).
    pub(crate) tunnel: Option<TunnelIf>,
}

impl<'a> Level<'a> {
    fn new(l3: &L3Packet<'a>, tunnel: Option<TunnelIf>) -> Self {
        Self {
            network: l3.network,
            ifindex: tunnel.map(|t| t.ifindex).or(l3.linux_ifindex),
            interface: tunnel
                .map(TunnelIf::interface)
                .or_else(|| link_interface(l3)),
            tunnel,
        }
    }
}

/// The tunnel interface a decapsulated packet arrives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TunnelIf {
    pub(crate) kind: TunnelKind,
    pub(crate) ifindex: u32,
    pub(crate) key: Option<u32>,
}

impl TunnelIf {
    /// What the shim is told about the interface.
    pub(crate) fn interface(self) -> InterfaceInfo {
        let tunnel_type = if self.kind.is_direct() {
            TUNNEL_TYPE_DIRECT
        } else {
            TUNNEL_TYPE_OTHER
        };
        InterfaceInfo {
            if_type: IF_TYPE_TUNNEL,
            tunnel_type,
        }
    }
}

impl<'a> Levels<'a> {
    /// The levels, outermost first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Level<'a>> + '_ {
        std::iter::once(&self.outer).chain(self.inner.iter())
    }

    /// How many packets the frame holds.
    pub(crate) fn len(&self) -> usize {
        1 + self.inner.len()
    }

    /// Level `i`.
    pub(crate) fn get(&self, i: usize) -> Option<&Level<'a>> {
        match i {
            0 => Some(&self.outer),
            _ => self.inner.get(i - 1),
        }
    }

    fn push(&mut self, level: Level<'a>) {
        if self.inner.len() < MAX_ENCAP_DEPTH {
            self.inner.push(level);
        }
    }
}

/// Tunnel interfaces seen so far: (kind, endpoints low/high, key) → interface index.
#[derive(Default)]
pub(crate) struct TunnelInterfaces {
    map: HashMap<(TunnelKind, IpAddr, IpAddr, Option<u32>), u32>,
}

impl TunnelInterfaces {
    fn interface(&mut self, t: &Tunnel<'_>) -> TunnelIf {
        let (lo, hi) = if t.outer_src <= t.outer_dst {
            (t.outer_src, t.outer_dst)
        } else {
            (t.outer_dst, t.outer_src)
        };
        let next = TUNNEL_IFINDEX_BASE.saturating_add(u32::try_from(self.map.len()).unwrap_or(0));
        let ifindex = *self.map.entry((t.kind, lo, hi, t.key)).or_insert(next);
        TunnelIf {
            kind: t.kind,
            ifindex,
            key: t.key,
        }
    }
}

/// What taking a frame apart found, for the report: names of encapsulations decoded and not.
#[derive(Default)]
pub(crate) struct Found {
    pub(crate) decoded: Vec<&'static str>,
    pub(crate) unsupported: Option<String>,
}

impl Found {
    fn decoded(&mut self, name: &'static str) {
        if !self.decoded.contains(&name) {
            self.decoded.push(name);
        }
    }

    #[inline]
    pub(crate) fn link(&mut self, l3: &L3Packet<'_>) {
        // A plain IP frame: nothing to name (checked inline first, it is nearly every frame).
        if !(l3.encapsulations.is_empty() && l3.protocol.ip_version().is_some()) {
            self.link_slow(l3);
        }
    }

    #[cold]
    fn link_slow(&mut self, l3: &L3Packet<'_>) {
        for e in l3.encapsulations.iter() {
            self.decoded(e.name());
        }
        if let NetworkProtocol::OtherMplsPayload(nibble) = l3.protocol {
            self.unsupported = Some(format!("MPLS payload with first nibble {nibble}"));
        }
    }
}

/// The name a link error is counted under in `encapsulations.unsupported`, if it is one.
pub(crate) fn unsupported_link(e: &LinkError) -> Option<String> {
    match e {
        LinkError::UnsupportedLinkType(t) => Some(format!("link type {t}")),
        LinkError::TooDeep => Some(format!(
            "link-layer encapsulations nested deeper than {MAX_ENCAP_DEPTH}"
        )),
        _ => None,
    }
}

/// The name a tunnel that could not be taken apart is counted under.
fn unsupported_tunnel(e: &TunnelError) -> String {
    match e {
        TunnelError::Truncated { kind, what, .. } => format!("{kind} {what} cut short"),
        TunnelError::Inner { kind, .. } => format!("{kind} inner frame nested too deep"),
        other => other.to_string(),
    }
}

/// Whether a link-layer result carries the PPP interface (a PPPoE session).
pub(crate) fn link_interface(l3: &L3Packet<'_>) -> Option<InterfaceInfo> {
    l3.encapsulations
        .iter()
        .any(|e| matches!(e, Encapsulation::PppoeSession { .. }))
        .then_some(InterfaceInfo {
            if_type: IF_TYPE_PPP,
            tunnel_type: 0,
        })
}

/// Takes `l3` (an IP packet) apart into the packets a host would classify.
#[inline]
pub(crate) fn levels<'a>(
    l3: &L3Packet<'a>,
    tunnels: &mut TunnelInterfaces,
    found: &mut Found,
) -> Levels<'a> {
    found.link(l3);
    let mut levels = Levels {
        outer: Level::new(l3, None),
        inner: Vec::new(),
    };
    // The common frame, no tunnel: one decapsulation, answered from its precheck.
    let mut next = decapsulate(l3);
    for _ in 0..MAX_ENCAP_DEPTH {
        match next {
            Ok(Some(t)) => {
                found.decoded(t.kind.name());
                found.link(&t.inner);
                if t.inner.protocol.ip_version().is_none() {
                    // ARP, LLDP... inside the tunnel: not an IP packet to classify.
                    return levels;
                }
                let tunnel = Some(tunnels.interface(&t));
                levels.push(Level::new(&t.inner, tunnel));
                next = decapsulate(&t.inner);
            }
            Ok(None) => return levels,
            Err(e) => {
                found.unsupported = Some(unsupported_tunnel(&e));
                return levels;
            }
        }
    }
    if matches!(next, Ok(Some(_))) {
        found.unsupported = Some(format!("tunnels nested deeper than {MAX_ENCAP_DEPTH}"));
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfp_pcap::{decode_link, LinkType};

    fn ipip(src: u8, inner: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + inner.len()).expect("small");
        let [t0, t1] = total.to_be_bytes();
        let mut p = vec![
            0x45, 0, t0, t1, 0, 0, 0, 0, 64, 4, 0, 0, 192, 0, 2, src, 192, 0, 2, 9,
        ];
        p.extend_from_slice(inner);
        p
    }

    /// The tunnel interface index of a one-tunnel packet's inner packet.
    fn inner_ifindex(
        bytes: &[u8],
        tunnels: &mut TunnelInterfaces,
        found: &mut Found,
    ) -> Option<u32> {
        let l3 = decode_link(LinkType::RAW, bytes).ok()?;
        let l = levels(&l3, tunnels, found);
        l.get(1).and_then(|x| x.tunnel).map(|t| t.ifindex)
    }

    #[test]
    fn tunnel_indexes_follow_first_appearance_and_ignore_direction() {
        let inner = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 59, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let mut tunnels = TunnelInterfaces::default();
        let mut found = Found::default();
        let a = ipip(1, &inner);
        let mut b = ipip(2, &inner);
        let first = TUNNEL_IFINDEX_BASE;
        assert_eq!(inner_ifindex(&a, &mut tunnels, &mut found), Some(first));
        assert_eq!(inner_ifindex(&b, &mut tunnels, &mut found), Some(first + 1));
        // The reply direction of the second tunnel: same interface.
        b[12..16].copy_from_slice(&[192, 0, 2, 9]);
        b[16..20].copy_from_slice(&[192, 0, 2, 2]);
        assert_eq!(inner_ifindex(&b, &mut tunnels, &mut found), Some(first + 1));
        assert_eq!(inner_ifindex(&a, &mut tunnels, &mut found), Some(first));
        assert_eq!(found.decoded, ["IPIP"]);
        let l3 = decode_link(LinkType::RAW, &a).expect("ip");
        let l = levels(&l3, &mut tunnels, &mut found);
        let t = l.get(1).and_then(|x| x.tunnel).expect("tunnel");
        assert_eq!(t.interface().if_type, IF_TYPE_TUNNEL);
        assert_eq!(t.interface().tunnel_type, TUNNEL_TYPE_DIRECT);
    }

    #[test]
    fn nesting_past_the_bound_is_named() {
        let mut p = vec![
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 59, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        for _ in 0..=MAX_ENCAP_DEPTH {
            p = ipip(1, &p);
        }
        let mut found = Found::default();
        let l = levels(
            &decode_link(LinkType::RAW, &p).expect("ip"),
            &mut TunnelInterfaces::default(),
            &mut found,
        );
        assert_eq!(l.len(), MAX_ENCAP_DEPTH + 1);
        assert_eq!(
            found.unsupported.as_deref(),
            Some("tunnels nested deeper than 8")
        );
    }
}
