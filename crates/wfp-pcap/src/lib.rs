//! # wfp-pcap — capture I/O for the offline data path
//!
//! This crate reads packet captures, decodes their link-layer headers down to the network layer,
//! and writes classic pcap and pcapng files. It is the I/O edge of offline replay: something above it feeds
//! the decoded network-layer bytes to the packet engine and chooses which packets to write back
//! out (permitted / blocked captures).
//!
//! ```text
//!  .pcap / .pcapng bytes                                  network-layer bytes
//!  ──────────────────────► CaptureReader ──► PacketRef ──► decode_link ──► L3Packet ──► (engine)
//!   (any io::Read)          (reader/)        (index, ts,     (link.rs)     (IPv4/IPv6/other,
//!                            pcap.rs           link type,                    VLAN ids, Linux
//!                            pcapng.rs         orig_len,                     packet type)
//!                                              data)
//!                                                │
//!                                                ├──────► CaptureWriter ──► .pcap bytes
//!                                                │         (writer.rs)      (any io::Write)
//!                                                └──────► PcapNgWriter ───► .pcapng bytes
//!                                                          (writer/pcapng.rs: one IDB per
//!                                                           link type, ns, epb_flags)
//! ```
//!
//! What it never does:
//! - It never panics on file or packet contents and has no `unsafe`: every length is checked,
//!   malformed input becomes a [`CaptureError`] (which ends reading, after every good packet
//!   before it was returned) or a [`LinkError`] (which concerns one packet only).
//! - It never allocates what a file merely claims: captured lengths above [`MAX_CAPTURED_LEN`]
//!   are rejected and large reads grow only with the data actually present.
//! - It reads IP headers only to take tunnels apart ([`tunnel`]: the outer header's lengths,
//!   protocol and addresses, the tunnel header); it never validates IP or parses anything above
//!   it for its own sake, keeps no flow state, reads no clock (timestamps come from the file)
//!   and depends on no other wfp crate.
//!
//! ```text
//!  L3Packet (IP) ──► decapsulate ──► Tunnel { kind, outer endpoints, key, inner: L3Packet }
//!                    (tunnel.rs:      (GRE, VXLAN, Geneve, IPIP, 6in4, 4in6, 6in6; the inner
//!                     outer IP,        Ethernet frame of GRE/VXLAN/Geneve through link.rs's
//!                     tunnel header)   ethertype chain: VLAN, PPPoE, MPLS, PBB)
//! ```
//!
//! Modules: [`reader`] (formats and their contract), [`link`] (link types and link-layer
//! encapsulations decoded, and how), [`tunnel`] (IP tunnels), [`writer`] (classic pcap and
//! pcapng output), and [`LinkType`].

#![forbid(unsafe_code)]

mod bytes;
pub mod link;
mod link_type;
pub mod reader;
pub mod tunnel;
pub mod writer;

#[cfg(test)]
mod test_support;

pub use link::{
    decode_link, Direction, Encapsulation, Encapsulations, L3Packet, LinkError, LinuxPacketType,
    NetworkProtocol, VlanIds, MAX_ENCAP_DEPTH, MAX_MPLS_LABELS, MAX_VLAN_TAGS,
};
pub use link_type::LinkType;
pub use reader::{
    CaptureError, CaptureFormat, CaptureReader, CapturedPacket, InterfaceInfo, PacketRef,
    TimestampResolution, MAX_BLOCK_LEN, MAX_CAPTURED_LEN,
};
pub use tunnel::{decapsulate, Tunnel, TunnelError, TunnelKind};
pub use writer::{CaptureWriter, PcapNgWriter, TimestampPrecision, WriteError, WRITER_SNAPLEN};
