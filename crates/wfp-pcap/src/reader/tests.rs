//! Byte-vector tests of both formats, well-formed and malformed.

use super::*;
use crate::bytes::Endian;
use crate::bytes::Endian::{Big, Little};
use crate::test_support::*;

const FRAME_A: &[u8] = &[0xAA; 20];
const FRAME_B: &[u8] = &[0xBB, 0xBC, 0xBD];

fn read_all(bytes: &[u8]) -> (Vec<CapturedPacket>, Option<CaptureError>) {
    let mut reader = match CaptureReader::new(bytes) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut packets = Vec::new();
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => packets.push(p),
            Ok(None) => return (packets, None),
            Err(e) => {
                // Fused after an error.
                assert!(matches!(reader.next_packet(), Ok(None)));
                return (packets, Some(e));
            }
        }
    }
}

fn classic_two_packets(e: Endian, nanos: bool) -> Vec<u8> {
    cat(&[
        pcap_header(e, nanos, 2, 4, 1),
        pcap_record(e, 1_700_000_000, 123_456, 20, 60, FRAME_A),
        pcap_record(e, 1_700_000_001, 7, 3, 3, FRAME_B),
    ])
}

// ----- classic pcap -----

#[test]
fn classic_all_four_magics() {
    for (e, nanos) in [(Little, false), (Big, false), (Little, true), (Big, true)] {
        let bytes = classic_two_packets(e, nanos);
        let mut reader = CaptureReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reader.format(), CaptureFormat::Pcap);
        assert_eq!(reader.link_type(), Some(LinkType::ETHERNET));
        let first = reader.next_packet().ok().flatten();
        let second = reader.next_packet().ok().flatten();
        assert!(matches!(reader.next_packet(), Ok(None)));
        assert!(matches!(reader.next_packet(), Ok(None)), "stays at end");
        let (Some(first), Some(second)) = (first, second) else {
            panic!("two packets expected for {e:?} nanos={nanos}");
        };
        let unit = if nanos { 1 } else { 1_000 };
        assert_eq!(
            first,
            CapturedPacket {
                index: 0,
                timestamp_ns: 1_700_000_000_000_000_000 + 123_456 * unit,
                link_type: LinkType::ETHERNET,
                orig_len: 60,
                interface: 0,
                direction: None,
                data: FRAME_A.to_vec(),
            }
        );
        assert_eq!(second.index, 1);
        assert_eq!(second.timestamp_ns, 1_700_000_001_000_000_000 + 7 * unit);
        assert_eq!(second.data, FRAME_B);
        assert_eq!(reader.packets_read(), 2);
        assert_eq!(reader.offset(), bytes.len() as u64);
    }
}

#[test]
fn classic_iterator_and_borrowed_view_agree() {
    let bytes = classic_two_packets(Little, false);
    let owned: Vec<_> = CaptureReader::new(&bytes[..])
        .into_iter()
        .flatten()
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    assert_eq!(owned.len(), 2);
    let mut reader = CaptureReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
    let view = reader
        .next_packet_ref()
        .ok()
        .flatten()
        .map(|p| p.to_owned_packet());
    assert_eq!(view.as_ref(), owned.first());
    assert_eq!(
        owned.first().map(|p| p.as_packet_ref().to_owned_packet()),
        view
    );
}

#[test]
fn classic_header_fcs_bits_are_masked_from_link_type() {
    let bytes = cat(&[pcap_header(Little, false, 2, 4, 0x0400_0001)]);
    let reader = CaptureReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reader.link_type(), Some(LinkType::ETHERNET));
    let info = reader.interfaces().next();
    assert_eq!(
        info.map(|i| i.timestamp_resolution),
        Some(TimestampResolution::Decimal(6))
    );
}

#[test]
fn classic_old_versions_swap_lengths() {
    // 2.2: always swapped (orig first).
    let bytes = cat(&[
        pcap_header(Little, false, 2, 2, 1),
        pcap_record(Little, 0, 0, 60, 3, FRAME_B),
    ]);
    let (packets, err) = read_all(&bytes);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        packets.first().map(|p| (p.orig_len, p.data.len())),
        Some((60, 3))
    );
    // 2.3: swapped only when "captured" > "original".
    let bytes = cat(&[
        pcap_header(Little, false, 2, 3, 1),
        pcap_record(Little, 0, 0, 60, 3, FRAME_B),
        pcap_record(Little, 0, 0, 3, 60, FRAME_B),
    ]);
    let (packets, err) = read_all(&bytes);
    assert!(err.is_none(), "{err:?}");
    let lens: Vec<_> = packets.iter().map(|p| p.orig_len).collect();
    assert_eq!(lens, [60, 60]);
}

#[test]
fn classic_captured_length_above_snaplen_is_accepted() {
    let data = vec![7u8; 70_000];
    let bytes = cat(&[
        pcap_header(Big, false, 2, 4, 101),
        pcap_record(Big, 0, 0, 70_000, 70_000, &data),
    ]);
    let (packets, err) = read_all(&bytes);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets.first().map(|p| p.data.len()), Some(70_000));
}

#[test]
fn classic_unsupported_version() {
    let bytes = pcap_header(Little, false, 1, 0, 1);
    let (_, err) = read_all(&bytes);
    assert!(matches!(
        err,
        Some(CaptureError::UnsupportedVersion {
            format: CaptureFormat::Pcap,
            major: 1,
            minor: 0,
            ..
        })
    ));
}

#[test]
fn classic_truncated_file_header() {
    let bytes = pcap_header(Little, false, 2, 4, 1);
    let (_, err) = read_all(&bytes[..10]);
    assert!(matches!(
        err,
        Some(CaptureError::Truncated {
            offset: 0,
            packet_index: 0,
            needed: 24,
            available: 10,
            ..
        })
    ));
}

#[test]
fn empty_and_short_inputs_are_truncated() {
    for len in 0..4 {
        let (_, err) = read_all(&[0xD4, 0xC3, 0xB2][..len.min(3)]);
        assert!(matches!(
            err,
            Some(CaptureError::Truncated {
                offset: 0,
                needed: 4,
                ..
            })
        ));
    }
}

#[test]
fn unknown_magic_is_not_a_capture() {
    let (_, err) = read_all(b"GET / HTTP/1.1\r\n\r\n");
    assert!(matches!(err, Some(CaptureError::NotACapture { magic, .. }) if &magic == b"GET "));
}

#[test]
fn classic_truncated_record_header_after_good_packet() {
    let mut bytes = classic_two_packets(Little, false);
    let first_end = 24 + 16 + FRAME_A.len();
    bytes.truncate(first_end + 5);
    let (packets, err) = read_all(&bytes);
    assert_eq!(packets.len(), 1);
    let Some(err) = err else {
        panic!("error expected")
    };
    assert_eq!((err.offset(), err.packet_index()), (first_end as u64, 1));
    assert!(matches!(
        err,
        CaptureError::Truncated {
            needed: 16,
            available: 5,
            ..
        }
    ));
    let text = err.to_string();
    assert!(
        text.contains(&format!("byte {first_end}")) && text.contains("packet 1"),
        "{text}"
    );
}

#[test]
fn classic_truncated_record_data() {
    let bytes = classic_two_packets(Little, false);
    let cut = bytes.len() - 1;
    let (packets, err) = read_all(&bytes[..cut]);
    assert_eq!(packets.len(), 1);
    assert!(matches!(
        err,
        Some(CaptureError::Truncated {
            packet_index: 1,
            needed: 19,
            available: 18,
            ..
        })
    ));
}

#[test]
fn classic_huge_captured_length_is_rejected_without_allocation() {
    let bytes = cat(&[
        pcap_header(Little, false, 2, 4, 1),
        pcap_record(
            Little,
            0,
            0,
            MAX_CAPTURED_LEN + 1,
            MAX_CAPTURED_LEN + 1,
            b"xx",
        ),
    ]);
    let (_, err) = read_all(&bytes);
    assert!(matches!(
        err,
        Some(CaptureError::PacketTooLarge { offset: 24, captured, .. }) if captured == MAX_CAPTURED_LEN + 1
    ));
}

#[test]
fn classic_large_claim_grows_buffer_only_with_data() {
    let claimed = 200 * 1024 * 1024;
    let bytes = cat(&[
        pcap_header(Little, false, 2, 4, 1),
        pcap_record(Little, 0, 0, claimed, claimed, &[1u8; 100]),
    ]);
    let mut reader = CaptureReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
    let err = reader.next_packet().err();
    assert!(
        matches!(err, Some(CaptureError::Truncated { available: 116, .. })),
        "{err:?}"
    );
    assert!(
        reader.buf.capacity() < 64 * 1024,
        "capacity {}",
        reader.buf.capacity()
    );
}

#[test]
fn open_reports_the_path() {
    let err = CaptureReader::open("/nonexistent/dir/x.pcap").err();
    assert!(matches!(&err, Some(CaptureError::Open { path, .. }) if path.ends_with("x.pcap")));
}

// ----- pcapng -----

fn ng_basic(e: Endian) -> Vec<u8> {
    cat(&[
        shb(e),
        idb(e, 1, 0, &[]),
        epb(e, 0, 1_700_000_000_123_456, 60, FRAME_A),
        ng_block(e, 4, &[0, 0, 0, 0]),  // NRB: ignored
        ng_block(e, 5, &[0u8; 20]),     // ISB: ignored
        ng_block(e, 0x0BAD_F00D, b"?"), // unknown: skipped
        spb(e, 3, FRAME_B),
        opb(e, 0, 2_000_000, 3, FRAME_B),
    ])
}

/// An EPB (or, with `obsolete`, a Packet Block) for FRAME_B followed by raw option bytes.
fn packet_with_options(e: Endian, obsolete: bool, options: &[u8]) -> Vec<u8> {
    let block = if obsolete {
        opb(e, 0, 9, 3, FRAME_B)
    } else {
        epb(e, 0, 9, 3, FRAME_B)
    };
    // Re-frame: strip the trailer, append the options, fix both lengths.
    let body = &block[8..block.len() - 4];
    let mut body = body.to_vec();
    body.extend_from_slice(options);
    ng_block(e, if obsolete { 2 } else { 6 }, &body)
}

#[test]
fn pcapng_packet_flags_give_the_direction_and_bad_options_are_ignored() {
    for e in [Little, Big] {
        let flags = |v: u32| {
            let bytes = match e {
                Big => v.to_be_bytes(),
                Little => v.to_le_bytes(),
            };
            ng_option(e, 2, &bytes)
        };
        let end = ng_option(e, 0, &[]);
        let comment = ng_option(e, 1, b"a comment");
        let cases: Vec<(bool, Vec<u8>, Option<Direction>)> = vec![
            (false, vec![], None),
            (
                false,
                cat(&[flags(1), end.clone()]),
                Some(Direction::Inbound),
            ),
            (
                false,
                cat(&[comment.clone(), flags(0x0000_0012)]),
                Some(Direction::Outbound),
            ),
            (false, flags(0), None),                      // "not available"
            (false, flags(3), None),                      // undefined
            (false, cat(&[end.clone(), flags(1)]), None), // after the end marker
            (false, ng_option(e, 2, &[1, 0]), None),      // wrong length
            (false, vec![2, 0], None),                    // cut short
            (false, ng_option(e, 2, &[1, 0, 0]), None),   // cut short once padded
            (true, flags(2), Some(Direction::Outbound)),  // pack_flags
        ];
        for (obsolete, options, want) in cases {
            let bytes = cat(&[
                shb(e),
                idb(e, 1, 0, &[]),
                packet_with_options(e, obsolete, &options),
            ]);
            let (packets, err) = read_all(&bytes);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(packets.len(), 1);
            assert_eq!(packets[0].data, FRAME_B, "{options:?}");
            assert_eq!(packets[0].direction, want, "{e:?} {options:?}");
        }
    }
    // Classic pcap records no direction.
    let (packets, _) = read_all(&classic_two_packets(Little, false));
    assert!(packets.iter().all(|p| p.direction.is_none()));
}

#[test]
fn pcapng_packet_blocks_in_both_byte_orders() {
    for e in [Little, Big] {
        let (packets, err) = read_all(&ng_basic(e));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(packets.len(), 3);
        let summary: Vec<_> = packets
            .iter()
            .map(|p| {
                (
                    p.index,
                    p.timestamp_ns,
                    p.orig_len,
                    p.data.clone(),
                    p.interface,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (0, 1_700_000_000_123_456_000, 60, FRAME_A.to_vec(), 0),
                (1, 0, 3, FRAME_B.to_vec(), 0),
                (2, 2_000_000_000, 3, FRAME_B.to_vec(), 0),
            ]
        );
        assert!(packets.iter().all(|p| p.link_type == LinkType::ETHERNET));
    }
}

#[test]
fn pcapng_spb_is_clipped_to_snaplen_and_block() {
    let e = Little;
    let bytes = cat(&[
        shb(e),
        idb(e, 101, 2, &[]),
        spb(e, 1000, FRAME_B), // orig 1000, snaplen 2, 3 bytes (+1 pad) present
        idb(e, 101, 0, &[]),
    ]);
    let (packets, err) = read_all(&bytes);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        packets.first().map(|p| p.data.as_slice()),
        Some(&FRAME_B[..2])
    );
    let bytes = cat(&[shb(e), idb(e, 101, 0, &[]), spb(e, 1000, FRAME_B)]);
    let (packets, _) = read_all(&bytes);
    // No snaplen: everything in the block body, padding included.
    assert_eq!(packets.first().map(|p| p.data.len()), Some(4));
}

#[test]
fn pcapng_sections_reset_interfaces_and_may_change_byte_order() {
    let bytes = cat(&[
        shb(Little),
        idb(Little, 1, 0, &[]),
        idb(Little, 113, 0, &[]),
        epb(Little, 1, 5, 3, FRAME_B),
        shb(Big),
        idb(Big, 101, 0, &[]),
        epb(Big, 0, 6, 3, FRAME_B),
        epb(Big, 1, 7, 3, FRAME_B),
    ]);
    let mut reader = CaptureReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reader.format(), CaptureFormat::PcapNg);
    let a = reader
        .next_packet()
        .ok()
        .flatten()
        .map(|p| (p.link_type, p.interface));
    assert_eq!(a, Some((LinkType::LINUX_SLL, 1)));
    let b = reader
        .next_packet()
        .ok()
        .flatten()
        .map(|p| (p.link_type, p.interface));
    assert_eq!(b, Some((LinkType::RAW, 0)));
    assert_eq!(reader.interfaces().len(), 1);
    let offset_of_last = (bytes.len() - epb(Big, 1, 7, 3, FRAME_B).len()) as u64;
    let err = reader.next_packet().err();
    assert!(
        matches!(err, Some(CaptureError::NoInterface { interface: 1, packet_index: 2, offset }) if offset == offset_of_last),
        "{err:?}"
    );
}

#[test]
fn pcapng_timestamp_resolution_and_offset() {
    let e = Big;
    let nanos = ng_option(e, 9, &[9]);
    let millis = cat(&[
        ng_option(e, 9, &[3]),
        ng_option(e, 14, &100i64.to_be_bytes()),
    ]);
    let binary = cat(&[ng_option(e, 9, &[0x80 | 10]), ng_option(e, 0, &[])]);
    let pico = ng_option(e, 9, &[12]);
    let bytes = cat(&[
        shb(e),
        idb(e, 1, 0, &nanos),
        idb(e, 1, 0, &millis),
        idb(e, 1, 0, &binary),
        idb(e, 1, 0, &pico),
        epb(e, 0, 1_234_567_890_123_456_789, 1, b"x"),
        epb(e, 1, 1_500, 1, b"x"),
        epb(e, 2, 3 * 1024 + 512, 1, b"x"),
        epb(e, 3, 5_000_000_000_000, 1, b"x"),
    ]);
    let (packets, err) = read_all(&bytes);
    assert!(err.is_none(), "{err:?}");
    let ts: Vec<_> = packets.iter().map(|p| p.timestamp_ns).collect();
    assert_eq!(
        ts,
        [
            1_234_567_890_123_456_789,
            101_500_000_000,
            3_500_000_000,
            5_000_000_000
        ]
    );
}

#[test]
fn pcapng_invalid_tsresol_options() {
    let e = Little;
    for (options, reason) in [
        (ng_option(e, 9, &[20]), "10^-19"),
        (ng_option(e, 9, &[0x80 | 64]), "2^-63"),
        (ng_option(e, 9, &[6, 6]), "length is not 1"),
        (
            cat(&[ng_option(e, 9, &[6]), ng_option(e, 9, &[6])]),
            "more than one",
        ),
        (ng_option(e, 14, &[0; 4]), "length is not 8"),
        (vec![2, 0, 200, 0], "value cut short"),
    ] {
        let (_, err) = read_all(&cat(&[shb(e), idb(e, 1, 0, &options)]));
        assert!(
            matches!(&err, Some(CaptureError::BadOption { reason: r, offset: 28, .. }) if r.contains(reason)),
            "{reason}: {err:?}"
        );
    }
}

#[test]
fn pcapng_unknown_options_are_skipped_and_end_of_options_stops() {
    let e = Little;
    let options = cat(&[
        ng_option(e, 2, b"eth0"),
        ng_option(e, 0, &[]),
        vec![0xFF; 4], // after opt_endofopt: not parsed
    ]);
    let bytes = cat(&[shb(e), idb(e, 1, 0, &options), epb(e, 0, 1, 1, b"x")]);
    let (packets, err) = read_all(&bytes);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets.len(), 1);
}

#[test]
fn pcapng_block_length_below_minimum() {
    let e = Little;
    let block = ng_block_raw(e, 6, 8, &[], 8);
    let (_, err) = read_all(&cat(&[shb(e), idb(e, 1, 0, &[]), block]));
    assert!(matches!(
        err,
        Some(CaptureError::BlockTooShort {
            offset: 48,
            length: 8,
            minimum: 12,
            block_type: 6,
            ..
        })
    ));
    // An SHB needs 28 bytes.
    let mut short_shb = shb(e);
    short_shb[4..8].copy_from_slice(&24u32.to_le_bytes());
    let (_, err) = read_all(&short_shb);
    assert!(matches!(
        err,
        Some(CaptureError::BlockTooShort { minimum: 28, .. })
    ));
}

#[test]
fn pcapng_fixed_fields_that_do_not_fit_their_block() {
    let e = Little;
    for (block, minimum) in [
        (ng_block(e, 6, &[0; 16]), 32),
        (ng_block(e, 2, &[0; 8]), 32),
        (ng_block(e, 3, &[]), 16),
        (ng_block(e, 1, &[0; 4]), 20),
    ] {
        let (_, err) = read_all(&cat(&[shb(e), idb(e, 1, 0, &[]), block]));
        assert!(
            matches!(err, Some(CaptureError::BlockTooShort { minimum: m, .. }) if m == minimum),
            "{err:?}"
        );
    }
}

#[test]
fn pcapng_block_length_not_multiple_of_four() {
    let e = Big;
    let block = ng_block_raw(e, 6, 33, &[0; 21], 33);
    let (_, err) = read_all(&cat(&[shb(e), block]));
    assert!(matches!(
        err,
        Some(CaptureError::UnalignedBlockLength {
            length: 33,
            offset: 28,
            ..
        })
    ));
}

#[test]
fn pcapng_trailer_mismatch() {
    let e = Little;
    let block = ng_block_raw(e, 0x0BAD, 16, &[0; 4], 20);
    let (_, err) = read_all(&cat(&[shb(e), block]));
    assert!(matches!(
        err,
        Some(CaptureError::BlockLengthMismatch {
            header: 16,
            trailer: 20,
            block_type: 0x0BAD,
            ..
        })
    ));
}

#[test]
fn pcapng_huge_block_and_captured_lengths_are_rejected_without_allocation() {
    let e = Little;
    let huge = ng_block_raw(e, 6, 0xFFFF_FFF0, &[], 0);
    let (_, err) = read_all(&cat(&[shb(e), idb(e, 1, 0, &[]), huge]));
    assert!(matches!(
        err,
        Some(CaptureError::BlockTooLarge {
            length: 0xFFFF_FFF0,
            ..
        })
    ));

    // Captured length of 1 GiB inside a small block.
    let mut block = epb(e, 0, 0, 4, b"abcd");
    block[20..24].copy_from_slice(&0x4000_0000u32.to_le_bytes());
    let (packets, err) = read_all(&cat(&[
        shb(e),
        idb(e, 1, 0, &[]),
        epb(e, 0, 0, 1, b"a"),
        block,
    ]));
    assert_eq!(packets.len(), 1);
    assert!(matches!(
        err,
        Some(CaptureError::CapturedLengthOverflow {
            captured: 0x4000_0000,
            room: 4,
            packet_index: 1,
            ..
        })
    ));

    // A 200 MiB block claim in a tiny file: truncated, buffer stays small.
    let bytes = cat(&[shb(e), ng_block_raw(e, 6, 200 * 1024 * 1024, &[0; 64], 0)]);
    let mut reader = CaptureReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
    let err = reader.next_packet().err();
    assert!(
        matches!(
            err,
            Some(CaptureError::Truncated {
                what: "pcapng block",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        reader.buf.capacity() < 64 * 1024,
        "capacity {}",
        reader.buf.capacity()
    );
}

#[test]
fn pcapng_truncated_block_header_and_body() {
    let bytes = ng_basic(Little);
    let epb_at = shb(Little).len() + idb(Little, 1, 0, &[]).len();
    for (cut, what) in [
        (epb_at + 3, "pcapng block header"),
        (epb_at + 6, "pcapng block header"),
        (epb_at + 30, "pcapng block"),
    ] {
        let (packets, err) = read_all(&bytes[..cut]);
        assert!(packets.is_empty());
        assert!(
            matches!(&err, Some(CaptureError::Truncated { offset, what: w, .. }) if *offset == epb_at as u64 && *w == what),
            "cut {cut}: {err:?}"
        );
    }
}

#[test]
fn pcapng_bad_section_headers() {
    let mut bad_magic = shb(Little);
    bad_magic[8..12].copy_from_slice(&[1, 2, 3, 4]);
    let (_, err) = read_all(&bad_magic);
    assert!(matches!(
        err,
        Some(CaptureError::BadByteOrderMagic {
            found: 0x0403_0201,
            offset: 0,
            ..
        })
    ));
    // Mid-file, after a packet.
    let bytes = cat(&[ng_basic(Big), bad_magic]);
    let (packets, err) = read_all(&bytes);
    assert_eq!(packets.len(), 3);
    assert!(matches!(
        err,
        Some(CaptureError::BadByteOrderMagic {
            packet_index: 3,
            ..
        })
    ));

    let (_, err) = read_all(&shb_version(Big, 2, 0));
    assert!(matches!(
        err,
        Some(CaptureError::UnsupportedVersion {
            format: CaptureFormat::PcapNg,
            major: 2,
            ..
        })
    ));
    let (_, err) = read_all(&shb(Little)[..10]);
    assert!(matches!(
        err,
        Some(CaptureError::Truncated {
            what: "pcapng section header",
            ..
        })
    ));
}

#[test]
fn pcapng_packet_before_any_interface() {
    let e = Little;
    for block in [
        epb(e, 0, 0, 1, b"x"),
        spb(e, 1, b"x"),
        opb(e, 0, 0, 1, b"x"),
    ] {
        let (_, err) = read_all(&cat(&[shb(e), block]));
        assert!(
            matches!(
                err,
                Some(CaptureError::NoInterface {
                    interface: 0,
                    offset: 28,
                    ..
                })
            ),
            "{err:?}"
        );
    }
}

#[test]
fn pcapng_empty_section_reads_no_packets() {
    let (packets, err) = read_all(&cat(&[shb(Little), idb(Little, 1, 0, &[])]));
    assert!(packets.is_empty() && err.is_none());
}

#[test]
fn timestamp_scale_saturates() {
    assert_eq!(
        TimestampScale::new(TimestampResolution::Decimal(0)).to_ns(u64::MAX),
        u64::MAX
    );
    assert_eq!(
        TimestampScale::new(TimestampResolution::Decimal(19)).to_ns(10_000_000_000),
        1
    );
    assert_eq!(
        TimestampScale::new(TimestampResolution::Binary(0)).to_ns(u64::MAX),
        u64::MAX
    );
    assert_eq!(
        TimestampScale::new(TimestampResolution::Binary(63)).to_ns(1 << 63),
        1_000_000_000
    );
    let negative = Interface::new(InterfaceInfo {
        link_type: LinkType::ETHERNET,
        snaplen: 0,
        timestamp_resolution: TimestampResolution::Decimal(9),
        timestamp_offset_s: -10,
    });
    assert_eq!(negative.timestamp_ns(5), 0);
}
