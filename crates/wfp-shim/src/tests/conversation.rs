//! Whole conversations from real packet bytes through parse → fragments → flows → streams, with a
//! fake clock. `Pipeline` is a miniature of what the shim wires on top of these modules.

use std::collections::HashMap;
use std::time::Duration;

use crate::flow::{
    Direction, EndReason, FlowConfig, FlowEvent, FlowId, FlowKey, FlowTable, NotTracked,
    PacketMeta, Side, TcpState,
};
use crate::frag::{FragConfig, FragDrop, FragOutcome, FragReassembler, Fragment};
use crate::reasm::{Anomaly, Dropped, ReasmConfig, Segment, StreamReassembler};
use crate::testutil::{self, Ip, Tcp, TCP, V4, V6};
use crate::time::Timestamp;
use crate::wire::{self, IcmpKind, ParseError, TcpFlags, Transport};

/// What the pipeline observed, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Rec {
    Anomaly(u64, Side, Anomaly),
    Created(u64),
    Dropped(u64, Side, Dropped),
    Ended(u64, EndReason),
    Established(u64),
    Finished(u64, Side),
    FragDropped(FragDrop),
    IcmpError(Option<u64>),
    NotTracked(NotTracked),
    ParseError(ParseError),
    Reassembled(usize),
    Reset(u64, Side),
}

pub(super) struct Pipeline {
    pub(super) frag: FragReassembler,
    pub(super) flows: FlowTable,
    reasm: ReasmConfig,
    streams: HashMap<(FlowId, Side), StreamReassembler>,
    delivered: HashMap<(FlowId, Side), Vec<u8>>,
    pub(super) log: Vec<Rec>,
}

impl Pipeline {
    pub(super) fn new() -> Self {
        Self::with(
            FlowConfig::default(),
            FragConfig::default(),
            ReasmConfig::default(),
        )
    }

    pub(super) fn with(flow: FlowConfig, frag: FragConfig, reasm: ReasmConfig) -> Self {
        Self {
            frag: FragReassembler::new(frag),
            flows: FlowTable::new(flow),
            reasm,
            streams: HashMap::new(),
            delivered: HashMap::new(),
            log: Vec::new(),
        }
    }

    /// One packet in `direction` at `now`.
    pub(super) fn feed(&mut self, now: Timestamp, direction: Direction, bytes: &[u8]) {
        let parsed = match wire::parse(bytes) {
            Ok(p) => p,
            Err(e) => return self.log.push(Rec::ParseError(e)),
        };
        if let Some((key, frag)) = Fragment::from_parsed(bytes, &parsed) {
            match self.frag.handle_fragment(now, key, frag) {
                FragOutcome::Incomplete => {}
                FragOutcome::Dropped(d) => self.log.push(Rec::FragDropped(d)),
                FragOutcome::Reassembled(whole) => {
                    self.log.push(Rec::Reassembled(whole.len()));
                    // A reassembled packet is never a fragment again.
                    if wire::parse(&whole).is_ok_and(|p| p.ip.fragment.is_none()) {
                        self.feed(now, direction, &whole);
                    }
                }
            }
            return;
        }
        if let Transport::Icmp(i) = &parsed.transport {
            if i.kind == IcmpKind::Error {
                let flow = FlowKey::from_icmp_error(direction, &parsed)
                    .and_then(|k| self.flows.lookup(&k))
                    .map(|h| h.id().get());
                return self.log.push(Rec::IcmpError(flow));
            }
        }
        let Some(key) = FlowKey::from_packet(direction, &parsed) else {
            return;
        };
        let meta = PacketMeta::from_parsed(&parsed);
        let update = match self.flows.handle_packet(now, &key, direction, &meta) {
            Ok(u) => u,
            Err(e) => {
                self.log.push(Rec::NotTracked(e));
                self.drain();
                return;
            }
        };
        let id = update.handle.id();
        if update.created {
            self.log.push(Rec::Created(id.get()));
        }
        if update.established {
            self.log.push(Rec::Established(id.get()));
        }
        if let Transport::Tcp(t) = &parsed.transport {
            let side = update.side;
            let reasm = self.reasm;
            let stream = self.streams.entry((id, side)).or_insert_with(|| {
                if t.flags.syn() {
                    StreamReassembler::after_syn(t.seq, reasm)
                } else {
                    StreamReassembler::new(t.seq, reasm)
                }
            });
            let seg = Segment {
                seq: t.seq,
                payload: bytes.get(t.payload.clone()).unwrap_or(&[]),
                syn: t.flags.syn(),
                fin: t.flags.fin(),
                rst: t.flags.rst(),
                cut: 0,
            };
            let out = stream.push(seg);
            if let Some(d) = out.delivered {
                let buf = self.delivered.entry((id, side)).or_default();
                assert_eq!(
                    d.offset,
                    buf.len() as u64,
                    "delivery offsets are contiguous"
                );
                buf.extend_from_slice(&d.data);
            }
            if let Some(a) = out.anomaly {
                self.log.push(Rec::Anomaly(id.get(), side, a));
            }
            if let Some(d) = out.dropped {
                self.log.push(Rec::Dropped(id.get(), side, d));
            }
            if out.finished {
                self.log.push(Rec::Finished(id.get(), side));
            }
            if out.reset {
                self.log.push(Rec::Reset(id.get(), side));
            }
        }
        self.drain();
    }

    /// Advance the fake clock to `now`.
    pub(super) fn tick(&mut self, now: Timestamp) {
        self.frag.handle_timeout(now);
        self.flows.handle_timeout(now);
        self.drain();
    }

    /// Jump to the next timeout of either machine (like quinn's `Pair::step`); returns it.
    pub(super) fn step(&mut self) -> Option<Timestamp> {
        let next = [self.frag.poll_timeout(), self.flows.poll_timeout()]
            .into_iter()
            .flatten()
            .min()?;
        self.tick(next);
        Some(next)
    }

    fn drain(&mut self) {
        while let Some(FlowEvent::Ended {
            flow_id, reason, ..
        }) = self.flows.poll_event()
        {
            self.log.push(Rec::Ended(flow_id.get(), reason));
            self.streams.retain(|(id, _), _| *id != flow_id);
        }
    }

    pub(super) fn stream(&self, id: u64, side: Side) -> Vec<u8> {
        self.delivered
            .iter()
            .find(|((fid, s), _)| fid.get() == id && *s == side)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    pub(super) fn take_log(&mut self) -> Vec<Rec> {
        std::mem::take(&mut self.log)
    }
}

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

const OUT: Direction = Direction::Outbound;
const IN: Direction = Direction::Inbound;

/// A client (local) talking to a server, with sequence numbers tracked by the test.
struct Conn {
    ip: Ip,
    c: Tcp,
    s: Tcp,
}

impl Conn {
    fn new(ip: Ip, client_isn: u32, server_isn: u32) -> Self {
        let c = Tcp {
            seq: client_isn,
            ..TCP
        };
        let s = Tcp {
            sport: TCP.dport,
            dport: TCP.sport,
            seq: server_isn,
            ..TCP
        };
        Self { ip, c, s }
    }

    /// Client → server segment with `flags` and `payload`; advances the client's sequence.
    fn client(&mut self, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
        let p = testutil::tcp_packet(
            &self.ip,
            &Tcp {
                flags,
                ack: self.s.seq,
                ..self.c
            },
            payload,
        );
        self.c.seq = self
            .c
            .seq
            .wrapping_add(payload.len() as u32 + u32::from(flags.syn()) + u32::from(flags.fin()));
        p
    }

    fn server(&mut self, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
        let p = testutil::tcp_packet(
            &self.ip.reply(),
            &Tcp {
                flags,
                ack: self.c.seq,
                ..self.s
            },
            payload,
        );
        self.s.seq = self
            .s
            .seq
            .wrapping_add(payload.len() as u32 + u32::from(flags.syn()) + u32::from(flags.fin()));
        p
    }
}

const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;
const FIN: TcpFlags = TcpFlags::FIN;
const PSH: TcpFlags = TcpFlags::PSH;

fn syn_ack() -> TcpFlags {
    SYN | ACK
}

#[test]
fn tcp_handshake_data_and_fin_close() {
    for ip in [V4, V6] {
        let mut p = Pipeline::new();
        let mut c = Conn::new(ip, 1000, u32::MAX - 3); // the server's sequence wraps
        p.feed(t(0), OUT, &c.client(SYN, b""));
        p.feed(t(1), IN, &c.server(syn_ack(), b""));
        p.feed(t(2), OUT, &c.client(ACK, b""));
        assert_eq!(p.take_log(), vec![Rec::Created(1), Rec::Established(1)]);

        p.feed(t(3), OUT, &c.client(PSH | ACK, b"GET / HTTP/1.1\r\n\r\n"));
        p.feed(t(4), IN, &c.server(PSH | ACK, b"HTTP/1.1 200 OK\r\n"));
        p.feed(t(5), IN, &c.server(PSH | ACK, b"\r\nbody"));
        p.feed(t(6), OUT, &c.client(FIN | ACK, b""));
        p.feed(t(7), IN, &c.server(FIN | ACK, b""));
        assert_eq!(
            p.flows
                .lookup(&key_v(ip))
                .map(|h| p.flows.flow(h).unwrap().state()),
            Some(crate::flow::FlowState::Tcp(TcpState::LastAck))
        );
        p.feed(t(8), OUT, &c.client(ACK, b""));
        assert_eq!(
            p.take_log(),
            vec![
                Rec::Finished(1, Side::Initiator),
                Rec::Finished(1, Side::Responder),
                Rec::Ended(1, EndReason::Fin),
            ]
        );
        assert_eq!(p.stream(1, Side::Initiator), b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(p.stream(1, Side::Responder), b"HTTP/1.1 200 OK\r\n\r\nbody");

        // The tombstone absorbs a late retransmission, then expires silently.
        let late = testutil::tcp_packet(
            &ip,
            &Tcp {
                flags: ACK,
                seq: c.c.seq,
                ..c.c
            },
            b"",
        );
        p.feed(t(9), OUT, &late);
        assert_eq!(p.flows.len(), 1);
        // Expiry runs from when the tombstone was last refreshed (8 ms; the 9 ms packet is within the
        // 1 s slack): 120 s + 1 s later, which is within [9 ms + 120 s, 9 ms + 121 s].
        assert_eq!(p.step(), Some(t(8) + Duration::from_secs(120 + 1)));
        assert!(p.flows.is_empty());
        assert!(p.take_log().is_empty());
    }
}

fn key_v(ip: Ip) -> FlowKey {
    FlowKey::new(6, ip.src, TCP.sport, ip.dst, TCP.dport)
}

#[test]
fn rst_ends_the_flow_and_a_new_syn_reuses_the_tuple() {
    let mut p = Pipeline::new();
    let mut c = Conn::new(V4, 5, 9);
    p.feed(t(0), OUT, &c.client(SYN, b""));
    p.feed(t(1), IN, &c.server(syn_ack(), b""));
    p.feed(t(2), OUT, &c.client(ACK, b"hi"));
    p.feed(t(3), IN, &c.server(TcpFlags::RST, b""));
    assert_eq!(
        p.take_log(),
        vec![
            Rec::Created(1),
            Rec::Established(1),
            Rec::Reset(1, Side::Responder),
            Rec::Ended(1, EndReason::Rst),
        ]
    );
    // A stray RST for an unknown tuple is not tracked.
    let stray = testutil::tcp_packet(
        &V6,
        &Tcp {
            flags: TcpFlags::RST,
            ..TCP
        },
        b"",
    );
    p.feed(t(4), OUT, &stray);
    assert_eq!(p.take_log(), vec![Rec::NotTracked(NotTracked::StrayRst)]);
    // Same tuple, new connection: the tombstone is replaced by flow 2.
    let mut c = Conn::new(V4, 77, 99);
    p.feed(t(5), OUT, &c.client(SYN, b""));
    assert_eq!(p.take_log(), vec![Rec::Created(2)]);
    assert_eq!(p.flows.counters().tombstones_removed, 1);
}

#[test]
fn retransmission_reordering_and_conflicting_overlap() {
    let mut p = Pipeline::new();
    let mut c = Conn::new(V4, 100, 200);
    p.feed(t(0), OUT, &c.client(SYN, b""));
    p.feed(t(1), IN, &c.server(syn_ack(), b""));
    p.feed(t(2), OUT, &c.client(ACK, b""));
    p.take_log();

    let a = c.client(ACK, b"aaaa"); // offset 0
    let b = c.client(ACK, b"bbbb"); // offset 4
    let d = c.client(ACK, b"cccc"); // offset 8
                                    // Reordered: c, b, a; a retransmitted identically.
    p.feed(t(3), OUT, &d);
    p.feed(t(4), OUT, &b);
    assert_eq!(p.stream(1, Side::Initiator), b"");
    p.feed(t(5), OUT, &a);
    p.feed(t(6), OUT, &a);
    assert_eq!(p.stream(1, Side::Initiator), b"aaaabbbbcccc");
    assert!(
        p.take_log().is_empty(),
        "identical retransmission is silent"
    );

    // A retransmission of offset 2..6 with different bytes: first copy wins, anomaly reported.
    let evil = testutil::tcp_packet(
        &V4,
        &Tcp {
            flags: ACK,
            seq: 103,
            ..c.c
        },
        b"XXbb",
    );
    p.feed(t(7), OUT, &evil);
    assert_eq!(
        p.take_log(),
        vec![Rec::Anomaly(
            1,
            Side::Initiator,
            Anomaly::Overlap { offset: 2, len: 2 }
        )]
    );
    // An overlap that also extends the stream: the new tail is accepted.
    let ext = testutil::tcp_packet(
        &V4,
        &Tcp {
            flags: ACK,
            seq: 111,
            ..c.c
        },
        b"Zcdddd",
    );
    p.feed(t(8), OUT, &ext);
    assert_eq!(
        p.take_log(),
        vec![Rec::Anomaly(
            1,
            Side::Initiator,
            Anomaly::Overlap { offset: 10, len: 1 }
        )]
    );
    assert_eq!(p.stream(1, Side::Initiator), b"aaaabbbbccccdddd");
}

#[test]
fn ipv6_tcp_segment_in_reordered_fragments() {
    let mut p = Pipeline::new();
    let mut c = Conn::new(V6, 1, 2);
    p.feed(t(0), OUT, &c.client(SYN, b""));
    p.feed(t(1), IN, &c.server(syn_ack(), b""));
    p.feed(t(2), OUT, &c.client(ACK, b""));
    p.take_log();
    let body: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let big = c.server(ACK, &body);
    let mut frags = testutil::fragment(&big, &[1232, 2464], 0xabcd, 40);
    frags.reverse();
    for (i, f) in frags.iter().enumerate() {
        p.feed(t(3 + i as u64), IN, f);
    }
    assert_eq!(p.take_log(), vec![Rec::Reassembled(big.len())]);
    assert_eq!(p.stream(1, Side::Responder), body);
}

#[test]
fn udp_idle_timeout_and_icmp_flows() {
    let mut p = Pipeline::new();
    p.feed(t(0), OUT, &testutil::udp_packet(&V4, 5000, 53, b"query"));
    p.feed(
        t(10_000),
        IN,
        &testutil::udp_packet(&V4.reply(), 53, 5000, b"answer"),
    );
    p.feed(t(20_000), OUT, &testutil::echo(&V6, false, 7, 1, b"ping"));
    p.feed(
        t(30_000),
        IN,
        &testutil::echo(&V6.reply(), true, 7, 1, b"ping"),
    );
    assert_eq!(
        p.take_log(),
        vec![
            Rec::Created(1),
            Rec::Established(1),
            Rec::Created(2),
            Rec::Established(2)
        ]
    );
    // An ICMP error about the UDP flow is attributed to it.
    let udp = testutil::udp_packet(&V4, 5000, 53, b"query");
    let router = Ip {
        src: "203.0.113.9".parse().unwrap(),
        dst: V4.src,
        ..V4
    };
    p.feed(
        t(40_000),
        IN,
        &testutil::icmp_packet(&router, 3, 3, [0; 4], &udp[..28]),
    );
    assert_eq!(p.take_log(), vec![Rec::IcmpError(Some(1))]);

    // Idle for 60 s (+ at most 1 s of slack) after the last packet: 10 s + 60 s for the UDP
    // flow, 30 s + 60 s for ICMP.
    p.tick(t(70_000));
    assert!(p.take_log().is_empty());
    assert_eq!(p.step(), Some(t(71_000)));
    assert_eq!(p.take_log(), vec![Rec::Ended(1, EndReason::IdleTimeout)]);
    assert_eq!(p.step(), Some(t(91_000)));
    assert_eq!(p.take_log(), vec![Rec::Ended(2, EndReason::IdleTimeout)]);
    assert_eq!(p.step(), None);
}

#[test]
fn fragment_timeout_with_fake_clock() {
    let mut p = Pipeline::new();
    let packet = testutil::udp_packet(&V4, 1, 2, &[3; 64]);
    let frags = testutil::fragment(&packet, &[32], u32::from(V4.id), 0);
    p.feed(t(1_000), IN, &frags[0]);
    assert_eq!(p.frag.poll_timeout(), Some(t(31_000)));
    assert_eq!(p.step(), Some(t(31_000)));
    assert!(p.frag.is_empty());
    assert_eq!(p.frag.counters().timed_out, 1);
    // The last fragment alone now starts a new, incomplete datagram.
    p.feed(t(31_001), IN, &frags[1]);
    assert!(p.take_log().is_empty());
    assert_eq!(p.frag.len(), 1);
}

#[test]
fn overlapping_ipv4_fragments_drop_the_datagram() {
    let mut p = Pipeline::new();
    let packet = testutil::udp_packet(&V4, 1, 2, &[3; 64]);
    let a = testutil::fragment(&packet, &[40], u32::from(V4.id), 0);
    let b = testutil::fragment(&packet, &[32], u32::from(V4.id), 0);
    p.feed(t(0), IN, &a[0]); // [0, 40)
    p.feed(t(1), IN, &b[1]); // [32, 72): overlaps
    assert_eq!(p.take_log(), vec![Rec::FragDropped(FragDrop::Overlap)]);
    assert!(p.frag.is_empty());
    assert_eq!(p.flows.len(), 0);
}

#[test]
fn midstream_pickup() {
    let mut p = Pipeline::new();
    let mut c = Conn::new(V4, 40, 50);
    p.feed(t(0), IN, &c.server(ACK, b"late"));
    p.feed(t(1), OUT, &c.client(ACK, b"joiner"));
    assert_eq!(p.take_log(), vec![Rec::Created(1), Rec::Established(1)]);
    // The flow was first seen inbound: the server's side is the initiator here.
    assert_eq!(p.stream(1, Side::Initiator), b"late");
    assert_eq!(p.stream(1, Side::Responder), b"joiner");
}
