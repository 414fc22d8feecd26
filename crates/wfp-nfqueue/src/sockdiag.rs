//! Socket diagnostics (`NETLINK_SOCK_DIAG`, `inet_diag`): which local socket owns a connection.
//!
//! One exact lookup per call: an `inet_diag_req_v2` naming the 5-tuple, answered by one
//! `inet_diag_msg` (socket inode, owner uid, TCP state) or by `ENOENT`. Used to give the ALE
//! layers a process identity ([`crate::owner`]).
//!
//! Layouts (`linux/inet_diag.h`, `linux/sock_diag.h`), all in host order except ports and
//! addresses (network order):
//!
//! ```text
//! inet_diag_req_v2 (56): family u8 | protocol u8 | ext u8 | pad u8 | states u32 | sockid (48)
//! inet_diag_sockid (48): sport be16 | dport be16 | src be32[4] | dst be32[4] | if u32 | cookie u32[2]
//! inet_diag_msg    (72): family u8 | state u8 | timer u8 | retrans u8 | sockid (48)
//!                        | expires u32 | rqueue u32 | wqueue u32 | uid u32 | inode u32
//! ```
//!
//! The kernel looks TCP sockets up with `src` = the socket's local end, but UDP sockets with
//! `src` and `dst` swapped ("for historical reasons", `net/ipv4/udp_diag.c`); [`SockDiag::lookup`]
//! hides that, and tries the other order once if the first finds nothing.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::error::NfqError;
use crate::sys::{self, Fd, Op, SysError, SysOk};
use crate::wire::{self, NlMsgIter};

/// `SOCK_DIAG_BY_FAMILY`.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLM_F_REQUEST`.
const NLM_F_REQUEST: u16 = 0x1;
/// `INET_DIAG_NOCOOKIE`: skip the cookie check.
const NO_COOKIE: u32 = !0;
/// Length of `inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// Length of `inet_diag_msg`.
const MSG_LEN: usize = 72;
/// `AF_INET` / `AF_INET6` as the request's family byte.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// A transport protocol `inet_diag` can look up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiagProtocol {
    /// TCP (`IPPROTO_TCP`).
    Tcp,
    /// UDP (`IPPROTO_UDP`).
    Udp,
}

impl DiagProtocol {
    /// The protocol for an IP protocol number, if `inet_diag` supports it here.
    pub fn from_ip_protocol(protocol: u8) -> Option<Self> {
        match protocol {
            6 => Some(Self::Tcp),
            17 => Some(Self::Udp),
            _ => None,
        }
    }

    fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
        }
    }
}

/// The socket that owns a connection, as `inet_diag` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketInfo {
    /// The socket's inode number (`socket:[INODE]` in `/proc/PID/fd`); 0 for sockets without a
    /// file (e.g. TCP `TIME_WAIT` or request sockets).
    pub inode: u32,
    /// The socket owner's uid (`sock_i_uid`).
    pub uid: u32,
    /// The TCP state number (`TCP_ESTABLISHED` = 1, `TCP_LISTEN` = 10, ...; UDP reports 7).
    pub state: u8,
}

/// A socket-diagnostics netlink socket. Not shared between threads (one per worker).
#[derive(Debug)]
pub struct SockDiag {
    socket: Fd,
    seq: u32,
    buf: Vec<u8>,
    timeout: Duration,
}

impl SockDiag {
    /// Opens the socket in the calling thread's network namespace. Lookups give up after
    /// `timeout` without an answer.
    pub fn open(timeout: Duration) -> Result<Self, NfqError> {
        let socket = sys::call(Op::SockDiagSocket)
            .and_then(|ok| Fd::from_ok(ok, "socket"))
            .map_err(SysError::into_nfq)?;
        sys::call(Op::BindNetlink { fd: socket.raw() }).map_err(SysError::into_nfq)?;
        Ok(Self {
            socket,
            seq: 0,
            buf: vec![0; 8192],
            timeout,
        })
    }

    /// The socket owning the connection `local` ↔ `remote` (oriented from this host: `local` is
    /// the address and port of the local socket). `Ok(None)` when no such socket exists (the
    /// owner closed it, or it never was local). A listening TCP socket answers for a SYN to it.
    pub fn lookup(
        &mut self,
        protocol: DiagProtocol,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<Option<SocketInfo>, NfqError> {
        // TCP: src = local. UDP: src = remote (swapped in udp_diag.c). Try the other order once,
        // in case a kernel ever "fixes" the swap.
        let (first, second) = match protocol {
            DiagProtocol::Tcp => ((local, remote), (remote, local)),
            DiagProtocol::Udp => ((remote, local), (local, remote)),
        };
        if let Some(found) = self.query(protocol, first.0, first.1)? {
            return Ok(Some(found));
        }
        if protocol == DiagProtocol::Udp {
            return self.query(protocol, second.0, second.1);
        }
        Ok(None)
    }

    fn query(
        &mut self,
        protocol: DiagProtocol,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Result<Option<SocketInfo>, NfqError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let Some(request) = build_request(seq, protocol, src, dst) else {
            return Ok(None); // mixed address families: no socket can match
        };
        sys::call(Op::Send {
            fd: self.socket.raw(),
            buf: &request,
        })
        .map_err(SysError::into_nfq)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            match sys::call(Op::RecvOne {
                fd: self.socket.raw(),
                buf: &mut self.buf,
            }) {
                Ok(SysOk::Len(len)) => {
                    let got = len.min(self.buf.len());
                    match parse_reply(self.buf.get(..got).unwrap_or(&[]), seq) {
                        Reply::Found(info) => return Ok(Some(info)),
                        Reply::NotFound => return Ok(None),
                        Reply::Error(errno) => {
                            return Err(NfqError::Syscall {
                                call: "sock_diag lookup",
                                source: std::io::Error::from_raw_os_error(errno),
                            })
                        }
                        Reply::Other => continue, // a stale answer to an earlier request
                    }
                }
                Ok(_) => continue,
                Err(e) if e.errno == libc::EAGAIN || e.errno == libc::EINTR => {}
                Err(e) => return Err(e.into_nfq()),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NfqError::Syscall {
                    call: "sock_diag lookup",
                    source: std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
                });
            }
            let millis = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            sys::call(Op::PollIn {
                fd: self.socket.raw(),
                timeout_ms: millis,
            })
            .map_err(SysError::into_nfq)?;
        }
    }
}

/// What one received datagram said about request `seq`.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Found(SocketInfo),
    NotFound,
    Error(i32),
    Other,
}

/// The address bytes of `inet_diag_sockid.src/dst` (16 bytes, network order).
fn addr_bytes(addr: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out = a.octets(),
    }
    out
}

/// The complete request message (`nlmsghdr` + `inet_diag_req_v2`), or `None` when the two ends
/// are of different address families.
fn build_request(
    seq: u32,
    protocol: DiagProtocol,
    src: SocketAddr,
    dst: SocketAddr,
) -> Option<Vec<u8>> {
    let family = match (src.ip(), dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => AF_INET6,
        _ => return None,
    };
    let total = wire::NLMSG_HDRLEN + REQ_LEN;
    let mut buf = Vec::with_capacity(total);
    buf.extend_from_slice(&u32::try_from(total).unwrap_or(0).to_ne_bytes());
    buf.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    buf.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, protocol.number(), 0, 0]);
    buf.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    buf.extend_from_slice(&src.port().to_be_bytes());
    buf.extend_from_slice(&dst.port().to_be_bytes());
    buf.extend_from_slice(&addr_bytes(src.ip()));
    buf.extend_from_slice(&addr_bytes(dst.ip()));
    buf.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    buf.extend_from_slice(&NO_COOKIE.to_ne_bytes());
    buf.extend_from_slice(&NO_COOKIE.to_ne_bytes());
    Some(buf)
}

fn ne_u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads the answer to request `seq` from one datagram. Malformed or foreign messages are
/// [`Reply::Other`] (never a panic).
fn parse_reply(datagram: &[u8], seq: u32) -> Reply {
    for msg in NlMsgIter::new(datagram).filter_map(Result::ok) {
        if msg.seq != seq {
            continue;
        }
        match msg.msg_type {
            SOCK_DIAG_BY_FAMILY => {
                if msg.payload.len() < MSG_LEN {
                    return Reply::Other;
                }
                let (Some(uid), Some(inode), Some(&state)) = (
                    ne_u32_at(msg.payload, 64),
                    ne_u32_at(msg.payload, 68),
                    msg.payload.get(1),
                ) else {
                    return Reply::Other;
                };
                return Reply::Found(SocketInfo { inode, uid, state });
            }
            wire::NLMSG_ERROR => {
                return match wire::parse_error(msg.payload) {
                    Ok((0, _)) => Reply::Other,
                    Ok((errno, _)) if errno == libc::ENOENT => Reply::NotFound,
                    Ok((errno, _)) => Reply::Error(errno),
                    Err(_) => Reply::Other,
                };
            }
            _ => {}
        }
    }
    Reply::Other
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::sys::fake::FakeKernel;

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port)
    }

    /// An `inet_diag_msg` answer as the kernel would send it.
    fn answer(seq: u32, state: u8, uid: u32, inode: u32) -> Vec<u8> {
        let mut body = vec![AF_INET, state, 0, 0];
        body.extend_from_slice(&[0u8; 48]);
        for value in [0u32, 0, 0, uid, inode] {
            body.extend_from_slice(&value.to_ne_bytes());
        }
        let mut msg = Vec::new();
        let len = u32::try_from(wire::NLMSG_HDRLEN + body.len()).expect("small");
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn request_layout_matches_inet_diag_req_v2() {
        let req = build_request(
            7,
            DiagProtocol::Tcp,
            v4([127, 0, 0, 1], 40000),
            v4([127, 0, 0, 2], 80),
        )
        .expect("same family");
        assert_eq!(req.len(), 16 + 56);
        assert_eq!(&req[0..4], &72u32.to_ne_bytes());
        assert_eq!(&req[4..6], &20u16.to_ne_bytes());
        assert_eq!(&req[8..12], &7u32.to_ne_bytes());
        assert_eq!(&req[16..20], &[AF_INET, 6, 0, 0]);
        assert_eq!(&req[24..26], &40000u16.to_be_bytes());
        assert_eq!(&req[26..28], &80u16.to_be_bytes());
        assert_eq!(&req[28..32], &[127, 0, 0, 1]);
        assert_eq!(&req[44..48], &[127, 0, 0, 2]);
        assert_eq!(&req[64..72], &[0xff; 8]);
        let mixed = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 1);
        assert!(build_request(1, DiagProtocol::Udp, v4([1, 1, 1, 1], 1), mixed).is_none());
    }

    #[test]
    fn replies_are_matched_by_seq_and_never_panic() {
        assert_eq!(
            parse_reply(&answer(3, 1, 1000, 4242), 3),
            Reply::Found(SocketInfo {
                inode: 4242,
                uid: 1000,
                state: 1
            })
        );
        assert_eq!(parse_reply(&answer(2, 1, 1000, 4242), 3), Reply::Other);
        let enoent = wire::tests::error_msg(5, libc::ENOENT);
        assert_eq!(parse_reply(&enoent, 5), Reply::NotFound);
        let eperm = wire::tests::error_msg(5, libc::EPERM);
        assert_eq!(parse_reply(&eperm, 5), Reply::Error(libc::EPERM));
        let full = answer(9, 1, 0, 1);
        for cut in 0..full.len() {
            let _ = parse_reply(&full[..cut], 9);
        }
    }

    #[test]
    fn lookup_skips_stale_answers_and_tries_the_other_udp_order() {
        let fake = FakeKernel::install();
        let mut diag = SockDiag::open(Duration::from_millis(50)).expect("open");
        // TCP: a stale answer (seq 0) first, then ours (seq 1).
        fake.push(answer(0, 1, 1, 1));
        fake.push(answer(1, 1, 1000, 77));
        let found = diag
            .lookup(
                DiagProtocol::Tcp,
                v4([127, 0, 0, 1], 5000),
                v4([127, 0, 0, 1], 80),
            )
            .expect("lookup");
        assert_eq!(found.map(|s| s.inode), Some(77));
        // UDP: the historical order misses, the other order hits.
        fake.push(wire::tests::error_msg(2, libc::ENOENT));
        fake.push(answer(3, 7, 0, 88));
        let found = diag
            .lookup(
                DiagProtocol::Udp,
                v4([127, 0, 0, 1], 5000),
                v4([127, 0, 0, 1], 53),
            )
            .expect("lookup");
        assert_eq!(found.map(|s| s.inode), Some(88));
        let sent = fake.state().sent.clone();
        // Request 2 (UDP, historical order): src = remote port 53, dst = local port 5000.
        assert_eq!(&sent[1][24..26], &53u16.to_be_bytes());
        assert_eq!(&sent[1][26..28], &5000u16.to_be_bytes());
        // Nothing answers: a timeout error, not a hang.
        assert!(diag
            .lookup(
                DiagProtocol::Tcp,
                v4([127, 0, 0, 1], 1),
                v4([127, 0, 0, 1], 2)
            )
            .is_err());
    }
}
