//! Retry pacing for Cloud Eye: exponential backoff with full jitter, honouring Retry-After.
//!
//! After the n-th consecutive failure the next attempt waits a uniform random time in
//! [0, min(cap, base * 2^n)] ("full jitter", so a fleet that failed together does not
//! retry together), or the server's Retry-After when that is longer.

use std::time::Duration;

/// First retry window.
pub const BASE: Duration = Duration::from_secs(2);
/// Longest window between attempts while Cloud Eye keeps failing.
pub const CAP: Duration = Duration::from_secs(300);
/// A Retry-After beyond this is treated as this (a broken proxy must not silence us for days).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// When the next delivery attempt may start, on the monotonic clock.
#[derive(Debug, Clone)]
pub struct Backoff {
    base_ms: u64,
    cap_ms: u64,
    failures: u32,
    not_before_ns: u64,
    rng: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Backoff {
        Backoff::with_limits(BASE, CAP, seed)
    }

    pub fn with_limits(base: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            base_ms: base.as_millis().max(1) as u64,
            cap_ms: cap.as_millis().max(1) as u64,
            failures: 0,
            not_before_ns: 0,
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// May an attempt start at `now_ns`?
    pub fn ready(&self, now_ns: u64) -> bool {
        now_ns >= self.not_before_ns
    }

    /// The monotonic time before which no attempt starts (0 when none is pending).
    pub fn not_before_ns(&self) -> u64 {
        self.not_before_ns
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Cloud Eye answered: attempts may start at once again.
    pub fn success(&mut self) {
        self.failures = 0;
        self.not_before_ns = 0;
    }

    /// An attempt failed at `now_ns`; returns how long the next one waits.
    pub fn failure(&mut self, now_ns: u64, retry_after: Option<Duration>) -> Duration {
        let window = self
            .base_ms
            .saturating_mul(1u64 << self.failures.min(30))
            .min(self.cap_ms);
        let jittered = Duration::from_millis(self.next_random() % (window + 1));
        let delay = match retry_after {
            Some(ra) => jittered.max(ra.min(MAX_RETRY_AFTER)),
            None => jittered,
        };
        self.failures = self.failures.saturating_add(1);
        self.not_before_ns = now_ns.saturating_add(delay.as_nanos() as u64);
        delay
    }

    /// splitmix64: tiny, good enough to spread retries, no crate needed.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_double_up_to_the_cap() {
        let mut b = Backoff::new(7);
        for n in 0..20u32 {
            let d = b.failure(0, None);
            // window after n failures: min(300 s, 2 s * 2^n)
            let window = (2_000u64 << n.min(20)).min(300_000);
            assert!(
                d.as_millis() as u64 <= window,
                "failure {n}: {d:?} > {window} ms"
            );
        }
        assert_eq!(b.failures(), 20);
    }

    #[test]
    fn jitter_spreads_and_success_resets() {
        let mut b = Backoff::new(1);
        let delays: Vec<u128> = (0..50)
            .map(|_| {
                let d = b.failure(0, None).as_millis();
                b.success();
                d
            })
            .collect();
        // every first failure draws from [0, 2000] ms; 50 draws are not all equal
        assert!(delays.iter().all(|&d| d <= 2000));
        assert!(delays.iter().any(|&d| d != delays[0]));
        assert!(b.ready(0));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut b = Backoff::new(3);
        let d = b.failure(1_000, Some(Duration::from_secs(30)));
        // first window is at most 2 s, so Retry-After (30 s) wins
        assert_eq!(d, Duration::from_secs(30));
        assert!(!b.ready(1_000 + 29_999_999_999));
        assert!(b.ready(1_000 + 30_000_000_000));
        let d = b.failure(0, Some(Duration::from_secs(86_400)));
        assert_eq!(d, MAX_RETRY_AFTER);
    }
}
