//! Credential provider: static AK/SK from the config, or temporary ones from the metadata
//! service, cached and refreshed before they expire.
//!
//! Refresh rule: a temporary credential is renewed once less than
//! `min(lifetime / 3, 10 min)` of its lifetime remains (lifetime = expiry minus the time it
//! was fetched), and at once after Cloud Eye answered 401/403 ([`Provider::invalidate`]).
//! When the metadata service fails, still-valid cached credentials keep being used and
//! the next attempt waits for a backoff (2 s doubling to 5 min); nothing sleeps, the
//! provider only records when the next attempt is allowed. All times are the caller's
//! corrected clock (local time plus the learned server offset), in Unix ms.

use crate::config::{Config, Secret};
use crate::error::{Error, Result};
use crate::metadata::{FetchError, MetadataClient};

/// An AK/SK pair, with the security token when temporary.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: Secret,
    pub security_token: Option<Secret>,
    /// Unix ms; `None` for static credentials.
    pub expires_at_ms: Option<i64>,
}

const MAX_REFRESH_MARGIN_MS: i64 = 10 * 60 * 1000;
const BACKOFF_START_MS: i64 = 2_000;
const BACKOFF_MAX_MS: i64 = 5 * 60 * 1000;

/// Where credentials come from and how they are doing (for `check` and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Static,
    /// Temporary credentials cached, valid until this Unix ms.
    Temporary {
        expires_at_ms: i64,
    },
    /// Nothing fetched yet.
    NotFetched,
    /// The last fetch failed; `retry_at_ms` is when the next one is allowed.
    Failing {
        error: String,
        retry_at_ms: i64,
    },
}

pub struct Provider {
    static_creds: Option<Credentials>,
    cached: Option<Cached>,
    next_attempt_ms: i64,
    backoff_ms: i64,
    force: bool,
    last_error: Option<Error>,
}

struct Cached {
    creds: Credentials,
    refresh_at_ms: i64,
    expires_at_ms: i64,
}

impl Provider {
    pub fn from_config(config: &Config) -> Provider {
        let static_creds = match (&config.access_key, &config.secret_key) {
            (Some(ak), Some(sk)) => Some(Credentials {
                access_key: ak.clone(),
                secret_key: sk.clone(),
                security_token: None,
                expires_at_ms: None,
            }),
            _ => None,
        };
        Provider {
            static_creds,
            cached: None,
            next_attempt_ms: i64::MIN,
            backoff_ms: BACKOFF_START_MS,
            force: false,
            last_error: None,
        }
    }

    pub fn is_static(&self) -> bool {
        self.static_creds.is_some()
    }

    /// Credentials to sign with at `now_ms`, fetching from metadata when due.
    pub fn get(&mut self, metadata: &mut MetadataClient, now_ms: i64) -> Result<Credentials> {
        if let Some(c) = &self.static_creds {
            return Ok(c.clone());
        }
        if self.refresh_due(now_ms) && (self.force || now_ms >= self.next_attempt_ms) {
            self.force = false;
            match metadata.security_key() {
                Ok(creds) => self.store(creds, now_ms),
                Err(e) => self.record_failure(e, now_ms),
            }
        }
        match &self.cached {
            Some(c) if c.expires_at_ms > now_ms => Ok(c.creds.clone()),
            _ => Err(self.last_error.clone().unwrap_or_else(|| {
                Error::network("temporary credentials expired and the metadata service has not renewed them yet")
            })),
        }
    }

    /// Cloud Eye rejected the credentials: fetch new ones on the next [`get`](Self::get),
    /// backoff or not. No effect for static credentials.
    pub fn invalidate(&mut self) {
        if self.static_creds.is_none() {
            self.force = true;
            if let Some(c) = &mut self.cached {
                c.refresh_at_ms = i64::MIN;
            }
        }
    }

    pub fn status(&self) -> Status {
        if self.static_creds.is_some() {
            return Status::Static;
        }
        match (&self.last_error, &self.cached) {
            (Some(e), _) => Status::Failing {
                error: e.message().to_string(),
                retry_at_ms: self.next_attempt_ms,
            },
            (None, Some(c)) => Status::Temporary {
                expires_at_ms: c.expires_at_ms,
            },
            (None, None) => Status::NotFetched,
        }
    }

    /// When the next metadata attempt is allowed after a failure (Unix ms).
    pub fn next_attempt_ms(&self) -> i64 {
        self.next_attempt_ms
    }

    fn refresh_due(&self, now_ms: i64) -> bool {
        self.force
            || match &self.cached {
                None => true,
                Some(c) => now_ms >= c.refresh_at_ms,
            }
    }

    fn store(&mut self, creds: Credentials, now_ms: i64) {
        // A reply without expiry cannot come from parse_security_key; treat it as 1 h.
        let expires = creds.expires_at_ms.unwrap_or(now_ms + 3_600_000);
        let margin = ((expires - now_ms) / 3).clamp(0, MAX_REFRESH_MARGIN_MS);
        self.cached = Some(Cached {
            refresh_at_ms: expires - margin,
            expires_at_ms: expires,
            creds,
        });
        self.last_error = None;
        self.backoff_ms = BACKOFF_START_MS;
        self.next_attempt_ms = i64::MIN;
    }

    fn record_failure(&mut self, e: FetchError, now_ms: i64) {
        let still_valid = self
            .cached
            .as_ref()
            .is_some_and(|c| c.expires_at_ms > now_ms);
        if still_valid {
            log::warn!(
                "cannot renew temporary credentials, using the cached ones: {}",
                e.error()
            );
        }
        self.last_error = Some(e.into());
        self.next_attempt_ms = now_ms + self.backoff_ms;
        self.backoff_ms = (self.backoff_ms * 2).min(BACKOFF_MAX_MS);
    }
}
