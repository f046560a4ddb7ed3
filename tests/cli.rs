//! The command line as an operator meets it: exit codes, help, errors, version.

mod common;

use common::agent_command;

#[test]
fn unknown_command_exits_2_with_one_line_error_and_usage() {
    let out = agent_command().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap();
    assert_eq!(first, "cloudeye-agent: error: unknown command 'frobnicate'");
    assert!(err.contains("Usage: cloudeye-agent"));
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_flag_exits_2() {
    let out = agent_command().args(["print", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("cloudeye-agent: error: unknown option '--bogus' for 'print'"));
    assert!(err.contains("Usage: cloudeye-agent [--config FILE] print"));
}

#[test]
fn help_global_and_per_command() {
    let out = agent_command().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "once", "print", "check", "version"] {
        assert!(
            text.contains(&format!("  {cmd} ")),
            "{cmd} missing from help"
        );
    }
    let out = agent_command().args(["check", "--help"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("check [--json]"));
}

#[test]
fn version_names_commit_target_and_date() {
    let out = agent_command().arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("cloudeye-agent {}\n", env!("CARGO_PKG_VERSION"))));
    assert!(text.contains("commit: "));
    let target = text.lines().find(|l| l.starts_with("target: ")).unwrap();
    assert!(target.contains("linux"), "{target}");
    let built = text.lines().find(|l| l.starts_with("built: ")).unwrap();
    assert_eq!(built.len(), "built: 2026-12-03".len());
}

#[test]
fn missing_explicit_config_is_an_error() {
    let out = agent_command()
        .args(["--config", "/nonexistent/cloudeye.json", "print"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read config file /nonexistent/cloudeye.json"),
        "{err}"
    );
}

#[test]
fn broken_config_names_the_key() {
    let dir = common::temp_dir("cli-config");
    let path = dir.join("c.json");
    std::fs::write(&path, r#"{"collect_interval": "often"}"#).unwrap();
    let out = agent_command()
        .arg("--config")
        .arg(&path)
        .arg("print")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("key \"collect_interval\" must be a non-negative integer"));
}

#[test]
fn world_readable_secret_config_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::temp_dir("cli-perm");
    let path = dir.join("c.json");
    std::fs::write(
        &path,
        r#"{"access_key": "AK", "secret_key": "SK-DO-NOT-PRINT"}"#,
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = agent_command()
        .arg("--config")
        .arg(&path)
        .arg("print")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains("SK-DO-NOT-PRINT"));
}
