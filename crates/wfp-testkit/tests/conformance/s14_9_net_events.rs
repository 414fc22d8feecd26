//! §14.9 T-MGMT-13 and §11.5 net events at the engine: CLASSIFY_DROP (3) with the blocking filter
//! and layer, CLASSIFY_ALLOW (6) only with its keyword, silence for BLOCK + ABSORB, the bounded
//! ring and its drop counter, enumeration with a time window and conditions. Security-log audit
//! (5152) has no equivalent here.

use std::sync::atomic::Ordering;

use wfp_core::constants::{net_event_keyword, net_event_type};
use wfp_core::{EngineOptions, NetEventEnumTemplate, NetEventKind};
use wfp_testkit::prelude::*;

const IN: LayerId = layers::INBOUND_TRANSPORT_V4;

fn unicast_to(port: u16) -> TransportV4 {
    TransportV4 {
        local_port: port,
        ..TCP_TEMPL
    }
}

/// A static BLOCK for inbound TCP to local port `port`, in its own sublayer.
fn block_port(h: &Harness, layer: LayerId, port: u16) -> FilterId {
    let sl = h.sublayer("block", 10);
    h.add_ok(
        h.build(layer, ActionType::BLOCK)
            .sublayer(sl)
            .when("IP_LOCAL_PORT", Value::Uint16(port)),
    )
}

/// A terminating callout filter at `layer` whose callout returns a hard BLOCK, with ABSORB when
/// `absorb` (shared by T-ARB-15, T-CL-5 and T-MGMT-13).
pub(crate) fn block_callout(
    h: &Harness,
    layer: LayerId,
    absorb: bool,
) -> (FilterId, std::sync::Arc<ScriptedCallout>) {
    let sl = h.sublayer("callout-block", 10);
    let flags = if absorb {
        ClassifyOutFlags::ABSORB
    } else {
        ClassifyOutFlags::default()
    };
    let c = ScriptedCallout::forcing(ActionType::BLOCK, true, flags).build();
    let (f, _) = h.callout_filter(layer, sl, 1, ActionType::CALLOUT_TERMINATING, &c);
    (f, c)
}

/// Drains the net events and checks them: none when `absorb` (§11.5: an absorbed drop is silent),
/// else exactly one CLASSIFY_DROP naming `filter` at `layer`. Returns what was drained.
pub(crate) fn expect_drop_unless_absorbed(
    h: &Harness,
    absorb: bool,
    filter: FilterId,
    layer: LayerId,
) -> Vec<wfp_core::NetEvent> {
    let events = h.engine().drain_net_events();
    if absorb {
        assert!(events.is_empty(), "{events:?}");
    } else {
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, NetEventKind::ClassifyDrop);
        assert_eq!(events[0].filter_id, Some(filter));
        assert_eq!(events[0].layer, layer);
    }
    events
}

/// §14.9 T-MGMT-13: collection on (the default), a static BLOCK drops an inbound unicast packet:
/// one FWPM_NET_EVENT_TYPE_CLASSIFY_DROP (3) naming the blocking filter and the layer; a packet
/// the policy does not block records nothing; a BLOCK + ABSORB drop records nothing.
#[test]
fn t_mgmt_13_static_block_records_classify_drop() {
    let h = Harness::new();
    let block = block_port(&h, IN, 23);
    classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(80) => NoMatch);
    assert!(h.engine().drain_net_events().is_empty());
    let (r, _) = classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(23) => Block(Hard), by block);
    assert!(!r.absorbed());
    let events = h.engine().drain_net_events();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.kind, NetEventKind::ClassifyDrop);
    assert_eq!(e.kind.fwpm_type(), Some(3));
    assert_eq!(e.kind.fwpm_type(), Some(net_event_type::CLASSIFY_DROP));
    assert_eq!(e.filter_id, Some(block));
    assert_eq!(e.layer, IN);
    assert_eq!(e.seq, 1);
    let d = e.decision.expect("a drop carries the decision summary");
    assert_eq!(d.hardness, Hard);
    assert!(!d.vetoed);
    assert_eq!(d.filters_considered, 1);

    // The same drop by a callout's BLOCK + ABSORB is silent.
    let h = Harness::new();
    let (f, _) = block_callout(&h, IN, true);
    let (r, _) = classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(23) => Block(Hard), by f);
    assert!(r.absorbed());
    expect_drop_unless_absorbed(&h, true, f, IN);
}

/// §11.5: CLASSIFY_ALLOW (6) is recorded only with FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW; with
/// collection off (FWPM_ENGINE_COLLECT_NET_EVENTS = 0) nothing is recorded at all.
#[test]
fn classify_allow_needs_its_keyword_and_collection_can_be_off() {
    let permit_setup = |h: &Harness| {
        let sl = h.sublayer("permit", 10);
        h.filter(IN, sl, 1, ActionType::PERMIT)
    };
    let h = Harness::new();
    permit_setup(&h);
    classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(80) => Permit(Soft));
    assert!(h.engine().drain_net_events().is_empty());

    let h = Harness::with_options(EngineOptions {
        net_event_keywords: net_event_keyword::CLASSIFY_ALLOW,
        ..EngineOptions::default()
    });
    let permit = permit_setup(&h);
    classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(80) => Permit(Soft));
    let events = h.engine().drain_net_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, NetEventKind::ClassifyAllow);
    assert_eq!(events[0].kind.fwpm_type(), Some(6));
    assert_eq!(events[0].filter_id, Some(permit));
    assert_eq!(events[0].decision.map(|d| d.hardness), Some(Soft));

    let h = Harness::with_options(EngineOptions {
        collect_net_events: false,
        net_event_keywords: net_event_keyword::CLASSIFY_ALLOW,
        ..EngineOptions::default()
    });
    permit_setup(&h);
    let block = block_port(&h, IN, 23);
    classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(80) => Permit(Soft));
    classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(23) => Block(Hard), by block);
    assert!(h.engine().drain_net_events().is_empty());
    assert!(h
        .engine()
        .enum_net_events(&NetEventEnumTemplate::default())
        .is_empty());
}

/// §11.5 "the log is circular": the ring keeps the newest `net_event_capacity` events; an event
/// pushed out before any drain returned it is counted in `net_events_dropped`, one already drained
/// is not.
#[test]
fn ring_is_bounded_and_counts_lost_events() {
    let h = Harness::with_options(EngineOptions {
        net_event_capacity: 4,
        ..EngineOptions::default()
    });
    let block = block_port(&h, IN, 23);
    let dropped = || {
        h.engine()
            .stats()
            .net_events_dropped
            .load(Ordering::Relaxed)
    };
    for _ in 0..10 {
        classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(23) => Block(Hard), by block);
    }
    assert_eq!(dropped(), 6);
    let events = h.engine().drain_net_events();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [7, 8, 9, 10]);
    assert!(h.engine().drain_net_events().is_empty(), "drained once");
    // Drained events may be pushed out without loss; they stay enumerable until then.
    assert_eq!(
        h.engine()
            .enum_net_events(&NetEventEnumTemplate::default())
            .len(),
        4
    );
    for _ in 0..4 {
        classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(23) => Block(Hard), by block);
    }
    assert_eq!(dropped(), 6);
    classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(23) => Block(Hard), by block);
    assert_eq!(dropped(), 7);
    let seqs: Vec<u64> = h
        .engine()
        .drain_net_events()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [12, 13, 14, 15]);
}

/// §11.5 enumeration (FwpmNetEventEnum with a template): a time window over the time the data
/// path passed in, and conditions on layer, filter, type and sequence; enumeration leaves the ring
/// as it was.
#[test]
fn enumeration_filters_by_time_window_layer_filter_and_kind() {
    let h = Harness::new();
    let inbound = block_port(&h, IN, 23);
    let outbound = block_port(&h, layers::OUTBOUND_TRANSPORT_V4, 23);
    // Before any time is set, events carry none and never match a window.
    classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(23) => Block(Hard), by inbound);
    h.engine().set_net_event_time(100);
    classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(23) => Block(Hard), by inbound);
    h.engine().set_net_event_time(200);
    classify!(h, at OUTBOUND_TRANSPORT_V4, unicast_to(23) => Block(Hard), by outbound);
    h.engine().set_net_event_time(300);
    classify!(h, at INBOUND_TRANSPORT_V4, unicast_to(23) => Block(Hard), by inbound);

    let e = h.engine();
    let seqs = |t: NetEventEnumTemplate| -> Vec<u64> {
        e.enum_net_events(&t).iter().map(|ev| ev.seq).collect()
    };
    assert_eq!(seqs(NetEventEnumTemplate::default()), [1, 2, 3, 4]);
    let all = e.enum_net_events(&NetEventEnumTemplate::default());
    let times: Vec<Option<u64>> = all.iter().map(|ev| ev.time).collect();
    assert_eq!(times, [None, Some(100), Some(200), Some(300)]);
    let window = |start, end| NetEventEnumTemplate {
        start_time: start,
        end_time: end,
        ..NetEventEnumTemplate::default()
    };
    assert_eq!(seqs(window(Some(150), Some(300))), [3, 4]);
    assert_eq!(seqs(window(Some(100), Some(100))), [2]);
    assert_eq!(seqs(window(None, Some(250))), [2, 3]);
    assert_eq!(seqs(window(Some(301), None)), Vec::<u64>::new());
    assert_eq!(
        seqs(NetEventEnumTemplate {
            layer: Some(layers::OUTBOUND_TRANSPORT_V4),
            ..NetEventEnumTemplate::default()
        }),
        [3]
    );
    assert_eq!(
        seqs(NetEventEnumTemplate {
            filter_id: Some(inbound),
            start_time: Some(0),
            ..NetEventEnumTemplate::default()
        }),
        [2, 4]
    );
    assert_eq!(
        seqs(NetEventEnumTemplate {
            kinds: vec![NetEventKind::Veto],
            ..NetEventEnumTemplate::default()
        }),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(NetEventEnumTemplate {
            kinds: vec![NetEventKind::ClassifyDrop],
            after_seq: Some(2),
            ..NetEventEnumTemplate::default()
        }),
        [3, 4]
    );
    // Enumeration is a snapshot: the drain still sees everything.
    assert_eq!(e.drain_net_events().len(), 4);
}

/// A BLOCK that records a drop event is not reusable by a data path's cache (each dropped packet
/// must record its event); with collection off the same result is reusable again.
#[test]
fn recorded_drops_are_not_cacheable() {
    for collect in [true, false] {
        let h = Harness::with_options(EngineOptions {
            collect_net_events: collect,
            ..EngineOptions::default()
        });
        block_port(&h, IN, 23);
        let values = unicast_to(23).into_values(IN);
        let mut data = wfp_core::LayerData::default();
        let (r, reuse) =
            h.engine()
                .classify_cacheable(IN, &values, &wfp_core::Metadata::default(), &mut data);
        assert_eq!(r.action, ActionType::BLOCK);
        assert_eq!(reuse.is_some(), !collect);
        assert_eq!(h.engine().drain_net_events().len(), usize::from(collect));
    }
}
