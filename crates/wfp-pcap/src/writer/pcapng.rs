//! pcapng writer (draft-ietf-opsawg-pcapng).
//!
//! One section, little-endian, version 1.0, section length "unspecified" (-1). Blocks written:
//!
//! ```text
//!  SHB   0A0D0D0A | len | 1A2B3C4D | 1 | 0 | -1 (u64) | [shb_userappl] [opt_endofopt] | len
//!  IDB   00000001 | len | link type (u16) | 0 (u16) | snaplen | if_tsresol = 9 | opt_endofopt | len
//!  EPB   00000006 | len | interface | ts high | ts low | caplen | origlen | data, padded to 4
//!                 | [epb_flags (inbound 01 / outbound 10 in bits 0-1) | opt_endofopt] | len
//! ```
//!
//! Interfaces are created on demand, one per link type, numbered from 0 in the order their first
//! packet arrives; each Interface Description Block is written just before the first packet that
//! uses it (the format requires only that it come before its packets). Timestamps are written in
//! nanoseconds (`if_tsresol = 9`), so a `u64` of nanoseconds since the epoch is stored exactly.
//!
//! Readers: Wireshark and this crate's reader read files with several link types; libpcap (and so
//! tcpdump) reads pcapng files only when every interface has the same link type.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::{WriteError, WRITER_SNAPLEN};
use crate::reader::pcapng::{
    BLOCK_EPB, BLOCK_IDB, BLOCK_SHB, EPB_FLAGS_INBOUND, EPB_FLAGS_OUTBOUND, OPT_ENDOFOPT,
    OPT_EPB_FLAGS, OPT_IF_TSRESOL,
};
use crate::{Direction, LinkType};

/// `shb_userappl`: the application that wrote the section (UTF-8).
const OPT_SHB_USERAPPL: u16 = 4;
/// `if_tsresol` value: 10^-9 s units.
const TSRESOL_NANOSECONDS: u8 = 9;
/// Longest `shb_userappl` written (an option value's length is 16 bits).
const MAX_APPLICATION_LEN: usize = 256;

/// pcapng writer: one Section Header Block, one Interface Description Block per link type, and an
/// Enhanced Packet Block per packet with its nanosecond timestamp, original length and (when
/// known) direction, all little-endian (block layouts in the module doc).
///
/// Call order: [`Self::create`] or [`Self::new`] (writes the Section Header Block), any number of
/// [`Self::write_packet`] (and optionally [`Self::interface`] to declare an interface before its
/// first packet), then [`Self::finish`].
#[derive(Debug)]
pub struct PcapNgWriter<W: Write> {
    out: W,
    /// Link type of each interface, indexed by interface id.
    interfaces: Vec<LinkType>,
    packets: u64,
    /// Reused block buffer.
    block: Vec<u8>,
}

impl PcapNgWriter<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes the Section Header Block.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, WriteError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| WriteError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        Self::new(BufWriter::new(file))
    }
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes a Section Header Block without options to `out`.
    pub fn new(out: W) -> Result<Self, WriteError> {
        Self::with_options(out, None)
    }

    /// Writes a Section Header Block naming the writing application (`shb_userappl`, at most 256
    /// bytes of it) to `out`.
    pub fn with_user_application(out: W, application: &str) -> Result<Self, WriteError> {
        Self::with_options(out, Some(application))
    }

    fn with_options(out: W, application: Option<&str>) -> Result<Self, WriteError> {
        let mut writer = Self {
            out,
            interfaces: Vec::new(),
            packets: 0,
            block: Vec::with_capacity(256),
        };
        let mut body = Vec::with_capacity(64);
        body.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes()); // byte-order magic
        body.extend_from_slice(&1u16.to_le_bytes()); // major version
        body.extend_from_slice(&0u16.to_le_bytes()); // minor version
        body.extend_from_slice(&u64::MAX.to_le_bytes()); // section length: not specified
        if let Some(app) = application {
            let app = truncate_utf8(app, MAX_APPLICATION_LEN);
            put_option(&mut body, OPT_SHB_USERAPPL, app.as_bytes());
            put_option(&mut body, OPT_ENDOFOPT, &[]);
        }
        writer.write_block(BLOCK_SHB, &body)?;
        Ok(writer)
    }

    /// The interface id for `link_type`, writing its Interface Description Block (snaplen
    /// [`WRITER_SNAPLEN`], `if_tsresol = 9`) the first time the link type is seen.
    pub fn interface(&mut self, link_type: LinkType) -> Result<u32, WriteError> {
        if let Some(id) = self.interfaces.iter().position(|l| *l == link_type) {
            return Ok(u32::try_from(id).unwrap_or(u32::MAX));
        }
        let link =
            u16::try_from(link_type.0).map_err(|_| WriteError::LinkTypeOutOfRange { link_type })?;
        let mut body = Vec::with_capacity(20);
        body.extend_from_slice(&link.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes()); // reserved
        body.extend_from_slice(&WRITER_SNAPLEN.to_le_bytes());
        put_option(&mut body, OPT_IF_TSRESOL, &[TSRESOL_NANOSECONDS]);
        put_option(&mut body, OPT_ENDOFOPT, &[]);
        self.write_block(BLOCK_IDB, &body)?;
        self.interfaces.push(link_type);
        Ok(u32::try_from(self.interfaces.len() - 1).unwrap_or(u32::MAX))
    }

    /// Appends one Enhanced Packet Block: `data` starts with a `link_type` header, `orig_len` is
    /// the length on the wire (at least `data.len()`), `timestamp_ns` nanoseconds since the epoch,
    /// `direction` goes into `epb_flags` when known.
    pub fn write_packet(
        &mut self,
        link_type: LinkType,
        timestamp_ns: u64,
        orig_len: u32,
        data: &[u8],
        direction: Option<Direction>,
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
        let interface = self.interface(link_type)?;
        let mut body = std::mem::take(&mut self.block);
        body.clear();
        body.extend_from_slice(&interface.to_le_bytes());
        // Both halves fit in 32 bits by construction.
        body.extend_from_slice(&((timestamp_ns >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(timestamp_ns as u32).to_le_bytes());
        body.extend_from_slice(&captured.to_le_bytes());
        body.extend_from_slice(&orig_len.to_le_bytes());
        body.extend_from_slice(data);
        pad(&mut body);
        let flags = match direction {
            Some(Direction::Inbound) => Some(EPB_FLAGS_INBOUND),
            Some(Direction::Outbound) => Some(EPB_FLAGS_OUTBOUND),
            None => None,
        };
        if let Some(flags) = flags {
            put_option(&mut body, OPT_EPB_FLAGS, &flags.to_le_bytes());
            put_option(&mut body, OPT_ENDOFOPT, &[]);
        }
        let result = self.write_block(BLOCK_EPB, &body);
        self.block = body;
        result?;
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

    /// The link types of the interfaces written so far; the index is the interface id.
    pub fn interfaces(&self) -> &[LinkType] {
        &self.interfaces
    }

    /// Packets written so far.
    pub fn packets_written(&self) -> u64 {
        self.packets
    }

    /// Writes `type | total length | body | total length`; `body` is already padded to 4 bytes.
    fn write_block(&mut self, block_type: u32, body: &[u8]) -> Result<(), WriteError> {
        let packets = self.packets;
        // Bodies are at most WRITER_SNAPLEN plus a few dozen bytes.
        let total = u32::try_from(body.len() + 12).unwrap_or(u32::MAX);
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&block_type.to_le_bytes());
        head[4..].copy_from_slice(&total.to_le_bytes());
        let io = |source| WriteError::Io { packets, source };
        self.out.write_all(&head).map_err(io)?;
        self.out.write_all(body).map_err(io)?;
        self.out.write_all(&total.to_le_bytes()).map_err(io)
    }
}

/// Appends option `code` with `value`, padded to 4 bytes.
fn put_option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    // Callers pass at most MAX_APPLICATION_LEN bytes.
    out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(value);
    pad(out);
}

/// Pads `out` with zeros to a multiple of 4 bytes.
fn pad(out: &mut Vec<u8>) {
    out.resize((out.len() + 3) & !3, 0);
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CaptureFormat, CaptureReader, CapturedPacket, TimestampResolution};

    /// Little-endian u16 / u32 at `at` (test data is written by this module, so present).
    fn le16(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }
    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// Splits a little-endian pcapng byte string into (type, whole block) and checks the framing
    /// rules of draft-ietf-opsawg-pcapng §3.1 on the way: total length a multiple of 4, at least
    /// 12, equal in header and trailer.
    fn blocks(mut b: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let len = le32(b, 4) as usize;
            assert!(len >= 12 && len % 4 == 0, "block length {len}");
            assert_eq!(le32(b, len - 4) as usize, len, "trailer repeats the length");
            out.push((le32(b, 0), b[..len].to_vec()));
            b = &b[len..];
        }
        out
    }

    fn packets() -> Vec<(CapturedPacket, Option<Direction>)> {
        let link = [LinkType::LINUX_SLL2, LinkType::ETHERNET, LinkType::RAW];
        let dirs = [
            Some(Direction::Outbound),
            Some(Direction::Inbound),
            None,
            Some(Direction::Inbound),
        ];
        (0u8..7)
            .map(|i| {
                let data: Vec<u8> = (0..usize::from(i) * 5 + 1).map(|n| n as u8 ^ i).collect();
                let direction = dirs[usize::from(i) % dirs.len()];
                let p = CapturedPacket {
                    index: u64::from(i),
                    // Sub-microsecond digits, and one timestamp past 2106 (u32 seconds overflow).
                    timestamp_ns: if i == 6 {
                        5_000_000_000_000_000_123
                    } else {
                        1_700_000_000_123_456_789 + u64::from(i) * 1_001
                    },
                    link_type: link[usize::from(i) % 3],
                    orig_len: u32::from(i) * 5 + 1 + u32::from(i % 2) * 100,
                    interface: u32::from(i % 3),
                    direction,
                    data,
                };
                (p, direction)
            })
            .collect()
    }

    fn write(packets: &[(CapturedPacket, Option<Direction>)]) -> Vec<u8> {
        let mut w = PcapNgWriter::with_user_application(Vec::new(), "wfp-pcap test")
            .unwrap_or_else(|e| panic!("{e}"));
        for (p, dir) in packets {
            w.write_packet(p.link_type, p.timestamp_ns, p.orig_len, &p.data, *dir)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(w.packets_written(), packets.len() as u64);
        assert_eq!(
            w.interfaces(),
            [LinkType::LINUX_SLL2, LinkType::ETHERNET, LinkType::RAW]
        );
        w.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn round_trip_through_the_reader() {
        let expected = packets();
        let bytes = write(&expected);
        let mut reader = CaptureReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reader.format(), CaptureFormat::PcapNg);
        let mut got = Vec::new();
        while let Some(p) = reader.next_packet().unwrap_or_else(|e| panic!("{e}")) {
            got.push(p);
        }
        let want: Vec<CapturedPacket> = expected.into_iter().map(|(p, _)| p).collect();
        assert_eq!(got, want);
        let infos: Vec<_> = reader.interfaces().collect();
        assert_eq!(infos.len(), 3);
        for i in infos {
            assert_eq!(i.timestamp_resolution, TimestampResolution::Decimal(9));
            assert_eq!(i.snaplen, WRITER_SNAPLEN);
            assert_eq!(i.timestamp_offset_s, 0);
        }
    }

    #[test]
    fn blocks_follow_the_spec_layouts() {
        let expected = packets();
        let bytes = write(&expected);
        let blocks = blocks(&bytes);
        let types: Vec<u32> = blocks.iter().map(|(t, _)| *t).collect();
        // SHB, then each IDB right before the first packet on its interface.
        assert_eq!(types, [0x0A0D_0D0A, 1, 6, 1, 6, 1, 6, 6, 6, 6, 6]);

        // Section Header Block (§4.1): magic, version 1.0, section length -1, shb_userappl.
        let shb = &blocks[0].1;
        assert_eq!(&shb[8..12], &[0x4D, 0x3C, 0x2B, 0x1A]);
        assert_eq!((le16(shb, 12), le16(shb, 14)), (1, 0));
        assert_eq!(&shb[16..24], &[0xFF; 8]);
        assert_eq!((le16(shb, 24), le16(shb, 26)), (4, 13)); // shb_userappl, 13 bytes
        assert_eq!(&shb[28..41], b"wfp-pcap test");
        assert_eq!(&shb[41..44], &[0, 0, 0]); // padding
        assert_eq!((le16(shb, 44), le16(shb, 46)), (0, 0)); // opt_endofopt
        assert_eq!(shb.len(), 52);

        // Interface Description Block (§4.2): link type, reserved, snaplen, if_tsresol = 9.
        let idb = &blocks[1].1;
        assert_eq!(
            idb,
            &[
                1, 0, 0, 0, 32, 0, 0, 0, // type, length
                0x14, 1, 0, 0, // LINKTYPE_LINUX_SLL2 (276), reserved
                0, 0, 4, 0, // snaplen 262144
                9, 0, 1, 0, 9, 0, 0, 0, // if_tsresol (9), length 1, value 9, padding
                0, 0, 0, 0, // opt_endofopt
                32, 0, 0, 0, // length
            ]
        );

        // Enhanced Packet Blocks (§4.3).
        let epbs: Vec<&Vec<u8>> = blocks
            .iter()
            .filter(|(t, _)| *t == 6)
            .map(|(_, b)| b)
            .collect();
        for ((p, dir), b) in expected.iter().zip(epbs) {
            assert_eq!(le32(b, 8), p.interface);
            let ts = (u64::from(le32(b, 12)) << 32) | u64::from(le32(b, 16));
            assert_eq!(ts, p.timestamp_ns, "nanosecond units");
            assert_eq!(le32(b, 20) as usize, p.data.len());
            assert_eq!(le32(b, 24), p.orig_len);
            assert_eq!(&b[28..28 + p.data.len()], &p.data[..]);
            let padded = (p.data.len() + 3) & !3;
            assert!(b[28 + p.data.len()..28 + padded].iter().all(|x| *x == 0));
            let options = &b[28 + padded..b.len() - 4];
            match dir {
                None => assert!(options.is_empty(), "no options without a direction"),
                Some(d) => {
                    let bits = if *d == Direction::Inbound { 1 } else { 2 };
                    assert_eq!(options, &[2, 0, 4, 0, bits, 0, 0, 0, 0, 0, 0, 0]);
                }
            }
        }
    }

    #[test]
    fn an_empty_writer_is_a_valid_section_and_interfaces_can_be_declared_first() {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.interface(LinkType::RAW).ok(), Some(0));
        assert_eq!(w.interface(LinkType::ETHERNET).ok(), Some(1));
        assert_eq!(w.interface(LinkType::RAW).ok(), Some(0), "declared once");
        let bytes = w.finish().unwrap_or_else(|e| panic!("{e}"));
        let blocks = blocks(&bytes);
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].1.len(), 28, "SHB without options");
        let mut reader = CaptureReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(reader.next_packet(), Ok(None)));
        assert_eq!(reader.interfaces().count(), 2);
    }

    #[test]
    fn refuses_what_it_cannot_write_faithfully() {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        let big = vec![0u8; WRITER_SNAPLEN as usize + 1];
        assert!(matches!(
            w.write_packet(LinkType::RAW, 0, u32::MAX, &big, None),
            Err(WriteError::PacketTooLarge { .. })
        ));
        assert!(matches!(
            w.write_packet(LinkType::RAW, 0, 2, b"abc", None),
            Err(WriteError::OrigLenTooSmall { .. })
        ));
        assert!(matches!(
            w.write_packet(LinkType(70_000), 0, 3, b"abc", None),
            Err(WriteError::LinkTypeOutOfRange { .. })
        ));
        assert_eq!(w.packets_written(), 0);
        assert!(w.interfaces().is_empty(), "no IDB for refused packets");
        let err = PcapNgWriter::create("/nonexistent/dir/out.pcapng").err();
        assert!(matches!(err, Some(WriteError::Create { .. })));
        assert_eq!(truncate_utf8("aé", 2), "a");
    }

    #[test]
    fn round_trip_through_a_file() {
        let path =
            std::env::temp_dir().join(format!("wfp-pcap-ng-writer-{}.pcapng", std::process::id()));
        let expected = packets();
        let mut w = PcapNgWriter::create(&path).unwrap_or_else(|e| panic!("{e}"));
        for (p, dir) in &expected {
            w.write_packet(p.link_type, p.timestamp_ns, p.orig_len, &p.data, *dir)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        w.finish().unwrap_or_else(|e| panic!("{e}"));
        let got: Result<Vec<_>, _> = CaptureReader::open(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .collect();
        let _ = std::fs::remove_file(&path);
        let want: Vec<CapturedPacket> = expected.into_iter().map(|(p, _)| p).collect();
        assert_eq!(got.ok(), Some(want));
    }
}
