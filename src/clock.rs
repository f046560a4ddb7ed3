//! Time sources: a monotonic clock for rates and the wall clock for collect times.
//!
//! Rates use CLOCK_BOOTTIME in nanoseconds: it never steps, keeps counting across
//! suspend, and is comparable between processes of the same boot (the `once` state).

use nix::time::{clock_gettime, ClockId};
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since boot.
pub fn boottime_ns() -> u64 {
    match clock_gettime(ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64,
        Err(_) => monotonic_fallback_ns(),
    }
}

fn monotonic_fallback_ns() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64,
        Err(_) => 0,
    }
}

/// Local wall-clock time in Unix milliseconds (uncorrected).
pub fn wall_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn boottime_advances() {
        let a = super::boottime_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::boottime_ns();
        assert!(b >= a + 1_000_000, "{a} {b}");
    }
}
