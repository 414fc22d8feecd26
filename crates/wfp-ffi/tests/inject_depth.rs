//! Data offsets and injected data at the depth the WDK defines (wfp-reference §8.2 "Data offset
//! positions", §10.4; wdk-runtime.md §7 "Start offset"), with `tests/c/drivers/rt_tsend.c` on a
//! real engine and the real packet pipeline: OUTBOUND_TRANSPORT and INBOUND_IPPACKET lists start
//! at the transport header with the IP header behind (reached by a retreat of `ipHeaderSize`), and
//! a clone sent with FwpsInjectTransportSendAsync0 goes out as the same transport packet behind a
//! new IP header — even when its first bytes look like an IPv4 header of the flow's own protocol
//! (nothing is guessed from the bytes).

use std::path::Path;
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, HostConfig};
use wfp_shim::{
    OutputOrigin, PacketContext, PacketDirection, Shim, ShimConfig, Timestamp, Verdict,
};

fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc as u16
}

/// An IPv4/UDP datagram with valid checksums.
fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let ulen = 8 + payload.len();
    let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&((20 + ulen) as u16).to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = !fold(sum16(0, &p));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(ulen as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let acc = sum16(sum16(0, &src), &dst) + 17 + ulen as u32;
    let c = !fold(sum16(acc, &u));
    u[6..8].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&u);
    p
}

/// What a replay let out: (injected?, bytes) of every permitted packet, in order.
fn replay(
    engine: &Arc<Engine>,
    host: &DriverHost,
    inputs: &[(PacketDirection, Vec<u8>)],
) -> Vec<(bool, Vec<u8>)> {
    let config = ShimConfig {
        local_networks: vec![("10.77.0.1".parse().unwrap(), 32)],
        ..ShimConfig::default()
    };
    let mut shim = Shim::new(engine.clone(), config);
    let mut out = Vec::new();
    for (i, (dir, bytes)) in inputs.iter().enumerate() {
        let now = Timestamp::from_nanos(1_000 * (i as u64 + 1));
        let v = shim.handle_packet(now, *dir, bytes, &PacketContext::default());
        if v.verdict == Verdict::Permit {
            out.push((false, bytes.clone()));
        }
        host.settle(std::time::Duration::from_secs(5));
        shim.handle_async(now);
        while let Some(o) = shim.poll_output() {
            if o.verdict.verdict == Verdict::Permit {
                let injected = matches!(o.origin, OutputOrigin::Injected { .. });
                out.push((injected, o.bytes));
            }
        }
    }
    out
}

/// §8.2 / §10.4: a UDP datagram whose UDP header and payload parse as an IPv4 header of protocol
/// UDP with a total length equal to the datagram's (source port 0x4500, destination port = UDP
/// length = 28, payload byte 1 = 17) is re-sent whole; so is an ordinary one. The driver saw
/// both lists start at the UDP header (length 28 resp. 13, the IP header's 0x45 behind), and the
/// inbound IP-packet list likewise.
#[test]
fn transport_send_of_an_outbound_transport_clone_takes_the_data_from_the_transport_header() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers");
    let so = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rt_tsend.so");
    build(&BuildOptions {
        sources: vec![dir.join("rt_tsend.c")],
        output: so.clone(),
        ..BuildOptions::default()
    })
    .unwrap();
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let (me, peer) = ([10, 77, 0, 1], [10, 77, 0, 2]);
    let mut lookalike = [0u8; 20];
    lookalike[1] = 17;
    lookalike[19] = 0xAB;
    let inputs = vec![
        (
            PacketDirection::Outbound,
            udp4(me, 0x4500, peer, 28, &lookalike),
        ),
        (
            PacketDirection::Outbound,
            udp4(me, 40000, peer, 53, b"plain"),
        ),
        (
            PacketDirection::Inbound,
            udp4(peer, 53, me, 40000, b"reply"),
        ),
    ];
    let out = replay(&engine, &host, &inputs);
    for sent in &inputs[..2] {
        let o = out
            .iter()
            .find(|(injected, o)| {
                *injected && o[12..20] == sent.1[12..20] && o[20..22] == sent.1[20..22]
            })
            .unwrap_or_else(|| panic!("not re-sent: {:02x?} in {out:02x?}", sent.1));
        assert_eq!(o.1.len(), sent.1.len(), "{:02x?}", o.1);
        assert_eq!(o.1[20..], sent.1[20..], "the UDP datagram, whole");
        assert_eq!(o.1[..4], sent.1[..4], "version, IHL, total length");
    }
    assert!(out
        .iter()
        .any(|(injected, o)| !injected && *o == inputs[2].1));
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    for line in [
        "tsend: out length 28 first 45 behind 20 45",
        "tsend: out length 13 first 9c behind 20 45",
        "tsend: in length 13 first 00 behind 20 45",
        "tsend: unloaded, sent=2 completed=2 failed=0",
    ] {
        assert!(log.iter().any(|l| l == line), "{line}: {log:#?}");
    }
    assert_eq!(engine.ledger_counts(), Default::default());
}
