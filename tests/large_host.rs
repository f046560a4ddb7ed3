//! The collectors on a large host: 64 CPUs, 10,000 processes, 100 disks, 200 NICs,
//! 100 mount points and 200,000 TCP sockets, written by tools/gen_large_host.py.
//!
//! First the fixture itself is checked by parsing it here, independently of the agent, so a
//! failure below is the collectors' and not the generator's. Then two samples are taken with
//! the counters moved by one generator step in between; every expected figure follows from
//! the step sizes documented in the generator (arithmetic in the comments).

mod common;

use cloudeye_agent::collect::{self, Collector, Settings};
use cloudeye_agent::metric::Metric;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Removes the fixture (about 250 MB on disk) even when an assertion fails.
struct Fixture(PathBuf);

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn generate(out: &Path, extra: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/gen_large_host.py");
    let status = Command::new("python3")
        .arg(script)
        .arg(out)
        .args(extra)
        .status()
        .expect("run python3 tools/gen_large_host.py");
    assert!(status.success(), "generator failed: {status}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The generator wrote what it says, counted without any agent code.
fn check_fixture(root: &Path) {
    let proc = root.join("proc");
    let mut pids = 0;
    let mut states = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(&proc).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.bytes().all(|b| b.is_ascii_digit()) {
            pids += 1;
            let stat = read(&e.path().join("stat"));
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            *states.entry(after.as_bytes()[0] as char).or_insert(0) += 1;
        }
    }
    assert_eq!(pids, 10_000);
    // 6 of every 10 sleep, 1 each R, D, I; the tenth alternates Z and T: 500 each.
    let want: Vec<(char, i32)> = vec![
        ('D', 1000),
        ('I', 1000),
        ('R', 1000),
        ('S', 6000),
        ('T', 500),
        ('Z', 500),
    ];
    assert_eq!(states.into_iter().collect::<Vec<_>>(), want);
    // Header line + sockets.
    assert_eq!(read(&proc.join("net/tcp")).lines().count(), 1 + 150_000);
    assert_eq!(read(&proc.join("net/tcp6")).lines().count(), 1 + 50_000);
    // 2 header lines + lo + 150 eth + 50 veth.
    assert_eq!(read(&proc.join("net/dev")).lines().count(), 2 + 1 + 200);
    let physical = std::fs::read_dir(root.join("sys/class/net"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("device").exists())
        .count();
    assert_eq!(physical, 150);
    // 100 disks + 60 vd and 30 nvme partitions + 8 loop + ram0 = 199 lines.
    assert_eq!(read(&proc.join("diskstats")).lines().count(), 199);
    assert_eq!(
        std::fs::read_dir(root.join("sys/block")).unwrap().count(),
        109
    );
    // 8 pseudo/network mounts + 100 real ones whose directories exist.
    let mountinfo = read(&proc.join("self/mountinfo"));
    assert_eq!(mountinfo.lines().count(), 108);
    assert_eq!(std::fs::read_dir(root.join("mnt")).unwrap().count(), 100);
    let cpus = read(&proc.join("stat"))
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(cpus, 64);
}

fn find<'a>(metrics: &'a [Metric], name: &str) -> Vec<&'a Metric> {
    metrics.iter().filter(|m| m.name == name).collect()
}

/// The one host-wide value of `name`.
fn value(metrics: &[Metric], name: &str) -> f64 {
    let found: Vec<&Metric> = find(metrics, name)
        .into_iter()
        .filter(|m| m.dims.is_empty())
        .collect();
    assert_eq!(found.len(), 1, "{name}: {} values", found.len());
    found[0].value
}

/// Distinct values of dimension `dim` among metrics called `name`.
fn objects(metrics: &[Metric], name: &str, dim: &str) -> BTreeSet<String> {
    find(metrics, name)
        .iter()
        .flat_map(|m| m.dims.iter().filter(|d| d.name == dim))
        .map(|d| d.value.clone())
        .collect()
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
        "{what}: got {got}, want {want}"
    );
}

#[test]
fn collectors_count_a_large_host_right() {
    let fixture = Fixture(common::temp_dir("large-host"));
    let root = fixture.0.clone();
    generate(&root, &[]);
    check_fixture(&root);

    let settings = Settings {
        proc_root: root.join("proc"),
        sys_root: root.join("sys"),
        processes: vec!["nginx".to_string()],
        ..Settings::default()
    };
    let mut collector = Collector::new(settings);
    let t = std::time::Instant::now();
    let first = collector.sample();
    eprintln!("large host: one sample took {:?}", t.elapsed());
    generate(&root, &["--step", "1", "--counters-only"]);
    let second = collector.sample();
    let mut m = Vec::new();
    collect::gauges(&second, &mut m);
    collect::rates(&first, &second, &mut m);
    let dt = (second.mono_ns - first.mono_ns) as f64 / 1e9;

    // Processes: the state split checked in check_fixture.
    assert_eq!(value(&m, "proc_total_count"), 10_000.0);
    assert_eq!(value(&m, "proc_running_count"), 1000.0);
    assert_eq!(value(&m, "proc_sleeping_count"), 6000.0);
    assert_eq!(value(&m, "proc_blocked_count"), 1000.0);
    assert_eq!(value(&m, "proc_idle_count"), 1000.0);
    assert_eq!(value(&m, "proc_zombie_count"), 500.0);
    assert_eq!(value(&m, "proc_stopped_count"), 500.0);
    // nginx at every index multiple of 271 below 10,000: 0, 271, ..., 271*36 = 9756: 37.
    let nginx = find(&m, "proc_specified_count");
    assert_eq!(nginx.len(), 1);
    assert_eq!(nginx[0].value, 37.0);

    // TCP: tcp holds 100k ESTABLISHED, 20k TIME_WAIT, 10k LISTEN, 10k CLOSE_WAIT, 5k SYN_SENT,
    // 5k FIN_WAIT1; tcp6 40k ESTABLISHED, 5k LISTEN, 5k FIN_WAIT2.
    assert_eq!(value(&m, "net_tcp_total"), 200_000.0);
    assert_eq!(value(&m, "net_tcp_established"), 140_000.0);
    assert_eq!(value(&m, "net_tcp_time_wait"), 20_000.0);
    assert_eq!(value(&m, "net_tcp_listen"), 15_000.0);
    assert_eq!(value(&m, "net_tcp_close_wait"), 10_000.0);
    assert_eq!(value(&m, "net_tcp_sys_sent"), 5_000.0);
    assert_eq!(value(&m, "net_tcp_fin_wait1"), 5_000.0);
    assert_eq!(value(&m, "net_tcp_fin_wait2"), 5_000.0);
    assert_eq!(value(&m, "net_tcp_sys_recv"), 0.0);
    // RetransSegs +10 over OutSegs +1000: 1 %.
    close(value(&m, "net_tcp_retrans"), 1.0, "net_tcp_retrans");

    // CPU: each of 64 CPUs gains 50 user and 50 idle ticks, so idle is half of the total.
    close(value(&m, "cpu_usage"), 50.0, "cpu_usage");
    close(value(&m, "cpu_usage_user"), 50.0, "cpu_usage_user");
    close(value(&m, "cpu_usage_idle"), 50.0, "cpu_usage_idle");
    // loadavg 12.80 6.40 3.20 over 64 CPUs.
    close(value(&m, "load_average1"), 0.2, "load_average1");
    close(value(&m, "load_average5"), 0.1, "load_average5");
    close(value(&m, "load_average15"), 0.05, "load_average15");
    // 256 GiB total, 128 GiB available, 64 GiB free, 1 GiB buffers, 32 GiB cached.
    close(value(&m, "mem_usedPercent"), 50.0, "mem_usedPercent");
    close(value(&m, "mem_available"), 128.0, "mem_available");
    close(value(&m, "mem_free"), 64.0, "mem_free");
    close(value(&m, "mem_buffers"), 1.0, "mem_buffers");
    close(value(&m, "mem_cached"), 32.0, "mem_cached");

    // NICs: only the 150 with a device link count; each moved 1000 rx / 500 tx bytes and
    // 10 rx / 5 tx packets. lo (+100,000) and the 50 veths (+1,000,000 each) must not show.
    close(
        value(&m, "net_bitRecv"),
        8.0 * 150.0 * 1000.0 / dt,
        "net_bitRecv",
    );
    close(
        value(&m, "net_bitSent"),
        8.0 * 150.0 * 500.0 / dt,
        "net_bitSent",
    );
    close(
        value(&m, "net_packetRecv"),
        150.0 * 10.0 / dt,
        "net_packetRecv",
    );
    close(
        value(&m, "net_packetSent"),
        150.0 * 5.0 / dt,
        "net_packetSent",
    );
    let nics = objects(&m, "net_bitRecv", "nic");
    assert!(
        nics.is_empty() || nics.len() == 150,
        "per-NIC metrics for {} NICs",
        nics.len()
    );

    // Disks: 60 vd + 30 nvme + 10 dm; partitions, loop and ram are skipped.
    let disks = objects(&m, "disk_agt_read_bytes_rate", "disk");
    assert_eq!(disks.len(), 100, "{disks:?}");
    assert!(disks.contains("vda") && disks.contains("vdbh") && disks.contains("nvme29n1"));
    assert!(disks.contains("dm-9") && !disks.contains("vda1") && !disks.contains("loop0"));
    for d in find(&m, "disk_agt_read_bytes_rate") {
        // 2048 sectors of 512 bytes per step.
        close(d.value, 512.0 * 2048.0 / dt, "disk_agt_read_bytes_rate");
    }
    for d in find(&m, "disk_readTime") {
        // read ms grows 10 per read: 160 ms over 16 reads.
        close(d.value, 10.0, "disk_readTime");
    }
    for d in find(&m, "disk_read_bytes_per_operation") {
        // 2048 * 512 bytes / 16 reads / 1024 = 64 KB.
        close(d.value, 64.0, "disk_read_bytes_per_operation");
    }
    for d in find(&m, "disk_io_svctm") {
        // 100 ms busy over 16 + 8 operations.
        close(d.value, 100.0 / 24.0, "disk_io_svctm");
    }

    // Mounts: the 100 directories under mnt/, one with a space (\040 in mountinfo);
    // proc, sysfs, devtmpfs, tmpfs, cgroup2, overlay, nfs4 and fuse.sshfs are skipped.
    let mounts = objects(&m, "disk_total", "mount_point");
    assert_eq!(mounts.len(), 100, "{mounts:?}");
    let spaced = root.join("mnt/m 099");
    assert!(mounts.contains(spaced.to_str().unwrap()), "{mounts:?}");
    assert!(!mounts
        .iter()
        .any(|p| p.starts_with("/proc") || p.contains("nfs")));
    // Every tenth mount is read-only.
    let ro = find(&m, "disk_fs_rwstate")
        .iter()
        .filter(|x| x.value == 1.0)
        .count();
    assert_eq!(ro, 10);
}
