//! Property test of the asynchronous machinery at the engine level (wfp-reference §10, §9.2):
//! random sequences of clone / free / inject / poll / complete / destroy-handle / pend / complete /
//! flow abort / reference / dereference / clone of a held packet / retreat and advance never lose
//! or duplicate a packet, run every completion exactly once and leak nothing:
//! every packet ends in exactly one of delivered / dropped / freed (absorbed), and the counters
//! reconcile after every step.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use wfp_core::callout::Metadata;
use wfp_core::inject::{
    AddressFamily, Inject, InjectionHandle, InjectionId, InjectionKind, InjectionOutcome,
    InjectionTypes, PacketId,
};
use wfp_core::pend::CompletionContext;
use wfp_core::{EngineOptions, FlowTracking};
use wfp_testkit::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Clone,
    Free(usize),
    CreateHandle,
    DestroyHandle(usize),
    Inject(usize, usize),
    Poll,
    Complete(usize, bool),
    Pend,
    Finish(usize),
    Abort(u8),
    Reference,
    RefAgain(usize),
    Deref(usize),
    CloneHeld(usize),
    Retreat(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Clone),
        1 => any::<usize>().prop_map(Op::Free),
        1 => Just(Op::CreateHandle),
        1 => any::<usize>().prop_map(Op::DestroyHandle),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(p, h)| Op::Inject(p, h)),
        2 => Just(Op::Poll),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, d)| Op::Complete(i, d)),
        1 => Just(Op::Pend),
        1 => any::<usize>().prop_map(Op::Finish),
        1 => (0u8..4).prop_map(Op::Abort),
        2 => Just(Op::Reference),
        1 => any::<usize>().prop_map(Op::RefAgain),
        2 => any::<usize>().prop_map(Op::Deref),
        1 => any::<usize>().prop_map(Op::CloneHeld),
        1 => (any::<usize>(), 0u8..48).prop_map(|(p, n)| Op::Retreat(p, n)),
    ]
}

struct World {
    h: Harness,
    packets: Vec<PacketId>,
    handles: Vec<InjectionHandle>,
    in_flight: Vec<InjectionId>,
    ops: Vec<CompletionContext>,
    /// injection id → completions run
    completions: Arc<Mutex<HashMap<InjectionId, u32>>>,
    accepted: u64,
    pends: Arc<Mutex<Vec<CompletionContext>>>,
    /// Indicated packets referenced (FwpsReferenceNetBufferList0) and their reference counts.
    referenced: Vec<(PacketId, u32)>,
    refs_in: Arc<Mutex<Vec<PacketId>>>,
    /// Indicated packets referenced so far (each Reference op makes one).
    references: u64,
}

impl World {
    fn new() -> Self {
        let h = Harness::with_options(EngineOptions {
            flow_tracking: FlowTracking::Announced,
            max_injection_depth: 2,
            ..EngineOptions::default()
        });
        let pends: Arc<Mutex<Vec<CompletionContext>>> = Arc::default();
        let p2 = pends.clone();
        let c = ScriptedCallout::new(move |call, out| {
            if let Ok(ctx) = call.ctx.pend_operation(call.meta) {
                p2.lock().unwrap().push(ctx);
                out.action_type = ActionType::BLOCK;
                out.flags |= ClassifyOutFlags::ABSORB;
                out.clear_write();
            }
        })
        .build();
        let sl = h.sublayer("p", 1);
        h.callout_filter(
            layers::ALE_AUTH_CONNECT_V4,
            sl,
            1,
            ActionType::CALLOUT_TERMINATING,
            &c,
        );
        // A callout that references the indicated packet at INBOUND_TRANSPORT (layerData = the
        // payload, the headers behind it in the metadata).
        let refs_in: Arc<Mutex<Vec<PacketId>>> = Arc::default();
        let r2 = refs_in.clone();
        let r = ScriptedCallout::new(move |call, _| {
            let p = call
                .ctx
                .reference_packet(call.meta, b"payload", false)
                .unwrap();
            r2.lock().unwrap().push(p);
        })
        .build();
        h.callout_filter(
            layers::INBOUND_TRANSPORT_V4,
            sl,
            1,
            ActionType::CALLOUT_INSPECTION,
            &r,
        );
        for f in 0..4 {
            h.engine().flow_created(100 + f);
        }
        Self {
            h,
            packets: Vec::new(),
            handles: Vec::new(),
            in_flight: Vec::new(),
            ops: Vec::new(),
            completions: Arc::default(),
            accepted: 0,
            pends,
            referenced: Vec::new(),
            refs_in,
            references: 0,
        }
    }

    fn step(&mut self, op: &Op) {
        let e = self.h.engine().clone();
        match *op {
            Op::Clone => self.packets.push(e.allocate_packet(vec![0x45u8, 0, 0, 20])),
            Op::Free(i) if !self.packets.is_empty() => {
                let p = self.packets.swap_remove(i % self.packets.len());
                assert_eq!(e.free_packet(p), Status::SUCCESS);
                assert_eq!(e.free_packet(p), Status::FWP_NOT_FOUND);
            }
            Op::CreateHandle => self.handles.push(
                e.create_injection_handle(AddressFamily::Inet, InjectionTypes::NETWORK)
                    .unwrap(),
            ),
            Op::DestroyHandle(i) if !self.handles.is_empty() => {
                let h = self.handles.swap_remove(i % self.handles.len());
                let st = e.destroy_injection_handle(h);
                assert!(st == Status::SUCCESS || st == Status::PENDING, "{st}");
            }
            Op::Inject(p, h) if !self.packets.is_empty() && !self.handles.is_empty() => {
                let pi = p % self.packets.len();
                let handle = self.handles[h % self.handles.len()];
                let comps = self.completions.clone();
                let req = Inject {
                    handle,
                    context: 0,
                    kind: InjectionKind::NetworkSend { compartment: 1 },
                    packet: self.packets[pi],
                    completion: Some(Box::new(move |d| {
                        *comps.lock().unwrap().entry(d.id).or_default() += 1;
                    })),
                };
                if e.inject(req) == Status::SUCCESS {
                    self.packets.swap_remove(pi);
                    self.accepted += 1;
                }
            }
            Op::Poll => {
                if let Some(r) = e.poll_injection() {
                    self.in_flight.push(r.id);
                }
            }
            Op::Complete(i, delivered) if !self.in_flight.is_empty() => {
                let id = self.in_flight.swap_remove(i % self.in_flight.len());
                let outcome = if delivered {
                    InjectionOutcome::Delivered
                } else {
                    InjectionOutcome::Dropped(Status::UNSUCCESSFUL)
                };
                assert_eq!(e.complete_injection(id, outcome), Status::SUCCESS);
                assert_eq!(e.complete_injection(id, outcome), Status::FWP_NOT_FOUND);
            }
            Op::Pend => {
                let meta = Metadata {
                    completion_handle: e.new_completion_handle().0,
                    present: MetadataFields::COMPLETION_HANDLE,
                    ..Metadata::default()
                };
                let (r, _) = self
                    .h
                    .classify_meta(layers::ALE_AUTH_CONNECT_V4, TCP_TEMPL, &meta);
                assert!(r.absorbed());
                self.ops.extend(self.pends.lock().unwrap().drain(..));
            }
            Op::Finish(i) if !self.ops.is_empty() => {
                let ctx = self.ops.swap_remove(i % self.ops.len());
                assert_eq!(e.complete_operation(ctx, None), Status::SUCCESS);
                assert_eq!(e.complete_operation(ctx, None), Status::FWP_NOT_FOUND);
            }
            Op::Abort(f) => {
                e.flow_abort(100 + u64::from(f));
            }
            _ => self.step_packets(op),
        }
        self.check();
    }

    /// The referenced-packet and data-start operations (wdk-runtime §6–7).
    fn step_packets(&mut self, op: &Op) {
        let e = self.h.engine().clone();
        match *op {
            Op::Reference => {
                let meta = Metadata {
                    header_bytes: Some(vec![0x45u8; 28].into()),
                    ..Metadata::default()
                };
                self.h
                    .classify_meta(layers::INBOUND_TRANSPORT_V4, TCP_TEMPL, &meta);
                let new = self.refs_in.lock().unwrap().drain(..).collect::<Vec<_>>();
                assert_eq!(new.len(), 1, "the callout referenced the indicated packet");
                assert_eq!(e.packet_data(new[0]).as_deref(), Some(&b"payload"[..]));
                self.references += 1;
                self.referenced.extend(new.into_iter().map(|p| (p, 1)));
            }
            Op::RefAgain(i) if !self.referenced.is_empty() => {
                let k = i % self.referenced.len();
                assert_eq!(e.reference_packet(self.referenced[k].0), Status::SUCCESS);
                self.referenced[k].1 += 1;
            }
            Op::Deref(i) if !self.referenced.is_empty() => {
                let k = i % self.referenced.len();
                let p = self.referenced[k].0;
                assert_eq!(
                    e.free_packet(p),
                    Status::INVALID_PARAMETER,
                    "not the callout's"
                );
                assert_eq!(e.dereference_packet(p), Status::SUCCESS);
                self.referenced[k].1 -= 1;
                if self.referenced[k].1 == 0 {
                    self.referenced.swap_remove(k);
                    assert_eq!(e.dereference_packet(p), Status::FWP_NOT_FOUND);
                }
            }
            Op::CloneHeld(i) => {
                let all: Vec<PacketId> = self
                    .referenced
                    .iter()
                    .map(|r| r.0)
                    .chain(self.packets.iter().copied())
                    .collect();
                if let Some(p) = all.get(i % all.len().max(1)) {
                    self.packets.push(e.clone_held_packet(*p).unwrap());
                }
            }
            Op::Retreat(i, n) if !self.packets.is_empty() => {
                let p = self.packets[i % self.packets.len()];
                let before = e.packet_data(p).unwrap();
                assert_eq!(e.retreat_packet(p, usize::from(n)), Status::SUCCESS);
                assert_eq!(
                    e.packet_data(p).unwrap().len(),
                    before.len() + usize::from(n)
                );
                assert_eq!(e.advance_packet(p, usize::from(n)), Status::SUCCESS);
                assert_eq!(e.packet_data(p).unwrap(), before);
            }
            _ => {}
        }
    }

    fn check(&self) {
        let e = self.h.engine();
        let s = e.injection_stats();
        let c = e.ledger_counts();
        let live = (c.held + c.queued + c.in_flight) as u64;
        assert_eq!(
            s.created,
            live + s.delivered + s.dropped + s.freed,
            "{s:?} {c:?}"
        );
        assert_eq!(s.completions, s.delivered + s.dropped);
        assert_eq!(s.injected, self.accepted);
        assert_eq!(c.held, self.packets.len() + self.referenced.len());
        let comps = self.completions.lock().unwrap();
        assert!(comps.values().all(|n| *n == 1), "a completion ran twice");
        assert_eq!(comps.len() as u64, s.completions);
        let p = e.pend_stats();
        assert_eq!(
            p.operations_pended,
            p.operations_completed + self.ops.len() as u64
        );
    }

    /// Drains everything: afterwards nothing is held, queued, in flight, pended or open.
    fn finish(mut self) {
        let e = self.h.engine().clone();
        for p in self.packets.drain(..) {
            assert_eq!(e.free_packet(p), Status::SUCCESS);
        }
        for (p, refs) in self.referenced.drain(..) {
            for _ in 0..refs {
                assert_eq!(e.dereference_packet(p), Status::SUCCESS);
            }
        }
        for id in self.in_flight.drain(..) {
            e.complete_injection(id, InjectionOutcome::Delivered);
        }
        while let Some(r) = e.poll_injection() {
            e.complete_injection(r.id, InjectionOutcome::Delivered);
        }
        for h in self.handles.drain(..) {
            assert_eq!(e.destroy_injection_handle(h), Status::SUCCESS);
        }
        for ctx in self.ops.drain(..) {
            e.complete_operation(ctx, None);
        }
        self.check();
        let c = e.ledger_counts();
        assert_eq!((c.held, c.queued, c.in_flight), (0, 0, 0));
        assert_eq!(e.injection_handle_count(), 0);
        assert_eq!(e.injection_stats().completions, self.accepted);
        assert_eq!(e.injection_stats().referenced, self.references);
        assert_eq!(e.pending_operations_of_flow(0).len(), 0);
        assert_eq!(e.classify_handle_count(), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn async_sequences_never_lose_duplicate_or_leak(ops in proptest::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        for o in &ops {
            w.step(o);
        }
        w.finish();
    }
}
