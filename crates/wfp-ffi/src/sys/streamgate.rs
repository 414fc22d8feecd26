//! Stream classifyFns in progress per flow, so that an out-of-band stream injection lands after
//! the indication in progress (wfp-reference §9.2).
//!
//! The data path splices the stream injections a callout made during its classifyFn into the
//! segment it classified (the inline edit, T-ST-2). A driver's worker thread that injects out of
//! band (stmedit's out-of-band editor re-injecting from a work item) may call
//! FwpsStreamInjectAsync0 while a classifyFn of the same flow runs on the data path — typically the
//! very indication that queued the work. On Windows that injection goes into the stream after the
//! indication in progress, never into it; here the call waits until the flow's stream classifyFns
//! have returned before it reaches the engine. A wait that reaches its bound (a classifyFn that
//! waits for the injecting thread) is a Verifier finding ([`crate::Finding::StreamInjectWaitExpired`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// The most an out-of-band injection waits for a classifyFn of its flow: a driver whose
/// classifyFn waits for the injecting thread would otherwise deadlock (the injection then goes
/// ahead, as before this gate existed, and the Verifier reports it).
const BOUND: Duration = Duration::from_secs(2);

/// How many stream classifyFns run per flow handle.
#[derive(Debug)]
pub(crate) struct StreamGate {
    running: Mutex<HashMap<u64, usize>>,
    cv: Condvar,
    /// How long [`StreamGate::wait_clear`] waits at most ([`BOUND`]).
    bound: Duration,
}

impl Default for StreamGate {
    fn default() -> Self {
        Self {
            running: Mutex::default(),
            cv: Condvar::new(),
            bound: BOUND,
        }
    }
}

/// A stream classifyFn in progress (ends when dropped).
pub(crate) struct InClassify<'a> {
    gate: &'a StreamGate,
    flow: u64,
}

/// [`StreamGate::wait_clear`] reached its bound with a classifyFn of the flow still running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaitExpired {
    /// How long it waited.
    pub(crate) waited: Duration,
}

impl StreamGate {
    /// A stream classifyFn of `flow` starts.
    pub(crate) fn enter(&self, flow: u64) -> InClassify<'_> {
        *self.running.lock().entry(flow).or_default() += 1;
        InClassify { gate: self, flow }
    }

    /// Waits (at most [`BOUND`]) until no stream classifyFn of `flow` runs; `Err` when one still
    /// runs at the bound (the caller goes ahead and reports it).
    pub(crate) fn wait_clear(&self, flow: u64) -> Result<(), WaitExpired> {
        let deadline = Instant::now() + self.bound;
        let mut r = self.running.lock();
        while r.get(&flow).is_some_and(|n| *n > 0) {
            if self.cv.wait_until(&mut r, deadline).timed_out()
                && r.get(&flow).is_some_and(|n| *n > 0)
            {
                return Err(WaitExpired { waited: self.bound });
            }
        }
        Ok(())
    }
}

impl Drop for InClassify<'_> {
    fn drop(&mut self) {
        let mut r = self.gate.running.lock();
        if let Some(n) = r.get_mut(&self.flow) {
            *n -= 1;
            if *n == 0 {
                r.remove(&self.flow);
            }
        }
        self.gate.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use std::time::Duration;

    use super::{StreamGate, WaitExpired};

    /// An out-of-band injection of a flow whose classifyFn runs goes on after it returns; one of
    /// another flow does not wait.
    #[test]
    fn out_of_band_waits_for_the_flows_classify_only() {
        let gate = Arc::new(StreamGate::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let in_classify = gate.enter(7);
        assert_eq!(gate.wait_clear(8), Ok(()));
        let (g, o) = (gate.clone(), order.clone());
        let worker = std::thread::spawn(move || {
            assert_eq!(g.wait_clear(7), Ok(()));
            o.lock().push("inject");
        });
        // Gives the worker the time to get past the gate if it did not wait.
        std::thread::sleep(std::time::Duration::from_millis(20));
        order.lock().push("classify returns");
        drop(in_classify);
        worker.join().unwrap();
        assert_eq!(*order.lock(), vec!["classify returns", "inject"]);
        assert!(gate.running.lock().is_empty());
    }

    /// A classifyFn that does not return within the bound: the wait ends with `Err` (reported as
    /// a Verifier finding by FwpsStreamInjectAsync0).
    #[test]
    fn a_wait_that_reaches_its_bound_is_reported() {
        let gate = StreamGate {
            bound: Duration::from_millis(5),
            ..StreamGate::default()
        };
        let _in_classify = gate.enter(7);
        assert_eq!(
            gate.wait_clear(7),
            Err(WaitExpired {
                waited: Duration::from_millis(5)
            })
        );
        assert_eq!(gate.wait_clear(8), Ok(()));
    }
}
