//! UDP header view (RFC 768).

use super::{read_u16, short, Header, ParseError, UdpInfo};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const LENGTH: usize = 4;
    pub(super) const CHECKSUM: usize = 6;
}

/// Length of the UDP header.
pub(crate) const HEADER_LEN: usize = 8;

/// A read-only view of a UDP datagram.
///
/// After [`UdpPacket::new_checked`] the length field is at least 8 and within the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wrap `buffer` without checking it; see the module doc for when that is correct.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap `buffer` after checking the header and the length field.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`UdpPacket::new_checked`].
    pub fn check_len(&self) -> Result<(), ParseError> {
        self.check_len_on_wire(self.buffer.as_ref().len())
    }

    /// [`UdpPacket::check_len`] for a datagram `claimed` bytes long on the wire of which the
    /// buffer holds the first bytes: the length field may point past the buffer (not past the
    /// wire length); a header the capture cut is [`ParseError::CaptureCut`].
    pub(super) fn check_len_on_wire(&self, claimed: usize) -> Result<(), ParseError> {
        let available = self.buffer.as_ref().len();
        if available < HEADER_LEN {
            return Err(short(Header::Udp, HEADER_LEN, available, claimed));
        }
        let length = self.len();
        let on_wire = claimed.max(available);
        if length < HEADER_LEN || length > on_wire {
            return Err(ParseError::UdpLength {
                length,
                available: on_wire,
            });
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field (header plus data).
    #[expect(
        clippy::len_without_is_empty,
        reason = "a header field, not a container length"
    )]
    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Data after the header, bounded by the length field.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(HEADER_LEN..self.len().min(data.len()))
            .unwrap_or(&[])
    }
}

/// Parse the UDP datagram `segment` (the bytes captured), which starts at byte `start` of the
/// packet and is `claimed` bytes long on the wire (`segment.len()` unless a capture cut it).
pub(super) fn parse(segment: &[u8], claimed: usize, start: usize) -> Result<UdpInfo, ParseError> {
    let udp = UdpPacket::new_unchecked(segment);
    udp.check_len_on_wire(claimed)?;
    let available = segment.len();
    let length = udp.len();
    Ok(UdpInfo {
        src_port: udp.src_port(),
        dst_port: udp.dst_port(),
        payload: start + HEADER_LEN..start + length.min(available),
        wire_payload_len: length - HEADER_LEN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_length_checks() {
        let bytes = [
            0x00, 0x35, 0xc0, 0x00, 0x00, 0x0b, 0x12, 0x34, b'a', b'b', b'c', 0, 0,
        ];
        let u = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (53, 0xc000));
        assert_eq!(u.payload(), b"abc");
        assert_eq!(u.checksum(), 0x1234);
        let info = parse(&bytes, bytes.len(), 20).unwrap();
        assert_eq!(info.payload, 28..31);

        let mut short = bytes;
        short[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&short[..]),
            Err(ParseError::UdpLength {
                length: 7,
                available: 13
            })
        );
        short[5] = 14;
        assert_eq!(
            UdpPacket::new_checked(&short[..]),
            Err(ParseError::UdpLength {
                length: 14,
                available: 13
            })
        );
        assert_eq!(
            UdpPacket::new_checked(&bytes[..4]),
            Err(ParseError::Truncated {
                header: Header::Udp,
                needed: 8,
                available: 4
            })
        );
    }
}
