#!/usr/bin/env python3
"""Process measurements for bench/run.sh. Every child is started here, stopped by its PID
and waited for, so nothing is left running. Output: one `key=value ...` line per command.

    measure.py exec [--timeout S] -- CMD...        peak RSS (VmHWM, GNU time %M), CPU, wall, rc
    measure.py run-for SECS -- CMD...              run, sample VmRSS, SIGTERM after SECS
    measure.py node-exporter BIN SCRAPES           CPU per scrape and VmHWM of node_exporter
    measure.py summary RESULTS_FILE                the table, with our ratios to node_exporter
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


def status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_ms(pid):
    """utime + stime of a live process, from /proc/PID/stat (fields after the last ')')."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) * TICK_MS


def wait_child(proc, timeout):
    """wait4 with a deadline (SIGTERM, then SIGKILL, by PID on timeout), polling VmHWM
    every millisecond meanwhile. wait4's ru_maxrss cannot be used for peak RSS: Linux folds
    the forking parent's RSS (here Python's, about 20 MiB) into the child's maxrss at exec.
    VmHWM belongs to the exec'd image alone and only grows, so the last reading before exit
    is the peak to within the final millisecond."""
    deadline = time.monotonic() + timeout
    hwm = None
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru, hwm
        h = status_kb(proc.pid, "VmHWM")
        if h is not None:
            hwm = h
        if time.monotonic() > deadline:
            stop(proc)
            pid, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return "timeout", ru, hwm
        time.sleep(0.001)


def stop(proc):
    """SIGTERM by PID; SIGKILL after 5 s if still there. The caller reaps it."""
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(500):
        if not os.path.exists("/proc/%d" % proc.pid) or zombie(proc.pid):
            return
        time.sleep(0.01)
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def ru_cpu_ms(ru):
    return (ru.ru_utime + ru.ru_stime) * 1000.0


def cmd_exec(args):
    timeout = 60.0
    if args[0] == "--timeout":
        timeout, args = float(args[1]), args[2:]
    assert args[0] == "--"
    t0 = time.monotonic()
    proc = subprocess.Popen(args[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr_fd = proc.stderr
    rc, ru, hwm = wait_child(proc, timeout)
    err = stderr_fd.read().decode(errors="replace").strip().splitlines()
    wall = (time.monotonic() - t0) * 1000.0
    last = err[-1].replace(" ", "_")[:120] if err else ""
    print("rc=%s vmhwm_kb=%s time_maxrss_kb=%s cpu_ms=%.1f wall_ms=%.0f stderr=%s"
          % (rc, hwm, gnu_time_maxrss(args[1:], timeout), ru_cpu_ms(ru), wall, last))


def gnu_time_maxrss(cmd, timeout):
    """A second run under GNU time for its %M, as a cross-check of the polled VmHWM (and the
    only figure for processes too short to be seen after exec). GNU time forks with little
    anonymous memory, so its fold-in at exec is small, unlike Python's."""
    if not os.access("/usr/bin/time", os.X_OK):
        return "n/a"
    out = "/tmp/bench-time-%d" % os.getpid()
    try:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out, "--"] + cmd, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            return f.read().strip().splitlines()[-1]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "n/a"
    finally:
        if os.path.exists(out):
            os.remove(out)


def cmd_run_for(args):
    secs = float(args[0])
    assert args[1] == "--"
    proc = subprocess.Popen(args[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    early_rss = None
    last_rss = hwm = None
    last_cpu = 0.0
    exited = None
    while time.monotonic() - t0 < secs:
        time.sleep(1.0)
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            exited = (os.waitstatus_to_exitcode(status), ru)
            break
        rss, h = status_kb(proc.pid, "VmRSS"), status_kb(proc.pid, "VmHWM")
        if rss is not None:
            last_rss, hwm = rss, h
            last_cpu = cpu_ms(proc.pid)
            if early_rss is None and time.monotonic() - t0 >= min(50.0, secs / 3):
                early_rss = rss
    elapsed = time.monotonic() - t0
    if exited:
        rc, ru = exited
        err = proc.stderr.read().decode(errors="replace").strip().splitlines()
        last = err[-1].replace(" ", "_")[:120] if err else ""
        print("exited_early=1 rc=%s after_s=%.1f stderr=%s" % (rc, elapsed, last))
        return
    stop(proc)
    _, status, ru = os.wait4(proc.pid, 0)
    growth = (last_rss - early_rss) if (last_rss is not None and early_rss is not None) else "n/a"
    print("exited_early=0 secs=%.0f vmhwm_kb=%s cpu_ms=%.1f cpu_ms_at_end=%.1f "
          "rss_early_kb=%s rss_end_kb=%s rss_growth_kb=%s"
          % (elapsed, hwm, ru_cpu_ms(ru), last_cpu, early_rss, last_rss, growth))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cmd_node_exporter(args):
    binary, scrapes = args[0], int(args[1])
    port = free_port()
    url = "http://127.0.0.1:%d/metrics" % port
    proc = subprocess.Popen([binary, "--web.listen-address=127.0.0.1:%d" % port],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=5).read()  # warm-up scrape, not counted
                break
            except OSError:
                time.sleep(0.1)
        else:
            print("error=node_exporter_did_not_answer")
            return
        rss_before = status_kb(proc.pid, "VmRSS")
        c0 = cpu_ms(proc.pid)
        size = 0
        for _ in range(scrapes):
            size = len(urllib.request.urlopen(url, timeout=10).read())
            time.sleep(0.2)
        c1 = cpu_ms(proc.pid)
        print("scrapes=%d cpu_ms_per_scrape=%.2f vmhwm_kb=%s rss_kb=%s rss_before_kb=%s "
              "scrape_bytes=%d" % (scrapes, (c1 - c0) / scrapes, status_kb(proc.pid, "VmHWM"),
                                   status_kb(proc.pid, "VmRSS"), rss_before, size))
    finally:
        stop(proc)
        try:
            os.wait4(proc.pid, 0)
        except ChildProcessError:
            pass


def parse(results):
    rows = {}
    with open(results) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            rows[parts[0]] = kv
    return rows


def num(rows, section, key):
    try:
        return float(rows[section][key])
    except (KeyError, ValueError):
        return None


def peak_kb(rows, section):
    """Polled VmHWM when the process lived long enough to be seen after exec, else GNU time's."""
    polled, timed = num(rows, section, "vmhwm_kb"), num(rows, section, "time_maxrss_kb")
    wall = num(rows, section, "wall_ms") or 0
    if polled is not None and (wall >= 50 or timed is None):
        return polled
    return timed


def cmd_summary(args):
    rows = parse(args[0])
    print("\n== summary ==")
    for name, kv in rows.items():
        if name.startswith("size:"):
            print("%-34s %s bytes (%s)" % ("binary " + name[5:], kv.get("bytes"), kv.get("path")))

    def mib(kb):
        return "n/a" if kb is None else "%.2f MiB" % (kb / 1024.0)

    for section, label in [("print", "print (this host)"), ("print_large", "print (large host)"),
                           ("once", "once (2nd run, fake CES)")]:
        kb = peak_kb(rows, section)
        ok = rows.get(section, {}).get("rc") == "0"
        extra = "" if ok else "  [n/a: rc=%s %s]" % (rows.get(section, {}).get("rc"),
                                                      rows.get(section, {}).get("stderr", ""))
        print("%-34s peak RSS %s, CPU %s ms%s" % (label, mib(kb) if ok else "n/a",
                                                  rows.get(section, {}).get("cpu_ms", "n/a"), extra))
    run = rows.get("run", {})
    if run.get("exited_early") == "0":
        print("%-34s peak RSS %s over %s s, CPU %s ms, RSS growth %s kB"
              % ("run (1 s cycles)", mib(num(rows, "run", "vmhwm_kb")), run.get("secs"),
                 run.get("cpu_ms"), run.get("rss_growth_kb")))
    else:
        print("%-34s n/a (%s)" % ("run (1 s cycles)", run.get("stderr", "not measured")))
    for section, label in [("cycle_host", "cycle (this host)"),
                           ("cycle_host_light", "light cycle between reports"),
                           ("cycle_large", "cycle (large host)")]:
        kv = rows.get(section)
        if not kv:
            print("%-34s n/a" % label)
            continue
        print("%-34s %s us CPU, %s us wall, %s allocs (%s B), %s metrics per cycle; "
              "RSS growth cycle 50->300: %s kB"
              % (label, kv.get("cpu_us_per_cycle"), kv.get("wall_us_per_cycle"),
                 kv.get("allocs_per_cycle"), kv.get("alloc_bytes_per_cycle"),
                 kv.get("metrics"), kv.get("rss_growth_kb")))
    full = num(rows, "cycle_host", "cpu_us_per_cycle")
    light = num(rows, "cycle_host_light", "cpu_us_per_cycle")
    if full is not None and light is not None:
        # `run` with the defaults: 6 collections per 60 s report, the last one full.
        print("%-34s %.1f us CPU per collection (5 light + 1 full per 60 s report)"
              % ("run at 10 s / 60 s, collection", (5 * light + full) / 6))
    ne = rows.get("node_exporter")
    if not ne or "cpu_ms_per_scrape" not in ne:
        print("%-34s n/a" % "node_exporter")
        return
    print("%-34s %s ms CPU per scrape, peak RSS %s, %s B per scrape"
          % ("node_exporter (Debian)", ne["cpu_ms_per_scrape"], mib(num(rows, "node_exporter",
                                                                         "vmhwm_kb")),
             ne.get("scrape_bytes")))
    ours_cpu = num(rows, "cycle_host", "cpu_us_per_cycle")
    ne_cpu = num(rows, "node_exporter", "cpu_ms_per_scrape")
    if ours_cpu is not None and ne_cpu and rows["cycle_host"].get("metrics") != "0":
        print("%-34s %.3f (our collection cycle / their scrape)"
              % ("ratio CPU", ours_cpu / 1000.0 / ne_cpu))
    else:
        print("%-34s n/a (collectors not implemented yet)" % "ratio CPU")
    ours_rss = None
    for section, key in [("run", "vmhwm_kb"), ("once", "vmhwm_kb"), ("print", "vmhwm_kb")]:
        if rows.get(section, {}).get("rc", "0") == "0" and rows.get(section, {}).get(
                "exited_early", "0") == "0":
            ours_rss = peak_kb(rows, section) if section != "run" else num(rows, section, key)
            if ours_rss:
                print("%-34s %.3f (our %s peak RSS / theirs)"
                      % ("ratio RSS", ours_rss / num(rows, "node_exporter", "vmhwm_kb"), section))
                break
    if not ours_rss:
        print("%-34s n/a" % "ratio RSS")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"exec": cmd_exec, "run-for": cmd_run_for, "node-exporter": cmd_node_exporter,
     "summary": cmd_summary}[cmd](args)


if __name__ == "__main__":
    main()
