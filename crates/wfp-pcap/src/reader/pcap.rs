//! Classic libpcap format.
//!
//! File header (24 bytes): magic, version major/minor (u16), thiszone, sigfigs, snaplen, link type.
//! Record header (16 bytes): seconds, microseconds or nanoseconds, captured length, original
//! length. Versions 2.0–2.4 and DG/UX's 543.0 are accepted; before 2.3 (and in 543.0) the two
//! lengths are stored swapped, and 2.3 files are swapped when the captured length exceeds the
//! original length (the same rules as libpcap's `sf-pcap.c`). A captured length above the header's
//! snapshot length is accepted (it happens in real files); one above [`MAX_CAPTURED_LEN`] is not.

use std::io::Read;

use super::{
    CaptureError, CaptureFormat, CaptureReader, Interface, InterfaceInfo, PacketMeta,
    TimestampResolution, MAX_CAPTURED_LEN,
};
use crate::bytes::Endian;
use crate::LinkType;

/// Magic of microsecond files, as written in big-endian order.
pub(crate) const MAGIC_MICROS: u32 = 0xA1B2_C3D4;
/// Magic of nanosecond files, as written in big-endian order.
pub(crate) const MAGIC_NANOS: u32 = 0xA1B2_3C4D;
/// Classic file header length.
pub(crate) const FILE_HEADER_LEN: usize = 24;
/// Classic record header length.
pub(crate) const RECORD_HEADER_LEN: usize = 16;
/// Mask of the link type in the header's link-type field; the upper bits carry FCS information.
const LINK_TYPE_MASK: u32 = 0x03FF_FFFF;

/// Whether the record header's two lengths are stored in the pre-2.3 order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lengths {
    Maybe,
    Normal,
    Swapped,
}

/// Reading state of a classic pcap file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PcapState {
    endian: Endian,
    nanos: bool,
    lengths: Lengths,
}

impl PcapState {
    /// A state used only until the file header has been read.
    pub(crate) fn placeholder() -> Self {
        Self {
            endian: Endian::Little,
            nanos: false,
            lengths: Lengths::Normal,
        }
    }

    /// Recognises the four magic variants.
    pub(crate) fn from_magic(magic: [u8; 4]) -> Option<Self> {
        let (endian, nanos) = match u32::from_be_bytes(magic) {
            MAGIC_MICROS => (Endian::Big, false),
            MAGIC_NANOS => (Endian::Big, true),
            _ => match u32::from_le_bytes(magic) {
                MAGIC_MICROS => (Endian::Little, false),
                MAGIC_NANOS => (Endian::Little, true),
                _ => return None,
            },
        };
        Some(Self {
            endian,
            nanos,
            lengths: Lengths::Normal,
        })
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the rest of the 24-byte file header after the magic.
    pub(super) fn read_pcap_header(&mut self, mut state: PcapState) -> Result<(), CaptureError> {
        let mut rest = [0u8; FILE_HEADER_LEN - 4];
        let got = self.fill(0, &mut rest)?;
        if got < rest.len() {
            return Err(self.truncated(0, "pcap file header", 24, got + 4));
        }
        let e = state.endian;
        let major = e.u16_at(&rest, 0).unwrap_or_default();
        let minor = e.u16_at(&rest, 2).unwrap_or_default();
        let snaplen = e.u32_at(&rest, 12).unwrap_or_default();
        let link = e.u32_at(&rest, 16).unwrap_or_default();
        state.lengths = match (major, minor) {
            (2, 0..=2) | (543, 0) => Lengths::Swapped,
            (2, 3) => Lengths::Maybe,
            (2, 4) => Lengths::Normal,
            _ => {
                return Err(CaptureError::UnsupportedVersion {
                    offset: 0,
                    packet_index: 0,
                    format: CaptureFormat::Pcap,
                    major,
                    minor,
                })
            }
        };
        let resolution = if state.nanos { 9 } else { 6 };
        self.interfaces = vec![Interface::new(InterfaceInfo {
            link_type: LinkType(link & LINK_TYPE_MASK),
            snaplen,
            timestamp_resolution: TimestampResolution::Decimal(resolution),
            timestamp_offset_s: 0,
        })];
        self.format = super::Format::Pcap(state);
        Ok(())
    }

    /// Reads one record.
    pub(super) fn next_pcap(
        &mut self,
        state: PcapState,
    ) -> Result<Option<PacketMeta>, CaptureError> {
        let start = self.src.offset;
        let mut header = [0u8; RECORD_HEADER_LEN];
        let got = self.fill(start, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < header.len() {
            return Err(self.truncated(start, "pcap record header", 16, got));
        }
        let e = state.endian;
        let seconds = e.u32_at(&header, 0).unwrap_or_default();
        let fraction = e.u32_at(&header, 4).unwrap_or_default();
        let mut captured = e.u32_at(&header, 8).unwrap_or_default();
        let mut original = e.u32_at(&header, 12).unwrap_or_default();
        let swap = match state.lengths {
            Lengths::Normal => false,
            Lengths::Swapped => true,
            Lengths::Maybe => captured > original,
        };
        if swap {
            std::mem::swap(&mut captured, &mut original);
        }
        if captured > MAX_CAPTURED_LEN {
            return Err(CaptureError::PacketTooLarge {
                offset: start,
                packet_index: self.next_index,
                captured,
                limit: MAX_CAPTURED_LEN,
            });
        }
        let len = usize::try_from(captured).unwrap_or(usize::MAX);
        let got = self.read_to_buf(start, len)?;
        if got < len {
            return Err(self.truncated(
                start,
                "pcap record",
                u64::from(captured) + 16,
                got + RECORD_HEADER_LEN,
            ));
        }
        let fraction_ns = if state.nanos {
            u64::from(fraction)
        } else {
            u64::from(fraction) * 1_000
        };
        let link_type = self
            .interfaces
            .first()
            .map_or(LinkType(0), |i| i.info.link_type);
        Ok(Some(PacketMeta {
            timestamp_ns: u64::from(seconds) * 1_000_000_000 + fraction_ns,
            link_type,
            orig_len: original,
            interface: 0,
            direction: None,
            data: 0..len,
        }))
    }
}
