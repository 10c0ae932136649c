//! Time as the core sees it: plain numbers passed in by the driver.

use std::time::Duration;

/// A monotonic instant, in nanoseconds since an origin chosen by the driver
/// (process start in production, zero in simulation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

/// The current time: a monotonic instant for timers and the wall clock
/// (nanoseconds since the Unix epoch) for what is shown to people.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub instant: Instant,
    pub unix_nanos: u64,
}

impl Now {
    pub const fn new(instant: Instant, unix_nanos: u64) -> Self {
        Now {
            instant,
            unix_nanos,
        }
    }
}
