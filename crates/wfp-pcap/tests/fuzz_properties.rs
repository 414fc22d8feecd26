//! Fuzz-style properties: random bytes and random mutations of valid captures go through the
//! reader and the link decoder. Nothing panics, errors are consistent with what was returned,
//! and written captures read back identically.

use proptest::prelude::*;
use wfp_pcap::{
    decode_link, CaptureReader, CaptureWriter, CapturedPacket, Direction, LinkType, PcapNgWriter,
    TimestampPrecision, MAX_CAPTURED_LEN,
};

const LINK_TYPES: [LinkType; 12] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW_12,
    LinkType::RAW_14,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
    LinkType::PPP,
    LinkType(0xFFFF),
];

/// Reads `bytes` to the end, decoding every packet; checks the error contract.
fn exercise(bytes: &[u8]) -> u64 {
    let Ok(mut reader) = CaptureReader::new(bytes) else {
        return 0;
    };
    let mut count = 0u64;
    loop {
        match reader.next_packet_ref() {
            Ok(Some(packet)) => {
                assert_eq!(packet.index, count);
                assert!(packet.data.len() <= bytes.len());
                if let Ok(l3) = packet.decode_link() {
                    assert_eq!(l3.link_header_len + l3.network.len(), packet.data.len());
                }
                count += 1;
            }
            Ok(None) => break,
            Err(e) => {
                assert_eq!(e.packet_index(), count);
                assert!(e.offset() <= bytes.len() as u64);
                assert!(!e.to_string().is_empty());
                assert!(
                    reader.next_packet().is_ok_and(|p| p.is_none()),
                    "fused after error"
                );
                break;
            }
        }
    }
    count
}

fn frames() -> Vec<Vec<u8>> {
    let ipv4 = [
        0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let mut eth = vec![0u8; 12];
    eth.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
    eth.extend_from_slice(&ipv4);
    let mut sll = vec![0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ipv4);
    vec![eth, sll, ipv4.to_vec(), vec![2, 0, 0, 0, 0x60, 0, 0, 0]]
}

/// A classic capture of a few frames.
fn classic_capture() -> Vec<u8> {
    let mut writer =
        CaptureWriter::with_precision(Vec::new(), LinkType::ETHERNET, TimestampPrecision::Nano)
            .unwrap_or_else(|e| panic!("{e}"));
    for (i, frame) in frames().iter().enumerate() {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        writer
            .write_packet(1_000 * i as u64, len + 4, frame)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    writer.finish().unwrap_or_default()
}

fn ng_block(block_type: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let len = u32::try_from(body.len() + 12).unwrap_or(u32::MAX);
    [
        &block_type.to_le_bytes()[..],
        &len.to_le_bytes(),
        &body,
        &len.to_le_bytes(),
    ]
    .concat()
}

/// A pcapng capture with two interfaces, EPB, SPB, OPB and an unknown block.
fn pcapng_capture() -> Vec<u8> {
    let shb_body = [
        &0x1A2B_3C4Du32.to_le_bytes()[..],
        &1u16.to_le_bytes(),
        &0u16.to_le_bytes(),
        &[0xFF; 8],
    ]
    .concat();
    let tsresol = [9u8, 0, 1, 0, 9, 0, 0, 0];
    let idb_eth = [
        &1u16.to_le_bytes()[..],
        &[0, 0],
        &0u32.to_le_bytes(),
        &tsresol,
    ]
    .concat();
    let idb_sll = [&113u16.to_le_bytes()[..], &[0, 0], &0u32.to_le_bytes()].concat();
    let frames = frames();
    let mut out = ng_block(0x0A0D_0D0A, &shb_body);
    out.extend(ng_block(1, &idb_eth));
    out.extend(ng_block(1, &idb_sll));
    for (i, frame) in frames.iter().enumerate() {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let iface = u32::from(i == 1);
        let epb = [
            &iface.to_le_bytes()[..],
            &0u32.to_le_bytes(),
            &(i as u32).to_le_bytes(),
            &len.to_le_bytes(),
            &len.to_le_bytes(),
            frame,
        ]
        .concat();
        out.extend(ng_block(6, &epb));
    }
    out.extend(ng_block(0x4242, b"skip me"));
    if let Some(first) = frames.first() {
        let len = u32::try_from(first.len()).unwrap_or(u32::MAX);
        out.extend(ng_block(3, &[&len.to_le_bytes()[..], first].concat()));
        let opb = [
            &0u16.to_le_bytes()[..],
            &[0, 0],
            &0u32.to_le_bytes(),
            &9u32.to_le_bytes(),
            &len.to_le_bytes(),
            &len.to_le_bytes(),
            first,
        ]
        .concat();
        out.extend(ng_block(2, &opb));
    }
    out
}

#[derive(Clone, Debug)]
enum Mutation {
    Overwrite(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    /// Writes a 32-bit value (a plausible length field) at a position.
    Word(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
        2 => (any::<usize>(), prop_oneof![Just(0u32), Just(3), Just(12), Just(MAX_CAPTURED_LEN + 1), Just(u32::MAX), any::<u32>()])
            .prop_map(|(i, w)| Mutation::Word(i, w)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::Overwrite(i, b) => {
            if let Some(slot) = bytes.get_mut(i % len) {
                *slot = *b;
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::Insert(i, v) => {
            let at = i % len;
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let at = i % len;
            let end = (at + n).min(len);
            bytes.drain(at..end);
        }
        Mutation::Word(i, w) => {
            let at = (i % len) & !3;
            for (k, b) in w.to_le_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + k) {
                    *slot = b;
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bodies_behind_valid_magics_never_panic(
        magic in prop_oneof![
            Just(vec![0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0]),
            Just(vec![0xA1, 0xB2, 0x3C, 0x4D, 0, 2, 0, 4]),
            Just(vec![0x0A, 0x0D, 0x0D, 0x0A, 28, 0, 0, 0, 0x4D, 0x3C, 0x2B, 0x1A, 1, 0, 0, 0]),
            Just(vec![0x0A, 0x0D, 0x0D, 0x0A, 0, 0, 0, 28, 0x1A, 0x2B, 0x3C, 0x4D, 0, 1, 0, 0]),
        ],
        rest in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        exercise(&[magic, rest].concat());
    }

    #[test]
    fn mutated_captures_never_panic(
        pcapng in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let mut bytes = if pcapng { pcapng_capture() } else { classic_capture() };
        for m in &mutations {
            apply(&mut bytes, m);
        }
        exercise(&bytes);
    }

    #[test]
    fn decode_link_never_panics(
        link in prop_oneof![proptest::sample::select(LINK_TYPES.to_vec()), any::<u32>().prop_map(LinkType)],
        frame in proptest::collection::vec(any::<u8>(), 0..96),
        ethertype in prop_oneof![Just(0x8100u16), Just(0x88A8), Just(0x0800), Just(0x86DD), Just(0x0026), any::<u16>()],
    ) {
        // Also aim at the type field of Ethernet (offset 12) and SLL (offset 14).
        let mut aimed = frame.clone();
        for at in [12usize, 14, 16, 18] {
            if let Some(slot) = aimed.get_mut(at..at + 2) {
                slot.copy_from_slice(&ethertype.to_be_bytes());
            }
        }
        for f in [&frame, &aimed] {
            if let Ok(l3) = decode_link(link, f) {
                prop_assert_eq!(l3.link_header_len + l3.network.len(), f.len());
                prop_assert!(l3.vlan_ids.len() <= wfp_pcap::MAX_VLAN_TAGS);
            }
        }
    }

    #[test]
    fn written_captures_read_back_identically(
        link in proptest::sample::select(LINK_TYPES.to_vec()),
        packets in proptest::collection::vec(
            (0u64..u64::from(u32::MAX) * 1_000_000, proptest::collection::vec(any::<u8>(), 0..300), 0u32..100),
            0..12,
        ),
    ) {
        let expected: Vec<CapturedPacket> = packets
            .into_iter()
            .enumerate()
            .map(|(i, (us, data, extra))| CapturedPacket {
                index: i as u64,
                timestamp_ns: us * 1_000,
                link_type: link,
                orig_len: u32::try_from(data.len()).unwrap_or(0) + extra,
                interface: 0,
                direction: None,
                data,
            })
            .collect();
        let mut writer = CaptureWriter::new(Vec::new(), link).unwrap_or_else(|e| panic!("{e}"));
        for p in &expected {
            writer.write_packet(p.timestamp_ns, p.orig_len, &p.data).unwrap_or_else(|e| panic!("{e}"));
        }
        let bytes = writer.finish().unwrap_or_default();
        let got: Result<Vec<_>, _> = CaptureReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}")).collect();
        prop_assert_eq!(got.ok(), Some(expected));
    }

    #[test]
    fn written_pcapng_reads_back_identically(
        packets in proptest::collection::vec(
            (
                any::<u64>(),
                proptest::sample::select(LINK_TYPES.to_vec()),
                proptest::collection::vec(any::<u8>(), 0..300),
                0u32..100,
                proptest::option::of(any::<bool>()),
            ),
            0..12,
        ),
    ) {
        let mut interfaces: Vec<LinkType> = Vec::new();
        let expected: Vec<CapturedPacket> = packets
            .into_iter()
            .enumerate()
            .map(|(i, (ts, link, data, extra, inbound))| {
                let interface = interfaces.iter().position(|l| *l == link).unwrap_or_else(|| {
                    interfaces.push(link);
                    interfaces.len() - 1
                });
                CapturedPacket {
                    index: i as u64,
                    timestamp_ns: ts,
                    link_type: link,
                    orig_len: u32::try_from(data.len()).unwrap_or(0) + extra,
                    interface: interface as u32,
                    direction: inbound.map(|b| if b { Direction::Inbound } else { Direction::Outbound }),
                    data,
                }
            })
            .collect();
        let mut writer = PcapNgWriter::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        for p in &expected {
            writer
                .write_packet(p.link_type, p.timestamp_ns, p.orig_len, &p.data, p.direction)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        prop_assert_eq!(writer.interfaces(), &interfaces[..]);
        let bytes = writer.finish().unwrap_or_default();
        let got: Result<Vec<_>, _> = CaptureReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}")).collect();
        prop_assert_eq!(got.ok(), Some(expected));
    }
}

#[test]
fn base_captures_are_valid() {
    assert_eq!(exercise(&classic_capture()), 4);
    assert_eq!(exercise(&pcapng_capture()), 6);
}
