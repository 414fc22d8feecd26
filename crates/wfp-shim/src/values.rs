//! Incoming values (`FWPS_INCOMING_VALUES0`) for each layer, filled the way WFP fills them: IPv4
//! addresses as host-order `FWP_UINT32`, IPv6 as `FWP_BYTE_ARRAY16`, ports as `FWP_UINT16`, for ICMP
//! the type in IP_LOCAL_PORT and the code in IP_REMOTE_PORT (the ICMP_TYPE/ICMP_CODE GUIDs), FLAGS
//! with FWP_CONDITION_FLAG_*, everything unknown as FWP_EMPTY (§2.2, §8.3).
//!
//! Each layer's field list is turned once into a plan of value sources, so filling a layer per packet
//! is a loop over a short array without string comparisons.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use wfp_core::catalogue::{self, LayerId};
use wfp_core::security::Token;
use wfp_core::Value;

/// `NL_ADDRESS_TYPE` (IP_LOCAL_ADDRESS_TYPE, IP_DESTINATION_ADDRESS_TYPE).
pub mod address_type {
    /// NlatUnspecified.
    pub const UNSPECIFIED: u8 = 0;
    /// NlatUnicast.
    pub const UNICAST: u8 = 1;
    /// NlatAnycast.
    pub const ANYCAST: u8 = 2;
    /// NlatMulticast.
    pub const MULTICAST: u8 = 3;
    /// NlatBroadcast.
    pub const BROADCAST: u8 = 4;
}

/// `IF_TYPE` values for INTERFACE_TYPE.
pub mod if_type {
    /// IF_TYPE_ETHERNET_CSMACD.
    pub const ETHERNET: u32 = 6;
    /// IF_TYPE_SOFTWARE_LOOPBACK.
    pub const LOOPBACK: u32 = 24;
}

/// Everything a layer's values are made of, for one classify.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketFacts {
    /// IP protocol (6, 17, 1, 58, ...).
    pub protocol: u8,
    /// Local address (the host's side).
    pub local: Option<IpAddr>,
    /// Remote address.
    pub remote: Option<IpAddr>,
    /// Local port, or the ICMP type.
    pub local_port: Option<u16>,
    /// Remote port, or the ICMP code.
    pub remote_port: Option<u16>,
    /// Source address (IPFORWARD).
    pub source: Option<IpAddr>,
    /// Destination address (IPFORWARD).
    pub destination: Option<IpAddr>,
    /// FWP_CONDITION_FLAG_* bits.
    pub flags: u32,
    /// FWP_DIRECTION (0 outbound, 1 inbound) for layers with a DIRECTION field.
    pub direction: Option<u32>,
    /// Interface index (INTERFACE_INDEX and friends; the LUID fields get it as UINT64).
    pub ifindex: Option<u32>,
    /// True on loopback (INTERFACE_TYPE 24).
    pub loopback: bool,
    /// ALE_APP_ID (lower-case executable path).
    pub app_id: Option<Arc<[u8]>>,
    /// ALE_USER_ID.
    pub user: Option<Arc<Token>>,
    /// ICMP type (ICMP error layers).
    pub icmp_type: Option<u16>,
    /// ICMP code (ICMP error layers).
    pub icmp_code: Option<u16>,
    /// Embedded (inner) packet of an ICMP error: protocol, remote address, local port, remote port.
    pub embedded: Option<(u8, IpAddr, u16, u16)>,
    /// REAUTHORIZE_REASON.
    pub reauth_reason: Option<u32>,
}

/// Where one field's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Protocol,
    Local,
    Remote,
    LocalType,
    DestinationType,
    LocalPort,
    RemotePort,
    SrcAddr,
    DstAddr,
    Flags,
    Direction,
    IfIndex,
    IfLuid,
    IfType,
    TunnelType,
    AppId,
    User,
    IcmpType,
    IcmpCode,
    EmbeddedProtocol,
    EmbeddedRemote,
    EmbeddedLocalType,
    EmbeddedLocalPort,
    EmbeddedRemotePort,
    ReauthReason,
    Compartment,
    Empty,
}

fn source_of(name: &str) -> Source {
    match name {
        "IP_PROTOCOL" => Source::Protocol,
        "IP_LOCAL_ADDRESS" => Source::Local,
        "IP_REMOTE_ADDRESS" => Source::Remote,
        "IP_LOCAL_ADDRESS_TYPE" => Source::LocalType,
        "IP_DESTINATION_ADDRESS_TYPE" => Source::DestinationType,
        "IP_LOCAL_PORT" => Source::LocalPort,
        "IP_REMOTE_PORT" => Source::RemotePort,
        "IP_SOURCE_ADDRESS" => Source::SrcAddr,
        "IP_DESTINATION_ADDRESS" => Source::DstAddr,
        "FLAGS" => Source::Flags,
        "DIRECTION" => Source::Direction,
        "INTERFACE_INDEX"
        | "SUB_INTERFACE_INDEX"
        | "ARRIVAL_INTERFACE_INDEX"
        | "NEXTHOP_INTERFACE_INDEX"
        | "SOURCE_INTERFACE_INDEX"
        | "SOURCE_SUB_INTERFACE_INDEX"
        | "DESTINATION_INTERFACE_INDEX"
        | "DESTINATION_SUB_INTERFACE_INDEX"
        | "NEXTHOP_SUB_INTERFACE_INDEX" => Source::IfIndex,
        "IP_LOCAL_INTERFACE"
        | "IP_ARRIVAL_INTERFACE"
        | "IP_NEXTHOP_INTERFACE"
        | "IP_FORWARD_INTERFACE"
        | "IP_PHYSICAL_ARRIVAL_INTERFACE"
        | "IP_PHYSICAL_NEXTHOP_INTERFACE" => Source::IfLuid,
        "INTERFACE_TYPE" | "ARRIVAL_INTERFACE_TYPE" | "NEXTHOP_INTERFACE_TYPE" => Source::IfType,
        "TUNNEL_TYPE" | "ARRIVAL_TUNNEL_TYPE" | "NEXTHOP_TUNNEL_TYPE" => Source::TunnelType,
        "ALE_APP_ID" | "ALE_ORIGINAL_APP_ID" => Source::AppId,
        "ALE_USER_ID" => Source::User,
        "ICMP_TYPE" => Source::IcmpType,
        "ICMP_CODE" => Source::IcmpCode,
        "EMBEDDED_PROTOCOL" => Source::EmbeddedProtocol,
        "EMBEDDED_REMOTE_ADDRESS" => Source::EmbeddedRemote,
        "EMBEDDED_LOCAL_ADDRESS_TYPE" => Source::EmbeddedLocalType,
        "EMBEDDED_LOCAL_PORT" => Source::EmbeddedLocalPort,
        "EMBEDDED_REMOTE_PORT" => Source::EmbeddedRemotePort,
        "REAUTHORIZE_REASON" => Source::ReauthReason,
        "COMPARTMENT_ID" => Source::Compartment,
        _ => Source::Empty,
    }
}

fn plans() -> &'static [Vec<Source>] {
    static PLANS: OnceLock<Vec<Vec<Source>>> = OnceLock::new();
    PLANS.get_or_init(|| {
        catalogue::all_layers()
            .iter()
            .map(|l| l.fields.iter().map(|f| source_of(f.name)).collect())
            .collect()
    })
}

fn addr(a: Option<IpAddr>) -> Value {
    match a {
        Some(IpAddr::V4(v4)) => Value::ipv4(v4),
        Some(IpAddr::V6(v6)) => Value::ipv6(v6),
        None => Value::Empty,
    }
}

/// NL_ADDRESS_TYPE of an address.
pub fn nl_address_type(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(v4) if v4.is_broadcast() => address_type::BROADCAST,
        IpAddr::V4(v4) if v4.is_multicast() => address_type::MULTICAST,
        IpAddr::V4(v4) if v4.is_unspecified() => address_type::UNSPECIFIED,
        IpAddr::V6(v6) if v6.is_multicast() => address_type::MULTICAST,
        IpAddr::V6(v6) if v6.is_unspecified() => address_type::UNSPECIFIED,
        _ => address_type::UNICAST,
    }
}

/// Fills `out` with `layer`'s incoming values (resized to the layer's `valueCount`).
pub fn fill(layer: LayerId, facts: &PacketFacts, out: &mut Vec<Value>) {
    fill_masked(layer, facts, u64::MAX, out);
}

/// Like [`fill`], but only the fields whose bit is set in `mask` (`Engine::layer_fields_used`)
/// are built; the others are FWP_EMPTY. No filter can tell the difference.
pub fn fill_masked(layer: LayerId, facts: &PacketFacts, mask: u64, out: &mut Vec<Value>) {
    out.clear();
    let Some(plan) = plans().get(usize::from(layer.0)) else {
        return;
    };
    out.extend(plan.iter().enumerate().map(|(i, s)| {
        if i < 64 && mask & (1 << i) == 0 {
            return Value::Empty;
        }
        match s {
            Source::Protocol => Value::Uint8(facts.protocol),
            Source::Local => addr(facts.local),
            Source::Remote => addr(facts.remote),
            Source::LocalType => facts
                .local
                .map_or(Value::Empty, |a| Value::Uint8(nl_address_type(a))),
            Source::DestinationType => facts
                .destination
                .or(facts.remote)
                .map_or(Value::Empty, |a| Value::Uint8(nl_address_type(a))),
            Source::LocalPort => facts.local_port.map_or(Value::Empty, Value::Uint16),
            Source::RemotePort => facts.remote_port.map_or(Value::Empty, Value::Uint16),
            Source::SrcAddr => addr(facts.source),
            Source::DstAddr => addr(facts.destination),
            Source::Flags => Value::Uint32(facts.flags),
            Source::Direction => facts.direction.map_or(Value::Empty, Value::Uint32),
            Source::IfIndex => facts.ifindex.map_or(Value::Empty, Value::Uint32),
            Source::IfLuid => facts
                .ifindex
                .map_or(Value::Empty, |i| Value::Uint64(u64::from(i))),
            Source::IfType => Value::Uint32(if facts.loopback {
                if_type::LOOPBACK
            } else {
                if_type::ETHERNET
            }),
            Source::TunnelType => Value::Uint32(0),
            Source::AppId => facts.app_id.clone().map_or(Value::Empty, Value::ByteBlob),
            Source::User => facts
                .user
                .clone()
                .map_or(Value::Empty, Value::TokenInformation),
            Source::IcmpType => facts.icmp_type.map_or(Value::Empty, Value::Uint16),
            Source::IcmpCode => facts.icmp_code.map_or(Value::Empty, Value::Uint16),
            Source::EmbeddedProtocol => facts.embedded.map_or(Value::Empty, |e| Value::Uint8(e.0)),
            Source::EmbeddedRemote => facts.embedded.map_or(Value::Empty, |e| addr(Some(e.1))),
            Source::EmbeddedLocalType => facts
                .local
                .map_or(Value::Empty, |a| Value::Uint8(nl_address_type(a))),
            Source::EmbeddedLocalPort => {
                facts.embedded.map_or(Value::Empty, |e| Value::Uint16(e.2))
            }
            Source::EmbeddedRemotePort => {
                facts.embedded.map_or(Value::Empty, |e| Value::Uint16(e.3))
            }
            Source::ReauthReason => facts.reauth_reason.map_or(Value::Empty, Value::Uint32),
            Source::Compartment => Value::Uint32(1),
            Source::Empty => Value::Empty,
        }
    }));
}
