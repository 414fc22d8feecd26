//! `wfp.interactive` through the real packet pipeline (§10.1): a matching connection is held and
//! published as a prompt; a decision (or the deadline's default) completes it and the
//! reauthorization answers it.

mod common;
mod net;

use std::time::Duration;

use net::{tcp, Net, ACK, CLIENT, SERVER, SYN};
use wfp_callouts::interactive::{DecideError, PromptPolicy};
use wfp_callouts::Decision;
use wfp_core::catalogue::layers;
use wfp_core::engine::NetEventDetail;
use wfp_core::{ActionType, NetEventKind};
use wfp_shim::{OutputOrigin, Reason, Verdict};

fn interactive() -> Net {
    let n = Net::new();
    n.install(
        "wfp.interactive",
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::CALLOUT_TERMINATING,
        &[],
    );
    n
}

#[test]
fn a_permitted_prompt_releases_the_held_connection() {
    let mut n = interactive();
    let syn = tcp(CLIENT, SERVER, 1000, 0, SYN, b"");
    let v = n.send(&syn);
    assert_eq!((v.verdict, v.reason), (Verdict::Absorb, Reason::Pended));
    let waiting = n.host.prompts.waiting();
    assert_eq!(waiting.len(), 1);
    let p = &waiting[0];
    assert_eq!(p.layer, layers::ALE_AUTH_CONNECT_V4);
    assert_eq!(p.header.remote_addr, Some(SERVER.ip()));
    assert_eq!(p.header.remote_port, Some(80));
    assert_eq!(p.header.local_port, Some(40000));
    assert_eq!(p.header.ip_protocol, Some(6));
    assert_eq!(p.header.direction, Some(0));
    assert_eq!(p.default, Decision::Block);
    assert_eq!(p.deadline - p.created, Duration::from_secs(30));
    assert!(n.work().is_empty(), "held until someone decides");
    n.host
        .prompts
        .decide(&n.engine, p.id, Decision::Allow)
        .unwrap();
    assert_eq!(
        n.host.prompts.decide(&n.engine, p.id, Decision::Allow),
        Err(DecideError::NotFound(p.id))
    );
    let out = n.work();
    let released: Vec<_> = out
        .iter()
        .filter(|o| matches!(o.origin, OutputOrigin::Released { .. }))
        .collect();
    assert_eq!(released.len(), 1, "{out:?}");
    assert_eq!(released[0].verdict.verdict, Verdict::Permit);
    assert_eq!(released[0].bytes, syn);
    assert!(n.host.prompts.waiting().is_empty());
    assert_eq!(n.host.prompts.stats().client_permit, 1);
}

#[test]
fn a_blocked_prompt_refuses_the_connection() {
    let mut n = interactive();
    n.send(&tcp(CLIENT, SERVER, 1000, 0, SYN, b""));
    let id = n.host.prompts.waiting()[0].id;
    n.host
        .prompts
        .decide(&n.engine, id, Decision::Block)
        .unwrap();
    assert!(n.work().is_empty());
    let late = n.send(&tcp(CLIENT, SERVER, 1001, 5001, ACK, b"x"));
    assert_eq!(late.reason, Reason::ConnectionRefused);
    assert_eq!(n.host.prompts.stats().client_block, 1);
}

#[test]
fn the_deadline_applies_the_default_and_records_a_pend_timeout_event() {
    let mut n = interactive();
    n.host.prompts.set_policy(PromptPolicy {
        deadline: Duration::from_secs(5),
        default: Decision::Allow,
        max_waiting: 8,
    });
    n.send(&tcp(CLIENT, SERVER, 1000, 0, SYN, b""));
    let p = n.host.prompts.waiting().remove(0);
    assert!(n
        .host
        .prompts
        .expire(&n.engine, p.deadline - Duration::from_millis(1))
        .is_empty());
    let expired = n.host.prompts.expire(&n.engine, p.deadline);
    assert_eq!(expired.len(), 1);
    let events = n.engine.drain_net_events();
    let timeout: Vec<_> = events
        .iter()
        .filter(|e| e.kind == NetEventKind::PendTimeout)
        .collect();
    assert_eq!(timeout.len(), 1, "{events:?}");
    assert_eq!(
        timeout[0].detail,
        Some(NetEventDetail::PendTimeout {
            pending_id: p.id,
            permitted: true
        })
    );
    assert_eq!(timeout[0].header.remote_addr, Some(SERVER.ip()));
    assert_eq!(
        n.host.prompts.decide(&n.engine, p.id, Decision::Block),
        Err(DecideError::NotFound(p.id))
    );
    let out = n.work();
    assert!(out
        .iter()
        .any(|o| matches!(o.origin, OutputOrigin::Released { .. })
            && o.verdict.verdict == Verdict::Permit));
    assert_eq!(n.host.prompts.stats().timeout_permit, 1);
}

#[test]
fn beyond_the_limit_the_default_applies_at_once() {
    let mut n = interactive();
    n.host.prompts.set_policy(PromptPolicy {
        deadline: Duration::from_secs(5),
        default: Decision::Allow,
        max_waiting: 1,
    });
    assert_eq!(
        n.send(&tcp(CLIENT, SERVER, 1000, 0, SYN, b"")).reason,
        Reason::Pended
    );
    let mut other = CLIENT;
    other.set_port(40001);
    let v = n.send(&tcp(other, SERVER, 1000, 0, SYN, b""));
    assert_eq!(v.verdict, Verdict::Permit, "{v:?}");
    assert_eq!(n.host.prompts.stats().immediate, 1);
    assert_eq!(n.host.prompts.waiting().len(), 1);
}
