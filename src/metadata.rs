//! Instance metadata client (OpenStack-style service at `metadata_url`): the session
//! token flow, `/openstack/latest/securitykey` (temporary AK/SK) and
//! `/openstack/latest/meta_data.json` (who this host is), plus the [`Identity`] built from
//! it with config overrides.
//!
//! Token flow (as the SDKs do it): `PUT /meta-data/latest/api/token` with a TTL header;
//! 404/405/503 mean "no token support" and we continue without; otherwise every GET
//! carries `X-Metadata-Token`. A 401 that is not the agency error gets one new token and
//! one retry. Replies are read with a size cap and short timeouts, so a broken or silent
//! metadata service costs a bounded amount of memory and time.

use crate::ces::{parse_http_date, read_body_capped};
use crate::config::{Config, Secret};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use serde_json::Value;
use std::time::Duration;

pub const TOKEN_PATH: &str = "/meta-data/latest/api/token";
pub const SECURITY_KEY_PATH: &str = "/openstack/latest/securitykey";
pub const META_DATA_PATH: &str = "/openstack/latest/meta_data.json";
/// Body of the 401 the service returns when the instance has no IAM agency.
pub const AGENCY_ERROR: &str = "Please configure Cloud Service Agency first";
/// Largest metadata reply we read; real ones are a few KiB.
pub const MAX_REPLY_BYTES: u64 = 64 * 1024;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
const TOKEN_TTL_SECS: u64 = 21_600;
/// After "no token support" we ask again a day later (the service may be upgraded).
const TOKEN_REPROBE_MS: i64 = 24 * 3600 * 1000;

/// Who this host is to Cloud Eye. `once` saves it with its state, so a run that finds the
/// metadata service down can still encode (and spool) what it collected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub instance_id: String,
    pub project_id: String,
    pub region: String,
    /// `AGT.ECS`, `SERVICE.BMS` or the configured namespace.
    pub namespace: String,
}

/// What the token endpoint said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSupport {
    /// Not asked yet.
    Unknown,
    /// The service issues session tokens; GETs carry one.
    Supported,
    /// 404, 405 or 503 on the token PUT: GETs go without a token.
    Unsupported,
}

/// Why the security key could not be had; `NoAgency` is the one operators must fix in
/// the console, so callers (e.g. `check`) can tell it apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    NoAgency(Error),
    Failed(Error),
}

impl FetchError {
    pub fn error(&self) -> &Error {
        match self {
            FetchError::NoAgency(e) | FetchError::Failed(e) => e,
        }
    }
}

impl From<FetchError> for Error {
    fn from(e: FetchError) -> Error {
        match e {
            FetchError::NoAgency(e) | FetchError::Failed(e) => e,
        }
    }
}

/// The fields of meta_data.json the agent uses; each may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaData {
    pub uuid: Option<String>,
    pub project_id: Option<String>,
    pub region_id: Option<String>,
    pub availability_zone: Option<String>,
    /// `meta["metering.resourcespeccode"]`; contains `physical` on bare metal.
    pub resource_spec_code: Option<String>,
}

enum TokenState {
    Unknown,
    Have(Secret),
    Unsupported { since_ms: i64 },
}

pub struct MetadataClient {
    base: String,
    agent: ureq::Agent,
    token: TokenState,
    offset_ms: Option<i64>,
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl MetadataClient {
    pub fn new(base_url: &str) -> MetadataClient {
        MetadataClient::with_timeout(base_url, DEFAULT_TIMEOUT)
    }

    pub fn with_timeout(base_url: &str, timeout: Duration) -> MetadataClient {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Link-local service: never through a proxy from the environment.
            .proxy(None)
            .max_redirects(0)
            .timeout_connect(Some(timeout))
            .timeout_global(Some(timeout))
            .user_agent(crate::version::user_agent())
            .build()
            .new_agent();
        MetadataClient {
            base: base_url.trim_end_matches('/').to_string(),
            agent,
            token: TokenState::Unknown,
            offset_ms: None,
        }
    }

    /// Server `Date` minus local time from the last reply that had one.
    pub fn clock_offset_ms(&self) -> Option<i64> {
        self.offset_ms
    }

    pub fn token_support(&self) -> TokenSupport {
        match self.token {
            TokenState::Unknown => TokenSupport::Unknown,
            TokenState::Have(_) => TokenSupport::Supported,
            TokenState::Unsupported { .. } => TokenSupport::Unsupported,
        }
    }

    /// Ask for a fresh session token now (for `check`).
    pub fn probe_token(&mut self) -> Result<TokenSupport> {
        self.refresh_token()?;
        Ok(self.token_support())
    }

    /// Temporary credentials from `securitykey`.
    pub fn security_key(&mut self) -> std::result::Result<Credentials, FetchError> {
        let reply = self.get(SECURITY_KEY_PATH).map_err(FetchError::Failed)?;
        if reply.status == 401 && contains(&reply.body, AGENCY_ERROR) {
            return Err(FetchError::NoAgency(agency_error()));
        }
        check_status(SECURITY_KEY_PATH, &reply).map_err(FetchError::Failed)?;
        parse_security_key(&reply.body).map_err(FetchError::Failed)
    }

    /// The parsed meta_data.json.
    pub fn meta_data(&mut self) -> Result<MetaData> {
        let reply = self.get(META_DATA_PATH)?;
        check_status(META_DATA_PATH, &reply)?;
        parse_meta_data(&reply.body)
    }

    /// meta_data.json turned into an [`Identity`], config overrides applied.
    pub fn identity(&mut self, config: &Config) -> Result<Identity> {
        let meta = self.meta_data()?;
        identity_from(config, &meta)
    }

    fn get(&mut self, path: &str) -> Result<Reply> {
        if self.token_needed() {
            self.refresh_token()?;
        }
        let reply = self.send_get(path)?;
        let rejected_token = reply.status == 401 && !contains(&reply.body, AGENCY_ERROR);
        if rejected_token && matches!(self.token, TokenState::Have(_)) {
            self.refresh_token()?;
            return self.send_get(path);
        }
        Ok(reply)
    }

    fn token_needed(&self) -> bool {
        match self.token {
            TokenState::Unknown => true,
            TokenState::Have(_) => false,
            TokenState::Unsupported { since_ms } => {
                crate::clock::wall_ms() - since_ms > TOKEN_REPROBE_MS
            }
        }
    }

    fn refresh_token(&mut self) -> Result<()> {
        let url = format!("{}{TOKEN_PATH}", self.base);
        let result = self
            .agent
            .put(&url)
            .header("X-Metadata-Token-Ttl-Seconds", TOKEN_TTL_SECS.to_string())
            .send_empty();
        let reply = self.finish(&url, result)?;
        match reply.status {
            200 => {
                let token = String::from_utf8_lossy(&reply.body).trim().to_string();
                if token.is_empty() || token.contains(['\r', '\n']) {
                    return Err(Error::network(format!(
                        "metadata service {url} returned an unusable session token"
                    )));
                }
                self.token = TokenState::Have(Secret::new(token));
            }
            404 | 405 | 503 => {
                self.token = TokenState::Unsupported {
                    since_ms: crate::clock::wall_ms(),
                }
            }
            status => {
                return Err(Error::network(format!(
                    "metadata service {url}: session token request answered HTTP {status}"
                )))
            }
        }
        Ok(())
    }

    fn send_get(&mut self, path: &str) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        if let TokenState::Have(token) = &self.token {
            req = req.header("X-Metadata-Token", token.expose());
        }
        let result = req.call();
        self.finish(&url, result)
    }

    fn finish(
        &mut self,
        url: &str,
        result: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply> {
        let mut resp = result.map_err(|e| {
            Error::network(format!(
                "metadata service {url} unreachable: {}",
                describe(&e)
            ))
        })?;
        if let Some(date) = resp.headers().get("date").and_then(|v| v.to_str().ok()) {
            if let Some(server_ms) = parse_http_date(date) {
                self.offset_ms = Some(server_ms - crate::clock::wall_ms());
            }
        }
        let status = resp.status().as_u16();
        let body = read_body_capped(resp.body_mut(), MAX_REPLY_BYTES)
            .map_err(|e| e.context(format!("metadata service {url}")))?;
        Ok(Reply { status, body })
    }
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".to_string(),
        other => other.to_string(),
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn check_status(path: &str, reply: &Reply) -> Result<()> {
    if reply.status == 200 {
        return Ok(());
    }
    let snippet: String = String::from_utf8_lossy(&reply.body)
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Err(Error::network(format!(
        "metadata service {path} answered HTTP {}: {}",
        reply.status,
        snippet.trim()
    )))
}

/// The operator-facing message for an instance without the Cloud Eye agency.
pub fn agency_error() -> Error {
    Error::config(
        "the metadata service refuses temporary credentials because this server has no IAM agency \
         (\"Please configure Cloud Service Agency first\"). Attach the agency \"cesagency\" \
         (delegated to the cloud service op_svc_ces): in the Cloud Eye console open Server Monitoring \
         and click Configure, or select \"cesagency\" under Agency when creating the server; \
         alternatively set access_key and secret_key in the config file",
    )
}

/// `{"credential": {"access", "secret", "securitytoken", "expires_at"}}`.
pub fn parse_security_key(body: &[u8]) -> Result<Credentials> {
    let bad =
        |what: &str| Error::network(format!("metadata securitykey reply is not usable: {what}"));
    let value: Value = serde_json::from_slice(body).map_err(|_| bad("not valid JSON"))?;
    let cred = value
        .get("credential")
        .ok_or_else(|| bad("no \"credential\" object"))?;
    let field = |name: &str| {
        cred.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(&format!("missing \"{name}\"")))
    };
    let expires = field("expires_at")?;
    let expires_at_ms = parse_rfc3339_ms(expires).ok_or_else(|| {
        bad(&format!(
            "\"expires_at\" is not an RFC 3339 time: {expires:.40}"
        ))
    })?;
    Ok(Credentials {
        access_key: field("access")?.to_string(),
        secret_key: Secret::new(field("secret")?),
        security_token: Some(Secret::new(field("securitytoken")?)),
        expires_at_ms: Some(expires_at_ms),
    })
}

pub fn parse_meta_data(body: &[u8]) -> Result<MetaData> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| Error::network("metadata meta_data.json reply is not valid JSON"))?;
    if !value.is_object() {
        return Err(Error::network(
            "metadata meta_data.json reply is not a JSON object",
        ));
    }
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(MetaData {
        uuid: text(value.get("uuid")),
        project_id: text(value.get("project_id")),
        region_id: text(value.get("region_id")),
        availability_zone: text(value.get("availability_zone")),
        resource_spec_code: text(
            value
                .get("meta")
                .and_then(|m| m.get("metering.resourcespeccode")),
        ),
    })
}

/// Config values win; then meta_data.json. Region: config, `region_id`, then the
/// availability zone without its trailing letter (`cn-north-4a` -> `cn-north-4`).
pub fn identity_from(config: &Config, meta: &MetaData) -> Result<Identity> {
    let missing = |what: &str, key: &str, field: &str| {
        Error::config(format!(
            "{what} unknown: meta_data.json has no \"{field}\" and the config file sets no \"{key}\""
        ))
    };
    let region = config
        .region
        .clone()
        .or_else(|| meta.region_id.clone())
        .or_else(|| meta.availability_zone.as_deref().and_then(region_from_az));
    let namespace = config
        .namespace
        .clone()
        .unwrap_or_else(|| namespace_for(meta.resource_spec_code.as_deref()).to_string());
    Ok(Identity {
        instance_id: config
            .instance_id
            .clone()
            .or_else(|| meta.uuid.clone())
            .ok_or_else(|| missing("instance id", "instance_id", "uuid"))?,
        project_id: config
            .project_id
            .clone()
            .or_else(|| meta.project_id.clone())
            .ok_or_else(|| missing("project id", "project_id", "project_id"))?,
        region: region.ok_or_else(|| missing("region", "region", "region_id"))?,
        namespace,
    })
}

/// `SERVICE.BMS` when the spec code says bare metal, else `AGT.ECS`.
pub fn namespace_for(resource_spec_code: Option<&str>) -> &'static str {
    match resource_spec_code {
        Some(code) if code.contains("physical") => "SERVICE.BMS",
        _ => "AGT.ECS",
    }
}

fn region_from_az(az: &str) -> Option<String> {
    let trimmed = az.strip_suffix(|c: char| c.is_ascii_lowercase())?;
    (!trimmed.is_empty() && trimmed.ends_with(|c: char| c.is_ascii_digit()))
        .then(|| trimmed.to_string())
}

/// RFC 3339 time to Unix ms: `2020-01-08T03:50:07.574000Z`, with or without fractional
/// seconds, `Z` or a numeric offset (`+08:00`). `None` for anything else.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_ms = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms_digits: String = f[..digits].chars().chain("000".chars()).take(3).collect();
        frac_ms = ms_digits.parse::<i64>().ok()?;
        rest = &f[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ => parse_offset(rest)?,
    };
    let days = crate::clock::days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    Some(secs * 1000 + frac_ms)
}

fn parse_offset(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' || !matches!(b[0], b'+' | b'-') {
        return None;
    }
    let h: i64 = s.get(1..3)?.parse().ok()?;
    let m: i64 = s.get(4..6)?.parse().ok()?;
    let sign = if b[0] == b'-' { -1 } else { 1 };
    Some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_variants() {
        // 2020-01-08 = day 18269 since 1970 (50 years incl. 12 leap days: 50*365+12 = 18262,
        // plus 7 days into January) -> 18269*86400 = 1578441600; +03:50:07 = 13807 s.
        let base = 1_578_441_600_000 + 13_807_000;
        assert_eq!(
            parse_rfc3339_ms("2020-01-08T03:50:07.574000Z"),
            Some(base + 574)
        );
        assert_eq!(parse_rfc3339_ms("2020-01-08T03:50:07Z"), Some(base));
        assert_eq!(parse_rfc3339_ms("2020-01-08T03:50:07.5Z"), Some(base + 500));
        assert_eq!(
            parse_rfc3339_ms("2020-01-08T03:50:07.5749999Z"),
            Some(base + 574)
        );
        // 11:50:07+08:00 is 03:50:07Z.
        assert_eq!(parse_rfc3339_ms("2020-01-08T11:50:07+08:00"), Some(base));
        for bad in [
            "",
            "2020-01-08",
            "2020-01-08T03:50:07",
            "2020-13-08T03:50:07Z",
            "2020-01-08T03:50:07.Z",
            "x020-01-08T03:50:07Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn region_from_zone() {
        assert_eq!(region_from_az("cn-north-4a").as_deref(), Some("cn-north-4"));
        assert_eq!(
            region_from_az("ap-southeast-1b").as_deref(),
            Some("ap-southeast-1")
        );
        assert_eq!(region_from_az("cn-north-4"), None);
        assert_eq!(region_from_az("a"), None);
    }

    #[test]
    fn identity_rules() {
        let meta = parse_meta_data(
            br#"{"uuid":"u1","project_id":"p1","availability_zone":"cn-north-4a",
                 "meta":{"metering.resourcespeccode":"physical.s3.large"}}"#,
        )
        .unwrap();
        let id = identity_from(&Config::default(), &meta).unwrap();
        assert_eq!(
            id,
            Identity {
                instance_id: "u1".into(),
                project_id: "p1".into(),
                region: "cn-north-4".into(),
                namespace: "SERVICE.BMS".into()
            }
        );
        let config = Config {
            region: Some("eu-west-101".into()),
            instance_id: Some("mine".into()),
            namespace: Some("MY.NS".into()),
            ..Config::default()
        };
        let id = identity_from(&config, &meta).unwrap();
        assert_eq!(
            (
                id.instance_id.as_str(),
                id.region.as_str(),
                id.namespace.as_str()
            ),
            ("mine", "eu-west-101", "MY.NS")
        );
        let sparse =
            parse_meta_data(br#"{"uuid":"u2","project_id":"p2","region_id":"r9"}"#).unwrap();
        let id = identity_from(&Config::default(), &sparse).unwrap();
        assert_eq!(
            (id.region.as_str(), id.namespace.as_str()),
            ("r9", "AGT.ECS")
        );
        let e = identity_from(&Config::default(), &MetaData::default()).unwrap_err();
        assert!(e.message().contains("instance_id"), "{e}");
    }

    #[test]
    fn security_key_parsing_and_redaction() {
        let c = parse_security_key(
            br#"{"credential":{"access":"ak","expires_at":"2020-01-08T03:50:07.574000Z","secret":"sk-SECRET","securitytoken":"st-TOKEN"}}"#,
        )
        .unwrap();
        assert_eq!(c.access_key, "ak");
        assert_eq!(c.expires_at_ms, Some(1_578_441_600_000 + 13_807_574));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("SECRET") && !dbg.contains("TOKEN"), "{dbg}");
        assert!(parse_security_key(b"{\"credential\":{}}").is_err());
        assert!(parse_security_key(b"garbage").is_err());
    }
}
