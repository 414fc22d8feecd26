//! # `wfp.stream-monitor` and `wfp.stream-monitor.stream` — the msnmntr sample
//!
//! | callout | layers | filter action | registration |
//! |---|---|---|---|
//! | [`StreamMonitor`] (`wfp.stream-monitor`) | `ALE_FLOW_ESTABLISHED_V4/V6` | `FWP_ACTION_CALLOUT_INSPECTION` | no flags, no flowDeleteFn |
//! | [`StreamMonitorStream`] (`wfp.stream-monitor.stream`) | `STREAM_V4/V6` | `FWP_ACTION_CALLOUT_INSPECTION` | `CONDITIONAL_ON_FLOW`, **with** flowDeleteFn |
//!
//! As in Microsoft's msnmntr sample, the FLOW_ESTABLISHED callout picks the connections to monitor
//! (the ones its filter's conditions select — an application, a port) and, for each TCP flow,
//! associates a context keyed to the **STREAM** layer (FWPS_LAYER_STREAM_V4 = 20 / V6 = 22) and the
//! **stream callout's** id (§6.2). The stream callout is CONDITIONAL_ON_FLOW, so the engine invokes
//! it only for those flows (T-FLOW-1). It counts bytes and indications per direction and keeps the
//! first N bytes of each direction ([`DEFAULT_CAPTURE`] unless configured); its flowDeleteFn stamps
//! the end time and queues a [`StreamReport`] in the [`StreamMonitorLog`] the host drains.
//!
//! Data it needs from the data path: FLOW_ESTABLISHED classifies carrying the FLOW_HANDLE metadata
//! bit and IP_PROTOCOL; STREAM indications as `LayerData::Stream` with FWPS_STREAM_FLAG_RECEIVE on
//! inbound data and the same flow handle; [`Engine::flow_abort`] when the connection ends.
//!
//! Both callouts only observe: CONTINUE with the write right and nothing without it at
//! FLOW_ESTABLISHED (PERMIT under a CALLOUT_TERMINATING filter); CONTINUE set explicitly at the
//! stream layer (rule 2.6-8). The stream callout is found the same way as the flow logger's byte
//! counter: from its ADD_FILTER notifications, [`StreamMonitorLog::link_stream_callout`], or
//! [`crate::builtin_key`]`("wfp.stream-monitor.stream", layer)`.
//!
//! [`Engine::flow_abort`]: wfp_core::Engine::flow_abort

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::LayerId;
use wfp_core::constants::{ip_proto, Direction};
use wfp_core::{Callout, CalloutId, Guid, NotifyType, RtFilter, Status, Value};

use crate::flow_logger::{FiveTuple, DEFAULT_CAPACITY};
use crate::support::{
    associate_all, data_layer, field, no_opinion, stream_direction, stream_no_opinion, Hub, Report,
};
use crate::Clock;

/// Bytes captured per direction unless configured otherwise.
pub const DEFAULT_CAPTURE: usize = 64;
/// Most bytes capturable per direction.
pub const MAX_CAPTURE: usize = 65536;

const STREAM_NAME: &str = "wfp.stream-monitor.stream";

/// One direction of a monitored connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamSide {
    /// Stream bytes indicated.
    pub bytes: u64,
    /// Indications.
    pub indications: u64,
    /// The first bytes of the direction (up to the configured capture length).
    pub head: Vec<u8>,
}

/// One finished monitored connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamReport {
    /// The flow handle.
    pub flow_handle: u64,
    /// STREAM_V4 or STREAM_V6: the layer the context was keyed to.
    pub layer: LayerId,
    /// Addresses and ports from FLOW_ESTABLISHED.
    pub tuple: FiveTuple,
    /// ALE_APP_ID, when the data path filled it.
    pub app_id: Option<Arc<[u8]>>,
    /// Host time when the connection was established.
    pub start: Duration,
    /// Host time when the flow's context was deleted.
    pub end: Duration,
    /// Local → remote.
    pub outbound: StreamSide,
    /// Remote → local.
    pub inbound: StreamSide,
}

impl StreamReport {
    /// `end - start`.
    pub fn duration(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

impl Report for StreamReport {
    fn finish(&mut self, now: Duration) {
        self.end = now.max(self.start);
    }
}

/// Where the stream monitor keeps live connections and queues finished reports.
pub struct StreamMonitorLog {
    hub: Hub<StreamReport>,
}

impl StreamMonitorLog {
    /// A log timed by `clock`, keeping up to [`DEFAULT_CAPACITY`] undrained reports.
    pub fn new(clock: Arc<Clock>) -> Self {
        Self::with_capacity(clock, DEFAULT_CAPACITY)
    }

    /// A log keeping up to `capacity` undrained reports.
    pub fn with_capacity(clock: Arc<Clock>, capacity: usize) -> Self {
        Self {
            hub: Hub::new(clock, STREAM_NAME, capacity),
        }
    }

    /// Takes the finished reports, oldest first.
    pub fn drain(&self) -> Vec<StreamReport> {
        self.hub.drain()
    }

    /// Reports dropped because the log was full.
    pub fn dropped(&self) -> u64 {
        self.hub.dropped()
    }

    /// Connections being monitored now.
    pub fn active(&self) -> usize {
        self.hub.table.len()
    }

    /// Names a stream-callout registration (its key at STREAM_V4 or STREAM_V6) explicitly.
    pub fn link_stream_callout(&self, layer: LayerId, key: Guid) {
        self.hub.companions.pin(layer, key);
    }
}

impl fmt::Debug for StreamMonitorLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hub.debug("StreamMonitorLog", f)
    }
}

/// `wfp.stream-monitor`: the FLOW_ESTABLISHED half; associates the stream callout's contexts.
pub struct StreamMonitor {
    log: Arc<StreamMonitorLog>,
}

impl StreamMonitor {
    /// Monitors into `log`.
    pub fn new(log: Arc<StreamMonitorLog>) -> Self {
        Self { log }
    }
}

impl Callout for StreamMonitor {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        _layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        _flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        no_opinion(out, filter);
        let tuple = FiveTuple::from_values(values);
        let (Some(flow), true) = (meta.flow(), tuple.protocol == ip_proto::TCP) else {
            return;
        };
        let Some(stream_layer) = data_layer(values.layer, tuple.protocol) else {
            return;
        };
        let hub = &self.log.hub;
        let engine = ctx.engine();
        let callouts = hub.companions.ids(engine, stream_layer);
        if callouts.is_empty() {
            return;
        }
        let start = hub.clock.now();
        let id = hub.table.insert(StreamReport {
            flow_handle: flow,
            layer: stream_layer,
            tuple,
            app_id: match field(values, "ALE_APP_ID") {
                Value::ByteBlob(b) => Some(b.clone()),
                _ => None,
            },
            start,
            end: start,
            outbound: StreamSide::default(),
            inbound: StreamSide::default(),
        });
        associate_all(&hub.table, engine, flow, stream_layer, &callouts, id);
        hub.release(id);
    }
}

/// `wfp.stream-monitor.stream`: the STREAM half; counts and captures monitored connections.
pub struct StreamMonitorStream {
    log: Arc<StreamMonitorLog>,
    capture: usize,
}

impl StreamMonitorStream {
    /// Records into `log`, keeping the first `capture` bytes of each direction (at most
    /// [`MAX_CAPTURE`]).
    pub fn new(log: Arc<StreamMonitorLog>, capture: usize) -> Self {
        Self {
            log,
            capture: capture.min(MAX_CAPTURE),
        }
    }
}

impl Callout for StreamMonitorStream {
    fn classify(
        &self,
        _ctx: &ClassifyContext<'_>,
        _values: &IncomingValues<'_>,
        _meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let LayerData::Stream(io) = layer_data else {
            return no_opinion(out, filter);
        };
        let data = io.stream_data.data;
        let dir = stream_direction(io);
        stream_no_opinion(io, out, filter);
        if flow_context == 0 {
            return;
        }
        let capture = self.capture;
        self.log.hub.table.with(flow_context, |r| {
            let side = match dir {
                Direction::Outbound => &mut r.outbound,
                Direction::Inbound => &mut r.inbound,
            };
            side.bytes = side
                .bytes
                .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
            side.indications = side.indications.saturating_add(1);
            let room = capture.saturating_sub(side.head.len());
            side.head
                .extend_from_slice(data.get(..room.min(data.len())).unwrap_or(&[]));
        });
    }

    fn notify(
        &self,
        notify_type: NotifyType,
        _filter_key: Option<&Guid>,
        filter: &mut RtFilter,
    ) -> Status {
        self.log.hub.companions.notify(notify_type, filter);
        Status::SUCCESS
    }

    fn flow_delete(&self, _layer: LayerId, _callout_id: CalloutId, flow_context: u64) {
        self.log.hub.release(flow_context);
    }
}
