//! One report interval: gauges averaged over its samples, rates over the whole interval.
//!
//! Gauges are averaged per [`Metric::series_key`] over the samples that had the metric (a
//! sample missing it does not count, so a briefly unreadable file does not drag the mean
//! down). Rates compare the interval's first sample (the previous interval's last) with
//! its last, so consecutive intervals tile time with no gap.

use super::source::Source;
use crate::collect::Sample;
use crate::metric::Metric;
use std::collections::HashMap;

struct Acc {
    metric: Metric,
    sum: f64,
    count: u32,
}

pub struct Interval {
    start: Sample,
    last: Option<Sample>,
    accs: Vec<Acc>,
    index: HashMap<String, usize>,
    scratch: Vec<Metric>,
}

impl Interval {
    /// An interval starting at `start` (its gauges are not part of it: they belong to the
    /// interval before).
    pub fn new(start: Sample) -> Interval {
        Interval {
            start,
            last: None,
            accs: Vec::new(),
            index: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    /// Samples added since the start.
    pub fn has_samples(&self) -> bool {
        self.last.is_some()
    }

    pub fn last(&self) -> Option<&Sample> {
        self.last.as_ref()
    }

    pub fn add(&mut self, source: &dyn Source, sample: Sample) {
        self.scratch.clear();
        source.gauges(&sample, &mut self.scratch);
        for m in self.scratch.drain(..) {
            if !m.value.is_finite() {
                continue;
            }
            let key = m.series_key();
            match self.index.get(&key) {
                Some(&i) => {
                    self.accs[i].sum += m.value;
                    self.accs[i].count += 1;
                }
                None => {
                    self.index.insert(key, self.accs.len());
                    self.accs.push(Acc {
                        sum: m.value,
                        count: 1,
                        metric: m,
                    });
                }
            }
        }
        self.last = Some(sample);
    }

    /// Close the interval: its metrics and the wall time (ms) of its end. The next
    /// interval starts at this one's last sample. `None` if no sample was added.
    pub fn finish(&mut self, source: &dyn Source) -> Option<(Vec<Metric>, i64)> {
        let last = self.last.take()?;
        let mut out: Vec<Metric> = self
            .accs
            .drain(..)
            .map(|a| Metric {
                value: a.sum / a.count as f64,
                ..a.metric
            })
            .collect();
        self.index.clear();
        source.rates(&self.start, &last, &mut out);
        let end = last.wall_ms;
        self.start = last;
        Some((out, end))
    }
}
