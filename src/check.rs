//! `cloudeye-agent check`: run every step a report needs and say what to fix.
//!
//! The steps use the agent's own clients, so `check` sees what the agent would see:
//! [`MetadataClient`] for the token probe, the security key (telling a missing agency
//! apart) and meta_data.json; [`CesClient`] for a connection to the endpoint (its transport
//! error is the TLS diagnosis); [`Reporter::probe`] for the signed request, with the
//! agent's clock correction and credential refresh; [`spool::summary`] for the backlog.
//! Each step yields one [`StepResult`]; a step whose input came from a failed step is
//! `skip`. Exit status 0 means no step failed (warnings pass).
//!
//! Nothing written here ever contains the SK, the security token or the metadata token.

use crate::ces::{CesClient, Timeouts};
use crate::config::{Config, ConfigSource, Secret};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::logging::format_utc;
use crate::metadata::{self, FetchError, Identity, MetaData, MetadataClient, TokenSupport};
use crate::reporter::{Probe, Reporter};
use crate::spool;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Warn when the local clock is further than this from Cloud Eye's.
pub const CLOCK_WARN_SECS: i64 = 60;
/// Cloud Eye's gateway refuses signatures dated further than this from its time.
pub const CLOCK_LIMIT_SECS: i64 = 15 * 60;
/// Every Cloud Eye request made by `check` gives up after this.
pub const CES_TIMEOUT: Duration = Duration::from_secs(10);

const METADATA_FIX: &str = "on an ECS/BMS the metadata service is http://169.254.169.254: check the route to it and that the security group allows outbound TCP 80 to 169.254.0.0/16; off Huawei Cloud set access_key, secret_key, project_id, instance_id and region in the config";
const AGENCY_FIX: &str = "attach the agency cesagency (it gives the internal account op_svc_ces the CES Administrator role): on Cloud Eye's Server Monitoring page click Configure, or pick cesagency under Agency when creating the server (existing server: ECS console, Management Information, Agency); if cesagency is missing, create it in IAM (Common account, delegated account op_svc_ces, CES Administrator); or set access_key and secret_key in the config";
const CONNECT_FIX: &str =
    "allow outbound TCP 443 to the endpoint (security group, firewall) or set proxy";
const SETUP_FIX: &str = "correct endpoint, proxy or ca_file in the config";

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

/// Run the checks, print them (text or JSON) and say whether every step passed.
pub fn check(source: &ConfigSource, config: Result<Config>, json: bool) -> Result<bool> {
    let results = run_steps(source, &config);
    let out = if json {
        render_json(&results)?
    } else {
        render_text(&results)
    };
    print!("{out}");
    Ok(results.iter().all(StepResult::passed))
}

/// What earlier steps hand to later ones.
#[derive(Default)]
struct Found {
    /// Set once the token probe got an answer.
    metadata: Option<MetadataClient>,
    /// Temporary credentials from the agency step.
    temporary: Option<Credentials>,
    credentials_ok: bool,
    identity: Option<Identity>,
    endpoint_ok: bool,
    /// Server minus local time, ms, from the endpoint's `Date`.
    offset_ms: Option<i64>,
}

/// Every step, in order.
pub fn run_steps(source: &ConfigSource, config: &Result<Config>) -> Vec<StepResult> {
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
        step_metadata(config, &mut found),
        step_agency(config, &mut found),
        step_credentials(config, &mut found),
        step_identity(config, &mut found),
        step_endpoint(config, &mut found),
        step_signed_request(config, &found),
        step_clock(&found),
        step_spool(config),
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

fn step_metadata(config: &Config, found: &mut Found) -> StepResult {
    const STEP: &str = "metadata";
    if !metadata_needed(config) {
        return StepResult::skip(
            STEP,
            "not needed: credentials and identity are in the config",
        );
    }
    let url = &config.metadata_url;
    let mut client = MetadataClient::new(url);
    let tokens = match client.probe_token() {
        Ok(TokenSupport::Unsupported) => "no (reads go without one)",
        Ok(_) => "yes",
        Err(e) => return StepResult::fail(STEP, e.message(), METADATA_FIX),
    };
    found.metadata = Some(client);
    StepResult::ok(STEP, format!("{url} reachable; session tokens: {tokens}"))
}

fn step_agency(config: &Config, found: &mut Found) -> StepResult {
    const STEP: &str = "agency";
    if config.has_static_credentials() {
        return StepResult::skip(
            STEP,
            "not needed: access_key and secret_key are in the config",
        );
    }
    let Some(client) = found.metadata.as_mut() else {
        return StepResult::skip(STEP, "needs the metadata service");
    };
    match client.security_key() {
        Ok(c) => {
            found.temporary = Some(c);
            StepResult::ok(
                STEP,
                "an agency is attached: the metadata service issues temporary credentials",
            )
        }
        Err(FetchError::NoAgency(_)) => StepResult::fail(
            STEP,
            format!(
                "no agency is attached to this server (the metadata service answers \"{}\")",
                metadata::AGENCY_ERROR
            ),
            AGENCY_FIX,
        ),
        Err(FetchError::Failed(e)) => StepResult::fail(
            STEP,
            e.message(),
            "retry in a minute; if it persists, check the agency in the ECS console (Management Information, Agency)",
        ),
    }
}

fn step_credentials(config: &Config, found: &mut Found) -> StepResult {
    const STEP: &str = "credentials";
    if let (Some(ak), Some(_)) = (&config.access_key, &config.secret_key) {
        found.credentials_ok = true;
        return StepResult::ok(
            STEP,
            format!("static access key {} from the config (no expiry)", mask(ak)),
        );
    }
    let Some(creds) = &found.temporary else {
        return StepResult::skip(STEP, "needs the agency");
    };
    // expires_at is in the metadata service's time: compare with its clock, not ours.
    let offset = found
        .metadata
        .as_ref()
        .and_then(MetadataClient::clock_offset_ms)
        .unwrap_or(0);
    let now = crate::clock::wall_ms() + offset;
    found.credentials_ok = !creds.expires_at_ms.is_some_and(|exp| exp <= now);
    match creds.expires_at_ms {
        Some(exp) if exp <= now => StepResult::fail(
            STEP,
            format!(
                "temporary credentials expired at {} (the metadata service's clock says {})",
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

fn step_identity(config: &Config, found: &mut Found) -> StepResult {
    const STEP: &str = "identity";
    const FIX: &str = "set instance_id, project_id and region in the config";
    let (meta, kind) = match found.metadata.as_mut() {
        Some(client) => match client.meta_data() {
            Ok(m) => {
                let bms = metadata::namespace_for(m.resource_spec_code.as_deref()) == "SERVICE.BMS";
                (m, if bms { "BMS" } else { "ECS" })
            }
            Err(e) => return StepResult::fail(STEP, e.message(), FIX),
        },
        None if has_config_identity(config) => (MetaData::default(), "unknown: not asked"),
        None => return StepResult::skip(STEP, "needs the metadata service"),
    };
    match metadata::identity_from(config, &meta) {
        Ok(id) => {
            let detail = format!(
                "instance {}, project {}, region {}, namespace {} ({kind})",
                id.instance_id, id.project_id, id.region, id.namespace
            );
            found.identity = Some(id);
            StepResult::ok(STEP, detail)
        }
        Err(e) => StepResult::fail(STEP, e.message(), FIX),
    }
}

fn has_config_identity(config: &Config) -> bool {
    config.instance_id.is_some() && config.project_id.is_some() && config.region.is_some()
}

fn check_timeouts() -> Timeouts {
    Timeouts {
        connect: CES_TIMEOUT,
        total: CES_TIMEOUT,
    }
}

/// Connect to Cloud Eye with a placeholder key: any HTTP answer (a 401 here) proves that
/// TCP, the proxy and TLS work, and its `Date` gives the clock offset. Nothing is written.
fn step_endpoint(config: &Config, found: &mut Found) -> StepResult {
    const STEP: &str = "endpoint";
    let Some(id) = &found.identity else {
        return StepResult::skip(STEP, "needs the region (identity)");
    };
    let endpoint = config.endpoint_for(&id.region);
    let client = match CesClient::new(config, &endpoint, check_timeouts()) {
        Ok(c) => c,
        Err(e) => return StepResult::fail(STEP, e.message(), SETUP_FIX),
    };
    let placeholder = Credentials {
        access_key: "cloudeye-agent-check".to_string(),
        secret_key: Secret::new("none"),
        security_token: None,
        expires_at_ms: None,
    };
    let now = crate::clock::wall_ms();
    let reply = match client.post_metric_data(&id.project_id, &placeholder, b"[]", now) {
        Ok(r) => r,
        Err(reason) => return endpoint_failed(config, &endpoint, &reason),
    };
    found.endpoint_ok = true;
    // Date has whole seconds: on average the server's clock is half a second past it.
    found.offset_ms = reply.date_ms.map(|d| d + 500 - crate::clock::wall_ms());
    let address = resolve(client.base_url())
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    if endpoint.starts_with("http://") {
        return StepResult::warn(
            STEP,
            format!("{endpoint}{address} answers, over plain http: no TLS"),
            "use an https:// endpoint outside tests",
        );
    }
    let roots = match &config.ca_file {
        Some(f) => format!("ca_file {} and the built-in roots", f.display()),
        None => "the built-in roots".to_string(),
    };
    StepResult::ok(
        STEP,
        format!("{endpoint}{address} answers; TLS verified against {roots}"),
    )
}

/// The first address `scheme://authority` resolves to, for the report (a proxy may
/// resolve names the host cannot, so this is never a failure by itself).
fn resolve(base_url: &str) -> Option<String> {
    use std::net::ToSocketAddrs;
    let (scheme, authority) = base_url.split_once("://")?;
    let port = if scheme == "https" { 443 } else { 80 };
    let mut addrs = authority
        .to_socket_addrs()
        .or_else(|_| format!("{authority}:{port}").to_socket_addrs())
        .ok()?;
    Some(addrs.next()?.ip().to_string())
}

fn endpoint_failed(config: &Config, endpoint: &str, reason: &str) -> StepResult {
    let lower = reason.to_ascii_lowercase();
    let (what, fix) = if lower.contains("certificate") || lower.contains("tls") {
        let fix = match &config.ca_file {
            Some(f) => format!(
                "the certificate does not verify against ca_file {} or the built-in roots: put the right CA there (a TLS-inspecting proxy's CA, for one) and check the clock",
                f.display()
            ),
            None => "if a proxy inspects TLS or the endpoint is private, set ca_file to its CA bundle; else check the clock and that endpoint is right".to_string(),
        };
        ("TLS verification failed", fix)
    } else if lower.contains("host not found") || lower.contains("lookup") {
        (
            "the name does not resolve",
            "check DNS (/etc/resolv.conf; on Huawei Cloud use the private DNS servers of the region) or set endpoint".to_string(),
        )
    } else if lower.contains("timed out") {
        ("timed out", CONNECT_FIX.to_string())
    } else {
        ("cannot connect", CONNECT_FIX.to_string())
    };
    StepResult::fail(
        "endpoint",
        format!("{endpoint}: {what}: {}", explain_tls(reason)),
        fix,
    )
}

fn step_signed_request(config: &Config, found: &Found) -> StepResult {
    const STEP: &str = "signed_request";
    if !found.credentials_ok || found.identity.is_none() {
        return StepResult::skip(STEP, "needs credentials and identity");
    }
    if !found.endpoint_ok {
        return StepResult::skip(STEP, "needs a working endpoint");
    }
    let reporter = Reporter::with_timeouts(config, metadata::DEFAULT_TIMEOUT, check_timeouts());
    let mut reporter = match reporter {
        Ok(r) => r,
        Err(e) => return StepResult::fail(STEP, e.message(), SETUP_FIX),
    };
    let probe = reporter.probe();
    probe_result(config, &probe, reporter.clock_offset_ms())
}

/// Turn the agent's signed `POST []` into a step result; `offset_ms` is the clock
/// correction the agent applied.
pub fn probe_result(config: &Config, probe: &Probe, offset_ms: i64) -> StepResult {
    const STEP: &str = "signed_request";
    match probe {
        Probe::AuthOk { status, detail } if *status == 400 || (200..300).contains(status) => {
            let corrected = match offset_ms / 1000 {
                0 => String::new(),
                s => format!("; signed with Cloud Eye's time ({s:+} s from the local clock)"),
            };
            StepResult::ok(
                STEP,
                format!("signature and credentials accepted: an empty body got HTTP {status} ({detail}), as expected; nothing written{corrected}"),
            )
        }
        Probe::AuthOk { status: 404, detail } => StepResult::fail(
            STEP,
            format!("HTTP 404 for metric-data: {detail}"),
            "check endpoint and project_id",
        ),
        Probe::AuthOk { status, detail } => StepResult::fail(
            STEP,
            format!("unexpected HTTP {status}: {detail}"),
            "check endpoint (it must be Cloud Eye's)",
        ),
        // The agent's own security key fetch found no agency.
        Probe::AuthFailed { status: 0, reason } => StepResult::fail(STEP, reason, AGENCY_FIX),
        Probe::AuthFailed { status: 403, reason } => StepResult::fail(
            STEP,
            format!("Cloud Eye refused the request: {reason}"),
            "grant the user or agency the CES Administrator role (action ces:metricData:create) in this region and project",
        ),
        Probe::AuthFailed { reason, .. } => {
            let fix = if config.has_static_credentials() {
                "check access_key and secret_key (IAM, My Credentials, Access Keys) and the clock"
            } else {
                "the temporary credentials were refused: re-attach the agency cesagency and check the clock"
            };
            StepResult::fail(
                STEP,
                format!("Cloud Eye refused the signature or credentials: {reason}"),
                fix,
            )
        }
        // Retryable answers (429, 5xx) are described as "HTTP ..."; the rest had no reply.
        Probe::Failed { reason } if reason.starts_with("HTTP ") => StepResult::warn(
            STEP,
            format!("Cloud Eye is busy: {reason}"),
            "nothing to do if it passes later; the agent spools and retries",
        ),
        Probe::Failed { reason } => StepResult::fail(
            STEP,
            format!("POST metric-data failed: {reason}"),
            "retry; the endpoint step passed, so this is likely transient",
        ),
    }
}

fn step_clock(found: &Found) -> StepResult {
    const STEP: &str = "clock";
    const NTP: &str = "synchronise the clock: enable chronyd, systemd-timesyncd or ntpd";
    if !found.endpoint_ok {
        return StepResult::skip(STEP, "needs a reply from the endpoint");
    }
    let Some(offset_ms) = found.offset_ms else {
        return StepResult::warn(
            STEP,
            "Cloud Eye's reply had no usable Date header: offset unknown",
            NTP,
        );
    };
    let secs = offset_ms / 1000;
    let abs = secs.abs();
    if abs <= CLOCK_WARN_SECS {
        return StepResult::ok(
            STEP,
            format!("offset {secs:+} s (within {CLOCK_WARN_SECS} s)"),
        );
    }
    let direction = if secs > 0 { "behind" } else { "ahead of" };
    let detail = format!("local clock is {abs} s {direction} Cloud Eye");
    if abs <= CLOCK_LIMIT_SECS {
        return StepResult::warn(STEP, detail, NTP);
    }
    // Not a failure: the agent signs and stamps with the offset it learns from `Date`.
    StepResult::warn(
        STEP,
        format!("{detail}: past Cloud Eye's 15 min limit, so the agent signs and stamps with the server's time"),
        NTP,
    )
}

fn step_spool(config: &Config) -> StepResult {
    const STEP: &str = "spool";
    let dir = config.state_dir.join("spool");
    let state = config.state_dir.display();
    let chown = format!(
        "the agent's user must own state_dir: chown -R cloudeye-agent: {state} && chmod 700 {state}"
    );
    let summary = match spool::summary(&dir) {
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
        .map(|ms| format!(", oldest collected at {}", format_utc(ms)))
        .unwrap_or_default();
    let detail = format!(
        "{} records ({} points) waiting, {} bytes on disk{oldest}",
        summary.records, summary.items, summary.disk_bytes
    );
    if summary.disk_bytes > config.spool_max_bytes {
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

/// rustls names certificate problems in CamelCase; say what they mean.
fn explain_tls(message: &str) -> String {
    let message = message
        .strip_prefix("connection failed: ")
        .unwrap_or(message);
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

/// An access key shown to operators: its first 4 characters only.
fn mask(ak: &str) -> String {
    let head: String = ak.chars().take(4).collect();
    format!("{head}...")
}
