//! Host collectors (cpu, load, memory, net, tcp, diskstats) on fixture trees.
//!
//! Each tree in tests/fixtures/<host>/ has a first sample in proc/ and a second one in
//! t2/proc/ (sharing sys/). The tests run the real `Collector::sample` on both, pretend
//! they are 10 s apart (5 s for the capture of this machine), and check the metrics
//! against values worked out by hand from the fixture numbers.

mod common;

use cloudeye_agent::collect::{self, reader::Reader, Collector, Sample, Settings};
use cloudeye_agent::metric::Metric;
use std::path::PathBuf;

fn fixture(host: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(host)
}

fn settings(host: &str, second: bool) -> Settings {
    let base = fixture(host);
    Settings {
        proc_root: if second {
            base.join("t2/proc")
        } else {
            base.join("proc")
        },
        sys_root: base.join("sys"),
        ..Default::default()
    }
}

/// Sample both trees of `host` with `dt` seconds between them; gauges of the first
/// sample, rates over the interval.
fn run(
    host: &str,
    dt: f64,
    tweak: impl Fn(&mut Settings),
) -> (Sample, Sample, Vec<Metric>, Vec<Metric>) {
    let (mut s1, mut s2) = (settings(host, false), settings(host, true));
    tweak(&mut s1);
    tweak(&mut s2);
    let a = Collector::new(s1).sample();
    let mut b = Collector::new(s2).sample();
    b.mono_ns = a.mono_ns + (dt * 1e9) as u64;
    let mut gauges = Vec::new();
    collect::gauges(&a, &mut gauges);
    let mut rates = Vec::new();
    collect::rates(&a, &b, &mut rates);
    (a, b, gauges, rates)
}

fn find<'a>(out: &'a [Metric], name: &str, dim: Option<(&str, &str)>) -> Option<&'a Metric> {
    out.iter().find(|m| {
        m.name == name
            && match dim {
                None => m.dims.is_empty(),
                Some((k, v)) => m.dims.len() == 1 && m.dims[0].name == k && m.dims[0].value == v,
            }
    })
}

#[track_caller]
fn assert_value(out: &[Metric], name: &str, dim: Option<(&str, &str)>, expected: f64) {
    let m = find(out, name, dim).unwrap_or_else(|| panic!("{name} {dim:?} missing"));
    assert!(
        (m.value - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{name} {dim:?}: got {}, expected {expected}",
        m.value
    );
}

fn dim_values(out: &[Metric], name: &str, dim: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .iter()
        .filter(|m| m.name == name && m.dims.len() == 1 && m.dims[0].name == dim)
        .map(|m| m.dims[0].value.clone())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------- x86_64-local

#[test]
fn x86_64_local_capture() {
    let (a, _, g, r) = run("x86_64-local", 5.0, |_| {});
    assert_eq!(a.cpu.as_ref().unwrap().cpus, 2);
    // cpu Δ: user 55847−55546=301, system 9562−9550=12, idle 119040−118326=714,
    // iowait 774−768=6, steal 2260−2259=1, the rest 0 → Δtotal = 1034.
    assert_value(&r, "cpu_usage", None, 100.0 * 320.0 / 1034.0); // 1034−714 = 320
    assert_value(&r, "cpu_usage_user", None, 100.0 * 301.0 / 1034.0);
    assert_value(&r, "cpu_usage_system", None, 100.0 * 12.0 / 1034.0);
    assert_value(&r, "cpu_usage_idle", None, 100.0 * 714.0 / 1034.0);
    assert_value(&r, "cpu_usage_iowait", None, 100.0 * 6.0 / 1034.0);
    assert_value(&r, "cpu_usage_other", None, 100.0 * 1.0 / 1034.0);
    // loadavg 2.89 2.78 1.31 over 2 CPUs.
    assert_value(&g, "load_average1", None, 1.445);
    assert_value(&g, "load_average5", None, 1.39);
    assert_value(&g, "load_average15", None, 0.655);
    // meminfo: used = 24683664 − 24199224 = 484440 kB; GB = kB/1048576.
    assert_value(&g, "mem_usedPercent", None, 100.0 * 484440.0 / 24683664.0);
    assert_value(&g, "mem_available", None, 24199224.0 / 1048576.0);
    assert_value(&g, "mem_free", None, 21169868.0 / 1048576.0);
    assert_value(&g, "mem_buffers", None, 21412.0 / 1048576.0);
    assert_value(&g, "mem_cached", None, 3157332.0 / 1048576.0);
    // tcp + tcp6: two TIME_WAIT, one LISTEN.
    assert_value(&g, "net_tcp_total", None, 3.0);
    assert_value(&g, "net_tcp_time_wait", None, 2.0);
    assert_value(&g, "net_tcp_listen", None, 1.0);
    assert_value(&g, "net_tcp_established", None, 0.0);
    // snmp unchanged between the captures: 0 % retransmitted.
    assert_value(&r, "net_tcp_retrans", None, 0.0);
    // Only eth0 has a device link (lo, ifb0, ifb1 are virtual); no traffic in the interval.
    assert_eq!(dim_values(&r, "net_bitRecv", "nic"), ["eth0"]);
    assert_value(&r, "net_bitRecv", Some(("nic", "eth0")), 0.0);
    assert_value(&r, "net_bitSent", None, 0.0);
    // vda only (loop0-7 and zram0 skipped). Δ: reads 50, sectors 752, read ms 110,
    // writes 209, sectors 220976, write ms 2458, io ms 80, weighted ms 2568; Δt = 5 s.
    assert_eq!(dim_values(&r, "disk_ioUtils", "disk"), ["vda"]);
    let vda = Some(("disk", "vda"));
    assert_value(&r, "disk_agt_read_bytes_rate", vda, 512.0 * 752.0 / 5.0); // 77004.8
    assert_value(&r, "disk_agt_write_bytes_rate", vda, 512.0 * 220976.0 / 5.0);
    assert_value(&r, "disk_agt_read_requests_rate", vda, 10.0); // 50/5
    assert_value(&r, "disk_agt_write_requests_rate", vda, 41.8); // 209/5
    assert_value(&r, "disk_readTime", vda, 2.2); // 110/50
    assert_value(&r, "disk_writeTime", vda, 2458.0 / 209.0);
    assert_value(&r, "disk_ioUtils", vda, 1.6); // 100·80/5000
    assert_value(&r, "disk_queue_length", vda, 0.5136); // 2568/5000
    assert_value(&r, "disk_read_bytes_per_operation", vda, 7.52); // 512·752/50/1024
    assert_value(
        &r,
        "disk_write_bytes_per_operation",
        vda,
        512.0 * 220976.0 / 209.0 / 1024.0,
    );
    assert_value(&r, "disk_io_svctm", vda, 80.0 / 259.0);
}

// ---------------------------------------------------------------- aarch64-server

#[test]
fn aarch64_server_cpu_load_memory() {
    let (a, b, g, r) = run("aarch64-server", 10.0, |_| {});
    assert_eq!(a.cpu.as_ref().unwrap().cpus, 64);
    // Δ: user 8000, nice 200, system 3000, idle 28000, iowait 400, irq 100, softirq 300,
    // steal 0 → Δtotal 40000.
    assert_value(&r, "cpu_usage", None, 30.0); // 100·12000/40000
    assert_value(&r, "cpu_usage_user", None, 20.0);
    assert_value(&r, "cpu_usage_nice", None, 0.5);
    assert_value(&r, "cpu_usage_system", None, 7.5);
    assert_value(&r, "cpu_usage_idle", None, 70.0);
    assert_value(&r, "cpu_usage_iowait", None, 1.0);
    assert_value(&r, "cpu_usage_irq", None, 0.25);
    assert_value(&r, "cpu_usage_softirq", None, 0.75);
    assert_value(&r, "cpu_usage_other", None, 0.0);
    // 16/64, 8/64, 32/64.
    assert_value(&g, "load_average1", None, 0.25);
    assert_value(&g, "load_average5", None, 0.125);
    assert_value(&g, "load_average15", None, 0.5);
    // 256 GiB total, 192 GiB available → 25 % used.
    assert_value(&g, "mem_usedPercent", None, 25.0);
    assert_value(&g, "mem_available", None, 192.0);
    assert_value(&g, "mem_free", None, 64.0);
    assert_value(&g, "mem_buffers", None, 1.0);
    assert_value(&g, "mem_cached", None, 120.0);
    // Second sample: 128 GiB available → 50 %.
    let mut g2 = Vec::new();
    collect::gauges(&b, &mut g2);
    assert_value(&g2, "mem_usedPercent", None, 50.0);
    // loadavg 32 16 8 over 64 CPUs.
    assert_value(&g2, "load_average1", None, 0.5);
}

#[test]
fn aarch64_server_network() {
    let (_, _, _, r) = run("aarch64-server", 10.0, |_| {});
    // bond0, docker0 and the veth have no device link: only the bond slaves count.
    assert_eq!(
        dim_values(&r, "net_bitRecv", "nic"),
        ["enp1s0f0", "enp1s0f1"]
    );
    let f0 = Some(("nic", "enp1s0f0"));
    assert_value(&r, "net_bitRecv", f0, 100_000_000.0); // 8·125000000/10
    assert_value(&r, "net_bitSent", f0, 20_000_000.0); // 8·25000000/10
    assert_value(&r, "net_packetRecv", f0, 10_000.0); // 100000/10
    assert_value(&r, "net_packetSent", f0, 5_000.0); // 50000/10
    assert_value(&r, "net_errin", f0, 0.01); // 100·10/100000
    assert_value(&r, "net_dropin", f0, 0.05); // 100·50/100000
    assert_value(&r, "net_errout", f0, 0.0);
    let f1 = Some(("nic", "enp1s0f1"));
    assert_value(&r, "net_bitRecv", f1, 20_000_000.0); // 8·25000000/10
    assert_value(&r, "net_bitSent", f1, 10_000_000.0); // 8·12500000/10
    assert_value(&r, "net_errout", f1, 0.05); // 100·5/10000
    assert_value(&r, "net_dropout", f1, 0.0); // tx_drop stayed 3
                                              // Host totals (no nic dimension), summed over the two slaves, bond0 not double counted.
    assert_value(&r, "net_bitRecv", None, 120_000_000.0); // 8·150000000/10
    assert_value(&r, "net_bitSent", None, 30_000_000.0); // 8·37500000/10
    assert_value(&r, "net_packetRecv", None, 12_000.0); // 120000/10
    assert_value(&r, "net_packetSent", None, 6_000.0); // 60000/10
    assert_value(&r, "net_errin", None, 100.0 * 10.0 / 120_000.0);
    assert_value(&r, "net_dropin", None, 100.0 * 50.0 / 120_000.0);
    assert_value(&r, "net_errout", None, 100.0 * 5.0 / 60_000.0);
    assert_value(&r, "net_dropout", None, 0.0);
}

#[test]
fn aarch64_server_nic_filters() {
    // Exclude a slave; name the bond explicitly to bring it back.
    let (_, _, _, r) = run("aarch64-server", 10.0, |s| {
        s.nic_include = vec!["enp*".into(), "bond0".into()];
        s.nic_exclude = vec!["enp1s0f1".into()];
    });
    assert_eq!(dim_values(&r, "net_bitRecv", "nic"), ["bond0", "enp1s0f0"]);
    // Totals follow the reported set: (125000000 + 150000000)·8/10.
    assert_value(&r, "net_bitRecv", None, 220_000_000.0);
}

#[test]
fn aarch64_server_disks() {
    let (_, _, _, r) = run("aarch64-server", 10.0, |_| {});
    // Partitions nvme0n1p1/p2 and loop0 are skipped; dm-0 and md0 kept.
    assert_eq!(
        dim_values(&r, "disk_ioUtils", "disk"),
        ["dm-0", "md0", "nvme0n1", "nvme1n1"]
    );
    let n0 = Some(("disk", "nvme0n1"));
    // Δ over 10 s: reads 5000, sectors 400000, read ms 1000, writes 2000, sectors 160000,
    // write ms 3000, io ms 4000, weighted ms 25000.
    assert_value(&r, "disk_agt_read_bytes_rate", n0, 20_480_000.0); // 512·400000/10
    assert_value(&r, "disk_agt_write_bytes_rate", n0, 8_192_000.0); // 512·160000/10
    assert_value(&r, "disk_agt_read_requests_rate", n0, 500.0);
    assert_value(&r, "disk_agt_write_requests_rate", n0, 200.0);
    assert_value(&r, "disk_readTime", n0, 0.2); // 1000/5000
    assert_value(&r, "disk_writeTime", n0, 1.5); // 3000/2000
    assert_value(&r, "disk_ioUtils", n0, 40.0); // 100·4000/10000
    assert_value(&r, "disk_queue_length", n0, 2.5); // 25000/10000
    assert_value(&r, "disk_read_bytes_per_operation", n0, 40.0); // 512·400000/5000/1024
    assert_value(&r, "disk_write_bytes_per_operation", n0, 40.0); // 512·160000/2000/1024
    assert_value(&r, "disk_io_svctm", n0, 4000.0 / 7000.0);
    let dm = Some(("disk", "dm-0"));
    // dm-0: reads 1000, sectors 8000, read ms 500, no writes, io ms 10000, weighted 50000.
    assert_value(&r, "disk_agt_read_bytes_rate", dm, 409_600.0); // 512·8000/10
    assert_value(&r, "disk_readTime", dm, 0.5);
    assert_value(&r, "disk_writeTime", dm, 0.0); // no writes
    assert_value(&r, "disk_write_bytes_per_operation", dm, 0.0);
    assert_value(&r, "disk_ioUtils", dm, 100.0); // 100·10000/10000
    assert_value(&r, "disk_queue_length", dm, 5.0);
    assert_value(&r, "disk_read_bytes_per_operation", dm, 4.0); // 512·8000/1000/1024
    assert_value(&r, "disk_io_svctm", dm, 10.0); // 10000/1000
                                                 // nvme1n1 did nothing: everything 0.
    let idle = Some(("disk", "nvme1n1"));
    assert_value(&r, "disk_ioUtils", idle, 0.0);
    assert_value(&r, "disk_readTime", idle, 0.0);
}

#[test]
fn aarch64_server_disk_filters() {
    // Naming a partition brings it in; globs exclude.
    let (_, _, _, r) = run("aarch64-server", 10.0, |s| {
        s.disk_include = vec!["nvme*".into(), "nvme0n1p1".into()];
        s.disk_exclude = vec!["nvme1*".into()];
    });
    assert_eq!(
        dim_values(&r, "disk_ioUtils", "disk"),
        ["nvme0n1", "nvme0n1p1"]
    );
    // nvme0n1p1: Δ reads 10, sectors 80 → 512·80/10 = 4096 B/s; io ms 3 → 100·3/10000.
    assert_value(
        &r,
        "disk_agt_read_bytes_rate",
        Some(("disk", "nvme0n1p1")),
        4096.0,
    );
    assert_value(&r, "disk_ioUtils", Some(("disk", "nvme0n1p1")), 0.03);
}

#[test]
fn aarch64_server_tcp() {
    let (_, b, g, r) = run("aarch64-server", 10.0, |_| {});
    // tcp: 3 listen, 5 established, 2 time_wait, 1 close_wait, 1 syn_sent;
    // tcp6: 2 listen, 3 established, 1 fin_wait2, 1 last_ack → 19 sockets.
    assert_value(&g, "net_tcp_total", None, 19.0);
    assert_value(&g, "net_tcp_listen", None, 5.0);
    assert_value(&g, "net_tcp_established", None, 8.0);
    assert_value(&g, "net_tcp_time_wait", None, 2.0);
    assert_value(&g, "net_tcp_close_wait", None, 1.0);
    assert_value(&g, "net_tcp_sys_sent", None, 1.0);
    assert_value(&g, "net_tcp_fin_wait2", None, 1.0);
    assert_value(&g, "net_tcp_last_ack", None, 1.0);
    assert_value(&g, "net_tcp_sys_recv", None, 0.0);
    assert_value(&g, "net_tcp_closing", None, 0.0);
    // Second sample: 3 listen + 2 established in tcp, tcp6 header only.
    let mut g2 = Vec::new();
    collect::gauges(&b, &mut g2);
    assert_value(&g2, "net_tcp_total", None, 5.0);
    // OutSegs 1000000 → 1200000, RetransSegs 500 → 700: 100·200/200000 = 0.1 %.
    assert_value(&r, "net_tcp_retrans", None, 0.1);
}

// ---------------------------------------------------------------- kernel-3.10

#[test]
fn kernel_3_10_old_formats_without_sys() {
    // No sys/ tree in this fixture: partitions and virtual NICs are guessed by name.
    let (a, _, g, r) = run("kernel-3.10", 10.0, |_| {});
    assert_eq!(a.cpu.as_ref().unwrap().cpus, 4);
    // 8 cpu fields. Δ: user 300, system 100, idle 1500, iowait 50, softirq 50 → 2000.
    assert_value(&r, "cpu_usage", None, 25.0); // 100·500/2000
    assert_value(&r, "cpu_usage_user", None, 15.0);
    assert_value(&r, "cpu_usage_system", None, 5.0);
    assert_value(&r, "cpu_usage_idle", None, 75.0);
    assert_value(&r, "cpu_usage_iowait", None, 2.5);
    assert_value(&r, "cpu_usage_softirq", None, 2.5);
    assert_value(&r, "cpu_usage_other", None, 0.0);
    // 1 2 4 over 4 CPUs.
    assert_value(&g, "load_average1", None, 0.25);
    assert_value(&g, "load_average15", None, 1.0);
    // No MemAvailable: 1000000 + 500000 + 2500000 = 4000000 of 8000000 → 50 % used.
    assert_value(&g, "mem_usedPercent", None, 50.0);
    assert_value(&g, "mem_available", None, 4_000_000.0 / 1_048_576.0);
    // docker0 and the veth are guessed virtual; eth0 is kept.
    assert_eq!(dim_values(&r, "net_bitRecv", "nic"), ["eth0"]);
    assert_value(&r, "net_bitRecv", None, 40_000.0); // 8·50000/10
    assert_value(&r, "net_bitSent", None, 20_000.0); // 8·25000/10
    assert_value(&r, "net_packetRecv", None, 50.0); // 500/10
                                                    // 14-field diskstats; sda1/sda2 are partitions by name, ram0 skipped, sr0 kept.
    assert_eq!(
        dim_values(&r, "disk_ioUtils", "disk"),
        ["dm-0", "sda", "sr0"]
    );
    let sda = Some(("disk", "sda"));
    assert_value(&r, "disk_agt_read_bytes_rate", sda, 409_600.0); // 512·8000/10
    assert_value(&r, "disk_agt_write_bytes_rate", sda, 204_800.0); // 512·4000/10
    assert_value(&r, "disk_readTime", sda, 4.0); // 400/100
    assert_value(&r, "disk_writeTime", sda, 20.0); // 1000/50
    assert_value(&r, "disk_ioUtils", sda, 6.0); // 100·600/10000
    assert_value(&r, "disk_queue_length", sda, 0.14); // 1400/10000
    assert_value(&r, "disk_io_svctm", sda, 4.0); // 600/150
                                                 // tcp6 absent (IPv6 off): tcp alone, 2 listen + 3 established + 1 time_wait.
    assert_value(&g, "net_tcp_total", None, 6.0);
    assert_value(&g, "net_tcp_established", None, 3.0);
    // snmp counters went down between the samples: no retrans value, no spike.
    assert!(find(&r, "net_tcp_retrans", None).is_none());
}

// ---------------------------------------------------------------- hostile

#[test]
fn hostile_inputs_degrade_per_collector() {
    let (a, _, g, r) = run("hostile", 10.0, |_| {});
    // stat: extra cpu fields ignored, "cpufreq"/"cpu1x" are not CPUs → 2 CPUs.
    assert_eq!(a.cpu.as_ref().unwrap().cpus, 2);
    // loadavg is garbage: no load metrics, the rest still reported.
    assert!(a.load.is_none());
    assert!(find(&g, "load_average1", None).is_none());
    // meminfo: MemAvailable unparsable, Cached overflows (→ 0):
    // available = 524288 + 262144 + 0 = 786432 of 1048576 → 25 % used.
    assert_value(&g, "mem_usedPercent", None, 25.0);
    // tcp: one LISTEN, one truncated ESTABLISHED line; garbage and state ZZ ignored.
    assert_value(&g, "net_tcp_total", None, 2.0);
    assert_value(&g, "net_tcp_listen", None, 1.0);
    assert_value(&g, "net_tcp_established", None, 1.0);
    // diskstats: only vda parses; "../../x" is never joined under /sys.
    assert_eq!(
        a.disks
            .as_ref()
            .unwrap()
            .disks
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["vda"]
    );
    // NICs: alias eth0:1 has no sysfs entry, x/../../etc and .. are not path components,
    // the second eth1 line is a duplicate, wlan0 is truncated.
    assert_eq!(
        dim_values(&r, "net_bitRecv", "nic"),
        ["eth0", "eth1", "ünïcödé0"]
    );
    let eth1 = Some(("nic", "eth1"));
    // eth1 glued to its counter: Δrx 500 bytes, 5 packets, 1 error; Δtx 250, 5, 1 drop.
    assert_value(&r, "net_bitRecv", eth1, 400.0); // 8·500/10
    assert_value(&r, "net_errin", eth1, 20.0); // 100·1/5
    assert_value(&r, "net_bitSent", eth1, 200.0); // 8·250/10
    assert_value(&r, "net_dropout", eth1, 20.0); // 100·1/5
                                                 // Totals: eth0 (1000, 10 / 2000, 20) + eth1 (500, 5 / 250, 5) + ünïcödé0 (125, 1 / 0, 0).
    assert_value(&r, "net_bitRecv", None, 1300.0); // 8·1625/10
    assert_value(&r, "net_bitSent", None, 1800.0); // 8·2250/10
    assert_value(&r, "net_packetRecv", None, 1.6); // 16/10
    assert_value(&r, "net_packetSent", None, 2.5); // 25/10
    assert_value(&r, "net_errin", None, 6.25); // 100·1/16
    assert_value(&r, "net_dropout", None, 4.0); // 100·1/25
                                                // Every value that comes out is finite.
    assert!(g.iter().chain(&r).all(|m| m.value.is_finite()));
}

#[test]
fn missing_tree_gives_nothing_and_no_panic() {
    let s = Settings {
        proc_root: PathBuf::from("/nonexistent/proc"),
        sys_root: PathBuf::from("/nonexistent/sys"),
        ..Default::default()
    };
    let a = Collector::new(s).sample();
    assert!(a.cpu.is_none() && a.load.is_none() && a.memory.is_none());
    assert!(a.net.is_none() && a.tcp.is_none() && a.disks.is_none());
}

// ---------------------------------------------------------------- busy-host

/// 200,000 sockets generated into a temp tree: counts are exact and the reader's buffer
/// stays at its fixed streaming window (memory does not grow with the socket count).
#[test]
fn busy_host_tcp_streams_in_bounded_memory() {
    use std::io::Write;
    let dir = common::temp_dir("busy-host");
    let net = dir.join("proc/net");
    std::fs::create_dir_all(&net).unwrap();
    let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
    let mut tcp = std::io::BufWriter::new(std::fs::File::create(net.join("tcp")).unwrap());
    tcp.write_all(header.as_bytes()).unwrap();
    // 110,000 lines cycling through states 01..0B: 10,000 of each of the 11 states.
    for i in 0..110_000u32 {
        let st = i % 11 + 1;
        writeln!(
            tcp,
            "{i:6}: 0A00020F:{:04X} 0A000301:01BB {st:02X} 00000000:00000000 02:000A7B2C 00000000  1000        0 {} 1 0000000000000000 20 4 30 10 -1",
            i % 65536,
            100_000 + i
        )
        .unwrap();
    }
    drop(tcp);
    let mut tcp6 = std::io::BufWriter::new(std::fs::File::create(net.join("tcp6")).unwrap());
    tcp6.write_all(header.as_bytes()).unwrap();
    // 90,000 lines: every third LISTEN (30,000), the others ESTABLISHED (60,000).
    for i in 0..90_000u32 {
        let st = if i % 3 == 0 { "0A" } else { "01" };
        writeln!(
            tcp6,
            "{i:6}: 0000000000000000FFFF00000F02000A:{:04X} 0000000000000000FFFF00000103000A:01BB {st} 00000000:00000000 00:00000000 00000000  1000        0 {} 1 0000000000000000 20 4 30 10 -1",
            i % 65536,
            300_000 + i
        )
        .unwrap();
    }
    drop(tcp6);
    let settings = Settings {
        proc_root: dir.join("proc"),
        sys_root: dir.join("sys"),
        ..Default::default()
    };
    let mut reader = Reader::new();
    let t = collect::tcp::read(&mut reader, &settings).unwrap();
    assert!(reader.buffer_capacity() <= 2 * collect::reader::STREAM_WINDOW);
    let mut g = Vec::new();
    collect::tcp::gauges(&t, &mut g);
    assert_value(&g, "net_tcp_total", None, 200_000.0); // 110000 + 90000
    assert_value(&g, "net_tcp_established", None, 70_000.0); // 10000 + 60000
    assert_value(&g, "net_tcp_listen", None, 40_000.0); // 10000 + 30000
    for name in [
        "net_tcp_sys_sent",
        "net_tcp_time_wait",
        "net_tcp_closing",
        "net_tcp_fin_wait1",
    ] {
        assert_value(&g, name, None, 10_000.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The kept-open files really are re-read: a second sample through the same collector
/// reads the same fixture content again (pread from offset 0, not from EOF).
#[test]
fn reader_cache_rereads_from_the_start() {
    let mut c = Collector::new(settings("aarch64-server", false));
    let first = c.sample();
    let second = c.sample();
    assert_eq!(first.cpu, second.cpu);
    assert_eq!(first.memory, second.memory);
    assert_eq!(first.net, second.net);
    assert_eq!(first.disks, second.disks);
    assert!(second.cpu.is_some() && second.disks.is_some());
}

/// Every prefix of every fixture file (a read cut short at any byte) parses or fails
/// cleanly, never panics, and a parsed prefix never yields a non-finite metric.
#[test]
fn every_truncation_of_every_fixture_is_safe() {
    use collect::{cpu, diskstats, load, memory, net, tcp};
    type Parse = fn(&[u8], &mut Vec<Metric>);
    let files: [(&str, Parse); 7] = [
        ("proc/stat", |b, out| {
            if let Ok(s) = cpu::parse_stat(b) {
                cpu::rates(&cpu::CpuSample::default(), &s, out);
            }
        }),
        ("proc/loadavg", |b, _| {
            let _ = load::parse_loadavg(b);
        }),
        ("proc/meminfo", |b, out| {
            if let Ok(s) = memory::parse_meminfo(b) {
                memory::gauges(&s, out);
            }
        }),
        ("proc/net/dev", |b, _| {
            let _ = net::parse_net_dev(b);
        }),
        ("proc/net/tcp", |b, _| {
            let _ = tcp::parse_tcp(b);
        }),
        ("proc/net/snmp", |b, _| {
            let _ = tcp::parse_snmp(b);
        }),
        ("proc/diskstats", |b, _| {
            let _ = diskstats::parse_diskstats(b);
        }),
    ];
    let mut checked = 0;
    for host in ["x86_64-local", "aarch64-server", "kernel-3.10", "hostile"] {
        for (file, parse) in &files {
            let Ok(bytes) = std::fs::read(fixture(host).join(file)) else {
                continue;
            };
            for cut in 0..=bytes.len() {
                let mut out = Vec::new();
                parse(&bytes[..cut], &mut out);
                assert!(
                    out.iter().all(|m| m.value.is_finite()),
                    "{host}/{file} cut at {cut}"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 25,
        "fixtures missing: only {checked} files checked"
    );
}
