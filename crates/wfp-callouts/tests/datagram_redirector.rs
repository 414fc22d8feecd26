//! `wfp.datagram-redirector` through the real packet pipeline (§10.4): a UDP datagram to the
//! configured peer is absorbed and its rewritten clone re-injected towards the target; the
//! target's reply is absorbed at INBOUND_IPPACKET and re-injected as coming from the original
//! peer. Every rewritten packet is compared byte for byte with one built from scratch (so its
//! IPv4 header and UDP checksums are the valid ones), over IPv4 and IPv6.

mod common;
mod net;

use std::net::SocketAddr;

use net::{udp, Net};
use wfp_core::catalogue::{layers, LayerId};
use wfp_core::ActionType;
use wfp_shim::{OutputOrigin, ShimOutput, Verdict};

/// One family's addresses: the client, the peer it addresses, the target it is redirected to.
struct Case {
    client: SocketAddr,
    peer: SocketAddr,
    target: SocketAddr,
    layers: [LayerId; 2],
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn v4() -> Case {
    Case {
        client: addr("10.0.0.1:40000"),
        peer: addr("192.0.2.7:53"),
        target: addr("192.0.2.9:5353"),
        layers: [layers::OUTBOUND_TRANSPORT_V4, layers::INBOUND_IPPACKET_V4],
    }
}

fn v6() -> Case {
    Case {
        client: addr("[2001:db8::1]:40000"),
        peer: addr("[2001:db8:7::7]:53"),
        target: addr("[2001:db8:9::9]:5353"),
        layers: [layers::OUTBOUND_TRANSPORT_V6, layers::INBOUND_IPPACKET_V6],
    }
}

fn redirector(c: &Case) -> Net {
    let n = Net::new();
    let (to_address, to_port) = (c.target.ip().to_string(), c.target.port().to_string());
    let (address, port) = (c.peer.ip().to_string(), c.peer.port().to_string());
    let params = [
        ("address", address.as_str()),
        ("port", port.as_str()),
        ("to_address", to_address.as_str()),
        ("to_port", to_port.as_str()),
    ];
    for layer in c.layers {
        n.install(
            "wfp.datagram-redirector",
            layer,
            ActionType::CALLOUT_TERMINATING,
            &params,
        );
    }
    n
}

/// The one injected output of `out`.
fn injected(out: &[ShimOutput]) -> &ShimOutput {
    let injected: Vec<_> = out
        .iter()
        .filter(|o| matches!(o.origin, OutputOrigin::Injected { .. }))
        .collect();
    assert_eq!(injected.len(), 1, "{out:?}");
    injected[0]
}

fn round_trip(c: &Case) {
    let mut n = redirector(c);
    // The query: absorbed, its clone goes to the target with valid checksums.
    let v = n.send(&udp(c.client, c.peer, b"query"));
    assert_eq!(v.verdict, Verdict::Absorb, "{v:?}");
    let out = n.work();
    let q = injected(&out);
    assert_eq!(q.verdict.verdict, Verdict::Permit, "{q:?}");
    assert_eq!(q.bytes, udp(c.client, c.target, b"query"));
    // The target's reply: absorbed, re-injected as coming from the peer the client addressed.
    let v = n.recv(&udp(c.target, c.client, b"answer"));
    assert_eq!(v.verdict, Verdict::Absorb, "{v:?}");
    let out = n.work();
    let r = injected(&out);
    assert_eq!(r.verdict.verdict, Verdict::Permit, "{r:?}");
    assert_eq!(r.bytes, udp(c.peer, c.client, b"answer"));
    // Other peers and ports pass untouched, and so does the target's traffic with a client
    // whose datagrams it never got redirected; nothing more is injected.
    let other = SocketAddr::new(c.peer.ip(), 54);
    let stranger = SocketAddr::new(c.client.ip(), 40999);
    for v in [
        n.send(&udp(c.client, other, b"x")),
        n.recv(&udp(other, c.client, b"y")),
        n.recv(&udp(c.peer, c.client, b"z")),
        n.recv(&udp(c.target, stranger, b"w")),
    ] {
        assert_eq!(v.verdict, Verdict::Permit, "{v:?}");
        assert!(v.edited.is_none());
    }
    assert!(n.work().is_empty());
    assert_eq!(n.host.redirects.len(), 1);
}

#[test]
fn ipv4_datagrams_go_to_the_target_and_replies_come_from_the_peer() {
    round_trip(&v4());
}

#[test]
fn ipv6_datagrams_go_to_the_target_and_replies_come_from_the_peer() {
    round_trip(&v6());
}

#[test]
fn without_parameters_nothing_is_redirected() {
    let c = v4();
    let mut n = Net::new();
    for layer in c.layers {
        n.install(
            "wfp.datagram-redirector",
            layer,
            ActionType::CALLOUT_TERMINATING,
            &[],
        );
    }
    assert_eq!(
        n.send(&udp(c.client, c.peer, b"q")).verdict,
        Verdict::Permit
    );
    assert_eq!(
        n.recv(&udp(c.target, c.client, b"a")).verdict,
        Verdict::Permit
    );
    assert!(n.work().is_empty());
}
