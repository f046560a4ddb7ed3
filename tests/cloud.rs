//! End-to-end tests of metadata, credentials, signing and delivery through the library
//! API (`Reporter`, `MetadataClient`) against the fake cloud on 127.0.0.1.

mod common;

use cloudeye_agent::ces::{Outcome, Timeouts};
use cloudeye_agent::metadata::{FetchError, MetadataClient, TokenSupport};
use cloudeye_agent::reporter::{Probe, Reporter};
use common::fake_cloud::{real_now_ms, CloudState, FakeCloud, Scripted, TokenMode};
use common::fake_server::{Reply, Request, Response};
use common::sigcheck;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const FAST: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    total: Duration::from_secs(2),
};

fn reporter(cloud: &FakeCloud, extra: &str) -> Reporter {
    Reporter::with_timeouts(&cloud.config(extra), Duration::from_secs(1), FAST).unwrap()
}

fn body_at(n: usize, collect_time: i64) -> Vec<u8> {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"metric":{{"namespace":"AGT.ECS","metric_name":"cpu_usage","dimensions":[{{"name":"instance_id","value":"inst-0001"}}]}},"ttl":172800,"collect_time":{collect_time},"value":{i},"unit":"%","type":"float"}}"#
            )
        })
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

fn body(n: usize) -> Vec<u8> {
    body_at(n, real_now_ms())
}

const STATIC: &str = r#""access_key": "STATICAK", "secret_key": "static-sk", "instance_id": "i-1", "project_id": "proj0001", "region": "xx-test-1""#;

fn static_cloud(skew_ms: i64) -> FakeCloud {
    FakeCloud::start(CloudState {
        static_keys: vec![("STATICAK".into(), "static-sk".into())],
        skew_ms,
        ..CloudState::default()
    })
}

// --- the verifier itself ---------------------------------------------------------------

fn wire(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    Request {
        method: method.into(),
        target: target.into(),
        headers,
        body: body.to_vec(),
    }
}

#[test]
fn sigcheck_accepts_published_vectors() {
    // P2 (Python SDK test) as it arrives on the wire.
    let p2 = wire(
        "POST",
        "/resources?size=1",
        &[
            ("Host", "service.endpoint.myhuaweicloud.com"),
            ("X-Sdk-Date", "20200608T023900Z"),
            ("Authorization", "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, Signature=436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f"),
        ],
        br#"{"name":"test","id":1}"#,
    );
    let sk = |ak: &str| (ak == "AccessKey").then(|| "SecretKey".to_string());
    assert!(sigcheck::verify(&p2, sk).is_ok());
    // J1 (Java SDK test).
    let j1 = wire(
        "GET",
        "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0",
        &[
            ("Host", "service.region.example.com"),
            ("X-Sdk-Date", "20191115T033655Z"),
            ("Content-Type", "application/json"),
            ("Authorization", "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, Signature=fd95e7da6f695cfb4cabbb9d6b0968aec155bc576b064835282473539ae9ea1d"),
        ],
        b"",
    );
    assert!(sigcheck::verify(&j1, sk).is_ok());
    // A tampered body must fail.
    let mut bad = p2.clone();
    bad.body = br#"{"name":"test","id":2}"#.to_vec();
    assert!(sigcheck::verify(&bad, sk).is_err());
    // 2020-06-08 02:39:00Z = 1591583940 s.
    assert_eq!(
        sigcheck::parse_sdk_date("20200608T023900Z"),
        Some(1_591_583_940)
    );
}

// --- metadata token flow ---------------------------------------------------------------

#[test]
fn token_supported_flow_delivers_with_signed_security_token() {
    let cloud = FakeCloud::start(CloudState::default());
    let mut r = reporter(&cloud, "");
    let id = r.identity().unwrap();
    assert_eq!(id.instance_id, "inst-0001");
    assert_eq!(id.region, "xx-test-1"); // from availability_zone "xx-test-1a"
    assert_eq!(id.namespace, "AGT.ECS");
    assert_eq!(r.deliver(&body(3)), Outcome::Delivered);
    assert_eq!(cloud.accepted().len(), 3);
    let gets: Vec<Request> = cloud
        .metadata
        .requests()
        .into_iter()
        .filter(|q| q.method == "GET")
        .collect();
    assert!(gets
        .iter()
        .all(|q| q.header("x-metadata-token") == Some("mdtoken-1")));
    let post = &cloud.ces_posts()[0];
    assert_eq!(post.header("x-security-token"), Some("security-token-1"));
    assert!(post
        .header("authorization")
        .unwrap()
        .contains("SignedHeaders=host;x-project-id;x-sdk-date;x-security-token,"));
    assert!(post
        .header("user-agent")
        .unwrap()
        .starts_with("cloudeye-agent/"));
    assert_eq!(post.target, "/V1.0/proj0001/metric-data");
    assert_eq!(cloud.state().tokens_issued, 1);
}

#[test]
fn token_unsupported_404_and_405_continue_without_token() {
    for status in [404, 405, 503] {
        let cloud = FakeCloud::start(CloudState {
            token_mode: TokenMode::Unsupported(status),
            ..CloudState::default()
        });
        let mut md = MetadataClient::new(&cloud.metadata.url());
        assert_eq!(md.probe_token().unwrap(), TokenSupport::Unsupported);
        let creds = md.security_key().unwrap();
        assert_eq!(creds.access_key, "TMPAK0001");
        assert!(cloud
            .metadata
            .requests()
            .iter()
            .filter(|q| q.method == "GET")
            .all(|q| q.header("x-metadata-token").is_none()));
        let mut r = reporter(&cloud, "");
        assert_eq!(
            r.deliver(&body(1)),
            Outcome::Delivered,
            "token status {status}"
        );
    }
}

#[test]
fn token_rejected_with_401_is_renewed_once() {
    let cloud = FakeCloud::start(CloudState::default());
    let mut md = MetadataClient::new(&cloud.metadata.url());
    md.security_key().unwrap();
    cloud.state().valid_tokens.clear(); // the service forgot token 1
    let meta = md.meta_data().unwrap();
    assert_eq!(meta.uuid.as_deref(), Some("inst-0001"));
    assert_eq!(cloud.state().tokens_issued, 2);
    assert_eq!(md.token_support(), TokenSupport::Supported);
}

#[test]
fn missing_agency_names_cesagency_and_op_svc_ces() {
    let cloud = FakeCloud::start(CloudState {
        agency: false,
        ..CloudState::default()
    });
    let mut md = MetadataClient::new(&cloud.metadata.url());
    let err = md.security_key().unwrap_err();
    let FetchError::NoAgency(e) = &err else {
        panic!("{err:?}")
    };
    for needle in ["cesagency", "op_svc_ces", "Configure", "Agency"] {
        assert!(e.message().contains(needle), "{needle}: {e}");
    }
    // The agency 401 must not trigger a token renewal loop: one PUT only.
    assert_eq!(cloud.state().tokens_issued, 1);
    let mut r = reporter(&cloud, "");
    match r.deliver(&body(1)) {
        Outcome::Unauthorized { reason } => assert!(reason.contains("cesagency"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(cloud.ces_posts().is_empty());
}

// --- credentials -----------------------------------------------------------------------

#[test]
fn credentials_expiring_mid_run_are_refreshed_before_expiry() {
    let cloud = FakeCloud::start(CloudState {
        cred_lifetime: Duration::from_secs(3),
        fractional_expiry: false,
        ..CloudState::default()
    });
    let mut r = reporter(&cloud, "");
    assert_eq!(r.deliver(&body(1)), Outcome::Delivered);
    // Lifetime 2-3 s (whole-second expiry) -> refresh margin min(lifetime/3, 10 min) is
    // 0.67-1 s; after 2.5 s at most 0.5 s remain, so the next deliver must refresh.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(r.deliver(&body(1)), Outcome::Delivered);
    let posts = cloud.ces_posts();
    assert_eq!(
        posts.len(),
        2,
        "no 401 detour: {:?}",
        cloud.state().rejections
    );
    assert!(posts[1]
        .header("authorization")
        .unwrap()
        .contains("Access=TMPAK0002,"));
    assert_eq!(cloud.metadata_requests("/openstack/latest/securitykey"), 2);
}

#[test]
fn a_401_then_success_refreshes_credentials_and_retries_once() {
    let cloud = FakeCloud::start(CloudState::default());
    cloud.state().ces_script.push_back(Scripted::status(
        401,
        r#"{"error_code":"APIG.0301","error_msg":"Incorrect IAM authentication information: verify aksk signature fail"}"#,
    ));
    let mut r = reporter(&cloud, "");
    assert_eq!(r.deliver(&body(2)), Outcome::Delivered);
    assert_eq!(cloud.ces_posts().len(), 2);
    assert_eq!(cloud.metadata_requests("/openstack/latest/securitykey"), 2);
    assert!(cloud.ces_posts()[1]
        .header("authorization")
        .unwrap()
        .contains("Access=TMPAK0002,"));
}

#[test]
fn repeated_403_gives_unauthorized_with_the_server_message() {
    let cloud = FakeCloud::start(CloudState::default());
    let v1 = r#"{"http_code":"403","message":{"details":"Policy doesn't allow [ces:metricData:create] to be performed","code":"403"}}"#;
    for _ in 0..2 {
        cloud
            .state()
            .ces_script
            .push_back(Scripted::status(403, v1));
    }
    let mut r = reporter(&cloud, "");
    match r.deliver(&body(1)) {
        Outcome::Unauthorized { reason } => {
            assert!(reason.contains("ces:metricData:create"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cloud.ces_posts().len(), 2);
}

#[test]
fn static_credentials_never_touch_metadata() {
    let cloud = static_cloud(0);
    let mut r = reporter(&cloud, STATIC);
    assert_eq!(r.deliver(&body(5)), Outcome::Delivered);
    assert!(cloud.metadata.requests().is_empty());
    let post = &cloud.ces_posts()[0];
    assert!(post.header("x-security-token").is_none());
    assert!(post
        .header("authorization")
        .unwrap()
        .contains("SignedHeaders=host;x-project-id;x-sdk-date,"));
    assert_eq!(
        r.credentials_status(),
        cloudeye_agent::credentials::Status::Static
    );
}

#[test]
fn metadata_outage_keeps_cached_credentials_and_backs_off() {
    let cloud = FakeCloud::start(CloudState::default());
    let mut r = reporter(&cloud, "");
    assert_eq!(r.deliver(&body(1)), Outcome::Delivered);
    // Force a refresh attempt while the service is broken: the cached, unexpired
    // credentials are still used and the next attempt is deferred.
    cloud.state().securitykey_reply = Some(Reply::Respond(Response::new(500, "boom")));
    cloud
        .state()
        .ces_script
        .push_back(Scripted::status(401, "{}"));
    // The 401 forces a renewal, which fails; the retry goes out with the cached pair.
    assert_eq!(r.deliver(&body(1)), Outcome::Delivered);
    assert_eq!(cloud.ces_posts().len(), 3);
    match r.credentials_status() {
        cloudeye_agent::credentials::Status::Failing { error, retry_at_ms } => {
            assert!(error.contains("HTTP 500"), "{error}");
            assert!(retry_at_ms > real_now_ms());
        }
        other => panic!("{other:?}"),
    }
    let before = cloud.metadata_requests("/openstack/latest/securitykey");
    assert_eq!(r.deliver(&body(1)), Outcome::Delivered); // cached creds, no new fetch
    assert_eq!(
        cloud.metadata_requests("/openstack/latest/securitykey"),
        before
    );
}

// --- broken metadata -------------------------------------------------------------------

#[test]
fn malformed_metadata_gives_a_clear_error() {
    let cloud = FakeCloud::start(CloudState::default());
    cloud.state().meta_reply = Some(Reply::Respond(Response::new(200, "{not json")));
    cloud.state().securitykey_reply = Some(Reply::Respond(Response::new(
        200,
        r#"{"credential":{"access":"a"}}"#,
    )));
    let mut md = MetadataClient::new(&cloud.metadata.url());
    let e = md.meta_data().unwrap_err();
    assert!(e.message().contains("not valid JSON"), "{e}");
    let e = md.security_key().unwrap_err();
    assert!(
        e.error().message().contains("missing \"expires_at\""),
        "{e:?}"
    );
}

#[test]
fn oversized_metadata_reply_is_refused_without_reading_it_all() {
    let cloud = FakeCloud::start(CloudState::default());
    let huge = vec![b'x'; 1 << 20];
    cloud.state().meta_reply = Some(Reply::Respond(Response::new(200, huge)));
    let mut md = MetadataClient::new(&cloud.metadata.url());
    let e = md.meta_data().unwrap_err();
    assert!(e.message().contains("larger than 65536 bytes"), "{e}");
}

#[test]
fn silent_metadata_service_times_out() {
    let cloud = FakeCloud::start(CloudState::default());
    cloud.state().meta_reply = Some(Reply::Delay(
        Duration::from_secs(20),
        Response::new(200, "{}"),
    ));
    let mut r = reporter(&cloud, "");
    let start = Instant::now();
    let e = r.identity().unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(e.message().contains("timed out"), "{e}");
    assert!(matches!(r.deliver(&body(1)), Outcome::Retryable { .. }));
}

#[test]
fn identity_config_overrides_and_bms_namespace() {
    let cloud = FakeCloud::start(CloudState {
        meta_json: common::fake_cloud::default_meta("physical.kl1.large"),
        ..CloudState::default()
    });
    let mut r = reporter(&cloud, r#""region": "cn-north-4", "namespace": "MINE.APP""#);
    let id = r.identity().unwrap();
    assert_eq!(
        (
            id.region.as_str(),
            id.namespace.as_str(),
            id.instance_id.as_str()
        ),
        ("cn-north-4", "MINE.APP", "inst-0001")
    );
    let mut r = reporter(&cloud, "");
    assert_eq!(r.identity().unwrap().namespace, "SERVICE.BMS");
}

// --- Cloud Eye answers -----------------------------------------------------------------

#[test]
fn error_bodies_map_to_outcomes() {
    let cloud = static_cloud(0);
    let old = r#"{"code":400,"element":"Bad Request","message":"The system received a request which cannot be recognized","details":{"details":"Some content in message body is not correct","code":"ces.0014"}}"#;
    let throttle = r#"{"error_code":"APIG.0308","error_msg":"The throttling threshold has been reached: policy user over ratelimit,limit:10,time:1 second"}"#;
    {
        let mut s = cloud.state();
        s.ces_script.push_back(Scripted::status(400, old));
        s.ces_script
            .push_back(Scripted::with_header(429, throttle, "Retry-After", "7"));
        s.ces_script
            .push_back(Scripted::status(503, "<html>busy</html>"));
        s.ces_script.push_back(Scripted::Drop);
    }
    let mut r = reporter(&cloud, STATIC);
    match r.deliver(&body(1)) {
        Outcome::Permanent {
            status: 400,
            code,
            message,
        } => {
            assert_eq!(code, "ces.0014");
            assert!(message.contains("Some content in message body is not correct"));
        }
        other => panic!("{other:?}"),
    }
    match r.deliver(&body(1)) {
        Outcome::Retryable {
            retry_after,
            reason,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert!(reason.contains("APIG.0308"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.deliver(&body(1)),
        Outcome::Retryable {
            retry_after: None,
            ..
        }
    ));
    assert!(matches!(r.deliver(&body(1)), Outcome::Retryable { .. }));
    assert_eq!(r.deliver(&body(1)), Outcome::Delivered);
}

#[test]
fn slow_cloud_eye_is_a_retryable_timeout() {
    let cloud = static_cloud(0);
    cloud
        .state()
        .ces_script
        .push_back(Scripted::Delay(Duration::from_secs(10)));
    let mut r = reporter(&cloud, STATIC);
    let start = Instant::now();
    match r.deliver(&body(1)) {
        Outcome::Retryable { reason, .. } => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn server_enforces_body_limits() {
    let cloud = static_cloud(0);
    let mut r = reporter(&cloud, STATIC);
    match r.deliver(&body(10_001)) {
        Outcome::Permanent {
            status: 400, code, ..
        } => assert_eq!(code, "ces.0014"),
        other => panic!("{other:?}"),
    }
    // collect_time 4 days old is outside the 3-day window.
    match r.deliver(&body_at(1, real_now_ms() - 4 * 86_400_000)) {
        Outcome::Permanent { code, .. } => assert_eq!(code, "ces.0014"),
        other => panic!("{other:?}"),
    }
    assert!(cloud.accepted().is_empty());
}

#[test]
fn probe_reports_authentication() {
    let cloud = static_cloud(0);
    let mut r = reporter(&cloud, STATIC);
    match r.probe() {
        Probe::AuthOk {
            status: 400,
            detail,
        } => assert!(detail.starts_with("ces.0001"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let wrong = STATIC.replace("static-sk", "wrong-sk");
    let mut r = reporter(&cloud, &wrong);
    assert!(matches!(r.probe(), Probe::AuthFailed { status: 401, .. }));
}

// --- clock skew ------------------------------------------------------------------------

fn skewed_host_is_accepted(skew_ms: i64) {
    let cloud = static_cloud(skew_ms);
    let mut r = reporter(&cloud, STATIC);
    // First exchange: X-Sdk-Date 20 min off -> 401 "signature expired"; the Date header
    // teaches the offset and the one retry is accepted (400 ces.0001 for "[]").
    assert!(
        matches!(r.probe(), Probe::AuthOk { status: 400, .. }),
        "{:?}",
        cloud.state().rejections
    );
    let offset = r.clock_offset_ms();
    assert!(
        (offset - skew_ms).abs() < 2_000,
        "offset {offset} vs skew {skew_ms}"
    );
    // collect_time from the corrected clock falls in the server's window.
    assert_eq!(r.deliver(&body_at(2, r.now_ms())), Outcome::Delivered);
    assert_eq!(cloud.accepted().len(), 2);
}

#[test]
fn host_20_minutes_behind_is_accepted() {
    skewed_host_is_accepted(20 * 60 * 1000);
}

#[test]
fn host_20_minutes_ahead_is_accepted() {
    skewed_host_is_accepted(-20 * 60 * 1000);
}

#[test]
fn skew_learned_from_metadata_date_avoids_the_first_rejection() {
    let cloud = FakeCloud::start(CloudState {
        skew_ms: 20 * 60 * 1000,
        ..CloudState::default()
    });
    let mut r = reporter(&cloud, "");
    assert_eq!(
        r.deliver(&body_at(1, real_now_ms() + 20 * 60 * 1000)),
        Outcome::Delivered
    );
    assert_eq!(cloud.ces_posts().len(), 1, "{:?}", cloud.state().rejections);
}

// --- setup errors ----------------------------------------------------------------------

#[test]
fn setup_refuses_plain_http_to_remote_hosts_and_bad_ca_files() {
    let c = cloudeye_agent::config::Config::parse(
        r#"{"region": "r1", "endpoint": "http://ces.example.com"}"#,
    )
    .unwrap();
    let e = Reporter::new(&c).err().unwrap();
    assert!(e.message().contains("loopback"), "{e}");
    let dir = common::temp_dir("ca");
    let bad = dir.join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let c = cloudeye_agent::config::Config::parse(&format!(
        r#"{{"region": "r1", "ca_file": "{}"}}"#,
        bad.display()
    ))
    .unwrap();
    let e = Reporter::new(&c).err().unwrap();
    assert!(e.message().contains("ca_file"), "{e}");
    if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        let c = cloudeye_agent::config::Config::parse(
            r#"{"region": "r1", "ca_file": "/etc/ssl/certs/ca-certificates.crt"}"#,
        )
        .unwrap();
        assert!(Reporter::new(&c).is_ok());
    }
}
