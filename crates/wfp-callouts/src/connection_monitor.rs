//! # `wfp.connection-monitor` — who owns each connection, and how much it moved
//!
//! | layer | filter action | what it does |
//! |---|---|---|
//! | `ALE_FLOW_ESTABLISHED_V4/V6` | `FWP_ACTION_CALLOUT_INSPECTION` | opens a [`Connection`] (5-tuple, DIRECTION, process path / id and user from the ALE metadata) and associates a flow context with (flow, this layer, itself) |
//! | `STREAM_V4/V6` | `FWP_ACTION_CALLOUT_INSPECTION` | adds the indicated stream bytes to the flow's connection, per direction |
//! | `DATAGRAM_DATA_V4/V6` | `FWP_ACTION_CALLOUT_INSPECTION` | adds the UDP payload bytes (direction from `packetDirection`) |
//!
//! Registration: no flags, **with** flowDeleteFn. One built-in, placed at each layer it should
//! watch; the instances of one host share the host's [`ConnectionLog`] and find a connection by
//! its flow handle, so the byte-counting layers need no flow context of their own.
//!
//! ```text
//!  FLOW_ESTABLISHED ─► open(flow) ─► live table ◄─ bytes ─ STREAM / DATAGRAM_DATA (by flow handle)
//!  flowDeleteFn(FLOW_ESTABLISHED context) ─► finished, end time stamped ─► ConnectionLog::drain
//!  ConnectionLog::live() lists the open connections at any time (what a daemon shows live)
//! ```
//!
//! Data it needs from the data path: FLOW_HANDLE metadata at every layer; PROCESS_PATH,
//! PROCESS_ID and TOKEN (the uid on Linux) metadata at FLOW_ESTABLISHED when the data path knows
//! the socket owner (else those stay `None`); the flow's end (flowDeleteFn). It only observes:
//! with the write right it answers CONTINUE (PERMIT under a CALLOUT_TERMINATING filter), at the
//! stream layer it permits every indicated byte under CALLOUT_TERMINATING and answers CONTINUE
//! otherwise. Bytes are counted as indicated to it (a higher stream callout that re-indicates
//! bytes makes them count again). Connections whose context cannot be associated (no live flow)
//! are not kept: they could never be finished ([`ConnectionLog::untracked`] counts them).
//!
//! Parameters: none.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::{self, LayerId};
use wfp_core::constants::{Direction, MetadataFields};
use wfp_core::{Callout, CalloutId, RtFilter, Status};

use crate::flow_logger::{Counters, FiveTuple};
use crate::support::{bump, direction, field, no_opinion, stream_direction, stream_no_opinion};
use crate::Clock;

/// Finished connections kept before the oldest undrained one is dropped (and counted).
pub const DEFAULT_CAPACITY: usize = 65536;

/// One connection, open or finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The flow handle.
    pub flow_handle: u64,
    /// ALE_FLOW_ESTABLISHED_V4 or _V6.
    pub layer: LayerId,
    /// Addresses, ports, protocol.
    pub tuple: FiveTuple,
    /// Who initiated it (the DIRECTION field).
    pub direction: Option<Direction>,
    /// `processPath` metadata (PROCESS_PATH), when the data path knew the socket owner.
    pub process_path: Option<Arc<str>>,
    /// `processId` metadata (PROCESS_ID).
    pub process_id: Option<u64>,
    /// The user: `token` metadata (TOKEN), the uid on Linux.
    pub user: Option<u64>,
    /// Host time when it was established.
    pub start: Duration,
    /// Host time when it ended (equal to `start` while open).
    pub end: Duration,
    /// Bytes sent (stream bytes or UDP payload bytes).
    pub outbound: Counters,
    /// Bytes received.
    pub inbound: Counters,
}

impl Connection {
    /// `end - start`.
    pub fn duration(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// Where the connection monitor reports: the open connections (by flow handle) and the finished
/// ones the host drains. Owned by the [`crate::Host`]; every instance of the built-in shares it.
pub struct ConnectionLog {
    clock: Arc<Clock>,
    live: Mutex<HashMap<u64, Connection>>,
    done: Mutex<VecDeque<Connection>>,
    capacity: usize,
    dropped: AtomicU64,
    untracked: AtomicU64,
}

impl ConnectionLog {
    /// A log timed by `clock`, keeping up to [`DEFAULT_CAPACITY`] undrained connections.
    pub fn new(clock: Arc<Clock>) -> Self {
        Self::with_capacity(clock, DEFAULT_CAPACITY)
    }

    /// A log keeping up to `capacity` undrained finished connections.
    pub fn with_capacity(clock: Arc<Clock>, capacity: usize) -> Self {
        Self {
            clock,
            live: Mutex::new(HashMap::new()),
            done: Mutex::new(VecDeque::new()),
            capacity,
            dropped: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
        }
    }

    /// Takes the finished connections, in the order they ended.
    pub fn drain(&self) -> Vec<Connection> {
        self.done.lock().drain(..).collect()
    }

    /// The open connections now, by flow handle (what a daemon lists live).
    pub fn live(&self) -> Vec<Connection> {
        let mut v: Vec<Connection> = self.live.lock().values().cloned().collect();
        v.sort_by_key(|c| c.flow_handle);
        v
    }

    /// Open connections.
    pub fn active(&self) -> usize {
        self.live.lock().len()
    }

    /// Finished connections dropped because the log was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Connections not kept because their flow context could not be associated.
    pub fn untracked(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }

    /// The clock connections are timed with.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    fn open(&self, c: Connection) {
        // A reused flow handle: the old connection ended without a flowDeleteFn reaching us.
        if let Some(old) = self.live.lock().insert(c.flow_handle, c) {
            self.finish_record(old);
        }
    }

    fn forget(&self, flow: u64) {
        self.live.lock().remove(&flow);
        bump(&self.untracked);
    }

    fn count(&self, flow: u64, d: Direction, bytes: usize) {
        if let Some(c) = self.live.lock().get_mut(&flow) {
            match d {
                Direction::Outbound => c.outbound.add(bytes),
                Direction::Inbound => c.inbound.add(bytes),
            }
        }
    }

    fn finish(&self, flow: u64) {
        let Some(c) = self.live.lock().remove(&flow) else {
            return;
        };
        self.finish_record(c);
    }

    fn finish_record(&self, mut c: Connection) {
        c.end = self.clock.now().max(c.start);
        let mut done = self.done.lock();
        if done.len() >= self.capacity {
            done.pop_front();
            bump(&self.dropped);
        }
        done.push_back(c);
    }
}

impl fmt::Debug for ConnectionLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionLog")
            .field("active", &self.active())
            .field("finished", &self.done.lock().len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// `wfp.connection-monitor` (see the module doc).
pub struct ConnectionMonitor {
    log: Arc<ConnectionLog>,
}

impl ConnectionMonitor {
    /// Reports into `log`.
    pub fn new(log: Arc<ConnectionLog>) -> Self {
        Self { log }
    }

    /// FLOW_ESTABLISHED: opens the connection and ties it to the flow's end.
    fn establish(&self, ctx: &ClassifyContext<'_>, values: &IncomingValues<'_>, meta: &Metadata) {
        let Some(flow) = meta.flow() else {
            return;
        };
        let start = self.log.clock.now();
        let present = |f: MetadataFields| meta.has(f);
        self.log.open(Connection {
            flow_handle: flow,
            layer: values.layer,
            tuple: FiveTuple::from_values(values),
            direction: direction(field(values, "DIRECTION")),
            process_path: meta
                .process_path
                .clone()
                .filter(|_| present(MetadataFields::PROCESS_PATH)),
            process_id: present(MetadataFields::PROCESS_ID).then_some(meta.process_id),
            user: present(MetadataFields::TOKEN).then_some(meta.token),
            start,
            end: start,
            outbound: Counters::default(),
            inbound: Counters::default(),
        });
        // The context is the flow handle itself (never 0 for a flow).
        let st = ctx
            .engine()
            .flow_associate_context(flow, values.layer, ctx.callout_id(), flow);
        if st != Status::SUCCESS {
            self.log.forget(flow);
        }
    }
}

impl Callout for ConnectionMonitor {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        _flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let flow = meta.flow();
        match layer_data {
            LayerData::Stream(io) => {
                if let Some(flow) = flow {
                    self.log
                        .count(flow, stream_direction(io), io.stream_data.data.len());
                }
                stream_no_opinion(io, out, filter);
            }
            _ if is_flow_established(values.layer) => {
                no_opinion(out, filter);
                self.establish(ctx, values, meta);
            }
            LayerData::Packet(p) => {
                no_opinion(out, filter);
                let d = meta
                    .packet_direction
                    .filter(|_| meta.has(MetadataFields::PACKET_DIRECTION))
                    .or_else(|| direction(field(values, "DIRECTION")))
                    .unwrap_or(Direction::Outbound);
                if let Some(flow) = flow {
                    self.log.count(flow, d, p.len());
                }
            }
            LayerData::None => no_opinion(out, filter),
        }
    }

    fn flow_delete(&self, _layer: LayerId, _callout_id: CalloutId, flow_context: u64) {
        self.log.finish(flow_context);
    }
}

fn is_flow_established(layer: LayerId) -> bool {
    catalogue::layer(layer).is_some_and(|l| l.name.starts_with("ALE_FLOW_ESTABLISHED"))
}
