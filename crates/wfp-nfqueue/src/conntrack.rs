//! Conntrack over netlink (`NETLINK_NETFILTER`, `NFNL_SUBSYS_CTNETLINK`): the end of connections
//! the kernel carried (destroy events with their accounting counters), clearing offload marks,
//! and creating entries (for tests and benchmarks).
//!
//! ```text
//!  ConntrackSocket::subscribe_destroy ── NFNLGRP_CONNTRACK_DESTROY ──► recv_ends ─► Vec<ConnEnd>
//!       (tuple, CTA_COUNTERS_ORIG / REPLY — with net.netfilter.nf_conntrack_acct = 1 — CTA_MARK)
//!  ConntrackSocket::open ── IPCTNL_MSG_CT_GET dump (mark filter) ──► IPCTNL_MSG_CT_NEW updates
//!                                                                     (CTA_MARK + CTA_MARK_MASK)
//! ```
//!
//! Every length in a message from the kernel is checked; a malformed message is skipped and
//! counted ([`ConntrackSocket::malformed`]).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::error::NfqError;
use crate::sys::{self, Fd, Op, SockOpt, SysOk};

const NLMSG_HDRLEN: usize = 16;
const NFGEN_HDRLEN: usize = 4;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLA_F_NESTED: u16 = 0x8000;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_EXCL: u16 = 0x200;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SUBSYS_CTNETLINK: u16 = 1;
const MSG_CT_NEW: u16 = SUBSYS_CTNETLINK << 8;
const MSG_CT_GET: u16 = (SUBSYS_CTNETLINK << 8) | 1;
const MSG_CT_DELETE: u16 = (SUBSYS_CTNETLINK << 8) | 2;
/// `NFNLGRP_CONNTRACK_DESTROY`.
const GROUP_DESTROY: u32 = 3;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMEOUT: u16 = 7;
const CTA_MARK: u16 = 8;
const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_MARK_MASK: u16 = 21;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_COUNTERS_PACKETS: u16 = 1;
const CTA_COUNTERS_BYTES: u16 = 2;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
/// `IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED`.
const STATUS_ESTABLISHED: u32 = 0x8 | 0x2 | 0x4;
/// `TCP_CONNTRACK_ESTABLISHED`.
const TCP_ESTABLISHED: u8 = 3;

/// A connection's original-direction tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtTuple {
    /// IP protocol.
    pub protocol: u8,
    /// Source address of the original direction.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 without ports).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// Accounting counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtCounters {
    /// Packets.
    pub packets: u64,
    /// Bytes (IP lengths).
    pub bytes: u64,
}

/// A connection as conntrack reports it: destroyed (a destroy event) or still open (a
/// [`ConntrackSocket::dump`] entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnEnd {
    /// Its original tuple.
    pub tuple: CtTuple,
    /// Original-direction counters (zero without `nf_conntrack_acct`).
    pub original: CtCounters,
    /// Reply-direction counters.
    pub reply: CtCounters,
    /// Its mark, if sent.
    pub mark: Option<u32>,
}

/// What one update of [`ConntrackSocket::set_marks`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkOutcome {
    /// The connection's mark was changed.
    Set,
    /// Conntrack has no such connection (it ended, or was never tracked).
    NoSuchConnection,
    /// The kernel refused the update (`errno`).
    Failed {
        /// The kernel's error number.
        errno: i32,
    },
}

/// A conntrack netlink socket.
#[derive(Debug)]
pub struct ConntrackSocket {
    fd: Fd,
    seq: u32,
    buf: Vec<u8>,
    malformed: u64,
}

impl ConntrackSocket {
    /// A socket for requests (dumps, updates, creation). Needs `CAP_NET_ADMIN`.
    pub fn open() -> Result<Self, NfqError> {
        let fd = Fd::from_ok(
            sys::call(Op::NetlinkSocket).map_err(sys::SysError::into_nfq)?,
            "socket",
        )
        .map_err(sys::SysError::into_nfq)?;
        sys::call(Op::BindNetlink { fd: fd.raw() }).map_err(sys::SysError::into_nfq)?;
        Ok(Self {
            fd,
            seq: 1,
            buf: vec![0; 1 << 16],
            malformed: 0,
        })
    }

    /// A socket receiving destroy events (with a large receive buffer: a revocation or a flush
    /// ends many connections at once).
    pub fn subscribe_destroy() -> Result<Self, NfqError> {
        let s = Self::open()?;
        sys::conntrack::add_membership(s.fd.raw(), GROUP_DESTROY)
            .map_err(sys::SysError::into_nfq)?;
        let _ = sys::call(Op::SetSockOpt {
            fd: s.fd.raw(),
            opt: SockOpt::RcvBufForce(32 << 20),
        });
        Ok(s)
    }

    /// Messages from the kernel that could not be parsed.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Waits up to `timeout` for destroy events and appends them to `out` (every message
    /// already queued is read).
    pub fn recv_ends(&mut self, timeout: Duration, out: &mut Vec<ConnEnd>) -> Result<(), NfqError> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut wait = ms;
        loop {
            let ready = sys::call(Op::PollIn {
                fd: self.fd.raw(),
                timeout_ms: wait,
            })
            .map_err(sys::SysError::into_nfq)?;
            if !matches!(ready, SysOk::Ready(r) if r.socket) {
                return Ok(());
            }
            let Some(len) = self.recv_one()? else {
                return Ok(());
            };
            let data = self.buf.get(..len).unwrap_or(&[]).to_vec();
            for (kind, _, payload) in messages(&data) {
                if kind == MSG_CT_DELETE || kind == MSG_CT_NEW {
                    match parse_conn(payload) {
                        Some(end) => out.push(end),
                        None => self.malformed += 1,
                    }
                }
            }
            wait = 0;
        }
    }

    /// One datagram into `buf`; `None` when nothing is waiting.
    fn recv_one(&mut self) -> Result<Option<usize>, NfqError> {
        match sys::call(Op::RecvOne {
            fd: self.fd.raw(),
            buf: &mut self.buf,
        }) {
            Ok(SysOk::Len(n)) => Ok(Some(n.min(self.buf.len()))),
            Ok(_) => Ok(None),
            Err(e) if e.errno == libc::EAGAIN => Ok(None),
            // Events were lost (the buffer overflowed): reported, the socket goes on.
            Err(e) if e.errno == libc::ENOBUFS => Err(e.into_nfq()),
            Err(e) => Err(e.into_nfq()),
        }
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), NfqError> {
        sys::call(Op::Send {
            fd: self.fd.raw(),
            buf: msg,
        })
        .map_err(sys::SysError::into_nfq)?;
        Ok(())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Clears the bits `clear` in the mark of every connection whose mark has `value` under
    /// `mask` (e.g. the stale offload marks of an epoch about to be reused). Returns how many
    /// connections were updated. Connections that end meanwhile are skipped.
    pub fn clear_marks(&mut self, value: u32, mask: u32, clear: u32) -> Result<usize, NfqError> {
        let tuples = self.dump_tuples(value, mask)?;
        let mut batch = Vec::new();
        for (family, tuple) in &tuples {
            let seq = self.next_seq();
            let mut m = Msg::new(MSG_CT_NEW, NLM_F_REQUEST, seq, *family);
            m.raw(tuple);
            m.u32_be(CTA_MARK, 0);
            m.u32_be(CTA_MARK_MASK, clear);
            batch.extend_from_slice(&m.finish());
            if batch.len() > 48 * 1024 {
                self.send(&std::mem::take(&mut batch))?;
                self.drain_errors()?;
            }
        }
        if !batch.is_empty() {
            self.send(&batch)?;
        }
        self.drain_errors()?;
        Ok(tuples.len())
    }

    /// Dumps the connections whose mark has `value` under `mask` and returns how many there
    /// are. A dump also makes the kernel reap the expired entries it walks past (their destroy
    /// events follow at once), where its garbage collector may take up to a minute.
    pub fn scan(&mut self, value: u32, mask: u32) -> Result<usize, NfqError> {
        Ok(self.dump_tuples(value, mask)?.len())
    }

    /// Reads (and drops) error answers queued on the socket: updates of connections that ended
    /// meanwhile answer ENOENT.
    fn drain_errors(&mut self) -> Result<(), NfqError> {
        while self.recv_one()?.is_some() {}
        Ok(())
    }

    /// The raw `CTA_TUPLE_ORIG` attributes (with their family) of connections whose mark has
    /// `value` under `mask`.
    fn dump_tuples(&mut self, value: u32, mask: u32) -> Result<Vec<(u8, Vec<u8>)>, NfqError> {
        let mut out = Vec::new();
        let mut malformed = 0;
        self.dump_each(value, mask, |family, payload| {
            match find_raw(payload, CTA_TUPLE_ORIG) {
                Some(raw) => out.push((family, raw.to_vec())),
                None => malformed += 1,
            }
        })?;
        self.malformed += malformed;
        Ok(out)
    }

    /// The connections whose mark has `value` under `mask`, with their accounting counters
    /// (zero without `nf_conntrack_acct`) and marks: one dump, whose cost grows with the
    /// connections it returns (the kernel walks its table, filtering by mark). Like
    /// [`ConntrackSocket::scan`], it makes the kernel reap expired entries it walks past.
    pub fn dump(&mut self, value: u32, mask: u32) -> Result<Vec<ConnEnd>, NfqError> {
        let mut out = Vec::new();
        let mut malformed = 0;
        self.dump_each(value, mask, |_, payload| match parse_conn(payload) {
            Some(conn) => out.push(conn),
            None => malformed += 1,
        })?;
        self.malformed += malformed;
        Ok(out)
    }

    /// Dumps the connections whose mark has `value` under `mask`; `each` gets every entry's
    /// family and attributes.
    fn dump_each(
        &mut self,
        value: u32,
        mask: u32,
        mut each: impl FnMut(u8, &[u8]),
    ) -> Result<(), NfqError> {
        let seq = self.next_seq();
        let mut m = Msg::new(MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, 0);
        m.u32_be(CTA_MARK, value);
        m.u32_be(CTA_MARK_MASK, mask);
        self.send(&m.finish())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if Instant::now() > deadline {
                return Err(NfqError::Syscall {
                    call: "conntrack dump",
                    source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                });
            }
            let _ = sys::call(Op::PollIn {
                fd: self.fd.raw(),
                timeout_ms: 100,
            });
            let Some(len) = self.recv_one()? else {
                continue;
            };
            let data = self.buf.get(..len).unwrap_or(&[]).to_vec();
            for (kind, family, payload) in messages(&data) {
                match kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let errno = payload
                            .get(..4)
                            .and_then(|b| b.try_into().ok())
                            .map_or(0, i32::from_ne_bytes);
                        if errno != 0 {
                            return Err(NfqError::Syscall {
                                call: "conntrack dump",
                                source: std::io::Error::from_raw_os_error(-errno),
                            });
                        }
                    }
                    _ => each(family, payload),
                }
            }
        }
    }

    /// Changes the bits `mask` of the mark of the one connection whose original tuple is
    /// `tuple` to those of `mark` (an update by tuple, acknowledged). `Ok(false)` when conntrack
    /// has no such connection (it ended, or was never tracked).
    pub fn set_mark(&mut self, tuple: &CtTuple, mark: u32, mask: u32) -> Result<bool, NfqError> {
        match self.set_marks(&[(*tuple, mark)], mask)?.first() {
            Some(MarkOutcome::Set) => Ok(true),
            Some(MarkOutcome::NoSuchConnection) => Ok(false),
            Some(MarkOutcome::Failed { errno }) => Err(NfqError::Syscall {
                call: "conntrack update",
                source: std::io::Error::from_raw_os_error(*errno),
            }),
            None => Err(NfqError::Syscall {
                call: "conntrack update",
                source: std::io::Error::from(std::io::ErrorKind::TimedOut),
            }),
        }
    }

    /// [`ConntrackSocket::set_mark`] for many connections at once: every update (the bits
    /// `mask` of each connection's mark set to those of its value) goes out in one datagram
    /// (one `sendto` per 48 KiB of requests; the kernel handles them in order) and each is
    /// acknowledged. Returns one outcome per update, in order. `Err` only when the socket fails
    /// or the kernel does not answer within 2 s.
    pub fn set_marks(
        &mut self,
        updates: &[(CtTuple, u32)],
        mask: u32,
    ) -> Result<Vec<MarkOutcome>, NfqError> {
        let mut out = Vec::with_capacity(updates.len());
        let mut rest = updates;
        while !rest.is_empty() {
            let first = self.seq.wrapping_add(1);
            let mut batch = Vec::new();
            let mut n = 0;
            for (tuple, mark) in rest {
                let seq = self.next_seq();
                let family = if tuple.src.is_ipv4() { 2 } else { 10 };
                let mut m = Msg::new(MSG_CT_NEW, NLM_F_REQUEST | NLM_F_ACK, seq, family);
                m.tuple(CTA_TUPLE_ORIG, tuple);
                // The kernel computes (mark & ~MASK) ^ MARK: MARK must stay inside the mask.
                m.u32_be(CTA_MARK, mark & mask);
                m.u32_be(CTA_MARK_MASK, mask);
                batch.extend_from_slice(&m.finish());
                n += 1;
                if batch.len() > 48 * 1024 {
                    break;
                }
            }
            self.send(&batch)?;
            let mut outcomes = vec![None; n];
            self.acks(first, &mut outcomes)?;
            out.extend(outcomes.into_iter().flatten());
            rest = rest.get(n..).unwrap_or(&[]);
        }
        Ok(out)
    }

    /// Collects the acknowledgements of the requests numbered `first`, `first + 1`, ... (one
    /// slot of `outcomes` each) until every slot is filled; times out after 2 s.
    fn acks(&mut self, first: u32, outcomes: &mut [Option<MarkOutcome>]) -> Result<(), NfqError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut missing = outcomes.len();
        while missing > 0 {
            if Instant::now() > deadline {
                return Err(NfqError::Syscall {
                    call: "conntrack update",
                    source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                });
            }
            let _ = sys::call(Op::PollIn {
                fd: self.fd.raw(),
                timeout_ms: 100,
            });
            let Some(len) = self.recv_one()? else {
                continue;
            };
            let data = self.buf.get(..len).unwrap_or(&[]).to_vec();
            for (kind, s, payload) in messages_seq(&data) {
                let index = s.wrapping_sub(first) as usize;
                let Some(slot) = outcomes.get_mut(index).filter(|o| o.is_none()) else {
                    continue;
                };
                if kind != NLMSG_ERROR {
                    continue;
                }
                let errno = payload
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, i32::from_ne_bytes);
                *slot = Some(match -errno {
                    0 => MarkOutcome::Set,
                    libc::ENOENT => MarkOutcome::NoSuchConnection,
                    errno => MarkOutcome::Failed { errno },
                });
                missing -= 1;
            }
        }
        Ok(())
    }

    /// Creates an established connection entry (tests, benchmarks): `tuple` in the original
    /// direction, the reverse as reply, TCP state ESTABLISHED for TCP, `mark`, `timeout`.
    pub fn create(
        &mut self,
        tuple: &CtTuple,
        mark: u32,
        timeout: Duration,
    ) -> Result<(), NfqError> {
        let seq = self.next_seq();
        let family = if tuple.src.is_ipv4() { 2 } else { 10 };
        let mut m = Msg::new(
            MSG_CT_NEW,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            seq,
            family,
        );
        m.tuple(CTA_TUPLE_ORIG, tuple);
        let reply = CtTuple {
            src: tuple.dst,
            dst: tuple.src,
            sport: tuple.dport,
            dport: tuple.sport,
            ..*tuple
        };
        m.tuple(CTA_TUPLE_REPLY, &reply);
        m.u32_be(CTA_STATUS, STATUS_ESTABLISHED);
        m.u32_be(
            CTA_TIMEOUT,
            u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX),
        );
        m.u32_be(CTA_MARK, mark);
        if tuple.protocol == 6 {
            let p = m.nest(CTA_PROTOINFO);
            let t = m.nest(CTA_PROTOINFO_TCP);
            m.attr(CTA_PROTOINFO_TCP_STATE, &[TCP_ESTABLISHED]);
            m.end(t);
            m.end(p);
        }
        self.send(&m.finish())?;
        self.ack(seq, "conntrack create")
    }

    /// Waits for the acknowledgement of request `seq` (`what`: the request, for errors).
    fn ack(&mut self, seq: u32, what: &'static str) -> Result<(), NfqError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let _ = sys::call(Op::PollIn {
                fd: self.fd.raw(),
                timeout_ms: 100,
            });
            let Some(len) = self.recv_one()? else {
                continue;
            };
            let data = self.buf.get(..len).unwrap_or(&[]).to_vec();
            for (kind, s, payload) in messages_seq(&data) {
                if kind != NLMSG_ERROR || s != seq {
                    continue;
                }
                let errno = payload
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, i32::from_ne_bytes);
                if errno == 0 {
                    return Ok(());
                }
                return Err(NfqError::Syscall {
                    call: what,
                    source: std::io::Error::from_raw_os_error(-errno),
                });
            }
        }
        Err(NfqError::Syscall {
            call: what,
            source: std::io::Error::from(std::io::ErrorKind::TimedOut),
        })
    }
}

/// A netlink message being built.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16, seq: u32, family: u8) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[family, 0, 0, 0]);
        Self { buf }
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = u16::try_from(NLA_HDRLEN + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn raw(&mut self, attr: &[u8]) {
        self.buf.extend_from_slice(attr);
        self.pad();
    }

    fn u32_be(&mut self, kind: u16, v: u32) {
        self.attr(kind, &v.to_be_bytes());
    }

    fn nest(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = u16::try_from(self.buf.len() - at).unwrap_or(u16::MAX);
        if let Some(slot) = self.buf.get_mut(at..at + 2) {
            slot.copy_from_slice(&len.to_ne_bytes());
        }
    }

    fn tuple(&mut self, kind: u16, t: &CtTuple) {
        let outer = self.nest(kind);
        let ip = self.nest(CTA_TUPLE_IP);
        match (t.src, t.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                self.attr(CTA_IP_V4_SRC, &s.octets());
                self.attr(CTA_IP_V4_DST, &d.octets());
            }
            (s, d) => {
                self.attr(CTA_IP_V6_SRC, &v6(s));
                self.attr(CTA_IP_V6_DST, &v6(d));
            }
        }
        self.end(ip);
        let proto = self.nest(CTA_TUPLE_PROTO);
        self.attr(CTA_PROTO_NUM, &[t.protocol]);
        self.attr(CTA_PROTO_SRC_PORT, &t.sport.to_be_bytes());
        self.attr(CTA_PROTO_DST_PORT, &t.dport.to_be_bytes());
        self.end(proto);
        self.end(outer);
    }

    fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        if let Some(slot) = self.buf.get_mut(..4) {
            slot.copy_from_slice(&len.to_ne_bytes());
        }
        self.buf
    }
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The messages of a datagram: (type, nfgenmsg family, attributes after the nfgenmsg header).
fn messages(data: &[u8]) -> Vec<(u16, u8, &[u8])> {
    messages_raw(data)
        .into_iter()
        .map(|(kind, _, body)| {
            if kind == NLMSG_ERROR || kind == NLMSG_DONE {
                (kind, 0, body)
            } else {
                let family = body.first().copied().unwrap_or(0);
                (kind, family, body.get(NFGEN_HDRLEN..).unwrap_or(&[]))
            }
        })
        .collect()
}

/// The messages of a datagram with their sequence numbers: (type, seq, body).
fn messages_seq(data: &[u8]) -> Vec<(u16, u32, &[u8])> {
    messages_raw(data)
}

fn messages_raw(data: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= NLMSG_HDRLEN {
        let len = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_ne_bytes) as usize;
        let kind = rest
            .get(4..6)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u16::from_ne_bytes);
        let seq = rest
            .get(8..12)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_ne_bytes);
        if len < NLMSG_HDRLEN || len > rest.len() {
            break;
        }
        out.push((kind, seq, rest.get(NLMSG_HDRLEN..len).unwrap_or(&[])));
        let next = (len + 3) & !3;
        rest = rest.get(next..).unwrap_or(&[]);
    }
    out
}

/// The attributes of `data`: (type without flags, payload, the whole attribute).
fn attrs(data: &[u8]) -> Vec<(u16, &[u8], &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= NLA_HDRLEN {
        let len = rest
            .get(..2)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u16::from_ne_bytes) as usize;
        let kind = rest
            .get(2..4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u16::from_ne_bytes)
            & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > rest.len() {
            break;
        }
        out.push((
            kind,
            rest.get(NLA_HDRLEN..len).unwrap_or(&[]),
            rest.get(..len).unwrap_or(&[]),
        ));
        let next = (len + 3) & !3;
        rest = rest.get(next..).unwrap_or(&[]);
    }
    out
}

fn find(data: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(data)
        .into_iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, p, _)| p)
}

fn find_raw(data: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(data)
        .into_iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, _, raw)| raw)
}

fn be_u64(b: &[u8]) -> Option<u64> {
    b.get(..8)?.try_into().ok().map(u64::from_be_bytes)
}

fn be_u16(b: &[u8]) -> Option<u16> {
    b.get(..2)?.try_into().ok().map(u16::from_be_bytes)
}

fn addr(b: &[u8], v6: bool) -> Option<IpAddr> {
    if v6 {
        let a: [u8; 16] = b.get(..16)?.try_into().ok()?;
        Some(IpAddr::from(a))
    } else {
        let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
        Some(IpAddr::from(a))
    }
}

fn parse_tuple(t: &[u8]) -> Option<CtTuple> {
    let ip = find(t, CTA_TUPLE_IP)?;
    let (src, dst) = match (find(ip, CTA_IP_V4_SRC), find(ip, CTA_IP_V4_DST)) {
        (Some(s), Some(d)) => (addr(s, false)?, addr(d, false)?),
        _ => (
            addr(find(ip, CTA_IP_V6_SRC)?, true)?,
            addr(find(ip, CTA_IP_V6_DST)?, true)?,
        ),
    };
    let proto = find(t, CTA_TUPLE_PROTO)?;
    Some(CtTuple {
        protocol: *find(proto, CTA_PROTO_NUM)?.first()?,
        src,
        dst,
        sport: find(proto, CTA_PROTO_SRC_PORT)
            .and_then(be_u16)
            .unwrap_or(0),
        dport: find(proto, CTA_PROTO_DST_PORT)
            .and_then(be_u16)
            .unwrap_or(0),
    })
}

fn parse_counters(c: Option<&[u8]>) -> CtCounters {
    c.map(|c| CtCounters {
        packets: find(c, CTA_COUNTERS_PACKETS).and_then(be_u64).unwrap_or(0),
        bytes: find(c, CTA_COUNTERS_BYTES).and_then(be_u64).unwrap_or(0),
    })
    .unwrap_or_default()
}

/// A conntrack message's attributes → the connection (tuple, counters, mark).
pub(crate) fn parse_conn(payload: &[u8]) -> Option<ConnEnd> {
    Some(ConnEnd {
        tuple: parse_tuple(find(payload, CTA_TUPLE_ORIG)?)?,
        original: parse_counters(find(payload, CTA_COUNTERS_ORIG)),
        reply: parse_counters(find(payload, CTA_COUNTERS_REPLY)),
        mark: find(payload, CTA_MARK)
            .and_then(|b| b.get(..4)?.try_into().ok())
            .map(u32::from_be_bytes),
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn counters(m: &mut Msg, kind: u16, packets: u64, bytes: u64) {
        let n = m.nest(kind);
        m.attr(CTA_COUNTERS_PACKETS, &packets.to_be_bytes());
        m.attr(CTA_COUNTERS_BYTES, &bytes.to_be_bytes());
        m.end(n);
    }

    #[test]
    fn destroy_events_parse_tuples_counters_and_marks() {
        for (src, dst) in [
            (
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            ),
            (
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
            ),
        ] {
            let t = CtTuple {
                protocol: 6,
                src,
                dst,
                sport: 40000,
                dport: 80,
            };
            let mut m = Msg::new(MSG_CT_DELETE, 0, 0, 2);
            m.tuple(CTA_TUPLE_ORIG, &t);
            counters(&mut m, CTA_COUNTERS_ORIG, 12, 3456);
            counters(&mut m, CTA_COUNTERS_REPLY, 7, 890);
            m.u32_be(CTA_MARK, 0x0031_0000);
            let msg = m.finish();
            let parsed = messages(&msg);
            assert_eq!(parsed.len(), 1);
            let (kind, _, payload) = parsed[0];
            assert_eq!(kind, MSG_CT_DELETE);
            let end = parse_conn(payload).expect("parses");
            assert_eq!(end.tuple, t);
            assert_eq!(
                end.original,
                CtCounters {
                    packets: 12,
                    bytes: 3456
                }
            );
            assert_eq!(
                end.reply,
                CtCounters {
                    packets: 7,
                    bytes: 890
                }
            );
            assert_eq!(end.mark, Some(0x0031_0000));
            // Any cut of the message parses to something or nothing, never panics.
            for cut in 0..msg.len() {
                for (_, _, p) in messages(&msg[..cut]) {
                    let _ = parse_conn(p);
                }
            }
        }
    }
}
