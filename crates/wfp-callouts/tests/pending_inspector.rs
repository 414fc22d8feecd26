//! `wfp.pending-inspector` through the real packet pipeline (§10.1, §10.4): a connection to the
//! inspected address is held until the host's worker decides; allowed, its packets come out as
//! re-injected clones (the originals absorbed); blocked, the connection is refused. Other
//! connections pass untouched.

mod common;
mod net;

use net::{tcp, tcp_fields, Net, ACK, CLIENT, PSH_ACK, SERVER, SYN};
use wfp_callouts::{Decision, Worker};
use wfp_core::catalogue::layers;
use wfp_core::ActionType;
use wfp_shim::{OutputOrigin, Reason, Verdict};

fn inspector(decision: &str) -> Net {
    let n = Net::new();
    let params = [
        ("remote", "192.0.2.7"),
        ("port", "80"),
        ("decision", decision),
    ];
    for layer in [layers::ALE_AUTH_CONNECT_V4, layers::OUTBOUND_TRANSPORT_V4] {
        n.install(
            "wfp.pending-inspector",
            layer,
            ActionType::CALLOUT_TERMINATING,
            &params,
        );
    }
    n
}

#[test]
fn allowed_connection_is_held_then_its_packets_are_reinjected_clones() {
    let mut n = inspector("allow");
    let syn = tcp(CLIENT, SERVER, 1000, 0, SYN, b"");
    let v = n.send(&syn);
    assert_eq!((v.verdict, v.reason), (Verdict::Absorb, Reason::Pended));
    assert_eq!(n.host.worker.pending_inspections(), 1);
    let out = n.work();
    // The worker allowed it; the reauthorization permitted; the held SYN was classified again:
    // absorbed at OUTBOUND_TRANSPORT and its clone re-injected, which passes.
    let injected: Vec<_> = out
        .iter()
        .filter(|o| matches!(o.origin, OutputOrigin::Injected { .. }))
        .collect();
    assert_eq!(injected.len(), 1, "{out:?}");
    assert_eq!(injected[0].verdict.verdict, Verdict::Permit);
    assert_eq!(
        injected[0].bytes, syn,
        "the clone carries the original bytes"
    );
    let released: Vec<_> = out
        .iter()
        .filter(|o| matches!(o.origin, OutputOrigin::Released { .. }))
        .collect();
    assert_eq!(released.len(), 1);
    assert_eq!(
        released[0].verdict.verdict,
        Verdict::Absorb,
        "the original is absorbed"
    );
    // The connection goes on; each outbound packet is again absorbed and re-injected.
    assert_eq!(
        n.recv(&tcp(SERVER, CLIENT, 5000, 1001, SYN | ACK, b""))
            .verdict,
        Verdict::Permit
    );
    let data = tcp(CLIENT, SERVER, 1001, 5001, PSH_ACK, b"hello");
    assert_eq!(n.send(&data).verdict, Verdict::Absorb);
    let out = n.work();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].verdict.verdict, Verdict::Permit);
    assert_eq!(tcp_fields(&out[0].bytes), tcp_fields(&data));
    let st = n.host.worker.stats();
    assert_eq!((st.inspections, st.allowed, st.blocked), (1, 1, 0));
    let inj = n.engine.injection_stats();
    assert_eq!((inj.injected, inj.delivered), (2, 2));
    assert_eq!(
        n.engine.ledger_counts(),
        Default::default(),
        "no packet leaked"
    );
    n.shim.abort_all();
    assert_eq!(n.host.worker.decided_flows(), 0, "forgotten at flow end");
}

#[test]
fn blocked_connection_is_refused_and_its_held_packets_dropped() {
    let mut n = inspector("block");
    assert_eq!(
        n.send(&tcp(CLIENT, SERVER, 1000, 0, SYN, b"")).reason,
        Reason::Pended
    );
    let out = n.work();
    assert!(out.is_empty(), "nothing released: {out:?}");
    assert_eq!(n.shim.stats().held_dropped, 1);
    let late = n.send(&tcp(CLIENT, SERVER, 1001, 5001, ACK, b"x"));
    assert_eq!(late.reason, Reason::ConnectionRefused);
    assert_eq!(n.host.worker.stats().blocked, 1);
    assert_eq!(n.host.worker.decided_flows(), 0);
    assert_eq!(n.engine.injection_stats().injected, 0);
}

#[test]
fn other_connections_pass_and_a_host_can_decide_itself() {
    let mut n = inspector("block");
    let mut other = SERVER;
    other.set_port(443);
    assert_eq!(
        n.send(&tcp(CLIENT, other, 1000, 0, SYN, b"")).verdict,
        Verdict::Permit,
        "not the inspected port"
    );
    n.send(&tcp(CLIENT, SERVER, 1000, 0, SYN, b""));
    let taken = n.host.worker.take_inspections();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (taken[0].remote, taken[0].remote_port),
        (Some(SERVER.ip()), 80)
    );
    assert_eq!(taken[0].proposed, Decision::Block);
    // The host overrides the configured decision; deciding twice is refused by the engine.
    let w: &Worker = &n.host.worker;
    assert_eq!(
        w.decide(&n.engine, &taken[0], Decision::Allow),
        wfp_core::Status::SUCCESS
    );
    assert_eq!(
        w.decide(&n.engine, &taken[0], Decision::Allow),
        wfp_core::Status::FWP_NOT_FOUND
    );
    let out = n.work();
    assert!(out
        .iter()
        .any(|o| matches!(o.origin, OutputOrigin::Injected { .. })
            && o.verdict.verdict == Verdict::Permit));
}

/// An inspector for inbound connections from the client address at RECV_ACCEPT and
/// INBOUND_TRANSPORT (the server side of CLIENT → SERVER).
fn inbound_inspector(decision: &str) -> Net {
    let n = Net::new();
    let params = [("remote", "10.0.0.1"), ("decision", decision)];
    for layer in [
        layers::ALE_AUTH_RECV_ACCEPT_V4,
        layers::INBOUND_TRANSPORT_V4,
    ] {
        n.install(
            "wfp.pending-inspector",
            layer,
            ActionType::CALLOUT_TERMINATING,
            &params,
        );
    }
    n
}

/// §10.1 RECV_ACCEPT + §10.4: the inbound SYN is pended and cloned (its layerData is the payload:
/// the clone is retreated to the IP header); allowing re-injects the clone with
/// FwpsInjectTransportReceiveAsync0, whose classify authorizes the connection; later inbound
/// packets come out as re-injected whole-packet clones with the original bytes.
#[test]
fn inbound_connection_is_pended_and_its_packets_reinjected_as_retreated_clones() {
    let mut n = inbound_inspector("allow");
    let syn = tcp(CLIENT, SERVER, 1000, 0, SYN, b"");
    let v = n.recv(&syn);
    assert_eq!((v.verdict, v.reason), (Verdict::Absorb, Reason::Pended));
    assert_eq!(n.engine.ledger_counts().held, 1, "the SYN's clone waits");
    let out = n.work();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(matches!(
        out[0].origin,
        OutputOrigin::Injected {
            kind: wfp_shim::InjectKind::TransportReceive,
            ..
        }
    ));
    assert_eq!(out[0].verdict.verdict, Verdict::Permit);
    assert_eq!(
        out[0].bytes, syn,
        "the whole SYN, IP and TCP headers included"
    );
    assert_eq!(n.host.worker.stats().reinjected, 1);
    // The connection is authorized; its inbound data is absorbed and re-injected as a clone.
    assert_eq!(
        n.send(&tcp(SERVER, CLIENT, 5000, 1001, SYN | ACK, b""))
            .verdict,
        Verdict::Permit
    );
    let data = tcp(CLIENT, SERVER, 1001, 5001, PSH_ACK, b"GET /");
    assert_eq!(n.recv(&data).verdict, Verdict::Absorb);
    let out = n.work();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].verdict.verdict, &out[0].bytes),
        (Verdict::Permit, &data)
    );
    let inj = n.engine.injection_stats();
    assert_eq!((inj.injected, inj.delivered), (2, 2));
    assert_eq!(n.engine.ledger_counts(), Default::default());
}

/// Blocking an inbound connection frees the SYN's clone and refuses the retransmission.
#[test]
fn blocked_inbound_connection_frees_its_clone() {
    let mut n = inbound_inspector("block");
    let syn = tcp(CLIENT, SERVER, 1000, 0, SYN, b"");
    assert_eq!(n.recv(&syn).reason, Reason::Pended);
    assert!(n.work().is_empty());
    assert_eq!(n.engine.ledger_counts(), Default::default(), "clone freed");
    let st = n.engine.injection_stats();
    assert_eq!((st.created, st.freed, st.injected), (1, 1, 0));
    assert_eq!(
        n.recv(&syn).verdict,
        Verdict::Block,
        "the retransmitted SYN"
    );
}
