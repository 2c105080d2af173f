//! The HTTP surface: FC 2.0 routes under `/2016-08-15` and `/2021-04-06`,
//! FC 3.0 routes under `/2023-03-30`,
//! the Durable instance API, the web console under `/console/`, `/metrics`
//! and the code download route.
//!
//! Handlers are thin: parse, validate, call the registry / pool / scheduler,
//! render. Two middlewares wrap every FC route:
//! 1. request id — every response carries `X-Fc-Request-Id`, and errors
//!    rendered anywhere below carry the same id in their body;
//! 2. body + signature — buffers the body up to the route's limit (413
//!    beyond it) and, when credentials are configured, verifies the
//!    request's signature before anything else happens.

pub mod auth;
mod batched_writes;
mod body;
mod cluster;
mod connection_slots;
pub mod console;
mod durable;
pub mod error;
mod fc;
mod fc3;
mod front;
pub(crate) mod headers;
pub mod listener;
mod metrics;
mod parse_errors;
pub mod timed_body;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;

pub use error::{ApiError, ApiResult};
pub use front::Front;

use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::registry::Registry;
use crate::scheduler::Scheduler;
use auth::Credentials;

/// Request-size limits: the only ones a request body meets (the router's
/// own default limit is switched off, so none of axum's applies after ours).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Sync invocation payload (FC: 6 MB).
    pub sync_payload: usize,
    /// Async invocation payload (FC: 128 KB).
    pub async_payload: usize,
    /// Management request bodies (function code arrives base64 in JSON).
    pub management_body: usize,
}

/// Room a management body has beyond its base64 code: the function's
/// settings, environment and description.
const MANAGEMENT_SLACK: usize = 1 << 20;

impl Limits {
    /// The limits of a server that accepts code packages of up to
    /// `max_code_bytes` (`--max-code-size-mb`): a CreateFunction body
    /// carries the package base64-encoded (4/3 of its size) in JSON.
    pub fn for_code_size(max_code_bytes: u64) -> Limits {
        let base64 = usize::try_from(max_code_bytes.div_ceil(3) * 4).unwrap_or(usize::MAX);
        Limits {
            sync_payload: 6 << 20,
            async_payload: 128 << 10,
            management_body: base64.saturating_add(MANAGEMENT_SLACK),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::for_code_size(64 << 20)
    }
}

/// Shared state of the API handlers.
pub struct AppState {
    /// This node and the others sharing its store.
    pub cluster: crate::cluster::Cluster,
    pub registry: Registry,
    pub pool: Pool,
    pub scheduler: Scheduler,
    pub durable: crate::durable::Durable,
    pub autoscaler: crate::provision::Autoscaler,
    pub engine: Engine,
    pub metrics: Arc<Metrics>,
    pub credentials: Option<Credentials>,
    pub limits: Limits,
    /// Signs code-download URLs (GetFunctionCode).
    pub url_secret: String,
    /// `scheme://host[:port]` clients reach the server at (`--public-url`):
    /// the base of every URL the server hands out.
    pub public_url: String,
    /// Signed requests with a body must sign the body too (ACS3, or FC with
    /// Content-MD5): on when credentials are set and the server listens
    /// beyond loopback, unless `--allow-unsigned-bodies`.
    pub require_signed_bodies: bool,
    /// `/metrics` is served on its own listener (`--metrics-listen`), not
    /// on the API's.
    pub metrics_apart: bool,
    /// The web console's sessions.
    pub console: console::Sessions,
}

pub type SharedState = Arc<AppState>;

/// The server's service: the router, with InvokeFunction (the hot path)
/// matched and served in front of it. See [`Front`].
pub fn service(state: SharedState) -> Front {
    Front::new(state.clone(), router(state))
}

/// `/metrics` alone, for `--metrics-listen`: unsigned (a Prometheus
/// scraper cannot sign), so it is meant for a loopback or internal address.
pub fn metrics_router(state: SharedState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::render))
        .fallback(not_found)
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Builds the whole router.
pub fn router(state: SharedState) -> Router {
    let fc_routes = fc::routes();
    let mut routes = Router::new()
        .nest("/2016-08-15", fc_routes.clone())
        .nest("/2021-04-06", fc_routes)
        .nest("/2023-03-30", fc3::routes())
        .merge(fc::download_routes())
        .merge(fc::proxy_routes())
        .merge(durable::routes())
        .merge(console::routes(state.clone()))
        .route("/cluster", axum::routing::get(cluster::nodes));
    if !state.metrics_apart {
        routes = routes.route("/metrics", axum::routing::get(metrics::render));
    }
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are buffered within our own limits by `body_and_signature`
        // (and streamed routes bound theirs); axum's 2 MB default would
        // otherwise refuse larger ones after ours, in plain text.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), body_and_signature))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "PathNotSupported",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Gives every request an id, answers with it, and makes it available to
/// error rendering below. An FC-API error answer that is not already FC's
/// JSON (an extractor's plain-text rejection, an empty status) gets an FC
/// body, so every error an FC client sees has `ErrorCode` and
/// `ErrorMessage`. Two kinds of answer keep their own shape: an HTTP
/// function's (as the guest wrote it) and the Durable instance API's (as
/// Azure's clients expect it, e.g. an empty 404 for an unknown instance).
async fn request_id(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let own_shape = is_streamed(path) || durable::is_durable_path(path) || console::is_console_path(path);
    with_request_id(async move {
        let resp = next.run(req).await;
        if own_shape {
            resp
        } else {
            with_fc_error_body(resp).await
        }
    })
    .await
}

/// `resp`, or for an error answer without a JSON body, FC's error with the
/// same status and the original text as its message.
async fn with_fc_error_body(resp: Response) -> Response {
    let status = resp.status();
    let json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 64 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text.trim().to_string()
    };
    ApiError::new(status, error_code_for(status), message).into_response()
}

/// FC's `ErrorCode` for an error answered only by its status.
fn error_code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "PathNotSupported",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::PAYLOAD_TOO_LARGE => "EntityTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        StatusCode::REQUEST_TIMEOUT => "RequestTimeout",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::GONE => "ResourceGone",
        StatusCode::TOO_MANY_REQUESTS => "ResourceThrottled",
        s if s.is_server_error() => "InternalServerError",
        _ => "InvalidArgument",
    }
}

/// Runs `serve` with a fresh request id in scope (see
/// [`error::current_request_id`]) and sets it on the response.
///
/// A combinator rather than an `async fn`: an `async fn` would keep `serve`
/// and the scoped future holding it side by side in its state, doubling the
/// size of every request's future (an invocation's is several KB), and
/// futures are moved by copying.
pub(crate) fn with_request_id(serve: impl Future<Output = Response>) -> impl Future<Output = Response> {
    let id = crate::util::new_request_id();
    let header = HeaderValue::from_str(&id).ok();
    error::REQUEST_ID.scope(id, serve).map(move |mut resp| {
        if let Some(v) = header {
            resp.headers_mut().insert(headers::REQUEST_ID, v);
        }
        resp
    })
}

/// True for HTTP-trigger routes: their bodies stream to the guest, and the
/// trigger decides whether a signature is needed (`authType`).
fn is_streamed(path: &str) -> bool {
    path.starts_with(fc::PROXY_PREFIX)
}

/// Buffers the body within the route's limit, then verifies the signature.
/// HTTP-trigger routes keep their streamed body and check signatures
/// themselves, per trigger (their signature scheme does not cover the body).
async fn body_and_signature(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // The download URL is its own credential (an HMAC and an expiry);
    // `/metrics` is signed like every other route when credentials are set
    // (or served on `--metrics-listen` instead).
    // The console checks its own sessions (and bounds its own forms).
    if path.starts_with(fc::DOWNLOAD_PREFIX) || console::is_console_path(path) {
        return next.run(req).await;
    }
    let streamed = is_streamed(path);
    let limit = if path.ends_with("/invocations") {
        state.limits.sync_payload
    } else {
        state.limits.management_body
    };
    if streamed {
        return next.run(req).await;
    }
    match read_signed_body(&state, req, limit).await {
        Ok((parts, bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(refused) => refused,
    }
}

/// Buffers a request's body within `limit` (413 beyond it), then verifies
/// the request's signature (when credentials are configured) over it.
pub(crate) async fn read_signed_body(
    state: &AppState,
    req: Request,
    limit: usize,
) -> Result<(axum::http::request::Parts, Bytes), Response> {
    let (parts, body) = req.into_parts();
    let bytes = match body::collect_within(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) if e.downcast_ref::<body::TooLarge>().is_some() => {
            return Err(
                ApiError::too_large(format!("request body is larger than the {limit}-byte limit")).into_response(),
            );
        }
        Err(e) if timed_body::is_timeout(&*e) => {
            return Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", e.to_string()).into_response());
        }
        Err(e) => return Err(ApiError::invalid(format!("cannot read request body: {e}")).into_response()),
    };
    check_signature(state, &parts, Some(&bytes)).map_err(IntoResponse::into_response)?;
    Ok((parts, bytes))
}

/// Checks a buffered request's integrity and signature: its `Content-MD5`
/// (when sent) against the body, then — with credentials configured — its
/// signature, and, when the server is reachable beyond loopback, that the
/// signature binds a non-empty body (else a captured request could be
/// replayed with another body within the clock-skew window).
pub(crate) fn check_signature(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: Option<&[u8]>,
) -> Result<(), ApiError> {
    let refused = |e: auth::AuthError| {
        state.metrics.auth_failures.inc();
        tracing::info!(error = %e, path = parts.uri.path(), "refused unsigned or badly signed request");
        ApiError::new(e.status(), e.code(), e.to_string())
    };
    let md5_matched = match body {
        Some(body) => auth::check_content_md5(&parts.headers, body).map_err(refused)?,
        None => false,
    };
    let Some(creds) = &state.credentials else { return Ok(()) };
    let signed = auth::SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body,
    };
    let verified = auth::verify(creds, &signed, chrono::Utc::now()).map_err(refused)?;
    let has_body = body.is_some_and(|b| !b.is_empty());
    if state.require_signed_bodies && has_body && !verified.binds_body(md5_matched) {
        return Err(refused(auth::AuthError::UnsignedBody));
    }
    Ok(())
}
