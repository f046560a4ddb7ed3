//! Every /proc parser on arbitrary bytes: the first byte picks the parser, the rest is
//! the file content. Parsers must never panic, and whatever they accept must give only
//! finite metrics when fed through gauges/rates.
#![no_main]

use cloudeye_agent::collect::{cpu, diskstats, load, memory, mounts, net, procs, tcp};
use cloudeye_agent::metric::Metric;
use libfuzzer_sys::fuzz_target;

fn check(out: &[Metric]) {
    for m in out {
        assert!(m.value.is_finite(), "{} is not finite", m.name);
        if m.unit == "%" {
            assert!((0.0..=100.0).contains(&m.value), "{} = {} out of range", m.name, m.value);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else { return };
    let mut out = Vec::new();
    match which % 10 {
        0 => {
            if let Ok(s) = cpu::parse_stat(input) {
                cpu::rates(&cpu::CpuSample::default(), &s, &mut out);
                cpu::rates(&s, &s, &mut out);
                load::gauges(&load::LoadSample { load1: 1.0, load5: 1.0, load15: 1.0 }, Some(&s), &mut out);
            }
        }
        1 => {
            if let Ok(s) = load::parse_loadavg(input) {
                let c = cpu::CpuSample { cpus: 3, ..Default::default() };
                load::gauges(&s, Some(&c), &mut out);
            }
        }
        2 => {
            if let Ok(s) = memory::parse_meminfo(input) {
                memory::gauges(&s, &mut out);
            }
        }
        3 => {
            if let Ok(s) = net::parse_net_dev(input) {
                let mut zero = s.clone();
                for n in &mut zero.nics {
                    *n = net::NicCounters { name: n.name.clone(), ..Default::default() };
                }
                net::rates(&zero, &s, 1.0, &mut out);
                net::rates(&s, &s, 0.5, &mut out);
            }
        }
        4 => {
            if let Ok(s) = tcp::parse_tcp(input) {
                let sample = tcp::TcpSample { states: Some(s), snmp: None };
                tcp::gauges(&sample, &mut out);
            }
        }
        5 => {
            if let Ok(s) = tcp::parse_snmp(input) {
                let a = tcp::TcpSample { states: None, snmp: Some(tcp::SnmpTcp::default()) };
                let b = tcp::TcpSample { states: None, snmp: Some(s) };
                tcp::rates(&a, &b, &mut out);
            }
        }
        7 => {
            let _ = mounts::parse_nodev_filesystems(input);
            let _ = mounts::parse_mountinfo(input);
            let _ = mounts::unescape(input);
        }
        8 => {
            let _ = procs::parse_stat(input);
            let _ = procs::parse_statm_resident(input);
            let _ = procs::parse_mem_total(input);
        }
        _ => {
            if let Ok(s) = diskstats::parse_diskstats(input) {
                let mut zero = s.clone();
                for d in &mut zero.disks {
                    *d = diskstats::DiskCounters { name: d.name.clone(), ..Default::default() };
                }
                diskstats::rates(&zero, &s, 1.0, &mut out);
                diskstats::rates(&s, &s, 1e-9, &mut out);
            }
        }
    }
    check(&out);
});
