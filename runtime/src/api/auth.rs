//! Request signatures, verified exactly as the FC SDKs compute them
//! (`shared/spec/fc-api.md` §3):
//!
//! - `FC <ak>:<sig>`: HMAC-SHA256 over method, Content-MD5, Content-Type,
//!   Date, the `x-fc-*` headers and the resource (`aliyun-fc2` for every
//!   call; the 2021 SDK's HTTP-trigger helper). For HTTP-trigger paths the
//!   resource also carries the query, in one of the two ways the SDKs write
//!   it; both are tried.
//! - `ACS3-HMAC-SHA256`: the 2021 SDK's default; signs every header it sets
//!   and the body's SHA-256.
//! - `acs <ak>:<sig>`: the 2021 SDK's legacy `v2` HMAC-SHA1 scheme.
//!
//! Signatures are compared in constant time, and the request time must be
//! within [`MAX_CLOCK_SKEW`] of ours.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How far a request's date may be from the server clock (FC uses 15 min).
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(15);

/// Access keys the server accepts: access key id → secret.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    keys: HashMap<String, String>,
}

impl Credentials {
    /// Reads a JSON object mapping access key id → secret.
    pub fn load(path: &Path) -> anyhow::Result<Credentials> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read credentials file {}: {e}", path.display()))?;
        let keys: HashMap<String, String> = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "credentials file {} must be a JSON object of access key id -> secret: {e}",
                path.display()
            )
        })?;
        if keys.is_empty() {
            anyhow::bail!("credentials file {} holds no keys", path.display());
        }
        Ok(Credentials { keys })
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Credentials {
        Credentials {
            keys: pairs.into_iter().collect(),
        }
    }

    /// Whether `secret` is the secret of `ak` (the console's sign-in),
    /// compared in constant time.
    pub fn check_secret(&self, ak: &str, secret: &str) -> bool {
        self.secret(ak).is_some_and(|s| same(s, secret))
    }

    fn secret(&self, ak: &str) -> Option<&str> {
        self.keys.get(ak).map(String::as_str)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the request is not signed: an Authorization header is required")]
    Missing,
    #[error("the Authorization header is malformed: {0}")]
    Malformed(String),
    #[error("the access key id '{0}' does not exist")]
    UnknownKey(String),
    #[error("the request signature does not match")]
    BadSignature,
    #[error("the body does not match x-acs-content-sha256")]
    BodyHashMismatch,
    #[error("the request time is missing or more than 15 minutes away from the server time")]
    Skewed,
    #[error("the body does not match its Content-MD5 header")]
    ContentMd5Mismatch,
    #[error(
        "this server is reachable beyond loopback, so a request with a body must sign the body: \
         use ACS3-HMAC-SHA256, or the FC scheme with a Content-MD5 header"
    )]
    UnsignedBody,
}

impl AuthError {
    /// FC's `ErrorCode` for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::UnknownKey(_) => "InvalidAccessKeyID",
            AuthError::Missing | AuthError::Malformed(_) => "AccessDenied",
            AuthError::Skewed => "RequestTimeTooSkewed",
            AuthError::BadSignature | AuthError::BodyHashMismatch => "SignatureNotMatch",
            AuthError::ContentMd5Mismatch => "InvalidDigest",
            AuthError::UnsignedBody => "AccessDenied",
        }
    }

    /// The HTTP status of this failure: a body that does not match its own
    /// digest is a bad request; everything else is a refused signature.
    pub fn status(&self) -> http::StatusCode {
        match self {
            AuthError::ContentMd5Mismatch => http::StatusCode::BAD_REQUEST,
            _ => http::StatusCode::FORBIDDEN,
        }
    }
}

/// Which signature scheme a request was verified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `FC <ak>:<sig>`: signs Content-MD5 (when sent) but not the body.
    Fc,
    /// `ACS3-HMAC-SHA256`: signs the body's SHA-256.
    Acs3,
    /// `acs <ak>:<sig>`: signs Content-MD5 (when sent) but not the body.
    AcsV2,
}

/// A request whose signature holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    pub scheme: Scheme,
}

impl Verified {
    /// Whether the signature binds the body: ACS3 always; the other
    /// schemes only through a Content-MD5 header that matched the body
    /// (`md5_matched`, from [`check_content_md5`]).
    pub fn binds_body(&self, md5_matched: bool) -> bool {
        self.scheme == Scheme::Acs3 || md5_matched
    }
}

/// Compares a request's `Content-MD5` header (base64 of the body's MD5, RFC
/// 1864), when it has one, with the body. `Ok(true)`: present and matching;
/// `Ok(false)`: absent. Both FC schemes sign this header, so a matching one
/// is what binds a signature to the body.
pub fn check_content_md5(headers: &HeaderMap, body: &[u8]) -> Result<bool, AuthError> {
    use md5::Digest as _;
    let Some(sent) = headers.get("content-md5") else {
        return Ok(false);
    };
    let digest = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body));
    let sent = sent.to_str().map_err(|_| AuthError::ContentMd5Mismatch)?.trim();
    if same(&digest, sent) {
        Ok(true)
    } else {
        Err(AuthError::ContentMd5Mismatch)
    }
}

/// The parts of a request a signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path exactly as in the request line (percent-encoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The body, for schemes that sign it (`None` when it is streamed).
    pub body: Option<&'a [u8]>,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Decodes a form value: `+` is a space, then percent-escapes.
fn form_decode(s: &str) -> String {
    decode(&s.replace('+', " "))
}

/// Verifies `req` against `creds`; returns the access key id and scheme.
pub fn verify(
    creds: &Credentials,
    req: &SignedRequest<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Verified, AuthError> {
    let auth = header(req.headers, "authorization");
    if auth.is_empty() {
        return Err(AuthError::Missing);
    }
    let (scheme, verified) = if let Some(rest) = auth.strip_prefix("FC ") {
        (Scheme::Fc, verify_fc(creds, req, rest, now))
    } else if let Some(rest) = auth.strip_prefix("ACS3-HMAC-SHA256 ") {
        (Scheme::Acs3, verify_acs3(creds, req, rest, now))
    } else if let Some(rest) = auth.strip_prefix("acs ") {
        (Scheme::AcsV2, verify_acs_v2(creds, req, rest, now))
    } else {
        return Err(AuthError::Malformed("unknown signature scheme".into()));
    };
    verified.map(|access_key_id| Verified { access_key_id, scheme })
}

fn check_http_date(date: &str, now: chrono::DateTime<chrono::Utc>) -> Result<(), AuthError> {
    let t = httpdate::parse_http_date(date).map_err(|_| AuthError::Skewed)?;
    let t: chrono::DateTime<chrono::Utc> = t.into();
    if (now - t).abs() > MAX_CLOCK_SKEW {
        return Err(AuthError::Skewed);
    }
    Ok(())
}

fn split_ak_sig(rest: &str) -> Result<(&str, &str), AuthError> {
    rest.trim()
        .split_once(':')
        .ok_or_else(|| AuthError::Malformed("expected <AccessKeyId>:<Signature>".into()))
}

/// The `x-fc-*` headers, lower-cased and sorted, as `name:value\n` lines.
fn fc_canonical_headers(h: &HeaderMap) -> String {
    let mut lines: Vec<(String, String)> = h
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-fc-"))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    lines.sort();
    lines.into_iter().map(|(k, v)| format!("{k}:{v}\n")).collect()
}

/// The FC scheme's string to sign (spec §3.1): method, Content-MD5,
/// Content-Type, Date, the `x-fc-*` headers, then the canonical resource.
fn fc_string_to_sign(method: &str, h: &HeaderMap, content_type: &str, resource: &str) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}{resource}",
        method.to_ascii_uppercase(),
        header(h, "content-md5"),
        content_type,
        header(h, "date"),
        fc_canonical_headers(h)
    )
}

/// The canonical resource of an HTTP-trigger request as `aliyun-fc2` signs
/// it: the decoded path, then the sorted, form-decoded `k=v` lines.
pub fn fc_trigger_resource(decoded_path: &str, query: Option<&str>) -> String {
    let mut pairs: Vec<String> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => format!("{}={}", form_decode(k), form_decode(v)),
            None => form_decode(p),
        })
        .collect();
    pairs.sort();
    format!("{decoded_path}\n{}", pairs.join("\n"))
}

/// Signs a request in the FC scheme; `resource` is the decoded path (or
/// [`fc_trigger_resource`] for HTTP triggers). The headers must already hold
/// `date`, `content-type` and any `x-fc-*` headers. Returns the value of the
/// `Authorization` header.
pub fn fc_authorization(
    access_key_id: &str,
    secret: &str,
    method: &str,
    headers: &HeaderMap,
    resource: &str,
) -> String {
    let sts = fc_string_to_sign(method, headers, header(headers, "content-type"), resource);
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), sts.as_bytes()));
    format!("FC {access_key_id}:{sig}")
}

fn verify_fc(
    creds: &Credentials,
    req: &SignedRequest<'_>,
    rest: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, AuthError> {
    let (ak, sig) = split_ak_sig(rest)?;
    let secret = creds.secret(ak).ok_or_else(|| AuthError::UnknownKey(ak.to_string()))?;
    let h = req.headers;
    let date = header(h, "date");
    check_http_date(date, now)?;
    let path = decode(req.path);
    let content_type = header(h, "content-type");
    let mut candidates = Vec::new();
    if req.path.contains("/proxy/") {
        // (b) aliyun-fc2 do_http_request: sorted, form-decoded k=v lines.
        candidates.push(fc_string_to_sign(
            req.method,
            h,
            content_type,
            &fc_trigger_resource(&path, req.query),
        ));
        // (c) the 2021 SDK's helper: URL order, percent-decoded, '+' kept;
        // it signs an empty content type when the caller capitalised it.
        let raw = decode(req.query.unwrap_or(""));
        let resource = format!("{path}\n{}", raw.split('&').collect::<Vec<_>>().join("\n"));
        candidates.push(fc_string_to_sign(req.method, h, content_type, &resource));
        candidates.push(fc_string_to_sign(req.method, h, "", &resource));
    } else {
        candidates.push(fc_string_to_sign(req.method, h, content_type, &path));
    }
    let sign =
        |sts: String| base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), sts.as_bytes()));
    if candidates.into_iter().any(|c| same(&sign(c), sig)) {
        Ok(ak.to_string())
    } else {
        Err(AuthError::BadSignature)
    }
}

/// RFC 3986 unreserved characters stay; everything else is escaped.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn acs3_canonical_query(query: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(p), String::new()),
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(&v, RFC3986)))
        .collect::<Vec<_>>()
        .join("&")
}

fn verify_acs3(
    creds: &Credentials,
    req: &SignedRequest<'_>,
    rest: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, AuthError> {
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(ak), Some(signed_headers), Some(signature)) = (credential, signed_headers, signature) else {
        return Err(AuthError::Malformed(
            "expected Credential, SignedHeaders and Signature".into(),
        ));
    };
    let secret = creds.secret(ak).ok_or_else(|| AuthError::UnknownKey(ak.to_string()))?;
    let h = req.headers;
    let names: Vec<&str> = signed_headers.split(';').collect();
    // Without these signed, a signature would not bind the request's time,
    // target or body.
    for required in ["host", "x-acs-date", "x-acs-content-sha256"] {
        if !names.contains(&required) {
            return Err(AuthError::Malformed(format!("SignedHeaders must include {required}")));
        }
    }
    let date = chrono::DateTime::parse_from_rfc3339(header(h, "x-acs-date")).map_err(|_| AuthError::Skewed)?;
    if (now - date.with_timezone(&chrono::Utc)).abs() > MAX_CLOCK_SKEW {
        return Err(AuthError::Skewed);
    }
    let body = req
        .body
        .ok_or_else(|| AuthError::Malformed("ACS3 signatures cover the body, which this route streams".into()))?;
    let hashed_payload = hex::encode(Sha256::digest(body));
    if !same(&hashed_payload, header(h, "x-acs-content-sha256")) {
        return Err(AuthError::BodyHashMismatch);
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let values: Vec<&str> = h
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let uri = if req.path.is_empty() { "/" } else { req.path };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        uri,
        acs3_canonical_query(req.query),
        canonical_headers,
        signed_headers,
        hashed_payload
    );
    let string_to_sign = format!(
        "ACS3-HMAC-SHA256\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let expected = hex::encode(hmac_sha256(secret.as_bytes(), string_to_sign.as_bytes()));
    if same(&expected, signature) {
        Ok(ak.to_string())
    } else {
        Err(AuthError::BadSignature)
    }
}

fn verify_acs_v2(
    creds: &Credentials,
    req: &SignedRequest<'_>,
    rest: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, AuthError> {
    let (ak, sig) = split_ak_sig(rest)?;
    let secret = creds.secret(ak).ok_or_else(|| AuthError::UnknownKey(ak.to_string()))?;
    let h = req.headers;
    check_http_date(header(h, "date"), now)?;
    let mut acs: Vec<(String, String)> = h
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-acs-"))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    acs.sort();
    let acs_headers: String = acs.into_iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let mut resource = req.path.to_string();
    if let Some(q) = req.query.filter(|q| !q.is_empty()) {
        let mut pairs: Vec<(String, String)> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (form_decode(k), form_decode(v)),
                None => (form_decode(p), String::new()),
            })
            .collect();
        pairs.sort();
        let joined: Vec<String> = pairs
            .into_iter()
            .map(|(k, v)| if v.is_empty() { k } else { format!("{k}={v}") })
            .collect();
        resource = format!("{resource}?{}", joined.join("&"));
    }
    let string_to_sign = format!(
        "{}\n{}\n{}\n{}\n{}\n{}{}",
        req.method.to_ascii_uppercase(),
        header(h, "accept"),
        header(h, "content-md5"),
        header(h, "content-type"),
        header(h, "date"),
        acs_headers,
        resource
    );
    let expected =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha1(secret.as_bytes(), string_to_sign.as_bytes()));
    if same(&expected, sig) {
        Ok(ak.to_string())
    } else {
        Err(AuthError::BadSignature)
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
