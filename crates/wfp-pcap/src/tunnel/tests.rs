//! Byte-vector tests for every tunnel: well-formed, nested, cut short, unsupported.

use super::*;
use crate::decode_link;

/// A UDP packet 10.0.0.1:1000 → 10.0.0.2:53 with 4 payload bytes.
fn inner_v4() -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    p.extend_from_slice(&[0x03, 0xE8, 0, 53, 0, 12, 0, 0, b'a', b'b', b'c', b'd']);
    p
}

/// An IPv6 packet with no next header.
fn inner_v6() -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
    p.extend_from_slice(&[0xFD; 16]);
    p.extend_from_slice(&[0xFE; 16]);
    p
}

/// An IPv4 header 192.0.2.1 → 192.0.2.2 of `protocol` around `payload`.
fn outer_v4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).expect("small");
    let [t0, t1] = total.to_be_bytes();
    let mut p = vec![
        0x45, 0, t0, t1, 0, 0, 0x40, 0, 64, protocol, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ];
    p.extend_from_slice(payload);
    p
}

/// An IPv6 header 2001:db8::1 → 2001:db8::2 of `next` around `payload`.
fn outer_v6(next: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("small");
    let [l0, l1] = len.to_be_bytes();
    let mut p = vec![0x60, 0, 0, 0, l0, l1, next, 64];
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0D;
    a[3] = 0xB8;
    a[15] = 1;
    p.extend_from_slice(&a);
    a[15] = 2;
    p.extend_from_slice(&a);
    p.extend_from_slice(payload);
    p
}

fn udp(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).expect("small");
    let mut p = vec![0xC0, 0x00];
    p.extend_from_slice(&dst_port.to_be_bytes());
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

fn ethernet(ethertype: &[u8], payload: &[u8]) -> Vec<u8> {
    [
        &[2u8, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2][..],
        ethertype,
        payload,
    ]
    .concat()
}

fn l3(bytes: &[u8]) -> L3Packet<'_> {
    decode_link(LinkType::RAW, bytes).expect("raw IP")
}

fn tunnel(bytes: &[u8]) -> Tunnel<'_> {
    decapsulate(&l3(bytes))
        .expect("decapsulates")
        .expect("a tunnel")
}

#[test]
fn direct_tunnels_ipip_6in4_4in6_6in6() {
    let (v4, v6) = (inner_v4(), inner_v6());
    let cases = [
        (
            outer_v4(4, &v4),
            TunnelKind::Ipip,
            NetworkProtocol::Ipv4,
            &v4,
        ),
        (
            outer_v4(41, &v6),
            TunnelKind::SixInFour,
            NetworkProtocol::Ipv6,
            &v6,
        ),
        (
            outer_v6(4, &v4),
            TunnelKind::FourInSix,
            NetworkProtocol::Ipv4,
            &v4,
        ),
        (
            outer_v6(41, &v6),
            TunnelKind::SixInSix,
            NetworkProtocol::Ipv6,
            &v6,
        ),
    ];
    for (bytes, kind, protocol, inner) in cases {
        let t = tunnel(&bytes);
        assert_eq!((t.kind, t.inner.protocol, t.key), (kind, protocol, None));
        assert_eq!(t.inner.network, &inner[..], "{kind}");
        assert!(kind.is_direct());
    }
    let b = outer_v4(4, &v4);
    let t = tunnel(&b);
    assert_eq!(t.outer_src, IpAddr::from([192, 0, 2, 1]));
    assert_eq!(t.outer_dst, IpAddr::from([192, 0, 2, 2]));
    // A protocol-4 payload that is not IPv4 is said so, not hidden.
    let b = outer_v4(4, &v6);
    let t = tunnel(&b);
    assert_eq!(t.inner.protocol, NetworkProtocol::OtherIpVersion(6));
}

#[test]
fn not_tunnels_are_none() {
    let v4 = inner_v4();
    for bytes in [
        v4.clone(),
        outer_v4(6, &[0; 20]),
        outer_v4(17, &udp(53, &[0; 8])),
        // VXLAN's port without the I flag is some other UDP traffic.
        outer_v4(17, &udp(4789, &[0; 16])),
        vec![0x45, 0],
    ] {
        assert_eq!(decapsulate(&l3(&bytes)), Ok(None));
    }
    let arp_frame = ethernet(&[8, 6], &[0; 28]);
    let arp = decode_link(LinkType::ETHERNET, &arp_frame).expect("arp");
    assert_eq!(decapsulate(&arp), Ok(None));
}

#[test]
fn ipv4_total_length_zero_means_the_captured_length() {
    let mut bytes = outer_v4(4, &inner_v4());
    bytes[2] = 0;
    bytes[3] = 0;
    assert_eq!(tunnel(&bytes).inner.network, &inner_v4()[..]);
}

#[test]
fn gre_plain_keyed_sequenced_and_checksummed() {
    let v4 = inner_v4();
    let plain_gre = outer_v4(47, &[&[0u8, 0, 0x08, 0][..], &v4].concat());
    let t = tunnel(&plain_gre);
    assert_eq!(
        (t.kind, t.key, t.inner.network),
        (TunnelKind::Gre, None, &v4[..])
    );
    // C + K + S: checksum/reserved, key 0x01020304, sequence.
    let header = [0xB0u8, 0, 0x86, 0xDD, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 9];
    let v6 = inner_v6();
    let bytes = outer_v4(47, &[&header[..], &v6].concat());
    let t = tunnel(&bytes);
    assert_eq!(
        (t.key, t.inner.protocol),
        (Some(0x0102_0304), NetworkProtocol::Ipv6)
    );
    assert_eq!(t.inner.network, &v6[..]);
    assert_eq!(t.inner.link_header_len, 20 + 16);
    // GRE over IPv6.
    let b = outer_v6(47, &[&[0u8, 0, 0x08, 0][..], &v4].concat());
    let t = tunnel(&b);
    assert_eq!(
        (t.kind, t.inner.protocol),
        (TunnelKind::Gre, NetworkProtocol::Ipv4)
    );
}

#[test]
fn gre_carrying_ethernet_with_qinq_and_mpls() {
    let v4 = inner_v4();
    let frame = ethernet(
        &[0x88, 0xA8, 0x00, 0x0A, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00],
        &v4,
    );
    let bytes = outer_v4(
        47,
        &[&[0x20u8, 0, 0x65, 0x58, 0, 0, 0, 7][..], &frame].concat(),
    );
    let t = tunnel(&bytes);
    assert_eq!(t.key, Some(7));
    assert_eq!(t.inner.vlan_ids.as_slice(), [10, 20]);
    assert_eq!(t.inner.network, &v4[..]);
    // MPLS over GRE: two labels, then IPv4.
    let mpls = [0x00u8, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40];
    let bytes = outer_v4(47, &[&[0u8, 0, 0x88, 0x47][..], &mpls, &v4].concat());
    let t = tunnel(&bytes);
    assert_eq!(t.inner.protocol, NetworkProtocol::Ipv4);
    assert_eq!(t.inner.network, &v4[..]);
    let e: Vec<_> = t.inner.encapsulations.iter().collect();
    assert_eq!(
        e,
        [crate::Encapsulation::Mpls {
            top_label: 16,
            labels: 2
        }]
    );
}

#[test]
fn gre_unsupported_versions_routing_and_protocols_are_named() {
    let cases: [(&[u8], &str); 3] = [
        (&[0x30, 0x01, 0x88, 0x0B], "GRE version 0x0001"),
        (&[0x40, 0x00, 0x08, 0x00], "GRE routing flags 0x4000"),
        (&[0x10, 0x00, 0x88, 0xBE, 0, 0, 0, 1], "GRE protocol 0x88be"),
    ];
    for (header, text) in cases {
        let bytes = outer_v4(47, &[header, &[0u8; 24][..]].concat());
        let e = decapsulate(&l3(&bytes)).expect_err("unsupported");
        assert_eq!(e.to_string(), text);
        assert_eq!(e.kind(), TunnelKind::Gre);
    }
}

#[test]
fn vxlan_carrying_vlans() {
    let v4 = inner_v4();
    let frame = ethernet(&[0x81, 0x00, 0x00, 0x64, 0x08, 0x00], &v4);
    let vx = [&[0x08u8, 0, 0, 0, 0x00, 0x10, 0x01, 0][..], &frame].concat();
    let b = outer_v4(17, &udp(4789, &vx));
    let t = tunnel(&b);
    assert_eq!((t.kind, t.key), (TunnelKind::Vxlan, Some(0x1001)));
    assert_eq!(t.inner.vlan_ids.as_slice(), [100]);
    assert_eq!(t.inner.network, &v4[..]);
    // ARP inside VXLAN: decapsulated, and said not to be IP.
    let arp = [
        &[0x08u8, 0, 0, 0, 0, 0, 1, 0][..],
        &ethernet(&[8, 6], &[0; 28]),
    ]
    .concat();
    let b = outer_v4(17, &udp(4789, &arp));
    let t = tunnel(&b);
    assert_eq!(t.inner.protocol, NetworkProtocol::OtherEtherType(0x0806));
}

#[test]
fn geneve_with_options_ethernet_and_ip() {
    let v4 = inner_v4();
    // One 8-byte option (length 2 words), protocol 0x6558, VNI 0x000ABC.
    let mut g = vec![0x02, 0, 0x65, 0x58, 0x00, 0x0A, 0xBC, 0];
    g.extend_from_slice(&[0x01, 0x02, 0x03, 0x01, 0, 0, 0, 0]);
    g.extend_from_slice(&ethernet(&[0x08, 0x00], &v4));
    let b = outer_v6(17, &udp(6081, &g));
    let t = tunnel(&b);
    assert_eq!((t.kind, t.key), (TunnelKind::Geneve, Some(0xABC)));
    assert_eq!(t.inner.network, &v4[..]);
    let g = [&[0u8, 0, 0x08, 0x00, 0, 0, 1, 0][..], &v4].concat();
    let b = outer_v4(17, &udp(6081, &g));
    let t = tunnel(&b);
    assert_eq!(
        (t.inner.protocol, t.inner.network),
        (NetworkProtocol::Ipv4, &v4[..])
    );
    let g = [&[0u8, 0, 0x12, 0x34, 0, 0, 1, 0][..], &v4].concat();
    let e = decapsulate(&l3(&outer_v4(17, &udp(6081, &g)))).expect_err("unknown protocol");
    assert_eq!(e.to_string(), "Geneve protocol 0x1234");
}

#[test]
fn nested_tunnels_decapsulate_one_level_at_a_time() {
    // IPIP inside VXLAN inside GRE.
    let ipip = outer_v4(4, &inner_v4());
    let vx = [
        &[0x08u8, 0, 0, 0, 0, 0, 5, 0][..],
        &ethernet(&[8, 0], &ipip),
    ]
    .concat();
    let gre = outer_v6(
        47,
        &[&[0u8, 0, 0x08, 0][..], &outer_v4(17, &udp(4789, &vx))].concat(),
    );
    let mut kinds = Vec::new();
    let mut cur = l3(&gre);
    while let Some(t) = decapsulate(&cur).expect("decodes") {
        kinds.push(t.kind);
        cur = t.inner;
        assert!(kinds.len() <= crate::MAX_ENCAP_DEPTH);
    }
    assert_eq!(
        kinds,
        [TunnelKind::Gre, TunnelKind::Vxlan, TunnelKind::Ipip]
    );
    assert_eq!(cur.network, &inner_v4()[..]);
}

#[test]
fn fragments_and_cut_headers_are_errors_not_panics() {
    let mut frag = outer_v4(4, &inner_v4());
    frag[6] = 0x20; // more fragments
    assert_eq!(
        decapsulate(&l3(&frag)),
        Err(TunnelError::Fragmented {
            kind: TunnelKind::Ipip
        })
    );
    let gre_key_cut = outer_v4(47, &[0x20, 0, 0x08, 0, 0]);
    assert!(matches!(
        decapsulate(&l3(&gre_key_cut)),
        Err(TunnelError::Truncated {
            what: "GRE key",
            ..
        })
    ));
    let vx_cut = outer_v4(17, &udp(4789, &[0x08, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3]));
    assert!(matches!(
        decapsulate(&l3(&vx_cut)),
        Err(TunnelError::Truncated {
            kind: TunnelKind::Vxlan,
            what: "inner Ethernet header",
            ..
        })
    ));
    // Every prefix of a nested packet decodes or errs without panicking.
    let vx = [
        &[0x08u8, 0, 0, 0, 0, 0, 5, 0][..],
        &ethernet(&[8, 0], &inner_v4()),
    ]
    .concat();
    let whole = outer_v4(17, &udp(4789, &vx));
    for n in 1..whole.len() {
        let _ = decapsulate(&l3(&whole[..n]));
    }
}

/// The precheck never answers for a packet the full parse would take apart: every protocol
/// byte, IPv4 and IPv6, every length cut, and UDP to the tunnel ports and others.
#[test]
fn precheck_agrees_with_the_full_parse() {
    let payload = udp(PORT_VXLAN, &[0x08, 0, 0, 0, 0, 0, 1, 0]);
    let mut packets = Vec::new();
    for protocol in 0..=u8::MAX {
        packets.push(outer_v4(protocol, &payload));
        packets.push(outer_v6(protocol, &payload));
    }
    for port in [PORT_VXLAN, PORT_GENEVE, 53, 4790] {
        packets.push(outer_v4(PROTO_UDP, &udp(port, &[0; 16])));
        packets.push(outer_v6(PROTO_UDP, &udp(port, &[0x08; 16])));
    }
    for p in &packets {
        for cut in 0..=p.len() {
            let bytes = p.get(..cut).expect("in range");
            let Ok(l3) = decode_link(LinkType::RAW, bytes) else {
                continue;
            };
            assert_eq!(decapsulate(&l3), parse(&l3), "{bytes:02x?}");
        }
    }
}
