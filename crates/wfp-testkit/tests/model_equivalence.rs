//! Model-based test (style habit 13): random policies at INBOUND_TRANSPORT_V4 are built both in a
//! real `Engine` (with the built-in `wfp.test.*` callouts really registered, one management callout
//! never registered, and one callout that panics) and in the naive reference arbiter of
//! `wfp_testkit::model`; for random packets both must give the same final action, hardness, deciding
//! filter, veto flag and the same sequence of filters reached (with the write right before each).
//!
//! Conditions are kept outside both: the test decides for itself whether a filter matches a packet
//! (a few lines below, from the generated condition description) and hands the model a boolean.

use std::collections::HashMap;

use proptest::prelude::*;
use wfp_core::callout::{LayerData, Metadata};
use wfp_testkit::model::{
    arbitrate, strategy, CalloutBehaviour, ModelAction, ModelFilter, ModelOutcome, ModelPolicy,
    ModelSublayer,
};
use wfp_testkit::prelude::*;
use wfp_testkit::{quiet_panics, CalloutImpl};

const LAYER: LayerId = layers::INBOUND_TRANSPORT_V4;

/// A condition on IP_REMOTE_PORT.
#[derive(Clone, Debug)]
enum PortCond {
    Any,
    Equal(u16),
    NotEqual(u16),
    Range(u16, u16),
    /// Two consecutive conditions on the same field: OR (§8.5).
    Either(u16, u16),
}

/// A condition on IP_PROTOCOL.
#[derive(Clone, Debug)]
enum ProtoCond {
    Any,
    Equal(u8),
}

#[derive(Clone, Debug)]
struct GenFilter {
    weight: u64,
    action: ModelAction,
    clear_action_right: bool,
    permit_if_unregistered: bool,
    port: PortCond,
    proto: ProtoCond,
}

#[derive(Clone, Debug)]
struct GenSublayer {
    weight: u16,
    filters: Vec<GenFilter>,
}

#[derive(Clone, Copy, Debug)]
struct Packet {
    port: u16,
    proto: u8,
}

impl GenFilter {
    /// The test's own reading of the conditions (independent of wfp-core's matcher).
    fn matches(&self, p: Packet) -> bool {
        let port = match self.port {
            PortCond::Any => true,
            PortCond::Equal(x) => p.port == x,
            PortCond::NotEqual(x) => p.port != x,
            PortCond::Range(lo, hi) => lo <= p.port && p.port <= hi,
            PortCond::Either(a, b) => p.port == a || p.port == b,
        };
        let proto = match self.proto {
            ProtoCond::Any => true,
            ProtoCond::Equal(x) => p.proto == x,
        };
        port && proto
    }

    fn builder(&self, h: &Harness, sublayer: Guid, callouts: &Callouts) -> FilterBuilder {
        let action = match self.action {
            ModelAction::Permit => ActionType::PERMIT,
            ModelAction::Block => ActionType::BLOCK,
            ModelAction::Callout { kind, .. } => kind.action_type(),
        };
        let mut b = h
            .build(LAYER, action)
            .sublayer(sublayer)
            .weight(self.weight);
        if let ModelAction::Callout { behaviour, .. } = self.action {
            b = b.callout(callouts.key(behaviour));
        }
        if self.clear_action_right {
            b = b.flags(FilterFlags::CLEAR_ACTION_RIGHT);
        }
        if self.permit_if_unregistered {
            b = b.flags(FilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED);
        }
        b = match self.port {
            PortCond::Any => b,
            PortCond::Equal(x) => b.when("IP_REMOTE_PORT", Value::Uint16(x)),
            PortCond::NotEqual(x) => {
                b.condition("IP_REMOTE_PORT", MatchType::NotEqual, Value::Uint16(x))
            }
            PortCond::Range(lo, hi) => b.condition(
                "IP_REMOTE_PORT",
                MatchType::Range,
                ConditionValue::Range(Value::Uint16(lo), Value::Uint16(hi)),
            ),
            PortCond::Either(x, y) => b
                .when("IP_REMOTE_PORT", Value::Uint16(x))
                .when("IP_REMOTE_PORT", Value::Uint16(y)),
        };
        match self.proto {
            ProtoCond::Any => b,
            ProtoCond::Equal(x) => b.when("IP_PROTOCOL", Value::Uint8(x)),
        }
    }
}

/// One management callout per behaviour; all but `Unregistered` are registered.
struct Callouts {
    keys: HashMap<CalloutBehaviour, Guid>,
}

impl Callouts {
    fn install(h: &Harness) -> Self {
        let mut keys = HashMap::new();
        let builtin = |name: &str| {
            wfp_callouts::builtin(name)
                .unwrap_or_else(|| panic!("built-in {name}"))
                .key
        };
        let table = [
            (CalloutBehaviour::Permit, Some("wfp.test.permit")),
            (CalloutBehaviour::Block, Some("wfp.test.block")),
            (CalloutBehaviour::BlockSoft, Some("wfp.test.block-soft")),
            (CalloutBehaviour::Continue, Some("wfp.test.continue")),
            (CalloutBehaviour::Panics, None),
            (CalloutBehaviour::Unregistered, None),
        ];
        for (behaviour, name) in table {
            let key = name.map_or(Guid::NULL, builtin);
            let handle = h.management_callout_with_key(LAYER, key);
            let imp = match (behaviour, name) {
                // The real built-in, registered the way the daemon does it.
                (_, Some(n)) => {
                    let b = wfp_callouts::builtin(n).unwrap_or_else(|| panic!("built-in {n}"));
                    CalloutImpl::Custom {
                        callout: (b.make)(&wfp_callouts::Host::new()),
                        flags: b.flags,
                        flow_delete: b.flow_delete,
                    }
                }
                (CalloutBehaviour::Panics, None) => CalloutImpl::Panicking,
                _ => CalloutImpl::Unregistered,
            };
            h.register(handle, imp)
                .unwrap_or_else(|s| panic!("register {behaviour:?}: {s}"));
            keys.insert(behaviour, handle.key);
        }
        Self { keys }
    }

    fn key(&self, b: CalloutBehaviour) -> Guid {
        self.keys[&b]
    }
}

fn port() -> impl Strategy<Value = u16> {
    prop::sample::select(vec![22u16, 80, 443])
}

fn port_cond() -> impl Strategy<Value = PortCond> {
    prop_oneof![
        3 => Just(PortCond::Any),
        3 => port().prop_map(PortCond::Equal),
        1 => port().prop_map(PortCond::NotEqual),
        1 => (port(), port()).prop_map(|(a, b)| PortCond::Range(a.min(b), a.max(b))),
        1 => (port(), port()).prop_map(|(a, b)| PortCond::Either(a, b)),
    ]
}

fn proto_cond() -> impl Strategy<Value = ProtoCond> {
    prop_oneof![
        3 => Just(ProtoCond::Any),
        1 => prop::sample::select(vec![6u8, 17]).prop_map(ProtoCond::Equal),
    ]
}

fn gen_filter() -> impl Strategy<Value = GenFilter> {
    (
        prop::sample::select(vec![0u64, 10, 20, u64::MAX]),
        strategy::model_action(),
        any::<bool>(),
        any::<bool>(),
        port_cond(),
        proto_cond(),
    )
        .prop_map(|(weight, action, clear, piu, port, proto)| {
            // PERMIT_IF_CALLOUT_UNREGISTERED is only valid on TERMINATING/UNKNOWN (T-REG-6).
            let piu_allowed = matches!(
                action,
                ModelAction::Callout { kind, .. }
                    if kind != wfp_testkit::model::CalloutType::Inspection
            );
            GenFilter {
                weight,
                action,
                clear_action_right: clear,
                permit_if_unregistered: piu && piu_allowed,
                port,
                proto,
            }
        })
}

fn gen_policy() -> impl Strategy<Value = Vec<GenSublayer>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![1u16, 2, 3]),
            prop::collection::vec(gen_filter(), 0..=8),
        )
            .prop_map(|(weight, filters)| GenSublayer { weight, filters }),
        1..=4,
    )
}

fn gen_packets() -> impl Strategy<Value = Vec<Packet>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![22u16, 80, 443, 8080]),
            prop::sample::select(vec![6u8, 17]),
        )
            .prop_map(|(port, proto)| Packet { port, proto }),
        1..=4,
    )
}

/// A filter that exists in the engine, with its engine-assigned id.
struct Placed<'a> {
    sublayer: usize,
    id: FilterId,
    filter: &'a GenFilter,
}

fn model_for(policy: &[GenSublayer], placed: &[Placed<'_>], p: Packet) -> ModelPolicy {
    let mut sublayers: Vec<ModelSublayer> = policy
        .iter()
        .enumerate()
        .map(|(i, s)| ModelSublayer {
            weight: s.weight,
            order: i as u64,
            filters: Vec::new(),
        })
        .collect();
    for pl in placed {
        let f = pl.filter;
        sublayers[pl.sublayer].filters.push(ModelFilter {
            id: pl.id.0,
            weight: f.weight,
            matches: f.matches(p),
            action: f.action,
            clear_action_right: f.clear_action_right,
            permit_if_unregistered: f.permit_if_unregistered,
        });
    }
    ModelPolicy { sublayers }
}

fn check_packets(
    h: &Harness,
    policy: &[GenSublayer],
    placed: &[Placed<'_>],
    packets: &[Packet],
) -> Result<(), TestCaseError> {
    for &p in packets {
        let values = h.values(
            LAYER,
            &[
                ("IP_REMOTE_PORT", Value::Uint16(p.port)),
                ("IP_PROTOCOL", Value::Uint8(p.proto)),
            ],
        );
        let (r, trace) = h.classify(LAYER, &values);
        let got = ModelOutcome::observe(&r, &trace);
        let want = arbitrate(&model_for(policy, placed, p));
        prop_assert_eq!(got, want, "packet {:?}; engine trace {:#?}", p, trace.steps);
        // The same answer without a trace, reusable exactly when no callout filter was reached,
        // nothing was vetoed and no CLASSIFY_DROP was recorded (§11.5: each drop records its
        // event), under the current epoch.
        let (again, reusable) = h.engine().classify_cacheable(
            LAYER,
            &values,
            &Metadata::default(),
            &mut LayerData::None,
        );
        prop_assert_eq!(&again, &r);
        let callout_reached = trace.steps.iter().any(|s| s.action_type.is_callout());
        let drop_recorded = r.action == ActionType::BLOCK && !r.absorbed();
        prop_assert_eq!(
            reusable.is_some(),
            !callout_reached && !r.vetoed && !drop_recorded
        );
        if let Some(epoch) = reusable {
            prop_assert_eq!(epoch, h.engine().policy_summary().epoch);
        }
    }
    Ok(())
}

fn sublayers(h: &Harness, policy: &[GenSublayer]) -> Vec<Guid> {
    policy
        .iter()
        .map(|s| h.sublayer("model", s.weight))
        .collect()
}

/// 256 cases unless `PROPTEST_CASES` says otherwise (an explicit `cases` would shadow the variable).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    /// Filters added in generation order, each in its own implicit transaction.
    #[test]
    fn engine_matches_reference_arbiter(policy in gen_policy(), packets in gen_packets()) {
        quiet_panics();
        let h = Harness::new();
        let callouts = Callouts::install(&h);
        let keys = sublayers(&h, &policy);
        let mut placed = Vec::new();
        for (si, s) in policy.iter().enumerate() {
            for f in &s.filters {
                let id = h.add_ok(f.builder(&h, keys[si], &callouts));
                placed.push(Placed { sublayer: si, id, filter: f });
            }
        }
        check_packets(&h, &policy, &placed, &packets)?;
    }

    /// Filters added in a random order (so ids, the tie-breaker, are permuted), some inside one
    /// committed transaction, then random deletes; an aborted transaction adds copies that must
    /// never be seen. The model is built from the final set.
    #[test]
    fn engine_matches_reference_arbiter_after_random_adds_and_deletes(
        (policy, order, batched, deleted) in gen_policy().prop_flat_map(|p| {
            let n: usize = p.iter().map(|s| s.filters.len()).sum();
            (
                Just(p),
                Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                prop::collection::vec(any::<bool>(), n),
                prop::collection::vec(prop::bool::weighted(0.3), n),
            )
        }),
        packets in gen_packets(),
    ) {
        quiet_panics();
        let h = Harness::new();
        let callouts = Callouts::install(&h);
        let keys = sublayers(&h, &policy);
        let flat: Vec<(usize, &GenFilter)> = policy
            .iter()
            .enumerate()
            .flat_map(|(si, s)| s.filters.iter().map(move |f| (si, f)))
            .collect();

        // Filters whose `batched` bit is set go into one explicit transaction, the rest are added
        // one by one, all in the shuffled order.
        let mut ids: Vec<Option<FilterId>> = vec![None; flat.len()];
        {
            let mut txn = h.engine().begin();
            for &i in order.iter().filter(|&&i| batched[i]) {
                let (si, f) = flat[i];
                let spec = f.builder(&h, keys[si], &callouts).spec();
                ids[i] = Some(txn.add_filter(spec).map_err(|e| TestCaseError::fail(e.to_string()))?);
            }
            txn.commit();
        }
        for &i in order.iter().filter(|&&i| !batched[i]) {
            let (si, f) = flat[i];
            ids[i] = Some(h.add_ok(f.builder(&h, keys[si], &callouts)));
        }

        // An aborted transaction: copies of every filter, plus deletes of the real ones.
        {
            let mut txn = h.engine().begin();
            for (si, f) in &flat {
                let spec = f.builder(&h, keys[*si], &callouts).spec();
                txn.add_filter(spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            for id in ids.iter().flatten() {
                txn.delete_filter(*id).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            txn.abort();
        }

        for (i, gone) in deleted.iter().enumerate() {
            if *gone {
                if let Some(id) = ids[i].take() {
                    h.delete(id);
                }
            }
        }

        let placed: Vec<Placed<'_>> = flat
            .iter()
            .zip(&ids)
            .filter_map(|((si, f), id)| id.map(|id| Placed { sublayer: *si, id, filter: f }))
            .collect();
        prop_assert_eq!(h.engine().filters().len(), placed.len());
        check_packets(&h, &policy, &placed, &packets)?;
    }
}
