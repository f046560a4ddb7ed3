//! Collection: turning /proc and /sys into [`Metric`]s.
//!
//! Data flows one way. [`Collector::sample`] reads the files (the only impure step) into a
//! [`Sample`] of raw counters and gauges; [`gauges`] and [`rates`] are pure functions from
//! one or two samples to metrics. Each collector lives in its own file and exposes:
//! `parse*` (bytes to a typed sample, tested on fixtures), `read` (the file-reading glue),
//! and `gauges`/`rates` (sample(s) to metrics). A missing file drops only that collector's
//! metrics for the cycle. `Sample` is serialisable because `once` saves it between runs.

pub mod cpu;
pub mod diskstats;
pub mod load;
pub mod memory;
pub mod mounts;
pub mod net;
pub mod procs;
pub mod reader;
pub mod tcp;

use crate::config::Config;
use crate::metric::Metric;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the collectors need from the configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings {
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
    pub mount_include: Vec<String>,
    pub mount_exclude: Vec<String>,
    pub fs_type_exclude: Vec<String>,
    pub disk_include: Vec<String>,
    pub disk_exclude: Vec<String>,
    pub nic_include: Vec<String>,
    pub nic_exclude: Vec<String>,
    pub processes: Vec<String>,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            proc_root: c.proc_root.clone(),
            sys_root: c.sys_root.clone(),
            mount_include: c.mount_include.clone(),
            mount_exclude: c.mount_exclude.clone(),
            fs_type_exclude: c.fs_type_exclude.clone(),
            disk_include: c.disk_include.clone(),
            disk_exclude: c.disk_exclude.clone(),
            nic_include: c.nic_include.clone(),
            nic_exclude: c.nic_exclude.clone(),
            processes: c.processes.clone(),
        }
    }
}

/// Everything read in one cycle. `None` parts could not be read this time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// CLOCK_BOOTTIME when the sample was taken, ns.
    pub mono_ns: u64,
    /// Local wall clock when the sample was taken, Unix ms (uncorrected).
    pub wall_ms: i64,
    pub cpu: Option<cpu::CpuSample>,
    pub load: Option<load::LoadSample>,
    pub memory: Option<memory::MemorySample>,
    pub net: Option<net::NetSample>,
    pub tcp: Option<tcp::TcpSample>,
    pub disks: Option<diskstats::DiskSample>,
    pub mounts: Option<mounts::MountSample>,
    pub procs: Option<procs::ProcSample>,
}

/// Owns the settings and the reusable buffers; one per agent.
pub struct Collector {
    settings: Settings,
    reader: reader::Reader,
}

impl Collector {
    pub fn new(settings: Settings) -> Collector {
        Collector {
            reader: reader::Reader::new(),
            settings,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Read every source once. Never fails: unreadable sources are `None`.
    pub fn sample(&mut self) -> Sample {
        let s = &self.settings;
        let r = &mut self.reader;
        let mono_ns = crate::clock::boottime_ns();
        let wall_ms = crate::clock::wall_ms();
        Sample {
            mono_ns,
            wall_ms,
            cpu: cpu::read(r, s),
            load: load::read(r, s),
            memory: memory::read(r, s),
            net: net::read(r, s),
            tcp: tcp::read(r, s),
            disks: diskstats::read(r, s),
            mounts: mounts::read(r, s),
            procs: procs::read(r, s),
        }
    }

    /// The sample `run` takes between two reports: only what is averaged over the
    /// interval and cheap to read (CPU count, load, memory; three kept-open files).
    ///
    /// Rates need only the interval's first and last samples, which are full ones; and
    /// the socket tables, the process scan and statvfs, which cost most of a cycle (the
    /// kernel walks its whole TCP hash table for /proc/net/tcp however few sockets there
    /// are), are read once per report, in its closing sample.
    pub fn sample_light(&mut self) -> Sample {
        let s = &self.settings;
        let r = &mut self.reader;
        Sample {
            mono_ns: crate::clock::boottime_ns(),
            wall_ms: crate::clock::wall_ms(),
            cpu: cpu::read(r, s),
            load: load::read(r, s),
            memory: memory::read(r, s),
            ..Sample::default()
        }
    }
}

/// Metrics that describe one instant (memory, load, usage, counts).
pub fn gauges(s: &Sample, out: &mut Vec<Metric>) {
    if let Some(x) = &s.load {
        load::gauges(x, s.cpu.as_ref(), out);
    }
    if let Some(x) = &s.memory {
        memory::gauges(x, out);
    }
    if let Some(x) = &s.tcp {
        tcp::gauges(x, out);
    }
    if let Some(x) = &s.mounts {
        mounts::gauges(x, out);
    }
    if let Some(x) = &s.procs {
        procs::gauges(x, out);
    }
}

/// Metrics that describe the interval between two samples (CPU, I/O, network rates).
/// Gives nothing when the interval is empty or runs backwards.
pub fn rates(prev: &Sample, cur: &Sample, out: &mut Vec<Metric>) {
    if cur.mono_ns <= prev.mono_ns {
        log::debug!("no rates: monotonic time did not advance");
        return;
    }
    let dt = (cur.mono_ns - prev.mono_ns) as f64 / 1e9;
    if let (Some(a), Some(b)) = (&prev.cpu, &cur.cpu) {
        cpu::rates(a, b, out);
    }
    if let (Some(a), Some(b)) = (&prev.net, &cur.net) {
        net::rates(a, b, dt, out);
    }
    if let (Some(a), Some(b)) = (&prev.tcp, &cur.tcp) {
        tcp::rates(a, b, out);
    }
    if let (Some(a), Some(b)) = (&prev.disks, &cur.disks) {
        diskstats::rates(a, b, dt, out);
    }
    if let (Some(a), Some(b)) = (&prev.procs, &cur.procs) {
        procs::rates(a, b, dt, out);
    }
}

/// Byte-slice helpers shared by the parsers: no allocation, no panics on any input.
pub mod text {
    /// Whitespace-separated fields of `line`.
    pub fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
        line.split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
    }

    /// Lines of `bytes` without their newline.
    pub fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
        bytes.split(|&b| b == b'\n')
    }

    /// One record per line of a table like /proc/net/dev or /proc/diskstats. `parse`
    /// gives `None` for a malformed line and `Some(None)` for a valid one not wanted;
    /// lines `skip` accepts are not records at all. Malformed lines are tolerated unless
    /// no line parsed, which is the error `FILE: none of N LINES parsed`.
    pub fn parse_records<T>(
        bytes: &[u8],
        (file, lines_called): (&str, &str),
        skip: impl Fn(&[u8]) -> bool,
        mut parse: impl FnMut(&[u8]) -> Option<Option<T>>,
    ) -> crate::error::Result<Vec<T>> {
        let mut records = Vec::new();
        let mut bad = 0usize;
        for line in lines(bytes).filter(|l| !skip(l)) {
            match parse(line) {
                Some(Some(r)) => records.push(r),
                Some(None) => {}
                None => bad += 1,
            }
        }
        if records.is_empty() && bad > 0 {
            return Err(crate::error::Error::other(format!(
                "{file}: none of {bad} {lines_called} parsed"
            )));
        }
        Ok(records)
    }

    /// A decimal unsigned integer; `None` on anything else or on overflow.
    pub fn parse_u64(field: &[u8]) -> Option<u64> {
        if field.is_empty() {
            return None;
        }
        let mut v: u64 = 0;
        for &b in field {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        }
        Some(v)
    }

    /// A finite decimal floating-point number.
    pub fn parse_f64(field: &[u8]) -> Option<f64> {
        let v: f64 = std::str::from_utf8(field).ok()?.parse().ok()?;
        v.is_finite().then_some(v)
    }

    /// Bytes as text for names (interface or device names are ASCII in practice).
    pub fn name(field: &[u8]) -> Option<&str> {
        std::str::from_utf8(field).ok().filter(|s| !s.is_empty())
    }

    /// Is `name` safe to join under a /sys directory (one path component)?
    pub fn is_path_component(name: &str) -> bool {
        !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains('/')
            && !name.contains('\0')
    }
}

/// Is `p` a directory (following links)? Decides whether /sys can answer questions.
pub(crate) fn is_dir(p: &std::path::Path) -> bool {
    std::fs::metadata(p).map(|m| m.is_dir()).unwrap_or(false)
}

/// Counter difference that refuses to go backwards: a reset or wrap gives `None`
/// (the interval is skipped and the next sample is the new baseline).
pub fn delta(prev: u64, cur: u64) -> Option<u64> {
    cur.checked_sub(prev)
}

/// `count / dt`, only for a positive, finite interval and a finite result.
pub fn per_second(count: f64, dt: f64) -> Option<f64> {
    if !(dt > 0.0 && dt.is_finite()) {
        return None;
    }
    let v = count / dt;
    v.is_finite().then_some(v)
}

/// `part / whole`, or `0` when `whole` is zero (e.g. ms per read when nothing was read).
pub fn ratio_or_zero(part: f64, whole: f64) -> f64 {
    if whole > 0.0 && part.is_finite() && whole.is_finite() {
        part / whole
    } else {
        0.0
    }
}

/// `100 * part / whole`, clamped to [0, 100]; `None` when `whole` is zero.
pub fn percent(part: f64, whole: f64) -> Option<f64> {
    if whole <= 0.0 || !part.is_finite() || !whole.is_finite() {
        return None;
    }
    Some((100.0 * part / whole).clamp(0.0, 100.0))
}
