//! Byte-vector tests for every supported link type, well-formed and cut short.

use super::*;

const IPV4: &[u8] = &[
    0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
];
const IPV6: &[u8] = &[0x60, 0, 0, 0, 0, 0, 59, 64];
const MACS: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

fn frame(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn decoded(link_type: LinkType, bytes: &[u8]) -> L3Packet<'_> {
    decode_link(link_type, bytes).unwrap_or_else(|e| panic!("{link_type}: {e}"))
}

// ----- Ethernet -----

#[test]
fn ethernet_ipv4_and_ipv6() {
    let f = frame(&[MACS, &[0x08, 0x00], IPV4]);
    let l3 = decoded(LinkType::ETHERNET, &f);
    assert_eq!(l3.protocol, NetworkProtocol::Ipv4);
    assert_eq!(l3.network, IPV4);
    assert_eq!(l3.link_header_len, 14);
    assert!(l3.vlan_ids.is_empty());
    assert_eq!(l3.linux_packet_type, None);
    assert_eq!(l3.direction(), None);

    let f = frame(&[MACS, &[0x86, 0xDD], IPV6]);
    let l3 = decoded(LinkType::ETHERNET, &f);
    assert_eq!((l3.protocol, l3.network), (NetworkProtocol::Ipv6, IPV6));
    assert_eq!(l3.protocol.ip_version(), Some(6));
}

#[test]
fn ethernet_non_ip_is_a_result_not_an_error() {
    let arp = frame(&[MACS, &[0x08, 0x06], &[0, 1, 8, 0, 6, 4, 0, 1]]);
    let l3 = decoded(LinkType::ETHERNET, &arp);
    assert_eq!(l3.protocol, NetworkProtocol::OtherEtherType(0x0806));
    assert_eq!(l3.protocol.ip_version(), None);
    assert_eq!(l3.network.len(), 8);
    // Header only, no payload.
    let lldp = frame(&[MACS, &[0x88, 0xCC]]);
    let l3 = decoded(LinkType::ETHERNET, &lldp);
    assert_eq!(
        (l3.protocol, l3.network.len()),
        (NetworkProtocol::OtherEtherType(0x88CC), 0)
    );
}

#[test]
fn ethernet_single_and_stacked_vlan_tags() {
    let f = frame(&[MACS, &[0x81, 0x00, 0x20, 0x64, 0x08, 0x00], IPV4]);
    let l3 = decoded(LinkType::ETHERNET, &f);
    assert_eq!(l3.vlan_ids.as_slice(), [100]);
    assert_eq!(
        (l3.protocol, l3.link_header_len, l3.network),
        (NetworkProtocol::Ipv4, 18, IPV4)
    );

    let f = frame(&[
        MACS,
        &[0x88, 0xA8, 0x00, 0x0A, 0x81, 0x00, 0xF0, 0x14, 0x86, 0xDD],
        IPV6,
    ]);
    let l3 = decoded(LinkType::ETHERNET, &f);
    assert_eq!(l3.vlan_ids.as_slice(), [10, 20]);
    assert_eq!(l3.vlan_ids.len(), 2);
    assert_eq!(
        (l3.protocol, l3.link_header_len),
        (NetworkProtocol::Ipv6, 22)
    );

    let f = frame(&[MACS, &[0x91, 0x00, 0x00, 0x01, 0x08, 0x06]]);
    let l3 = decoded(LinkType::ETHERNET, &f);
    assert_eq!(
        (l3.vlan_ids.as_slice(), l3.protocol),
        (&[1][..], NetworkProtocol::OtherEtherType(0x0806))
    );
}

#[test]
fn ethernet_too_many_vlan_tags() {
    let tag: &[u8] = &[0x81, 0x00, 0x00, 0x01];
    let f = frame(&[MACS, tag, tag, tag, tag, tag, &[0x08, 0x00], IPV4]);
    // MACS already ends before the first type field: the first "tag" supplies type 0x8100.
    assert_eq!(
        decode_link(LinkType::ETHERNET, &f).err(),
        Some(LinkError::TooManyVlanTags)
    );
    let f = frame(&[MACS, tag, tag, tag, tag, &[0x08, 0x00], IPV4]);
    assert_eq!(decoded(LinkType::ETHERNET, &f).vlan_ids.len(), 4);
}

#[test]
fn ethernet_cut_short() {
    let f = frame(&[MACS, &[0x08]]);
    assert!(matches!(
        decode_link(LinkType::ETHERNET, &f),
        Err(LinkError::Truncated {
            needed: 14,
            available: 13,
            ..
        })
    ));
    let f = frame(&[MACS, &[0x81, 0x00, 0x00]]);
    assert!(matches!(
        decode_link(LinkType::ETHERNET, &f),
        Err(LinkError::Truncated {
            what: "VLAN tag",
            needed: 18,
            available: 15,
            ..
        })
    ));
    assert!(decode_link(LinkType::ETHERNET, &[]).is_err());
}

#[test]
fn ieee_802_3_llc_and_snap() {
    let stp = frame(&[MACS, &[0x00, 0x26, 0x42, 0x42, 0x03, 0, 0]]);
    let l3 = decoded(LinkType::ETHERNET, &stp);
    assert_eq!(
        l3.protocol,
        NetworkProtocol::Llc {
            dsap: 0x42,
            ssap: 0x42
        }
    );
    assert_eq!(l3.link_header_len, 14);

    let snap_ip = frame(&[
        MACS,
        &[0x00, 0x30, 0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00],
        IPV4,
    ]);
    let l3 = decoded(LinkType::ETHERNET, &snap_ip);
    assert_eq!(
        (l3.protocol, l3.link_header_len, l3.network),
        (NetworkProtocol::Ipv4, 22, IPV4)
    );

    // SNAP with a vendor OUI (Cisco CDP) stays LLC.
    let cdp = frame(&[
        MACS,
        &[0x00, 0x30, 0xAA, 0xAA, 0x03, 0, 0, 0x0C, 0x20, 0x00],
    ]);
    let l3 = decoded(LinkType::ETHERNET, &cdp);
    assert_eq!(
        l3.protocol,
        NetworkProtocol::Llc {
            dsap: 0xAA,
            ssap: 0xAA
        }
    );

    // VLAN-tagged 802.3 frame.
    let tagged = frame(&[
        MACS,
        &[0x81, 0x00, 0x00, 0x05, 0x00, 0x10, 0xFE, 0xFE, 0x03],
    ]);
    let l3 = decoded(LinkType::ETHERNET, &tagged);
    assert_eq!(
        (l3.protocol, l3.vlan_ids.as_slice()),
        (
            NetworkProtocol::Llc {
                dsap: 0xFE,
                ssap: 0xFE
            },
            &[5][..]
        )
    );

    let short = frame(&[MACS, &[0x00, 0x10, 0x42]]);
    assert!(matches!(
        decode_link(LinkType::ETHERNET, &short),
        Err(LinkError::Truncated {
            what: "LLC header",
            needed: 17,
            ..
        })
    ));
}

// ----- Linux cooked -----

fn sll(packet_type: u16, protocol: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&packet_type.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    out.extend_from_slice(&6u16.to_be_bytes());
    out.extend_from_slice(&[1, 2, 3, 4, 5, 6, 0, 0]);
    out.extend_from_slice(&protocol.to_be_bytes());
    out
}

fn sll2(packet_type: u8, protocol: u16, ifindex: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&protocol.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&ifindex.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.push(packet_type);
    out.push(6);
    out.extend_from_slice(&[1, 2, 3, 4, 5, 6, 0, 0]);
    out
}

#[test]
fn linux_sll_packet_types_and_protocols() {
    let f = frame(&[&sll(4, 0x0800), IPV4]);
    let l3 = decoded(LinkType::LINUX_SLL, &f);
    assert_eq!(
        (l3.protocol, l3.link_header_len, l3.network),
        (NetworkProtocol::Ipv4, 16, IPV4)
    );
    assert_eq!(l3.linux_packet_type, Some(LinuxPacketType::Outgoing));
    assert_eq!(l3.direction(), Some(Direction::Outbound));
    assert_eq!(l3.linux_ifindex, None);

    let f = frame(&[&sll(0, 0x86DD), IPV6]);
    let l3 = decoded(LinkType::LINUX_SLL, &f);
    assert_eq!(
        (l3.protocol, l3.direction()),
        (NetworkProtocol::Ipv6, Some(Direction::Inbound))
    );

    let f = frame(&[&sll(1, 0x8100), &[0x00, 0x07, 0x08, 0x00], IPV4]);
    let l3 = decoded(LinkType::LINUX_SLL, &f);
    assert_eq!(
        (l3.protocol, l3.vlan_ids.as_slice(), l3.link_header_len),
        (NetworkProtocol::Ipv4, &[7][..], 20)
    );
    assert_eq!(l3.linux_packet_type, Some(LinuxPacketType::Broadcast));

    let f = frame(&[&sll(3, 0x0004), &[0x42, 0x42, 0x03]]);
    let l3 = decoded(LinkType::LINUX_SLL, &f);
    assert_eq!(
        l3.protocol,
        NetworkProtocol::Llc {
            dsap: 0x42,
            ssap: 0x42
        }
    );

    let f = sll(2, 0x0003);
    let l3 = decoded(LinkType::LINUX_SLL, &f);
    assert_eq!(
        (l3.protocol, l3.network.len()),
        (NetworkProtocol::OtherEtherType(3), 0)
    );

    let f = sll(0, 0x0806);
    assert_eq!(
        decoded(LinkType::LINUX_SLL, &f).protocol,
        NetworkProtocol::OtherEtherType(0x0806)
    );

    let short = sll(0, 0x0800);
    assert!(matches!(
        decode_link(LinkType::LINUX_SLL, &short[..15]),
        Err(LinkError::Truncated {
            needed: 16,
            available: 15,
            ..
        })
    ));
}

#[test]
fn linux_sll2_fields() {
    let f = frame(&[&sll2(0, 0x86DD, 7), IPV6]);
    let l3 = decoded(LinkType::LINUX_SLL2, &f);
    assert_eq!(
        (l3.protocol, l3.link_header_len, l3.network),
        (NetworkProtocol::Ipv6, 20, IPV6)
    );
    assert_eq!(l3.linux_ifindex, Some(7));
    assert_eq!(l3.direction(), Some(Direction::Inbound));

    let f = frame(&[&sll2(4, 0x0800, 1), IPV4]);
    assert_eq!(
        decoded(LinkType::LINUX_SLL2, &f).direction(),
        Some(Direction::Outbound)
    );

    let f = sll2(9, 0x88CC, 1);
    let l3 = decoded(LinkType::LINUX_SLL2, &f);
    assert_eq!(
        (l3.protocol, l3.linux_packet_type),
        (
            NetworkProtocol::OtherEtherType(0x88CC),
            Some(LinuxPacketType::Other(9))
        )
    );
    assert_eq!(l3.direction(), None);

    for len in [0, 10, 11, 19] {
        assert!(matches!(
            decode_link(LinkType::LINUX_SLL2, &f[..len]),
            Err(LinkError::Truncated { needed: 20, .. })
        ));
    }
}

#[test]
fn linux_packet_type_numbers_round_trip() {
    for raw in 0..=8u16 {
        assert_eq!(LinuxPacketType::from_raw(raw).raw(), raw);
    }
    assert_eq!(LinuxPacketType::Loopback.direction(), None);
    assert_eq!(
        LinuxPacketType::OtherHost.direction(),
        Some(Direction::Inbound)
    );
    assert_eq!(
        LinuxPacketType::Multicast.direction(),
        Some(Direction::Inbound)
    );
}

// ----- raw IP -----

#[test]
fn raw_ip_link_types() {
    for link in [LinkType::RAW, LinkType::RAW_12, LinkType::RAW_14] {
        let l3 = decoded(link, IPV4);
        assert_eq!(
            (l3.protocol, l3.link_header_len, l3.network),
            (NetworkProtocol::Ipv4, 0, IPV4)
        );
        assert_eq!(decoded(link, IPV6).protocol, NetworkProtocol::Ipv6);
        assert_eq!(
            decoded(link, &[0x10]).protocol,
            NetworkProtocol::OtherIpVersion(1)
        );
        assert!(matches!(
            decode_link(link, &[]),
            Err(LinkError::Truncated {
                needed: 1,
                available: 0,
                ..
            })
        ));
    }
    assert_eq!(
        decoded(LinkType::IPV4, IPV4).protocol,
        NetworkProtocol::Ipv4
    );
    assert_eq!(
        decoded(LinkType::IPV6, IPV6).protocol,
        NetworkProtocol::Ipv6
    );
    assert_eq!(
        decoded(LinkType::IPV4, IPV6).protocol,
        NetworkProtocol::OtherIpVersion(6)
    );
    assert_eq!(
        decoded(LinkType::IPV6, IPV4).protocol,
        NetworkProtocol::OtherIpVersion(4)
    );
    assert!(decode_link(LinkType::IPV6, &[]).is_err());
}

// ----- loopback -----

#[test]
fn null_loopback_families_in_both_byte_orders() {
    for (family, protocol) in [
        (2u32, NetworkProtocol::Ipv4),
        (24, NetworkProtocol::Ipv6),
        (28, NetworkProtocol::Ipv6),
        (30, NetworkProtocol::Ipv6),
        (7, NetworkProtocol::OtherAddressFamily(7)),
    ] {
        for header in [family.to_le_bytes(), family.to_be_bytes()] {
            for link in [LinkType::NULL, LinkType::LOOP] {
                let f = frame(&[&header, IPV4]);
                let l3 = decoded(link, &f);
                assert_eq!(
                    (l3.protocol, l3.link_header_len, l3.network),
                    (protocol, 4, IPV4),
                    "{link} {family}"
                );
            }
        }
    }
    assert!(matches!(
        decode_link(LinkType::NULL, &[2, 0, 0]),
        Err(LinkError::Truncated {
            needed: 4,
            available: 3,
            ..
        })
    ));
}

#[test]
fn unsupported_link_types() {
    for n in [9u32, 105, 127, 4242] {
        assert_eq!(
            decode_link(LinkType(n), IPV4).err(),
            Some(LinkError::UnsupportedLinkType(LinkType(n)))
        );
    }
    let text = LinkError::UnsupportedLinkType(LinkType::IEEE802_11_RADIOTAP).to_string();
    assert_eq!(text, "unsupported link type 802_11_RADIOTAP (127)");
}

// ----- Link-layer encapsulations -----

fn encaps(l3: &L3Packet<'_>) -> Vec<Encapsulation> {
    l3.encapsulations.iter().collect()
}

#[test]
fn pppoe_session_ipv4_ipv6_and_control_protocols() {
    // ver/type 0x11, code 0, session 0x1234, length, PPP protocol.
    let f = frame(&[
        MACS,
        &[0x88, 0x64, 0x11, 0, 0x12, 0x34, 0, 22, 0x00, 0x21],
        IPV4,
    ]);
    let l3 = decoded(LinkType::ETHERNET, &f);
    assert_eq!((l3.protocol, l3.network), (NetworkProtocol::Ipv4, IPV4));
    assert_eq!(l3.link_header_len, 22);
    assert_eq!(
        encaps(&l3),
        [Encapsulation::PppoeSession { session_id: 0x1234 }]
    );
    let f = frame(&[MACS, &[0x88, 0x64, 0x11, 0, 0, 1, 0, 10, 0x00, 0x57], IPV6]);
    assert_eq!(
        decoded(LinkType::ETHERNET, &f).protocol,
        NetworkProtocol::Ipv6
    );
    let lcp = frame(&[
        MACS,
        &[0x88, 0x64, 0x11, 0, 0, 1, 0, 6, 0xC0, 0x21, 1, 1, 0, 4],
    ]);
    assert_eq!(
        decoded(LinkType::ETHERNET, &lcp).protocol,
        NetworkProtocol::OtherPppProtocol(0xC021)
    );
    // Behind a VLAN tag, as ISPs deliver it.
    let f = frame(&[
        MACS,
        &[0x81, 0, 0, 7, 0x88, 0x64, 0x11, 0, 0, 1, 0, 22, 0, 0x21],
        IPV4,
    ]);
    let l3 = decoded(LinkType::ETHERNET, &f);
    assert_eq!((l3.vlan_ids.as_slice(), l3.network), (&[7u16][..], IPV4));
    let cut = frame(&[MACS, &[0x88, 0x64, 0x11, 0, 0, 1, 0]]);
    assert!(matches!(
        decode_link(LinkType::ETHERNET, &cut),
        Err(LinkError::Truncated {
            what: "PPPoE header",
            ..
        })
    ));
}

#[test]
fn mpls_label_stacks_ip_and_qinq_inside_a_pseudowire() {
    // Labels 100 and 200 (bottom), IPv4.
    let f = frame(&[
        MACS,
        &[0x88, 0x47, 0, 0x06, 0x40, 0x40, 0, 0x0C, 0x81, 0x40],
        IPV4,
    ]);
    let l3 = decoded(LinkType::ETHERNET, &f);
    assert_eq!((l3.protocol, l3.network), (NetworkProtocol::Ipv4, IPV4));
    assert_eq!(
        encaps(&l3),
        [Encapsulation::Mpls {
            top_label: 100,
            labels: 2
        }]
    );
    // One label, control word, a customer Ethernet frame with QinQ tags 30 and 40, IPv6.
    let f = frame(&[
        MACS,
        &[0x88, 0x47, 0, 0x01, 0x01, 0x40, 0, 0, 0, 0],
        MACS,
        &[0x88, 0xA8, 0, 30, 0x81, 0x00, 0, 40, 0x86, 0xDD],
        IPV6,
    ]);
    let l3 = decoded(LinkType::ETHERNET, &f);
    assert_eq!((l3.protocol, l3.network), (NetworkProtocol::Ipv6, IPV6));
    assert_eq!(l3.vlan_ids.as_slice(), [30, 40]);
    assert_eq!(
        encaps(&l3),
        [
            Encapsulation::Mpls {
                top_label: 16,
                labels: 1
            },
            Encapsulation::MplsPseudowire
        ]
    );
    let odd = frame(&[MACS, &[0x88, 0x47, 0, 0, 0x11, 0x40, 0x90]]);
    assert_eq!(
        decoded(LinkType::ETHERNET, &odd).protocol,
        NetworkProtocol::OtherMplsPayload(9)
    );
    // A stack with no bottom-of-stack bit is too deep, not an endless loop.
    let mut endless = frame(&[MACS, &[0x88, 0x47]]);
    endless.extend(std::iter::repeat_n([0u8, 0, 0, 0x40], 40).flatten());
    assert_eq!(
        decode_link(LinkType::ETHERNET, &endless),
        Err(LinkError::TooDeep)
    );
}

#[test]
fn pbb_itag_then_customer_frame() {
    // B-tag 5, I-TAG with I-SID 0x0ABCDE, customer MACs, C-tag 9, IPv4.
    let f = frame(&[
        MACS,
        &[0x88, 0xA8, 0, 5, 0x88, 0xE7, 0x00, 0x0A, 0xBC, 0xDE],
        MACS,
        &[0x81, 0x00, 0, 9, 0x08, 0x00],
        IPV4,
    ]);
    let l3 = decoded(LinkType::ETHERNET, &f);
    assert_eq!((l3.protocol, l3.network), (NetworkProtocol::Ipv4, IPV4));
    assert_eq!(l3.vlan_ids.as_slice(), [5, 9]);
    assert_eq!(encaps(&l3), [Encapsulation::Pbb { isid: 0x0A_BCDE }]);
    assert_eq!(Encapsulation::Pbb { isid: 1 }.name(), "PBB");
}

#[test]
fn nesting_is_bounded() {
    // PBB inside PBB, nine times: one more than MAX_ENCAP_DEPTH.
    let mut f = MACS.to_vec();
    for _ in 0..=MAX_ENCAP_DEPTH {
        f.extend_from_slice(&[0x88, 0xE7, 0, 0, 0, 1]);
        f.extend_from_slice(MACS);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(IPV4);
    assert_eq!(decode_link(LinkType::ETHERNET, &f), Err(LinkError::TooDeep));
}

#[test]
fn cisco_hdlc() {
    let f = frame(&[&[0x0F, 0x00, 0x08, 0x00], IPV4]);
    let l3 = decoded(LinkType::C_HDLC, &f);
    assert_eq!(
        (l3.protocol, l3.network, l3.link_header_len),
        (NetworkProtocol::Ipv4, IPV4, 4)
    );
    let f = frame(&[&[0x8F, 0x00, 0x86, 0xDD], IPV6]);
    assert_eq!(
        decoded(LinkType::C_HDLC, &f).protocol,
        NetworkProtocol::Ipv6
    );
    // SLARP keepalives are not IP.
    let slarp = [0x8F, 0x00, 0x80, 0x35, 0, 0, 0, 2];
    assert_eq!(
        decoded(LinkType::C_HDLC, &slarp).protocol,
        NetworkProtocol::OtherEtherType(0x8035)
    );
    assert!(matches!(
        decode_link(LinkType::C_HDLC, &[0x0F, 0]),
        Err(LinkError::Truncated { .. })
    ));
}

/// An NFLOG record: header, PACKET_HDR (hook), an interface TLV, a prefix TLV, the payload.
fn nflog_frame(family: u8, hook: u8, dev_tlv: u16, payload: &[u8], big_endian: bool) -> Vec<u8> {
    let tl = |len: u16, kind: u16| -> Vec<u8> {
        let (l, k) = if big_endian {
            (len.to_be_bytes(), kind.to_be_bytes())
        } else {
            (len.to_le_bytes(), kind.to_le_bytes())
        };
        [l, k].concat()
    };
    let mut f = vec![family, 0, 0, 0];
    f.extend(tl(8, 1));
    f.extend_from_slice(&[0x08, 0x00, hook, 0]);
    f.extend(tl(8, dev_tlv));
    f.extend_from_slice(&7u32.to_be_bytes());
    f.extend(tl(7, 10));
    f.extend_from_slice(b"log\0"); // 3 bytes and 1 of padding
    let len = u16::try_from(4 + payload.len()).expect("small");
    f.extend(tl(len, 9));
    f.extend_from_slice(payload);
    f.resize(f.len().next_multiple_of(4), 0);
    f
}

#[test]
fn nflog_payload_direction_and_interface_in_both_byte_orders() {
    for big in [false, true] {
        let f = nflog_frame(2, 1, 4, IPV4, big);
        let l3 = decoded(LinkType::NFLOG, &f);
        assert_eq!(l3.protocol, NetworkProtocol::Ipv4);
        assert_eq!(&l3.network[..IPV4.len()], IPV4);
        assert_eq!(l3.direction(), Some(Direction::Inbound));
        assert_eq!(l3.linux_ifindex, Some(7));
        let f = nflog_frame(10, 3, 5, IPV6, big);
        let l3 = decoded(LinkType::NFLOG, &f);
        assert_eq!(l3.protocol, NetworkProtocol::Ipv6);
        assert_eq!(l3.direction(), Some(Direction::Outbound));
        let f = nflog_frame(2, 2, 5, IPV4, big);
        assert_eq!(decoded(LinkType::NFLOG, &f).direction(), None);
    }
    // No payload TLV (a log rule without copy): cut short, saying what is missing.
    let f = nflog_frame(2, 1, 4, IPV4, false);
    assert!(matches!(
        decode_link(LinkType::NFLOG, &f[..28]),
        Err(LinkError::Truncated {
            what: "NFLOG payload TLV",
            ..
        })
    ));
    for n in 0..f.len() {
        let _ = decode_link(LinkType::NFLOG, &f[..n]);
    }
}
