//! The configuration file: locating it, parsing it strictly, defaults and validation.
//!
//! The file is a JSON object. Key names are a public interface. Unknown keys are refused
//! naming the key; a wrong type names the key and the expected type. Secrets are kept in
//! [`Secret`], whose `Debug` never shows the value.

use crate::error::{Error, Result};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the configuration is read from when neither `--config` nor the environment says.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cloudeye-agent/config.json";
/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "CLOUDEYE_AGENT_CONFIG";
/// Template of the default Cloud Eye endpoint; `{region}` is replaced.
pub const DEFAULT_ENDPOINT: &str = "https://ces.{region}.myhuaweicloud.com";
/// Cloud Eye refuses a ttl above 7 days.
pub const MAX_TTL: u64 = 604_800;

/// Keys whose default is "unset"; `null` is accepted for them.
const OPTIONAL_KEYS: [&str; 12] = [
    "endpoint",
    "region",
    "project_id",
    "instance_id",
    "access_key",
    "secret_key",
    "namespace",
    "ca_file",
    "proxy",
    "log_level",
    "log_file",
    "custom_dir",
];

/// A value that must never be printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself; call only where it is used (signing, request headers).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The whole configuration, with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub metadata_url: String,
    /// `None` means the default template filled with the region.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub project_id: Option<String>,
    pub instance_id: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    pub namespace: Option<String>,
    pub collect_interval: u64,
    pub report_interval: u64,
    pub jitter: u64,
    pub ttl: u64,
    pub state_dir: PathBuf,
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
    pub spool_max_bytes: u64,
    pub ca_file: Option<PathBuf>,
    pub proxy: Option<String>,
    pub log_level: Option<String>,
    pub log_file: Option<PathBuf>,
    pub mount_include: Vec<String>,
    pub mount_exclude: Vec<String>,
    pub fs_type_exclude: Vec<String>,
    pub disk_include: Vec<String>,
    pub disk_exclude: Vec<String>,
    pub nic_include: Vec<String>,
    pub nic_exclude: Vec<String>,
    pub processes: Vec<String>,
    pub custom_dir: Option<PathBuf>,
    pub custom_namespace: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            metadata_url: "http://169.254.169.254".to_string(),
            endpoint: None,
            region: None,
            project_id: None,
            instance_id: None,
            access_key: None,
            secret_key: None,
            namespace: None,
            collect_interval: 10,
            report_interval: 60,
            jitter: 60,
            ttl: 172_800,
            state_dir: PathBuf::from("/var/lib/cloudeye-agent"),
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            spool_max_bytes: 16 * 1024 * 1024,
            ca_file: None,
            proxy: None,
            log_level: None,
            log_file: None,
            mount_include: Vec::new(),
            mount_exclude: Vec::new(),
            fs_type_exclude: Vec::new(),
            disk_include: Vec::new(),
            disk_exclude: Vec::new(),
            nic_include: Vec::new(),
            nic_exclude: Vec::new(),
            processes: Vec::new(),
            custom_dir: None,
            custom_namespace: "CUSTOM.HOST".to_string(),
        }
    }
}

/// Which file to read and whether its absence is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSource {
    pub path: PathBuf,
    /// Named by `--config` or the environment: a missing file is an error.
    pub explicit: bool,
}

impl ConfigSource {
    /// `--config FILE`, else `$CLOUDEYE_AGENT_CONFIG`, else the default path.
    pub fn locate(flag: Option<&Path>) -> ConfigSource {
        if let Some(path) = flag {
            return ConfigSource {
                path: path.to_path_buf(),
                explicit: true,
            };
        }
        match std::env::var_os(CONFIG_ENV) {
            Some(p) if !p.is_empty() => ConfigSource {
                path: PathBuf::from(p),
                explicit: true,
            },
            _ => ConfigSource {
                path: PathBuf::from(DEFAULT_CONFIG_PATH),
                explicit: false,
            },
        }
    }
}

impl Config {
    /// Read and validate the configuration named by `source`.
    pub fn load(source: &ConfigSource) -> Result<Config> {
        let text = match std::fs::read_to_string(&source.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !source.explicit => {
                return Ok(Config::default());
            }
            Err(e) => return Err(Error::io_at("read config file", &source.path, &e)),
        };
        let config = Config::parse(&text)
            .map_err(|e| e.context(format!("config file {}", source.path.display())))?;
        if config.secret_key.is_some() {
            check_private_file(&source.path)?;
        }
        Ok(config)
    }

    /// Parse a JSON document. Errors name the offending key.
    pub fn parse(text: &str) -> Result<Config> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::config(format!("invalid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(Error::config("the top level must be a JSON object"));
        };
        let mut config = Config::default();
        let mut jitter_set = false;
        for (key, value) in &map {
            config.apply(key, value)?;
            jitter_set |= key == "jitter";
        }
        if !jitter_set {
            config.jitter = config.report_interval;
        }
        config.validate()?;
        Ok(config)
    }

    fn apply(&mut self, key: &str, v: &Value) -> Result<()> {
        // null leaves an optional key unset, so config.example.json can list every key.
        if v.is_null() && OPTIONAL_KEYS.contains(&key) {
            return Ok(());
        }
        match key {
            "metadata_url" => self.metadata_url = string(key, v)?,
            "endpoint" => self.endpoint = Some(string(key, v)?),
            "region" => self.region = Some(string(key, v)?),
            "project_id" => self.project_id = Some(string(key, v)?),
            "instance_id" => self.instance_id = Some(string(key, v)?),
            "access_key" => self.access_key = Some(string(key, v)?),
            // string()'s errors name the key and the type, never the value.
            "secret_key" => self.secret_key = Some(Secret(string(key, v)?)),
            "namespace" => self.namespace = Some(string(key, v)?),
            "collect_interval" => self.collect_interval = integer(key, v)?,
            "report_interval" => self.report_interval = integer(key, v)?,
            "jitter" => self.jitter = integer(key, v)?,
            "ttl" => self.ttl = integer(key, v)?,
            "state_dir" => self.state_dir = path(key, v)?,
            "proc_root" => self.proc_root = path(key, v)?,
            "sys_root" => self.sys_root = path(key, v)?,
            "spool_max_bytes" => self.spool_max_bytes = integer(key, v)?,
            "ca_file" => self.ca_file = Some(path(key, v)?),
            "proxy" => self.proxy = Some(string(key, v)?),
            "log_level" => self.log_level = Some(string(key, v)?),
            "log_file" => self.log_file = Some(path(key, v)?),
            "mount_include" => self.mount_include = strings(key, v)?,
            "mount_exclude" => self.mount_exclude = strings(key, v)?,
            "fs_type_exclude" => self.fs_type_exclude = strings(key, v)?,
            "disk_include" => self.disk_include = strings(key, v)?,
            "disk_exclude" => self.disk_exclude = strings(key, v)?,
            "nic_include" => self.nic_include = strings(key, v)?,
            "nic_exclude" => self.nic_exclude = strings(key, v)?,
            "processes" => self.processes = strings(key, v)?,
            "custom_dir" => self.custom_dir = Some(path(key, v)?),
            "custom_namespace" => self.custom_namespace = string(key, v)?,
            _ => return Err(Error::config(format!("unknown key \"{key}\""))),
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        if self.collect_interval == 0 {
            return Err(Error::config(
                "\"collect_interval\" must be at least 1 second",
            ));
        }
        if self.report_interval < self.collect_interval {
            return Err(Error::config(
                "\"report_interval\" must be at least \"collect_interval\"",
            ));
        }
        if self.ttl == 0 || self.ttl > MAX_TTL {
            return Err(Error::config(format!(
                "\"ttl\" must be between 1 and {MAX_TTL} seconds (Cloud Eye's limit)"
            )));
        }
        if self.access_key.is_some() != self.secret_key.is_some() {
            return Err(Error::config(
                "\"access_key\" and \"secret_key\" must be set together (or neither, to use the metadata service)",
            ));
        }
        check_url("metadata_url", &self.metadata_url)?;
        if let Some(endpoint) = &self.endpoint {
            check_url("endpoint", endpoint)?;
        }
        if let Some(ns) = &self.namespace {
            check_namespace("namespace", ns)?;
        }
        check_namespace("custom_namespace", &self.custom_namespace)?;
        if let Some(level) = &self.log_level {
            if !matches!(
                level.as_str(),
                "off" | "error" | "warn" | "info" | "debug" | "trace"
            ) {
                return Err(Error::config(format!(
                    "\"log_level\" must be one of off, error, warn, info, debug, trace (got \"{level}\")"
                )));
            }
        }
        Ok(())
    }

    /// True when static credentials are configured.
    pub fn has_static_credentials(&self) -> bool {
        self.access_key.is_some() && self.secret_key.is_some()
    }

    /// The Cloud Eye endpoint for `region`, without a trailing slash.
    pub fn endpoint_for(&self, region: &str) -> String {
        let raw = match &self.endpoint {
            Some(e) => e.replace("{region}", region),
            None => DEFAULT_ENDPOINT.replace("{region}", region),
        };
        raw.trim_end_matches('/').to_string()
    }
}

/// Refuse a file holding a secret that group or others can read.
pub fn check_private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::io_at("stat", path, &e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::config(format!(
            "{} holds \"secret_key\" but is readable by group or others (mode {mode:03o}); run: chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

fn type_error(key: &str, expected: &str) -> Error {
    Error::config(format!("key \"{key}\" must be {expected}"))
}

fn string(key: &str, v: &Value) -> Result<String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| type_error(key, "a string"))
}

fn path(key: &str, v: &Value) -> Result<PathBuf> {
    let s = v
        .as_str()
        .ok_or_else(|| type_error(key, "a string (a path)"))?;
    if s.is_empty() {
        return Err(Error::config(format!("key \"{key}\" must not be empty")));
    }
    Ok(PathBuf::from(s))
}

fn integer(key: &str, v: &Value) -> Result<u64> {
    v.as_u64()
        .ok_or_else(|| type_error(key, "a non-negative integer"))
}

fn strings(key: &str, v: &Value) -> Result<Vec<String>> {
    let list = v
        .as_array()
        .ok_or_else(|| type_error(key, "an array of strings"))?;
    list.iter()
        .map(|item| {
            item.as_str()
                .map(str::to_string)
                .ok_or_else(|| type_error(key, "an array of strings"))
        })
        .collect()
}

fn check_url(key: &str, url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() => Ok(()),
        _ => Err(Error::config(format!(
            "key \"{key}\" must be an http:// or https:// URL (got \"{url}\")"
        ))),
    }
}

/// Cloud Eye's namespace rule: `service.item`, each part a letter then letters, digits
/// or `_`, 3 to 32 characters in all, and never `SYS.*`.
pub fn check_namespace(key: &str, ns: &str) -> Result<()> {
    let valid_part = |p: &str| {
        p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let ok = (3..=32).contains(&ns.len())
        && matches!(ns.split_once('.'), Some((s, i)) if valid_part(s) && valid_part(i));
    if !ok {
        return Err(Error::config(format!(
            "key \"{key}\" must look like SERVICE.ITEM (letters, digits, '_', 3-32 characters), got \"{ns}\""
        )));
    }
    if ns.starts_with("SYS.") {
        return Err(Error::config(format!(
            "key \"{key}\": the SYS.* namespaces are reserved by Cloud Eye"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_gives_defaults() {
        let c = Config::parse("{}").unwrap();
        assert_eq!(c.collect_interval, 10);
        assert_eq!(c.report_interval, 60);
        assert_eq!(c.jitter, 60);
        assert_eq!(c.ttl, 172_800);
        assert_eq!(c.spool_max_bytes, 16 << 20);
        assert_eq!(c.metadata_url, "http://169.254.169.254");
        assert_eq!(
            c.endpoint_for("cn-north-4"),
            "https://ces.cn-north-4.myhuaweicloud.com"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse(r#"{"colect_interval": 5}"#).unwrap_err();
        assert!(e.message().contains("\"colect_interval\""), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_type() {
        let e = Config::parse(r#"{"ttl": "long"}"#).unwrap_err();
        assert_eq!(e.message(), "key \"ttl\" must be a non-negative integer");
        let e = Config::parse(r#"{"processes": "nginx"}"#).unwrap_err();
        assert_eq!(e.message(), "key \"processes\" must be an array of strings");
    }

    #[test]
    fn secret_never_echoed() {
        let e = Config::parse(r#"{"access_key": "AK", "secret_key": 12345}"#).unwrap_err();
        assert!(!e.message().contains("12345"));
        let c = Config::parse(r#"{"access_key": "AK", "secret_key": "TOPSECRET"}"#).unwrap();
        assert!(!format!("{c:?}").contains("TOPSECRET"));
    }

    #[test]
    fn validation() {
        assert!(Config::parse(r#"{"collect_interval": 0}"#).is_err());
        assert!(Config::parse(r#"{"collect_interval": 30, "report_interval": 10}"#).is_err());
        assert!(Config::parse(r#"{"ttl": 604801}"#).is_err());
        assert!(Config::parse(r#"{"access_key": "AK"}"#).is_err());
        assert!(Config::parse(r#"{"namespace": "SYS.ECS"}"#).is_err());
        assert!(Config::parse(r#"{"namespace": "noperiod"}"#).is_err());
        assert!(Config::parse(r#"{"endpoint": "ftp://x"}"#).is_err());
        assert!(Config::parse(r#"[1]"#).is_err());
        assert!(Config::parse(r#"{"#).is_err());
        let c = Config::parse(r#"{"report_interval": 30}"#).unwrap();
        assert_eq!(c.jitter, 30);
    }

    #[test]
    fn null_unsets_optional_keys_only() {
        let c =
            Config::parse(r#"{"endpoint": null, "secret_key": null, "access_key": null}"#).unwrap();
        assert_eq!(c, Config::default());
        assert!(Config::parse(r#"{"ttl": null}"#).is_err());
        assert!(Config::parse(r#"{"bogus": null}"#).is_err());
    }

    #[test]
    fn endpoint_template() {
        let c = Config::parse(r#"{"endpoint": "http://127.0.0.1:8080/"}"#).unwrap();
        assert_eq!(c.endpoint_for("x"), "http://127.0.0.1:8080");
    }
}
