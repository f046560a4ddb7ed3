//! STUB (issue 4): the Cloud Eye HTTP client: POST metric-data, classify the outcome.

use std::time::Duration;

/// What happened to one request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 201: Cloud Eye has it.
    Delivered,
    /// 429, 5xx, timeout, connection error: keep the batch and try again later.
    Retryable {
        retry_after: Option<Duration>,
        reason: String,
    },
    /// 400 and similar: this batch will never be accepted; drop it (and only it).
    Permanent {
        status: u16,
        code: String,
        message: String,
    },
    /// 401/403 even after refreshing credentials once; keep the batch.
    Unauthorized { reason: String },
}
