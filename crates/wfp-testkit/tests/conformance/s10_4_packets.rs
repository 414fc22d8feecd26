//! §10.4 packets a callout holds (wdk-runtime §6–7): FwpsReferenceNetBufferList0 /
//! FwpsDereferenceNetBufferList0 (a referenced indicated packet outlives classifyFn until its last
//! dereference), NdisRetreat/AdvanceNetBufferDataStart on a clone taken at a layer whose data
//! starts after the headers, and FwpsConstructIpHeaderForTransportPacket0.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use wfp_core::callout::Metadata;
use wfp_core::constants::MetadataFields;
use wfp_core::inject::{
    AddressFamily, Inject, InjectionKind, InjectionTypes, IpHeaderArgs, PacketId,
};
use wfp_testkit::prelude::*;

const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// RFC 1071 sum of `parts`, folded (0 when the checksummed bytes include a correct checksum).
fn ones(parts: &[&[u8]]) -> u16 {
    let mut acc: u64 = 0;
    for p in parts {
        for c in p.chunks(2) {
            acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// A UDP header and payload (checksum 0).
fn udp(payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut t = vec![0x9c, 0x40, 0, 53];
    t.extend_from_slice(&len.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(payload);
    t
}

/// An IPv4 header with `options` for a `transport` of `proto`.
fn ipv4_header(options: &[u8], proto: u8, transport_len: usize) -> Vec<u8> {
    let hl = 20 + options.len();
    let total = (hl + transport_len) as u16;
    let mut h = vec![0x40 | (hl / 4) as u8, 0x10];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34, 0, 0, 17, proto, 0, 0]);
    h.extend_from_slice(&SRC.octets());
    h.extend_from_slice(&DST.octets());
    h.extend_from_slice(options);
    let c = ones(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// Runs one classify whose callout does `f` with the metadata `meta` and returns what it returned.
fn in_classify<T: Send + 'static>(
    h: &Harness,
    meta: &Metadata,
    f: impl Fn(&wfp_testkit::scripted::Call<'_>) -> T + Send + Sync + 'static,
) -> T {
    let got: Arc<Mutex<Option<T>>> = Arc::default();
    let g = got.clone();
    let c = ScriptedCallout::new(move |call, _| {
        *g.lock().unwrap() = Some(f(call));
    })
    .build();
    let sl = h.sublayer("pk", 1);
    h.callout_filter(
        layers::INBOUND_TRANSPORT_V4,
        sl,
        1,
        ActionType::CALLOUT_INSPECTION,
        &c,
    );
    h.classify_meta(layers::INBOUND_TRANSPORT_V4, TCP_TEMPL, meta);
    let v = got.lock().unwrap().take().expect("the callout ran");
    v
}

/// The metadata of INBOUND_TRANSPORT for a packet whose headers are `headers`.
fn inbound_meta(headers: &[u8], ip_len: u32) -> Metadata {
    Metadata {
        present: MetadataFields::IP_HEADER_SIZE | MetadataFields::TRANSPORT_HEADER_SIZE,
        ip_header_size: ip_len,
        transport_header_size: headers.len() as u32 - ip_len,
        header_bytes: Some(headers.into()),
        ..Metadata::default()
    }
}

/// FwpsReferenceNetBufferList0: the indicated packet stays valid after classifyFn returned, until
/// its last dereference; it can be cloned later but never injected or freed itself.
#[test]
fn referenced_packet_outlives_classify_until_its_last_dereference() {
    let h = Harness::new();
    let e = h.engine();
    let t = udp(b"ping");
    let ip = ipv4_header(&[], 17, t.len());
    let meta = inbound_meta(&[ip.as_slice(), &t[..8]].concat(), 20);
    let payload = b"ping".to_vec();
    let p: PacketId = in_classify(&h, &meta, move |call| {
        call.ctx
            .reference_packet(call.meta, &payload, false)
            .unwrap()
    });
    // Valid after classifyFn returned.
    assert_eq!(e.packet_data(p).as_deref(), Some(&b"ping"[..]));
    assert_eq!(e.ledger_counts().held, 1);
    // It is the data path's packet: not freed, not injected, not modified without intent.
    assert_eq!(e.free_packet(p), Status::INVALID_PARAMETER);
    assert_eq!(e.set_packet_data(p, vec![0u8]), Status::INVALID_PARAMETER);
    let handle = e
        .create_injection_handle(AddressFamily::Inet, InjectionTypes::TRANSPORT)
        .unwrap();
    let inject = |packet| Inject {
        handle,
        context: 0,
        kind: InjectionKind::TransportReceive {
            compartment: 1,
            interface: 0,
            sub_interface: 0,
        },
        packet,
        completion: None,
    };
    assert_eq!(e.inject(inject(p)), Status::INVALID_PARAMETER);
    // A clone taken later is the callout's, whole packet behind its data start.
    let clone = e.clone_held_packet(p).unwrap();
    assert_eq!(e.retreat_packet(clone, 28), Status::SUCCESS);
    assert_eq!(
        e.packet_data(clone).as_deref(),
        Some(&[ip.as_slice(), &t].concat()[..])
    );
    assert_eq!(e.inject(inject(clone)), Status::SUCCESS);
    assert_eq!(e.reference_packet(clone), Status::FWP_NOT_FOUND, "injected");
    // Two references, two dereferences; a third is refused.
    assert_eq!(e.reference_packet(p), Status::SUCCESS);
    assert_eq!(e.dereference_packet(p), Status::SUCCESS);
    assert_eq!(e.packet_data(p).as_deref(), Some(&b"ping"[..]), "one left");
    assert_eq!(e.dereference_packet(p), Status::SUCCESS);
    assert_eq!(e.packet_data(p), None);
    assert_eq!(e.dereference_packet(p), Status::FWP_NOT_FOUND);
    let st = e.injection_stats();
    assert_eq!(
        (st.created, st.referenced, st.freed, st.injected),
        (2, 1, 1, 1)
    );
    assert_eq!(e.ledger_counts().held, 0);
    // A clone or allocation takes no references.
    let own = e.allocate_packet(vec![1u8]);
    assert_eq!(e.reference_packet(own), Status::INVALID_PARAMETER);
    assert_eq!(e.dereference_packet(own), Status::INVALID_PARAMETER);
    assert_eq!(e.free_packet(own), Status::SUCCESS);
}

/// With intendToModify a referenced packet may be changed (rule 2.6-2(c)).
#[test]
fn referenced_with_intend_to_modify_may_be_changed() {
    let h = Harness::new();
    let e = h.engine();
    let p = in_classify(&h, &Metadata::default(), |call| {
        call.ctx.reference_packet(call.meta, b"abc", true).unwrap()
    });
    assert_eq!(e.set_packet_data(p, b"xyz".to_vec()), Status::SUCCESS);
    assert_eq!(e.packet_data(p).as_deref(), Some(&b"xyz"[..]));
    assert_eq!(e.dereference_packet(p), Status::SUCCESS);
}

/// A clone of INBOUND_TRANSPORT's layerData (the payload, §8.2) carries the headers behind its
/// data start: retreating by ipHeaderSize + transportHeaderSize gives the whole packet; advance
/// goes back; a retreat past them prepends new (zeroed) space as NDIS allocates a new MDL.
#[test]
fn clone_at_an_inbound_layer_retreats_to_the_whole_packet() {
    let h = Harness::new();
    let e = h.engine();
    let t = udp(b"hello");
    let ip = ipv4_header(&[], 17, t.len());
    let whole = [ip.as_slice(), &t].concat();
    let meta = inbound_meta(&whole[..28], 20);
    let p = in_classify(&h, &meta, |call| {
        call.ctx.clone_packet(call.meta, b"hello").unwrap()
    });
    assert_eq!(e.packet_data(p).as_deref(), Some(&b"hello"[..]));
    let back = (meta.ip_header_size + meta.transport_header_size) as usize;
    assert_eq!(e.retreat_packet(p, back), Status::SUCCESS);
    assert_eq!(e.packet_data(p).as_deref(), Some(&whole[..]));
    assert_eq!(e.advance_packet(p, 20), Status::SUCCESS);
    assert_eq!(e.packet_data(p).as_deref(), Some(&t[..]));
    assert_eq!(e.advance_packet(p, t.len() + 1), Status::INVALID_PARAMETER);
    assert_eq!(e.retreat_packet(p, 24), Status::SUCCESS);
    let d = e.packet_data(p).unwrap();
    assert_eq!(&d[..4], &[0, 0, 0, 0], "four new bytes");
    assert_eq!(&d[4..], &whole[..]);
    assert_eq!(e.retreat_packet(PacketId(9999), 1), Status::FWP_NOT_FOUND);
    assert_eq!(e.free_packet(p), Status::SUCCESS);
}

fn args(hil: u32, src: IpAddr, dst: IpAddr, proto: u8) -> IpHeaderArgs {
    IpHeaderArgs {
        header_include_header_length: hil,
        family: match src {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        },
        source: src,
        remote: dst,
        next_protocol: proto,
        endpoint: 0,
        control_data: None,
        interface: 0,
        sub_interface: 0,
    }
}

/// FwpsConstructIpHeaderForTransportPacket0 on a transport packet: a new IPv4 header in front,
/// IP and UDP checksums valid.
#[test]
fn construct_ip_header_prepends_a_valid_ipv4_header() {
    let h = Harness::new();
    let e = h.engine();
    let t = udp(b"data!");
    let p = e.allocate_packet(t.clone());
    let a = args(0, SRC.into(), DST.into(), 17);
    assert_eq!(
        e.construct_ip_header_for_transport_packet(p, &a),
        Status::SUCCESS
    );
    let d = e.packet_data(p).unwrap();
    assert_eq!(d.len(), 20 + t.len());
    assert_eq!((d[0], d[9]), (0x45, 17));
    assert_eq!(u16::from_be_bytes([d[2], d[3]]) as usize, d.len());
    assert_eq!(ones(&[&d[..20]]), 0, "IPv4 header checksum");
    assert_eq!(&d[12..16], &SRC.octets());
    assert_eq!(&d[16..20], &DST.octets());
    let pseudo = [
        &SRC.octets()[..],
        &DST.octets(),
        &[0, 17],
        &(t.len() as u16).to_be_bytes(),
    ]
    .concat();
    assert_eq!(ones(&[&pseudo, &d[20..]]), 0, "UDP checksum");
    assert_eq!(&d[28..], b"data!");
    assert_eq!(e.free_packet(p), Status::SUCCESS);
}

/// Rebuilding an existing header: IPv4 options and identification/TTL kept, addresses replaced;
/// IPv6 extension headers removed.
#[test]
fn construct_ip_header_rebuilds_keeping_ipv4_options_and_dropping_ipv6_extensions() {
    let h = Harness::new();
    let e = h.engine();
    let t = udp(b"x");
    let opts = [1u8, 1, 1, 0]; // NOP NOP NOP EOL
    let old = ipv4_header(&opts, 17, t.len());
    let p = e.allocate_packet([old.as_slice(), &t].concat());
    let new_dst = Ipv4Addr::new(203, 0, 113, 9);
    let a = args(24, SRC.into(), new_dst.into(), 17);
    assert_eq!(
        e.construct_ip_header_for_transport_packet(p, &a),
        Status::SUCCESS
    );
    let d = e.packet_data(p).unwrap();
    assert_eq!(d[0], 0x46, "IHL 6: options kept");
    assert_eq!(&d[20..24], &opts);
    assert_eq!((&d[4..6], d[8]), (&[0x12, 0x34][..], 17), "id and TTL kept");
    assert_eq!(&d[16..20], &new_dst.octets());
    assert_eq!(ones(&[&d[..24]]), 0);
    e.free_packet(p);

    // IPv6 with an 8-byte hop-by-hop header, rebuilt: 40-byte header, next header UDP.
    let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let d6: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let mut v6 = vec![0x60, 0, 0, 0];
    v6.extend_from_slice(&((8 + t.len()) as u16).to_be_bytes());
    v6.extend_from_slice(&[0, 33]);
    v6.extend_from_slice(&s6.octets());
    v6.extend_from_slice(&d6.octets());
    v6.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    let p = e.allocate_packet([v6.as_slice(), &t].concat());
    let a = args(48, s6.into(), d6.into(), 17);
    assert_eq!(
        e.construct_ip_header_for_transport_packet(p, &a),
        Status::SUCCESS
    );
    let d = e.packet_data(p).unwrap();
    assert_eq!(d.len(), 40 + t.len());
    assert_eq!((d[6], d[7]), (17, 33), "next header UDP, hop limit kept");
    let pseudo = [
        &s6.octets()[..],
        &d6.octets(),
        &[0, 17],
        &(t.len() as u16).to_be_bytes(),
    ]
    .concat();
    assert_eq!(
        ones(&[&pseudo, &d[40..]]),
        0,
        "UDP checksum over the IPv6 pseudo-header"
    );
    e.free_packet(p);
}

/// Misuse: mixed or unspecified families, a header length that is not the packet's IP header,
/// an unknown packet.
#[test]
fn construct_ip_header_misuse_is_refused_and_changes_nothing() {
    let h = Harness::new();
    let e = h.engine();
    let t = udp(b"x");
    let p = e.allocate_packet(t.clone());
    let v6: IpAddr = "2001:db8::1".parse::<Ipv6Addr>().unwrap().into();
    let bad = [
        args(0, SRC.into(), v6, 17),
        IpHeaderArgs {
            family: AddressFamily::Unspecified,
            ..args(0, SRC.into(), DST.into(), 17)
        },
        args(20, SRC.into(), DST.into(), 17),
        args(4096, SRC.into(), DST.into(), 17),
    ];
    for a in &bad {
        assert_eq!(
            e.construct_ip_header_for_transport_packet(p, a),
            Status::INVALID_PARAMETER,
            "{a:?}"
        );
    }
    assert_eq!(e.packet_data(p).as_deref(), Some(&t[..]), "unchanged");
    e.free_packet(p);
    assert_eq!(
        e.construct_ip_header_for_transport_packet(p, &args(0, SRC.into(), DST.into(), 17)),
        Status::FWP_NOT_FOUND
    );
}
