//! `cloudeye-agent print`: collect one interval and show what would be sent, offline.
//!
//! No credentials and no network: the instance id and namespace come from the config,
//! else placeholders, so the output is the exact request body shape.

use crate::cli::PrintFormat;
use crate::collect::{self, Collector, Settings};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metric::{encode_batches, BatchContext, Metric, Point};
use std::io::Write;
use std::time::Duration;

/// Instance id shown when the config names none (print never asks the metadata service).
pub const PLACEHOLDER_INSTANCE_ID: &str = "local";

pub fn print(config: &Config, interval_secs: u64, format: PrintFormat) -> Result<()> {
    let mut collector = Collector::new(Settings::from_config(config));
    let first = collector.sample();
    std::thread::sleep(Duration::from_secs(interval_secs));
    let second = collector.sample();
    let mut metrics = Vec::new();
    collect::gauges(&second, &mut metrics);
    collect::rates(&first, &second, &mut metrics);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = match format {
        PrintFormat::Json => write_json(&mut out, config, &metrics, second.wall_ms),
        PrintFormat::Table => write_table(&mut out, &metrics),
    };
    written
        .and_then(|_| out.flush())
        .map_err(|e| Error::io(format!("cannot write to stdout: {e}")))
}

fn write_json(
    out: &mut impl Write,
    config: &Config,
    metrics: &[Metric],
    collect_time_ms: i64,
) -> std::io::Result<()> {
    let ctx = BatchContext {
        namespace: config
            .namespace
            .clone()
            .unwrap_or_else(|| "AGT.ECS".to_string()),
        instance_id: config
            .instance_id
            .clone()
            .unwrap_or_else(|| PLACEHOLDER_INSTANCE_ID.to_string()),
        ttl: config.ttl,
    };
    let points: Vec<Point> = metrics
        .iter()
        .map(|m| Point {
            metric: m.clone(),
            collect_time_ms,
        })
        .collect();
    for batch in encode_batches(&points, &ctx) {
        out.write_all(&batch.body)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn write_table(out: &mut impl Write, metrics: &[Metric]) -> std::io::Result<()> {
    let rows: Vec<[String; 4]> = metrics
        .iter()
        .filter(|m| m.value.is_finite())
        .map(|m| {
            let dims = m
                .dims
                .iter()
                .map(|d| format!("{}={}", d.name, d.value))
                .collect::<Vec<_>>()
                .join(",");
            [
                m.name.to_string(),
                dims,
                format_value(m.value),
                m.unit.to_string(),
            ]
        })
        .collect();
    let header = [
        "METRIC".to_string(),
        "DIMENSIONS".to_string(),
        "VALUE".to_string(),
        "UNIT".to_string(),
    ];
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows.iter()) {
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:>w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )?;
    }
    Ok(())
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned() {
        let metrics = vec![
            Metric::new("cpu_usage", "%", 12.345),
            Metric::new("disk_total", "GB", 100.0).with_dim("mount_point", "/"),
        ];
        let mut out = Vec::new();
        write_table(&mut out, &metrics).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("cpu_usage   "));
        assert!(lines[1].contains("12.35"));
        assert!(lines[2].contains("mount_point=/"));
        let col = lines[0].find("VALUE").unwrap();
        assert_eq!(lines[1].find("12.35").unwrap() + 5, col + 5);
    }
}
