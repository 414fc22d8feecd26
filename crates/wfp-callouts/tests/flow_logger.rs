//! `wfp.flow-logger` with its byte counter: records open at FLOW_ESTABLISHED, bytes counted at
//! STREAM / DATAGRAM_DATA, reported exactly once when the flow ends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{datagram_v4, established_v4, install, meta, stream_v4, values, Installed};
use wfp_callouts::{Clock, FlowByteCounter, FlowLog, FlowLogger, Host};
use wfp_core::callout::{LayerData, StreamIoPacket};
use wfp_core::catalogue::layers;
use wfp_core::constants::{Direction, StreamFlags};
use wfp_core::{ActionType, CalloutFlags, Engine, Status, Value};

struct Setup {
    engine: Engine,
    clock: Arc<Clock>,
    log: Arc<FlowLog>,
    /// The ALE_FLOW_ESTABLISHED_V4 registration.
    logger: Installed,
    counters: Vec<Installed>,
}

fn setup(with_counter: bool) -> Setup {
    let engine = Engine::default();
    let clock = Arc::new(Clock::new());
    let log = Arc::new(FlowLog::new(clock.clone()));
    let mut loggers = Vec::new();
    for layer in [
        layers::ALE_FLOW_ESTABLISHED_V4,
        layers::ALE_FLOW_ESTABLISHED_V6,
    ] {
        loggers.push(install(
            &engine,
            "flow-logger",
            layer,
            Arc::new(FlowLogger::new(log.clone())),
            CalloutFlags::default(),
            true,
            ActionType::CALLOUT_INSPECTION,
        ));
    }
    let mut counters = Vec::new();
    if with_counter {
        let counter = Arc::new(FlowByteCounter::new(log.clone()));
        for layer in [
            layers::STREAM_V4,
            layers::STREAM_V6,
            layers::DATAGRAM_DATA_V4,
            layers::DATAGRAM_DATA_V6,
        ] {
            counters.push(install(
                &engine,
                "flow-bytes",
                layer,
                counter.clone(),
                CalloutFlags::CONDITIONAL_ON_FLOW,
                true,
                ActionType::CALLOUT_INSPECTION,
            ));
        }
    }
    Setup {
        engine,
        clock,
        log,
        logger: loggers.swap_remove(0),
        counters,
    }
}

fn establish(engine: &Engine, flow: u64, protocol: u8) {
    let r = engine.classify(
        layers::ALE_FLOW_ESTABLISHED_V4,
        &established_v4(protocol, 5000, 443),
        &meta(flow),
        &mut LayerData::None,
        None,
    );
    assert_eq!(
        r.action,
        ActionType::NONE_NO_MATCH,
        "the logger never decides"
    );
}

fn stream(engine: &Engine, flow: u64, flags: StreamFlags, bytes: &[u8]) {
    engine.classify(
        layers::STREAM_V4,
        &stream_v4(5000, 443),
        &meta(flow),
        &mut LayerData::Stream(StreamIoPacket::new(flags, bytes)),
        None,
    );
}

#[test]
fn tcp_flow_is_reported_exactly_once_with_bytes_and_duration() {
    let s = setup(true);
    s.clock.set(Duration::from_millis(10_000));
    establish(&s.engine, 42, 6);
    assert_eq!(
        s.engine.flow_context_count(),
        2,
        "own context + byte counter"
    );
    stream(&s.engine, 42, StreamFlags::SEND, &[0; 100]);
    stream(&s.engine, 42, StreamFlags::RECEIVE, &[0; 1400]);
    stream(&s.engine, 42, StreamFlags::RECEIVE, &[0; 600]);
    stream(&s.engine, 7, StreamFlags::SEND, &[0; 999]); // not logged
    s.clock.set(Duration::from_millis(12_500));
    assert!(s.log.drain().is_empty());
    assert_eq!(s.engine.flow_abort(42), 2);
    assert_eq!(s.engine.flow_abort(42), 0);
    let recs = s.log.drain();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.flow_handle, 42);
    assert_eq!(r.layer, layers::ALE_FLOW_ESTABLISHED_V4);
    assert_eq!(r.tuple.protocol, 6);
    assert_eq!((r.tuple.local_port, r.tuple.remote_port), (5000, 443));
    assert_eq!(r.direction, Some(Direction::Outbound));
    assert!(r.bytes_counted);
    assert_eq!((r.outbound.bytes, r.outbound.indications), (100, 1));
    assert_eq!((r.inbound.bytes, r.inbound.indications), (2000, 2));
    assert_eq!(r.start, Duration::from_millis(10_000));
    assert_eq!(r.duration(), Duration::from_millis(2_500));
    assert!(s.log.drain().is_empty());
    assert_eq!(s.log.active(), 0);
}

#[test]
fn udp_flow_counts_datagram_payloads_by_direction() {
    let s = setup(true);
    establish(&s.engine, 9, 17);
    for (dir, len) in [
        (Direction::Outbound, 40),
        (Direction::Inbound, 300),
        (Direction::Outbound, 2),
    ] {
        let payload = vec![0u8; len];
        s.engine.classify(
            layers::DATAGRAM_DATA_V4,
            &datagram_v4(5000, 443, dir),
            &meta(9),
            &mut LayerData::Packet(&payload),
            None,
        );
    }
    s.engine.flow_abort(9);
    let r = &s.log.drain()[0];
    assert_eq!((r.outbound.bytes, r.outbound.indications), (42, 2));
    assert_eq!((r.inbound.bytes, r.inbound.indications), (300, 1));
}

#[test]
fn without_the_byte_counter_flows_are_still_reported_once() {
    let s = setup(false);
    establish(&s.engine, 1, 6);
    assert_eq!(s.engine.flow_context_count(), 1);
    assert_eq!(s.engine.flow_abort(1), 1);
    let recs = s.log.drain();
    assert_eq!(recs.len(), 1);
    assert!(!recs[0].bytes_counted);
}

#[test]
fn a_second_flow_established_classify_does_not_duplicate_the_record() {
    let s = setup(true);
    establish(&s.engine, 5, 6);
    establish(&s.engine, 5, 6);
    assert_eq!(s.log.active(), 1);
    s.engine.flow_abort(5);
    assert_eq!(s.log.drain().len(), 1);
}

#[test]
fn the_record_waits_for_the_last_context() {
    let s = setup(true);
    establish(&s.engine, 3, 6);
    assert_eq!(
        s.engine
            .flow_remove_context(3, layers::ALE_FLOW_ESTABLISHED_V4, s.logger.id),
        Status::SUCCESS
    );
    assert!(
        s.log.drain().is_empty(),
        "the byte counter still holds the flow"
    );
    stream(&s.engine, 3, StreamFlags::SEND, b"abc");
    s.engine.flow_abort(3);
    let recs = s.log.drain();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].outbound.bytes, 3);
    let _ = &s.counters;
}

#[test]
fn ipv6_flows_use_the_v6_data_layers() {
    let s = setup(true);
    let local: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let v = values(
        layers::ALE_FLOW_ESTABLISHED_V6,
        &[
            ("IP_PROTOCOL", Value::Uint8(6)),
            ("IP_LOCAL_ADDRESS", Value::ByteArray16(local.octets())),
            ("IP_LOCAL_PORT", Value::Uint16(1234)),
        ],
    );
    s.engine.classify(
        layers::ALE_FLOW_ESTABLISHED_V6,
        &v,
        &meta(8),
        &mut LayerData::None,
        None,
    );
    let stream_v6 = s
        .counters
        .iter()
        .find(|c| s.engine.flow_context(8, layers::STREAM_V6, c.id).is_some());
    assert!(stream_v6.is_some());
    s.engine.classify(
        layers::STREAM_V6,
        &values(layers::STREAM_V6, &[]),
        &meta(8),
        &mut LayerData::Stream(StreamIoPacket::new(StreamFlags::SEND, b"12345")),
        None,
    );
    s.engine.flow_abort(8);
    let r = &s.log.drain()[0];
    assert_eq!(r.tuple.local_addr, Some(local.into()));
    assert_eq!(r.outbound.bytes, 5);
}

#[test]
fn builtins_by_name_report_to_their_hosts_log() {
    let engine = Engine::default();
    let host = Host::new();
    for (name, layer) in [
        ("wfp.flow-logger", layers::ALE_FLOW_ESTABLISHED_V4),
        ("wfp.flow-logger.bytes", layers::STREAM_V4),
    ] {
        let b = wfp_callouts::builtin(name).unwrap();
        install(
            &engine,
            name,
            layer,
            (b.make)(&host),
            b.flags,
            b.flow_delete,
            ActionType::CALLOUT_INSPECTION,
        );
    }
    let other = Host::new();
    let flow = 0xF10_0000_0001;
    host.clock.set(Duration::from_secs(3));
    establish(&engine, flow, 6);
    stream(&engine, flow, StreamFlags::SEND, b"xy");
    host.clock.set(Duration::from_secs(5));
    engine.flow_abort(flow);
    let recs = host.flow_log.drain();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].flow_handle, flow);
    assert_eq!(recs[0].outbound.bytes, 2);
    assert_eq!(
        recs[0].duration(),
        Duration::from_secs(2),
        "timed by the host's clock"
    );
    assert!(
        other.flow_log.drain().is_empty(),
        "another host sees nothing"
    );
}
