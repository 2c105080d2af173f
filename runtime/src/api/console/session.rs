//! Who is looking at the console, and whether a POST is theirs.
//!
//! Without `--credentials` the console is open, as the API is (the server
//! listens on loopback then), and one token per process guards its forms.
//! With credentials, signing in with an access key id and its secret makes
//! a session: a random id in an `HttpOnly`, `SameSite=Strict` cookie that
//! expires, and a CSRF token of its own that every form and `fetch` sends.
//! Sessions live in memory: a restart signs everyone out, which is the safe
//! direction.

use std::collections::HashMap;
use std::time::Duration;

use askama::Template;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde::Deserialize;

use super::views::{Chrome, Viewer};
use super::{PageResult, render, see_other};
use crate::api::SharedState;

const COOKIE: &str = "wasmfc_console";
/// How long a session lasts after signing in.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// The form field (or header, for `fetch`) that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
const CSRF_HEADER: &str = "x-csrf-token";

struct Session {
    access_key_id: String,
    csrf: String,
    expires_ms: i64,
}

/// The console's sessions, and the token of an open console.
pub struct Sessions {
    open_csrf: String,
    live: Mutex<HashMap<String, Session>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            open_csrf: random_token(),
            live: Mutex::new(HashMap::new()),
        }
    }
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::random();
    hex::encode(bytes)
}

impl Sessions {
    fn create(&self, access_key_id: &str) -> (String, String) {
        let id = random_token();
        let csrf = random_token();
        let now = crate::util::now_ms();
        let mut live = self.live.lock();
        live.retain(|_, s| s.expires_ms > now);
        live.insert(
            id.clone(),
            Session {
                access_key_id: access_key_id.to_string(),
                csrf: csrf.clone(),
                expires_ms: now + SESSION_TTL.as_millis() as i64,
            },
        );
        (id, csrf)
    }

    fn viewer(&self, session_id: &str) -> Option<Viewer> {
        let live = self.live.lock();
        let s = live.get(session_id)?;
        (s.expires_ms > crate::util::now_ms()).then(|| Viewer {
            csrf: s.csrf.clone(),
            access_key_id: Some(s.access_key_id.clone()),
        })
    }

    fn end(&self, session_id: &str) {
        self.live.lock().remove(session_id);
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// Finds the viewer (or sends them to sign in) and, for a POST, checks its
/// CSRF token; the viewer goes into the request for the handlers.
pub async fn gate(State(app): State<SharedState>, req: Request, next: Next) -> Response {
    let viewer = match &app.credentials {
        None => Viewer {
            csrf: app.console.open_csrf.clone(),
            access_key_id: None,
        },
        Some(_) => match session_cookie(req.headers()).and_then(|id| app.console.viewer(id)) {
            Some(v) => v,
            None if req.method() == Method::GET => return see_other("/console/sign-in"),
            None => {
                return (StatusCode::UNAUTHORIZED, "sign in to the console first").into_response();
            }
        },
    };
    if req.method() == Method::POST {
        let (req, ok) = carries_token(req, &viewer.csrf, app.limits.management_body).await;
        let Some(mut req) = ok.then_some(req) else {
            return forbidden();
        };
        req.extensions_mut().insert(viewer);
        return next.run(req).await;
    }
    let mut req = req;
    req.extensions_mut().insert(viewer);
    next.run(req).await
}

fn forbidden() -> Response {
    super::PageError(crate::api::ApiError::new(
        StatusCode::FORBIDDEN,
        "InvalidCsrfToken",
        "the form's CSRF token is missing or stale: reload the page and try again",
    ))
    .into_response()
}

/// Whether a POST carries `csrf`: in the `X-Csrf-Token` header, or as the
/// first field of its form (the templates put it first, so a multipart
/// upload need not be read to find it).
async fn carries_token(req: Request, csrf: &str, limit: usize) -> (Request, bool) {
    let same = |v: &str| subtle::ConstantTimeEq::ct_eq(v.as_bytes(), csrf.as_bytes()).into();
    if let Some(v) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        let ok = same(v);
        return (req, ok);
    }
    if let Some(v) = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.into_owned())
    }) {
        let ok = same(&v);
        return (req, ok);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return (Request::from_parts(parts, axum::body::Body::empty()), false);
    };
    let is_multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let ok = if is_multipart {
        multipart_first_field(&bytes).is_some_and(same)
    } else {
        form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == CSRF_FIELD)
            .is_some_and(|(_, v)| same(&v))
    };
    (Request::from_parts(parts, axum::body::Body::from(bytes)), ok)
}

/// The value of a multipart body's first part when it is the `csrf` field.
fn multipart_first_field(body: &[u8]) -> Option<&str> {
    let head_end = body.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&body[..head_end]).ok()?;
    if !head.contains(&format!("name=\"{CSRF_FIELD}\"")) {
        return None;
    }
    let rest = &body[head_end + 4..];
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    std::str::from_utf8(&rest[..end]).ok()
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    error: Option<String>,
    access_key_id: String,
}

pub async fn sign_in_form(State(app): State<SharedState>) -> PageResult {
    if app.credentials.is_none() {
        return Ok(see_other("/console"));
    }
    render(&SignInPage {
        chrome: Chrome::plain("Sign in"),
        error: None,
        access_key_id: String::new(),
    })
}

#[derive(Deserialize)]
pub struct SignInForm {
    access_key_id: String,
    access_key_secret: String,
}

pub async fn sign_in(State(app): State<SharedState>, Form(form): Form<SignInForm>) -> PageResult {
    let Some(creds) = &app.credentials else {
        return Ok(see_other("/console"));
    };
    if !creds.check_secret(&form.access_key_id, &form.access_key_secret) {
        app.metrics.auth_failures.inc();
        tracing::info!(access_key_id = %form.access_key_id, "console sign-in refused");
        let page = SignInPage {
            chrome: Chrome::plain("Sign in"),
            error: Some("That access key id and secret do not match a configured key.".into()),
            access_key_id: form.access_key_id,
        };
        let mut resp = render(&page)?;
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(resp);
    }
    let (id, _) = app.console.create(&form.access_key_id);
    let cookie = format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut resp = see_other("/console");
    if let Ok(v) = cookie.parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

pub async fn sign_out(State(app): State<SharedState>, req: Request) -> Response {
    if let Some(id) = session_cookie(req.headers()) {
        app.console.end(id);
    }
    let mut resp = see_other(if app.credentials.is_some() {
        "/console/sign-in"
    } else {
        "/console"
    });
    if let Ok(v) = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0").parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_gives_its_own_token_and_ends() {
        let sessions = Sessions::default();
        let (id, csrf) = sessions.create("ak");
        let viewer = sessions.viewer(&id).expect("live session");
        assert_eq!(viewer.csrf, csrf);
        assert_ne!(csrf, sessions.open_csrf);
        assert!(sessions.viewer("other").is_none());
        sessions.end(&id);
        assert!(sessions.viewer(&id).is_none());
    }

    #[test]
    fn the_token_is_read_from_a_multipart_bodys_first_field() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntok\r\n--b\r\n";
        assert_eq!(multipart_first_field(body), Some("tok"));
        let other = b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ntok\r\n--b\r\n";
        assert_eq!(multipart_first_field(other), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; wasmfc_console=abc; b=2".parse().unwrap());
        assert_eq!(session_cookie(&h), Some("abc"));
    }
}
