//! §11.4 `FWPM_FILTER_ENUM_TEMPLATE0` conditions: FWP_FILTER_ENUM_FULLY_CONTAINED (0) keeps the
//! filters matching *all* the traffic the template's conditions describe, OVERLAPPING (1) the
//! filters matching *some* of it (a superset); the boot-time / disabled enumeration flags.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use wfp_core::catalogue::condition_by_name;
use wfp_core::condition::ConditionSpec;
use wfp_core::engine::{
    FilterEnumTemplate, FilterEnumType, SessionSpec, FILTER_ENUM_FLAG_BOOTTIME_ONLY,
    FILTER_ENUM_FLAG_INCLUDE_BOOTTIME,
};
use wfp_testkit::prelude::*;

const LAYER: LayerId = layers::ALE_AUTH_CONNECT_V4;

fn cond(field: &str, match_type: MatchType, value: impl Into<ConditionValue>) -> ConditionSpec {
    ConditionSpec {
        field: condition_by_name(field).unwrap_or_else(|| panic!("{field}")),
        match_type,
        value: value.into(),
    }
}

/// The ids `template` (at [`LAYER`], with `conditions` and `enum_type`) returns.
fn enumerate(
    h: &Harness,
    enum_type: FilterEnumType,
    conditions: Vec<ConditionSpec>,
) -> BTreeSet<u64> {
    let mut s = h
        .engine()
        .open_session(SessionSpec::default(), None)
        .expect("session");
    s.filters(&FilterEnumTemplate {
        layer: Some(LAYER),
        enum_type,
        conditions,
        ..FilterEnumTemplate::default()
    })
    .expect("enumerate")
    .iter()
    .map(|f| f.filter_id().0)
    .collect()
}

fn ids(list: &[FilterId]) -> BTreeSet<u64> {
    list.iter().map(|f| f.0).collect()
}

fn port(p: u16) -> Value {
    Value::Uint16(p)
}

/// Integer fields (IP_REMOTE_PORT, UINT16; IP_PROTOCOL, UINT8): EQUAL, RANGE, GREATER_OR_EQUAL.
#[test]
fn enum_template_ports_fully_contained_vs_overlapping() {
    let h = Harness::new();
    let b = |h: &Harness| h.build(LAYER, ActionType::BLOCK);
    let eq80 = h.add_ok(b(&h).when("IP_REMOTE_PORT", port(80)));
    let low = h.add_ok(b(&h).condition(
        "IP_REMOTE_PORT",
        MatchType::Range,
        ConditionValue::Range(port(1), port(1024)),
    ));
    let any = h.add_ok(b(&h));
    let eq443 = h.add_ok(b(&h).when("IP_REMOTE_PORT", port(443)));
    let high = h.add_ok(b(&h).condition("IP_REMOTE_PORT", MatchType::GreaterOrEqual, port(8000)));
    let tcp = h.add_ok(b(&h).when("IP_PROTOCOL", Value::Uint8(6)));
    let _ = (eq443, high);

    let t80 = || vec![cond("IP_REMOTE_PORT", MatchType::Equal, port(80))];
    assert_eq!(
        enumerate(&h, FilterEnumType::FullyContained, t80()),
        ids(&[eq80, low, any])
    );
    assert_eq!(
        enumerate(&h, FilterEnumType::Overlapping, t80()),
        ids(&[eq80, low, any, tcp])
    );

    let range = || {
        vec![cond(
            "IP_REMOTE_PORT",
            MatchType::Range,
            ConditionValue::Range(port(70), port(90)),
        )]
    };
    assert_eq!(
        enumerate(&h, FilterEnumType::FullyContained, range()),
        ids(&[low, any])
    );
    assert_eq!(
        enumerate(&h, FilterEnumType::Overlapping, range()),
        ids(&[eq80, low, any, tcp])
    );

    // Two fields: TCP to port 80 is fully inside the TCP filter as well.
    let both = || {
        vec![
            cond("IP_REMOTE_PORT", MatchType::Equal, port(80)),
            cond("IP_PROTOCOL", MatchType::Equal, Value::Uint8(6)),
        ]
    };
    assert_eq!(
        enumerate(&h, FilterEnumType::FullyContained, both()),
        ids(&[eq80, low, any, tcp])
    );
    // OR inside the template: ports 80 or 9000 — only "any" holds both.
    let either = || {
        vec![
            cond("IP_REMOTE_PORT", MatchType::Equal, port(80)),
            cond("IP_REMOTE_PORT", MatchType::Equal, port(9000)),
        ]
    };
    assert_eq!(
        enumerate(&h, FilterEnumType::FullyContained, either()),
        ids(&[any])
    );
    assert_eq!(
        enumerate(&h, FilterEnumType::Overlapping, either()),
        ids(&[eq80, low, any, high, tcp])
    );
}

/// IPv4 addresses (FWP_V4_ADDR_MASK prefixes against EQUAL and other prefixes).
#[test]
fn enum_template_addresses_prefix_containment() {
    let h = Harness::new();
    let net10 = h.add_ok(h.build(LAYER, ActionType::BLOCK).condition(
        "IP_REMOTE_ADDRESS",
        MatchType::Equal,
        ConditionValue::v4_prefix(Ipv4Addr::new(10, 0, 0, 0), 8),
    ));
    let host = h.add_ok(
        h.build(LAYER, ActionType::PERMIT)
            .when("IP_REMOTE_ADDRESS", Value::ipv4(Ipv4Addr::new(10, 1, 2, 3))),
    );
    let other = h.add_ok(h.build(LAYER, ActionType::BLOCK).condition(
        "IP_REMOTE_ADDRESS",
        MatchType::Equal,
        ConditionValue::v4_prefix(Ipv4Addr::new(192, 168, 0, 0), 16),
    ));
    let not10 = h.add_ok(h.build(LAYER, ActionType::BLOCK).condition(
        "IP_REMOTE_ADDRESS",
        MatchType::NotEqual,
        ConditionValue::v4_prefix(Ipv4Addr::new(10, 0, 0, 0), 8),
    ));
    let _ = (other, not10);
    let t = || {
        vec![cond(
            "IP_REMOTE_ADDRESS",
            MatchType::Equal,
            ConditionValue::v4_prefix(Ipv4Addr::new(10, 1, 0, 0), 16),
        )]
    };
    assert_eq!(
        enumerate(&h, FilterEnumType::FullyContained, t()),
        ids(&[net10])
    );
    assert_eq!(
        enumerate(&h, FilterEnumType::Overlapping, t()),
        ids(&[net10, host])
    );
}

/// Byte blobs (ALE_APP_ID): a point template is compared with the filters' own matcher, so the
/// ends-with PREFIX rule (brief decision 7) applies; a PREFIX template is decided syntactically.
#[test]
fn enum_template_app_id_blob() {
    let h = Harness::new();
    let curl = h.add_ok(
        h.build(LAYER, ActionType::BLOCK)
            .when("ALE_APP_ID", Value::blob_from_str("/usr/bin/curl")),
    );
    let ends = h.add_ok(h.build(LAYER, ActionType::BLOCK).condition(
        "ALE_APP_ID",
        MatchType::Prefix,
        Value::blob_from_str("/curl"),
    ));
    let wget = h.add_ok(
        h.build(LAYER, ActionType::BLOCK)
            .when("ALE_APP_ID", Value::blob_from_str("/usr/bin/wget")),
    );
    let _ = wget;
    let point = || {
        vec![cond(
            "ALE_APP_ID",
            MatchType::Equal,
            Value::blob_from_str("/usr/bin/curl"),
        )]
    };
    assert_eq!(
        enumerate(&h, FilterEnumType::FullyContained, point()),
        ids(&[curl, ends])
    );
    assert_eq!(
        enumerate(&h, FilterEnumType::Overlapping, point()),
        ids(&[curl, ends])
    );
    let suffix = || {
        vec![cond(
            "ALE_APP_ID",
            MatchType::Prefix,
            Value::blob_from_str("/curl"),
        )]
    };
    assert_eq!(
        enumerate(&h, FilterEnumType::FullyContained, suffix()),
        ids(&[ends])
    );
}

/// FWP_FILTER_ENUM_FLAG_BOOTTIME_ONLY / INCLUDE_BOOTTIME.
#[test]
fn enum_template_boottime_flags() {
    let h = Harness::new();
    let normal = h.add_ok(h.build(LAYER, ActionType::BLOCK));
    let boot = h.add_ok(
        h.build(LAYER, ActionType::BLOCK)
            .flags(FilterFlags::BOOTTIME),
    );
    let mut s = h
        .engine()
        .open_session(SessionSpec::default(), None)
        .unwrap();
    let list = |s: &mut wfp_core::engine::Session<'_>, flags| -> BTreeSet<u64> {
        s.filters(&FilterEnumTemplate {
            flags,
            ..FilterEnumTemplate::default()
        })
        .unwrap()
        .iter()
        .map(|f| f.filter_id().0)
        .collect()
    };
    assert_eq!(list(&mut s, 0), ids(&[normal]));
    assert_eq!(
        list(&mut s, FILTER_ENUM_FLAG_INCLUDE_BOOTTIME),
        ids(&[normal, boot])
    );
    assert_eq!(list(&mut s, FILTER_ENUM_FLAG_BOOTTIME_ONLY), ids(&[boot]));
    assert_eq!(
        s.filters(&FilterEnumTemplate::everything()).unwrap().len(),
        2
    );
}

/// Template errors: repeated conditions (FWP_E_DUPLICATE_CONDITION), conditions without a layer
/// (FWP_E_INVALID_PARAMETER), a field the layer lacks, unknown enumeration flags.
#[test]
fn enum_template_errors() {
    let h = Harness::new();
    let mut s = h
        .engine()
        .open_session(SessionSpec::default(), None)
        .unwrap();
    let c = cond("IP_REMOTE_PORT", MatchType::Equal, port(80));
    let dup = FilterEnumTemplate {
        layer: Some(LAYER),
        conditions: vec![c.clone(), c.clone()],
        ..FilterEnumTemplate::default()
    };
    assert_eq!(s.filters(&dup).unwrap_err().code(), 0x8032_002A);
    let no_layer = FilterEnumTemplate {
        conditions: vec![c],
        ..FilterEnumTemplate::default()
    };
    assert_eq!(s.filters(&no_layer).unwrap_err().code(), 0x8032_0035);
    let wrong_field = FilterEnumTemplate {
        layer: Some(layers::INBOUND_IPPACKET_V4),
        conditions: vec![cond(
            "ALE_APP_ID",
            MatchType::Equal,
            Value::blob_from_str("x"),
        )],
        ..FilterEnumTemplate::default()
    };
    assert!(s.filters(&wrong_field).is_err());
    let flags = FilterEnumTemplate {
        flags: 0x40,
        ..FilterEnumTemplate::default()
    };
    assert_eq!(s.filters(&flags).unwrap_err().code(), 0x8032_001E);
}
