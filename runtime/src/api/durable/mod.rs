//! The Durable Functions instance API (`/runtime/webhooks/durabletask/…`,
//! and the same under `/durabletask/…`, the loopback "RPC" root the Python
//! client is given), per `spec/durable-api.md`.
//!
//! The extension matches literal path segments case-insensitively, ignores a
//! trailing `/`, answers unknown routes with an empty 404, and reads query
//! names case-insensitively; axum's router does none of that, so one handler
//! per root parses the path itself and dispatches.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

mod wire;

use super::SharedState;
use crate::durable::model::RuntimeStatus;
use crate::durable::{Durable, DurableError};
use crate::journal::Control;
use crate::store::{ControlOutcome, OrchFilter};
use wire::{
    Query, bad_request, decode_token, empty, encode_token, history_json, json_response, json_value, management_payload,
    server_error, status_json, statuses, store_error,
};

/// The public webhook root.
pub const PUBLIC_ROOT: &str = "/runtime/webhooks/durabletask";
/// The root handed to out-of-process clients as `rpcBaseUrl`.
pub const RPC_ROOT: &str = "/durabletask";

/// Whether `path` is one of the Durable instance API's (which answers in
/// Azure's shapes, not FC's).
pub fn is_durable_path(path: &str) -> bool {
    [PUBLIC_ROOT, RPC_ROOT].iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

pub fn routes() -> axum::Router<SharedState> {
    axum::Router::new()
        .route(PUBLIC_ROOT, axum::routing::any(public))
        .route(&format!("{PUBLIC_ROOT}/"), axum::routing::any(public))
        .route(&format!("{PUBLIC_ROOT}/{{*rest}}"), axum::routing::any(public))
        .route(RPC_ROOT, axum::routing::any(rpc))
        .route(&format!("{RPC_ROOT}/"), axum::routing::any(rpc))
        .route(&format!("{RPC_ROOT}/{{*rest}}"), axum::routing::any(rpc))
}

async fn public(State(state): State<SharedState>, req: Request) -> Response {
    dispatch(state, PUBLIC_ROOT, req).await
}

async fn rpc(State(state): State<SharedState>, req: Request) -> Response {
    dispatch(state, RPC_ROOT, req).await
}

/// Splits the path below the root into segments (trailing `/` ignored).
fn segments(path: &str, root: &str) -> Vec<String> {
    path.strip_prefix(root)
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

async fn dispatch(state: SharedState, root: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, state.limits.management_body).await else {
        return bad_request("cannot read the request body");
    };
    let segs = segments(parts.uri.path(), root);
    let q = Query::parse(parts.uri.query());
    // Management URLs are built on `--public-url`, not on the request's
    // Host header, which any client can set.
    let base = format!("{}{root}", state.public_url);
    let durable = &state.durable;
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let m = &parts.method;
    match (m, lower.as_slice()) {
        (&Method::POST, ["orchestrators", _]) => start(durable, &base, &segs[1], None, &q, &body).await,
        (&Method::POST, ["orchestrators", _, _]) => {
            start(durable, &base, &segs[1], Some(segs[2].clone()), &q, &body).await
        }
        (&Method::GET, ["instances"]) => list(durable, &q, &parts.headers).await,
        (&Method::DELETE, ["instances"]) => purge_by(durable, &q).await,
        (&Method::GET, ["instances", _]) => status(durable, &segs[1], &q, &parts.uri).await,
        (&Method::DELETE, ["instances", _]) => {
            match durable.purge(Some(segs[1].clone()), OrchFilter::default()).await {
                Ok(0) => empty(StatusCode::NOT_FOUND),
                Ok(n) => json_response(StatusCode::OK, &json!({"instancesDeleted": n})),
                Err(e) => store_error(e),
            }
        }
        (&Method::POST, ["instances", _, "raiseevent", _]) => {
            raise(durable, &segs[1], &segs[3], &parts.headers, &body).await
        }
        (&Method::POST, ["instances", _, "restart"]) => restart(durable, &base, &segs[1], &q).await,
        (&Method::POST, ["instances", _, op]) => {
            let reason = q.get("reason").unwrap_or("").to_string();
            let op = match *op {
                "terminate" => Control::Terminate(reason),
                "suspend" => Control::Suspend(reason),
                "resume" => Control::Resume(reason),
                "rewind" => Control::Rewind(reason),
                _ => return empty(StatusCode::NOT_FOUND),
            };
            control(durable, &segs[1], op).await
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}

async fn start(
    durable: &Durable,
    base: &str,
    name: &str,
    instance_id: Option<String>,
    q: &Query,
    body: &Bytes,
) -> Response {
    let input = if body.is_empty() {
        None
    } else {
        match std::str::from_utf8(body)
            .ok()
            .filter(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok())
        {
            Some(text) => Some(text.to_string()),
            None => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"Message": "Invalid JSON content", "ExceptionMessage": "Invalid JSON content"}),
                );
            }
        }
    };
    let wait = match (q.seconds("timeout"), q.seconds("pollinginterval")) {
        (Some(t), Some(p)) if p > t => {
            return bad_request("pollingInterval must not be greater than timeout");
        }
        (Some(t), Some(p)) => Some((t, p)),
        _ => None,
    };
    let row = match durable
        .start_instance(name, instance_id, input, q.get("version").map(str::to_string))
        .await
    {
        Ok(row) => row,
        Err(DurableError::InvalidArgument(msg)) => return bad_request(&msg),
        Err(DurableError::AlreadyExists(msg)) => return server_error(&msg, "System.InvalidOperationException"),
        Err(DurableError::Store(e)) => return store_error(e),
    };
    check_status_or_wait(durable, base, &row.instance_id, wait).await
}

/// 202 + management payload, or, when asked to wait, the outcome if it
/// came in time (§3.12).
async fn check_status_or_wait(durable: &Durable, base: &str, id: &str, wait: Option<(Duration, Duration)>) -> Response {
    if let Some((timeout, interval)) = wait {
        match durable.wait(id, timeout, interval).await {
            Ok(Some(row)) if row.status == RuntimeStatus::Completed => {
                return json_response(StatusCode::OK, &json_value(row.output.as_deref()));
            }
            Ok(Some(row)) if row.status.is_terminal() => {
                return json_response(StatusCode::OK, &status_json(&row, true, None));
            }
            Ok(_) => {}
            Err(e) => return store_error(e),
        }
    }
    let payload = management_payload(base, id);
    let mut resp = json_response(StatusCode::ACCEPTED, &payload);
    if let Some(loc) = payload["statusQueryGetUri"]
        .as_str()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    resp
}

async fn status(durable: &Durable, id: &str, q: &Query, uri: &axum::http::Uri) -> Response {
    let row = match durable.get(id).await {
        Ok(Some(row)) => row,
        Ok(None) => return empty(StatusCode::NOT_FOUND),
        Err(e) => return store_error(e),
    };
    let show_input = q.flag("showinput", true);
    let history = if q.flag("showhistory", false) && row.status != RuntimeStatus::Pending {
        match durable.history(row.rid).await {
            Ok(h) => Some(history_json(&h, show_input, q.flag("showhistoryoutput", false))),
            Err(e) => return store_error(e),
        }
    } else {
        None
    };
    let body = status_json(&row, show_input, history);
    match row.status {
        RuntimeStatus::Running | RuntimeStatus::Pending | RuntimeStatus::ContinuedAsNew | RuntimeStatus::Suspended => {
            let mut resp = json_response(StatusCode::ACCEPTED, &body);
            if let Ok(loc) = HeaderValue::from_str(&uri.to_string()) {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            resp
        }
        RuntimeStatus::Failed if q.flag("returninternalservererroronfailure", false) => {
            json_response(StatusCode::INTERNAL_SERVER_ERROR, &body)
        }
        _ => json_response(StatusCode::OK, &body),
    }
}

async fn list(durable: &Durable, q: &Query, headers: &HeaderMap) -> Response {
    let top = q
        .get("top")
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
        .min(1000);
    let after = headers
        .get("x-ms-continuation-token")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .and_then(decode_token);
    let filter = OrchFilter {
        created_from_ms: q.time_ms("createdtimefrom"),
        created_to_ms: q.time_ms("createdtimeto"),
        statuses: statuses(q),
        id_prefix: q.get("instanceidprefix").filter(|p| !p.is_empty()).map(str::to_string),
        limit: top + 1,
        after,
    };
    let mut rows = match durable.list(filter).await {
        Ok(rows) => rows,
        Err(e) => return store_error(e),
    };
    let token = if rows.len() > top {
        rows.truncate(top);
        rows.last()
            .map(|r| encode_token(r.created_ms, &r.instance_id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let show_input = q.flag("showinput", true);
    let body = Value::Array(rows.iter().map(|r| status_json(r, show_input, None)).collect());
    let mut resp = json_response(StatusCode::OK, &body);
    if let Ok(v) = HeaderValue::from_str(&token) {
        resp.headers_mut().insert("x-ms-continuation-token", v);
    }
    resp
}

async fn purge_by(durable: &Durable, q: &Query) -> Response {
    let Some(from) = q.time_ms("createdtimefrom") else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!("Please provide value for 'createdTimeFrom' parameter."),
        );
    };
    // Only finished instances are purged, whatever the filter says (as the
    // Azure Storage backend does).
    let mut wanted: Vec<RuntimeStatus> = statuses(q).into_iter().filter(|s| s.is_terminal()).collect();
    if q.get("runtimestatus").is_none() {
        wanted = RuntimeStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
    }
    let filter = OrchFilter {
        created_from_ms: Some(from),
        created_to_ms: Some(q.time_ms("createdtimeto").unwrap_or_else(crate::util::now_ms)),
        statuses: wanted,
        ..OrchFilter::default()
    };
    if filter.statuses.is_empty() {
        return empty(StatusCode::NOT_FOUND);
    }
    match durable.purge(None, filter).await {
        Ok(0) => empty(StatusCode::NOT_FOUND),
        Ok(n) => json_response(StatusCode::OK, &json!({"instancesDeleted": n})),
        Err(e) => store_error(e),
    }
}

async fn raise(durable: &Durable, id: &str, name: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    // Order per the spec: 404, 410, content type, JSON.
    let row = match durable.get(id).await {
        Ok(Some(row)) => row,
        Ok(None) => return empty(StatusCode::NOT_FOUND),
        Err(e) => return store_error(e),
    };
    if row.status.is_terminal() {
        return empty(StatusCode::GONE);
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some("application/json") {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"Message": "Only application/json request content is supported"}),
        );
    }
    let data = if body.is_empty() {
        "null".to_string()
    } else {
        match std::str::from_utf8(body)
            .ok()
            .filter(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok())
        {
            Some(t) => t.to_string(),
            None => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"Message": "Invalid JSON content", "ExceptionMessage": "Invalid JSON content"}),
                );
            }
        }
    };
    match durable.raise_event(id, name.to_string(), data).await {
        Ok(ControlOutcome::NotFound) => empty(StatusCode::NOT_FOUND),
        Ok(ControlOutcome::Gone(_)) => empty(StatusCode::GONE),
        Ok(_) => empty(StatusCode::ACCEPTED),
        Err(e) => store_error(e),
    }
}

async fn control(durable: &Durable, id: &str, op: Control) -> Response {
    let rewind = matches!(op, Control::Rewind(_));
    match durable.control(id, op).await {
        Ok(ControlOutcome::NotFound) => empty(StatusCode::NOT_FOUND),
        Ok(ControlOutcome::Gone(_)) => empty(StatusCode::GONE),
        Ok(ControlOutcome::WrongState(status)) => server_error(
            &if rewind {
                format!(
                    "The rewind operation is only supported on failed orchestration instances (this one is {}).",
                    status.as_str()
                )
            } else {
                format!(
                    "The operation is not valid for an instance that is {}.",
                    status.as_str()
                )
            },
            "System.InvalidOperationException",
        ),
        Ok(ControlOutcome::Done(..)) => empty(StatusCode::ACCEPTED),
        Err(e) => store_error(e),
    }
}

async fn restart(durable: &Durable, base: &str, id: &str, q: &Query) -> Response {
    let row = match durable.get(id).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({
                    "Message": "InstanceId does not match a valid orchestration instance.",
                    "ExceptionMessage": "InstanceId does not match a valid orchestration instance.",
                }),
            );
        }
        Err(e) => return store_error(e),
    };
    let new_id = if q.flag("restartwithnewinstanceid", true) {
        None
    } else {
        Some(row.instance_id.clone())
    };
    let version = (!row.version.is_empty()).then(|| row.version.clone());
    let started = match durable
        .start_instance(&row.name, new_id, row.input.clone(), version)
        .await
    {
        Ok(r) => r,
        Err(DurableError::InvalidArgument(msg)) => return bad_request(&msg),
        Err(DurableError::AlreadyExists(msg)) => return server_error(&msg, "System.InvalidOperationException"),
        Err(DurableError::Store(e)) => return store_error(e),
    };
    let wait = q.seconds("timeout").zip(q.seconds("pollinginterval"));
    check_status_or_wait(durable, base, &started.instance_id, wait).await
}
