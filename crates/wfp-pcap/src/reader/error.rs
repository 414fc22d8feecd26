//! The reader's error boundary.

use std::io;
use std::path::PathBuf;

use super::CaptureFormat;

/// Why a capture file could not be opened or read further.
///
/// Every variant except [`CaptureError::Open`] names `offset`, the byte offset in the file of the
/// record or block where reading stopped, and `packet_index`, the index the next packet would have
/// had (so also the number of good packets returned before the error). After an error the reader
/// is finished: further calls return `Ok(None)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// A pcapng Section Header Block whose byte-order magic is neither `0x1A2B3C4D` nor its swap.
    #[error(
        "pcapng section header at byte {offset} (packet {packet_index}): bad byte-order magic \
         {found:#010x}"
    )]
    BadByteOrderMagic {
        /// Offset of the block.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// The value found, read as little-endian.
        found: u32,
    },

    /// A pcapng option that is cut short or has an invalid value (e.g. `if_tsresol` of 10^-20).
    #[error(
        "pcapng block {block_type:#010x} at byte {offset} (packet {packet_index}): option \
         {code}: {reason}"
    )]
    BadOption {
        /// Offset of the block.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// Block type.
        block_type: u32,
        /// Option code.
        code: u16,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A pcapng block whose trailing length differs from its leading length.
    #[error(
        "pcapng block {block_type:#010x} at byte {offset} (packet {packet_index}): length \
         {header} in header but {trailer} in trailer"
    )]
    BlockLengthMismatch {
        /// Offset of the block.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// Block type.
        block_type: u32,
        /// Length in the block header.
        header: u32,
        /// Length in the block trailer.
        trailer: u32,
    },

    /// A pcapng block longer than [`super::MAX_BLOCK_LEN`]; rejected before allocating it.
    #[error(
        "pcapng block {block_type:#010x} at byte {offset} (packet {packet_index}): length \
         {length} exceeds the limit of {limit}"
    )]
    BlockTooLarge {
        /// Offset of the block.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// Block type.
        block_type: u32,
        /// Declared block length.
        length: u32,
        /// The limit.
        limit: u32,
    },

    /// A pcapng block too short for its header, trailer and fixed fields.
    #[error(
        "pcapng block {block_type:#010x} at byte {offset} (packet {packet_index}): length \
         {length} is below the minimum of {minimum}"
    )]
    BlockTooShort {
        /// Offset of the block.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// Block type.
        block_type: u32,
        /// Declared block length.
        length: u32,
        /// Minimum length for this block type.
        minimum: u32,
    },

    /// A pcapng packet block whose captured length does not fit in the block.
    #[error(
        "pcapng block {block_type:#010x} at byte {offset} (packet {packet_index}): captured \
         length {captured} exceeds the {room} bytes left in the block"
    )]
    CapturedLengthOverflow {
        /// Offset of the block.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// Block type.
        block_type: u32,
        /// Declared captured length.
        captured: u32,
        /// Bytes available for packet data in the block body.
        room: usize,
    },

    /// An I/O error from the underlying reader (not end of file, which is [`Self::Truncated`]).
    #[error("read error at byte {offset} (packet {packet_index}): {source}")]
    Io {
        /// Offset of the record or block being read.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A pcapng packet block naming an interface with no Interface Description Block in its
    /// section.
    #[error(
        "pcapng packet block at byte {offset} (packet {packet_index}): interface {interface} has \
         no interface description block in this section"
    )]
    NoInterface {
        /// Offset of the block.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// The interface id named by the block.
        interface: u32,
    },

    /// The file starts with neither a pcap magic number nor a pcapng Section Header Block.
    #[error("not a pcap or pcapng file: magic {magic:02x?} at byte {offset}")]
    NotACapture {
        /// Always 0.
        offset: u64,
        /// Always 0.
        packet_index: u64,
        /// The first four bytes of the file.
        magic: [u8; 4],
    },

    /// The file could not be opened.
    #[error("cannot open capture {}: {source}", path.display())]
    Open {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A packet whose captured length exceeds [`super::MAX_CAPTURED_LEN`]; rejected before
    /// allocating it.
    #[error(
        "record at byte {offset} (packet {packet_index}): captured length {captured} exceeds the \
         limit of {limit}"
    )]
    PacketTooLarge {
        /// Offset of the record or block.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// Declared captured length.
        captured: u32,
        /// The limit.
        limit: u32,
    },

    /// The file ends inside a header, record or block.
    #[error(
        "truncated capture at byte {offset} (packet {packet_index}): {what} needs {needed} \
         bytes, only {available} present"
    )]
    Truncated {
        /// Offset of the header, record or block that is cut short.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// What was being read.
        what: &'static str,
        /// Bytes the item needs, counted from `offset`.
        needed: u64,
        /// Bytes present from `offset` to the end of the input.
        available: u64,
    },

    /// A pcapng block length that is not a multiple of 4.
    #[error(
        "pcapng block {block_type:#010x} at byte {offset} (packet {packet_index}): length \
         {length} is not a multiple of 4"
    )]
    UnalignedBlockLength {
        /// Offset of the block.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// Block type.
        block_type: u32,
        /// Declared block length.
        length: u32,
    },

    /// A file or section format version this reader does not understand.
    #[error(
        "unsupported {format} version {major}.{minor} at byte {offset} (packet {packet_index})"
    )]
    UnsupportedVersion {
        /// Offset of the file header or section header.
        offset: u64,
        /// Index the next packet would have had.
        packet_index: u64,
        /// Which format.
        format: CaptureFormat,
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
}

impl CaptureError {
    /// Byte offset of the record or block where reading stopped (0 for [`Self::Open`]).
    pub fn offset(&self) -> u64 {
        match self {
            Self::BadByteOrderMagic { offset, .. }
            | Self::BadOption { offset, .. }
            | Self::BlockLengthMismatch { offset, .. }
            | Self::BlockTooLarge { offset, .. }
            | Self::BlockTooShort { offset, .. }
            | Self::CapturedLengthOverflow { offset, .. }
            | Self::Io { offset, .. }
            | Self::NoInterface { offset, .. }
            | Self::NotACapture { offset, .. }
            | Self::PacketTooLarge { offset, .. }
            | Self::Truncated { offset, .. }
            | Self::UnalignedBlockLength { offset, .. }
            | Self::UnsupportedVersion { offset, .. } => *offset,
            Self::Open { .. } => 0,
        }
    }

    /// Index the next packet would have had, i.e. the number of good packets returned before the
    /// error (0 for [`Self::Open`]).
    pub fn packet_index(&self) -> u64 {
        match self {
            Self::BadByteOrderMagic { packet_index, .. }
            | Self::BadOption { packet_index, .. }
            | Self::BlockLengthMismatch { packet_index, .. }
            | Self::BlockTooLarge { packet_index, .. }
            | Self::BlockTooShort { packet_index, .. }
            | Self::CapturedLengthOverflow { packet_index, .. }
            | Self::Io { packet_index, .. }
            | Self::NoInterface { packet_index, .. }
            | Self::NotACapture { packet_index, .. }
            | Self::PacketTooLarge { packet_index, .. }
            | Self::Truncated { packet_index, .. }
            | Self::UnalignedBlockLength { packet_index, .. }
            | Self::UnsupportedVersion { packet_index, .. } => *packet_index,
            Self::Open { .. } => 0,
        }
    }
}
