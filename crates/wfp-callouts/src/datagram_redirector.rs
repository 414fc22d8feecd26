//! # `wfp.datagram-redirector` — send UDP datagrams for one peer to another, and rewrite the replies
//!
//! | layer | filter action | what it does |
//! |---|---|---|
//! | `OUTBOUND_TRANSPORT_V4/V6`, `OUTBOUND_IPPACKET_V4/V6` | `FWP_ACTION_CALLOUT_TERMINATING` | a UDP datagram to `address`:`port`: cloned with its destination rewritten to `to_address`:`to_port` (IP header and UDP checksums recomputed), the clone injected (`FwpsInjectNetworkSendAsync0`), the original absorbed (BLOCK + ABSORB); the redirection is recorded in the host's [`RedirectTable`] |
//! | `INBOUND_IPPACKET_V4/V6` | `FWP_ACTION_CALLOUT_TERMINATING` | a UDP datagram from a target to a client the table knows: cloned with its source rewritten to the peer the client addressed, injected (`FwpsInjectNetworkReceiveAsync0` on the interface it arrived on), the original absorbed — the client sees the peer it addressed |
//!
//! Registration: no flags, no flowDeleteFn. Parameters ([`crate::builtin_with_config`]), each
//! optional: `address` and `port` select the datagrams by their remote address and port (absent:
//! any); `to_address` and `to_port` say where they go (absent: their own). A datagram whose target
//! is its own destination, or of another family than `to_address`, is left alone, so without
//! parameters nothing is redirected. The instances at the outbound and inbound layers share the
//! host's table ([`crate::Host`]`::redirects`): a reply is rewritten back only for a client whose
//! datagrams were redirected to the replying target (a client talking to the target directly sees
//! it as it is).
//!
//! ```text
//!  client ─► address:port  ─ OUTBOUND: clone, dst := to_address:to_port, inject, absorb ─► target
//!                            (table: (client, target) → address:port)
//!  client ◄─ address:port  ◄ INBOUND_IPPACKET: clone, src := address:port, inject, absorb ─ target
//! ```
//!
//! Its own injections come back through the layers it sits at (network injection re-enters at the
//! top outbound and at the bottom inbound, wfp-reference §10.4); it recognises them with
//! `FwpsQueryPacketInjectionState0` (injected by self, or previously) and permits them, so a rule
//! whose target it matches again (`port` absent, `to_address` set) cannot loop. An injection that
//! fails blocks the original (it never leaks to the original peer).
//!
//! Limits: only unfragmented datagrams are rewritten (IPv4 fragments and IPv6 packets with
//! extension headers before UDP pass untouched: their UDP header is not in one piece); a datagram
//! shorter than its UDP length field is left alone. The table keeps the latest
//! [`RedirectTable::CAPACITY`] redirections (a client whose entry was evicted gets the target's
//! replies as they are). An IPv4 datagram without a UDP checksum (0) keeps none.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::{self, LayerId};
use wfp_core::constants::ClassifyOutFlags;
use wfp_core::inject::{Inject, InjectionKind};
use wfp_core::{ActionType, Callout, CalloutId, RtFilter, Status, Value};

use crate::support::{block, field, injected_by_self, no_opinion, permit, NetworkHandles};

/// Which datagrams go where. Every field is optional: `None` matches any address / port, or
/// keeps it. The default redirects nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedirectorConfig {
    /// Remote address of the datagrams to redirect (`address`; `None`: any).
    pub address: Option<IpAddr>,
    /// Remote UDP port of the datagrams to redirect (`port`; `None`: any).
    pub port: Option<u16>,
    /// The address they go to instead (`to_address`; `None`: theirs).
    pub to_address: Option<IpAddr>,
    /// The port they go to instead (`to_port`; `None`: theirs).
    pub to_port: Option<u16>,
}

impl RedirectorConfig {
    /// Where a datagram to `dst` goes instead; `None` when it does not match or would not move.
    pub fn target(&self, dst: SocketAddr) -> Option<SocketAddr> {
        let matches =
            self.address.is_none_or(|a| a == dst.ip()) && self.port.is_none_or(|p| p == dst.port());
        let ip = self.to_address.unwrap_or(dst.ip());
        let to = SocketAddr::new(ip, self.to_port.unwrap_or(dst.port()));
        (matches && to != dst && ip.is_ipv4() == dst.ip().is_ipv4()).then_some(to)
    }
}

/// Redirections made, so replies can be rewritten back: (client, target) → the peer the client
/// addressed. Shared by the redirector's instances at every layer through [`crate::Host`]
/// (`Host::redirects`); bounded (the oldest entry goes first).
#[derive(Debug, Default)]
pub struct RedirectTable(Mutex<TableInner>);

#[derive(Debug, Default)]
struct TableInner {
    map: HashMap<(SocketAddr, SocketAddr), SocketAddr>,
    order: VecDeque<(SocketAddr, SocketAddr)>,
}

impl RedirectTable {
    /// Entries kept at most.
    pub const CAPACITY: usize = 65_536;

    /// Records that `client`'s datagrams for `original` go to `target`.
    pub fn record(&self, client: SocketAddr, target: SocketAddr, original: SocketAddr) {
        let mut t = self.0.lock();
        if t.map.insert((client, target), original).is_none() {
            t.order.push_back((client, target));
        }
        while t.order.len() > Self::CAPACITY {
            if let Some(old) = t.order.pop_front() {
                t.map.remove(&old);
            }
        }
    }

    /// The peer `client` addressed whose datagrams went to `target`.
    pub fn original(&self, client: SocketAddr, target: SocketAddr) -> Option<SocketAddr> {
        self.0.lock().map.get(&(client, target)).copied()
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.0.lock().map.len()
    }

    /// Whether no redirection is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the redirector did (for hosts and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedirectorStats {
    /// Datagrams sent to their target instead of the peer they addressed.
    pub redirected: u64,
    /// Replies from a target rewritten to come from the peer the client addressed.
    pub replies: u64,
    /// Datagrams blocked because their clone could not be made or injected.
    pub failed: u64,
}

/// `wfp.datagram-redirector` (see the module doc).
pub struct DatagramRedirector {
    config: RedirectorConfig,
    table: Arc<RedirectTable>,
    handles: NetworkHandles,
    redirected: AtomicU64,
    replies: AtomicU64,
    failed: AtomicU64,
}

impl DatagramRedirector {
    /// A redirector with `config`, recording its redirections in `table` (and rewriting the
    /// replies of every redirection there).
    pub fn new(config: RedirectorConfig, table: Arc<RedirectTable>) -> Self {
        Self {
            config,
            table,
            handles: NetworkHandles::default(),
            redirected: AtomicU64::new(0),
            replies: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Its counters so far.
    pub fn stats(&self) -> RedirectorStats {
        RedirectorStats {
            redirected: self.redirected.load(Ordering::Relaxed),
            replies: self.replies.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// The rewrite a datagram needs at a layer of this direction, if any.
    fn rewrite_for(&self, outbound: bool, d: &Datagram) -> Option<(Side, SocketAddr)> {
        if outbound {
            self.config.target(d.dst).map(|to| (Side::Destination, to))
        } else {
            self.table
                .original(d.dst, d.src)
                .map(|from| (Side::Source, from))
        }
    }

    /// Clones `packet` rewritten and injects the clone; whether it worked.
    fn redirect(&self, call: &Call<'_, '_>, packet: &[u8], rewrite: (Side, SocketAddr)) -> bool {
        let Some(bytes) = rewritten(packet, rewrite.0, rewrite.1) else {
            return false;
        };
        let engine = call.ctx.engine();
        let Some(handle) = self.handles.for_packet(engine, packet) else {
            return false;
        };
        let Ok(clone) = call.ctx.clone_packet(call.meta, &bytes) else {
            return false;
        };
        let compartment = call.meta.compartment_id;
        let kind = match rewrite.0 {
            Side::Destination => InjectionKind::NetworkSend { compartment },
            Side::Source => InjectionKind::NetworkReceive {
                compartment,
                interface: match field(call.values, "INTERFACE_INDEX") {
                    Value::Uint32(i) => *i,
                    _ => 0,
                },
                sub_interface: 0,
            },
        };
        let st = engine.inject(Inject {
            handle,
            context: 0,
            kind,
            packet: clone,
            completion: None,
        });
        if st != Status::SUCCESS {
            let _ = engine.free_packet(clone);
            return false;
        }
        true
    }
}

/// One classifyFn's inputs.
struct Call<'c, 'a> {
    ctx: &'c ClassifyContext<'a>,
    values: &'c IncomingValues<'a>,
    meta: &'c Metadata,
}

impl Callout for DatagramRedirector {
    // wfp-reference §10.4: clone (FwpsAllocateCloneNetBufferList0), edit the clone, inject it
    // (FwpsInjectNetworkSendAsync0 / ReceiveAsync0), absorb the original; own injections are
    // recognised with FwpsQueryPacketInjectionState0 and permitted.
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        _flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let LayerData::Packet(packet) = &*layer_data else {
            return no_opinion(out, filter);
        };
        let name = catalogue::layer(values.layer).map_or("", |l| l.name);
        let outbound = name.starts_with("OUTBOUND_");
        if !outbound && !name.starts_with("INBOUND_IPPACKET") {
            return no_opinion(out, filter);
        }
        let Some(rewrite) = Datagram::parse(packet).and_then(|d| self.rewrite_for(outbound, &d))
        else {
            return no_opinion(out, filter);
        };
        if self
            .handles
            .for_packet(ctx.engine(), packet)
            .is_some_and(|h| injected_by_self(ctx.engine(), h, meta))
        {
            return permit(out, filter);
        }
        let call = Call { ctx, values, meta };
        if !self.redirect(&call, packet, rewrite) {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return block(out);
        }
        let counter = match rewrite.0 {
            Side::Destination => {
                if let Some(d) = Datagram::parse(packet) {
                    self.table.record(d.src, rewrite.1, d.dst);
                }
                &self.redirected
            }
            Side::Source => &self.replies,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        out.action_type = ActionType::BLOCK;
        out.flags |= ClassifyOutFlags::ABSORB;
        out.clear_write();
    }

    fn flow_delete(&self, _layer: LayerId, _callout_id: CalloutId, _flow_context: u64) {}
}

// ----- UDP datagrams -----------------------------------------------------------------------

/// Which endpoint of a datagram a rewrite changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

/// An unfragmented UDP datagram's endpoints and where its parts are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Datagram {
    src: SocketAddr,
    dst: SocketAddr,
    /// Offset of the UDP header.
    udp: usize,
    /// UDP length (header included), within the packet.
    udp_len: usize,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ip_at(b: &[u8], at: usize, v6: bool) -> Option<IpAddr> {
    Some(if v6 {
        IpAddr::from(<[u8; 16]>::try_from(b.get(at..at + 16)?).ok()?)
    } else {
        IpAddr::from(<[u8; 4]>::try_from(b.get(at..at + 4)?).ok()?)
    })
}

impl Datagram {
    /// The UDP datagram in IP packet `b`; `None` for anything else, fragments and cut datagrams.
    fn parse(b: &[u8]) -> Option<Self> {
        let (v6, udp, addrs) = match b.first()? >> 4 {
            4 => {
                let ihl = usize::from(b.first()? & 0x0f) * 4;
                let fragment = be16(b, 6)? & 0x3fff != 0;
                if ihl < 20 || *b.get(9)? != 17 || fragment {
                    return None;
                }
                (false, ihl, 12)
            }
            6 if *b.get(6)? == 17 => (true, 40, 8),
            _ => return None,
        };
        let len = if v6 { 16 } else { 4 };
        let udp_len = usize::from(be16(b, udp + 4)?);
        if udp_len < 8 || b.len() < udp + udp_len {
            return None;
        }
        Some(Self {
            src: SocketAddr::new(ip_at(b, addrs, v6)?, be16(b, udp)?),
            dst: SocketAddr::new(ip_at(b, addrs + len, v6)?, be16(b, udp + 2)?),
            udp,
            udp_len,
        })
    }
}

/// The ones' complement sum of `data` (16-bit big-endian words, an odd byte padded), unfolded.
fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

/// Folds and complements a sum.
fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// `packet` with one endpoint of its UDP datagram replaced by `to` (same family), IPv4 header and
/// UDP checksums recomputed; `None` when it is not such a datagram.
fn rewritten(packet: &[u8], side: Side, to: SocketAddr) -> Option<Vec<u8>> {
    let d = Datagram::parse(packet)?;
    let v6 = packet.first()? >> 4 == 6;
    let (addr_at, port_at) = match (side, v6) {
        (Side::Source, false) => (12, d.udp),
        (Side::Destination, false) => (16, d.udp + 2),
        (Side::Source, true) => (8, d.udp),
        (Side::Destination, true) => (24, d.udp + 2),
    };
    let addr = match (to.ip(), v6) {
        (IpAddr::V4(a), false) => a.octets().to_vec(),
        (IpAddr::V6(a), true) => a.octets().to_vec(),
        _ => return None,
    };
    let mut b = packet.to_vec();
    b.get_mut(addr_at..addr_at + addr.len())?
        .copy_from_slice(&addr);
    b.get_mut(port_at..port_at + 2)?
        .copy_from_slice(&to.port().to_be_bytes());
    if !v6 {
        b.get_mut(10..12)?.copy_from_slice(&[0, 0]);
        let header = fold(sum(b.get(..d.udp)?, 0));
        b.get_mut(10..12)?.copy_from_slice(&header.to_be_bytes());
    }
    let csum_at = d.udp + 6;
    if !v6 && be16(&b, csum_at)? == 0 {
        return Some(b);
    }
    b.get_mut(csum_at..csum_at + 2)?.copy_from_slice(&[0, 0]);
    // Pseudo-header (RFC 768 / RFC 8200 §8.1): addresses, protocol 17, UDP length.
    let addrs = if v6 { b.get(8..40)? } else { b.get(12..20)? };
    let pseudo = sum(addrs, 17 + d.udp_len as u32);
    let mut csum = fold(sum(b.get(d.udp..d.udp + d.udp_len)?, pseudo));
    if csum == 0 {
        csum = 0xffff;
    }
    b.get_mut(csum_at..csum_at + 2)?
        .copy_from_slice(&csum.to_be_bytes());
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP/IPv4 datagram 10.0.0.1:4000 → 10.0.0.2:53 with "hi", checksums valid (computed by
    /// hand with the same rules).
    fn v4() -> Vec<u8> {
        let mut b = vec![
            0x45, 0, 0, 30, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x0f, 0xa0, 0,
            53, 0, 10, 0, 0, b'h', b'i',
        ];
        let h = fold(sum(&b[..20], 0));
        b[10..12].copy_from_slice(&h.to_be_bytes());
        let c = fold(sum(&b[20..], sum(&b[12..20], 17 + 10)));
        b[26..28].copy_from_slice(&c.to_be_bytes());
        b
    }

    fn verifies(b: &[u8]) -> bool {
        let d = Datagram::parse(b).expect("a datagram");
        fold(sum(&b[..d.udp], 0)) == 0
            && fold(sum(
                &b[d.udp..d.udp + d.udp_len],
                sum(&b[12..20], 17 + d.udp_len as u32),
            )) == 0
    }

    #[test]
    fn a_rewrite_moves_the_destination_and_keeps_checksums_valid() {
        let b = v4();
        assert!(verifies(&b));
        let to: SocketAddr = "192.0.2.9:5353".parse().expect("addr");
        let r = rewritten(&b, Side::Destination, to).expect("rewritten");
        let d = Datagram::parse(&r).expect("parses");
        assert_eq!(d.dst, to);
        assert_eq!(d.src, "10.0.0.1:4000".parse().expect("addr"));
        assert!(verifies(&r));
        assert_eq!(&r[28..], b"hi");
    }

    #[test]
    fn fragments_cut_datagrams_and_other_families_are_left_alone() {
        let mut frag = v4();
        frag[6] = 0x20; // more fragments
        assert_eq!(Datagram::parse(&frag), None);
        let cut = &v4()[..29];
        assert_eq!(Datagram::parse(cut), None);
        let to: SocketAddr = "[2001:db8::1]:53".parse().expect("addr");
        assert_eq!(rewritten(&v4(), Side::Destination, to), None);
        assert_eq!(Datagram::parse(&[]), None);
    }
}
