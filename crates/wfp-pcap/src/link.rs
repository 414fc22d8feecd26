//! Link-layer decoding: from a captured frame to its network-layer bytes.
//!
//! Contract: [`decode_link`] never panics and never allocates. A frame that carries something
//! other than IP (ARP, STP, LLDP, a non-IP loopback family) is a successful decode whose
//! [`NetworkProtocol`] says so; only an unsupported link type, a header cut short or more than
//! [`MAX_VLAN_TAGS`] tags is a [`LinkError`]. Neither stops a capture from being read: they are per-packet outcomes.
//!
//! | link type | header |
//! |---|---|
//! | `NULL` (0) | 4-byte address family, either byte order: 2 = IPv4; 24, 28, 30 = IPv6 |
//! | `ETHERNET` (1) | 14 bytes; 802.1Q/802.1ad/0x9100 tags stacked up to [`MAX_VLAN_TAGS`]; 802.3 + LLC/SNAP |
//! | `RAW` (101), 12, 14 | none; version from the first nibble |
//! | `LOOP` (108) | 4-byte address family, network order (either order accepted) |
//! | `LINUX_SLL` (113) | 16 bytes: packet type, ARPHRD, address, protocol |
//! | `IPV4` (228), `IPV6` (229) | none; the version nibble is still checked |
//! | `LINUX_SLL2` (276) | 20 bytes: protocol, interface index, ARPHRD, packet type, address |
//! | `C_HDLC` (104) | 4 bytes: address, control, ethertype |
//! | `NFLOG` (239) | 4-byte header (family, version, resource id), then TLVs; the payload TLV is the packet; the hook tells the direction, the in/out device the interface |
//!
//! Inside an ethertype chain (Ethernet, cooked captures, Cisco HDLC, and the Ethernet frames a
//! tunnel carries, see [`crate::tunnel`]) these link-layer encapsulations are followed, nested in
//! any order, at most [`MAX_ENCAP_DEPTH`] of them per frame (each recorded in
//! [`L3Packet::encapsulations`]):
//!
//! | ethertype | encapsulation | then |
//! |---|---|---|
//! | 0x8100, 0x88A8, 0x9100 | 802.1Q / 802.1ad tag (VLAN ids, at most [`MAX_VLAN_TAGS`]) | ethertype |
//! | 0x8864 | PPPoE session (RFC 2516): 6-byte header + PPP protocol | 0x0021 IPv4, 0x0057 IPv6, 0x0281 MPLS |
//! | 0x8847, 0x8848 | MPLS label stack (RFC 3032) to the bottom-of-stack bit | first nibble 4 / 6: IP; 0: pseudowire control word (RFC 4385) and an Ethernet frame |
//! | 0x88E7 | 802.1ah PBB I-TAG (I-SID) and the customer's MAC addresses | ethertype |
//!
//! The network-layer slice runs to the end of the frame: Ethernet padding or a trailing FCS is
//! left for the IP parser, which trims by the IP length field.

use crate::bytes::{array_at, be_u16_at};
use crate::LinkType;

/// Most stacked VLAN tags [`decode_link`] accepts in one frame.
pub const MAX_VLAN_TAGS: usize = 4;

/// Most link-layer encapsulations (PPPoE, MPLS stacks, PBB, pseudowires) one frame may nest, and
/// most tunnels a data path should decapsulate one inside the other (see [`crate::tunnel`]).
pub const MAX_ENCAP_DEPTH: usize = 8;

/// Most labels one MPLS label stack may hold.
pub const MAX_MPLS_LABELS: usize = 16;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
pub(crate) const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
pub(crate) const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
const ETHERTYPE_PBB: u16 = 0x88E7;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const PPP_MPLS: u16 = 0x0281;
const PPPOE_HEADER_LEN: usize = 6;
const PPP_PROTOCOL_LEN: usize = 2;
const MPLS_ENTRY_LEN: usize = 4;
const PW_CONTROL_WORD_LEN: usize = 4;
/// I-TAG (4) + customer destination and source MAC addresses (12).
const PBB_ITAG_AND_MACS_LEN: usize = 16;
const C_HDLC_HEADER_LEN: usize = 4;
const NFLOG_HEADER_LEN: usize = 4;
const NFLOG_TLV_HEADER_LEN: usize = 4;
/// Most NFLOG TLVs read before giving up on finding the payload.
const NFLOG_MAX_TLVS: usize = 64;
const NFULA_PACKET_HDR: u16 = 1;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
/// Linux `AF_INET6` (NFLOG's family byte).
const AF_INET6_LINUX: u8 = 10;
/// Type/length values below this are 802.3 lengths, not ethertypes.
const ETHERTYPE_MIN: u16 = 0x0600;
/// Linux `ETH_P_802_2`: an 802.2 LLC header follows the cooked header.
const LINUX_PROTO_802_2: u16 = 0x0004;

const ETHERNET_HEADER_LEN: usize = 14;
const SLL_HEADER_LEN: usize = 16;
const SLL2_HEADER_LEN: usize = 20;
const LOOPBACK_HEADER_LEN: usize = 4;
const VLAN_TAG_LEN: usize = 4;
const LLC_LEN: usize = 3;
const SNAP_LEN: usize = 5;

const AF_INET: u32 = 2;
/// `AF_INET6` on NetBSD, OpenBSD and BSD/OS.
const AF_INET6_BSD: u32 = 24;
/// `AF_INET6` on FreeBSD.
const AF_INET6_FREEBSD: u32 = 28;
/// `AF_INET6` on Darwin.
const AF_INET6_DARWIN: u32 = 30;

/// Why a frame could not be decoded to its network layer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// More stacked VLAN tags than [`MAX_VLAN_TAGS`].
    #[error("more than {MAX_VLAN_TAGS} stacked VLAN tags")]
    TooManyVlanTags,
    /// More nested link-layer encapsulations than [`MAX_ENCAP_DEPTH`], or an MPLS label stack
    /// longer than [`MAX_MPLS_LABELS`].
    #[error("encapsulations nested deeper than {MAX_ENCAP_DEPTH} (or more than {MAX_MPLS_LABELS} MPLS labels)")]
    TooDeep,
    /// The frame ends inside a link-layer header.
    #[error("{link_type} frame of {available} bytes is cut short: its {what} needs {needed}")]
    Truncated {
        /// The frame's link type.
        link_type: LinkType,
        /// The header being read.
        what: &'static str,
        /// Bytes needed from the start of the frame.
        needed: usize,
        /// Frame length.
        available: usize,
    },
    /// A link type this crate does not decode.
    #[error("unsupported link type {0}")]
    UnsupportedLinkType(LinkType),
}

/// What the network-layer bytes of a frame are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NetworkProtocol {
    /// IPv4 (ethertype 0x0800, address family 2, or a version-4 raw packet).
    Ipv4,
    /// IPv6 (ethertype 0x86DD, address families 24/28/30, or a version-6 raw packet).
    Ipv6,
    /// An 802.2 LLC frame without an IP SNAP header (STP, IS-IS, CDP, NetBIOS...); `network`
    /// starts at the LLC header.
    Llc {
        /// Destination service access point.
        dsap: u8,
        /// Source service access point.
        ssap: u8,
    },
    /// A loopback frame whose address family is not IP.
    OtherAddressFamily(u32),
    /// A frame whose ethertype (or Linux cooked protocol) is not IP: ARP, LLDP, MPLS, ...
    OtherEtherType(u16),
    /// A raw-IP frame whose version nibble does not match its link type (or is neither 4 nor 6).
    OtherIpVersion(u8),
    /// A PPP (PPPoE session) frame whose PPP protocol is not IP: LCP, IPCP, CHAP, ...
    OtherPppProtocol(u16),
    /// An MPLS payload that is neither IP (first nibble 4 or 6) nor a pseudowire control word
    /// (0); the value is the first nibble.
    OtherMplsPayload(u8),
}

impl NetworkProtocol {
    /// The IP version, for IPv4 and IPv6.
    pub fn ip_version(self) -> Option<u8> {
        match self {
            Self::Ipv4 => Some(4),
            Self::Ipv6 => Some(6),
            _ => None,
        }
    }
}

/// Linux cooked-capture packet type (`PACKET_*` of `<linux/if_packet.h>`): who the packet was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinuxPacketType {
    /// `PACKET_BROADCAST` (1): received, link-layer broadcast.
    Broadcast,
    /// `PACKET_HOST` (0): received, addressed to this host.
    Host,
    /// `PACKET_LOOPBACK` (5): a looped-back copy of an outgoing multicast or broadcast.
    Loopback,
    /// `PACKET_MULTICAST` (2): received, link-layer multicast.
    Multicast,
    /// Any other value.
    Other(u16),
    /// `PACKET_OTHERHOST` (3): received in promiscuous mode, addressed to another host.
    OtherHost,
    /// `PACKET_OUTGOING` (4): sent by this host.
    Outgoing,
}

impl LinuxPacketType {
    /// Maps the numeric field.
    pub fn from_raw(value: u16) -> Self {
        match value {
            0 => Self::Host,
            1 => Self::Broadcast,
            2 => Self::Multicast,
            3 => Self::OtherHost,
            4 => Self::Outgoing,
            5 => Self::Loopback,
            other => Self::Other(other),
        }
    }

    /// The numeric field.
    pub fn raw(self) -> u16 {
        match self {
            Self::Host => 0,
            Self::Broadcast => 1,
            Self::Multicast => 2,
            Self::OtherHost => 3,
            Self::Outgoing => 4,
            Self::Loopback => 5,
            Self::Other(other) => other,
        }
    }

    /// Direction relative to the capturing host: `Outgoing` is outbound; host, broadcast,
    /// multicast and other-host are inbound; loopback copies and unknown values have none.
    pub fn direction(self) -> Option<Direction> {
        match self {
            Self::Outgoing => Some(Direction::Outbound),
            Self::Host | Self::Broadcast | Self::Multicast | Self::OtherHost => {
                Some(Direction::Inbound)
            }
            Self::Loopback | Self::Other(_) => None,
        }
    }
}

/// Direction of a packet relative to the capturing host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received by the host.
    Inbound,
    /// Sent by the host.
    Outbound,
}

/// The VLAN ids of a frame's 802.1Q/802.1ad tags, outermost first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VlanIds {
    ids: [u16; MAX_VLAN_TAGS],
    len: u8,
}

impl VlanIds {
    /// The ids, outermost first (empty for an untagged frame).
    pub fn as_slice(&self) -> &[u16] {
        self.ids.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the frame was untagged.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, id: u16) -> Result<(), LinkError> {
        let slot = self
            .ids
            .get_mut(usize::from(self.len))
            .ok_or(LinkError::TooManyVlanTags)?;
        *slot = id;
        self.len += 1;
        Ok(())
    }
}

/// A link-layer encapsulation crossed on the way to the network layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encapsulation {
    /// A PPPoE session header (ethertype 0x8864) and its PPP protocol.
    PppoeSession {
        /// The PPPoE session id.
        session_id: u16,
    },
    /// An MPLS label stack (ethertype 0x8847 / 0x8848).
    Mpls {
        /// The top (outermost) label.
        top_label: u32,
        /// Labels in the stack.
        labels: u8,
    },
    /// An Ethernet pseudowire under MPLS: control word, then a whole Ethernet frame.
    MplsPseudowire,
    /// An 802.1ah Provider Backbone Bridge I-TAG (ethertype 0x88E7).
    Pbb {
        /// The 24-bit backbone service instance id.
        isid: u32,
    },
}

impl Encapsulation {
    /// A short name: `PPPoE`, `MPLS`, `MPLS pseudowire`, `PBB`.
    pub fn name(self) -> &'static str {
        match self {
            Self::PppoeSession { .. } => "PPPoE",
            Self::Mpls { .. } => "MPLS",
            Self::MplsPseudowire => "MPLS pseudowire",
            Self::Pbb { .. } => "PBB",
        }
    }
}

/// The link-layer encapsulations of a frame, outermost first (at most [`MAX_ENCAP_DEPTH`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Encapsulations {
    items: [Option<Encapsulation>; MAX_ENCAP_DEPTH],
    len: u8,
}

impl Encapsulations {
    /// The encapsulations, outermost first.
    pub fn iter(&self) -> impl Iterator<Item = Encapsulation> + '_ {
        self.items
            .iter()
            .take(usize::from(self.len))
            .flatten()
            .copied()
    }

    /// How many.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the frame had none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, e: Encapsulation) -> Result<(), LinkError> {
        let slot = self
            .items
            .get_mut(usize::from(self.len))
            .ok_or(LinkError::TooDeep)?;
        *slot = Some(e);
        self.len += 1;
        Ok(())
    }
}

/// A frame decoded down to its network layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct L3Packet<'a> {
    /// What `network` holds.
    pub protocol: NetworkProtocol,
    /// The network-layer bytes, to the end of the frame.
    pub network: &'a [u8],
    /// Bytes of link-layer header (including VLAN tags and LLC/SNAP) before `network`.
    pub link_header_len: usize,
    /// VLAN ids seen, outermost first.
    pub vlan_ids: VlanIds,
    /// Linux cooked captures only: the packet type, which tells the direction.
    pub linux_packet_type: Option<LinuxPacketType>,
    /// `LINUX_SLL2`: the interface index the packet was captured on; `NFLOG`: the input device
    /// of an inbound packet, else the output device.
    pub linux_ifindex: Option<u32>,
    /// `NFLOG` only: the direction its netfilter hook implies (PRE_ROUTING, INPUT: inbound;
    /// OUTPUT, POST_ROUTING: outbound; FORWARD: none).
    pub hook_direction: Option<Direction>,
    /// Link-layer encapsulations crossed (PPPoE, MPLS, PBB, pseudowires), outermost first.
    pub encapsulations: Encapsulations,
}

impl L3Packet<'_> {
    /// Direction from the Linux packet type or the NFLOG hook, when the link type records one.
    pub fn direction(&self) -> Option<Direction> {
        self.linux_packet_type
            .and_then(LinuxPacketType::direction)
            .or(self.hook_direction)
    }
}

/// Decodes `frame`'s link-layer header according to `link_type`.
pub fn decode_link(link_type: LinkType, frame: &[u8]) -> Result<L3Packet<'_>, LinkError> {
    let cut = |what: &'static str, needed: usize| LinkError::Truncated {
        link_type,
        what,
        needed,
        available: frame.len(),
    };
    match link_type {
        LinkType::NULL | LinkType::LOOP => {
            let family = array_at::<4>(frame, 0).ok_or(cut("address family", 4))?;
            let mut family = u32::from_le_bytes(family);
            if family & 0xFFFF_0000 != 0 {
                family = family.swap_bytes();
            }
            let protocol = match family {
                AF_INET => NetworkProtocol::Ipv4,
                AF_INET6_BSD | AF_INET6_FREEBSD | AF_INET6_DARWIN => NetworkProtocol::Ipv6,
                other => NetworkProtocol::OtherAddressFamily(other),
            };
            Ok(plain(frame, LOOPBACK_HEADER_LEN, protocol))
        }
        LinkType::ETHERNET => {
            let ethertype = be_u16_at(frame, 12).ok_or(cut("Ethernet header", 14))?;
            let mut decoded = plain(frame, ETHERNET_HEADER_LEN, NetworkProtocol::Ipv4);
            if let Some(ip) = direct_ip(ethertype) {
                decoded.protocol = ip;
                return Ok(decoded);
            }
            ethertype_chain(
                link_type,
                frame,
                ETHERNET_HEADER_LEN,
                ethertype,
                &mut decoded,
            )?;
            Ok(decoded)
        }
        LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 => {
            let version = ip_version(frame).ok_or(cut("IP version", 1))?;
            let protocol = match version {
                4 => NetworkProtocol::Ipv4,
                6 => NetworkProtocol::Ipv6,
                other => NetworkProtocol::OtherIpVersion(other),
            };
            Ok(plain(frame, 0, protocol))
        }
        LinkType::IPV4 | LinkType::IPV6 => {
            let version = ip_version(frame).ok_or(cut("IP version", 1))?;
            let protocol = match (link_type, version) {
                (LinkType::IPV4, 4) => NetworkProtocol::Ipv4,
                (LinkType::IPV6, 6) => NetworkProtocol::Ipv6,
                (_, other) => NetworkProtocol::OtherIpVersion(other),
            };
            Ok(plain(frame, 0, protocol))
        }
        LinkType::LINUX_SLL => {
            let fields = be_u16_at(frame, 0).zip(be_u16_at(frame, 14));
            let (packet_type, protocol) = fields.ok_or(cut("LINUX_SLL header", 16))?;
            let mut decoded = plain(frame, SLL_HEADER_LEN, NetworkProtocol::Ipv4);
            decoded.linux_packet_type = Some(LinuxPacketType::from_raw(packet_type));
            if let Some(ip) = direct_ip(protocol) {
                decoded.protocol = ip;
                return Ok(decoded);
            }
            cooked_protocol(link_type, frame, SLL_HEADER_LEN, protocol, &mut decoded)?;
            Ok(decoded)
        }
        LinkType::LINUX_SLL2 => {
            let Some(header) = array_at::<SLL2_HEADER_LEN>(frame, 0) else {
                return Err(cut("LINUX_SLL2 header", SLL2_HEADER_LEN));
            };
            let [p0, p1, _, _, i0, i1, i2, i3, _, _, packet_type, ..] = header;
            let protocol = u16::from_be_bytes([p0, p1]);
            let ifindex = u32::from_be_bytes([i0, i1, i2, i3]);
            let mut decoded = plain(frame, SLL2_HEADER_LEN, NetworkProtocol::Ipv4);
            decoded.linux_packet_type = Some(LinuxPacketType::from_raw(u16::from(packet_type)));
            decoded.linux_ifindex = Some(ifindex);
            cooked_protocol(link_type, frame, SLL2_HEADER_LEN, protocol, &mut decoded)?;
            Ok(decoded)
        }
        LinkType::C_HDLC => {
            // Address (0x0F unicast, 0x8F broadcast), control, then an ethertype.
            let ethertype = be_u16_at(frame, 2).ok_or(cut("Cisco HDLC header", 4))?;
            let mut decoded = plain(frame, C_HDLC_HEADER_LEN, NetworkProtocol::Ipv4);
            cooked_protocol(link_type, frame, C_HDLC_HEADER_LEN, ethertype, &mut decoded)?;
            Ok(decoded)
        }
        LinkType::NFLOG => nflog(frame),
        other => Err(LinkError::UnsupportedLinkType(other)),
    }
}

/// `LINKTYPE_NFLOG`: family, version, resource id, then TLVs whose length and type are in the
/// capturing host's byte order (guessed from the first TLV), values in network order.
fn nflog(frame: &[u8]) -> Result<L3Packet<'_>, LinkError> {
    let cut = |what: &'static str, needed: usize| LinkError::Truncated {
        link_type: LinkType::NFLOG,
        what,
        needed,
        available: frame.len(),
    };
    let [family, ..] = array_at::<NFLOG_HEADER_LEN>(frame, 0).ok_or(cut("NFLOG header", 4))?;
    let first_len = array_at::<2>(frame, NFLOG_HEADER_LEN).ok_or(cut("NFLOG TLV", 8))?;
    // A TLV is at least 4 bytes long: whichever order gives a plausible first length wins.
    let little = u16::from_le_bytes(first_len);
    let big_endian = !(NFLOG_TLV_HEADER_LEN..=frame.len()).contains(&usize::from(little));
    let read16 = |at: usize| {
        array_at::<2>(frame, at).map(|b| {
            if big_endian {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        })
    };
    let mut out = plain(
        frame,
        frame.len(),
        NetworkProtocol::OtherAddressFamily(family.into()),
    );
    let (mut indev, mut outdev, mut payload) = (None, None, None);
    let mut at = NFLOG_HEADER_LEN;
    for _ in 0..NFLOG_MAX_TLVS {
        let (Some(len), Some(kind)) = (read16(at), read16(at + 2)) else {
            break;
        };
        let len = usize::from(len);
        let value = frame.get(at + NFLOG_TLV_HEADER_LEN..at + len.max(NFLOG_TLV_HEADER_LEN));
        let Some(value) = value.filter(|_| len >= NFLOG_TLV_HEADER_LEN) else {
            return Err(cut("NFLOG TLV", at + len.max(NFLOG_TLV_HEADER_LEN)));
        };
        // The type's top bits are NLA_F_NESTED / NLA_F_NET_BYTEORDER.
        match kind & 0x3FFF {
            NFULA_PACKET_HDR => {
                out.hook_direction =
                    array_at::<4>(value, 0).and_then(|[_, _, hook, _]| match hook {
                        0 | 1 => Some(Direction::Inbound),
                        3 | 4 => Some(Direction::Outbound),
                        _ => None,
                    });
            }
            NFULA_IFINDEX_INDEV => indev = array_at::<4>(value, 0).map(u32::from_be_bytes),
            NFULA_IFINDEX_OUTDEV => outdev = array_at::<4>(value, 0).map(u32::from_be_bytes),
            NFULA_PAYLOAD => payload = Some((at + NFLOG_TLV_HEADER_LEN, value)),
            _ => {}
        }
        at += len.next_multiple_of(4);
    }
    let (start, network) = payload.ok_or(cut("NFLOG payload TLV", at + NFLOG_TLV_HEADER_LEN))?;
    out.linux_ifindex = match out.hook_direction {
        Some(Direction::Inbound) => indev.or(outdev),
        _ => outdev.or(indev),
    };
    out.protocol = match (family, ip_version(network)) {
        (2, _) | (0, Some(4)) => NetworkProtocol::Ipv4,
        (AF_INET6_LINUX, _) | (0, Some(6)) => NetworkProtocol::Ipv6,
        (other, _) => NetworkProtocol::OtherAddressFamily(other.into()),
    };
    out.network = network;
    out.link_header_len = start;
    Ok(out)
}

/// IPv4 / IPv6 straight after the link header: `plain` already put `network` there, so the
/// ethertype chain (which would end at once with the same offset) is not walked.
#[inline]
fn direct_ip(ethertype: u16) -> Option<NetworkProtocol> {
    match ethertype {
        ETHERTYPE_IPV4 => Some(NetworkProtocol::Ipv4),
        ETHERTYPE_IPV6 => Some(NetworkProtocol::Ipv6),
        _ => None,
    }
}

/// A result with `network` starting at `header_len` (clamped to the frame).
pub(crate) fn plain(frame: &[u8], header_len: usize, protocol: NetworkProtocol) -> L3Packet<'_> {
    let header_len = header_len.min(frame.len());
    L3Packet {
        protocol,
        network: frame.get(header_len..).unwrap_or_default(),
        link_header_len: header_len,
        vlan_ids: VlanIds::default(),
        linux_packet_type: None,
        linux_ifindex: None,
        hook_direction: None,
        encapsulations: Encapsulations::default(),
    }
}

pub(crate) fn ip_version(frame: &[u8]) -> Option<u8> {
    frame.first().map(|b| b >> 4)
}

/// Linux cooked protocol field: an ethertype, or one of the small `ETH_P_*` values.
fn cooked_protocol<'a>(
    link_type: LinkType,
    frame: &'a [u8],
    at: usize,
    protocol: u16,
    out: &mut L3Packet<'a>,
) -> Result<(), LinkError> {
    if protocol == LINUX_PROTO_802_2 {
        return llc(link_type, frame, at, out);
    }
    if protocol < ETHERTYPE_MIN {
        out.protocol = NetworkProtocol::OtherEtherType(protocol);
        return Ok(());
    }
    ethertype_chain(link_type, frame, at, protocol, out)
}

/// Follows VLAN tags, link-layer encapsulations (PPPoE, MPLS, PBB) and 802.3 LLC/SNAP from an
/// ethertype/length field whose payload starts at `at`, filling `out.protocol`, `out.network`,
/// `out.link_header_len`, `out.vlan_ids` and `out.encapsulations`.
pub(crate) fn ethertype_chain<'a>(
    link_type: LinkType,
    frame: &'a [u8],
    mut at: usize,
    mut ethertype: u16,
    out: &mut L3Packet<'a>,
) -> Result<(), LinkError> {
    let cut = |what: &'static str, needed: usize| LinkError::Truncated {
        link_type,
        what,
        needed,
        available: frame.len(),
    };
    loop {
        let next = match ethertype {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                let end = at + VLAN_TAG_LEN;
                let tci = be_u16_at(frame, at);
                let inner = be_u16_at(frame, at + 2);
                let (Some(tci), Some(inner)) = (tci, inner) else {
                    return Err(cut("VLAN tag", end));
                };
                out.vlan_ids.push(tci & 0x0FFF)?;
                Next::EtherType(end, inner)
            }
            ETHERTYPE_PPPOE_SESSION => {
                pppoe(frame, at, out).ok_or(cut("PPPoE header", at + 8))??
            }
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => mpls(link_type, frame, at, out)?,
            ETHERTYPE_PBB => {
                let end = at + PBB_ITAG_AND_MACS_LEN;
                let (Some(itag), Some(inner)) = (array_at::<4>(frame, at), be_u16_at(frame, end))
                else {
                    return Err(cut("802.1ah I-TAG", end + 2));
                };
                let isid = u32::from_be_bytes(itag) & 0x00FF_FFFF;
                out.encapsulations.push(Encapsulation::Pbb { isid })?;
                Next::EtherType(end + 2, inner)
            }
            len if len < ETHERTYPE_MIN => return llc(link_type, frame, at, out),
            other => {
                let protocol = match other {
                    ETHERTYPE_IPV4 => NetworkProtocol::Ipv4,
                    ETHERTYPE_IPV6 => NetworkProtocol::Ipv6,
                    _ => NetworkProtocol::OtherEtherType(other),
                };
                Next::Network(at, protocol)
            }
        };
        match next {
            Next::EtherType(next_at, next_type) => (at, ethertype) = (next_at, next_type),
            Next::Network(net_at, protocol) => {
                out.protocol = protocol;
                set_network(frame, net_at, out);
                return Ok(());
            }
        }
    }
}

/// Where an ethertype chain goes on after one header.
enum Next {
    /// Another ethertype, whose payload starts at the offset.
    EtherType(usize, u16),
    /// The network layer, at the offset.
    Network(usize, NetworkProtocol),
}

/// A PPPoE session header at `at`: `None` when it is cut short.
fn pppoe(frame: &[u8], at: usize, out: &mut L3Packet<'_>) -> Option<Result<Next, LinkError>> {
    let session_id = be_u16_at(frame, at + 2)?;
    let next = at + PPPOE_HEADER_LEN + PPP_PROTOCOL_LEN;
    let protocol = be_u16_at(frame, at + PPPOE_HEADER_LEN)?;
    if let Err(e) = out
        .encapsulations
        .push(Encapsulation::PppoeSession { session_id })
    {
        return Some(Err(e));
    }
    Some(Ok(match protocol {
        PPP_IPV4 => Next::Network(next, NetworkProtocol::Ipv4),
        PPP_IPV6 => Next::Network(next, NetworkProtocol::Ipv6),
        PPP_MPLS => Next::EtherType(next, ETHERTYPE_MPLS),
        other => Next::Network(next, NetworkProtocol::OtherPppProtocol(other)),
    }))
}

/// An MPLS label stack at `at`, then what its payload's first nibble says: IP, or a pseudowire
/// control word and an Ethernet frame.
fn mpls(
    link_type: LinkType,
    frame: &[u8],
    at: usize,
    out: &mut L3Packet<'_>,
) -> Result<Next, LinkError> {
    let cut = |what: &'static str, needed: usize| LinkError::Truncated {
        link_type,
        what,
        needed,
        available: frame.len(),
    };
    let mut top_label = None;
    let mut end = at;
    for labels in 1..=MAX_MPLS_LABELS {
        let entry = array_at::<MPLS_ENTRY_LEN>(frame, end).ok_or(cut("MPLS label", end + 4))?;
        let entry = u32::from_be_bytes(entry);
        let top = *top_label.get_or_insert(entry >> 12);
        end += MPLS_ENTRY_LEN;
        if entry & 0x100 != 0 {
            let labels = u8::try_from(labels).unwrap_or(u8::MAX);
            out.encapsulations.push(Encapsulation::Mpls {
                top_label: top,
                labels,
            })?;
            let nibble = ip_version(frame.get(end..).unwrap_or_default())
                .ok_or(cut("MPLS payload", end + 1))?;
            return match nibble {
                4 => Ok(Next::Network(end, NetworkProtocol::Ipv4)),
                6 => Ok(Next::Network(end, NetworkProtocol::Ipv6)),
                0 => {
                    out.encapsulations.push(Encapsulation::MplsPseudowire)?;
                    let eth = end + PW_CONTROL_WORD_LEN;
                    let inner = be_u16_at(frame, eth + 12)
                        .ok_or(cut("pseudowire Ethernet header", eth + ETHERNET_HEADER_LEN))?;
                    Ok(Next::EtherType(eth + ETHERNET_HEADER_LEN, inner))
                }
                other => Ok(Next::Network(end, NetworkProtocol::OtherMplsPayload(other))),
            };
        }
    }
    Err(LinkError::TooDeep)
}

/// An 802.2 LLC header at `at`; SNAP with an ethertype OUI continues as an ethertype.
fn llc<'a>(
    link_type: LinkType,
    frame: &'a [u8],
    at: usize,
    out: &mut L3Packet<'a>,
) -> Result<(), LinkError> {
    let Some([dsap, ssap, control]) = array_at::<LLC_LEN>(frame, at) else {
        return Err(LinkError::Truncated {
            link_type,
            what: "LLC header",
            needed: at + LLC_LEN,
            available: frame.len(),
        });
    };
    if dsap == 0xAA && ssap == 0xAA && control == 0x03 {
        if let Some([o0, o1, o2, t0, t1]) = array_at::<SNAP_LEN>(frame, at + LLC_LEN) {
            // OUI 00-00-00 (RFC 1042) and 00-00-F8 (802.1H) carry an ethertype.
            if o0 == 0 && o1 == 0 && (o2 == 0 || o2 == 0xF8) {
                let ethertype = u16::from_be_bytes([t0, t1]);
                let next = at + LLC_LEN + SNAP_LEN;
                if ethertype >= ETHERTYPE_MIN {
                    return ethertype_chain(link_type, frame, next, ethertype, out);
                }
            }
        }
    }
    out.protocol = NetworkProtocol::Llc { dsap, ssap };
    set_network(frame, at, out);
    Ok(())
}

fn set_network<'a>(frame: &'a [u8], at: usize, out: &mut L3Packet<'a>) {
    let at = at.min(frame.len());
    out.network = frame.get(at..).unwrap_or_default();
    out.link_header_len = at;
}

#[cfg(test)]
mod tests;
