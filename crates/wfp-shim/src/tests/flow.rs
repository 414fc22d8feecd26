//! Flow table: keys, state machine through the table, timeouts per class, eviction order, ids,
//! events, and a property test that every flow ends exactly once.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use proptest::prelude::*;

use crate::flow::{
    DatagramState, Direction, EndReason, Flow, FlowConfig, FlowEvent, FlowKey, FlowState,
    FlowTable, FlowTimeouts, Midstream, NotTracked, PacketMeta, Side, TcpMeta, TcpState,
};
use crate::testutil::{self, V4, V6};
use crate::time::Timestamp;
use crate::wire::{self, protocol, IpVersion, TcpFlags};

const IN: Direction = Direction::Inbound;
const OUT: Direction = Direction::Outbound;

fn t(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

fn udp_key(n: u32) -> FlowKey {
    FlowKey::new(
        protocol::UDP,
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        1000,
        IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + n)),
        53,
    )
}

fn tcp_key(n: u32) -> FlowKey {
    FlowKey::new(
        protocol::TCP,
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        2000,
        IpAddr::V4(Ipv4Addr::from(0x0a02_0000 + n)),
        443,
    )
}

fn dgram() -> PacketMeta {
    PacketMeta {
        len: 100,
        tcp: None,
    }
}

fn seg(flags: TcpFlags, seq: u32, ack: u32) -> PacketMeta {
    PacketMeta {
        len: 40,
        tcp: Some(TcpMeta {
            flags,
            seq,
            ack,
            payload_len: 0,
        }),
    }
}

fn events(table: &mut FlowTable) -> Vec<(u64, EndReason)> {
    std::iter::from_fn(|| table.poll_event())
        .map(
            |FlowEvent::Ended {
                 flow_id, reason, ..
             }| (flow_id.get(), reason),
        )
        .collect()
}

#[test]
fn flow_state_size() {
    let size = std::mem::size_of::<Flow>();
    assert_eq!(size, 144, "update the docs when this changes");
    println!(
        "size_of::<Flow>() = {size} bytes; size_of::<FlowKey>() = {}",
        std::mem::size_of::<FlowKey>()
    );
    assert!(size <= 256, "per-flow state is {size} bytes");
    assert_eq!(std::mem::size_of::<FlowKey>(), 40);
}

#[test]
fn keys_from_packets_are_direction_independent() {
    let out = wire::parse(&testutil::udp_packet(&V4, 5000, 53, b"q")).unwrap();
    let back = wire::parse(&testutil::udp_packet(&V4.reply(), 53, 5000, b"a")).unwrap();
    let k1 = FlowKey::from_packet(OUT, &out).unwrap();
    let k2 = FlowKey::from_packet(IN, &back).unwrap();
    assert_eq!(k1, k2);
    assert_eq!(
        (
            k1.local_addr(),
            k1.local_port(),
            k1.remote_addr(),
            k1.remote_port()
        ),
        (V4.src, 5000, V4.dst, 53)
    );
    assert_eq!(
        (k1.protocol(), k1.version()),
        (protocol::UDP, IpVersion::V4)
    );
    // Without a known local side, the canonical key is the same from both packets.
    let k3 = FlowKey::from_packet(OUT, &back).unwrap();
    assert_ne!(k1, k3);
    assert_eq!(k1.canonical(), k3.canonical());
    assert_eq!(k1.reversed(), k3);

    // ICMPv6 echo request and reply share a key holding type/code/id.
    let req = wire::parse(&testutil::echo(&V6, false, 42, 1, b"")).unwrap();
    let rep = wire::parse(&testutil::echo(&V6.reply(), true, 42, 1, b"")).unwrap();
    let k = FlowKey::from_packet(OUT, &req).unwrap();
    assert_eq!(k, FlowKey::from_packet(IN, &rep).unwrap());
    assert_eq!(k.icmp_parts(), Some((128, 0, 42)));
    assert_eq!(k.version(), IpVersion::V6);
    assert_eq!(k.reversed().icmp_parts(), Some((128, 0, 42)));
    // A different id is a different flow.
    let other = wire::parse(&testutil::echo(&V6, false, 43, 1, b"")).unwrap();
    assert_ne!(k, FlowKey::from_packet(OUT, &other).unwrap());
    // Non-query ICMP (a neighbour solicitation) is keyed by type/code with id 0.
    let ns = wire::parse(&testutil::icmp_packet(&V6, 135, 0, [1, 2, 3, 4], &[0; 16])).unwrap();
    assert_eq!(
        FlowKey::from_packet(OUT, &ns).unwrap().icmp_parts(),
        Some((135, 0, 0))
    );
}

#[test]
fn icmp_error_keys_point_at_the_quoted_flow() {
    // Outbound error about an inbound UDP datagram (we say "port unreachable" to a client).
    let inbound = testutil::udp_packet(&V4.reply(), 53, 5000, b"x"); // server -> us
    let ours = testutil::Ip {
        src: V4.src,
        dst: V4.dst,
        ..V4
    };
    let err = wire::parse(&testutil::icmp_packet(&ours, 3, 3, [0; 4], &inbound[..28])).unwrap();
    let k = FlowKey::from_icmp_error(OUT, &err).unwrap();
    let direct = FlowKey::from_packet(IN, &wire::parse(&inbound).unwrap()).unwrap();
    assert_eq!(k, direct);
    assert!(FlowKey::from_packet(OUT, &err).is_none());
}

#[test]
fn hasher_depends_on_the_seed() {
    use core::hash::BuildHasher;
    let a = crate::flow::FlowHashBuilder::new(1);
    let b = crate::flow::FlowHashBuilder::new(2);
    let k = udp_key(1);
    assert_ne!(a.hash_one(k), b.hash_one(k));
    assert_eq!(a.hash_one(k), a.hash_one(k));
    assert_ne!(a.hash_one(udp_key(1)), a.hash_one(udp_key(2)));
}

#[test]
fn table_tracks_a_tcp_connection() {
    let mut table = FlowTable::default();
    let k = tcp_key(1);
    let u = table
        .handle_packet(t(0), &k, OUT, &seg(TcpFlags::SYN, 10, 0))
        .unwrap();
    assert!(u.created && !u.established);
    assert_eq!(
        (u.side, u.state),
        (Side::Initiator, FlowState::Tcp(TcpState::SynSent))
    );
    assert_eq!(u.handle.id().get(), 1);
    let u = table
        .handle_packet(t(1), &k, IN, &seg(TcpFlags::SYN | TcpFlags::ACK, 50, 11))
        .unwrap();
    assert_eq!(
        (u.side, u.state, u.created),
        (
            Side::Responder,
            FlowState::Tcp(TcpState::SynReceived),
            false
        )
    );
    let u = table
        .handle_packet(t(2), &k, OUT, &seg(TcpFlags::ACK, 11, 51))
        .unwrap();
    assert!(u.established);
    assert!(table.set_user(u.handle, 0xabc));
    let f = table.flow(u.handle).unwrap();
    assert_eq!(
        (f.packets(Side::Initiator), f.packets(Side::Responder)),
        (2, 1)
    );
    assert_eq!(
        (f.bytes(Side::Initiator), f.first_seen(), f.last_seen()),
        (80, t(0), t(2))
    );
    assert_eq!((f.initiator(), f.user(), f.key()), (OUT, 0xabc, &k));
    assert_eq!(
        table.flow_by_id(u.handle.id()).map(Flow::id),
        Some(u.handle.id())
    );
    assert_eq!(table.lookup(&k), Some(u.handle));
    assert_eq!(table.handle_of(u.handle.id()), Some(u.handle));
    // Established timeout is two hours.
    assert_eq!(
        table.poll_timeout(),
        Some(t(2) + Duration::from_secs(7200 + 1)),
        "2 h + slack"
    );

    let u = table
        .handle_packet(t(3), &k, IN, &seg(TcpFlags::RST, 51, 0))
        .unwrap();
    assert_eq!((u.ended, u.user), (Some(EndReason::Rst), 0xabc));
    let ev = table.poll_event();
    assert!(matches!(
        ev,
        Some(FlowEvent::Ended {
            reason: EndReason::Rst,
            user: 0xabc,
            ..
        })
    ));
    assert_eq!(
        table.poll_timeout(),
        Some(t(14)),
        "closed tombstone lingers 10 s + slack"
    );
    assert_eq!(table.iter().count(), 1);
    table.handle_timeout(t(14));
    assert!(table.is_empty());
    assert_eq!(table.poll_event(), None, "a tombstone ends only once");
    assert!(!table.set_user(u.handle, 1), "stale handles find nothing");
}

#[test]
fn midstream_policy() {
    let mut table = FlowTable::new(FlowConfig {
        midstream: Midstream::Ignore,
        ..FlowConfig::default()
    });
    assert_eq!(
        table.handle_packet(t(0), &tcp_key(1), OUT, &seg(TcpFlags::ACK, 1, 1)),
        Err(NotTracked::Midstream)
    );
    assert_eq!(
        table.handle_packet(t(0), &tcp_key(1), OUT, &seg(TcpFlags::RST, 1, 1)),
        Err(NotTracked::StrayRst)
    );
    let mut zero = FlowTable::new(FlowConfig {
        max_flows: 0,
        ..FlowConfig::default()
    });
    assert_eq!(
        zero.handle_packet(t(0), &udp_key(1), OUT, &dgram()),
        Err(NotTracked::Full)
    );
    assert_eq!(table.counters().midstream_ignored, 1);
}

#[test]
fn datagram_flows_reply_and_expire() {
    let mut table = FlowTable::default();
    let u = table
        .handle_packet(t(0), &udp_key(1), IN, &dgram())
        .unwrap();
    assert_eq!(
        (u.created, u.state),
        (true, FlowState::Datagram(DatagramState::Unreplied))
    );
    let u = table
        .handle_packet(t(5), &udp_key(1), IN, &dgram())
        .unwrap();
    assert!(
        !u.established,
        "more packets from the initiator are not a reply"
    );
    let u = table
        .handle_packet(t(6), &udp_key(1), OUT, &dgram())
        .unwrap();
    assert!(u.established);
    assert_eq!(u.state, FlowState::Datagram(DatagramState::Replied));
    assert_eq!(table.poll_timeout(), Some(t(67)));
    table.handle_timeout(t(66));
    assert_eq!(table.len(), 1);
    table.handle_timeout(t(67));
    assert_eq!(events(&mut table), vec![(1, EndReason::IdleTimeout)]);
}

#[test]
fn timeouts_per_class_are_configurable() {
    let timeouts = FlowTimeouts {
        datagram_idle: Duration::from_secs(5),
        tcp_handshake: Duration::from_secs(7),
        tcp_established: Duration::from_secs(100),
        tcp_closing: Duration::from_secs(11),
        tcp_time_wait: Duration::from_secs(13),
        tcp_closed: Duration::from_secs(17),
        slack: Duration::ZERO,
    };
    let mut table = FlowTable::new(FlowConfig {
        timeouts,
        ..FlowConfig::default()
    });
    table
        .handle_packet(t(0), &udp_key(1), OUT, &dgram())
        .unwrap(); // id 1, expires 5
    table
        .handle_packet(t(0), &tcp_key(1), OUT, &seg(TcpFlags::SYN, 1, 0))
        .unwrap(); // id 2, expires 7
    table
        .handle_packet(t(0), &tcp_key(2), OUT, &seg(TcpFlags::ACK, 1, 1))
        .unwrap(); // id 3 picked up, 100
    table
        .handle_packet(
            t(1),
            &tcp_key(2),
            OUT,
            &seg(TcpFlags::FIN | TcpFlags::ACK, 1, 1),
        )
        .unwrap(); // closing, 12
    let mut ends = Vec::new();
    while let Some(next) = table.poll_timeout() {
        table.handle_timeout(next);
        for (id, reason) in events(&mut table) {
            ends.push((next.as_duration().as_secs(), id, reason));
        }
    }
    assert_eq!(
        ends,
        vec![
            (5, 1, EndReason::IdleTimeout),
            (7, 2, EndReason::IdleTimeout),
            (12, 3, EndReason::IdleTimeout)
        ]
    );
}

#[test]
fn eviction_prefers_tombstones_then_non_established_then_lru() {
    let mut table = FlowTable::new(FlowConfig {
        max_flows: 4,
        ..FlowConfig::default()
    });
    // 1: established TCP (picked up), 2: replied UDP, 3: unreplied UDP, 4: TCP ended by RST.
    table
        .handle_packet(t(0), &tcp_key(1), OUT, &seg(TcpFlags::ACK, 1, 1))
        .unwrap();
    table
        .handle_packet(t(1), &udp_key(2), OUT, &dgram())
        .unwrap();
    table
        .handle_packet(t(2), &udp_key(2), IN, &dgram())
        .unwrap();
    table
        .handle_packet(t(3), &udp_key(3), OUT, &dgram())
        .unwrap();
    table
        .handle_packet(t(4), &tcp_key(4), OUT, &seg(TcpFlags::ACK, 1, 1))
        .unwrap();
    table
        .handle_packet(t(5), &tcp_key(4), IN, &seg(TcpFlags::RST, 1, 1))
        .unwrap();
    assert_eq!(events(&mut table), vec![(4, EndReason::Rst)]);
    // New flow 5: the tombstone goes first, silently.
    table
        .handle_packet(t(6), &udp_key(5), OUT, &dgram())
        .unwrap();
    assert!(events(&mut table).is_empty());
    assert_eq!(table.counters().tombstones_removed, 1);
    // New flow 6: the LRU non-established flow is 3 (flow 5 is newer).
    table
        .handle_packet(t(7), &udp_key(6), OUT, &dgram())
        .unwrap();
    assert_eq!(events(&mut table), vec![(3, EndReason::Evicted)]);
    // Touch 5 and 6 with replies: everything is established now; the LRU is flow 1.
    table
        .handle_packet(t(8), &udp_key(5), IN, &dgram())
        .unwrap();
    table
        .handle_packet(t(9), &udp_key(6), IN, &dgram())
        .unwrap();
    table
        .handle_packet(t(10), &udp_key(2), IN, &dgram())
        .unwrap();
    table
        .handle_packet(t(11), &udp_key(7), OUT, &dgram())
        .unwrap();
    assert_eq!(events(&mut table), vec![(1, EndReason::Evicted)]);
    assert_eq!(table.len(), 4);
    assert_eq!(table.counters().evicted, 2);
}

#[test]
fn abort_ends_a_live_flow_once() {
    let mut table = FlowTable::default();
    let u = table
        .handle_packet(t(0), &udp_key(1), OUT, &dgram())
        .unwrap();
    assert!(table.abort(u.handle.id()));
    assert!(!table.abort(u.handle.id()));
    assert_eq!(events(&mut table), vec![(1, EndReason::Aborted)]);
    // Ids are never reused.
    let u = table
        .handle_packet(t(1), &udp_key(1), OUT, &dgram())
        .unwrap();
    assert_eq!(u.handle.id().get(), 2);
    assert_eq!(u.handle.index(), 0, "the slot is reused");
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut table = FlowTable::default();
    table
        .handle_packet(t(100), &udp_key(1), OUT, &dgram())
        .unwrap();
    let u = table
        .handle_packet(t(50), &udp_key(1), IN, &dgram())
        .unwrap();
    assert_eq!(table.flow(u.handle).unwrap().last_seen(), t(100));
    assert_eq!(table.poll_timeout(), Some(t(161)));
}

proptest! {
    /// Packets at random times on a few datagram flows: each flow ends no earlier than 60 s after
    /// its last packet and no later than 60 s + slack; with zero slack, exactly at 60 s.
    #[test]
    fn expiry_stays_within_the_slack(
        exact in any::<bool>(),
        packets in proptest::collection::vec((0u32..4, 0u64..5_000), 1..60),
    ) {
        let slack = if exact { Duration::ZERO } else { Duration::from_secs(1) };
        let timeouts = FlowTimeouts { slack, ..FlowTimeouts::default() };
        let mut table = FlowTable::new(FlowConfig { timeouts, ..FlowConfig::default() });
        let mut now = Timestamp::ZERO;
        let mut last_seen: HashMap<u64, Timestamp> = HashMap::new();
        let check = |table: &mut FlowTable, at: Timestamp, last_seen: &mut HashMap<u64, Timestamp>| {
            while let Some(FlowEvent::Ended { flow_id, .. }) = table.poll_event() {
                let seen = last_seen.remove(&flow_id.get()).unwrap_or(Timestamp::MAX);
                let earliest = seen + Duration::from_secs(60);
                prop_assert!(at >= earliest, "expired early");
                prop_assert!(at <= earliest + slack, "expired late");
            }
            Ok(())
        };
        for (flow, gap_ms) in packets {
            let target = now + Duration::from_millis(gap_ms * 20);
            while let Some(due) = table.poll_timeout().filter(|&d| d <= target) {
                table.handle_timeout(due);
                check(&mut table, due, &mut last_seen)?;
            }
            now = target;
            let dir = if gap_ms % 2 == 0 { IN } else { OUT };
            let u = table.handle_packet(now, &udp_key(flow), dir, &dgram()).unwrap();
            last_seen.insert(u.handle.id().get(), now);
        }
        while let Some(due) = table.poll_timeout() {
            table.handle_timeout(due);
            check(&mut table, due, &mut last_seen)?;
        }
        prop_assert!(last_seen.is_empty());
    }
}

#[derive(Clone, Debug)]
enum Op {
    Packet {
        key: u8,
        inbound: bool,
        flags: u8,
        seq: u8,
    },
    Advance(u16),
    Abort(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, any::<bool>(), any::<u8>(), any::<u8>())
            .prop_map(|(key, inbound, flags, seq)| Op::Packet { key, inbound, flags, seq }),
        2 => (0u16..400).prop_map(Op::Advance),
        1 => (0u8..20).prop_map(Op::Abort),
    ]
}

proptest! {
    /// Random packets (TCP with random flags, UDP), time jumps and aborts on a small table:
    /// ids are unique and increasing, the size bound holds, every id that ever existed ends
    /// exactly once, and after a long idle period the table is empty.
    #[test]
    fn every_flow_ends_exactly_once(ops in proptest::collection::vec(op(), 1..200)) {
        let mut table = FlowTable::new(FlowConfig { max_flows: 5, ..FlowConfig::default() });
        let mut now = 0u64;
        let mut created = HashSet::new();
        let mut ended: HashMap<u64, EndReason> = HashMap::new();
        let mut last_id = 0;
        let mut ids = Vec::new();
        let drain = |table: &mut FlowTable, ended: &mut HashMap<u64, EndReason>| {
            while let Some(FlowEvent::Ended { flow_id, reason, .. }) = table.poll_event() {
                prop_assert!(ended.insert(flow_id.get(), reason).is_none(), "ended twice");
            }
            Ok(())
        };
        for op in ops {
            match op {
                Op::Packet { key, inbound, flags, seq } => {
                    let dir = if inbound { IN } else { OUT };
                    let (k, meta) = if key < 8 {
                        let flags = TcpFlags::from_bits(u16::from(flags) & 0x17);
                        (tcp_key(u32::from(key)), seg(flags, u32::from(seq), u32::from(seq)))
                    } else {
                        (udp_key(u32::from(key)), dgram())
                    };
                    if let Ok(u) = table.handle_packet(t(now), &k, dir, &meta) {
                        let id = u.handle.id().get();
                        if u.created {
                            prop_assert!(id > last_id);
                            last_id = id;
                            created.insert(id);
                            ids.push(u.handle.id());
                        }
                        prop_assert!(created.contains(&id));
                    }
                }
                Op::Advance(s) => {
                    now += u64::from(s);
                    table.handle_timeout(t(now));
                }
                Op::Abort(i) => {
                    if let Some(&id) = ids.get(usize::from(i)) {
                        table.abort(id);
                    }
                }
            }
            drain(&mut table, &mut ended)?;
            prop_assert!(table.len() <= 5);
            for flow in table.iter() {
                prop_assert_eq!(flow.is_ended(), ended.contains_key(&flow.id().get()));
            }
        }
        table.handle_timeout(t(now + 3 * 3600));
        drain(&mut table, &mut ended)?;
        prop_assert!(table.is_empty());
        prop_assert_eq!(created.len(), ended.len());
        prop_assert!(created.iter().all(|id| ended.contains_key(id)));
    }
}
