//! The incoming metadata of every classify (`FWPS_INCOMING_METADATA_VALUES0`, wfp-reference §2.3
//! and the "Metadata fields at each filtering layer" column of §8.2): every field the data path
//! knows, flagged in `currentMetadataValues`.
//!
//! | fields | layers | from |
//! |---|---|---|
//! | IP_HEADER_SIZE, COMPARTMENT_ID, FRAGMENT_DATA (fragments) | all packet layers | the IP header; compartment 1 (the default compartment: Linux has one routing namespace per shim) |
//! | SOURCE_INTERFACE_INDEX (inbound, forward) / DESTINATION_INTERFACE_INDEX (outbound) | all packet layers | [`super::PacketContext::ifindex`] |
//! | TRANSPORT_HEADER_SIZE, PACKET_DIRECTION, ICMP_ID_AND_SEQUENCE (ICMP queries), REMOTE_SCOPE_ID (IPv6 link-local remote) | transport layers and up | the transport header |
//! | PATH_MTU | outbound transport layers and up | [`super::ShimConfig::mtu`] |
//! | FLOW_HANDLE, TRANSPORT_ENDPOINT_HANDLE | flow layers | the flow id (one endpoint per flow here) |
//! | PROCESS_ID, PROCESS_PATH, TOKEN | flow layers | the socket owner ([`super::Owner`]; TOKEN is the uid) |
//! | ALE_CLASSIFY_REQUIRED | INBOUND_TRANSPORT of a flow not yet authorized | flow tracking |
//! | COMPLETION_HANDLE | ALE_AUTH_CONNECT / ALE_AUTH_RECV_ACCEPT initial authorizations | minted per classify (§10.1) |
//!
//! An injected packet carries its provenance (`Metadata::injection`, not a `currentMetadataValues`
//! bit) at every layer it re-enters.

use std::cell::OnceCell;
use std::net::IpAddr;
use std::sync::Arc;

use wfp_core::callout::{FragmentMetadata, Metadata};
use wfp_core::constants::{self, MetadataFields};

use super::packet::Seen;
use super::Owner;
use crate::flow::{Direction, FlowId};
use crate::wire::{ParsedPacket, Transport};

/// `compartmentId` of every packet: the default compartment.
pub(super) const DEFAULT_COMPARTMENT: u32 = 1;

/// The metadata of the IP-packet layers (and the base of every other layer's).
pub(super) fn ip_layer_meta(p: &ParsedPacket, seen: &Seen<'_>) -> Metadata {
    let mut m = Metadata {
        ip_header_size: u32::try_from(p.ip.header_len).unwrap_or(u32::MAX),
        compartment_id: DEFAULT_COMPARTMENT,
        present: MetadataFields::IP_HEADER_SIZE | MetadataFields::COMPARTMENT_ID,
        injection: seen.ctx.injection.clone(),
        ..Metadata::default()
    };
    if let Some(f) = &p.ip.fragment {
        m.fragment = FragmentMetadata {
            identification: f.id,
            offset: f.offset,
            length: u32::try_from(p.ip.total_len).unwrap_or(0),
        };
        m.present |= MetadataFields::FRAGMENT_DATA;
    }
    if let Some(i) = seen.ctx.ifindex {
        match seen.dir {
            Direction::Inbound => {
                m.source_interface_index = i;
                m.present |= MetadataFields::SOURCE_INTERFACE_INDEX;
            }
            Direction::Outbound => {
                m.destination_interface_index = i;
                m.present |= MetadataFields::DESTINATION_INTERFACE_INDEX;
            }
        }
    }
    m
}

/// The metadata of the transport layers and above, before flow tracking adds the flow's fields:
/// `ip` (the packet's [`ip_layer_meta`]) plus the transport fields.
pub(super) fn transport_layer_meta(
    ip: Metadata,
    p: &ParsedPacket,
    seen: &Seen<'_>,
    mtu: u32,
) -> Metadata {
    let mut m = ip;
    let header = match &p.transport {
        Transport::Tcp(t) => Some(t.header_len),
        Transport::Udp(_) => Some(8),
        Transport::Icmp(_) => Some(8),
        _ => None,
    };
    if let Some(h) = header {
        m.transport_header_size = u32::try_from(h).unwrap_or(u32::MAX);
        m.present |= MetadataFields::TRANSPORT_HEADER_SIZE;
    }
    m.packet_direction = Some(match seen.dir {
        Direction::Inbound => constants::Direction::Inbound,
        Direction::Outbound => constants::Direction::Outbound,
    });
    m.present |= MetadataFields::PACKET_DIRECTION;
    if let Transport::Icmp(i) = &p.transport {
        if let Some(e) = i.echo {
            m.icmp_id_and_sequence = u32::from(e.id) << 16 | u32::from(e.seq);
            m.present |= MetadataFields::ICMP_ID_AND_SEQUENCE;
        }
    }
    let remote = match seen.dir {
        Direction::Inbound => p.ip.src,
        Direction::Outbound => p.ip.dst,
    };
    if let (IpAddr::V6(r), Some(i)) = (remote, seen.ctx.ifindex) {
        if r.segments()[0] & 0xffc0 == 0xfe80 {
            m.remote_scope_id = i;
            m.present |= MetadataFields::REMOTE_SCOPE_ID;
        }
    }
    if seen.dir == Direction::Outbound {
        m.path_mtu = mtu;
        m.present |= MetadataFields::PATH_MTU;
    }
    m
}

/// The transport and upper layers' metadata of one packet, built on first use: a packet whose
/// classifies are all answered from its flow's reusable answers, or that crosses layers without
/// filters, never builds (nor drops) it. Flow tracking's additions (flow id, socket owner) are
/// noted and applied when it is built, or at once when it was built already.
pub(super) struct LazyMeta<'a> {
    cell: OnceCell<Metadata>,
    parsed: &'a ParsedPacket,
    seen: Seen<'a>,
    flow: Option<FlowId>,
    owner: Option<Owner>,
}

impl<'a> LazyMeta<'a> {
    /// The metadata of `parsed` seen as `seen` says, not built yet.
    #[inline]
    pub(super) fn new(parsed: &'a ParsedPacket, seen: Seen<'a>) -> Self {
        Self {
            cell: OnceCell::new(),
            parsed,
            seen,
            flow: None,
            owner: None,
        }
    }

    /// The metadata (built now if it was not).
    #[inline]
    pub(super) fn get(&self) -> &Metadata {
        self.cell.get_or_init(|| self.build())
    }

    /// Changes the metadata with `f` (built first if it was not).
    pub(super) fn modify(&mut self, f: impl FnOnce(&mut Metadata)) {
        let mut m = self.cell.take().unwrap_or_else(|| self.build());
        f(&mut m);
        self.cell = OnceCell::from(m);
    }

    /// The flow's fields ([`add_flow`]).
    #[inline]
    pub(super) fn set_flow(&mut self, id: FlowId) {
        self.flow = Some(id);
        if let Some(m) = self.cell.get_mut() {
            add_flow(m, id);
        }
    }

    /// The socket owner's fields ([`add_owner`]).
    #[inline]
    pub(super) fn set_owner(&mut self, o: &Owner) {
        match self.cell.get_mut() {
            Some(m) => add_owner(m, o),
            None => self.owner = Some(o.clone()),
        }
    }

    /// [`transport_layer_meta`] plus what flow tracking noted.
    fn build(&self) -> Metadata {
        let (p, seen) = (self.parsed, &self.seen);
        let mut m = transport_layer_meta(ip_layer_meta(p, seen), p, seen, seen.mtu);
        if let Some(id) = self.flow {
            add_flow(&mut m, id);
        }
        if let Some(o) = &self.owner {
            add_owner(&mut m, o);
        }
        m
    }
}

/// Adds a tracked flow's fields: flow handle and transport endpoint handle (the flow id).
pub(super) fn add_flow(m: &mut Metadata, id: FlowId) {
    m.flow_handle = id.get();
    m.transport_endpoint_handle = id.get();
    m.present |= MetadataFields::FLOW_HANDLE | MetadataFields::TRANSPORT_ENDPOINT_HANDLE;
}

/// Adds the socket owner's fields: process id, process path, token (the uid).
pub(super) fn add_owner(m: &mut Metadata, o: &Owner) {
    if let Some(pid) = o.process_id {
        m.process_id = pid;
        m.present |= MetadataFields::PROCESS_ID;
    }
    if let Some(path) = &o.app_id {
        m.process_path = Some(Arc::from(String::from_utf8_lossy(path).as_ref()));
        m.present |= MetadataFields::PROCESS_PATH;
    }
    if let Some(u) = &o.user {
        m.token = u64::from(u.uid);
        m.present |= MetadataFields::TOKEN;
    }
}
