//! The agent binary end to end against the fake metadata service and Cloud Eye on
//! 127.0.0.1: temporary credentials through the token flow, signatures verified by an
//! independent checker, and the collected points accepted — also across an outage.

mod common;

use common::fake_cloud::{CloudState, FakeCloud, Scripted};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A config file using the metadata service for credentials and identity.
fn write_config(dir: &Path, cloud: &FakeCloud, extra: &str) -> PathBuf {
    let proc_root = common::minimal_proc_root(dir);
    let path = dir.join("config.json");
    let text = format!(
        r#"{{"metadata_url":"{}","endpoint":"{}",
            "collect_interval":1,"report_interval":1,"jitter":0,
            "state_dir":"{}","proc_root":"{}","sys_root":"{}"{extra}}}"#,
        cloud.metadata.url(),
        cloud.ces.url(),
        dir.join("state").display(),
        proc_root.display(),
        dir.join("sys").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run_once(cfg: &Path) -> std::process::Output {
    common::agent_command()
        .arg("--config")
        .arg(cfg)
        .arg("once")
        .env("RUST_LOG", "debug")
        .output()
        .unwrap()
}

fn collect_times(cloud: &FakeCloud) -> BTreeSet<i64> {
    cloud
        .accepted()
        .iter()
        .map(|it| it["collect_time"].as_i64().unwrap())
        .collect()
}

#[test]
fn once_gets_temporary_credentials_signs_and_is_accepted() {
    let cloud = FakeCloud::start(CloudState::default());
    let dir = common::temp_dir("e2e-once");
    let cfg = write_config(&dir, &cloud, "");
    let out = run_once(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        cloud.state().rejections.is_empty(),
        "{:?}",
        cloud.state().rejections
    );
    let accepted = cloud.accepted();
    assert!(!accepted.is_empty());
    for it in &accepted {
        assert_eq!(it["metric"]["namespace"], "AGT.ECS");
        assert_eq!(it["metric"]["dimensions"][0]["name"], "instance_id");
        assert_eq!(it["metric"]["dimensions"][0]["value"], "inst-0001");
    }
    // every POST carried the issued token, signed
    let issued = cloud.state().issued.clone();
    assert!(!issued.is_empty());
    for post in cloud.ces_posts() {
        assert_eq!(post.path(), "/V1.0/proj0001/metric-data");
        let token = post.header("x-security-token").unwrap();
        assert!(issued.iter().any(|i| i.token == token));
        let auth = post.header("authorization").unwrap();
        assert!(auth.contains("x-security-token"), "{auth}");
    }
    assert!(cloud.metadata_requests("/meta-data/latest/api/token") >= 1);
    // the state directory (spool, saved sample) is private to the agent's user
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("state"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    // secrets never reach the log, even at debug level
    for i in &issued {
        assert!(!stderr.contains(&i.secret), "SK leaked into the log");
        assert!(!stderr.contains(&i.token), "token leaked into the log");
    }
    // a second run uses the saved state: its points are new, none is sent twice
    let first = collect_times(&cloud);
    let before = cloud.accepted().len();
    let out = run_once(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cloud.accepted().len() > before);
    let second: BTreeSet<i64> = collect_times(&cloud).difference(&first).copied().collect();
    assert!(!second.is_empty());
}

/// A cron run that finds the metadata service down still encodes what it collected
/// (with the identity the previous run saved) and spools it; the next run delivers it.
#[test]
fn once_with_the_metadata_service_down_spools_and_the_next_run_delivers() {
    use common::fake_server::Reply;
    let cloud = FakeCloud::start(CloudState::default());
    let dir = common::temp_dir("e2e-meta-down");
    let cfg = write_config(&dir, &cloud, "");
    let out = run_once(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = collect_times(&cloud);
    {
        let mut s = cloud.state();
        s.meta_reply = Some(Reply::Drop);
        s.securitykey_reply = Some(Reply::Drop);
    }
    let out = run_once(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("identity saved by the previous run"),
        "{stderr}"
    );
    assert_eq!(
        collect_times(&cloud),
        before,
        "nothing can be sent without credentials"
    );
    let spool = cloudeye_agent::spool::Spool::open(&dir.join("state/spool"), 16 << 20);
    assert_eq!(spool.len(), 1, "the run's batch waits in the spool");
    drop(spool);
    {
        let mut s = cloud.state();
        s.meta_reply = None;
        s.securitykey_reply = None;
    }
    let out = run_once(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the spooled run and this one both arrived: two new report times
    let after = collect_times(&cloud);
    assert_eq!(after.difference(&before).count(), 2, "{after:?}");
    let spool = cloudeye_agent::spool::Spool::open(&dir.join("state/spool"), 16 << 20);
    assert_eq!(spool.len(), 0);
}

#[test]
fn once_without_agency_fails_naming_the_fix_and_spools() {
    let cloud = FakeCloud::start(CloudState {
        agency: false,
        ..CloudState::default()
    });
    let dir = common::temp_dir("e2e-noagency");
    let cfg = write_config(&dir, &cloud, "");
    let out = run_once(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cesagency"), "{stderr}");
    assert!(stderr.contains("op_svc_ces"), "{stderr}");
    assert!(cloud.accepted().is_empty());
}

/// Cloud Eye fails in every way for a while, then recovers: every report interval of
/// the run reaches it (at least once), and nothing is left behind after SIGTERM.
#[test]
fn run_survives_an_outage_and_delivers_every_interval() {
    let cloud = FakeCloud::start(CloudState::default());
    {
        let mut s = cloud.state();
        s.ces_script.push_back(Scripted::status(
            503,
            r#"{"error_code":"ces.0007","error_msg":"internal"}"#,
        ));
        s.ces_script.push_back(Scripted::Drop);
        s.ces_script.push_back(Scripted::with_header(
            429,
            r#"{"error_code":"APIG.0308","error_msg":"The throttling threshold has been reached"}"#,
            "Retry-After",
            "1",
        ));
        s.ces_script
            .push_back(Scripted::status(500, "garbage <html>"));
    }
    let dir = common::temp_dir("e2e-run");
    let cfg = write_config(&dir, &cloud, "");
    let mut child = common::spawn_run(&cfg);
    let deadline = Instant::now() + Duration::from_secs(40);
    // wait for the script to be used up and then a few good reports
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        if cloud.state().ces_script.is_empty() && collect_times(&cloud).len() >= 8 {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    common::sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(
        cloud.state().ces_script.is_empty(),
        "the faults were not all exercised"
    );
    let times: Vec<i64> = collect_times(&cloud).into_iter().collect();
    assert!(times.len() >= 8, "{times:?}");
    // one report per second: no interval is missing between the first and the last
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] <= 1_600,
            "a report went missing: {pair:?}"
        );
    }
    let spool = cloudeye_agent::spool::Spool::open(&dir.join("state/spool"), 16 << 20);
    assert_eq!(spool.len(), 0, "undelivered records left after recovery");
}

#[test]
fn once_sends_custom_metrics_from_the_drop_directory() {
    let cloud = FakeCloud::start(CloudState::default());
    let dir = common::temp_dir("e2e-custom");
    let drop_dir = dir.join("custom.d");
    std::fs::create_dir_all(&drop_dir).unwrap();
    std::fs::write(
        drop_dir.join("queue.json"),
        r#"[{"metric_name":"queue_depth","value":42,"unit":"Count","dimensions":{"queue":"mail"}},
            {"metric_name":"9bad","value":1}]"#,
    )
    .unwrap();
    let extra = format!(r#","custom_dir":"{}""#, drop_dir.display());
    let cfg = write_config(&dir, &cloud, &extra);
    let out = run_once(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let accepted = cloud.accepted();
    let custom: Vec<_> = accepted
        .iter()
        .filter(|it| it["metric"]["namespace"] == "CUSTOM.HOST")
        .collect();
    assert_eq!(custom.len(), 1, "{custom:?}");
    assert_eq!(custom[0]["metric"]["metric_name"], "queue_depth");
    assert_eq!(custom[0]["value"], 42);
    assert_eq!(custom[0]["metric"]["dimensions"][0]["value"], "inst-0001");
    assert_eq!(custom[0]["metric"]["dimensions"][1]["name"], "queue");
    // the bad item is named in one warning, and it did not stop the good one
    assert!(stderr.contains("queue.json"), "{stderr}");
}
