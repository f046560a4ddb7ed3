//! `check`: step logic against a fake environment, then the real binary against a fake
//! metadata service / Cloud Eye on 127.0.0.1 (plain http and a self-signed https).

mod common;

use cloudeye_agent::check::{
    render_json, render_text, run_steps, CheckEnv, EndpointProbe, HttpReply, NetError,
    NetErrorKind, NetResult, SpoolSummary, Status, StepResult,
};
use cloudeye_agent::config::{Config, ConfigSource, Secret};
use cloudeye_agent::credentials::Credentials;
use common::fake_server::{http_date, FakeServer, Reply, Response};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

// 2026-01-01T00:00:00Z: 56 years from 1970 = 20454 days (56*365 = 20440 + 14 leap days)
const NOW_MS: i64 = 20_454 * 86_400_000;
const NO_AGENCY: &str = "401 Unauthorized\nPlease configure Cloud Service Agency first";
const EMPTY_CONTENT: &str =
    r#"{"error_code":"ces.0001","error_msg":"The content must be specified."}"#;

fn reply(status: u16, body: &str) -> NetResult {
    Ok(HttpReply {
        status,
        body: body.to_string(),
        date: Some("Thu, 01 Jan 2026 00:00:00 GMT".to_string()),
        received_ms: NOW_MS,
    })
}

fn refused() -> NetResult {
    Err(NetError::new(
        NetErrorKind::Connect,
        "Connection refused (os error 111)",
    ))
}

fn security_key_body(expires: &str) -> String {
    format!(
        r#"{{"credential":{{"access":"AKTEMPORARY","secret":"SK-SECRET-VALUE","securitytoken":"ST-SECRET-VALUE","expires_at":"{expires}"}}}}"#
    )
}

const META: &str = r#"{"uuid":"inst-1","project_id":"proj-1","region_id":"cn-north-4","meta":{"metering.resourcespeccode":"s6.large.2.linux"}}"#;

struct FakeEnv {
    token: NetResult,
    security_key: NetResult,
    meta_data: NetResult,
    endpoint: EndpointProbe,
    signed: NetResult,
    spool: io::Result<Option<SpoolSummary>>,
    signed_dates: Vec<String>,
}

impl FakeEnv {
    /// Everything works: an ECS with an agency, Cloud Eye answering 400 ces.0001.
    fn healthy() -> FakeEnv {
        FakeEnv {
            token: reply(200, "TOKEN-VALUE"),
            // 90 minutes after NOW
            security_key: reply(200, &security_key_body("2026-01-01T01:30:00.000000Z")),
            meta_data: reply(200, META),
            endpoint: EndpointProbe {
                resolved: Ok(vec!["100.125.1.1".to_string()]),
                reply: reply(404, ""),
            },
            signed: reply(400, EMPTY_CONTENT),
            spool: Ok(None),
            signed_dates: Vec::new(),
        }
    }
}

impl CheckEnv for FakeEnv {
    fn now_ms(&self) -> i64 {
        NOW_MS
    }
    fn metadata_token_probe(&mut self) -> NetResult {
        self.token.clone()
    }
    fn security_key(&mut self, token: Option<&Secret>) -> NetResult {
        let issued = self.token.as_ref().ok().filter(|r| r.status == 200);
        assert_eq!(token.map(Secret::expose), issued.map(|r| r.body.as_str()));
        self.security_key.clone()
    }
    fn meta_data(&mut self, _token: Option<&Secret>) -> NetResult {
        self.meta_data.clone()
    }
    fn endpoint_probe(&mut self, endpoint: &str) -> EndpointProbe {
        assert!(endpoint.starts_with("https://ces.cn-north-4.") || endpoint.starts_with("http"));
        self.endpoint.clone()
    }
    fn signed_probe(&mut self, _e: &str, project: &str, c: &Credentials, date: &str) -> NetResult {
        assert_eq!(project, "proj-1");
        assert!(!c.access_key.is_empty());
        self.signed_dates.push(date.to_string());
        self.signed.clone()
    }
    fn spool_summary(&mut self, _dir: &Path) -> io::Result<Option<SpoolSummary>> {
        match &self.spool {
            Ok(s) => Ok(*s),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

fn source() -> ConfigSource {
    ConfigSource {
        path: PathBuf::from("/etc/cloudeye-agent/config.json"),
        explicit: true,
    }
}

fn run(config: &str, env: &mut FakeEnv) -> Vec<StepResult> {
    run_steps(&source(), &Config::parse(config), env)
}

fn statuses(results: &[StepResult]) -> Vec<(&'static str, Status)> {
    results.iter().map(|r| (r.step, r.status)).collect()
}

fn get<'a>(results: &'a [StepResult], step: &str) -> &'a StepResult {
    results.iter().find(|r| r.step == step).unwrap()
}

use Status::{Fail, Ok as Pass, Skip, Warn};

#[test]
fn healthy_ecs_passes_every_step() {
    let mut env = FakeEnv::healthy();
    let r = run("{}", &mut env);
    assert_eq!(
        statuses(&r),
        vec![
            ("config", Pass),
            ("proc", Pass),
            ("metadata", Pass),
            ("agency", Pass),
            ("credentials", Pass),
            ("identity", Pass),
            ("endpoint", Pass),
            ("signed_request", Pass),
            ("clock", Pass),
            ("spool", Pass),
        ]
    );
    assert_eq!(
        get(&r, "metadata").detail,
        "http://169.254.169.254 reachable; session tokens: yes"
    );
    // expires 01:30, now 00:00 -> 90 minutes
    assert_eq!(
        get(&r, "credentials").detail,
        "temporary access key AKTE... valid until 2026-01-01T01:30:00Z (90 min from now)"
    );
    assert_eq!(
        get(&r, "identity").detail,
        "instance inst-1, project proj-1, region cn-north-4, namespace AGT.ECS (ECS)"
    );
    assert!(get(&r, "signed_request").detail.contains("ces.0001"));
    assert_eq!(get(&r, "clock").detail, "offset +0 s (within 60 s)");
    assert_eq!(env.signed_dates, vec!["20260101T000000Z"]);
    let text = render_text(&r);
    assert!(
        !text.contains("SECRET-VALUE") && !text.contains("TOKEN-VALUE"),
        "{text}"
    );
    assert!(
        text.ends_with("result: ready to report (0 warnings)\n"),
        "{text}"
    );
}

#[test]
fn no_agency_names_cesagency_and_the_console_steps() {
    let mut env = FakeEnv::healthy();
    env.security_key = reply(401, NO_AGENCY);
    let r = run("{}", &mut env);
    let agency = get(&r, "agency");
    assert_eq!(agency.status, Fail);
    let fix = agency.fix.as_deref().unwrap();
    for needle in [
        "cesagency",
        "op_svc_ces",
        "Server Monitoring",
        "Configure",
        "Agency",
    ] {
        assert!(fix.contains(needle), "{needle} missing from: {fix}");
    }
    assert_eq!(get(&r, "credentials").status, Skip);
    assert_eq!(get(&r, "identity").status, Pass);
    assert_eq!(get(&r, "signed_request").status, Skip);
    assert!(render_text(&r).contains("result: not ready: agency failed"));
}

#[test]
fn metadata_unreachable_skips_what_depends_on_it() {
    let mut env = FakeEnv::healthy();
    env.token = refused();
    let r = run("{}", &mut env);
    assert_eq!(
        statuses(&r),
        vec![
            ("config", Pass),
            ("proc", Pass),
            ("metadata", Fail),
            ("agency", Skip),
            ("credentials", Skip),
            ("identity", Skip),
            ("endpoint", Skip),
            ("signed_request", Skip),
            ("clock", Skip),
            ("spool", Pass),
        ]
    );
    let m = get(&r, "metadata");
    assert!(m.detail.contains("Connection refused"), "{}", m.detail);
    assert!(m.fix.as_deref().unwrap().contains("169.254.0.0/16"));
}

#[test]
fn metadata_without_tokens_still_works() {
    let mut env = FakeEnv::healthy();
    env.token = reply(404, "");
    let r = run("{}", &mut env);
    assert!(get(&r, "metadata")
        .detail
        .ends_with("session tokens: no (HTTP 404 to the token request)"));
    assert!(r.iter().all(|s| s.status == Pass));
}

#[test]
fn static_credentials_and_identity_need_no_metadata() {
    let mut env = FakeEnv::healthy();
    env.token = refused();
    let config = r#"{"access_key":"AKSTATIC123","secret_key":"SK-SECRET-VALUE","project_id":"proj-1","instance_id":"inst-9","region":"cn-north-4"}"#;
    let r = run(config, &mut env);
    assert_eq!(get(&r, "metadata").status, Skip);
    assert_eq!(get(&r, "agency").status, Skip);
    assert_eq!(
        get(&r, "credentials").detail,
        "static access key AKST... from the config (no expiry)"
    );
    assert_eq!(
        get(&r, "identity").detail,
        "instance inst-9, project proj-1, region cn-north-4, namespace AGT.ECS (unknown: not asked)"
    );
    assert!(r.iter().all(|s| s.status != Fail));
    assert!(!render_json(&r).unwrap().contains("SK-SECRET-VALUE"));
}

#[test]
fn expired_credentials_fail() {
    let mut env = FakeEnv::healthy();
    env.security_key = reply(200, &security_key_body("2025-12-31T23:00:00Z"));
    let r = run("{}", &mut env);
    let c = get(&r, "credentials");
    assert_eq!(c.status, Fail);
    assert_eq!(
        c.detail,
        "temporary credentials expired at 2025-12-31T23:00:00Z (local clock says 2026-01-01T00:00:00Z)"
    );
}

#[test]
fn clock_twenty_minutes_off_is_a_warning_and_signing_uses_server_time() {
    let mut env = FakeEnv::healthy();
    let mut probe = reply(404, "").unwrap();
    probe.date = Some("Thu, 01 Jan 2026 00:20:00 GMT".to_string());
    env.endpoint.reply = Ok(probe);
    let r = run("{}", &mut env);
    let clock = get(&r, "clock");
    assert_eq!(clock.status, Warn);
    // server 00:20:00, local 00:00:00 -> local is 1200 s behind
    assert!(
        clock
            .detail
            .starts_with("local clock is 1200 s behind Cloud Eye"),
        "{}",
        clock.detail
    );
    assert!(
        clock.fix.as_deref().unwrap().contains("NTP")
            || clock.fix.as_deref().unwrap().contains("chronyd")
    );
    assert_eq!(env.signed_dates, vec!["20260101T002000Z"]);
    assert!(render_text(&r).ends_with("result: ready to report (1 warnings)\n"));
}

#[test]
fn cloud_eye_401_and_403_fail_the_signed_request() {
    let mut env = FakeEnv::healthy();
    env.signed = reply(
        401,
        r#"{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: verify aksk signature fail"}"#,
    );
    let r = run("{}", &mut env);
    let s = get(&r, "signed_request");
    assert_eq!(s.status, Fail);
    assert!(s.detail.contains("HTTP 401") && s.detail.contains("verify aksk signature fail"));
    let mut env = FakeEnv::healthy();
    env.signed = reply(
        403,
        r#"{"error_code":"ces.0017","error_msg":"insufficient rights"}"#,
    );
    let s = get(&run("{}", &mut env), "signed_request").clone();
    assert_eq!(s.status, Fail);
    assert!(s.fix.unwrap().contains("CES Administrator"));
    let mut env = FakeEnv::healthy();
    env.signed = reply(503, "");
    assert_eq!(get(&run("{}", &mut env), "signed_request").status, Warn);
}

#[test]
fn tls_failure_fails_the_endpoint_and_skips_later_network_steps() {
    let mut env = FakeEnv::healthy();
    env.endpoint.reply = Err(NetError::new(
        NetErrorKind::Tls,
        "invalid peer certificate: UnknownIssuer",
    ));
    let r = run("{}", &mut env);
    let e = get(&r, "endpoint");
    assert_eq!(e.status, Fail);
    assert!(e.detail.contains("TLS verification failed"), "{}", e.detail);
    assert!(e.fix.as_deref().unwrap().contains("ca_file"));
    assert_eq!(get(&r, "signed_request").status, Skip);
    assert_eq!(get(&r, "clock").status, Skip);
}

#[test]
fn spool_summary_and_overflow() {
    let mut env = FakeEnv::healthy();
    let dir = common::temp_dir("spoolstate");
    let config = format!(
        r#"{{"state_dir":"{}","spool_max_bytes":1000}}"#,
        dir.display()
    );
    env.spool = Ok(Some(SpoolSummary {
        batches: 3,
        bytes: 900,
        oldest_ms: Some(NOW_MS - 600_000),
    }));
    assert_eq!(
        get(&run(&config, &mut env), "spool").detail,
        "3 batches, 900 bytes, oldest from 2025-12-31T23:50:00Z"
    );
    env.spool = Ok(Some(SpoolSummary {
        batches: 4,
        bytes: 1001,
        oldest_ms: None,
    }));
    assert_eq!(get(&run(&config, &mut env), "spool").status, Warn);
    env.spool = Err(io::Error::from(io::ErrorKind::PermissionDenied));
    let s = get(&run(&config, &mut env), "spool").clone();
    assert_eq!(s.status, Fail);
    assert!(s.fix.unwrap().contains("chown -R cloudeye-agent:"));
}

#[test]
fn bad_config_fails_first_and_skips_the_rest() {
    let mut env = FakeEnv::healthy();
    let r = run_steps(&source(), &Config::parse(r#"{"ttl": "long"}"#), &mut env);
    assert_eq!(r.len(), 10);
    assert_eq!(r[0].status, Fail);
    assert_eq!(r[0].detail, "key \"ttl\" must be a non-negative integer");
    assert!(r[1..]
        .iter()
        .all(|s| s.status == Skip && s.detail == "needs a valid config"));
}

#[test]
fn text_and_json_formats() {
    let results = vec![
        StepResult {
            step: "config",
            status: Pass,
            detail: "/x parsed".into(),
            fix: None,
        },
        StepResult {
            step: "agency",
            status: Fail,
            detail: "no agency".into(),
            fix: Some("attach cesagency".into()),
        },
        StepResult {
            step: "clock",
            status: Skip,
            detail: "needs a reply".into(),
            fix: None,
        },
    ];
    assert_eq!(
        render_text(&results),
        "ok    config          /x parsed\n\
         FAIL  agency          no agency | fix: attach cesagency\n\
         skip  clock           needs a reply\n\
         result: not ready: agency failed\n"
    );
    let v: serde_json::Value = serde_json::from_str(&render_json(&results).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"step": "config", "status": "ok", "detail": "/x parsed", "fix": null},
            {"step": "agency", "status": "fail", "detail": "no agency", "fix": "attach cesagency"},
            {"step": "clock", "status": "skip", "detail": "needs a reply", "fix": null},
        ])
    );
}

// ---- the binary against servers on 127.0.0.1 ----

struct Run {
    ok: bool,
    steps: Vec<serde_json::Value>,
    stdout: String,
}

impl Run {
    fn status(&self, step: &str) -> &str {
        self.step(step)["status"].as_str().unwrap()
    }
    fn step(&self, step: &str) -> &serde_json::Value {
        self.steps.iter().find(|s| s["step"] == step).unwrap()
    }
    fn text(&self, step: &str, field: &str) -> String {
        self.step(step)[field].as_str().unwrap_or("").to_string()
    }
}

fn write_config(dir: &Path, json: &str, mode: u32) -> PathBuf {
    let path = dir.join("config.json");
    std::fs::write(&path, json).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn run_check(config: &Path, json: bool) -> Run {
    let mut cmd = common::agent_command();
    cmd.arg("--config").arg(config).arg("check");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.env_remove("RUST_LOG").output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let steps = if json {
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    } else {
        Vec::new()
    };
    Run {
        ok: out.status.success(),
        steps,
        stdout,
    }
}

/// A metadata service and Cloud Eye in one server, with a chosen agency reply,
/// metric-data reply and Date offset.
fn cloud(agency: (u16, &'static str), ces: (u16, &'static str), clock_offset: i64) -> FakeServer {
    let expires = http_free_iso(SystemTime::now() + Duration::from_secs(3600));
    FakeServer::start(move |req| {
        let date = if clock_offset >= 0 {
            SystemTime::now() + Duration::from_secs(clock_offset as u64)
        } else {
            SystemTime::now() - Duration::from_secs((-clock_offset) as u64)
        };
        let resp = match (req.method.as_str(), req.path()) {
            ("PUT", "/meta-data/latest/api/token") => Response::new(200, "TOKEN-VALUE"),
            ("GET", "/openstack/latest/securitykey") if agency.0 == 200 => {
                Response::new(200, security_key_body(&expires))
            }
            ("GET", "/openstack/latest/securitykey") => Response::new(agency.0, agency.1),
            ("GET", "/openstack/latest/meta_data.json") => Response::new(200, META),
            ("POST", "/V1.0/proj-1/metric-data") => Response::new(ces.0, ces.1),
            _ => Response::new(
                404,
                r#"{"error_code":"APIGW.0101","error_msg":"The API does not exist"}"#,
            ),
        };
        Reply::Respond(resp.header("Date", &http_date(date)))
    })
}

/// ISO 8601 UTC with microseconds, as the metadata service writes expires_at.
fn http_free_iso(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    cloudeye_agent::logging::format_utc(ms).replace('Z', ".000000Z")
}

fn cloud_config(dir: &Path, server: &FakeServer) -> PathBuf {
    let json = format!(
        r#"{{"metadata_url":"{0}","endpoint":"{0}","state_dir":"{1}"}}"#,
        server.url(),
        dir.display()
    );
    write_config(dir, &json, 0o600)
}

#[test]
fn binary_healthy_fake_cloud() {
    let dir = common::temp_dir("check-ok");
    let server = cloud((200, ""), (400, EMPTY_CONTENT), 0);
    let run = run_check(&cloud_config(&dir, &server), true);
    assert!(run.ok, "{}", run.stdout);
    for step in [
        "config",
        "proc",
        "metadata",
        "agency",
        "credentials",
        "identity",
        "signed_request",
        "clock",
        "spool",
    ] {
        assert_eq!(run.status(step), "ok", "{step}: {}", run.stdout);
    }
    assert_eq!(run.status("endpoint"), "warn"); // plain http
    assert!(!run.stdout.contains("SECRET-VALUE") && !run.stdout.contains("TOKEN-VALUE"));
    let reqs = server.requests();
    let post = reqs.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(post.body, b"[]");
    assert_eq!(post.header("x-security-token"), Some("ST-SECRET-VALUE"));
    assert_eq!(post.header("x-project-id"), Some("proj-1"));
    let auth = post.header("authorization").unwrap();
    assert!(
        auth.starts_with("SDK-HMAC-SHA256 Access=AKTEMPORARY, SignedHeaders=host;x-project-id;x-sdk-date;x-security-token, Signature="),
        "{auth}"
    );
    let get_key = reqs
        .iter()
        .find(|r| r.path() == "/openstack/latest/securitykey")
        .unwrap();
    assert_eq!(get_key.header("x-metadata-token"), Some("TOKEN-VALUE"));
}

#[test]
fn binary_no_metadata_connection_refused() {
    let dir = common::temp_dir("check-refused");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: connecting is refused
    let json = format!(
        r#"{{"metadata_url":"http://127.0.0.1:{port}","state_dir":"{}"}}"#,
        dir.display()
    );
    let run = run_check(&write_config(&dir, &json, 0o600), true);
    assert!(!run.ok);
    assert_eq!(run.status("metadata"), "fail");
    assert!(
        run.text("metadata", "detail").contains("refused"),
        "{}",
        run.stdout
    );
    assert_eq!(run.status("agency"), "skip");
    assert_eq!(run.status("signed_request"), "skip");
}

#[test]
fn binary_no_agency() {
    let dir = common::temp_dir("check-agency");
    let server = cloud((401, NO_AGENCY), (400, EMPTY_CONTENT), 0);
    let run = run_check(&cloud_config(&dir, &server), false);
    assert!(!run.ok);
    let line = run
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("agency"))
        .unwrap();
    assert!(line.starts_with("FAIL  agency"), "{line}");
    assert!(
        line.contains("cesagency") && line.contains("op_svc_ces"),
        "{line}"
    );
}

#[test]
fn binary_clock_twenty_minutes_off() {
    let dir = common::temp_dir("check-clock");
    let server = cloud((200, ""), (400, EMPTY_CONTENT), 1200);
    let run = run_check(&cloud_config(&dir, &server), true);
    assert!(run.ok, "{}", run.stdout);
    assert_eq!(run.status("clock"), "warn");
    // 1200 s, give or take the one-second resolution of Date and the run time
    let detail = run.text("clock", "detail");
    assert!(
        ["1199 s behind", "1200 s behind", "1201 s behind"]
            .iter()
            .any(|s| detail.contains(s)),
        "{detail}"
    );
}

#[test]
fn binary_cloud_eye_401() {
    let dir = common::temp_dir("check-401");
    let server = cloud(
        (200, ""),
        (
            401,
            r#"{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: verify aksk signature fail"}"#,
        ),
        0,
    );
    let run = run_check(&cloud_config(&dir, &server), true);
    assert!(!run.ok);
    assert_eq!(run.status("signed_request"), "fail");
    assert!(run
        .text("signed_request", "detail")
        .contains("verify aksk signature fail"));
}

#[test]
fn binary_secret_in_world_readable_config_fails_with_chmod_fix() {
    let dir = common::temp_dir("check-mode");
    let json = r#"{"access_key":"AK","secret_key":"SK-SECRET-VALUE"}"#;
    let path = write_config(&dir, json, 0o644);
    let run = run_check(&path, true);
    assert!(!run.ok);
    assert_eq!(run.status("config"), "fail");
    assert!(run
        .text("config", "detail")
        .contains("readable by group or others (mode 644)"));
    assert_eq!(
        run.text("config", "fix"),
        format!("run: chmod 600 {}", path.display())
    );
    assert!(run.steps[1..].iter().all(|s| s["status"] == "skip"));
    assert!(!run.stdout.contains("SK-SECRET-VALUE"));
}

// ---- TLS: a self-signed https "Cloud Eye" on 127.0.0.1 ----

struct TlsServer {
    port: u16,
    cert_pem: String,
}

fn tls_server() -> TlsServer {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert_der = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key)
        .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let _ = serve_one(&mut tls);
            });
        }
    });
    TlsServer {
        port,
        cert_pem: ck.cert.pem(),
    }
}

fn serve_one(s: &mut impl ReadWrite) -> io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    s.read_exact(&mut body)?;
    let (status, text) = if head.starts_with("post") {
        (400, EMPTY_CONTENT)
    } else {
        (404, "")
    };
    write!(
        s,
        "HTTP/1.1 {status} X\r\nDate: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        http_date(SystemTime::now()),
        text.len()
    )?;
    s.flush()
}

/// Read + Write in one bound.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn tls_config(dir: &Path, port: u16, ca_file: Option<&Path>) -> PathBuf {
    let ca = ca_file
        .map(|p| format!(r#","ca_file":"{}""#, p.display()))
        .unwrap_or_default();
    let json = format!(
        r#"{{"access_key":"AKSTATIC","secret_key":"SK-SECRET-VALUE","project_id":"proj-1","instance_id":"i-1","region":"r-1","endpoint":"https://127.0.0.1:{port}","state_dir":"{}"{ca}}}"#,
        dir.display()
    );
    write_config(dir, &json, 0o600)
}

#[test]
fn binary_self_signed_endpoint_fails_tls_with_a_clear_message() {
    let server = tls_server();
    let dir = common::temp_dir("check-tls-bad");
    let run = run_check(&tls_config(&dir, server.port, None), true);
    assert!(!run.ok);
    assert_eq!(run.status("endpoint"), "fail", "{}", run.stdout);
    let detail = run.text("endpoint", "detail");
    assert!(detail.contains("TLS verification failed"), "{detail}");
    assert!(detail.to_lowercase().contains("certificate"), "{detail}");
    assert!(run.text("endpoint", "fix").contains("ca_file"));
    assert_eq!(run.status("signed_request"), "skip");

    // a ca_file holding some other CA does not help
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let other_pem = dir.join("other-ca.pem");
    std::fs::write(&other_pem, other.cert.pem()).unwrap();
    let run = run_check(&tls_config(&dir, server.port, Some(&other_pem)), true);
    assert_eq!(run.status("endpoint"), "fail");
    assert!(run
        .text("endpoint", "fix")
        .contains(&other_pem.display().to_string()));
}

#[test]
fn binary_self_signed_endpoint_verifies_with_its_cert_in_ca_file() {
    let server = tls_server();
    let dir = common::temp_dir("check-tls-good");
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, &server.cert_pem).unwrap();
    let run = run_check(&tls_config(&dir, server.port, Some(&pem)), true);
    assert!(run.ok, "{}", run.stdout);
    assert_eq!(run.status("endpoint"), "ok");
    assert!(run
        .text("endpoint", "detail")
        .contains("TLS verified against ca_file"));
    assert_eq!(run.status("signed_request"), "ok");
    assert_eq!(run.status("metadata"), "skip");
}
