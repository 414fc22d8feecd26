//! Concurrency: readers classify continuously while a writer replaces the policy in transactions
//! (some aborted) and a registrar registers and unregisters a callout and associates and removes
//! flow contexts. Bounded by iteration counts, not time.
//!
//! Every committed policy state `g` is three filters at INBOUND_TRANSPORT_V4 — `c_g` (INSPECTION,
//! the probe callout, S1 weight 10), `a_g` (PERMIT, S1 weight 5), `b_g` (BLOCK, S2) — recorded
//! before the transaction commits. Asserted:
//! - every classify sees exactly one committed state, whole: trace = `[c_g, a_g, b_g]`, result hard
//!   BLOCK by `b_g` (or NONE_NO_MATCH with an empty trace before the first commit); never a state
//!   from an aborted transaction;
//! - a probe instance never runs classifyFn after `unregister_callout` returned SUCCESS for it (each
//!   instance carries a `dead` flag set right after that return);
//! - a classify never receives a flow context whose flowDeleteFn already ran, flowDeleteFn runs at
//!   most once per context, and every associated context is deleted exactly once in the end;
//! - no ADD or DELETE notification is delivered twice to an instance, and the last instance (never
//!   unregistered until the end) receives a DELETE for every filter it received an ADD for.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;

use wfp_core::callout::{
    CalloutRegistration, ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata,
};
use wfp_core::{Callout, RtFilter};
use wfp_testkit::prelude::*;

const LAYER: LayerId = layers::INBOUND_TRANSPORT_V4;
const GENERATIONS: u64 = 1_000;
const REGISTRATIONS: usize = 200;
const READERS: usize = 3;
const READER_CAP: usize = 200_000;
const FLOWS: [u64; 4] = [1, 2, 3, 4];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ctx {
    Associated,
    Deleted,
}

struct State {
    ids: [FilterId; 3],
    committed: bool,
}

#[derive(Default)]
struct Shared {
    /// Policy generation → its filters and whether its transaction commits.
    states: Mutex<HashMap<u64, State>>,
    /// Filter → generation.
    owner: Mutex<HashMap<FilterId, u64>>,
    /// Flow context value → lifecycle.
    contexts: Mutex<HashMap<u64, Ctx>>,
    violations: Mutex<Vec<String>>,
}

impl Shared {
    fn violation(&self, v: String) {
        let mut all = lock(&self.violations);
        if all.len() < 20 {
            all.push(v);
        }
    }
}

/// One registration of the probe callout.
struct Probe {
    shared: Arc<Shared>,
    dead: AtomicBool,
    adds: Mutex<HashSet<FilterId>>,
    deletes: Mutex<HashSet<FilterId>>,
}

impl Probe {
    fn new(shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Self {
            shared,
            dead: AtomicBool::new(false),
            adds: Mutex::default(),
            deletes: Mutex::default(),
        })
    }
}

impl Callout for Probe {
    fn classify(
        &self,
        _ctx: &ClassifyContext<'_>,
        _values: &IncomingValues<'_>,
        _meta: &Metadata,
        _layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        if self.dead.load(Ordering::SeqCst) {
            self.shared.violation(format!(
                "classifyFn ran after unregister returned SUCCESS (filter {:?})",
                filter.filter_id()
            ));
        }
        if flow_context != 0 {
            let state = lock(&self.shared.contexts).get(&flow_context).copied();
            if state != Some(Ctx::Associated) {
                self.shared.violation(format!(
                    "classify received flow context {flow_context:#x} in state {state:?}"
                ));
            }
        }
        out.action_type = ActionType::CONTINUE;
    }

    fn notify(&self, kind: NotifyType, _key: Option<&Guid>, filter: &mut RtFilter) -> Status {
        let id = filter.filter_id();
        let set = match kind {
            NotifyType::AddFilter => &self.adds,
            NotifyType::DeleteFilter => &self.deletes,
            _ => return Status::SUCCESS,
        };
        if !lock(set).insert(id) {
            self.shared
                .violation(format!("{kind:?} delivered twice for {id:?}"));
        }
        Status::SUCCESS
    }

    fn flow_delete(&self, _layer: LayerId, _callout: CalloutId, flow_context: u64) {
        let mut ctxs = lock(&self.shared.contexts);
        match ctxs.get(&flow_context).copied() {
            Some(Ctx::Associated) => {
                ctxs.insert(flow_context, Ctx::Deleted);
            }
            other => {
                drop(ctxs);
                self.shared.violation(format!(
                    "flowDeleteFn for context {flow_context:#x} in state {other:?}"
                ));
            }
        }
    }
}

fn reader(h: &Harness, shared: &Shared, done: &AtomicBool, seed: u64) -> usize {
    let values = TCP_TEMPL.into_values(LAYER);
    let mut n = 0;
    while !done.load(Ordering::SeqCst) && n < READER_CAP {
        let flow = FLOWS[(n + seed as usize) % FLOWS.len()];
        let (r, t) = h.classify_flow(LAYER, values.clone(), flow);
        n += 1;
        if t.steps.is_empty() {
            if r.action != ActionType::NONE_NO_MATCH || r.deciding_filter.is_some() {
                shared.violation(format!("empty trace with result {r:?}"));
            }
            continue;
        }
        let ids: Vec<FilterId> = t.steps.iter().map(|s| s.filter_id).collect();
        let generation = {
            let owner = lock(&shared.owner);
            let gens: HashSet<Option<u64>> = ids.iter().map(|i| owner.get(i).copied()).collect();
            if gens.len() != 1 {
                shared.violation(format!("trace mixes policy states: {ids:?} → {gens:?}"));
                continue;
            }
            gens.into_iter().next().flatten()
        };
        let Some(g) = generation else {
            shared.violation(format!("unknown filters in trace {ids:?}"));
            continue;
        };
        let states = lock(&shared.states);
        let Some(state) = states.get(&g) else {
            shared.violation(format!("generation {g} unknown"));
            continue;
        };
        if !state.committed {
            shared.violation(format!("saw generation {g} from an aborted transaction"));
        }
        if ids != state.ids {
            shared.violation(format!(
                "generation {g}: trace {ids:?}, want {:?}",
                state.ids
            ));
        }
        if r.action != ActionType::BLOCK
            || r.hardness != Hardness::Hard
            || r.deciding_filter != Some(state.ids[2])
        {
            shared.violation(format!("generation {g}: result {r:?}"));
        }
        if !matches!(
            t.steps[0].outcome,
            StepOutcome::Continue | StepOutcome::SkippedUnregistered
        ) {
            shared.violation(format!("probe step {:?}", t.steps[0].outcome));
        }
    }
    n
}

fn writer(h: &Harness, shared: &Shared, probe: Guid, s1: Guid, s2: Guid, last_is_in: &AtomicBool) {
    let mut current: Option<[FilterId; 3]> = None;
    let mut g = 0u64;
    let mut after_last = 0;
    // Keep going until the registrar's last instance has seen a good number of updates (bounded in
    // case the registrar died).
    while (g < GENERATIONS || after_last < 40) && g < 20 * GENERATIONS {
        if last_is_in.load(Ordering::SeqCst) {
            after_last += 1;
        }
        let commit = g % 4 != 3;
        let mut txn = h.engine().begin();
        if let Some(old) = current {
            for id in old {
                txn.delete_filter(id).expect("delete current filter");
            }
        }
        let c = txn
            .add_filter(
                h.build(LAYER, ActionType::CALLOUT_INSPECTION)
                    .sublayer(s1)
                    .weight(10)
                    .callout(probe)
                    .spec(),
            )
            .expect("add c");
        let a = txn
            .add_filter(
                h.build(LAYER, ActionType::PERMIT)
                    .sublayer(s1)
                    .weight(5)
                    .spec(),
            )
            .expect("add a");
        let b = txn
            .add_filter(
                h.build(LAYER, ActionType::BLOCK)
                    .sublayer(s2)
                    .weight(1)
                    .spec(),
            )
            .expect("add b");
        let ids = [c, a, b];
        {
            let mut owner = lock(&shared.owner);
            for id in ids {
                if owner.insert(id, g).is_some() {
                    shared.violation(format!("filter id {id:?} reused"));
                }
            }
            lock(&shared.states).insert(
                g,
                State {
                    ids,
                    committed: commit,
                },
            );
        }
        if commit {
            txn.commit();
            current = Some(ids);
        } else {
            txn.abort();
        }
        g += 1;
    }
}

/// Registers a fresh probe, associates a context on every flow, then tears down in one of two
/// orders. The last instance stays registered with its contexts in place.
fn registrar(
    h: &Harness,
    shared: &Arc<Shared>,
    handle: CalloutHandle,
    next_ctx: &AtomicU64,
    last_is_in: &AtomicBool,
) -> Arc<Probe> {
    let engine = h.engine();
    let mut i = 0;
    loop {
        let probe = Probe::new(shared.clone());
        let id = engine
            .register_callout(CalloutRegistration::new(
                handle.key,
                CalloutFlags::default(),
                probe.clone(),
            ))
            .expect("register probe");
        assert_eq!(id, handle.id);
        for flow in FLOWS {
            let ctx = next_ctx.fetch_add(1, Ordering::SeqCst);
            lock(&shared.contexts).insert(ctx, Ctx::Associated);
            let st = engine.flow_associate_context(flow, LAYER, id, ctx);
            if st != Status::SUCCESS {
                shared.violation(format!("associate on flow {flow}: {st}"));
                lock(&shared.contexts).remove(&ctx);
            }
        }
        if i + 1 == REGISTRATIONS {
            last_is_in.store(true, Ordering::SeqCst);
            return probe;
        }
        for _ in 0..(i % 5) {
            thread::yield_now();
        }
        if i % 2 == 0 {
            // Unload protocol: remove contexts, then unregister.
            for flow in FLOWS {
                let st = engine.flow_remove_context(flow, LAYER, id);
                if st != Status::SUCCESS && st != Status::PENDING {
                    shared.violation(format!("remove on flow {flow}: {st}"));
                }
            }
        } else {
            // Unregister first: busy while contexts exist; then end the flows.
            let st = engine.unregister_callout(id);
            if st != Status::DEVICE_BUSY {
                shared.violation(format!("unregister with contexts: {st}"));
            }
            for flow in FLOWS {
                engine.flow_abort(flow);
            }
        }
        // Deferred flowDeleteFns run when in-flight classifies return; retry until then.
        let mut tries = 0u64;
        loop {
            match engine.unregister_callout(id) {
                Status::SUCCESS => break,
                Status::DEVICE_BUSY => {
                    tries += 1;
                    assert!(tries < 10_000_000, "contexts never drained");
                    thread::yield_now();
                }
                other => {
                    shared.violation(format!("unregister: {other}"));
                    break;
                }
            }
        }
        probe.dead.store(true, Ordering::SeqCst);
        i += 1;
    }
}

#[test]
fn classify_stays_consistent_under_policy_registration_and_flow_churn() {
    let h = Harness::new();
    let shared = Arc::new(Shared::default());
    let s1 = h.sublayer("s1", 2);
    let s2 = h.sublayer("s2", 1);
    let handle = h.management_callout(LAYER);
    let next_ctx = AtomicU64::new(0x1000);
    let done = AtomicBool::new(false);
    let last_is_in = AtomicBool::new(false);

    let (last, classifies) = thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|k| {
                let (h, shared, done) = (&h, &*shared, &done);
                s.spawn(move || reader(h, shared, done, k as u64))
            })
            .collect();
        let w = s.spawn(|| writer(&h, &shared, handle.key, s1, s2, &last_is_in));
        let r = s.spawn(|| registrar(&h, &shared, handle, &next_ctx, &last_is_in));
        let w = w.join();
        let r = r.join();
        done.store(true, Ordering::SeqCst);
        let classifies: usize = readers
            .into_iter()
            .map(|r| r.join().expect("reader panicked"))
            .sum();
        w.expect("writer panicked");
        (r.expect("registrar panicked"), classifies)
    });
    assert!(classifies > 0);

    // Final cleanup: delete the remaining filters while the last probe is registered, end the flows,
    // then unregister it.
    let remaining = h.engine_filters_snapshot();
    let mut txn = h.engine().begin();
    for f in remaining {
        txn.delete_filter(f).expect("cleanup delete");
    }
    txn.commit();
    for flow in FLOWS {
        h.engine().flow_abort(flow);
    }
    assert_eq!(h.unregister(handle.id), Status::SUCCESS);
    last.dead.store(true, Ordering::SeqCst);

    let violations = lock(&shared.violations).clone();
    assert!(violations.is_empty(), "{violations:#?}");

    let contexts = lock(&shared.contexts);
    let alive: Vec<_> = contexts
        .iter()
        .filter(|(_, s)| **s != Ctx::Deleted)
        .collect();
    assert!(alive.is_empty(), "contexts never deleted: {alive:?}");
    assert_eq!(h.engine().flow_context_count(), 0);

    let adds = lock(&last.adds).clone();
    let deletes = lock(&last.deletes).clone();
    let lost: Vec<_> = adds.difference(&deletes).collect();
    assert!(
        lost.is_empty(),
        "last probe got ADD but no DELETE for {lost:?}"
    );
    // Whether the last probe registered before the writer's final adds depends on scheduling, so
    // `adds` may be empty; the property is that every ADD it saw got its DELETE.
}

trait FilterIds {
    fn engine_filters_snapshot(&self) -> Vec<FilterId>;
}

impl FilterIds for Harness {
    fn engine_filters_snapshot(&self) -> Vec<FilterId> {
        self.engine()
            .filters()
            .iter()
            .map(|f| f.filter_id())
            .collect()
    }
}

/// §5.3 / brief decisions 5 and 6: `flow_associate_context` called from outside any classify,
/// racing `unregister_callout`, must never leave a context behind an unregister that returned
/// SUCCESS (that context's flowDeleteFn can then never run, and a later registration of the same
/// key — same run-time id — would inherit it). Probabilistic: stops at the first orphan, bounded.
#[test]
fn flow_associate_racing_unregister_never_orphans_a_context() {
    let h = Harness::new();
    let handle = h.management_callout(LAYER);
    for round in 0..50_000 {
        let c = ScriptedCallout::passive().build();
        let id = h.register(handle, &c).expect("register");
        let stop = AtomicBool::new(false);
        let next = AtomicU64::new(1);
        thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    for flow in FLOWS {
                        let ctx = next.fetch_add(1, Ordering::Relaxed);
                        h.engine().flow_associate_context(flow, LAYER, id, ctx);
                    }
                }
            });
            loop {
                for flow in FLOWS {
                    h.engine().flow_abort(flow);
                }
                if h.unregister(id) == Status::SUCCESS {
                    break;
                }
                thread::yield_now();
            }
            stop.store(true, Ordering::SeqCst);
        });
        assert_eq!(
            h.engine().flow_context_count(),
            0,
            "round {round}: a context outlived unregister SUCCESS"
        );
    }
}
