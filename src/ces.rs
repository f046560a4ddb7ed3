//! The Cloud Eye HTTP client: one keep-alive ureq agent (rustls with ring, Mozilla roots
//! plus an optional `ca_file`, proxy from the config or the environment), signed
//! `POST /V1.0/{project_id}/metric-data`, and the classification of every answer into an
//! [`Outcome`]. Also the small HTTP helpers shared with the metadata client: capped body
//! reads and the `Date` header parser.

use crate::config::Config;
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::sign;
use std::sync::Arc;
use std::time::Duration;

/// What happened to one request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 201: Cloud Eye has it.
    Delivered,
    /// 429, 5xx, timeout, connection error: keep the batch and try again later.
    Retryable {
        retry_after: Option<Duration>,
        reason: String,
    },
    /// 400 and similar: this batch will never be accepted; drop it (and only it).
    Permanent {
        status: u16,
        code: String,
        message: String,
    },
    /// 401/403 even after refreshing credentials once; keep the batch.
    Unauthorized { reason: String },
}

/// Cloud Eye error replies are small; anything longer is cut.
pub const MAX_ERROR_BODY: u64 = 16 * 1024;
/// Retry-After values beyond this are capped (a confused proxy must not park us for days).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// The whole exchange, connect included.
    pub total: Duration,
}

impl Timeouts {
    /// Timeouts that keep collection on time in a single-threaded agent: one request
    /// may take at most half a collect interval (between 3 s and 30 s).
    pub fn for_collect_interval(collect_interval_secs: u64) -> Timeouts {
        let total = Duration::from_millis(collect_interval_secs.saturating_mul(500))
            .clamp(Duration::from_secs(3), Duration::from_secs(30));
        Timeouts {
            connect: total.min(Duration::from_secs(5)),
            total,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            total: Duration::from_secs(30),
        }
    }
}

/// One HTTP answer from Cloud Eye.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// The server's `Date` in Unix ms, when present and parseable.
    pub date_ms: Option<i64>,
    pub retry_after: Option<Duration>,
    /// At most [`MAX_ERROR_BODY`] bytes.
    pub body: Vec<u8>,
}

/// A parsed error body: `code` (e.g. `ces.0014`, `APIG.0308`) and the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

pub struct CesClient {
    agent: ureq::Agent,
    /// `scheme://host[:port]`, no trailing slash.
    base: String,
    /// The `Host` header (port only when not the scheme default), also signed.
    host: String,
}

impl CesClient {
    /// A client for `endpoint` (already filled with the region).
    pub fn new(config: &Config, endpoint: &str, timeouts: Timeouts) -> Result<CesClient> {
        let target = parse_endpoint(endpoint)?;
        let agent = build_agent(config, timeouts)?;
        Ok(CesClient {
            agent,
            base: format!("{}://{}", target.scheme, target.authority),
            host: target.host_header,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sign at `now_ms` (corrected clock) and POST `body` to the project's metric-data.
    /// `Err` carries a transport failure (no HTTP answer) as a retryable reason.
    pub fn post_metric_data(
        &self,
        project_id: &str,
        creds: &Credentials,
        body: &[u8],
        now_ms: i64,
    ) -> std::result::Result<Reply, String> {
        let path = format!("/V1.0/{project_id}/metric-data");
        let headers = request_headers(project_id, creds);
        let req = sign::Request {
            method: "POST",
            host: Some(&self.host),
            path: &path,
            query: &[],
            headers: &headers,
            body,
        };
        let signed = sign::sign(
            &req,
            &sign::sdk_date(now_ms),
            &creds.access_key,
            creds.secret_key.expose(),
            sign::Options::default(),
        );
        let url = format!("{}{}", self.base, sign::encode_path(&path));
        let mut builder = self.agent.post(&url);
        for (k, v) in headers.iter().chain(signed.added_headers.iter()) {
            builder = builder.header(k.as_str(), v.as_str());
        }
        builder = builder.header("Authorization", signed.authorization.as_str());
        match builder.send(body) {
            Ok(resp) => Ok(reply_from(resp)),
            Err(e) => Err(transport_reason(&e)),
        }
    }
}

fn request_headers(project_id: &str, creds: &Credentials) -> Vec<(String, String)> {
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("X-Project-Id".to_string(), project_id.to_string()),
    ];
    if let Some(token) = &creds.security_token {
        headers.push(("X-Security-Token".to_string(), token.expose().to_string()));
    }
    headers
}

fn reply_from(mut resp: ureq::http::Response<ureq::Body>) -> Reply {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let date_ms = header("date").as_deref().and_then(parse_http_date);
    let retry_after = header("retry-after")
        .as_deref()
        .and_then(|v| parse_retry_after(v, date_ms));
    let status = resp.status().as_u16();
    // An unreadable error body still leaves the status to classify on.
    let body = read_body_capped_lossy(resp.body_mut(), MAX_ERROR_BODY);
    Reply {
        status,
        date_ms,
        retry_after,
        body,
    }
}

fn transport_reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("request timed out ({t})"),
        ureq::Error::Io(io) => format!("connection failed: {io}"),
        other => format!("request failed: {other}"),
    }
}

/// Read at most `limit` bytes; a longer body is an error (without reading it all).
pub fn read_body_capped(body: &mut ureq::Body, limit: u64) -> Result<Vec<u8>> {
    body.with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(n) => {
                Error::network(format!("reply is larger than {n} bytes"))
            }
            ureq::Error::Timeout(_) => Error::network("timed out reading the reply"),
            other => Error::network(format!("cannot read the reply: {other}")),
        })
}

/// Like [`read_body_capped`] but keeps the first `limit` bytes of a long body.
fn read_body_capped_lossy(body: &mut ureq::Body, limit: u64) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let reader = body.with_config().limit(limit + 1).reader();
    let _ = reader.take(limit).read_to_end(&mut out);
    out
}

/// Turn a reply into an [`Outcome`] (the Reporter handles the 401/403 retry first).
pub fn classify(reply: &Reply) -> Outcome {
    let err = parse_error_body(&reply.body);
    let describe = || {
        let e = err.clone().unwrap_or_default();
        match (e.code.is_empty(), e.message.is_empty()) {
            (true, true) => format!("HTTP {}", reply.status),
            (false, true) => format!("HTTP {} {}", reply.status, e.code),
            (true, false) => format!("HTTP {}: {}", reply.status, e.message),
            (false, false) => format!("HTTP {} {}: {}", reply.status, e.code, e.message),
        }
    };
    match reply.status {
        201 => Outcome::Delivered,
        401 | 403 => Outcome::Unauthorized { reason: describe() },
        408 | 429 | 500..=599 => Outcome::Retryable {
            retry_after: reply.retry_after,
            reason: describe(),
        },
        status => {
            let e = err.clone().unwrap_or_default();
            Outcome::Permanent {
                status,
                code: e.code,
                message: if e.message.is_empty() {
                    describe()
                } else {
                    e.message
                },
            }
        }
    }
}

/// True when a 401 says the signature time is outside the server's window.
pub fn is_signature_expired(reply: &Reply) -> bool {
    let text = String::from_utf8_lossy(&reply.body).to_ascii_lowercase();
    reply.status == 401 && text.contains("signature expired")
}

/// The three error body shapes Cloud Eye and its gateway use:
/// `{"error_code","error_msg"}`, `{"http_code","message":{"details","code"}}` and
/// `{"code","element","message","details":{"details","code"}}`.
pub fn parse_error_body(body: &[u8]) -> Option<ErrorBody> {
    use serde_json::Value;
    let v: Value = serde_json::from_slice(body).ok()?;
    let s = |v: Option<&Value>| -> String {
        match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    };
    if v.get("error_code").is_some() || v.get("error_msg").is_some() {
        return Some(ErrorBody {
            code: s(v.get("error_code")),
            message: s(v.get("error_msg")),
        });
    }
    if let Some(details) = v.get("details").filter(|d| d.is_object()) {
        let outer = s(v.get("message"));
        let inner = s(details.get("details"));
        let message = match (outer.is_empty(), inner.is_empty()) {
            (false, false) => format!("{outer}: {inner}"),
            (false, true) => outer,
            _ => inner,
        };
        let code = s(details.get("code"));
        return Some(ErrorBody {
            code: if code.is_empty() {
                s(v.get("code"))
            } else {
                code
            },
            message,
        });
    }
    if let Some(msg) = v.get("message").filter(|m| m.is_object()) {
        return Some(ErrorBody {
            code: s(msg.get("code")),
            message: s(msg.get("details")),
        });
    }
    None
}

/// `Retry-After`: delay seconds or an HTTP date (relative to the reply's `Date`).
pub fn parse_retry_after(value: &str, date_ms: Option<i64>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = parse_http_date(value)?;
    let now = date_ms.unwrap_or_else(crate::clock::wall_ms);
    Some(Duration::from_millis((at - now).max(0) as u64).min(MAX_RETRY_AFTER))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix ms.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == mon)? as u32 + 1;
    let day: u32 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    let days = crate::clock::days_from_civil(year, month, day);
    Some((days * 86_400 + h * 3600 + m * 60 + sec) * 1000)
}

#[derive(Debug)]
struct Endpoint {
    scheme: &'static str,
    authority: String,
    host_header: String,
}

/// `https://host[:port][/]` (any https host) or `http://` to a loopback host only.
fn parse_endpoint(endpoint: &str) -> Result<Endpoint> {
    let (scheme, rest) = if let Some(r) = endpoint.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = endpoint.strip_prefix("http://") {
        ("http", r)
    } else {
        return Err(Error::config(format!(
            "endpoint \"{endpoint}\" must start with https://"
        )));
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(Error::config(format!(
            "endpoint \"{endpoint}\" must be scheme://host[:port] without a path"
        )));
    }
    let (host, port) = split_host_port(authority);
    if scheme == "http" && !is_loopback(host) {
        return Err(Error::config(format!(
            "endpoint \"{endpoint}\": plain http:// is only allowed to a loopback address; use https://"
        )));
    }
    let default_port = if scheme == "https" { "443" } else { "80" };
    let host_header = match port {
        Some(p) if p != default_port => format!("{host}:{p}"),
        _ => host.to_string(),
    };
    Ok(Endpoint {
        scheme,
        authority: authority.to_string(),
        host_header,
    })
}

fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let port = authority[end + 1..].strip_prefix(':');
                (&authority[..=end], port)
            }
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn build_agent(config: &Config, timeouts: Timeouts) -> Result<ureq::Agent> {
    let proxy = match &config.proxy {
        Some(p) => Some(
            ureq::Proxy::new(p)
                .map_err(|e| Error::config(format!("key \"proxy\": invalid proxy URL: {e}")))?,
        ),
        None => ureq::Proxy::try_from_env(),
    };
    let agent_config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(proxy)
        .max_redirects(0)
        .timeout_connect(Some(timeouts.connect))
        .timeout_global(Some(timeouts.total))
        .user_agent(crate::version::user_agent())
        .max_idle_connections(2)
        .max_idle_connections_per_host(2)
        .build();
    match &config.ca_file {
        None => Ok(agent_config.new_agent()),
        Some(path) => {
            use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};
            // The same chain as ureq's default, with our TLS connector last.
            let connector =
                ().chain(ConnectProxyConnector::default())
                    .chain(TcpConnector::default())
                    .chain(tls::ExtraRootsTls::new(path)?);
            Ok(ureq::Agent::with_parts(
                agent_config,
                connector,
                ureq::unversioned::resolver::DefaultResolver::default(),
            ))
        }
    }
}

mod tls {
    //! TLS with Mozilla's roots plus the certificates of `ca_file`: ureq's own rustls
    //! connector takes either its bundled roots or a list of certificates, not both, so
    //! this connector builds the rustls config itself. Verification is never disabled.

    use super::Arc;
    use crate::error::{Error, Result};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
    use std::io::{Read, Write};
    use std::path::Path;
    use ureq::unversioned::transport::{
        Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
        TransportAdapter,
    };

    #[derive(Debug)]
    pub struct ExtraRootsTls {
        config: Arc<ClientConfig>,
    }

    impl ExtraRootsTls {
        pub fn new(ca_file: &Path) -> Result<ExtraRootsTls> {
            let mut roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let bad = |why: String| {
                Error::config(format!("key \"ca_file\": {}: {why}", ca_file.display()))
            };
            let certs = CertificateDer::pem_file_iter(ca_file)
                .map_err(|e| bad(e.to_string()))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("not a PEM certificate file ({e})")))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in the file".into()));
            }
            let (_, ignored) = roots.add_parsable_certificates(certs);
            if ignored > 0 {
                return Err(bad(format!("{ignored} certificate(s) could not be parsed")));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::other(format!("TLS setup failed: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(ExtraRootsTls {
                config: Arc::new(config),
            })
        }
    }

    impl<In: Transport> Connector<In> for ExtraRootsTls {
        type Out = Either<In, TlsTransport>;

        fn connect(
            &self,
            details: &ConnectionDetails,
            chained: Option<In>,
        ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
            let Some(transport) = chained else {
                return Ok(None);
            };
            if !details.needs_tls() || transport.is_tls() {
                return Ok(Some(Either::A(transport)));
            }
            let host = details
                .uri
                .host()
                .ok_or(ureq::Error::Tls("no host to verify"))?
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| ureq::Error::Tls("invalid server name"))?;
            let mut conn = ClientConnection::new(self.config.clone(), name)?;
            let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
            sock.set_timeout(details.timeout);
            conn.complete_io(&mut sock)?;
            let buffers = LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            );
            Ok(Some(Either::B(TlsTransport {
                buffers,
                stream: StreamOwned { conn, sock },
            })))
        }
    }

    pub struct TlsTransport {
        buffers: LazyBuffers,
        stream: StreamOwned<ClientConnection, TransportAdapter>,
    }

    impl std::fmt::Debug for TlsTransport {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("TlsTransport")
        }
    }

    impl Transport for TlsTransport {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }

        fn transmit_output(
            &mut self,
            amount: usize,
            timeout: NextTimeout,
        ) -> std::result::Result<(), ureq::Error> {
            self.stream.get_mut().set_timeout(timeout);
            let output = &self.buffers.output()[..amount];
            self.stream.write_all(output)?;
            Ok(())
        }

        fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
            self.stream.get_mut().set_timeout(timeout);
            let input = self.buffers.input_append_buf();
            let amount = self.stream.read(input)?;
            self.buffers.input_appended(amount);
            Ok(amount > 0)
        }

        fn is_open(&mut self) -> bool {
            self.stream.get_mut().get_mut().is_open()
        }

        fn is_tls(&self) -> bool {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_follow_the_collect_interval() {
        // 10 s interval: half is 5 s; connect capped at 5 s
        let t = Timeouts::for_collect_interval(10);
        assert_eq!(
            (t.total, t.connect),
            (Duration::from_secs(5), Duration::from_secs(5))
        );
        // 1 s interval: half is 0.5 s, raised to the 3 s floor
        assert_eq!(
            Timeouts::for_collect_interval(1).total,
            Duration::from_secs(3)
        );
        // 300 s interval: half is 150 s, capped at 30 s
        let t = Timeouts::for_collect_interval(300);
        assert_eq!(
            (t.total, t.connect),
            (Duration::from_secs(30), Duration::from_secs(5))
        );
    }

    #[test]
    fn http_date() {
        // 1994-11-06 08:49:37 UTC = 784111777 s (RFC 7231's example).
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(""), None);
    }

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after("7", None), Some(Duration::from_secs(7)));
        // Date 08:49:37, Retry-After 08:50:07 -> 30 s.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", Some(784_111_777_000)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", None), None);
        assert_eq!(
            parse_retry_after("999999", None),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn endpoints() {
        let e = parse_endpoint("https://ces.cn-north-4.myhuaweicloud.com").unwrap();
        assert_eq!(e.host_header, "ces.cn-north-4.myhuaweicloud.com");
        let e = parse_endpoint("https://ces.example.com:443/").unwrap();
        assert_eq!(e.host_header, "ces.example.com");
        let e = parse_endpoint("http://127.0.0.1:8080").unwrap();
        assert_eq!(e.host_header, "127.0.0.1:8080");
        assert!(parse_endpoint("http://[::1]:9").is_ok());
        assert!(parse_endpoint("http://localhost").is_ok());
        let e = parse_endpoint("http://ces.example.com").unwrap_err();
        assert!(e.message().contains("loopback"), "{e}");
        assert!(parse_endpoint("http://10.0.0.1").is_err());
        assert!(parse_endpoint("https://h/path").is_err());
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            date_ms: None,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn error_shapes() {
        let v2 = parse_error_body(
            br#"{"error_code":"ces.0001","error_msg":"The content must be specified."}"#,
        );
        assert_eq!(
            v2.unwrap(),
            ErrorBody {
                code: "ces.0001".into(),
                message: "The content must be specified.".into()
            }
        );
        let v1 = parse_error_body(br#"{"http_code":"403","message":{"details":"Policy doesn't allow [ces:alarms:get] to be performed","code":"403"}}"#).unwrap();
        assert_eq!(
            (v1.code.as_str(), v1.message.as_str()),
            (
                "403",
                "Policy doesn't allow [ces:alarms:get] to be performed"
            )
        );
        let old = parse_error_body(br#"{"code":400,"element":"Bad Request","message":"The system received a request which cannot be recognized","details":{"details":"Some content in message body is not correct","code":"ces.0014"}}"#).unwrap();
        assert_eq!(old.code, "ces.0014");
        assert_eq!(old.message, "The system received a request which cannot be recognized: Some content in message body is not correct");
        assert_eq!(parse_error_body(b"<html>"), None);
    }

    #[test]
    fn classification() {
        assert_eq!(classify(&reply(201, "")), Outcome::Delivered);
        assert_eq!(
            classify(&reply(
                400,
                r#"{"error_code":"ces.0014","error_msg":"bad body"}"#
            )),
            Outcome::Permanent {
                status: 400,
                code: "ces.0014".into(),
                message: "bad body".into()
            }
        );
        let mut r = reply(
            429,
            r#"{"error_code":"APIG.0308","error_msg":"The throttling threshold has been reached"}"#,
        );
        r.retry_after = Some(Duration::from_secs(3));
        assert_eq!(
            classify(&r),
            Outcome::Retryable {
                retry_after: Some(Duration::from_secs(3)),
                reason: "HTTP 429 APIG.0308: The throttling threshold has been reached".into()
            }
        );
        assert!(matches!(
            classify(&reply(503, "")),
            Outcome::Retryable { .. }
        ));
        assert!(matches!(
            classify(&reply(403, "")),
            Outcome::Unauthorized { .. }
        ));
        assert!(matches!(
            classify(&reply(404, "nope")),
            Outcome::Permanent { status: 404, .. }
        ));
        assert!(is_signature_expired(&reply(
            401,
            r#"{"error_msg":"Incorrect IAM authentication information: calc ak sk signature fail:signature expired"}"#
        )));
    }
}
