//! An independent SDK-HMAC-SHA256 verifier for the fake Cloud Eye server, written from the
//! reference steps (huawei-cloud-api.md §1.2) rather than from `src/sign.rs`, so a bug in
//! the signer cannot hide behind the same bug in the check. It rebuilds the canonical
//! request from the request exactly as received on the wire.

use super::fake_server::Request;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The parts of an `Authorization: SDK-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    pub access: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(value: &str) -> Result<AuthHeader, String> {
    let rest = value
        .strip_prefix("SDK-HMAC-SHA256 ")
        .ok_or("authorization is not SDK-HMAC-SHA256")?;
    let mut access = None;
    let mut signed = None;
    let mut signature = None;
    for field in rest.split(", ") {
        match field.split_once('=') {
            Some(("Access", v)) => access = Some(v.to_string()),
            Some(("SignedHeaders", v)) => signed = Some(v.split(';').map(String::from).collect()),
            Some(("Signature", v)) => signature = Some(v.to_string()),
            _ => return Err(format!("unexpected authorization field {field:?}")),
        }
    }
    Ok(AuthHeader {
        access: access.ok_or("no Access")?,
        signed_headers: signed.ok_or("no SignedHeaders")?,
        signature: signature.ok_or("no Signature")?,
    })
}

/// Step 8: unreserved bytes stay, the rest become %XX with upper-case hex.
fn uri_encode(raw: &[u8]) -> String {
    const UNRESERVED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";
    let mut out = String::new();
    for byte in raw {
        if UNRESERVED.as_bytes().contains(byte) {
            out.push(char::from(*byte));
        } else {
            out += &format!("%{:02X}", byte);
        }
    }
    out
}

fn uri_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut it = s.bytes().peekable();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hi = it.next();
            let lo = it.next();
            if let (Some(hi), Some(lo)) = (hi, lo) {
                if let Ok(v) = u8::from_str_radix(&format!("{}{}", hi as char, lo as char), 16) {
                    out.push(v);
                    continue;
                }
                out.extend([b'%', hi, lo]);
                continue;
            }
            out.push(b'%');
            out.extend(hi);
            continue;
        }
        out.push(b);
    }
    out
}

/// Step 7, from the path on the request line.
fn canonical_path(target_path: &str) -> String {
    let decoded = uri_decode(target_path);
    let segments: Vec<String> = decoded.split(|b| *b == b'/').map(uri_encode).collect();
    let joined = segments.join("/");
    if joined.ends_with('/') {
        joined
    } else {
        joined + "/"
    }
}

/// Step 9, from the query on the request line.
fn canonical_query_of(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (uri_decode(k), uri_decode(v))
        })
        .collect();
    pairs.sort();
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| uri_encode(k) + "=" + &uri_encode(v))
        .collect();
    parts.join("&")
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Steps 10-12 for a request received by the fake server.
pub fn expected_signature(
    req: &Request,
    signed_headers: &[String],
    sk: &str,
) -> Result<String, String> {
    let mut canonical = String::new();
    canonical += &req.method;
    canonical += "\n";
    canonical += &canonical_path(req.path());
    canonical += "\n";
    canonical += &canonical_query_of(req.query());
    canonical += "\n";
    for name in signed_headers {
        let value = req
            .header(name)
            .ok_or_else(|| format!("signed header {name} is not in the request"))?;
        canonical += &format!("{}:{}\n", name, value.trim());
    }
    canonical += "\n";
    canonical += &signed_headers.join(";");
    canonical += "\n";
    canonical += &hex_lower(&Sha256::digest(&req.body));
    let date = req.header("x-sdk-date").ok_or("no X-Sdk-Date header")?;
    let to_sign = format!(
        "SDK-HMAC-SHA256\n{date}\n{}",
        hex_lower(&Sha256::digest(canonical.as_bytes()))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(sk.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(to_sign.as_bytes());
    Ok(hex_lower(&mac.finalize().into_bytes()))
}

/// Verify `req` with `sk_for(access_key)`; returns the parsed header on success.
pub fn verify(
    req: &Request,
    sk_for: impl Fn(&str) -> Option<String>,
) -> Result<AuthHeader, String> {
    let auth = parse_authorization(req.header("authorization").ok_or("no Authorization")?)?;
    let mut sorted = auth.signed_headers.clone();
    sorted.sort();
    if sorted != auth.signed_headers {
        return Err("SignedHeaders is not sorted".into());
    }
    for required in ["host", "x-sdk-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(format!("{required} is not signed"));
        }
    }
    let sk = sk_for(&auth.access).ok_or_else(|| format!("unknown access key {}", auth.access))?;
    let expected = expected_signature(req, &auth.signed_headers, &sk)?;
    if expected != auth.signature {
        return Err("verify aksk signature fail".into());
    }
    Ok(auth)
}

/// `YYYYMMDDTHHMMSSZ` to Unix seconds.
pub fn parse_sdk_date(s: &str) -> Option<i64> {
    if s.len() != 16 || &s[8..9] != "T" || !s.ends_with('Z') {
        return None;
    }
    let n = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0, 4)?, n(4, 6)?, n(6, 8)?);
    let (h, mi, se) = (n(9, 11)?, n(11, 13)?, n(13, 15)?);
    // Days from civil (Howard Hinnant), written out independently of src/sign.rs.
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}
