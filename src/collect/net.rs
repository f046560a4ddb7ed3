//! Network throughput, packet and error rates from /proc/net/dev, per NIC (dimension
//! `nic`) and summed over the reported NICs (no extra dimension).
//!
//! Reported by default: every interface except `lo` and virtual devices, i.e. those
//! without a `<sys_root>/class/net/NAME/device` link (veth, docker0, bridges, bond
//! masters, tun/tap, ...). Bond slaves have the link, so traffic is counted once, on the
//! slaves. Recv is rx and Sent is tx (the official agent swaps them).

use super::text::{fields, is_path_component, name, parse_records, parse_u64};
use super::{delta, per_second, percent, reader::Reader, Settings};
use crate::error::Result;
use crate::metric::Metric;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One interface's counters (the /proc/net/dev columns the agent uses).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NicCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetSample {
    pub nics: Vec<NicCounters>,
}

/// Parse /proc/net/dev into every interface it lists. Malformed lines are skipped; an
/// input with interface-like lines none of which parse is an error.
pub fn parse_net_dev(bytes: &[u8]) -> Result<NetSample> {
    parse_net_dev_with(bytes, |_| true)
}

/// [`parse_net_dev`] keeping only the interfaces `keep` accepts, so skipped ones (a k8s
/// node has hundreds of veths) cost no allocation.
pub fn parse_net_dev_with(bytes: &[u8], mut keep: impl FnMut(&str) -> bool) -> Result<NetSample> {
    // Header lines have no ':'; every interface line has one.
    let nics = parse_records(
        bytes,
        ("net/dev", "interface lines"),
        |line| !line.contains(&b':'),
        |line| parse_line(line, &mut keep),
    )?;
    Ok(NetSample { nics })
}

/// `  eth0: 1 2 ...`, `eth0:1: 1 2 ...` (alias) or `eth1:123 4 ...` (glued): the name
/// ends at the last ':' since the counters never contain one. `Some(None)`: a valid
/// line that `keep` rejected.
fn parse_line(line: &[u8], keep: &mut impl FnMut(&str) -> bool) -> Option<Option<NicCounters>> {
    let colon = line.iter().rposition(|&b| b == b':')?;
    let nic = name(line[..colon].trim_ascii())?;
    let mut v = [0u64; 12];
    let mut n = 0usize;
    for (slot, field) in v.iter_mut().zip(fields(&line[colon + 1..])) {
        *slot = parse_u64(field)?;
        n += 1;
    }
    if n < v.len() {
        return None;
    }
    if !keep(nic) {
        return Some(None);
    }
    Some(Some(NicCounters {
        name: nic.to_string(),
        rx_bytes: v[0],
        rx_packets: v[1],
        rx_errs: v[2],
        rx_drop: v[3],
        tx_bytes: v[8],
        tx_packets: v[9],
        tx_errs: v[10],
        tx_drop: v[11],
    }))
}

/// Name prefixes of virtual interfaces, used only when /sys cannot be read.
const VIRTUAL_PREFIXES: &[&str] = &[
    "veth", "docker", "br-", "virbr", "cni", "flannel", "cali", "tun", "tap", "vxlan", "kube-",
    "cilium", "weave", "vnet", "dummy", "ifb", "tunl", "sit", "gre", "ip6", "wg", "lxc",
];

/// Is this a NIC reported by default (physical, or a bond slave)?
fn is_physical(sys_root: &Path, nic: &str, sys_readable: bool) -> bool {
    if nic == "lo" || !is_path_component(nic) {
        return false;
    }
    if sys_readable {
        let link = sys_root.join("class/net").join(nic).join("device");
        std::fs::symlink_metadata(link).is_ok()
    } else {
        !VIRTUAL_PREFIXES.iter().any(|p| nic.starts_with(p))
    }
}

/// Default set, then the configured filters. An include pattern equal to the name (no
/// wildcard) also brings back a NIC the default set skips.
fn wanted(s: &Settings, nic: &str, sys_readable: bool) -> bool {
    crate::glob::selected_from_defaults(
        nic,
        || is_physical(&s.sys_root, nic, sys_readable),
        &s.nic_include,
        &s.nic_exclude,
    )
}

pub fn read(r: &mut Reader, s: &Settings) -> Option<NetSample> {
    let path = s.proc_root.join("net/dev");
    let bytes = r.read_cached_or_log(&path)?;
    let mut sample = match parse_net_dev(bytes) {
        Ok(x) => x,
        Err(e) => {
            log::debug!("{}: {e}", path.display());
            return None;
        }
    };
    let sys_readable = std::fs::read_dir(s.sys_root.join("class/net")).is_ok();
    if !sys_readable {
        log::debug!(
            "{}/class/net unreadable: guessing virtual NICs by name",
            s.sys_root.display()
        );
    }
    sample.nics.retain(|n| wanted(s, &n.name, sys_readable));
    dedup_by_name(&mut sample.nics);
    Some(sample)
}

/// Keep the first line of a name listed twice (never seen from a real kernel).
fn dedup_by_name(nics: &mut Vec<NicCounters>) {
    let mut i = 1;
    while i < nics.len() {
        if nics[..i].iter().any(|n| n.name == nics[i].name) {
            nics.remove(i);
        } else {
            i += 1;
        }
    }
}

/// Counter deltas of one NIC; `None` when any counter went down (reset or wrap).
#[derive(Default, Clone, Copy)]
struct NicDelta {
    rx_bytes: u64,
    rx_packets: u64,
    rx_errs: u64,
    rx_drop: u64,
    tx_bytes: u64,
    tx_packets: u64,
    tx_errs: u64,
    tx_drop: u64,
}

impl NicDelta {
    fn between(a: &NicCounters, b: &NicCounters) -> Option<NicDelta> {
        Some(NicDelta {
            rx_bytes: delta(a.rx_bytes, b.rx_bytes)?,
            rx_packets: delta(a.rx_packets, b.rx_packets)?,
            rx_errs: delta(a.rx_errs, b.rx_errs)?,
            rx_drop: delta(a.rx_drop, b.rx_drop)?,
            tx_bytes: delta(a.tx_bytes, b.tx_bytes)?,
            tx_packets: delta(a.tx_packets, b.tx_packets)?,
            tx_errs: delta(a.tx_errs, b.tx_errs)?,
            tx_drop: delta(a.tx_drop, b.tx_drop)?,
        })
    }

    fn add(&mut self, o: &NicDelta) {
        self.rx_bytes = self.rx_bytes.saturating_add(o.rx_bytes);
        self.rx_packets = self.rx_packets.saturating_add(o.rx_packets);
        self.rx_errs = self.rx_errs.saturating_add(o.rx_errs);
        self.rx_drop = self.rx_drop.saturating_add(o.rx_drop);
        self.tx_bytes = self.tx_bytes.saturating_add(o.tx_bytes);
        self.tx_packets = self.tx_packets.saturating_add(o.tx_packets);
        self.tx_errs = self.tx_errs.saturating_add(o.tx_errs);
        self.tx_drop = self.tx_drop.saturating_add(o.tx_drop);
    }
}

/// Per-NIC rates, then host totals over the NICs that have a valid delta this interval
/// (a NIC that reset or appeared is left out rather than spiking the total).
pub fn rates(a: &NetSample, b: &NetSample, dt: f64, out: &mut Vec<Metric>) {
    if !(dt > 0.0 && dt.is_finite()) {
        return;
    }
    let mut total = NicDelta::default();
    let mut any = false;
    for cur in &b.nics {
        let Some(prev) = a.nics.iter().find(|p| p.name == cur.name) else {
            continue;
        };
        let Some(d) = NicDelta::between(prev, cur) else {
            log::debug!("{}: counters went backwards: new baseline", cur.name);
            continue;
        };
        emit(&d, dt, Some(&cur.name), out);
        total.add(&d);
        any = true;
    }
    if any {
        emit(&total, dt, None, out);
    }
}

fn emit(d: &NicDelta, dt: f64, nic: Option<&str>, out: &mut Vec<Metric>) {
    let mut push = |name: &'static str, unit: &'static str, v: Option<f64>| {
        if let Some(v) = v {
            let m = Metric::new(name, unit, v);
            out.push(match nic {
                Some(n) => m.with_dim("nic", n),
                None => m,
            });
        }
    };
    let err_pct = |part: u64, whole: u64| Some(percent(part as f64, whole as f64).unwrap_or(0.0));
    push(
        "net_bitRecv",
        "bit/s",
        per_second(8.0 * d.rx_bytes as f64, dt),
    );
    push(
        "net_bitSent",
        "bit/s",
        per_second(8.0 * d.tx_bytes as f64, dt),
    );
    push(
        "net_packetRecv",
        "Count/s",
        per_second(d.rx_packets as f64, dt),
    );
    push(
        "net_packetSent",
        "Count/s",
        per_second(d.tx_packets as f64, dt),
    );
    push("net_errin", "%", err_pct(d.rx_errs, d.rx_packets));
    push("net_errout", "%", err_pct(d.tx_errs, d.tx_packets));
    push("net_dropin", "%", err_pct(d.rx_drop, d.rx_packets));
    push("net_dropout", "%", err_pct(d.tx_drop, d.tx_packets));
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

    #[test]
    fn names_aliases_and_glued_counters() {
        let text = format!(
            "{HEADER}    lo:    3393      33    0    0    0     0          0         0     3393      33    0    0    0     0       0          0\n\
             eth0:1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
             eth1:123 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
        );
        let s = parse_net_dev(text.as_bytes()).unwrap();
        let names: Vec<&str> = s.nics.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0:1", "eth1"]);
        let e1 = &s.nics[2];
        assert_eq!(
            (e1.rx_bytes, e1.rx_packets, e1.tx_bytes, e1.tx_drop),
            (123, 2, 9, 12)
        );
    }

    #[test]
    fn garbage_lines_are_skipped_or_error() {
        assert!(parse_net_dev(b"").unwrap().nics.is_empty());
        assert!(parse_net_dev(HEADER.as_bytes()).unwrap().nics.is_empty());
        assert!(parse_net_dev(b"eth0: 1 2 3\n").is_err());
        assert!(parse_net_dev(b":1 2 3 4 5 6 7 8 9 10 11 12\n").is_err());
        assert!(parse_net_dev(b"eth0: 1 2 3 4 5 6 7 8 9 10 11 x\n").is_err());
        let s = parse_net_dev(b"eth0: 1 2 3\neth1: 1 2 3 4 5 6 7 8 9 10 11 12\n\xff\xff:").unwrap();
        assert_eq!(s.nics.len(), 1);
        assert!(parse_net_dev(b"\xff\xfe: 1 2 3 4 5 6 7 8 9 10 11 12").is_err());
    }

    fn nic(name: &str, rx: u64, rxp: u64, rxe: u64, tx: u64, txp: u64, txd: u64) -> NicCounters {
        NicCounters {
            name: name.into(),
            rx_bytes: rx,
            rx_packets: rxp,
            rx_errs: rxe,
            tx_bytes: tx,
            tx_packets: txp,
            tx_drop: txd,
            ..Default::default()
        }
    }

    fn get(out: &[Metric], name: &str, nic: Option<&str>) -> Option<f64> {
        out.iter()
            .find(|m| m.name == name && m.dims.first().map(|d| d.value.as_str()) == nic)
            .map(|m| m.value)
    }

    #[test]
    fn rates_directions_and_totals() {
        let a = NetSample {
            nics: vec![
                nic("eth0", 0, 0, 0, 0, 0, 0),
                nic("eth1", 100, 10, 0, 0, 0, 0),
            ],
        };
        let b = NetSample {
            nics: vec![
                nic("eth0", 1000, 100, 5, 500, 50, 1),
                nic("eth1", 1100, 20, 0, 0, 0, 0),
            ],
        };
        let mut out = Vec::new();
        rates(&a, &b, 10.0, &mut out);
        assert_eq!(get(&out, "net_bitRecv", Some("eth0")), Some(800.0)); // 8·1000/10
        assert_eq!(get(&out, "net_bitSent", Some("eth0")), Some(400.0)); // 8·500/10
        assert_eq!(get(&out, "net_errin", Some("eth0")), Some(5.0)); // 100·5/100, no /Δt
        assert_eq!(get(&out, "net_dropout", Some("eth0")), Some(2.0)); // 100·1/50
        assert_eq!(get(&out, "net_errout", Some("eth1")), Some(0.0)); // no packets → 0
        assert_eq!(get(&out, "net_bitRecv", None), Some(1600.0)); // 8·(1000+1000)/10
        assert_eq!(get(&out, "net_packetRecv", None), Some(11.0)); // (100+10)/10
    }

    #[test]
    fn reset_nic_is_left_out_and_no_dt_no_rates() {
        let a = NetSample {
            nics: vec![
                nic("eth0", 5000, 50, 0, 0, 0, 0),
                nic("eth1", 0, 0, 0, 0, 0, 0),
            ],
        };
        let b = NetSample {
            nics: vec![
                nic("eth0", 10, 1, 0, 0, 0, 0),
                nic("eth1", 100, 1, 0, 0, 0, 0),
            ],
        };
        let mut out = Vec::new();
        rates(&a, &b, 1.0, &mut out);
        assert_eq!(get(&out, "net_bitRecv", Some("eth0")), None);
        assert_eq!(get(&out, "net_bitRecv", None), Some(800.0)); // eth1 only: 8·100/1
        out.clear();
        rates(&a, &b, 0.0, &mut out);
        rates(&a, &b, f64::NAN, &mut out);
        assert!(out.is_empty());
    }
}
