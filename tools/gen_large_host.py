#!/usr/bin/env python3
"""Write a proc_root/sys_root fixture of a large host, for tests and benchmarks.

    gen_large_host.py OUT [--step N] [--counters-only]

Creates OUT/proc and OUT/sys describing a host with 64 CPUs, 10,000 processes,
100 reported block devices (plus partitions, loop and ram devices that must be skipped),
200 NICs (150 physical, 50 virtual) plus lo, 100 real mount points (directories under
OUT/mnt, so statvfs works) plus pseudo and network mounts that must be skipped, and
200,000 TCP sockets (150,000 in tcp, 50,000 in tcp6).

Counters (/proc/stat, diskstats, net/dev, net/snmp) are a function of --step, so a
test can sample, rewrite with --step 1 --counters-only, sample again and know every
delta exactly. Per step: each CPU gains 50 user and 50 idle ticks; each disk 2048 read
sectors, 16 reads, 1024 written sectors, 8 writes, 100 ms of I/O; each NIC 1000 rx bytes,
10 rx packets, 500 tx bytes, 5 tx packets; Tcp OutSegs +1000 and RetransSegs +10.

The expected figures are in EXPECTED below; tests/large_host.rs restates them by hand.
"""

import argparse
import os
import sys

NPROCS = 10_000
NCPUS = 64
# Reported disks: 60 virtio, 30 NVMe namespaces, 10 device-mapper.
VD_DISKS = 60
NVME_DISKS = 30
DM_DISKS = 10
PHYS_NICS = 150
VIRT_NICS = 50
NMOUNTS = 100
TCP4 = [("01", 100_000), ("06", 20_000), ("0A", 10_000), ("08", 10_000),
        ("02", 5_000), ("04", 5_000)]
TCP6 = [("01", 40_000), ("0A", 5_000), ("05", 5_000)]
NGINX_EVERY = 271  # pids whose index is a multiple of this run "nginx": 37 of them

EXPECTED = {
    "procs": NPROCS, "disks": VD_DISKS + NVME_DISKS + DM_DISKS,
    "nics_reported": PHYS_NICS, "nics_total": PHYS_NICS + VIRT_NICS,
    "mounts": NMOUNTS, "tcp": sum(n for _, n in TCP4) + sum(n for _, n in TCP6),
}


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def vd_name(i):
    """vda..vdz, then vdaa, vdab, ... like the kernel names them."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    if i < 26:
        return "vd" + letters[i]
    i -= 26
    return "vd" + letters[i // 26] + letters[i % 26]


def disk_names():
    """(name, major, minor, partition_names) of every reported disk."""
    out = []
    for i in range(VD_DISKS):
        name = vd_name(i)
        out.append((name, 252, i * 16, [name + "1"]))
    for i in range(NVME_DISKS):
        name = "nvme%dn1" % i
        out.append((name, 259, i * 2, [name + "p1"]))
    for i in range(DM_DISKS):
        out.append(("dm-%d" % i, 253, i, []))
    return out


def proc_state(i):
    """6000 S, 1000 R, 1000 D, 1000 I, 500 Z, 500 T in 10,000."""
    r = i % 10
    if r <= 5:
        return "S"
    return {6: "R", 7: "D", 8: "I"}.get(r, "Z" if (i // 10) % 2 == 0 else "T")


def gen_procs(proc):
    for i in range(NPROCS):
        pid = i + 1
        d = os.path.join(proc, str(pid))
        os.makedirs(d, exist_ok=True)
        if i % NGINX_EVERY == 0:
            comm, cmdline = "nginx", "nginx: worker process"
        elif i % 97 == 1:
            # comm may hold spaces and ')'; the state is after the LAST ')'.
            comm, cmdline = "we (ird) x", "/opt/we (ird) x"
        else:
            comm, cmdline = "worker-%d" % (i % 50), "/usr/bin/worker --id %d" % i
        state = proc_state(i)
        stat = ("%d (%s) %s 1 %d %d 0 -1 4194560 100 0 0 0 %d %d 0 0 20 0 1 0 %d "
                "12345678 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 %d 0 0 0 0 0\n"
                % (pid, comm, state, pid, pid, 10 + i % 7, 3 + i % 5, 1000 + i, i % NCPUS))
        with open(os.path.join(d, "stat"), "w") as f:
            f.write(stat)
        with open(os.path.join(d, "statm"), "w") as f:
            f.write("3014 300 200 10 0 150 0\n")
        with open(os.path.join(d, "comm"), "w") as f:
            f.write(comm + "\n")
        with open(os.path.join(d, "cmdline"), "w") as f:
            f.write(cmdline.replace(" ", "\0") + "\0")
        with open(os.path.join(d, "status"), "w") as f:
            f.write("Name:\t%s\nState:\t%s\nTgid:\t%d\nPid:\t%d\nPPid:\t1\nVmRSS:\t    1200 kB\n"
                    "Threads:\t1\n" % (comm, state, pid, pid))


def gen_stat(proc, step):
    user, idle = 1000 + 50 * step, 5000 + 50 * step
    lines = []
    per_cpu = "%d 10 300 %d 20 0 5 0 0 0"
    lines.append("cpu  " + per_cpu % (user * NCPUS, idle * NCPUS))
    for c in range(NCPUS):
        lines.append("cpu%d " % c + per_cpu % (user, idle))
    lines += ["intr 123456 0 0", "ctxt 987654321", "btime 1700000000",
              "processes 123456", "procs_running 1000", "procs_blocked 1000",
              "softirq 1000 0 0 0 0 0 0 0 0 0 0"]
    write(os.path.join(proc, "stat"), "\n".join(lines) + "\n")


def gen_diskstats(proc, sys_root, step, counters_only):
    lines = []

    def line(major, minor, name, k):
        reads, rsect = 1000 + 16 * k, 100000 + 2048 * k
        writes, wsect = 500 + 8 * k, 50000 + 1024 * k
        ticks = 20000 + 100 * k
        # 20 fields (kernel >= 5.5): ... discards (4), flushes (2).
        lines.append("%4d %7d %s %d 0 %d %d %d 0 %d %d 0 %d %d 0 0 0 0 0 0"
                     % (major, minor, name, reads, rsect, 10 * reads, writes, wsect,
                        10 * writes, ticks, 2 * ticks))

    for name, major, minor, parts in disk_names():
        line(major, minor, name, step)
        for j, p in enumerate(parts):
            line(major, minor + 1 + j, p, step)
        if not counters_only:
            gen_sys_block(sys_root, name, major, minor, parts)
    for i in range(8):
        line(7, i, "loop%d" % i, step)
        if not counters_only:
            gen_sys_block(sys_root, "loop%d" % i, 7, i, [])
    line(1, 0, "ram0", step)
    if not counters_only:
        gen_sys_block(sys_root, "ram0", 1, 0, [])
    write(os.path.join(proc, "diskstats"), "\n".join(lines) + "\n")


def gen_sys_block(sys_root, name, major, minor, parts):
    """/sys/block/NAME and /sys/class/block/{NAME,PART} as links into /sys/devices."""
    if name.startswith(("vd", "nvme")):
        # Real disks sit under their bus; dm, loop and ram under devices/virtual.
        dev = os.path.join(sys_root, "devices", "pci0000:00", "disk-" + name, "block", name)
    else:
        dev = os.path.join(sys_root, "devices", "virtual", "block", name)
    write(os.path.join(dev, "dev"), "%d:%d\n" % (major, minor))
    write(os.path.join(dev, "size"), "209715200\n")
    write(os.path.join(dev, "removable"), "0\n")
    write(os.path.join(dev, "queue", "hw_sector_size"), "512\n")
    if name.startswith("dm-"):
        write(os.path.join(dev, "dm", "name"), "vg0-lv%s\n" % name[3:])
    for j, p in enumerate(parts):
        pdir = os.path.join(dev, p)
        write(os.path.join(pdir, "partition"), "%d\n" % (j + 1))
        write(os.path.join(pdir, "dev"), "%d:%d\n" % (major, minor + 1 + j))
        write(os.path.join(pdir, "size"), "209713152\n")
        link(os.path.join(sys_root, "class", "block", p), pdir)
    link(os.path.join(sys_root, "block", name), dev)
    link(os.path.join(sys_root, "class", "block", name), dev)


def link(at, target):
    os.makedirs(os.path.dirname(at), exist_ok=True)
    if os.path.lexists(at):
        os.remove(at)
    os.symlink(os.path.relpath(target, os.path.dirname(at)), at)


def nic_names():
    """(name, physical) for every NIC except lo."""
    phys = [("eth%d" % i, True) for i in range(PHYS_NICS)]
    virt = [("veth%04x" % i, False) for i in range(VIRT_NICS)]
    return phys + virt


def gen_net_dev(proc, sys_root, step, counters_only):
    lines = ["Inter-|   Receive                                                |  Transmit",
             " face |bytes    packets errs drop fifo frame compressed multicast|"
             "bytes    packets errs drop colls carrier compressed"]

    def line(name, k):
        rxb, rxp, txb, txp = 10**9 + 1000 * k, 10**6 + 10 * k, 5 * 10**8 + 500 * k, 5 * 10**5 + 5 * k
        lines.append("%6s: %d %d 0 0 0 0 0 0 %d %d 0 0 0 0 0" % (name, rxb, rxp, txb, txp))

    line("lo", 100 * step)  # lo moves a lot: counting it would show
    for name, phys in nic_names():
        line(name, step if phys else 1000 * step)
        if counters_only:
            continue
        ndir = os.path.join(sys_root, "devices", "virtual", "net", name)
        if phys:
            ndir = os.path.join(sys_root, "devices", "pci0000:00", "0000:00:%02x.0" % (len(name) % 32),
                                "virtio%s" % name[3:], "net", name)
            pci = os.path.join(sys_root, "devices", "pci0000:00", "virtio%s" % name[3:])
            write(os.path.join(pci, "vendor"), "0x1af4\n")
            link(os.path.join(ndir, "device"), pci)
        write(os.path.join(ndir, "operstate"), "up\n")
        write(os.path.join(ndir, "mtu"), "1500\n")
        write(os.path.join(ndir, "type"), "1\n")
        link(os.path.join(sys_root, "class", "net", name), ndir)
    if not counters_only:
        lo = os.path.join(sys_root, "devices", "virtual", "net", "lo")
        write(os.path.join(lo, "operstate"), "unknown\n")
        link(os.path.join(sys_root, "class", "net", "lo"), lo)
    write(os.path.join(proc, "net", "dev"), "\n".join(lines) + "\n")


def gen_snmp(proc, step):
    text = ("Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams\n"
            "Ip: 1 64 123456789 0 0 0\n"
            "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails "
            "EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n"
            "Tcp: 1 200 120000 -1 5000 6000 10 20 140000 90000000 %d %d 0 300 0\n"
            "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors "
            "InCsumErrors IgnoredMulti MemErrors\n"
            "Udp: 1000 0 0 1000 0 0 0 0 0\n" % (80000000 + 1000 * step, 4000 + 10 * step))
    write(os.path.join(proc, "net", "snmp"), text)


def gen_tcp(proc):
    head4 = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
             "   uid  timeout inode")
    lines = [head4]
    sl = 0
    for st, n in TCP4:
        for _ in range(n):
            lines.append("%4d: 0A00020F:%04X 0A000001:%04X %s 00000000:00000000 00:00000000 "
                         "00000000  1000        0 %d 1 0000000000000000 20 4 30 10 -1"
                         % (sl, 1024 + sl % 60000, 443, st, 100000 + sl))
            sl += 1
    write(os.path.join(proc, "net", "tcp"), "\n".join(lines) + "\n")
    head6 = ("  sl  local_address                         remote_address                        st"
             " tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode")
    lines = [head6]
    sl = 0
    for st, n in TCP6:
        for _ in range(n):
            lines.append("%4d: 0000000000000000FFFF00000F02000A:%04X 0000000000000000FFFF00000100000A:"
                         "01BB %s 00000000:00000000 00:00000000 00000000  1000        0 %d 1 "
                         "0000000000000000 20 4 30 10 -1" % (sl, 1024 + sl % 60000, st, 500000 + sl))
            sl += 1
    write(os.path.join(proc, "net", "tcp6"), "\n".join(lines) + "\n")


def mount_dir(out, i):
    # One name with a space: mountinfo escapes it as \040.
    return os.path.join(out, "mnt", "m %03d" % i if i == NMOUNTS - 1 else "m%03d" % i)


def esc(path):
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")


def gen_mounts(out, proc):
    lines = [
        "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw",
        "23 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw",
        "24 1 0:5 / /dev rw,nosuid shared:8 - devtmpfs udev rw,size=4096k,nr_inodes=1024,mode=755",
        "25 1 0:23 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=1638400k,mode=755",
        "26 23 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw",
        "27 1 0:40 / /var/lib/docker/overlay2/x/merged rw,relatime - overlay overlay rw,lowerdir=/a",
        "28 1 0:50 / /mnt/dead-nfs rw,relatime - nfs4 10.0.0.9:/export rw,vers=4.2,addr=10.0.0.9",
        "29 1 0:51 / /mnt/fuse rw,relatime - fuse.sshfs host:/ rw,user_id=0",
    ]
    for i in range(NMOUNTS):
        d = mount_dir(out, i)
        os.makedirs(d, exist_ok=True)
        opts = "ro,relatime" if i % 10 == 9 else "rw,relatime"
        fstype = "xfs" if i % 2 else "ext4"
        lines.append("%d 1 254:%d / %s %s shared:%d - %s /dev/mapper/vg-lv%d rw"
                     % (100 + i, i, esc(d), opts, 100 + i, fstype, i))
    text = "\n".join(lines) + "\n"
    for who in ("self", "1"):
        write(os.path.join(proc, who, "mountinfo"), text)
        # Like the kernel's magic link: with proc_root elsewhere, the agent reaches the
        # host's mount points through proc_root/1/root.
        root_link = os.path.join(proc, who, "root")
        if not os.path.lexists(root_link):
            os.symlink("/", root_link)
    fs = ["nodev\tsysfs", "nodev\ttmpfs", "nodev\tproc", "nodev\tcgroup2", "nodev\tdevtmpfs",
          "nodev\toverlay", "nodev\tnfs4", "nodev\tfuse", "\text4", "\txfs", "\tfuseblk"]
    write(os.path.join(proc, "filesystems"), "\n".join(fs) + "\n")


def gen_misc(proc, sys_root):
    write(os.path.join(proc, "loadavg"), "12.80 6.40 3.20 1000/10000 10000\n")
    # 256 GiB total, 128 GiB available: mem_usedPercent = 50.
    write(os.path.join(proc, "meminfo"),
          "MemTotal:       268435456 kB\nMemFree:        67108864 kB\n"
          "MemAvailable:   134217728 kB\nBuffers:         1048576 kB\n"
          "Cached:         33554432 kB\nSwapCached:            0 kB\n"
          "SwapTotal:             0 kB\nSwapFree:              0 kB\n")
    write(os.path.join(proc, "uptime"), "86400.00 5000000.00\n")
    write(os.path.join(proc, "sys", "kernel", "random", "boot_id"),
          "8d6b3f4e-0c2a-4b8e-9a51-5f0d3c2b1a09\n")
    write(os.path.join(sys_root, "devices", "system", "cpu", "online"), "0-%d\n" % (NCPUS - 1))


def main(argv):
    ap = argparse.ArgumentParser(description="Write a large-host proc/sys fixture.")
    ap.add_argument("out")
    ap.add_argument("--step", type=int, default=0, help="counter step (default 0)")
    ap.add_argument("--counters-only", action="store_true",
                    help="rewrite only the counter files of an existing fixture")
    a = ap.parse_args(argv)
    out = os.path.abspath(a.out)
    proc, sys_root = os.path.join(out, "proc"), os.path.join(out, "sys")
    gen_stat(proc, a.step)
    gen_diskstats(proc, sys_root, a.step, a.counters_only)
    gen_net_dev(proc, sys_root, a.step, a.counters_only)
    gen_snmp(proc, a.step)
    if not a.counters_only:
        gen_misc(proc, sys_root)
        gen_tcp(proc)
        gen_mounts(out, proc)
        gen_procs(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
