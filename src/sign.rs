//! SDK-HMAC-SHA256 request signing, the scheme every current Huawei Cloud SDK uses for
//! AK/SK requests (APIG verifies it in front of Cloud Eye).
//!
//! Steps (reference: huawei-cloud-api.md §1.2): canonical request = method, canonical URI
//! (segments percent-encoded, trailing `/` added only here), canonical query (pairs sorted
//! on their raw key then value, then encoded), canonical headers, signed header list and
//! the hex SHA-256 of the body; string to sign = algorithm, X-Sdk-Date and the hex SHA-256
//! of the canonical request; signature = hex HMAC-SHA256 keyed with the SK as it is.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// SHA-256 of the empty string: the payload hash of a request without a body.
pub const EMPTY_BODY_HASH: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const CONTENT_SHA_HEADER: &str = "X-Sdk-Content-Sha256";

/// One request as the signer sees it. `path` is the path before percent-encoding (an
/// already encoded path gives the same result: it is decoded first, as the SDKs do).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Added as a `Host` header (and signed) when `headers` has none; `None` signs
    /// without a host, as the Go SDK does.
    pub host: Option<&'a str>,
    pub path: &'a str,
    /// Query pairs before encoding; repeated keys are repeated pairs.
    pub query: &'a [(String, String)],
    /// Header names must be unique ignoring case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Which headers are signed besides the default rule (all, except names containing `_`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// The Go and Java SDKs leave `Content-Type` out of the signature; the Python SDK and
    /// the older Java SDK (the documentation example) sign it. Both are accepted.
    pub sign_content_type: bool,
}

/// The result: the header to add and the intermediate strings (for tests and debugging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Value of the `Authorization` header.
    pub authorization: String,
    /// Headers the signer added (`Host`, `X-Sdk-Date`, `X-Sdk-Content-Sha256`) that the
    /// request must carry too.
    pub added_headers: Vec<(String, String)>,
    pub signed_headers: String,
    pub canonical_request: String,
    pub string_to_sign: String,
}

/// Sign `req` at `sdk_date` (`YYYYMMDDTHHMMSSZ`) unless the request already has an
/// `X-Sdk-Date` header, whose value then wins.
pub fn sign(req: &Request, sdk_date: &str, ak: &str, sk: &str, opts: Options) -> Signed {
    let added = headers_to_add(req, sdk_date);
    let all: Vec<(String, String)> = req.headers.iter().chain(added.iter()).cloned().collect();
    let date = header_value(&all, "x-sdk-date")
        .unwrap_or(sdk_date)
        .to_string();
    let signed = signed_header_names(&all, opts);
    let canonical = canonical_request(req, &all, &signed);
    let string_to_sign = format!("{ALGORITHM}\n{date}\n{}", hex(&Sha256::digest(&canonical)));
    let signature = hex(&hmac_sha256(sk.as_bytes(), string_to_sign.as_bytes()));
    let list = signed.join(";");
    Signed {
        authorization: format!(
            "{ALGORITHM} Access={ak}, SignedHeaders={list}, Signature={signature}"
        ),
        added_headers: added,
        signed_headers: list,
        canonical_request: canonical,
        string_to_sign,
    }
}

fn headers_to_add(req: &Request, sdk_date: &str) -> Vec<(String, String)> {
    let mut added = Vec::new();
    if let Some(ct) = header_value(req.headers, "content-type") {
        let hashed = ct.starts_with("application/json") || ct.starts_with("application/bson");
        if !hashed && header_value(req.headers, CONTENT_SHA_HEADER).is_none() {
            added.push((
                CONTENT_SHA_HEADER.to_string(),
                "UNSIGNED-PAYLOAD".to_string(),
            ));
        }
    }
    if header_value(req.headers, "x-sdk-date").is_none() {
        added.push(("X-Sdk-Date".to_string(), sdk_date.to_string()));
    }
    if let Some(host) = req.host {
        if header_value(req.headers, "host").is_none() {
            added.push(("Host".to_string(), host.to_string()));
        }
    }
    added
}

fn header_value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn signed_header_names(headers: &[(String, String)], opts: Options) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| !k.contains('_'))
        .filter(|k| opts.sign_content_type || !k.starts_with("content-type"))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn canonical_request(req: &Request, headers: &[(String, String)], signed: &[String]) -> String {
    let mut canonical_headers = String::new();
    for name in signed {
        let value = header_value(headers, name).unwrap_or("").trim();
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        canonical_uri(req.path),
        canonical_query(req.query),
        canonical_headers,
        signed.join(";"),
        payload_hash(req.body, headers)
    )
}

fn payload_hash(body: &[u8], headers: &[(String, String)]) -> String {
    if body.is_empty() {
        return EMPTY_BODY_HASH.to_string();
    }
    match header_value(headers, CONTENT_SHA_HEADER) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => hex(&Sha256::digest(body)),
    }
}

/// `/a b/c` -> `/a%20b/c/`: every segment escaped, one trailing `/` ensured.
pub fn canonical_uri(path: &str) -> String {
    let decoded = percent_decode(path);
    let mut out = decoded.split('/').map(escape).collect::<Vec<_>>().join("/");
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The request-line form of `path`: segments escaped, no trailing slash added.
pub fn encode_path(path: &str) -> String {
    path.split('/').map(escape).collect::<Vec<_>>().join("/")
}

/// Pairs sorted on raw key then raw value, each side escaped, joined with `&`.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = query.iter().collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Keep `A-Z a-z 0-9 - _ . ~`; every other UTF-8 byte becomes `%XX` (upper-case hex).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` sequences to bytes (a `%` not followed by two hex digits stays), then UTF-8
/// with invalid sequences replaced, as Python's `urllib.parse.unquote` does.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // RFC 2104: a key longer than the 64-byte block is hashed, a shorter one zero-padded.
    // Doing that here gives a block-sized key, which the infallible constructor takes.
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// `X-Sdk-Date` for a Unix time in milliseconds: `YYYYMMDDTHHMMSSZ`, UTC.
pub fn sdk_date(unix_ms: i64) -> String {
    let t = crate::clock::utc_fields(unix_ms);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // case 2: a short key
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // case 6: a 131-byte key, longer than the block, is hashed first
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn escape_rules() {
        assert_eq!(escape("a b~-_.Z9"), "a%20b~-_.Z9");
        // "ü" is C3 BC in UTF-8.
        assert_eq!(escape("ü/+"), "%C3%BC%2F%2B");
    }

    #[test]
    fn uri_trailing_slash_only_once() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/V1.0/p/metric-data"), "/V1.0/p/metric-data/");
        assert_eq!(canonical_uri("/a%20b"), "/a%20b/");
        assert_eq!(canonical_uri("/a b"), "/a%20b/");
        assert_eq!(encode_path("/a b/c"), "/a%20b/c");
    }

    #[test]
    fn dates() {
        // 2006-01-02T15:04:05Z = 1136214245 s (Go's reference time).
        assert_eq!(sdk_date(1_136_214_245_000), "20060102T150405Z");
        assert_eq!(sdk_date(0), "19700101T000000Z");
    }
}
