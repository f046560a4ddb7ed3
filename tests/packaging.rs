//! packaging/: every shell script passes shellcheck and `sh -n`, the systemd unit carries
//! its hardening, the example config is exactly the defaults, install.sh stages the right
//! modes, and make-dist.sh builds tarballs whose SHA256SUMS verify.

mod common;

use cloudeye_agent::config::Config;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCRIPTS: [&str; 4] = [
    "install.sh",
    "make-dist.sh",
    "init.d/cloudeye-agent",
    "openrc/cloudeye-agent",
];

fn packaging(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(rel)
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn shell_scripts_pass_shellcheck_and_sh_n() {
    assert!(
        has("shellcheck"),
        "shellcheck is not installed: run cross/setup.sh (or apt-get install shellcheck)"
    );
    for script in SCRIPTS {
        let path = packaging(script);
        let out = Command::new("shellcheck")
            .arg("-s")
            .arg("sh")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck {script}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let out = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "sh -n {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
    }
}

#[test]
fn systemd_unit_is_hardened() {
    let unit = std::fs::read_to_string(packaging("cloudeye-agent.service")).unwrap();
    let keys: Vec<&str> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .collect();
    for key in [
        "User",
        "StateDirectory",
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "MemoryMax",
        "CPUQuota",
        "Restart",
        "ExecReload",
        "CapabilityBoundingSet",
        "ProtectKernelTunables",
        "RestrictAddressFamilies",
        "SystemCallFilter",
    ] {
        assert!(keys.contains(&key), "{key} missing from the unit");
    }
    assert!(unit.contains("\nUser=cloudeye-agent\n"));
    assert!(unit.contains("\nNoNewPrivileges=yes\n"));
    assert!(unit.contains("\nProtectSystem=strict\n"));
    assert!(unit.contains("\nMemoryMax=32M\n"));
    assert!(unit.contains("\nRestart=on-failure\n"));
    assert!(unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"));
    // these would hide /proc/stat, /proc/meminfo or other users' processes
    for key in ["ProtectProc", "ProcSubset", "DynamicUser", "PrivateUsers"] {
        assert!(!keys.contains(&key), "{key} must not be set");
    }
}

#[test]
fn systemd_analyze_verify_passes() {
    if !has("systemd-analyze") {
        eprintln!("systemd-analyze not installed: skipped");
        return;
    }
    // verify wants ExecStart to exist: point it at a copy of a real executable.
    let dir = common::temp_dir("unit");
    let bin = dir.join("cloudeye-agent");
    std::fs::copy(common::agent_bin(), &bin).unwrap();
    let unit = std::fs::read_to_string(packaging("cloudeye-agent.service"))
        .unwrap()
        .replace("/usr/local/bin/cloudeye-agent", bin.to_str().unwrap());
    let path = dir.join("cloudeye-agent.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn example_config_is_every_key_at_its_default() {
    let text = std::fs::read_to_string(packaging("config.example.json")).unwrap();
    assert_eq!(Config::parse(&text).unwrap(), Config::default());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    // one entry per field of Config (30 keys, counted in src/config.rs)
    assert_eq!(v.as_object().unwrap().len(), 30);
    assert!(v["secret_key"].is_null() && v["access_key"].is_null());
}

#[test]
fn install_sh_stages_files_with_private_modes() {
    let dest = common::temp_dir("install");
    let bin = common::agent_bin();
    let run = |args: &[&str]| {
        let out = Command::new("sh")
            .arg(packaging("install.sh"))
            .args(args)
            .env("DESTDIR", &dest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["--init", "systemd", "--binary", bin.to_str().unwrap()]);
    let mode = |rel: &str| {
        std::fs::metadata(dest.join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("usr/local/bin/cloudeye-agent"), 0o755);
    assert_eq!(mode("etc/cloudeye-agent/config.json"), 0o600);
    assert_eq!(mode("var/lib/cloudeye-agent"), 0o700);
    assert_eq!(mode("etc/systemd/system/cloudeye-agent.service"), 0o644);
    // a second install keeps an edited config
    std::fs::write(dest.join("etc/cloudeye-agent/config.json"), "{\"ttl\": 60}").unwrap();
    run(&["--init", "cron", "--binary", bin.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/cloudeye-agent/config.json")).unwrap(),
        "{\"ttl\": 60}"
    );
    assert!(dest.join("etc/cron.d/cloudeye-agent").exists());
    run(&["--uninstall", "--init", "systemd"]);
    assert!(!dest.join("usr/local/bin/cloudeye-agent").exists());
    assert!(!dest
        .join("etc/systemd/system/cloudeye-agent.service")
        .exists());
    assert!(dest.join("etc/cloudeye-agent/config.json").exists());
    run(&["--uninstall", "--init", "cron", "--purge"]);
    assert!(!dest.join("etc/cloudeye-agent").exists());
    assert!(!dest.join("var/lib/cloudeye-agent").exists());
}

#[test]
fn make_dist_builds_tarballs_and_checksums() {
    let work = common::temp_dir("dist");
    let target = work.join("target");
    let dist = work.join("dist");
    for triple in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        let dir = target.join(triple).join("release");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cloudeye-agent"),
            format!("fake binary for {triple}"),
        )
        .unwrap();
    }
    let out = Command::new("sh")
        .arg(packaging("make-dist.sh"))
        .args(["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"])
        .env("TARGET_DIR", &target)
        .env("DIST_DIR", &dist)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = env!("CARGO_PKG_VERSION");
    let x86 = format!("cloudeye-agent-{version}-x86_64.tar.gz");
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 2);
    assert!(
        sums.contains(&x86) && sums.contains(&format!("cloudeye-agent-{version}-aarch64.tar.gz"))
    );
    let check = Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&dist)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let list = Command::new("tar")
        .arg("-tzf")
        .arg(dist.join(&x86))
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    let base = format!("cloudeye-agent-{version}-x86_64");
    for file in [
        "cloudeye-agent",
        "config.example.json",
        "README.md",
        "install.sh",
        "cloudeye-agent.service",
        "init.d/cloudeye-agent",
        "openrc/cloudeye-agent",
        "cron.d/cloudeye-agent",
        "logrotate/cloudeye-agent",
        "busybox-inittab.txt",
    ] {
        assert!(
            list.lines().any(|l| l == format!("{base}/{file}")),
            "{file} missing:\n{list}"
        );
    }
    let bin = Command::new("tar")
        .arg("-xzOf")
        .arg(dist.join(&x86))
        .arg(format!("{base}/cloudeye-agent"))
        .output()
        .unwrap();
    assert_eq!(bin.stdout, b"fake binary for x86_64-unknown-linux-musl");
}
