//! §14.2 Weights. T-W-1 … T-W-5 are unit tests of `effective_weight` inside wfp-core
//! (`filter.rs`); here they are repeated through `add_filter` so the engine's stored filter is what
//! is checked. T-W-6 is checked by classification.

use wfp_core::constants::weight::AUTO_WEIGHT_MAX;
use wfp_core::WeightSpec;
use wfp_testkit::prelude::*;

fn stored_weight(h: &Harness, w: WeightSpec) -> Result<u64, u32> {
    let sl = h.sublayer("w", 1);
    let b = h
        .build(layers::INBOUND_TRANSPORT_V4, ActionType::PERMIT)
        .sublayer(sl)
        .weight_spec(w)
        .when("IP_REMOTE_PORT", Value::Uint16(80));
    match h.add(b) {
        Ok(id) => Ok(h.engine().filter(id).expect("added filter exists").weight()),
        Err(e) => Err(e.code()),
    }
}

/// §14.2 T-W-1 (§7.2): FWP_UINT64 is used unchanged.
#[test]
fn t_w_1_uint64_weight_is_stored_unchanged() {
    assert_eq!(
        stored_weight(&Harness::new(), WeightSpec::Exact(0x1234)),
        Ok(0x1234)
    );
}

/// §14.2 T-W-2 (§7.2): FWP_UINT8 15 puts 0xF in the top nibble.
#[test]
fn t_w_2_uint8_15_sets_top_nibble() {
    let w = stored_weight(&Harness::new(), WeightSpec::Range(15)).unwrap();
    assert!(w >= 0xF000_0000_0000_0000, "{w:#x}");
}

/// §14.2 T-W-3 (§7.2): FWP_UINT8 0 stays below 2^60.
#[test]
fn t_w_3_uint8_0_stays_below_2_pow_60() {
    let w = stored_weight(&Harness::new(), WeightSpec::Range(0)).unwrap();
    assert!(w < 1 << 60, "{w:#x}");
}

/// §14.2 T-W-4 (§7.2): FWP_EMPTY gives an auto weight ≤ FWPM_AUTO_WEIGHT_MAX.
#[test]
fn t_w_4_empty_weight_is_auto() {
    let w = stored_weight(&Harness::new(), WeightSpec::Auto).unwrap();
    assert!(w <= AUTO_WEIGHT_MAX, "{w:#x}");
}

/// §14.2 T-W-5 (§7.2 [I]): FWP_UINT8 16 is rejected with FWP_E_INVALID_WEIGHT.
#[test]
fn t_w_5_uint8_16_is_rejected() {
    let h = Harness::new();
    assert_eq!(stored_weight(&h, WeightSpec::Range(16)), Err(0x8032_0025));
    assert!(h.engine().filters().is_empty());
}

/// §14.2 T-W-6 (§7.2): the weight range decides the order regardless of the auto bits: A (range 14,
/// no conditions) runs before B (range 3, more specific, added first so it has the lower id).
#[test]
fn t_w_6_weight_range_orders_before_auto_bits() {
    let h = Harness::new();
    let layer = layers::INBOUND_TRANSPORT_V4;
    let sl = h.sublayer("one", 1);
    let b = h.add_ok(
        h.build(layer, ActionType::BLOCK)
            .sublayer(sl)
            .weight_spec(WeightSpec::Range(3))
            .when("IP_REMOTE_PORT", Value::Uint16(80))
            .when("IP_PROTOCOL", Value::Uint8(6)),
    );
    let a = h.add_ok(
        h.build(layer, ActionType::PERMIT)
            .sublayer(sl)
            .weight_spec(WeightSpec::Range(14)),
    );
    assert!(b < a);
    let (_, t) = classify!(h, at INBOUND_TRANSPORT_V4,
        TransportV4 { remote_port: 80, ..TCP_TEMPL } => Permit(Soft), by a);
    assert_eq!(t.steps.len(), 1, "B is never evaluated");
}
