//! Building and rewriting packets (for injection and stream edits, wfp-reference §10.4 "callouts
//! fix IP/transport checksums after modification"): an IP header for a transport packet, a TCP
//! segment with new sequence numbers or payload, and the checksums of both.
//!
//! Only whole, unfragmented packets are built or rewritten; anything else is a [`BuildError`].

use std::net::IpAddr;

use super::checksum::{fold, sum};

/// Why a packet could not be built or rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Source and destination are of different families.
    #[error("source and destination addresses are of different families")]
    MixedFamilies,
    /// The packet would exceed 65,535 bytes.
    #[error("packet too long")]
    TooLong,
    /// The bytes are not a whole IPv4/IPv6 packet carrying a TCP header.
    #[error("not a whole TCP packet")]
    NotTcp,
    /// The bytes are not a whole, unfragmented IPv4/IPv6 packet (no IPv6 extension headers)
    /// carrying a TCP or UDP header.
    #[error("not a whole TCP or UDP packet")]
    NotTcpOrUdp,
}

/// The pseudo-header sum of `src`/`dst`/`protocol`/`len` (RFC 793, RFC 8200 §8.1).
fn pseudo(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> u64 {
    let mut acc = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum(&s.octets(), acc);
            acc = sum(&d.octets(), acc);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            acc = sum(&s.octets(), acc);
            acc = sum(&d.octets(), acc);
        }
        _ => {}
    }
    acc + u64::from(protocol) + len as u64
}

/// Fills the TCP / UDP / ICMPv6 checksum of `transport` (the whole segment) for `src` → `dst`.
/// ICMPv4 uses no pseudo-header. Other protocols are left alone.
pub fn fix_transport_checksum(src: IpAddr, dst: IpAddr, protocol: u8, transport: &mut [u8]) {
    let at = match protocol {
        6 => 16,
        17 => 6,
        1 | 58 => 2,
        _ => return,
    };
    if transport.len() < at + 2 {
        return;
    }
    transport[at] = 0;
    transport[at + 1] = 0;
    let initial = if protocol == 1 {
        0
    } else {
        pseudo(src, dst, protocol, transport.len())
    };
    let mut c = !fold(sum(transport, initial));
    if protocol == 17 && c == 0 {
        c = 0xffff;
    }
    transport[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// An IP packet from `src` to `dst` carrying `transport` (protocol `protocol`), TTL / hop limit
/// 64, with every checksum filled — the IP header the stack builds for a transport injection.
pub fn ip_packet(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    transport: &[u8],
) -> Result<Vec<u8>, BuildError> {
    let mut t = transport.to_vec();
    fix_transport_checksum(src, dst, protocol, &mut t);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(20 + t.len()).map_err(|_| BuildError::TooLong)?;
            let mut p = Vec::with_capacity(usize::from(total));
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let c = !fold(sum(&p, 0));
            p[10..12].copy_from_slice(&c.to_be_bytes());
            p.extend_from_slice(&t);
            Ok(p)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u16::try_from(t.len()).map_err(|_| BuildError::TooLong)?;
            let mut p = Vec::with_capacity(40 + t.len());
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(&[protocol, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&t);
            Ok(p)
        }
        _ => Err(BuildError::MixedFamilies),
    }
}

/// A change to one TCP segment ([`rewrite_tcp`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpEdit<'a> {
    /// Added to the sequence number (wrapping).
    pub seq_shift: i64,
    /// Added to the acknowledgement number (wrapping; only when ACK is set).
    pub ack_shift: i64,
    /// The new payload, when it changes.
    pub payload: Option<&'a [u8]>,
}

fn shifted(v: u32, by: i64) -> u32 {
    // Sequence space is modulo 2^32: truncating the shift is the arithmetic wanted.
    v.wrapping_add(by as u32)
}

/// `packet` (a whole IPv4 / IPv6 packet whose next header is TCP, no extension headers) with
/// `edit` applied: lengths, the IPv4 header checksum and the TCP checksum fixed.
pub fn rewrite_tcp(packet: &[u8], edit: &TcpEdit<'_>) -> Result<Vec<u8>, BuildError> {
    let (src, dst, ihl) = ip_of(packet).ok_or(BuildError::NotTcp)?;
    let seg = packet.get(ihl..).ok_or(BuildError::NotTcp)?;
    let thl = usize::from(seg.get(12).ok_or(BuildError::NotTcp)? >> 4) * 4;
    if thl < 20 || seg.len() < thl {
        return Err(BuildError::NotTcp);
    }
    let mut t = seg[..thl].to_vec();
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    t[4..8].copy_from_slice(&shifted(seq, edit.seq_shift).to_be_bytes());
    if t[13] & 0x10 != 0 {
        let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
        t[8..12].copy_from_slice(&shifted(ack, edit.ack_shift).to_be_bytes());
    }
    t.extend_from_slice(edit.payload.unwrap_or(&seg[thl..]));
    let mut out = ip_packet(src, dst, 6, &t)?;
    keep_ip_fields(packet, &mut out);
    Ok(out)
}

/// `packet` (a whole IPv4 / IPv6 packet carrying TCP or UDP, unfragmented, no IPv6 extension
/// headers) sent from `src` to `dst` instead of its own addresses and ports: the IPv4 header
/// checksum and the transport checksum fixed (a UDP-over-IPv4 checksum of 0, "none", stays 0).
/// What a connect / bind redirect (wfp-reference §10.3) does to a connection's packets.
pub fn rewrite_endpoints(
    packet: &[u8],
    src: std::net::SocketAddr,
    dst: std::net::SocketAddr,
) -> Result<Vec<u8>, BuildError> {
    let (protocol, ihl) = transport_of(packet).ok_or(BuildError::NotTcpOrUdp)?;
    let mut out = packet.to_vec();
    match (src.ip(), dst.ip(), packet.first().map(|b| b >> 4)) {
        (IpAddr::V4(s), IpAddr::V4(d), Some(4)) => {
            out[12..16].copy_from_slice(&s.octets());
            out[16..20].copy_from_slice(&d.octets());
            out[10] = 0;
            out[11] = 0;
            let c = !fold(sum(&out[..ihl], 0));
            out[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d), Some(6)) => {
            out[8..24].copy_from_slice(&s.octets());
            out[24..40].copy_from_slice(&d.octets());
        }
        _ => return Err(BuildError::MixedFamilies),
    }
    let seg = out.get_mut(ihl..).ok_or(BuildError::NotTcpOrUdp)?;
    let min = if protocol == 6 { 20 } else { 8 };
    if seg.len() < min {
        return Err(BuildError::NotTcpOrUdp);
    }
    seg[0..2].copy_from_slice(&src.port().to_be_bytes());
    seg[2..4].copy_from_slice(&dst.port().to_be_bytes());
    let no_udp_checksum = protocol == 17 && src.is_ipv4() && seg[6] == 0 && seg[7] == 0;
    if !no_udp_checksum {
        fix_transport_checksum(src.ip(), dst.ip(), protocol, seg);
    }
    Ok(out)
}

/// The transport protocol (TCP or UDP) and IP header length of a whole, unfragmented IPv4 /
/// IPv6 (no extension headers) packet.
fn transport_of(p: &[u8]) -> Option<(u8, usize)> {
    let (protocol, ihl) = match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p.first()? & 0x0f) * 4;
            let frag = u16::from_be_bytes([*p.get(6)?, *p.get(7)?]) & 0x3fff;
            if ihl < 20 || frag != 0 {
                return None;
            }
            (*p.get(9)?, ihl)
        }
        6 => (*p.get(6)?, 40),
        _ => return None,
    };
    (matches!(protocol, 6 | 17) && p.len() >= ihl).then_some((protocol, ihl))
}

/// Copies the fields of the original IP header the rewrite keeps: IPv4 TOS, identification,
/// flags and TTL (then the header checksum again); IPv6 traffic class, flow label, hop limit.
fn keep_ip_fields(orig: &[u8], out: &mut [u8]) {
    if out.first().is_some_and(|b| b >> 4 == 4) {
        for i in [1, 4, 5, 6, 8] {
            if let (Some(o), Some(n)) = (out.get_mut(i), orig.get(i)) {
                *o = *n;
            }
        }
        if let Some(h) = out.get_mut(..20) {
            h[10] = 0;
            h[11] = 0;
            let c = !fold(sum(h, 0));
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
    } else {
        for i in [0, 1, 2, 3, 7] {
            if let (Some(o), Some(n)) = (out.get_mut(i), orig.get(i)) {
                *o = *n;
            }
        }
    }
}

/// Source, destination and header length of a whole IPv4 (no options beyond IHL) / IPv6 (no
/// extension headers) packet carrying TCP.
fn ip_of(p: &[u8]) -> Option<(IpAddr, IpAddr, usize)> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p.first()? & 0x0f) * 4;
            let frag = u16::from_be_bytes([*p.get(6)?, *p.get(7)?]) & 0x3fff;
            if ihl < 20 || *p.get(9)? != 6 || frag != 0 {
                return None;
            }
            let s: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d), ihl))
        }
        6 => {
            if *p.get(6)? != 6 {
                return None;
            }
            let s: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d), 40))
        }
        _ => None,
    }
}
