//! Flow keys and the seeded hasher of the flow table.

use core::fmt;
use core::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Direction;
use crate::wire::{
    icmp_kind, icmp_request_type, protocol, EmbeddedTransport, IcmpKind, IpVersion, ParsedPacket,
    Transport,
};

/// Identifies a flow: protocol, local address and port, remote address and port, from the point
/// of view of the host the shim protects ("local").
///
/// Because the key is oriented local/remote rather than source/destination, both directions of a
/// conversation already map to the same key when the caller knows which side is local (the
/// packet's [`Direction`]). When it does not (a capture of traffic between two other hosts),
/// [`FlowKey::canonical`] picks a fixed orientation.
///
/// For ICMP (v4 or v6) query and informational messages, the "ports" hold what WFP keys ICMP flows
/// by: the local port holds `type << 8 | code` (a reply's type replaced by its request's type, so
/// an echo request and its reply share the flow) and the remote port the query identifier (0 for
/// messages without one). See [`FlowKey::icmp`].
///
/// Addresses are stored as 16 bytes (IPv4 as IPv4-mapped IPv6) with a version tag, so a key is
/// 40 bytes, compares as five words and hashes as five words.
#[derive(Clone, Copy, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    /// [local hi, local lo, remote hi, remote lo, local_port | remote_port | protocol | version].
    words: [u64; 5],
}

const TAG_V4: u64 = 4;
const TAG_V6: u64 = 6;

impl FlowKey {
    /// A key from its parts. When the two addresses are of different versions, both are stored as
    /// IPv6 (IPv4-mapped) and the key is an IPv6 key.
    pub fn new(
        protocol: u8,
        local: IpAddr,
        local_port: u16,
        remote: IpAddr,
        remote_port: u16,
    ) -> Self {
        let tag = match (local, remote) {
            (IpAddr::V4(_), IpAddr::V4(_)) => TAG_V4,
            _ => TAG_V6,
        };
        let (lh, ll) = split(local);
        let (rh, rl) = split(remote);
        let last = u64::from(local_port) << 48
            | u64::from(remote_port) << 32
            | u64::from(protocol) << 8
            | tag;
        Self {
            words: [lh, ll, rh, rl, last],
        }
    }

    /// The key of an ICMP query or informational exchange: `icmp_type` is normalised to the
    /// request type of its request/reply pair, and `id` is kept only for query types.
    pub fn icmp(local: IpAddr, remote: IpAddr, icmp_type: u8, code: u8, id: u16) -> Self {
        let version = match (local, remote) {
            (IpAddr::V4(_), IpAddr::V4(_)) => IpVersion::V4,
            _ => IpVersion::V6,
        };
        let proto = match version {
            IpVersion::V4 => protocol::ICMP,
            IpVersion::V6 => protocol::ICMPV6,
        };
        let id = if icmp_kind(version, icmp_type) == IcmpKind::Query {
            id
        } else {
            0
        };
        let ty = icmp_request_type(version, icmp_type);
        Self::new(
            proto,
            local,
            u16::from(ty) << 8 | u16::from(code),
            remote,
            id,
        )
    }

    /// The key of a parsed packet travelling in `direction` (inbound: the destination is local;
    /// outbound: the source is local). `None` for fragments and ICMP error messages (use
    /// [`FlowKey::from_icmp_error`]). Protocols without ports get ports 0.
    #[inline]
    pub fn from_packet(direction: Direction, parsed: &ParsedPacket) -> Option<Self> {
        // The common packet, IPv4 TCP or UDP: its words written directly (the same key
        // `FlowKey::new` builds, without matching on address versions).
        let ports = match &parsed.transport {
            Transport::Tcp(t) => Some((protocol::TCP, t.src_port, t.dst_port)),
            Transport::Udp(u) => Some((protocol::UDP, u.src_port, u.dst_port)),
            _ => None,
        };
        if let (IpAddr::V4(src), IpAddr::V4(dst), Some((proto, sp, dp))) =
            (parsed.ip.src, parsed.ip.dst, ports)
        {
            let (local, remote) = orient(direction, src, dst);
            let (lp, rp) = orient(direction, sp, dp);
            return Some(Self::v4(proto, (local, lp), (remote, rp)));
        }
        Self::from_packet_general(direction, parsed)
    }

    /// The key of two IPv4 endpoints (address, port): what [`FlowKey::new`] makes of them.
    #[inline]
    fn v4(protocol: u8, (local, lp): (Ipv4Addr, u16), (remote, rp): (Ipv4Addr, u16)) -> Self {
        let last = u64::from(lp) << 48 | u64::from(rp) << 32 | u64::from(protocol) << 8 | TAG_V4;
        Self {
            words: [0, v4_mapped(local), 0, v4_mapped(remote), last],
        }
    }

    /// [`FlowKey::from_packet`] for every other packet.
    fn from_packet_general(direction: Direction, parsed: &ParsedPacket) -> Option<Self> {
        let ip = &parsed.ip;
        let (local, remote) = orient(direction, ip.src, ip.dst);
        match &parsed.transport {
            Transport::Tcp(t) => {
                let (lp, rp) = orient(direction, t.src_port, t.dst_port);
                Some(Self::new(protocol::TCP, local, lp, remote, rp))
            }
            Transport::Udp(u) => {
                let (lp, rp) = orient(direction, u.src_port, u.dst_port);
                Some(Self::new(protocol::UDP, local, lp, remote, rp))
            }
            Transport::Icmp(i) => match i.kind {
                IcmpKind::Error => None,
                IcmpKind::Query | IcmpKind::Other => {
                    let id = i.echo.map_or(0, |e| e.id);
                    Some(Self::icmp(local, remote, i.icmp_type, i.code, id))
                }
            },
            Transport::Other(p) => Some(Self::new(*p, local, 0, remote, 0)),
            Transport::Fragment => None,
        }
    }

    /// For an ICMP error travelling in `direction`, the key of the flow the embedded packet
    /// belongs to. The embedded packet went the opposite way of the error: for an inbound error
    /// its source is local; for an outbound error its destination is local.
    pub fn from_icmp_error(direction: Direction, parsed: &ParsedPacket) -> Option<Self> {
        let Transport::Icmp(icmp) = &parsed.transport else {
            return None;
        };
        let e = icmp.embedded.as_ref()?;
        let flipped = direction.reverse();
        let (local, remote) = orient(flipped, e.src, e.dst);
        match e.transport {
            EmbeddedTransport::Ports { src_port, dst_port } => {
                let (lp, rp) = orient(flipped, src_port, dst_port);
                Some(Self::new(e.protocol, local, lp, remote, rp))
            }
            EmbeddedTransport::Icmp {
                icmp_type,
                code,
                id,
            } => Some(Self::icmp(local, remote, icmp_type, code, id.unwrap_or(0))),
            EmbeddedTransport::None => Some(Self::new(e.protocol, local, 0, remote, 0)),
        }
    }

    /// The same conversation seen from the other end (local and remote swapped; for ICMP keys only
    /// the addresses are swapped).
    #[must_use]
    pub fn reversed(&self) -> Self {
        let [lh, ll, rh, rl, last] = self.words;
        let last = if self.is_icmp() {
            last
        } else {
            let lp = last >> 48;
            let rp = (last >> 32) & 0xffff;
            (rp << 48) | (lp << 32) | (last & 0xffff_ffff)
        };
        Self {
            words: [rh, rl, lh, ll, last],
        }
    }

    /// A fixed orientation for when no side is known to be local: the endpoint with the smaller
    /// (address, port) becomes "local". `key.canonical() == key.reversed().canonical()`.
    #[must_use]
    pub fn canonical(&self) -> Self {
        if self.is_canonical() {
            *self
        } else {
            self.reversed()
        }
    }

    /// Whether [`FlowKey::canonical`] returns the key unchanged.
    pub fn is_canonical(&self) -> bool {
        let [lh, ll, rh, rl, last] = self.words;
        if self.is_icmp() {
            return (lh, ll) <= (rh, rl);
        }
        (lh, ll, last >> 48) <= (rh, rl, (last >> 32) & 0xffff)
    }

    /// Protocol number.
    pub fn protocol(&self) -> u8 {
        ((self.words[4] >> 8) & 0xff) as u8
    }

    /// IP version.
    pub fn version(&self) -> IpVersion {
        if self.words[4] & 0xff == TAG_V4 {
            IpVersion::V4
        } else {
            IpVersion::V6
        }
    }

    /// Local address.
    pub fn local_addr(&self) -> IpAddr {
        join(self.version(), self.words[0], self.words[1])
    }

    /// Remote address.
    pub fn remote_addr(&self) -> IpAddr {
        join(self.version(), self.words[2], self.words[3])
    }

    /// Local port (for ICMP: `type << 8 | code`).
    pub fn local_port(&self) -> u16 {
        (self.words[4] >> 48) as u16
    }

    /// Remote port (for ICMP: the query identifier).
    pub fn remote_port(&self) -> u16 {
        ((self.words[4] >> 32) & 0xffff) as u16
    }

    /// For an ICMP key: (type, code, identifier).
    pub fn icmp_parts(&self) -> Option<(u8, u8, u16)> {
        self.is_icmp().then(|| {
            let lp = self.local_port();
            ((lp >> 8) as u8, (lp & 0xff) as u8, self.remote_port())
        })
    }

    fn is_icmp(&self) -> bool {
        matches!(
            (self.protocol(), self.version()),
            (protocol::ICMP, IpVersion::V4) | (protocol::ICMPV6, IpVersion::V6)
        )
    }
}

impl PartialEq for FlowKey {
    /// Branch-free word comparison (the derived array comparison calls `memcmp`).
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.words, &other.words);
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }
}

impl Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [lh, ll, rh, rl, last] = self.words;
        state.write_u128(u128::from(lh) << 64 | u128::from(ll));
        state.write_u128(u128::from(rh) << 64 | u128::from(rl));
        state.write_u64(last);
    }
}

impl fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FlowKey({} {}:{} <-> {}:{})",
            self.protocol(),
            self.local_addr(),
            self.local_port(),
            self.remote_addr(),
            self.remote_port()
        )
    }
}

fn orient<T>(direction: Direction, src: T, dst: T) -> (T, T) {
    match direction {
        Direction::Inbound => (dst, src),
        Direction::Outbound => (src, dst),
    }
}

/// The low word of `a`'s IPv4-mapped IPv6 address (::ffff:a.b.c.d; the high word is 0).
#[inline]
fn v4_mapped(a: Ipv4Addr) -> u64 {
    0xffff_u64 << 32 | u64::from(u32::from(a))
}

#[inline]
fn split(addr: IpAddr) -> (u64, u64) {
    match addr {
        // ::ffff:a.b.c.d, the IPv4-mapped address, without going through 128-bit byte swaps.
        IpAddr::V4(a) => (0, v4_mapped(a)),
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            ((bits >> 64) as u64, bits as u64)
        }
    }
}

fn join(version: IpVersion, hi: u64, lo: u64) -> IpAddr {
    let v6 = Ipv6Addr::from(u128::from(hi) << 64 | u128::from(lo));
    match version {
        IpVersion::V4 => IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
        IpVersion::V6 => IpAddr::V6(v6),
    }
}

/// Builds [`FlowHasher`]s from a seed: the flow table's hash, one 64×64→128-bit folded multiply
/// per 64- or 128-bit word written (the foldhash construction; non-cryptographic; the seed comes
/// from configuration so that bucket placement is not predictable from outside). A
/// [`FlowKey`] costs three multiplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowHashBuilder {
    seed: u64,
    multiplier: u64,
}

impl FlowHashBuilder {
    /// A builder whose hashes depend on `seed`.
    pub fn new(seed: u64) -> Self {
        // Derive an odd multiplier from the seed (splitmix64 finaliser), so both operands of the
        // folded multiply depend on it.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Self {
            seed,
            multiplier: z | 1 | (1 << 63),
        }
    }
}

impl BuildHasher for FlowHashBuilder {
    type Hasher = FlowHasher;

    fn build_hasher(&self) -> FlowHasher {
        FlowHasher {
            acc: self.seed,
            multiplier: self.multiplier,
        }
    }
}

/// The hasher built by [`FlowHashBuilder`].
#[derive(Clone, Copy, Debug)]
pub struct FlowHasher {
    acc: u64,
    multiplier: u64,
}

impl Hasher for FlowHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0; 8];
        if let Some(dst) = word.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
        }
        self.write_u64(u64::from_le_bytes(word) ^ (bytes.len() as u64) << 56);
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.acc = folded_multiply(self.acc ^ word, self.multiplier);
    }

    #[inline]
    fn write_u128(&mut self, word: u128) {
        self.acc = folded_multiply(
            self.acc ^ word as u64,
            (word >> 64) as u64 ^ self.multiplier,
        );
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.acc
    }
}

/// The high and low halves of the 128-bit product, xored.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod split_tests {
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn an_ipv4_address_splits_as_its_ipv4_mapped_ipv6_address() {
        for a in [
            Ipv4Addr::new(10, 1, 2, 3),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
        ] {
            let bits = u128::from(a.to_ipv6_mapped());
            let mapped = ((bits >> 64) as u64, bits as u64);
            assert_eq!(super::split(IpAddr::V4(a)), mapped);
            assert_eq!(
                super::join(super::IpVersion::V4, mapped.0, mapped.1),
                IpAddr::V4(a)
            );
        }
    }
}

#[cfg(test)]
mod fast_path_tests {
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;

    use super::{Direction, FlowKey};
    use crate::wire::{self, build::ip_packet};

    proptest! {
        /// The IPv4 TCP/UDP path of `from_packet` gives the key `FlowKey::new` gives.
        #[test]
        fn the_ipv4_fast_path_is_flow_key_new(
            src in any::<u32>(), dst in any::<u32>(), sp in any::<u16>(), dp in any::<u16>(),
            tcp in any::<bool>(), inbound in any::<bool>(),
        ) {
            let (s, d) = (IpAddr::V4(Ipv4Addr::from(src)), IpAddr::V4(Ipv4Addr::from(dst)));
            let proto = if tcp { 6 } else { 17 };
            let mut seg = vec![0u8; if tcp { 20 } else { 8 }];
            seg[..2].copy_from_slice(&sp.to_be_bytes());
            seg[2..4].copy_from_slice(&dp.to_be_bytes());
            if tcp {
                seg[12] = 5 << 4;
            } else {
                seg[4..6].copy_from_slice(&8u16.to_be_bytes());
            }
            let bytes = ip_packet(s, d, proto, &seg).unwrap();
            let parsed = wire::parse(&bytes).unwrap();
            let (dir, want) = if inbound {
                (Direction::Inbound, FlowKey::new(proto, d, dp, s, sp))
            } else {
                (Direction::Outbound, FlowKey::new(proto, s, sp, d, dp))
            };
            prop_assert_eq!(FlowKey::from_packet(dir, &parsed), Some(want));
        }
    }
}
