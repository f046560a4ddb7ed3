//! The agent loop under faults, on virtual time: a fake host (monotonic and wall clocks,
//! signals), a test metric source and a scripted sink. Every scenario ends by checking that
//! the set of (namespace, metric, dimensions, collect_time) received equals the set
//! collected. A few tests run the real binary (kill -9, lock) and, once the Cloud Eye
//! client lands, real HTTP against tests/common/fake_server.rs.

mod common;

use cloudeye_agent::agent::host::{Host, Signals};
use cloudeye_agent::agent::sink::Sink;
use cloudeye_agent::agent::source::Source;
use cloudeye_agent::agent::Agent;
use cloudeye_agent::ces::Outcome;
use cloudeye_agent::collect::Sample;
use cloudeye_agent::config::{Config, ConfigSource};
use cloudeye_agent::error::Result;
use cloudeye_agent::metadata::Identity;
use cloudeye_agent::metric::{Metric, Point};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

const NS: u64 = 1_000_000_000;
/// Virtual monotonic time at the start of every scenario.
const T0: u64 = 1_000 * NS;
/// Wall clock (Unix ms) when the monotonic clock reads 0; wall = WALL0 + mono in ms + steps.
const WALL0: i64 = 1_750_000_000_000;
const INSTANCE: &str = "i-test";

// ---------------------------------------------------------------- fake host

enum Event {
    Stop,
    /// Optionally rewrite the config file first, then deliver SIGHUP.
    Reload(Option<(PathBuf, String)>),
    StepWall(i64),
    Call(Box<dyn FnOnce()>),
}

struct HostState {
    mono: u64,
    wall_step_ms: i64,
    events: Vec<(u64, Event)>,
    stop: bool,
    reload: bool,
}

/// Virtual time shared by the host, the source and the sink.
#[derive(Clone)]
struct Clock(Rc<RefCell<HostState>>);

impl Clock {
    fn new() -> Clock {
        Clock(Rc::new(RefCell::new(HostState {
            mono: T0,
            wall_step_ms: 0,
            events: Vec::new(),
            stop: false,
            reload: false,
        })))
    }

    /// Schedule `e` at `at_s` seconds after T0.
    fn at(&self, at_s: f64, e: Event) {
        let t = T0 + (at_s * 1e9) as u64;
        let mut s = self.0.borrow_mut();
        s.events.push((t, e));
        s.events.sort_by_key(|(t, _)| *t);
    }

    fn mono(&self) -> u64 {
        self.0.borrow().mono
    }

    /// Seconds since T0.
    fn secs(&self) -> f64 {
        (self.mono() - T0) as f64 / 1e9
    }

    /// Move time forward by `d`; stops early at a signal (as a real sleep would).
    fn advance(&self, d: Duration, wake_on_signal: bool) {
        let target = self.mono() + d.as_nanos() as u64;
        loop {
            let next = {
                let s = self.0.borrow();
                s.events.first().map(|(t, _)| *t).filter(|t| *t <= target)
            };
            let Some(t) = next else { break };
            let (_, e) = {
                let mut s = self.0.borrow_mut();
                s.mono = s.mono.max(t);
                s.events.remove(0)
            };
            let signalled = self.apply(e);
            if signalled && wake_on_signal {
                return;
            }
        }
        let mut s = self.0.borrow_mut();
        s.mono = s.mono.max(target);
    }

    fn apply(&self, e: Event) -> bool {
        match e {
            Event::Stop => self.0.borrow_mut().stop = true,
            Event::Reload(write) => {
                if let Some((path, text)) = write {
                    std::fs::write(path, text).unwrap();
                }
                self.0.borrow_mut().reload = true;
            }
            Event::StepWall(ms) => {
                self.0.borrow_mut().wall_step_ms += ms;
                return false;
            }
            Event::Call(f) => {
                f();
                return false;
            }
        }
        true
    }
}

impl Host for Clock {
    fn mono_ns(&self) -> u64 {
        self.mono()
    }
    fn wall_ms(&self) -> i64 {
        let s = self.0.borrow();
        WALL0 + (s.mono / 1_000_000) as i64 + s.wall_step_ms
    }
    fn sleep(&mut self, d: Duration) {
        self.advance(d, true);
    }
    fn signals(&mut self) -> Signals {
        // Events due "now" count as delivered.
        self.advance(Duration::ZERO, true);
        let mut s = self.0.borrow_mut();
        Signals {
            stop: s.stop,
            reload: std::mem::take(&mut s.reload),
        }
    }
}

// ---------------------------------------------------------------- test source

/// Gauges derived from the sample time, so expected values can be computed by hand:
/// `test_gauge` = mono seconds; `test_sometimes{k=v}` = mono seconds, missing when that is
/// a multiple of 3; `test_rate` = seconds between the two samples.
struct TestSource {
    samples: Rc<RefCell<Vec<u64>>>,
    light: Rc<RefCell<Vec<u64>>>,
}

impl Source for TestSource {
    fn sample_light(&mut self, mono_ns: u64, wall_ms: i64) -> Sample {
        self.light.borrow_mut().push(mono_ns);
        self.sample(mono_ns, wall_ms)
    }
    fn sample(&mut self, mono_ns: u64, wall_ms: i64) -> Sample {
        self.samples.borrow_mut().push(mono_ns);
        Sample {
            mono_ns,
            wall_ms,
            ..Sample::default()
        }
    }
    fn gauges(&self, s: &Sample, out: &mut Vec<Metric>) {
        let secs = s.mono_ns / NS;
        out.push(Metric::new("test_gauge", "Count", secs as f64));
        if secs % 3 != 0 {
            out.push(Metric::new("test_sometimes", "Count", secs as f64).with_dim("k", "v"));
        }
    }
    fn rates(&self, a: &Sample, b: &Sample, out: &mut Vec<Metric>) {
        out.push(Metric::new(
            "test_rate",
            "Count/s",
            (b.mono_ns - a.mono_ns) as f64 / 1e9,
        ));
    }
}

// ---------------------------------------------------------------- scripted sink

/// One call to `deliver`: when (seconds since T0), how many items, and the answer.
#[derive(Debug, Clone)]
struct Call {
    at: f64,
    items: usize,
    outcome: Outcome,
}

type Script = Box<dyn FnMut(f64, usize) -> (Outcome, Duration)>;

struct FakeSink {
    clock: Clock,
    script: Script,
    calls: Vec<Call>,
    delivered: Vec<Vec<u8>>,
}

impl Sink for FakeSink {
    fn identity(&mut self) -> Result<Identity> {
        Ok(Identity {
            instance_id: INSTANCE.into(),
            project_id: "p".into(),
            region: "r".into(),
            namespace: "AGT.ECS".into(),
        })
    }
    fn deliver(&mut self, body: &[u8]) -> Outcome {
        let items = items_of(body).len();
        let at = self.clock.secs();
        let (outcome, took) = (self.script)(at, items);
        self.clock.advance(took, false);
        if outcome == Outcome::Delivered {
            self.delivered.push(body.to_vec());
        }
        self.calls.push(Call {
            at,
            items,
            outcome: outcome.clone(),
        });
        outcome
    }
    fn clock_offset_ms(&self) -> i64 {
        0
    }
}

fn ok() -> (Outcome, Duration) {
    (Outcome::Delivered, Duration::from_millis(20))
}

fn retry(reason: &str) -> (Outcome, Duration) {
    (
        Outcome::Retryable {
            retry_after: None,
            reason: reason.into(),
        },
        Duration::from_millis(5),
    )
}

// ---------------------------------------------------------------- points as sets

type Key = (String, String, String, i64);

fn items_of(body: &[u8]) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v.as_array().unwrap().clone()
}

fn key_of_item(it: &serde_json::Value) -> Key {
    let dims = it["metric"]["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}={}",
                d["name"].as_str().unwrap(),
                d["value"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    (
        it["metric"]["namespace"].as_str().unwrap().to_string(),
        it["metric"]["metric_name"].as_str().unwrap().to_string(),
        dims,
        it["collect_time"].as_i64().unwrap(),
    )
}

fn key_of_point(p: &Point) -> Key {
    let mut dims = format!("instance_id={INSTANCE}");
    for d in &p.metric.dims {
        dims.push_str(&format!(",{}={}", d.name, d.value));
    }
    (
        p.metric
            .namespace
            .clone()
            .unwrap_or_else(|| "AGT.ECS".into()),
        p.metric.name.to_string(),
        dims,
        p.collect_time_ms,
    )
}

fn received_keys(bodies: &[Vec<u8>]) -> Vec<Key> {
    bodies
        .iter()
        .flat_map(|b| items_of(b))
        .map(|i| key_of_item(&i))
        .collect()
}

fn set<T: Ord + Clone>(v: &[T]) -> BTreeSet<T> {
    v.iter().cloned().collect()
}

// ---------------------------------------------------------------- harness

/// Every body still waiting in the spool at `dir` (consumes it).
fn spooled_bodies(dir: &Path) -> Vec<Vec<u8>> {
    let mut spool = cloudeye_agent::spool::Spool::open(dir, 16 << 20);
    let mut out = Vec::new();
    while let Some(r) = spool.front(WALL0 + 10_000_000) {
        out.push(r.body);
        spool.pop_front();
    }
    out
}

struct World {
    clock: Clock,
    collected: Rc<RefCell<Vec<Point>>>,
    samples: Rc<RefCell<Vec<u64>>>,
    light: Rc<RefCell<Vec<u64>>>,
    dir: PathBuf,
}

impl World {
    fn new(name: &str) -> World {
        World {
            clock: Clock::new(),
            collected: Rc::new(RefCell::new(Vec::new())),
            samples: Rc::new(RefCell::new(Vec::new())),
            light: Rc::new(RefCell::new(Vec::new())),
            dir: common::temp_dir(name),
        }
    }

    fn config(&self, collect: u64, report: u64) -> Config {
        Config {
            collect_interval: collect,
            report_interval: report,
            jitter: 0,
            state_dir: self.dir.join("state"),
            instance_id: Some(INSTANCE.into()),
            ..Config::default()
        }
    }

    fn agent(&self, config: Config, script: Script) -> Agent<Clock, TestSource, FakeSink> {
        let sink = FakeSink {
            clock: self.clock.clone(),
            script,
            calls: Vec::new(),
            delivered: Vec::new(),
        };
        let source = TestSource {
            samples: self.samples.clone(),
            light: self.light.clone(),
        };
        let mut agent = Agent::new(config, self.clock.clone(), source, sink);
        let collected = self.collected.clone();
        agent.set_observer(move |pts| collected.borrow_mut().extend_from_slice(pts));
        agent
    }

    fn collected_keys(&self) -> Vec<Key> {
        self.collected.borrow().iter().map(key_of_point).collect()
    }

    /// The invariant of every scenario: nothing collected is missing, nothing is invented,
    /// and (no crash happened) nothing arrived twice.
    fn assert_all_delivered_once(&self, delivered: &[Vec<u8>]) {
        let got = received_keys(delivered);
        let want = self.collected_keys();
        assert!(!want.is_empty());
        let (got_set, want_set) = (set(&got), set(&want));
        let missing: Vec<_> = want_set.difference(&got_set).take(5).collect();
        let extra: Vec<_> = got_set.difference(&want_set).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "collected but not received: {missing:?}; received but not collected: {extra:?}"
        );
        assert_eq!(got.len(), want.len(), "some point was delivered twice");
    }
}

// ---------------------------------------------------------------- scenarios

/// Between reports the loop takes light samples (no socket tables, processes, mounts);
/// the sample that closes a report, and the one at stop, are full.
#[test]
fn only_the_samples_closing_a_report_are_full() {
    let w = World::new("light");
    w.clock.at(125.5, Event::Stop);
    let mut agent = w.agent(w.config(10, 60), Box::new(|_, _| ok()));
    agent.run().unwrap();
    let all = w.samples.borrow().clone();
    let light = w.light.borrow().clone();
    let full: Vec<u64> = all.iter().filter(|t| !light.contains(t)).copied().collect();
    // jitter 0: baseline at 0 s, first report at the first tick (10 s), then every 60 s
    // (70 s); collections every 10 s up to 120 s; the stop at 125.5 s adds a full one.
    let secs = |v: &[u64]| v.iter().map(|t| (t - T0) as f64 / 1e9).collect::<Vec<_>>();
    assert_eq!(secs(&full), vec![0.0, 10.0, 70.0, 125.5]);
    assert_eq!(
        secs(&light),
        vec![20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 90.0, 100.0, 110.0, 120.0]
    );
}

#[test]
fn gauges_are_averaged_and_rates_span_the_interval() {
    let w = World::new("agg");
    w.clock.at(11.5, Event::Stop);
    let mut agent = w.agent(w.config(1, 5), Box::new(|_, _| ok()));
    agent.run().unwrap();
    let bodies = &agent.sink().delivered;
    // jitter 0: baseline at T0 (1000 s), first report at the first tick (1001 s), then
    // every 5 s: 1006 s, 1011 s, and the partial interval at stop (sample at 1011 s is the
    // last; nothing after it, so no extra report).
    assert_eq!(bodies.len(), 3, "{:?}", agent.sink().calls);
    let second = items_of(&bodies[1]);
    let value = |name: &str| {
        second
            .iter()
            .find(|i| i["metric"]["metric_name"] == name)
            .map(|i| i["value"].as_f64().unwrap())
    };
    // samples at 1002..=1006 s: mean (1002+1003+1004+1005+1006)/5 = 1004
    assert_eq!(value("test_gauge"), Some(1004.0));
    // present only where secs % 3 != 0: 1003, 1004, 1006 -> 3013/3 = 1004.3333
    assert_eq!(value("test_sometimes"), Some(1004.3333));
    // rate from the previous interval's last sample (1001 s) to 1006 s
    assert_eq!(value("test_rate"), Some(5.0));
    // collect_time = wall clock at the interval's last sample: WALL0 + 1006 s
    assert_eq!(second[0]["collect_time"].as_i64(), Some(WALL0 + 1_006_000));
    for name in ["agent_rss", "agent_spool_bytes", "agent_dropped_points"] {
        assert!(value(name).is_some(), "{name} missing");
    }
    assert_eq!(value("agent_dropped_points"), Some(0.0));
    w.assert_all_delivered_once(bodies);
}

#[test]
fn runs_of_500s_back_off_then_everything_arrives() {
    let w = World::new("500s");
    w.clock.at(700.0, Event::Stop);
    let script = Box::new(|at: f64, _| if at < 300.0 { retry("HTTP 500") } else { ok() });
    let mut agent = w.agent(w.config(1, 5), script);
    agent.run().unwrap();
    let calls = &agent.sink().calls;
    let failures: Vec<f64> = calls
        .iter()
        .filter(|c| c.at < 300.0)
        .map(|c| c.at)
        .collect();
    // 60 reports fell in the outage; with backoff (windows 2, 4, 8 ... 256 s, full jitter)
    // far fewer attempts are made: without jitter luck, at most ~ 1 per window + 1.
    assert!(
        failures.len() < 30,
        "{} attempts during the outage",
        failures.len()
    );
    for pair in failures.windows(2) {
        assert!(
            pair[1] - pair[0] <= 300.0 + 1.0,
            "gap beyond the 5 min cap: {pair:?}"
        );
    }
    assert!(agent.backlog().is_empty());
    w.assert_all_delivered_once(&agent.sink().delivered);
}

#[test]
fn throttling_429_honours_retry_after() {
    let w = World::new("429");
    w.clock.at(400.0, Event::Stop);
    let mut n = 0;
    let script = Box::new(move |_, _| {
        n += 1;
        if n <= 3 {
            let o = Outcome::Retryable {
                retry_after: Some(Duration::from_secs(30)),
                reason: "HTTP 429 APIG.0308".into(),
            };
            (o, Duration::from_millis(5))
        } else {
            ok()
        }
    });
    let mut agent = w.agent(w.config(1, 5), script);
    agent.run().unwrap();
    let at: Vec<f64> = agent.sink().calls.iter().map(|c| c.at).collect();
    for i in 0..3 {
        // each of the first 3 answers said "Retry-After: 30"
        assert!(
            at[i + 1] - at[i] >= 30.0,
            "attempt {} came {} s after a 429",
            i + 1,
            at[i + 1] - at[i]
        );
    }
    w.assert_all_delivered_once(&agent.sink().delivered);
}

#[test]
fn dropped_connections_lose_nothing() {
    let w = World::new("drop");
    w.clock.at(600.0, Event::Stop);
    let mut n = 0u32;
    // every third attempt has its connection reset, all through the run
    let script = Box::new(move |_, _| {
        n += 1;
        if n % 3 == 0 {
            retry("connection reset by peer")
        } else {
            ok()
        }
    });
    let mut agent = w.agent(w.config(1, 5), script);
    agent.run().unwrap();
    assert!(agent
        .sink()
        .calls
        .iter()
        .any(|c| c.outcome != Outcome::Delivered));
    // the batch of the final (stop) report may have hit a reset: it waits in the spool
    let mut kept = agent.sink().delivered.clone();
    drop(agent);
    kept.extend(spooled_bodies(&w.dir.join("state/spool")));
    w.assert_all_delivered_once(&kept);
}

#[test]
fn slow_responses_beyond_the_timeout_keep_the_collection_cadence() {
    let w = World::new("slow");
    w.clock.at(600.5, Event::Stop);
    // For 300 s every request hangs until the client's 10 s timeout.
    let script = Box::new(|at: f64, _| {
        if at < 300.0 {
            let o = Outcome::Retryable {
                retry_after: None,
                reason: "timeout after 10 s".into(),
            };
            (o, Duration::from_secs(10))
        } else {
            ok()
        }
    });
    let mut agent = w.agent(w.config(15, 30), script);
    agent.run().unwrap();
    let mut samples = w.samples.borrow().clone();
    // the stop at 600.5 s closes the partial interval with one more (full) sample
    assert_eq!(samples.pop(), Some(T0 + 600 * NS + NS / 2));
    // baseline at 0 s, then ticks every 15 s: 15, 30, ... 600 s = 40 ticks + baseline
    assert_eq!(samples.len(), 41, "samples at {samples:?}");
    for (k, &t) in samples.iter().enumerate() {
        let due = T0 + 15 * NS * k as u64;
        // a collection is late by at most one request timeout (10 s)
        assert!(
            t >= due && t - due <= 10 * NS,
            "tick {k} due {due} ran at {t}"
        );
    }
    w.assert_all_delivered_once(&agent.sink().delivered);
}

#[test]
fn long_outage_then_recovery_replays_oldest_first() {
    let w = World::new("outage");
    w.clock.at(1500.0, Event::Stop);
    let script = Box::new(|at: f64, _| {
        if at < 900.0 {
            retry("connection refused")
        } else {
            ok()
        }
    });
    let mut agent = w.agent(w.config(1, 5), script);
    agent.run().unwrap();
    let delivered = &agent.sink().delivered;
    // 900 s of outage at one report per 5 s = 180 batches spooled, then replayed
    let recovery_ms = WALL0 + (T0 / 1_000_000) as i64 + 900_000;
    let backlog_times: Vec<i64> = delivered
        .iter()
        .map(|b| items_of(b)[0]["collect_time"].as_i64().unwrap())
        .filter(|&t| t < recovery_ms)
        .collect();
    assert!(
        backlog_times.len() >= 170,
        "{} old batches delivered",
        backlog_times.len()
    );
    assert!(
        backlog_times.windows(2).all(|p| p[0] < p[1]),
        "backlog not replayed oldest first"
    );
    assert!(agent.backlog().is_empty());
    w.assert_all_delivered_once(delivered);
}

#[test]
fn wall_clock_steps_do_not_disturb_the_schedule() {
    let w = World::new("wallstep");
    // back 7 min 13.5 s at 100 s, forward 1 h at 200 s
    w.clock.at(100.2, Event::StepWall(-433_500));
    w.clock.at(200.2, Event::StepWall(3_600_000));
    w.clock.at(291.5, Event::Stop);
    let mut agent = w.agent(w.config(1, 10), Box::new(|_, _| ok()));
    agent.run().unwrap();
    let times: Vec<i64> = agent
        .sink()
        .delivered
        .iter()
        .map(|b| items_of(b)[0]["collect_time"].as_i64().unwrap())
        .collect();
    // reports at 1 s, 11 s, ... 291 s (monotonic schedule): 30 of them
    assert_eq!(times.len(), 30);
    let steps: Vec<i64> = times.windows(2).map(|p| p[1] - p[0]).collect();
    let mut expected = vec![10_000i64; 29];
    expected[9] = 10_000 - 433_500; // times[10], the report at 101 s, follows the step back
    expected[19] = 10_000 + 3_600_000; // times[20], at 201 s, follows the step forward
    assert_eq!(steps, expected);
    w.assert_all_delivered_once(&agent.sink().delivered);
}

#[test]
fn permanent_rejection_drops_only_that_batch() {
    let w = World::new("perm");
    w.clock.at(60.5, Event::Stop);
    let mut n = 0;
    let script = Box::new(move |_, _| {
        n += 1;
        if n == 3 {
            let o = Outcome::Permanent {
                status: 400,
                code: "ces.0014".into(),
                message: "Some content in message body is not correct".into(),
            };
            (o, Duration::from_millis(5))
        } else {
            ok()
        }
    });
    let mut agent = w.agent(w.config(1, 5), script);
    agent.run().unwrap();
    let sink = agent.sink();
    let rejected = sink.calls[2].items;
    let got = set(&received_keys(&sink.delivered));
    let want = set(&w.collected_keys());
    let missing = want.difference(&got).count();
    assert_eq!(missing, rejected, "exactly the rejected batch is missing");
    assert!(got.is_subset(&want));
    // the next report says how many points were dropped
    let fourth = items_of(&sink.delivered[2]);
    let dropped = fourth
        .iter()
        .find(|i| i["metric"]["metric_name"] == "agent_dropped_points")
        .unwrap();
    assert_eq!(dropped["value"].as_f64(), Some(rejected as f64));
}

#[test]
fn unauthorized_keeps_the_batch() {
    let w = World::new("unauth");
    w.clock.at(900.0, Event::Stop);
    let mut n = 0;
    let script = Box::new(move |_, _| {
        n += 1;
        if n <= 5 {
            let o = Outcome::Unauthorized {
                reason: "HTTP 401 APIGW.0301".into(),
            };
            (o, Duration::from_millis(5))
        } else {
            ok()
        }
    });
    let mut agent = w.agent(w.config(1, 5), script);
    agent.run().unwrap();
    w.assert_all_delivered_once(&agent.sink().delivered);
}

#[test]
fn stop_reports_the_partial_interval_within_five_seconds() {
    let w = World::new("stop");
    w.clock.at(30.5, Event::Stop);
    let mut agent = w.agent(w.config(1, 60), Box::new(|_, _| ok()));
    agent.run().unwrap();
    // reports: first tick (1 s), then the partial one at stop covering 1 s .. 30.5 s
    // (the stop takes a full sample, so the partial interval has its rates)
    let bodies = &agent.sink().delivered;
    assert_eq!(bodies.len(), 2);
    let rate = items_of(&bodies[1])
        .into_iter()
        .find(|i| i["metric"]["metric_name"] == "test_rate")
        .unwrap();
    assert_eq!(rate["value"].as_f64(), Some(29.5)); // 30.5 s - 1 s
    assert!(w.clock.secs() - 30.5 <= 5.0);
    w.assert_all_delivered_once(bodies);
}

#[test]
fn stop_during_outage_spools_and_a_restart_delivers() {
    let w = World::new("restart");
    w.clock.at(100.5, Event::Stop);
    let config = w.config(1, 5);
    let mut first = w.agent(config.clone(), Box::new(|_, _| retry("connection refused")));
    first.run().unwrap();
    // the run ends within the stop budget even though nothing can be sent
    assert!(w.clock.secs() - 100.5 <= 5.0 + 0.1);
    assert!(first.backlog().len() >= 20);
    assert_eq!(first.backlog().memory_len(), 0, "everything is on disk");
    drop(first);
    let start = w.clock.secs();
    w.clock.at(start + 400.0, Event::Stop);
    let mut second = w.agent(config, Box::new(|_, _| ok()));
    second.run().unwrap();
    w.assert_all_delivered_once(&second.sink().delivered);
}

#[test]
fn sighup_reloads_and_a_bad_config_keeps_the_old_one() {
    let w = World::new("hup");
    let path = w.dir.join("config.json");
    let state = w.dir.join("state");
    let json = |report: u64| {
        format!(
            r#"{{"collect_interval":1,"report_interval":{report},"jitter":0,"instance_id":"{INSTANCE}","state_dir":"{}"}}"#,
            state.display()
        )
    };
    std::fs::write(&path, json(5)).unwrap();
    let config = Config::load(&ConfigSource {
        path: path.clone(),
        explicit: true,
    })
    .unwrap();
    w.clock
        .at(50.5, Event::Reload(Some((path.clone(), json(10)))));
    w.clock.at(
        100.5,
        Event::Reload(Some((path.clone(), "{\"report_interval\": \"x\"}".into()))),
    );
    w.clock.at(150.5, Event::Stop);
    let mut agent = w.agent(config, Box::new(|_, _| ok()));
    agent.set_config_source(ConfigSource {
        path,
        explicit: true,
    });
    agent.run().unwrap();
    let times: Vec<i64> = agent
        .sink()
        .delivered
        .iter()
        .map(|b| (items_of(b)[0]["collect_time"].as_i64().unwrap() - WALL0) / 1000 - 1000)
        .collect();
    // every 5 s until 51 s (1, 6, ... 51: 11 reports); the reload at 50.5 s makes the step
    // after 51 s a 10 s one: 61, 71 ... 141 (9 reports); the broken file at 100.5 s changes
    // nothing; the stop at 150.5 s reports the partial interval ending at 150 s.
    let mut want: Vec<i64> = (0..11).map(|k| 1 + 5 * k).collect();
    want.extend((0..9).map(|k| 61 + 10 * k));
    want.push(150);
    assert_eq!(times, want);
    assert_eq!(agent.config().report_interval, 10);
    w.assert_all_delivered_once(&agent.sink().delivered);
}

#[test]
fn unusable_spool_directory_falls_back_to_memory_then_recovers() {
    let w = World::new("disk");
    let spool_dir = w.dir.join("state/spool");
    std::fs::create_dir_all(w.dir.join("state")).unwrap();
    // a regular file where the spool directory should be: every spool write fails
    std::fs::write(&spool_dir, b"in the way").unwrap();
    let fix = spool_dir.clone();
    w.clock.at(
        200.0,
        Event::Call(Box::new(move || std::fs::remove_file(&fix).unwrap())),
    );
    let seen_files = Rc::new(RefCell::new(0usize));
    let seen = seen_files.clone();
    let probe = spool_dir.clone();
    w.clock.at(
        300.0,
        Event::Call(Box::new(move || {
            *seen.borrow_mut() = std::fs::read_dir(&probe).map(|d| d.count()).unwrap_or(0);
        })),
    );
    w.clock.at(800.0, Event::Stop);
    // Cloud Eye is down until 400 s
    let script = Box::new(|at: f64, _| if at < 400.0 { retry("HTTP 503") } else { ok() });
    let mut agent = w.agent(w.config(1, 5), script);
    agent.run().unwrap();
    assert!(
        *seen_files.borrow() > 0,
        "the memory backlog moved to disk once it worked"
    );
    assert!(agent.backlog().is_empty());
    w.assert_all_delivered_once(&agent.sink().delivered);
}

#[test]
fn once_reports_rates_since_the_saved_state_and_spools_failures() {
    let w = World::new("once");
    let proc_root = common::minimal_proc_root(&w.dir);
    let mut config = w.config(10, 60);
    config.proc_root = proc_root;
    // first run: no state, two samples 1 s apart; Cloud Eye down: the batch is spooled
    let mut a = w.agent(config.clone(), Box::new(|_, _| retry("connection refused")));
    a.once().unwrap();
    assert_eq!(w.samples.borrow().len(), 2);
    assert_eq!(a.backlog().len(), 1);
    drop(a);
    w.clock.advance(Duration::from_secs(59), false);
    // second run a minute later: the state is used (one sample), the new batch and the
    // spooled one are both delivered
    let mut b = w.agent(config, Box::new(|_, _| ok()));
    b.once().unwrap();
    assert_eq!(w.samples.borrow().len(), 3);
    let bodies = &b.sink().delivered;
    assert_eq!(bodies.len(), 2);
    let rate = items_of(&bodies[0])
        .into_iter()
        .find(|i| i["metric"]["metric_name"] == "test_rate")
        .unwrap();
    // previous sample at 1001 s; the failed attempt took 5 ms, then 59 s passed: this
    // sample is at 1060.005 s, so the rate is 59.005
    assert_eq!(rate["value"].as_f64(), Some(59.005));
    assert!(b.backlog().is_empty());
    w.assert_all_delivered_once(bodies);
}

// ---------------------------------------------------------------- the real binary

/// A loopback port nothing listens on: connections are refused at once.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn write_config(dir: &Path, endpoint: &str, extra: &str) -> PathBuf {
    let proc_root = common::minimal_proc_root(dir);
    let path = dir.join("config.json");
    let text = format!(
        r#"{{"endpoint":"{endpoint}","region":"r1","project_id":"p1","instance_id":"{INSTANCE}",
            "access_key":"AK","secret_key":"SK-TEST","metadata_url":"http://127.0.0.1:9",
            "collect_interval":1,"report_interval":1,"jitter":0,
            "state_dir":"{}","proc_root":"{}","sys_root":"{}"{extra}}}"#,
        dir.join("state").display(),
        proc_root.display(),
        dir.join("sys").display()
    );
    std::fs::write(&path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn second_instance_exits_at_once_naming_the_lock() {
    let dir = common::temp_dir("lock2");
    let cfg = write_config(&dir, &format!("http://127.0.0.1:{}", closed_port()), "");
    let mut first = common::spawn_run(&cfg);
    let lock = dir.join("state/lock");
    // wait until the first one holds the lock (it creates the spool dir after locking)
    for _ in 0..100 {
        if dir.join("state/spool").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = std::time::Instant::now();
    let out = common::agent_command()
        .arg("--config")
        .arg(&cfg)
        .arg("once")
        .output()
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the second instance waited"
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("another cloudeye-agent holds {}", lock.display())),
        "{err}"
    );
    // SIGTERM: clean exit 0
    common::sigterm(&first);
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigterm_exits_zero_within_the_stop_budget() {
    let dir = common::temp_dir("term");
    let cfg = write_config(&dir, &format!("http://127.0.0.1:{}", closed_port()), "");
    let mut child = common::spawn_run(&cfg);
    std::thread::sleep(Duration::from_millis(2500));
    let t = std::time::Instant::now();
    common::sigterm(&child);
    let status = child.wait().unwrap();
    // 5 s delivery budget plus at most one 1 s sleep slice
    assert!(
        t.elapsed() < Duration::from_secs(7),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(status.code(), Some(0));
    // with the endpoint refusing, the reports are in the spool
    let spool = cloudeye_agent::spool::Spool::open(&dir.join("state/spool"), 16 << 20);
    assert!(spool.len() >= 2, "{} records spooled", spool.len());
}
