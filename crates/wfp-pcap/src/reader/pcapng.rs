//! pcapng format.
//!
//! Every block is `type (u32) | total length (u32) | body | total length (u32)`, with the total
//! length a multiple of 4 and at least 12, in the byte order of its section. A Section Header
//! Block (type `0x0A0D0D0A`, the same in both byte orders) starts each section: its byte-order
//! magic sets the order of the section, and the section's interface list starts empty. Read here:
//! SHB, Interface Description Block (link type, snaplen, `if_tsresol`, `if_tsoffset`), Enhanced
//! Packet Block (with the direction bits of `epb_flags`), Simple Packet Block (interface 0, no
//! timestamp) and the obsolete Packet Block (`pack_flags`, same layout as `epb_flags`).
//! Every other block (name resolution, interface statistics, custom, unknown) is skipped after
//! its length checks. Checks follow libpcap's `sf-pcapng.c`, except that sections may change byte
//! order and interfaces may differ in link type and snaplen.

use std::io::Read;
use std::mem;

use super::{
    CaptureError, CaptureFormat, CaptureReader, Format, Interface, InterfaceInfo, PacketMeta,
    TimestampResolution, MAX_BLOCK_LEN,
};
use crate::bytes::Endian;
use crate::{Direction, LinkType};

/// Section Header Block type, identical in both byte orders.
pub(crate) const SHB_TYPE_BYTES: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];
/// Byte-order magic, as written by a big-endian writer.
const BYTE_ORDER_MAGIC_BE: [u8; 4] = [0x1A, 0x2B, 0x3C, 0x4D];
/// Byte-order magic, as written by a little-endian writer.
const BYTE_ORDER_MAGIC_LE: [u8; 4] = [0x4D, 0x3C, 0x2B, 0x1A];

pub(crate) const BLOCK_SHB: u32 = 0x0A0D_0D0A;
pub(crate) const BLOCK_IDB: u32 = 1;
pub(crate) const BLOCK_PB: u32 = 2;
pub(crate) const BLOCK_SPB: u32 = 3;
pub(crate) const BLOCK_EPB: u32 = 6;

/// Block header (type + length) plus trailer (length).
const BLOCK_OVERHEAD: u32 = 12;
/// Fixed SHB body: byte-order magic, major, minor, section length.
const SHB_FIXED: u32 = 16;
/// Fixed IDB body: link type, reserved, snaplen.
const IDB_FIXED: usize = 8;
/// Fixed EPB and PB body: interface, timestamp high and low, captured and original lengths.
const PACKET_FIXED: usize = 20;
/// Fixed SPB body: original length.
const SPB_FIXED: usize = 4;

pub(crate) const OPT_ENDOFOPT: u16 = 0;
/// `epb_flags` (and the obsolete Packet Block's `pack_flags`): a 32-bit flags word.
pub(crate) const OPT_EPB_FLAGS: u16 = 2;
pub(crate) const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// `epb_flags` bits 0-1: 00 = not available, 01 = inbound, 10 = outbound (11 is undefined).
pub(crate) const EPB_FLAGS_DIRECTION_MASK: u32 = 0b11;
pub(crate) const EPB_FLAGS_INBOUND: u32 = 0b01;
pub(crate) const EPB_FLAGS_OUTBOUND: u32 = 0b10;

/// Reading state of a pcapng file: the byte order of the current section.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NgState {
    endian: Endian,
}

impl NgState {
    /// A state used only until the first SHB has been read.
    pub(crate) fn placeholder() -> Self {
        Self {
            endian: Endian::Little,
        }
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads blocks until one holds a packet.
    pub(super) fn next_pcapng(&mut self) -> Result<Option<PacketMeta>, CaptureError> {
        loop {
            let start = self.src.offset;
            let mut block_type = [0u8; 4];
            let got = self.fill(start, &mut block_type)?;
            if got == 0 {
                return Ok(None);
            }
            if got < block_type.len() {
                return Err(self.truncated(start, "pcapng block header", 8, got));
            }
            if let Some(meta) = self.read_block(start, block_type)? {
                return Ok(Some(meta));
            }
        }
    }

    /// Reads and handles the block starting at `start` whose type bytes have been read.
    pub(super) fn read_block(
        &mut self,
        start: u64,
        type_bytes: [u8; 4],
    ) -> Result<Option<PacketMeta>, CaptureError> {
        let shb = type_bytes == SHB_TYPE_BYTES;
        let (endian, length, consumed) = if shb {
            let mut head = [0u8; 8];
            let got = self.fill(start, &mut head)?;
            if got < head.len() {
                return Err(self.truncated(start, "pcapng section header", 12, got + 4));
            }
            let [l0, l1, l2, l3, m0, m1, m2, m3] = head;
            let endian = match [m0, m1, m2, m3] {
                BYTE_ORDER_MAGIC_BE => Endian::Big,
                BYTE_ORDER_MAGIC_LE => Endian::Little,
                magic => {
                    return Err(CaptureError::BadByteOrderMagic {
                        offset: start,
                        packet_index: self.next_index,
                        found: u32::from_le_bytes(magic),
                    })
                }
            };
            (endian, endian.u32([l0, l1, l2, l3]), 12u32)
        } else {
            let endian = match self.format {
                Format::PcapNg(state) => state.endian,
                Format::Pcap(_) => Endian::Little,
            };
            let mut len = [0u8; 4];
            let got = self.fill(start, &mut len)?;
            if got < len.len() {
                return Err(self.truncated(start, "pcapng block header", 8, got + 4));
            }
            (endian, endian.u32(len), 8u32)
        };
        let block_type = endian.u32(type_bytes);
        let minimum = if shb {
            BLOCK_OVERHEAD + SHB_FIXED
        } else {
            BLOCK_OVERHEAD
        };
        if length < minimum {
            return Err(CaptureError::BlockTooShort {
                offset: start,
                packet_index: self.next_index,
                block_type,
                length,
                minimum,
            });
        }
        if length % 4 != 0 {
            return Err(CaptureError::UnalignedBlockLength {
                offset: start,
                packet_index: self.next_index,
                block_type,
                length,
            });
        }
        if length > MAX_BLOCK_LEN {
            return Err(CaptureError::BlockTooLarge {
                offset: start,
                packet_index: self.next_index,
                block_type,
                length,
                limit: MAX_BLOCK_LEN,
            });
        }
        // Rest of the block: body (after what was read) and trailer.
        let rest = usize::try_from(length - consumed).unwrap_or(usize::MAX);
        let got = self.read_to_buf(start, rest)?;
        if got < rest {
            let present = got + usize::try_from(consumed).unwrap_or(0);
            return Err(self.truncated(start, "pcapng block", u64::from(length), present));
        }
        let body_len = rest.saturating_sub(4);
        let trailer = endian.u32_at(&self.buf, body_len).unwrap_or_default();
        if trailer != length {
            return Err(CaptureError::BlockLengthMismatch {
                offset: start,
                packet_index: self.next_index,
                block_type,
                header: length,
                trailer,
            });
        }
        let body = mem::take(&mut self.buf);
        let result = self.handle_block(
            Block {
                start,
                block_type,
                length,
                endian,
            },
            body.get(..body_len).unwrap_or_default(),
        );
        self.buf = body;
        result
    }

    /// Interprets a complete, length-checked block body (for an SHB, the body after the
    /// byte-order magic).
    fn handle_block(
        &mut self,
        block: Block,
        body: &[u8],
    ) -> Result<Option<PacketMeta>, CaptureError> {
        let e = block.endian;
        match block.block_type {
            BLOCK_SHB => {
                let major = e.u16_at(body, 0).unwrap_or_default();
                let minor = e.u16_at(body, 2).unwrap_or_default();
                if major != 1 {
                    return Err(CaptureError::UnsupportedVersion {
                        offset: block.start,
                        packet_index: self.next_index,
                        format: CaptureFormat::PcapNg,
                        major,
                        minor,
                    });
                }
                self.format = Format::PcapNg(NgState { endian: e });
                self.interfaces.clear();
                Ok(None)
            }
            BLOCK_IDB => {
                let (Some(link), Some(snaplen)) = (e.u16_at(body, 0), e.u32_at(body, 4)) else {
                    return Err(self.too_short(block, IDB_FIXED));
                };
                let options = body.get(IDB_FIXED..).unwrap_or_default();
                let (timestamp_resolution, timestamp_offset_s) =
                    idb_options(options, e).map_err(|(code, reason)| CaptureError::BadOption {
                        offset: block.start,
                        packet_index: self.next_index,
                        block_type: block.block_type,
                        code,
                        reason,
                    })?;
                self.interfaces.push(Interface::new(InterfaceInfo {
                    link_type: LinkType(u32::from(link)),
                    snaplen,
                    timestamp_resolution,
                    timestamp_offset_s,
                }));
                Ok(None)
            }
            BLOCK_EPB | BLOCK_PB => {
                let fields = if block.block_type == BLOCK_EPB {
                    e.u32_at(body, 0)
                } else {
                    e.u16_at(body, 0).map(u32::from)
                }
                .zip(e.u32_at(body, 4))
                .zip(e.u32_at(body, 8))
                .zip(e.u32_at(body, 12))
                .zip(e.u32_at(body, 16));
                let Some(((((interface, high), low), captured), original)) = fields else {
                    return Err(self.too_short(block, PACKET_FIXED));
                };
                let room = body.len().saturating_sub(PACKET_FIXED);
                let len = usize::try_from(captured).unwrap_or(usize::MAX);
                if len > room {
                    return Err(CaptureError::CapturedLengthOverflow {
                        offset: block.start,
                        packet_index: self.next_index,
                        block_type: block.block_type,
                        captured,
                        room,
                    });
                }
                let iface = self.interface(block, interface)?;
                let units = (u64::from(high) << 32) | u64::from(low);
                let options = body
                    .get(PACKET_FIXED.saturating_add(len).saturating_add(3) & !3..)
                    .unwrap_or_default();
                Ok(Some(PacketMeta {
                    timestamp_ns: iface.timestamp_ns(units),
                    link_type: iface.info.link_type,
                    orig_len: original,
                    interface,
                    direction: packet_direction(options, e),
                    data: PACKET_FIXED..PACKET_FIXED + len,
                }))
            }
            BLOCK_SPB => {
                let Some(original) = e.u32_at(body, 0) else {
                    return Err(self.too_short(block, SPB_FIXED));
                };
                let iface = self.interface(block, 0)?;
                let room = body.len().saturating_sub(SPB_FIXED);
                let mut len = usize::try_from(original).unwrap_or(usize::MAX).min(room);
                if iface.info.snaplen != 0 {
                    len = len.min(usize::try_from(iface.info.snaplen).unwrap_or(usize::MAX));
                }
                Ok(Some(PacketMeta {
                    timestamp_ns: 0,
                    link_type: iface.info.link_type,
                    orig_len: original,
                    interface: 0,
                    direction: None,
                    data: SPB_FIXED..SPB_FIXED + len,
                }))
            }
            _ => Ok(None),
        }
    }

    fn interface(&self, block: Block, id: u32) -> Result<Interface, CaptureError> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.interfaces.get(i))
            .copied()
            .ok_or(CaptureError::NoInterface {
                offset: block.start,
                packet_index: self.next_index,
                interface: id,
            })
    }

    fn too_short(&self, block: Block, fixed: usize) -> CaptureError {
        CaptureError::BlockTooShort {
            offset: block.start,
            packet_index: self.next_index,
            block_type: block.block_type,
            length: block.length,
            minimum: BLOCK_OVERHEAD + u32::try_from(fixed).unwrap_or(u32::MAX),
        }
    }
}

/// A block's identity, for error reports.
#[derive(Clone, Copy, Debug)]
struct Block {
    start: u64,
    block_type: u32,
    length: u32,
    endian: Endian,
}

/// The direction in a packet block's `epb_flags` / `pack_flags` option, if the options hold a
/// well-formed one with the inbound or outbound bit set. Anything malformed is ignored: options
/// are advisory and the packet itself was read correctly.
fn packet_direction(mut options: &[u8], e: Endian) -> Option<Direction> {
    // Most packet blocks carry no options at all.
    while !options.is_empty() {
        let code = e.u16_at(options, 0)?;
        let len = usize::from(e.u16_at(options, 2)?);
        if code == OPT_ENDOFOPT {
            return None;
        }
        if code == OPT_EPB_FLAGS {
            let flags = e.u32_at(options, 4).filter(|_| len == 4)?;
            return match flags & EPB_FLAGS_DIRECTION_MASK {
                EPB_FLAGS_INBOUND => Some(Direction::Inbound),
                EPB_FLAGS_OUTBOUND => Some(Direction::Outbound),
                _ => None,
            };
        }
        options = options.get((4 + len + 3) & !3..)?;
    }
    None
}

/// Parses IDB options: returns the timestamp resolution (default 10^-6) and offset (default 0),
/// or the offending option code and reason.
fn idb_options(
    mut options: &[u8],
    e: Endian,
) -> Result<(TimestampResolution, i64), (u16, &'static str)> {
    let mut resolution = None;
    let mut offset = None;
    while !options.is_empty() {
        let (Some(code), Some(len)) = (e.u16_at(options, 0), e.u16_at(options, 2)) else {
            return Err((0, "option header cut short"));
        };
        let len = usize::from(len);
        let Some(value) = options.get(4..4 + len) else {
            return Err((code, "option value cut short"));
        };
        match code {
            OPT_ENDOFOPT => break,
            OPT_IF_TSRESOL => {
                let &[raw] = value else {
                    return Err((code, "if_tsresol length is not 1"));
                };
                if resolution.is_some() {
                    return Err((code, "more than one if_tsresol"));
                }
                let exponent = raw & 0x7F;
                resolution = Some(if raw & 0x80 != 0 {
                    if exponent > 63 {
                        return Err((code, "if_tsresol finer than 2^-63 s"));
                    }
                    TimestampResolution::Binary(exponent)
                } else {
                    if exponent > 19 {
                        return Err((code, "if_tsresol finer than 10^-19 s"));
                    }
                    TimestampResolution::Decimal(exponent)
                });
            }
            OPT_IF_TSOFFSET => {
                let Some(raw) = e.u64_at(value, 0).filter(|_| len == 8) else {
                    return Err((code, "if_tsoffset length is not 8"));
                };
                if offset.is_some() {
                    return Err((code, "more than one if_tsoffset"));
                }
                offset = Some(i64::from_ne_bytes(raw.to_ne_bytes()));
            }
            _ => {}
        }
        let padded = (4 + len + 3) & !3;
        options = options.get(padded..).unwrap_or_default();
    }
    Ok((
        resolution.unwrap_or(TimestampResolution::Decimal(6)),
        offset.unwrap_or(0),
    ))
}
