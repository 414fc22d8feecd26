//! §14.6 T-CL-4 (injection state) and the engine side of §10.4: injection handles, the packet
//! ledger, completion exactly once, re-entry points, and the provenance depth bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wfp_core::callout::Metadata;
use wfp_core::inject::{
    AddressFamily, Inject, InjectionKind, InjectionOutcome, InjectionState, InjectionTypes, Reentry,
};
use wfp_core::EngineOptions;
use wfp_testkit::prelude::*;

fn send(
    h: wfp_core::inject::InjectionHandle,
    p: wfp_core::inject::PacketId,
    done: &Arc<AtomicUsize>,
) -> Inject {
    let d = done.clone();
    Inject {
        handle: h,
        context: 5,
        kind: InjectionKind::TransportSend {
            endpoint: 1,
            params: None,
            compartment: 1,
        },
        packet: p,
        completion: Some(Box::new(move |_| {
            d.fetch_add(1, Ordering::SeqCst);
        })),
    }
}

/// §14.6 T-CL-4 (§10.4): a re-entering self-injected packet is INJECTED_BY_SELF to its handle (with
/// its injection context), INJECTED_BY_OTHER to another handle; an original is NOT_INJECTED; after
/// another handle re-injects it, the first sees PREVIOUSLY_INJECTED_BY_SELF.
#[test]
fn t_cl_4_injection_state_self_other_not_injected() {
    let h = Harness::new();
    let e = h.engine();
    let mine = e
        .create_injection_handle(AddressFamily::Inet, InjectionTypes::default())
        .unwrap();
    let other = e
        .create_injection_handle(AddressFamily::Unspecified, InjectionTypes::TRANSPORT)
        .unwrap();
    assert_eq!(
        e.query_packet_injection_state(mine, None),
        (InjectionState::NotInjected, None)
    );
    let done = Arc::new(AtomicUsize::new(0));
    let p = e.allocate_packet(vec![0x45u8; 40]);
    assert_eq!(e.inject(send(mine, p, &done)), Status::SUCCESS);
    let req = e.poll_injection().expect("queued");
    assert_eq!(req.reentry, Reentry::OutboundTop);
    let prov = req.provenance.clone();
    assert_eq!(
        e.query_packet_injection_state(mine, Some(&prov)),
        (InjectionState::InjectedBySelf, Some(5))
    );
    assert_eq!(
        e.query_packet_injection_state(other, Some(&prov)).0,
        InjectionState::InjectedByOther
    );
    // A callout using `other` clones the re-entering packet and injects it again.
    let sl = h.sublayer("inj", 1);
    let cloned: Arc<Mutex<Vec<wfp_core::inject::PacketId>>> = Arc::default();
    let c2 = cloned.clone();
    let c = ScriptedCallout::new(move |call, _| {
        c2.lock()
            .unwrap()
            .push(call.ctx.clone_packet(call.meta, &[1, 2, 3]).unwrap());
    })
    .build();
    h.callout_filter(
        layers::OUTBOUND_TRANSPORT_V4,
        sl,
        1,
        ActionType::CALLOUT_INSPECTION,
        &c,
    );
    let meta = Metadata {
        injection: Some(prov),
        ..Metadata::default()
    };
    h.classify_meta(layers::OUTBOUND_TRANSPORT_V4, TCP_TEMPL, &meta);
    assert_eq!(
        e.complete_injection(req.id, InjectionOutcome::Delivered),
        Status::SUCCESS
    );
    let clone = cloned.lock().unwrap()[0];
    assert_eq!(e.inject(send(other, clone, &done)), Status::SUCCESS);
    let again = e.poll_injection().unwrap();
    assert_eq!(
        e.query_packet_injection_state(mine, Some(&again.provenance)),
        (InjectionState::PreviouslyInjectedBySelf, Some(5))
    );
    assert_eq!(
        e.query_packet_injection_state(other, Some(&again.provenance))
            .0,
        InjectionState::InjectedBySelf
    );
    e.complete_injection(again.id, InjectionOutcome::Dropped(Status::UNSUCCESSFUL));
    assert_eq!(done.load(Ordering::SeqCst), 2);
    let st = e.injection_stats();
    assert_eq!(
        (st.created, st.delivered, st.dropped, st.completions),
        (2, 1, 1, 2)
    );
}

/// §10.4: completion exactly once, also with the handle destroyed while injections are pending;
/// misuse gets WFP statuses and changes nothing.
#[test]
fn injection_completion_once_across_handle_destroy() {
    let h = Harness::new();
    let e = h.engine();
    let hd = e
        .create_injection_handle(AddressFamily::Inet, InjectionTypes::TRANSPORT)
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let (p1, p2, p3) = (
        e.allocate_packet(vec![1u8]),
        e.allocate_packet(vec![2u8]),
        e.allocate_packet(vec![3u8]),
    );
    assert_eq!(e.inject(send(hd, p1, &done)), Status::SUCCESS);
    assert_eq!(e.inject(send(hd, p2, &done)), Status::SUCCESS);
    // wrong type for the handle: refused, packet still held, no completion
    let mut net = send(hd, p3, &done);
    net.kind = InjectionKind::NetworkSend { compartment: 1 };
    assert_eq!(e.inject(net), Status::FWP_INVALID_PARAMETER);
    let first = e.poll_injection().unwrap();
    assert_eq!(e.destroy_injection_handle(hd), Status::PENDING);
    assert_eq!(
        e.inject(send(hd, p3, &done)),
        Status::FWP_INJECT_HANDLE_CLOSING
    );
    assert_eq!(
        e.complete_injection(first.id, InjectionOutcome::Delivered),
        Status::SUCCESS
    );
    assert_eq!(
        e.complete_injection(first.id, InjectionOutcome::Delivered),
        Status::FWP_NOT_FOUND
    );
    let second = e.poll_injection().unwrap();
    assert_eq!(
        e.complete_injection(second.id, InjectionOutcome::Delivered),
        Status::SUCCESS
    );
    assert_eq!(done.load(Ordering::SeqCst), 2);
    assert_eq!(
        e.injection_handle_count(),
        0,
        "gone with its last completion"
    );
    assert_eq!(
        e.inject(send(hd, p3, &done)),
        Status::FWP_INJECT_HANDLE_STALE
    );
    assert_eq!(
        e.destroy_injection_handle(hd),
        Status::FWP_INJECT_HANDLE_STALE
    );
    assert_eq!(e.free_packet(p3), Status::SUCCESS);
    assert_eq!(e.free_packet(p3), Status::FWP_NOT_FOUND);
    let c = e.ledger_counts();
    assert_eq!((c.held, c.queued, c.in_flight), (0, 0, 0));
    // network injection needs a family
    assert_eq!(
        e.create_injection_handle(AddressFamily::Unspecified, InjectionTypes::NETWORK),
        Err(Status::FWP_INVALID_PARAMETER)
    );
}

/// Beyond WFP (§10.4 provenance): two handles re-injecting each other's packet end in a counted
/// drop at the depth bound, with the completion run once (STATUS_FWP_DROP_NOICMP).
#[test]
fn mutual_reinjection_ends_in_a_counted_drop() {
    let h = Harness::with_options(EngineOptions {
        max_injection_depth: 3,
        ..EngineOptions::default()
    });
    let e = h.engine();
    let a = e
        .create_injection_handle(AddressFamily::Inet, InjectionTypes::NETWORK)
        .unwrap();
    let b = e
        .create_injection_handle(AddressFamily::Inet, InjectionTypes::NETWORK)
        .unwrap();
    let statuses: Arc<Mutex<Vec<Status>>> = Arc::default();
    let mut prov = None;
    let sl = h.sublayer("inj", 1);
    let cloned: Arc<Mutex<Vec<wfp_core::inject::PacketId>>> = Arc::default();
    let c2 = cloned.clone();
    let c = ScriptedCallout::new(move |call, _| {
        c2.lock()
            .unwrap()
            .push(call.ctx.clone_packet(call.meta, &[0x45]).unwrap());
    })
    .build();
    h.callout_filter(
        layers::INBOUND_IPPACKET_V4,
        sl,
        1,
        ActionType::CALLOUT_INSPECTION,
        &c,
    );
    for round in 0..5 {
        let meta = Metadata {
            injection: prov.clone(),
            ..Metadata::default()
        };
        h.classify_meta(layers::INBOUND_IPPACKET_V4, TCP_TEMPL, &meta);
        let p = cloned.lock().unwrap()[round];
        let s2 = statuses.clone();
        let req = Inject {
            handle: if round % 2 == 0 { a } else { b },
            context: round as u64,
            kind: InjectionKind::NetworkReceive {
                compartment: 1,
                interface: 1,
                sub_interface: 0,
            },
            packet: p,
            completion: Some(Box::new(move |d| s2.lock().unwrap().push(d.status))),
        };
        assert_eq!(e.inject(req), Status::SUCCESS);
        match e.poll_injection() {
            Some(r) => {
                assert_eq!(r.reentry, Reentry::InboundBottom);
                prov = Some(r.provenance.clone());
                e.complete_injection(r.id, InjectionOutcome::Delivered);
            }
            None => break,
        }
    }
    let st = e.injection_stats();
    assert_eq!(st.loop_drops, 1);
    assert_eq!(
        *statuses.lock().unwrap(),
        vec![
            Status::SUCCESS,
            Status::SUCCESS,
            Status::SUCCESS,
            Status::FWP_DROP_NOICMP
        ]
    );
    assert_eq!(st.created, st.delivered + st.dropped + st.freed);
}

/// §1.1: a callout registered with ALLOW_L2_BATCH_CLASSIFY can neither clone nor reference the
/// indicated packet (STATUS_INVALID_PARAMETER); reserved callout flags are refused at registration.
#[test]
fn callout_flags_l2_batch_refuses_clone_and_reserved_flags_are_refused() {
    let h = Harness::new();
    let sl = h.sublayer("batch", 1);
    let got: Arc<Mutex<Vec<Result<wfp_core::inject::PacketId, Status>>>> = Arc::default();
    let g2 = got.clone();
    let c = ScriptedCallout::new(move |call, _| {
        let mut g = g2.lock().unwrap();
        g.push(call.ctx.clone_packet(call.meta, &[1]));
        g.push(call.ctx.reference_packet(call.meta, &[1], false));
    })
    .with_flags(CalloutFlags::ALLOW_L2_BATCH_CLASSIFY)
    .build();
    h.callout_filter(
        layers::INBOUND_TRANSPORT_V4,
        sl,
        1,
        ActionType::CALLOUT_INSPECTION,
        &c,
    );
    h.classify(layers::INBOUND_TRANSPORT_V4, TCP_TEMPL);
    assert_eq!(
        *got.lock().unwrap(),
        vec![
            Err(Status::INVALID_PARAMETER),
            Err(Status::INVALID_PARAMETER)
        ],
        "neither clone nor reference under ALLOW_L2_BATCH_CLASSIFY"
    );
    assert_eq!(h.engine().ledger_counts().held, 0);
    let handle = h.management_callout(layers::INBOUND_TRANSPORT_V4);
    let r = ScriptedCallout::passive()
        .with_flags(CalloutFlags::RESERVED1)
        .build();
    assert_eq!(h.register(handle, &r), Err(Status::INVALID_PARAMETER));
    let u = ScriptedCallout::passive()
        .with_flags(CalloutFlags(0x8000))
        .build();
    assert_eq!(h.register(handle, &u), Err(Status::INVALID_PARAMETER));
}
