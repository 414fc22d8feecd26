//! §14.3 Conditions (T-C-1 … T-C-9), at the engine: each filter is added through the management
//! API and matched by classification. T-C-10 (Vista-mode FWP_E_DUPLICATE_CONDITION) does not apply:
//! the engine implements the Windows 7+ same-field OR and has no Vista emulation.

use wfp_testkit::prelude::*;

const T: LayerId = layers::INBOUND_TRANSPORT_V4;

/// One PERMIT filter built by `conds` in a fresh harness; returns the harness and the filter.
fn one_filter(
    layer: LayerId,
    conds: impl FnOnce(wfp_testkit::FilterBuilder) -> wfp_testkit::FilterBuilder,
) -> (Harness, FilterId) {
    let h = Harness::new();
    let sl = h.sublayer("c", 1);
    let f = h.add_ok(conds(h.build(layer, ActionType::PERMIT).sublayer(sl)));
    (h, f)
}

fn matched(h: &Harness, layer: LayerId, f: FilterId, v: Vec<Value>) -> bool {
    let (r, _) = h.classify(layer, v);
    match r.deciding_filter {
        Some(d) => {
            assert_eq!(d, f);
            true
        }
        None => false,
    }
}

fn port_proto(port: u16, proto: u8) -> TransportV4 {
    TransportV4 {
        remote_port: port,
        protocol: proto,
        ..TCP_TEMPL
    }
}

/// §14.3 T-C-1 (§8.5): conditions on different fields are AND-ed.
#[test]
fn t_c_1_different_fields_and() {
    let (h, f) = one_filter(T, |b| {
        b.when("IP_REMOTE_PORT", Value::Uint16(80))
            .when("IP_PROTOCOL", Value::Uint8(6))
    });
    classify!(h, at INBOUND_TRANSPORT_V4, port_proto(80, 6) => Permit(Soft), by f);
    classify!(h, at INBOUND_TRANSPORT_V4, port_proto(80, 17) => NoMatch);
    classify!(h, at INBOUND_TRANSPORT_V4, port_proto(81, 6) => NoMatch);
}

/// §14.3 T-C-2 (§8.5, Windows 7+): consecutive conditions on one field are OR-ed, different
/// fields AND-ed.
#[test]
fn t_c_2_same_field_or_different_field_and() {
    let (h, f) = one_filter(T, |b| {
        b.when("IP_REMOTE_PORT", Value::Uint16(80))
            .when("IP_REMOTE_PORT", Value::Uint16(443))
            .when("IP_PROTOCOL", Value::Uint8(6))
    });
    assert!(h
        .engine()
        .filter(f)
        .unwrap()
        .flags()
        .contains(RtFilterFlags::OR_CONDITIONS));
    assert!(matched(&h, T, f, port_proto(443, 6).into_values(T)));
    assert!(!matched(&h, T, f, port_proto(22, 6).into_values(T)));
    assert!(!matched(&h, T, f, port_proto(443, 17).into_values(T)));
}

/// §14.3 T-C-3 (§8.5): FWP_V4_ADDR_MASK 10.0.0.0/255.0.0.0 matches 10.1.2.3 (host order).
#[test]
fn t_c_3_v4_addr_mask() {
    let (h, f) = one_filter(T, |b| {
        b.condition(
            "IP_LOCAL_ADDRESS",
            MatchType::Equal,
            ConditionValue::V4AddrMask {
                addr: 0x0A00_0000,
                mask: 0xFF00_0000,
            },
        )
    });
    let hit = values(T, &[("IP_LOCAL_ADDRESS", Value::Uint32(0x0A01_0203))]);
    let miss = values(T, &[("IP_LOCAL_ADDRESS", Value::Uint32(0x0B01_0203))]);
    assert!(matched(&h, T, f, hit));
    assert!(!matched(&h, T, f, miss));
}

/// §14.3 T-C-4 (§8.5): FLAGS_ALL_SET IS_LOOPBACK matches FLAGS 0x5; FLAGS_NONE_SET does not.
#[test]
fn t_c_4_flags_all_set_and_none_set() {
    let (h, f) = one_filter(T, |b| {
        b.condition("FLAGS", MatchType::FlagsAllSet, Value::Uint32(0x1))
    });
    let v = values(T, &[("FLAGS", Value::Uint32(0x5))]);
    assert!(matched(&h, T, f, v.clone()));
    let (h2, f2) = one_filter(T, |b| {
        b.condition("FLAGS", MatchType::FlagsNoneSet, Value::Uint32(0x1))
    });
    assert!(!matched(&h2, T, f2, v));
    assert!(matched(
        &h2,
        T,
        f2,
        values(T, &[("FLAGS", Value::Uint32(0x4))])
    ));
}

/// §14.3 T-C-5 (§8.5 [I inclusive]): FWP_MATCH_RANGE [1000, 2000] includes both bounds.
#[test]
fn t_c_5_range_is_inclusive() {
    let (h, f) = one_filter(T, |b| {
        b.condition(
            "IP_REMOTE_PORT",
            MatchType::Range,
            ConditionValue::Range(Value::Uint16(1000), Value::Uint16(2000)),
        )
    });
    let port = |p| values(T, &[("IP_REMOTE_PORT", Value::Uint16(p))]);
    assert!(!matched(&h, T, f, port(999)));
    assert!(matched(&h, T, f, port(1000)));
    assert!(matched(&h, T, f, port(2000)));
    assert!(!matched(&h, T, f, port(2001)));
}

/// §14.3 T-C-6 (§8.5): IP_PROTOCOL is FWP_UINT8; a FWP_UINT16 condition value is rejected at add
/// with FWP_E_TYPE_MISMATCH (no implicit conversion).
#[test]
fn t_c_6_type_mismatch_rejected_at_add() {
    let h = Harness::new();
    let e = h
        .add(
            h.build(T, ActionType::PERMIT)
                .when("IP_PROTOCOL", Value::Uint16(6)),
        )
        .unwrap_err();
    assert_eq!(e.code(), 0x8032_0027, "{e}");
    assert!(h.engine().filters().is_empty());
}

/// §14.3 T-C-7 (§8.5): a filter with zero conditions matches anything (even all-FWP_EMPTY values).
#[test]
fn t_c_7_zero_conditions_match_everything() {
    let (h, f) = one_filter(T, |b| b);
    assert!(matched(&h, T, f, values(T, &[])));
    assert!(matched(&h, T, f, UDP_TEMPL.into_values(T)));
}

/// §14.3 T-C-8 (§8.5 [SDK]): `IP_ARRIVAL_INTERFACE == FWP_EMPTY` at ALE_AUTH_RECV_ACCEPT matches a
/// reauthorized outbound packet whose field is FWP_EMPTY, and nothing with a real interface.
#[test]
fn t_c_8_empty_condition_catches_reauthorization() {
    let layer = layers::ALE_AUTH_RECV_ACCEPT_V4;
    let (h, f) = one_filter(layer, |b| b.when("IP_ARRIVAL_INTERFACE", Value::Empty));
    let reauth = values(layer, &[("IP_LOCAL_PORT", Value::Uint16(80))]);
    let normal = values(layer, &[("IP_ARRIVAL_INTERFACE", Value::Uint64(3))]);
    assert!(matched(&h, layer, f, reauth));
    assert!(!matched(&h, layer, f, normal));
}

/// §14.3 T-C-9 (brief decision 7): FWP_MATCH_PREFIX on ALE_APP_ID is the documented ends-with test.
#[test]
fn t_c_9_prefix_is_a_suffix_test() {
    let layer = layers::ALE_AUTH_CONNECT_V4;
    let (h, f) = one_filter(layer, |b| {
        b.condition(
            "ALE_APP_ID",
            MatchType::Prefix,
            Value::blob_from_str("chrome.exe"),
        )
    });
    let app = |p: &str| values(layer, &[("ALE_APP_ID", Value::blob_from_str(p))]);
    assert!(matched(
        &h,
        layer,
        f,
        app("\\device\\harddiskvolume1\\program files\\google\\chrome.exe")
    ));
    assert!(!matched(&h, layer, f, app("chrome.exe\\evil.exe")));
}
