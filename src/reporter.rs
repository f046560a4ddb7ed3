//! STUB (issue 4): ties metadata, credentials, signing and the Cloud Eye client together.
//! The agent loop only talks to [`Reporter`]. Keep these public signatures.

use crate::ces::Outcome;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metadata::Identity;

pub struct Reporter {
    config: Config,
}

impl Reporter {
    pub fn new(config: &Config) -> Result<Reporter> {
        Ok(Reporter {
            config: config.clone(),
        })
    }

    /// The host's identity (config overrides first, then the metadata service); cached.
    pub fn identity(&mut self) -> Result<Identity> {
        let c = &self.config;
        match (&c.instance_id, &c.project_id, &c.region) {
            (Some(i), Some(p), Some(r)) => Ok(Identity {
                instance_id: i.clone(),
                project_id: p.clone(),
                region: r.clone(),
                namespace: c.namespace.clone().unwrap_or_else(|| "AGT.ECS".into()),
            }),
            _ => Err(Error::network("metadata client not implemented yet")),
        }
    }

    /// Sign and POST one request body, refreshing credentials once on 401/403.
    pub fn deliver(&mut self, _body: &[u8]) -> Outcome {
        Outcome::Retryable {
            retry_after: None,
            reason: "not implemented".into(),
        }
    }

    /// Server time minus local time, learned from the `Date` header, in ms.
    pub fn clock_offset_ms(&self) -> i64 {
        0
    }
}
