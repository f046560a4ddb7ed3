//! A fake Huawei Cloud for integration tests: a metadata service (token flow, securitykey,
//! meta_data.json) and a Cloud Eye endpoint that checks what the real one checks —
//! signature (with the independent [`sigcheck`](super::sigcheck)), X-Sdk-Date within 15 min
//! of ITS clock, security token and credential expiry, project id, body limits and the
//! collect_time window — and records every accepted item.
//!
//! Faults are scripted: `ces_script` replies are used first, one per POST, before any
//! verification (status + body + headers, delays, dropped connections); `skew_ms` shifts
//! the server clock (and its `Date` header); `securitykey_reply` / `meta_reply` replace the
//! metadata answers (garbage, oversized, never answering).

use super::fake_server::{http_date, FakeServer, Reply, Request, Response};
use super::sigcheck;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const AGENCY_BODY: &str = "401 Unauthorized\nPlease configure Cloud Service Agency first";
pub const MAX_ITEMS: usize = 10_000;
pub const MAX_BODY: usize = 512 * 1024;
const SKEW_LIMIT_S: i64 = 15 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// PUT returns a token; GETs without a valid one get 401.
    Required,
    /// PUT answers this status (404/405/503); GETs need no token.
    Unsupported(u16),
}

/// One scripted Cloud Eye answer, used before verification.
#[derive(Debug, Clone)]
pub enum Scripted {
    Status {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    Delay(Duration),
    Drop,
}

impl Scripted {
    pub fn status(status: u16, body: &str) -> Scripted {
        Scripted::Status {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }
    pub fn with_header(status: u16, body: &str, name: &str, value: &str) -> Scripted {
        Scripted::Status {
            status,
            body: body.to_string(),
            headers: vec![(name.to_string(), value.to_string())],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Issued {
    pub access: String,
    pub secret: String,
    pub token: String,
    pub expires_at_s: i64,
}

/// Everything the fake cloud knows; tests read and change it through [`FakeCloud::state`].
#[derive(Debug)]
pub struct CloudState {
    pub token_mode: TokenMode,
    pub valid_tokens: Vec<String>,
    pub tokens_issued: u32,
    pub agency: bool,
    pub cred_lifetime: Duration,
    /// `expires_at` with microseconds (`.574000Z`) or without fraction.
    pub fractional_expiry: bool,
    pub issued: Vec<Issued>,
    pub meta_json: String,
    pub securitykey_reply: Option<Reply>,
    pub meta_reply: Option<Reply>,
    /// Server clock minus real clock, for Cloud Eye (and metadata if `skew_metadata`).
    pub skew_ms: i64,
    pub skew_metadata: bool,
    /// Static AK/SK pairs Cloud Eye accepts besides the issued ones.
    pub static_keys: Vec<(String, String)>,
    pub project_id: String,
    pub ces_script: VecDeque<Scripted>,
    pub accepted: Vec<serde_json::Value>,
    /// Why each rejected Cloud Eye request was rejected.
    pub rejections: Vec<String>,
}

impl Default for CloudState {
    fn default() -> CloudState {
        CloudState {
            token_mode: TokenMode::Required,
            valid_tokens: Vec::new(),
            tokens_issued: 0,
            agency: true,
            cred_lifetime: Duration::from_secs(3600),
            fractional_expiry: true,
            issued: Vec::new(),
            meta_json: default_meta("AGT.normal"),
            securitykey_reply: None,
            meta_reply: None,
            skew_ms: 0,
            skew_metadata: true,
            static_keys: Vec::new(),
            project_id: "proj0001".to_string(),
            ces_script: VecDeque::new(),
            accepted: Vec::new(),
            rejections: Vec::new(),
        }
    }
}

pub fn default_meta(spec_code: &str) -> String {
    format!(
        r#"{{"uuid":"inst-0001","project_id":"proj0001","availability_zone":"xx-test-1a","meta":{{"metering.resourcespeccode":"{spec_code}"}}}}"#
    )
}

pub struct FakeCloud {
    pub metadata: FakeServer,
    pub ces: FakeServer,
    state: Arc<Mutex<CloudState>>,
}

impl FakeCloud {
    pub fn start(state: CloudState) -> FakeCloud {
        let state = Arc::new(Mutex::new(state));
        let (s1, s2) = (state.clone(), state.clone());
        let metadata = FakeServer::start(move |req| metadata_handler(&s1, req));
        let ces = FakeServer::start(move |req| ces_handler(&s2, req));
        FakeCloud {
            metadata,
            ces,
            state,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, CloudState> {
        self.state.lock().unwrap()
    }

    /// A config pointing at both fake servers; `extra` is merged JSON (`"key": value, ...`).
    pub fn config(&self, extra: &str) -> cloudeye_agent::config::Config {
        let sep = if extra.trim().is_empty() { "" } else { "," };
        let text = format!(
            r#"{{"metadata_url": "{}", "endpoint": "{}"{sep}{extra}}}"#,
            self.metadata.url(),
            self.ces.url()
        );
        cloudeye_agent::config::Config::parse(&text).unwrap()
    }

    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.state().accepted.clone()
    }

    pub fn ces_posts(&self) -> Vec<Request> {
        self.ces.requests()
    }

    pub fn metadata_requests(&self, path: &str) -> usize {
        self.metadata
            .requests()
            .iter()
            .filter(|r| r.path() == path)
            .count()
    }
}

pub fn real_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn server_time(skew_ms: i64) -> SystemTime {
    let now = real_now_ms() + skew_ms;
    UNIX_EPOCH + Duration::from_millis(now.max(0) as u64)
}

fn respond(status: u16, body: &str, skew_ms: i64) -> Reply {
    Reply::Respond(Response::new(status, body).header("Date", &http_date(server_time(skew_ms))))
}

fn rfc3339(secs: i64, fractional: bool) -> String {
    let t = http_date(UNIX_EPOCH + Duration::from_secs(secs as u64));
    // "Sun, 06 Nov 1994 08:49:37 GMT" -> "1994-11-06T08:49:37"
    let p: Vec<&str> = t.split(' ').collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| *x == p[2]).unwrap() + 1;
    let frac = if fractional { ".574000" } else { "" };
    format!("{}-{m:02}-{}T{}{frac}Z", p[3], p[1], p[4])
}

fn metadata_handler(state: &Mutex<CloudState>, req: &Request) -> Reply {
    let mut s = state.lock().unwrap();
    let skew = if s.skew_metadata { s.skew_ms } else { 0 };
    if req.path() == "/meta-data/latest/api/token" {
        if req.method != "PUT" {
            return respond(405, "", skew);
        }
        return match s.token_mode {
            TokenMode::Unsupported(status) => respond(status, "", skew),
            TokenMode::Required => {
                if req.header("x-metadata-token-ttl-seconds").is_none() {
                    return respond(400, "missing ttl", skew);
                }
                s.tokens_issued += 1;
                let token = format!("mdtoken-{}", s.tokens_issued);
                s.valid_tokens.push(token.clone());
                respond(200, &token, skew)
            }
        };
    }
    if s.token_mode == TokenMode::Required {
        let ok = req
            .header("x-metadata-token")
            .is_some_and(|t| s.valid_tokens.iter().any(|v| v == t));
        if !ok {
            return respond(401, "401 Unauthorized", skew);
        }
    }
    match req.path() {
        "/openstack/latest/securitykey" => {
            if let Some(r) = s.securitykey_reply.clone() {
                return r;
            }
            if !s.agency {
                return respond(401, AGENCY_BODY, skew);
            }
            let n = s.issued.len() + 1;
            let expires_at_s =
                (real_now_ms() + s.skew_ms) / 1000 + s.cred_lifetime.as_secs() as i64;
            let issued = Issued {
                access: format!("TMPAK{n:04}"),
                secret: format!("tmp-secret-{n}"),
                token: format!("security-token-{n}"),
                expires_at_s,
            };
            let body = format!(
                r#"{{"credential":{{"access":"{}","expires_at":"{}","secret":"{}","securitytoken":"{}"}}}}"#,
                issued.access,
                rfc3339(expires_at_s, s.fractional_expiry),
                issued.secret,
                issued.token
            );
            s.issued.push(issued);
            respond(200, &body, skew)
        }
        "/openstack/latest/meta_data.json" => match s.meta_reply.clone() {
            Some(r) => r,
            None => respond(200, &s.meta_json.clone(), skew),
        },
        _ => respond(404, "not found", skew),
    }
}

fn ces_handler(state: &Mutex<CloudState>, req: &Request) -> Reply {
    let mut s = state.lock().unwrap();
    let skew = s.skew_ms;
    if let Some(step) = s.ces_script.pop_front() {
        return match step {
            Scripted::Drop => Reply::Drop,
            Scripted::Delay(d) => Reply::Delay(d, Response::new(201, "")),
            Scripted::Status {
                status,
                body,
                headers,
            } => {
                let mut r =
                    Response::new(status, body).header("Date", &http_date(server_time(skew)));
                for (k, v) in headers {
                    r = r.header(&k, &v);
                }
                Reply::Respond(r)
            }
        };
    }
    match check_request(&s, req) {
        Err((status, code, msg)) => {
            s.rejections.push(format!("{status} {code} {msg}"));
            let body = serde_json::json!({"error_code": code, "error_msg": msg}).to_string();
            respond(status, &body, skew)
        }
        Ok(items) => {
            s.accepted.extend(items);
            respond(201, "", skew)
        }
    }
}

type Rejection = (u16, &'static str, String);

fn check_request(s: &CloudState, req: &Request) -> Result<Vec<serde_json::Value>, Rejection> {
    let auth_fail = |m: String| {
        (
            401u16,
            "APIG.0301",
            format!("Incorrect IAM authentication information: {m}"),
        )
    };
    let expected_path = format!("/V1.0/{}/metric-data", s.project_id);
    if req.method != "POST" || req.path() != expected_path {
        return Err((
            404,
            "ces.0016",
            format!("no such resource {} {}", req.method, req.target),
        ));
    }
    let now_s = (real_now_ms() + s.skew_ms) / 1000;
    let date = req.header("x-sdk-date").and_then(sigcheck::parse_sdk_date);
    match date {
        None => return Err(auth_fail("x-sdk-date missing or malformed".into())),
        Some(d) if (d - now_s).abs() > SKEW_LIMIT_S => {
            return Err(auth_fail(format!(
            "calc ak sk signature fail:signature expired, signature time:{d},server time:{now_s}"
        )))
        }
        _ => {}
    }
    let sk_for = |ak: &str| {
        s.issued
            .iter()
            .find(|i| i.access == ak)
            .map(|i| i.secret.clone())
            .or_else(|| {
                s.static_keys
                    .iter()
                    .find(|(a, _)| a == ak)
                    .map(|(_, k)| k.clone())
            })
    };
    let auth = sigcheck::verify(req, sk_for).map_err(auth_fail)?;
    if let Some(issued) = s.issued.iter().find(|i| i.access == auth.access) {
        if !auth.signed_headers.iter().any(|h| h == "x-security-token") {
            return Err(auth_fail("x-security-token is not signed".into()));
        }
        if req.header("x-security-token") != Some(issued.token.as_str()) {
            return Err(auth_fail("security token mismatch".into()));
        }
        if now_s >= issued.expires_at_s {
            return Err(auth_fail("the temporary AK/SK has expired".into()));
        }
    }
    if req.header("x-project-id") != Some(s.project_id.as_str()) {
        return Err((
            400,
            "ces.0003",
            "X-Project-Id does not match the URL".into(),
        ));
    }
    check_body(&req.body, now_s * 1000)
}

fn check_body(body: &[u8], now_ms: i64) -> Result<Vec<serde_json::Value>, Rejection> {
    if body.len() >= MAX_BODY {
        return Err((
            400,
            "ces.0014",
            format!("request body is {} bytes, over 512KB", body.len()),
        ));
    }
    let items: Vec<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| (400u16, "ces.0014", format!("body is not a JSON array: {e}")))?;
    if items.is_empty() {
        return Err((400, "ces.0001", "The content must be specified.".into()));
    }
    if items.len() > MAX_ITEMS {
        return Err((
            400,
            "ces.0014",
            format!("{} items, over 10000", items.len()),
        ));
    }
    let earliest = now_ms - 3 * 86_400_000 + 10_000;
    let latest = now_ms + 600_000 - 10_000;
    for item in &items {
        let t = item["collect_time"].as_i64().ok_or((
            400u16,
            "ces.0014",
            "collect_time missing".to_string(),
        ))?;
        if t < earliest || t > latest {
            return Err((
                400,
                "ces.0014",
                format!("collect_time {t} outside [{earliest}, {latest}]"),
            ));
        }
    }
    Ok(items)
}
