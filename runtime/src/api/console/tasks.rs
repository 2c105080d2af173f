//! Tasks in the console (the list and its filters are `task_list`):
//! a task's page (payload, result, timeline, logs, actions), the
//! submit dialog, Stop and Re-run, and bulk actions by filter. Each action
//! goes through the FC API's own core calls: submitting is async
//! InvokeFunction's (so `X-Fc-Async-Delay` and the id rule hold as they do
//! there), Stop is the scheduler's, Re-run and the bulk actions are the
//! task API extensions'.

use askama::Template;
use axum::extract::{Extension, Form, Path, RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::task_list::ListParams;
use super::views::{self, Chrome, TaskLine, Time, function_href, task_href};
use super::{PageError, PageResult, Viewer, render, see_other};
use crate::api::SharedState;
use crate::api::fc::bulk::{BulkSummary, rerun_matching, stop_matching};
use crate::api::fc::invoke::{check_async_size, invoke_async};
use crate::api::fc::tasks::rerun_row;
use crate::api::headers;
use crate::engine::{GuestKind, RecordedRequest};
use crate::scheduler::StopOutcome;
use crate::store::TaskRow;
use crate::tasks::{TaskKind, TaskState};

/// A stateful task of the function, or the console's not-found page.
async fn load(app: &SharedState, service: &str, function: &str, id: &str, payload: bool) -> Result<TaskRow, PageError> {
    app.scheduler
        .store()
        .get_task(service, function, id, payload)
        .await?
        .filter(|r| r.stateful)
        .ok_or_else(|| {
            PageError::not_found(
                "StatefulAsyncInvocationNotFound",
                format!("task '{id}' of {service}/{function} does not exist"),
            )
        })
}

/// One state of a task's timeline: where its bar starts and how long it is.
pub struct Segment {
    pub badge: views::Badge,
    pub at: Option<Time>,
    pub spent: String,
    pub detail: String,
    /// Percentages of the whole timeline, for the waterfall.
    pub left_pct: String,
    pub width_pct: String,
}

fn timeline(events: &[crate::tasks::HistoryEvent], end_ms: i64) -> Vec<Segment> {
    let Some(first) = events.first().map(|e| e.timestamp_ms) else {
        return Vec::new();
    };
    let now = crate::util::now_ms();
    let last = if end_ms > 0 { end_ms } else { now };
    let total = (last - first).max(1) as f64;
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let until = events.get(i + 1).map_or(last, |n| n.timestamp_ms);
            let state = TaskState::parse(&e.event_type).unwrap_or(TaskState::Invalid);
            let spent = if state.is_terminal() { 0 } else { until - e.timestamp_ms };
            Segment {
                badge: views::badge(state),
                at: Time::of(e.timestamp_ms),
                spent: if state.is_terminal() {
                    String::new()
                } else {
                    views::duration(spent)
                },
                detail: e.detail.clone(),
                left_pct: format!("{:.2}", (e.timestamp_ms - first) as f64 / total * 100.0),
                width_pct: format!("{:.2}", (spent as f64 / total * 100.0).max(0.4)),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/task.html")]
struct TaskPage {
    chrome: Chrome,
    service: String,
    function: String,
    function_href: String,
    href: String,
    line: TaskLine,
    kind: &'static str,
    payload: String,
    result: String,
    destination_status: String,
    next_run: Option<Time>,
    fuel: Option<u64>,
    timeline: Vec<Segment>,
    logs: String,
    open: bool,
    curl: String,
    cli: String,
}

pub async fn detail(
    State(app): State<SharedState>,
    Extension(viewer): Extension<Viewer>,
    Path((service, function, id)): Path<(String, String, String)>,
) -> PageResult {
    let row = load(&app, &service, &function, &id, true).await?;
    let store = app.scheduler.store();
    let events = store.task_events(row.seq).await?;
    let logs = store.task_logs(row.seq).await?.unwrap_or_default();
    let text = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let payload = match row.kind {
        TaskKind::Http => row
            .payload
            .as_ref()
            .and_then(|p| RecordedRequest::decode(p).ok())
            .map(|r| views::describe_request(&r))
            .unwrap_or_default(),
        _ => text(&row.payload),
    };
    let api_path = format!(
        "/2021-04-06/services/{}/functions/{}/stateful-async-invocations/{}",
        views::seg(&service),
        views::seg(&function),
        views::seg(&id)
    );
    render(&TaskPage {
        chrome: Chrome::new(&viewer, "functions", format!("Task {id}")),
        function_href: function_href(&service, &function),
        href: task_href(&service, &function, &id),
        line: TaskLine::of(&row),
        kind: row.kind.as_str(),
        payload,
        result: match row.kind {
            TaskKind::Http => views::describe_response(&text(&row.result)),
            _ => text(&row.result),
        },
        destination_status: row.destination_status.clone(),
        next_run: (matches!(row.status, TaskState::Enqueued | TaskState::Retrying))
            .then(|| Time::of(row.next_run_ms))
            .flatten(),
        fuel: row.fuel_consumed,
        timeline: timeline(&events, row.end_ms),
        logs: String::from_utf8_lossy(&logs).into_owned(),
        open: !row.status.is_terminal(),
        curl: format!("curl -s {}{api_path}", app.public_url),
        cli: format!(
            "wasmfc tasks --endpoint {} get -s {service} -f {function} {id}",
            app.public_url
        ),
        service,
        function,
    })
}

/// The submit dialog's fields.
#[derive(Deserialize)]
pub struct SubmitForm {
    #[serde(default)]
    id_mode: String,
    #[serde(default)]
    invocation_id: String,
    #[serde(default)]
    delay: String,
    #[serde(default)]
    qualifier: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    headers: String,
    #[serde(default)]
    body: String,
}

/// The payload the dialog describes: the event, or for an HTTP function
/// the request to record (as an HTTP trigger records one).
fn submitted_payload(kind: GuestKind, form: &SubmitForm) -> Result<(Bytes, TaskKind), PageError> {
    if kind != GuestKind::HttpComponent {
        return Ok((Bytes::from(form.event.clone()), TaskKind::Event));
    }
    let path = if form.path.trim().is_empty() {
        "/"
    } else {
        form.path.trim()
    };
    if !path.starts_with('/') {
        return Err(PageError::invalid(format!(
            "the request path must start with '/', got '{path}'"
        )));
    }
    let mut headers = Vec::new();
    for line in form.headers.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| PageError::invalid(format!("header line '{line}' is not 'Name: value'")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let method = if form.method.trim().is_empty() {
        "GET".to_string()
    } else {
        form.method.trim().to_ascii_uppercase()
    };
    let recorded = RecordedRequest {
        method,
        path_with_query: path.to_string(),
        headers,
        body: Bytes::from(form.body.clone()),
    };
    Ok((recorded.encode(), TaskKind::Http))
}

/// Submits a task through async InvokeFunction's rules, then shows it.
pub async fn submit(
    State(app): State<SharedState>,
    Path((service, function)): Path<(String, String)>,
    Form(form): Form<SubmitForm>,
) -> PageResult {
    let qualifier = Some(form.qualifier.trim()).filter(|q| !q.is_empty());
    let resolved = app.registry.resolve(&service, qualifier, &function)?;
    let (payload, kind) = submitted_payload(resolved.function.spec.kind, &form)?;
    check_async_size(&app, payload.len())?;
    let mut h = HeaderMap::new();
    h.insert(
        headers::STATEFUL_ASYNC_ENABLE,
        "true".parse().expect("a valid header value"),
    );
    if form.id_mode == "custom" {
        let id = form.invocation_id.trim();
        let value = id
            .parse()
            .map_err(|_| PageError::invalid(format!("'{id}' is not a valid task id")))?;
        h.insert(headers::STATEFUL_ASYNC_ID, value);
    }
    let delay = form.delay.trim();
    if !delay.is_empty() {
        let value = delay
            .parse()
            .map_err(|_| PageError::invalid(format!("'{delay}' is not a delay in seconds")))?;
        h.insert(headers::ASYNC_DELAY, value);
    }
    let accepted = invoke_async(&app, &resolved, &h, payload, kind).await?;
    let id = accepted
        .headers()
        .get(headers::STATEFUL_ASYNC_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok(see_other(&task_href(&service, &function, &id)))
}

pub async fn stop(
    State(app): State<SharedState>,
    Path((service, function, id)): Path<(String, String, String)>,
) -> PageResult {
    let row = load(&app, &service, &function, &id, false).await?;
    match app.scheduler.stop(row).await? {
        StopOutcome::NotFound => Err(PageError::not_found(
            "StatefulAsyncInvocationNotFound",
            format!("task '{id}' no longer exists"),
        )),
        // Already finished: the page shows how.
        _ => Ok(see_other(&task_href(&service, &function, &id))),
    }
}

pub async fn rerun(
    State(app): State<SharedState>,
    Path((service, function, id)): Path<(String, String, String)>,
) -> PageResult {
    let row = load(&app, &service, &function, &id, true).await?;
    let new_id = rerun_row(&app, &row, None).await?;
    Ok(see_other(&task_href(&service, &function, &new_id)))
}

/// Which bulk action, and the view it applies to.
struct BulkRequest {
    action: BulkAction,
    params: ListParams,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BulkAction {
    Stop,
    Rerun,
}

impl BulkRequest {
    fn parse(raw: Option<&str>) -> Result<BulkRequest, PageError> {
        let action = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "action")
            .map(|(_, v)| v.into_owned());
        let action = match action.as_deref() {
            Some("stop") => BulkAction::Stop,
            Some("rerun") => BulkAction::Rerun,
            other => return Err(PageError::invalid(format!("unknown bulk action {other:?}"))),
        };
        let mut params = ListParams::parse(raw)?;
        params.next = None;
        Ok(BulkRequest { action, params })
    }

    async fn run(&self, app: &SharedState, service: &str, function: &str, dry: bool) -> Result<BulkSummary, PageError> {
        let filter = self
            .params
            .filter_in(Some((service.to_string(), function.to_string())))?;
        let max = crate::api::fc::bulk::max_tasks(None)?;
        Ok(match self.action {
            BulkAction::Stop => stop_matching(app, filter, max, dry).await?,
            BulkAction::Rerun => rerun_matching(app, filter, max, dry).await?,
        })
    }
}

/// A task a bulk action touched, and what became of it.
struct BulkLine {
    id: String,
    href: String,
    outcome: String,
    failed: bool,
}

#[derive(Template)]
#[template(path = "console/bulk.html")]
struct BulkPage {
    chrome: Chrome,
    function_href: String,
    back_href: String,
    verb: &'static str,
    query: String,
    matched: usize,
    truncated: bool,
    done: bool,
    lines: Vec<BulkLine>,
}

fn bulk_page(
    viewer: &Viewer,
    service: &str,
    function: &str,
    req: &BulkRequest,
    summary: BulkSummary,
    done: bool,
) -> BulkPage {
    let href = function_href(service, function);
    let query = req.params.query();
    let lines = summary
        .results
        .iter()
        .map(|r| {
            let id = r
                .get("invocationId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let result = r.get("result").cloned().unwrap_or(Value::Null);
            let error = result.get("error").and_then(Value::as_str);
            let outcome = match (
                error,
                result.get("newInvocationId").and_then(Value::as_str),
                result.get("status"),
            ) {
                (Some(e), _, _) => e.to_string(),
                (None, Some(new_id), _) => format!("re-run as {new_id}"),
                (None, None, Some(Value::String(s))) => s.clone(),
                _ => String::new(),
            };
            BulkLine {
                href: task_href(service, function, &id),
                failed: error.is_some(),
                id,
                outcome,
            }
        })
        .collect();
    let verb = match req.action {
        BulkAction::Stop => "stop",
        BulkAction::Rerun => "re-run",
    };
    BulkPage {
        chrome: Chrome::new(viewer, "functions", format!("Bulk {verb}")),
        back_href: if query.is_empty() {
            href.clone()
        } else {
            format!("{href}?{query}")
        },
        function_href: href,
        verb,
        query: format!(
            "action={}&{query}",
            if req.action == BulkAction::Stop {
                "stop"
            } else {
                "rerun"
            }
        ),
        matched: summary.matched,
        truncated: summary.truncated,
        done,
        lines,
    }
}

/// The confirmation: how many tasks the action would touch (a dry run).
pub async fn bulk_confirm(
    State(app): State<SharedState>,
    Extension(viewer): Extension<Viewer>,
    Path((service, function)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let req = BulkRequest::parse(raw.as_deref())?;
    let summary = req.run(&app, &service, &function, true).await?;
    render(&bulk_page(&viewer, &service, &function, &req, summary, false))
}

/// Runs the confirmed action; a line per task.
pub async fn bulk_run(
    State(app): State<SharedState>,
    Extension(viewer): Extension<Viewer>,
    Path((service, function)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let req = BulkRequest::parse(raw.as_deref())?;
    let summary = req.run(&app, &service, &function, false).await?;
    render(&bulk_page(&viewer, &service, &function, &req, summary, true))
}
