//! Logging set-up: env_logger to stderr; level from `log_level` or RUST_LOG.
//! (issue 6 adds `log_file` with size-capped rotation.)

use crate::config::Config;

/// Initialise the logger once, as early as possible. Safe to call twice.
pub fn init(config: Option<&Config>) {
    let level = config
        .and_then(|c| c.log_level.clone())
        .unwrap_or_else(|| "info".to_string());
    let env = env_logger::Env::default().default_filter_or(level);
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_secs()
        .format_target(false)
        .try_init();
}
