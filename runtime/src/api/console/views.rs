//! What the templates show: rows of the core's types turned into display
//! strings (times, durations, states), so templates stay logic-free.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::engine::RecordedRequest;
use crate::store::TaskRow;
use crate::tasks::TaskState;

/// Who the page is for: what its forms must carry, and who signed in.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub csrf: String,
    /// The access key id signed in; `None` on an open console.
    pub access_key_id: Option<String>,
}

/// The page frame: title, navigation, the viewer's CSRF token.
pub struct Chrome {
    pub title: String,
    pub csrf: String,
    /// The access key id signed in, for the sign-out button.
    pub signed_in: Option<String>,
    /// Which navigation entry is current.
    pub section: &'static str,
}

impl Chrome {
    pub fn new(viewer: &Viewer, section: &'static str, title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            csrf: viewer.csrf.clone(),
            signed_in: viewer.access_key_id.clone(),
            section,
        }
    }

    /// For pages shown before or without a viewer (sign-in, errors).
    pub fn plain(title: &str) -> Chrome {
        Chrome {
            title: title.to_string(),
            csrf: String::new(),
            signed_in: None,
            section: "",
        }
    }
}

/// A point in time: machine-readable for the script (which shows it in
/// the viewer's zone) and UTC text for the page and its tooltip.
#[derive(Clone)]
pub struct Time {
    pub iso: String,
    pub utc: String,
}

impl Time {
    pub fn of(ms: i64) -> Option<Time> {
        let t: DateTime<Utc> = DateTime::from_timestamp_millis(ms).filter(|_| ms > 0)?;
        Some(Time {
            iso: t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            utc: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        })
    }
}

/// `1.234 s`, `12 ms`, `3 min 04 s`.
pub fn duration(ms: i64) -> String {
    match ms {
        ms if ms < 0 => String::new(),
        ms if ms < 1000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.3} s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000),
        ms => format!("{} h {:02} min", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

/// A state shown as a word, a symbol and a colour (never colour alone).
pub struct Badge {
    pub text: &'static str,
    pub symbol: &'static str,
    /// CSS class: its colour family.
    pub tone: &'static str,
}

pub fn badge(state: TaskState) -> Badge {
    use TaskState::*;
    let (symbol, tone) = match state {
        Enqueued | Dequeued => ("◷", "waiting"),
        Running | Retrying | Stopping => ("▶", "running"),
        Succeeded => ("✓", "ok"),
        Failed | Invalid | Expired => ("✕", "bad"),
        Stopped => ("■", "neutral"),
    };
    Badge {
        text: state.as_str(),
        symbol,
        tone,
    }
}

/// A badge for a status named by a string (orchestrations).
pub fn badge_named(text: &'static str) -> Badge {
    let (symbol, tone) = match text {
        "Pending" => ("◷", "waiting"),
        "Running" | "ContinuedAsNew" => ("▶", "running"),
        "Completed" => ("✓", "ok"),
        "Failed" | "Terminated" => ("✕", "bad"),
        _ => ("■", "neutral"),
    };
    Badge { text, symbol, tone }
}

/// One row of a task list.
pub struct TaskLine {
    pub id: String,
    pub href: String,
    /// `service/function`, for lists across functions.
    pub function: String,
    pub function_href: String,
    pub badge: Badge,
    pub qualifier: String,
    pub started: Option<Time>,
    pub ended: Option<Time>,
    pub duration: String,
    /// Set while the task runs: the script ticks its duration from here.
    pub running_since_ms: Option<i64>,
    pub retries: u32,
    pub request_id: String,
    pub instance_id: String,
    pub error: String,
}

impl TaskLine {
    pub fn of(row: &TaskRow) -> TaskLine {
        let running = !row.status.is_terminal();
        let shown_ms = if row.end_ms > 0 {
            row.end_ms - row.created_ms
        } else {
            crate::util::now_ms() - row.created_ms
        };
        TaskLine {
            id: row.invocation_id.clone(),
            href: task_href(&row.service, &row.function, &row.invocation_id),
            function: format!("{}/{}", row.service, row.function),
            function_href: function_href(&row.service, &row.function),
            badge: badge(row.status),
            qualifier: row.qualifier.clone(),
            started: Time::of(row.created_ms),
            ended: Time::of(row.end_ms),
            duration: duration(shown_ms),
            running_since_ms: running.then_some(row.created_ms),
            retries: row.attempts,
            request_id: row.request_id.clone(),
            instance_id: row.instance_id.clone(),
            error: row.error.clone(),
        }
    }
}

/// What a path segment keeps as is: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A path segment, percent-encoded.
pub fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

pub fn function_href(service: &str, function: &str) -> String {
    format!("/console/services/{}/functions/{}", seg(service), seg(function))
}

pub fn task_href(service: &str, function: &str, id: &str) -> String {
    format!("{}/tasks/{}", function_href(service, function), seg(id))
}

/// A document's field as the page shows it: strings as they are, nothing
/// for a missing or null field, other values as JSON.
pub fn json_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// An HTTP task's recorded response (`{status, headers, body,
/// bodyBase64}`), as the text of an HTTP response; anything else as is.
pub fn describe_response(result: &str) -> String {
    let Ok(Value::Object(r)) = serde_json::from_str::<Value>(result) else {
        return result.to_string();
    };
    let mut out = format!("HTTP {}\n", r.get("status").and_then(Value::as_u64).unwrap_or_default());
    for (k, v) in r.get("headers").and_then(Value::as_object).into_iter().flatten() {
        out.push_str(&format!("{k}: {}\n", v.as_str().unwrap_or_default()));
    }
    out.push('\n');
    let body = r.get("body").and_then(Value::as_str).unwrap_or_default();
    if r.get("bodyBase64").and_then(Value::as_bool) == Some(true) {
        match base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body) {
            Ok(bytes) => out.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => out.push_str(body),
        }
    } else {
        out.push_str(body);
    }
    out
}

/// An HTTP task's recorded request, as text.
pub fn describe_request(r: &RecordedRequest) -> String {
    let mut out = format!("{} {}\n", r.method, r.path_with_query);
    for (k, v) in &r.headers {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out.push('\n');
    out.push_str(&String::from_utf8_lossy(&r.body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12), "12 ms");
        assert_eq!(duration(1234), "1.234 s");
        assert_eq!(duration(184_000), "3 min 04 s");
        assert_eq!(duration(3_720_000), "1 h 02 min");
    }

    #[test]
    fn times_have_iso_and_utc_text() {
        let t = Time::of(1_700_000_000_123).expect("a time");
        assert_eq!(t.iso, "2023-11-14T22:13:20.123Z");
        assert_eq!(t.utc, "2023-11-14 22:13:20 UTC");
        assert!(Time::of(0).is_none(), "zero is 'not yet'");
    }

    #[test]
    fn every_state_has_a_symbol_and_its_name() {
        for s in TaskState::ALL {
            let b = badge(s);
            assert_eq!(b.text, s.as_str());
            assert!(!b.symbol.is_empty());
        }
    }
}
