//! Custom metrics from a drop directory (`custom_dir`).
//!
//! Any script may write `*.json` files there, each a JSON array of
//! `{"metric_name", "value", "unit"?, "dimensions"?: {"name": "value"}, "namespace"?}`.
//! Every cycle [`collect_custom`] reads them all, checks each item against Cloud Eye's rules
//! and turns the good ones into [`Metric`]s; a bad item is skipped with one warning naming
//! the file and the reason. Reads are bounded (per file, per cycle, file count, item count)
//! so a runaway script cannot blow the agent's memory budget, and a file is read once and
//! parsed whole, so a half-written file is skipped rather than half-used.

use crate::metric::{Dim, Metric};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A file larger than this is skipped whole.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// At most this many bytes are read from the directory in one cycle.
pub const MAX_DIR_BYTES: u64 = 1024 * 1024;
/// At most this many `*.json` files are read in one cycle.
pub const MAX_FILES: usize = 256;
/// At most this many custom metrics are taken in one cycle.
pub const MAX_METRICS: usize = 4096;
/// Cloud Eye allows 4 dimensions and the agent always adds `instance_id`.
pub const MAX_CUSTOM_DIMS: usize = 3;
/// Item warnings logged per file per cycle; the rest are summed up in one line.
const ITEM_WARNINGS_PER_FILE: usize = 5;
/// Warnings kept in [`CustomStats::warnings`] (all are logged up to the per-file cap).
const MAX_KEPT_WARNINGS: usize = 64;

/// What one pass over the directory found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomStats {
    /// Files read and parsed (even if some of their items were bad).
    pub files_read: usize,
    /// Files ignored because their mtime is older than `max_age`.
    pub files_stale: usize,
    /// Files skipped: unreadable, not a regular file, too large, over a cap, bad JSON.
    pub files_skipped: usize,
    /// Metrics pushed to `out`.
    pub metrics: usize,
    /// Items skipped because they break a rule.
    pub items_skipped: usize,
    /// The first warnings of this pass, as logged.
    pub warnings: Vec<String>,
}

impl CustomStats {
    fn warn(&mut self, message: String) {
        log::warn!("{message}");
        if self.warnings.len() < MAX_KEPT_WARNINGS {
            self.warnings.push(message);
        }
    }
}

/// Read every fresh `*.json` file in `dir` and append its valid items to `out`, each with
/// its namespace set (the item's own, else `default_namespace`). Never fails: problems are
/// logged and counted. Hidden files (`.name.json`) are ignored, as writers use them as
/// temporary files.
pub fn collect_custom(
    dir: &Path,
    default_namespace: &str,
    max_age: Duration,
    now: SystemTime,
    out: &mut Vec<Metric>,
) -> CustomStats {
    let mut stats = CustomStats::default();
    let names = match list_json_files(dir, &mut stats) {
        Ok(names) => names,
        Err(e) => {
            stats.warn(format!(
                "custom metrics: cannot read {}: {e}",
                dir.display()
            ));
            return stats;
        }
    };
    let mut buf = Vec::with_capacity(4096);
    let mut budget = MAX_DIR_BYTES;
    for name in names {
        let path = dir.join(&name);
        let Some(len) = read_file(&path, max_age, now, budget, &mut buf, &mut stats) else {
            continue;
        };
        budget -= len;
        parse_file(&path, &buf, default_namespace, out, &mut stats);
    }
    stats
}

/// The names of the first [`MAX_FILES`] `*.json` entries, sorted so every cycle reads
/// them in the same order.
fn list_json_files(dir: &Path, stats: &mut CustomStats) -> std::io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    let mut extra = 0usize;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let bytes = name.as_bytes();
        if !bytes.ends_with(b".json") || bytes.starts_with(b".") {
            continue;
        }
        if names.len() < MAX_FILES {
            names.push(name);
        } else {
            extra += 1;
        }
    }
    if extra > 0 {
        stats.files_skipped += extra;
        stats.warn(format!(
            "custom metrics: {} holds more than {MAX_FILES} .json files; {extra} ignored this cycle",
            dir.display()
        ));
    }
    names.sort();
    Ok(names)
}

/// Read `path` into `buf` if it is a fresh regular file within the caps; gives its length.
fn read_file(
    path: &Path,
    max_age: Duration,
    now: SystemTime,
    budget: u64,
    buf: &mut Vec<u8>,
    stats: &mut CustomStats,
) -> Option<u64> {
    match try_read_file(path, max_age, now, budget, buf) {
        Ok(Some(len)) => Some(len),
        Ok(None) => {
            stats.files_stale += 1;
            log::debug!("custom metrics: {} is stale, ignored", path.display());
            None
        }
        Err(reason) => {
            stats.files_skipped += 1;
            stats.warn(format!(
                "custom metrics: {} skipped: {reason}",
                path.display()
            ));
            None
        }
    }
}

/// `Ok(None)`: stale. `Err`: why the file cannot be used.
fn try_read_file(
    path: &Path,
    max_age: Duration,
    now: SystemTime,
    budget: u64,
    buf: &mut Vec<u8>,
) -> Result<Option<u64>, String> {
    // O_NONBLOCK: a FIFO named *.json must not hang the agent; it is refused below.
    let file = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    // fstat of the open file: what is read below is the file that was checked.
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let mtime = meta.modified().map_err(|e| format!("no mtime: {e}"))?;
    if now.duration_since(mtime).is_ok_and(|age| age > max_age) {
        return Ok(None);
    }
    // The size in metadata may be stale or a lie (the file may grow): read with a limit.
    let limit = MAX_FILE_BYTES.min(budget);
    buf.clear();
    file.take(limit + 1)
        .read_to_end(buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    let len = buf.len() as u64;
    if len > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    if len > budget {
        return Err(format!(
            "over the {MAX_DIR_BYTES}-byte budget for the whole directory this cycle"
        ));
    }
    Ok(Some(len))
}

/// Parse one file's bytes and push its valid items.
fn parse_file(
    path: &Path,
    bytes: &[u8],
    default_namespace: &str,
    out: &mut Vec<Metric>,
    stats: &mut CustomStats,
) {
    let items = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) => items,
        Ok(_) => return skip_file(path, "the top level must be a JSON array", stats),
        Err(e) => return skip_file(path, &format!("invalid JSON: {e}"), stats),
    };
    stats.files_read += 1;
    let mut bad = 0usize;
    let mut over_cap = 0usize;
    for (i, item) in items.iter().enumerate() {
        match parse_item(item, default_namespace) {
            Ok(_) if stats.metrics >= MAX_METRICS => over_cap += 1,
            Ok(metric) => {
                out.push(metric);
                stats.metrics += 1;
            }
            Err(reason) => {
                bad += 1;
                if bad <= ITEM_WARNINGS_PER_FILE {
                    stats.warn(format!(
                        "custom metrics: {} item {i} skipped: {reason}",
                        path.display()
                    ));
                }
            }
        }
    }
    stats.items_skipped += bad + over_cap;
    if bad > ITEM_WARNINGS_PER_FILE {
        stats.warn(format!(
            "custom metrics: {} has {} more bad items",
            path.display(),
            bad - ITEM_WARNINGS_PER_FILE
        ));
    }
    if over_cap > 0 {
        stats.warn(format!(
            "custom metrics: {} items of {} skipped: at most {MAX_METRICS} custom metrics per cycle",
            over_cap,
            path.display()
        ));
    }
}

fn skip_file(path: &Path, reason: &str, stats: &mut CustomStats) {
    stats.files_skipped += 1;
    stats.warn(format!(
        "custom metrics: {} skipped: {reason}",
        path.display()
    ));
}

/// One array element to a metric, or the rule it breaks.
fn parse_item(item: &Value, default_namespace: &str) -> Result<Metric, String> {
    let Value::Object(map) = item else {
        return Err("an item must be a JSON object".to_string());
    };
    if let Some(key) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("unknown key \"{key}\""));
    }
    let name = required_str(map, "metric_name")?;
    check_metric_name(name)?;
    let value = match map.get("value") {
        Some(Value::Number(n)) => n.as_f64().filter(|v| v.is_finite()),
        Some(_) => None,
        None => return Err("\"value\" is missing".to_string()),
    }
    .ok_or_else(|| "\"value\" must be a finite JSON number".to_string())?;
    let unit = optional_str(map, "unit")?.unwrap_or("");
    if unit.chars().count() > 32 {
        return Err("\"unit\" is longer than 32 characters".to_string());
    }
    let namespace = match optional_str(map, "namespace")? {
        Some(ns) => {
            crate::config::check_namespace("namespace", ns).map_err(|e| e.message().to_string())?;
            ns
        }
        None => default_namespace,
    };
    let dims = match map.get("dimensions") {
        None => Vec::new(),
        Some(Value::Object(d)) => parse_dims(d)?,
        Some(_) => return Err("\"dimensions\" must be an object of name: value".to_string()),
    };
    Ok(Metric {
        name: Cow::Owned(name.to_string()),
        unit: Cow::Owned(unit.to_string()),
        dims,
        value,
        namespace: Some(namespace.to_string()),
    })
}

const KEYS: [&str; 5] = ["metric_name", "value", "unit", "dimensions", "namespace"];

fn required_str<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    optional_str(map, key)?.ok_or_else(|| format!("\"{key}\" is missing"))
}

fn optional_str<'a>(map: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{key}\" must be a string")),
    }
}

/// Cloud Eye: a letter, then letters, digits, `_` or `-`, 1 to 96 characters.
fn check_metric_name(name: &str) -> Result<(), String> {
    if is_identifier(name, 96) {
        Ok(())
    } else {
        Err(format!(
            "metric_name \"{}\" must start with a letter and hold only letters, digits, '_' or '-' (1-96 characters)",
            truncate(name)
        ))
    }
}

fn parse_dims(d: &Map<String, Value>) -> Result<Vec<Dim>, String> {
    if d.len() > MAX_CUSTOM_DIMS {
        return Err(format!(
            "{} dimensions: at most {MAX_CUSTOM_DIMS} (Cloud Eye allows 4 and instance_id is one)",
            d.len()
        ));
    }
    let mut dims = Vec::with_capacity(d.len());
    for (name, value) in d {
        if name == "instance_id" {
            return Err("dimension \"instance_id\" is reserved: the agent adds it".to_string());
        }
        if !is_identifier(name, 32) {
            return Err(format!(
                "dimension name \"{}\" must start with a letter and hold only letters, digits, '_' or '-' (1-32 characters)",
                truncate(name)
            ));
        }
        let Value::String(value) = value else {
            return Err(format!("dimension \"{name}\" must have a string value"));
        };
        if !(1..=256).contains(&value.chars().count()) {
            return Err(format!(
                "dimension \"{name}\" value must be 1-256 characters"
            ));
        }
        dims.push(Dim {
            name: Cow::Owned(name.clone()),
            value: value.clone(),
        });
    }
    Ok(dims)
}

/// A letter, then ASCII letters, digits, `_` or `-`; 1 to `max` characters.
fn is_identifier(s: &str, max: usize) -> bool {
    s.len() <= max
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Bad names go into log lines: keep them short.
fn truncate(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("a", 96));
        assert!(is_identifier("app_req-count2", 96));
        assert!(!is_identifier("", 96));
        assert!(!is_identifier("1abc", 96));
        assert!(!is_identifier("_abc", 96));
        assert!(!is_identifier("a.b", 96));
        assert!(!is_identifier("é", 96));
        assert!(is_identifier(&"a".repeat(96), 96));
        assert!(!is_identifier(&"a".repeat(97), 96));
    }

    #[test]
    fn item_keeps_fields() {
        let v: Value = serde_json::from_str(
            r#"{"metric_name":"q","value":2.5,"unit":"ms","dimensions":{"b":"2","a":"1"}}"#,
        )
        .unwrap();
        let m = parse_item(&v, "CUSTOM.HOST").unwrap();
        assert_eq!(m.name, "q");
        assert_eq!(m.unit, "ms");
        assert_eq!(m.value, 2.5);
        assert_eq!(m.namespace.as_deref(), Some("CUSTOM.HOST"));
        let dims: Vec<(&str, &str)> = m.dims.iter().map(|d| (&*d.name, &*d.value)).collect();
        assert_eq!(dims, [("a", "1"), ("b", "2")]);
    }
}
