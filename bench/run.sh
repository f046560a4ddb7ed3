#!/usr/bin/env bash
# Footprint figures for cloudeye-agent, in one run (make bench). About 3-5 minutes.
#
#   binary size of each target built, peak RSS of print / once / run, CPU and heap allocations
#   per collection cycle on this host and on a generated large host, RSS growth between cycles
#   50 and 300, and Debian's prometheus-node-exporter measured the same way, side by side.
#
# Everything listens on 127.0.0.1 only; every process started here is stopped by its PID.
# Parts that cannot run yet (e.g. a command not implemented) print n/a; the script goes on.
# Knobs: BENCH_RUN_SECS (default 300: `run` with 1 s cycles, i.e. 300 cycles), BENCH_CYCLES (300),
# BENCH_LARGE_CYCLES (20), BENCH_SCRAPES (30), BENCH_NO_APT=1 (do not install node_exporter).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
CARGO=${CARGO:-cargo}
RUN_SECS=${BENCH_RUN_SECS:-300}
CYCLES=${BENCH_CYCLES:-300}
LARGE_CYCLES=${BENCH_LARGE_CYCLES:-20}
SCRAPES=${BENCH_SCRAPES:-30}
TARGETS="x86_64-unknown-linux-musl aarch64-unknown-linux-musl"
WORK=$ROOT/target/bench-work
RESULTS=$WORK/results.txt
M="python3 $ROOT/bench/measure.py"
FAKE_PID=

cleanup() {
    if [ -n "$FAKE_PID" ] && kill -0 "$FAKE_PID" 2>/dev/null; then
        kill -TERM "$FAKE_PID" 2>/dev/null
        wait "$FAKE_PID" 2>/dev/null
    fi
    rm -rf "$WORK/large"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"
mkdir -p "$WORK/state"
: >"$RESULTS"
record() { echo "$1 $2" | tee -a "$RESULTS"; }
step() { echo; echo "== $* =="; }
T0=$(date +%s)

step "binary size"
BIN=
for t in $TARGETS; do
    f=target/$t/release/cloudeye-agent
    if [ -x "$f" ]; then
        record "size:$t" "bytes=$(stat -c %s "$f") path=$f"
        [ -z "$BIN" ] && [ "$t" = "$(rustc -vV | sed -n 's/^host: //p' | sed 's/gnu$/musl/')" ] && BIN=$f
    fi
done
if [ -z "$BIN" ]; then
    echo "no musl release binary for this host; building the host release binary"
    $CARGO build --release --quiet || echo "release build failed"
    BIN=target/release/cloudeye-agent
    [ -x "$BIN" ] && record "size:host" "bytes=$(stat -c %s "$BIN") path=$BIN"
fi
echo "measuring $BIN ($(file -b "$BIN" 2>/dev/null | cut -d, -f1-2))"

step "fake Cloud Eye on 127.0.0.1"
python3 bench/fake_ces.py "$WORK/port" 900 >"$WORK/fake.out" 2>&1 &
FAKE_PID=$!
for _ in $(seq 50); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT=$(cat "$WORK/port" 2>/dev/null || echo 0)
echo "port $PORT (pid $FAKE_PID)"

config() { # config FILE [extra json members]
    cat >"$1" <<EOF
{"metadata_url": "http://127.0.0.1:$PORT", "endpoint": "http://127.0.0.1:$PORT",
 "region": "xx-bench-1", "project_id": "0123456789abcdef0123456789abcdef",
 "instance_id": "bench-instance-0001", "access_key": "BENCHAK", "secret_key": "benchsecret",
 "state_dir": "$WORK/state", "collect_interval": 1, "report_interval": 1, "jitter": 0,
 "log_level": "warn"${2:+, $2}}
EOF
    chmod 600 "$1"
}
config "$WORK/config.json"

step "generate the large host (10k procs, 100 disks, 200 NICs, 100 mounts, 200k sockets)"
python3 tools/gen_large_host.py "$WORK/large" && echo "written to $WORK/large"
# Five process patterns: a comm, two globs (one on the cmdline), a name with spaces and ')',
# and one that matches nothing, so every pid's cmdline is read too.
PATTERNS='"nginx", "worker-1*", "*--id 99*", "we (ird) x", "sshd"'
config "$WORK/config-large.json" "\"proc_root\": \"$WORK/large/proc\", \"sys_root\": \"$WORK/large/sys\", \"processes\": [$PATTERNS]"

step "print: peak RSS"
record print "$($M exec --timeout 30 -- "$BIN" --config "$WORK/config.json" print)"
record print_large "$($M exec --timeout 60 -- "$BIN" --config "$WORK/config-large.json" print)"

step "once against the fake server (run twice; the second has rates and is what cron sees)"
$M exec --timeout 30 -- "$BIN" --config "$WORK/config.json" once >/dev/null
sleep 1
record once "$($M exec --timeout 30 -- "$BIN" --config "$WORK/config.json" once)"

step "run: ${RUN_SECS} s with 1 s cycles (no cycle-count knob in the agent: measured by time)"
record run "$($M run-for "$RUN_SECS" -- "$BIN" --config "$WORK/config.json" run)"

step "collection cycle in process (cargo bench --bench cycle)"
if $CARGO bench --quiet --bench cycle --no-run 2>"$WORK/bench-build.log"; then
    line=$($CARGO bench --quiet --bench cycle -- --cycles "$CYCLES" --label host 2>/dev/null | grep '^cycle ')
    record cycle_host "${line#cycle }"
    line=$($CARGO bench --quiet --bench cycle -- --cycles "$CYCLES" --label host-light --light 2>/dev/null | grep '^cycle ')
    record cycle_host_light "${line#cycle }"
    line=$($CARGO bench --quiet --bench cycle -- --cycles "$LARGE_CYCLES" --label large \
        --root "$WORK/large" --processes 'nginx,worker-1*,*--id 99*,we (ird) x,sshd' 2>/dev/null | grep '^cycle ')
    record cycle_large "${line#cycle }"
else
    echo "cycle bench did not build: see $WORK/bench-build.log"
fi
rm -rf "$WORK/large"

step "prometheus-node-exporter, $SCRAPES scrapes"
NE=$(command -v prometheus-node-exporter || true)
if [ -z "$NE" ] && [ "${BENCH_NO_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ]; then
    echo "installing prometheus-node-exporter (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >"$WORK/apt.log" 2>&1 ||
        { apt-get update -qq >>"$WORK/apt.log" 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >>"$WORK/apt.log" 2>&1; }
    NE=$(command -v prometheus-node-exporter || true)
fi
if [ -n "$NE" ]; then
    record node_exporter "$($M node-exporter "$NE" "$SCRAPES")"
else
    echo "node_exporter not available: n/a"
fi

step "fake server"
kill -TERM "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
FAKE_PID=
cat "$WORK/fake.out"

$M summary "$RESULTS"
echo "bench took $(( $(date +%s) - T0 )) s; raw figures in $RESULTS"
