//! Ties metadata, credentials, signing and the Cloud Eye client together. The agent loop
//! only talks to [`Reporter`]: identity, `deliver(body) -> Outcome`, the learned clock
//! offset, and for `check` a signed probe and the credential status.
//!
//! Retries inside one `deliver`: at most one after a "signature expired" 401 when the
//! server's `Date` showed a new clock offset, and at most one after a 401/403 with freshly
//! fetched temporary credentials. Everything else is the caller's (spool/backoff) call.

use crate::ces::{self, CesClient, Outcome, Reply, Timeouts};
use crate::config::Config;
use crate::credentials::{self, Credentials, Provider};
use crate::error::{Error, ErrorKind, Result};
use crate::metadata::{Identity, MetadataClient};
use std::time::Duration;

/// Offsets below this are Date-header rounding noise and are ignored.
const MIN_OFFSET_MS: i64 = 2_000;
/// Skew worth a warning (Cloud Eye's gateway refuses signatures 15 min off).
const WARN_OFFSET_MS: i64 = 60_000;

/// Result of [`Reporter::probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The gateway accepted the signature; Cloud Eye then answered `status`
    /// (normally 400 `ces.0001`, "empty content").
    AuthOk { status: u16, detail: String },
    /// 401/403 even after renewing credentials.
    AuthFailed { status: u16, reason: String },
    /// No usable answer (network, credentials unavailable, 5xx...).
    Failed { reason: String },
}

pub struct Reporter {
    config: Config,
    metadata: MetadataClient,
    provider: Provider,
    identity: Option<Identity>,
    ces: Option<CesClient>,
    timeouts: Timeouts,
    /// From Cloud Eye replies once one arrived (it is the clock that judges signatures).
    ces_offset_ms: Option<i64>,
    warned_skew: bool,
}

impl Reporter {
    pub fn new(config: &Config) -> Result<Reporter> {
        Reporter::with_timeouts(
            config,
            crate::metadata::DEFAULT_TIMEOUT,
            Timeouts::for_collect_interval(config.collect_interval),
        )
    }

    /// Like [`new`](Self::new) with explicit timeouts (tests use short ones).
    pub fn with_timeouts(config: &Config, metadata: Duration, ces: Timeouts) -> Result<Reporter> {
        let mut reporter = Reporter {
            config: config.clone(),
            metadata: MetadataClient::with_timeout(&config.metadata_url, metadata),
            provider: Provider::from_config(config),
            identity: None,
            ces: None,
            timeouts: ces,
            ces_offset_ms: None,
            warned_skew: false,
        };
        // Catch a bad endpoint, proxy or ca_file at startup when the region is known.
        if let Some(region) = config.region.clone() {
            reporter.ces = Some(CesClient::new(config, &config.endpoint_for(&region), ces)?);
        }
        Ok(reporter)
    }

    /// The host's identity (config overrides first, then the metadata service); cached.
    /// With instance_id, project_id and region all configured the metadata service is not
    /// asked (namespace: config, else `AGT.ECS`).
    pub fn identity(&mut self) -> Result<Identity> {
        if let Some(id) = &self.identity {
            return Ok(id.clone());
        }
        let c = &self.config;
        let id = match (&c.instance_id, &c.project_id, &c.region) {
            (Some(i), Some(p), Some(r)) => Identity {
                instance_id: i.clone(),
                project_id: p.clone(),
                region: r.clone(),
                namespace: c.namespace.clone().unwrap_or_else(|| "AGT.ECS".into()),
            },
            _ => {
                let id = self.metadata.identity(&self.config);
                self.note_metadata_offset();
                id.map_err(|e| e.context("cannot determine this host's identity"))?
            }
        };
        self.identity = Some(id.clone());
        Ok(id)
    }

    /// Sign and POST one request body, refreshing credentials once on 401/403.
    pub fn deliver(&mut self, body: &[u8]) -> Outcome {
        match self.exchange(body) {
            Err(outcome) => outcome,
            Ok(reply) => ces::classify(&reply),
        }
    }

    /// POST `[]` signed: Cloud Eye answers 400 `ces.0001` only after authentication, so
    /// this tells whether credentials, signature and clock are accepted.
    pub fn probe(&mut self) -> Probe {
        match self.exchange(b"[]") {
            Err(Outcome::Unauthorized { reason }) => Probe::AuthFailed { status: 0, reason },
            Err(Outcome::Retryable { reason, .. }) => Probe::Failed { reason },
            Err(other) => Probe::Failed {
                reason: format!("{other:?}"),
            },
            Ok(reply) => match ces::classify(&reply) {
                Outcome::Unauthorized { reason } => Probe::AuthFailed {
                    status: reply.status,
                    reason,
                },
                Outcome::Retryable { reason, .. } => Probe::Failed { reason },
                Outcome::Delivered => Probe::AuthOk {
                    status: reply.status,
                    detail: "accepted".into(),
                },
                Outcome::Permanent {
                    status,
                    code,
                    message,
                } => Probe::AuthOk {
                    status,
                    detail: format!("{code} {message}").trim().to_string(),
                },
            },
        }
    }

    /// Server time minus local time, learned from the `Date` header, in ms (0 when the
    /// difference is below Date's rounding noise).
    pub fn clock_offset_ms(&self) -> i64 {
        self.ces_offset_ms
            .or_else(|| self.metadata.clock_offset_ms().map(centre))
            .filter(|o| o.abs() >= MIN_OFFSET_MS)
            .unwrap_or(0)
    }

    /// Local wall clock corrected by [`clock_offset_ms`](Self::clock_offset_ms).
    pub fn now_ms(&self) -> i64 {
        crate::clock::wall_ms() + self.clock_offset_ms()
    }

    pub fn credentials_status(&self) -> credentials::Status {
        self.provider.status()
    }

    /// Current credentials (fetching them if due), e.g. for `check`.
    pub fn credentials(&mut self) -> Result<Credentials> {
        let now = self.now_ms();
        let result = self.provider.get(&mut self.metadata, now);
        self.note_metadata_offset();
        result
    }

    /// The metadata client, for `check`'s token probe and raw fetches.
    pub fn metadata(&mut self) -> &mut MetadataClient {
        &mut self.metadata
    }

    /// Sign and send with the in-call retries; `Err` is an outcome decided without a
    /// usable reply.
    fn exchange(&mut self, body: &[u8]) -> std::result::Result<Reply, Outcome> {
        let id = self.identity().map_err(retryable)?;
        self.ensure_client(&id).map_err(retryable)?;
        let mut reply = self.send_once(&id, body)?;
        if ces::is_signature_expired(&reply) && self.offset_moved(&reply) {
            self.learn_offset(&reply);
            reply = self.send_once(&id, body)?;
        }
        if matches!(reply.status, 401 | 403) && !self.provider.is_static() {
            log::info!(
                "Cloud Eye answered HTTP {}; renewing temporary credentials and retrying once",
                reply.status
            );
            self.provider.invalidate();
            reply = self.send_once(&id, body)?;
        }
        Ok(reply)
    }

    fn send_once(&mut self, id: &Identity, body: &[u8]) -> std::result::Result<Reply, Outcome> {
        let creds = self.credentials().map_err(|e| credential_outcome(&e))?;
        let now = self.now_ms();
        let Some(client) = &self.ces else {
            return Err(retryable(Error::other("Cloud Eye client not set up")));
        };
        let reply = client
            .post_metric_data(&id.project_id, &creds, body, now)
            .map_err(|reason| Outcome::Retryable {
                retry_after: None,
                reason,
            })?;
        if !ces::is_signature_expired(&reply) {
            self.learn_offset(&reply);
        }
        Ok(reply)
    }

    fn ensure_client(&mut self, id: &Identity) -> Result<()> {
        if self.ces.is_none() {
            let endpoint = self.config.endpoint_for(&id.region);
            self.ces = Some(CesClient::new(&self.config, &endpoint, self.timeouts)?);
        }
        Ok(())
    }

    fn reply_offset(reply: &Reply) -> Option<i64> {
        reply.date_ms.map(|d| centre(d - crate::clock::wall_ms()))
    }

    fn offset_moved(&self, reply: &Reply) -> bool {
        match Self::reply_offset(reply) {
            Some(new) => (new - self.clock_offset_ms()).abs() >= MIN_OFFSET_MS,
            None => false,
        }
    }

    fn learn_offset(&mut self, reply: &Reply) {
        if let Some(offset) = Self::reply_offset(reply) {
            self.ces_offset_ms = Some(offset);
            self.warn_skew(offset);
        }
    }

    fn note_metadata_offset(&mut self) {
        if self.ces_offset_ms.is_none() {
            if let Some(o) = self.metadata.clock_offset_ms() {
                self.warn_skew(centre(o));
            }
        }
    }

    fn warn_skew(&mut self, offset: i64) {
        if offset.abs() > WARN_OFFSET_MS && !self.warned_skew {
            self.warned_skew = true;
            log::warn!(
                "this host's clock is {:.1} s {} the server's; correcting request times and collect_time by the offset (fix NTP on this host)",
                offset.abs() as f64 / 1000.0,
                if offset > 0 { "behind" } else { "ahead of" }
            );
        }
    }
}

/// `Date` has whole seconds: add half a second so the offset is centred on the truth.
fn centre(raw_offset_ms: i64) -> i64 {
    raw_offset_ms + 500
}

fn retryable(e: Error) -> Outcome {
    Outcome::Retryable {
        retry_after: None,
        reason: e.message().to_string(),
    }
}

/// Credentials unavailable: the missing agency is an authorization problem, the rest
/// (metadata down) is worth retrying.
fn credential_outcome(e: &Error) -> Outcome {
    if e.kind() == ErrorKind::Config {
        Outcome::Unauthorized {
            reason: e.message().to_string(),
        }
    } else {
        retryable(e.clone())
    }
}
