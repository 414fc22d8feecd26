//! IPv6 fixed-header view (RFC 8200) and the extension-header walk.

use std::net::IpAddr;

use super::{
    protocol, read_ipv6, read_u16, read_u32, read_u8, truncated, FragmentInfo, Header, IpInfo,
    IpVersion, ParseConfig, ParseError, MAX_IPV6_EXTENSION_HEADERS,
};

mod field {
    pub(super) const VER_TC_FLOW: usize = 0;
    pub(super) const LENGTH: usize = 4;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC_ADDR: usize = 8;
    pub(super) const DST_ADDR: usize = 24;
}

/// Length of the IPv6 fixed header.
pub(crate) const HEADER_LEN: usize = 40;

/// A read-only view of an IPv6 packet's fixed header.
///
/// After [`Ipv6Packet::new_checked`] the buffer holds the fixed header and the whole payload
/// announced by the payload length field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap `buffer` without checking it; see the module doc for when that is correct.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap `buffer` after checking version, payload length and buffer length.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`Ipv6Packet::new_checked`].
    pub fn check_len(&self) -> Result<(), ParseError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(truncated(Header::Ipv6, HEADER_LEN, data.len()));
        }
        if self.version() != 6 {
            return Err(ParseError::UnknownVersion {
                version: self.version(),
            });
        }
        if self.payload_len() == 0
            && self.next_header() == protocol::HOP_BY_HOP
            && data.len() > HEADER_LEN
        {
            return Err(ParseError::Ipv6Jumbogram);
        }
        if data.len() < self.total_len() {
            return Err(truncated(Header::Ipv6, self.total_len(), data.len()));
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble.
    pub fn version(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let word = read_u32(self.buffer.as_ref(), field::VER_TC_FLOW);
        ((word >> 20) & 0xff) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length field.
    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Fixed header plus payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Next header field of the fixed header.
    pub fn next_header(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::NXT_HDR)
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::HOP_LIMIT)
    }

    /// Source address.
    pub fn src_addr(&self) -> std::net::Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> std::net::Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// Bytes after the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = self.total_len().min(data.len());
        data.get(HEADER_LEN..end).unwrap_or(&[])
    }
}

/// Result of walking the extension headers.
pub(super) struct ExtWalk {
    /// The next header value that ended the walk.
    pub(super) protocol: u8,
    /// Offset of the upper-layer header (or of the fragment's data).
    pub(super) header_len: usize,
    pub(super) fragment: Option<FragmentInfo>,
}

/// How the walk treats a header that runs past the end of `packet`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Truncation {
    /// Fail with [`ParseError::Truncated`].
    Fail,
    /// Stop the walk there (for packets embedded in ICMP errors).
    Stop,
}

/// Walk the extension headers of `packet` (which starts at the fixed header).
pub(super) fn walk_extensions(
    packet: &[u8],
    truncation: Truncation,
) -> Result<ExtWalk, ParseError> {
    let mut next = read_u8(packet, field::NXT_HDR);
    let mut next_pos = field::NXT_HDR;
    let mut offset = HEADER_LEN;
    let mut count = 0;
    loop {
        let len = match next {
            protocol::HOP_BY_HOP
            | protocol::IPV6_ROUTE
            | protocol::IPV6_OPTS
            | protocol::MOBILITY
            | protocol::HIP
            | protocol::SHIM6
            | protocol::EXPERIMENT_1
            | protocol::EXPERIMENT_2 => {
                if next == protocol::HOP_BY_HOP && offset != HEADER_LEN {
                    return Err(ParseError::Ipv6HopByHopNotFirst { offset });
                }
                (usize::from(read_u8(packet, offset + 1)) + 1) * 8
            }
            protocol::AH => (usize::from(read_u8(packet, offset + 1)) + 2) * 4,
            protocol::IPV6_FRAG => 8,
            _ => {
                return Ok(ExtWalk {
                    protocol: next,
                    header_len: offset,
                    fragment: None,
                });
            }
        };
        count += 1;
        if count > MAX_IPV6_EXTENSION_HEADERS {
            return Err(ParseError::Ipv6TooManyExtensions {
                limit: MAX_IPV6_EXTENSION_HEADERS,
            });
        }
        let end = offset + len;
        if end > packet.len() {
            return match truncation {
                Truncation::Fail => Err(truncated(Header::Ipv6Extension, end, packet.len())),
                Truncation::Stop => Ok(ExtWalk {
                    protocol: next,
                    header_len: offset,
                    fragment: None,
                }),
            };
        }
        let following = read_u8(packet, offset);
        if next == protocol::IPV6_FRAG {
            let off_flags = read_u16(packet, offset + 2);
            let fragment = FragmentInfo {
                id: read_u32(packet, offset + 4),
                offset: off_flags & 0xfff8,
                more: off_flags & 1 != 0,
                unfragmentable_len: offset,
                data_offset: end,
                next_header_pos: next_pos,
                next_header: following,
            };
            return Ok(ExtWalk {
                protocol: following,
                header_len: end,
                fragment: Some(fragment),
            });
        }
        next_pos = offset;
        next = following;
        offset = end;
    }
}

pub(super) fn parse_ip(bytes: &[u8], config: &ParseConfig) -> Result<IpInfo, ParseError> {
    let packet = Ipv6Packet::new_unchecked(bytes);
    let total_len = packet.total_len();
    let captured_len = match packet.check_len() {
        Ok(()) => total_len,
        // The capture kept the first bytes only: the fixed header must be whole.
        Err(ParseError::Truncated { available, .. }) if config.truncated => {
            if available < HEADER_LEN {
                return Err(ParseError::CaptureCut {
                    header: Header::Ipv6,
                    needed: HEADER_LEN,
                    available,
                });
            }
            available
        }
        Err(e) => return Err(e),
    };
    let walk = match walk_extensions(bytes.get(..captured_len).unwrap_or(bytes), Truncation::Fail) {
        Ok(w) => w,
        // An extension header inside the packet's payload length that the capture cut.
        Err(ParseError::Truncated {
            header,
            needed,
            available,
        }) if captured_len < total_len && needed <= total_len => {
            return Err(ParseError::CaptureCut {
                header,
                needed,
                available,
            });
        }
        Err(e) => return Err(e),
    };
    Ok(IpInfo {
        version: IpVersion::V6,
        src: IpAddr::V6(packet.src_addr()),
        dst: IpAddr::V6(packet.dst_addr()),
        protocol: walk.protocol,
        hop_limit: packet.hop_limit(),
        header_len: walk.header_len,
        total_len,
        captured_len,
        checksum_ok: true,
        fragment: walk.fragment,
    })
}

/// The embedded packet of an ICMPv6 error (cut short by design). Returns (src, dst, protocol,
/// transport bytes) or None.
pub(super) fn parse_embedded(bytes: &[u8]) -> Option<(IpAddr, IpAddr, u8, Option<&[u8]>)> {
    let packet = Ipv6Packet::new_unchecked(bytes);
    if bytes.len() < HEADER_LEN || packet.version() != 6 {
        return None;
    }
    let walk = walk_extensions(bytes, Truncation::Stop).ok()?;
    let transport = match walk.fragment {
        Some(f) if f.offset != 0 => None,
        _ => bytes.get(walk.header_len..),
    };
    Some((
        IpAddr::V6(packet.src_addr()),
        IpAddr::V6(packet.dst_addr()),
        walk.protocol,
        transport,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0x00, 0x00, 0x00];
        p.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
        p.push(next);
        p.push(64);
        p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn walks_hop_by_hop_routing_and_dest_opts() {
        let mut payload = vec![protocol::IPV6_ROUTE, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop, 8 bytes
        payload.extend_from_slice(&[protocol::IPV6_OPTS, 0, 0, 0, 0, 0, 0, 0]); // routing
        payload.extend_from_slice(&[protocol::UDP, 1]); // dest opts, 16 bytes
        payload.extend_from_slice(&[0; 14]);
        payload.extend_from_slice(&[0; 8]); // UDP header
        let bytes = fixed(protocol::HOP_BY_HOP, &payload);
        let walk = walk_extensions(&bytes, Truncation::Fail).unwrap();
        assert_eq!(walk.protocol, protocol::UDP);
        assert_eq!(walk.header_len, 40 + 8 + 8 + 16);
        assert!(walk.fragment.is_none());
    }

    #[test]
    fn ah_uses_four_byte_units_and_esp_stops() {
        let mut payload = vec![protocol::ESP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // AH: (1+2)*4 = 12
        payload.extend_from_slice(&[0; 8]);
        let bytes = fixed(protocol::AH, &payload);
        let walk = walk_extensions(&bytes, Truncation::Fail).unwrap();
        assert_eq!(walk.protocol, protocol::ESP);
        assert_eq!(walk.header_len, 52);
    }

    #[test]
    fn fragment_header_records_positions() {
        let mut payload = vec![protocol::IPV6_FRAG, 0, 0, 0, 0, 0, 0, 0]; // dest opts
        payload.extend_from_slice(&[protocol::TCP, 0, 0x05, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        payload.extend_from_slice(&[0; 16]);
        let bytes = fixed(protocol::IPV6_OPTS, &payload);
        let walk = walk_extensions(&bytes, Truncation::Fail).unwrap();
        let frag = walk.fragment.unwrap();
        assert_eq!(frag.offset, 0x0500);
        assert!(frag.more);
        assert_eq!(frag.id, 0xdead_beef);
        assert_eq!(frag.unfragmentable_len, 48);
        assert_eq!(frag.next_header_pos, 40);
        assert_eq!(frag.data_offset, 56);
        assert_eq!(frag.next_header, protocol::TCP);
    }

    #[test]
    fn errors() {
        // Hop-by-hop after routing.
        let mut payload = vec![protocol::HOP_BY_HOP, 0, 0, 0, 0, 0, 0, 0];
        payload.extend_from_slice(&[protocol::UDP, 0, 0, 0, 0, 0, 0, 0]);
        let bytes = fixed(protocol::IPV6_ROUTE, &payload);
        assert_eq!(
            walk_extensions(&bytes, Truncation::Fail).err(),
            Some(ParseError::Ipv6HopByHopNotFirst { offset: 48 })
        );
        // A header running past the end.
        let bytes = fixed(protocol::IPV6_OPTS, &[protocol::UDP, 3, 0, 0]);
        assert_eq!(
            walk_extensions(&bytes, Truncation::Fail).err(),
            Some(ParseError::Truncated {
                header: Header::Ipv6Extension,
                needed: 72,
                available: 44
            })
        );
        assert_eq!(
            walk_extensions(&bytes, Truncation::Stop)
                .ok()
                .map(|w| w.header_len),
            Some(40)
        );
        // Too many headers.
        let mut payload = Vec::new();
        for _ in 0..=MAX_IPV6_EXTENSION_HEADERS {
            payload.extend_from_slice(&[protocol::IPV6_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        let bytes = fixed(protocol::IPV6_OPTS, &payload);
        assert_eq!(
            walk_extensions(&bytes, Truncation::Fail).err(),
            Some(ParseError::Ipv6TooManyExtensions {
                limit: MAX_IPV6_EXTENSION_HEADERS
            })
        );
        // Jumbogram and truncation of the fixed header.
        let mut bytes = fixed(protocol::HOP_BY_HOP, &[0; 8]);
        bytes[4] = 0;
        bytes[5] = 0;
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..]).err(),
            Some(ParseError::Ipv6Jumbogram)
        );
        let bytes = fixed(protocol::UDP, &[0; 8]);
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..47]).err(),
            Some(ParseError::Truncated {
                header: Header::Ipv6,
                needed: 48,
                available: 47
            })
        );
    }

    #[test]
    fn fixed_header_fields() {
        let mut bytes = fixed(protocol::UDP, &[0; 8]);
        bytes[0] = 0x6a;
        bytes[1] = 0xbc;
        bytes[2] = 0xde;
        bytes[3] = 0xf0;
        let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.traffic_class(), 0xab);
        assert_eq!(p.flow_label(), 0xcdef0);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.payload().len(), 8);
    }
}
