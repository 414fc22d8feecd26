//! The system-call choke point: every syscall this crate makes goes through [`call`].
//!
//! Contract: callers describe an operation as an [`Op`] value and get a [`SysResult`]. The real
//! implementation ([`real`]) is a thin, mechanical translation to `libc`; all policy (retries,
//! counters, parsing) lives above this module so that it can be tested without root. Under
//! `cfg(test)` a thread-local fake ([`fake`]) can be installed to answer instead of the kernel.
//!
//! File descriptors are [`Fd`] values that close themselves through [`call`] too, so a fake
//! sees closes and a fake descriptor number never reaches the real `close(2)`.
//!
//! This is the only module of the crate where `unsafe` is allowed. Each block says why it is
//! needed (`// JUSTIFICATION:`) and why it is sound (`// SAFETY:`).
#![allow(
    unsafe_code,
    reason = "the syscall boundary: libc calls need unsafe; every block carries a SAFETY argument"
)]

pub(crate) mod conntrack;
#[cfg(test)]
pub(crate) mod fake;

use std::io;
use std::os::fd::RawFd;

/// `SOL_NETLINK` (from `bits/socket.h`; not exported by every libc version).
pub(crate) const SOL_NETLINK: libc::c_int = 270;
/// `NETLINK_NO_ENOBUFS`.
const NETLINK_NO_ENOBUFS: libc::c_int = 5;
/// `NETLINK_CAP_ACK`.
const NETLINK_CAP_ACK: libc::c_int = 10;
/// `NETLINK_SOCK_DIAG` (`linux/netlink.h`; same number as the older `NETLINK_INET_DIAG`).
const NETLINK_SOCK_DIAG: libc::c_int = 4;
/// `IPV6_HDRINCL` (`linux/in6.h`, Linux 4.5+).
const IPV6_HDRINCL: libc::c_int = 36;

/// A socket option this crate sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SockOpt {
    /// `SO_RCVBUFFORCE` (needs `CAP_NET_ADMIN`; ignores `rmem_max`).
    RcvBufForce(u32),
    /// `SO_RCVBUF`.
    RcvBuf(u32),
    /// `NETLINK_NO_ENOBUFS`.
    NoEnobufs(bool),
    /// `NETLINK_CAP_ACK`: acknowledgements carry only the request header, not the request.
    CapAck(bool),
    /// `SO_MARK` (needs `CAP_NET_ADMIN`): the mark of every packet the socket sends.
    Mark(u32),
    /// `IP_HDRINCL` on an IPv4 raw socket: the caller supplies the IP header.
    IpHdrIncl,
    /// `IPV6_HDRINCL` on an IPv6 raw socket: the caller supplies the IPv6 header.
    Ipv6HdrIncl,
}

/// One receive slot of [`Op::RecvMany`]: how much of the slot was filled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecvSlot {
    /// Bytes received into the slot.
    pub(crate) len: usize,
    /// `MSG_TRUNC`: the datagram was longer than the slot and its end was lost.
    pub(crate) truncated: bool,
}

/// Reusable `recvmmsg(2)` headers, so that a receive allocates nothing (one per queue).
#[derive(Default)]
pub(crate) struct RecvScratch {
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside (`iov_base`, `msg_iov`) are rewritten at the start of every
// `recv_many` call and only used by the kernel during that call; between calls they are stale
// values that nothing dereferences, so moving the scratch to another thread is harmless.
unsafe impl Send for RecvScratch {}

impl std::fmt::Debug for RecvScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvScratch")
            .field("slots", &self.headers.len())
            .finish()
    }
}

/// Which descriptors [`Op::Poll`] found ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// The netlink socket is readable or has a pending error (e.g. `ENOBUFS`).
    pub(crate) socket: bool,
    /// The stop eventfd was signalled.
    pub(crate) stop: bool,
}

/// A system operation.
#[derive(Debug)]
pub(crate) enum Op<'a> {
    /// `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER)` → [`SysOk::Fd`].
    NetlinkSocket,
    /// `bind(2)` to an address the kernel picks (port id 0, no groups).
    BindNetlink {
        /// The socket.
        fd: RawFd,
    },
    /// `setsockopt(2)`.
    SetSockOpt {
        /// The socket.
        fd: RawFd,
        /// The option.
        opt: SockOpt,
    },
    /// `sendto(2)` to the kernel (port id 0) → [`SysOk::Len`].
    Send {
        /// The socket.
        fd: RawFd,
        /// One or more complete netlink messages.
        buf: &'a [u8],
    },
    /// `recvmmsg(2)` with `MSG_DONTWAIT` into consecutive slots of `slab` → [`SysOk::Len`]
    /// (number of datagrams). `EAGAIN` is returned as an error.
    RecvMany {
        /// The socket.
        fd: RawFd,
        /// `slots.len() * slot_size` bytes.
        slab: &'a mut [u8],
        /// Bytes per slot.
        slot_size: usize,
        /// Filled per received datagram.
        slots: &'a mut [RecvSlot],
        /// Header storage reused from call to call.
        scratch: &'a mut RecvScratch,
    },
    /// `poll(2)` on the socket and the stop eventfd → [`SysOk::Ready`]. `timeout_ms` < 0 waits
    /// forever. `EINTR` is reported as nothing ready.
    Poll {
        /// The netlink socket.
        socket: RawFd,
        /// The stop eventfd.
        stop: RawFd,
        /// Timeout in milliseconds.
        timeout_ms: i32,
    },
    /// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)` → [`SysOk::Fd`].
    EventFd,
    /// Adds 1 to an eventfd (makes it readable for good: it is never read).
    SignalEventFd {
        /// The eventfd.
        fd: RawFd,
    },
    /// `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)` → [`SysOk::Fd`]: the
    /// socket-diagnostics interface (`inet_diag`) used to find a connection's socket owner.
    SockDiagSocket,
    /// `fcntl(fd, F_DUPFD_CLOEXEC, 0)` → [`SysOk::Fd`]: a second descriptor for the same socket
    /// (the same netlink port id), e.g. for verdicts from another thread.
    Dup {
        /// The descriptor to duplicate.
        fd: RawFd,
    },
    /// `recv(2)` of one datagram with `MSG_DONTWAIT | MSG_TRUNC` → [`SysOk::Len`]: the datagram's
    /// full length, which exceeds `buf.len()` when it was cut short. `EAGAIN` is an error.
    RecvOne {
        /// The socket.
        fd: RawFd,
        /// Receives the datagram (or its start).
        buf: &'a mut [u8],
    },
    /// `poll(2)` for input on one descriptor → [`SysOk::Ready`] (`socket` set when readable).
    /// `EINTR` is reported as nothing ready.
    PollIn {
        /// The descriptor.
        fd: RawFd,
        /// Timeout in milliseconds (< 0: forever).
        timeout_ms: i32,
    },
    /// `setns(fd, CLONE_NEWNET)`: moves the calling thread into a network namespace.
    SetNetns {
        /// An open namespace file (e.g. `/run/netns/NAME`).
        fd: RawFd,
    },
    /// `socket(AF_INET or AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW)` → [`SysOk::Fd`]: a
    /// raw socket that sends whole IP packets (injection).
    RawSocket {
        /// AF_INET6 instead of AF_INET.
        v6: bool,
    },
    /// `sendto(2)` of one whole IP packet on a raw socket to `dst` (port 0) → [`SysOk::Len`].
    SendTo {
        /// The raw socket.
        fd: RawFd,
        /// The packet, IP header first.
        buf: &'a [u8],
        /// Its destination address (the routing decision's input).
        dst: std::net::IpAddr,
    },
    /// `close(2)`.
    Close {
        /// The descriptor.
        fd: RawFd,
    },
}

/// A successful result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SysOk {
    /// Nothing to report.
    Done,
    /// A new descriptor.
    Fd(RawFd),
    /// A length or count.
    Len(usize),
    /// Poll readiness.
    Ready(Readiness),
}

/// A failed syscall: which one, and `errno`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SysError {
    /// The syscall's name.
    pub(crate) call: &'static str,
    /// `errno`.
    pub(crate) errno: i32,
}

impl SysError {
    /// The error as an `io::Error`.
    pub(crate) fn io(self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }

    /// Converts into the crate error.
    pub(crate) fn into_nfq(self) -> crate::NfqError {
        crate::NfqError::Syscall {
            call: self.call,
            source: self.io(),
        }
    }
}

/// The result of [`call`].
pub(crate) type SysResult = Result<SysOk, SysError>;

/// Performs one operation: through the test fake if one is installed on this thread, else
/// through the kernel.
pub(crate) fn call(op: Op<'_>) -> SysResult {
    #[cfg(test)]
    let op = match fake::intercept(op) {
        Ok(result) => return result,
        Err(op) => op,
    };
    real(op)
}

/// An owned file descriptor that closes itself through [`call`].
#[derive(Debug)]
pub(crate) struct Fd(RawFd);

impl Fd {
    /// Takes ownership of a descriptor returned by [`call`].
    pub(crate) fn from_ok(ok: SysOk, call_name: &'static str) -> Result<Self, SysError> {
        match ok {
            SysOk::Fd(fd) => Ok(Self(fd)),
            _ => Err(SysError {
                call: call_name,
                errno: libc::EINVAL,
            }),
        }
    }

    /// The raw descriptor number.
    pub(crate) fn raw(&self) -> RawFd {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // Nothing useful can be done about a failed close.
        let _ = call(Op::Close { fd: self.0 });
    }
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn fail(call: &'static str) -> SysResult {
    Err(SysError {
        call,
        errno: errno(),
    })
}

/// A zeroed `sockaddr_nl` addressing the kernel (or, for bind, "kernel picks my port id").
fn kernel_addr() -> libc::sockaddr_nl {
    // JUSTIFICATION: no safe constructor for libc's C struct; zeroing is the C idiom.
    // SAFETY: sockaddr_nl is a plain C struct of integers; all-zero is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> SysResult {
    // JUSTIFICATION: setsockopt(2) has no safe wrapper in std for netlink options.
    // SAFETY: `value` is a live c_int on our stack and we pass its exact size; the kernel only
    // reads it during the call. An invalid fd is reported as EBADF, not UB.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            std::ptr::from_ref(&value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return fail("setsockopt");
    }
    Ok(SysOk::Done)
}

/// The kernel path of [`call`].
fn real(op: Op<'_>) -> SysResult {
    match op {
        Op::NetlinkSocket => {
            // JUSTIFICATION: std cannot open AF_NETLINK sockets.
            // SAFETY: socket(2) takes only integers and returns a new descriptor or -1.
            let fd = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::NETLINK_NETFILTER,
                )
            };
            if fd < 0 {
                return fail("socket");
            }
            Ok(SysOk::Fd(fd))
        }
        Op::BindNetlink { fd } => {
            let addr = kernel_addr();
            // JUSTIFICATION: std cannot bind AF_NETLINK sockets.
            // SAFETY: `addr` is a valid sockaddr_nl that outlives the call and we pass its exact
            // size; bind only reads it.
            let rc = unsafe {
                libc::bind(
                    fd,
                    std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return fail("bind");
            }
            Ok(SysOk::Done)
        }
        Op::SetSockOpt { fd, opt } => {
            let clamp = |v: u32| libc::c_int::try_from(v).unwrap_or(libc::c_int::MAX);
            match opt {
                SockOpt::RcvBufForce(bytes) => {
                    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, clamp(bytes))
                }
                SockOpt::RcvBuf(bytes) => {
                    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, clamp(bytes))
                }
                SockOpt::NoEnobufs(on) => {
                    setsockopt_int(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, libc::c_int::from(on))
                }
                SockOpt::CapAck(on) => {
                    setsockopt_int(fd, SOL_NETLINK, NETLINK_CAP_ACK, libc::c_int::from(on))
                }
                // The mark is a 32-bit value the kernel reads as an int: reinterpret its bits.
                SockOpt::Mark(mark) => setsockopt_int(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_MARK,
                    libc::c_int::from_ne_bytes(mark.to_ne_bytes()),
                ),
                SockOpt::IpHdrIncl => setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_HDRINCL, 1),
                SockOpt::Ipv6HdrIncl => setsockopt_int(fd, libc::IPPROTO_IPV6, IPV6_HDRINCL, 1),
            }
        }
        Op::RawSocket { v6 } => {
            let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
            // JUSTIFICATION: std cannot open raw IP sockets.
            // SAFETY: socket(2) takes only integers and returns a new descriptor or -1.
            let fd = unsafe {
                libc::socket(
                    family,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::IPPROTO_RAW,
                )
            };
            if fd < 0 {
                return fail("socket(SOCK_RAW)");
            }
            Ok(SysOk::Fd(fd))
        }
        Op::SendTo { fd, buf, dst } => send_raw(fd, buf, dst),
        Op::Send { fd, buf } => {
            let addr = kernel_addr();
            loop {
                // JUSTIFICATION: std has no sendto(2) for AF_NETLINK sockets.
                // SAFETY: `buf` is a live slice and we pass its exact length; `addr` is a valid
                // sockaddr_nl with its exact size. sendto only reads both during the call.
                let rc = unsafe {
                    libc::sendto(
                        fd,
                        buf.as_ptr().cast::<libc::c_void>(),
                        buf.len(),
                        0,
                        std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
                        std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                    )
                };
                if rc >= 0 {
                    return Ok(SysOk::Len(rc.unsigned_abs()));
                }
                if errno() != libc::EINTR {
                    return fail("sendto");
                }
            }
        }
        Op::RecvMany {
            fd,
            slab,
            slot_size,
            slots,
            scratch,
        } => recv_many(fd, slab, slot_size, slots, scratch),
        Op::Poll {
            socket,
            stop,
            timeout_ms,
        } => {
            let mut fds = [
                libc::pollfd {
                    fd: socket,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: stop,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // JUSTIFICATION: std has no poll(2); we wait on the socket and the stop eventfd
            // together.
            // SAFETY: `fds` is a live array of two pollfd structs and we pass its exact length;
            // poll writes only the `revents` fields during the call.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if rc < 0 {
                if errno() == libc::EINTR {
                    return Ok(SysOk::Ready(Readiness::default()));
                }
                return fail("poll");
            }
            let [sock, stop] = fds;
            Ok(SysOk::Ready(Readiness {
                socket: sock.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0,
                stop: stop.revents & libc::POLLIN != 0,
            }))
        }
        Op::EventFd => {
            // JUSTIFICATION: std has no eventfd(2).
            // SAFETY: eventfd(2) takes only integers and returns a new descriptor or -1.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return fail("eventfd");
            }
            Ok(SysOk::Fd(fd))
        }
        Op::SignalEventFd { fd } => {
            let one: u64 = 1;
            // JUSTIFICATION: writing to an eventfd by raw fd (it is not a std type).
            // SAFETY: we pass a pointer to a live u64 and exactly 8 bytes, which is what an
            // eventfd write expects; write only reads it during the call.
            let rc = unsafe {
                libc::write(
                    fd,
                    std::ptr::from_ref(&one).cast::<libc::c_void>(),
                    std::mem::size_of::<u64>(),
                )
            };
            // EAGAIN means the counter is at its maximum: still readable, still signalled.
            if rc < 0 && errno() != libc::EAGAIN {
                return fail("write(eventfd)");
            }
            Ok(SysOk::Done)
        }
        Op::SockDiagSocket => {
            // JUSTIFICATION: std cannot open AF_NETLINK sockets.
            // SAFETY: socket(2) takes only integers and returns a new descriptor or -1.
            let fd = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    NETLINK_SOCK_DIAG,
                )
            };
            if fd < 0 {
                return fail("socket");
            }
            Ok(SysOk::Fd(fd))
        }
        Op::Dup { fd } => {
            // JUSTIFICATION: the descriptor is a raw number owned by an `Fd` (see `Op::Close`),
            // so std's `try_clone` on an owned type does not apply.
            // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes integers only; a bad fd is reported as EBADF.
            // The new descriptor is returned to the caller, who wraps it in an `Fd`.
            let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
            if new < 0 {
                return fail("fcntl(F_DUPFD_CLOEXEC)");
            }
            Ok(SysOk::Fd(new))
        }
        Op::RecvOne { fd, buf } => loop {
            // JUSTIFICATION: std has no recv(2) for AF_NETLINK sockets.
            // SAFETY: `buf` is a live, writable slice and we pass its exact length; the kernel
            // writes at most that many bytes (MSG_TRUNC only changes the returned length).
            let rc = unsafe {
                libc::recv(
                    fd,
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if rc >= 0 {
                return Ok(SysOk::Len(rc.unsigned_abs()));
            }
            if errno() != libc::EINTR {
                return fail("recv");
            }
        },
        Op::PollIn { fd, timeout_ms } => {
            let mut fds = [libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            }];
            // JUSTIFICATION: std has no poll(2).
            // SAFETY: `fds` is a live array of one pollfd and we pass its exact length; poll
            // writes only the `revents` field during the call.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if rc < 0 {
                if errno() == libc::EINTR {
                    return Ok(SysOk::Ready(Readiness::default()));
                }
                return fail("poll");
            }
            let [one] = fds;
            Ok(SysOk::Ready(Readiness {
                socket: one.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0,
                stop: false,
            }))
        }
        Op::SetNetns { fd } => {
            // JUSTIFICATION: std has no setns(2).
            // SAFETY: setns(2) takes an fd and a flag; it changes only the calling thread's
            // network namespace and reports bad input through errno.
            let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
            if rc < 0 {
                return fail("setns");
            }
            Ok(SysOk::Done)
        }
        Op::Close { fd } => {
            // JUSTIFICATION: the fd is a raw number owned by `Fd` (so that the test fake can own
            // fake numbers), not a std `OwnedFd`.
            // SAFETY: close(2) on a descriptor we own (callers only pass fds held by an `Fd`,
            // which is closed exactly once, in its Drop).
            let rc = unsafe { libc::close(fd) };
            if rc < 0 {
                return fail("close");
            }
            Ok(SysOk::Done)
        }
    }
}

/// `sendto(2)` of a whole IP packet on a raw socket, to `dst` (port 0).
fn send_raw(fd: RawFd, buf: &[u8], dst: std::net::IpAddr) -> SysResult {
    // JUSTIFICATION: no safe constructor for libc's C structs; zeroing is the C idiom.
    // SAFETY: sockaddr_in and sockaddr_in6 are plain C structs of integers and byte arrays;
    // all-zero is a valid value of each.
    let (mut v4, mut v6): (libc::sockaddr_in, libc::sockaddr_in6) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    let (addr, len) = match dst {
        std::net::IpAddr::V4(a) => {
            v4.sin_family = libc::AF_INET as libc::sa_family_t;
            v4.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
            (
                std::ptr::from_ref(&v4).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_in>(),
            )
        }
        std::net::IpAddr::V6(a) => {
            v6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            v6.sin6_addr.s6_addr = a.octets();
            (
                std::ptr::from_ref(&v6).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_in6>(),
            )
        }
    };
    loop {
        // JUSTIFICATION: std has no sendto(2) for raw IP sockets.
        // SAFETY: `buf` is a live slice and we pass its exact length; `addr` points at `v4` or
        // `v6`, both alive until the end of this function, with the exact size of the one it
        // points at. sendto only reads them during the call.
        let rc = unsafe {
            libc::sendto(
                fd,
                buf.as_ptr().cast::<libc::c_void>(),
                buf.len(),
                0,
                addr,
                len as libc::socklen_t,
            )
        };
        if rc >= 0 {
            return Ok(SysOk::Len(rc.unsigned_abs()));
        }
        if errno() != libc::EINTR {
            return fail("sendto(raw)");
        }
    }
}

/// `recvmmsg(2)` into `slots.len()` consecutive slices of `slab`.
fn recv_many(
    fd: RawFd,
    slab: &mut [u8],
    slot_size: usize,
    slots: &mut [RecvSlot],
    scratch: &mut RecvScratch,
) -> SysResult {
    let count = slots.len().min(slab.len() / slot_size.max(1));
    if count == 0 || slot_size == 0 {
        return Err(SysError {
            call: "recvmmsg",
            errno: libc::EINVAL,
        });
    }
    let RecvScratch { iovecs, headers } = scratch;
    iovecs.clear();
    iovecs.extend(
        slab.chunks_exact_mut(slot_size)
            .take(count)
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_mut_ptr().cast::<libc::c_void>(),
                iov_len: chunk.len(),
            }),
    );
    headers.clear();
    headers.extend(iovecs.iter_mut().map(|iov| {
        // JUSTIFICATION: no safe constructor for libc's C struct; zeroing is the C idiom.
        // SAFETY: msghdr is a plain C struct of integers and pointers; all-zero (null name,
        // no control data) is a valid value.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = std::ptr::from_mut(iov);
        hdr.msg_iovlen = 1;
        libc::mmsghdr {
            msg_hdr: hdr,
            msg_len: 0,
        }
    }));
    let vlen = libc::c_uint::try_from(headers.len()).unwrap_or(libc::c_uint::MAX);
    let rc = loop {
        // JUSTIFICATION: std has no recvmmsg(2); many messages per syscall is the point of the
        // receive path.
        // SAFETY: `headers` holds `vlen` initialised mmsghdr values, each pointing at one iovec
        // in `iovecs`, each describing a disjoint `slot_size` chunk of `slab`. All three live
        // until after the call; the kernel writes at most iov_len bytes per chunk plus the
        // msg_len / msg_flags fields. No timeout pointer (MSG_DONTWAIT makes it non-blocking).
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                vlen,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc >= 0 || errno() != libc::EINTR {
            break rc;
        }
    };
    if rc < 0 {
        return fail("recvmmsg");
    }
    let received = rc.unsigned_abs() as usize;
    for (slot, hdr) in slots.iter_mut().zip(headers.iter()).take(received) {
        slot.len = (hdr.msg_len as usize).min(slot_size);
        slot.truncated = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
    }
    Ok(SysOk::Len(received))
}
