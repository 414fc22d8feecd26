//! Sending whole IP packets the host's stack did not make: the packets a callout injected
//! (wfp-reference §10.4), through raw sockets with a mark.
//!
//! ```text
//!  RawSender::open(mark) ── socket(AF_INET,  SOCK_RAW, IPPROTO_RAW) + IP_HDRINCL   + SO_MARK
//!                       └── socket(AF_INET6, SOCK_RAW, IPPROTO_RAW) + IPV6_HDRINCL + SO_MARK
//!  send(packet) ── version nibble → socket, destination address → sendto(dst, port 0)
//!     kernel: route by destination (a local address loops back to INPUT), OUTPUT/INPUT hooks
//!     see the packet with skb->mark = mark: the queue rules skip it (rules::RuleSet::self_mark)
//! ```
//!
//! The mark is how the packet is known to be the reader's own: the rules return before NFQUEUE
//! for packets carrying it, so a packet that was already classified (when it was injected) is not
//! queued and classified a second time. The packet is sent as given: its checksums are the
//! caller's.

use std::net::IpAddr;

use crate::error::NfqError;
use crate::sys::{self, Fd, Op, SockOpt, SysError};

/// Raw IPv4 and IPv6 sockets that send whole IP packets with one mark (`SO_MARK`). Needs
/// `CAP_NET_RAW` and `CAP_NET_ADMIN`. `Send + Sync` (each send is one `sendto(2)`).
#[derive(Debug)]
pub struct RawSender {
    v4: Fd,
    v6: Option<Fd>,
    mark: u32,
}

impl RawSender {
    /// Opens the sockets in the calling thread's network namespace, marking every packet with
    /// `mark`. IPv6 is optional (a kernel without IPv6 sends IPv4 only; IPv6 packets then fail).
    pub fn open(mark: u32) -> Result<Self, NfqError> {
        let v4 = Self::socket(false, mark)?;
        let v6 = Self::socket(true, mark).ok();
        Ok(Self { v4, v6, mark })
    }

    fn socket(v6: bool, mark: u32) -> Result<Fd, NfqError> {
        let fd = sys::call(Op::RawSocket { v6 })
            .and_then(|ok| Fd::from_ok(ok, "socket(SOCK_RAW)"))
            .map_err(SysError::into_nfq)?;
        let hdrincl = if v6 {
            SockOpt::Ipv6HdrIncl
        } else {
            SockOpt::IpHdrIncl
        };
        for opt in [hdrincl, SockOpt::Mark(mark)] {
            sys::call(Op::SetSockOpt { fd: fd.raw(), opt }).map_err(SysError::into_nfq)?;
        }
        Ok(fd)
    }

    /// The mark every packet carries.
    pub fn mark(&self) -> u32 {
        self.mark
    }

    /// Sends one whole IP packet (IP header first) to its destination address.
    pub fn send(&self, packet: &[u8]) -> Result<(), NfqError> {
        let (fd, dst) = match destination(packet) {
            Some(IpAddr::V4(a)) => (&self.v4, IpAddr::V4(a)),
            Some(IpAddr::V6(a)) => match &self.v6 {
                Some(fd) => (fd, IpAddr::V6(a)),
                None => {
                    return Err(NfqError::Syscall {
                        call: "socket(AF_INET6, SOCK_RAW)",
                        source: std::io::Error::from_raw_os_error(libc::EAFNOSUPPORT),
                    })
                }
            },
            None => return Err(NfqError::NotIp { len: packet.len() }),
        };
        sys::call(Op::SendTo {
            fd: fd.raw(),
            buf: packet,
            dst,
        })
        .map_err(SysError::into_nfq)?;
        Ok(())
    }
}

/// The destination address of a whole IPv4 / IPv6 packet.
fn destination(p: &[u8]) -> Option<IpAddr> {
    match p.first()? >> 4 {
        4 => {
            let d: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            Some(IpAddr::from(d))
        }
        6 => {
            let d: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            Some(IpAddr::from(d))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeKernel;

    #[test]
    fn opens_both_families_with_header_inclusion_and_the_mark() {
        let fake = FakeKernel::install();
        let sender = RawSender::open(0x2000_0000).expect("open");
        assert_eq!(sender.mark(), 0x2000_0000);
        let opts = fake.state().sockopts.clone();
        assert_eq!(
            opts,
            vec![
                SockOpt::IpHdrIncl,
                SockOpt::Mark(0x2000_0000),
                SockOpt::Ipv6HdrIncl,
                SockOpt::Mark(0x2000_0000)
            ]
        );
    }

    #[test]
    fn sends_ip_packets_and_refuses_anything_else() {
        let fake = FakeKernel::install();
        let sender = RawSender::open(1).expect("open");
        let mut v4 = vec![0u8; 20];
        v4[0] = 0x45;
        v4[16..20].copy_from_slice(&[10, 0, 0, 2]);
        sender.send(&v4).expect("v4");
        let mut v6 = vec![0u8; 40];
        v6[0] = 0x60;
        sender.send(&v6).expect("v6");
        assert_eq!(fake.state().sent, vec![v4, v6]);
        for bad in [&[][..], &[0x45, 0, 0][..], &[0x20; 40][..]] {
            assert!(
                matches!(sender.send(bad), Err(NfqError::NotIp { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn destination_is_read_from_the_header() {
        let mut v4 = vec![0u8; 20];
        v4[0] = 0x45;
        v4[16..20].copy_from_slice(&[192, 0, 2, 9]);
        assert_eq!(destination(&v4), Some(IpAddr::from([192, 0, 2, 9])));
        let mut v6 = vec![0u8; 40];
        v6[0] = 0x60;
        v6[39] = 1;
        assert_eq!(
            destination(&v6),
            Some(IpAddr::from(std::net::Ipv6Addr::LOCALHOST))
        );
    }
}
