//! IP packet stage: parsing, INBOUND_IPPACKET_V4/V6 and OUTBOUND_IPPACKET_V4/V6, and IP
//! fragments (wfp-reference §8.2, the IPPACKET rows: fragments indicated raw, with
//! FWP_CONDITION_FLAG_IS_FRAGMENT, and reassembled; §14.6 T-CL-7).
//!
//! Inbound, the IP-packet layer is the first layer; outbound, the last. A fragment is classified
//! raw and as a fragment, then held; the datagram it completes is classified at the inbound
//! IP-packet layer with IS_REASSEMBLED and goes on through the upper layers.

use std::cell::OnceCell;
use std::ops::ControlFlow::{self, Continue};

use wfp_core::callout::LayerData;
use wfp_core::catalogue::layers;
use wfp_core::constants::ConditionFlags;
use wfp_core::LayerId;

use super::classify::{MetaRef, Step};
use super::packet::Packet;
use super::{FragmentDrop, Malformed, PacketContext, PacketVerdict, Reason, Shim};
use crate::flow::Direction;
use crate::frag::{FragOutcome, Fragment};
use crate::wire::{self, IpVersion, ParseConfig, ParseError, ParsedPacket};

impl Shim {
    /// Parses `bytes` (as a capture's first bytes when `ctx.truncated`), counting checksum
    /// mismatches and cut packets of the packets that parse.
    #[inline]
    pub(super) fn parse(
        &mut self,
        bytes: &[u8],
        ctx: &PacketContext,
    ) -> Result<ParsedPacket, ParseError> {
        let config = ParseConfig {
            truncated: self.config.parse.truncated || ctx.truncated,
            ..self.config.parse
        };
        let parsed = wire::parse_with(bytes, &config);
        if let Ok(p) = &parsed {
            if p.ip.version == IpVersion::V4
                && wire::Ipv4Packet::new_unchecked(bytes).total_len() == 0
            {
                self.stats.ipv4_zero_length += 1;
            }
            if !p.ip.checksum_ok {
                self.stats.ipv4_checksum_mismatches += 1;
            }
            if p.is_truncated() {
                self.stats.truncated += 1;
            }
        }
        parsed
    }

    /// A packet that did not parse (`e`): counted, [`super::ShimConfig::malformed`].
    pub(super) fn malformed_packet(&mut self, bytes: &[u8], e: ParseError, v: &mut PacketVerdict) {
        // A whole IPv4 header whose checksum is wrong is counted whatever else failed.
        if !matches!(e, ParseError::Ipv4Checksum { .. }) && ipv4_checksum_mismatch(bytes) {
            self.stats.ipv4_checksum_mismatches += 1;
        }
        self.count_malformed(Malformed::Packet(e), v);
    }

    /// INBOUND_IPPACKET (inbound packets only; outbound ones meet the IP-packet layer last).
    pub(super) fn inbound_ip_packet(&mut self, pkt: &mut Packet<'_>) -> ControlFlow<()> {
        if pkt.dir != Direction::Inbound {
            return Continue(());
        }
        let layer = ip_layer(pkt.dir, pkt.parsed);
        if let Some(step) = self.unfiltered(layer, pkt.verdict) {
            return step;
        }
        // The IP-packet layer runs before flow tracking; a flow already known for this packet
        // keeps reusable answers for it too (the answers depend on the facts, not the flow). A
        // reassembled datagram is classified afresh.
        let known = if pkt.reassembled {
            None
        } else {
            self.known_flow(layer, pkt.parsed)
        };
        let (cell, build) = (OnceCell::new(), pkt.ip_meta_fn());
        let meta = MetaRef::Once(&cell, &build);
        let facts = pkt.ip_facts();
        let step = Step::new(layer, &facts, meta, LayerData::Packet(pkt.bytes));
        self.classify_flow_step(known, step, pkt.verdict)
    }

    /// OUTBOUND_IPPACKET, the last layer of an outbound packet.
    pub(super) fn outbound_ip_packet(&mut self, pkt: &mut Packet<'_>) -> ControlFlow<()> {
        if pkt.dir != Direction::Outbound {
            return Continue(());
        }
        let layer = ip_layer(pkt.dir, pkt.parsed);
        if let Some(step) = self.unfiltered(layer, pkt.verdict) {
            return step;
        }
        let (cell, build) = (OnceCell::new(), pkt.ip_meta_fn());
        let meta = MetaRef::Once(&cell, &build);
        let facts = pkt.ip_facts();
        let step = Step::new(layer, &facts, meta, LayerData::Packet(pkt.bytes));
        self.classify_flow_step(pkt.extra, step, pkt.verdict)
    }

    /// A fragment: raw + IS_FRAGMENT at the IP-packet layer, then reassembly. The datagram it
    /// completes goes on through the layers with this fragment's verdict.
    pub(super) fn fragment(&mut self, pkt: &mut Packet<'_>) {
        let layer = ip_layer(pkt.dir, pkt.parsed);
        let meta = &pkt.ip_meta();
        let ip = pkt.ip_facts();
        let raw = Step::new(layer, &ip, meta, LayerData::Packet(pkt.bytes));
        if self.classify_step(raw, pkt.verdict).is_break() {
            return;
        }
        let mut facts = ip;
        facts.flags |= ConditionFlags::IS_FRAGMENT.0;
        let fragment = Step::new(layer, &facts, meta, LayerData::Packet(pkt.bytes));
        if self.classify_step(fragment, pkt.verdict).is_break() {
            return;
        }
        if pkt.parsed.is_truncated() {
            // The data a reassembly needs is not in the capture.
            self.stats.fragments_dropped += 1;
            pkt.verdict.reason = Reason::FragmentDropped(FragmentDrop::CaptureCut);
            return;
        }
        let Some((key, frag)) = Fragment::from_parsed(pkt.bytes, pkt.parsed) else {
            pkt.verdict.reason = Reason::FragmentDropped(FragmentDrop::UnusableHeader);
            return;
        };
        match self.frags.handle_fragment(pkt.now, key, frag) {
            FragOutcome::Incomplete => pkt.verdict.reason = Reason::FragmentHeld,
            FragOutcome::Dropped(d) => {
                self.stats.fragments_dropped += 1;
                pkt.verdict.reason = Reason::FragmentDropped(FragmentDrop::Reassembly(d));
            }
            FragOutcome::Reassembled(whole) => self.reassembled(pkt, &whole),
        }
    }

    /// The datagram `whole` a fragment completed: parsed again, then the inbound IP-packet layer
    /// (IS_REASSEMBLED) and the upper layers. Outbound, the upper layers run first and the
    /// IP-packet layer last, as for any outbound packet.
    fn reassembled(&mut self, pkt: &mut Packet<'_>, whole: &[u8]) {
        match wire::parse_with(whole, &self.config.parse) {
            Ok(parsed) => {
                let mut datagram = pkt.reassembled_datagram(&parsed, whole);
                if self.inbound_ip_packet(&mut datagram).is_continue() {
                    self.upper(&mut datagram);
                }
                // A loopback datagram goes on through the receiver's side.
                if pkt.loopback && pkt.verdict.verdict == super::Verdict::Permit {
                    let seen = super::packet::Seen {
                        dir: Direction::Inbound,
                        ..pkt.seen()
                    };
                    self.receiver_side(seen, (&parsed, whole), true, pkt.verdict);
                }
            }
            Err(e) => self.count_malformed(Malformed::Reassembled(e), pkt.verdict),
        }
    }

    /// Counts an offloaded super-segment: a TCP packet longer than [`super::ShimConfig::mtu`]
    /// that is not loopback traffic (loopback's own MTU is 64 KiB).
    #[inline]
    pub(super) fn count_offload(&mut self, p: &ParsedPacket, ctx: &PacketContext, loopback: bool) {
        let tcp = matches!(p.transport, wire::Transport::Tcp(_));
        let over = p.ip.total_len > self.config.mtu as usize;
        let on_lo = ctx
            .interface
            .is_some_and(|i| i.if_type == super::packet::IF_TYPE_SOFTWARE_LOOPBACK);
        if tcp && over && !loopback && !on_lo && !p.ip.src.is_loopback() {
            self.stats.super_segments += 1;
        }
    }

    /// A packet or reassembled datagram that did not parse: counted,
    /// [`super::ShimConfig::malformed`].
    fn count_malformed(&mut self, m: Malformed, v: &mut PacketVerdict) {
        self.stats.malformed += 1;
        if matches!(m.error(), ParseError::Ipv4Checksum { .. }) {
            self.stats.ipv4_checksum_mismatches += 1;
        }
        v.verdict = self.config.malformed;
        v.reason = Reason::Malformed(m);
    }
}

/// The IP-packet layer of `p` travelling `dir`.
#[inline]
pub(super) fn ip_layer(dir: Direction, p: &ParsedPacket) -> LayerId {
    match (dir, p.ip.version) {
        (Direction::Inbound, IpVersion::V4) => layers::INBOUND_IPPACKET_V4,
        (Direction::Inbound, IpVersion::V6) => layers::INBOUND_IPPACKET_V6,
        (Direction::Outbound, IpVersion::V4) => layers::OUTBOUND_IPPACKET_V4,
        (Direction::Outbound, IpVersion::V6) => layers::OUTBOUND_IPPACKET_V6,
    }
}

/// `bytes` start with a whole IPv4 header whose checksum does not verify.
fn ipv4_checksum_mismatch(bytes: &[u8]) -> bool {
    let p = wire::Ipv4Packet::new_unchecked(bytes);
    p.version() == 4
        && p.header_len() >= 20
        && bytes.len() >= p.header_len()
        && !p.verify_checksum()
}
