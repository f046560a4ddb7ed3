//! Signal handling for `run`: the handlers only set flags (async-signal-safe); the loop
//! polls them. Handlers are installed without SA_RESTART so a sleep returns EINTR at once.
//!
//! SIGTERM/SIGINT ask for a clean stop, SIGHUP for a config reload. SIGXFSZ is ignored so a
//! file-size limit makes writes fail with EFBIG (handled as disk trouble) instead of killing us.

use crate::error::{Error, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: nix::libc::c_int) {
    if sig == Signal::SIGHUP as nix::libc::c_int {
        RELOAD.store(true, Ordering::SeqCst);
    } else {
        STOP.store(true, Ordering::SeqCst);
    }
}

/// Install the handlers. Call once, early in `run`.
pub fn install() -> Result<()> {
    let handler = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for (sig, action) in [
        (Signal::SIGTERM, &handler),
        (Signal::SIGINT, &handler),
        (Signal::SIGHUP, &handler),
        (Signal::SIGXFSZ, &ignore),
    ] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        unsafe { sigaction(sig, action) }
            .map_err(|e| Error::other(format!("cannot install the {sig} handler: {e}")))?;
    }
    Ok(())
}

/// Ignore SIGXFSZ only (for `once`, which has no other signal handling).
pub fn ignore_file_size_limit() {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_IGN has no handler code at all.
    let _ = unsafe { sigaction(Signal::SIGXFSZ, &ignore) };
}

/// Has a stop been requested? Stays set.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Was a reload requested since the last call?
pub fn take_reload() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}
