//! Load averages from /proc/loadavg, divided by the number of online CPUs (Cloud Eye's
//! definition: 1.0 means every CPU busy). The CPU count comes from the same cycle's
//! /proc/stat sample, so both honour `proc_root`.

use super::text::{fields, parse_f64};
use super::{reader::Reader, Settings};
use crate::error::{Error, Result};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};

/// The three raw load averages (runnable + uninterruptible tasks, not per CPU).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSample {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
}

/// Parse /proc/loadavg: `0.02 0.15 0.11 5/119 7235`; only the first three fields matter.
pub fn parse_loadavg(bytes: &[u8]) -> Result<LoadSample> {
    let mut f = fields(bytes);
    let mut next = || {
        f.next()
            .and_then(parse_f64)
            .filter(|v| *v >= 0.0)
            .ok_or_else(|| Error::other("loadavg: expected three non-negative numbers"))
    };
    Ok(LoadSample {
        load1: next()?,
        load5: next()?,
        load15: next()?,
    })
}

pub fn read(r: &mut Reader, s: &Settings) -> Option<LoadSample> {
    let path = s.proc_root.join("loadavg");
    let bytes = r.read_cached_or_log(&path)?;
    match parse_loadavg(bytes) {
        Ok(x) => Some(x),
        Err(e) => {
            log::debug!("{}: {e}", path.display());
            None
        }
    }
}

/// Per-CPU load averages. Without a CPU count (no /proc/stat this cycle) nothing is
/// emitted: a raw load would be off by the CPU count and look plausible.
pub fn gauges(s: &LoadSample, cpu: Option<&super::cpu::CpuSample>, out: &mut Vec<Metric>) {
    let cpus = match cpu.map(|c| c.cpus) {
        Some(n) if n > 0 => f64::from(n),
        _ => {
            log::debug!("load averages skipped: CPU count unknown");
            return;
        }
    };
    out.push(Metric::new("load_average1", "", s.load1 / cpus));
    out.push(Metric::new("load_average5", "", s.load5 / cpus));
    out.push(Metric::new("load_average15", "", s.load15 / cpus));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::cpu::CpuSample;

    #[test]
    fn parses_and_divides() {
        let l = parse_loadavg(b"2.00 1.00 0.50 5/119 7235\n").unwrap();
        let cpu = CpuSample {
            cpus: 4,
            ..Default::default()
        };
        let mut out = Vec::new();
        gauges(&l, Some(&cpu), &mut out);
        // 2.00/4 = 0.5, 1.00/4 = 0.25, 0.50/4 = 0.125
        let v: Vec<f64> = out.iter().map(|m| m.value).collect();
        assert_eq!(v, vec![0.5, 0.25, 0.125]);
        assert_eq!(out[0].name, "load_average1");
        assert_eq!(out[0].unit, "");
    }

    #[test]
    fn no_cpu_count_no_metrics() {
        let l = parse_loadavg(b"1 1 1").unwrap();
        let mut out = Vec::new();
        gauges(&l, None, &mut out);
        gauges(&l, Some(&CpuSample::default()), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn garbage() {
        for input in [
            &b""[..],
            b"1.0",
            b"1.0 2.0",
            b"a b c",
            b"nan 1 1",
            b"inf 1 1",
            b"-1 1 1",
            b"\xff 1 1",
        ] {
            assert!(parse_loadavg(input).is_err(), "{input:?}");
        }
    }
}
