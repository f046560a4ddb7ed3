//! `check` in-process (`run_steps`) and as the real binary, against the fake cloud
//! (metadata service + signature-checking Cloud Eye) and a self-signed https server, all
//! on 127.0.0.1.

mod common;

use cloudeye_agent::check::{render_json, render_text, run_steps, Status, StepResult};
use cloudeye_agent::config::{Config, ConfigSource};
use cloudeye_agent::spool::{self, Record, Spool};
use common::fake_cloud::{default_meta, CloudState, FakeCloud, Scripted, TokenMode};
use common::fake_server::http_date;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

const EMPTY_CONTENT: &str =
    r#"{"error_code":"ces.0001","error_msg":"The content must be specified."}"#;
const BAD_SIGNATURE: &str = r#"{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: verify aksk signature fail"}"#;

use Status::{Fail, Ok as Pass, Skip, Warn};

fn source() -> ConfigSource {
    ConfigSource {
        path: PathBuf::from("/etc/cloudeye-agent/config.json"),
        explicit: true,
    }
}

/// A URL on 127.0.0.1 where nothing listens: connecting is refused.
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// The fake cloud's config plus `extra`, with a fresh state_dir.
fn config_for(cloud: &FakeCloud, extra: &str) -> Config {
    let dir = common::temp_dir("check-state");
    let sep = if extra.is_empty() { "" } else { "," };
    cloud.config(&format!(r#""state_dir": "{}"{sep}{extra}"#, dir.display()))
}

fn run(config: Config) -> Vec<StepResult> {
    run_steps(&source(), &Ok(config))
}

fn statuses(results: &[StepResult]) -> Vec<(&'static str, Status)> {
    results.iter().map(|r| (r.step, r.status)).collect()
}

fn get<'a>(results: &'a [StepResult], step: &str) -> &'a StepResult {
    results.iter().find(|r| r.step == step).unwrap()
}

fn no_secrets(text: &str) {
    for secret in [
        "tmp-secret-",
        "security-token-",
        "mdtoken-",
        "SK-SECRET-VALUE",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn healthy_ecs_passes_every_step() {
    let cloud = FakeCloud::start(CloudState::default());
    let r = run(config_for(&cloud, ""));
    assert_eq!(
        statuses(&r),
        vec![
            ("config", Pass),
            ("proc", Pass),
            ("metadata", Pass),
            ("agency", Pass),
            ("credentials", Pass),
            ("identity", Pass),
            ("endpoint", Warn), // plain http to 127.0.0.1
            ("signed_request", Pass),
            ("clock", Pass),
            ("spool", Pass),
        ]
    );
    assert_eq!(
        get(&r, "metadata").detail,
        format!("{} reachable; session tokens: yes", cloud.metadata.url())
    );
    // Issued for 3600 s from the (truncated) current second: 59 min and some seconds left.
    let creds = &get(&r, "credentials").detail;
    assert!(
        creds.starts_with("temporary access key TMPA... valid until ")
            && (creds.ends_with("(59 min from now)") || creds.ends_with("(60 min from now)")),
        "{creds}"
    );
    // availability_zone xx-test-1a -> region xx-test-1; spec code AGT.normal -> ECS
    assert_eq!(
        get(&r, "identity").detail,
        "instance inst-0001, project proj0001, region xx-test-1, namespace AGT.ECS (ECS)"
    );
    assert_eq!(
        get(&r, "signed_request").detail,
        "signature and credentials accepted: an empty body got HTTP 400 (ces.0001 The content must be specified.), as expected; nothing written"
    );
    assert_eq!(get(&r, "clock").detail, "offset +0 s (within 60 s)");
    // The placeholder key of the endpoint step is refused; the agent's signed [] reaches
    // the body check, which only runs after the signature, token and date were accepted.
    let rejections = cloud.state().rejections.clone();
    assert_eq!(rejections.len(), 2, "{rejections:?}");
    assert!(rejections[0].starts_with("401 APIG.0301"), "{rejections:?}");
    assert_eq!(rejections[1], "400 ces.0001 The content must be specified.");
    assert!(cloud.accepted().is_empty());
    let text = render_text(&r);
    no_secrets(&text);
    assert!(
        text.ends_with("result: ready to report (1 warnings)\n"),
        "{text}"
    );
}

#[test]
fn bare_metal_is_recognised() {
    let cloud = FakeCloud::start(CloudState {
        meta_json: default_meta("physical.s4.large"),
        ..CloudState::default()
    });
    let r = run(config_for(&cloud, ""));
    assert!(
        get(&r, "identity")
            .detail
            .ends_with("namespace SERVICE.BMS (BMS)"),
        "{r:?}"
    );
}

#[test]
fn no_agency_names_cesagency_and_the_console_steps() {
    let cloud = FakeCloud::start(CloudState {
        agency: false,
        ..CloudState::default()
    });
    let r = run(config_for(&cloud, ""));
    let agency = get(&r, "agency");
    assert_eq!(agency.status, Fail);
    assert!(agency
        .detail
        .contains("Please configure Cloud Service Agency first"));
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
    let r = run(Config::parse(&format!(r#"{{"metadata_url": "{}"}}"#, closed_url())).unwrap());
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
    assert!(m.detail.contains("refused"), "{}", m.detail);
    assert!(m.fix.as_deref().unwrap().contains("169.254.0.0/16"));
}

#[test]
fn metadata_without_tokens_still_works() {
    let cloud = FakeCloud::start(CloudState {
        token_mode: TokenMode::Unsupported(404),
        ..CloudState::default()
    });
    let r = run(config_for(&cloud, ""));
    assert!(get(&r, "metadata")
        .detail
        .ends_with("session tokens: no (reads go without one)"));
    assert!(r.iter().all(|s| s.status != Fail), "{r:?}");
    assert_eq!(get(&r, "signed_request").status, Pass);
}

#[test]
fn static_credentials_and_identity_need_no_metadata() {
    let cloud = FakeCloud::start(CloudState {
        static_keys: vec![("AKSTATIC123".into(), "SK-SECRET-VALUE".into())],
        ..CloudState::default()
    });
    let config = config_for(
        &cloud,
        &format!(
            r#""metadata_url": "{}", "access_key": "AKSTATIC123", "secret_key": "SK-SECRET-VALUE", "project_id": "proj0001", "instance_id": "inst-9", "region": "xx-test-1""#,
            closed_url()
        ),
    );
    let r = run(config);
    assert_eq!(get(&r, "metadata").status, Skip);
    assert_eq!(get(&r, "agency").status, Skip);
    assert_eq!(
        get(&r, "credentials").detail,
        "static access key AKST... from the config (no expiry)"
    );
    assert_eq!(
        get(&r, "identity").detail,
        "instance inst-9, project proj0001, region xx-test-1, namespace AGT.ECS (unknown: not asked)"
    );
    assert_eq!(get(&r, "signed_request").status, Pass, "{r:?}");
    assert!(r.iter().all(|s| s.status != Fail));
    no_secrets(&render_json(&r).unwrap());
}

#[test]
fn credential_expiry_is_judged_by_the_metadata_services_clock() {
    // The cloud's clock is 2 h behind ours. Its 1 h credentials look expired an hour ago
    // by the local clock, but they are valid by the clock that issued them, which is the
    // one the agent signs with.
    let cloud = FakeCloud::start(CloudState {
        skew_ms: -2 * 3_600_000,
        ..CloudState::default()
    });
    let r = run(config_for(&cloud, ""));
    let c = get(&r, "credentials");
    assert_eq!(c.status, Pass, "{}", c.detail);
    // 3600 s of lifetime left, give or take the test's own second
    assert!(
        c.detail.ends_with("(60 min from now)") || c.detail.ends_with("(59 min from now)"),
        "{}",
        c.detail
    );
    assert_eq!(get(&r, "signed_request").status, Pass, "{r:?}");
    // 2 h = 7200 s, give or take the Date header's second
    let clock = &get(&r, "clock").detail;
    assert!(
        clock.starts_with("local clock is 7200 s ahead of Cloud Eye")
            || clock.starts_with("local clock is 7199 s ahead of Cloud Eye"),
        "{clock}"
    );
}

#[test]
fn credentials_past_their_expiry_fail() {
    // Credentials that expire the second they are issued, by the metadata service's own
    // clock (lifetime 0, whole-second expires_at).
    let cloud = FakeCloud::start(CloudState {
        cred_lifetime: std::time::Duration::from_secs(0),
        fractional_expiry: false,
        ..CloudState::default()
    });
    let r = run(config_for(&cloud, ""));
    let c = get(&r, "credentials");
    assert_eq!(c.status, Fail, "{}", c.detail);
    assert!(
        c.detail.starts_with("temporary credentials expired at "),
        "{}",
        c.detail
    );
    assert_eq!(get(&r, "signed_request").status, Skip);
}

#[test]
fn clock_twenty_minutes_off_is_a_warning_and_signing_uses_server_time() {
    // Only Cloud Eye's clock is off, so the agent learns the offset from its refusal.
    let cloud = FakeCloud::start(CloudState {
        skew_ms: 1_200_000,
        skew_metadata: false,
        ..CloudState::default()
    });
    let r = run(config_for(&cloud, ""));
    let clock = get(&r, "clock");
    assert_eq!(clock.status, Warn);
    // server +1200 s: the local clock is 1200 s behind (1199 when Date's second truncates)
    assert!(
        clock
            .detail
            .starts_with("local clock is 1200 s behind Cloud Eye")
            || clock
                .detail
                .starts_with("local clock is 1199 s behind Cloud Eye"),
        "{}",
        clock.detail
    );
    assert!(clock.fix.as_deref().unwrap().contains("chronyd"));
    let signed = get(&r, "signed_request");
    assert_eq!(signed.status, Pass, "{r:?}");
    assert!(
        signed
            .detail
            .contains("signed with Cloud Eye's time (+1200 s")
            || signed
                .detail
                .contains("signed with Cloud Eye's time (+1199 s"),
        "{}",
        signed.detail
    );
    let rejections = cloud.state().rejections.clone();
    assert!(
        rejections.iter().any(|r| r.contains("signature expired")),
        "{rejections:?}"
    );
    assert!(render_text(&r).ends_with("result: ready to report (2 warnings)\n"));
}

/// Cloud Eye answers every POST with `status`/`body` (the endpoint probe, the agent's
/// probe and its one retry with renewed credentials).
fn scripted(status: u16, body: &str) -> FakeCloud {
    let cloud = FakeCloud::start(CloudState::default());
    for _ in 0..3 {
        cloud
            .state()
            .ces_script
            .push_back(Scripted::status(status, body));
    }
    cloud
}

#[test]
fn cloud_eye_401_403_and_503() {
    let cloud = scripted(401, BAD_SIGNATURE);
    let s = get(&run(config_for(&cloud, "")), "signed_request").clone();
    assert_eq!(s.status, Fail);
    assert!(
        s.detail.contains("HTTP 401") && s.detail.contains("verify aksk signature fail"),
        "{}",
        s.detail
    );
    assert!(s.fix.unwrap().contains("re-attach the agency cesagency"));
    // endpoint probe, probe, retry with new credentials: 3 POSTs, 2 security keys
    assert_eq!(cloud.ces_posts().len(), 3);

    let cloud = scripted(
        403,
        r#"{"error_code":"ces.0017","error_msg":"insufficient rights"}"#,
    );
    let s = get(&run(config_for(&cloud, "")), "signed_request").clone();
    assert_eq!(s.status, Fail);
    assert!(s.fix.unwrap().contains("CES Administrator"));

    let cloud = scripted(503, "");
    let s = get(&run(config_for(&cloud, "")), "signed_request").clone();
    assert_eq!(s.status, Warn, "{s:?}");
    assert_eq!(s.detail, "Cloud Eye is busy: HTTP 503");
}

fn record(body: &[u8], oldest_ms: i64, items: u32) -> Record {
    Record {
        body: body.to_vec(),
        oldest_ms,
        newest_ms: oldest_ms + 60_000,
        items,
    }
}

#[test]
fn spool_summary_counts_undelivered_records() {
    let state = common::temp_dir("check-spool");
    let dir = state.join("spool");
    assert_eq!(spool::summary(&dir).unwrap(), None);
    let mut sp = Spool::open(&dir, 1 << 20);
    // 2026-01-01T00:00:00Z = 20454 days * 86400 s (56 years: 56*365 + 14 leap days)
    let t0 = 20_454 * 86_400_000i64;
    sp.push(&record(b"[0000001]", t0 - 600_000, 1)).unwrap(); // 23:50, delivered below
    sp.push(&record(b"[0000002]", t0 - 300_000, 2)).unwrap(); // 23:55
    sp.push(&record(b"[0000003]", t0, 3)).unwrap();
    sp.pop_front();
    drop(sp);
    let s = spool::summary(&dir).unwrap().unwrap();
    // each record: 32-byte header + 9-byte body = 41; one segment of 3 * 41 = 123 bytes
    assert_eq!(
        (s.records, s.items, s.pending_bytes, s.disk_bytes),
        (2, 5, 82, 123)
    );
    assert_eq!(s.oldest_ms, Some(t0 - 300_000));

    let config = |max: u64| {
        Config::parse(&format!(
            r#"{{"metadata_url": "{}", "state_dir": "{}", "spool_max_bytes": {max}}}"#,
            closed_url(),
            state.display()
        ))
        .unwrap()
    };
    let step = get(&run(config(1000)), "spool").clone();
    assert_eq!(step.status, Pass);
    assert_eq!(
        step.detail,
        "2 records (5 points) waiting, 123 bytes on disk, oldest collected at 2025-12-31T23:55:00Z"
    );
    let step = get(&run(config(100)), "spool").clone();
    assert_eq!(step.status, Warn);
    assert!(step.detail.contains("over spool_max_bytes (100)"));

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    // root reads it anyway; then there is nothing to see
    if std::fs::read_dir(&dir).is_err() {
        let step = get(&run(config(1000)), "spool").clone();
        assert_eq!(step.status, Fail);
        assert!(step.fix.unwrap().contains("chown -R cloudeye-agent:"));
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn bad_config_fails_first_and_skips_the_rest() {
    let r = run_steps(&source(), &Config::parse(r#"{"ttl": "long"}"#));
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

// ---- the binary ----

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

fn cloud_config(dir: &Path, cloud: &FakeCloud) -> PathBuf {
    let json = format!(
        r#"{{"metadata_url":"{}","endpoint":"{}","state_dir":"{}"}}"#,
        cloud.metadata.url(),
        cloud.ces.url(),
        dir.display()
    );
    write_config(dir, &json, 0o600)
}

#[test]
fn binary_healthy_fake_cloud() {
    let dir = common::temp_dir("check-ok");
    let cloud = FakeCloud::start(CloudState::default());
    let run = run_check(&cloud_config(&dir, &cloud), true);
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
    assert_eq!(
        run.text("endpoint", "fix"),
        "use an https:// endpoint outside tests"
    );
    no_secrets(&run.stdout);
    let posts = cloud.ces_posts();
    let post = posts.last().unwrap();
    assert_eq!(post.body, b"[]");
    let issued = cloud.state().issued.last().unwrap().clone();
    assert_eq!(post.header("x-security-token"), Some(issued.token.as_str()));
    assert_eq!(post.header("x-project-id"), Some("proj0001"));
    let auth = post.header("authorization").unwrap();
    assert!(
        auth.starts_with(&format!("SDK-HMAC-SHA256 Access={}, SignedHeaders=host;x-project-id;x-sdk-date;x-security-token, Signature=", issued.access)),
        "{auth}"
    );
}

#[test]
fn binary_no_metadata_connection_refused() {
    let dir = common::temp_dir("check-refused");
    let json = format!(
        r#"{{"metadata_url":"{}","state_dir":"{}"}}"#,
        closed_url(),
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
    let cloud = FakeCloud::start(CloudState {
        agency: false,
        ..CloudState::default()
    });
    let run = run_check(&cloud_config(&dir, &cloud), false);
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
    assert!(run.stdout.ends_with("result: not ready: agency failed\n"));
}

#[test]
fn binary_clock_twenty_minutes_off() {
    let dir = common::temp_dir("check-clock");
    let cloud = FakeCloud::start(CloudState {
        skew_ms: 1_200_000,
        ..CloudState::default()
    });
    let run = run_check(&cloud_config(&dir, &cloud), true);
    assert!(run.ok, "{}", run.stdout);
    assert_eq!(run.status("clock"), "warn");
    assert_eq!(run.status("signed_request"), "ok");
    // 1200 s, give or take the one-second resolution of Date
    let detail = run.text("clock", "detail");
    assert!(
        ["1199 s behind", "1200 s behind"]
            .iter()
            .any(|s| detail.contains(s)),
        "{detail}"
    );
}

#[test]
fn binary_cloud_eye_401() {
    let dir = common::temp_dir("check-401");
    let cloud = scripted(401, BAD_SIGNATURE);
    let run = run_check(&cloud_config(&dir, &cloud), true);
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
