//! Where report bodies go: Cloud Eye through [`Reporter`], or a test double.

use crate::ces::Outcome;
use crate::config::Config;
use crate::error::Result;
use crate::metadata::Identity;
use crate::reporter::Reporter;

/// The network side of the agent as the loop sees it.
pub trait Sink {
    /// Who this host is (cached by the implementation).
    fn identity(&mut self) -> Result<Identity>;
    /// Send one body; bounded in time by the client's own timeouts.
    fn deliver(&mut self, body: &[u8]) -> Outcome;
    /// Server time minus local time, ms (0 until learned).
    fn clock_offset_ms(&self) -> i64;
    /// Apply a reloaded configuration. On error the old one stays in force.
    fn reconfigure(&mut self, _config: &Config) -> Result<()> {
        Ok(())
    }
}

impl Sink for Reporter {
    fn identity(&mut self) -> Result<Identity> {
        Reporter::identity(self)
    }

    fn deliver(&mut self, body: &[u8]) -> Outcome {
        Reporter::deliver(self, body)
    }

    fn clock_offset_ms(&self) -> i64 {
        Reporter::clock_offset_ms(self)
    }

    fn reconfigure(&mut self, config: &Config) -> Result<()> {
        *self = Reporter::new(config)?;
        Ok(())
    }
}
