//! Replay outputs besides the summary: the permitted / blocked captures.
//!
//! A [`PcapSink`] writes a classic pcap file (every tool opens it) with the link type of the first
//! packet it receives, copying frames byte for byte. A pcapng capture can mix link types across its
//! interfaces; a classic file cannot, so a later IP packet of another link type is re-encapsulated
//! into the file's link type (a synthetic header with zero addresses, the right ethertype or
//! address family, and the packet's direction where the header has a field for it). Packets that
//! cannot be re-encapsulated, or that the format cannot hold (over 256 KiB, timestamps after 2106),
//! are counted in [`PcapSink::unwritable`] and reported, never silently lost.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use wfp_pcap::{CaptureWriter, L3Packet, LinkType, NetworkProtocol, PacketRef, WriteError};
use wfp_shim::PacketDirection;

use super::ReplayError;

/// A capture file being written: one of `--permitted` / `--blocked`.
#[derive(Debug)]
pub struct PcapSink {
    path: PathBuf,
    /// The created file until the first packet fixes the link type.
    file: Option<File>,
    writer: Option<CaptureWriter<BufWriter<File>>>,
    link_type: Option<LinkType>,
    written: u64,
    reencapsulated: u64,
    unwritable: u64,
}

impl PcapSink {
    /// Creates (or truncates) `path` now, so an unwritable path fails before the replay starts.
    pub fn create(path: &Path) -> Result<Self, ReplayError> {
        let file = File::create(path).map_err(|source| ReplayError::Output {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Some(file),
            writer: None,
            link_type: None,
            written: 0,
            reencapsulated: 0,
            unwritable: 0,
        })
    }

    /// Appends one packet; `l3` is its decoded network layer (used when the packet's link type
    /// differs from the file's).
    pub(crate) fn write(
        &mut self,
        p: &PacketRef<'_>,
        l3: &L3Packet<'_>,
        direction: PacketDirection,
    ) -> Result<(), ReplayError> {
        let file_type = *self.link_type.get_or_insert(p.link_type);
        let owned;
        let (data, orig_len) = if p.link_type == file_type {
            (p.data, p.orig_len)
        } else {
            match encapsulate(file_type, l3, direction) {
                Some(frame) => {
                    // Wire length: the original's minus its link header plus the new header.
                    let header = frame.len() - l3.network.len();
                    let wire = u64::from(p.orig_len).saturating_sub(l3.link_header_len as u64)
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
        let writer = self.writer(file_type)?;
        let orig_len = orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
        match writer.write_packet(p.timestamp_ns, orig_len, data) {
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

    /// Flushes the file; a sink that received no packet still gets a valid (empty) capture with
    /// `fallback` as its link type.
    pub(crate) fn finish(mut self, fallback: LinkType) -> Result<SinkReport, ReplayError> {
        let link_type = self.link_type.unwrap_or(fallback);
        self.writer(link_type)?;
        let report = SinkReport {
            path: self.path.clone(),
            link_type,
            written: self.written,
            reencapsulated: self.reencapsulated,
            unwritable: self.unwritable,
        };
        if let Some(w) = self.writer.take() {
            w.finish().map_err(|e| self.write_error(e))?;
        }
        Ok(report)
    }

    /// Packets written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Packets that could not be written (see the module doc).
    pub fn unwritable(&self) -> u64 {
        self.unwritable
    }

    fn writer(
        &mut self,
        link_type: LinkType,
    ) -> Result<&mut CaptureWriter<BufWriter<File>>, ReplayError> {
        if self.writer.is_none() {
            let file = match self.file.take() {
                Some(f) => f,
                None => File::create(&self.path).map_err(|source| ReplayError::Output {
                    path: self.path.clone(),
                    source,
                })?,
            };
            let w = CaptureWriter::new(BufWriter::with_capacity(64 * 1024, file), link_type)
                .map_err(|e| self.write_error(e))?;
            self.writer = Some(w);
        }
        match self.writer.as_mut() {
            Some(w) => Ok(w),
            None => Err(ReplayError::Output {
                path: self.path.clone(),
                source: std::io::Error::other("capture writer not created"),
            }),
        }
    }

    fn write_error(&self, e: WriteError) -> ReplayError {
        ReplayError::CaptureOutput {
            path: self.path.clone(),
            source: e,
        }
    }
}

/// What a [`PcapSink`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkReport {
    /// The file.
    pub path: PathBuf,
    /// Its link type.
    pub link_type: LinkType,
    /// Packets written.
    pub written: u64,
    /// Of those, packets re-encapsulated from another link type.
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
    use super::*;
    use wfp_pcap::{decode_link, LinuxPacketType};

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
