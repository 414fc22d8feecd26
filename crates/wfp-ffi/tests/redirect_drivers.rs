//! Connection redirection by C drivers on a real engine and the real packet pipeline
//! (wfp-reference §10.3): `tests/c/drivers/connredirect.c` inline and pended (a work item
//! completes it), under valgrind memcheck and AddressSanitizer like the other C tests; and two
//! builds of it chaining their redirects (the second sees the first's version as
//! `previousVersion` / `modifierFilterId` and redirects further; the proxy's own leg is left alone
//! by both through FwpsQueryConnectionRedirectState0: REDIRECTED_BY_SELF for the last redirector,
//! PREVIOUSLY_REDIRECTED_BY_SELF for the first).

#[path = "support/asan.rs"]
mod asan;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_core::catalogue::LayerId;
use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, DriverOptions, HostConfig, ParamValue};
use wfp_shim::wire::build::ip_packet;
use wfp_shim::wire::Transport;
use wfp_shim::{PacketContext, PacketDirection, Shim, ShimConfig, Timestamp, Verdict};

/// FWPS_LAYER_ALE_CONNECT_REDIRECT_V4.
const CONNECT_REDIRECT_V4: LayerId = LayerId(66);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Builds connredirect.c (`instance`: -DCR_INSTANCE, none for the plain build) with `flags`.
fn build_connredirect(tag: &str, instance: Option<u8>, flags: &[&str]) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("connredirect-{tag}.so"));
    build(&BuildOptions {
        sources: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers/connredirect.c")],
        output: out.clone(),
        defines: instance
            .map(|i| vec![format!("CR_INSTANCE={i}")])
            .unwrap_or_default(),
        extra_flags: flags.iter().map(|f| (*f).to_string()).collect(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building connredirect: {e}"));
    out
}

fn options(params: &[&str]) -> DriverOptions {
    DriverOptions {
        params: params
            .iter()
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), ParamValue::parse(v)))
            .collect(),
    }
}

/// A TCP segment `src` → `dst` with `flags` (0x02 SYN, 0x12 SYN-ACK, 0x10 ACK, 0x18 PSH-ACK).
fn tcp(src: SocketAddr, dst: SocketAddr, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut seg = Vec::new();
    seg.extend_from_slice(&src.port().to_be_bytes());
    seg.extend_from_slice(&dst.port().to_be_bytes());
    seg.extend_from_slice(&seq.to_be_bytes());
    seg.extend_from_slice(&ack.to_be_bytes());
    seg.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    seg.extend_from_slice(payload);
    ip_packet(src.ip(), dst.ip(), 6, &seg).unwrap()
}

/// Source, destination and payload of a permitted packet (it must parse, checksums included).
fn ends(p: &[u8]) -> (SocketAddr, SocketAddr, Vec<u8>) {
    let parsed = wfp_shim::wire::parse(p).unwrap_or_else(|e| panic!("invalid packet {e:?}"));
    let Transport::Tcp(t) = &parsed.transport else {
        panic!("not TCP");
    };
    let payload = parsed
        .payload()
        .and_then(|r| p.get(r))
        .unwrap_or(&[])
        .to_vec();
    (
        SocketAddr::new(parsed.ip.src, t.src_port),
        SocketAddr::new(parsed.ip.dst, t.dst_port),
        payload,
    )
}

/// Replays `packets` (direction inferred; 10.0.0.1 and 10.0.0.5 are this host) with the drivers
/// of `host` loaded, the asynchronous point after every packet; the permitted packets' ends.
fn replay(
    engine: &Arc<Engine>,
    host: &DriverHost,
    packets: &[Vec<u8>],
) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    replay_raw(engine, host, packets)
        .iter()
        .map(|p| ends(p))
        .collect()
}

/// [`replay`], the permitted packets' bytes.
fn replay_raw(engine: &Arc<Engine>, host: &DriverHost, packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let config = ShimConfig {
        local_networks: vec![
            ("10.0.0.1".parse().unwrap(), 32),
            ("10.0.0.5".parse().unwrap(), 32),
        ],
        ..ShimConfig::default()
    };
    let mut shim = Shim::new(engine.clone(), config);
    let mut out = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let now = Timestamp::from_nanos(1_000_000 * (i as u64 + 1));
        let v = shim.handle_packet(now, PacketDirection::Infer, p, &PacketContext::default());
        if v.verdict == Verdict::Permit {
            out.push(v.edited.as_ref().map_or(p, |e| &e.bytes).clone());
        }
        for _ in 0..8 {
            // A generous bound: settle returns as soon as the work item completed (valgrind is slow).
            host.settle(std::time::Duration::from_secs(30));
            shim.handle_async(now);
            if !host.wants_another_pass() {
                break;
            }
        }
        while let Some(o) = shim.poll_output() {
            if o.verdict.verdict == Verdict::Permit {
                out.push(
                    o.verdict
                        .edited
                        .as_ref()
                        .map_or(&o.bytes, |e| &e.bytes)
                        .clone(),
                );
            }
        }
    }
    out
}

fn log_of(host: &DriverHost) -> Vec<String> {
    host.drain_log().into_iter().map(|l| l.text).collect()
}

fn has(log: &[String], line: &str) {
    assert!(log.iter().any(|l| l == line), "{line}\n{log:#?}");
}

/// A client's connection to 192.0.2.7:80 (handshake, data); with `leg`, the proxy's own
/// connection to the same destination while the first lives.
fn connection(leg: bool) -> Vec<Vec<u8>> {
    let (client, server) = (addr("10.0.0.1:40000"), addr("192.0.2.7:80"));
    let mut v = vec![
        tcp(client, server, 0x02, 1000, 0, b""),
        tcp(server, client, 0x12, 5000, 1001, b""),
        tcp(client, server, 0x10, 1001, 5001, b""),
        tcp(client, server, 0x18, 1001, 5001, b"GET / HTTP/1.1\r\n\r\n"),
    ];
    if leg {
        v.push(tcp(addr("10.0.0.5:41000"), server, 0x02, 7000, 0, b""));
    }
    v
}

/// connredirect at `so`: inline (the proxy's leg left alone, state REDIRECTED_BY_SELF), then
/// pended (a work item redirects through the classify handle and completes), then pended and
/// completed before classifyFn returns (what a fast work item may do: still a pend, §10.2);
/// clean unloads.
fn check_single(so: &Path) {
    let (client, proxy) = (addr("10.0.0.1:40000"), addr("10.0.0.5:3128"));
    let leg = (addr("10.0.0.5:41000"), addr("192.0.2.7:80"), Vec::new());
    let want = |leg_too: bool| {
        let mut w = vec![
            (client, proxy, Vec::new()),
            (proxy, client, Vec::new()),
            (client, proxy, Vec::new()),
            (client, proxy, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ];
        w.extend(leg_too.then(|| leg.clone()));
        w
    };
    for (pend, leg_too) in [("Pend=0", true), ("Pend=1", false), ("Pend=2", false)] {
        let engine = Arc::new(Engine::default());
        let host = DriverHost::new(engine.clone(), HostConfig::default());
        let params = ["ToAddress=sz:10.0.0.5", "ToPort=3128", pend];
        let driver = host.load_with(so, &options(&params)).unwrap();
        let got = replay(&engine, &host, &connection(leg_too));
        assert_eq!(got, want(leg_too), "{pend}: {:#?}", log_of(&host));
        let report = driver.unload().unwrap();
        assert!(report.findings.is_empty(), "{pend}: {:?}", report.findings);
        let log = log_of(&host);
        has(
            &log,
            "connredirect: auth remote 10.0.0.5:3128 original 192.0.2.7:80 state 1 redirected-flag 1",
        );
        if leg_too {
            has(&log, "connredirect: left alone (state 1)");
            has(
                &log,
                "connredirect: unloaded, redirected=1 left-alone=1 pended=0 failed=0",
            );
        } else {
            has(
                &log,
                "connredirect: unloaded, redirected=1 left-alone=0 pended=1 failed=0",
            );
        }
        assert!(engine.filters().is_empty());
    }
}

#[test]
fn connredirect_inline_and_pended() {
    check_single(&build_connredirect("plain", None, &[]));
}

/// The body the memory checkers run in a child process (`WFP_FFI_CONNREDIRECT_SO`).
#[test]
#[ignore = "run by the valgrind and AddressSanitizer tests in a child process"]
fn connredirect_inner() {
    let Some(so) = std::env::var_os("WFP_FFI_CONNREDIRECT_SO") else {
        return;
    };
    check_single(Path::new(&so));
    println!("connredirect: done");
}

/// connredirect inline and pended under valgrind memcheck: 0 errors, 0 bytes definitely lost.
#[test]
fn connredirect_under_valgrind() {
    let so = build_connredirect("vg", None, &["-O0", "-g"]);
    support::run_inner_under_valgrind(
        "connredirect_inner",
        "WFP_FFI_CONNREDIRECT_SO",
        &so,
        "connredirect: done",
    );
}

/// connredirect inline and pended built with -fsanitize=address (the runtime preloaded).
#[test]
fn connredirect_with_address_sanitizer() {
    asan::run_inner(
        "connredirect_inner",
        "WFP_FFI_CONNREDIRECT_SO",
        "connredirect: done",
        || {
            build_connredirect(
                "asan",
                None,
                &["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
            )
        },
    );
}

/// §10.3 chaining: connredirect1 (sublayer weight 0x300, Soft=1: a soft PERMIT after its
/// redirect to 10.0.0.5:3128) and connredirect2 (weight 0x200) redirecting the same connection to
/// 10.0.0.5:8080. The second sees the first's version (modifierFilterId = the first's redirect
/// filter, previousVersion = the original request); the connection goes to the last target; the
/// redirect records name both, so at ALE_AUTH_CONNECT the second's query answers
/// REDIRECTED_BY_SELF (1) and the first's PREVIOUSLY_REDIRECTED_BY_SELF (3); the proxy's leg to
/// the original destination is left alone by both (loop prevention).
#[test]
fn two_drivers_chain_connect_redirects() {
    let first = build_connredirect("chain1", Some(1), &[]);
    let second = build_connredirect("chain2", Some(2), &[]);
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let p1 = [
        "ToAddress=sz:10.0.0.5",
        "ToPort=3128",
        "Soft=1",
        "Weight=768",
    ];
    let p2 = ["ToAddress=sz:10.0.0.5", "ToPort=8080", "Weight=512"];
    let d1 = host.load_with(&first, &options(&p1)).unwrap();
    let d2 = host.load_with(&second, &options(&p2)).unwrap();
    let first_filter = engine
        .filters()
        .iter()
        .find(|f| f.layer() == CONNECT_REDIRECT_V4 && f.sublayer_weight() == 768)
        .map(|f| f.filter_id().0)
        .unwrap();
    let (client, target) = (addr("10.0.0.1:40000"), addr("10.0.0.5:8080"));
    let got = replay(&engine, &host, &connection(true));
    let want = vec![
        (client, target, Vec::new()),
        (target, client, Vec::new()),
        (client, target, Vec::new()),
        (client, target, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        (addr("10.0.0.5:41000"), addr("192.0.2.7:80"), Vec::new()),
    ];
    assert_eq!(got, want, "{:#?}", log_of(&host));
    for d in [d2, d1] {
        let report = d.unload().unwrap();
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }
    let log = log_of(&host);
    has(
        &log,
        &format!(
            "connredirect2: chained after filter {first_filter}: remote 10.0.0.5:3128, before 192.0.2.7:80"
        ),
    );
    assert!(
        !log.iter().any(|l| l.starts_with("connredirect1: chained")),
        "{log:#?}"
    );
    for (name, state) in [("connredirect1", 3), ("connredirect2", 1)] {
        has(
            &log,
            &format!(
                "{name}: auth remote 10.0.0.5:8080 original 192.0.2.7:80 state {state} redirected-flag 1"
            ),
        );
        has(&log, &format!("{name}: left alone (state {state})"));
        has(
            &log,
            &format!("{name}: unloaded, redirected=1 left-alone=1 pended=0 failed=0"),
        );
    }
    assert!(engine.filters().is_empty());
}

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

/// An IPv4/UDP packet (header checksum set) carrying `data` at fragment offset `offset` (bytes)
/// of datagram `id`, `more` fragments following.
fn ipv4(src: [u8; 4], dst: [u8; 4], id: u16, (offset, more): (u16, bool), data: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&((offset / 8) | if more { 0x2000 } else { 0 }).to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = !fold(sum16(0, &p));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// A UDP datagram (header and `payload`, checksum set) from `src` to `dst` (IPv4).
fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        panic!("IPv4 only");
    };
    let len = (8 + payload.len()) as u16;
    let mut u = Vec::new();
    u.extend_from_slice(&src.port().to_be_bytes());
    u.extend_from_slice(&dst.port().to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let acc = sum16(sum16(0, &s.octets()), &d.octets()) + 17 + u32::from(len);
    let c = !fold(sum16(acc, &u));
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// The datagrams of IPv4 `fragments` put back together per identification: (source,
/// destination, UDP bytes), every IP header checksum and the UDP checksum (against the addresses
/// the fragments carry) verified.
fn reassemble(fragments: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let id = |f: &Vec<u8>| u16::from_be_bytes([f[4], f[5]]);
    let mut ids: Vec<u16> = fragments.iter().map(id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.iter()
        .map(|i| {
            let mut parts: Vec<&Vec<u8>> = fragments.iter().filter(|f| id(f) == *i).collect();
            parts.sort_by_key(|f| u16::from_be_bytes([f[6], f[7]]) & 0x1fff);
            let data: Vec<u8> = parts.iter().flat_map(|f| f[20..].to_vec()).collect();
            let (s, d) = (parts[0][12..16].to_vec(), parts[0][16..20].to_vec());
            for f in &parts {
                assert_eq!(
                    fold(sum16(0, &f[..20])),
                    0xffff,
                    "IP header checksum {f:02x?}"
                );
                assert_eq!(
                    (&f[12..16], &f[16..20]),
                    (&s[..], &d[..]),
                    "one address pair"
                );
            }
            let acc = sum16(sum16(0, &s), &d) + 17 + data.len() as u32;
            assert_eq!(fold(sum16(acc, &data)), 0xffff, "UDP checksum {data:02x?}");
            (s, d, data)
        })
        .collect()
}

/// §10.3, fragments of a redirected connection: after its first (whole) datagram redirected a
/// UDP flow to port 80 to 10.0.0.5:3128, two datagrams of it arrive as IPv4 fragments — in
/// order, then the last fragment first. Every fragment leaves with the new addresses, the first
/// fragment with the new ports and a UDP checksum adjusted for the whole datagram: each datagram
/// reassembles into the redirected one with a valid checksum.
#[test]
fn a_redirected_connections_ipv4_fragments_are_rewritten_consistently() {
    let so = build_connredirect("frag", None, &[]);
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let params = ["ToAddress=sz:10.0.0.5", "ToPort=3128"];
    let driver = host.load_with(&so, &options(&params)).unwrap();
    let (client, server) = (addr("10.0.0.1:40000"), addr("192.0.2.7:80"));
    let (c4, s4) = ([10, 0, 0, 1], [192, 0, 2, 7]);
    let big: Vec<u8> = (0u8..40).collect();
    let dgram = udp(client, server, &big);
    let (head, tail) = dgram.split_at(24);
    let packets = vec![
        ipv4(c4, s4, 1, (0, false), &udp(client, server, b"hello")),
        ipv4(c4, s4, 2, (0, true), head),
        ipv4(c4, s4, 2, (24, false), tail),
        ipv4(c4, s4, 3, (24, false), tail),
        ipv4(c4, s4, 3, (0, true), head),
    ];
    let out = replay_raw(&engine, &host, &packets);
    let report = driver.unload().unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let whole = out.iter().find(|p| p[6..8] == [0, 0]).unwrap();
    assert_eq!(&whole[12..20], &[10, 0, 0, 1, 10, 0, 0, 5], "{out:02x?}");
    let fragments: Vec<Vec<u8>> = out.iter().filter(|p| p[6..8] != [0, 0]).cloned().collect();
    assert_eq!(fragments.len(), 4, "{out:02x?}");
    let want = udp(client, addr("10.0.0.5:3128"), &big);
    let datagrams = reassemble(&fragments);
    assert_eq!(datagrams.len(), 2);
    for (s, d, data) in datagrams {
        assert_eq!(
            (&s[..], &d[..]),
            (&c4[..], &[10, 0, 0, 5][..]),
            "redirected addresses"
        );
        assert_eq!(data, want, "the redirected datagram");
    }
}
