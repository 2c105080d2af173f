//! A function's provisioning page: each provision config (target,
//! current, scheduled actions, target-tracking policies) with an editor
//! that goes through PutProvisionConfig's own rules, a chart of target vs
//! current over the last hour, and charts of the function's cold, warm
//! and provisioned starts, from the metrics' minute ring.

use askama::Template;
use axum::extract::{Extension, Form, Path, State};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::charts::{self, Series};
use super::views::{Chrome, function_href, json_text as text};
use super::{PageError, PageResult, Viewer, render, see_other};
use crate::api::SharedState;
use crate::api::fc::provision::{function_configs, put_config};
use crate::metrics::minutes::{MINUTES, START_KINDS};
use crate::registry::ListQuery;

/// One row of a config's schedule or policy table.
struct Row {
    cells: Vec<String>,
}

struct ConfigView {
    qualifier: String,
    target: u64,
    current: u64,
    error: String,
    scheduled: Vec<Row>,
    policies: Vec<Row>,
    /// The editable part of the config, as the editor shows it.
    json: String,
    chart: String,
}

#[derive(Template)]
#[template(path = "console/provisioning.html")]
struct ProvisioningPage {
    chrome: Chrome,
    service: String,
    name: String,
    function_href: String,
    configs: Vec<ConfigView>,
    qualifiers: Vec<String>,
    starts_chart: String,
    latency_chart: String,
}

fn rows(doc: &Map<String, Value>, key: &str, fields: &[&str]) -> Vec<Row> {
    doc.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|item| Row {
            cells: fields.iter().map(|f| text(item.get(*f))).collect(),
        })
        .collect()
}

fn config_view(app: &SharedState, service: &str, name: &str, qualifier: String, doc: Map<String, Value>) -> ConfigView {
    let editable = json!({
        "target": doc.get("target").cloned().unwrap_or(json!(0)),
        "scheduledActions": doc.get("scheduledActions").cloned().unwrap_or(json!([])),
        "targetTrackingPolicies": doc.get("targetTrackingPolicies").cloned().unwrap_or(json!([])),
    });
    let history = app
        .pool
        .metrics()
        .minutes
        .provision(&format!("{service}/{name}/{qualifier}"));
    // One slot per minute of the hour; minutes the autoscaler did not see
    // the config in are gaps.
    let first = history.last().map_or(0, |m| m.minute) - MINUTES as i64 + 1;
    let mut target = vec![None; MINUTES];
    let mut current = vec![None; MINUTES];
    for m in &history {
        if let Ok(i) = usize::try_from(m.minute - first) {
            target[i] = Some(m.target as f64);
            current[i] = Some(m.current as f64);
        }
    }
    ConfigView {
        target: doc.get("target").and_then(Value::as_u64).unwrap_or(0),
        current: doc.get("current").and_then(Value::as_u64).unwrap_or(0),
        error: text(doc.get("currentError")),
        scheduled: rows(
            &doc,
            "scheduledActions",
            &["name", "scheduleExpression", "target", "startTime", "endTime"],
        ),
        policies: rows(
            &doc,
            "targetTrackingPolicies",
            &[
                "name",
                "metricType",
                "metricTarget",
                "minCapacity",
                "maxCapacity",
                "startTime",
                "endTime",
            ],
        ),
        json: serde_json::to_string_pretty(&editable).unwrap_or_default(),
        chart: charts::lines(
            &format!("{qualifier}: target vs current, last hour"),
            "instances",
            &[
                Series {
                    name: "target",
                    class: "target",
                    values: target,
                },
                Series {
                    name: "current",
                    class: "current",
                    values: current,
                },
            ],
        ),
        qualifier,
    }
}

pub async fn page(
    State(app): State<SharedState>,
    Extension(viewer): Extension<Viewer>,
    Path((service, name)): Path<(String, String)>,
) -> PageResult {
    app.registry.get_function(&service, None, &name)?;
    let configs = function_configs(&app, &service, &name)
        .into_iter()
        .map(|(q, doc)| config_view(&app, &service, &name, q, doc))
        .collect();
    let mut qualifiers: Vec<String> = app
        .registry
        .list_aliases(&service, &ListQuery::default())?
        .0
        .iter()
        .map(|a| text(a.get("aliasName")))
        .collect();
    qualifiers.extend(
        app.registry
            .list_versions(&service, &ListQuery::default(), None)?
            .0
            .iter()
            .map(|v| text(v.get("versionId"))),
    );
    let starts = app.pool.metrics().minutes.starts(&format!("{service}/{name}"));
    let per_kind = |f: &dyn Fn(usize, &crate::metrics::minutes::StartsMinute) -> Option<f64>| -> Vec<Series> {
        START_KINDS
            .iter()
            .enumerate()
            .map(|(k, kind)| Series {
                name: kind,
                class: kind,
                values: starts.iter().map(|m| f(k, m)).collect(),
            })
            .collect()
    };
    render(&ProvisioningPage {
        chrome: Chrome::new(&viewer, "functions", format!("Provisioning {service}/{name}")),
        function_href: function_href(&service, &name),
        configs,
        qualifiers,
        starts_chart: charts::lines(
            "Invocations per minute by start",
            "/min",
            &per_kind(&|k, m| Some(m.by_kind[k].count as f64)),
        ),
        latency_chart: charts::lines(
            "Mean invocation time by start (ms)",
            "ms",
            &per_kind(&|k, m| (m.by_kind[k].count > 0).then(|| m.by_kind[k].mean_us() as f64 / 1000.0)),
        ),
        service,
        name,
    })
}

#[derive(Deserialize)]
pub struct ConfigForm {
    qualifier: String,
    config: String,
}

/// Saves a config through PutProvisionConfig's rules.
pub async fn save(
    State(app): State<SharedState>,
    Path((service, name)): Path<(String, String)>,
    Form(form): Form<ConfigForm>,
) -> PageResult {
    let qualifier = form.qualifier.trim();
    if qualifier.is_empty() {
        return Err(PageError::invalid(
            "choose a version or an alias: LATEST cannot be provisioned",
        ));
    }
    let body: Map<String, Value> = serde_json::from_str(&form.config)
        .map_err(|e| PageError::invalid(format!("the config is not a JSON object: {e}")))?;
    put_config(&app, &service, &name, qualifier, &body).await?;
    Ok(see_other(&format!("{}/provisioning", function_href(&service, &name))))
}
