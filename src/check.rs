//! STUB (issue 6): `cloudeye-agent check`.

use crate::config::{Config, ConfigSource};
use crate::error::{Error, Result};

/// Returns true when every step passed.
pub fn check(_source: &ConfigSource, _config: Result<Config>, _json: bool) -> Result<bool> {
    Err(Error::other("check: not implemented yet"))
}
