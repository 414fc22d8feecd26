//! Tunnel decapsulation: from an IP packet that carries another packet to the packet it carries.
//!
//! Contract: [`decapsulate`] never panics and never allocates. It reads the outer IP header only
//! as far as it must to find a tunnel's payload (version, header length, total / payload length,
//! fragment fields, protocol or next header, addresses, IPv6 extension headers) and checks
//! nothing else: validating the outer packet is the packet engine's business. A packet that is not
//! a tunnel packet is `Ok(None)`; a tunnel packet whose payload cannot be reached is a
//! [`TunnelError`] naming what stands in the way.
//!
//! | outer | tunnel | [`TunnelKind`] | key | inner |
//! |---|---|---|---|---|
//! | IPv4 protocol 4 | IP-in-IP (RFC 2003) | `Ipip` | — | IPv4 |
//! | IPv4 protocol 41 | 6in4 (RFC 4213, `sit`) | `SixInFour` | — | IPv6 |
//! | IPv6 next header 4 | 4in6 (RFC 2473) | `FourInSix` | — | IPv4 |
//! | IPv6 next header 41 | IPv6-in-IPv6 (RFC 2473) | `SixInSix` | — | IPv6 |
//! | IP protocol 47 | GRE (RFC 2784/2890): checksum, key and sequence fields skipped | `Gre` | the GRE key | 0x0800 / 0x86DD: IP; 0x6558: an Ethernet frame; 0x8847: MPLS |
//! | UDP to port 4789 | VXLAN (RFC 7348), I flag set | `Vxlan` | VNI | an Ethernet frame |
//! | UDP to port 6081 | Geneve (RFC 8926), version 0, options skipped | `Geneve` | VNI | 0x6558: Ethernet; 0x0800 / 0x86DD: IP |
//!
//! An inner Ethernet frame goes through the same ethertype chain as a captured one
//! ([`crate::link`]: VLAN tags, PPPoE, MPLS, PBB), so a VXLAN frame carrying QinQ tags decodes.
//! An IPv4 total length of 0 (segmentation offload) means "to the end of the capture", as
//! Wireshark reads it. Tunnels nest: decapsulate the inner packet again, at most
//! [`crate::MAX_ENCAP_DEPTH`] times (the caller bounds the loop).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bytes::{array_at, be_u16_at};
use crate::link::{ethertype_chain, ip_version, plain, ETHERTYPE_MPLS};
use crate::{L3Packet, LinkError, LinkType, NetworkProtocol};

const PROTO_IPIP: u8 = 4;
const PROTO_UDP: u8 = 17;
const PROTO_IPV6: u8 = 41;
const PROTO_GRE: u8 = 47;
const PORT_VXLAN: u16 = 4789;
const PORT_GENEVE: u16 = 6081;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_TEB: u16 = 0x6558;
const ETHERNET_HEADER_LEN: usize = 14;
const UDP_HEADER_LEN: usize = 8;
const VXLAN_HEADER_LEN: usize = 8;
const GENEVE_HEADER_LEN: usize = 8;
const IPV6_HEADER_LEN: usize = 40;
/// Most IPv6 extension headers walked before the payload.
const MAX_IPV6_EXTENSIONS: usize = 8;

/// The kind of tunnel a packet was carried in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TunnelKind {
    /// Generic Routing Encapsulation (IP protocol 47).
    Gre,
    /// VXLAN (UDP port 4789).
    Vxlan,
    /// Geneve (UDP port 6081).
    Geneve,
    /// IPv4 in IPv4 (protocol 4).
    Ipip,
    /// IPv6 in IPv4 (protocol 41).
    SixInFour,
    /// IPv4 in IPv6 (next header 4).
    FourInSix,
    /// IPv6 in IPv6 (next header 41).
    SixInSix,
}

impl TunnelKind {
    /// `GRE`, `VXLAN`, `Geneve`, `IPIP`, `6in4`, `4in6`, `6in6`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gre => "GRE",
            Self::Vxlan => "VXLAN",
            Self::Geneve => "Geneve",
            Self::Ipip => "IPIP",
            Self::SixInFour => "6in4",
            Self::FourInSix => "4in6",
            Self::SixInSix => "6in6",
        }
    }

    /// Whether the inner packet follows the outer IP header directly (RFC 2003 / 4213 / 2473),
    /// with no tunnel header of its own.
    pub fn is_direct(self) -> bool {
        matches!(
            self,
            Self::Ipip | Self::SixInFour | Self::FourInSix | Self::SixInSix
        )
    }
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tunnel packet taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tunnel<'a> {
    /// The kind of tunnel.
    pub kind: TunnelKind,
    /// The outer packet's source address (one tunnel endpoint).
    pub outer_src: IpAddr,
    /// The outer packet's destination address (the other tunnel endpoint).
    pub outer_dst: IpAddr,
    /// The GRE key, or the VXLAN / Geneve network identifier.
    pub key: Option<u32>,
    /// The carried packet: its network-layer bytes (`link_header_len` counts from the start of
    /// the outer IP header) and, for an inner Ethernet frame, its VLAN ids and encapsulations.
    pub inner: L3Packet<'a>,
}

/// Why a tunnel packet's payload could not be reached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    /// The outer packet is a fragment: its payload is whole only after reassembly.
    #[error("{kind} packet fragmented in its outer IP header")]
    Fragmented {
        /// The tunnel.
        kind: TunnelKind,
    },
    /// A tunnel header, or the inner frame's link-layer header, is cut short.
    #[error("{kind} packet cut short: its {what} needs {needed} bytes, {available} there")]
    Truncated {
        /// The tunnel.
        kind: TunnelKind,
        /// The header being read.
        what: &'static str,
        /// Bytes needed from the start of the outer IP header.
        needed: usize,
        /// Bytes there.
        available: usize,
    },
    /// The inner Ethernet frame nests too deep.
    #[error("{kind} inner frame: {source}")]
    Inner {
        /// The tunnel.
        kind: TunnelKind,
        /// What the link-layer decoder said.
        #[source]
        source: LinkError,
    },
    /// A tunnel header this crate does not decode: GRE version 1 (PPTP), GRE source routing,
    /// an ERSPAN or other GRE / Geneve protocol type.
    #[error("{kind} {what} {value:#06x}")]
    Unsupported {
        /// The tunnel.
        kind: TunnelKind,
        /// The field: `version`, `routing flags`, `protocol`.
        what: &'static str,
        /// Its value.
        value: u32,
    },
}

impl TunnelError {
    /// The tunnel whose packet this is.
    pub fn kind(&self) -> TunnelKind {
        match self {
            Self::Fragmented { kind }
            | Self::Truncated { kind, .. }
            | Self::Inner { kind, .. }
            | Self::Unsupported { kind, .. } => *kind,
        }
    }
}

/// The outer IP packet's fields the decapsulation needs.
struct Outer {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    /// Offset of the payload from the start of the IP header.
    payload: usize,
    /// End of the payload (the IP length, clamped to the bytes there).
    end: usize,
    fragment: bool,
}

/// Takes `l3`'s tunnel apart when it is an IPv4 / IPv6 packet of a tunnel in the table of the
/// module doc; `Ok(None)` for any other packet (including ones too short to tell).
#[inline]
pub fn decapsulate<'a>(l3: &L3Packet<'a>) -> Result<Option<Tunnel<'a>>, TunnelError> {
    if !may_be_tunnel(l3) {
        return Ok(None);
    }
    parse(l3)
}

/// [`decapsulate`] without the precheck.
fn parse<'a>(l3: &L3Packet<'a>) -> Result<Option<Tunnel<'a>>, TunnelError> {
    let bytes = l3.network;
    let outer = match l3.protocol {
        NetworkProtocol::Ipv4 => ipv4(bytes),
        NetworkProtocol::Ipv6 => ipv6(bytes),
        _ => None,
    };
    let Some(outer) = outer else {
        return Ok(None);
    };
    let v4 = l3.protocol == NetworkProtocol::Ipv4;
    let kind = match outer.protocol {
        PROTO_IPIP if v4 => TunnelKind::Ipip,
        PROTO_IPIP => TunnelKind::FourInSix,
        PROTO_IPV6 if v4 => TunnelKind::SixInFour,
        PROTO_IPV6 => TunnelKind::SixInSix,
        PROTO_GRE => TunnelKind::Gre,
        PROTO_UDP => match udp_tunnel(bytes, &outer) {
            Some(kind) => kind,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    if outer.fragment {
        return Err(TunnelError::Fragmented { kind });
    }
    let payload = bytes.get(..outer.end).unwrap_or(bytes);
    let d = Decap {
        kind,
        bytes: payload,
        at: outer.payload,
    };
    let (key, inner) = match kind {
        TunnelKind::Ipip | TunnelKind::FourInSix => (None, d.raw_ip(NetworkProtocol::Ipv4)),
        TunnelKind::SixInFour | TunnelKind::SixInSix => (None, d.raw_ip(NetworkProtocol::Ipv6)),
        TunnelKind::Gre => d.gre()?,
        TunnelKind::Vxlan => d.vxlan()?,
        TunnelKind::Geneve => d.geneve()?,
    };
    Ok(Some(Tunnel {
        kind,
        outer_src: outer.src,
        outer_dst: outer.dst,
        key,
        inner,
    }))
}

/// A precheck from the protocol byte (and a UDP destination port) alone: `false` only for a
/// packet the full parse below would also answer `Ok(None)` for (a TCP/ICMP/plain UDP packet,
/// the common case, is not taken apart into addresses). `true` means "parse it": IPv6 extension
/// headers, tunnel protocols and the VXLAN/Geneve ports.
#[inline]
fn may_be_tunnel(l3: &L3Packet<'_>) -> bool {
    let b = l3.network;
    let (protocol, payload) = match l3.protocol {
        NetworkProtocol::Ipv4 => match (b.first(), b.get(9)) {
            (Some(vihl), Some(&p)) => (p, usize::from(vihl & 0x0F) * 4),
            _ => return false,
        },
        NetworkProtocol::Ipv6 => match b.get(6) {
            // Hop-by-hop, routing, fragment, authentication, destination options: walk them.
            Some(0 | 43 | 44 | 51 | 60) | None => return true,
            Some(&next) => (next, IPV6_HEADER_LEN),
        },
        _ => return false,
    };
    match protocol {
        PROTO_IPIP | PROTO_IPV6 | PROTO_GRE => true,
        PROTO_UDP => matches!(be_u16_at(b, payload + 2), Some(PORT_VXLAN | PORT_GENEVE)),
        _ => false,
    }
}

/// VXLAN or Geneve by the UDP destination port (and, for VXLAN, the I flag).
fn udp_tunnel(bytes: &[u8], outer: &Outer) -> Option<TunnelKind> {
    let dst_port = be_u16_at(bytes, outer.payload + 2)?;
    let first = outer.payload + UDP_HEADER_LEN;
    match dst_port {
        PORT_VXLAN if bytes.get(first).is_some_and(|flags| flags & 0x08 != 0) => {
            Some(TunnelKind::Vxlan)
        }
        PORT_GENEVE if bytes.get(first).is_some_and(|b| b >> 6 == 0) => Some(TunnelKind::Geneve),
        _ => None,
    }
}

fn ipv4(bytes: &[u8]) -> Option<Outer> {
    let [vihl, _, l0, l1, _, _, f0, f1, _, protocol, ..] = array_at::<20>(bytes, 0)?;
    let ihl = usize::from(vihl & 0x0F) * 4;
    if vihl >> 4 != 4 || ihl < 20 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([l0, l1]));
    // Total length 0: a segmentation-offload super-packet; the capture's length stands.
    let end = if total == 0 {
        bytes.len()
    } else {
        total.min(bytes.len())
    };
    let flags = u16::from_be_bytes([f0, f1]);
    let src = Ipv4Addr::from(array_at::<4>(bytes, 12)?);
    let dst = Ipv4Addr::from(array_at::<4>(bytes, 16)?);
    (ihl <= end).then_some(Outer {
        src: src.into(),
        dst: dst.into(),
        protocol,
        payload: ihl,
        end,
        fragment: flags & 0x3FFF != 0,
    })
}

fn ipv6(bytes: &[u8]) -> Option<Outer> {
    let [v, _, _, _, l0, l1, mut next, ..] = array_at::<8>(bytes, 0)?;
    if v >> 4 != 6 {
        return None;
    }
    let src = Ipv6Addr::from(array_at::<16>(bytes, 8)?);
    let dst = Ipv6Addr::from(array_at::<16>(bytes, 24)?);
    let payload_len = usize::from(u16::from_be_bytes([l0, l1]));
    let end = match payload_len {
        0 => bytes.len(),
        n => (IPV6_HEADER_LEN + n).min(bytes.len()),
    };
    let mut at = IPV6_HEADER_LEN;
    let mut fragment = false;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        let [nh, len] = array_at::<2>(bytes, at)?;
        let ext_len = match next {
            // Hop-by-hop, routing, destination options.
            0 | 43 | 60 => (usize::from(len) + 1) * 8,
            // Fragment: a fragment unless it is an atomic one (offset 0, no more fragments).
            44 => {
                let off = be_u16_at(bytes, at + 2)?;
                fragment |= off & 0xFFF9 != 0;
                8
            }
            // Authentication header.
            51 => (usize::from(len) + 2) * 4,
            _ => break,
        };
        next = nh;
        at += ext_len;
    }
    (at <= end).then_some(Outer {
        src: src.into(),
        dst: dst.into(),
        protocol: next,
        payload: at,
        end,
        fragment,
    })
}

/// One tunnel payload being taken apart: `bytes` is the outer IP packet (to its IP length), the
/// tunnel header starts at `at`.
struct Decap<'a> {
    kind: TunnelKind,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Decap<'a> {
    fn cut(&self, what: &'static str, needed: usize) -> TunnelError {
        TunnelError::Truncated {
            kind: self.kind,
            what,
            needed,
            available: self.bytes.len(),
        }
    }

    fn unsupported(&self, what: &'static str, value: u32) -> TunnelError {
        TunnelError::Unsupported {
            kind: self.kind,
            what,
            value,
        }
    }

    /// An IP packet starting at `at`, expected to be `protocol`.
    fn raw_ip_at(&self, at: usize, expected: NetworkProtocol) -> L3Packet<'a> {
        let protocol = match (
            expected,
            ip_version(self.bytes.get(at..).unwrap_or_default()),
        ) {
            (NetworkProtocol::Ipv4, Some(4)) => NetworkProtocol::Ipv4,
            (NetworkProtocol::Ipv6, Some(6)) => NetworkProtocol::Ipv6,
            (_, v) => NetworkProtocol::OtherIpVersion(v.unwrap_or(0)),
        };
        plain(self.bytes, at, protocol)
    }

    fn raw_ip(&self, expected: NetworkProtocol) -> L3Packet<'a> {
        self.raw_ip_at(self.at, expected)
    }

    /// What an ethertype-like protocol field at `at` says the payload is.
    fn by_protocol(&self, protocol: u16, at: usize) -> Result<L3Packet<'a>, TunnelError> {
        match protocol {
            ETHERTYPE_IPV4 => Ok(self.raw_ip_at(at, NetworkProtocol::Ipv4)),
            ETHERTYPE_IPV6 => Ok(self.raw_ip_at(at, NetworkProtocol::Ipv6)),
            ETHERTYPE_TEB => self.ethernet(at),
            ETHERTYPE_MPLS => {
                let mut out = plain(self.bytes, at, NetworkProtocol::Ipv4);
                ethertype_chain(LinkType::RAW, self.bytes, at, protocol, &mut out)
                    .map_err(|source| self.inner_error(source))?;
                Ok(out)
            }
            other => Err(self.unsupported("protocol", other.into())),
        }
    }

    fn inner_error(&self, source: LinkError) -> TunnelError {
        match source {
            LinkError::Truncated { what, needed, .. } => self.cut(what, needed),
            source => TunnelError::Inner {
                kind: self.kind,
                source,
            },
        }
    }

    /// An Ethernet frame starting at `at`.
    fn ethernet(&self, at: usize) -> Result<L3Packet<'a>, TunnelError> {
        let ethertype = be_u16_at(self.bytes, at + 12)
            .ok_or_else(|| self.cut("inner Ethernet header", at + ETHERNET_HEADER_LEN))?;
        let mut out = plain(self.bytes, at + ETHERNET_HEADER_LEN, NetworkProtocol::Ipv4);
        ethertype_chain(
            LinkType::ETHERNET,
            self.bytes,
            at + ETHERNET_HEADER_LEN,
            ethertype,
            &mut out,
        )
        .map_err(|source| self.inner_error(source))?;
        Ok(out)
    }

    /// GRE (RFC 2784 with RFC 2890's key and sequence number).
    fn gre(&self) -> Result<(Option<u32>, L3Packet<'a>), TunnelError> {
        let at = self.at;
        let (Some(flags), Some(protocol)) =
            (be_u16_at(self.bytes, at), be_u16_at(self.bytes, at + 2))
        else {
            return Err(self.cut("GRE header", at + 4));
        };
        let version = flags & 0x7;
        if version != 0 {
            return Err(self.unsupported("version", version.into()));
        }
        // Routing present or strict source route (RFC 1701): obsolete, not decoded.
        if flags & 0x4800 != 0 {
            return Err(self.unsupported("routing flags", (flags & 0x4800).into()));
        }
        let mut next = at + 4;
        if flags & 0x8000 != 0 {
            next += 4; // checksum + reserved
        }
        let mut key = None;
        if flags & 0x2000 != 0 {
            let k = array_at::<4>(self.bytes, next).ok_or_else(|| self.cut("GRE key", next + 4))?;
            key = Some(u32::from_be_bytes(k));
            next += 4;
        }
        if flags & 0x1000 != 0 {
            next += 4; // sequence number
        }
        if next > self.bytes.len() {
            return Err(self.cut("GRE header", next));
        }
        Ok((key, self.by_protocol(protocol, next)?))
    }

    /// VXLAN: 8-byte header (flags, VNI), then an Ethernet frame.
    fn vxlan(&self) -> Result<(Option<u32>, L3Packet<'a>), TunnelError> {
        let header = self.at + UDP_HEADER_LEN;
        let h = array_at::<VXLAN_HEADER_LEN>(self.bytes, header)
            .ok_or_else(|| self.cut("VXLAN header", header + VXLAN_HEADER_LEN))?;
        let [_, _, _, _, v0, v1, v2, _] = h;
        let vni = u32::from_be_bytes([0, v0, v1, v2]);
        Ok((Some(vni), self.ethernet(header + VXLAN_HEADER_LEN)?))
    }

    /// Geneve: 8-byte header (version, option length, protocol, VNI), options, then the payload
    /// its protocol type names.
    fn geneve(&self) -> Result<(Option<u32>, L3Packet<'a>), TunnelError> {
        let header = self.at + UDP_HEADER_LEN;
        let h = array_at::<GENEVE_HEADER_LEN>(self.bytes, header)
            .ok_or_else(|| self.cut("Geneve header", header + GENEVE_HEADER_LEN))?;
        let [ver_opt, _, p0, p1, v0, v1, v2, _] = h;
        let version = ver_opt >> 6;
        if version != 0 {
            return Err(self.unsupported("version", version.into()));
        }
        let options = usize::from(ver_opt & 0x3F) * 4;
        let payload = header + GENEVE_HEADER_LEN + options;
        if payload > self.bytes.len() {
            return Err(self.cut("Geneve options", payload));
        }
        let vni = u32::from_be_bytes([0, v0, v1, v2]);
        let protocol = u16::from_be_bytes([p0, p1]);
        Ok((Some(vni), self.by_protocol(protocol, payload)?))
    }
}

#[cfg(test)]
mod tests;
