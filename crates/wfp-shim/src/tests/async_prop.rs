//! Property test of the asynchronous machinery through the shim (wfp-reference §10.1 pend /
//! complete, §10.4 clone / inject / handle destroy, §6 flow abort): random sequences of packets
//! over random flows, completions, clone injections and frees, aborts, handle destroys and pend
//! expiries never lose or duplicate a packet and never leak.
//!
//! Every packet carries a unique tag (its UDP payload). A tag ends in exactly one of delivered
//! (a PERMIT verdict: of the original, a released held packet, or an injected clone), dropped (a
//! BLOCK verdict, or an injection completed as dropped without reaching a layer) or absorbed (a
//! held clone freed) — or, once, in the shim's `held_dropped` count (a held packet dropped at
//! expiry, refusal or flow end, which the shim reports only as a number). The engine's ledger and
//! the shim's counters reconcile after every step and are empty at the end.
//!
//! Flow `i` goes to remote port `1000 + i`; the port decides what the callouts do with it:
//! port % 2 == 0 pends its AUTH_CONNECT (% 4 == 2 is refused at completion); at OUTBOUND_TRANSPORT
//! port % 3 == 0 is cloned and the clone injected at once (original absorbed), % 3 == 1 is cloned
//! and the clone kept for a later inject or free (original absorbed), % 3 == 2 passes; inbound, at
//! INBOUND_TRANSPORT (whose layerData is the payload), port % 5 == 0 is cloned, the clone
//! retreated to its IP header and injected with FwpsInjectTransportReceiveAsync0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::layers;
use wfp_core::constants::{ClassifyOutFlags, ConditionFlags};
use wfp_core::engine::FlowTracking;
use wfp_core::inject::{
    AddressFamily, Inject, InjectionCompleted, InjectionHandle, InjectionId, InjectionKind,
    InjectionTypes, PacketId,
};
use wfp_core::pend::CompletionContext;
use wfp_core::{ActionType, Callout, CalloutFlags, Engine, EngineOptions, RtFilter, Status};

use super::pipeline::H;
use crate::pipeline::{OutputOrigin, PacketDirection, PacketVerdict, Reason, ShimConfig, Verdict};
use crate::testutil::{self, V4};

const FLOWS: u16 = 12;

/// The injector's handles: network send and transport receive.
const TYPES: InjectionTypes =
    InjectionTypes(InjectionTypes::NETWORK.0 | InjectionTypes::TRANSPORT.0);

#[derive(Clone, Debug)]
enum Op {
    Send(u16),
    Recv(u16),
    Complete(usize),
    Async,
    InjectHeld(usize),
    FreeHeld(usize),
    Abort(u16),
    DestroyHandle,
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..FLOWS).prop_map(Op::Send),
        2 => (0..FLOWS).prop_map(Op::Recv),
        2 => any::<usize>().prop_map(Op::Complete),
        3 => Just(Op::Async),
        1 => any::<usize>().prop_map(Op::InjectHeld),
        1 => any::<usize>().prop_map(Op::FreeHeld),
        1 => (0..FLOWS).prop_map(Op::Abort),
        1 => Just(Op::DestroyHandle),
        1 => Just(Op::Expire),
    ]
}

/// What the callouts share with the test.
#[derive(Default)]
struct Shared {
    /// Pended operations not yet completed.
    pends: Vec<CompletionContext>,
    /// Clones the injector keeps (with their tag).
    kept: Vec<(PacketId, u32)>,
    /// The handle injections use now, and every handle the injector ever had.
    handle: Option<InjectionHandle>,
    own: Vec<InjectionHandle>,
    /// Remote port → the flow handle last seen for it.
    flows: HashMap<u16, u64>,
    /// Completions run, per injection, and how each ended.
    completions: HashMap<InjectionId, (u32, u32, Status)>,
    /// Injection → tag of its packet.
    tags: HashMap<PacketId, u32>,
}

type Shr = Arc<Mutex<Shared>>;

fn remote_port(values: &IncomingValues<'_>) -> u16 {
    values.by_name("IP_REMOTE_PORT").as_u64().unwrap_or(0) as u16
}

fn tag_of(bytes: &[u8]) -> u32 {
    let n = bytes.len();
    bytes
        .get(n.saturating_sub(4)..)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

fn absorb(out: &mut ClassifyOut) {
    out.action_type = ActionType::BLOCK;
    out.flags |= ClassifyOutFlags::ABSORB;
    out.clear_write();
}

/// ALE_AUTH_CONNECT: pends even ports' initial authorization; at reauthorization refuses
/// port % 4 == 2.
struct Pender(Shr);

impl Callout for Pender {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        _ld: &mut LayerData<'_>,
        _f: &RtFilter,
        _fc: u64,
        out: &mut ClassifyOut,
    ) {
        let port = remote_port(values);
        let mut s = self.0.lock().unwrap();
        if let Some(fl) = meta.flow() {
            s.flows.insert(port, fl);
        }
        let flags = values.by_name("FLAGS").as_u64().unwrap_or(0) as u32;
        out.action_type = ActionType::PERMIT;
        if flags & ConditionFlags::IS_REAUTHORIZE.0 != 0 {
            if port % 4 == 2 {
                out.action_type = ActionType::BLOCK;
                out.clear_write();
            }
            return;
        }
        if port % 2 == 0 {
            if let Ok(c) = ctx.pend_operation(meta) {
                s.pends.push(c);
                absorb(out);
            }
        }
    }
}

/// OUTBOUND_TRANSPORT: clones and injects (port % 3 == 0) or keeps the clone (% 3 == 1); its own
/// injected packets pass.
struct Injector(Shr);

impl Injector {
    fn take(
        &self,
        ctx: &ClassifyContext<'_>,
        meta: &Metadata,
        packet: &[u8],
        out: &mut ClassifyOut,
        port: u16,
    ) {
        let mut s = self.0.lock().unwrap();
        let Ok(clone) = ctx.clone_packet(meta, packet) else {
            return;
        };
        let tag = tag_of(packet);
        if port % 3 == 1 {
            s.kept.push((clone, tag));
            return absorb(out);
        }
        let Some(handle) = s.handle else {
            let _ = ctx.engine().free_packet(clone);
            return;
        };
        s.tags.insert(clone, tag);
        drop(s);
        if inject(ctx.engine(), &self.0, handle, clone) == Status::SUCCESS {
            absorb(out);
        } else {
            self.0.lock().unwrap().tags.remove(&clone);
            assert_eq!(ctx.engine().free_packet(clone), Status::SUCCESS);
        }
    }
}

impl Callout for Injector {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        ld: &mut LayerData<'_>,
        _f: &RtFilter,
        _fc: u64,
        out: &mut ClassifyOut,
    ) {
        let port = remote_port(values);
        out.action_type = ActionType::PERMIT;
        {
            let mut s = self.0.lock().unwrap();
            if let Some(fl) = meta.flow() {
                s.flows.insert(port, fl);
            }
            let mine = meta
                .injection
                .as_ref()
                .is_some_and(|p| p.hops.iter().any(|hop| s.own.contains(&hop.handle)));
            if mine || port % 3 == 2 {
                return;
            }
        }
        if let LayerData::Packet(p) = ld {
            let p: &[u8] = p;
            self.take(ctx, meta, p, out, port);
        }
    }
}

/// INBOUND_TRANSPORT: port % 5 == 0 is cloned, retreated to the whole packet and re-injected
/// at the bottom of the inbound path (TransportReceive); its own injected packets pass.
struct InboundInjector(Shr);

impl Callout for InboundInjector {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        ld: &mut LayerData<'_>,
        _f: &RtFilter,
        _fc: u64,
        out: &mut ClassifyOut,
    ) {
        let port = remote_port(values);
        out.action_type = ActionType::PERMIT;
        let handle = {
            let s = self.0.lock().unwrap();
            let mine = meta
                .injection
                .as_ref()
                .is_some_and(|p| p.hops.iter().any(|hop| s.own.contains(&hop.handle)));
            match s.handle {
                Some(h) if !mine && port % 5 == 0 => h,
                _ => return,
            }
        };
        let LayerData::Packet(p) = ld else { return };
        let e = ctx.engine();
        let clone = ctx.clone_packet(meta, p).unwrap();
        let back = (meta.ip_header_size + meta.transport_header_size) as usize;
        assert_eq!(e.retreat_packet(clone, back), Status::SUCCESS);
        let whole = e.packet_data(clone).unwrap();
        assert_eq!(whole[0] >> 4, 4, "retreated to the IP header");
        self.0.lock().unwrap().tags.insert(clone, tag_of(p));
        let kind = InjectionKind::TransportReceive {
            compartment: 1,
            interface: 0,
            sub_interface: 0,
        };
        if inject_as(e, &self.0, handle, clone, kind) == Status::SUCCESS {
            absorb(out);
        } else {
            self.0.lock().unwrap().tags.remove(&clone);
            assert_eq!(e.free_packet(clone), Status::SUCCESS);
        }
    }
}

/// A network-send injection of ledger packet `p` whose completion records itself.
fn inject(engine: &Engine, shared: &Shr, handle: InjectionHandle, p: PacketId) -> Status {
    let kind = InjectionKind::NetworkSend { compartment: 1 };
    inject_as(engine, shared, handle, p, kind)
}

/// An injection of kind `kind` whose completion records itself.
fn inject_as(
    engine: &Engine,
    shared: &Shr,
    handle: InjectionHandle,
    p: PacketId,
    kind: InjectionKind,
) -> Status {
    let s = shared.clone();
    engine.inject(Inject {
        handle,
        context: 0,
        kind,
        packet: p,
        completion: Some(Box::new(move |done: &InjectionCompleted| {
            let mut g = s.lock().unwrap();
            let tag = g.tags.get(&done.packet).copied().unwrap_or(0);
            let e = g
                .completions
                .entry(done.id)
                .or_insert((0, tag, done.status));
            e.0 += 1;
        })),
    })
}

/// Where each tag ended.
#[derive(Default)]
struct Fates {
    ends: HashMap<u32, Vec<&'static str>>,
    sent: u32,
    injected_outputs: HashMap<InjectionId, u32>,
    released_outputs: u64,
    /// Outputs of TransportReceive injections (inbound clones retreated to the IP header).
    transport_receive: u64,
}

impl Fates {
    fn end(&mut self, tag: u32, how: &'static str) {
        self.ends.entry(tag).or_default().push(how);
    }
    /// A verdict on a packet carrying `tag`: PERMIT delivers, BLOCK drops, ABSORB keeps it alive
    /// (held by a pend, or carried on by a clone).
    fn verdict(&mut self, tag: u32, v: &PacketVerdict) {
        match v.verdict {
            Verdict::Permit => self.end(tag, "delivered"),
            Verdict::Block => self.end(tag, "dropped"),
            Verdict::Absorb => {}
        }
    }
}

struct World {
    h: H,
    s: Shr,
    fates: Fates,
}

impl World {
    fn new() -> Self {
        let engine = Arc::new(Engine::new(EngineOptions {
            flow_tracking: FlowTracking::Announced,
            ..EngineOptions::default()
        }));
        let config = ShimConfig {
            pend_deadline: Some(Duration::from_secs(2)),
            max_held_packets: 10_000,
            ..ShimConfig::default()
        };
        let mut h = H::with_engine(engine, config);
        let s: Shr = Arc::default();
        let handle = h
            .engine
            .create_injection_handle(AddressFamily::Inet, TYPES)
            .unwrap();
        {
            let mut g = s.lock().unwrap();
            g.handle = Some(handle);
            g.own.push(handle);
        }
        let none = CalloutFlags::default();
        let term = ActionType::CALLOUT_TERMINATING;
        h.callout_dyn(
            layers::ALE_AUTH_CONNECT_V4,
            term,
            none,
            Arc::new(Pender(s.clone())),
        );
        h.callout_dyn(
            layers::OUTBOUND_TRANSPORT_V4,
            term,
            none,
            Arc::new(Injector(s.clone())),
        );
        h.callout_dyn(
            layers::INBOUND_TRANSPORT_V4,
            term,
            none,
            Arc::new(InboundInjector(s.clone())),
        );
        Self {
            h,
            s,
            fates: Fates::default(),
        }
    }

    fn packet(&mut self, i: u16, dir: PacketDirection) {
        self.fates.sent += 1;
        let tag = self.fates.sent;
        let port = 1000 + i;
        let bytes = match dir {
            PacketDirection::Inbound => {
                testutil::udp_packet(&V4.reply(), port, 40000, &tag.to_be_bytes())
            }
            _ => testutil::udp_packet(&V4, 40000, port, &tag.to_be_bytes()),
        };
        let v = self.h.packet(dir, &bytes);
        self.fates.verdict(tag, &v);
    }

    fn step(&mut self, op: &Op) {
        let engine = self.h.engine.clone();
        match *op {
            Op::Send(i) => self.packet(i, PacketDirection::Outbound),
            Op::Recv(i) => self.packet(i, PacketDirection::Inbound),
            Op::Complete(k) => {
                let c = {
                    let mut g = self.s.lock().unwrap();
                    if g.pends.is_empty() {
                        return;
                    }
                    let n = g.pends.len();
                    g.pends.remove(k % n)
                };
                assert_eq!(engine.complete_operation(c, None), Status::SUCCESS);
                assert_eq!(engine.complete_operation(c, None), Status::FWP_NOT_FOUND);
            }
            Op::Async => self.run_async(),
            Op::InjectHeld(k) => self.inject_kept(k),
            Op::FreeHeld(k) => {
                let kept = {
                    let mut g = self.s.lock().unwrap();
                    let n = g.kept.len();
                    (n > 0).then(|| g.kept.remove(k % n))
                };
                if let Some((p, tag)) = kept {
                    assert_eq!(engine.free_packet(p), Status::SUCCESS);
                    assert_eq!(engine.free_packet(p), Status::FWP_NOT_FOUND);
                    self.fates.end(tag, "absorbed");
                }
            }
            Op::Abort(i) => {
                let fl = self.s.lock().unwrap().flows.get(&(1000 + i)).copied();
                if let Some(fl) = fl {
                    engine.flow_abort(fl);
                }
            }
            Op::DestroyHandle => {
                let old = self.s.lock().unwrap().handle.take();
                if let Some(h) = old {
                    let st = engine.destroy_injection_handle(h);
                    assert!(st == Status::SUCCESS || st == Status::PENDING, "{st:?}");
                    assert_eq!(
                        engine.destroy_injection_handle(h),
                        Status::FWP_INJECT_HANDLE_STALE
                    );
                }
                let new = engine
                    .create_injection_handle(AddressFamily::Inet, TYPES)
                    .unwrap();
                let mut g = self.s.lock().unwrap();
                g.handle = Some(new);
                g.own.push(new);
            }
            Op::Expire => {
                self.h.now = self.h.now + Duration::from_secs(3);
                self.h.shim.handle_timeout(self.h.now);
            }
        }
        self.check();
    }

    fn inject_kept(&mut self, k: usize) {
        let engine = self.h.engine.clone();
        let (kept, handle) = {
            let mut g = self.s.lock().unwrap();
            let n = g.kept.len();
            if n == 0 {
                return;
            }
            let kept = g.kept.remove(k % n);
            g.tags.insert(kept.0, kept.1);
            (kept, g.handle)
        };
        let Some(handle) = handle else { return };
        let st = inject(&engine, &self.s, handle, kept.0);
        assert_eq!(st, Status::SUCCESS);
        // Injected once: the packet is the injection's now.
        assert_eq!(
            inject(&engine, &self.s, handle, kept.0),
            Status::FWP_NOT_FOUND
        );
    }

    fn run_async(&mut self) {
        self.h.shim.handle_async(self.h.now);
        while let Some(o) = self.h.shim.poll_output() {
            let tag = tag_of(&o.bytes);
            match o.origin {
                OutputOrigin::Released { .. } => self.fates.released_outputs += 1,
                OutputOrigin::Injected {
                    injection, kind, ..
                } => {
                    *self.fates.injected_outputs.entry(injection).or_default() += 1;
                    if kind == crate::pipeline::InjectKind::TransportReceive {
                        self.fates.transport_receive += 1;
                        assert_eq!(o.bytes[0] >> 4, 4, "a whole IPv4 packet");
                    }
                }
            }
            self.fates.verdict(tag, &o.verdict);
        }
    }

    /// The counters that must reconcile at every step.
    fn check(&self) {
        let e = &self.h.engine;
        let st = e.injection_stats();
        let live = e.ledger_counts();
        let live_n = (live.held + live.queued + live.in_flight) as u64;
        assert_eq!(
            st.created,
            live_n + st.freed + st.delivered + st.dropped,
            "ledger: {st:?} {live:?}"
        );
        assert_eq!(
            st.injected,
            st.delivered + st.dropped + (live.queued + live.in_flight) as u64
        );
        assert_eq!(st.completions, st.delivered + st.dropped);
        let kept = self.s.lock().unwrap().kept.len();
        assert_eq!(
            live.held, kept,
            "held clones are exactly the ones the callout keeps"
        );
        let sh = self.h.shim.stats();
        assert!(sh.held >= sh.held_released + sh.held_dropped);
        assert_eq!(sh.held_released, self.fates.released_outputs);
    }

    /// Completes everything outstanding, ends every flow and checks that nothing is left.
    fn finish(mut self) {
        self.run_async();
        let pends = std::mem::take(&mut self.s.lock().unwrap().pends);
        for c in pends {
            assert_eq!(self.h.engine.complete_operation(c, None), Status::SUCCESS);
        }
        self.run_async();
        let n = self.s.lock().unwrap().kept.len();
        for _ in 0..n {
            self.inject_kept(0);
        }
        self.run_async();
        // Packets released above may have pended again or been kept: settle them.
        for _ in 0..4 {
            let pends = std::mem::take(&mut self.s.lock().unwrap().pends);
            for c in pends {
                self.h.engine.complete_operation(c, None);
            }
            let n = self.s.lock().unwrap().kept.len();
            for _ in 0..n {
                self.inject_kept(0);
            }
            self.run_async();
        }
        self.h.shim.abort_all();
        self.run_async();
        self.check();
        let e = &self.h.engine;
        let st = e.injection_stats();
        assert_eq!(e.ledger_counts(), Default::default(), "ledger empty");
        assert_eq!(st.created, st.freed + st.delivered + st.dropped);
        let sh = self.h.shim.stats().clone();
        assert_eq!(sh.held, sh.held_released + sh.held_dropped, "{sh:?}");
        assert_eq!(self.h.shim.flow_count(), 0);
        assert_eq!(e.live_flow_count(), 0);
        assert_eq!(e.flow_context_count(), 0);
        assert_eq!(e.classify_handle_count(), 0);
        let ps = e.pend_stats();
        assert_eq!(ps.operations_pended, ps.operations_completed, "{ps:?}");
        // Every injection completed exactly once; every injection that reached the data path
        // produced exactly one output; one without an output was dropped before any layer.
        let g = self.s.lock().unwrap();
        assert_eq!(g.completions.len() as u64, st.injected);
        let mut fates = std::mem::take(&mut self.fates);
        for (id, (runs, tag, status)) in &g.completions {
            assert_eq!(*runs, 1, "completion of {id:?} ran {runs} times");
            match fates.injected_outputs.get(id) {
                Some(1) => {}
                None => {
                    assert_ne!(*status, Status::SUCCESS);
                    fates.end(*tag, "dropped");
                }
                Some(n) => panic!("injection {id:?} produced {n} outputs"),
            }
        }
        assert_eq!(
            sh.injected_delivered + sh.injected_dropped,
            fates.injected_outputs.len() as u64
        );
        drop(g);
        // No tag ends twice; the tags with no end are exactly the held packets the shim dropped.
        for (tag, ends) in &fates.ends {
            assert_eq!(ends.len(), 1, "tag {tag} ended as {ends:?}");
        }
        let open = (1..=fates.sent)
            .filter(|t| !fates.ends.contains_key(t))
            .count() as u64;
        assert_eq!(
            open, sh.held_dropped,
            "lost packets beyond the counted held drops"
        );
        // A held packet the shim released is never also counted as dropped.
        assert!(sh.pend_completed + sh.pend_expired <= sh.pended + sh.late_completions);
        let _ = Reason::Pended;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn shim_async_sequences_never_lose_duplicate_or_leak(
        ops in proptest::collection::vec(op(), 1..70)
    ) {
        let mut w = World::new();
        for op in &ops {
            w.step(op);
        }
        w.finish();
    }
}

#[test]
fn shim_async_model_exercises_every_path() {
    // A fixed sequence through pend → complete → release → clone → inject, a refused flow, a
    // kept clone freed, a destroyed handle with an injection pending, an abort and an expiry.
    let ops = [
        Op::Send(0), // port 1000: pend; kept clones after release
        Op::Send(0),
        Op::Send(3), // 1003: kept clone
        Op::Send(2), // 1002: pend, refused at completion
        Op::Recv(2),
        Op::Complete(0),
        Op::Complete(0),
        Op::Async,
        Op::DestroyHandle,
        Op::Async,
        Op::FreeHeld(0),
        Op::InjectHeld(0),
        Op::Send(4), // 1004: pend, expires
        Op::Expire,
        Op::Send(5), // 1005: clone injected at once, then the flow is aborted
        Op::Abort(5),
        Op::Async,
        Op::Send(5),
        Op::Recv(10), // 1010: inbound, cloned at INBOUND_TRANSPORT, re-injected whole
        Op::Async,
    ];
    let mut w = World::new();
    for op in &ops {
        w.step(op);
    }
    let sh = w.h.shim.stats().clone();
    assert!(
        sh.pended >= 3 && sh.pend_completed >= 2 && sh.pend_expired >= 1,
        "{sh:?}"
    );
    assert!(sh.held_released >= 2 && sh.held_dropped >= 2, "{sh:?}");
    // The clone of 1005 runs after the abort: blocked with its flow.
    assert!(
        sh.injected_delivered >= 1 && sh.injected_dropped >= 1,
        "{sh:?}"
    );
    assert_eq!(sh.flows_aborted, 1);
    assert_eq!(w.fates.transport_receive, 1);
    let st = w.h.engine.injection_stats();
    assert!(st.freed >= 1 && st.injected >= 2, "{st:?}");
    w.finish();
}
