//! STUB (issue 4): credential provider — static AK/SK or temporary ones from the metadata
//! service, cached and refreshed before expiry. Keep these public names.

use crate::config::Secret;

/// An AK/SK pair, with the security token when temporary.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: Secret,
    pub security_token: Option<Secret>,
    /// Unix ms; `None` for static credentials.
    pub expires_at_ms: Option<i64>,
}
