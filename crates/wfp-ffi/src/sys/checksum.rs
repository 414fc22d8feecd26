//! IP header construction and Internet checksums for FwpsConstructIpHeaderForTransportPacket0
//! (RFC 791, RFC 8200, RFC 1071; TCP/UDP/ICMPv6 pseudo-header checksums, ICMPv4 without one).

/// One's-complement sum of `data` folded into `acc` (RFC 1071).
fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum field offset of a transport protocol (TCP 16, UDP 6, ICMP / ICMPv6 2).
fn checksum_offset(proto: u8) -> Option<usize> {
    match proto {
        6 => Some(16),
        17 => Some(6),
        1 | 58 => Some(2),
        _ => None,
    }
}

/// `transport` behind a new IP header from `src` to `dst` (4 or 16 bytes each), with the IP and
/// transport checksums computed. `None` when the packet is too long for the header or the
/// addresses have different lengths.
pub(crate) fn ip_packet(src: &[u8], dst: &[u8], proto: u8, transport: &[u8]) -> Option<Vec<u8>> {
    let mut t = transport.to_vec();
    let len = u16::try_from(t.len()).ok()?;
    let header = match (src.len(), dst.len()) {
        (4, 4) => {
            let total = len.checked_add(20)?;
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 128, proto, 0, 0];
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h.extend_from_slice(src);
            h.extend_from_slice(dst);
            let c = fold(sum(0, &h));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h
        }
        (16, 16) => {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, proto, 128];
            h[4..6].copy_from_slice(&len.to_be_bytes());
            h.extend_from_slice(src);
            h.extend_from_slice(dst);
            h
        }
        _ => return None,
    };
    if let Some(off) = checksum_offset(proto).filter(|o| t.len() >= o + 2) {
        t[off] = 0;
        t[off + 1] = 0;
        let mut acc = 0;
        if proto != 1 {
            acc = sum(acc, src);
            acc = sum(acc, dst);
            acc += u32::from(proto) + u32::from(len);
        }
        let mut c = fold(sum(acc, &t));
        if proto == 17 && c == 0 {
            c = 0xFFFF;
        }
        t[off..off + 2].copy_from_slice(&c.to_be_bytes());
    }
    let mut out = header;
    out.extend_from_slice(&t);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_udp_checksums_verify_to_zero() {
        let udp = [
            0x30, 0x39, 0x00, 0x35, 0x00, 0x0c, 0xAA, 0xAA, b'a', b'b', b'c', b'd',
        ];
        let p = ip_packet(&[10, 0, 0, 1], &[10, 0, 0, 2], 17, &udp).unwrap();
        assert_eq!(p.len(), 32);
        assert_eq!(fold(sum(0, &p[..20])), 0, "IP header checksum");
        let mut acc = sum(0, &p[12..20]) + 17 + 12;
        acc = sum(acc, &p[20..]);
        assert_eq!(fold(acc), 0, "UDP checksum");
    }

    #[test]
    fn ipv6_tcp_checksum_verifies_to_zero() {
        let mut tcp = [0u8; 20];
        tcp[12] = 0x50;
        let s = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let d = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let p = ip_packet(&s, &d, 6, &tcp).unwrap();
        assert_eq!(p[6], 6);
        let mut acc = sum(0, &p[8..40]) + 6 + 20;
        acc = sum(acc, &p[40..]);
        assert_eq!(fold(acc), 0);
        assert!(ip_packet(&s, &[1, 2, 3, 4], 6, &tcp).is_none());
    }
}
