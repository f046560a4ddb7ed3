//! Shared test support: a real HTTP/1.1 server on 127.0.0.1 with a pluggable handler,
//! and a way to run the agent binary (under qemu when testing aarch64).
#![allow(dead_code)]

pub mod fake_cloud;
pub mod fake_server;
pub mod sigcheck;

use std::path::PathBuf;
use std::process::Command;

/// The agent binary built by cargo for this test run.
pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cloudeye-agent"))
}

/// A `Command` running the agent; honours CLOUDEYE_TEST_RUNNER (e.g. qemu-aarch64-static),
/// because a foreign-architecture binary cannot be exec'd directly without binfmt_misc.
pub fn agent_command() -> Command {
    match std::env::var("CLOUDEYE_TEST_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            let mut c = Command::new(runner);
            c.arg(agent_bin());
            c
        }
        _ => Command::new(agent_bin()),
    }
}

/// `cloudeye-agent --config CFG run` in the background, its stderr discarded.
pub fn spawn_run(cfg: &std::path::Path) -> std::process::Child {
    agent_command()
        .arg("--config")
        .arg(cfg)
        .arg("run")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the agent")
}

/// Ask a running agent to stop, as an init system does.
pub fn sigterm(child: &std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("send SIGTERM");
}

/// A minimal proc_root under `dir`: /proc/stat (one CPU), meminfo, loadavg and a boot id.
pub fn minimal_proc_root(dir: &std::path::Path) -> PathBuf {
    let root = dir.join("proc");
    std::fs::create_dir_all(root.join("sys/kernel/random")).expect("create proc_root");
    let files = [
        ("stat", "cpu  100 0 50 1000 10 0 5 0 0 0\ncpu0 100 0 50 1000 10 0 5 0 0 0\n"),
        (
            "meminfo",
            "MemTotal: 2048000 kB\nMemFree: 1024000 kB\nMemAvailable: 1536000 kB\nBuffers: 1000 kB\nCached: 20000 kB\n",
        ),
        ("loadavg", "0.10 0.20 0.30 1/100 1234\n"),
        ("sys/kernel/random/boot_id", "6b1f7c4e-0000-4000-8000-000000000001\n"),
    ];
    for (name, content) in files {
        std::fs::write(root.join(name), content).expect("write proc_root file");
    }
    root
}

/// A fresh temporary directory under target/, removed by the caller if wanted.
pub fn temp_dir(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = base.join(format!("{name}-{}-{}", std::process::id(), unique()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
