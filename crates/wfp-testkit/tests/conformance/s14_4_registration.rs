//! §14.4 Callout registration, unregistered callouts, notify (T-REG-1 … T-REG-15), plus brief
//! decision 4's panicking callout. T-REG-13 also exists as a unit test inside wfp-core
//! (`engine/registry.rs`, with a test hook holding the key busy); the engine-level version here
//! makes the second caller race a real unregister that is waiting for an in-flight classify.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;

use wfp_core::callout::CalloutRegistration;
use wfp_core::NetEventKind;
use wfp_testkit::prelude::*;
use wfp_testkit::{quiet_panics, CalloutImpl, Gate};

const T: LayerId = layers::INBOUND_TRANSPORT_V4;

/// A fresh sublayer holding one callout filter of `action` backed by `imp` (weight 10), with a
/// static PERMIT below it (weight 1). Returns (harness, callout filter, permit filter, callout id).
fn callout_over_permit(
    action: ActionType,
    imp: impl Into<CalloutImpl>,
    flags: FilterFlags,
) -> (Harness, FilterId, FilterId, CalloutId) {
    let h = Harness::new();
    let sl = h.sublayer("reg", 1);
    let (f, id) = h.callout_filter_with(T, sl, 10, action, imp, |b| b.flags(flags));
    let permit = h.filter(T, sl, 1, ActionType::PERMIT);
    (h, f, permit, id)
}

/// §14.4 T-REG-1 (§5.2): registering a key twice → STATUS_FWP_ALREADY_EXISTS.
#[test]
fn t_reg_1_register_twice_is_already_exists() {
    let h = Harness::new();
    let handle = h.callout(T, Behaviour::Permit);
    assert_eq!(
        h.register(handle, Behaviour::Block),
        Err(Status::FWP_ALREADY_EXISTS)
    );
    assert_eq!(Status::FWP_ALREADY_EXISTS.0, 0xC022_0009);
}

/// §14.4 T-REG-2 (§5.4): a TERMINATING filter whose callout was never registered acts as a
/// static hard BLOCK.
#[test]
fn t_reg_2_unregistered_terminating_acts_as_block() {
    let (h, f, _, _) = callout_over_permit(
        ActionType::CALLOUT_TERMINATING,
        CalloutImpl::Unregistered,
        FilterFlags::NONE,
    );
    let (_, t) = classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Hard), by f);
    assert_eq!(
        t.steps[0].outcome,
        StepOutcome::Unregistered {
            action: ActionType::BLOCK
        }
    );
    assert_eq!(t.steps.len(), 1);
}

/// §14.4 T-REG-3 (§5.4): with PERMIT_IF_CALLOUT_UNREGISTERED it acts as a (soft) static PERMIT.
#[test]
fn t_reg_3_permit_if_callout_unregistered() {
    let (h, f, _, _) = callout_over_permit(
        ActionType::CALLOUT_TERMINATING,
        CalloutImpl::Unregistered,
        FilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED,
    );
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Permit(Soft), by f);
}

/// §14.4 T-REG-4 (§5.4): an unregistered INSPECTION filter is ignored; the lower filter decides.
#[test]
fn t_reg_4_unregistered_inspection_is_ignored() {
    let (h, f, permit, _) = callout_over_permit(
        ActionType::CALLOUT_INSPECTION,
        CalloutImpl::Unregistered,
        FilterFlags::NONE,
    );
    let (_, t) = classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Permit(Soft), by permit);
    assert_eq!(t.steps[0].filter_id, f);
    assert_eq!(t.steps[0].outcome, StepOutcome::SkippedUnregistered);
}

/// §14.4 T-REG-5 (§5.4): an unregistered UNKNOWN filter acts as BLOCK.
#[test]
fn t_reg_5_unregistered_unknown_acts_as_block() {
    let (h, f, _, _) = callout_over_permit(
        ActionType::CALLOUT_UNKNOWN,
        CalloutImpl::Unregistered,
        FilterFlags::NONE,
    );
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Hard), by f);
}

/// §14.4 T-REG-6 (§5.4, [I] error code): PERMIT_IF_CALLOUT_UNREGISTERED on a PERMIT or an
/// INSPECTION filter is rejected with FWP_E_INVALID_FLAGS.
#[test]
fn t_reg_6_permit_if_unregistered_needs_terminating_or_unknown() {
    let h = Harness::new();
    let e = h
        .add(
            h.build(T, ActionType::PERMIT)
                .flags(FilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED),
        )
        .unwrap_err();
    assert_eq!(e.code(), 0x8032_001E, "{e}");
    let c = h.management_callout(T);
    let e = h
        .add(
            h.build(T, ActionType::CALLOUT_INSPECTION)
                .callout(c.key)
                .flags(FilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED),
        )
        .unwrap_err();
    assert_eq!(e.code(), 0x8032_001E, "{e}");
    assert!(h.engine().filters().is_empty());
}

/// §14.4 T-REG-7 (§3.2): a filter added after registration is announced with ADD_FILTER (with its
/// key) before it is active; the context stored there is what later classifies see.
#[test]
fn t_reg_7_add_notify_before_active_and_context_visible() {
    let h = Harness::new();
    let sl = h.sublayer("reg", 1);
    let engine = Arc::downgrade(h.engine());
    let seen_during_add: Arc<Mutex<Option<ActionType>>> = Arc::default();
    let seen = seen_during_add.clone();
    let c = ScriptedCallout::returning(ActionType::PERMIT, false)
        .on_notify(move |kind, _, filter| {
            if kind == NotifyType::AddFilter {
                filter.context = 0xC0FFEE;
                if let Some(e) = engine.upgrade() {
                    let v = TCP_TEMPL.into_values(T);
                    let r = e.classify(T, &v, &Default::default(), &mut Default::default(), None);
                    *seen.lock().unwrap() = Some(r.action);
                }
            }
            Status::SUCCESS
        })
        .build();
    let handle = h.callout(T, &c);
    let f = h.add_ok(
        h.build(T, ActionType::CALLOUT_TERMINATING)
            .sublayer(sl)
            .callout(handle.key),
    );
    let key = h.engine().filter(f).unwrap().key();
    let notes = c.notifications();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].kind, NotifyType::AddFilter);
    assert_eq!(notes[0].filter_key, Some(key));
    assert_eq!(notes[0].filter_id, f);
    assert_eq!(
        *seen_during_add.lock().unwrap(),
        Some(ActionType::NONE_NO_MATCH),
        "the filter must not be active while ADD_FILTER runs"
    );

    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Permit(Soft), by f);
    assert_eq!(c.invocations()[0].filter_context, 0xC0FFEE);
}

/// §14.4 T-REG-8 (§3.2): no ADD_FILTER for filters that existed before registration; DELETE_FILTER
/// (with a NULL key) is still sent for them.
#[test]
fn t_reg_8_no_add_for_preexisting_filter_but_delete_is_sent() {
    let h = Harness::new();
    let handle = h.management_callout(T);
    let f = h.add_ok(
        h.build(T, ActionType::CALLOUT_TERMINATING)
            .callout(handle.key),
    );
    let c = ScriptedCallout::passive().build();
    h.register(handle, &c).unwrap();
    assert!(c.notifications().is_empty());
    h.delete(f);
    let notes = c.notifications();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].kind, NotifyType::DeleteFilter);
    assert_eq!(notes[0].filter_key, None);
    assert_eq!(notes[0].filter_id, f);
}

/// §14.4 T-REG-9 (§3.3): an ADD_FILTER failure refuses the filter:
/// FWP_E_CALLOUT_NOTIFICATION_FAILED (kernel STATUS_FWP_CALLOUT_NOTIFICATION_FAILED).
#[test]
fn t_reg_9_add_notify_failure_refuses_filter() {
    let h = Harness::new();
    let c = ScriptedCallout::passive()
        .on_notify(|kind, _, _| {
            if kind == NotifyType::AddFilter {
                Status::INSUFFICIENT_RESOURCES
            } else {
                Status::SUCCESS
            }
        })
        .build();
    let handle = h.callout(T, &c);
    let e = h
        .add(
            h.build(T, ActionType::CALLOUT_TERMINATING)
                .callout(handle.key),
        )
        .unwrap_err();
    assert_eq!(e.code(), 0x8032_0037, "{e}");
    assert_eq!(e.kernel_status(), Status::FWP_CALLOUT_NOTIFICATION_FAILED);
    assert!(h.engine().filters().is_empty());
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => NoMatch);
    assert_eq!(c.invocation_count(), 0);
}

/// §14.4 T-REG-10 (§3.3): a DELETE_FILTER failure does not keep the filter.
#[test]
fn t_reg_10_delete_notify_failure_still_deletes() {
    let h = Harness::new();
    let c = ScriptedCallout::returning(ActionType::BLOCK, true)
        .on_notify(|kind, _, _| {
            if kind == NotifyType::DeleteFilter {
                Status::UNSUCCESSFUL
            } else {
                Status::SUCCESS
            }
        })
        .build();
    let handle = h.callout(T, &c);
    let f = h.add_ok(
        h.build(T, ActionType::CALLOUT_TERMINATING)
            .callout(handle.key),
    );
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Hard), by f);
    h.delete(f);
    assert!(h.engine().filter(f).is_none());
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => NoMatch);
    let kinds: Vec<_> = c
        .notifications()
        .iter()
        .map(|n| (n.kind, n.status))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (NotifyType::AddFilter, Status::SUCCESS),
            (NotifyType::DeleteFilter, Status::UNSUCCESSFUL)
        ]
    );
}

/// §14.4 T-REG-11 (§3.2): ADD_FILTER_POST_COMMIT goes only to callouts registered with
/// ENABLE_COMMIT_ADD_NOTIFY, and only after the transaction commits (never after an abort).
#[test]
fn t_reg_11_post_commit_only_with_flag_and_after_commit() {
    let h = Harness::new();
    let plain = ScriptedCallout::passive().build();
    let flagged = ScriptedCallout::passive()
        .with_flags(CalloutFlags::ENABLE_COMMIT_ADD_NOTIFY)
        .build();
    let plain_c = h.callout(T, &plain);
    let flagged_c = h.callout(T, &flagged);

    let mut txn = h.engine().begin();
    let fp = txn
        .add_filter(
            h.build(T, ActionType::CALLOUT_INSPECTION)
                .callout(plain_c.key)
                .spec(),
        )
        .unwrap();
    let ff = txn
        .add_filter(
            h.build(T, ActionType::CALLOUT_INSPECTION)
                .callout(flagged_c.key)
                .spec(),
        )
        .unwrap();
    let kinds = |c: &ScriptedCallout| c.notifications().iter().map(|n| n.kind).collect::<Vec<_>>();
    assert_eq!(
        kinds(&flagged),
        vec![NotifyType::AddFilter],
        "before commit"
    );
    txn.commit();
    assert_eq!(kinds(&plain), vec![NotifyType::AddFilter]);
    assert_eq!(
        kinds(&flagged),
        vec![NotifyType::AddFilter, NotifyType::AddFilterPostCommit]
    );
    let post = &flagged.notifications()[1];
    assert_eq!(post.filter_id, ff);
    assert_eq!(post.filter_key, Some(h.engine().filter(ff).unwrap().key()));
    assert!(h.engine().filter(fp).is_some());

    // Aborted: ADD then DELETE, no POST_COMMIT.
    flagged.clear_records();
    let mut txn = h.engine().begin();
    txn.add_filter(
        h.build(T, ActionType::CALLOUT_INSPECTION)
            .callout(flagged_c.key)
            .spec(),
    )
    .unwrap();
    txn.abort();
    assert_eq!(
        kinds(&flagged),
        vec![NotifyType::AddFilter, NotifyType::DeleteFilter]
    );
}

/// §14.4 T-REG-11 (§3.2): a filter added and deleted inside the same committed transaction never
/// exists after the commit, so ADD_FILTER_POST_COMMIT must not be sent for it — least of all after
/// its DELETE_FILTER (the callout has freed its per-filter context by then).
#[test]
fn t_reg_11_no_post_commit_for_filter_deleted_in_same_transaction() {
    let h = Harness::new();
    let flagged = ScriptedCallout::passive()
        .with_flags(CalloutFlags::ENABLE_COMMIT_ADD_NOTIFY)
        .build();
    let c = h.callout(T, &flagged);
    let mut txn = h.engine().begin();
    let f = txn
        .add_filter(
            h.build(T, ActionType::CALLOUT_INSPECTION)
                .callout(c.key)
                .spec(),
        )
        .unwrap();
    txn.delete_filter(f).unwrap();
    txn.commit();
    let kinds: Vec<_> = flagged.notifications().iter().map(|n| n.kind).collect();
    assert_eq!(kinds, vec![NotifyType::AddFilter, NotifyType::DeleteFilter]);
}

/// §14.4 T-REG-12 (§5.3): unregistering a callout that was never registered →
/// STATUS_FWP_CALLOUT_NOT_FOUND (by id and by key; also for a management-only callout).
#[test]
fn t_reg_12_unregister_unknown_is_not_found() {
    let h = Harness::new();
    assert_eq!(h.unregister(CalloutId(4242)), Status::FWP_CALLOUT_NOT_FOUND);
    let mgmt_only = h.management_callout(T);
    assert_eq!(h.unregister(mgmt_only.id), Status::FWP_CALLOUT_NOT_FOUND);
    assert_eq!(
        h.engine()
            .unregister_callout_by_key(&Guid::from_name("t", "never")),
        Status::FWP_CALLOUT_NOT_FOUND
    );
    assert_eq!(Status::FWP_CALLOUT_NOT_FOUND.0, 0xC022_0001);
}

/// §14.4 T-REG-13 (§5.3): while one thread's unregister waits for an in-flight classify, a second
/// unregister or register of the same callout → STATUS_FWP_IN_USE.
#[test]
fn t_reg_13_unregister_during_unregister_is_in_use() {
    let h = Harness::new();
    let gate = Gate::new();
    let g2 = gate.clone();
    let c = ScriptedCallout::new(move |_, out| {
        g2.pass();
        out.action_type = ActionType::PERMIT;
    })
    .build();
    let sl = h.sublayer("reg", 1);
    let (_, id) = h.callout_filter(T, sl, 1, ActionType::CALLOUT_TERMINATING, &c);
    let key = h
        .engine()
        .callouts()
        .into_iter()
        .find(|o| o.id == id)
        .unwrap()
        .spec
        .key;

    let classifier = h.spawn_classify(T, TCP_TEMPL, Default::default(), &gate);
    assert!(gate.wait_entered(), "callout never invoked");
    let engine = h.engine().clone();
    let unregisterer = thread::spawn(move || engine.unregister_callout(id));
    // Wait until the first unregister has started (the callout stops being "registered").
    let mut spins = 0u64;
    while h.engine().is_callout_registered(id) {
        spins += 1;
        assert!(spins < 5_000_000, "unregister never started");
        thread::yield_now();
    }
    assert_eq!(h.unregister(id), Status::FWP_IN_USE);
    let again = CalloutRegistration::new(key, CalloutFlags::default(), c.clone());
    assert_eq!(
        h.engine().register_callout(again).unwrap_err(),
        Status::FWP_IN_USE
    );
    gate.release();
    let r = classifier.join().unwrap();
    assert_eq!(r.action, ActionType::PERMIT);
    assert_eq!(unregisterer.join().unwrap(), Status::SUCCESS);
    assert_eq!(Status::FWP_IN_USE.0, 0xC022_000A);
}

/// §14.4 T-REG-14 (§5.3, §13.2): unregister succeeds while filters still reference the callout;
/// afterwards the filters act per §5.4 and the callout is never invoked again.
#[test]
fn t_reg_14_unregister_with_filters_then_unregistered_behaviour() {
    for (action, flags, expected) in [
        (
            ActionType::CALLOUT_TERMINATING,
            FilterFlags::NONE,
            Block(Hard),
        ),
        (
            ActionType::CALLOUT_TERMINATING,
            FilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED,
            Permit(Soft),
        ),
        (
            ActionType::CALLOUT_INSPECTION,
            FilterFlags::NONE,
            Permit(Soft),
        ),
    ] {
        let c = ScriptedCallout::behaving(Behaviour::BlockSoft).build();
        let (h, f, permit, id) = callout_over_permit(action, &c, flags);
        let before = if action == ActionType::CALLOUT_INSPECTION {
            Permit(Soft)
        } else {
            Block(Soft)
        };
        h.expect(T, TCP_TEMPL, before);
        assert_eq!(c.invocation_count(), 1);
        assert_eq!(h.unregister(id), Status::SUCCESS);
        assert!(!h.engine().is_callout_registered(id));
        let (r, _) = h.expect(T, TCP_TEMPL, expected);
        let decider = if action == ActionType::CALLOUT_INSPECTION {
            permit
        } else {
            f
        };
        assert_eq!(r.deciding_filter, Some(decider));
        assert_eq!(c.invocation_count(), 1, "no invocation after unregister");
    }
}

/// §14.4 T-REG-15 (§5.4): deleting the management callout while a filter references it →
/// FWP_E_IN_USE; after the filter is gone it succeeds.
#[test]
fn t_reg_15_delete_referenced_callout_is_in_use() {
    let h = Harness::new();
    let c = h.management_callout(T);
    let f = h.add_ok(h.build(T, ActionType::CALLOUT_TERMINATING).callout(c.key));
    let e = h.engine().delete_callout(&c.key).unwrap_err();
    assert_eq!(e.code(), 0x8032_000A, "{e}");
    h.delete(f);
    h.engine().delete_callout(&c.key).unwrap();
}

/// Brief decision 4: a panicking callout is contained, counted, reported, and treated as
/// unregistered for that classify (TERMINATING → hard BLOCK, with PERMIT_IF_CALLOUT_UNREGISTERED →
/// PERMIT, INSPECTION → skipped).
#[test]
fn decision_4_panicking_callout_is_treated_as_unregistered() {
    quiet_panics();
    let (h, f, _, id) = callout_over_permit(
        ActionType::CALLOUT_TERMINATING,
        CalloutImpl::Panicking,
        FilterFlags::NONE,
    );
    let (_, t) = classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Block(Hard), by f);
    assert_eq!(t.steps[0].outcome, StepOutcome::Panicked);
    assert_eq!(h.engine().callout_panics(id), 1);
    assert_eq!(h.engine().stats().callout_panics.load(Ordering::Relaxed), 1);
    let events = h.engine().drain_net_events();
    // The panic, then the drop of the hard BLOCK it stood for (§11.5).
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].kind, NetEventKind::CalloutPanic);
    assert_eq!(events[0].filter_id, Some(f));
    assert_eq!(events[1].kind, NetEventKind::ClassifyDrop);
    assert_eq!(events[1].filter_id, Some(f));
    assert!(h.engine().is_callout_registered(id), "still registered");

    let (h, f, _, _) = callout_over_permit(
        ActionType::CALLOUT_UNKNOWN,
        CalloutImpl::Panicking,
        FilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED,
    );
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Permit(Soft), by f);

    let (h, _, permit, _) = callout_over_permit(
        ActionType::CALLOUT_INSPECTION,
        CalloutImpl::Panicking,
        FilterFlags::NONE,
    );
    classify!(h, at INBOUND_TRANSPORT_V4, TCP_TEMPL => Permit(Soft), by permit);
}

/// Brief decision 4 / reliability promise: a notifyFn that panics on ADD_FILTER is contained and
/// counted; the add is refused as a failed notification (§3.3), and nothing else changes.
#[test]
fn decision_4_panicking_add_notify_refuses_filter() {
    quiet_panics();
    let h = Harness::new();
    let c = ScriptedCallout::passive()
        .on_notify(|_, _, _| panic!("{}", wfp_testkit::PANIC_MARKER))
        .build();
    let handle = h.callout(T, &c);
    let e = h
        .add(
            h.build(T, ActionType::CALLOUT_TERMINATING)
                .callout(handle.key),
        )
        .unwrap_err();
    assert_eq!(e.code(), 0x8032_0037, "{e}");
    assert!(h.engine().filters().is_empty());
    assert_eq!(
        h.engine().stats().callback_panics.load(Ordering::Relaxed),
        1
    );
    let events = h.engine().drain_net_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, NetEventKind::CallbackPanic);
    assert!(h.engine().is_callout_registered(handle.id));
}
