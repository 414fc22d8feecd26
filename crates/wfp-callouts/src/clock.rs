//! A clock the host advances. Callouts read no clock of their own (the engine takes time as a
//! parameter, brief "wfp-core"); the ones that time flows read this handle, which the data path sets
//! from its `now` (the packet timestamp in replay, the monotonic clock in the daemon) before it
//! classifies. Each host owns its clock (in its [`Host`](crate::Host)); there is no process-wide one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Time since the host's epoch, set by the host, read by callouts. Never goes backwards: setting an
/// earlier time is ignored (captures can carry out-of-order timestamps).
#[derive(Debug, Default)]
pub struct Clock {
    nanos: AtomicU64,
}

impl Clock {
    /// A clock at zero.
    pub const fn new() -> Self {
        Self {
            nanos: AtomicU64::new(0),
        }
    }

    /// Advances the clock to `now` (ignored when `now` is earlier than the current time).
    pub fn set(&self, now: Duration) {
        let n = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_max(n, Ordering::Relaxed);
    }

    /// The current time.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards() {
        let c = Clock::new();
        c.set(Duration::from_secs(5));
        c.set(Duration::from_secs(3));
        assert_eq!(c.now(), Duration::from_secs(5));
    }
}
