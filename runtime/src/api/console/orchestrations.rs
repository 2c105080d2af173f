//! Orchestrations in the console: the list with the Durable API's filters,
//! an instance's page (input, output, custom status, its history as a
//! timeline) and its actions — raise event, terminate, suspend, resume,
//! rewind, restart, purge — and starting a new one, through the same
//! `Durable` calls as the instance API.

use askama::Template;
use axum::extract::{Extension, Form, Path, RawQuery, State};
use serde::Deserialize;
use serde_json::Value;

use super::views::{self, Chrome, Time};
use super::{PageError, PageResult, Viewer, render, see_other};
use crate::api::SharedState;
use crate::durable::DurableError;
use crate::journal::{Control, RuntimeStatus};
use crate::store::{ControlOutcome, OrchFilter, OrchRow};

const PAGE: usize = 50;

fn href(id: &str) -> String {
    format!("/console/orchestrations/{}", views::seg(id))
}

struct OrchLine {
    id: String,
    href: String,
    name: String,
    badge: views::Badge,
    created: Option<Time>,
    updated: Option<Time>,
}

impl OrchLine {
    fn of(r: &OrchRow) -> OrchLine {
        OrchLine {
            href: href(&r.instance_id),
            id: r.instance_id.clone(),
            name: r.name.clone(),
            badge: views::badge_named(r.status.as_str()),
            created: Time::of(r.created_ms),
            updated: Time::of(r.updated_ms),
        }
    }
}

#[derive(Template)]
#[template(path = "console/orchestrations.html")]
struct ListPage {
    chrome: Chrome,
    lines: Vec<OrchLine>,
    prefix: String,
    statuses: Vec<(&'static str, bool)>,
    next_href: Option<String>,
}

pub async fn list(
    State(app): State<SharedState>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let mut filter = OrchFilter {
        limit: PAGE,
        ..Default::default()
    };
    let mut prefix = String::new();
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "status" => filter
                .statuses
                .push(RuntimeStatus::parse(&v).ok_or_else(|| PageError::invalid(format!("unknown status '{v}'")))?),
            "prefix" if !v.is_empty() => prefix = v.into_owned(),
            "after" => {
                filter.after = v
                    .split_once('.')
                    .and_then(|(t, id)| Some((t.parse().ok()?, id.to_string())))
            }
            _ => {}
        }
    }
    filter.id_prefix = Some(prefix.clone()).filter(|p| !p.is_empty());
    let statuses = RuntimeStatus::ALL
        .iter()
        .map(|s| (s.as_str(), filter.statuses.contains(s)))
        .collect();
    let rows = app.durable.list(filter.clone()).await?;
    let next_href = (rows.len() == PAGE).then(|| {
        let last = &rows[PAGE - 1];
        let mut q = form_urlencoded::Serializer::new(String::new());
        for s in &filter.statuses {
            q.append_pair("status", s.as_str());
        }
        if !prefix.is_empty() {
            q.append_pair("prefix", &prefix);
        }
        q.append_pair("after", &format!("{}.{}", last.created_ms, last.instance_id));
        format!("/console/orchestrations?{}", q.finish())
    });
    render(&ListPage {
        chrome: Chrome::new(&viewer, "orchestrations", "Orchestrations"),
        lines: rows.iter().map(OrchLine::of).collect(),
        prefix,
        statuses,
        next_href,
    })
}

/// One history event, as the timeline shows it.
struct EventLine {
    kind: String,
    at: Option<Time>,
    offset: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/orchestration.html")]
struct DetailPage {
    chrome: Chrome,
    line: OrchLine,
    service: String,
    function: String,
    input: String,
    output: String,
    custom_status: String,
    finished: bool,
    suspended: bool,
    failed: bool,
    events: Vec<EventLine>,
}

pub async fn detail(
    State(app): State<SharedState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> PageResult {
    let row = load(&app, &id).await?;
    let history = app.durable.history(row.rid).await?;
    let first = history.first().map_or(row.created_ms, |r| r.ts_ms);
    let events = history
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(&r.event).unwrap_or(Value::Null);
            let kind = v
                .get("EventType")
                .and_then(Value::as_str)
                .unwrap_or("Event")
                .to_string();
            if let Value::Object(m) = &mut v {
                m.remove("EventType");
            }
            EventLine {
                kind,
                at: Time::of(r.ts_ms),
                offset: format!("+{}", views::duration(r.ts_ms - first)),
                detail: if v.as_object().is_some_and(|m| m.is_empty()) {
                    String::new()
                } else {
                    v.to_string()
                },
            }
        })
        .collect();
    render(&DetailPage {
        chrome: Chrome::new(&viewer, "orchestrations", format!("Orchestration {id}")),
        service: row.service.clone(),
        function: row.function.clone(),
        input: row.input.clone().unwrap_or_default(),
        output: row.output.clone().unwrap_or_default(),
        custom_status: row.custom_status.clone().unwrap_or_default(),
        finished: row.status.is_terminal(),
        suspended: row.status == RuntimeStatus::Suspended,
        failed: row.status == RuntimeStatus::Failed,
        line: OrchLine::of(&row),
        events,
    })
}

async fn load(app: &SharedState, id: &str) -> Result<OrchRow, PageError> {
    app.durable
        .get(id)
        .await?
        .ok_or_else(|| PageError::not_found("OrchestrationNotFound", format!("no orchestration '{id}'")))
}

/// An action's fields: the event to raise, or the reason to record.
#[derive(Deserialize, Default)]
pub struct ActionForm {
    #[serde(default)]
    event_name: String,
    #[serde(default)]
    event_data: String,
    #[serde(default)]
    reason: String,
}

pub async fn act(
    State(app): State<SharedState>,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let reason = if form.reason.trim().is_empty() {
        "from the console".to_string()
    } else {
        form.reason.trim().to_string()
    };
    let outcome = match action.as_str() {
        "raise-event" => {
            let name = form.event_name.trim();
            if name.is_empty() {
                return Err(PageError::invalid("name the event to raise"));
            }
            let data = if form.event_data.trim().is_empty() {
                "null"
            } else {
                form.event_data.trim()
            };
            serde_json::from_str::<Value>(data)
                .map_err(|e| PageError::invalid(format!("the event data is not JSON: {e}")))?;
            app.durable.raise_event(&id, name.to_string(), data.to_string()).await?
        }
        "terminate" => app.durable.control(&id, Control::Terminate(reason)).await?,
        "suspend" => app.durable.control(&id, Control::Suspend(reason)).await?,
        "resume" => app.durable.control(&id, Control::Resume(reason)).await?,
        "rewind" => app.durable.control(&id, Control::Rewind(reason)).await?,
        "restart" => {
            let row = load(&app, &id).await?;
            let version = (!row.version.is_empty()).then(|| row.version.clone());
            let started = app
                .durable
                .start_instance(&row.name, None, row.input.clone(), version)
                .await
                .map_err(durable_error)?;
            return Ok(see_other(&href(&started.instance_id)));
        }
        "purge" => {
            app.durable.purge(Some(id.clone()), OrchFilter::default()).await?;
            return Ok(see_other("/console/orchestrations"));
        }
        other => return Err(PageError::not_found("PathNotSupported", format!("no action '{other}'"))),
    };
    match outcome {
        ControlOutcome::Done(..) => Ok(see_other(&href(&id))),
        ControlOutcome::NotFound => Err(PageError::not_found(
            "OrchestrationNotFound",
            format!("no orchestration '{id}'"),
        )),
        ControlOutcome::Gone(s) | ControlOutcome::WrongState(s) => Err(PageError::invalid(format!(
            "cannot {action} orchestration '{id}': it is {}",
            s.as_str()
        ))),
    }
}

fn durable_error(e: DurableError) -> PageError {
    match e {
        DurableError::InvalidArgument(m) | DurableError::AlreadyExists(m) => PageError::invalid(m),
        DurableError::Store(e) => e.into(),
    }
}

/// Starts a new instance of an orchestrator function.
#[derive(Deserialize)]
pub struct StartForm {
    name: String,
    #[serde(default)]
    instance_id: String,
    #[serde(default)]
    input: String,
}

pub async fn start(State(app): State<SharedState>, Form(form): Form<StartForm>) -> PageResult {
    let input = Some(form.input.trim().to_string()).filter(|i| !i.is_empty());
    if let Some(i) = &input {
        serde_json::from_str::<Value>(i).map_err(|e| PageError::invalid(format!("the input is not JSON: {e}")))?;
    }
    let id = Some(form.instance_id.trim().to_string()).filter(|i| !i.is_empty());
    let row = app
        .durable
        .start_instance(form.name.trim(), id, input, None)
        .await
        .map_err(durable_error)?;
    Ok(see_other(&href(&row.instance_id)))
}
