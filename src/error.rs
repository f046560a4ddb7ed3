//! The agent's error type: a one-line, human-readable message plus a coarse kind.
//!
//! Errors are shown to operators verbatim, so every message says what failed and, where
//! possible, how to fix it. Messages never contain secrets (SK, security token).

use std::fmt;

/// Coarse classification used by callers that must react differently (exit codes, retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad configuration or command line: fatal, the operator must fix it.
    Config,
    /// Reading or writing local files failed.
    Io,
    /// Talking to the metadata service or Cloud Eye failed.
    Network,
    /// Anything else.
    Other,
}

/// An error with a message fit for one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub fn config(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Config, message)
    }

    pub fn io(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Io, message)
    }

    pub fn network(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Network, message)
    }

    pub fn other(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Other, message)
    }

    /// An I/O error on `path`, e.g. "cannot read /etc/x: Permission denied (os error 13)".
    pub fn io_at(action: &str, path: &std::path::Path, err: &std::io::Error) -> Error {
        Error::io(format!("cannot {action} {}: {err}", path.display()))
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix the message with what the caller was doing.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
