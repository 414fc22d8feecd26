//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) header view, with the packet embedded in errors.

use super::{
    ipv4, ipv6, protocol, read_u16, read_u8, short, truncated, EmbeddedInfo, EmbeddedTransport,
    Header, IcmpEcho, IcmpInfo, IcmpKind, IpVersion, ParseError,
};

mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: usize = 2;
    pub(super) const ECHO_IDENT: usize = 4;
    pub(super) const ECHO_SEQNO: usize = 6;
}

/// Length of the ICMP header (type, code, checksum and the 4-byte rest-of-header).
pub(crate) const HEADER_LEN: usize = 8;

/// A read-only view of an ICMPv4 or ICMPv6 message (both share the 8-byte header layout).
///
/// After [`IcmpPacket::new_checked`] the buffer holds the 8-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wrap `buffer` without checking it; see the module doc for when that is correct.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap `buffer` after checking that the 8-byte header is present.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`IcmpPacket::new_checked`].
    pub fn check_len(&self) -> Result<(), ParseError> {
        let available = self.buffer.as_ref().len();
        if available < HEADER_LEN {
            return Err(truncated(Header::Icmp, HEADER_LEN, available));
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::TYPE)
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::CODE)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Identifier of a query message.
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Sequence number of a query message.
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Bytes after the 8-byte header (for an error: the embedded packet).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

/// ICMP type numbers this module classifies.
pub(crate) mod types {
    /// ICMPv4 echo reply.
    pub(crate) const V4_ECHO_REPLY: u8 = 0;
    /// ICMPv4 echo request.
    pub(crate) const V4_ECHO_REQUEST: u8 = 8;
    /// ICMPv6 echo request.
    pub(crate) const V6_ECHO_REQUEST: u8 = 128;
    /// ICMPv6 echo reply.
    pub(crate) const V6_ECHO_REPLY: u8 = 129;
}

/// Classify an ICMP type of the given IP version.
pub(crate) fn kind(version: IpVersion, icmp_type: u8) -> IcmpKind {
    match version {
        IpVersion::V4 => match icmp_type {
            3 | 4 | 5 | 11 | 12 => IcmpKind::Error,
            // Echo, timestamp, information, address mask (request and reply).
            0 | 8 | 13..=18 => IcmpKind::Query,
            _ => IcmpKind::Other,
        },
        IpVersion::V6 => match icmp_type {
            1..=4 => IcmpKind::Error,
            types::V6_ECHO_REQUEST | types::V6_ECHO_REPLY => IcmpKind::Query,
            _ => IcmpKind::Other,
        },
    }
}

/// For a query type, the request type of its request/reply pair (so that both directions of an
/// exchange share one flow). Other types map to themselves.
pub(crate) fn request_type(version: IpVersion, icmp_type: u8) -> u8 {
    match (version, icmp_type) {
        (IpVersion::V4, types::V4_ECHO_REPLY) => types::V4_ECHO_REQUEST,
        (IpVersion::V4, 14 | 16 | 18) => icmp_type - 1,
        (IpVersion::V6, types::V6_ECHO_REPLY) => types::V6_ECHO_REQUEST,
        _ => icmp_type,
    }
}

/// Parse the ICMP message `segment` (the bytes captured), which starts at byte `start` of the
/// packet and is `claimed` bytes long on the wire (`segment.len()` unless a capture cut it).
pub(super) fn parse(
    segment: &[u8],
    claimed: usize,
    start: usize,
    version: IpVersion,
) -> Result<IcmpInfo, ParseError> {
    if segment.len() < HEADER_LEN {
        return Err(short(Header::Icmp, HEADER_LEN, segment.len(), claimed));
    }
    let icmp = IcmpPacket::new_unchecked(segment);
    let icmp_type = icmp.msg_type();
    let kind = kind(version, icmp_type);
    let echo = (kind == IcmpKind::Query).then(|| IcmpEcho {
        id: icmp.echo_ident(),
        seq: icmp.echo_seq_no(),
    });
    let embedded = match kind {
        IcmpKind::Error => parse_embedded(icmp.payload(), version),
        IcmpKind::Query | IcmpKind::Other => None,
    };
    Ok(IcmpInfo {
        icmp_type,
        code: icmp.msg_code(),
        kind,
        echo,
        embedded,
        payload: start + HEADER_LEN..start + segment.len(),
    })
}

fn parse_embedded(bytes: &[u8], version: IpVersion) -> Option<EmbeddedInfo> {
    let (src, dst, protocol, transport) = match version {
        IpVersion::V4 => ipv4::parse_embedded(bytes)?,
        IpVersion::V6 => ipv6::parse_embedded(bytes)?,
    };
    let icmp_proto = match version {
        IpVersion::V4 => protocol::ICMP,
        IpVersion::V6 => protocol::ICMPV6,
    };
    let transport = match transport {
        Some(t) if protocol == icmp_proto && t.len() >= HEADER_LEN => {
            let inner = IcmpPacket::new_unchecked(t);
            let icmp_type = inner.msg_type();
            EmbeddedTransport::Icmp {
                icmp_type,
                code: inner.msg_code(),
                id: (kind(version, icmp_type) == IcmpKind::Query).then(|| inner.echo_ident()),
            }
        }
        Some(t) if protocol != icmp_proto && t.len() >= 4 && has_ports(protocol) => {
            EmbeddedTransport::Ports {
                src_port: read_u16(t, 0),
                dst_port: read_u16(t, 2),
            }
        }
        _ => EmbeddedTransport::None,
    };
    Some(EmbeddedInfo {
        version,
        src,
        dst,
        protocol,
        transport,
    })
}

/// Protocols whose header starts with 16-bit source and destination ports.
fn has_ports(protocol: u8) -> bool {
    // TCP, UDP, DCCP, SCTP, UDP-Lite.
    matches!(protocol, protocol::TCP | protocol::UDP | 33 | 132 | 136)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn echo_request() {
        let bytes = [
            8, 0, 0xf7, 0xfd, 0x12, 0x34, 0x00, 0x01, b'p', b'i', b'n', b'g',
        ];
        let info = parse(&bytes, bytes.len(), 20, IpVersion::V4).unwrap();
        assert_eq!(info.kind, IcmpKind::Query);
        assert_eq!(info.echo, Some(IcmpEcho { id: 0x1234, seq: 1 }));
        assert_eq!(info.payload, 28..32);
        assert!(info.embedded.is_none());
    }

    #[test]
    fn port_unreachable_embeds_udp() {
        let mut bytes = vec![3, 3, 0, 0, 0, 0, 0, 0];
        // Embedded IPv4 header (total length 100: longer than what is quoted) + 8 bytes UDP.
        bytes.extend_from_slice(&[
            0x45, 0, 0, 100, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 7,
        ]);
        bytes.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0, 80, 0, 0]);
        let info = parse(&bytes, bytes.len(), 20, IpVersion::V4).unwrap();
        assert_eq!(info.kind, IcmpKind::Error);
        let e = info.embedded.unwrap();
        assert_eq!(e.src, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(e.dst, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)));
        assert_eq!(e.protocol, 17);
        assert_eq!(
            e.transport,
            EmbeddedTransport::Ports {
                src_port: 5000,
                dst_port: 53
            }
        );
    }

    #[test]
    fn error_with_short_embedded_packet() {
        // Embedded header cut at 10 bytes: no embedded info, but the message parses.
        let bytes = [11, 0, 0, 0, 0, 0, 0, 0, 0x45, 0, 0, 100, 0, 1, 0, 0, 64, 17];
        let info = parse(&bytes, bytes.len(), 20, IpVersion::V4).unwrap();
        assert_eq!(info.kind, IcmpKind::Error);
        assert!(info.embedded.is_none());
        // Embedded header complete but only 2 transport bytes: addresses, no ports.
        let mut bytes = vec![3, 1, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&[
            0x45, 0, 0, 100, 0, 1, 0, 0, 64, 6, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
        ]);
        bytes.extend_from_slice(&[0, 80]);
        let e = parse(&bytes, bytes.len(), 20, IpVersion::V4)
            .unwrap()
            .embedded
            .unwrap();
        assert_eq!(e.protocol, 6);
        assert_eq!(e.transport, EmbeddedTransport::None);
    }

    #[test]
    fn classification_tables() {
        assert_eq!(kind(IpVersion::V4, 3), IcmpKind::Error);
        assert_eq!(kind(IpVersion::V4, 13), IcmpKind::Query);
        assert_eq!(kind(IpVersion::V4, 9), IcmpKind::Other);
        assert_eq!(kind(IpVersion::V6, 2), IcmpKind::Error);
        assert_eq!(kind(IpVersion::V6, 129), IcmpKind::Query);
        assert_eq!(kind(IpVersion::V6, 135), IcmpKind::Other);
        assert_eq!(request_type(IpVersion::V4, 0), 8);
        assert_eq!(request_type(IpVersion::V4, 14), 13);
        assert_eq!(request_type(IpVersion::V6, 129), 128);
        assert_eq!(request_type(IpVersion::V6, 135), 135);
    }

    #[test]
    fn too_short() {
        assert_eq!(
            parse(&[8, 0, 0, 0], 4, 20, IpVersion::V4),
            Err(ParseError::Truncated {
                header: Header::Icmp,
                needed: 8,
                available: 4
            })
        );
    }
}
