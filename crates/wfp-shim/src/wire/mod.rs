//! Packet views and representations for IPv4, IPv6, TCP, UDP, ICMPv4 and ICMPv6.
//!
//! The module follows smoltcp's split between a *view* and a *representation*:
//!
//! * A view ([`Ipv4Packet`], [`Ipv6Packet`], [`TcpPacket`], [`UdpPacket`], [`IcmpPacket`]) wraps a
//!   byte buffer and reads fields in place. `new_checked` validates every length the accessors rely
//!   on and returns a [`ParseError`] naming what was wrong. `new_unchecked` skips the validation and
//!   is correct only for a buffer that already passed `new_checked` (for example when re-wrapping a
//!   slice this module returned). Accessors never panic, even on an unchecked view of garbage: a
//!   field that lies outside the buffer reads as zero. Byte offsets live in private `field` modules.
//! * The representation is [`ParsedPacket`], produced by [`parse`] / [`parse_with`]: validated,
//!   owned values (addresses, ports, flags, sequence numbers) plus byte ranges into the caller's
//!   buffer for payloads, ready to become a layer's incoming values.
//!
//! # Contract
//!
//! * Input is one IP packet starting at the IP header (no link-layer header).
//! * Never panics and never allocates; malformed input is a [`ParseError`].
//! * The IP header's length fields are authoritative: bytes after the IPv4 total length or the IPv6
//!   payload length (link-layer padding) are ignored; a buffer shorter than those lengths is
//!   [`ParseError::Truncated`] — unless [`ParseConfig::truncated`] says the buffer holds only the
//!   first bytes of the packet (a capture's snapshot length cut it). Then length fields that point
//!   beyond the buffer (IPv4 total length, IPv6 payload length, UDP length) are accepted when the
//!   headers themselves are whole: [`IpInfo::total_len`] keeps the length the header states,
//!   [`IpInfo::captured_len`] says how much of it the buffer holds, payload ranges cover the bytes
//!   that exist, and `wire_payload_len` of TCP and UDP is what the packet carried. A header the
//!   capture cut (the IP header, an IPv6 extension header the walk needs, the TCP header with its
//!   options, the UDP or ICMP header) is [`ParseError::CaptureCut`]; a length field that
//!   contradicts the packet's own lengths is the same error as without the flag.
//! * An IPv4 total length of 0 with bytes after a whole header is a segmentation-offload
//!   super-packet whose length the stack left unset (TSO/GSO, or larger than 64 KiB): its length
//!   is the bytes there ([`IpInfo::total_len`] = the buffer's length), as Wireshark reads it.
//! * IPv4 options and TCP options are skipped (their length is validated, their content is not).
//! * IPv6 extension headers are walked: hop-by-hop (first only), routing, destination options,
//!   mobility, HIP, shim6 and the experimental 253/254 are skipped; AH is skipped using its own
//!   length rule; the fragment header stops the walk; ESP, no-next-header and any other value end
//!   the walk as the upper-layer protocol. At most [`MAX_IPV6_EXTENSION_HEADERS`] are walked.
//! * A fragment (IPv4 MF set or offset non-zero; any IPv6 packet with a fragment header) is not
//!   parsed past the IP layer: its transport is [`Transport::Fragment`]. Reassemble it with
//!   [`crate::frag`] and parse the result.
//! * An ICMP error message carries the offending packet's IP header and at least 8 bytes of its
//!   transport header: [`IcmpInfo::embedded`] holds that packet's addresses, protocol and ports or
//!   ICMP type/code/id. An embedded packet too short or malformed to read gives `embedded: None`
//!   rather than an error, because the outer packet is well formed.
//! * Checksums: the IPv4 header checksum is always computed; a mismatch is
//!   [`ParseError::Ipv4Checksum`] when [`ParseConfig::verify_ipv4_checksum`] is set (the default),
//!   else the packet parses with [`IpInfo::checksum_ok`] false (hosts that offload checksums put
//!   anything there in captures; Wireshark does not validate them by default either). Transport
//!   checksums are not verified (captures with checksum offload carry invalid ones).

pub mod build;
mod checksum;
mod icmp;
mod ipv4;
mod ipv6;
mod tcp;
mod udp;

use core::fmt;
use core::ops::Range;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use checksum::internet_checksum;
pub use icmp::IcmpPacket;
pub(crate) use icmp::{kind as icmp_kind, request_type as icmp_request_type};
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use tcp::{TcpFlags, TcpPacket};
pub use udp::UdpPacket;

/// The most IPv6 extension headers [`parse`] walks before giving up.
pub const MAX_IPV6_EXTENSION_HEADERS: usize = 16;

/// IANA protocol numbers used by this module.
pub mod protocol {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 fragment header.
    pub const IPV6_FRAG: u8 = 44;
    /// Encapsulating security payload.
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 no next header.
    pub const IPV6_NO_NEXT: u8 = 59;
    /// IPv6 destination options.
    pub const IPV6_OPTS: u8 = 60;
    /// IPv6 mobility header.
    pub const MOBILITY: u8 = 135;
    /// Host identity protocol.
    pub const HIP: u8 = 139;
    /// Shim6.
    pub const SHIM6: u8 = 140;
    /// Experimental extension header 1 (RFC 3692).
    pub const EXPERIMENT_1: u8 = 253;
    /// Experimental extension header 2 (RFC 3692).
    pub const EXPERIMENT_2: u8 = 254;
}

/// Options for [`parse_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseConfig {
    /// Verify the IPv4 header checksum and fail with [`ParseError::Ipv4Checksum`] on a mismatch
    /// (default on). Off, a mismatch only sets [`IpInfo::checksum_ok`] to false.
    pub verify_ipv4_checksum: bool,
    /// The buffer may hold only the first bytes of the packet (a capture's snapshot length cut
    /// it; default off): length fields pointing beyond the buffer are accepted when the headers
    /// are whole (see the module doc). Off, such a packet is [`ParseError::Truncated`].
    pub truncated: bool,
}

impl Default for ParseConfig {
    fn default() -> Self {
        Self {
            verify_ipv4_checksum: true,
            truncated: false,
        }
    }
}

/// The header a [`ParseError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Header {
    /// An ICMPv4 or ICMPv6 header.
    Icmp,
    /// The IPv4 header or the datagram its total length describes.
    Ipv4,
    /// The IPv6 fixed header or the datagram its payload length describes.
    Ipv6,
    /// An IPv6 extension header.
    Ipv6Extension,
    /// The TCP header.
    Tcp,
    /// The UDP header or the datagram its length field describes.
    Udp,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Icmp => "ICMP header",
            Self::Ipv4 => "IPv4 packet",
            Self::Ipv6 => "IPv6 packet",
            Self::Ipv6Extension => "IPv6 extension header",
            Self::Tcp => "TCP header",
            Self::Udp => "UDP datagram",
        })
    }
}

/// Why a buffer is not a well-formed IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The IPv4 header checksum does not verify.
    #[error("IPv4 header checksum {stored:#06x} does not verify (expected {computed:#06x})")]
    Ipv4Checksum {
        /// The checksum in the header.
        stored: u16,
        /// The checksum the header should carry.
        computed: u16,
    },
    /// The IPv4 IHL field gives a header shorter than 20 bytes.
    #[error("IPv4 header length {header_len} is below 20")]
    Ipv4HeaderLen {
        /// IHL × 4.
        header_len: usize,
    },
    /// The IPv4 total length is smaller than the header length.
    #[error("IPv4 total length {total_len} is smaller than the header length {header_len}")]
    Ipv4TotalLen {
        /// The total length field.
        total_len: usize,
        /// IHL × 4.
        header_len: usize,
    },
    /// A hop-by-hop options header that does not directly follow the IPv6 header (RFC 8200 §4.1).
    #[error(
        "IPv6 hop-by-hop options header at offset {offset}, not directly after the fixed header"
    )]
    Ipv6HopByHopNotFirst {
        /// Offset of the misplaced header in the packet.
        offset: usize,
    },
    /// An IPv6 packet with payload length 0 and a hop-by-hop header (a jumbogram, RFC 2675).
    #[error("IPv6 jumbograms are not supported")]
    Ipv6Jumbogram,
    /// More than [`MAX_IPV6_EXTENSION_HEADERS`] extension headers.
    #[error("more than {limit} IPv6 extension headers")]
    Ipv6TooManyExtensions {
        /// The limit.
        limit: usize,
    },
    /// The TCP data offset is below 5 words or beyond the segment.
    #[error("TCP data offset {data_offset} bytes is invalid for a {available}-byte segment")]
    TcpDataOffset {
        /// Data offset × 4.
        data_offset: usize,
        /// Bytes of TCP segment available.
        available: usize,
    },
    /// A header is cut: the packet was parsed as a capture's first bytes
    /// ([`ParseConfig::truncated`]) and the capture ended inside a header the packet's own lengths
    /// say is there. The packet on the wire may have been fine; the capture cannot classify it.
    #[error("{header} cut by the capture: {needed} bytes needed, {available} captured")]
    CaptureCut {
        /// The header being read.
        header: Header,
        /// Bytes up to the end of that header.
        needed: usize,
        /// Bytes captured.
        available: usize,
    },
    /// The buffer ends before a header or a length field says it should.
    #[error("{header} truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// The header being read.
        header: Header,
        /// Bytes the header (or its length field) requires.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The UDP length field is below 8 or beyond the datagram.
    #[error("UDP length {length} is invalid for {available} bytes of IP payload")]
    UdpLength {
        /// The length field.
        length: usize,
        /// Bytes of IP payload available.
        available: usize,
    },
    /// The version nibble is neither 4 nor 6.
    #[error("IP version {version} is neither 4 nor 6")]
    UnknownVersion {
        /// The version nibble.
        version: u8,
    },
}

/// The IP version of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// A parsed packet: the IP layer and what follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPacket {
    /// The IP layer.
    pub ip: IpInfo,
    /// The transport layer.
    pub transport: Transport,
}

/// The IP layer of a [`ParsedPacket`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpInfo {
    /// IPv4 or IPv6.
    pub version: IpVersion,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The upper-layer protocol: IPv4's protocol field, or the next header that ended the IPv6
    /// extension-header walk (for a fragment: the fragment header's next header).
    pub protocol: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub hop_limit: u8,
    /// Bytes from the start of the packet to the transport header: IHL × 4 for IPv4; 40 plus the
    /// extension headers walked for IPv6 (for a fragment: up to and including the fragment header).
    pub header_len: usize,
    /// The packet's length according to its header (IPv4 total length — the buffer's length when
    /// that is 0, see the module doc; 40 + IPv6 payload length). Bytes of the buffer beyond it are
    /// ignored.
    pub total_len: usize,
    /// Bytes of the packet the buffer holds: `total_len`, or fewer when the packet was parsed as a
    /// capture's first bytes ([`ParseConfig::truncated`]) and the capture cut it.
    pub captured_len: usize,
    /// The IPv4 header checksum verifies (always true for IPv6, which has none). False only when
    /// [`ParseConfig::verify_ipv4_checksum`] is off (on, a mismatch is an error).
    pub checksum_ok: bool,
    /// Present when the packet is a fragment.
    pub fragment: Option<FragmentInfo>,
}

/// Fragment fields of a fragment, with what reassembly needs to rebuild the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Identification (IPv4: 16 bits; IPv6: 32 bits).
    pub id: u32,
    /// Offset of this fragment's data in the original payload, in bytes (a multiple of 8).
    pub offset: u16,
    /// The more-fragments flag.
    pub more: bool,
    /// Bytes of the per-fragment header: the IPv4 header, or the IPv6 header and the extension
    /// headers before the fragment header (the "unfragmentable part").
    pub unfragmentable_len: usize,
    /// Where the fragment's data starts in the packet.
    pub data_offset: usize,
    /// IPv6 only: the index of the next-header byte that names the fragment header (6 when the
    /// fragment header follows the fixed header). 0 for IPv4.
    pub next_header_pos: usize,
    /// The protocol of the reassembled payload (IPv4 protocol; the fragment header's next header).
    pub next_header: u8,
}

/// The transport layer of a [`ParsedPacket`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A fragment: not parsed past the IP layer (see [`IpInfo::fragment`]).
    Fragment,
    /// ICMPv4 over IPv4 or ICMPv6 over IPv6.
    Icmp(IcmpInfo),
    /// Any other protocol (including ESP, IPv6 no-next-header, ICMP of the wrong IP version).
    Other(u8),
    /// TCP.
    Tcp(TcpInfo),
    /// UDP.
    Udp(UdpInfo),
}

/// A parsed TCP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when `flags` has ACK).
    pub ack: u32,
    /// Control flags.
    pub flags: TcpFlags,
    /// Window field (unscaled).
    pub window: u16,
    /// Header length including options (data offset × 4).
    pub header_len: usize,
    /// The segment's payload as a byte range of the parsed buffer (the bytes captured).
    pub payload: Range<usize>,
    /// Payload bytes the segment carried on the wire (its IP length minus the headers): more than
    /// `payload.len()` when the capture cut the segment (the sequence space it covers).
    pub wire_payload_len: usize,
}

/// A parsed UDP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpInfo {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The datagram's payload as a byte range of the parsed buffer (bounded by the UDP length and
    /// by the bytes captured).
    pub payload: Range<usize>,
    /// Payload bytes the datagram carried on the wire (UDP length − 8): more than `payload.len()`
    /// when the capture cut it.
    pub wire_payload_len: usize,
}

/// What kind of ICMP message an [`IcmpInfo`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IcmpKind {
    /// An error message (ICMPv4 3, 4, 5, 11, 12; ICMPv6 1–4): it embeds the offending packet.
    Error,
    /// Any other message (router discovery, neighbour discovery, MLD, unknown types).
    Other,
    /// A query with an identifier: echo, and for ICMPv4 also timestamp, information and mask.
    Query,
}

/// A parsed ICMPv4 or ICMPv6 header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpInfo {
    /// Message type.
    pub icmp_type: u8,
    /// Message code.
    pub code: u8,
    /// Error, query or other.
    pub kind: IcmpKind,
    /// Identifier and sequence number of a query.
    pub echo: Option<IcmpEcho>,
    /// For an error message: the offending packet, when readable.
    pub embedded: Option<EmbeddedInfo>,
    /// Bytes after the 8-byte ICMP header, as a byte range of the parsed buffer.
    pub payload: Range<usize>,
}

/// Identifier and sequence number of an ICMP query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IcmpEcho {
    /// Identifier.
    pub id: u16,
    /// Sequence number.
    pub seq: u16,
}

/// The offending packet embedded in an ICMP error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EmbeddedInfo {
    /// IP version of the embedded packet.
    pub version: IpVersion,
    /// Its source address (the address that sent it).
    pub src: IpAddr,
    /// Its destination address.
    pub dst: IpAddr,
    /// Its upper-layer protocol.
    pub protocol: u8,
    /// What could be read of its transport header.
    pub transport: EmbeddedTransport,
}

/// What could be read of an embedded packet's transport header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EmbeddedTransport {
    /// An ICMP message of the embedded packet's IP version (its first 8 bytes present).
    Icmp {
        /// Message type.
        icmp_type: u8,
        /// Message code.
        code: u8,
        /// Identifier, for a query type.
        id: Option<u16>,
    },
    /// Nothing readable: too few bytes, a non-first fragment, or a protocol without ports.
    None,
    /// TCP, UDP (or another protocol with 16-bit ports first: SCTP, DCCP, UDP-Lite).
    Ports {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
}

impl ParsedPacket {
    /// The source and destination ports, for TCP and UDP.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match &self.transport {
            Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
            Transport::Udp(u) => Some((u.src_port, u.dst_port)),
            _ => None,
        }
    }

    /// Whether the buffer holds less of the packet than its IP header says (parsed with
    /// [`ParseConfig::truncated`] from a capture that cut it).
    pub fn is_truncated(&self) -> bool {
        self.ip.captured_len < self.ip.total_len
    }

    /// The transport payload range (TCP or UDP payload, ICMP body), if any.
    pub fn payload(&self) -> Option<Range<usize>> {
        match &self.transport {
            Transport::Tcp(t) => Some(t.payload.clone()),
            Transport::Udp(u) => Some(u.payload.clone()),
            Transport::Icmp(i) => Some(i.payload.clone()),
            Transport::Fragment | Transport::Other(_) => None,
        }
    }
}

/// Parse one IP packet with the default [`ParseConfig`].
pub fn parse(bytes: &[u8]) -> Result<ParsedPacket, ParseError> {
    parse_with(bytes, &ParseConfig::default())
}

/// Parse one IP packet.
pub fn parse_with(bytes: &[u8], config: &ParseConfig) -> Result<ParsedPacket, ParseError> {
    let Some(&first) = bytes.first() else {
        return Err(if config.truncated {
            ParseError::CaptureCut {
                header: Header::Ipv4,
                needed: 1,
                available: 0,
            }
        } else {
            truncated(Header::Ipv4, 1, 0)
        });
    };
    let ip = match first >> 4 {
        4 => ipv4::parse_ip(bytes, config)?,
        6 => ipv6::parse_ip(bytes, config)?,
        version => return Err(ParseError::UnknownVersion { version }),
    };
    let transport = if ip.fragment.is_some() {
        Transport::Fragment
    } else {
        // `captured_len` was checked against the buffer by the IP parser.
        let packet = bytes.get(..ip.captured_len).unwrap_or(bytes);
        parse_transport(packet, &ip)?
    };
    Ok(ParsedPacket { ip, transport })
}

fn parse_transport(packet: &[u8], ip: &IpInfo) -> Result<Transport, ParseError> {
    let start = ip.header_len;
    let segment = packet.get(start..).unwrap_or(&[]);
    // The transport's length on the wire; equal to `segment.len()` unless the capture cut it.
    let claimed = ip.total_len.saturating_sub(start);
    match (ip.protocol, ip.version) {
        (protocol::TCP, _) => tcp::parse(segment, claimed, start).map(Transport::Tcp),
        (protocol::UDP, _) => udp::parse(segment, claimed, start).map(Transport::Udp),
        (protocol::ICMP, IpVersion::V4) | (protocol::ICMPV6, IpVersion::V6) => {
            icmp::parse(segment, claimed, start, ip.version).map(Transport::Icmp)
        }
        (other, _) => Ok(Transport::Other(other)),
    }
}

// ---- bounds-checked readers shared by the views: out-of-range reads give zero, never panic ----

pub(crate) fn read_u8(data: &[u8], at: usize) -> u8 {
    data.get(at).copied().unwrap_or(0)
}

pub(crate) fn read_array<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    at.checked_add(N)
        .and_then(|end| data.get(at..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .unwrap_or([0; N])
}

pub(crate) fn read_u16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(read_array(data, at))
}

pub(crate) fn read_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(read_array(data, at))
}

pub(crate) fn read_ipv4(data: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::from(read_array::<4>(data, at))
}

pub(crate) fn read_ipv6(data: &[u8], at: usize) -> Ipv6Addr {
    Ipv6Addr::from(read_array::<16>(data, at))
}

pub(crate) fn truncated(header: Header, needed: usize, available: usize) -> ParseError {
    ParseError::Truncated {
        header,
        needed,
        available,
    }
}

/// A header needs `needed` bytes of a transport whose captured bytes are `available` and whose
/// length on the wire is `claimed`: [`ParseError::CaptureCut`] when the packet says the bytes are
/// there and only the capture lacks them, else [`ParseError::Truncated`].
pub(crate) fn short(header: Header, needed: usize, available: usize, claimed: usize) -> ParseError {
    if available < claimed && needed <= claimed {
        ParseError::CaptureCut {
            header,
            needed,
            available,
        }
    } else {
        truncated(header, needed, available)
    }
}
