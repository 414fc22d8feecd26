//! TCP header view (RFC 9293).

use core::fmt;

use super::{read_u16, read_u32, read_u8, short, Header, ParseError, TcpInfo};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const SEQ_NUM: usize = 4;
    pub(super) const ACK_NUM: usize = 8;
    pub(super) const DATA_OFF_FLAGS: usize = 12;
    pub(super) const WIN_SIZE: usize = 14;
    pub(super) const CHECKSUM: usize = 16;
    pub(super) const URGENT: usize = 18;
}

/// Length of a TCP header without options.
pub(crate) const MIN_HEADER_LEN: usize = 20;

/// TCP control flags (the low 9 bits of the data-offset/flags word).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: Self = Self(0x001);
    /// Synchronize sequence numbers.
    pub const SYN: Self = Self(0x002);
    /// Reset the connection.
    pub const RST: Self = Self(0x004);
    /// Push function.
    pub const PSH: Self = Self(0x008);
    /// Acknowledgment field is significant.
    pub const ACK: Self = Self(0x010);
    /// Urgent pointer field is significant.
    pub const URG: Self = Self(0x020);
    /// ECN echo.
    pub const ECE: Self = Self(0x040);
    /// Congestion window reduced.
    pub const CWR: Self = Self(0x080);
    /// ECN nonce (historic).
    pub const NS: Self = Self(0x100);

    /// Flags from their bit representation (bits above 8 are dropped).
    pub const fn from_bits(bits: u16) -> Self {
        Self(bits & 0x1ff)
    }

    /// The bit representation.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// FIN is set.
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }

    /// SYN is set.
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }

    /// RST is set.
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }

    /// ACK is set.
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(TcpFlags, &str); 9] = [
            (TcpFlags::SYN, "SYN"),
            (TcpFlags::ACK, "ACK"),
            (TcpFlags::FIN, "FIN"),
            (TcpFlags::RST, "RST"),
            (TcpFlags::PSH, "PSH"),
            (TcpFlags::URG, "URG"),
            (TcpFlags::ECE, "ECE"),
            (TcpFlags::CWR, "CWR"),
            (TcpFlags::NS, "NS"),
        ];
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// A read-only view of a TCP segment.
///
/// After [`TcpPacket::new_checked`] the buffer holds the whole header including options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap `buffer` without checking it; see the module doc for when that is correct.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap `buffer` after checking that the header and its options fit.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`TcpPacket::new_checked`].
    pub fn check_len(&self) -> Result<(), ParseError> {
        self.check_len_on_wire(self.buffer.as_ref().len())
    }

    /// [`TcpPacket::check_len`] for a segment `claimed` bytes long on the wire of which the
    /// buffer holds the first bytes: a header the capture cut is [`ParseError::CaptureCut`].
    pub(super) fn check_len_on_wire(&self, claimed: usize) -> Result<(), ParseError> {
        let available = self.buffer.as_ref().len();
        if available < MIN_HEADER_LEN {
            return Err(short(Header::Tcp, MIN_HEADER_LEN, available, claimed));
        }
        let data_offset = self.header_len();
        let on_wire = claimed.max(available);
        if data_offset < MIN_HEADER_LEN || data_offset > on_wire {
            return Err(ParseError::TcpDataOffset {
                data_offset,
                available: on_wire,
            });
        }
        if data_offset > available {
            // Options the segment's length covers but the capture cut.
            return Err(short(Header::Tcp, data_offset, available, claimed));
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(read_u8(self.buffer.as_ref(), field::DATA_OFF_FLAGS) >> 4) * 4
    }

    /// Control flags.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits(read_u16(self.buffer.as_ref(), field::DATA_OFF_FLAGS))
    }

    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Options bytes (between the fixed header and the data).
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(MIN_HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// Data after the header.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

/// Parse the TCP segment `segment` (the bytes captured), which starts at byte `start` of the
/// packet and is `claimed` bytes long on the wire (`segment.len()` unless a capture cut it).
pub(super) fn parse(segment: &[u8], claimed: usize, start: usize) -> Result<TcpInfo, ParseError> {
    let tcp = TcpPacket::new_unchecked(segment);
    tcp.check_len_on_wire(claimed)?;
    let available = segment.len();
    let header_len = tcp.header_len();
    Ok(TcpInfo {
        src_port: tcp.src_port(),
        dst_port: tcp.dst_port(),
        seq: tcp.seq_number(),
        ack: tcp.ack_number(),
        flags: tcp.flags(),
        window: tcp.window_len(),
        header_len,
        payload: start + header_len..start + available,
        wire_payload_len: claimed.max(available) - header_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN_WITH_MSS: [u8; 24] = [
        0x30, 0x39, 0x00, 0x50, // ports 12345 -> 80
        0x00, 0x00, 0x03, 0xe8, // seq 1000
        0x00, 0x00, 0x00, 0x00, // ack 0
        0x60, 0x02, 0xff, 0xff, // data offset 6, SYN, window 65535
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
    ];

    #[test]
    fn fields() {
        let t = TcpPacket::new_checked(&SYN_WITH_MSS[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (12345, 80));
        assert_eq!(t.seq_number(), 1000);
        assert_eq!(t.header_len(), 24);
        assert!(t.flags().syn() && !t.flags().ack());
        assert_eq!(t.window_len(), 0xffff);
        assert_eq!(t.options(), &[0x02, 0x04, 0x05, 0xb4]);
        assert!(t.payload().is_empty());
        assert_eq!(format!("{:?}", t.flags() | TcpFlags::ACK), "SYN|ACK");
        assert_eq!(format!("{:?}", TcpFlags::default()), "-");
    }

    #[test]
    fn data_offset_checks() {
        let mut bytes = SYN_WITH_MSS;
        bytes[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&bytes[..]),
            Err(ParseError::TcpDataOffset {
                data_offset: 16,
                available: 24
            })
        );
        bytes[12] = 0x70;
        assert_eq!(
            TcpPacket::new_checked(&bytes[..]),
            Err(ParseError::TcpDataOffset {
                data_offset: 28,
                available: 24
            })
        );
        assert_eq!(
            TcpPacket::new_checked(&bytes[..19]),
            Err(ParseError::Truncated {
                header: Header::Tcp,
                needed: 20,
                available: 19
            })
        );
    }

    #[test]
    fn payload_range_is_absolute() {
        let mut bytes = SYN_WITH_MSS.to_vec();
        bytes.extend_from_slice(b"hello");
        let info = parse(&bytes, bytes.len(), 40).unwrap();
        assert_eq!(info.payload, 64..69);
    }
}
