//! Per-mount-point disk usage: which mounts to report and their statvfs figures.
//!
//! Owns the mountinfo and /proc/filesystems parsers, the skipping rules (pseudo, network,
//! bind-mount duplicates, hidden over-mounts, configured filters) and the usage formulas.
//! The only impure step is one `statvfs` per selected mount per cycle, injected into
//! [`sample_mounts`] so the selection logic is tested without touching real file systems.
//!
//! Network file systems are never passed to `statvfs`, whatever the configuration says:
//! a statvfs on a dead NFS server blocks forever and this agent is single-threaded.

use super::{reader::Reader, Settings};
use crate::glob;
use crate::metric::Metric;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Cloud Eye refuses dimension values longer than this.
const MAX_DIM_VALUE: usize = 256;
const GB: f64 = (1u64 << 30) as f64;

/// File systems whose `statvfs` may block on a remote server (or a FUSE daemon); never
/// queried. Cluster file systems on shared disks (ocfs2, gfs2) are local block devices
/// here; add them to `fs_type_exclude` if their lock manager can stall.
const NETWORK_FS: &[&str] = &[
    "nfs*",
    "cifs",
    "smb*",
    "ncp*",
    "afs",
    "9p",
    "ceph",
    "glusterfs",
    "lustre",
    "gpfs",
    "beegfs",
    "orangefs",
    "pvfs2",
    "davfs",
    "fuse",
    "fuse.*",
    "sshfs",
];

/// Skipped even when /proc/filesystems cannot be read or does not mark them `nodev`
/// (squashfs images and ISO/overlay layers are always "100 % full" and only make noise).
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "ramfs",
    "overlay",
    "aufs",
    "squashfs",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "mqueue",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "configfs",
    "fusectl",
    "efivarfs",
    "selinuxfs",
    "rpc_pipefs",
    "nsfs",
    "iso9660",
    "udf",
];

/// `nodev` file systems that nevertheless hold real data (zfs datasets have no block device).
const NODEV_BUT_REAL: &[&str] = &["zfs"];

/// One line of /proc/[pid]/mountinfo, escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub major: u32,
    pub minor: u32,
    /// The directory of the file system that is mounted here (`/` unless a bind mount).
    pub root: String,
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    /// `ro` in the per-mount or the super-block options.
    pub read_only: bool,
}

/// The statvfs numbers the formulas need (sizes in units of `frsize`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatvfsFigures {
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
}

/// One reported mount point. `figures` is `None` when statvfs failed (only the rw state
/// is reported then).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountUsage {
    pub mount_point: String,
    pub fs_type: String,
    pub read_only: bool,
    pub figures: Option<StatvfsFigures>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountSample {
    pub mounts: Vec<MountUsage>,
}

/// Read the mount table and statvfs every selected mount once.
///
/// With the default `proc_root` (/proc) the table is /proc/1/mountinfo (else
/// /proc/self/mountinfo) and mount points are queried as written: under systemd's
/// `ProtectSystem=strict` our own view shows every file system read-only, while pid 1's
/// view (readable without privileges) has the host's real `rw`/`ro` state. With another `proc_root` (a container given the host's /proc as
/// /host/proc) the table is `proc_root/1/mountinfo` (else `proc_root/self/mountinfo`) and
/// each mount point is queried under that process's root, `proc_root/1/root/<mount point>`,
/// because the paths are relative to pid 1's root, not ours.
pub fn read(r: &mut Reader, s: &Settings) -> Option<MountSample> {
    let nodev = r
        .read_or_log(&s.proc_root.join("filesystems"))
        .map(parse_nodev_filesystems)
        .unwrap_or_default();
    let (entries, prefix) = read_table(r, &s.proc_root)?;
    Some(sample_mounts(&entries, &nodev, s, |mp| {
        statvfs_figures(&prefixed(prefix.as_deref(), mp))
    }))
}

fn read_table(r: &mut Reader, proc_root: &Path) -> Option<(Vec<MountEntry>, Option<PathBuf>)> {
    let own_proc = proc_root == Path::new("/proc");
    for pid in ["1", "self"] {
        let dir = proc_root.join(pid);
        if let Ok(bytes) = r.read(&dir.join("mountinfo")) {
            let prefix = (!own_proc).then(|| dir.join("root"));
            return Some((parse_mountinfo(bytes), prefix));
        }
    }
    log::debug!(
        "cannot read {}/{{1,self}}/mountinfo: no mount metrics",
        proc_root.display()
    );
    None
}

fn prefixed(prefix: Option<&Path>, mount_point: &str) -> PathBuf {
    match prefix {
        None => PathBuf::from(mount_point),
        Some(p) => p.join(mount_point.trim_start_matches('/')),
    }
}

// The libc field types are u32 on 32-bit targets, so the casts are not always no-ops.
#[allow(clippy::unnecessary_cast)]
fn statvfs_figures(path: &Path) -> Option<StatvfsFigures> {
    match nix::sys::statvfs::statvfs(path) {
        Ok(v) => Some(StatvfsFigures {
            frsize: v.fragment_size() as u64,
            blocks: v.blocks() as u64,
            bfree: v.blocks_free() as u64,
            bavail: v.blocks_available() as u64,
            files: v.files() as u64,
            ffree: v.files_free() as u64,
        }),
        Err(e) => {
            log::debug!("statvfs {}: {e}", path.display());
            None
        }
    }
}

/// Select the mounts to report and query each once through `statfs` (given the mount
/// point as written in the table). Pure apart from what `statfs` does.
pub fn sample_mounts(
    entries: &[MountEntry],
    nodev: &[String],
    s: &Settings,
    mut statfs: impl FnMut(&str) -> Option<StatvfsFigures>,
) -> MountSample {
    let mounts = select(entries, nodev, s)
        .into_iter()
        .map(|e| MountUsage {
            mount_point: e.mount_point.clone(),
            fs_type: e.fs_type.clone(),
            read_only: e.read_only,
            figures: statfs(&e.mount_point),
        })
        .collect();
    MountSample { mounts }
}

/// The mounts to report, in table order. Rules, in order:
/// - a mount hidden by a later mount on the same path is dropped (statvfs sees the upper);
/// - network file systems are dropped, always;
/// - `fs_type_exclude` (globs on the type) drops;
/// - pseudo (`nodev`) file systems are dropped unless `mount_include` lists the mount
///   point exactly (not through a glob);
/// - `mount_include`/`mount_exclude` filter the mount point;
/// - a bind mount is dropped: a mount of the same device whose root is the root of an
///   already reported mount of that device, or lies under it (kubelet subPath mounts),
///   adds no new figures. Btrfs subvolumes (`/@`, `/@home`) are siblings, not subtrees,
///   so each is reported.
pub fn select<'a>(
    entries: &'a [MountEntry],
    nodev: &[String],
    s: &Settings,
) -> Vec<&'a MountEntry> {
    let mut visible = vec![true; entries.len()];
    let mut seen_paths = HashSet::new();
    for (i, e) in entries.iter().enumerate().rev() {
        visible[i] = seen_paths.insert(e.mount_point.as_str());
    }
    let mut out: Vec<&MountEntry> = Vec::new();
    for (e, _) in entries.iter().zip(visible).filter(|(_, v)| *v) {
        if !wanted(e, nodev, s) {
            continue;
        }
        if let Some(first) = out.iter().find(|r| shows_part_of(e, r)) {
            log::debug!(
                "mount {}: bind mount of {}, already reported",
                e.mount_point,
                first.mount_point
            );
            continue;
        }
        out.push(e);
    }
    out
}

/// True when `e` shows the same device as `reported`, at its root or below it.
fn shows_part_of(e: &MountEntry, reported: &MountEntry) -> bool {
    if (e.major, e.minor) != (reported.major, reported.minor) {
        return false;
    }
    let base = reported.root.trim_end_matches('/');
    match e.root.strip_prefix(base) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn wanted(e: &MountEntry, nodev: &[String], s: &Settings) -> bool {
    if is_network_fs(&e.fs_type) {
        return false;
    }
    if s.fs_type_exclude
        .iter()
        .any(|p| glob::matches(p, &e.fs_type))
    {
        return false;
    }
    if e.mount_point.is_empty() || e.mount_point.len() > MAX_DIM_VALUE {
        log::debug!(
            "mount point of {} bytes cannot be a dimension",
            e.mount_point.len()
        );
        return false;
    }
    // Only an exact path brings back a pseudo file system: `*` must not add /proc too.
    glob::selected_from_defaults(
        &e.mount_point,
        || !is_pseudo_fs(&e.fs_type, nodev),
        &s.mount_include,
        &s.mount_exclude,
    )
}

/// True for file systems whose statvfs may wait on a remote server.
pub fn is_network_fs(fs_type: &str) -> bool {
    NETWORK_FS.iter().any(|p| glob::matches(p, fs_type))
}

/// True for file systems without their own storage (`nodev` in /proc/filesystems or in
/// the built-in list).
pub fn is_pseudo_fs(fs_type: &str, nodev: &[String]) -> bool {
    if NODEV_BUT_REAL.contains(&fs_type) {
        return false;
    }
    PSEUDO_FS.contains(&fs_type) || nodev.iter().any(|n| n == fs_type)
}

/// The file system types /proc/filesystems marks `nodev`.
pub fn parse_nodev_filesystems(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut words = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|w| !w.is_empty());
            match (words.next(), words.next()) {
                (Some(b"nodev"), Some(name)) => Some(String::from_utf8_lossy(name).into_owned()),
                _ => None,
            }
        })
        .collect()
}

/// Parse /proc/[pid]/mountinfo. Malformed lines are skipped.
///
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`:
/// id, parent, major:minor, root, mount point, options, optional fields up to `-`,
/// then fs type, source, super-block options.
pub fn parse_mountinfo(bytes: &[u8]) -> Vec<MountEntry> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(parse_mountinfo_line)
        .collect()
}

fn parse_mountinfo_line(line: &[u8]) -> Option<MountEntry> {
    let mut f = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let _id = f.next()?;
    let _parent = f.next()?;
    let (major, minor) = parse_dev(f.next()?)?;
    let root = unescape(f.next()?);
    let mount_point = unescape(f.next()?);
    let options = f.next()?;
    f.by_ref().find(|w| *w == b"-")?;
    let fs_type = unescape(f.next()?);
    let source = unescape(f.next().unwrap_or(b""));
    let super_options = f.next().unwrap_or(b"");
    let read_only = has_ro(options) || has_ro(super_options);
    Some(MountEntry {
        major,
        minor,
        root,
        mount_point,
        fs_type,
        source,
        read_only,
    })
}

fn parse_dev(field: &[u8]) -> Option<(u32, u32)> {
    let text = std::str::from_utf8(field).ok()?;
    let (a, b) = text.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn has_ro(options: &[u8]) -> bool {
    options.split(|&b| b == b',').any(|o| o == b"ro")
}

/// Undo the kernel's `\ooo` octal escapes (space, tab, newline, backslash).
pub fn unescape(field: &[u8]) -> String {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' {
            if let Some(v) = octal3(field.get(i + 1..i + 4)) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn octal3(digits: Option<&[u8]>) -> Option<u8> {
    let d = digits?;
    if !d.iter().all(|c| (b'0'..=b'7').contains(c)) {
        return None;
    }
    let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
    u8::try_from(v).ok()
}

pub fn gauges(s: &MountSample, out: &mut Vec<Metric>) {
    for m in &s.mounts {
        usage_metrics(m, out);
    }
}

/// The metrics of one mount point (see metrics.md "Per mount point").
pub fn usage_metrics(m: &MountUsage, out: &mut Vec<Metric>) {
    let dim = |metric: Metric| metric.with_dim("mount_point", m.mount_point.clone());
    out.push(dim(Metric::new(
        "disk_fs_rwstate",
        "",
        if m.read_only { 1.0 } else { 0.0 },
    )));
    let Some(f) = &m.figures else {
        return;
    };
    let size = f.frsize as f64;
    let used = f.blocks.saturating_sub(f.bfree) as f64 * size;
    let avail = f.bavail as f64 * size;
    out.push(dim(Metric::new(
        "disk_total",
        "GB",
        f.blocks as f64 * size / GB,
    )));
    out.push(dim(Metric::new("disk_free", "GB", avail / GB)));
    out.push(dim(Metric::new("disk_used", "GB", used / GB)));
    // df: an empty (0-block) file system is 0 % used, not undefined.
    let used_pct = super::percent(used, used + avail).unwrap_or(0.0);
    out.push(dim(Metric::new("disk_usedPercent", "%", used_pct)));
    let inodes_used = f.files.saturating_sub(f.ffree) as f64;
    out.push(dim(Metric::new(
        "disk_inodesTotal",
        "Count",
        f.files as f64,
    )));
    out.push(dim(Metric::new("disk_inodesUsed", "Count", inodes_used)));
    let inodes_pct = super::percent(inodes_used, f.files as f64).unwrap_or(0.0);
    out.push(dim(Metric::new("disk_inodesUsedPercent", "%", inodes_pct)));
}
