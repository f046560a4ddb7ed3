//! What `once` keeps between runs (`state_dir/state.json`) and the `state_dir/lock` that
//! lets only one agent (`run` or `once`) use a state directory at a time.
//!
//! The state is the previous [`Sample`] with the boot id it was taken under, so the next
//! run can report rates since then. It is written atomically: temp file, fsync, rename,
//! fsync of the directory. A missing, unreadable or stale state just means "take two
//! samples one second apart".

use crate::collect::Sample;
use crate::error::{Error, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const LOCK_FILE: &str = "lock";

/// An exclusive flock on `state_dir/lock`, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: Flock<File>,
    path: PathBuf,
}

impl Lock {
    /// Take the lock without waiting; a holder elsewhere is an error naming the file.
    pub fn acquire(state_dir: &Path) -> Result<Lock> {
        create_private_dir(state_dir)?;
        let path = state_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io_at("open", &path, &e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => Ok(Lock { _file: file, path }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(Error::other(format!(
                "another cloudeye-agent holds {}",
                path.display()
            ))),
            Err((_, e)) => Err(Error::io(format!("cannot lock {}: {e}", path.display()))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Saved by `once` after each run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub boot_id: String,
    pub sample: Sample,
    /// The last server-minus-local clock offset learned, ms.
    #[serde(default)]
    pub clock_offset_ms: i64,
    /// The host identity the previous run used, for a run that cannot reach metadata.
    #[serde(default)]
    pub identity: Option<crate::metadata::Identity>,
}

/// The kernel's boot id (`proc_root/sys/kernel/random/boot_id`), or "" if unreadable.
pub fn boot_id(proc_root: &Path) -> String {
    std::fs::read_to_string(proc_root.join("sys/kernel/random/boot_id"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl State {
    /// Can `self.sample` serve as the start of an interval ending at `now_mono_ns`?
    /// Same boot (and a known boot id), time moved forward, and no older than `max_age_ns`.
    pub fn usable(&self, boot_id: &str, now_mono_ns: u64, max_age_ns: u64) -> bool {
        !boot_id.is_empty()
            && self.boot_id == boot_id
            && now_mono_ns > self.sample.mono_ns
            && now_mono_ns - self.sample.mono_ns <= max_age_ns
    }
}

/// Read the state; anything wrong with it gives `None` (logged at debug level).
pub fn load(state_dir: &Path) -> Option<State> {
    let path = state_dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            log::debug!("no usable state in {}: {e}", path.display());
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("ignoring unreadable state {}: {e}", path.display());
            None
        }
    }
}

/// Write the state atomically.
pub fn save(state_dir: &Path, state: &State) -> Result<()> {
    let json = serde_json::to_vec(state)
        .map_err(|e| Error::other(format!("cannot encode the state: {e}")))?;
    write_atomic(&state_dir.join(STATE_FILE), &json)
}

/// Replace `path` with `bytes` so that a crash leaves either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io_at("write", path, &e)
    })
}

/// Create `dir` (and its parents) readable by the agent's user only: the spool and the
/// saved state describe the host.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io_at("create", dir, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cea-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn save_load_roundtrip() {
        let d = temp("rt");
        let s = State {
            boot_id: "b1".into(),
            sample: Sample {
                mono_ns: 5,
                wall_ms: 7,
                ..Sample::default()
            },
            clock_offset_ms: -3,
            identity: Some(crate::metadata::Identity {
                instance_id: "i-1".into(),
                project_id: "p-1".into(),
                region: "r-1".into(),
                namespace: "AGT.ECS".into(),
            }),
        };
        save(&d, &s).unwrap();
        assert_eq!(load(&d), Some(s));
        assert!(!d.join("state.tmp").exists());
        std::fs::write(d.join(STATE_FILE), b"{not json").unwrap();
        assert_eq!(load(&d), None);
    }

    #[test]
    fn usability_rules() {
        let s = State {
            boot_id: "b1".into(),
            sample: Sample {
                mono_ns: 1_000,
                ..Sample::default()
            },
            clock_offset_ms: 0,
            identity: None,
        };
        assert!(s.usable("b1", 2_000, 10_000));
        assert!(!s.usable("b2", 2_000, 10_000), "other boot");
        assert!(!s.usable("", 2_000, 10_000), "unknown boot");
        assert!(!s.usable("b1", 1_000, 10_000), "time did not advance");
        assert!(
            !s.usable("b1", 11_001, 10_000),
            "older than max age: 11001-1000 > 10000"
        );
    }

    #[test]
    fn second_lock_is_refused() {
        let d = temp("lock");
        let first = Lock::acquire(&d).unwrap();
        let e = Lock::acquire(&d).unwrap_err();
        assert_eq!(
            e.message(),
            format!("another cloudeye-agent holds {}", d.join("lock").display())
        );
        drop(first);
        assert!(Lock::acquire(&d).is_ok());
    }
}
