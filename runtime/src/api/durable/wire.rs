//! The Durable Functions API's wire shapes: query parsing (case-insensitive
//! names, the time forms clients send), the status, history and management
//! payloads, continuation tokens, and the extension's error bodies.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value, json};

use crate::durable::history::{HistoryEvent, Recorded};
use crate::durable::model::RuntimeStatus;
use crate::store::OrchRow;

/// Query parameters: names lower-cased, values decoded (`+` and `%20`).
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
                .collect(),
        )
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(super) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A boolean; unparsable means absent.
    pub(super) fn flag(&self, name: &str, default: bool) -> bool {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => default,
        }
    }

    pub(super) fn seconds(&self, name: &str) -> Option<Duration> {
        self.get(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
    }

    pub(super) fn time_ms(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(parse_time_ms)
    }
}

/// Any ISO-8601 form .NET's `DateTime.TryParse` takes for these; no zone
/// means UTC.
pub(super) fn parse_time_ms(s: &str) -> Option<i64> {
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

pub(super) fn whole_seconds(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub(super) fn precise(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Stored JSON text as a value; text that is not JSON as a string.
pub(super) fn json_value(text: Option<&str>) -> Value {
    match text {
        None => Value::Null,
        Some(t) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())),
    }
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

pub(super) fn empty(status: StatusCode) -> Response {
    status.into_response()
}

/// 400 as a thrown `ArgumentException` renders.
pub(super) fn bad_request(message: &str) -> Response {
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
pub(super) fn server_error(message: &str, exception_type: &str) -> Response {
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

pub(super) fn store_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "orchestration store failure");
    server_error(&e.to_string(), "System.Exception")
}

/// What must be escaped in a path segment of a management URL.
pub(super) const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
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
pub(super) fn management_payload(base: &str, id: &str) -> Value {
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
pub(super) fn status_json(row: &OrchRow, show_input: bool, history: Option<Vec<Value>>) -> Value {
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
pub(super) fn history_json(history: &[Recorded], show_input: bool, show_output: bool) -> Vec<Value> {
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

pub(super) fn encode_token(created_ms: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_ms}\n{id}"))
}

pub(super) fn decode_token(token: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (ms, id) = text.split_once('\n')?;
    Some((ms.parse().ok()?, id.to_string()))
}

pub(super) fn statuses(q: &Query) -> Vec<RuntimeStatus> {
    q.all("runtimestatus")
        .flat_map(|v| v.split(','))
        .filter_map(RuntimeStatus::parse)
        .collect()
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
