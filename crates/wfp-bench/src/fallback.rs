//! The fallback set (issue 15): filters with a condition the index cannot key on.
//!
//! The same rules as a ClassBench set, at `ALE_AUTH_CONNECT_V4` (which has the five-tuple and
//! `ALE_APP_ID`); every other filter (odd rule index) also requires `ALE_APP_ID` EQUAL to one of
//! [`APPS`] application paths (an `FWP_BYTE_BLOB`: the index keys it through its dictionary of
//! the blobs the conditions name, `wfp-core` `index/compile.rs`). Each header gets one of those
//! applications. The baseline is
//! [`crate::linear::TightScan::with_apps`], the application ids pre-decoded to small numbers.
//!
//! ```text
//!  Rule ─► filter_spec(rule, i, n, app(i)) ─► FilterSpec at LAYER (+ ALE_APP_ID when i is odd)
//!  Header, app number ─► header_values ─► incoming values at LAYER (+ ALE_APP_ID)
//! ```

use std::sync::Arc;

use wfp_core::catalogue::{self, layers, LayerId};
use wfp_core::{ConditionSpec, FilterSpec, MatchType, Value};

use crate::classbench::{self, Header, Rule};

/// The layer of the fallback set.
pub const LAYER: LayerId = layers::ALE_AUTH_CONNECT_V4;

/// Distinct applications.
pub const APPS: u8 = 8;

/// The application number (1..=APPS) rule `index` requires, or 0 (any) for even rules and when
/// `with_apps` is off.
pub fn rule_app(index: usize, with_apps: bool) -> u8 {
    if with_apps && index % 2 == 1 {
        1 + u8::try_from((index / 2) % usize::from(APPS)).unwrap_or(0)
    } else {
        0
    }
}

/// The `ALE_APP_ID` value of application number `app`: a device path as bytes.
pub fn app_id(app: u8) -> Value {
    let path = format!("\\device\\harddiskvolume1\\program files\\app{app}\\app{app}.exe");
    Value::ByteBlob(Arc::from(path.into_bytes()))
}

/// The filter for rule `index` of `count` at [`LAYER`] ([`classbench::filter_spec`]'s conditions),
/// with the `ALE_APP_ID` condition of [`rule_app`] when it is not 0.
pub fn filter_spec(rule: &Rule, index: usize, count: usize, with_apps: bool) -> FilterSpec {
    let mut f = classbench::filter_spec(rule, index, count);
    f.layer = LAYER;
    let app = rule_app(index, with_apps);
    if app != 0 {
        f.conditions.push(ConditionSpec {
            field: catalogue::condition_by_name("ALE_APP_ID")
                .unwrap_or(catalogue::ConditionId(u16::MAX)),
            match_type: MatchType::Equal,
            value: app_id(app).into(),
        });
    }
    f
}

/// The incoming values of `h` at [`LAYER`], from application number `app`.
pub fn header_values(h: &Header, app: u8) -> Vec<Value> {
    let Some(layer) = catalogue::layer(LAYER) else {
        return Vec::new();
    };
    let mut v = vec![Value::Empty; layer.fields.len()];
    for (name, value) in [
        ("IP_PROTOCOL", Value::Uint8(h.proto)),
        ("IP_LOCAL_ADDRESS", Value::Uint32(h.src)),
        ("IP_REMOTE_ADDRESS", Value::Uint32(h.dst)),
        ("IP_LOCAL_PORT", Value::Uint16(h.sport)),
        ("IP_REMOTE_PORT", Value::Uint16(h.dport)),
        ("ALE_APP_ID", app_id(app)),
    ] {
        if let Some(slot) = layer.field_index_by_name(name).and_then(|i| v.get_mut(i)) {
            *slot = value;
        }
    }
    v
}

/// The application number of header `k` (1..=APPS).
pub fn header_app(k: usize) -> u8 {
    1 + u8::try_from(k % usize::from(APPS)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use wfp_core::index::bench_internals::{scan, sublayer_filters, Index};
    use wfp_core::Engine;

    use super::*;
    use crate::hard;
    use crate::linear::TightScan;

    /// The engine's reference scan, the index and the tight scan with application numbers agree
    /// on a set where every other filter requires an application, for every application.
    #[test]
    fn app_id_filters_answer_like_the_tight_scan_with_app_numbers() {
        let rules = hard::generate(300, 7);
        let engine = Engine::default();
        let mut tx = engine.begin();
        for (i, r) in rules.iter().enumerate() {
            tx.add_filter(filter_spec(r, i, rules.len(), true))
                .expect("valid filter");
        }
        tx.commit();
        let filters = sublayer_filters(&engine, LAYER).swap_remove(0);
        assert_eq!(filters.len(), rules.len());
        let index = Index::build(LAYER, &filters).expect("layer");
        let apps: Vec<u8> = (0..rules.len()).map(|i| rule_app(i, true)).collect();
        assert_eq!(apps.iter().filter(|&&a| a != 0).count(), rules.len() / 2);
        let tight = TightScan::with_apps(&rules, &apps);
        let mut app_decided = 0;
        for (k, h) in hard::corner_headers(&rules, 2, 3).iter().enumerate() {
            let app = header_app(k);
            let v = header_values(h, app);
            let want = tight.first_match_app(h, app);
            assert_eq!(scan(&filters, &v, 0), want, "{h:?} app {app}");
            assert_eq!(index.next_match(&filters, &v, 0), want, "{h:?} app {app}");
            app_decided += usize::from(want.is_some_and(|i| apps[i] != 0));
        }
        assert!(app_decided > 0, "some answers come from app-id filters");
    }
}
