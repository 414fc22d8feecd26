//! # `wfp.flow-logger` and `wfp.flow-logger.bytes` — one record per flow
//!
//! | callout | layers | filter action | registration |
//! |---|---|---|---|
//! | [`FlowLogger`] (`wfp.flow-logger`) | `ALE_FLOW_ESTABLISHED_V4/V6` | `FWP_ACTION_CALLOUT_INSPECTION` | no flags, **with** flowDeleteFn |
//! | [`FlowByteCounter`] (`wfp.flow-logger.bytes`), optional | `STREAM_V4/V6` (TCP), `DATAGRAM_DATA_V4/V6` (others) | `FWP_ACTION_CALLOUT_INSPECTION` | `CONDITIONAL_ON_FLOW`, **with** flowDeleteFn |
//!
//! When a flow is established, [`FlowLogger`] opens a [`FlowRecord`] (5-tuple, direction and
//! `ALE_APP_ID` from the incoming values, start time from the host's [`Clock`]) and associates its
//! id as a flow context twice: with its own (flow, FLOW_ESTABLISHED layer, callout) key, and — when
//! the byte counter is registered — with (flow, STREAM or DATAGRAM_DATA layer, byte-counter id), the
//! msnmntr pattern (§6.2). Because the byte counter is CONDITIONAL_ON_FLOW the engine only invokes
//! it for logged flows; it adds the indicated bytes per direction to the record. The flowDeleteFn
//! of each context gives back one reference; the last one stamps the end time and queues the record
//! in the [`FlowLog`], exactly once per flow, which the host drains ([`FlowLog::drain`]).
//!
//! Data it needs from the data path: FLOW_ESTABLISHED classifies with the FLOW_HANDLE metadata bit
//! and the flow's values; STREAM indications as `LayerData::Stream` (direction from
//! FWPS_STREAM_FLAG_RECEIVE); DATAGRAM_DATA as `LayerData::Packet(UDP payload)` (direction from
//! `packetDirection` metadata, else the DIRECTION field); [`Engine::flow_abort`] when a flow ends.
//!
//! Both callouts only observe: with the write right they answer CONTINUE (PERMIT under a
//! CALLOUT_TERMINATING filter, where CONTINUE would mean BLOCK), without it they leave `actionType`
//! alone; at the stream layer they always set it (rule 2.6-8). Bytes are counted as indicated: a
//! higher-priority stream callout that permits part of an indication, or asks for more data after
//! this one saw it, makes the engine indicate those bytes again and they are counted again.
//!
//! The byte counter is found by key: the keys of the filters that reference it (its ADD_FILTER
//! notifications — so register it before adding its filters), keys named with
//! [`FlowLog::link_byte_counter`], and [`crate::builtin_key`]`("wfp.flow-logger.bytes", layer)`.
//!
//! [`Engine::flow_abort`]: wfp_core::Engine::flow_abort

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::LayerId;
use wfp_core::constants::{Direction, MetadataFields};
use wfp_core::{Callout, CalloutId, Guid, NotifyType, RtFilter, Status, Value};

use crate::support::{
    addr, associate_all, data_layer, direction, field, no_opinion, port, stream_direction,
    stream_no_opinion, Hub, Report,
};
use crate::Clock;

/// Records kept before the oldest undrained one is dropped (and counted).
pub const DEFAULT_CAPACITY: usize = 65536;

/// A flow's addresses, ports and protocol, from the incoming values (FWP_EMPTY → `None` / 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FiveTuple {
    /// IP_PROTOCOL.
    pub protocol: u8,
    /// IP_LOCAL_ADDRESS.
    pub local_addr: Option<IpAddr>,
    /// IP_LOCAL_PORT.
    pub local_port: u16,
    /// IP_REMOTE_ADDRESS.
    pub remote_addr: Option<IpAddr>,
    /// IP_REMOTE_PORT.
    pub remote_port: u16,
}

impl FiveTuple {
    /// Reads the tuple from any layer that has these fields (ALE layers, STREAM, DATAGRAM_DATA,
    /// TRANSPORT); STREAM has no IP_PROTOCOL field and reads as TCP.
    pub fn from_values(values: &IncomingValues<'_>) -> Self {
        let protocol = match field(values, "IP_PROTOCOL") {
            Value::Uint8(p) => *p,
            _ if catalogue_is_stream(values.layer) => wfp_core::constants::ip_proto::TCP,
            _ => 0,
        };
        Self {
            protocol,
            local_addr: addr(field(values, "IP_LOCAL_ADDRESS")),
            local_port: port(field(values, "IP_LOCAL_PORT")),
            remote_addr: addr(field(values, "IP_REMOTE_ADDRESS")),
            remote_port: port(field(values, "IP_REMOTE_PORT")),
        }
    }
}

fn catalogue_is_stream(layer: LayerId) -> bool {
    wfp_core::catalogue::layer(layer).is_some_and(|l| l.is_stream())
}

/// Bytes and indications in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes indicated (stream bytes, or UDP payload bytes).
    pub bytes: u64,
    /// Indications (stream indications or datagrams).
    pub indications: u64,
}

impl Counters {
    pub(crate) fn add(&mut self, bytes: usize) {
        self.bytes = self
            .bytes
            .saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
        self.indications = self.indications.saturating_add(1);
    }
}

/// One finished flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// The flow handle (`flowHandle` metadata).
    pub flow_handle: u64,
    /// ALE_FLOW_ESTABLISHED_V4 or _V6.
    pub layer: LayerId,
    /// Addresses, ports, protocol.
    pub tuple: FiveTuple,
    /// Who initiated the flow (the DIRECTION field).
    pub direction: Option<Direction>,
    /// ALE_APP_ID, when the data path filled it.
    pub app_id: Option<Arc<[u8]>>,
    /// Host time when the flow was established.
    pub start: Duration,
    /// Host time when its last context was deleted.
    pub end: Duration,
    /// Outbound bytes (zero unless the byte counter ran).
    pub outbound: Counters,
    /// Inbound bytes (zero unless the byte counter ran).
    pub inbound: Counters,
    /// Whether a byte-counter context was associated (so the byte counts are meaningful).
    pub bytes_counted: bool,
}

impl FlowRecord {
    /// `end - start`.
    pub fn duration(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }

    fn side(&mut self, d: Direction) -> &mut Counters {
        match d {
            Direction::Outbound => &mut self.outbound,
            Direction::Inbound => &mut self.inbound,
        }
    }
}

impl Report for FlowRecord {
    fn finish(&mut self, now: Duration) {
        self.end = now.max(self.start);
    }
}

/// The sink the flow logger writes to: live records and finished ones, shared (in an `Arc`) by the
/// two callouts and the host that drains it.
pub struct FlowLog {
    hub: Hub<FlowRecord>,
}

impl FlowLog {
    /// A log reading time from `clock`, keeping up to [`DEFAULT_CAPACITY`] undrained records.
    pub fn new(clock: Arc<Clock>) -> Self {
        Self::with_capacity(clock, DEFAULT_CAPACITY)
    }

    /// A log keeping up to `capacity` undrained records.
    pub fn with_capacity(clock: Arc<Clock>, capacity: usize) -> Self {
        Self {
            hub: Hub::new(clock, BYTES_NAME, capacity),
        }
    }

    /// The clock the records are timed with.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.hub.clock
    }

    /// Takes the finished records, oldest first.
    pub fn drain(&self) -> Vec<FlowRecord> {
        self.hub.drain()
    }

    /// Finished records dropped because the log was full.
    pub fn dropped(&self) -> u64 {
        self.hub.dropped()
    }

    /// Flows being logged now.
    pub fn active(&self) -> usize {
        self.hub.table.len()
    }

    /// Names a byte-counter registration (its callout key at `layer`) explicitly, for hosts that add
    /// its filters before registering it (so it misses the ADD_FILTER notifications).
    pub fn link_byte_counter(&self, layer: LayerId, key: Guid) {
        self.hub.companions.pin(layer, key);
    }
}

impl fmt::Debug for FlowLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hub.debug("FlowLog", f)
    }
}

const BYTES_NAME: &str = "wfp.flow-logger.bytes";

/// `wfp.flow-logger`: the ALE_FLOW_ESTABLISHED callout that opens a record per flow.
pub struct FlowLogger {
    log: Arc<FlowLog>,
}

impl FlowLogger {
    /// Logs into `log`.
    pub fn new(log: Arc<FlowLog>) -> Self {
        Self { log }
    }
}

impl Callout for FlowLogger {
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
        let Some(flow) = meta.flow() else {
            return;
        };
        let hub = &self.log.hub;
        let tuple = FiveTuple::from_values(values);
        let start = hub.clock.now();
        let data = data_layer(values.layer, tuple.protocol);
        let record = FlowRecord {
            flow_handle: flow,
            layer: values.layer,
            direction: direction(field(values, "DIRECTION")),
            app_id: match field(values, "ALE_APP_ID") {
                Value::ByteBlob(b) => Some(b.clone()),
                _ => None,
            },
            tuple,
            start,
            end: start,
            outbound: Counters::default(),
            inbound: Counters::default(),
            bytes_counted: false,
        };
        let id = hub.table.insert(record);
        let engine = ctx.engine();
        associate_all(
            &hub.table,
            engine,
            flow,
            values.layer,
            &[ctx.callout_id()],
            id,
        );
        if let Some(layer) = data {
            let counters = hub.companions.ids(engine, layer);
            if associate_all(&hub.table, engine, flow, layer, &counters, id) > 0 {
                hub.table.with(id, |r| r.bytes_counted = true);
            }
        }
        hub.release(id);
    }

    fn flow_delete(&self, _layer: LayerId, _callout_id: CalloutId, flow_context: u64) {
        self.log.hub.release(flow_context);
    }
}

/// `wfp.flow-logger.bytes`: counts the bytes of logged flows at STREAM / DATAGRAM_DATA.
pub struct FlowByteCounter {
    log: Arc<FlowLog>,
}

impl FlowByteCounter {
    /// Counts into `log`'s records.
    pub fn new(log: Arc<FlowLog>) -> Self {
        Self { log }
    }
}

impl Callout for FlowByteCounter {
    fn classify(
        &self,
        _ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let (dir, bytes) = match layer_data {
            LayerData::Stream(io) => {
                let seen = (stream_direction(io), io.stream_data.data.len());
                stream_no_opinion(io, out, filter);
                seen
            }
            LayerData::Packet(p) => {
                no_opinion(out, filter);
                let dir = meta
                    .packet_direction
                    .filter(|_| meta.has(MetadataFields::PACKET_DIRECTION))
                    .or_else(|| direction(field(values, "DIRECTION")))
                    .unwrap_or(Direction::Outbound);
                (dir, p.len())
            }
            LayerData::None => return no_opinion(out, filter),
        };
        if flow_context != 0 {
            self.log
                .hub
                .table
                .with(flow_context, |r| r.side(dir).add(bytes));
        }
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
