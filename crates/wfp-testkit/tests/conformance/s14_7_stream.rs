//! §14.7 Stream layer at the engine: T-ST-2 (stream injection: not re-indicated to the injector,
//! indicated to lower-weight stream callouts) and T-ST-7 (DEFER / FwpsStreamContinue0).

use std::sync::{Arc, Mutex};

use wfp_core::callout::{LayerData, Metadata, StreamIoPacket};
use wfp_core::constants::{StreamAction, StreamFlags};
use wfp_core::inject::{
    AddressFamily, Inject, InjectionKind, InjectionOutcome, InjectionTypes, Reentry,
};
use wfp_core::stream::StreamEvent;
use wfp_testkit::prelude::*;

const STREAM: LayerId = layers::STREAM_V4;

fn indicate(h: &Harness, flow: u64, flags: StreamFlags, data: &[u8]) -> wfp_core::ClassifyResult {
    let v = wfp_testkit::values(STREAM, &[]);
    let meta = wfp_testkit::flow_meta(flow);
    let mut io = LayerData::Stream(StreamIoPacket::new(flags, data));
    h.engine().classify(STREAM, &v, &meta, &mut io, None)
}

/// A stream callout answering `action` with `actionType` `at`.
fn streamer(action: StreamAction, at: ActionType) -> Arc<ScriptedCallout> {
    ScriptedCallout::new(move |_, out| {
        out.action_type = at;
        let _ = action;
    })
    .build()
}

/// §14.7 T-ST-2 (§9.2): the editor injects p' and blocks p; the injection request re-enters the
/// stream below the injector: `stream_filters_below` lists the lower-weight stream callout and not
/// the injector.
#[test]
fn t_st_2_stream_injection_skips_injector_reaches_lower_callouts() {
    let h = Harness::new();
    let high = h.sublayer("editor", 2);
    let low = h.sublayer("monitor", 1);
    let inj = h
        .engine()
        .create_injection_handle(AddressFamily::Inet, InjectionTypes::STREAM)
        .unwrap();
    let injected: Arc<Mutex<Vec<Status>>> = Arc::default();
    let i2 = injected.clone();
    let editor = ScriptedCallout::new(move |call, out| {
        let e = call.ctx.engine();
        let p = e.allocate_packet(b"p'".to_vec());
        let st = e.inject(Inject {
            handle: inj,
            context: 0,
            kind: InjectionKind::Stream {
                flow: call.meta.flow().unwrap(),
                callout: call.ctx.callout_id(),
                layer: call.ctx.layer(),
                flags: StreamFlags::RECEIVE,
            },
            packet: p,
            completion: None,
        });
        i2.lock().unwrap().push(st);
        out.action_type = ActionType::BLOCK;
    })
    .build();
    let monitor = streamer(StreamAction::None, ActionType::PERMIT);
    let (_, editor_id) =
        h.callout_filter(STREAM, high, 1, ActionType::CALLOUT_TERMINATING, &editor);
    let (mf, _) = h.callout_filter(STREAM, low, 1, ActionType::CALLOUT_INSPECTION, &monitor);
    indicate(&h, 9, StreamFlags::RECEIVE, b"p");
    assert_eq!(*injected.lock().unwrap(), vec![Status::SUCCESS]);
    let req = h
        .engine()
        .poll_injection()
        .expect("stream injection queued");
    assert_eq!(
        req.reentry,
        Reentry::StreamBelow {
            injector: editor_id
        }
    );
    assert_eq!(&*req.data, b"p'");
    let below =
        h.engine()
            .stream_filters_below(STREAM, &wfp_testkit::values(STREAM, &[]), editor_id);
    assert_eq!(
        below.iter().map(|f| f.filter_id()).collect::<Vec<_>>(),
        vec![mf]
    );
    // The data path indicates p' to the lower callouts only.
    let meta = wfp_testkit::flow_meta(9);
    for f in &below {
        let mut io = LayerData::Stream(StreamIoPacket::new(StreamFlags::RECEIVE, &req.data));
        let v = wfp_testkit::values(STREAM, &[]);
        let values = wfp_core::IncomingValues {
            layer: STREAM,
            values: &v,
        };
        let out = wfp_core::ClassifyOut {
            action_type: ActionType::CONTINUE,
            out_context: 0,
            filter_id: 0,
            rights: Rights::ACTION_WRITE,
            flags: ClassifyOutFlags::default(),
        };
        h.engine().invoke_callout(f, &values, &meta, &mut io, out);
    }
    assert_eq!(
        h.engine()
            .complete_injection(req.id, InjectionOutcome::Delivered),
        Status::SUCCESS
    );
    assert_eq!(
        editor.invocation_count(),
        1,
        "p' not re-indicated to the injector"
    );
    assert_eq!(
        monitor.invocation_count(),
        2,
        "p was blocked before it, p' reaches it: {:?}",
        monitor.invocations()
    );
}

/// §14.7 T-ST-7 (§9.2): DEFER on inbound data pauses the stream (event), FwpsStreamContinue0
/// resumes it — refused from inside the callout's classifyFn and when nothing is deferred; DEFER on
/// outbound data is invalid and becomes a BLOCK.
#[test]
fn t_st_7_defer_then_stream_continue() {
    let h = Harness::new();
    let sl = h.sublayer("defer", 1);
    let inside: Arc<Mutex<Vec<Status>>> = Arc::default();
    let in2 = inside.clone();
    let c = ScriptedCallout::new(|_, out| out.action_type = ActionType::PERMIT).build();
    let (_, cid) = h.callout_filter(STREAM, sl, 1, ActionType::CALLOUT_UNKNOWN, &c);
    // a second callout object: defers (it is the one under test)
    let d = Arc::new(DeferCallout { inside: in2 });
    let handle = h.management_callout(STREAM);
    h.engine()
        .register_callout(wfp_core::CalloutRegistration::new(
            handle.key,
            CalloutFlags::default(),
            d,
        ))
        .unwrap();
    let df = h.add_ok(
        h.build(STREAM, ActionType::CALLOUT_UNKNOWN)
            .sublayer(h.sublayer("hi", 5))
            .callout(handle.key),
    );
    let r = indicate(&h, 3, StreamFlags::RECEIVE, b"hello");
    let v = r.stream.expect("stream verdict");
    assert_eq!((v.action, v.filter), (StreamAction::Defer, df));
    assert_eq!(
        h.engine().poll_stream_event(),
        Some(StreamEvent::Deferred {
            flow: 3,
            callout: handle.id,
            layer: STREAM
        })
    );
    assert!(h.engine().is_stream_deferred(3, handle.id, STREAM));
    // outbound data of the same flow reaches the callout: continue from inside classifyFn refused
    let out = indicate(&h, 3, StreamFlags::SEND, b"x");
    assert_eq!(*inside.lock().unwrap(), vec![Status::INVALID_DEVICE_STATE]);
    let ov = out.stream.expect("verdict");
    assert_eq!(
        (ov.action, ov.action_type),
        (StreamAction::None, ActionType::BLOCK),
        "outbound DEFER is invalid"
    );
    assert_eq!(h.engine().stream_stats().invalid_defers, 1);
    assert_eq!(
        h.engine()
            .stream_continue(3, handle.id, STREAM, StreamFlags::RECEIVE),
        Status::SUCCESS
    );
    assert!(matches!(
        h.engine().poll_stream_event(),
        Some(StreamEvent::Continued { flow: 3, .. })
    ));
    assert_eq!(
        h.engine()
            .stream_continue(3, handle.id, STREAM, StreamFlags::RECEIVE),
        Status::FWP_NOT_FOUND
    );
    assert_eq!(
        h.engine()
            .stream_continue(3, cid, STREAM, StreamFlags::RECEIVE),
        Status::FWP_NOT_FOUND
    );
}

/// Defers inbound data; on outbound data tries FwpsStreamContinue0 from inside classifyFn (recorded)
/// and answers DEFER again (invalid outbound).
struct DeferCallout {
    inside: Arc<Mutex<Vec<Status>>>,
}

impl wfp_core::Callout for DeferCallout {
    fn classify(
        &self,
        ctx: &wfp_core::ClassifyContext<'_>,
        _values: &wfp_core::IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        _filter: &wfp_core::RtFilter,
        _flow_context: u64,
        out: &mut wfp_core::ClassifyOut,
    ) {
        let LayerData::Stream(io) = layer_data else {
            return;
        };
        if io.stream_data.flags.contains(StreamFlags::SEND) {
            let flow = meta.flow().unwrap_or(0);
            let st = ctx.engine().stream_continue(
                flow,
                ctx.callout_id(),
                ctx.layer(),
                StreamFlags::RECEIVE,
            );
            self.inside.lock().unwrap().push(st);
        }
        io.stream_action = StreamAction::Defer;
        out.action_type = ActionType::NONE;
    }
}
