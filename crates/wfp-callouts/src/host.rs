//! What the built-in callouts read time from and report to, owned by whoever hosts an engine (a
//! replay run, the daemon's workers, a test) and handed to each callout when it is built
//! ([`Builtin::make_with`](crate::Builtin::make_with)). Nothing here is process-global: two engines
//! in one process, each with its own [`Host`], never see each other's clock or records.
//!
//! ```text
//!   host ── Host::new() ──► Builtin::make_with(&host, params) ──► callout (holds Arcs of the logs)
//!     │ host.clock.set(now) before classifying                        │ reads the clock,
//!     ├─ host.flow_log.drain() / host.stream_log.drain() ◄────────────┘ queues finished records
//!     └─ host.worker.run(&engine) before applying completions/injections (pend decisions,
//!        out-of-band stream edits)
//! ```

use std::sync::Arc;

use crate::interactive::Prompts;
use crate::{Clock, ConnectionLog, FlowLog, RedirectTable, StreamMonitorLog, Worker};

/// What built-in callouts read time from and report to; owned by the host of an engine.
///
/// Cloning shares the same clock and logs (the fields are `Arc`s). [`Host::default`] is
/// [`Host::new`].
#[derive(Clone, Debug)]
pub struct Host {
    /// The clock the flow logger and stream monitor time flows with; the host sets it from its
    /// `now` before it classifies (capture time in a replay, the monotonic clock in the daemon).
    pub clock: Arc<Clock>,
    /// Where `wfp.flow-logger` and `wfp.flow-logger.bytes` queue finished flow records.
    pub flow_log: Arc<FlowLog>,
    /// Where `wfp.stream-monitor` and `wfp.stream-monitor.stream` queue finished reports.
    pub stream_log: Arc<StreamMonitorLog>,
    /// Where `wfp.connection-monitor` keeps open connections and queues finished ones.
    pub connections: Arc<ConnectionLog>,
    /// What `wfp.pending-inspector` and `wfp.stream-editor` (out-of-band) leave to be done outside
    /// classifyFn; the host runs it ([`Worker::run`]) before it applies the engine's
    /// completions and injections.
    pub worker: Arc<Worker>,
    /// The redirections `wfp.datagram-redirector` made, so its instance at the inbound layer
    /// rewrites the replies its outbound instance caused.
    pub redirects: Arc<RedirectTable>,
    /// Where `wfp.interactive` publishes the connections it pended for someone to decide.
    pub prompts: Arc<Prompts>,
}

impl Host {
    /// A fresh clock at zero and empty logs timed by it.
    pub fn new() -> Self {
        let clock = Arc::new(Clock::new());
        Self {
            flow_log: Arc::new(FlowLog::new(Arc::clone(&clock))),
            stream_log: Arc::new(StreamMonitorLog::new(Arc::clone(&clock))),
            connections: Arc::new(ConnectionLog::new(Arc::clone(&clock))),
            worker: Arc::new(Worker::new()),
            redirects: Arc::new(RedirectTable::default()),
            prompts: Arc::new(Prompts::new(Arc::clone(&clock))),
            clock,
        }
    }
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_logs_follow_the_hosts_clock_and_hosts_are_independent() {
        let a = Host::new();
        let b = Host::default();
        a.clock.set(Duration::from_secs(7));
        assert_eq!(a.flow_log.clock().now(), Duration::from_secs(7));
        assert_eq!(b.flow_log.clock().now(), Duration::ZERO);
        assert!(Arc::ptr_eq(&a.clone().flow_log, &a.flow_log));
        assert!(!Arc::ptr_eq(&a.stream_log, &b.stream_log));
    }
}
