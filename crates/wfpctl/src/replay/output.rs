//! Replay outputs besides the summary: the permitted / blocked captures.
//!
//! A [`PcapSink`] writes one of two formats, chosen when it is created ([`format_for_path`]: a name
//! ending in `.pcapng` gives pcapng, anything else classic pcap; `--output-format` overrides):
//!
//! - **pcap**: every tool opens it. The file's link type is that of the first packet it receives,
//!   and frames are copied byte for byte. A pcapng capture can mix link types across its
//!   interfaces; a classic file cannot, so a later IP packet of another link type is
//!   re-encapsulated into the file's link type (a synthetic header with zero addresses, the right
//!   ethertype or address family, and the packet's direction where the header has a field for it).
//! - **pcapng**: one Interface Description Block per link type seen, so every frame is copied
//!   unchanged; nanosecond timestamps; each packet's direction (as the replay decided it) in
//!   `epb_flags`. Wireshark reads mixed link types; libpcap/tcpdump only single-link-type files.
//!
//! Packets that cannot be re-encapsulated, or that the format cannot hold (over 256 KiB; in pcap,
//! timestamps after 2106), are counted in [`PcapSink::unwritable`] and reported, never silently
//! lost. The output can be any writer ([`PcapSink::from_writer`]), e.g. standard output for `-`.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use wfp_pcap::{
    CaptureFormat, CaptureWriter, Direction, L3Packet, LinkType, NetworkProtocol, PacketRef,
    PcapNgWriter, WriteError,
};
use wfp_shim::PacketDirection;

use super::ReplayError;

/// Name of the writing application in pcapng section headers.
const USER_APPLICATION: &str =
    concat!("wfpctl ", env!("CARGO_PKG_VERSION"), " (wfp-engine replay)");

/// The format a capture output named `path` gets by default: pcapng when the file name ends in
/// `.pcapng` (any case), classic pcap otherwise.
pub fn format_for_path(path: &Path) -> CaptureFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("pcapng") => CaptureFormat::PcapNg,
        _ => CaptureFormat::Pcap,
    }
}

type Out = BufWriter<Box<dyn Write>>;

/// The format writer, created at the first packet (classic pcap needs its link type).
enum Writer {
    Pcap(CaptureWriter<Out>),
    PcapNg(PcapNgWriter<Out>),
}

/// A capture being written: one of `--permitted` / `--blocked`.
pub struct PcapSink {
    path: PathBuf,
    format: CaptureFormat,
    /// The output until the writer is created.
    out: Option<Box<dyn Write>>,
    writer: Option<Writer>,
    /// pcap: the file's link type; pcapng: the first interface's.
    link_type: Option<LinkType>,
    written: u64,
    reencapsulated: u64,
    unwritable: u64,
}

impl fmt::Debug for PcapSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapSink")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("link_type", &self.link_type)
            .field("written", &self.written)
            .field("reencapsulated", &self.reencapsulated)
            .field("unwritable", &self.unwritable)
            .finish_non_exhaustive()
    }
}

impl PcapSink {
    /// Creates (or truncates) `path` now, so an unwritable path fails before the replay starts;
    /// the format follows the name ([`format_for_path`]).
    pub fn create(path: &Path) -> Result<Self, ReplayError> {
        Self::create_as(path, format_for_path(path))
    }

    /// Creates (or truncates) `path` now, to be written in `format` whatever its name.
    pub fn create_as(path: &Path, format: CaptureFormat) -> Result<Self, ReplayError> {
        let file = File::create(path).map_err(|source| ReplayError::Output {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::from_writer(
            path.to_path_buf(),
            Box::new(file),
            format,
        ))
    }

    /// A sink writing `format` to `out` (buffered here); `name` names it in errors and reports.
    pub fn from_writer(name: PathBuf, out: Box<dyn Write>, format: CaptureFormat) -> Self {
        Self {
            path: name,
            format,
            out: Some(out),
            writer: None,
            link_type: None,
            written: 0,
            reencapsulated: 0,
            unwritable: 0,
        }
    }

    /// Appends one packet; `l3` is its decoded network layer (used when the packet's link type
    /// differs from a classic file's), `direction` what the replay decided.
    pub(crate) fn write(
        &mut self,
        p: &PacketRef<'_>,
        l3: &L3Packet<'_>,
        direction: PacketDirection,
    ) -> Result<(), ReplayError> {
        let file_type = *self.link_type.get_or_insert(p.link_type);
        let result = match self.format {
            CaptureFormat::PcapNg => {
                let direction = match direction {
                    PacketDirection::Inbound => Some(Direction::Inbound),
                    PacketDirection::Outbound => Some(Direction::Outbound),
                    PacketDirection::Forward
                    | PacketDirection::Infer
                    | PacketDirection::Loopback => None,
                };
                let orig_len = p
                    .orig_len
                    .max(u32::try_from(p.data.len()).unwrap_or(u32::MAX));
                match self.writer(file_type)? {
                    Writer::PcapNg(w) => {
                        w.write_packet(p.link_type, p.timestamp_ns, orig_len, p.data, direction)
                    }
                    Writer::Pcap(_) => return Err(internal(&self.path, "format mismatch")),
                }
            }
            CaptureFormat::Pcap => {
                let owned;
                let (data, orig_len) = if p.link_type == file_type {
                    (p.data, p.orig_len)
                } else {
                    match encapsulate(file_type, l3, direction) {
                        Some(frame) => {
                            // Wire length: the original's minus its link header plus the new one.
                            let header = frame.len() - l3.network.len();
                            let wire = u64::from(p.orig_len)
                                .saturating_sub(l3.link_header_len as u64)
                                + header as u64;
                            let orig = u32::try_from(wire)
                                .unwrap_or(u32::MAX)
                                .max(u32::try_from(frame.len()).unwrap_or(u32::MAX));
                            owned = frame;
                            self.reencapsulated += 1;
                            (&owned[..], orig)
                        }
                        None => {
                            self.unwritable += 1;
                            return Ok(());
                        }
                    }
                };
                let orig_len = orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
                match self.writer(file_type)? {
                    Writer::Pcap(w) => w.write_packet(p.timestamp_ns, orig_len, data),
                    Writer::PcapNg(_) => return Err(internal(&self.path, "format mismatch")),
                }
            }
        };
        match result {
            Ok(()) => {
                self.written += 1;
                Ok(())
            }
            Err(WriteError::Io { source, .. }) => Err(ReplayError::Output {
                path: self.path.clone(),
                source,
            }),
            Err(_) => {
                self.unwritable += 1;
                Ok(())
            }
        }
    }

    /// Flushes the output; a sink that received no packet still gets a valid (empty) capture with
    /// `fallback` as its (pcapng: only interface's) link type.
    pub(crate) fn finish(mut self, fallback: LinkType) -> Result<SinkReport, ReplayError> {
        let link_type = self.link_type.unwrap_or(fallback);
        self.writer(link_type)?;
        let link_types = match self.writer.as_mut() {
            Some(Writer::PcapNg(w)) => {
                if w.interfaces().is_empty() {
                    // libpcap refuses a pcapng file without an interface.
                    let _id = w
                        .interface(link_type)
                        .map_err(|e| write_error(&self.path, e))?;
                }
                w.interfaces().to_vec()
            }
            Some(Writer::Pcap(_)) | None => vec![link_type],
        };
        let report = SinkReport {
            path: self.path.clone(),
            format: self.format,
            link_type,
            link_types,
            written: self.written,
            reencapsulated: self.reencapsulated,
            unwritable: self.unwritable,
        };
        let flushed = match self.writer.take() {
            Some(Writer::Pcap(w)) => w.finish().map(drop),
            Some(Writer::PcapNg(w)) => w.finish().map(drop),
            None => Ok(()),
        };
        flushed.map_err(|e| write_error(&self.path, e))?;
        Ok(report)
    }

    /// The output format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Packets written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Packets that could not be written (see the module doc).
    pub fn unwritable(&self) -> u64 {
        self.unwritable
    }

    fn writer(&mut self, link_type: LinkType) -> Result<&mut Writer, ReplayError> {
        if self.writer.is_none() {
            let Some(out) = self.out.take() else {
                return Err(internal(&self.path, "capture output already closed"));
            };
            let out = BufWriter::with_capacity(64 * 1024, out);
            let w = match self.format {
                CaptureFormat::Pcap => CaptureWriter::new(out, link_type).map(Writer::Pcap),
                CaptureFormat::PcapNg => {
                    PcapNgWriter::with_user_application(out, USER_APPLICATION).map(Writer::PcapNg)
                }
            }
            .map_err(|e| write_error(&self.path, e))?;
            self.writer = Some(w);
        }
        match &mut self.writer {
            Some(w) => Ok(w),
            None => Err(internal(&self.path, "capture writer not created")),
        }
    }
}

fn write_error(path: &Path, e: WriteError) -> ReplayError {
    ReplayError::CaptureOutput {
        path: path.to_path_buf(),
        source: e,
    }
}

fn internal(path: &Path, what: &'static str) -> ReplayError {
    ReplayError::Output {
        path: path.to_path_buf(),
        source: std::io::Error::other(what),
    }
}

/// What a [`PcapSink`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkReport {
    /// The file (`<stdout>` for standard output).
    pub path: PathBuf,
    /// Its format.
    pub format: CaptureFormat,
    /// Its link type (pcapng: the first interface's).
    pub link_type: LinkType,
    /// Every link type in the file: the one of a pcap file, a pcapng file's interfaces in order.
    pub link_types: Vec<LinkType>,
    /// Packets written.
    pub written: u64,
    /// Of those, packets re-encapsulated from another link type (pcap only).
    pub reencapsulated: u64,
    /// Packets that could not be written.
    pub unwritable: u64,
}

/// A frame of link type `target` carrying `l3`'s IP packet, or `None` when `target` cannot carry
/// it (an unknown link type, an IPv4-only type for IPv6, a non-IP packet).
pub(crate) fn encapsulate(
    target: LinkType,
    l3: &L3Packet<'_>,
    direction: PacketDirection,
) -> Option<Vec<u8>> {
    let v6 = match l3.protocol {
        NetworkProtocol::Ipv4 => false,
        NetworkProtocol::Ipv6 => true,
        _ => return None,
    };
    let ethertype: u16 = if v6 { 0x86DD } else { 0x0800 };
    // Linux PACKET_OUTGOING (4) / PACKET_HOST (0).
    let packet_type: u8 = if direction == PacketDirection::Outbound {
        4
    } else {
        0
    };
    let mut frame = Vec::with_capacity(l3.network.len() + 20);
    match target {
        LinkType::ETHERNET => {
            frame.extend_from_slice(&[0; 12]);
            frame.extend_from_slice(&ethertype.to_be_bytes());
        }
        LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 => {}
        LinkType::IPV4 if !v6 => {}
        LinkType::IPV6 if v6 => {}
        // NULL: host byte order (the writer writes little-endian files); LOOP: network order.
        LinkType::NULL => frame.extend_from_slice(&(if v6 { 24u32 } else { 2 }).to_le_bytes()),
        LinkType::LOOP => frame.extend_from_slice(&(if v6 { 24u32 } else { 2 }).to_be_bytes()),
        LinkType::LINUX_SLL => {
            frame.extend_from_slice(&u16::from(packet_type).to_be_bytes());
            frame.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
            frame.extend_from_slice(&0u16.to_be_bytes()); // address length
            frame.extend_from_slice(&[0; 8]);
            frame.extend_from_slice(&ethertype.to_be_bytes());
        }
        LinkType::LINUX_SLL2 => {
            frame.extend_from_slice(&ethertype.to_be_bytes());
            frame.extend_from_slice(&[0; 2]); // reserved
            frame.extend_from_slice(&0u32.to_be_bytes()); // interface index
            frame.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
            frame.push(packet_type);
            frame.push(0); // address length
            frame.extend_from_slice(&[0; 8]);
        }
        _ => return None,
    }
    frame.extend_from_slice(l3.network);
    Some(frame)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use wfp_pcap::{decode_link, CaptureReader, LinuxPacketType};

    /// A writer whose bytes stay readable after the sink is done with it.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_format_follows_the_name() {
        for (name, format) in [
            ("out.pcapng", CaptureFormat::PcapNg),
            ("OUT.PCAPNG", CaptureFormat::PcapNg),
            ("out.pcap", CaptureFormat::Pcap),
            ("out", CaptureFormat::Pcap),
            ("-", CaptureFormat::Pcap),
            ("pcapng", CaptureFormat::Pcap),
        ] {
            assert_eq!(format_for_path(Path::new(name)), format, "{name}");
        }
    }

    #[test]
    fn empty_sinks_are_valid_captures_of_the_fallback_link_type() {
        for format in [CaptureFormat::Pcap, CaptureFormat::PcapNg] {
            let out = Shared::default();
            let sink = PcapSink::from_writer("mem".into(), Box::new(out.clone()), format);
            assert_eq!(sink.format(), format);
            let report = sink.finish(LinkType::ETHERNET).expect("finish");
            assert_eq!(report.format, format);
            assert_eq!(report.link_types, [LinkType::ETHERNET]);
            assert_eq!(report.written, 0);
            let bytes = out.0.borrow().clone();
            let mut r = CaptureReader::new(&bytes[..]).expect("a capture");
            assert_eq!(r.format(), format);
            assert!(matches!(r.next_packet(), Ok(None)));
            assert_eq!(r.link_type(), Some(LinkType::ETHERNET), "{format}");
        }
    }

    #[test]
    fn pcapng_sinks_copy_frames_and_record_directions() {
        let ip4 = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let out = Shared::default();
        let mut sink =
            PcapSink::from_writer("mem".into(), Box::new(out.clone()), CaptureFormat::PcapNg);
        let dirs = [
            PacketDirection::Outbound,
            PacketDirection::Inbound,
            PacketDirection::Forward,
        ];
        for (i, dir) in dirs.into_iter().enumerate() {
            let p = PacketRef {
                index: i as u64,
                timestamp_ns: 1_700_000_000_000_000_001 + i as u64,
                link_type: LinkType::RAW,
                orig_len: 60,
                interface: 0,
                direction: None,
                data: &ip4,
            };
            let l3 = p.decode_link().expect("raw IP");
            sink.write(&p, &l3, dir).expect("write");
        }
        let report = sink.finish(LinkType::ETHERNET).expect("finish");
        assert_eq!((report.written, report.reencapsulated), (3, 0));
        assert_eq!(report.link_types, [LinkType::RAW]);
        let bytes = out.0.borrow().clone();
        let got: Vec<_> = CaptureReader::new(&bytes[..])
            .expect("pcapng")
            .collect::<Result<_, _>>()
            .expect("reads");
        let seen: Vec<_> = got.iter().map(|p| p.direction).collect();
        assert_eq!(
            seen,
            [Some(Direction::Outbound), Some(Direction::Inbound), None]
        );
        assert!(got.iter().all(|p| p.data == ip4 && p.orig_len == 60));
        assert_eq!(got[2].timestamp_ns, 1_700_000_000_000_000_003);
    }

    #[test]
    fn reencapsulated_frames_decode_to_the_same_ip_packet() {
        let ip4 = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let mut ip6 = vec![0x60u8, 0, 0, 0, 0, 0, 59, 64];
        ip6.extend_from_slice(&[0; 32]);
        for (bytes, v6) in [(&ip4[..], false), (&ip6[..], true)] {
            let src = decode_link(LinkType::RAW, bytes).expect("raw");
            for target in [
                LinkType::ETHERNET,
                LinkType::RAW,
                LinkType::NULL,
                LinkType::LOOP,
                LinkType::LINUX_SLL,
                LinkType::LINUX_SLL2,
                if v6 { LinkType::IPV6 } else { LinkType::IPV4 },
            ] {
                let frame = encapsulate(target, &src, PacketDirection::Outbound)
                    .unwrap_or_else(|| panic!("{target} carries IP"));
                let back = decode_link(target, &frame).expect("decodes");
                assert_eq!(back.network, bytes, "{target}");
                assert_eq!(back.protocol.ip_version(), Some(if v6 { 6 } else { 4 }));
                if target == LinkType::LINUX_SLL || target == LinkType::LINUX_SLL2 {
                    assert_eq!(back.linux_packet_type, Some(LinuxPacketType::Outgoing));
                }
            }
            let other = if v6 { LinkType::IPV4 } else { LinkType::IPV6 };
            assert!(encapsulate(other, &src, PacketDirection::Inbound).is_none());
            assert!(encapsulate(LinkType::PPP, &src, PacketDirection::Inbound).is_none());
        }
    }
}
