//! HTTP-trigger invocations: `/2016-08-15/proxy/{service}[.{qualifier}]/{function}/{path...}`.
//!
//! The function's HTTP trigger for that qualifier decides which methods are
//! allowed (405 otherwise) and whether the request must be signed
//! (`authType: function`: 401 unsigned, 403 badly signed). The request —
//! method, the path after the function name, query, headers and the body as
//! a stream — goes to the `wasi:http` component, and its response streams
//! back with FC's `X-Fc-*` headers added. A guest that traps or times out
//! before answering is a 502 with an FC error body; the server keeps
//! serving.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::Scope;
use super::invoke::{InvocationType, check_async_size, invocation_type, request_context};
use crate::api::auth::{self, AuthError};
use crate::api::{ApiError, ApiResult, AppState, SharedState, headers};
use crate::engine::{GuestKind, HttpBodyError, InvokeError, RecordedRequest};
use crate::registry::ResolvedFunction;
use crate::tasks::TaskKind;

/// FC's limit for an HTTP trigger's request body.
const MAX_REQUEST_BODY: usize = 32 << 20;

/// Which function an HTTP-trigger request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyTarget<'a> {
    pub service: &'a str,
    pub qualifier: Option<&'a str>,
    pub function: &'a str,
}

/// The router's handler (for the paths [`super::super::Front`] leaves to
/// it: percent-escaped or empty segments).
pub async fn serve(State(app): State<SharedState>, scope: Scope, req: Request) -> Response {
    let target = ProxyTarget {
        service: &scope.service,
        qualifier: scope.qualifier(),
        function: scope.function(),
    };
    serve_target(&app, target, req).await
}

/// Serves one HTTP-trigger request for `target`.
pub async fn serve_target(app: &SharedState, target: ProxyTarget<'_>, req: Request) -> Response {
    match serve_request(app, target, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn serve_request(app: &SharedState, target: ProxyTarget<'_>, req: Request) -> ApiResult<Response> {
    let ProxyTarget {
        service,
        qualifier,
        function,
    } = target;
    let trigger = app.registry.http_trigger(service, function, qualifier)?;
    if !trigger.allows(req.method()) {
        let allowed: Vec<&str> = trigger.methods.iter().map(|m| m.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "HTTP trigger '{}' does not allow {}; it allows {}",
                trigger.name,
                req.method(),
                allowed.join(", ")
            ),
        ));
    }
    if trigger.requires_signature {
        verify_signature(app, &req)?;
    }
    let resolved = app.registry.resolve(service, qualifier, function)?;
    if resolved.function.spec.kind != GuestKind::HttpComponent {
        return Err(ApiError::invalid(format!(
            "function '{function}' is an event function ({}); HTTP triggers serve HTTP functions \
             (wasi:http/proxy components)",
            resolved.function.spec.kind.as_str()
        )));
    }
    if invocation_type(req.headers())? == InvocationType::Async {
        return invoke_async(app, &resolved, req).await;
    }
    if let Some(len) = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > MAX_REQUEST_BODY
    {
        return Err(ApiError::too_large(format!(
            "request body is {len} bytes; HTTP triggers accept at most {MAX_REQUEST_BODY}"
        )));
    }
    let tail = headers::text(req.headers(), &headers::LOG_TYPE)?.is_some_and(|v| v.eq_ignore_ascii_case("tail"));
    let guest_request = guest_request(req)?;
    Ok(invoke(app, &resolved, guest_request, tail).await)
}

/// `X-Fc-Invocation-Type: Async`: the request (body within the async
/// payload limit) is recorded and becomes a task, answered 202 with the
/// task id when the function is in task mode. HTTP-function tasks cannot be
/// re-run.
async fn invoke_async(app: &SharedState, resolved: &ResolvedFunction, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, app.limits.async_payload)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(ApiError::too_large(format!(
                "async invocation payload is larger than the {}-byte limit",
                app.limits.async_payload
            )));
        }
        Err(e) => return Err(ApiError::invalid(format!("cannot read request body: {e}"))),
    };
    check_async_size(app, body.len())?;
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path_with_query: sub_path_with_query(&parts.uri),
        headers: parts
            .headers
            .iter()
            .filter(|(k, _)| *k != axum::http::header::AUTHORIZATION)
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
    };
    super::invoke::invoke_async(app, resolved, &parts.headers, recorded.encode(), TaskKind::Http).await
}

/// The path after `/{function}` (still percent-encoded, as on the wire),
/// with the query.
fn sub_path_with_query(uri: &Uri) -> String {
    let raw = uri.path();
    // `{service}` and `{function}` are single segments; what follows is the
    // function's own path.
    let rest = raw.strip_prefix(super::PROXY_PREFIX).unwrap_or(raw);
    let sub_path = match rest.splitn(3, '/').nth(2) {
        Some(p) => format!("/{p}"),
        None => "/".to_string(),
    };
    match uri.query() {
        Some(q) => format!("{sub_path}?{q}"),
        None => sub_path,
    }
}

/// The request as the guest sees it: the path after `/{function}` (still
/// percent-encoded, as on the wire), the query, every header, and the body
/// streaming within [`MAX_REQUEST_BODY`].
fn guest_request(
    req: Request,
) -> ApiResult<http::Request<impl hyper::body::Body<Data = bytes::Bytes, Error = HttpBodyError> + Send + 'static>> {
    let (mut parts, body) = req.into_parts();
    let path_and_query = sub_path_with_query(&parts.uri);
    let authority = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| ApiError::invalid(format!("cannot forward this request's URL: {e}")))?;
    let body = http_body_util::Limited::new(body, MAX_REQUEST_BODY)
        .map_err(|e| HttpBodyError::InternalError(Some(format!("reading the request body: {e}"))));
    Ok(http::Request::from_parts(parts, body))
}

async fn invoke(
    app: &AppState,
    resolved: &ResolvedFunction,
    request: http::Request<impl hyper::body::Body<Data = bytes::Bytes, Error = HttpBodyError> + Send + 'static>,
    log_tail: bool,
) -> Response {
    let spec = &resolved.function.spec;
    let ctx = request_context(resolved);
    let served = app.pool.serve_http(resolved, &ctx, request).await;
    let mut resp = match served.response {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            Response::from_parts(parts, Body::new(body))
        }
        Err(e @ InvokeError::ConcurrencyLimit(_)) => {
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "ResourceExhausted", e.to_string()).into_response();
        }
        Err(InvokeError::Capacity(msg)) => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "ResourceThrottled", msg).into_response()
        }
        Err(InvokeError::Internal(msg)) => ApiError::internal("HTTP invocation", msg).into_response(),
        Err(e) => {
            let code = match &e {
                InvokeError::Timeout(_) => "FunctionTimeout",
                InvokeError::Handled(_) => "HandledInvocationError",
                _ => "UnhandledInvocationError",
            };
            ApiError::new(StatusCode::BAD_GATEWAY, code, e.to_string()).into_response()
        }
    };
    let h = resp.headers_mut();
    let mut set = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(headers::CODE_CHECKSUM, &spec.code_checksum);
    if !served.instance_id.is_empty() {
        set(headers::INSTANCE_ID, &served.instance_id);
    }
    set(headers::SERVICE_VERSION, &resolved.version_label());
    set(headers::START_TYPE, served.start.as_str());
    // What the guest logged before it answered (FC's last 4 KB).
    if log_tail && let Some(log) = &served.log {
        use base64::Engine as _;
        let tail = base64::engine::general_purpose::STANDARD.encode(log.log_tail(4096));
        set(headers::LOG_RESULT, &tail);
    }
    resp
}

/// `authType: function`: the request must carry a valid FC signature.
fn verify_signature(app: &AppState, req: &Request) -> ApiResult<()> {
    let Some(creds) = &app.credentials else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "AccessDenied",
            "this HTTP trigger requires signed requests (authType: function), \
             but the server runs without credentials (--credentials)",
        ));
    };
    let signed = auth::SignedRequest {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
        body: None,
    };
    match auth::verify(creds, &signed, chrono::Utc::now()) {
        Ok(_) => Ok(()),
        Err(AuthError::Missing) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "AccessDenied",
            "this HTTP trigger requires signed requests (authType: function): the Authorization header is missing",
        )),
        Err(e) => {
            app.metrics.auth_failures.inc();
            Err(ApiError::new(e.status(), e.code(), e.to_string()))
        }
    }
}
