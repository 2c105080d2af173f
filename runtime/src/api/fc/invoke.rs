//! InvokeFunction.
//!
//! Sync: the body is the event, the response body is what the guest
//! returned. A guest failure is still HTTP 200 (as FC) with
//! `X-Fc-Error-Type` and a `{"errorMessage","errorType"}` body; running out
//! of instances is a 429 FC error.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::Scope;
use crate::api::error::current_request_id;
use crate::api::{ApiError, ApiResult, SharedState, headers};
use crate::engine::{InvocationContext, InvokeError};
use crate::pool::PooledInvocation;
use crate::registry::ResolvedFunction;
use crate::scheduler::Submission;
use crate::tasks::TaskKind;

/// Headers of a successful sync response: content type, five `X-Fc-*`
/// facts (duration, version, memory, code checksum, instance id), the start
/// kind, the log tail and the request id.
const RESPONSE_HEADERS: usize = 9;

/// FC's log tail is the last 4 KB.
const LOG_TAIL_BYTES: usize = 4096;

/// How the caller asked for the invocation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    Sync,
    Async,
}

pub fn invocation_type(headers: &HeaderMap) -> Result<InvocationType, ApiError> {
    match headers::text(headers, &headers::INVOCATION_TYPE)? {
        None | Some("") => Ok(InvocationType::Sync),
        Some(v) if v.eq_ignore_ascii_case("sync") => Ok(InvocationType::Sync),
        Some(v) if v.eq_ignore_ascii_case("async") => Ok(InvocationType::Async),
        Some(v) => Err(ApiError::invalid(format!(
            "X-Fc-Invocation-Type must be Sync or Async, got '{v}'"
        ))),
    }
}

pub async fn invoke(
    State(app): State<SharedState>,
    scope: Scope,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    invoke_function(
        &app,
        &scope.service,
        scope.qualifier(),
        scope.function(),
        &headers,
        body,
    )
    .await
}

/// InvokeFunction of the function named by its parts: the router's handler
/// above, and the front's matcher, which has no `Scope` to build.
pub async fn invoke_function(
    app: &SharedState,
    service: &str,
    qualifier: Option<&str>,
    function: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let kind = invocation_type(headers)?;
    let resolved = app.registry.resolve(service, qualifier, function)?;
    match kind {
        InvocationType::Sync => invoke_sync(app, &resolved, headers, body).await,
        InvocationType::Async => {
            check_async_size(app, body.len())?;
            // Boxed so that its (larger) future does not size the sync path's.
            Box::pin(invoke_async(app, &resolved, headers, body, TaskKind::Event)).await
        }
    }
}

/// FC's async payload limit (128 KB).
pub(in crate::api) fn check_async_size(app: &SharedState, len: usize) -> ApiResult<()> {
    if len > app.limits.async_payload {
        return Err(ApiError::too_large(format!(
            "async invocation payload is {len} bytes; the limit is {}",
            app.limits.async_payload
        )));
    }
    Ok(())
}

/// Async: stored as a task before the 202. In task mode (the function's
/// `statefulInvocation`, or the per-call `X-Fc-Stateful-Async-Invocation-Enable`)
/// the task is visible through the task API under its id.
/// `kind` is the task kind: an event, or a recorded request to an HTTP
/// function.
pub(in crate::api) async fn invoke_async(
    app: &SharedState,
    resolved: &ResolvedFunction,
    headers: &HeaderMap,
    body: Bytes,
    kind: TaskKind,
) -> ApiResult<Response> {
    let spec = &resolved.function.spec;
    let policy = app.scheduler.policy(&resolved.service, &spec.name, &resolved.qualifier);
    let stateful = match headers::text(headers, &headers::STATEFUL_ASYNC_ENABLE)? {
        None | Some("") => policy.stateful,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "header {} must be true or false, got '{v}'",
                headers::STATEFUL_ASYNC_ENABLE
            )));
        }
    };
    let delay = async_delay(headers)?;
    // A header that is present but empty is an (invalid) empty id.
    let id = headers::text(headers, &headers::STATEFUL_ASYNC_ID)?.map(str::to_string);
    let (_, id) = app
        .scheduler
        .submit(Submission {
            service: resolved.service.clone(),
            function: spec.name.clone(),
            qualifier: resolved.qualifier.clone(),
            invocation_id: id,
            stateful,
            kind,
            payload: body,
            request_id: current_request_id(),
            detail: match delay.as_secs() {
                0 => "accepted".into(),
                s => format!("accepted; runs after a delay of {s} s (X-Fc-Async-Delay)"),
            },
            delay,
        })
        .await
        .map_err(super::tasks::submit_error)?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    if stateful && let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(headers::STATEFUL_ASYNC_ID, v);
    }
    Ok(resp)
}

/// The most an async invocation may be delayed, in seconds (FC's limit).
const MAX_ASYNC_DELAY_S: u64 = 3600;

/// `X-Fc-Async-Delay`: whole seconds, 0 to [`MAX_ASYNC_DELAY_S`].
fn async_delay(headers: &HeaderMap) -> ApiResult<Duration> {
    let Some(v) = headers::text(headers, &headers::ASYNC_DELAY)? else {
        return Ok(Duration::ZERO);
    };
    match v.trim().parse::<u64>() {
        Ok(s) if s <= MAX_ASYNC_DELAY_S => Ok(Duration::from_secs(s)),
        _ => Err(ApiError::invalid(format!(
            "header {} must be a whole number of seconds from 0 to {MAX_ASYNC_DELAY_S}, got '{v}'",
            headers::ASYNC_DELAY
        ))),
    }
}

async fn invoke_sync(
    app: &SharedState,
    resolved: &ResolvedFunction,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if body.len() > app.limits.sync_payload {
        return Err(ApiError::too_large(format!(
            "sync invocation payload is {} bytes; the limit is {}",
            body.len(),
            app.limits.sync_payload
        )));
    }
    // `X-Wasmfc-Start: cold` (our extension, for benchmarks and debugging)
    // skips idle instances and reloads the compiled code from its on-disk
    // artifact: what the first invocation after a restart or a scale to zero
    // costs.
    let force_cold = headers::text(headers, &headers::WASMFC_START)?.is_some_and(|v| v.eq_ignore_ascii_case("cold"));
    let tail = headers::text(headers, &headers::LOG_TYPE)?.is_some_and(|v| v.eq_ignore_ascii_case("tail"));
    let ctx = request_context(resolved);
    let outcome = if force_cold {
        Box::pin(app.pool.invoke_cold(resolved, ctx, body)).await
    } else {
        app.pool.invoke(resolved, ctx, body).await
    };
    Ok(render(resolved, &outcome, tail))
}

/// The context of a synchronous request (InvokeFunction or an HTTP
/// trigger): this request's id, the function's timeout, no task.
pub(super) fn request_context(resolved: &ResolvedFunction) -> InvocationContext {
    let timeout = std::time::Duration::from_secs(resolved.function.spec.timeout_s);
    InvocationContext::request(current_request_id(), resolved.target(), timeout)
}

fn render(resolved: &ResolvedFunction, outcome: &PooledInvocation, tail: bool) -> Response {
    let inv = &outcome.invocation;
    let mut resp = match &inv.result {
        Ok(out) => {
            let mut r = Response::new(axum::body::Body::from(out.clone()));
            // Room for every header this response carries (the request id
            // is added by the caller), so the map is allocated once instead
            // of growing twice.
            r.headers_mut().reserve(RESPONSE_HEADERS);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        Err(e @ InvokeError::ConcurrencyLimit(_)) => {
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "ResourceExhausted", e.to_string()).into_response();
        }
        Err(InvokeError::Capacity(msg)) => {
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "ResourceThrottled", msg.clone()).into_response();
        }
        Err(InvokeError::Internal(msg)) => return ApiError::internal("invocation", msg).into_response(),
        Err(e) => {
            let body = json!({ "errorMessage": e.to_string(), "errorType": e.error_type() });
            let mut r = (StatusCode::OK, axum::Json(body)).into_response();
            r.headers_mut()
                .insert(headers::ERROR_TYPE, HeaderValue::from_static(e.fc_error_type()));
            r
        }
    };
    let h = resp.headers_mut();
    h.insert(
        headers::INVOCATION_DURATION,
        HeaderValue::from(inv.duration.as_millis() as u64),
    );
    h.insert(headers::START_TYPE, HeaderValue::from_static(outcome.start.as_str()));
    let version = match resolved.version {
        None => HeaderValue::from_static("LATEST"),
        Some(v) => HeaderValue::from(v),
    };
    h.insert(headers::SERVICE_VERSION, version);
    h.insert(headers::MAX_MEMORY_USAGE, mebibytes_2dp(inv.peak_memory_bytes));
    if let Some(fuel) = inv.fuel_consumed {
        h.insert(headers::WASMFC_FUEL_CONSUMED, HeaderValue::from(fuel));
    }
    let mut set = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(headers::CODE_CHECKSUM, &resolved.function.spec.code_checksum);
    set(headers::INSTANCE_ID, &inv.instance_id);
    if tail {
        set(
            headers::LOG_RESULT,
            &base64::engine::general_purpose::STANDARD.encode(inv.log_tail(LOG_TAIL_BYTES)),
        );
    }
    resp
}

/// Bytes as MiB with two decimals (FC's `X-Fc-Max-Memory-Usage`), written
/// digit by digit: float formatting, and then `format!`, were each a
/// visible share of a warm invoke's CPU.
fn mebibytes_2dp(bytes: u64) -> HeaderValue {
    let mut hundredths = (bytes as u128 * 100 + (1 << 19)) >> 20;
    // u64::MAX bytes is 1.8e15 hundredths of a MiB: 16 digits and a point.
    let mut text = [0u8; 24];
    let mut at = text.len();
    let mut push = |byte: u8| {
        at -= 1;
        text[at] = byte;
    };
    for _ in 0..2 {
        push(b'0' + (hundredths % 10) as u8);
        hundredths /= 10;
    }
    push(b'.');
    loop {
        push(b'0' + (hundredths % 10) as u8);
        hundredths /= 10;
        if hundredths == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&text[at..]).unwrap_or_else(|_| HeaderValue::from_static("0.00"))
}

#[cfg(test)]
mod tests {
    use super::mebibytes_2dp;

    #[test]
    fn memory_usage_has_two_decimals() {
        assert_eq!(mebibytes_2dp(0), "0.00");
        assert_eq!(mebibytes_2dp(1 << 20), "1.00");
        assert_eq!(mebibytes_2dp(1_179_648), "1.13");
        assert_eq!(mebibytes_2dp(5 << 19), "2.50");
        assert_eq!(mebibytes_2dp(1234 << 20), "1234.00");
        assert_eq!(mebibytes_2dp(u64::MAX), "17592186044416.00");
    }
}
