//! CPU usage from the `cpu` line of /proc/stat, and the number of online CPUs (the `cpuN`
//! lines), which the load averages are divided by.
//!
//! Ratios of tick counters need no CLK_TCK. Fields missing on old kernels count as 0.

use super::text::{fields, lines, parse_u64};
use super::{percent, reader::Reader, Settings};
use crate::error::{Error, Result};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};

/// The aggregate `cpu` line in ticks, plus the online CPU count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSample {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
    /// Number of `cpuN` lines (CPUs online when sampled).
    pub cpus: u32,
}

impl CpuSample {
    fn as_array(&self) -> [u64; 10] {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
            self.guest,
            self.guest_nice,
        ]
    }

    fn from_array(v: [u64; 10], cpus: u32) -> CpuSample {
        CpuSample {
            user: v[0],
            nice: v[1],
            system: v[2],
            idle: v[3],
            iowait: v[4],
            irq: v[5],
            softirq: v[6],
            steal: v[7],
            guest: v[8],
            guest_nice: v[9],
            cpus,
        }
    }

    /// Ticks that make up 100 %: guest time is already inside user and nice.
    fn total(&self) -> u64 {
        self.as_array()[..8]
            .iter()
            .fold(0u64, |acc, &x| acc.saturating_add(x))
    }
}

/// Parse /proc/stat. Needs a `cpu` line with at least user, nice, system and idle.
pub fn parse_stat(bytes: &[u8]) -> Result<CpuSample> {
    let mut total: Option<[u64; 10]> = None;
    let mut cpus = 0u32;
    for line in lines(bytes) {
        let mut f = fields(line);
        let Some(label) = f.next() else { continue };
        if label == b"cpu" {
            total = Some(parse_cpu_fields(f)?);
        } else if label.len() > 3 && label.starts_with(b"cpu") && parse_u64(&label[3..]).is_some() {
            cpus = cpus.saturating_add(1);
        }
    }
    let values = total.ok_or_else(|| Error::other("stat: no aggregate cpu line"))?;
    Ok(CpuSample::from_array(values, cpus))
}

fn parse_cpu_fields<'a>(f: impl Iterator<Item = &'a [u8]>) -> Result<[u64; 10]> {
    let mut values = [0u64; 10];
    let mut n = 0usize;
    for (slot, field) in values.iter_mut().zip(f) {
        *slot = parse_u64(field).ok_or_else(|| Error::other("stat: non-numeric cpu field"))?;
        n += 1;
    }
    if n < 4 {
        return Err(Error::other(format!(
            "stat: cpu line has {n} fields, need 4"
        )));
    }
    Ok(values)
}

pub fn read(r: &mut Reader, s: &Settings) -> Option<CpuSample> {
    let path = s.proc_root.join("stat");
    let bytes = r.read_cached_or_log(&path)?;
    match parse_stat(bytes) {
        Ok(x) => Some(x),
        Err(e) => {
            log::debug!("{}: {e}", path.display());
            None
        }
    }
}

/// CPU percentages over the interval between `a` and `b`.
pub fn rates(a: &CpuSample, b: &CpuSample, out: &mut Vec<Metric>) {
    if b.total() < a.total() {
        log::debug!("cpu counters went backwards: new baseline");
        return;
    }
    // Single fields may step back a little while the total advances (proc.rst: iowait
    // "may decrease in certain conditions"); such a field counts as 0 for the interval.
    let (pa, pb) = (a.as_array(), b.as_array());
    let mut d = [0f64; 10];
    for i in 0..10 {
        d[i] = pb[i].saturating_sub(pa[i]) as f64;
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice] = d;
    let total: f64 = d[..8].iter().sum();
    if total <= 0.0 {
        log::debug!("cpu: no ticks elapsed");
        return;
    }
    let mut emit = |name: &'static str, part: f64| {
        if let Some(v) = percent(part, total) {
            out.push(Metric::new(name, "%", v));
        }
    };
    emit("cpu_usage", total - idle);
    emit("cpu_usage_user", user - guest);
    emit("cpu_usage_nice", nice - guest_nice);
    emit("cpu_usage_system", system);
    emit("cpu_usage_idle", idle);
    emit("cpu_usage_iowait", iowait);
    emit("cpu_usage_irq", irq);
    emit("cpu_usage_softirq", softirq);
    emit("cpu_usage_other", steal + guest + guest_nice);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_short_lines() {
        let s =
            parse_stat(b"cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 2 3 4\ncpu1 1 2 3 4\nintr 5\n").unwrap();
        assert_eq!((s.user, s.guest_nice, s.cpus), (1, 10, 2));
        let s = parse_stat(b"cpu 10 20 30 40\n").unwrap();
        assert_eq!((s.idle, s.iowait, s.steal, s.cpus), (40, 0, 0, 0));
        // Extra fields beyond guest_nice are ignored.
        let s = parse_stat(b"cpu 1 2 3 4 5 6 7 8 9 10 11 12\n").unwrap();
        assert_eq!(s.guest_nice, 10);
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        for input in [
            &b""[..],
            b"cpu",
            b"cpu 1 2 3",
            b"cpu 1 2 x 4",
            b"cpu 99999999999999999999999 1 1 1",
            b"\xff\xfe\x00cpu",
            b"cpux 1 2 3 4\n",
            b"intr 1 2 3\n",
        ] {
            assert!(parse_stat(input).is_err(), "{input:?}");
        }
        // A cpuN line cut short still counts as a CPU; the aggregate line is what matters.
        let s = parse_stat(b"cpu 1 2 3 4\ncpu0 1\ncpu1").unwrap();
        assert_eq!(s.cpus, 2);
    }

    fn sample(v: [u64; 10]) -> CpuSample {
        CpuSample::from_array(v, 1)
    }

    fn get(out: &[Metric], name: &str) -> Option<f64> {
        out.iter().find(|m| m.name == name).map(|m| m.value)
    }

    #[test]
    fn rates_follow_the_formulas() {
        // Δ: user 60 (of which guest 10), nice 10 (guest_nice 5), system 20, idle 100,
        // iowait 5, irq 2, softirq 3, steal 0 → Δtotal = 60+10+20+100+5+2+3+0 = 200.
        let a = sample([100, 10, 50, 1000, 5, 1, 1, 0, 20, 0]);
        let b = sample([160, 20, 70, 1100, 10, 3, 4, 0, 30, 5]);
        let mut out = Vec::new();
        rates(&a, &b, &mut out);
        assert_eq!(get(&out, "cpu_usage"), Some(50.0)); // 100·(200−100)/200
        assert_eq!(get(&out, "cpu_usage_user"), Some(25.0)); // 100·(60−10)/200
        assert_eq!(get(&out, "cpu_usage_nice"), Some(2.5)); // 100·(10−5)/200
        assert_eq!(get(&out, "cpu_usage_system"), Some(10.0));
        assert_eq!(get(&out, "cpu_usage_idle"), Some(50.0));
        assert_eq!(get(&out, "cpu_usage_iowait"), Some(2.5));
        assert_eq!(get(&out, "cpu_usage_irq"), Some(1.0));
        assert_eq!(get(&out, "cpu_usage_softirq"), Some(1.5));
        assert_eq!(get(&out, "cpu_usage_other"), Some(7.5)); // 100·(0+10+5)/200
        assert_eq!(out.len(), 9);
    }

    #[test]
    fn no_rates_without_progress_or_after_reset() {
        let a = sample([100, 0, 50, 1000, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        rates(&a, &a, &mut out);
        assert!(out.is_empty(), "Δtotal = 0 must not give NaN");
        let reboot = sample([1, 0, 1, 10, 0, 0, 0, 0, 0, 0]);
        rates(&a, &reboot, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn iowait_stepping_back_counts_as_zero() {
        // Δ: user 10, idle 90, iowait −5 → 0; Δtotal = 100.
        let a = sample([0, 0, 0, 0, 10, 0, 0, 0, 0, 0]);
        let b = sample([10, 0, 0, 90, 5, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        rates(&a, &b, &mut out);
        assert_eq!(get(&out, "cpu_usage_iowait"), Some(0.0));
        assert_eq!(get(&out, "cpu_usage"), Some(10.0));
    }
}
