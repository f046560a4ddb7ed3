//! Where samples and metrics come from: the real collectors, or a test source.

use crate::collect::{self, Collector, Sample, Settings};
use crate::config::Config;
use crate::metric::Metric;

/// Sampling and the pure sample-to-metric functions, as the loop uses them.
pub trait Source {
    /// Take a sample at host time (`mono_ns`, `wall_ms`). The real collectors stamp the
    /// sample themselves with the same clocks, at the moment they read.
    fn sample(&mut self, mono_ns: u64, wall_ms: i64) -> Sample;
    /// A sample taken between reports: only the gauges averaged over the interval are
    /// needed (rates use the interval's first and last samples, which are full ones).
    fn sample_light(&mut self, mono_ns: u64, wall_ms: i64) -> Sample {
        self.sample(mono_ns, wall_ms)
    }
    fn gauges(&self, sample: &Sample, out: &mut Vec<Metric>);
    fn rates(&self, prev: &Sample, cur: &Sample, out: &mut Vec<Metric>);
    /// Apply a reloaded configuration.
    fn reconfigure(&mut self, _config: &Config) {}
}

/// The collectors of [`crate::collect`].
pub struct Collectors(Collector);

impl Collectors {
    pub fn new(config: &Config) -> Collectors {
        Collectors(Collector::new(Settings::from_config(config)))
    }
}

impl Source for Collectors {
    fn sample(&mut self, _mono_ns: u64, _wall_ms: i64) -> Sample {
        self.0.sample()
    }

    fn sample_light(&mut self, _mono_ns: u64, _wall_ms: i64) -> Sample {
        self.0.sample_light()
    }

    fn gauges(&self, sample: &Sample, out: &mut Vec<Metric>) {
        collect::gauges(sample, out);
    }

    fn rates(&self, prev: &Sample, cur: &Sample, out: &mut Vec<Metric>) {
        collect::rates(prev, cur, out);
    }

    fn reconfigure(&mut self, config: &Config) {
        self.0 = Collector::new(Settings::from_config(config));
    }
}
