//! `wfp.stream-monitor` (msnmntr): the FLOW_ESTABLISHED callout associates a context keyed to the
//! STREAM layer and the stream callout, which is CONDITIONAL_ON_FLOW (T-FLOW-1).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{add_filter, established_v4, install, meta, stream_v4, Installed, LOCAL, REMOTE};
use wfp_callouts::stream_monitor::StreamMonitorStream;
use wfp_callouts::{builtin_key, Clock, StreamMonitor, StreamMonitorLog};
use wfp_core::callout::{LayerData, StreamIoPacket};
use wfp_core::catalogue::layers;
use wfp_core::classify::StepOutcome;
use wfp_core::constants::StreamFlags;
use wfp_core::{ActionType, CalloutFlags, CalloutRegistration, CalloutSpec, Engine, Trace};

struct Setup {
    engine: Engine,
    clock: Arc<Clock>,
    log: Arc<StreamMonitorLog>,
    stream: Installed,
}

fn setup(capture: usize) -> Setup {
    let engine = Engine::default();
    let clock = Arc::new(Clock::new());
    let log = Arc::new(StreamMonitorLog::new(clock.clone()));
    install(
        &engine,
        "monitor-flow",
        layers::ALE_FLOW_ESTABLISHED_V4,
        Arc::new(StreamMonitor::new(log.clone())),
        CalloutFlags::default(),
        false,
        ActionType::CALLOUT_INSPECTION,
    );
    let stream = install(
        &engine,
        "monitor-stream",
        layers::STREAM_V4,
        Arc::new(StreamMonitorStream::new(log.clone(), capture)),
        CalloutFlags::CONDITIONAL_ON_FLOW,
        true,
        ActionType::CALLOUT_INSPECTION,
    );
    Setup {
        engine,
        clock,
        log,
        stream,
    }
}

fn establish(engine: &Engine, flow: u64, protocol: u8) -> ActionType {
    let r = engine.classify(
        layers::ALE_FLOW_ESTABLISHED_V4,
        &established_v4(protocol, 40000 + flow as u16, 443),
        &meta(flow),
        &mut LayerData::None,
        None,
    );
    r.action
}

fn data(engine: &Engine, flow: u64, flags: StreamFlags, bytes: &[u8]) -> Trace {
    let mut trace = Trace::default();
    let r = engine.classify(
        layers::STREAM_V4,
        &stream_v4(40000 + flow as u16, 443),
        &meta(flow),
        &mut LayerData::Stream(StreamIoPacket::new(flags, bytes)),
        Some(&mut trace),
    );
    assert_eq!(
        r.action,
        ActionType::NONE_NO_MATCH,
        "the monitor only observes"
    );
    trace
}

#[test]
fn t_flow_1_only_flows_with_a_context_are_monitored() {
    let s = setup(4);
    s.clock.set(Duration::from_secs(100));
    assert_eq!(establish(&s.engine, 1, 6), ActionType::NONE_NO_MATCH);
    // Flow 2 is never established; flow 3 is UDP (no stream context).
    establish(&s.engine, 3, 17);
    let ctx = s
        .engine
        .flow_context(1, layers::STREAM_V4, s.stream.id)
        .expect("context keyed to STREAM_V4 and the stream callout");
    assert_ne!(ctx, 0);
    assert_eq!(
        s.engine.flow_context(3, layers::STREAM_V4, s.stream.id),
        None
    );

    let t = data(&s.engine, 1, StreamFlags::SEND, b"hello world");
    assert_eq!(t.steps[0].outcome, StepOutcome::Continue);
    data(&s.engine, 1, StreamFlags::RECEIVE, b"HTTP/1.1 200 OK");
    data(&s.engine, 1, StreamFlags::SEND, b"!!");
    for flow in [2, 3] {
        let t = data(&s.engine, flow, StreamFlags::SEND, b"unmonitored");
        assert_eq!(t.steps[0].outcome, StepOutcome::SkippedNoFlowContext);
    }
    assert_eq!(s.log.active(), 1);
    assert!(
        s.log.drain().is_empty(),
        "nothing is reported before the flow ends"
    );

    s.clock.set(Duration::from_secs(103));
    assert_eq!(s.engine.flow_abort(1), 1);
    assert_eq!(s.engine.flow_abort(2), 0);
    assert_eq!(s.engine.flow_abort(3), 0);
    let reports = s.log.drain();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.flow_handle, 1);
    assert_eq!(r.layer, layers::STREAM_V4);
    assert_eq!(r.tuple.local_addr, Some(LOCAL.into()));
    assert_eq!(r.tuple.remote_addr, Some(REMOTE.into()));
    assert_eq!((r.tuple.local_port, r.tuple.remote_port), (40001, 443));
    assert_eq!((r.outbound.bytes, r.outbound.indications), (13, 2));
    assert_eq!(r.outbound.head, b"hell");
    assert_eq!((r.inbound.bytes, r.inbound.indications), (15, 1));
    assert_eq!(r.inbound.head, b"HTTP");
    assert_eq!(r.duration(), Duration::from_secs(3));
    assert_eq!(r.app_id.as_deref(), Some(b"/usr/bin/curl".as_slice()));
    assert_eq!(s.log.active(), 0);
    assert_eq!(s.engine.flow_context_count(), 0);
    assert!(s.log.drain().is_empty());
}

#[test]
fn stream_callout_is_found_by_the_builtin_key_without_notifications() {
    let engine = Engine::default();
    let log = Arc::new(StreamMonitorLog::new(Arc::new(Clock::new())));
    install(
        &engine,
        "monitor-flow",
        layers::ALE_FLOW_ESTABLISHED_V4,
        Arc::new(StreamMonitor::new(log.clone())),
        CalloutFlags::default(),
        false,
        ActionType::CALLOUT_INSPECTION,
    );
    // The filter is added before the stream callout registers: no ADD_FILTER notification.
    let key = builtin_key("wfp.stream-monitor.stream", layers::STREAM_V4).unwrap();
    engine
        .add_callout(CalloutSpec {
            key,
            name: "wfp.stream-monitor.stream@STREAM_V4".into(),
            description: String::new(),
            flags: 0,
            provider: None,
            applicable_layer: layers::STREAM_V4,
        })
        .unwrap();
    add_filter(
        &engine,
        "stream",
        layers::STREAM_V4,
        ActionType::CALLOUT_INSPECTION,
        key,
    );
    let id = engine
        .register_callout(CalloutRegistration::new(
            key,
            CalloutFlags::CONDITIONAL_ON_FLOW,
            Arc::new(StreamMonitorStream::new(log.clone(), 8)),
        ))
        .unwrap();
    establish(&engine, 1, 6);
    assert!(engine.flow_context(1, layers::STREAM_V4, id).is_some());
    data(&engine, 1, StreamFlags::SEND, b"abc");
    engine.flow_abort(1);
    assert_eq!(log.drain()[0].outbound.bytes, 3);
}

#[test]
fn stream_callout_can_be_linked_explicitly() {
    let engine = Engine::default();
    let log = Arc::new(StreamMonitorLog::new(Arc::new(Clock::new())));
    install(
        &engine,
        "monitor-flow",
        layers::ALE_FLOW_ESTABLISHED_V4,
        Arc::new(StreamMonitor::new(log.clone())),
        CalloutFlags::default(),
        false,
        ActionType::CALLOUT_INSPECTION,
    );
    let key = wfp_core::Guid::from_name("t", "explicit stream key");
    let id = engine
        .register_callout(CalloutRegistration::new(
            key,
            CalloutFlags::CONDITIONAL_ON_FLOW,
            Arc::new(StreamMonitorStream::new(log.clone(), 8)),
        ))
        .unwrap();
    establish(&engine, 1, 6);
    assert!(engine.flow_context(1, layers::STREAM_V4, id).is_none());
    log.link_stream_callout(layers::STREAM_V4, key);
    establish(&engine, 2, 6);
    assert!(engine.flow_context(2, layers::STREAM_V4, id).is_some());
    engine.flow_abort(2);
    assert_eq!(log.drain().len(), 1);
}

#[test]
fn deleting_the_stream_filter_forgets_the_companion() {
    let s = setup(4);
    s.engine.delete_filter(s.stream.filter).unwrap();
    establish(&s.engine, 1, 6);
    assert_eq!(s.engine.flow_context_count(), 0);
    assert_eq!(s.log.active(), 0);
    let _ = s.stream.key;
}
