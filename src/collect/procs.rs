//! Processes: counts by state, and per configured pattern the number of matching
//! processes, their CPU, memory and open files.
//!
//! Everything comes from ONE pass over `proc_root/[0-9]*`. Every pid costs one read of
//! `stat` (state, comm, CPU ticks, start time); `cmdline` is read only when a pattern is
//! still unmatched by comm and the pid is not a kernel thread; `statm` and `fd/` only for
//! pids that matched. proc_root is opened once per scan and the per-pid files are opened
//! relative to it (`openat`), so the kernel does not walk proc_root's path for each file;
//! the relative path, comm and cmdline buffers are reused and the directory is listed
//! with getdents, so a pid that does not match costs no allocation.
//!
//! Pattern rule (documented in docs/notes-collect-b.md): a pattern containing `*`, `?` or
//! `[` is a glob that must match the whole comm or the whole cmdline (arguments joined by
//! spaces); any other pattern matches a comm equal to it, or a cmdline containing it as a
//! word: preceded by the start, a space or `/`, and followed by the end or a space.

use super::text::parse_u64;
use super::{reader::Reader, Settings};
use crate::glob;
use crate::metric::Metric;
use nix::dir::Dir;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};
use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Cloud Eye refuses dimension values longer than this.
const MAX_DIM_VALUE: usize = 256;
/// `PF_KTHREAD` in the `flags` field of /proc/[pid]/stat: kernel threads have no cmdline.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Counts by state from one scan, plus the per-pattern figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    pub total: u64,
    pub running: u64,
    pub sleeping: u64,
    pub blocked: u64,
    pub zombie: u64,
    pub idle: u64,
    pub stopped: u64,
    /// Clock ticks per second (sysconf CLK_TCK) the tick counts are in.
    pub clk_tck: u64,
    /// MemTotal in bytes; `None` when meminfo could not be read (no proc_mem then).
    pub mem_total_bytes: Option<u64>,
    pub patterns: Vec<PatternSample>,
}

/// One configured pattern in one scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatternSample {
    pub pattern: String,
    pub count: u64,
    /// Sum of resident memory of the matching pids whose statm was readable.
    pub rss_bytes: u64,
    /// Sum of open fds of the matching pids whose fd directory was readable; `None` when
    /// some matched but none was readable.
    pub fds: Option<u64>,
    /// CPU baselines of the matching pids, sorted by pid.
    pub pids: Vec<PidTicks>,
}

/// The CPU baseline of one process: a pid with another start time is another process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidTicks {
    pub pid: u32,
    pub start: u64,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
}

/// The fields of /proc/[pid]/stat this module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat<'a> {
    pub comm: &'a [u8],
    pub state: u8,
    pub flags: u64,
    /// (utime + stime, starttime); `None` when the line is truncated before them.
    pub times: Option<(u64, u64)>,
}

/// Parse /proc/[pid]/stat. comm may contain spaces and `)`, so the fields after it are
/// found from the LAST `)`.
pub fn parse_stat(bytes: &[u8]) -> Option<Stat<'_>> {
    let open = bytes.iter().position(|&b| b == b'(')?;
    let close = bytes.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = &bytes[open + 1..close];
    // Fields from 3 (state) on; index k here is field k + 3 of proc(5).
    let mut f = bytes[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let state = *f.next()?.first()?;
    let mut flags = 0;
    let mut utime = None;
    let mut stime = None;
    let mut start = None;
    for (k, w) in f.enumerate().map(|(i, w)| (i + 1, w)) {
        match k {
            6 => flags = parse_u64(w).unwrap_or(0),
            11 => utime = parse_u64(w),
            12 => stime = parse_u64(w),
            19 => {
                start = parse_u64(w);
                break;
            }
            _ => {}
        }
    }
    let times = match (utime, stime, start) {
        (Some(u), Some(s), Some(st)) => Some((u.saturating_add(s), st)),
        _ => None,
    };
    Some(Stat {
        comm,
        state,
        flags,
        times,
    })
}

/// Resident pages: the second field of /proc/[pid]/statm.
pub fn parse_statm_resident(bytes: &[u8]) -> Option<u64> {
    bytes
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .nth(1)
        .and_then(parse_u64)
}

/// MemTotal from /proc/meminfo, in bytes (the memory collector's parser).
pub fn parse_mem_total(bytes: &[u8]) -> Option<u64> {
    super::memory::parse_meminfo(bytes)
        .ok()?
        .total_kb
        .checked_mul(1024)
}

/// A configured process pattern, classified once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub text: String,
    pub is_glob: bool,
}

impl Pattern {
    pub fn new(text: &str) -> Pattern {
        Pattern {
            text: text.to_string(),
            is_glob: text.bytes().any(|b| matches!(b, b'*' | b'?' | b'[')),
        }
    }

    pub fn matches_comm(&self, comm: &[u8]) -> bool {
        self.matches_comm_text(comm, std::str::from_utf8(comm).ok())
    }

    /// `cmdline` with NULs already turned to spaces and the trailing one removed.
    pub fn matches_cmdline(&self, cmdline: &[u8]) -> bool {
        self.matches_cmdline_text(cmdline, std::str::from_utf8(cmdline).ok())
    }

    /// [`Pattern::matches_comm`] with `comm` already checked as UTF-8 (`text`), so a
    /// scan checks it once for all patterns.
    fn matches_comm_text(&self, comm: &[u8], text: Option<&str>) -> bool {
        if self.is_glob {
            text.is_some_and(|c| glob::matches(&self.text, c))
        } else {
            comm == self.text.as_bytes()
        }
    }

    fn matches_cmdline_text(&self, cmdline: &[u8], text: Option<&str>) -> bool {
        if cmdline.is_empty() {
            return false;
        }
        if self.is_glob {
            return text.is_some_and(|c| glob::matches(&self.text, c));
        }
        contains_word(cmdline, self.text.as_bytes())
    }
}

/// Does `word` occur in `hay` starting at the start, after a space or after a `/`, and
/// ending at the end or before a space? Only those starts are tried.
fn contains_word(hay: &[u8], word: &[u8]) -> bool {
    if word.is_empty() {
        return false;
    }
    let mut i = 0;
    loop {
        let rest = &hay[i..];
        if rest.starts_with(word) && matches!(rest.get(word.len()), None | Some(b' ')) {
            return true;
        }
        match memchr::memchr2(b' ', b'/', rest) {
            Some(k) => i += k + 1,
            None => return false,
        }
    }
}

/// Turn a raw cmdline (NUL-separated arguments) into space-separated text in place.
pub fn cmdline_to_text(buf: &mut Vec<u8>) {
    while buf.last() == Some(&0) {
        buf.pop();
    }
    for b in buf.iter_mut() {
        if *b == 0 {
            *b = b' ';
        }
    }
}

/// Host facts the scan needs, read once per cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFacts {
    pub clk_tck: u64,
    pub page_size: u64,
    pub mem_total_bytes: Option<u64>,
}

impl HostFacts {
    /// Facts from sysconf (CLK_TCK default 100, page size default 4096) and meminfo.
    pub fn read(r: &mut Reader, s: &Settings) -> HostFacts {
        use nix::unistd::{sysconf, SysconfVar};
        let conf = |v, default| match sysconf(v) {
            Ok(Some(x)) if x > 0 => x as u64,
            _ => default,
        };
        let mem_total_bytes = if s.processes.is_empty() {
            None
        } else {
            // The memory collector keeps this file open: re-read it with pread.
            r.read_cached_or_log(&s.proc_root.join("meminfo"))
                .and_then(parse_mem_total)
        };
        HostFacts {
            clk_tck: conf(SysconfVar::CLK_TCK, 100),
            page_size: conf(SysconfVar::PAGE_SIZE, 4096),
            mem_total_bytes,
        }
    }
}

pub fn read(r: &mut Reader, s: &Settings) -> Option<ProcSample> {
    let facts = HostFacts::read(r, s);
    scan(r, &s.proc_root, &s.processes, facts)
}

/// One pass over `proc_root/[0-9]*`. `None` only when the directory cannot be listed.
pub fn scan(
    r: &mut Reader,
    proc_root: &Path,
    patterns: &[String],
    facts: HostFacts,
) -> Option<ProcSample> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    // One descriptor to open the per-pid files relative to, and a duplicate to list the
    // directory with (the listing borrows its descriptor mutably).
    let opened = open(proc_root, flags, Mode::empty())
        .map_err(std::io::Error::from)
        .and_then(|fd| Ok((fd.try_clone()?, fd)))
        .and_then(|(fd, dup)| Ok((fd, Dir::from_fd(dup)?)));
    let (root, mut dir) = match opened {
        Ok(x) => x,
        Err(e) => {
            log::debug!("cannot list {}: {e}", proc_root.display());
            return None;
        }
    };
    let mut scanner = Scanner::new(root, proc_root, patterns, facts);
    for entry in dir.iter().flatten() {
        let name = entry.file_name().to_bytes();
        if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Some(pid) = parse_u64(name).and_then(|p| u32::try_from(p).ok()) else {
            continue;
        };
        scanner.visit(r, pid, name);
    }
    Some(scanner.finish())
}

/// The state of one scan: reused buffers and running totals.
struct Scanner<'a> {
    /// `proc_root`, open as a directory: per-pid files are opened relative to it.
    root: OwnedFd,
    root_path: &'a Path,
    /// `<pid>/<file>` and a NUL, rewritten for each file.
    rel: RelPath,
    comm: Vec<u8>,
    cmdline: Vec<u8>,
    matched: Vec<bool>,
    patterns: Vec<Pattern>,
    facts: HostFacts,
    sample: ProcSample,
    /// Per pattern: matching pids seen with an unreadable fd directory.
    fd_unreadable: Vec<u64>,
}

/// A path relative to proc_root, `<pid>/<file>`, built in place without allocating.
struct RelPath {
    buf: [u8; 40],
}

impl RelPath {
    /// `<pid>/<file>` as a C string; `None` if it does not fit (a pid name has at most
    /// 20 digits, the longest file name is 7 bytes, so it always fits).
    fn get(&mut self, pid: &[u8], file: &[u8]) -> Option<&CStr> {
        let n = pid.len() + 1 + file.len();
        if n >= self.buf.len() {
            return None;
        }
        self.buf[..pid.len()].copy_from_slice(pid);
        self.buf[pid.len()] = b'/';
        self.buf[pid.len() + 1..n].copy_from_slice(file);
        self.buf[n] = 0;
        CStr::from_bytes_with_nul(&self.buf[..=n]).ok()
    }
}

impl<'a> Scanner<'a> {
    fn new(
        root: OwnedFd,
        root_path: &'a Path,
        patterns: &[String],
        facts: HostFacts,
    ) -> Scanner<'a> {
        // A repeated or empty pattern would only give duplicate or invalid series.
        let mut unique: Vec<Pattern> = Vec::with_capacity(patterns.len());
        for p in patterns.iter().filter(|p| !p.is_empty()) {
            if !unique.iter().any(|u| u.text == *p) {
                unique.push(Pattern::new(p));
            }
        }
        let patterns = unique;
        let sample = ProcSample {
            clk_tck: facts.clk_tck,
            mem_total_bytes: facts.mem_total_bytes,
            patterns: patterns
                .iter()
                .map(|p| PatternSample {
                    pattern: p.text.clone(),
                    fds: Some(0),
                    ..PatternSample::default()
                })
                .collect(),
            ..ProcSample::default()
        };
        Scanner {
            root,
            root_path,
            rel: RelPath { buf: [0; 40] },
            comm: Vec::with_capacity(64),
            cmdline: Vec::with_capacity(4096),
            matched: vec![false; patterns.len()],
            fd_unreadable: vec![0; patterns.len()],
            patterns,
            facts,
            sample,
        }
    }

    /// The content of `<pid>/<file>` under proc_root; `None` if it cannot be read.
    fn read<'r>(&mut self, r: &'r mut Reader, pid: &[u8], file: &[u8]) -> Option<&'r [u8]> {
        let rel = self.rel.get(pid, file)?;
        r.read_in(&self.root, rel).ok()
    }

    fn visit(&mut self, r: &mut Reader, pid: u32, name: &[u8]) {
        let Some(bytes) = self.read(r, name, b"stat") else {
            return; // exited since the directory was listed
        };
        self.sample.total += 1;
        let Some(stat) = parse_stat(bytes) else {
            return;
        };
        self.count_state(stat.state);
        if self.patterns.is_empty() {
            return;
        }
        let flags = stat.flags;
        let times = stat.times;
        self.comm.clear();
        self.comm.extend_from_slice(stat.comm);
        self.match_patterns(r, name, flags);
        if self.matched.iter().any(|&m| m) {
            self.account(r, pid, name, times);
        }
    }

    fn count_state(&mut self, state: u8) {
        let s = &mut self.sample;
        match state {
            b'R' => s.running += 1,
            b'S' => s.sleeping += 1,
            b'D' => s.blocked += 1,
            b'Z' => s.zombie += 1,
            b'I' => s.idle += 1,
            b'T' | b't' => s.stopped += 1,
            _ => {}
        }
    }

    /// Fill `self.matched`; reads cmdline at most once, and only if comm left a pattern
    /// unmatched and the process is not a kernel thread.
    fn match_patterns(&mut self, r: &mut Reader, name: &[u8], flags: u64) {
        let comm = std::str::from_utf8(&self.comm).ok();
        for (m, p) in self.matched.iter_mut().zip(&self.patterns) {
            *m = p.matches_comm_text(&self.comm, comm);
        }
        if self.matched.iter().all(|&m| m) || flags & PF_KTHREAD != 0 {
            return;
        }
        let Some(bytes) = self.read(r, name, b"cmdline") else {
            return;
        };
        self.cmdline.clear();
        self.cmdline.extend_from_slice(bytes);
        cmdline_to_text(&mut self.cmdline);
        let text = std::str::from_utf8(&self.cmdline).ok();
        for (m, p) in self.matched.iter_mut().zip(&self.patterns) {
            *m = *m || p.matches_cmdline_text(&self.cmdline, text);
        }
    }

    /// Add a matched pid's memory, fds and CPU baseline to every pattern it matched.
    fn account(&mut self, r: &mut Reader, pid: u32, name: &[u8], times: Option<(u64, u64)>) {
        let page_size = self.facts.page_size;
        let rss = self
            .read(r, name, b"statm")
            .and_then(parse_statm_resident)
            .map_or(0, |pages| pages.saturating_mul(page_size));
        let fds = self.count_fds(name);
        for (i, p) in self.sample.patterns.iter_mut().enumerate() {
            if !self.matched[i] {
                continue;
            }
            p.count += 1;
            p.rss_bytes = p.rss_bytes.saturating_add(rss);
            match fds {
                Some(n) => p.fds = p.fds.map(|f| f + n),
                None => self.fd_unreadable[i] += 1,
            }
            if let Some((ticks, start)) = times {
                p.pids.push(PidTicks { pid, start, ticks });
            }
        }
    }

    /// Number of entries in `<pid>/fd`; `None` when it cannot be listed (another user's
    /// process without CAP_SYS_PTRACE, or the process exited).
    fn count_fds(&mut self, pid: &[u8]) -> Option<u64> {
        let rel = self.rel.get(pid, b"fd")?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        match Dir::openat(&self.root, rel, flags, Mode::empty()) {
            Ok(mut d) => {
                let entries = d.iter().filter_map(Result::ok);
                let n = entries
                    .filter(|e| !matches!(e.file_name().to_bytes(), b"." | b".."))
                    .count();
                Some(n as u64)
            }
            Err(e) => {
                let pid = String::from_utf8_lossy(pid);
                log::debug!("cannot list {}/{pid}/fd: {e}", self.root_path.display());
                None
            }
        }
    }

    fn finish(mut self) -> ProcSample {
        for (p, unreadable) in self.sample.patterns.iter_mut().zip(&self.fd_unreadable) {
            if *unreadable > 0 && *unreadable == p.count {
                p.fds = None;
            }
            p.pids.sort_unstable_by_key(|t| t.pid);
        }
        self.sample
    }
}

pub fn gauges(s: &ProcSample, out: &mut Vec<Metric>) {
    let counts = [
        ("proc_total_count", s.total),
        ("proc_running_count", s.running),
        ("proc_sleeping_count", s.sleeping),
        ("proc_blocked_count", s.blocked),
        ("proc_zombie_count", s.zombie),
        ("proc_idle_count", s.idle),
        ("proc_stopped_count", s.stopped),
    ];
    for (name, value) in counts {
        out.push(Metric::new(name, "Count", value as f64));
    }
    for p in s.patterns.iter().filter(|p| dim_ok(&p.pattern)) {
        let dim = |m: Metric| m.with_dim("proc", p.pattern.clone());
        out.push(dim(Metric::new(
            "proc_specified_count",
            "Count",
            p.count as f64,
        )));
        if let Some(total) = s.mem_total_bytes {
            if let Some(pct) = super::percent(p.rss_bytes as f64, total as f64) {
                out.push(dim(Metric::new("proc_mem", "%", pct)));
            }
        }
        if let Some(fds) = p.fds {
            out.push(dim(Metric::new("proc_file", "Count", fds as f64)));
        }
    }
}

fn dim_ok(pattern: &str) -> bool {
    let ok = !pattern.is_empty() && pattern.len() <= MAX_DIM_VALUE;
    if !ok {
        log::debug!(
            "process pattern of {} bytes cannot be a dimension",
            pattern.len()
        );
    }
    ok
}

/// proc_cpu per pattern: % of one CPU over the interval, summed over the pids present in
/// both samples with the same start time. New pids only set their baseline; exited pids
/// drop out; a tick count that went backwards is ignored.
pub fn rates(a: &ProcSample, b: &ProcSample, dt_secs: f64, out: &mut Vec<Metric>) {
    if dt_secs.is_nan() || dt_secs <= 0.0 || b.clk_tck == 0 || a.clk_tck != b.clk_tck {
        return;
    }
    for cur in b.patterns.iter().filter(|p| dim_ok(&p.pattern)) {
        let Some(prev) = a.patterns.iter().find(|p| p.pattern == cur.pattern) else {
            continue;
        };
        let ticks: u64 = cur
            .pids
            .iter()
            .filter_map(|c| {
                let i = prev.pids.binary_search_by_key(&c.pid, |t| t.pid).ok()?;
                let p = prev.pids[i];
                (p.start == c.start).then_some(())?;
                c.ticks.checked_sub(p.ticks)
            })
            .sum();
        let pct = 100.0 * ticks as f64 / b.clk_tck as f64 / dt_secs;
        out.push(Metric::new("proc_cpu", "%", pct).with_dim("proc", cur.pattern.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_starts_only_at_start_space_or_slash() {
        assert!(contains_word(b"ab", b"ab"));
        assert!(contains_word(b"x ab", b"ab"));
        assert!(contains_word(b"/usr/ab -c", b"ab"));
        // "ab" inside "aab" is not a word; a later "ab" after '/' is.
        assert!(!contains_word(b"aab", b"ab"));
        assert!(contains_word(b"aab x/ab", b"ab"));
        // Must end at the end or before a space, not before '/'.
        assert!(!contains_word(b"ab/x", b"ab"));
        assert!(contains_word(b"abc ab/ ab", b"ab"));
        assert!(!contains_word(b"x ", b"x y"));
        assert!(!contains_word(b"", b"ab"));
        assert!(!contains_word(b"ab", b""));
        // A word past 16 KiB of arguments (a Java classpath) is still found.
        let mut long = vec![b'a'; 20_000];
        long.extend_from_slice(b" kafka.Kafka cfg");
        assert!(contains_word(&long, b"kafka.Kafka"));
    }
}
