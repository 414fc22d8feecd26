//! IPv4 header view (RFC 791).

use std::net::IpAddr;

use super::{
    checksum, read_ipv4, read_u16, read_u8, truncated, FragmentInfo, Header, IpInfo, IpVersion,
    ParseConfig, ParseError,
};

mod field {
    pub(super) const VER_IHL: usize = 0;
    pub(super) const LENGTH: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLG_OFF: usize = 6;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: usize = 10;
    pub(super) const SRC_ADDR: usize = 12;
    pub(super) const DST_ADDR: usize = 16;
}

/// Length of an IPv4 header without options.
pub(crate) const MIN_HEADER_LEN: usize = 20;
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read-only view of an IPv4 packet.
///
/// After [`Ipv4Packet::new_checked`] the buffer holds at least `total_len()` bytes, the header is at
/// least 20 bytes and fits in `total_len()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap `buffer` without checking it; see the module doc for when that is correct.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap `buffer` after checking version, IHL, total length and buffer length.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`Ipv4Packet::new_checked`].
    pub fn check_len(&self) -> Result<(), ParseError> {
        let data = self.buffer.as_ref();
        if data.len() < MIN_HEADER_LEN {
            return Err(truncated(Header::Ipv4, MIN_HEADER_LEN, data.len()));
        }
        if self.version() != 4 {
            return Err(ParseError::UnknownVersion {
                version: self.version(),
            });
        }
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(ParseError::Ipv4HeaderLen { header_len });
        }
        let total_len = self.total_len();
        if total_len < header_len {
            return Err(ParseError::Ipv4TotalLen {
                total_len,
                header_len,
            });
        }
        if data.len() < total_len {
            return Err(truncated(Header::Ipv4, total_len, data.len()));
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble.
    pub fn version(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(read_u8(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    /// Total length field.
    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::TTL)
    }

    /// Protocol field.
    pub fn protocol(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> std::net::Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> std::net::Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// The checksum the header should carry (computed with the checksum field as zero).
    pub fn computed_checksum(&self) -> u16 {
        let header = self.buffer.as_ref().get(..self.header_len()).unwrap_or(&[]);
        let acc = checksum::sum(header, 0);
        // Remove the stored checksum from the sum: adding its complement cancels it.
        !checksum::fold(acc + u64::from(!self.checksum()))
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        let header = self.buffer.as_ref().get(..self.header_len()).unwrap_or(&[]);
        checksum::internet_checksum(header) == 0
    }

    /// Bytes after the header, up to the total length.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = self.total_len().min(data.len());
        data.get(self.header_len()..end).unwrap_or(&[])
    }
}

/// The IPv4 header: the common one inline ([`parse_plain`]), every other out of line.
#[inline]
pub(super) fn parse_ip(bytes: &[u8], config: &ParseConfig) -> Result<IpInfo, ParseError> {
    match parse_plain(bytes, config) {
        Some(info) => Ok(info),
        None => parse_general(bytes, config),
    }
}

/// Any IPv4 header: options, fragments, unset or cut lengths, errors.
#[inline(never)]
fn parse_general(bytes: &[u8], config: &ParseConfig) -> Result<IpInfo, ParseError> {
    let packet = Ipv4Packet::new_unchecked(bytes);
    // Total length 0 with bytes beyond a whole header: a segmentation-offload super-packet (or
    // one larger than 64 KiB) whose length the stack left unset; its length is the bytes there,
    // as Wireshark reads it.
    let header_len = packet.header_len();
    let unset = packet.total_len() == 0
        && packet.version() == 4
        && header_len >= MIN_HEADER_LEN
        && bytes.len() > header_len;
    let captured_len = match packet.check_len() {
        _ if unset => bytes.len(),
        Ok(()) => packet.total_len(),
        // The capture kept the first bytes only: the header must be whole (`check_len` has
        // checked version, IHL and total length unless the buffer is below 20 bytes).
        Err(ParseError::Truncated { available, .. }) if config.truncated => {
            let header_len = packet.header_len().max(MIN_HEADER_LEN);
            if available < header_len {
                return Err(ParseError::CaptureCut {
                    header: Header::Ipv4,
                    needed: header_len,
                    available,
                });
            }
            available
        }
        Err(e) => return Err(e),
    };
    let checksum_ok = packet.verify_checksum();
    if config.verify_ipv4_checksum && !checksum_ok {
        return Err(ParseError::Ipv4Checksum {
            stored: packet.checksum(),
            computed: packet.computed_checksum(),
        });
    }
    let fragment = (packet.more_frags() || packet.frag_offset() != 0).then(|| FragmentInfo {
        id: u32::from(packet.ident()),
        offset: packet.frag_offset(),
        more: packet.more_frags(),
        unfragmentable_len: header_len,
        data_offset: header_len,
        next_header_pos: 0,
        next_header: packet.protocol(),
    });
    Ok(IpInfo {
        version: IpVersion::V4,
        src: IpAddr::V4(packet.src_addr()),
        dst: IpAddr::V4(packet.dst_addr()),
        protocol: packet.protocol(),
        hop_limit: packet.ttl(),
        header_len,
        total_len: if unset {
            bytes.len()
        } else {
            packet.total_len()
        },
        captured_len,
        checksum_ok,
        fragment,
    })
}

/// The common header (RFC 791 §3.1): version 4 with no options, total length set and within the
/// bytes, not a fragment, checksum accepted by `config`. Read from one fixed 20-byte array (no
/// per-field bounds checks); the answer is the one the general path gives such a header.
/// `None` sends every other header (and every error) to the general path.
#[inline]
fn parse_plain(bytes: &[u8], config: &ParseConfig) -> Option<IpInfo> {
    let h: &[u8; MIN_HEADER_LEN] = bytes.first_chunk()?;
    let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let flags_offset = u16::from_be_bytes([h[6], h[7]]);
    if h[0] != 0x45
        || total_len < MIN_HEADER_LEN
        || total_len > bytes.len()
        || flags_offset & (FLAG_MF | OFFSET_MASK) != 0
    {
        return None;
    }
    let checksum_ok = checksum::internet_checksum(h) == 0;
    if config.verify_ipv4_checksum && !checksum_ok {
        return None;
    }
    Some(IpInfo {
        version: IpVersion::V4,
        src: IpAddr::V4(std::net::Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(std::net::Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        protocol: h[9],
        hop_limit: h[8],
        header_len: MIN_HEADER_LEN,
        total_len,
        captured_len: total_len,
        checksum_ok,
        fragment: None,
    })
}

/// The embedded header of an ICMP error: lengths are not checked against the buffer (the embedded
/// packet is cut short by design). Returns (src, dst, protocol, transport bytes) or None.
pub(super) fn parse_embedded(bytes: &[u8]) -> Option<(IpAddr, IpAddr, u8, Option<&[u8]>)> {
    let packet = Ipv4Packet::new_unchecked(bytes);
    if bytes.len() < MIN_HEADER_LEN || packet.version() != 4 {
        return None;
    }
    let header_len = packet.header_len();
    if header_len < MIN_HEADER_LEN || header_len > bytes.len() {
        return None;
    }
    let transport = (packet.frag_offset() == 0).then(|| bytes.get(header_len..).unwrap_or(&[]));
    let protocol = packet.protocol();
    Some((
        IpAddr::V4(packet.src_addr()),
        IpAddr::V4(packet.dst_addr()),
        protocol,
        transport,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The fixed-array path answers exactly as the general parser for every header it takes
        /// (random headers near the common shape: no options, lengths around the buffer's,
        /// fragment bits, checksum right or wrong), under every configuration.
        #[test]
        fn plain_path_answers_as_the_general_parser(
            mut bytes in proptest::collection::vec(any::<u8>(), 20..48),
            total in 0u16..56,
            flags in prop_oneof![Just(0u16), Just(0x4000u16), Just(0x2000u16), 0u16..0xffff],
            fix_checksum in any::<bool>(),
            verify in any::<bool>(),
            cut in any::<bool>(),
        ) {
            bytes[0] = 0x45;
            bytes[2..4].copy_from_slice(&total.to_be_bytes());
            bytes[6..8].copy_from_slice(&flags.to_be_bytes());
            if fix_checksum {
                bytes[10..12].copy_from_slice(&[0, 0]);
                let c = checksum::internet_checksum(&bytes[..20]);
                bytes[10..12].copy_from_slice(&c.to_be_bytes());
            }
            let config = ParseConfig {
                verify_ipv4_checksum: verify,
                truncated: cut,
            };
            if let Some(info) = parse_plain(&bytes, &config) {
                prop_assert_eq!(Ok(info), parse_general(&bytes, &config));
            }
        }
    }

    // A 20-byte header: total length 28, id 0x1c46, DF, TTL 64, UDP, 10.0.0.1 -> 10.0.0.2.
    fn header() -> Vec<u8> {
        let mut h = vec![
            0x45, 0x00, 0x00, 0x1c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 1,
            10, 0, 0, 2,
        ];
        let c = checksum::internet_checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(&[0; 8]);
        h
    }

    #[test]
    fn common_header_takes_the_plain_path() {
        let bytes = header();
        let config = ParseConfig::default();
        let plain = parse_plain(&bytes, &config);
        assert!(plain.is_some());
        assert_eq!(
            plain.ok_or(()),
            parse_general(&bytes, &config).map_err(|_| ())
        );
    }

    #[test]
    fn fields() {
        let bytes = header();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert!(p.verify_checksum());
        assert_eq!(p.computed_checksum(), p.checksum());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn bad_lengths() {
        let mut bytes = header();
        bytes[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]),
            Err(ParseError::Ipv4HeaderLen { header_len: 16 })
        );
        let mut bytes = header();
        bytes[3] = 19;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]),
            Err(ParseError::Ipv4TotalLen {
                total_len: 19,
                header_len: 20
            })
        );
        let bytes = header();
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..27]),
            Err(ParseError::Truncated {
                header: Header::Ipv4,
                needed: 28,
                available: 27
            })
        );
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..10]),
            Err(ParseError::Truncated {
                header: Header::Ipv4,
                needed: 20,
                available: 10
            })
        );
    }

    #[test]
    fn unchecked_view_of_garbage_reads_zero() {
        let p = Ipv4Packet::new_unchecked(&[0x4f_u8][..]);
        assert_eq!(p.header_len(), 60);
        assert_eq!(p.total_len(), 0);
        assert_eq!(p.src_addr(), std::net::Ipv4Addr::UNSPECIFIED);
        assert!(p.payload().is_empty());
    }
}
