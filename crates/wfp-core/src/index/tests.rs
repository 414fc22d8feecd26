//! Equivalence of the index with the linear scan.

use std::net::Ipv6Addr;
use std::sync::Arc;

use proptest::prelude::*;

use super::compile::{self, FieldKind};
use super::tuple::Params;
use super::{scan, SublayerIndex};
use crate::catalogue::{self, layer_by_name, ConditionId, LayerDef};
use crate::condition::{Condition, ConditionSet, MatchType};
use crate::constants::ActionType;
use crate::engine::Engine;
use crate::filter::{FilterSpec, RtFilter};
use crate::value::{ConditionValue, Value};

// ----- helpers ------------------------------------------------------------------------------

fn layer(name: &str) -> &'static LayerDef {
    layer_by_name(name).expect("layer exists")
}

/// A run-time filter made by the engine, to clone with other conditions.
fn template() -> RtFilter {
    let engine = Engine::default();
    engine
        .add_filter(FilterSpec::new(
            "template",
            catalogue::layers::INBOUND_TRANSPORT_V4,
            ActionType::PERMIT,
        ))
        .expect("add template filter");
    let f = engine.filters().into_iter().next().expect("one filter");
    (*f).clone()
}

fn filters_from(template: &RtFilter, policy: Vec<Vec<Condition>>) -> Vec<Arc<RtFilter>> {
    policy
        .into_iter()
        .map(|conds| {
            let mut f = template.clone();
            f.conditions = ConditionSet::new(conds);
            Arc::new(f)
        })
        .collect()
}

fn all_matches(index: &SublayerIndex, filters: &[Arc<RtFilter>], values: &[Value]) -> Vec<usize> {
    index.matches(filters, values).collect()
}

fn scan_all(filters: &[Arc<RtFilter>], values: &[Value]) -> Vec<usize> {
    (0..filters.len())
        .filter(|&i| filters[i].conditions().matches(values))
        .collect()
}

const PARAMS: [Params; 4] = [
    Params {
        tuple_step: 1,
        max_tables: 256,
    },
    Params {
        tuple_step: 4,
        max_tables: 1024,
    },
    Params {
        tuple_step: 1,
        max_tables: 3,
    },
    Params {
        tuple_step: 1,
        max_tables: 1,
    },
];

/// Checks every parameter set, lazily and from arbitrary start positions, against the scan.
fn check_equivalent(
    layer: &LayerDef,
    filters: &[Arc<RtFilter>],
    inputs: &[Vec<Value>],
) -> Result<(), TestCaseError> {
    for params in PARAMS {
        let index = SublayerIndex::build_with(layer, filters, params, 0);
        for values in inputs {
            let expected = scan_all(filters, values);
            prop_assert_eq!(
                all_matches(&index, filters, values),
                expected.clone(),
                "params {:?}, values {:?}",
                params,
                values
            );
            for from in [1, filters.len() / 2, filters.len(), filters.len() + 3] {
                prop_assert_eq!(
                    index.next_match(filters, values, from),
                    scan(filters, values, from),
                    "from {}",
                    from
                );
            }
        }
    }
    Ok(())
}

// ----- random policies ----------------------------------------------------------------------

/// The fields the generator uses, by layer field name.
const FIELDS: [&str; 8] = [
    "IP_PROTOCOL",
    "IP_LOCAL_ADDRESS",
    "IP_REMOTE_ADDRESS",
    "IP_LOCAL_PORT",
    "IP_REMOTE_PORT",
    "IP_LOCAL_INTERFACE",
    "FLAGS",
    "INTERFACE_TYPE",
];

const U8S: [u8; 6] = [0, 1, 6, 17, 254, 255];
const U16S: [u16; 10] = [0, 1, 22, 80, 443, 1023, 1024, 8080, 65534, 65535];
const U32S: [u32; 8] = [
    0,
    1,
    0x0A00_0000,
    0x0A00_0001,
    0x0A00_00FF,
    0x0A01_0000,
    0xC0A8_0101,
    u32::MAX,
];
const U64S: [u64; 5] = [0, 1, 2, 1 << 63, u64::MAX];
const V4_LENS: [u8; 8] = [0, 1, 8, 16, 24, 30, 31, 32];
const V6_LENS: [u8; 12] = [0, 1, 32, 63, 64, 65, 96, 120, 127, 128, 129, 200];

fn v6_pool() -> [[u8; 16]; 8] {
    [
        Ipv6Addr::UNSPECIFIED.octets(),
        Ipv6Addr::LOCALHOST.octets(),
        "2001:db8::".parse::<Ipv6Addr>().unwrap().octets(),
        "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
        "2001:db8:0:0:8000::".parse::<Ipv6Addr>().unwrap().octets(),
        "2001:db8:0:1::".parse::<Ipv6Addr>().unwrap().octets(),
        "fe80::1".parse::<Ipv6Addr>().unwrap().octets(),
        [0xFF; 16],
    ]
}

fn nudge(v: u128, delta: u8, max: u128) -> u128 {
    match delta {
        0 => v,
        1 => {
            if v == max {
                0
            } else {
                v + 1
            }
        }
        _ => {
            if v == 0 {
                max
            } else {
                v - 1
            }
        }
    }
}

/// A typed value of `kind` from the pools (index `i`, nudged by `delta` to hit boundaries).
fn pool_value(kind: FieldKind, i: usize, delta: u8) -> Value {
    match kind {
        FieldKind::U8 => {
            let v = U8S[i % U8S.len()];
            Value::Uint8(nudge(u128::from(v), delta, 0xFF) as u8)
        }
        FieldKind::U16 => {
            let v = U16S[i % U16S.len()];
            Value::Uint16(nudge(u128::from(v), delta, 0xFFFF) as u16)
        }
        FieldKind::U64 => {
            let v = U64S[i % U64S.len()];
            Value::Uint64(nudge(u128::from(v), delta, u128::from(u64::MAX)) as u64)
        }
        FieldKind::V6 => {
            let p = v6_pool();
            let v = u128::from_be_bytes(p[i % p.len()]);
            Value::ByteArray16(nudge(v, delta, u128::MAX).to_be_bytes())
        }
        _ => {
            let v = U32S[i % U32S.len()];
            Value::Uint32(nudge(u128::from(v), delta, u128::from(u32::MAX)) as u32)
        }
    }
}

/// The typed value of `kind` with key `k` (wrapping into the domain).
fn from_key(kind: FieldKind, k: u128) -> Value {
    match kind {
        FieldKind::U8 => Value::Uint8(k as u8),
        FieldKind::U16 => Value::Uint16(k as u16),
        FieldKind::U64 => Value::Uint64(k as u64),
        FieldKind::V6 => Value::ByteArray16(k.to_be_bytes()),
        _ => Value::Uint32(k as u32),
    }
}

/// Low end, high end, one below, one above what a condition accepts (when it has an interval).
fn boundaries(c: &Condition, kind: FieldKind) -> Vec<Value> {
    let (lo, hi) = match &c.value {
        ConditionValue::Value(v) => match kind.key(v) {
            Some(k) => (k, k),
            None => return Vec::new(),
        },
        ConditionValue::Range(a, b) => match (kind.key(a), kind.key(b)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Vec::new(),
        },
        ConditionValue::V4AddrMask { addr, mask } => {
            (u128::from(addr & mask), u128::from(addr | !mask))
        }
        ConditionValue::V6AddrMask { addr, prefix_len } => {
            let host = u128::MAX.checked_shr(u32::from(*prefix_len)).unwrap_or(0);
            let a = u128::from_be_bytes(*addr);
            (a & !host, a | host)
        }
    };
    [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]
        .into_iter()
        .map(|k| from_key(kind, k))
        .collect()
}

/// A value of another type than the field's (matches nothing typed).
fn foreign_value(kind: FieldKind) -> Value {
    match kind {
        FieldKind::U16 => Value::Uint32(80),
        _ => Value::Uint16(80),
    }
}

/// Raw choice of one condition (integers, so that proptest can shrink it).
#[derive(Clone, Debug)]
struct RawCond {
    field: usize,
    match_type: usize,
    form: u8,
    a: usize,
    b: usize,
    len: usize,
    delta: u8,
}

fn raw_cond() -> impl Strategy<Value = RawCond> {
    (
        0..FIELDS.len(),
        0..13usize,
        0..20u8,
        0..16usize,
        0..16usize,
        0..12usize,
        0..3u8,
    )
        .prop_map(|(field, match_type, form, a, b, len, delta)| RawCond {
            field,
            match_type,
            form,
            a,
            b,
            len,
            delta,
        })
}

/// Builds a condition, including ones the management API would reject (the index must stay exact
/// for any `ConditionSet`).
fn make_cond(layer: &LayerDef, fields: &[&str], r: &RawCond) -> Condition {
    let name = fields[r.field % fields.len()];
    let index = layer.field_index_by_name(name).expect("field at layer");
    let fd = &layer.fields[index];
    let kind = FieldKind::of(fd.data_type).expect("integer or address field");
    let mut match_type = MatchType::ALL[r.match_type % 13];
    let value = match r.form {
        // Address masks and prefixes (the common case for addresses).
        0..=4 if name.contains("ADDRESS") => {
            if kind == FieldKind::V6 {
                let p = v6_pool();
                ConditionValue::V6AddrMask {
                    addr: p[r.a % p.len()],
                    prefix_len: V6_LENS[r.len % V6_LENS.len()],
                }
            } else if r.form == 4 {
                // A non-contiguous mask.
                ConditionValue::V4AddrMask {
                    addr: U32S[r.a % U32S.len()],
                    mask: 0xFF00_FF00,
                }
            } else {
                let len = V4_LENS[r.len % V4_LENS.len()];
                ConditionValue::v4_prefix(U32S[r.a % U32S.len()].into(), len)
            }
        }
        // Ranges (sometimes empty: lo > hi).
        5..=8 => {
            if r.form != 8 {
                match_type = MatchType::Range;
            }
            let lo = pool_value(kind, r.a, r.delta);
            let hi = pool_value(kind, r.b, 0);
            ConditionValue::Range(lo, hi)
        }
        9 => ConditionValue::Value(Value::Empty),
        10 => ConditionValue::Value(foreign_value(kind)),
        11 if name == "FLAGS" || name == "INTERFACE_TYPE" => {
            match_type = [
                MatchType::FlagsAllSet,
                MatchType::FlagsAnySet,
                MatchType::FlagsNoneSet,
            ][r.a % 3];
            ConditionValue::Value(Value::Uint32([0, 1, 2, 3, 0x80][r.b % 5]))
        }
        12 => ConditionValue::Range(Value::Uint8(1), Value::Uint16(2)),
        // Plain values with the ordering match types, mostly.
        _ => {
            if matches!(
                match_type,
                MatchType::FlagsAllSet
                    | MatchType::FlagsAnySet
                    | MatchType::FlagsNoneSet
                    | MatchType::Range
                    | MatchType::Prefix
            ) && r.form & 1 == 0
            {
                match_type = MatchType::Equal;
            }
            ConditionValue::Value(pool_value(kind, r.a, r.delta))
        }
    };
    Condition {
        field_index: u16::try_from(index).expect("small index"),
        field: ConditionId(fd.condition),
        match_type,
        value,
    }
}

#[derive(Clone, Debug)]
struct RawFilter {
    conds: Vec<RawCond>,
    /// Sort conditions by field: consecutive same-field conditions form OR groups.
    grouped: bool,
}

fn raw_filter() -> impl Strategy<Value = RawFilter> {
    (prop::collection::vec(raw_cond(), 0..6), any::<bool>())
        .prop_map(|(conds, grouped)| RawFilter { conds, grouped })
}

fn make_filter(layer: &LayerDef, fields: &[&str], r: &RawFilter) -> Vec<Condition> {
    let mut conds: Vec<Condition> = r
        .conds
        .iter()
        .map(|c| make_cond(layer, fields, c))
        .collect();
    if r.grouped {
        conds.sort_by_key(|c| c.field_index);
    }
    conds
}

/// Raw incoming value of one field: 0 = FWP_EMPTY, 1 = foreign type, else a pool value.
type RawValue = (u8, usize, u8);

fn make_values(layer: &LayerDef, raw: &[RawValue]) -> Vec<Value> {
    let mut v = vec![Value::Empty; layer.fields.len()];
    for (name, &(form, i, delta)) in FIELDS.iter().zip(raw) {
        let index = layer.field_index_by_name(name).expect("field at layer");
        let kind = FieldKind::of(layer.fields[index].data_type).expect("indexable field");
        v[index] = match form {
            0 => Value::Empty,
            1 => foreign_value(kind),
            _ => pool_value(kind, i, delta),
        };
    }
    v
}

fn raw_values() -> impl Strategy<Value = Vec<RawValue>> {
    prop::collection::vec((0..12u8, 0..16usize, 0..3u8), FIELDS.len())
}

fn equivalence(
    layer_name: &str,
    fields: &[&str],
    policy: &[RawFilter],
    inputs: &[Vec<RawValue>],
) -> Result<(), TestCaseError> {
    let l = layer(layer_name);
    let t = template();
    let filters = filters_from(
        &t,
        policy.iter().map(|f| make_filter(l, fields, f)).collect(),
    );
    let mut inputs: Vec<Vec<Value>> = inputs.iter().map(|r| make_values(l, r)).collect();
    // Also probe every filter's own boundaries: each condition's field set to the low or high end
    // of what it accepts, or one step outside.
    if let Some(base) = inputs.first().cloned() {
        for f in filters.iter().take(12) {
            for variant in 0..4 {
                let mut v = base.clone();
                for c in f.conditions().conditions() {
                    let kind = FieldKind::of(l.fields[usize::from(c.field_index)].data_type)
                        .expect("indexable field");
                    if let Some(b) = boundaries(c, kind).get(variant) {
                        v[usize::from(c.field_index)] = b.clone();
                    }
                }
                inputs.push(v);
            }
        }
    }
    check_equivalent(l, &filters, &inputs)
}

proptest! {
    // Failures print their minimal case; nothing is written next to the sources.
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn index_equals_scan_v4(
        policy in prop::collection::vec(raw_filter(), 0..90),
        inputs in prop::collection::vec(raw_values(), 1..24),
    ) {
        equivalence("INBOUND_TRANSPORT_V4", &FIELDS, &policy, &inputs)?;
    }

    /// Only fields of at most 32 bits: the packed bounds layout.
    #[test]
    fn index_equals_scan_v4_narrow(
        policy in prop::collection::vec(raw_filter(), 0..90),
        inputs in prop::collection::vec(raw_values(), 1..24),
    ) {
        let narrow: Vec<&str> = FIELDS.iter().copied().filter(|f| *f != "IP_LOCAL_INTERFACE").collect();
        equivalence("INBOUND_TRANSPORT_V4", &narrow, &policy, &inputs)?;
    }

    #[test]
    fn index_equals_scan_v6(
        policy in prop::collection::vec(raw_filter(), 0..90),
        inputs in prop::collection::vec(raw_values(), 1..24),
    ) {
        equivalence("INBOUND_TRANSPORT_V6", &FIELDS, &policy, &inputs)?;
    }
}

// ----- targeted cases -------------------------------------------------------------------------

fn cond(l: &LayerDef, field: &str, match_type: MatchType, value: ConditionValue) -> Condition {
    let index = l.field_index_by_name(field).expect("field");
    Condition {
        field_index: u16::try_from(index).expect("small"),
        field: ConditionId(l.fields[index].condition),
        match_type,
        value,
    }
}

fn values(l: &LayerDef, pairs: &[(&str, Value)]) -> Vec<Value> {
    let mut v = vec![Value::Empty; l.fields.len()];
    for (f, val) in pairs {
        v[l.field_index_by_name(f).expect("field")] = val.clone();
    }
    v
}

#[test]
fn small_sublayers_scan_and_large_ones_index() {
    let l = layer("INBOUND_TRANSPORT_V4");
    let t = template();
    let port = |p: u16| {
        vec![cond(
            l,
            "IP_REMOTE_PORT",
            MatchType::Equal,
            Value::Uint16(p).into(),
        )]
    };
    let small = filters_from(&t, (0..10).map(port).collect());
    assert_eq!(SublayerIndex::build(l, &small).stats().tables, 0);
    let large = filters_from(&t, (0..100).map(port).collect());
    let index = SublayerIndex::build(l, &large);
    assert!(index.stats().tables > 0);
    let v = values(l, &[("IP_REMOTE_PORT", Value::Uint16(42))]);
    assert_eq!(index.next_match(&large, &v, 0), Some(42));
    assert_eq!(index.next_match(&large, &v, 43), None);
}

#[test]
fn absent_keys_end_their_probe_in_every_table_size() {
    // Regression: a table whose slots were all taken made a probe for an absent key loop forever.
    let l = layer("INBOUND_TRANSPORT_V4");
    let t = template();
    for n in 1..=20u16 {
        let policy = (0..n)
            .map(|p| {
                vec![cond(
                    l,
                    "IP_REMOTE_PORT",
                    MatchType::Equal,
                    Value::Uint16(1000 + p).into(),
                )]
            })
            .collect();
        let filters = filters_from(&t, policy);
        let index = SublayerIndex::build_with(l, &filters, Params::default(), 0);
        for port in [0, 999, 1000 + n, u16::MAX] {
            let v = values(l, &[("IP_REMOTE_PORT", Value::Uint16(port))]);
            assert_eq!(
                index.next_match(&filters, &v, 0),
                None,
                "{n} filters, port {port}"
            );
        }
    }
}

#[test]
fn another_filter_slice_gives_answers_but_never_panics() {
    let l = layer("INBOUND_TRANSPORT_V4");
    let t = template();
    let policy: Vec<Vec<Condition>> = (0..64u16)
        .map(|p| {
            vec![
                cond(
                    l,
                    "IP_REMOTE_PORT",
                    MatchType::Equal,
                    Value::Uint16(p).into(),
                ),
                cond(l, "FLAGS", MatchType::FlagsNoneSet, Value::Uint32(1).into()),
            ]
        })
        .collect();
    let filters = filters_from(&t, policy);
    let index = SublayerIndex::build(l, &filters);
    let v = values(
        l,
        &[
            ("IP_REMOTE_PORT", Value::Uint16(50)),
            ("FLAGS", Value::Uint32(0)),
        ],
    );
    assert_eq!(index.next_match(&filters, &v, 0), Some(50));
    // Residual checks reach past the end of a shorter slice: no match, no panic.
    assert_eq!(index.next_match(&filters[..10], &v, 0), None);
    assert_eq!(index.next_match(&[], &v, 0), None);
    assert_eq!(index.next_match(&filters, &v, usize::MAX), None);
}

#[test]
fn empty_and_foreign_incoming_values_only_reach_wildcards() {
    let l = layer("INBOUND_TRANSPORT_V4");
    let t = template();
    let mut policy: Vec<Vec<Condition>> = (0..40)
        .map(|p| {
            vec![cond(
                l,
                "IP_REMOTE_PORT",
                MatchType::Range,
                ConditionValue::Range(Value::Uint16(0), Value::Uint16(p)),
            )]
        })
        .collect();
    // Catches FWP_EMPTY (reauthorization-style condition).
    policy.push(vec![cond(
        l,
        "IP_REMOTE_PORT",
        MatchType::Equal,
        Value::Empty.into(),
    )]);
    policy.push(vec![]);
    let filters = filters_from(&t, policy);
    let index = SublayerIndex::build_with(l, &filters, Params::default(), 0);
    let empty = values(l, &[]);
    assert_eq!(all_matches(&index, &filters, &empty), vec![40, 41]);
    let foreign = values(l, &[("IP_REMOTE_PORT", Value::Uint32(0))]);
    assert_eq!(all_matches(&index, &filters, &foreign), vec![41]);
    let zero = values(l, &[("IP_REMOTE_PORT", Value::Uint16(0))]);
    assert_eq!(
        all_matches(&index, &filters, &zero),
        scan_all(&filters, &zero)
    );
    // A shorter values slice than the layer has fields: missing values are FWP_EMPTY.
    assert_eq!(all_matches(&index, &filters, &[]), vec![40, 41]);
}

#[test]
fn or_groups_not_equal_and_repeated_fields_are_exact() {
    let l = layer("INBOUND_TRANSPORT_V6");
    let t = template();
    let addr = |s: &str| s.parse::<Ipv6Addr>().expect("v6").octets();
    let mut policy = Vec::new();
    for i in 0..50u16 {
        policy.push(vec![
            cond(
                l,
                "IP_REMOTE_ADDRESS",
                MatchType::NotEqual,
                ConditionValue::V6AddrMask {
                    addr: addr("2001:db8::"),
                    prefix_len: 96,
                },
            ),
            cond(
                l,
                "IP_REMOTE_PORT",
                MatchType::Equal,
                Value::Uint16(i).into(),
            ),
            cond(
                l,
                "IP_REMOTE_PORT",
                MatchType::Equal,
                Value::Uint16(1000 + i).into(),
            ),
            cond(l, "IP_PROTOCOL", MatchType::Equal, Value::Uint8(6).into()),
            // A second, non-consecutive group on the same field: AND-ed.
            cond(
                l,
                "IP_REMOTE_PORT",
                MatchType::GreaterOrEqual,
                Value::Uint16(20).into(),
            ),
        ]);
    }
    let filters = filters_from(&t, policy);
    let index = SublayerIndex::build(l, &filters);
    for (a, port) in [
        ("2001:db8::5", 25),
        ("2001:db9::5", 25),
        ("2001:db9::5", 1025),
        ("2001:db9::5", 5),
        ("::", 1049),
    ] {
        let v = values(
            l,
            &[
                ("IP_REMOTE_ADDRESS", Value::ByteArray16(addr(a))),
                ("IP_REMOTE_PORT", Value::Uint16(port)),
                ("IP_PROTOCOL", Value::Uint8(6)),
            ],
        );
        assert_eq!(
            all_matches(&index, &filters, &v),
            scan_all(&filters, &v),
            "{a} {port}"
        );
    }
}

#[test]
fn intervals_cover_the_value_domains() {
    let l = layer("INBOUND_TRANSPORT_V6");
    let dims = compile::choose_dims(
        l,
        &filters_from(
            &template(),
            vec![vec![cond(
                l,
                "IP_LOCAL_ADDRESS",
                MatchType::Equal,
                ConditionValue::V6AddrMask {
                    addr: [0xAB; 16],
                    prefix_len: 70,
                },
            )]],
        ),
    );
    assert_eq!(dims.len(), 2, "an IPv6 address is two dimensions");
    let nd = dims.len();
    let space = compile::Space {
        dims,
        blobs: Box::default(),
    };
    let c = compile::compile(
        &space,
        &[cond(
            l,
            "IP_LOCAL_ADDRESS",
            MatchType::Greater,
            Value::ByteArray16([0xAB; 16]).into(),
        )],
    );
    assert_eq!(c.boxes.len(), 2 * nd, "two boxes");
    assert!(!c.verify);
    assert_eq!(c.required, 0b11);
    let never = compile::compile(
        &space,
        &[cond(
            l,
            "IP_LOCAL_ADDRESS",
            MatchType::Greater,
            Value::ByteArray16([0xFF; 16]).into(),
        )],
    );
    assert!(never.boxes.is_empty());
}

// ----- the engine: random add/delete sequences against the reference scan ---------------------

/// One step of a random engine history.
#[derive(Clone, Debug)]
enum EngineOp {
    /// Add a filter: (sublayer 0/1, weight choice, conditions as (field, kind, a, b)).
    Add(u8, u8, Vec<(u8, u8, u16, u16)>),
    /// Delete the n-th live filter (modulo the count).
    Delete(usize),
    /// Check every answer for these values (port, proto, address low bits, flags).
    Classify(u16, u8, u8, u32),
}

fn engine_op() -> impl Strategy<Value = EngineOp> {
    let cond = (0u8..4, 0u8..4, 0u16..40, 0u16..40);
    prop_oneof![
        4 => (0u8..2, 0u8..4, prop::collection::vec(cond, 0..4))
            .prop_map(|(s, w, c)| EngineOp::Add(s, w, c)),
        2 => any::<usize>().prop_map(EngineOp::Delete),
        3 => (0u16..40, 0u8..3, 0u8..8, 0u32..4)
            .prop_map(|(p, pr, a, f)| EngineOp::Classify(p, pr, a, f)),
    ]
}

/// The condition spec of a raw (field, kind, a, b): ports (EQUAL / RANGE / NOT_EQUAL), protocol,
/// a local-address prefix, or FLAGS (not indexable: the residual path).
fn engine_cond(field: u8, kind: u8, a: u16, b: u16) -> crate::condition::ConditionSpec {
    use crate::catalogue::condition_by_name;
    let (name, match_type, value): (&str, MatchType, ConditionValue) = match field {
        0 => match kind {
            0 => ("IP_REMOTE_PORT", MatchType::Equal, Value::Uint16(a).into()),
            1 => (
                "IP_REMOTE_PORT",
                MatchType::Range,
                ConditionValue::Range(Value::Uint16(a.min(b)), Value::Uint16(a.max(b))),
            ),
            _ => (
                "IP_REMOTE_PORT",
                MatchType::NotEqual,
                Value::Uint16(a).into(),
            ),
        },
        1 => (
            "IP_PROTOCOL",
            MatchType::Equal,
            Value::Uint8([6, 17, 1][usize::from(a % 3)]).into(),
        ),
        2 => (
            "IP_LOCAL_ADDRESS",
            MatchType::Equal,
            ConditionValue::v4_prefix(
                std::net::Ipv4Addr::from(0x0A00_0000 | u32::from(a % 8)),
                [32, 31, 30, 29][usize::from(kind)],
            ),
        ),
        _ => (
            "FLAGS",
            MatchType::FlagsAnySet,
            Value::Uint32(u32::from(a % 3) + 1).into(),
        ),
    };
    crate::condition::ConditionSpec {
        field: condition_by_name(name).expect("condition"),
        match_type,
        value,
    }
}

/// What classify may consider: every filter of the layer, sublayers by weight, filters by weight
/// then id, whose conditions match — computed from the management state, without the index.
fn reference_matches(engine: &Engine, values: &[Value]) -> Vec<u64> {
    let mut all: Vec<Arc<RtFilter>> = engine
        .filters()
        .into_iter()
        .filter(|f| f.layer == catalogue::layers::INBOUND_TRANSPORT_V4)
        .filter(|f| f.conditions().matches(values))
        .collect();
    all.sort_by(|a, b| {
        b.sublayer_weight
            .cmp(&a.sublayer_weight)
            .then(b.weight.cmp(&a.weight))
            .then(a.filter_id.cmp(&b.filter_id))
    });
    all.iter().map(|f| f.filter_id.0).collect()
}

/// `initial` in one transaction, then `ops` in transactions of `per_tx` operations each (deletes
/// may hit filters added in the same transaction); classify probes are checked after each commit.
fn run_engine_ops(
    initial: &[EngineOp],
    ops: &[EngineOp],
    per_tx: usize,
) -> Result<(), TestCaseError> {
    use crate::filter::{SublayerSpec, WeightSpec};
    let engine = Engine::default();
    let extra = engine
        .add_sublayer(SublayerSpec {
            key: crate::guid::Guid::NULL,
            name: "extra".into(),
            description: String::new(),
            flags: 0,
            provider: None,
            weight: 0x9000,
        })
        .expect("sublayer");
    let l = layer("INBOUND_TRANSPORT_V4");
    let mut live: Vec<crate::filter::FilterId> = Vec::new();
    let mut apply =
        |tx: &mut crate::engine::Transaction<'_>, op: &EngineOp| -> Option<Vec<Value>> {
            match op {
                EngineOp::Add(s, w, conds) => {
                    let mut f = FilterSpec::new(
                        "p",
                        catalogue::layers::INBOUND_TRANSPORT_V4,
                        ActionType::PERMIT,
                    );
                    if *s == 1 {
                        f.sublayer = extra;
                    }
                    // Few distinct weights, so that ties (broken by filter id) are common.
                    f.weight = match w {
                        0 => WeightSpec::Auto,
                        w => WeightSpec::Exact(u64::from(*w)),
                    };
                    f.conditions = conds
                        .iter()
                        .map(|&(a, b, c, d)| engine_cond(a, b, c, d))
                        .collect();
                    // Conditions must be grouped by field for OR semantics to be exercised both ways.
                    if let Ok(id) = tx.add_filter(f) {
                        live.push(id);
                    }
                    None
                }
                EngineOp::Delete(n) if !live.is_empty() => {
                    let id = live.swap_remove(n % live.len());
                    tx.delete_filter(id).expect("live filter");
                    None
                }
                EngineOp::Delete(_) => None,
                EngineOp::Classify(port, proto, addr, flags) => Some(values(
                    l,
                    &[
                        ("IP_REMOTE_PORT", Value::Uint16(*port)),
                        ("IP_PROTOCOL", Value::Uint8([6, 17, 1][usize::from(*proto)])),
                        (
                            "IP_LOCAL_ADDRESS",
                            Value::Uint32(0x0A00_0000 | u32::from(*addr)),
                        ),
                        ("FLAGS", Value::Uint32(*flags)),
                    ],
                )),
            }
        };
    // A bulk load in one transaction (past the scan threshold), then single-operation commits.
    let mut tx = engine.begin();
    for op in initial {
        apply(&mut tx, op);
    }
    tx.commit();
    for chunk in ops.chunks(per_tx.max(1)) {
        let mut tx = engine.begin();
        let probes: Vec<Vec<Value>> = chunk.iter().filter_map(|op| apply(&mut tx, op)).collect();
        tx.commit();
        for v in probes {
            let got: Vec<u64> = engine
                .matching_filters(catalogue::layers::INBOUND_TRANSPORT_V4, &v)
                .iter()
                .map(|f| f.filter_id.0)
                .collect();
            prop_assert_eq!(got, reference_matches(&engine, &v), "values {:?}", v);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random histories of single-filter commits over an indexed layer (two sublayers, tied
    /// weights, OR groups, NOT_EQUAL, residual FLAGS): every classify sees exactly the filters,
    /// in exactly the order, that the reference scan of the management state gives — the whole
    /// chain a callout returning CONTINUE walks.
    #[test]
    fn engine_add_delete_sequences_equal_reference(
        initial in prop::collection::vec(engine_op(), 40..120),
        ops in prop::collection::vec(engine_op(), 1..80),
    ) {
        run_engine_ops(&initial, &ops, 1)?;
    }

    /// The same with multi-filter transactions (up to 120 operations, adds and deletes mixed,
    /// some deleting what the same transaction added): the published view of each commit equals
    /// the reference.
    #[test]
    fn engine_transactions_equal_reference(
        initial in prop::collection::vec(engine_op(), 40..120),
        ops in prop::collection::vec(engine_op(), 1..240),
        per_tx in 2usize..120,
    ) {
        run_engine_ops(&initial, &ops, per_tx)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Single-filter adds in a row: the delta spills into a small run, then a second one while
    /// the first is past `SMALL_RUN` (three runs), then everything is compacted — every snapshot
    /// on the way equals the scan of the live filters.
    #[test]
    fn consecutive_adds_spill_into_tiered_runs(
        policy in prop::collection::vec((raw_filter(), 0..4u8), 160..200),
        adds in prop::collection::vec((raw_filter(), 0..4u8), 40..60),
        inputs in prop::collection::vec(raw_values(), 1..4),
    ) {
        let commits: Vec<RawCommit> = adds
            .into_iter()
            .map(|a| RawCommit { add: vec![a], delete: Vec::new() })
            .collect();
        let most = run_history(&policy, &commits, &inputs)?;
        prop_assert_eq!(most, super::MAX_RUNS);
    }
}

// ----- commits applied as deltas (index/delta.rs) ---------------------------------------------

/// One commit of a random history: filters to add (conditions, weight choice) and live filters
/// to delete (picked modulo the live count).
#[derive(Clone, Debug)]
struct RawCommit {
    add: Vec<(RawFilter, u8)>,
    delete: Vec<usize>,
}

fn raw_commit() -> impl Strategy<Value = RawCommit> {
    (
        prop::collection::vec((raw_filter(), 0..4u8), 0..3),
        prop::collection::vec(any::<usize>(), 0..3),
    )
        .prop_map(|(add, delete)| RawCommit { add, delete })
}

/// A filter with these conditions, few distinct weights (ties broken by id) and id `id`.
fn weighted(t: &RtFilter, conds: Vec<Condition>, weight: u8, id: u64) -> Arc<RtFilter> {
    let mut f = t.clone();
    f.conditions = ConditionSet::new(conds);
    f.weight = u64::from(weight);
    f.filter_id = crate::filter::FilterId(id);
    Arc::new(f)
}

/// Every walk of `index` (and its rank, length, filter list and field use) against the live
/// filters sorted in evaluation order.
fn check_delta_index(
    index: &SublayerIndex,
    live: &[Arc<RtFilter>],
    inputs: &[Vec<Value>],
) -> Result<(), TestCaseError> {
    let ids = |fs: &mut dyn Iterator<Item = &Arc<RtFilter>>| -> Vec<u64> {
        fs.map(|f| f.filter_id.0).collect()
    };
    prop_assert_eq!(index.len(), live.len());
    prop_assert_eq!(ids(&mut index.filters()), ids(&mut live.iter()));
    let fields = live.iter().fold(0u64, |m, f| {
        f.conditions()
            .conditions()
            .iter()
            .fold(m, |m, c| m | (1u64 << c.field_index))
    });
    prop_assert_eq!(index.fields_used(), fields);
    for values in inputs {
        let mut cursor = super::Cursor::default();
        let mut got = Vec::new();
        while let Some(hit) = index.next(values, &mut cursor) {
            let f = hit.filter;
            // The head is the filter's, whichever run (or the added filters) it came from.
            prop_assert_eq!(hit.head.filter_id, f.filter_id);
            prop_assert_eq!(hit.head.action, f.action);
            prop_assert_eq!(hit.callout_id(), f.callout_id);
            let at = live.iter().position(|l| Arc::ptr_eq(l, f));
            prop_assert_eq!(Some(index.rank(f)), at.map(|i| i + 1), "rank");
            got.push(f.filter_id.0);
        }
        let expected: Vec<u64> = live
            .iter()
            .filter(|f| f.conditions().matches(values))
            .map(|f| f.filter_id.0)
            .collect();
        prop_assert_eq!(got, expected, "values {:?}", values);
    }
    Ok(())
}

/// Big commits: up to 40 adds and 40 deletes each (past `MAX_ADDED`, so most go straight into a
/// run, through spills and compactions).
fn raw_big_commit() -> impl Strategy<Value = RawCommit> {
    (
        prop::collection::vec((raw_filter(), 0..4u8), 0..40),
        prop::collection::vec(any::<usize>(), 0..40),
    )
        .prop_map(|(add, delete)| RawCommit { add, delete })
}

/// Applies `commits` to an index of `policy` with `with_changes`, checking every snapshot against
/// the live filters, and the first snapshot again at the end (later commits leave it unchanged).
/// Returns the most runs an index had.
fn run_history(
    policy: &[(RawFilter, u8)],
    commits: &[RawCommit],
    inputs: &[Vec<RawValue>],
) -> Result<usize, TestCaseError> {
    let l = layer("INBOUND_TRANSPORT_V4");
    let t = template();
    let inputs: Vec<Vec<Value>> = inputs.iter().map(|r| make_values(l, r)).collect();
    let mut live: Vec<Arc<RtFilter>> = (0u64..)
        .zip(policy)
        .map(|(id, (f, w))| weighted(&t, make_filter(l, &FIELDS, f), *w, id))
        .collect();
    live.sort_by(|a, b| super::eval_order(a, b));
    let mut index = SublayerIndex::build(l, &live);
    let first = (SublayerIndex::build(l, &live), live.clone());
    let mut next_id = 10_000;
    let mut most_runs = index.runs.len();
    for c in commits {
        let mut deleted = Vec::new();
        for &d in &c.delete {
            if !live.is_empty() {
                deleted.push(live.remove(d % live.len()));
            }
        }
        let mut added = Vec::new();
        for (f, w) in &c.add {
            next_id += 1;
            let f = weighted(&t, make_filter(l, &FIELDS, f), *w, next_id);
            live.push(Arc::clone(&f));
            added.push(f);
        }
        live.sort_by(|a, b| super::eval_order(a, b));
        let added: Vec<&Arc<RtFilter>> = added.iter().collect();
        let deleted: Vec<&Arc<RtFilter>> = deleted.iter().collect();
        index = index.with_changes(l, &added, &deleted);
        most_runs = most_runs.max(index.runs.len());
        check_delta_index(&index, &live, &inputs)?;
    }
    check_delta_index(&first.0, &first.1, &inputs)?;
    Ok(most_runs)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random histories of commits (adds with tied weights, deletes of base and of added
    /// filters, several per commit) applied with `with_changes`, through compactions and
    /// scanned bases: every snapshot yields exactly the live filters that match, in evaluation
    /// order, and an earlier snapshot is unchanged by later commits.
    #[test]
    fn delta_histories_equal_scan_of_live_filters(
        policy in prop::collection::vec((raw_filter(), 0..4u8), 0..90),
        commits in prop::collection::vec(raw_commit(), 1..60),
        inputs in prop::collection::vec(raw_values(), 1..6),
    ) {
        run_history(&policy, &commits, &inputs)?;
    }

    /// The same with big transactions mixing adds and deletes (issue 15: a 1,000-filter
    /// transaction publishes once, its added filters built as a run).
    #[test]
    fn big_mixed_transactions_equal_scan_of_live_filters(
        policy in prop::collection::vec((raw_filter(), 0..4u8), 0..200),
        commits in prop::collection::vec(
            prop_oneof![raw_commit(), raw_big_commit()], 1..24),
        inputs in prop::collection::vec(raw_values(), 1..6),
    ) {
        run_history(&policy, &commits, &inputs)?;
    }
}

/// A transaction that re-creates a sublayer under the same key with another weight (its old
/// filters deleted, a new one added): the published view takes the new weight, so the layer's
/// order is the reference order — the incremental commit path must not keep the old sublayer.
#[test]
fn recreated_sublayer_takes_its_new_weight() {
    use crate::filter::SublayerSpec;
    let engine = Engine::default();
    let spec = |weight: u16| SublayerSpec {
        key: crate::guid::Guid::from_name("test", "recreated"),
        name: "recreated".into(),
        description: String::new(),
        flags: 0,
        provider: None,
        weight,
    };
    let key = engine.add_sublayer(spec(0x9000)).expect("sublayer");
    let l = catalogue::layers::INBOUND_TRANSPORT_V4;
    let add = |tx: &mut crate::engine::Transaction<'_>, in_sublayer: bool| {
        let mut f = FilterSpec::new("f", l, ActionType::PERMIT);
        if in_sublayer {
            f.sublayer = key;
        }
        tx.add_filter(f).expect("filter")
    };
    let mut tx = engine.begin();
    let old: Vec<_> = (0..40).map(|_| add(&mut tx, true)).collect();
    (0..40).for_each(|_| {
        add(&mut tx, false);
    });
    tx.commit();
    let mut tx = engine.begin();
    for id in old {
        tx.delete_filter(id).expect("delete");
    }
    tx.delete_sublayer(&key).expect("delete sublayer");
    tx.add_sublayer(spec(0x1000)).expect("re-add sublayer");
    add(&mut tx, true);
    tx.commit();
    let v = values(layer("INBOUND_TRANSPORT_V4"), &[]);
    let got: Vec<u64> = engine
        .matching_filters(l, &v)
        .iter()
        .map(|f| f.filter_id.0)
        .collect();
    assert_eq!(got.len(), 41);
    assert_eq!(got, reference_matches(&engine, &v));
}

/// Application ids (FWP_BYTE_BLOB) are keyed through the index's blob dictionary, exactly:
/// EQUAL (alone or OR-ed), NOT_EQUAL and PREFIX conditions, blobs that differ in one byte or in
/// length, values of another type and FWP_EMPTY all answer like the scan, from every start
/// position, for every parameter set.
#[test]
fn app_id_blobs_are_dictionary_keys_equal_to_the_scan() {
    let l = layer("ALE_AUTH_CONNECT_V4");
    let t = template();
    let blob = |s: &str| Value::ByteBlob(Arc::from(s.as_bytes().to_vec()));
    let apps = [
        "\\device\\a.exe",
        "\\device\\b.exe",
        "\\device\\a.exf",
        "\\device\\a.ex",
        "",
    ];
    let app = |i: usize| {
        cond(
            l,
            "ALE_APP_ID",
            MatchType::Equal,
            blob(apps[i % apps.len()]).into(),
        )
    };
    let port = |p: u16| {
        cond(
            l,
            "IP_REMOTE_PORT",
            MatchType::Equal,
            Value::Uint16(p).into(),
        )
    };
    let policy: Vec<Vec<Condition>> = (0..96usize)
        .map(|i| match i % 6 {
            0 => vec![app(i), port(80)],
            1 => vec![app(i), app(i + 1), port(443)],
            2 => vec![cond(
                l,
                "ALE_APP_ID",
                MatchType::NotEqual,
                blob(apps[i % 5]).into(),
            )],
            3 => vec![
                port(80),
                cond(l, "ALE_APP_ID", MatchType::Prefix, blob(".exe").into()),
            ],
            4 => vec![app(i)],
            _ => vec![port(u16::try_from(i).unwrap_or(0))],
        })
        .collect();
    let filters = filters_from(&t, policy);
    let mut inputs: Vec<Vec<Value>> = Vec::new();
    for a in apps
        .iter()
        .map(|s| blob(s))
        .chain([Value::Empty, Value::Uint32(7)])
    {
        for p in [80u16, 443, 5, 9] {
            inputs.push(values(
                l,
                &[
                    ("ALE_APP_ID", a.clone()),
                    ("IP_REMOTE_PORT", Value::Uint16(p)),
                ],
            ));
        }
    }
    let index = SublayerIndex::build(l, &filters);
    assert!(index.stats().tables > 0, "indexed");
    for v in &inputs {
        assert_eq!(
            all_matches(&index, &filters, v),
            scan_all(&filters, v),
            "{v:?}"
        );
    }
    check_equivalent(l, &filters, &inputs).expect("the index equals the scan");
}

// ----- application ids: the blob dictionary (compile.rs `Blobs`) --------------------------------

/// Blobs conditions name (indices 0..8) and incoming blobs no condition names (8..).
const BLOBS: [&str; 13] = [
    "",
    "a",
    "ab",
    "abc",
    "b",
    "\\device\\a.exe",
    "\\device\\a.exf",
    "\\device\\b.exe",
    "aa",
    "abd",
    "\\device\\a.ex",
    "zz",
    "\\device\\c.exe",
];

fn blob(i: usize) -> Value {
    Value::ByteBlob(Arc::from(BLOBS[i % BLOBS.len()].as_bytes().to_vec()))
}

/// One blob condition: match type choice and value choices (two for RANGE).
type RawBlobCond = (u8, usize, usize);

/// A filter: a group of 0..3 OR-ed app-id conditions, maybe a port, and its weight.
type RawBlobFilter = (Vec<RawBlobCond>, Option<u16>, u8);

fn raw_blob_filter(values: usize) -> impl Strategy<Value = RawBlobFilter> {
    (
        prop::collection::vec((0..8u8, 0..values, 0..values), 0..3),
        prop::option::of(prop::sample::select(vec![80u16, 443])),
        0..4u8,
    )
}

fn make_blob_filter(l: &LayerDef, r: &RawBlobFilter) -> Vec<Condition> {
    let mut out: Vec<Condition> =
        r.0.iter()
            .map(|&(mt, a, b)| {
                let (match_type, value) = match mt {
                    0 => (MatchType::Equal, blob(a).into()),
                    1 => (MatchType::NotEqual, blob(a).into()),
                    2 => (MatchType::Greater, blob(a).into()),
                    3 => (MatchType::Less, blob(a).into()),
                    4 => (MatchType::GreaterOrEqual, blob(a).into()),
                    5 => (MatchType::LessOrEqual, blob(a).into()),
                    6 => (MatchType::Range, ConditionValue::Range(blob(a), blob(b))),
                    _ => (MatchType::Prefix, blob(a).into()),
                };
                cond(l, "ALE_APP_ID", match_type, value)
            })
            .collect();
    if let Some(p) = r.1 {
        out.push(cond(
            l,
            "IP_REMOTE_PORT",
            MatchType::Equal,
            Value::Uint16(p).into(),
        ));
    }
    out
}

/// Incoming values: every blob (named or not), FWP_EMPTY and another type, with two ports.
fn blob_inputs(l: &LayerDef) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    for a in (0..BLOBS.len())
        .map(blob)
        .chain([Value::Empty, Value::Uint32(7)])
    {
        for p in [80u16, 9] {
            out.push(values(
                l,
                &[
                    ("ALE_APP_ID", a.clone()),
                    ("IP_REMOTE_PORT", Value::Uint16(p)),
                ],
            ));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random app-id policies (EQUAL, NOT_EQUAL, ordered comparisons, RANGE, PREFIX, OR-ed)
    /// built in full, then changed commit by commit with filters naming blobs the base's
    /// dictionary lacks: every answer equals the scan, for named and unnamed incoming blobs.
    #[test]
    fn app_id_dictionary_keys_equal_scan_through_histories(
        policy in prop::collection::vec(raw_blob_filter(8), 0..80),
        commits in prop::collection::vec(
            (prop::collection::vec(raw_blob_filter(BLOBS.len()), 0..4),
             prop::collection::vec(any::<usize>(), 0..3)), 1..20),
    ) {
        let l = layer("ALE_AUTH_CONNECT_V4");
        let t = template();
        let inputs = blob_inputs(l);
        let mut live: Vec<Arc<RtFilter>> = (0u64..)
            .zip(&policy)
            .map(|(id, r)| weighted(&t, make_blob_filter(l, r), r.2, id))
            .collect();
        live.sort_by(|a, b| super::eval_order(a, b));
        check_equivalent(l, &live, &inputs)?;
        let mut index = SublayerIndex::build(l, &live);
        let mut next_id = 10_000;
        for (add, del) in &commits {
            let mut deleted = Vec::new();
            for &d in del {
                if !live.is_empty() {
                    deleted.push(live.remove(d % live.len()));
                }
            }
            let mut added = Vec::new();
            for r in add {
                next_id += 1;
                let f = weighted(&t, make_blob_filter(l, r), r.2, next_id);
                live.push(Arc::clone(&f));
                added.push(f);
            }
            live.sort_by(|a, b| super::eval_order(a, b));
            let added: Vec<&Arc<RtFilter>> = added.iter().collect();
            let deleted: Vec<&Arc<RtFilter>> = deleted.iter().collect();
            index = index.with_changes(l, &added, &deleted);
            check_delta_index(&index, &live, &inputs)?;
        }
    }
}
