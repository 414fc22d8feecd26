//! `Shim::handle_ip_packet_into`: a tunnel's outer packet is classified at the IP-packet layer of
//! its direction only — no flow, no transport or ALE layers.

use wfp_core::catalogue::layers;
use wfp_core::{ActionType, MatchType, Value};

use super::pipeline::{cond, tcp, H};
use crate::pipeline::{PacketContext, PacketDirection, PacketVerdict, Verdict};
use crate::testutil::{self, V4};
use crate::wire::TcpFlags;

fn outer(h: &mut H, dir: PacketDirection, bytes: &[u8]) -> PacketVerdict {
    let mut v = PacketVerdict::new(dir);
    h.shim
        .handle_ip_packet_into(h.now, dir, bytes, &PacketContext::default(), &mut v);
    v
}

#[test]
fn outer_packets_visit_only_the_ip_packet_layer_and_start_no_flow() {
    let mut h = H::new();
    let syn = testutil::tcp_packet(&V4, &tcp(TcpFlags::SYN, 1, 0), b"");
    let inbound = outer(&mut h, PacketDirection::Inbound, &syn);
    let layers_seen: Vec<_> = inbound.visits.iter().map(|v| v.layer).collect();
    assert_eq!(layers_seen, [layers::INBOUND_IPPACKET_V4]);
    assert_eq!(inbound.verdict, Verdict::Permit);
    assert_eq!(inbound.direction, PacketDirection::Inbound);
    let outbound = outer(&mut h, PacketDirection::Outbound, &syn);
    let layers_seen: Vec<_> = outbound.visits.iter().map(|v| v.layer).collect();
    assert_eq!(layers_seen, [layers::OUTBOUND_IPPACKET_V4]);
    assert_eq!(h.shim.flow_count(), 0, "an outer packet starts no flow");
}

#[test]
fn a_block_at_the_ip_packet_layer_blocks_the_outer_packet() {
    let mut h = H::new();
    let client = cond(
        layers::INBOUND_IPPACKET_V4,
        "IP_REMOTE_ADDRESS",
        MatchType::Equal,
        Value::Uint32(u32::from(std::net::Ipv4Addr::new(192, 0, 2, 10))).into(),
    );
    h.filter(layers::INBOUND_IPPACKET_V4, ActionType::BLOCK, vec![client]);
    let syn = testutil::tcp_packet(&V4, &tcp(TcpFlags::SYN, 1, 0), b"");
    let v = outer(&mut h, PacketDirection::Inbound, &syn);
    assert_eq!(v.verdict, Verdict::Block);
    assert_eq!(v.layer, Some(layers::INBOUND_IPPACKET_V4));
    let garbage = outer(&mut h, PacketDirection::Inbound, &[0x45, 0, 0]);
    assert_eq!(
        garbage.verdict,
        Verdict::Block,
        "malformed outer packets get the malformed verdict"
    );
}
