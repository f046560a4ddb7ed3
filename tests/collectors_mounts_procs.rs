//! The per-mount usage collector and the process collector, on fixture trees under
//! tests/fixtures/<host>/proc and on trees generated into temporary directories.

mod common;

use cloudeye_agent::collect::mounts::{self, MountEntry, MountUsage, StatvfsFigures};
use cloudeye_agent::collect::procs::{self, HostFacts, PidTicks, ProcSample};
use cloudeye_agent::collect::reader::Reader;
use cloudeye_agent::collect::Settings;
use cloudeye_agent::metric::Metric;
use std::fs;
use std::path::{Path, PathBuf};

fn fixture(host: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(host)
        .join("proc")
}

fn mountinfo(host: &str) -> Vec<MountEntry> {
    mounts::parse_mountinfo(&fs::read(fixture(host).join("self/mountinfo")).unwrap())
}

fn nodev(host: &str) -> Vec<String> {
    mounts::parse_nodev_filesystems(&fs::read(fixture(host).join("filesystems")).unwrap())
}

fn selected_points(host: &str, s: &Settings) -> Vec<String> {
    let entries = mountinfo(host);
    mounts::select(&entries, &nodev(host), s)
        .into_iter()
        .map(|e| e.mount_point.clone())
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The value of metric `name` with dimension value `dim` (or none), if emitted once.
fn value(out: &[Metric], name: &str, dim: Option<&str>) -> Option<f64> {
    let found: Vec<&Metric> = out
        .iter()
        .filter(|m| m.name == name && m.dims.first().map(|d| d.value.as_str()) == dim)
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {dim:?} emitted {} times",
        found.len()
    );
    found.first().map(|m| m.value)
}

fn unit(out: &[Metric], name: &str) -> String {
    out.iter()
        .find(|m| m.name == name)
        .unwrap()
        .unit
        .to_string()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

// ---------------------------------------------------------------- mounts: parsing

#[test]
fn mountinfo_decodes_escapes_and_read_only() {
    let e = mountinfo("x86_64-local");
    // 22 lines in the fixture, all well formed.
    assert_eq!(e.len(), 22);
    let data = e.iter().find(|m| m.major == 253 && m.minor == 17).unwrap();
    assert_eq!(data.mount_point, "/mnt/my data"); // \040
    assert_eq!(data.fs_type, "ext4");
    assert_eq!(data.source, "/dev/vdb1");
    assert_eq!(data.root, "/");
    let tab = e.iter().find(|m| m.minor == 48).unwrap();
    assert_eq!(tab.mount_point, "/mnt/tab\tand\\back"); // \011 and \134
                                                        // ro in the per-mount options (/mnt/ro), ro only in the super-block options
                                                        // (/mnt/sb-ro), rw in both (/).
    let ro = |mp: &str| e.iter().find(|m| m.mount_point == mp).unwrap().read_only;
    assert!(ro("/mnt/ro"));
    assert!(ro("/mnt/sb-ro"));
    assert!(!ro("/"));
    assert!(!ro("/mnt/my data"));
}

#[test]
fn unescape_rules() {
    assert_eq!(mounts::unescape(br"/a\040b\012c"), "/a b\nc");
    // Not three octal digits, or above 255: kept literally.
    assert_eq!(mounts::unescape(br"/x\999"), r"/x\999");
    assert_eq!(mounts::unescape(br"/x\777"), r"/x\777");
    assert_eq!(mounts::unescape(br"/x\04"), r"/x\04");
    assert_eq!(mounts::unescape(br"/end\"), r"/end\");
}

#[test]
fn filesystems_nodev_list() {
    let n = nodev("x86_64-local");
    assert!(n.contains(&"tmpfs".to_string()));
    assert!(n.contains(&"nfs4".to_string()));
    assert!(!n.contains(&"ext4".to_string()));
    assert!(!n.contains(&"xfs".to_string()));
    // hostile: "nodev" alone gives nothing, extra words after the name are ignored.
    let h = nodev("hostile");
    assert_eq!(h, strings(&["sysfs", "tmpfs"]));
}

// ---------------------------------------------------------------- mounts: selection

#[test]
fn x86_64_local_selection() {
    // Kept: / (253:1), /boot/efi, /mnt/my data (253:17), /mnt/ro, /mnt/tab..., /mnt/sb-ro.
    // Dropped: /backup (253:17 root / again: same device mounted twice),
    // /export/share (253:1 root /srv/share, under the reported / of 253:1: bind mount),
    // squashfs snap, nfs4, cifs, fuse.sshfs, overlay, nsfs, tmpfs x2, devtmpfs, devpts,
    // sysfs, proc, securityfs, cgroup2.
    assert_eq!(
        selected_points("x86_64-local", &Settings::default()),
        strings(&[
            "/",
            "/boot/efi",
            "/mnt/my data",
            "/mnt/ro",
            "/mnt/tab\tand\\back",
            "/mnt/sb-ro"
        ])
    );
}

#[test]
fn kernel_3_10_selection() {
    // xfs on LVM and sda1; cgroup v1 under a read-only tmpfs, rpc_pipefs and nfs (v3) dropped.
    assert_eq!(
        selected_points("kernel-3.10", &Settings::default()),
        strings(&["/", "/boot", "/home"])
    );
}

#[test]
fn aarch64_server_selection() {
    // btrfs subvolumes /@ and /@home share 0:33 but are siblings: both kept. zfs is
    // `nodev` in /proc/filesystems but holds data: kept. /srv/a is 259:4 root /exports/a,
    // under /data's root /: a bind mount, dropped. lxcfs, gluster (fuse.*), ceph: network
    // or FUSE, dropped. iso9660 (cdrom, always full): dropped.
    assert_eq!(
        selected_points("aarch64-server", &Settings::default()),
        strings(&[
            "/",
            "/home",
            "/boot/efi",
            "/data",
            "/data2",
            "/tank",
            "/tank/vm"
        ])
    );
}

#[test]
fn busy_host_kubernetes_mounts() {
    // 208 lines: 4 real file systems, then per pod a projected tmpfs, an overlay rootfs,
    // a subPath bind of /var/lib/kubelet (8:17), a shm tmpfs and an nsfs; then a bind of
    // the local PV (8:33 root /, same as /mnt/disks/ssd0) and an NFS (EFS) mount.
    assert_eq!(mountinfo("busy-host").len(), 208);
    assert_eq!(
        selected_points("busy-host", &Settings::default()),
        strings(&[
            "/",
            "/var/lib/kubelet",
            "/mnt/disks/ssd0",
            "/var/lib/containerd"
        ])
    );
}

#[test]
fn over_mount_reports_the_visible_one() {
    // Two file systems on /data: the later one hides the first; statvfs sees the later.
    let text = b"1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                 2 1 8:2 / /data rw - ext4 /dev/sda2 rw\n\
                 3 1 8:3 / /data ro - xfs /dev/sda3 rw\n";
    let e = mounts::parse_mountinfo(text);
    let sel = mounts::select(&e, &[], &Settings::default());
    assert_eq!(sel.len(), 2);
    assert_eq!(sel[1].mount_point, "/data");
    assert_eq!(sel[1].fs_type, "xfs");
    assert!(sel[1].read_only);
}

#[test]
fn filters() {
    let with = |inc: &[&str], exc: &[&str], fs: &[&str]| Settings {
        mount_include: strings(inc),
        mount_exclude: strings(exc),
        fs_type_exclude: strings(fs),
        ..Settings::default()
    };
    let h = "x86_64-local";
    // `*` crosses `/`, so /mnt/* drops every /mnt mount. /backup (vdb1 again) is then the
    // first reported mount of vdb1, so it stands in for the excluded /mnt/my data.
    assert_eq!(
        selected_points(h, &with(&[], &["/mnt/*"], &[])),
        strings(&["/", "/boot/efi", "/backup"])
    );
    assert_eq!(
        selected_points(h, &with(&["/", "/mnt/ro"], &[], &[])),
        strings(&["/", "/mnt/ro"])
    );
    // fs_type_exclude takes globs.
    assert_eq!(
        selected_points(h, &with(&[], &[], &["vfat", "x*"])),
        strings(&["/", "/mnt/my data", "/mnt/ro"])
    );
    // An explicit include brings back a pseudo file system (tmpfs /dev/shm) ...
    assert_eq!(
        selected_points(h, &with(&["/dev/shm"], &[], &[])),
        strings(&["/dev/shm"])
    );
    // Only an exact path does that: `*` keeps every real mount and adds only /dev/shm.
    assert_eq!(
        selected_points(h, &with(&["*", "/dev/shm"], &[], &[])),
        strings(&[
            "/",
            "/dev/shm",
            "/boot/efi",
            "/mnt/my data",
            "/mnt/ro",
            "/mnt/tab\tand\\back",
            "/mnt/sb-ro"
        ])
    );
    // ... but never a network one.
    assert!(selected_points(
        h,
        &with(&["/mnt/nfs", "/mnt/cifs", "/home/u/remote"], &[], &[])
    )
    .is_empty());
    // Exclude wins over include.
    assert_eq!(
        selected_points(h, &with(&["/", "/boot/efi"], &["/boot/*"], &[])),
        strings(&["/"])
    );
}

#[test]
fn statvfs_called_once_per_selected_mount_and_never_on_network() {
    let entries = mountinfo("x86_64-local");
    let mut calls = Vec::new();
    let sample = mounts::sample_mounts(
        &entries,
        &nodev("x86_64-local"),
        &Settings::default(),
        |mp| {
            calls.push(mp.to_string());
            (mp != "/mnt/ro").then_some(StatvfsFigures {
                frsize: 4096,
                blocks: 100,
                bfree: 50,
                bavail: 40,
                files: 10,
                ffree: 5,
            })
        },
    );
    assert_eq!(
        calls,
        strings(&[
            "/",
            "/boot/efi",
            "/mnt/my data",
            "/mnt/ro",
            "/mnt/tab\tand\\back",
            "/mnt/sb-ro"
        ])
    );
    // statvfs failed on /mnt/ro: only its rw state is reported (ro = 1).
    let mut out = Vec::new();
    mounts::gauges(&sample, &mut out);
    assert_eq!(value(&out, "disk_fs_rwstate", Some("/mnt/ro")), Some(1.0));
    assert_eq!(value(&out, "disk_total", Some("/mnt/ro")), None);
    assert_eq!(value(&out, "disk_fs_rwstate", Some("/")), Some(0.0));
    // 5 mounts with figures x 8 metrics + 1 rwstate = 41.
    assert_eq!(out.len(), 41);
}

// ---------------------------------------------------------------- mounts: usage math

#[test]
fn usage_math_uses_frsize_and_df_percent() {
    // frsize 4096; 2,621,440 blocks = 10 GiB; bfree 1,310,720 = 5 GiB; bavail 1,179,648 =
    // 4.5 GiB (root reserve 0.5 GiB). used = (2621440 - 1310720) * 4096 = 5 GiB.
    // used% = 100 * 5 / (5 + 4.5) = 52.631578947368...
    // inodes: 655,360 total, 600,000 free: used 55,360, 100 * 55360 / 655360 = 8.447265625.
    let m = MountUsage {
        mount_point: "/data".into(),
        fs_type: "ext4".into(),
        read_only: false,
        figures: Some(StatvfsFigures {
            frsize: 4096,
            blocks: 2_621_440,
            bfree: 1_310_720,
            bavail: 1_179_648,
            files: 655_360,
            ffree: 600_000,
        }),
    };
    let mut out = Vec::new();
    mounts::usage_metrics(&m, &mut out);
    let v = |n| value(&out, n, Some("/data")).unwrap();
    assert!(close(v("disk_total"), 10.0));
    assert!(close(v("disk_free"), 4.5));
    assert!(close(v("disk_used"), 5.0));
    assert!(close(v("disk_usedPercent"), 100.0 * 5.0 / 9.5));
    assert!(close(v("disk_inodesTotal"), 655_360.0));
    assert!(close(v("disk_inodesUsed"), 55_360.0));
    assert!(close(v("disk_inodesUsedPercent"), 8.447265625));
    assert_eq!(v("disk_fs_rwstate"), 0.0);
    assert_eq!(unit(&out, "disk_total"), "GB");
    assert_eq!(unit(&out, "disk_usedPercent"), "%");
    assert_eq!(unit(&out, "disk_inodesTotal"), "Count");
    assert_eq!(unit(&out, "disk_fs_rwstate"), "");
    assert!(out
        .iter()
        .all(|m| m.dims.len() == 1 && m.dims[0].name == "mount_point"));
}

#[test]
fn usage_math_empty_file_system() {
    // No blocks and no inodes (e.g. a fresh btrfs quirk): 0 %, never NaN.
    let m = MountUsage {
        mount_point: "/e".into(),
        fs_type: "btrfs".into(),
        read_only: true,
        figures: Some(StatvfsFigures::default()),
    };
    let mut out = Vec::new();
    mounts::usage_metrics(&m, &mut out);
    assert_eq!(value(&out, "disk_usedPercent", Some("/e")), Some(0.0));
    assert_eq!(value(&out, "disk_inodesUsedPercent", Some("/e")), Some(0.0));
    assert_eq!(value(&out, "disk_fs_rwstate", Some("/e")), Some(1.0));
    assert!(out.iter().all(|m| m.value.is_finite()));
}

// ---------------------------------------------------------------- mounts: read() glue

/// A proc tree whose mountinfo points at directories of the real file system under
/// `<root>/<pid>/root`, so the real statvfs runs.
fn write_mount_tree(root: &Path, pid: &str, mountinfo: &str) {
    fs::create_dir_all(root.join(pid).join("root/data space")).unwrap();
    fs::write(root.join(pid).join("mountinfo"), mountinfo).unwrap();
    fs::write(root.join("filesystems"), "nodev\tnfs4\n\text4\n").unwrap();
}

#[test]
fn read_prefers_pid_1_and_queries_under_its_root() {
    let root = common::temp_dir("mounts-read");
    write_mount_tree(
        &root,
        "1",
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
         2 1 8:2 / /data\\040space ro - ext4 /dev/sda2 rw\n\
         3 1 0:50 / /nfs rw - nfs4 srv:/x rw\n\
         4 1 8:3 / /missing rw - ext4 /dev/sda3 rw\n",
    );
    // self/mountinfo must be ignored when 1/mountinfo exists.
    write_mount_tree(&root, "self", "1 0 8:9 / /from-self rw - ext4 /dev/x rw\n");
    let s = Settings {
        proc_root: root.clone(),
        ..Settings::default()
    };
    let sample = mounts::read(&mut Reader::new(), &s).unwrap();
    let points: Vec<&str> = sample
        .mounts
        .iter()
        .map(|m| m.mount_point.as_str())
        .collect();
    assert_eq!(points, ["/", "/data space", "/missing"]);
    // Cross-check against statvfs of the directory the mount point maps to.
    let v = nix::sys::statvfs::statvfs(&root.join("1/root/data space")).unwrap();
    let f = sample.mounts[1].figures.unwrap();
    assert_eq!(f.frsize, v.fragment_size() as u64);
    assert_eq!(f.blocks, v.blocks() as u64);
    assert!(sample.mounts[1].read_only);
    assert!(sample.mounts[0].figures.is_some());
    // /missing has no directory under 1/root: statvfs fails, rw state only.
    assert!(sample.mounts[2].figures.is_none());
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn read_falls_back_to_self() {
    let root = common::temp_dir("mounts-self");
    write_mount_tree(&root, "self", "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n");
    let s = Settings {
        proc_root: root.clone(),
        ..Settings::default()
    };
    let sample = mounts::read(&mut Reader::new(), &s).unwrap();
    assert_eq!(sample.mounts.len(), 1);
    assert!(sample.mounts[0].figures.is_some());
    // No mount table at all: no sample.
    let empty = common::temp_dir("mounts-none");
    let s = Settings {
        proc_root: empty.clone(),
        ..Settings::default()
    };
    assert_eq!(mounts::read(&mut Reader::new(), &s), None);
    let _ = fs::remove_dir_all(&root);
    let _ = fs::remove_dir_all(&empty);
}

#[test]
fn mount_sample_serde_round_trip() {
    let entries = mountinfo("aarch64-server");
    let sample = mounts::sample_mounts(&entries, &[], &Settings::default(), |_| {
        Some(StatvfsFigures {
            frsize: 512,
            blocks: 7,
            ..StatvfsFigures::default()
        })
    });
    let json = serde_json::to_string(&sample).unwrap();
    assert_eq!(
        serde_json::from_str::<mounts::MountSample>(&json).unwrap(),
        sample
    );
}

// ---------------------------------------------------------------- mounts: hostile input

#[test]
fn hostile_mountinfo() {
    let e = mountinfo("hostile");
    let points: Vec<&str> = e.iter().map(|m| m.mount_point.as_str()).collect();
    // Dropped by the parser: blank, garbage, bad major:minor, no `-`, nothing after `-`,
    // major above u32, truncated last line.
    let long = format!("/{}", "x".repeat(300));
    assert_eq!(
        points,
        [
            "/",
            "/trailing\\",
            "/bad\\999escape",
            "/bin\u{FFFD}\u{FFFD}ary",
            long.as_str(),
            "/no-source"
        ]
    );
    // The 301-byte mount point cannot be a Cloud Eye dimension (max 256).
    let sel = mounts::select(&e, &nodev("hostile"), &Settings::default());
    assert_eq!(sel.len(), 5);
    assert!(sel.iter().all(|m| m.mount_point.len() <= 256));
}

/// Deterministic pseudo-random bytes, biased towards the characters parsers care about.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b" \n\t()-:/\\0123456789abcRSDZ\x00\xff";
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHABET[((x >> 33) as usize) % ALPHABET.len()]
        })
        .collect()
}

fn every_fixture_file(name: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut stack = vec![base];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) && p.is_file() {
                out.push(fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn parsers_survive_truncation_and_garbage() {
    for text in every_fixture_file("mountinfo") {
        for cut in 0..=text.len().min(4000) {
            let _ = mounts::parse_mountinfo(&text[..cut]);
        }
    }
    for text in every_fixture_file("filesystems") {
        for cut in 0..=text.len() {
            let _ = mounts::parse_nodev_filesystems(&text[..cut]);
        }
    }
    for text in every_fixture_file("stat") {
        for cut in 0..=text.len() {
            let _ = procs::parse_stat(&text[..cut]);
        }
    }
    for text in every_fixture_file("statm") {
        for cut in 0..=text.len() {
            let _ = procs::parse_statm_resident(&text[..cut]);
        }
    }
    let meminfo = b"MemTotal:       16318480 kB\nMemFree: 1 kB\n";
    for cut in 0..=meminfo.len() {
        let _ = procs::parse_mem_total(&meminfo[..cut]);
    }
    for seed in 0..2000 {
        let g = garbage(seed, (seed as usize * 7) % 300);
        let _ = mounts::parse_mountinfo(&g);
        let _ = mounts::parse_nodev_filesystems(&g);
        let _ = mounts::unescape(&g);
        let _ = procs::parse_stat(&g);
        let _ = procs::parse_statm_resident(&g);
        let _ = procs::parse_mem_total(&g);
        let mut c = g.clone();
        procs::cmdline_to_text(&mut c);
        let p = procs::Pattern::new("a*b");
        let _ = p.matches_cmdline(&c);
        let _ = procs::Pattern::new("ab 1").matches_cmdline(&c);
    }
}

// ---------------------------------------------------------------- procs: parsing

#[test]
fn stat_comm_with_spaces_and_parens() {
    let s = procs::parse_stat(
        b"500 (a) b) c) R 1 500 500 0 -1 4194560 100 0 2 0 7 3 0 0 20 0 1 0 9000 1 2\n",
    )
    .unwrap();
    assert_eq!(s.comm, b"a) b) c");
    assert_eq!(s.state, b'R');
    assert_eq!(s.flags, 4_194_560);
    // utime 7 + stime 3 = 10 ticks; starttime 9000.
    assert_eq!(s.times, Some((10, 9000)));
    // Truncated after the state: the state is still known, the times are not.
    let s = procs::parse_stat(b"7 (x y) D 1 2").unwrap();
    assert_eq!((s.comm, s.state, s.times), (&b"x y"[..], b'D', None));
    assert_eq!(procs::parse_stat(b"7 (x y)"), None);
    assert_eq!(procs::parse_stat(b"7 )x( S"), None);
}

#[test]
fn statm_and_meminfo() {
    assert_eq!(
        procs::parse_statm_resident(b"3000 400 300 200 0 500 0\n"),
        Some(400)
    );
    assert_eq!(procs::parse_statm_resident(b"3000"), None);
    // 16,318,480 kB * 1024 = 16,710,123,520 bytes.
    assert_eq!(
        procs::parse_mem_total(b"MemTotal:       16318480 kB\nMemFree: 1 kB\n"),
        Some(16_710_123_520)
    );
    assert_eq!(procs::parse_mem_total(b"MemFree: 1 kB\n"), None);
    assert_eq!(procs::parse_mem_total(b"MemTotal:"), None);
}

#[test]
fn pattern_rules() {
    let p = procs::Pattern::new;
    let text = |raw: &[u8]| {
        let mut v = raw.to_vec();
        procs::cmdline_to_text(&mut v);
        v
    };
    // Plain: comm equal, or a word of the cmdline (after start, ' ' or '/'; before end or ' ').
    assert!(p("nginx").matches_comm(b"nginx"));
    assert!(!p("nginx").matches_comm(b"nginx2"));
    assert!(p("kafka.Kafka").matches_cmdline(&text(b"/usr/bin/java\0-cp\0x\0kafka.Kafka\0cfg\0")));
    assert!(p("my-long-service").matches_cmdline(&text(b"/opt/bin/my-long-service\0--x\0")));
    assert!(!p("nginx").matches_cmdline(&text(b"vim\0/etc/nginx/nginx.conf\0")));
    assert!(!p("java").matches_cmdline(&text(b"/usr/bin/javac\0")));
    assert!(p("python3 app.py").matches_cmdline(&text(b"/usr/bin/python3\0app.py\0--port\0")));
    // Glob: the whole comm or the whole cmdline.
    assert!(p("ngin?").matches_comm(b"nginx"));
    assert!(p("*kafka*").matches_cmdline(&text(b"/usr/bin/java\0kafka.Kafka\0")));
    assert!(!p("kafka*").matches_cmdline(&text(b"/usr/bin/java\0kafka.Kafka\0")));
    assert!(!p("*").matches_cmdline(b""));
}

// ---------------------------------------------------------------- procs: scanning

fn facts() -> HostFacts {
    HostFacts {
        clk_tck: 100,
        page_size: 4096,
        mem_total_bytes: Some(8 << 30),
    }
}

fn scan(root: &Path, patterns: &[&str]) -> ProcSample {
    procs::scan(&mut Reader::new(), root, &strings(patterns), facts()).unwrap()
}

fn pattern<'a>(s: &'a ProcSample, p: &str) -> &'a procs::PatternSample {
    s.patterns.iter().find(|x| x.pattern == p).unwrap()
}

#[test]
fn x86_64_local_state_counts() {
    // pids 1 S, 2 S, 12 I, 100 S, 101 R, 200 S, 300 S, 400 D, 401 Z, 402 T, 403 t,
    // 500 R ("a) b) c"), 501 S ("x y"); `self` is not a pid.
    let s = scan(&fixture("x86_64-local"), &[]);
    assert_eq!(s.total, 13);
    assert_eq!(s.running, 2);
    assert_eq!(s.sleeping, 6);
    assert_eq!(s.blocked, 1);
    assert_eq!(s.zombie, 1);
    assert_eq!(s.idle, 1);
    assert_eq!(s.stopped, 2);
    let mut out = Vec::new();
    procs::gauges(&s, &mut out);
    assert_eq!(value(&out, "proc_total_count", None), Some(13.0));
    assert_eq!(value(&out, "proc_stopped_count", None), Some(2.0));
    assert_eq!(unit(&out, "proc_running_count"), "Count");
    assert_eq!(out.len(), 7);
}

#[test]
fn x86_64_local_patterns() {
    let s = scan(
        &fixture("x86_64-local"),
        &[
            "nginx",
            "kafka.Kafka",
            "my-long-service-name",
            "*java*",
            "a) b) c",
            "x y",
            "nomatch",
        ],
    );
    // nginx: comm of 100 and 101. vim editing /etc/nginx/nginx.conf is not a match.
    // RSS (400 + 600) pages * 4096 = 4,096,000 bytes; fds 4 + 2.
    let n = pattern(&s, "nginx");
    assert_eq!((n.count, n.rss_bytes, n.fds), (2, 4_096_000, Some(6)));
    // utime+stime: 100 -> 10+5 = 15, 101 -> 900+100 = 1000.
    assert_eq!(
        n.pids,
        [
            PidTicks {
                pid: 100,
                start: 5000,
                ticks: 15
            },
            PidTicks {
                pid: 101,
                start: 5010,
                ticks: 1000
            }
        ]
    );
    // kafka.Kafka: a word in java's cmdline; 250,000 pages = 1,024,000,000 bytes, 5 fds.
    let k = pattern(&s, "kafka.Kafka");
    assert_eq!((k.count, k.rss_bytes, k.fds), (1, 1_024_000_000, Some(5)));
    assert_eq!(pattern(&s, "my-long-service-name").count, 1);
    assert_eq!(pattern(&s, "*java*").count, 1);
    assert_eq!(pattern(&s, "a) b) c").count, 1);
    assert_eq!(pattern(&s, "x y").count, 1); // comm and cmdline both match: counted once
    let none = pattern(&s, "nomatch");
    assert_eq!((none.count, none.rss_bytes, none.fds), (0, 0, Some(0)));

    let mut out = Vec::new();
    procs::gauges(&s, &mut out);
    assert_eq!(
        value(&out, "proc_specified_count", Some("nginx")),
        Some(2.0)
    );
    // proc_mem = 100 * 4,096,000 / 8 GiB = 100 * 1000 / 2,097,152 = 0.0476837158203125.
    assert!(close(
        value(&out, "proc_mem", Some("nginx")).unwrap(),
        0.0476837158203125
    ));
    // 100 * 250,000 / 2,097,152 = 11.920928955078125.
    assert!(close(
        value(&out, "proc_mem", Some("kafka.Kafka")).unwrap(),
        11.920928955078125
    ));
    assert_eq!(value(&out, "proc_file", Some("nginx")), Some(6.0));
    assert_eq!(
        value(&out, "proc_specified_count", Some("nomatch")),
        Some(0.0)
    );
    assert_eq!(value(&out, "proc_file", Some("nomatch")), Some(0.0));
    assert_eq!(unit(&out, "proc_mem"), "%");
    assert_eq!(unit(&out, "proc_file"), "Count");
    let with_proc_dim = out.iter().filter(|m| !m.dims.is_empty());
    assert!(with_proc_dim
        .clone()
        .all(|m| m.dims.len() == 1 && m.dims[0].name == "proc"));
    // 7 patterns x (count, mem, file) + 7 state counts.
    assert_eq!(out.len(), 7 * 3 + 7);
}

#[test]
fn repeated_and_empty_patterns_are_dropped() {
    let s = scan(&fixture("x86_64-local"), &["nginx", "", "nginx", "sleep"]);
    let names: Vec<&str> = s.patterns.iter().map(|p| p.pattern.as_str()).collect();
    assert_eq!(names, ["nginx", "sleep"]);
}

#[test]
fn kernel_3_10_short_stat_lines() {
    // 44-field stat lines; no I state on 3.10 (kernel threads sleep in S).
    let s = scan(&fixture("kernel-3.10"), &["mysqld"]);
    assert_eq!((s.total, s.sleeping, s.running, s.idle), (5, 4, 1, 0));
    let m = pattern(&s, "mysqld");
    // utime 300 + stime 100 = 400 ticks, starttime 4000; 100,000 pages * 4096.
    assert_eq!(
        m.pids,
        [PidTicks {
            pid: 700,
            start: 4000,
            ticks: 400
        }]
    );
    assert_eq!(m.rss_bytes, 409_600_000);
}

#[test]
fn aarch64_server_postgres() {
    // Three postgres pids by comm; RSS 8000 + 2000 + 3000 = 13,000 pages; fds 3 + 2 + 4.
    let s = scan(&fixture("aarch64-server"), &["postgres"]);
    let p = pattern(&s, "postgres");
    assert_eq!((p.count, p.rss_bytes, p.fds), (3, 13_000 * 4096, Some(9)));
}

#[test]
fn hostile_proc_tree() {
    // 11 numeric dirs with a stat file (10..=20); `123abc` and `99999999999` are not pids;
    // 21 has no stat. Parsed states: 15 R, 16 S, 18 R, 20 Z; the rest are garbage.
    let s = scan(&fixture("hostile"), &["x"]);
    assert_eq!((s.total, s.running, s.sleeping, s.zombie), (11, 2, 1, 1));
    // comm "x": 15 (no times) and 16 (utime overflows u64): counted, no CPU baseline,
    // statm garbage (0 bytes), no fd dir (no proc_file).
    let x = pattern(&s, "x");
    assert_eq!((x.count, x.rss_bytes, x.fds), (2, 0, None));
    assert!(x.pids.is_empty());
    let mut out = Vec::new();
    procs::gauges(&s, &mut out);
    assert_eq!(value(&out, "proc_file", Some("x")), None);
    assert_eq!(value(&out, "proc_specified_count", Some("x")), Some(2.0));
}

// ---------------------------------------------------------------- procs: generated trees

/// Write `root/<pid>/{stat,statm,cmdline}` and, unless `fds` is None, an fd dir with that
/// many entries (None: `fd` is a plain file, which cannot be listed even by root).
fn write_pid(
    root: &Path,
    pid: u32,
    comm: &str,
    state: char,
    ticks: (u64, u64),
    start: u64,
    fds: Option<usize>,
) {
    let dir = root.join(pid.to_string());
    fs::create_dir_all(&dir).unwrap();
    let stat = format!(
        "{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 10 0 0 0 {} {} 0 0 20 0 1 0 {start} 1000 50 0\n",
        ticks.0, ticks.1
    );
    fs::write(dir.join("stat"), stat).unwrap();
    fs::write(dir.join("statm"), "1000 100 50 1 0 10 0\n").unwrap();
    fs::write(dir.join("cmdline"), format!("/usr/bin/{comm}\0--flag\0")).unwrap();
    let fd = dir.join("fd");
    let _ = fs::remove_dir_all(&fd);
    let _ = fs::remove_file(&fd);
    match fds {
        Some(n) => {
            fs::create_dir_all(&fd).unwrap();
            for i in 0..n {
                std::os::unix::fs::symlink("/dev/null", fd.join(i.to_string())).unwrap();
            }
        }
        None => fs::write(&fd, "").unwrap(),
    }
}

fn cpu(a: &ProcSample, b: &ProcSample, dt: f64, p: &str) -> Option<f64> {
    let mut out = Vec::new();
    procs::rates(a, b, dt, &mut out);
    assert!(out.iter().all(|m| m.name == "proc_cpu" && m.unit == "%"));
    value(&out, "proc_cpu", Some(p))
}

#[test]
fn cpu_over_interval_with_appearing_exiting_and_reused_pids() {
    let root = common::temp_dir("procs-cpu");
    // Sample A: worker 10 (100+0 ticks), 11 (50), 12 (10, start 700).
    write_pid(&root, 10, "worker", 'R', (60, 40), 500, Some(1));
    write_pid(&root, 11, "worker", 'S', (50, 0), 600, Some(1));
    write_pid(&root, 12, "worker", 'S', (10, 0), 700, Some(1));
    let a = scan(&root, &["worker"]);
    // Sample B, 10 s later: 10 used 200 more ticks; 11 exited; 12 is a new process that
    // reused the pid (start 900): baseline only; 13 is new: baseline only.
    write_pid(&root, 10, "worker", 'R', (200, 100), 500, Some(1));
    fs::remove_dir_all(root.join("11")).unwrap();
    write_pid(&root, 12, "worker", 'S', (5, 0), 900, Some(1));
    write_pid(&root, 13, "worker", 'R', (1000, 0), 950, Some(1));
    let b = scan(&root, &["worker"]);
    assert_eq!(pattern(&b, "worker").count, 3);
    // 200 ticks / 100 Hz = 2 s of CPU in 10 s = 20 % of one CPU.
    assert!(close(cpu(&a, &b, 10.0, "worker").unwrap(), 20.0));
    // The sample survives the JSON round trip `once` uses.
    let a2: ProcSample = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(a2, a);
    assert!(close(cpu(&a2, &b, 10.0, "worker").unwrap(), 20.0));
    // Sample C, 5 s later: 12 and 13 now have baselines. 10: +50, 12: +45, 13: +5 ticks =
    // 100 ticks = 1 s in 5 s = 20 %.
    write_pid(&root, 10, "worker", 'R', (250, 100), 500, Some(1));
    write_pid(&root, 12, "worker", 'S', (50, 0), 900, Some(1));
    write_pid(&root, 13, "worker", 'R', (1005, 0), 950, Some(1));
    let c = scan(&root, &["worker"]);
    assert!(close(cpu(&b, &c, 5.0, "worker").unwrap(), 20.0));
    // Multi-threaded: 400 ticks in 1 s = 400 % (of one CPU, not clamped).
    write_pid(&root, 10, "worker", 'R', (650, 100), 500, Some(1));
    let d = scan(&root, &["worker"]);
    assert!(close(cpu(&c, &d, 1.0, "worker").unwrap(), 400.0));
    // No interval, a changed CLK_TCK, or a pattern absent before: nothing.
    assert_eq!(cpu(&a, &b, 0.0, "worker"), None);
    let mut other_hz = a.clone();
    other_hz.clk_tck = 250;
    assert_eq!(cpu(&other_hz, &b, 10.0, "worker"), None);
    let fresh = scan(&root, &["worker", "newpattern"]);
    assert_eq!(cpu(&a, &fresh, 10.0, "newpattern"), None);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn ticks_going_backwards_are_ignored() {
    let prev = ProcSample {
        clk_tck: 100,
        patterns: vec![procs::PatternSample {
            pattern: "p".into(),
            count: 2,
            pids: vec![
                PidTicks {
                    pid: 1,
                    start: 5,
                    ticks: 500,
                },
                PidTicks {
                    pid: 2,
                    start: 5,
                    ticks: 100,
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut cur = prev.clone();
    // pid 1 went backwards (ignored), pid 2 +50 ticks: 0.5 s over 2 s = 25 %.
    cur.patterns[0].pids = vec![
        PidTicks {
            pid: 1,
            start: 5,
            ticks: 400,
        },
        PidTicks {
            pid: 2,
            start: 5,
            ticks: 150,
        },
    ];
    assert!(close(cpu(&prev, &cur, 2.0, "p").unwrap(), 25.0));
}

#[test]
fn unreadable_fd_dir_skips_only_that_pid() {
    let root = common::temp_dir("procs-fd");
    write_pid(&root, 20, "svc", 'S', (0, 0), 1, None); // fd cannot be listed
    write_pid(&root, 21, "svc", 'S', (0, 0), 2, Some(2));
    write_pid(&root, 22, "lonely", 'S', (0, 0), 3, None);
    let s = scan(&root, &["svc", "lonely"]);
    // svc: 2 processes, fds from 21 only.
    assert_eq!(
        (pattern(&s, "svc").count, pattern(&s, "svc").fds),
        (2, Some(2))
    );
    // lonely: its only process has no readable fd dir: no proc_file at all.
    assert_eq!(pattern(&s, "lonely").fds, None);
    let mut out = Vec::new();
    procs::gauges(&s, &mut out);
    assert_eq!(value(&out, "proc_file", Some("svc")), Some(2.0));
    assert_eq!(value(&out, "proc_file", Some("lonely")), None);
    assert_eq!(
        value(&out, "proc_specified_count", Some("lonely")),
        Some(1.0)
    );
    // statm: 100 resident pages each -> 2 * 100 * 4096 bytes = 819,200 of 8 GiB
    // = 100 * 200 / 2,097,152 % = 0.00953674316406250.
    assert!(close(
        value(&out, "proc_mem", Some("svc")).unwrap(),
        0.0095367431640625
    ));
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn kernel_threads_skip_cmdline() {
    // PF_KTHREAD (0x200000) set: the cmdline is never read, so a (fake) cmdline that would
    // match does not. The same process without the flag matches through its cmdline.
    let root = common::temp_dir("procs-kthread");
    let dir = root.join("2");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("stat"),
        "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0\n",
    )
    .unwrap();
    fs::write(dir.join("cmdline"), "matchme\0").unwrap();
    assert_eq!(pattern(&scan(&root, &["matchme"]), "matchme").count, 0);
    fs::write(
        dir.join("stat"),
        "2 (kthreadd) S 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0\n",
    )
    .unwrap();
    assert_eq!(pattern(&scan(&root, &["matchme"]), "matchme").count, 1);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn read_uses_meminfo_from_proc_root() {
    let root = common::temp_dir("procs-read");
    write_pid(&root, 30, "svc", 'S', (0, 0), 1, Some(0));
    // MemTotal 819,200 kB = 838,860,800 bytes; the process has 100 pages = 409,600 bytes:
    // 100 * 409600 / 838860800 = 0.048828125 %.
    fs::write(
        root.join("meminfo"),
        "MemTotal:  819200 kB\nMemFree: 1 kB\n",
    )
    .unwrap();
    let s = Settings {
        proc_root: root.clone(),
        processes: strings(&["svc"]),
        ..Settings::default()
    };
    let sample = procs::read(&mut Reader::new(), &s).unwrap();
    assert_eq!(sample.mem_total_bytes, Some(838_860_800));
    assert!(sample.clk_tck > 0);
    let mut out = Vec::new();
    procs::gauges(&sample, &mut out);
    if let Ok(Some(4096)) = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        assert!(close(
            value(&out, "proc_mem", Some("svc")).unwrap(),
            0.048828125
        ));
    }
    assert_eq!(value(&out, "proc_file", Some("svc")), Some(0.0));
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn real_proc_smoke() {
    // The test process itself is in /proc. (Its state is that of the harness's main thread,
    // the thread-group leader, which may be sleeping: no assertion on states.)
    let mut reader = Reader::new();
    let patterns = strings(&["nginx", "*java*"]);
    let _warm = procs::scan(&mut reader, Path::new("/proc"), &patterns, facts()).unwrap();
    let (cpu0, t) = (thread_cpu_us(), std::time::Instant::now());
    let s = procs::scan(&mut reader, Path::new("/proc"), &[], facts()).unwrap();
    let (wall, cpu) = (t.elapsed(), thread_cpu_us() - cpu0);
    let (cpu0, t) = (thread_cpu_us(), std::time::Instant::now());
    let _ = procs::scan(&mut reader, Path::new("/proc"), &patterns, facts()).unwrap();
    let (wall_p, cpu_p) = (t.elapsed(), thread_cpu_us() - cpu0);
    eprintln!(
        "real /proc, {} pids: {wall:?} wall, {cpu} us CPU; with 2 patterns {wall_p:?}, {cpu_p} us CPU",
        s.total
    );
    assert!(s.total >= 1);
    assert!(s.running + s.sleeping + s.blocked + s.idle + s.zombie + s.stopped <= s.total);
}

/// CPU time (user + system) of the calling thread, in microseconds.
fn thread_cpu_us() -> i64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_THREAD).unwrap();
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() * 1_000_000 + t.tv_usec();
    us(u.user_time()) + us(u.system_time())
}

/// A temporary directory on tmpfs when there is one: creating 40,000 files on the
/// sandbox's virtual disk takes tens of seconds, on /dev/shm about two.
fn fast_temp_dir(name: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        let dir = shm.join(format!("cloudeye-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        if fs::create_dir_all(&dir).is_ok() {
            return dir;
        }
    }
    common::temp_dir(name)
}

#[test]
fn busy_host_ten_thousand_pids() {
    // 10,000 pids; state of pid i is "RSDZITt"[i % 7], comm "app<i % 100>", and pids with
    // i % 100 == 7 are "nginx" (100 of them).
    let root = fast_temp_dir("procs-busy");
    const STATES: &[u8] = b"RSDZITt";
    for i in 0..10_000u32 {
        let pid = 1000 + i;
        let comm = if i % 100 == 7 {
            "nginx".to_string()
        } else {
            format!("app{}", i % 100)
        };
        let dir = root.join(pid.to_string());
        fs::create_dir_all(&dir).unwrap();
        let state = STATES[(i % 7) as usize] as char;
        fs::write(
            dir.join("stat"),
            format!(
                "{pid} ({comm}) {state} 1 1 1 0 -1 4194560 0 0 0 0 3 2 0 0 20 0 1 0 {pid} 0 0\n"
            ),
        )
        .unwrap();
        fs::write(dir.join("cmdline"), format!("/usr/bin/{comm}\0")).unwrap();
        fs::write(dir.join("statm"), "10 4 0 0 0 0 0\n").unwrap();
    }
    let mut reader = Reader::new();
    let patterns = strings(&["nginx", "*java*"]);
    let _warm = procs::scan(&mut reader, &root, &patterns, facts()).unwrap();
    let (cpu0, t) = (thread_cpu_us(), std::time::Instant::now());
    let s = procs::scan(&mut reader, &root, &patterns, facts()).unwrap();
    let (elapsed, cpu_patterns) = (t.elapsed(), thread_cpu_us() - cpu0);
    let (cpu0, t) = (thread_cpu_us(), std::time::Instant::now());
    let _ = procs::scan(&mut reader, &root, &[], facts()).unwrap();
    let (elapsed_no_patterns, cpu_plain) = (t.elapsed(), thread_cpu_us() - cpu0);
    eprintln!(
        "busy-host scan of 10,000 pids: with 2 patterns {elapsed:?} wall, {} ms CPU; \
         without {elapsed_no_patterns:?} wall, {} ms CPU",
        cpu_patterns / 1000,
        cpu_plain / 1000
    );
    // 10,000 = 7 * 1428 + 4: states R, S, D, Z (i % 7 < 4) get 1429, the others 1428.
    assert_eq!(s.total, 10_000);
    assert_eq!(
        (s.running, s.sleeping, s.blocked, s.zombie),
        (1429, 1429, 1429, 1429)
    );
    assert_eq!((s.idle, s.stopped), (1428, 1428 * 2));
    let n = pattern(&s, "nginx");
    // 100 nginx pids, 5 ticks each, 4 resident pages each; no fd dirs here.
    assert_eq!((n.count, n.rss_bytes, n.fds), (100, 100 * 4 * 4096, None));
    assert_eq!(n.pids.len(), 100);
    assert!(n.pids.windows(2).all(|w| w[0].pid < w[1].pid));
    assert_eq!(pattern(&s, "*java*").count, 0);
    // Generous bound for a debug build on a shared 2-core machine; the release number is
    // what the report quotes.
    assert!(elapsed.as_millis() < 3000, "{elapsed:?}");
    let _ = fs::remove_dir_all(&root);
}
