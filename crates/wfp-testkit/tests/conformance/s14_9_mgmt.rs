//! §14.9 Management (T-MGMT-1 … T-MGMT-12) through engine sessions (§11.1–11.4). T-MGMT-13
//! (CLASSIFY_DROP net events) is in `s14_9_net_events`.

use std::time::Duration;

use wfp_core::catalogue::{condition_by_name, SUBLAYER_UNIVERSAL};
use wfp_core::engine::{
    FilterEnumTemplate, ObjectRef, Session, SessionSpec, FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH,
    SESSION_FLAG_DYNAMIC, TXN_READ_ONLY,
};
use wfp_core::filter::{
    ProviderSpec, SublayerSpec, PROVIDER_FLAG_PERSISTENT, SUBLAYER_FLAG_PERSISTENT,
};
use wfp_core::{FilterSpec, FwpError};
use wfp_testkit::prelude::*;

fn spec(name: &str, flags: u32) -> SessionSpec {
    SessionSpec {
        name: name.into(),
        flags,
        ..SessionSpec::default()
    }
}

fn open<'e>(e: &'e Engine, name: &str, flags: u32) -> Session<'e> {
    e.open_session(spec(name, flags), None)
        .unwrap_or_else(|err| panic!("open {name}: {err}"))
}

fn sublayer(name: &str, flags: u32) -> SublayerSpec {
    SublayerSpec {
        name: name.into(),
        flags,
        weight: 100,
        ..SublayerSpec::default()
    }
}

fn block(name: &str) -> FilterSpec {
    FilterSpec::new(name, layers::ALE_AUTH_CONNECT_V4, ActionType::BLOCK)
}

/// §11.1, T-MGMT-1: a dynamic session's provider, sublayer and filters are deleted on close, and
/// equally when the session is dropped (the client process died).
#[test]
fn t_mgmt_1_dynamic_session_objects_die_with_it() {
    let h = Harness::new();
    let e = h.engine();
    for close_explicitly in [true, false] {
        let mut s = open(e, "dyn", SESSION_FLAG_DYNAMIC);
        let p = s
            .add_provider(ProviderSpec {
                name: "p".into(),
                ..ProviderSpec::default()
            })
            .unwrap();
        let sl = s
            .add_sublayer(SublayerSpec {
                provider: Some(p),
                ..sublayer("sl", 0)
            })
            .unwrap();
        for i in 0..3 {
            let mut f = block(&format!("f{i}"));
            f.sublayer = sl;
            f.provider = Some(p);
            s.add_filter(f).unwrap();
        }
        assert_eq!(e.filters().len(), 3);
        assert_eq!(e.sessions()[0].dynamic_objects, 5);
        if close_explicitly {
            assert_eq!(s.close(), 5);
        } else {
            drop(s);
        }
        assert!(e.filters().is_empty());
        assert!(e.providers().is_empty());
        assert!(e.sublayers().iter().all(|s| s.builtin));
        assert!(e.sessions().is_empty());
        h.expect(layers::ALE_AUTH_CONNECT_V4, TCP_TEMPL, NoMatch);
    }
}

/// §11.2, T-MGMT-2: a failing operation does not poison the transaction: commit applies A and B,
/// abort applies nothing.
#[test]
fn t_mgmt_2_partial_success_inside_a_transaction() {
    let h = Harness::new();
    let e = h.engine();
    for commit in [true, false] {
        let mut s = open(e, "txn", 0);
        s.begin(0).unwrap();
        let a = s.add_filter(block("A")).unwrap();
        let b = s.add_filter(block("B")).unwrap();
        let mut c = block("C");
        c.sublayer = Guid::from_name("t", "no such sublayer");
        assert_eq!(s.add_filter(c).unwrap_err().code(), 0x8032_0007);
        if commit {
            s.commit().unwrap();
            let ids: Vec<FilterId> = e.filters().iter().map(|f| f.filter_id()).collect();
            assert_eq!(ids, vec![a, b]);
            h.expect(layers::ALE_AUTH_CONNECT_V4, TCP_TEMPL, Block(Hard));
            s.delete_filter(a).unwrap();
            s.delete_filter(b).unwrap();
        } else {
            s.abort().unwrap();
            assert!(e.filters().is_empty());
        }
    }
}

/// §11.2, T-MGMT-3: a second begin in one session is FWP_E_TXN_IN_PROGRESS at once (no
/// deadlock), and the first transaction stays usable.
#[test]
fn t_mgmt_3_second_begin_in_a_session_is_txn_in_progress() {
    let h = Harness::new();
    let mut s = open(h.engine(), "twice", 0);
    s.begin(0).unwrap();
    let err = s.begin(0).unwrap_err();
    assert_eq!(err, FwpError::TxnInProgress);
    assert_eq!(err.code(), 0x8032_000E);
    s.add_filter(block("still usable")).unwrap();
    s.commit().unwrap();
    assert_eq!(h.engine().filters().len(), 1);
    assert_eq!(s.commit().unwrap_err().code(), 0x8032_000D);
}

/// §11.2, T-MGMT-4: a write inside a read-only transaction is FWP_E_INCOMPATIBLE_TXN; reads work.
#[test]
fn t_mgmt_4_write_in_read_only_transaction_is_incompatible() {
    let h = Harness::new();
    h.add_ok(h.build(layers::ALE_AUTH_CONNECT_V4, ActionType::PERMIT));
    let mut s = open(h.engine(), "reader", 0);
    s.begin(TXN_READ_ONLY).unwrap();
    let err = s.add_filter(block("w")).unwrap_err();
    assert_eq!(err, FwpError::IncompatibleTxn);
    assert_eq!(err.code(), 0x8032_0011);
    assert_eq!(s.filters(&FilterEnumTemplate::default()).unwrap().len(), 1);
    s.commit().unwrap();
    assert_eq!(h.engine().filters().len(), 1);
}

/// §11.2, T-MGMT-5: B's begin fails FWP_E_TIMEOUT after B's wait limit while A holds the lock; a
/// wait limit of 0 means 15 s.
#[test]
fn t_mgmt_5_begin_times_out_while_another_session_holds_the_lock() {
    let h = Harness::new();
    let e = h.engine();
    let mut a = open(e, "A", 0);
    a.begin(0).unwrap();
    let mut b = e
        .open_session(
            SessionSpec {
                txn_wait_timeout: Duration::from_millis(50),
                ..spec("B", 0)
            },
            None,
        )
        .unwrap();
    let err = b.begin(0).unwrap_err();
    assert_eq!(err.code(), 0x8032_0012);
    // Implicit transactions wait the same way.
    assert_eq!(b.add_filter(block("b")).unwrap_err().code(), 0x8032_0012);
    a.commit().unwrap();
    b.begin(0).unwrap();
    b.abort().unwrap();
    assert_eq!(a.spec().txn_wait_timeout, Duration::from_secs(15));
}

/// §11.3, T-MGMT-6: a persistent filter may not reference a dynamic sublayer (nor a static one);
/// a static object may not reference a dynamic one, nor may another session's dynamic object.
#[test]
fn t_mgmt_6_lifetime_mismatch() {
    let h = Harness::new();
    let e = h.engine();
    let mut dynamic = open(e, "dyn", SESSION_FLAG_DYNAMIC);
    let dyn_sl = dynamic.add_sublayer(sublayer("dyn", 0)).unwrap();
    let mut stat = open(e, "static", 0);
    let mut persistent = block("p");
    persistent.flags = FilterFlags::PERSISTENT;
    persistent.sublayer = dyn_sl;
    let err = stat.add_filter(persistent.clone()).unwrap_err();
    assert_eq!(err.code(), 0x8032_0016, "{err}");
    let mut static_f = block("s");
    static_f.sublayer = dyn_sl;
    assert_eq!(
        stat.add_filter(static_f.clone()).unwrap_err().code(),
        0x8032_0016
    );
    let mut other = open(e, "other dyn", SESSION_FLAG_DYNAMIC);
    assert_eq!(
        other.add_filter(static_f.clone()).unwrap_err().code(),
        0x8032_0016
    );
    // The owning session may; a dynamic session may not add persistent objects at all.
    dynamic.add_filter(static_f).unwrap();
    assert_eq!(
        dynamic.add_filter(persistent).unwrap_err().code(),
        0x8032_000B
    );
    // Persistent → static sublayer is the flag rule.
    let static_sl = stat.add_sublayer(sublayer("static", 0)).unwrap();
    let mut p2 = block("p2");
    p2.flags = FilterFlags::PERSISTENT;
    p2.sublayer = static_sl;
    assert_eq!(stat.add_filter(p2).unwrap_err().code(), 0x8032_0016);
}

/// §11.3, T-MGMT-7: deleting a sublayer that holds filters, or a provider still referenced, is
/// FWP_E_IN_USE.
#[test]
fn t_mgmt_7_delete_referenced_objects_is_in_use() {
    let h = Harness::new();
    let mut s = open(h.engine(), "s", 0);
    let p = s
        .add_provider(ProviderSpec {
            name: "p".into(),
            ..ProviderSpec::default()
        })
        .unwrap();
    let sl = s
        .add_sublayer(SublayerSpec {
            provider: Some(p),
            ..sublayer("sl", 0)
        })
        .unwrap();
    let mut f = block("f");
    f.sublayer = sl;
    let id = s.add_filter(f).unwrap();
    assert_eq!(
        s.delete(ObjectRef::Sublayer(sl)).unwrap_err().code(),
        0x8032_000A
    );
    assert_eq!(
        s.delete(ObjectRef::Provider(p)).unwrap_err().code(),
        0x8032_000A
    );
    s.delete_filter(id).unwrap();
    s.delete(ObjectRef::Sublayer(sl)).unwrap();
    s.delete(ObjectRef::Provider(p)).unwrap();
}

/// §11.4, T-MGMT-8: PERSISTENT | BOOTTIME is FWP_E_INVALID_FLAGS.
#[test]
fn t_mgmt_8_persistent_and_boottime_are_exclusive() {
    let h = Harness::new();
    let mut s = open(h.engine(), "s", 0);
    let mut f = block("f");
    f.flags = FilterFlags::PERSISTENT | FilterFlags::BOOTTIME;
    assert_eq!(s.add_filter(f).unwrap_err().code(), 0x8032_001E);
}

/// §11.4, T-MGMT-9: a filter without a display name is FWP_E_NULL_DISPLAY_NAME.
#[test]
fn t_mgmt_9_null_display_name() {
    let h = Harness::new();
    let mut s = open(h.engine(), "s", 0);
    assert_eq!(s.add_filter(block("")).unwrap_err().code(), 0x8032_0023);
    assert_eq!(
        s.add_sublayer(sublayer("", 0)).unwrap_err().code(),
        0x8032_0023
    );
}

/// §11.4, T-MGMT-10: subLayerKey = GUID_NULL places the filter in FWPM_SUBLAYER_UNIVERSAL.
#[test]
fn t_mgmt_10_null_sublayer_is_the_default_sublayer() {
    let h = Harness::new();
    let mut s = open(h.engine(), "s", 0);
    let id = s.add_filter(block("f")).unwrap();
    assert_eq!(s.filter(id).unwrap().sublayer(), SUBLAYER_UNIVERSAL);
}

/// §11.1, T-MGMT-11: opening a session with a key in use is FWP_E_ALREADY_EXISTS; after close the
/// key is free again.
#[test]
fn t_mgmt_11_session_key_in_use() {
    let h = Harness::new();
    let e = h.engine();
    let key = Guid::from_name("t", "session");
    let first = e
        .open_session(
            SessionSpec {
                key,
                ..spec("a", 0)
            },
            None,
        )
        .unwrap();
    assert_eq!(first.key(), key);
    let err = e
        .open_session(
            SessionSpec {
                key,
                ..spec("b", 0)
            },
            None,
        )
        .err()
        .unwrap();
    assert_eq!(err.code(), 0x8032_0009);
    first.close();
    e.open_session(
        SessionSpec {
            key,
            ..spec("c", 0)
        },
        None,
    )
    .unwrap();
}

/// §11.4, T-MGMT-12: BEST_TERMINATING_MATCH for given values returns exactly the filter classify
/// decides with inside that sublayer (inspection callouts and non-matching filters skipped).
#[test]
fn t_mgmt_12_best_terminating_match_is_the_arbitration_oracle() {
    let h = Harness::new();
    let layer = layers::ALE_AUTH_CONNECT_V4;
    let sl = h.sublayer("only", 500);
    let port = |p: u16| Value::Uint16(p);
    h.add_ok(h.build(layer, ActionType::PERMIT).sublayer(sl).weight(1));
    h.add_ok(
        h.build(layer, ActionType::BLOCK)
            .sublayer(sl)
            .weight(50)
            .when("IP_REMOTE_PORT", port(80)),
    );
    h.add_ok(
        h.build(layer, ActionType::PERMIT)
            .sublayer(sl)
            .weight(90)
            .when("IP_REMOTE_PORT", port(443)),
    );
    h.add_ok(
        h.build(layer, ActionType::BLOCK)
            .sublayer(sl)
            .weight(70)
            .when("IP_PROTOCOL", Value::Uint8(17)),
    );
    let log = ScriptedCallout::behaving(Behaviour::Continue).build();
    h.callout_filter(layer, sl, 1000, ActionType::CALLOUT_INSPECTION, &log);
    let mut s = open(h.engine(), "oracle", 0);
    for (proto, p) in [(6u8, 80u16), (6, 443), (17, 443), (17, 53), (6, 22)] {
        let given = vec![
            (
                condition_by_name("IP_PROTOCOL").unwrap(),
                Value::Uint8(proto),
            ),
            (condition_by_name("IP_REMOTE_PORT").unwrap(), port(p)),
        ];
        let best = s
            .filters(&FilterEnumTemplate {
                layer: Some(layer),
                sublayer: Some(sl),
                flags: FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH,
                values: given.clone(),
                ..FilterEnumTemplate::default()
            })
            .unwrap();
        let vals = h.values(
            layer,
            &[
                ("IP_PROTOCOL", Value::Uint8(proto)),
                ("IP_REMOTE_PORT", port(p)),
            ],
        );
        let (r, _) = h.classify(layer, vals);
        assert_eq!(best.len(), 1, "{proto}/{p}");
        assert_eq!(Some(best[0].filter_id()), r.deciding_filter, "{proto}/{p}");
    }
    // A template without a layer cannot say which values apply.
    let bad = FilterEnumTemplate {
        flags: FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH,
        ..FilterEnumTemplate::default()
    };
    assert_eq!(s.filters(&bad).unwrap_err().code(), 0x8032_0035);
}

/// §11.3: persistent objects through a session reach the persist hook at commit, in order, and a
/// hook failure aborts the whole transaction.
#[test]
fn persistent_changes_reach_the_hook_and_a_failing_hook_aborts() {
    use std::sync::Mutex;
    use wfp_core::engine::{PersistHook, PersistentChange};

    struct Log(Mutex<Vec<PersistentChange>>, bool);
    impl PersistHook for Log {
        fn persist(&self, changes: &[PersistentChange]) -> Result<(), String> {
            if self.1 {
                return Err("disk full".into());
            }
            self.0.lock().unwrap().extend_from_slice(changes);
            Ok(())
        }
    }
    let h = Harness::new();
    let e = h.engine();
    let ok = Log(Mutex::new(Vec::new()), false);
    let mut s = e.open_session(spec("p", 0), Some(&ok)).unwrap();
    s.begin(0).unwrap();
    let p = s
        .add_provider(ProviderSpec {
            name: "p".into(),
            flags: PROVIDER_FLAG_PERSISTENT,
            ..ProviderSpec::default()
        })
        .unwrap();
    let sl = s
        .add_sublayer(sublayer("sl", SUBLAYER_FLAG_PERSISTENT))
        .unwrap();
    let mut f = block("f");
    f.flags = FilterFlags::PERSISTENT;
    f.sublayer = sl;
    f.provider = Some(p);
    s.add_filter(f).unwrap();
    s.add_filter(block("static, not persisted")).unwrap();
    s.commit().unwrap();
    let log = ok.0.lock().unwrap().clone();
    assert_eq!(log.len(), 3);
    let PersistentChange::AddFilter(stored) = &log[2] else {
        panic!("{log:?}")
    };
    assert!(!stored.key.is_null(), "the assigned key is stored");
    drop(s);
    let failing = Log(Mutex::new(Vec::new()), true);
    let mut s = e.open_session(spec("q", 0), Some(&failing)).unwrap();
    let mut g = block("g");
    g.flags = FilterFlags::PERSISTENT;
    g.sublayer = sl;
    let before = e.filters().len();
    assert_eq!(s.add_filter(g).unwrap_err().code(), 0x8000_4005);
    assert_eq!(e.filters().len(), before);
    assert_eq!(
        s.delete(ObjectRef::Filter(stored.key)).unwrap_err().code(),
        0x8000_4005
    );
    assert_eq!(e.filters().len(), before);
}
