//! Process identity for the ALE layers: who owns the local socket of a new flow.
//!
//! ```text
//!  QueuedPacket ──ports()──► 5-tuple ──known flow? ──yes──► no owner (the shim reuses the flow's)
//!                                        │no (or a bare TCP SYN)
//!                                        ▼
//!              OwnerResolver (sock_diag → inode, uid; /proc → pid, exe; cached)
//!                                        ▼
//!              Owner { app_id: lower-case exe path, user: Token { uid, gids }, process_id }
//! ```
//!
//! * ALE_APP_ID is the executable path lower-cased, as `FwpmGetAppIdFromFileName0` does and as
//!   policy files write it. ALE_USER_ID is a token with the socket owner's uid (the queue's
//!   `NFQA_UID` when present, else socket diagnostics) and the queue's `NFQA_GID`.
//! * **Fallback** when the owner is gone (the process exited, a `TIME_WAIT` socket, forwarded
//!   traffic): no app id, the uid alone if the queue or socket diagnostics gave one, and the
//!   miss is counted. A filter matching ALE_APP_ID then does not match (the field is empty).
//! * Lookups cost a netlink round trip and, on a cache miss, a `/proc` scan, so they run only
//!   for packets that start a flow the shim does not know yet: the set of known flow keys
//!   follows the shim's flow-end events and is bounded.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wfp_core::security::Token;
use wfp_nfqueue::owner::OwnerResolver;
use wfp_nfqueue::QueuedPacket;
use wfp_shim::flow::{FlowHashBuilder, FlowKey};
use wfp_shim::{Owner, PacketContext, PacketDirection};

/// Counters of identity lookups (shared with the statistics).
#[derive(Debug, Default)]
pub struct IdentityStats {
    /// Lookups made (new flows with a TCP or UDP local socket).
    pub lookups: AtomicU64,
    /// Lookups that found the process (app id known).
    pub resolved: AtomicU64,
    /// Lookups that found no process: the fallback was used.
    pub fallback: AtomicU64,
}

/// Transport facts of a queued packet, enough for a socket lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// IP protocol number.
    pub protocol: u8,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// A TCP SYN without ACK (always starts a new flow).
    pub syn: bool,
}

/// Reads protocol, addresses and ports of an IPv4 or IPv6 packet carrying TCP or UDP directly
/// (no IPv6 extension headers, not a non-first fragment). `None` otherwise; never panics.
pub fn ports(ip: &[u8]) -> Option<Ports> {
    let version = ip.first()? >> 4;
    let (protocol, src, dst, l4) = match version {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff;
            if ihl < 20 || frag != 0 {
                return None;
            }
            let s: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (
                *ip.get(9)?,
                IpAddr::V4(Ipv4Addr::from(s)),
                IpAddr::V4(Ipv4Addr::from(d)),
                ip.get(ihl..)?,
            )
        }
        6 => {
            let s: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (
                *ip.get(6)?,
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                ip.get(40..)?,
            )
        }
        _ => return None,
    };
    if protocol != 6 && protocol != 17 {
        return None;
    }
    let sport = u16::from_be_bytes([*l4.first()?, *l4.get(1)?]);
    let dport = u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]);
    let syn = protocol == 6 && l4.get(13).is_some_and(|flags| flags & 0x12 == 0x02);
    Some(Ports {
        protocol,
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        syn,
    })
}

/// Builds the per-packet context (interface, owner) for one worker.
pub struct Identity {
    resolver: Option<OwnerResolver>,
    /// Flows whose owner was looked up. Hashed with the shim's flow hash (a few multiplies per
    /// key instead of SipHash: this set is probed for every packet), randomly seeded so that
    /// bucket placement cannot be predicted from outside.
    known: HashSet<FlowKey, FlowHashBuilder>,
    max_known: usize,
    stats: Arc<IdentityStats>,
}

impl Identity {
    /// An identity source; `resolver` `None` disables process lookups (uids from the queue are
    /// still used).
    pub fn new(resolver: Option<OwnerResolver>, stats: Arc<IdentityStats>) -> Self {
        Self {
            resolver,
            known: HashSet::with_hasher(FlowHashBuilder::new(
                RandomState::new().hash_one(0x5eed_u64),
            )),
            max_known: 1 << 17,
            stats,
        }
    }

    /// The context for `packet` travelling `direction`.
    pub fn context(&mut self, packet: &QueuedPacket, direction: PacketDirection) -> PacketContext {
        let ifindex = match direction {
            PacketDirection::Outbound => packet.outdev,
            _ => packet.indev,
        };
        let mut ctx = PacketContext {
            ifindex,
            owner: None,
            ..PacketContext::default()
        };
        let outbound = match direction {
            PacketDirection::Outbound => true,
            PacketDirection::Inbound => false,
            PacketDirection::Forward | PacketDirection::Infer | PacketDirection::Loopback => {
                return ctx
            }
        };
        let Some(p) = ports(&packet.payload) else {
            return ctx;
        };
        let (local, remote) = if outbound {
            (p.src, p.dst)
        } else {
            (p.dst, p.src)
        };
        let key = FlowKey::new(
            p.protocol,
            local.ip(),
            local.port(),
            remote.ip(),
            remote.port(),
        );
        if !p.syn && self.known.contains(&key) {
            return ctx;
        }
        if self.known.len() >= self.max_known {
            self.known.clear();
        }
        self.known.insert(key);
        ctx.owner = Some(self.owner(packet, p.protocol, local, remote));
        ctx
    }

    /// A flow ended in the shim: its next packet is a new flow and gets a fresh lookup.
    pub fn forget(&mut self, key: &FlowKey) {
        self.known.remove(key);
    }

    /// Every flow ended (e.g. the shim was replaced): every next packet gets a fresh lookup.
    pub fn forget_all(&mut self) {
        self.known.clear();
    }

    fn owner(
        &mut self,
        packet: &QueuedPacket,
        protocol: u8,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Owner {
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        let found = self
            .resolver
            .as_mut()
            .and_then(|r| r.lookup(protocol, local, remote));
        let uid = packet.uid.or(found.as_ref().map(|f| f.uid));
        let user = uid.map(|uid| {
            Arc::new(Token {
                uid,
                gids: packet.gid.into_iter().collect(),
            })
        });
        let process = found.and_then(|f| f.process);
        match process {
            Some(p) => {
                self.stats.resolved.fetch_add(1, Ordering::Relaxed);
                Owner {
                    app_id: p.exe.as_ref().map(|exe| app_id(&exe.to_string_lossy())),
                    user,
                    process_id: Some(u64::from(p.pid)),
                }
            }
            None => {
                self.stats.fallback.fetch_add(1, Ordering::Relaxed);
                Owner {
                    app_id: None,
                    user,
                    process_id: None,
                }
            }
        }
    }
}

/// ALE_APP_ID bytes for an executable path: lower-cased UTF-8, as policy files write it.
pub fn app_id(path: &str) -> Arc<[u8]> {
    Arc::from(path.to_lowercase().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(flags: u8) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0, 0]);
        p.extend_from_slice(&[0, 0, 0, 0]);
        p
    }

    #[test]
    fn reads_ports_and_syn_without_panicking_on_short_input() {
        let p = ports(&ipv4_tcp(0x02)).expect("tcp");
        assert_eq!(p.protocol, 6);
        assert_eq!(p.src, "127.0.0.1:40000".parse().expect("addr"));
        assert_eq!(p.dst, "10.0.0.2:80".parse().expect("addr"));
        assert!(p.syn);
        assert!(!ports(&ipv4_tcp(0x12)).expect("syn-ack").syn);
        let full = ipv4_tcp(0x10);
        for cut in 0..full.len() {
            let _ = ports(&full[..cut]);
        }
        let mut frag = ipv4_tcp(0x02);
        frag[7] = 8; // fragment offset 8: no ports here
        assert_eq!(ports(&frag), None);
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        v6.extend_from_slice(&[0; 15]);
        v6.push(1);
        v6.extend_from_slice(&[0; 15]);
        v6.push(1);
        v6.extend_from_slice(&[0, 53, 0x30, 0x39, 0, 8, 0, 0]);
        let p = ports(&v6).expect("udp6");
        assert_eq!(p.protocol, 17);
        assert_eq!(p.dst.port(), 12345);
    }

    #[test]
    fn only_new_flows_are_looked_up_and_uid_comes_from_the_queue() {
        let stats = Arc::new(IdentityStats::default());
        let mut id = Identity::new(None, Arc::clone(&stats));
        let mut packet = QueuedPacket::default();
        packet.payload = ipv4_tcp(0x02);
        packet.uid = Some(1000);
        packet.gid = Some(100);
        packet.outdev = Some(7);
        let ctx = id.context(&packet, PacketDirection::Outbound);
        assert_eq!(ctx.ifindex, Some(7));
        let owner = ctx.owner.expect("new flow gets an owner");
        assert_eq!(
            owner.user.as_deref(),
            Some(&Token {
                uid: 1000,
                gids: vec![100]
            })
        );
        assert!(owner.app_id.is_none(), "no resolver: fallback");
        packet.payload = ipv4_tcp(0x10);
        assert!(id
            .context(&packet, PacketDirection::Outbound)
            .owner
            .is_none());
        // The same tuple seen inbound is another flow (the other end of a loopback connection).
        assert!(id
            .context(&packet, PacketDirection::Inbound)
            .owner
            .is_some());
        packet.payload = ipv4_tcp(0x02);
        assert!(
            id.context(&packet, PacketDirection::Outbound)
                .owner
                .is_some(),
            "SYN: new flow"
        );
        assert!(id
            .context(&packet, PacketDirection::Forward)
            .owner
            .is_none());
        assert_eq!(stats.lookups.load(Ordering::Relaxed), 3);
        assert_eq!(stats.fallback.load(Ordering::Relaxed), 3);
        assert_eq!(&*app_id("/usr/bin/Python3.11"), b"/usr/bin/python3.11");
    }
}
