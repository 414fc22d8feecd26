//! `wfp.connection-monitor` through the real packet pipeline: one connection per flow with the
//! socket owner's process path, pid and user from the ALE metadata, stream bytes each way, and
//! the record finished by flowDeleteFn when the flow ends.

mod common;
mod net;

use std::sync::Arc;

use net::{tcp, udp, Net, ACK, CLIENT, FIN_ACK, PSH_ACK, SERVER};
use wfp_core::catalogue::layers;
use wfp_core::security::Token;
use wfp_core::ActionType;
use wfp_shim::{Owner, PacketContext, Verdict};

fn monitored() -> Net {
    let n = Net::new();
    for layer in [
        layers::ALE_FLOW_ESTABLISHED_V4,
        layers::STREAM_V4,
        layers::DATAGRAM_DATA_V4,
    ] {
        n.install(
            "wfp.connection-monitor",
            layer,
            ActionType::CALLOUT_INSPECTION,
            &[],
        );
    }
    n
}

#[test]
fn tcp_connection_has_owner_bytes_each_way_and_ends_through_flow_delete() {
    let mut n = monitored();
    let owner = PacketContext {
        owner: Some(Owner {
            app_id: Some(Arc::from(&b"/usr/bin/curl"[..])),
            user: Some(Arc::new(Token {
                uid: 1000,
                gids: vec![1000],
            })),
            process_id: Some(4242),
        }),
        ..PacketContext::default()
    };
    let syn = tcp(CLIENT, SERVER, 1000, 0, net::SYN, b"");
    assert_eq!(n.send_with(&syn, &owner).verdict, Verdict::Permit);
    n.recv(&tcp(SERVER, CLIENT, 5000, 1001, net::SYN | ACK, b""));
    n.send_with(&tcp(CLIENT, SERVER, 1001, 5001, ACK, b""), &owner);
    assert_eq!(n.host.connections.active(), 1);
    let v = n.send_with(
        &tcp(
            CLIENT,
            SERVER,
            1001,
            5001,
            PSH_ACK,
            b"GET / HTTP/1.0\r\n\r\n",
        ),
        &owner,
    );
    assert_eq!(v.verdict, Verdict::Permit);
    n.recv(&tcp(
        SERVER,
        CLIENT,
        5001,
        1019,
        PSH_ACK,
        b"HTTP/1.0 200 OK\r\n\r\nhello",
    ));
    let live = n.host.connections.live();
    assert_eq!(live.len(), 1);
    assert_eq!((live[0].outbound.bytes, live[0].inbound.bytes), (18, 24));
    assert!(n.host.connections.drain().is_empty(), "still open");
    // Both sides close: the flow ends, flowDeleteFn finishes the connection.
    n.send_with(&tcp(CLIENT, SERVER, 1019, 5025, FIN_ACK, b""), &owner);
    n.recv(&tcp(SERVER, CLIENT, 5025, 1020, FIN_ACK, b""));
    n.send_with(&tcp(CLIENT, SERVER, 1020, 5026, ACK, b""), &owner);
    n.shim.abort_all();
    let done = n.host.connections.drain();
    assert_eq!(done.len(), 1, "{done:?}");
    let c = &done[0];
    assert_eq!(c.process_path.as_deref(), Some("/usr/bin/curl"));
    assert_eq!((c.process_id, c.user), (Some(4242), Some(1000)));
    assert_eq!(c.tuple.protocol, 6);
    assert_eq!(c.tuple.remote_addr, Some(SERVER.ip()));
    assert_eq!((c.tuple.local_port, c.tuple.remote_port), (40000, 80));
    assert_eq!((c.outbound.bytes, c.inbound.bytes), (18, 24));
    assert!(c.end > c.start);
    assert_eq!(n.host.connections.active(), 0);
    assert_eq!(n.engine.flow_context_count(), 0, "no context left behind");
}

#[test]
fn udp_flow_counts_datagram_payloads_and_an_unknown_owner_stays_none() {
    let mut n = monitored();
    n.send(&udp(CLIENT, SERVER, b"query"));
    n.recv(&udp(SERVER, CLIENT, b"longer answer"));
    n.send(&udp(CLIENT, SERVER, b"q2"));
    n.shim.abort_all();
    let done = n.host.connections.drain();
    assert_eq!(done.len(), 1);
    let c = &done[0];
    assert_eq!((c.outbound.bytes, c.inbound.bytes), (7, 13));
    assert_eq!((c.outbound.indications, c.inbound.indications), (2, 1));
    assert_eq!((c.process_path.clone(), c.user), (None, None));
    assert_eq!(c.tuple.protocol, 17);
}

#[test]
fn each_flow_is_reported_once() {
    let mut n = monitored();
    for port in 0..3u16 {
        let mut c = CLIENT;
        c.set_port(50000 + port);
        n.send(&udp(c, SERVER, b"x"));
    }
    assert_eq!(n.host.connections.active(), 3);
    n.shim.abort_all();
    n.shim.abort_all();
    let mut done = n.host.connections.drain();
    done.sort_by_key(|c| c.tuple.local_port);
    let ports: Vec<u16> = done.iter().map(|c| c.tuple.local_port).collect();
    assert_eq!(ports, vec![50000, 50001, 50002]);
    assert!(n.host.connections.drain().is_empty());
}
