//! Stream-layer bookkeeping (wfp-reference §9.2): FWPS_STREAM_ACTION_DEFER and
//! `FwpsStreamContinue0` (T-ST-7). Cloning stream data and stream injection are in
//! [`crate::inject`] ([`crate::ClassifyContext::clone_stream_data`],
//! [`crate::inject::InjectionKind::Stream`]).
//!
//! ```text
//!  classify at STREAM (inbound) ─► callout answers DEFER ─► engine records (flow, callout, layer)
//!  data path: poll_stream_event() → Deferred   (stop delivering/ACKing inbound data of the flow)
//!  callout, later, outside classifyFn: stream_continue(flow, callout, layer, flags)
//!  data path: poll_stream_event() → Continued  (resume)
//! ```
//!
//! DEFER on outbound data is invalid (§9.2, T-ST-7): the engine answers it like an invalid
//! `actionType` of a terminating callout (§2.5): the verdict becomes a BLOCK with stream action
//! NONE, and `invalid_defers` counts it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::catalogue::LayerId;
use crate::classify::StreamVerdict;
use crate::constants::{ActionType, StreamAction, StreamFlags};
use crate::engine::Engine;
use crate::filter::CalloutId;
use crate::status::Status;

/// An event of the stream bookkeeping, drained with [`Engine::poll_stream_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// A callout deferred the inbound stream of `flow`: pause delivery.
    Deferred {
        /// The flow.
        flow: u64,
        /// The deferring callout.
        callout: CalloutId,
        /// STREAM_V4 / STREAM_V6.
        layer: LayerId,
    },
    /// `FwpsStreamContinue0`: resume.
    Continued {
        /// The flow.
        flow: u64,
        /// The callout.
        callout: CalloutId,
        /// The layer.
        layer: LayerId,
        /// `streamFlags`.
        flags: StreamFlags,
    },
}

/// Stream bookkeeping counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// DEFER verdicts recorded.
    pub defers: u64,
    /// Successful continues.
    pub continues: u64,
    /// DEFER on outbound data, turned into a BLOCK.
    pub invalid_defers: u64,
}

type Key = (u64, CalloutId, LayerId);

#[derive(Default)]
struct State {
    deferred: HashSet<Key>,
    /// (flow, callout) → invocations running now (tracked only while a deferral exists).
    running: HashMap<(u64, CalloutId), u32>,
    events: VecDeque<StreamEvent>,
    stats: StreamStats,
}

/// The engine's stream tables.
#[derive(Default)]
pub(crate) struct StreamTable {
    state: Mutex<State>,
    /// Deferrals alive: classify only tracks running invocations while this is non-zero.
    deferred: AtomicUsize,
}

impl Engine {
    /// `FwpsStreamContinue0` (§9.2): resumes a deferred stream. STATUS_FWP_NOT_FOUND when that
    /// callout did not defer that flow at that layer; STATUS_INVALID_DEVICE_STATE from inside the
    /// callout's own classifyFn for the flow; STATUS_FWP_IN_USE while a stream injection of that
    /// callout for the flow is still pending.
    pub fn stream_continue(
        &self,
        flow: u64,
        callout: CalloutId,
        layer: LayerId,
        flags: StreamFlags,
    ) -> Status {
        if self.stream_injections_pending(flow, callout) {
            return Status::FWP_IN_USE;
        }
        let mut st = self.stream.state.lock();
        if st.running.get(&(flow, callout)).is_some_and(|n| *n > 0) {
            return Status::INVALID_DEVICE_STATE;
        }
        if !st.deferred.remove(&(flow, callout, layer)) {
            return Status::FWP_NOT_FOUND;
        }
        self.stream.deferred.fetch_sub(1, Ordering::SeqCst);
        st.stats.continues += 1;
        let event = StreamEvent::Continued {
            flow,
            callout,
            layer,
            flags,
        };
        self.queue_async(st, |s| &mut s.events, [event]);
        Status::SUCCESS
    }

    /// True while `callout` holds `flow` deferred at `layer`.
    pub fn is_stream_deferred(&self, flow: u64, callout: CalloutId, layer: LayerId) -> bool {
        self.stream
            .state
            .lock()
            .deferred
            .contains(&(flow, callout, layer))
    }

    /// Takes the oldest stream event.
    pub fn poll_stream_event(&self) -> Option<StreamEvent> {
        self.stream.state.lock().events.pop_front()
    }

    /// Takes the oldest stream event `mine` accepts (the others stay queued, in order): each
    /// data path of several takes the events of its own flows.
    pub fn poll_stream_event_where(
        &self,
        mut mine: impl FnMut(&StreamEvent) -> bool,
    ) -> Option<StreamEvent> {
        let mut st = self.stream.state.lock();
        let i = st.events.iter().position(&mut mine)?;
        st.events.remove(i)
    }

    /// Counters.
    pub fn stream_stats(&self) -> StreamStats {
        self.stream.state.lock().stats
    }

    /// Classify saw a stream verdict for `flow`: records a DEFER (inbound) or turns an outbound
    /// DEFER into a BLOCK.
    pub(crate) fn stream_verdict(
        &self,
        v: &mut StreamVerdict,
        flow: Option<u64>,
        layer: LayerId,
        flags: StreamFlags,
    ) {
        if v.action != StreamAction::Defer {
            return;
        }
        let mut st = self.stream.state.lock();
        match flow {
            Some(flow) if flags.contains(StreamFlags::RECEIVE) => {
                if st.deferred.insert((flow, v.callout, layer)) {
                    self.stream.deferred.fetch_add(1, Ordering::SeqCst);
                }
                st.stats.defers += 1;
                let event = StreamEvent::Deferred {
                    flow,
                    callout: v.callout,
                    layer,
                };
                self.queue_async(st, |s| &mut s.events, [event]);
            }
            _ => {
                st.stats.invalid_defers += 1;
                v.action = StreamAction::None;
                v.action_type = ActionType::BLOCK;
            }
        }
    }

    /// Marks a stream callout invocation for `flow` as running (only while deferrals exist).
    pub(crate) fn stream_enter(&self, flow: u64, callout: CalloutId) -> bool {
        if self.stream.deferred.load(Ordering::SeqCst) == 0 {
            return false;
        }
        *self
            .stream
            .state
            .lock()
            .running
            .entry((flow, callout))
            .or_default() += 1;
        true
    }

    /// Ends a use started by `stream_enter` (when it returned true).
    pub(crate) fn stream_leave(&self, flow: u64, callout: CalloutId) {
        let mut st = self.stream.state.lock();
        if let Some(n) = st.running.get_mut(&(flow, callout)) {
            *n -= 1;
            if *n == 0 {
                st.running.remove(&(flow, callout));
            }
        }
    }

    /// Forgets the deferrals of an ended flow.
    pub(crate) fn stream_flow_ended(&self, flow: u64) {
        let mut st = self.stream.state.lock();
        let before = st.deferred.len();
        st.deferred.retain(|(f, _, _)| *f != flow);
        let gone = before - st.deferred.len();
        self.stream.deferred.fetch_sub(gone, Ordering::SeqCst);
    }
}
