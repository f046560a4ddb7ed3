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
