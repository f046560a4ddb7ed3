//! Cost of one collection cycle (`Collector::sample` + `gauges` + `rates`), in process.
//!
//!     cargo bench --bench cycle -- [--cycles N] [--root DIR] [--label NAME] [--processes P,..]
//!
//! `--root DIR` points proc_root/sys_root at DIR/proc and DIR/sys (a fixture written by
//! tools/gen_large_host.py); without it the host's /proc and /sys are read. Prints one line of
//! `key=value` pairs: CPU (user+sys from getrusage) and wall time per cycle, heap allocations
//! and bytes per cycle (a counting global allocator), metrics per cycle, and VmRSS at cycles
//! 50 and 300 when the run is that long (growth between them shows a leak).

use cloudeye_agent::collect::{self, Collector, Settings};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Args {
    cycles: u64,
    root: Option<PathBuf>,
    label: String,
    processes: Vec<String>,
    /// Measure the light sample `run` takes between reports instead of a full cycle.
    light: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        cycles: 300,
        root: None,
        label: "host".to_string(),
        processes: Vec::new(),
        light: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--cycles" => a.cycles = it.next().and_then(|v| v.parse().ok()).unwrap_or(300),
            "--root" => a.root = it.next().map(PathBuf::from),
            "--label" => a.label = it.next().unwrap_or_default(),
            "--light" => a.light = true,
            "--processes" => {
                a.processes = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            // cargo bench passes --bench; anything else unknown is ignored too.
            _ => {}
        }
    }
    a
}

fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000)
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

fn vm_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args = parse_args();
    let mut settings = Settings {
        proc_root: PathBuf::from("/proc"),
        sys_root: PathBuf::from("/sys"),
        processes: args.processes.clone(),
        ..Settings::default()
    };
    if let Some(root) = &args.root {
        settings.proc_root = root.join("proc");
        settings.sys_root = root.join("sys");
    }
    let mut collector = Collector::new(settings);
    let mut out = Vec::with_capacity(1024);
    // Warm-up: the first cycle sizes the buffers and has no rates.
    let mut prev = collector.sample();
    collect::gauges(&prev, &mut out);

    let (mut rss_50, mut rss_300) = (None, None);
    let mut metrics = 0usize;
    let allocs0 = ALLOCS.load(Ordering::Relaxed);
    let bytes0 = ALLOC_BYTES.load(Ordering::Relaxed);
    let cpu0 = cpu_time();
    let wall0 = Instant::now();
    for i in 1..=args.cycles {
        out.clear();
        let cur = if args.light {
            collector.sample_light()
        } else {
            collector.sample()
        };
        collect::gauges(&cur, &mut out);
        if !args.light {
            collect::rates(&prev, &cur, &mut out);
        }
        metrics = out.len();
        prev = cur;
        if i == 50 {
            rss_50 = Some(vm_rss_kb());
        }
        if i == 300 {
            rss_300 = Some(vm_rss_kb());
        }
    }
    let n = args.cycles.max(1) as f64;
    let cpu_us = cpu_time().saturating_sub(cpu0).as_secs_f64() * 1e6 / n;
    let wall_us = wall0.elapsed().as_secs_f64() * 1e6 / n;
    let allocs = (ALLOCS.load(Ordering::Relaxed) - allocs0) as f64 / n;
    let bytes = (ALLOC_BYTES.load(Ordering::Relaxed) - bytes0) as f64 / n;
    let rss = |v: Option<u64>| v.map_or("n/a".to_string(), |x| x.to_string());
    let growth = match (rss_50, rss_300) {
        (Some(a), Some(b)) => (b as i64 - a as i64).to_string(),
        _ => "n/a".to_string(),
    };
    println!(
        "cycle label={} cycles={} metrics={metrics} cpu_us_per_cycle={cpu_us:.1} \
         wall_us_per_cycle={wall_us:.1} allocs_per_cycle={allocs:.1} \
         alloc_bytes_per_cycle={bytes:.0} rss_kb_at_50={} rss_kb_at_300={} rss_growth_kb={growth}",
        args.label,
        args.cycles,
        rss(rss_50),
        rss(rss_300),
    );
}
