//! Per-disk I/O rates from /proc/diskstats (dimension `disk`).
//!
//! Reported by default: whole disks plus dm-/md devices, i.e. names that have a
//! `<sys_root>/block/NAME` entry and no `<sys_root>/class/block/NAME/partition`; ram*,
//! zram*, loop* and fd* are skipped. Only when /sys is unreadable is a partition guessed
//! from its name. Sectors are 512 bytes in diskstats whatever the device's sector size.

use super::text::{fields, is_path_component, name, parse_records, parse_u64};
use super::{delta, per_second, percent, ratio_or_zero, reader::Reader, Settings};
use crate::error::Result;
use crate::metric::Metric;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One device's counters (fields 4-14 of a diskstats line, minus merges and in-flight).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskCounters {
    pub name: String,
    pub reads: u64,
    pub read_sectors: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub write_sectors: u64,
    pub write_ms: u64,
    /// Milliseconds with at least one I/O in flight.
    pub io_ms: u64,
    /// Sum over I/Os of their time in flight, ms (iostat's avgqu-sz numerator).
    pub weighted_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskSample {
    pub disks: Vec<DiskCounters>,
}

/// Parse /proc/diskstats (14, 18 or 20 fields a line; extra fields are ignored). Lines
/// with fewer than 14 fields (2.6-era partitions) or non-numeric counters are skipped.
pub fn parse_diskstats(bytes: &[u8]) -> Result<DiskSample> {
    parse_diskstats_with(bytes, |_| true)
}

/// [`parse_diskstats`] keeping only the devices `keep` accepts (no allocation for the rest).
pub fn parse_diskstats_with(
    bytes: &[u8],
    mut keep: impl FnMut(&str) -> bool,
) -> Result<DiskSample> {
    let disks = parse_records(
        bytes,
        ("diskstats", "lines"),
        |line| line.trim_ascii().is_empty(),
        |line| parse_line(line, &mut keep),
    )?;
    Ok(DiskSample { disks })
}

/// `Some(None)`: a valid line that `keep` rejected.
fn parse_line(line: &[u8], keep: &mut impl FnMut(&str) -> bool) -> Option<Option<DiskCounters>> {
    let mut f = fields(line);
    parse_u64(f.next()?)?;
    parse_u64(f.next()?)?;
    let dev = name(f.next()?)?;
    let mut v = [0u64; 11];
    for slot in v.iter_mut() {
        *slot = parse_u64(f.next()?)?;
    }
    if !keep(dev) {
        return Some(None);
    }
    // v: reads, reads merged, sectors read, ms reading, writes, writes merged,
    //    sectors written, ms writing, in flight, io ms, weighted ms.
    Some(Some(DiskCounters {
        name: dev.to_string(),
        reads: v[0],
        read_sectors: v[2],
        read_ms: v[3],
        writes: v[4],
        write_sectors: v[6],
        write_ms: v[7],
        io_ms: v[9],
        weighted_ms: v[10],
    }))
}

const SKIPPED_PREFIXES: &[&str] = &["ram", "zram", "loop", "fd"];

/// How partitions are told apart this cycle.
#[derive(Clone, Copy, PartialEq)]
enum SysView {
    /// `<sys_root>/block` lists the whole disks.
    Block,
    /// Only `<sys_root>/class/block` is readable: its `partition` files decide.
    ClassBlock,
    /// No /sys: guess from the name.
    Names,
}

fn sys_view(sys_root: &Path) -> SysView {
    if super::is_dir(&sys_root.join("block")) {
        SysView::Block
    } else if super::is_dir(&sys_root.join("class/block")) {
        SysView::ClassBlock
    } else {
        SysView::Names
    }
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// A whole disk, dm- or md device, reported by default?
fn is_whole_disk(sys_root: &Path, dev: &str, view: SysView) -> bool {
    if !is_path_component(dev) || SKIPPED_PREFIXES.iter().any(|p| dev.starts_with(p)) {
        return false;
    }
    let partition_file = || exists(&sys_root.join("class/block").join(dev).join("partition"));
    match view {
        SysView::Block => exists(&sys_root.join("block").join(dev)) && !partition_file(),
        SysView::ClassBlock => !partition_file(),
        SysView::Names => !looks_like_partition(dev),
    }
}

/// sda1, vdb2, xvda1, hda3 (letters then digits after an sd/vd/xvd/hd prefix), and
/// nvme0n1p2, mmcblk0p1 (`p` + digits after a digit).
fn looks_like_partition(dev: &str) -> bool {
    let b = dev.as_bytes();
    let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits == b.len() {
        return false;
    }
    let stem = &b[..b.len() - digits];
    if stem.len() >= 2 && stem[stem.len() - 1] == b'p' && stem[stem.len() - 2].is_ascii_digit() {
        return true;
    }
    ["sd", "vd", "xvd", "hd"].iter().any(|p| {
        stem.starts_with(p.as_bytes()) && stem[p.len()..].iter().all(u8::is_ascii_lowercase)
    }) && stem.len() > 2
}

/// Default set, then the configured filters. An include pattern equal to the name (no
/// wildcard) also brings back a device the default set skips (a partition, loop0, ...).
fn wanted(s: &Settings, dev: &str, view: SysView) -> bool {
    crate::glob::selected_from_defaults(
        dev,
        || is_whole_disk(&s.sys_root, dev, view),
        &s.disk_include,
        &s.disk_exclude,
    )
}

pub fn read(r: &mut Reader, s: &Settings) -> Option<DiskSample> {
    let path = s.proc_root.join("diskstats");
    let bytes = r.read_cached_or_log(&path)?;
    let mut sample = match parse_diskstats(bytes) {
        Ok(x) => x,
        Err(e) => {
            log::debug!("{}: {e}", path.display());
            return None;
        }
    };
    let view = sys_view(&s.sys_root);
    if view == SysView::Names {
        log::debug!(
            "{}/block unreadable: guessing partitions by name",
            s.sys_root.display()
        );
    }
    sample.disks.retain(|d| wanted(s, &d.name, view));
    Some(sample)
}

struct DiskDelta {
    reads: f64,
    read_sectors: f64,
    read_ms: f64,
    writes: f64,
    write_sectors: f64,
    write_ms: f64,
    io_ms: f64,
    weighted_ms: f64,
}

impl DiskDelta {
    /// `None` when any counter went down (device reset, 32-bit ms counters wrapping).
    fn between(a: &DiskCounters, b: &DiskCounters) -> Option<DiskDelta> {
        let d = |x: u64, y: u64| delta(x, y).map(|v| v as f64);
        Some(DiskDelta {
            reads: d(a.reads, b.reads)?,
            read_sectors: d(a.read_sectors, b.read_sectors)?,
            read_ms: d(a.read_ms, b.read_ms)?,
            writes: d(a.writes, b.writes)?,
            write_sectors: d(a.write_sectors, b.write_sectors)?,
            write_ms: d(a.write_ms, b.write_ms)?,
            io_ms: d(a.io_ms, b.io_ms)?,
            weighted_ms: d(a.weighted_ms, b.weighted_ms)?,
        })
    }
}

const SECTOR: f64 = 512.0;

pub fn rates(a: &DiskSample, b: &DiskSample, dt: f64, out: &mut Vec<Metric>) {
    if !(dt > 0.0 && dt.is_finite()) {
        return;
    }
    for cur in &b.disks {
        let Some(prev) = a.disks.iter().find(|p| p.name == cur.name) else {
            continue;
        };
        match DiskDelta::between(prev, cur) {
            Some(d) => emit(&d, dt, &cur.name, out),
            None => log::debug!("{}: diskstats went backwards: new baseline", cur.name),
        }
    }
}

fn emit(d: &DiskDelta, dt: f64, disk: &str, out: &mut Vec<Metric>) {
    let mut push = |name: &'static str, unit: &'static str, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            out.push(Metric::new(name, unit, v).with_dim("disk", disk));
        }
    };
    push(
        "disk_agt_read_bytes_rate",
        "Byte/s",
        per_second(SECTOR * d.read_sectors, dt),
    );
    push(
        "disk_agt_write_bytes_rate",
        "Byte/s",
        per_second(SECTOR * d.write_sectors, dt),
    );
    push(
        "disk_agt_read_requests_rate",
        "Request/s",
        per_second(d.reads, dt),
    );
    push(
        "disk_agt_write_requests_rate",
        "Request/s",
        per_second(d.writes, dt),
    );
    push(
        "disk_readTime",
        "ms/Count",
        Some(ratio_or_zero(d.read_ms, d.reads)),
    );
    push(
        "disk_writeTime",
        "ms/Count",
        Some(ratio_or_zero(d.write_ms, d.writes)),
    );
    push("disk_ioUtils", "%", percent(d.io_ms, 1000.0 * dt));
    push(
        "disk_queue_length",
        "Count",
        Some(d.weighted_ms / (1000.0 * dt)),
    );
    let kb_per_op = |sectors: f64, ops: f64| Some(ratio_or_zero(SECTOR * sectors, ops) / 1024.0);
    push(
        "disk_read_bytes_per_operation",
        "KB/op",
        kb_per_op(d.read_sectors, d.reads),
    );
    push(
        "disk_write_bytes_per_operation",
        "KB/op",
        kb_per_op(d.write_sectors, d.writes),
    );
    push(
        "disk_io_svctm",
        "ms/op",
        Some(ratio_or_zero(d.io_ms, d.reads + d.writes)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_14_18_20_fields() {
        let text = b" 254 0 vda 31440 6011 4420922 24638 6635 11869 3516472 10271 0 10656 35485 3877 13 502112 517 598 58\n\
   8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n   8 1 sda1 1 2 3 4 5 6 7 8 9 10 11 0 0 0 0\n   8 2 sda2 1 2 3 4\n";
        let s = parse_diskstats(text).unwrap();
        assert_eq!(
            s.disks.len(),
            3,
            "the 7-field 2.6 partition line is skipped"
        );
        let v = &s.disks[0];
        assert_eq!(
            (
                v.reads,
                v.read_sectors,
                v.read_ms,
                v.writes,
                v.write_sectors,
                v.write_ms,
                v.io_ms,
                v.weighted_ms
            ),
            (31440, 4420922, 24638, 6635, 3516472, 10271, 10656, 35485)
        );
    }

    #[test]
    fn garbage() {
        assert!(parse_diskstats(b"").unwrap().disks.is_empty());
        for input in [
            &b"x"[..],
            b"8 0",
            b"8 0 sda 1 2 3",
            b"8 0 sda 1 2 3 4 5 6 7 8 9 10 x",
            b"a b sda 1 2 3 4 5 6 7 8 9 10 11",
            b"8 0 \xff 1 2 3 4 5 6 7 8 9 10 11",
        ] {
            assert!(parse_diskstats(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn partition_names() {
        for p in ["sda1", "vdb12", "xvda1", "hda3", "nvme0n1p2", "mmcblk0p1"] {
            assert!(looks_like_partition(p), "{p}");
        }
        for d in [
            "sda", "vda", "nvme0n1", "mmcblk0", "dm-0", "md0", "md127", "sr0", "xvdb", "nbd0",
        ] {
            assert!(!looks_like_partition(d), "{d}");
        }
    }

    fn disk(v: [u64; 8]) -> DiskCounters {
        DiskCounters {
            name: "vda".into(),
            reads: v[0],
            read_sectors: v[1],
            read_ms: v[2],
            writes: v[3],
            write_sectors: v[4],
            write_ms: v[5],
            io_ms: v[6],
            weighted_ms: v[7],
        }
    }

    fn get(out: &[Metric], name: &str) -> Option<f64> {
        out.iter().find(|m| m.name == name).map(|m| m.value)
    }

    #[test]
    fn rates_follow_the_formulas() {
        // Over 10 s: 100 reads of 800 sectors in 250 ms, 50 writes of 400 sectors in
        // 500 ms, 2000 ms busy, 15000 weighted ms.
        let a = DiskSample {
            disks: vec![disk([0; 8])],
        };
        let b = DiskSample {
            disks: vec![disk([100, 800, 250, 50, 400, 500, 2000, 15000])],
        };
        let mut out = Vec::new();
        rates(&a, &b, 10.0, &mut out);
        assert_eq!(get(&out, "disk_agt_read_bytes_rate"), Some(40960.0)); // 512·800/10
        assert_eq!(get(&out, "disk_agt_write_bytes_rate"), Some(20480.0)); // 512·400/10
        assert_eq!(get(&out, "disk_agt_read_requests_rate"), Some(10.0));
        assert_eq!(get(&out, "disk_agt_write_requests_rate"), Some(5.0));
        assert_eq!(get(&out, "disk_readTime"), Some(2.5)); // 250/100
        assert_eq!(get(&out, "disk_writeTime"), Some(10.0)); // 500/50
        assert_eq!(get(&out, "disk_ioUtils"), Some(20.0)); // 100·2000/10000
        assert_eq!(get(&out, "disk_queue_length"), Some(1.5)); // 15000/10000, not ×1000
        assert_eq!(get(&out, "disk_read_bytes_per_operation"), Some(4.0)); // 512·800/100/1024
        assert_eq!(get(&out, "disk_write_bytes_per_operation"), Some(4.0)); // 512·400/50/1024
        assert!((get(&out, "disk_io_svctm").unwrap() - 2000.0 / 150.0).abs() < 1e-12);
        assert!(out
            .iter()
            .all(|m| m.dims[0].name == "disk" && m.dims[0].value == "vda"));
    }

    #[test]
    fn idle_reset_and_caps() {
        let a = DiskSample {
            disks: vec![disk([10, 10, 10, 10, 10, 10, 10, 10])],
        };
        let mut out = Vec::new();
        rates(&a, &a, 1.0, &mut out);
        assert_eq!(get(&out, "disk_readTime"), Some(0.0));
        assert_eq!(get(&out, "disk_io_svctm"), Some(0.0));
        assert!(out.iter().all(|m| m.value == 0.0));
        out.clear();
        // io_ms wrapped (2^32 ms): no values, no spike.
        let b = DiskSample {
            disks: vec![disk([20, 20, 20, 20, 20, 20, 5, 20])],
        };
        rates(&a, &b, 1.0, &mut out);
        assert!(out.is_empty());
        // Busier than the interval (clock jitter): ioUtils capped at 100.
        let c = DiskSample {
            disks: vec![disk([10, 10, 10, 10, 10, 10, 1510, 10])],
        };
        rates(&a, &c, 1.0, &mut out);
        assert_eq!(get(&out, "disk_ioUtils"), Some(100.0));
        out.clear();
        rates(&a, &c, 0.0, &mut out);
        assert!(out.is_empty());
    }
}
