//! Reading kernel files into one reused buffer.
//!
//! /proc files report a size of 0 or 4096, so they are read until EOF, never by stat().

use std::io::Read;
use std::path::Path;

/// A reusable read buffer; one per [`super::Collector`].
pub struct Reader {
    buf: Vec<u8>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

impl Reader {
    pub fn new() -> Reader {
        Reader {
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// The whole content of `path`, valid until the next call.
    pub fn read(&mut self, path: &Path) -> std::io::Result<&[u8]> {
        self.buf.clear();
        let mut file = std::fs::File::open(path)?;
        file.read_to_end(&mut self.buf)?;
        Ok(&self.buf)
    }

    /// Like [`Reader::read`] but logs a failure at debug level and gives `None`.
    pub fn read_or_log(&mut self, path: &Path) -> Option<&[u8]> {
        match self.read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                log::debug!("cannot read {}: {e}", path.display());
                None
            }
        }
    }
}
