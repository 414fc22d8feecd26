//! Time as a value: the [`Timestamp`] newtype.
//!
//! Nothing in this crate reads a clock. Every entry point that depends on time takes `now` as a
//! parameter; callers convert their clock (a monotonic `Instant`, a capture's packet time, a fake
//! clock in tests) into a `Timestamp` of nanoseconds since an origin of their choice.
//!
//! Time is expected to be monotonic per state machine. A `now` earlier than one already seen is
//! treated as the latest `now` seen (clamped), so a clock step backwards can delay expiries but
//! never corrupts ordering.

use core::fmt;
use std::time::Duration;

/// A point in time, in nanoseconds since an origin chosen by the caller.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin.
    pub const ZERO: Self = Self(0);
    /// The latest representable time (about 584 years after the origin).
    pub const MAX: Self = Self(u64::MAX);

    /// A timestamp `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// A timestamp `millis` milliseconds after the origin (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000_000))
    }

    /// A timestamp `secs` seconds after the origin (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000_000))
    }

    /// A timestamp `d` after the origin (saturating at [`Timestamp::MAX`]).
    pub fn from_duration(d: Duration) -> Self {
        Self(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time since the origin as a `Duration`.
    pub const fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self + d`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        self.0.saturating_add(Self::from_duration(d).0).into()
    }

    /// `self - earlier`, or zero when `earlier` is later than `self`.
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl From<u64> for Timestamp {
    fn from(nanos: u64) -> Self {
        Self(nanos)
    }
}

impl From<Duration> for Timestamp {
    fn from(d: Duration) -> Self {
        Self::from_duration(d)
    }
}

impl core::ops::Add<Duration> for Timestamp {
    type Output = Self;

    /// Saturating addition.
    fn add(self, d: Duration) -> Self {
        self.saturating_add(d)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(2);
        assert_eq!(
            t.saturating_add(Duration::from_millis(500)),
            Timestamp::from_millis(2_500)
        );
        assert_eq!(
            Timestamp::MAX.saturating_add(Duration::from_secs(1)),
            Timestamp::MAX
        );
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_secs(3)),
            Duration::ZERO
        );
        assert_eq!(Timestamp::from_duration(Duration::MAX), Timestamp::MAX);
        assert_eq!(format!("{t}"), "2.000000000s");
    }
}
