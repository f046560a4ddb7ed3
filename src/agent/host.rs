//! The agent's view of time and signals, behind a trait so tests can run hours of
//! schedule in milliseconds and step the wall clock at will.

use std::time::Duration;

/// Signals the loop acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// SIGTERM or SIGINT: stop.
    pub stop: bool,
    /// SIGHUP: reload the configuration.
    pub reload: bool,
}

/// Time sources and sleeping. Monotonic time drives every schedule; wall time only
/// stamps collect times and judges the 3-day limit.
pub trait Host {
    /// A clock that never steps (CLOCK_BOOTTIME for the real host), ns.
    fn mono_ns(&self) -> u64;
    /// Local wall clock, Unix ms (uncorrected).
    fn wall_ms(&self) -> i64;
    /// Sleep up to `d`; may return early (signals).
    fn sleep(&mut self, d: Duration);
    /// Signals received since the last call (stop stays set once seen).
    fn signals(&mut self) -> Signals;
}

/// Longest single sleep: bounds the delay when a signal lands just before a sleep starts.
const SLICE: Duration = Duration::from_secs(1);

/// The real machine: CLOCK_BOOTTIME, the system clock, clock_nanosleep and the
/// flags set by [`crate::signals`].
#[derive(Debug, Default)]
pub struct RealHost;

impl Host for RealHost {
    fn mono_ns(&self) -> u64 {
        crate::clock::boottime_ns()
    }

    fn wall_ms(&self) -> i64 {
        crate::clock::wall_ms()
    }

    fn sleep(&mut self, d: Duration) {
        use nix::sys::time::TimeSpec;
        use nix::time::{clock_nanosleep, ClockId, ClockNanosleepFlags};
        let d = d.min(SLICE);
        if d.is_zero() {
            return;
        }
        // EINTR (a signal) ends the sleep early, which is the point.
        let _ = clock_nanosleep(
            ClockId::CLOCK_MONOTONIC,
            ClockNanosleepFlags::empty(),
            &TimeSpec::from_duration(d),
        );
    }

    fn signals(&mut self) -> Signals {
        Signals {
            stop: crate::signals::stop_requested(),
            reload: crate::signals::take_reload(),
        }
    }
}
