//! Fragment reassembly: byte vectors, the overlap rule, bounds, timeouts, and a property test
//! that random fragmentations in random order (with duplicates) rebuild the original packet.

use proptest::prelude::*;

use crate::frag::{FragConfig, FragDrop, FragKey, FragOutcome, FragReassembler, Fragment};
use crate::testutil::{self, Ip, V4, V6};
use crate::time::Timestamp;
use crate::wire::{self, protocol};

fn feed(r: &mut FragReassembler, now: Timestamp, bytes: &[u8]) -> FragOutcome {
    let parsed = wire::parse(bytes).expect("fragment parses");
    let (key, frag) = Fragment::from_parsed(bytes, &parsed).expect("is a fragment");
    r.handle_fragment(now, key, frag)
}

fn t(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

fn udp4(len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
    testutil::udp_packet(&Ip { df: true, ..V4 }, 1111, 2222, &payload)
}

fn udp6(len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    testutil::udp_packet(&V6, 1111, 2222, &payload)
}

#[test]
fn ipv4_in_order_and_reversed() {
    let packet = udp4(200);
    for reverse in [false, true] {
        let mut frags = testutil::fragment(&packet, &[64, 128], u32::from(V4.id), 0);
        if reverse {
            frags.reverse();
        }
        let mut r = FragReassembler::default();
        assert_eq!(feed(&mut r, t(0), &frags[0]), FragOutcome::Incomplete);
        assert_eq!(feed(&mut r, t(0), &frags[1]), FragOutcome::Incomplete);
        assert_eq!(r.len(), 1);
        assert!(r.bytes_in_use() > 0);
        // The rebuilt header keeps DF, clears MF/offset and has a valid checksum: byte-identical.
        assert_eq!(
            feed(&mut r, t(0), &frags[2]),
            FragOutcome::Reassembled(packet.clone())
        );
        assert!(r.is_empty());
        assert_eq!(r.bytes_in_use(), 0);
        assert_eq!(r.poll_timeout(), None);
    }
}

#[test]
fn ipv4_with_options_keeps_the_first_header() {
    let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (V4.src, V4.dst) else {
        unreachable!()
    };
    let udp = testutil::udp_datagram(&V4, 1, 2, &[9; 100]);
    let packet = testutil::ipv4_packet(&V4, s, d, protocol::UDP, &[0x94, 4, 0, 0], &udp);
    let frags = testutil::fragment(&packet, &[56], u32::from(V4.id), 0);
    let mut r = FragReassembler::default();
    assert_eq!(feed(&mut r, t(0), &frags[1]), FragOutcome::Incomplete);
    assert_eq!(
        feed(&mut r, t(0), &frags[0]),
        FragOutcome::Reassembled(packet)
    );
}

#[test]
fn ipv6_with_unfragmentable_extension_header() {
    let udp = testutil::udp_datagram(&V6, 1, 2, &[5; 300]);
    let exts = [
        (protocol::HOP_BY_HOP, testutil::ext8()),
        (protocol::IPV6_ROUTE, testutil::ext8()),
    ];
    let packet = testutil::ipv6_with_ext(&V6, &exts, protocol::UDP, &udp);
    // Hop-by-hop and routing stay in front of every fragment's fragment header.
    let frags = testutil::fragment(&packet, &[104, 208], 0x0102_0304, 56);
    let p = wire::parse(&frags[1]).unwrap();
    let f = p.ip.fragment.unwrap();
    assert_eq!(
        (f.unfragmentable_len, f.next_header_pos, f.next_header),
        (56, 48, protocol::UDP)
    );
    let mut r = FragReassembler::default();
    assert_eq!(feed(&mut r, t(0), &frags[2]), FragOutcome::Incomplete);
    assert_eq!(feed(&mut r, t(0), &frags[0]), FragOutcome::Incomplete);
    assert_eq!(
        feed(&mut r, t(0), &frags[1]),
        FragOutcome::Reassembled(packet)
    );
}

#[test]
fn atomic_ipv6_fragment_is_complete_alone() {
    let packet = udp6(20);
    let frag = testutil::v6_fragment(&packet[..40], &packet[40..], 0, false, 5);
    let mut r = FragReassembler::default();
    assert_eq!(feed(&mut r, t(0), &frag), FragOutcome::Reassembled(packet));
    assert!(r.is_empty());
}

#[test]
fn duplicates_and_overlaps() {
    let packet = udp4(100);
    let frags = testutil::fragment(&packet, &[40], u32::from(V4.id), 0);
    let mut r = FragReassembler::default();
    // Identical duplicate: ignored.
    assert_eq!(feed(&mut r, t(0), &frags[0]), FragOutcome::Incomplete);
    assert_eq!(feed(&mut r, t(0), &frags[0]), FragOutcome::Incomplete);
    assert_eq!(r.counters().duplicates, 1);
    // Same range, different bytes: the datagram is discarded.
    let mut evil = frags[0].clone();
    let last = evil.len() - 1;
    evil[last] ^= 0xff;
    assert_eq!(
        feed(&mut r, t(0), &evil),
        FragOutcome::Dropped(FragDrop::Overlap)
    );
    assert!(r.is_empty());
    // Partial overlap with identical bytes still discards (RFC 5722).
    let other = testutil::fragment(&packet, &[32], u32::from(V4.id), 0);
    assert_eq!(feed(&mut r, t(0), &frags[0]), FragOutcome::Incomplete);
    assert_eq!(
        feed(&mut r, t(0), &other[1]),
        FragOutcome::Dropped(FragDrop::Overlap)
    );
    assert!(r.is_empty());
    assert_eq!(r.counters().dropped_overlap, 2);
    // Afterwards a clean set reassembles.
    assert_eq!(feed(&mut r, t(0), &frags[1]), FragOutcome::Incomplete);
    assert_eq!(
        feed(&mut r, t(0), &frags[0]),
        FragOutcome::Reassembled(packet)
    );
}

#[test]
fn inconsistent_ends_and_malformed_fragments() {
    let packet = udp4(100);
    let a = testutil::fragment(&packet, &[40], u32::from(V4.id), 0);
    let shorter = udp4(60);
    let b = testutil::fragment(&shorter, &[48], u32::from(V4.id), 0);
    let c = testutil::fragment(&packet, &[72, 80], u32::from(V4.id), 0);
    let mut r = FragReassembler::default();
    assert_eq!(feed(&mut r, t(0), &a[0]), FragOutcome::Incomplete); // [0, 40)
    assert_eq!(feed(&mut r, t(0), &b[1]), FragOutcome::Incomplete); // last: [48, 68)
    assert_eq!(
        feed(&mut r, t(0), &c[1]),
        FragOutcome::Dropped(FragDrop::Inconsistent)
    ); // [72, 80)
    assert!(r.is_empty());
    // Two last fragments with different ends.
    assert_eq!(feed(&mut r, t(0), &b[1]), FragOutcome::Incomplete); // ends at 68
    assert_eq!(
        feed(&mut r, t(0), &c[2]),
        FragOutcome::Dropped(FragDrop::Inconsistent)
    ); // ends at 108
    assert_eq!(r.counters().dropped_inconsistent, 2);

    // A non-last fragment of 12 bytes (not a multiple of 8).
    let mut bad = a[0].clone();
    bad.truncate(20 + 12);
    bad[2..4].copy_from_slice(&32u16.to_be_bytes());
    bad[10..12].copy_from_slice(&[0, 0]);
    let c = wire::internet_checksum(&bad[..20]);
    bad[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        feed(&mut r, t(0), &bad),
        FragOutcome::Dropped(FragDrop::Malformed)
    );
    assert!(r.is_empty());
}

#[test]
fn oversize_datagram_is_refused() {
    // "Ping of death": the last fragment at offset 65528 with 100 bytes.
    let packet = udp4(100);
    let frags = testutil::fragment(&packet, &[8], u32::from(V4.id), 0);
    let mut last = frags[1].clone();
    last[6..8].copy_from_slice(&(65528u16 / 8).to_be_bytes());
    last[10..12].copy_from_slice(&[0, 0]);
    let c = wire::internet_checksum(&last[..20]);
    last[10..12].copy_from_slice(&c.to_be_bytes());
    let mut r = FragReassembler::default();
    assert_eq!(
        feed(&mut r, t(0), &last),
        FragOutcome::Dropped(FragDrop::TooLarge)
    );
    assert!(r.is_empty());
}

#[test]
fn memory_and_datagram_limits() {
    let config = FragConfig {
        max_bytes: 300,
        max_datagrams: 2,
        ..FragConfig::default()
    };
    let mut r = FragReassembler::new(config);
    let frag_of = |id: u16, len: usize| {
        let packet = udp4(len);
        let mut f = testutil::fragment(&packet, &[8], u32::from(id), 0);
        f.swap_remove(1) // the last fragment: it allocates up to the datagram's end
    };
    assert_eq!(
        feed(&mut r, t(0), &frag_of(1, 100)),
        FragOutcome::Incomplete
    );
    assert_eq!(
        feed(&mut r, t(0), &frag_of(2, 100)),
        FragOutcome::Incomplete
    );
    assert_eq!(
        feed(&mut r, t(0), &frag_of(3, 100)),
        FragOutcome::Dropped(FragDrop::DatagramLimit)
    );
    assert_eq!(r.bytes_in_use(), 2 * 108);
    // A second datagram needing 208 more bytes does not fit in 300.
    let mut r2 = FragReassembler::new(FragConfig {
        max_datagrams: 10,
        ..config
    });
    assert_eq!(
        feed(&mut r2, t(0), &frag_of(1, 200)),
        FragOutcome::Incomplete
    );
    assert_eq!(
        feed(&mut r2, t(0), &frag_of(2, 200)),
        FragOutcome::Dropped(FragDrop::MemoryLimit)
    );
    assert_eq!(r2.len(), 1, "the refused datagram is not kept");
    assert_eq!(r2.counters().dropped_memory_limit, 1);
}

#[test]
fn timeouts_run_from_the_first_fragment() {
    let config = FragConfig::default();
    let mut r = FragReassembler::new(config);
    let p4 = udp4(100);
    let p6 = udp6(100);
    let f4 = testutil::fragment(&p4, &[40], u32::from(V4.id), 0);
    let f6 = testutil::fragment(&p6, &[40], 9, 40);
    assert_eq!(feed(&mut r, t(10), &f4[0]), FragOutcome::Incomplete);
    assert_eq!(feed(&mut r, t(15), &f6[0]), FragOutcome::Incomplete);
    assert_eq!(r.poll_timeout(), Some(t(40)));
    r.handle_timeout(t(39));
    assert_eq!(r.len(), 2);
    // Time going backwards is clamped, not an error.
    r.handle_timeout(t(1));
    r.handle_timeout(t(40));
    assert_eq!(r.len(), 1);
    assert_eq!(r.poll_timeout(), Some(t(75)));
    r.handle_timeout(t(75));
    assert!(r.is_empty());
    assert_eq!(r.counters().timed_out, 2);
    assert_eq!(r.bytes_in_use(), 0);
}

#[test]
fn keys_follow_the_rfcs() {
    let p4 = wire::parse(&testutil::fragment(&udp4(64), &[32], 7, 0)[0]).unwrap();
    let k4 = FragKey::from_ip(&p4.ip).unwrap();
    assert_eq!((k4.id, k4.protocol), (7, protocol::UDP));
    let p6 = wire::parse(&testutil::fragment(&udp6(64), &[32], 7, 40)[0]).unwrap();
    let k6 = FragKey::from_ip(&p6.ip).unwrap();
    assert_eq!((k6.id, k6.protocol), (7, 0));
    assert!(FragKey::from_ip(&wire::parse(&udp4(8)).unwrap().ip).is_none());
}

/// A random packet, random cut points, a random delivery order with duplicates.
fn fragmentation() -> impl Strategy<Value = (bool, Vec<u8>, Vec<usize>, Vec<usize>)> {
    (any::<bool>(), 1usize..1500)
        .prop_flat_map(|(v6, len)| {
            let data_len = len + 8; // UDP header + payload
            let cuts = proptest::collection::btree_set(1..data_len.div_ceil(8), 1..12);
            (
                Just(v6),
                Just(len),
                cuts,
                proptest::collection::vec(any::<usize>(), 0..4),
                any::<u64>(),
            )
        })
        .prop_map(|(v6, len, cuts, dups, seed)| {
            let packet = if v6 { udp6(len) } else { udp4(len) };
            let data_len = len + 8;
            let cuts: Vec<usize> = cuts
                .into_iter()
                .map(|c| c * 8)
                .filter(|&c| c < data_len)
                .collect();
            let n = cuts.len() + 1;
            // Order: a seeded shuffle of 0..n, then duplicates of random fragments.
            let mut order: Vec<usize> = (0..n).collect();
            let mut s = seed | 1;
            for i in (1..n).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            for d in dups {
                let at = d % (order.len() + 1);
                order.insert(at.min(order.len()), d % n);
            }
            (v6, packet, cuts, order)
        })
}

proptest! {
    #[test]
    fn random_fragmentations_reassemble_to_the_original((v6, packet, cuts, order) in fragmentation()) {
        let id = if v6 { 0xfeed } else { u32::from(V4.id) };
        let frags = testutil::fragment(&packet, &cuts, id, 40);
        let mut r = FragReassembler::default();
        let mut first = None;
        let mut seen = vec![false; frags.len()];
        for (step, &i) in order.iter().enumerate() {
            let out = feed(&mut r, t(0), &frags[i]);
            seen[i] = true;
            match out {
                FragOutcome::Reassembled(whole) => {
                    // Duplicates arriving after completion may start (and complete) a new copy.
                    prop_assert!(seen.iter().all(|&s| s), "reassembled before every fragment");
                    prop_assert_eq!(&whole, &packet);
                    first.get_or_insert(step);
                }
                FragOutcome::Incomplete => {}
                FragOutcome::Dropped(d) => prop_assert!(false, "dropped: {d:?}"),
            }
        }
        prop_assert!(first.is_some(), "never reassembled");
    }
}

/// §14.6 T-CL-8 over IPv6, grouping on: a forwarded datagram in three fragments (arriving out of
/// order) is indicated at IPFORWARD_V6 four times — each fragment once with IS_FRAGMENT, then
/// the group (IS_FRAGMENT_GROUP) when the last one arrives; grouping off, three times.
#[test]
fn t_cl_8_forwarded_ipv6_fragments_grouped_at_ipforward_v6() {
    use wfp_core::catalogue::layers;
    use wfp_core::constants::ConditionFlags;
    use wfp_core::{ActionType, CalloutFlags};

    use super::pipeline::{Rec, H};
    use crate::pipeline::{PacketDirection, Reason, ShimConfig, Verdict};

    let packet = udp6(300);
    let mut frags = testutil::fragment(&packet, &[104, 208], 0x0a0b_0c0d, 40);
    frags.swap(0, 2);
    for group in [true, false] {
        let mut h = H::with(ShimConfig {
            group_forwarded_fragments: group,
            ..ShimConfig::default()
        });
        let rec = Rec::new(|_, out, _, _| out.action_type = ActionType::PERMIT);
        h.callout(
            layers::IPFORWARD_V6,
            ActionType::CALLOUT_TERMINATING,
            CalloutFlags::default(),
            &rec,
            vec![],
        );
        let verdicts: Vec<_> = frags
            .iter()
            .map(|f| h.packet(PacketDirection::Forward, f))
            .collect();
        assert!(verdicts.iter().all(|v| v.verdict == Verdict::Permit));
        let flags: Vec<u32> = rec.calls().iter().map(|c| c.flags).collect();
        let (frag, grp) = (
            ConditionFlags::IS_FRAGMENT.0,
            ConditionFlags::IS_FRAGMENT_GROUP.0,
        );
        if group {
            assert_eq!(verdicts[0].reason, Reason::FragmentHeld);
            assert_eq!(flags, [frag, frag, frag, grp], "grouping on");
        } else {
            assert_eq!(flags, [frag, frag, frag], "grouping off");
        }
    }
}
