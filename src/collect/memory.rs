//! Memory gauges from /proc/meminfo (values in kB, i.e. KiB).
//!
//! MemAvailable exists from Linux 3.14; older kernels get MemFree + Buffers + Cached,
//! as Cloud Eye's own agent does.

use super::text::{fields, lines, parse_u64};
use super::{percent, reader::Reader, Settings};
use crate::error::{Error, Result};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};

/// The meminfo fields the agent reports, in KiB.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    pub total_kb: u64,
    pub free_kb: u64,
    /// `None` on kernels without MemAvailable.
    pub available_kb: Option<u64>,
    pub buffers_kb: u64,
    pub cached_kb: u64,
}

impl MemorySample {
    /// MemAvailable, or its pre-3.14 estimate.
    pub fn available(&self) -> u64 {
        self.available_kb.unwrap_or_else(|| {
            self.free_kb
                .saturating_add(self.buffers_kb)
                .saturating_add(self.cached_kb)
        })
    }
}

/// Parse /proc/meminfo. MemTotal and MemFree are required; other fields default to 0.
pub fn parse_meminfo(bytes: &[u8]) -> Result<MemorySample> {
    let mut m = MemorySample::default();
    let (mut total, mut free) = (None, None);
    for line in lines(bytes) {
        let mut f = fields(line);
        let (Some(key), Some(value)) = (f.next(), f.next().and_then(parse_u64)) else {
            continue;
        };
        match key {
            b"MemTotal:" => total = Some(value),
            b"MemFree:" => free = Some(value),
            b"MemAvailable:" => m.available_kb = Some(value),
            b"Buffers:" => m.buffers_kb = value,
            b"Cached:" => m.cached_kb = value,
            _ => {}
        }
    }
    m.total_kb = total.ok_or_else(|| Error::other("meminfo: no MemTotal"))?;
    m.free_kb = free.ok_or_else(|| Error::other("meminfo: no MemFree"))?;
    Ok(m)
}

pub fn read(r: &mut Reader, s: &Settings) -> Option<MemorySample> {
    let path = s.proc_root.join("meminfo");
    let bytes = r.read_cached_or_log(&path)?;
    match parse_meminfo(bytes) {
        Ok(x) => Some(x),
        Err(e) => {
            log::debug!("{}: {e}", path.display());
            None
        }
    }
}

/// KiB to GB (2^30 bytes): kB·1024/2^30 = kB/2^20.
fn gb(kb: u64) -> f64 {
    kb as f64 / 1_048_576.0
}

pub fn gauges(s: &MemorySample, out: &mut Vec<Metric>) {
    let available = s.available();
    if let Some(v) = percent(
        s.total_kb.saturating_sub(available) as f64,
        s.total_kb as f64,
    ) {
        out.push(Metric::new("mem_usedPercent", "%", v));
    }
    out.push(Metric::new("mem_available", "GB", gb(available)));
    out.push(Metric::new("mem_free", "GB", gb(s.free_kb)));
    out.push(Metric::new("mem_buffers", "GB", gb(s.buffers_kb)));
    out.push(Metric::new("mem_cached", "GB", gb(s.cached_kb)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(out: &[Metric], name: &str) -> Option<f64> {
        out.iter().find(|m| m.name == name).map(|m| m.value)
    }

    #[test]
    fn available_and_fallback() {
        let m = parse_meminfo(
            b"MemTotal: 4194304 kB\nMemFree: 1048576 kB\nMemAvailable: 3145728 kB\nBuffers: 0 kB\nCached: 524288 kB\n",
        )
        .unwrap();
        let mut out = Vec::new();
        gauges(&m, &mut out);
        // used = 4194304 − 3145728 = 1048576 kB = 25 % of 4194304
        assert_eq!(get(&out, "mem_usedPercent"), Some(25.0));
        assert_eq!(get(&out, "mem_available"), Some(3.0)); // 3145728/2^20
        assert_eq!(get(&out, "mem_cached"), Some(0.5));
        let old =
            parse_meminfo(b"MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 350 kB\n")
                .unwrap();
        assert_eq!(old.available(), 500); // 100+50+350
    }

    #[test]
    fn zero_total_gives_no_percentage() {
        let m = parse_meminfo(b"MemTotal: 0 kB\nMemFree: 0 kB\n").unwrap();
        let mut out = Vec::new();
        gauges(&m, &mut out);
        assert_eq!(get(&out, "mem_usedPercent"), None);
        assert!(out.iter().all(|m| m.value.is_finite()));
    }

    #[test]
    fn garbage() {
        assert!(parse_meminfo(b"").is_err());
        assert!(parse_meminfo(b"MemTotal: x kB\nMemFree: 1 kB").is_err());
        assert!(parse_meminfo(b"MemTotal:").is_err());
        assert!(parse_meminfo(b"\xff\xff\nMemTotal: 5 kB\nMemFree:").is_err());
        // Truncated after the required fields: partial but valid.
        let m = parse_meminfo(b"MemTotal: 5 kB\nMemFree: 2 kB\nMemAvai").unwrap();
        assert_eq!(m.available(), 2);
    }
}
