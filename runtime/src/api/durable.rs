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
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::SharedState;
use crate::durable::history::{HistoryEvent, Recorded};
use crate::durable::model::RuntimeStatus;
use crate::durable::{Durable, DurableError};
use crate::journal::Control;
use crate::store::{ControlOutcome, OrchFilter, OrchRow};

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

/// Query parameters: names lower-cased, values decoded (`+` and `%20`).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A boolean; unparsable means absent.
    fn flag(&self, name: &str, default: bool) -> bool {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => default,
        }
    }

    fn seconds(&self, name: &str) -> Option<Duration> {
        self.get(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
    }

    fn time_ms(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(parse_time_ms)
    }
}

/// Any ISO-8601 form .NET's `DateTime.TryParse` takes for these; no zone
/// means UTC.
fn parse_time_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    let naive = s.trim_end_matches('Z');
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(Utc.from_utc_datetime(&t).timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(naive, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t).timestamp_millis())
}

fn whole_seconds(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn precise(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Stored JSON text as a value; text that is not JSON as a string.
fn json_value(text: Option<&str>) -> Value {
    match text {
        None => Value::Null,
        Some(t) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn empty(status: StatusCode) -> Response {
    status.into_response()
}

/// 400 as a thrown `ArgumentException` renders.
fn bad_request(message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({
            "Message": "One or more of the arguments submitted is incorrect",
            "ExceptionMessage": message,
            "ExceptionType": "System.ArgumentException",
            "StackTrace": "",
        }),
    )
}

/// 500 as any other exception renders.
fn server_error(message: &str, exception_type: &str) -> Response {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({
            "Message": "Something went wrong while processing your request",
            "ExceptionMessage": message,
            "ExceptionType": exception_type,
            "StackTrace": "",
        }),
    )
}

fn store_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "orchestration store failure");
    server_error(&e.to_string(), "System.Exception")
}

/// What must be escaped in a path segment of a management URL.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The management ("check status") payload of an instance, as the HTTP
/// start answers it (without `rewindPostUri`, which only the client
/// binding's payload has).
fn management_payload(base: &str, id: &str) -> Value {
    let encoded = percent_encoding::utf8_percent_encode(id, PATH_SEGMENT).to_string();
    let qs = "taskHub=wasmfc&connection=Storage";
    let inst = format!("{base}/instances/{encoded}");
    json!({
        "id": id,
        "statusQueryGetUri": format!("{inst}?{qs}"),
        "sendEventPostUri": format!("{inst}/raiseEvent/{{eventName}}?{qs}"),
        "terminatePostUri": format!("{inst}/terminate?reason={{text}}&{qs}"),
        "purgeHistoryDeleteUri": format!("{inst}?{qs}"),
        "restartPostUri": format!("{inst}/restart?{qs}"),
        "suspendPostUri": format!("{inst}/suspend?reason={{text}}&{qs}"),
        "resumePostUri": format!("{inst}/resume?reason={{text}}&{qs}"),
    })
}

/// The status object (§3.2).
fn status_json(row: &OrchRow, show_input: bool, history: Option<Vec<Value>>) -> Value {
    let mut v = json!({
        "name": row.name,
        "instanceId": row.instance_id,
        "runtimeStatus": row.status.as_str(),
        "input": if show_input { json_value(row.input.as_deref()) } else { Value::Null },
        "customStatus": json_value(row.custom_status.as_deref()),
        "output": json_value(row.output.as_deref()),
        "createdTime": whole_seconds(row.created_ms),
        "lastUpdatedTime": whole_seconds(row.updated_ms),
    });
    if let Some(h) = history {
        v["historyEvents"] = Value::Array(h);
    }
    v
}

/// History reshaped as the extension returns it (§3.4): scheduling folded
/// into completions, results only with `showHistoryOutput`, inputs only with
/// `showInput`, wasmfc's own bookkeeping events left out.
fn history_json(history: &[Recorded], show_input: bool, show_output: bool) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    // step → index in `out` of its unmatched TaskScheduled.
    let mut open: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    let mut folded: Vec<usize> = Vec::new();
    for rec in history {
        let ts = precise(rec.ts_ms);
        let mut e = Map::new();
        e.insert("EventType".into(), json!(rec.event.type_name()));
        match &rec.event {
            HistoryEvent::ExecutionStarted { name, input } => {
                e.insert("FunctionName".into(), json!(name));
                if show_input {
                    e.insert("Input".into(), json_value(input.as_deref()));
                }
            }
            HistoryEvent::TaskScheduled { step, name, input, .. } => {
                e.insert("Name".into(), json!(name));
                if show_input {
                    e.insert("Input".into(), json_value(Some(input)));
                }
                open.insert(*step, out.len());
            }
            HistoryEvent::TaskCompleted { step, result } | HistoryEvent::TaskFailed { step, reason: result } => {
                if let Some(at) = open.remove(step) {
                    let scheduled = &out[at];
                    e.insert("FunctionName".into(), scheduled["Name"].clone());
                    e.insert("ScheduledTime".into(), scheduled["Timestamp"].clone());
                    if show_input && let Some(input) = scheduled.get("Input") {
                        e.insert("Input".into(), input.clone());
                    }
                    folded.push(at);
                }
                if matches!(rec.event, HistoryEvent::TaskFailed { .. }) {
                    e.insert("Reason".into(), json!(result));
                } else if show_output {
                    e.insert("Result".into(), json_value(Some(result)));
                }
            }
            HistoryEvent::TimerCreated { fire_at_ms, .. } | HistoryEvent::TimerFired { fire_at_ms, .. } => {
                e.insert("FireAt".into(), json!(precise(*fire_at_ms)));
            }
            HistoryEvent::EventRaised { name, input } => {
                e.insert("Name".into(), json!(name));
                if show_input {
                    e.insert("Input".into(), json_value(Some(input)));
                }
            }
            HistoryEvent::ExecutionCompleted { status, result } => {
                e.insert("OrchestrationStatus".into(), json!(status));
                if show_output {
                    e.insert("Result".into(), json_value(result.as_deref()));
                }
            }
            HistoryEvent::ExecutionTerminated { reason } => {
                if show_input {
                    e.insert("Input".into(), json!(reason));
                }
            }
            HistoryEvent::ExecutionSuspended { reason }
            | HistoryEvent::ExecutionResumed { reason }
            | HistoryEvent::ExecutionRewound { reason } => {
                e.insert("Reason".into(), json!(reason));
            }
            HistoryEvent::GenericEvent { data } => {
                e.insert("Data".into(), json!(data));
            }
            HistoryEvent::EventWaitStarted { .. } | HistoryEvent::ClockRead { .. } => continue,
        }
        e.insert("Timestamp".into(), json!(ts));
        out.push(Value::Object(e));
    }
    folded.sort_unstable();
    for at in folded.into_iter().rev() {
        out.remove(at);
    }
    out
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

fn statuses(q: &Query) -> Vec<RuntimeStatus> {
    q.all("runtimestatus")
        .flat_map(|v| v.split(','))
        .filter_map(RuntimeStatus::parse)
        .collect()
}

fn encode_token(created_ms: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_ms}\n{id}"))
}

fn decode_token(token: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (ms, id) = text.split_once('\n')?;
    Some((ms.parse().ok()?, id.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_the_forms_clients_send() {
        let t = parse_time_ms("2020-01-02T03:04:05.000000Z").unwrap();
        assert_eq!(whole_seconds(t), "2020-01-02T03:04:05Z");
        assert_eq!(parse_time_ms("2020-01-02T03:04:05+00:00"), Some(t));
        assert_eq!(parse_time_ms("2020-01-02T03:04:05"), Some(t));
        assert!(parse_time_ms("yesterday").is_none());
    }

    #[test]
    fn queries_are_case_insensitive_and_decoded() {
        let q = Query::parse(Some(
            "showHistory=True&reason=fix+it%20now&runtimeStatus=Running,Pending",
        ));
        assert!(q.flag("showhistory", false));
        assert_eq!(q.get("reason"), Some("fix it now"));
        assert_eq!(statuses(&q), vec![RuntimeStatus::Running, RuntimeStatus::Pending]);
    }

    #[test]
    fn continuation_tokens_round_trip() {
        assert_eq!(decode_token(&encode_token(5, "a\nb")), Some((5, "a\nb".into())));
        assert_eq!(decode_token("!!"), None);
    }

    #[test]
    fn history_folds_scheduling_into_completion() {
        let h = vec![
            Recorded {
                seq: 0,
                ts_ms: 0,
                event: HistoryEvent::TaskScheduled {
                    step: 0,
                    name: "hello".into(),
                    input: "\"Tokyo\"".into(),
                    task_id: "t".into(),
                    attempt: 0,
                    retry: None,
                },
            },
            Recorded {
                seq: 1,
                ts_ms: 5,
                event: HistoryEvent::TaskCompleted {
                    step: 0,
                    result: "\"Hello Tokyo!\"".into(),
                },
            },
        ];
        let out = history_json(&h, true, true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["EventType"], "TaskCompleted");
        assert_eq!(out[0]["FunctionName"], "hello");
        assert_eq!(out[0]["Result"], "Hello Tokyo!");
        assert_eq!(out[0]["Input"], "Tokyo");
        assert!(history_json(&h, true, false)[0].get("Result").is_none());
    }
}

/// Continuation tokens of the instance list.
#[cfg(test)]
mod token_properties {
    use proptest::prelude::*;

    use super::{decode_token, encode_token};

    proptest! {
        #[test]
        fn tokens_round_trip(ms in any::<i64>(), id in "\\PC{0,40}") {
            prop_assert_eq!(decode_token(&encode_token(ms, &id)), Some((ms, id)));
        }

        #[test]
        fn any_token_is_answered(token in "[ -~]{0,80}") {
            let _ = decode_token(&token);
        }
    }
}
