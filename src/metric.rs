//! Metrics as collectors produce them, and the Cloud Eye request body they become.
//!
//! A [`Metric`] has no time and no instance id: the caller stamps the collect time and the
//! batch encoder adds `instance_id` as the first dimension, the namespace and the ttl.
//! [`encode_batches`] splits into request bodies within Cloud Eye's limits
//! (at most 10,000 items and under 512 KB each) and skips non-finite values.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Cloud Eye refuses more items than this in one request.
pub const MAX_ITEMS_PER_BATCH: usize = 10_000;
/// Cloud Eye refuses bodies of 512 KB or more; keep a margin.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// One extra dimension (beyond `instance_id`), e.g. `mount_point=/data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dim {
    pub name: Cow<'static, str>,
    pub value: String,
}

/// One value of one metric for one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: Cow<'static, str>,
    pub unit: Cow<'static, str>,
    pub dims: Vec<Dim>,
    pub value: f64,
    /// `None`: the host namespace (`AGT.ECS`, `SERVICE.BMS` or the configured one).
    pub namespace: Option<String>,
}

impl Metric {
    /// A host-wide metric with a static name and unit.
    pub fn new(name: &'static str, unit: &'static str, value: f64) -> Metric {
        Metric {
            name: Cow::Borrowed(name),
            unit: Cow::Borrowed(unit),
            dims: Vec::new(),
            value,
            namespace: None,
        }
    }

    /// Add a dimension after `instance_id`.
    pub fn with_dim(mut self, name: &'static str, value: impl Into<String>) -> Metric {
        self.dims.push(Dim {
            name: Cow::Borrowed(name),
            value: value.into(),
        });
        self
    }

    /// A key identifying the series (name + dimensions + namespace), for averaging.
    pub fn series_key(&self) -> String {
        let mut key = String::with_capacity(64);
        if let Some(ns) = &self.namespace {
            key.push_str(ns);
        }
        key.push('\u{1}');
        key.push_str(&self.name);
        for d in &self.dims {
            let _ = write!(key, "\u{1}{}={}", d.name, d.value);
        }
        key
    }
}

/// A metric stamped with the time it describes (Unix ms, end of its interval).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub metric: Metric,
    pub collect_time_ms: i64,
}

/// What every item of a batch shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchContext {
    pub namespace: String,
    pub instance_id: String,
    pub ttl: u64,
}

/// One request body, ready to be spooled or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    pub body: Vec<u8>,
    pub items: usize,
    pub oldest_ms: i64,
    pub newest_ms: i64,
}

/// Encode `points` into as many bodies as the limits need. Non-finite values are skipped
/// (logged at debug level) and never reach Cloud Eye.
pub fn encode_batches(points: &[Point], ctx: &BatchContext) -> Vec<EncodedBatch> {
    let mut batches = Vec::new();
    let mut current = BatchBuilder::new();
    let mut item = Vec::with_capacity(256);
    for point in points {
        if !point.metric.value.is_finite() {
            log::debug!(
                "skipping {} {:?}: value is not finite",
                point.metric.name,
                point.metric.dims
            );
            continue;
        }
        item.clear();
        encode_item(&mut item, point, ctx);
        if !current.fits(item.len()) {
            batches.extend(current.finish());
            current = BatchBuilder::new();
        }
        current.push(&item, point.collect_time_ms);
    }
    batches.extend(current.finish());
    batches
}

struct BatchBuilder {
    body: Vec<u8>,
    items: usize,
    oldest_ms: i64,
    newest_ms: i64,
}

impl BatchBuilder {
    fn new() -> BatchBuilder {
        BatchBuilder {
            body: Vec::new(),
            items: 0,
            oldest_ms: i64::MAX,
            newest_ms: i64::MIN,
        }
    }

    /// Would one more item of `len` bytes keep the body within the limits?
    fn fits(&self, len: usize) -> bool {
        self.items == 0
            || (self.items < MAX_ITEMS_PER_BATCH
                && self.body.len() + 1 + len + 1 <= MAX_BATCH_BYTES)
    }

    fn push(&mut self, item: &[u8], collect_time_ms: i64) {
        self.body.push(if self.items == 0 { b'[' } else { b',' });
        self.body.extend_from_slice(item);
        self.items += 1;
        self.oldest_ms = self.oldest_ms.min(collect_time_ms);
        self.newest_ms = self.newest_ms.max(collect_time_ms);
    }

    fn finish(mut self) -> Option<EncodedBatch> {
        if self.items == 0 {
            return None;
        }
        self.body.push(b']');
        Some(EncodedBatch {
            body: self.body,
            items: self.items,
            oldest_ms: self.oldest_ms,
            newest_ms: self.newest_ms,
        })
    }
}

fn encode_item(out: &mut Vec<u8>, point: &Point, ctx: &BatchContext) {
    let m = &point.metric;
    let namespace = m.namespace.as_deref().unwrap_or(&ctx.namespace);
    out.extend_from_slice(b"{\"metric\":{\"namespace\":");
    json_string(out, namespace);
    out.extend_from_slice(b",\"metric_name\":");
    json_string(out, &m.name);
    out.extend_from_slice(b",\"dimensions\":[{\"name\":\"instance_id\",\"value\":");
    json_string(out, &ctx.instance_id);
    out.push(b'}');
    for d in &m.dims {
        out.extend_from_slice(b",{\"name\":");
        json_string(out, &d.name);
        out.extend_from_slice(b",\"value\":");
        json_string(out, &d.value);
        out.push(b'}');
    }
    let _ = write_fmt(
        out,
        format_args!(
            "]}},\"ttl\":{},\"collect_time\":{},\"value\":",
            ctx.ttl, point.collect_time_ms
        ),
    );
    json_number(out, m.value);
    out.extend_from_slice(b",\"unit\":");
    json_string(out, &m.unit);
    out.extend_from_slice(b",\"type\":");
    out.extend_from_slice(if m.value.fract() == 0.0 && m.value.abs() < 9.0e15 {
        b"\"int\"}"
    } else {
        b"\"float\"}"
    });
}

fn write_fmt(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    std::io::Write::write_fmt(out, args)
}

/// Values are rounded to 4 decimals: plenty for %, GB and rates, and keeps bodies small.
fn json_number(out: &mut Vec<u8>, value: f64) {
    let rounded = (value * 10_000.0).round() / 10_000.0;
    if rounded.fract() == 0.0 && rounded.abs() < 9.0e15 {
        let _ = write_fmt(out, format_args!("{}", rounded as i64));
    } else {
        let _ = write_fmt(out, format_args!("{rounded}"));
    }
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is correct for every input; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> BatchContext {
        BatchContext {
            namespace: "AGT.ECS".into(),
            instance_id: "i-1".into(),
            ttl: 172800,
        }
    }

    fn point(name: &'static str, value: f64, t: i64) -> Point {
        Point {
            metric: Metric::new(name, "%", value),
            collect_time_ms: t,
        }
    }

    #[test]
    fn encodes_cloud_eye_shape() {
        let p = Point {
            metric: Metric::new("disk_usedPercent", "%", 12.5).with_dim("mount_point", "/a \"b\""),
            collect_time_ms: 1_700_000_000_000,
        };
        let b = encode_batches(&[p], &ctx());
        assert_eq!(b.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&b[0].body).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{
                "metric": {"namespace": "AGT.ECS", "metric_name": "disk_usedPercent",
                    "dimensions": [{"name": "instance_id", "value": "i-1"},
                                   {"name": "mount_point", "value": "/a \"b\""}]},
                "ttl": 172800, "collect_time": 1_700_000_000_000_i64, "value": 12.5,
                "unit": "%", "type": "float"}])
        );
    }

    #[test]
    fn skips_non_finite() {
        let pts = [
            point("a", f64::NAN, 1),
            point("b", f64::INFINITY, 1),
            point("c", 3.0, 1),
        ];
        let b = encode_batches(&pts, &ctx());
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].items, 1);
        assert!(encode_batches(&pts[..2], &ctx()).is_empty());
    }

    #[test]
    fn splits_by_count_and_size() {
        let pts: Vec<Point> = (0..25_000).map(|i| point("cpu_usage", 1.0, i)).collect();
        let b = encode_batches(&pts, &ctx());
        assert!(b
            .iter()
            .all(|x| x.items <= MAX_ITEMS_PER_BATCH && x.body.len() < 512 * 1024));
        assert_eq!(b.iter().map(|x| x.items).sum::<usize>(), 25_000);
        assert_eq!(b[0].oldest_ms, 0);
        for x in &b {
            let v: serde_json::Value = serde_json::from_slice(&x.body).unwrap();
            assert_eq!(v.as_array().unwrap().len(), x.items);
        }
    }
}
