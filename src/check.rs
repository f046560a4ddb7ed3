//! `cloudeye-agent check`: run every step a report needs and say what to fix.
//!
//! The steps are plain functions over a [`CheckEnv`] (the outside world: metadata
//! service, Cloud Eye, the spool), so the step logic and the output are tested against a
//! fake environment; [`RealEnv`] talks HTTP with ureq. Each step yields one
//! [`StepResult`]; a step whose input came from a failed step is `skip`. Exit status 0
//! means no step failed (warnings pass).
//!
//! Nothing written here ever contains the SK, the security token or the metadata token.

use crate::config::{Config, ConfigSource, Secret};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::logging::{days_from_civil, format_utc};
use crate::metadata::Identity;
use serde::Serialize;
use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

/// The body the metadata service sends when no agency is attached to the server.
pub const NO_AGENCY_MESSAGE: &str = "Please configure Cloud Service Agency first";
/// Warn when the local clock is further than this from Cloud Eye's.
pub const CLOCK_WARN_SECS: i64 = 60;
/// Cloud Eye's gateway refuses signatures dated further than this from its time.
pub const CLOCK_FAIL_SECS: i64 = 15 * 60;
/// The agent signs and stamps with the server's time when the clock is off, so a large
/// offset is a warning, not a failure.
pub const AGENT_CORRECTS_CLOCK: bool = true;
/// Timeout of every metadata request.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of every Cloud Eye request.
pub const CES_TIMEOUT: Duration = Duration::from_secs(10);
/// No reply body read by `check` is longer than this.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

const METADATA_FIX: &str = "on an ECS/BMS the metadata service is http://169.254.169.254: check the route to it and that the security group allows outbound TCP 80 to 169.254.0.0/16; off Huawei Cloud set access_key, secret_key, project_id, instance_id and region in the config";
const AGENCY_FIX: &str = "attach the agency cesagency (it gives the internal account op_svc_ces the CES Administrator role): on Cloud Eye's Server Monitoring page click Configure, or pick cesagency under Agency when creating the server (existing server: ECS console, Management Information, Agency); if cesagency is missing, create it in IAM (Common account, delegated account op_svc_ces, CES Administrator); or set access_key and secret_key in the config";

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Status {
    /// The mark printed in front of the step.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepResult {
    pub step: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do about a failure or warning.
    pub fix: Option<String>,
}

impl StepResult {
    fn new(step: &'static str, status: Status, detail: impl Into<String>) -> StepResult {
        StepResult {
            step,
            status,
            detail: detail.into(),
            fix: None,
        }
    }
    fn ok(step: &'static str, detail: impl Into<String>) -> StepResult {
        StepResult::new(step, Status::Ok, detail)
    }
    fn skip(step: &'static str, detail: impl Into<String>) -> StepResult {
        StepResult::new(step, Status::Skip, detail)
    }
    fn fail(step: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> StepResult {
        StepResult::new(step, Status::Fail, detail).with_fix(fix)
    }
    fn warn(step: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> StepResult {
        StepResult::new(step, Status::Warn, detail).with_fix(fix)
    }
    fn with_fix(mut self, fix: impl Into<String>) -> StepResult {
        self.fix = Some(fix.into());
        self
    }
    fn passed(&self) -> bool {
        self.status != Status::Fail
    }
}

/// An HTTP reply as `check` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    /// At most [`MAX_BODY_BYTES`], lossily decoded.
    pub body: String,
    /// The `Date` header, if any.
    pub date: Option<String>,
    /// Local wall-clock time (Unix ms) when the reply arrived.
    pub received_ms: i64,
}

/// Why no HTTP reply came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetErrorKind {
    /// The name did not resolve.
    Dns,
    /// Connection refused, unreachable or reset.
    Connect,
    Timeout,
    /// The TLS handshake or certificate verification failed.
    Tls,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetError {
    pub kind: NetErrorKind,
    pub message: String,
}

impl NetError {
    pub fn new(kind: NetErrorKind, message: impl Into<String>) -> NetError {
        NetError {
            kind,
            message: message.into(),
        }
    }
}

pub type NetResult = std::result::Result<HttpReply, NetError>;

/// Name resolution and a plain GET of the endpoint.
#[derive(Debug, Clone)]
pub struct EndpointProbe {
    /// The addresses the host resolved to.
    pub resolved: std::result::Result<Vec<String>, NetError>,
    /// The reply to `GET {endpoint}/`; any status proves TCP and TLS work.
    pub reply: NetResult,
}

/// What is waiting in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolSummary {
    pub batches: u64,
    pub bytes: u64,
    /// Unix ms of the oldest batch.
    pub oldest_ms: Option<i64>,
}

/// Everything outside the process that `check` touches.
pub trait CheckEnv {
    /// Local wall-clock time, Unix ms.
    fn now_ms(&self) -> i64;
    /// `PUT /meta-data/latest/api/token`.
    fn metadata_token_probe(&mut self) -> NetResult;
    /// `GET /openstack/latest/securitykey`.
    fn security_key(&mut self, token: Option<&Secret>) -> NetResult;
    /// `GET /openstack/latest/meta_data.json`.
    fn meta_data(&mut self, token: Option<&Secret>) -> NetResult;
    /// Resolve the endpoint's host and GET its root.
    fn endpoint_probe(&mut self, endpoint: &str) -> EndpointProbe;
    /// POST `[]` to metric-data, signed with `credentials` and dated `sdk_date`.
    fn signed_probe(
        &mut self,
        endpoint: &str,
        project_id: &str,
        credentials: &Credentials,
        sdk_date: &str,
    ) -> NetResult;
    /// The spool under `dir`; `Ok(None)` when it does not exist yet.
    fn spool_summary(&mut self, dir: &Path) -> io::Result<Option<SpoolSummary>>;
}

/// Run the checks, print them (text or JSON) and say whether every step passed.
pub fn check(source: &ConfigSource, config: Result<Config>, json: bool) -> Result<bool> {
    let mut env = RealEnv::new(config.as_ref().ok().unwrap_or(&Config::default()));
    let results = run_steps(source, &config, &mut env);
    let out = if json {
        render_json(&results)?
    } else {
        render_text(&results)
    };
    print!("{out}");
    Ok(results.iter().all(StepResult::passed))
}

/// Identity and how the host was recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundIdentity {
    pub identity: Identity,
    /// "ECS", "BMS", or "unknown" when the metadata service was not asked.
    pub kind: &'static str,
}

/// What earlier steps hand to later ones.
#[derive(Default)]
struct Found {
    metadata_ok: bool,
    token: Option<Secret>,
    credentials: Option<Credentials>,
    identity: Option<FoundIdentity>,
    endpoint: Option<String>,
    endpoint_ok: bool,
    /// Server minus local time, ms, from the endpoint probe.
    offset_ms: Option<i64>,
    endpoint_reply_had_date: bool,
}

/// Every step, in order.
pub fn run_steps(
    source: &ConfigSource,
    config: &Result<Config>,
    env: &mut dyn CheckEnv,
) -> Vec<StepResult> {
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            let mut out = vec![config_failed(source, e)];
            out.extend(
                LATER_STEPS
                    .iter()
                    .map(|s| StepResult::skip(s, "needs a valid config")),
            );
            return out;
        }
    };
    let mut found = Found::default();
    vec![
        config_ok(source),
        step_proc(config),
        step_metadata(config, env, &mut found),
        step_agency(config, env, &mut found),
        step_credentials(config, env, &mut found),
        step_identity(config, env, &mut found),
        step_endpoint(config, env, &mut found),
        step_signed_request(config, env, &mut found),
        step_clock(&found, AGENT_CORRECTS_CLOCK),
        step_spool(config, env),
    ]
}

const LATER_STEPS: [&str; 9] = [
    "proc",
    "metadata",
    "agency",
    "credentials",
    "identity",
    "endpoint",
    "signed_request",
    "clock",
    "spool",
];

fn config_ok(source: &ConfigSource) -> StepResult {
    let path = source.path.display();
    if !source.explicit && !source.path.exists() {
        return StepResult::ok(
            "config",
            format!("{path} does not exist: using the defaults"),
        );
    }
    StepResult::ok("config", format!("{path} parsed"))
}

fn config_failed(source: &ConfigSource, e: &Error) -> StepResult {
    let message = e.message();
    // Errors that know their fix end with "; run: COMMAND" (see config::check_private_file).
    if let Some((what, command)) = message.split_once("; run: ") {
        return StepResult::fail("config", what, format!("run: {command}"));
    }
    let fix = if message.contains("Permission denied") {
        "run check as root or as the agent's user, which must be able to read the file".to_string()
    } else if message.contains("No such file") {
        format!(
            "create {} (every key and its default is in config.example.json) or point --config at the right file",
            source.path.display()
        )
    } else {
        "correct the file; config.example.json lists every key with its default".to_string()
    };
    StepResult::fail("config", message, fix)
}

fn step_proc(config: &Config) -> StepResult {
    let root = &config.proc_root;
    for (name, must_start) in [("stat", "cpu"), ("meminfo", "MemTotal:")] {
        let path = root.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) if text.starts_with(must_start) => {}
            Ok(_) => {
                return StepResult::fail(
                    "proc",
                    format!("{} does not look like procfs", path.display()),
                    "set proc_root to a mounted procfs (/proc, or e.g. /host/proc in a container)",
                )
            }
            Err(e) => {
                return StepResult::fail(
                    "proc",
                    format!("cannot read {}: {e}", path.display()),
                    "mount procfs there or set proc_root to where it is mounted",
                )
            }
        }
    }
    StepResult::ok(
        "proc",
        format!("{0}/stat and {0}/meminfo readable", root.display()),
    )
}

/// True when the config alone names credentials and identity.
fn metadata_needed(config: &Config) -> bool {
    !config.has_static_credentials()
        || config.instance_id.is_none()
        || config.project_id.is_none()
        || config.region.is_none()
}

fn step_metadata(config: &Config, env: &mut dyn CheckEnv, found: &mut Found) -> StepResult {
    const STEP: &str = "metadata";
    if !metadata_needed(config) {
        return StepResult::skip(
            STEP,
            "not needed: credentials and identity are in the config",
        );
    }
    let url = &config.metadata_url;
    match env.metadata_token_probe() {
        Ok(r) if r.status == 200 && !r.body.trim().is_empty() => {
            found.metadata_ok = true;
            found.token = Some(Secret::new(r.body.trim()));
            StepResult::ok(STEP, format!("{url} reachable; session tokens: yes"))
        }
        Ok(r) if matches!(r.status, 404 | 405 | 503) => {
            found.metadata_ok = true;
            StepResult::ok(
                STEP,
                format!(
                    "{url} reachable; session tokens: no (HTTP {} to the token request)",
                    r.status
                ),
            )
        }
        Ok(r) => StepResult::fail(
            STEP,
            format!(
                "{url} answered the token request with HTTP {}: {}",
                r.status,
                excerpt(&r.body)
            ),
            "check metadata_url; it must be the instance metadata service",
        ),
        Err(e) => StepResult::fail(
            STEP,
            format!("cannot reach the metadata service at {url}: {}", e.message),
            METADATA_FIX,
        ),
    }
}

fn step_agency(config: &Config, env: &mut dyn CheckEnv, found: &mut Found) -> StepResult {
    const STEP: &str = "agency";
    if config.has_static_credentials() {
        return StepResult::skip(
            STEP,
            "not needed: access_key and secret_key are in the config",
        );
    }
    if !found.metadata_ok {
        return StepResult::skip(STEP, "needs the metadata service");
    }
    match env.security_key(found.token.as_ref()) {
        Ok(r) if r.status == 200 => {
            match parse_security_key(&r.body) {
                Ok(c) => found.credentials = Some(c),
                Err(e) => {
                    return StepResult::fail(
                        STEP,
                        format!("securitykey answered 200 but {e}"),
                        "retry in a minute; if it persists, detach and re-attach the agency",
                    )
                }
            }
            StepResult::ok(
                STEP,
                "an agency is attached: the metadata service issues temporary credentials",
            )
        }
        Ok(r) if r.status == 401 && r.body.contains(NO_AGENCY_MESSAGE) => StepResult::fail(
            STEP,
            format!("no agency is attached to this server (metadata service: \"{NO_AGENCY_MESSAGE}\")"),
            AGENCY_FIX,
        ),
        Ok(r) => StepResult::fail(
            STEP,
            format!(
                "securitykey answered HTTP {}: {}",
                r.status,
                excerpt(&r.body)
            ),
            "retry in a minute; if it persists, check the agency in the ECS console (Management Information, Agency)",
        ),
        Err(e) => StepResult::fail(
            STEP,
            format!("securitykey request failed: {}", e.message),
            METADATA_FIX,
        ),
    }
}

fn step_credentials(config: &Config, env: &mut dyn CheckEnv, found: &mut Found) -> StepResult {
    const STEP: &str = "credentials";
    if let (Some(ak), Some(sk)) = (&config.access_key, &config.secret_key) {
        found.credentials = Some(Credentials {
            access_key: ak.clone(),
            secret_key: sk.clone(),
            security_token: None,
            expires_at_ms: None,
        });
        return StepResult::ok(
            STEP,
            format!("static access key {} from the config (no expiry)", mask(ak)),
        );
    }
    let Some(creds) = &found.credentials else {
        return StepResult::skip(STEP, "needs the agency");
    };
    let now = env.now_ms();
    match creds.expires_at_ms {
        Some(exp) if exp <= now => StepResult::fail(
            STEP,
            format!(
                "temporary credentials expired at {} (local clock says {})",
                format_utc(exp),
                format_utc(now)
            ),
            "check the local clock (enable NTP); the metadata service refreshes credentials before expiry",
        ),
        Some(exp) => StepResult::ok(
            STEP,
            format!(
                "temporary access key {} valid until {} ({} min from now)",
                mask(&creds.access_key),
                format_utc(exp),
                (exp - now) / 60_000
            ),
        ),
        None => StepResult::ok(
            STEP,
            format!("temporary access key {} (no expiry given)", mask(&creds.access_key)),
        ),
    }
}

fn step_identity(config: &Config, env: &mut dyn CheckEnv, found: &mut Found) -> StepResult {
    const STEP: &str = "identity";
    let from_metadata = if found.metadata_ok {
        match env.meta_data(found.token.as_ref()) {
            Ok(r) if r.status == 200 => match parse_meta_data(&r.body) {
                Ok(m) => Some(m),
                Err(e) => {
                    return StepResult::fail(
                        STEP,
                        format!("meta_data.json: {e}"),
                        "set instance_id, project_id and region in the config",
                    )
                }
            },
            Ok(r) => {
                return StepResult::fail(
                    STEP,
                    format!(
                        "meta_data.json answered HTTP {}: {}",
                        r.status,
                        excerpt(&r.body)
                    ),
                    "set instance_id, project_id and region in the config",
                )
            }
            Err(e) => {
                return StepResult::fail(
                    STEP,
                    format!("meta_data.json request failed: {}", e.message),
                    METADATA_FIX,
                )
            }
        }
    } else if metadata_needed(config) && !has_config_identity(config) {
        return StepResult::skip(STEP, "needs the metadata service");
    } else {
        None
    };
    match merge_identity(config, from_metadata) {
        Ok(id) => {
            let detail = format!(
                "instance {}, project {}, region {}, namespace {} ({})",
                id.identity.instance_id,
                id.identity.project_id,
                id.identity.region,
                id.identity.namespace,
                id.kind
            );
            found.identity = Some(id);
            StepResult::ok(STEP, detail)
        }
        Err(missing) => StepResult::fail(
            STEP,
            format!("unknown {missing}"),
            format!("set \"{missing}\" in the config"),
        ),
    }
}

fn has_config_identity(config: &Config) -> bool {
    config.instance_id.is_some() && config.project_id.is_some() && config.region.is_some()
}

/// What meta_data.json says about this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaData {
    pub instance_id: Option<String>,
    pub project_id: Option<String>,
    pub region: Option<String>,
    pub bare_metal: bool,
}

/// Parse meta_data.json: `uuid`, `project_id`, `region_id` (else the availability zone
/// without its letter), and `meta.metering.resourcespeccode` containing "physical" = BMS.
pub fn parse_meta_data(body: &str) -> std::result::Result<MetaData, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
    let text = |key: &str| {
        v.get(key)
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let region =
        text("region_id").or_else(|| text("availability_zone").map(|az| region_of_az(&az)));
    let spec = v
        .pointer("/meta/metering.resourcespeccode")
        .or_else(|| v.pointer("/meta/metering/resourcespeccode"))
        .and_then(|x| x.as_str())
        .unwrap_or("");
    Ok(MetaData {
        instance_id: text("uuid"),
        project_id: text("project_id"),
        region,
        bare_metal: spec.contains("physical"),
    })
}

/// `cn-north-4a` -> `cn-north-4` (undocumented heuristic; region_id is preferred).
fn region_of_az(az: &str) -> String {
    let trimmed = az.trim_end_matches(|c: char| c.is_ascii_lowercase());
    if trimmed.ends_with(|c: char| c.is_ascii_digit()) {
        trimmed.to_string()
    } else {
        az.to_string()
    }
}

/// The config wins over the metadata service; `Err` names the first missing key.
pub fn merge_identity(
    config: &Config,
    meta: Option<MetaData>,
) -> std::result::Result<FoundIdentity, &'static str> {
    let meta_known = meta.is_some();
    let meta = meta.unwrap_or_default();
    let pick = |c: &Option<String>, m: Option<String>, key| c.clone().or(m).ok_or(key);
    let instance_id = pick(&config.instance_id, meta.instance_id, "instance_id")?;
    let project_id = pick(&config.project_id, meta.project_id, "project_id")?;
    let region = pick(&config.region, meta.region, "region")?;
    let kind = match (meta_known, meta.bare_metal) {
        (false, _) => "unknown: not asked",
        (true, true) => "BMS",
        (true, false) => "ECS",
    };
    let default_ns = if meta.bare_metal {
        "SERVICE.BMS"
    } else {
        "AGT.ECS"
    };
    let namespace = config
        .namespace
        .clone()
        .unwrap_or_else(|| default_ns.to_string());
    Ok(FoundIdentity {
        identity: Identity {
            instance_id,
            project_id,
            region,
            namespace,
        },
        kind,
    })
}

/// Parse the securitykey reply. Errors never quote the body (it holds the SK).
pub fn parse_security_key(body: &str) -> std::result::Result<Credentials, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|_| "its body is not JSON".to_string())?;
    let field = |name: &str| {
        v.pointer(&format!("/credential/{name}"))
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("its body has no credential.{name}"))
    };
    let expires = field("expires_at")?;
    let expires_at_ms = parse_iso8601_ms(expires)
        .ok_or_else(|| format!("credential.expires_at \"{expires}\" is not a UTC time"))?;
    Ok(Credentials {
        access_key: field("access")?.to_string(),
        secret_key: Secret::new(field("secret")?),
        security_token: Some(Secret::new(field("securitytoken")?)),
        expires_at_ms: Some(expires_at_ms),
    })
}

fn step_endpoint(config: &Config, env: &mut dyn CheckEnv, found: &mut Found) -> StepResult {
    const STEP: &str = "endpoint";
    let Some(id) = &found.identity else {
        return StepResult::skip(STEP, "needs the region (identity)");
    };
    let endpoint = config.endpoint_for(&id.identity.region);
    found.endpoint = Some(endpoint.clone());
    let probe = env.endpoint_probe(&endpoint);
    let addrs = match probe.resolved {
        Ok(a) => a,
        Err(e) => {
            return StepResult::fail(
                STEP,
                format!("{endpoint}: {}", e.message),
                "check DNS (/etc/resolv.conf; on Huawei Cloud use the private DNS servers of the region) or set endpoint",
            )
        }
    };
    let reply = match probe.reply {
        Ok(r) => r,
        Err(e) => return endpoint_failed(config, &endpoint, &e),
    };
    found.endpoint_ok = true;
    found.offset_ms = clock_offset_ms(&reply);
    found.endpoint_reply_had_date = reply.date.is_some();
    let first = addrs.first().map(String::as_str).unwrap_or("?");
    if endpoint.starts_with("http://") {
        return StepResult::warn(
            STEP,
            format!("{endpoint} ({first}) answers, over plain http: no TLS"),
            "use an https:// endpoint outside tests",
        );
    }
    let roots = match &config.ca_file {
        Some(f) => format!("ca_file {}", f.display()),
        None => "built-in roots".to_string(),
    };
    StepResult::ok(
        STEP,
        format!("{endpoint} resolves to {first}; TLS verified against {roots}"),
    )
}

fn endpoint_failed(config: &Config, endpoint: &str, e: &NetError) -> StepResult {
    const STEP: &str = "endpoint";
    let fix = match e.kind {
        NetErrorKind::Tls => match &config.ca_file {
            Some(f) => format!(
                "the certificate does not verify against ca_file {}: put the right CA there (a TLS-inspecting proxy's CA, for one) and check the clock",
                f.display()
            ),
            None => "if a proxy inspects TLS, set ca_file to its CA bundle; else check the clock and that endpoint is right".to_string(),
        },
        NetErrorKind::Dns => "check DNS or set endpoint".to_string(),
        _ => "allow outbound TCP 443 to the endpoint (security group, firewall) or set proxy".to_string(),
    };
    let what = match e.kind {
        NetErrorKind::Tls => "TLS verification failed",
        NetErrorKind::Timeout => "timed out",
        _ => "cannot connect",
    };
    StepResult::fail(STEP, format!("{endpoint}: {what}: {}", e.message), fix)
}

fn step_signed_request(config: &Config, env: &mut dyn CheckEnv, found: &mut Found) -> StepResult {
    const STEP: &str = "signed_request";
    let (Some(creds), Some(id), Some(endpoint)) =
        (&found.credentials, &found.identity, &found.endpoint)
    else {
        return StepResult::skip(STEP, "needs credentials, identity and endpoint");
    };
    if !found.endpoint_ok {
        return StepResult::skip(STEP, "needs a working endpoint");
    }
    // Sign with the server's time, as the agent does when the clock is off.
    let date = sdk_date(env.now_ms() + found.offset_ms.unwrap_or(0));
    let reply = match env.signed_probe(endpoint, &id.identity.project_id, creds, &date) {
        Ok(r) => r,
        Err(e) => {
            return StepResult::fail(
                STEP,
                format!("POST metric-data failed: {}", e.message),
                "retry; the endpoint step passed, so this is likely transient",
            )
        }
    };
    classify_signed_reply(config, &reply)
}

/// Turn Cloud Eye's answer to `POST []` into a step result.
pub fn classify_signed_reply(config: &Config, r: &HttpReply) -> StepResult {
    const STEP: &str = "signed_request";
    let code = error_code(&r.body);
    let said = excerpt(&r.body);
    match r.status {
        400 => StepResult::ok(
            STEP,
            format!(
                "signature and credentials accepted (HTTP 400 {} to an empty body, as expected; nothing written)",
                code.as_deref().unwrap_or("without a code")
            ),
        ),
        200..=299 => StepResult::ok(
            STEP,
            format!("signature and credentials accepted (HTTP {})", r.status),
        ),
        401 => {
            let fix = if config.has_static_credentials() {
                "check access_key and secret_key (IAM, My Credentials, Access Keys) and the clock"
            } else {
                "the temporary credentials were refused: re-attach the agency cesagency and check the clock"
            };
            StepResult::fail(
                STEP,
                format!("Cloud Eye refused the signature or credentials (HTTP 401): {said}"),
                fix,
            )
        }
        403 => StepResult::fail(
            STEP,
            format!("Cloud Eye refused the request (HTTP 403): {said}"),
            "grant the user or agency the CES Administrator role (action ces:metricData:create) in this region and project",
        ),
        404 => StepResult::fail(
            STEP,
            format!("HTTP 404 for metric-data: {said}"),
            "check endpoint and project_id",
        ),
        429 | 500..=599 => StepResult::warn(
            STEP,
            format!("Cloud Eye is busy (HTTP {}): {said}", r.status),
            "nothing to do if it passes later; the agent spools and retries",
        ),
        s => StepResult::fail(
            STEP,
            format!("unexpected HTTP {s}: {said}"),
            "check endpoint (it must be Cloud Eye's)",
        ),
    }
}

/// The `error_code` / `code` of a Cloud Eye or gateway error body, whichever form.
pub fn error_code(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    ["/error_code", "/details/code", "/message/code", "/code"]
        .iter()
        .find_map(|p| v.pointer(p).and_then(|x| x.as_str()).map(str::to_string))
}

fn step_clock(found: &Found, agent_corrects: bool) -> StepResult {
    const STEP: &str = "clock";
    const NTP: &str = "synchronise the clock: enable chronyd, systemd-timesyncd or ntpd";
    if !found.endpoint_ok {
        return StepResult::skip(STEP, "needs a reply from the endpoint");
    }
    let Some(offset_ms) = found.offset_ms else {
        let why = if found.endpoint_reply_had_date {
            "Cloud Eye's Date header did not parse"
        } else {
            "Cloud Eye's reply had no Date header"
        };
        return StepResult::warn(STEP, format!("{why}: offset unknown"), NTP);
    };
    let secs = offset_ms / 1000;
    let abs = secs.abs();
    let direction = if secs > 0 { "behind" } else { "ahead of" };
    let detail = format!("local clock is {abs} s {direction} Cloud Eye");
    if abs <= CLOCK_WARN_SECS {
        return StepResult::ok(
            STEP,
            format!("offset {secs:+} s (within {CLOCK_WARN_SECS} s)"),
        );
    }
    if abs <= CLOCK_FAIL_SECS {
        return StepResult::warn(STEP, detail, NTP);
    }
    if agent_corrects {
        return StepResult::warn(
            STEP,
            format!("{detail}: past Cloud Eye's 15 min limit, so the agent signs and stamps with the server's time"),
            NTP,
        );
    }
    StepResult::fail(
        STEP,
        format!("{detail}: Cloud Eye refuses signatures more than 15 min off"),
        NTP,
    )
}

fn step_spool(config: &Config, env: &mut dyn CheckEnv) -> StepResult {
    const STEP: &str = "spool";
    let dir = config.state_dir.join("spool");
    let state = config.state_dir.display();
    let chown = format!(
        "the agent's user must own state_dir: chown -R cloudeye-agent: {state} && chmod 700 {state}"
    );
    let summary = match env.spool_summary(&dir) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return StepResult::ok(
                STEP,
                format!("empty ({} does not exist yet)", dir.display()),
            )
        }
        Err(e) => {
            return StepResult::fail(STEP, format!("cannot read {}: {e}", dir.display()), chown)
        }
    };
    if !writable(&config.state_dir) {
        return StepResult::warn(
            STEP,
            format!("{state} is not writable by this user"),
            format!("run check as the agent's user; {chown}"),
        );
    }
    let oldest = summary
        .oldest_ms
        .map(|ms| format!(", oldest from {}", format_utc(ms)))
        .unwrap_or_default();
    let detail = format!(
        "{} batches, {} bytes{oldest}",
        summary.batches, summary.bytes
    );
    if summary.bytes > config.spool_max_bytes {
        return StepResult::warn(
            STEP,
            format!(
                "{detail}: over spool_max_bytes ({}), the oldest are dropped",
                config.spool_max_bytes
            ),
            "see why reports fail (the steps above) or raise spool_max_bytes",
        );
    }
    StepResult::ok(STEP, detail)
}

fn writable(dir: &Path) -> bool {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// The spool as plain files under `dir`: count, total size, oldest mtime.
///
/// TODO(lead): switch to the spool module's own summary once `crate::spool` lands
/// (issue 5); this only counts regular files.
pub fn spool_summary_from_dir(dir: &Path) -> io::Result<Option<SpoolSummary>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut s = SpoolSummary::default();
    for entry in entries {
        let meta = entry?.metadata()?;
        if !meta.is_file() {
            continue;
        }
        s.batches += 1;
        s.bytes += meta.len();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64);
        if let Some(m) = mtime {
            s.oldest_ms = Some(s.oldest_ms.map_or(m, |o: i64| o.min(m)));
        }
    }
    Ok(Some(s))
}

/// The report for people: one line per step, the fix after it.
pub fn render_text(results: &[StepResult]) -> String {
    let mut out = String::new();
    for r in results {
        out.push_str(&format!(
            "{:<4}  {:<14}  {}",
            r.status.mark(),
            r.step,
            r.detail
        ));
        if let Some(fix) = &r.fix {
            out.push_str(&format!(" | fix: {fix}"));
        }
        out.push('\n');
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| r.step)
        .collect();
    let warned = results.iter().filter(|r| r.status == Status::Warn).count();
    if failed.is_empty() {
        out.push_str(&format!("result: ready to report ({warned} warnings)\n"));
    } else {
        out.push_str(&format!(
            "result: not ready: {} failed\n",
            failed.join(", ")
        ));
    }
    out
}

/// The report for programs: a JSON array of {step, status, detail, fix}.
pub fn render_json(results: &[StepResult]) -> Result<String> {
    let mut s = serde_json::to_string_pretty(results)
        .map_err(|e| Error::other(format!("cannot encode the check results: {e}")))?;
    s.push('\n');
    Ok(s)
}

/// Server time minus local time at receipt, from the `Date` header.
pub fn clock_offset_ms(reply: &HttpReply) -> Option<i64> {
    let server = parse_http_date_ms(reply.date.as_deref()?)?;
    Some(server - reply.received_ms)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` -> Unix ms.
pub fn parse_http_date_ms(s: &str) -> Option<i64> {
    let mut parts = s.split_whitespace().skip(1);
    let day: u32 = parts.next()?.parse().ok()?;
    let month = month_number(parts.next()?)?;
    let year: i64 = parts.next()?.parse().ok()?;
    let (h, m, sec) = parse_hms(parts.next()?)?;
    if parts.next()? != "GMT" {
        return None;
    }
    Some(unix_ms(year, month, day, h, m, sec, 0))
}

/// `2020-01-08T03:50:07.574000Z` (fraction optional) -> Unix ms.
pub fn parse_iso8601_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let (h, m, sec) = parse_hms(hms)?;
    let ms = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        digits.parse().ok()?
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(unix_ms(year, month, day, h, m, sec, ms))
}

fn parse_hms(s: &str) -> Option<(i64, i64, i64)> {
    let mut t = s.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let m: i64 = t.next()?.parse().ok()?;
    let sec: i64 = t.next()?.parse().ok()?;
    (h < 24 && m < 60 && sec < 61 && t.next().is_none()).then_some((h, m, sec))
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|m| *m == name).map(|i| i as u32 + 1)
}

fn unix_ms(year: i64, month: u32, day: u32, h: i64, m: i64, s: i64, ms: i64) -> i64 {
    let days = days_from_civil(year, month, day);
    ((days * 86_400 + h * 3600 + m * 60 + s) * 1000) + ms
}

/// `X-Sdk-Date` format: `20060102T150405Z`.
pub fn sdk_date(ms: i64) -> String {
    // format_utc gives 2006-01-02T15:04:05Z
    format_utc(ms).replace(['-', ':'], "")
}

/// An access key shown to operators: its first 4 characters only.
fn mask(ak: &str) -> String {
    let head: String = ak.chars().take(4).collect();
    format!("{head}...")
}

/// The first 200 characters of a reply body, on one line.
fn excerpt(body: &str) -> String {
    let one_line = crate::logging::one_line(body.trim());
    if one_line.chars().count() > 200 {
        let cut: String = one_line.chars().take(200).collect();
        format!("{cut}...")
    } else if one_line.is_empty() {
        "(empty body)".to_string()
    } else {
        one_line
    }
}

/// Signing for the signed probe.
///
/// TODO(lead): replace this shim with the real signer from `crate::sign` (issue 4) once
/// it lands; the call in [`RealEnv::signed_probe`] keeps the same shape.
pub mod sign_shim {
    use crate::config::Secret;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    /// SDK-HMAC-SHA256 `Authorization` value for a request without a query string.
    /// `headers` are the ones to sign (lower-case names); `host` is the URL's authority.
    pub fn sign_request(
        method: &str,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        access_key: &str,
        secret_key: &Secret,
    ) -> String {
        let mut signed: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .chain(std::iter::once(("host".to_string(), host.to_string())))
            .collect();
        signed.sort();
        let names: Vec<&str> = signed.iter().map(|(k, _)| k.as_str()).collect();
        let names = names.join(";");
        let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let mut uri: String = path.split('/').map(escape).collect::<Vec<_>>().join("/");
        if !uri.ends_with('/') {
            uri.push('/');
        }
        let request = format!(
            "{method}\n{uri}\n\n{canonical_headers}\n{names}\n{}",
            hex(&Sha256::digest(body))
        );
        let date = signed
            .iter()
            .find(|(k, _)| k == "x-sdk-date")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let to_sign = format!(
            "SDK-HMAC-SHA256\n{date}\n{}",
            hex(&Sha256::digest(request.as_bytes()))
        );
        let signature = match Hmac::<Sha256>::new_from_slice(secret_key.expose().as_bytes()) {
            Ok(mut mac) => {
                mac.update(to_sign.as_bytes());
                hex(&mac.finalize().into_bytes())
            }
            Err(_) => String::new(), // HMAC takes keys of any length; not reached
        };
        format!("SDK-HMAC-SHA256 Access={access_key}, SignedHeaders={names}, Signature={signature}")
    }

    fn escape(segment: &str) -> String {
        let mut out = String::new();
        for b in segment.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The real environment: ureq with short timeouts and capped bodies.
///
/// TODO(lead): swap the metadata calls for the cloud helper's client (issue 4) when it
/// lands; the trait keeps `check` independent of that.
pub struct RealEnv {
    metadata_url: String,
    metadata: ureq::Agent,
    ces: std::result::Result<ureq::Agent, NetError>,
}

impl RealEnv {
    pub fn new(config: &Config) -> RealEnv {
        let metadata = ureq::Agent::config_builder()
            .timeout_global(Some(METADATA_TIMEOUT))
            .http_status_as_error(false)
            .proxy(None)
            .user_agent(crate::version::user_agent())
            .build()
            .new_agent();
        RealEnv {
            metadata_url: config.metadata_url.trim_end_matches('/').to_string(),
            metadata,
            ces: ces_agent(config),
        }
    }

    fn metadata_url(&self, path: &str) -> String {
        format!("{}{path}", self.metadata_url)
    }

    fn get_metadata(&mut self, path: &str, token: Option<&Secret>) -> NetResult {
        let mut req = self.metadata.get(self.metadata_url(path));
        if let Some(t) = token {
            req = req.header("X-Metadata-Token", t.expose());
        }
        reply(req.call())
    }
}

fn ces_agent(config: &Config) -> std::result::Result<ureq::Agent, NetError> {
    use ureq::tls::{RootCerts, TlsConfig};
    let roots = match &config.ca_file {
        Some(path) => RootCerts::new_with_certs(&load_ca_file(path)?),
        None => RootCerts::WebPki,
    };
    let proxy = match &config.proxy {
        Some(p) => Some(ureq::Proxy::new(p).map_err(|e| {
            NetError::new(
                NetErrorKind::Other,
                format!("proxy \"{p}\" is not usable: {e}"),
            )
        })?),
        None => None,
    };
    Ok(ureq::Agent::config_builder()
        .timeout_global(Some(CES_TIMEOUT))
        .http_status_as_error(false)
        .proxy(proxy)
        .user_agent(crate::version::user_agent())
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build()
        .new_agent())
}

fn load_ca_file(
    path: &Path,
) -> std::result::Result<Vec<ureq::tls::Certificate<'static>>, NetError> {
    let tls_err = |m: String| NetError::new(NetErrorKind::Tls, m);
    let pem = std::fs::read(path)
        .map_err(|e| tls_err(format!("cannot read ca_file {}: {e}", path.display())))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(tls_err(format!("ca_file {}: {e}", path.display()))),
        }
    }
    if certs.is_empty() {
        return Err(tls_err(format!(
            "ca_file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Turn a ureq result into a capped reply or a classified error.
fn reply(result: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> NetResult {
    let mut resp = result.map_err(|e| classify(&e))?;
    let received_ms = crate::clock::wall_ms();
    let date = resp
        .headers()
        .get("date")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut bytes = Vec::new();
    let _ = resp
        .body_mut()
        .as_reader()
        .take(MAX_BODY_BYTES)
        .read_to_end(&mut bytes);
    Ok(HttpReply {
        status: resp.status().as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        date,
        received_ms,
    })
}

/// Sort a ureq error into what the operator must fix.
pub fn classify(e: &ureq::Error) -> NetError {
    use ureq::Error as U;
    let kind = match e {
        U::HostNotFound => NetErrorKind::Dns,
        U::Timeout(_) => NetErrorKind::Timeout,
        U::Tls(_) | U::Rustls(_) | U::Pem(_) => NetErrorKind::Tls,
        U::ConnectionFailed => NetErrorKind::Connect,
        U::Io(io) => classify_io(io),
        _ => NetErrorKind::Other,
    };
    let mut message = e.to_string();
    if kind == NetErrorKind::Tls {
        message = explain_tls(&message);
    }
    NetError::new(kind, message)
}

/// rustls names certificate problems in CamelCase; say what they mean.
fn explain_tls(message: &str) -> String {
    let message = message.strip_prefix("io: ").unwrap_or(message);
    let meaning = [
        (
            "UnknownIssuer",
            "the certificate's issuer is not a trusted CA",
        ),
        (
            "NotValidForName",
            "the certificate is for another host name",
        ),
        (
            "Expired",
            "the certificate has expired, or the local clock is wrong",
        ),
        (
            "NotValidYet",
            "the certificate is not valid yet, or the local clock is wrong",
        ),
    ]
    .iter()
    .find(|(code, _)| message.contains(code));
    match meaning {
        Some((_, m)) => format!("{message} ({m})"),
        None => message.to_string(),
    }
}

fn classify_io(e: &io::Error) -> NetErrorKind {
    let is_tls = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if is_tls {
        return NetErrorKind::Tls;
    }
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => NetErrorKind::Timeout,
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::NotConnected
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable => NetErrorKind::Connect,
        _ => NetErrorKind::Other,
    }
}

/// `https://host:port/path` -> (`host:port` as written, host, port).
pub fn split_url(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest
        .split(['/', '?'])
        .next()?
        .rsplit('@')
        .next()?
        .to_string();
    let default_port = if scheme == "https" { 443 } else { 80 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)
        }
        _ => (authority.trim_matches(['[', ']']).to_string(), default_port),
    };
    Some((authority, host, port))
}

impl CheckEnv for RealEnv {
    fn now_ms(&self) -> i64 {
        crate::clock::wall_ms()
    }

    fn metadata_token_probe(&mut self) -> NetResult {
        let req = self
            .metadata
            .put(self.metadata_url("/meta-data/latest/api/token"))
            .header("X-Metadata-Token-Ttl-Seconds", "21600");
        reply(req.send_empty())
    }

    fn security_key(&mut self, token: Option<&Secret>) -> NetResult {
        self.get_metadata("/openstack/latest/securitykey", token)
    }

    fn meta_data(&mut self, token: Option<&Secret>) -> NetResult {
        self.get_metadata("/openstack/latest/meta_data.json", token)
    }

    fn endpoint_probe(&mut self, endpoint: &str) -> EndpointProbe {
        let resolved = resolve(endpoint);
        let reply = match (&resolved, &self.ces) {
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
            (Ok(_), Ok(agent)) => reply(agent.get(format!("{endpoint}/")).call()),
        };
        EndpointProbe { resolved, reply }
    }

    fn signed_probe(
        &mut self,
        endpoint: &str,
        project_id: &str,
        credentials: &Credentials,
        sdk_date: &str,
    ) -> NetResult {
        let agent = self.ces.as_ref().map_err(Clone::clone)?;
        let url = format!("{endpoint}/V1.0/{project_id}/metric-data");
        let (authority, _, _) = split_url(&url)
            .ok_or_else(|| NetError::new(NetErrorKind::Other, format!("bad URL {url}")))?;
        let path = format!("/V1.0/{project_id}/metric-data");
        let mut headers = vec![("X-Sdk-Date", sdk_date), ("X-Project-Id", project_id)];
        if let Some(token) = &credentials.security_token {
            headers.push(("X-Security-Token", token.expose()));
        }
        let body = b"[]";
        let authorization = sign_shim::sign_request(
            "POST",
            &path,
            &authority,
            &headers,
            body,
            &credentials.access_key,
            &credentials.secret_key,
        );
        let mut req = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Authorization", &authorization);
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        reply(req.send(&body[..]))
    }

    fn spool_summary(&mut self, dir: &Path) -> io::Result<Option<SpoolSummary>> {
        spool_summary_from_dir(dir)
    }
}

fn resolve(endpoint: &str) -> std::result::Result<Vec<String>, NetError> {
    use std::net::ToSocketAddrs;
    let (_, host, port) = split_url(endpoint).ok_or_else(|| {
        NetError::new(NetErrorKind::Other, format!("\"{endpoint}\" is not a URL"))
    })?;
    let addrs = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| NetError::new(NetErrorKind::Dns, format!("cannot resolve {host}: {e}")))?;
    let list: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
    if list.is_empty() {
        return Err(NetError::new(
            NetErrorKind::Dns,
            format!("{host} resolves to no address"),
        ));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date() {
        // 1994-11-06: days_from_civil = 9075 (24 years * 365 + 6 leap days = 8766, + 309 days
        // Jan..Nov 5 in a common year); 9075 * 86400 + 8*3600 + 49*60 + 37 = 784111777
        assert_eq!(
            parse_http_date_ms("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(parse_http_date_ms("Sun, 06 Nov 1994 08:49:37 CET"), None);
        assert_eq!(parse_http_date_ms("yesterday"), None);
    }

    #[test]
    fn iso_expiry() {
        // 2020-01-08: 18269 days (50 years = 18262 days incl. 12 leap days, + 7)
        let day = 18_269 * 86_400_000i64;
        let t = 3 * 3_600_000 + 50 * 60_000 + 7_000;
        assert_eq!(
            parse_iso8601_ms("2020-01-08T03:50:07.574000Z"),
            Some(day + t + 574)
        );
        assert_eq!(parse_iso8601_ms("2020-01-08T03:50:07Z"), Some(day + t));
        assert_eq!(parse_iso8601_ms("2020-01-08T03:50:07"), None);
        assert_eq!(parse_iso8601_ms("2020-13-08T03:50:07Z"), None);
    }

    #[test]
    fn sdk_date_format() {
        assert_eq!(sdk_date(784_111_777_000), "19941106T084937Z");
    }

    #[test]
    fn security_key_parses_and_never_quotes_secrets() {
        let body = r#"{"credential": {"access": "AKTEMP", "expires_at": "2020-01-08T03:50:07.574000Z", "secret": "SKVALUE", "securitytoken": "STVALUE"}}"#;
        let c = parse_security_key(body).unwrap();
        assert_eq!(c.access_key, "AKTEMP");
        assert_eq!(c.secret_key.expose(), "SKVALUE");
        assert_eq!(c.security_token.as_ref().unwrap().expose(), "STVALUE");
        let bad = r#"{"credential": {"access": "AK", "secret": "SKVALUE", "securitytoken": "ST", "expires_at": "soon"}}"#;
        let e = parse_security_key(bad).unwrap_err();
        assert!(!e.contains("SKVALUE"), "{e}");
        assert!(parse_security_key("SKVALUE not json")
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn meta_data_fields_and_bms() {
        let m = parse_meta_data(
            r#"{"uuid":"i-1","project_id":"p-1","availability_zone":"cn-north-4a","meta":{"metering.resourcespeccode":"physical.s4.large"}}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            MetaData {
                instance_id: Some("i-1".into()),
                project_id: Some("p-1".into()),
                region: Some("cn-north-4".into()),
                bare_metal: true,
            }
        );
        let m = parse_meta_data(
            r#"{"uuid":"i-2","region_id":"ap-southeast-1","availability_zone":"x"}"#,
        )
        .unwrap();
        assert_eq!(m.region.as_deref(), Some("ap-southeast-1"));
        assert!(!m.bare_metal);
    }

    #[test]
    fn config_overrides_metadata_identity() {
        let config =
            Config::parse(r#"{"project_id": "from-config", "namespace": "MY.HOST"}"#).unwrap();
        let meta = MetaData {
            instance_id: Some("i-1".into()),
            project_id: Some("p-meta".into()),
            region: Some("r".into()),
            bare_metal: true,
        };
        let id = merge_identity(&config, Some(meta)).unwrap();
        assert_eq!(id.identity.project_id, "from-config");
        assert_eq!(id.identity.namespace, "MY.HOST");
        assert_eq!(id.kind, "BMS");
        assert_eq!(
            merge_identity(&Config::default(), None).unwrap_err(),
            "instance_id"
        );
    }

    #[test]
    fn error_codes_in_every_form() {
        assert_eq!(
            error_code(r#"{"error_code":"ces.0001","error_msg":"The content must be specified."}"#)
                .as_deref(),
            Some("ces.0001")
        );
        assert_eq!(
            error_code(r#"{"code":400,"details":{"details":"x","code":"ces.0014"}}"#).as_deref(),
            Some("ces.0014")
        );
        assert_eq!(
            error_code(r#"{"http_code":"403","message":{"details":"x","code":"403"}}"#).as_deref(),
            Some("403")
        );
        assert_eq!(error_code("not json"), None);
    }

    #[test]
    fn urls() {
        assert_eq!(
            split_url("https://ces.cn-north-4.myhuaweicloud.com"),
            Some((
                "ces.cn-north-4.myhuaweicloud.com".into(),
                "ces.cn-north-4.myhuaweicloud.com".into(),
                443
            ))
        );
        assert_eq!(
            split_url("http://127.0.0.1:8080/V1.0/p/metric-data"),
            Some(("127.0.0.1:8080".into(), "127.0.0.1".into(), 8080))
        );
    }

    #[test]
    fn shim_signer_matches_the_published_java_vector() {
        // JAVA AKSKSignerTest J2 (reference/huawei-cloud-api.md 1.5): POST with body {"key":"value"}
        let auth = sign_shim::sign_request(
            "POST",
            "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpc/123",
            "service.region.example.com",
            &[("X-Sdk-Date", "20191115T033655Z")],
            br#"{"key":"value"}"#,
            "AccessKey",
            &Secret::new("SecretKey"),
        );
        assert_eq!(
            auth,
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, Signature=b5649aa774f6cac7437631662f08815fc65c70e40e486df6db2436ce68902771"
        );
    }

    #[test]
    fn clock_thresholds() {
        let found = |offset_ms| Found {
            endpoint_ok: true,
            offset_ms: Some(offset_ms),
            endpoint_reply_had_date: true,
            ..Found::default()
        };
        assert_eq!(step_clock(&found(60_999), true).status, Status::Ok);
        assert_eq!(step_clock(&found(-61_000), true).status, Status::Warn);
        assert!(step_clock(&found(-61_000), true)
            .detail
            .contains("61 s ahead of"));
        // 20 min = 1200 s: over 15 min; a warning while the agent corrects, else a failure
        let w = step_clock(&found(1_200_000), true);
        assert_eq!(w.status, Status::Warn);
        assert!(w.detail.contains("1200 s behind"), "{}", w.detail);
        assert_eq!(step_clock(&found(1_200_000), false).status, Status::Fail);
        assert_eq!(step_clock(&Found::default(), true).status, Status::Skip);
    }
}
