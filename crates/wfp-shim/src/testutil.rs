//! Packet builders for tests, on struct-update templates: a test changes only the fields that
//! matter (`Tcp { flags: SYN, ..TCP }`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{internet_checksum, protocol, TcpFlags};

/// IP header fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ip {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) ttl: u8,
    pub(crate) id: u16,
    pub(crate) df: bool,
}

pub(crate) const CLIENT4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
pub(crate) const SERVER4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20));
pub(crate) const CLIENT6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));
pub(crate) const SERVER6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x20));

/// IPv4, client to server.
pub(crate) const V4: Ip = Ip {
    src: CLIENT4,
    dst: SERVER4,
    ttl: 64,
    id: 0x1234,
    df: false,
};
/// IPv6, client to server.
pub(crate) const V6: Ip = Ip {
    src: CLIENT6,
    dst: SERVER6,
    ttl: 64,
    id: 0,
    df: false,
};

impl Ip {
    /// The same addresses the other way round.
    pub(crate) const fn reply(self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            ..self
        }
    }
}

/// TCP header fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tcp {
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) flags: TcpFlags,
    pub(crate) window: u16,
    pub(crate) options: &'static [u8],
}

pub(crate) const TCP: Tcp = Tcp {
    sport: 40000,
    dport: 80,
    seq: 0,
    ack: 0,
    flags: TcpFlags::ACK,
    window: 65535,
    options: &[],
};

/// A whole IP packet with `payload` after the header (IPv4 or IPv6 according to the addresses).
pub(crate) fn ip_packet(ip: &Ip, proto: u8, payload: &[u8]) -> Vec<u8> {
    match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4_packet(ip, s, d, proto, &[], payload),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6_packet(ip, s, d, proto, payload),
        _ => panic!("mixed address families"),
    }
}

/// IPv4 with options (`options.len()` a multiple of 4).
pub(crate) fn ipv4_packet(
    ip: &Ip,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let header_len = 20 + options.len();
    let total = u16::try_from(header_len + payload.len()).expect("packet too large");
    let mut p = vec![0x40 | (header_len / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&ip.id.to_be_bytes());
    p.extend_from_slice(&(if ip.df { 0x4000_u16 } else { 0 }).to_be_bytes());
    p.extend_from_slice(&[ip.ttl, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(options);
    let c = internet_checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn ipv6_packet(ip: &Ip, src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("payload too large");
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[next, ip.ttl]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// An IPv6 packet whose payload starts with the given extension headers; each `(kind, body)`
/// gets its next-header byte prepended (body length + 1 must fit the header's length rule).
pub(crate) fn ipv6_with_ext(ip: &Ip, exts: &[(u8, Vec<u8>)], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (_, ext)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(proto, |e| e.0);
        body.push(next);
        body.extend_from_slice(ext);
    }
    body.extend_from_slice(payload);
    let first = exts.first().map_or(proto, |e| e.0);
    ip_packet(ip, first, &body)
}

/// An 8-byte generic extension header body (next-header byte excluded): length 0, padding.
pub(crate) fn ext8() -> Vec<u8> {
    vec![0, 1, 4, 0, 0, 0, 0]
}

fn pseudo_header(ip: &Ip, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => panic!("mixed address families"),
    }
    p
}

fn with_checksum(ip: &Ip, proto: u8, mut segment: Vec<u8>, at: usize) -> Vec<u8> {
    let mut sum = pseudo_header(ip, proto, segment.len());
    sum.extend_from_slice(&segment);
    let c = internet_checksum(&sum);
    segment[at..at + 2].copy_from_slice(&c.to_be_bytes());
    segment
}

/// The TCP segment bytes (header + payload) with a correct checksum.
pub(crate) fn tcp_segment(ip: &Ip, tcp: &Tcp, payload: &[u8]) -> Vec<u8> {
    assert_eq!(tcp.options.len() % 4, 0);
    let header_len = 20 + tcp.options.len();
    let mut s = Vec::new();
    s.extend_from_slice(&tcp.sport.to_be_bytes());
    s.extend_from_slice(&tcp.dport.to_be_bytes());
    s.extend_from_slice(&tcp.seq.to_be_bytes());
    s.extend_from_slice(&tcp.ack.to_be_bytes());
    let off_flags = ((header_len / 4) as u16) << 12 | tcp.flags.bits();
    s.extend_from_slice(&off_flags.to_be_bytes());
    s.extend_from_slice(&tcp.window.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]);
    s.extend_from_slice(tcp.options);
    s.extend_from_slice(payload);
    with_checksum(ip, protocol::TCP, s, 16)
}

/// A whole IP packet carrying a TCP segment.
pub(crate) fn tcp_packet(ip: &Ip, tcp: &Tcp, payload: &[u8]) -> Vec<u8> {
    ip_packet(ip, protocol::TCP, &tcp_segment(ip, tcp, payload))
}

/// The UDP datagram bytes with a correct checksum.
pub(crate) fn udp_datagram(ip: &Ip, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    with_checksum(ip, protocol::UDP, s, 6)
}

/// A whole IP packet carrying a UDP datagram.
pub(crate) fn udp_packet(ip: &Ip, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    ip_packet(ip, protocol::UDP, &udp_datagram(ip, sport, dport, payload))
}

/// A whole IP packet carrying an ICMP (v4 or v6 by address family) message.
pub(crate) fn icmp_packet(ip: &Ip, icmp_type: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut s = vec![icmp_type, code, 0, 0];
    s.extend_from_slice(&rest);
    s.extend_from_slice(body);
    match ip.src {
        IpAddr::V4(_) => {
            let c = internet_checksum(&s);
            s[2..4].copy_from_slice(&c.to_be_bytes());
            ip_packet(ip, protocol::ICMP, &s)
        }
        IpAddr::V6(_) => {
            let s = with_checksum(ip, protocol::ICMPV6, s, 2);
            ip_packet(ip, protocol::ICMPV6, &s)
        }
    }
}

/// An ICMP echo request or reply.
pub(crate) fn echo(ip: &Ip, reply: bool, id: u16, seq: u16, body: &[u8]) -> Vec<u8> {
    let ty = match (ip.src, reply) {
        (IpAddr::V4(_), false) => 8,
        (IpAddr::V4(_), true) => 0,
        (IpAddr::V6(_), false) => 128,
        (IpAddr::V6(_), true) => 129,
    };
    let mut rest = [0; 4];
    rest[..2].copy_from_slice(&id.to_be_bytes());
    rest[2..].copy_from_slice(&seq.to_be_bytes());
    icmp_packet(ip, ty, 0, rest, body)
}

/// Split an IP packet into fragments at the given payload offsets (multiples of 8, increasing,
/// strictly inside the fragmentable payload). IPv6 fragments get a fragment header after the
/// first `unfragmentable` bytes (40, or more to keep extension headers in every fragment).
pub(crate) fn fragment(
    packet: &[u8],
    cuts: &[usize],
    id: u32,
    unfragmentable: usize,
) -> Vec<Vec<u8>> {
    let v4 = packet[0] >> 4 == 4;
    let header_len = if v4 {
        usize::from(packet[0] & 0xf) * 4
    } else {
        unfragmentable
    };
    let header = &packet[..header_len];
    let data = &packet[header_len..];
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(data.len());
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let (start, end) = (w[0], w[1]);
        assert!(start % 8 == 0 && start < end, "bad cut");
        let more = end < data.len();
        let chunk = &data[start..end];
        if v4 {
            let mut p = header.to_vec();
            let total = (header.len() + chunk.len()) as u16;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p[4..6].copy_from_slice(&(id as u16).to_be_bytes());
            let flags = (u16::from_be_bytes([p[6], p[7]]) & 0x4000) | if more { 0x2000 } else { 0 };
            p[6..8].copy_from_slice(&(flags | (start / 8) as u16).to_be_bytes());
            p[10..12].copy_from_slice(&[0, 0]);
            let c = internet_checksum(&p);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            p.extend_from_slice(chunk);
            out.push(p);
        } else {
            out.push(v6_fragment(header, chunk, start, more, id));
        }
    }
    out
}

/// One IPv6 fragment: `header` is the unfragmentable part of the original packet.
pub(crate) fn v6_fragment(
    header: &[u8],
    chunk: &[u8],
    offset: usize,
    more: bool,
    id: u32,
) -> Vec<u8> {
    let (pos, next) = last_next_header(header);
    let mut p = header.to_vec();
    p[pos] = protocol::IPV6_FRAG;
    let payload_len = (header.len() - 40 + 8 + chunk.len()) as u16;
    p[4..6].copy_from_slice(&payload_len.to_be_bytes());
    p.push(next);
    p.push(0);
    p.extend_from_slice(&((offset as u16) | u16::from(more)).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(chunk);
    p
}

/// Position and value of the last next-header byte inside an IPv6 unfragmentable part made of
/// generic extension headers.
fn last_next_header(header: &[u8]) -> (usize, u8) {
    let mut pos = 6;
    let mut offset = 40;
    while offset < header.len() {
        pos = offset;
        offset += (usize::from(header[offset + 1]) + 1) * 8;
    }
    (pos, header[pos])
}
