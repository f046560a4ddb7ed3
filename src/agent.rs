//! STUB (issue 5): the `run` loop and the `once` command.

use crate::config::Config;
use crate::error::{Error, Result};

pub fn run(_config: Config, _config_path: &crate::config::ConfigSource) -> Result<()> {
    Err(Error::other("run: not implemented yet"))
}

pub fn once(_config: Config) -> Result<()> {
    Err(Error::other("once: not implemented yet"))
}
