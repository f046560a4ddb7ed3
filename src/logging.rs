//! Logging: env_logger to stderr (or to `log_file` with size-capped rotation), one line
//! per event, and [`Throttle`] for failures that repeat every cycle.
//!
//! The level is RUST_LOG when set, else `log_level`, else `info`. Messages never carry
//! secrets: callers log [`crate::config::Secret`] only through its redacting `Display`.
//! Under systemd (JOURNAL_STREAM set) the timestamp is left to journald.

use crate::config::Config;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Rotate `log_file` when it would grow past this many bytes.
pub const LOG_FILE_MAX_BYTES: u64 = 1024 * 1024;
/// A repeated failure is logged at most once per this many milliseconds.
pub const THROTTLE_INTERVAL_MS: i64 = 60_000;

/// Initialise the logger once, as early as possible. Safe to call twice.
pub fn init(config: Option<&Config>) {
    let filters = level_filters(
        std::env::var("RUST_LOG").ok().as_deref(),
        config.and_then(|c| c.log_level.as_deref()),
    );
    let timestamps = std::env::var_os("JOURNAL_STREAM").is_none();
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&filters);
    builder.format(move |buf, record| {
        let line = one_line(&record.args().to_string());
        if timestamps {
            writeln!(
                buf,
                "{} {} {line}",
                format_utc(crate::clock::wall_ms()),
                record.level()
            )
        } else {
            writeln!(buf, "{} {line}", record.level())
        }
    });
    let mut file_error = None;
    if let Some(path) = config.and_then(|c| c.log_file.as_ref()) {
        match RotatingFile::open(path, LOG_FILE_MAX_BYTES) {
            Ok(file) => {
                builder.target(env_logger::Target::Pipe(Box::new(file)));
            }
            Err(e) => file_error = Some(e),
        }
    }
    if builder.try_init().is_ok() {
        if let (Some(e), Some(path)) = (file_error, config.and_then(|c| c.log_file.as_ref())) {
            log::warn!(
                "cannot open log_file {}: {e}; logging to stderr",
                path.display()
            );
        }
    }
}

/// RUST_LOG wins over `log_level`; the default is `info`.
pub fn level_filters(rust_log: Option<&str>, log_level: Option<&str>) -> String {
    match rust_log {
        Some(v) if !v.trim().is_empty() => v.to_string(),
        _ => log_level.unwrap_or("info").to_string(),
    }
}

/// Escape line breaks so that one event is always one line.
pub fn one_line(message: &str) -> String {
    message.replace('\r', "\\r").replace('\n', "\\n")
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds).
pub fn format_utc(ms: i64) -> String {
    let t = crate::clock::utc_fields(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// An append-only log file that keeps at most two generations: when a write would take
/// FILE past `max_bytes`, FILE becomes FILE.1 (replacing the old one) and a new FILE starts.
///
/// The size is taken from the open file before each write, so an outside `copytruncate`
/// is noticed; if FILE was renamed or removed (logrotate without copytruncate), it is
/// reopened, so no SIGHUP is needed.
pub struct RotatingFile {
    path: PathBuf,
    rotated: PathBuf,
    max_bytes: u64,
    file: File,
}

impl RotatingFile {
    /// Open (or create, mode 0640) `path` for appending.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<RotatingFile> {
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        Ok(RotatingFile {
            path: path.to_path_buf(),
            rotated: PathBuf::from(rotated),
            max_bytes,
            file: open_append(path)?,
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The previous generation, `FILE.1`.
    pub fn rotated_path(&self) -> &Path {
        &self.rotated
    }

    fn reopen_if_moved(&mut self) -> io::Result<()> {
        let open = self.file.metadata()?;
        let same = std::fs::metadata(&self.path)
            .map(|m| m.dev() == open.dev() && m.ino() == open.ino())
            .unwrap_or(false);
        if !same {
            self.file = open_append(&self.path)?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        std::fs::rename(&self.path, &self.rotated)?;
        self.file = open_append(&self.path)?;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl RotatingFile {
    /// Make room for a write of `len` bytes. An empty file takes any write whole, so one
    /// oversized event never rotates in a loop.
    fn prepare(&mut self, len: usize) -> io::Result<()> {
        self.reopen_if_moved()?;
        let size = self.file.metadata()?.len();
        if size > 0 && size + len as u64 > self.max_bytes {
            self.rotate()?;
        }
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.prepare(buf.len())?;
        self.file.write(buf)
    }

    // env_logger hands over one formatted event per call: keep it in one file.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.prepare(buf.len())?;
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Summarises a failure that repeats every cycle: the first occurrence is logged, then at
/// most one line per interval saying how many were held back since the last line.
///
/// ```
/// # use cloudeye_agent::logging::Throttle;
/// let mut t = Throttle::new(60_000);
/// assert_eq!(t.hit(0).as_deref(), Some(""));          // first: log it
/// assert_eq!(t.hit(10_000), None);                    // held back
/// assert!(t.hit(60_000).unwrap().contains("1 more")); // a minute later: log with a count
/// ```
#[derive(Debug, Clone)]
pub struct Throttle {
    interval_ms: i64,
    last_logged_ms: Option<i64>,
    held_back: u64,
}

impl Throttle {
    pub fn new(interval_ms: i64) -> Throttle {
        Throttle {
            interval_ms,
            last_logged_ms: None,
            held_back: 0,
        }
    }

    /// Record one occurrence at `now_ms`. `Some(suffix)` means "log it now", with
    /// `suffix` ("" or " (N more since TIME)") appended to the message; `None` means skip.
    pub fn hit(&mut self, now_ms: i64) -> Option<String> {
        match self.last_logged_ms {
            Some(last) if now_ms - last < self.interval_ms => {
                self.held_back += 1;
                None
            }
            last => {
                let suffix = match last {
                    Some(last) if self.held_back > 0 => {
                        format!(" ({} more since {})", self.held_back, format_utc(last))
                    }
                    _ => String::new(),
                };
                self.last_logged_ms = Some(now_ms);
                self.held_back = 0;
                Some(suffix)
            }
        }
    }

    /// [`Throttle::hit`] with the wall clock.
    pub fn hit_now(&mut self) -> Option<String> {
        self.hit(crate::clock::wall_ms())
    }

    /// The failure has cleared. Returns how many occurrences were never logged (so the
    /// caller can say "recovered after ..."), and starts afresh.
    pub fn clear(&mut self) -> Option<u64> {
        let was_failing = self.last_logged_ms.is_some();
        let held_back = self.held_back;
        self.last_logged_ms = None;
        self.held_back = 0;
        was_failing.then_some(held_back)
    }

    /// True while a failure is being tracked.
    pub fn is_active(&self) -> bool {
        self.last_logged_ms.is_some()
    }
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new(THROTTLE_INTERVAL_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_over_config() {
        assert_eq!(level_filters(Some("debug"), Some("warn")), "debug");
        assert_eq!(level_filters(None, Some("warn")), "warn");
        assert_eq!(level_filters(Some(""), Some("error")), "error");
        assert_eq!(level_filters(None, None), "info");
    }

    #[test]
    fn newlines_are_escaped() {
        assert_eq!(one_line("a\nb\r\nc"), "a\\nb\\r\\nc");
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        // 2000-03-01: 30 years of 365 days + 7 leap days (72..96) = 10957 days to 2000-01-01,
        // + 31 (Jan) + 29 (Feb, leap) = 11017 days; 11017 * 86400 = 951868800.
        assert_eq!(
            format_utc(951_868_800_000 + 3_723_000),
            "2000-03-01T01:02:03Z"
        );
        // one second before the epoch
        assert_eq!(format_utc(-1000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn throttle_logs_first_then_once_a_minute_with_count() {
        let mut t = Throttle::new(60_000);
        assert_eq!(t.hit(1_000).as_deref(), Some(""));
        // cycles every 10 s: 11 s, 21 s, ... 51 s are held back (5 of them)
        for s in [11, 21, 31, 41, 51] {
            assert_eq!(t.hit(s * 1000), None, "at {s} s");
        }
        // 61 s: 60 s after the logged one at 1 s -> logged, naming the 5 held back since 1 s
        assert_eq!(
            t.hit(61_000).as_deref(),
            Some(" (5 more since 1970-01-01T00:00:01Z)")
        );
        // the next minute starts from 61 s
        assert_eq!(t.hit(120_999), None);
        assert_eq!(
            t.hit(121_000).as_deref(),
            Some(" (1 more since 1970-01-01T00:01:01Z)")
        );
    }

    #[test]
    fn throttle_without_repeats_has_no_count() {
        let mut t = Throttle::new(60_000);
        assert_eq!(t.hit(0).as_deref(), Some(""));
        assert_eq!(t.hit(600_000).as_deref(), Some(""));
    }

    #[test]
    fn throttle_clear_reports_and_resets() {
        let mut t = Throttle::default();
        assert_eq!(t.clear(), None);
        t.hit(0);
        t.hit(1);
        t.hit(2);
        assert!(t.is_active());
        assert_eq!(t.clear(), Some(2));
        assert!(!t.is_active());
        assert_eq!(t.hit(3).as_deref(), Some(""));
    }
}
