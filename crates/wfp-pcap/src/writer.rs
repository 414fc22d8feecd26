//! Capture writers: classic pcap ([`CaptureWriter`]) and pcapng ([`PcapNgWriter`]).
//!
//! [`CaptureWriter`] writes version 2.4 files in the host-independent little-endian layout that
//! libpcap writes on x86, with the microsecond magic by default (every tool reads it) or the
//! nanosecond magic on request. One link type per file: give it the link type of the frames you
//! copy, so Wireshark and tcpdump decode them.
//!
//! [`PcapNgWriter`] writes one pcapng section: an Interface Description Block per link type (so
//! frames of several link types are copied unchanged), nanosecond timestamps with no 2106 limit,
//! and each packet's direction in `epb_flags` when known. Its module doc shows the block layouts.
//!
//! Both refuse, with a [`WriteError`] and without writing anything, what they cannot write
//! faithfully: packets over [`WRITER_SNAPLEN`], captured bytes longer than the original length.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::reader::MAX_CAPTURED_LEN;
use crate::LinkType;

mod pcapng;

pub use pcapng::PcapNgWriter;

/// Snapshot length written in the file header: libpcap's maximum (256 KiB); larger packets are
/// refused because libpcap refuses to read them.
pub const WRITER_SNAPLEN: u32 = 262_144;

const _: () = assert!(WRITER_SNAPLEN <= MAX_CAPTURED_LEN);

/// Timestamp precision of a written file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TimestampPrecision {
    /// Microseconds (magic `0xA1B2C3D4`); nanoseconds are truncated.
    #[default]
    Micro,
    /// Nanoseconds (magic `0xA1B23C4D`).
    Nano,
}

/// Why a packet or file header could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The file could not be created.
    #[error("cannot create capture {}: {source}", path.display())]
    Create {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Writing to the underlying writer failed.
    #[error("write error after {packets} packets: {source}")]
    Io {
        /// Packets completely handed to the writer before the failure.
        packets: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The captured bytes are longer than the original length claims.
    #[error("captured length {captured} exceeds original length {original}")]
    OrigLenTooSmall {
        /// Bytes given.
        captured: usize,
        /// Original length given.
        original: u32,
    },
    /// The packet is longer than [`WRITER_SNAPLEN`].
    #[error("packet of {captured} bytes exceeds the snapshot length {WRITER_SNAPLEN}")]
    PacketTooLarge {
        /// Bytes given.
        captured: usize,
    },
    /// The link type does not fit pcapng's 16-bit link type field.
    #[error("link type {link_type} does not fit pcapng's 16-bit link type field")]
    LinkTypeOutOfRange {
        /// The link type given.
        link_type: LinkType,
    },
    /// The timestamp does not fit the format's 32-bit seconds field (after 2106-02-07).
    #[error("timestamp {timestamp_ns} ns is past the 32-bit seconds limit of classic pcap")]
    TimestampOutOfRange {
        /// The timestamp given.
        timestamp_ns: u64,
    },
}

/// Classic pcap writer.
///
/// Call order: [`Self::create`] or [`Self::new`] (writes the file header), any number of
/// [`Self::write_packet`], then [`Self::finish`] (flushes and returns the inner writer). Dropping
/// a `BufWriter`-backed writer without `finish` still flushes, but loses the error.
#[derive(Debug)]
pub struct CaptureWriter<W: Write> {
    out: W,
    link_type: LinkType,
    precision: TimestampPrecision,
    packets: u64,
}

impl CaptureWriter<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes a microsecond file header for `link_type`.
    pub fn create(path: impl AsRef<Path>, link_type: LinkType) -> Result<Self, WriteError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| WriteError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        Self::new(BufWriter::new(file), link_type)
    }
}

impl<W: Write> CaptureWriter<W> {
    /// Writes a microsecond file header for `link_type` to `out`.
    pub fn new(out: W, link_type: LinkType) -> Result<Self, WriteError> {
        Self::with_precision(out, link_type, TimestampPrecision::Micro)
    }

    /// Writes a file header for `link_type` with the given timestamp precision to `out`.
    pub fn with_precision(
        out: W,
        link_type: LinkType,
        precision: TimestampPrecision,
    ) -> Result<Self, WriteError> {
        let mut writer = Self {
            out,
            link_type,
            precision,
            packets: 0,
        };
        let magic: u32 = match precision {
            TimestampPrecision::Micro => 0xA1B2_C3D4,
            TimestampPrecision::Nano => 0xA1B2_3C4D,
        };
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&magic.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes()); // version major
        header.extend_from_slice(&4u16.to_le_bytes()); // version minor
        header.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        header.extend_from_slice(&WRITER_SNAPLEN.to_le_bytes());
        header.extend_from_slice(&link_type.0.to_le_bytes());
        writer.write_all(&header)?;
        Ok(writer)
    }

    /// Appends one record: `data` starts with the link-layer header, `orig_len` is the length on
    /// the wire (at least `data.len()`).
    pub fn write_packet(
        &mut self,
        timestamp_ns: u64,
        orig_len: u32,
        data: &[u8],
    ) -> Result<(), WriteError> {
        let captured = u32::try_from(data.len())
            .ok()
            .filter(|&len| len <= WRITER_SNAPLEN)
            .ok_or(WriteError::PacketTooLarge {
                captured: data.len(),
            })?;
        if captured > orig_len {
            return Err(WriteError::OrigLenTooSmall {
                captured: data.len(),
                original: orig_len,
            });
        }
        let seconds = u32::try_from(timestamp_ns / 1_000_000_000)
            .map_err(|_| WriteError::TimestampOutOfRange { timestamp_ns })?;
        let nanos = timestamp_ns % 1_000_000_000;
        let fraction = match self.precision {
            TimestampPrecision::Micro => nanos / 1_000,
            TimestampPrecision::Nano => nanos,
        };
        // Below 10^9, so it fits.
        let fraction = u32::try_from(fraction).unwrap_or(u32::MAX);
        let mut header = [0u8; 16];
        for (slot, value) in header
            .chunks_exact_mut(4)
            .zip([seconds, fraction, captured, orig_len])
        {
            slot.copy_from_slice(&value.to_le_bytes());
        }
        self.write_all(&header)?;
        self.write_all(data)?;
        self.packets += 1;
        Ok(())
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        let packets = self.packets;
        self.out
            .flush()
            .map_err(|source| WriteError::Io { packets, source })
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> Result<W, WriteError> {
        self.flush()?;
        Ok(self.out)
    }

    /// The file's link type.
    pub fn link_type(&self) -> LinkType {
        self.link_type
    }

    /// Packets written so far.
    pub fn packets_written(&self) -> u64 {
        self.packets
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        let packets = self.packets;
        self.out
            .write_all(bytes)
            .map_err(|source| WriteError::Io { packets, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CaptureReader, CapturedPacket};

    fn packets() -> Vec<CapturedPacket> {
        (0u8..5)
            .map(|i| CapturedPacket {
                index: u64::from(i),
                timestamp_ns: 1_700_000_000_000_000_000 + u64::from(i) * 1_234_000,
                link_type: LinkType::LINUX_SLL,
                orig_len: 100 + u32::from(i),
                interface: 0,
                direction: None,
                data: vec![i; usize::from(i) * 7],
            })
            .collect()
    }

    fn write(precision: TimestampPrecision, packets: &[CapturedPacket]) -> Vec<u8> {
        let mut writer = CaptureWriter::with_precision(Vec::new(), LinkType::LINUX_SLL, precision)
            .unwrap_or_else(|e| panic!("{e}"));
        for p in packets {
            writer
                .write_packet(p.timestamp_ns, p.orig_len, &p.data)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(writer.packets_written(), packets.len() as u64);
        assert_eq!(writer.link_type(), LinkType::LINUX_SLL);
        writer.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    fn read(bytes: &[u8]) -> Vec<CapturedPacket> {
        CaptureReader::new(bytes)
            .into_iter()
            .flatten()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn round_trip_microseconds() {
        let expected = packets();
        let bytes = write(TimestampPrecision::Micro, &expected);
        assert_eq!(
            bytes.get(..24),
            Some(
                &[
                    0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 113, 0,
                    0, 0
                ][..]
            )
        );
        assert_eq!(read(&bytes), expected);
    }

    #[test]
    fn round_trip_nanoseconds_keeps_sub_microsecond_digits() {
        let mut expected = packets();
        for p in &mut expected {
            p.timestamp_ns += 789;
        }
        assert_eq!(read(&write(TimestampPrecision::Nano, &expected)), expected);
        // Microsecond files truncate them.
        let micro = read(&write(TimestampPrecision::Micro, &expected));
        let ts: Vec<_> = micro.iter().map(|p| p.timestamp_ns % 1_000).collect();
        assert_eq!(ts, [0; 5]);
    }

    #[test]
    fn round_trip_through_a_file() {
        let path =
            std::env::temp_dir().join(format!("wfp-pcap-writer-{}.pcap", std::process::id()));
        let expected = packets();
        let mut writer =
            CaptureWriter::create(&path, LinkType::LINUX_SLL).unwrap_or_else(|e| panic!("{e}"));
        for p in &expected {
            writer
                .write_packet(p.timestamp_ns, p.orig_len, &p.data)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        writer.finish().unwrap_or_else(|e| panic!("{e}"));
        let got: Result<Vec<_>, _> = CaptureReader::open(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .collect();
        let _ = std::fs::remove_file(&path);
        assert_eq!(got.ok(), Some(expected));
    }

    #[test]
    fn refuses_what_it_cannot_write_faithfully() {
        let mut writer =
            CaptureWriter::new(Vec::new(), LinkType::ETHERNET).unwrap_or_else(|e| panic!("{e}"));
        let big = vec![0u8; WRITER_SNAPLEN as usize + 1];
        assert!(matches!(
            writer.write_packet(0, u32::MAX, &big),
            Err(WriteError::PacketTooLarge { .. })
        ));
        assert!(matches!(
            writer.write_packet(0, 2, b"abc"),
            Err(WriteError::OrigLenTooSmall {
                captured: 3,
                original: 2
            })
        ));
        assert!(matches!(
            writer.write_packet(1 << 33 << 30, 3, b"abc"),
            Err(WriteError::TimestampOutOfRange { .. })
        ));
        assert_eq!(writer.packets_written(), 0);
        let bytes = writer.finish().unwrap_or_default();
        assert_eq!(bytes.len(), 24, "nothing written for refused packets");
        let err = CaptureWriter::create("/nonexistent/dir/out.pcap", LinkType::ETHERNET).err();
        assert!(matches!(err, Some(WriteError::Create { .. })));
    }

    #[test]
    fn io_errors_are_reported_with_the_packet_count() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "full"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(matches!(
            CaptureWriter::new(Full(10), LinkType::ETHERNET),
            Err(WriteError::Io { packets: 0, .. })
        ));
        let mut writer = CaptureWriter::new(Full(24 + 16 + 3), LinkType::ETHERNET)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(writer.write_packet(0, 3, b"abc").is_ok());
        assert!(matches!(
            writer.write_packet(0, 3, b"abc"),
            Err(WriteError::Io { packets: 1, .. })
        ));
    }
}
