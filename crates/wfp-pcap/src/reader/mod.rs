//! Capture file reader: classic pcap and pcapng, one packet at a time.
//!
//! Contract:
//! - [`CaptureReader::next_packet`] (owned) and [`CaptureReader::next_packet_ref`] (borrowed, no
//!   allocation per packet) return every good packet in file order, then `Ok(None)` at a clean end
//!   of file, or one [`CaptureError`] naming the byte offset and packet index where reading
//!   stopped. After that the reader is finished and returns `Ok(None)`.
//! - No declared length is trusted for allocation: captured lengths above [`MAX_CAPTURED_LEN`] and
//!   blocks above [`MAX_BLOCK_LEN`] are rejected, and large reads grow their buffer only as data
//!   actually arrives, so a 40-byte file claiming a 200 MiB packet costs 40 bytes of memory.
//! - Timestamps are nanoseconds since the Unix epoch, saturating at `0` and `u64::MAX` (year 2554).
//!   pcapng Simple Packet Blocks carry no timestamp and report `0`.
//! - A packet's direction is the one its pcapng Enhanced (or obsolete) Packet Block records in the
//!   inbound/outbound bits of `epb_flags` (`pack_flags`); classic pcap and blocks without the
//!   option report `None`. Malformed packet-block options are ignored, never an error.

mod error;
mod pcap;
pub(crate) mod pcapng;

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::mem;
use std::ops::Range;
use std::path::Path;

use crate::link::{decode_link, Direction, L3Packet, LinkError};
use crate::LinkType;

pub use error::CaptureError;

/// Largest captured length (bytes of packet data in one record) the reader accepts: 256 MiB.
pub const MAX_CAPTURED_LEN: u32 = 256 * 1024 * 1024;

/// Largest pcapng block the reader accepts: [`MAX_CAPTURED_LEN`] plus 64 KiB for headers and
/// options.
pub const MAX_BLOCK_LEN: u32 = MAX_CAPTURED_LEN + 64 * 1024;

/// Reads of at most this many bytes size their buffer up front; larger ones grow with the data.
const EAGER_READ_LIMIT: usize = 1024 * 1024;

/// Buffer size of [`CaptureReader::open`]'s file reader.
const FILE_BUFFER: usize = 64 * 1024;

/// The container format of a capture file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptureFormat {
    /// Classic libpcap format (`.pcap`), microsecond or nanosecond magic, either byte order.
    Pcap,
    /// pcapng (`.pcapng`), any number of sections, each in either byte order.
    PcapNg,
}

impl fmt::Display for CaptureFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pcap => "pcap",
            Self::PcapNg => "pcapng",
        })
    }
}

/// Resolution of an interface's raw timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimestampResolution {
    /// Units of 2^-n seconds (pcapng `if_tsresol` with the high bit set), n ≤ 63.
    Binary(u8),
    /// Units of 10^-n seconds, n ≤ 19 (6 for classic microsecond pcap, 9 for nanosecond).
    Decimal(u8),
}

/// What the file says about one capture interface.
///
/// A classic pcap file has exactly one; a pcapng section has one per Interface Description Block,
/// numbered from 0 in the order they appear in the section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InterfaceInfo {
    /// Link-layer header type of the interface's packets.
    pub link_type: LinkType,
    /// Snapshot length declared for the interface (0 means "no limit" in pcapng).
    pub snaplen: u32,
    /// Unit of the raw timestamps.
    pub timestamp_resolution: TimestampResolution,
    /// Seconds added to every timestamp (pcapng `if_tsoffset`; 0 otherwise).
    pub timestamp_offset_s: i64,
}

/// One packet, owning its bytes. See [`PacketRef`] for the borrowed form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedPacket {
    /// 0-based position among the packets of the file.
    pub index: u64,
    /// Capture time, nanoseconds since the Unix epoch (0 when the file gives none).
    pub timestamp_ns: u64,
    /// Link-layer header type of `data`.
    pub link_type: LinkType,
    /// Length of the packet on the wire, which may exceed `data.len()` when it was truncated by
    /// the snapshot length.
    pub orig_len: u32,
    /// Interface id: 0 for classic pcap; the pcapng interface id within its section.
    pub interface: u32,
    /// Direction recorded by the file (pcapng `epb_flags`), if any.
    pub direction: Option<Direction>,
    /// Captured bytes, starting with the link-layer header.
    pub data: Vec<u8>,
}

impl CapturedPacket {
    /// The borrowed view of this packet.
    pub fn as_packet_ref(&self) -> PacketRef<'_> {
        PacketRef {
            index: self.index,
            timestamp_ns: self.timestamp_ns,
            link_type: self.link_type,
            orig_len: self.orig_len,
            interface: self.interface,
            direction: self.direction,
            data: &self.data,
        }
    }

    /// Decodes the link-layer header down to the network layer (see [`decode_link`]).
    #[inline]
    pub fn decode_link(&self) -> Result<L3Packet<'_>, LinkError> {
        decode_link(self.link_type, &self.data)
    }
}

/// One packet, borrowing its bytes from the reader's buffer until the next read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketRef<'a> {
    /// 0-based position among the packets of the file.
    pub index: u64,
    /// Capture time, nanoseconds since the Unix epoch (0 when the file gives none).
    pub timestamp_ns: u64,
    /// Link-layer header type of `data`.
    pub link_type: LinkType,
    /// Length of the packet on the wire.
    pub orig_len: u32,
    /// Interface id: 0 for classic pcap; the pcapng interface id within its section.
    pub interface: u32,
    /// Direction recorded by the file (pcapng `epb_flags`), if any.
    pub direction: Option<Direction>,
    /// Captured bytes, starting with the link-layer header.
    pub data: &'a [u8],
}

impl PacketRef<'_> {
    /// Copies the packet out of the reader's buffer.
    pub fn to_owned_packet(&self) -> CapturedPacket {
        CapturedPacket {
            index: self.index,
            timestamp_ns: self.timestamp_ns,
            link_type: self.link_type,
            orig_len: self.orig_len,
            interface: self.interface,
            direction: self.direction,
            data: self.data.to_vec(),
        }
    }

    /// Decodes the link-layer header down to the network layer (see [`decode_link`]).
    #[inline]
    pub fn decode_link(&self) -> Result<L3Packet<'_>, LinkError> {
        decode_link(self.link_type, self.data)
    }
}

/// Streaming reader for classic pcap and pcapng captures.
///
/// Call order: construct with [`Self::open`] or [`Self::new`] (which reads and checks the file
/// header), then call [`Self::next_packet`] or [`Self::next_packet_ref`] until it returns
/// `Ok(None)` or an error. The reader is also an [`Iterator`] of owned packets.
///
/// ```
/// # fn main() -> Result<(), wfp_pcap::CaptureError> {
/// # let bytes: &[u8] = &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0,
/// #                      0xff, 0xff, 0, 0, 1, 0, 0, 0];
/// let mut reader = wfp_pcap::CaptureReader::new(bytes)?;
/// while let Some(packet) = reader.next_packet_ref()? {
///     match packet.decode_link() {
///         Ok(l3) => println!("{} bytes of {:?}", l3.network.len(), l3.protocol),
///         Err(e) => println!("packet {}: {e}", packet.index),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CaptureReader<R> {
    src: Source<R>,
    format: Format,
    interfaces: Vec<Interface>,
    /// Reused buffer holding the current record's data or block body.
    buf: Vec<u8>,
    next_index: u64,
    finished: bool,
}

impl CaptureReader<BufReader<File>> {
    /// Opens a capture file and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::new(BufReader::with_capacity(FILE_BUFFER, file))
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads and checks the file header (classic) or first Section Header Block (pcapng).
    ///
    /// `inner` should be buffered: the reader issues small reads for record headers.
    pub fn new(inner: R) -> Result<Self, CaptureError> {
        let mut reader = Self {
            src: Source { inner, offset: 0 },
            format: Format::Pcap(pcap::PcapState::placeholder()),
            interfaces: Vec::new(),
            buf: Vec::new(),
            next_index: 0,
            finished: false,
        };
        let mut magic = [0u8; 4];
        let got = reader.fill(0, &mut magic)?;
        if got < magic.len() {
            return Err(reader.truncated(0, "capture file header", 4, got));
        }
        if magic == pcapng::SHB_TYPE_BYTES {
            reader.format = Format::PcapNg(pcapng::NgState::placeholder());
            reader.read_block(0, magic)?;
        } else if let Some(state) = pcap::PcapState::from_magic(magic) {
            reader.read_pcap_header(state)?;
        } else {
            return Err(CaptureError::NotACapture {
                offset: 0,
                packet_index: 0,
                magic,
            });
        }
        Ok(reader)
    }

    /// The next packet, owning its bytes; `Ok(None)` at the end of the file.
    pub fn next_packet(&mut self) -> Result<Option<CapturedPacket>, CaptureError> {
        Ok(self.next_packet_ref()?.map(|p| p.to_owned_packet()))
    }

    /// The next packet, borrowing its bytes from the reader; `Ok(None)` at the end of the file.
    pub fn next_packet_ref(&mut self) -> Result<Option<PacketRef<'_>>, CaptureError> {
        if self.finished {
            return Ok(None);
        }
        let step = match self.format {
            Format::Pcap(state) => self.next_pcap(state),
            Format::PcapNg(_) => self.next_pcapng(),
        };
        match step {
            Ok(Some(meta)) => {
                let index = self.next_index;
                self.next_index += 1;
                Ok(Some(PacketRef {
                    index,
                    timestamp_ns: meta.timestamp_ns,
                    link_type: meta.link_type,
                    orig_len: meta.orig_len,
                    interface: meta.interface,
                    direction: meta.direction,
                    data: self.buf.get(meta.data).unwrap_or_default(),
                }))
            }
            Ok(None) => {
                self.finished = true;
                Ok(None)
            }
            Err(e) => {
                self.finished = true;
                Err(e)
            }
        }
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.src.inner
    }

    /// The container format.
    pub fn format(&self) -> CaptureFormat {
        match self.format {
            Format::Pcap(_) => CaptureFormat::Pcap,
            Format::PcapNg(_) => CaptureFormat::PcapNg,
        }
    }

    /// The interfaces of the current section read so far (the single one of a classic pcap
    /// file). A pcapng file's interfaces appear as their description blocks are read, so right
    /// after [`Self::new`] the list is usually empty.
    pub fn interfaces(&self) -> impl ExactSizeIterator<Item = InterfaceInfo> + '_ {
        self.interfaces.iter().map(|i| i.info)
    }

    /// Link type of interface 0 of the current section, once read: the link type of a classic
    /// pcap file. Packets carry their own link type, which is what decoding should use.
    pub fn link_type(&self) -> Option<LinkType> {
        self.interfaces.first().map(|i| i.info.link_type)
    }

    /// Number of packets returned so far.
    pub fn packets_read(&self) -> u64 {
        self.next_index
    }

    /// Bytes consumed from the input so far.
    pub fn offset(&self) -> u64 {
        self.src.offset
    }

    // ----- shared helpers for the format modules -----

    /// Fills `buf` from the input until full or end of file; returns the bytes read.
    fn fill(&mut self, record_offset: u64, buf: &mut [u8]) -> Result<usize, CaptureError> {
        self.src
            .fill(buf)
            .map_err(|source| self.io_error(record_offset, source))
    }

    /// Replaces the reused buffer's contents with the next `len` bytes of input (fewer at end of
    /// file); returns the bytes read.
    fn read_to_buf(&mut self, record_offset: u64, len: usize) -> Result<usize, CaptureError> {
        let mut buf = mem::take(&mut self.buf);
        let result = self.src.read_vec(&mut buf, len);
        self.buf = buf;
        result.map_err(|source| self.io_error(record_offset, source))
    }

    fn io_error(&self, offset: u64, source: io::Error) -> CaptureError {
        CaptureError::Io {
            offset,
            packet_index: self.next_index,
            source,
        }
    }

    fn truncated(&self, offset: u64, what: &'static str, needed: u64, got: usize) -> CaptureError {
        CaptureError::Truncated {
            offset,
            packet_index: self.next_index,
            what,
            needed,
            available: u64::try_from(got).unwrap_or(u64::MAX),
        }
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<CapturedPacket, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_packet().transpose()
    }
}

/// Format-specific reading state.
#[derive(Clone, Copy, Debug)]
enum Format {
    Pcap(pcap::PcapState),
    PcapNg(pcapng::NgState),
}

/// An interface and its precomputed timestamp conversion.
#[derive(Clone, Copy, Debug)]
struct Interface {
    info: InterfaceInfo,
    scale: TimestampScale,
}

impl Interface {
    fn new(info: InterfaceInfo) -> Self {
        Self {
            info,
            scale: TimestampScale::new(info.timestamp_resolution),
        }
    }

    /// Converts raw timestamp units to nanoseconds since the epoch, applying the offset.
    fn timestamp_ns(&self, units: u64) -> u64 {
        let ns = self.scale.to_ns(units);
        if self.info.timestamp_offset_s == 0 {
            return ns;
        }
        let total = i128::from(ns) + i128::from(self.info.timestamp_offset_s) * 1_000_000_000;
        u64::try_from(total.max(0)).unwrap_or(u64::MAX)
    }
}

/// Raw timestamp units → nanoseconds, chosen once per interface so the per-packet path is one
/// multiplication or division.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimestampScale {
    /// 2^-n second units.
    Binary(u8),
    /// Units finer than 1 ns: divide.
    Divide(u64),
    /// Units of 1 ns or coarser: multiply.
    Multiply(u64),
}

impl TimestampScale {
    fn new(resolution: TimestampResolution) -> Self {
        match resolution {
            TimestampResolution::Binary(n) => Self::Binary(n.min(63)),
            TimestampResolution::Decimal(n) if n <= 9 => {
                Self::Multiply(10u64.pow(9 - u32::from(n)))
            }
            TimestampResolution::Decimal(n) => Self::Divide(10u64.pow(u32::from(n.min(19)) - 9)),
        }
    }

    fn to_ns(self, units: u64) -> u64 {
        match self {
            Self::Multiply(factor) => units.saturating_mul(factor),
            Self::Divide(divisor) => units / divisor,
            Self::Binary(shift) => {
                let ns = (u128::from(units) * 1_000_000_000) >> shift;
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        }
    }
}

/// What a format module found for one packet; its bytes are `buf[data]`.
#[derive(Clone, Debug)]
struct PacketMeta {
    timestamp_ns: u64,
    link_type: LinkType,
    orig_len: u32,
    interface: u32,
    direction: Option<Direction>,
    data: Range<usize>,
}

/// The input plus the number of bytes consumed from it.
#[derive(Debug)]
struct Source<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Source<R> {
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while let Some(rest) = buf.get_mut(done..) {
            if rest.is_empty() {
                break;
            }
            match self.inner.read(rest) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.offset += u64::try_from(done).unwrap_or(u64::MAX);
        Ok(done)
    }

    fn read_vec(&mut self, buf: &mut Vec<u8>, len: usize) -> io::Result<usize> {
        if len <= EAGER_READ_LIMIT {
            buf.resize(len, 0);
            let got = self.fill(buf)?;
            buf.truncate(got);
            Ok(got)
        } else {
            buf.clear();
            let limit = u64::try_from(len).unwrap_or(u64::MAX);
            let got = (&mut self.inner).take(limit).read_to_end(buf)?;
            self.offset += u64::try_from(got).unwrap_or(u64::MAX);
            Ok(got)
        }
    }
}

#[cfg(test)]
mod tests;
