//! Parser tests: byte vectors from the builders, an independent oracle (etherparse), property
//! tests for robustness, and the tcpdump capture corpus when present.

use std::net::IpAddr;

use proptest::prelude::*;

use crate::testutil::{self, Ip, Tcp, CLIENT4, SERVER4, TCP, V4, V6};
use crate::wire::{
    parse, parse_with, protocol, EmbeddedInfo, EmbeddedTransport, Header, IcmpEcho, IcmpKind,
    IpVersion, ParseConfig, ParseError, ParsedPacket, TcpFlags, Transport,
};

fn tcp_of(p: &ParsedPacket) -> &crate::wire::TcpInfo {
    match &p.transport {
        Transport::Tcp(t) => t,
        other => panic!("not TCP: {other:?}"),
    }
}

#[test]
fn ipv4_tcp_with_ip_and_tcp_options() {
    let ip = Ip {
        ttl: 17,
        id: 0xbeef,
        df: true,
        ..V4
    };
    let tcp = Tcp {
        seq: 0xdead_beef,
        ack: 7,
        flags: TcpFlags::PSH | TcpFlags::ACK,
        window: 512,
        options: &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
        ..TCP
    };
    let seg = testutil::tcp_segment(&ip, &tcp, b"hello world");
    let (IpAddr::V4(s), IpAddr::V4(d)) = (ip.src, ip.dst) else {
        unreachable!()
    };
    let bytes = testutil::ipv4_packet(&ip, s, d, protocol::TCP, &[0x94, 4, 0, 0], &seg);
    let p = parse(&bytes).unwrap();
    assert_eq!(p.ip.version, IpVersion::V4);
    assert_eq!((p.ip.src, p.ip.dst), (CLIENT4, SERVER4));
    assert_eq!((p.ip.protocol, p.ip.hop_limit), (protocol::TCP, 17));
    assert_eq!((p.ip.header_len, p.ip.total_len), (24, bytes.len()));
    assert!(p.ip.fragment.is_none());
    let t = tcp_of(&p);
    assert_eq!(
        (t.src_port, t.dst_port, t.seq, t.ack, t.window),
        (40000, 80, 0xdead_beef, 7, 512)
    );
    assert_eq!(t.flags, TcpFlags::PSH | TcpFlags::ACK);
    assert_eq!(t.header_len, 32);
    assert_eq!(&bytes[t.payload.clone()], b"hello world");
    assert_eq!(p.ports(), Some((40000, 80)));
}

#[test]
fn link_padding_is_ignored_and_truncation_is_an_error() {
    let mut bytes = testutil::udp_packet(&V4, 5353, 53, b"q");
    let len = bytes.len();
    bytes.extend_from_slice(&[0xee; 17]); // Ethernet padding
    let p = parse(&bytes).unwrap();
    assert_eq!(p.ip.total_len, len);
    let Transport::Udp(u) = &p.transport else {
        panic!()
    };
    assert_eq!(&bytes[u.payload.clone()], b"q");
    for cut in 0..len {
        assert!(
            parse(&bytes[..cut]).is_err(),
            "prefix of {cut} bytes parsed"
        );
    }
}

#[test]
fn ipv4_checksum_is_checked_unless_disabled() {
    let mut bytes = testutil::udp_packet(&V4, 1, 2, b"");
    bytes[8] = bytes[8].wrapping_add(1); // TTL
    assert!(matches!(
        parse(&bytes),
        Err(ParseError::Ipv4Checksum { .. })
    ));
    let lax = ParseConfig {
        verify_ipv4_checksum: false,
        ..ParseConfig::default()
    };
    let p = parse_with(&bytes, &lax).unwrap();
    assert!(!p.ip.checksum_ok, "the mismatch is reported, not an error");
    assert!(
        parse(&testutil::udp_packet(&V4, 1, 2, b""))
            .unwrap()
            .ip
            .checksum_ok
    );
    // A zero checksum (offloaded by the capturing host) is a mismatch like any other.
    bytes[10] = 0;
    bytes[11] = 0;
    assert!(matches!(
        parse(&bytes),
        Err(ParseError::Ipv4Checksum { stored: 0, .. })
    ));
    assert!(!parse_with(&bytes, &lax).unwrap().ip.checksum_ok);
    assert!(
        parse(&testutil::udp_packet(&V6, 1, 2, b""))
            .unwrap()
            .ip
            .checksum_ok
    );
}

#[test]
fn ipv6_extension_headers_before_tcp() {
    let seg = testutil::tcp_segment(
        &V6,
        &Tcp {
            flags: TcpFlags::SYN,
            seq: 9,
            ..TCP
        },
        b"",
    );
    let exts = [
        (protocol::HOP_BY_HOP, testutil::ext8()),
        (protocol::IPV6_ROUTE, testutil::ext8()),
        (protocol::IPV6_OPTS, testutil::ext8()),
    ];
    let bytes = testutil::ipv6_with_ext(&V6, &exts, protocol::TCP, &seg);
    let p = parse(&bytes).unwrap();
    assert_eq!(p.ip.version, IpVersion::V6);
    assert_eq!(p.ip.protocol, protocol::TCP);
    assert_eq!(p.ip.header_len, 40 + 24);
    let t = tcp_of(&p);
    assert_eq!((t.seq, t.flags), (9, TcpFlags::SYN));
    assert_eq!(t.payload, bytes.len()..bytes.len());
}

#[test]
fn esp_and_no_next_header_stop_the_walk() {
    let bytes = testutil::ipv6_with_ext(&V6, &[], protocol::ESP, &[0; 16]);
    assert_eq!(
        parse(&bytes).unwrap().transport,
        Transport::Other(protocol::ESP)
    );
    let exts = [(protocol::IPV6_OPTS, testutil::ext8())];
    let bytes = testutil::ipv6_with_ext(&V6, &exts, protocol::IPV6_NO_NEXT, &[]);
    let p = parse(&bytes).unwrap();
    assert_eq!(p.transport, Transport::Other(protocol::IPV6_NO_NEXT));
    assert_eq!(p.ip.header_len, 48);
    // ICMPv6 carried over IPv4 is just another protocol.
    let bytes = testutil::ip_packet(&V4, protocol::ICMPV6, &[128, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        parse(&bytes).unwrap().transport,
        Transport::Other(protocol::ICMPV6)
    );
}

#[test]
fn fragments_are_not_parsed_past_ip() {
    let packet = testutil::udp_packet(&V4, 1000, 2000, &[7; 100]);
    let frags = testutil::fragment(&packet, &[48], 0x4242, 0);
    let first = parse(&frags[0]).unwrap();
    assert_eq!(first.transport, Transport::Fragment);
    let f = first.ip.fragment.unwrap();
    assert_eq!(
        (f.id, f.offset, f.more, f.next_header),
        (0x4242, 0, true, protocol::UDP)
    );
    let last = parse(&frags[1]).unwrap().ip.fragment.unwrap();
    assert_eq!((last.offset, last.more), (48, false));

    let packet = testutil::udp_packet(&V6, 1000, 2000, &[7; 100]);
    let frags = testutil::fragment(&packet, &[56], 77, 40);
    let p = parse(&frags[1]).unwrap();
    assert_eq!(p.transport, Transport::Fragment);
    let f = p.ip.fragment.unwrap();
    assert_eq!(
        (f.id, f.offset, f.more, f.next_header),
        (77, 56, false, protocol::UDP)
    );
    assert_eq!(
        (f.unfragmentable_len, f.next_header_pos, f.data_offset),
        (40, 6, 48)
    );
}

#[test]
fn icmp_echo_both_versions() {
    let p = parse(&testutil::echo(&V4, false, 0x77, 3, b"abc")).unwrap();
    let Transport::Icmp(i) = &p.transport else {
        panic!()
    };
    assert_eq!((i.icmp_type, i.code, i.kind), (8, 0, IcmpKind::Query));
    assert_eq!(i.echo, Some(IcmpEcho { id: 0x77, seq: 3 }));
    let p = parse(&testutil::echo(&V6, true, 0x78, 4, b"")).unwrap();
    let Transport::Icmp(i) = &p.transport else {
        panic!()
    };
    assert_eq!((i.icmp_type, i.kind), (129, IcmpKind::Query));
    assert_eq!(i.echo, Some(IcmpEcho { id: 0x78, seq: 4 }));
}

#[test]
fn icmp_errors_embed_the_offending_packet() {
    // A router tells the client its TCP SYN to the server could not be delivered.
    let syn = testutil::tcp_packet(
        &V4,
        &Tcp {
            flags: TcpFlags::SYN,
            ..TCP
        },
        b"",
    );
    let router = Ip {
        src: "203.0.113.1".parse().unwrap(),
        dst: CLIENT4,
        ..V4
    };
    let err = testutil::icmp_packet(&router, 3, 1, [0; 4], &syn[..28]);
    let p = parse(&err).unwrap();
    let Transport::Icmp(i) = &p.transport else {
        panic!()
    };
    assert_eq!(i.kind, IcmpKind::Error);
    assert_eq!(
        i.embedded,
        Some(EmbeddedInfo {
            version: IpVersion::V4,
            src: CLIENT4,
            dst: SERVER4,
            protocol: protocol::TCP,
            transport: EmbeddedTransport::Ports {
                src_port: 40000,
                dst_port: 80
            },
        })
    );

    // ICMPv6 time exceeded quoting a UDP datagram behind a destination-options header.
    let exts = [(protocol::IPV6_OPTS, testutil::ext8())];
    let udp = testutil::udp_datagram(&V6, 33434, 33435, &[0; 32]);
    let inner = testutil::ipv6_with_ext(&V6, &exts, protocol::UDP, &udp);
    let router = Ip {
        src: "2001:db8:ffff::1".parse().unwrap(),
        dst: V6.src,
        ..V6
    };
    let err = testutil::icmp_packet(&router, 3, 0, [0; 4], &inner[..60]);
    let Transport::Icmp(i) = parse(&err).unwrap().transport else {
        panic!()
    };
    let e = i.embedded.unwrap();
    assert_eq!((e.protocol, e.src, e.dst), (protocol::UDP, V6.src, V6.dst));
    assert_eq!(
        e.transport,
        EmbeddedTransport::Ports {
            src_port: 33434,
            dst_port: 33435
        }
    );

    // An error quoting an echo request.
    let ping = testutil::echo(&V4, false, 0x99, 1, b"payload");
    let err = testutil::icmp_packet(&router_v4(), 11, 0, [0; 4], &ping);
    let Transport::Icmp(i) = parse(&err).unwrap().transport else {
        panic!()
    };
    assert_eq!(
        i.embedded.unwrap().transport,
        EmbeddedTransport::Icmp {
            icmp_type: 8,
            code: 0,
            id: Some(0x99)
        }
    );
}

fn router_v4() -> Ip {
    Ip {
        src: "203.0.113.1".parse().unwrap(),
        dst: CLIENT4,
        ..V4
    }
}

#[test]
fn named_errors() {
    assert_eq!(
        parse(&[]),
        Err(ParseError::Truncated {
            header: Header::Ipv4,
            needed: 1,
            available: 0
        })
    );
    assert_eq!(
        parse(&[0x50; 40]),
        Err(ParseError::UnknownVersion { version: 5 })
    );
    let mut bytes = testutil::tcp_packet(&V4, &TCP, b"");
    bytes[32] = 0x40; // data offset 4 words
    assert_eq!(
        parse(&bytes),
        Err(ParseError::TcpDataOffset {
            data_offset: 16,
            available: 20
        })
    );
    let mut bytes = testutil::udp_packet(&V6, 1, 2, b"xy");
    bytes[45] = 11; // UDP length 11 > 10
    assert_eq!(
        parse(&bytes),
        Err(ParseError::UdpLength {
            length: 11,
            available: 10
        })
    );
    let bytes = testutil::ip_packet(&V4, protocol::ICMP, &[8, 0, 0]);
    assert_eq!(
        parse(&bytes),
        Err(ParseError::Truncated {
            header: Header::Icmp,
            needed: 8,
            available: 3
        })
    );
}

// ---- independent oracle: packets built by etherparse ----

fn v4_octets(a: IpAddr) -> [u8; 4] {
    match a {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => unreachable!(),
    }
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => unreachable!(),
    }
}

#[test]
fn agrees_with_etherparse_builder() {
    use etherparse::PacketBuilder;
    let payload = b"GET / HTTP/1.1\r\n\r\n";

    let mut bytes = Vec::new();
    PacketBuilder::ipv4(v4_octets(CLIENT4), v4_octets(SERVER4), 33)
        .tcp(51000, 443, 123_456, 1024)
        .syn()
        .ack(99)
        .write(&mut bytes, payload)
        .unwrap();
    let p = parse(&bytes).unwrap();
    assert_eq!(p.ip.hop_limit, 33);
    let t = tcp_of(&p);
    assert_eq!(
        (t.src_port, t.dst_port, t.seq, t.ack, t.window),
        (51000, 443, 123_456, 99, 1024)
    );
    assert_eq!(t.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(&bytes[t.payload.clone()], payload);

    let mut bytes = Vec::new();
    PacketBuilder::ipv6(v6_octets(V6.src), v6_octets(V6.dst), 5)
        .udp(53, 5353)
        .write(&mut bytes, payload)
        .unwrap();
    let p = parse(&bytes).unwrap();
    assert_eq!((p.ip.src, p.ip.dst, p.ip.hop_limit), (V6.src, V6.dst, 5));
    let Transport::Udp(u) = &p.transport else {
        panic!()
    };
    assert_eq!((u.src_port, u.dst_port), (53, 5353));
    assert_eq!(&bytes[u.payload.clone()], payload);

    let mut bytes = Vec::new();
    PacketBuilder::ipv4(v4_octets(CLIENT4), v4_octets(SERVER4), 64)
        .icmpv4_echo_request(7, 8)
        .write(&mut bytes, payload)
        .unwrap();
    let Transport::Icmp(i) = parse(&bytes).unwrap().transport else {
        panic!()
    };
    assert_eq!(i.echo, Some(IcmpEcho { id: 7, seq: 8 }));

    let mut bytes = Vec::new();
    PacketBuilder::ipv6(v6_octets(V6.src), v6_octets(V6.dst), 64)
        .icmpv6_echo_request(9, 10)
        .write(&mut bytes, payload)
        .unwrap();
    let Transport::Icmp(i) = parse(&bytes).unwrap().transport else {
        panic!()
    };
    assert_eq!(
        (i.icmp_type, i.echo),
        (128, Some(IcmpEcho { id: 9, seq: 10 }))
    );
}

/// Where both parsers accept a packet, they agree on addresses, protocol and ports.
fn compare_with_etherparse(bytes: &[u8]) {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let lax = ParseConfig {
        verify_ipv4_checksum: false,
        ..ParseConfig::default()
    };
    let (Ok(ours), Ok(theirs)) = (parse_with(bytes, &lax), SlicedPacket::from_ip(bytes)) else {
        return;
    };
    match &theirs.net {
        Some(NetSlice::Ipv4(v4)) => {
            assert_eq!(ours.ip.src, IpAddr::V4(v4.header().source_addr()));
            assert_eq!(ours.ip.dst, IpAddr::V4(v4.header().destination_addr()));
        }
        Some(NetSlice::Ipv6(v6)) => {
            assert_eq!(ours.ip.src, IpAddr::V6(v6.header().source_addr()));
            assert_eq!(ours.ip.dst, IpAddr::V6(v6.header().destination_addr()));
        }
        _ => return,
    }
    match (&theirs.transport, &ours.transport) {
        (Some(TransportSlice::Tcp(t)), Transport::Tcp(o)) => {
            assert_eq!(
                (o.src_port, o.dst_port),
                (t.source_port(), t.destination_port())
            );
            assert_eq!(
                (o.seq, o.ack),
                (t.sequence_number(), t.acknowledgment_number())
            );
        }
        (Some(TransportSlice::Udp(u)), Transport::Udp(o)) => {
            assert_eq!(
                (o.src_port, o.dst_port),
                (u.source_port(), u.destination_port())
            );
        }
        _ => {}
    }
}

fn valid_packet() -> impl Strategy<Value = Vec<u8>> {
    let payload = proptest::collection::vec(any::<u8>(), 0..64);
    (0u8..6, payload, any::<u32>(), any::<u16>()).prop_map(|(kind, payload, seq, port)| {
        let tcp = Tcp {
            seq,
            sport: port,
            flags: TcpFlags::from_bits(seq as u16),
            ..TCP
        };
        match kind {
            0 => testutil::tcp_packet(&V4, &tcp, &payload),
            1 => testutil::tcp_packet(&V6, &tcp, &payload),
            2 => testutil::udp_packet(&V4, port, 53, &payload),
            3 => testutil::udp_packet(&V6, port, 53, &payload),
            4 => testutil::echo(&V4, seq % 2 == 0, port, 1, &payload),
            _ => {
                let exts = [(protocol::HOP_BY_HOP, testutil::ext8())];
                let seg = testutil::tcp_segment(&V6, &tcp, &payload);
                testutil::ipv6_with_ext(&V6, &exts, protocol::TCP, &seg)
            }
        }
    })
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&bytes);
        let mut v6 = bytes.clone();
        if let Some(b) = v6.first_mut() {
            *b = 0x60 | (*b & 0x0f);
        }
        let _ = parse(&v6);
        let mut v4 = bytes;
        if let Some(b) = v4.first_mut() {
            *b = 0x40 | (*b & 0x0f);
        }
        let _ = parse_with(&v4, &ParseConfig { verify_ipv4_checksum: false, truncated: true });
        let _ = parse_with(&v4, &ParseConfig { verify_ipv4_checksum: false, ..ParseConfig::default() });
        let _ = parse_with(&v6, &ParseConfig { truncated: true, ..ParseConfig::default() });
    }

    #[test]
    fn mutated_packets_never_panic_and_agree_with_etherparse(
        packet in valid_packet(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let mut bytes = packet;
        for (at, value) in flips {
            let n = bytes.len();
            bytes[at % n] = value;
        }
        let len = bytes.len();
        bytes.truncate(len - cut % 8);
        let lax = ParseConfig { verify_ipv4_checksum: false, ..ParseConfig::default() };
        if let Ok(p) = parse_with(&bytes, &lax) {
            // Every range handed out lies inside the buffer.
            prop_assert!(p.ip.total_len <= bytes.len());
            prop_assert!(p.ip.header_len <= p.ip.total_len);
            prop_assert_eq!(p.ip.captured_len, p.ip.total_len);
            if let Some(r) = p.payload() {
                prop_assert!(r.start <= r.end && r.end <= p.ip.total_len);
            }
        }
        let cut_cfg = ParseConfig { truncated: true, ..lax };
        if let Ok(p) = parse_with(&bytes, &cut_cfg) {
            // The same in truncated mode, against the bytes that exist.
            prop_assert!(p.ip.captured_len <= bytes.len());
            prop_assert!(p.ip.captured_len <= p.ip.total_len);
            prop_assert!(p.ip.header_len <= p.ip.captured_len || p.ip.fragment.is_some());
            if let Some(r) = p.payload() {
                prop_assert!(r.start <= r.end && r.end <= p.ip.captured_len);
            }
        }
        compare_with_etherparse(&bytes);
    }

    /// A packet cut anywhere after its headers parses in truncated mode to the same addresses,
    /// protocol, ports and flags as the whole packet, with payload ranges inside the bytes kept;
    /// cut inside its headers it is `CaptureCut`; without the flag it is never accepted short.
    #[test]
    fn cut_packets_parse_from_their_headers(packet in valid_packet(), cut in any::<usize>()) {
        let whole = parse(&packet).unwrap();
        let headers = match &whole.transport {
            Transport::Tcp(t) => whole.ip.header_len + t.header_len,
            Transport::Udp(_) | Transport::Icmp(_) => whole.ip.header_len + 8,
            _ => whole.ip.header_len,
        };
        let keep = cut % (packet.len() + 1);
        let bytes = &packet[..keep];
        let lax = ParseConfig { truncated: true, ..ParseConfig::default() };
        let r = parse_with(bytes, &lax);
        if keep >= headers {
            let p = r.unwrap();
            prop_assert_eq!(&p.ip.src, &whole.ip.src);
            prop_assert_eq!(&p.ip.dst, &whole.ip.dst);
            prop_assert_eq!(p.ip.protocol, whole.ip.protocol);
            prop_assert_eq!(p.ip.total_len, whole.ip.total_len);
            prop_assert_eq!(p.ip.captured_len, keep);
            prop_assert_eq!(p.ports(), whole.ports());
            prop_assert_eq!(p.is_truncated(), keep < packet.len());
            match (&p.transport, &whole.transport) {
                (Transport::Tcp(a), Transport::Tcp(b)) => {
                    prop_assert_eq!((a.seq, a.ack, a.flags), (b.seq, b.ack, b.flags));
                    prop_assert_eq!(a.wire_payload_len, b.payload.len());
                }
                (Transport::Udp(a), Transport::Udp(b)) => {
                    prop_assert_eq!(a.wire_payload_len, b.payload.len());
                }
                (Transport::Icmp(a), Transport::Icmp(b)) => {
                    prop_assert_eq!((a.icmp_type, a.code, a.echo), (b.icmp_type, b.code, b.echo));
                }
                (a, b) => prop_assert!(false, "{a:?} vs {b:?}"),
            }
            let range = p.payload().unwrap();
            let full = whole.payload().unwrap();
            prop_assert_eq!(range.start, full.start);
            prop_assert_eq!(range.end, full.end.min(keep));
        } else {
            prop_assert!(
                matches!(r, Err(ParseError::CaptureCut { .. })),
                "cut at {} inside {} header bytes: {:?}", keep, headers, r
            );
        }
        if keep < packet.len() {
            prop_assert!(parse(bytes).is_err(), "without the flag a short packet is malformed");
        }
    }
}

#[test]
fn truncated_mode_keeps_the_errors_of_packets_that_contradict_themselves() {
    let lax = ParseConfig {
        truncated: true,
        ..ParseConfig::default()
    };
    // UDP length beyond the IP payload: malformed whatever the capture kept.
    let mut udp = testutil::udp_packet(&V4, 1000, 53, b"0123456789");
    udp[24..26].copy_from_slice(&40u16.to_be_bytes());
    assert_eq!(
        parse_with(&udp[..30], &lax),
        Err(ParseError::UdpLength {
            length: 40,
            available: 18
        })
    );
    // IPv4 total length below the header length.
    let mut v4 = testutil::udp_packet(&V4, 1000, 53, b"");
    v4[2..4].copy_from_slice(&10u16.to_be_bytes());
    assert!(matches!(
        parse_with(
            &v4,
            &ParseConfig {
                verify_ipv4_checksum: false,
                ..lax
            }
        ),
        Err(ParseError::Ipv4TotalLen { .. })
    ));
    // A TCP data offset beyond the segment's own length.
    let mut tcp = testutil::tcp_packet(&V4, &TCP, b"");
    tcp[32] = 0xf0; // data offset 60 > 20-byte segment
    assert!(matches!(
        parse_with(&tcp, &lax),
        Err(ParseError::TcpDataOffset {
            data_offset: 60,
            available: 20
        })
    ));
    // An IPv6 extension header running past the payload length.
    let ext = testutil::ipv6_with_ext(&V6, &[(protocol::IPV6_OPTS, testutil::ext8())], 17, &[]);
    let mut short = ext.clone();
    short[41] = 3; // the options header claims 32 bytes, the payload length says 8
    assert!(matches!(
        parse_with(&short, &lax),
        Err(ParseError::Truncated {
            header: Header::Ipv6Extension,
            ..
        })
    ));
}

#[test]
fn headers_cut_by_the_capture_say_so() {
    let lax = ParseConfig {
        truncated: true,
        ..ParseConfig::default()
    };
    let tcp = testutil::tcp_packet(&V4, &TCP, b"payload");
    let e = parse_with(&tcp[..30], &lax).unwrap_err();
    assert_eq!(
        e,
        ParseError::CaptureCut {
            header: Header::Tcp,
            needed: 20,
            available: 10
        }
    );
    assert_eq!(
        e.to_string(),
        "TCP header cut by the capture: 20 bytes needed, 10 captured"
    );
    assert_eq!(
        parse_with(&tcp[..12], &lax),
        Err(ParseError::CaptureCut {
            header: Header::Ipv4,
            needed: 20,
            available: 12
        })
    );
    // IPv4 options cut.
    let opts = testutil::ipv4_packet(
        &V4,
        std::net::Ipv4Addr::new(192, 0, 2, 10),
        std::net::Ipv4Addr::new(198, 51, 100, 20),
        protocol::UDP,
        &[1, 1, 1, 0],
        &[0; 8],
    );
    assert_eq!(
        parse_with(&opts[..22], &lax),
        Err(ParseError::CaptureCut {
            header: Header::Ipv4,
            needed: 24,
            available: 22
        })
    );
    // TCP options cut.
    let with_opts = Tcp {
        options: &[2, 4, 5, 0xb4],
        ..TCP
    };
    let tcp = testutil::tcp_packet(&V6, &with_opts, b"data");
    assert_eq!(
        parse_with(&tcp[..62], &lax),
        Err(ParseError::CaptureCut {
            header: Header::Tcp,
            needed: 24,
            available: 22
        })
    );
    // An IPv6 extension header the walk needs.
    let ext = testutil::ipv6_with_ext(
        &V6,
        &[(protocol::IPV6_OPTS, testutil::ext8())],
        protocol::UDP,
        &testutil::udp_datagram(&V6, 1, 2, b"x"),
    );
    assert_eq!(
        parse_with(&ext[..44], &lax),
        Err(ParseError::CaptureCut {
            header: Header::Ipv6Extension,
            needed: 48,
            available: 44
        })
    );
    // UDP and ICMP headers.
    let udp = testutil::udp_packet(&V6, 1, 2, b"x");
    assert!(matches!(
        parse_with(&udp[..45], &lax),
        Err(ParseError::CaptureCut {
            header: Header::Udp,
            ..
        })
    ));
    let icmp = testutil::echo(&V4, false, 1, 1, b"ping");
    assert!(matches!(
        parse_with(&icmp[..24], &lax),
        Err(ParseError::CaptureCut {
            header: Header::Icmp,
            ..
        })
    ));
    // Without the flag the same bytes are `Truncated`, as for any short packet.
    assert!(matches!(
        parse(&udp[..45]),
        Err(ParseError::Truncated {
            header: Header::Ipv6,
            ..
        })
    ));
}

#[test]
fn a_cut_ipv6_udp_datagram_keeps_its_ports_and_wire_length() {
    let payload = [7u8; 1200];
    let bytes = testutil::udp_packet(&V6, 50000, 443, &payload);
    let lax = ParseConfig {
        truncated: true,
        ..ParseConfig::default()
    };
    let p = parse_with(&bytes[..252], &lax).unwrap();
    assert!(p.is_truncated());
    assert_eq!((p.ip.total_len, p.ip.captured_len), (1248, 252));
    assert_eq!(p.ports(), Some((50000, 443)));
    let Transport::Udp(u) = &p.transport else {
        panic!("not UDP")
    };
    assert_eq!(u.payload, 48..252);
    assert_eq!(u.wire_payload_len, 1200);
    // A whole packet is the same in both modes.
    assert_eq!(parse_with(&bytes, &lax), parse(&bytes));
    assert!(!parse(&bytes).unwrap().is_truncated());
}

// ---- the tcpdump capture corpus ----

/// Every IP packet of every classic-pcap capture in `../shared/data/pcaps/tcpdump` (link types
/// Ethernet, raw IP, Linux SLL/SLL2, BSD loopback) goes through the parser, the fragment
/// reassembler, the flow table and the stream reassembler without a panic.
#[test]
fn tcpdump_corpus_never_panics() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/pcaps/tcpdump");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("note: {} absent, corpus test skipped", dir.display());
        return;
    };
    let mut pipeline = super::conversation::Pipeline::new();
    let (mut files, mut packets, mut parsed, mut parsed_cut) = (0, 0, 0, 0);
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let Ok(data) = std::fs::read(&path) else {
            continue;
        };
        let Some(capture) = pcap::Capture::new(&data) else {
            continue;
        };
        files += 1;
        for (ts, frame) in capture {
            let Some(ip) = pcap::ip_of(capture_link(&data), frame) else {
                continue;
            };
            packets += 1;
            if parse(ip).is_ok() {
                parsed += 1;
            }
            let cut = ParseConfig {
                truncated: true,
                ..ParseConfig::default()
            };
            if let Ok(p) = parse_with(ip, &cut) {
                parsed_cut += 1;
                assert!(p.ip.captured_len <= ip.len());
            }
            pipeline.feed(
                crate::Timestamp::from_nanos(ts),
                crate::Direction::Inbound,
                ip,
            );
        }
    }
    eprintln!(
        "tcpdump corpus: {files} pcap files, {packets} IP packets, {parsed} parsed \
         ({parsed_cut} as possibly cut by the snapshot length)"
    );
    assert!(parsed_cut >= parsed);
}

fn capture_link(data: &[u8]) -> u32 {
    pcap::Capture::new(data).map_or(0, |c| c.link)
}

/// A minimal classic-pcap reader for the corpus test (pcapng files are skipped).
mod pcap {
    pub(super) struct Capture<'a> {
        data: &'a [u8],
        at: usize,
        big: bool,
        nanos: bool,
        pub(super) link: u32,
    }

    impl<'a> Capture<'a> {
        pub(super) fn new(data: &'a [u8]) -> Option<Self> {
            let magic = u32::from_le_bytes(data.get(..4)?.try_into().ok()?);
            let (big, nanos) = match magic {
                0xa1b2_c3d4 => (false, false),
                0xa1b2_3c4d => (false, true),
                0xd4c3_b2a1 => (true, false),
                0x4d3c_b2a1 => (true, true),
                _ => return None,
            };
            let mut c = Self {
                data,
                at: 24,
                big,
                nanos,
                link: 0,
            };
            c.link = c.u32_at(20)? & 0x0fff_ffff;
            Some(c)
        }

        fn u32_at(&self, at: usize) -> Option<u32> {
            let b: [u8; 4] = self.data.get(at..at + 4)?.try_into().ok()?;
            Some(if self.big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            })
        }
    }

    impl<'a> Iterator for Capture<'a> {
        type Item = (u64, &'a [u8]);

        fn next(&mut self) -> Option<Self::Item> {
            let secs = u64::from(self.u32_at(self.at)?);
            let frac = u64::from(self.u32_at(self.at + 4)?);
            let caplen = self.u32_at(self.at + 8)? as usize;
            let start = self.at + 16;
            let frame = self.data.get(start..start.checked_add(caplen)?)?;
            self.at = start + caplen;
            let ts = secs * 1_000_000_000 + if self.nanos { frac } else { frac * 1000 };
            Some((ts, frame))
        }
    }

    /// The IP packet inside a frame of link type `link`.
    pub(super) fn ip_of(link: u32, frame: &[u8]) -> Option<&[u8]> {
        let ethertype_ok = |t: u16| t == 0x0800 || t == 0x86dd;
        match link {
            // Ethernet, with up to two VLAN tags.
            1 => {
                let mut at = 12;
                loop {
                    let t = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
                    if t == 0x8100 || t == 0x88a8 {
                        at += 4;
                        continue;
                    }
                    return ethertype_ok(t).then(|| frame.get(at + 2..)).flatten();
                }
            }
            // Raw IP.
            12 | 14 | 101 | 228 | 229 => Some(frame),
            // BSD loopback.
            0 | 108 => frame.get(4..),
            // Linux cooked v1.
            113 => {
                let t = u16::from_be_bytes(frame.get(14..16)?.try_into().ok()?);
                ethertype_ok(t).then(|| frame.get(16..)).flatten()
            }
            // Linux cooked v2.
            276 => {
                let t = u16::from_be_bytes(frame.get(0..2)?.try_into().ok()?);
                ethertype_ok(t).then(|| frame.get(20..)).flatten()
            }
            _ => None,
        }
    }
}
