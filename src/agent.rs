//! The `run` loop and the `once` command: collect on a schedule, aggregate each report
//! interval, deliver to Cloud Eye, and keep every undelivered batch until it is delivered
//! or too old for Cloud Eye to accept.
//!
//! Single-threaded: one loop sleeps until the next deadline (the next collection, or the
//! next retry when a backlog waits). Sending happens between collections and stops when
//! the next collection is due, so the cadence holds while the network is down; one request
//! can overrun by at most the client's own timeout. Time, signals, sampling and the network
//! are behind traits ([`host::Host`], [`source::Source`], [`sink::Sink`]) so the loop is
//! tested without waiting and without a network.

pub mod aggregate;
pub mod backlog;
pub mod host;
pub mod sink;
pub mod source;

use crate::backoff::Backoff;
use crate::ces::Outcome;
use crate::config::{Config, ConfigSource};
use crate::error::{Error, Result};
use crate::metadata::Identity;
use crate::metric::{encode_batches, BatchContext, Metric, Point};
use crate::reporter::Reporter;
use crate::spool::{Record, Spool};
use crate::{signals, state};
use aggregate::Interval;
use backlog::Backlog;
use host::{Host, RealHost};
use sink::Sink;
use source::{Collectors, Source};
use std::time::Duration;

/// On SIGTERM/SIGINT, time allowed for delivering what is pending before exiting.
pub const STOP_BUDGET: Duration = Duration::from_secs(5);
/// `once` finishes within about this long, so runs from cron never pile up.
pub const ONCE_BUDGET: Duration = Duration::from_secs(20);
/// Points kept while the host identity (needed to encode them) is unknown.
const MAX_UNENCODED_POINTS: usize = 100_000;
const NS: u64 = 1_000_000_000;
const MINUTE_NS: u64 = 60 * NS;

/// `cloudeye-agent run`.
pub fn run(config: Config, source: &ConfigSource) -> Result<()> {
    let _lock = state::Lock::acquire(&config.state_dir)?;
    signals::install()?;
    let reporter = Reporter::new(&config)?;
    let collectors = Collectors::new(&config);
    let mut agent = Agent::new(config, RealHost, collectors, reporter);
    agent.set_config_source(source.clone());
    agent.run()
}

/// `cloudeye-agent once`.
pub fn once(config: Config) -> Result<()> {
    let _lock = state::Lock::acquire(&config.state_dir)?;
    signals::ignore_file_size_limit();
    let reporter = Reporter::new(&config)?;
    let collectors = Collectors::new(&config);
    Agent::new(config, RealHost, collectors, reporter).once()
}

/// This host's delay before its first report, in [0, jitter): a hash of the instance id,
/// so it is stable across restarts and spread across a fleet.
pub fn jitter_offset_ns(instance_id: &str, jitter_secs: u64) -> u64 {
    if jitter_secs == 0 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    for b in instance_id.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits are weak for short keys; fold the high half in.
    (h ^ (h >> 32)) % jitter_secs.saturating_mul(NS)
}

/// The agent's resident memory in MB (VmRSS of /proc/self/status).
pub fn rss_mb() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Collection and report deadlines on the monotonic clock.
#[derive(Debug, Clone)]
struct Schedule {
    collect_ns: u64,
    report_ns: u64,
    next_collect: u64,
    next_report: u64,
}

impl Schedule {
    /// Collections are phased so that the first report lands `offset_ns` after `start`
    /// (never less than one collect interval after it).
    fn new(start: u64, offset_ns: u64, collect_ns: u64, report_ns: u64) -> Schedule {
        let phase = offset_ns % collect_ns;
        let mut first = start + phase;
        if phase < NS {
            first += collect_ns;
        }
        Schedule {
            collect_ns,
            report_ns,
            next_collect: first,
            next_report: (start + offset_ns).max(first),
        }
    }

    /// Will the collection due at `self.next_collect` close a report interval?
    fn closes_report(&self) -> bool {
        self.next_collect >= self.next_report
    }

    /// A collection due at `self.next_collect` ran at `now`; is a report due with it?
    fn collected(&mut self, now: u64) -> bool {
        let tick = self.next_collect;
        self.next_collect += self.collect_ns;
        if self.next_collect <= now {
            let missed = (now - self.next_collect) / self.collect_ns + 1;
            log::warn!("collection fell {missed} interval(s) behind; skipping to the next one");
            self.next_collect += missed * self.collect_ns;
        }
        if tick < self.next_report {
            return false;
        }
        while self.next_report <= tick {
            self.next_report += self.report_ns;
        }
        true
    }
}

enum Attempt {
    /// Delivered, or refused for good: the batch is done with.
    Done,
    /// Keep the batch; the backoff says when to try again.
    Retry,
}

/// Sees every report's points (see [`Agent::set_observer`]).
pub type Observer = Box<dyn FnMut(&[Point])>;

/// The agent: a source of samples, a sink for bodies, a host for time and signals.
pub struct Agent<H: Host, S: Source, K: Sink> {
    host: H,
    source: S,
    sink: K,
    config: Config,
    config_source: Option<ConfigSource>,
    backlog: Backlog,
    backoff: Backoff,
    identity: Option<Identity>,
    identity_warned_ns: Option<u64>,
    unencoded: Vec<Point>,
    dropped: u64,
    /// Used until the sink has learned the server clock offset (`once` saves it).
    offset_hint_ms: i64,
    observer: Option<Observer>,
    /// The interval's latest sample was a light one (no socket tables, processes, mounts).
    last_sample_light: bool,
    /// The identity saved by the previous `once`, used when the metadata service is down.
    saved_identity: Option<Identity>,
}

impl<H: Host, S: Source, K: Sink> Agent<H, S, K> {
    pub fn new(config: Config, host: H, source: S, sink: K) -> Agent<H, S, K> {
        let spool = Spool::open(&config.state_dir.join("spool"), config.spool_max_bytes);
        let seed = host.mono_ns() ^ ((std::process::id() as u64) << 32);
        Agent {
            host,
            source,
            sink,
            config,
            config_source: None,
            backlog: Backlog::new(spool),
            backoff: Backoff::new(seed),
            identity: None,
            identity_warned_ns: None,
            unencoded: Vec::new(),
            dropped: 0,
            offset_hint_ms: 0,
            observer: None,
            last_sample_light: false,
            saved_identity: None,
        }
    }

    /// Where SIGHUP reloads the configuration from.
    pub fn set_config_source(&mut self, source: ConfigSource) {
        self.config_source = Some(source);
    }

    /// Called with every report's points as they are produced (tests compare them with
    /// what the sink received).
    pub fn set_observer(&mut self, f: impl FnMut(&[Point]) + 'static) {
        self.observer = Some(Box::new(f));
    }

    /// Replace the retry policy (tests use short windows).
    pub fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    pub fn host(&self) -> &H {
        &self.host
    }
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }
    pub fn sink(&self) -> &K {
        &self.sink
    }
    pub fn sink_mut(&mut self) -> &mut K {
        &mut self.sink
    }
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The loop of `run`; returns after a stop signal.
    pub fn run(&mut self) -> Result<()> {
        let start = self.host.mono_ns();
        let first = self.source.sample(start, self.host.wall_ms());
        let mut interval = Interval::new(first);
        let instance = match self.ensure_identity() {
            Some(id) => id.instance_id,
            None => self.config.instance_id.clone().unwrap_or_default(),
        };
        let offset = jitter_offset_ns(&instance, self.config.jitter);
        let mut sched = Schedule::new(
            start,
            offset,
            self.config.collect_interval * NS,
            self.config.report_interval * NS,
        );
        log::info!(
            "running: collecting every {} s, reporting every {} s, first report in {:.1} s",
            self.config.collect_interval,
            self.config.report_interval,
            (sched.next_report - start) as f64 / 1e9
        );
        loop {
            let sig = self.host.signals();
            if sig.stop {
                return self.shutdown(&mut interval);
            }
            if sig.reload {
                self.reload(&mut sched);
            }
            let now = self.host.mono_ns();
            if now >= sched.next_collect {
                self.last_sample_light = !sched.closes_report();
                let sample = if self.last_sample_light {
                    self.source.sample_light(now, self.host.wall_ms())
                } else {
                    self.source.sample(now, self.host.wall_ms())
                };
                interval.add(&self.source, sample);
                if sched.collected(now) {
                    self.report(&mut interval);
                }
                self.backlog.flush_memory(now);
                continue;
            }
            if !self.backlog.is_empty() && self.backoff.ready(now) && self.drain(sched.next_collect)
            {
                continue;
            }
            let mut target = sched.next_collect;
            let retry_at = self.backoff.not_before_ns();
            if !self.backlog.is_empty() && retry_at > now {
                target = target.min(retry_at);
            }
            self.host
                .sleep(Duration::from_nanos(target.saturating_sub(now)));
        }
    }

    /// `once`: report rates since the saved state (or over one second) and gauges now,
    /// replay the backlog within [`ONCE_BUDGET`], and save the new state.
    pub fn once(&mut self) -> Result<()> {
        let start = self.host.mono_ns();
        let deadline = start + ONCE_BUDGET.as_nanos() as u64;
        let boot_id = state::boot_id(&self.config.proc_root);
        let saved = state::load(&self.config.state_dir);
        let max_age = (3 * self.config.report_interval * NS).max(10 * MINUTE_NS);
        if let Some(s) = &saved {
            self.offset_hint_ms = s.clock_offset_ms;
            self.saved_identity = s.identity.clone();
        }
        let prev = match saved {
            Some(s) if s.usable(&boot_id, start, max_age) => s.sample,
            _ => {
                log::debug!("no usable previous state: sampling twice, 1 s apart");
                let first = self.source.sample(start, self.host.wall_ms());
                self.sleep_until(start + NS);
                first
            }
        };
        let cur = self.source.sample(self.host.mono_ns(), self.host.wall_ms());
        let mut interval = Interval::new(prev);
        interval.add(&self.source, cur.clone());
        self.report(&mut interval);
        if let Some(e) = self.identity_error() {
            return Err(e);
        }
        self.drain(deadline);
        let now = self.host.mono_ns();
        self.backlog.flush_memory(now);
        if self.backlog.memory_len() > 0 {
            log::error!(
                "spool unusable: {} undelivered batches are lost",
                self.backlog.memory_len()
            );
        }
        let state = state::State {
            boot_id,
            sample: cur,
            clock_offset_ms: self.clock_offset_ms(),
            identity: self.identity.clone(),
        };
        state::save(&self.config.state_dir, &state)
    }

    fn identity_error(&mut self) -> Option<Error> {
        if self.identity.is_some() {
            return None;
        }
        match self.sink.identity() {
            Ok(id) => {
                self.identity = Some(id);
                None
            }
            Err(e) => Some(e.context("cannot report: the host identity is unknown")),
        }
    }

    fn sleep_until(&mut self, mono: u64) {
        loop {
            let now = self.host.mono_ns();
            if now >= mono {
                return;
            }
            self.host.sleep(Duration::from_nanos(mono - now));
        }
    }

    fn clock_offset_ms(&self) -> i64 {
        match self.sink.clock_offset_ms() {
            0 => self.offset_hint_ms,
            o => o,
        }
    }

    /// Local wall time corrected to the server's clock.
    fn corrected_wall_ms(&self) -> i64 {
        self.host.wall_ms() + self.clock_offset_ms()
    }

    fn ensure_identity(&mut self) -> Option<Identity> {
        if self.identity.is_none() {
            match self.sink.identity() {
                Ok(id) => self.identity = Some(id),
                Err(e) if self.saved_identity.is_some() => {
                    log::warn!("{e}; using the host identity saved by the previous run");
                    self.identity = self.saved_identity.take();
                }
                Err(e) => {
                    let now = self.host.mono_ns();
                    if self
                        .identity_warned_ns
                        .map_or(true, |t| now - t >= MINUTE_NS)
                    {
                        log::error!("host identity unknown, holding points: {e}");
                        self.identity_warned_ns = Some(now);
                    }
                }
            }
        }
        self.identity.clone()
    }

    /// Close the interval, add the self metrics, encode and hand the bodies on.
    fn report(&mut self, interval: &mut Interval) {
        let Some((mut metrics, end_wall_ms)) = interval.finish(&self.source) else {
            return;
        };
        metrics.retain(|m| m.value.is_finite());
        self.self_metrics(&mut metrics);
        self.custom_metrics(&mut metrics);
        let collect_time_ms = end_wall_ms + self.clock_offset_ms();
        let points: Vec<Point> = metrics
            .into_iter()
            .map(|metric| Point {
                metric,
                collect_time_ms,
            })
            .collect();
        if let Some(observe) = self.observer.as_mut() {
            observe(&points);
        }
        self.unencoded.extend(points);
        self.encode_and_submit();
    }

    /// Items from the drop directory, read once per report; files older than two
    /// report intervals are stale and ignored.
    fn custom_metrics(&self, out: &mut Vec<Metric>) {
        let Some(dir) = &self.config.custom_dir else {
            return;
        };
        let max_age = Duration::from_secs(2 * self.config.report_interval);
        crate::custom::collect_custom(
            dir,
            &self.config.custom_namespace,
            max_age,
            std::time::SystemTime::now(),
            out,
        );
    }

    fn self_metrics(&mut self, out: &mut Vec<Metric>) {
        if let Some(rss) = rss_mb() {
            out.push(Metric::new("agent_rss", "MB", rss));
        }
        out.push(Metric::new(
            "agent_spool_bytes",
            "Byte",
            self.backlog.spool_bytes() as f64,
        ));
        let dropped = std::mem::take(&mut self.dropped) + self.backlog.take_dropped();
        out.push(Metric::new("agent_dropped_points", "Count", dropped as f64));
    }

    fn encode_and_submit(&mut self) {
        let Some(id) = self.ensure_identity() else {
            if self.unencoded.len() > MAX_UNENCODED_POINTS {
                let excess = self.unencoded.len() - MAX_UNENCODED_POINTS;
                self.unencoded.drain(..excess);
                self.dropped += excess as u64;
            }
            return;
        };
        let ctx = BatchContext {
            namespace: id.namespace,
            instance_id: id.instance_id,
            ttl: self.config.ttl,
        };
        let batches = encode_batches(&self.unencoded, &ctx);
        self.unencoded.clear();
        for b in &batches {
            self.submit(Record::from_batch(b));
        }
    }

    /// Fresh batches go first (Cloud Eye aggregates only points under 10 minutes old);
    /// when that fails or a retry is pending, they join the backlog.
    fn submit(&mut self, rec: Record) {
        if self.backoff.ready(self.host.mono_ns()) {
            if let Attempt::Done = self.attempt(&rec) {
                return;
            }
        }
        let now = self.host.mono_ns();
        self.backlog.push(rec, now);
    }

    fn attempt(&mut self, rec: &Record) -> Attempt {
        let outcome = self.sink.deliver(&rec.body);
        let now = self.host.mono_ns();
        match outcome {
            Outcome::Delivered => {
                if self.backoff.failures() > 0 {
                    log::info!(
                        "Cloud Eye answers again; {} batches waiting",
                        self.backlog.len()
                    );
                }
                self.backoff.success();
                Attempt::Done
            }
            Outcome::Retryable {
                retry_after,
                reason,
            } => {
                let d = self.backoff.failure(now, retry_after);
                log::warn!(
                    "delivery failed ({reason}); keeping the batch, next try in {:.1} s",
                    d.as_secs_f64()
                );
                Attempt::Retry
            }
            Outcome::Unauthorized { reason } => {
                let d = self.backoff.failure(now, None);
                log::error!(
                    "Cloud Eye refused the credentials ({reason}); keeping the batch, next try in {:.1} s",
                    d.as_secs_f64()
                );
                Attempt::Retry
            }
            Outcome::Permanent {
                status,
                code,
                message,
            } => {
                log::error!(
                    "Cloud Eye rejected a batch of {} points for good (HTTP {status}, {code}: {message}); dropping that batch only",
                    rec.items
                );
                self.dropped += rec.items as u64;
                Attempt::Done
            }
        }
    }

    /// Replay the backlog, oldest first, until it is empty, a delivery fails or the
    /// monotonic `deadline` passes. True if at least one delivery was attempted.
    fn drain(&mut self, deadline: u64) -> bool {
        let mut attempted = false;
        loop {
            let now = self.host.mono_ns();
            if now >= deadline || !self.backoff.ready(now) {
                break;
            }
            let Some(rec) = self.backlog.front(self.corrected_wall_ms()) else {
                break;
            };
            attempted = true;
            match self.attempt(&rec) {
                Attempt::Done => self.backlog.pop_front(),
                Attempt::Retry => break,
            }
        }
        attempted
    }

    fn shutdown(&mut self, interval: &mut Interval) -> Result<()> {
        log::info!(
            "stopping: delivering what is pending (at most {} s)",
            STOP_BUDGET.as_secs()
        );
        let deadline = self.host.mono_ns() + STOP_BUDGET.as_nanos() as u64;
        if interval.has_samples() && self.last_sample_light {
            // The partial interval ends now, with a full sample so that it has rates.
            let last = self.source.sample(self.host.mono_ns(), self.host.wall_ms());
            interval.add(&self.source, last);
        }
        self.report(interval);
        let now = self.host.mono_ns();
        self.backlog.flush_memory(now);
        self.drain(deadline);
        self.backlog.flush_memory(self.host.mono_ns());
        let lost = self.backlog.memory_len();
        if lost > 0 {
            log::error!("stopping with {lost} undelivered batches that could not be spooled");
        }
        if !self.unencoded.is_empty() {
            log::error!(
                "stopping with {} points never encoded (host identity unknown)",
                self.unencoded.len()
            );
        }
        log::info!("stopped; {} batches wait in the spool", self.backlog.len());
        Ok(())
    }

    fn reload(&mut self, sched: &mut Schedule) {
        let Some(source) = self.config_source.clone() else {
            return;
        };
        let mut new = match Config::load(&source) {
            Ok(c) => c,
            Err(e) => {
                log::error!("reload failed, keeping the old configuration: {e}");
                return;
            }
        };
        if new.state_dir != self.config.state_dir {
            log::warn!("reload: a new state_dir takes effect only after a restart");
            new.state_dir = self.config.state_dir.clone();
        }
        if let Err(e) = self.sink.reconfigure(&new) {
            log::error!("reload failed, keeping the old configuration: {e}");
            return;
        }
        self.source.reconfigure(&new);
        self.backlog.spool_mut().set_max_bytes(new.spool_max_bytes);
        sched.collect_ns = new.collect_interval * NS;
        sched.report_ns = new.report_interval * NS;
        if new.instance_id != self.config.instance_id || new.namespace != self.config.namespace {
            self.identity = None;
        }
        self.config = new;
        log::info!("configuration reloaded from {}", source.path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_offset_is_stable_bounded_and_spread() {
        assert_eq!(jitter_offset_ns("i-1", 0), 0);
        let a = jitter_offset_ns("i-1", 60);
        assert_eq!(a, jitter_offset_ns("i-1", 60));
        assert!(a < 60 * NS);
        // 100 hosts over 60 s: the offsets land in most of the 10 six-second buckets.
        let mut buckets = [0u32; 10];
        for i in 0..100 {
            let o = jitter_offset_ns(&format!("{i:08x}-0000-4000-8000-00000000cafe"), 60);
            buckets[(o / (6 * NS)) as usize] += 1;
        }
        assert!(
            buckets.iter().filter(|&&n| n > 0).count() >= 8,
            "{buckets:?}"
        );
        assert!(buckets.iter().all(|&n| n < 30), "{buckets:?}");
    }

    #[test]
    fn schedule_phases_collections_to_the_offset() {
        // offset 25.5 s, collect 10 s, report 60 s: phase 5.5 s, ticks at 5.5, 15.5, 25.5 ...
        let mut s = Schedule::new(0, 25_500_000_000, 10 * NS, 60 * NS);
        assert_eq!(s.next_collect, 5_500_000_000);
        let mut reports = Vec::new();
        for _ in 0..10 {
            let tick = s.next_collect;
            if s.collected(tick) {
                reports.push(tick);
            }
        }
        // first report at 25.5 s, then every 60 s: 85.5 s
        assert_eq!(reports, vec![25_500_000_000, 85_500_000_000]);
    }

    #[test]
    fn schedule_small_offset_waits_one_interval() {
        // offset 0.3 s < 1 s: the first collection is one interval later, at 10.3 s.
        let s = Schedule::new(0, 300_000_000, 10 * NS, 60 * NS);
        assert_eq!(s.next_collect, 10_300_000_000);
        assert_eq!(s.next_report, 10_300_000_000);
    }

    #[test]
    fn schedule_skips_missed_ticks() {
        let mut s = Schedule::new(0, 0, 10 * NS, 60 * NS);
        assert_eq!(s.next_collect, 10 * NS);
        // the tick due at 10 s ran at 37 s: next due 40 s (20 s and 30 s are skipped)
        s.collected(37 * NS);
        assert_eq!(s.next_collect, 40 * NS);
    }

    #[test]
    fn rss_is_plausible() {
        let rss = rss_mb().unwrap();
        assert!(rss > 0.1 && rss < 4096.0, "{rss}");
    }
}
