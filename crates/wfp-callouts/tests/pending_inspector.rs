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
